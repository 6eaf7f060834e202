//! The fused Langevin update (clip, step, Philox noise, clamp) on anatomy32's chains
//! (100 × 3·32·32) and toy2d's (1024 × 2). Memory-bound: throughput in bytes moved, 12 per
//! element (read x and the gradient, write x; the noise is generated, not read).
//!
//! And the whole fused MLP chain (`mlp_langevin_chain`: K = 20 steps of the toy2d MLP on
//! 1024 chains, forward + backward to the input per step), in FLOP/s: 2 × the forward FLOPs
//! per chain-step, as `ebm bench` counts them.

mod common;

use common::{bench, tensor, Timed};
use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use ebm::sampler::{LangevinUpdate, MlpChain};
use ebm::{EnergyNet, Spec};

fn on_device<D: Timed>(group: &mut BenchmarkGroup<'_, WallTime>, dev: &D) {
    for (name, rows, dim) in [("anatomy32", 100, 3 * 32 * 32), ("toy2d", 1024, 2)] {
        let len = rows * dim;
        let mut x = tensor(dev, len, 1);
        let grad = tensor(dev, len, 2);
        // toy2d's training settings (src/train/cd.rs); `global_step` advances as in a chain,
        // so every call draws fresh noise.
        let mut u = LangevinUpdate {
            rows,
            dim,
            step: 0.02,
            noise: 0.2,
            grad_clip: None,
            lo: -1.0,
            hi: 1.0,
            seed: 0,
            global_step: 0,
            chain_offset: 0,
        };
        let bytes = Throughput::Bytes(12 * len as u64);
        bench(
            group,
            dev,
            "update",
            &format!("{name}_{rows}x{dim}"),
            bytes,
            || {
                u.run(dev, &mut x, &grad);
                u.global_step = u.global_step.wrapping_add(1);
            },
        );
    }
}

fn mlp_chain_on_device<D: Timed>(group: &mut BenchmarkGroup<'_, WallTime>, dev: &D) {
    let spec = Spec::builtin("toy2d").expect("toy2d");
    let net = EnergyNet::new(dev, &spec, 0).expect("net");
    let (widths, activations) = net.mlp_layout().expect("toy2d is an MLP");
    let (rows, steps) = (1024, 20);
    let mut x = tensor(dev, rows * widths[0], 3);
    let mut chain = MlpChain {
        widths,
        activations,
        update: LangevinUpdate {
            rows,
            dim: 2,
            step: 0.01,
            noise: 0.005,
            grad_clip: None,
            lo: -1.0,
            hi: 1.0,
            seed: 0,
            global_step: 0,
            chain_offset: 0,
        },
        steps,
    };
    if !dev.supports(&chain) {
        return;
    }
    let flops = 2 * spec.forward_flops().expect("flops") * (rows * steps) as u64;
    let params = net.param_values();
    bench(
        group,
        dev,
        "mlp_chain",
        &format!("toy2d_{rows}x2_K{steps}"),
        Throughput::Elements(flops),
        || {
            chain.run(dev, &params, &mut x);
            chain.update.global_step = chain.update.global_step.wrapping_add(steps as u32);
        },
    );
}

fn langevin(c: &mut Criterion) {
    let (cpu, gpu) = common::devices();
    let mut group = c.benchmark_group("langevin");
    on_device(&mut group, &cpu);
    mlp_chain_on_device(&mut group, &cpu);
    if let Some(gpu) = &gpu {
        on_device(&mut group, gpu);
        mlp_chain_on_device(&mut group, gpu);
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = langevin
}
criterion_main!(benches);
