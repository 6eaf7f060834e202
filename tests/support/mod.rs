//! Helpers shared by the integration tests.
#![allow(dead_code)]

use ebm::GpuBackend;

/// ‖a − b‖₂ / ‖b‖₂ (DESIGN.md §5: per tensor, in the 2-norm; elementwise near zero is ill-posed).
pub fn rel_err(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    let diff: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (x as f64 - y as f64).powi(2))
        .sum();
    let norm: f64 = b.iter().map(|&y| (y as f64).powi(2)).sum();
    (diff / norm.max(f64::MIN_POSITIVE)).sqrt()
}

/// The GPU backend on any adapter (lavapipe included). Without one, a test in CI (CI set)
/// fails; elsewhere it is skipped with a message.
pub fn gpu() -> Option<GpuBackend> {
    match GpuBackend::new(true) {
        Ok(g) => Some(g),
        Err(e) if std::env::var_os("CI").is_some() => {
            panic!("CI is set but no GPU adapter was found ({e}); install mesa-vulkan-drivers")
        }
        Err(e) => {
            eprintln!("skipping GPU test: {e}");
            None
        }
    }
}
