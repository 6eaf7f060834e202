//! The `Backend` trait: the only door to a device.
//!
//! Model, sampler and trainer code is generic over it and never knows whether a CPU or a GPU
//! runs it (the Burn/candle split). Backends own their buffers; the host holds opaque
//! [`Backend::Tensor`] handles and reads values back only through [`Backend::read`].
//!
//! Every operation is *recorded*, not necessarily executed: the GPU backend appends it to one
//! pending command encoder and submits on [`Backend::flush`] or [`Backend::read`], so a whole
//! chain of K Langevin steps costs one submission and no readback. The CPU backend runs each
//! operation at once. Results are the same up to float rounding.
//!
//! Upload host values, record operations on the handles, read the result back:
//!
//! ```
//! use ebm::backend::{Backend, LinearShape};
//! use ebm::CpuBackend;
//!
//! # fn main() -> ebm::Result<()> {
//! let b = CpuBackend::new();
//! // y = x·wᵀ + bias for 2 samples of 3 inputs and 1 output.
//! let s = LinearShape { batch: 2, inputs: 3, outputs: 1 };
//! let x = b.upload(&[1.0, 2.0, 3.0, 0.0, 0.0, 1.0])?;
//! let w = b.upload(&[0.5, 0.5, 1.0])?;
//! let bias = b.upload(&[-1.0])?;
//! let mut y = b.zeros(2)?;
//! b.linear_forward(s, &x, &w, &bias, &mut y);
//! assert_eq!(b.read(&y)?, [3.5, 0.0]);
//! # Ok(())
//! # }
//! ```

pub mod cpu;
pub mod device;
pub mod gpu;
pub mod kernel;
pub mod profile;
mod shapes;

pub use cpu::CpuBackend;
pub use device::{choose_backend, AnyBackend, DeviceChoice};
pub use gpu::{GpuBackend, GpuTensor};
pub use kernel::Kernel;
pub use profile::{KernelTime, Profile, ProfileSupport};

use crate::Result;

/// Pointwise nonlinearities.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    /// max(x, 0)
    Relu,
    /// max(x, slope·x)
    LeakyRelu(f32),
    /// x·σ(x)
    Silu,
    /// tanh(x); its derivative 1 − tanh²(x) is computed from e^(−2|x|) so that it keeps its
    /// relative accuracy in the tails instead of cancelling to 0.
    Tanh,
    /// σ(x) = 1 / (1 + e^−x), computed from e^(−|x|) so that it never overflows; derivative
    /// σ(x)·σ(−x).
    Sigmoid,
    /// PyTorch's `nn.Softplus()` (β = 1, threshold 20): x where x > 20, else ln(1 + eˣ),
    /// computed as max(x, 0) + ln(1 + e^(−|x|)) with a series for small e^(−|x|), so that it
    /// neither overflows nor loses the tiny values of very negative x. Derivative σ(x)
    /// (1 above the threshold).
    Softplus,
    /// x² (PyTorch's `torch.square`); derivative 2x. Unbounded: it overflows to +∞ past
    /// |x| ≈ 1.8·10¹⁹, as PyTorch's does.
    Square,
}

/// Shape of a batched linear layer `y[b, o] = Σᵢ x[b, i]·w[o, i] + bias[o]` (PyTorch layout).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinearShape {
    /// Rows of x and y (samples).
    pub batch: usize,
    /// Columns of x and of w (features in).
    pub inputs: usize,
    /// Columns of y, rows of w and length of the bias (features out).
    pub outputs: usize,
}

/// Shape of a batched 2D convolution: input x `[batch, in_channels, height, width]` (NCHW),
/// weight `[out_channels, in_channels, kernel, kernel]` (PyTorch layout), zero padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dShape {
    /// Samples (N) in x and y.
    pub batch: usize,
    /// Channels of x and of every filter (C).
    pub in_channels: usize,
    /// Filters: channels of y and length of the bias.
    pub out_channels: usize,
    /// Input height H in pixels, before padding.
    pub height: usize,
    /// Input width W in pixels, before padding.
    pub width: usize,
    /// Side k of the square filter.
    pub kernel: usize,
    /// Step between filter positions, the same along both axes (≥ 1).
    pub stride: usize,
    /// Zero pixels added on each side of both axes.
    pub padding: usize,
}

impl Conv2dShape {
    /// Output height: ⌊(H + 2p − k) / s⌋ + 1.
    pub fn out_height(&self) -> usize {
        (self.height + 2 * self.padding - self.kernel) / self.stride + 1
    }

    /// Output width: ⌊(W + 2p − k) / s⌋ + 1.
    pub fn out_width(&self) -> usize {
        (self.width + 2 * self.padding - self.kernel) / self.stride + 1
    }

    /// Values in one input sample.
    pub fn in_len(&self) -> usize {
        self.in_channels * self.height * self.width
    }

    /// Values in one output sample.
    pub fn out_len(&self) -> usize {
        self.out_channels * self.out_height() * self.out_width()
    }
}

/// Shape of average pooling with a square window of `kernel` and stride `kernel`, no padding
/// (PyTorch's `AvgPool2d(k)`): rows and columns past the last whole window are dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolShape {
    /// Samples (N) in x and y.
    pub batch: usize,
    /// Channels, pooled independently (C of x and of y).
    pub channels: usize,
    /// Input height in pixels.
    pub height: usize,
    /// Input width in pixels.
    pub width: usize,
    /// Side of the square window, which is also its stride.
    pub kernel: usize,
}

impl PoolShape {
    /// Output height ⌊H / k⌋.
    pub fn out_height(&self) -> usize {
        self.height / self.kernel
    }

    /// Output width ⌊W / k⌋.
    pub fn out_width(&self) -> usize {
        self.width / self.kernel
    }
}

/// Shape of nearest-neighbour upsampling by an integer factor (PyTorch's
/// `nn.Upsample(scale_factor=f, mode="nearest")`): x `[batch, channels, height, width]` →
/// y `[batch, channels, height·factor, width·factor]`, each input pixel copied to a
/// factor×factor block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UpsampleShape {
    /// Samples (N) in x and y.
    pub batch: usize,
    /// Channels, upsampled independently (C of x and of y).
    pub channels: usize,
    /// Input height in pixels.
    pub height: usize,
    /// Input width in pixels.
    pub width: usize,
    /// The integer scale factor f (≥ 1) along both axes.
    pub factor: usize,
}

impl UpsampleShape {
    /// Output height H·f.
    pub fn out_height(&self) -> usize {
        self.height * self.factor
    }

    /// Output width W·f.
    pub fn out_width(&self) -> usize {
        self.width * self.factor
    }

    /// Values in x: N·C·H·W.
    pub fn in_len(&self) -> usize {
        self.batch * self.channels * self.height * self.width
    }

    /// Values in y: N·C·H·f·W·f.
    pub fn out_len(&self) -> usize {
        self.in_len() * self.factor * self.factor
    }
}

/// A `[batch, channels, pixels]` layout (an NCHW tensor with H·W flattened, or a
/// `[batch, features]` one with `pixels` 1), for the per-channel bias ops
/// [`Backend::channel_bias_add`] and [`Backend::channel_sum`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelShape {
    /// Samples (N).
    pub batch: usize,
    /// Channels (C): the length of the bias.
    pub channels: usize,
    /// Values per channel and sample (H·W).
    pub pixels: usize,
}

impl ChannelShape {
    /// Values in the whole tensor: N·C·P.
    pub fn len(&self) -> usize {
        self.batch * self.channels * self.pixels
    }

    /// Whether the tensor holds no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What a backend has done so far; lets tests prove "one submission, no readback".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Command buffers submitted to the device queue (always 0 on the CPU).
    pub submissions: u64,
    /// Device → host copies (always 0 on the CPU).
    pub readbacks: u64,
    /// Kernels dispatched or run.
    pub dispatches: u64,
}

/// The column an index stored as f32 names, if it is an exact integer in `[0, cols)`: the
/// rule [`Backend::gather_cols`] and [`Backend::scatter_cols`] apply on every device, and
/// so the rule a class label must meet (host code checks labels with it before they reach
/// a kernel).
///
/// ```
/// use ebm::backend::column_index;
///
/// assert_eq!(column_index(2.0, 3), Some(2));
/// assert_eq!(column_index(3.0, 3), None);
/// assert_eq!(column_index(0.5, 3), None);
/// assert_eq!(column_index(f32::NAN, 3), None);
/// ```
pub fn column_index(index: f32, cols: usize) -> Option<usize> {
    (index >= 0.0 && index < cols as f32 && index.fract() == 0.0).then_some(index as usize)
}

/// A compute device. All lengths are in f32 elements; tensors are flat, row-major.
///
/// Write device code once, generic over `B: Backend`, and run it on either device:
///
/// ```
/// use ebm::{Backend, CpuBackend};
///
/// /// ‖x‖², reduced on the device: one kernel and one small readback.
/// fn norm_squared<B: Backend>(b: &B, x: &[f32]) -> ebm::Result<f32> {
///     let x = b.upload(x)?;
///     let mut out = b.zeros(1)?;
///     b.sum_squares(&x, &mut out, 0);
///     Ok(b.read(&out)?[0])
/// }
///
/// let b = CpuBackend::new();
/// assert_eq!(norm_squared(&b, &[3.0, 4.0]).unwrap(), 25.0);
/// assert_eq!(b.counters().readbacks, 0, "the CPU never copies back");
/// ```
pub trait Backend {
    /// An opaque handle to device memory holding f32 values.
    type Tensor;

    /// Human-readable device name, e.g. "cpu (2 threads)" or "NVIDIA H100 (Vulkan)".
    fn name(&self) -> String;
    /// True for a GPU (hardware or software adapter).
    fn is_gpu(&self) -> bool;

    /// A zero-filled tensor.
    fn zeros(&self, len: usize) -> Result<Self::Tensor>;
    /// A tensor holding `data`.
    fn upload(&self, data: &[f32]) -> Result<Self::Tensor>;
    /// Overwrite `dst[offset..offset + data.len()]`, ordered after all recorded work.
    fn write(&self, dst: &mut Self::Tensor, offset: usize, data: &[f32]) -> Result<()>;
    /// Read the whole tensor back (runs all recorded work first).
    fn read(&self, src: &Self::Tensor) -> Result<Vec<f32>>;
    /// Number of f32 elements.
    fn len(&self, t: &Self::Tensor) -> usize;
    /// `dst[dst_offset..][..len] = src[src_offset..][..len]`.
    fn copy(
        &self,
        src: &Self::Tensor,
        src_offset: usize,
        dst: &mut Self::Tensor,
        dst_offset: usize,
        len: usize,
    );
    /// Set every element to `value`.
    fn fill(&self, dst: &mut Self::Tensor, value: f32);
    /// `x[i] = known[i]` wherever `mask[i] ≠ 0`: the known pixels of an inpainting chain stay
    /// fixed while Langevin moves the rest.
    fn keep_known(&self, x: &mut Self::Tensor, known: &Self::Tensor, mask: &Self::Tensor);
    /// Submit recorded work and block until the device has finished it (on the CPU, which
    /// runs every op at once, only the error of a refused call comes back):
    /// for progress reports and timing.
    fn wait(&self) -> Result<()>;
    /// Submit recorded work without waiting for it; returns the error of a refused call.
    fn flush(&self) -> Result<()>;
    /// What the backend has done so far.
    fn counters(&self) -> Counters;
    /// Start or stop timing every kernel (off costs nothing); says whether this device can.
    fn set_profiling(&self, on: bool) -> ProfileSupport {
        let _ = on;
        ProfileSupport::Unsupported(format!("{} cannot time its kernels", self.name()))
    }
    /// The kernel times recorded since the last call, clearing them; runs recorded work first.
    fn take_profile(&self) -> Result<Profile> {
        Ok(Profile::default())
    }

    /// `y = x·wᵀ + b`: x `[batch, in]`, w `[out, in]`, b `[out]`, y `[batch, out]`.
    fn linear_forward(
        &self,
        s: LinearShape,
        x: &Self::Tensor,
        w: &Self::Tensor,
        b: &Self::Tensor,
        y: &mut Self::Tensor,
    );
    /// `dx = dy·w`: dy `[batch, out]`, w `[out, in]`, dx `[batch, in]`.
    fn linear_backward_data(
        &self,
        s: LinearShape,
        dy: &Self::Tensor,
        w: &Self::Tensor,
        dx: &mut Self::Tensor,
    );
    /// `dw = dyᵀ·x`, `db = Σ_b dy`: overwrites dw `[out, in]` and db `[out]`.
    fn linear_backward_params(
        &self,
        s: LinearShape,
        dy: &Self::Tensor,
        x: &Self::Tensor,
        dw: &mut Self::Tensor,
        db: &mut Self::Tensor,
    );
    /// `y = conv2d(x, w) + b`: x `[batch, in, H, W]`, y `[batch, out, H', W']`.
    fn conv2d_forward(
        &self,
        s: Conv2dShape,
        x: &Self::Tensor,
        w: &Self::Tensor,
        b: &Self::Tensor,
        y: &mut Self::Tensor,
    );
    /// `dx = conv2dᵀ(dy, w)`: the input gradient (overwrites dx).
    fn conv2d_backward_data(
        &self,
        s: Conv2dShape,
        dy: &Self::Tensor,
        w: &Self::Tensor,
        dx: &mut Self::Tensor,
    );
    /// The weight and bias gradients, summed over the batch (overwrites dw and db).
    fn conv2d_backward_params(
        &self,
        s: Conv2dShape,
        dy: &Self::Tensor,
        x: &Self::Tensor,
        dw: &mut Self::Tensor,
        db: &mut Self::Tensor,
    );
    /// `y` = the mean of each k×k window of `x`.
    fn avg_pool_forward(&self, s: PoolShape, x: &Self::Tensor, y: &mut Self::Tensor);
    /// `dx` = dy/k² spread over each window (0 outside whole windows).
    fn avg_pool_backward(&self, s: PoolShape, dy: &Self::Tensor, dx: &mut Self::Tensor);
    /// `y = act(x)` elementwise.
    fn activation_forward(&self, act: Activation, x: &Self::Tensor, y: &mut Self::Tensor);
    /// `dx = act'(x)·dy` elementwise.
    fn activation_backward(
        &self,
        act: Activation,
        x: &Self::Tensor,
        dy: &Self::Tensor,
        dx: &mut Self::Tensor,
    );
    /// `y[..len] = a[..len] + b[..len]` (residual connections).
    fn add(&self, a: &Self::Tensor, b: &Self::Tensor, y: &mut Self::Tensor, len: usize);
    /// `y[..len] += alpha·x[..len]` (gradient accumulation where a tensor feeds two layers).
    fn axpy(&self, alpha: f32, x: &Self::Tensor, y: &mut Self::Tensor, len: usize);
    /// `x[..len] *= alpha`, in place.
    fn scale(&self, alpha: f32, x: &mut Self::Tensor, len: usize);
    /// `y[r] = alpha·Σ_c x[r·cols + c]` for `r < rows`: x is `[rows, cols]`. Deterministic
    /// (a fixed summation order per device, no atomics); on the GPU one workgroup per row.
    fn row_sum(&self, rows: usize, cols: usize, alpha: f32, x: &Self::Tensor, y: &mut Self::Tensor);
    /// `y[r·cols + c] = alpha·s[r]`: each row of y `[rows, cols]` filled with its scalar (the
    /// backward of [`row_sum`](Self::row_sum)).
    fn broadcast_rows(
        &self,
        rows: usize,
        cols: usize,
        alpha: f32,
        s: &Self::Tensor,
        y: &mut Self::Tensor,
    );
    /// `y[r] = log Σ_c exp x[r, c]` over x `[rows, cols]`, shifted by the row's maximum so
    /// that it never overflows (a row whose maximum is ±∞ gives that maximum).
    /// Deterministic, one workgroup per row on the GPU.
    fn row_logsumexp(&self, rows: usize, cols: usize, x: &Self::Tensor, y: &mut Self::Tensor);
    /// `y[r, c] = exp(x[r, c] − logsumexp_r)`: the softmax of each row of x `[rows, cols]`
    /// (also the gradient of [`row_logsumexp`](Self::row_logsumexp)).
    fn row_softmax(&self, rows: usize, cols: usize, x: &Self::Tensor, y: &mut Self::Tensor);
    /// `y[r, c] = alpha·x[r, c]·s[r]`: each row of x `[rows, cols]` scaled by its own scalar.
    fn scale_rows(
        &self,
        rows: usize,
        cols: usize,
        alpha: f32,
        x: &Self::Tensor,
        s: &Self::Tensor,
        y: &mut Self::Tensor,
    );
    /// `y[r] = x[r, index[r]]` for x `[rows, cols]` (a classifier's logit of each label).
    /// `index` holds exact integers as f32; an index that is not an integer in `[0, cols)`
    /// gives NaN, so that the trainer's health check
    /// ([`FlagNonFinite`](crate::train::FlagNonFinite)) catches a bad label.
    ///
    /// With [`row_logsumexp`](Self::row_logsumexp), [`row_softmax`](Self::row_softmax) and
    /// [`scatter_cols`](Self::scatter_cols) it makes a classifier's mean cross-entropy,
    /// L = mean_r (logsumexp_r − x[r, label_r]), and its gradient (softmax − one-hot)/rows:
    ///
    /// ```
    /// use ebm::backend::Backend;
    /// use ebm::CpuBackend;
    ///
    /// # fn main() -> ebm::Result<()> {
    /// let b = CpuBackend::new();
    /// let (rows, cols) = (2, 3);
    /// let logits = b.upload(&[1.0, 2.0, 3.0, 0.0, 0.0, 0.0])?;
    /// let labels = b.upload(&[2.0, 0.0])?;
    /// // Forward: nll_r = lse_r − x[r, label_r], then the mean over rows.
    /// let (mut nll, mut picked, mut loss) = (b.zeros(rows)?, b.zeros(rows)?, b.zeros(1)?);
    /// b.row_logsumexp(rows, cols, &logits, &mut nll);
    /// b.gather_cols(rows, cols, &logits, &labels, &mut picked);
    /// b.axpy(-1.0, &picked, &mut nll, rows);
    /// b.row_sum(1, rows, 1.0 / rows as f32, &nll, &mut loss);
    /// let want = ((1f32.exp() + 2f32.exp() + 3f32.exp()).ln() - 3.0 + 3f32.ln()) / 2.0;
    /// assert!((b.read(&loss)?[0] - want).abs() < 1e-6);
    /// // Backward: softmax/rows, minus 1/rows at each label.
    /// let (mut grad, mut onehot) = (b.zeros(rows * cols)?, b.zeros(rows * cols)?);
    /// b.row_softmax(rows, cols, &logits, &mut grad);
    /// b.scale(1.0 / rows as f32, &mut grad, rows * cols);
    /// let ones = b.upload(&[1.0; 2])?;
    /// b.scatter_cols(rows, cols, -1.0 / rows as f32, &ones, &labels, &mut onehot);
    /// b.axpy(1.0, &onehot, &mut grad, rows * cols);
    /// let g = b.read(&grad)?;
    /// assert!((g[3] - (1.0 / 3.0 - 1.0) / 2.0).abs() < 1e-6 && (g[4] - 1.0 / 6.0).abs() < 1e-6);
    /// // A label past the last class gives NaN, which the health check catches.
    /// b.write(&mut picked, 0, &[0.0])?;
    /// b.gather_cols(rows, cols, &logits, &b.upload(&[3.0, 0.0])?, &mut picked);
    /// assert!(b.read(&picked)?[0].is_nan());
    /// # Ok(())
    /// # }
    /// ```
    fn gather_cols(
        &self,
        rows: usize,
        cols: usize,
        x: &Self::Tensor,
        index: &Self::Tensor,
        y: &mut Self::Tensor,
    );
    /// `dx[r, c] = alpha·dy[r]` where `c == index[r]`, else 0: the backward of
    /// [`gather_cols`](Self::gather_cols). Overwrites all `rows·cols` values of dx; a row
    /// whose index names no column is all 0.
    fn scatter_cols(
        &self,
        rows: usize,
        cols: usize,
        alpha: f32,
        dy: &Self::Tensor,
        index: &Self::Tensor,
        dx: &mut Self::Tensor,
    );
    /// Nearest-neighbour upsampling: `y[n, c, i, j] = x[n, c, i / f, j / f]`.
    fn upsample_forward(&self, s: UpsampleShape, x: &Self::Tensor, y: &mut Self::Tensor);
    /// Its adjoint: `dx[n, c, i, j]` = the sum of dy over the f×f block that x[n, c, i, j]
    /// was copied to. Overwrites dx; a gather on every device (no atomics).
    fn upsample_backward(&self, s: UpsampleShape, dy: &Self::Tensor, dx: &mut Self::Tensor);
    /// `y[n, c, p] += bias[c]` over y `[batch, channels, pixels]`, in place.
    fn channel_bias_add(&self, s: ChannelShape, bias: &Self::Tensor, y: &mut Self::Tensor);
    /// `db[c] = Σ_n Σ_p dy[n, c, p]`: the bias gradient of
    /// [`channel_bias_add`](Self::channel_bias_add). Overwrites db; deterministic, one
    /// workgroup per channel on the GPU however long batch·pixels is.
    fn channel_sum(&self, s: ChannelShape, dy: &Self::Tensor, db: &mut Self::Tensor);
    /// Spectral normalisation (PyTorch's `torch.nn.utils.spectral_norm`, dim 0, one power
    /// iteration, eps 1e-12) of a weight W viewed as a `[rows, cols]` matrix (rows = output
    /// features; a conv weight `[out, in, k, k]` is `[out, in·k·k]`).
    ///
    /// When `iterate`, first one power iteration in place on `u` `[rows]` and `v` `[cols]`:
    /// v ← normalize(Wᵀu), then u ← normalize(W v), where normalize(x) = x / max(‖x‖₂, 1e-12).
    /// Then σ = uᵀ W v is written to `sigma[0]` and `w_sn` `[rows, cols]` = W / σ. Without
    /// `iterate`, u and v are only read (evaluation mode).
    ///
    /// Deterministic (fixed summation orders, no atomics) and entirely on the device: on the
    /// GPU Wᵀu runs one thread per column, W v one workgroup per row and each norm and σ in
    /// one workgroup; `w_sn` serves as scratch for W v before it receives W / σ.
    #[allow(clippy::too_many_arguments)]
    fn spectral_norm_forward(
        &self,
        rows: usize,
        cols: usize,
        w: &Self::Tensor,
        u: &mut Self::Tensor,
        v: &mut Self::Tensor,
        sigma: &mut Self::Tensor,
        w_sn: &mut Self::Tensor,
        iterate: bool,
    );
    /// The gradient of W/σ with u and v held constant (what PyTorch's spectral_norm
    /// back-propagates): `dw = (g − ⟨g, w_sn⟩·u vᵀ) / σ`, where `g` = dL/d(w_sn)
    /// `[rows, cols]`, `w_sn`, `u`, `v` and `sigma` are what
    /// [`spectral_norm_forward`](Self::spectral_norm_forward) left, and σ = `sigma[0]`.
    /// Overwrites all `rows·cols` values of `dw`; ⟨g, w_sn⟩ is a deterministic reduction (per
    /// row, then over rows) for which the GPU uses `dw` itself as scratch.
    #[allow(clippy::too_many_arguments)]
    fn spectral_norm_backward(
        &self,
        rows: usize,
        cols: usize,
        g: &Self::Tensor,
        w_sn: &Self::Tensor,
        u: &Self::Tensor,
        v: &Self::Tensor,
        sigma: &Self::Tensor,
        dw: &mut Self::Tensor,
    );
    /// `out[slot] = Σ x²` (for global gradient-norm clipping).
    fn sum_squares(&self, x: &Self::Tensor, out: &mut Self::Tensor, slot: usize);

    /// Run an algorithm's own kernel ([`Kernel`]): its shape check first, then its CPU twin
    /// (counted and timed under the kernel's name) or its WGSL (each dispatch counted and
    /// timed under its entry point). `inputs` are only read, `outputs`
    /// written; the kernel documents their order. A call the check refuses does nothing, and
    /// its error is returned by the next [`flush`](Self::flush), [`wait`](Self::wait) or
    /// [`read`](Self::read), as the GPU reports every error of recorded work.
    fn run(&self, kernel: &dyn Kernel, inputs: &[&Self::Tensor], outputs: &mut [&mut Self::Tensor]);
    /// Whether this device runs `kernel` as it is set up (a fused kernel may not fit every
    /// device or shape); callers with another way to do the work ask first.
    fn supports(&self, kernel: &dyn Kernel) -> bool;
}
