//! Algorithm kernels: health flags, spectral norm, the contrastive-divergence loss, Langevin
//! updates and the fused MLP Langevin chain, Adam, and replay-buffer draws. The [`Backend`]
//! impl in `ops.rs` calls these.

use super::*;

impl GpuBackend {
    /// The spectral-norm kernels' parameters (`flag` 0, `n` = rows·cols) after checking
    /// that every tensor holds what the op needs (`(have, need)` pairs) and that indices fit
    /// u32; `None` (error deferred) otherwise, and also for an empty matrix, which has
    /// nothing to do.
    pub(super) fn sn_params(
        &self,
        op: &str,
        rows: usize,
        cols: usize,
        lens: &[(usize, usize)],
    ) -> Option<SnParams> {
        let n = rows.saturating_mul(cols);
        if !self.check(
            lens.iter().all(|(have, need)| have >= need) && n <= u32::MAX as usize,
            || {
                format!(
                    "{op} [{rows}, {cols}]: tensors of {lens:?} (have, need) values (at most \
                     2³² − 1 values)"
                )
            },
        ) || n == 0
        {
            return None;
        }
        Some(SnParams {
            rows: rows as u32,
            cols: cols as u32,
            flag: 0,
            n: n as u32,
        })
    }

    pub(super) fn flag_non_finite(
        &self,
        x: &GpuTensor,
        flags: &mut GpuTensor,
        slot: usize,
        mark: f32,
    ) {
        if !self.check(slot < flags.len, || {
            format!("flag_non_finite: slot {slot} of {} flags", flags.len)
        }) || x.len == 0
        {
            return;
        }
        let Some(groups) = self.grid_1d(x.len) else {
            return;
        };
        let params = kernels::HealthParams {
            n: x.len as u32,
            slot: slot as u32,
            mark,
        };
        self.dispatch(&kernels::FLAG_NON_FINITE, &[x, flags], &params, groups);
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
        let Some(params) = self.sn_params(
            "spectral_norm_forward",
            rows,
            cols,
            &[
                (w.len, n),
                (u.len, rows),
                (v.len, cols),
                (sigma.len, 1),
                (w_sn.len, n),
            ],
        ) else {
            return;
        };
        let (Some(columns), Some(row_groups), Some(values)) =
            (self.grid_1d(cols), self.grid(rows), self.grid_1d(n))
        else {
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
        let Some(params) = self.sn_params(
            "spectral_norm_backward",
            rows,
            cols,
            &[
                (g.len, n),
                (w_sn.len, n),
                (u.len, rows),
                (v.len, cols),
                (sigma.len, 1),
                (dw.len, n),
            ],
        ) else {
            return;
        };
        let (Some(row_groups), Some(rest)) = (self.grid(rows), self.grid_1d(n)) else {
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

    pub(super) fn cd_loss(
        &self,
        energies: &GpuTensor,
        n_pos: usize,
        alpha: f32,
        d_energy: &mut GpuTensor,
        stats: &mut GpuTensor,
    ) {
        let n = energies.len;
        if !self.check(
            n_pos <= n && d_energy.len >= n && stats.len >= stat::LEN && n <= u32::MAX as usize,
            || {
                format!(
                    "cd_loss: {n} energies, n_pos {n_pos}, d_energy {}, stats {}",
                    d_energy.len, stats.len
                )
            },
        ) {
            return;
        }
        let params = kernels::CdParams {
            n: n as u32,
            n_pos: n_pos as u32,
            alpha,
        };
        self.dispatch(
            &kernels::CD_LOSS,
            &[energies, d_energy, stats],
            &params,
            (1, 1, 1),
        );
    }

    pub(super) fn langevin_update(&self, u: &LangevinUpdate, x: &mut GpuTensor, grad: &GpuTensor) {
        let len = u.rows * u.dim;
        if !self.check(x.len >= len && grad.len >= len, || {
            format!(
                "langevin_update of {}×{}: x {}, grad {}",
                u.rows, u.dim, x.len, grad.len
            )
        }) || len == 0
        {
            return;
        }
        let blocks = u.dim.div_ceil(4);
        let Some(groups) = self.grid_1d(u.rows * blocks) else {
            return;
        };
        let (seed_lo, seed_hi) = seed_words(u.seed);
        let params = kernels::LangevinParams {
            rows: u.rows as u32,
            dim: u.dim as u32,
            blocks_per_row: blocks as u32,
            step: u.step,
            noise: u.noise,
            clip: u.grad_clip.unwrap_or(0.0),
            has_clip: u32::from(u.grad_clip.is_some()),
            lo: u.lo,
            hi: u.hi,
            seed_lo,
            seed_hi,
            global_step: u.global_step,
            chain_offset: u.chain_offset,
        };
        self.dispatch(&kernels::LANGEVIN_UPDATE, &[x, grad], &params, groups);
    }

    pub(super) fn mlp_chain_supported(&self, widths: &[usize], activations: &[Activation]) -> bool {
        let r = &self.report;
        let slopes = activations.iter().filter_map(|a| match a {
            Activation::LeakyRelu(s) => Some(s.to_bits()),
            _ => None,
        });
        let one_slope = slopes.clone().min() == slopes.max();
        widths.len() >= 2
            && widths.len() - 2 <= kernels::MLP_CHAIN_MAX_HIDDEN
            && widths
                .iter()
                .all(|&w| w > 0 && w <= kernels::MLP_CHAIN_MAX_WIDTH)
            && one_slope
            && r.max_compute_workgroup_storage_size >= kernels::MLP_CHAIN_WORKGROUP_BYTES
            && r.max_compute_invocations_per_workgroup >= kernels::MLP_CHAIN_WORKGROUP
            && r.max_immediate_size as usize >= std::mem::size_of::<kernels::MlpChainParams>()
    }

    pub(super) fn mlp_langevin_chain(
        &self,
        chain: &MlpChain,
        params: &[&GpuTensor],
        x: &mut GpuTensor,
    ) {
        let u = &chain.update;
        let w = &chain.widths;
        if !self.check(
            chain.is_well_formed() && self.mlp_chain_supported(w, &chain.activations),
            || format!("the fused MLP chain kernel cannot run widths {w:?}"),
        ) {
            return;
        }
        let expected: Vec<usize> = w.windows(2).flat_map(|io| [io[0] * io[1], io[1]]).collect();
        let lens: Vec<usize> = params.iter().map(|t| t.len).collect();
        if !self.check(lens == expected && x.len >= u.rows * u.dim, || {
            format!(
                "mlp_langevin_chain of widths {w:?}: parameter lengths {lens:?} (expected \
                 {expected:?}), x {} for {} rows",
                x.len, u.rows
            )
        }) || u.rows == 0
            || chain.steps == 0
        {
            return;
        }
        let Some(groups) = self.grid(u.rows.div_ceil(kernels::MLP_CHAIN_CHAINS)) else {
            return;
        };
        let total: usize = expected.iter().sum();
        let mut packed = lock(&self.mlp_params);
        if packed.as_ref().is_none_or(|t| t.len < total) {
            match self.zeros(total) {
                Ok(t) => *packed = Some(t),
                Err(e) => return self.defer_error(e),
            }
        }
        let Some(packed) = packed.as_mut() else {
            return;
        };
        let mut offset = 0;
        for t in params {
            self.copy(t, 0, packed, offset, t.len);
            offset += t.len;
        }
        let mut widths = [0u32; 8];
        for (slot, &width) in widths.iter_mut().zip(w) {
            *slot = width as u32;
        }
        let mut codes = 0u32;
        let mut slope = 0.0f32;
        for (l, a) in chain.activations.iter().enumerate() {
            let code = match *a {
                Activation::Relu => 0,
                Activation::LeakyRelu(s) => {
                    slope = s;
                    1
                }
                Activation::Silu => 2,
                Activation::Tanh => 3,
                Activation::Sigmoid => 4,
                Activation::Softplus => 5,
            };
            codes |= code << (4 * l);
        }
        let (seed_lo, seed_hi) = seed_words(u.seed);
        let p = kernels::MlpChainParams {
            widths,
            rows: u.rows as u32,
            layers: (w.len() - 1) as u32,
            activations: codes,
            slope,
            steps: chain.steps as u32,
            step: u.step,
            noise: u.noise,
            clip: u.grad_clip.unwrap_or(0.0),
            has_clip: u32::from(u.grad_clip.is_some()),
            lo: u.lo,
            hi: u.hi,
            seed_lo,
            seed_hi,
            global_step: u.global_step,
            chain_offset: u.chain_offset,
        };
        self.dispatch(&kernels::MLP_LANGEVIN_CHAIN, &[packed, x], &p, groups);
    }

    pub(super) fn sum_squares(&self, x: &GpuTensor, out: &mut GpuTensor, slot: usize) {
        if !self.check(slot < out.len && x.len <= u32::MAX as usize, || {
            format!("sum_squares into slot {slot} of a tensor of {}", out.len)
        }) {
            return;
        }
        let params = kernels::SumSqParams {
            n: x.len as u32,
            slot: slot as u32,
        };
        self.dispatch(&kernels::SUM_SQUARES, &[x, out], &params, (1, 1, 1));
    }

    pub(super) fn adam_update(
        &self,
        u: &AdamUpdate,
        param: &mut GpuTensor,
        grad: &GpuTensor,
        m: &mut GpuTensor,
        v: &mut GpuTensor,
        norms: &GpuTensor,
    ) {
        let n = param.len.min(grad.len).min(m.len).min(v.len);
        if !self.check(
            u.max_grad_norm.is_none() || u.norm_slots <= norms.len,
            || {
                format!(
                    "adam_update: {} norm slots in a tensor of {}",
                    u.norm_slots, norms.len
                )
            },
        ) {
            return;
        }
        let Some(groups) = self.grid_1d(n).filter(|_| n > 0) else {
            return;
        };
        let params = kernels::AdamParams {
            n: n as u32,
            lr: u.lr,
            beta1: u.beta1,
            beta2: u.beta2,
            eps: u.eps,
            bias_correction1: u.bias_correction1,
            bias_correction2: u.bias_correction2,
            max_grad_norm: u.max_grad_norm.unwrap_or(0.0),
            has_clip: u32::from(u.max_grad_norm.is_some()),
            norm_slots: u.norm_slots as u32,
        };
        self.dispatch(
            &kernels::ADAM_UPDATE,
            &[param, grad, m, v, norms],
            &params,
            groups,
        );
    }

    pub(super) fn replay_draw(
        &self,
        d: &ReplayDraw,
        buffer: &GpuTensor,
        x: &mut GpuTensor,
        indices: &mut GpuTensor,
    ) {
        if !self.check(
            d.capacity > 0
                && d.capacity < 1 << 24
                && buffer.len >= d.capacity * d.dim
                && x.len >= d.batch * d.dim
                && indices.len >= d.batch,
            || {
                format!(
                    "replay_draw {d:?}: buffer {}, x {}, indices {} (capacity must be in 1..2^24)",
                    buffer.len, x.len, indices.len
                )
            },
        ) || d.batch == 0
        {
            return;
        }
        let blocks = d.dim.div_ceil(4).max(1);
        let Some(groups) = self.grid_1d(d.batch * blocks) else {
            return;
        };
        let (seed_lo, seed_hi) = seed_words(d.seed);
        let params = kernels::DrawParams {
            capacity: d.capacity as u32,
            batch: d.batch as u32,
            dim: d.dim as u32,
            blocks_per_row: blocks as u32,
            reinit_prob: d.reinit_prob,
            lo: d.lo,
            hi: d.hi,
            seed_lo,
            seed_hi,
            iteration: d.iteration,
        };
        self.dispatch(
            &kernels::REPLAY_DRAW,
            &[buffer, x, indices],
            &params,
            groups,
        );
    }

    pub(super) fn replay_scatter(
        &self,
        d: &ReplayDraw,
        x: &GpuTensor,
        indices: &GpuTensor,
        buffer: &mut GpuTensor,
    ) {
        if !self.check(
            buffer.len >= d.capacity * d.dim && x.len >= d.batch * d.dim && indices.len >= d.batch,
            || {
                format!(
                    "replay_scatter {d:?}: buffer {}, x {}, indices {}",
                    buffer.len, x.len, indices.len
                )
            },
        ) || d.batch == 0
            || d.dim == 0
        {
            return;
        }
        // One workgroup per drawn row.
        let Some(groups) = self.grid(d.batch) else {
            return;
        };
        let params = kernels::ScatterParams {
            capacity: d.capacity as u32,
            batch: d.batch as u32,
            dim: d.dim as u32,
        };
        self.dispatch(
            &kernels::REPLAY_SCATTER,
            &[x, indices, buffer],
            &params,
            groups,
        );
    }
}

/// Low and high words of a seed: the Philox key.
fn seed_words(seed: u64) -> (u32, u32) {
    (seed as u32, (seed >> 32) as u32)
}
