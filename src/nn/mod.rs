//! Energy networks: a spec (JSON) becomes a sequential net of layers whose forward and
//! hand-written backward passes run on any [`Backend`](crate::Backend).
//!
//! ```
//! use ebm::nn::{EnergyNet, Spec};
//! use ebm::CpuBackend;
//!
//! # fn main() -> ebm::Result<()> {
//! let b = CpuBackend::new();
//! let spec = Spec::builtin("toy2d")?; // 2 → 128 → 128 → 128 → 1, SiLU
//! let mut net = EnergyNet::new(&b, &spec, 0)?;
//! let energies = net.energies(&b, &[0.0, 0.0, 2.0, 2.0])?; // two points
//! assert_eq!(energies.len(), 2);
//! # Ok(())
//! # }
//! ```

pub mod conv2d;
pub mod init;
pub mod linear;
pub mod model;
pub mod spec;

pub use model::{EnergyNet, Param};
pub use spec::{LayerSpec, Spec};
