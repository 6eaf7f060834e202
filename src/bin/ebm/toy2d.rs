//! `ebm train toy2d`: an MLP energy on a toy 2D distribution, end to end, with a progress
//! bar, density/sample pictures, KL(data ‖ model) in the log and the CSV, and checkpoints.

use std::path::Path;

use clap::Args;
use ebm::backend::Backend;
use ebm::data::{toy2d, Toy2d, ToyData};
use ebm::eval::kl::kl_data_model;
use ebm::plot::{self, Grid2d};
use ebm::train::Trainer;
use ebm::{with_backend, EnergyNet, Error, Result, Spec};

use crate::generators;
use crate::options::{own_defaults, TrainArgs};
use crate::train_loop::{self, LoopArgs, Watch};

/// Options of `ebm train toy2d`; the defaults train 8gaussians visibly well in about two
/// minutes on a two-core CPU.
#[derive(Args, Debug, Clone)]
#[command(allow_negative_numbers = true, mut_args(own_defaults(DEFAULTS)))]
pub struct Toy2dArgs {
    /// 8gaussians, 25gaussians, rings, 2spirals, checkerboard, moons or swissroll.
    #[arg(long, default_value = "8gaussians")]
    pub dataset: String,
    /// Training iterations.
    #[arg(long, default_value_t = 3000)]
    pub iters: u64,
    /// Hidden width of the MLP.
    #[arg(long, default_value_t = 128)]
    pub hidden: usize,
    /// Hidden layers of the MLP.
    #[arg(long, default_value_t = 3)]
    pub depth: usize,
    /// A model spec (JSON file) instead of the MLP.
    #[arg(long)]
    pub spec: Option<String>,
    /// Batch, α, seed, sampler (no gradient clip by default), Adam, replay buffer.
    #[command(flatten)]
    pub train: TrainArgs,
    #[command(flatten)]
    pub run: LoopArgs,
}

/// `ebm train toy2d`'s own defaults for the shared options (the rest: options.rs); no
/// `--grad-clip`.
pub(crate) const DEFAULTS: &[(&str, &str)] = &[
    ("batch", "256"),
    ("alpha", "0.1"),
    ("steps", "20"),
    ("step_size", "0.02"),
    ("noise", "0.2"),
    ("lr", "0.003"),
    ("beta1", "0.9"),
    ("buffer", "10000"),
];

/// The grid on which KL(data ‖ model) is measured.
const KL_GRID: Grid2d = Grid2d {
    n: 64,
    range: toy2d::RANGE,
};
/// Data points for the KL histogram (a batch index no training iteration uses).
const KL_POINTS: usize = 200_000;
const KL_BATCH: u32 = u32::MAX;

pub fn run(device: &str, args: &Toy2dArgs) -> Result<()> {
    let dataset: Toy2d = args.dataset.parse()?;
    args.run.validate()?;
    let backend = crate::open_device(device)?;
    eprintln!("device: {}", backend.name());
    with_backend!(backend, |b| train(&b, dataset, args))
}

/// toy2d data are points in the plane: the net must take [2].
fn check_input(spec: &Spec) -> Result<()> {
    if spec.input != [2] {
        return Err(Error::Shape(format!(
            "toy2d needs a spec with input [2], not {:?}",
            spec.input
        )));
    }
    Ok(())
}

fn train<B: Backend>(b: &B, dataset: Toy2d, args: &Toy2dArgs) -> Result<()> {
    // A generator beside the energy: from the checkpoint when resuming, else --objective.
    if let Some(family) = generators::family_of_run(args.run.resume.as_deref(), &args.train)? {
        let kl = (KL_BATCH, KL_POINTS, KL_GRID);
        return generators::train_toy2d(b, dataset, args, family, kl);
    }
    let out = args.run.out_dir(&format!("toy2d-{dataset}"))?;
    let mut trainer = match &args.run.resume {
        Some(ckpt) => train_loop::resume_trainer(b, ckpt)?,
        None => {
            let mut spec = match &args.spec {
                Some(s) => Spec::from_name_or_file(s)?,
                None => Spec::mlp(2, args.hidden, args.depth),
            };
            check_input(&spec)?;
            let config = args.train.config(-toy2d::RANGE, toy2d::RANGE);
            if config.objective.needs_labels() {
                // One logit per class of the data: E(x, y) = −f(x)[y].
                let classes = dataset.classes().ok_or_else(|| {
                    Error::Option(format!(
                        "--objective {} needs labelled data, and toy dataset {dataset} has no \
                         classes (it is one continuous curve)",
                        config.objective.name()
                    ))
                })?;
                spec = spec.with_classes(classes)?;
            }
            Trainer::new(b, EnergyNet::new(b, &spec, args.train.seed)?, config)?
        }
    };
    // A resumed checkpoint may hold another kind of net (an image model, say).
    check_input(trainer.net.spec())?;
    let seed = trainer.config.seed;
    let mut data = ToyData { dataset, seed };
    let mut watch = ToyWatch {
        dataset,
        data: dataset.sample(seed, KL_BATCH, KL_POINTS),
        marginal: trainer.net.classes().is_some(),
    };
    train_loop::run(
        b,
        &mut trainer,
        &mut data,
        args.iters,
        &args.run,
        &out,
        &mut watch,
    )
}

/// KL(data ‖ model) on a grid and the three-panel picture.
struct ToyWatch {
    dataset: Toy2d,
    /// Data points for the KL histogram and the data panel.
    data: Vec<f32>,
    /// Whether the net is a classifier energy, whose E(x) = −logsumexp f(x) is only the
    /// marginal of what a conditional run trains (each E(x, y) has its own normaliser).
    marginal: bool,
}

impl<B: Backend> Watch<B, Trainer<B>> for ToyWatch {
    fn metric_names(&self) -> Vec<&'static str> {
        vec![if self.marginal { "kl_marginal" } else { "kl" }]
    }

    fn metrics(&mut self, b: &B, trainer: &mut Trainer<B>) -> Result<Vec<f64>> {
        let energy = trainer.net.energies(b, &KL_GRID.points())?;
        Ok(vec![kl_data_model(&KL_GRID, &self.data, &energy)])
    }

    /// Data, model density exp(−E)/Z and samples over the energy, as `toy2d_NNNNNN.png`
    /// and `toy2d.png` (the latest).
    fn pictures(
        &mut self,
        b: &B,
        trainer: &mut Trainer<B>,
        iteration: u64,
        metrics: &[f64],
        out: &Path,
    ) -> Result<()> {
        let kl = metrics[0];
        let grid = Grid2d {
            n: 128,
            range: toy2d::RANGE,
        };
        let energy = trainer.net.energies(b, &grid.points())?;
        // Persistent chains show the model's long-run samples; in short-run mode the buffer
        // is never written, so show the last batch instead.
        let samples = if !trainer.config.objective.samples() {
            Vec::new() // a plain classifier draws no chains
        } else if trainer.config.reinit_prob < 1.0 {
            trainer.replay.read_chains(b)?
        } else {
            trainer.last_samples(b)?
        };
        let title = format!("ebm  toy2d {}  ({})", self.dataset, b.name());
        let of = if self.marginal {
            " of exp(-E) = sum_y exp f_y"
        } else {
            ""
        };
        let footer = format!("iter {iteration}   KL(data||model{of}) {kl:.3} nats");
        let path = out.join(format!("toy2d_{iteration:06}.png"));
        plot::toy2d_figure(
            &path,
            &plot::Toy2dFigure {
                title: &title,
                data: &self.data[..self.data.len().min(2 * 20_000)],
                samples: &samples,
                grid,
                energy: &energy,
                footer: &footer,
            },
        )?;
        std::fs::copy(&path, out.join("toy2d.png")).map_err(|e| Error::io(&path, e))?;
        Ok(())
    }
}
