//! `ebm inpaint` and `ebm denoise`: uses of a trained image EBM from the literature (IGEBM,
//! JEM). Both run Langevin from a damaged image on the model's energy and write before/after
//! grids; inpainting keeps the known pixels fixed and samples only the masked ones.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use ebm::backend::Backend;
use ebm::data::images::{self, ImageSet};
use ebm::plot;
use ebm::rng::{self, Stream};
use ebm::sampler::{Annealed, ExactChains, ExactConfig, Hmc, Langevin, LangevinConfig, Mala};
use ebm::tensorfile::TensorFile;
use ebm::{with_backend, EnergyNet, Error, Result};

/// Which pixels are unknown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mask {
    /// The central square of half the image's side.
    Center,
    /// The left half.
    Left,
    /// Each pixel with probability --fraction.
    Random,
}

/// What both commands share: the model, the images, the sampler.
#[derive(Args, Debug, Clone)]
#[command(allow_negative_numbers = true)]
pub struct RestoreArgs {
    /// Model file (safetensors with `ebm.spec` metadata).
    #[arg(long)]
    pub model: PathBuf,
    /// The model's spec when the file carries none.
    #[arg(long)]
    pub spec: Option<String>,
    /// Images (folder of PNG/JPEG, IDX, CIFAR-10 batches).
    #[arg(long)]
    pub data: PathBuf,
    /// How many images (the first N of the set).
    #[arg(long, default_value_t = 64)]
    pub n: usize,
    /// Langevin steps.
    #[arg(long, default_value_t = 100)]
    pub steps: usize,
    /// Langevin step size.
    #[arg(long, default_value_t = 10.0)]
    pub step_size: f32,
    /// Langevin noise standard deviation.
    #[arg(long, default_value_t = 0.005)]
    pub noise: f32,
    /// Per-element clip of ∇ₓE.
    #[arg(long, default_value_t = 0.01)]
    pub grad_clip: f32,
    /// The sampler: ula (Langevin with --step-size, --noise, --grad-clip, clamped to
    /// [−1, 1]), annealed (ula with the noise scaled by √T over --levels temperatures from
    /// --t-max down to 1, --steps shared among them) or the exact mala / hmc (ε =
    /// --step-size, T = --temperature, no clip, a proposal outside [−1, 1] rejected;
    /// inpainting samples the unknown pixels given the known ones exactly).
    #[arg(long, default_value = "ula", value_parser = ["ula", "annealed", "mala", "hmc"])]
    pub sampler: String,
    /// annealed: levels of the temperature ladder.
    #[arg(long, default_value_t = 10)]
    pub levels: usize,
    /// annealed: the first level's temperature.
    #[arg(long, default_value_t = 100.0)]
    pub t_max: f32,
    /// mala/hmc: T of the target exp(−E/T).
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f32,
    /// hmc: leapfrog steps per trajectory (--steps counts trajectories).
    #[arg(long, default_value_t = 5)]
    pub leapfrog: usize,
    /// Seed of the mask and the noise.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output PNG (before | after); a safetensors file with `x` (the result) goes beside it.
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Args, Debug)]
pub struct InpaintArgs {
    #[command(flatten)]
    pub common: RestoreArgs,
    /// Which pixels to fill in.
    #[arg(long, value_enum, default_value_t = Mask::Center)]
    pub mask: Mask,
    /// Fraction of unknown pixels for --mask random.
    #[arg(long, default_value_t = 0.5)]
    pub fraction: f32,
}

#[derive(Args, Debug)]
pub struct DenoiseArgs {
    #[command(flatten)]
    pub common: RestoreArgs,
    /// Standard deviation of the Gaussian noise added to the images.
    #[arg(long, default_value_t = 0.3)]
    pub sigma: f32,
}

fn validate(a: &RestoreArgs) -> Result<()> {
    if a.n == 0 || a.steps == 0 {
        return Err(Error::Option("--n and --steps must be at least 1".into()));
    }
    sampler(a).config.validate()?;
    if a.sampler == "annealed" {
        annealed(a).validate()?;
    } else if a.sampler != "ula" {
        exact_config(a).validate()?;
        if a.sampler == "hmc" && a.leapfrog == 0 {
            return Err(Error::Option(
                "HMC needs at least 1 leapfrog step (--leapfrog)".into(),
            ));
        }
    }
    Ok(())
}

/// The annealed sampler: the ULA chain of the options down --levels temperatures.
fn annealed(a: &RestoreArgs) -> Annealed {
    Annealed {
        langevin: sampler(a),
        levels: a.levels,
        t_max: a.t_max,
    }
}

/// MALA's or HMC's settings: ε = --step-size, T = --temperature, the pixel box.
fn exact_config(a: &RestoreArgs) -> ExactConfig {
    ExactConfig {
        steps: a.steps,
        step_size: a.step_size,
        temperature: a.temperature,
        lo: -1.0,
        hi: 1.0,
    }
}

/// Run the chosen sampler on `rows` chains starting at `x`, with the values of `fixed`
/// (known values, mask) held where the mask is non-zero; the chains after it.
fn restore<B: Backend>(
    b: &B,
    net: &mut EnergyNet<B>,
    a: &RestoreArgs,
    mut x: B::Tensor,
    rows: usize,
    fixed: Option<(B::Tensor, B::Tensor)>,
) -> Result<Vec<f32>> {
    if a.sampler == "ula" {
        match &fixed {
            Some((known, mask)) => sampler(a).run_inpainting(b, net, &mut x, rows, known, mask)?,
            None => sampler(a).run(b, net, &mut x, rows, 0)?,
        }
        return b.read(&x);
    }
    if a.sampler == "annealed" {
        match &fixed {
            Some((known, mask)) => annealed(a).run_inpainting(b, net, &mut x, rows, known, mask)?,
            None => annealed(a).run(b, net, &mut x, rows, 0)?,
        }
        return b.read(&x);
    }
    let mut chains = ExactChains::new(b, x, rows, net.input_len())?;
    if let Some((known, mask)) = fixed {
        chains = chains.with_fixed(b, known, mask)?;
    }
    let config = exact_config(a);
    if a.sampler == "mala" {
        Mala {
            config,
            seed: a.seed,
        }
        .run(b, net, &mut chains, 0)?;
    } else {
        let leapfrog = a.leapfrog;
        Hmc {
            config,
            leapfrog,
            seed: a.seed,
        }
        .run(b, net, &mut chains, 0)?;
    }
    let acceptance = chains.acceptance(b)?;
    eprintln!(
        "{}: {:.1} % of {} proposals accepted",
        a.sampler,
        100.0 * acceptance.rate,
        rows * a.steps
    );
    if let Some(note) = acceptance.advice(a.step_size) {
        eprintln!("{note}");
    }
    b.read(chains.x())
}

pub fn inpaint(device: &str, args: &InpaintArgs) -> Result<()> {
    validate(&args.common)?;
    if !(0.0..=1.0).contains(&args.fraction) {
        return Err(Error::Option(format!(
            "--fraction {} must be in [0, 1]",
            args.fraction
        )));
    }
    let backend = crate::open_device(device)?;
    with_backend!(backend, |b| run_inpaint(&b, args))
}

pub fn denoise(device: &str, args: &DenoiseArgs) -> Result<()> {
    validate(&args.common)?;
    if !(args.sigma.is_finite() && args.sigma >= 0.0) {
        return Err(Error::Option(format!("--sigma {} must be ≥ 0", args.sigma)));
    }
    let backend = crate::open_device(device)?;
    with_backend!(backend, |b| run_denoise(&b, args))
}

/// The model and the first `n` images at its input shape.
fn model_and_images<B: Backend>(b: &B, a: &RestoreArgs) -> Result<(EnergyNet<B>, ImageSet)> {
    let net = crate::load_net(b, &a.model, a.spec.as_deref())?;
    let shape = net.spec().input.clone();
    if shape.len() != 3 {
        return Err(Error::Shape(format!(
            "{} is not an image model (input {shape:?})",
            a.model.display()
        )));
    }
    let mut set = images::load(&a.data, shape[0], shape[1], shape[2])?;
    let n = a.n.min(set.len());
    set.data.truncate(n * set.sample_len());
    Ok((net, set))
}

fn sampler(a: &RestoreArgs) -> Langevin {
    let config = LangevinConfig {
        steps: a.steps,
        step_size: a.step_size,
        noise: a.noise,
        grad_clip: Some(a.grad_clip),
        lo: -1.0,
        hi: 1.0,
    };
    Langevin {
        config,
        seed: a.seed,
    }
}

/// 1 where a pixel is known (all channels alike), 0 where it is to be filled in.
fn mask_values(mask: Mask, fraction: f32, set: &ImageSet, seed: u64) -> Vec<f32> {
    let (c, h, w) = (set.channels, set.height, set.width);
    let mut values = vec![1.0; set.data.len()];
    for (n, image) in values.chunks_mut(c * h * w).enumerate() {
        let mut unknown_pixel = vec![false; h * w];
        match mask {
            Mask::Center => {
                let (top, left) = (h / 4, w / 4);
                for y in top..top + h / 2 {
                    for x in left..left + w / 2 {
                        unknown_pixel[y * w + x] = true;
                    }
                }
            }
            Mask::Left => {
                (0..h).for_each(|y| (0..w / 2).for_each(|x| unknown_pixel[y * w + x] = true))
            }
            Mask::Random => {
                let mut u = vec![0.0; h * w];
                rng::fill_uniform(seed, n as u32, 1, Stream::Data, 0.0, 1.0, &mut u);
                unknown_pixel
                    .iter_mut()
                    .zip(&u)
                    .for_each(|(p, &u)| *p = u < fraction);
            }
        }
        for plane in image.chunks_mut(h * w) {
            plane
                .iter_mut()
                .zip(&unknown_pixel)
                .for_each(|(v, &unknown)| *v = if unknown { 0.0 } else { 1.0 });
        }
    }
    values
}

fn run_inpaint<B: Backend>(b: &B, args: &InpaintArgs) -> Result<()> {
    let a = &args.common;
    let (mut net, set) = model_and_images(b, a)?;
    let mask = mask_values(args.mask, args.fraction, &set, a.seed);
    // Unknown pixels start from uniform noise, as the model's own chains do.
    let mut start = set.data.clone();
    for (n, image) in start.chunks_mut(set.sample_len()).enumerate() {
        let mut noise = vec![0.0; image.len()];
        rng::fill_uniform(
            a.seed,
            n as u32,
            0,
            Stream::ReplayReinit,
            -1.0,
            1.0,
            &mut noise,
        );
        let m = &mask[n * image.len()..][..image.len()];
        image.iter_mut().zip(noise).zip(m).for_each(|((v, z), &m)| {
            if m == 0.0 {
                *v = z
            }
        });
    }
    let (known, mask_t) = (b.upload(&set.data)?, b.upload(&mask)?);
    let x = b.upload(&start)?;
    let after = restore(b, &mut net, a, x, set.len(), Some((known, mask_t)))?;
    let mask_name = format!("{:?}", args.mask).to_lowercase();
    let title = format!("inpainting ({mask_name} mask, K = {})", a.steps);
    write_results(a, &set, &start, &after, &title)
}

fn run_denoise<B: Backend>(b: &B, args: &DenoiseArgs) -> Result<()> {
    let a = &args.common;
    let (mut net, set) = model_and_images(b, a)?;
    let mut noisy = set.data.clone();
    for (n, image) in noisy.chunks_mut(set.sample_len()).enumerate() {
        let mut z = vec![0.0; image.len()];
        rng::fill_normal(a.seed, n as u32, 1, Stream::Data, &mut z);
        image
            .iter_mut()
            .zip(z)
            .for_each(|(v, z)| *v = (*v + args.sigma * z).clamp(-1.0, 1.0));
    }
    let x = b.upload(&noisy)?;
    let after = restore(b, &mut net, a, x, set.len(), None)?;
    let mse = |y: &[f32]| {
        y.iter()
            .zip(&set.data)
            .map(|(a, b)| (a - b).powi(2))
            .sum::<f32>()
            / y.len() as f32
    };
    eprintln!(
        "mean squared error to the clean images: noisy {:.4}, denoised {:.4}",
        mse(&noisy),
        mse(&after)
    );
    let title = format!("denoising (sigma {}, K = {})", args.sigma, a.steps);
    write_results(a, &set, &noisy, &after, &title)
}

fn write_results(
    a: &RestoreArgs,
    set: &ImageSet,
    before: &[f32],
    after: &[f32],
    title: &str,
) -> Result<()> {
    let (c, h, w) = (set.channels, set.height, set.width);
    plot::image_pairs(&a.out, title, before, after, c, h, w, 8, 2)?;
    let mut file = TensorFile::new();
    file.insert("x", vec![set.len(), c, h, w], after.to_vec());
    file.insert("before", vec![set.len(), c, h, w], before.to_vec());
    let st = a.out.with_extension("safetensors");
    file.write(&st)?;
    eprintln!("wrote {} and {}", a.out.display(), st.display());
    Ok(())
}
