//! The wgpu backend: hand-written WGSL kernels (`shaders/*.wgsl`) behind the [`Backend`] trait.
//!
//! Recording model (docs/ARCHITECTURE.md): every operation is appended to one pending
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

//!
//! Where things live:
//! - `device.rs`: opening the device (adapter, limits, error scopes, lost-device handling).
//! - `recording.rs`: the pending encoder, submissions, deferred errors, buffers, readback.
//! - `dispatch.rs`: shader modules, pipelines, bind groups, launch grids.
//! - `ops.rs`: the [`Backend`] impl; memory and sync ops, the rest forwarded to
//!   `layers.rs` (linear, pool, upsample, activation), `conv.rs` (the conv products, their
//!   tile sizes and split-K), `general.rs` (elementwise, rows,
//!   sums) and `spectral_norm.rs`; algorithm kernels ([`Kernel`]) arrive through
//!   [`Backend::run`] and record themselves with the public [`GpuBackend::dispatch`].
//! - `kernels.rs`: the backend's own WGSL files, kernel table and parameter structs;
//!   `adapter.rs`: adapter reports; `profiler.rs`: timestamp queries.
//! - `options.rs`: the switches the device is opened with ([`GpuOptions`]: conv tiles,
//!   tensor cores); `tensor_cores.rs`: whether an adapter can run the tensor-core kernels.

mod adapter;
mod conv;
mod device;
mod dispatch;
mod general;
pub(crate) mod kernels;
mod layers;
mod ops;
pub mod options;
mod profiler;
mod recording;
mod spectral_norm;
pub mod tensor_cores;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use bytemuck::Pod;
use wgpu::util::DeviceExt;

use super::kernel::{Access, Kernel, WgslEntry, WgslShader};
use super::{
    Activation, Backend, ChannelShape, Conv2dShape, Counters, LinearShape, PoolShape, Profile,
    ProfileSupport, UpsampleShape,
};
use crate::{Error, Result};
pub use adapter::{describe_adapters, AdapterReport, MatrixShape};
use kernels::{ConvParams, EltParams, LinearParams, PoolParams, RowParams, SnParams};
pub use options::{ConvTiles, GpuOptions, MlpChainGroup, ThinInputs};
pub use tensor_cores::TensorCores;

/// Threads per workgroup of the elementwise kernels (must match `WG` in the shaders).
const WG: u32 = 256;
/// Outputs per workgroup of the linear bias gradient (must match `TILE` in linear.wgsl).
const TILE: u32 = 16;

/// Sides of the square output tiles of the conv2d kernels (must match `TILE` in conv2d.wgsl
/// and conv2d_wide.wgsl); [`ConvTiles`] chooses.
const CONV_TILE: usize = 64;
const CONV_WIDE_TILE: usize = 128;

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

    /// Number of f32 values.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds no values.
    pub fn is_empty(&self) -> bool {
        self.len == 0
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
    /// Whether the conv products use `conv2d_coop.wgsl` (decided when the device opened).
    tensor_cores: TensorCores,
    /// Which tiles the f32 conv products use ([`GpuOptions::conv_tiles`]).
    conv_tiles: ConvTiles,
    /// Chains per workgroup of the fused MLP chain ([`GpuOptions::mlp_chain_group`]).
    mlp_chain_group: MlpChainGroup,
    /// Where the gradient into ≤ 4 input channels runs ([`GpuOptions::thin_inputs`]).
    thin_inputs: ThinInputs,
    /// `--conv-tiles auto`: the tile size timed fastest for each conv product so far.
    tile_choices: Mutex<HashMap<conv::ProductKey, conv::TileChoice>>,
    /// Set while `--conv-tiles auto` times a product: its trial dispatches stay out of
    /// profiles.
    tuning: AtomicBool,
    /// The pending commands: everything recorded since the last submission.
    encoder: Mutex<Option<wgpu::CommandEncoder>>,
    /// Compiled shader modules by file name, with the text they were built from.
    modules: Mutex<HashMap<&'static str, (&'static str, wgpu::ShaderModule)>>,
    /// Pipelines by (file, entry point).
    pipelines: Mutex<HashMap<(&'static str, &'static str), Arc<Pipeline>>>,
    /// The first error since the last `flush`/`read`: a rejected shape, or one wgpu reported
    /// through the uncaptured-error handler.
    error: Arc<Mutex<Option<Error>>>,
    /// Scratch tensors of algorithm kernels by name ([`GpuBackend::with_scratch`]).
    scratch: Mutex<HashMap<&'static str, GpuTensor>>,
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
