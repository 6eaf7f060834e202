//! The fully connected layer `y = x·wᵀ + b` (PyTorch layout: w is [out, in]).

use crate::backend::{Backend, LinearShape};

use super::Param;

/// A linear layer; its weight and bias live in the net's parameter list.
#[derive(Clone, Copy, Debug)]
pub struct Linear {
    pub inputs: usize,
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

    pub fn forward<B: Backend>(
        &self,
        b: &B,
        params: &[Param<B>],
        batch: usize,
        x: &B::Tensor,
        y: &mut B::Tensor,
    ) {
        let (w, bias) = (&params[self.weight].value, &params[self.weight + 1].value);
        b.linear_forward(self.shape(batch), x, w, bias, y);
    }

    /// Writes dx (when asked for) and, with `params_grad`, the weight and bias gradients.
    pub fn backward<B: Backend>(
        &self,
        b: &B,
        params: &mut [Param<B>],
        batch: usize,
        x: &B::Tensor,
        dy: &B::Tensor,
        dx: Option<&mut B::Tensor>,
        params_grad: bool,
    ) {
        let s = self.shape(batch);
        if let Some(dx) = dx {
            b.linear_backward_data(s, dy, &params[self.weight].value, dx);
        }
        if params_grad {
            let (w, rest) = params[self.weight..].split_at_mut(1);
            b.linear_backward_params(s, dy, x, &mut w[0].grad, &mut rest[0].grad);
        }
    }
}
