//! The fused Langevin update (clip, step, Philox noise, clamp) on anatomy32's chains
//! (100 × 3·32·32) and toy2d's (1024 × 2). Memory-bound: throughput in bytes moved, 12 per
//! element (read x and the gradient, write x; the noise is generated, not read).

mod common;

use common::{bench, tensor, Timed};
use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use ebm::backend::LangevinUpdate;

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
                dev.langevin_update(&u, &mut x, &grad);
                u.global_step = u.global_step.wrapping_add(1);
            },
        );
    }
}

fn langevin(c: &mut Criterion) {
    let (cpu, gpu) = common::devices();
    let mut group = c.benchmark_group("langevin");
    on_device(&mut group, &cpu);
    if let Some(gpu) = &gpu {
        on_device(&mut group, gpu);
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = langevin
}
criterion_main!(benches);
