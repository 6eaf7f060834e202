//! Measuring a trained model: KL(data ‖ model) on a grid for 2D models, and how well
//! energies separate in-distribution from out-of-distribution data (AUROC).

pub mod auroc;
pub mod kl;

pub use auroc::auroc;
