//! The replay buffer (IGEBM / JEM): N persistent chains kept on the device. Each training
//! iteration draws B of them, re-initialises each with probability p from uniform noise,
//! runs K Langevin steps and writes them back. p = 1 is Nijkamp's short-run mode (chains
//! always start from noise, and nothing needs writing back).
//!
//! What one training iteration does with it (the [`Trainer`](crate::train::Trainer) does
//! this for you):
//!
//! ```
//! use ebm::sampler::{Langevin, LangevinConfig, ReplayBuffer};
//! use ebm::{Backend, CpuBackend, EnergyNet, Spec};
//!
//! # fn main() -> ebm::Result<()> {
//! let b = CpuBackend::new();
//! let mut net = EnergyNet::new(&b, &Spec::builtin("toy2d")?, 0)?;
//! let config = LangevinConfig {
//!     steps: 10, step_size: 0.02, noise: 0.2, grad_clip: None, lo: -4.5, hi: 4.5,
//! };
//! let sampler = Langevin { config, seed: 0 };
//! // 1000 persistent chains of 2 values; 5 % of draws restart from noise.
//! let mut replay = ReplayBuffer::new(&b, 1000, 2, 0.05, (-4.5, 4.5), 0)?;
//! let mut x = b.zeros(64 * 2)?;
//! for iteration in 0..3 {
//!     replay.draw(&b, iteration, 64, &mut x)?;
//!     sampler.run(&b, &mut net, &mut x, 64, iteration * 10)?;
//!     replay.write_back(&b, iteration, 64, &x);
//! }
//! assert_eq!(replay.read_chains(&b)?.len(), 1000 * 2);
//! # Ok(())
//! # }
//! ```

use super::ReplayDraw;
use crate::backend::Backend;
use crate::rng::{self, Stream};
use crate::{Error, Result};

/// Chain indices travel as exact f32 values, so the capacity must stay below 2²⁴.
const MAX_CAPACITY: usize = 1 << 24;

/// N persistent chains of `dim` values on the device.
///
/// ```
/// use ebm::sampler::ReplayBuffer;
/// use ebm::{Backend, CpuBackend};
///
/// # fn main() -> ebm::Result<()> {
/// let b = CpuBackend::new();
/// // 4 chains of 3 values, uniform in [−1, 1]; drawn chains are never re-initialised.
/// let mut replay = ReplayBuffer::new(&b, 4, 3, 0.0, (-1.0, 1.0), 7)?;
/// let chains = replay.read_chains(&b)?;
/// assert!(chains.iter().all(|v| (-1.0..=1.0).contains(v)));
/// let mut x = b.zeros(2 * 3)?;
/// replay.draw(&b, 0, 2, &mut x)?;
/// for row in x.chunks(3) {
///     assert!(chains.chunks(3).any(|c| c == row), "a row of the buffer");
/// }
/// // Advance the drawn chains (here: overwrite them) and put them back.
/// b.fill(&mut x, 0.25);
/// replay.write_back(&b, 0, 2, &x);
/// let after = replay.read_chains(&b)?;
/// assert!(after.chunks(3).any(|c| *c == [0.25; 3]));
/// # Ok(())
/// # }
/// ```
pub struct ReplayBuffer<B: Backend> {
    chains: B::Tensor,
    /// One class label per chain, for conditional training ([`with_labels`](Self::with_labels)).
    labels: Option<B::Tensor>,
    indices: B::Tensor,
    capacity: usize,
    dim: usize,
    reinit_prob: f32,
    lo: f32,
    hi: f32,
    seed: u64,
}

impl<B: Backend> ReplayBuffer<B> {
    /// A buffer of `capacity` chains filled with uniform noise on [lo, hi] (Philox stream 1
    /// at step 2³²−1, which no training iteration reaches).
    pub fn new(
        b: &B,
        capacity: usize,
        dim: usize,
        reinit_prob: f32,
        (lo, hi): (f32, f32),
        seed: u64,
    ) -> Result<Self> {
        if dim == 0 {
            return Err(Error::Shape(
                "replay buffer chains need at least one value".into(),
            ));
        }
        if capacity == 0 || capacity >= MAX_CAPACITY {
            return Err(Error::Option(format!(
                "replay buffer size {capacity} must be in 1..2^24"
            )));
        }
        if !(0.0..=1.0).contains(&reinit_prob) {
            return Err(Error::Option(format!(
                "re-init probability {reinit_prob} must be in [0, 1]"
            )));
        }
        let mut init = vec![0.0; capacity * dim];
        for (n, row) in init.chunks_mut(dim).enumerate() {
            rng::fill_uniform(seed, n as u32, u32::MAX, Stream::ReplayReinit, lo, hi, row);
        }
        Ok(ReplayBuffer {
            chains: b.upload(&init)?,
            labels: None,
            indices: b.zeros(0)?,
            capacity,
            dim,
            reinit_prob,
            lo,
            hi,
            seed,
        })
    }

    /// Keep a class label with every chain, for conditional training, where a chain
    /// samples E(x, y) of its own class until it is re-initialised. Chains start with no
    /// label (−1): the first draw of a chain gives it its row's data label, as a
    /// re-initialisation does, so the chains' classes are always classes of the data seen.
    pub fn with_labels(mut self, b: &B) -> Result<Self> {
        self.labels = Some(b.upload(&vec![-1.0; self.capacity])?);
        Ok(self)
    }

    /// The chains' labels `[capacity]` (read back), if the buffer has them.
    pub fn read_labels(&self, b: &B) -> Result<Option<Vec<f32>>> {
        self.labels.as_ref().map(|l| b.read(l)).transpose()
    }

    /// Restore the chains' labels (from a checkpoint).
    pub fn load_labels(&mut self, b: &B, labels: &[f32]) -> Result<()> {
        match &mut self.labels {
            Some(l) if labels.len() == self.capacity => b.write(l, 0, labels),
            Some(_) => Err(Error::Shape(format!(
                "replay labels hold {} values, the buffer has {} chains",
                labels.len(),
                self.capacity
            ))),
            None => Err(Error::Shape("this replay buffer keeps no labels".into())),
        }
    }

    /// Restore a buffer's chains (from a checkpoint).
    pub fn load_chains(&mut self, b: &B, chains: &[f32]) -> Result<()> {
        if chains.len() != self.capacity * self.dim {
            return Err(Error::Shape(format!(
                "replay chains hold {} values, the buffer needs {} × {}",
                chains.len(),
                self.capacity,
                self.dim
            )));
        }
        b.write(&mut self.chains, 0, chains)
    }

    /// All chains [capacity, dim], read back.
    pub fn read_chains(&self, b: &B) -> Result<Vec<f32>> {
        b.read(&self.chains)
    }

    /// Number of chains.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    fn draw_params(&self, iteration: u64, batch: usize) -> ReplayDraw {
        ReplayDraw {
            capacity: self.capacity,
            batch,
            dim: self.dim,
            reinit_prob: self.reinit_prob,
            lo: self.lo,
            hi: self.hi,
            seed: self.seed,
            iteration: iteration as u32,
        }
    }

    /// Draw `batch` chains for `iteration` into `x` [batch, dim].
    pub fn draw(&mut self, b: &B, iteration: u64, batch: usize, x: &mut B::Tensor) -> Result<()> {
        if b.len(&self.indices) < batch {
            self.indices = b.zeros(batch)?;
        }
        self.draw_params(iteration, batch)
            .draw(b, &self.chains, x, &mut self.indices);
        Ok(())
    }

    /// [`draw`](Self::draw) for a labelled buffer, also writing the drawn chains' labels
    /// into `labels` `[batch]`: a re-initialised chain takes `data_labels[j]` (its row's
    /// data label), any other the label stored with it.
    pub fn draw_labelled(
        &mut self,
        b: &B,
        iteration: u64,
        batch: usize,
        data_labels: &B::Tensor,
        x: &mut B::Tensor,
        labels: &mut B::Tensor,
    ) -> Result<()> {
        self.draw(b, iteration, batch, x)?;
        let Some(stored) = &self.labels else {
            return Err(Error::Shape("this replay buffer keeps no labels".into()));
        };
        self.draw_params(iteration, batch)
            .labels(b, stored, data_labels, labels);
        Ok(())
    }

    /// [`write_back`](Self::write_back) for a labelled buffer: the chains and their labels.
    pub fn write_back_labelled(
        &mut self,
        b: &B,
        iteration: u64,
        batch: usize,
        x: &B::Tensor,
        labels: &B::Tensor,
    ) {
        self.write_back(b, iteration, batch, x);
        let one_wide = ReplayDraw {
            dim: 1,
            ..self.draw_params(iteration, batch)
        };
        if let (Some(stored), true) = (&mut self.labels, self.reinit_prob < 1.0) {
            one_wide.scatter(b, labels, &self.indices, stored);
        }
    }

    /// Write the advanced chains `x` back to where [`draw`](Self::draw) took them from.
    pub fn write_back(&mut self, b: &B, iteration: u64, batch: usize, x: &B::Tensor) {
        if self.reinit_prob < 1.0 {
            self.draw_params(iteration, batch)
                .scatter(b, x, &self.indices, &mut self.chains);
        }
    }
}
