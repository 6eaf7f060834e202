//! Training: contrastive divergence and its objectives (the loss and its regularisers),
//! the families that pair the energy with a generator (cooperative learning, the latent-space
//! prior), Adam, checkpoints, and [`Learner`], the interface one loop drives them all through.
//!
//! Train on a [`DataSource`](crate::data::DataSource), save the model, load it back and
//! sample from it:
//!
//! ```
//! use std::ops::ControlFlow;
//! use ebm::data::{Toy2d, ToyData};
//! use ebm::sampler::Langevin;
//! use ebm::train::{checkpoint, TrainConfig, Trainer};
//! use ebm::{CpuBackend, EnergyNet, Spec};
//!
//! # fn main() -> ebm::Result<()> {
//! let b = CpuBackend::new();
//! let mut config = TrainConfig::toy2d(1);
//! config.batch = 32;
//! config.buffer_size = 128;
//! let net = EnergyNet::new(&b, &Spec::mlp(2, 32, 2), config.seed)?;
//! let mut trainer = Trainer::new(&b, net, config.clone())?;
//! let mut data = ToyData { dataset: Toy2d::Rings, seed: 1 };
//! trainer.fit(&b, &mut data, 5, |_, _| Ok(ControlFlow::Continue(())))?;
//!
//! let path = std::env::temp_dir().join(format!("ebm-doc-train-{}.safetensors", std::process::id()));
//! checkpoint::save_model(&b, &trainer.net, &path)?;
//! let mut net: EnergyNet<CpuBackend> = checkpoint::load_model(&b, &path, None)?;
//! let sampler = Langevin { config: config.langevin, seed: 2 };
//! let samples = sampler.sample(&b, &mut net, 100, 20, |_| ControlFlow::Continue(()))?;
//! assert_eq!(samples.x.len(), 200);
//! # std::fs::remove_file(&path).ok();
//! # Ok(())
//! # }
//! ```

pub mod adam;
pub mod adam_update;
pub mod cd;
pub mod cd_loss;
pub mod checkpoint;
pub mod coop;
pub mod cross_entropy;
pub mod generator;
pub mod health;
pub mod latent;
pub mod learner;
pub mod loss;
pub mod objective;

pub use adam::{Adam, AdamConfig};
pub use adam_update::AdamUpdate;
pub use cd::{Stats, TrainConfig, Trainer};
pub use cd_loss::{stat, CdLoss};
pub use coop::{CoopConfig, CoopTrainer};
pub use cross_entropy::CrossEntropy;
pub use generator::Generator;
pub use health::FlagNonFinite;
pub use latent::{LatentConfig, LatentTrainer};
pub use learner::Learner;
pub use loss::ObjectiveLoss;
pub use objective::Objective;
