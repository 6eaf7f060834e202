//! The Metropolis-adjusted Langevin algorithm (MALA): a Langevin proposal
//! x' = x − (ε/T)∇ₓE(x) + √(2ε)ξ, accepted with the Metropolis–Hastings ratio of the two
//! Gaussian proposal densities, so the chains sample exp(−E/T) exactly at any step size
//! (unadjusted Langevin is biased by O(ε)). All K steps, the tests included, are recorded
//! on the device with no readback.
//!
//! ```
//! use ebm::sampler::{ExactChains, ExactConfig, Mala};
//! use ebm::{Backend, CpuBackend, EnergyNet, Spec};
//!
//! # fn main() -> ebm::Result<()> {
//! let b = CpuBackend::new();
//! let mut net = EnergyNet::new(&b, &Spec::builtin("toy2d")?, 0)?;
//! let config = ExactConfig { steps: 50, step_size: 0.05, temperature: 1.0, lo: -4.0, hi: 4.0 };
//! let mala = Mala { config, seed: 0 };
//! let mut chains = ExactChains::new(&b, b.zeros(200 * 2)?, 200, 2)?;
//! mala.run(&b, &mut net, &mut chains, 0)?;
//! let acceptance = chains.acceptance(&b)?;
//! assert!(acceptance.rate > 0.5 && acceptance.steps == 50);
//! // Rejected proposals leave a chain where it was; nothing ever leaves the box.
//! assert!(b.read(chains.x())?.iter().all(|v| (-4.0..=4.0).contains(v)));
//! # Ok(())
//! # }
//! ```

use crate::backend::Backend;
use crate::nn::EnergyNet;
use crate::sampler::exact::MetropolisSampler;
use crate::sampler::metropolis::MalaAccept;
use crate::sampler::mlp_chain::mala::MlpMala;
use crate::sampler::{adapt, ExactChains, ExactConfig, LangevinUpdate};
use crate::Result;

/// MALA over `EnergyNet`s on any backend; `seed` keys the proposal noise (Philox stream 0)
/// and the uniforms of the tests (stream 5).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Mala {
    /// Steps, ε, T and the box.
    pub config: ExactConfig,
    /// The Philox key.
    pub seed: u64,
}

impl MetropolisSampler for Mala {
    fn config(&self) -> &ExactConfig {
        &self.config
    }

    fn config_mut(&mut self) -> &mut ExactConfig {
        &mut self.config
    }

    fn default_target(&self) -> f64 {
        adapt::MALA_TARGET
    }

    fn run<B: Backend>(
        &self,
        b: &B,
        net: &mut EnergyNet<B>,
        chains: &mut ExactChains<B>,
        first_step: u64,
    ) -> Result<()> {
        Mala::run(self, b, net, chains, first_step)
    }
}

impl Mala {
    /// K steps on `chains`, in place; step k uses global step `first_step + k` of the
    /// Philox streams, so successive runs never share random numbers. An MLP energy runs all
    /// K steps as one fused op ([`MlpMala`]) where the backend can; other nets, and chains
    /// with fixed values, go layer by layer.
    pub fn run<B: Backend>(
        &self,
        b: &B,
        net: &mut EnergyNet<B>,
        chains: &mut ExactChains<B>,
        first_step: u64,
    ) -> Result<()> {
        self.config.validate()?;
        chains.refresh(b, net)?;
        if chains.fixed.is_none() {
            if let Some((widths, activations)) = net.mlp_layout() {
                let (rows, dim) = chains.shape();
                let fused = MlpMala {
                    widths,
                    activations,
                    test: self.config.test(rows, dim, self.seed, first_step),
                    steps: self.config.steps,
                };
                if b.supports(&fused) {
                    let state = [
                        &mut chains.x,
                        &mut chains.grad,
                        &mut chains.energy,
                        &mut chains.stats,
                    ];
                    fused.run(b, &net.param_values(), state);
                    chains.tested(self.config.steps);
                    return Ok(());
                }
            }
        }
        self.run_unfused(b, net, chains, first_step)
    }

    /// [`run`](Self::run) layer by layer even where a fused kernel exists: the reference the
    /// fused one is tested against.
    pub fn run_unfused<B: Backend>(
        &self,
        b: &B,
        net: &mut EnergyNet<B>,
        chains: &mut ExactChains<B>,
        first_step: u64,
    ) -> Result<()> {
        self.config.validate()?;
        chains.refresh(b, net)?;
        let (rows, dim) = chains.shape();
        let c = &self.config;
        for k in 0..c.steps as u64 {
            let step = first_step + k;
            b.copy(&chains.x, 0, &mut chains.x_prop, 0, rows * dim);
            // The proposal is a Langevin step with no clip and no clamp.
            let propose = LangevinUpdate {
                rows,
                dim,
                step: c.step_size / c.temperature,
                noise: (2.0 * c.step_size).sqrt(),
                grad_clip: None,
                lo: f32::MIN,
                hi: f32::MAX,
                seed: self.seed,
                global_step: step as u32,
                chain_offset: 0,
            };
            propose.run(b, &mut chains.x_prop, &chains.grad);
            ExactChains::hold_fixed(&chains.fixed, b, &mut chains.x_prop);
            let (energy, grad) = net.energies_and_input_grad(b, &chains.x_prop, rows)?;
            let grad = ExactChains::proposal_grad(&mut chains.fixed, b, grad, rows * dim);
            MalaAccept(c.test(rows, dim, self.seed, step)).run(
                b,
                [&chains.x_prop, grad, energy],
                [&mut chains.x, &mut chains.grad, &mut chains.energy],
                &mut chains.stats,
            );
        }
        chains.tested(c.steps);
        Ok(())
    }
}
