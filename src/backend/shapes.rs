//! Shape checks of the [`Backend`](super::Backend) ops, above the backends: both call the
//! same function before an op runs, so both refuse the same bad call with the same error
//! (returned by the next `flush`/`wait`/`read`), and neither panics or reads past a tensor
//! on a bad length or a zero-sized layer. Each takes the tensors' lengths in argument order.
//!
//! Device limits (u32 index ranges, workgroup grids) are the GPU's own further checks.

use super::kernel::need;
use super::{Conv2dShape, LinearShape, PoolShape, UpsampleShape};
use crate::{Error, Result};

pub(crate) fn copy(src: usize, so: usize, dst: usize, d: usize, len: usize) -> Result<()> {
    need("copy", &[("src", src, so + len), ("dst", dst, d + len)])
}

pub(crate) fn keep_known(x: usize, known: usize, mask: usize) -> Result<()> {
    need("keep_known", &[("known", known, x), ("mask", mask, x)])
}

/// A linear layer has at least one input and one output feature (an empty batch is fine).
fn linear_features(op: &str, s: LinearShape) -> Result<()> {
    if s.inputs == 0 || s.outputs == 0 {
        return Err(Error::Shape(format!(
            "{op} {s:?}: a linear layer needs at least one input and one output"
        )));
    }
    Ok(())
}

pub(crate) fn linear_forward(s: LinearShape, x: usize, w: usize, b: usize, y: usize) -> Result<()> {
    linear_features("linear_forward", s)?;
    let (n, i, o) = (s.batch, s.inputs, s.outputs);
    let lens = [
        ("x", x, n * i),
        ("w", w, o * i),
        ("b", b, o),
        ("y", y, n * o),
    ];
    need("linear_forward", &lens)
}

pub(crate) fn linear_backward_data(s: LinearShape, dy: usize, w: usize, dx: usize) -> Result<()> {
    linear_features("linear_backward_data", s)?;
    let (n, i, o) = (s.batch, s.inputs, s.outputs);
    let lens = [("dy", dy, n * o), ("w", w, o * i), ("dx", dx, n * i)];
    need("linear_backward_data", &lens)
}

pub(crate) fn linear_backward_params(
    s: LinearShape,
    dy: usize,
    x: usize,
    dw: usize,
    db: usize,
) -> Result<()> {
    linear_features("linear_backward_params", s)?;
    let (n, i, o) = (s.batch, s.inputs, s.outputs);
    let lens = [
        ("dy", dy, n * o),
        ("x", x, n * i),
        ("dw", dw, o * i),
        ("db", db, o),
    ];
    need("linear_backward_params", &lens)
}

/// The geometry every conv op needs: kernel and stride ≥ 1, the kernel within the padded
/// input, at least one channel in and out and one pixel (an empty batch is fine).
fn conv_geometry(op: &str, s: Conv2dShape) -> Result<()> {
    let fits = s.height + 2 * s.padding >= s.kernel && s.width + 2 * s.padding >= s.kernel;
    if s.kernel == 0 || s.stride == 0 || !fits {
        return Err(Error::Shape(format!(
            "{op} {s:?}: the kernel must fit the padded input, stride ≥ 1"
        )));
    }
    if s.in_channels == 0 || s.out_channels == 0 || s.height == 0 || s.width == 0 {
        return Err(Error::Shape(format!(
            "{op} {s:?}: a convolution needs at least one channel in and out and one pixel"
        )));
    }
    Ok(())
}

fn conv_weights(s: Conv2dShape) -> usize {
    s.out_channels * s.in_channels * s.kernel * s.kernel
}

pub(crate) fn conv2d_forward(s: Conv2dShape, x: usize, w: usize, b: usize, y: usize) -> Result<()> {
    let op = "conv2d_forward";
    conv_geometry(op, s)?;
    let lens = [
        ("x", x, s.batch * s.in_len()),
        ("w", w, conv_weights(s)),
        ("b", b, s.out_channels),
        ("y", y, s.batch * s.out_len()),
    ];
    need(op, &lens)
}

pub(crate) fn conv2d_backward_data(s: Conv2dShape, dy: usize, w: usize, dx: usize) -> Result<()> {
    let op = "conv2d_backward_data";
    conv_geometry(op, s)?;
    let lens = [
        ("dy", dy, s.batch * s.out_len()),
        ("w", w, conv_weights(s)),
        ("dx", dx, s.batch * s.in_len()),
    ];
    need(op, &lens)
}

pub(crate) fn conv2d_backward_params(
    s: Conv2dShape,
    dy: usize,
    x: usize,
    dw: usize,
    db: usize,
) -> Result<()> {
    let op = "conv2d_backward_params";
    conv_geometry(op, s)?;
    let lens = [
        ("dy", dy, s.batch * s.out_len()),
        ("x", x, s.batch * s.in_len()),
        ("dw", dw, conv_weights(s)),
        ("db", db, s.out_channels),
    ];
    need(op, &lens)
}

/// Lengths of x and y of a pooling, after refusing a zero window.
fn pool_lens(op: &str, s: PoolShape) -> Result<(usize, usize)> {
    if s.kernel == 0 {
        return Err(Error::Shape(format!("{op} {s:?}: kernel 0")));
    }
    let planes = s.batch * s.channels;
    Ok((
        planes * s.height * s.width,
        planes * s.out_height() * s.out_width(),
    ))
}

pub(crate) fn avg_pool_forward(s: PoolShape, x: usize, y: usize) -> Result<()> {
    let op = "avg_pool_forward";
    let (x_len, y_len) = pool_lens(op, s)?;
    need(op, &[("x", x, x_len), ("y", y, y_len)])
}

pub(crate) fn avg_pool_backward(s: PoolShape, dy: usize, dx: usize) -> Result<()> {
    let op = "avg_pool_backward";
    let (x_len, y_len) = pool_lens(op, s)?;
    need(op, &[("dy", dy, y_len), ("dx", dx, x_len)])
}

fn upsample_factor(op: &str, s: UpsampleShape) -> Result<()> {
    if s.factor == 0 {
        return Err(Error::Shape(format!("{op} {s:?}: factor 0")));
    }
    Ok(())
}

pub(crate) fn upsample_forward(s: UpsampleShape, x: usize, y: usize) -> Result<()> {
    let op = "upsample_forward";
    upsample_factor(op, s)?;
    need(op, &[("x", x, s.in_len()), ("y", y, s.out_len())])
}

pub(crate) fn upsample_backward(s: UpsampleShape, dy: usize, dx: usize) -> Result<()> {
    let op = "upsample_backward";
    upsample_factor(op, s)?;
    need(op, &[("dy", dy, s.out_len()), ("dx", dx, s.in_len())])
}

pub(crate) fn add(a: usize, b: usize, y: usize, len: usize) -> Result<()> {
    need("add", &[("a", a, len), ("b", b, len), ("y", y, len)])
}

pub(crate) fn axpy(x: usize, y: usize, len: usize) -> Result<()> {
    need("axpy", &[("x", x, len), ("y", y, len)])
}

pub(crate) fn scale(x: usize, len: usize) -> Result<()> {
    need("scale", &[("x", x, len)])
}

/// A per-row op reading `x` `[rows, cols]` and writing `y` of `y_need` values.
pub(crate) fn rows(
    op: &str,
    rows: usize,
    cols: usize,
    x: usize,
    y: usize,
    y_need: usize,
) -> Result<()> {
    need(op, &[("x", x, rows * cols), ("y", y, y_need)])
}

pub(crate) fn broadcast_rows(rows: usize, cols: usize, s: usize, y: usize) -> Result<()> {
    need("broadcast_rows", &[("s", s, rows), ("y", y, rows * cols)])
}

pub(crate) fn scale_rows(rows: usize, cols: usize, x: usize, s: usize, y: usize) -> Result<()> {
    let n = rows * cols;
    need("scale_rows", &[("x", x, n), ("s", s, rows), ("y", y, n)])
}

pub(crate) fn gather_cols(
    rows: usize,
    cols: usize,
    x: usize,
    index: usize,
    y: usize,
) -> Result<()> {
    let lens = [
        ("x", x, rows * cols),
        ("index", index, rows),
        ("y", y, rows),
    ];
    need("gather_cols", &lens)
}

pub(crate) fn scatter_cols(
    rows: usize,
    cols: usize,
    dy: usize,
    index: usize,
    dx: usize,
) -> Result<()> {
    let lens = [
        ("dy", dy, rows),
        ("index", index, rows),
        ("dx", dx, rows * cols),
    ];
    need("scatter_cols", &lens)
}

pub(crate) fn channel_bias_add(s: super::ChannelShape, bias: usize, y: usize) -> Result<()> {
    need(
        "channel_bias_add",
        &[("bias", bias, s.channels), ("y", y, s.len())],
    )
}

pub(crate) fn channel_sum(s: super::ChannelShape, dy: usize, db: usize) -> Result<()> {
    need(
        "channel_sum",
        &[("dy", dy, s.len()), ("db", db, s.channels)],
    )
}

pub(crate) fn spectral_norm_forward(
    rows: usize,
    cols: usize,
    [w, u, v, sigma, w_sn]: [usize; 5],
) -> Result<()> {
    let n = rows * cols;
    let lens = [
        ("w", w, n),
        ("u", u, rows),
        ("v", v, cols),
        ("sigma", sigma, 1),
        ("w_sn", w_sn, n),
    ];
    need("spectral_norm_forward", &lens)
}

pub(crate) fn spectral_norm_backward(
    rows: usize,
    cols: usize,
    [g, w_sn, u, v, sigma, dw]: [usize; 6],
) -> Result<()> {
    let n = rows * cols;
    let lens = [
        ("g", g, n),
        ("w_sn", w_sn, n),
        ("u", u, rows),
        ("v", v, cols),
        ("sigma", sigma, 1),
        ("dw", dw, n),
    ];
    need("spectral_norm_backward", &lens)
}

pub(crate) fn sum_squares(out: usize, slot: usize) -> Result<()> {
    if slot >= out {
        return Err(Error::Shape(format!(
            "sum_squares into slot {slot} of a tensor of {out}"
        )));
    }
    Ok(())
}
