//! How the GPU backend is opened: the switches that choose among the conv kernels. Each has
//! an environment variable, which is how the CLI's global options reach the backend.

/// How the GPU backend is opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GpuOptions {
    /// Run the conv forward and input-gradient products on tensor cores where the adapter
    /// can (f16 inputs, f32 sums); the f32 kernels run where it cannot.
    pub tensor_cores: bool,
    /// The output tiles of the f32 conv kernels.
    pub conv_tiles: ConvTiles,
    /// How many chains a workgroup of the fused MLP Langevin chain runs.
    pub mlp_chain_group: MlpChainGroup,
    /// Where the gradient into an input of at most 4 channels runs.
    pub thin_inputs: ThinInputs,
}

impl GpuOptions {
    /// The options the environment asks for: `EBM_TENSOR_CORES=on` (or `1`, `true`) for
    /// tensor cores, `EBM_CONV_TILES=64|128|auto` for the conv tiles, `EBM_MLP_CHAIN_GROUP=8|4`
    /// for the fused MLP chain, `EBM_THIN_INPUTS=kernel|tiles` for the gradient into thin
    /// inputs. `ebm --tensor-cores`, `--conv-tiles`, `--mlp-chain-group` and `--thin-inputs`
    /// set them.
    pub fn from_env() -> Self {
        GpuOptions {
            tensor_cores: env_switch("EBM_TENSOR_CORES"),
            conv_tiles: ConvTiles::from_env(),
            mlp_chain_group: MlpChainGroup::from_env(),
            thin_inputs: ThinInputs::from_env(),
        }
    }
}

/// The side of the output tiles of the f32 conv products: the work of one workgroup of 256
/// threads. Both kernels compute the same sums in the same order with the same multiply-adds,
/// so they give the same bits; which is faster depends on the GPU and the product.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ConvTiles {
    /// 64×64 tiles, 4×4 outputs per thread (`conv2d.wgsl`), for every product.
    #[default]
    Square64,
    /// 128×128 tiles, 8×8 outputs per thread (`conv2d_wide.wgsl`): half the workgroup-memory
    /// reads, barriers and gathers per multiply-add, for products with at least 128 rows
    /// (output channels, or input channels for the input gradient); products with fewer
    /// would leave most of such a tile empty and keep the 64×64 tiles.
    Wide128,
    /// For each product with at least 128 rows, whichever of the two runs faster on this
    /// device: timed on the first product of its dimensions (a few milliseconds each) and
    /// remembered for the process, as cuDNN's benchmark mode does.
    Auto,
}

impl ConvTiles {
    /// Every choice, in the order `--conv-tiles` lists them.
    pub const ALL: [ConvTiles; 3] = [ConvTiles::Square64, ConvTiles::Wide128, ConvTiles::Auto];

    /// The value that names it: `64`, `128` or `auto`.
    pub fn name(self) -> &'static str {
        match self {
            ConvTiles::Square64 => "64",
            ConvTiles::Wide128 => "128",
            ConvTiles::Auto => "auto",
        }
    }

    /// The choice named `value` (`64`, `128` or `auto`), or `None`.
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == value)
    }

    /// `EBM_CONV_TILES` (see [`env_choice`]).
    fn from_env() -> Self {
        env_choice("EBM_CONV_TILES", Self::parse, "64, 128 or auto", "64")
    }

    /// The tile side for a product with `rows` rows of output, or `None` where it is to be
    /// timed (`Auto`, 128 rows or more).
    pub(crate) fn fixed_side(self, rows: usize) -> Option<usize> {
        match self {
            _ if rows < 128 => Some(64),
            ConvTiles::Square64 => Some(64),
            ConvTiles::Wide128 => Some(128),
            ConvTiles::Auto => None,
        }
    }
}

/// Chains per workgroup of the fused MLP Langevin chain (shaders/mlp_chain.wgsl). Each
/// thread computes one unit of a layer for all of its workgroup's chains, so 8 chains give
/// each weight read 8 multiply-adds, and 4 give twice the workgroups (and threads) for the
/// same batch: more of a large GPU busy when the batch is small for it. The sums per chain
/// are the same, so are the results, to the bit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MlpChainGroup {
    /// 8 chains a workgroup (two vec4s per unit).
    #[default]
    Eight,
    /// 4 chains a workgroup (one vec4 per unit).
    Four,
}

impl MlpChainGroup {
    /// Every choice, in the order `--mlp-chain-group` lists them.
    pub const ALL: [MlpChainGroup; 2] = [MlpChainGroup::Eight, MlpChainGroup::Four];

    /// Chains per workgroup: 8 or 4.
    pub fn chains(self) -> usize {
        match self {
            MlpChainGroup::Eight => 8,
            MlpChainGroup::Four => 4,
        }
    }

    /// The choice named `value` (`8` or `4`), or `None`.
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|g| g.chains().to_string() == value)
    }

    /// `EBM_MLP_CHAIN_GROUP` (see [`env_choice`]).
    fn from_env() -> Self {
        env_choice("EBM_MLP_CHAIN_GROUP", Self::parse, "8 or 4", "8")
    }
}

/// Where the gradient into an input of at most 4 channels (an image, a 2-D point) runs: on its
/// own kernel (`conv2d_thin.wgsl`), or on the tiles like any other product. The tiles are
/// there to compare the two on a GPU (`--thin-inputs tiles`); the results differ in their
/// last bits (the two cut K into other slices).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ThinInputs {
    /// `conv2d_thin.wgsl`: each thread all rows of 4 pixels, no workgroup memory.
    #[default]
    Kernel,
    /// The tiles (64×64, or whatever [`ConvTiles`] and tensor cores choose), 3 rows of 64
    /// filled for an RGB image.
    Tiles,
}

impl ThinInputs {
    /// Every choice.
    pub const ALL: [ThinInputs; 2] = [ThinInputs::Kernel, ThinInputs::Tiles];

    /// The value that names it: `kernel` or `tiles`.
    pub fn name(self) -> &'static str {
        match self {
            ThinInputs::Kernel => "kernel",
            ThinInputs::Tiles => "tiles",
        }
    }

    /// The choice named `value` (`kernel` or `tiles`), or `None`.
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == value)
    }

    /// `EBM_THIN_INPUTS` (see [`env_choice`]).
    fn from_env() -> Self {
        env_choice("EBM_THIN_INPUTS", Self::parse, "kernel or tiles", "kernel")
    }
}

/// Environment variable `name` read by `parse`, or the default (named `default`) when it is
/// unset or empty. A library user's bad value gets one warning naming the `expected` values,
/// and the default (the CLI refuses it before it gets here).
fn env_choice<T: Default>(
    name: &str,
    parse: fn(&str) -> Option<T>,
    expected: &str,
    default: &str,
) -> T {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => parse(&v).unwrap_or_else(|| {
            eprintln!("warning: {name}={v:?} is not {expected}; using {default}");
            T::default()
        }),
        _ => T::default(),
    }
}

/// An on/off switch's value: `on`, `1`, `true` or `off`, `0`, `false`, empty; `None` for
/// anything else. The one reading of the backend's switches (`EBM_TENSOR_CORES`,
/// `EBM_GPU_BOUNDS_CHECKS`) and of the CLI's `--tensor-cores`.
pub fn parse_switch(value: &str) -> Option<bool> {
    match value {
        "on" | "1" | "true" => Some(true),
        "off" | "0" | "false" | "" => Some(false),
        _ => None,
    }
}

/// Whether environment variable `name` is set to a value that turns a switch on.
pub(crate) fn env_switch(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| parse_switch(&v) == Some(true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_switch_takes_on_1_true_off_0_false_and_nothing_else() {
        for (value, parsed) in [
            ("on", Some(true)),
            ("1", Some(true)),
            ("true", Some(true)),
            ("off", Some(false)),
            ("0", Some(false)),
            ("false", Some(false)),
            ("", Some(false)),
            ("yes please", None),
        ] {
            assert_eq!(parse_switch(value), parsed, "{value:?}");
        }
    }

    #[test]
    fn mlp_chain_groups_are_8_and_4() {
        assert_eq!(MlpChainGroup::default().chains(), 8);
        assert_eq!(MlpChainGroup::parse("4"), Some(MlpChainGroup::Four));
        assert_eq!(MlpChainGroup::parse("8"), Some(MlpChainGroup::Eight));
        for bad in ["", "2", "16", "four"] {
            assert_eq!(MlpChainGroup::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn thin_inputs_take_kernel_or_tiles() {
        assert_eq!(ThinInputs::default(), ThinInputs::Kernel);
        for choice in ThinInputs::ALL {
            assert_eq!(ThinInputs::parse(choice.name()), Some(choice));
        }
        for bad in ["", "thin", "Tiles", "off"] {
            assert_eq!(ThinInputs::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn conv_tiles_take_64_128_auto_and_keep_64_for_thin_products() {
        for tiles in ConvTiles::ALL {
            assert_eq!(ConvTiles::parse(tiles.name()), Some(tiles));
        }
        for bad in ["", "96", "wide", "128 ", "Auto"] {
            assert_eq!(ConvTiles::parse(bad), None, "{bad:?}");
        }
        assert_eq!(ConvTiles::default(), ConvTiles::Square64);
        for rows in [1, 3, 64, 127, 128, 512] {
            let thin = rows < 128;
            assert_eq!(ConvTiles::Square64.fixed_side(rows), Some(64));
            let wide = if thin { 64 } else { 128 };
            assert_eq!(
                ConvTiles::Wide128.fixed_side(rows),
                Some(wide),
                "{rows} rows"
            );
            let auto = if thin { Some(64) } else { None };
            assert_eq!(ConvTiles::Auto.fixed_side(rows), auto, "{rows} rows");
        }
    }
}
