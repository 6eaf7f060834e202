//! Continual class learning, IGEBM §4's Split MNIST protocol on the shipped digits: five
//! tasks of two digits (0/1, 2/3, 4/5, 6/7, 8/9) seen one after the other, no replay of old
//! data; an MLP of two hidden layers of 400 units with one logit per digit; after the last
//! task every held-out digit is classified by its lowest energy E(x, y) = −f(x)[y] over all
//! ten classes. The conditional EBM (`--objective conditional`: each task only pushes its
//! own classes' energies) against the plain classifier (cross-entropy, whose softmax over
//! all ten logits forgets the old tasks), same net, same iterations, several seeds.
//!
//!     cargo run --release --example split_mnist -- [iterations per task] [seeds]
//!
//! Data: the 4000 shipped MNIST training digits; the first 1000 are held out for testing,
//! the other 3000 split by task. (IGEBM trains on all 60 000 and tests on the 10 000 test
//! digits: `scripts/fetch_data.sh mnist` and `SPLIT_MNIST_DATA=data/mnist` run that.)

use ebm::data::images::{self, ImageData, ImageSet, DEFAULT_DIGITS};
use ebm::train::{Objective, TrainConfig, Trainer};
use ebm::{CpuBackend, EnergyNet, Result, Spec};

const HELD_OUT: usize = 1000;
const TASKS: [[u8; 2]; 5] = [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]];

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let iters: u64 = args
        .next()
        .map_or(300, |s| s.parse().expect("iterations per task"));
    let seeds: u64 = args
        .next()
        .map_or(3, |s| s.parse().expect("number of seeds"));
    let path = std::env::var("SPLIT_MNIST_DATA").unwrap_or_else(|_| DEFAULT_DIGITS.into());
    let all = images::load(&path, 1, 28, 28)?;
    let labels = all.labels.clone().expect("digits with labels");
    let subset = |keep: &dyn Fn(usize) -> bool| {
        let idx: Vec<usize> = (0..all.len()).filter(|&i| keep(i)).collect();
        ImageSet {
            data: idx.iter().flat_map(|&i| all.image(i).to_vec()).collect(),
            labels: Some(idx.iter().map(|&i| labels[i]).collect()),
            ..all.clone()
        }
    };
    let test = subset(&|i| i < HELD_OUT);
    let tasks: Vec<ImageSet> = TASKS
        .iter()
        .map(|pair| subset(&|i| i >= HELD_OUT && pair.contains(&labels[i])))
        .collect();
    let spec = Spec::from_json(
        r#"{"input": [1, 28, 28], "layers": [{"type": "flatten"},
            {"type": "linear", "in": 784, "out": 400}, {"type": "leaky_relu", "slope": 0.2},
            {"type": "linear", "in": 400, "out": 400}, {"type": "leaky_relu", "slope": 0.2},
            {"type": "linear", "in": 400, "out": 1}]}"#,
    )?
    .with_classes(10)?;
    let b = CpuBackend::new();
    println!(
        "Split MNIST: {iters} iterations per task, {} test digits",
        test.len()
    );
    for objective in [Objective::Conditional, Objective::Classifier] {
        let mut accuracies = Vec::new();
        for seed in 0..seeds {
            let mut net = EnergyNet::new(&b, &spec, seed)?;
            for (t, task) in tasks.iter().enumerate() {
                let config = config(objective, seed);
                let mut trainer = Trainer::new(&b, net, config)?;
                let mut data = ImageData::new(task.clone(), seed * 10 + t as u64)?;
                trainer.fit(&b, &mut data, iters, |_, _| {
                    Ok(std::ops::ControlFlow::Continue(()))
                })?;
                trainer.stats(&b)?;
                net = trainer.net;
            }
            let (acc, last) = accuracy(&mut net, &b, &test)?;
            println!(
                "  {} seed {seed}: accuracy over all ten digits {:.2} % ({:.0} % of the \
                 predictions are the last task's digits 8 and 9)",
                objective.name(),
                100.0 * acc,
                100.0 * last
            );
            accuracies.push(acc);
        }
        let n = accuracies.len() as f64;
        let mean = accuracies.iter().sum::<f64>() / n;
        let sd = (accuracies.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0))
            .sqrt();
        println!(
            "{}: {:.2} ± {:.2} % (mean ± sd over {seeds} seeds)",
            objective.name(),
            100.0 * mean,
            100.0 * sd
        );
    }
    Ok(())
}

/// The run's settings: a short-run-friendly sampler for an MLP on [−1, 1] images.
fn config(objective: Objective, seed: u64) -> TrainConfig {
    let mut c = TrainConfig::toy2d(seed);
    c.objective = objective;
    c.batch = 64;
    c.buffer_size = 1000;
    c.alpha = 1.0;
    c.langevin.steps = 20;
    c.langevin.step_size = 1.0;
    c.langevin.noise = 0.01;
    c.langevin.lo = -1.0;
    c.langevin.hi = 1.0;
    c.adam.lr = 1e-3;
    c
}

/// Classification by the lowest energy over all ten classes (the largest logit): the
/// accuracy, and the share of predictions that are the last task's classes (forgetting).
fn accuracy(
    net: &mut EnergyNet<CpuBackend>,
    b: &CpuBackend,
    test: &ImageSet,
) -> Result<(f64, f64)> {
    let logits = net.class_logits(b, &test.data)?;
    let labels = test.labels.as_ref().expect("labelled");
    let predicted: Vec<usize> = logits
        .chunks(10)
        .map(|f| (0..10).max_by(|&i, &j| f[i].total_cmp(&f[j])).unwrap_or(0))
        .collect();
    let n = labels.len() as f64;
    let right = predicted
        .iter()
        .zip(labels)
        .filter(|(&p, &y)| p == y as usize)
        .count();
    let last = predicted.iter().filter(|&&p| p >= 8).count();
    Ok((right as f64 / n, last as f64 / n))
}
