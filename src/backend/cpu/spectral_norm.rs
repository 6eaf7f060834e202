//! The CPU twin of shaders/spectral_norm.wgsl: one power iteration, σ = uᵀ W v and W / σ,
//! and the gradient of W / σ with u and v held constant.
//!
//! Sums run in f64 in a fixed order (one row, or one block of columns, per rayon task), so
//! results do not depend on the number of threads and are at least as accurate as the GPU's
//! f32 trees.

use rayon::prelude::*;

/// The eps of PyTorch's `spectral_norm` (and `F.normalize`): norms are clamped below by it.
pub const EPS: f64 = 1e-12;

/// Columns per rayon task of Wᵀu.
const COLUMN_BLOCK: usize = 256;

/// Values per rayon task of the row-wise passes.
const TASK_VALUES: usize = 1 << 13;

/// `t[r] = Σ_c w[r, c]·v[c]` in f64.
fn w_times_v(cols: usize, w: &[f32], v: &[f32]) -> Vec<f64> {
    w.par_chunks(cols)
        .with_min_len(TASK_VALUES.div_ceil(cols))
        .map(|row| {
            row.iter()
                .zip(v)
                .map(|(&a, &b)| f64::from(a) * f64::from(b))
                .sum::<f64>()
        })
        .collect()
}

/// `x / max(‖x‖₂, eps)`, rounded to f32.
fn normalize(x: &[f64], out: &mut [f32]) {
    let norm = x.iter().map(|a| a * a).sum::<f64>().sqrt().max(EPS);
    for (o, &a) in out.iter_mut().zip(x) {
        *o = (a / norm) as f32;
    }
}

/// When `iterate`: v ← normalize(Wᵀu), u ← normalize(W v). Then `sigma[0]` = uᵀ W v and
/// `w_sn` = W / σ. `w` and `w_sn` are `[u.len(), cols]`.
pub fn forward(
    cols: usize,
    w: &[f32],
    u: &mut [f32],
    v: &mut [f32],
    sigma: &mut [f32],
    w_sn: &mut [f32],
    iterate: bool,
) {
    if iterate {
        // Wᵀu: each task owns a block of columns and walks every row in order.
        let mut wtu = vec![0.0f64; cols];
        wtu.par_chunks_mut(COLUMN_BLOCK)
            .enumerate()
            .for_each(|(block, acc)| {
                let c0 = block * COLUMN_BLOCK;
                for (row, &ur) in w.chunks(cols).zip(u.iter()) {
                    let ur = f64::from(ur);
                    for (a, &x) in acc.iter_mut().zip(&row[c0..]) {
                        *a += f64::from(x) * ur;
                    }
                }
            });
        normalize(&wtu, v);
    }
    let t = w_times_v(cols, w, v);
    if iterate {
        normalize(&t, u);
    }
    let s = u
        .iter()
        .zip(&t)
        .map(|(&a, &b)| f64::from(a) * b)
        .sum::<f64>() as f32;
    sigma[0] = s;
    w_sn.par_iter_mut()
        .zip(w.par_iter())
        .with_min_len(TASK_VALUES)
        .for_each(|(o, &x)| *o = x / s);
}

/// `dw = (g − ⟨g, w_sn⟩·u vᵀ) / σ` over `[u.len(), cols]`.
pub fn backward(
    cols: usize,
    g: &[f32],
    w_sn: &[f32],
    u: &[f32],
    v: &[f32],
    sigma: f32,
    dw: &mut [f32],
) {
    let per_row: Vec<f64> = g
        .par_chunks(cols)
        .zip(w_sn.par_chunks(cols))
        .with_min_len(TASK_VALUES.div_ceil(cols))
        .map(|(g, w)| {
            g.iter()
                .zip(w)
                .map(|(&a, &b)| f64::from(a) * f64::from(b))
                .sum::<f64>()
        })
        .collect();
    let dot = per_row.iter().sum::<f64>();
    let sigma = f64::from(sigma);
    dw.par_chunks_mut(cols)
        .zip(g.par_chunks(cols))
        .zip(u.par_iter())
        .with_min_len(TASK_VALUES.div_ceil(cols))
        .for_each(|((dw, g), &ur)| {
            let k = dot * f64::from(ur);
            for ((d, &gi), &vc) in dw.iter_mut().zip(g).zip(v) {
                *d = ((f64::from(gi) - k * f64::from(vc)) / sigma) as f32;
            }
        });
}
