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

    /// `dx = dy·w`.
    pub fn backward_data<B: Backend>(
        &self,
        b: &B,
        params: &[Param<B>],
        batch: usize,
        dy: &B::Tensor,
        dx: &mut B::Tensor,
    ) {
        b.linear_backward_data(self.shape(batch), dy, &params[self.weight].value, dx);
    }

    /// The weight and bias gradients, into their [`Param::grad`]s.
    pub fn backward_params<B: Backend>(
        &self,
        b: &B,
        params: &mut [Param<B>],
        batch: usize,
        x: &B::Tensor,
        dy: &B::Tensor,
    ) {
        let (w, rest) = params[self.weight..].split_at_mut(1);
        b.linear_backward_params(self.shape(batch), dy, x, &mut w[0].grad, &mut rest[0].grad);
    }
}
