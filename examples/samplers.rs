//! ULA, MALA and HMC at one step size on a trained 2D model, against the model's own
//! density exp(−E)/Z (normalised on a grid): the picture in the README's sampler guide, and
//! the bias of each sampler as KL(chains ‖ model) on the grid.
//!
//!     cargo run --release -- train toy2d --dataset 8gaussians      # the demo model, first
//!     cargo run --release --example samplers -- [MODEL] [STEP] [OUT.png]
//!
//! All samplers target T = 1: ULA steps x − ε∇E + √(2ε)ξ (clamped to the box), MALA
//! proposes the same step and accepts it by Metropolis–Hastings, HMC runs trajectories of 5
//! leapfrog steps of ε. 10 000 chains start from uniform noise and run 500 steps (100
//! trajectories for HMC).

use std::path::PathBuf;

use ebm::data::toy2d::RANGE;
use ebm::nn::io::load_model;
use ebm::plot::{density_from_energy, histogram_density, sampler_comparison_figure, Grid2d};
use ebm::sampler::{ExactChains, ExactConfig, Hmc, Langevin, LangevinConfig, Mala};
use ebm::{Backend, CpuBackend, EnergyNet, Error, Result};

const CHAINS: usize = 10_000;
const STEPS: usize = 500;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let model = PathBuf::from(
        args.next()
            .unwrap_or_else(|| "runs/toy2d-8gaussians/model.safetensors".into()),
    );
    let step: f32 = match args.next() {
        Some(s) => s
            .parse()
            .map_err(|_| Error::Option(format!("step {s:?} is not a number")))?,
        None => 0.1,
    };
    let out = PathBuf::from(args.next().unwrap_or_else(|| "samplers.png".into()));
    let b = CpuBackend::new();
    let mut net = load_model(&b, &model, None)?;
    if net.input_len() != 2 {
        return Err(Error::Shape(format!(
            "{} is not a 2D model (it takes {} values)",
            model.display(),
            net.input_len()
        )));
    }
    let grid = Grid2d::new(128, RANGE);
    let energy = net.energies(&b, &grid.points())?;
    let ula = Langevin {
        config: LangevinConfig {
            steps: STEPS,
            step_size: step,
            noise: (2.0 * step).sqrt(),
            grad_clip: None,
            lo: -RANGE,
            hi: RANGE,
        },
        seed: 0,
    };
    let start = ula.noise(CHAINS, 2);
    let t = std::time::Instant::now();
    let mut x = b.upload(&start)?;
    ula.run(&b, &mut net, &mut x, CHAINS, 0)?;
    let ula_x = b.read(&x)?;
    let ula_secs = t.elapsed().as_secs_f64();
    let config = ExactConfig {
        steps: STEPS,
        step_size: step,
        temperature: 1.0,
        lo: -RANGE,
        hi: RANGE,
    };
    let (mala_x, mala_rate, mala_secs) = exact(&b, &mut net, &start, |b, net, chains| {
        Mala { config, seed: 0 }.run(b, net, chains, 0)
    })?;
    let hmc = Hmc {
        config: ExactConfig {
            steps: STEPS / 5,
            ..config
        },
        leapfrog: 5,
        seed: 0,
    };
    let (hmc_x, hmc_rate, hmc_secs) = exact(&b, &mut net, &start, |b, net, chains| {
        hmc.run(b, net, chains, 0)
    })?;
    // KL on a coarser grid than the picture's, so that the histogram's own noise (about
    // occupied cells / (2·chains)) stays near 0.05 nats.
    let coarse = Grid2d::new(40, RANGE);
    let coarse_density =
        density_from_energy(&net.energies(&b, &coarse.points())?, coarse.cell_area());
    let kl = |x: &[f32]| kl_to_model(&coarse, x, &coarse_density);
    println!(
        "step ε = {step}, {CHAINS} chains from uniform noise, on {}",
        b.name()
    );
    println!("sampler  KL(chains ‖ model)  acceptance  seconds");
    println!(
        "ULA      {:>17.4}  {:>10}  {ula_secs:>7.2}",
        kl(&ula_x),
        "-"
    );
    println!(
        "MALA     {:>17.4}  {:>9.1}%  {mala_secs:>7.2}",
        kl(&mala_x),
        100.0 * mala_rate
    );
    println!(
        "HMC L=5  {:>17.4}  {:>9.1}%  {hmc_secs:>7.2}",
        kl(&hmc_x),
        100.0 * hmc_rate
    );
    let footer = format!(
        "step {step}; KL(chains || model): ULA {:.3}, MALA {:.3}, HMC {:.3}",
        kl(&ula_x),
        kl(&mala_x),
        kl(&hmc_x)
    );
    let samples = [
        ("ULA, 500 steps", &ula_x[..]),
        ("MALA, 500 steps", &mala_x[..]),
        ("HMC, 100 x L=5", &hmc_x[..]),
    ];
    let title = format!("samplers at step {step} against the model's density");
    sampler_comparison_figure(&out, &title, &grid, &energy, &samples, &footer)?;
    eprintln!("wrote {}", out.display());
    Ok(())
}

/// Run an exact sampler from `start`: the chains, the acceptance rate and the seconds.
fn exact(
    b: &CpuBackend,
    net: &mut EnergyNet<CpuBackend>,
    start: &[f32],
    run: impl FnOnce(
        &CpuBackend,
        &mut EnergyNet<CpuBackend>,
        &mut ExactChains<CpuBackend>,
    ) -> Result<()>,
) -> Result<(Vec<f32>, f64, f64)> {
    let t = std::time::Instant::now();
    let mut chains = ExactChains::new(b, b.upload(start)?, CHAINS, 2)?;
    run(b, net, &mut chains)?;
    let x = b.read(chains.x())?;
    Ok((x, chains.acceptance(b)?.rate, t.elapsed().as_secs_f64()))
}

/// KL(histogram of `x` ‖ model density) on the grid, in nats: how far the chains are from
/// the distribution they should sample (the model density is positive everywhere, so this
/// is finite; it includes the histogram's own noise, ≈ occupied cells/(2·chains) for a
/// perfect sampler).
fn kl_to_model(grid: &Grid2d, x: &[f32], density: &[f32]) -> f64 {
    let h = histogram_density(grid, x);
    let area = grid.cell_area() as f64;
    h.iter()
        .zip(density)
        .filter(|(&h, _)| h > 0.0)
        .map(|(&h, &p)| h as f64 * area * (h as f64 / (p as f64).max(1e-30)).ln())
        .sum()
}
