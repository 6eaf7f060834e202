//! Choosing a device: `--device auto|gpu|cpu` (or `EBM_DEVICE`).
//!
//! `auto` takes a hardware GPU adapter and otherwise falls back to the CPU with a one-line
//! notice; software adapters (lavapipe, GL on llvmpipe) are ~15× slower than plain Rust, so
//! `auto` never picks them. `gpu` takes the best adapter there is, software included: that
//! is how CI runs the WGSL kernels on lavapipe.

use std::str::FromStr;

use super::{CpuBackend, GpuBackend};
use crate::{Error, Result};

/// Which device the user asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeviceChoice {
    /// A hardware GPU if there is one, else the CPU.
    #[default]
    Auto,
    /// Any GPU adapter, software ones included; an error if there is none.
    Gpu,
    /// The native CPU backend.
    Cpu,
}

impl FromStr for DeviceChoice {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "gpu" => Ok(Self::Gpu),
            "cpu" => Ok(Self::Cpu),
            other => Err(Error::Option(format!(
                "device '{other}' is not one of auto, gpu, cpu"
            ))),
        }
    }
}

/// A backend picked at run time; use [`with_backend!`](crate::with_backend) to run generic
/// code on it.
// There is one per process, so the size difference costs nothing; boxing the GPU variant
// would make `with_backend!` hand generic code a `Box` instead of the backend itself.
#[allow(clippy::large_enum_variant)]
pub enum AnyBackend {
    Cpu(CpuBackend),
    Gpu(GpuBackend),
}

impl AnyBackend {
    /// The device's name, for logs.
    pub fn name(&self) -> String {
        use super::Backend;
        match self {
            AnyBackend::Cpu(b) => b.name(),
            AnyBackend::Gpu(b) => b.name(),
        }
    }
}

/// Open the device the user asked for. `notice` receives the one-line fallback message.
pub fn choose_backend(choice: DeviceChoice, notice: impl FnOnce(&str)) -> Result<AnyBackend> {
    match choice {
        DeviceChoice::Cpu => Ok(AnyBackend::Cpu(CpuBackend::new())),
        DeviceChoice::Gpu => Ok(AnyBackend::Gpu(GpuBackend::new(true)?)),
        DeviceChoice::Auto => match GpuBackend::new(false) {
            Ok(gpu) => Ok(AnyBackend::Gpu(gpu)),
            Err(e) => {
                notice(&format!("notice: {e}; running on the CPU backend"));
                Ok(AnyBackend::Cpu(CpuBackend::new()))
            }
        },
    }
}

/// Run a generic expression with whichever backend `$any` holds:
/// `with_backend!(any, |b| train(b, &cfg))`.
#[macro_export]
macro_rules! with_backend {
    ($any:expr, |$b:ident| $body:expr) => {
        match $any {
            $crate::backend::AnyBackend::Cpu($b) => $body,
            $crate::backend::AnyBackend::Gpu($b) => $body,
        }
    };
}
