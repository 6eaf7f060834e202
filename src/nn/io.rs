//! Model files: safetensors with the parameters under their PyTorch names and layouts and the
//! spec JSON in the metadata key `ebm.spec`. A PyTorch state_dict saved with safetensors and
//! that metadata is a model file. Training checkpoints ([`crate::train::checkpoint`]) are
//! model files with the trainer's state added.
//!
//! ```
//! use ebm::nn::io::{load_model, save_model};
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

use std::path::Path;

use super::{EnergyNet, Net, Spec};
use crate::backend::Backend;
use crate::tensorfile::TensorFile;
use crate::{Error, Result};

/// Metadata key holding the model spec JSON.
pub const SPEC_KEY: &str = "ebm.spec";

/// Metadata key of a file that holds several nets (`coop`, `latent-ebm`): each net's
/// tensors under its prefix (`energy.`, `generator.`) and its spec in `ebm.spec.<prefix>`.
pub const MODEL_KIND_KEY: &str = "ebm.model";

/// A multi-net file's kind (`coop`, `latent-ebm`), `None` for a single net.
pub fn model_kind(file: &TensorFile) -> Option<&str> {
    file.metadata.get(MODEL_KIND_KEY).map(String::as_str)
}

/// A file of several nets: each of `files` (a single net's model file or checkpoint) under
/// its prefix, with its metadata (its `ebm.spec` becoming `ebm.spec.<prefix>`), each of
/// `nets` (generators) under its prefix with its spec, and `ebm.model` = `kind`.
pub(crate) fn nets_file<B: Backend>(
    b: &B,
    files: &[(&str, &TensorFile)],
    nets: &[(&str, &Net<B>)],
    kind: &str,
) -> Result<TensorFile> {
    let mut out = TensorFile::new();
    for (prefix, file) in files {
        for (name, t) in &file.tensors {
            out.tensors.insert(format!("{prefix}.{name}"), t.clone());
        }
        for (key, value) in &file.metadata {
            let key = if key == SPEC_KEY {
                format!("{SPEC_KEY}.{prefix}")
            } else {
                key.clone()
            };
            out.metadata.insert(key, value.clone());
        }
    }
    for (prefix, net) in nets {
        for (name, t) in net.read_params(b)? {
            out.tensors.insert(format!("{prefix}.{name}"), t);
        }
        out.metadata
            .insert(format!("{SPEC_KEY}.{prefix}"), net.spec().to_json());
    }
    out.metadata.insert(MODEL_KIND_KEY.into(), kind.into());
    Ok(out)
}

/// The part of a multi-net file under `prefix`, as a single-net file: its tensors with the
/// prefix stripped, every metadata entry, and `ebm.spec` = `ebm.spec.<prefix>`.
pub fn sub_file(file: &TensorFile, prefix: &str) -> TensorFile {
    let dotted = format!("{prefix}.");
    let mut out = TensorFile::new();
    for (name, t) in &file.tensors {
        if let Some(rest) = name.strip_prefix(&dotted) {
            out.tensors.insert(rest.to_string(), t.clone());
        }
    }
    out.metadata = file.metadata.clone();
    out.metadata.remove(SPEC_KEY);
    if let Some(spec) = file.metadata.get(&format!("{SPEC_KEY}.{prefix}")) {
        out.metadata.insert(SPEC_KEY.into(), spec.clone());
    }
    out
}

/// The net (a generator, or any net without an energy head) under `prefix` of a multi-net
/// file.
pub fn read_net<B: Backend>(b: &B, file: &TensorFile, path: &Path, prefix: &str) -> Result<Net<B>> {
    let sub = sub_file(file, prefix);
    let spec = sub.metadata.get(SPEC_KEY).ok_or_else(|| {
        Error::format(
            path,
            format!("no '{SPEC_KEY}.{prefix}' metadata: no {prefix} net"),
        )
    })?;
    let spec = Spec::from_json(spec).map_err(|e| Error::format(path, e.to_string()))?;
    let shown = format!("{prefix}.");
    Net::from_params(b, &spec, |name, shape| {
        param_values(&sub, path, name, shape, &shown)
    })
    .map_err(|e| in_file(e, path))
}

/// The energy net under `prefix` of a multi-net file.
pub fn read_energy<B: Backend>(
    b: &B,
    file: &TensorFile,
    path: &Path,
    prefix: &str,
) -> Result<EnergyNet<B>> {
    energy_under(b, file, path, prefix, None)
}

/// [`read_energy`] with `spec` in place of the file's, if given.
fn energy_under<B: Backend>(
    b: &B,
    file: &TensorFile,
    path: &Path,
    prefix: &str,
    spec: Option<&Spec>,
) -> Result<EnergyNet<B>> {
    let sub = sub_file(file, prefix);
    let spec = model_spec(&sub, path, spec)?;
    net_from_file(b, &sub, path, &spec)
}

/// The values of parameter `name` (`{shown}{name}` in errors) in `file`, which must have the
/// spec's `shape`.
fn param_values(
    file: &TensorFile,
    path: &Path,
    name: &str,
    shape: &[usize],
    shown: &str,
) -> Result<Vec<f32>> {
    let t = file.get(name, path)?;
    if t.shape != shape {
        return Err(Error::format(
            path,
            format!(
                "tensor '{shown}{name}' has shape {:?}, the spec needs {shape:?}",
                t.shape
            ),
        ));
    }
    Ok(t.data.clone())
}

pub(crate) fn model_tensors<B: Backend>(b: &B, net: &EnergyNet<B>) -> Result<TensorFile> {
    let mut file = TensorFile::new();
    for (name, tensor) in net.read_params(b)? {
        file.tensors.insert(name, tensor);
    }
    file.metadata.insert(SPEC_KEY.into(), net.spec().to_json());
    Ok(file)
}

/// Save a model file: parameters and spec (atomically). See the [module](self) example.
pub fn save_model<B: Backend>(b: &B, net: &EnergyNet<B>, path: &Path) -> Result<()> {
    model_tensors(b, net)?.write(path)
}

/// The spec stored in a model file, or `spec` if given (for files without metadata);
/// `path` names the file in errors.
pub fn model_spec(file: &TensorFile, path: &Path, spec: Option<&Spec>) -> Result<Spec> {
    match (spec, file.metadata.get(SPEC_KEY)) {
        (Some(spec), _) => Ok(spec.clone()),
        (None, Some(json)) => Spec::from_json(json).map_err(|e| Error::format(path, e.to_string())),
        (None, None) => Err(Error::format(
            path,
            format!("no '{SPEC_KEY}' metadata: pass the model's spec with --spec"),
        )),
    }
}

/// Load a model file (ours, or a PyTorch state_dict saved with safetensors). Without
/// `ebm.spec` metadata the file needs `spec`; given, `spec` overrides the metadata. Every
/// tensor must match the spec's shapes, and a `layers.*` tensor the spec has no place for is
/// an error.
///
/// ```
/// use ebm::tensorfile::TensorFile;
/// use ebm::nn::io::load_model;
/// use ebm::{CpuBackend, EnergyNet, Spec};
///
/// # fn main() -> ebm::Result<()> {
/// // A state_dict as PyTorch's safetensors would write it for nn.Sequential(nn.Linear(2, 1)):
/// // no metadata, so the spec must come from the caller.
/// let mut file = TensorFile::new();
/// file.insert("layers.0.weight", vec![1, 2], vec![1.0, 2.0]);
/// file.insert("layers.0.bias", vec![1], vec![0.5]);
/// let path = std::env::temp_dir().join(format!("ebm-doc-state-dict-{}.safetensors", std::process::id()));
/// file.write(&path)?;
///
/// let b = CpuBackend::new();
/// assert!(load_model::<CpuBackend>(&b, &path, None).is_err(), "no spec anywhere");
/// let spec = Spec::from_json(r#"{"input": [2], "layers": [{"type": "linear", "in": 2, "out": 1}]}"#)?;
/// let mut net: EnergyNet<CpuBackend> = load_model(&b, &path, Some(&spec))?;
/// assert_eq!(net.energies(&b, &[1.0, 1.0])?, [3.5]);
/// # std::fs::remove_file(&path).ok();
/// # Ok(())
/// # }
/// ```
pub fn load_model<B: Backend>(b: &B, path: &Path, spec: Option<&Spec>) -> Result<EnergyNet<B>> {
    model_from_file(b, &TensorFile::read(path)?, path, spec)
}

/// [`load_model`] from a file already read (`path` names it in errors), for callers that
/// also want its metadata.
pub fn model_from_file<B: Backend>(
    b: &B,
    file: &TensorFile,
    path: &Path,
    spec: Option<&Spec>,
) -> Result<EnergyNet<B>> {
    // A cooperative file serves its energy; a latent-EBM file's energy is a prior on z,
    // not a density on the data.
    if model_kind(file) == Some("latent-ebm") {
        return Err(Error::format(
            path,
            "a latent-EBM model: its energy is a prior on the generator's latent z, not an \
             energy of data (draw its samples with `ebm sample`)",
        ));
    }
    if model_kind(file).is_some() && !file.metadata.contains_key(SPEC_KEY) {
        return energy_under(b, file, path, "energy", spec);
    }
    let spec = model_spec(file, path, spec)?;
    net_from_file(b, file, path, &spec)
}

pub(crate) fn net_from_file<B: Backend>(
    b: &B,
    file: &TensorFile,
    path: &Path,
    spec: &Spec,
) -> Result<EnergyNet<B>> {
    let mut used = Vec::new();
    let net = EnergyNet::from_params(b, spec, |name, shape| {
        let values = param_values(file, path, name, shape, "")?;
        used.push(name.to_string());
        Ok(values)
    })
    .map_err(|e| in_file(e, path))?;
    // A parameter the spec has no place for means the spec does not describe this file
    // (a wrong --spec, a model file whose `ebm.spec` was edited, a PyTorch module with
    // buffers the engine has no use for). A checkpoint's optimiser and replay tensors are
    // the trainer's.
    if let Some(extra) = file
        .tensors
        .keys()
        .find(|k| !used.contains(k) && !k.starts_with("adam.") && !k.starts_with("replay."))
    {
        return Err(Error::format(
            path,
            format!(
                "tensor '{extra}' has no place in the spec (its layers with parameters: {})",
                param_layers(spec)
            ),
        ));
    }
    Ok(net)
}

/// The names of the layers that have parameters, e.g. `layers.0, layers.2`, for errors.
fn param_layers(spec: &Spec) -> String {
    let with: Vec<String> = spec
        .layers
        .iter()
        .enumerate()
        .filter(|(_, l)| l.op.has_params())
        .map(|(i, _)| spec.layer_name(i))
        .collect();
    if with.is_empty() {
        "none".into()
    } else {
        with.join(", ")
    }
}

/// A spec, shape or option error found while building from a file's contents is a problem
/// of that file: say which.
pub(crate) fn in_file(e: Error, path: &Path) -> Error {
    match e {
        Error::Spec(_) | Error::Shape(_) | Error::Option(_) => Error::format(path, e.to_string()),
        other => other,
    }
}
