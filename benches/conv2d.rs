//! Conv2d kernels (forward, backward to the input, backward to the weights) at every conv
//! layer of anatomy32 (n_f = 64, B = 100 chains; docs/ARCHITECTURE.md, Reference workloads). Throughput in elem/s =
//! FLOP/s: 2·B·O·H'·W'·C·k² per op, the same count for all three.

mod common;

use common::{bench, tensor, Timed};
use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, Criterion, SamplingMode, Throughput,
};
use ebm::backend::Conv2dShape;
use ebm::nn::LayerSpec;
use ebm::Spec;

const BATCH: usize = 100;

/// Each conv layer of `Spec::convnet(3, 64)` with the input shape the spec gives it, so the
/// benches follow the spec if it changes.
fn shapes() -> Vec<(String, Conv2dShape)> {
    let spec = Spec::convnet(3, 64);
    let inputs = spec.shapes().expect("valid spec");
    spec.layers
        .iter()
        .zip(&inputs)
        .enumerate()
        .filter_map(|(i, (layer, input))| match layer.op {
            LayerSpec::Conv2d {
                inputs: c,
                outputs: o,
                kernel,
                stride,
                padding,
            } => {
                let s = Conv2dShape {
                    batch: BATCH,
                    in_channels: c,
                    out_channels: o,
                    height: input[1],
                    width: input[2],
                    kernel,
                    stride,
                    padding,
                };
                let name = format!(
                    "layer{i}_{c}x{}x{}_to_{o}x{}x{}_k{kernel}s{stride}p{padding}",
                    s.height,
                    s.width,
                    s.out_height(),
                    s.out_width()
                );
                Some((name, s))
            }
            _ => None,
        })
        .collect()
}

fn on_device<D: Timed>(group: &mut BenchmarkGroup<'_, WallTime>, dev: &D) {
    for (name, s) in shapes() {
        let (n, c, o, k) = (s.batch, s.in_channels, s.out_channels, s.kernel);
        let flops = 2 * (n * s.out_len() * c * k * k) as u64;
        let flops = Throughput::Elements(flops);
        let x = tensor(dev, n * s.in_len(), 1);
        let w = tensor(dev, o * c * k * k, 2);
        let b = tensor(dev, o, 3);
        let dy = tensor(dev, n * s.out_len(), 4);
        let mut y = tensor(dev, n * s.out_len(), 5);
        let mut dx = tensor(dev, n * s.in_len(), 6);
        let mut dw = tensor(dev, o * c * k * k, 7);
        let mut db = tensor(dev, o, 8);
        bench(group, dev, "forward", &name, flops.clone(), || {
            dev.conv2d_forward(s, &x, &w, &b, &mut y)
        });
        bench(group, dev, "backward_data", &name, flops.clone(), || {
            dev.conv2d_backward_data(s, &dy, &w, &mut dx)
        });
        bench(group, dev, "backward_params", &name, flops, || {
            dev.conv2d_backward_params(s, &dy, &x, &mut dw, &mut db)
        });
    }
}

fn conv2d(c: &mut Criterion) {
    let (cpu, gpu) = common::devices();
    let mut group = c.benchmark_group("conv2d");
    // An op takes up to ~0.1 s on two cores: the same iteration count per sample fits ten
    // samples into the measurement time, where criterion's linear ramp would not.
    group.sampling_mode(SamplingMode::Flat);
    on_device(&mut group, &cpu);
    if let Some(gpu) = &gpu {
        on_device(&mut group, gpu);
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = conv2d
}
criterion_main!(benches);
