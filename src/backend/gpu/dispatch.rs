//! Pipelines and dispatch: shader modules and compute pipelines built on first use and
//! cached, bind groups, launch grids, and the immediates of the common kernels.

use super::*;

impl GpuBackend {
    /// A size as the u32 the shaders index with; an error past the u32 range.
    pub fn dim_u32(&self, n: usize) -> Result<u32> {
        u32::try_from(n)
            .map_err(|_| Error::Shape(format!("{n} exceeds the u32 range of the kernels")))
    }

    /// Workgroup counts for `groups` workgroups of a 1D problem: a 2D grid when there are
    /// more than the per-dimension limit (65535 on most devices); shaders flatten (x, y)
    /// back into one index. An error if even that does not fit.
    pub fn grid(&self, groups: usize) -> Result<(u32, u32, u32)> {
        let max = self.report.max_compute_workgroups_per_dimension.max(1) as usize;
        let x = groups.min(max);
        let y = groups.div_ceil(x.max(1));
        if y > max {
            return Err(Error::Shape(format!(
                "{groups} workgroups exceed the device's {max}×{max} grid"
            )));
        }
        Ok((x as u32, y as u32, 1))
    }

    /// [`grid`](Self::grid) for `threads` threads of an elementwise kernel with 256 threads
    /// per workgroup (the `WG` of the shaders).
    pub fn grid_1d(&self, threads: usize) -> Result<(u32, u32, u32)> {
        if u32::try_from(threads).is_err() {
            return Err(Error::Shape(format!(
                "{threads} threads exceed the u32 index range of the kernels"
            )));
        }
        self.grid(threads.div_ceil(WG as usize))
    }

    /// [`grid`](Self::grid), the error deferred to the next flush/read (`None`).
    pub(super) fn grid_or_defer(&self, groups: usize) -> Option<(u32, u32, u32)> {
        self.grid(groups).map_err(|e| self.defer_error(e)).ok()
    }

    /// [`grid_1d`](Self::grid_1d), the error deferred to the next flush/read (`None`).
    pub(super) fn grid_1d_or_defer(&self, threads: usize) -> Option<(u32, u32, u32)> {
        self.grid_1d(threads).map_err(|e| self.defer_error(e)).ok()
    }

    /// Temporary device memory of at least `len` values, kept between calls under `name`
    /// and grown when a call needs more: for kernels that stage data (the fused MLP chain
    /// packs its weights into one buffer). Recorded work orders its uses. The tensor is out
    /// of the backend's keeping while `f` runs, so `f` may use other scratch names.
    pub fn with_scratch<R>(
        &self,
        name: &'static str,
        len: usize,
        f: impl FnOnce(&mut GpuTensor) -> R,
    ) -> Result<R> {
        let kept = lock(&self.scratch).remove(name);
        let mut tensor = match kept {
            Some(t) if t.len >= len => t,
            _ => self.zeros(len)?,
        };
        let result = f(&mut tensor);
        lock(&self.scratch).insert(name, tensor);
        Ok(result)
    }

    /// The compiled module of `shader`, built on first use (keyed by file name); an error if
    /// another shader of the same file name but other text was built before (a kernel from
    /// outside the crate reusing a name), which would otherwise silently run the wrong code.
    fn module(&self, shader: &WgslShader) -> Result<wgpu::ShaderModule> {
        let mut modules = lock(&self.modules);
        if let Some((body, module)) = modules.get(shader.file) {
            // Pointer first: the same include_str! text is the same static bytes.
            let same = std::ptr::eq(body.as_ptr(), shader.body.as_ptr()) || *body == shader.body;
            return if same {
                Ok(module.clone())
            } else {
                Err(Error::Shape(format!(
                    "two different WGSL sources are named {}: give your kernel's shader a file \
                     name of its own",
                    shader.file
                )))
            };
        }
        let descriptor = wgpu::ShaderModuleDescriptor {
            label: Some(shader.file),
            source: wgpu::ShaderSource::Wgsl(shader.source().into()),
        };
        let module = if shader.unchecked_indexing && !bounds_checks_forced() {
            // SAFETY: such a file's kernels test every buffer index against the buffer's
            // extent before using it and index workgroup arrays only within their declared
            // sizes (see the file's header); the shader tests run them on every shape class.
            unsafe {
                self.device.create_shader_module_trusted(
                    descriptor,
                    wgpu::ShaderRuntimeChecks {
                        bounds_checks: false,
                        ..wgpu::ShaderRuntimeChecks::checked()
                    },
                )
            }
        } else {
            self.device.create_shader_module(descriptor)
        };
        modules.insert(shader.file, (shader.body, module.clone()));
        Ok(module)
    }

    /// The pipeline for `k`, built on first use: an explicit bind group layout from the
    /// kernel table and `immediate_size` bytes of immediates.
    fn pipeline(&self, k: &WgslEntry, immediate_size: u32) -> Result<Arc<Pipeline>> {
        let key = (k.shader.file, k.entry);
        if let Some(p) = lock(&self.pipelines).get(&key) {
            return Ok(Arc::clone(p));
        }
        let module = self.module(k.shader)?;
        let entries: Vec<wgpu::BindGroupLayoutEntry> = k
            .bindings
            .iter()
            .map(|&(binding, access)| wgpu::BindGroupLayoutEntry {
                binding,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Storage {
                        read_only: access == Access::Read,
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
        lock(&self.pipelines).insert(key, Arc::clone(&p));
        Ok(p)
    }

    /// Record one dispatch of entry point `k` on a `groups` grid, with `buffers` bound in the
    /// order of `k.bindings` and `params` as immediates (a `#[repr(C)]` struct of 4-byte
    /// fields that mirrors the shader's, at most 128 bytes). A mismatch is an error returned
    /// by the next flush/read; nothing is recorded then.
    pub fn dispatch<P: Pod>(
        &self,
        k: &WgslEntry,
        buffers: &[&GpuTensor],
        params: &P,
        groups: (u32, u32, u32),
    ) {
        let bytes = bytemuck::bytes_of(params);
        if buffers.len() != k.bindings.len() || bytes.len() > kernels::MAX_IMMEDIATE_BYTES as usize
        {
            return self.defer_error(Error::Shape(format!(
                "{}: {} buffers for {} bindings, {} bytes of immediates (at most {})",
                k.entry,
                buffers.len(),
                k.bindings.len(),
                bytes.len(),
                kernels::MAX_IMMEDIATE_BYTES
            )));
        }
        let p = match self.pipeline(k, bytes.len() as u32) {
            Ok(p) => p,
            Err(e) => return self.defer_error(e),
        };
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
            let profiler = self
                .profiler
                .get()
                .filter(|_| !self.tuning.load(Ordering::Relaxed));
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

/// `EBM_GPU_BOUNDS_CHECKS=on`: build every module with wgpu's bounds clamps, including the
/// kernels that guard their own indices (a debugging aid, and the baseline for measuring
/// what the clamps cost).
fn bounds_checks_forced() -> bool {
    options::env_switch("EBM_GPU_BOUNDS_CHECKS")
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
