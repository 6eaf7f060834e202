//! Measuring a trained model: KL(data ‖ model) on a grid for 2D models, how well
//! energies separate in-distribution from out-of-distribution data (AUROC), and, for
//! class-logit models, accuracy and calibration ([`calibration`]: NLL, ECE, reliability
//! diagrams).
//!
//! KL and AUROC take energies, so they work for any net on any backend:
//!
//! ```
//! use ebm::data::{toy2d::RANGE, Toy2d};
//! use ebm::eval::{auroc, kl::kl_data_model};
//! use ebm::plot::Grid2d;
//! use ebm::{CpuBackend, EnergyNet, Spec};
//!
//! # fn main() -> ebm::Result<()> {
//! let b = CpuBackend::new();
//! let mut net = EnergyNet::new(&b, &Spec::mlp(2, 32, 2), 0)?; // train it first, in earnest
//! let grid = Grid2d::new(64, RANGE);
//! let energy = net.energies(&b, &grid.points())?;
//! let data = Toy2d::Rings.sample(0, 0, 5000);
//! let kl = kl_data_model(&grid, &data, &energy); // nats; lower is better
//! assert!(kl.is_finite() && kl > 0.0);
//! // Rings as the training data, checkerboard points as the outliers.
//! let e_in = net.energies(&b, &data)?;
//! let e_out = net.energies(&b, &Toy2d::Checkerboard.sample(0, 0, 1000))?;
//! assert!((0.0..=1.0).contains(&auroc(&e_in, &e_out)));
//! # Ok(())
//! # }
//! ```

pub mod auroc;
pub mod calibration;
pub mod kl;

pub use auroc::auroc;
pub use calibration::{reliability, Reliability};
