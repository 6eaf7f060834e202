//! Training health without a readback, an algorithm kernel (`shaders/health.wgsl` and its CPU
//! twin): the trainer flags NaN and ±∞ in the energies and the parameters on the device, and
//! the host learns of them at its next read of the stats.
//!
//! ```
//! use ebm::backend::Backend;
//! use ebm::train::FlagNonFinite;
//! use ebm::CpuBackend;
//!
//! # fn main() -> ebm::Result<()> {
//! let b = CpuBackend::new();
//! let mut flags = b.zeros(2)?;
//! let flag = |slot, mark| FlagNonFinite { slot, mark };
//! flag(0, 1.0).run(&b, &b.upload(&[1.0, 2.0])?, &mut flags);
//! flag(0, 2.0).run(&b, &b.upload(&[1.0, f32::NAN])?, &mut flags);
//! flag(0, 3.0).run(&b, &b.upload(&[f32::INFINITY])?, &mut flags);
//! // Sticky: slot 0 keeps the first bad mark.
//! assert_eq!(b.read(&flags)?, [2.0, 0.0]);
//! # Ok(())
//! # }
//! ```

use crate::backend::kernel::{arity, layout, Access, ImmediateLayout};
use crate::backend::kernel::{Kernel, WgslEntry, WgslShader};
use crate::backend::{Backend, GpuBackend, GpuTensor};
use crate::{Error, Result};

/// If any element of a tensor is NaN or ±∞ and `flags[slot]` is still 0, set it to `mark`
/// (e.g. iteration + 1). Flags are sticky, so the first bad iteration survives until the
/// host next reads them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FlagNonFinite {
    /// Which flag to set.
    pub slot: usize,
    /// The value it gets (non-zero).
    pub mark: f32,
}

impl FlagNonFinite {
    /// Check `x`, flagging into `flags`.
    pub fn run<B: Backend>(&self, b: &B, x: &B::Tensor, flags: &mut B::Tensor) {
        b.run(self, &[x], &mut [flags]);
    }
}

/// Inputs `[x]`, outputs `[flags]`.
impl Kernel for FlagNonFinite {
    fn name(&self) -> &'static str {
        "flag_non_finite"
    }

    fn check(&self, inputs: &[usize], outputs: &[usize]) -> Result<()> {
        arity(self.name(), inputs, outputs, (1, 1))?;
        if self.slot >= outputs[0] {
            return Err(Error::Shape(format!(
                "flag_non_finite: slot {} of {} flags",
                self.slot, outputs[0]
            )));
        }
        Ok(())
    }

    fn cpu(&self, inputs: &[&[f32]], outputs: &mut [&mut [f32]]) {
        let flags = &mut outputs[0];
        if flags[self.slot] == 0.0 && inputs[0].iter().any(|v| !v.is_finite()) {
            flags[self.slot] = self.mark;
        }
    }

    fn gpu(&self, gpu: &GpuBackend, inputs: &[&GpuTensor], outputs: &[&GpuTensor]) -> Result<()> {
        let n = inputs[0].len();
        if n == 0 {
            return Ok(());
        }
        let groups = gpu.grid_1d(n)?;
        let params = HealthParams {
            n: n as u32,
            slot: gpu.dim_u32(self.slot)?,
            mark: self.mark,
        };
        gpu.dispatch(&FLAG_NON_FINITE, &[inputs[0], outputs[0]], &params, groups);
        Ok(())
    }
}

/// `shaders/health.wgsl`.
pub(crate) const HEALTH: WgslShader = WgslShader {
    file: "health.wgsl",
    body: include_str!("../../shaders/health.wgsl"),
    preludes: &[],
    unchecked_indexing: false,
};

/// x, flags (read-write).
pub(crate) const FLAG_NON_FINITE: WgslEntry = WgslEntry {
    shader: &HEALTH,
    entry: "flag_non_finite",
    bindings: &[(0, Access::Read), (1, Access::ReadWrite)],
};

/// `HealthParams` in health.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct HealthParams {
    n: u32,
    slot: u32,
    mark: f32,
}

/// The immediates layout the shader test checks.
pub(crate) fn immediate_layouts() -> Vec<ImmediateLayout> {
    vec![layout!("health.wgsl", HealthParams { n, slot, mark })]
}
