//! A checkpoint continues a run exactly: N iterations, save, load, N more must equal 2N
//! uninterrupted iterations — weights, Adam moments and every replay chain, bit for bit on
//! the CPU (same operations in the same order), and on the GPU backend too (lavapipe in CI):
//! its kernels have no atomics or order-dependent reductions, so the same dispatches on the
//! same values give the same bits there as well.

#[path = "common/gpu.rs"]
mod gpu_common;
#[path = "common/tempdir.rs"]
mod tempdir;

use ebm::data::{DataSource, Toy2d, ToyData};
use ebm::train::checkpoint::{load_trainer, save_checkpoint};
use ebm::train::{Objective, TrainConfig, Trainer};
use ebm::{Backend, CpuBackend, EnergyNet, Spec};

fn run<B: Backend>(trainer: &mut Trainer<B>, b: &B, iterations: std::ops::Range<u64>) {
    let mut data = ToyData {
        dataset: Toy2d::Rings,
        seed: trainer.config.seed,
    };
    let n = trainer.config.batch;
    for it in iterations {
        let x = data.batch(it, n).unwrap();
        if trainer.config.objective.needs_labels() {
            let y = data.labels(it, n).unwrap();
            trainer.step_labelled(b, &x, &y).unwrap();
        } else {
            trainer.step(b, &x).unwrap();
        }
    }
}

fn state<B: Backend>(trainer: &Trainer<B>, b: &B) -> Vec<f32> {
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
    all.extend(trainer.replay.read_labels(b).unwrap().unwrap_or_default());
    all
}

/// N iterations, checkpoint, load, N more, against 2N straight: the number of values (of
/// weights, Adam moments and replay chains) whose bits differ.
fn resume_mismatches<B: Backend>(b: &B) -> usize {
    resume_mismatches_of(b, &Spec::mlp(2, 16, 2))
}

/// A residual MLP with spectral norm on every linear layer: its power-iteration vectors u, v
/// travel in the checkpoint, and the trainer's refreshes of W/σ must replay exactly.
fn spectral_residual_mlp() -> Spec {
    Spec::from_json(
        r#"{"input":[2],"layers":[
            {"type":"linear","name":"a","in":2,"out":16,"spectral_norm":true},
            {"type":"tanh"},
            {"type":"linear","name":"b","in":16,"out":16,"spectral_norm":true},
            {"type":"add","from":["a","b"]},
            {"type":"silu"},
            {"type":"linear","name":"out","in":16,"out":1,"spectral_norm":true}]}"#,
    )
    .unwrap()
}

fn resume_mismatches_of<B: Backend>(b: &B, spec: &Spec) -> usize {
    resume_mismatches_with(b, spec, Objective::Cd)
}

fn resume_mismatches_with<B: Backend>(b: &B, spec: &Spec, objective: Objective) -> usize {
    resume_mismatches_configured(b, spec, |c| c.objective = objective)
}

/// [`resume_mismatches_with`] for any change of the test's settings.
fn resume_mismatches_configured<B: Backend>(
    b: &B,
    spec: &Spec,
    edit: impl Fn(&mut TrainConfig),
) -> usize {
    let mut config = TrainConfig::toy2d(5);
    edit(&mut config);
    config.batch = 32;
    config.langevin.steps = 5;
    config.buffer_size = 64;
    config.adam.max_grad_norm = Some(1.0);
    let spec = spec.clone();
    let n = 7;

    let mut straight =
        Trainer::new(b, EnergyNet::new(b, &spec, 5).unwrap(), config.clone()).unwrap();
    run(&mut straight, b, 0..2 * n);

    let mut first = Trainer::new(b, EnergyNet::new(b, &spec, 5).unwrap(), config).unwrap();
    run(&mut first, b, 0..n);
    let dir = tempdir::TempDir::new("resume");
    let ckpt = dir.join("checkpoint.safetensors");
    save_checkpoint(b, &first, &ckpt).unwrap();
    let mut resumed = load_trainer(b, &ckpt).unwrap();
    assert_eq!(resumed.iteration, n);
    run(&mut resumed, b, n..2 * n);

    assert_eq!(resumed.iteration, straight.iteration);
    assert_eq!(resumed.adam.t, straight.adam.t);
    if let Some(acceptance) = straight.acceptance(b).unwrap() {
        // The exact sampler really ran and really rejected now and then.
        let rate = acceptance.rate;
        assert!(rate > 0.05 && rate < 0.999, "acceptance {rate}");
        assert_eq!(resumed.config.sampler, straight.config.sampler);
        assert_eq!(resumed.exact_step.to_bits(), straight.exact_step.to_bits());
        if straight.config.adapt.is_some() {
            // The warm-up did move ε, and then froze it.
            assert_ne!(straight.exact_step, straight.config.langevin.step_size);
            assert_eq!(resumed.adapter, straight.adapter);
        }
    }
    let (a, z) = (state(&resumed, b), state(&straight, b));
    assert_eq!(a.len(), z.len());
    let differing = a
        .iter()
        .zip(&z)
        .filter(|(x, y)| x.to_bits() != y.to_bits())
        .count();
    eprintln!(
        "{}: {differing} of {} values differ after resuming",
        b.name(),
        a.len()
    );
    differing
}

#[test]
fn n_plus_resume_n_equals_2n() {
    assert_eq!(resume_mismatches(&CpuBackend::new()), 0);
}

/// Spectral norm resumes exactly too, and training does move u and v (one power iteration
/// per step; a trainer that never iterated would leave them at their initial values).
///
/// Mutations that make it fail (checked, then reverted): the trainer not recomputing W/σ
/// after Adam (1175 of 1340 values differ after resuming), and not iterating before the loss
/// (u never moves).
#[test]
fn spectral_norm_resumes_exactly() {
    let b = CpuBackend::new();
    assert_eq!(resume_mismatches_of(&b, &spectral_residual_mlp()), 0);
    let spec = spectral_residual_mlp();
    let fresh = EnergyNet::new(&b, &spec, 5).unwrap();
    let mut config = TrainConfig::toy2d(5);
    config.batch = 32;
    config.langevin.steps = 5;
    config.buffer_size = 64;
    let mut trainer = Trainer::new(&b, EnergyNet::new(&b, &spec, 5).unwrap(), config).unwrap();
    run(&mut trainer, &b, 0..3);
    let u = |net: &EnergyNet<CpuBackend>| {
        let p = net
            .params()
            .iter()
            .find(|p| p.name == "b.weight_u")
            .unwrap();
        b.read(&p.value).unwrap()
    };
    assert_ne!(
        u(&trainer.net),
        u(&fresh),
        "u never moved: no power iteration ran"
    );
}

/// The same on the GPU backend, bit for bit: measured on lavapipe, where two straight runs
/// agree bit for bit as well (every kernel reduces in a fixed order, no atomics).
///
/// Mutation that makes it fail (checked, then reverted): load_trainer in
/// src/train/checkpoint.rs skipping `load_chains` (the resumed run restarts from a fresh
/// replay buffer), which leaves most values different.
#[test]
fn gpu_n_plus_resume_n_equals_2n() {
    let gpu = gpu_or_skip!();
    assert_eq!(resume_mismatches(&*gpu), 0);
}

/// The labelled objectives resume exactly too: a conditional run's replay buffer carries the
/// chains' labels (−1 for chains never drawn) in the checkpoint, and JEM's extra buffers
/// hold nothing between iterations.
///
/// Mutation that makes it fail (checked, then reverted): load_trainer skipping
/// `load_labels`, so the resumed buffer's chains all start unlabelled again.
#[test]
fn labelled_objectives_resume_exactly() {
    let b = CpuBackend::new();
    let spec = Spec::mlp(2, 16, 2).with_classes(4).unwrap();
    assert_eq!(resume_mismatches_with(&b, &spec, Objective::Conditional), 0);
    let jem = Objective::Jem {
        ce_weight: 0.5,
        cd_weight: 1.0,
    };
    assert_eq!(resume_mismatches_with(&b, &spec, jem), 0);
    let gpu = gpu_or_skip!();
    assert_eq!(
        resume_mismatches_with(&*gpu, &spec, Objective::Conditional),
        0
    );
}

/// Training with MALA's or HMC's chains resumes exactly too: the chains' E and ∇E are
/// recomputed from the drawn chains every iteration, so nothing but the settings (saved with
/// the run's) needs to travel in the checkpoint.
#[test]
fn exact_sampler_runs_resume_exactly() {
    use ebm::sampler::adapt::Adaptation;
    use ebm::sampler::Method;
    let b = CpuBackend::new();
    let spec = Spec::mlp(2, 16, 2);
    for sampler in [
        Method::Mala { temperature: 1.0 },
        Method::Hmc {
            temperature: 0.5,
            leapfrog: 3,
        },
    ] {
        let edit = |c: &mut TrainConfig| {
            c.sampler = sampler;
            c.langevin.step_size = 0.2;
        };
        assert_eq!(
            resume_mismatches_configured(&b, &spec, edit),
            0,
            "{sampler:?}"
        );
    }
    // Resumed in the middle of an adaptation warm-up (iteration 7 of 10): ε and the
    // dual-averaging state travel in the checkpoint.
    let adapting = |c: &mut TrainConfig| {
        c.sampler = Method::Mala { temperature: 1.0 };
        c.langevin.step_size = 0.5;
        c.adapt = Some(Adaptation {
            warmup: 10,
            target: 0.574,
        });
    };
    assert_eq!(resume_mismatches_configured(&b, &spec, adapting), 0);
    let gpu = gpu_or_skip!();
    let mala = |c: &mut TrainConfig| c.sampler = Method::Mala { temperature: 1.0 };
    assert_eq!(resume_mismatches_configured(&*gpu, &spec, mala), 0);
}
