//! Langevin dynamics on a generator's latent code z, the inner loop of the latent-space
//! prior model (Pang et al. 2020) and of cooperative learning's latent inference:
//!
//! z ← z − (s²/2)·∇U(z) + s·ξ,   U(z) = ½‖z‖² [+ E(z)] [+ ‖x − g(z)‖²/(2σ²)],
//!
//! the first term the N(0, I) reference, E an optional prior energy on z (its samples are
//! then from p(z) ∝ exp(−E(z))·N(z; 0, I)), the last an optional Gaussian likelihood of data
//! x under the generator g (then the chains sample the posterior p(z | x)). No clamp: z lives
//! on the whole space. ξ is the fused Langevin update's Philox noise (stream 0) at chain
//! `chain_offset + row` and step `first_step + k`.
//!
//! ```
//! use ebm::backend::Backend;
//! use ebm::sampler::LatentLangevin;
//! use ebm::CpuBackend;
//!
//! # fn main() -> ebm::Result<()> {
//! let b = CpuBackend::new();
//! // Nothing but the N(0, I) reference: 4000 chains from z = 3 relax to mean 0, variance 1.
//! let mut chains = LatentLangevin { steps: 400, step_size: 0.3, seed: 1 }.chains(&b, 4000, 1, 0)?;
//! b.write(&mut chains.z, 0, &[3.0; 4000])?;
//! chains.run(&b, None, None, 0)?;
//! let z = b.read(&chains.z)?;
//! let mean = z.iter().sum::<f32>() / 4000.0;
//! let var = z.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / 4000.0;
//! assert!(mean.abs() < 0.1 && (var - 1.0).abs() < 0.15, "mean {mean} var {var}");
//! # Ok(())
//! # }
//! ```

use crate::backend::Backend;
use crate::nn::{EnergyNet, Net};
use crate::sampler::LangevinUpdate;
use crate::{Error, Result};

/// The settings of a latent Langevin run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LatentLangevin {
    /// Steps per run.
    pub steps: usize,
    /// s: the gradient step is s²/2, the noise s (Pang et al.'s parameterisation).
    pub step_size: f32,
    /// Philox key.
    pub seed: u64,
}

/// The likelihood term of a posterior run: data `x` `[rows, output_len]` under
/// x = g(z) + σε.
pub struct Likelihood<'a, B: Backend> {
    /// The generator g.
    pub generator: &'a mut Net<B>,
    /// The observed samples.
    pub x: &'a B::Tensor,
    /// The observation noise σ.
    pub sigma: f32,
}

/// A batch of latent chains with the buffers one run needs.
pub struct LatentChains<B: Backend> {
    /// The settings.
    pub sampler: LatentLangevin,
    /// The chains, `[rows, dim]`: set them, [`run`](Self::run), read them.
    pub z: B::Tensor,
    rows: usize,
    dim: usize,
    chain_offset: u32,
    /// ∇U, `[rows, dim]`.
    grad: B::Tensor,
    /// (g(z) − x)/σ², `[rows, output_len]` (allocated at the first posterior run).
    d_out: Option<B::Tensor>,
}

impl LatentLangevin {
    /// Buffers for `rows` chains of `dim` values whose noise uses Philox chains
    /// `chain_offset..chain_offset + rows`.
    pub fn chains<B: Backend>(
        &self,
        b: &B,
        rows: usize,
        dim: usize,
        chain_offset: u32,
    ) -> Result<LatentChains<B>> {
        if !(self.step_size.is_finite() && self.step_size > 0.0) {
            return Err(Error::Option(format!(
                "latent Langevin step size {} must be a positive number",
                self.step_size
            )));
        }
        Ok(LatentChains {
            sampler: *self,
            z: b.zeros(rows * dim)?,
            grad: b.zeros(rows * dim)?,
            d_out: None,
            rows,
            dim,
            chain_offset,
        })
    }
}

impl<B: Backend> LatentChains<B> {
    /// `steps` updates of the chains in place, with the prior energy `prior` (if any) and
    /// the likelihood (if any), at Philox steps `first_step..first_step + steps`.
    pub fn run(
        &mut self,
        b: &B,
        mut prior: Option<&mut EnergyNet<B>>,
        mut likelihood: Option<Likelihood<'_, B>>,
        first_step: u64,
    ) -> Result<()> {
        let (rows, dim, len) = (self.rows, self.dim, self.rows * self.dim);
        if let Some(prior) = &prior {
            if prior.input_len() != dim {
                return Err(Error::Shape(format!(
                    "the prior energy takes {} values, the latent code has {dim}",
                    prior.input_len()
                )));
            }
        }
        if let Some(l) = &likelihood {
            check_likelihood(b, l, rows, dim)?;
            if self.d_out.is_none() {
                self.d_out = Some(b.zeros(rows * l.generator.output_len())?);
            }
        }
        let s = self.sampler.step_size;
        for k in 0..self.sampler.steps {
            // ∇U = z [+ ∇E(z)] [+ J_gᵀ (g(z) − x)/σ²]
            b.copy(&self.z, 0, &mut self.grad, 0, len);
            if let Some(prior) = prior.as_deref_mut() {
                let g = prior.input_grad(b, &self.z, rows)?;
                b.axpy(1.0, g, &mut self.grad, len);
            }
            if let Some(l) = likelihood.as_mut() {
                let d_out = self.d_out.as_mut().expect("allocated above");
                let out_len = rows * l.generator.output_len();
                let out = l.generator.forward(b, &self.z, rows)?;
                b.copy(out, 0, d_out, 0, out_len);
                b.axpy(-1.0, l.x, d_out, out_len);
                b.scale(1.0 / (l.sigma * l.sigma), d_out, out_len);
                l.generator.backward(b, rows, d_out, true, false)?;
                let g = l.generator.input_grad_tensor(rows)?;
                b.axpy(1.0, g, &mut self.grad, len);
            }
            let update = LangevinUpdate {
                rows,
                dim,
                step: 0.5 * s * s,
                noise: s,
                grad_clip: None,
                lo: f32::MIN,
                hi: f32::MAX,
                seed: self.sampler.seed,
                global_step: (first_step + k as u64) as u32,
                chain_offset: self.chain_offset,
            };
            update.run(b, &mut self.z, &self.grad);
        }
        Ok(())
    }
}

fn check_likelihood<B: Backend>(
    b: &B,
    l: &Likelihood<'_, B>,
    rows: usize,
    dim: usize,
) -> Result<()> {
    if l.generator.input_len() != dim {
        return Err(Error::Shape(format!(
            "the generator takes latents of {} values, the chains have {dim}",
            l.generator.input_len()
        )));
    }
    let need = rows * l.generator.output_len();
    if b.len(l.x) < need {
        return Err(Error::Shape(format!(
            "the observed samples hold {} values, {rows} samples of {} need {need}",
            b.len(l.x),
            l.generator.output_len()
        )));
    }
    if !(l.sigma.is_finite() && l.sigma > 0.0) {
        return Err(Error::Option(format!(
            "generator noise σ {} must be a positive number",
            l.sigma
        )));
    }
    Ok(())
}
