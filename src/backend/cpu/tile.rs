//! The CPU's own inner product, on AVX-512 or AVX2: the direct convolution's three products
//! and the MLP chain's layers.
//!
//! A tile is [`TILE`] × [`LANES`] sums acc[j][m] = Σ_k a[k][m] · x[k_off[k] + j_off[j]]: the
//! `a` side is packed (LANES values per k), the `x` side is read in place at an offset that
//! is the sum of a per-k and a per-j part and broadcast. All three conv products have that
//! form on a zero-padded tensor (see `conv::direct`), so the patch matrix of im2col is never
//! written; a dense product of a row-major matrix is the case k_off[k] = k, j_off[j] =
//! j·depth ([`rows_times_packed`]).
//!
//! On AVX-512, 6 × 64 sums are 24 vector accumulators: per k, 4 vector loads, 6 broadcasts
//! and 24 FMAs, which keeps both FMA ports busy without running out of load ports. AVX2 has
//! 16 registers of 8 floats, so it runs the same tile as four passes of 6 × 16 sums (12
//! accumulators, 2 loads, 6 broadcasts and 12 FMAs per k). Both add the same fused
//! multiply-adds in the same order (k ascending, one chain per sum), so their results are
//! the same to the bit.

use std::ops::Range;

use rayon::prelude::*;

use super::isa::Isa;

/// Sums per tile along the vector axis (output channels, or input channels for the input
/// gradient).
pub const LANES: usize = 64;
/// Broadcast columns per tile (pixels, or patch rows for the weight gradient).
pub const TILE: usize = 6;

/// Whether the tiles run in this process (`EBM_CPU_TILES`, [`super::isa::tiles`]).
pub fn available() -> bool {
    super::isa::tiles().is_some()
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
    let (isa, depth) = (kind(), k_all.len());
    let rows = out.len() / lanes;
    let mut acc = [[0.0f32; LANES]; TILE];
    for first in (0..rows).step_by(TILE) {
        let count = TILE.min(rows - first);
        let j_off = std::array::from_fn(|j| (first + j.min(count - 1)) * depth);
        for (panel, a) in packed.chunks(depth * LANES).enumerate() {
            let m0 = panel * LANES;
            let width = LANES.min(lanes - m0);
            tile(isa, a, x, k_all, 0..depth, &j_off, &mut acc, false);
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

/// The kind the tiles run on in this process ([`super::isa::tiles`]), for [`tile`].
///
/// Panics if they do not run here (callers check [`available`]).
pub fn kind() -> Isa {
    super::isa::tiles()
        .expect("the register tiles are off (EBM_CPU_TILES) or the CPU lacks AVX-512 and AVX2")
}

/// One tile on `isa` (which this CPU must have, e.g. [`kind`]):
/// `acc[j][m] (+)= Σ_{k ∈ ks} a[(k − ks.start)·LANES + m] · x[k_off[k] + j_off[j]]`, adding
/// to what `acc` holds when `add`.
///
/// Panics if the CPU lacks `isa` or if any read would leave `a` or `x`.
#[allow(clippy::too_many_arguments)]
pub fn tile(
    isa: Isa,
    a: &[f32],
    x: &[f32],
    k_off: &Offsets,
    ks: Range<usize>,
    j_off: &[usize; TILE],
    acc: &mut [[f32; LANES]; TILE],
    add: bool,
) {
    assert!(isa.supported(), "this CPU has no {}", isa.name());
    assert!(ks.end <= k_off.len() && a.len() >= ks.len() * LANES);
    let j_max = j_off.iter().copied().max().unwrap_or(0);
    let last = k_off.max.checked_add(j_max);
    assert!(
        ks.is_empty() || last.is_some_and(|last| last < x.len()),
        "tile reads past x"
    );
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (acc, add); // unreachable: no kind is supported off x86-64
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the kind's features are present (asserted); every a read is below
    // ks.len()·LANES ≤ a.len(), every x read is at k_off[k] + j_off[j] ≤ max + j_max <
    // x.len() (asserted).
    unsafe {
        let (a, x, k_off) = (a.as_ptr(), x.as_ptr(), &k_off.offsets[ks]);
        match isa {
            Isa::Avx512 => avx512::tile(a, x, k_off, j_off, acc, add),
            Isa::Avx2 => avx2::tile(a, x, k_off, j_off, acc, add),
        }
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

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{LANES, TILE};
    use std::arch::x86_64::*;

    /// Lanes per pass: two vectors of 8 floats, so that 6 columns' sums (12 registers), the
    /// two loaded vectors and a broadcast fit the 16 registers.
    const PASS: usize = 16;

    /// # Safety
    /// AVX2 and FMA must be present; `a` must hold `k_off.len()·LANES` floats and `x` every
    /// `k_off[k] + j_off[j]`.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn tile(
        a: *const f32,
        x: *const f32,
        k_off: &[usize],
        j_off: &[usize; TILE],
        acc: &mut [[f32; LANES]; TILE],
        add: bool,
    ) {
        // wrapping: with no k there are no reads, and j_off was not checked.
        let columns: [*const f32; TILE] = std::array::from_fn(|j| x.wrapping_add(j_off[j]));
        for lane0 in (0..LANES).step_by(PASS) {
            let mut sums = [[_mm256_setzero_ps(); 2]; TILE];
            if add {
                for (sums, acc) in sums.iter_mut().zip(acc.iter()) {
                    for (v, sum) in sums.iter_mut().enumerate() {
                        *sum = _mm256_loadu_ps(acc.as_ptr().add(lane0 + 8 * v));
                    }
                }
            }
            for (k, &offset) in k_off.iter().enumerate() {
                let row = a.add(k * LANES + lane0);
                let w = [_mm256_loadu_ps(row), _mm256_loadu_ps(row.add(8))];
                for (column, sums) in columns.iter().zip(&mut sums) {
                    let value = _mm256_broadcast_ss(&*column.add(offset));
                    for (sum, &w) in sums.iter_mut().zip(&w) {
                        *sum = _mm256_fmadd_ps(value, w, *sum);
                    }
                }
            }
            for (acc, sums) in acc.iter_mut().zip(&sums) {
                for (v, &sum) in sums.iter().enumerate() {
                    _mm256_storeu_ps(acc.as_mut_ptr().add(lane0 + 8 * v), sum);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};

    /// Every kind this CPU has gives the same bits as every other, and each is within f32
    /// rounding of a float64 sum, on random depths (blocks started mid-way, partial ones),
    /// scattered offsets, fresh and accumulated tiles.
    #[test]
    fn every_kind_gives_the_same_bits_and_the_float64_sums() {
        let kinds: Vec<Isa> = Isa::ALL.into_iter().filter(|i| i.supported()).collect();
        if kinds.is_empty() {
            eprintln!("no AVX2 or AVX-512 here: no tile to check");
            return;
        }
        if kinds.len() < 2 {
            eprintln!(
                "only {} here: checked against float64 alone",
                kinds[0].name()
            );
        }
        let mut rng = StdRng::seed_from_u64(0x711e);
        for _ in 0..40 {
            let depth = rng.random_range(1..300);
            // Sometimes empty: no reads, and acc is what it held (or zeros).
            let ks = rng.random_range(0..=depth)..depth;
            let len = rng.random_range(1..4000);
            let k_off = Offsets::new((0..depth).map(|_| rng.random_range(0..len)).collect());
            let j_off: [usize; TILE] = std::array::from_fn(|_| rng.random_range(0..len));
            let x: Vec<f32> = (0..len + k_off.max)
                .map(|_| rng.random_range(-1.0..1.0))
                .collect();
            let a: Vec<f32> = (0..ks.len() * LANES)
                .map(|_| rng.random_range(-1.0..1.0))
                .collect();
            let add = rng.random_bool(0.5);
            let start: [[f32; LANES]; TILE] =
                std::array::from_fn(|_| std::array::from_fn(|_| rng.random_range(-1.0..1.0)));
            let mut results = Vec::new();
            for &isa in &kinds {
                let mut acc = [[f32::NAN; LANES]; TILE];
                if add {
                    acc = start;
                }
                tile(isa, &a, &x, &k_off, ks.clone(), &j_off, &mut acc, add);
                for (j, sums) in acc.iter().enumerate() {
                    for (m, &sum) in sums.iter().enumerate() {
                        let mut want = if add { start[j][m] as f64 } else { 0.0 };
                        let mut scale = want.abs();
                        for (i, k) in ks.clone().enumerate() {
                            let term =
                                a[i * LANES + m] as f64 * x[k_off.offsets[k] + j_off[j]] as f64;
                            want += term;
                            scale += term.abs();
                        }
                        // The worst case of a chain of f32 roundings: one ε per term.
                        let bound = (ks.len() + 1) as f64 * f32::EPSILON as f64 * scale;
                        assert!(
                            (sum as f64 - want).abs() <= bound,
                            "{}: acc[{j}][{m}] = {sum}, float64 {want} (depth {depth}, ks {ks:?})",
                            isa.name()
                        );
                    }
                }
                results.push((isa, acc));
            }
            for (isa, acc) in &results[1..] {
                let bits = |acc: &[[f32; LANES]; TILE]| -> Vec<u32> {
                    acc.iter().flatten().map(|v| v.to_bits()).collect()
                };
                assert_eq!(
                    bits(acc),
                    bits(&results[0].1),
                    "{} and {} differ",
                    isa.name(),
                    results[0].0.name()
                );
            }
        }
    }
}
