//! The CPU backend: every kernel's twin in plain Rust, multithreaded with rayon where it pays
//! and with the `gemm` crate for the matrix products. Operations run at once; `flush` is a
//! no-op. This is also the reference the GPU kernels are tested against.
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

mod activation;
mod conv;
mod elementwise;
mod matmul;
mod mlp_chain;
mod op_timer;
mod rows;
mod spectral_norm;
mod upsample;

use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;

use super::{
    stat, Activation, AdamUpdate, Backend, ChannelShape, Conv2dShape, Counters, LangevinUpdate,
    LinearShape, MlpChain, PoolShape, Profile, ProfileSupport, ReplayDraw, UpsampleShape,
};
use crate::rng::{self, Stream};
use crate::Result;
use matmul::{matmul, Mat};

/// The native CPU backend.
#[derive(Debug, Default)]
pub struct CpuBackend {
    dispatches: AtomicU64,
    timer: op_timer::OpTimer,
}

impl CpuBackend {
    /// A backend on rayon's global thread pool (`RAYON_NUM_THREADS` threads, default one per
    /// core); it holds no device state, so creating one is free.
    pub fn new() -> Self {
        Self::default()
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

/// The Langevin update of one chain `row` (relative to `u.chain_offset`): one Philox call
/// per 4-element block, exactly as shaders/langevin.wgsl consumes it.
fn langevin_row(u: &LangevinUpdate, row: usize, x: &mut [f32], grad: &[f32]) {
    for (block, (xb, gb)) in x.chunks_mut(4).zip(grad.chunks(4)).enumerate() {
        let xi = rng::normals(rng::words(
            u.seed,
            block as u32,
            u.chain_offset + row as u32,
            u.global_step,
            Stream::Langevin,
        ));
        for ((x, &g), z) in xb.iter_mut().zip(gb).zip(xi) {
            let g = match u.grad_clip {
                Some(c) => g.clamp(-c, c),
                None => g,
            };
            *x = (*x - u.step * g + u.noise * z).clamp(u.lo, u.hi);
        }
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
        Ok(src.clone())
    }

    fn len(&self, t: &Vec<f32>) -> usize {
        t.len()
    }

    fn copy(&self, src: &Vec<f32>, so: usize, dst: &mut Vec<f32>, d: usize, len: usize) {
        dst[d..d + len].copy_from_slice(&src[so..so + len]);
    }

    fn fill(&self, dst: &mut Vec<f32>, value: f32) {
        dst.fill(value);
    }

    fn keep_known(&self, x: &mut Vec<f32>, known: &Vec<f32>, mask: &Vec<f32>) {
        let _op = self.op("keep_known");
        for ((x, &k), &m) in x.iter_mut().zip(known).zip(mask) {
            if m != 0.0 {
                *x = k;
            }
        }
    }

    fn flag_non_finite(&self, x: &Vec<f32>, flags: &mut Vec<f32>, slot: usize, mark: f32) {
        let _op = self.op("flag_non_finite");
        if flags[slot] == 0.0 && x.iter().any(|v| !v.is_finite()) {
            flags[slot] = mark;
        }
    }

    fn wait(&self) -> Result<()> {
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        Ok(())
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
        let _op = self.op("conv2d_forward");
        conv::forward(s, x, w, b, y);
    }

    fn conv2d_backward_data(&self, s: Conv2dShape, dy: &Vec<f32>, w: &Vec<f32>, dx: &mut Vec<f32>) {
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
        let _op = self.op("conv2d_backward_params");
        conv::backward_params(s, dy, x, dw, db);
    }

    fn avg_pool_forward(&self, s: PoolShape, x: &Vec<f32>, y: &mut Vec<f32>) {
        let _op = self.op("avg_pool_forward");
        conv::pool_forward(s, x, y);
    }

    fn avg_pool_backward(&self, s: PoolShape, dy: &Vec<f32>, dx: &mut Vec<f32>) {
        let _op = self.op("avg_pool_backward");
        conv::pool_backward(s, dy, dx);
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
        let _op = self.op("add");
        elementwise::add(&a[..len], &b[..len], &mut y[..len]);
    }

    fn axpy(&self, alpha: f32, x: &Vec<f32>, y: &mut Vec<f32>, len: usize) {
        let _op = self.op("axpy");
        elementwise::axpy(alpha, &x[..len], &mut y[..len]);
    }

    fn scale(&self, alpha: f32, x: &mut Vec<f32>, len: usize) {
        let _op = self.op("scale");
        elementwise::scale(alpha, &mut x[..len]);
    }

    fn row_sum(&self, rows: usize, cols: usize, alpha: f32, x: &Vec<f32>, y: &mut Vec<f32>) {
        let _op = self.op("row_sum");
        rows::row_sum(cols, alpha, &x[..rows * cols], &mut y[..rows]);
    }

    fn broadcast_rows(&self, rows: usize, cols: usize, alpha: f32, s: &Vec<f32>, y: &mut Vec<f32>) {
        let _op = self.op("broadcast_rows");
        elementwise::broadcast_rows(cols, alpha, &s[..rows], &mut y[..rows * cols]);
    }

    fn row_logsumexp(&self, rows: usize, cols: usize, x: &Vec<f32>, y: &mut Vec<f32>) {
        let _op = self.op("row_logsumexp");
        rows::row_logsumexp(cols, &x[..rows * cols], &mut y[..rows]);
    }

    fn row_softmax(&self, rows: usize, cols: usize, x: &Vec<f32>, y: &mut Vec<f32>) {
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
        let _op = self.op("scatter_cols");
        let n = rows * cols;
        rows::scatter_cols(cols, alpha, &dy[..rows], &index[..rows], &mut dx[..n]);
    }

    fn upsample_forward(&self, s: UpsampleShape, x: &Vec<f32>, y: &mut Vec<f32>) {
        let _op = self.op("upsample_forward");
        assert!(s.factor > 0, "upsample_forward {s:?}: factor 0");
        upsample::forward(s, x, y);
    }

    fn upsample_backward(&self, s: UpsampleShape, dy: &Vec<f32>, dx: &mut Vec<f32>) {
        let _op = self.op("upsample_backward");
        assert!(s.factor > 0, "upsample_backward {s:?}: factor 0");
        upsample::backward(s, dy, dx);
    }

    fn channel_bias_add(&self, s: ChannelShape, bias: &Vec<f32>, y: &mut Vec<f32>) {
        let _op = self.op("channel_bias_add");
        elementwise::channel_bias_add(s, &bias[..s.channels], &mut y[..s.len()]);
    }

    fn channel_sum(&self, s: ChannelShape, dy: &Vec<f32>, db: &mut Vec<f32>) {
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

    fn cd_loss(
        &self,
        energies: &Vec<f32>,
        n_pos: usize,
        alpha: f32,
        d_energy: &mut Vec<f32>,
        stats: &mut Vec<f32>,
    ) {
        let _op = self.op("cd_loss");
        let n_neg = energies.len() - n_pos;
        let (pos, neg) = energies.split_at(n_pos);
        let mean = |v: &[f32], f: fn(f64) -> f64| {
            v.iter().map(|&e| f(e as f64)).sum::<f64>() / v.len() as f64
        };
        let (mp, mn) = (mean(pos, |e| e), mean(neg, |e| e));
        let (mp2, mn2) = (mean(pos, |e| e * e), mean(neg, |e| e * e));
        stats[stat::LOSS] = (mp - mn + alpha as f64 * (mp2 + mn2)) as f32;
        stats[stat::MEAN_E_POS] = mp as f32;
        stats[stat::MEAN_E_NEG] = mn as f32;
        stats[stat::MEAN_E_POS_SQ] = mp2 as f32;
        stats[stat::MEAN_E_NEG_SQ] = mn2 as f32;
        for (j, (d, &e)) in d_energy.iter_mut().zip(energies).enumerate() {
            *d = if j < n_pos {
                (1.0 + 2.0 * alpha * e) / n_pos as f32
            } else {
                (-1.0 + 2.0 * alpha * e) / n_neg as f32
            };
        }
    }

    fn langevin_update(&self, u: &LangevinUpdate, x: &mut Vec<f32>, grad: &Vec<f32>) {
        let _op = self.op("langevin_update");
        let rows = x[..u.rows * u.dim]
            .par_chunks_mut(u.dim)
            .zip(grad.par_chunks(u.dim));
        // A rayon task per row cost ~45 µs per call on toy2d's 2-wide rows: at least
        // 4096 elements per task.
        rows.enumerate()
            .with_min_len(4096_usize.div_ceil(u.dim.max(1)))
            .for_each(|(row, (xr, gr))| langevin_row(u, row, xr, gr));
    }

    fn mlp_chain_supported(&self, _widths: &[usize], _activations: &[Activation]) -> bool {
        true
    }

    fn mlp_langevin_chain(&self, chain: &MlpChain, params: &[&Vec<f32>], x: &mut Vec<f32>) {
        let _op = self.op("mlp_langevin_chain");
        let params: Vec<&[f32]> = params.iter().map(|p| p.as_slice()).collect();
        mlp_chain::run(chain, &params, x);
    }

    fn sum_squares(&self, x: &Vec<f32>, out: &mut Vec<f32>, slot: usize) {
        let _op = self.op("sum_squares");
        out[slot] = x.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>() as f32;
    }

    fn adam_update(
        &self,
        u: &AdamUpdate,
        param: &mut Vec<f32>,
        grad: &Vec<f32>,
        m: &mut Vec<f32>,
        v: &mut Vec<f32>,
        norms: &Vec<f32>,
    ) {
        let _op = self.op("adam_update");
        let scale = match u.max_grad_norm {
            Some(c) => {
                let norm = norms[..u.norm_slots].iter().sum::<f32>().sqrt();
                (c / (norm + 1e-6)).min(1.0)
            }
            None => 1.0,
        };
        for (((p, &g), m), v) in param
            .iter_mut()
            .zip(grad)
            .zip(m.iter_mut())
            .zip(v.iter_mut())
        {
            let g = g * scale;
            *m = u.beta1 * *m + (1.0 - u.beta1) * g;
            *v = u.beta2 * *v + (1.0 - u.beta2) * g * g;
            let m_hat = *m / u.bias_correction1;
            let v_hat = *v / u.bias_correction2;
            *p -= u.lr * m_hat / (v_hat.sqrt() + u.eps);
        }
    }

    fn replay_draw(
        &self,
        d: &ReplayDraw,
        buffer: &Vec<f32>,
        x: &mut Vec<f32>,
        indices: &mut Vec<f32>,
    ) {
        let _op = self.op("replay_draw");
        let dim = d.dim;
        for (j, row) in x[..d.batch * dim].chunks_mut(dim).enumerate() {
            let j32 = j as u32;
            let pick = rng::uniform_at(d.seed, j32, 0, d.iteration, Stream::ReplayDraw);
            let index = rng::index_from_uniform(pick, d.capacity);
            indices[j] = index as f32;
            if rng::uniform_at(d.seed, j32, 1, d.iteration, Stream::ReplayDraw) < d.reinit_prob {
                rng::fill_uniform(
                    d.seed,
                    j32,
                    d.iteration,
                    Stream::ReplayReinit,
                    d.lo,
                    d.hi,
                    row,
                );
            } else {
                row.copy_from_slice(&buffer[index * dim..(index + 1) * dim]);
            }
        }
    }

    fn replay_scatter(
        &self,
        d: &ReplayDraw,
        x: &Vec<f32>,
        indices: &Vec<f32>,
        buffer: &mut Vec<f32>,
    ) {
        let _op = self.op("replay_scatter");
        let dim = d.dim;
        // In draw order, so that a later draw of the same chain overwrites an earlier one.
        for (j, row) in x[..d.batch * dim].chunks(dim).enumerate() {
            let index = indices[j] as usize;
            buffer[index * dim..(index + 1) * dim].copy_from_slice(row);
        }
    }
}
