//! `ebm sample`: Langevin samples from a trained model, as safetensors (tensor `x`) and,
//! for 2D models, a picture over the energy contours.

use std::ops::ControlFlow;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use ebm::backend::Backend;
use ebm::data::toy2d;
use ebm::plot::{self, Grid2d};
use ebm::sampler::MetropolisSampler;
use ebm::sampler::{
    Acceptance, Annealed, ExactChains, ExactConfig, Hmc, Langevin, LangevinConfig, Mala,
};
use ebm::tensorfile::TensorFile;
use ebm::train::checkpoint::{model_from_file, TRAIN_KEY};
use ebm::train::TrainConfig;
use ebm::{with_backend, Error, Result, Spec};

#[derive(Args, Debug)]
#[command(allow_negative_numbers = true)]
pub struct SampleArgs {
    /// Model file or training checkpoint (safetensors with `ebm.spec` metadata).
    #[arg(long)]
    pub model: PathBuf,
    /// The model's spec (built-in name or JSON file) when the file carries none.
    #[arg(long)]
    pub spec: Option<String>,
    /// Number of chains (samples).
    #[arg(long, default_value_t = 5000)]
    pub n: usize,
    #[command(flatten)]
    pub chain: ChainArgs,
    /// The sampler: ula (unadjusted Langevin: --step-size, --noise, clamped to the box),
    /// mala (Metropolis-adjusted Langevin), hmc (Hamiltonian Monte Carlo, --leapfrog L) or
    /// annealed (ula with its noise scaled by √T over --levels temperatures from --t-max
    /// down to 1, --steps shared among them). mala and hmc sample exp(−E/T) exactly:
    /// ε = --step-size, T = --temperature, and a proposal outside [--lo, --hi] is rejected.
    #[arg(long, value_enum, default_value_t = SamplerKind::Ula)]
    pub sampler: SamplerKind,
    /// T of the target exp(−E(x)/T) for mala and hmc.
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f32,
    /// HMC: leapfrog steps L per trajectory (each one forward and backward pass).
    #[arg(long, default_value_t = 10)]
    pub leapfrog: usize,
    /// mala/hmc: warm up for this many steps first, adapting ε by dual averaging towards
    /// --target-accept, then sample --steps steps with ε frozen (the acceptance reported is
    /// that of the sampling steps).
    #[arg(long, default_value_t = 0)]
    pub adapt: usize,
    /// The acceptance --adapt aims for (default 0.574 for mala, 0.65 for hmc).
    #[arg(long)]
    pub target_accept: Option<f64>,
    /// annealed: levels of the temperature ladder.
    #[arg(long, default_value_t = 10)]
    pub levels: usize,
    /// annealed: the first level's temperature.
    #[arg(long, default_value_t = 100.0)]
    pub t_max: f32,
    /// Sample the class-conditional energy E(x, y) = −f(x)[y] of a class-logit model: a
    /// class id, or `all` for --n chains split evenly over the classes (an image grid then
    /// has one row per class; 2D samples are coloured by class).
    #[arg(long)]
    pub class: Option<String>,
    /// Cooperative model (`--objective coop`): revise the generator's samples by this many
    /// Langevin steps of its energy (the training run's step size and noise); without it,
    /// the generator's samples as they are.
    #[arg(long, value_name = "K")]
    pub revise: Option<usize>,
    /// Latent-EBM model (`--objective latent-ebm`): prior Langevin steps on z before
    /// decoding (default: the training run's K₀).
    #[arg(long, value_name = "K")]
    pub prior_steps: Option<usize>,
    /// Philox seed of the initial noise and the Langevin noise (and of a generator's latents).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output file; a PNG is written beside it for 2D models.
    #[arg(long, default_value = "samples.safetensors")]
    pub out: PathBuf,
}

/// Which sampler `ebm sample` runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SamplerKind {
    /// Unadjusted Langevin (biased at any finite step).
    Ula,
    /// Metropolis-adjusted Langevin.
    Mala,
    /// Hamiltonian Monte Carlo.
    Hmc,
    /// Unadjusted Langevin down a temperature ladder (--levels, --t-max).
    Annealed,
}

/// The Langevin chain's settings, shared by `ebm sample` and `ebm compose`.
#[derive(Args, Debug, Clone)]
pub struct ChainArgs {
    /// Langevin steps K from uniform noise.
    #[arg(long, default_value_t = 200)]
    pub steps: usize,
    /// Step size (default: the training run's, from a checkpoint, else 0.02 for 2D models
    /// and 10 for images).
    #[arg(long)]
    pub step_size: Option<f32>,
    /// Noise standard deviation (default: the training run's, else 0.2 for 2D models and
    /// 0.005 for images).
    #[arg(long)]
    pub noise: Option<f32>,
    /// Clamp range lo (default: the training run's, else −4.5 for 2D and −1 otherwise).
    #[arg(long, allow_hyphen_values = true)]
    pub lo: Option<f32>,
    /// Clamp range hi.
    #[arg(long)]
    pub hi: Option<f32>,
}

impl ChainArgs {
    /// The sampler's settings: these options, else the training run's stored in `file`'s
    /// metadata (a checkpoint), else the toy demo's for 2D models and IGEBM's for images.
    pub fn config(&self, file: &TensorFile, two_d: bool) -> Result<LangevinConfig> {
        let trained = file
            .metadata
            .get(TRAIN_KEY)
            .and_then(|json| serde_json::from_str::<TrainConfig>(json).ok())
            .map(|c| c.langevin);
        let (lo, hi, step, noise, clip) = if two_d {
            (-toy2d::RANGE, toy2d::RANGE, 0.02, 0.2, None)
        } else {
            (-1.0, 1.0, 10.0, 0.005, Some(0.01))
        };
        let config = LangevinConfig {
            steps: self.steps,
            step_size: self
                .step_size
                .or(trained.map(|c| c.step_size))
                .unwrap_or(step),
            noise: self.noise.or(trained.map(|c| c.noise)).unwrap_or(noise),
            grad_clip: trained.map_or(clip, |c| c.grad_clip),
            lo: self.lo.or(trained.map(|c| c.lo)).unwrap_or(lo),
            hi: self.hi.or(trained.map(|c| c.hi)).unwrap_or(hi),
        };
        config.validate()?;
        Ok(config)
    }
}

pub fn run(device: &str, args: &SampleArgs) -> Result<()> {
    if args.n == 0 || args.chain.steps == 0 {
        return Err(Error::Option("--n and --steps must be at least 1".into()));
    }
    let exact = matches!(args.sampler, SamplerKind::Mala | SamplerKind::Hmc);
    if !exact && (args.adapt > 0 || args.target_accept.is_some()) {
        return Err(Error::Option(
            "--adapt and --target-accept tune MALA's or HMC's ε: give --sampler mala or hmc".into(),
        ));
    }
    let backend = crate::open_device(device)?;
    with_backend!(backend, |b| sample(&b, args))
}

fn sample<B: Backend>(b: &B, args: &SampleArgs) -> Result<()> {
    // One read serves both the parameters and the training run's sampler settings.
    let file = TensorFile::read(&args.model)?;
    if let Some(kind) = ebm::nn::io::model_kind(&file) {
        // An energy with a generator: the generator draws.
        return crate::generators::sample_model(b, &file, kind, args);
    }
    if args.revise.is_some() || args.prior_steps.is_some() {
        return Err(Error::Option(format!(
            "--revise and --prior-steps sample models with a generator (trained with --objective \
             coop or latent-ebm); {} holds one energy",
            args.model.display()
        )));
    }
    let spec = args
        .spec
        .as_deref()
        .map(Spec::from_name_or_file)
        .transpose()?;
    let mut net = model_from_file(b, &file, &args.model, spec.as_ref())?;
    let two_d = net.input_len() == 2;
    let config = args.chain.config(&file, two_d)?;
    net.spec().check_batch(args.n, &format!("--n {}", args.n))?;
    let sampler = Langevin {
        config,
        seed: args.seed,
    };
    let bar = crate::train_loop::progress_bar(0, args.chain.steps as u64, false);
    bar.set_message("Langevin steps");
    let t0 = std::time::Instant::now();
    // About a hundred progress updates, whatever K; each waits for the device.
    let every = (args.chain.steps / 100).max(1);
    let labels = class_labels(args, net.classes())?;
    let show = |p: ebm::sampler::Progress| {
        bar.set_position(p.steps_done as u64);
        ControlFlow::Continue(())
    };
    let mut acceptance = None;
    let samples =
        match (&labels, args.sampler) {
            (Some(y), SamplerKind::Ula) => sampler.sample_labelled(b, &mut net, y, every, show)?,
            (None, SamplerKind::Ula) => sampler.sample(b, &mut net, args.n, every, show)?,
            (Some(_), _) => return Err(Error::Option(
                "--class samples with --sampler ula only (conditional MALA/HMC/annealing is not \
                 built yet)"
                    .into(),
            )),
            (None, SamplerKind::Annealed) => sample_annealed(b, &mut net, args, &sampler, show)?,
            (None, kind) => {
                let (samples, a, exact) =
                    sample_exact(b, &mut net, args, (&sampler, &file), kind, every, show)?;
                acceptance = Some((a, exact));
                samples
            }
        };
    bar.finish_and_clear();
    let n = samples.rows;
    let samples = samples.x;
    let secs = t0.elapsed().as_secs_f64();
    if let Some((a, exact)) = &acceptance {
        eprintln!(
            "acceptance: {:.1} % of {} tests (mean min(1, α) {:.3})",
            100.0 * a.rate,
            n * a.steps,
            a.mean_probability
        );
        if let Some(note) = a.advice(exact.step_size) {
            eprintln!("{note}");
        }
    }
    if samples.iter().any(|v| !v.is_finite()) {
        return Err(Error::NonFinite("samples contain NaN or infinity".into()));
    }
    let mut shape = vec![n];
    shape.extend(&net.spec().input);
    let mut file = TensorFile::new();
    file.insert("x", shape, samples.clone());
    if let Some(y) = &labels {
        file.insert("label", vec![n], y.clone());
    }
    file.metadata
        .insert("ebm.spec".into(), net.spec().to_json());
    match (&acceptance, args.sampler) {
        (Some((a, exact)), kind) => {
            file.insert("accepted", vec![n], a.accepted.clone());
            let mut settings = serde_json::to_value(exact).expect("serialisable");
            settings["sampler"] = format!("{kind:?}").to_lowercase().into();
            if kind == SamplerKind::Hmc {
                settings["leapfrog"] = args.leapfrog.into();
            }
            file.metadata
                .insert("ebm.sampler".into(), settings.to_string());
        }
        (None, _) => {
            file.metadata.insert(
                "ebm.langevin".into(),
                serde_json::to_string(&config).expect("serialisable"),
            );
        }
    }
    file.write(&args.out)?;
    eprintln!(
        "{n} chains × {} steps in {secs:.2} s ({:.3e} chain-steps/s) on {}; wrote {}",
        args.chain.steps,
        (n * args.chain.steps) as f64 / secs,
        b.name(),
        args.out.display()
    );
    if two_d {
        let grid = Grid2d {
            n: 128,
            range: toy2d::RANGE,
        };
        let energy = net.energies(b, &grid.points())?;
        let png = args.out.with_extension("png");
        let title = match args.sampler {
            SamplerKind::Ula => format!("{n} Langevin samples, K = {}", args.chain.steps),
            SamplerKind::Mala => format!("{n} MALA samples, K = {}", args.chain.steps),
            SamplerKind::Hmc => format!(
                "{n} HMC samples, K = {}, L = {}",
                args.chain.steps, args.leapfrog
            ),
            SamplerKind::Annealed => format!(
                "{n} annealed Langevin samples, K = {}, T = {} → 1",
                args.chain.steps, args.t_max
            ),
        };
        let background = Some((&grid, &energy[..]));
        match &labels {
            Some(y) => {
                plot::class_scatter_figure(&png, &title, &samples, y, toy2d::RANGE, background)?
            }
            None => plot::scatter_figure(&png, &title, &samples, toy2d::RANGE, background)?,
        }
        eprintln!("wrote {}", png.display());
    } else if let [c, h, w] = net.spec().input[..] {
        let png = args.out.with_extension("png");
        let len = c * h * w;
        match (&labels, args.class.as_deref(), net.classes()) {
            (Some(_), Some("all"), Some(classes)) => {
                // One row per class: the first (up to 10) chains of each.
                let per = n / classes;
                let cols = per.min(10);
                let rows: Vec<f32> = (0..classes)
                    .flat_map(|y| samples[y * per * len..(y * per + cols) * len].to_vec())
                    .collect();
                let title = format!(
                    "class-conditional samples (rows: classes 0-{}), K = {}",
                    classes - 1,
                    args.chain.steps
                );
                plot::image_grid(&png, &title, &rows, c, h, w, cols, 3)?;
            }
            _ => {
                let shown = n.min(64);
                let title = format!("{shown} of {n} Langevin samples, K = {}", args.chain.steps);
                plot::image_grid(&png, &title, &samples[..shown * len], c, h, w, 8, 3)?;
            }
        }
        eprintln!("wrote {}", png.display());
    }
    Ok(())
}

/// MALA's or HMC's settings: ε is --step-size, else the ε a training run with an exact
/// sampler ended with (`ebm.exact_step`), else the Langevin step size; T and the box as
/// given.
fn exact_config(args: &SampleArgs, langevin: &LangevinConfig, file: &TensorFile) -> ExactConfig {
    #[derive(serde::Deserialize)]
    struct Trained {
        step_size: f32,
    }
    let trained = file
        .metadata
        .get(ebm::train::checkpoint::EXACT_STEP_KEY)
        .and_then(|json| serde_json::from_str::<Trained>(json).ok())
        .map(|t| t.step_size)
        .filter(|_| args.chain.step_size.is_none());
    ExactConfig {
        steps: langevin.steps,
        step_size: trained.unwrap_or(langevin.step_size),
        temperature: args.temperature,
        lo: langevin.lo,
        hi: langevin.hi,
    }
}

/// `args.n` samples by MALA or HMC from the same initial noise as Langevin's, after the
/// --adapt warm-up, with progress every `every` steps; and the acceptance of the sampling
/// steps.
fn sample_exact<B: Backend>(
    b: &B,
    net: &mut ebm::EnergyNet<B>,
    args: &SampleArgs,
    (langevin, file): (&Langevin, &TensorFile),
    kind: SamplerKind,
    every: usize,
    progress: impl FnMut(ebm::sampler::Progress) -> ControlFlow<()>,
) -> Result<ExactRun> {
    let config = exact_config(args, &langevin.config, file);
    config.validate()?;
    let (seed, start) = (langevin.seed, langevin.noise(args.n, net.input_len()));
    match kind {
        SamplerKind::Mala => drive(b, net, args, &start, Mala { config, seed }, every, progress),
        _ => {
            let leapfrog = args.leapfrog;
            let hmc = Hmc {
                config,
                leapfrog,
                seed,
            };
            drive(b, net, args, &start, hmc, every, progress)
        }
    }
}

/// `args.n` samples by annealed Langevin from the same initial noise as Langevin's, with
/// progress after each level.
fn sample_annealed<B: Backend>(
    b: &B,
    net: &mut ebm::EnergyNet<B>,
    args: &SampleArgs,
    langevin: &Langevin,
    mut progress: impl FnMut(ebm::sampler::Progress) -> ControlFlow<()>,
) -> Result<ebm::sampler::Samples> {
    let annealed = Annealed {
        langevin: *langevin,
        levels: args.levels,
        t_max: args.t_max,
    };
    annealed.validate()?;
    let n = args.n;
    let mut x = b.upload(&langevin.noise(n, net.input_len()))?;
    let mut done = 0;
    for l in 0..annealed.levels {
        let level = annealed.level(l);
        level.run(b, net, &mut x, n, done as u64)?;
        b.wait()?;
        done += level.config.steps;
        let report = ebm::sampler::Progress {
            steps_done: done,
            steps_total: langevin.config.steps,
        };
        if progress(report).is_break() {
            break;
        }
    }
    Ok(ebm::sampler::Samples {
        x: b.read(&x)?,
        rows: n,
        steps_run: done,
    })
}

/// What an exact sampler's run gives: the samples, the acceptance of the sampling steps, and
/// the settings it ran with (ε adapted by the warm-up, if any).
type ExactRun = (ebm::sampler::Samples, Acceptance, ExactConfig);

/// [`sample_exact`] for one sampler.
fn drive<B: Backend, S: MetropolisSampler>(
    b: &B,
    net: &mut ebm::EnergyNet<B>,
    args: &SampleArgs,
    start: &[f32],
    mut sampler: S,
    every: usize,
    mut progress: impl FnMut(ebm::sampler::Progress) -> ControlFlow<()>,
) -> Result<ExactRun> {
    let (n, dim) = (args.n, net.input_len());
    let mut chains = ExactChains::new(b, b.upload(start)?, n, dim)?;
    if args.adapt > 0 {
        let target = args.target_accept.unwrap_or(sampler.default_target());
        let eps = sampler.warm_up(b, net, &mut chains, args.adapt, 0, target)?;
        eprintln!(
            "warm-up: {} steps adapted ε to {eps:.4e} (target acceptance {target})",
            args.adapt
        );
    }
    let total = sampler.config().steps;
    let mut done = 0;
    while done < total {
        let chunk = every.min(total - done);
        sampler.config_mut().steps = chunk;
        sampler.run(b, net, &mut chains, (args.adapt + done) as u64)?;
        b.wait()?;
        done += chunk;
        let report = ebm::sampler::Progress {
            steps_done: done,
            steps_total: total,
        };
        if progress(report).is_break() {
            break;
        }
    }
    let acceptance = chains.acceptance(b)?;
    let samples = ebm::sampler::Samples {
        x: b.read(chains.x())?,
        rows: n,
        steps_run: done,
    };
    let config = ExactConfig {
        steps: total,
        ..*sampler.config()
    };
    Ok((samples, acceptance, config))
}

/// The chains' classes for `--class`: `None` without it; every chain the one class; or, for
/// `all`, --n chains split evenly, class-major (at least one per class).
fn class_labels(args: &SampleArgs, classes: Option<usize>) -> Result<Option<Vec<f32>>> {
    let Some(class) = args.class.as_deref() else {
        return Ok(None);
    };
    let classes = classes.ok_or_else(|| {
        Error::Option(
            "--class needs a class-logit model (spec \"output\": {\"energy\": \
             \"neg_logsumexp\", \"classes\": C}), trained with --objective conditional or jem"
                .into(),
        )
    })?;
    if class == "all" {
        if args.n < classes {
            return Err(Error::Option(format!(
                "--class all splits --n {} chains over {classes} classes: give at least {classes}",
                args.n
            )));
        }
        let per = args.n / classes;
        if per * classes != args.n {
            eprintln!(
                "note: --class all samples {per} chains per class, {} in all",
                per * classes
            );
        }
        return Ok(Some(
            (0..classes)
                .flat_map(|y| std::iter::repeat_n(y as f32, per))
                .collect(),
        ));
    }
    match class.parse::<usize>() {
        Ok(y) if y < classes => Ok(Some(vec![y as f32; args.n])),
        _ => Err(Error::Option(format!(
            "--class {class}: give a class id in 0..{classes} or `all`"
        ))),
    }
}
