//! `impl Backend for GpuBackend`: tensor memory, synchronisation, counters and profiling
//! are implemented here; every kernel op forwards to the inherent method of the same name
//! in `layers.rs`, `general.rs` or `algorithms.rs`.

use super::recording::tensor_usage;
use super::*;

impl Backend for GpuBackend {
    type Tensor = GpuTensor;

    fn name(&self) -> String {
        format!("{} ({})", self.report.name, self.report.backend)
    }

    fn is_gpu(&self) -> bool {
        true
    }

    fn zeros(&self, len: usize) -> Result<GpuTensor> {
        Ok(GpuTensor {
            buffer: self.storage_buffer(len)?,
            len,
        })
    }

    fn upload(&self, data: &[f32]) -> Result<GpuTensor> {
        if data.is_empty() {
            return self.zeros(0);
        }
        // A new buffer filled at creation: nothing recorded can refer to it yet, so there is
        // no ordering to respect.
        let bytes = data.len() as u64 * 4;
        if bytes > self.storage_limit() {
            return Err(Error::Gpu(format!(
                "a tensor of {} f32 values exceeds the device's storage buffer limit",
                data.len()
            )));
        }
        let buffer = self
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: None,
                contents: bytemuck::cast_slice(data),
                usage: tensor_usage(),
            });
        Ok(GpuTensor {
            buffer,
            len: data.len(),
        })
    }

    fn write(&self, dst: &mut GpuTensor, offset: usize, data: &[f32]) -> Result<()> {
        if offset + data.len() > dst.len {
            return Err(Error::Shape(format!(
                "write of {} values at offset {offset} into a tensor of {}",
                data.len(),
                dst.len
            )));
        }
        if data.is_empty() {
            return Ok(());
        }
        // Not queue.write_buffer: that would land before the whole pending command buffer,
        // i.e. before ops recorded earlier that may still read the old contents.
        let staging = self
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("write staging"),
                contents: bytemuck::cast_slice(data),
                usage: wgpu::BufferUsages::COPY_SRC,
            });
        let size = data.len() as u64 * 4;
        self.record(|e| e.copy_buffer_to_buffer(&staging, 0, &dst.buffer, offset as u64 * 4, size));
        Ok(())
    }

    fn read(&self, src: &GpuTensor) -> Result<Vec<f32>> {
        let bytes = self.read_bytes(&src.buffer, src.len as u64 * 4)?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    fn len(&self, t: &GpuTensor) -> usize {
        t.len
    }

    fn copy(&self, src: &GpuTensor, so: usize, dst: &mut GpuTensor, d: usize, len: usize) {
        if !self.check(so + len <= src.len && d + len <= dst.len, || {
            format!(
                "copy of {len} values from {so} of a tensor of {} to {d} of a tensor of {}",
                src.len, dst.len
            )
        }) || len == 0
        {
            return;
        }
        self.record(|e| {
            e.copy_buffer_to_buffer(
                &src.buffer,
                so as u64 * 4,
                &dst.buffer,
                d as u64 * 4,
                len as u64 * 4,
            )
        });
    }

    fn fill(&self, dst: &mut GpuTensor, value: f32) {
        if dst.len == 0 {
            return;
        }
        if value.to_bits() == 0 {
            // +0.0 is all zero bytes: a plain clear, no kernel.
            self.record(|e| e.clear_buffer(&dst.buffer, 0, None));
            return;
        }
        let Some(groups) = self.grid_1d(dst.len) else {
            return;
        };
        let params = kernels::FillParams {
            n: dst.len as u32,
            value,
        };
        self.dispatch(&kernels::FILL, &[dst], &params, groups);
    }

    fn keep_known(&self, x: &mut GpuTensor, known: &GpuTensor, mask: &GpuTensor) {
        self.keep_known(x, known, mask)
    }

    fn flag_non_finite(&self, x: &GpuTensor, flags: &mut GpuTensor, slot: usize, mark: f32) {
        self.flag_non_finite(x, flags, slot, mark)
    }

    fn wait(&self) -> Result<()> {
        self.submit_pending();
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| self.device_error("waiting for the device", e))?;
        self.take_error()
    }

    fn flush(&self) -> Result<()> {
        if self.submit_pending().is_some() {
            // Reclaim finished submissions without waiting for this one.
            self.device
                .poll(wgpu::PollType::Poll)
                .map_err(|e| self.device_error("polling the device", e))?;
        }
        self.take_error()
    }

    fn counters(&self) -> Counters {
        Counters {
            submissions: self.submissions.load(Ordering::Relaxed),
            readbacks: self.readbacks.load(Ordering::Relaxed),
            dispatches: self.dispatches.load(Ordering::Relaxed),
        }
    }

    fn set_profiling(&self, on: bool) -> ProfileSupport {
        if !self
            .device
            .features()
            .contains(wgpu::Features::TIMESTAMP_QUERY)
        {
            return ProfileSupport::Unsupported(format!(
                "{} has no timestamp queries, so kernel times are not available",
                self.name()
            ));
        }
        let profiler = self
            .profiler
            .get_or_init(|| Box::new(profiler::Profiler::new(&self.device, &self.queue)));
        profiler.set(on);
        ProfileSupport::Supported {
            source: profiler::SOURCE,
        }
    }

    fn take_profile(&self) -> Result<Profile> {
        let Some(p) = self.profiler.get() else {
            return Ok(Profile::default());
        };
        self.take_error()?;
        if p.has_unresolved() {
            self.record(|e| p.resolve_pending(&self.device, e));
        }
        if !p.has_batches() {
            return p.collect(&self.device, None);
        }
        self.readbacks.fetch_add(1, Ordering::Relaxed);
        let index = self.submit_pending();
        let profile = p.collect(&self.device, index);
        self.take_error()?;
        profile
    }

    fn linear_forward(
        &self,
        s: LinearShape,
        x: &GpuTensor,
        w: &GpuTensor,
        b: &GpuTensor,
        y: &mut GpuTensor,
    ) {
        self.linear_forward(s, x, w, b, y)
    }

    fn linear_backward_data(
        &self,
        s: LinearShape,
        dy: &GpuTensor,
        w: &GpuTensor,
        dx: &mut GpuTensor,
    ) {
        self.linear_backward_data(s, dy, w, dx)
    }

    fn linear_backward_params(
        &self,
        s: LinearShape,
        dy: &GpuTensor,
        x: &GpuTensor,
        dw: &mut GpuTensor,
        db: &mut GpuTensor,
    ) {
        self.linear_backward_params(s, dy, x, dw, db)
    }

    fn conv2d_forward(
        &self,
        s: Conv2dShape,
        x: &GpuTensor,
        w: &GpuTensor,
        b: &GpuTensor,
        y: &mut GpuTensor,
    ) {
        self.conv2d_forward(s, x, w, b, y)
    }

    fn conv2d_backward_data(
        &self,
        s: Conv2dShape,
        dy: &GpuTensor,
        w: &GpuTensor,
        dx: &mut GpuTensor,
    ) {
        self.conv2d_backward_data(s, dy, w, dx)
    }

    fn conv2d_backward_params(
        &self,
        s: Conv2dShape,
        dy: &GpuTensor,
        x: &GpuTensor,
        dw: &mut GpuTensor,
        db: &mut GpuTensor,
    ) {
        self.conv2d_backward_params(s, dy, x, dw, db)
    }

    fn avg_pool_forward(&self, s: PoolShape, x: &GpuTensor, y: &mut GpuTensor) {
        self.avg_pool_forward(s, x, y)
    }

    fn avg_pool_backward(&self, s: PoolShape, dy: &GpuTensor, dx: &mut GpuTensor) {
        self.avg_pool_backward(s, dy, dx)
    }

    fn activation_forward(&self, act: Activation, x: &GpuTensor, y: &mut GpuTensor) {
        self.activation_forward(act, x, y)
    }

    fn activation_backward(
        &self,
        act: Activation,
        x: &GpuTensor,
        dy: &GpuTensor,
        dx: &mut GpuTensor,
    ) {
        self.activation_backward(act, x, dy, dx)
    }

    fn add(&self, a: &GpuTensor, b: &GpuTensor, y: &mut GpuTensor, len: usize) {
        self.add(a, b, y, len)
    }

    fn axpy(&self, alpha: f32, x: &GpuTensor, y: &mut GpuTensor, len: usize) {
        self.axpy(alpha, x, y, len)
    }

    fn scale(&self, alpha: f32, x: &mut GpuTensor, len: usize) {
        self.scale(alpha, x, len)
    }

    fn row_sum(&self, rows: usize, cols: usize, alpha: f32, x: &GpuTensor, y: &mut GpuTensor) {
        self.row_sum(rows, cols, alpha, x, y)
    }

    fn broadcast_rows(
        &self,
        rows: usize,
        cols: usize,
        alpha: f32,
        s: &GpuTensor,
        y: &mut GpuTensor,
    ) {
        self.broadcast_rows(rows, cols, alpha, s, y)
    }

    fn row_logsumexp(&self, rows: usize, cols: usize, x: &GpuTensor, y: &mut GpuTensor) {
        self.row_logsumexp(rows, cols, x, y)
    }

    fn row_softmax(&self, rows: usize, cols: usize, x: &GpuTensor, y: &mut GpuTensor) {
        self.row_softmax(rows, cols, x, y)
    }

    fn scale_rows(
        &self,
        rows: usize,
        cols: usize,
        alpha: f32,
        x: &GpuTensor,
        s: &GpuTensor,
        y: &mut GpuTensor,
    ) {
        self.scale_rows(rows, cols, alpha, x, s, y)
    }

    fn gather_cols(
        &self,
        rows: usize,
        cols: usize,
        x: &GpuTensor,
        index: &GpuTensor,
        y: &mut GpuTensor,
    ) {
        self.gather_cols(rows, cols, x, index, y)
    }

    fn scatter_cols(
        &self,
        rows: usize,
        cols: usize,
        alpha: f32,
        dy: &GpuTensor,
        index: &GpuTensor,
        dx: &mut GpuTensor,
    ) {
        self.scatter_cols(rows, cols, alpha, dy, index, dx)
    }

    fn upsample_forward(&self, s: UpsampleShape, x: &GpuTensor, y: &mut GpuTensor) {
        self.upsample_forward(s, x, y)
    }

    fn upsample_backward(&self, s: UpsampleShape, dy: &GpuTensor, dx: &mut GpuTensor) {
        self.upsample_backward(s, dy, dx)
    }

    fn channel_bias_add(&self, s: ChannelShape, bias: &GpuTensor, y: &mut GpuTensor) {
        self.channel_bias_add(s, bias, y)
    }

    fn channel_sum(&self, s: ChannelShape, dy: &GpuTensor, db: &mut GpuTensor) {
        self.channel_sum(s, dy, db)
    }

    fn spectral_norm_forward(
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
        self.spectral_norm_forward(rows, cols, w, u, v, sigma, w_sn, iterate)
    }

    fn spectral_norm_backward(
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
        self.spectral_norm_backward(rows, cols, g, w_sn, u, v, sigma, dw)
    }

    fn cd_loss(
        &self,
        energies: &GpuTensor,
        n_pos: usize,
        alpha: f32,
        d_energy: &mut GpuTensor,
        stats: &mut GpuTensor,
    ) {
        self.cd_loss(energies, n_pos, alpha, d_energy, stats)
    }

    fn langevin_update(&self, u: &LangevinUpdate, x: &mut GpuTensor, grad: &GpuTensor) {
        self.langevin_update(u, x, grad)
    }

    fn mlp_chain_supported(&self, widths: &[usize], activations: &[Activation]) -> bool {
        self.mlp_chain_supported(widths, activations)
    }

    fn mlp_langevin_chain(&self, chain: &MlpChain, params: &[&GpuTensor], x: &mut GpuTensor) {
        self.mlp_langevin_chain(chain, params, x)
    }

    fn sum_squares(&self, x: &GpuTensor, out: &mut GpuTensor, slot: usize) {
        self.sum_squares(x, out, slot)
    }

    fn adam_update(
        &self,
        u: &AdamUpdate,
        param: &mut GpuTensor,
        grad: &GpuTensor,
        m: &mut GpuTensor,
        v: &mut GpuTensor,
        norms: &GpuTensor,
    ) {
        self.adam_update(u, param, grad, m, v, norms)
    }

    fn replay_draw(
        &self,
        d: &ReplayDraw,
        buffer: &GpuTensor,
        x: &mut GpuTensor,
        indices: &mut GpuTensor,
    ) {
        self.replay_draw(d, buffer, x, indices)
    }

    fn replay_scatter(
        &self,
        d: &ReplayDraw,
        x: &GpuTensor,
        indices: &GpuTensor,
        buffer: &mut GpuTensor,
    ) {
        self.replay_scatter(d, x, indices, buffer)
    }
}
