//! The fully connected layer `y = x·wᵀ + b` (PyTorch layout: w is [out, in]).
//!
//! [`EnergyNet`](super::EnergyNet) builds and runs these from a spec; a layer on its own
//! looks its weight and bias up in a parameter list:
//!
//! ```
//! use ebm::backend::Backend;
//! use ebm::nn::{linear::Linear, Param};
//! use ebm::CpuBackend;
//!
//! # fn main() -> ebm::Result<()> {
//! let b = CpuBackend::new();
//! let param = |name: &str, shape: Vec<usize>, values: &[f32]| -> ebm::Result<Param<CpuBackend>> {
//!     let (value, grad) = (b.upload(values)?, b.zeros(values.len())?);
//!     Ok(Param { name: name.into(), shape, value, grad })
//! };
//! // 2 → 1: the weight is parameter 0, its bias parameter 1.
//! let mut params = vec![param("w", vec![1, 2], &[1.0, -1.0])?, param("b", vec![1], &[0.5])?];
//! let layer = Linear { inputs: 2, outputs: 1, weight: 0 };
//! let x = b.upload(&[3.0, 1.0])?;
//! let mut y = b.zeros(1)?;
//! layer.forward(&b, &params, None, 1, &x, &mut y);
//! assert_eq!(y, [2.5]);
//! // With dy = 1: dw = x, db = 1.
//! layer.backward_params(&b, &mut params, None, 1, &x, &b.upload(&[1.0])?);
//! assert_eq!((&params[0].grad[..], &params[1].grad[..]), (&[3.0, 1.0][..], &[1.0][..]));
//! # Ok(())
//! # }
//! ```

use crate::backend::{Backend, LinearShape};

use super::Param;

/// A linear layer; its weight and bias live in the net's parameter list.
#[derive(Clone, Copy, Debug)]
pub struct Linear {
    /// Input features per sample (columns of w).
    pub inputs: usize,
    /// Output features per sample (rows of w, length of the bias).
    pub outputs: usize,
    /// Index of the weight in the net's parameters (the bias follows it).
    pub weight: usize,
}

impl Linear {
    fn shape(&self, batch: usize) -> LinearShape {
        LinearShape {
            batch,
            inputs: self.inputs,
            outputs: self.outputs,
        }
    }

    /// `y = x·wᵀ + b` for `batch` samples: x `[batch, inputs]`, y `[batch, outputs]`; with
    /// `weight`, that tensor instead of the parameter (a spectral-normed W/σ).
    pub fn forward<B: Backend>(
        &self,
        b: &B,
        params: &[Param<B>],
        weight: Option<&B::Tensor>,
        batch: usize,
        x: &B::Tensor,
        y: &mut B::Tensor,
    ) {
        let w = weight.unwrap_or(&params[self.weight].value);
        let bias = &params[self.weight + 1].value;
        b.linear_forward(self.shape(batch), x, w, bias, y);
    }

    /// `dx = dy·w`: the input gradient `[batch, inputs]` from dy `[batch, outputs]` (`weight`
    /// as in [`forward`](Self::forward)).
    pub fn backward_data<B: Backend>(
        &self,
        b: &B,
        params: &[Param<B>],
        weight: Option<&B::Tensor>,
        batch: usize,
        dy: &B::Tensor,
        dx: &mut B::Tensor,
    ) {
        let w = weight.unwrap_or(&params[self.weight].value);
        b.linear_backward_data(self.shape(batch), dy, w, dx);
    }

    /// The weight and bias gradients summed over the batch, into their [`Param::grad`]s
    /// (overwritten, not accumulated); the weight's into `weight_grad` instead when given.
    pub fn backward_params<B: Backend>(
        &self,
        b: &B,
        params: &mut [Param<B>],
        weight_grad: Option<&mut B::Tensor>,
        batch: usize,
        x: &B::Tensor,
        dy: &B::Tensor,
    ) {
        let (w, rest) = params[self.weight..].split_at_mut(1);
        let dw = weight_grad.unwrap_or(&mut w[0].grad);
        b.linear_backward_params(self.shape(batch), dy, x, dw, &mut rest[0].grad);
    }
}
