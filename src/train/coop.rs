//! Cooperative learning (Xie et al., CoopNets): a generator proposes, the energy revises its
//! proposals by Langevin and learns from them, and the generator learns to reproduce the
//! revisions ("MCMC teaching"). One iteration on the device:
//!
//! 1. z ~ N(0, I) (Philox stream 8, chain = row, step = iteration), x̂ = g(z);
//! 2. the energy's K Langevin steps (its [`Trainer`]'s sampler: ULA, MALA or HMC) revise x̂
//!    into x̃ — the chains start at x̂, not in a replay buffer;
//! 3. the energy: CD on (x⁺, x̃) and an Adam step ([`Trainer`] as for any CD run);
//! 4. optionally latent inference: z ← Langevin on ½‖z‖² + ‖x̃ − g(z)‖²/(2σ²)
//!    ([`LatentChains`], Philox chains B..2B);
//! 5. the generator: Adam on (1/B)·Σ‖x̃ − g(z)‖²/(2σ²) ([`Generator::regress`]).
//!
//! ```
//! use ebm::data::Toy2d;
//! use ebm::nn::Net;
//! use ebm::train::{CoopConfig, CoopTrainer, TrainConfig, Trainer};
//! use ebm::{CpuBackend, EnergyNet, Spec};
//!
//! # fn main() -> ebm::Result<()> {
//! let b = CpuBackend::new();
//! let mut config = TrainConfig::toy2d(0);
//! config.batch = 32;
//! config.buffer_size = 32; // the chains start at the generator's samples: no replay
//! let energy = Trainer::new(&b, EnergyNet::new(&b, &Spec::mlp(2, 32, 2), 0)?, config)?;
//! let generator = Net::new(&b, &Spec::generator_mlp(2, 32, 2), 1)?;
//! let mut coop = CoopTrainer::new(&b, energy, generator, CoopConfig::default())?;
//! for t in 0..3 {
//!     coop.step(&b, &Toy2d::EightGaussians.sample(0, t, 32))?;
//! }
//! let stats = coop.stats(&b)?;
//! assert!(stats.loss.is_finite() && stats.gen.unwrap().is_finite());
//! assert_eq!((coop.iteration(), coop.generated(&b)?.len()), (3, 64));
//! # Ok(())
//! # }
//! ```

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::adam::AdamConfig;
use super::cd::{Stats, Trainer};
use super::checkpoint::{checkpoint_file, insert_moments, load_moments, trainer_from_file};
use super::generator::Generator;
use crate::backend::Backend;
use crate::nn::io::{nets_file, read_net, sub_file, MODEL_KIND_KEY};
use crate::nn::{EnergyNet, Net};
use crate::sampler::{Langevin, LatentChains, LatentLangevin, Likelihood};
use crate::tensorfile::TensorFile;
use crate::{Error, Result};

/// Metadata key of a cooperative checkpoint's [`CoopConfig`] and generator state.
pub const COOP_KEY: &str = "ebm.coop";

/// What cooperative learning adds to the energy's [`TrainConfig`](super::TrainConfig)
/// (stored in checkpoints and model files as `ebm.coop`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CoopConfig {
    /// σ of the generator's regression loss (1/B)·Σ‖x̃ − g(z)‖²/(2σ²) and of its latent
    /// inference's likelihood.
    pub sigma: f32,
    /// Langevin steps of latent inference on z before the generator's update (0: none,
    /// the generator regresses at the z that produced its sample).
    pub infer_steps: usize,
    /// s of that inference (gradient step s²/2, noise s).
    pub infer_step: f32,
    /// The generator's Adam.
    pub adam: AdamConfig,
}

impl Default for CoopConfig {
    /// σ = 0.3 and no inference (CoopNets' MCMC teaching), Adam at 1e-3 with β₁ = 0.5.
    fn default() -> Self {
        CoopConfig {
            sigma: 0.3,
            infer_steps: 0,
            infer_step: 0.1,
            adam: AdamConfig {
                lr: 1e-3,
                beta1: 0.5,
                ..AdamConfig::default()
            },
        }
    }
}

impl CoopConfig {
    /// Check the settings, naming the bad one.
    pub fn validate(&self) -> Result<()> {
        if !(self.sigma.is_finite() && self.sigma > 0.0) {
            return Err(Error::Option(format!(
                "--gen-sigma {} must be a positive number",
                self.sigma
            )));
        }
        if self.infer_steps > 0 && !(self.infer_step.is_finite() && self.infer_step > 0.0) {
            return Err(Error::Option(format!(
                "--infer-step {} must be a positive number",
                self.infer_step
            )));
        }
        self.adam.validate()
    }
}

/// What [`COOP_KEY`] holds.
#[derive(Serialize, Deserialize)]
struct CoopState {
    config: CoopConfig,
    generator_adam_t: u64,
}

/// A cooperative trainer: the energy's CD [`Trainer`] and a [`Generator`].
pub struct CoopTrainer<B: Backend> {
    /// The energy, its Adam and its Langevin sampler (the replay buffer is not used).
    pub ebm: Trainer<B>,
    /// The generator and its Adam.
    pub generator: Generator<B>,
    /// The settings.
    pub config: CoopConfig,
    /// This iteration's latents, `[B, latent_len]`.
    z: B::Tensor,
    /// This iteration's generator samples x̂ = g(z), before revision.
    x_gen: B::Tensor,
    /// Latent inference's chains (when `infer_steps` > 0).
    infer: Option<LatentChains<B>>,
}

impl<B: Backend> CoopTrainer<B> {
    /// A trainer around the energy's `ebm` and a generator net whose samples have the
    /// energy's input shape. The chains start at the generator's samples, so `ebm`'s replay
    /// buffer is never used: build it with `buffer_size` = `batch` (it is saved with the
    /// energy's checkpoint all the same).
    pub fn new(b: &B, ebm: Trainer<B>, generator: Net<B>, config: CoopConfig) -> Result<Self> {
        config.validate()?;
        if generator.output_len() != ebm.net.input_len() {
            return Err(Error::Shape(format!(
                "the generator makes samples of {} values, the energy takes {}",
                generator.output_len(),
                ebm.net.input_len()
            )));
        }
        let batch = ebm.config.batch;
        let generator = Generator::new(b, generator, config.adam, batch)?;
        let dz = generator.latent_len();
        let infer = if config.infer_steps > 0 {
            let sampler = LatentLangevin {
                steps: config.infer_steps,
                step_size: config.infer_step,
                seed: ebm.config.seed,
            };
            Some(sampler.chains(b, batch, dz, batch as u32)?)
        } else {
            None
        };
        Ok(CoopTrainer {
            z: b.zeros(batch * dz)?,
            x_gen: b.zeros(batch * ebm.net.input_len())?,
            infer,
            ebm,
            generator,
            config,
        })
    }

    /// Iterations completed.
    pub fn iteration(&self) -> u64 {
        self.ebm.iteration
    }

    /// One iteration on a data batch `x_pos` (host values, `[B, dim]`).
    pub fn step(&mut self, b: &B, x_pos: &[f32]) -> Result<()> {
        let t = self.ebm.iteration;
        let (batch, dz) = (self.ebm.config.batch, self.generator.latent_len());
        let dim = self.ebm.net.input_len();
        let z = Generator::<B>::latents(self.ebm.config.seed, t, batch, dz);
        b.write(&mut self.z, 0, &z)?;
        let out = self.generator.generate(b, &self.z, batch)?;
        b.copy(out, 0, &mut self.x_gen, 0, batch * dim);
        self.ebm.step_from(b, x_pos, None, Some(&self.x_gen))?;
        let sigma = self.config.sigma;
        let revised = self.ebm.chains();
        let fit_z = match self.infer.as_mut() {
            Some(chains) => {
                b.copy(&self.z, 0, &mut chains.z, 0, batch * dz);
                let likelihood = Likelihood {
                    generator: &mut self.generator.net,
                    x: revised,
                    sigma,
                };
                chains.run(
                    b,
                    None,
                    Some(likelihood),
                    t * self.config.infer_steps as u64,
                )?;
                &chains.z
            }
            None => &self.z,
        };
        self.generator.regress(b, fit_z, revised, sigma)?;
        self.generator.step(b, (t + 1) as f32);
        b.flush()
    }

    /// The energy's loss and mean energies and the generator's loss of the last iteration
    /// (one small readback each).
    pub fn stats(&self, b: &B) -> Result<Stats> {
        let mut stats = self.ebm.stats(b)?;
        stats.gen = Some(self.generator.loss(b)?);
        Ok(stats)
    }

    /// The last iteration's generator samples x̂ = g(z), `[B, dim]` (a readback).
    pub fn generated(&self, b: &B) -> Result<Vec<f32>> {
        b.read(&self.x_gen)
    }

    /// The last iteration's revised samples x̃, `[B, dim]` (a readback).
    pub fn revised(&self, b: &B) -> Result<Vec<f32>> {
        self.ebm.last_samples(b)
    }

    /// Everything [`from_file`](Self::from_file) needs to continue the run: the energy's checkpoint
    /// under `energy.` (net, Adam moments, config, position) and the generator under
    /// `generator.` with its Adam moments.
    pub fn checkpoint_file(&self, b: &B) -> Result<TensorFile> {
        let mut file = nets_file(
            b,
            &[("energy", &checkpoint_file(b, &self.ebm)?)],
            &[("generator", &self.generator.net)],
            "coop",
        )?;
        let g = &self.generator;
        insert_moments(b, &mut file, "generator.", g.net.params(), &g.adam)?;
        let state = CoopState {
            config: self.config.clone(),
            generator_adam_t: self.generator.adam.t,
        };
        file.metadata.insert(
            COOP_KEY.into(),
            serde_json::to_string(&state).expect("serialisable"),
        );
        Ok(file)
    }

    /// Rebuild a trainer from [`checkpoint_file`](Self::checkpoint_file)'s contents.
    pub fn from_file(b: &B, file: &TensorFile, path: &Path) -> Result<Self> {
        if file.metadata.get(MODEL_KIND_KEY).map(String::as_str) != Some("coop") {
            return Err(Error::format(
                path,
                "not a cooperative-learning checkpoint (no ebm.model = coop)",
            ));
        }
        if !file.metadata.contains_key(super::checkpoint::RNG_KEY) {
            return Err(Error::format(
                path,
                "a cooperative model file, not a checkpoint (no optimiser state)",
            ));
        }
        let state: CoopState = serde_json::from_str(
            file.metadata
                .get(COOP_KEY)
                .ok_or_else(|| Error::format(path, format!("no '{COOP_KEY}' metadata")))?,
        )
        .map_err(|e| Error::format(path, format!("{COOP_KEY}: {e}")))?;
        let ebm = trainer_from_file(b, &sub_file(file, "energy"), path)?;
        let net = read_net(b, file, path, "generator")?;
        let mut coop = CoopTrainer::new(b, ebm, net, state.config)?;
        let g = &mut coop.generator;
        load_moments(b, file, path, "generator.", g.net.params(), &mut g.adam)?;
        coop.generator.adam.t = state.generator_adam_t;
        Ok(coop)
    }
}

/// Samples of a cooperative model: `n` generator samples x̂ = g(z) with z ~ N(0, I) (Philox
/// stream 8, step `counter`), and with `revise` the same after its K Langevin steps on the
/// energy (first Philox step `counter`·K). Returns (x̂, x̃), each `[n, dim]`.
pub fn coop_samples<B: Backend>(
    b: &B,
    generator: &mut Net<B>,
    energy: &mut EnergyNet<B>,
    revise: Option<&Langevin>,
    n: usize,
    counter: u64,
    seed: u64,
) -> Result<(Vec<f32>, Option<Vec<f32>>)> {
    if generator.output_len() != energy.input_len() {
        return Err(Error::Shape(format!(
            "the generator makes samples of {} values, the energy takes {}",
            generator.output_len(),
            energy.input_len()
        )));
    }
    let z = b.upload(&Generator::<B>::latents(
        seed,
        counter,
        n,
        generator.input_len(),
    ))?;
    let mut x = b.zeros(n * energy.input_len())?;
    let out = generator.forward(b, &z, n)?;
    b.copy(out, 0, &mut x, 0, n * energy.input_len());
    let generated = b.read(&x)?;
    let revised = match revise {
        Some(langevin) => {
            let first = counter * langevin.config.steps as u64;
            langevin.run(b, energy, &mut x, n, first)?;
            Some(b.read(&x)?)
        }
        None => None,
    };
    Ok((generated, revised))
}
