//! Hamiltonian Monte Carlo (Neal 2011; IGEBM's `--hmc`): fresh momenta p ~ N(0, I) (mass 1),
//! L leapfrog steps of size ε on the potential E/T, then a Metropolis test on the
//! Hamiltonian H = E/T + ‖p‖²/2. Exact for exp(−E/T) at any ε and L; long trajectories move
//! far with few rejections where Langevin diffuses. All K trajectories, the tests included,
//! are recorded on the device with no readback.
//!
//! ```
//! use ebm::sampler::{ExactChains, ExactConfig, Hmc};
//! use ebm::{Backend, CpuBackend, EnergyNet, Spec};
//!
//! # fn main() -> ebm::Result<()> {
//! let b = CpuBackend::new();
//! let mut net = EnergyNet::new(&b, &Spec::builtin("toy2d")?, 0)?;
//! let config = ExactConfig { steps: 20, step_size: 0.1, temperature: 1.0, lo: -4.0, hi: 4.0 };
//! let hmc = Hmc { config, leapfrog: 5, seed: 0 };
//! let mut chains = ExactChains::new(&b, b.zeros(200 * 2)?, 200, 2)?;
//! hmc.run(&b, &mut net, &mut chains, 0)?;
//! assert!(chains.acceptance(&b)?.rate > 0.5);
//! # Ok(())
//! # }
//! ```

use crate::backend::Backend;
use crate::nn::EnergyNet;
use crate::sampler::exact::MetropolisSampler;
use crate::sampler::metropolis::{HmcAccept, HmcMomentum};
use crate::sampler::{adapt, ExactChains, ExactConfig};
use crate::{Error, Result};

/// HMC over `EnergyNet`s on any backend; `seed` keys the momenta (Philox stream 6) and the
/// uniforms of the tests (stream 5).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hmc {
    /// Trajectories K, leapfrog step ε, T and the box.
    pub config: ExactConfig,
    /// L: leapfrog steps per trajectory.
    pub leapfrog: usize,
    /// The Philox key.
    pub seed: u64,
}

impl MetropolisSampler for Hmc {
    fn config(&self) -> &ExactConfig {
        &self.config
    }

    fn config_mut(&mut self) -> &mut ExactConfig {
        &mut self.config
    }

    fn default_target(&self) -> f64 {
        adapt::HMC_TARGET
    }

    fn run<B: Backend>(
        &self,
        b: &B,
        net: &mut EnergyNet<B>,
        chains: &mut ExactChains<B>,
        first_step: u64,
    ) -> Result<()> {
        Hmc::run(self, b, net, chains, first_step)
    }
}

impl Hmc {
    /// K trajectories on `chains`, in place; trajectory k uses global step `first_step + k`
    /// of the Philox streams.
    pub fn run<B: Backend>(
        &self,
        b: &B,
        net: &mut EnergyNet<B>,
        chains: &mut ExactChains<B>,
        first_step: u64,
    ) -> Result<()> {
        self.config.validate()?;
        if self.leapfrog == 0 {
            return Err(Error::Option(
                "HMC needs at least 1 leapfrog step (--leapfrog)".into(),
            ));
        }
        chains.refresh(b, net)?;
        let (rows, dim) = chains.shape();
        let len = rows * dim;
        let mut p = match chains.momentum.take() {
            Some(p) => p,
            None => b.zeros(len)?,
        };
        let c = &self.config;
        let (eps, kick) = (c.step_size, c.step_size / c.temperature);
        for k in 0..c.steps as u64 {
            let test = c.test(rows, dim, self.seed, first_step + k);
            HmcMomentum(test).run(b, &mut p);
            b.copy(&chains.x, 0, &mut chains.x_prop, 0, len);
            // Leapfrog: half a kick, then L drifts each followed by a kick (a half one last).
            b.axpy(-0.5 * kick, &chains.grad, &mut p, len);
            for l in 0..self.leapfrog {
                b.axpy(eps, &p, &mut chains.x_prop, len);
                ExactChains::hold_fixed(&chains.fixed, b, &mut chains.x_prop);
                let (energy, grad) = net.energies_and_input_grad(b, &chains.x_prop, rows)?;
                let grad = ExactChains::proposal_grad(&mut chains.fixed, b, grad, len);
                if l + 1 < self.leapfrog {
                    b.axpy(-kick, grad, &mut p, len);
                } else {
                    b.axpy(-0.5 * kick, grad, &mut p, len);
                    HmcAccept(test).run(
                        b,
                        [&chains.x_prop, grad, energy, &p],
                        [&mut chains.x, &mut chains.grad, &mut chains.energy],
                        &mut chains.stats,
                    );
                }
            }
        }
        chains.momentum = Some(p);
        chains.tested(c.steps);
        Ok(())
    }
}
