//! The CPU's own inner product, on AVX-512: the direct convolution's three products and
//! the MLP chain's layers.
//!
//! A tile is [`TILE`] × [`LANES`] sums acc[j][m] = Σ_k a[k][m] · x[k_off[k] + j_off[j]]: the
//! `a` side is packed (LANES values per k, four 16-float vectors), the `x` side is read in
//! place at an offset that is the sum of a per-k and a per-j part and broadcast. All three
//! conv products have that form on a zero-padded tensor (see `conv::direct`), so the patch
//! matrix of im2col is never written; a dense product of a row-major matrix is the case
//! k_off[k] = k, j_off[j] = j·depth ([`rows_times_packed`]).
//!
//! 6 × 64 sums are 24 vector accumulators: per k, 4 vector loads, 6 broadcasts and 24 FMAs,
//! which keeps both FMA ports busy without running out of load ports.

use std::ops::Range;

use rayon::prelude::*;

/// Sums per tile along the vector axis (output channels, or input channels for the input
/// gradient).
pub const LANES: usize = 64;
/// Broadcast columns per tile (pixels, or patch rows for the weight gradient).
pub const TILE: usize = 6;

/// Whether this CPU runs the tiles (AVX-512F); checked once.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static AVX512: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *AVX512.get_or_init(|| std::arch::is_x86_feature_detected!("avx512f"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Floats of the packed operand of `rows × depth` values: whole panels of [`LANES`] rows.
pub fn packed_len(rows: usize, depth: usize) -> usize {
    rows.div_ceil(LANES) * depth * LANES
}

/// Packs the `rows × depth` values `value(m, k)` into `packed` ([`packed_len`] floats,
/// zeros on entry): panels of [`LANES`] rows, each `depth` groups of LANES values, so that a
/// tile reads one group per k. Zeros stay past `rows`.
pub fn pack(
    rows: usize,
    depth: usize,
    value: impl Fn(usize, usize) -> f32 + Sync,
    packed: &mut [f32],
) {
    // In blocks of 16 k: the 16 groups a block writes stay in L1 while m runs over them,
    // and each m reads 16 neighbouring values (a row of W is contiguous in k).
    let fill = |(p, panel): (usize, &mut [f32])| {
        for (block, groups) in panel.chunks_mut(16 * LANES).enumerate() {
            for m in 0..LANES.min(rows - p * LANES) {
                for (i, group) in groups.chunks_mut(LANES).enumerate() {
                    group[m] = value(p * LANES + m, block * 16 + i);
                }
            }
        }
    };
    let packed = &mut packed[..packed_len(rows, depth)];
    if rows * depth >= 1 << 16 {
        packed
            .par_chunks_mut(depth * LANES)
            .enumerate()
            .for_each(fill);
    } else {
        packed.chunks_mut(depth * LANES).enumerate().for_each(fill);
    }
}

/// `out[r][m] = bias[m] + Σ_k x[r·depth + k] · value(m, k)` for the row-major `x` [rows,
/// depth], with value packed by [`pack`] for `lanes` rows; `out` is row-major [rows, lanes].
/// On the calling thread. `k_all` must be the offsets 0..depth.
pub fn rows_times_packed(
    packed: &[f32],
    lanes: usize,
    x: &[f32],
    k_all: &Offsets,
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    let depth = k_all.len();
    let rows = out.len() / lanes;
    let mut acc = [[0.0f32; LANES]; TILE];
    for first in (0..rows).step_by(TILE) {
        let count = TILE.min(rows - first);
        let j_off = std::array::from_fn(|j| (first + j.min(count - 1)) * depth);
        for (panel, a) in packed.chunks(depth * LANES).enumerate() {
            let m0 = panel * LANES;
            let width = LANES.min(lanes - m0);
            tile(a, x, k_all, 0..depth, &j_off, &mut acc, false);
            for (j, sums) in acc[..count].iter().enumerate() {
                let row = &mut out[(first + j) * lanes + m0..][..width];
                match bias {
                    Some(b) => {
                        for ((o, &v), &b) in row.iter_mut().zip(sums).zip(&b[m0..]) {
                            *o = v + b;
                        }
                    }
                    None => row.copy_from_slice(&sums[..width]),
                }
            }
        }
    }
}

/// Per-k offsets into the broadcast side, with their maximum (so a tile checks its bounds in
/// O(TILE), not O(k)).
pub struct Offsets {
    offsets: Vec<usize>,
    max: usize,
}

impl Offsets {
    pub fn new(offsets: Vec<usize>) -> Self {
        let max = offsets.iter().copied().max().unwrap_or(0);
        Offsets { offsets, max }
    }

    pub fn len(&self) -> usize {
        self.offsets.len()
    }
}

/// One tile: `acc[j][m] (+)= Σ_{k ∈ ks} a[(k − ks.start)·LANES + m] · x[k_off[k] + j_off[j]]`,
/// adding to what `acc` holds when `add`.
///
/// Panics if the CPU lacks AVX-512 (callers check [`available`]) or if any read would leave
/// `a` or `x`.
pub fn tile(
    a: &[f32],
    x: &[f32],
    k_off: &Offsets,
    ks: Range<usize>,
    j_off: &[usize; TILE],
    acc: &mut [[f32; LANES]; TILE],
    add: bool,
) {
    assert!(available(), "the CPU's register tiles need AVX-512");
    assert!(ks.end <= k_off.len() && a.len() >= ks.len() * LANES);
    let j_max = j_off.iter().copied().max().unwrap_or(0);
    let last = k_off.max.checked_add(j_max);
    assert!(
        ks.is_empty() || last.is_some_and(|last| last < x.len()),
        "tile reads past x"
    );
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (acc, add); // unreachable: `available` is false off x86-64
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX-512F is present (asserted); every a read is below ks.len()·LANES ≤ a.len(),
    // every x read is at k_off[k] + j_off[j] ≤ max + j_max < x.len() (asserted).
    unsafe {
        avx512::tile(a.as_ptr(), x.as_ptr(), &k_off.offsets[ks], j_off, acc, add);
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{LANES, TILE};
    use std::arch::x86_64::*;

    /// Vectors of 16 floats per row of a tile.
    const VECTORS: usize = LANES / 16;

    /// # Safety
    /// AVX-512F must be present; `a` must hold `k_off.len()·LANES` floats and `x` every
    /// `k_off[k] + j_off[j]`.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn tile(
        a: *const f32,
        x: *const f32,
        k_off: &[usize],
        j_off: &[usize; TILE],
        acc: &mut [[f32; LANES]; TILE],
        add: bool,
    ) {
        let mut sums = [[_mm512_setzero_ps(); VECTORS]; TILE];
        let mut columns = [x; TILE];
        for (j, (column, sums)) in columns.iter_mut().zip(&mut sums).enumerate() {
            // wrapping: with no k there are no reads, and j_off was not checked.
            *column = x.wrapping_add(j_off[j]);
            if add {
                for (v, sum) in sums.iter_mut().enumerate() {
                    *sum = _mm512_loadu_ps(acc[j].as_ptr().add(16 * v));
                }
            }
        }
        for (k, &offset) in k_off.iter().enumerate() {
            let row = a.add(k * LANES);
            let mut w = [_mm512_setzero_ps(); VECTORS];
            for (v, w) in w.iter_mut().enumerate() {
                *w = _mm512_loadu_ps(row.add(16 * v));
            }
            for (column, sums) in columns.iter().zip(&mut sums) {
                let value = _mm512_set1_ps(*column.add(offset));
                for (sum, &w) in sums.iter_mut().zip(&w) {
                    *sum = _mm512_fmadd_ps(value, w, *sum);
                }
            }
        }
        for (acc, sums) in acc.iter_mut().zip(&sums) {
            for (v, &sum) in sums.iter().enumerate() {
                _mm512_storeu_ps(acc.as_mut_ptr().add(16 * v), sum);
            }
        }
    }
}
