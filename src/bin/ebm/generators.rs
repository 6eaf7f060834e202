//! `ebm train toy2d|images --objective coop | latent-ebm`: the families that pair the energy
//! with a generator. Builds the run (or resumes it), and watches it: sample-based KL and
//! density panels for toy data, sample grids (and reconstructions) for images.

use std::path::Path;

use ebm::backend::Backend;
use ebm::data::images::ImageData;
use ebm::data::{toy2d, Toy2d, ToyData};
use ebm::eval::kl::{kl_data_model, kl_data_samples};
use ebm::nn::Net;
use ebm::plot::{self, density_from_energy, points_density, Grid2d};
use ebm::sampler::Langevin;
use ebm::train::coop::coop_samples;
use ebm::train::{
    AdamConfig, CoopConfig, CoopTrainer, LatentConfig, LatentTrainer, Learner, Trainer,
};
use ebm::{EnergyNet, Error, Result, Spec};

use crate::images::{self as images_cmd, ImagesArgs};
use crate::options::{GeneratorArgs, TrainArgs};
use crate::toy2d::Toy2dArgs;
use crate::train_loop::{self, Watch};

/// A run with a generator beside the energy.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Family {
    Coop,
    Latent,
}

impl Family {
    /// The family of an `--objective` (or a checkpoint's `ebm.model`), if it has a generator.
    pub fn of(name: &str) -> Option<Family> {
        match name {
            "coop" => Some(Family::Coop),
            "latent-ebm" => Some(Family::Latent),
            _ => None,
        }
    }

    /// Its `--objective` name.
    pub fn name(self) -> &'static str {
        match self {
            Family::Coop => "coop",
            Family::Latent => "latent-ebm",
        }
    }
}

/// The family of the run `ebm train` starts or resumes: the checkpoint's when resuming, else
/// `--objective`'s, whose options are checked first (one the objective would ignore is an
/// error). `None`: a run of one energy.
pub fn family_of_run(resume: Option<&Path>, train: &TrainArgs) -> Result<Option<Family>> {
    let kind = match resume {
        Some(ckpt) => train_loop::resume_kind(ckpt),
        None => {
            let ula = train.langevin.method() == ebm::sampler::Method::Ula;
            train.generator.check_for(&train.objective, ula)?;
            Some(train.objective.clone())
        }
    };
    Ok(kind.as_deref().and_then(Family::of))
}

/// The generator's Adam: β₁ = 0.5 (DCGAN's, and both papers').
fn generator_adam(lr: f32) -> AdamConfig {
    AdamConfig {
        lr,
        beta1: 0.5,
        ..AdamConfig::default()
    }
}

/// The generator's spec: `--gen-spec`, else `builtin`; it must make samples of `sample`.
fn generator_spec(args: &GeneratorArgs, builtin: Spec, sample: &[usize]) -> Result<Spec> {
    let spec = match &args.gen_spec {
        Some(s) => Spec::from_name_or_file(s)?,
        None => builtin,
    };
    match &spec.output {
        ebm::nn::Output::Tensor(shape)
            if shape.iter().product::<usize>() == sample.iter().product::<usize>() =>
        {
            Ok(spec)
        }
        ebm::nn::Output::Tensor(shape) => Err(Error::Shape(format!(
            "the generator makes samples of shape {shape:?}, the data are {sample:?}"
        ))),
        _ => Err(Error::Spec(
            "--gen-spec needs a generator: \"output\": {\"tensor\": [...]}".into(),
        )),
    }
}

/// A cooperative trainer from the command line: the energy's settings as for CD (its replay
/// buffer shrunk to one batch: the chains start at the generator's samples).
fn coop_trainer<B: Backend>(
    b: &B,
    energy: Spec,
    generator: Spec,
    train: &TrainArgs,
    (lo, hi): (f32, f32),
    default_gen_lr: f32,
) -> Result<CoopTrainer<B>> {
    let mut config = train.config(lo, hi);
    config.buffer_size = config.batch;
    let g = &train.generator;
    let coop = CoopConfig {
        sigma: g.gen_sigma.unwrap_or(0.3),
        infer_steps: g.infer_steps,
        infer_step: g.infer_step,
        adam: generator_adam(g.gen_lr.unwrap_or(default_gen_lr)),
    };
    coop.validate()?;
    let seed = train.seed;
    let ebm = Trainer::new(b, EnergyNet::new(b, &energy, seed)?, config)?;
    // Its own init key: the two nets' parameter streams must not coincide.
    let generator = Net::new(b, &generator, seed.wrapping_add(1))?;
    CoopTrainer::new(b, ebm, generator, coop)
}

/// A latent-EBM trainer from the command line, on top of `defaults`.
fn latent_trainer<B: Backend>(
    b: &B,
    generator: Spec,
    train: &TrainArgs,
    mut config: LatentConfig,
    prior_hidden: usize,
) -> Result<LatentTrainer<B>> {
    let g = &train.generator;
    config.batch = train.batch;
    config.alpha = g.prior_alpha.unwrap_or(config.alpha);
    config.seed = train.seed;
    config.sigma = g.gen_sigma.unwrap_or(config.sigma);
    config.prior_steps = g.prior_steps.unwrap_or(config.prior_steps);
    config.prior_step = g.prior_step.unwrap_or(config.prior_step);
    config.post_steps = g.post_steps.unwrap_or(config.post_steps);
    config.post_step = g.post_step.unwrap_or(config.post_step);
    if let Some(lr) = g.prior_lr {
        config.prior_adam.lr = lr;
    }
    if let Some(lr) = g.gen_lr {
        config.generator_adam.lr = lr;
    }
    let dz = generator.input.iter().product();
    let hidden = g.prior_hidden.unwrap_or(prior_hidden);
    if hidden == 0 {
        return Err(Error::Option("--prior-hidden must be at least 1".into()));
    }
    let prior = EnergyNet::new(b, &Spec::latent_prior(dz, hidden), train.seed)?;
    let generator = Net::new(b, &generator, train.seed.wrapping_add(1))?;
    LatentTrainer::new(b, prior, generator, config)
}

/// `--gen-lr` and `--prior-lr` when given: positive numbers, named if not.
fn check_rates(args: &GeneratorArgs) -> Result<()> {
    for (name, v) in [("gen-lr", args.gen_lr), ("prior-lr", args.prior_lr)] {
        if let Some(v) = v.filter(|v| !(v.is_finite() && *v > 0.0)) {
            return Err(Error::Option(format!(
                "--{name} {v} must be a positive number"
            )));
        }
    }
    Ok(())
}

/// `--latent-dim`, else `default`; at least 1.
fn latent_dim(args: &GeneratorArgs, default: usize) -> Result<usize> {
    check_rates(args)?;
    match args.latent_dim.unwrap_or(default) {
        0 => Err(Error::Option("--latent-dim must be at least 1".into())),
        d => Ok(d),
    }
}

// ---------------------------------------------------------------------------- toy2d

/// Samples drawn for the sample-based KL (generator, revised, latent model).
const KL_SAMPLES: usize = 10_000;
/// The Philox step of those draws: one no training iteration reaches, and small enough that
/// the revision's steps (counter·K + k, a u32) do not wrap for K up to 1000.
const EVAL_COUNTER: u64 = 4_000_000;

pub fn train_toy2d<B: Backend>(
    b: &B,
    dataset: Toy2d,
    args: &Toy2dArgs,
    family: Family,
    (kl_batch, kl_points, kl_grid): (u32, usize, Grid2d),
) -> Result<()> {
    let out = args
        .run
        .out_dir(&format!("toy2d-{dataset}-{}", family.name()))?;
    let range = toy2d::RANGE;
    match family {
        Family::Coop => {
            let mut trainer: CoopTrainer<B> = match &args.run.resume {
                Some(ckpt) => train_loop::resume_trainer(b, ckpt)?,
                None => {
                    let energy = match &args.spec {
                        Some(s) => Spec::from_name_or_file(s)?,
                        None => Spec::mlp(2, args.hidden, args.depth),
                    };
                    let gen = toy_generator(args)?;
                    coop_trainer(b, energy, gen, &args.train, (-range, range), 1e-3)?
                }
            };
            check_toy(trainer.ebm.net.input_len())?;
            let seed = trainer.ebm.config.seed;
            let mut watch = CoopToyWatch {
                dataset,
                data: dataset.sample(seed, kl_batch, kl_points),
                grid: kl_grid,
                drawn: None,
            };
            let mut data = ToyData { dataset, seed };
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
        Family::Latent => {
            let mut trainer: LatentTrainer<B> = match &args.run.resume {
                Some(ckpt) => train_loop::resume_trainer(b, ckpt)?,
                None => {
                    let gen = toy_generator(args)?;
                    let defaults = LatentConfig::toy2d(args.train.seed);
                    latent_trainer(b, gen, &args.train, defaults, args.hidden)?
                }
            };
            check_toy(trainer.generator.output_len())?;
            let seed = trainer.config.seed;
            let mut watch = LatentToyWatch {
                dataset,
                data: dataset.sample(seed, kl_batch, kl_points),
                grid: kl_grid,
                drawn: None,
            };
            let mut data = ToyData { dataset, seed };
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
    }
}

/// `--gen-spec`, else the toy MLP generator of `--hidden` on `--latent-dim` (default 2).
fn toy_generator(args: &Toy2dArgs) -> Result<Spec> {
    let dz = latent_dim(&args.train.generator, 2)?;
    let builtin = Spec::generator_mlp(dz, args.hidden, 2);
    generator_spec(&args.train.generator, builtin, &[2])
}

fn check_toy(len: usize) -> Result<()> {
    if len != 2 {
        return Err(Error::Shape(format!(
            "toy2d needs nets on points of 2 values, this run's take {len}"
        )));
    }
    Ok(())
}

/// The grid of the pictures.
fn picture_grid() -> Grid2d {
    Grid2d {
        n: 128,
        range: toy2d::RANGE,
    }
}

/// Cooperative learning on toy data: the energy's density KL, and sample-based KL of the
/// generator's samples and of their revisions.
struct CoopToyWatch {
    dataset: Toy2d,
    data: Vec<f32>,
    grid: Grid2d,
    /// The last draw and its iteration: the pictures of a logged iteration reuse the
    /// metrics' samples (the same counter gives the same draw).
    drawn: Drawn,
}

/// (iteration, two sample sets) of a watch's last draw.
type Drawn = Option<(u64, Vec<f32>, Vec<f32>)>;

impl CoopToyWatch {
    /// [`KL_SAMPLES`] generator samples and their revisions at this iteration.
    fn draw<B: Backend>(&mut self, b: &B, t: &mut CoopTrainer<B>) -> Result<(Vec<f32>, Vec<f32>)> {
        match &self.drawn {
            Some((at, gen, rev)) if *at == t.iteration() => return Ok((gen.clone(), rev.clone())),
            _ => {}
        }
        let langevin = Langevin {
            config: t.ebm.config.langevin,
            seed: t.ebm.config.seed,
        };
        let (gen, rev) = coop_samples(
            b,
            &mut t.generator.net,
            &mut t.ebm.net,
            Some(&langevin),
            KL_SAMPLES,
            EVAL_COUNTER,
            t.ebm.config.seed,
        )?;
        let rev = rev.expect("revised");
        self.drawn = Some((t.iteration(), gen.clone(), rev.clone()));
        Ok((gen, rev))
    }
}

impl<B: Backend> Watch<B, CoopTrainer<B>> for CoopToyWatch {
    fn metric_names(&self) -> Vec<&'static str> {
        vec!["kl", "kl_gen", "kl_revised"]
    }

    fn metrics(&mut self, b: &B, t: &mut CoopTrainer<B>) -> Result<Vec<f64>> {
        let energy = t.ebm.net.energies(b, &self.grid.points())?;
        let (gen, rev) = self.draw(b, t)?;
        Ok(vec![
            kl_data_model(&self.grid, &self.data, &energy),
            kl_data_samples(&self.grid, &self.data, &gen),
            kl_data_samples(&self.grid, &self.data, &rev),
        ])
    }

    fn pictures(
        &mut self,
        b: &B,
        t: &mut CoopTrainer<B>,
        iteration: u64,
        m: &[f64],
        out: &Path,
    ) -> Result<()> {
        let grid = picture_grid();
        let energy = t.ebm.net.energies(b, &grid.points())?;
        let (gen, rev) = self.draw(b, t)?;
        let data = &self.data[..self.data.len().min(2 * 50_000)];
        let k = t.ebm.config.langevin.steps;
        let rev_title = format!("revised: {k} Langevin steps");
        let panels = [
            ("data", points_density(&grid, data)),
            (
                "energy exp(-E)/Z",
                density_from_energy(&energy, grid.cell_area()),
            ),
            ("generator g(z)", points_density(&grid, &gen)),
            (rev_title.as_str(), points_density(&grid, &rev)),
        ];
        let title = format!(
            "ebm  toy2d {}  cooperative learning  ({})",
            self.dataset,
            b.name()
        );
        let footer = format!(
            "iter {iteration}   KL(data||.) nats: energy {:.3}  generator {:.3}  revised {:.3}",
            m[0], m[1], m[2]
        );
        let path = out.join(format!("toy2d_{iteration:06}.png"));
        plot::densities_figure(&path, &title, &grid, &panels, &footer)?;
        std::fs::copy(&path, out.join("toy2d.png")).map_err(|e| Error::io(&path, e))?;
        Ok(())
    }
}

/// The latent-space prior model on toy data: sample-based KL of x = g(z), z from the prior,
/// and the prior's density on z when z is 2D.
struct LatentToyWatch {
    dataset: Toy2d,
    data: Vec<f32>,
    grid: Grid2d,
    /// The last draw (z, g(z)), as [`CoopToyWatch::drawn`].
    drawn: Drawn,
}

impl LatentToyWatch {
    /// [`KL_SAMPLES`] draws (z, g(z)) of the model at this iteration.
    fn draw<B: Backend>(
        &mut self,
        b: &B,
        t: &mut LatentTrainer<B>,
    ) -> Result<(Vec<f32>, Vec<f32>)> {
        match &self.drawn {
            Some((at, z, x)) if *at == t.iteration => return Ok((z.clone(), x.clone())),
            _ => {}
        }
        let (z, x) = t.sample(b, KL_SAMPLES, EVAL_COUNTER)?;
        self.drawn = Some((t.iteration, z.clone(), x.clone()));
        Ok((z, x))
    }
}

impl<B: Backend> Watch<B, LatentTrainer<B>> for LatentToyWatch {
    fn metric_names(&self) -> Vec<&'static str> {
        vec!["kl_gen"]
    }

    fn metrics(&mut self, b: &B, t: &mut LatentTrainer<B>) -> Result<Vec<f64>> {
        let (_, x) = self.draw(b, t)?;
        Ok(vec![kl_data_samples(&self.grid, &self.data, &x)])
    }

    fn pictures(
        &mut self,
        b: &B,
        t: &mut LatentTrainer<B>,
        iteration: u64,
        m: &[f64],
        out: &Path,
    ) -> Result<()> {
        let grid = picture_grid();
        let (z, x) = self.draw(b, t)?;
        let data = &self.data[..self.data.len().min(2 * 50_000)];
        let mut panels = vec![
            ("data", points_density(&grid, data)),
            ("g(z), z from the prior", points_density(&grid, &x)),
        ];
        if t.generator.latent_len() == 2 {
            // The prior on z: exp(−E(z))·N(z; 0, I), on the same square.
            let points = grid.points();
            let energy: Vec<f32> = t
                .prior
                .energies(b, &points)?
                .iter()
                .zip(points.chunks(2))
                .map(|(e, p)| e + 0.5 * (p[0] * p[0] + p[1] * p[1]))
                .collect();
            panels.push((
                "prior on z: exp(-E(z)) N(z)",
                density_from_energy(&energy, grid.cell_area()),
            ));
            panels.push(("prior samples z", points_density(&grid, &z)));
        }
        let title = format!(
            "ebm  toy2d {}  latent-space EBM prior  ({})",
            self.dataset,
            b.name()
        );
        let footer = format!(
            "iter {iteration}   KL(data||g(z)) {:.3} nats   K0 = {} prior steps",
            m[0], t.config.prior_steps
        );
        let path = out.join(format!("toy2d_{iteration:06}.png"));
        plot::densities_figure(&path, &title, &grid, &panels, &footer)?;
        std::fs::copy(&path, out.join("toy2d.png")).map_err(|e| Error::io(&path, e))?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------- images

pub fn train_images<B: Backend>(b: &B, args: &ImagesArgs, family: Family) -> Result<()> {
    let data_path = args.data.clone().unwrap_or_else(images_cmd::default_data);
    let now = images_cmd::data_source(&data_path, args);
    let spec_name = Path::new(&args.spec)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("images");
    let out = args
        .run
        .out_dir(&format!("images-{spec_name}-{}", family.name()))?;
    let nf = args.nf.unwrap_or(if b.is_gpu() { 64 } else { 16 });
    let gen_nf = args.train.generator.gen_nf.unwrap_or(nf);
    match family {
        Family::Coop => {
            let mut trainer: CoopTrainer<B> = match &args.run.resume {
                Some(ckpt) => train_loop::resume_trainer(b, ckpt)?,
                None => {
                    let energy = images_cmd::spec(args, b.is_gpu())?;
                    let gen = image_generator(args, &energy.input, gen_nf)?;
                    let mut t = coop_trainer(b, energy, gen, &args.train, (-1.0, 1.0), 2e-4)?;
                    t.ebm.data_source = Some(now.clone());
                    t
                }
            };
            let shape = trainer.ebm.net.spec().input.clone();
            let seed = trainer.ebm.config.seed;
            run_images(b, &mut trainer, shape, seed, (&data_path, &now), args, &out)
        }
        Family::Latent => {
            let mut trainer: LatentTrainer<B> = match &args.run.resume {
                Some(ckpt) => train_loop::resume_trainer(b, ckpt)?,
                None => {
                    let input = images_cmd::spec(args, b.is_gpu())?.input;
                    let gen = image_generator(args, &input, gen_nf)?;
                    let defaults = LatentConfig::images(args.train.seed);
                    let mut t = latent_trainer(b, gen, &args.train, defaults, 200)?;
                    t.data_source = Some(now.clone());
                    t
                }
            };
            let shape = match &trainer.generator.net.spec().output {
                ebm::nn::Output::Tensor(s) => s.clone(),
                _ => unreachable!("a generator has a tensor output"),
            };
            let seed = trainer.config.seed;
            run_images(b, &mut trainer, shape, seed, (&data_path, &now), args, &out)
        }
    }
}

/// Train a run with a generator on the images at `data_path`, brought to `shape`: the same
/// data a resumed run trained on (`now`: the data in words, as checkpoints keep them), its
/// held-out images left out, with sample grids every `--plot-every`.
fn run_images<B: Backend, L: Learner<B>>(
    b: &B,
    trainer: &mut L,
    shape: Vec<usize>,
    seed: u64,
    (data_path, now): (&Path, &str),
    args: &ImagesArgs,
    out: &Path,
) -> Result<()>
where
    ImageGrids: Watch<B, L>,
{
    if let Some(then) = trainer.data_source().filter(|&t| t != now) {
        return Err(Error::Option(format!(
            "--resume: this run trained on {then}; give the same --data, --labels and \
             --holdout (now: {now})"
        )));
    }
    let set = images_cmd::load_images(&shape, data_path)?;
    let set = images_cmd::hold_out(set, args.holdout)?;
    let mut data = ImageData::new(set, seed)?;
    let mut watch = ImageGrids { shape };
    train_loop::run(
        b, trainer, &mut data, args.iters, &args.run, out, &mut watch,
    )
}

/// `--gen-spec`, else the DCGAN-style generator for the energy's `[C, 32, 32]` input.
fn image_generator(args: &ImagesArgs, input: &[usize], gen_nf: usize) -> Result<Spec> {
    let dz = latent_dim(&args.train.generator, 100)?;
    if gen_nf == 0 {
        return Err(Error::Option("--gen-nf must be at least 1".into()));
    }
    let builtin = match input {
        &[c, 32, 32] => Spec::generator32(dz, c, gen_nf),
        _ if args.train.generator.gen_spec.is_some() => Spec::generator_mlp(dz, 1, 1),
        other => {
            return Err(Error::Shape(format!(
                "the built-in image generator makes [C, 32, 32]; the data are {other:?} (give \
                 --gen-spec)"
            )))
        }
    };
    generator_spec(&args.train.generator, builtin, input)
}

/// Sample grids of the generator (and its revisions, or the latent model's reconstructions).
struct ImageGrids {
    shape: Vec<usize>,
}

/// Tiles per grid row, and rows.
const COLS: usize = 8;

impl ImageGrids {
    /// Up to `cols`·8 of `x` in rows of `cols`, as `{name}_{iteration}.png` and `{name}.png`.
    fn write(
        &self,
        out: &Path,
        (name, iteration): (&str, u64),
        title: &str,
        x: &[f32],
        cols: usize,
    ) -> Result<()> {
        let (c, h, w) = (self.shape[0], self.shape[1], self.shape[2]);
        let len = c * h * w;
        let n = (x.len() / len).min(cols * COLS);
        let path = out.join(format!("{name}_{iteration:06}.png"));
        plot::image_grid(&path, title, &x[..n * len], c, h, w, cols, 3)?;
        std::fs::copy(&path, out.join(format!("{name}.png"))).map_err(|e| Error::io(&path, e))?;
        Ok(())
    }
}

impl<B: Backend> Watch<B, CoopTrainer<B>> for ImageGrids {
    fn pictures(
        &mut self,
        b: &B,
        t: &mut CoopTrainer<B>,
        iteration: u64,
        _: &[f64],
        out: &Path,
    ) -> Result<()> {
        let k = t.ebm.config.langevin.steps;
        let title = format!("generator g(z), iter {iteration}");
        self.write(
            out,
            ("generator", iteration),
            &title,
            &t.generated(b)?,
            COLS,
        )?;
        let title = format!("revised by {k} Langevin steps, iter {iteration}");
        self.write(out, ("revised", iteration), &title, &t.revised(b)?, COLS)
    }
}

impl<B: Backend> Watch<B, LatentTrainer<B>> for ImageGrids {
    fn pictures(
        &mut self,
        b: &B,
        t: &mut LatentTrainer<B>,
        iteration: u64,
        _: &[f64],
        out: &Path,
    ) -> Result<()> {
        let (_, x) = t.sample(b, COLS * COLS, EVAL_COUNTER)?;
        let title = format!(
            "g(z), z from the prior ({} Langevin steps), iter {iteration}",
            t.config.prior_steps
        );
        self.write(out, ("samples", iteration), &title, &x, COLS)?;
        // Rows alternate: data, then its reconstructions g(z+) at posterior samples z+.
        let len: usize = self.shape.iter().product();
        let (data, recon) = (t.data_batch(b)?, t.reconstructions(b)?);
        // Rows of `cols` (a batch smaller than a row gives one short row).
        let batch = data.len() / len;
        let cols = COLS.min(batch);
        let rows = (batch / cols.max(1)).min(COLS / 2);
        let mut pairs = Vec::with_capacity(2 * rows * cols * len);
        for r in 0..rows {
            let at = r * cols * len..(r + 1) * cols * len;
            pairs.extend_from_slice(&data[at.clone()]);
            pairs.extend_from_slice(&recon[at]);
        }
        if pairs.is_empty() {
            return Ok(());
        }
        let title = format!("data (rows 1, 3, ...) and reconstructions g(z+), iter {iteration}");
        self.write(out, ("reconstructions", iteration), &title, &pairs, cols)
    }
}

// ---------------------------------------------------------------------------- sampling

/// `ebm sample` on a model with a generator: a cooperative model's generator samples
/// (revised by `--revise K` Langevin steps of its energy), or a latent-EBM model's
/// g(z) with z from its prior. Writes `x` (and `x_generator` when revised, `z` for the
/// latent model) and a picture, as the energy samplers do.
pub fn sample_model<B: Backend>(
    b: &B,
    file: &ebm::tensorfile::TensorFile,
    kind: &str,
    args: &crate::sample::SampleArgs,
) -> Result<()> {
    use ebm::nn::io::{read_energy, read_net};
    use ebm::sampler::LatentLangevin;
    use ebm::tensorfile::TensorFile;
    use ebm::train::latent::{latent_samples, LATENT_KEY};

    let path = args.model.as_path();
    let n = args.n;
    let refused = [
        (args.sampler != crate::sample::SamplerKind::Ula, "--sampler"),
        (args.class.is_some(), "--class"),
        (args.adapt > 0, "--adapt"),
        (args.spec.is_some(), "--spec"),
    ];
    if let Some((_, name)) = refused.iter().find(|(given, _)| *given) {
        return Err(Error::Option(format!(
            "{name} is for one-energy models; {} is a {kind} model (its generator draws: \
             --revise K, --prior-steps K)",
            args.model.display()
        )));
    }
    let mut energy = read_energy(b, file, path, "energy")?;
    let mut generator = read_net(b, file, path, "generator")?;
    generator.spec().check_batch(n, &format!("--n {n}"))?;
    energy.spec().check_batch(n, &format!("--n {n}"))?;
    let shape = match &generator.spec().output {
        ebm::nn::Output::Tensor(s) => s.clone(),
        _ => return Err(Error::format(path, "the generator has no tensor output")),
    };
    let t0 = std::time::Instant::now();
    let mut out = TensorFile::new();
    let mut rows = vec![n];
    rows.extend(&shape);
    let (x, what) = match Family::of(kind) {
        Some(Family::Coop) => {
            if args.prior_steps.is_some() {
                return Err(Error::Option(
                    "--prior-steps is for latent-EBM models; this is a cooperative one".into(),
                ));
            }
            let revise = match args.revise {
                Some(0) => return Err(Error::Option("--revise must be at least 1".into())),
                Some(k) => {
                    let mut config = args.chain.config(file, shape == [2])?;
                    config.steps = k;
                    Some(Langevin {
                        config,
                        seed: args.seed,
                    })
                }
                None => None,
            };
            let (gen, revised) = coop_samples(
                b,
                &mut generator,
                &mut energy,
                revise.as_ref(),
                n,
                0,
                args.seed,
            )?;
            match revised {
                Some(rev) => {
                    out.insert("x_generator", rows.clone(), gen);
                    let k = args.revise.unwrap_or(0);
                    (
                        rev,
                        format!("generator samples revised by {k} Langevin steps"),
                    )
                }
                None => (gen, "generator samples g(z)".to_string()),
            }
        }
        Some(Family::Latent) => {
            if args.revise.is_some() {
                return Err(Error::Option(
                    "--revise is for cooperative models; a latent-EBM model samples its prior \
                     (--prior-steps)"
                        .into(),
                ));
            }
            let config: LatentConfig = file
                .metadata
                .get(LATENT_KEY)
                .and_then(|json| serde_json::from_str(json).ok())
                .ok_or_else(|| {
                    Error::format(path, format!("no readable '{LATENT_KEY}' metadata"))
                })?;
            let langevin = LatentLangevin {
                steps: args.prior_steps.unwrap_or(config.prior_steps),
                step_size: config.prior_step,
                seed: args.seed,
            };
            let (z, x) = latent_samples(b, &mut energy, &mut generator, &langevin, n, 0)?;
            out.insert("z", vec![n, generator.input_len()], z);
            let what = format!(
                "g(z), z from the prior by {} Langevin steps",
                langevin.steps
            );
            (x, what)
        }
        None => return Err(Error::format(path, format!("unknown model kind '{kind}'"))),
    };
    if x.iter().any(|v| !v.is_finite()) {
        return Err(Error::NonFinite("samples contain NaN or infinity".into()));
    }
    let secs = t0.elapsed().as_secs_f64();
    out.insert("x", rows, x.clone());
    out.metadata
        .insert("ebm.spec.generator".into(), generator.spec().to_json());
    out.metadata.insert("ebm.sampled".into(), what.clone());
    out.write(&args.out)?;
    eprintln!(
        "{n} samples ({what}) in {secs:.2} s on {}; wrote {}",
        b.name(),
        args.out.display()
    );
    let png = args.out.with_extension("png");
    let title = format!("{n} samples: {what}");
    if shape == [2] {
        let background = if Family::of(kind) == Some(Family::Coop) {
            let grid = picture_grid();
            Some((grid, energy.energies(b, &grid.points())?))
        } else {
            None
        };
        let background = background.as_ref().map(|(g, e)| (g, &e[..]));
        plot::scatter_figure(&png, &title, &x, toy2d::RANGE, background)?;
    } else if let [c, h, w] = shape[..] {
        let shown = n.min(64);
        plot::image_grid(&png, &title, &x[..shown * c * h * w], c, h, w, 8, 3)?;
    } else {
        return Ok(());
    }
    eprintln!("wrote {}", png.display());
    Ok(())
}
