//! Files written by the version-1 engine (tests/golden/v1/, made by main before the graph
//! refactor; its README has the commands) load in this one and give the same numbers, bit
//! for bit on the CPU: model files score the same energies and ∇ₓE, and a checkpoint resumed
//! for the rest of its run ends at the parameters the old engine reached without stopping.
//!
//! Bit for bit where the `gemm` crate runs the kernels it ran where the files were made (its
//! AVX-512 ones: a default build on an AVX-512 CPU). Its AVX2 kernels sum in other blocks, so
//! on a CPU without AVX-512 the last bits move and the numbers are compared to [`REL`].

#[path = "common/tempdir.rs"]
mod tempdir;

use std::path::{Path, PathBuf};
use std::process::Command;

use ebm::tensorfile::TensorFile;
use tempdir::TempDir;

fn v1(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/v1")
        .join(name)
}

fn ebm(args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_ebm"))
        .args(["--device", "cpu"])
        .args(args)
        .output()
        .expect("the ebm binary runs");
    assert!(
        out.status.success(),
        "ebm {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Relative error allowed where gemm's kernels differ from the files' (rounding in the last
/// bits, grown over the resumed iterations; a wrong layer or step is far larger).
const REL: f32 = 1e-5;

/// Whether gemm runs its AVX-512 kernels here, as where the files were made.
fn same_kernels() -> bool {
    cfg!(feature = "gemm-avx512") && ebm::backend::cpu::Isa::Avx512.supported()
}

/// `ours` equals `theirs`: bit for bit where [`same_kernels`], else within [`REL`] of the
/// largest magnitude.
fn same(what: &str, ours: &[f32], theirs: &[f32]) {
    assert_eq!(ours.len(), theirs.len(), "{what}: lengths");
    if same_kernels() {
        assert!(ours == theirs, "{what} differs from the v1 engine's");
        return;
    }
    let scale = theirs
        .iter()
        .fold(0f32, |m, v| m.max(v.abs()))
        .max(f32::MIN_POSITIVE);
    let err = ours
        .iter()
        .zip(theirs)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        err <= REL * scale,
        "{what} differs from the v1 engine's by {err} (largest value {scale})"
    );
}

fn tensor(path: &Path, name: &str) -> Vec<f32> {
    TensorFile::read(path)
        .unwrap()
        .get(name, path)
        .unwrap()
        .data
        .clone()
}

/// Every tensor of two model files, by name: identical.
fn same_params(ours: &Path, theirs: &Path) {
    let (a, b) = (
        TensorFile::read(ours).unwrap(),
        TensorFile::read(theirs).unwrap(),
    );
    let names: Vec<&String> = b.tensors.keys().collect();
    assert!(!names.is_empty());
    for name in names {
        let (x, y) = (
            &a.get(name, ours).unwrap().data,
            &b.get(name, theirs).unwrap().data,
        );
        same(name, x, y);
    }
    assert_eq!(a.tensors.len(), b.tensors.len());
}

fn scores_match(model: &str, scores: &str) {
    let dir = TempDir::new("v1-score");
    let (x, out) = (dir.join("x.safetensors"), dir.join("scores.safetensors"));
    let old = v1(scores);
    // The inputs the old scores were computed on travel in the scores file.
    let file = TensorFile::read(&old).unwrap();
    let mut input = TensorFile::default();
    input
        .tensors
        .insert("x".into(), file.get("x", &old).unwrap().clone());
    input.write(&x).unwrap();
    let (model, x_arg, out_arg) = (
        v1(model),
        x.display().to_string(),
        out.display().to_string(),
    );
    ebm(&[
        "score",
        "--model",
        model.to_str().unwrap(),
        "--input",
        &x_arg,
        "--grad",
        "--out",
        &out_arg,
    ]);
    for name in ["energy", "grad_x"] {
        same(name, &tensor(&out, name), &tensor(&old, name));
    }
}

#[test]
fn v1_models_score_the_same() {
    scores_match("toy2d-model-20.safetensors", "toy2d-scores.safetensors");
    scores_match("mnist32-model-4.safetensors", "mnist32-scores.safetensors");
}

#[test]
fn v1_checkpoints_resume_to_the_same_parameters() {
    let dir = TempDir::new("v1-resume");
    let out = dir.join("toy");
    let ckpt = v1("toy2d-checkpoint-10.safetensors");
    ebm(&[
        "train",
        "toy2d",
        "--hidden",
        "16",
        "--depth",
        "2",
        "--iters",
        "20",
        "--batch",
        "32",
        "--buffer",
        "64",
        "--ckpt-every",
        "10",
        "--plot-every",
        "1000",
        "--log-every",
        "10",
        "--quiet",
        "--resume",
        ckpt.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    same_params(
        &out.join("model.safetensors"),
        &v1("toy2d-model-20.safetensors"),
    );

    let out = dir.join("images");
    let ckpt = v1("mnist32-checkpoint-2.safetensors");
    ebm(&[
        "train",
        "images",
        "--spec",
        "mnist32",
        "--nf",
        "2",
        "--iters",
        "4",
        "--batch",
        "4",
        "--steps",
        "2",
        "--buffer",
        "8",
        "--ckpt-every",
        "2",
        "--plot-every",
        "1000",
        "--log-every",
        "2",
        "--quiet",
        "--resume",
        ckpt.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    same_params(
        &out.join("model.safetensors"),
        &v1("mnist32-model-4.safetensors"),
    );
}
