//! Convolution on the CPU, by one of three methods per product:
//! - a kernel that covers its whole unpadded input (anatomy32's last layer, 512×4×4 → 1) is
//!   a dense layer, one batch-wide GEMM;
//! - on AVX-512 or AVX2 CPUs, products wide and deep enough for the tiles run as a direct
//!   convolution ([`direct`]: no patch matrix; 1.2–2× im2col's speed on anatomy32's layers);
//! - everything else (CPUs with neither, `--cpu-tiles off`, the 3-channel input gradient,
//!   the 27-term first layer) by im2col + GEMM ([`im2col`]).
//!
//! For sample n, with cols the [C·k·k, H'·W'] matrix of its input patches:
//! y_n = W·cols + b, dcols = Wᵀ·dy_n (scattered back by col2im) and dW = Σ_n dy_n·colsᵀ.

mod direct;
mod im2col;
mod scratch;

use super::matmul::{matmul, Mat};
use crate::backend::Conv2dShape;

fn patch_rows(s: &Conv2dShape) -> usize {
    s.in_channels * s.kernel * s.kernel
}

/// A kernel that covers its whole unpadded input is a dense layer: the one patch of sample n
/// is x_n itself, flattened in the weight's [C, k, k] order. Then one batch-wide GEMM replaces
/// N per-sample products that each make one output (33–76× slower in `benches/conv2d.rs`).
fn is_dense(s: &Conv2dShape) -> bool {
    s.padding == 0 && s.kernel == s.height && s.kernel == s.width
}

pub fn forward(s: Conv2dShape, x: &[f32], w: &[f32], b: &[f32], y: &mut [f32]) {
    let (n, r, o) = (s.batch, patch_rows(&s), s.out_channels);
    if is_dense(&s) {
        for row in y[..n * o].chunks_mut(o) {
            row.copy_from_slice(&b[..o]);
        }
        let (x, w) = (Mat::row_major(x, n, r), Mat::transposed(w, o, r));
        matmul(x, w, y, true)
    } else if direct::worth_it(&s, o, r) {
        direct::forward(s, x, w, b, y)
    } else {
        im2col::forward(s, x, w, b, y)
    }
}

pub fn backward_data(s: Conv2dShape, dy: &[f32], w: &[f32], dx: &mut [f32]) {
    let (n, r, o) = (s.batch, patch_rows(&s), s.out_channels);
    if is_dense(&s) {
        let (dy, w) = (Mat::row_major(dy, n, o), Mat::row_major(w, o, r));
        matmul(dy, w, dx, false)
    } else if direct::worth_it(
        &s,
        s.in_channels,
        o * s.kernel * s.kernel / (s.stride * s.stride),
    ) {
        direct::backward_data(s, dy, w, dx)
    } else {
        im2col::backward_data(s, dy, w, dx)
    }
}

pub fn backward_params(s: Conv2dShape, dy: &[f32], x: &[f32], dw: &mut [f32], db: &mut [f32]) {
    let (n, r, o) = (s.batch, patch_rows(&s), s.out_channels);
    if is_dense(&s) {
        let (dyt, x) = (Mat::transposed(dy, n, o), Mat::row_major(x, n, r));
        matmul(dyt, x, dw, false);
        db[..o].fill(0.0);
        for row in dy[..n * o].chunks(o) {
            db[..o].iter_mut().zip(row).for_each(|(g, &d)| *g += d);
        }
    } else if direct::worth_it(&s, o, s.out_height() * s.out_width()) {
        direct::backward_params(s, dy, x, dw, db)
    } else {
        im2col::backward_params(s, dy, x, dw, db)
    }
}

#[cfg(test)]
mod tests;
