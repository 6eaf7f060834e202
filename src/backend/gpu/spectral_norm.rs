//! Spectral normalisation of a weight matrix (forward with its power iteration, and backward),
//! five and four small dispatches. The [`Backend`] impl in `ops.rs` calls these.

use super::*;

impl GpuBackend {
    /// The spectral-norm kernels' parameters (`flag` 0, `n` = rows·cols; lengths checked
    /// above the backend) after checking that indices fit u32; `None` (error deferred)
    /// otherwise, and also for an empty matrix, which has nothing to do.
    pub(super) fn sn_params(&self, rows: usize, cols: usize) -> Option<SnParams> {
        let n = rows.saturating_mul(cols);
        if self.refuse(self.dim_u32(n).map(drop)) || n == 0 {
            return None;
        }
        Some(SnParams {
            rows: rows as u32,
            cols: cols as u32,
            flag: 0,
            n: n as u32,
        })
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn spectral_norm_forward(
        &self,
        rows: usize,
        cols: usize,
        w: &GpuTensor,
        u: &mut GpuTensor,
        v: &mut GpuTensor,
        sigma: &mut GpuTensor,
        w_sn: &mut GpuTensor,
        iterate: bool,
    ) {
        let n = rows * cols;
        let Some(params) = self.sn_params(rows, cols) else {
            return;
        };
        let (Some(columns), Some(row_groups), Some(values)) = (
            self.grid_1d_or_defer(cols),
            self.grid_or_defer(rows),
            self.grid_1d_or_defer(n),
        ) else {
            return;
        };
        let one = (1, 1, 1);
        if iterate {
            self.dispatch(&kernels::SN_WTU, &[w, u, v], &params, columns);
            let norm = SnParams {
                n: cols as u32,
                ..params
            };
            self.dispatch(&kernels::SN_NORMALIZE, &[v], &norm, one);
        }
        // t = W v into the first `rows` values of w_sn, which sn_scale overwrites last.
        self.dispatch(&kernels::SN_WV, &[w, v, w_sn], &params, row_groups);
        let flag = SnParams {
            flag: u32::from(iterate),
            ..params
        };
        self.dispatch(&kernels::SN_SIGMA, &[w_sn, u, sigma], &flag, one);
        self.dispatch(&kernels::SN_SCALE, &[w, sigma, w_sn], &params, values);
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn spectral_norm_backward(
        &self,
        rows: usize,
        cols: usize,
        g: &GpuTensor,
        w_sn: &GpuTensor,
        u: &GpuTensor,
        v: &GpuTensor,
        sigma: &GpuTensor,
        dw: &mut GpuTensor,
    ) {
        let n = rows * cols;
        let Some(params) = self.sn_params(rows, cols) else {
            return;
        };
        let (Some(row_groups), Some(rest)) = (self.grid_or_defer(rows), self.grid_1d_or_defer(n))
        else {
            return;
        };
        let one = (1, 1, 1);
        // ⟨g, w_sn⟩: per-row sums into dw[..rows], then their sum into dw[0].
        self.dispatch(&kernels::SN_ROW_DOT, &[g, w_sn, dw], &params, row_groups);
        self.dispatch(&kernels::SN_SUM_ROWS, &[dw], &params, one);
        // Every value but dw[0] (which holds the dot meanwhile), then dw[0].
        let first = SnParams { flag: 1, ..params };
        self.dispatch(&kernels::SN_BACKWARD, &[g, u, v, sigma, dw], &first, rest);
        let last = SnParams { n: 1, ..params };
        self.dispatch(&kernels::SN_BACKWARD, &[g, u, v, sigma, dw], &last, one);
    }
}
