//! The direct convolution against a float64 reference, on random shapes wide enough for its
//! tiles (the integration tests' shapes are mostly thin, so they reach it rarely): several
//! channel panels and partial ones, strides past the kernel, padding up to 2, batches that
//! leave a short last task. Also im2col on the same shapes, so both CPU methods agree.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::{direct, im2col};
use crate::backend::cpu::tile;
use crate::backend::Conv2dShape;

fn random(rng: &mut StdRng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

fn random_shape(rng: &mut StdRng) -> Conv2dShape {
    loop {
        let s = Conv2dShape {
            batch: rng.random_range(1..=5),
            in_channels: rng.random_range(30..=140),
            out_channels: rng.random_range(30..=140),
            height: rng.random_range(3..=11),
            width: rng.random_range(3..=11),
            kernel: rng.random_range(1..=4),
            stride: rng.random_range(1..=3),
            padding: rng.random_range(0..=2),
        };
        if s.kernel <= s.height.min(s.width) + 2 * s.padding {
            return s;
        }
    }
}

/// y, dx, dw, db in float64 by the definition: y[n,o,i,j] = b[o] + Σ w[o,c,ki,kj]·
/// x[n,c,i·s+ki−p, j·s+kj−p], and its adjoints.
fn reference(s: &Conv2dShape, x: &[f32], w: &[f32], b: &[f32], dy: &[f32]) -> [Vec<f64>; 4] {
    let (c, o, k) = (s.in_channels, s.out_channels, s.kernel);
    let (h, wd, ho, wo) = (s.height, s.width, s.out_height(), s.out_width());
    let mut y = vec![0.0; s.batch * s.out_len()];
    let mut dx = vec![0.0; s.batch * s.in_len()];
    let mut dw = vec![0.0; w.len()];
    let mut db = vec![0.0; o];
    for n in 0..s.batch {
        for oc in 0..o {
            for i in 0..ho {
                for j in 0..wo {
                    let out = ((n * o + oc) * ho + i) * wo + j;
                    let g = dy[out] as f64;
                    let mut sum = b[oc] as f64;
                    db[oc] += g;
                    for ic in 0..c {
                        for ki in 0..k {
                            for kj in 0..k {
                                let (ih, iw) = (i * s.stride + ki, j * s.stride + kj);
                                if ih < s.padding || iw < s.padding {
                                    continue;
                                }
                                let (ih, iw) = (ih - s.padding, iw - s.padding);
                                if ih >= h || iw >= wd {
                                    continue;
                                }
                                let xi = ((n * c + ic) * h + ih) * wd + iw;
                                let wi = ((oc * c + ic) * k + ki) * k + kj;
                                sum += w[wi] as f64 * x[xi] as f64;
                                dx[xi] += w[wi] as f64 * g;
                                dw[wi] += x[xi] as f64 * g;
                            }
                        }
                    }
                    y[out] = sum;
                }
            }
        }
    }
    [y, dx, dw, db]
}

/// Largest error relative to the largest reference value (each sum has up to hundreds of
/// terms of size ~1, so f32 rounding leaves ~1e-6 of it).
fn check(what: &str, s: &Conv2dShape, got: &[f32], want: &[f64]) {
    let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    for (i, (&g, &r)) in got.iter().zip(want).enumerate() {
        assert!(
            ((g as f64 - r) / scale).abs() < 2e-5,
            "{what} at {i} of {s:?}: {g} against {r}"
        );
    }
}

#[test]
fn direct_and_im2col_match_float64() {
    if !tile::available() {
        eprintln!(
            "no tiles here (no AVX-512 or AVX2, or EBM_CPU_TILES=off): only im2col is checked"
        );
    }
    let mut rng = StdRng::seed_from_u64(0xc0_4e);
    let mut shapes: Vec<_> = (0..12).map(|_| random_shape(&mut rng)).collect();
    let shape = |batch, c, o, size, kernel, stride, padding| Conv2dShape {
        batch,
        in_channels: c,
        out_channels: o,
        height: size,
        width: size,
        kernel,
        stride,
        padding,
    };
    // A stride past the kernel, wide enough for the direct input gradient: phases no tap
    // reaches (their gradient is 0 and must still be written).
    shapes.push(shape(3, 40, 200, 8, 2, 3, 1));
    // anatomy32's second layer at a batch that splits into tasks and a short last one.
    shapes.push(shape(7, 64, 128, 16, 4, 2, 1));
    for s in shapes {
        let x = random(&mut rng, s.batch * s.in_len());
        let w = random(
            &mut rng,
            s.out_channels * s.in_channels * s.kernel * s.kernel,
        );
        let b = random(&mut rng, s.out_channels);
        let dy = random(&mut rng, s.batch * s.out_len());
        let [y64, dx64, dw64, db64] = reference(&s, &x, &w, &b, &dy);
        type Forward = fn(Conv2dShape, &[f32], &[f32], &[f32], &mut [f32]);
        type Data = fn(Conv2dShape, &[f32], &[f32], &mut [f32]);
        type Params = fn(Conv2dShape, &[f32], &[f32], &mut [f32], &mut [f32]);
        let mut methods: Vec<(&str, Forward, Data, Params)> = vec![(
            "im2col",
            im2col::forward,
            im2col::backward_data,
            im2col::backward_params,
        )];
        if tile::available() {
            methods.push((
                "direct",
                direct::forward,
                direct::backward_data,
                direct::backward_params,
            ));
        }
        for (name, forward, data, params) in methods {
            // Stale outputs, so that a value a method forgets to write shows.
            let mut y = vec![7.0; y64.len()];
            let mut dx = vec![7.0; dx64.len()];
            let (mut dw, mut db) = (vec![7.0; dw64.len()], vec![7.0; db64.len()]);
            forward(s, &x, &w, &b, &mut y);
            data(s, &dy, &w, &mut dx);
            params(s, &dy, &x, &mut dw, &mut db);
            check(&format!("{name} forward"), &s, &y, &y64);
            check(&format!("{name} input gradient"), &s, &dx, &dx64);
            check(&format!("{name} weight gradient"), &s, &dw, &dw64);
            check(&format!("{name} bias gradient"), &s, &db, &db64);
        }
    }
}

/// An empty batch through the dispatch (wide enough for the direct path): nothing to compute,
/// and the parameter gradients are zeros, as on the GPU.
#[test]
fn an_empty_batch_gives_zero_gradients() {
    let s = Conv2dShape {
        batch: 0,
        in_channels: 64,
        out_channels: 128,
        height: 8,
        width: 8,
        kernel: 4,
        stride: 2,
        padding: 1,
    };
    let w = vec![0.5; 128 * 64 * 16];
    let (mut dw, mut db) = (vec![7.0; w.len()], vec![7.0; 128]);
    super::forward(s, &[], &w, &[0.0; 128], &mut []);
    super::backward_data(s, &[], &w, &mut []);
    super::backward_params(s, &[], &[], &mut dw, &mut db);
    assert!(dw.iter().chain(&db).all(|&g| g == 0.0));
}
