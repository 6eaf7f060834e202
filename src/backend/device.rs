//! Choosing a device: `--device auto|gpu|cpu` (or `EBM_DEVICE`).
//!
//! `auto` takes a hardware GPU adapter and otherwise falls back to the CPU with a one-line
//! notice; software adapters (lavapipe, GL on llvmpipe) are ~15× slower than plain Rust, so
//! `auto` never picks them. `gpu` takes the best adapter there is, software included: that
//! is how CI runs the WGSL kernels on lavapipe.
//!
//! Open the device once with [`choose_backend`], then hand it to generic code with
//! [`with_backend!`](crate::with_backend):
//!
//! ```
//! use ebm::backend::{choose_backend, DeviceChoice};
//! use ebm::{with_backend, EnergyNet, Spec};
//!
//! # fn main() -> ebm::Result<()> {
//! // What `--device cpu` parses to; `auto` would take a hardware GPU when there is one.
//! let choice: DeviceChoice = "cpu".parse()?;
//! let backend = choose_backend(choice, |notice| eprintln!("{notice}"))?;
//! assert!(backend.name().starts_with("cpu"));
//! let energies = with_backend!(backend, |b| {
//!     let mut net = EnergyNet::new(&b, &Spec::mlp(2, 16, 1), 0)?;
//!     net.energies(&b, &[0.0, 0.0, 1.0, 1.0])
//! })?;
//! assert_eq!(energies.len(), 2);
//! # Ok(())
//! # }
//! ```

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
    /// The native CPU backend.
    Cpu(CpuBackend),
    /// A wgpu adapter (hardware, or software when [`DeviceChoice::Gpu`] asked for any).
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

/// Open the device the user asked for. `notice` receives the one-line fallback message
/// (only [`DeviceChoice::Auto`] falls back, and only when there is no hardware GPU).
///
/// ```
/// use ebm::backend::{choose_backend, AnyBackend, DeviceChoice};
///
/// # fn main() -> ebm::Result<()> {
/// let backend = choose_backend(DeviceChoice::Cpu, |_| unreachable!("no fallback for cpu"))?;
/// assert!(matches!(backend, AnyBackend::Cpu(_)));
/// # Ok(())
/// # }
/// ```
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
///
/// `$any` is an [`AnyBackend`](crate::backend::AnyBackend), taken by value (pass `&any` to
/// borrow it; `b` is then a reference); `b` names the concrete backend inside `$body`, which is
/// compiled once per backend type, so both arms must give the same type.
///
/// ```
/// use ebm::backend::{choose_backend, Backend, DeviceChoice};
/// use ebm::{with_backend, EnergyNet, Spec};
///
/// /// Generic code, compiled for each backend.
/// fn describe<B: Backend>(b: &B) -> String {
///     format!("{} (gpu: {})", b.name(), b.is_gpu())
/// }
///
/// # fn main() -> ebm::Result<()> {
/// let any = choose_backend(DeviceChoice::Cpu, |_| {})?;
/// // Borrowed: `any` stays usable afterwards.
/// let text = with_backend!(&any, |b| describe(b));
/// assert!(text.ends_with("(gpu: false)"));
/// // Moved: `b` is the backend itself.
/// let energies = with_backend!(any, |b| {
///     let mut net = EnergyNet::new(&b, &Spec::mlp(2, 8, 1), 0)?;
///     net.energies(&b, &[0.5, -0.5])
/// })?;
/// assert_eq!(energies.len(), 1);
/// # Ok(())
/// # }
/// ```
#[macro_export]
macro_rules! with_backend {
    ($any:expr, |$b:ident| $body:expr) => {
        match $any {
            $crate::backend::AnyBackend::Cpu($b) => $body,
            $crate::backend::AnyBackend::Gpu($b) => $body,
        }
    };
}
