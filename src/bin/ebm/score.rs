//! `ebm score`: energies (and ∇ₓE) under any model file, PyTorch ones included.
//! - `--input X.safetensors` (tensor `x` [B, …]) → `x`, `energy` [B] and, with `--grad`,
//!   `grad_x` [B, …] (docs/ARCHITECTURE.md, Conventions);
//! - `--data PATH` (an image dataset) → per-image `energy` [N], and with `--ood PATH|noise`
//!   the energies of a second set and the AUROC of telling them apart.

use std::path::PathBuf;

use clap::Args;
use ebm::backend::Backend;
use ebm::data::images;
use ebm::eval::calibration::predictions;
use ebm::rng::{self, Stream};
use ebm::tensorfile::TensorFile;
use ebm::{with_backend, EnergyNet, Error, Result};

#[derive(Args, Debug)]
pub struct ScoreArgs {
    /// Model file (safetensors with `ebm.spec` metadata, or pass --spec).
    #[arg(long)]
    pub model: PathBuf,
    /// The model's spec (built-in name or JSON file) when the file carries none.
    #[arg(long)]
    pub spec: Option<String>,
    /// Inputs: safetensors with tensor `x` [B, …].
    #[arg(long, required_unless_present = "data", conflicts_with = "data")]
    pub input: Option<PathBuf>,
    /// An image dataset to score instead (folder of PNG/JPEG, IDX, CIFAR-10 batches).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Out-of-distribution set for --data: a dataset path, or `noise` (uniform on [−1, 1]).
    #[arg(long, requires = "data")]
    pub ood: Option<String>,
    /// Score at most this many images of each set.
    #[arg(long, default_value_t = 10_000)]
    pub limit: usize,
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
    let Some(input_path) = &args.input else {
        return score_datasets(b, &mut net, args);
    };
    let input = TensorFile::read(input_path)?;
    let x = input.get("x", input_path)?;
    let sample_shape = &net.spec().input;
    if x.shape.len() != sample_shape.len() + 1 || &x.shape[1..] != sample_shape.as_slice() {
        let dims: Vec<String> = sample_shape.iter().map(usize::to_string).collect();
        return Err(Error::format(
            input_path,
            format!(
                "x has shape {:?}; the model takes [B, {}]",
                x.shape,
                dims.join(", ")
            ),
        ));
    }
    if x.shape[0] == 0 {
        return Err(Error::format(
            input_path,
            "x holds no samples (shape [0, …])",
        ));
    }
    if x.data.iter().any(|v| !v.is_finite()) {
        return Err(Error::format(input_path, "x contains NaN or infinity"));
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

/// The first `limit` images of `path` at the model's input shape, or as many uniform-noise
/// images for `noise`.
fn dataset(path: &str, shape: &[usize], limit: usize) -> Result<Vec<f32>> {
    let len: usize = shape.iter().product();
    if path == "noise" {
        let mut x = vec![0.0; limit * len];
        for (n, image) in x.chunks_mut(len).enumerate() {
            rng::fill_uniform(0, n as u32, 0, Stream::Data, -1.0, 1.0, image);
        }
        return Ok(x);
    }
    let mut set = images::load(path, shape[0], shape[1], shape[2])?;
    set.data.truncate(limit.min(set.len()) * len);
    Ok(set.data)
}

fn summary(name: &str, e: &[f32]) -> String {
    let n = e.len() as f64;
    let mean = e.iter().map(|&v| v as f64).sum::<f64>() / n;
    let std = (e.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
    format!("{name}: {} images, energy {mean:+.4} ± {std:.4}", e.len())
}

fn score_datasets<B: Backend>(b: &B, net: &mut EnergyNet<B>, args: &ScoreArgs) -> Result<()> {
    let shape = net.spec().input.clone();
    if shape.len() != 3 {
        return Err(Error::Shape(format!(
            "--data needs an image model, this one takes {shape:?}"
        )));
    }
    if args.limit == 0 {
        return Err(Error::Option("--limit must be at least 1".into()));
    }
    let data_path = args.data.as_ref().expect("clap requires --input or --data");
    let x = dataset(&data_path.to_string_lossy(), &shape, args.limit)?;
    let energy = net.energies(b, &x)?;
    eprintln!("{}", summary(&data_path.display().to_string(), &energy));
    let mut out = TensorFile::new();
    out.insert("energy", vec![energy.len()], energy.clone());
    out.metadata.insert("ebm.spec".into(), net.spec().to_json());
    if let Some(ood) = &args.ood {
        let x_ood = dataset(ood, &shape, args.limit)?;
        let energy_ood = net.energies(b, &x_ood)?;
        let auroc = ebm::eval::auroc(&energy, &energy_ood);
        eprintln!("{}", summary(ood, &energy_ood));
        let what = if net.classes().is_some() {
            "energy −logsumexp f(x)"
        } else {
            "energy"
        };
        println!(
            "AUROC ({what} as OOD score, {} vs {ood}): {auroc:.4}",
            data_path.display()
        );
        out.insert("energy_ood", vec![energy_ood.len()], energy_ood);
        out.metadata.insert("ebm.auroc".into(), auroc.to_string());
        if let Some(classes) = net.classes() {
            // JEM's second score: the classifier's confidence max_y p(y|x), lower out of
            // distribution (so −max p is the OOD score).
            let max_prob = |x: &[f32], net: &mut EnergyNet<B>| -> Result<Vec<f32>> {
                let probs = net.class_probabilities(b, x)?;
                Ok(predictions(&probs, classes)
                    .iter()
                    .map(|&(_, p)| p)
                    .collect())
            };
            let (p_in, p_ood) = (max_prob(&x, net)?, max_prob(&x_ood, net)?);
            let neg = |v: &[f32]| v.iter().map(|p| -p).collect::<Vec<f32>>();
            let auroc_p = ebm::eval::auroc(&neg(&p_in), &neg(&p_ood));
            println!(
                "AUROC (max softmax p(y|x) as OOD score, {} vs {ood}): {auroc_p:.4}",
                data_path.display()
            );
            out.insert("max_prob", vec![p_in.len()], p_in);
            out.insert("max_prob_ood", vec![p_ood.len()], p_ood);
            out.metadata
                .insert("ebm.auroc_max_prob".into(), auroc_p.to_string());
        }
    }
    out.write(&args.out)?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}
