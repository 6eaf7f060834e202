//! End-to-end quality of the labelled objectives: a conditional EBM on 8gaussians must learn
//! each class's own mode (per-class KL on a grid), and JEM on the shipped MNIST digits must
//! classify held-out digits.

use ebm::data::images::{self, ImageData, ImageSet, DEFAULT_DIGITS};
use ebm::data::{toy2d, DataSource, Toy2d, ToyData};
use ebm::eval::kl::kl_data_model;
use ebm::plot::Grid2d;
use ebm::train::{Objective, TrainConfig, Trainer};
use ebm::{CpuBackend, EnergyNet, Spec};

const GRID: Grid2d = Grid2d {
    n: 64,
    range: toy2d::RANGE,
};

/// KL(data of class y ‖ model p(x | y) ∝ exp f(x)[y]) on the grid, for every class.
fn per_class_kl(net: &mut EnergyNet<CpuBackend>, b: &CpuBackend) -> Vec<f64> {
    let (points, labels) = Toy2d::EightGaussians.sample_labelled(7, u32::MAX, 200_000);
    let logits = net.class_logits(b, &GRID.points()).unwrap();
    (0..8)
        .map(|y| {
            let data: Vec<f32> = points
                .chunks(2)
                .zip(&labels)
                .filter(|(_, &l)| l == y as f32)
                .flat_map(|(p, _)| p.to_vec())
                .collect();
            let energy: Vec<f32> = logits.chunks(8).map(|f| -f[y]).collect();
            kl_data_model(&GRID, &data, &energy)
        })
        .collect()
}

#[test]
fn conditional_toy_learns_each_class() {
    let b = CpuBackend::new();
    let mut config = TrainConfig::toy2d(0);
    config.objective = Objective::Conditional;
    config.batch = 128;
    config.buffer_size = 2000;
    let spec = Spec::mlp(2, 64, 2).with_classes(8).unwrap();
    let net = EnergyNet::new(&b, &spec, 0).unwrap();
    let mut trainer = Trainer::new(&b, net, config).unwrap();
    let before = per_class_kl(&mut trainer.net, &b);
    let mut data = ToyData {
        dataset: Toy2d::EightGaussians,
        seed: 0,
    };
    trainer
        .fit(&b, &mut data, 800, |_, _| {
            Ok(std::ops::ControlFlow::Continue(()))
        })
        .unwrap();
    trainer.stats(&b).unwrap();
    let after = per_class_kl(&mut trainer.net, &b);
    eprintln!("per-class KL before {before:.3?}\nafter {after:.3?}");
    // Untrained, each class is spread over the whole box: ≈ 3.6 nats. A model that learned
    // only the marginal (each class's mass over all 8 modes) would sit at ln 8 ≈ 2.1, one
    // with half a class's mass on a wrong mode at ≥ ln 2 ≈ 0.69. This run reaches 0.14–0.18
    // for every class (seed 0); the bound, 0.4, is over twice the worst of them.
    assert!(before.iter().all(|&kl| kl > 3.0), "{before:?}");
    let worst = after.iter().cloned().fold(0.0, f64::max);
    assert!(worst < 0.4, "per-class KL {after:?}");
}

/// The first `n` images of a set (and their labels), or the rest.
fn split(set: &ImageSet, n: usize, head: bool) -> ImageSet {
    let s = set.sample_len();
    let (range, lrange) = if head {
        (0..n * s, 0..n)
    } else {
        (n * s..set.data.len(), n..set.len())
    };
    ImageSet {
        data: set.data[range].to_vec(),
        labels: set.labels.as_ref().map(|l| l[lrange].to_vec()),
        ..set.clone()
    }
}

fn accuracy(net: &mut EnergyNet<CpuBackend>, b: &CpuBackend, set: &ImageSet) -> f64 {
    let logits = net.class_logits(b, &set.data).unwrap();
    let labels = set.labels.as_ref().unwrap();
    let right = logits
        .chunks(10)
        .zip(labels)
        .filter(|(f, &y)| {
            let best = (0..10).max_by(|&i, &j| f[i].total_cmp(&f[j])).unwrap();
            best == y as usize
        })
        .count();
    right as f64 / labels.len() as f64
}

#[test]
fn jem_on_digits_classifies_held_out_digits() {
    let b = CpuBackend::new();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_DIGITS);
    let all = images::load(&path, 1, 32, 32).unwrap();
    let (train, test) = (split(&all, 3000, true), split(&all, 3000, false));
    let spec = Spec::from_json(
        r#"{"input": [1, 32, 32], "layers": [{"type": "flatten"},
            {"type": "linear", "in": 1024, "out": 128}, {"type": "silu"},
            {"type": "linear", "in": 128, "out": 1}]}"#,
    )
    .unwrap()
    .with_classes(10)
    .unwrap();
    let mut accuracies = Vec::new();
    for objective in [
        Objective::Classifier,
        Objective::Jem {
            ce_weight: 1.0,
            cd_weight: 1.0,
        },
    ] {
        let mut config = TrainConfig::toy2d(0);
        config.objective = objective;
        config.batch = 64;
        config.buffer_size = 1000;
        config.alpha = 1.0;
        config.langevin.steps = 10;
        config.langevin.step_size = 1.0;
        config.langevin.noise = 0.01;
        config.langevin.lo = -1.0;
        config.langevin.hi = 1.0;
        config.adam.lr = 1e-3;
        let net = EnergyNet::new(&b, &spec, 0).unwrap();
        let mut trainer = Trainer::new(&b, net, config).unwrap();
        let mut data = ImageData::new(train.clone(), 0).unwrap();
        assert_eq!(data.classes(), Some(10));
        let t0 = std::time::Instant::now();
        trainer
            .fit(&b, &mut data, 300, |_, _| {
                Ok(std::ops::ControlFlow::Continue(()))
            })
            .unwrap();
        let stats = trainer.stats(&b).unwrap();
        let acc = accuracy(&mut trainer.net, &b, &test);
        eprintln!(
            "{objective:?}: held-out accuracy {acc:.3}, ce {:?}, {:.1} s",
            stats.ce,
            t0.elapsed().as_secs_f64()
        );
        accuracies.push(acc);
    }
    // 300 iterations of 64 (≈ 6 epochs of 3000 digits) on a one-hidden-layer MLP: the plain
    // classifier reaches 0.88 on the 1000 held-out digits, JEM 0.89 (chance: 0.10). JEM must
    // stay a classifier while it learns the energy: at least 0.80, and within 5 points of
    // the classifier trained the same way.
    let (classifier, jem) = (accuracies[0], accuracies[1]);
    assert!(classifier > 0.80, "classifier accuracy {classifier:.3}");
    assert!(
        jem > 0.80 && jem > classifier - 0.05,
        "JEM {jem:.3} vs classifier {classifier:.3}"
    );
}
