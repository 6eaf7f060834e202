//! The recording machinery: the pending encoder and its submission, deferred errors,
//! storage buffers, and readback.

use super::*;

impl GpuBackend {
    // ---- recording -------------------------------------------------------------------

    /// Run `f` on the pending encoder, creating it if this is the first op since a submit.
    pub(super) fn record(&self, f: impl FnOnce(&mut wgpu::CommandEncoder)) {
        let mut guard = lock(&self.encoder);
        let encoder = guard.get_or_insert_with(|| {
            self.device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("ebm pending"),
                })
        });
        f(encoder);
    }

    /// Submit the pending encoder, if any; returns whether something was submitted.
    pub(super) fn submit_pending(&self) -> Option<wgpu::SubmissionIndex> {
        let encoder = lock(&self.encoder).take()?;
        let index = self.queue.submit([encoder.finish()]);
        self.submissions.fetch_add(1, Ordering::Relaxed);
        Some(index)
    }

    /// Wait until submission `index` has run, or, for `None`, everything submitted so far.
    pub(super) fn wait_until(&self, index: Option<wgpu::SubmissionIndex>) -> Result<()> {
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: index,
                timeout: None,
            })
            .map(|_| ())
            .map_err(|e| self.device_error("waiting for the device", e))
    }

    /// An error from wgpu while talking to the device; a deferred error (above all a lost
    /// device) explains it better, so it wins.
    pub(super) fn device_error(&self, what: &str, e: impl std::fmt::Display) -> Error {
        match lock(&self.error).take() {
            Some(first) => first,
            None => Error::Gpu(format!("{what}: {e}")),
        }
    }

    /// The first deferred error, if any (and clear it).
    pub(super) fn take_error(&self) -> Result<()> {
        match lock(&self.error).take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Keep the first error; the op that found it records nothing.
    pub(super) fn defer_error(&self, e: Error) {
        lock(&self.error).get_or_insert(e);
    }

    /// Whether a shape check refused the call (its error kept for the next flush/read).
    pub(super) fn refuse(&self, check: Result<()>) -> bool {
        check.map_err(|e| self.defer_error(e)).is_err()
    }

    /// Check a host-side precondition of an op; a failure is reported by the next flush/read.
    pub(super) fn check(&self, ok: bool, what: impl FnOnce() -> String) -> bool {
        if !ok {
            self.defer_error(Error::Shape(what()));
        }
        ok
    }

    /// The largest tensor in bytes: every tensor is bound whole as one storage buffer.
    pub(super) fn storage_limit(&self) -> u64 {
        self.report
            .max_storage_buffer_binding_size
            .min(self.report.max_buffer_size)
    }

    /// A new zero-filled storage buffer for `len` f32 values (at least 4 bytes).
    pub(super) fn storage_buffer(&self, len: usize) -> Result<wgpu::Buffer> {
        let bytes = (len as u64).saturating_mul(4);
        let limit = self.storage_limit();
        if bytes > limit {
            return Err(Error::Gpu(format!(
                "a tensor of {len} f32 values ({bytes} bytes) exceeds the device's {limit}-byte \
                 storage buffer limit"
            )));
        }
        // Out of memory is caught here, where the size is known, rather than as a deferred
        // error at the next flush.
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: bytes.max(4),
            usage: tensor_usage(),
            mapped_at_creation: false,
        });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(Error::Gpu(format!(
                "out of GPU memory allocating a tensor of {len} f32 values ({:.1} MiB) on {}: \
                 try a smaller batch, buffer or model, or --device cpu ({e})",
                bytes as f64 / (1 << 20) as f64,
                self.report.name
            )));
        }
        Ok(buffer)
    }

    /// Submit everything pending plus a copy of `size` bytes of `src` into a mappable
    /// buffer, wait, and return the bytes: one submission, one readback.
    pub(super) fn read_bytes(&self, src: &wgpu::Buffer, size: u64) -> Result<Vec<u8>> {
        self.take_error()?;
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: size.max(4),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        if size > 0 {
            self.record(|encoder| encoder.copy_buffer_to_buffer(src, 0, &staging, 0, size));
        }
        self.readbacks.fetch_add(1, Ordering::Relaxed);
        let index = self.submit_pending();
        let slice = staging.slice(..);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.wait_until(index)?;
        let mapped = rx
            .recv()
            .map_err(|_| Error::Gpu("buffer mapping was dropped".into()))?;
        // A validation error means the results are garbage: report it instead of them.
        self.take_error()?;
        mapped.map_err(|e| self.device_error("mapping the readback buffer", e))?;
        let bytes = {
            let view = slice
                .get_mapped_range()
                .map_err(|e| self.device_error("reading the mapped buffer", e))?;
            view[..size as usize].to_vec()
        };
        staging.unmap();
        Ok(bytes)
    }
}

pub(super) fn tensor_usage() -> wgpu::BufferUsages {
    wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST
}
