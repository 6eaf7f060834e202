//! Pipelines and dispatch: shader modules and compute pipelines built on first use and
//! cached, bind groups, launch grids, and the immediates of the common kernels.

use super::*;

impl GpuBackend {
    /// A size as the u32 the shaders index with.
    pub(super) fn dim_u32(&self, n: usize) -> Result<u32> {
        u32::try_from(n)
            .map_err(|_| Error::Shape(format!("{n} exceeds the u32 range of the kernels")))
    }

    /// Workgroup counts for `groups` workgroups of a 1D problem: a 2D grid when there are
    /// more than the per-dimension limit (65535 on most devices); shaders flatten
    /// (x, y) back into one index. `None` (error deferred) if even that does not fit.
    pub(super) fn grid(&self, groups: usize) -> Option<(u32, u32, u32)> {
        let max = self.report.max_compute_workgroups_per_dimension.max(1) as usize;
        let x = groups.min(max);
        let y = groups.div_ceil(x.max(1));
        if y > max {
            self.defer_error(Error::Shape(format!(
                "{groups} workgroups exceed the device's {max}×{max} grid"
            )));
            return None;
        }
        Some((x as u32, y as u32, 1))
    }

    /// Grid for `threads` threads of an elementwise kernel with [`WG`] threads per workgroup.
    pub(super) fn grid_1d(&self, threads: usize) -> Option<(u32, u32, u32)> {
        if u32::try_from(threads).is_err() {
            self.defer_error(Error::Shape(format!(
                "{threads} threads exceed the u32 index range of the kernels"
            )));
            return None;
        }
        self.grid(threads.div_ceil(WG as usize))
    }

    pub(super) fn module(&self, shader: Shader) -> wgpu::ShaderModule {
        lock(&self.modules)
            .entry(shader)
            .or_insert_with(|| {
                self.device
                    .create_shader_module(wgpu::ShaderModuleDescriptor {
                        label: Some(shader.file()),
                        source: wgpu::ShaderSource::Wgsl(shader.source().into()),
                    })
            })
            .clone()
    }

    /// The pipeline for `k`, built on first use: an explicit bind group layout from the
    /// kernel table and `immediate_size` bytes of immediates.
    pub(super) fn pipeline(&self, k: &Kernel, immediate_size: u32) -> Arc<Pipeline> {
        if let Some(p) = lock(&self.pipelines).get(k.entry) {
            return Arc::clone(p);
        }
        let module = self.module(k.shader);
        let entries: Vec<wgpu::BindGroupLayoutEntry> = k
            .bindings
            .iter()
            .map(|&(binding, access)| wgpu::BindGroupLayoutEntry {
                binding,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Storage {
                        read_only: access == kernels::Access::Read,
                    },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            })
            .collect();
        let layout = self
            .device
            .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some(k.entry),
                entries: &entries,
            });
        let pipeline_layout = self
            .device
            .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(k.entry),
                bind_group_layouts: &[Some(&layout)],
                immediate_size,
            });
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(k.entry),
                layout: Some(&pipeline_layout),
                module: &module,
                entry_point: Some(k.entry),
                compilation_options: Default::default(),
                cache: None,
            });
        let p = Arc::new(Pipeline { pipeline, layout });
        lock(&self.pipelines).insert(k.entry, Arc::clone(&p));
        p
    }

    /// Record one dispatch of `k` with `buffers` bound in the kernel table's order and
    /// `params` as immediates.
    pub(super) fn dispatch<P: Pod>(
        &self,
        k: &Kernel,
        buffers: &[&GpuTensor],
        params: &P,
        groups: (u32, u32, u32),
    ) {
        debug_assert_eq!(buffers.len(), k.bindings.len(), "{}", k.entry);
        let bytes = bytemuck::bytes_of(params);
        let p = self.pipeline(k, bytes.len() as u32);
        let entries: Vec<wgpu::BindGroupEntry> = k
            .bindings
            .iter()
            .zip(buffers)
            .map(|(&(binding, _), t)| wgpu::BindGroupEntry {
                binding,
                resource: t.buffer.as_entire_binding(),
            })
            .collect();
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(k.entry),
            layout: &p.layout,
            entries: &entries,
        });
        self.record(|encoder| {
            let profiler = self.profiler.get();
            let timestamp_writes =
                profiler.and_then(|p| p.pass_writes(&self.device, encoder, k.entry));
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(k.entry),
                timestamp_writes,
            });
            pass.set_pipeline(&p.pipeline);
            pass.set_bind_group(0, &bind_group, &[]);
            pass.set_immediates(0, bytes);
            pass.dispatch_workgroups(groups.0, groups.1, groups.2);
        });
        self.dispatches.fetch_add(1, Ordering::Relaxed);
    }
}

/// [`EltParams`] from sizes the caller has checked against the u32 range (larger ones are
/// refused before any dispatch, so the truncation here never reaches a kernel).
pub(super) fn elt_params(n: usize, cols: usize, channels: usize, alpha: f32) -> EltParams {
    EltParams {
        n: n as u32,
        cols: cols as u32,
        channels: channels as u32,
        alpha,
    }
}

/// [`RowParams`], truncated like [`elt_params`] (checked before dispatch).
pub(super) fn row_params(rows: usize, cols: usize, pixels: usize, alpha: f32) -> RowParams {
    RowParams {
        rows: rows as u32,
        cols: cols as u32,
        pixels: pixels as u32,
        alpha,
    }
}
