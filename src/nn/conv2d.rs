//! The 2D convolution layer (NCHW, PyTorch weight layout [out, in, k, k], zero padding).

use crate::backend::{Backend, Conv2dShape};

use super::Param;

/// A conv2d layer on inputs of a fixed [C, H, W]; its weight and bias live in the net's
/// parameter list.
#[derive(Clone, Copy, Debug)]
pub struct Conv2d {
    pub in_channels: usize,
    pub out_channels: usize,
    pub height: usize,
    pub width: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    /// Index of the weight in the net's parameters (the bias follows it).
    pub weight: usize,
}

impl Conv2d {
    fn shape(&self, batch: usize) -> Conv2dShape {
        Conv2dShape {
            batch,
            in_channels: self.in_channels,
            out_channels: self.out_channels,
            height: self.height,
            width: self.width,
            kernel: self.kernel,
            stride: self.stride,
            padding: self.padding,
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
        b.conv2d_forward(self.shape(batch), x, w, bias, y);
    }

    /// The input gradient.
    pub fn backward_data<B: Backend>(
        &self,
        b: &B,
        params: &[Param<B>],
        batch: usize,
        dy: &B::Tensor,
        dx: &mut B::Tensor,
    ) {
        b.conv2d_backward_data(self.shape(batch), dy, &params[self.weight].value, dx);
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
        b.conv2d_backward_params(self.shape(batch), dy, x, &mut w[0].grad, &mut rest[0].grad);
    }
}
