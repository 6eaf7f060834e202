//! `impl Backend for GpuBackend`: tensor memory, synchronisation, counters, profiling and
//! the entry point for algorithm kernels are implemented here; every other op forwards to
//! the inherent method of the same name in `layers.rs`, `general.rs` or `spectral_norm.rs`.

use super::recording::tensor_usage;
use super::*;
use crate::backend::shapes;

impl Backend for GpuBackend {
    type Tensor = GpuTensor;

    fn name(&self) -> String {
        let cores = if self.tensor_cores.is_on() {
            ", tensor cores"
        } else {
            ""
        };
        let tiles = match self.conv_tiles {
            ConvTiles::Square64 => "",
            ConvTiles::Wide128 => ", conv tiles 128",
            ConvTiles::Auto => ", conv tiles auto",
        };
        let group = match self.mlp_chain_group {
            MlpChainGroup::Eight => "",
            MlpChainGroup::Four => ", MLP chains by 4",
        };
        let thin = match self.thin_inputs {
            ThinInputs::Kernel => "",
            ThinInputs::Tiles => ", thin inputs on tiles",
        };
        format!(
            "{} ({}{cores}{tiles}{group}{thin})",
            self.report.name, self.report.backend
        )
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
        if self.refuse(shapes::copy(src.len, so, dst.len, d, len)) || len == 0 {
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
        let Some(groups) = self.grid_1d_or_defer(dst.len) else {
            return;
        };
        let params = kernels::FillParams {
            n: dst.len as u32,
            value,
        };
        self.dispatch(&kernels::FILL, &[dst], &params, groups);
    }

    fn keep_known(&self, x: &mut GpuTensor, known: &GpuTensor, mask: &GpuTensor) {
        if self.refuse(shapes::keep_known(x.len, known.len, mask.len)) {
            return;
        }
        self.keep_known(x, known, mask)
    }

    fn wait(&self) -> Result<()> {
        self.submit_pending();
        self.wait_until(None)?;
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
        if self.refuse(shapes::linear_forward(s, x.len, w.len, b.len, y.len)) {
            return;
        }
        self.linear_forward(s, x, w, b, y)
    }

    fn linear_backward_data(
        &self,
        s: LinearShape,
        dy: &GpuTensor,
        w: &GpuTensor,
        dx: &mut GpuTensor,
    ) {
        if self.refuse(shapes::linear_backward_data(s, dy.len, w.len, dx.len)) {
            return;
        }
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
        if self.refuse(shapes::linear_backward_params(
            s, dy.len, x.len, dw.len, db.len,
        )) {
            return;
        }
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
        if self.refuse(shapes::conv2d_forward(s, x.len, w.len, b.len, y.len)) {
            return;
        }
        self.conv2d_forward(s, x, w, b, y)
    }

    fn conv2d_backward_data(
        &self,
        s: Conv2dShape,
        dy: &GpuTensor,
        w: &GpuTensor,
        dx: &mut GpuTensor,
    ) {
        if self.refuse(shapes::conv2d_backward_data(s, dy.len, w.len, dx.len)) {
            return;
        }
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
        if self.refuse(shapes::conv2d_backward_params(
            s, dy.len, x.len, dw.len, db.len,
        )) {
            return;
        }
        self.conv2d_backward_params(s, dy, x, dw, db)
    }

    fn avg_pool_forward(&self, s: PoolShape, x: &GpuTensor, y: &mut GpuTensor) {
        if self.refuse(shapes::avg_pool_forward(s, x.len, y.len)) {
            return;
        }
        self.avg_pool_forward(s, x, y)
    }

    fn avg_pool_backward(&self, s: PoolShape, dy: &GpuTensor, dx: &mut GpuTensor) {
        if self.refuse(shapes::avg_pool_backward(s, dy.len, dx.len)) {
            return;
        }
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
        if self.refuse(shapes::add(a.len, b.len, y.len, len)) {
            return;
        }
        self.add(a, b, y, len)
    }

    fn axpy(&self, alpha: f32, x: &GpuTensor, y: &mut GpuTensor, len: usize) {
        if self.refuse(shapes::axpy(x.len, y.len, len)) {
            return;
        }
        self.axpy(alpha, x, y, len)
    }

    fn scale(&self, alpha: f32, x: &mut GpuTensor, len: usize) {
        if self.refuse(shapes::scale(x.len, len)) {
            return;
        }
        self.scale(alpha, x, len)
    }

    fn row_sum(&self, rows: usize, cols: usize, alpha: f32, x: &GpuTensor, y: &mut GpuTensor) {
        if self.refuse(shapes::rows("row_sum", rows, cols, x.len, y.len, rows)) {
            return;
        }
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
        if self.refuse(shapes::broadcast_rows(rows, cols, s.len, y.len)) {
            return;
        }
        self.broadcast_rows(rows, cols, alpha, s, y)
    }

    fn row_logsumexp(&self, rows: usize, cols: usize, x: &GpuTensor, y: &mut GpuTensor) {
        if self.refuse(shapes::rows(
            "row_logsumexp",
            rows,
            cols,
            x.len,
            y.len,
            rows,
        )) {
            return;
        }
        self.row_logsumexp(rows, cols, x, y)
    }

    fn row_softmax(&self, rows: usize, cols: usize, x: &GpuTensor, y: &mut GpuTensor) {
        if self.refuse(shapes::rows(
            "row_softmax",
            rows,
            cols,
            x.len,
            y.len,
            rows * cols,
        )) {
            return;
        }
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
        if self.refuse(shapes::scale_rows(rows, cols, x.len, s.len, y.len)) {
            return;
        }
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
        if self.refuse(shapes::gather_cols(rows, cols, x.len, index.len, y.len)) {
            return;
        }
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
        if self.refuse(shapes::scatter_cols(rows, cols, dy.len, index.len, dx.len)) {
            return;
        }
        self.scatter_cols(rows, cols, alpha, dy, index, dx)
    }

    fn upsample_forward(&self, s: UpsampleShape, x: &GpuTensor, y: &mut GpuTensor) {
        if self.refuse(shapes::upsample_forward(s, x.len, y.len)) {
            return;
        }
        self.upsample_forward(s, x, y)
    }

    fn upsample_backward(&self, s: UpsampleShape, dy: &GpuTensor, dx: &mut GpuTensor) {
        if self.refuse(shapes::upsample_backward(s, dy.len, dx.len)) {
            return;
        }
        self.upsample_backward(s, dy, dx)
    }

    fn channel_bias_add(&self, s: ChannelShape, bias: &GpuTensor, y: &mut GpuTensor) {
        if self.refuse(shapes::channel_bias_add(s, bias.len, y.len)) {
            return;
        }
        self.channel_bias_add(s, bias, y)
    }

    fn channel_sum(&self, s: ChannelShape, dy: &GpuTensor, db: &mut GpuTensor) {
        if self.refuse(shapes::channel_sum(s, dy.len, db.len)) {
            return;
        }
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
        if self.refuse(shapes::spectral_norm_forward(
            rows,
            cols,
            [w.len, u.len, v.len, sigma.len, w_sn.len],
        )) {
            return;
        }
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
        if self.refuse(shapes::spectral_norm_backward(
            rows,
            cols,
            [g.len, w_sn.len, u.len, v.len, sigma.len, dw.len],
        )) {
            return;
        }
        self.spectral_norm_backward(rows, cols, g, w_sn, u, v, sigma, dw)
    }

    fn sum_squares(&self, x: &GpuTensor, out: &mut GpuTensor, slot: usize) {
        if self.refuse(shapes::sum_squares(out.len, slot)) {
            return;
        }
        self.sum_squares(x, out, slot)
    }

    fn run(&self, kernel: &dyn Kernel, inputs: &[&GpuTensor], outputs: &mut [&mut GpuTensor]) {
        let in_lens: Vec<usize> = inputs.iter().map(|t| t.len).collect();
        let out_lens: Vec<usize> = outputs.iter().map(|t| t.len).collect();
        if let Err(e) = kernel.check(&in_lens, &out_lens) {
            return self.defer_error(e);
        }
        let outputs: Vec<&GpuTensor> = outputs.iter().map(|t| &**t).collect();
        if let Err(e) = kernel.gpu(self, inputs, &outputs) {
            self.defer_error(e);
        }
    }

    fn supports(&self, kernel: &dyn Kernel) -> bool {
        kernel.runs_on_gpu(self)
    }
}
