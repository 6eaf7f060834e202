//! The generator half of the families that pair an energy with a generator network
//! (cooperative learning, the latent-space prior model): a [`Net`] with a `tensor` head, its
//! own Adam, Gaussian latents from Philox stream 8, and the regression loss both families
//! train it with,
//!
//! L = (1/B) Σᵢ ‖g(zᵢ) − xᵢ‖² / (2σ²),
//!
//! whose gradient with respect to g's output is (g(z) − x)/(σ²B): one copy, one axpy and one
//! scale on the device, then the generator's hand-written backward pass.
//!
//! ```
//! use ebm::backend::Backend;
//! use ebm::nn::{Net, Spec};
//! use ebm::train::{AdamConfig, Generator};
//! use ebm::CpuBackend;
//!
//! # fn main() -> ebm::Result<()> {
//! let b = CpuBackend::new();
//! let spec = Spec::generator_mlp(2, 16, 2);
//! let mut g = Generator::new(&b, Net::new(&b, &spec, 0)?, AdamConfig::default(), 8)?;
//! let z = b.upload(&Generator::<CpuBackend>::latents(0, 0, 8, 2))?;
//! let target = b.upload(&[0.5; 16])?;
//! g.regress(&b, &z, &target, 1.0)?;
//! let before = g.loss(&b)?;
//! for _ in 0..50 {
//!     g.regress(&b, &z, &target, 1.0)?;
//!     g.step(&b, 1.0);
//! }
//! assert!(g.loss(&b)? < before / 2.0, "Adam pulls g(z) towards the target");
//! # Ok(())
//! # }
//! ```

use super::adam::{Adam, AdamConfig};
use super::FlagNonFinite;
use crate::backend::Backend;
use crate::nn::{Net, Output};
use crate::rng::{self, Stream};
use crate::{Error, Result};

/// Slots of [`Generator::stats`].
const LOSS: usize = 0;
/// The iteration (+1) whose Adam step first made a generator parameter NaN or ±∞.
const HEALTH: usize = 1;

/// A generator net with its optimiser and the buffers of its regression loss.
pub struct Generator<B: Backend> {
    /// The net: latent z `[latent_len]` → a sample `[output_len]`.
    pub net: Net<B>,
    /// Its own Adam (one pair of moments per parameter of `net`).
    pub adam: Adam<B>,
    /// Samples per batch.
    batch: usize,
    /// dL/dg, `[batch, output_len]`.
    d_out: B::Tensor,
    /// `[loss, health flag]`: one small readback.
    stats: B::Tensor,
}

impl<B: Backend> Generator<B> {
    /// A generator for batches of `batch`; the net's spec must have a `tensor` output.
    pub fn new(b: &B, net: Net<B>, adam: AdamConfig, batch: usize) -> Result<Self> {
        if !matches!(net.spec().output, Output::Tensor(_)) {
            return Err(Error::Spec(
                "a generator spec needs \"output\": {\"tensor\": [...]} (it outputs samples, \
                 not an energy)"
                    .into(),
            ));
        }
        adam.validate()?;
        net.spec()
            .check_batch(batch, &format!("--batch {batch} (the generator's batch)"))?;
        Ok(Generator {
            adam: Adam::new(b, adam, net.params())?,
            d_out: b.zeros(batch * net.output_len())?,
            stats: b.zeros(2)?,
            batch,
            net,
        })
    }

    /// Values of one latent code z.
    pub fn latent_len(&self) -> usize {
        self.net.input_len()
    }

    /// Values of one generated sample.
    pub fn output_len(&self) -> usize {
        self.net.output_len()
    }

    /// `rows` latents z ~ N(0, I) of `dim` values: row r is Philox chain r at step `counter`
    /// of stream 8 (the same normals on every device; drawn on the host and uploaded).
    pub fn latents(seed: u64, counter: u64, rows: usize, dim: usize) -> Vec<f32> {
        let mut z = vec![0.0; rows * dim];
        for (r, row) in z.chunks_mut(dim.max(1)).enumerate() {
            rng::fill_normal(seed, r as u32, counter as u32, Stream::Latent, row);
        }
        z
    }

    /// g(z) for `rows` latents (a forward pass; valid until the next pass on `rows`).
    pub fn generate(&mut self, b: &B, z: &B::Tensor, rows: usize) -> Result<&B::Tensor> {
        self.net.forward(b, z, rows)
    }

    /// Gradients of L = Σᵢ ‖g(zᵢ) − targetᵢ‖²/(2σ²B) over the batch into every parameter's
    /// gradient, and L into the stats ([`loss`](Self::loss)). `z` `[B, latent_len]`,
    /// `target` `[B, output_len]` (held fixed: no gradient flows into it).
    pub fn regress(&mut self, b: &B, z: &B::Tensor, target: &B::Tensor, sigma: f32) -> Result<()> {
        let (batch, len) = (self.batch, self.batch * self.output_len());
        if b.len(target) < len {
            return Err(Error::Shape(format!(
                "generator targets hold {} values, {batch} samples of {} need {len}",
                b.len(target),
                self.output_len()
            )));
        }
        let out = self.net.forward(b, z, batch)?;
        b.copy(out, 0, &mut self.d_out, 0, len);
        b.axpy(-1.0, target, &mut self.d_out, len);
        let var = sigma * sigma;
        // L itself (slot 0 only: sum_squares writes one slot, the scale touches one value).
        b.sum_squares(&self.d_out, &mut self.stats, LOSS);
        b.scale(1.0 / (2.0 * var * batch as f32), &mut self.stats, 1);
        b.scale(1.0 / (var * batch as f32), &mut self.d_out, len);
        self.net.backward(b, batch, &self.d_out, false, true)
    }

    /// One Adam step on the gradients of the last [`regress`](Self::regress); a parameter
    /// that becomes NaN or ±∞ flags `mark` (the iteration + 1) for [`loss`](Self::loss).
    pub fn step(&mut self, b: &B, mark: f32) {
        self.adam.step(b, self.net.params_mut());
        let flag = FlagNonFinite { slot: HEALTH, mark };
        for p in self.net.params() {
            flag.run(b, &p.value, &mut self.stats);
        }
    }

    /// The last regression loss (a readback); an error naming the first iteration that made
    /// a generator parameter NaN or ±∞.
    pub fn loss(&self, b: &B) -> Result<f32> {
        let s = b.read(&self.stats)?;
        if s[HEALTH] != 0.0 {
            return Err(Error::NonFinite(format!(
                "iteration {}: a generator parameter became NaN or infinite after the Adam step \
                 (try a smaller --gen-lr or a larger --gen-sigma)",
                s[HEALTH] as u64
            )));
        }
        Ok(s[LOSS])
    }
}
