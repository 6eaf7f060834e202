//! The one entry point for an algorithm's own kernels (candle's `CustomOp`, for our two
//! devices).
//!
//! The [`Backend`](super::Backend) trait holds what every model needs: memory, sync, the
//! layer primitives and a few general ops. A kernel that only one algorithm needs (the CD
//! loss, a Langevin update, Adam, a replay draw, the fused MLP chain) is not a trait method:
//! the algorithm defines a type that implements [`Kernel`] next to its own code — a WGSL
//! entry point under `shaders/` and its CPU twin — and runs it with
//! [`Backend::run`](super::Backend::run). Adding an algorithm then touches its own module,
//! not the trait and not the backends.
//!
//! Both backends do the same in `run`: ask the kernel's [`Kernel::check`] (shape checks live
//! above the backends, so both refuse a bad call with the same error, returned by the next
//! `flush`/`read`/`wait`), then call [`Kernel::cpu`] (counted and timed under
//! [`Kernel::name`]) or [`Kernel::gpu`] (each dispatch counted and timed under its entry
//! point).
//!
//! A fused kernel that only runs on some devices or shapes (the MLP chain keeps a whole
//! chain in workgroup memory) says so in [`Kernel::runs_on_gpu`]; the caller asks
//! [`Backend::supports`](super::Backend::supports) and falls back to the general path.
//!
//! A kernel written outside the crate, here with only a CPU twin:
//!
//! ```
//! use ebm::backend::{Backend, GpuBackend, GpuTensor, Kernel};
//! use ebm::{CpuBackend, Error, Result};
//!
//! /// y = x³, elementwise.
//! struct Cube;
//!
//! impl Kernel for Cube {
//!     fn name(&self) -> &'static str {
//!         "cube"
//!     }
//!     fn check(&self, inputs: &[usize], outputs: &[usize]) -> Result<()> {
//!         match (inputs, outputs) {
//!             ([x], [y]) if x == y => Ok(()),
//!             _ => Err(Error::Shape(format!("cube: x {inputs:?}, y {outputs:?}"))),
//!         }
//!     }
//!     fn cpu(&self, inputs: &[&[f32]], outputs: &mut [&mut [f32]]) {
//!         for (y, x) in outputs[0].iter_mut().zip(inputs[0]) {
//!             *y = x * x * x;
//!         }
//!     }
//!     fn runs_on_gpu(&self, _gpu: &GpuBackend) -> bool {
//!         false
//!     }
//! }
//!
//! # fn main() -> ebm::Result<()> {
//! let b = CpuBackend::new();
//! let x = b.upload(&[1.0, -2.0])?;
//! let mut y = b.zeros(2)?;
//! b.run(&Cube, &[&x], &mut [&mut y]);
//! assert_eq!(b.read(&y)?, [1.0, -8.0]);
//! // A bad shape is refused before the kernel runs, and reported by the next read.
//! let mut short = b.zeros(1)?;
//! b.run(&Cube, &[&x], &mut [&mut short]);
//! assert!(b.read(&short).unwrap_err().to_string().contains("cube"));
//! # Ok(())
//! # }
//! ```

use super::gpu::{GpuBackend, GpuTensor};
use crate::{Error, Result};

/// An algorithm's own kernel: a shape check, a CPU twin and a GPU launch.
///
/// Tensors travel as two lists: `inputs` are only read, `outputs` are written (and may be
/// read, for in-place updates). Each kernel documents the order it expects.
pub trait Kernel {
    /// The name under which profiles count its time (the entry point, for a one-dispatch
    /// kernel) and errors name it.
    fn name(&self) -> &'static str;

    /// Refuse a call whose tensor lengths (`inputs`, `outputs`, in order) the kernel cannot
    /// run on, with one line naming the problem. Called by both backends before anything
    /// else, so the CPU twin and the GPU launch may assume that it passed.
    fn check(&self, inputs: &[usize], outputs: &[usize]) -> Result<()>;

    /// The CPU twin: the same math as the WGSL kernel, in Rust, run at once.
    fn cpu(&self, inputs: &[&[f32]], outputs: &mut [&mut [f32]]);

    /// Record the WGSL kernel(s) on `gpu` (see [`GpuBackend::dispatch`]). The default says
    /// that there is no GPU kernel; such a kernel should also return false from
    /// [`runs_on_gpu`](Self::runs_on_gpu).
    fn gpu(&self, gpu: &GpuBackend, inputs: &[&GpuTensor], outputs: &[&GpuTensor]) -> Result<()> {
        let _ = (gpu, inputs, outputs);
        Err(Error::Gpu(format!("{} has no GPU kernel", self.name())))
    }

    /// Whether [`gpu`](Self::gpu) runs this call on this device (a fused kernel bounded by
    /// workgroup memory says no for shapes it cannot hold). Callers that have another way
    /// ask [`Backend::supports`](super::Backend::supports) first.
    fn runs_on_gpu(&self, gpu: &GpuBackend) -> bool {
        let _ = gpu;
        true
    }

    /// Whether [`cpu`](Self::cpu) runs this call (every kernel in the crate does).
    fn runs_on_cpu(&self) -> bool {
        true
    }
}

/// One line naming a kernel's tensors that are shorter than it needs: `(what, have, need)`
/// triples, checked in order. For [`Kernel::check`] implementations.
///
/// ```
/// use ebm::backend::kernel::need;
///
/// assert!(need("k", &[("x", 4, 4), ("y", 8, 4)]).is_ok());
/// let e = need("k", &[("x", 4, 4), ("y", 2, 4)]).unwrap_err();
/// assert_eq!(e.to_string(), "shape mismatch: k: y holds 2 values, needs 4");
/// ```
pub fn need(kernel: &str, lens: &[(&str, usize, usize)]) -> Result<()> {
    match lens.iter().find(|(_, have, need)| have < need) {
        Some((what, have, need)) => Err(Error::Shape(format!(
            "{kernel}: {what} holds {have} values, needs {need}"
        ))),
        None => Ok(()),
    }
}

/// The counts `inputs.len()` and `outputs.len()` a kernel takes, as an error otherwise.
pub fn arity(
    kernel: &str,
    inputs: &[usize],
    outputs: &[usize],
    want: (usize, usize),
) -> Result<()> {
    if (inputs.len(), outputs.len()) == want {
        Ok(())
    } else {
        Err(Error::Shape(format!(
            "{kernel} takes {} input and {} output tensors, got {} and {}",
            want.0,
            want.1,
            inputs.len(),
            outputs.len()
        )))
    }
}

/// Whether a binding of a WGSL entry point is only read or also written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// `var<storage, read>`
    Read,
    /// `var<storage, read_write>`
    ReadWrite,
}

/// One WGSL file under `shaders/`, as the GPU compiles it.
#[derive(Debug)]
pub struct WgslShader {
    /// The file name under `shaders/`, e.g. `"langevin.wgsl"`.
    pub file: &'static str,
    /// Its text (`include_str!`).
    pub body: &'static str,
    /// Shared files of functions (no entry points) prepended to it, in order.
    pub preludes: &'static [WgslPrelude],
    /// Whether the file's kernels guard every buffer and workgroup index themselves, so the
    /// module may be built without wgpu's per-access bounds clamps (which cost the GEMM
    /// kernels' innermost loops several instructions per load). Only for kernels whose
    /// indexing is tested on every shape class; `EBM_GPU_BOUNDS_CHECKS=on` restores the
    /// clamps everywhere.
    pub unchecked_indexing: bool,
}

/// A file of shared WGSL (types, functions, bindings; no entry points) that shaders prepend.
#[derive(Clone, Copy, Debug)]
pub struct WgslPrelude {
    /// The file name under `shaders/`.
    pub file: &'static str,
    /// Its text (`include_str!`).
    pub body: &'static str,
}

/// `shaders/rng.wgsl`: Philox4x32-10 and the uniform/normal maps.
pub const RNG: WgslPrelude = WgslPrelude {
    file: "rng.wgsl",
    body: include_str!("../../shaders/rng.wgsl"),
};
/// `shaders/workgroup_reduce.wgsl`: the shared tree sum.
pub const WORKGROUP_REDUCE: WgslPrelude = WgslPrelude {
    file: "workgroup_reduce.wgsl",
    body: include_str!("../../shaders/workgroup_reduce.wgsl"),
};

impl WgslShader {
    /// The complete module as compiled: its `enable` directives (which WGSL wants before
    /// anything else), the shared files it uses, then the rest of its own text.
    pub fn source(&self) -> String {
        let (directives, rest): (Vec<&str>, Vec<&str>) =
            self.body.lines().partition(|l| l.starts_with("enable "));
        let mut source = String::new();
        for line in directives {
            source.push_str(line);
            source.push('\n');
        }
        for prelude in self.preludes {
            source.push_str(prelude.body);
            source.push('\n');
        }
        for line in rest {
            source.push_str(line);
            source.push('\n');
        }
        source
    }
}

/// One compute entry point: its shader and its storage bindings (group 0), in the order a
/// dispatch passes the buffers.
#[derive(Debug)]
pub struct WgslEntry {
    /// The file that defines it.
    pub shader: &'static WgslShader,
    /// The `@compute fn` name; also the pipeline's cache key, so unique across files.
    pub entry: &'static str,
    /// `(binding, access)` per buffer.
    pub bindings: &'static [(u32, Access)],
}

/// How one immediates block is laid out on the Rust side, for checking it against the
/// `struct` of the same role in its shader (tests/naga_shaders.rs does, for every block in
/// [`crate::wgsl::immediate_layouts`]).
#[doc(hidden)]
#[derive(Clone, Debug)]
pub struct ImmediateLayout {
    /// The shader file, as [`crate::wgsl::shader_source`] takes it.
    pub shader: &'static str,
    /// The name of the WGSL struct the Rust struct must match.
    pub wgsl_struct: &'static str,
    /// `size_of` the Rust struct.
    pub size: usize,
    /// Every field of the Rust struct in declaration order, with its `offset_of`.
    pub fields: Vec<(&'static str, usize)>,
}

/// One [`ImmediateLayout`]; the pattern makes leaving a field out a compile error.
macro_rules! layout {
    ($shader:literal, $ty:ident { $($field:ident),* $(,)? }) => {{
        let _exhaustive = |p: $ty| {
            let $ty { $($field: _),* } = p;
        };
        $crate::backend::kernel::ImmediateLayout {
            shader: $shader,
            wgsl_struct: stringify!($ty),
            size: std::mem::size_of::<$ty>(),
            fields: vec![$((stringify!($field), std::mem::offset_of!($ty, $field))),*],
        }
    }};
}
pub(crate) use layout;

/// Low and high words of a seed: the Philox key as the WGSL kernels take it.
pub fn seed_words(seed: u64) -> (u32, u32) {
    (seed as u32, (seed >> 32) as u32)
}
