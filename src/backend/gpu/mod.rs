//! The wgpu backend: hand-written WGSL kernels (`shaders/*.wgsl`) behind the [`Backend`] trait.
//!
//! Recording model (DESIGN.md §1): every operation is appended to one pending
//! [`wgpu::CommandEncoder`] held by the backend; nothing reaches the queue until
//! [`Backend::flush`] or [`Backend::read`]. A whole short-run chain of K Langevin steps is
//! therefore one submission with no host round trip. [`Backend::write`] is recorded too (a
//! staging copy in the same encoder), so it is ordered after the work recorded before it,
//! which `Queue::write_buffer` would not be.
//!
//! Operations cannot return errors (the trait records, it does not execute), so a bad shape
//! or a wgpu validation error is kept and returned by the next `flush` or `read`.
//!
//! Pipelines are built on first use and cached, one per entry point, with explicit bind group
//! layouts; per-dispatch parameters travel as immediates (push constants).
//!
//! Opening a device needs a GPU adapter, so this example is only compiled here; generic
//! code runs on the [`GpuBackend`] exactly as on the CPU backend:
//!
//! ```no_run
//! use ebm::backend::{Backend, GpuBackend};
//!
//! # fn main() -> ebm::Result<()> {
//! let gpu = GpuBackend::new(false)?; // Err(Error::NoGpu) without a hardware adapter
//! println!("{} (driver {})", gpu.name(), gpu.adapter_report().driver_info);
//! let mut x = gpu.upload(&[1.0, 2.0, 3.0])?;
//! gpu.fill(&mut x, 0.5); // recorded, not yet run
//! assert_eq!(gpu.read(&x)?, [0.5; 3]); // one submission, one readback
//! # Ok(())
//! # }
//! ```

mod adapter;
mod kernels;
mod profiler;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use bytemuck::Pod;
use wgpu::util::DeviceExt;

use super::{
    stat, Activation, AdamUpdate, Backend, ChannelShape, Conv2dShape, Counters, LangevinUpdate,
    LinearShape, MlpChain, PoolShape, Profile, ProfileSupport, ReplayDraw, UpsampleShape,
};
use crate::{Error, Result};
pub use adapter::{describe_adapters, AdapterReport};
pub use kernels::{entry_points, shader_source};
use kernels::{
    ConvParams, EltParams, Kernel, LinearParams, PoolParams, RowParams, Shader, SnParams,
};

/// Threads per workgroup of the elementwise kernels (must match `WG` in the shaders).
const WG: u32 = 256;
/// Side of the square output tile of the linear kernels (must match `TILE` in linear.wgsl).
const TILE: u32 = 16;

/// Side of the square output tile of the conv2d kernels (must match `TILE` in conv2d.wgsl).
const CONV_TILE: usize = 64;

/// A tensor in device memory: a storage buffer of `len` f32 values.
///
/// The buffer is at least 4 bytes long, so zero-length tensors can be bound like any other.
#[derive(Debug)]
pub struct GpuTensor {
    buffer: wgpu::Buffer,
    len: usize,
}

impl GpuTensor {
    /// The underlying buffer (STORAGE | COPY_SRC | COPY_DST), for code that records its own
    /// wgpu work next to the engine's.
    pub fn buffer(&self) -> &wgpu::Buffer {
        &self.buffer
    }
}

/// A cached compute pipeline and the layout its bind groups are made for.
struct Pipeline {
    pipeline: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
}

/// The wgpu backend; see the module documentation for how work is recorded and submitted.
pub struct GpuBackend {
    device: wgpu::Device,
    queue: wgpu::Queue,
    /// Boxed to keep the backend small (it sits in an enum next to the CPU backend).
    report: Box<AdapterReport>,
    /// The pending commands: everything recorded since the last submission.
    encoder: Mutex<Option<wgpu::CommandEncoder>>,
    modules: Mutex<HashMap<Shader, wgpu::ShaderModule>>,
    pipelines: Mutex<HashMap<&'static str, Arc<Pipeline>>>,
    /// The first error since the last `flush`/`read`: a rejected shape, or one wgpu reported
    /// through the uncaptured-error handler.
    error: Arc<Mutex<Option<Error>>>,
    /// The MLP chain kernel's parameters packed into one buffer (reused between calls).
    mlp_params: Mutex<Option<GpuTensor>>,
    submissions: AtomicU64,
    readbacks: AtomicU64,
    dispatches: AtomicU64,
    /// Made on the first `set_profiling(true)` of a device with timestamp queries; boxed
    /// like `report`.
    profiler: OnceLock<Box<profiler::Profiler>>,
}

// Model code may share a backend between threads (e.g. a data loader next to the trainer).
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<GpuBackend>();
};

/// Lock a mutex, recovering from poisoning: the guarded values stay consistent because no
/// code here panics while holding a lock on purpose.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl GpuBackend {
    /// Open the best adapter: discrete before integrated before virtual GPUs, hardware before
    /// software, a native API before OpenGL. With `allow_software` false, software adapters
    /// (lavapipe, GL on llvmpipe, SwiftShader) are refused, since they run ~15× slower than
    /// the CPU backend; tests pass `true` to run the kernels on lavapipe.
    pub fn new(allow_software: bool) -> Result<Self> {
        let instance = adapter::instance();
        let adapters = adapter::enumerate(&instance);
        let mut candidates: Vec<(AdapterReport, wgpu::Adapter)> = adapters
            .into_iter()
            .map(|a| (AdapterReport::from_adapter(&a), a))
            .collect();
        let found = candidates
            .iter()
            .map(|(r, _)| format!("{} [{}, {}]", r.name, r.backend, r.device_type))
            .collect::<Vec<_>>()
            .join("; ");
        if !allow_software {
            candidates.retain(|(r, _)| !r.is_software);
        }
        if candidates.is_empty() {
            return Err(Error::NoGpu(if found.is_empty() {
                "no GPU adapter found".into()
            } else {
                format!("no hardware GPU adapter (found: {found})")
            }));
        }
        // The kernels take their parameters as immediates (push constants); an adapter
        // without them (WebGPU in a browser, some GL drivers) cannot run them.
        candidates
            .retain(|(r, _)| r.immediates && r.max_immediate_size >= kernels::MAX_IMMEDIATE_BYTES);
        candidates.sort_by_key(|(r, _)| std::cmp::Reverse(adapter::rank(r)));
        let Some((report, adapter)) = candidates.into_iter().next() else {
            return Err(Error::NoGpu(format!(
                "no adapter offers immediates (push constants) of {} bytes, which the kernels \
                 need for their parameters (found: {found})",
                kernels::MAX_IMMEDIATE_BYTES
            )));
        };
        let desc = wgpu::DeviceDescriptor {
            label: Some("ebm"),
            // Timestamp queries only where the adapter has them: they serve `--profile`.
            required_features: wgpu::Features::IMMEDIATES
                | (adapter.features() & wgpu::Features::TIMESTAMP_QUERY),
            // The defaults are far below real hardware (128 MiB storage bindings); ask for
            // everything the adapter has.
            required_limits: adapter.limits(),
            ..Default::default()
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&desc))
            .map_err(|e| Error::NoGpu(format!("{}: {e}", report.name)))?;
        let error: Arc<Mutex<Option<Error>>> = Arc::default();
        let sink = Arc::clone(&error);
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            lock(&sink).get_or_insert(Error::Gpu(e.to_string()));
        }));
        // A lost device (driver reset, GPU removed, a hung kernel killed) outranks whatever
        // errors follow from it: it is what the user needs to hear.
        let lost_sink = Arc::clone(&error);
        let name = report.name.clone();
        // (Dropping the backend destroys the device too; then nobody reads the sink.)
        device.set_device_lost_callback(move |reason, message| {
            *lock(&lost_sink) = Some(Error::Gpu(format!(
                "the GPU device {name} was lost ({reason:?}{}{message}): nothing more can run \
                 on it; resume from the last checkpoint, or run with --device cpu",
                if message.is_empty() { "" } else { ": " }
            )));
        });
        Ok(GpuBackend {
            device,
            queue,
            report: Box::new(report),
            encoder: Mutex::new(None),
            modules: Mutex::default(),
            pipelines: Mutex::default(),
            error,
            mlp_params: Mutex::new(None),
            submissions: AtomicU64::new(0),
            readbacks: AtomicU64::new(0),
            dispatches: AtomicU64::new(0),
            profiler: OnceLock::new(),
        })
    }

    /// What the opened adapter is and can do (for logs and `ebm info`).
    pub fn adapter_report(&self) -> &AdapterReport {
        &self.report
    }

    /// The raw Philox4x32-10 words this device computes for `counters` under `seed`: lets a
    /// test (or a user on new hardware) check the GPU generator against [`crate::rng`] bit
    /// for bit. Runs at once (one submission and one readback).
    pub fn philox_words(&self, seed: u64, counters: &[[u32; 4]]) -> Result<Vec<[u32; 4]>> {
        if counters.is_empty() {
            return Ok(Vec::new());
        }
        let n = counters.len();
        let bytes = 16 * n as u64;
        let input = GpuTensor {
            buffer: self
                .device
                .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some("philox counters"),
                    contents: bytemuck::cast_slice(counters),
                    usage: wgpu::BufferUsages::STORAGE,
                }),
            len: 4 * n,
        };
        let output = self.zeros(4 * n)?;
        let params = kernels::WordsParams {
            n: self.dim_u32(n)?,
            seed_lo: seed as u32,
            seed_hi: (seed >> 32) as u32,
        };
        let groups = self.dim_u32(n.div_ceil(64))?;
        self.dispatch(
            &kernels::PHILOX_WORDS,
            &[&input, &output],
            &params,
            (groups, 1, 1),
        );
        let raw = self.read_bytes(&output.buffer, bytes)?;
        let words: Vec<u32> = bytemuck::pod_collect_to_vec(&raw);
        Ok(words.chunks(4).map(|w| [w[0], w[1], w[2], w[3]]).collect())
    }

    // ---- recording -------------------------------------------------------------------

    /// Run `f` on the pending encoder, creating it if this is the first op since a submit.
    fn record(&self, f: impl FnOnce(&mut wgpu::CommandEncoder)) {
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
    fn submit_pending(&self) -> Option<wgpu::SubmissionIndex> {
        let encoder = lock(&self.encoder).take()?;
        let index = self.queue.submit([encoder.finish()]);
        self.submissions.fetch_add(1, Ordering::Relaxed);
        Some(index)
    }

    /// An error from wgpu while talking to the device; a deferred error (above all a lost
    /// device) explains it better, so it wins.
    fn device_error(&self, what: &str, e: impl std::fmt::Display) -> Error {
        match lock(&self.error).take() {
            Some(first) => first,
            None => Error::Gpu(format!("{what}: {e}")),
        }
    }

    /// The first deferred error, if any (and clear it).
    fn take_error(&self) -> Result<()> {
        match lock(&self.error).take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Keep the first error; the op that found it records nothing.
    fn defer_error(&self, e: Error) {
        lock(&self.error).get_or_insert(e);
    }

    /// Check a host-side precondition of an op; a failure is reported by the next flush/read.
    fn check(&self, ok: bool, what: impl FnOnce() -> String) -> bool {
        if !ok {
            self.defer_error(Error::Shape(what()));
        }
        ok
    }

    /// A size as the u32 the shaders index with.
    fn dim_u32(&self, n: usize) -> Result<u32> {
        u32::try_from(n)
            .map_err(|_| Error::Shape(format!("{n} exceeds the u32 range of the kernels")))
    }

    /// Workgroup counts for `groups` workgroups of a 1D problem: a 2D grid when there are
    /// more than the per-dimension limit (65535 on most devices); shaders flatten
    /// (x, y) back into one index. `None` (error deferred) if even that does not fit.
    fn grid(&self, groups: usize) -> Option<(u32, u32, u32)> {
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
    fn grid_1d(&self, threads: usize) -> Option<(u32, u32, u32)> {
        if u32::try_from(threads).is_err() {
            self.defer_error(Error::Shape(format!(
                "{threads} threads exceed the u32 index range of the kernels"
            )));
            return None;
        }
        self.grid(threads.div_ceil(WG as usize))
    }

    fn module(&self, shader: Shader) -> wgpu::ShaderModule {
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
    fn pipeline(&self, k: &Kernel, immediate_size: u32) -> Arc<Pipeline> {
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
    fn dispatch<P: Pod>(
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

    /// The largest tensor in bytes: every tensor is bound whole as one storage buffer.
    fn storage_limit(&self) -> u64 {
        self.report
            .max_storage_buffer_binding_size
            .min(self.report.max_buffer_size)
    }

    /// A new zero-filled storage buffer for `len` f32 values (at least 4 bytes).
    fn storage_buffer(&self, len: usize) -> Result<wgpu::Buffer> {
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

    /// Destroy the device as a driver reset would, so that tests can check what users see
    /// after a lost device. Every later operation fails.
    #[doc(hidden)]
    pub fn simulate_device_loss(&self) {
        self.device.destroy();
        // wgpu reports a destroyed device as lost at its next maintenance.
        let _ = self.device.poll(wgpu::PollType::Poll);
    }

    /// Submit everything pending plus a copy of `size` bytes of `src` into a mappable
    /// buffer, wait, and return the bytes: one submission, one readback.
    fn read_bytes(&self, src: &wgpu::Buffer, size: u64) -> Result<Vec<u8>> {
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
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: index,
                timeout: None,
            })
            .map_err(|e| self.device_error("waiting for the device", e))?;
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

    fn linear_dims(&self, s: LinearShape) -> Option<LinearParams> {
        Some(LinearParams {
            batch: self
                .dim_u32(s.batch)
                .map_err(|e| self.defer_error(e))
                .ok()?,
            inputs: self
                .dim_u32(s.inputs)
                .map_err(|e| self.defer_error(e))
                .ok()?,
            outputs: self
                .dim_u32(s.outputs)
                .map_err(|e| self.defer_error(e))
                .ok()?,
        })
    }

    /// Grid of 16×16 output tiles over a `rows` × `cols` matrix.
    fn tile_grid(&self, rows: usize, cols: usize) -> Option<(u32, u32, u32)> {
        let max = self.report.max_compute_workgroups_per_dimension as usize;
        let (gx, gy) = (cols.div_ceil(TILE as usize), rows.div_ceil(TILE as usize));
        if !self.check(gx <= max && gy <= max, || {
            format!("a {rows}×{cols} matrix needs more than {max} tiles per dimension")
        }) {
            return None;
        }
        Some((gx as u32, gy as u32, 1))
    }

    /// The conv2d kernels' parameters, or `None` (error deferred) when the geometry is
    /// impossible (kernel or stride 0, kernel larger than the padded input) or an index
    /// would leave the u32 range the kernels compute in.
    fn conv_params(&self, s: Conv2dShape, op: &str) -> Option<ConvParams> {
        if !self.check(
            s.kernel > 0
                && s.stride > 0
                && s.height + 2 * s.padding >= s.kernel
                && s.width + 2 * s.padding >= s.kernel,
            || format!("{op} {s:?}: the kernel must fit the padded input, stride ≥ 1"),
        ) {
            return None;
        }
        let weights = s.out_channels * s.in_channels * s.kernel * s.kernel;
        let largest = (s.batch * s.in_len())
            .max(s.batch * s.out_len())
            .max(weights);
        let u = |n: usize| self.dim_u32(n).map_err(|e| self.defer_error(e)).ok();
        u(largest + s.padding)?;
        Some(ConvParams {
            batch: u(s.batch)?,
            in_channels: u(s.in_channels)?,
            out_channels: u(s.out_channels)?,
            height: u(s.height)?,
            width: u(s.width)?,
            kernel: u(s.kernel)?,
            stride: u(s.stride)?,
            padding: u(s.padding)?,
            out_height: u(s.out_height())?,
            out_width: u(s.out_width())?,
        })
    }

    /// Grid of [`CONV_TILE`]² output tiles over a `rows` × `cols` matrix: column tiles on
    /// x (spilling into y past the per-dimension limit; the shader flattens them), row tiles
    /// on z.
    fn conv_grid(&self, rows: usize, cols: usize) -> Option<(u32, u32, u32)> {
        let max = self.report.max_compute_workgroups_per_dimension as usize;
        let (x, y, _) = self.grid(cols.div_ceil(CONV_TILE))?;
        let z = rows.div_ceil(CONV_TILE);
        if !self.check(z <= max, || {
            format!("{rows} rows need more than {max} conv tiles")
        }) {
            return None;
        }
        Some((x, y, z as u32))
    }

    /// One elementwise kernel of elementwise.wgsl over `n` values, one thread each, after
    /// checking that every tensor holds what the op reads or writes (`need`, per buffer in
    /// binding order) and that indices fit the kernels' u32 arithmetic.
    fn elementwise(
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
    fn rows_kernel(
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

    /// The spectral-norm kernels' parameters (`flag` 0, `n` = rows·cols) after checking
    /// that every tensor holds what the op needs (`(have, need)` pairs) and that indices fit
    /// u32; `None` (error deferred) otherwise, and also for an empty matrix, which has
    /// nothing to do.
    fn sn_params(
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

    /// The upsampling kernels' parameters, or `None` (error deferred) for factor 0 or an
    /// output past the u32 index range.
    fn upsample_params(&self, s: UpsampleShape, op: &str) -> Option<kernels::UpsampleParams> {
        if !self.check(s.factor > 0, || format!("{op} {s:?}: factor 0")) {
            return None;
        }
        let u = |n: usize| self.dim_u32(n).map_err(|e| self.defer_error(e)).ok();
        u(s.out_len())?;
        Some(kernels::UpsampleParams {
            planes: u(s.batch * s.channels)?,
            height: u(s.height)?,
            width: u(s.width)?,
            factor: u(s.factor)?,
        })
    }

    fn pool_params(&self, s: PoolShape, op: &str) -> Option<PoolParams> {
        if !self.check(s.kernel > 0, || format!("{op} {s:?}: kernel 0")) {
            return None;
        }
        let u = |n: usize| self.dim_u32(n).map_err(|e| self.defer_error(e)).ok();
        u(s.batch * s.channels * s.height * s.width)?;
        Some(PoolParams {
            planes: u(s.batch * s.channels)?,
            height: u(s.height)?,
            width: u(s.width)?,
            kernel: u(s.kernel)?,
            out_height: u(s.out_height())?,
            out_width: u(s.out_width())?,
        })
    }
}

fn tensor_usage() -> wgpu::BufferUsages {
    wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST
}

/// [`EltParams`] from sizes the caller has checked against the u32 range (larger ones are
/// refused before any dispatch, so the truncation here never reaches a kernel).
fn elt_params(n: usize, cols: usize, channels: usize, alpha: f32) -> EltParams {
    EltParams {
        n: n as u32,
        cols: cols as u32,
        channels: channels as u32,
        alpha,
    }
}

/// [`RowParams`], truncated like [`elt_params`] (checked before dispatch).
fn row_params(rows: usize, cols: usize, pixels: usize, alpha: f32) -> RowParams {
    RowParams {
        rows: rows as u32,
        cols: cols as u32,
        pixels: pixels as u32,
        alpha,
    }
}

/// Low and high words of a seed: the Philox key.
fn seed_words(seed: u64) -> (u32, u32) {
    (seed as u32, (seed >> 32) as u32)
}

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

    fn flag_non_finite(&self, x: &GpuTensor, flags: &mut GpuTensor, slot: usize, mark: f32) {
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
        let (n, i, o) = (s.batch, s.inputs, s.outputs);
        if !self.check(
            x.len >= n * i && w.len >= o * i && b.len >= o && y.len >= n * o,
            || {
                format!(
                    "linear_forward {s:?}: x {}, w {}, b {}, y {}",
                    x.len, w.len, b.len, y.len
                )
            },
        ) || n * o == 0
        {
            return;
        }
        let (Some(params), Some(groups)) = (self.linear_dims(s), self.tile_grid(n, o)) else {
            return;
        };
        self.dispatch(&kernels::LINEAR_FORWARD, &[x, w, y, b], &params, groups);
    }

    fn linear_backward_data(
        &self,
        s: LinearShape,
        dy: &GpuTensor,
        w: &GpuTensor,
        dx: &mut GpuTensor,
    ) {
        let (n, i, o) = (s.batch, s.inputs, s.outputs);
        if !self.check(dy.len >= n * o && w.len >= o * i && dx.len >= n * i, || {
            format!(
                "linear_backward_data {s:?}: dy {}, w {}, dx {}",
                dy.len, w.len, dx.len
            )
        }) || n * i == 0
        {
            return;
        }
        let (Some(params), Some(groups)) = (self.linear_dims(s), self.tile_grid(n, i)) else {
            return;
        };
        self.dispatch(
            &kernels::LINEAR_BACKWARD_DATA,
            &[dy, w, dx],
            &params,
            groups,
        );
    }

    fn linear_backward_params(
        &self,
        s: LinearShape,
        dy: &GpuTensor,
        x: &GpuTensor,
        dw: &mut GpuTensor,
        db: &mut GpuTensor,
    ) {
        let (n, i, o) = (s.batch, s.inputs, s.outputs);
        if !self.check(
            dy.len >= n * o && x.len >= n * i && dw.len >= o * i && db.len >= o,
            || {
                format!(
                    "linear_backward_params {s:?}: dy {}, x {}, dw {}, db {}",
                    dy.len, x.len, dw.len, db.len
                )
            },
        ) || o == 0
        {
            return;
        }
        let Some(params) = self.linear_dims(s) else {
            return;
        };
        if i > 0 {
            let Some(groups) = self.tile_grid(o, i) else {
                return;
            };
            self.dispatch(
                &kernels::LINEAR_BACKWARD_PARAMS,
                &[dy, x, dw],
                &params,
                groups,
            );
        }
        let Some(groups) = self.grid_1d(o) else {
            return;
        };
        // One thread per output; the kernel indexes with gid.x only.
        if !self.check(groups.1 == 1, || {
            format!("{o} outputs are too many for the bias kernel")
        }) {
            return;
        }
        self.dispatch(&kernels::LINEAR_BACKWARD_BIAS, &[dy, db], &params, groups);
    }

    fn conv2d_forward(
        &self,
        s: Conv2dShape,
        x: &GpuTensor,
        w: &GpuTensor,
        b: &GpuTensor,
        y: &mut GpuTensor,
    ) {
        let Some(params) = self.conv_params(s, "conv2d_forward") else {
            return;
        };
        let weights = s.out_channels * s.in_channels * s.kernel * s.kernel;
        let (x_len, y_len) = (s.batch * s.in_len(), s.batch * s.out_len());
        if !self.check(
            x.len >= x_len && w.len >= weights && b.len >= s.out_channels && y.len >= y_len,
            || {
                format!(
                    "conv2d_forward {s:?}: x {}, w {}, b {}, y {}",
                    x.len, w.len, b.len, y.len
                )
            },
        ) || y_len == 0
        {
            return;
        }
        let pixels = s.batch * s.out_height() * s.out_width();
        let Some(groups) = self.conv_grid(s.out_channels, pixels) else {
            return;
        };
        self.dispatch(&kernels::CONV2D_FORWARD, &[w, x, y, b], &params, groups);
    }

    fn conv2d_backward_data(
        &self,
        s: Conv2dShape,
        dy: &GpuTensor,
        w: &GpuTensor,
        dx: &mut GpuTensor,
    ) {
        let Some(params) = self.conv_params(s, "conv2d_backward_data") else {
            return;
        };
        let weights = s.out_channels * s.in_channels * s.kernel * s.kernel;
        let (x_len, y_len) = (s.batch * s.in_len(), s.batch * s.out_len());
        if !self.check(
            dy.len >= y_len && w.len >= weights && dx.len >= x_len,
            || {
                format!(
                    "conv2d_backward_data {s:?}: dy {}, w {}, dx {}",
                    dy.len, w.len, dx.len
                )
            },
        ) || x_len == 0
        {
            return;
        }
        let pixels = s.batch * s.height * s.width;
        let Some(groups) = self.conv_grid(s.in_channels, pixels) else {
            return;
        };
        self.dispatch(
            &kernels::CONV2D_BACKWARD_DATA,
            &[w, dy, dx],
            &params,
            groups,
        );
    }

    fn conv2d_backward_params(
        &self,
        s: Conv2dShape,
        dy: &GpuTensor,
        x: &GpuTensor,
        dw: &mut GpuTensor,
        db: &mut GpuTensor,
    ) {
        let Some(params) = self.conv_params(s, "conv2d_backward_params") else {
            return;
        };
        let rows = s.in_channels * s.kernel * s.kernel;
        let (x_len, y_len) = (s.batch * s.in_len(), s.batch * s.out_len());
        if !self.check(
            dy.len >= y_len
                && x.len >= x_len
                && dw.len >= s.out_channels * rows
                && db.len >= s.out_channels,
            || {
                format!(
                    "conv2d_backward_params {s:?}: dy {}, x {}, dw {}, db {}",
                    dy.len, x.len, dw.len, db.len
                )
            },
        ) || s.out_channels == 0
        {
            return;
        }
        // With an empty batch the kernels store zeros, as the CPU does.
        if rows > 0 {
            let Some(groups) = self.conv_grid(s.out_channels, rows) else {
                return;
            };
            self.dispatch(
                &kernels::CONV2D_BACKWARD_WEIGHT,
                &[dy, x, dw],
                &params,
                groups,
            );
        }
        let Some(groups) = self.grid(s.out_channels) else {
            return;
        };
        self.dispatch(&kernels::CONV2D_BACKWARD_BIAS, &[dy, db], &params, groups);
    }

    fn avg_pool_forward(&self, s: PoolShape, x: &GpuTensor, y: &mut GpuTensor) {
        let Some(params) = self.pool_params(s, "avg_pool_forward") else {
            return;
        };
        let planes = s.batch * s.channels;
        let (x_len, y_len) = (
            planes * s.height * s.width,
            planes * s.out_height() * s.out_width(),
        );
        if !self.check(x.len >= x_len && y.len >= y_len, || {
            format!("avg_pool_forward {s:?}: x {}, y {}", x.len, y.len)
        }) || y_len == 0
        {
            return;
        }
        let Some(groups) = self.grid_1d(y_len) else {
            return;
        };
        self.dispatch(&kernels::AVG_POOL_FORWARD, &[x, y], &params, groups);
    }

    fn avg_pool_backward(&self, s: PoolShape, dy: &GpuTensor, dx: &mut GpuTensor) {
        let Some(params) = self.pool_params(s, "avg_pool_backward") else {
            return;
        };
        let planes = s.batch * s.channels;
        let (x_len, y_len) = (
            planes * s.height * s.width,
            planes * s.out_height() * s.out_width(),
        );
        if !self.check(dy.len >= y_len && dx.len >= x_len, || {
            format!("avg_pool_backward {s:?}: dy {}, dx {}", dy.len, dx.len)
        }) || x_len == 0
        {
            return;
        }
        let Some(groups) = self.grid_1d(x_len) else {
            return;
        };
        self.dispatch(&kernels::AVG_POOL_BACKWARD, &[dy, dx], &params, groups);
    }

    fn activation_forward(&self, act: Activation, x: &GpuTensor, y: &mut GpuTensor) {
        let n = x.len.min(y.len);
        let Some(groups) = self.grid_1d(n).filter(|_| n > 0) else {
            return;
        };
        let (kernel, slope) = match act {
            Activation::Relu => (&kernels::RELU_FORWARD, 0.0),
            Activation::LeakyRelu(slope) => (&kernels::LEAKY_RELU_FORWARD, slope),
            Activation::Silu => (&kernels::SILU_FORWARD, 0.0),
            Activation::Tanh => (&kernels::TANH_FORWARD, 0.0),
            Activation::Sigmoid => (&kernels::SIGMOID_FORWARD, 0.0),
            Activation::Softplus => (&kernels::SOFTPLUS_FORWARD, 0.0),
        };
        let params = kernels::ActParams { n: n as u32, slope };
        self.dispatch(kernel, &[x, y], &params, groups);
    }

    fn activation_backward(
        &self,
        act: Activation,
        x: &GpuTensor,
        dy: &GpuTensor,
        dx: &mut GpuTensor,
    ) {
        let n = x.len.min(dy.len).min(dx.len);
        let Some(groups) = self.grid_1d(n).filter(|_| n > 0) else {
            return;
        };
        let (kernel, slope) = match act {
            Activation::Relu => (&kernels::RELU_BACKWARD, 0.0),
            Activation::LeakyRelu(slope) => (&kernels::LEAKY_RELU_BACKWARD, slope),
            Activation::Silu => (&kernels::SILU_BACKWARD, 0.0),
            Activation::Tanh => (&kernels::TANH_BACKWARD, 0.0),
            Activation::Sigmoid => (&kernels::SIGMOID_BACKWARD, 0.0),
            Activation::Softplus => (&kernels::SOFTPLUS_BACKWARD, 0.0),
        };
        let params = kernels::ActParams { n: n as u32, slope };
        self.dispatch(kernel, &[x, dy, dx], &params, groups);
    }

    fn add(&self, a: &GpuTensor, b: &GpuTensor, y: &mut GpuTensor, len: usize) {
        let params = elt_params(len, 0, 0, 0.0);
        self.elementwise(&kernels::ADD, &[a, b, y], &[len; 3], params, len);
    }

    fn axpy(&self, alpha: f32, x: &GpuTensor, y: &mut GpuTensor, len: usize) {
        let params = elt_params(len, 0, 0, alpha);
        self.elementwise(&kernels::AXPY, &[x, y], &[len; 2], params, len);
    }

    fn scale(&self, alpha: f32, x: &mut GpuTensor, len: usize) {
        let params = elt_params(len, 0, 0, alpha);
        self.elementwise(&kernels::SCALE, &[x], &[len], params, len);
    }

    fn row_sum(&self, rows: usize, cols: usize, alpha: f32, x: &GpuTensor, y: &mut GpuTensor) {
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

    fn broadcast_rows(
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

    fn row_logsumexp(&self, rows: usize, cols: usize, x: &GpuTensor, y: &mut GpuTensor) {
        let params = row_params(rows, cols, 0, 0.0);
        let need = [rows * cols, rows];
        let k = &kernels::ROW_LOGSUMEXP;
        self.rows_kernel(k, &[x, y], &need, params, rows, false, rows * cols);
    }

    fn row_softmax(&self, rows: usize, cols: usize, x: &GpuTensor, y: &mut GpuTensor) {
        let params = row_params(rows, cols, 0, 0.0);
        let need = [rows * cols; 2];
        let k = &kernels::ROW_SOFTMAX;
        self.rows_kernel(k, &[x, y], &need, params, rows, false, rows * cols);
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
        let n = rows * cols;
        let params = elt_params(n, cols, 0, alpha);
        self.elementwise(&kernels::SCALE_ROWS, &[x, s, y], &[n, rows, n], params, n);
    }

    fn gather_cols(
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

    fn scatter_cols(
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

    fn upsample_forward(&self, s: UpsampleShape, x: &GpuTensor, y: &mut GpuTensor) {
        let Some(params) = self.upsample_params(s, "upsample_forward") else {
            return;
        };
        if !self.check(x.len >= s.in_len() && y.len >= s.out_len(), || {
            format!("upsample_forward {s:?}: x {}, y {}", x.len, y.len)
        }) || s.out_len() == 0
        {
            return;
        }
        let Some(groups) = self.grid_1d(s.out_len()) else {
            return;
        };
        self.dispatch(&kernels::UPSAMPLE_FORWARD, &[x, y], &params, groups);
    }

    fn upsample_backward(&self, s: UpsampleShape, dy: &GpuTensor, dx: &mut GpuTensor) {
        let Some(params) = self.upsample_params(s, "upsample_backward") else {
            return;
        };
        if !self.check(dy.len >= s.out_len() && dx.len >= s.in_len(), || {
            format!("upsample_backward {s:?}: dy {}, dx {}", dy.len, dx.len)
        }) || s.in_len() == 0
        {
            return;
        }
        let Some(groups) = self.grid_1d(s.in_len()) else {
            return;
        };
        self.dispatch(&kernels::UPSAMPLE_BACKWARD, &[dy, dx], &params, groups);
    }

    fn channel_bias_add(&self, s: ChannelShape, bias: &GpuTensor, y: &mut GpuTensor) {
        let n = s.len();
        let params = elt_params(n, s.pixels, s.channels, 0.0);
        let need = [s.channels, n];
        self.elementwise(&kernels::CHANNEL_BIAS_ADD, &[bias, y], &need, params, n);
    }

    fn channel_sum(&self, s: ChannelShape, dy: &GpuTensor, db: &mut GpuTensor) {
        let params = row_params(s.channels, s.batch * s.pixels, s.pixels, 0.0);
        let need = [s.len(), s.channels];
        let k = &kernels::CHANNEL_SUM;
        self.rows_kernel(k, &[dy, db], &need, params, s.channels, false, s.len());
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

    fn cd_loss(
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

    fn langevin_update(&self, u: &LangevinUpdate, x: &mut GpuTensor, grad: &GpuTensor) {
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

    fn mlp_chain_supported(&self, widths: &[usize], activations: &[Activation]) -> bool {
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

    fn mlp_langevin_chain(&self, chain: &MlpChain, params: &[&GpuTensor], x: &mut GpuTensor) {
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

    fn sum_squares(&self, x: &GpuTensor, out: &mut GpuTensor, slot: usize) {
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

    fn adam_update(
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

    fn replay_draw(
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

    fn replay_scatter(
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
