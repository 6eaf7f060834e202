//! `ebm train images`: a ConvNet energy on real images (MNIST by default: a few thousand
//! digits ship with the repo), with sample grids, a grid of the replay buffer, energy curves,
//! the metrics CSV and checkpoints.

use std::path::{Path, PathBuf};

use clap::Args;
use ebm::backend::{self, Backend};
use ebm::data::images::{self, ImageData, DEFAULT_DIGITS};
use ebm::plot;
use ebm::train::Trainer;
use ebm::{with_backend, EnergyNet, Error, Result, Spec};

use crate::generators;
use crate::options::{own_defaults, own_help, TrainArgs};
use crate::train_loop::{self, LoopArgs, Watch};

/// Options of `ebm train images`; defaults follow IGEBM's sampler (step 10, noise 0.005,
/// per-element gradient clip 0.01, chains re-initialised at 5 %) with a smaller buffer.
#[derive(Args, Debug, Clone)]
#[command(
    allow_negative_numbers = true,
    mut_args(own_defaults(DEFAULTS)),
    mut_args(own_help(HELP))
)]
pub struct ImagesArgs {
    /// Model spec: mnist32, anatomy32 (ebm-anatomy's ConvNet, 1 or 3 channels), mnist-resnet32,
    /// resnet32 (IGEBM-style residual nets), or a JSON file.
    #[arg(long, default_value = "mnist32")]
    pub spec: String,
    /// Width n_f of the built-in ConvNets (the reference is 64; default 64 on a GPU and 16
    /// on the CPU, where the full net is too slow for a demo).
    #[arg(long)]
    pub nf: Option<usize>,
    /// Images: a folder of PNG/JPEG, MNIST/Fashion-MNIST IDX (.gz or raw) or CIFAR-10 binary
    /// batches (default: the MNIST digits shipped in data/mnist-subset).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// An IDX labels file for the images (labelled objectives), instead of the labels found
    /// beside them.
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Hold out the first N images as stored: train on the rest (`ebm classify --limit N`
    /// then scores the held-out ones). For shuffled files such as MNIST's.
    #[arg(long, default_value_t = 0)]
    pub holdout: usize,
    /// Training iterations.
    #[arg(long, default_value_t = 2000)]
    pub iters: u64,
    /// Batch, α, seed, sampler (with a gradient clip by default), Adam, replay buffer.
    #[command(flatten)]
    pub train: TrainArgs,
    #[command(flatten)]
    pub run: LoopArgs,
}

/// `ebm train images`' own defaults for the shared options (the rest: options.rs).
pub(crate) const DEFAULTS: &[(&str, &str)] = &[
    ("batch", "64"),
    ("alpha", "1"),
    ("steps", "40"),
    ("step_size", "10"),
    ("noise", "0.005"),
    ("grad_clip", "0.01"),
    ("lr", "0.0001"),
    ("beta1", "0"),
    ("buffer", "1000"),
];

/// Its own help lines for shared options (the buffer's: why the default is smaller than
/// IGEBM's).
pub(crate) const HELP: &[(&str, &str)] = &[
    ("batch", "Data images and chains per iteration (B)"),
    ("beta1", "Adam β₁ (IGEBM uses 0)"),
    (
        "buffer",
        "Persistent chains in the replay buffer (N). IGEBM keeps 10 000 over long GPU runs; \
         with B = 64, 1000 chains are each revisited every ~16 iterations, so a short CPU run \
         already shows digits (10 000 chains stayed mostly noise after 450 iterations)",
    ),
];

pub fn run(device: &str, args: &ImagesArgs) -> Result<()> {
    args.run.validate()?;
    let backend = crate::open_device(device)?;
    eprintln!("device: {}", backend.name());
    with_backend!(backend, |b| train(&b, args))
}

/// The spec, with the built-in image nets at width `--nf` (or the device's default).
pub(crate) fn spec(args: &ImagesArgs, gpu: bool) -> Result<Spec> {
    let nf = args.nf.unwrap_or(if gpu { 64 } else { 16 });
    if nf == 0 {
        return Err(Error::Option("--nf must be at least 1".into()));
    }
    Spec::from_name_or_file_with_width(&args.spec, nf)
}

/// The shipped digits, found from the working directory or from the crate's own folder.
pub(crate) fn default_data() -> PathBuf {
    let here = PathBuf::from(DEFAULT_DIGITS);
    if here.exists() {
        here
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_DIGITS)
    }
}

/// The images at `path`, brought to the net's input `[C, H, W]` (which a spec for images
/// must have; a resumed checkpoint may hold a toy2d model, say).
pub(crate) fn load_images(input: &[usize], path: &Path) -> Result<images::ImageSet> {
    let &[c, h, w] = input else {
        return Err(Error::Shape(format!(
            "images need a spec with input [C, H, W], not {input:?}"
        )));
    };
    let set = images::load(path, c, h, w)?;
    eprintln!(
        "data: {} images of {c}×{h}×{w} from {}",
        set.len(),
        path.display()
    );
    Ok(set)
}

/// The run's data in words, as checkpoints keep it: a resume must give the same.
pub(crate) fn data_source(data: &Path, args: &ImagesArgs) -> String {
    let labels = args
        .labels
        .as_ref()
        .map(|l| format!(", labels {}", l.display()))
        .unwrap_or_default();
    format!("{}{labels}, holdout {}", data.display(), args.holdout)
}

/// `set` without its first `n` images (`--holdout`).
pub(crate) fn hold_out(mut set: images::ImageSet, n: usize) -> Result<images::ImageSet> {
    if n == 0 {
        return Ok(set);
    }
    if n >= set.len() {
        return Err(Error::Option(format!(
            "--holdout {n} leaves no training images of {}",
            set.len()
        )));
    }
    set.data.drain(..n * set.sample_len());
    let distinct = |l: &[u8]| l.iter().collect::<std::collections::BTreeSet<_>>().len();
    let mut lost_classes = false;
    if let Some(labels) = &mut set.labels {
        let before = distinct(labels);
        labels.drain(..n);
        lost_classes = distinct(labels) < before;
    }
    if lost_classes {
        eprintln!(
            "note: the first {n} images held out include whole classes: this dataset is \
             stored class by class (shuffle it, or use a file like MNIST's)"
        );
    }
    eprintln!("holding out the first {n}: training on {}", set.len());
    Ok(set)
}

fn train<B: Backend>(b: &B, args: &ImagesArgs) -> Result<()> {
    // A generator beside the energy: from the checkpoint when resuming, else --objective.
    if let Some(family) = generators::family_of_run(args.run.resume.as_deref(), &args.train)? {
        return generators::train_images(b, args, family);
    }
    let data_path = args.data.clone().unwrap_or_else(default_data);
    let (mut trainer, set) = match &args.run.resume {
        Some(ckpt) => {
            let trainer: Trainer<B> = train_loop::resume_trainer(b, ckpt)?;
            let now = data_source(&data_path, args);
            if let Some(then) = trainer.data_source.as_deref().filter(|&t| t != now) {
                return Err(Error::Option(format!(
                    "--resume: this run trained on {then}; give the same --data, --labels and \
                     --holdout (now: {now})"
                )));
            }
            let mut set = load_images(&trainer.net.spec().input, &data_path)?;
            if trainer.config.objective.needs_labels() {
                set.labels = Some(images::labels_for(
                    &set,
                    &data_path,
                    args.labels.as_deref(),
                )?);
            }
            (trainer, set)
        }
        None => {
            let mut spec = spec(args, b.is_gpu())?;
            let mut set = load_images(&spec.input, &data_path)?;
            let config = args.train.config(-1.0, 1.0);
            if config.objective.needs_labels() {
                set.labels = Some(images::labels_for(
                    &set,
                    &data_path,
                    args.labels.as_deref(),
                )?);
                // One logit per class of the data: E(x, y) = −f(x)[y].
                let classes = set.classes().unwrap_or(1);
                spec = spec.with_classes(classes)?;
            }
            let net = EnergyNet::new(b, &spec, args.train.seed)?;
            let mut trainer = Trainer::new(b, net, config)?;
            trainer.data_source = Some(data_source(&data_path, args));
            (trainer, set)
        }
    };
    let set = hold_out(set, args.holdout)?;
    let shape = trainer.net.spec().input.clone();
    let (c, h, w) = (shape[0], shape[1], shape[2]);
    let spec_name = Path::new(&args.spec)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("images");
    let out = args.run.out_dir(&format!("images-{spec_name}"))?;
    let mut data = ImageData::new(set, trainer.config.seed)?;
    let mut watch = ImageWatch { shape: (c, h, w) };
    train_loop::run(
        b,
        &mut trainer,
        &mut data,
        args.iters,
        &args.run,
        &out,
        &mut watch,
    )
}

/// Sample grids of the current chains and of the replay buffer.
struct ImageWatch {
    shape: (usize, usize, usize),
}

/// Tiles per grid (8×8).
const TILES: usize = 64;

impl<B: Backend> Watch<B, Trainer<B>> for ImageWatch {
    fn pictures(
        &mut self,
        b: &B,
        trainer: &mut Trainer<B>,
        iteration: u64,
        _: &[f64],
        out: &Path,
    ) -> Result<()> {
        if !trainer.config.objective.samples() {
            // A plain classifier draws no chains: nothing to show.
            return Ok(());
        }
        let (c, h, w) = self.shape;
        let len = c * h * w;
        let samples = trainer.last_samples(b)?;
        let n = (samples.len() / len).min(TILES);
        let path = out.join(format!("samples_{iteration:06}.png"));
        let title = format!(
            "Langevin samples, iter {iteration} (K = {})",
            trainer.config.langevin.steps
        );
        plot::image_grid(&path, &title, &samples[..n * len], c, h, w, 8, 3)?;
        std::fs::copy(&path, out.join("samples.png")).map_err(|e| Error::io(&path, e))?;
        let buffer = trainer.replay.read_chains(b)?;
        let chains = buffer.len() / len;
        if let Some(labels) = trainer.replay.read_labels(b)? {
            // Conditional chains: one row per class, so the grid shows what each digit's
            // energy has learned.
            let classes = trainer.net.classes().unwrap_or(1);
            let rows = replay_rows_by_class(&buffer, &labels, len, classes, COLS);
            let title = format!(
                "replay buffer by class (rows 0-{}, {COLS} chains each of {chains}), iter {iteration}",
                classes - 1
            );
            return plot::image_grid(&out.join("replay.png"), &title, &rows, c, h, w, COLS, 3);
        }
        let m = chains.min(TILES);
        let title = format!("replay buffer (first {m} of {chains}), iter {iteration}");
        plot::image_grid(
            &out.join("replay.png"),
            &title,
            &buffer[..m * len],
            c,
            h,
            w,
            COLS,
            3,
        )
    }
}

/// Columns of a grid.
const COLS: usize = 8;

/// The first `cols` chains of each class in turn (`classes` rows of `cols` images of `len`
/// values); a class with fewer chains (or chains not yet drawn, label −1) is padded with
/// black tiles.
fn replay_rows_by_class(
    chains: &[f32],
    labels: &[f32],
    len: usize,
    classes: usize,
    cols: usize,
) -> Vec<f32> {
    let mut rows = vec![-1.0; classes * cols * len];
    let mut filled = vec![0usize; classes];
    for (chain, &label) in chains.chunks_exact(len).zip(labels) {
        let Some(y) = backend::column_index(label, classes) else {
            continue;
        };
        if filled[y] < cols {
            let at = (y * cols + filled[y]) * len;
            rows[at..at + len].copy_from_slice(chain);
            filled[y] += 1;
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_rows_group_chains_by_label() {
        // Chains of one value each, labels 1, 0, −1 (undrawn), 1, 1: two columns per row.
        let chains = [10.0, 20.0, 30.0, 40.0, 50.0];
        let labels = [1.0, 0.0, -1.0, 1.0, 1.0];
        let rows = replay_rows_by_class(&chains, &labels, 1, 3, 2);
        assert_eq!(rows, vec![20.0, -1.0, 10.0, 40.0, -1.0, -1.0]);
    }
}
