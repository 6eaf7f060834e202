//! Shared by the kernel benches (`benches/*.rs`): which devices to time, how to time an op
//! that the GPU backend only records, and the criterion defaults.
//!
//! Throughput: compute-bound kernels report `Throughput::Elements(flops)` (a multiply-add
//! counts 2), so criterion's "Gelem/s" reads as GFLOP/s; memory-bound ones report
//! `Throughput::Bytes` (the bytes a kernel must move, not what caches make of them).

use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput};
use ebm::backend::{Backend, CpuBackend, GpuBackend};

/// Ops recorded per GPU submission. One submit + wait costs tens of µs (≈45 µs on lavapipe),
/// as much as a small kernel, so ops are submitted in chunks without waiting and the timer
/// stops after one wait at the end: it measures throughput, not per-op latency.
const CHUNK: u64 = 16;

/// Modest defaults so `cargo bench` ends in minutes on two cores; command-line flags
/// (`--measurement-time`, `--sample-size`, `--quick`) still override them.
pub fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
}

/// A backend the benches can time: its label in bench ids, and a way to block until every
/// recorded op has run (a no-op on the CPU, which runs each op at once).
pub trait Timed: Backend {
    fn label(&self) -> &'static str;
    fn finish(&self);
}

impl Timed for CpuBackend {
    fn label(&self) -> &'static str {
        "cpu"
    }

    fn finish(&self) {}
}

impl Timed for GpuBackend {
    fn label(&self) -> &'static str {
        "gpu"
    }

    fn finish(&self) {
        self.wait().expect("GPU kernel failed");
    }
}

/// The CPU, and the GPU when there is one worth timing. `EBM_BENCH_GPU` picks: unset or
/// `hw` = hardware adapters only (lavapipe runs ~100× slower than a GPU, so its numbers mean
/// nothing), `any` = software adapters too (to smoke-test the GPU path), `off` = CPU only.
pub fn devices() -> (CpuBackend, Option<GpuBackend>) {
    let mode = std::env::var("EBM_BENCH_GPU").unwrap_or_default();
    let gpu = match mode.as_str() {
        "off" => None,
        "any" => open_gpu(true),
        "" | "hw" => open_gpu(false),
        other => panic!("EBM_BENCH_GPU={other}: expected hw (default), any or off"),
    };
    (CpuBackend::new(), gpu)
}

fn open_gpu(allow_software: bool) -> Option<GpuBackend> {
    match GpuBackend::new(allow_software) {
        Ok(gpu) => {
            let r = gpu.adapter_report();
            eprintln!(
                "GPU benches on {} [{}, {}]",
                r.name, r.backend, r.device_type
            );
            Some(gpu)
        }
        Err(e) => {
            eprintln!("no GPU benches ({e}); EBM_BENCH_GPU=any includes software adapters");
            None
        }
    }
}

/// Deterministic values in [−1, 1), not zeros: no all-zero input that could flatter a kernel.
pub fn values(len: usize, seed: u32) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9) | 1;
    (0..len)
        .map(|_| {
            // xorshift32
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state >> 8) as f32 / (1u32 << 23) as f32 - 1.0
        })
        .collect()
}

/// Upload [`values`] as a tensor.
pub fn tensor<D: Backend>(dev: &D, len: usize, seed: u32) -> D::Tensor {
    dev.upload(&values(len, seed)).expect("upload")
}

/// Time `op` on `dev` as `group/name/<device>/<shape>`. The first call (pipeline compilation,
/// first touch of the buffers) runs untimed, and only if the filter selects this bench.
pub fn bench<D: Timed>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    dev: &D,
    name: &str,
    shape: &str,
    throughput: Throughput,
    mut op: impl FnMut(),
) {
    let mut warm = false;
    group.throughput(throughput);
    group.bench_function(format!("{name}/{}/{shape}", dev.label()), |b| {
        if !warm {
            op();
            dev.finish();
            warm = true;
        }
        b.iter_custom(|iters| {
            let start = Instant::now();
            for i in 1..=iters {
                op();
                if i % CHUNK == 0 {
                    dev.flush().expect("GPU submission failed");
                }
            }
            dev.finish();
            start.elapsed()
        })
    });
}
