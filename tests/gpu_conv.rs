//! The conv2d kernels on the GPU against the CPU twin on fresh random shapes and data: the
//! 64×64-tile f32 products (conv2d.wgsl), the 128×128-tile ones (conv2d_wide.wgsl,
//! `--conv-tiles 128`), the tensor-core ones where the adapter has them (conv2d_coop.wgsl),
//! anatomy32's real layers, a grid past the per-dimension limit and a bad geometry; and the
//! linear layers, which run on the same products as 1×1 convolutions of 1×1 images.
//!
//! Outputs the GPU must overwrite start stale (7.0), and sums that can cancel are compared
//! against the same sums over magnitudes ([`assert_close_scaled`]), to [`TOL`].
//! Set `EBM_TEST_SEED` to replay a failure; the seed is in every failure message.

#[path = "common/gpu.rs"]
mod gpu_common;

use ebm::backend::gpu::{ConvTiles, GpuOptions, TensorCores, ThinInputs};
use ebm::backend::{Backend, Conv2dShape, CpuBackend, GpuBackend, LinearShape};
use ebm::Error;
use gpu_common::{abs, assert_close_scaled, randn, read, test_seed, up, CHANNELS, TOL};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// f16 operands keep 11 significant bits: each product is off by up to 2·2⁻¹¹ relative, so
/// a sum of n terms is off by ≈ 1e-3·‖|terms|‖ in the 2-norm, independent of n; 4e-3 leaves
/// room, and a wrong tap or a dropped tile still gives 0.1–1.
const TENSOR_CORE_TOL: f64 = 4e-3;

const BATCHES: [usize; 4] = [1, 7, 33, 130];
const INPUTS: [usize; 5] = [1, 2, 3, 17, 65];

/// Linear shapes: every batch of [`BATCHES`] with every input width of [`INPUTS`] (outputs
/// 1, 16, 31 or random), then the products a toy2d training step runs on 2B = 2048 rows (the
/// 2-wide first layer's weight gradient sums 2048 terms into a 128×2 matrix: split-K), a
/// 512 → 300 layer (300 and 512 rows: 3 and 4 row tiles of 128), and an empty batch (whose
/// weight gradient is a sum of nothing: zeros).
fn linear_shapes(rng: &mut StdRng) -> Vec<LinearShape> {
    let mut shapes = Vec::new();
    for batch in BATCHES {
        for inputs in INPUTS {
            let outputs = [1, 16, 31, rng.random_range(2..=40)][rng.random_range(0..4)];
            shapes.push(LinearShape {
                batch,
                inputs,
                outputs,
            });
        }
    }
    for (batch, inputs, outputs) in [
        (2048, 2, 128),
        (2048, 128, 128),
        (2048, 128, 1),
        (100, 512, 300),
        (0, 5, 3),
    ] {
        shapes.push(LinearShape {
            batch,
            inputs,
            outputs,
        });
    }
    shapes
}

/// The three linear ops on `gpu` against the CPU for shape `s` on random data: the forward
/// and the input gradient to `tol`, the parameter gradients (always f32) to [`TOL`]. dw and
/// db start stale and must be overwritten, not accumulated into. Returns the GPU's y, dx, dw
/// and db.
fn check_linear(
    gpu: &GpuBackend,
    rng: &mut StdRng,
    s: LinearShape,
    tol: f64,
    seed: u64,
) -> [Vec<f32>; 4] {
    let cpu = CpuBackend::new();
    let LinearShape {
        batch,
        inputs,
        outputs,
    } = s;
    let what = format!("{s:?} on {}", gpu.name());
    let x = randn(rng, batch * inputs);
    let w = randn(rng, outputs * inputs);
    let b = randn(rng, outputs);
    let dy = randn(rng, batch * outputs);

    let mut y = vec![0.0; batch * outputs];
    cpu.linear_forward(s, &x, &w, &b, &mut y);
    let mut y_scale = vec![0.0; batch * outputs];
    cpu.linear_forward(s, &abs(&x), &abs(&w), &abs(&b), &mut y_scale);
    let mut gy = up(gpu, &vec![7.0; batch * outputs]);
    gpu.linear_forward(s, &up(gpu, &x), &up(gpu, &w), &up(gpu, &b), &mut gy);
    let gy = read(gpu, &gy);
    assert_close_scaled(&gy, &y, &y_scale, tol, &format!("forward {what}"), seed);

    let mut dx = vec![0.0; batch * inputs];
    cpu.linear_backward_data(s, &dy, &w, &mut dx);
    let mut dx_scale = vec![0.0; batch * inputs];
    cpu.linear_backward_data(s, &abs(&dy), &abs(&w), &mut dx_scale);
    let mut gdx = up(gpu, &vec![7.0; batch * inputs]);
    gpu.linear_backward_data(s, &up(gpu, &dy), &up(gpu, &w), &mut gdx);
    let gdx = read(gpu, &gdx);
    let what_d = format!("backward_data {what}");
    assert_close_scaled(&gdx, &dx, &dx_scale, tol, &what_d, seed);

    let (mut dw, mut db) = (vec![0.0; outputs * inputs], vec![0.0; outputs]);
    cpu.linear_backward_params(s, &dy, &x, &mut dw, &mut db);
    let (mut dw_scale, mut db_scale) = (vec![0.0; outputs * inputs], vec![0.0; outputs]);
    cpu.linear_backward_params(s, &abs(&dy), &abs(&x), &mut dw_scale, &mut db_scale);
    let mut gdw = up(gpu, &vec![7.0; outputs * inputs]);
    let mut gdb = up(gpu, &vec![7.0; outputs]);
    gpu.linear_backward_params(s, &up(gpu, &dy), &up(gpu, &x), &mut gdw, &mut gdb);
    let (gdw, gdb) = (read(gpu, &gdw), read(gpu, &gdb));
    assert_close_scaled(&gdw, &dw, &dw_scale, TOL, &format!("dw {what}"), seed);
    assert_close_scaled(&gdb, &db, &db_scale, TOL, &format!("db {what}"), seed);
    [gy, gdx, gdw, gdb]
}

/// Whether the kernels `names` ran since profiling was turned on, where `gpu` can tell.
fn assert_ran(gpu: &GpuBackend, profiled: bool, names: &[&str]) {
    if !profiled {
        eprintln!("{} has no timestamp queries: kernels unchecked", gpu.name());
        return;
    }
    let profile = gpu.take_profile().unwrap();
    for name in names {
        assert!(
            profile.kernel(name).is_some(),
            "{name} did not run: {profile:?}"
        );
    }
}

/// The linear layers on the conv products' 64×64 tiles (the default), on 128×128 tiles (the
/// profile must show the wide kernels ran) and under `auto`, each against the CPU and all
/// three to the same bits, on the same shapes and data.
#[test]
fn linear_matches_cpu() {
    let seed = test_seed();
    let mut results: Vec<Vec<[Vec<f32>; 4]>> = Vec::new();
    for conv_tiles in [ConvTiles::Square64, ConvTiles::Wide128, ConvTiles::Auto] {
        let Some(gpu) = gpu_common::gpu_with(GpuOptions {
            conv_tiles,
            ..GpuOptions::default()
        }) else {
            return;
        };
        let profiled = gpu.set_profiling(true).is_supported();
        let mut rng = StdRng::seed_from_u64(seed);
        let shapes = linear_shapes(&mut rng);
        let outputs: Vec<_> = shapes
            .iter()
            .map(|&s| check_linear(&gpu, &mut rng, s, TOL, seed))
            .collect();
        if conv_tiles == ConvTiles::Wide128 {
            let wide = [
                "conv2d_forward_wide",
                "conv2d_backward_data_wide",
                "conv2d_backward_weight_wide",
            ];
            assert_ran(&gpu, profiled, &wide);
        }
        if let Some(first) = results.first() {
            for ((s, got), want) in shapes.iter().zip(&outputs).zip(first) {
                for (got, want) in got.iter().zip(want) {
                    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(got), bits(want), "{s:?} under {conv_tiles:?} vs 64");
                }
            }
        }
        results.push(outputs);
    }
}

/// The GPU opened with tensor cores asked for (on only where the adapter has them).
fn tensor_core_gpu() -> Option<gpu_common::GpuTest> {
    gpu_common::gpu_with(GpuOptions {
        tensor_cores: true,
        ..GpuOptions::default()
    })
}

/// With tensor cores the linear layers' forward and input gradient take f16 operands, like
/// the convolutions', to [`TENSOR_CORE_TOL`]; the weight gradient stays f32. Skipped where
/// the adapter has none (`conv2d_tensor_cores_match_cpu` checks the f32 fallback).
#[test]
fn linear_tensor_cores_match_cpu() {
    let seed = test_seed();
    let Some(cores) = tensor_core_gpu() else {
        return;
    };
    if let TensorCores::Off(why) = cores.tensor_cores() {
        eprintln!("skipping: tensor cores off ({why})");
        return;
    }
    let profiled = cores.set_profiling(true).is_supported();
    let mut rng = StdRng::seed_from_u64(seed);
    for s in linear_shapes(&mut rng) {
        check_linear(&cores, &mut rng, s, TENSOR_CORE_TOL, seed);
    }
    // The gradient into 1–3 inputs runs thin, in f32, tensor cores or not.
    let coop = [
        "conv2d_forward_coop",
        "conv2d_backward_data_coop",
        "conv2d_backward_data_thin",
    ];
    assert_ran(&cores, profiled, &coop);
}

/// A random conv shape: batch 1..3, channels from [`CHANNELS`], H and W 5..13 (odd and
/// even), kernel 1..4, stride 1..3, padding 0..2 (so the input gradient's stride phases come
/// with 0, 1 or 2 taps a side). The loop keeps the kernel within the padded input.
fn random_conv_shape(rng: &mut StdRng) -> Conv2dShape {
    loop {
        let s = Conv2dShape {
            batch: rng.random_range(1..=3),
            in_channels: CHANNELS[rng.random_range(0..CHANNELS.len())],
            out_channels: CHANNELS[rng.random_range(0..CHANNELS.len())],
            height: rng.random_range(5..=13),
            width: rng.random_range(5..=13),
            kernel: rng.random_range(1..=4),
            stride: rng.random_range(1..=3),
            padding: rng.random_range(0..=2),
        };
        if s.kernel <= s.height.min(s.width) + 2 * s.padding {
            return s;
        }
    }
}

/// Ten random shapes plus one with more than one 64-wide tile of channels and a K of
/// several hundred (67·3·3), which the small random ones never reach.
fn conv_shapes(rng: &mut StdRng) -> Vec<Conv2dShape> {
    let mut shapes: Vec<_> = (0..10).map(|_| random_conv_shape(rng)).collect();
    shapes.push(Conv2dShape {
        batch: 2,
        in_channels: 67,
        out_channels: 70,
        height: 9,
        width: 7,
        kernel: 3,
        stride: 2,
        padding: 1,
    });
    // A stride past the kernel: stride phases of the input gradient that no tap reaches
    // (their pixels' gradient is 0, and must still be stored).
    shapes.push(Conv2dShape {
        batch: 2,
        in_channels: 5,
        out_channels: 3,
        height: 11,
        width: 10,
        kernel: 2,
        stride: 3,
        padding: 2,
    });
    // 4×4 outputs and 70 samples: the CPU takes such samples in groups (64 for forward and
    // backward-data, 16 for the weight gradient), so whole groups and a partial one.
    shapes.push(Conv2dShape {
        batch: 70,
        in_channels: 3,
        out_channels: 5,
        height: 8,
        width: 8,
        kernel: 4,
        stride: 2,
        padding: 1,
    });
    shapes
}

fn conv_weights(s: &Conv2dShape) -> usize {
    s.out_channels * s.in_channels * s.kernel * s.kernel
}

/// The three conv ops at shape `s` on both devices, compared; outputs the GPU must
/// overwrite start out stale (7.0), not zero.
fn check_conv_ops(gpu: &GpuBackend, rng: &mut StdRng, s: Conv2dShape, ops: &[&str], seed: u64) {
    check_conv_ops_within(gpu, rng, s, ops, seed, TOL);
}

/// [`check_conv_ops`] to tolerance `tol` (relative to the magnitude of the terms).
fn check_conv_ops_within(
    gpu: &GpuBackend,
    rng: &mut StdRng,
    s: Conv2dShape,
    ops: &[&str],
    seed: u64,
    tol: f64,
) {
    let cpu = CpuBackend::new();
    let (x_len, y_len, w_len) = (
        s.batch * s.in_len(),
        s.batch * s.out_len(),
        conv_weights(&s),
    );
    let x = randn(rng, x_len);
    let w = randn(rng, w_len);
    let b = randn(rng, s.out_channels);
    let dy = randn(rng, y_len);
    let what = format!("{s:?}");
    if ops.contains(&"forward") {
        let (mut y, mut scale) = (vec![0.0; y_len], vec![0.0; y_len]);
        cpu.conv2d_forward(s, &x, &w, &b, &mut y);
        cpu.conv2d_forward(s, &abs(&x), &abs(&w), &abs(&b), &mut scale);
        let mut gy = up(gpu, &vec![7.0; y_len]);
        gpu.conv2d_forward(s, &up(gpu, &x), &up(gpu, &w), &up(gpu, &b), &mut gy);
        assert_close_scaled(
            &read(gpu, &gy),
            &y,
            &scale,
            tol,
            &format!("forward {what}"),
            seed,
        );
    }
    if ops.contains(&"backward_data") {
        let (mut dx, mut scale) = (vec![0.0; x_len], vec![0.0; x_len]);
        cpu.conv2d_backward_data(s, &dy, &w, &mut dx);
        cpu.conv2d_backward_data(s, &abs(&dy), &abs(&w), &mut scale);
        let mut gdx = up(gpu, &vec![7.0; x_len]);
        gpu.conv2d_backward_data(s, &up(gpu, &dy), &up(gpu, &w), &mut gdx);
        let what = format!("backward_data {what}");
        assert_close_scaled(&read(gpu, &gdx), &dx, &scale, tol, &what, seed);
    }
    if ops.contains(&"backward_params") {
        let (mut dw, mut db) = (vec![0.0; w_len], vec![0.0; s.out_channels]);
        cpu.conv2d_backward_params(s, &dy, &x, &mut dw, &mut db);
        let (mut dw_scale, mut db_scale) = (vec![0.0; w_len], vec![0.0; s.out_channels]);
        cpu.conv2d_backward_params(s, &abs(&dy), &abs(&x), &mut dw_scale, &mut db_scale);
        let mut gdw = up(gpu, &vec![7.0; w_len]);
        let mut gdb = up(gpu, &vec![7.0; s.out_channels]);
        gpu.conv2d_backward_params(s, &up(gpu, &dy), &up(gpu, &x), &mut gdw, &mut gdb);
        assert_close_scaled(
            &read(gpu, &gdw),
            &dw,
            &dw_scale,
            tol,
            &format!("dw {what}"),
            seed,
        );
        assert_close_scaled(
            &read(gpu, &gdb),
            &db,
            &db_scale,
            tol,
            &format!("db {what}"),
            seed,
        );
    }
}

/// `op` on the GPU against the CPU on [`conv_shapes`].
fn random_shapes_match_cpu(op: &str) {
    let gpu = gpu_or_skip!();
    let seed = test_seed();
    let mut rng = StdRng::seed_from_u64(seed);
    for s in conv_shapes(&mut rng) {
        check_conv_ops(&gpu, &mut rng, s, &[op], seed);
    }
}

#[test]
fn conv2d_forward_matches_cpu() {
    random_shapes_match_cpu("forward");
}

#[test]
fn conv2d_backward_data_matches_cpu() {
    random_shapes_match_cpu("backward_data");
}

#[test]
fn conv2d_backward_params_matches_cpu() {
    random_shapes_match_cpu("backward_params");
}

/// The tensor-core conv kernels (conv2d_coop.wgsl: f16 operands, f32 sums) against the CPU,
/// where the adapter offers them (NVIDIA, in `scripts/gpu_check.sh`): forward and input
/// gradient on the random shapes and on anatomy32's layers at full width, to
/// [`TENSOR_CORE_TOL`]; the weight gradient stays on the f32 kernel, to [`TOL`]. Elsewhere
/// (lavapipe in CI) asking for tensor cores must leave the f32 kernels in place, with a
/// reason, and give the f32 results bit for bit.
#[test]
fn conv2d_tensor_cores_match_cpu() {
    let seed = test_seed();
    let Some(cores) = tensor_core_gpu() else {
        return;
    };
    let mut rng = StdRng::seed_from_u64(seed);
    let mut shapes = conv_shapes(&mut rng);
    shapes.extend(anatomy32_layers(64, 3));
    match cores.tensor_cores() {
        TensorCores::On(shape) => {
            eprintln!("tensor cores on {}: {shape}", cores.name());
            for s in shapes {
                check_conv_ops_within(
                    &cores,
                    &mut rng,
                    s,
                    &["forward", "backward_data"],
                    seed,
                    TENSOR_CORE_TOL,
                );
                check_conv_ops(&cores, &mut rng, s, &["backward_params"], seed);
            }
        }
        TensorCores::Off(why) => {
            assert!(
                !why.is_empty() && !cores.name().contains("tensor cores"),
                "{why}"
            );
            eprintln!("tensor cores off: {why}; checking the f32 fallback");
            // The same forward passes on the device that asked and on a plain one.
            let cases: Vec<_> = shapes
                .into_iter()
                .take(4)
                .map(|s| {
                    let x = randn(&mut rng, s.batch * s.in_len());
                    let w = randn(&mut rng, conv_weights(&s));
                    let b = randn(&mut rng, s.out_channels);
                    (s, x, w, b)
                })
                .collect();
            let forward_all = |g: &GpuBackend| -> Vec<Vec<f32>> {
                cases
                    .iter()
                    .map(|(s, x, w, b)| {
                        let mut y = up(g, &vec![0.0; s.batch * s.out_len()]);
                        g.conv2d_forward(*s, &up(g, x), &up(g, w), &up(g, b), &mut y);
                        read(g, &y)
                    })
                    .collect()
            };
            let asked = forward_all(&cores);
            let plain = cores.name();
            drop(cores);
            let f32_gpu = gpu_or_skip!();
            assert_eq!(plain, f32_gpu.name());
            let exact = forward_all(&f32_gpu);
            for ((s, ..), (asked, exact)) in cases.iter().zip(asked.iter().zip(&exact)) {
                assert_eq!(
                    asked, exact,
                    "fallback differs from f32 at {s:?} (EBM_TEST_SEED={seed})"
                );
            }
        }
    }
}

/// A random shape for the 128×128-tile kernels: 128 to `most` channels on both sides (so one
/// full row tile and a partial one), batch 1–3, images up to 11 a side, kernel 1–5, stride
/// 1–3, padding up to half the kernel.
fn random_wide_shape(rng: &mut StdRng, most: usize) -> Conv2dShape {
    let kernel = rng.random_range(1..=5);
    Conv2dShape {
        batch: rng.random_range(1..=3),
        in_channels: rng.random_range(128..=most),
        out_channels: rng.random_range(128..=most),
        height: rng.random_range(kernel..=11),
        width: rng.random_range(kernel..=11),
        kernel,
        stride: rng.random_range(1..=3),
        padding: rng.random_range(0..=kernel / 2),
    }
}

/// The 128×128-tile kernels (conv2d_wide.wgsl, `--conv-tiles 128`) against the CPU, all three
/// products: random shapes with 128–200 channels on both sides (a full row tile and a partial
/// one, odd images, strides 1–3, kernels 1–5, a stride past the kernel), and anatomy32's
/// layers at full width. Where the adapter has timestamp queries, the profile must show that
/// the wide kernels ran for the wide products and the 64-tile ones for the thinner products
/// (anatomy32's 64-channel input gradient).
#[test]
fn conv2d_wide_tiles_match_cpu() {
    let seed = test_seed();
    let options = GpuOptions {
        conv_tiles: ConvTiles::Wide128,
        ..GpuOptions::default()
    };
    let Some(gpu) = gpu_common::gpu_with(options) else {
        return;
    };
    assert_eq!(gpu.conv_tiles(), ConvTiles::Wide128);
    assert!(gpu.name().contains("conv tiles 128"), "{}", gpu.name());
    let profiled = gpu.set_profiling(true).is_supported();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut shapes: Vec<Conv2dShape> = (0..5).map(|_| random_wide_shape(&mut rng, 200)).collect();
    shapes.push(Conv2dShape {
        batch: 2,
        in_channels: 129,
        out_channels: 131,
        height: 7,
        width: 6,
        kernel: 2,
        stride: 3,
        padding: 1,
    });
    shapes.extend(anatomy32_layers(64, 2));
    let ops = ["forward", "backward_data", "backward_params"];
    for s in shapes {
        check_conv_ops(&gpu, &mut rng, s, &ops, seed);
    }
    let kernels = [
        "conv2d_forward_wide",
        "conv2d_backward_data_wide",
        "conv2d_backward_weight_wide",
        "conv2d_forward",
        "conv2d_backward_data",
        "conv2d_backward_weight",
    ];
    assert_ran(&gpu, profiled, &kernels);
}

/// The input gradient into 1–4 channels runs on conv2d_thin.wgsl (no tiles; its own split-K
/// cut): random shapes with 1–4 input channels, strides 1–3 (a stride past the kernel, whose
/// untouched phases must still be zeroed, included), up to 300 output channels (K long enough
/// to be split), images up to 33 high; anatomy32's and mnist32's first layers at full size; 4
/// stride phases with K split (300 channels, 4×4 kernel, stride 2); 5 channels, which stays
/// on the tiles. The profile must show the thin kernel ran. The same shapes with
/// `EBM_THIN_INPUTS=tiles` ([`ThinInputs::Tiles`]) run on the tiles, and must match too.
#[test]
fn conv2d_thin_input_gradient_matches_cpu() {
    let seed = test_seed();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut shapes: Vec<Conv2dShape> = (0..12)
        .map(|_| {
            let mut s = random_conv_shape(&mut rng);
            s.in_channels = rng.random_range(1..=4);
            s.out_channels = [1, 7, 64, 300][rng.random_range(0..4)];
            s.height += rng.random_range(0..=20);
            s
        })
        .collect();
    let layer = |batch, in_channels, kernel, stride, padding| Conv2dShape {
        batch,
        in_channels,
        out_channels: 64,
        height: 32,
        width: 32,
        kernel,
        stride,
        padding,
    };
    shapes.extend([
        layer(3, 3, 3, 1, 1),
        layer(2, 1, 3, 1, 1),
        layer(2, 4, 2, 3, 0),
        layer(2, 5, 3, 1, 1),
        Conv2dShape {
            batch: 2,
            in_channels: 3,
            out_channels: 300,
            height: 9,
            width: 9,
            kernel: 4,
            stride: 2,
            padding: 1,
        },
    ]);
    for (thin_inputs, kernel) in [
        (ThinInputs::Kernel, "conv2d_backward_data_thin"),
        (ThinInputs::Tiles, "conv2d_backward_data"),
    ] {
        let Some(gpu) = gpu_common::gpu_with(GpuOptions {
            thin_inputs,
            ..GpuOptions::default()
        }) else {
            return;
        };
        let profiled = gpu.set_profiling(true).is_supported();
        for &s in &shapes {
            check_conv_ops(&gpu, &mut rng, s, &["backward_data"], seed);
        }
        if profiled {
            let profile = gpu.take_profile().unwrap();
            assert!(profile.kernel(kernel).is_some(), "{kernel}: {profile:?}");
            let thin_ran = profile.kernel("conv2d_backward_data_thin").is_some();
            assert_eq!(thin_ran, thin_inputs == ThinInputs::Kernel, "{profile:?}");
        }
    }
}

/// An input gradient with a stride past the kernel (the phases no tap meets stay 0) and its K
/// split, after a larger split product has left the split-K scratch full of other numbers:
/// the sums must not copy those into the untouched phases. On the tiles (5 channels) and on
/// the thin kernel (2).
#[test]
fn split_input_gradient_keeps_untouched_phases_zero() {
    let gpu = gpu_or_skip!();
    let seed = test_seed();
    let mut rng = StdRng::seed_from_u64(seed);
    let stale = Conv2dShape {
        batch: 2,
        in_channels: 8,
        out_channels: 300,
        height: 16,
        width: 16,
        kernel: 3,
        stride: 1,
        padding: 1,
    };
    for in_channels in [5, 2] {
        check_conv_ops(&gpu, &mut rng, stale, &["backward_data"], seed);
        let s = Conv2dShape {
            batch: 1,
            in_channels,
            out_channels: 300,
            height: 11,
            width: 10,
            kernel: 1,
            stride: 3,
            padding: 2,
        };
        check_conv_ops(&gpu, &mut rng, s, &["backward_data"], seed);
    }
}

/// Every conv layer of `anatomy32` (docs/ARCHITECTURE.md, Reference workloads) with n_f = 8 instead of 64, batch 2: the
/// real kernel sizes, strides, paddings and spatial sizes 32 → 32 → 16 → 8 → 4 → 1.
#[test]
fn conv2d_anatomy32_layers_match_cpu() {
    let gpu = gpu_or_skip!();
    let seed = test_seed();
    let mut rng = StdRng::seed_from_u64(seed);
    for s in anatomy32_layers(8, 2) {
        let ops = ["forward", "backward_data", "backward_params"];
        check_conv_ops(&gpu, &mut rng, s, &ops, seed);
    }
}

/// anatomy32's five conv layers (docs/ARCHITECTURE.md, Reference workloads) at width `nf`
/// for `batch` samples: the real kernel sizes, strides and paddings, and the spatial sizes
/// 32 → 32 → 16 → 8 → 4 → 1.
fn anatomy32_layers(nf: usize, batch: usize) -> Vec<Conv2dShape> {
    [
        (3, nf, 32, 3, 1, 1),
        (nf, 2 * nf, 32, 4, 2, 1),
        (2 * nf, 4 * nf, 16, 4, 2, 1),
        (4 * nf, 8 * nf, 8, 4, 2, 1),
        (8 * nf, 1, 4, 4, 1, 0),
    ]
    .into_iter()
    .map(
        |(in_channels, out_channels, size, kernel, stride, padding)| Conv2dShape {
            batch,
            in_channels,
            out_channels,
            height: size,
            width: size,
            kernel,
            stride,
            padding,
        },
    )
    .collect()
}

/// More than 65535 column tiles: the conv grid spills into y and the shader flattens it
/// back. A 1×1 conv of one channel over a 1×(65537·64 + 5) image: y = 3x − 1.
#[test]
fn conv2d_large_grid_flattens() {
    let gpu = gpu_or_skip!();
    let max = gpu.adapter_report().max_compute_workgroups_per_dimension as usize;
    let width = (max + 2) * 64 + 5;
    let s = Conv2dShape {
        batch: 1,
        in_channels: 1,
        out_channels: 1,
        height: 1,
        width,
        kernel: 1,
        stride: 1,
        padding: 0,
    };
    let x: Vec<f32> = (0..width).map(|i| (i % 1000) as f32).collect();
    let mut y = gpu.zeros(width).unwrap();
    gpu.conv2d_forward(
        s,
        &up(&gpu, &x),
        &up(&gpu, &[3.0]),
        &up(&gpu, &[-1.0]),
        &mut y,
    );
    let got = read(&gpu, &y);
    let bad = got.iter().zip(&x).position(|(&g, &v)| g != 3.0 * v - 1.0);
    assert_eq!(bad, None, "first wrong element of {width}");
}

/// An impossible conv geometry (kernel larger than the padded input) is a shape error at
/// the next flush, not a panic or a garbage dispatch.
#[test]
fn conv2d_bad_geometry_is_a_shape_error() {
    let gpu = gpu_or_skip!();
    let s = Conv2dShape {
        batch: 1,
        in_channels: 1,
        out_channels: 1,
        height: 2,
        width: 2,
        kernel: 5,
        stride: 1,
        padding: 0,
    };
    let t = gpu.zeros(32).unwrap();
    let mut y = gpu.zeros(32).unwrap();
    gpu.conv2d_forward(s, &t, &t, &t, &mut y);
    assert!(matches!(gpu.flush(), Err(Error::Shape(_))));
    gpu.flush().unwrap();
}

/// The 64- and the 128-tile kernels sum every output over the same K slices (the split-K cut
/// follows from the 64×64 tile count either way) in the same order with the same
/// multiply-adds, so they give the same bits: a run may switch `--conv-tiles` and resume
/// exactly, and `auto` (which times both per product and takes either) changes nothing but
/// the speed. Random shapes with 128–300 channels, and anatomy32's 256 → 512 layer at batch
/// 20, whose K is split (into a different number of slices, if the cut followed each
/// kernel's own tile count). `auto` must have timed every product here (all have ≥ 128 rows).
#[test]
fn conv_tile_sizes_give_the_same_bits() {
    use ebm::backend::gpu::{ConvTiles, GpuOptions};
    let seed = test_seed();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut shapes: Vec<Conv2dShape> = (0..4).map(|_| random_wide_shape(&mut rng, 300)).collect();
    shapes.push(Conv2dShape {
        batch: 20,
        in_channels: 256,
        out_channels: 512,
        height: 8,
        width: 8,
        kernel: 4,
        stride: 2,
        padding: 1,
    });
    let data: Vec<_> = shapes
        .iter()
        .map(|s| {
            let x = randn(&mut rng, s.batch * s.in_len());
            let w = randn(&mut rng, conv_weights(s));
            let b = randn(&mut rng, s.out_channels);
            let dy = randn(&mut rng, s.batch * s.out_len());
            (x, w, b, dy)
        })
        .collect();
    // [y, dx, dw, db] of every shape, on one kind of tile.
    let products = |tiles: ConvTiles| -> Option<Vec<[Vec<f32>; 4]>> {
        let g = gpu_common::gpu_with(GpuOptions {
            conv_tiles: tiles,
            ..GpuOptions::default()
        })?;
        let results: Vec<[Vec<f32>; 4]> = shapes
            .iter()
            .zip(&data)
            .map(|(s, (x, w, b, dy))| {
                let (x, w, dy) = (up(&g, x), up(&g, w), up(&g, dy));
                let mut y = up(&g, &vec![0.0; s.batch * s.out_len()]);
                g.conv2d_forward(*s, &x, &w, &up(&g, b), &mut y);
                let mut dx = up(&g, &vec![0.0; s.batch * s.in_len()]);
                g.conv2d_backward_data(*s, &dy, &w, &mut dx);
                let mut dw = up(&g, &vec![0.0; conv_weights(s)]);
                let mut db = up(&g, &vec![0.0; s.out_channels]);
                g.conv2d_backward_params(*s, &dy, &x, &mut dw, &mut db);
                [read(&g, &y), read(&g, &dx), read(&g, &dw), read(&g, &db)]
            })
            .collect();
        let timed = g.conv_tile_choices();
        match tiles {
            ConvTiles::Auto => assert_eq!(timed.len(), 3 * shapes.len(), "{timed:#?}"),
            _ => assert!(timed.is_empty(), "{tiles:?} timed {timed:?}"),
        }
        Some(results)
    };
    let Some(square) = products(ConvTiles::Square64) else {
        return;
    };
    for tiles in [ConvTiles::Wide128, ConvTiles::Auto] {
        let other = products(tiles).expect("the adapter opened once");
        compare_bits(&shapes, &square, &other, tiles, seed);
    }
}

fn compare_bits(
    shapes: &[Conv2dShape],
    square: &[[Vec<f32>; 4]],
    other: &[[Vec<f32>; 4]],
    tiles: ebm::backend::gpu::ConvTiles,
    seed: u64,
) {
    for (s, (a, b)) in shapes.iter().zip(square.iter().zip(other)) {
        for (name, a, b) in ["y", "dx", "dw", "db"]
            .into_iter()
            .zip(a)
            .zip(b)
            .map(|((n, a), b)| (n, a, b))
        {
            assert!(
                a == b,
                "{name} differs between 64-tiles and {tiles:?} at {s:?} (EBM_TEST_SEED={seed})"
            );
        }
    }
}

/// `--conv-tiles auto` times each product's two tile sizes on its first call, outside any
/// profile: a profiled forward shows one product, however many trials ran, and a second call
/// of the same dimensions is not timed again. Thin products (< 128 rows) are never timed.
#[test]
fn conv_tiles_auto_times_each_product_once_outside_profiles() {
    use ebm::backend::gpu::{ConvTiles, GpuOptions};
    let seed = test_seed();
    let Some(gpu) = gpu_common::gpu_with(GpuOptions {
        conv_tiles: ConvTiles::Auto,
        ..GpuOptions::default()
    }) else {
        return;
    };
    let mut rng = StdRng::seed_from_u64(seed);
    let wide = Conv2dShape {
        batch: 2,
        in_channels: 16,
        out_channels: 130,
        height: 9,
        width: 9,
        kernel: 3,
        stride: 1,
        padding: 1,
    };
    let thin = Conv2dShape {
        out_channels: 100,
        ..wide
    };
    let profiled = gpu.set_profiling(true).is_supported();
    for s in [wide, thin, wide] {
        check_conv_ops(&gpu, &mut rng, s, &["forward"], seed);
    }
    let timed = gpu.conv_tile_choices();
    assert_eq!(timed.len(), 1, "{timed:?}");
    assert!(
        timed[0].starts_with("conv2d_forward 130×162×144:"),
        "{timed:?}"
    );
    if profiled {
        // The kernel that ran is the one chosen: the wide shape's two calls on it, the thin
        // shape's one on 64×64 tiles; and no trial among them.
        let profile = gpu.take_profile().unwrap();
        let calls = |name| profile.kernel(name).map_or(0, |k| k.calls);
        let (square, wide) = if timed[0].contains(": 128×128 tiles") {
            (1, 2)
        } else {
            (3, 0)
        };
        assert_eq!(
            (calls("conv2d_forward"), calls("conv2d_forward_wide")),
            (square, wide),
            "{timed:?}: {profile:?}"
        );
    }
}
