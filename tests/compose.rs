//! Composed energies: a model composed with itself at weights 1 and 1 samples exactly as the
//! model at weight 2 (the same noise, gradients g + g = 2g bit for bit), a single term at
//! weight 1 samples as plain Langevin on the model, and a class term samples E(x, y) as
//! conditional Langevin does — on the CPU and the GPU.

#[path = "common/gpu.rs"]
mod gpu_common;

use std::ops::ControlFlow;

use ebm::backend::Backend;
use ebm::sampler::{Composition, Langevin, LangevinConfig, Term};
use ebm::{CpuBackend, EnergyNet, Spec};
use gpu_common::rel_err;

fn sampler(steps: usize) -> Langevin {
    Langevin {
        config: LangevinConfig {
            steps,
            step_size: 0.05,
            noise: 0.1,
            grad_clip: None,
            lo: -3.0,
            hi: 3.0,
        },
        seed: 11,
    }
}

fn go<B: Backend>(_: &B) -> impl FnMut(ebm::sampler::Progress) -> ControlFlow<()> {
    |_| ControlFlow::Continue(())
}

fn check<B: Backend>(b: &B) {
    // A conv net (no fused chain, so plain Langevin runs the same ops) with a class head.
    let spec = Spec::from_json(
        r#"{"input": [1, 4, 4], "layers": [{"type": "conv2d", "in": 1, "out": 3, "kernel": 3, "padding": 1},
            {"type": "silu"}, {"type": "flatten"}, {"type": "linear", "in": 48, "out": 1}]}"#,
    )
    .unwrap()
    .with_classes(3)
    .unwrap();
    let net = || EnergyNet::new(b, &spec, 5).unwrap();
    let (n, steps) = (16, 12);
    let s = sampler(steps);
    let sample = |terms: Vec<Term<B>>| {
        let mut comp = Composition::new(b, terms).unwrap();
        s.sample_composed(b, &mut comp, n, 5, go(b)).unwrap().x
    };
    let doubled = sample(vec![
        Term::new(net(), 1.0, None),
        Term::new(net(), 1.0, None),
    ]);
    let twice = sample(vec![Term::new(net(), 2.0, None)]);
    assert_eq!(
        doubled,
        twice,
        "two identical terms = one at double weight, on {}",
        b.name()
    );
    let init = s.noise(n, 16);
    assert!(rel_err(&twice, &init) > 0.05, "the chains moved");

    let once = sample(vec![Term::new(net(), 1.0, None)]);
    let plain = s.sample(b, &mut net(), n, 5, go(b)).unwrap().x;
    assert!(rel_err(&once, &plain) < 1e-6, "one term = plain Langevin");

    let class = sample(vec![Term::new(net(), 1.0, Some(2))]);
    let conditional = s
        .sample_labelled(b, &mut net(), &[2.0; 16], 5, go(b))
        .unwrap()
        .x;
    assert!(
        rel_err(&class, &conditional) < 1e-6,
        "a class term = conditional Langevin"
    );

    // Energies: the weighted sum.
    let mut comp = Composition::new(
        b,
        vec![Term::new(net(), 0.5, Some(1)), Term::new(net(), -2.0, None)],
    )
    .unwrap();
    let e = comp.energies(b, &init).unwrap();
    let logits = net().class_logits(b, &init).unwrap();
    let plain_e = net().energies(b, &init).unwrap();
    for (r, &got) in e.iter().enumerate() {
        let want = 0.5 * -logits[3 * r + 1] - 2.0 * plain_e[r];
        assert!((got - want).abs() < 1e-5, "row {r}: {got} vs {want}");
    }
    // A class the model does not have, or a class on a scalar model: errors.
    assert!(Composition::new(b, vec![Term::new(net(), 1.0, Some(3))]).is_err());
    let scalar = EnergyNet::new(b, &Spec::mlp(16, 4, 1), 0).unwrap();
    assert!(Composition::new(b, vec![Term::new(scalar, 1.0, Some(0))]).is_err());
}

#[test]
fn cpu_composition() {
    check(&CpuBackend::new());
}

#[test]
fn gpu_composition() {
    let gpu = gpu_or_skip!();
    check(&*gpu);
}

/// Cross-class sampling from the command line: `ebm compose --init DATA --init-class 1`
/// starts the chains at the dataset's first images of class 1 (kept as `init` in the
/// output), runs them under class 7's energy, and moves them.
#[test]
fn cli_cross_class_starts_at_images_of_one_class() {
    let dir = std::env::temp_dir().join(format!("ebm-cross-class-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let digits =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(ebm::data::images::DEFAULT_DIGITS);
    let ebm = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ebm"))
            .args(["--device", "cpu"])
            .args(args)
            .current_dir(&dir)
            .env_remove("EBM_DEVICE")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let digits = digits.to_str().unwrap();
    ebm(&[
        "train",
        "images",
        "--quiet",
        "--objective",
        "conditional",
        "--nf",
        "2",
        "--iters",
        "1",
        "--batch",
        "4",
        "--steps",
        "1",
        "--buffer",
        "8",
        "--data",
        digits,
        "--out",
        "run",
    ]);
    ebm(&[
        "compose",
        "--model",
        "run/model.safetensors:y=7",
        "--init",
        digits,
        "--init-class",
        "1",
        "--n",
        "3",
        "--steps",
        "2",
        "--out",
        "cross.safetensors",
    ]);
    let path = dir.join("cross.safetensors");
    let file = ebm::tensorfile::TensorFile::read(&path).unwrap();
    let init = file.get("init", &path).unwrap().data.clone();
    let x = file.get("x", &path).unwrap().data.clone();
    let set = ebm::data::images::load(digits, 1, 32, 32).unwrap();
    let labels = set.labels.as_ref().unwrap();
    let ones: Vec<f32> = (0..set.len())
        .filter(|&i| labels[i] == 1)
        .take(3)
        .flat_map(|i| set.image(i).to_vec())
        .collect();
    assert_eq!(init, ones, "the first three 1s of the dataset");
    assert!(rel_err(&x, &init) > 1e-4, "the chains moved");
    std::fs::remove_dir_all(&dir).ok();
}
