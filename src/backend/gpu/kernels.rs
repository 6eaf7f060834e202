//! The backend's own WGSL files, its kernel table (entry point → shader file and bindings)
//! and the per-dispatch parameter blocks, which travel as immediates (push constants). An
//! algorithm's kernels are defined next to the algorithm (see [`crate::backend::kernel`]).
//!
//! Each parameter struct mirrors the WGSL struct of the same role field for field; all fields
//! are 4-byte scalars, so the layouts agree without padding rules.

use bytemuck::{Pod, Zeroable};

/// Defines one `pub(crate) const` [`WgslShader`] per line: the backend's own files (the
/// algorithms define theirs next to them; `crate::wgsl` lists every file in use).
macro_rules! shaders {
    ($($name:ident: $file:literal, preludes: $preludes:expr,
       unchecked_indexing: $unchecked:literal;)*) => {
        $(
            pub(crate) const $name: WgslShader = WgslShader {
                file: $file,
                body: include_str!(concat!("../../../shaders/", $file)),
                preludes: $preludes,
                unchecked_indexing: $unchecked,
            };
        )*
    };
}

shaders! {
    LINEAR_WGSL: "linear.wgsl", preludes: &[], unchecked_indexing: false;
    ACTIVATION_WGSL: "activation.wgsl", preludes: &[], unchecked_indexing: false;
    REDUCE_WGSL: "reduce.wgsl", preludes: &[], unchecked_indexing: false;
    FILL_WGSL: "fill.wgsl", preludes: &[], unchecked_indexing: false;
    RNG_WORDS_WGSL: "rng_words.wgsl", preludes: &[RNG], unchecked_indexing: false;
    CONV2D_WGSL: "conv2d.wgsl", preludes: &[CONV2D_GATHER], unchecked_indexing: true;
    CONV2D_COOP_WGSL: "conv2d_coop.wgsl", preludes: &[CONV2D_GATHER], unchecked_indexing: true;
    CONV2D_WIDE_WGSL: "conv2d_wide.wgsl", preludes: &[CONV2D_GATHER], unchecked_indexing: true;
    CONV2D_THIN_WGSL: "conv2d_thin.wgsl", preludes: &[CONV2D_GATHER], unchecked_indexing: true;
    POOL_WGSL: "pool.wgsl", preludes: &[], unchecked_indexing: false;
    ELEMENTWISE_WGSL: "elementwise.wgsl", preludes: &[], unchecked_indexing: false;
    ROWS_WGSL: "rows.wgsl", preludes: &[WORKGROUP_REDUCE], unchecked_indexing: false;
    UPSAMPLE_WGSL: "upsample.wgsl", preludes: &[], unchecked_indexing: false;
    SPECTRAL_NORM_WGSL: "spectral_norm.wgsl", preludes: &[WORKGROUP_REDUCE], unchecked_indexing: false;
}

use crate::backend::kernel::Access::{Read, ReadWrite};
use crate::backend::kernel::{
    layout, ImmediateLayout, WgslEntry, WgslPrelude, WgslShader, RNG, WORKGROUP_REDUCE,
};

/// `shaders/conv2d_gather.wgsl`: the conv kernels' operand gathers and result stores, shared
/// by the f32 and the tensor-core products.
pub(crate) const CONV2D_GATHER: WgslPrelude = WgslPrelude {
    file: "conv2d_gather.wgsl",
    body: include_str!("../../../shaders/conv2d_gather.wgsl"),
};

/// Defines one `pub(crate) const` [`WgslEntry`] per line and [`ALL_KERNELS`], the list of them
/// all: a kernel cannot be added without being listed, which is what lets the shader tests
/// check that every entry point in `shaders/` is built and every built one exists.
macro_rules! kernels {
    ($($name:ident: $shader:ident, $entry:literal, [$(($b:literal, $a:ident)),* $(,)?];)*) => {
        $(
            pub(crate) const $name: WgslEntry = WgslEntry {
                shader: &$shader,
                entry: $entry,
                bindings: &[$(($b, $a)),*],
            };
        )*
        /// Every kernel the backend can dispatch.
        pub(crate) const ALL_KERNELS: &[&WgslEntry] = &[$(&$name),*];
    };
}

kernels! {
    LINEAR_BACKWARD_BIAS: LINEAR_WGSL, "linear_backward_bias", [(0, Read), (2, ReadWrite)];
    RELU_FORWARD: ACTIVATION_WGSL, "relu_forward", [(0, Read), (1, ReadWrite)];
    LEAKY_RELU_FORWARD: ACTIVATION_WGSL, "leaky_relu_forward", [(0, Read), (1, ReadWrite)];
    SILU_FORWARD: ACTIVATION_WGSL, "silu_forward", [(0, Read), (1, ReadWrite)];
    RELU_BACKWARD: ACTIVATION_WGSL, "relu_backward", [(0, Read), (2, Read), (3, ReadWrite)];
    LEAKY_RELU_BACKWARD: ACTIVATION_WGSL, "leaky_relu_backward", [(0, Read), (2, Read), (3, ReadWrite)];
    SILU_BACKWARD: ACTIVATION_WGSL, "silu_backward", [(0, Read), (2, Read), (3, ReadWrite)];
    SUM_SQUARES: REDUCE_WGSL, "sum_squares", [(0, Read), (1, ReadWrite)];
    FILL: FILL_WGSL, "fill", [(0, ReadWrite)];
    KEEP_KNOWN: FILL_WGSL, "keep_known", [(0, ReadWrite), (1, Read), (2, Read)];
    PHILOX_WORDS: RNG_WORDS_WGSL, "philox_words", [(0, Read), (1, ReadWrite)];
    CONV2D_FORWARD: CONV2D_WGSL, "conv2d_forward", [(0, Read), (1, Read), (2, ReadWrite), (3, Read)];
    CONV2D_BACKWARD_DATA: CONV2D_WGSL, "conv2d_backward_data", [(0, Read), (1, Read), (2, ReadWrite)];
    CONV2D_BACKWARD_WEIGHT: CONV2D_WGSL, "conv2d_backward_weight", [(0, Read), (1, Read), (2, ReadWrite)];
    CONV2D_FORWARD_WIDE: CONV2D_WIDE_WGSL, "conv2d_forward_wide", [(0, Read), (1, Read), (2, ReadWrite), (3, Read)];
    CONV2D_BACKWARD_DATA_WIDE: CONV2D_WIDE_WGSL, "conv2d_backward_data_wide", [(0, Read), (1, Read), (2, ReadWrite)];
    CONV2D_BACKWARD_WEIGHT_WIDE: CONV2D_WIDE_WGSL, "conv2d_backward_weight_wide", [(0, Read), (1, Read), (2, ReadWrite)];
    CONV2D_BACKWARD_DATA_THIN: CONV2D_THIN_WGSL, "conv2d_backward_data_thin", [(0, Read), (1, Read), (2, ReadWrite)];
    CONV2D_FORWARD_COOP: CONV2D_COOP_WGSL, "conv2d_forward_coop", [(0, Read), (1, Read), (2, ReadWrite), (3, Read)];
    CONV2D_BACKWARD_DATA_COOP: CONV2D_COOP_WGSL, "conv2d_backward_data_coop", [(0, Read), (1, Read), (2, ReadWrite)];
    CONV2D_SUM_FORWARD: CONV2D_WGSL, "conv2d_sum_forward", [(0, Read), (2, ReadWrite), (3, Read)];
    CONV2D_SUM_DATA: CONV2D_WGSL, "conv2d_sum_data", [(0, Read), (2, ReadWrite)];
    CONV2D_SUM_WEIGHT: CONV2D_WGSL, "conv2d_sum_weight", [(0, Read), (2, ReadWrite)];
    CONV2D_BACKWARD_BIAS: CONV2D_WGSL, "conv2d_backward_bias", [(0, Read), (2, ReadWrite)];
    AVG_POOL_FORWARD: POOL_WGSL, "avg_pool_forward", [(0, Read), (1, ReadWrite)];
    AVG_POOL_BACKWARD: POOL_WGSL, "avg_pool_backward", [(0, Read), (1, ReadWrite)];
    TANH_FORWARD: ACTIVATION_WGSL, "tanh_forward", [(0, Read), (1, ReadWrite)];
    SIGMOID_FORWARD: ACTIVATION_WGSL, "sigmoid_forward", [(0, Read), (1, ReadWrite)];
    SOFTPLUS_FORWARD: ACTIVATION_WGSL, "softplus_forward", [(0, Read), (1, ReadWrite)];
    TANH_BACKWARD: ACTIVATION_WGSL, "tanh_backward", [(0, Read), (2, Read), (3, ReadWrite)];
    SIGMOID_BACKWARD: ACTIVATION_WGSL, "sigmoid_backward", [(0, Read), (2, Read), (3, ReadWrite)];
    SOFTPLUS_BACKWARD: ACTIVATION_WGSL, "softplus_backward", [(0, Read), (2, Read), (3, ReadWrite)];
    SQUARE_FORWARD: ACTIVATION_WGSL, "square_forward", [(0, Read), (1, ReadWrite)];
    SQUARE_BACKWARD: ACTIVATION_WGSL, "square_backward", [(0, Read), (2, Read), (3, ReadWrite)];
    ADD: ELEMENTWISE_WGSL, "add", [(0, Read), (1, Read), (2, ReadWrite)];
    AXPY: ELEMENTWISE_WGSL, "axpy", [(0, Read), (2, ReadWrite)];
    SCALE: ELEMENTWISE_WGSL, "scale", [(2, ReadWrite)];
    BROADCAST_ROWS: ELEMENTWISE_WGSL, "broadcast_rows", [(0, Read), (2, ReadWrite)];
    SCALE_ROWS: ELEMENTWISE_WGSL, "scale_rows", [(0, Read), (1, Read), (2, ReadWrite)];
    CHANNEL_BIAS_ADD: ELEMENTWISE_WGSL, "channel_bias_add", [(0, Read), (2, ReadWrite)];
    ROW_SUM: ROWS_WGSL, "row_sum", [(0, Read), (2, ReadWrite)];
    ROW_LOGSUMEXP: ROWS_WGSL, "row_logsumexp", [(0, Read), (2, ReadWrite)];
    ROW_SOFTMAX: ROWS_WGSL, "row_softmax", [(0, Read), (2, ReadWrite)];
    CHANNEL_SUM: ROWS_WGSL, "channel_sum", [(0, Read), (2, ReadWrite)];
    GATHER_COLS: ROWS_WGSL, "gather_cols", [(0, Read), (1, Read), (2, ReadWrite)];
    SCATTER_COLS: ROWS_WGSL, "scatter_cols", [(0, Read), (1, Read), (2, ReadWrite)];
    UPSAMPLE_FORWARD: UPSAMPLE_WGSL, "upsample_forward", [(0, Read), (1, ReadWrite)];
    UPSAMPLE_BACKWARD: UPSAMPLE_WGSL, "upsample_backward", [(0, Read), (1, ReadWrite)];
    SN_WTU: SPECTRAL_NORM_WGSL, "sn_wtu", [(0, Read), (1, Read), (5, ReadWrite)];
    SN_NORMALIZE: SPECTRAL_NORM_WGSL, "sn_normalize", [(5, ReadWrite)];
    SN_WV: SPECTRAL_NORM_WGSL, "sn_wv", [(0, Read), (2, Read), (8, ReadWrite)];
    SN_SIGMA: SPECTRAL_NORM_WGSL, "sn_sigma", [(4, Read), (6, ReadWrite), (7, ReadWrite)];
    SN_SCALE: SPECTRAL_NORM_WGSL, "sn_scale", [(0, Read), (3, Read), (8, ReadWrite)];
    SN_ROW_DOT: SPECTRAL_NORM_WGSL, "sn_row_dot", [(0, Read), (4, Read), (8, ReadWrite)];
    SN_SUM_ROWS: SPECTRAL_NORM_WGSL, "sn_sum_rows", [(8, ReadWrite)];
    SN_BACKWARD: SPECTRAL_NORM_WGSL, "sn_backward", [(0, Read), (1, Read), (2, Read), (3, Read), (8, ReadWrite)];
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
    /// Split-K slices (1: none) and the K each covers.
    pub splits: u32,
    pub k_chunk: u32,
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

/// `SumSqParams` in reduce.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub(crate) struct SumSqParams {
    pub n: u32,
    pub slot: u32,
}

/// `FillParams` in fill.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub(crate) struct FillParams {
    pub n: u32,
    pub value: f32,
}

/// `WordsParams` in rng_words.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub(crate) struct WordsParams {
    pub n: u32,
    pub seed_lo: u32,
    pub seed_hi: u32,
}

/// The immediate data, in bytes, that the device must offer: Vulkan's guaranteed minimum
/// push-constant size, enough for every kernel's parameters (the largest, the fused MLP
/// chain's, is 92 bytes). [`GpuBackend::dispatch`](super::GpuBackend::dispatch) refuses a
/// larger block.
pub(crate) const MAX_IMMEDIATE_BYTES: u32 = 128;

/// Every Rust struct the backend's own kernels take as immediates, with the shader struct it
/// must match (the algorithms list theirs next to them; `crate::wgsl` collects all).
pub(crate) fn immediate_layouts() -> Vec<ImmediateLayout> {
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
                splits,
                k_chunk,
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
        layout!("reduce.wgsl", SumSqParams { n, slot }),
        layout!("fill.wgsl", FillParams { n, value }),
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
