//! `ebm compose`: Langevin samples from a weighted sum of energies — several model files
//! and/or classes of class-logit models (IGEBM's concept combination), optionally starting
//! at images of one class (cross-class sampling).

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use clap::Args;
use ebm::backend::Backend;
use ebm::data::{images, toy2d};
use ebm::plot::{self, Grid2d};
use ebm::sampler::{Composition, Langevin, Term};
use ebm::tensorfile::TensorFile;
use ebm::train::checkpoint::model_from_file;
use ebm::{with_backend, Error, Result};

use crate::sample::ChainArgs;

#[derive(Args, Debug)]
#[command(allow_negative_numbers = true)]
pub struct ComposeArgs {
    /// A term: a model file, optionally with `:y=CLASS` (its class-conditional energy
    /// E(x, y) = −f(x)[y]) and `:w=WEIGHT` (default 1; negative steers away), e.g.
    /// `--model a.safetensors:y=3 --model b.safetensors:w=0.5`. Repeat for each term.
    #[arg(long, required = true)]
    pub model: Vec<String>,
    /// Number of chains (samples).
    #[arg(long, default_value_t = 2000)]
    pub n: usize,
    #[command(flatten)]
    pub chain: ChainArgs,
    /// Start the chains at images of this dataset instead of uniform noise (cross-class
    /// sampling: images of one class under another class's energy).
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// With --init: only images of this class (by the dataset's labels).
    #[arg(long, requires = "init")]
    pub init_class: Option<u8>,
    /// With --init-class: an IDX labels file for the --init images, instead of the labels
    /// found beside them.
    #[arg(long, requires = "init_class")]
    pub labels: Option<PathBuf>,
    /// Philox seed of the initial noise and the Langevin noise.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output file (`x`, and `init` with --init); a PNG is written beside it.
    #[arg(long, default_value = "composed.safetensors")]
    pub out: PathBuf,
}

/// One `--model` argument: the file and its class and weight.
#[derive(Debug, PartialEq)]
struct TermArg {
    path: PathBuf,
    class: Option<usize>,
    weight: f32,
}

fn parse_term(arg: &str) -> Result<TermArg> {
    let mut parts = arg.split(':');
    let path = PathBuf::from(parts.next().unwrap_or_default());
    let (mut class, mut weight) = (None, 1.0);
    for part in parts {
        let bad = || {
            Error::Option(format!(
                "--model {arg}: `{part}` is not y=CLASS or w=WEIGHT"
            ))
        };
        match part.split_once('=') {
            Some(("y", v)) => class = Some(v.parse().map_err(|_| bad())?),
            Some(("w", v)) => weight = v.parse().map_err(|_| bad())?,
            _ => return Err(bad()),
        }
    }
    if !f32::is_finite(weight) {
        return Err(Error::Option(format!(
            "--model {arg}: weight {weight} is not finite"
        )));
    }
    Ok(TermArg {
        path,
        class,
        weight,
    })
}

pub fn run(device: &str, args: &ComposeArgs) -> Result<()> {
    if args.n == 0 || args.chain.steps == 0 {
        return Err(Error::Option("--n and --steps must be at least 1".into()));
    }
    let terms = args
        .model
        .iter()
        .map(|m| parse_term(m))
        .collect::<Result<Vec<_>>>()?;
    let backend = crate::open_device(device)?;
    with_backend!(backend, |b| compose(&b, args, &terms))
}

fn compose<B: Backend>(b: &B, args: &ComposeArgs, terms: &[TermArg]) -> Result<()> {
    let mut files = Vec::new();
    let mut parts = Vec::new();
    for t in terms {
        let file = TensorFile::read(&t.path)?;
        let net = model_from_file(b, &file, &t.path, None)?;
        parts.push(Term::new(net, t.weight, t.class));
        files.push(file);
    }
    let mut comp = Composition::new(b, parts)?;
    let input = comp.terms()[0].net.spec().input.clone();
    let two_d = input == [2];
    // The chain's settings: these options, else the first model file's training run's.
    let config = args.chain.config(&files[0], two_d)?;
    for t in comp.terms() {
        t.net
            .spec()
            .check_batch(args.n, &format!("--n {}", args.n))?;
    }
    let sampler = Langevin {
        config,
        seed: args.seed,
    };
    let init = match &args.init {
        Some(path) => Some(init_images(path, &input, args)?),
        None => None,
    };
    let bar = crate::train_loop::progress_bar(0, config.steps as u64, false);
    let every = (config.steps / 100).max(1);
    let show = |p: ebm::sampler::Progress| {
        bar.set_position(p.steps_done as u64);
        ControlFlow::Continue(())
    };
    let samples = match &init {
        Some(x0) => sampler.sample_composed_from(b, &mut comp, x0, every, show)?,
        None => sampler.sample_composed(b, &mut comp, args.n, every, show)?,
    };
    bar.finish_and_clear();
    let (n, x) = (samples.rows, samples.x);
    if x.iter().any(|v| !v.is_finite()) {
        return Err(Error::NonFinite("samples contain NaN or infinity".into()));
    }
    let mut shape = vec![n];
    shape.extend(&input);
    let mut file = TensorFile::new();
    file.insert("x", shape.clone(), x.clone());
    if let Some(x0) = &init {
        file.insert("init", shape, x0.clone());
    }
    file.metadata
        .insert("ebm.compose".into(), args.model.join(" "));
    file.write(&args.out)?;
    eprintln!(
        "{n} chains × {} steps; wrote {}",
        config.steps,
        args.out.display()
    );
    let png = args.out.with_extension("png");
    let title = format!("composed: {}", describe(terms));
    if two_d {
        let grid = Grid2d {
            n: 128,
            range: toy2d::RANGE,
        };
        let energy = comp.energies(b, &grid.points())?;
        plot::scatter_figure(&png, &title, &x, toy2d::RANGE, Some((&grid, &energy)))?;
    } else if let [c, h, w] = input[..] {
        let len = c * h * w;
        match &init {
            // Before and after, column by column.
            Some(x0) => {
                let shown = n.min(16);
                plot::image_pairs(
                    &png,
                    &title,
                    &x0[..shown * len],
                    &x[..shown * len],
                    c,
                    h,
                    w,
                    8,
                    3,
                )?
            }
            None => {
                let shown = n.min(64);
                plot::image_grid(&png, &title, &x[..shown * len], c, h, w, 8, 3)?
            }
        }
    }
    eprintln!("wrote {}", png.display());
    Ok(())
}

/// The terms as `name[y=3]×0.5 + …` for the picture's title (`name: [y=0] + [y=1]` when
/// every term is the same model file).
fn describe(terms: &[TermArg]) -> String {
    let name = |t: &TermArg| {
        t.path.parent().and_then(Path::file_name).map_or_else(
            || t.path.display().to_string(),
            |d| d.to_string_lossy().into(),
        )
    };
    let one_model = terms.windows(2).all(|w| w[0].path == w[1].path);
    let parts: Vec<String> = terms
        .iter()
        .map(|t| {
            let class = t.class.map(|y| format!("[y={y}]")).unwrap_or_default();
            let weight = if t.weight == 1.0 {
                String::new()
            } else {
                format!("×{}", t.weight)
            };
            let model = if one_model { String::new() } else { name(t) };
            format!("{model}{class}{weight}")
        })
        .collect();
    match one_model {
        true => format!("{}: {}", name(&terms[0]), parts.join(" + ")),
        false => parts.join(" + "),
    }
}

/// The first `--n` images of `path` (of class `--init-class` if given) as initial chains.
fn init_images(path: &Path, input: &[usize], args: &ComposeArgs) -> Result<Vec<f32>> {
    let (class, n) = (args.init_class, args.n);
    let &[c, h, w] = input else {
        return Err(Error::Option(format!(
            "--init needs image models (input [C, H, W]), these take {input:?}"
        )));
    };
    let set = images::load(path, c, h, w)?;
    let picked: Vec<usize> = match class {
        Some(y) => {
            let labels = images::labels_for(&set, path, args.labels.as_deref())?;
            (0..set.len()).filter(|&i| labels[i] == y).take(n).collect()
        }
        None => (0..set.len().min(n)).collect(),
    };
    if picked.len() < n {
        return Err(Error::Option(format!(
            "--init {} has {} images{}, --n asks for {n}",
            path.display(),
            picked.len(),
            class.map(|y| format!(" of class {y}")).unwrap_or_default()
        )));
    }
    Ok(picked.iter().flat_map(|&i| set.image(i).to_vec()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_parse() {
        let t = parse_term("runs/a/model.safetensors:y=3:w=-0.5").unwrap();
        assert_eq!(
            t,
            TermArg {
                path: "runs/a/model.safetensors".into(),
                class: Some(3),
                weight: -0.5
            }
        );
        assert_eq!(parse_term("m.safetensors").unwrap().weight, 1.0);
        assert!(parse_term("m.safetensors:z=1").is_err());
        assert!(parse_term("m.safetensors:w=nan").is_err());
        assert!(parse_term("m.safetensors:y=-1").is_err());
    }
}
