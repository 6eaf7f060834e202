//! The training objectives' parameter gradients against PyTorch autograd in float64
//! (`scripts/ebm_ref.py export-objectives`, committed as tests/golden/objectives.safetensors):
//! conditional CD on E(x, y) = −f(x)[y], JEM (weighted cross-entropy + CD on
//! E(x) = −logsumexp f(x)) on an MLP and a small ConvNet, and the plain classifier, each run
//! through `ObjectiveLoss::gradients` on the CPU and the GPU and matched to relative error
//! ≤ 1e-4 per tensor (2-norm), the loss and cross-entropy too.

#[path = "common/gpu.rs"]
mod gpu_common;

use std::path::Path;

use ebm::backend::Backend;
use ebm::tensorfile::TensorFile;
use ebm::train::{Objective, ObjectiveLoss};
use ebm::{CpuBackend, EnergyNet, Spec};
use gpu_common::rel_err;

const TOL: f64 = 1e-4;

fn golden() -> TensorFile {
    let path = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/golden/objectives.safetensors"
    ));
    TensorFile::read(path).expect("objective golden file")
}

fn check_case<B: Backend>(b: &B, file: &TensorFile, case: &str) {
    let t = |key: &str| {
        file.get(
            &format!("{case}/{key}"),
            Path::new("objectives.safetensors"),
        )
        .unwrap_or_else(|e| panic!("{e}"))
        .data
        .clone()
    };
    let meta = |key: &str| file.metadata[key].clone();
    let spec = Spec::from_json(&meta(&format!("{case}/spec"))).unwrap();
    let weight = |key: &str| meta(key).parse::<f32>().unwrap();
    let objective = match meta(&format!("{case}/kind")).as_str() {
        "conditional" => Objective::Conditional,
        "jem" => Objective::Jem {
            ce_weight: weight("ce_weight"),
            cd_weight: weight("cd_weight"),
        },
        "classifier" => Objective::Classifier,
        other => panic!("unknown kind {other}"),
    };
    let batch: usize = meta("batch").parse().unwrap();
    let mut net = EnergyNet::from_params(b, &spec, |p, _| Ok(t(p))).unwrap();
    let mut loss = ObjectiveLoss::new(b, &net, objective, weight("alpha"), batch).unwrap();
    let x = b.upload(&[t("x_pos"), t("x_neg")].concat()).unwrap();
    let (y_pos, y_neg) = (
        b.upload(&t("y_pos")).unwrap(),
        b.upload(&t("y_neg")).unwrap(),
    );
    loss.gradients(b, &mut net, &x, &y_pos, &y_neg, 1.0)
        .unwrap();
    let check = |what: &str, ours: &[f32], want: &[f32]| {
        assert_eq!(ours.len(), want.len(), "{case}/{what}: length");
        let e = rel_err(ours, want);
        assert!(
            e <= TOL,
            "{case}/{what} on {}: relative error {e:.3e}",
            b.name()
        );
    };
    let stats = loss.read(b).unwrap();
    check("loss", &[stats.loss], &t("loss"));
    if objective != Objective::Conditional {
        check("ce", &[stats.ce.expect("a cross-entropy")], &t("ce"));
    }
    for p in net.params() {
        let key = format!("grad/{}", p.name);
        check(&key, &b.read(&p.grad).unwrap(), &t(&key));
    }
}

fn check_all<B: Backend>(b: &B) {
    let file = golden();
    let cases = file.metadata["cases"].clone();
    assert_eq!(cases.split(',').count(), 4, "{cases}");
    for case in cases.split(',') {
        check_case(b, &file, case);
    }
}

#[test]
fn cpu_objectives_match_pytorch() {
    check_all(&CpuBackend::new());
}

#[test]
fn gpu_objectives_match_pytorch() {
    let gpu = gpu_or_skip!();
    check_all(&*gpu);
}
