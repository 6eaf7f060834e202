//! Training checkpoints (safetensors): a model file ([`crate::nn::io`], whose functions are
//! re-exported here) plus Adam's moments
//! (`adam.m.…`, `adam.v.…`), the replay buffer (`replay.chains`, and `replay.labels` for a
//! conditional run), the run's config
//! (`ebm.train`) and its position (`ebm.rng`). Every write is atomic. A run folder keeps its
//! last k checkpoints as `checkpoint-<iteration>.safetensors` plus `checkpoint.safetensors`,
//! a copy of the newest.
//!
//! ```
//! use ebm::train::checkpoint::{load_model, save_model};
//! use ebm::{CpuBackend, EnergyNet, Spec};
//!
//! # fn main() -> ebm::Result<()> {
//! let b = CpuBackend::new();
//! let path = std::env::temp_dir().join(format!("ebm-doc-model-{}.safetensors", std::process::id()));
//! let net = EnergyNet::new(&b, &Spec::mlp(2, 16, 1), 5)?;
//! save_model(&b, &net, &path)?;
//! // The spec travels in the file's metadata.
//! let loaded: EnergyNet<CpuBackend> = load_model(&b, &path, None)?;
//! assert_eq!(loaded.spec(), net.spec());
//! assert_eq!(loaded.read_params(&b)?, net.read_params(&b)?);
//! # std::fs::remove_file(&path).ok();
//! # Ok(())
//! # }
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::adam::Adam;
use super::cd::{TrainConfig, Trainer};
use super::learner::Learner;
use crate::backend::{column_index, Backend};
use crate::nn::io::{in_file, model_tensors, net_from_file};
use crate::nn::Param;
use crate::tensorfile::{link_atomic, sync_dir, TensorFile};
use crate::{Error, Result};

pub use crate::nn::io::{load_model, model_from_file, model_spec, save_model, SPEC_KEY};
/// Metadata key holding the training config JSON.
pub const TRAIN_KEY: &str = "ebm.train";
/// Metadata key holding the run's position.
pub const RNG_KEY: &str = "ebm.rng";
/// Metadata key of a checkpoint: where the run's data came from ([`Trainer::data_source`]).
pub const DATA_KEY: &str = "ebm.data";

/// Metadata key of an exact sampler's ε and its dual-averaging state (runs with
/// `--sampler mala|hmc`): `{"step_size": ε, "adapter": … or null}`.
pub const EXACT_STEP_KEY: &str = "ebm.exact_step";

/// What [`EXACT_STEP_KEY`] holds.
#[derive(serde::Serialize, serde::Deserialize)]
struct ExactStep {
    step_size: f32,
    adapter: Option<crate::sampler::adapt::DualAveraging>,
}

/// Where a run stands: enough, with the config, to continue it exactly.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunPosition {
    /// The run's seed (also in the config; kept here for readers of the file).
    pub seed: u64,
    /// Iterations completed.
    pub iteration: u64,
    /// Adam steps taken.
    pub adam_t: u64,
}

/// Save a full training checkpoint to `path` (atomically): what [`load_trainer`] needs to
/// continue the run. [`save_run_checkpoint`] also keeps a run folder tidy.
pub fn save_checkpoint<B: Backend>(b: &B, trainer: &Trainer<B>, path: &Path) -> Result<()> {
    checkpoint_file(b, trainer)?.write(path)
}

/// What [`save_checkpoint`] writes, in memory (a cooperative checkpoint nests it under
/// `energy.`).
pub fn checkpoint_file<B: Backend>(b: &B, trainer: &Trainer<B>) -> Result<TensorFile> {
    let mut file = model_tensors(b, &trainer.net)?;
    insert_moments(b, &mut file, "", trainer.net.params(), &trainer.adam)?;
    let dim = trainer.net.input_len();
    let capacity = trainer.replay.capacity();
    file.insert(
        "replay.chains",
        vec![capacity, dim],
        trainer.replay.read_chains(b)?,
    );
    if let Some(labels) = trainer.replay.read_labels(b)? {
        file.insert("replay.labels", vec![capacity], labels);
    }
    let position = RunPosition {
        seed: trainer.config.seed,
        iteration: trainer.iteration,
        adam_t: trainer.adam.t,
    };
    file.metadata.insert(
        TRAIN_KEY.into(),
        serde_json::to_string(&trainer.config).expect("serialisable"),
    );
    file.metadata.insert(
        RNG_KEY.into(),
        serde_json::to_string(&position).expect("serialisable"),
    );
    if let Some(data) = &trainer.data_source {
        file.metadata.insert(DATA_KEY.into(), data.clone());
    }
    if trainer.config.sampler != crate::sampler::Method::Ula {
        let step = ExactStep {
            step_size: trainer.exact_step,
            adapter: trainer.adapter,
        };
        file.metadata.insert(
            EXACT_STEP_KEY.into(),
            serde_json::to_string(&step).expect("serialisable"),
        );
    }
    Ok(file)
}

/// Adam's moments of `params` into `file` as `{prefix}adam.m.{name}` and
/// `{prefix}adam.v.{name}` (`prefix` "" for a one-net run, `generator.` for a generator).
pub(crate) fn insert_moments<B: Backend>(
    b: &B,
    file: &mut TensorFile,
    prefix: &str,
    params: &[Param<B>],
    adam: &Adam<B>,
) -> Result<()> {
    for ((p, m), v) in params.iter().zip(&adam.m).zip(&adam.v) {
        file.insert(
            format!("{prefix}adam.m.{}", p.name),
            p.shape.clone(),
            b.read(m)?,
        );
        file.insert(
            format!("{prefix}adam.v.{}", p.name),
            p.shape.clone(),
            b.read(v)?,
        );
    }
    Ok(())
}

/// Read back what [`insert_moments`] wrote into `adam`, each tensor checked against its
/// parameter's shape.
pub(crate) fn load_moments<B: Backend>(
    b: &B,
    file: &TensorFile,
    path: &Path,
    prefix: &str,
    params: &[Param<B>],
    adam: &mut Adam<B>,
) -> Result<()> {
    for (i, p) in params.iter().enumerate() {
        for (moment, slot) in [("m", &mut adam.m[i]), ("v", &mut adam.v[i])] {
            let key = format!("{prefix}adam.{moment}.{}", p.name);
            let t = file.get(&key, path)?;
            if t.shape != p.shape {
                return Err(Error::format(
                    path,
                    format!(
                        "tensor '{key}' has shape {:?}, the parameter has {:?}",
                        t.shape, p.shape
                    ),
                ));
            }
            b.write(slot, 0, &t.data)?;
        }
    }
    Ok(())
}

/// The run folder's copy of its newest checkpoint.
pub const LATEST_CHECKPOINT: &str = "checkpoint.safetensors";

/// File name of the checkpoint after `iteration` iterations: `checkpoint-00001000.safetensors`
/// (zero-padded so a listing sorts by iteration).
///
/// ```
/// use ebm::train::checkpoint::{checkpoint_file_name, checkpoint_iteration};
///
/// assert_eq!(checkpoint_file_name(1000), "checkpoint-00001000.safetensors");
/// assert_eq!(checkpoint_iteration(&checkpoint_file_name(1000)), Some(1000));
/// assert_eq!(checkpoint_iteration("checkpoint.safetensors"), None);
/// ```
pub fn checkpoint_file_name(iteration: u64) -> String {
    format!("checkpoint-{iteration:08}.safetensors")
}

/// The iteration in a name made by [`checkpoint_file_name`]; `None` for anything else
/// (temp files, `checkpoint.safetensors`, other files).
pub fn checkpoint_iteration(name: &str) -> Option<u64> {
    let digits = name
        .strip_prefix("checkpoint-")?
        .strip_suffix(".safetensors")?;
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The numbered checkpoints in a run folder, oldest first (not checked for validity).
pub fn list_checkpoints(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name();
        if let Some(iteration) = name.to_str().and_then(checkpoint_iteration) {
            found.push((iteration, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

/// Checkpoint a run into its folder, keeping the last `keep` (at least 1): write
/// `checkpoint-<iteration>.safetensors` atomically, make `checkpoint.safetensors` an atomic
/// copy of it, and only then delete older numbered checkpoints beyond `keep`, and any
/// numbered *later* than this one (left by a run this one was resumed from an earlier point
/// of). Returns the new checkpoint's path.
///
/// ```
/// use std::ops::ControlFlow;
/// use ebm::data::{Toy2d, ToyData};
/// use ebm::train::checkpoint::{list_checkpoints, save_run_checkpoint};
/// use ebm::train::{TrainConfig, Trainer};
/// use ebm::{CpuBackend, EnergyNet, Spec};
///
/// # fn main() -> ebm::Result<()> {
/// let dir = std::env::temp_dir().join(format!("ebm-doc-run-{}", std::process::id()));
/// let b = CpuBackend::new();
/// let mut config = TrainConfig::toy2d(0);
/// config.batch = 16;
/// config.buffer_size = 64;
/// let net = EnergyNet::new(&b, &Spec::mlp(2, 16, 1), 0)?;
/// let mut trainer = Trainer::new(&b, net, config)?;
/// let mut data = ToyData { dataset: Toy2d::Rings, seed: 0 };
/// trainer.fit(&b, &mut data, 4, |t, b| {
///     save_run_checkpoint(b, t, &dir, 2)?; // after every iteration, keeping 2
///     Ok(ControlFlow::Continue(()))
/// })?;
/// let kept: Vec<u64> = list_checkpoints(&dir)?.into_iter().map(|(it, _)| it).collect();
/// assert_eq!(kept, [3, 4]);
/// assert!(dir.join("checkpoint.safetensors").is_file()); // a copy of iteration 4
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok(())
/// # }
/// ```
pub fn save_run_checkpoint<B: Backend, L: Learner<B>>(
    b: &B,
    trainer: &L,
    dir: &Path,
    keep: usize,
) -> Result<PathBuf> {
    let iteration = trainer.iteration();
    let path = dir.join(checkpoint_file_name(iteration));
    trainer.checkpoint(b)?.write(&path)?;
    link_atomic(&path, &dir.join(LATEST_CHECKPOINT))?;
    let all = list_checkpoints(dir)?;
    let kept = all.iter().filter(|(it, _)| *it <= iteration).count();
    let stale = all.iter().filter(|(it, _)| *it > iteration);
    let old = all
        .iter()
        .filter(|(it, _)| *it <= iteration)
        .take(kept.saturating_sub(keep.max(1)));
    let mut removed = false;
    for (_, old) in old.chain(stale) {
        match std::fs::remove_file(old) {
            Ok(()) => removed = true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(old, e)),
        }
    }
    if removed {
        sync_dir(dir)?;
    }
    Ok(path)
}

/// Rebuild a trainer from a checkpoint, continuing exactly where it stopped: net, Adam
/// moments and step, replay chains, config and iteration all come from the file.
///
/// ```
/// use std::ops::ControlFlow;
/// use ebm::data::{Toy2d, ToyData};
/// use ebm::train::checkpoint::{load_trainer, save_checkpoint};
/// use ebm::train::{TrainConfig, Trainer};
/// use ebm::{CpuBackend, EnergyNet, Spec};
///
/// # fn main() -> ebm::Result<()> {
/// let b = CpuBackend::new();
/// let mut config = TrainConfig::toy2d(3);
/// config.batch = 16;
/// config.buffer_size = 64;
/// let net = EnergyNet::new(&b, &Spec::mlp(2, 16, 1), config.seed)?;
/// let mut trainer = Trainer::new(&b, net, config)?;
/// let mut data = ToyData { dataset: Toy2d::Moons, seed: 3 };
/// let go_on = |_: &mut Trainer<CpuBackend>, _: &CpuBackend| Ok(ControlFlow::Continue(()));
/// trainer.fit(&b, &mut data, 3, go_on)?;
///
/// let path = std::env::temp_dir().join(format!("ebm-doc-ckpt-{}.safetensors", std::process::id()));
/// save_checkpoint(&b, &trainer, &path)?;
/// let mut resumed: Trainer<CpuBackend> = load_trainer(&b, &path)?;
/// assert_eq!(resumed.iteration, 3);
/// // Two more iterations each: the resumed run matches the uninterrupted one.
/// trainer.fit(&b, &mut data, 2, go_on)?;
/// resumed.fit(&b, &mut data, 2, go_on)?;
/// assert_eq!(resumed.net.read_params(&b)?, trainer.net.read_params(&b)?);
/// # std::fs::remove_file(&path).ok();
/// # Ok(())
/// # }
/// ```
pub fn load_trainer<B: Backend>(b: &B, path: &Path) -> Result<Trainer<B>> {
    let file = TensorFile::read(path)?;
    if let Some(kind) = crate::nn::io::model_kind(&file) {
        return Err(Error::format(
            path,
            format!("a {kind} checkpoint (several nets), not a single-net CD checkpoint"),
        ));
    }
    trainer_from_file(b, &file, path)
}

/// [`load_trainer`] from a file already read (`path` names it in errors).
pub fn trainer_from_file<B: Backend>(b: &B, file: &TensorFile, path: &Path) -> Result<Trainer<B>> {
    let spec = model_spec(file, path, None)?;
    let meta = |key: &str| {
        file.metadata.get(key).ok_or_else(|| {
            Error::format(
                path,
                format!("no '{key}' metadata: not a training checkpoint"),
            )
        })
    };
    let config: TrainConfig = serde_json::from_str(meta(TRAIN_KEY)?)
        .map_err(|e| Error::format(path, format!("{TRAIN_KEY}: {e}")))?;
    let position: RunPosition = serde_json::from_str(meta(RNG_KEY)?)
        .map_err(|e| Error::format(path, format!("{RNG_KEY}: {e}")))?;
    // The global Langevin step count is iteration × K: it must not overflow.
    if position
        .iteration
        .checked_add(1)
        .and_then(|i| i.checked_mul(config.langevin.steps as u64))
        .is_none()
    {
        return Err(Error::format(
            path,
            format!(
                "{RNG_KEY}: iteration {} is out of range",
                position.iteration
            ),
        ));
    }
    let net = net_from_file(b, file, path, &spec)?;
    let mut trainer = Trainer::new(b, net, config).map_err(|e| {
        let e = in_file(e, path);
        match e {
            Error::Format { path, what } => Error::format(path, format!("{TRAIN_KEY}: {what}")),
            other => other,
        }
    })?;
    load_moments(b, file, path, "", trainer.net.params(), &mut trainer.adam)?;
    let chains = file.get("replay.chains", path)?;
    let want = [trainer.replay.capacity(), trainer.net.input_len()];
    if chains.shape != want {
        return Err(Error::format(
            path,
            format!(
                "tensor 'replay.chains' has shape {:?}, the run's replay buffer needs {want:?}",
                chains.shape
            ),
        ));
    }
    trainer.replay.load_chains(b, &chains.data)?;
    if trainer.replay.read_labels(b)?.is_some() {
        let labels = file.get("replay.labels", path)?;
        if labels.shape != [trainer.replay.capacity()] {
            return Err(Error::format(
                path,
                format!(
                    "tensor 'replay.labels' has shape {:?}, the run's replay buffer needs [{}]",
                    labels.shape,
                    trainer.replay.capacity()
                ),
            ));
        }
        let classes = trainer.net.classes().unwrap_or(0);
        if let Some((i, y)) = labels
            .data
            .iter()
            .enumerate()
            .find(|(_, &y)| y != -1.0 && column_index(y, classes).is_none())
        {
            return Err(Error::format(
                path,
                format!(
                    "replay.labels[{i}] = {y} is neither −1 nor a class of the net (0..{classes})"
                ),
            ));
        }
        trainer.replay.load_labels(b, &labels.data)?;
    }
    trainer.data_source = file.metadata.get(DATA_KEY).cloned();
    if let Some(json) = file.metadata.get(EXACT_STEP_KEY) {
        let step: ExactStep = serde_json::from_str(json)
            .map_err(|e| Error::format(path, format!("{EXACT_STEP_KEY}: {e}")))?;
        if !(step.step_size.is_finite() && step.step_size > 0.0) {
            return Err(Error::format(
                path,
                format!(
                    "{EXACT_STEP_KEY}: step size {} is not a positive number",
                    step.step_size
                ),
            ));
        }
        trainer.exact_step = step.step_size;
        trainer.adapter = step.adapter;
    }
    trainer.iteration = position.iteration;
    trainer.adam.t = position.adam_t;
    Ok(trainer)
}
