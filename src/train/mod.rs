//! Training by contrastive divergence: the loss and its regularisers, Adam, checkpoints.

pub mod adam;
pub mod cd;
pub mod checkpoint;

pub use adam::{Adam, AdamConfig};
pub use cd::{Stats, TrainConfig, Trainer};
