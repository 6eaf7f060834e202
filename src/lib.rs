//! # ebm — deep energy-based models on any GPU and any CPU
//!
//! An energy-based model defines p(x) ∝ exp(−E(x)) with a neural network E. Training
//! alternates short-run Langevin MCMC, which draws negative samples, with a contrastive-
//! divergence parameter update. This crate runs both on a GPU through wgpu with hand-written
//! WGSL kernels, or on the CPU, behind one [`Backend`] trait.
//!
//! ```
//! use ebm::backend::{choose_backend, Backend, DeviceChoice};
//! use ebm::{with_backend, EnergyNet, Spec};
//!
//! # fn main() -> ebm::Result<()> {
//! // A hardware GPU if there is one, else the CPU (with a one-line notice).
//! let backend = choose_backend(DeviceChoice::Auto, |notice| eprintln!("{notice}"))?;
//! with_backend!(backend, |b| {
//!     let mut net = EnergyNet::new(&b, &Spec::mlp(2, 128, 3), 0)?;
//!     let (energies, grad_x) = net.energies_and_grad(&b, &[0.0, 1.0, 2.0, -1.0])?;
//!     assert_eq!((energies.len(), grad_x.len()), (2, 4));
//!     Ok::<_, ebm::Error>(())
//! })?;
//! # Ok(())
//! # }
//! ```
//!
//! ## Where things are
//!
//! - [`backend`]: the [`Backend`] trait, [`CpuBackend`], [`GpuBackend`] and choosing one at
//!   run time ([`backend::choose_backend`], [`with_backend!`]).
//! - [`nn`]: model [`Spec`]s (JSON) and the [`EnergyNet`] built from one.
//! - [`sampler`]: Langevin dynamics ([`sampler::Langevin`]) and the replay buffer.
//! - [`train`]: the contrastive-divergence [`train::Trainer`], Adam, model files and
//!   checkpoints.
//! - [`data`]: toy 2D distributions, image datasets and the [`data::DataSource`] trait for
//!   your own data.
//! - [`eval`]: KL on a grid for 2D models, AUROC for out-of-distribution detection.
//! - [`plot`]: PNG figures (densities, samples, training curves, image grids).
//! - [`rng`]: the Philox generator every device shares; [`tensorfile`]: safetensors I/O.
//! - [`error`]: the one [`Error`] type.

#![warn(missing_docs)]

pub mod backend;
pub mod data;
pub mod error;
pub mod eval;
pub mod nn;
pub mod plot;
pub mod rng;
pub mod sampler;
pub mod tensorfile;
pub mod train;
pub mod wgsl;

pub use backend::{Backend, CpuBackend, GpuBackend};
pub use error::{Error, Result};
pub use nn::{EnergyNet, Spec};
