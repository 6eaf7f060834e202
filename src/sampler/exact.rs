//! What the exact samplers (MALA, HMC) share: their settings in the temperature form and the
//! chains' state on the device — the current E(x) and ∇ₓE(x) that each Metropolis test
//! compares against, the proposal buffers and the acceptance counts.
//!
//! Target: p(x) ∝ exp(−E(x)/T) on the box [lo, hi]^dim; a proposal that leaves the box is
//! rejected (no clamp: clamping would change the proposal density and break exactness).

use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::nn::EnergyNet;
use crate::sampler::metropolis::{Acceptance, MetropolisTest};
use crate::{Error, Result};

/// Which sampler a training run's chains use: the settings not shared with Langevin (K,
/// ε = the Langevin step size and the box come from [`LangevinConfig`](super::LangevinConfig)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Method {
    /// Unadjusted Langevin with the run's step, noise, clip and clamp.
    #[default]
    Ula,
    /// MALA at temperature T, ε = the step size.
    Mala {
        /// T of the target exp(−E/T).
        temperature: f32,
    },
    /// HMC at temperature T: L leapfrog steps of ε = the step size per trajectory.
    Hmc {
        /// T of the target exp(−E/T).
        temperature: f32,
        /// L.
        leapfrog: usize,
    },
}

impl Method {
    /// Check the settings, naming the bad one.
    pub fn validate(&self) -> Result<()> {
        let (temperature, leapfrog) = match *self {
            Method::Ula => return Ok(()),
            Method::Mala { temperature } => (temperature, 1),
            Method::Hmc {
                temperature,
                leapfrog,
            } => (temperature, leapfrog),
        };
        if !(temperature.is_finite() && temperature > 0.0) {
            return Err(Error::Option(format!(
                "temperature {temperature} must be finite and > 0"
            )));
        }
        if leapfrog == 0 {
            return Err(Error::Option(
                "HMC needs at least 1 leapfrog step (--leapfrog)".into(),
            ));
        }
        Ok(())
    }

    /// The name on the command line.
    pub fn name(&self) -> &'static str {
        match self {
            Method::Ula => "ula",
            Method::Mala { .. } => "mala",
            Method::Hmc { .. } => "hmc",
        }
    }
}

/// The settings of MALA and HMC.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExactConfig {
    /// K: Metropolis tests per run.
    pub steps: usize,
    /// ε: MALA proposes x − (ε/T)∇E + √(2ε)ξ; HMC's leapfrog step.
    pub step_size: f32,
    /// T of the target exp(−E/T).
    pub temperature: f32,
    /// The box [lo, hi] outside which the target is 0.
    pub lo: f32,
    /// Upper end of the box.
    pub hi: f32,
}

impl ExactConfig {
    /// Check the settings, naming the bad one.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(Error::Option(what));
        if self.steps == 0 {
            return bad("sampler steps K must be at least 1".into());
        }
        if !(self.step_size.is_finite() && self.step_size > 0.0) {
            return bad(format!(
                "step size ε = {} must be finite and > 0",
                self.step_size
            ));
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return bad(format!(
                "temperature {} must be finite and > 0",
                self.temperature
            ));
        }
        if !(self.lo.is_finite() && self.hi.is_finite()) || self.lo >= self.hi {
            return bad(format!(
                "sampler box [{}, {}] needs finite lo < hi",
                self.lo, self.hi
            ));
        }
        Ok(())
    }

    /// The Metropolis test of global step `step` on `rows` chains of `dim`.
    pub(crate) fn test(&self, rows: usize, dim: usize, seed: u64, step: u64) -> MetropolisTest {
        MetropolisTest {
            rows,
            dim,
            eps: self.step_size,
            temperature: self.temperature,
            lo: self.lo,
            hi: self.hi,
            seed,
            global_step: step as u32,
            chain_offset: 0,
        }
    }
}

/// A batch of chains of an exact sampler, on the device: the positions and what the next
/// Metropolis test needs of them.
///
/// E(x) and ∇ₓE(x) are computed once, at the first run, and then carried from test to test
/// (an accepted proposal brings its own). After the net's parameters change (a training
/// step), call [`net_changed`](Self::net_changed) so the next run computes them again.
pub struct ExactChains<B: Backend> {
    rows: usize,
    dim: usize,
    pub(crate) x: B::Tensor,
    pub(crate) grad: B::Tensor,
    pub(crate) energy: B::Tensor,
    pub(crate) x_prop: B::Tensor,
    /// HMC's momenta, made at its first run.
    pub(crate) momentum: Option<B::Tensor>,
    /// `[2·rows]`: accepted tests per chain, then Σ min(1, α) per chain.
    pub(crate) stats: B::Tensor,
    /// Inpainting: the values held fixed where the mask is non-zero, and what the samplers
    /// need for that (see [`with_fixed`](Self::with_fixed)).
    pub(crate) fixed: Option<Fixed<B>>,
    tests: usize,
    current: bool,
}

impl<B: Backend> ExactChains<B> {
    /// Chains starting at `x` (`[rows, dim]`, taken over).
    pub fn new(b: &B, x: B::Tensor, rows: usize, dim: usize) -> Result<Self> {
        if rows == 0 || dim == 0 || b.len(&x) < rows * dim {
            return Err(Error::Shape(format!(
                "exact sampler: {} values for {rows} chains of {dim}",
                b.len(&x)
            )));
        }
        Ok(ExactChains {
            rows,
            dim,
            x,
            grad: b.zeros(rows * dim)?,
            energy: b.zeros(rows)?,
            x_prop: b.zeros(rows * dim)?,
            momentum: None,
            stats: b.zeros(2 * rows)?,
            fixed: None,
            tests: 0,
            current: false,
        })
    }

    /// Hold the values of `known` fixed wherever `mask` ≠ 0 (both `[rows, dim]`): the
    /// samplers then sample p(x_free | x_fixed) exactly. The fixed values are written into
    /// the chains now; the gradient there is zeroed, so MALA's proposal and its density ratio,
    /// and HMC's momenta and kinetic energy, involve the free values only (HMC's momenta on
    /// fixed values never change, and cancel in the test).
    pub fn with_fixed(mut self, b: &B, known: B::Tensor, mask: B::Tensor) -> Result<Self> {
        let len = self.rows * self.dim;
        if b.len(&known) < len || b.len(&mask) < len {
            return Err(Error::Shape(format!(
                "fixed values: {} known values and {} mask values for {len}",
                b.len(&known),
                b.len(&mask)
            )));
        }
        b.keep_known(&mut self.x, &known, &mask);
        self.fixed = Some(Fixed {
            known,
            mask,
            zeros: b.zeros(len)?,
            grad_prop: b.zeros(len)?,
        });
        self.current = false;
        Ok(self)
    }

    /// Chains.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The chains' positions `[rows, dim]`.
    pub fn x(&self) -> &B::Tensor {
        &self.x
    }

    /// The positions, giving up the rest.
    pub fn into_x(self) -> B::Tensor {
        self.x
    }

    /// Start the chains at `x` (`[rows, dim]`) instead: a training iteration's chains drawn
    /// from the replay buffer. E and ∇E are computed again before the next test.
    pub fn load(&mut self, b: &B, x: &B::Tensor) {
        b.copy(x, 0, &mut self.x, 0, self.rows * self.dim);
        if let Some(f) = &self.fixed {
            b.keep_known(&mut self.x, &f.known, &f.mask);
        }
        self.current = false;
    }

    /// The net's parameters changed: E and ∇E are computed again before the next test.
    pub fn net_changed(&mut self) {
        self.current = false;
    }

    /// Acceptance over every test so far (a readback).
    pub fn acceptance(&self, b: &B) -> Result<Acceptance> {
        Acceptance::read(b, &self.stats, self.rows, self.tests)
    }

    /// Start counting acceptance afresh (after a warm-up, say).
    pub fn reset_acceptance(&mut self, b: &B) {
        b.fill(&mut self.stats, 0.0);
        self.tests = 0;
    }

    /// E(x) and ∇ₓE(x) of the current positions, where they are not known yet; checks that
    /// `net` takes chains of this length.
    pub(crate) fn refresh(&mut self, b: &B, net: &mut EnergyNet<B>) -> Result<()> {
        if net.input_len() != self.dim {
            return Err(Error::Shape(format!(
                "exact sampler: chains of {} values for a net that takes {}",
                self.dim,
                net.input_len()
            )));
        }
        if !self.current {
            let (energy, grad) = net.energies_and_input_grad(b, &self.x, self.rows)?;
            b.copy(energy, 0, &mut self.energy, 0, self.rows);
            b.copy(grad, 0, &mut self.grad, 0, self.rows * self.dim);
            if let Some(f) = &self.fixed {
                b.keep_known(&mut self.grad, &f.zeros, &f.mask);
            }
            self.current = true;
        }
        Ok(())
    }

    /// E and ∇E at the proposal `x_prop`: the net's own buffers, or, with fixed values, the
    /// gradient copied and zeroed where they are fixed.
    pub(crate) fn proposal_grad<'a>(
        fixed: &'a mut Option<Fixed<B>>,
        b: &B,
        grad: &'a B::Tensor,
        len: usize,
    ) -> &'a B::Tensor {
        match fixed {
            None => grad,
            Some(f) => {
                b.copy(grad, 0, &mut f.grad_prop, 0, len);
                b.keep_known(&mut f.grad_prop, &f.zeros, &f.mask);
                &f.grad_prop
            }
        }
    }

    /// Put the fixed values back into the proposal.
    pub(crate) fn hold_fixed(fixed: &Option<Fixed<B>>, b: &B, x_prop: &mut B::Tensor) {
        if let Some(f) = fixed {
            b.keep_known(x_prop, &f.known, &f.mask);
        }
    }

    /// `tests` more Metropolis tests were recorded.
    pub(crate) fn tested(&mut self, tests: usize) {
        self.tests += tests;
    }

    /// (rows, dim).
    pub(crate) fn shape(&self) -> (usize, usize) {
        (self.rows, self.dim)
    }
}

/// MALA and HMC alike: what step-size adaptation and the commands drive.
pub trait MetropolisSampler {
    /// The settings.
    fn config(&self) -> &ExactConfig;
    /// The settings, to change ε or K between runs.
    fn config_mut(&mut self) -> &mut ExactConfig;
    /// The acceptance dual averaging aims for by default (0.574 MALA, 0.65 HMC).
    fn default_target(&self) -> f64;
    /// K steps on `chains` from global step `first_step` (see [`Mala::run`](super::Mala::run)).
    fn run<B: Backend>(
        &self,
        b: &B,
        net: &mut EnergyNet<B>,
        chains: &mut ExactChains<B>,
        first_step: u64,
    ) -> Result<()>;

    /// Warm up for `steps` single steps (global steps `first_step..`), adapting ε by dual
    /// averaging ([`DualAveraging`](super::adapt::DualAveraging)) towards acceptance `target`;
    /// then freeze ε at the averaged step, restart the acceptance counts, and return ε. Each
    /// warm-up step reads its acceptance back; the runs after it do not.
    fn warm_up<B: Backend>(
        &mut self,
        b: &B,
        net: &mut EnergyNet<B>,
        chains: &mut ExactChains<B>,
        steps: usize,
        first_step: u64,
        target: f64,
    ) -> Result<f32> {
        if !(target > 0.0 && target < 1.0) {
            return Err(Error::Option(format!(
                "target acceptance {target} must lie strictly between 0 and 1"
            )));
        }
        let mut adapt = super::adapt::DualAveraging::new(self.config().step_size, target);
        let run_steps = self.config().steps;
        self.config_mut().steps = 1;
        for k in 0..steps as u64 {
            chains.reset_acceptance(b);
            self.run(b, net, chains, first_step + k)?;
            let acceptance = chains.acceptance(b)?.mean_probability;
            self.config_mut().step_size = adapt.update(acceptance);
        }
        let eps = adapt.final_step();
        let config = self.config_mut();
        (config.steps, config.step_size) = (run_steps, eps);
        chains.reset_acceptance(b);
        Ok(eps)
    }
}

/// What holding some values fixed needs on the device.
pub(crate) struct Fixed<B: Backend> {
    known: B::Tensor,
    mask: B::Tensor,
    zeros: B::Tensor,
    /// ∇E at the proposal, zeroed where fixed.
    grad_prop: B::Tensor,
}
