//! [`Learner`]: what every training run offers its loop — a CD [`Trainer`] (one net), a
//! [`CoopTrainer`] and a [`LatentTrainer`] (an energy and a generator) — so that one loop
//! ([`fit`], the CLI's progress, metrics and checkpoints) drives them all.

use std::ops::ControlFlow;
use std::path::Path;

use super::cd::{Stats, Trainer};
use super::checkpoint::{checkpoint_file, trainer_from_file};
use super::coop::CoopTrainer;
use super::latent::LatentTrainer;
use super::Objective;
use crate::backend::Backend;
use crate::data::DataSource;
use crate::nn::io::{model_kind, model_tensors, nets_file};
use crate::sampler::{Acceptance, Method};
use crate::tensorfile::TensorFile;
use crate::{Error, Result};

/// A training run: it steps on data batches, reports its scalars, and saves and restores
/// itself exactly.
pub trait Learner<B: Backend>: Sized {
    /// `cd`, `conditional`, `jem`, `classifier` (a [`Trainer`]'s objective), `coop` or
    /// `latent-ebm`.
    fn family(&self) -> &'static str;
    /// Iterations completed.
    fn iteration(&self) -> u64;
    /// Data samples per iteration.
    fn batch(&self) -> usize;
    /// Values per data sample.
    fn sample_len(&self) -> usize;
    /// Whether each data sample needs a class label.
    fn needs_labels(&self) -> bool {
        false
    }
    /// Whether [`Stats::ce`] is reported.
    fn has_ce(&self) -> bool {
        false
    }
    /// Whether [`Stats::gen`] is reported.
    fn has_generator(&self) -> bool {
        false
    }
    /// The chains' sampler (MALA and HMC report their acceptance).
    fn sampler(&self) -> Method {
        Method::Ula
    }
    /// One iteration on a batch (`labels` for labelled objectives).
    fn step_batch(&mut self, b: &B, x: &[f32], labels: Option<&[f32]>) -> Result<()>;
    /// The last iteration's scalars (a small readback; an error names a NaN).
    fn stats(&self, b: &B) -> Result<Stats>;
    /// MALA's or HMC's acceptance since the last reset; `None` otherwise.
    fn acceptance(&self, _b: &B) -> Result<Option<Acceptance>> {
        Ok(None)
    }
    /// Start counting acceptance afresh.
    fn reset_acceptance(&mut self, _b: &B) {}
    /// MALA's or HMC's current ε.
    fn step_size(&self) -> f32 {
        0.0
    }
    /// Where the data came from, as saved in checkpoints.
    fn data_source(&self) -> Option<&str>;
    /// Set it (before the first checkpoint).
    fn set_data_source(&mut self, source: Option<String>);
    /// The checkpoint's contents: everything [`from_checkpoint`](Self::from_checkpoint)
    /// needs to continue exactly.
    fn checkpoint(&self, b: &B) -> Result<TensorFile>;
    /// Continue a run from a checkpoint's contents (`path` names it in errors).
    fn from_checkpoint(b: &B, file: &TensorFile, path: &Path) -> Result<Self>;
    /// The model file: the nets and their specs, no optimiser state.
    fn model(&self, b: &B) -> Result<TensorFile>;
}

/// Train `learner` for up to `iterations` more iterations on batches from `data`, calling
/// `on_iteration` after each (see [`Trainer::fit`]). Returns the iterations run.
pub fn fit<B: Backend, L: Learner<B>, D: DataSource + ?Sized>(
    learner: &mut L,
    b: &B,
    data: &mut D,
    iterations: u64,
    mut on_iteration: impl FnMut(&mut L, &B) -> Result<ControlFlow<()>>,
) -> Result<u64> {
    let dim = learner.sample_len();
    if data.sample_len() != dim {
        return Err(Error::Shape(format!(
            "the data source gives samples of {} values, the net takes {dim}",
            data.sample_len()
        )));
    }
    let labelled = learner.needs_labels();
    if labelled && data.classes().is_none() {
        return Err(Error::Option(format!(
            "--objective {} needs labelled data, and this data source has no labels",
            learner.family()
        )));
    }
    for n in 0..iterations {
        let t = learner.iteration();
        let batch = data.batch(t, learner.batch())?;
        let labels = if labelled {
            Some(data.labels(t, learner.batch())?)
        } else {
            None
        };
        learner.step_batch(b, &batch, labels.as_deref())?;
        if on_iteration(learner, b)?.is_break() {
            return Ok(n + 1);
        }
    }
    Ok(iterations)
}

impl<B: Backend> Learner<B> for Trainer<B> {
    fn family(&self) -> &'static str {
        self.config.objective.name()
    }
    fn iteration(&self) -> u64 {
        self.iteration
    }
    fn batch(&self) -> usize {
        self.config.batch
    }
    fn sample_len(&self) -> usize {
        self.net.input_len()
    }
    fn needs_labels(&self) -> bool {
        self.config.objective.needs_labels()
    }
    fn has_ce(&self) -> bool {
        matches!(
            self.config.objective,
            Objective::Jem { .. } | Objective::Classifier
        )
    }
    fn sampler(&self) -> Method {
        self.config.sampler
    }
    fn step_batch(&mut self, b: &B, x: &[f32], labels: Option<&[f32]>) -> Result<()> {
        match labels {
            Some(labels) => self.step_labelled(b, x, labels),
            None => self.step(b, x),
        }
    }
    fn stats(&self, b: &B) -> Result<Stats> {
        Trainer::stats(self, b)
    }
    fn acceptance(&self, b: &B) -> Result<Option<Acceptance>> {
        Trainer::acceptance(self, b)
    }
    fn reset_acceptance(&mut self, b: &B) {
        Trainer::reset_acceptance(self, b)
    }
    fn step_size(&self) -> f32 {
        self.exact_step
    }
    fn data_source(&self) -> Option<&str> {
        self.data_source.as_deref()
    }
    fn set_data_source(&mut self, source: Option<String>) {
        self.data_source = source;
    }
    fn checkpoint(&self, b: &B) -> Result<TensorFile> {
        checkpoint_file(b, self)
    }
    fn from_checkpoint(b: &B, file: &TensorFile, path: &Path) -> Result<Self> {
        if let Some(kind) = model_kind(file) {
            return Err(Error::format(
                path,
                format!("a {kind} checkpoint (several nets), not a single-net CD checkpoint"),
            ));
        }
        trainer_from_file(b, file, path)
    }
    fn model(&self, b: &B) -> Result<TensorFile> {
        model_tensors(b, &self.net)
    }
}

impl<B: Backend> Learner<B> for CoopTrainer<B> {
    fn family(&self) -> &'static str {
        "coop"
    }
    fn iteration(&self) -> u64 {
        self.ebm.iteration
    }
    fn batch(&self) -> usize {
        self.ebm.config.batch
    }
    fn sample_len(&self) -> usize {
        self.ebm.net.input_len()
    }
    fn has_generator(&self) -> bool {
        true
    }
    fn sampler(&self) -> Method {
        self.ebm.config.sampler
    }
    fn step_batch(&mut self, b: &B, x: &[f32], _labels: Option<&[f32]>) -> Result<()> {
        self.step(b, x)
    }
    fn stats(&self, b: &B) -> Result<Stats> {
        CoopTrainer::stats(self, b)
    }
    fn acceptance(&self, b: &B) -> Result<Option<Acceptance>> {
        self.ebm.acceptance(b)
    }
    fn reset_acceptance(&mut self, b: &B) {
        self.ebm.reset_acceptance(b)
    }
    fn step_size(&self) -> f32 {
        self.ebm.exact_step
    }
    fn data_source(&self) -> Option<&str> {
        self.ebm.data_source.as_deref()
    }
    fn set_data_source(&mut self, source: Option<String>) {
        self.ebm.data_source = source;
    }
    fn checkpoint(&self, b: &B) -> Result<TensorFile> {
        self.checkpoint_file(b)
    }
    fn from_checkpoint(b: &B, file: &TensorFile, path: &Path) -> Result<Self> {
        CoopTrainer::from_file(b, file, path)
    }
    fn model(&self, b: &B) -> Result<TensorFile> {
        let mut file = nets_file(
            b,
            &[("energy", &model_tensors(b, &self.ebm.net)?)],
            &[("generator", &self.generator.net)],
            "coop",
        )?;
        // What sampling needs: the revision's Langevin settings and σ.
        file.metadata.insert(
            super::checkpoint::TRAIN_KEY.into(),
            serde_json::to_string(&self.ebm.config).expect("serialisable"),
        );
        file.metadata.insert(
            super::coop::COOP_KEY.into(),
            serde_json::to_string(&self.config).expect("serialisable"),
        );
        Ok(file)
    }
}

impl<B: Backend> Learner<B> for LatentTrainer<B> {
    fn family(&self) -> &'static str {
        "latent-ebm"
    }
    fn iteration(&self) -> u64 {
        self.iteration
    }
    fn batch(&self) -> usize {
        self.config.batch
    }
    fn sample_len(&self) -> usize {
        self.generator.output_len()
    }
    fn has_generator(&self) -> bool {
        true
    }
    fn step_batch(&mut self, b: &B, x: &[f32], _labels: Option<&[f32]>) -> Result<()> {
        self.step(b, x)
    }
    fn stats(&self, b: &B) -> Result<Stats> {
        LatentTrainer::stats(self, b)
    }
    fn data_source(&self) -> Option<&str> {
        self.data_source.as_deref()
    }
    fn set_data_source(&mut self, source: Option<String>) {
        self.data_source = source;
    }
    fn checkpoint(&self, b: &B) -> Result<TensorFile> {
        self.checkpoint_file(b)
    }
    fn from_checkpoint(b: &B, file: &TensorFile, path: &Path) -> Result<Self> {
        if !file.metadata.contains_key(super::checkpoint::RNG_KEY) {
            return Err(Error::format(
                path,
                "a latent-EBM model file, not a checkpoint (no optimiser state)",
            ));
        }
        LatentTrainer::from_file(b, file, path)
    }
    fn model(&self, b: &B) -> Result<TensorFile> {
        let mut file = nets_file(
            b,
            &[("energy", &model_tensors(b, &self.prior)?)],
            &[("generator", &self.generator.net)],
            "latent-ebm",
        )?;
        file.metadata.insert(
            super::latent::LATENT_KEY.into(),
            serde_json::to_string(&self.config).expect("serialisable"),
        );
        Ok(file)
    }
}
