//! Adam's first step and the replay buffer's draws, on the CPU and the GPU, checked against
//! what they must do by definition rather than against each other (a bug shared by both
//! backends, or made on the host, would pass a CPU-vs-GPU comparison).

#[path = "common/gpu.rs"]
mod gpu_common;

use ebm::nn::Param;
use ebm::sampler::ReplayBuffer;
use ebm::train::{Adam, AdamConfig};
use ebm::{Backend, CpuBackend};
use gpu_common::test_seed;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

// ------------------------------------------------------------------ Adam

/// With zero moments and bias correction, the first step is m̂ = g, v̂ = g², so
/// Δp = −lr·g / (|g| + eps) = −lr·sign(g) for every parameter whatever |g| (up to
/// eps / |g| ≤ 1e-5 here), and exactly 0 where g = 0. Without the correction it would be
/// lr·(1 − β₁)/√(1 − β₂): 3.16·lr for the defaults, 0.1·lr with β₂ = 0 … so a relative
/// tolerance of 1e-4 on |Δp| / lr separates the two by orders of magnitude.
///
/// Mutations that make it fail (checked, then reverted): `bias_correction1: 1.0,
/// bias_correction2: 1.0` in src/train/adam.rs (both backends: |Δp| = 3.16·lr), and
/// `m_hat = *m` / `let m_hat = mi;` in the CPU twin / shaders/adam.wgsl (|Δp| = 0.1·lr).
fn first_adam_step_moves_every_parameter_by_lr<B: Backend>(b: &B) {
    let seed = test_seed();
    let mut rng = StdRng::seed_from_u64(seed);
    let configs = [
        AdamConfig {
            lr: 0.05,
            ..AdamConfig::default()
        },
        AdamConfig {
            lr: 0.02,
            beta1: 0.0,
            beta2: 0.99,
            ..AdamConfig::default()
        },
        AdamConfig {
            lr: 0.1,
            beta1: 0.5,
            beta2: 0.9,
            eps: 1e-7,
            max_grad_norm: None,
        },
    ];
    for config in configs {
        // Tensors of 1, 7 and 300 values (the GPU's 256-thread workgroups, one partial).
        let mut params = Vec::new();
        let mut grads = Vec::new();
        let mut values = Vec::new();
        for (i, &n) in [1usize, 7, 300].iter().enumerate() {
            let v: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect();
            // |g| from 1e-2 to 1e3, either sign; a few exact zeros in the big tensor.
            let g: Vec<f32> = (0..n)
                .map(|k| {
                    if n > 100 && k % 50 == 7 {
                        return 0.0;
                    }
                    let mag = 10f32.powf(rng.random_range(-2.0f32..3.0));
                    if rng.random_bool(0.5) {
                        mag
                    } else {
                        -mag
                    }
                })
                .collect();
            params.push(Param {
                name: format!("p{i}"),
                shape: vec![n],
                value: b.upload(&v).unwrap(),
                grad: b.upload(&g).unwrap(),
            });
            grads.push(g);
            values.push(v);
        }
        let mut adam = Adam::new(b, config, &params).unwrap();
        adam.step(b, &mut params);
        assert_eq!(adam.t, 1);
        let mut worst = 0.0f64;
        for ((p, g), v) in params.iter().zip(&grads).zip(&values) {
            let after = b.read(&p.value).unwrap();
            for ((&a, &g), &v) in after.iter().zip(g).zip(v) {
                let delta = a as f64 - v as f64;
                if g == 0.0 {
                    assert_eq!(
                        delta,
                        0.0,
                        "{}: zero gradient moved p (seed {seed})",
                        b.name()
                    );
                    continue;
                }
                // Moves against the gradient, by lr.
                let want = -(config.lr as f64) * (g as f64).signum();
                let err = (delta - want).abs() / config.lr as f64;
                worst = worst.max(err);
                assert!(
                    err <= 1e-4,
                    "{}: {config:?}: g = {g:e}: Δp = {delta:e}, want {want:e} \
                     (relative error {err:.2e}; seed {seed})",
                    b.name()
                );
            }
        }
        eprintln!(
            "{}: lr {}: worst | |Δp|/lr − 1 | = {worst:.2e}",
            b.name(),
            config.lr
        );
    }
}

#[test]
fn cpu_first_adam_step_is_lr() {
    first_adam_step_moves_every_parameter_by_lr(&CpuBackend::new());
}

#[test]
fn gpu_first_adam_step_is_lr() {
    let gpu = gpu_or_skip!();
    first_adam_step_moves_every_parameter_by_lr(&*gpu);
}

// ------------------------------------------------------------------ replay buffer

const LO: f32 = -2.0;
const HI: f32 = 3.0;
/// Not a multiple of 4: the last Philox block of a row is partial.
const DIM: usize = 5;
const CAPACITY: usize = 1000;

/// Buffer rows outside [LO, HI] that name themselves: row n is 100 + n + k/8 (exact in f32).
fn marked_chains() -> Vec<f32> {
    (0..CAPACITY * DIM)
        .map(|i| 100.0 + (i / DIM) as f32 + (i % DIM) as f32 / 8.0)
        .collect()
}

/// Over `iters` draws of `batch` chains, how many came back as fresh noise. Every drawn row
/// must be either exactly one of the buffer's rows or all-fresh values in [LO, HI].
fn count_reinits<B: Backend>(b: &B, p: f32, seed: u64, iters: u64, batch: usize) -> usize {
    let mut replay = ReplayBuffer::new(b, CAPACITY, DIM, p, (LO, HI), seed).unwrap();
    let chains = marked_chains();
    replay.load_chains(b, &chains).unwrap();
    let mut x = b.zeros(batch * DIM).unwrap();
    let mut fresh = 0;
    for it in 0..iters {
        replay.draw(b, it, batch, &mut x).unwrap();
        for row in b.read(&x).unwrap().chunks(DIM) {
            if row[0] >= 100.0 {
                let n = (row[0] - 100.0) as usize;
                assert_eq!(row, &chains[n * DIM..(n + 1) * DIM], "a mangled buffer row");
            } else {
                assert!(
                    row.iter().all(|v| (LO..=HI).contains(v)),
                    "re-initialised row {row:?} outside [{LO}, {HI}]"
                );
                fresh += 1;
            }
        }
    }
    fresh
}

/// The fraction of re-initialised draws is p: over n = 10240 draws the count must fall within
/// 5 binomial standard deviations of n·p (p = 0.05: 512 ± 110; p = 0.5: 5120 ± 253), so a
/// fair implementation fails about once in 10⁶ seeds.
///
/// Mutation that makes it fail (checked, then reverted): `< d.reinit_prob * 0.8` in the CPU
/// replay_draw and `< draw.reinit_prob * 0.8` in shaders/chains.wgsl (p = 0.5 gives ≈ 4096).
fn reinit_fraction_is_p<B: Backend>(b: &B) {
    let seed = test_seed();
    let (iters, batch) = (40, 256);
    let n = (iters as usize * batch) as f64;
    for p in [0.0f32, 0.05, 0.5] {
        let fresh = count_reinits(b, p, seed, iters, batch) as f64;
        let (mean, sd) = (n * p as f64, (n * p as f64 * (1.0 - p as f64)).sqrt());
        eprintln!(
            "{}: p = {p}: {fresh} of {n} draws re-initialised (expected {mean} ± {sd:.1})",
            b.name()
        );
        assert!(
            (fresh - mean).abs() <= 5.0 * sd,
            "{}: p = {p}: {fresh} of {n} draws re-initialised, expected {mean} ± 5·{sd:.1} \
             (seed {seed})",
            b.name()
        );
    }
}

/// Short-run mode (p = 1): every drawn chain is fresh uniform noise on [LO, HI] — none is a
/// row of the buffer (whose rows here are uniform on [LO, HI] too, so only a copy could
/// match), the values cover the whole interval with its mean, and write_back leaves the
/// buffer alone.
///
/// Mutation that makes it fail (checked, then reverted): `draw.lo + draw.hi * u` in
/// shaders/chains.wgsl and `d.lo, d.lo + d.hi` for the CPU's fill range (values then cover
/// only [−2, 1]).
fn short_run_draws_fresh_noise<B: Backend>(b: &B) {
    let seed = test_seed();
    let batch = 200;
    let mut replay = ReplayBuffer::new(b, 300, DIM, 1.0, (LO, HI), seed).unwrap();
    let chains = replay.read_chains(b).unwrap();
    let mut x = b.zeros(batch * DIM).unwrap();
    let mut all = Vec::new();
    for it in 0..5 {
        replay.draw(b, it, batch, &mut x).unwrap();
        let drawn = b.read(&x).unwrap();
        for row in drawn.chunks(DIM) {
            assert!(
                !chains.chunks(DIM).any(|c| c == row),
                "{}: a short-run draw is a buffer row (seed {seed})",
                b.name()
            );
        }
        b.fill(&mut x, 0.25);
        replay.write_back(b, it, batch, &x);
        all.extend(drawn);
    }
    assert_eq!(
        replay.read_chains(b).unwrap(),
        chains,
        "write_back changed the buffer"
    );
    // 5000 values uniform on [−2, 3]: mean 0.5 ± 0.02 (sd 1.44/√5000), extremes within 0.01
    // of the ends (each missed with probability (1 − 0.002)^5000 < 1e-4).
    let n = all.len() as f64;
    let mean = all.iter().map(|&v| v as f64).sum::<f64>() / n;
    let min = all.iter().copied().fold(f32::INFINITY, f32::min);
    let max = all.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    assert!(
        all.iter().all(|v| (LO..=HI).contains(v)),
        "{}: values outside [{LO}, {HI}]",
        b.name()
    );
    assert!(
        (mean - 0.5).abs() < 0.1 && min < LO + 0.01 && max > HI - 0.01,
        "{}: fresh noise mean {mean:.3}, range [{min}, {max}], want uniform on [{LO}, {HI}] \
         (seed {seed})",
        b.name()
    );
    // Every draw is fresh: no two drawn rows alike, across draws and iterations.
    let mut rows: Vec<&[f32]> = all.chunks(DIM).collect();
    rows.sort_by(|a, b| a.partial_cmp(b).unwrap());
    rows.dedup();
    assert_eq!(rows.len(), all.len() / DIM, "repeated fresh rows");
}

#[test]
fn cpu_replay_reinit_fraction_is_p() {
    reinit_fraction_is_p(&CpuBackend::new());
}

#[test]
fn gpu_replay_reinit_fraction_is_p() {
    let gpu = gpu_or_skip!();
    reinit_fraction_is_p(&*gpu);
}

#[test]
fn cpu_short_run_draws_fresh_noise() {
    short_run_draws_fresh_noise(&CpuBackend::new());
}

#[test]
fn gpu_short_run_draws_fresh_noise() {
    let gpu = gpu_or_skip!();
    short_run_draws_fresh_noise(&*gpu);
}
