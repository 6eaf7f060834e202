//! The replay buffer's algorithm kernels (`shaders/chains.wgsl` and their CPU twins): draw a
//! batch of chains out of the buffer, re-initialising some, pick their class labels
//! (conditional training), and scatter the advanced batch back. [`ReplayBuffer`](super::ReplayBuffer) runs them; tests run them directly.

use crate::backend::kernel::{arity, layout, need, seed_words, Access, ImmediateLayout};
use crate::backend::kernel::{Kernel, WgslEntry, WgslShader};
use crate::backend::{Backend, GpuBackend, GpuTensor};
use crate::rng::{self, Stream};
use crate::{Error, Result};

/// One replay-buffer draw (docs/ARCHITECTURE.md, Random numbers): for j in 0..batch, chain
/// index `min(⌊u·N⌋, N−1)` with u from counter (j/4, 0, iteration, 2) lane j%4,
/// re-initialised when u' from counter (j/4, 1, iteration, 2) is < `reinit_prob`, with
/// uniform values from counter (e/4, j, iteration, 1) mapped to [lo, hi].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ReplayDraw {
    /// Chains in the buffer (N); below 2²⁴ so that indices are exact in f32.
    pub capacity: usize,
    /// Chains drawn (B): rows of x.
    pub batch: usize,
    /// Values per chain.
    pub dim: usize,
    /// Probability in [0, 1] that a drawn chain restarts from uniform noise (1: always, the
    /// short-run mode).
    pub reinit_prob: f32,
    /// Lower end of the uniform re-initialisation noise.
    pub lo: f32,
    /// Upper end of the uniform re-initialisation noise.
    pub hi: f32,
    /// Philox key: the run's seed.
    pub seed: u64,
    /// Training iteration, the Philox step counter of the draw: each iteration draws other
    /// chains and other noise.
    pub iteration: u32,
}

/// The write-back kernel of a [`ReplayDraw`]: x goes back to the rows its draw took.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ReplayScatter(pub ReplayDraw);

/// The class labels of a [`ReplayDraw`]'s chains (conditional training): a re-initialised
/// chain, or one without a label yet (stored label < 0), takes the data label of its row;
/// any other keeps the label stored with it. The same Philox decisions as the draw, so the
/// labels match the chains drawn.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ReplayLabels(pub ReplayDraw);

impl ReplayDraw {
    /// Draw `batch` chains from `buffer` `[capacity, dim]` into `x` `[batch, dim]`,
    /// re-initialising some; writes the drawn chain indices (as exact f32) into `indices`.
    pub fn draw<B: Backend>(
        &self,
        b: &B,
        buffer: &B::Tensor,
        x: &mut B::Tensor,
        indices: &mut B::Tensor,
    ) {
        b.run(self, &[buffer], &mut [x, indices]);
    }

    /// Write `x` back to the rows of `buffer` named by `indices`; where a chain was drawn
    /// twice, the later draw wins (deterministic on every device).
    pub fn scatter<B: Backend>(
        &self,
        b: &B,
        x: &B::Tensor,
        indices: &B::Tensor,
        buffer: &mut B::Tensor,
    ) {
        b.run(&ReplayScatter(*self), &[x, indices], &mut [buffer]);
    }

    /// The labels of this draw's chains into `labels` `[batch]`: `data_labels[j]` for a
    /// re-initialised chain j or one whose stored label is negative (none yet), else
    /// `stored[index_j]` (`stored` `[capacity]`).
    pub fn labels<B: Backend>(
        &self,
        b: &B,
        stored: &B::Tensor,
        data_labels: &B::Tensor,
        labels: &mut B::Tensor,
    ) {
        b.run(&ReplayLabels(*self), &[stored, data_labels], &mut [labels]);
    }

    /// The lengths of buffer, x and indices this draw needs.
    fn check_lens(&self, kernel: &str, buffer: usize, x: usize, indices: usize) -> Result<()> {
        if self.capacity == 0 || self.capacity >= 1 << 24 {
            return Err(Error::Shape(format!(
                "{kernel}: capacity {} must be in 1..2^24",
                self.capacity
            )));
        }
        need(
            kernel,
            &[
                ("buffer", buffer, self.capacity * self.dim),
                ("x", x, self.batch * self.dim),
                ("indices", indices, self.batch),
            ],
        )
    }
}

/// Inputs `[buffer]`, outputs `[x, indices]`.
impl Kernel for ReplayDraw {
    fn name(&self) -> &'static str {
        "replay_draw"
    }

    fn check(&self, inputs: &[usize], outputs: &[usize]) -> Result<()> {
        arity(self.name(), inputs, outputs, (1, 2))?;
        self.check_lens(self.name(), inputs[0], outputs[0], outputs[1])
    }

    fn cpu(&self, inputs: &[&[f32]], outputs: &mut [&mut [f32]]) {
        let (buffer, dim) = (inputs[0], self.dim);
        let [x, indices] = outputs else {
            unreachable!("checked: two outputs")
        };
        for j in 0..self.batch {
            let row = &mut x[j * dim..(j + 1) * dim];
            let j32 = j as u32;
            let pick = rng::uniform_at(self.seed, j32, 0, self.iteration, Stream::ReplayDraw);
            let index = rng::index_from_uniform(pick, self.capacity);
            indices[j] = index as f32;
            let restart = rng::uniform_at(self.seed, j32, 1, self.iteration, Stream::ReplayDraw);
            if restart < self.reinit_prob {
                let (lo, hi) = (self.lo, self.hi);
                rng::fill_uniform(
                    self.seed,
                    j32,
                    self.iteration,
                    Stream::ReplayReinit,
                    lo,
                    hi,
                    row,
                );
            } else {
                row.copy_from_slice(&buffer[index * dim..(index + 1) * dim]);
            }
        }
    }

    fn gpu(&self, gpu: &GpuBackend, inputs: &[&GpuTensor], outputs: &[&GpuTensor]) -> Result<()> {
        if self.batch == 0 {
            return Ok(());
        }
        let blocks = self.dim.div_ceil(4).max(1);
        let groups = gpu.grid_1d(self.batch * blocks)?;
        let (seed_lo, seed_hi) = seed_words(self.seed);
        let params = DrawParams {
            capacity: self.capacity as u32,
            batch: gpu.dim_u32(self.batch)?,
            dim: gpu.dim_u32(self.dim)?,
            blocks_per_row: blocks as u32,
            reinit_prob: self.reinit_prob,
            lo: self.lo,
            hi: self.hi,
            seed_lo,
            seed_hi,
            iteration: self.iteration,
        };
        let buffers = [inputs[0], outputs[0], outputs[1]];
        gpu.dispatch(&REPLAY_DRAW, &buffers, &params, groups);
        Ok(())
    }
}

/// Inputs `[x, indices]`, outputs `[buffer]`.
impl Kernel for ReplayScatter {
    fn name(&self) -> &'static str {
        "replay_scatter"
    }

    fn check(&self, inputs: &[usize], outputs: &[usize]) -> Result<()> {
        arity(self.name(), inputs, outputs, (2, 1))?;
        self.0
            .check_lens(self.name(), outputs[0], inputs[0], inputs[1])
    }

    fn cpu(&self, inputs: &[&[f32]], outputs: &mut [&mut [f32]]) {
        let (d, x, indices) = (&self.0, inputs[0], inputs[1]);
        let dim = d.dim.max(1);
        // In draw order, so that a later draw of the same chain overwrites an earlier one;
        // an index that names no chain is skipped, as the WGSL kernel skips it.
        for (j, row) in x[..d.batch * d.dim].chunks(dim).enumerate() {
            let index = indices[j] as usize;
            if index < d.capacity {
                outputs[0][index * d.dim..(index + 1) * d.dim].copy_from_slice(row);
            }
        }
    }

    fn gpu(&self, gpu: &GpuBackend, inputs: &[&GpuTensor], outputs: &[&GpuTensor]) -> Result<()> {
        let d = &self.0;
        if d.batch == 0 || d.dim == 0 {
            return Ok(());
        }
        // One workgroup per drawn row.
        let groups = gpu.grid(d.batch)?;
        let params = ScatterParams {
            capacity: d.capacity as u32,
            batch: gpu.dim_u32(d.batch)?,
            dim: gpu.dim_u32(d.dim)?,
        };
        let buffers = [inputs[0], inputs[1], outputs[0]];
        gpu.dispatch(&REPLAY_SCATTER, &buffers, &params, groups);
        Ok(())
    }
}

/// Inputs `[stored, data_labels]`, outputs `[labels]`.
impl Kernel for ReplayLabels {
    fn name(&self) -> &'static str {
        "replay_labels"
    }

    fn check(&self, inputs: &[usize], outputs: &[usize]) -> Result<()> {
        arity(self.name(), inputs, outputs, (2, 1))?;
        let d = &self.0;
        d.check_lens(self.name(), d.capacity * d.dim, d.batch * d.dim, d.batch)?;
        need(
            self.name(),
            &[
                ("stored labels", inputs[0], d.capacity),
                ("data labels", inputs[1], d.batch),
                ("labels", outputs[0], d.batch),
            ],
        )
    }

    fn cpu(&self, inputs: &[&[f32]], outputs: &mut [&mut [f32]]) {
        let (d, stored, data) = (&self.0, inputs[0], inputs[1]);
        for (j, label) in outputs[0][..d.batch].iter_mut().enumerate() {
            let j32 = j as u32;
            let pick = rng::uniform_at(d.seed, j32, 0, d.iteration, Stream::ReplayDraw);
            let index = rng::index_from_uniform(pick, d.capacity);
            let restart = rng::uniform_at(d.seed, j32, 1, d.iteration, Stream::ReplayDraw);
            *label = if restart < d.reinit_prob || stored[index] < 0.0 {
                data[j]
            } else {
                stored[index]
            };
        }
    }

    fn gpu(&self, gpu: &GpuBackend, inputs: &[&GpuTensor], outputs: &[&GpuTensor]) -> Result<()> {
        let d = &self.0;
        if d.batch == 0 {
            return Ok(());
        }
        let groups = gpu.grid_1d(d.batch)?;
        let (seed_lo, seed_hi) = seed_words(d.seed);
        let params = LabelParams {
            capacity: d.capacity as u32,
            batch: gpu.dim_u32(d.batch)?,
            reinit_prob: d.reinit_prob,
            seed_lo,
            seed_hi,
            iteration: d.iteration,
        };
        let buffers = [inputs[0], inputs[1], outputs[0]];
        gpu.dispatch(&REPLAY_LABELS, &buffers, &params, groups);
        Ok(())
    }
}

/// `shaders/chains.wgsl`.
pub(crate) const CHAINS: WgslShader = WgslShader {
    file: "chains.wgsl",
    body: include_str!("../../shaders/chains.wgsl"),
    preludes: &[crate::backend::kernel::RNG],
    unchecked_indexing: false,
};

/// Buffer, x (read-write), indices (read-write).
pub(crate) const REPLAY_DRAW: WgslEntry = WgslEntry {
    shader: &CHAINS,
    entry: "replay_draw",
    bindings: &[
        (0, Access::Read),
        (1, Access::ReadWrite),
        (2, Access::ReadWrite),
    ],
};

/// x, indices, buffer (read-write).
pub(crate) const REPLAY_SCATTER: WgslEntry = WgslEntry {
    shader: &CHAINS,
    entry: "replay_scatter",
    bindings: &[(0, Access::Read), (1, Access::Read), (2, Access::ReadWrite)],
};

/// Stored labels, data labels, labels (read-write).
pub(crate) const REPLAY_LABELS: WgslEntry = WgslEntry {
    shader: &CHAINS,
    entry: "replay_labels",
    bindings: &[(0, Access::Read), (1, Access::Read), (2, Access::ReadWrite)],
};

/// `LabelParams` in chains.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct LabelParams {
    capacity: u32,
    batch: u32,
    reinit_prob: f32,
    seed_lo: u32,
    seed_hi: u32,
    iteration: u32,
}

/// `DrawParams` in chains.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct DrawParams {
    capacity: u32,
    batch: u32,
    dim: u32,
    blocks_per_row: u32,
    reinit_prob: f32,
    lo: f32,
    hi: f32,
    seed_lo: u32,
    seed_hi: u32,
    iteration: u32,
}

/// `ScatterParams` in chains.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct ScatterParams {
    capacity: u32,
    batch: u32,
    dim: u32,
}

/// The immediates layouts the shader test checks.
pub(crate) fn immediate_layouts() -> Vec<ImmediateLayout> {
    vec![
        layout!(
            "chains.wgsl",
            DrawParams {
                capacity,
                batch,
                dim,
                blocks_per_row,
                reinit_prob,
                lo,
                hi,
                seed_lo,
                seed_hi,
                iteration,
            }
        ),
        layout!(
            "chains.wgsl",
            LabelParams {
                capacity,
                batch,
                reinit_prob,
                seed_lo,
                seed_hi,
                iteration,
            }
        ),
        layout!(
            "chains.wgsl",
            ScatterParams {
                capacity,
                batch,
                dim
            }
        ),
    ]
}
