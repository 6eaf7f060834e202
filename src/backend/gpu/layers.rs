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

    /// Grid of 16×16 output tiles over a `rows` × `cols` matrix.
    pub(super) fn tile_grid(&self, rows: usize, cols: usize) -> Option<(u32, u32, u32)> {
        let max = self.report.max_compute_workgroups_per_dimension as usize;
        let (gx, gy) = (cols.div_ceil(TILE as usize), rows.div_ceil(TILE as usize));
        if !self.check(gx <= max && gy <= max, || {
            format!("a {rows}×{cols} matrix needs more than {max} tiles per dimension")
        }) {
            return None;
        }
        Some((gx as u32, gy as u32, 1))
    }

    /// The conv2d kernels' parameters (the geometry already checked above the backend), or
    /// `None` (error deferred) when an index would leave the u32 range the kernels compute in.
    pub(super) fn conv_params(&self, s: Conv2dShape) -> Option<ConvParams> {
        let weights = s.out_channels * s.in_channels * s.kernel * s.kernel;
        let largest = (s.batch * s.in_len())
            .max(s.batch * s.out_len())
            .max(weights);
        let u = |n: usize| self.dim_u32(n).map_err(|e| self.defer_error(e)).ok();
        // The kernels form offsets that may dip below 0 by the padding in i32, and mark
        // columns past the end with −2³⁰, which a coordinate must not reach back from.
        if !self.check(largest + s.padding <= i32::MAX as usize, || {
            format!("a conv2d tensor of {largest} values exceeds the i32 range of the kernels")
        }) || !self.check(s.height.max(s.width) + 2 * s.padding < 1 << 29, || {
            format!(
                "a padded conv2d input of {}×{} (padding {}) exceeds the kernels' coordinate range",
                s.height, s.width, s.padding
            )
        }) {
            return None;
        }
        Some(ConvParams {
            batch: u(s.batch)?,
            in_channels: u(s.in_channels)?,
            out_channels: u(s.out_channels)?,
            height: u(s.height)?,
            width: u(s.width)?,
            kernel: u(s.kernel)?,
            stride: u(s.stride)?,
            padding: u(s.padding)?,
            out_height: u(s.out_height())?,
            out_width: u(s.out_width())?,
            splits: 1,
            k_chunk: 0,
        })
    }

    /// The f32 kernel of a conv product with `rows` rows of output, and its tile side:
    /// `square` on 64×64 tiles, or `wide` on 128×128 where [`ConvTiles`] asks for them.
    fn f32_conv_kernel(
        &self,
        rows: usize,
        square: &'static WgslEntry,
        wide: &'static WgslEntry,
    ) -> (&'static WgslEntry, usize) {
        match self.conv_tiles.side_for(rows) {
            CONV_WIDE_TILE => (wide, CONV_WIDE_TILE),
            _ => (square, CONV_TILE),
        }
    }

    /// Grid of `tile`² output tiles over a `rows` × `cols` matrix: column tiles on x
    /// (spilling into y past the per-dimension limit; the shader flattens them), row tiles
    /// on z.
    pub(super) fn conv_grid(
        &self,
        tile: usize,
        rows: usize,
        cols: usize,
    ) -> Option<(u32, u32, u32)> {
        let max = self.report.max_compute_workgroups_per_dimension as usize;
        let (x, y, _) = self.grid_or_defer(cols.div_ceil(tile))?;
        let z = rows.div_ceil(tile);
        if !self.check(z <= max, || {
            format!("{rows} rows need more than {max} conv tiles")
        }) {
            return None;
        }
        Some((x, y, z as u32))
    }

    /// Record conv product `p` on a `groups` grid (z: its row tiles, × phases for the input
    /// gradient), with its K cut into [`k_splits`] slices on z (split-K; see conv2d.wgsl).
    /// With more than one, the slices write their partial products into scratch memory and
    /// `p.sum` adds them (and the bias) into `out`.
    pub(super) fn conv_product(
        &self,
        p: ConvProduct,
        mut params: ConvParams,
        (x, y, z): (u32, u32, u32),
        [a, b]: [&GpuTensor; 2],
        out: &GpuTensor,
        bias: Option<&GpuTensor>,
    ) {
        let fits = (self.storage_limit() as usize / 4 / p.out_len.max(1)).max(1);
        let max = self.report.max_compute_workgroups_per_dimension as usize;
        let wanted = k_splits(p.square_tiles, p.k_len)
            .min(fits)
            .min((max / z.max(1) as usize).max(1));
        // Slices of a whole number of 16-steps, none empty.
        let chunk = p.k_len.div_ceil(wanted).next_multiple_of(16).max(16);
        let splits = p.k_len.div_ceil(chunk).max(1);
        params.splits = splits as u32;
        params.k_chunk = chunk as u32;
        let groups = (x, y, z * splits as u32);
        if splits == 1 {
            self.dispatch(p.kernel, &bindings([a, b, out], bias), &params, groups);
            return;
        }
        let Some(sum_groups) = self.grid_1d_or_defer(p.out_len) else {
            return;
        };
        let recorded = self.with_scratch("conv2d split-K", splits * p.out_len, |scratch| {
            self.dispatch(p.kernel, &bindings([a, b, scratch], bias), &params, groups);
            let sums: Vec<&GpuTensor> = [&*scratch, out].into_iter().chain(bias).collect();
            self.dispatch(p.sum, &sums, &params, sum_groups);
        });
        if let Err(e) = recorded {
            self.defer_error(e);
        }
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

    pub(super) fn linear_forward(
        &self,
        s: LinearShape,
        x: &GpuTensor,
        w: &GpuTensor,
        b: &GpuTensor,
        y: &mut GpuTensor,
    ) {
        let (n, o) = (s.batch, s.outputs);
        if n * o == 0 {
            return;
        }
        let (Some(params), Some(groups)) = (self.linear_dims(s), self.tile_grid(n, o)) else {
            return;
        };
        self.dispatch(&kernels::LINEAR_FORWARD, &[x, w, y, b], &params, groups);
    }

    pub(super) fn linear_backward_data(
        &self,
        s: LinearShape,
        dy: &GpuTensor,
        w: &GpuTensor,
        dx: &mut GpuTensor,
    ) {
        let (n, i) = (s.batch, s.inputs);
        if n * i == 0 {
            return;
        }
        let (Some(params), Some(groups)) = (self.linear_dims(s), self.tile_grid(n, i)) else {
            return;
        };
        self.dispatch(
            &kernels::LINEAR_BACKWARD_DATA,
            &[dy, w, dx],
            &params,
            groups,
        );
    }

    pub(super) fn linear_backward_params(
        &self,
        s: LinearShape,
        dy: &GpuTensor,
        x: &GpuTensor,
        dw: &mut GpuTensor,
        db: &mut GpuTensor,
    ) {
        let (i, o) = (s.inputs, s.outputs);
        if o == 0 {
            return;
        }
        let Some(params) = self.linear_dims(s) else {
            return;
        };
        if i > 0 {
            let Some(groups) = self.tile_grid(o, i) else {
                return;
            };
            self.dispatch(
                &kernels::LINEAR_BACKWARD_PARAMS,
                &[dy, x, dw],
                &params,
                groups,
            );
        }
        // A workgroup per 16 outputs (the shader's TILE), spilling into y.
        let Some(groups) = self.grid_or_defer(o.div_ceil(TILE as usize)) else {
            return;
        };
        self.dispatch(&kernels::LINEAR_BACKWARD_BIAS, &[dy, db], &params, groups);
    }

    pub(super) fn conv2d_forward(
        &self,
        s: Conv2dShape,
        x: &GpuTensor,
        w: &GpuTensor,
        b: &GpuTensor,
        y: &mut GpuTensor,
    ) {
        let Some(params) = self.conv_params(s) else {
            return;
        };
        if s.batch * s.out_len() == 0 {
            return;
        }
        let pixels = s.batch * s.out_height() * s.out_width();
        let (kernel, tile) = if self.tensor_cores.is_on() {
            (&kernels::CONV2D_FORWARD_COOP, CONV_TILE)
        } else {
            self.f32_conv_kernel(
                s.out_channels,
                &kernels::CONV2D_FORWARD,
                &kernels::CONV2D_FORWARD_WIDE,
            )
        };
        let Some(groups) = self.conv_grid(tile, s.out_channels, pixels) else {
            return;
        };
        let product = ConvProduct {
            kernel,
            sum: &kernels::CONV2D_SUM_FORWARD,
            k_len: s.in_channels * s.kernel * s.kernel,
            out_len: s.batch * s.out_len(),
            square_tiles: square_tiles(s.out_channels, pixels),
        };
        self.conv_product(product, params, groups, [w, x], y, Some(b));
    }

    pub(super) fn conv2d_backward_data(
        &self,
        s: Conv2dShape,
        dy: &GpuTensor,
        w: &GpuTensor,
        dx: &mut GpuTensor,
    ) {
        let Some(params) = self.conv_params(s) else {
            return;
        };
        if s.batch * s.in_len() == 0 {
            return;
        }
        // One GEMM per stride phase that meets a tap, the phases stacked on z with the row
        // tiles. A stride past the kernel leaves the other phases' pixels at 0.
        let tap_phases = s.stride.min(s.kernel);
        if s.stride > s.kernel {
            self.fill(dx, 0.0);
        }
        let pixels = s.batch * widest_phase(s);
        let (kernel, tile) = if self.tensor_cores.is_on() {
            (&kernels::CONV2D_BACKWARD_DATA_COOP, CONV_TILE)
        } else {
            self.f32_conv_kernel(
                s.in_channels,
                &kernels::CONV2D_BACKWARD_DATA,
                &kernels::CONV2D_BACKWARD_DATA_WIDE,
            )
        };
        let Some((x, y, z)) = self.conv_grid(tile, s.in_channels, pixels) else {
            return;
        };
        let phases = tap_phases * tap_phases;
        let max = self.report.max_compute_workgroups_per_dimension as usize;
        if !self.check(z as usize * phases <= max, || {
            format!(
                "{} channels at stride {} need more than {max} conv tiles",
                s.in_channels, s.stride
            )
        }) {
            return;
        }
        let groups = (x, y, z * phases as u32);
        // The widest phase (rh = rw = 0) has ⌈k/s⌉² taps per output channel.
        let taps = s.kernel.div_ceil(s.stride.max(1));
        let product = ConvProduct {
            kernel,
            sum: &kernels::CONV2D_SUM_DATA,
            k_len: s.out_channels * taps * taps,
            out_len: s.batch * s.in_len(),
            square_tiles: square_tiles(s.in_channels, pixels) * phases,
        };
        self.conv_product(product, params, groups, [w, dy], dx, None);
    }

    pub(super) fn conv2d_backward_params(
        &self,
        s: Conv2dShape,
        dy: &GpuTensor,
        x: &GpuTensor,
        dw: &mut GpuTensor,
        db: &mut GpuTensor,
    ) {
        let Some(params) = self.conv_params(s) else {
            return;
        };
        let taps = s.in_channels * s.kernel * s.kernel;
        if s.out_channels == 0 {
            return;
        }
        // With an empty batch the kernels store zeros, as the CPU does.
        if taps > 0 {
            let (kernel, tile) = self.f32_conv_kernel(
                s.out_channels,
                &kernels::CONV2D_BACKWARD_WEIGHT,
                &kernels::CONV2D_BACKWARD_WEIGHT_WIDE,
            );
            let Some(groups) = self.conv_grid(tile, s.out_channels, taps) else {
                return;
            };
            let product = ConvProduct {
                kernel,
                sum: &kernels::CONV2D_SUM_WEIGHT,
                k_len: s.batch * s.out_height() * s.out_width(),
                out_len: s.out_channels * taps,
                square_tiles: square_tiles(s.out_channels, taps),
            };
            self.conv_product(product, params, groups, [dy, x], dw, None);
        }
        let Some(groups) = self.grid_or_defer(s.out_channels) else {
            return;
        };
        self.dispatch(&kernels::CONV2D_BACKWARD_BIAS, &[dy, db], &params, groups);
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

/// Input pixels of the largest stride phase of `conv2d_backward_data` (conv2d_gather.wgsl)
/// among those it dispatches (rh, rw < min(s, k)): the pixels (ih, iw) with (ih + p) mod s =
/// rh, (iw + p) mod s = rw, counted as that file's `phase_of` does. The grid covers this many
/// columns per sample in every phase.
fn widest_phase(s: Conv2dShape) -> usize {
    let st = s.stride.max(1);
    let along = |len: usize| {
        (0..st.min(s.kernel))
            .map(|r| {
                let first = (s.padding + st - 1 - r) / st;
                let end = (len + s.padding + st - 1 - r) / st;
                end.saturating_sub(first)
            })
            .max()
            .unwrap_or(0)
    };
    along(s.height) * along(s.width)
}

/// One conv product for [`GpuBackend::conv_product`]: its kernel, the kernel that sums its
/// split-K slices, its K, the length of its output, and its output tiles counted as 64×64
/// ones whichever kernel runs (`square_tiles`): the split-K cut follows from that count, so
/// the 64- and the 128-tile kernels cut K alike, sum the same partial products, and give the
/// same results (a 128-tile workgroup does four times the work, so the same slices keep a
/// GPU as busy).
pub(super) struct ConvProduct {
    kernel: &'static WgslEntry,
    sum: &'static WgslEntry,
    k_len: usize,
    out_len: usize,
    square_tiles: usize,
}

/// How many 64×64 tiles cover a `rows` × `cols` product.
fn square_tiles(rows: usize, cols: usize) -> usize {
    rows.div_ceil(CONV_TILE) * cols.div_ceil(CONV_TILE)
}

/// A conv kernel's buffers in binding order: its two operands and output, then the bias (the
/// forward's binding 3) if it has one.
fn bindings<'t>(buffers: [&'t GpuTensor; 3], bias: Option<&'t GpuTensor>) -> Vec<&'t GpuTensor> {
    buffers.into_iter().chain(bias).collect()
}

/// Split-K: how many slices to cut a conv product's K (of `k_len` terms) into when its
/// output has only `tiles` 64×64 tiles — a deep layer's 8 × 25, a weight gradient's 2 × 16
/// over a K of 10⁵ — so that a large GPU gets about 1024 64-tile workgroups (or the same work
/// in a quarter as many 128-tile ones) to run at once. Each slice
/// keeps at least 8 steps of 16 along K, which bounds the partial sums written and re-read.
fn k_splits(tiles: usize, k_len: usize) -> usize {
    const TARGET_WORKGROUPS: usize = 1024;
    const MIN_STEPS: usize = 8;
    let wanted = TARGET_WORKGROUPS.div_ceil(tiles.max(1));
    let most = (k_len / (16 * MIN_STEPS)).max(1);
    wanted.min(most)
}
