//! Training data: deterministic toy 2D distributions and image datasets (MNIST IDX,
//! CIFAR-10 binary, PNG/JPEG folders), behind one trait that an embedding program can
//! implement for its own data.
//!
//! Your own data is a [`DataSource`]: say how long a sample is and hand out batch t.
//!
//! ```
//! use std::ops::ControlFlow;
//! use ebm::data::DataSource;
//! use ebm::train::{TrainConfig, Trainer};
//! use ebm::{CpuBackend, EnergyNet, Spec};
//!
//! /// 2D points held in memory, served in a fixed cycle.
//! struct Points {
//!     xy: Vec<f32>,
//! }
//!
//! impl DataSource for Points {
//!     fn sample_len(&self) -> usize {
//!         2
//!     }
//!
//!     /// Rows t·n … t·n + n − 1, wrapping around: a pure function of `iteration`, so a
//!     /// resumed run sees the same batches as an uninterrupted one.
//!     fn batch(&mut self, iteration: u64, n: usize) -> ebm::Result<Vec<f32>> {
//!         let rows = self.xy.len() / 2;
//!         Ok((0..n)
//!             .flat_map(|j| {
//!                 let r = (iteration as usize * n + j) % rows;
//!                 [self.xy[2 * r], self.xy[2 * r + 1]]
//!             })
//!             .collect())
//!     }
//! }
//!
//! # fn main() -> ebm::Result<()> {
//! let mut data = Points { xy: vec![1.0, 0.0, 0.0, 1.0, -1.0, 0.0, 0.0, -1.0] };
//! assert_eq!(data.batch(1, 3)?, [0.0, -1.0, 1.0, 0.0, 0.0, 1.0]);
//!
//! let b = CpuBackend::new();
//! let mut config = TrainConfig::toy2d(0);
//! config.batch = 16;
//! config.buffer_size = 64;
//! let net = EnergyNet::new(&b, &Spec::mlp(2, 16, 1), 0)?;
//! let mut trainer = Trainer::new(&b, net, config)?;
//! let ran = trainer.fit(&b, &mut data, 3, |_, _| Ok(ControlFlow::Continue(())))?;
//! assert_eq!(ran, 3);
//! # Ok(())
//! # }
//! ```

pub mod images;
pub mod toy2d;

pub use images::{ImageData, ImageSet};
pub use toy2d::Toy2d;

use crate::Result;

/// Where training batches come from: [`Trainer::fit`](crate::train::Trainer::fit) asks for
/// batch t at iteration t. Implement it for your own data (see the [module](self) example).
pub trait DataSource {
    /// Values per sample (2 for toy data, C·H·W for images).
    fn sample_len(&self) -> usize;
    /// The `n` data samples of training iteration `iteration`, [n, sample_len]. Must be a
    /// pure function of `iteration` for a resumed run to match an uninterrupted one.
    fn batch(&mut self, iteration: u64, n: usize) -> Result<Vec<f32>>;
    /// How many classes the labels run over, when the data has labels (`None`: unlabelled,
    /// the default).
    fn classes(&self) -> Option<usize> {
        None
    }
    /// The class ids (exact f32, below [`classes`](Self::classes)) of the same `n` samples
    /// that [`batch`](Self::batch) gives for `iteration`. The default: an error, no labels.
    fn labels(&mut self, iteration: u64, n: usize) -> Result<Vec<f32>> {
        let _ = (iteration, n);
        Err(crate::Error::Option(
            "this data source has no labels".into(),
        ))
    }
}

/// A toy 2D dataset as an endless, seeded data source: iteration t gets Philox batch t.
///
/// ```
/// use ebm::data::{DataSource, Toy2d, ToyData};
///
/// # fn main() -> ebm::Result<()> {
/// let mut data = ToyData { dataset: Toy2d::Moons, seed: 0 };
/// assert_eq!(data.sample_len(), 2);
/// assert_eq!(data.batch(7, 100)?, Toy2d::Moons.sample(0, 7, 100));
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Copy, Debug)]
pub struct ToyData {
    /// Which distribution the points come from.
    pub dataset: Toy2d,
    /// Keys the points: batch t of n is `dataset.sample(seed, t, n)`.
    pub seed: u64,
}

impl DataSource for ToyData {
    fn sample_len(&self) -> usize {
        2
    }

    fn batch(&mut self, iteration: u64, n: usize) -> Result<Vec<f32>> {
        Ok(self.dataset.sample(self.seed, iteration as u32, n))
    }

    fn classes(&self) -> Option<usize> {
        self.dataset.classes()
    }

    fn labels(&mut self, iteration: u64, n: usize) -> Result<Vec<f32>> {
        if self.dataset.classes().is_none() {
            return Err(crate::Error::Option(format!(
                "toy dataset {} has no classes (it is one continuous curve)",
                self.dataset
            )));
        }
        Ok(self
            .dataset
            .sample_labelled(self.seed, iteration as u32, n)
            .1)
    }
}
