//! Time per kernel: what [`Backend::set_profiling`](super::Backend::set_profiling) and
//! [`Backend::take_profile`](super::Backend::take_profile) speak in.
//!
//! Each backend measures in its own way — GPU timestamp queries around every compute pass,
//! the CPU's wall clock around every op (exact there, since ops run synchronously) — and
//! reports the same rows, so `ebm bench --profile` prints one table for either.
//!
//! ```
//! use ebm::backend::{Activation, Backend};
//! use ebm::CpuBackend;
//!
//! # fn main() -> ebm::Result<()> {
//! let b = CpuBackend::new();
//! assert!(b.set_profiling(true).is_supported());
//! let x = b.upload(&[-1.0, 0.5, 2.0])?;
//! let mut y = b.zeros(3)?;
//! for _ in 0..3 {
//!     b.activation_forward(Activation::Silu, &x, &mut y);
//! }
//! let profile = b.take_profile()?;
//! assert_eq!(profile.source, "CPU wall clock per op");
//! assert_eq!(profile.kernel("silu_forward").map(|k| k.calls), Some(3));
//! assert_eq!(profile.total_calls(), 3);
//! // Taking the profile cleared it.
//! assert!(b.take_profile()?.kernels.is_empty());
//! # Ok(())
//! # }
//! ```

use std::collections::BTreeMap;

/// Whether a backend can time its kernels, answered when profiling is switched on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProfileSupport {
    /// Kernel times will come from `source` (see [`Profile::source`]).
    Supported {
        /// How the times are taken, e.g. "GPU timestamp queries".
        source: &'static str,
    },
    /// This device cannot time its kernels; the reason, in words for the user.
    Unsupported(String),
}

impl ProfileSupport {
    /// True when kernel times will be recorded.
    pub fn is_supported(&self) -> bool {
        matches!(self, ProfileSupport::Supported { .. })
    }
}

/// The time one kernel (a WGSL entry point, or the CPU op of the same name) took in total.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelTime {
    /// The kernel's WGSL entry-point name, e.g. `conv2d_forward` or `adam_update`.
    pub name: String,
    /// How many times it ran.
    pub calls: u64,
    /// Summed over all calls.
    pub seconds: f64,
}

/// The kernel times recorded while profiling was on, longest total first.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Profile {
    /// How the times were taken, e.g. "GPU timestamp queries" or "CPU wall clock per op";
    /// empty when the backend cannot profile.
    pub source: String,
    /// One row per kernel that ran, longest total time first.
    pub kernels: Vec<KernelTime>,
}

impl Profile {
    /// Time in all kernels together.
    pub fn total_seconds(&self) -> f64 {
        self.kernels.iter().map(|k| k.seconds).sum()
    }

    /// Kernel runs in all.
    pub fn total_calls(&self) -> u64 {
        self.kernels.iter().map(|k| k.calls).sum()
    }

    /// The row of kernel `name`, if it ran.
    pub fn kernel(&self, name: &str) -> Option<&KernelTime> {
        self.kernels.iter().find(|k| k.name == name)
    }
}

/// Calls and seconds per kernel name as a backend collects them; kernel names are the
/// static entry-point names, so adding a sample allocates nothing.
#[derive(Debug, Default)]
pub(crate) struct Tally(BTreeMap<&'static str, (u64, f64)>);

impl Tally {
    pub fn add(&mut self, name: &'static str, seconds: f64) {
        let entry = self.0.entry(name).or_default();
        entry.0 += 1;
        entry.1 += seconds;
    }

    /// Everything so far as a [`Profile`], leaving the tally empty.
    pub fn take(&mut self, source: &str) -> Profile {
        let mut kernels: Vec<KernelTime> = std::mem::take(&mut self.0)
            .into_iter()
            .map(|(name, (calls, seconds))| KernelTime {
                name: name.to_string(),
                calls,
                seconds,
            })
            .collect();
        kernels.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
        Profile {
            source: source.to_string(),
            kernels,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tally_sums_per_name_and_sorts_by_total() {
        let mut t = Tally::default();
        t.add("a", 1.0);
        t.add("b", 0.5);
        t.add("b", 2.0);
        let p = t.take("test");
        assert_eq!(p.source, "test");
        assert_eq!(p.kernels[0].name, "b");
        assert_eq!(p.kernels[0].calls, 2);
        assert_eq!(p.kernel("a").map(|k| k.calls), Some(1));
        assert_eq!(p.total_calls(), 3);
        assert!((p.total_seconds() - 3.5).abs() < 1e-12);
        assert!(t.take("test").kernels.is_empty());
    }
}
