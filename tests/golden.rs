//! The PyTorch golden file (scripts/ebm_ref.py export, committed as
//! tests/golden/golden.safetensors): energies, ∇ₓE, CD-loss parameter gradients and three
//! Langevin steps, matched on every backend to relative error ≤ 1e-4 per tensor.
//! Also the Philox words, normals and uniforms against tests/golden/philox.json.

#[path = "common/gpu.rs"]
mod gpu_common;

use std::path::Path;

use ebm::backend::Backend;
use ebm::rng::{self, Stream};
use ebm::sampler::{Langevin, LangevinConfig};
use ebm::tensorfile::TensorFile;
use ebm::train::CdLoss;
use ebm::{CpuBackend, EnergyNet, Spec};
use gpu_common::rel_err;

const TOL: f64 = 1e-4;

fn golden() -> (TensorFile, &'static Path) {
    let path = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/golden/golden.safetensors"
    ));
    (TensorFile::read(path).expect("golden file"), path)
}

/// Every reference quantity of workload `name`, on backend `b`.
fn check_workload<B: Backend>(b: &B, name: &str) {
    let (file, path) = golden();
    let t = |key: &str| {
        file.get(&format!("{name}/{key}"), path)
            .unwrap()
            .data
            .clone()
    };
    let meta = |key: &str| file.metadata[key].clone();
    let spec = Spec::from_json(&meta(&format!("{name}/spec"))).unwrap();
    let mut net = EnergyNet::from_params(b, &spec, |p, _| Ok(t(p))).unwrap();
    let (x_pos, x_neg) = (t("x_pos"), t("x_neg"));
    let batch = x_neg.len() / net.input_len();
    let check = |what: &str, ours: &[f32], want: &[f32]| {
        let e = rel_err(ours, want);
        assert!(
            e <= TOL,
            "{name}/{what} on {}: relative error {e:.3e} > {TOL:e}",
            b.name()
        );
    };

    check(
        "energy_pos",
        &net.energies(b, &x_pos).unwrap(),
        &t("energy_pos"),
    );
    let (e_neg, grad) = net.energies_and_grad(b, &x_neg).unwrap();
    check("energy_neg", &e_neg, &t("energy_neg"));
    check("grad_x_neg", &grad, &t("grad_x_neg"));

    // CD loss and its parameter gradients on [x⁺; x⁻].
    let alpha: f32 = meta("alpha").parse().unwrap();
    let both = b.upload(&[x_pos.clone(), x_neg.clone()].concat()).unwrap();
    let mut d_energy = b.zeros(2 * batch).unwrap();
    let mut stats = b.zeros(ebm::train::stat::LEN).unwrap();
    let energies = net.forward(b, &both, 2 * batch).unwrap();
    CdLoss {
        n_pos: batch,
        alpha,
    }
    .run(b, energies, &mut d_energy, &mut stats);
    net.backward_params(b, 2 * batch, &d_energy).unwrap();
    let loss = b.read(&stats).unwrap()[ebm::train::stat::LOSS];
    check("loss", &[loss], &t("loss"));
    for p in net.params() {
        check(
            &format!("grad/{}", p.name),
            &b.read(&p.grad).unwrap(),
            &t(&format!("grad/{}", p.name)),
        );
    }

    // Three Langevin steps with Philox noise (seed 7, stream 0, chain = row, step = k).
    let sampler = Langevin {
        config: LangevinConfig {
            steps: meta("K").parse().unwrap(),
            step_size: meta(&format!("{name}/step")).parse().unwrap(),
            noise: meta("noise").parse().unwrap(),
            grad_clip: None,
            lo: meta("clamp_lo").parse().unwrap(),
            hi: meta("clamp_hi").parse().unwrap(),
        },
        seed: meta("langevin_seed").parse().unwrap(),
    };
    let mut x = b.upload(&x_neg).unwrap();
    sampler.run(b, &mut net, &mut x, batch, 0).unwrap();
    check("langevin_x3", &b.read(&x).unwrap(), &t("langevin_x3"));

    // The noise itself, as the engine draws it.
    let dim = net.input_len();
    for k in 0..3u32 {
        let mut noise = vec![0.0; batch * dim];
        for (row, chunk) in noise.chunks_mut(dim).enumerate() {
            rng::fill_normal(sampler.seed, row as u32, k, Stream::Langevin, chunk);
        }
        check(
            &format!("langevin_noise_{k}"),
            &noise,
            &t(&format!("langevin_noise_{k}")),
        );
    }
}

#[test]
fn toy2d_golden_cpu() {
    check_workload(&CpuBackend::new(), "toy2d");
}

#[test]
fn anatomy32_golden_cpu() {
    check_workload(&CpuBackend::new(), "anatomy32");
}

#[test]
fn mnist32_golden_cpu() {
    check_workload(&CpuBackend::new(), "mnist32");
}

#[test]
fn toy2d_golden_gpu() {
    if let Some(gpu) = gpu_common::gpu() {
        check_workload(&*gpu, "toy2d");
    }
}

#[test]
fn convnet_goldens_gpu() {
    if let Some(gpu) = gpu_common::gpu() {
        check_workload(&*gpu, "anatomy32");
        check_workload(&*gpu, "mnist32");
    }
}

#[test]
fn philox_matches_ebm_ref() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/golden/philox.json"
    ))
    .unwrap();
    let golden: serde_json::Value = serde_json::from_str(&text).unwrap();
    let streams = [
        Stream::Langevin,
        Stream::ReplayReinit,
        Stream::ReplayDraw,
        Stream::WeightInit,
        Stream::Data,
    ];
    for case in golden["cases"].as_array().unwrap() {
        let seed: u64 = case["seed"].as_str().unwrap().parse().unwrap();
        let n = case["n"].as_u64().unwrap() as usize;
        let step = case["step"].as_u64().unwrap() as u32;
        let stream = streams[case["stream"].as_u64().unwrap() as usize];
        for (c, chain) in case["chains"].as_array().unwrap().iter().enumerate() {
            let chain = chain.as_u64().unwrap() as u32;
            let want_words: Vec<u32> = case["words"][c]
                .as_array()
                .unwrap()
                .iter()
                .map(|w| w.as_u64().unwrap() as u32)
                .collect();
            let ours: Vec<u32> = (0..n.div_ceil(4))
                .flat_map(|block| rng::words(seed, block as u32, chain, step, stream))
                .collect();
            assert_eq!(ours, want_words, "words, seed {seed} chain {chain}");

            let floats = |key: &str| -> Vec<f32> {
                case[key][c]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap() as f32)
                    .collect()
            };
            let mut normal = vec![0.0; n];
            rng::fill_normal(seed, chain, step, stream, &mut normal);
            assert!(
                rel_err(&normal, &floats("normal")) < 1e-6,
                "normals, seed {seed} chain {chain}"
            );
            let mut uniform = vec![0.0; n];
            rng::fill_uniform(seed, chain, step, stream, -2.0, 3.0, &mut uniform);
            assert_eq!(
                uniform,
                floats("uniform"),
                "uniforms, seed {seed} chain {chain}"
            );
        }
    }
}
