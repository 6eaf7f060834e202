//! `ebm sample`: Langevin samples from a trained model, as safetensors (tensor `x`) and,
//! for 2D models, a picture over the energy contours.

use std::ops::ControlFlow;
use std::path::PathBuf;

use clap::Args;
use ebm::backend::Backend;
use ebm::data::toy2d;
use ebm::plot::{self, Grid2d};
use ebm::sampler::{Langevin, LangevinConfig};
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
    /// Sample the class-conditional energy E(x, y) = −f(x)[y] of a class-logit model: a
    /// class id, or `all` for --n chains split evenly over the classes (an image grid then
    /// has one row per class; 2D samples are coloured by class).
    #[arg(long)]
    pub class: Option<String>,
    /// Philox seed of the initial noise and the Langevin noise.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output file; a PNG is written beside it for 2D models.
    #[arg(long, default_value = "samples.safetensors")]
    pub out: PathBuf,
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
    let backend = crate::open_device(device)?;
    with_backend!(backend, |b| sample(&b, args))
}

fn sample<B: Backend>(b: &B, args: &SampleArgs) -> Result<()> {
    // One read serves both the parameters and the training run's sampler settings.
    let file = TensorFile::read(&args.model)?;
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
    let samples = match &labels {
        Some(y) => sampler.sample_labelled(b, &mut net, y, every, show)?,
        None => sampler.sample(b, &mut net, args.n, every, show)?,
    };
    bar.finish_and_clear();
    let n = samples.rows;
    let samples = samples.x;
    let secs = t0.elapsed().as_secs_f64();
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
    file.metadata.insert(
        "ebm.langevin".into(),
        serde_json::to_string(&config).expect("serialisable"),
    );
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
        let title = format!("{n} Langevin samples, K = {}", args.chain.steps);
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
