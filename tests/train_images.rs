//! Image training learns something measurable: a small ConvNet trained briefly on the shipped
//! MNIST digits must tell held-out digits from uniform noise and from Fashion-MNIST by energy
//! (AUROC), where the untrained net cannot.

use ebm::data::images::{self, ImageData};
use ebm::data::DataSource;
use ebm::eval::auroc;
use ebm::rng::{self, Stream};
use ebm::sampler::LangevinConfig;
use ebm::train::{AdamConfig, TrainConfig, Trainer};
use ebm::{CpuBackend, EnergyNet, Spec};

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
    };
    let net = EnergyNet::new(&b, &Spec::convnet(1, 4), 0).unwrap();
    let mut trainer = Trainer::new(&b, net, config).unwrap();
    let score = |t: &mut Trainer<CpuBackend>| {
        let e_in = t.net.energies(&b, &held_out).unwrap();
        let e_noise = t.net.energies(&b, &noise).unwrap();
        auroc(&e_in, &e_noise)
    };
    let before = score(&mut trainer);
    let mut data = ImageData::new(train_set, 0).unwrap();
    for it in 0..60 {
        trainer.step(&b, &data.batch(it, 32).unwrap()).unwrap();
    }
    trainer.stats(&b).unwrap();
    let after = score(&mut trainer);
    eprintln!(
        "AUROC held-out digits vs noise: untrained {before:.3}, after 60 iterations {after:.3}"
    );
    // Untrained, the energy knows nothing about digits (its AUROC lands wherever the init puts
    // it: 0.23 for this seed), so only the trained value is asserted: digits must score lower
    // than noise almost always.
    assert!(after > 0.95, "AUROC {after:.3} after training");
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
