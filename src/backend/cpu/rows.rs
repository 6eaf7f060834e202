//! The CPU twins of shaders/rows.wgsl: per-row reductions (sum, log-sum-exp, softmax), the
//! per-channel sum and the column gather and scatter of a classifier head.
//!
//! Sums run in f64, one row (or channel) per task in a fixed order, so results do not
//! depend on the number of threads and are at least as accurate as the GPU's f32 tree.

use rayon::prelude::*;

use crate::backend::{column_index, ChannelShape};

/// Rows are handed to rayon in groups of at least this many values.
const TASK_VALUES: usize = 1 << 13;

/// Rows per rayon task for rows of `cols` values.
fn rows_per_task(cols: usize) -> usize {
    TASK_VALUES.div_ceil(cols.max(1))
}

/// `y[r] = alpha·Σ_c x[r, c]`.
pub fn row_sum(cols: usize, alpha: f32, x: &[f32], y: &mut [f32]) {
    if cols == 0 {
        y.fill(0.0);
        return;
    }
    y.par_iter_mut()
        .zip(x.par_chunks(cols))
        .with_min_len(rows_per_task(cols))
        .for_each(|(y, row)| {
            *y = (f64::from(alpha) * row.iter().map(|&v| f64::from(v)).sum::<f64>()) as f32
        });
}

/// The row's maximum m and Σ exp(x − m) in f64; m itself when it is ±∞ or NaN, with the sum
/// then meaningless (the callers return m, or NaN).
fn max_and_sum(row: &[f32]) -> (f32, f64) {
    let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let m = if row.iter().any(|v| v.is_nan()) {
        f32::NAN
    } else {
        m
    };
    if !m.is_finite() {
        return (m, 1.0);
    }
    let s = row
        .iter()
        .map(|&v| (f64::from(v) - f64::from(m)).exp())
        .sum::<f64>();
    (m, s)
}

/// `y[r] = log Σ_c exp x[r, c]`, max-shifted; a row whose maximum is ±∞ or NaN gives it.
pub fn row_logsumexp(cols: usize, x: &[f32], y: &mut [f32]) {
    if cols == 0 {
        y.fill(f32::NEG_INFINITY);
        return;
    }
    y.par_iter_mut()
        .zip(x.par_chunks(cols))
        .with_min_len(rows_per_task(cols))
        .for_each(|(y, row)| {
            let (m, s) = max_and_sum(row);
            *y = if m.is_finite() {
                (f64::from(m) + s.ln()) as f32
            } else {
                m
            };
        });
}

/// `y[r, c] = exp(x[r, c] − m_r) / Σ_c' exp(x[r, c'] − m_r)`.
pub fn row_softmax(cols: usize, x: &[f32], y: &mut [f32]) {
    if cols == 0 {
        return;
    }
    y.par_chunks_mut(cols)
        .zip(x.par_chunks(cols))
        .with_min_len(rows_per_task(cols))
        .for_each(|(y, row)| {
            let (m, s) = max_and_sum(row);
            for (y, &v) in y.iter_mut().zip(row) {
                *y = ((f64::from(v) - f64::from(m)).exp() / s) as f32;
            }
        });
}

/// `y[r] = x[r, index[r]]`, NaN where the index names no column.
pub fn gather_cols(cols: usize, x: &[f32], index: &[f32], y: &mut [f32]) {
    for (r, (y, &i)) in y.iter_mut().zip(index).enumerate() {
        *y = column_index(i, cols).map_or(f32::NAN, |c| x[r * cols + c]);
    }
}

/// `dx[r, c] = alpha·dy[r]` where `c == index[r]`, else 0.
pub fn scatter_cols(cols: usize, alpha: f32, dy: &[f32], index: &[f32], dx: &mut [f32]) {
    if cols == 0 {
        return;
    }
    for (r, row) in dx.chunks_mut(cols).enumerate() {
        row.fill(0.0);
        if let Some(c) = column_index(index[r], cols) {
            row[c] = alpha * dy[r];
        }
    }
}

/// `db[c] = Σ_n Σ_p dy[n, c, p]`, one channel per task.
pub fn channel_sum(s: ChannelShape, dy: &[f32], db: &mut [f32]) {
    let (channels, pixels) = (s.channels, s.pixels);
    db[..channels]
        .par_iter_mut()
        .enumerate()
        .with_min_len(rows_per_task(s.batch * pixels))
        .for_each(|(c, db)| {
            let sum: f64 = (0..s.batch)
                .map(|n| {
                    let plane = &dy[(n * channels + c) * pixels..][..pixels];
                    plane.iter().map(|&v| f64::from(v)).sum::<f64>()
                })
                .sum();
            *db = sum as f32;
        });
}
