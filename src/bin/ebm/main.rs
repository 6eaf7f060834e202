//! The `ebm` command line: train, sample and score energy-based models on a GPU or the CPU.

mod bench;
mod classify;
mod compose;
mod eval;
mod generators;
mod images;
mod info;
mod options;
mod profile;
mod restore;
mod sample;
mod score;
mod toy2d;
mod train_loop;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ebm::backend::gpu::{ConvTiles, GpuOptions, MlpChainGroup, TensorCores, ThinInputs};
use ebm::backend::{choose_backend, AnyBackend, DeviceChoice};
use ebm::Error;

#[derive(Parser)]
#[command(
    name = "ebm",
    version,
    about = "Deep energy-based models on any GPU (wgpu) and any CPU"
)]
struct Cli {
    /// Device: auto (a hardware GPU, else the CPU), gpu (any adapter, software included), cpu.
    #[arg(long, global = true, env = "EBM_DEVICE", default_value = "auto")]
    device: String,
    /// Run the conv and linear layers' forward and input-gradient products on tensor cores
    /// where the GPU offers them (f16 operands, f32 sums: ≈ 1e-3 relative error where the f32
    /// kernels give 1e-6), like PyTorch's f16 autocast; gradients into ≤ 4 channels stay f32.
    #[arg(long, global = true, env = "EBM_TENSOR_CORES", value_parser = parse_switch, num_args = 0..=1, default_missing_value = "on", default_value = "off")]
    tensor_cores: bool,
    /// The output tiles of the GPU's f32 conv kernels (which also run the linear layers): 64
    /// (64×64, 4×4 per thread), 128 (128×128, 8×8 per thread, for products with at least 128
    /// output rows: output channels, or input channels for the input gradient), or auto (per
    /// product, whichever runs faster, timed on its first call). The same results whichever.
    #[arg(long, global = true, env = "EBM_CONV_TILES", value_parser = parse_conv_tiles, default_value = "64")]
    conv_tiles: ConvTiles,
    /// Chains per workgroup of the GPU's fused MLP Langevin chain: 8, or 4 (twice the
    /// workgroups for a batch, for a GPU the batch leaves idle). The same results.
    #[arg(long, global = true, env = "EBM_MLP_CHAIN_GROUP", value_parser = parse_chain_group, default_value = "8")]
    mlp_chain_group: MlpChainGroup,
    /// Where the GPU computes the gradient into an input of at most 4 channels (an image, a
    /// 2-D point): kernel (its own, `conv2d_thin.wgsl`) or tiles (like any other product; for
    /// comparing the two). Results differ in the last bits.
    #[arg(long, global = true, env = "EBM_THIN_INPUTS", value_parser = parse_thin_inputs, default_value = "kernel")]
    thin_inputs: ThinInputs,
    /// The CPU's register tiles for convolutions and wide MLP layers: auto (the widest this
    /// CPU has), avx512, avx2 (the same results to the bit), or off (im2col + gemm).
    #[arg(long, global = true, env = "EBM_CPU_TILES", value_parser = parse_cpu_tiles, default_value = "auto")]
    cpu_tiles: String,
    #[command(subcommand)]
    command: Command,
}

/// `--tensor-cores` alone, or `EBM_TENSOR_CORES=on|off|1|0|true|false`.
fn parse_switch(value: &str) -> Result<bool, String> {
    ebm::backend::gpu::options::parse_switch(value)
        .ok_or_else(|| format!("expected on or off, not {value:?}"))
}

/// `--conv-tiles` or `EBM_CONV_TILES`: 64, 128 or auto.
fn parse_conv_tiles(value: &str) -> Result<ConvTiles, String> {
    ConvTiles::parse(value).ok_or_else(|| format!("expected 64, 128 or auto, not {value:?}"))
}

/// `--mlp-chain-group` or `EBM_MLP_CHAIN_GROUP`: 8 or 4.
fn parse_chain_group(value: &str) -> Result<MlpChainGroup, String> {
    MlpChainGroup::parse(value).ok_or_else(|| format!("expected 8 or 4, not {value:?}"))
}

/// `--thin-inputs` or `EBM_THIN_INPUTS`: kernel or tiles.
fn parse_thin_inputs(value: &str) -> Result<ThinInputs, String> {
    ThinInputs::parse(value).ok_or_else(|| format!("expected kernel or tiles, not {value:?}"))
}

/// `--cpu-tiles` or `EBM_CPU_TILES`: a kind this CPU has, or auto/off.
fn parse_cpu_tiles(value: &str) -> Result<String, String> {
    ebm::backend::cpu::choose_tiles(value).map(|_| value.to_string())
}

// Parsed once per process: the size of the training variant (its many options) costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// List GPU adapters, their limits, and the CPU threads.
    Info,
    /// Train an energy-based model.
    Train {
        #[command(subcommand)]
        what: TrainWhat,
    },
    /// Draw Langevin samples from a trained model.
    Sample(sample::SampleArgs),
    /// Samples from a weighted sum of energies: several models and/or classes (concept
    /// combination), optionally starting at images of one class (cross-class sampling).
    Compose(compose::ComposeArgs),
    /// Energies (and ∇ₓE) of a batch of inputs under a model.
    Score(score::ScoreArgs),
    /// Accuracy and calibration (NLL, ECE, reliability diagram) of a class-logit model.
    Classify(classify::ClassifyArgs),
    /// Fill in the masked pixels of images by Langevin on the known ones (before/after grid).
    Inpaint(restore::InpaintArgs),
    /// Remove added Gaussian noise from images by Langevin on the energy (before/after grid).
    Denoise(restore::DenoiseArgs),
    /// Time the reference workloads (same fields as scripts/ebm_ref.py bench).
    Bench(bench::BenchArgs),
    /// Evaluate a model: `loglik` (log Z by annealed importance sampling, and the data's
    /// normalised log-likelihood).
    Eval {
        #[command(subcommand)]
        what: eval::EvalWhat,
    },
}

#[derive(Subcommand)]
enum TrainWhat {
    /// An MLP energy on a toy 2D distribution, with density plots and KL(data ‖ model).
    Toy2d(toy2d::Toy2dArgs),
    /// A ConvNet energy on images (MNIST digits by default), with sample grids.
    Images(images::ImagesArgs),
}

/// Open the device the user asked for, printing the one-line CPU fallback notice.
pub fn open_device(choice: &str) -> ebm::Result<AnyBackend> {
    let choice: DeviceChoice = choice.parse()?;
    let backend = choose_backend(choice, |notice| eprintln!("{notice}"))?;
    if GpuOptions::from_env().tensor_cores {
        match &backend {
            AnyBackend::Gpu(gpu) => {
                if let TensorCores::Off(why) = gpu.tensor_cores() {
                    eprintln!("notice: no tensor cores: {why}; the f32 kernels run");
                }
            }
            AnyBackend::Cpu(_) => {
                eprintln!("notice: --tensor-cores is a GPU option; the CPU backend computes in f32")
            }
        }
    }
    Ok(backend)
}

/// Mesa's Vulkan and GL drivers print "error: XDG_RUNTIME_DIR is invalid" when it is unset
/// (containers, CI), which reads like one of ours; give them a private directory instead.
fn quiet_mesa_runtime_dir() {
    if std::env::var_os("XDG_RUNTIME_DIR").is_some() {
        return;
    }
    let user = std::env::var("USER").unwrap_or_default();
    let dir = std::env::temp_dir().join(format!("ebm-runtime-{user}"));
    if std::fs::create_dir_all(&dir).is_ok() {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
        }
        // Single-threaded here: nothing else reads the environment yet.
        std::env::set_var("XDG_RUNTIME_DIR", &dir);
    }
}

/// A model file with, for files that carry no `ebm.spec`, the spec given on the command line.
pub fn load_net<B: ebm::Backend>(
    b: &B,
    model: &std::path::Path,
    spec: Option<&str>,
) -> ebm::Result<ebm::EnergyNet<B>> {
    let spec = spec.map(ebm::Spec::from_name_or_file).transpose()?;
    ebm::train::checkpoint::load_model(b, model, spec.as_ref())
}

/// `--iters 0` would train nothing and write no model: refuse it rather than exit 0.
/// (With `--resume`, an `--iters` the checkpoint has already reached is fine: done.)
fn check_iters(iters: u64) -> ebm::Result<()> {
    if iters == 0 {
        return Err(Error::Option("--iters must be at least 1".into()));
    }
    Ok(())
}

/// `--depth` builds the MLP's layer list before any size check can run: bound it first.
fn check_depth(depth: usize) -> ebm::Result<()> {
    const MAX_DEPTH: usize = 1 << 16;
    if depth > MAX_DEPTH {
        return Err(Error::Option(format!(
            "--depth {depth}: at most {MAX_DEPTH} hidden layers"
        )));
    }
    Ok(())
}

fn main() -> ExitCode {
    quiet_mesa_runtime_dir();
    let cli = Cli::parse();
    // The backend reads the switch where it opens the device (GpuOptions::from_env).
    // Single-threaded here: nothing else reads the environment yet.
    std::env::set_var(
        "EBM_TENSOR_CORES",
        if cli.tensor_cores { "on" } else { "off" },
    );
    std::env::set_var("EBM_CONV_TILES", cli.conv_tiles.name());
    std::env::set_var(
        "EBM_MLP_CHAIN_GROUP",
        cli.mlp_chain_group.chains().to_string(),
    );
    std::env::set_var("EBM_THIN_INPUTS", cli.thin_inputs.name());
    // Read once, where the CPU backend first runs a tile or an activation.
    std::env::set_var("EBM_CPU_TILES", &cli.cpu_tiles);
    let result = match cli.command {
        Command::Info => cli.device.parse::<DeviceChoice>().and_then(|_| info::run()),
        Command::Train {
            what: TrainWhat::Toy2d(args),
        } => check_iters(args.iters)
            .and_then(|()| check_depth(args.depth))
            .and_then(|()| toy2d::run(&cli.device, &args)),
        Command::Train {
            what: TrainWhat::Images(args),
        } => check_iters(args.iters).and_then(|()| images::run(&cli.device, &args)),
        Command::Sample(args) => sample::run(&cli.device, &args),
        Command::Compose(args) => compose::run(&cli.device, &args),
        Command::Score(args) => score::run(&cli.device, &args),
        Command::Classify(args) => classify::run(&cli.device, &args),
        Command::Bench(args) => bench::run(&cli.device, &args),
        Command::Eval { what } => eval::run(&cli.device, &what),
        Command::Inpaint(args) => restore::inpaint(&cli.device, &args),
        Command::Denoise(args) => restore::denoise(&cli.device, &args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            // Bad input (options, specs, files) exits 2, like clap's usage errors.
            match e {
                Error::Gpu(_) | Error::NonFinite(_) => ExitCode::from(1),
                _ => ExitCode::from(2),
            }
        }
    }
}
