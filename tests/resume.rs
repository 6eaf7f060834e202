//! A checkpoint continues a run exactly: N iterations, save, load, N more must equal 2N
//! uninterrupted iterations — weights, Adam moments and every replay chain, bit for bit on
//! the CPU (same operations in the same order).

use ebm::data::{DataSource, Toy2d, ToyData};
use ebm::train::checkpoint::{load_trainer, save_checkpoint};
use ebm::train::{TrainConfig, Trainer};
use ebm::{Backend, CpuBackend, EnergyNet, Spec};

fn run(trainer: &mut Trainer<CpuBackend>, b: &CpuBackend, iterations: std::ops::Range<u64>) {
    let mut data = ToyData {
        dataset: Toy2d::Rings,
        seed: trainer.config.seed,
    };
    for it in iterations {
        trainer
            .step(b, &data.batch(it, trainer.config.batch).unwrap())
            .unwrap();
    }
}

fn state(trainer: &Trainer<CpuBackend>, b: &CpuBackend) -> Vec<f32> {
    let mut all: Vec<f32> = trainer
        .net
        .read_params(b)
        .unwrap()
        .into_iter()
        .flat_map(|(_, t)| t.data)
        .collect();
    for (m, v) in trainer.adam.m.iter().zip(&trainer.adam.v) {
        all.extend(b.read(m).unwrap());
        all.extend(b.read(v).unwrap());
    }
    all.extend(trainer.replay.read_chains(b).unwrap());
    all
}

#[test]
fn n_plus_resume_n_equals_2n() {
    let b = CpuBackend::new();
    let mut config = TrainConfig::toy2d(5);
    config.batch = 32;
    config.langevin.steps = 5;
    config.buffer_size = 64;
    config.adam.max_grad_norm = Some(1.0);
    let spec = Spec::mlp(2, 16, 2);
    let n = 7;

    let mut straight =
        Trainer::new(&b, EnergyNet::new(&b, &spec, 5).unwrap(), config.clone()).unwrap();
    run(&mut straight, &b, 0..2 * n);

    let mut first = Trainer::new(&b, EnergyNet::new(&b, &spec, 5).unwrap(), config).unwrap();
    run(&mut first, &b, 0..n);
    let dir = std::env::temp_dir().join(format!("ebm-resume-{}", std::process::id()));
    let ckpt = dir.join("checkpoint.safetensors");
    save_checkpoint(&b, &first, &ckpt).unwrap();
    let mut resumed = load_trainer(&b, &ckpt).unwrap();
    assert_eq!(resumed.iteration, n);
    run(&mut resumed, &b, n..2 * n);
    std::fs::remove_dir_all(&dir).ok();

    assert_eq!(resumed.iteration, straight.iteration);
    assert_eq!(resumed.adam.t, straight.adam.t);
    let (a, z) = (state(&resumed, &b), state(&straight, &b));
    assert_eq!(a.len(), z.len());
    let differing = a
        .iter()
        .zip(&z)
        .filter(|(x, y)| x.to_bits() != y.to_bits())
        .count();
    assert_eq!(
        differing,
        0,
        "{differing} of {} values differ after resuming",
        a.len()
    );
}
