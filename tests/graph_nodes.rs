//! The graph nodes of spec v2 on fresh random shapes, on both backends, against a float64
//! reference written here from the formulas: `conv_transpose2d` (any kernel, stride,
//! padding and output padding, channels not multiples of 4), `tanh`, a residual `add` of a
//! node that two layers read, `upsample`, `global_avg_pool` and a linear head.
//!
//! The net is ct → tanh → add(tanh, ct) → upsample → global_avg_pool → linear, so every
//! new node's backward is on the path, and the conv-transpose output is read twice (its
//! gradient is a sum). The objective is L = Σₙ rₙ·E(xₙ) for random r. Checked:
//! - the GPU against the CPU: energies, ∇ₓL and every parameter gradient (relative error in
//!   the 2-norm ≤ 1e-4; the head's short sums, which can cancel to near 0, against a floor:
//!   see [`FLOOR`]);
//! - the CPU against the f64 reference: the energies, and ∇ₓL and the gradients of every
//!   parameter against f64 central differences of the reference (h = 1e-6; see
//!   tests/finite_differences.rs for why f64) — ≤ 1e-4, the same way.
//!
//! Shapes come from `EBM_TEST_SEED` (printed on failure) and change every run.
//!
//! Also the exact energies that `square` exists for, built from JSON with known parameters
//! and checked against their closed forms on both backends: the correlated Gaussian
//! E(x) = ½‖Lx‖² (∇E = LᵀLx, and one noise-free step of the fused MLP Langevin chain), and
//! the Gaussian mixture E(x) = −logsumexp_k(−‖x − μ_k‖²/2σ²) through the `neg_logsumexp`
//! head.

#[path = "common/gpu.rs"]
mod gpu_common;

use ebm::backend::{Activation, Backend};
use ebm::nn::{EnergyNet, LayerSpec, Net};
use ebm::sampler::{LangevinUpdate, MlpChain};
use ebm::{CpuBackend, Spec};
use gpu_common::{diff_norm, norm, rel_err, test_seed};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

const TOL: f64 = 1e-4;

#[derive(Clone, Copy, Debug)]
struct Shape {
    batch: usize,
    c: usize,
    d: usize,
    h: usize,
    w: usize,
    k: usize,
    s: usize,
    p: usize,
    op: usize,
    f: usize,
}

impl Shape {
    fn random(rng: &mut StdRng) -> Shape {
        loop {
            let k = rng.random_range(1..=4);
            let s = rng.random_range(1..=3);
            let sh = Shape {
                batch: rng.random_range(1..=3),
                c: rng.random_range(1..=5),
                d: rng.random_range(1..=6),
                h: rng.random_range(1..=5),
                w: rng.random_range(1..=5),
                k,
                s,
                p: rng.random_range(0..k),
                op: rng.random_range(0..s),
                f: rng.random_range(1..=3),
            };
            if sh.out(sh.h) >= 1 && sh.out(sh.w) >= 1 {
                return sh;
            }
        }
    }

    /// (n − 1)·s − 2p + k + op, as a signed number (below 1: no output).
    fn out(&self, n: usize) -> usize {
        let v = (n as i64 - 1) * self.s as i64 - 2 * self.p as i64 + self.k as i64 + self.op as i64;
        v.max(0) as usize
    }

    fn spec(&self) -> Spec {
        Spec::from_json(&format!(
            r#"{{"input":[{c},{h},{w}],"layers":[
                {{"type":"conv_transpose2d","name":"ct","in":{c},"out":{d},"kernel":{k},"stride":{s},"padding":{p},"output_padding":{op}}},
                {{"type":"tanh","name":"t"}},
                {{"type":"add","from":["t","ct"]}},
                {{"type":"upsample","factor":{f}}},
                {{"type":"global_avg_pool"}},
                {{"type":"linear","name":"head","in":{d},"out":1}}]}}"#,
            c = self.c,
            h = self.h,
            w = self.w,
            d = self.d,
            k = self.k,
            s = self.s,
            p = self.p,
            op = self.op,
            f = self.f
        ))
        .unwrap_or_else(|e| panic!("{self:?}: {e}"))
    }
}

/// The parameters in the net's order: ct.weight [c, d, k, k], ct.bias [d], head.weight
/// [1, d], head.bias [1].
type Params = [Vec<f64>; 4];

/// The f64 reference: E(x) for each sample.
fn energies(sh: &Shape, x: &[f64], p: &Params) -> Vec<f64> {
    let (ho, wo) = (sh.out(sh.h), sh.out(sh.w));
    let (c, d, k) = (sh.c, sh.d, sh.k);
    let per = c * sh.h * sh.w;
    (0..sh.batch)
        .map(|n| {
            let x = &x[n * per..][..per];
            // conv_transpose2d: each input pixel scatters a k×k patch.
            let mut y = vec![0.0; d * ho * wo];
            for o in 0..d {
                y[o * ho * wo..][..ho * wo]
                    .iter_mut()
                    .for_each(|v| *v = p[1][o]);
            }
            for i in 0..c {
                for hh in 0..sh.h {
                    for ww in 0..sh.w {
                        let xv = x[(i * sh.h + hh) * sh.w + ww];
                        for o in 0..d {
                            for kh in 0..k {
                                for kw in 0..k {
                                    let a = (hh * sh.s + kh) as i64 - sh.p as i64;
                                    let b = (ww * sh.s + kw) as i64 - sh.p as i64;
                                    if a < 0 || b < 0 || a >= ho as i64 || b >= wo as i64 {
                                        continue;
                                    }
                                    let wv = p[0][((i * d + o) * k + kh) * k + kw];
                                    y[(o * ho + a as usize) * wo + b as usize] += xv * wv;
                                }
                            }
                        }
                    }
                }
            }
            // tanh, the residual add, nearest upsampling (which leaves each channel's mean
            // unchanged: every pixel is copied f² times), the global average, the head.
            let mut e = p[3][0];
            for o in 0..d {
                let ch = &y[o * ho * wo..][..ho * wo];
                let mean = ch.iter().map(|v| v.tanh() + v).sum::<f64>() / (ho * wo) as f64;
                e += p[2][o] * mean;
            }
            e
        })
        .collect()
}

fn loss(sh: &Shape, x: &[f64], p: &Params, r: &[f64]) -> f64 {
    energies(sh, x, p).iter().zip(r).map(|(e, r)| e * r).sum()
}

/// Central differences of `loss` in every element of `v` (x, or one parameter tensor).
fn central(v: &[f64], mut at: impl FnMut(&[f64]) -> f64) -> Vec<f64> {
    let mut v = v.to_vec();
    (0..v.len())
        .map(|j| {
            let orig = v[j];
            let h = 1e-6 * orig.abs().max(1.0);
            v[j] = orig + h;
            let up = at(&v);
            v[j] = orig - h;
            let down = at(&v);
            v[j] = orig;
            (up - down) / (2.0 * h)
        })
        .collect()
}

struct Run {
    energies: Vec<f32>,
    grad_x: Vec<f32>,
    grads: Vec<Vec<f32>>,
}

fn run<B: Backend>(b: &B, sh: &Shape, x: &[f32], p: &[Vec<f32>], r: &[f32]) -> Run {
    let spec = sh.spec();
    let names = ["ct.weight", "ct.bias", "head.weight", "head.bias"];
    let mut net = Net::from_params(b, &spec, |name, _| {
        Ok(p[names.iter().position(|n| *n == name).unwrap()].clone())
    })
    .unwrap();
    let xt = b.upload(x).unwrap();
    let energies = b.read(net.forward(b, &xt, sh.batch).unwrap()).unwrap();
    net.backward(b, sh.batch, &b.upload(r).unwrap(), true, true)
        .unwrap();
    let grad_x = b.read(net.input_grad_tensor(sh.batch).unwrap()).unwrap();
    let grads = net
        .params()
        .iter()
        .map(|q| b.read(&q.grad).unwrap())
        .collect();
    Run {
        energies,
        grad_x,
        grads,
    }
}

/// The head's outputs E = w·pool + b and its gradients (Σₙ rₙ·poolₙ, Σₙ rₙ) are short sums
/// of terms of 0.1–1 that can cancel to near 0: an energy of 7e-5 once carried a rounding
/// error of 1e-8, 1.3e-4 of itself. [`check`] measures those against max(‖want‖, FLOOR·√n):
/// f32 rounding leaves them ≲ 1e-7 off, a wrong or missing term ≳ 1e-2, and TOL·FLOOR = 1e-6
/// keeps the two apart. Everything else is plain relative error.
const FLOOR: f64 = 1e-2;

/// ‖got − want‖₂ / ‖want‖₂ ≤ TOL, or / max(‖want‖₂, [`FLOOR`]·√n) for a sum that `cancels`.
fn check(what: &str, sh: &Shape, seed: u64, got: &[f32], want: &[f32], cancels: bool) {
    let floor = if cancels { FLOOR } else { 0.0 };
    let scale = norm(want).max(floor * (want.len() as f64).sqrt());
    let e = if scale > 0.0 {
        diff_norm(got, want) / scale
    } else {
        rel_err(got, want)
    };
    assert!(
        e <= TOL,
        "{what}: error {e:.3e} > {TOL:e} (floor {floor}) for {sh:?} (EBM_TEST_SEED={seed})"
    );
}

fn random(rng: &mut StdRng, n: usize, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|_| scale * (2.0 * rng.random::<f32>() - 1.0))
        .collect()
}

fn cases(mut each: impl FnMut(&Shape, &[f32], &[Vec<f32>], &[f32], u64)) {
    let seed = test_seed();
    let mut rng = StdRng::seed_from_u64(seed);
    for _ in 0..12 {
        let sh = Shape::random(&mut rng);
        let x = random(&mut rng, sh.batch * sh.c * sh.h * sh.w, 1.0);
        let p = vec![
            random(&mut rng, sh.c * sh.d * sh.k * sh.k, 0.7),
            random(&mut rng, sh.d, 0.3),
            random(&mut rng, sh.d, 1.0),
            random(&mut rng, 1, 0.3),
        ];
        let r = random(&mut rng, sh.batch, 1.0);
        each(&sh, &x, &p, &r, seed);
    }
}

#[test]
fn graph_nodes_cpu_match_f64_finite_differences() {
    let b = CpuBackend::new();
    cases(|sh, x, p, r, seed| {
        let ours = run(&b, sh, x, p, r);
        let wide = |v: &[f32]| v.iter().map(|&v| f64::from(v)).collect::<Vec<f64>>();
        let (x64, r64) = (wide(x), wide(r));
        let p64: Params = [wide(&p[0]), wide(&p[1]), wide(&p[2]), wide(&p[3])];
        let narrow = |v: Vec<f64>| v.into_iter().map(|v| v as f32).collect::<Vec<f32>>();
        check(
            "energies",
            sh,
            seed,
            &ours.energies,
            &narrow(energies(sh, &x64, &p64)),
            true,
        );
        let dx = central(&x64, |x| loss(sh, x, &p64, &r64));
        check("∇ₓL", sh, seed, &ours.grad_x, &narrow(dx), false);
        for (t, name) in ["ct.weight", "ct.bias", "head.weight", "head.bias"]
            .iter()
            .enumerate()
        {
            let want = central(&p64[t], |v| {
                let mut q = p64.clone();
                q[t] = v.to_vec();
                loss(sh, &x64, &q, &r64)
            });
            check(
                &format!("∂L/∂{name}"),
                sh,
                seed,
                &ours.grads[t],
                &narrow(want),
                name.starts_with("head"),
            );
        }
    });
}

#[test]
fn graph_nodes_gpu_match_cpu() {
    let Some(gpu) = gpu_common::gpu() else {
        return;
    };
    let cpu = CpuBackend::new();
    cases(|sh, x, p, r, seed| {
        let (on_gpu, on_cpu) = (run(&*gpu, sh, x, p, r), run(&cpu, sh, x, p, r));
        check(
            "energies",
            sh,
            seed,
            &on_gpu.energies,
            &on_cpu.energies,
            true,
        );
        check("∇ₓL", sh, seed, &on_gpu.grad_x, &on_cpu.grad_x, false);
        // ct.weight, ct.bias, then the head's two.
        for (t, (g, c)) in on_gpu.grads.iter().zip(&on_cpu.grads).enumerate() {
            check("a parameter gradient", sh, seed, g, c, t >= 2);
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Exact energies built with `square`

/// The Cholesky-style factor of the correlated Gaussian: E(x) = ½‖Lx‖², precision LᵀL =
/// [[1.64, 0.48], [0.48, 0.36]] (correlation 0.8 between the two coordinates).
const L: [[f32; 2]; 2] = [[1.0, 0.0], [0.8, 0.6]];

/// Points at which the closed forms are checked, [n, 2] row-major: the mode, both axes,
/// mixed signs, and a far point.
const POINTS: [f32; 12] = [
    0.0, 0.0, 1.0, -2.0, -0.7, 0.3, 2.5, 1.5, 0.0, 1.0, -3.0, -4.0,
];

/// Linear 2→2 with weight L (zero bias), square, linear 2→1 with weights ½: ½‖Lx‖².
const GAUSSIAN_SPEC: &str = r#"{
    "input": [2],
    "layers": [
        {"type": "linear", "name": "l", "in": 2, "out": 2},
        {"type": "square"},
        {"type": "linear", "name": "head", "in": 2, "out": 1}
    ]
}"#;

/// `{"type": "square"}` reads as [`LayerSpec::Square`], writes back the same, and like the
/// other field-less layers rejects fields.
#[test]
fn square_spec_json() {
    let spec = Spec::from_json(GAUSSIAN_SPEC).unwrap();
    assert_eq!(spec.layers[1].op, LayerSpec::Square);
    assert_eq!(spec.layers[1].op.type_name(), "square");
    assert!(
        spec.to_json().contains(r#""type":"square""#),
        "{}",
        spec.to_json()
    );
    assert_eq!(Spec::from_json(&spec.to_json()).unwrap(), spec);
    let with_field =
        GAUSSIAN_SPEC.replace(r#"{"type": "square"}"#, r#"{"type": "square", "slope": 2}"#);
    assert!(Spec::from_json(&with_field).is_err());
}

fn gaussian_net<B: Backend>(b: &B) -> EnergyNet<B> {
    let spec = Spec::from_json(GAUSSIAN_SPEC).expect("the Gaussian spec parses");
    EnergyNet::from_params(b, &spec, |name, shape| {
        Ok(match name {
            "l.weight" => L.concat(),
            "head.weight" => vec![0.5, 0.5],
            _ => vec![0.0; shape.iter().product()],
        })
    })
    .expect("the Gaussian net builds")
}

/// ½‖Lx‖² and LᵀLx for each point, in f64.
fn gaussian_closed_form(x: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let l = L.map(|row| row.map(f64::from));
    let (mut e, mut g) = (Vec::new(), Vec::new());
    for p in x.chunks(2) {
        let (x0, x1) = (f64::from(p[0]), f64::from(p[1]));
        let lx = [l[0][0] * x0 + l[0][1] * x1, l[1][0] * x0 + l[1][1] * x1];
        e.push((0.5 * (lx[0] * lx[0] + lx[1] * lx[1])) as f32);
        // Lᵀ(Lx).
        g.push((l[0][0] * lx[0] + l[1][0] * lx[1]) as f32);
        g.push((l[0][1] * lx[0] + l[1][1] * lx[1]) as f32);
    }
    (e, g)
}

fn check_exact(what: &str, got: &[f32], want: &[f32]) {
    let e = rel_err(got, want);
    assert!(
        e <= 1e-6,
        "{what}: relative error {e:.3e} > 1e-6\n  got  {got:?}\n  want {want:?}"
    );
}

/// E(x) = ½‖Lx‖² and ∇E = LᵀLx at [`POINTS`], each point alone and all in one batch; and
/// one step of the fused Langevin chain (the spec is an MLP, so samplers run it fused) with
/// no noise: x − step·LᵀLx.
fn check_correlated_gaussian<B: Backend>(b: &B) {
    let mut net = gaussian_net(b);
    assert_eq!(
        net.mlp_layout(),
        Some((vec![2, 2, 1], vec![Activation::Square])),
        "the Gaussian spec is an MLP with a square hidden activation"
    );
    let (want_e, want_g) = gaussian_closed_form(&POINTS);
    // The hand-computed values of the closed form itself at (1, −2): Lx = (1, −0.4).
    assert!((want_e[1] - 0.58).abs() < 1e-6 && (want_g[2] - 0.68).abs() < 1e-6);
    assert!((want_g[3] + 0.24).abs() < 1e-6);

    let (e, g) = net.energies_and_grad(b, &POINTS).unwrap();
    check_exact(&format!("{} E(x), batch", b.name()), &e, &want_e);
    check_exact(&format!("{} ∇E(x), batch", b.name()), &g, &want_g);
    for (i, p) in POINTS.chunks(2).enumerate() {
        let (e, g) = net.energies_and_grad(b, p).unwrap();
        let what = format!("{} at {p:?}", b.name());
        check_exact(&format!("E {what}"), &e, &want_e[i..i + 1]);
        check_exact(&format!("∇E {what}"), &g, &want_g[2 * i..2 * i + 2]);
    }

    let rows = POINTS.len() / 2;
    let step = 0.1f32;
    let chain = MlpChain {
        update: LangevinUpdate {
            rows,
            dim: 2,
            step,
            noise: 0.0,
            grad_clip: None,
            lo: -100.0,
            hi: 100.0,
            seed: 5,
            global_step: 0,
            chain_offset: 0,
        },
        widths: vec![2, 2, 1],
        activations: vec![Activation::Square],
        steps: 1,
    };
    let mut x = b.upload(&POINTS).unwrap();
    chain.run(b, &net.param_values(), &mut x);
    let moved = b.read(&x).unwrap();
    let want: Vec<f32> = POINTS
        .iter()
        .zip(&want_g)
        .map(|(x, g)| x - step * g)
        .collect();
    check_exact(&format!("{} fused Langevin step", b.name()), &moved, &want);
}

#[test]
fn square_gives_the_exact_correlated_gaussian_on_cpu() {
    check_correlated_gaussian(&CpuBackend::new());
}

#[test]
fn square_gives_the_exact_correlated_gaussian_on_gpu() {
    let Some(gpu) = gpu_common::gpu() else {
        return;
    };
    check_correlated_gaussian(&*gpu);
}

/// Eight components, σ = 0.5, means on a circle of radius 2.
const SIGMA: f64 = 0.5;

fn mixture_means() -> Vec<[f64; 2]> {
    (0..8)
        .map(|k| {
            let a = std::f64::consts::TAU * k as f64 / 8.0;
            [2.0 * a.cos(), 2.0 * a.sin()]
        })
        .collect()
}

/// Linear 2→16 (row 2k + j gives x_j − μ_kj), square, linear 16→8 (row k sums its pair
/// times −1/2σ²), then E(x) = −logsumexp of the 8 logits.
fn check_gaussian_mixture<B: Backend>(b: &B) {
    let spec = Spec::from_json(
        r#"{
            "input": [2],
            "layers": [
                {"type": "linear", "name": "centre", "in": 2, "out": 16},
                {"type": "square"},
                {"type": "linear", "name": "sum", "in": 16, "out": 8}
            ],
            "output": {"energy": "neg_logsumexp", "classes": 8}
        }"#,
    )
    .expect("the mixture spec parses");
    let means = mixture_means();
    let mut net = EnergyNet::from_params(b, &spec, |name, _| {
        let mut v;
        match name {
            "centre.weight" => {
                v = vec![0.0f32; 16 * 2];
                for r in 0..16 {
                    v[r * 2 + r % 2] = 1.0;
                }
            }
            "centre.bias" => v = means.iter().flatten().map(|&m| -m as f32).collect(),
            "sum.weight" => {
                v = vec![0.0f32; 8 * 16];
                for k in 0..8 {
                    v[k * 16 + 2 * k] = (-0.5 / (SIGMA * SIGMA)) as f32;
                    v[k * 16 + 2 * k + 1] = (-0.5 / (SIGMA * SIGMA)) as f32;
                }
            }
            _ => v = vec![0.0; 8],
        }
        Ok(v)
    })
    .expect("the mixture net builds");

    // −logsumexp_k(−‖x − μ_k‖²/2σ²) and its gradient Σ_k p_k (x − μ_k)/σ², in f64.
    let (mut want_e, mut want_g) = (Vec::new(), Vec::new());
    for p in POINTS.chunks(2) {
        let x = [f64::from(p[0]), f64::from(p[1])];
        let logits: Vec<f64> = means
            .iter()
            .map(|m| -((x[0] - m[0]).powi(2) + (x[1] - m[1]).powi(2)) / (2.0 * SIGMA * SIGMA))
            .collect();
        let top = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = logits.iter().map(|f| (f - top).exp()).sum();
        want_e.push((-(top + sum.ln())) as f32);
        for j in 0..2 {
            let g: f64 = means
                .iter()
                .zip(&logits)
                .map(|(m, f)| (f - top).exp() / sum * (x[j] - m[j]) / (SIGMA * SIGMA))
                .sum();
            want_g.push(g as f32);
        }
    }
    let (e, g) = net.energies_and_grad(b, &POINTS).unwrap();
    // The far point's logits reach −1e2: a few f32 roundings of that size in the energy.
    let tol = 1e-5;
    let (err_e, err_g) = (rel_err(&e, &want_e), rel_err(&g, &want_g));
    assert!(
        err_e <= tol && err_g <= tol,
        "{}: mixture E error {err_e:.2e}, ∇E error {err_g:.2e}\n  E  {e:?}\n  want {want_e:?}\n  \
         ∇E {g:?}\n  want {want_g:?}",
        b.name()
    );
}

#[test]
fn square_gives_the_exact_gaussian_mixture_on_cpu() {
    check_gaussian_mixture(&CpuBackend::new());
}

#[test]
fn square_gives_the_exact_gaussian_mixture_on_gpu() {
    let Some(gpu) = gpu_common::gpu() else {
        return;
    };
    check_gaussian_mixture(&*gpu);
}
