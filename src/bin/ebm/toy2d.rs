//! `ebm train toy2d`: an MLP energy on a toy 2D distribution, end to end, with a progress
//! bar, density/sample pictures, KL(data ‖ model) in the log and the CSV, and checkpoints.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;
use ebm::backend::Backend;
use ebm::data::{toy2d, DataSource, Toy2d, ToyData};
use ebm::plot::{self, Grid2d};
use ebm::sampler::LangevinConfig;
use ebm::train::checkpoint::{load_trainer, save_checkpoint, save_model};
use ebm::train::kl::kl_data_model;
use ebm::train::{AdamConfig, TrainConfig, Trainer};
use ebm::{with_backend, EnergyNet, Error, Result, Spec};
use indicatif::{ProgressBar, ProgressStyle};

/// Options of `ebm train toy2d`; the defaults train 8gaussians visibly well in about two
/// minutes on a two-core CPU.
#[derive(Args, Debug, Clone)]
#[command(allow_negative_numbers = true)]
pub struct Toy2dArgs {
    /// 8gaussians, 25gaussians, rings, 2spirals, checkerboard, moons or swissroll.
    #[arg(long, default_value = "8gaussians")]
    pub dataset: String,
    /// Training iterations.
    #[arg(long, default_value_t = 3000)]
    pub iters: u64,
    /// Data samples and chains per iteration (B).
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
    /// Langevin steps per iteration (K).
    #[arg(long, default_value_t = 20)]
    pub steps: usize,
    /// Langevin gradient step size.
    #[arg(long, default_value_t = 0.02)]
    pub step_size: f32,
    /// Langevin noise standard deviation.
    #[arg(long, default_value_t = 0.2)]
    pub noise: f32,
    /// Clamp each element of ∇ₓE to [−c, c] during sampling.
    #[arg(long)]
    pub grad_clip: Option<f32>,
    /// Energy-magnitude penalty α.
    #[arg(long, default_value_t = 0.1)]
    pub alpha: f32,
    /// Adam learning rate.
    #[arg(long, default_value_t = 3e-3)]
    pub lr: f32,
    /// Adam β₁.
    #[arg(long, default_value_t = 0.9)]
    pub beta1: f32,
    /// Adam β₂.
    #[arg(long, default_value_t = 0.999)]
    pub beta2: f32,
    /// Clip the global gradient norm.
    #[arg(long)]
    pub max_grad_norm: Option<f32>,
    /// Persistent chains in the replay buffer (N).
    #[arg(long, default_value_t = 10000)]
    pub buffer: usize,
    /// Probability that a drawn chain restarts from noise (1 = short-run mode).
    #[arg(long, default_value_t = 0.05)]
    pub reinit: f32,
    /// Hidden width of the MLP.
    #[arg(long, default_value_t = 128)]
    pub hidden: usize,
    /// Hidden layers of the MLP.
    #[arg(long, default_value_t = 3)]
    pub depth: usize,
    /// A model spec (JSON file) instead of the MLP.
    #[arg(long)]
    pub spec: Option<String>,
    /// Seed of every random number of the run.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output folder (default runs/toy2d-<dataset>, or the checkpoint's folder with --resume).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write a picture every N iterations (and at the end).
    #[arg(long, default_value_t = 500)]
    pub plot_every: u64,
    /// Read back and log loss, energies and KL every N iterations.
    #[arg(long, default_value_t = 50)]
    pub log_every: u64,
    /// Write a checkpoint every N iterations (and at the end).
    #[arg(long, default_value_t = 1000)]
    pub ckpt_every: u64,
    /// Continue a run from its checkpoint.
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// No progress bar (log lines instead).
    #[arg(long)]
    pub quiet: bool,
}

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
    for (name, every) in [
        ("plot-every", args.plot_every),
        ("log-every", args.log_every),
        ("ckpt-every", args.ckpt_every),
    ] {
        if every == 0 {
            return Err(Error::Option(format!("--{name} must be at least 1")));
        }
    }
    let backend = crate::open_device(device)?;
    eprintln!("device: {}", backend.name());
    with_backend!(backend, |b| train(&b, dataset, args))
}

fn config(args: &Toy2dArgs) -> TrainConfig {
    TrainConfig {
        batch: args.batch,
        langevin: LangevinConfig {
            steps: args.steps,
            step_size: args.step_size,
            noise: args.noise,
            grad_clip: args.grad_clip,
            lo: -toy2d::RANGE,
            hi: toy2d::RANGE,
        },
        alpha: args.alpha,
        adam: AdamConfig {
            lr: args.lr,
            beta1: args.beta1,
            beta2: args.beta2,
            eps: 1e-8,
            max_grad_norm: args.max_grad_norm,
        },
        buffer_size: args.buffer,
        reinit_prob: args.reinit,
        seed: args.seed,
    }
}

fn train<B: Backend>(b: &B, dataset: Toy2d, args: &Toy2dArgs) -> Result<()> {
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("runs/toy2d-{dataset}")));
    std::fs::create_dir_all(&out).map_err(|e| Error::io(&out, e))?;
    let mut trainer = match &args.resume {
        Some(ckpt) => load_trainer(b, ckpt)?,
        None => {
            let spec = match &args.spec {
                Some(s) => Spec::from_name_or_file(s)?,
                None => Spec::mlp(2, args.hidden, args.depth),
            };
            if spec.input_len() != 2 {
                return Err(Error::Shape(format!(
                    "toy2d needs a spec with input [2], not {:?}",
                    spec.input
                )));
            }
            Trainer::new(b, EnergyNet::new(b, &spec, args.seed)?, config(args))?
        }
    };
    let mut data = ToyData {
        dataset,
        seed: trainer.config.seed,
    };
    let kl_data = dataset.sample(trainer.config.seed, KL_BATCH, KL_POINTS);
    let csv_path = out.join("metrics.csv");
    let mut csv = open_csv(&csv_path, args.resume.is_some())?;

    let (start, end) = (trainer.iteration, trainer.iteration.max(args.iters));
    let bar = progress_bar(start, end, args.quiet);
    let t0 = Instant::now();
    let mut last_kl = f64::NAN;
    for it in start..end {
        let batch = data.batch(it, trainer.config.batch)?;
        trainer.step(b, &batch)?;
        let done = it + 1;
        if done % args.log_every == 0 || done == end {
            let stats = trainer.stats(b)?;
            let grid_energy = trainer.net.energies(b, &KL_GRID.points())?;
            last_kl = kl_data_model(&KL_GRID, &kl_data, &grid_energy);
            let rate = (done - start) as f64 / t0.elapsed().as_secs_f64();
            let line = format!(
                "loss {:+.4}  E+ {:+.3}  E- {:+.3}  KL {:.3}  {:.1} it/s",
                stats.loss, stats.e_pos, stats.e_neg, last_kl, rate
            );
            writeln!(
                csv,
                "{done},{},{},{},{last_kl},{rate},{}",
                stats.loss,
                stats.e_pos,
                stats.e_neg,
                t0.elapsed().as_secs_f64()
            )
            .map_err(|e| Error::io(&csv_path, e))?;
            csv.flush().map_err(|e| Error::io(&csv_path, e))?;
            if args.quiet {
                eprintln!("iter {done}: {line}");
            }
            bar.set_message(line);
        }
        bar.set_position(done);
        if done % args.plot_every == 0 || done == end {
            let path = out.join(format!("toy2d_{done:06}.png"));
            write_figure(b, &mut trainer, dataset, &kl_data, done, last_kl, &path)?;
            std::fs::copy(&path, out.join("toy2d.png")).map_err(|e| Error::io(&path, e))?;
        }
        if done % args.ckpt_every == 0 || done == end {
            save_checkpoint(b, &trainer, &out.join("checkpoint.safetensors"))?;
            save_model(b, &trainer.net, &out.join("model.safetensors"))?;
        }
    }
    bar.finish();
    plot_metrics(&csv_path, &out.join("metrics.png"))?;
    eprintln!(
        "done: {} iterations in {:.1} s, KL(data‖model) = {last_kl:.3} nats; wrote {}",
        end - start,
        t0.elapsed().as_secs_f64(),
        out.display()
    );
    Ok(())
}

fn open_csv(path: &Path, append: bool) -> Result<BufWriter<File>> {
    let exists = path.exists();
    let file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    let mut w = BufWriter::new(file);
    if !(append && exists) {
        writeln!(w, "iter,loss,e_pos,e_neg,kl,it_per_s,seconds").map_err(|e| Error::io(path, e))?;
    }
    Ok(w)
}

fn progress_bar(start: u64, end: u64, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(end);
    bar.set_position(start);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30.cyan/blue}] {pos}/{len} {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar
}

/// The three-panel picture: data, model density exp(−E)/Z, samples over the energy.
fn write_figure<B: Backend>(
    b: &B,
    trainer: &mut Trainer<B>,
    dataset: Toy2d,
    data: &[f32],
    iteration: u64,
    kl: f64,
    path: &Path,
) -> Result<()> {
    let grid = Grid2d {
        n: 128,
        range: toy2d::RANGE,
    };
    let energy = trainer.net.energies(b, &grid.points())?;
    // Persistent chains show the model's long-run samples; in short-run mode the buffer is
    // never written, so show the last batch instead.
    let samples = if trainer.config.reinit_prob < 1.0 {
        trainer.replay.read_chains(b)?
    } else {
        trainer.last_samples(b)?
    };
    let title = format!("ebm  toy2d {dataset}  ({})", b.name());
    let footer = format!("iter {iteration}   KL(data||model) {kl:.3} nats");
    plot::toy2d_figure(
        path,
        &plot::Toy2dFigure {
            title: &title,
            data: &data[..data.len().min(2 * 20_000)],
            samples: &samples,
            grid,
            energy: &energy,
            footer: &footer,
        },
    )
}

/// Loss, energies and KL over the run, from the CSV.
fn plot_metrics(csv: &Path, png: &Path) -> Result<()> {
    let text = std::fs::read_to_string(csv).map_err(|e| Error::io(csv, e))?;
    let rows: Vec<Vec<f32>> = text
        .lines()
        .skip(1)
        .map(|l| {
            l.split(',')
                .map(|v| v.parse().unwrap_or(f32::NAN))
                .collect()
        })
        .filter(|r: &Vec<f32>| r.len() >= 5)
        .collect();
    let col = |i: usize| rows.iter().map(|r| r[i]).collect::<Vec<_>>();
    plot::line_chart(
        png,
        "training curves",
        &col(0),
        &[
            ("loss", &col(1)),
            ("E+", &col(2)),
            ("E-", &col(3)),
            ("KL", &col(4)),
        ],
    )
}
