//! Activations over slices, written so that LLVM vectorises them: SiLU's exponential is a
//! branch-free polynomial instead of a libm call, and each loop is compiled three times
//! (AVX-512, AVX2, baseline) with the widest one the CPU has picked at run time.
//!
//! A profile of toy2d sampling before this module: 24% of the time in scalar `expf`, another
//! 31% in the elementwise loops around it. Every path computes the same values bit for bit
//! (plain multiplies and adds, no FMA contraction), so results do not depend on the CPU.

use rayon::prelude::*;

use crate::backend::Activation;

/// Slices at least this long are split across threads.
const PAR_MIN: usize = 1 << 15;
/// Work per rayon task.
const PAR_CHUNK: usize = 1 << 13;

/// e^x to about 2 ulp for x in [−87.3, 88.3] (clamped outside): Cody–Waite reduction
/// x = n·ln2 + r, |r| ≤ ln2/2, then Cephes' degree-6 polynomial for e^r and 2^n from the bits.
#[inline(always)]
fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // Adding and subtracting 1.5·2²³ rounds to the nearest integer in f32 arithmetic.
    const ROUND: f32 = 12_582_912.0;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.3, 88.3);
    let t = x * LOG2E + ROUND;
    let n = t - ROUND;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_2e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 0.166_666_65;
    p = p * r + 0.5;
    let e = p * (r * r) + r + 1.0;
    // t's low mantissa bits hold n + 2²²: 2ⁿ from integer ops alone (an `as i32` cast
    // would not vectorise: Rust's saturating conversion is scalar code).
    let biased = t.to_bits().wrapping_sub(ROUND.to_bits()).wrapping_add(127);
    e * f32::from_bits(biased << 23)
}

/// σ(x) = 1 / (1 + e^−x).
#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// ln(1 + t) for t in [0, 1]: the series where 1 + t would round away most of t's digits,
/// `ln` elsewhere (where t ≥ 0.1 its relative error stays below ten ulp). The twin of
/// `log1p_unit` in activation.wgsl.
#[inline(always)]
fn log1p_unit(t: f32) -> f32 {
    if t < 0.1 {
        // t − t²/2 + t³/3 − … to t⁸: the first term left out is below 1e-9 relative.
        let mut p = -0.125_f32;
        p = p * t + 0.142_857_15;
        p = p * t - 0.166_666_67;
        p = p * t + 0.2;
        p = p * t - 0.25;
        p = p * t + 0.333_333_34;
        p = p * t - 0.5;
        p = p * t + 1.0;
        p * t
    } else {
        (1.0 + t).ln()
    }
}

/// Below this |x| tanh is its odd Taylor series: (1 − e)/(1 + e) with e = e^(−2|x|) would
/// cancel (relative error ε/(2|x|)); above it the cancellation costs at most ~1.2 ulp.
const TANH_SERIES: f32 = 0.3;

/// tanh(x) without overflow: the series near 0, else ±(1 − e)/(1 + e) with e = e^(−2|x|) ≤ 1.
#[inline(always)]
fn tanh(x: f32) -> f32 {
    let a = x.abs();
    if a < TANH_SERIES {
        // x − x³/3 + 2x⁵/15 − 17x⁷/315 + 62x⁹/2835; the next term is < 2e-8 relative.
        let x2 = x * x;
        let mut p = 0.021_869_488_f32;
        p = p * x2 - 0.053_968_254;
        p = p * x2 + 0.133_333_34;
        p = p * x2 - 0.333_333_34;
        p * x2 * x + x
    } else {
        let e = exp(-2.0 * a);
        let t = (1.0 - e) / (1.0 + e);
        if x < 0.0 {
            -t
        } else {
            t
        }
    }
}

/// tanh'(x) = 1 − tanh²(x); past the series range as 4e/(1 + e)² with e = e^(−2|x|), which
/// keeps its relative accuracy where 1 − tanh² would round to 0.
#[inline(always)]
fn tanh_derivative(x: f32) -> f32 {
    let a = x.abs();
    if a < TANH_SERIES {
        let t = tanh(x);
        1.0 - t * t
    } else {
        let e = exp(-2.0 * a);
        let d = 1.0 + e;
        4.0 * e / (d * d)
    }
}

/// σ(x) from e = e^(−|x|) ≤ 1: 1/(1 + e) for x ≥ 0, e/(1 + e) below, so neither side
/// overflows or loses its tail (SiLU keeps its own form above, unchanged).
#[inline(always)]
fn stable_sigmoid(x: f32) -> f32 {
    let e = exp(-x.abs());
    let r = 1.0 / (1.0 + e);
    if x >= 0.0 {
        r
    } else {
        e * r
    }
}

/// σ'(x) = σ(x)·σ(−x) = e/(1 + e)² with e = e^(−|x|): no 1 − σ to cancel.
#[inline(always)]
fn sigmoid_derivative(x: f32) -> f32 {
    let e = exp(-x.abs());
    let r = 1.0 / (1.0 + e);
    e * r * r
}

/// PyTorch's softplus threshold (β = 1): above it the result is x itself.
const SOFTPLUS_THRESHOLD: f32 = 20.0;

/// softplus(x) = max(x, 0) + ln(1 + e^(−|x|)), x itself above the threshold.
#[inline(always)]
fn softplus(x: f32) -> f32 {
    if x > SOFTPLUS_THRESHOLD {
        x
    } else {
        x.max(0.0) + log1p_unit(exp(-x.abs()))
    }
}

#[inline(always)]
fn forward_one(act: Activation, x: f32) -> f32 {
    match act {
        Activation::Relu => x.max(0.0),
        Activation::LeakyRelu(slope) => {
            if x > 0.0 {
                x
            } else {
                slope * x
            }
        }
        Activation::Silu => x * sigmoid(x),
        Activation::Tanh => tanh(x),
        Activation::Sigmoid => stable_sigmoid(x),
        Activation::Softplus => softplus(x),
        Activation::Square => x * x,
    }
}

#[inline(always)]
fn derivative_one(act: Activation, x: f32) -> f32 {
    match act {
        Activation::Relu => {
            if x > 0.0 {
                1.0
            } else {
                0.0
            }
        }
        Activation::LeakyRelu(slope) => {
            if x > 0.0 {
                1.0
            } else {
                slope
            }
        }
        Activation::Silu => {
            let s = sigmoid(x);
            s * (1.0 + x * (1.0 - s))
        }
        Activation::Tanh => tanh_derivative(x),
        Activation::Sigmoid => sigmoid_derivative(x),
        Activation::Softplus => {
            if x > SOFTPLUS_THRESHOLD {
                1.0
            } else {
                stable_sigmoid(x)
            }
        }
        Activation::Square => 2.0 * x,
    }
}

/// The loop bodies; `multiversion!` compiles each once per instruction set. The match sits
/// outside the loops so that each loop is straight-line code LLVM can vectorise.
#[inline(always)]
fn forward_loop(act: Activation, x: &[f32], y: &mut [f32]) {
    let pairs = y.iter_mut().zip(x);
    match act {
        Activation::Relu => pairs.for_each(|(y, &x)| *y = forward_one(Activation::Relu, x)),
        Activation::LeakyRelu(s) => {
            pairs.for_each(|(y, &x)| *y = forward_one(Activation::LeakyRelu(s), x))
        }
        Activation::Silu => pairs.for_each(|(y, &x)| *y = forward_one(Activation::Silu, x)),
        Activation::Tanh => pairs.for_each(|(y, &x)| *y = forward_one(Activation::Tanh, x)),
        Activation::Sigmoid => pairs.for_each(|(y, &x)| *y = forward_one(Activation::Sigmoid, x)),
        Activation::Softplus => pairs.for_each(|(y, &x)| *y = forward_one(Activation::Softplus, x)),
        Activation::Square => pairs.for_each(|(y, &x)| *y = forward_one(Activation::Square, x)),
    }
}

#[inline(always)]
fn backward_loop(act: Activation, x: &[f32], dy: &[f32], dx: &mut [f32]) {
    let triples = dx.iter_mut().zip(x).zip(dy);
    match act {
        Activation::Relu => {
            triples.for_each(|((dx, &x), &g)| *dx = derivative_one(Activation::Relu, x) * g)
        }
        Activation::LeakyRelu(s) => {
            triples.for_each(|((dx, &x), &g)| *dx = derivative_one(Activation::LeakyRelu(s), x) * g)
        }
        Activation::Silu => {
            triples.for_each(|((dx, &x), &g)| *dx = derivative_one(Activation::Silu, x) * g)
        }
        Activation::Tanh => {
            triples.for_each(|((dx, &x), &g)| *dx = derivative_one(Activation::Tanh, x) * g)
        }
        Activation::Sigmoid => {
            triples.for_each(|((dx, &x), &g)| *dx = derivative_one(Activation::Sigmoid, x) * g)
        }
        Activation::Softplus => {
            triples.for_each(|((dx, &x), &g)| *dx = derivative_one(Activation::Softplus, x) * g)
        }
        Activation::Square => {
            triples.for_each(|((dx, &x), &g)| *dx = derivative_one(Activation::Square, x) * g)
        }
    }
}

/// `dy[i] *= act'(x[i])`: the fused backward step of the MLP chain, in place.
#[inline(always)]
fn scale_by_derivative_loop(act: Activation, x: &[f32], dy: &mut [f32]) {
    let pairs = dy.iter_mut().zip(x);
    match act {
        Activation::Relu => pairs.for_each(|(g, &x)| *g *= derivative_one(Activation::Relu, x)),
        Activation::LeakyRelu(s) => {
            pairs.for_each(|(g, &x)| *g *= derivative_one(Activation::LeakyRelu(s), x))
        }
        Activation::Silu => pairs.for_each(|(g, &x)| *g *= derivative_one(Activation::Silu, x)),
        Activation::Tanh => pairs.for_each(|(g, &x)| *g *= derivative_one(Activation::Tanh, x)),
        Activation::Sigmoid => {
            pairs.for_each(|(g, &x)| *g *= derivative_one(Activation::Sigmoid, x))
        }
        Activation::Softplus => {
            pairs.for_each(|(g, &x)| *g *= derivative_one(Activation::Softplus, x))
        }
        Activation::Square => pairs.for_each(|(g, &x)| *g *= derivative_one(Activation::Square, x)),
    }
}

/// SiLU that also keeps σ(x) in `s`, for [`scale_by_silu_derivative`]: the MLP chain's
/// backward pass then needs no second exponential (recomputing σ there was 14 % of toy2d
/// sampling). The same arithmetic as `forward_one` and `derivative_one`, bit for bit.
#[inline(always)]
fn silu_keeping_sigmoid_loop(x: &[f32], y: &mut [f32], s: &mut [f32]) {
    for ((y, s), &x) in y.iter_mut().zip(s.iter_mut()).zip(x) {
        let sigma = sigmoid(x);
        *s = sigma;
        *y = x * sigma;
    }
}

/// `g[i] *= silu'(x[i])` from the σ(x) that [`silu_keeping_sigmoid`] kept.
#[inline(always)]
fn scale_by_silu_derivative_loop(x: &[f32], s: &[f32], g: &mut [f32]) {
    for ((g, &x), &s) in g.iter_mut().zip(x).zip(s) {
        *g *= s * (1.0 + x * (1.0 - s));
    }
}

/// Defines `$name` that runs `$body` compiled for the widest instruction set available
/// (AVX2 at most when `EBM_CPU_TILES=avx2` stands for a CPU without AVX-512).
macro_rules! multiversion {
    ($name:ident, $body:ident, ($($arg:ident: $ty:ty),*)) => {
        pub fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                unsafe fn avx512($($arg: $ty),*) {
                    $body($($arg),*)
                }
                #[target_feature(enable = "avx2")]
                unsafe fn avx2($($arg: $ty),*) {
                    $body($($arg),*)
                }
                if super::isa::avx512_allowed() {
                    // SAFETY: the CPU has AVX-512F (avx512_allowed checks).
                    return unsafe { avx512($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU has AVX2 (checked just above).
                    return unsafe { avx2($($arg),*) };
                }
            }
            $body($($arg),*)
        }
    };
}

multiversion!(forward_serial, forward_loop, (act: Activation, x: &[f32], y: &mut [f32]));
multiversion!(backward_serial, backward_loop, (act: Activation, x: &[f32], dy: &[f32], dx: &mut [f32]));
multiversion!(scale_by_derivative, scale_by_derivative_loop, (act: Activation, x: &[f32], dy: &mut [f32]));
multiversion!(silu_keeping_sigmoid, silu_keeping_sigmoid_loop, (x: &[f32], y: &mut [f32], s: &mut [f32]));
multiversion!(scale_by_silu_derivative, scale_by_silu_derivative_loop, (x: &[f32], s: &[f32], g: &mut [f32]));

/// `y = act(x)`, multithreaded for long slices.
pub fn forward(act: Activation, x: &[f32], y: &mut [f32]) {
    if x.len() >= PAR_MIN {
        y.par_chunks_mut(PAR_CHUNK)
            .zip(x.par_chunks(PAR_CHUNK))
            .for_each(|(y, x)| forward_serial(act, x, y));
    } else {
        forward_serial(act, x, y);
    }
}

/// `dx = act'(x)·dy`, multithreaded for long slices.
pub fn backward(act: Activation, x: &[f32], dy: &[f32], dx: &mut [f32]) {
    if x.len() >= PAR_MIN {
        dx.par_chunks_mut(PAR_CHUNK)
            .zip(x.par_chunks(PAR_CHUNK).zip(dy.par_chunks(PAR_CHUNK)))
            .for_each(|(dx, (x, dy))| backward_serial(act, x, dy, dx));
    } else {
        backward_serial(act, x, dy, dx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_libm() {
        let mut worst = 0.0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let want = (x as f64).exp();
            let rel = ((exp(x) as f64 - want) / want).abs();
            worst = worst.max(rel);
            x += 0.0137;
        }
        assert!(worst < 3e-7, "worst relative error {worst}");
        assert!(exp(-1000.0) > 0.0 && exp(1000.0).is_finite());
        assert!(sigmoid(-1000.0) >= 0.0 && sigmoid(1000.0) == 1.0);
    }

    /// The new activations against libm in f64 over [−30, 30] (both sides of the series and
    /// threshold switches), relative to each value: tails must keep their digits. Square and its
    /// derivative are one rounding of the exact value (≤ 6e-8 relative).
    #[test]
    fn tanh_sigmoid_softplus_square_match_libm() {
        type Case = (&'static str, fn(f32) -> f32, fn(f64) -> f64);
        let cases: [Case; 8] = [
            ("tanh", tanh, f64::tanh),
            ("tanh'", tanh_derivative, |x| 1.0 / x.cosh().powi(2)),
            ("sigmoid", stable_sigmoid, |x| 1.0 / (1.0 + (-x).exp())),
            ("sigmoid'", sigmoid_derivative, |x| {
                let s = 1.0 / (1.0 + (-x).exp());
                s * (1.0 / (1.0 + x.exp()))
            }),
            ("softplus", softplus, |x| {
                if x > 20.0 {
                    x
                } else {
                    x.exp().ln_1p()
                }
            }),
            (
                "softplus'",
                |x| derivative_one(Activation::Softplus, x),
                |x| {
                    if x > 20.0 {
                        1.0
                    } else {
                        1.0 / (1.0 + (-x).exp())
                    }
                },
            ),
            ("square", |x| forward_one(Activation::Square, x), |x| x * x),
            (
                "square'",
                |x| derivative_one(Activation::Square, x),
                |x| 2.0 * x,
            ),
        ];
        for (name, f, want) in cases {
            let mut worst = 0.0f64;
            let mut x = -30.0f32;
            while x < 30.0 {
                let w = want(x as f64);
                if w != 0.0 {
                    worst = worst.max(((f(x) as f64 - w) / w).abs());
                }
                x += 0.00731;
            }
            assert!(worst < 2e-6, "{name}: worst relative error {worst:.2e}");
        }
    }

    #[test]
    fn vectorised_paths_agree_with_the_scalar_formula() {
        let x: Vec<f32> = (0..1000).map(|i| (i as f32 - 500.0) * 0.05).collect();
        for act in [
            Activation::Relu,
            Activation::LeakyRelu(0.2),
            Activation::Silu,
            Activation::Tanh,
            Activation::Sigmoid,
            Activation::Softplus,
            Activation::Square,
        ] {
            let mut y = vec![0.0; x.len()];
            forward(act, &x, &mut y);
            let dy: Vec<f32> = x.iter().map(|v| v.sin()).collect();
            let mut dx = vec![0.0; x.len()];
            backward(act, &x, &dy, &mut dx);
            for i in 0..x.len() {
                assert_eq!(y[i], forward_one(act, x[i]));
                assert_eq!(dx[i], derivative_one(act, x[i]) * dy[i]);
            }
        }
        // SiLU keeping σ for the chain's backward pass: the same values, bit for bit.
        let (mut y, mut s) = (vec![0.0; x.len()], vec![0.0; x.len()]);
        silu_keeping_sigmoid(&x, &mut y, &mut s);
        let mut g: Vec<f32> = x.iter().map(|v| v.cos()).collect();
        let g0 = g.clone();
        scale_by_silu_derivative(&x, &s, &mut g);
        for i in 0..x.len() {
            assert_eq!(y[i], forward_one(Activation::Silu, x[i]));
            assert_eq!(g[i], g0[i] * derivative_one(Activation::Silu, x[i]));
        }
    }
}
