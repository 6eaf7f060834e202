//! Image training learns something measurable: a small ConvNet trained briefly on the shipped
//! MNIST digits must tell held-out digits from uniform noise and from shuffled digits (the
//! same pixels, permuted) by energy (AUROC), and its replay chains must move from their
//! uniform-noise start toward the data.

use ebm::data::images::{self, ImageData};
use ebm::data::DataSource;
use ebm::eval::auroc;
use ebm::rng::{self, Stream};
use ebm::sampler::LangevinConfig;
use ebm::train::{AdamConfig, TrainConfig, Trainer};
use ebm::{CpuBackend, EnergyNet, Spec};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

/// 1-Wasserstein distance between the value distributions of `a` and `b` (pixel histograms),
/// from equally many quantiles of each.
fn pixel_w1(a: &[f32], b: &[f32]) -> f64 {
    let sorted = |v: &[f32]| {
        let mut v = v.to_vec();
        v.sort_by(f32::total_cmp);
        v
    };
    let (a, b) = (sorted(a), sorted(b));
    let n = 1000;
    (0..n)
        .map(|q| {
            let at = |v: &[f32]| v[((q as f64 + 0.5) / n as f64 * v.len() as f64) as usize] as f64;
            (at(&a) - at(&b)).abs()
        })
        .sum::<f64>()
        / n as f64
}

#[test]
fn short_cpu_training_separates_digits_from_noise() {
    let b = CpuBackend::new();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let set = images::load(root.join("data/mnist-subset"), 1, 32, 32).unwrap();
    let len = set.sample_len();
    // Held out: the last 200 shipped digits never appear in training.
    let held_out = set.data[(set.len() - 200) * len..].to_vec();
    let mut train_set = set.clone();
    train_set.data.truncate((set.len() - 200) * len);
    let mut noise = vec![0.0; 200 * len];
    for (n, image) in noise.chunks_mut(len).enumerate() {
        rng::fill_uniform(9, n as u32, 0, Stream::Data, -1.0, 1.0, image);
    }
    // Shuffled digits: each held-out digit with its pixels in a random order (fixed seed).
    // Same pixel histogram as the digits, so only the strokes' spatial structure tells them
    // apart — unlike uniform noise, which is also where the chains start.
    let mut shuffled = held_out.clone();
    let mut perm_rng = StdRng::seed_from_u64(11);
    for image in shuffled.chunks_mut(len) {
        image.shuffle(&mut perm_rng);
    }

    let config = TrainConfig {
        batch: 32,
        langevin: LangevinConfig {
            steps: 10,
            step_size: 10.0,
            noise: 0.005,
            grad_clip: Some(0.01),
            lo: -1.0,
            hi: 1.0,
        },
        alpha: 1.0,
        adam: AdamConfig {
            lr: 1e-3,
            beta1: 0.0,
            ..AdamConfig::default()
        },
        buffer_size: 500,
        reinit_prob: 0.05,
        seed: 0,
        objective: ebm::train::Objective::Cd,
        sampler: ebm::sampler::Method::Ula,
        adapt: None,
    };
    let net = EnergyNet::new(&b, &Spec::convnet(1, 4), 0).unwrap();
    let mut trainer = Trainer::new(&b, net, config).unwrap();
    let score = |t: &mut Trainer<CpuBackend>| {
        let e_in = t.net.energies(&b, &held_out).unwrap();
        let e_noise = t.net.energies(&b, &noise).unwrap();
        let e_shuffled = t.net.energies(&b, &shuffled).unwrap();
        (auroc(&e_in, &e_noise), auroc(&e_in, &e_shuffled))
    };
    let before = score(&mut trainer);
    let chains_before = trainer.replay.read_chains(&b).unwrap();
    let mut data = ImageData::new(train_set.clone(), 0).unwrap();
    for it in 0..60 {
        trainer.step(&b, &data.batch(it, 32).unwrap()).unwrap();
    }
    trainer.stats(&b).unwrap();
    let after = score(&mut trainer);
    let chains_after = trainer.replay.read_chains(&b).unwrap();
    let w1_before = pixel_w1(&chains_before, &train_set.data);
    let w1_after = pixel_w1(&chains_after, &train_set.data);
    // Under the trained energy: how far the chains went from their start (uniform noise)
    // toward the held-out digits, as a fraction of the gap between the two.
    let mean = |v: &[f32]| v.iter().map(|&e| e as f64).sum::<f64>() / v.len() as f64;
    let e_start = mean(&trainer.net.energies(&b, &chains_before).unwrap());
    let e_chains = mean(&trainer.net.energies(&b, &chains_after).unwrap());
    let e_digits = mean(&trainer.net.energies(&b, &held_out).unwrap());
    let toward = (e_start - e_chains) / (e_start - e_digits);
    eprintln!(
        "mean energy: start {e_start:.4}, chains {e_chains:.4}, digits {e_digits:.4}: \
         the chains went {toward:.3} of the way"
    );
    eprintln!(
        "AUROC held-out digits vs noise: untrained {:.3}, after 60 iterations {:.3}; \
         vs shuffled digits: untrained {:.3}, trained {:.3}; replay pixel W1 to the data: \
         {w1_before:.3} at the start, {w1_after:.3} after",
        before.0, after.0, before.1, after.1
    );
    // Untrained, the energy knows nothing about digits (its AUROC lands wherever the init puts
    // it: 0.23 against noise and 0.42 against shuffled digits for this seed), so only the
    // trained values are asserted: digits must score lower than noise, and than their own
    // pixels shuffled, almost always (both reach 1.000 here). The shuffled set is what sees
    // a net blind to strokes: with every 3×3 tap of the CPU convolutions reading the centre
    // pixel (`let ih = (oh * st + ki * 0 + k / 2) …` and likewise `iw` in im2col_channel,
    // src/backend/cpu/conv.rs) the AUROC vs noise is still 1.000 but vs shuffled digits 0.899.
    assert!(
        after.0 > 0.95,
        "AUROC vs noise {:.3} after training",
        after.0
    );
    assert!(
        after.1 > 0.95,
        "AUROC vs shuffled digits {:.3} after training",
        after.1
    );
    // The replay chains must have moved from their start (uniform noise) toward the digits.
    // Measured on this deterministic CPU run, and with the sampler's ∇E dropped
    // (`….run(b, x, &b.zeros(rows * dim)?)` in Langevin::run_with, src/sampler/
    // langevin.rs), which makes both checks fail; each bound sits between the two:
    // - the pixel histogram's W1 distance to the digits': 0.807 at the start, 0.667 after
    //   training, 0.733 with the broken sampler → bound 0.70;
    // - under the trained energy, the chains' mean energy went 0.143 of the way from the
    //   start's to the held-out digits', 0.028 with the broken sampler → bound 0.08.
    assert!(
        w1_after < 0.70,
        "replay chains' pixel histogram {w1_after:.3} from the data's ({w1_before:.3} at the \
         start): the samples did not move toward the data"
    );
    assert!(
        toward > 0.08,
        "the chains' energy went only {toward:.3} of the way from noise to the digits"
    );
}

#[path = "common/gpu.rs"]
mod gpu_common;

/// A ConvNet training run on the GPU follows the CPU run with the same seed (lavapipe-sized).
#[test]
fn gpu_conv_training_follows_cpu() {
    let Some(gpu) = gpu_common::gpu() else { return };
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let set = images::load(root.join("data/mnist-subset"), 1, 32, 32).unwrap();
    let mut config = TrainConfig {
        batch: 8,
        langevin: LangevinConfig {
            steps: 3,
            step_size: 10.0,
            noise: 0.005,
            grad_clip: Some(0.01),
            lo: -1.0,
            hi: 1.0,
        },
        alpha: 1.0,
        adam: AdamConfig {
            lr: 1e-3,
            beta1: 0.0,
            ..AdamConfig::default()
        },
        buffer_size: 32,
        reinit_prob: 0.05,
        seed: 3,
        objective: ebm::train::Objective::Cd,
        sampler: ebm::sampler::Method::Ula,
        adapt: None,
    };
    config.adam.max_grad_norm = Some(10.0);
    fn train<B: ebm::Backend>(b: &B, config: &TrainConfig, set: &images::ImageSet) -> Vec<f32> {
        let net = EnergyNet::new(b, &Spec::convnet(1, 4), 3).unwrap();
        let mut trainer = Trainer::new(b, net, config.clone()).unwrap();
        let mut data = ImageData::new(set.clone(), 3).unwrap();
        for it in 0..4 {
            trainer.step(b, &data.batch(it, 8).unwrap()).unwrap();
        }
        let mut all: Vec<f32> = trainer
            .net
            .read_params(b)
            .unwrap()
            .into_iter()
            .flat_map(|(_, t)| t.data)
            .collect();
        all.extend(trainer.replay.read_chains(b).unwrap());
        all
    }
    let on_cpu = train(&CpuBackend::new(), &config, &set);
    let on_gpu = train(&*gpu, &config, &set);
    let err = gpu_common::rel_err(&on_gpu, &on_cpu);
    assert!(
        err < 1e-4,
        "GPU run drifted from the CPU run: relative error {err:.2e}"
    );
}
