//! Unadjusted Langevin dynamics: `x ← clamp(x − step·∇ₓE(x) + noise·ξ, lo, hi)`.
//!
//! All K steps are recorded on the backend back to back — on the GPU into one command
//! encoder, submitted once — with no readback between steps. An MLP energy runs the whole
//! chain as one fused op ([`MlpChain`]) where the backend can; other nets
//! (and inpainting) go layer by layer.
//!
//! ```
//! use std::ops::ControlFlow;
//! use ebm::sampler::{Langevin, LangevinConfig};
//! use ebm::{CpuBackend, EnergyNet, Spec};
//!
//! # fn main() -> ebm::Result<()> {
//! let b = CpuBackend::new();
//! let mut net = EnergyNet::new(&b, &Spec::builtin("toy2d")?, 0)?;
//! // The textbook temperature-1 setting: noise = √(2·step).
//! let config = LangevinConfig {
//!     steps: 50, step_size: 0.01, noise: (2.0f32 * 0.01).sqrt(), grad_clip: Some(1.0),
//!     lo: -4.5, hi: 4.5,
//! };
//! config.validate()?;
//! assert!(LangevinConfig { lo: 1.0, hi: -1.0, ..config }.validate().is_err());
//! let sampler = Langevin { config, seed: 3 };
//! let run = |net: &mut EnergyNet<CpuBackend>| {
//!     sampler.sample(&b, net, 256, 50, |_| ControlFlow::Continue(()))
//! };
//! let samples = run(&mut net)?;
//! assert_eq!((samples.rows, samples.steps_run), (256, 50));
//! assert!(samples.x.iter().all(|v| (-4.5..=4.5).contains(v)));
//! // The seed fixes the noise: the same run gives the same chains.
//! assert_eq!(run(&mut net)?, samples);
//! # Ok(())
//! # }
//! ```

use std::ops::ControlFlow;

use serde::{Deserialize, Serialize};

use crate::backend::{column_index, Backend};
use crate::nn::EnergyNet;
use crate::rng::{self, Stream};
use crate::sampler::{LangevinUpdate, MlpChain};
use crate::{Error, Result};

/// How far a sampling run has got: what its progress callback sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Langevin steps finished (on the device, not just recorded).
    pub steps_done: usize,
    /// K.
    pub steps_total: usize,
}

/// Chains read back to the host.
#[derive(Clone, Debug, PartialEq)]
pub struct Samples {
    /// `[rows, input_len]`, row-major.
    pub x: Vec<f32>,
    /// Chains: rows of `x`.
    pub rows: usize,
    /// Steps run: K, or fewer when the progress callback stopped the run.
    pub steps_run: usize,
}

/// The settings of a Langevin chain; `step` and `noise` are separate because IGEBM and
/// ebm-anatomy set them differently (the textbook choice is noise = √(2·step)).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LangevinConfig {
    /// K, the number of steps per run.
    pub steps: usize,
    /// Gradient step size.
    pub step_size: f32,
    /// Standard deviation of the Gaussian noise added per step.
    pub noise: f32,
    /// Clamp each element of ∇ₓE to [−c, c] (IGEBM does this).
    pub grad_clip: Option<f32>,
    /// Samples are clamped to [lo, hi] after each step.
    pub lo: f32,
    /// Upper end of the clamp box (see `lo`).
    pub hi: f32,
}

impl LangevinConfig {
    /// Check the settings, naming the bad one.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(Error::Option(what));
        if self.steps == 0 {
            return bad("Langevin steps K must be at least 1".into());
        }
        if !(self.step_size.is_finite() && self.step_size >= 0.0) {
            return bad(format!(
                "Langevin step size {} must be finite and ≥ 0",
                self.step_size
            ));
        }
        if !(self.noise.is_finite() && self.noise >= 0.0) {
            return bad(format!(
                "Langevin noise {} must be finite and ≥ 0",
                self.noise
            ));
        }
        if let Some(c) = self.grad_clip {
            if !(c.is_finite() && c > 0.0) {
                return bad(format!("Langevin gradient clip {c} must be finite and > 0"));
            }
        }
        if !(self.lo.is_finite() && self.hi.is_finite()) || self.lo >= self.hi {
            return bad(format!(
                "Langevin clamp range [{}, {}] needs finite lo < hi",
                self.lo, self.hi
            ));
        }
        Ok(())
    }
}

/// A Langevin sampler over `EnergyNet`s on any backend; `seed` keys the Philox noise.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Langevin {
    /// Steps, step size, noise and clamp box.
    pub config: LangevinConfig,
    /// Keys the Philox noise of every step and the start points of [`noise`](Self::noise):
    /// the same seed and steps give the same chains on every device, up to float rounding.
    pub seed: u64,
}

impl Langevin {
    /// Run K steps on `rows` chains in `x` [rows, input_len] in place. Step k of this run
    /// draws its noise at global step `first_step + k`, so successive runs never share noise.
    ///
    /// ```
    /// use ebm::backend::Backend;
    /// use ebm::sampler::{Langevin, LangevinConfig};
    /// use ebm::{CpuBackend, EnergyNet, Spec};
    ///
    /// # fn main() -> ebm::Result<()> {
    /// let b = CpuBackend::new();
    /// let mut net = EnergyNet::new(&b, &Spec::builtin("toy2d")?, 0)?;
    /// let config = LangevinConfig {
    ///     steps: 20, step_size: 0.01, noise: 0.14, grad_clip: None, lo: -4.0, hi: 4.0,
    /// };
    /// let sampler = Langevin { config, seed: 1 };
    /// // 100 chains started from uniform noise, advanced in place on the device.
    /// let mut x = b.upload(&sampler.noise(100, 2))?;
    /// sampler.run(&b, &mut net, &mut x, 100, 0)?;
    /// // Continue them with fresh noise: global steps 20..40.
    /// sampler.run(&b, &mut net, &mut x, 100, 20)?;
    /// assert!(b.read(&x)?.iter().all(|v| (-4.0..=4.0).contains(v)));
    /// # Ok(())
    /// # }
    /// ```
    pub fn run<B: Backend>(
        &self,
        b: &B,
        net: &mut EnergyNet<B>,
        x: &mut B::Tensor,
        rows: usize,
        first_step: u64,
    ) -> Result<()> {
        let dim = net.input_len();
        if b.len(x) < rows * dim {
            return Err(Error::Shape(format!(
                "Langevin chains hold {} values, {rows} chains of {dim} need {}",
                b.len(x),
                rows * dim
            )));
        }
        if let Some((widths, activations)) = net.mlp_layout() {
            let chain = MlpChain {
                update: self.update(rows, widths[0], first_step),
                widths,
                activations,
                steps: self.config.steps,
            };
            if b.supports(&chain) {
                chain.run(b, &net.param_values(), x);
                return Ok(());
            }
        }
        self.run_with(b, net, x, rows, first_step, None)
    }

    /// [`run`](Self::run) one layer-by-layer step at a time even where a fused chain exists:
    /// the reference the fused ops are tested against, and `ebm bench --unfused`.
    pub fn run_unfused<B: Backend>(
        &self,
        b: &B,
        net: &mut EnergyNet<B>,
        x: &mut B::Tensor,
        rows: usize,
        first_step: u64,
    ) -> Result<()> {
        self.run_with(b, net, x, rows, first_step, None)
    }

    /// [`run`](Self::run) on the class-conditional energy E(x, y) = −f(x)\[y\] of a
    /// class-logit net, chain r following class `labels[r]` (exact f32 class ids, `[rows]`):
    /// conditional sampling (IGEBM) and conditional CD training. Always layer by layer.
    ///
    /// ```
    /// use ebm::sampler::{Langevin, LangevinConfig};
    /// use ebm::{Backend, CpuBackend, EnergyNet, Spec};
    ///
    /// # fn main() -> ebm::Result<()> {
    /// let b = CpuBackend::new();
    /// // A linear classifier on 2D points: f(x) = W x + b with 2 classes.
    /// let spec = Spec::from_json(r#"{"input": [2], "layers": [{"type": "linear", "in": 2, "out": 2}],
    ///     "output": {"energy": "neg_logsumexp", "classes": 2}}"#)?;
    /// let mut net = EnergyNet::from_params(&b, &spec, |name, _| {
    ///     Ok(if name.ends_with("weight") { vec![1.0, 0.0, -1.0, 0.0] } else { vec![0.0; 2] })
    /// })?;
    /// let sampler = Langevin {
    ///     config: LangevinConfig { steps: 50, step_size: 0.1, noise: 0.0, grad_clip: None, lo: -2.0, hi: 2.0 },
    ///     seed: 0,
    /// };
    /// // Class 0 has E = −x₀ (pushes x₀ up), class 1 has E = x₀ (pushes it down).
    /// let mut x = b.zeros(4)?;
    /// sampler.run_labelled(&b, &mut net, &mut x, &b.upload(&[0.0, 1.0])?, 2, 0)?;
    /// assert_eq!(b.read(&x)?, [2.0, 0.0, -2.0, 0.0]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn run_labelled<B: Backend>(
        &self,
        b: &B,
        net: &mut EnergyNet<B>,
        x: &mut B::Tensor,
        labels: &B::Tensor,
        rows: usize,
        first_step: u64,
    ) -> Result<()> {
        let dim = net.input_len();
        if b.len(x) < rows * dim || b.len(labels) < rows {
            return Err(Error::Shape(format!(
                "conditional Langevin: {} chain values and {} labels for {rows} chains of {dim}",
                b.len(x),
                b.len(labels)
            )));
        }
        for k in 0..self.config.steps as u64 {
            let grad = net.input_grad_labelled(b, x, labels, rows)?;
            self.update(rows, dim, first_step + k).run(b, x, grad);
        }
        Ok(())
    }

    /// [`run`](Self::run) in chunks of `every` steps, waiting for each chunk to finish and
    /// then calling `progress`; returning [`ControlFlow::Break`] stops the run there (the
    /// chains hold the steps done so far). The chains are the same as one `run`'s: step k
    /// draws the noise of global step `first_step + k` however the run is chunked. Returns the
    /// steps run.
    #[allow(clippy::too_many_arguments)]
    pub fn run_with_progress<B: Backend>(
        &self,
        b: &B,
        net: &mut EnergyNet<B>,
        x: &mut B::Tensor,
        rows: usize,
        first_step: u64,
        every: usize,
        progress: impl FnMut(Progress) -> ControlFlow<()>,
    ) -> Result<usize> {
        self.run_chunks(b, first_step, every, progress, |chunk, at| {
            chunk.run(b, net, x, rows, at)
        })
    }

    /// The chunked loop of [`run_with_progress`](Self::run_with_progress) and its conditional
    /// and composed twins: `run(chunk, first_step)` runs the chunk's steps (a `Langevin` of
    /// fewer steps) from that global step.
    pub(crate) fn run_chunks<B: Backend>(
        &self,
        b: &B,
        first_step: u64,
        every: usize,
        mut progress: impl FnMut(Progress) -> ControlFlow<()>,
        mut run: impl FnMut(&Langevin, u64) -> Result<()>,
    ) -> Result<usize> {
        let total = self.config.steps;
        let every = every.clamp(1, total.max(1));
        let mut done = 0;
        while done < total {
            let chunk = Langevin {
                config: LangevinConfig {
                    steps: every.min(total - done),
                    ..self.config
                },
                seed: self.seed,
            };
            run(&chunk, first_step + done as u64)?;
            b.wait()?;
            done += chunk.config.steps;
            let report = Progress {
                steps_done: done,
                steps_total: total,
            };
            if progress(report).is_break() {
                break;
            }
        }
        Ok(done)
    }

    /// Uniform noise in [lo, hi] to start `n` chains from: chain r is Philox stream 1 at step 0
    /// of `self.seed`, the draw `ebm sample` and `ebm bench` start from.
    pub fn noise(&self, n: usize, dim: usize) -> Vec<f32> {
        uniform_starts(self.seed, n, dim, self.config.lo, self.config.hi)
    }

    /// `n` samples of `net`: K steps from [`noise`](Self::noise), read back to the host.
    /// `progress` is called every `every` steps and may stop the run early.
    ///
    /// ```
    /// use std::ops::ControlFlow;
    /// use ebm::sampler::{Langevin, LangevinConfig};
    /// use ebm::{CpuBackend, EnergyNet, Spec};
    ///
    /// # fn main() -> ebm::Result<()> {
    /// let b = CpuBackend::new();
    /// let mut net = EnergyNet::new(&b, &Spec::builtin("toy2d")?, 0)?;
    /// let config = LangevinConfig { steps: 100, step_size: 0.02, noise: 0.2, grad_clip: None, lo: -4.0, hi: 4.0 };
    /// let sampler = Langevin { config, seed: 7 };
    /// // Stop after half the steps, as a user pressing cancel would.
    /// let samples = sampler.sample(&b, &mut net, 500, 10, |p| {
    ///     if p.steps_done >= 50 { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
    /// })?;
    /// assert_eq!((samples.rows, samples.steps_run, samples.x.len()), (500, 50, 1000));
    /// # Ok(())
    /// # }
    /// ```
    pub fn sample<B: Backend>(
        &self,
        b: &B,
        net: &mut EnergyNet<B>,
        n: usize,
        every: usize,
        progress: impl FnMut(Progress) -> ControlFlow<()>,
    ) -> Result<Samples> {
        self.config.validate()?;
        if n == 0 {
            return Err(Error::Option(
                "the number of chains must be at least 1".into(),
            ));
        }
        let mut x = b.upload(&self.noise(n, net.input_len()))?;
        let steps_run = self.run_with_progress(b, net, &mut x, n, 0, every, progress)?;
        Ok(Samples {
            x: b.read(&x)?,
            rows: n,
            steps_run,
        })
    }

    /// [`sample`](Self::sample) from the class-conditional energy E(x, y) = −f(x)\[y\] of a
    /// class-logit net: one chain per entry of `labels` (class ids as exact f32), chain r
    /// sampling class `labels[r]` from the same initial noise [`sample`](Self::sample)
    /// would use.
    pub fn sample_labelled<B: Backend>(
        &self,
        b: &B,
        net: &mut EnergyNet<B>,
        labels: &[f32],
        every: usize,
        progress: impl FnMut(Progress) -> ControlFlow<()>,
    ) -> Result<Samples> {
        self.config.validate()?;
        let n = labels.len();
        if n == 0 {
            return Err(Error::Option(
                "the number of chains must be at least 1".into(),
            ));
        }
        let classes = net.classes().ok_or_else(|| {
            Error::Spec("conditional sampling needs a class-logit net (neg_logsumexp head)".into())
        })?;
        if let Some(y) = labels.iter().find(|&&y| column_index(y, classes).is_none()) {
            return Err(Error::Option(format!(
                "class {y} is not one of this model's classes 0..{classes}"
            )));
        }
        let mut x = b.upload(&self.noise(n, net.input_len()))?;
        let y = b.upload(labels)?;
        let steps_run = self.run_chunks(b, 0, every, progress, |chunk, at| {
            chunk.run_labelled(b, net, &mut x, &y, n, at)
        })?;
        Ok(Samples {
            x: b.read(&x)?,
            rows: n,
            steps_run,
        })
    }

    /// [`run`](Self::run) with the values of `known` held fixed wherever `mask` ≠ 0 after
    /// every step: inpainting, sampling from p(x_unknown | x_known).
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
        self.run_with(b, net, x, rows, 0, Some((known, mask)))
    }

    /// K layer-by-layer steps from global step `first_step`, with the values of `fixed`
    /// (known, mask) held after every step where given.
    pub(crate) fn run_with<B: Backend>(
        &self,
        b: &B,
        net: &mut EnergyNet<B>,
        x: &mut B::Tensor,
        rows: usize,
        first_step: u64,
        fixed: Option<(&B::Tensor, &B::Tensor)>,
    ) -> Result<()> {
        let dim = net.input_len();
        for k in 0..self.config.steps as u64 {
            let grad = net.input_grad(b, x, rows)?;
            self.update(rows, dim, first_step + k).run(b, x, grad);
            if let Some((known, mask)) = fixed {
                b.keep_known(x, known, mask);
            }
        }
        Ok(())
    }

    /// The update of the step that draws its noise at `global_step`.
    pub(crate) fn update(&self, rows: usize, dim: usize, global_step: u64) -> LangevinUpdate {
        let c = &self.config;
        LangevinUpdate {
            rows,
            dim,
            step: c.step_size,
            noise: c.noise,
            grad_clip: c.grad_clip,
            lo: c.lo,
            hi: c.hi,
            seed: self.seed,
            global_step: global_step as u32,
            chain_offset: 0,
        }
    }
}

/// `n` chains of `dim` values uniform in [lo, hi]: chain r is Philox stream 1 at step 0 of
/// `seed` — where `ebm sample`, `ebm bench` and AIS start their chains.
pub fn uniform_starts(seed: u64, n: usize, dim: usize, lo: f32, hi: f32) -> Vec<f32> {
    let mut init = vec![0.0; n * dim];
    for (chain, row) in init.chunks_mut(dim.max(1)).enumerate() {
        rng::fill_uniform(seed, chain as u32, 0, Stream::ReplayReinit, lo, hi, row);
    }
    init
}
