//! The fused Langevin update, an algorithm kernel (`shaders/langevin.wgsl` and its CPU twin):
//! one step of unadjusted Langevin dynamics with its own Philox noise, in place on a batch
//! of chains.
//!
//! ```
//! use ebm::backend::Backend;
//! use ebm::sampler::LangevinUpdate;
//! use ebm::CpuBackend;
//!
//! # fn main() -> ebm::Result<()> {
//! let b = CpuBackend::new();
//! let (mut x, grad) = (b.upload(&[0.5, -0.5])?, b.upload(&[1.0, 100.0])?);
//! let step = LangevinUpdate {
//!     rows: 1, dim: 2, step: 0.1, noise: 0.0, grad_clip: Some(1.0), lo: -1.0, hi: 1.0,
//!     seed: 0, global_step: 0, chain_offset: 0,
//! };
//! step.run(&b, &mut x, &grad);
//! // x − 0.1·clip(g, ±1): the second gradient is clipped to 1.
//! assert_eq!(b.read(&x)?, [0.4, -0.6]);
//! # Ok(())
//! # }
//! ```

use rayon::prelude::*;

use crate::backend::kernel::{arity, layout, need, seed_words, Access, ImmediateLayout};
use crate::backend::kernel::{Kernel, WgslEntry, WgslShader};
use crate::backend::{Backend, GpuBackend, GpuTensor};
use crate::rng::{self, Stream};
use crate::Result;

/// One fused Langevin update of `rows` chains of `dim` elements each:
/// `x ← clamp(x − step·clip(g) + noise·ξ, lo, hi)` with ξ the Philox normals of
/// `(seed, e / 4, chain_offset + row, global_step, stream 0)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LangevinUpdate {
    /// Chains updated: rows of x and of the gradient.
    pub rows: usize,
    /// Values per chain (the net's input length).
    pub dim: usize,
    /// Gradient step size: x moves by −step·g.
    pub step: f32,
    /// Standard deviation of the Gaussian noise ξ added per element.
    pub noise: f32,
    /// Per-element gradient clip: g is clamped to [−c, c] when `Some(c)`.
    pub grad_clip: Option<f32>,
    /// Lower end of the box every element is clamped to after the step.
    pub lo: f32,
    /// Upper end of that box.
    pub hi: f32,
    /// Philox key: the run's seed.
    pub seed: u64,
    /// Philox step counter of this update; successive updates of a run use successive
    /// values, so no two steps share noise.
    pub global_step: u32,
    /// Row `r` uses Philox chain index `chain_offset + r`.
    pub chain_offset: u32,
}

impl LangevinUpdate {
    /// Run the update in place on `x` `[rows, dim]` with the energy gradient `grad` (same
    /// shape).
    pub fn run<B: Backend>(&self, b: &B, x: &mut B::Tensor, grad: &B::Tensor) {
        b.run(self, &[grad], &mut [x]);
    }

    /// The update of one chain `row` (relative to `chain_offset`): one Philox call per
    /// 4-element block, exactly as shaders/langevin.wgsl consumes it. The fused MLP chain's
    /// CPU twin applies it to each of its chains too.
    pub(crate) fn row(&self, row: usize, x: &mut [f32], grad: &[f32]) {
        for (block, (xb, gb)) in x.chunks_mut(4).zip(grad.chunks(4)).enumerate() {
            let xi = rng::normals(rng::words(
                self.seed,
                block as u32,
                self.chain_offset + row as u32,
                self.global_step,
                Stream::Langevin,
            ));
            for ((x, &g), z) in xb.iter_mut().zip(gb).zip(xi) {
                let g = match self.grad_clip {
                    Some(c) => g.clamp(-c, c),
                    None => g,
                };
                *x = (*x - self.step * g + self.noise * z).clamp(self.lo, self.hi);
            }
        }
    }
}

/// Inputs `[grad]`, outputs `[x]`.
impl Kernel for LangevinUpdate {
    fn name(&self) -> &'static str {
        "langevin_update"
    }

    fn check(&self, inputs: &[usize], outputs: &[usize]) -> Result<()> {
        arity(self.name(), inputs, outputs, (1, 1))?;
        let len = self.rows * self.dim;
        need(
            self.name(),
            &[("x", outputs[0], len), ("grad", inputs[0], len)],
        )
    }

    fn cpu(&self, inputs: &[&[f32]], outputs: &mut [&mut [f32]]) {
        let (dim, len) = (self.dim.max(1), self.rows * self.dim);
        let rows = outputs[0][..len]
            .par_chunks_mut(dim)
            .zip(inputs[0][..len].par_chunks(dim));
        // A rayon task per row cost ~45 µs per call on toy2d's 2-wide rows: at least
        // 4096 elements per task.
        rows.enumerate()
            .with_min_len(4096_usize.div_ceil(dim))
            .for_each(|(row, (xr, gr))| self.row(row, xr, gr));
    }

    fn gpu(&self, gpu: &GpuBackend, inputs: &[&GpuTensor], outputs: &[&GpuTensor]) -> Result<()> {
        if self.rows * self.dim == 0 {
            return Ok(());
        }
        let blocks = self.dim.div_ceil(4);
        let groups = gpu.grid_1d(self.rows * blocks)?;
        let (seed_lo, seed_hi) = seed_words(self.seed);
        let params = LangevinParams {
            rows: gpu.dim_u32(self.rows)?,
            dim: gpu.dim_u32(self.dim)?,
            blocks_per_row: blocks as u32,
            step: self.step,
            noise: self.noise,
            clip: self.grad_clip.unwrap_or(0.0),
            has_clip: u32::from(self.grad_clip.is_some()),
            lo: self.lo,
            hi: self.hi,
            seed_lo,
            seed_hi,
            global_step: self.global_step,
            chain_offset: self.chain_offset,
        };
        gpu.dispatch(&LANGEVIN_UPDATE, &[outputs[0], inputs[0]], &params, groups);
        Ok(())
    }
}

/// `shaders/langevin.wgsl`.
pub(crate) const LANGEVIN: WgslShader = WgslShader {
    file: "langevin.wgsl",
    body: include_str!("../../shaders/langevin.wgsl"),
    preludes: &[crate::backend::kernel::RNG],
    unchecked_indexing: false,
};

/// Its one entry point: x (read-write), grad.
pub(crate) const LANGEVIN_UPDATE: WgslEntry = WgslEntry {
    shader: &LANGEVIN,
    entry: "langevin_update",
    bindings: &[(0, Access::ReadWrite), (1, Access::Read)],
};

/// `LangevinParams` in langevin.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct LangevinParams {
    rows: u32,
    dim: u32,
    blocks_per_row: u32,
    step: f32,
    noise: f32,
    clip: f32,
    has_clip: u32,
    lo: f32,
    hi: f32,
    seed_lo: u32,
    seed_hi: u32,
    global_step: u32,
    chain_offset: u32,
}

/// The immediates layout the shader test checks.
pub(crate) fn immediate_layouts() -> Vec<ImmediateLayout> {
    vec![layout!(
        "langevin.wgsl",
        LangevinParams {
            rows,
            dim,
            blocks_per_row,
            step,
            noise,
            clip,
            has_clip,
            lo,
            hi,
            seed_lo,
            seed_hi,
            global_step,
            chain_offset,
        }
    )]
}
