//! `ebm classify`: accuracy and calibration of a class-logit model (`"output": {"energy":
//! "neg_logsumexp", "classes": C}`, JEM) on a labelled image dataset — accuracy, per-class
//! accuracy, mean confidence, NLL, ECE and MCE on stdout; optionally the softmax
//! probabilities (`--out`) and a reliability diagram (`--plot`).

use std::path::{Path, PathBuf};

use clap::Args;
use ebm::backend::Backend;
use ebm::data::images;
use ebm::eval::calibration::{nll, per_class_accuracy, predictions, reliability};
use ebm::tensorfile::TensorFile;
use ebm::{with_backend, Error, Result};

/// The most confidence bins `--bins` takes.
const MAX_BINS: usize = 1000;

#[derive(Args, Debug)]
pub struct ClassifyArgs {
    /// Model file with a class-logit head (safetensors with `ebm.spec` metadata, or pass --spec).
    #[arg(long)]
    pub model: PathBuf,
    /// The model's spec (built-in name or JSON file) when the file carries none.
    #[arg(long)]
    pub spec: Option<String>,
    /// A labelled image dataset: IDX images with their labels file beside them, or CIFAR-10.
    #[arg(long)]
    pub data: PathBuf,
    /// An IDX labels file (magic 0x00000801) to use instead of the labels beside the data.
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Classify only the first N images.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Equal-width confidence bins of the calibration error and the reliability diagram.
    #[arg(long, default_value_t = 15)]
    pub bins: usize,
    /// Write `probs` [N, C], `pred` [N] and `label` [N] to this safetensors file.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Draw the reliability diagram to this PNG.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Another class-logit model (repeatable) to classify the same images with: a summary
    /// line each, and its series beside the first model's in --plot (JEM against the plain
    /// classifier, say).
    #[arg(long)]
    pub compare: Vec<PathBuf>,
}

pub fn run(device: &str, args: &ClassifyArgs) -> Result<()> {
    // Options first: a bad one should not wait for a GPU or a dataset.
    if args.limit == Some(0) {
        return Err(Error::Option("--limit must be at least 1".into()));
    }
    if !(1..=MAX_BINS).contains(&args.bins) {
        return Err(Error::Option(format!(
            "--bins {}: must be in 1..={MAX_BINS}",
            args.bins
        )));
    }
    let backend = crate::open_device(device)?;
    with_backend!(backend, |b| classify(&b, args))
}

fn classify<B: Backend>(b: &B, args: &ClassifyArgs) -> Result<()> {
    let mut net = crate::load_net(b, &args.model, args.spec.as_deref())?;
    let Some(classes) = net.classes() else {
        return Err(Error::format(
            &args.model,
            "this model has a scalar energy, no class logits; ebm classify needs a class-logit \
             head (spec \"output\": {\"energy\": \"neg_logsumexp\", \"classes\": C})",
        ));
    };
    let shape = net.spec().input.clone();
    if shape.len() != 3 {
        return Err(Error::Shape(format!(
            "--data needs an image model, this one takes {shape:?}"
        )));
    }
    let set = images::load(&args.data, shape[0], shape[1], shape[2])?;
    let n_set = set.len();
    let labels = images::labels_for(&set, &args.data, args.labels.as_deref())?;
    let labels_from = args.labels.clone().unwrap_or_else(|| args.data.clone());
    let n = args.limit.map_or(n_set, |l| l.min(n_set));
    let labels: Vec<u32> = labels[..n].iter().map(|&y| u32::from(y)).collect();
    if let Some((i, &y)) = labels
        .iter()
        .enumerate()
        .find(|&(_, &y)| y as usize >= classes)
    {
        return Err(Error::format(
            &labels_from,
            format!(
                "label {y} (image {i}) is not a class of the model, which has {classes} \
                 (0..={})",
                classes - 1
            ),
        ));
    }
    let x = &set.data[..n * set.sample_len()];
    // Computed on the device in chunks of `ebm::nn::model::HOST_CHUNK` images.
    let probs = net.class_probabilities(b, x)?;
    if let Some(i) = probs
        .chunks_exact(classes)
        .position(|row| row.iter().any(|p| !p.is_finite()))
    {
        return Err(Error::format(
            &args.model,
            format!("the softmax of image {i} is not finite: the logits overflow or are NaN"),
        ));
    }

    let rel = reliability(&probs, &labels, classes, args.bins);
    let per_class = per_class_accuracy(&probs, &labels, classes);
    let right: usize = per_class.iter().map(|c| c.correct).sum();
    let ece = rel.ece();
    println!(
        "{}: {n} images, {classes} classes, on {}",
        args.data.display(),
        b.name()
    );
    println!("accuracy: {:.6} ({right} of {n})", rel.accuracy);
    println!("mean confidence: {:.6}", rel.confidence);
    println!("NLL: {:.6}", nll(&probs, &labels, classes));
    println!("ECE ({} bins): {ece:.6}", args.bins);
    println!("MCE ({} bins): {:.6}", args.bins, rel.mce());
    println!("per-class accuracy:");
    for (c, pc) in per_class.iter().enumerate() {
        let acc = if pc.count == 0 {
            "-".to_string()
        } else {
            format!("{:.6}", pc.accuracy())
        };
        println!("  class {c}: {acc} ({} of {})", pc.correct, pc.count);
    }

    if let Some(out_path) = &args.out {
        let mut out = TensorFile::new();
        let pred: Vec<f32> = predictions(&probs, classes)
            .iter()
            .map(|&(p, _)| p as f32)
            .collect();
        out.insert("pred", vec![n], pred);
        out.insert("label", vec![n], labels.iter().map(|&y| y as f32).collect());
        out.insert("probs", vec![n, classes], probs);
        out.metadata.insert("ebm.spec".into(), net.spec().to_json());
        out.metadata
            .insert("ebm.accuracy".into(), rel.accuracy.to_string());
        out.metadata.insert("ebm.ece".into(), ece.to_string());
        out.metadata
            .insert("ebm.ece_bins".into(), args.bins.to_string());
        out.write(out_path)?;
        eprintln!("wrote {}", out_path.display());
    }
    let mut others = Vec::new();
    for path in &args.compare {
        let mut other = crate::load_net(b, path, None)?;
        if other.classes() != Some(classes) || other.spec().input != shape {
            return Err(Error::format(
                path,
                format!(
                    "--compare needs a class-logit model of {classes} classes on {shape:?}, like \
                     the first one"
                ),
            ));
        }
        let p = other.class_probabilities(b, x)?;
        let r = reliability(&p, &labels, classes, args.bins);
        println!(
            "compare {}: accuracy {:.6}, mean confidence {:.6}, NLL {:.6}, ECE {:.6}",
            model_name(path),
            r.accuracy,
            r.confidence,
            nll(&p, &labels, classes),
            r.ece()
        );
        others.push((model_name(path), r));
    }
    if let Some(plot) = &args.plot {
        let title = if others.is_empty() {
            format!("{} on {}", model_name(&args.model), file_name(&args.data))
        } else {
            format!("reliability on {} ({n} images)", file_name(&args.data))
        };
        let first = model_name(&args.model);
        let mut series: Vec<(&str, &ebm::eval::calibration::Reliability)> = vec![(
            if others.is_empty() {
                ""
            } else {
                first.as_str()
            },
            &rel,
        )];
        series.extend(others.iter().map(|(name, r)| (name.as_str(), r)));
        ebm::plot::reliability_diagram(plot, &title, &series)?;
        eprintln!("wrote {}", plot.display());
    }
    Ok(())
}

/// A model's name for the plot title: the file stem, with its folder when the stem is the
/// `model` every training run writes (`runs/jem/model.safetensors` → `jem/model`).
fn model_name(p: &Path) -> String {
    let stem = p
        .file_stem()
        .map_or_else(|| p.display().to_string(), |s| s.to_string_lossy().into());
    match p.parent().and_then(Path::file_name) {
        Some(dir) if stem == "model" => format!("{}/{stem}", dir.to_string_lossy()),
        _ => stem,
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into())
}
