//! One Adam step over as many values as anatomy32 has parameters (n_f = 64, ≈2.76 M), as a
//! single tensor. Memory-bound: throughput in bytes moved, 28 per value (read the parameter,
//! gradient and both moments, write the parameter and both moments).

mod common;

use common::{bench, tensor, Timed};
use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use ebm::nn::LayerSpec;
use ebm::train::AdamUpdate;
use ebm::Spec;

/// Weights and biases of every layer of anatomy32.
fn parameter_count() -> usize {
    Spec::builtin("anatomy32")
        .expect("built-in spec")
        .layers
        .iter()
        .map(|l| match l.op {
            LayerSpec::Linear { inputs, outputs } => outputs * inputs + outputs,
            LayerSpec::Conv2d {
                inputs,
                outputs,
                kernel,
                ..
            } => outputs * inputs * kernel * kernel + outputs,
            _ => 0,
        })
        .sum()
}

fn on_device<D: Timed>(group: &mut BenchmarkGroup<'_, WallTime>, dev: &D) {
    let n = parameter_count();
    let mut param = tensor(dev, n, 1);
    let grad = tensor(dev, n, 2);
    let mut m = dev.zeros(n).expect("zeros");
    let mut v = dev.zeros(n).expect("zeros");
    let norms = dev.zeros(1).expect("zeros");
    // AdamConfig's defaults (src/train/adam.rs: no clipping) at step t = 10; the values do not
    // change the speed.
    let (beta1, beta2) = (0.9f32, 0.999f32);
    let u = AdamUpdate {
        lr: 1e-3,
        beta1,
        beta2,
        eps: 1e-8,
        bias_correction1: 1.0 - beta1.powi(10),
        bias_correction2: 1.0 - beta2.powi(10),
        max_grad_norm: None,
        norm_slots: 0,
    };
    let bytes = Throughput::Bytes(28 * n as u64);
    bench(
        group,
        dev,
        "update",
        &format!("anatomy32_{n}"),
        bytes,
        || u.run(dev, &mut param, &grad, &mut m, &mut v, &norms),
    );
}

fn adam(c: &mut Criterion) {
    let (cpu, gpu) = common::devices();
    let mut group = c.benchmark_group("adam");
    on_device(&mut group, &cpu);
    if let Some(gpu) = &gpu {
        on_device(&mut group, gpu);
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = adam
}
criterion_main!(benches);
