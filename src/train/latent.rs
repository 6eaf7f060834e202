//! The latent-space energy prior (Pang et al. 2020, "Learning latent space energy-based
//! prior model"): a generator x = g(z) + σε whose latent z has the prior
//! p(z) ∝ exp(−E(z))·N(z; 0, I), E a small energy net on z. One iteration on a data batch x:
//!
//! 1. prior chains z⁻: N(0, I) (Philox stream 8, step 2t), K₀ Langevin steps on
//!    E(z) + ½‖z‖² ([`LatentChains`]);
//! 2. posterior chains z⁺: N(0, I) (stream 8, step 2t + 1), K₁ Langevin steps on
//!    E(z) + ½‖z‖² + ‖x − g(z)‖²/(2σ²);
//! 3. the prior: CD on (z⁺, z⁻) — mean E(z⁺) − mean E(z⁻) + α(mean E⁺² + mean E⁻²) — and Adam;
//! 4. the generator: Adam on (1/B)·Σ‖x − g(z⁺)‖²/(2σ²) ([`Generator::regress`]).
//!
//! Langevin noise is the fused update's (stream 0), chains 0..B, steps t·(K₀+K₁) + k.
//!
//! ```
//! use ebm::data::Toy2d;
//! use ebm::nn::Net;
//! use ebm::train::{LatentConfig, LatentTrainer};
//! use ebm::{CpuBackend, EnergyNet, Spec};
//!
//! # fn main() -> ebm::Result<()> {
//! let b = CpuBackend::new();
//! let mut config = LatentConfig::toy2d(0);
//! config.batch = 32;
//! let prior = EnergyNet::new(&b, &Spec::latent_prior(2, 32), 0)?;
//! let generator = Net::new(&b, &Spec::generator_mlp(2, 32, 2), 1)?;
//! let mut trainer = LatentTrainer::new(&b, prior, generator, config)?;
//! for t in 0..3 {
//!     trainer.step(&b, &Toy2d::EightGaussians.sample(0, t, 32))?;
//! }
//! let stats = trainer.stats(&b)?;
//! assert!(stats.loss.is_finite() && stats.gen.unwrap().is_finite());
//! let (z, x) = trainer.sample(&b, 10, 0)?; // 10 draws: z from the prior, x = g(z)
//! assert_eq!((z.len(), x.len()), (20, 20));
//! # Ok(())
//! # }
//! ```

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::adam::{Adam, AdamConfig};
use super::cd::Stats;
use super::checkpoint::{insert_moments, load_moments, RunPosition, DATA_KEY, RNG_KEY};
use super::generator::Generator;
use super::loss::{ObjectiveLoss, HEALTH_PARAMS};
use super::{FlagNonFinite, Objective};
use crate::backend::Backend;
use crate::nn::io::{model_tensors, nets_file, read_energy, read_net, MODEL_KIND_KEY};
use crate::nn::{EnergyNet, Net};
use crate::sampler::{LatentChains, LatentLangevin, Likelihood};
use crate::tensorfile::TensorFile;
use crate::{Error, Result};

/// Metadata key of a latent-EBM checkpoint's or model file's [`LatentConfig`].
pub const LATENT_KEY: &str = "ebm.latent";

/// Everything that defines a latent-EBM run (stored as `ebm.latent`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LatentConfig {
    /// Data samples per iteration (B), and prior and posterior chains.
    pub batch: usize,
    /// σ of the observation noise x = g(z) + σε.
    pub sigma: f32,
    /// Prior Langevin steps K₀ per iteration.
    pub prior_steps: usize,
    /// Their s (gradient step s²/2, noise s).
    pub prior_step: f32,
    /// Posterior Langevin steps K₁ per iteration.
    pub post_steps: usize,
    /// Their s.
    pub post_step: f32,
    /// Weight α of the prior's energy-magnitude penalty (0 in the paper).
    pub alpha: f32,
    /// The prior energy's Adam.
    pub prior_adam: AdamConfig,
    /// The generator's Adam.
    pub generator_adam: AdamConfig,
    /// Keys every random number of the run.
    pub seed: u64,
}

impl LatentConfig {
    /// Settings for toy 2D data: B = 256, K₀ = 40 steps of s = 0.4, K₁ = 20 of s = 0.1,
    /// σ = 0.1, α = 0.1, Adam at 1e-3 (prior) and 2e-3 (generator), β₁ = 0.5. (Without the
    /// α penalty the prior's energy ran off at this learning rate: its chains left for
    /// |z| ≫ 1 within a minute of training.)
    pub fn toy2d(seed: u64) -> Self {
        let adam = |lr| AdamConfig {
            lr,
            beta1: 0.5,
            ..AdamConfig::default()
        };
        LatentConfig {
            batch: 256,
            sigma: 0.1,
            prior_steps: 40,
            prior_step: 0.4,
            post_steps: 20,
            post_step: 0.1,
            alpha: 0.1,
            prior_adam: adam(1e-3),
            generator_adam: adam(2e-3),
            seed,
        }
    }

    /// The paper's image settings: B = 64, K₀ = 60 steps of s = 0.4, K₁ = 20 of s = 0.1,
    /// σ = 0.3, Adam at 2e-5 (prior) and 1e-4 (generator), β₁ = 0.5.
    pub fn images(seed: u64) -> Self {
        // The toy settings' chains and Adam β₁, at the paper's sizes and rates.
        let toy = Self::toy2d(seed);
        LatentConfig {
            batch: 64,
            sigma: 0.3,
            prior_steps: 60,
            alpha: 0.0,
            prior_adam: AdamConfig {
                lr: 2e-5,
                ..toy.prior_adam
            },
            generator_adam: AdamConfig {
                lr: 1e-4,
                ..toy.generator_adam
            },
            ..toy
        }
    }

    /// Check the settings, naming the bad one.
    pub fn validate(&self) -> Result<()> {
        if self.batch == 0 {
            return Err(Error::Option("batch size must be at least 1".into()));
        }
        for (name, v) in [
            ("gen-sigma", self.sigma),
            ("prior-step", self.prior_step),
            ("post-step", self.post_step),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(Error::Option(format!(
                    "--{name} {v} must be a positive number"
                )));
            }
        }
        if !(self.alpha.is_finite() && self.alpha >= 0.0) {
            return Err(Error::Option(format!(
                "--prior-alpha {} must be ≥ 0",
                self.alpha
            )));
        }
        self.prior_adam.validate()?;
        self.generator_adam.validate()
    }
}

/// A latent-EBM trainer: the prior energy on z with its Adam, and a [`Generator`].
pub struct LatentTrainer<B: Backend> {
    /// The run's settings (read-only once built).
    pub config: LatentConfig,
    /// The prior energy E(z).
    pub prior: EnergyNet<B>,
    /// Its optimiser.
    pub prior_adam: Adam<B>,
    /// The generator and its Adam.
    pub generator: Generator<B>,
    /// Iterations completed.
    pub iteration: u64,
    /// Where the data came from (saved in checkpoints as `ebm.data`).
    pub data_source: Option<String>,
    loss: ObjectiveLoss<B>,
    /// The data batch, `[B, output_len]`.
    x: B::Tensor,
    prior_chains: LatentChains<B>,
    post_chains: LatentChains<B>,
    /// [z⁺; z⁻] for the prior's CD pass.
    z_both: B::Tensor,
    /// Unused labels for [`ObjectiveLoss::gradients`].
    no_labels: B::Tensor,
}

impl<B: Backend> LatentTrainer<B> {
    /// A trainer around a prior energy on the generator's latent space.
    pub fn new(
        b: &B,
        prior: EnergyNet<B>,
        generator: Net<B>,
        config: LatentConfig,
    ) -> Result<Self> {
        config.validate()?;
        let batch = config.batch;
        let dz = generator.input_len();
        if prior.input_len() != dz || prior.classes().is_some() {
            return Err(Error::Shape(format!(
                "the prior energy must take the generator's latent code ({dz} values) and give \
                 one energy; it takes {} values",
                prior.input_len()
            )));
        }
        let generator = Generator::new(b, generator, config.generator_adam, batch)?;
        let both = batch.saturating_mul(2);
        prior.spec().check_batch(
            both,
            &format!("batch size {batch} ({both} latents per pass)"),
        )?;
        let chains = |steps, step_size| {
            LatentLangevin {
                steps,
                step_size,
                seed: config.seed,
            }
            .chains(b, batch, dz, 0)
        };
        Ok(LatentTrainer {
            prior_adam: Adam::new(b, config.prior_adam, prior.params())?,
            loss: ObjectiveLoss::new(b, &prior, Objective::Cd, config.alpha, batch)?,
            x: b.zeros(batch * generator.output_len())?,
            prior_chains: chains(config.prior_steps, config.prior_step)?,
            post_chains: chains(config.post_steps, config.post_step)?,
            z_both: b.zeros(2 * batch * dz)?,
            no_labels: b.zeros(batch)?,
            iteration: 0,
            data_source: None,
            prior,
            generator,
            config,
        })
    }

    /// One iteration on a data batch `x` (host values, `[B, sample_len]`).
    pub fn step(&mut self, b: &B, x: &[f32]) -> Result<()> {
        let (batch, t) = (self.config.batch, self.iteration);
        let (dz, len) = (self.generator.latent_len(), self.generator.output_len());
        if x.len() != batch * len {
            return Err(Error::Shape(format!(
                "data batch holds {} values, expected {batch} × {len}",
                x.len()
            )));
        }
        if x.iter().any(|v| !v.is_finite()) {
            return Err(Error::NonFinite(format!(
                "iteration {}: the data batch holds NaN or infinite values",
                t + 1
            )));
        }
        b.write(&mut self.x, 0, x)?;
        let seed = self.config.seed;
        b.write(
            &mut self.prior_chains.z,
            0,
            &Generator::<B>::latents(seed, 2 * t, batch, dz),
        )?;
        b.write(
            &mut self.post_chains.z,
            0,
            &Generator::<B>::latents(seed, 2 * t + 1, batch, dz),
        )?;
        let (k0, k1) = (
            self.config.prior_steps as u64,
            self.config.post_steps as u64,
        );
        let first = t * (k0 + k1);
        self.prior_chains
            .run(b, Some(&mut self.prior), None, first)?;
        let likelihood = Likelihood {
            generator: &mut self.generator.net,
            x: &self.x,
            sigma: self.config.sigma,
        };
        self.post_chains
            .run(b, Some(&mut self.prior), Some(likelihood), first + k0)?;
        let n = batch * dz;
        b.copy(&self.post_chains.z, 0, &mut self.z_both, 0, n);
        b.copy(&self.prior_chains.z, 0, &mut self.z_both, n, n);
        let mark = (t + 1) as f32;
        let y = &self.no_labels;
        self.loss
            .gradients(b, &mut self.prior, &self.z_both, y, y, mark)?;
        self.prior_adam.step(b, self.prior.params_mut());
        let flag = FlagNonFinite {
            slot: HEALTH_PARAMS,
            mark,
        };
        for p in self.prior.params() {
            flag.run(b, &p.value, &mut self.loss.stats);
        }
        self.generator
            .regress(b, &self.post_chains.z, &self.x, self.config.sigma)?;
        self.generator.step(b, mark);
        b.flush()?;
        self.iteration += 1;
        Ok(())
    }

    /// The last iteration's prior CD loss, mean E(z⁺) (`e_pos`), mean E(z⁻) (`e_neg`) and
    /// generator loss (`gen`).
    pub fn stats(&self, b: &B) -> Result<Stats> {
        let mut stats = self.loss.read(b)?;
        stats.gen = Some(self.generator.loss(b)?);
        Ok(stats)
    }

    /// `n` draws of the model: z from the prior by K₀ Langevin steps from N(0, I) (stream 8
    /// at step `counter`), and x = g(z). Returns (z `[n, latent]`, x `[n, sample_len]`).
    pub fn sample(&mut self, b: &B, n: usize, counter: u64) -> Result<(Vec<f32>, Vec<f32>)> {
        let prior_langevin = LatentLangevin {
            steps: self.config.prior_steps,
            step_size: self.config.prior_step,
            seed: self.config.seed,
        };
        latent_samples(
            b,
            &mut self.prior,
            &mut self.generator.net,
            &prior_langevin,
            n,
            counter,
        )
    }

    /// Reconstructions g(z⁺) of the last data batch at its posterior samples z⁺ (a readback).
    pub fn reconstructions(&mut self, b: &B) -> Result<Vec<f32>> {
        let batch = self.config.batch;
        let out = self.generator.generate(b, &self.post_chains.z, batch)?;
        b.read(out)
    }

    /// The last data batch (a readback), to set beside [`reconstructions`](Self::reconstructions).
    pub fn data_batch(&self, b: &B) -> Result<Vec<f32>> {
        b.read(&self.x)
    }

    /// Everything [`from_file`](Self::from_file) needs to continue the run: both nets under
    /// `energy.` and `generator.`, their Adam moments, the config and the position.
    pub fn checkpoint_file(&self, b: &B) -> Result<TensorFile> {
        let mut prior = model_tensors(b, &self.prior)?;
        insert_moments(b, &mut prior, "", self.prior.params(), &self.prior_adam)?;
        let mut file = nets_file(
            b,
            &[("energy", &prior)],
            &[("generator", &self.generator.net)],
            "latent-ebm",
        )?;
        let g = &self.generator;
        insert_moments(b, &mut file, "generator.", g.net.params(), &g.adam)?;
        let position = LatentPosition {
            run: RunPosition {
                seed: self.config.seed,
                iteration: self.iteration,
                adam_t: self.prior_adam.t,
            },
            generator_adam_t: self.generator.adam.t,
        };
        let config = serde_json::to_string(&self.config).expect("serialisable");
        let position = serde_json::to_string(&position).expect("serialisable");
        file.metadata.insert(LATENT_KEY.into(), config);
        file.metadata.insert(RNG_KEY.into(), position);
        if let Some(data) = &self.data_source {
            file.metadata.insert(DATA_KEY.into(), data.clone());
        }
        Ok(file)
    }

    /// Rebuild a trainer from [`checkpoint_file`](Self::checkpoint_file)'s contents.
    pub fn from_file(b: &B, file: &TensorFile, path: &Path) -> Result<Self> {
        if file.metadata.get(MODEL_KIND_KEY).map(String::as_str) != Some("latent-ebm") {
            return Err(Error::format(
                path,
                "not a latent-EBM file (no ebm.model = latent-ebm)",
            ));
        }
        let meta = |key: &str| {
            file.metadata
                .get(key)
                .ok_or_else(|| Error::format(path, format!("no '{key}' metadata")))
        };
        let config: LatentConfig = serde_json::from_str(meta(LATENT_KEY)?)
            .map_err(|e| Error::format(path, format!("{LATENT_KEY}: {e}")))?;
        let prior = read_energy(b, file, path, "energy")?;
        let generator = read_net(b, file, path, "generator")?;
        let mut trainer = LatentTrainer::new(b, prior, generator, config)
            .map_err(|e| crate::nn::io::in_file(e, path))?;
        // A model file (no optimiser state) gives a trainer at iteration 0; a checkpoint
        // continues exactly.
        if let Some(json) = file.metadata.get(RNG_KEY) {
            let position: LatentPosition = serde_json::from_str(json)
                .map_err(|e| Error::format(path, format!("{RNG_KEY}: {e}")))?;
            let t = &mut trainer;
            load_moments(
                b,
                file,
                path,
                "energy.",
                t.prior.params(),
                &mut t.prior_adam,
            )?;
            let g = &mut t.generator;
            load_moments(b, file, path, "generator.", g.net.params(), &mut g.adam)?;
            trainer.iteration = position.run.iteration;
            trainer.prior_adam.t = position.run.adam_t;
            trainer.generator.adam.t = position.generator_adam_t;
        }
        trainer.data_source = file.metadata.get(DATA_KEY).cloned();
        Ok(trainer)
    }
}

/// Where a latent-EBM run stands.
#[derive(Serialize, Deserialize)]
struct LatentPosition {
    #[serde(flatten)]
    run: RunPosition,
    generator_adam_t: u64,
}

/// `n` draws of a latent-EBM model: z from the prior by `prior_langevin` from N(0, I)
/// (Philox stream 8 at step `counter`; Langevin noise at steps `counter`·K₀ + k), x = g(z).
pub fn latent_samples<B: Backend>(
    b: &B,
    prior: &mut EnergyNet<B>,
    generator: &mut Net<B>,
    prior_langevin: &LatentLangevin,
    n: usize,
    counter: u64,
) -> Result<(Vec<f32>, Vec<f32>)> {
    let dz = generator.input_len();
    let mut chains = prior_langevin.chains(b, n, dz, 0)?;
    b.write(
        &mut chains.z,
        0,
        &Generator::<B>::latents(prior_langevin.seed, counter, n, dz),
    )?;
    chains.run(b, Some(prior), None, counter * prior_langevin.steps as u64)?;
    let x = b.read(generator.forward(b, &chains.z, n)?)?;
    Ok((b.read(&chains.z)?, x))
}
