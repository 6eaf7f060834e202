//! Drawing samples from p(x) ∝ exp(−E(x)): unadjusted Langevin dynamics over a batch of
//! chains, the replay buffer of persistent chains that training draws them from, and the
//! exact samplers (MALA, HMC) whose Metropolis tests make them sample exp(−E/T) at any step.
//!
//! ```
//! use std::ops::ControlFlow;
//! use ebm::sampler::{Langevin, LangevinConfig};
//! use ebm::{CpuBackend, EnergyNet, Spec};
//!
//! # fn main() -> ebm::Result<()> {
//! let b = CpuBackend::new();
//! let mut net = EnergyNet::new(&b, &Spec::builtin("toy2d")?, 0)?;
//! let config = LangevinConfig {
//!     steps: 40, step_size: 0.01, noise: 0.1, grad_clip: None, lo: -4.5, hi: 4.5,
//! };
//! let samples = Langevin { config, seed: 0 }.sample(&b, &mut net, 200, 40, |_| {
//!     ControlFlow::Continue(())
//! })?;
//! assert_eq!(samples.x.len(), 200 * 2);
//! # Ok(())
//! # }
//! ```

pub mod adapt;
pub mod ais;
pub mod annealed;
pub mod compose;
pub mod exact;
pub mod hmc;
pub mod langevin;
pub mod langevin_update;
pub mod latent;
pub mod mala;
pub mod metropolis;
pub mod mlp_chain;
pub mod replay;
pub mod replay_kernels;

pub use annealed::Annealed;
pub use compose::{Composition, Term};
pub use exact::{ExactChains, ExactConfig, Method, MetropolisSampler};
pub use hmc::Hmc;
pub use langevin::{Langevin, LangevinConfig, Progress, Samples};
pub use langevin_update::LangevinUpdate;
pub use latent::{LatentChains, LatentLangevin, Likelihood};
pub use mala::Mala;
pub use metropolis::Acceptance;
pub use mlp_chain::MlpChain;
pub use replay::ReplayBuffer;
pub use replay_kernels::{ReplayDraw, ReplayLabels, ReplayScatter};
