//! The transposed 2D convolution (PyTorch's `ConvTranspose2d`, weight `[in, out, k, k]`),
//! built from the convolution primitives with their roles swapped, so it needs no kernels of
//! its own: its forward pass is a convolution's input gradient, its input gradient is a
//! convolution's forward pass, and its weight gradient is a convolution's weight gradient
//! with input and output gradient exchanged. The bias is added and reduced per channel.
//!
//! Why this holds: a convolution from `[out, H', W']` to `[in, H, W]` with weight
//! `[in, out, k, k]` (the transposed layer's weight, read in the convolution's
//! `[filters, channels, k, k]` layout) is exactly the linear map whose adjoint the transposed
//! layer applies. Output padding only adds rows/columns no window of that convolution covers
//! beyond H' — the convolution's output size formula floors them away.

use crate::backend::{Backend, ChannelShape, Conv2dShape};

use super::Param;

/// A conv_transpose2d layer on inputs of a fixed [C, H, W]; its weight and bias live in the
/// net's parameter list.
pub struct ConvTranspose2d<B: Backend> {
    /// Channels of the input.
    pub in_channels: usize,
    /// Channels of the output and length of the bias.
    pub out_channels: usize,
    /// Input height.
    pub height: usize,
    /// Input width.
    pub width: usize,
    /// Side k of the square filter.
    pub kernel: usize,
    /// Upsampling step.
    pub stride: usize,
    /// Pixels cropped from each side.
    pub padding: usize,
    /// Extra rows and columns on one side (below `stride`).
    pub output_padding: usize,
    /// Index of the weight in the net's parameters (the bias follows it).
    pub weight: usize,
    /// `in_channels` zeros: the (absent) bias of the convolution that computes the input
    /// gradient.
    zero_bias: B::Tensor,
    /// Where the weight-gradient primitive writes the bias gradient of that convolution,
    /// which this layer does not need (its own bias gradient is a per-channel sum of dy).
    unused_bias_grad: B::Tensor,
}

impl<B: Backend> ConvTranspose2d<B> {
    /// A layer; allocates its two small scratch tensors (`in_channels` values each).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        b: &B,
        in_channels: usize,
        out_channels: usize,
        input_hw: (usize, usize),
        kernel: usize,
        stride: usize,
        padding: usize,
        output_padding: usize,
        weight: usize,
    ) -> crate::Result<Self> {
        Ok(ConvTranspose2d {
            in_channels,
            out_channels,
            height: input_hw.0,
            width: input_hw.1,
            kernel,
            stride,
            padding,
            output_padding,
            weight,
            zero_bias: b.zeros(in_channels)?,
            unused_bias_grad: b.zeros(in_channels)?,
        })
    }

    /// Output side for an input side `n`: (n − 1)·s − 2p + k + output_padding.
    fn out_side(&self, n: usize) -> usize {
        (n - 1) * self.stride + self.kernel + self.output_padding - 2 * self.padding
    }

    /// The convolution this layer is the transpose of: from the layer's output
    /// `[out, H_out, W_out]` to its input `[in, H, W]`.
    fn conv(&self, batch: usize) -> Conv2dShape {
        Conv2dShape {
            batch,
            in_channels: self.out_channels,
            out_channels: self.in_channels,
            height: self.out_side(self.height),
            width: self.out_side(self.width),
            kernel: self.kernel,
            stride: self.stride,
            padding: self.padding,
        }
    }

    fn channels(&self, batch: usize) -> ChannelShape {
        ChannelShape {
            batch,
            channels: self.out_channels,
            pixels: self.out_side(self.height) * self.out_side(self.width),
        }
    }

    /// `y = conv_transpose2d(x, w) + b`: x `[batch, in, H, W]`, y `[batch, out, H', W']`.
    pub fn forward(
        &self,
        b: &B,
        params: &[Param<B>],
        batch: usize,
        x: &B::Tensor,
        y: &mut B::Tensor,
    ) {
        let (w, bias) = (&params[self.weight].value, &params[self.weight + 1].value);
        b.conv2d_backward_data(self.conv(batch), x, w, y);
        b.channel_bias_add(self.channels(batch), bias, y);
    }

    /// The input gradient dx `[batch, in, H, W]` from dy (overwritten).
    pub fn backward_data(
        &self,
        b: &B,
        params: &[Param<B>],
        batch: usize,
        dy: &B::Tensor,
        dx: &mut B::Tensor,
    ) {
        let w = &params[self.weight].value;
        b.conv2d_forward(self.conv(batch), dy, w, &self.zero_bias, dx);
    }

    /// The weight and bias gradients summed over the batch, into their [`Param::grad`]s
    /// (overwritten).
    pub fn backward_params(
        &mut self,
        b: &B,
        params: &mut [Param<B>],
        batch: usize,
        x: &B::Tensor,
        dy: &B::Tensor,
    ) {
        let (w, rest) = params[self.weight..].split_at_mut(1);
        // The convolution's "output gradient" is this layer's input, its "input" this
        // layer's output gradient.
        b.conv2d_backward_params(
            self.conv(batch),
            x,
            dy,
            &mut w[0].grad,
            &mut self.unused_bias_grad,
        );
        b.channel_sum(self.channels(batch), dy, &mut rest[0].grad);
    }
}
