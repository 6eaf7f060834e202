//! The library API an embedding program uses (examples/embed.rs): sampling with a progress
//! callback and cancellation, training step by step through `Trainer::fit` with the program's
//! own `DataSource` and an early stop, model files in and out, results as plain slices.

#[path = "common/gpu.rs"]
mod gpu_common;
#[path = "common/tempdir.rs"]
mod tempdir;

use std::ops::ControlFlow;

use ebm::backend::Backend;
use ebm::data::DataSource;
use ebm::sampler::{Langevin, LangevinConfig};
use ebm::train::checkpoint::{load_model, save_model};
use ebm::train::{TrainConfig, Trainer};
use ebm::{CpuBackend, EnergyNet, Error, Result, Spec};
use tempdir::TempDir;

fn sampler(steps: usize) -> Langevin {
    Langevin {
        config: LangevinConfig {
            steps,
            step_size: 0.02,
            noise: 0.2,
            grad_clip: None,
            lo: -4.0,
            hi: 4.0,
        },
        seed: 11,
    }
}

/// Chunked for progress reports, the chains are exactly those of one uninterrupted run; the
/// callback sees every chunk; a Break stops at the end of that chunk.
fn progress_and_cancel<B: Backend>(b: &B, spec: &Spec) {
    let mut net = EnergyNet::new(b, spec, 0).unwrap();
    let s = sampler(30);
    let mut seen = Vec::new();
    let chunked = s
        .sample(b, &mut net, 40, 7, |p| {
            seen.push((p.steps_done, p.steps_total));
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(seen, [(7, 30), (14, 30), (21, 30), (28, 30), (30, 30)]);
    assert_eq!((chunked.rows, chunked.steps_run), (40, 30));

    let mut x = b.upload(&s.noise(40, spec.input_len())).unwrap();
    s.run(b, &mut net, &mut x, 40, 0).unwrap();
    assert_eq!(
        chunked.x,
        b.read(&x).unwrap(),
        "chunking changed the chains"
    );

    let cancelled = s
        .sample(b, &mut net, 40, 7, |p| {
            if p.steps_done >= 10 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .unwrap();
    assert_eq!(cancelled.steps_run, 14);
    let mut x = b.upload(&s.noise(40, spec.input_len())).unwrap();
    sampler(14).run(b, &mut net, &mut x, 40, 0).unwrap();
    assert_eq!(
        cancelled.x,
        b.read(&x).unwrap(),
        "a cancelled run holds its steps so far"
    );
}

#[test]
fn sampling_progress_and_cancel_cpu() {
    let cpu = CpuBackend::new();
    progress_and_cancel(&cpu, &Spec::builtin("toy2d").unwrap());
    // A ConvNet goes layer by layer: the same contract.
    let conv = Spec::from_json(
        r#"{"input": [1, 6, 6], "layers": [
            {"type": "conv2d", "in": 1, "out": 3, "kernel": 3, "stride": 1, "padding": 1},
            {"type": "silu"}, {"type": "flatten"},
            {"type": "linear", "in": 108, "out": 1}]}"#,
    )
    .unwrap();
    progress_and_cancel(&cpu, &conv);
}

#[test]
fn sampling_progress_and_cancel_gpu() {
    let Some(gpu) = gpu_common::gpu() else { return };
    progress_and_cancel(&*gpu, &Spec::builtin("toy2d").unwrap());
}

/// The program's own data: a fixed point per iteration, [iteration mod 3, 1].
struct Counting {
    calls: Vec<u64>,
}

impl DataSource for Counting {
    fn sample_len(&self) -> usize {
        2
    }

    fn batch(&mut self, iteration: u64, n: usize) -> Result<Vec<f32>> {
        self.calls.push(iteration);
        Ok([(iteration % 3) as f32, 1.0].repeat(n))
    }
}

fn small_trainer(b: &CpuBackend) -> Trainer<CpuBackend> {
    let mut config = TrainConfig::toy2d(0);
    config.batch = 16;
    config.buffer_size = 64;
    config.langevin.steps = 5;
    let net = EnergyNet::new(b, &Spec::mlp(2, 16, 2), 0).unwrap();
    Trainer::new(b, net, config).unwrap()
}

#[test]
fn fit_feeds_own_data_and_stops_early() {
    let b = CpuBackend::new();
    let mut trainer = small_trainer(&b);
    let mut data = Counting { calls: vec![] };
    let mut losses = Vec::new();
    let ran = trainer
        .fit(&b, &mut data, 100, |t, b| {
            losses.push(t.stats(b)?.loss);
            Ok(if t.iteration == 12 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            })
        })
        .unwrap();
    assert_eq!(ran, 12);
    assert_eq!(trainer.iteration, 12);
    assert_eq!(data.calls, (0..12).collect::<Vec<_>>());
    assert_eq!(losses.len(), 12);
    assert!(losses.iter().all(|l| l.is_finite()));

    // A second fit continues where the first stopped.
    trainer
        .fit(&b, &mut data, 3, |_, _| Ok(ControlFlow::Continue(())))
        .unwrap();
    assert_eq!(data.calls[12..], [12, 13, 14]);

    // An error from the callback stops the run and comes back.
    let err = trainer
        .fit(&b, &mut data, 5, |_, _| {
            Err(Error::Option("the app said stop".into()))
        })
        .unwrap_err();
    assert!(err.to_string().contains("the app said stop"), "{err}");
}

#[test]
fn fit_refuses_data_of_the_wrong_shape() {
    struct ThreeD;
    impl DataSource for ThreeD {
        fn sample_len(&self) -> usize {
            3
        }
        fn batch(&mut self, _: u64, n: usize) -> Result<Vec<f32>> {
            Ok(vec![0.0; 3 * n])
        }
    }
    let b = CpuBackend::new();
    let err = small_trainer(&b)
        .fit(&b, &mut ThreeD, 1, |_, _| Ok(ControlFlow::Continue(())))
        .unwrap_err();
    assert!(err.to_string().contains("3 values"), "{err}");
}

/// A model trained through the API, saved, loaded back: the same energies, as plain slices.
#[test]
fn model_file_round_trip() {
    let b = CpuBackend::new();
    let mut trainer = small_trainer(&b);
    trainer
        .fit(&b, &mut Counting { calls: vec![] }, 5, |_, _| {
            Ok(ControlFlow::Continue(()))
        })
        .unwrap();
    let dir = TempDir::new("embed");
    let path = dir.join("model.safetensors");
    save_model(&b, &trainer.net, &path).unwrap();
    let mut loaded = load_model(&b, &path, None).unwrap();
    let x = [0.5, -1.0, 2.0, 0.25];
    let want = trainer.net.energies(&b, &x).unwrap();
    let got: Vec<f32> = loaded.energies(&b, &x).unwrap();
    assert_eq!(got, want);
}
