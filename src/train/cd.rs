//! One contrastive-divergence iteration, recorded on the device end to end:
//! draw chains from the replay buffer → K Langevin steps → write them back → energies of
//! data and samples in one batch → CD loss (IGEBM form) → parameter gradients → Adam.
//! Nothing is read back unless the caller asks for [`Trainer::stats`].
//!
//! A run is a [`TrainConfig`] (start from [`TrainConfig::toy2d`] or fill one in), a net and
//! batches of data:
//!
//! ```
//! use ebm::data::Toy2d;
//! use ebm::train::{TrainConfig, Trainer};
//! use ebm::{CpuBackend, EnergyNet, Spec};
//!
//! # fn main() -> ebm::Result<()> {
//! let b = CpuBackend::new();
//! let mut config = TrainConfig::toy2d(0);
//! config.batch = 32;
//! config.buffer_size = 128;
//! config.langevin.steps = 10;
//! let net = EnergyNet::new(&b, &Spec::mlp(2, 32, 2), config.seed)?;
//! let mut trainer = Trainer::new(&b, net, config)?;
//! for t in 0..5 {
//!     trainer.step(&b, &Toy2d::Moons.sample(0, t, 32))?;
//! }
//! let stats = trainer.stats(&b)?;
//! assert_eq!(trainer.iteration, 5);
//! assert!(stats.loss.is_finite());
//! # Ok(())
//! # }
//! ```

use std::ops::ControlFlow;

use serde::{Deserialize, Serialize};

use super::adam::{Adam, AdamConfig};
use super::loss::ObjectiveLoss;
use super::{FlagNonFinite, Objective};
use crate::backend::{column_index, Backend};
use crate::data::DataSource;
use crate::nn::EnergyNet;
use crate::sampler::adapt::{Adaptation, DualAveraging};
use crate::sampler::{Acceptance, ExactChains, ExactConfig, Hmc, Mala, Method};
use crate::sampler::{Langevin, LangevinConfig, ReplayBuffer};
use crate::{Error, Result};

/// Everything that defines a training run (stored in checkpoints as `ebm.train`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Data samples and chains per iteration (B).
    pub batch: usize,
    /// The negative-sample chains: K steps per iteration, step size, noise, clamp box.
    pub langevin: LangevinConfig,
    /// Weight α of the energy-magnitude penalty α(mean E⁺² + mean E⁻²).
    pub alpha: f32,
    /// The optimiser's settings.
    pub adam: AdamConfig,
    /// Persistent chains in the replay buffer (N).
    pub buffer_size: usize,
    /// Probability that a drawn chain restarts from noise (1 = short-run mode).
    pub reinit_prob: f32,
    /// Keys every random number of the run (init, noise, replay, data).
    pub seed: u64,
    /// What the run minimises (CD by default; files written before objectives existed
    /// read as CD).
    #[serde(default)]
    pub objective: Objective,
    /// The chains' sampler: ULA (default; files written before it read as ULA), or MALA or
    /// HMC with `langevin.step_size` as ε and the clamp box as their rejecting box.
    #[serde(default)]
    pub sampler: Method,
    /// MALA/HMC: adapt ε by dual averaging over the first iterations, then freeze it.
    #[serde(default)]
    pub adapt: Option<Adaptation>,
}

impl TrainConfig {
    /// The toy-2D demo's settings (`ebm train toy2d`'s defaults): B = 256, K = 20 steps of
    /// size 0.02 with noise 0.2 (temperature 1: noise² = 2·step) clamped to the toy box,
    /// α = 0.1, Adam at 3e-3, IGEBM's replay buffer (10 000 chains, re-init 5 %).
    pub fn toy2d(seed: u64) -> Self {
        let range = crate::data::toy2d::RANGE;
        TrainConfig {
            batch: 256,
            langevin: LangevinConfig {
                steps: 20,
                step_size: 0.02,
                noise: 0.2,
                grad_clip: None,
                lo: -range,
                hi: range,
            },
            alpha: 0.1,
            adam: AdamConfig {
                lr: 3e-3,
                ..AdamConfig::default()
            },
            buffer_size: 10_000,
            reinit_prob: 0.05,
            seed,
            objective: Objective::Cd,
            sampler: Method::Ula,
            adapt: None,
        }
    }

    /// Check the settings, naming the bad one.
    pub fn validate(&self) -> Result<()> {
        if self.batch == 0 {
            return Err(Error::Option("batch size must be at least 1".into()));
        }
        if !(self.alpha.is_finite() && self.alpha >= 0.0) {
            return Err(Error::Option(format!("alpha {} must be ≥ 0", self.alpha)));
        }
        self.langevin.validate()?;
        self.sampler.validate()?;
        if let Some(a) = self.adapt {
            if self.sampler == Method::Ula {
                return Err(Error::Option(
                    "step-size adaptation (--adapt) needs --sampler mala or hmc".into(),
                ));
            }
            if !(a.target > 0.0 && a.target < 1.0) {
                return Err(Error::Option(format!(
                    "target acceptance {} must lie strictly between 0 and 1",
                    a.target
                )));
            }
        }
        if self.sampler != Method::Ula && self.objective == Objective::Conditional {
            return Err(Error::Option(format!(
                "--objective conditional samples its chains with ULA; --sampler {} runs E(x) only",
                self.sampler.name()
            )));
        }
        self.objective.validate()?;
        self.adam.validate()
    }
}

/// The scalars of one iteration.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Stats {
    /// What Adam lowers: the CD loss mean E⁺ − mean E⁻ + α(mean E⁺² + mean E⁻²); for JEM
    /// ce_weight·`ce` + cd_weight·(that CD loss); for a classifier `ce`.
    pub loss: f32,
    /// mean E(x⁺) over the data batch (E(x⁺, y⁺) for a conditional run; 0 for a classifier).
    pub e_pos: f32,
    /// mean E(x⁻) over the samples (0 for a classifier).
    pub e_neg: f32,
    /// The mean cross-entropy of p(y|x⁺) on the data batch (JEM, classifier).
    pub ce: Option<f32>,
    /// The generator's regression loss (1/B)·Σ‖g(z) − x‖²/(2σ²) (cooperative learning,
    /// the latent-space prior model).
    pub gen: Option<f32>,
}

/// A CD trainer for one net on backend `B`.
///
/// ```
/// use ebm::data::Toy2d;
/// use ebm::train::{TrainConfig, Trainer};
/// use ebm::{CpuBackend, EnergyNet, Spec};
///
/// # fn main() -> ebm::Result<()> {
/// let b = CpuBackend::new();
/// let mut config = TrainConfig::toy2d(0);
/// config.batch = 64;
/// config.buffer_size = 256;
/// let net = EnergyNet::new(&b, &Spec::builtin("toy2d")?, config.seed)?;
/// let mut trainer = Trainer::new(&b, net, config)?;
/// for t in 0..10 {
///     // Batch t of the data: [64, 2].
///     trainer.step(&b, &Toy2d::EightGaussians.sample(0, t, 64))?;
/// }
/// // One small readback for the loss and mean energies of the last iteration.
/// let stats = trainer.stats(&b)?;
/// assert!(stats.loss.is_finite() && stats.e_pos.is_finite() && stats.e_neg.is_finite());
/// assert_eq!((trainer.iteration, trainer.adam.t), (10, 10));
/// assert_eq!(trainer.last_samples(&b)?.len(), 64 * 2);
/// // A batch of the wrong size is an error, not a crash.
/// assert!(trainer.step(&b, &[0.0; 3]).is_err());
/// # Ok(())
/// # }
/// ```
pub struct Trainer<B: Backend> {
    /// The run's settings, as saved in checkpoints. Treat it as read-only: the sampler,
    /// replay buffer, optimiser and device buffers were built from it by [`new`](Self::new).
    pub config: TrainConfig,
    /// Where the data came from, in the caller's words (the CLI: the dataset, labels and
    /// hold-out): saved in checkpoints as `ebm.data`, so that a resume can refuse other data.
    pub data_source: Option<String>,
    /// The energy network being trained.
    pub net: EnergyNet<B>,
    /// The optimiser, holding one pair of moments per parameter of `net`.
    pub adam: Adam<B>,
    /// The persistent negative-sample chains.
    pub replay: ReplayBuffer<B>,
    sampler: Langevin,
    /// MALA's or HMC's chains, when the run uses one (`config.sampler`).
    exact: Option<ExactChains<B>>,
    /// MALA's or HMC's ε: the configured step size, moved by dual averaging during an
    /// adaptation warm-up (`config.adapt`) and frozen after it. Saved in checkpoints.
    pub exact_step: f32,
    /// The dual-averaging state during (and after) the warm-up. Saved in checkpoints.
    pub adapter: Option<DualAveraging>,
    /// Iterations completed.
    pub iteration: u64,
    /// [x⁺; x⁻], 2B samples, so one forward and one backward cover both.
    x_both: B::Tensor,
    /// The chains of the current iteration, [B, dim].
    x_neg: B::Tensor,
    /// The data labels [B] and the chains' labels [B] (labelled objectives).
    labels_pos: B::Tensor,
    labels_neg: B::Tensor,
    /// The objective's buffers and gradient pass.
    loss: ObjectiveLoss<B>,
}

pub use super::loss::{CE_LOSS, HEALTH_ENERGIES, HEALTH_PARAMS};

impl<B: Backend> Trainer<B> {
    /// A trainer around `net` with zero Adam moments and a fresh replay buffer.
    pub fn new(b: &B, net: EnergyNet<B>, config: TrainConfig) -> Result<Self> {
        config.validate()?;
        let (batch, dim) = (config.batch, net.input_len());
        // Data and samples go through the net together, 2B at once.
        let both = batch.saturating_mul(2);
        net.spec().check_batch(
            both,
            &format!("batch size {batch} ({both} samples per pass)"),
        )?;
        if config.buffer_size.saturating_mul(dim) > crate::nn::spec::MAX_BATCH_VALUES {
            return Err(Error::Option(format!(
                "replay buffer size {} × {dim} values per sample is more than {} values",
                config.buffer_size,
                crate::nn::spec::MAX_BATCH_VALUES
            )));
        }
        let l = &config.langevin;
        let mut replay = ReplayBuffer::new(
            b,
            config.buffer_size,
            dim,
            config.reinit_prob,
            (l.lo, l.hi),
            config.seed,
        )?;
        let loss = ObjectiveLoss::new(b, &net, config.objective, config.alpha, batch)?;
        if config.objective == Objective::Conditional {
            replay = replay.with_labels(b)?;
        }
        Ok(Trainer {
            data_source: None,
            adam: Adam::new(b, config.adam, net.params())?,
            sampler: Langevin {
                config: config.langevin,
                seed: config.seed,
            },
            exact_step: config.langevin.step_size,
            adapter: config
                .adapt
                .map(|a| DualAveraging::new(config.langevin.step_size, a.target)),
            exact: match config.sampler {
                Method::Ula => None,
                _ => Some(ExactChains::new(b, b.zeros(batch * dim)?, batch, dim)?),
            },
            net,
            replay,
            iteration: 0,
            x_both: b.zeros(2 * batch * dim)?,
            x_neg: b.zeros(batch * dim)?,
            labels_pos: b.zeros(batch)?,
            labels_neg: b.zeros(batch)?,
            loss,
            config,
        })
    }

    /// One iteration on a data batch `x_pos` (host values, [B, dim]) of an objective
    /// without labels (CD).
    pub fn step(&mut self, b: &B, x_pos: &[f32]) -> Result<()> {
        self.step_with(b, x_pos, None)
    }

    /// One iteration on a labelled data batch: `x_pos` [B, dim] and its class ids `labels`
    /// `[B]` (whole numbers below the net's class count). Objectives without labels ignore
    /// them.
    pub fn step_labelled(&mut self, b: &B, x_pos: &[f32], labels: &[f32]) -> Result<()> {
        self.step_with(b, x_pos, Some(labels))
    }

    fn step_with(&mut self, b: &B, x_pos: &[f32], labels: Option<&[f32]>) -> Result<()> {
        self.step_from(b, x_pos, labels, None)
    }

    /// One iteration whose chains start from `start` (`[B, dim]` on the device: a
    /// generator's samples, in cooperative learning) instead of the replay buffer, which is
    /// then neither drawn from nor written. [`chains`](Self::chains) holds them afterwards.
    pub(crate) fn step_from(
        &mut self,
        b: &B,
        x_pos: &[f32],
        labels: Option<&[f32]>,
        start: Option<&B::Tensor>,
    ) -> Result<()> {
        let (batch, dim) = (self.config.batch, self.net.input_len());
        if x_pos.len() != batch * dim {
            return Err(Error::Shape(format!(
                "data batch holds {} values, expected {batch} × {dim}",
                x_pos.len()
            )));
        }
        let t = self.iteration;
        if x_pos.iter().any(|v| !v.is_finite()) {
            return Err(Error::NonFinite(format!(
                "iteration {}: the data batch holds NaN or infinite values",
                t + 1
            )));
        }
        let objective = self.config.objective;
        if objective.needs_labels() {
            let labels = labels.ok_or_else(|| {
                Error::Option(format!(
                    "--objective {} needs class labels for the data",
                    objective.name()
                ))
            })?;
            self.check_labels(labels)?;
            b.write(&mut self.labels_pos, 0, labels)?;
        }
        b.write(&mut self.x_both, 0, x_pos)?;
        if objective.samples() {
            self.sample_negatives(b, start)?;
            b.copy(&self.x_neg, 0, &mut self.x_both, batch * dim, batch * dim);
        }
        let mark = (t + 1) as f32;
        let (x, y_pos, y_neg) = (&self.x_both, &self.labels_pos, &self.labels_neg);
        self.loss
            .gradients(b, &mut self.net, x, y_pos, y_neg, mark)?;
        self.adam.step(b, self.net.params_mut());
        // The next chains sample the updated weights, normalised with the stored u, v.
        self.net.refresh_spectral_norm(b, false);
        let flag = FlagNonFinite {
            slot: HEALTH_PARAMS,
            mark,
        };
        for p in self.net.params() {
            flag.run(b, &p.value, &mut self.loss.stats);
        }
        b.flush()?;
        self.iteration += 1;
        Ok(())
    }

    /// Labels must be B whole numbers in [0, C): a bad one would silently train on NaN.
    fn check_labels(&self, labels: &[f32]) -> Result<()> {
        let classes = self.net.classes().unwrap_or(0);
        if labels.len() != self.config.batch {
            return Err(Error::Shape(format!(
                "{} labels for a batch of {}",
                labels.len(),
                self.config.batch
            )));
        }
        match labels.iter().find(|&&y| column_index(y, classes).is_none()) {
            Some(y) => Err(Error::Shape(format!(
                "label {y} is not a class of this net (0..{classes})"
            ))),
            None => Ok(()),
        }
    }

    /// The iteration's chains x⁻ (and, for a conditional run, their labels y⁻): drawn from
    /// the replay buffer, K Langevin steps, written back.
    fn sample_negatives(&mut self, b: &B, start: Option<&B::Tensor>) -> Result<()> {
        let (t, batch) = (self.iteration, self.config.batch);
        let first_step = t * self.config.langevin.steps as u64;
        let dim = self.net.input_len();
        if let Some(start) = start {
            if self.config.objective == Objective::Conditional {
                return Err(Error::Option(
                    "conditional chains start from the replay buffer, not from given samples"
                        .into(),
                ));
            }
            if b.len(start) < batch * dim {
                return Err(Error::Shape(format!(
                    "chain starts hold {} values, {batch} chains of {dim} need {}",
                    b.len(start),
                    batch * dim
                )));
            }
            b.copy(start, 0, &mut self.x_neg, 0, batch * dim);
        }
        if self.config.objective == Objective::Conditional {
            let (x, y) = (&mut self.x_neg, &mut self.labels_neg);
            self.replay
                .draw_labelled(b, t, batch, &self.labels_pos, x, y)?;
            self.sampler
                .run_labelled(b, &mut self.net, x, y, batch, first_step)?;
            self.replay.write_back_labelled(b, t, batch, x, y);
        } else {
            if start.is_none() {
                self.replay.draw(b, t, batch, &mut self.x_neg)?;
            }
            match self.exact.as_mut() {
                None => self
                    .sampler
                    .run(b, &mut self.net, &mut self.x_neg, batch, first_step)?,
                Some(chains) => {
                    chains.load(b, &self.x_neg);
                    let warmup = self.config.adapt.map_or(0, |a| a.warmup);
                    let adapting = t < warmup;
                    if adapting {
                        // This iteration's tests alone steer ε.
                        chains.reset_acceptance(b);
                    }
                    let l = &self.config.langevin;
                    let step_size = self.exact_step;
                    let config = |temperature| ExactConfig {
                        steps: l.steps,
                        step_size,
                        temperature,
                        lo: l.lo,
                        hi: l.hi,
                    };
                    let (net, seed) = (&mut self.net, self.config.seed);
                    match self.config.sampler {
                        Method::Mala { temperature } => Mala {
                            config: config(temperature),
                            seed,
                        }
                        .run(b, net, chains, first_step)?,
                        Method::Hmc {
                            temperature,
                            leapfrog,
                        } => Hmc {
                            config: config(temperature),
                            leapfrog,
                            seed,
                        }
                        .run(b, net, chains, first_step)?,
                        Method::Ula => unreachable!("no exact chains for ULA"),
                    }
                    if let (true, Some(adapter)) = (adapting, self.adapter.as_mut()) {
                        let acceptance = chains.acceptance(b)?.mean_probability;
                        self.exact_step = adapter.update(acceptance);
                        if t + 1 == warmup {
                            self.exact_step = adapter.final_step();
                        }
                    }
                    b.copy(
                        chains.x(),
                        0,
                        &mut self.x_neg,
                        0,
                        batch * self.net.input_len(),
                    );
                }
            }
            if start.is_none() {
                self.replay.write_back(b, t, batch, &self.x_neg);
            }
        }
        Ok(())
    }

    /// The chains of the last iteration on the device, `[B, dim]`.
    pub(crate) fn chains(&self) -> &B::Tensor {
        &self.x_neg
    }

    /// Train for up to `iterations` more iterations on batches from `data`, calling
    /// `on_iteration` after each with the trainer: read [`stats`](Self::stats) there when you
    /// want metrics (each read is one small readback; healthy iterations need none), evaluate
    /// the net, save a checkpoint — and return [`ControlFlow::Break`] to stop early. Returns
    /// the iterations run.
    ///
    /// ```
    /// use std::ops::ControlFlow;
    /// use ebm::data::{Toy2d, ToyData};
    /// use ebm::train::{TrainConfig, Trainer};
    /// use ebm::{CpuBackend, EnergyNet, Spec};
    ///
    /// # fn main() -> ebm::Result<()> {
    /// let b = CpuBackend::new();
    /// let mut config = TrainConfig::toy2d(0);
    /// config.batch = 64;
    /// config.buffer_size = 256;
    /// let net = EnergyNet::new(&b, &Spec::builtin("toy2d")?, config.seed)?;
    /// let mut trainer = Trainer::new(&b, net, config)?;
    /// let mut data = ToyData { dataset: Toy2d::EightGaussians, seed: 0 };
    /// let mut losses = Vec::new();
    /// let ran = trainer.fit(&b, &mut data, 1000, |t, b| {
    ///     if t.iteration % 10 == 0 {
    ///         losses.push(t.stats(b)?.loss);
    ///     }
    ///     // Early stop: enough for this example.
    ///     Ok(if t.iteration == 30 { ControlFlow::Break(()) } else { ControlFlow::Continue(()) })
    /// })?;
    /// assert_eq!((ran, losses.len()), (30, 3));
    /// # Ok(())
    /// # }
    /// ```
    pub fn fit<D: DataSource + ?Sized>(
        &mut self,
        b: &B,
        data: &mut D,
        iterations: u64,
        on_iteration: impl FnMut(&mut Self, &B) -> Result<ControlFlow<()>>,
    ) -> Result<u64> {
        super::learner::fit(self, b, data, iterations, on_iteration)
    }

    /// The last iteration's loss and mean energies (one small readback); an
    /// [`Error::NonFinite`] naming the first iteration that produced a NaN or ±∞ energy or
    /// parameter, and the likely cause.
    pub fn stats(&self, b: &B) -> Result<Stats> {
        let stats = self.loss.read(b)?;
        if !(stats.loss.is_finite() && stats.e_pos.is_finite() && stats.e_neg.is_finite()) {
            return Err(Error::NonFinite(format!(
                "iteration {}: loss {} E+ {} E- {} (try a smaller learning rate or Langevin step, or a larger alpha)",
                self.iteration, stats.loss, stats.e_pos, stats.e_neg
            )));
        }
        Ok(stats)
    }

    /// The acceptance of MALA's or HMC's tests since the last
    /// [`reset_acceptance`](Self::reset_acceptance) (a readback); `None` for ULA.
    pub fn acceptance(&self, b: &B) -> Result<Option<Acceptance>> {
        self.exact.as_ref().map(|c| c.acceptance(b)).transpose()
    }

    /// Start counting acceptance afresh (after logging it, say).
    pub fn reset_acceptance(&mut self, b: &B) {
        if let Some(chains) = self.exact.as_mut() {
            chains.reset_acceptance(b);
        }
    }

    /// The chains of the last iteration, [B, dim] (a readback).
    pub fn last_samples(&self, b: &B) -> Result<Vec<f32>> {
        b.read(&self.x_neg)
    }
}
