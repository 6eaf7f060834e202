//! # ebm — deep energy-based models on any GPU and any CPU
//!
//! An energy-based model defines p(x) ∝ exp(−E(x)) with a neural network E. Training
//! alternates short-run Langevin MCMC, which draws negative samples, with a contrastive-
//! divergence parameter update. This crate runs both on a GPU through wgpu with hand-written
//! WGSL kernels, or on the CPU, behind one [`Backend`] trait.

pub mod backend;
pub mod data;
pub mod error;
pub mod nn;
pub mod plot;
pub mod rng;
pub mod sampler;
pub mod tensorfile;
pub mod train;

pub use backend::{Backend, CpuBackend, GpuBackend};
pub use error::{Error, Result};
pub use nn::{EnergyNet, Spec};
