//! Convolution by im2col + GEMM (the `gemm` crate), samples in parallel: the path for CPUs
//! without AVX-512 or AVX2 (or with `--cpu-tiles off`) and for the thin products the direct
//! tiles do not fill (see `super`).
//!
//! For sample n, `cols` is the [C·k·k, H'·W'] matrix of input patches, so that
//! y_n = W·cols + b, dcols = Wᵀ·dy_n (scattered back by col2im) and dW = Σ_n dy_n·colsᵀ.

use rayon::prelude::*;

use super::patch_rows;
use crate::backend::cpu::matmul::{matmul, Mat};
use crate::backend::Conv2dShape;

/// Patches of one sample `x` [C, H, W] as a [C·k·k, H'·W'] matrix (zeros for padding).
fn im2col(s: &Conv2dShape, x: &[f32], cols: &mut [f32]) {
    let px = s.out_height() * s.out_width();
    let rows = s.kernel * s.kernel * px;
    for (c, channel_rows) in cols.chunks_mut(rows).take(s.in_channels).enumerate() {
        im2col_channel(s, x, c, channel_rows, px, 0);
    }
}

/// The k·k patch rows of input channel `c` (what [`im2col`] writes for that channel), at
/// column `offset` of rows `ld` long (a group of samples side by side). Channels own disjoint
/// rows, so a group's channels can be filled in parallel.
fn im2col_channel(
    s: &Conv2dShape,
    x: &[f32],
    c: usize,
    rows: &mut [f32],
    ld: usize,
    offset: usize,
) {
    let (k, st) = (s.kernel, s.stride);
    let (ho, wo) = (s.out_height(), s.out_width());
    let plane = &x[c * s.height * s.width..][..s.height * s.width];
    for ki in 0..k {
        for kj in 0..k {
            let row = &mut rows[(ki * k + kj) * ld + offset..][..ho * wo];
            let (lo, hi) = inside_columns(s, kj);
            for (oh, out) in row.chunks_mut(wo).enumerate() {
                let Some(ih) = input_row(s, oh, ki) else {
                    out.fill(0.0);
                    continue;
                };
                let src = &plane[ih * s.width..][..s.width];
                out[..lo].fill(0.0);
                out[hi..].fill(0.0);
                if lo == hi {
                    continue;
                }
                // Output column ow reads input column ow·s + kj − p.
                let first = lo * st + kj - s.padding;
                if st == 1 {
                    out[lo..hi].copy_from_slice(&src[first..][..hi - lo]);
                } else {
                    for (o, v) in out[lo..hi].iter_mut().zip(src[first..].iter().step_by(st)) {
                        *o = *v;
                    }
                }
            }
        }
    }
}

/// The output columns [lo, hi) whose tap `kj` lands inside the input (0 ≤ ow·s + kj − p < W);
/// the others read padding. Lets im2col and col2im run their inner loops without a test per
/// element.
fn inside_columns(s: &Conv2dShape, kj: usize) -> (usize, usize) {
    let (st, p, wo) = (s.stride, s.padding, s.out_width());
    let lo = p.saturating_sub(kj).div_ceil(st).min(wo);
    let hi = if s.width + p > kj {
        ((s.width - 1 + p - kj) / st + 1).min(wo)
    } else {
        0
    };
    (lo, hi.max(lo))
}

/// The input row tap `ki` of output row `oh` reads, or `None` in the padding.
fn input_row(s: &Conv2dShape, oh: usize, ki: usize) -> Option<usize> {
    (oh * s.stride + ki)
        .checked_sub(s.padding)
        .filter(|&ih| ih < s.height)
}

/// [`im2col`] of samples `first..first + g` of `x`, side by side in `cols` [C·k·k, g·H'·W'],
/// one task per input channel.
fn im2col_group(s: &Conv2dShape, x: &[f32], first: usize, g: usize, cols: &mut [f32]) {
    let (in_len, px) = (s.in_len(), s.out_height() * s.out_width());
    let width = g * px;
    let rows = s.kernel * s.kernel * width;
    cols[..s.in_channels * rows]
        .par_chunks_mut(rows)
        .enumerate()
        .for_each(|(c, channel_rows)| {
            for j in 0..g {
                let xj = &x[(first + j) * in_len..][..in_len];
                im2col_channel(s, xj, c, channel_rows, width, j * px);
            }
        });
}

/// The adjoint of [`im2col`]: adds each patch column back into `dx` [C, H, W] (zeroed first),
/// reading the sample's columns at `offset` of rows `ld` long.
fn col2im(s: &Conv2dShape, cols: &[f32], ld: usize, offset: usize, dx: &mut [f32]) {
    let (k, st) = (s.kernel, s.stride);
    let (ho, wo) = (s.out_height(), s.out_width());
    dx.fill(0.0);
    for (c, plane) in dx
        .chunks_mut(s.height * s.width)
        .take(s.in_channels)
        .enumerate()
    {
        for ki in 0..k {
            for kj in 0..k {
                let row = &cols[((c * k + ki) * k + kj) * ld + offset..][..ho * wo];
                let (lo, hi) = inside_columns(s, kj);
                if lo == hi {
                    continue;
                }
                let first = lo * st + kj - s.padding;
                for (oh, src) in row.chunks(wo).enumerate() {
                    let Some(ih) = input_row(s, oh, ki) else {
                        continue;
                    };
                    let dst = &mut plane[ih * s.width + first..];
                    if st == 1 {
                        for (d, v) in dst.iter_mut().zip(&src[lo..hi]) {
                            *d += v;
                        }
                    } else {
                        for (d, v) in dst.iter_mut().step_by(st).zip(&src[lo..hi]) {
                            *d += v;
                        }
                    }
                }
            }
        }
    }
}

/// (patch rows C·k·k, output pixels H'·W', output channels): every product's sizes.
fn sizes(s: &Conv2dShape) -> (usize, usize, usize) {
    (
        patch_rows(s),
        s.out_height() * s.out_width(),
        s.out_channels,
    )
}

/// Forward and backward-data products W·cols and Wᵀ·dY take samples in groups with at least
/// this many output pixels between them (the products' N); measured on anatomy32's 16×16
/// layer, 1024 beat 256 (forward 145 → 170 GFLOP/s, backward-data ~110 → 207).
const GROUP_PIXELS: usize = 1024;
/// The weight gradient dY·colsᵀ groups only below this many pixels per sample: above it the
/// per-sample products, one thread each, were faster (16×16 layer: 145–180 against 97).
const GROUP_PIXELS_WEIGHTS: usize = 256;

/// Layers whose outputs have fewer than `pixels` pixels per sample (anatomy32's 16×16 and
/// smaller layers) take their samples in groups, each sample's [rows, H'·W'] block side by
/// side in one [rows, G·H'·W'] matrix: one GEMM per group instead of a skinny one per sample.
fn group_size(s: &Conv2dShape, pixels: usize) -> Option<usize> {
    let px = s.out_height() * s.out_width();
    (px < pixels).then(|| pixels.div_ceil(px).clamp(1, s.batch.max(1)))
}

/// `samples` holds g blocks of [rows, px], one after the other; lay them side by side in
/// `dst` [rows, g·px].
fn side_by_side(samples: &[f32], rows: usize, px: usize, dst: &mut [f32]) {
    let width = samples.len() / rows;
    for (j, block) in samples.chunks(rows * px).enumerate() {
        for (row, src) in dst.chunks_mut(width).zip(block.chunks(px)) {
            row[j * px..][..px].copy_from_slice(src);
        }
    }
}

/// The inverse of [`side_by_side`]: `src` [rows, g·px] back into g blocks of [rows, px].
fn one_after_another(src: &[f32], rows: usize, px: usize, samples: &mut [f32]) {
    let width = samples.len() / rows;
    for (j, block) in samples.chunks_mut(rows * px).enumerate() {
        for (dst, row) in block.chunks_mut(px).zip(src.chunks(width)) {
            dst.copy_from_slice(&row[j * px..][..px]);
        }
    }
}

fn forward_grouped(s: Conv2dShape, group: usize, x: &[f32], w: &[f32], b: &[f32], y: &mut [f32]) {
    let (r, px, o) = sizes(&s);
    let out_len = s.out_len();
    let mut cols = vec![0.0f32; r * group * px];
    let mut ys = vec![0.0f32; o * group * px];
    for first in (0..s.batch).step_by(group) {
        let g = group.min(s.batch - first);
        let width = g * px;
        im2col_group(&s, x, first, g, &mut cols);
        for (row, &bias) in ys.chunks_mut(width).zip(&b[..o]) {
            row.fill(bias);
        }
        let (w, cols) = (Mat::row_major(w, o, r), Mat::row_major(&cols, r, width));
        matmul(w, cols, &mut ys[..o * width], true);
        one_after_another(
            &ys[..o * width],
            o,
            px,
            &mut y[first * out_len..][..g * out_len],
        );
    }
}

fn backward_data_grouped(s: Conv2dShape, group: usize, dy: &[f32], w: &[f32], dx: &mut [f32]) {
    let (r, px, o) = sizes(&s);
    let (in_len, out_len) = (s.in_len(), s.out_len());
    let mut dys = vec![0.0f32; o * group * px];
    let mut dcols = vec![0.0f32; r * group * px];
    for first in (0..s.batch).step_by(group) {
        let g = group.min(s.batch - first);
        let width = g * px;
        side_by_side(
            &dy[first * out_len..][..g * out_len],
            o,
            px,
            &mut dys[..o * width],
        );
        let (wt, dys) = (Mat::transposed(w, o, r), Mat::row_major(&dys, o, width));
        matmul(wt, dys, &mut dcols[..r * width], false);
        let dcols = &dcols[..r * width];
        dx[first * in_len..][..g * in_len]
            .par_chunks_mut(in_len)
            .enumerate()
            .for_each(|(j, dxn)| col2im(&s, dcols, width, j * px, dxn));
    }
}

pub fn forward(s: Conv2dShape, x: &[f32], w: &[f32], b: &[f32], y: &mut [f32]) {
    if let Some(group) = group_size(&s, GROUP_PIXELS) {
        return forward_grouped(s, group, x, w, b, y);
    }
    let (r, px, o) = sizes(&s);
    let (in_len, out_len) = (s.in_len(), s.out_len());
    y[..s.batch * out_len]
        .par_chunks_mut(out_len)
        .enumerate()
        .for_each_init(
            || vec![0.0; r * px],
            |cols, (n, yn)| {
                im2col(&s, &x[n * in_len..][..in_len], cols);
                for (row, &bias) in yn.chunks_mut(px).zip(&b[..o]) {
                    row.fill(bias);
                }
                matmul(
                    Mat::row_major(w, o, r),
                    Mat::row_major(cols, r, px),
                    yn,
                    true,
                );
            },
        );
}

pub fn backward_data(s: Conv2dShape, dy: &[f32], w: &[f32], dx: &mut [f32]) {
    if let Some(group) = group_size(&s, GROUP_PIXELS) {
        return backward_data_grouped(s, group, dy, w, dx);
    }
    let (r, px, o) = sizes(&s);
    let (in_len, out_len) = (s.in_len(), s.out_len());
    dx[..s.batch * in_len]
        .par_chunks_mut(in_len)
        .enumerate()
        .for_each_init(
            || vec![0.0; r * px],
            |dcols, (n, dxn)| {
                let dyn_ = &dy[n * out_len..][..out_len];
                matmul(
                    Mat::transposed(w, o, r),
                    Mat::row_major(dyn_, o, px),
                    dcols,
                    false,
                );
                col2im(&s, dcols, px, 0, dxn);
            },
        );
}

pub fn backward_params(s: Conv2dShape, dy: &[f32], x: &[f32], dw: &mut [f32], db: &mut [f32]) {
    match group_size(&s, GROUP_PIXELS_WEIGHTS) {
        Some(group) => backward_params_grouped(s, group, dy, x, dw, db),
        None => backward_params_per_sample(s, dy, x, dw, db),
    }
}

/// Large outputs: each sample's product is big enough alone. Each thread sums its samples
/// into its own (dW, db); the partial sums are then added.
fn backward_params_per_sample(
    s: Conv2dShape,
    dy: &[f32],
    x: &[f32],
    dw: &mut [f32],
    db: &mut [f32],
) {
    let (r, px, o) = sizes(&s);
    let (in_len, out_len) = (s.in_len(), s.out_len());
    let (w_sum, b_sum) = (0..s.batch)
        .into_par_iter()
        .fold(
            || (vec![0.0f32; o * r], vec![0.0f32; o], vec![0.0f32; r * px]),
            |(mut gw, mut gb, mut cols), n| {
                im2col(&s, &x[n * in_len..][..in_len], &mut cols);
                let dyn_ = &dy[n * out_len..][..out_len];
                matmul(
                    Mat::row_major(dyn_, o, px),
                    Mat::transposed(&cols, r, px),
                    &mut gw,
                    true,
                );
                for (g, row) in gb.iter_mut().zip(dyn_.chunks(px)) {
                    *g += row.iter().sum::<f32>();
                }
                (gw, gb, cols)
            },
        )
        .map(|(gw, gb, _)| (gw, gb))
        .reduce(
            || (vec![0.0; o * r], vec![0.0; o]),
            |(mut aw, mut ab), (gw, gb)| {
                aw.iter_mut().zip(&gw).for_each(|(a, g)| *a += g);
                ab.iter_mut().zip(&gb).for_each(|(a, g)| *a += g);
                (aw, ab)
            },
        );
    dw[..o * r].copy_from_slice(&w_sum);
    db[..o].copy_from_slice(&b_sum);
}

/// Small outputs: dW = Σ_n dY_n·cols_nᵀ per sample is a product with inner size H'·W' (16 at
/// anatomy32's layer 6) that rewrites all of dW each time; so samples are taken in groups
/// whose patches sit side by side, [R, G·H'·W'] and [O, G·H'·W'], and each group is one
/// product with inner size ≥ [`GROUP_PIXELS_WEIGHTS`] (gemm splits it across threads).
fn backward_params_grouped(
    s: Conv2dShape,
    group: usize,
    dy: &[f32],
    x: &[f32],
    dw: &mut [f32],
    db: &mut [f32],
) {
    let (r, px, o) = sizes(&s);
    let out_len = s.out_len();
    let mut cols = vec![0.0f32; r * group * px];
    let mut dys = vec![0.0f32; o * group * px];
    dw[..o * r].fill(0.0);
    db[..o].fill(0.0);
    for first in (0..s.batch).step_by(group) {
        let g = group.min(s.batch - first);
        let width = g * px;
        im2col_group(&s, x, first, g, &mut cols);
        side_by_side(
            &dy[first * out_len..][..g * out_len],
            o,
            px,
            &mut dys[..o * width],
        );
        matmul(
            Mat::row_major(&dys[..o * width], o, width),
            Mat::transposed(&cols[..r * width], r, width),
            &mut dw[..o * r],
            true,
        );
        for (gb, row) in db[..o].iter_mut().zip(dys.chunks(width)) {
            *gb += row[..width].iter().sum::<f32>();
        }
    }
}
