//! Every `Backend` op on the GPU against the CPU twin on fresh random shapes and data, plus
//! the properties only the GPU has: Philox bit-exactness, deterministic duplicate scatter,
//! one submission per recorded chain, and writes ordered after recorded work.
//!
//! The conv2d kernels have their own file, `gpu_conv.rs`. Tolerances are relative errors in
//! the 2-norm ([`gpu_common::TOL`] says why 1e-5). Random words, chain indices and copies must
//! match exactly.
//!
//! Set `EBM_TEST_SEED` to replay a failure; the seed is in every failure message.

#[path = "common/gpu.rs"]
mod gpu_common;

use ebm::backend::{
    Activation, Backend, ChannelShape, Conv2dShape, CpuBackend, GpuBackend, LinearShape, PoolShape,
    UpsampleShape,
};
use ebm::rng::{self, Stream};
use ebm::sampler::{LangevinUpdate, MlpChain, ReplayDraw};
use ebm::train::{stat, AdamUpdate, CdLoss, FlagNonFinite};
use ebm::Error;
use gpu_common::{
    abs, assert_close, assert_close_scaled, randn, read, test_seed, up, CHANNELS, TOL,
};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

// Conv tolerance: the same TOL as everything else. The largest sums here are the anatomy32
// layers' (K = 64·4·4 = 1024 terms forward, 2·32·32 = 2048 in dw), and f32 rounding of a sum
// of n random-sign terms grows like √n·ε relative to its size, not n·ε: over many seeds the
// worst relative 2-norm error seen on lavapipe was ≈ 1e-6 (dw), a tenth of TOL, while a
// wrong padding or stride test gives 0.1–1.

/// Average pooling both ways on random shapes, windows 1..4 that often leave rows and
/// columns over (floor semantics); dx starts stale and must be 0 outside whole windows.
#[test]
fn avg_pool_matches_cpu() {
    let gpu = gpu_or_skip!();
    let cpu = CpuBackend::new();
    let seed = test_seed();
    let mut rng = StdRng::seed_from_u64(seed);
    for _ in 0..10 {
        let s = PoolShape {
            batch: rng.random_range(1..=3),
            channels: CHANNELS[rng.random_range(0..CHANNELS.len())],
            height: rng.random_range(5..=13),
            width: rng.random_range(5..=13),
            kernel: rng.random_range(1..=4),
        };
        let planes = s.batch * s.channels;
        let (x_len, y_len) = (
            planes * s.height * s.width,
            planes * s.out_height() * s.out_width(),
        );
        let x = randn(&mut rng, x_len);
        let dy = randn(&mut rng, y_len);

        let mut y = vec![0.0; y_len];
        cpu.avg_pool_forward(s, &x, &mut y);
        let mut gy = up(&gpu, &vec![7.0; y_len]);
        gpu.avg_pool_forward(s, &up(&gpu, &x), &mut gy);
        assert_close(&read(&gpu, &gy), &y, TOL, &format!("forward {s:?}"), seed);

        let mut dx = vec![0.0; x_len];
        cpu.avg_pool_backward(s, &dy, &mut dx);
        let mut gdx = up(&gpu, &vec![7.0; x_len]);
        gpu.avg_pool_backward(s, &up(&gpu, &dy), &mut gdx);
        assert_close(
            &read(&gpu, &gdx),
            &dx,
            TOL,
            &format!("backward {s:?}"),
            seed,
        );
    }
}

#[test]
fn activations_match_cpu() {
    let gpu = gpu_or_skip!();
    let cpu = CpuBackend::new();
    let seed = test_seed();
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
        for n in [1, 255, 257, rng.random_range(2..3000)] {
            let mut x = randn(&mut rng, n);
            // A tenth of the values out to ±30: the tails, tanh's and softplus's switches
            // (|x| = 0.3, x = 20) and σ(x) for large |x|.
            for v in x.iter_mut().skip(1) {
                if rng.random_bool(0.1) {
                    *v *= 15.0;
                }
            }
            x[0] = 0.0; // the kink: both devices take the x ≤ 0 branch
            let dy = randn(&mut rng, n);
            let mut y = vec![0.0; n];
            cpu.activation_forward(act, &x, &mut y);
            let gx = up(&gpu, &x);
            let mut gy = gpu.zeros(n).unwrap();
            gpu.activation_forward(act, &gx, &mut gy);
            assert_close(
                &read(&gpu, &gy),
                &y,
                TOL,
                &format!("{act:?} forward n={n}"),
                seed,
            );

            let mut dx = vec![0.0; n];
            cpu.activation_backward(act, &x, &dy, &mut dx);
            let mut gdx = gpu.zeros(n).unwrap();
            gpu.activation_backward(act, &gx, &up(&gpu, &dy), &mut gdx);
            assert_close(
                &read(&gpu, &gdx),
                &dx,
                TOL,
                &format!("{act:?} backward n={n}"),
                seed,
            );
        }
    }
}

#[test]
fn cd_loss_matches_cpu() {
    let gpu = gpu_or_skip!();
    let cpu = CpuBackend::new();
    let seed = test_seed();
    let mut rng = StdRng::seed_from_u64(seed);
    for n in [2, 7, 300, rng.random_range(2..2000)] {
        let n_pos = rng.random_range(1..n);
        let alpha = rng.random_range(0.0f32..1.0);
        let e = randn(&mut rng, n);
        let (mut d, mut stats) = (vec![0.0; n], vec![0.0; stat::LEN]);
        CdLoss { n_pos, alpha }.run(&cpu, &e, &mut d, &mut stats);
        let (mut gd, mut gstats) = (gpu.zeros(n).unwrap(), gpu.zeros(stat::LEN).unwrap());
        CdLoss { n_pos, alpha }.run(&*gpu, &up(&gpu, &e), &mut gd, &mut gstats);
        let what = format!("cd_loss n={n} n_pos={n_pos} alpha={alpha}");
        assert_close(&read(&gpu, &gd), &d, TOL, &format!("{what} d_energy"), seed);
        let got = read(&gpu, &gstats);
        // Each statistic on its own: the loss is a difference and may be small.
        for (k, (&g, &c)) in got.iter().zip(&stats).enumerate() {
            assert_close(&[g], &[c], 1e-4, &format!("{what} stat {k}"), seed);
        }
    }
}

#[test]
fn langevin_matches_cpu() {
    let gpu = gpu_or_skip!();
    let cpu = CpuBackend::new();
    let seed = test_seed();
    let mut rng = StdRng::seed_from_u64(seed);
    for rows in [1, 3, 33] {
        for dim in [1, 2, 3, 5, 17, 64] {
            let u = LangevinUpdate {
                rows,
                dim,
                step: rng.random_range(0.0f32..0.5),
                noise: rng.random_range(0.0f32..0.1),
                grad_clip: if rng.random_bool(0.5) {
                    Some(0.5)
                } else {
                    None
                },
                lo: -1.5,
                hi: 1.5,
                seed: rng.random(),
                global_step: rng.random_range(0..1_000_000),
                chain_offset: rng.random_range(0..1000),
            };
            let x0 = randn(&mut rng, rows * dim);
            let g = randn(&mut rng, rows * dim);
            let mut x = x0.clone();
            u.run(&cpu, &mut x, &g);
            let mut gx = up(&gpu, &x0);
            u.run(&*gpu, &mut gx, &up(&gpu, &g));
            assert_close(&read(&gpu, &gx), &x, TOL, &format!("{u:?}"), seed);
        }
    }
}

/// step 0, noise 1, x = 0 and a wide clamp: the update writes ξ itself.
#[test]
fn langevin_noise_is_the_philox_normals() {
    let gpu = gpu_or_skip!();
    let seed = test_seed();
    let (rows, dim) = (5, 37);
    let u = LangevinUpdate {
        rows,
        dim,
        step: 0.0,
        noise: 1.0,
        grad_clip: None,
        lo: -1e9,
        hi: 1e9,
        seed,
        global_step: 12345,
        chain_offset: 7,
    };
    let mut x = gpu.zeros(rows * dim).unwrap();
    u.run(&*gpu, &mut x, &gpu.zeros(rows * dim).unwrap());
    let got = read(&gpu, &x);
    let mut want = vec![0.0; rows * dim];
    for (r, row) in want.chunks_mut(dim).enumerate() {
        rng::fill_normal(seed, 7 + r as u32, 12345, Stream::Langevin, row);
    }
    assert_close(&got, &want, TOL, "Langevin noise vs rng::fill_normal", seed);
}

#[test]
fn philox_words_are_bit_exact() {
    let gpu = gpu_or_skip!();
    // Random123's known answers first.
    let kat = gpu.philox_words(0, &[[0; 4]]).unwrap();
    assert_eq!(kat, vec![[0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]]);
    let all_ones = gpu.philox_words(u64::MAX, &[[u32::MAX; 4]]).unwrap();
    assert_eq!(
        all_ones,
        vec![[0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]]
    );

    let seed = test_seed();
    let mut rng = StdRng::seed_from_u64(seed);
    let key_seed: u64 = rng.random();
    let counters: Vec<[u32; 4]> = (0..1000).map(|_| rng.random()).collect();
    let got = gpu.philox_words(key_seed, &counters).unwrap();
    for (c, g) in counters.iter().zip(&got) {
        let want = rng::philox4x32_10(*c, rng::seed_key(key_seed));
        assert_eq!(
            *g, want,
            "counter {c:08x?} key seed {key_seed} (EBM_TEST_SEED={seed})"
        );
    }
}

/// A drawn batch and its chain indices.
type Drawn = (Vec<f32>, Vec<f32>);

/// The same draw on the GPU and on the CPU: (gpu, cpu).
fn draw_on_both(gpu: &GpuBackend, d: &ReplayDraw, buffer: &[f32]) -> (Drawn, Drawn) {
    let cpu = CpuBackend::new();
    let (mut x, mut idx) = (vec![0.0; d.batch * d.dim], vec![0.0; d.batch]);
    d.draw(&cpu, &buffer.to_vec(), &mut x, &mut idx);
    let (mut gx, mut gidx) = (
        gpu.zeros(d.batch * d.dim).unwrap(),
        gpu.zeros(d.batch).unwrap(),
    );
    d.draw(gpu, &up(gpu, buffer), &mut gx, &mut gidx);
    ((read(gpu, &gx), read(gpu, &gidx)), (x, idx))
}

/// reinit_prob 2: every row is re-initialised with uniforms in [0, 1], which are exact in f32
/// on both devices (lo + 1·u = u), so the GPU's words are checked bit for bit.
#[test]
fn replay_draw_uniforms_are_bit_exact() {
    let gpu = gpu_or_skip!();
    let seed = test_seed();
    let d = ReplayDraw {
        capacity: 50,
        batch: 9,
        dim: 7,
        reinit_prob: 2.0,
        lo: 0.0,
        hi: 1.0,
        seed,
        iteration: 3,
    };
    let buffer = vec![-5.0; d.capacity * d.dim];
    let ((x, idx), (cx, cidx)) = draw_on_both(&gpu, &d, &buffer);
    for j in 0..d.batch {
        let mut want = vec![0.0; d.dim];
        rng::fill_uniform(seed, j as u32, 3, Stream::ReplayReinit, 0.0, 1.0, &mut want);
        let got = &x[j * d.dim..(j + 1) * d.dim];
        assert_eq!(
            got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            "row {j} (EBM_TEST_SEED={seed})"
        );
    }
    assert_eq!(x, cx, "EBM_TEST_SEED={seed}");
    assert_eq!(idx, cidx, "chain indices (EBM_TEST_SEED={seed})");
}

#[test]
fn replay_draw_matches_cpu() {
    let gpu = gpu_or_skip!();
    let seed = test_seed();
    let mut rng = StdRng::seed_from_u64(seed);
    for (capacity, batch, dim) in [(1, 1, 1), (10, 33, 3), (1000, 130, 17), (7, 5, 4)] {
        let d = ReplayDraw {
            capacity,
            batch,
            dim,
            reinit_prob: 0.3,
            lo: -1.0,
            hi: 1.0,
            seed: rng.random(),
            iteration: rng.random_range(0..100_000),
        };
        let buffer = randn(&mut rng, capacity * dim);
        let ((x, idx), (cx, cidx)) = draw_on_both(&gpu, &d, &buffer);
        // Indices are f32 of exact integers: equal or wrong.
        assert_eq!(idx, cidx, "{d:?} (EBM_TEST_SEED={seed})");
        // Copied rows are exact; re-initialised ones differ by at most a fused multiply-add.
        assert_close(&x, &cx, 1e-6, &format!("{d:?}"), seed);
    }
}

/// The labels of a conditional draw: GPU equal to the CPU, and each one the data label of a
/// re-initialised row (told apart by the row's values: a re-initialised row is uniform noise
/// in [10, 11], the buffer holds negatives) or of a chain without a label yet (−1), else
/// the stored label of the chain drawn.
#[test]
fn replay_labels_match_cpu_and_the_draw() {
    let gpu = gpu_or_skip!();
    let cpu = CpuBackend::new();
    let seed = test_seed();
    let mut rng = StdRng::seed_from_u64(seed);
    for (capacity, batch) in [(1, 1), (10, 33), (1000, 130), (7, 300)] {
        let dim = 3;
        let d = ReplayDraw {
            capacity,
            batch,
            dim,
            reinit_prob: 0.4,
            lo: 10.0,
            hi: 11.0,
            seed: rng.random(),
            iteration: rng.random_range(0..100_000),
        };
        let buffer = vec![-1.0; capacity * dim];
        // −1: a chain without a label yet, which takes its row's data label.
        let stored: Vec<f32> = (0..capacity)
            .map(|_| rng.random_range(-1..10) as f32)
            .collect();
        let data: Vec<f32> = (0..batch)
            .map(|_| rng.random_range(10..20) as f32)
            .collect();
        let mut labels = vec![0.0; batch];
        d.labels(&cpu, &stored, &data, &mut labels);
        let mut glabels = gpu.zeros(batch).unwrap();
        d.labels(&*gpu, &up(&gpu, &stored), &up(&gpu, &data), &mut glabels);
        assert_eq!(read(&gpu, &glabels), labels, "{d:?} (EBM_TEST_SEED={seed})");
        let ((_, _), (x, idx)) = draw_on_both(&gpu, &d, &buffer);
        let mut restarts = 0;
        for j in 0..batch {
            let restarted = x[j * dim] >= 10.0;
            restarts += usize::from(restarted);
            let kept = stored[idx[j] as usize];
            let want = if restarted || kept < 0.0 {
                data[j]
            } else {
                kept
            };
            assert_eq!(labels[j], want, "row {j} of {d:?} (EBM_TEST_SEED={seed})");
        }
        if batch >= 100 {
            assert!(
                restarts > 0 && restarts < batch,
                "{restarts} of {batch} restarted"
            );
        }
    }
}

#[test]
fn replay_scatter_later_draw_wins() {
    let gpu = gpu_or_skip!();
    let cpu = CpuBackend::new();
    let seed = test_seed();
    let mut rng = StdRng::seed_from_u64(seed);
    let (capacity, dim) = (6, 5);
    // Forced duplicates: chain 3 three times, chain 1 twice; then a random batch of 70 out
    // of 6 chains (duplicates guaranteed, including across more than 64 rows).
    let forced = vec![3.0, 1.0, 3.0, 0.0, 1.0, 3.0];
    let random: Vec<f32> = (0..70)
        .map(|_| rng.random_range(0..capacity) as f32)
        .collect();
    for indices in [forced, random] {
        let batch = indices.len();
        let d = ReplayDraw {
            capacity,
            batch,
            dim,
            reinit_prob: 0.0,
            lo: 0.0,
            hi: 1.0,
            seed: 0,
            iteration: 0,
        };
        let x = randn(&mut rng, batch * dim);
        let buffer0 = randn(&mut rng, capacity * dim);
        let mut buffer = buffer0.clone();
        d.scatter(&cpu, &x, &indices, &mut buffer);
        let mut gbuf = up(&gpu, &buffer0);
        d.scatter(&*gpu, &up(&gpu, &x), &up(&gpu, &indices), &mut gbuf);
        assert_eq!(
            read(&gpu, &gbuf),
            buffer,
            "indices {indices:?} (EBM_TEST_SEED={seed})"
        );
    }
}

#[test]
fn sum_squares_and_adam_match_cpu() {
    let gpu = gpu_or_skip!();
    let cpu = CpuBackend::new();
    let seed = test_seed();
    let mut rng = StdRng::seed_from_u64(seed);
    let sizes = [1, 300, rng.random_range(2..5000)];
    let grads: Vec<Vec<f32>> = sizes.iter().map(|&n| randn(&mut rng, n)).collect();
    let (mut norms, mut gnorms) = (vec![0.0; 4], gpu.zeros(4).unwrap());
    for (slot, g) in grads.iter().enumerate() {
        cpu.sum_squares(g, &mut norms, slot);
        gpu.sum_squares(&up(&gpu, g), &mut gnorms, slot);
    }
    assert_close(&read(&gpu, &gnorms), &norms, TOL, "sum_squares", seed);

    for clip in [None, Some(0.5), Some(1e3)] {
        for (slot, g) in grads.iter().enumerate() {
            let n = g.len();
            let t = rng.random_range(1..100);
            let u = AdamUpdate {
                lr: 1e-3,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                bias_correction1: 1.0 - 0.9f32.powi(t),
                bias_correction2: 1.0 - 0.999f32.powi(t),
                max_grad_norm: clip,
                norm_slots: 3,
            };
            let p0 = randn(&mut rng, n);
            let m0 = randn(&mut rng, n);
            let v0: Vec<f32> = randn(&mut rng, n).iter().map(|v| v.abs()).collect();
            let (mut p, mut m, mut v) = (p0.clone(), m0.clone(), v0.clone());
            u.run(&cpu, &mut p, g, &mut m, &mut v, &norms);
            let (mut gp, mut gm, mut gv) = (up(&gpu, &p0), up(&gpu, &m0), up(&gpu, &v0));
            u.run(&*gpu, &mut gp, &up(&gpu, g), &mut gm, &mut gv, &gnorms);
            let what = format!("adam slot {slot} clip {clip:?}");
            assert_close(&read(&gpu, &gp), &p, TOL, &format!("{what} param"), seed);
            assert_close(&read(&gpu, &gm), &m, TOL, &format!("{what} m"), seed);
            assert_close(&read(&gpu, &gv), &v, TOL, &format!("{what} v"), seed);
        }
    }
}

#[test]
fn fill_copy_write_and_empty_tensors() {
    let gpu = gpu_or_skip!();
    let empty = gpu.zeros(0).unwrap();
    assert_eq!(gpu.len(&empty), 0);
    assert_eq!(read(&gpu, &empty), Vec::<f32>::new());
    let mut empty2 = up(&gpu, &[]);
    gpu.fill(&mut empty2, 3.0);
    gpu.copy(&empty, 0, &mut empty2, 0, 0);
    assert_eq!(read(&gpu, &empty2), Vec::<f32>::new());

    let mut t = gpu.zeros(1000).unwrap();
    gpu.fill(&mut t, 2.5);
    assert!(read(&gpu, &t).iter().all(|&v| v == 2.5));
    gpu.fill(&mut t, 0.0);
    assert!(read(&gpu, &t).iter().all(|&v| v == 0.0));
    gpu.fill(&mut t, -0.0);
    assert!(read(&gpu, &t)
        .iter()
        .all(|&v| v.to_bits() == (-0.0f32).to_bits()));

    let src: Vec<f32> = (0..10).map(|i| i as f32).collect();
    let gsrc = up(&gpu, &src);
    let mut dst = gpu.zeros(8).unwrap();
    gpu.copy(&gsrc, 3, &mut dst, 2, 5);
    gpu.write(&mut dst, 7, &[-1.0]).unwrap();
    assert_eq!(
        read(&gpu, &dst),
        vec![0.0, 0.0, 3.0, 4.0, 5.0, 6.0, 7.0, -1.0]
    );

    assert!(matches!(
        gpu.write(&mut dst, 7, &[1.0, 2.0]),
        Err(Error::Shape(_))
    ));
}

/// A bad shape cannot fail the op itself (ops record, they do not run); the next flush says.
#[test]
fn shape_errors_surface_at_flush() {
    let gpu = gpu_or_skip!();
    let x = gpu.zeros(4).unwrap();
    let mut y = gpu.zeros(4).unwrap();
    let s = LinearShape {
        batch: 2,
        inputs: 3,
        outputs: 2,
    };
    gpu.linear_forward(s, &x, &x, &x, &mut y);
    assert!(matches!(gpu.flush(), Err(Error::Shape(_))));
    // Reported once; the backend stays usable.
    gpu.flush().unwrap();
    assert_eq!(read(&gpu, &y), vec![0.0; 4]);
}

/// Twenty recorded Langevin steps are one submission, made by the read, with no readback
/// before it.
#[test]
fn recorded_chain_is_one_submission() {
    let gpu = gpu_or_skip!();
    let (rows, dim) = (8, 10);
    let mut x = gpu.zeros(rows * dim).unwrap();
    let g = up(&gpu, &vec![0.1; rows * dim]);
    let before = gpu.counters();
    for k in 0..20 {
        let u = LangevinUpdate {
            rows,
            dim,
            step: 0.01,
            noise: 0.005,
            grad_clip: None,
            lo: -1.0,
            hi: 1.0,
            seed: 42,
            global_step: k,
            chain_offset: 0,
        };
        u.run(&*gpu, &mut x, &g);
    }
    let mid = gpu.counters();
    assert_eq!(
        mid.submissions, before.submissions,
        "nothing submitted while recording"
    );
    assert_eq!(mid.readbacks, 0);
    assert_eq!(mid.dispatches - before.dispatches, 20);
    let got = read(&gpu, &x);
    let after = gpu.counters();
    assert_eq!(
        after.submissions,
        mid.submissions + 1,
        "exactly one submission for the read"
    );
    assert_eq!(after.readbacks, 1);

    // The same chain on the CPU.
    let cpu = CpuBackend::new();
    let mut cx = vec![0.0; rows * dim];
    for k in 0..20 {
        let u = LangevinUpdate {
            rows,
            dim,
            step: 0.01,
            noise: 0.005,
            grad_clip: None,
            lo: -1.0,
            hi: 1.0,
            seed: 42,
            global_step: k,
            chain_offset: 0,
        };
        u.run(&cpu, &mut cx, &vec![0.1; rows * dim]);
    }
    assert_close(&got, &cx, TOL, "20 recorded Langevin steps", 42);
}

/// A write is ordered after the work recorded before it: the op must see the old contents.
#[test]
fn write_is_ordered_after_recorded_ops() {
    let gpu = gpu_or_skip!();
    let mut t = up(&gpu, &[1.0, -2.0, 3.0, -4.0]);
    let mut y = gpu.zeros(4).unwrap();
    let mut c = gpu.zeros(4).unwrap();
    gpu.activation_forward(Activation::Relu, &t, &mut y);
    gpu.copy(&t, 0, &mut c, 0, 4);
    gpu.write(&mut t, 0, &[10.0, 20.0, 30.0, 40.0]).unwrap();
    assert_eq!(
        gpu.counters().submissions,
        0,
        "write recorded, not submitted"
    );
    assert_eq!(read(&gpu, &y), vec![1.0, 0.0, 3.0, 0.0]);
    assert_eq!(read(&gpu, &c), vec![1.0, -2.0, 3.0, -4.0]);
    assert_eq!(read(&gpu, &t), vec![10.0, 20.0, 30.0, 40.0]);
    // And an op recorded after the write sees the new contents.
    gpu.activation_forward(Activation::Relu, &t, &mut y);
    assert_eq!(read(&gpu, &y), vec![10.0, 20.0, 30.0, 40.0]);
}

#[test]
fn adapter_is_described() {
    let gpu = gpu_or_skip!();
    let report = gpu.adapter_report();
    assert!(report.immediates);
    assert!(report.max_compute_workgroups_per_dimension >= 65535);
    let text = report.to_string();
    assert!(text.contains(&report.name), "{text}");
    let all = ebm::backend::gpu::describe_adapters();
    assert!(all.iter().any(|r| r.name == report.name));
    for r in &all {
        eprintln!("{r}");
    }
}

/// `new(false)` (what `--device auto` uses) never opens a software adapter: it either finds
/// hardware or says what it found instead.
#[test]
fn hardware_only_refuses_software_adapters() {
    match GpuBackend::new(false) {
        Ok(gpu) => assert!(
            !gpu.adapter_report().is_software,
            "{}",
            gpu.adapter_report()
        ),
        Err(Error::NoGpu(msg)) => eprintln!("as expected on this machine: {msg}"),
        Err(e) => panic!("unexpected error kind: {e}"),
    }
}

/// More than 65535 workgroups: the elementwise kernels fall back to a 2D grid and flatten it.
#[test]
fn large_dispatch_uses_a_2d_grid() {
    let gpu = gpu_or_skip!();
    let max = gpu.adapter_report().max_compute_workgroups_per_dimension as usize;
    let n = (max + 3) * 256 + 5;
    let x: Vec<f32> = (0..n).map(|i| (i % 1000) as f32 - 500.0).collect();
    let gx = up(&gpu, &x);
    let mut y = gpu.zeros(n).unwrap();
    gpu.activation_forward(Activation::Relu, &gx, &mut y);
    let got = read(&gpu, &y);
    let bad = got.iter().zip(&x).position(|(&g, &v)| g != v.max(0.0));
    assert_eq!(bad, None, "first wrong element of {n}");
}

/// Inpainting's mask: known values where the mask is set, the chain's values elsewhere,
/// exactly (it is a copy), at a length that is not a multiple of the workgroup.
#[test]
fn keep_known_matches_cpu() {
    let gpu = gpu_or_skip!();
    let seed = test_seed();
    let mut rng = StdRng::seed_from_u64(seed);
    let cpu = CpuBackend::new();
    for n in [1usize, 255, 1000 + rng.random_range(0..300)] {
        let x: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
        let known: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
        let mask: Vec<f32> = (0..n)
            .map(|_| if rng.random_bool(0.3) { 1.0 } else { 0.0 })
            .collect();
        let mut t = gpu.upload(&x).unwrap();
        gpu.keep_known(
            &mut t,
            &gpu.upload(&known).unwrap(),
            &gpu.upload(&mask).unwrap(),
        );
        let on_gpu = gpu.read(&t).unwrap();
        let mut on_cpu = x.clone();
        cpu.keep_known(&mut on_cpu, &known, &mask);
        assert_eq!(on_gpu, on_cpu, "seed {seed}, n {n}");
        let kept = on_cpu
            .iter()
            .zip(&known)
            .zip(&mask)
            .all(|((v, k), m)| *m == 0.0 || v == k);
        let moved = on_cpu
            .iter()
            .zip(&x)
            .zip(&mask)
            .all(|((v, x), m)| *m != 0.0 || v == x);
        assert!(kept && moved, "seed {seed}: mask semantics");
    }
}

/// The health flag on both backends: NaN, +∞ and −∞ anywhere (the last element of a partial
/// workgroup included) set the slot to the mark, finite data leaves it, and a set flag keeps
/// its first mark.
#[test]
fn flag_non_finite_matches_cpu() {
    let gpu = gpu_or_skip!();
    let cpu = CpuBackend::new();
    let seed = test_seed();
    let mut rng = StdRng::seed_from_u64(seed);
    for bad in [
        None,
        Some(f32::NAN),
        Some(f32::INFINITY),
        Some(f32::NEG_INFINITY),
    ] {
        let n = rng.random_range(1..3000);
        let mut x = randn(&mut rng, n);
        // Huge but finite values must not count.
        x[0] = f32::MAX;
        if let Some(v) = bad {
            x[n - 1] = v;
        }
        let mut flags_cpu = vec![0.0, 0.0, 7.0];
        let gx = up(&gpu, &x);
        let mut flags_gpu = up(&gpu, &flags_cpu);
        for (slot, mark) in [(1, 3.0), (1, 4.0), (2, 5.0)] {
            FlagNonFinite { slot, mark }.run(&cpu, &x, &mut flags_cpu);
            FlagNonFinite { slot, mark }.run(&*gpu, &gx, &mut flags_gpu);
        }
        let want = if bad.is_some() {
            vec![0.0, 3.0, 7.0]
        } else {
            vec![0.0, 0.0, 7.0]
        };
        assert_eq!(flags_cpu, want, "CPU, {bad:?}, n {n} (seed {seed})");
        assert_eq!(
            read(&gpu, &flags_gpu),
            want,
            "GPU, {bad:?}, n {n} (seed {seed})"
        );
    }
}

/// A tensor over the adapter's storage-buffer limit is refused when it is made, with the
/// sizes in the message — not a wgpu validation error later.
#[test]
fn tensor_over_the_limit_is_refused() {
    let gpu = gpu_or_skip!();
    let report = gpu.adapter_report();
    let limit = report
        .max_storage_buffer_binding_size
        .min(report.max_buffer_size);
    let err = gpu.zeros((limit / 4 + 1) as usize).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("storage buffer limit"), "{text}");
    // The backend is still usable.
    let t = gpu.upload(&[1.0, 2.0]).unwrap();
    assert_eq!(read(&gpu, &t), [1.0, 2.0]);
}

/// After the device is lost (here: destroyed, as a driver reset would), the next operation
/// that reports errors says so in plain words.
#[test]
fn lost_device_is_a_clear_error() {
    let gpu = gpu_or_skip!();
    let x = gpu.upload(&[1.0; 16]).unwrap();
    gpu.simulate_device_loss();
    let mut y = gpu
        .zeros(16)
        .unwrap_or_else(|_| gpu.upload(&[0.0; 16]).unwrap());
    gpu.copy(&x, 0, &mut y, 0, 16);
    let err = gpu.read(&y).expect_err("a lost device cannot read");
    let text = err.to_string();
    assert!(text.contains("was lost"), "{text}");
    assert!(text.contains("--device cpu"), "{text}");
}

// ---- Ops for residual nets, classifier heads and generators ------------------------------

/// Tensors one op reads or writes start with `extra` stale values past `len`, which must
/// come back untouched: the ops act on `[..len]` only.
fn with_tail(rng: &mut StdRng, len: usize, extra: usize) -> Vec<f32> {
    randn(rng, len + extra)
}

/// Lengths: 1, around one workgroup, one past 65535·256 / 1000 (not a multiple of
/// anything), and random.
fn lengths(rng: &mut StdRng) -> [usize; 5] {
    [1, 255, 257, 16_777, rng.random_range(2..5000)]
}

/// add, axpy, scale on the first `len` values of longer tensors, both devices.
#[test]
fn add_axpy_scale_match_cpu() {
    let gpu = gpu_or_skip!();
    let cpu = CpuBackend::new();
    let seed = test_seed();
    let mut rng = StdRng::seed_from_u64(seed);
    for len in lengths(&mut rng) {
        let extra = rng.random_range(0..4);
        let a = with_tail(&mut rng, len, extra);
        let b = with_tail(&mut rng, len, extra);
        let y0 = with_tail(&mut rng, len, extra);
        let alpha = rng.random_range(-3.0f32..3.0);
        let what = format!("len {len} (+{extra} untouched) alpha {alpha}");

        let mut y = y0.clone();
        cpu.add(&a, &b, &mut y, len);
        let mut gy = up(&gpu, &y0);
        gpu.add(&up(&gpu, &a), &up(&gpu, &b), &mut gy, len);
        assert_eq!(read(&gpu, &gy), y, "add {what} (EBM_TEST_SEED={seed})");
        assert_eq!(y[len..], y0[len..], "CPU add tail {what}");

        let mut y = y0.clone();
        cpu.axpy(alpha, &a, &mut y, len);
        let mut gy = up(&gpu, &y0);
        gpu.axpy(alpha, &up(&gpu, &a), &mut gy, len);
        let got = read(&gpu, &gy);
        // y + α·x may be one fused multiply-add on the GPU: scaled by |y| + |α·x|.
        let scale: Vec<f32> = y0
            .iter()
            .zip(&a)
            .map(|(y, x)| y.abs() + (alpha * x).abs())
            .collect();
        assert_close_scaled(&got, &y, &scale, TOL, &format!("axpy {what}"), seed);
        assert_eq!(got[len..], y0[len..], "GPU axpy tail {what}");
        assert_eq!(y[len..], y0[len..], "CPU axpy tail {what}");

        let mut x = y0.clone();
        cpu.scale(alpha, &mut x, len);
        let mut gx = up(&gpu, &y0);
        gpu.scale(alpha, &mut gx, len);
        assert_eq!(read(&gpu, &gx), x, "scale {what} (EBM_TEST_SEED={seed})");
        assert_eq!(x[len..], y0[len..], "CPU scale tail {what}");
    }
}

/// [rows, cols] shapes: single rows and columns, rows shorter and longer than one
/// 256-thread workgroup (one of 10⁵ values), and random ones.
fn row_shapes(rng: &mut StdRng) -> Vec<(usize, usize)> {
    vec![
        (1, 1),
        (1, 100_003),
        (7, 1),
        (1, 10),
        (33, 257),
        (130, 5),
        (3, 1000 + rng.random_range(0..300)),
        (rng.random_range(1..70), rng.random_range(1..600)),
    ]
}

/// row_sum, broadcast_rows and scale_rows on both devices; outputs start stale.
#[test]
fn row_sum_broadcast_scale_rows_match_cpu() {
    let gpu = gpu_or_skip!();
    let cpu = CpuBackend::new();
    let seed = test_seed();
    let mut rng = StdRng::seed_from_u64(seed);
    for (rows, cols) in row_shapes(&mut rng) {
        let n = rows * cols;
        let alpha = rng.random_range(-3.0f32..3.0);
        let x = randn(&mut rng, n);
        let s = randn(&mut rng, rows);
        let what = format!("{rows}×{cols} alpha {alpha}");

        let mut y = vec![7.0; rows];
        cpu.row_sum(rows, cols, alpha, &x, &mut y);
        let mut scale = vec![0.0; rows];
        cpu.row_sum(rows, cols, alpha.abs(), &abs(&x), &mut scale);
        let mut gy = up(&gpu, &vec![7.0; rows]);
        gpu.row_sum(rows, cols, alpha, &up(&gpu, &x), &mut gy);
        let got = read(&gpu, &gy);
        assert_close_scaled(&got, &y, &scale, TOL, &format!("row_sum {what}"), seed);

        let mut y = vec![7.0; n];
        cpu.broadcast_rows(rows, cols, alpha, &s, &mut y);
        let mut gy = up(&gpu, &vec![7.0; n]);
        gpu.broadcast_rows(rows, cols, alpha, &up(&gpu, &s), &mut gy);
        assert_eq!(
            read(&gpu, &gy),
            y,
            "broadcast_rows {what} (EBM_TEST_SEED={seed})"
        );

        let mut y = vec![7.0; n];
        cpu.scale_rows(rows, cols, alpha, &x, &s, &mut y);
        let mut gy = up(&gpu, &vec![7.0; n]);
        gpu.scale_rows(rows, cols, alpha, &up(&gpu, &x), &up(&gpu, &s), &mut gy);
        assert_close(
            &read(&gpu, &gy),
            &y,
            TOL,
            &format!("scale_rows {what}"),
            seed,
        );
    }
}

/// row_logsumexp and row_softmax on both devices, with rows shifted far from 0 (the max
/// shift must keep exp finite), a masked −∞ logit, and a row of only −∞ (lse −∞).
#[test]
fn row_logsumexp_softmax_match_cpu() {
    let gpu = gpu_or_skip!();
    let cpu = CpuBackend::new();
    let seed = test_seed();
    let mut rng = StdRng::seed_from_u64(seed);
    for (rows, cols) in row_shapes(&mut rng) {
        let n = rows * cols;
        let mut x = randn(&mut rng, n);
        for (r, row) in x.chunks_mut(cols).enumerate() {
            // Offsets up to ±200: exp(200) overflows f32 unless shifted.
            let shift = [0.0, 200.0, -200.0, 30.0][r % 4];
            row.iter_mut().for_each(|v| *v = *v * 3.0 + shift);
        }
        if cols > 1 {
            x[cols - 1] = f32::NEG_INFINITY;
        }
        let what = format!("{rows}×{cols}");

        let mut y = vec![7.0; rows];
        cpu.row_logsumexp(rows, cols, &x, &mut y);
        assert!(y.iter().all(|v| v.is_finite()), "CPU lse {what}");
        let mut gy = up(&gpu, &vec![7.0; rows]);
        gpu.row_logsumexp(rows, cols, &up(&gpu, &x), &mut gy);
        // The error of m + log Σ exp(x − m) is relative to |m| + log(cols): that is the
        // magnitude of the terms.
        let scale: Vec<f32> = x
            .chunks(cols)
            .map(|row| {
                let m = row
                    .iter()
                    .filter(|v| v.is_finite())
                    .fold(0.0f32, |m, v| m.max(v.abs()));
                m + (cols as f32).ln() + 1.0
            })
            .collect();
        let got = read(&gpu, &gy);
        assert_close_scaled(
            &got,
            &y,
            &scale,
            TOL,
            &format!("row_logsumexp {what}"),
            seed,
        );

        let mut p = vec![7.0; n];
        cpu.row_softmax(rows, cols, &x, &mut p);
        let mut gp = up(&gpu, &vec![7.0; n]);
        gpu.row_softmax(rows, cols, &up(&gpu, &x), &mut gp);
        let got = read(&gpu, &gp);
        assert_close(&got, &p, TOL, &format!("row_softmax {what}"), seed);
        // Rows sum to 1 on the GPU too.
        for (r, row) in got.chunks(cols).enumerate() {
            let total: f64 = row.iter().map(|&v| v as f64).sum();
            assert!(
                (total - 1.0).abs() < 1e-5,
                "softmax row {r} sums to {total} {what} (EBM_TEST_SEED={seed})"
            );
        }
    }
    // A row of only −∞ has log-sum-exp −∞ on both devices.
    let x = vec![f32::NEG_INFINITY; 3];
    let mut y = vec![0.0];
    cpu.row_logsumexp(1, 3, &x, &mut y);
    let mut gy = gpu.zeros(1).unwrap();
    gpu.row_logsumexp(1, 3, &up(&gpu, &x), &mut gy);
    assert_eq!(
        (y[0], read(&gpu, &gy)[0]),
        (f32::NEG_INFINITY, f32::NEG_INFINITY)
    );
}

/// More rows than one grid dimension holds: the reductions' 2D grid of workgroups and the
/// per-row gather's 2D grid of threads, flattened back in the shaders.
#[test]
fn row_ops_past_65535_rows() {
    let gpu = gpu_or_skip!();
    let cpu = CpuBackend::new();
    let max = gpu.adapter_report().max_compute_workgroups_per_dimension as usize;
    let (rows, cols) = (max + 3, 2);
    let x: Vec<f32> = (0..rows * cols).map(|i| (i % 1000) as f32).collect();
    let mut y = vec![0.0; rows];
    cpu.row_sum(rows, cols, 1.0, &x, &mut y);
    let mut gy = gpu.zeros(rows).unwrap();
    gpu.row_sum(rows, cols, 1.0, &up(&gpu, &x), &mut gy);
    let got = read(&gpu, &gy);
    assert_eq!(
        got.iter().zip(&y).position(|(g, c)| g != c),
        None,
        "row_sum of {rows} rows"
    );

    let s = ChannelShape {
        batch: 1,
        channels: rows,
        pixels: cols,
    };
    let mut db = gpu.zeros(rows).unwrap();
    gpu.channel_sum(s, &up(&gpu, &x), &mut db);
    let got = read(&gpu, &db);
    assert_eq!(
        got.iter().zip(&y).position(|(g, c)| g != c),
        None,
        "channel_sum of {rows} channels"
    );

    let rows = (max + 3) * 256 + 5;
    let x: Vec<f32> = (0..rows).map(|i| (i % 1000) as f32).collect();
    let index = vec![0.0; rows];
    let mut gy = gpu.zeros(rows).unwrap();
    gpu.gather_cols(rows, 1, &up(&gpu, &x), &up(&gpu, &index), &mut gy);
    let got = read(&gpu, &gy);
    assert_eq!(
        got.iter().zip(&x).position(|(g, c)| g != c),
        None,
        "gather of {rows} rows"
    );
}

/// Bit patterns, so that NaN compares equal to NaN.
fn bits(v: &[f32]) -> Vec<u32> {
    v.iter()
        .map(|v| if v.is_nan() { u32::MAX } else { v.to_bits() })
        .collect()
}

/// gather_cols and scatter_cols with the edge columns 0 and cols − 1 and one bad index per
/// case (past the end, negative, fractional, NaN): the gather gives NaN there and the
/// scatter an all-zero row, on both devices and exactly (they copy, or multiply once).
#[test]
fn gather_scatter_cols_match_cpu() {
    let gpu = gpu_or_skip!();
    let cpu = CpuBackend::new();
    let seed = test_seed();
    let mut rng = StdRng::seed_from_u64(seed);
    let shapes = [
        (1, 1),
        (5, 1),
        (1, 9),
        (33, 10),
        (300, 257),
        (rng.random_range(2..100), rng.random_range(2..50)),
    ];
    for (case, (rows, cols)) in shapes.into_iter().enumerate() {
        let x = randn(&mut rng, rows * cols);
        let dy = randn(&mut rng, rows);
        let mut index: Vec<f32> = (0..rows)
            .map(|_| rng.random_range(0..cols) as f32)
            .collect();
        index[0] = 0.0;
        index[rows - 1] = (cols - 1) as f32;
        let bad_row = rng.random_range(0..rows);
        let bad = [cols as f32, -1.0, 0.5, f32::NAN][case % 4];
        index[bad_row] = bad;
        let alpha = rng.random_range(-3.0f32..3.0);
        let what = format!("{rows}×{cols}, index {bad} at row {bad_row} (EBM_TEST_SEED={seed})");

        let mut y = vec![7.0; rows];
        cpu.gather_cols(rows, cols, &x, &index, &mut y);
        let mut gy = up(&gpu, &vec![7.0; rows]);
        gpu.gather_cols(rows, cols, &up(&gpu, &x), &up(&gpu, &index), &mut gy);
        let got = read(&gpu, &gy);
        assert_eq!(bits(&got), bits(&y), "gather_cols {what}");
        assert!(
            got[bad_row].is_nan(),
            "gather_cols: no NaN for the bad index, {what}"
        );
        for r in (0..rows).filter(|&r| r != bad_row) {
            assert_eq!(
                y[r],
                x[r * cols + index[r] as usize],
                "CPU gather row {r}, {what}"
            );
        }

        let mut dx = vec![7.0; rows * cols];
        cpu.scatter_cols(rows, cols, alpha, &dy, &index, &mut dx);
        let mut gdx = up(&gpu, &vec![7.0; rows * cols]);
        gpu.scatter_cols(
            rows,
            cols,
            alpha,
            &up(&gpu, &dy),
            &up(&gpu, &index),
            &mut gdx,
        );
        let got = read(&gpu, &gdx);
        assert_eq!(got, dx, "scatter_cols {what}");
        assert!(
            got[bad_row * cols..][..cols].iter().all(|&v| v == 0.0),
            "scatter_cols bad row, {what}"
        );
        let nonzero = got.iter().filter(|&&v| v != 0.0).count();
        assert!(nonzero < rows, "scatter_cols: {nonzero} values set, {what}");
    }
}

/// channel_bias_add and channel_sum: batch 1 and more, channel counts that are not
/// multiples of 4, one pixel (a dense layer's bias) and thousands per channel.
#[test]
fn channel_bias_add_and_sum_match_cpu() {
    let gpu = gpu_or_skip!();
    let cpu = CpuBackend::new();
    let seed = test_seed();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut shapes = vec![
        ChannelShape {
            batch: 1,
            channels: 1,
            pixels: 1,
        },
        ChannelShape {
            batch: 1,
            channels: 7,
            pixels: 1,
        },
        ChannelShape {
            batch: 130,
            channels: 5,
            pixels: 1,
        },
        ChannelShape {
            batch: 3,
            channels: 3,
            pixels: 64 * 64,
        },
        ChannelShape {
            batch: 1,
            channels: 67,
            pixels: 33,
        },
    ];
    for _ in 0..4 {
        shapes.push(ChannelShape {
            batch: rng.random_range(1..=5),
            channels: CHANNELS[rng.random_range(0..CHANNELS.len())],
            pixels: rng.random_range(1..700),
        });
    }
    for s in shapes {
        let n = s.batch * s.channels * s.pixels;
        let y0 = randn(&mut rng, n);
        let bias = randn(&mut rng, s.channels);
        let what = format!("{s:?}");

        let mut y = y0.clone();
        cpu.channel_bias_add(s, &bias, &mut y);
        let mut gy = up(&gpu, &y0);
        gpu.channel_bias_add(s, &up(&gpu, &bias), &mut gy);
        assert_eq!(
            read(&gpu, &gy),
            y,
            "channel_bias_add {what} (EBM_TEST_SEED={seed})"
        );

        let mut db = vec![7.0; s.channels];
        cpu.channel_sum(s, &y0, &mut db);
        let mut scale = vec![0.0; s.channels];
        cpu.channel_sum(s, &abs(&y0), &mut scale);
        let mut gdb = up(&gpu, &vec![7.0; s.channels]);
        gpu.channel_sum(s, &up(&gpu, &y0), &mut gdb);
        let got = read(&gpu, &gdb);
        assert_close_scaled(&got, &db, &scale, TOL, &format!("channel_sum {what}"), seed);
    }
}

/// Upsampling both ways on random shapes (factors 1..4, batch 1 included, channels not
/// multiples of 4); outputs start stale. The forward copies (exact); the backward sums f²
/// values in the same order on both devices.
#[test]
fn upsample_matches_cpu() {
    let gpu = gpu_or_skip!();
    let cpu = CpuBackend::new();
    let seed = test_seed();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut shapes = vec![UpsampleShape {
        batch: 1,
        channels: 1,
        height: 1,
        width: 1,
        factor: 1,
    }];
    for _ in 0..8 {
        shapes.push(UpsampleShape {
            batch: rng.random_range(1..=3),
            channels: CHANNELS[rng.random_range(0..CHANNELS.len())],
            height: rng.random_range(1..=13),
            width: rng.random_range(1..=13),
            factor: rng.random_range(1..=4),
        });
    }
    for s in shapes {
        let x = randn(&mut rng, s.in_len());
        let dy = randn(&mut rng, s.out_len());
        let mut y = vec![7.0; s.out_len()];
        cpu.upsample_forward(s, &x, &mut y);
        let mut gy = up(&gpu, &vec![7.0; s.out_len()]);
        gpu.upsample_forward(s, &up(&gpu, &x), &mut gy);
        assert_eq!(
            read(&gpu, &gy),
            y,
            "upsample_forward {s:?} (EBM_TEST_SEED={seed})"
        );

        let mut dx = vec![7.0; s.in_len()];
        cpu.upsample_backward(s, &dy, &mut dx);
        let mut scale = vec![0.0; s.in_len()];
        cpu.upsample_backward(s, &abs(&dy), &mut scale);
        let mut gdx = up(&gpu, &vec![7.0; s.in_len()]);
        gpu.upsample_backward(s, &up(&gpu, &dy), &mut gdx);
        let what = format!("upsample_backward {s:?}");
        assert_close_scaled(&read(&gpu, &gdx), &dx, &scale, TOL, &what, seed);
    }
}

/// A factor of 0 and too-short tensors are shape errors at the next flush.
#[test]
fn new_ops_reject_bad_shapes() {
    let gpu = gpu_or_skip!();
    let t = gpu.zeros(8).unwrap();
    let mut y = gpu.zeros(8).unwrap();
    let s = UpsampleShape {
        batch: 1,
        channels: 1,
        height: 2,
        width: 2,
        factor: 0,
    };
    gpu.upsample_forward(s, &t, &mut y);
    assert!(matches!(gpu.flush(), Err(Error::Shape(_))));
    gpu.add(&t, &t, &mut y, 9);
    assert!(matches!(gpu.flush(), Err(Error::Shape(_))));
    gpu.row_softmax(3, 3, &t, &mut y);
    assert!(matches!(gpu.flush(), Err(Error::Shape(_))));
    let c = ChannelShape {
        batch: 2,
        channels: 3,
        pixels: 2,
    };
    gpu.channel_sum(c, &t, &mut y);
    assert!(matches!(gpu.flush(), Err(Error::Shape(_))));
    gpu.flush().unwrap();
}

/// Past 65535 workgroups the one-thread-per-element kernels of elementwise.wgsl,
/// upsample.wgsl and rows.wgsl (each file has its own copy of the grid flattening) run on a
/// 2D grid; every element must still be written once, with the right index.
#[test]
fn new_elementwise_kernels_past_65535_workgroups() {
    let gpu = gpu_or_skip!();
    let cpu = CpuBackend::new();
    let max = gpu.adapter_report().max_compute_workgroups_per_dimension as usize;
    let n = (max + 3) * 256 + 5;
    let x: Vec<f32> = (0..n).map(|i| (i % 1000) as f32 - 500.0).collect();
    let y0: Vec<f32> = (0..n).map(|i| (i % 7) as f32).collect();

    let mut y = y0.clone();
    cpu.axpy(2.0, &x, &mut y, n);
    let mut gy = up(&gpu, &y0);
    gpu.axpy(2.0, &up(&gpu, &x), &mut gy, n);
    let got = read(&gpu, &gy);
    let bad = got.iter().zip(&y).position(|(g, c)| g != c);
    assert_eq!(bad, None, "axpy: first wrong element of {n}");

    let s = UpsampleShape {
        batch: 1,
        channels: 1,
        height: 1,
        width: n / 4 + 1,
        factor: 2,
    };
    let mut y = vec![0.0; s.out_len()];
    cpu.upsample_forward(s, &x, &mut y);
    let mut gy = gpu.zeros(s.out_len()).unwrap();
    gpu.upsample_forward(s, &up(&gpu, &x[..s.in_len()]), &mut gy);
    let got = read(&gpu, &gy);
    let bad = got.iter().zip(&y).position(|(g, c)| g != c);
    assert_eq!(
        bad,
        None,
        "upsample_forward: first wrong element of {}",
        y.len()
    );

    let (rows, cols) = (n / 3 + 1, 3);
    let index: Vec<f32> = (0..rows).map(|r| (r % 3) as f32).collect();
    let mut dx = vec![7.0; rows * cols];
    cpu.scatter_cols(rows, cols, 1.0, &x, &index, &mut dx);
    let mut gdx = gpu.zeros(rows * cols).unwrap();
    gpu.scatter_cols(
        rows,
        cols,
        1.0,
        &up(&gpu, &x[..rows]),
        &up(&gpu, &index),
        &mut gdx,
    );
    let got = read(&gpu, &gdx);
    let bad = got.iter().zip(&dx).position(|(g, c)| g != c);
    assert_eq!(
        bad,
        None,
        "scatter_cols: first wrong element of {}",
        dx.len()
    );
}

/// Spectral-norm shapes: a single row or column, odd sizes, rows and columns past one
/// 256-thread workgroup, random ones, and the largest the models use (a 3×3 conv of 512
/// channels: [512, 4608]).
fn spectral_shapes(rng: &mut StdRng) -> Vec<(usize, usize)> {
    vec![
        (1, 1),
        (1, 300),
        (7, 1),
        (7, 5),
        (33, 257),
        (300, 3),
        (3, 1000 + rng.random_range(0..300)),
        (rng.random_range(1..70), rng.random_range(1..600)),
        (512, 4608),
    ]
}

/// `|W|ᵀ|u|` or `|W||v|`: the magnitudes of the terms of Wᵀu or W v, for scaled comparisons.
fn abs_products(rows: usize, cols: usize, w: &[f32], x: &[f32], transpose: bool) -> Vec<f32> {
    if transpose {
        (0..cols)
            .map(|c| (0..rows).map(|r| (w[r * cols + c] * x[r]).abs()).sum())
            .collect()
    } else {
        (0..rows)
            .map(|r| (0..cols).map(|c| (w[r * cols + c] * x[c]).abs()).sum())
            .collect()
    }
}

/// spectral_norm_forward (with and without the power iteration) and spectral_norm_backward
/// on both devices; outputs start stale, and the GPU gives the same bits when run twice.
#[test]
fn spectral_norm_matches_cpu() {
    let gpu = gpu_or_skip!();
    let cpu = CpuBackend::new();
    let seed = test_seed();
    let mut rng = StdRng::seed_from_u64(seed);
    // Sums of up to 4608 terms in f32 in a different order (the CPU sums in f64).
    let tol = 1e-4;
    for (rows, cols) in spectral_shapes(&mut rng) {
        let n = rows * cols;
        let w = randn(&mut rng, n);
        let u0 = randn(&mut rng, rows);
        let v0 = randn(&mut rng, cols);
        let g = randn(&mut rng, n);
        for iterate in [true, false] {
            let what = format!("{rows}×{cols} iterate {iterate}");
            let (mut u, mut v) = (u0.clone(), v0.clone());
            let (mut sigma, mut w_sn) = (vec![7.0; 1], vec![7.0; n]);
            cpu.spectral_norm_forward(
                rows, cols, &w, &mut u, &mut v, &mut sigma, &mut w_sn, iterate,
            );
            let mut dw = vec![7.0; n];
            cpu.spectral_norm_backward(rows, cols, &g, &w_sn, &u, &v, &sigma, &mut dw);

            let run = |gpu: &GpuBackend| {
                let gw = up(gpu, &w);
                let (mut gu, mut gv) = (up(gpu, &u0), up(gpu, &v0));
                let (mut gs, mut gw_sn) = (up(gpu, &[7.0]), up(gpu, &vec![7.0; n]));
                gpu.spectral_norm_forward(
                    rows, cols, &gw, &mut gu, &mut gv, &mut gs, &mut gw_sn, iterate,
                );
                // The backward of the CPU's forward, so that only the backward differs.
                let mut gdw = up(gpu, &vec![7.0; n]);
                gpu.spectral_norm_backward(
                    rows,
                    cols,
                    &up(gpu, &g),
                    &up(gpu, &w_sn),
                    &up(gpu, &u),
                    &up(gpu, &v),
                    &up(gpu, &sigma),
                    &mut gdw,
                );
                [
                    read(gpu, &gu),
                    read(gpu, &gv),
                    read(gpu, &gs),
                    read(gpu, &gw_sn),
                    read(gpu, &gdw),
                ]
            };
            let [gu, gv, gs, gw_sn, gdw] = run(&gpu);
            if iterate {
                // v = normalize(Wᵀu₀): entries are sums that may cancel.
                let norm = |x: &[f32]| x.iter().map(|a| (a * a) as f64).sum::<f64>().sqrt();
                let wtu = abs_products(rows, cols, &w, &u0, true);
                let wtu_norm = {
                    let mut raw = vec![0.0f32; cols];
                    for c in 0..cols {
                        raw[c] = (0..rows).map(|r| w[r * cols + c] * u0[r]).sum();
                    }
                    norm(&raw).max(1e-30) as f32
                };
                let scale: Vec<f32> = wtu.iter().map(|a| a / wtu_norm).collect();
                assert_close_scaled(&gv, &v, &scale, tol, &format!("sn v {what}"), seed);
                assert_close(&gu, &u, tol, &format!("sn u {what}"), seed);
            } else {
                assert_eq!(
                    (&gu, &gv),
                    (&u0, &v0),
                    "sn u, v must stay {what} (EBM_TEST_SEED={seed})"
                );
            }
            // σ = uᵀ W v: scaled by Σ |u||W||v|.
            let s_scale: f32 = abs_products(rows, cols, &w, &v, false)
                .iter()
                .zip(&u)
                .map(|(a, b)| a * b.abs())
                .sum();
            assert_close_scaled(
                &gs,
                &sigma,
                &[s_scale],
                tol,
                &format!("sn sigma {what}"),
                seed,
            );
            assert_close(&gw_sn, &w_sn, tol, &format!("sn w_sn {what}"), seed);
            // dw = (g − ⟨g, w_sn⟩ u vᵀ) / σ: scaled by (|g| + Σ|g·w_sn|·|u||v|) / |σ|.
            let dot_abs: f32 = g.iter().zip(&w_sn).map(|(a, b)| (a * b).abs()).sum();
            let s = sigma[0].abs();
            let scale: Vec<f32> = (0..n)
                .map(|i| (g[i].abs() + dot_abs * (u[i / cols] * v[i % cols]).abs()) / s)
                .collect();
            assert_close_scaled(&gdw, &dw, &scale, tol, &format!("sn dw {what}"), seed);

            let again = run(&gpu);
            assert_eq!(
                [gu, gv, gs, gw_sn, gdw].map(|v| bits(&v)),
                again.map(|v| bits(&v)),
                "sn {what}: two runs on the GPU differ (EBM_TEST_SEED={seed})"
            );
        }
    }
}

/// Bad calls, one per kind of op, each followed by a `flush`: the error each one gives, in
/// order. Shape checks run above the backends, so the CPU and the GPU must give the same
/// list, and the CPU must give it without panicking.
fn refused_calls<B: Backend>(b: &B) -> Vec<String> {
    let t = |n: usize| b.zeros(n).unwrap();
    let mut errors = Vec::new();
    let mut outcome = |what: &str| match b.flush() {
        Err(e) => errors.push(e.to_string()),
        Ok(()) => errors.push(format!("{what}: accepted")),
    };
    let lin = LinearShape {
        batch: 2,
        inputs: 3,
        outputs: 4,
    };
    b.linear_forward(lin, &t(6), &t(12), &t(4), &mut t(7));
    outcome("linear_forward, short y");
    let conv = Conv2dShape {
        batch: 1,
        in_channels: 1,
        out_channels: 1,
        height: 2,
        width: 2,
        kernel: 5,
        stride: 1,
        padding: 1,
    };
    b.conv2d_forward(conv, &t(4), &t(25), &t(1), &mut t(4));
    outcome("conv2d_forward, kernel past the padded input");
    let no_outputs = LinearShape { outputs: 0, ..lin };
    b.linear_forward(no_outputs, &t(6), &t(0), &t(0), &mut t(0));
    outcome("linear_forward, zero outputs");
    let no_filters = Conv2dShape {
        out_channels: 0,
        kernel: 3,
        ..conv
    };
    b.conv2d_backward_params(no_filters, &t(0), &t(4), &mut t(0), &mut t(0));
    outcome("conv2d_backward_params, zero filters");
    let no_channels = Conv2dShape {
        in_channels: 0,
        kernel: 3,
        ..conv
    };
    b.conv2d_backward_data(no_channels, &t(4), &t(0), &mut t(0));
    outcome("conv2d_backward_data, zero input channels");
    let pool = PoolShape {
        batch: 1,
        channels: 1,
        height: 2,
        width: 2,
        kernel: 0,
    };
    b.avg_pool_forward(pool, &t(4), &mut t(4));
    outcome("avg_pool_forward, kernel 0");
    let up = UpsampleShape {
        batch: 1,
        channels: 1,
        height: 2,
        width: 2,
        factor: 0,
    };
    b.upsample_forward(up, &t(4), &mut t(4));
    outcome("upsample_forward, factor 0");
    b.add(&t(3), &t(5), &mut t(5), 5);
    outcome("add, short a");
    b.row_softmax(2, 3, &t(6), &mut t(5));
    outcome("row_softmax, short y");
    b.gather_cols(3, 2, &t(6), &t(2), &mut t(3));
    outcome("gather_cols, short index");
    b.copy(&t(4), 2, &mut t(4), 0, 3);
    outcome("copy past the source");
    let (mut u, mut v, mut sigma, mut w_sn) = (t(1), t(3), t(1), t(6));
    b.spectral_norm_forward(2, 3, &t(6), &mut u, &mut v, &mut sigma, &mut w_sn, true);
    outcome("spectral_norm_forward, short u");
    b.sum_squares(&t(4), &mut t(2), 2);
    outcome("sum_squares, slot past the end");
    let ch = ChannelShape {
        batch: 2,
        channels: 3,
        pixels: 4,
    };
    b.channel_sum(ch, &t(24), &mut t(2));
    outcome("channel_sum, short db");
    b.keep_known(&mut t(4), &t(4), &t(3));
    outcome("keep_known, short mask");
    let step = LangevinUpdate {
        rows: 2,
        dim: 3,
        step: 0.1,
        noise: 0.1,
        grad_clip: None,
        lo: -1.0,
        hi: 1.0,
        seed: 0,
        global_step: 0,
        chain_offset: 0,
    };
    step.run(b, &mut t(6), &t(5));
    outcome("langevin_update, short grad");
    CdLoss {
        n_pos: 5,
        alpha: 0.0,
    }
    .run(b, &t(4), &mut t(4), &mut t(stat::LEN));
    outcome("cd_loss, more data rows than energies");
    let adam = AdamUpdate {
        lr: 0.1,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        bias_correction1: 0.1,
        bias_correction2: 0.001,
        max_grad_norm: None,
        norm_slots: 0,
    };
    adam.run(b, &mut t(4), &t(4), &mut t(3), &mut t(4), &t(1));
    outcome("adam_update, short m");
    let draw = ReplayDraw {
        capacity: 0,
        batch: 2,
        dim: 3,
        reinit_prob: 0.0,
        lo: -1.0,
        hi: 1.0,
        seed: 0,
        iteration: 0,
    };
    draw.draw(b, &t(6), &mut t(6), &mut t(2));
    outcome("replay_draw, capacity 0");
    FlagNonFinite { slot: 5, mark: 1.0 }.run(b, &t(4), &mut t(5));
    outcome("flag_non_finite, slot past the end");
    let chain = MlpChain {
        widths: vec![3, 4, 1],
        activations: vec![Activation::Relu],
        update: step,
        steps: 2,
    };
    chain.run(b, &[&t(12), &t(4), &t(3), &t(1)], &mut t(6));
    outcome("mlp_langevin_chain, short W_2");
    // Still usable after all of that.
    let x = b.upload(&[1.0, 2.0]).unwrap();
    let mut y = t(2);
    b.add(&x, &x, &mut y, 2);
    assert_eq!(b.read(&y).unwrap(), [2.0, 4.0]);
    errors
}

/// Every bad call is refused with one line naming the op, on the CPU as on the GPU, with
/// the same words; the CPU does not panic.
#[test]
fn bad_shapes_are_refused_alike() {
    let on_cpu = refused_calls(&CpuBackend::new());
    for e in &on_cpu {
        assert!(!e.ends_with("accepted") && !e.contains('\n'), "{e}");
    }
    let ops = [
        "linear_forward",
        "conv2d_forward",
        "linear_forward",
        "conv2d_backward_params",
        "conv2d_backward_data",
        "avg_pool_forward",
        "upsample_forward",
        "add",
        "row_softmax",
        "gather_cols",
        "copy",
        "spectral_norm_forward",
        "sum_squares",
        "channel_sum",
        "keep_known",
        "langevin_update",
        "cd_loss",
        "adam_update",
        "replay_draw",
        "flag_non_finite",
        "mlp_langevin_chain",
    ];
    assert_eq!(on_cpu.len(), ops.len());
    for (e, op) in on_cpu.iter().zip(ops) {
        assert!(e.contains(op), "{e} should name {op}");
    }
    let gpu = gpu_or_skip!();
    assert_eq!(refused_calls(&*gpu), on_cpu);
}
