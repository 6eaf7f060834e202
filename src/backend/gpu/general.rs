//! General ops: elementwise arithmetic (elementwise.wgsl) and row/column kernels
//! (rows.wgsl: reductions, softmax, gather/scatter). The [`Backend`] impl in `ops.rs` calls these.

use super::dispatch::{elt_params, row_params};
use super::*;

impl GpuBackend {
    /// One elementwise kernel of elementwise.wgsl over `n` values, one thread each, after
    /// checking that every tensor holds what the op reads or writes (`need`, per buffer in
    /// binding order) and that indices fit the kernels' u32 arithmetic.
    pub(super) fn elementwise(
        &self,
        k: &Kernel,
        buffers: &[&GpuTensor],
        need: &[usize],
        params: EltParams,
        n: usize,
    ) {
        let lens: Vec<usize> = buffers.iter().map(|t| t.len).collect();
        if !self.check(
            lens.iter().zip(need).all(|(have, need)| have >= need) && n <= u32::MAX as usize,
            || {
                format!(
                    "{}: tensors of {lens:?} values, the op needs {need:?} (at most 2³² − 1 \
                     values)",
                    k.entry
                )
            },
        ) || n == 0
        {
            return;
        }
        let Some(groups) = self.grid_1d(n) else {
            return;
        };
        self.dispatch(k, buffers, &params, groups);
    }

    /// One kernel of rows.wgsl, after the same checks as [`Self::elementwise`] with `largest`
    /// the longest index range the kernel computes; `work` is the number of workgroups (the
    /// reductions: one per row or channel) or, with `per_thread`, of threads (gather and
    /// scatter).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn rows_kernel(
        &self,
        k: &Kernel,
        buffers: &[&GpuTensor],
        need: &[usize],
        params: RowParams,
        work: usize,
        per_thread: bool,
        largest: usize,
    ) {
        let lens: Vec<usize> = buffers.iter().map(|t| t.len).collect();
        if !self.check(
            lens.iter().zip(need).all(|(have, need)| have >= need) && largest <= u32::MAX as usize,
            || {
                format!(
                    "{}: tensors of {lens:?} values, the op needs {need:?} (at most 2³² − 1 \
                     values)",
                    k.entry
                )
            },
        ) || work == 0
        {
            return;
        }
        let groups = if per_thread {
            self.grid_1d(work)
        } else {
            self.grid(work)
        };
        let Some(groups) = groups else {
            return;
        };
        self.dispatch(k, buffers, &params, groups);
    }

    pub(super) fn keep_known(&self, x: &mut GpuTensor, known: &GpuTensor, mask: &GpuTensor) {
        if !self.check(known.len >= x.len && mask.len >= x.len, || {
            format!(
                "keep_known: x {}, known {}, mask {}",
                x.len, known.len, mask.len
            )
        }) || x.len == 0
        {
            return;
        }
        let Some(groups) = self.grid_1d(x.len) else {
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
        self.elementwise(&kernels::ADD, &[a, b, y], &[len; 3], params, len);
    }

    pub(super) fn axpy(&self, alpha: f32, x: &GpuTensor, y: &mut GpuTensor, len: usize) {
        let params = elt_params(len, 0, 0, alpha);
        self.elementwise(&kernels::AXPY, &[x, y], &[len; 2], params, len);
    }

    pub(super) fn scale(&self, alpha: f32, x: &mut GpuTensor, len: usize) {
        let params = elt_params(len, 0, 0, alpha);
        self.elementwise(&kernels::SCALE, &[x], &[len], params, len);
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
        let need = [rows * cols, rows];
        self.rows_kernel(
            &kernels::ROW_SUM,
            &[x, y],
            &need,
            params,
            rows,
            false,
            rows * cols,
        );
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
        self.elementwise(&kernels::BROADCAST_ROWS, &[s, y], &[rows, n], params, n);
    }

    pub(super) fn row_logsumexp(&self, rows: usize, cols: usize, x: &GpuTensor, y: &mut GpuTensor) {
        let params = row_params(rows, cols, 0, 0.0);
        let need = [rows * cols, rows];
        let k = &kernels::ROW_LOGSUMEXP;
        self.rows_kernel(k, &[x, y], &need, params, rows, false, rows * cols);
    }

    pub(super) fn row_softmax(&self, rows: usize, cols: usize, x: &GpuTensor, y: &mut GpuTensor) {
        let params = row_params(rows, cols, 0, 0.0);
        let need = [rows * cols; 2];
        let k = &kernels::ROW_SOFTMAX;
        self.rows_kernel(k, &[x, y], &need, params, rows, false, rows * cols);
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
        self.elementwise(&kernels::SCALE_ROWS, &[x, s, y], &[n, rows, n], params, n);
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
        let need = [rows * cols, rows, rows];
        let k = &kernels::GATHER_COLS;
        self.rows_kernel(k, &[x, index, y], &need, params, rows, true, rows * cols);
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
        let need = [rows, rows, n];
        let k = &kernels::SCATTER_COLS;
        self.rows_kernel(k, &[dy, index, dx], &need, params, n, true, n);
    }
}
