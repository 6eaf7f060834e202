//! Three ways to learn 8gaussians at equal wall time on this machine's CPU: a data-space
//! EBM by contrastive divergence (IGEBM: replay buffer, K = 20), cooperative learning (a
//! generator proposes, the energy revises by K = 20 Langevin steps) and the latent-space
//! EBM prior (Pang et al.: K₀ = 40 prior and K₁ = 20 posterior steps on z). Each trains for
//! SECONDS of wall time; then each draws 10 000 samples the way it samples — CD by 200
//! Langevin steps from uniform noise, coop by generator + its 20 revision steps, the latent
//! model by 40 prior steps on z and g(z) — scored by the same sample-based KL on the grid
//! of the density KL (`eval::kl::kl_data_samples`), with its floor (the data against more
//! data) beside them. Writes the four densities side by side.
//!
//!     cargo run --release --example families -- [SECONDS] [OUT.png]

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::time::Instant;

use ebm::data::{toy2d::RANGE, Toy2d, ToyData};
use ebm::eval::kl::kl_data_samples;
use ebm::nn::Net;
use ebm::plot::{densities_figure, points_density, Grid2d};
use ebm::sampler::{Langevin, LangevinConfig};
use ebm::train::coop::coop_samples;
use ebm::train::learner::{fit, Learner};
use ebm::train::{CoopConfig, CoopTrainer, LatentConfig, LatentTrainer, TrainConfig, Trainer};
use ebm::{CpuBackend, EnergyNet, Error, Result, Spec};

const SAMPLES: usize = 10_000;
const SEED: u64 = 0;

/// Train `run` until `seconds` of wall time have passed; the iterations and seconds taken.
fn train_for<L: Learner<CpuBackend>>(
    b: &CpuBackend,
    run: &mut L,
    seconds: f64,
) -> Result<(u64, f64)> {
    let mut data = ToyData {
        dataset: Toy2d::EightGaussians,
        seed: SEED,
    };
    let t0 = Instant::now();
    fit(run, b, &mut data, u64::MAX, |_, _| {
        Ok(if t0.elapsed().as_secs_f64() >= seconds {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        })
    })?;
    Ok((run.iteration(), t0.elapsed().as_secs_f64()))
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let seconds: f64 = match args.next() {
        Some(s) => s
            .parse()
            .map_err(|_| Error::Option(format!("seconds {s:?} is not a number")))?,
        None => 60.0,
    };
    let out = PathBuf::from(args.next().unwrap_or_else(|| "families.png".into()));
    let b = CpuBackend::new();
    let grid = Grid2d::new(64, RANGE);
    let data = Toy2d::EightGaussians.sample(SEED, u32::MAX, 200_000);
    let floor = kl_data_samples(&grid, &data, &Toy2d::EightGaussians.sample(9, 0, SAMPLES));
    println!(
        "8gaussians, {seconds} s of training each on {}; KL floor at {SAMPLES} samples {floor:.3}",
        ebm::Backend::name(&b)
    );
    println!(
        "{:<11} {:>6} {:>7} {:>10} {:>10}",
        "family", "iters", "it/s", "sample KL", "sampling s"
    );
    let mut panels = vec![(
        "data".to_string(),
        points_density(&Grid2d::new(128, RANGE), &data[..100_000]),
    )];
    let mut report = |name: &str, (iters, secs): (u64, f64), samples: Vec<f32>, sampling: f64| {
        let kl = kl_data_samples(&grid, &data, &samples);
        println!(
            "{name:<11} {iters:>6} {:>7.1} {kl:>10.3} {sampling:>10.2}",
            iters as f64 / secs
        );
        panels.push((
            format!("{name}: KL {kl:.3}"),
            points_density(&Grid2d::new(128, RANGE), &samples),
        ));
    };

    // CD: the toy demo's settings.
    let config = TrainConfig::toy2d(SEED);
    let langevin = config.langevin;
    let mut cd = Trainer::new(
        &b,
        EnergyNet::new(&b, &Spec::builtin("toy2d")?, SEED)?,
        config,
    )?;
    let trained = train_for(&b, &mut cd, seconds)?;
    let t = Instant::now();
    let sampler = Langevin {
        config: LangevinConfig {
            steps: 200,
            ..langevin
        },
        seed: 1,
    };
    let x = sampler.sample(&b, &mut cd.net, SAMPLES, 200, |_| ControlFlow::Continue(()))?;
    report("cd", trained, x.x, t.elapsed().as_secs_f64());

    // Cooperative learning.
    let mut config = TrainConfig::toy2d(SEED);
    config.buffer_size = config.batch;
    let energy = Trainer::new(
        &b,
        EnergyNet::new(&b, &Spec::builtin("toy2d")?, SEED)?,
        config,
    )?;
    let generator = Net::new(&b, &Spec::generator_mlp(2, 128, 2), SEED + 1)?;
    let mut coop = CoopTrainer::new(&b, energy, generator, CoopConfig::default())?;
    let trained = train_for(&b, &mut coop, seconds)?;
    let t = Instant::now();
    let revise = Langevin {
        config: coop.ebm.config.langevin,
        seed: 1,
    };
    let (_, revised) = coop_samples(
        &b,
        &mut coop.generator.net,
        &mut coop.ebm.net,
        Some(&revise),
        SAMPLES,
        1 << 20,
        1,
    )?;
    report(
        "coop",
        trained,
        revised.expect("revised"),
        t.elapsed().as_secs_f64(),
    );

    // The latent-space prior.
    let prior = EnergyNet::new(&b, &Spec::latent_prior(2, 128), SEED)?;
    let generator = Net::new(&b, &Spec::generator_mlp(2, 128, 2), SEED + 1)?;
    let mut latent = LatentTrainer::new(&b, prior, generator, LatentConfig::toy2d(SEED))?;
    let trained = train_for(&b, &mut latent, seconds)?;
    let t = Instant::now();
    let (_, x) = latent.sample(&b, SAMPLES, 1 << 20)?;
    report("latent-ebm", trained, x, t.elapsed().as_secs_f64());

    let panels: Vec<(&str, Vec<f32>)> = panels
        .iter()
        .map(|(n, d)| (n.as_str(), d.clone()))
        .collect();
    let title = format!("8gaussians after {seconds} s of training each (CPU): 10 000 samples");
    let footer =
        format!("sample KL(data||samples) on a 64x64 grid; floor {floor:.3} (data vs data)");
    densities_figure(&out, &title, &Grid2d::new(128, RANGE), &panels, &footer)?;
    println!("wrote {}", out.display());
    Ok(())
}
