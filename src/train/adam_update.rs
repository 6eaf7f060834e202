//! One Adam step on one parameter tensor, an algorithm kernel (`shaders/adam.wgsl` and its
//! CPU twin). [`Adam`](super::Adam) runs it once per tensor after the clipping norms.

use crate::backend::kernel::{arity, layout, Access, ImmediateLayout};
use crate::backend::kernel::{Kernel, WgslEntry, WgslShader};
use crate::backend::{Backend, GpuBackend, GpuTensor};
use crate::{Error, Result};

/// One Adam step (PyTorch semantics); bias corrections are computed on the host from `t`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamUpdate {
    /// Learning rate: the step size of the update.
    pub lr: f32,
    /// Decay rate β₁ of the running mean of gradients (first moment).
    pub beta1: f32,
    /// Decay rate β₂ of the running mean of squared gradients (second moment).
    pub beta2: f32,
    /// Added to √v̂ in the denominator so that a zero second moment does not divide by 0.
    pub eps: f32,
    /// 1 − β₁ᵗ
    pub bias_correction1: f32,
    /// 1 − β₂ᵗ
    pub bias_correction2: f32,
    /// Global-norm clipping: gradients are scaled by min(1, c / (‖g‖ + 1e-6)) where ‖g‖² is
    /// the sum of the first `norm_slots` entries of the `norms` buffer.
    pub max_grad_norm: Option<f32>,
    /// How many leading slots of `norms` hold squared gradient norms from
    /// [`Backend::sum_squares`] (one per parameter tensor); unused without clipping.
    pub norm_slots: usize,
}

impl AdamUpdate {
    /// One step on `param` in place from `grad`, updating the moments `m` and `v` (all four
    /// of one length); `norms` holds the [`Backend::sum_squares`] slots when clipping.
    pub fn run<B: Backend>(
        &self,
        b: &B,
        param: &mut B::Tensor,
        grad: &B::Tensor,
        m: &mut B::Tensor,
        v: &mut B::Tensor,
        norms: &B::Tensor,
    ) {
        b.run(self, &[grad, norms], &mut [param, m, v]);
    }
}

/// Inputs `[grad, norms]`, outputs `[param, m, v]`.
impl Kernel for AdamUpdate {
    fn name(&self) -> &'static str {
        "adam_update"
    }

    fn check(&self, inputs: &[usize], outputs: &[usize]) -> Result<()> {
        arity(self.name(), inputs, outputs, (2, 3))?;
        let (grad, norms) = (inputs[0], inputs[1]);
        if outputs.iter().any(|&len| len != grad) {
            return Err(Error::Shape(format!(
                "adam_update: param, m, v of {outputs:?} values for a gradient of {grad}"
            )));
        }
        if self.max_grad_norm.is_some() && self.norm_slots > norms {
            return Err(Error::Shape(format!(
                "adam_update: {} norm slots in a tensor of {norms}",
                self.norm_slots
            )));
        }
        Ok(())
    }

    fn cpu(&self, inputs: &[&[f32]], outputs: &mut [&mut [f32]]) {
        let (grad, norms) = (inputs[0], inputs[1]);
        let [param, m, v] = outputs else {
            unreachable!("checked: three outputs")
        };
        let scale = match self.max_grad_norm {
            Some(c) => {
                let norm = norms[..self.norm_slots].iter().sum::<f32>().sqrt();
                (c / (norm + 1e-6)).min(1.0)
            }
            None => 1.0,
        };
        for (((p, &g), m), v) in param
            .iter_mut()
            .zip(grad)
            .zip(m.iter_mut())
            .zip(v.iter_mut())
        {
            let g = g * scale;
            *m = self.beta1 * *m + (1.0 - self.beta1) * g;
            *v = self.beta2 * *v + (1.0 - self.beta2) * g * g;
            let m_hat = *m / self.bias_correction1;
            let v_hat = *v / self.bias_correction2;
            *p -= self.lr * m_hat / (v_hat.sqrt() + self.eps);
        }
    }

    fn gpu(&self, gpu: &GpuBackend, inputs: &[&GpuTensor], outputs: &[&GpuTensor]) -> Result<()> {
        let n = inputs[0].len();
        if n == 0 {
            return Ok(());
        }
        let groups = gpu.grid_1d(n)?;
        let params = AdamParams {
            n: n as u32,
            lr: self.lr,
            beta1: self.beta1,
            beta2: self.beta2,
            eps: self.eps,
            bias_correction1: self.bias_correction1,
            bias_correction2: self.bias_correction2,
            max_grad_norm: self.max_grad_norm.unwrap_or(0.0),
            has_clip: u32::from(self.max_grad_norm.is_some()),
            norm_slots: gpu.dim_u32(self.norm_slots)?,
        };
        let buffers = [outputs[0], inputs[0], outputs[1], outputs[2], inputs[1]];
        gpu.dispatch(&ADAM_UPDATE, &buffers, &params, groups);
        Ok(())
    }
}

/// `shaders/adam.wgsl`.
pub(crate) const ADAM: WgslShader = WgslShader {
    file: "adam.wgsl",
    body: include_str!("../../shaders/adam.wgsl"),
    preludes: &[],
    unchecked_indexing: false,
};

/// param (read-write), grad, m (read-write), v (read-write), norms.
pub(crate) const ADAM_UPDATE: WgslEntry = WgslEntry {
    shader: &ADAM,
    entry: "adam_update",
    bindings: &[
        (0, Access::ReadWrite),
        (1, Access::Read),
        (2, Access::ReadWrite),
        (3, Access::ReadWrite),
        (4, Access::Read),
    ],
};

/// `AdamParams` in adam.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct AdamParams {
    n: u32,
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    bias_correction1: f32,
    bias_correction2: f32,
    max_grad_norm: f32,
    has_clip: u32,
    norm_slots: u32,
}

/// The immediates layout the shader test checks.
pub(crate) fn immediate_layouts() -> Vec<ImmediateLayout> {
    vec![layout!(
        "adam.wgsl",
        AdamParams {
            n,
            lr,
            beta1,
            beta2,
            eps,
            bias_correction1,
            bias_correction2,
            max_grad_norm,
            has_clip,
            norm_slots,
        }
    )]
}
