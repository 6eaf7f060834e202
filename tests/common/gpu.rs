//! Shared by the GPU test files: open the backend (software adapters allowed), move data to
//! and from it, and compare results by relative error in the 2-norm.

#![allow(dead_code)]

use std::sync::{Mutex, MutexGuard, PoisonError};

use ebm::backend::gpu::{GpuOptions, GpuTensor};
use ebm::backend::{Backend, GpuBackend};
use rand::rngs::StdRng;
use rand::RngExt;

/// Several devices in one process, driven from parallel test threads, hung the NVIDIA driver
/// now and then (an H100, 4 runs in 12); so GPU tests take turns, one device at a time.
static GPU_TURN: Mutex<()> = Mutex::new(());

/// A GPU backend for one test, holding the process's GPU turn until it is dropped.
pub struct GpuTest {
    // Field order matters: the device goes before the turn is handed on.
    backend: GpuBackend,
    _turn: MutexGuard<'static, ()>,
}

impl std::ops::Deref for GpuTest {
    type Target = GpuBackend;
    fn deref(&self) -> &GpuBackend {
        &self.backend
    }
}

/// The process's GPU turn alone, for a test that opens devices itself (`choose_backend`) or
/// runs the CLI on one.
pub fn gpu_turn() -> MutexGuard<'static, ()> {
    GPU_TURN.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The GPU backend on any adapter, lavapipe included, with the exact f32 kernels whatever
/// `EBM_TENSOR_CORES` says. With no adapter at all the test fails when `CI` is set (CI must
/// run the kernels) and is skipped with a message otherwise.
pub fn gpu() -> Option<GpuTest> {
    gpu_with(GpuOptions::default())
}

/// [`gpu`] opened with `options` (e.g. tensor cores asked for).
pub fn gpu_with(options: GpuOptions) -> Option<GpuTest> {
    let turn = GPU_TURN.lock().unwrap_or_else(PoisonError::into_inner);
    match GpuBackend::with_options(true, options) {
        Ok(backend) => Some(GpuTest {
            backend,
            _turn: turn,
        }),
        Err(e) if std::env::var_os("CI").is_some() => {
            panic!("CI is set but the GPU backend cannot open an adapter: {e}")
        }
        Err(e) => {
            eprintln!("skipping GPU test: {e}");
            None
        }
    }
}

/// Open the backend or return from the test (see [`gpu`]).
#[macro_export]
macro_rules! gpu_or_skip {
    () => {
        match $crate::gpu_common::gpu() {
            Some(b) => b,
            None => return,
        }
    };
}

/// ‖got − want‖₂ / ‖want‖₂, in f64; the absolute 2-norm of the difference when `want` is 0.
/// Elementwise relative error is ill-posed near zero (docs/ARCHITECTURE.md, Correctness), this is not.
pub fn rel_err(got: &[f32], want: &[f32]) -> f64 {
    let diff = diff_norm(got, want);
    let norm = norm(want);
    if norm == 0.0 {
        diff
    } else {
        diff / norm
    }
}

/// ‖got − want‖₂ in f64 (the lengths must agree).
pub fn diff_norm(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len(), "lengths differ");
    got.iter()
        .zip(want)
        .map(|(&g, &w)| (f64::from(g) - f64::from(w)).powi(2))
        .sum::<f64>()
        .sqrt()
}

/// ‖v‖₂ in f64.
pub fn norm(v: &[f32]) -> f64 {
    v.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt()
}

/// The seed for this run's random shapes and data: `EBM_TEST_SEED` if set (to reproduce a
/// failure), else fresh from the clock. Tests print it in every failure message.
pub fn test_seed() -> u64 {
    if let Some(s) = std::env::var("EBM_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return s;
    }
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// The GPU-against-CPU tolerance, a relative error in the 2-norm. Both devices compute in f32
/// and differ only in summation order, fused multiply-adds and transcendental rounding (a few
/// ulp), so 1e-5 (≈ 80 ulp of f32 over the whole vector) leaves room for sums of a few hundred
/// terms while catching any indexing or formula mistake, which shows up as O(1) error.
pub const TOL: f64 = 1e-5;

/// Channel counts for random shapes (conv, pooling, per-channel ops): never a multiple of 4,
/// so vector-width assumptions would show.
pub const CHANNELS: [usize; 6] = [1, 2, 3, 5, 6, 7];

/// `n` values uniform in [−2, 2).
pub fn randn(rng: &mut StdRng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-2.0f32..2.0)).collect()
}

/// `data` on the GPU.
pub fn up(gpu: &GpuBackend, data: &[f32]) -> GpuTensor {
    gpu.upload(data).expect("upload")
}

/// `t` back from the GPU.
pub fn read(gpu: &GpuBackend, t: &GpuTensor) -> Vec<f32> {
    gpu.read(t).expect("read")
}

/// For sums that can cancel (a 1×17 dot product can land near 0): ‖got − want‖₂ ≤
/// tol·‖scale‖₂, where `scale` is the same sum over absolute values, the standard bound on
/// f32 summation error. Where nothing cancels it is the plain relative error.
pub fn assert_close_scaled(
    got: &[f32],
    want: &[f32],
    scale: &[f32],
    tol: f64,
    what: &str,
    seed: u64,
) {
    let diff = diff_norm(got, want);
    let norm = norm(scale);
    assert!(
        diff <= tol * norm,
        "{what}: error {:.3e} of the summed magnitudes > {tol:.0e} (EBM_TEST_SEED={seed})",
        diff / norm
    );
}

/// |v| elementwise: the magnitudes whose sums scale [`assert_close_scaled`].
pub fn abs(v: &[f32]) -> Vec<f32> {
    v.iter().map(|x| x.abs()).collect()
}

/// [`rel_err`] within `tol`, or a failure that shows the first values and the seed.
pub fn assert_close(got: &[f32], want: &[f32], tol: f64, what: &str, seed: u64) {
    let e = rel_err(got, want);
    assert!(
        e <= tol,
        "{what}: relative error {e:.3e} > {tol:.0e} (EBM_TEST_SEED={seed})\n gpu {:?}\n cpu {:?}",
        &got[..got.len().min(8)],
        &want[..want.len().min(8)]
    );
}
