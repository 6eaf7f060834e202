//! Non-finite values stop training with an error naming the first bad iteration and the likely
//! cause. They are caught on the device (sticky flags written by a kernel after the forward
//! pass and the Adam step, read with the loss stats), so healthy iterations cost no readback;
//! `recording.rs` proves a training iteration still has none.

#[path = "common/gpu.rs"]
mod gpu_common;
#[path = "common/tempdir.rs"]
mod tempdir;

use ebm::backend::Backend;
use ebm::data::{DataSource, Toy2d, ToyData};
use ebm::train::{TrainConfig, Trainer};
use ebm::{CpuBackend, EnergyNet, Error, Spec};
use tempdir::TempDir;

fn trainer<B: Backend>(b: &B, lr: f32) -> Trainer<B> {
    let mut config = TrainConfig::toy2d(0);
    config.batch = 32;
    config.buffer_size = 64;
    config.langevin.steps = 3;
    config.adam.lr = lr;
    let net = EnergyNet::new(b, &Spec::mlp(2, 16, 2), 0).unwrap();
    Trainer::new(b, net, config).unwrap()
}

fn data() -> ToyData {
    ToyData {
        dataset: Toy2d::EightGaussians,
        seed: 0,
    }
}

/// The first iteration that the error names, and the error.
fn first_bad_iteration(e: &Error) -> u64 {
    let text = e.to_string();
    let it = text
        .split("iteration ")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .and_then(|n| n.parse().ok());
    it.unwrap_or_else(|| panic!("no iteration in `{text}`"))
}

/// A learning rate of 1e38 sends the parameters to ±1e38 in the first Adam step; the next
/// forward pass overflows. The flags say which iteration went bad first, however many
/// iterations later the host looks.
fn diverging_run_names_the_iteration<B: Backend>(b: &B) {
    let mut t = trainer(b, 1e38);
    let mut data = data();
    for it in 0..6 {
        t.step(b, &data.batch(it, 32).unwrap()).unwrap();
    }
    let e = t.stats(b).expect_err("a run with lr 1e38 must be caught");
    assert!(matches!(e, Error::NonFinite(_)), "{e}");
    let text = e.to_string();
    assert!(text.contains("NaN or infinite"), "{text}");
    assert!(
        text.contains("try a smaller"),
        "names a likely cause: {text}"
    );
    let it = first_bad_iteration(&e);
    assert!((1..=3).contains(&it), "first bad iteration {it}: {text}");

    // A healthy run with the same seed reads clean stats.
    let mut healthy = trainer(b, 1e-3);
    for it in 0..6 {
        healthy.step(b, &data.batch(it, 32).unwrap()).unwrap();
    }
    let stats = healthy.stats(b).unwrap();
    assert!(stats.loss.is_finite());
}

#[test]
fn diverging_run_names_the_iteration_cpu() {
    diverging_run_names_the_iteration(&CpuBackend::new());
}

#[test]
fn diverging_run_names_the_iteration_gpu() {
    let Some(gpu) = gpu_common::gpu() else { return };
    diverging_run_names_the_iteration(&*gpu);
}

/// The first bad iteration of a 4-iteration run with lr 1e38.
fn flagged_iteration<B: Backend>(b: &B) -> u64 {
    let mut t = trainer(b, 1e38);
    for it in 0..4 {
        t.step(b, &data().batch(it, 32).unwrap()).unwrap();
    }
    first_bad_iteration(&t.stats(b).unwrap_err())
}

/// Both backends flag the same first iteration for the same run.
#[test]
fn gpu_and_cpu_flag_the_same_iteration() {
    let Some(gpu) = gpu_common::gpu() else { return };
    assert_eq!(
        flagged_iteration(&*gpu),
        flagged_iteration(&CpuBackend::new())
    );
}

/// A NaN in the data is the data's fault: refused before it reaches the device.
#[test]
fn nan_in_the_data_batch_is_named() {
    let cpu = CpuBackend::new();
    let mut t = trainer(&cpu, 1e-3);
    let mut batch = data().batch(0, 32).unwrap();
    batch[7] = f32::NAN;
    let e = t.step(&cpu, &batch).unwrap_err();
    assert!(
        e.to_string()
            .contains("iteration 1: the data batch holds NaN"),
        "{e}"
    );
}

/// `ebm train` with a learning rate that diverges: exit code 1, one error line naming the
/// iteration and the cause, and the checkpoint on disk is the last good one (it loads, and
/// every value in it is finite).
#[test]
fn cli_stops_a_diverging_run_and_keeps_the_last_good_checkpoint() {
    let tmp = TempDir::new("health");
    let dir = tmp.join("run");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ebm"))
        .args([
            "--device", "cpu", "train", "toy2d", "--lr", "1e38", "--iters", "50",
        ])
        .args([
            "--ckpt-every",
            "1",
            "--log-every",
            "1000",
            "--plot-every",
            "1000",
            "--quiet",
        ])
        .arg("--out")
        .arg(&dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("NaN or infinite") && errors[0].contains("iteration "),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    let bad = first_bad_iteration(&Error::NonFinite(errors[0].to_string()));
    let latest = dir.join("checkpoint.safetensors");
    let file = ebm::tensorfile::TensorFile::read(&latest).expect("the last good checkpoint");
    for (name, t) in &file.tensors {
        assert!(
            t.data.iter().all(|v| v.is_finite()),
            "{name} in the kept checkpoint is not finite"
        );
    }
    let cpu = CpuBackend::new();
    let trainer = ebm::train::checkpoint::load_trainer(&cpu, &latest).unwrap();
    assert!(
        trainer.iteration < bad,
        "kept checkpoint at {} is before the bad iteration {bad}",
        trainer.iteration
    );
}
