//! The CPU twin of shaders/upsample.wgsl: nearest-neighbour upsampling by an integer factor
//! and its adjoint, one (sample, channel) plane per task.

use rayon::prelude::*;

use crate::backend::UpsampleShape;

/// `y[plane, i, j] = x[plane, i / f, j / f]`.
pub fn forward(s: UpsampleShape, x: &[f32], y: &mut [f32]) {
    let (h, w, f) = (s.height, s.width, s.factor);
    let (in_plane, out_plane) = (h * w, h * w * f * f);
    if out_plane == 0 {
        return;
    }
    y[..s.out_len()]
        .par_chunks_mut(out_plane)
        .zip(x[..s.in_len()].par_chunks(in_plane))
        .for_each(|(yp, xp)| {
            for (i, row) in yp.chunks_mut(w * f).enumerate() {
                let src = &xp[(i / f) * w..][..w];
                for (j, v) in row.iter_mut().enumerate() {
                    *v = src[j / f];
                }
            }
        });
}

/// `dx[plane, i, j] = Σ_{a, b < f} dy[plane, i·f + a, j·f + b]` (each block row summed,
/// then the rows added: the GPU kernel's order).
pub fn backward(s: UpsampleShape, dy: &[f32], dx: &mut [f32]) {
    let (h, w, f) = (s.height, s.width, s.factor);
    let (in_plane, out_plane) = (h * w, h * w * f * f);
    if in_plane == 0 {
        return;
    }
    let ow = w * f;
    dx[..s.in_len()]
        .par_chunks_mut(in_plane)
        .zip(dy[..s.out_len()].par_chunks(out_plane))
        .for_each(|(dxp, dyp)| {
            for (e, v) in dxp.iter_mut().enumerate() {
                let (i, j) = (e / w, e % w);
                let mut sum = 0.0;
                for a in 0..f {
                    let row = &dyp[(i * f + a) * ow + j * f..][..f];
                    sum += row.iter().sum::<f32>();
                }
                *v = sum;
            }
        });
}
