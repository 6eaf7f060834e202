//! Bad input to the `ebm` binary, one test per class (issue 6): wrong spec files, missing,
//! truncated or corrupt model and data files, damaged checkpoints, options out of range.
//! Each must exit with code 2 and print exactly one `error:` line naming the problem —
//! never a panic, an abort or a wgpu validation dump. (tests/cli.rs has the first cases:
//! --dataset, --batch 0, --steps 0, a negative --step-size, --device, and a missing, random,
//! truncated or spec-less model for `ebm score`; they are not repeated here.)

#[path = "common/tempdir.rs"]
mod tempdir;

use std::path::Path;
use std::process::{Command, Output};
use tempdir::TempDir;

use ebm::tensorfile::TensorFile;
use ebm::train::checkpoint::{save_checkpoint, save_model};
use ebm::train::{TrainConfig, Trainer};
use ebm::{CpuBackend, EnergyNet, Spec};

/// `ebm --device cpu ARGS` in `cwd` (so nothing lands in the source tree).
fn run(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ebm"))
        .args(["--device", "cpu"])
        .args(args)
        .current_dir(cwd)
        .env_remove("EBM_DEVICE")
        .output()
        .expect("the ebm binary runs")
}

/// Exit code 2, exactly one line starting with `error:` containing every needle, and no
/// panic, abort or wgpu text.
fn expect_bad(dir: &TempDir, args: &[&str], needles: &[&str]) {
    let out = run(&dir.0, args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let what = format!(
        "ebm --device cpu {}\n  status: {}\n  stdout:\n{}\n  stderr:\n{stderr}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
    );
    for bad in [
        "panicked",
        "memory allocation",
        "wgpu",
        "Validation Error",
        "backtrace",
    ] {
        assert!(!stderr.contains(bad), "stderr mentions {bad:?}: {what}");
    }
    assert_eq!(out.status.code(), Some(2), "exit code: {what}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "want exactly one `error:` line: {what}");
    for needle in needles {
        assert!(
            errors[0].contains(needle),
            "the error line does not mention {needle:?}: {what}"
        );
    }
}

/// A small toy2d-shaped model file (2 → 8 → 1, with `ebm.spec`) in `dir`.
fn toy_model(dir: &TempDir) -> String {
    let b = CpuBackend::new();
    let net = EnergyNet::new(&b, &Spec::mlp(2, 8, 1), 0).unwrap();
    let path = dir.path("model.safetensors");
    save_model(&b, &net, Path::new(&path)).unwrap();
    path
}

/// A tiny mnist32-shaped image model (n_f = 2).
fn image_model(dir: &TempDir) -> String {
    let b = CpuBackend::new();
    let net = EnergyNet::new(&b, &Spec::convnet(1, 2), 0).unwrap();
    let path = dir.path("image_model.safetensors");
    save_model(&b, &net, Path::new(&path)).unwrap();
    path
}

/// A toy2d training checkpoint with `edit` applied to its file.
fn checkpoint(dir: &TempDir, name: &str, edit: impl FnOnce(&mut TensorFile)) -> String {
    let b = CpuBackend::new();
    let net = EnergyNet::new(&b, &Spec::mlp(2, 8, 1), 0).unwrap();
    let config = TrainConfig {
        batch: 4,
        buffer_size: 16,
        ..TrainConfig::toy2d(0)
    };
    let trainer = Trainer::new(&b, net, config).unwrap();
    let path = dir.path(name);
    save_checkpoint(&b, &trainer, Path::new(&path)).unwrap();
    let mut file = TensorFile::read(Path::new(&path)).unwrap();
    edit(&mut file);
    file.write(Path::new(&path)).unwrap();
    path
}

/// A raw IDX image file of `n` images of 28 × 28 whose header says `claimed` images.
fn idx(n: u32, claimed: u32) -> Vec<u8> {
    let mut b = Vec::new();
    for v in [0x0803, claimed, 28, 28] {
        b.extend_from_slice(&u32::to_be_bytes(v));
    }
    b.extend((0..n * 28 * 28).map(|i| (i % 251) as u8));
    b
}

/// The shipped MNIST digits.
fn digits() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data/mnist-subset/train-images-idx3-ubyte.gz")
        .to_str()
        .unwrap()
        .into()
}

/// `command` with `defaults` (flag, value) — each left out where `extra` sets that flag
/// itself (clap refuses a flag given twice) — then `extra`.
fn with_defaults<'a>(
    command: &[&'a str],
    defaults: &[(&'a str, &'a str)],
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut args = command.to_vec();
    for &(flag, value) in defaults {
        if !extra.contains(&flag) {
            args.extend([flag, value]);
        }
    }
    args.extend_from_slice(extra);
    args
}

/// `train toy2d` with tiny settings writing to `out`, plus `extra`.
fn toy2d<'a>(out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let defaults = [
        ("--iters", "1"),
        ("--batch", "8"),
        ("--steps", "1"),
        ("--buffer", "16"),
        ("--out", out),
    ];
    with_defaults(&["train", "toy2d", "--quiet"], &defaults, extra)
}

/// `train images` with tiny settings writing to `out`, plus `extra`.
fn images<'a>(out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let defaults = [
        ("--nf", "2"),
        ("--iters", "1"),
        ("--batch", "4"),
        ("--steps", "1"),
        ("--buffer", "8"),
        ("--out", out),
    ];
    with_defaults(&["train", "images", "--quiet"], &defaults, extra)
}

// ------------------------------------------------------------------ spec files

const UNKNOWN_LAYER: &str = r#"{"input":[2],"layers":[{"type":"linear","in":2,"out":8},{"type":"gelu"},{"type":"linear","in":8,"out":1}]}"#;
const IN_OUT_MISMATCH: &str = r#"{"input":[2],"layers":[{"type":"linear","in":2,"out":8},{"type":"silu"},{"type":"linear","in":16,"out":1}]}"#;
const ZERO_SIZE: &str =
    r#"{"input":[2],"layers":[{"type":"linear","in":2,"out":0},{"type":"linear","in":0,"out":1}]}"#;
const NOT_ONE_ENERGY: &str = r#"{"input":[2],"layers":[{"type":"linear","in":2,"out":8},{"type":"silu"},{"type":"linear","in":8,"out":2}]}"#;
const HUGE: &str = r#"{"input":[2],"layers":[{"type":"linear","in":2,"out":1000000000},{"type":"linear","in":1000000000,"out":1}]}"#;
const STRAY_FIELD: &str = r#"{"input":[2],"layers":[{"type":"linear","in":2,"out":8},{"type":"relu","slope":0.2},{"type":"linear","in":8,"out":1}]}"#;
const CONV_MISMATCH: &str = r#"{"input":[1,32,32],"layers":[{"type":"conv2d","in":3,"out":4,"kernel":3},{"type":"flatten"},{"type":"linear","in":3600,"out":1}]}"#;
const CONV_TOO_BIG: &str = r#"{"input":[1,32,32],"layers":[{"type":"conv2d","in":1,"out":4,"kernel":40},{"type":"flatten"},{"type":"linear","in":4,"out":1}]}"#;

#[test]
fn spec_unknown_layer_type() {
    let dir = TempDir::new("bad-spec-unknown");
    let spec = dir.write("gelu.json", UNKNOWN_LAYER);
    let out = dir.path("run");
    expect_bad(
        &dir,
        &toy2d(&out, &["--spec", &spec]),
        &["gelu.json", "gelu", "linear"],
    );
    // A field a layer does not have (relu has no slope) is not silently dropped.
    let spec = dir.write("stray.json", STRAY_FIELD);
    expect_bad(
        &dir,
        &toy2d(&out, &["--spec", &spec]),
        &["stray.json", "slope"],
    );
}

#[test]
fn spec_in_out_mismatch() {
    let dir = TempDir::new("bad-spec-mismatch");
    let out = dir.path("run");
    let spec = dir.write("mismatch.json", IN_OUT_MISMATCH);
    expect_bad(
        &dir,
        &toy2d(&out, &["--spec", &spec]),
        &["mismatch.json", "layers.2", "in=16"],
    );
    let spec = dir.write("conv.json", CONV_MISMATCH);
    expect_bad(
        &dir,
        &images(&out, &["--spec", &spec]),
        &["conv.json", "layers.0", "conv2d in=3"],
    );
    let spec = dir.write("kernel.json", CONV_TOO_BIG);
    expect_bad(
        &dir,
        &images(&out, &["--spec", &spec]),
        &["kernel.json", "layers.0", "kernel 40"],
    );
    // A valid spec of the wrong kind: an MLP for images.
    let spec = dir.write(
        "mlp.json",
        NOT_ONE_ENERGY.replace("\"out\":2}", "\"out\":1}"),
    );
    expect_bad(
        &dir,
        &images(&out, &["--spec", &spec]),
        &["[C, H, W]", "[2]"],
    );
}

#[test]
fn spec_zero_sizes() {
    let dir = TempDir::new("bad-spec-zero");
    let spec = dir.write("zero.json", ZERO_SIZE);
    let model = toy_model(&dir);
    let input = dir.path("x.safetensors");
    let mut x = TensorFile::new();
    x.insert("x", vec![2, 2], vec![0.1, 0.2, 0.3, 0.4]);
    x.write(Path::new(&input)).unwrap();
    let out = dir.path("o.safetensors");
    let score = [
        "score", "--model", &model, "--spec", &spec, "--input", &input, "--out", &out,
    ];
    expect_bad(&dir, &score, &["zero.json", "layers.0", "zero size"]);
    let zero_input = dir.write(
        "zero_input.json",
        r#"{"input":[0],"layers":[{"type":"linear","in":0,"out":1}]}"#,
    );
    expect_bad(
        &dir,
        &["bench", "--workload", &zero_input, "--iters", "1"],
        &["zero_input.json", "zero"],
    );
    assert!(!Path::new(&out).exists(), "no output on error");
}

#[test]
fn spec_last_layer_not_one_energy() {
    let dir = TempDir::new("bad-spec-energy");
    let spec = dir.write("two.json", NOT_ONE_ENERGY);
    let model = toy_model(&dir);
    let out = dir.path("s.safetensors");
    expect_bad(
        &dir,
        &[
            "sample", "--model", &model, "--spec", &spec, "--n", "4", "--steps", "1", "--out", &out,
        ],
        &["two.json", "one energy"],
    );
    expect_bad(
        &dir,
        &toy2d(&dir.path("run"), &["--spec", &spec]),
        &["two.json", "one energy"],
    );
}

#[test]
fn spec_too_large_is_an_error_not_an_abort() {
    let dir = TempDir::new("bad-spec-huge");
    let spec = dir.write("huge.json", HUGE);
    expect_bad(
        &dir,
        &toy2d(&dir.path("run"), &["--spec", &spec]),
        &["huge.json", "layers.0", "parameter count"],
    );
    // The same through the MLP options and the built-in ConvNet's width.
    expect_bad(
        &dir,
        &toy2d(&dir.path("run"), &["--hidden", "100000000"]),
        &["layers.0", "parameter count"],
    );
    expect_bad(
        &dir,
        &images(&dir.path("run"), &["--nf", "100000"]),
        &["parameter count"],
    );
}

#[test]
fn spec_not_json() {
    let dir = TempDir::new("bad-spec-garbage");
    let spec = dir.write("garbage.json", b"\x00\xff{not json");
    let model = toy_model(&dir);
    expect_bad(
        &dir,
        &[
            "sample",
            "--model",
            &model,
            "--spec",
            &spec,
            "--out",
            &dir.path("s.safetensors"),
        ],
        &["garbage.json"],
    );
    let truncated = dir.write("cut.json", &NOT_ONE_ENERGY[..40]);
    expect_bad(
        &dir,
        &toy2d(&dir.path("run"), &["--spec", &truncated]),
        &["cut.json", "EOF"],
    );
    let missing = dir.path("missing.json");
    expect_bad(
        &dir,
        &toy2d(&dir.path("run"), &["--spec", &missing]),
        &["missing.json"],
    );
}

// ------------------------------------------------------------------ model files

#[test]
fn model_missing() {
    let dir = TempDir::new("bad-model-missing");
    let model = dir.path("nowhere.safetensors");
    expect_bad(
        &dir,
        &[
            "sample",
            "--model",
            &model,
            "--n",
            "4",
            "--steps",
            "1",
            "--out",
            &dir.path("s.safetensors"),
        ],
        &["nowhere.safetensors", "No such file"],
    );
    // A folder is not a model file either.
    expect_bad(
        &dir,
        &[
            "sample",
            "--model",
            &dir.path(""),
            "--out",
            &dir.path("s.safetensors"),
        ],
        &[dir.0.file_name().unwrap().to_str().unwrap()],
    );
}

#[test]
fn model_truncated() {
    let dir = TempDir::new("bad-model-truncated");
    let good = std::fs::read(toy_model(&dir)).unwrap();
    let out = dir.path("s.safetensors");
    // Inside the length prefix, inside the header, inside the data.
    for (i, cut) in [4, 40, good.len() - 3].into_iter().enumerate() {
        let name = format!("cut{i}.safetensors");
        let model = dir.write(&name, &good[..cut]);
        expect_bad(
            &dir,
            &[
                "sample", "--model", &model, "--n", "4", "--steps", "1", "--out", &out,
            ],
            &[&name],
        );
    }
    assert!(!Path::new(&out).exists(), "no output on error");
}

#[test]
fn model_corrupt() {
    let dir = TempDir::new("bad-model-corrupt");
    let good = std::fs::read(toy_model(&dir)).unwrap();
    let input = dir.path("x.safetensors");
    let mut x = TensorFile::new();
    x.insert("x", vec![2, 2], vec![0.1, 0.2, 0.3, 0.4]);
    x.write(Path::new(&input)).unwrap();
    let out = dir.path("o.safetensors");
    let score = |model: &str, needles: &[&str]| {
        expect_bad(
            &dir,
            &["score", "--model", model, "--input", &input, "--out", &out],
            needles,
        )
    };
    // A header length far past the end of the file.
    let mut huge = good.clone();
    huge[..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    score(
        &dir.write("huge_header.safetensors", &huge),
        &["huge_header.safetensors"],
    );
    // A zero header length.
    let mut zero = good.clone();
    zero[..8].copy_from_slice(&0u64.to_le_bytes());
    score(
        &dir.write("zero_header.safetensors", &zero),
        &["zero_header.safetensors"],
    );
    // Integers where floats belong (same byte count, so only the dtype is wrong).
    let n = u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
    let header = String::from_utf8(good[8..8 + n].to_vec()).unwrap();
    let mut ints = good.clone();
    ints[8..8 + n].copy_from_slice(header.replace("F32", "I32").as_bytes());
    score(
        &dir.write("ints.safetensors", &ints),
        &["ints.safetensors", "dtype I32"],
    );
    // A tensor with the right number of values in the wrong shape (transposed).
    let mut file = TensorFile::read(Path::new(&dir.path("model.safetensors"))).unwrap();
    file.tensors.get_mut("layers.0.weight").unwrap().shape = vec![2, 8];
    let transposed = dir.path("transposed.safetensors");
    file.write(Path::new(&transposed)).unwrap();
    score(
        &transposed,
        &[
            "transposed.safetensors",
            "layers.0.weight",
            "[2, 8]",
            "[8, 2]",
        ],
    );
    // A missing parameter.
    let mut file = TensorFile::read(Path::new(&dir.path("model.safetensors"))).unwrap();
    file.tensors.remove("layers.2.bias");
    let missing = dir.path("missing_bias.safetensors");
    file.write(Path::new(&missing)).unwrap();
    score(&missing, &["missing_bias.safetensors", "layers.2.bias"]);
    // An ebm.spec that is not a spec, and one of another net.
    let mut file = TensorFile::read(Path::new(&dir.path("model.safetensors"))).unwrap();
    file.metadata
        .insert("ebm.spec".into(), "{\"input\":[2]".into());
    let bad_spec = dir.path("bad_spec.safetensors");
    file.write(Path::new(&bad_spec)).unwrap();
    score(&bad_spec, &["bad_spec.safetensors", "bad model spec"]);
    file.metadata
        .insert("ebm.spec".into(), Spec::mlp(2, 16, 1).to_json());
    let other = dir.path("other_spec.safetensors");
    file.write(Path::new(&other)).unwrap();
    score(
        &other,
        &["other_spec.safetensors", "layers.0.weight", "[16, 2]"],
    );
    // An extra layer the spec has no place for.
    let mut file = TensorFile::read(Path::new(&dir.path("model.safetensors"))).unwrap();
    file.insert("layers.4.weight", vec![1, 1], vec![0.5]);
    let extra = dir.path("extra.safetensors");
    file.write(Path::new(&extra)).unwrap();
    score(&extra, &["extra.safetensors", "layers.4.weight"]);
    assert!(!Path::new(&out).exists(), "no output on error");
}

#[test]
fn checkpoint_missing_or_damaged() {
    // `--resume` needs a checkpoint, not a model file; and a damaged checkpoint says which
    // setting in it is wrong.
    let dir = TempDir::new("bad-resume");
    let model = toy_model(&dir);
    let run = dir.path("run");
    expect_bad(
        &dir,
        &toy2d(&run, &["--resume", &model, "--iters", "2"]),
        &["model.safetensors", "ebm.train"],
    );
    let ckpt = checkpoint(&dir, "zero_batch.safetensors", |f| {
        let json = f.metadata["ebm.train"].replace("\"batch\":4", "\"batch\":0");
        f.metadata.insert("ebm.train".into(), json);
    });
    expect_bad(
        &dir,
        &toy2d(&run, &["--resume", &ckpt, "--iters", "2"]),
        &["zero_batch.safetensors", "ebm.train", "batch size"],
    );
    let ckpt = checkpoint(&dir, "no_adam.safetensors", |f| {
        f.tensors.remove("adam.v.layers.0.weight");
    });
    expect_bad(
        &dir,
        &toy2d(&run, &["--resume", &ckpt, "--iters", "2"]),
        &["no_adam.safetensors", "adam.v.layers.0.weight"],
    );
    let ckpt = checkpoint(&dir, "chains.safetensors", |f| {
        f.tensors.get_mut("replay.chains").unwrap().shape = vec![32, 1];
    });
    expect_bad(
        &dir,
        &toy2d(&run, &["--resume", &ckpt, "--iters", "2"]),
        &["chains.safetensors", "replay.chains", "[32, 1]"],
    );
}

/// A checkpoint of the other command's model (an image model for `train toy2d` and the other
/// way round) is refused with the input shape the command needs.
#[test]
fn resume_checkpoint_of_the_wrong_kind() {
    let dir = TempDir::new("bad-resume-kind");
    let toy = checkpoint(&dir, "toy.safetensors", |_| {});
    expect_bad(
        &dir,
        &images(&dir.path("run"), &["--resume", &toy, "--iters", "3"]),
        &["[C, H, W]"],
    );
    let b = CpuBackend::new();
    let net = EnergyNet::new(&b, &Spec::convnet(1, 2), 0).unwrap();
    let config = TrainConfig {
        batch: 4,
        buffer_size: 8,
        ..TrainConfig::toy2d(0)
    };
    let trainer = Trainer::new(&b, net, config).unwrap();
    let img = dir.path("img.safetensors");
    save_checkpoint(&b, &trainer, Path::new(&img)).unwrap();
    expect_bad(
        &dir,
        &toy2d(&dir.path("run"), &["--resume", &img, "--iters", "3"]),
        &["[2]"],
    );
}

// ------------------------------------------------------------------ data files

#[test]
fn data_missing() {
    let dir = TempDir::new("bad-data-missing");
    let missing = dir.path("no_digits.idx");
    expect_bad(
        &dir,
        &images(&dir.path("run"), &["--data", &missing]),
        &["no_digits.idx", "No such file"],
    );
    let model = image_model(&dir);
    expect_bad(
        &dir,
        &[
            "score",
            "--model",
            &model,
            "--data",
            &missing,
            "--out",
            &dir.path("o.safetensors"),
        ],
        &["no_digits.idx", "No such file"],
    );
    // An empty folder holds no images.
    let empty = dir.path("empty");
    std::fs::create_dir_all(&empty).unwrap();
    expect_bad(
        &dir,
        &images(&dir.path("run"), &["--data", &empty]),
        &["empty", "no image files"],
    );
}

#[test]
fn data_truncated_or_corrupt() {
    let dir = TempDir::new("bad-data-corrupt");
    let model = image_model(&dir);
    let out = dir.path("o.safetensors");
    // An IDX header promising more images than the file holds.
    let short = dir.write("short.idx", idx(3, 10));
    expect_bad(
        &dir,
        &images(&dir.path("run"), &["--data", &short]),
        &["short.idx", "truncated"],
    );
    expect_bad(
        &dir,
        &["score", "--model", &model, "--data", &short, "--out", &out],
        &["short.idx", "truncated"],
    );
    // The shipped digits cut in half (a broken gzip stream).
    let gz = std::fs::read(digits()).unwrap();
    let cut = dir.write("cut-images-idx3-ubyte.gz", &gz[..gz.len() / 2]);
    expect_bad(
        &dir,
        &images(&dir.path("run"), &["--data", &cut]),
        &["cut-images-idx3-ubyte.gz", "gzip"],
    );
    // Random bytes as a CIFAR-10 batch, and as an image.
    let random: Vec<u8> = (0..5000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let bin = dir.write("data_batch_1.bin", &random);
    expect_bad(
        &dir,
        &["score", "--model", &model, "--data", &bin, "--out", &out],
        &["data_batch_1.bin", "CIFAR-10"],
    );
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend_from_slice(&random[..100]);
    let png = dir.write("broken.png", &png);
    expect_bad(
        &dir,
        &["score", "--model", &model, "--data", &png, "--out", &out],
        &["broken.png", "PNG"],
    );
    // The ood set too.
    expect_bad(
        &dir,
        &[
            "score",
            "--model",
            &model,
            "--data",
            &digits(),
            "--ood",
            &short,
            "--limit",
            "4",
            "--out",
            &out,
        ],
        &["short.idx", "truncated"],
    );
    // A model that does not take images.
    let toy = toy_model(&dir);
    expect_bad(
        &dir,
        &["score", "--model", &toy, "--data", &digits(), "--out", &out],
        &["--data", "[2]"],
    );
    assert!(!Path::new(&out).exists(), "no output on error");
}

#[test]
fn input_file_without_samples() {
    let dir = TempDir::new("bad-input-empty");
    let model = toy_model(&dir);
    let input = dir.path("none.safetensors");
    let mut x = TensorFile::new();
    x.insert("x", vec![0, 2], vec![]);
    x.write(Path::new(&input)).unwrap();
    expect_bad(
        &dir,
        &[
            "score",
            "--model",
            &model,
            "--input",
            &input,
            "--out",
            &dir.path("o.safetensors"),
        ],
        &["none.safetensors", "no samples"],
    );
    let mut x = TensorFile::new();
    x.insert("y", vec![1, 2], vec![0.0, 0.0]);
    x.write(Path::new(&input)).unwrap();
    expect_bad(
        &dir,
        &[
            "score",
            "--model",
            &model,
            "--input",
            &input,
            "--out",
            &dir.path("o.safetensors"),
        ],
        &["none.safetensors", "no tensor 'x'"],
    );
}

// ------------------------------------------------------------------ options out of range

#[test]
fn sample_options_out_of_range() {
    let dir = TempDir::new("bad-opt-sample");
    let model = toy_model(&dir);
    let out = dir.path("s.safetensors");
    let sample = |extra: &[&str], needles: &[&str]| {
        let command = ["sample", "--model", &model, "--out", &out];
        let args = with_defaults(&command, &[("--n", "4"), ("--steps", "1")], extra);
        expect_bad(&dir, &args, needles);
    };
    sample(&["--n", "0"], &["--n"]);
    sample(&["--steps", "0"], &["--steps"]);
    sample(&["--step-size", "-0.5"], &["step size", "-0.5"]);
    sample(&["--step-size", "NaN"], &["step size", "NaN"]);
    sample(&["--noise", "-1"], &["noise", "-1"]);
    sample(&["--noise", "inf"], &["noise", "inf"]);
    sample(&["--lo", "1", "--hi", "-1"], &["clamp range"]);
    sample(
        &["--n", "1000000000000000"],
        &["--n 1000000000000000", "too large"],
    );
    // Negative counts are refused by the parser, with its own one error line.
    sample(&["--n", "-3"], &["--n"]);
    sample(&["--steps", "-1"], &["--steps"]);
    // The exact samplers' own options.
    sample(
        &["--sampler", "mala", "--temperature", "0"],
        &["temperature", "0"],
    );
    sample(
        &["--sampler", "hmc", "--temperature", "-1"],
        &["temperature", "-1"],
    );
    sample(&["--sampler", "hmc", "--leapfrog", "0"], &["leapfrog"]);
    sample(&["--sampler", "gibbs"], &["--sampler", "gibbs"]);
    sample(&["--adapt", "10"], &["--adapt", "mala"]);
    sample(
        &["--sampler", "annealed", "--target-accept", "0.5"],
        &["--target-accept"],
    );
    assert!(!Path::new(&out).exists(), "no output on error");
}

#[test]
fn eval_loglik_options_and_data() {
    let dir = TempDir::new("bad-eval");
    let model = toy_model(&dir);
    let image = image_model(&dir);
    let eval = |extra: &[&str], needles: &[&str]| {
        let command = ["eval", "loglik", "--model", &model];
        let defaults = [("--data", "rings"), ("--chains", "4"), ("--levels", "2")];
        expect_bad(&dir, &with_defaults(&command, &defaults, extra), needles);
    };
    eval(&["--transition", "gibbs"], &["--transition gibbs"]);
    eval(&["--chains", "0"], &["chain"]);
    eval(&["--levels", "0"], &["level"]);
    eval(&["--leapfrog", "0"], &["leapfrog"]);
    eval(&["--step-size", "0"], &["step size"]);
    eval(&["--limit", "0"], &["--limit"]);
    eval(&["--data", "9gaussians"], &["9gaussians"]);
    // Rings reach past ±2: data outside the box, where the model has no mass.
    eval(&["--lo", "-2", "--hi", "2"], &["outside the box"]);
    eval(&["--lo", "2", "--hi", "-2"], &["lo < hi"]);
    eval(&["--lo", "nan"], &["lo < hi"]);
    eval(
        &["--chains", "18446744073709551615"],
        &["--chains", "too large"],
    );
    eval(&["--limit", "18446744073709551615"], &["--limit"]);
    eval(&["--levels", "18446744073709551615"], &["--levels"]);
    let missing = dir.path("missing.idx");
    expect_bad(
        &dir,
        &["eval", "loglik", "--model", &image, "--data", &missing],
        &["missing.idx"],
    );
}

#[test]
fn train_options_out_of_range() {
    let dir = TempDir::new("bad-opt-train");
    let out = dir.path("run");
    let bad = |extra: &[&str], needles: &[&str]| expect_bad(&dir, &toy2d(&out, extra), needles);
    bad(&["--iters", "0"], &["--iters"]);
    bad(&["--lr", "0"], &["learning rate"]);
    bad(&["--lr", "-0.001"], &["learning rate", "-0.001"]);
    bad(&["--step-size", "NaN"], &["step size", "NaN"]);
    bad(&["--noise", "-0.1"], &["noise", "-0.1"]);
    bad(&["--grad-clip", "0"], &["gradient clip"]);
    bad(&["--alpha", "-1"], &["alpha"]);
    bad(&["--beta1", "1"], &["betas"]);
    bad(&["--max-grad-norm", "-2"], &["clip norm"]);
    bad(&["--reinit", "1.5"], &["re-init probability"]);
    bad(
        &["--sampler", "mala", "--temperature", "0"],
        &["temperature", "0"],
    );
    bad(&["--sampler", "hmc", "--leapfrog", "0"], &["leapfrog"]);
    bad(&["--sampler", "gibbs"], &["gibbs"]);
    bad(&["--adapt", "10"], &["--adapt", "mala"]);
    bad(
        &[
            "--sampler",
            "mala",
            "--adapt",
            "10",
            "--target-accept",
            "1.5",
        ],
        &["target acceptance", "1.5"],
    );
    bad(
        &["--sampler", "mala", "--objective", "conditional"],
        &["conditional", "mala"],
    );
    bad(&["--buffer", "0"], &["replay buffer"]);
    bad(&["--plot-every", "0"], &["--plot-every"]);
    bad(
        &["--batch", "100000000000000"],
        &["batch size 100000000000000", "too large"],
    );
    bad(&["--batch", "-1"], &["--batch"]);
    bad(&["--depth", "1000000000000"], &["--depth 1000000000000"]);
    bad(&["--hidden", "0"], &["layers.0", "zero size"]);
    let images_out = dir.path("images");
    let bad =
        |extra: &[&str], needles: &[&str]| expect_bad(&dir, &images(&images_out, extra), needles);
    bad(&["--iters", "0"], &["--iters"]);
    bad(&["--nf", "0"], &["--nf"]);
    bad(&["--buffer", "10000000"], &["replay buffer size 10000000"]);
    bad(&["--grad-clip", "-1"], &["gradient clip"]);
}

#[test]
fn restore_options_out_of_range() {
    let dir = TempDir::new("bad-opt-restore");
    let model = image_model(&dir);
    let png = dir.path("r.png");
    let data = digits();
    let restore = |command: &str, extra: &[&str], needles: &[&str]| {
        let command = [command, "--model", &model, "--data", &data, "--out", &png];
        let args = with_defaults(&command, &[("--n", "2"), ("--steps", "1")], extra);
        expect_bad(&dir, &args, needles);
    };
    restore("inpaint", &["--step-size", "-1"], &["step size"]);
    restore("inpaint", &["--noise", "NaN"], &["noise"]);
    restore("inpaint", &["--fraction", "2"], &["--fraction"]);
    restore("inpaint", &["--n", "0"], &["--n"]);
    restore("denoise", &["--grad-clip", "0"], &["gradient clip"]);
    restore("denoise", &["--sigma", "-1"], &["--sigma"]);
    restore("denoise", &["--steps", "0"], &["--steps"]);
    restore(
        "inpaint",
        &["--sampler", "annealed", "--levels", "0"],
        &["levels"],
    );
    restore(
        "inpaint",
        &["--sampler", "annealed", "--levels", "1", "--t-max", "0.5"],
        &["temperature", "0.5"],
    );
    restore(
        "inpaint",
        &["--sampler", "mala", "--temperature", "0"],
        &["temperature"],
    );
    restore(
        "denoise",
        &["--sampler", "hmc", "--leapfrog", "0"],
        &["leapfrog"],
    );
    restore("denoise", &["--sampler", "gibbs"], &["gibbs"]);
    assert!(!Path::new(&png).exists(), "no output on error");
}

#[test]
fn score_and_bench_options_out_of_range() {
    let dir = TempDir::new("bad-opt-score");
    let model = image_model(&dir);
    expect_bad(
        &dir,
        &[
            "score",
            "--model",
            &model,
            "--data",
            &digits(),
            "--limit",
            "0",
            "--out",
            &dir.path("o.safetensors"),
        ],
        &["--limit"],
    );
    let bench = |extra: &[&str], needles: &[&str]| {
        let defaults = [("--workload", "toy2d"), ("--iters", "1")];
        let args = with_defaults(&["bench", "--warmup", "0"], &defaults, extra);
        expect_bad(&dir, &args, needles);
    };
    bench(&["--iters", "0"], &["--iters"]);
    bench(&["--batch", "16,0"], &["--batch"]);
    bench(&["--steps", "0"], &["--steps"]);
    bench(
        &["--batch", "100000000000000"],
        &["--batch 100000000000000", "too large"],
    );
    bench(&["--only", "everything"], &["--only everything"]);
    bench(&["--workload", "nope"], &["nope"]);
    bench(
        &["--workload", "anatomy32", "--nf", "4611686018427387904"],
        &["layers.0", "4611686018427387904"],
    );
}

// ------------------------------------------------------------------ labels and objectives

/// Labelled objectives and conditional sampling refuse data without labels, models without
/// a class head and classes the model does not have, each with one line naming the problem.
#[test]
fn labelled_objectives_and_classes() {
    let dir = TempDir::new("bad-labels");
    let out = dir.path("run");
    expect_bad(
        &dir,
        &toy2d(&out, &["--objective", "jem", "--dataset", "swissroll"]),
        &["--objective jem", "swissroll", "no classes"],
    );
    expect_bad(&dir, &toy2d(&out, &["--objective", "gan"]), &["gan"]);
    expect_bad(
        &dir,
        &toy2d(&out, &["--objective", "jem", "--ce-weight", "-1"]),
        &["--ce-weight", "-1"],
    );
    // Images without a labels file beside them: the message names the file looked for.
    let images_file = dir.path("u-images-idx3-ubyte");
    std::fs::write(&images_file, idx(3, 3)).unwrap();
    expect_bad(
        &dir,
        &images(
            &out,
            &["--objective", "conditional", "--data", &images_file],
        ),
        &["u-labels-idx1-ubyte", "--labels"],
    );
    expect_bad(
        &dir,
        &images(&out, &["--holdout", "4000", "--data", &digits()]),
        &["--holdout 4000"],
    );
    // A resume on other data (here: another hold-out) is refused, naming both.
    let held = dir.path("held");
    let digits = digits();
    let first = run(
        &dir.0,
        &images(&held, &["--data", &digits, "--holdout", "10"]),
    );
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let resume = format!("{held}/checkpoint.safetensors");
    expect_bad(
        &dir,
        &images(
            &held,
            &["--data", &digits, "--resume", &resume, "--iters", "2"],
        ),
        &["--resume", "holdout 10", "holdout 0"],
    );
    let again = run(
        &dir.0,
        &images(
            &held,
            &[
                "--data",
                &digits,
                "--holdout",
                "10",
                "--resume",
                &resume,
                "--iters",
                "2",
            ],
        ),
    );
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    // --class needs a class-logit model, and one of its classes.
    let scalar = toy_model(&dir);
    let samples = dir.path("s.safetensors");
    let sample = |model: &str, class: &str, needles: &[&str]| {
        let args = [
            "sample", "--model", model, "--class", class, "--n", "4", "--steps", "1",
        ];
        expect_bad(&dir, &[&args[..], &["--out", &samples]].concat(), needles);
    };
    sample(&scalar, "0", &["--class", "class-logit"]);
    let conditional = dir.path("cond");
    let train = toy2d(
        &conditional,
        &["--objective", "conditional", "--iters", "2"],
    );
    let trained = run(&dir.0, &train);
    assert!(
        trained.status.success(),
        "{}",
        String::from_utf8_lossy(&trained.stderr)
    );
    let model = format!("{conditional}/model.safetensors");
    sample(&model, "8", &["--class 8", "0..8"]);
    sample(&model, "two", &["--class two"]);
    // And the good call works: 4 chains of class 3, labelled in the output.
    let ok = run(
        &dir.0,
        &[
            "sample", "--model", &model, "--class", "3", "--n", "4", "--steps", "2", "--out",
            &samples,
        ],
    );
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let file = TensorFile::read(Path::new(&samples)).unwrap();
    assert_eq!(
        file.get("label", Path::new(&samples)).unwrap().data,
        [3.0; 4]
    );
}
