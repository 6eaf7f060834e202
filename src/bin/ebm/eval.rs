//! `ebm eval loglik`: the log partition function of a model by annealed importance sampling
//! and, from it, the normalised log-likelihood of data (nats per sample, and bits per
//! dimension for images).

use std::path::PathBuf;

use clap::{Args, Subcommand};
use ebm::backend::Backend;
use ebm::data::{images, toy2d};
use ebm::sampler::ais::{Ais, Transition};
use ebm::tensorfile::TensorFile;
use ebm::{with_backend, Error, Result};

#[derive(Subcommand, Debug)]
pub enum EvalWhat {
    /// log Z by AIS (uniform base on the box, MALA or HMC transitions), and the mean
    /// log-likelihood of --data under the normalised model.
    Loglik(LoglikArgs),
}

#[derive(Args, Debug)]
#[command(allow_negative_numbers = true)]
pub struct LoglikArgs {
    /// Model file or checkpoint (safetensors with `ebm.spec` metadata, or pass --spec).
    #[arg(long)]
    pub model: PathBuf,
    /// The model's spec (built-in name or JSON file) when the file carries none.
    #[arg(long)]
    pub spec: Option<String>,
    /// Data to score: a toy set's name for 2D models (8gaussians, rings, …), else an image
    /// dataset (folder, IDX, CIFAR-10 batches).
    #[arg(long)]
    pub data: String,
    /// Score at most this many data points.
    #[arg(long, default_value_t = 10_000)]
    pub limit: usize,
    /// AIS chains (independent weights).
    #[arg(long, default_value_t = 1000)]
    pub chains: usize,
    /// Levels of the β ladder (geometric from 10⁻³ to 1, after β = 0).
    #[arg(long, default_value_t = 500)]
    pub levels: usize,
    /// MALA steps or HMC trajectories per level.
    #[arg(long, default_value_t = 2)]
    pub steps_per_level: usize,
    /// ε of the transitions.
    #[arg(long, default_value_t = 0.05)]
    pub step_size: f32,
    /// The transitions: mala or hmc.
    #[arg(long, default_value = "hmc")]
    pub transition: String,
    /// HMC: leapfrog steps per trajectory.
    #[arg(long, default_value_t = 4)]
    pub leapfrog: usize,
    /// The box of the base distribution and the model's support (default: ±4.5 for 2D
    /// models, the images' [−1, 1] otherwise).
    #[arg(long, allow_hyphen_values = true)]
    pub lo: Option<f32>,
    /// Upper end of the box.
    #[arg(long)]
    pub hi: Option<f32>,
    /// Philox seed of the chains.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Also write the log weights and the data's log-likelihoods here (safetensors).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn run(device: &str, what: &EvalWhat) -> Result<()> {
    let EvalWhat::Loglik(args) = what;
    let transition = match args.transition.as_str() {
        "mala" => Transition::Mala,
        "hmc" => Transition::Hmc {
            leapfrog: args.leapfrog,
        },
        other => {
            return Err(Error::Option(format!(
                "--transition {other}: give mala or hmc"
            )))
        }
    };
    if args.limit == 0 {
        return Err(Error::Option("--limit must be at least 1".into()));
    }
    let backend = crate::open_device(device)?;
    with_backend!(backend, |b| loglik(&b, args, transition))
}

/// The most toy points `--limit` draws (an image set is only ever truncated).
const MAX_TOY_POINTS: usize = 10_000_000;

/// The most levels of the ladder `--levels` takes (each runs the transitions once).
const MAX_LEVELS: usize = 1_000_000;

fn loglik<B: Backend>(b: &B, args: &LoglikArgs, transition: Transition) -> Result<()> {
    let mut net = crate::load_net(b, &args.model, args.spec.as_deref())?;
    let shape = net.spec().input.clone();
    let dim: usize = shape.iter().product();
    let two_d = shape == [2];
    net.spec()
        .check_batch(args.chains, &format!("--chains {}", args.chains))?;
    if args.levels > MAX_LEVELS {
        return Err(Error::Option(format!(
            "--levels {} is more than {MAX_LEVELS}",
            args.levels
        )));
    }
    let data = load_data(&args.data, &shape, args.limit)?;
    let (lo, hi) = match two_d {
        true => (-toy2d::RANGE, toy2d::RANGE),
        false => (-1.0, 1.0),
    };
    let (lo, hi) = (args.lo.unwrap_or(lo), args.hi.unwrap_or(hi));
    if !(lo.is_finite() && hi.is_finite() && lo < hi) {
        return Err(Error::Option(format!(
            "the box [--lo {lo}, --hi {hi}] needs finite lo < hi"
        )));
    }
    if let Some(v) = data.iter().find(|v| !(lo..=hi).contains(*v)) {
        return Err(Error::Option(format!(
            "--data has a value {v} outside the box [{lo}, {hi}], where the model has no mass \
             (set --lo/--hi)"
        )));
    }
    let ais = Ais {
        chains: args.chains,
        levels: args.levels,
        steps_per_level: args.steps_per_level,
        step_size: args.step_size,
        transition,
        lo,
        hi,
        seed: args.seed,
    };
    let t0 = std::time::Instant::now();
    let estimate = ais.run(b, &mut net)?;
    let secs = t0.elapsed().as_secs_f64();
    let energy = net.energies(b, &data)?;
    let n = energy.len();
    let log_lik: Vec<f64> = energy
        .iter()
        .map(|&e| -(e as f64) - estimate.log_z)
        .collect();
    let mean = log_lik.iter().sum::<f64>() / n as f64;
    let sd = (log_lik.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / n as f64).sqrt();
    eprintln!(
        "AIS: {} chains × {} levels × {} steps in {secs:.1} s on {}; acceptance {:.1} %, \
         effective chains {:.0}",
        args.chains,
        args.levels,
        args.steps_per_level,
        b.name(),
        100.0 * estimate.acceptance.rate,
        estimate.effective_chains
    );
    println!(
        "log Z = {:.4} ± {:.4} (nats, exp(−E) on [{lo}, {hi}]^{dim})",
        estimate.log_z, estimate.std_err
    );
    println!(
        "mean log-likelihood of {n} points of {}: {mean:.4} nats (sd {sd:.4} over points, ± {:.4} from log Z)",
        args.data, estimate.std_err
    );
    if !two_d {
        // A density on [−1, 1] per pixel is one on the 256 levels of 8-bit pixels scaled by
        // 2/256: −log p(levels) = −log p(x) + D·log 128.
        let bits = (-mean + dim as f64 * 128f64.ln()) / (dim as f64 * 2f64.ln());
        println!("bits/dim (8-bit pixel scale, continuous density): {bits:.4}");
    }
    if let Some(out) = &args.out {
        let mut file = TensorFile::new();
        let f32s = |v: &[f64]| v.iter().map(|&a| a as f32).collect::<Vec<f32>>();
        file.insert(
            "log_weights",
            vec![args.chains],
            f32s(&estimate.log_weights),
        );
        file.insert("log_likelihood", vec![n], f32s(&log_lik));
        file.metadata
            .insert("ebm.log_z".into(), estimate.log_z.to_string());
        file.metadata
            .insert("ebm.log_z_std_err".into(), estimate.std_err.to_string());
        file.write(out)?;
        eprintln!("wrote {}", out.display());
    }
    Ok(())
}

/// `limit` points of a toy set (its training draw, seed 0) or of an image dataset.
fn load_data(data: &str, shape: &[usize], limit: usize) -> Result<Vec<f32>> {
    if shape == [2] {
        let toy: toy2d::Toy2d = data.parse()?;
        if limit > MAX_TOY_POINTS {
            return Err(Error::Option(format!(
                "--limit {limit} is more than the {MAX_TOY_POINTS} toy points it may draw"
            )));
        }
        return Ok(toy.sample(0, 0, limit));
    }
    let [c, h, w] = shape[..] else {
        return Err(Error::Shape(format!(
            "ebm eval loglik takes 2D models and image models, not input {shape:?}"
        )));
    };
    let mut set = images::load(data, c, h, w)?;
    set.data.truncate(limit.min(set.len()) * c * h * w);
    Ok(set.data)
}
