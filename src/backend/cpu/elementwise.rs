//! The CPU twins of shaders/elementwise.wgsl: sums, scalings and broadcasts over flat
//! slices, split across threads only when long enough to pay for it.

use rayon::prelude::*;

use crate::backend::ChannelShape;

/// Slices at least this long are split across threads.
const PAR_MIN: usize = 1 << 15;
/// Work per rayon task.
const PAR_CHUNK: usize = 1 << 13;

/// `y[i] = f(i, y[i])` for every element, in parallel chunks when `y` is long; `i` is the
/// index into the whole slice, so broadcasts can find their row or channel.
fn map_indexed(y: &mut [f32], f: impl Fn(usize, f32) -> f32 + Sync) {
    let run = |start: usize, chunk: &mut [f32]| {
        for (k, v) in chunk.iter_mut().enumerate() {
            *v = f(start + k, *v);
        }
    };
    if y.len() >= PAR_MIN {
        y.par_chunks_mut(PAR_CHUNK)
            .enumerate()
            .for_each(|(c, chunk)| run(c * PAR_CHUNK, chunk));
    } else {
        run(0, y);
    }
}

/// `y = a + b`.
pub fn add(a: &[f32], b: &[f32], y: &mut [f32]) {
    map_indexed(y, |i, _| a[i] + b[i]);
}

/// `y += alpha·x`.
pub fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
    map_indexed(y, |i, v| v + alpha * x[i]);
}

/// `x *= alpha`.
pub fn scale(alpha: f32, x: &mut [f32]) {
    map_indexed(x, |_, v| alpha * v);
}

/// `y[r·cols + c] = alpha·s[r]` over `y` = rows·cols values.
pub fn broadcast_rows(cols: usize, alpha: f32, s: &[f32], y: &mut [f32]) {
    map_indexed(y, |i, _| alpha * s[i / cols]);
}

/// `y[r·cols + c] = alpha·x[r·cols + c]·s[r]` over `y` = rows·cols values.
pub fn scale_rows(cols: usize, alpha: f32, x: &[f32], s: &[f32], y: &mut [f32]) {
    map_indexed(y, |i, _| alpha * x[i] * s[i / cols]);
}

/// `y[n, c, p] += bias[c]` over `y` = N·C·P values.
pub fn channel_bias_add(s: ChannelShape, bias: &[f32], y: &mut [f32]) {
    let (channels, pixels) = (s.channels, s.pixels);
    map_indexed(y, |i, v| v + bias[(i / pixels) % channels]);
}
