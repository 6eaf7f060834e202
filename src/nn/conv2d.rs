//! The 2D convolution layer (NCHW, PyTorch weight layout [out, in, k, k], zero padding).
//!
//! [`EnergyNet`](super::EnergyNet) builds and runs these from a spec; a layer on its own
//! looks its weight and bias up in a parameter list:
//!
//! ```
//! use ebm::backend::Backend;
//! use ebm::nn::{conv2d::Conv2d, Param};
//! use ebm::CpuBackend;
//!
//! # fn main() -> ebm::Result<()> {
//! let b = CpuBackend::new();
//! let param = |shape: Vec<usize>, values: &[f32]| -> ebm::Result<Param<CpuBackend>> {
//!     let (value, grad) = (b.upload(values)?, b.zeros(values.len())?);
//!     Ok(Param { name: String::new(), shape, value, grad })
//! };
//! // One 2×2 filter of ones over a 1×2×2 image: the sum of its pixels, plus the bias.
//! let params = vec![param(vec![1, 1, 2, 2], &[1.0; 4])?, param(vec![1], &[0.5])?];
//! let layer = Conv2d {
//!     in_channels: 1, out_channels: 1, height: 2, width: 2,
//!     kernel: 2, stride: 1, padding: 0, weight: 0,
//! };
//! let x = b.upload(&[1.0, 2.0, 3.0, 4.0])?;
//! let mut y = b.zeros(1)?;
//! layer.forward(&b, &params, None, 1, &x, &mut y);
//! assert_eq!(y, [10.5]);
//! # Ok(())
//! # }
//! ```

use crate::backend::{Backend, Conv2dShape};

use super::Param;

/// A conv2d layer on inputs of a fixed [C, H, W]; its weight and bias live in the net's
/// parameter list.
#[derive(Clone, Copy, Debug)]
pub struct Conv2d {
    /// Channels of the input (C).
    pub in_channels: usize,
    /// Filters: channels of the output and length of the bias.
    pub out_channels: usize,
    /// Input height in pixels, before padding.
    pub height: usize,
    /// Input width in pixels, before padding.
    pub width: usize,
    /// Side k of the square filter.
    pub kernel: usize,
    /// Step between filter positions along both axes.
    pub stride: usize,
    /// Zero pixels added on each side of both axes.
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

    /// `y = conv2d(x, w) + b` for `batch` samples: x `[batch, C, H, W]`, y
    /// `[batch, out_channels, H', W']` (see [`Conv2dShape::out_height`]).
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
        b.conv2d_forward(self.shape(batch), x, w, bias, y);
    }

    /// The input gradient dx `[batch, C, H, W]` from dy (overwritten).
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
        b.conv2d_backward_data(self.shape(batch), dy, w, dx);
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
        b.conv2d_backward_params(self.shape(batch), dy, x, dw, &mut rest[0].grad);
    }
}
