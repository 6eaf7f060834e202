//! The fused MLP chain (`sampler::MlpChain`, what `Langevin::run` uses for MLP
//! energies): GPU against CPU, and both against the layer-by-layer chain
//! (`Langevin::run_unfused`) that the rest of the suite checks against PyTorch and finite
//! differences. `finite_differences.rs` checks the fused chain against f64 directly.
//!
//! Shapes are fresh each run from `test_seed()` (`EBM_TEST_SEED` replays): widths from 1 to
//! the kernel's limit of 128, 0 to 4 hidden layers, every activation, chain counts that are
//! not multiples of the GPU's 8 chains per workgroup.

#[path = "common/gpu.rs"]
mod gpu_common;

use ebm::backend::{Activation, Backend, CpuBackend};
use ebm::nn::{EnergyNet, LayerSpec, Spec};
use ebm::sampler::{Langevin, LangevinConfig};
use ebm::sampler::{LangevinUpdate, MlpChain};
use gpu_common::{rel_err, test_seed};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// K steps of a few f32 dot products of ≤ 128 terms each, compared as one vector.
const TOL: f64 = 1e-4;

/// Step size and noise of the compared chains: the gradient term (0.2·∇E per step, with
/// |∂E/∂xᵢ| ~ 0.1–1 at init) outweighs the noise (0.002·ξ) several times over, so the
/// displacement x_K − x_0 is mostly −step·Σ∇E, and a chain that drops ∇E misses most of it.
/// `gradient_share` checks that this holds for the nets each run draws.
const STEP: f32 = 0.2;
const NOISE: f32 = 0.002;

/// x_K − x_0 in f64. Comparing x_K itself would hide the chain's work: x_0 is ~20× larger
/// than the displacement, so a chain with ∇E dropped stayed within the tolerance.
fn displacement(x: &[f32], x0: &[f32]) -> Vec<f32> {
    x.iter().zip(x0).map(|(&a, &b)| a - b).collect()
}

/// ‖d − d_noise‖ / ‖d‖: the share of the displacement `d` that the noise-only chain (same
/// sampler with step 0) does not explain.
fn gradient_share(d: &[f32], d_noise: &[f32]) -> f64 {
    rel_err(d_noise, d)
}

/// A random MLP spec: `widths` with a random activation after each hidden layer.
/// Whether the fused chain kernel runs an MLP of these widths and activations on `b`.
fn fused_runs<B: Backend>(b: &B, widths: &[usize], activations: &[Activation]) -> bool {
    let update = LangevinUpdate {
        rows: 1,
        dim: widths[0],
        step: 0.0,
        noise: 0.0,
        grad_clip: None,
        lo: -1.0,
        hi: 1.0,
        seed: 0,
        global_step: 0,
        chain_offset: 0,
    };
    let chain = MlpChain {
        widths: widths.to_vec(),
        activations: activations.to_vec(),
        update,
        steps: 1,
    };
    b.supports(&chain)
}

fn random_mlp(rng: &mut StdRng, widths: &[usize], slope: f32) -> Spec {
    let mut layers = Vec::new();
    for (i, io) in widths.windows(2).enumerate() {
        if i > 0 {
            layers.push(match rng.random_range(0..3) {
                0 => LayerSpec::Relu,
                1 => LayerSpec::LeakyRelu { slope },
                _ => LayerSpec::Silu,
            });
        }
        layers.push(LayerSpec::Linear {
            inputs: io[0],
            outputs: io[1],
        });
    }
    Spec::sequential(vec![widths[0]], layers)
}

fn random_widths(rng: &mut StdRng) -> Vec<usize> {
    let hidden = rng.random_range(0..=4);
    let mut widths = vec![rng.random_range(1..=9)];
    for _ in 0..hidden {
        widths.push(if rng.random_bool(0.3) {
            128
        } else {
            rng.random_range(1..=128)
        });
    }
    widths.push(1);
    widths
}

fn sampler(rng: &mut StdRng, steps: usize, step_size: f32, noise: f32) -> Langevin {
    Langevin {
        config: LangevinConfig {
            steps,
            step_size,
            noise,
            grad_clip: rng.random_bool(0.5).then_some(0.3),
            lo: -1.5,
            hi: 1.5,
        },
        seed: rng.random(),
    }
}

/// `sampler` on `spec` from `x0`, fused (`run`) or layer by layer, with parameters `params`.
fn sample<B: Backend>(
    b: &B,
    spec: &Spec,
    params: &[(String, Vec<f32>)],
    sampler: &Langevin,
    x0: &[f32],
    first_step: u64,
    fused: bool,
) -> Vec<f32> {
    let mut net = EnergyNet::from_params(b, spec, |name, _| {
        Ok(params
            .iter()
            .find(|(n, _)| n == name)
            .expect("param")
            .1
            .clone())
    })
    .expect("net");
    let rows = x0.len() / spec.input_len();
    let mut x = b.upload(x0).expect("upload");
    if fused {
        sampler
            .run(b, &mut net, &mut x, rows, first_step)
            .expect("run");
    } else {
        sampler
            .run_unfused(b, &mut net, &mut x, rows, first_step)
            .expect("run_unfused");
    }
    b.read(&x).expect("read")
}

fn init_params(spec: &Spec, seed: u64) -> Vec<(String, Vec<f32>)> {
    let cpu = CpuBackend::new();
    let net = EnergyNet::new(&cpu, spec, seed).expect("net");
    net.read_params(&cpu)
        .expect("params")
        .into_iter()
        .map(|(n, t)| (n, t.data))
        .collect()
}

fn uniform(rng: &mut StdRng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// On the CPU the fused chain and the layer-by-layer one draw the same noise and compute the
/// same gradients (up to summation order): their displacements x_K − x_0 agree to `TOL`.
///
/// Mutation that makes it fail (checked, then reverted): the fused CPU chain without ∇E,
/// `langevin_row(&update, row, xr, &vec![0.0; dim])` in src/backend/cpu/mlp_chain.rs
/// (relative error of the displacement ≈ the gradient share, ~0.9, against 1e-4).
#[test]
fn cpu_fused_chain_matches_layer_by_layer() {
    let seed = test_seed();
    let mut rng = StdRng::seed_from_u64(seed);
    let cpu = CpuBackend::new();
    let (mut moved, mut by_noise, mut worst) = (Vec::new(), Vec::new(), 0.0f64);
    for case in 0..6 {
        let widths = random_widths(&mut rng);
        let spec = random_mlp(&mut rng, &widths, 0.2);
        let params = init_params(&spec, rng.random());
        // 300 rows: several of the CPU's blocks, the last one partial.
        let rows = [1, 7, 300][case % 3];
        let x0 = uniform(&mut rng, rows * widths[0]);
        let s = sampler(&mut rng, 4, STEP, NOISE);
        let first = rng.random_range(0..1000);
        let fused = displacement(&sample(&cpu, &spec, &params, &s, &x0, first, true), &x0);
        let layered = displacement(&sample(&cpu, &spec, &params, &s, &x0, first, false), &x0);
        let err = rel_err(&fused, &layered);
        worst = worst.max(err);
        assert!(
            err <= TOL,
            "widths {widths:?}, {rows} rows: displacement fused vs layer-by-layer {err:.2e} \
             (seed {seed})"
        );
        let noise_only = Langevin {
            config: LangevinConfig {
                step_size: 0.0,
                ..s.config
            },
            seed: s.seed,
        };
        let d_noise = displacement(
            &sample(&cpu, &spec, &params, &noise_only, &x0, first, false),
            &x0,
        );
        moved.extend(layered);
        by_noise.extend(d_noise);
    }
    let share = gradient_share(&moved, &by_noise);
    eprintln!(
        "gradient share of the displacement: {share:.3}; worst displacement error {worst:.2e}"
    );
    assert!(
        share > 0.5,
        "the noise, not ∇E, drives these chains ({share:.3}); the comparison is weak (seed {seed})"
    );
}

/// With step 0 a chain is pure noise: the fused op must draw exactly the Philox normals of
/// the per-step update (same chain index, same global step), bit for bit on the CPU.
#[test]
fn fused_chain_noise_is_the_per_step_noise() {
    let seed = test_seed();
    let mut rng = StdRng::seed_from_u64(seed);
    let widths = vec![6, 20, 1];
    let spec = random_mlp(&mut rng, &widths, 0.2);
    let params = init_params(&spec, 1);
    let x0 = uniform(&mut rng, 37 * 6);
    let s = Langevin {
        config: LangevinConfig {
            steps: 3,
            step_size: 0.0,
            noise: 0.7,
            grad_clip: None,
            lo: -1.5,
            hi: 1.5,
        },
        seed,
    };
    let cpu = CpuBackend::new();
    let fused = sample(&cpu, &spec, &params, &s, &x0, 41, true);
    let layered = sample(&cpu, &spec, &params, &s, &x0, 41, false);
    assert_eq!(fused, layered, "seed {seed}");
    assert!(
        fused.contains(&1.5) && fused.contains(&-1.5),
        "the noise should reach the clamp"
    );

    let Some(gpu) = gpu_common::gpu() else { return };
    let on_gpu = sample(&*gpu, &spec, &params, &s, &x0, 41, true);
    let err = rel_err(&on_gpu, &fused);
    assert!(
        err <= 1e-6,
        "GPU fused noise vs CPU: {err:.2e} (seed {seed})"
    );
}

/// GPU fused and layer-by-layer chains against the CPU's fused chain, by displacement.
///
/// Mutation that makes it fail (checked, then reverted): `xv - p.step * 0.0 * g + …` in
/// shaders/mlp_chain.wgsl (the fused GPU chain without ∇E).
#[test]
fn gpu_fused_chain_matches_cpu() {
    let gpu = gpu_or_skip!();
    let cpu = CpuBackend::new();
    let seed = test_seed();
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut moved, mut by_noise, mut worst) = (Vec::new(), Vec::new(), 0.0f64);
    for case in 0..6 {
        let widths = random_widths(&mut rng);
        let spec = random_mlp(&mut rng, &widths, 0.1);
        let acts: Vec<Activation> = spec
            .layers
            .iter()
            .filter_map(|l| match l.op {
                LayerSpec::Relu => Some(Activation::Relu),
                LayerSpec::LeakyRelu { slope } => Some(Activation::LeakyRelu(slope)),
                LayerSpec::Silu => Some(Activation::Silu),
                _ => None,
            })
            .collect();
        assert!(fused_runs(&*gpu, &widths, &acts), "{widths:?}");
        let params = init_params(&spec, rng.random());
        let rows = [1, 8, 13, 70][case % 4];
        let x0 = uniform(&mut rng, rows * widths[0]);
        let s = sampler(&mut rng, 3, STEP, NOISE);
        let first = rng.random_range(0..1000);
        let on_cpu = displacement(&sample(&cpu, &spec, &params, &s, &x0, first, true), &x0);
        let on_gpu = displacement(&sample(&*gpu, &spec, &params, &s, &x0, first, true), &x0);
        let layered_gpu = displacement(&sample(&*gpu, &spec, &params, &s, &x0, first, false), &x0);
        for (what, got) in [("fused", &on_gpu), ("layer-by-layer", &layered_gpu)] {
            let err = rel_err(got, &on_cpu);
            worst = worst.max(err);
            assert!(
                err <= TOL,
                "widths {widths:?}, {rows} rows: displacement GPU {what} vs CPU fused \
                 {err:.2e} (seed {seed})"
            );
        }
        let noise_only = Langevin {
            config: LangevinConfig {
                step_size: 0.0,
                ..s.config
            },
            seed: s.seed,
        };
        by_noise.extend(displacement(
            &sample(&cpu, &spec, &params, &noise_only, &x0, first, false),
            &x0,
        ));
        moved.extend(on_cpu);
    }
    let share = gradient_share(&moved, &by_noise);
    eprintln!(
        "gradient share of the displacement: {share:.3}; worst displacement error {worst:.2e}"
    );
    assert!(
        share > 0.5,
        "the noise, not ∇E, drives these chains ({share:.3}); the comparison is weak (seed {seed})"
    );
}

/// A net past the kernel's limits (a 129-wide layer) is sampled layer by layer on the GPU,
/// with the same result; the fused op itself refuses it with a shape error, not a panic.
#[test]
fn gpu_falls_back_past_the_kernel_limits() {
    let gpu = gpu_or_skip!();
    let seed = test_seed();
    let mut rng = StdRng::seed_from_u64(seed);
    let widths = vec![3, 129, 1];
    assert!(!fused_runs(&*gpu, &widths, &[Activation::Silu]));
    let spec = Spec::mlp(3, 129, 1);
    let params = init_params(&spec, 5);
    let x0 = uniform(&mut rng, 9 * 3);
    let s = sampler(&mut rng, 2, 0.05, 0.02);
    let on_gpu = sample(&*gpu, &spec, &params, &s, &x0, 0, true);
    let on_cpu = sample(&CpuBackend::new(), &spec, &params, &s, &x0, 0, true);
    assert!(rel_err(&on_gpu, &on_cpu) <= TOL, "seed {seed}");

    let chain = MlpChain {
        widths,
        activations: vec![Activation::Silu],
        update: LangevinUpdate {
            rows: 9,
            dim: 3,
            step: 0.1,
            noise: 0.0,
            grad_clip: None,
            lo: -1.0,
            hi: 1.0,
            seed: 0,
            global_step: 0,
            chain_offset: 0,
        },
        steps: 1,
    };
    let w1 = gpu.zeros(129 * 3).unwrap();
    let b1 = gpu.zeros(129).unwrap();
    let w2 = gpu.zeros(129).unwrap();
    let b2 = gpu.zeros(1).unwrap();
    let mut x = gpu.zeros(27).unwrap();
    chain.run(&*gpu, &[&w1, &b1, &w2, &b2], &mut x);
    let err = gpu
        .flush()
        .expect_err("a 129-wide layer is past the kernel's limit");
    assert!(err.to_string().contains("129"), "{err}");
}

/// On the GPU the whole chain of an MLP is one dispatch, whatever K.
#[test]
fn gpu_fused_chain_is_one_dispatch() {
    let gpu = gpu_or_skip!();
    let spec = Spec::builtin("toy2d").expect("toy2d");
    let mut net = EnergyNet::new(&*gpu, &spec, 0).unwrap();
    let mut x = gpu.zeros(64 * 2).unwrap();
    let s = Langevin {
        config: LangevinConfig {
            steps: 20,
            step_size: 0.01,
            noise: 0.005,
            grad_clip: None,
            lo: -1.0,
            hi: 1.0,
        },
        seed: 0,
    };
    gpu.flush().unwrap();
    let before = gpu.counters();
    s.run(&*gpu, &mut net, &mut x, 64, 0).unwrap();
    gpu.flush().unwrap();
    let after = gpu.counters();
    // Copies of the parameters into the packed buffer are not dispatches; the kernel is one.
    assert_eq!(after.dispatches - before.dispatches, 1);
    assert_eq!(after.submissions - before.submissions, 1);
}

/// `chain` run as the fused op on `b` from `x0`, with parameters `params`.
fn fused_chain<B: Backend>(b: &B, chain: &MlpChain, params: &[Vec<f32>], x0: &[f32]) -> Vec<f32> {
    let params: Vec<B::Tensor> = params
        .iter()
        .map(|p| b.upload(p).expect("upload"))
        .collect();
    let mut x = b.upload(x0).expect("upload");
    chain.run(b, &params.iter().collect::<Vec<_>>(), &mut x);
    b.read(&x).expect("read")
}

/// The chain of `chain` layer by layer with the backend's own ops (linear, activation,
/// their backward passes, the Langevin update): the reference for the activations that
/// [`random_mlp`] does not draw (tanh, sigmoid, softplus, square).
fn layered_chain<B: Backend>(b: &B, chain: &MlpChain, params: &[Vec<f32>], x0: &[f32]) -> Vec<f32> {
    let (w, u) = (&chain.widths, &chain.update);
    let (rows, hidden) = (u.rows, w.len() - 2);
    let params: Vec<B::Tensor> = params
        .iter()
        .map(|p| b.upload(p).expect("upload"))
        .collect();
    let mut x = b.upload(x0).expect("upload");
    let shape = |l: usize| ebm::backend::LinearShape {
        batch: rows,
        inputs: w[l],
        outputs: w[l + 1],
    };
    for k in 0..chain.steps {
        let (mut pre, mut post) = (Vec::new(), Vec::new());
        for l in 0..hidden {
            let mut z = b.zeros(rows * w[l + 1]).expect("zeros");
            let input = if l == 0 { &x } else { &post[l - 1] };
            b.linear_forward(shape(l), input, &params[2 * l], &params[2 * l + 1], &mut z);
            let mut a = b.zeros(rows * w[l + 1]).expect("zeros");
            b.activation_forward(chain.activations[l], &z, &mut a);
            pre.push(z);
            post.push(a);
        }
        // dE/dE = 1 per chain, back through every layer to the input.
        let mut g = b.upload(&vec![1.0; rows]).expect("upload");
        for l in (0..=hidden).rev() {
            let mut g_in = b.zeros(rows * w[l]).expect("zeros");
            b.linear_backward_data(shape(l), &g, &params[2 * l], &mut g_in);
            g = if l > 0 {
                let mut d = b.zeros(rows * w[l]).expect("zeros");
                b.activation_backward(chain.activations[l - 1], &pre[l - 1], &g_in, &mut d);
                d
            } else {
                g_in
            };
        }
        let step = LangevinUpdate {
            global_step: u.global_step.wrapping_add(k as u32),
            ..*u
        };
        step.run(b, &mut x, &g);
    }
    b.read(&x).expect("read")
}

/// Random parameters for an MLP of `widths` (weights within ±2/√fan-in, biases within ±1)
/// and a 3-step chain of `rows` chains on it with random settings (clip or not, seed, step
/// counter, chain offset).
fn random_chain(
    rng: &mut StdRng,
    widths: &[usize],
    activations: &[Activation],
    rows: usize,
) -> (MlpChain, Vec<Vec<f32>>) {
    let params = widths
        .windows(2)
        .flat_map(|io| {
            let bound = 2.0 / (io[0] as f32).sqrt();
            let weight = (0..io[0] * io[1])
                .map(|_| rng.random_range(-bound..bound))
                .collect();
            [weight, uniform(rng, io[1])]
        })
        .collect();
    let chain = MlpChain {
        update: LangevinUpdate {
            rows,
            dim: widths[0],
            step: 0.05,
            noise: 0.02,
            grad_clip: rng.random_bool(0.5).then_some(0.3),
            lo: -1.5,
            hi: 1.5,
            seed: rng.random(),
            global_step: rng.random_range(0..1000),
            chain_offset: rng.random_range(0..1000),
        },
        widths: widths.to_vec(),
        activations: activations.to_vec(),
        steps: 3,
    };
    (chain, params)
}

/// Tanh, sigmoid, softplus and square in the fused chain (codes 3–6 of mlp_chain.wgsl, the
/// CPU's shared activation code): the fused chain against the layer-by-layer one on each
/// device, and the GPU's against the CPU's, with those activations mixed with SiLU and ReLU.
///
/// Square is drawn only for the first hidden layer: stacked squares make the energy a
/// polynomial of degree 2^k in x through wide layers, whose f32 rounding alone (not a bug)
/// grows past [`TOL`] (three squares through widths of ~100: 1.3e-4, seed 17).
#[test]
fn fused_chain_runs_tanh_sigmoid_softplus_square() {
    let cpu = CpuBackend::new();
    let gpu = gpu_common::gpu();
    let seed = test_seed();
    let mut rng = StdRng::seed_from_u64(seed);
    let first = [
        Activation::Tanh,
        Activation::Sigmoid,
        Activation::Softplus,
        Activation::Square,
    ];
    let rest = [
        Activation::Tanh,
        Activation::Sigmoid,
        Activation::Softplus,
        Activation::Silu,
        Activation::Relu,
    ];
    for case in 0..8 {
        let mut widths = random_widths(&mut rng);
        if widths.len() == 2 {
            widths.insert(1, rng.random_range(1..=128));
        }
        let hidden = widths.len() - 2;
        // The first hidden layer always gets a new activation; the rest at random.
        let activations: Vec<Activation> = (0..hidden)
            .map(|l| {
                if l == 0 {
                    first[case % first.len()]
                } else {
                    rest[rng.random_range(0..rest.len())]
                }
            })
            .collect();
        let rows = [1, 9, 70][case % 3];
        let (chain, params) = random_chain(&mut rng, &widths, &activations, rows);
        let x0 = uniform(&mut rng, rows * widths[0]);
        let what = format!("widths {widths:?}, {activations:?}, {rows} rows (seed {seed})");

        let on_cpu = fused_chain(&cpu, &chain, &params, &x0);
        let cpu_layered = layered_chain(&cpu, &chain, &params, &x0);
        let err = rel_err(&cpu_layered, &on_cpu);
        assert!(err <= TOL, "CPU layer-by-layer vs fused {err:.2e}: {what}");
        // The chain must have moved, or the comparison would prove nothing.
        assert!(
            rel_err(&on_cpu, &x0) > 1e-3,
            "the chain did not move: {what}"
        );

        let Some(gpu) = gpu.as_ref() else { continue };
        assert!(gpu.supports(&chain), "{what}");
        let on_gpu = fused_chain(&**gpu, &chain, &params, &x0);
        let gpu_layered = layered_chain(&**gpu, &chain, &params, &x0);
        for (name, got) in [("fused", &on_gpu), ("layer-by-layer", &gpu_layered)] {
            let err = rel_err(got, &on_cpu);
            assert!(err <= TOL, "GPU {name} vs CPU fused {err:.2e}: {what}");
        }
    }
}

/// The sampler's temperature is noise² / (2·step), and both factors are checked here
/// directly, fused and layer by layer, on the CPU and the GPU. (Training cannot check it:
/// tests/train_toy2d.rs trains as well at twice the temperature.) On the linear energy
/// E(x) = w·x + b, ∇E = w everywhere:
/// - drift: with no noise, K steps move every chain by exactly −K·step·w;
/// - diffusion: with step 0, K steps from 0 give N(0, K·noise²) per value; over 6000 values
///   the variance estimate has a relative sd of √(2/6000) = 1.8 %, so the ±10 % bound is
///   5.5 sd, and noise² off by 2× (twice the temperature) is 55 sd out.
///
/// Mutations that make it fail (checked, then reverted): in `langevin_row`
/// (src/backend/cpu/mod.rs, the CPU's fused and per-step update) `u.noise * 1.4142135 * z`
/// (variance ratio 1.97) and `0.5 * u.step * g` (drift error 0.5); in shaders/mlp_chain.wgsl
/// `p.noise * 1.4142135 * xi[j]` and in shaders/langevin.wgsl `p.noise * 1.4142135 * xi[k]`
/// (the GPU's fused and per-step chains: variance ratio 1.97). Unbroken: drift error 4e-8,
/// variance ratio 0.984 (seed 17, every device and path).
fn sampler_temperature<B: Backend>(b: &B) {
    let spec = Spec::sequential(
        vec![3],
        vec![LayerSpec::Linear {
            inputs: 3,
            outputs: 1,
        }],
    );
    let w = [0.3f32, -0.5, 0.2];
    let params: Vec<(String, Vec<f32>)> = init_params(&spec, 0)
        .into_iter()
        .map(|(name, v)| {
            let value = if name.ends_with("weight") {
                w.to_vec()
            } else {
                vec![0.1; v.len()]
            };
            (name, value)
        })
        .collect();
    let rows = 2000;
    let x0 = vec![0.0; rows * 3];
    let chain = |steps, step_size, noise| Langevin {
        config: LangevinConfig {
            steps,
            step_size,
            noise,
            grad_clip: None,
            lo: -100.0,
            hi: 100.0,
        },
        seed: 17,
    };
    for fused in [true, false] {
        let (k, step) = (5, 0.01f32);
        let drift = sample(b, &spec, &params, &chain(k, step, 0.0), &x0, 0, fused);
        let want: Vec<f32> = (0..rows * 3)
            .map(|i| -(k as f32) * step * w[i % 3])
            .collect();
        let err = rel_err(&drift, &want);
        assert!(
            err <= 1e-5,
            "{} fused {fused}: drift off by {err:.2e} of −K·step·∇E",
            b.name()
        );

        let (k, noise) = (4, 0.1f32);
        let moved = sample(b, &spec, &params, &chain(k, 0.0, noise), &x0, 3, fused);
        let var = moved.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / moved.len() as f64;
        let ratio = var / (k as f64 * (noise as f64).powi(2));
        eprintln!(
            "{} fused {fused}: drift error {err:.2e}, noise variance / K·noise² = {ratio:.4}",
            b.name()
        );
        assert!(
            (ratio - 1.0).abs() < 0.1,
            "{} fused {fused}: the noise variance is {ratio:.3} × K·noise²",
            b.name()
        );
    }
}

#[test]
fn cpu_sampler_temperature() {
    sampler_temperature(&CpuBackend::new());
}

#[test]
fn gpu_sampler_temperature() {
    let gpu = gpu_or_skip!();
    sampler_temperature(&*gpu);
}

/// The fused chain with 4 chains per GPU workgroup (`--mlp-chain-group 4`) gives the bits of
/// the default 8: each chain's sums are the same in the same order. Random MLPs (0–4 hidden
/// layers of up to 128, every activation, square included), and chain counts that fill no group, one, and
/// parts of several (1, 3, 4, 5, 13, 70), so that 4-chain groups end mid-way through
/// 8-chain ones; one input 33–128 wide. The chains must move, or equal bits would prove
/// nothing.
///
/// Mutation that makes it fail (checked, then reverted): one term of the 4-chain forward loop
/// scaled by 1.0000001 in shaders/mlp_chain.wgsl.
#[test]
fn gpu_chain_groups_give_the_same_bits() {
    use ebm::backend::gpu::{GpuOptions, MlpChainGroup};
    let seed = test_seed();
    let mut rng = StdRng::seed_from_u64(seed);
    let activations = [
        Activation::Relu,
        Activation::LeakyRelu(0.1),
        Activation::Silu,
        Activation::Tanh,
        Activation::Sigmoid,
        Activation::Softplus,
        Activation::Square,
    ];
    let cases: Vec<(MlpChain, Vec<Vec<f32>>, Vec<f32>)> = (0..6)
        .map(|case| {
            let mut widths = random_widths(&mut rng);
            if case == 5 {
                // An input wide enough that a workgroup's chains span two passes of its 128
                // threads (dim · chains > 128) in the loads, the update and the stores.
                widths[0] = rng.random_range(33..=128);
            }
            let acts: Vec<Activation> = (0..widths.len() - 2)
                .map(|_| activations[rng.random_range(0..activations.len())])
                .collect();
            let rows = [1, 3, 4, 5, 13, 70][case];
            let (chain, params) = random_chain(&mut rng, &widths, &acts, rows);
            let x0 = uniform(&mut rng, rows * widths[0]);
            (chain, params, x0)
        })
        .collect();
    let run_all = |group: MlpChainGroup| -> Option<Vec<Vec<f32>>> {
        let gpu = gpu_common::gpu_with(GpuOptions {
            mlp_chain_group: group,
            ..GpuOptions::default()
        })?;
        assert_eq!(gpu.mlp_chain_group(), group.chains());
        let out = cases
            .iter()
            .map(|(chain, params, x0)| {
                assert!(gpu.supports(chain), "{:?}", chain.widths);
                fused_chain(&*gpu, chain, params, x0)
            })
            .collect();
        Some(out)
    };
    let Some(by_eight) = run_all(MlpChainGroup::Eight) else {
        return;
    };
    let by_four = run_all(MlpChainGroup::Four).expect("the adapter opened once");
    for ((chain, _, x0), (eight, four)) in cases.iter().zip(by_eight.iter().zip(&by_four)) {
        let what = format!(
            "widths {:?}, {:?}, {} rows (seed {seed})",
            chain.widths, chain.activations, chain.update.rows
        );
        assert!(rel_err(eight, x0) > 1e-4, "the chain did not move: {what}");
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert!(
            bits(eight) == bits(four),
            "4-chain groups differ from 8: {what}"
        );
    }
}
