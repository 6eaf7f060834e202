//! Training data: deterministic toy 2D distributions and image datasets (MNIST IDX,
//! CIFAR-10 binary, PNG/JPEG folders), behind one trait that an embedding program can
//! implement for its own data.

pub mod images;
pub mod toy2d;

pub use images::{ImageData, ImageSet};
pub use toy2d::Toy2d;

use crate::Result;

/// Where training batches come from.
pub trait DataSource {
    /// Values per sample (2 for toy data, C·H·W for images).
    fn sample_len(&self) -> usize;
    /// The `n` data samples of training iteration `iteration`, [n, sample_len]. Must be a
    /// pure function of `iteration` for a resumed run to match an uninterrupted one.
    fn batch(&mut self, iteration: u64, n: usize) -> Result<Vec<f32>>;
}

/// A toy 2D dataset as an endless, seeded data source: iteration t gets Philox batch t.
#[derive(Clone, Copy, Debug)]
pub struct ToyData {
    pub dataset: Toy2d,
    pub seed: u64,
}

impl DataSource for ToyData {
    fn sample_len(&self) -> usize {
        2
    }

    fn batch(&mut self, iteration: u64, n: usize) -> Result<Vec<f32>> {
        Ok(self.dataset.sample(self.seed, iteration as u32, n))
    }
}
