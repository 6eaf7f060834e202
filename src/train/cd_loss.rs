//! The contrastive-divergence loss, the CD objective's own kernel (`shaders/cd_loss.wgsl`
//! and its CPU twin): one pass over the energies of a data half and a sample half gives the
//! loss, its statistics and dLoss/dE per row, with no readback.
//!
//! ```
//! use ebm::backend::Backend;
//! use ebm::train::{stat, CdLoss};
//! use ebm::CpuBackend;
//!
//! # fn main() -> ebm::Result<()> {
//! let b = CpuBackend::new();
//! // Two data rows (E⁺ = 1, 3), then two sample rows (E⁻ = 0, 0); no penalty (α = 0).
//! let energies = b.upload(&[1.0, 3.0, 0.0, 0.0])?;
//! let (mut d_energy, mut stats) = (b.zeros(4)?, b.zeros(stat::LEN)?);
//! CdLoss { n_pos: 2, alpha: 0.0 }.run(&b, &energies, &mut d_energy, &mut stats);
//! let s = b.read(&stats)?;
//! assert_eq!((s[stat::LOSS], s[stat::MEAN_E_POS], s[stat::MEAN_E_POS_SQ]), (2.0, 2.0, 5.0));
//! // dLoss/dE: +1/n_pos on data rows, −1/n_neg on sample rows (plus 2αE/n).
//! assert_eq!(b.read(&d_energy)?, [0.5, 0.5, -0.5, -0.5]);
//! # Ok(())
//! # }
//! ```

use crate::backend::kernel::{arity, layout, need, Access, ImmediateLayout};
use crate::backend::kernel::{Kernel, WgslEntry, WgslShader};
use crate::backend::{Backend, GpuBackend, GpuTensor};
use crate::{Error, Result};

/// Scalars the CD-loss kernel writes (indices into its `stats` output).
pub mod stat {
    /// mean E⁺ − mean E⁻ + α(mean E⁺² + mean E⁻²)
    pub const LOSS: usize = 0;
    /// mean E⁺: the mean energy of the data rows.
    pub const MEAN_E_POS: usize = 1;
    /// mean E⁻: the mean energy of the sample rows.
    pub const MEAN_E_NEG: usize = 2;
    /// mean E⁺²: the data half of the α penalty.
    pub const MEAN_E_POS_SQ: usize = 3;
    /// mean E⁻²: the sample half of the α penalty.
    pub const MEAN_E_NEG_SQ: usize = 4;
    /// Length of the stats buffer.
    pub const LEN: usize = 5;
}

/// The CD loss over `energies` = [E(x⁺) for `n_pos` rows; E(x⁻) for the rest]:
/// mean E⁺ − mean E⁻ + α(mean E⁺² + mean E⁻²).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CdLoss {
    /// Rows of data (the first ones); the rest are samples.
    pub n_pos: usize,
    /// Weight α of the energy-magnitude penalty (IGEBM's L2 regulariser).
    pub alpha: f32,
}

impl CdLoss {
    /// Write dLoss/dE per row into `d_energy` and the [`stat`] scalars into `stats`.
    pub fn run<B: Backend>(
        &self,
        b: &B,
        energies: &B::Tensor,
        d_energy: &mut B::Tensor,
        stats: &mut B::Tensor,
    ) {
        b.run(self, &[energies], &mut [d_energy, stats]);
    }
}

/// Inputs `[energies]`, outputs `[d_energy, stats]`.
impl Kernel for CdLoss {
    fn name(&self) -> &'static str {
        "cd_loss"
    }

    fn check(&self, inputs: &[usize], outputs: &[usize]) -> Result<()> {
        arity(self.name(), inputs, outputs, (1, 2))?;
        let n = inputs[0];
        if self.n_pos > n {
            return Err(Error::Shape(format!(
                "cd_loss: {} data rows among {n} energies",
                self.n_pos
            )));
        }
        need(
            self.name(),
            &[
                ("d_energy", outputs[0], n),
                ("stats", outputs[1], stat::LEN),
            ],
        )
    }

    fn cpu(&self, inputs: &[&[f32]], outputs: &mut [&mut [f32]]) {
        let (energies, n_pos, alpha) = (inputs[0], self.n_pos, self.alpha);
        let [d_energy, stats] = outputs else {
            unreachable!("checked: two outputs")
        };
        let n_neg = energies.len() - n_pos;
        let (pos, neg) = energies.split_at(n_pos);
        let mean = |v: &[f32], f: fn(f64) -> f64| {
            v.iter().map(|&e| f(e as f64)).sum::<f64>() / v.len() as f64
        };
        let (mp, mn) = (mean(pos, |e| e), mean(neg, |e| e));
        let (mp2, mn2) = (mean(pos, |e| e * e), mean(neg, |e| e * e));
        stats[stat::LOSS] = (mp - mn + alpha as f64 * (mp2 + mn2)) as f32;
        stats[stat::MEAN_E_POS] = mp as f32;
        stats[stat::MEAN_E_NEG] = mn as f32;
        stats[stat::MEAN_E_POS_SQ] = mp2 as f32;
        stats[stat::MEAN_E_NEG_SQ] = mn2 as f32;
        for (j, (d, &e)) in d_energy.iter_mut().zip(energies).enumerate() {
            *d = if j < n_pos {
                (1.0 + 2.0 * alpha * e) / n_pos as f32
            } else {
                (-1.0 + 2.0 * alpha * e) / n_neg as f32
            };
        }
    }

    fn gpu(&self, gpu: &GpuBackend, inputs: &[&GpuTensor], outputs: &[&GpuTensor]) -> Result<()> {
        let params = CdParams {
            n: gpu.dim_u32(inputs[0].len())?,
            n_pos: self.n_pos as u32,
            alpha: self.alpha,
        };
        let buffers = [inputs[0], outputs[0], outputs[1]];
        gpu.dispatch(&CD_LOSS, &buffers, &params, (1, 1, 1));
        Ok(())
    }
}

/// `shaders/cd_loss.wgsl`.
pub(crate) const CD_LOSS_WGSL: WgslShader = WgslShader {
    file: "cd_loss.wgsl",
    body: include_str!("../../shaders/cd_loss.wgsl"),
    preludes: &[],
    unchecked_indexing: false,
};

/// energies, d_energy (read-write), stats (read-write).
pub(crate) const CD_LOSS: WgslEntry = WgslEntry {
    shader: &CD_LOSS_WGSL,
    entry: "cd_loss",
    bindings: &[
        (0, Access::Read),
        (1, Access::ReadWrite),
        (2, Access::ReadWrite),
    ],
};

/// `CdParams` in cd_loss.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct CdParams {
    n: u32,
    n_pos: u32,
    alpha: f32,
}

/// The immediates layout the shader test checks.
pub(crate) fn immediate_layouts() -> Vec<ImmediateLayout> {
    vec![layout!("cd_loss.wgsl", CdParams { n, n_pos, alpha })]
}
