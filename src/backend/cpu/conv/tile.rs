//! The direct convolution's one inner product, on AVX-512.
//!
//! A tile is [`TILE`] × [`LANES`] sums acc[j][m] = Σ_k a[k][m] · x[k_off[k] + j_off[j]]: the
//! `a` side is packed (LANES values per k, four 16-float vectors), the `x` side is read in
//! place at an offset that is the sum of a per-k and a per-j part and broadcast. All three
//! conv products have that form on a zero-padded tensor (see `direct`), so the patch matrix of
//! im2col is never written. 6 × 64 sums are 24 vector accumulators: per k, 4 vector loads, 6
//! broadcasts and 24 FMAs, which keeps both FMA ports busy without running out of load ports.

use std::ops::Range;

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
    assert!(available(), "the direct conv tiles need AVX-512");
    assert!(ks.end <= k_off.len() && a.len() >= ks.len() * LANES);
    let j_max = j_off.iter().copied().max().unwrap_or(0);
    assert!(
        ks.is_empty() || k_off.max + j_max < x.len(),
        "tile reads past x"
    );
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
            *column = x.add(j_off[j]);
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
