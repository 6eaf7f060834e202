//! Shared by the GPU test files: open the backend (software adapters allowed), and compare
//! results by relative error in the 2-norm.

#![allow(dead_code)]

use std::sync::{Mutex, MutexGuard, PoisonError};

use ebm::backend::gpu::GpuOptions;
use ebm::backend::GpuBackend;

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
    assert_eq!(got.len(), want.len(), "lengths differ");
    let diff: f64 = got
        .iter()
        .zip(want)
        .map(|(&g, &w)| (g as f64 - w as f64).powi(2))
        .sum::<f64>()
        .sqrt();
    let norm: f64 = want.iter().map(|&w| (w as f64).powi(2)).sum::<f64>().sqrt();
    if norm == 0.0 {
        diff
    } else {
        diff / norm
    }
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
