//! The engine inside another program, without the CLI: open a device, load a model file,
//! sample with a progress callback (and a deadline that cancels), score, and continue training
//! on the program's own data through the `DataSource` trait, stopping early from a callback.
//!
//!     cargo run --release --example embed -- [model.safetensors]
//!
//! Without a model file it first trains a small 8gaussians model (a few seconds) and saves it
//! to runs/embed/model.safetensors, so the example runs on a fresh clone.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ebm::backend::{choose_backend, Backend, DeviceChoice};
use ebm::data::{DataSource, Toy2d, ToyData};
use ebm::rng::{self, Stream};
use ebm::sampler::{Langevin, LangevinConfig};
use ebm::train::checkpoint::{load_model, save_model};
use ebm::train::{TrainConfig, Trainer};
use ebm::{with_backend, EnergyNet, Result, Spec};

/// The program's own data: points on a ring of radius 2 with a little noise. Any type that
/// can hand out batches works; batch `iteration` must always be the same batch, so that a
/// resumed run sees the data an uninterrupted one would.
struct Ring {
    seed: u64,
}

impl DataSource for Ring {
    fn sample_len(&self) -> usize {
        2
    }

    fn batch(&mut self, iteration: u64, n: usize) -> Result<Vec<f32>> {
        let mut u = vec![0.0; 2 * n];
        rng::fill_uniform(
            self.seed,
            iteration as u32,
            0,
            Stream::Data,
            0.0,
            1.0,
            &mut u,
        );
        Ok(u.chunks(2)
            .flat_map(|p| {
                let angle = std::f32::consts::TAU * p[0];
                let radius = 2.0 + 0.1 * (p[1] - 0.5);
                [radius * angle.cos(), radius * angle.sin()]
            })
            .collect())
    }
}

fn main() -> Result<()> {
    let model = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("runs/embed/model.safetensors"));
    // A hardware GPU if there is one, else the CPU (the notice says so).
    let backend = choose_backend(DeviceChoice::Auto, |notice| eprintln!("{notice}"))?;
    with_backend!(backend, |b| run(&b, &model))
}

fn run<B: Backend>(b: &B, model: &Path) -> Result<()> {
    println!("device: {}", b.name());
    if !model.exists() {
        println!("no model at {}: training a small one", model.display());
        train_first_model(b, model)?;
    }

    // Load: our model files and PyTorch state_dicts saved with safetensors alike.
    let mut net = load_model(b, model, None)?;
    println!("loaded {} ({} inputs)", model.display(), net.input_len());

    // Sample 2000 chains for 200 steps, reporting every 20 steps; give up after 30 s.
    let sampler = Langevin {
        config: LangevinConfig {
            steps: 200,
            step_size: 0.02,
            noise: 0.2,
            grad_clip: None,
            lo: -4.0,
            hi: 4.0,
        },
        seed: 1,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let samples = sampler.sample(b, &mut net, 2000, 20, |p| {
        println!("  sampling: step {}/{}", p.steps_done, p.steps_total);
        if Instant::now() > deadline {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })?;
    println!(
        "{} samples after {} steps; the first: ({:.3}, {:.3})",
        samples.rows, samples.steps_run, samples.x[0], samples.x[1]
    );

    // Score: the samples should sit lower in energy than uniform noise does.
    let noise = sampler.noise(2000, 2);
    let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
    let e_samples = net.energies(b, &samples.x)?;
    let e_noise = net.energies(b, &noise)?;
    println!(
        "mean energy: samples {:+.3}, uniform noise {:+.3}",
        mean(&e_samples),
        mean(&e_noise)
    );

    // Continue training the loaded model on the program's own data, stopping early once
    // the loss has settled.
    let mut config = TrainConfig::toy2d(2);
    config.batch = 128;
    let mut trainer = Trainer::new(b, net, config)?;
    let mut last_loss = f32::INFINITY;
    let ran = trainer.fit(b, &mut Ring { seed: 3 }, 2000, |t, b| {
        if t.iteration % 100 != 0 {
            return Ok(ControlFlow::Continue(()));
        }
        let stats = t.stats(b)?;
        println!(
            "  iteration {}: loss {:+.4}  E(data) {:+.3}  E(samples) {:+.3}",
            t.iteration, stats.loss, stats.e_pos, stats.e_neg
        );
        let settled = t.iteration >= 600 && (stats.loss - last_loss).abs() < 0.01;
        last_loss = stats.loss;
        Ok(if settled {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        })
    })?;
    let on_ring = trainer.net.energies(b, &Ring { seed: 9 }.batch(0, 500)?)?;
    let centre = trainer.net.energies(b, &[0.0, 0.0])?;
    println!(
        "after {ran} iterations on the ring: mean E on the ring {:+.3}, E at the centre {:+.3}",
        mean(&on_ring),
        centre[0]
    );
    let out = model.with_file_name("model-ring.safetensors");
    save_model(b, &trainer.net, &out)?;
    println!("wrote {}", out.display());
    Ok(())
}

fn train_first_model<B: Backend>(b: &B, path: &Path) -> Result<()> {
    let config = TrainConfig::toy2d(0);
    let net = EnergyNet::new(b, &Spec::builtin("toy2d")?, config.seed)?;
    let mut trainer = Trainer::new(b, net, config)?;
    let mut data = ToyData {
        dataset: Toy2d::EightGaussians,
        seed: 0,
    };
    trainer.fit(b, &mut data, 500, |_, _| Ok(ControlFlow::Continue(())))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| ebm::Error::io(dir, e))?;
    }
    save_model(b, &trainer.net, path)
}
