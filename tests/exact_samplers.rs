//! The exact samplers (MALA, HMC): their Metropolis tests against an f64 reference of the
//! MH ratio and the Hamiltonian, GPU against CPU decision for decision, and their samples
//! against targets whose densities are known in closed form.
//!
//! Kernel shapes and values are fresh each run from `test_seed()` (`EBM_TEST_SEED` replays).

#[path = "common/gpu.rs"]
mod gpu_common;

use ebm::backend::{Backend, CpuBackend};
use ebm::nn::{EnergyNet, Spec};
use ebm::rng::{self, Stream};
use ebm::sampler::metropolis::{Acceptance, HmcAccept, HmcMomentum, MalaAccept, MetropolisTest};
use ebm::sampler::{ExactChains, ExactConfig, Hmc, Langevin, LangevinConfig, Mala};
use gpu_common::test_seed;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// A test whose |log α − log u| is below this may round either way in f32: the reference
/// does not hold the kernels to it.
const TIE: f64 = 1e-4;

/// Random chains and proposals for one Metropolis test: some proposals leave the box.
struct Case {
    test: MetropolisTest,
    x: Vec<f32>,
    grad: Vec<f32>,
    energy: Vec<f32>,
    x_prop: Vec<f32>,
    grad_prop: Vec<f32>,
    energy_prop: Vec<f32>,
    momentum_end: Vec<f32>,
    stats: Vec<f32>,
}

impl Case {
    fn new(seed: u64) -> Case {
        let mut r = StdRng::seed_from_u64(seed);
        let rows = r.random_range(1..300);
        let dim = r.random_range(1..12);
        let test = MetropolisTest {
            rows,
            dim,
            eps: r.random_range(0.01..0.3),
            temperature: r.random_range(0.3..2.0),
            lo: -2.0,
            hi: 2.0,
            seed: r.random(),
            global_step: r.random_range(0..1000),
            chain_offset: 0,
        };
        let mut v =
            |n: usize, s: f32| -> Vec<f32> { (0..n).map(|_| r.random_range(-s..s)).collect() };
        let len = rows * dim;
        let x = v(len, 1.8);
        // Small moves mostly, so that both outcomes are common; ~1 in 20 rows leaves the box.
        let x_prop: Vec<f32> = x.iter().zip(v(len, 0.3)).map(|(a, d)| a + d).collect();
        Case {
            test,
            grad: v(len, 1.0),
            grad_prop: v(len, 1.0),
            energy: v(rows, 1.0),
            energy_prop: v(rows, 1.0),
            momentum_end: v(len, 1.5),
            stats: v(2 * rows, 3.0).iter().map(|s| s.abs().round()).collect(),
            x,
            x_prop,
        }
    }

    /// log α of chain `row` in f64, and whether the proposal left the box.
    fn log_alpha(&self, row: usize, hmc: bool) -> (f64, bool) {
        let t = &self.test;
        let at = row * t.dim..(row + 1) * t.dim;
        let f = |v: &[f32]| -> Vec<f64> { v[at.clone()].iter().map(|&a| a as f64).collect() };
        let (x, g, xp, gp, pl) = (
            f(&self.x),
            f(&self.grad),
            f(&self.x_prop),
            f(&self.grad_prop),
            f(&self.momentum_end),
        );
        let inv_t = 1.0 / t.temperature as f64;
        let energy = -(self.energy_prop[row] as f64 - self.energy[row] as f64) * inv_t;
        let ratio = if hmc {
            // p₀ is the momentum draw of this chain and step: stream 6, 4 normals per block.
            let p0: Vec<f64> = (0..t.dim)
                .map(|i| {
                    let w = rng::words(
                        t.seed,
                        (i / 4) as u32,
                        row as u32,
                        t.global_step,
                        Stream::HmcMomentum,
                    );
                    rng::normals(w)[i % 4] as f64
                })
                .collect();
            0.5 * (p0.iter().map(|p| p * p).sum::<f64>() - pl.iter().map(|p| p * p).sum::<f64>())
        } else {
            // log q(x | x') − log q(x' | x) for q(y | x) = N(y; x − (ε/T)∇E(x), 2ε I).
            let (eps, drift) = (t.eps as f64, t.eps as f64 * inv_t);
            let forward: f64 = (0..t.dim)
                .map(|i| (xp[i] - x[i] + drift * g[i]).powi(2))
                .sum();
            let backward: f64 = (0..t.dim)
                .map(|i| (x[i] - xp[i] + drift * gp[i]).powi(2))
                .sum();
            (forward - backward) / (4.0 * eps)
        };
        let out = xp.iter().any(|&v| v < t.lo as f64 || v > t.hi as f64);
        (energy + ratio, out)
    }

    /// The uniform of chain `row`'s test: Philox stream 5, element 0.
    fn log_u(&self, row: usize) -> f64 {
        let t = &self.test;
        let w = rng::words(t.seed, 0, row as u32, t.global_step, Stream::Metropolis);
        (rng::uniform(w[0]) as f64).ln()
    }

    /// Run the kernel on `b`; returns (x, grad, energy, stats) after it.
    fn run<B: Backend>(&self, b: &B, hmc: bool) -> [Vec<f32>; 4] {
        let up = |v: &[f32]| b.upload(v).unwrap();
        let (mut x, mut g, mut e, mut s) = (
            up(&self.x),
            up(&self.grad),
            up(&self.energy),
            up(&self.stats),
        );
        let (xp, gp, ep, pl) = (
            up(&self.x_prop),
            up(&self.grad_prop),
            up(&self.energy_prop),
            up(&self.momentum_end),
        );
        if hmc {
            HmcAccept(self.test).run(b, [&xp, &gp, &ep, &pl], [&mut x, &mut g, &mut e], &mut s);
        } else {
            MalaAccept(self.test).run(b, [&xp, &gp, &ep], [&mut x, &mut g, &mut e], &mut s);
        }
        [
            b.read(&x).unwrap(),
            b.read(&g).unwrap(),
            b.read(&e).unwrap(),
            b.read(&s).unwrap(),
        ]
    }

    /// Check a kernel's result against the f64 reference: every decision not within `TIE`
    /// of a tie, the state each decision implies, and the accumulated statistics. Returns
    /// the decisions made.
    fn check(&self, [x, g, e, s]: &[Vec<f32>; 4], hmc: bool, what: &str) -> Vec<bool> {
        let (rows, dim) = (self.test.rows, self.test.dim);
        let mut decisions = vec![];
        for row in 0..rows {
            let (log_alpha, out) = self.log_alpha(row, hmc);
            let at = row * dim..(row + 1) * dim;
            let accepted =
                x[at.clone()] == self.x_prop[at.clone()] && x[at.clone()] != self.x[at.clone()];
            let want = !out && self.log_u(row) < log_alpha;
            if out || (log_alpha - self.log_u(row)).abs() > TIE {
                assert_eq!(
                    accepted,
                    want,
                    "{what} chain {row}: log α {log_alpha}, log u {}, out {out}",
                    self.log_u(row)
                );
            }
            let (want_x, want_g, want_e) = if accepted {
                (&self.x_prop, &self.grad_prop, self.energy_prop[row])
            } else {
                (&self.x, &self.grad, self.energy[row])
            };
            assert_eq!(x[at.clone()], want_x[at.clone()], "{what} chain {row} x");
            assert_eq!(g[at.clone()], want_g[at.clone()], "{what} chain {row} ∇E");
            assert_eq!(e[row], want_e, "{what} chain {row} E");
            assert_eq!(
                s[row],
                self.stats[row] + f32::from(u8::from(accepted)),
                "{what} chain {row} count"
            );
            let prob = if out { 0.0 } else { log_alpha.min(0.0).exp() };
            let got = (s[rows + row] - self.stats[rows + row]) as f64;
            assert!(
                (got - prob).abs() < 1e-4,
                "{what} chain {row}: min(1, α) {got}, want {prob}"
            );
            decisions.push(accepted);
        }
        let share = decisions.iter().filter(|&&a| a).count() as f64 / rows as f64;
        if rows > 100 {
            assert!(
                (0.05..0.95).contains(&share),
                "{what}: {share} accepted: the case tests too little"
            );
        }
        decisions
    }
}

/// A kernel run on the GPU: (case, hmc) → (x, grad, energy, stats).
type GpuRun<'a> = &'a dyn Fn(&Case, bool) -> [Vec<f32>; 4];

fn metropolis_tests_match_f64(gpu: Option<GpuRun>) {
    let seed = test_seed();
    for (i, hmc) in [(0, false), (1, true), (2, false), (3, true)] {
        let case = Case::new(seed.wrapping_add(i));
        let name = if hmc { "hmc_accept" } else { "mala_accept" };
        let what = format!(
            "{name} seed {seed}+{i} ({} × {})",
            case.test.rows, case.test.dim
        );
        let cpu = case.run(&CpuBackend::new(), hmc);
        let on_cpu = case.check(&cpu, hmc, &format!("CPU {what}"));
        if let Some(run_gpu) = gpu {
            let on_gpu = case.check(&run_gpu(&case, hmc), hmc, &format!("GPU {what}"));
            let differ = on_cpu.iter().zip(&on_gpu).filter(|(a, b)| a != b).count();
            assert!(
                differ <= 1,
                "GPU {what}: {differ} decisions differ from the CPU's"
            );
        }
    }
}

#[test]
fn cpu_metropolis_tests_match_f64() {
    metropolis_tests_match_f64(None);
}

#[test]
fn gpu_metropolis_tests_match_f64_and_cpu() {
    let gpu = gpu_or_skip!();
    metropolis_tests_match_f64(Some(&|case: &Case, hmc: bool| case.run(&*gpu, hmc)));
}

#[test]
fn hmc_momenta_are_stream_6_on_both_devices() {
    let seed = test_seed();
    let case = Case::new(seed);
    let t = case.test;
    let draw = |b: &dyn Fn(&mut Vec<f32>)| {
        let mut p = vec![0.0; t.rows * t.dim];
        b(&mut p);
        p
    };
    let cpu = draw(&|p| {
        let b = CpuBackend::new();
        let mut m = b.zeros(p.len()).unwrap();
        HmcMomentum(t).run(&b, &mut m);
        *p = b.read(&m).unwrap();
    });
    for row in 0..t.rows {
        for i in 0..t.dim {
            let w = rng::words(
                t.seed,
                (i / 4) as u32,
                row as u32,
                t.global_step,
                Stream::HmcMomentum,
            );
            assert_eq!(
                cpu[row * t.dim + i],
                rng::normals(w)[i % 4],
                "seed {seed} row {row} element {i}"
            );
        }
    }
    let Some(gpu) = gpu_common::gpu() else { return };
    let mut m = gpu.zeros(cpu.len()).unwrap();
    HmcMomentum(t).run(&*gpu, &mut m);
    let on_gpu = gpu.read(&m).unwrap();
    let err = gpu_common::rel_err(&on_gpu, &cpu);
    assert!(
        err < 1e-6,
        "seed {seed}: GPU momenta differ from the CPU's by {err}"
    );
}

/// E(x) = a·x on the box [−2, 2]²: the target exp(−a·x) is a product of two truncated
/// exponentials, whose mean and variance are known in closed form. A linear energy has no
/// curvature, so Langevin's only error here is at the box: ULA clamps, and piles mass on
/// the walls; the exact samplers reject, and have none there.
fn linear_net<B: Backend>(b: &B, a: [f32; 2]) -> EnergyNet<B> {
    let spec =
        Spec::from_json(r#"{"input": [2], "layers": [{"type": "linear", "in": 2, "out": 1}]}"#)
            .unwrap();
    EnergyNet::from_params(b, &spec, |name, _| {
        Ok(if name.ends_with("weight") {
            a.to_vec()
        } else {
            vec![0.0]
        })
    })
    .unwrap()
}

/// Mean and variance of the density ∝ e^(−a·x) on [lo, hi].
fn truncated_exponential(a: f64, lo: f64, hi: f64) -> (f64, f64) {
    // Numerically, on a fine grid: exact to far below the statistical tolerance.
    let n = 200_000;
    let (mut z, mut m1, mut m2) = (0.0, 0.0, 0.0);
    for i in 0..n {
        let x = lo + (hi - lo) * (i as f64 + 0.5) / n as f64;
        let w = (-a * x).exp();
        z += w;
        m1 += w * x;
        m2 += w * x * x;
    }
    let mean = m1 / z;
    (mean, m2 / z - mean * mean)
}

/// Sample mean and variance of coordinate `i` of `x` `[n, 2]`, and the standard errors of
/// both (from the sample's own second and fourth central moments).
fn moments(x: &[f32], i: usize) -> (f64, f64, f64, f64) {
    let v: Vec<f64> = x.chunks(2).map(|p| p[i] as f64).collect();
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / n;
    let m4 = v.iter().map(|a| (a - mean).powi(4)).sum::<f64>() / n;
    (mean, var, (var / n).sqrt(), ((m4 - var * var) / n).sqrt())
}

const CHAINS: usize = 4000;
const BOX: f32 = 2.0;

fn exact_samples<B: Backend>(
    b: &B,
    net: &mut EnergyNet<B>,
    hmc: bool,
    step: f32,
    steps: usize,
) -> (Vec<f32>, Acceptance) {
    let config = ExactConfig {
        steps,
        step_size: step,
        temperature: 1.0,
        lo: -BOX,
        hi: BOX,
    };
    let start = Langevin {
        config: LangevinConfig {
            steps,
            step_size: step,
            noise: 0.0,
            grad_clip: None,
            lo: -BOX,
            hi: BOX,
        },
        seed: 5,
    };
    let x = b.upload(&start.noise(CHAINS, 2)).unwrap();
    let mut chains = ExactChains::new(b, x, CHAINS, 2).unwrap();
    if hmc {
        Hmc {
            config,
            leapfrog: 4,
            seed: 5,
        }
        .run(b, net, &mut chains, 0)
        .unwrap();
    } else {
        Mala { config, seed: 5 }
            .run(b, net, &mut chains, 0)
            .unwrap();
    }
    (b.read(chains.x()).unwrap(), chains.acceptance(b).unwrap())
}

/// MALA and HMC from uniform starts reach the truncated exponential: mean and variance of
/// each coordinate within 5 standard errors (a false alarm once in ~10⁶ per moment; the
/// chains are independent, and 300 steps of ~√(2ε) = 0.55 mix a box of side 4 many times
/// over). ULA at the same step is not: its clamp puts a share of the chains exactly on the
/// walls, where the target has no mass at all.
#[test]
fn exact_samplers_sample_a_truncated_exponential() {
    let b = CpuBackend::new();
    let a = [1.5f32, -0.5];
    let mut net = linear_net(&b, a);
    for hmc in [false, true] {
        let name = if hmc { "HMC" } else { "MALA" };
        let (x, acceptance) = exact_samples(&b, &mut net, hmc, 0.15, 300);
        assert!(
            acceptance.rate > 0.3,
            "{name}: acceptance {}",
            acceptance.rate
        );
        for (i, &a) in a.iter().enumerate() {
            let (want_mean, want_var) = truncated_exponential(a as f64, -BOX as f64, BOX as f64);
            let (mean, var, se_mean, se_var) = moments(&x, i);
            assert!(
                (mean - want_mean).abs() < 5.0 * se_mean,
                "{name} x{i}: mean {mean}, want {want_mean} ± {se_mean}"
            );
            assert!(
                (var - want_var).abs() < 5.0 * se_var,
                "{name} x{i}: variance {var}, want {want_var} ± {se_var}"
            );
        }
        assert!(
            x.iter().all(|v| v.abs() < BOX),
            "{name}: a chain on or past the wall"
        );
    }
    // ULA with the same step (noise √(2ε), T = 1): chains clamped onto the walls.
    let ula = Langevin {
        config: LangevinConfig {
            steps: 300,
            step_size: 0.15,
            noise: 0.3f32.sqrt(),
            grad_clip: None,
            lo: -BOX,
            hi: BOX,
        },
        seed: 5,
    };
    let mut x = b.upload(&ula.noise(CHAINS, 2)).unwrap();
    ula.run(&b, &mut net, &mut x, CHAINS, 0).unwrap();
    let on_wall = b
        .read(&x)
        .unwrap()
        .iter()
        .filter(|v| v.abs() == BOX)
        .count();
    assert!(
        on_wall > CHAINS / 20,
        "ULA put only {on_wall} coordinates on the walls"
    );
}

/// `config.steps` steps of MALA or HMC (L = 3) from `start` on a net of `spec` (init seed 3):
/// the accepted proposals per chain, and the chains.
fn run_exact<B: Backend>(
    b: &B,
    spec: &Spec,
    start: &[f32],
    rows: usize,
    hmc: bool,
    config: ExactConfig,
) -> (Vec<f32>, Vec<f32>) {
    let dim = start.len() / rows;
    let mut net = EnergyNet::new(b, spec, 3).unwrap();
    let mut chains = ExactChains::new(b, b.upload(start).unwrap(), rows, dim).unwrap();
    if hmc {
        Hmc {
            config,
            leapfrog: 3,
            seed: 2,
        }
        .run(b, &mut net, &mut chains, 0)
        .unwrap();
    } else {
        Mala { config, seed: 2 }
            .run(b, &mut net, &mut chains, 0)
            .unwrap();
    }
    (
        chains.acceptance(b).unwrap().accepted,
        b.read(chains.x()).unwrap(),
    )
}

/// The same seed on the same net gives the same decisions on both devices, chain by chain
/// (a few steps: one decision that rounds the other way near a tie would part the chains).
#[test]
fn gpu_exact_samplers_decide_as_the_cpu() {
    let gpu = gpu_or_skip!();
    let cpu = CpuBackend::new();
    let spec = Spec::from_json(r#"{"input": [3], "layers": [{"type": "linear", "in": 3, "out": 16}, {"type": "silu"}, {"type": "linear", "in": 16, "out": 1}]}"#).unwrap();
    let config = ExactConfig {
        steps: 6,
        step_size: 0.2,
        temperature: 0.8,
        lo: -3.0,
        hi: 3.0,
    };
    let rows = 300;
    let start = Langevin {
        config: LangevinConfig {
            steps: 1,
            step_size: 0.0,
            noise: 0.0,
            grad_clip: None,
            lo: -3.0,
            hi: 3.0,
        },
        seed: 9,
    }
    .noise(rows, 3);
    for hmc in [false, true] {
        let cpu_run = run_exact(&cpu, &spec, &start, rows, hmc, config);
        let gpu_run = run_exact(&*gpu, &spec, &start, rows, hmc, config);
        let name = if hmc { "HMC" } else { "MALA" };
        let differ = cpu_run
            .0
            .iter()
            .zip(&gpu_run.0)
            .filter(|(a, b)| a != b)
            .count();
        assert!(
            differ <= 1,
            "{name}: {differ} of {rows} chains accepted a different number of proposals"
        );
        let total: f32 = cpu_run.0.iter().sum();
        let tests = (rows * config.steps) as f32;
        assert!(
            total > 0.2 * tests && total < 0.98 * tests,
            "{name}: {total} of {tests} accepted"
        );
        if differ == 0 {
            let err = gpu_common::rel_err(&gpu_run.1, &cpu_run.1);
            assert!(
                err < 1e-4,
                "{name}: GPU chains differ from the CPU's by {err}"
            );
        }
    }
}

/// A rugged 2D energy: a random SiLU MLP 2 → 32 → 32 → 1 whose output is scaled up so that
/// exp(−E) on the box varies by tens of nats, with several basins.
fn rugged_net<B: Backend>(b: &B, seed: u64) -> EnergyNet<B> {
    let spec = Spec::from_json(
        r#"{"input": [2], "layers": [{"type": "linear", "in": 2, "out": 32}, {"type": "silu"},
            {"type": "linear", "in": 32, "out": 32}, {"type": "silu"}, {"type": "linear", "in": 32, "out": 1}]}"#,
    )
    .unwrap();
    let mut r = StdRng::seed_from_u64(seed);
    EnergyNet::from_params(b, &spec, |name, shape| {
        let len: usize = shape.iter().product();
        let scale = match name {
            "layers.0.weight" => 1.5,
            "layers.4.weight" => 1.2,
            _ => 0.5,
        };
        Ok((0..len)
            .map(|_| scale * r.random_range(-1.0f32..1.0))
            .collect())
    })
    .unwrap()
}

/// log ∫ exp(−E) over the box [−4, 4]² by the midpoint rule on a 1024² grid.
fn grid_log_z(net: &mut EnergyNet<CpuBackend>, b: &CpuBackend, lo: f64, hi: f64) -> (f64, f64) {
    let n = 1024;
    let h = (hi - lo) / n as f64;
    let points: Vec<f32> = (0..n * n)
        .flat_map(|k| {
            [
                (lo + h * ((k % n) as f64 + 0.5)) as f32,
                (lo + h * ((k / n) as f64 + 0.5)) as f32,
            ]
        })
        .collect();
    let e = net.energies(b, &points).unwrap();
    let low = e.iter().copied().fold(f32::INFINITY, f32::min) as f64;
    let sum: f64 = e.iter().map(|&v| (low - v as f64).exp()).sum();
    let high = e.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    ((sum * h * h).ln() - low, high - low)
}

/// AIS with MALA and with HMC transitions recovers log Z of a rugged 2D energy, which the
/// grid gives to ~10⁻⁵ (the midpoint rule on a 1024² grid of a smooth density). Tolerance:
/// 4 standard errors of the estimate plus 0.02 for AIS's downward bias (about half the
/// relative variance of the weights, which the effective chain count bounds).
#[test]
fn ais_recovers_the_grid_log_partition_function() {
    use ebm::sampler::ais::{Ais, Transition};
    let b = CpuBackend::new();
    let seed = test_seed();
    let mut net = rugged_net(&b, seed);
    let (truth, range) = grid_log_z(&mut net, &b, -4.0, 4.0);
    assert!(
        range > 10.0,
        "seed {seed}: the energy spans only {range} nats"
    );
    for transition in [Transition::Mala, Transition::Hmc { leapfrog: 4 }] {
        let ais = Ais {
            chains: 1000,
            levels: 200,
            steps_per_level: 2,
            step_size: 0.05,
            transition,
            lo: -4.0,
            hi: 4.0,
            seed: 1,
        };
        let est = ais.run(&b, &mut net).unwrap();
        let err = est.log_z - truth;
        assert!(
            err.abs() < 4.0 * est.std_err + 0.02,
            "seed {seed} {transition:?}: AIS log Z {} ± {} (ESS {:.0}), grid {truth}",
            est.log_z,
            est.std_err,
            est.effective_chains
        );
        eprintln!(
            "{transition:?}: AIS log Z {:.4} ± {:.4} (ESS {:.0}, acceptance {:.2}), grid {truth:.4}",
            est.log_z, est.std_err, est.effective_chains, est.acceptance.rate
        );
    }
}

/// MALA with `config` on `chains`, or HMC with a quarter of its steps as trajectories of
/// L = 3 (about as many gradient evaluations).
fn mala_or_hmc<B: Backend>(
    b: &B,
    net: &mut EnergyNet<B>,
    chains: &mut ExactChains<B>,
    hmc: bool,
    config: ExactConfig,
    seed: u64,
) {
    if hmc {
        let config = ExactConfig {
            steps: config.steps / 4,
            ..config
        };
        Hmc {
            config,
            leapfrog: 3,
            seed,
        }
        .run(b, net, chains, 0)
        .unwrap();
    } else {
        Mala { config, seed }.run(b, net, chains, 0).unwrap();
    }
}

/// E(x) = ½‖Lx‖² with L = [[1, 0], [0.8, 0.6]]: a Gaussian with precision P = LᵀL
/// (eigenvalues 1.8 and 0.2) and covariance P⁻¹ = [[1, −4/3], [−4/3, 41/9]].
fn gaussian_net<B: Backend>(b: &B) -> EnergyNet<B> {
    gaussian_net_of(b, [1.0, 0.0, 0.8, 0.6])
}

/// E(x) = ½‖Lx‖² for L (row-major 2 × 2).
fn gaussian_net_of<B: Backend>(b: &B, l: [f32; 4]) -> EnergyNet<B> {
    let spec = Spec::from_json(
        r#"{"input": [2], "layers": [{"type": "linear", "in": 2, "out": 2}, {"type": "square"},
            {"type": "linear", "in": 2, "out": 1}]}"#,
    )
    .unwrap();
    EnergyNet::from_params(b, &spec, |name, _| {
        Ok(match name {
            "layers.0.weight" => l.to_vec(),
            "layers.2.weight" => vec![0.5, 0.5],
            "layers.0.bias" => vec![0.0, 0.0],
            _ => vec![0.0],
        })
    })
    .unwrap()
}

/// The sample covariance [c00, c01, c11] of 2D points.
fn covariance(x: &[f32]) -> [f64; 3] {
    let n = (x.len() / 2) as f64;
    let m = |i: usize| x.chunks(2).map(|p| p[i] as f64).sum::<f64>() / n;
    let (m0, m1) = (m(0), m(1));
    let c = |f: &dyn Fn(&[f32]) -> f64| x.chunks(2).map(f).sum::<f64>() / n;
    [
        c(&|p| (p[0] as f64 - m0).powi(2)),
        c(&|p| (p[0] as f64 - m0) * (p[1] as f64 - m1)),
        c(&|p| (p[1] as f64 - m1).powi(2)),
    ]
}

/// At a large step (ε = 0.5, ε·λ_max = 0.9) MALA and HMC sample the correlated Gaussian:
/// each covariance entry within 5 standard errors (for a Gaussian, the sample covariance
/// of N points has variance (Σᵢᵢ·Σⱼⱼ + Σᵢⱼ²)/N). ULA at the same step (noise √(2ε)) samples
/// the Gaussian with covariance (P(I − εP/2))⁻¹ instead — its variance along the stiff
/// direction is 1.8× too large — and the test sees that bias too.
#[test]
fn mala_and_hmc_sample_a_correlated_gaussian_where_ula_is_biased() {
    let b = CpuBackend::new();
    let mut net = gaussian_net(&b);
    let truth = [1.0, -4.0 / 3.0, 41.0 / 9.0];
    let n = 4000;
    let se = [
        (2.0 * truth[0] * truth[0] / n as f64).sqrt(),
        ((truth[0] * truth[2] + truth[1] * truth[1]) / n as f64).sqrt(),
        (2.0 * truth[2] * truth[2] / n as f64).sqrt(),
    ];
    let start = Langevin {
        config: LangevinConfig {
            steps: 1,
            step_size: 0.0,
            noise: 0.0,
            grad_clip: None,
            lo: -3.0,
            hi: 3.0,
        },
        seed: 11,
    }
    .noise(n, 2);
    let config = ExactConfig {
        steps: 400,
        step_size: 0.5,
        temperature: 1.0,
        lo: -15.0,
        hi: 15.0,
    };
    for hmc in [false, true] {
        let mut chains = ExactChains::new(&b, b.upload(&start).unwrap(), n, 2).unwrap();
        mala_or_hmc(&b, &mut net, &mut chains, hmc, config, 4);
        let name = if hmc { "HMC" } else { "MALA" };
        let cov = covariance(&b.read(chains.x()).unwrap());
        for k in 0..3 {
            assert!(
                (cov[k] - truth[k]).abs() < 5.0 * se[k],
                "{name}: covariance {cov:?}, want {truth:?} ± {se:?}"
            );
        }
        let rate = chains.acceptance(&b).unwrap().rate;
        assert!(rate > 0.2 && rate < 0.99, "{name}: acceptance {rate}");
    }
    // ULA at ε = 0.5: (P(I − εP/2))⁻¹ = [[1.0/0.99…]]; the stiff-direction variance is
    // 1/(1.8·0.55) against 1/1.8.
    let ula = Langevin {
        config: LangevinConfig {
            steps: 400,
            step_size: 0.5,
            noise: 1.0,
            grad_clip: None,
            lo: -15.0,
            hi: 15.0,
        },
        seed: 4,
    };
    let mut x = b.upload(&start).unwrap();
    ula.run(&b, &mut net, &mut x, n, 0).unwrap();
    let cov = covariance(&b.read(&x).unwrap());
    let worst = (0..3)
        .map(|k| (cov[k] - truth[k]).abs() / se[k])
        .fold(0.0, f64::max);
    assert!(
        worst > 10.0,
        "ULA's covariance {cov:?} is within {worst:.1} standard errors of the truth"
    );
}

/// 25 Gaussians (σ = 0.15) on the 5 × 5 grid {−4, −2, 0, 2, 4}², equal weights, as an exact
/// class-logit energy: E(x) = −logsumexp_k(−‖x − μ_k‖²/(2σ²)).
fn twenty_five_gaussians<B: Backend>(b: &B) -> EnergyNet<B> {
    let spec = Spec::from_json(
        r#"{"input": [2], "layers": [{"type": "linear", "in": 2, "out": 50}, {"type": "square"},
            {"type": "linear", "in": 50, "out": 25}], "output": {"energy": "neg_logsumexp", "classes": 25}}"#,
    )
    .unwrap();
    let mean = |k: usize| [2.0 * (k % 5) as f32 - 4.0, 2.0 * (k / 5) as f32 - 4.0];
    let sigma2 = 0.15f32 * 0.15;
    EnergyNet::from_params(b, &spec, |name, _| {
        Ok(match name {
            // Row 2k + i of the first layer gives x_i − μ_k,i.
            "layers.0.weight" => (0..50)
                .flat_map(|r| if r % 2 == 0 { [1.0, 0.0] } else { [0.0, 1.0] })
                .collect(),
            "layers.0.bias" => (0..50).map(|r| -mean(r / 2)[r % 2]).collect(),
            "layers.2.weight" => (0..25 * 50)
                .map(|i| {
                    if (i % 50) / 2 == i / 50 {
                        -0.5 / sigma2
                    } else {
                        0.0
                    }
                })
                .collect(),
            _ => vec![0.0; 25],
        })
    })
    .unwrap()
}

/// How many chains sit within 3σ of each of the 25 modes.
fn mode_counts(x: &[f32]) -> Vec<usize> {
    let mut counts = vec![0; 25];
    for p in x.chunks(2) {
        let (i, j) = (((p[0] + 4.0) / 2.0).round(), ((p[1] + 4.0) / 2.0).round());
        if (0.0..5.0).contains(&i) && (0.0..5.0).contains(&j) {
            let (mx, my) = (2.0 * i - 4.0, 2.0 * j - 4.0);
            if (p[0] - mx).hypot(p[1] - my) < 0.45 {
                counts[(j * 5.0 + i) as usize] += 1;
            }
        }
    }
    counts
}

/// Chains started in the central mode of 25 Gaussians: at T = 1 they never cross the
/// ~22-nat barriers and cover one mode; annealed from T = 100 they spread over all 25, in
/// shares that a χ² test cannot tell from the true equal weights (24 degrees of freedom;
/// the bound 60 is exceeded by chance with probability < 10⁻⁴).
#[test]
fn annealed_langevin_finds_all_25_modes() {
    use ebm::sampler::Annealed;
    let b = CpuBackend::new();
    let mut net = twenty_five_gaussians(&b);
    let n = 2500;
    let start = Langevin {
        config: LangevinConfig {
            steps: 1,
            step_size: 0.0,
            noise: 0.0,
            grad_clip: None,
            lo: -0.2,
            hi: 0.2,
        },
        seed: 2,
    }
    .noise(n, 2);
    let langevin = Langevin {
        config: LangevinConfig {
            steps: 1000,
            step_size: 0.005,
            noise: 0.1,
            grad_clip: None,
            lo: -6.0,
            hi: 6.0,
        },
        seed: 3,
    };
    let mut x = b.upload(&start).unwrap();
    langevin.run(&b, &mut net, &mut x, n, 0).unwrap();
    let single = mode_counts(&b.read(&x).unwrap());
    let covered = single.iter().filter(|&&c| c > 0).count();
    assert_eq!(covered, 1, "a chain at T = 1 crossed a barrier: {single:?}");
    let annealed = Annealed {
        langevin,
        levels: 20,
        t_max: 100.0,
    };
    let mut x = b.upload(&start).unwrap();
    annealed.run(&b, &mut net, &mut x, n, 0).unwrap();
    let counts = mode_counts(&b.read(&x).unwrap());
    let found: usize = counts.iter().sum();
    assert!(
        counts.iter().all(|&c| c > 0),
        "annealing missed a mode: {counts:?}"
    );
    assert!(
        found > n * 95 / 100,
        "only {found} of {n} chains ended in a mode: {counts:?}"
    );
    let expected = found as f64 / 25.0;
    let chi2: f64 = counts
        .iter()
        .map(|&c| (c as f64 - expected).powi(2) / expected)
        .sum();
    assert!(
        chi2 < 60.0,
        "mode shares {counts:?}: χ² = {chi2:.1} against equal weights"
    );
    eprintln!("annealed: χ² = {chi2:.1}, counts {counts:?}");
}

/// The net's probability mass per cell of an n × n grid over [−range, range]²: the mean of
/// exp(−E)/Z over 4 × 4 points inside each cell times its area (the value at the centre
/// alone is off in cells as wide as a trained model's modes).
fn cell_masses(net: &mut EnergyNet<CpuBackend>, b: &CpuBackend, n: usize, range: f32) -> Vec<f64> {
    use ebm::plot::{density_from_energy, Grid2d};
    let fine = Grid2d::new(4 * n, range);
    let p_fine = density_from_energy(&net.energies(b, &fine.points()).unwrap(), fine.cell_area());
    let mut mass = vec![0.0f64; n * n];
    for (i, &v) in p_fine.iter().enumerate() {
        let (r, c) = (i / (4 * n), i % (4 * n));
        mass[(r / 4) * n + c / 4] += v as f64 * fine.cell_area() as f64;
    }
    mass
}

/// KL(counts / N ‖ mass) in nats, over the cells with counts.
fn kl_counts(counts: &[usize], mass: &[f64]) -> f64 {
    let n = counts.iter().sum::<usize>() as f64;
    counts
        .iter()
        .zip(mass)
        .filter(|(&c, _)| c > 0)
        .map(|(&c, &m)| c as f64 / n * ((c as f64 / n) / m.max(1e-300)).ln())
        .sum()
}

/// How far a perfect sampler's histogram of `n` points lies from `mass` by this KL: 40
/// exact draws from the cell masses themselves; returns their mean plus 6 of their standard
/// deviations, the bound a correct sampler must meet. (The plug-in KL of a histogram is
/// never 0, and with many sparsely filled cells it exceeds the textbook (cells − 1)/(2N):
/// on the trained model below the bound comes to 0.073 where (cells − 1)/(2N) says 0.04.)
fn perfect_sampler_bound(mass: &[f64], n: usize, seed: u64) -> f64 {
    let mut r = StdRng::seed_from_u64(seed);
    let total: f64 = mass.iter().sum();
    let cumulative: Vec<f64> = mass
        .iter()
        .scan(0.0, |acc, &m| {
            *acc += m / total;
            Some(*acc)
        })
        .collect();
    let kls: Vec<f64> = (0..40)
        .map(|_| {
            let mut counts = vec![0usize; mass.len()];
            for _ in 0..n {
                let u: f64 = r.random();
                let cell = cumulative.partition_point(|&c| c < u).min(mass.len() - 1);
                counts[cell] += 1;
            }
            kl_counts(&counts, mass)
        })
        .collect();
    let mean = kls.iter().sum::<f64>() / 40.0;
    let sd = (kls.iter().map(|k| (k - mean).powi(2)).sum::<f64>() / 39.0).sqrt();
    mean + 6.0 * sd
}

/// The cell counts of 2D points on the n × n grid.
fn cell_counts(x: &[f32], n: usize, range: f32) -> Vec<usize> {
    let grid = ebm::plot::Grid2d::new(n, range);
    let mut counts = vec![0usize; n * n];
    for p in x.chunks(2) {
        if let Some(i) = grid.cell_of(p[0], p[1]) {
            counts[i] += 1;
        }
    }
    counts
}

/// MALA, HMC and ULA at one step on `net`, 8000 chains from uniform noise on the toy box:
/// each sampler's KL to the net's own cell masses on a 32 × 32 grid, and the bound a
/// perfect sampler meets ([`perfect_sampler_bound`]).
fn kl_of_samplers(net: &mut EnergyNet<CpuBackend>, step: f32) -> ([f64; 3], f64) {
    use ebm::data::toy2d::RANGE;
    let b = CpuBackend::new();
    let n = 8000;
    let ula = Langevin {
        config: LangevinConfig {
            steps: 400,
            step_size: step,
            noise: (2.0 * step).sqrt(),
            grad_clip: None,
            lo: -RANGE,
            hi: RANGE,
        },
        seed: 8,
    };
    let start = ula.noise(n, 2);
    let config = ExactConfig {
        steps: 400,
        step_size: step,
        temperature: 1.0,
        lo: -RANGE,
        hi: RANGE,
    };
    let mut mala = ExactChains::new(&b, b.upload(&start).unwrap(), n, 2).unwrap();
    Mala { config, seed: 8 }.run(&b, net, &mut mala, 0).unwrap();
    let mut hmc = ExactChains::new(&b, b.upload(&start).unwrap(), n, 2).unwrap();
    Hmc {
        config: ExactConfig {
            steps: 100,
            ..config
        },
        leapfrog: 4,
        seed: 8,
    }
    .run(&b, net, &mut hmc, 0)
    .unwrap();
    let mut x = b.upload(&start).unwrap();
    ula.run(&b, net, &mut x, n, 0).unwrap();
    let mass = cell_masses(net, &b, 32, RANGE);
    let kl = |x: &[f32]| kl_counts(&cell_counts(x, 32, RANGE), &mass);
    let kls = [
        kl(&b.read(mala.x()).unwrap()),
        kl(&b.read(hmc.x()).unwrap()),
        kl(&b.read(&x).unwrap()),
    ];
    (kls, perfect_sampler_bound(&mass, n, 1))
}

/// At ε = 0.2: MALA and HMC within a perfect sampler's bound, ULA above twice it.
fn check_samplers(what: &str, net: &mut EnergyNet<CpuBackend>) {
    let ([mala, hmc, ula], bound) = kl_of_samplers(net, 0.2);
    eprintln!("{what}: grid KL MALA {mala:.4}, HMC {hmc:.4}, ULA {ula:.4}; a perfect sampler < {bound:.4}");
    assert!(
        mala < bound && hmc < bound,
        "{what}: MALA {mala:.4}, HMC {hmc:.4}, bound {bound:.4}"
    );
    assert!(
        ula > 2.0 * bound,
        "{what}: ULA {ula:.4} is not measurably biased (bound {bound:.4})"
    );
}

/// Eight Gaussians (σ = 0.5) on a ring of radius 2, equal weights, an exact energy built
/// from `square` (as the 25-mode one above), sampled at a large step ε = 0.2 (ε/σ² = 0.8):
/// MALA and HMC match its density on the grid within the sampling noise of 8000 chains;
/// ULA, whose stationary widths are 1/√(1 − ε/(2σ²)) ≈ 1.3× too wide, does not.
#[test]
fn mala_and_hmc_sample_an_8_mode_mixture() {
    let b = CpuBackend::new();
    let spec = Spec::from_json(
        r#"{"input": [2], "layers": [{"type": "linear", "in": 2, "out": 16}, {"type": "square"},
            {"type": "linear", "in": 16, "out": 8}], "output": {"energy": "neg_logsumexp", "classes": 8}}"#,
    )
    .unwrap();
    let mean = |k: usize| {
        let a = std::f32::consts::TAU * k as f32 / 8.0;
        [2.0 * a.cos(), 2.0 * a.sin()]
    };
    let mut net = EnergyNet::from_params(&b, &spec, |name, _| {
        Ok(match name {
            "layers.0.weight" => (0..16)
                .flat_map(|r| if r % 2 == 0 { [1.0, 0.0] } else { [0.0, 1.0] })
                .collect(),
            "layers.0.bias" => (0..16).map(|r| -mean(r / 2)[r % 2]).collect(),
            "layers.2.weight" => (0..8 * 16)
                .map(|i| if (i % 16) / 2 == i / 16 { -2.0 } else { 0.0 })
                .collect(),
            _ => vec![0.0; 8],
        })
    })
    .unwrap();
    check_samplers("8 modes", &mut net);
}

/// The same on a trained model (`ebm train toy2d --dataset 8gaussians`, 3000 iterations,
/// shipped as tests/golden/toy2d-8gaussians-trained.safetensors), normalised on the grid: at
/// ε = 0.2 MALA and HMC sample its density, ULA a far broader one (README, "Choosing a
/// sampler").
#[test]
fn mala_and_hmc_sample_a_trained_toy_model() {
    let b = CpuBackend::new();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/toy2d-8gaussians-trained.safetensors");
    let mut net = ebm::nn::io::load_model(&b, &path, None).unwrap();
    check_samplers("trained", &mut net);
}

/// Inpainting with an exact sampler samples the conditional: E = ½‖Lx‖² with
/// L = [[1, 0], [3, 1]] (precision P = [[10, 3], [3, 1]]) and x₀ held at 1, so x₁ | x₀ is
/// N(−3, 1). The fixed value's gradient, 10 + 3x₁, swings with the free one: a sampler that
/// let it into MALA's proposal density ratio (or HMC's kinetic energy) would be biased.
/// MALA and HMC reach mean and variance within 5 standard errors, and never move x₀
/// (checked: with that gradient left in, MALA misses the mean or variance).
#[test]
fn exact_samplers_sample_the_conditional_of_fixed_values() {
    let b = CpuBackend::new();
    let mut net = gaussian_net_of(&b, [1.0, 0.0, 3.0, 1.0]);
    let n = 4000;
    let (want_mean, want_var) = (-3.0, 1.0);
    let known: Vec<f32> = (0..n).flat_map(|_| [1.0, 0.0]).collect();
    let mask: Vec<f32> = (0..n).flat_map(|_| [1.0, 0.0]).collect();
    let start: Vec<f32> = (0..n).flat_map(|i| [0.0, (i % 7) as f32 - 6.0]).collect();
    let config = ExactConfig {
        steps: 300,
        step_size: 0.5,
        temperature: 1.0,
        lo: -15.0,
        hi: 15.0,
    };
    for hmc in [false, true] {
        let chains = ExactChains::new(&b, b.upload(&start).unwrap(), n, 2).unwrap();
        let mut chains = chains
            .with_fixed(&b, b.upload(&known).unwrap(), b.upload(&mask).unwrap())
            .unwrap();
        mala_or_hmc(&b, &mut net, &mut chains, hmc, config, 6);
        let name = if hmc { "HMC" } else { "MALA" };
        let x = b.read(chains.x()).unwrap();
        assert!(
            x.chunks(2).all(|p| p[0] == 1.0),
            "{name} moved a fixed value"
        );
        let (mean, var, se_mean, se_var) = moments(&x, 1);
        assert!(
            (mean - want_mean).abs() < 5.0 * se_mean,
            "{name}: mean {mean}, want {want_mean} ± {se_mean}"
        );
        assert!(
            (var - want_var).abs() < 5.0 * se_var,
            "{name}: variance {var}, want {want_var} ± {se_var}"
        );
        let rate = chains.acceptance(&b).unwrap().rate;
        assert!(rate > 0.3 && rate < 0.999, "{name}: acceptance {rate}");
    }
}

/// A random SiLU/tanh/square MLP of input `dim` for the fused-MALA comparisons.
fn random_mlp<B: Backend>(b: &B, dim: usize, seed: u64) -> EnergyNet<B> {
    let spec = Spec::from_json(&format!(
        r#"{{"input": [{dim}], "layers": [{{"type": "linear", "in": {dim}, "out": 24}}, {{"type": "silu"}},
            {{"type": "linear", "in": 24, "out": 16}}, {{"type": "tanh"}}, {{"type": "linear", "in": 16, "out": 1}}]}}"#
    ))
    .unwrap();
    EnergyNet::new(b, &spec, seed).unwrap()
}

/// MALA's fused MLP kernel against the layer-by-layer sampler on `b` (and, given `cpu`,
/// against the CPU's fused kernel): the same decisions chain by chain (at most one of a
/// few hundred may round the other way near a tie) and, for chains that decided alike, the
/// same positions up to float rounding. Each runs twice, the second run continuing from the
/// E and ∇E the first one carried (checked: the CPU twin keeping a rejected chain's old
/// energy after an accept makes the decisions part).
fn fused_mala_matches<B: Backend>(b: &B, seed: u64) {
    let mut r = StdRng::seed_from_u64(seed);
    let dim = r.random_range(1..=32);
    let rows = r.random_range(1..300);
    let config = ExactConfig {
        steps: 6,
        step_size: r.random_range(0.01..0.3),
        temperature: r.random_range(0.5..2.0),
        lo: -2.0,
        hi: 2.0,
    };
    let start: Vec<f32> = (0..rows * dim).map(|_| r.random_range(-1.5..1.5)).collect();
    let what = format!("{} seed {seed}: {rows} chains of {dim}", b.name());
    let run = |fused: bool| {
        let mut net = random_mlp(b, dim, seed);
        let mut chains = ExactChains::new(b, b.upload(&start).unwrap(), rows, dim).unwrap();
        let mala = Mala { config, seed: 3 };
        if fused {
            mala.run(b, &mut net, &mut chains, 10).unwrap();
        } else {
            mala.run_unfused(b, &mut net, &mut chains, 10).unwrap();
        }
        // A second run continues from the carried E and ∇E.
        mala.run(b, &mut net, &mut chains, 16).unwrap();
        (
            chains.acceptance(b).unwrap().accepted,
            b.read(chains.x()).unwrap(),
        )
    };
    let (fused, layered) = (run(true), run(false));
    let differ: Vec<usize> = (0..rows).filter(|&i| fused.0[i] != layered.0[i]).collect();
    assert!(
        differ.len() <= 1 + rows / 200,
        "{what}: chains {differ:?} decided differently"
    );
    let total: f32 = fused.0.iter().sum();
    assert!(
        total > 0.0 && total < (12 * rows) as f32,
        "{what}: {total} accepted of {}",
        12 * rows
    );
    let same = |v: &[f32], per: usize| -> Vec<f32> {
        v.chunks(per)
            .enumerate()
            .filter(|(i, _)| !differ.contains(i))
            .flat_map(|(_, c)| c.to_vec())
            .collect()
    };
    let err = gpu_common::rel_err(&same(&fused.1, dim), &same(&layered.1, dim));
    assert!(err < 1e-4, "{what}: chains differ by {err}");
}

#[test]
fn cpu_fused_mala_matches_layer_by_layer() {
    let seed = test_seed();
    for i in 0..4 {
        fused_mala_matches(&CpuBackend::new(), seed.wrapping_add(i));
    }
}

#[test]
fn gpu_fused_mala_matches_layer_by_layer() {
    let gpu = gpu_or_skip!();
    let seed = test_seed();
    for i in 0..2 {
        fused_mala_matches(&*gpu, seed.wrapping_add(i));
    }
    // Wider inputs than the kernel's 32 fall back to layer by layer.
    use ebm::sampler::mlp_chain::mala::MlpMala;
    let net = random_mlp(&*gpu, 33, 0);
    let (widths, activations) = net.mlp_layout().unwrap();
    let test = MetropolisTest {
        rows: 8,
        dim: 33,
        eps: 0.1,
        temperature: 1.0,
        lo: -1.0,
        hi: 1.0,
        seed: 0,
        global_step: 0,
        chain_offset: 0,
    };
    assert!(!gpu.supports(&MlpMala {
        widths,
        activations,
        test,
        steps: 1
    }));
}

/// One chain at x = (0, 0) offered the proposal (0.5, NaN) with a very low energy: the
/// chain after MALA's or HMC's test.
fn after_nan_proposal<B: Backend>(b: &B, hmc: bool) -> Vec<f32> {
    let test = MetropolisTest {
        rows: 1,
        dim: 2,
        eps: 0.1,
        temperature: 1.0,
        lo: -1.0,
        hi: 1.0,
        seed: 0,
        global_step: 0,
        chain_offset: 0,
    };
    let up = |v: &[f32]| b.upload(v).unwrap();
    let (mut x, mut g, mut e, mut s) = (
        up(&[0.0, 0.0]),
        up(&[0.0, 0.0]),
        up(&[0.0]),
        up(&[0.0, 0.0]),
    );
    let (xp, gp, ep, pl) = (
        up(&[0.5, f32::NAN]),
        up(&[0.0, 0.0]),
        up(&[-100.0]),
        up(&[0.0, 0.0]),
    );
    if hmc {
        HmcAccept(test).run(b, [&xp, &gp, &ep, &pl], [&mut x, &mut g, &mut e], &mut s);
    } else {
        MalaAccept(test).run(b, [&xp, &gp, &ep], [&mut x, &mut g, &mut e], &mut s);
    }
    b.read(&x).unwrap()
}

/// A proposal that is NaN is outside every box: rejected on both devices, whatever its
/// energy says (a net can map NaN to a finite energy: ReLU's max(x, 0) does on the CPU).
#[test]
fn a_nan_proposal_is_rejected() {
    for hmc in [false, true] {
        assert_eq!(
            after_nan_proposal(&CpuBackend::new(), hmc),
            [0.0, 0.0],
            "CPU, hmc {hmc}"
        );
    }
    let gpu = gpu_or_skip!();
    for hmc in [false, true] {
        assert_eq!(after_nan_proposal(&*gpu, hmc), [0.0, 0.0], "GPU, hmc {hmc}");
    }
}

/// AIS with one level is importance sampling from the uniform base: w = exp(−E(x₀)) with
/// x₀ uniform, so mean w · volume = Z without bias. On a mild energy (a few nats across the
/// box) 100 000 chains give log Z to ~0.005, and an estimate that weighed the chains after
/// their move instead of before (biased towards low energies) is off by far more (checked:
/// that mutation misses by more than 0.1).
#[test]
fn one_level_ais_is_importance_sampling() {
    use ebm::sampler::ais::{Ais, Transition};
    let b = CpuBackend::new();
    let spec = Spec::from_json(
        r#"{"input": [2], "layers": [{"type": "linear", "in": 2, "out": 16}, {"type": "tanh"}, {"type": "linear", "in": 16, "out": 1}]}"#,
    )
    .unwrap();
    let mut r = StdRng::seed_from_u64(test_seed());
    let mut net = EnergyNet::from_params(&b, &spec, |_, shape| {
        Ok((0..shape.iter().product::<usize>())
            .map(|_| r.random_range(-1.0f32..1.0))
            .collect())
    })
    .unwrap();
    let (truth, range) = grid_log_z(&mut net, &b, -4.0, 4.0);
    let ais = Ais {
        chains: 100_000,
        levels: 1,
        steps_per_level: 1,
        step_size: 0.5,
        transition: Transition::Mala,
        lo: -4.0,
        hi: 4.0,
        seed: 3,
    };
    let est = ais.run(&b, &mut net).unwrap();
    assert!(
        (est.log_z - truth).abs() < 5.0 * est.std_err + 1e-3,
        "log Z {} ± {}, grid {truth} (energy range {range})",
        est.log_z,
        est.std_err
    );
}
