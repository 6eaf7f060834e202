//! Linear-layer kernels (forward, backward to the input, backward to the parameters) at the
//! reference shapes of docs/ARCHITECTURE.md, Reference workloads. Throughput in elem/s = FLOP/s (2·B·I·O per op).

mod common;

use common::{bench, tensor, Timed};
use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use ebm::backend::LinearShape;
use ebm::nn::LayerSpec;
use ebm::Spec;

/// toy2d's hidden layer (128→128 at B = 1024 chains), and anatomy32's head: its last conv
/// (512→1, k4 p0 on a 4×4 map) is a dense 8192→1 layer at B = 100.
fn shapes() -> Vec<(String, LinearShape)> {
    let toy = Spec::builtin("toy2d").expect("built-in spec");
    let hidden = toy
        .layers
        .iter()
        .find_map(|l| match l.op {
            LayerSpec::Linear { inputs, outputs } if inputs == outputs => Some((inputs, outputs)),
            _ => None,
        })
        .expect("toy2d has a hidden layer");
    let anatomy = Spec::builtin("anatomy32").expect("built-in spec");
    let shapes = anatomy.shapes().expect("valid spec");
    let last = anatomy.layers.len() - 1;
    let head = match anatomy.layers[last].op {
        LayerSpec::Conv2d {
            inputs,
            outputs,
            kernel,
            padding: 0,
            ..
        } if shapes[last][1..] == [kernel, kernel] => (inputs * kernel * kernel, outputs),
        ref other => panic!("anatomy32 ends in {other:?}, not a conv over the whole map"),
    };
    [
        ("toy2d_hidden", 1024, hidden),
        ("anatomy32_head", 100, head),
    ]
    .into_iter()
    .map(|(name, batch, (inputs, outputs))| {
        let s = LinearShape {
            batch,
            inputs,
            outputs,
        };
        (format!("{name}_{batch}x{inputs}x{outputs}"), s)
    })
    .collect()
}

fn on_device<D: Timed>(group: &mut BenchmarkGroup<'_, WallTime>, dev: &D) {
    for (name, s) in shapes() {
        let (n, i, o) = (s.batch, s.inputs, s.outputs);
        let flops = Throughput::Elements(2 * (n * i * o) as u64);
        let x = tensor(dev, n * i, 1);
        let w = tensor(dev, o * i, 2);
        let b = tensor(dev, o, 3);
        let dy = tensor(dev, n * o, 4);
        let mut y = tensor(dev, n * o, 5);
        let mut dx = tensor(dev, n * i, 6);
        let mut dw = tensor(dev, o * i, 7);
        let mut db = tensor(dev, o, 8);
        bench(group, dev, "forward", &name, flops.clone(), || {
            dev.linear_forward(s, &x, &w, &b, &mut y)
        });
        bench(group, dev, "backward_data", &name, flops.clone(), || {
            dev.linear_backward_data(s, &dy, &w, &mut dx)
        });
        bench(group, dev, "backward_params", &name, flops, || {
            dev.linear_backward_params(s, &dy, &x, &mut dw, &mut db)
        });
    }
}

fn linear(c: &mut Criterion) {
    let (cpu, gpu) = common::devices();
    let mut group = c.benchmark_group("linear");
    on_device(&mut group, &cpu);
    if let Some(gpu) = &gpu {
        on_device(&mut group, gpu);
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = linear
}
criterion_main!(benches);
