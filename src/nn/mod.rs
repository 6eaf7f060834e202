//! Energy networks: a spec (JSON) becomes a graph of layers whose forward and hand-written
//! backward passes run on any [`Backend`](crate::Backend), with an energy head on top.
//!
//! - [`spec`]: the JSON format (v2: names, `from`, `add`, heads) and [`check`]ing it;
//!   [`builtin`] specs (toy2d, the ConvNets, the ResNets).
//! - [`graph`]: [`Net`], the layer graph; one file per node kind with parameters
//!   ([`linear`], [`conv2d`], [`conv_transpose2d`]); [`init`] for their initial values.
//! - [`model`]: [`EnergyNet`], a net with an energy head ([`heads`]); [`io`]: model files.
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

pub mod builtin;
pub mod check;
pub mod conv2d;
pub mod conv_transpose2d;
pub mod graph;
pub mod heads;
pub mod init;
pub mod io;
pub mod linear;
pub mod model;
pub mod spec;
pub mod spectral_norm;

pub use graph::{Net, Param};
pub use model::EnergyNet;
pub use spec::{Layer, LayerSpec, Output, Source, Spec};
