//! Every WGSL file and compute entry point the crate builds: the backend's own (layer
//! primitives, general ops) and each algorithm's, which are defined next to the algorithm.
//! The shader tests read these lists to check them against `shaders/` with naga.

use crate::backend::gpu::kernels;
use crate::backend::kernel::{ImmediateLayout, WgslEntry};
use crate::{sampler, train};

/// Every entry point: the backend's kernel table, then the algorithms'.
fn all_entries() -> Vec<&'static WgslEntry> {
    let algorithms: [&'static WgslEntry; 12] = [
        &sampler::langevin_update::LANGEVIN_UPDATE,
        &sampler::metropolis::MALA_ACCEPT,
        &sampler::metropolis::HMC_ACCEPT,
        &sampler::metropolis::HMC_MOMENTUM,
        &sampler::mlp_chain::MLP_LANGEVIN_CHAIN,
        &sampler::mlp_chain::mala::MLP_MALA_CHAIN,
        &sampler::replay_kernels::REPLAY_DRAW,
        &sampler::replay_kernels::REPLAY_SCATTER,
        &sampler::replay_kernels::REPLAY_LABELS,
        &train::cd_loss::CD_LOSS,
        &train::adam_update::ADAM_UPDATE,
        &train::health::FLAG_NON_FINITE,
    ];
    kernels::ALL_KERNELS
        .iter()
        .copied()
        .chain(algorithms)
        .collect()
}

/// The WGSL module built from `shaders/<file>` (e.g. `"langevin.wgsl"`), with its preludes
/// (`rng.wgsl`, `workgroup_reduce.wgsl`, `conv2d_gather.wgsl`) prepended; `None` for a file
/// nothing builds. A prelude file itself (no entry points) is returned as it is. Lets the
/// shader tests validate exactly what the GPU compiles.
pub fn shader_source(file: &str) -> Option<String> {
    let entries = all_entries();
    if let Some(prelude) = entries
        .iter()
        .flat_map(|e| e.shader.preludes)
        .find(|p| p.file == file)
    {
        return Some(prelude.body.to_string());
    }
    entries
        .into_iter()
        .find(|e| e.shader.file == file)
        .map(|e| e.shader.source())
}

/// Every compute entry point the crate builds a pipeline for, as `(file, entry)` with the
/// file under `shaders/`: lets the shader tests check that this list and the `@compute`
/// functions in the files are the same set.
pub fn entry_points() -> Vec<(&'static str, &'static str)> {
    all_entries()
        .into_iter()
        .map(|e| (e.shader.file, e.entry))
        .collect()
}

/// Every Rust struct passed to a kernel as immediates, with the shader struct it must match.
#[doc(hidden)]
pub fn immediate_layouts() -> Vec<ImmediateLayout> {
    let mut all = kernels::immediate_layouts();
    all.extend(sampler::langevin_update::immediate_layouts());
    all.extend(sampler::metropolis::immediate_layouts());
    all.extend(sampler::mlp_chain::immediate_layouts());
    all.extend(sampler::replay_kernels::immediate_layouts());
    all.extend(train::cd_loss::immediate_layouts());
    all.extend(train::adam_update::immediate_layouts());
    all.extend(train::health::immediate_layouts());
    all
}
