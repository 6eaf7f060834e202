//! The CPU backend: the twins of the layer primitives' and general ops' kernels in plain
//! Rust, multithreaded with rayon where it pays and with the `gemm` crate for the matrix
//! products (algorithm kernels bring their own CPU twins, run by [`Backend::run`]).
//! Operations run at once; `flush` only returns the error of a call a shape check refused.
//! This is also the reference the GPU kernels are tested against.
//!
//! Its tensors are plain `Vec<f32>`s, so host code may look at them directly:
//!
//! ```
//! use ebm::backend::{Activation, Backend};
//! use ebm::CpuBackend;
//!
//! # fn main() -> ebm::Result<()> {
//! let b = CpuBackend::new();
//! let x: Vec<f32> = b.upload(&[-2.0, 3.0])?;
//! let mut y = b.zeros(2)?;
//! b.activation_forward(Activation::LeakyRelu(0.1), &x, &mut y);
//! assert_eq!(y, [-0.2, 3.0]);
//! assert_eq!(b.counters().dispatches, 1);
//! assert_eq!(b.counters().submissions, 0);
//! # Ok(())
//! # }
//! ```

pub(crate) mod activation;
mod conv;
mod elementwise;
mod isa;
pub(crate) mod matmul;
mod op_timer;
mod pool;
mod rows;
mod spectral_norm;
pub(crate) mod tile;
mod upsample;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::{
    shapes, Activation, Backend, ChannelShape, Conv2dShape, Counters, Kernel, LinearShape,
    PoolShape, Profile, ProfileSupport, UpsampleShape,
};
use crate::{Error, Result};
pub use isa::{choose as choose_tiles, Isa};
use matmul::{matmul, Mat};

/// The native CPU backend.
#[derive(Debug, Default)]
pub struct CpuBackend {
    dispatches: AtomicU64,
    timer: op_timer::OpTimer,
    /// The first error since the last `flush`/`wait`/`read`: a call refused by a shape
    /// check. Ops cannot return errors (on the GPU they are recorded, not run), so the CPU
    /// reports them exactly when the GPU would.
    error: Mutex<Option<Error>>,
}

impl CpuBackend {
    /// A backend on rayon's global thread pool (`RAYON_NUM_THREADS` threads, default one per
    /// core); it holds no device state, so creating one is free.
    pub fn new() -> Self {
        Self::default()
    }

    /// How this CPU runs convolutions and the MLP chain's wide layers: on register tiles
    /// where it has AVX-512F or AVX2 with FMA (a direct convolution, no patch matrix; the two
    /// give the same bits), else by im2col and the `gemm` crate, whose results differ from
    /// the tiles' in their last bits. `EBM_CPU_TILES` chooses ([`choose_tiles`]).
    pub fn matrix_method(&self) -> String {
        match isa::tiles() {
            Some(isa) => format!("{} tiles (direct convolution)", isa.name()),
            None if isa::choose("auto").is_ok_and(|isa| isa.is_some()) => {
                "im2col + gemm (tiles off by EBM_CPU_TILES)".into()
            }
            None => "im2col + gemm (no AVX2 or AVX-512)".into(),
        }
    }

    /// Keep the first refused call's error for the next `flush`/`wait`/`read`.
    fn defer_error(&self, e: Error) {
        self.error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert(e);
    }

    /// Whether a shape check refused the call (its error kept for the next read).
    fn refuse(&self, check: Result<()>) -> bool {
        check.map_err(|e| self.defer_error(e)).is_err()
    }

    /// The kept error, if any (and clear it).
    fn take_error(&self) -> Result<()> {
        match self.error.lock().unwrap_or_else(|e| e.into_inner()).take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn count(&self) {
        self.dispatches.fetch_add(1, Ordering::Relaxed);
    }

    /// Count op `name` and, while profiling, time it until the returned span drops.
    fn op(&self, name: &'static str) -> op_timer::Span<'_> {
        self.count();
        self.timer.start(name)
    }
}

/// The GPU kernel's name for an activation op, so both backends' profiles share rows.
fn act_kernel(act: Activation, forward: bool) -> &'static str {
    match (act, forward) {
        (Activation::Relu, true) => "relu_forward",
        (Activation::Relu, false) => "relu_backward",
        (Activation::LeakyRelu(_), true) => "leaky_relu_forward",
        (Activation::LeakyRelu(_), false) => "leaky_relu_backward",
        (Activation::Silu, true) => "silu_forward",
        (Activation::Silu, false) => "silu_backward",
        (Activation::Tanh, true) => "tanh_forward",
        (Activation::Tanh, false) => "tanh_backward",
        (Activation::Sigmoid, true) => "sigmoid_forward",
        (Activation::Sigmoid, false) => "sigmoid_backward",
        (Activation::Softplus, true) => "softplus_forward",
        (Activation::Softplus, false) => "softplus_backward",
        (Activation::Square, true) => "square_forward",
        (Activation::Square, false) => "square_backward",
    }
}

impl Backend for CpuBackend {
    type Tensor = Vec<f32>;

    fn name(&self) -> String {
        format!("cpu ({} threads)", rayon::current_num_threads())
    }

    fn is_gpu(&self) -> bool {
        false
    }

    fn zeros(&self, len: usize) -> Result<Vec<f32>> {
        Ok(vec![0.0; len])
    }

    fn upload(&self, data: &[f32]) -> Result<Vec<f32>> {
        Ok(data.to_vec())
    }

    fn write(&self, dst: &mut Vec<f32>, offset: usize, data: &[f32]) -> Result<()> {
        let len = dst.len();
        let slot = dst.get_mut(offset..offset + data.len()).ok_or_else(|| {
            crate::Error::Shape(format!(
                "writing {} values at offset {offset} into a tensor of {len}",
                data.len()
            ))
        })?;
        slot.copy_from_slice(data);
        Ok(())
    }

    fn read(&self, src: &Vec<f32>) -> Result<Vec<f32>> {
        self.take_error()?;
        Ok(src.clone())
    }

    fn len(&self, t: &Vec<f32>) -> usize {
        t.len()
    }

    fn copy(&self, src: &Vec<f32>, so: usize, dst: &mut Vec<f32>, d: usize, len: usize) {
        if self.refuse(shapes::copy(src.len(), so, dst.len(), d, len)) {
            return;
        }
        dst[d..d + len].copy_from_slice(&src[so..so + len]);
    }

    fn fill(&self, dst: &mut Vec<f32>, value: f32) {
        dst.fill(value);
    }

    fn keep_known(&self, x: &mut Vec<f32>, known: &Vec<f32>, mask: &Vec<f32>) {
        if self.refuse(shapes::keep_known(x.len(), known.len(), mask.len())) {
            return;
        }
        let _op = self.op("keep_known");
        for ((x, &k), &m) in x.iter_mut().zip(known).zip(mask) {
            if m != 0.0 {
                *x = k;
            }
        }
    }

    fn wait(&self) -> Result<()> {
        self.take_error()
    }

    fn flush(&self) -> Result<()> {
        self.take_error()
    }

    fn counters(&self) -> Counters {
        Counters {
            dispatches: self.dispatches.load(Ordering::Relaxed),
            ..Counters::default()
        }
    }

    fn set_profiling(&self, on: bool) -> ProfileSupport {
        self.timer.set(on);
        ProfileSupport::Supported {
            source: op_timer::SOURCE,
        }
    }

    fn take_profile(&self) -> Result<Profile> {
        self.take_error()?;
        Ok(self.timer.take())
    }

    fn linear_forward(
        &self,
        s: LinearShape,
        x: &Vec<f32>,
        w: &Vec<f32>,
        b: &Vec<f32>,
        y: &mut Vec<f32>,
    ) {
        if self.refuse(shapes::linear_forward(
            s,
            x.len(),
            w.len(),
            b.len(),
            y.len(),
        )) {
            return;
        }
        let _op = self.op("linear_forward");
        let (n, i, o) = (s.batch, s.inputs, s.outputs);
        for row in y[..n * o].chunks_mut(o) {
            row.copy_from_slice(&b[..o]);
        }
        // y[n,o] += x[n,i] · wᵀ[i,o]
        matmul(
            Mat::row_major(x, n, i),
            Mat::transposed(w, o, i),
            &mut y[..n * o],
            true,
        );
    }

    fn linear_backward_data(&self, s: LinearShape, dy: &Vec<f32>, w: &Vec<f32>, dx: &mut Vec<f32>) {
        if self.refuse(shapes::linear_backward_data(s, dy.len(), w.len(), dx.len())) {
            return;
        }
        let _op = self.op("linear_backward_data");
        let (n, i, o) = (s.batch, s.inputs, s.outputs);
        // dx[n,i] = dy[n,o] · w[o,i]
        matmul(
            Mat::row_major(dy, n, o),
            Mat::row_major(w, o, i),
            &mut dx[..n * i],
            false,
        );
    }

    fn linear_backward_params(
        &self,
        s: LinearShape,
        dy: &Vec<f32>,
        x: &Vec<f32>,
        dw: &mut Vec<f32>,
        db: &mut Vec<f32>,
    ) {
        if self.refuse(shapes::linear_backward_params(
            s,
            dy.len(),
            x.len(),
            dw.len(),
            db.len(),
        )) {
            return;
        }
        let _op = self.op("linear_backward_params");
        let (n, i, o) = (s.batch, s.inputs, s.outputs);
        // dw[o,i] = dyᵀ[o,n] · x[n,i]
        matmul(
            Mat::transposed(dy, n, o),
            Mat::row_major(x, n, i),
            &mut dw[..o * i],
            false,
        );
        db[..o].fill(0.0);
        for row in dy[..n * o].chunks(o) {
            db[..o].iter_mut().zip(row).for_each(|(d, &g)| *d += g);
        }
    }

    fn conv2d_forward(
        &self,
        s: Conv2dShape,
        x: &Vec<f32>,
        w: &Vec<f32>,
        b: &Vec<f32>,
        y: &mut Vec<f32>,
    ) {
        if self.refuse(shapes::conv2d_forward(
            s,
            x.len(),
            w.len(),
            b.len(),
            y.len(),
        )) {
            return;
        }
        let _op = self.op("conv2d_forward");
        conv::forward(s, x, w, b, y);
    }

    fn conv2d_backward_data(&self, s: Conv2dShape, dy: &Vec<f32>, w: &Vec<f32>, dx: &mut Vec<f32>) {
        if self.refuse(shapes::conv2d_backward_data(s, dy.len(), w.len(), dx.len())) {
            return;
        }
        let _op = self.op("conv2d_backward_data");
        conv::backward_data(s, dy, w, dx);
    }

    fn conv2d_backward_params(
        &self,
        s: Conv2dShape,
        dy: &Vec<f32>,
        x: &Vec<f32>,
        dw: &mut Vec<f32>,
        db: &mut Vec<f32>,
    ) {
        if self.refuse(shapes::conv2d_backward_params(
            s,
            dy.len(),
            x.len(),
            dw.len(),
            db.len(),
        )) {
            return;
        }
        let _op = self.op("conv2d_backward_params");
        conv::backward_params(s, dy, x, dw, db);
    }

    fn avg_pool_forward(&self, s: PoolShape, x: &Vec<f32>, y: &mut Vec<f32>) {
        if self.refuse(shapes::avg_pool_forward(s, x.len(), y.len())) {
            return;
        }
        let _op = self.op("avg_pool_forward");
        pool::pool_forward(s, x, y);
    }

    fn avg_pool_backward(&self, s: PoolShape, dy: &Vec<f32>, dx: &mut Vec<f32>) {
        if self.refuse(shapes::avg_pool_backward(s, dy.len(), dx.len())) {
            return;
        }
        let _op = self.op("avg_pool_backward");
        pool::pool_backward(s, dy, dx);
    }

    fn activation_forward(&self, act: Activation, x: &Vec<f32>, y: &mut Vec<f32>) {
        let _op = self.op(act_kernel(act, true));
        activation::forward(act, x, y);
    }

    fn activation_backward(&self, act: Activation, x: &Vec<f32>, dy: &Vec<f32>, dx: &mut Vec<f32>) {
        let _op = self.op(act_kernel(act, false));
        activation::backward(act, x, dy, dx);
    }

    fn add(&self, a: &Vec<f32>, b: &Vec<f32>, y: &mut Vec<f32>, len: usize) {
        if self.refuse(shapes::add(a.len(), b.len(), y.len(), len)) {
            return;
        }
        let _op = self.op("add");
        elementwise::add(&a[..len], &b[..len], &mut y[..len]);
    }

    fn axpy(&self, alpha: f32, x: &Vec<f32>, y: &mut Vec<f32>, len: usize) {
        if self.refuse(shapes::axpy(x.len(), y.len(), len)) {
            return;
        }
        let _op = self.op("axpy");
        elementwise::axpy(alpha, &x[..len], &mut y[..len]);
    }

    fn scale(&self, alpha: f32, x: &mut Vec<f32>, len: usize) {
        if self.refuse(shapes::scale(x.len(), len)) {
            return;
        }
        let _op = self.op("scale");
        elementwise::scale(alpha, &mut x[..len]);
    }

    fn row_sum(&self, rows: usize, cols: usize, alpha: f32, x: &Vec<f32>, y: &mut Vec<f32>) {
        if self.refuse(shapes::rows("row_sum", rows, cols, x.len(), y.len(), rows)) {
            return;
        }
        let _op = self.op("row_sum");
        rows::row_sum(cols, alpha, &x[..rows * cols], &mut y[..rows]);
    }

    fn broadcast_rows(&self, rows: usize, cols: usize, alpha: f32, s: &Vec<f32>, y: &mut Vec<f32>) {
        if self.refuse(shapes::broadcast_rows(rows, cols, s.len(), y.len())) {
            return;
        }
        let _op = self.op("broadcast_rows");
        elementwise::broadcast_rows(cols, alpha, &s[..rows], &mut y[..rows * cols]);
    }

    fn row_logsumexp(&self, rows: usize, cols: usize, x: &Vec<f32>, y: &mut Vec<f32>) {
        if self.refuse(shapes::rows(
            "row_logsumexp",
            rows,
            cols,
            x.len(),
            y.len(),
            rows,
        )) {
            return;
        }
        let _op = self.op("row_logsumexp");
        rows::row_logsumexp(cols, &x[..rows * cols], &mut y[..rows]);
    }

    fn row_softmax(&self, rows: usize, cols: usize, x: &Vec<f32>, y: &mut Vec<f32>) {
        if self.refuse(shapes::rows(
            "row_softmax",
            rows,
            cols,
            x.len(),
            y.len(),
            rows * cols,
        )) {
            return;
        }
        let _op = self.op("row_softmax");
        rows::row_softmax(cols, &x[..rows * cols], &mut y[..rows * cols]);
    }

    fn scale_rows(
        &self,
        rows: usize,
        cols: usize,
        alpha: f32,
        x: &Vec<f32>,
        s: &Vec<f32>,
        y: &mut Vec<f32>,
    ) {
        if self.refuse(shapes::scale_rows(rows, cols, x.len(), s.len(), y.len())) {
            return;
        }
        let _op = self.op("scale_rows");
        let n = rows * cols;
        elementwise::scale_rows(cols, alpha, &x[..n], &s[..rows], &mut y[..n]);
    }

    fn gather_cols(
        &self,
        rows: usize,
        cols: usize,
        x: &Vec<f32>,
        index: &Vec<f32>,
        y: &mut Vec<f32>,
    ) {
        if self.refuse(shapes::gather_cols(
            rows,
            cols,
            x.len(),
            index.len(),
            y.len(),
        )) {
            return;
        }
        let _op = self.op("gather_cols");
        rows::gather_cols(cols, &x[..rows * cols], &index[..rows], &mut y[..rows]);
    }

    fn scatter_cols(
        &self,
        rows: usize,
        cols: usize,
        alpha: f32,
        dy: &Vec<f32>,
        index: &Vec<f32>,
        dx: &mut Vec<f32>,
    ) {
        if self.refuse(shapes::scatter_cols(
            rows,
            cols,
            dy.len(),
            index.len(),
            dx.len(),
        )) {
            return;
        }
        let _op = self.op("scatter_cols");
        let n = rows * cols;
        rows::scatter_cols(cols, alpha, &dy[..rows], &index[..rows], &mut dx[..n]);
    }

    fn upsample_forward(&self, s: UpsampleShape, x: &Vec<f32>, y: &mut Vec<f32>) {
        if self.refuse(shapes::upsample_forward(s, x.len(), y.len())) {
            return;
        }
        let _op = self.op("upsample_forward");
        upsample::forward(s, x, y);
    }

    fn upsample_backward(&self, s: UpsampleShape, dy: &Vec<f32>, dx: &mut Vec<f32>) {
        if self.refuse(shapes::upsample_backward(s, dy.len(), dx.len())) {
            return;
        }
        let _op = self.op("upsample_backward");
        upsample::backward(s, dy, dx);
    }

    fn channel_bias_add(&self, s: ChannelShape, bias: &Vec<f32>, y: &mut Vec<f32>) {
        if self.refuse(shapes::channel_bias_add(s, bias.len(), y.len())) {
            return;
        }
        let _op = self.op("channel_bias_add");
        elementwise::channel_bias_add(s, &bias[..s.channels], &mut y[..s.len()]);
    }

    fn channel_sum(&self, s: ChannelShape, dy: &Vec<f32>, db: &mut Vec<f32>) {
        if self.refuse(shapes::channel_sum(s, dy.len(), db.len())) {
            return;
        }
        let _op = self.op("channel_sum");
        rows::channel_sum(s, &dy[..s.len()], &mut db[..s.channels]);
    }

    fn spectral_norm_forward(
        &self,
        rows: usize,
        cols: usize,
        w: &Vec<f32>,
        u: &mut Vec<f32>,
        v: &mut Vec<f32>,
        sigma: &mut Vec<f32>,
        w_sn: &mut Vec<f32>,
        iterate: bool,
    ) {
        if self.refuse(shapes::spectral_norm_forward(
            rows,
            cols,
            [w.len(), u.len(), v.len(), sigma.len(), w_sn.len()],
        )) {
            return;
        }
        let _op = self.op("spectral_norm_forward");
        let n = rows * cols;
        if n == 0 {
            return;
        }
        spectral_norm::forward(
            cols,
            &w[..n],
            &mut u[..rows],
            &mut v[..cols],
            &mut sigma[..1],
            &mut w_sn[..n],
            iterate,
        );
    }

    fn spectral_norm_backward(
        &self,
        rows: usize,
        cols: usize,
        g: &Vec<f32>,
        w_sn: &Vec<f32>,
        u: &Vec<f32>,
        v: &Vec<f32>,
        sigma: &Vec<f32>,
        dw: &mut Vec<f32>,
    ) {
        if self.refuse(shapes::spectral_norm_backward(
            rows,
            cols,
            [g.len(), w_sn.len(), u.len(), v.len(), sigma.len(), dw.len()],
        )) {
            return;
        }
        let _op = self.op("spectral_norm_backward");
        let n = rows * cols;
        if n == 0 {
            return;
        }
        spectral_norm::backward(
            cols,
            &g[..n],
            &w_sn[..n],
            &u[..rows],
            &v[..cols],
            sigma[0],
            &mut dw[..n],
        );
    }

    fn sum_squares(&self, x: &Vec<f32>, out: &mut Vec<f32>, slot: usize) {
        if self.refuse(shapes::sum_squares(out.len(), slot)) {
            return;
        }
        let _op = self.op("sum_squares");
        out[slot] = x.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>() as f32;
    }

    fn run(&self, kernel: &dyn Kernel, inputs: &[&Vec<f32>], outputs: &mut [&mut Vec<f32>]) {
        let in_lens: Vec<usize> = inputs.iter().map(|t| t.len()).collect();
        let out_lens: Vec<usize> = outputs.iter().map(|t| t.len()).collect();
        let checked = kernel.check(&in_lens, &out_lens).and_then(|()| {
            if kernel.runs_on_cpu() {
                Ok(())
            } else {
                Err(Error::Shape(format!("{} has no CPU twin", kernel.name())))
            }
        });
        if let Err(e) = checked {
            return self.defer_error(e);
        }
        let _op = self.op(kernel.name());
        let inputs: Vec<&[f32]> = inputs.iter().map(|t| t.as_slice()).collect();
        let mut outputs: Vec<&mut [f32]> = outputs.iter_mut().map(|t| t.as_mut_slice()).collect();
        kernel.cpu(&inputs, &mut outputs);
    }

    fn supports(&self, kernel: &dyn Kernel) -> bool {
        kernel.runs_on_cpu()
    }
}
