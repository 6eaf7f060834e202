//! The WGSL sources, the kernel table (entry point → shader file and bindings) and the
//! per-dispatch parameter blocks, which travel as immediates (push constants).
//!
//! Each parameter struct mirrors the WGSL struct of the same role field for field; all fields
//! are 4-byte scalars, so the layouts agree without padding rules.

use bytemuck::{Pod, Zeroable};

/// One WGSL file under `shaders/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Shader {
    Linear,
    Activation,
    Reduce,
    Langevin,
    Adam,
    Chains,
    Fill,
    RngWords,
    Conv2d,
    Pool,
    MlpChain,
    Health,
    Elementwise,
    Rows,
    Upsample,
    SpectralNorm,
}

const RNG: &str = include_str!("../../../shaders/rng.wgsl");
const WORKGROUP_REDUCE: &str = include_str!("../../../shaders/workgroup_reduce.wgsl");

impl Shader {
    /// The file name under `shaders/`.
    pub(crate) fn file(self) -> &'static str {
        match self {
            Shader::Linear => "linear.wgsl",
            Shader::Activation => "activation.wgsl",
            Shader::Reduce => "reduce.wgsl",
            Shader::Langevin => "langevin.wgsl",
            Shader::Adam => "adam.wgsl",
            Shader::Chains => "chains.wgsl",
            Shader::Fill => "fill.wgsl",
            Shader::RngWords => "rng_words.wgsl",
            Shader::Conv2d => "conv2d.wgsl",
            Shader::Pool => "pool.wgsl",
            Shader::MlpChain => "mlp_chain.wgsl",
            Shader::Health => "health.wgsl",
            Shader::Elementwise => "elementwise.wgsl",
            Shader::Rows => "rows.wgsl",
            Shader::Upsample => "upsample.wgsl",
            Shader::SpectralNorm => "spectral_norm.wgsl",
        }
    }

    fn body(self) -> &'static str {
        match self {
            Shader::Linear => include_str!("../../../shaders/linear.wgsl"),
            Shader::Activation => include_str!("../../../shaders/activation.wgsl"),
            Shader::Reduce => include_str!("../../../shaders/reduce.wgsl"),
            Shader::Langevin => include_str!("../../../shaders/langevin.wgsl"),
            Shader::Adam => include_str!("../../../shaders/adam.wgsl"),
            Shader::Chains => include_str!("../../../shaders/chains.wgsl"),
            Shader::Fill => include_str!("../../../shaders/fill.wgsl"),
            Shader::RngWords => include_str!("../../../shaders/rng_words.wgsl"),
            Shader::Conv2d => include_str!("../../../shaders/conv2d.wgsl"),
            Shader::Pool => include_str!("../../../shaders/pool.wgsl"),
            Shader::MlpChain => include_str!("../../../shaders/mlp_chain.wgsl"),
            Shader::Health => include_str!("../../../shaders/health.wgsl"),
            Shader::Elementwise => include_str!("../../../shaders/elementwise.wgsl"),
            Shader::Rows => include_str!("../../../shaders/rows.wgsl"),
            Shader::Upsample => include_str!("../../../shaders/upsample.wgsl"),
            Shader::SpectralNorm => include_str!("../../../shaders/spectral_norm.wgsl"),
        }
    }

    /// Whether the shader draws random numbers, and so gets `rng.wgsl` prepended.
    fn needs_rng(self) -> bool {
        matches!(
            self,
            Shader::Langevin | Shader::Chains | Shader::RngWords | Shader::MlpChain
        )
    }

    /// Whether the shader reduces rows in 256-thread workgroups, and so gets
    /// `workgroup_reduce.wgsl` prepended.
    fn needs_workgroup_reduce(self) -> bool {
        matches!(self, Shader::Rows | Shader::SpectralNorm)
    }

    /// The complete WGSL module as compiled: the shared files it needs first.
    pub(crate) fn source(self) -> String {
        let mut source = String::new();
        for (needed, prelude) in [
            (self.needs_rng(), RNG),
            (self.needs_workgroup_reduce(), WORKGROUP_REDUCE),
        ] {
            if needed {
                source.push_str(prelude);
                source.push('\n');
            }
        }
        source + self.body()
    }

    const ALL: [Shader; 16] = [
        Shader::Linear,
        Shader::Activation,
        Shader::Reduce,
        Shader::Langevin,
        Shader::Adam,
        Shader::Chains,
        Shader::Fill,
        Shader::RngWords,
        Shader::Conv2d,
        Shader::Pool,
        Shader::MlpChain,
        Shader::Health,
        Shader::Elementwise,
        Shader::Rows,
        Shader::Upsample,
        Shader::SpectralNorm,
    ];
}

/// The WGSL module the backend builds from `shaders/<file>` (e.g. `"langevin.wgsl"`), with
/// `rng.wgsl` and `workgroup_reduce.wgsl` prepended where the backend does that; `None` for a
/// file the backend does not use. Those two shared files (no entry points) are returned as is. Lets the shader tests validate
/// exactly what the GPU compiles.
pub fn shader_source(file: &str) -> Option<String> {
    match file {
        "rng.wgsl" => return Some(RNG.to_string()),
        "workgroup_reduce.wgsl" => return Some(WORKGROUP_REDUCE.to_string()),
        _ => {}
    }
    Shader::ALL
        .iter()
        .find(|s| s.file() == file)
        .map(|s| s.source())
}

/// Every compute entry point the backend builds a pipeline for, as `(file, entry)` with the
/// file under `shaders/`: lets the shader tests check that this list and the `@compute`
/// functions in the files are the same set.
pub fn entry_points() -> Vec<(&'static str, &'static str)> {
    ALL_KERNELS
        .iter()
        .map(|k| (k.shader.file(), k.entry))
        .collect()
}

/// Whether a kernel only reads a binding or also writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    Read,
    ReadWrite,
}

/// One compute entry point: where its code lives and its storage bindings (group 0), in
/// the order the dispatch passes buffers.
#[derive(Debug)]
pub(crate) struct Kernel {
    pub shader: Shader,
    pub entry: &'static str,
    pub bindings: &'static [(u32, Access)],
}

use Access::{Read, ReadWrite};

/// Defines one `pub(crate) const` [`Kernel`] per line and [`ALL_KERNELS`], the list of them
/// all: a kernel cannot be added without being listed, which is what lets the shader tests
/// check that every entry point in `shaders/` is built and every built one exists.
macro_rules! kernels {
    ($($name:ident: $shader:ident, $entry:literal, [$(($b:literal, $a:ident)),* $(,)?];)*) => {
        $(
            pub(crate) const $name: Kernel = Kernel {
                shader: Shader::$shader,
                entry: $entry,
                bindings: &[$(($b, $a)),*],
            };
        )*
        /// Every kernel the backend can dispatch.
        pub(crate) const ALL_KERNELS: &[&Kernel] = &[$(&$name),*];
    };
}

kernels! {
    LINEAR_FORWARD: Linear, "linear_forward", [(0, Read), (1, Read), (2, ReadWrite), (3, Read)];
    LINEAR_BACKWARD_DATA: Linear, "linear_backward_data", [(0, Read), (1, Read), (2, ReadWrite)];
    LINEAR_BACKWARD_PARAMS: Linear, "linear_backward_params", [(0, Read), (1, Read), (2, ReadWrite)];
    LINEAR_BACKWARD_BIAS: Linear, "linear_backward_bias", [(0, Read), (2, ReadWrite)];
    RELU_FORWARD: Activation, "relu_forward", [(0, Read), (1, ReadWrite)];
    LEAKY_RELU_FORWARD: Activation, "leaky_relu_forward", [(0, Read), (1, ReadWrite)];
    SILU_FORWARD: Activation, "silu_forward", [(0, Read), (1, ReadWrite)];
    RELU_BACKWARD: Activation, "relu_backward", [(0, Read), (2, Read), (3, ReadWrite)];
    LEAKY_RELU_BACKWARD: Activation, "leaky_relu_backward", [(0, Read), (2, Read), (3, ReadWrite)];
    SILU_BACKWARD: Activation, "silu_backward", [(0, Read), (2, Read), (3, ReadWrite)];
    CD_LOSS: Reduce, "cd_loss", [(0, Read), (1, ReadWrite), (2, ReadWrite)];
    SUM_SQUARES: Reduce, "sum_squares", [(0, Read), (1, ReadWrite)];
    LANGEVIN_UPDATE: Langevin, "langevin_update", [(0, ReadWrite), (1, Read)];
    MLP_LANGEVIN_CHAIN: MlpChain, "mlp_langevin_chain", [(0, Read), (1, ReadWrite)];
    ADAM_UPDATE: Adam, "adam_update", [(0, ReadWrite), (1, Read), (2, ReadWrite), (3, ReadWrite), (4, Read)];
    REPLAY_DRAW: Chains, "replay_draw", [(0, Read), (1, ReadWrite), (2, ReadWrite)];
    REPLAY_SCATTER: Chains, "replay_scatter", [(0, Read), (1, Read), (2, ReadWrite)];
    FILL: Fill, "fill", [(0, ReadWrite)];
    KEEP_KNOWN: Fill, "keep_known", [(0, ReadWrite), (1, Read), (2, Read)];
    FLAG_NON_FINITE: Health, "flag_non_finite", [(0, Read), (1, ReadWrite)];
    PHILOX_WORDS: RngWords, "philox_words", [(0, Read), (1, ReadWrite)];
    CONV2D_FORWARD: Conv2d, "conv2d_forward", [(0, Read), (1, Read), (2, ReadWrite), (3, Read)];
    CONV2D_BACKWARD_DATA: Conv2d, "conv2d_backward_data", [(0, Read), (1, Read), (2, ReadWrite)];
    CONV2D_BACKWARD_WEIGHT: Conv2d, "conv2d_backward_weight", [(0, Read), (1, Read), (2, ReadWrite)];
    CONV2D_BACKWARD_BIAS: Conv2d, "conv2d_backward_bias", [(0, Read), (2, ReadWrite)];
    AVG_POOL_FORWARD: Pool, "avg_pool_forward", [(0, Read), (1, ReadWrite)];
    AVG_POOL_BACKWARD: Pool, "avg_pool_backward", [(0, Read), (1, ReadWrite)];
    TANH_FORWARD: Activation, "tanh_forward", [(0, Read), (1, ReadWrite)];
    SIGMOID_FORWARD: Activation, "sigmoid_forward", [(0, Read), (1, ReadWrite)];
    SOFTPLUS_FORWARD: Activation, "softplus_forward", [(0, Read), (1, ReadWrite)];
    TANH_BACKWARD: Activation, "tanh_backward", [(0, Read), (2, Read), (3, ReadWrite)];
    SIGMOID_BACKWARD: Activation, "sigmoid_backward", [(0, Read), (2, Read), (3, ReadWrite)];
    SOFTPLUS_BACKWARD: Activation, "softplus_backward", [(0, Read), (2, Read), (3, ReadWrite)];
    ADD: Elementwise, "add", [(0, Read), (1, Read), (2, ReadWrite)];
    AXPY: Elementwise, "axpy", [(0, Read), (2, ReadWrite)];
    SCALE: Elementwise, "scale", [(2, ReadWrite)];
    BROADCAST_ROWS: Elementwise, "broadcast_rows", [(0, Read), (2, ReadWrite)];
    SCALE_ROWS: Elementwise, "scale_rows", [(0, Read), (1, Read), (2, ReadWrite)];
    CHANNEL_BIAS_ADD: Elementwise, "channel_bias_add", [(0, Read), (2, ReadWrite)];
    ROW_SUM: Rows, "row_sum", [(0, Read), (2, ReadWrite)];
    ROW_LOGSUMEXP: Rows, "row_logsumexp", [(0, Read), (2, ReadWrite)];
    ROW_SOFTMAX: Rows, "row_softmax", [(0, Read), (2, ReadWrite)];
    CHANNEL_SUM: Rows, "channel_sum", [(0, Read), (2, ReadWrite)];
    GATHER_COLS: Rows, "gather_cols", [(0, Read), (1, Read), (2, ReadWrite)];
    SCATTER_COLS: Rows, "scatter_cols", [(0, Read), (1, Read), (2, ReadWrite)];
    UPSAMPLE_FORWARD: Upsample, "upsample_forward", [(0, Read), (1, ReadWrite)];
    UPSAMPLE_BACKWARD: Upsample, "upsample_backward", [(0, Read), (1, ReadWrite)];
    SN_WTU: SpectralNorm, "sn_wtu", [(0, Read), (1, Read), (5, ReadWrite)];
    SN_NORMALIZE: SpectralNorm, "sn_normalize", [(5, ReadWrite)];
    SN_WV: SpectralNorm, "sn_wv", [(0, Read), (2, Read), (8, ReadWrite)];
    SN_SIGMA: SpectralNorm, "sn_sigma", [(4, Read), (6, ReadWrite), (7, ReadWrite)];
    SN_SCALE: SpectralNorm, "sn_scale", [(0, Read), (3, Read), (8, ReadWrite)];
    SN_ROW_DOT: SpectralNorm, "sn_row_dot", [(0, Read), (4, Read), (8, ReadWrite)];
    SN_SUM_ROWS: SpectralNorm, "sn_sum_rows", [(8, ReadWrite)];
    SN_BACKWARD: SpectralNorm, "sn_backward", [(0, Read), (1, Read), (2, Read), (3, Read), (8, ReadWrite)];
}

/// `LinearParams` in linear.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub(crate) struct LinearParams {
    pub batch: u32,
    pub inputs: u32,
    pub outputs: u32,
}

/// `ConvParams` in conv2d.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub(crate) struct ConvParams {
    pub batch: u32,
    pub in_channels: u32,
    pub out_channels: u32,
    pub height: u32,
    pub width: u32,
    pub kernel: u32,
    pub stride: u32,
    pub padding: u32,
    pub out_height: u32,
    pub out_width: u32,
}

/// `PoolParams` in pool.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub(crate) struct PoolParams {
    pub planes: u32,
    pub height: u32,
    pub width: u32,
    pub kernel: u32,
    pub out_height: u32,
    pub out_width: u32,
}

/// `EltParams` in elementwise.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub(crate) struct EltParams {
    pub n: u32,
    pub cols: u32,
    pub channels: u32,
    pub alpha: f32,
}

/// `RowParams` in rows.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub(crate) struct RowParams {
    pub rows: u32,
    pub cols: u32,
    pub pixels: u32,
    pub alpha: f32,
}

/// `SnParams` in spectral_norm.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub(crate) struct SnParams {
    pub rows: u32,
    pub cols: u32,
    pub flag: u32,
    pub n: u32,
}

/// `UpsampleParams` in upsample.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub(crate) struct UpsampleParams {
    pub planes: u32,
    pub height: u32,
    pub width: u32,
    pub factor: u32,
}

/// `ActParams` in activation.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub(crate) struct ActParams {
    pub n: u32,
    pub slope: f32,
}

/// `CdParams` in reduce.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub(crate) struct CdParams {
    pub n: u32,
    pub n_pos: u32,
    pub alpha: f32,
}

/// `SumSqParams` in reduce.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub(crate) struct SumSqParams {
    pub n: u32,
    pub slot: u32,
}

/// `LangevinParams` in langevin.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub(crate) struct LangevinParams {
    pub rows: u32,
    pub dim: u32,
    pub blocks_per_row: u32,
    pub step: f32,
    pub noise: f32,
    pub clip: f32,
    pub has_clip: u32,
    pub lo: f32,
    pub hi: f32,
    pub seed_lo: u32,
    pub seed_hi: u32,
    pub global_step: u32,
    pub chain_offset: u32,
}

/// `MlpChainParams` in mlp_chain.wgsl (the two vec4s first, so no padding is needed).
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub(crate) struct MlpChainParams {
    pub widths: [u32; 8],
    pub rows: u32,
    pub layers: u32,
    pub activations: u32,
    pub slope: f32,
    pub steps: u32,
    pub step: f32,
    pub noise: f32,
    pub clip: f32,
    pub has_clip: u32,
    pub lo: f32,
    pub hi: f32,
    pub seed_lo: u32,
    pub seed_hi: u32,
    pub global_step: u32,
    pub chain_offset: u32,
}

/// Limits of mlp_chain.wgsl (its `MAX_WIDTH`, `MAX_HIDDEN`, workgroup size and memory).
pub(crate) const MLP_CHAIN_MAX_WIDTH: usize = 128;
pub(crate) const MLP_CHAIN_MAX_HIDDEN: usize = 4;
pub(crate) const MLP_CHAIN_WORKGROUP: u32 = 128;
pub(crate) const MLP_CHAIN_CHAINS: usize = 8;
pub(crate) const MLP_CHAIN_WORKGROUP_BYTES: u32 = 1792 * 16;

/// `AdamParams` in adam.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub(crate) struct AdamParams {
    pub n: u32,
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub bias_correction1: f32,
    pub bias_correction2: f32,
    pub max_grad_norm: f32,
    pub has_clip: u32,
    pub norm_slots: u32,
}

/// `DrawParams` in chains.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub(crate) struct DrawParams {
    pub capacity: u32,
    pub batch: u32,
    pub dim: u32,
    pub blocks_per_row: u32,
    pub reinit_prob: f32,
    pub lo: f32,
    pub hi: f32,
    pub seed_lo: u32,
    pub seed_hi: u32,
    pub iteration: u32,
}

/// `ScatterParams` in chains.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub(crate) struct ScatterParams {
    pub capacity: u32,
    pub batch: u32,
    pub dim: u32,
}

/// `FillParams` in fill.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub(crate) struct FillParams {
    pub n: u32,
    pub value: f32,
}

/// `HealthParams` in health.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub(crate) struct HealthParams {
    pub n: u32,
    pub slot: u32,
    pub mark: f32,
}

/// `WordsParams` in rng_words.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub(crate) struct WordsParams {
    pub n: u32,
    pub seed_lo: u32,
    pub seed_hi: u32,
}

/// The largest parameter block, in bytes: the device must offer this much immediate data.
pub(crate) const MAX_IMMEDIATE_BYTES: u32 = std::mem::size_of::<LangevinParams>() as u32;
const _: () = assert!(std::mem::size_of::<ConvParams>() as u32 <= MAX_IMMEDIATE_BYTES);
const _: () = assert!(std::mem::size_of::<PoolParams>() as u32 <= MAX_IMMEDIATE_BYTES);

/// How one immediates block is laid out on the Rust side, for checking it against the
/// `struct` of the same role in its shader (tests/naga_shaders.rs does).
#[doc(hidden)]
#[derive(Clone, Debug)]
pub struct ImmediateLayout {
    /// The shader file, as [`shader_source`] takes it.
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
        ImmediateLayout {
            shader: $shader,
            wgsl_struct: stringify!($ty),
            size: std::mem::size_of::<$ty>(),
            fields: vec![$((stringify!($field), std::mem::offset_of!($ty, $field))),*],
        }
    }};
}

/// Every Rust struct the backend passes as immediates, with the shader struct it must match.
#[doc(hidden)]
pub fn immediate_layouts() -> Vec<ImmediateLayout> {
    vec![
        layout!(
            "linear.wgsl",
            LinearParams {
                batch,
                inputs,
                outputs
            }
        ),
        layout!(
            "conv2d.wgsl",
            ConvParams {
                batch,
                in_channels,
                out_channels,
                height,
                width,
                kernel,
                stride,
                padding,
                out_height,
                out_width,
            }
        ),
        layout!(
            "pool.wgsl",
            PoolParams {
                planes,
                height,
                width,
                kernel,
                out_height,
                out_width
            }
        ),
        layout!(
            "elementwise.wgsl",
            EltParams {
                n,
                cols,
                channels,
                alpha
            }
        ),
        layout!(
            "rows.wgsl",
            RowParams {
                rows,
                cols,
                pixels,
                alpha
            }
        ),
        layout!(
            "spectral_norm.wgsl",
            SnParams {
                rows,
                cols,
                flag,
                n
            }
        ),
        layout!(
            "upsample.wgsl",
            UpsampleParams {
                planes,
                height,
                width,
                factor
            }
        ),
        layout!("activation.wgsl", ActParams { n, slope }),
        layout!("reduce.wgsl", CdParams { n, n_pos, alpha }),
        layout!("reduce.wgsl", SumSqParams { n, slot }),
        layout!(
            "langevin.wgsl",
            LangevinParams {
                rows,
                dim,
                blocks_per_row,
                step,
                noise,
                clip,
                has_clip,
                lo,
                hi,
                seed_lo,
                seed_hi,
                global_step,
                chain_offset,
            }
        ),
        {
            // The shader holds the eight widths as two vec4<u32>: `widths_lo`, `widths_hi`.
            let mut l = layout!(
                "mlp_chain.wgsl",
                MlpChainParams {
                    widths,
                    rows,
                    layers,
                    activations,
                    slope,
                    steps,
                    step,
                    noise,
                    clip,
                    has_clip,
                    lo,
                    hi,
                    seed_lo,
                    seed_hi,
                    global_step,
                    chain_offset,
                }
            );
            let widths = std::mem::offset_of!(MlpChainParams, widths);
            l.fields
                .splice(0..1, [("widths_lo", widths), ("widths_hi", widths + 16)]);
            l
        },
        layout!(
            "adam.wgsl",
            AdamParams {
                n,
                lr,
                beta1,
                beta2,
                eps,
                bias_correction1,
                bias_correction2,
                max_grad_norm,
                has_clip,
                norm_slots,
            }
        ),
        layout!(
            "chains.wgsl",
            DrawParams {
                capacity,
                batch,
                dim,
                blocks_per_row,
                reinit_prob,
                lo,
                hi,
                seed_lo,
                seed_hi,
                iteration,
            }
        ),
        layout!(
            "chains.wgsl",
            ScatterParams {
                capacity,
                batch,
                dim
            }
        ),
        layout!("fill.wgsl", FillParams { n, value }),
        layout!("health.wgsl", HealthParams { n, slot, mark }),
        layout!(
            "rng_words.wgsl",
            WordsParams {
                n,
                seed_lo,
                seed_hi
            }
        ),
    ]
}
