//! Both backends against float64 finite differences of an independent f64 reference.
//!
//! `gpu_kernels.rs` proves that the GPU computes what the CPU computes; this file proves that
//! what they both compute is *right*. Every hand-written backward pass — the linear layer
//! (to its input, weight and bias), the 2D convolution (the same three, against a direct f64
//! convolution with zero padding and stride, no im2col), average pooling, each activation,
//! the CD loss, and their composition through a whole [`EnergyNet`] both to the input (∇ₓE,
//! what Langevin sampling uses) and to every parameter tensor (what training uses) — is
//! compared with central differences of a plain f64 re-implementation written here from the
//! formulas, not from the backend code.
//! The fused MLP chain (K Langevin steps of a whole net in one op) is checked against the
//! same K steps in f64, ∇ₓE by central differences.
//! The updates that are not gradients (Langevin with per-element clipping and clamping,
//! `sum_squares`, Adam with global-norm clipping) are compared with their formulas evaluated
//! in f64 on the same inputs and the same Philox noise.
//!
//! Why finite differences in f64: in f32 a central difference (f(x+h) − f(x−h)) / 2h carries
//! a rounding error of about ε₃₂·|f|/h ≈ 1e-7·|f|/h, which for any usable h is as large as
//! the bugs worth catching. In f64, with h = 1e-6·max(1, |x|), rounding is ≈ 1e-16·|f|/h ≈
//! 1e-10·|f| and truncation ≈ h²·|f'''| ≈ 1e-12, so the reference is exact far below the f32
//! noise of the backends and any disagreement is the backend's. The backends are fed exactly
//! the f32 values the reference widens, so the only difference left is their f32 arithmetic.
//! Kinks are kept away from: pointwise inputs have |x| ≥ 1e-2, and the network checks redraw
//! their data until every ReLU / leaky-ReLU input lies at least [`KINK_MARGIN`] from 0,
//! farther than any perturbation (≤ 1e-5) or f32-vs-f64 disagreement can move it.
//!
//! How results are compared: ‖got − want‖₂ ≤ tol·‖scale‖₂, where `scale` is, element by
//! element, the magnitude of the terms the result is made of (Σ|terms|, computed in f64 from
//! the same data). Where nothing cancels, scale = |want| and this is the plain relative error
//! in the 2-norm. Where terms cancel — y = x·w + b ≈ 0 in a 1×1 layer, SiLU's derivative near
//! its root, the CD loss's (±1 + 2αE) and its difference of means — f32 can promise no better
//! than ε₃₂·Σ|terms| (the classical forward-error bound of a sum), and a plain relative error
//! of a one-element vector would fail by chance on a correct backend. Whole-net energies and
//! ∇ₓE, whose cancellations lie deep inside the net, are instead compared as one vector over
//! 39 independent samples (batches 1, 5 and 33 together). A wrong index, sign, transposition
//! or factor is an O(1) error under either measure; each check was seen to fail when its f64
//! reference was broken (a sign, a slope, SiLU × 1.001, Adam's ε inside the square root, the
//! clipping coefficient's 1e-6, the Philox chain index).
//!
//! Tolerances and why (f32 backend vs f64 reference):
//! - [`TOL_POINTWISE`] 1e-5 — activations, average pooling, CD-loss d_energy, Langevin,
//!   sum_squares, Adam: a few f32 roundings per element (≈ 6e-8 each) or sums whose
//!   magnitude is the scale.
//! - [`TOL_LINEAR`] 1e-4 — linear and conv2d forward and backward, whole-net energies and
//!   ∇ₓE: f32 dot products of up to a few hundred terms, chained through several layers.
//! - [`TOL_PARAM_GRAD`] 1e-3 — CD-loss parameter gradients of a whole net: per-row backward
//!   chains through every layer, then a sum over 2B rows with d_energy of both signs;
//!   compared on about 20 random entries per tensor.
//!
//! Shapes and data are fresh each run from `test_seed()` (set `EBM_TEST_SEED` to replay; it
//! is in every failure message), with sizes that are not multiples of the GPU's 64×64
//! tiles (conv2d, and the linear layers, which run on the same products) or 256-wide
//! workgroups. Each check is one generic function run by a CPU test and a GPU
//! test; the GPU tests use any adapter, lavapipe included, and skip without one unless `CI`
//! is set.

#[path = "common/gpu.rs"]
mod gpu_common;

use ebm::backend::{
    Activation, Backend, ChannelShape, Conv2dShape, CpuBackend, LinearShape, PoolShape,
    UpsampleShape,
};
use ebm::nn::{EnergyNet, LayerSpec, Spec};
use ebm::rng::{self, Stream};
use ebm::sampler::{LangevinUpdate, MlpChain};
use ebm::train::{stat, AdamUpdate, CdLoss};
use gpu_common::test_seed;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// Elementwise results and short sums (see the module documentation).
const TOL_POINTWISE: f64 = 1e-5;
/// Dot products: linear layers, whole-net energies and ∇ₓE.
const TOL_LINEAR: f64 = 1e-4;
/// CD-loss parameter gradients of a whole net.
const TOL_PARAM_GRAD: f64 = 1e-3;
/// Smallest |input| of a ReLU / leaky ReLU that the network checks accept.
const KINK_MARGIN: f64 = 3e-5;
/// Parameter entries per tensor checked by finite differences in the CD-loss check.
const ENTRIES_PER_TENSOR: usize = 20;

// ---------------------------------------------------------------------------------------------
// Helpers

/// Declares the CPU and the GPU test of one generic check.
macro_rules! on_both_backends {
    ($check:ident, $cpu:ident, $gpu:ident) => {
        #[test]
        fn $cpu() {
            $check(&CpuBackend::new(), test_seed());
        }

        #[test]
        fn $gpu() {
            // gpu() hands out one GPU at a time (see tests/common/gpu.rs).
            let Some(g) = gpu_common::gpu() else { return };
            $check(&*g, test_seed());
        }
    };
}

fn uniform(rng: &mut StdRng, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(lo..hi)).collect()
}

fn widen(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

fn up<B: Backend>(b: &B, data: &[f32]) -> B::Tensor {
    b.upload(data).expect("upload")
}

fn rd<B: Backend>(b: &B, t: &B::Tensor) -> Vec<f32> {
    b.read(t).expect("read")
}

/// ‖got − want‖₂ / ‖scale‖₂ (the absolute ‖got − want‖₂ when `scale` is 0).
fn scaled_err(got: &[f64], want: &[f64], scale: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len(), "lengths differ");
    assert_eq!(scale.len(), want.len(), "lengths differ");
    let diff = got
        .iter()
        .zip(want)
        .map(|(g, w)| (g - w).powi(2))
        .sum::<f64>()
        .sqrt();
    let norm = scale.iter().map(|s| s * s).sum::<f64>().sqrt();
    if norm == 0.0 {
        diff
    } else {
        diff / norm
    }
}

/// What every failure message names: the backend and the seed that replays the run.
fn context<B: Backend>(b: &B, seed: u64) -> String {
    format!("{} EBM_TEST_SEED={seed}", b.name())
}

/// ‖got − want‖₂ ≤ tol·‖scale‖₂, with `scale` the magnitude of the terms of `want` (see the
/// module documentation).
fn assert_close(got: &[f64], want: &[f64], scale: &[f64], tol: f64, what: &str, ctx: &str) {
    let e = scaled_err(got, want, scale);
    assert!(
        e <= tol,
        "{what}: error {e:.3e} > {tol:.0e} relative to the magnitude of the terms ({ctx})\n  \
         got   {:?}\n  want  {:?}\n  scale {:?}",
        &got[..got.len().min(8)],
        &want[..want.len().min(8)],
        &scale[..scale.len().min(8)]
    );
}

/// The plain relative error in the 2-norm: for results in which nothing cancels.
fn assert_rel(got: &[f64], want: &[f64], tol: f64, what: &str, ctx: &str) {
    assert_close(got, want, want, tol, what, ctx);
}

fn abs(v: &[f64]) -> Vec<f64> {
    v.iter().map(|x| x.abs()).collect()
}

/// The finite-difference step for a value: 1e-6 relative, 1e-6 absolute near 0.
fn fd_step(v: f64) -> f64 {
    1e-6 * v.abs().max(1.0)
}

/// Central differences of a vector-valued `f` at `at`, in f64: one column ∂f/∂θⱼ for each j
/// in `which`.
fn central_diff_vec(f: impl Fn(&[f64]) -> Vec<f64>, at: &[f64], which: &[usize]) -> Vec<Vec<f64>> {
    let mut p = at.to_vec();
    which
        .iter()
        .map(|&i| {
            let h = fd_step(at[i]);
            let (plus, minus) = (at[i] + h, at[i] - h);
            p[i] = plus;
            let f_plus = f(&p);
            p[i] = minus;
            let f_minus = f(&p);
            p[i] = at[i];
            // The step actually taken, after rounding of at ± h.
            let step = plus - minus;
            f_plus
                .iter()
                .zip(&f_minus)
                .map(|(a, b)| (a - b) / step)
                .collect()
        })
        .collect()
}

/// Central differences of a scalar `f` at `at` with respect to the entries `which`, in f64.
fn central_diff(f: impl Fn(&[f64]) -> f64, at: &[f64], which: &[usize]) -> Vec<f64> {
    central_diff_vec(|t| vec![f(t)], at, which)
        .into_iter()
        .map(|column| column[0])
        .collect()
}

/// Up to `k` distinct indices out of `0..len` (all of them when `len ≤ k`), sorted.
fn pick(rng: &mut StdRng, len: usize, k: usize) -> Vec<usize> {
    let mut all: Vec<usize> = (0..len).collect();
    if len > k {
        for i in 0..k {
            let j = rng.random_range(i..len);
            all.swap(i, j);
        }
        all.truncate(k);
        all.sort_unstable();
    }
    all
}

// ---------------------------------------------------------------------------------------------
// The f64 reference

/// `y[n, o] = Σᵢ x[n, i]·w[o, i] + bias[o]`.
fn linear64(
    batch: usize,
    inputs: usize,
    outputs: usize,
    x: &[f64],
    w: &[f64],
    bias: &[f64],
) -> Vec<f64> {
    let mut y = vec![0.0; batch * outputs];
    for n in 0..batch {
        for o in 0..outputs {
            let dot: f64 = (0..inputs)
                .map(|i| x[n * inputs + i] * w[o * inputs + i])
                .sum();
            y[n * outputs + o] = dot + bias[o];
        }
    }
    y
}

fn act64(act: Activation, x: f64) -> f64 {
    match act {
        Activation::Relu => x.max(0.0),
        Activation::LeakyRelu(slope) => {
            if x > 0.0 {
                x
            } else {
                f64::from(slope) * x
            }
        }
        Activation::Silu => x / (1.0 + (-x).exp()),
        Activation::Tanh => x.tanh(),
        Activation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        Activation::Softplus => {
            if x > 20.0 {
                x
            } else {
                x.exp().ln_1p()
            }
        }
        Activation::Square => x * x,
    }
}

/// act(x) minus a constant on each side of 0, for the central differences: tanh and σ sit
/// within 1e-17 of ±1 or 1 in their tails, where f64 keeps none of the digits of their
/// derivatives (tanh'(40) ≈ 7e-35), so they are differenced as tanh(x) − sign(x) =
/// −sign(x)·2e/(1 + e) with e = e^(−2|x|) and σ(x) − [x > 0] = −σ(−x) for x > 0. Same
/// derivative away from 0 (|x| ≥ 1e-2 here), no cancellation.
fn act64_for_differences(act: Activation, x: f64) -> f64 {
    match act {
        Activation::Tanh => {
            let e = (-2.0 * x.abs()).exp();
            -x.signum() * 2.0 * e / (1.0 + e)
        }
        Activation::Sigmoid => {
            if x > 0.0 {
                -1.0 / (1.0 + x.exp())
            } else {
                1.0 / (1.0 + (-x).exp())
            }
        }
        _ => act64(act, x),
    }
}

/// The magnitude of the terms of act'(x): |act'(x)| for the piecewise-linear ones, and
/// σ + |x|·σ(1 − σ) for SiLU, whose derivative σ + x·σ(1 − σ) cancels near x ≈ −1.28.
fn act_derivative_magnitude(act: Activation, x: f64) -> f64 {
    match act {
        Activation::Relu => f64::from(u8::from(x > 0.0)),
        Activation::LeakyRelu(slope) => {
            if x > 0.0 {
                1.0
            } else {
                f64::from(slope).abs()
            }
        }
        Activation::Silu => {
            let s = 1.0 / (1.0 + (-x).exp());
            s + x.abs() * s * (1.0 - s)
        }
        // 1 − tanh² = 4e/(1 + e)², e = e^(−2|x|), written so as not to cancel.
        Activation::Tanh => {
            let e = (-2.0 * x.abs()).exp();
            4.0 * e / ((1.0 + e) * (1.0 + e))
        }
        // σ(x)·σ(−x) = e/(1 + e)², e = e^(−|x|).
        Activation::Sigmoid => {
            let e = (-x.abs()).exp();
            e / ((1.0 + e) * (1.0 + e))
        }
        Activation::Softplus => {
            if x > 20.0 {
                1.0
            } else {
                1.0 / (1.0 + (-x).exp())
            }
        }
        // 2x: one term, nothing cancels.
        Activation::Square => 2.0 * x.abs(),
    }
}

/// mean E⁺ − mean E⁻ + α(mean E⁺² + mean E⁻²), with E⁺ the first `n_pos` energies.
fn cd_loss64(e: &[f64], n_pos: usize, alpha: f64) -> f64 {
    let (pos, neg) = e.split_at(n_pos);
    let mean = |v: &[f64], f: fn(f64) -> f64| v.iter().map(|&x| f(x)).sum::<f64>() / v.len() as f64;
    mean(pos, |x| x) - mean(neg, |x| x) + alpha * (mean(pos, |x| x * x) + mean(neg, |x| x * x))
}

/// One layer of the f64 re-implementation of an [`EnergyNet`].
enum Op64 {
    /// Weight [out, in] at `params[weight]`, bias at `params[weight + 1]`.
    Linear {
        inputs: usize,
        outputs: usize,
        weight: usize,
    },
    Act(Activation),
    Flatten,
}

/// The net of a [`Spec`] in f64, its parameters looked up by their PyTorch names.
struct Net64 {
    ops: Vec<Op64>,
    input_len: usize,
}

impl Net64 {
    /// `names` are the parameter names in the order of the parameter vectors to be passed.
    fn new(spec: &Spec, names: &[String]) -> Net64 {
        let find = |name: String| {
            names
                .iter()
                .position(|n| *n == name)
                .unwrap_or_else(|| panic!("no parameter {name} in {names:?}"))
        };
        let ops = spec
            .layers
            .iter()
            .enumerate()
            .map(|(i, layer)| match layer.op {
                LayerSpec::Linear { inputs, outputs } => {
                    let weight = find(format!("layers.{i}.weight"));
                    assert_eq!(find(format!("layers.{i}.bias")), weight + 1);
                    Op64::Linear {
                        inputs,
                        outputs,
                        weight,
                    }
                }
                LayerSpec::Relu => Op64::Act(Activation::Relu),
                LayerSpec::LeakyRelu { slope } => Op64::Act(Activation::LeakyRelu(slope)),
                LayerSpec::Silu => Op64::Act(Activation::Silu),
                LayerSpec::Flatten => Op64::Flatten,
                ref other => panic!("the f64 reference has no {other:?}"),
            })
            .collect();
        Net64 {
            ops,
            input_len: spec.input_len(),
        }
    }

    /// The energies of the samples in `x` and the smallest |input| of any ReLU / leaky ReLU
    /// (∞ when there is none).
    fn energies(&self, params: &[Vec<f64>], x: &[f64]) -> (Vec<f64>, f64) {
        let mut margin = f64::INFINITY;
        let energies = x
            .chunks(self.input_len)
            .map(|sample| {
                let mut h = sample.to_vec();
                for op in &self.ops {
                    match *op {
                        Op64::Linear {
                            inputs,
                            outputs,
                            weight,
                        } => {
                            let (w, bias) = (&params[weight], &params[weight + 1]);
                            assert_eq!((w.len(), bias.len()), (outputs * inputs, outputs));
                            h = linear64(1, inputs, outputs, &h, w, bias);
                        }
                        Op64::Act(act) => {
                            if act != Activation::Silu {
                                margin = h.iter().fold(margin, |m, v| m.min(v.abs()));
                            }
                            h.iter_mut().for_each(|v| *v = act64(act, *v));
                        }
                        Op64::Flatten => {}
                    }
                }
                assert_eq!(h.len(), 1, "the net ends in one energy");
                h[0]
            })
            .collect();
        (energies, margin)
    }
}

/// The nets the whole-net checks run: the toy MLP on a random shape and two JSON specs that
/// mix every activation (one with a flatten of a 3-d input, one with the default slope).
fn nets(rng: &mut StdRng) -> Vec<(String, Spec)> {
    let dim = [1, 3, 17][rng.random_range(0..3)];
    let hidden = [3, 17, 40][rng.random_range(0..3)];
    let depth = rng.random_range(1..=3);
    let mixed_flatten = r#"{"input": [2, 3, 3], "layers": [
        {"type": "flatten"},
        {"type": "linear", "in": 18, "out": 17}, {"type": "relu"},
        {"type": "linear", "in": 17, "out": 40}, {"type": "leaky_relu", "slope": 0.2},
        {"type": "linear", "in": 40, "out": 5}, {"type": "silu"},
        {"type": "linear", "in": 5, "out": 1}]}"#;
    let mixed_default_slope = r#"{"input": [1], "layers": [
        {"type": "linear", "in": 1, "out": 40}, {"type": "leaky_relu"},
        {"type": "linear", "in": 40, "out": 3}, {"type": "silu"},
        {"type": "linear", "in": 3, "out": 17}, {"type": "relu"},
        {"type": "linear", "in": 17, "out": 1}]}"#;
    vec![
        (
            format!("Spec::mlp({dim}, {hidden}, {depth})"),
            Spec::mlp(dim, hidden, depth),
        ),
        (
            "relu/leaky_relu(0.2)/silu with flatten".into(),
            Spec::from_json(mixed_flatten).expect("spec"),
        ),
        (
            "leaky_relu(default)/silu/relu".into(),
            Spec::from_json(mixed_default_slope).expect("spec"),
        ),
    ]
}

/// The net's parameters as f64 vectors, with their names, in `params()` order.
fn read_params64<B: Backend>(b: &B, net: &EnergyNet<B>) -> (Vec<String>, Vec<Vec<f64>>) {
    let params = net.read_params(b).expect("read_params");
    for ((name, t), p) in params.iter().zip(net.params()) {
        assert_eq!(*name, p.name);
        assert_eq!(t.shape, p.shape, "{name}");
    }
    params
        .into_iter()
        .map(|(name, t)| (name, widen(&t.data)))
        .unzip()
}

/// Data from `draw`, redrawn until every ReLU / leaky-ReLU input is clear of its kink.
fn clear_of_kinks(
    net: &Net64,
    params: &[Vec<f64>],
    rng: &mut StdRng,
    draw: impl Fn(&mut StdRng) -> Vec<f32>,
    ctx: &str,
) -> Vec<f32> {
    for _ in 0..1000 {
        let x = draw(rng);
        if net.energies(params, &widen(&x)).1 >= KINK_MARGIN {
            return x;
        }
    }
    panic!("no data clear of the kinks in 1000 draws ({ctx})");
}

// ---------------------------------------------------------------------------------------------
// 1. The linear layer

/// forward, backward_data (dx = r·w) and backward_params (dw = rᵀ·x, db = Σ r) against the
/// f64 forward and central differences of L(x, w, b) = Σ r ⊙ (x·wᵀ + b). The scales are the
/// same computations on absolute values (|x|·|w|ᵀ + |b|, and the differences of
/// Σ |r| ⊙ (|x|·|w|ᵀ + |b|)): the magnitude of every dot product's terms.
fn check_linear<B: Backend>(b: &B, seed: u64) {
    let ctx = context(b, seed);
    let mut rng = StdRng::seed_from_u64(seed);
    for batch in [1, 5, 33] {
        for inputs in [1, 3, 17, 40] {
            let outputs = [1, 3, 17, 40, rng.random_range(2..=48)][rng.random_range(0..5)];
            let s = LinearShape {
                batch,
                inputs,
                outputs,
            };
            let x = uniform(&mut rng, batch * inputs, -2.0, 2.0);
            let w = uniform(&mut rng, outputs * inputs, -1.0, 1.0);
            let bias = uniform(&mut rng, outputs, -1.0, 1.0);
            let r = uniform(&mut rng, batch * outputs, -2.0, 2.0);

            let (tx, tw, tr) = (up(b, &x), up(b, &w), up(b, &r));
            let mut y = b.zeros(batch * outputs).expect("zeros");
            b.linear_forward(s, &tx, &tw, &up(b, &bias), &mut y);
            // Stale values everywhere: every output must be overwritten, not accumulated into.
            let mut dx = up(b, &vec![7.0; batch * inputs]);
            b.linear_backward_data(s, &tr, &tw, &mut dx);
            let mut dw = up(b, &vec![7.0; outputs * inputs]);
            let mut db = up(b, &vec![7.0; outputs]);
            b.linear_backward_params(s, &tr, &tx, &mut dw, &mut db);

            let (nx, nw) = (batch * inputs, outputs * inputs);
            let theta: Vec<f64> = [widen(&x), widen(&w), widen(&bias)].concat();
            let loss = |r: &[f64], t: &[f64]| {
                let (x, rest) = t.split_at(nx);
                let (w, bias) = rest.split_at(nw);
                let y = linear64(batch, inputs, outputs, x, w, bias);
                y.iter().zip(r).map(|(y, r)| y * r).sum::<f64>()
            };
            let (r64, r_abs, theta_abs) = (widen(&r), abs(&widen(&r)), abs(&theta));
            let all: Vec<usize> = (0..theta.len()).collect();
            let fd = central_diff(|t| loss(&r64, t), &theta, &all);
            let fd_abs = central_diff(|t| loss(&r_abs, t), &theta_abs, &all);
            let grads = |v: &[f64]| {
                let (x, rest) = v.split_at(nx);
                let (w, b) = rest.split_at(nw);
                (x.to_vec(), w.to_vec(), b.to_vec())
            };
            let (want_dx, want_dw, want_db) = grads(&fd);
            let (scale_dx, scale_dw, scale_db) = grads(&fd_abs);
            let (x64, w64, b64) = grads(&theta);
            let (xa, wa, ba) = grads(&theta_abs);
            let want_y = linear64(batch, inputs, outputs, &x64, &w64, &b64);
            let scale_y = linear64(batch, inputs, outputs, &xa, &wa, &ba);

            let checks = [
                ("forward", &y, &want_y, &scale_y),
                ("dx", &dx, &want_dx, &scale_dx),
                ("dw", &dw, &want_dw, &scale_dw),
                ("db", &db, &want_db, &scale_db),
            ];
            for (what, t, want, scale) in checks {
                let got = widen(&rd(b, t));
                let what = format!("{what} {s:?}");
                assert_close(&got, want, scale, TOL_LINEAR, &what, &ctx);
            }
        }
    }
}

on_both_backends!(check_linear, linear_layer_cpu, linear_layer_gpu);

// ---------------------------------------------------------------------------------------------
// 1b. Convolution and average pooling

/// `y[n, o, oh, ow] = Σ_(c, ki, kj) x[n, c, oh·s + ki − p, ow·s + kj − p]·w[o, c, ki, kj] +
/// bias[o]`, the taps that fall in the zero padding left out: straight from the definition,
/// no im2col.
fn conv64(s: &Conv2dShape, x: &[f64], w: &[f64], bias: &[f64]) -> Vec<f64> {
    let (ho, wo, k) = (s.out_height(), s.out_width(), s.kernel);
    let mut y = vec![0.0; s.batch * s.out_channels * ho * wo];
    for n in 0..s.batch {
        for o in 0..s.out_channels {
            for oh in 0..ho {
                for ow in 0..wo {
                    let mut acc = bias[o];
                    for c in 0..s.in_channels {
                        for ki in 0..k {
                            for kj in 0..k {
                                let ih = (oh * s.stride + ki).checked_sub(s.padding);
                                let iw = (ow * s.stride + kj).checked_sub(s.padding);
                                let (Some(ih), Some(iw)) = (ih, iw) else {
                                    continue;
                                };
                                if ih < s.height && iw < s.width {
                                    acc += x
                                        [((n * s.in_channels + c) * s.height + ih) * s.width + iw]
                                        * w[((o * s.in_channels + c) * k + ki) * k + kj];
                                }
                            }
                        }
                    }
                    y[((n * s.out_channels + o) * ho + oh) * wo + ow] = acc;
                }
            }
        }
    }
    y
}

/// The mean of each whole k×k window (stride k, no padding; the leftover rows and columns
/// are dropped).
fn avg_pool64(s: &PoolShape, x: &[f64]) -> Vec<f64> {
    let (k, ho, wo) = (s.kernel, s.out_height(), s.out_width());
    let mut y = Vec::with_capacity(s.batch * s.channels * ho * wo);
    for plane in x.chunks(s.height * s.width).take(s.batch * s.channels) {
        for i in 0..ho {
            for j in 0..wo {
                let sum: f64 = (0..k * k)
                    .map(|t| plane[(i * k + t / k) * s.width + j * k + t % k])
                    .sum();
                y.push(sum / (k * k) as f64);
            }
        }
    }
    y
}

/// A random conv geometry small enough for full finite differences (every entry of x, w and
/// b): batch 1..2, channels not multiples of 4, H and W 4..9, kernel 1..4, stride 1..2,
/// padding 0..1; redrawn until the kernel fits the padded input.
fn small_conv_shape(rng: &mut StdRng) -> Conv2dShape {
    loop {
        let s = Conv2dShape {
            batch: rng.random_range(1..=2),
            in_channels: [1, 2, 3, 5][rng.random_range(0..4)],
            out_channels: [1, 2, 3, 5][rng.random_range(0..4)],
            height: rng.random_range(4..=9),
            width: rng.random_range(4..=9),
            kernel: rng.random_range(1..=4),
            stride: rng.random_range(1..=2),
            padding: rng.random_range(0..=1),
        };
        if s.kernel <= s.height.min(s.width) + 2 * s.padding {
            return s;
        }
    }
}

/// conv2d forward, backward_data and backward_params against the f64 [`conv64`] and central
/// differences of L(x, w, b) = Σ r ⊙ conv(x, w, b), with the same `scale` as the linear
/// layer: the same computations on absolute values. Each output is a dot product of up to
/// C·k·k = 80 terms and each gradient a sum over up to batch·H'·W' of them: [`TOL_LINEAR`].
fn check_conv2d<B: Backend>(b: &B, seed: u64) {
    let ctx = context(b, seed);
    let mut rng = StdRng::seed_from_u64(seed);
    for case in 0..7 {
        let mut s = small_conv_shape(&mut rng);
        if case == 6 {
            // A kernel over the whole unpadded input: the CPU's dense-layer path.
            let k = rng.random_range(2..=4);
            (s.height, s.width, s.kernel, s.padding) = (k, k, k, 0);
        }
        let (nx, nw) = (
            s.batch * s.in_len(),
            s.out_channels * s.in_channels * s.kernel * s.kernel,
        );
        let ny = s.batch * s.out_len();
        let x = uniform(&mut rng, nx, -2.0, 2.0);
        let w = uniform(&mut rng, nw, -1.0, 1.0);
        let bias = uniform(&mut rng, s.out_channels, -1.0, 1.0);
        let r = uniform(&mut rng, ny, -2.0, 2.0);

        let (tx, tw, tr) = (up(b, &x), up(b, &w), up(b, &r));
        let mut y = up(b, &vec![7.0; ny]);
        b.conv2d_forward(s, &tx, &tw, &up(b, &bias), &mut y);
        // Stale values everywhere: every output must be overwritten, not accumulated into.
        let mut dx = up(b, &vec![7.0; nx]);
        b.conv2d_backward_data(s, &tr, &tw, &mut dx);
        let mut dw = up(b, &vec![7.0; nw]);
        let mut db = up(b, &vec![7.0; s.out_channels]);
        b.conv2d_backward_params(s, &tr, &tx, &mut dw, &mut db);

        let theta: Vec<f64> = [widen(&x), widen(&w), widen(&bias)].concat();
        let split = |v: &[f64]| {
            let (x, rest) = v.split_at(nx);
            let (w, b) = rest.split_at(nw);
            (x.to_vec(), w.to_vec(), b.to_vec())
        };
        let loss = |r: &[f64], t: &[f64]| {
            let (x, w, bias) = split(t);
            let y = conv64(&s, &x, &w, &bias);
            y.iter().zip(r).map(|(y, r)| y * r).sum::<f64>()
        };
        let (r64, r_abs, theta_abs) = (widen(&r), abs(&widen(&r)), abs(&theta));
        let all: Vec<usize> = (0..theta.len()).collect();
        let fd = central_diff(|t| loss(&r64, t), &theta, &all);
        let fd_abs = central_diff(|t| loss(&r_abs, t), &theta_abs, &all);
        let (want_dx, want_dw, want_db) = split(&fd);
        let (scale_dx, scale_dw, scale_db) = split(&fd_abs);
        let (x64, w64, b64) = split(&theta);
        let (xa, wa, ba) = split(&theta_abs);
        let want_y = conv64(&s, &x64, &w64, &b64);
        let scale_y = conv64(&s, &xa, &wa, &ba);

        let checks = [
            ("forward", &y, &want_y, &scale_y),
            ("dx", &dx, &want_dx, &scale_dx),
            ("dw", &dw, &want_dw, &scale_dw),
            ("db", &db, &want_db, &scale_db),
        ];
        for (what, t, want, scale) in checks {
            let got = widen(&rd(b, t));
            let what = format!("conv2d {what} {s:?}");
            assert_close(&got, want, scale, TOL_LINEAR, &what, &ctx);
        }
    }
}

on_both_backends!(check_conv2d, conv2d_cpu, conv2d_gpu);

/// avg_pool forward and backward against the f64 [`avg_pool64`] and central differences of
/// Σ r ⊙ pool(x); windows 1..4 on sizes that often leave rows and columns over (their
/// gradient must be 0). Sums of at most 16 terms scaled by 1/k²: [`TOL_POINTWISE`] relative
/// to the same computation on absolute values.
fn check_avg_pool<B: Backend>(b: &B, seed: u64) {
    let ctx = context(b, seed);
    let mut rng = StdRng::seed_from_u64(seed);
    for _ in 0..6 {
        let s = PoolShape {
            batch: rng.random_range(1..=2),
            channels: [1, 2, 3, 5][rng.random_range(0..4)],
            height: rng.random_range(4..=9),
            width: rng.random_range(4..=9),
            kernel: rng.random_range(1..=4),
        };
        let nx = s.batch * s.channels * s.height * s.width;
        let ny = s.batch * s.channels * s.out_height() * s.out_width();
        let x = uniform(&mut rng, nx, -2.0, 2.0);
        let r = uniform(&mut rng, ny, -2.0, 2.0);

        let mut y = up(b, &vec![7.0; ny]);
        b.avg_pool_forward(s, &up(b, &x), &mut y);
        let mut dx = up(b, &vec![7.0; nx]);
        b.avg_pool_backward(s, &up(b, &r), &mut dx);

        let loss = |r: &[f64], x: &[f64]| {
            let y = avg_pool64(&s, x);
            y.iter().zip(r).map(|(y, r)| y * r).sum::<f64>()
        };
        let (x64, r64) = (widen(&x), widen(&r));
        let (x_abs, r_abs) = (abs(&x64), abs(&r64));
        let all: Vec<usize> = (0..nx).collect();
        let want_dx = central_diff(|t| loss(&r64, t), &x64, &all);
        let scale_dx = central_diff(|t| loss(&r_abs, t), &x_abs, &all);
        let want_y = avg_pool64(&s, &x64);
        let scale_y = avg_pool64(&s, &x_abs);

        let got_y = widen(&rd(b, &y));
        let what = format!("avg_pool forward {s:?}");
        assert_close(&got_y, &want_y, &scale_y, TOL_POINTWISE, &what, &ctx);
        let got_dx = widen(&rd(b, &dx));
        let what = format!("avg_pool dx {s:?}");
        assert_close(&got_dx, &want_dx, &scale_dx, TOL_POINTWISE, &what, &ctx);
    }
}

on_both_backends!(check_avg_pool, avg_pool_cpu, avg_pool_gpu);

// ---------------------------------------------------------------------------------------------
// 2. Activations

/// activation_forward against act(x) and activation_backward against central differences of
/// Σ r ⊙ act(x), with |x| ≥ 1e-2 (clear of the kinks) and some |x| up to 40 (SiLU's tails).
fn check_activations<B: Backend>(b: &B, seed: u64) {
    let ctx = context(b, seed);
    let mut rng = StdRng::seed_from_u64(seed);
    for act in [
        Activation::Relu,
        Activation::LeakyRelu(0.2),
        Activation::Silu,
        Activation::Tanh,
        Activation::Sigmoid,
        Activation::Softplus,
        Activation::Square,
    ] {
        for n in [1, 5, 33, 257, rng.random_range(2..600)] {
            let x: Vec<f32> = (0..n)
                .map(|_| {
                    let magnitude = if rng.random_bool(0.1) {
                        rng.random_range(4.0f32..40.0)
                    } else {
                        rng.random_range(1e-2f32..4.0)
                    };
                    if rng.random_bool(0.5) {
                        magnitude
                    } else {
                        -magnitude
                    }
                })
                .collect();
            let r = uniform(&mut rng, n, -2.0, 2.0);

            let tx = up(b, &x);
            let mut y = b.zeros(n).expect("zeros");
            b.activation_forward(act, &tx, &mut y);
            let mut dx = up(b, &vec![7.0; n]);
            b.activation_backward(act, &tx, &up(b, &r), &mut dx);

            let (x64, r64) = (widen(&x), widen(&r));
            let loss = |x: &[f64]| {
                let terms = x.iter().zip(&r64);
                terms.map(|(&x, r)| act64_for_differences(act, x) * r).sum()
            };
            let all: Vec<usize> = (0..n).collect();
            let want_dx = central_diff(loss, &x64, &all);
            let scale_dx: Vec<f64> = x64
                .iter()
                .zip(&r64)
                .map(|(&x, r)| r.abs() * act_derivative_magnitude(act, x))
                .collect();
            // A product or a selection: nothing cancels in the forward.
            let want_y: Vec<f64> = x64.iter().map(|&x| act64(act, x)).collect();

            let what = format!("{act:?} n={n}");
            let (got_y, got_dx) = (widen(&rd(b, &y)), widen(&rd(b, &dx)));
            let tol = TOL_POINTWISE;
            assert_rel(&got_y, &want_y, tol, &format!("{what} forward"), &ctx);
            assert_close(
                &got_dx,
                &want_dx,
                &scale_dx,
                tol,
                &format!("{what} dx"),
                &ctx,
            );
        }
    }
}

on_both_backends!(check_activations, activations_cpu, activations_gpu);

// ---------------------------------------------------------------------------------------------
// 3. The CD loss

/// d_energy against central differences of the f64 loss (scale (1 + 2α|E|)/n±, the terms of
/// (±1 + 2αE)/n±), and every stat against its f64 value relative to the magnitude of what it
/// sums (the loss is a difference and may be much smaller than its terms).
fn check_cd_loss<B: Backend>(b: &B, seed: u64) {
    let ctx = context(b, seed);
    let mut rng = StdRng::seed_from_u64(seed);
    for n in [2, 5, 33, 257, rng.random_range(2..2000)] {
        let n_pos = rng.random_range(1..n);
        let alpha = if rng.random_bool(0.25) {
            0.0
        } else {
            rng.random_range(0.0f32..1.0)
        };
        let offset = rng.random_range(-10.0f32..10.0);
        let spread = [0.1f32, 1.0, 5.0][rng.random_range(0..3)];
        let e: Vec<f32> = (0..n)
            .map(|_| offset + spread * rng.random_range(-1.0f32..1.0))
            .collect();

        let mut d = up(b, &vec![7.0; n]);
        let mut stats = up(b, &[7.0; stat::LEN]);
        CdLoss { n_pos, alpha }.run(b, &up(b, &e), &mut d, &mut stats);

        let (e64, a64) = (widen(&e), f64::from(alpha));
        let all: Vec<usize> = (0..n).collect();
        let want_d = central_diff(|e| cd_loss64(e, n_pos, a64), &e64, &all);
        let scale_d: Vec<f64> = e64
            .iter()
            .enumerate()
            .map(|(j, e)| {
                (1.0 + 2.0 * a64 * e.abs()) / (if j < n_pos { n_pos } else { n - n_pos }) as f64
            })
            .collect();
        let what = format!("cd_loss n={n} n_pos={n_pos} alpha={alpha}");
        let got_d = widen(&rd(b, &d));
        assert_close(
            &got_d,
            &want_d,
            &scale_d,
            TOL_POINTWISE,
            &format!("{what} d_energy"),
            &ctx,
        );

        let (pos, neg) = e64.split_at(n_pos);
        let mean =
            |v: &[f64], f: fn(f64) -> f64| v.iter().map(|&x| f(x)).sum::<f64>() / v.len() as f64;
        let (mp, mn) = (mean(pos, |x| x), mean(neg, |x| x));
        let (mp2, mn2) = (mean(pos, |x| x * x), mean(neg, |x| x * x));
        let (ap, an) = (mean(pos, f64::abs), mean(neg, f64::abs));
        let mut want = [0.0; stat::LEN];
        let mut scale = [0.0; stat::LEN];
        want[stat::LOSS] = cd_loss64(&e64, n_pos, a64);
        scale[stat::LOSS] = ap + an + a64 * (mp2 + mn2);
        want[stat::MEAN_E_POS] = mp;
        scale[stat::MEAN_E_POS] = ap;
        want[stat::MEAN_E_NEG] = mn;
        scale[stat::MEAN_E_NEG] = an;
        want[stat::MEAN_E_POS_SQ] = mp2;
        scale[stat::MEAN_E_POS_SQ] = mp2;
        want[stat::MEAN_E_NEG_SQ] = mn2;
        scale[stat::MEAN_E_NEG_SQ] = mn2;
        let got = widen(&rd(b, &stats));
        // Each statistic on its own.
        for k in 0..stat::LEN {
            assert_close(
                &got[k..=k],
                &want[k..=k],
                &scale[k..=k],
                TOL_POINTWISE,
                &format!("{what} stat {k}"),
                &ctx,
            );
        }
    }
}

on_both_backends!(check_cd_loss, cd_loss_cpu, cd_loss_gpu);

// ---------------------------------------------------------------------------------------------
// 4. Whole nets

/// `energies_and_grad` against the f64 net's energies and central differences of Σ E(x), for
/// batches of 1, 5 and 33 on the same net (each batch size has its own workspace). The three
/// batches are compared as one vector: a single energy or gradient entry (batch 1, input
/// width 1) can be ≈ 0 by cancellation deep inside the net, where f32 has no relative
/// accuracy; 39 independent samples together cannot. The message names each batch's error.
fn check_net_input_grad<B: Backend>(b: &B, seed: u64) {
    let ctx = context(b, seed);
    let mut rng = StdRng::seed_from_u64(seed);
    for (name, spec) in nets(&mut rng) {
        let mut net = EnergyNet::new(b, &spec, rng.random()).expect("net");
        let (names, params) = read_params64(b, &net);
        let net64 = Net64::new(&spec, &names);
        let (mut got_e, mut want_e, mut got_g, mut want_g) = (vec![], vec![], vec![], vec![]);
        let mut per_batch = String::new();
        for batch in [1, 5, 33] {
            let len = batch * spec.input_len();
            let x = clear_of_kinks(
                &net64,
                &params,
                &mut rng,
                |rng| uniform(rng, len, -2.0, 2.0),
                &format!("{name} batch {batch}, {ctx}"),
            );
            let (energies, grad) = net.energies_and_grad(b, &x).expect("energies_and_grad");

            let x64 = widen(&x);
            let total = |x: &[f64]| net64.energies(&params, x).0.iter().sum::<f64>();
            let all: Vec<usize> = (0..len).collect();
            let (e, g) = (widen(&energies), widen(&grad));
            let (we, wg) = (
                net64.energies(&params, &x64).0,
                central_diff(total, &x64, &all),
            );
            per_batch += &format!(
                " batch {batch}: energies {:.1e}, ∇ₓE {:.1e};",
                scaled_err(&e, &we, &we),
                scaled_err(&g, &wg, &wg)
            );
            got_e.extend(e);
            want_e.extend(we);
            got_g.extend(g);
            want_g.extend(wg);
        }
        let tol = TOL_LINEAR;
        assert_rel(
            &got_e,
            &want_e,
            tol,
            &format!("{name} energies ({per_batch})"),
            &ctx,
        );
        assert_rel(
            &got_g,
            &want_g,
            tol,
            &format!("{name} ∇ₓE ({per_batch})"),
            &ctx,
        );
    }
}

on_both_backends!(check_net_input_grad, net_input_grad_cpu, net_input_grad_gpu);

/// The training gradient: forward on [x⁺; x⁻] (2B rows), `cd_loss`, `backward_params`, and
/// each `Param::grad` against central differences of the f64 CD loss with respect to
/// [`ENTRIES_PER_TENSOR`] random entries of that tensor. The scale of entry θⱼ is
/// Σ_rows (1 + 2α|E|)/B · |∂E_row/∂θⱼ|, from central differences of each row's energy: the
/// magnitude of the terms of the sum over rows, in which positives and negatives cancel.
fn check_net_param_grads<B: Backend>(b: &B, seed: u64) {
    let ctx = context(b, seed);
    let mut rng = StdRng::seed_from_u64(seed);
    for (name, spec) in nets(&mut rng) {
        let mut net = EnergyNet::new(b, &spec, rng.random()).expect("net");
        let (names, params) = read_params64(b, &net);
        let net64 = Net64::new(&spec, &names);
        let len = spec.input_len();
        let (mut got_e, mut want_e) = (vec![], vec![]);
        for half in [1, 5, 33] {
            let alpha = rng.random_range(0.05f32..1.0);
            let what = format!("{name} B={half} alpha={alpha}");
            // Positives and negatives from different ranges, as data and samples would be.
            let x = clear_of_kinks(
                &net64,
                &params,
                &mut rng,
                |rng| {
                    let mut x = uniform(rng, half * len, -1.0, 1.0);
                    x.extend(uniform(rng, half * len, -3.0, 3.0));
                    x
                },
                &format!("{what}, {ctx}"),
            );

            let rows = 2 * half;
            let tx = up(b, &x);
            let mut d_energy = b.zeros(rows).expect("zeros");
            let mut stats = b.zeros(stat::LEN).expect("zeros");
            let energies = net.forward(b, &tx, rows).expect("forward");
            CdLoss { n_pos: half, alpha }.run(b, energies, &mut d_energy, &mut stats);
            got_e.extend(widen(&rd(b, energies)));
            net.backward_params(b, rows, &d_energy)
                .expect("backward_params");

            let x64 = widen(&x);
            let e64 = net64.energies(&params, &x64).0;
            let a64 = f64::from(alpha);
            let d_magnitude: Vec<f64> = e64
                .iter()
                .map(|e| (1.0 + 2.0 * a64 * e.abs()) / half as f64)
                .collect();
            want_e.extend(e64);
            for (k, p) in net.params().iter().enumerate() {
                let grad = rd(b, &p.grad);
                let which = pick(&mut rng, grad.len(), ENTRIES_PER_TENSOR);
                // [E of every row..., loss] as a function of tensor k.
                let energies_and_loss = |theta: &[f64]| {
                    let mut ps = params.clone();
                    ps[k] = theta.to_vec();
                    let mut e = net64.energies(&ps, &x64).0;
                    e.push(cd_loss64(&e, half, a64));
                    e
                };
                let columns = central_diff_vec(energies_and_loss, &params[k], &which);
                let want: Vec<f64> = columns.iter().map(|c| c[rows]).collect();
                let scale: Vec<f64> = columns
                    .iter()
                    .map(|c| {
                        c[..rows]
                            .iter()
                            .zip(&d_magnitude)
                            .map(|(de, d)| d * de.abs())
                            .sum()
                    })
                    .collect();
                let got: Vec<f64> = which.iter().map(|&i| f64::from(grad[i])).collect();
                assert_close(
                    &got,
                    &want,
                    &scale,
                    TOL_PARAM_GRAD,
                    &format!("{what} dLoss/d{} at {which:?}", p.name),
                    &ctx,
                );
            }
        }
        let what = format!("{name} energies of [x⁺; x⁻], B = 1, 5, 33");
        assert_rel(&got_e, &want_e, TOL_LINEAR, &what, &ctx);
    }
}

on_both_backends!(
    check_net_param_grads,
    net_cd_param_grads_cpu,
    net_cd_param_grads_gpu
);

// ---------------------------------------------------------------------------------------------
// 5. Updates

/// `x ← clamp(x − step·clip(g) + noise·ξ, lo, hi)` in f64 with ξ from `rng::fill_normal`,
/// with and without per-element clipping, on data that the clamp and the clip both touch.
/// Scale |x| + step·|clip(g)| + noise·|ξ| + |x_new|.
fn check_langevin<B: Backend>(b: &B, seed: u64) {
    let ctx = context(b, seed);
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut clipped, mut clamped, mut case) = (0, 0, 0);
    for rows in [1, 5, 33] {
        for dim in [1, 3, 17, 40] {
            case += 1;
            let u = LangevinUpdate {
                rows,
                dim,
                step: rng.random_range(0.0f32..0.5),
                noise: rng.random_range(0.0f32..0.5),
                grad_clip: (case % 2 == 1).then(|| rng.random_range(0.1f32..1.0)),
                lo: rng.random_range(-2.0f32..-1.0),
                hi: rng.random_range(1.0f32..2.0),
                seed: rng.random(),
                global_step: rng.random(),
                chain_offset: rng.random_range(0..1 << 20),
            };
            let x0 = uniform(&mut rng, rows * dim, -2.5, 2.5);
            let g = uniform(&mut rng, rows * dim, -3.0, 3.0);
            let mut x = up(b, &x0);
            u.run(b, &mut x, &up(b, &g));

            let (mut want, mut scale) = (vec![0.0; rows * dim], vec![0.0; rows * dim]);
            let mut xi = vec![0.0f32; dim];
            let (step, noise) = (f64::from(u.step), f64::from(u.noise));
            let (lo, hi) = (f64::from(u.lo), f64::from(u.hi));
            for row in 0..rows {
                let chain = u.chain_offset + row as u32;
                rng::fill_normal(u.seed, chain, u.global_step, Stream::Langevin, &mut xi);
                for e in 0..dim {
                    let i = row * dim + e;
                    let (x0, mut gi, xi) = (f64::from(x0[i]), f64::from(g[i]), f64::from(xi[e]));
                    if let Some(c) = u.grad_clip.map(f64::from) {
                        clipped += usize::from(gi.abs() > c);
                        gi = gi.clamp(-c, c);
                    }
                    let moved = x0 - step * gi + noise * xi;
                    clamped += usize::from(!(lo..=hi).contains(&moved));
                    want[i] = moved.clamp(lo, hi);
                    scale[i] = x0.abs() + step * gi.abs() + noise * xi.abs() + want[i].abs();
                }
            }
            let got = widen(&rd(b, &x));
            assert_close(&got, &want, &scale, TOL_POINTWISE, &format!("{u:?}"), &ctx);
        }
    }
    assert!(
        clipped > 0 && clamped > 0,
        "the data must exercise the clip ({clipped}) and the clamp ({clamped}) ({ctx})"
    );
}

on_both_backends!(check_langevin, langevin_update_cpu, langevin_update_gpu);

/// The fused MLP chain (`mlp_langevin_chain`, what `Langevin::run` uses for MLP energies)
/// against K = 3 steps of its formula in f64: ∇ₓE by central differences of the f64 net,
/// then clip, step, the same Philox noise and clamp. Runs on the MLPs of [`nets`] (the
/// flatten is a no-op to the chain) with 9 chains, one more than a GPU workgroup holds.
fn check_mlp_chain<B: Backend>(b: &B, seed: u64) {
    let ctx = context(b, seed);
    let mut rng = StdRng::seed_from_u64(seed);
    let (rows, steps) = (9, 3);
    for (case, (name, spec)) in nets(&mut rng).into_iter().enumerate() {
        let net = EnergyNet::new(b, &spec, rng.random()).expect("net");
        let (widths, activations) = net.mlp_layout().expect("every net of nets() is an MLP");
        let (names, params) = read_params64(b, &net);
        let net64 = Net64::new(&spec, &names);
        let dim = widths[0];
        let update = LangevinUpdate {
            rows,
            dim,
            step: rng.random_range(0.01f32..0.1),
            noise: rng.random_range(0.0f32..0.1),
            grad_clip: (case % 2 == 0).then(|| rng.random_range(0.05f32..0.5)),
            lo: -1.6,
            hi: 1.6,
            seed: rng.random(),
            global_step: rng.random(),
            chain_offset: rng.random_range(0..1 << 20),
        };
        let (step, noise) = (f64::from(update.step), f64::from(update.noise));
        let (lo, hi) = (f64::from(update.lo), f64::from(update.hi));
        // The f64 chain, redrawn until no ReLU input comes near its kink on the way.
        let mut found = None;
        for _ in 0..100 {
            let x0 = uniform(&mut rng, rows * dim, -1.5, 1.5);
            let mut x = widen(&x0);
            let mut margin = f64::INFINITY;
            let mut xi = vec![0.0f32; dim];
            for k in 0..steps {
                margin = margin.min(net64.energies(&params, &x).1);
                let total = |x: &[f64]| net64.energies(&params, x).0.iter().sum::<f64>();
                let all: Vec<usize> = (0..rows * dim).collect();
                let g = central_diff(total, &x, &all);
                let global_step = update.global_step.wrapping_add(k);
                for row in 0..rows {
                    let chain = update.chain_offset + row as u32;
                    rng::fill_normal(update.seed, chain, global_step, Stream::Langevin, &mut xi);
                    let xr = &mut x[row * dim..][..dim];
                    let gr = &g[row * dim..][..dim];
                    for ((x, &g), &xi) in xr.iter_mut().zip(gr).zip(&xi) {
                        let g = match update.grad_clip.map(f64::from) {
                            Some(c) => g.clamp(-c, c),
                            None => g,
                        };
                        *x = (*x - step * g + noise * f64::from(xi)).clamp(lo, hi);
                    }
                }
            }
            if margin >= KINK_MARGIN {
                found = Some((x0, x));
                break;
            }
        }
        let (x0, want) = found.unwrap_or_else(|| panic!("{name}: no chain clear of kinks"));
        let chain = MlpChain {
            widths,
            activations,
            update,
            steps: steps as usize,
        };
        assert!(b.supports(&chain), "{name}");
        let mut x = up(b, &x0);
        chain.run(b, &net.param_values(), &mut x);
        // Compared as the step taken, x_K − x₀: x₀ itself would hide a wrong gradient.
        let moved =
            |x: &[f64]| -> Vec<f64> { x.iter().zip(&x0).map(|(a, &b)| a - f64::from(b)).collect() };
        let got = moved(&widen(&rd(b, &x)));
        // The chain holds x in f32, so each step rounds it to about ε·|x| whatever the
        // step's size: with small steps and little noise, Δ ≈ 1e-4 while x ≈ 1, and that
        // rounding alone is ~1e-3 of Δ (0.7 % of seeds failed a plain relative test). The
        // scale adds it: 2 roundings a step of ε|x|, divided by the tolerance. A wrong
        // gradient or noise term still moves Δ by 1e-5 or more, 10× past the allowance.
        let rounding = 2.0 * steps as f64 * f64::from(f32::EPSILON) / TOL_LINEAR;
        let want_moved = moved(&want);
        let scale: Vec<f64> = want_moved
            .iter()
            .zip(&want)
            .map(|(d, x)| d.abs() + rounding * x.abs())
            .collect();
        assert_close(
            &got,
            &want_moved,
            &scale,
            TOL_LINEAR,
            &format!("{name} fused chain"),
            &ctx,
        );
    }
}

on_both_backends!(check_mlp_chain, mlp_chain_cpu, mlp_chain_gpu);

/// `sum_squares` against Σ g² in f64, then Adam (PyTorch semantics; global-norm clipping off,
/// active and inactive) against its formula in f64: the new m and v, and the parameter step
/// p_new − p₀. The step rather than p_new, with |p₀| ≤ lr/100, so that the check sees the
/// update and not p₀, while a p₀ that is lost or double-counted is still a 1e-2 error.
fn check_adam<B: Backend>(b: &B, seed: u64) {
    let ctx = context(b, seed);
    let mut rng = StdRng::seed_from_u64(seed);
    let sizes = [1, 5, 33, 257, rng.random_range(2..600)];
    let grads: Vec<Vec<f32>> = sizes
        .iter()
        .map(|&n| uniform(&mut rng, n, -2.0, 2.0))
        .collect();
    let slots = grads.len();
    // One slot more than is summed, poisoned: Adam must read only `norm_slots` slots.
    let mut norms = up(b, &vec![1e6; slots + 1]);
    for (slot, g) in grads.iter().enumerate() {
        b.sum_squares(&up(b, g), &mut norms, slot);
    }
    let want_sq: Vec<f64> = grads
        .iter()
        .map(|g| g.iter().map(|&v| f64::from(v).powi(2)).sum())
        .collect();
    let got_sq = widen(&rd(b, &norms));
    assert_rel(
        &got_sq[..slots],
        &want_sq,
        TOL_POINTWISE,
        "sum_squares",
        &ctx,
    );
    let total_norm = want_sq.iter().sum::<f64>().sqrt();

    for clip in [
        None,
        Some(0.3 * total_norm as f32),
        Some(1e3 * total_norm as f32),
    ] {
        for g in &grads {
            let n = g.len();
            let t = rng.random_range(1..200);
            let (beta1, beta2) = [(0.9f32, 0.999f32), (0.5, 0.9)][rng.random_range(0..2)];
            let lr = [1e-3f32, 0.05, 1.0][rng.random_range(0..3)];
            let u = AdamUpdate {
                lr,
                beta1,
                beta2,
                eps: [1e-8f32, 1e-3][rng.random_range(0..2)],
                bias_correction1: 1.0 - beta1.powi(t),
                bias_correction2: 1.0 - beta2.powi(t),
                max_grad_norm: clip,
                norm_slots: slots,
            };
            let p0 = uniform(&mut rng, n, -0.01 * lr, 0.01 * lr);
            let m0 = uniform(&mut rng, n, -1.0, 1.0);
            let v0 = uniform(&mut rng, n, 0.0, 1.0);
            let (mut p, mut m, mut v) = (up(b, &p0), up(b, &m0), up(b, &v0));
            u.run(b, &mut p, &up(b, g), &mut m, &mut v, &norms);

            let f = f64::from;
            let clip_coef = clip.map_or(1.0, |c| (f(c) / (total_norm + 1e-6)).min(1.0));
            let mut want_m = vec![0.0; n];
            let mut want_v = vec![0.0; n];
            let mut want_step = vec![0.0; n];
            let mut m_magnitude = vec![0.0; n];
            let mut step_magnitude = vec![0.0; n];
            for i in 0..n {
                let gi = f(g[i]) * clip_coef;
                want_m[i] = f(beta1) * f(m0[i]) + (1.0 - f(beta1)) * gi;
                m_magnitude[i] = f(beta1) * f(m0[i]).abs() + (1.0 - f(beta1)) * gi.abs();
                want_v[i] = f(beta2) * f(v0[i]) + (1.0 - f(beta2)) * gi * gi;
                let m_hat = want_m[i] / f(u.bias_correction1);
                let v_hat = want_v[i] / f(u.bias_correction2);
                let denominator = v_hat.sqrt() + f(u.eps);
                want_step[i] = -f(lr) * m_hat / denominator;
                step_magnitude[i] = f(lr) * m_magnitude[i] / f(u.bias_correction1) / denominator;
            }
            let got_step: Vec<f64> = rd(b, &p)
                .iter()
                .zip(&p0)
                .map(|(&p, &p0)| f(p) - f(p0))
                .collect();
            let what = format!("adam n={n} t={t} {u:?}");
            let (got_m, got_v) = (widen(&rd(b, &m)), widen(&rd(b, &v)));
            let tol = TOL_POINTWISE;
            assert_close(
                &got_m,
                &want_m,
                &m_magnitude,
                tol,
                &format!("{what} m"),
                &ctx,
            );
            assert_rel(&got_v, &want_v, tol, &format!("{what} v"), &ctx);
            let what = format!("{what} step");
            assert_close(&got_step, &want_step, &step_magnitude, tol, &what, &ctx);
        }
    }
}

on_both_backends!(check_adam, adam_update_cpu, adam_update_gpu);

// ---------------------------------------------------------------------------------------------
// 7. Ops for residual nets, classifier heads and generators

/// `y[n, c, i, j] = x[n, c, i / f, j / f]` in f64.
fn upsample64(s: &UpsampleShape, x: &[f64]) -> Vec<f64> {
    let (h, w, f) = (s.height, s.width, s.factor);
    let (oh, ow) = (h * f, w * f);
    let mut y = vec![0.0; s.out_len()];
    for plane in 0..s.batch * s.channels {
        for i in 0..oh {
            for j in 0..ow {
                y[(plane * oh + i) * ow + j] = x[(plane * h + i / f) * w + j / f];
            }
        }
    }
    y
}

/// upsample_forward against the f64 [`upsample64`] (copies: exact), upsample_backward
/// against central differences of Σ r ⊙ upsample(x), and the adjoint identity
/// ⟨upsample(x), r⟩ = ⟨x, upsample_backward(r)⟩ on the backend's own outputs. Sums of f²
/// ≤ 16 terms: [`TOL_POINTWISE`] relative to the same sums of magnitudes.
fn check_upsample<B: Backend>(b: &B, seed: u64) {
    let ctx = context(b, seed);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut shapes = vec![UpsampleShape {
        batch: 1,
        channels: 1,
        height: 1,
        width: 1,
        factor: 3,
    }];
    for _ in 0..6 {
        shapes.push(UpsampleShape {
            batch: rng.random_range(1..=2),
            channels: [1, 2, 3, 5][rng.random_range(0..4)],
            height: rng.random_range(1..=6),
            width: rng.random_range(1..=6),
            factor: rng.random_range(1..=4),
        });
    }
    for s in shapes {
        let x = uniform(&mut rng, s.in_len(), -2.0, 2.0);
        let r = uniform(&mut rng, s.out_len(), -2.0, 2.0);
        let mut y = up(b, &vec![7.0; s.out_len()]);
        b.upsample_forward(s, &up(b, &x), &mut y);
        let mut dx = up(b, &vec![7.0; s.in_len()]);
        b.upsample_backward(s, &up(b, &r), &mut dx);

        let (x64, r64) = (widen(&x), widen(&r));
        let loss = |r: &[f64], x: &[f64]| -> f64 {
            let y = upsample64(&s, x);
            y.iter().zip(r).map(|(y, r)| y * r).sum()
        };
        let all: Vec<usize> = (0..s.in_len()).collect();
        let want_dx = central_diff(|t| loss(&r64, t), &x64, &all);
        let scale_dx = central_diff(|t| loss(&abs(&r64), t), &abs(&x64), &all);
        let (got_y, got_dx) = (widen(&rd(b, &y)), widen(&rd(b, &dx)));
        let what = format!("upsample {s:?}");
        let want_y = upsample64(&s, &x64);
        assert_rel(
            &got_y,
            &want_y,
            TOL_POINTWISE,
            &format!("{what} forward"),
            &ctx,
        );
        let (tol, w) = (TOL_POINTWISE, format!("{what} dx"));
        assert_close(&got_dx, &want_dx, &scale_dx, tol, &w, &ctx);

        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(a, b)| a * b).sum::<f64>();
        let lhs = dot(&got_y, &r64);
        let rhs = dot(&x64, &got_dx);
        let magnitude = dot(&abs(&got_y), &abs(&r64));
        assert_close(
            &[lhs],
            &[rhs],
            &[magnitude],
            tol,
            &format!("{what} adjoint"),
            &ctx,
        );
    }
}

on_both_backends!(check_upsample, upsample_cpu, upsample_gpu);

/// log Σ exp of one row in f64, max-shifted.
fn logsumexp64(row: &[f64]) -> f64 {
    let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln()
}

/// Row shapes for the reductions: a single value, one row, one column, rows longer than a
/// 256-thread workgroup, random.
fn reduction_shapes(rng: &mut StdRng) -> Vec<(usize, usize)> {
    vec![
        (1, 1),
        (1, 7),
        (6, 1),
        (5, 3),
        (3, 300),
        (rng.random_range(1..9), rng.random_range(1..80)),
    ]
}

/// row_logsumexp against the f64 log-sum-exp, and its gradient: central differences of
/// L = Σ_r w_r·lse_r(x) against row_softmax scaled per row by w (scale_rows), since
/// ∂lse_r/∂x[r, c] = softmax[r, c]. Rows are shifted by up to ±60, where an unshifted
/// f32 exp overflows. The log-sum-exp's error is relative to max|x| + ln(cols), the
/// magnitude of its terms; the gradient's terms do not cancel.
fn check_logsumexp<B: Backend>(b: &B, seed: u64) {
    let ctx = context(b, seed);
    let mut rng = StdRng::seed_from_u64(seed);
    for (rows, cols) in reduction_shapes(&mut rng) {
        let mut x = uniform(&mut rng, rows * cols, -3.0, 3.0);
        for row in x.chunks_mut(cols) {
            let shift = [0.0, 60.0, -60.0][rng.random_range(0..3)];
            row.iter_mut().for_each(|v| *v += shift);
        }
        let w = uniform(&mut rng, rows, -2.0, 2.0);
        let tx = up(b, &x);
        let mut lse = up(b, &vec![7.0; rows]);
        b.row_logsumexp(rows, cols, &tx, &mut lse);
        let mut p = up(b, &vec![7.0; rows * cols]);
        b.row_softmax(rows, cols, &tx, &mut p);
        let mut g = up(b, &vec![7.0; rows * cols]);
        b.scale_rows(rows, cols, 1.0, &p, &up(b, &w), &mut g);

        let (x64, w64) = (widen(&x), widen(&w));
        let want_lse: Vec<f64> = x64.chunks(cols).map(logsumexp64).collect();
        let scale_lse: Vec<f64> = x64
            .chunks(cols)
            .map(|row| row.iter().fold(0.0f64, |m, v| m.max(v.abs())) + (cols as f64).ln())
            .collect();
        let want_p: Vec<f64> = x64
            .chunks(cols)
            .flat_map(|row| {
                let l = logsumexp64(row);
                row.iter().map(move |v| (v - l).exp())
            })
            .collect();
        let loss = |x: &[f64]| -> f64 {
            let lse = x.chunks(cols).map(logsumexp64);
            lse.zip(&w64).map(|(l, w)| l * w).sum()
        };
        let all: Vec<usize> = (0..rows * cols).collect();
        let want_g = central_diff(loss, &x64, &all);

        let what = format!("{rows}×{cols}");
        let tol = TOL_POINTWISE;
        let got = widen(&rd(b, &lse));
        let w_lse = format!("row_logsumexp {what}");
        assert_close(&got, &want_lse, &scale_lse, tol, &w_lse, &ctx);
        let got_p = widen(&rd(b, &p));
        assert_rel(&got_p, &want_p, tol, &format!("row_softmax {what}"), &ctx);
        let got_g = widen(&rd(b, &g));
        let w_g = format!("∇ Σ w·lse = w·softmax {what}");
        assert_rel(&got_g, &want_g, tol, &w_g, &ctx);
    }
}

on_both_backends!(check_logsumexp, logsumexp_cpu, logsumexp_gpu);

/// The linear ops with their adjoints, each against f64 and central differences:
/// row_sum (forward) and broadcast_rows (∂/∂x of Σ_r w_r·α·Σ_c x[r, c]); gather_cols and
/// scatter_cols (∂/∂x of Σ_r w_r·x[r, index_r], α = 1 and α = −1/rows as a mean loss
/// would use); channel_bias_add and channel_sum (∂/∂bias of Σ dy ⊙ (y + bias[c])); add,
/// axpy and scale against their formulas.
fn check_linear_ops<B: Backend>(b: &B, seed: u64) {
    let ctx = context(b, seed);
    let mut rng = StdRng::seed_from_u64(seed);
    let tol = TOL_POINTWISE;
    for (rows, cols) in reduction_shapes(&mut rng) {
        let n = rows * cols;
        let what = format!("{rows}×{cols}");
        let x = uniform(&mut rng, n, -2.0, 2.0);
        let w = uniform(&mut rng, rows, -2.0, 2.0);
        let alpha = rng.random_range(-2.0f32..2.0);
        let (x64, w64, a64) = (widen(&x), widen(&w), f64::from(alpha));
        let all: Vec<usize> = (0..n).collect();

        // row_sum and broadcast_rows.
        let mut y = up(b, &vec![7.0; rows]);
        b.row_sum(rows, cols, alpha, &up(b, &x), &mut y);
        let want: Vec<f64> = x64
            .chunks(cols)
            .map(|r| a64 * r.iter().sum::<f64>())
            .collect();
        let scale: Vec<f64> = x64
            .chunks(cols)
            .map(|r| a64.abs() * r.iter().map(|v| v.abs()).sum::<f64>())
            .collect();
        let got = widen(&rd(b, &y));
        assert_close(&got, &want, &scale, tol, &format!("row_sum {what}"), &ctx);
        let mut g = up(b, &vec![7.0; n]);
        b.broadcast_rows(rows, cols, alpha, &up(b, &w), &mut g);
        let loss = |x: &[f64]| -> f64 {
            let sums = x.chunks(cols).map(|r| a64 * r.iter().sum::<f64>());
            sums.zip(&w64).map(|(s, w)| s * w).sum()
        };
        let want_g = central_diff(loss, &x64, &all);
        let got_g = widen(&rd(b, &g));
        assert_rel(
            &got_g,
            &want_g,
            tol,
            &format!("broadcast_rows {what}"),
            &ctx,
        );

        // gather_cols and scatter_cols.
        let index: Vec<f32> = (0..rows)
            .map(|_| rng.random_range(0..cols) as f32)
            .collect();
        let mut y = up(b, &vec![7.0; rows]);
        b.gather_cols(rows, cols, &up(b, &x), &up(b, &index), &mut y);
        let want: Vec<f64> = (0..rows)
            .map(|r| x64[r * cols + index[r] as usize])
            .collect();
        let got = widen(&rd(b, &y));
        assert_rel(&got, &want, tol, &format!("gather_cols {what}"), &ctx);
        for scatter_alpha in [1.0f32, -1.0 / rows as f32] {
            let mut g = up(b, &vec![7.0; n]);
            let (tw, ti) = (up(b, &w), up(b, &index));
            b.scatter_cols(rows, cols, scatter_alpha, &tw, &ti, &mut g);
            let sa = f64::from(scatter_alpha);
            let loss = |x: &[f64]| -> f64 {
                let picked = (0..rows).map(|r| x[r * cols + index[r] as usize]);
                sa * picked.zip(&w64).map(|(v, w)| v * w).sum::<f64>()
            };
            let want_g = central_diff(loss, &x64, &all);
            let got_g = widen(&rd(b, &g));
            let w_s = format!("scatter_cols α={scatter_alpha} {what}");
            assert_rel(&got_g, &want_g, tol, &w_s, &ctx);
        }

        // add, axpy, scale: y = a + b, y += α·x, x *= α on [..n] of a longer tensor.
        let (a, c) = (
            uniform(&mut rng, n + 1, -2.0, 2.0),
            uniform(&mut rng, n + 1, -2.0, 2.0),
        );
        let (a64, c64) = (widen(&a), widen(&c));
        let mut y = up(b, &vec![7.0; n + 1]);
        b.add(&up(b, &a), &up(b, &c), &mut y, n);
        let mut want: Vec<f64> = a64.iter().zip(&c64).map(|(a, c)| a + c).collect();
        want[n] = 7.0;
        let scale: Vec<f64> = a64
            .iter()
            .zip(&c64)
            .map(|(a, c)| a.abs() + c.abs())
            .collect();
        let got = widen(&rd(b, &y));
        assert_close(&got, &want, &scale, tol, &format!("add {what}"), &ctx);
        let mut y = up(b, &c);
        b.axpy(alpha, &up(b, &a), &mut y, n);
        let mut want: Vec<f64> = a64
            .iter()
            .zip(&c64)
            .map(|(a, c)| c + f64::from(alpha) * a)
            .collect();
        want[n] = c64[n];
        let scale: Vec<f64> = a64
            .iter()
            .zip(&c64)
            .map(|(a, c)| c.abs() + f64::from(alpha).abs() * a.abs())
            .collect();
        let got = widen(&rd(b, &y));
        assert_close(&got, &want, &scale, tol, &format!("axpy {what}"), &ctx);
        let mut y = up(b, &a);
        b.scale(alpha, &mut y, n);
        let mut want: Vec<f64> = a64.iter().map(|a| f64::from(alpha) * a).collect();
        want[n] = a64[n];
        let got = widen(&rd(b, &y));
        assert_rel(&got, &want, tol, &format!("scale {what}"), &ctx);
    }

    // channel_bias_add and channel_sum.
    for _ in 0..4 {
        let s = ChannelShape {
            batch: rng.random_range(1..=3),
            channels: [1, 3, 5, 6][rng.random_range(0..4)],
            pixels: [1, 4, 300][rng.random_range(0..3)],
        };
        let n = s.len();
        let y0 = uniform(&mut rng, n, -2.0, 2.0);
        let bias = uniform(&mut rng, s.channels, -2.0, 2.0);
        let dy = uniform(&mut rng, n, -2.0, 2.0);
        let mut y = up(b, &y0);
        b.channel_bias_add(s, &up(b, &bias), &mut y);
        let mut db = up(b, &vec![7.0; s.channels]);
        b.channel_sum(s, &up(b, &dy), &mut db);

        let (y64, bias64, dy64) = (widen(&y0), widen(&bias), widen(&dy));
        let forward = |bias: &[f64]| -> Vec<f64> {
            (0..n)
                .map(|i| y64[i] + bias[(i / s.pixels) % s.channels])
                .collect()
        };
        let scale: Vec<f64> = (0..n)
            .map(|i| y64[i].abs() + bias64[(i / s.pixels) % s.channels].abs())
            .collect();
        let what = format!("{s:?}");
        let got = widen(&rd(b, &y));
        let w_f = format!("channel_bias_add {what}");
        assert_close(&got, &forward(&bias64), &scale, tol, &w_f, &ctx);
        let loss =
            |bias: &[f64]| -> f64 { forward(bias).iter().zip(&dy64).map(|(y, d)| y * d).sum() };
        let which: Vec<usize> = (0..s.channels).collect();
        let want = central_diff(loss, &bias64, &which);
        let abs_dy = abs(&dy64);
        let scale: Vec<f64> = (0..s.channels)
            .map(|c| {
                (0..n)
                    .filter(|i| (i / s.pixels) % s.channels == c)
                    .map(|i| abs_dy[i])
                    .sum()
            })
            .collect();
        let got = widen(&rd(b, &db));
        assert_close(
            &got,
            &want,
            &scale,
            tol,
            &format!("channel_sum {what}"),
            &ctx,
        );
    }
}

on_both_backends!(check_linear_ops, linear_ops_cpu, linear_ops_gpu);

// ---------------------------------------------------------------------------------------------
// Spectral normalisation

/// x / max(‖x‖₂, 1e-12) in f64 (PyTorch's `F.normalize` with spectral_norm's eps).
fn normalize64(x: &[f64]) -> Vec<f64> {
    let norm = x.iter().map(|a| a * a).sum::<f64>().sqrt().max(1e-12);
    x.iter().map(|a| a / norm).collect()
}

/// PyTorch's spectral_norm forward in f64, written from its definition: when `iterate`,
/// v = normalize(Wᵀu), u = normalize(W v); σ = uᵀ W v; returns (u, v, σ, W / σ).
fn spectral_norm64(
    rows: usize,
    cols: usize,
    w: &[f64],
    u: &[f64],
    v: &[f64],
    iterate: bool,
) -> (Vec<f64>, Vec<f64>, f64, Vec<f64>) {
    let wv = |v: &[f64]| -> Vec<f64> {
        (0..rows)
            .map(|r| (0..cols).map(|c| w[r * cols + c] * v[c]).sum())
            .collect()
    };
    let (mut u, mut v) = (u.to_vec(), v.to_vec());
    if iterate {
        let wtu: Vec<f64> = (0..cols)
            .map(|c| (0..rows).map(|r| w[r * cols + c] * u[r]).sum())
            .collect();
        v = normalize64(&wtu);
        u = normalize64(&wv(&v));
    }
    let sigma: f64 = u.iter().zip(wv(&v)).map(|(a, b)| a * b).sum();
    let w_sn = w.iter().map(|x| x / sigma).collect();
    (u, v, sigma, w_sn)
}

/// Both spectral-norm ops against the f64 reference: u, v, σ and W/σ after one power
/// iteration and without it; the backward against central differences of
/// L(W) = ⟨R, W / σ(W)⟩ with σ(W) = uᵀ W v for the u, v the forward left (held fixed, as
/// PyTorch back-propagates); and the eps: a zero W (or u) gives u = v = 0 and σ = 0, not NaN.
fn check_spectral_norm<B: Backend>(b: &B, seed: u64) {
    let ctx = context(b, seed);
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5EC7);
    let shapes = [
        (1, 1),
        (1, 7),
        (6, 1),
        (5, 3),
        (3, 5),
        (17, 300),
        (rng.random_range(1..40), rng.random_range(1..300)),
    ];
    for (rows, cols) in shapes {
        let n = rows * cols;
        let w = uniform(&mut rng, n, -1.0, 1.0);
        let u0 = uniform(&mut rng, rows, -1.0, 1.0);
        let v0 = uniform(&mut rng, cols, -1.0, 1.0);
        let r = uniform(&mut rng, n, -1.0, 1.0);
        let w64 = widen(&w);
        for iterate in [true, false] {
            let what = format!("spectral_norm [{rows}, {cols}] iterate {iterate}");
            let (mut u, mut v) = (up(b, &u0), up(b, &v0));
            let (mut sigma, mut w_sn) = (up(b, &[7.0]), up(b, &vec![7.0; n]));
            b.spectral_norm_forward(
                rows,
                cols,
                &up(b, &w),
                &mut u,
                &mut v,
                &mut sigma,
                &mut w_sn,
                iterate,
            );
            let (u_got, v_got) = (widen(&rd(b, &u)), widen(&rd(b, &v)));
            let s_got = f64::from(rd(b, &sigma)[0]);
            let (u_want, v_want, s_want, w_sn_want) =
                spectral_norm64(rows, cols, &w64, &widen(&u0), &widen(&v0), iterate);
            assert_rel(&v_got, &v_want, TOL_LINEAR, &format!("{what}: v"), &ctx);
            assert_rel(&u_got, &u_want, TOL_LINEAR, &format!("{what}: u"), &ctx);
            assert_rel(
                &[s_got],
                &[s_want],
                TOL_LINEAR,
                &format!("{what}: sigma"),
                &ctx,
            );
            let w_sn_got = widen(&rd(b, &w_sn));
            assert_rel(
                &w_sn_got,
                &w_sn_want,
                TOL_LINEAR,
                &format!("{what}: w_sn"),
                &ctx,
            );

            // The backward, with u and v the forward's (fixed) and g = R.
            let mut dw = up(b, &vec![7.0; n]);
            b.spectral_norm_backward(rows, cols, &up(b, &r), &w_sn, &u, &v, &sigma, &mut dw);
            let r64 = widen(&r);
            let loss = |w: &[f64]| -> f64 {
                let sigma: f64 = (0..rows)
                    .map(|i| u_got[i] * (0..cols).map(|c| w[i * cols + c] * v_got[c]).sum::<f64>())
                    .sum();
                w.iter().zip(&r64).map(|(w, r)| r * w / sigma).sum()
            };
            let which = pick(&mut rng, n, ENTRIES_PER_TENSOR);
            let want = central_diff(loss, &w64, &which);
            let dot_abs: f64 = r64.iter().zip(&w_sn_want).map(|(a, b)| (a * b).abs()).sum();
            let scale: Vec<f64> = which
                .iter()
                .map(|&i| {
                    (r64[i].abs() + dot_abs * (u_got[i / cols] * v_got[i % cols]).abs())
                        / s_got.abs()
                })
                .collect();
            let dw_all = widen(&rd(b, &dw));
            let got: Vec<f64> = which.iter().map(|&i| dw_all[i]).collect();
            assert_close(
                &got,
                &want,
                &scale,
                TOL_LINEAR,
                &format!("{what}: dw"),
                &ctx,
            );
        }
    }

    // The eps: Wᵀu = 0 (a zero u, then a zero W) normalises to 0 instead of 0/0.
    let (rows, cols) = (4, 9);
    for (w, u0) in [
        (uniform(&mut rng, rows * cols, -1.0, 1.0), vec![0.0; rows]),
        (vec![0.0; rows * cols], uniform(&mut rng, rows, -1.0, 1.0)),
    ] {
        let (mut u, mut v) = (up(b, &u0), up(b, &vec![0.5; cols]));
        let (mut sigma, mut w_sn) = (up(b, &[7.0]), up(b, &vec![7.0; rows * cols]));
        b.spectral_norm_forward(
            rows,
            cols,
            &up(b, &w),
            &mut u,
            &mut v,
            &mut sigma,
            &mut w_sn,
            true,
        );
        let what = format!("spectral_norm with Wᵀu = 0 ({ctx})");
        assert_eq!(rd(b, &v), vec![0.0; cols], "{what}: v");
        assert_eq!(rd(b, &u), vec![0.0; rows], "{what}: u");
        assert_eq!(rd(b, &sigma), [0.0], "{what}: sigma");
    }
}

on_both_backends!(check_spectral_norm, spectral_norm_cpu, spectral_norm_gpu);

/// Repeated power iterations converge σ to the largest singular value: W = Q₁ diag(3, 2, 1) Q₂ᵀ
/// with two random rotations, so σ → 3 (error ∝ (2/3)^(2k)), and W/σ then has spectral norm 1.
fn check_spectral_norm_converges<B: Backend>(b: &B, seed: u64) {
    let ctx = context(b, seed);
    let mut rng = StdRng::seed_from_u64(seed ^ 0xC0417);
    // A random rotation: the product of rotations about the three axes.
    let mut rotation = || -> [[f64; 3]; 3] {
        let [a, bb, c] = [(); 3].map(|_| rng.random_range(0.0..std::f64::consts::TAU));
        let rx = [
            [1.0, 0.0, 0.0],
            [0.0, a.cos(), -a.sin()],
            [0.0, a.sin(), a.cos()],
        ];
        let ry = [
            [bb.cos(), 0.0, bb.sin()],
            [0.0, 1.0, 0.0],
            [-bb.sin(), 0.0, bb.cos()],
        ];
        let rz = [
            [c.cos(), -c.sin(), 0.0],
            [c.sin(), c.cos(), 0.0],
            [0.0, 0.0, 1.0],
        ];
        let mul = |p: [[f64; 3]; 3], q: [[f64; 3]; 3]| {
            let mut m = [[0.0; 3]; 3];
            for i in 0..3 {
                for j in 0..3 {
                    m[i][j] = (0..3).map(|k| p[i][k] * q[k][j]).sum();
                }
            }
            m
        };
        mul(mul(rx, ry), rz)
    };
    let (q1, q2) = (rotation(), rotation());
    let d = [3.0, 2.0, 1.0];
    let w: Vec<f32> = (0..9)
        .map(|e| {
            let (i, j) = (e / 3, e % 3);
            (0..3).map(|k| q1[i][k] * d[k] * q2[j][k]).sum::<f64>() as f32
        })
        .collect();
    let wt = up(b, &w);
    let (mut u, mut v) = (up(b, &uniform(&mut rng, 3, -1.0, 1.0)), up(b, &[0.0; 3]));
    let (mut sigma, mut w_sn) = (up(b, &[0.0]), up(b, &[0.0; 9]));
    for _ in 0..60 {
        b.spectral_norm_forward(3, 3, &wt, &mut u, &mut v, &mut sigma, &mut w_sn, true);
    }
    let s = f64::from(rd(b, &sigma)[0]);
    assert!(
        (s - 3.0).abs() <= 1e-5 * 3.0,
        "σ after 60 iterations: {s}, want 3 ({ctx})"
    );
    // W/σ has largest singular value 1: one more round on w_sn gives σ ≈ 1.
    let (mut s2, mut w_sn2) = (up(b, &[0.0]), up(b, &[0.0; 9]));
    b.spectral_norm_forward(3, 3, &w_sn, &mut u, &mut v, &mut s2, &mut w_sn2, true);
    let s2 = f64::from(rd(b, &s2)[0]);
    assert!((s2 - 1.0).abs() <= 1e-5, "σ(W/σ) = {s2}, want 1 ({ctx})");
}

on_both_backends!(
    check_spectral_norm_converges,
    spectral_norm_converges_cpu,
    spectral_norm_converges_gpu
);
