//! `ebm score`: energies (and ∇ₓE) of a batch under any model file, PyTorch ones included.
//! Input: safetensors with tensor `x` [B, …]; output: `x`, `energy` [B] and, with `--grad`,
//! `grad_x` [B, …] (DESIGN.md §3).

use std::path::PathBuf;

use clap::Args;
use ebm::backend::Backend;
use ebm::tensorfile::TensorFile;
use ebm::{with_backend, Error, Result};

#[derive(Args, Debug)]
pub struct ScoreArgs {
    /// Model file (safetensors with `ebm.spec` metadata, or pass --spec).
    #[arg(long)]
    pub model: PathBuf,
    /// The model's spec (built-in name or JSON file) when the file carries none.
    #[arg(long)]
    pub spec: Option<String>,
    /// Inputs: safetensors with tensor `x` [B, …].
    #[arg(long)]
    pub input: PathBuf,
    /// Where to write `x`, `energy` and (with --grad) `grad_x`.
    #[arg(long)]
    pub out: PathBuf,
    /// Also write ∇ₓE.
    #[arg(long)]
    pub grad: bool,
}

pub fn run(device: &str, args: &ScoreArgs) -> Result<()> {
    let backend = crate::open_device(device)?;
    with_backend!(backend, |b| score(&b, args))
}

fn score<B: Backend>(b: &B, args: &ScoreArgs) -> Result<()> {
    let mut net = crate::load_net(b, &args.model, args.spec.as_deref())?;
    let input = TensorFile::read(&args.input)?;
    let x = input.get("x", &args.input)?;
    let sample_shape = &net.spec().input;
    if x.shape.len() != sample_shape.len() + 1 || &x.shape[1..] != sample_shape.as_slice() {
        return Err(Error::format(
            &args.input,
            format!(
                "x has shape {:?}; the model takes [B, {sample_shape:?}]",
                x.shape
            )
            .replace("[B, [", "[B, ")
            .replace("]]", "]"),
        ));
    }
    if x.data.iter().any(|v| !v.is_finite()) {
        return Err(Error::format(&args.input, "x contains NaN or infinity"));
    }
    let mut out = TensorFile::new();
    let batch = x.shape[0];
    let energy = if args.grad {
        let (energy, grad) = net.energies_and_grad(b, &x.data)?;
        out.insert("grad_x", x.shape.clone(), grad);
        energy
    } else {
        net.energies(b, &x.data)?
    };
    out.insert("energy", vec![batch], energy);
    out.insert("x", x.shape.clone(), x.data.clone());
    out.metadata.insert("ebm.spec".into(), net.spec().to_json());
    out.write(&args.out)?;
    eprintln!(
        "scored {batch} inputs on {}; wrote {}",
        b.name(),
        args.out.display()
    );
    Ok(())
}
