//! Energy networks: a spec (JSON) becomes a sequential net of layers whose forward and
//! hand-written backward passes run on any [`Backend`](crate::Backend).

pub mod conv2d;
pub mod init;
pub mod linear;
pub mod model;
pub mod spec;

pub use model::{EnergyNet, Param};
pub use spec::{LayerSpec, Spec};
