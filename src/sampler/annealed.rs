//! Annealed Langevin: unadjusted Langevin down a geometric temperature ladder
//! T_max → … → 1, a share of the K steps at each level (NCSN's annealing, in the
//! temperature form of an energy that has no noise level of its own).
//!
//! Temperature T multiplies the target's log-density by 1/T: ULA's
//! x ← clamp(x − step·∇E + noise·ξ) samples exp(−E/T_eff) with T_eff = noise²/(2·step), so
//! level l keeps the step and scales the noise by √T_l. The last level (T = 1) is exactly
//! [`Langevin`] with the same settings; the hot levels first let chains cross the barriers
//! between modes that a chain at T = 1 never crosses. Each level runs as one
//! [`Langevin::run`], fused for MLP energies.
//!
//! ```
//! use ebm::sampler::{Annealed, Langevin, LangevinConfig};
//! use ebm::{Backend, CpuBackend, EnergyNet, Spec};
//!
//! # fn main() -> ebm::Result<()> {
//! let b = CpuBackend::new();
//! let mut net = EnergyNet::new(&b, &Spec::builtin("toy2d")?, 0)?;
//! let config = LangevinConfig { steps: 100, step_size: 0.01, noise: 0.14, grad_clip: None, lo: -4.0, hi: 4.0 };
//! let annealed = Annealed { langevin: Langevin { config, seed: 0 }, levels: 5, t_max: 100.0 };
//! assert_eq!(annealed.temperatures().first(), Some(&100.0));
//! assert_eq!(annealed.temperatures().last(), Some(&1.0));
//! let mut x = b.upload(&annealed.langevin.noise(50, 2))?;
//! annealed.run(&b, &mut net, &mut x, 50, 0)?;
//! # Ok(())
//! # }
//! ```

use crate::backend::Backend;
use crate::nn::EnergyNet;
use crate::sampler::{Langevin, LangevinConfig};
use crate::{Error, Result};

/// ULA down a temperature ladder.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Annealed {
    /// The chain at T = 1: K (all levels together), step, noise, clip, box and seed.
    pub langevin: Langevin,
    /// Levels of the ladder (≥ 1; K/levels steps each, the remainder spread over the last
    /// ones).
    pub levels: usize,
    /// The first level's temperature (≥ 1).
    pub t_max: f32,
}

impl Annealed {
    /// T_l, geometric from `t_max` down to 1.
    pub fn temperatures(&self) -> Vec<f32> {
        let n = self.levels.max(1);
        (0..n)
            .map(|l| match n {
                1 => 1.0,
                _ => self.t_max.powf((n - 1 - l) as f32 / (n - 1) as f32),
            })
            .collect()
    }

    /// Check the settings, naming the bad one.
    pub fn validate(&self) -> Result<()> {
        self.langevin.config.validate()?;
        if self.levels == 0 || self.levels > self.langevin.config.steps {
            return Err(Error::Option(format!(
                "annealing needs 1 to K = {} levels, got {}",
                self.langevin.config.steps, self.levels
            )));
        }
        if !(self.t_max.is_finite() && self.t_max >= 1.0) {
            return Err(Error::Option(format!(
                "the annealing's top temperature {} must be finite and ≥ 1",
                self.t_max
            )));
        }
        Ok(())
    }

    /// Level `l`'s chain: its share of the steps, the noise scaled by √T_l.
    pub fn level(&self, l: usize) -> Langevin {
        let (k, n) = (self.langevin.config.steps, self.levels.max(1));
        let steps = k / n + usize::from(l >= n - k % n);
        let t = self.temperatures()[l];
        Langevin {
            config: LangevinConfig {
                steps,
                noise: self.langevin.config.noise * t.sqrt(),
                ..self.langevin.config
            },
            seed: self.langevin.seed,
        }
    }

    /// [`run`](Self::run) with the values of `known` held fixed wherever `mask` ≠ 0 after
    /// every step: inpainting down the temperature ladder.
    pub fn run_inpainting<B: Backend>(
        &self,
        b: &B,
        net: &mut EnergyNet<B>,
        x: &mut B::Tensor,
        rows: usize,
        known: &B::Tensor,
        mask: &B::Tensor,
    ) -> Result<()> {
        b.keep_known(x, known, mask);
        self.run_levels(b, net, x, rows, 0, Some((known, mask)))
    }

    /// All levels on `rows` chains in `x`, in place; level l's steps draw the noise of the
    /// global steps that follow the previous level's, from `first_step`.
    pub fn run<B: Backend>(
        &self,
        b: &B,
        net: &mut EnergyNet<B>,
        x: &mut B::Tensor,
        rows: usize,
        first_step: u64,
    ) -> Result<()> {
        self.run_levels(b, net, x, rows, first_step, None)
    }

    /// The ladder, with or without fixed values; each level continues the global step count
    /// of the one before, so no two levels share noise.
    fn run_levels<B: Backend>(
        &self,
        b: &B,
        net: &mut EnergyNet<B>,
        x: &mut B::Tensor,
        rows: usize,
        first_step: u64,
        fixed: Option<(&B::Tensor, &B::Tensor)>,
    ) -> Result<()> {
        self.validate()?;
        let mut step = first_step;
        for l in 0..self.levels {
            let level = self.level(l);
            match fixed {
                None => level.run(b, net, x, rows, step)?,
                Some(_) => level.run_with(b, net, x, rows, step, fixed)?,
            }
            step += level.config.steps as u64;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_share_the_steps_and_scale_the_noise() {
        let config = LangevinConfig {
            steps: 10,
            step_size: 0.1,
            noise: 0.5,
            grad_clip: None,
            lo: -1.0,
            hi: 1.0,
        };
        let annealed = Annealed {
            langevin: Langevin { config, seed: 0 },
            levels: 3,
            t_max: 16.0,
        };
        let steps: Vec<usize> = (0..3).map(|l| annealed.level(l).config.steps).collect();
        assert_eq!(steps, [3, 3, 4]);
        let noise: Vec<f32> = (0..3).map(|l| annealed.level(l).config.noise).collect();
        assert_eq!(noise, [2.0, 1.0, 0.5]);
        assert!(Annealed {
            levels: 11,
            ..annealed
        }
        .validate()
        .is_err());
        assert!(Annealed {
            t_max: 0.5,
            ..annealed
        }
        .validate()
        .is_err());
    }
}
