//! The conv2d products: their parameters, which kernel and tile size runs each, launch grids
//! and split-K, and for `--conv-tiles auto` the timing that picks a tile size per product.
//!
//! Each conv op is one implicit GEMM (shaders/conv2d_gather.wgsl; the input gradient one per
//! stride phase), described by a [`ConvProduct`] and recorded on tiles by
//! [`GpuBackend::conv_product`], or, for an input gradient into at most [`THIN_ROWS`]
//! channels, by [`GpuBackend::record_thin`] (shaders/conv2d_thin.wgsl).

use std::time::Instant;

use super::*;

/// A conv product's GEMM dimensions and kernel: the key under which `--conv-tiles auto`
/// remembers its choice (products of the same dimensions run alike).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) struct ProductKey {
    kernel: &'static str,
    rows: usize,
    cols: usize,
    phases: usize,
    k_len: usize,
}

/// What `--conv-tiles auto` chose for one product, and the times that decided it.
#[derive(Clone, Copy, Debug)]
pub(super) struct TileChoice {
    tile: usize,
    /// The best of the timed rounds, in seconds: 64×64 tiles, then 128×128.
    seconds: [f64; 2],
}

/// Timed rounds per tile size, alternating, the best kept (the first run of a pipeline also
/// builds it, and a shared GPU is noisy).
const TUNING_ROUNDS: usize = 3;
/// Products per timed submission: one is often shorter than a submission's own overhead.
const TUNING_REPEATS: usize = 2;

impl GpuBackend {
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
            format!(
                "a tensor of {largest} values exceeds the i32 range of the conv kernels (which \
                 also run the linear layers)"
            )
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
        let product = ConvProduct {
            kernels: self.f32_or_tensor_cores(
                &kernels::CONV2D_FORWARD,
                &kernels::CONV2D_FORWARD_WIDE,
                &kernels::CONV2D_FORWARD_COOP,
            ),
            sum: &kernels::CONV2D_SUM_FORWARD,
            rows: s.out_channels,
            cols: s.batch * s.out_height() * s.out_width(),
            phases: 1,
            k_len: s.in_channels * s.kernel * s.kernel,
            out_len: s.batch * s.out_len(),
        };
        self.conv_product(&product, params, [w, x], y, Some(b));
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
        // The widest phase (rh = rw = 0) has ⌈k/s⌉² taps per output channel.
        let taps = s.kernel.div_ceil(s.stride.max(1));
        let product = ConvProduct {
            kernels: self.f32_or_tensor_cores(
                &kernels::CONV2D_BACKWARD_DATA,
                &kernels::CONV2D_BACKWARD_DATA_WIDE,
                &kernels::CONV2D_BACKWARD_DATA_COOP,
            ),
            sum: &kernels::CONV2D_SUM_DATA,
            rows: s.in_channels,
            cols: s.batch * widest_phase(s),
            phases: tap_phases * tap_phases,
            k_len: s.out_channels * taps * taps,
            out_len: s.batch * s.in_len(),
        };
        if s.in_channels <= THIN_ROWS && self.thin_inputs == ThinInputs::Kernel {
            // An image's or a point's gradient: its own kernel, f32 with tensor cores or not
            // (a 16-row tensor-core tile would be as empty as a 64-row one).
            self.record_thin(&product, params, [w, dy], dx);
        } else {
            self.conv_product(&product, params, [w, dy], dx, None);
        }
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
        if s.out_channels == 0 {
            return;
        }
        self.conv2d_backward_weight(s, params, dy, x, dw);
        let Some(groups) = self.grid_or_defer(s.out_channels) else {
            return;
        };
        self.dispatch(&kernels::CONV2D_BACKWARD_BIAS, &[dy, db], &params, groups);
    }

    /// The weight gradient alone (the linear layers sum their bias gradient their own way).
    /// With an empty batch the kernels store zeros, as the CPU does.
    pub(super) fn conv2d_backward_weight(
        &self,
        s: Conv2dShape,
        params: ConvParams,
        dy: &GpuTensor,
        x: &GpuTensor,
        dw: &mut GpuTensor,
    ) {
        let taps = s.in_channels * s.kernel * s.kernel;
        if s.out_channels * taps == 0 {
            return;
        }
        // The weight gradient always runs in f32 (it feeds Adam directly).
        let product = ConvProduct {
            kernels: ConvKernels {
                square: &kernels::CONV2D_BACKWARD_WEIGHT,
                wide: Some(&kernels::CONV2D_BACKWARD_WEIGHT_WIDE),
            },
            sum: &kernels::CONV2D_SUM_WEIGHT,
            rows: s.out_channels,
            cols: taps,
            phases: 1,
            k_len: s.batch * s.out_height() * s.out_width(),
            out_len: s.out_channels * taps,
        };
        self.conv_product(&product, params, [dy, x], dw, None);
    }

    /// A product's kernels: the f32 ones on both tile sizes, or the tensor-core one (64×64
    /// tiles only) when the device was opened with tensor cores.
    fn f32_or_tensor_cores(
        &self,
        square: &'static WgslEntry,
        wide: &'static WgslEntry,
        tensor_cores: &'static WgslEntry,
    ) -> ConvKernels {
        if self.tensor_cores.is_on() {
            ConvKernels {
                square: tensor_cores,
                wide: None,
            }
        } else {
            ConvKernels {
                square,
                wide: Some(wide),
            }
        }
    }

    /// Record conv product `p` (operands `a`, `b`; `bias` for the forward) into `out`, on the
    /// tile size [`ConvTiles`] asks for.
    fn conv_product(
        &self,
        p: &ConvProduct,
        params: ConvParams,
        operands: [&GpuTensor; 2],
        out: &GpuTensor,
        bias: Option<&GpuTensor>,
    ) {
        let tile = match (p.kernels.wide, self.conv_tiles.fixed_side(p.rows)) {
            (None, _) => CONV_TILE,
            (Some(_), Some(side)) => side,
            (Some(_), None) => self.tuned_tile(p, params, operands, bias),
        };
        self.record_product(p, tile, params, operands, out, bias);
    }

    /// Record `p` on `tile`² output tiles: column tiles on x (spilling into y past the
    /// per-dimension limit; the shader flattens them), row tiles × phases on z, with its K
    /// cut into [`k_splits`] slices on z too (split-K; see conv2d.wgsl).
    fn record_product(
        &self,
        p: &ConvProduct,
        tile: usize,
        params: ConvParams,
        [a, b]: [&GpuTensor; 2],
        out: &GpuTensor,
        bias: Option<&GpuTensor>,
    ) {
        let kernel = match p.kernels.wide {
            Some(wide) if tile == CONV_WIDE_TILE => wide,
            _ => p.kernels.square,
        };
        let max = self.report.max_compute_workgroups_per_dimension as usize;
        let Some((x, y, _)) = self.grid_or_defer(p.cols.div_ceil(tile)) else {
            return;
        };
        let z = p.rows.div_ceil(tile) * p.phases;
        if !self.check(z <= max, || {
            format!(
                "{} rows × {} stride phases need more than {max} conv tiles",
                p.rows, p.phases
            )
        }) {
            return;
        }
        // The cut follows the 64×64 tiles whichever tile runs (see ConvProduct), the grid
        // limit on z included: a 64-tile z bounds the 128-tile one.
        let square_z = p.rows.div_ceil(CONV_TILE) * p.phases;
        let square_tiles = square_z * p.cols.div_ceil(CONV_TILE);
        let wanted = k_splits(square_tiles, p.k_len).min((max / square_z.max(1)).max(1));
        self.record_split(kernel, p, params, wanted, (x, y, z), [a, b], out, bias);
    }

    /// An input gradient into at most [`THIN_ROWS`] channels (an image's, a 2-D point's) on
    /// `conv2d_thin.wgsl`: a workgroup of 64 threads per [`THIN_COLS`] columns of each stride
    /// phase, no tiles. Its threads are few and walk K one index at a time, so K is cut until
    /// there are about [`THIN_THREADS`] of them (slices of 16 indices at the least): a small
    /// batch (1024 chains of a toy, 256 threads) gets its K in slices of 16.
    fn record_thin(
        &self,
        p: &ConvProduct,
        params: ConvParams,
        operands: [&GpuTensor; 2],
        out: &GpuTensor,
    ) {
        let max = self.report.max_compute_workgroups_per_dimension as usize;
        let column_groups = p.cols.div_ceil(THIN_COLS);
        let Some((x, y, _)) = self.grid_or_defer(column_groups) else {
            return;
        };
        if !self.check(p.phases <= max, || {
            format!("{} stride phases need more than {max} workgroups", p.phases)
        }) {
            return;
        }
        let threads = column_groups * p.phases * (THIN_COLS / 4);
        let wanted = THIN_THREADS
            .div_ceil(threads.max(1))
            .min((p.k_len / 16).max(1))
            .min(max / p.phases.max(1));
        let kernel = &kernels::CONV2D_BACKWARD_DATA_THIN;
        self.record_split(
            kernel,
            p,
            params,
            wanted,
            (x, y, p.phases),
            operands,
            out,
            None,
        );
    }

    /// Dispatch `kernel` for `p` on the grid (x, y, z · slices), its K cut into `wanted`
    /// slices or fewer (no more than the scratch memory holds; each a whole number of 16-steps,
    /// none empty). With more than one slice, the slices write their partial products into
    /// scratch memory and `p.sum` adds them (and the bias) into `out`.
    #[allow(clippy::too_many_arguments)]
    fn record_split(
        &self,
        kernel: &WgslEntry,
        p: &ConvProduct,
        mut params: ConvParams,
        wanted: usize,
        (x, y, z): (u32, u32, usize),
        [a, b]: [&GpuTensor; 2],
        out: &GpuTensor,
        bias: Option<&GpuTensor>,
    ) {
        let fits = (self.storage_limit() as usize / 4 / p.out_len.max(1)).max(1);
        let wanted = wanted.min(fits);
        let chunk = p.k_len.div_ceil(wanted).next_multiple_of(16).max(16);
        let splits = p.k_len.div_ceil(chunk).max(1);
        params.splits = splits as u32;
        params.k_chunk = chunk as u32;
        let groups = (x, y, (z * splits) as u32);
        if splits == 1 {
            self.dispatch(kernel, &bindings([a, b, out], bias), &params, groups);
            return;
        }
        let Some(sum_groups) = self.grid_1d_or_defer(p.out_len) else {
            return;
        };
        let recorded = self.with_scratch("conv2d split-K", splits * p.out_len, |scratch| {
            self.dispatch(kernel, &bindings([a, b, scratch], bias), &params, groups);
            let sums: Vec<&GpuTensor> = [&*scratch, out].into_iter().chain(bias).collect();
            self.dispatch(p.sum, &sums, &params, sum_groups);
        });
        if let Err(e) = recorded {
            self.defer_error(e);
        }
    }

    /// `--conv-tiles auto`: the faster tile size for `p`, timed on the first product of its
    /// dimensions and remembered. The two sizes give the same bits, so the choice changes
    /// only the speed. Timing needs the device to itself: the work recorded so far is
    /// submitted first (the queue keeps its order), then each size runs
    /// [`TUNING_REPEATS`] products into scratch memory per submission, [`TUNING_ROUNDS`]
    /// times, alternating; the best time of each decides. The trials stay out of profiles.
    fn tuned_tile(
        &self,
        p: &ConvProduct,
        params: ConvParams,
        operands: [&GpuTensor; 2],
        bias: Option<&GpuTensor>,
    ) -> usize {
        let key = p.key();
        if let Some(choice) = lock(&self.tile_choices).get(&key) {
            return choice.tile;
        }
        // A size whose trial failed is never faster (its time is infinite); if both failed,
        // or the device did, the 64×64 tiles run and report whatever is wrong.
        let seconds = self
            .time_tile_sizes(p, params, operands, bias)
            .unwrap_or([f64::INFINITY; 2]);
        let tile = if seconds[1] < seconds[0] {
            CONV_WIDE_TILE
        } else {
            CONV_TILE
        };
        lock(&self.tile_choices).insert(key, TileChoice { tile, seconds });
        tile
    }

    /// The best wall-clock time of each tile size on `p` (see [`Self::tuned_tile`]);
    /// infinite for a size whose trial did not run (a pipeline, grid or scratch error, which
    /// is then cleared: the choice avoids that size rather than fail the run), or `None`
    /// when the device itself failed (that error deferred).
    fn time_tile_sizes(
        &self,
        p: &ConvProduct,
        params: ConvParams,
        operands: [&GpuTensor; 2],
        bias: Option<&GpuTensor>,
    ) -> Option<[f64; 2]> {
        // `None`, the error deferred, if the device failed.
        let wait = |index| self.wait_until(index).map_err(|e| self.defer_error(e)).ok();
        // Everything submitted so far, this product's earlier work included, runs first.
        wait(self.submit_pending())?;
        // The trials' output: a tensor of its own, freed after the timing (the real output
        // must not change, and the split-K scratch may already hold more than it needs).
        let Ok(trial) = self.zeros(p.out_len) else {
            return Some([f64::INFINITY; 2]);
        };
        let clean = lock(&self.error).is_none();
        // One timed submission of `tile`: its seconds, infinite if nothing ran.
        let time = |tile: usize| -> Option<f64> {
            let dispatched = self.dispatches.load(Ordering::Relaxed);
            for _ in 0..TUNING_REPEATS {
                self.record_product(p, tile, params, operands, &trial, bias);
            }
            let recorded = self.dispatches.load(Ordering::Relaxed) - dispatched;
            let start = Instant::now();
            let submitted = self.submit_pending();
            wait(submitted)?;
            let seconds = start.elapsed().as_secs_f64();
            let failed =
                recorded < TUNING_REPEATS as u64 || (clean && lock(&self.error).take().is_some());
            Some(if failed { f64::INFINITY } else { seconds })
        };
        self.tuning.store(true, Ordering::Relaxed);
        let mut best = Some([f64::INFINITY; 2]);
        'rounds: for _ in 0..TUNING_ROUNDS {
            for (i, tile) in [CONV_TILE, CONV_WIDE_TILE].into_iter().enumerate() {
                match (time(tile), best.as_mut()) {
                    (Some(seconds), Some(best)) => best[i] = best[i].min(seconds),
                    _ => {
                        best = None;
                        break 'rounds;
                    }
                }
            }
        }
        self.tuning.store(false, Ordering::Relaxed);
        best
    }

    /// What `--conv-tiles auto` chose so far, one line per product: its kernel and GEMM
    /// dimensions (M × N × K, and the stride phases of an input gradient), the tile size and
    /// the two timings. Empty under a fixed choice.
    pub fn conv_tile_choices(&self) -> Vec<String> {
        let choices = lock(&self.tile_choices);
        let mut lines: Vec<(ProductKey, String)> = choices
            .iter()
            .map(|(key, choice)| {
                let phases = if key.phases > 1 {
                    format!(" in {} stride phases", key.phases)
                } else {
                    String::new()
                };
                let ms = |s: f64| {
                    if s.is_finite() {
                        format!("{:.3} ms", s * 1e3 / TUNING_REPEATS as f64)
                    } else {
                        "failed".to_string()
                    }
                };
                let line = format!(
                    "{} {}×{}×{}{phases}: {}×{} tiles ({} on 64, {} on 128)",
                    key.kernel,
                    key.rows,
                    key.cols,
                    key.k_len,
                    choice.tile,
                    choice.tile,
                    ms(choice.seconds[0]),
                    ms(choice.seconds[1]),
                );
                (*key, line)
            })
            .collect();
        lines.sort_by_key(|(key, _)| (key.kernel, std::cmp::Reverse(key.rows), key.cols));
        lines.into_iter().map(|(_, line)| line).collect()
    }
}

/// A product's kernel on 64×64 tiles, and on 128×128 where it has one.
struct ConvKernels {
    square: &'static WgslEntry,
    wide: Option<&'static WgslEntry>,
}

/// One conv product C = A·B (rows × cols per stride phase, K = `k_len`) for
/// [`GpuBackend::conv_product`] (or [`GpuBackend::record_thin`]): its kernels, the kernel that
/// sums its split-K slices, and the length of its output.
///
/// On tiles the split-K cut follows from the product's count of 64×64 tiles whichever tile
/// size runs, so the 64- and the 128-tile kernels cut K alike, sum the same partial products
/// in the same order, and give the same bits (a 128-tile workgroup does four times the work,
/// so the same slices keep a GPU as busy). The thin kernel cuts by its own thread count.
struct ConvProduct {
    kernels: ConvKernels,
    sum: &'static WgslEntry,
    rows: usize,
    cols: usize,
    phases: usize,
    k_len: usize,
    out_len: usize,
}

impl ConvProduct {
    fn key(&self) -> ProductKey {
        ProductKey {
            kernel: self.kernels.square.entry,
            rows: self.rows,
            cols: self.cols,
            phases: self.phases,
            k_len: self.k_len,
        }
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

/// A conv kernel's buffers in binding order: its two operands and output, then the bias (the
/// forward's binding 3) if it has one.
fn bindings<'t>(buffers: [&'t GpuTensor; 3], bias: Option<&'t GpuTensor>) -> Vec<&'t GpuTensor> {
    buffers.into_iter().chain(bias).collect()
}

/// The most rows (input channels) an input gradient may have to run on `conv2d_thin.wgsl`:
/// each of its threads holds 4 rows × 4 columns.
const THIN_ROWS: usize = 4;
/// Columns per workgroup of `conv2d_thin.wgsl` (must match its THIN_COLS): 64 threads of 4.
const THIN_COLS: usize = 256;
/// The threads split-K aims to give the thin kernel: as many as 1024 workgroups of 256 (the
/// tiled kernels' aim, [`k_splits`]).
const THIN_THREADS: usize = 1 << 18;

/// Split-K: how many slices to cut a conv product's K (of `k_len` terms) into when its
/// output has only `tiles` 64×64 tiles — a deep layer's 8 × 25, a weight gradient's 2 × 16
/// over a K of 10⁵ — so that a large GPU gets about 1024 64-tile workgroups (or the same work
/// in a quarter as many 128-tile ones) to run at once. Each slice keeps at least 8 steps of
/// 16 along K, which bounds the partial sums written and re-read.
fn k_splits(tiles: usize, k_len: usize) -> usize {
    const TARGET_WORKGROUPS: usize = 1024;
    const MIN_STEPS: usize = 8;
    let wanted = TARGET_WORKGROUPS.div_ceil(tiles.max(1));
    let most = (k_len / (16 * MIN_STEPS)).max(1);
    wanted.min(most)
}
