//! Annealed importance sampling (Neal 2001): the log partition function log Z of
//! p(x) ∝ exp(−E(x)) on the box [lo, hi]^D, and so the model's normalised log-likelihood.
//!
//! Chains start from the base distribution, uniform on the box (Philox stream 1), and
//! move through the ladder of targets p_β(x) ∝ exp(−β·E(x)), β = 0 → 1. Before each level a
//! chain's log weight gains −(β_k − β_{k−1})·E(x); then MALA or HMC at temperature 1/β_k,
//! which leave p_{β_k} invariant, moves it. The mean of the weights estimates
//! Z / Z_base without bias, and log Z = D·log(hi − lo) + log mean w; the log of an unbiased
//! estimate is biased low by about half its relative variance, which the effective sample
//! size reports. All levels run on the device: energies and weights stay there until the end.
//!
//! The ladder: β₀ = 0, then `levels` values geometric from 10⁻³ to 1 (the density changes
//! fastest, relative to β, at small β).
//!
//! ```
//! use ebm::sampler::ais::{Ais, Transition};
//! use ebm::{CpuBackend, EnergyNet, Spec};
//!
//! # fn main() -> ebm::Result<()> {
//! let b = CpuBackend::new();
//! // E(x) = 0 on the box [−1, 1]²: Z is its area, 4, whatever the chains do.
//! let spec = Spec::from_json(r#"{"input": [2], "layers": [{"type": "linear", "in": 2, "out": 1}]}"#)?;
//! let mut net = EnergyNet::from_params(&b, &spec, |_, shape| Ok(vec![0.0; shape.iter().product()]))?;
//! let ais = Ais {
//!     chains: 100, levels: 10, steps_per_level: 1, step_size: 0.1,
//!     transition: Transition::Mala, lo: -1.0, hi: 1.0, seed: 0,
//! };
//! let estimate = ais.run(&b, &mut net)?;
//! assert!((estimate.log_z - 4f64.ln()).abs() < 1e-6);
//! assert_eq!(estimate.effective_chains, 100.0);
//! # Ok(())
//! # }
//! ```

use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::nn::EnergyNet;
use crate::sampler::langevin::uniform_starts;
use crate::sampler::{Acceptance, ExactChains, ExactConfig, Hmc, Mala};
use crate::{Error, Result};

/// The move at each level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Transition {
    /// MALA steps.
    Mala,
    /// HMC trajectories of `leapfrog` steps.
    Hmc {
        /// L.
        leapfrog: usize,
    },
}

/// The settings of an AIS run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ais {
    /// Independent chains (weights).
    pub chains: usize,
    /// Levels of the ladder after β = 0.
    pub levels: usize,
    /// MALA steps or HMC trajectories per level.
    pub steps_per_level: usize,
    /// ε of the transitions (the same at every level; at temperature 1/β MALA's drift is
    /// ε·β·∇E and its noise √(2ε)).
    pub step_size: f32,
    /// MALA or HMC.
    pub transition: Transition,
    /// The box of the base distribution and of every target.
    pub lo: f32,
    /// Upper end of the box.
    pub hi: f32,
    /// The Philox key of the starts, moves and tests.
    pub seed: u64,
}

/// What an AIS run estimates.
#[derive(Clone, Debug, PartialEq)]
pub struct AisEstimate {
    /// log Z of exp(−E) on the box (nats).
    pub log_z: f64,
    /// The standard error of `log_z` (delta method: sd(w) / (√N·mean w)).
    pub std_err: f64,
    /// (Σw)² / Σw²: how many of the chains the estimate effectively rests on.
    pub effective_chains: f64,
    /// Each chain's log weight.
    pub log_weights: Vec<f64>,
    /// Acceptance of the transitions over the run.
    pub acceptance: Acceptance,
}

impl Ais {
    /// The inverse temperatures β₁ … β_levels (β₀ = 0 is implicit).
    pub fn ladder(&self) -> Vec<f64> {
        let n = self.levels;
        let low: f64 = 1e-3;
        (1..=n)
            .map(|k| match n {
                1 => 1.0,
                _ => low.powf((n - k) as f64 / (n - 1) as f64),
            })
            .collect()
    }

    fn validate(&self) -> Result<()> {
        if self.chains == 0 || self.levels == 0 || self.steps_per_level == 0 {
            return Err(Error::Option(format!(
                "AIS needs at least one chain, level and step per level (got {}, {}, {})",
                self.chains, self.levels, self.steps_per_level
            )));
        }
        if let Transition::Hmc { leapfrog: 0 } = self.transition {
            return Err(Error::Option("HMC needs at least 1 leapfrog step".into()));
        }
        Ok(())
    }

    /// Run the ladder on `net` and estimate log Z.
    pub fn run<B: Backend>(&self, b: &B, net: &mut EnergyNet<B>) -> Result<AisEstimate> {
        self.validate()?;
        let (rows, dim) = (self.chains, net.input_len());
        let level_config = |beta: f64| ExactConfig {
            steps: self.steps_per_level,
            step_size: self.step_size,
            temperature: (1.0 / beta) as f32,
            lo: self.lo,
            hi: self.hi,
        };
        level_config(1.0).validate()?;
        let start = uniform_starts(self.seed, rows, dim, self.lo, self.hi);
        let mut chains = ExactChains::new(b, b.upload(&start)?, rows, dim)?;
        chains.refresh(b, net)?;
        let mut log_w = b.zeros(rows)?;
        let mut beta_before = 0.0;
        for (level, &beta) in self.ladder().iter().enumerate() {
            b.axpy(
                -(beta - beta_before) as f32,
                &chains.energy,
                &mut log_w,
                rows,
            );
            beta_before = beta;
            let config = level_config(beta);
            let first_step = (level * self.steps_per_level) as u64;
            match self.transition {
                Transition::Mala => Mala {
                    config,
                    seed: self.seed,
                }
                .run(b, net, &mut chains, first_step)?,
                Transition::Hmc { leapfrog } => Hmc {
                    config,
                    leapfrog,
                    seed: self.seed,
                }
                .run(b, net, &mut chains, first_step)?,
            }
        }
        let log_weights: Vec<f64> = b.read(&log_w)?.iter().map(|&w| w as f64).collect();
        if let Some(bad) = log_weights.iter().find(|w| !w.is_finite()) {
            return Err(Error::NonFinite(format!(
                "AIS: a chain's log weight is {bad} (the energy is not finite somewhere on the box)"
            )));
        }
        let (log_mean, std_err, effective_chains) = weight_summary(&log_weights);
        let log_volume = dim as f64 * (self.hi as f64 - self.lo as f64).ln();
        Ok(AisEstimate {
            log_z: log_volume + log_mean,
            std_err,
            effective_chains,
            log_weights,
            acceptance: chains.acceptance(b)?,
        })
    }
}

/// log mean w, the delta-method standard error of it, and the effective sample size, from
/// log weights (scaled by the largest, so nothing overflows).
fn weight_summary(log_w: &[f64]) -> (f64, f64, f64) {
    let n = log_w.len() as f64;
    let top = log_w.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let w: Vec<f64> = log_w.iter().map(|l| (l - top).exp()).collect();
    let sum: f64 = w.iter().sum();
    let sum_sq: f64 = w.iter().map(|v| v * v).sum();
    let mean = sum / n;
    let var = (sum_sq / n - mean * mean).max(0.0) * n / (n - 1.0).max(1.0);
    (
        top + mean.ln(),
        var.sqrt() / (n.sqrt() * mean),
        sum * sum / sum_sq,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_summary_of_known_weights() {
        // Weights 1 and 3 (times e^100, which must not overflow): mean 2, sd √2.
        let (log_mean, se, ess) = weight_summary(&[100.0, 100.0 + 3f64.ln()]);
        assert!((log_mean - (100.0 + 2f64.ln())).abs() < 1e-12);
        assert!((se - 2f64.sqrt() / (2f64.sqrt() * 2.0)).abs() < 1e-12);
        assert!((ess - 16.0 / 10.0).abs() < 1e-12);
    }

    #[test]
    fn the_ladder_climbs_to_one() {
        let ais = Ais {
            chains: 1,
            levels: 4,
            steps_per_level: 1,
            step_size: 0.1,
            transition: Transition::Mala,
            lo: -1.0,
            hi: 1.0,
            seed: 0,
        };
        let ladder = ais.ladder();
        assert_eq!(ladder.len(), 4);
        assert!((ladder[0] - 1e-3).abs() < 1e-15 && ladder[3] == 1.0);
        assert!(ladder.windows(2).all(|w| w[0] < w[1]));
    }
}
