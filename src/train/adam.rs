//! Adam (PyTorch semantics) with optional global gradient-norm clipping, all on the device:
//! the norm is reduced into a small buffer that the update kernel reads, so clipping needs
//! no readback.
//!
//! ```
//! use ebm::nn::Param;
//! use ebm::train::{Adam, AdamConfig};
//! use ebm::{Backend, CpuBackend};
//!
//! # fn main() -> ebm::Result<()> {
//! let b = CpuBackend::new();
//! // One parameter p and the loss (p − 3)², whose gradient is 2(p − 3).
//! let (value, grad) = (b.upload(&[0.0])?, b.zeros(1)?);
//! let mut params = vec![Param { name: "p".into(), shape: vec![1], value, grad }];
//! let config = AdamConfig { lr: 0.1, ..AdamConfig::default() };
//! let mut adam = Adam::new(&b, config, &params)?;
//! for _ in 0..300 {
//!     let p = b.read(&params[0].value)?[0];
//!     b.write(&mut params[0].grad, 0, &[2.0 * (p - 3.0)])?;
//!     adam.step(&b, &mut params);
//! }
//! let p = b.read(&params[0].value)?[0];
//! assert!((p - 3.0).abs() < 0.05, "p = {p}");
//! assert_eq!(adam.t, 300);
//! # Ok(())
//! # }
//! ```

use serde::{Deserialize, Serialize};

use super::AdamUpdate;
use crate::backend::Backend;
use crate::nn::Param;
use crate::{Error, Result};

/// Adam's settings.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdamConfig {
    /// Learning rate, > 0 (PyTorch's `lr`; default 1e-3).
    pub lr: f32,
    /// Decay rate β₁ ∈ [0, 1) of the running mean of gradients (default 0.9).
    pub beta1: f32,
    /// Decay rate β₂ ∈ [0, 1) of the running mean of squared gradients (default 0.999).
    pub beta2: f32,
    /// Added to √v̂ in the denominator against division by zero (default 1e-8).
    pub eps: f32,
    /// Clip the global gradient norm to this value (PyTorch's clip_grad_norm_).
    pub max_grad_norm: Option<f32>,
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            max_grad_norm: None,
        }
    }
}

impl AdamConfig {
    /// Check the settings, naming the bad one.
    pub fn validate(&self) -> Result<()> {
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::Option(format!(
                "learning rate {} must be > 0",
                self.lr
            )));
        }
        if !(0.0..1.0).contains(&self.beta1) || !(0.0..1.0).contains(&self.beta2) {
            return Err(Error::Option("Adam betas must be in [0, 1)".into()));
        }
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return Err(Error::Option(format!("Adam eps {} must be > 0", self.eps)));
        }
        if let Some(c) = self.max_grad_norm {
            if !(c.is_finite() && c > 0.0) {
                return Err(Error::Option(format!("gradient clip norm {c} must be > 0")));
            }
        }
        Ok(())
    }
}

/// Adam's moments, one pair per parameter, and the step count.
///
/// It follows an [`EnergyNet`](crate::EnergyNet)'s parameters in order: build it from
/// `net.params()`, step it with `net.params_mut()` after each backward pass.
///
/// ```
/// use ebm::train::{Adam, AdamConfig};
/// use ebm::{Backend, CpuBackend, EnergyNet, Spec};
///
/// # fn main() -> ebm::Result<()> {
/// let b = CpuBackend::new();
/// let mut net = EnergyNet::new(&b, &Spec::mlp(2, 8, 1), 0)?;
/// let mut adam = Adam::new(&b, AdamConfig::default(), net.params())?;
/// let x = b.upload(&[1.0, -1.0])?;
/// let before = net.energies(&b, &[1.0, -1.0])?[0];
/// // Lower E(x): gradients of 1·E(x), then one step against them.
/// net.forward(&b, &x, 1)?;
/// net.backward_params(&b, 1, &b.upload(&[1.0])?)?;
/// adam.step(&b, net.params_mut());
/// assert!(net.energies(&b, &[1.0, -1.0])?[0] < before);
/// # Ok(())
/// # }
/// ```
pub struct Adam<B: Backend> {
    /// The settings; [`step`](Self::step) reads them at every call, so changing `lr` between
    /// steps is a learning-rate schedule.
    pub config: AdamConfig,
    /// First moments, in parameter order.
    pub m: Vec<B::Tensor>,
    /// Second moments, in parameter order.
    pub v: Vec<B::Tensor>,
    /// Steps taken so far.
    pub t: u64,
    norms: B::Tensor,
}

impl<B: Backend> Adam<B> {
    /// Zero moments for `params`; an error if `config` is out of range.
    pub fn new(b: &B, config: AdamConfig, params: &[Param<B>]) -> Result<Self> {
        config.validate()?;
        let zeros = |p: &Param<B>| b.zeros(p.shape.iter().product());
        Ok(Adam {
            config,
            m: params.iter().map(zeros).collect::<Result<_>>()?,
            v: params.iter().map(zeros).collect::<Result<_>>()?,
            t: 0,
            norms: b.zeros(params.len().max(1))?,
        })
    }

    /// One update of every parameter from its `grad`.
    pub fn step(&mut self, b: &B, params: &mut [Param<B>]) {
        self.t += 1;
        let c = &self.config;
        if c.max_grad_norm.is_some() {
            for (slot, p) in params.iter().enumerate() {
                b.sum_squares(&p.grad, &mut self.norms, slot);
            }
        }
        let update = AdamUpdate {
            lr: c.lr,
            beta1: c.beta1,
            beta2: c.beta2,
            eps: c.eps,
            bias_correction1: 1.0 - c.beta1.powi(self.t as i32),
            bias_correction2: 1.0 - c.beta2.powi(self.t as i32),
            max_grad_norm: c.max_grad_norm,
            norm_slots: params.len(),
        };
        for ((p, m), v) in params.iter_mut().zip(&mut self.m).zip(&mut self.v) {
            update.run(b, &mut p.value, &p.grad, m, v, &self.norms);
        }
    }
}
