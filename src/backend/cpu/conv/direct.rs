//! Direct convolution: the three conv products as [`tile`]s read in place from a zero-padded
//! copy of the input (or of dY), with no patch matrix.
//!
//! In a padded tensor, the input value that tap (c, ki, kj) of output pixel (n, oh, ow) reads
//! sits at `n·sample + oh·s·W' + ow·s` (the pixel's part) `+ c·plane + ki·W' + kj` (the
//! tap's part). A tile sums over one part and broadcasts over the other:
//! - forward: lanes = output channels, k = taps, columns = pixels;
//! - weight gradient: lanes = output channels, k = pixels (dY packed), columns = taps;
//! - input gradient: one product per stride phase (rh, rw) of the input, whose pixels
//!   ih = a·s + rh are reached only by the taps ki ≡ rh + p (mod s), from output row
//!   a + (rh + p − ki)/s: lanes = input channels, k = (output channel, tap), columns = the
//!   phase's pixels in a padded dY. Every dX element is written once, by its phase.
//!
//! im2col writes k²/s² copies of the input per product and the GEMM reads them back from
//! memory; here only the padded copy (one pass) and the packed operand are written.

use std::ops::Range;

use rayon::prelude::*;

use super::scratch::{self, Scratch};
use crate::backend::cpu::tile::{self, Offsets, LANES, TILE};
use crate::backend::Conv2dShape;

/// Pixels (the inner length, for the weight gradient) per parallel task: enough that a
/// task's tiles reuse each packed panel, few enough that 100 samples feed every thread.
const TASK_PIXELS: usize = 256;

/// Whether the tiles pay for a product of shape `s` whose vector axis has `lanes` sums and
/// whose sums have `depth` terms: thin products waste most of a 64-lane tile, short ones
/// spend their time storing it, and an empty batch has nothing to cut into tasks.
pub fn worth_it(s: &Conv2dShape, lanes: usize, depth: usize) -> bool {
    s.batch > 0 && tile::available() && lanes >= LANES / 2 && depth >= 64
}

/// A zero-padded copy of an [n, c, h, w] tensor.
struct Padded {
    data: Scratch,
    width: usize,
    plane: usize,
    sample: usize,
}

/// `src` [n, c, h, w] with `before` zero rows and columns at the top and left and `after` at
/// the bottom and right (rows, columns).
fn pad(
    src: &[f32],
    (n, c, h, w): (usize, usize, usize, usize),
    before: (usize, usize),
    after: (usize, usize),
) -> Padded {
    let (hp, wp) = (h + before.0 + after.0, w + before.1 + after.1);
    let (plane, sample) = (hp * wp, c * hp * wp);
    let mut data = scratch::padded(((n, c, h, w), before, after), n * sample);
    data.par_chunks_mut(sample)
        .zip(src[..n * c * h * w].par_chunks(c * h * w))
        .for_each(|(dst, src)| {
            for (dst, src) in dst.chunks_mut(plane).zip(src.chunks(h * w)) {
                for (i, row) in src.chunks(w).enumerate() {
                    dst[(i + before.0) * wp + before.1..][..w].copy_from_slice(row);
                }
            }
        });
    Padded {
        data,
        width: wp,
        plane,
        sample,
    }
}

/// The packed operand of `rows × depth` values `value(m, k)` ([`tile::pack`]), in a kept
/// buffer.
fn panels(rows: usize, depth: usize, value: impl Fn(usize, usize) -> f32 + Sync) -> Scratch {
    let mut packed = scratch::zeroed(tile::packed_len(rows, depth));
    tile::pack(rows, depth, value, &mut packed);
    packed
}

/// The tap part of the offsets, (c, ki, kj) ↦ c·plane + ki·W' + kj, in the weight's order.
fn tap_offsets(channels: usize, kernel: usize, x: &Padded) -> Vec<usize> {
    let mut offsets = Vec::with_capacity(channels * kernel * kernel);
    for c in 0..channels {
        for ki in 0..kernel {
            for kj in 0..kernel {
                offsets.push(c * x.plane + ki * x.width + kj);
            }
        }
    }
    offsets
}

/// Offsets in `x` of a `rows × cols` grid of positions `step` apart, from the top-left of
/// each sample in `samples`, in sample-row-column order.
fn grid_offsets(
    x: &Padded,
    samples: Range<usize>,
    (rows, cols): (usize, usize),
    step: usize,
) -> Vec<usize> {
    let mut offsets = Vec::with_capacity(samples.len() * rows * cols);
    for n in samples {
        for i in 0..rows {
            for j in 0..cols {
                offsets.push(n * x.sample + (i * x.width + j) * step);
            }
        }
    }
    offsets
}

/// The pixel part of the offsets for the output pixels of samples `samples`, in output order.
fn pixel_offsets(s: &Conv2dShape, x: &Padded, samples: Range<usize>) -> Vec<usize> {
    grid_offsets(x, samples, (s.out_height(), s.out_width()), s.stride)
}

/// Terms per block of the sums: a block's packed panel (KC·LANES floats, 32 KiB) stays in L1
/// while every tile of the task reads it; unblocked, each tile streamed the whole panel from
/// L2 and the FMAs waited on it (170 against 300 GFLOP/s on anatomy32's 32×32 layer).
const KC: usize = 128;

/// The sums of panel `a` over `columns`: `sums[j]` for column j (rounded up to whole
/// tiles; the short last tile repeats its last column), in blocks of [`KC`] terms.
fn sweep(a: &[f32], x: &[f32], k_off: &Offsets, columns: &[usize], sums: &mut Vec<[f32; LANES]>) {
    sums.resize(columns.len().div_ceil(TILE) * TILE, [0.0; LANES]);
    tiles(a, x, k_off, columns, sums, false);
}

/// The tiles of [`sweep`] over `sums` (one per column, rounded up to whole tiles), adding to
/// what they hold when `add`.
fn tiles(
    a: &[f32],
    x: &[f32],
    k_off: &Offsets,
    columns: &[usize],
    sums: &mut [[f32; LANES]],
    add: bool,
) {
    let (isa, depth) = (tile::kind(), k_off.len());
    for k0 in (0..depth).step_by(KC) {
        let ks = k0..(k0 + KC).min(depth);
        for (chunk, acc) in columns.chunks(TILE).zip(sums.chunks_exact_mut(TILE)) {
            let j_off = std::array::from_fn(|j| chunk[j.min(chunk.len() - 1)]);
            let acc = acc.try_into().expect("whole tiles");
            tile::tile(
                isa,
                &a[k0 * LANES..],
                x,
                k_off,
                ks.clone(),
                &j_off,
                acc,
                add || k0 > 0,
            );
        }
    }
}

/// Writes sums out of the tiles' layout: `dst[targets[j] + m·stride] = sums[j][m] + bias[m]`
/// for each lane m of `bias`. In blocks of 16 columns, whose sums stay in L1 while m runs
/// (column by column, each lane's pass read a whole task's sums from L2 again).
fn store(sums: &[[f32; LANES]], targets: &[usize], bias: &[f32], stride: usize, dst: &mut [f32]) {
    for (targets, sums) in targets.chunks(16).zip(sums.chunks(16)) {
        for (m, &bias) in bias.iter().enumerate() {
            let plane = &mut dst[m * stride..];
            for (&t, column) in targets.iter().zip(sums) {
                plane[t] = column[m] + bias;
            }
        }
    }
}

/// Samples per task: about [`TASK_PIXELS`] of `pixels` per sample, with the batch cut into
/// a multiple of the thread count of tasks (anatomy32's 4×4 layer: 8 tasks of 13 samples,
/// not 7 of 16 that leave one of two threads idle for the last).
fn samples_per_task(pixels: usize, batch: usize) -> usize {
    let threads = rayon::current_num_threads().max(1);
    let tasks = batch.div_ceil(TASK_PIXELS.div_ceil(pixels.max(1)));
    batch.div_ceil(tasks.div_ceil(threads) * threads).max(1)
}

pub fn forward(s: Conv2dShape, x: &[f32], w: &[f32], b: &[f32], y: &mut [f32]) {
    let (c, o, k, p) = (s.in_channels, s.out_channels, s.kernel, s.padding);
    let (px, out_len, depth) = (s.out_height() * s.out_width(), s.out_len(), c * k * k);
    let xp = pad(x, (s.batch, c, s.height, s.width), (p, p), (p, p));
    let taps = Offsets::new(tap_offsets(c, k, &xp));
    let a = panels(o, depth, |m, r| w[m * depth + r]);
    let group = samples_per_task(px, s.batch);
    y[..s.batch * out_len]
        .par_chunks_mut(group * out_len)
        .enumerate()
        .for_each(|(task, ys)| {
            let first = task * group;
            let columns = pixel_offsets(&s, &xp, first..first + ys.len() / out_len);
            // Where column j's sum for output channel 0 goes.
            let targets: Vec<usize> = (0..columns.len())
                .map(|j| (j / px) * out_len + j % px)
                .collect();
            let mut sums = Vec::new();
            for (panel, packed) in a.chunks(depth * LANES).enumerate() {
                let m0 = panel * LANES;
                sweep(packed, &xp.data, &taps, &columns, &mut sums);
                let lanes = &b[m0..o.min(m0 + LANES)];
                store(&sums, &targets, lanes, px, &mut ys[m0 * px..]);
            }
        });
}

/// The weight gradient sums over the batch in this many contiguous parts, in parallel, then
/// adds the parts in order: the result does not depend on the thread count or on scheduling.
const WEIGHT_PARTS: usize = 8;

pub fn backward_params(s: Conv2dShape, dy: &[f32], x: &[f32], dw: &mut [f32], db: &mut [f32]) {
    let (c, o, k, p) = (s.in_channels, s.out_channels, s.kernel, s.padding);
    let (px, out_len, depth) = (s.out_height() * s.out_width(), s.out_len(), c * k * k);
    let xp = pad(x, (s.batch, c, s.height, s.width), (p, p), (p, p));
    let taps = tap_offsets(c, k, &xp);
    let group = TASK_PIXELS.div_ceil(px.max(1));
    let part = s.batch.div_ceil(WEIGHT_PARTS).max(1);
    let per_panel = depth.div_ceil(TILE) * TILE;
    // Each part keeps its sums in the tiles' layout, [panel][tap][lane], across all its
    // samples: no store until the parts are added.
    let parts: Vec<(Vec<[f32; LANES]>, Vec<f32>)> = (0..s.batch.div_ceil(part))
        .into_par_iter()
        .map(|i| {
            let mut sums = vec![[0.0f32; LANES]; o.div_ceil(LANES) * per_panel];
            let mut gb = vec![0.0f32; o];
            let part_samples = i * part..((i + 1) * part).min(s.batch);
            for first in part_samples.clone().step_by(group) {
                let samples = first..(first + group).min(part_samples.end);
                let pixels = Offsets::new(pixel_offsets(&s, &xp, samples.clone()));
                let dys = &dy[samples.start * out_len..samples.end * out_len];
                let inner = pixels.len();
                // dYᵀ of these samples: k = (sample, pixel), lanes = output channels.
                let a = panels(o, inner, |m, q| dys[(q / px) * out_len + m * px + q % px]);
                for (packed, sums) in a.chunks(inner * LANES).zip(sums.chunks_mut(per_panel)) {
                    tiles(packed, &xp.data, &pixels, &taps, sums, true);
                }
                for (q, row) in dys.chunks(px).enumerate() {
                    gb[q % o] += row.iter().sum::<f32>();
                }
            }
            (sums, gb)
        })
        .collect();
    let mut parts = parts.into_iter();
    let (mut sums, mut gb) = parts.next().expect("a batch has samples");
    for (more_sums, more_gb) in parts {
        for (a, b) in sums.iter_mut().zip(&more_sums) {
            a.iter_mut().zip(b).for_each(|(a, b)| *a += b);
        }
        gb.iter_mut().zip(&more_gb).for_each(|(a, b)| *a += b);
    }
    for (m, row) in dw[..o * depth].chunks_mut(depth).enumerate() {
        let panel = &sums[(m / LANES) * per_panel..];
        for (g, column) in row.iter_mut().zip(panel) {
            *g = column[m % LANES];
        }
    }
    db[..o].copy_from_slice(&gb);
}

/// Taps of one axis, each (k index, output shift δ).
type Taps = Vec<(usize, isize)>;

/// The taps ki that reach input rows ≡ `r` (mod s), each with the output-row shift
/// δ = (r + p − ki)/s: row a·s + r reads output row a + δ.
fn phase_taps(s: &Conv2dShape, r: usize) -> Taps {
    let (st, reach) = (s.stride as isize, (r + s.padding) as isize);
    (0..s.kernel)
        .filter(|&ki| (reach - ki as isize).rem_euclid(st) == 0)
        .map(|ki| (ki, (reach - ki as isize) / st))
        .collect()
}

/// Rows of phase `r` in a dimension of `len` rows: those ≡ r (mod s).
fn phase_len(len: usize, r: usize, stride: usize) -> usize {
    len.saturating_sub(r).div_ceil(stride)
}

/// One stride phase of the input gradient: its rows and columns mod s, its extent, and its
/// taps with their shifts.
struct Phase {
    r: (usize, usize),
    len: (usize, usize),
    taps: (Taps, Taps),
}

/// Zero rows (columns) dY needs before and after so that every phase's shifted reads stay
/// inside: max −δ, and max (last row + δ) − (H' − 1).
fn dy_padding(phases: &[Phase], out: usize, axis: fn(&Phase) -> (usize, &Taps)) -> (usize, usize) {
    let (mut before, mut after) = (0isize, 0isize);
    for phase in phases {
        let (len, taps) = axis(phase);
        for &(_, shift) in taps {
            before = before.max(-shift);
            after = after.max(len as isize - 1 + shift - (out as isize - 1));
        }
    }
    (before as usize, after as usize)
}

pub fn backward_data(s: Conv2dShape, dy: &[f32], w: &[f32], dx: &mut [f32]) {
    let (c, o, k, st) = (s.in_channels, s.out_channels, s.kernel, s.stride);
    let (h, wd, ho, wo) = (s.height, s.width, s.out_height(), s.out_width());
    let in_len = s.in_len();
    let mut phases = Vec::new();
    let mut silent = false;
    for rh in 0..st {
        for rw in 0..st {
            let len = (phase_len(h, rh, st), phase_len(wd, rw, st));
            let taps = (phase_taps(&s, rh), phase_taps(&s, rw));
            if len.0 * len.1 == 0 {
                continue;
            }
            if taps.0.is_empty() || taps.1.is_empty() {
                silent = true; // no tap reaches these pixels: their gradient is 0
                continue;
            }
            phases.push(Phase {
                r: (rh, rw),
                len,
                taps,
            });
        }
    }
    let rows = dy_padding(&phases, ho, |f| (f.len.0, &f.taps.0));
    let cols = dy_padding(&phases, wo, |f| (f.len.1, &f.taps.1));
    let dyp = pad(dy, (s.batch, o, ho, wo), (rows.0, cols.0), (rows.1, cols.1));
    // Per phase: the packed weights (lanes = input channels, k = (o, ti, tj)) and k offsets.
    let packed: Vec<(Scratch, Offsets)> = phases
        .iter()
        .map(|f| {
            let (th, tw) = (&f.taps.0, &f.taps.1);
            let taps = th.len() * tw.len();
            // k = (oc, ki, kj) over the phase's taps: where it reads dY, and where its
            // weight for input channel 0 is (channel m's is k² further per channel).
            let mut offsets = Vec::with_capacity(o * taps);
            let mut weights = Vec::with_capacity(o * taps);
            for oc in 0..o {
                for &(ki, dh) in th {
                    for &(kj, dw) in tw {
                        let (i, j) = (
                            (dh + rows.0 as isize) as usize,
                            (dw + cols.0 as isize) as usize,
                        );
                        offsets.push(oc * dyp.plane + i * dyp.width + j);
                        weights.push((oc * c * k + ki) * k + kj);
                    }
                }
            }
            let a = panels(c, o * taps, |m, q| w[weights[q] + m * k * k]);
            (a, Offsets::new(offsets))
        })
        .collect();
    let group = samples_per_task(h * wd / (st * st), s.batch);
    dx[..s.batch * in_len]
        .par_chunks_mut(group * in_len)
        .enumerate()
        .for_each(|(task, dxs)| {
            if silent {
                dxs.fill(0.0);
            }
            let first = task * group;
            let samples = first..first + dxs.len() / in_len;
            for (f, (a, offsets)) in phases.iter().zip(&packed) {
                let (na, nb) = f.len;
                let columns = grid_offsets(&dyp, samples.clone(), f.len, 1);
                // Where column j's sums go in channel 0 of dX.
                let targets: Vec<usize> = (0..columns.len())
                    .map(|j| {
                        let (n, q) = (j / (na * nb), j % (na * nb));
                        n * in_len + ((q / nb) * st + f.r.0) * wd + (q % nb) * st + f.r.1
                    })
                    .collect();
                let depth = offsets.len();
                let mut sums = Vec::new();
                let zeros = [0.0; LANES];
                for (panel, packed) in a.chunks(depth * LANES).enumerate() {
                    let m0 = panel * LANES;
                    sweep(packed, &dyp.data, offsets, &columns, &mut sums);
                    let lanes = &zeros[..LANES.min(c - m0)];
                    store(&sums, &targets, lanes, h * wd, &mut dxs[m0 * h * wd..]);
                }
            }
        });
}
