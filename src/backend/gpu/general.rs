//! General ops: elementwise arithmetic (elementwise.wgsl) and row/column kernels
//! (rows.wgsl: reductions, softmax, gather/scatter). The [`Backend`] impl in `ops.rs` calls these.

use super::dispatch::{elt_params, row_params};
use super::*;

impl GpuBackend {
    /// One elementwise kernel of elementwise.wgsl over `n` values, one thread each (lengths
    /// checked above the backend), after checking that indices fit the kernels' u32
    /// arithmetic.
    pub(super) fn elementwise(
        &self,
        k: &WgslEntry,
        buffers: &[&GpuTensor],
        params: EltParams,
        n: usize,
    ) {
        if self.refuse(self.dim_u32(n).map(drop)) || n == 0 {
            return;
        }
        let Some(groups) = self.grid_1d_or_defer(n) else {
            return;
        };
        self.dispatch(k, buffers, &params, groups);
    }

    /// One kernel of rows.wgsl, after the same check as [`Self::elementwise`] with `largest`
    /// the longest index range the kernel computes; `work` is the number of workgroups (the
    /// reductions: one per row or channel) or, with `per_thread`, of threads (gather and
    /// scatter).
    pub(super) fn rows_kernel(
        &self,
        k: &WgslEntry,
        buffers: &[&GpuTensor],
        params: RowParams,
        work: usize,
        per_thread: bool,
        largest: usize,
    ) {
        if self.refuse(self.dim_u32(largest).map(drop)) || work == 0 {
            return;
        }
        let groups = if per_thread {
            self.grid_1d_or_defer(work)
        } else {
            self.grid_or_defer(work)
        };
        let Some(groups) = groups else {
            return;
        };
        self.dispatch(k, buffers, &params, groups);
    }

    pub(super) fn keep_known(&self, x: &mut GpuTensor, known: &GpuTensor, mask: &GpuTensor) {
        if x.len == 0 {
            return;
        }
        let Some(groups) = self.grid_1d_or_defer(x.len) else {
            return;
        };
        let params = kernels::FillParams {
            n: x.len as u32,
            value: 0.0,
        };
        self.dispatch(&kernels::KEEP_KNOWN, &[x, known, mask], &params, groups);
    }

    pub(super) fn add(&self, a: &GpuTensor, b: &GpuTensor, y: &mut GpuTensor, len: usize) {
        let params = elt_params(len, 0, 0, 0.0);
        self.elementwise(&kernels::ADD, &[a, b, y], params, len);
    }

    pub(super) fn axpy(&self, alpha: f32, x: &GpuTensor, y: &mut GpuTensor, len: usize) {
        let params = elt_params(len, 0, 0, alpha);
        self.elementwise(&kernels::AXPY, &[x, y], params, len);
    }

    pub(super) fn scale(&self, alpha: f32, x: &mut GpuTensor, len: usize) {
        let params = elt_params(len, 0, 0, alpha);
        self.elementwise(&kernels::SCALE, &[x], params, len);
    }

    pub(super) fn row_sum(
        &self,
        rows: usize,
        cols: usize,
        alpha: f32,
        x: &GpuTensor,
        y: &mut GpuTensor,
    ) {
        let params = row_params(rows, cols, 0, alpha);
        self.rows_kernel(&kernels::ROW_SUM, &[x, y], params, rows, false, rows * cols);
    }

    pub(super) fn broadcast_rows(
        &self,
        rows: usize,
        cols: usize,
        alpha: f32,
        s: &GpuTensor,
        y: &mut GpuTensor,
    ) {
        let n = rows * cols;
        let params = elt_params(n, cols, 0, alpha);
        self.elementwise(&kernels::BROADCAST_ROWS, &[s, y], params, n);
    }

    pub(super) fn row_logsumexp(&self, rows: usize, cols: usize, x: &GpuTensor, y: &mut GpuTensor) {
        let params = row_params(rows, cols, 0, 0.0);
        let k = &kernels::ROW_LOGSUMEXP;
        self.rows_kernel(k, &[x, y], params, rows, false, rows * cols);
    }

    pub(super) fn row_softmax(&self, rows: usize, cols: usize, x: &GpuTensor, y: &mut GpuTensor) {
        let params = row_params(rows, cols, 0, 0.0);
        let k = &kernels::ROW_SOFTMAX;
        self.rows_kernel(k, &[x, y], params, rows, false, rows * cols);
    }

    pub(super) fn scale_rows(
        &self,
        rows: usize,
        cols: usize,
        alpha: f32,
        x: &GpuTensor,
        s: &GpuTensor,
        y: &mut GpuTensor,
    ) {
        let n = rows * cols;
        let params = elt_params(n, cols, 0, alpha);
        self.elementwise(&kernels::SCALE_ROWS, &[x, s, y], params, n);
    }

    pub(super) fn gather_cols(
        &self,
        rows: usize,
        cols: usize,
        x: &GpuTensor,
        index: &GpuTensor,
        y: &mut GpuTensor,
    ) {
        // With 0 columns every index is out of range: NaN, as on the CPU.
        let params = row_params(rows, cols, 0, 0.0);
        let k = &kernels::GATHER_COLS;
        self.rows_kernel(k, &[x, index, y], params, rows, true, rows * cols);
    }

    pub(super) fn scatter_cols(
        &self,
        rows: usize,
        cols: usize,
        alpha: f32,
        dy: &GpuTensor,
        index: &GpuTensor,
        dx: &mut GpuTensor,
    ) {
        let n = rows * cols;
        let params = row_params(rows, cols, 0, alpha);
        let k = &kernels::SCATTER_COLS;
        self.rows_kernel(k, &[dy, index, dx], params, n, true, n);
    }

    pub(super) fn sum_squares(&self, x: &GpuTensor, out: &mut GpuTensor, slot: usize) {
        if self.refuse(self.dim_u32(x.len).map(drop)) {
            return;
        }
        let params = kernels::SumSqParams {
            n: x.len as u32,
            slot: slot as u32,
        };
        self.dispatch(&kernels::SUM_SQUARES, &[x, out], &params, (1, 1, 1));
    }
}
