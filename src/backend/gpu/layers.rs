//! Layer ops: linear, conv2d, average pooling, upsampling, activations and per-channel
//! bias, with the shape checks and launch geometry they share. The [`Backend`] impl in
//! `ops.rs` calls these.

use super::dispatch::{elt_params, row_params};
use super::*;

impl GpuBackend {
    pub(super) fn linear_dims(&self, s: LinearShape) -> Option<LinearParams> {
        Some(LinearParams {
            batch: self
                .dim_u32(s.batch)
                .map_err(|e| self.defer_error(e))
                .ok()?,
            inputs: self
                .dim_u32(s.inputs)
                .map_err(|e| self.defer_error(e))
                .ok()?,
            outputs: self
                .dim_u32(s.outputs)
                .map_err(|e| self.defer_error(e))
                .ok()?,
        })
    }

    /// The upsampling kernels' parameters (factor ≥ 1 checked above the backend), or `None`
    /// (error deferred) for an output past the u32 index range.
    pub(super) fn upsample_params(&self, s: UpsampleShape) -> Option<kernels::UpsampleParams> {
        let u = |n: usize| self.dim_u32(n).map_err(|e| self.defer_error(e)).ok();
        u(s.out_len())?;
        Some(kernels::UpsampleParams {
            planes: u(s.batch * s.channels)?,
            height: u(s.height)?,
            width: u(s.width)?,
            factor: u(s.factor)?,
        })
    }

    /// The pooling kernels' parameters (kernel ≥ 1 checked above the backend), or `None`
    /// (error deferred) past the u32 index range.
    pub(super) fn pool_params(&self, s: PoolShape) -> Option<PoolParams> {
        let u = |n: usize| self.dim_u32(n).map_err(|e| self.defer_error(e)).ok();
        u(s.batch * s.channels * s.height * s.width)?;
        Some(PoolParams {
            planes: u(s.batch * s.channels)?,
            height: u(s.height)?,
            width: u(s.width)?,
            kernel: u(s.kernel)?,
            out_height: u(s.out_height())?,
            out_width: u(s.out_width())?,
        })
    }

    /// y = x·wᵀ + b on the conv products (see [`as_conv`]).
    pub(super) fn linear_forward(
        &self,
        s: LinearShape,
        x: &GpuTensor,
        w: &GpuTensor,
        b: &GpuTensor,
        y: &mut GpuTensor,
    ) {
        self.conv2d_forward(as_conv(s), x, w, b, y);
    }

    /// dx = dy·w on the conv products.
    pub(super) fn linear_backward_data(
        &self,
        s: LinearShape,
        dy: &GpuTensor,
        w: &GpuTensor,
        dx: &mut GpuTensor,
    ) {
        self.conv2d_backward_data(as_conv(s), dy, w, dx);
    }

    /// dw = dyᵀ·x on the conv products; db = Σ_b dy by linear.wgsl's column sums, which
    /// read the [batch, outputs] rows coalesced.
    pub(super) fn linear_backward_params(
        &self,
        s: LinearShape,
        dy: &GpuTensor,
        x: &GpuTensor,
        dw: &mut GpuTensor,
        db: &mut GpuTensor,
    ) {
        if s.outputs == 0 {
            return;
        }
        let (Some(params), Some(conv)) = (self.linear_dims(s), self.conv_params(as_conv(s))) else {
            return;
        };
        self.conv2d_backward_weight(as_conv(s), conv, dy, x, dw);
        // A workgroup per 16 outputs (the shader's TILE), spilling into y.
        let Some(groups) = self.grid_or_defer(s.outputs.div_ceil(TILE as usize)) else {
            return;
        };
        self.dispatch(&kernels::LINEAR_BACKWARD_BIAS, &[dy, db], &params, groups);
    }

    pub(super) fn avg_pool_forward(&self, s: PoolShape, x: &GpuTensor, y: &mut GpuTensor) {
        let Some(params) = self.pool_params(s) else {
            return;
        };
        let y_len = s.batch * s.channels * s.out_height() * s.out_width();
        if y_len == 0 {
            return;
        }
        let Some(groups) = self.grid_1d_or_defer(y_len) else {
            return;
        };
        self.dispatch(&kernels::AVG_POOL_FORWARD, &[x, y], &params, groups);
    }

    pub(super) fn avg_pool_backward(&self, s: PoolShape, dy: &GpuTensor, dx: &mut GpuTensor) {
        let Some(params) = self.pool_params(s) else {
            return;
        };
        let x_len = s.batch * s.channels * s.height * s.width;
        if x_len == 0 {
            return;
        }
        let Some(groups) = self.grid_1d_or_defer(x_len) else {
            return;
        };
        self.dispatch(&kernels::AVG_POOL_BACKWARD, &[dy, dx], &params, groups);
    }

    pub(super) fn upsample_forward(&self, s: UpsampleShape, x: &GpuTensor, y: &mut GpuTensor) {
        let Some(params) = self.upsample_params(s) else {
            return;
        };
        if s.out_len() == 0 {
            return;
        }
        let Some(groups) = self.grid_1d_or_defer(s.out_len()) else {
            return;
        };
        self.dispatch(&kernels::UPSAMPLE_FORWARD, &[x, y], &params, groups);
    }

    pub(super) fn upsample_backward(&self, s: UpsampleShape, dy: &GpuTensor, dx: &mut GpuTensor) {
        let Some(params) = self.upsample_params(s) else {
            return;
        };
        if s.in_len() == 0 {
            return;
        }
        let Some(groups) = self.grid_1d_or_defer(s.in_len()) else {
            return;
        };
        self.dispatch(&kernels::UPSAMPLE_BACKWARD, &[dy, dx], &params, groups);
    }

    pub(super) fn activation_forward(&self, act: Activation, x: &GpuTensor, y: &mut GpuTensor) {
        let n = x.len.min(y.len);
        let Some(groups) = self.grid_1d_or_defer(n).filter(|_| n > 0) else {
            return;
        };
        let (kernel, slope) = match act {
            Activation::Relu => (&kernels::RELU_FORWARD, 0.0),
            Activation::LeakyRelu(slope) => (&kernels::LEAKY_RELU_FORWARD, slope),
            Activation::Silu => (&kernels::SILU_FORWARD, 0.0),
            Activation::Tanh => (&kernels::TANH_FORWARD, 0.0),
            Activation::Sigmoid => (&kernels::SIGMOID_FORWARD, 0.0),
            Activation::Softplus => (&kernels::SOFTPLUS_FORWARD, 0.0),
            Activation::Square => (&kernels::SQUARE_FORWARD, 0.0),
        };
        let params = kernels::ActParams { n: n as u32, slope };
        self.dispatch(kernel, &[x, y], &params, groups);
    }

    pub(super) fn activation_backward(
        &self,
        act: Activation,
        x: &GpuTensor,
        dy: &GpuTensor,
        dx: &mut GpuTensor,
    ) {
        let n = x.len.min(dy.len).min(dx.len);
        let Some(groups) = self.grid_1d_or_defer(n).filter(|_| n > 0) else {
            return;
        };
        let (kernel, slope) = match act {
            Activation::Relu => (&kernels::RELU_BACKWARD, 0.0),
            Activation::LeakyRelu(slope) => (&kernels::LEAKY_RELU_BACKWARD, slope),
            Activation::Silu => (&kernels::SILU_BACKWARD, 0.0),
            Activation::Tanh => (&kernels::TANH_BACKWARD, 0.0),
            Activation::Sigmoid => (&kernels::SIGMOID_BACKWARD, 0.0),
            Activation::Softplus => (&kernels::SOFTPLUS_BACKWARD, 0.0),
            Activation::Square => (&kernels::SQUARE_BACKWARD, 0.0),
        };
        let params = kernels::ActParams { n: n as u32, slope };
        self.dispatch(kernel, &[x, dy, dx], &params, groups);
    }

    pub(super) fn channel_bias_add(&self, s: ChannelShape, bias: &GpuTensor, y: &mut GpuTensor) {
        let n = s.len();
        let params = elt_params(n, s.pixels, s.channels, 0.0);
        self.elementwise(&kernels::CHANNEL_BIAS_ADD, &[bias, y], params, n);
    }

    pub(super) fn channel_sum(&self, s: ChannelShape, dy: &GpuTensor, db: &mut GpuTensor) {
        let params = row_params(s.channels, s.batch * s.pixels, s.pixels, 0.0);
        let k = &kernels::CHANNEL_SUM;
        self.rows_kernel(k, &[dy, db], params, s.channels, false, s.len());
    }
}

/// A linear layer as the 1×1 convolution of 1×1 images it is: y\[b, o\] = bias\[o\] +
/// Σᵢ w\[o, i\]·x\[b, i\] is conv2d's forward with batch b, i input and o output channels, in
/// the same memory layout (PyTorch's \[O, I\] weight is its \[O, I, 1, 1\]). So the dense
/// layers run on the tuned conv products (register-blocked tiles, split-K, 128×128 tiles,
/// tensor cores) rather than on kernels of their own.
fn as_conv(s: LinearShape) -> Conv2dShape {
    Conv2dShape {
        batch: s.batch,
        in_channels: s.inputs,
        out_channels: s.outputs,
        height: 1,
        width: 1,
        kernel: 1,
        stride: 1,
        padding: 0,
    }
}
