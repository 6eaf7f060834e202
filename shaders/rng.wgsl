// Philox4x32-10 (Random123) and the uniform / normal maps (docs/ARCHITECTURE.md, Random numbers).
//
// Bit-identical to src/rng.rs: the same counter (element / 4, chain, step, stream) and key
// (seed low word, seed high word) give the same four u32 words on every device. This file is
// prepended to the shaders that draw random numbers (langevin, chains, rng_words), so it holds
// functions only: no bindings, no entry points.

const PHILOX_M0: u32 = 0xD2511F53u;
const PHILOX_M1: u32 = 0xCD9E8D57u;
const PHILOX_W0: u32 = 0x9E3779B9u;
const PHILOX_W1: u32 = 0xBB67AE85u;

// The 64-bit product a·b as (high word, low word). WGSL has no 64-bit integers, so the high
// word is assembled from four 16×16-bit partial products, none of which can overflow.
fn mulhilo(a: u32, b: u32) -> vec2<u32> {
    let al = a & 0xFFFFu;
    let ah = a >> 16u;
    let bl = b & 0xFFFFu;
    let bh = b >> 16u;
    let ll = al * bl;
    let lh = al * bh;
    let hl = ah * bl;
    let hh = ah * bh;
    // Carries out of the low 32 bits: at most 3·(2^16 − 1) + 2^16, so this sum fits a u32.
    let mid = (ll >> 16u) + (lh & 0xFFFFu) + (hl & 0xFFFFu);
    let hi = hh + (lh >> 16u) + (hl >> 16u) + (mid >> 16u);
    return vec2<u32>(hi, a * b); // u32 multiplication wraps: the low word
}

// Ten rounds of Philox4x32; the key is bumped by the Weyl constants between rounds.
fn philox4x32_10(counter: vec4<u32>, key: vec2<u32>) -> vec4<u32> {
    var c = counter;
    var k = key;
    for (var round = 0u; round < 10u; round++) {
        let p0 = mulhilo(PHILOX_M0, c.x);
        let p1 = mulhilo(PHILOX_M1, c.z);
        c = vec4<u32>(p1.x ^ c.y ^ k.x, p1.y, p0.x ^ c.w ^ k.y, p0.y);
        k = k + vec2<u32>(PHILOX_W0, PHILOX_W1);
    }
    return c;
}

// A word as a uniform number in (0, 1]: ((w >> 8) + 0.5)·2⁻²⁴. f32(w >> 8) is exact (24 bits),
// the + 0.5 rounds once and the power-of-two scale is exact, so this equals rng::uniform.
fn uniform_from_word(w: u32) -> f32 {
    return (f32(w >> 8u) + 0.5) * (1.0 / 16777216.0);
}

const TAU: f32 = 6.283185307179586;

// Box–Muller on one block: (u0, u1) → (z0, z1), (u2, u3) → (z2, z3), in f32.
// cos(2π·u) = −cos(2π·(u − ½)): the shifted angle lies in [−π, π], where GPU sin/cos are
// accurate, and u − ½ is exact in f32; the result is the same normal as rng::normals.
fn box_muller_pair(ua: f32, ub: f32) -> vec2<f32> {
    let r = sqrt(-2.0 * log(ua));
    let theta = TAU * (ub - 0.5);
    return vec2<f32>(-r * cos(theta), -r * sin(theta));
}

// Four standard normals from the block's four words.
fn normals_from_words(w: vec4<u32>) -> vec4<f32> {
    let a = box_muller_pair(uniform_from_word(w.x), uniform_from_word(w.y));
    let b = box_muller_pair(uniform_from_word(w.z), uniform_from_word(w.w));
    return vec4<f32>(a, b);
}

// NaN by its bits (all-ones exponent, non-zero mantissa): a compiler may assume floats are
// finite and fold `v != v` away. For the Metropolis tests that this file's users run.
fn is_nan(v: f32) -> bool {
    let b = bitcast<u32>(v);
    return (b & 0x7f800000u) == 0x7f800000u && (b & 0x007fffffu) != 0u;
}

// lo ≤ v ≤ hi, false for NaN (by its bits, as is_nan).
fn in_box(v: f32, lo: f32, hi: f32) -> bool {
    return !is_nan(v) && v >= lo && v <= hi;
}
