//! The recording model (docs/ARCHITECTURE.md) on a real model: the K Langevin steps of a chain batch are one submission
//! with no readback between steps (layer by layer: every step's kernels recorded back to
//! back; fused: one dispatch), and a training iteration is one submission with no readback at
//! all. Proven with the GPU backend's submission, readback and dispatch counters.

#[path = "common/gpu.rs"]
mod gpu_common;

use ebm::backend::Backend;
use ebm::data::{toy2d, DataSource, Toy2d, ToyData};
use ebm::sampler::{Langevin, LangevinConfig};
use ebm::train::{AdamConfig, TrainConfig, Trainer};
use ebm::{EnergyNet, Spec};

fn langevin(steps: usize) -> LangevinConfig {
    LangevinConfig {
        steps,
        step_size: 0.02,
        noise: 0.2,
        grad_clip: Some(1.0),
        lo: -toy2d::RANGE,
        hi: toy2d::RANGE,
    }
}

#[test]
fn k_langevin_steps_are_one_submission() {
    let Some(turn) = gpu_common::gpu() else {
        return;
    };
    let gpu: &ebm::GpuBackend = &turn;
    let mut net = EnergyNet::new(gpu, &Spec::mlp(2, 16, 2), 0).unwrap();
    let mut x = gpu.upload(&vec![0.5; 2 * 33]).unwrap();
    gpu.flush().unwrap();
    let before = gpu.counters();
    let sampler = Langevin {
        config: langevin(25),
        seed: 3,
    };
    sampler.run_unfused(gpu, &mut net, &mut x, 33, 0).unwrap();
    let recorded = gpu.counters();
    assert_eq!(
        recorded.submissions, before.submissions,
        "no submission while recording 25 steps"
    );
    assert_eq!(
        recorded.readbacks, before.readbacks,
        "no readback between steps"
    );
    assert!(
        recorded.dispatches - before.dispatches >= 25 * 5,
        "every step's kernels were recorded"
    );
    let samples = gpu.read(&x).unwrap();
    let after = gpu.counters();
    assert_eq!(
        after.submissions,
        before.submissions + 1,
        "one submission for the whole chain"
    );
    assert_eq!(after.readbacks, before.readbacks + 1);
    assert!(samples.iter().all(|v| v.is_finite()));

    // The fused chain (what `run` does for an MLP): one dispatch for all 25 steps.
    sampler.run(gpu, &mut net, &mut x, 33, 25).unwrap();
    let fused = gpu.counters();
    assert_eq!(fused.dispatches, after.dispatches + 1, "one fused dispatch");
    assert_eq!(fused.submissions, after.submissions, "still recording");
    let fused_samples = gpu.read(&x).unwrap();
    assert_eq!(gpu.counters().submissions, after.submissions + 1);
    assert!(fused_samples.iter().all(|v| v.is_finite()));
}

#[test]
fn a_training_iteration_is_one_submission_and_no_readback() {
    let Some(turn) = gpu_common::gpu() else {
        return;
    };
    let gpu: &ebm::GpuBackend = &turn;
    let config = TrainConfig {
        batch: 16,
        langevin: langevin(5),
        alpha: 0.1,
        adam: AdamConfig {
            max_grad_norm: Some(1.0),
            ..AdamConfig::default()
        },
        buffer_size: 64,
        reinit_prob: 0.05,
        seed: 0,
        objective: ebm::train::Objective::Cd,
        sampler: ebm::sampler::Method::Ula,
        adapt: None,
    };
    let net = EnergyNet::new(gpu, &Spec::mlp(2, 16, 2), 0).unwrap();
    let mut trainer = Trainer::new(gpu, net, config).unwrap();
    let mut data = ToyData {
        dataset: Toy2d::Moons,
        seed: 0,
    };
    let batches: Vec<Vec<f32>> = (0..4).map(|t| data.batch(t, 16).unwrap()).collect();
    trainer.step(gpu, &batches[0]).unwrap(); // first use builds pipelines and workspaces
    let before = gpu.counters();
    for batch in &batches[1..] {
        trainer.step(gpu, batch).unwrap();
    }
    let after = gpu.counters();
    assert_eq!(
        after.submissions - before.submissions,
        3,
        "one submission per iteration"
    );
    assert_eq!(
        after.readbacks, before.readbacks,
        "no readback unless stats are asked for"
    );
    trainer.stats(gpu).unwrap();
    assert_eq!(gpu.counters().readbacks, before.readbacks + 1);
}
