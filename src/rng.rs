//! Philox4x32-10 counter-based random numbers (Random123), bit-identical to
//! `shaders/rng.wgsl` and to `ebm_ref.py`.
//!
//! A counter-based generator has no state to carry between steps or devices: the
//! noise for element `e` of chain `c` at Langevin step `s` is a pure function of
//! `(seed, e / 4, c, s, stream)`, so the CPU and the GPU draw the same numbers in
//! any order, and a resumed run continues exactly (docs/ARCHITECTURE.md, Random numbers).
//!
//! ```
//! use ebm::rng::{self, Stream};
//!
//! // Random123's known answer for the all-zero counter and key.
//! let zero = rng::philox4x32_10([0; 4], [0; 2]);
//! assert_eq!(zero, [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]);
//!
//! // Elements 0..4 of chain 7 at Langevin step 3: block 0, four words, four normals.
//! let words = rng::words(42, 0, 7, 3, Stream::Langevin);
//! assert_eq!(words, rng::philox4x32_10([0, 7, 3, Stream::Langevin as u32], rng::seed_key(42)));
//! let z = rng::normals(words);
//! // fill_normal lays the same numbers out along a whole chain (elements 4..6: block 1).
//! let mut chain = [0.0f32; 6];
//! rng::fill_normal(42, 7, 3, Stream::Langevin, &mut chain);
//! assert_eq!(chain[..4], z);
//!
//! // Uniform values on [lo, hi]: a pure function of the counters, so drawing them again, on
//! // any device and in any order, gives the same values.
//! let (mut a, mut b) = ([0.0f32; 5], [0.0f32; 5]);
//! rng::fill_uniform(1, 0, 0, Stream::Data, -1.0, 1.0, &mut a);
//! rng::fill_uniform(1, 0, 0, Stream::Data, -1.0, 1.0, &mut b);
//! assert_eq!(a, b);
//! assert!(a.iter().all(|v| (-1.0..=1.0).contains(v)));
//! ```

const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

/// Which consumer a random number belongs to; the fourth counter word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Stream {
    /// Langevin noise ξ.
    Langevin = 0,
    /// Uniform values that re-initialise replay-buffer chains.
    ReplayReinit = 1,
    /// Which replay-buffer chains to draw, and whether to re-initialise them.
    ReplayDraw = 2,
    /// Weight initialisation.
    WeightInit = 3,
    /// Data order / toy data generation.
    Data = 4,
    /// The uniforms of the exact samplers' Metropolis–Hastings tests (element index 0).
    Metropolis = 5,
    /// HMC's momenta.
    HmcMomentum = 6,
    /// Generator latents z ~ N(0, I) (cooperative learning, the latent-space prior model).
    Latent = 8,
}

/// The Philox4x32-10 block function: four 32-bit words from a 128-bit counter and a 64-bit key.
pub fn philox4x32_10(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let [mut c0, mut c1, mut c2, mut c3] = counter;
    let [mut k0, mut k1] = key;
    for round in 0..10 {
        let p0 = u64::from(M0) * u64::from(c0);
        let p1 = u64::from(M1) * u64::from(c2);
        let (hi0, lo0) = ((p0 >> 32) as u32, p0 as u32);
        let (hi1, lo1) = ((p1 >> 32) as u32, p1 as u32);
        (c0, c1, c2, c3) = (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0);
        if round < 9 {
            k0 = k0.wrapping_add(W0);
            k1 = k1.wrapping_add(W1);
        }
    }
    [c0, c1, c2, c3]
}

/// The key for a 64-bit seed: (low word, high word).
pub fn seed_key(seed: u64) -> [u32; 2] {
    [seed as u32, (seed >> 32) as u32]
}

/// The four words for `(block, chain, step, stream)`; element `e` uses block `e / 4`, word `e % 4`.
pub fn words(seed: u64, block: u32, chain: u32, step: u32, stream: Stream) -> [u32; 4] {
    philox4x32_10([block, chain, step, stream as u32], seed_key(seed))
}

/// A word as a uniform number: ((w >> 8) + 0.5) · 2⁻²⁴, exact in f64, in (0, 1).
pub fn uniform_f64(word: u32) -> f64 {
    ((word >> 8) as f64 + 0.5) * (1.0 / 16_777_216.0)
}

/// [`uniform_f64`] rounded to f32, in (0, 1]: the top word rounds up to exactly 1.0, as it
/// does in `ebm_ref.py`. The GPU's f32 sum `f32(w >> 8) + 0.5` rounds once, to the same value,
/// so every device agrees bit for bit.
pub fn uniform(word: u32) -> f32 {
    uniform_f64(word) as f32
}

/// Box–Muller on one block: (u0, u1) → (z0, z1), (u2, u3) → (z2, z3).
pub fn normals(w: [u32; 4]) -> [f32; 4] {
    let (z0, z1) = box_muller(uniform_f64(w[0]), uniform_f64(w[1]));
    let (z2, z3) = box_muller(uniform_f64(w[2]), uniform_f64(w[3]));
    [z0, z1, z2, z3]
}

/// In f64 and then rounded, as `ebm_ref.py` does; the GPU twin works in f32 and agrees to
/// float tolerance.
fn box_muller(ua: f64, ub: f64) -> (f32, f32) {
    let r = (-2.0 * ua.ln()).sqrt();
    let theta = std::f64::consts::TAU * ub;
    ((r * theta.cos()) as f32, (r * theta.sin()) as f32)
}

/// Standard normals for elements `0..out.len()` of one chain at one step.
pub fn fill_normal(seed: u64, chain: u32, step: u32, stream: Stream, out: &mut [f32]) {
    for (block, chunk) in out.chunks_mut(4).enumerate() {
        let z = normals(words(seed, block as u32, chain, step, stream));
        chunk.copy_from_slice(&z[..chunk.len()]);
    }
}

/// Uniform values in [lo, hi] for elements `0..out.len()` of one chain at one step,
/// computed in f64 and rounded, as `ebm_ref.py` does.
pub fn fill_uniform(
    seed: u64,
    chain: u32,
    step: u32,
    stream: Stream,
    lo: f32,
    hi: f32,
    out: &mut [f32],
) {
    for (block, chunk) in out.chunks_mut(4).enumerate() {
        let w = words(seed, block as u32, chain, step, stream);
        for (o, word) in chunk.iter_mut().zip(w) {
            *o = (f64::from(lo) + (f64::from(hi) - f64::from(lo)) * uniform_f64(word)) as f32;
        }
    }
}

/// Which replay-buffer chain draw `u` picks out of `capacity`: min(⌊u·N⌋, N−1), in f32.
pub fn index_from_uniform(u: f32, capacity: usize) -> usize {
    ((u * capacity as f32) as usize).min(capacity - 1)
}

/// The `j`-th uniform of a counter row `(j / 4, chain, step, stream)`, lane `j % 4`.
pub fn uniform_at(seed: u64, j: u32, chain: u32, step: u32, stream: Stream) -> f32 {
    uniform(words(seed, j / 4, chain, step, stream)[(j % 4) as usize])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Random123's known-answer vectors for philox4x32_10.
    #[test]
    fn known_answers() {
        let cases = [
            (
                [0, 0, 0, 0],
                [0, 0],
                [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8],
            ),
            (
                [u32::MAX; 4],
                [u32::MAX; 2],
                [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD],
            ),
            (
                [0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344],
                [0xA4093822, 0x299F31D0],
                [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1],
            ),
        ];
        for (counter, key, want) in cases {
            assert_eq!(philox4x32_10(counter, key), want, "counter {counter:08x?}");
        }
    }

    #[test]
    fn uniform_range() {
        assert!(uniform(0) > 0.0);
        assert!(uniform_f64(u32::MAX) < 1.0);
        assert_eq!(uniform(u32::MAX), 1.0, "f32 rounding, as in ebm_ref.py");
        // The GPU computes f32(w >> 8) + 0.5 in f32: the same single rounding.
        for w in [0u32, 255, 1 << 31, 0xFFFF_FF00, u32::MAX, 0x8000_0100] {
            let gpu_way = ((w >> 8) as f32 + 0.5) * (1.0 / 16_777_216.0);
            assert_eq!(uniform(w), gpu_way, "word {w:08x}");
        }
    }

    #[test]
    fn normal_moments() {
        let mut z = vec![0.0f32; 1 << 16];
        fill_normal(1234, 0, 0, Stream::Langevin, &mut z);
        let n = z.len() as f64;
        let mean = z.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = z.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        assert!(mean.abs() < 0.02, "mean {mean}");
        assert!((var.sqrt() - 1.0).abs() < 0.02, "std {}", var.sqrt());
    }
}
