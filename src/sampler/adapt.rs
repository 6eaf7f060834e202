//! Step-size adaptation by dual averaging (Hoffman & Gelman 2014, §3.2.1; what Stan and
//! NUTS use): during a warm-up, each step's mean acceptance probability over the chain batch
//! nudges log ε towards a target acceptance; after it, ε is frozen at the running average
//! of the log steps, which is what keeps the sampler exact from then on (an ε that kept
//! moving with the chains would not be).
//!
//! The acceptance of each warm-up step is read back from the device (one number per step);
//! the steps after the warm-up run with no readback.
//!
//! ```
//! use ebm::sampler::adapt::DualAveraging;
//!
//! // A toy sampler whose acceptance falls as ε grows: a(ε) = exp(−ε).
//! let mut adapt = DualAveraging::new(1.0, 0.574);
//! let mut eps = 1.0;
//! for _ in 0..500 {
//!     eps = adapt.update((-eps as f64).exp());
//! }
//! // −ln 0.574 = 0.555: the ε at which a(ε) hits the target.
//! assert!((adapt.final_step() - 0.555).abs() < 0.01);
//! ```

use serde::{Deserialize, Serialize};

/// Step-size adaptation of a training run: the first `warmup` iterations adapt ε towards
/// acceptance `target` (each reads its acceptance back), then ε stays frozen.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Adaptation {
    /// Iterations of warm-up.
    pub warmup: u64,
    /// The acceptance to reach.
    pub target: f64,
}

/// The dual-averaging state for one chain batch.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct DualAveraging {
    /// The acceptance probability to reach (0.574 for MALA, 0.65 for HMC).
    pub target: f64,
    /// μ = log(10·ε₀): where log ε is shrunk towards.
    mu: f64,
    /// H̄: the running mean of (target − acceptance).
    h_bar: f64,
    /// log ε̄: the weighted running average of log ε, the final step.
    log_eps_bar: f64,
    /// Updates so far.
    m: u64,
}

/// Hoffman & Gelman's defaults: γ (shrinkage), t₀ (early-iteration damping), κ (the decay
/// of the averaging weights).
const GAMMA: f64 = 0.05;
const T0: f64 = 10.0;
const KAPPA: f64 = 0.75;

/// The default target acceptance of MALA (Roberts & Rosenthal 1998's optimal 0.574).
pub const MALA_TARGET: f64 = 0.574;
/// The default target acceptance of HMC (Neal 2011; Beskos et al. 2013's 0.651).
pub const HMC_TARGET: f64 = 0.65;

impl DualAveraging {
    /// Start from step `eps0` towards acceptance `target`.
    pub fn new(eps0: f32, target: f64) -> Self {
        DualAveraging {
            target,
            mu: (10.0 * eps0 as f64).ln(),
            h_bar: 0.0,
            log_eps_bar: (eps0 as f64).ln(),
            m: 0,
        }
    }

    /// Take one step's mean acceptance probability; returns the ε for the next step.
    pub fn update(&mut self, acceptance: f64) -> f32 {
        self.m += 1;
        let m = self.m as f64;
        let acceptance = if acceptance.is_finite() {
            acceptance.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let w = 1.0 / (m + T0);
        self.h_bar = (1.0 - w) * self.h_bar + w * (self.target - acceptance);
        let log_eps = self.mu - m.sqrt() / GAMMA * self.h_bar;
        let eta = m.powf(-KAPPA);
        self.log_eps_bar = eta * log_eps + (1.0 - eta) * self.log_eps_bar;
        log_eps.exp() as f32
    }

    /// The step to freeze after the warm-up: ε̄.
    pub fn final_step(&self) -> f32 {
        self.log_eps_bar.exp() as f32
    }
}
