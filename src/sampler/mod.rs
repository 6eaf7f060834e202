//! Drawing samples from p(x) ∝ exp(−E(x)): unadjusted Langevin dynamics over a batch of
//! chains, and the replay buffer of persistent chains that training draws them from.

pub mod langevin;
pub mod replay;

pub use langevin::{Langevin, LangevinConfig, Progress, Samples};
pub use replay::ReplayBuffer;
