//! End-to-end tests of the `ebm` binary: score a PyTorch-made model against PyTorch's own
//! energies and ∇ₓE (tests/golden/make_torch_model.py), a tiny train → sample → resume run,
//! `info`, `bench --json`, and bad input (one `error:` line, exit code 2, never a panic).

#[path = "common/gpu.rs"]
mod gpu_common;

#[path = "common/tempdir.rs"]
mod tempdir;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use tempdir::TempDir;

use ebm::tensorfile::TensorFile;
use ebm::Spec;
use gpu_common::rel_err;

const TOL: f64 = 1e-4;

/// A file under tests/golden/.
fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

/// Run `ebm ARGS` in `cwd` (so nothing lands in the source tree), EBM_DEVICE unset.
fn run_in(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ebm"))
        .args(args)
        .current_dir(cwd)
        .env_remove("EBM_DEVICE")
        .env_remove("EBM_TENSOR_CORES")
        .env_remove("EBM_CONV_TILES")
        .env_remove("EBM_MLP_CHAIN_GROUP")
        .env_remove("EBM_CPU_TILES")
        .output()
        .expect("the ebm binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Both streams, for failure messages.
fn describe(args: &[&str], out: &Output) -> String {
    format!(
        "ebm {}\n  status: {}\n  stdout:\n{}\n  stderr:\n{}",
        args.join(" "),
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    )
}

/// Run and require exit code 0.
fn run_ok(cwd: &Path, args: &[&str]) -> Output {
    let out = run_in(cwd, args);
    assert!(out.status.success(), "failed: {}", describe(args, &out));
    out
}

/// Bad input: exit code 2, exactly one `error:` line containing every `needle`, no panic.
fn expect_bad_input(cwd: &Path, args: &[&str], needles: &[&str]) {
    let out = run_in(cwd, args);
    let stderr = text(&out.stderr);
    let what = describe(args, &out);
    assert!(!stderr.contains("panicked"), "panicked: {what}");
    assert_eq!(out.status.code(), Some(2), "exit code: {what}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "want one `error:` line: {what}");
    for needle in needles {
        assert!(
            errors[0].contains(needle),
            "the error line does not mention {needle:?}: {what}"
        );
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temp path")
}

// ------------------------------------------------------------------ score vs PyTorch

/// `ebm score --grad` on the PyTorch-saved toy2d model against PyTorch's f64 energies and ∇ₓE.
fn score_matches_torch(device: &str) {
    let tmp = TempDir::new(&format!("cli-score-{device}"));
    let model = golden("torch_toy2d.safetensors");
    let input = golden("torch_x.safetensors");
    let want_path = golden("torch_scores.safetensors");
    let want = TensorFile::read(&want_path).unwrap();
    let x_in = TensorFile::read(&input).unwrap().tensors["x"].clone();
    for grad in [true, false] {
        let out_path = tmp.join(if grad {
            "grad.safetensors"
        } else {
            "e.safetensors"
        });
        let mut args = vec![
            "--device",
            device,
            "score",
            "--model",
            path_str(&model),
            "--input",
            path_str(&input),
            "--out",
            path_str(&out_path),
        ];
        if grad {
            args.push("--grad");
        }
        run_ok(&tmp.0, &args);
        let got = TensorFile::read(&out_path).unwrap();
        let get = |f: &TensorFile, p: &Path, k: &str| f.get(k, p).unwrap().clone();
        assert_eq!(get(&got, &out_path, "x"), x_in, "x is echoed unchanged");
        let energy = get(&got, &out_path, "energy");
        assert_eq!(energy.shape, vec![4]);
        let e = rel_err(&energy.data, &get(&want, &want_path, "energy").data);
        assert!(
            e <= TOL,
            "energy on {device}: relative error {e:.3e} > {TOL:e}"
        );
        assert!(got.metadata.contains_key("ebm.spec"), "ebm.spec metadata");
        if grad {
            let g = get(&got, &out_path, "grad_x");
            assert_eq!(g.shape, vec![4, 2]);
            let e = rel_err(&g.data, &get(&want, &want_path, "grad_x").data);
            assert!(
                e <= TOL,
                "grad_x on {device}: relative error {e:.3e} > {TOL:e}"
            );
        } else {
            assert!(
                !got.tensors.contains_key("grad_x"),
                "grad_x written without --grad"
            );
        }
    }
}

#[test]
fn score_torch_model_cpu() {
    score_matches_torch("cpu");
}

#[test]
fn score_torch_model_gpu() {
    // Only to decide whether an adapter exists; the CLI opens its own device.
    if gpu_common::gpu().is_none() {
        return;
    }
    score_matches_torch("gpu");
}

// ------------------------------------------------------------------ train, sample, resume

fn read_csv(path: &Path) -> (String, Vec<Vec<f64>>) {
    let csv = std::fs::read_to_string(path).unwrap();
    let mut lines = csv.lines();
    let header = lines.next().unwrap_or_default().to_string();
    let rows = lines
        .map(|l| {
            l.split(',')
                .map(|v| {
                    v.parse::<f64>()
                        .unwrap_or_else(|_| panic!("bad value {v:?} in {l:?}"))
                })
                .collect()
        })
        .collect();
    (header, rows)
}

fn check_png(path: &Path) {
    let img = image::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(img.width() > 0 && img.height() > 0, "{}", path.display());
}

#[test]
fn train_sample_resume() {
    let tmp = TempDir::new("cli-train");
    let dir = tmp.join("run");
    let d = path_str(&dir);
    let common = [
        "--device",
        "cpu",
        "train",
        "toy2d",
        "--batch",
        "32",
        "--steps",
        "5",
        "--buffer",
        "256",
        "--plot-every",
        "15",
        "--log-every",
        "10",
        "--ckpt-every",
        "15",
        "--quiet",
        "--out",
        d,
    ];
    run_ok(&tmp.0, &[&common[..], &["--iters", "30"]].concat());

    let (header, rows) = read_csv(&dir.join("metrics.csv"));
    assert_eq!(header, "iter,loss,e_pos,e_neg,kl,it_per_s,seconds");
    assert_eq!(rows.len(), 3, "{rows:?}");
    for (row, iter) in rows.iter().zip([10.0, 20.0, 30.0]) {
        assert_eq!(row.len(), 7, "{row:?}");
        assert_eq!(row[0], iter, "{rows:?}");
        assert!(row.iter().all(|v| v.is_finite()), "{row:?}");
        assert!(row[5] > 0.0, "it/s {row:?}");
    }
    for png in [
        "toy2d_000015.png",
        "toy2d_000030.png",
        "toy2d.png",
        "metrics.png",
    ] {
        check_png(&dir.join(png));
    }

    let model_path = dir.join("model.safetensors");
    let model = TensorFile::read(&model_path).unwrap();
    let spec = Spec::from_json(&model.metadata["ebm.spec"]).unwrap();
    assert_eq!(spec.input, vec![2]);
    assert!(model.tensors.contains_key("layers.0.weight"));
    let ckpt_path = dir.join("checkpoint.safetensors");
    let ckpt = TensorFile::read(&ckpt_path).unwrap();
    for prefix in ["adam.m.", "adam.v."] {
        assert!(
            ckpt.tensors.keys().any(|k| k.starts_with(prefix)),
            "no {prefix}* in the checkpoint: {:?}",
            ckpt.tensors.keys().collect::<Vec<_>>()
        );
    }
    assert_eq!(
        ckpt.get("replay.chains", &ckpt_path).unwrap().shape,
        vec![256, 2]
    );
    assert!(ckpt.metadata.contains_key("ebm.spec"));

    // Sample from the model file.
    let samples = dir.join("s.safetensors");
    run_ok(
        &tmp.0,
        &[
            "--device",
            "cpu",
            "sample",
            "--model",
            path_str(&model_path),
            "--n",
            "100",
            "--steps",
            "5",
            "--out",
            path_str(&samples),
        ],
    );
    let x = TensorFile::read(&samples)
        .unwrap()
        .get("x", &samples)
        .unwrap()
        .clone();
    assert_eq!(x.shape, vec![100, 2]);
    assert!(x.data.iter().all(|v| v.is_finite()));
    check_png(&dir.join("s.png"));

    // Resume to iteration 40.
    run_ok(
        &tmp.0,
        &[
            &common[..],
            &["--iters", "40", "--resume", path_str(&ckpt_path)],
        ]
        .concat(),
    );
    let (header2, rows2) = read_csv(&dir.join("metrics.csv"));
    assert_eq!(header2, header);
    let iters: Vec<f64> = rows2.iter().map(|r| r[0]).collect();
    assert_eq!(
        iters,
        vec![10.0, 20.0, 30.0, 40.0],
        "metrics.csv after resume"
    );
    assert!(rows2.iter().flatten().all(|v| v.is_finite()), "{rows2:?}");
    check_png(&dir.join("toy2d_000040.png"));
    let ckpt = TensorFile::read(&ckpt_path).unwrap();
    let position: serde_json::Value = serde_json::from_str(&ckpt.metadata["ebm.rng"]).unwrap();
    assert_eq!(position["iteration"], 40, "{position}");
}

// ------------------------------------------------------------------ info, bench

#[test]
fn info_lists_cpu() {
    let tmp = TempDir::new("cli-info");
    let out = run_ok(&tmp.0, &["info"]);
    let stdout = text(&out.stdout);
    let cpu = stdout.lines().find(|l| l.starts_with("CPU:"));
    let cpu = cpu.unwrap_or_else(|| panic!("no `CPU:` line:\n{stdout}"));
    // It says which method the CPU's convolutions take by default on this machine's CPU
    // (what `auto` picks: this process's own choice would follow any EBM_CPU_TILES here).
    let method = match ebm::backend::cpu::choose_tiles("auto") {
        Ok(Some(isa)) => format!("{} tiles (direct convolution)", isa.name()),
        _ => "im2col + gemm".to_string(),
    };
    assert!(cpu.contains(&method), "{cpu:?} does not name {method:?}");
    // --cpu-tiles off takes every product to im2col, and says so where the CPU has tiles.
    let off = text(&run_ok(&tmp.0, &["--cpu-tiles", "off", "info"]).stdout);
    assert!(off.contains("convolutions on im2col + gemm"), "{off}");
    // The GPU kernel choices: the defaults, then what the options ask for.
    let kernels = |out: &str| {
        out.lines()
            .find(|l| l.starts_with("GPU kernels:"))
            .unwrap_or_else(|| panic!("no `GPU kernels:` line:\n{out}"))
            .to_string()
    };
    let defaults = kernels(&stdout);
    for want in [
        "conv tiles 64",
        "MLP chain 8 chains",
        "tensor cores off",
        "thin inputs' gradient on the kernel",
    ] {
        assert!(defaults.contains(want), "{defaults:?} lacks {want:?}");
    }
    let args = [
        "--conv-tiles",
        "auto",
        "--mlp-chain-group",
        "4",
        "--tensor-cores",
        "on",
        "--thin-inputs",
        "tiles",
        "info",
    ];
    let asked = kernels(&text(&run_ok(&tmp.0, &args).stdout));
    for want in [
        "conv tiles auto",
        "MLP chain 4 chains",
        "tensor cores asked for",
        "thin inputs' gradient on the tiles",
    ] {
        assert!(asked.contains(want), "{asked:?} lacks {want:?}");
    }
}

/// The CPU's tile kinds give the same bits: a short ConvNet run (direct convolutions in its
/// wide layers, forward and both gradients) and a toy2d run (the fused chain's 128-wide
/// layers) leave the same checkpoint with AVX2 tiles as with AVX-512 ones (the products
/// outside the tiles, by the `gemm` crate, are the same in both runs). A bad `--cpu-tiles`
/// is one error line.
#[test]
fn cpu_tile_kinds_agree_to_the_bit() {
    use ebm::backend::cpu::Isa;
    let tmp = TempDir::new("cli-cpu-tiles");
    expect_bad_input(
        &tmp.0,
        &["--cpu-tiles", "sse", "info"],
        &["cpu-tiles", "sse"],
    );
    for isa in Isa::ALL.into_iter().filter(|isa| !isa.supported()) {
        let args = ["--cpu-tiles", isa.value(), "info"];
        expect_bad_input(&tmp.0, &args, &["this CPU has no"]);
    }
    if !Isa::ALL.into_iter().all(Isa::supported) {
        eprintln!("this CPU lacks AVX-512 or AVX2: no second kind to compare");
        return;
    }
    for isa in Isa::ALL {
        let info = text(&run_ok(&tmp.0, &["--cpu-tiles", isa.value(), "info"]).stdout);
        let name = format!("{} tiles", isa.name());
        assert!(info.contains(&name), "--cpu-tiles {}: {info}", isa.value());
    }
    let runs: [&[&str]; 2] = [
        &[
            "images", "--nf", "32", "--iters", "2", "--batch", "8", "--steps", "3", "--buffer",
            "32",
        ],
        &["toy2d", "--iters", "3", "--batch", "64", "--steps", "4"],
    ];
    for run in runs {
        let mut checkpoints = Vec::new();
        for isa in Isa::ALL {
            let out = tmp.join(&format!("{}-{}", run[0], isa.value()));
            let mut args = vec!["--device", "cpu", "--cpu-tiles", isa.value(), "train"];
            args.extend_from_slice(run);
            args.extend(["--quiet", "--out", path_str(&out)]);
            run_ok(&tmp.0, &args);
            let checkpoint = TensorFile::read(&out.join("checkpoint.safetensors")).unwrap();
            checkpoints.push(checkpoint.tensors);
        }
        assert!(
            !checkpoints[0].is_empty(),
            "{}: an empty checkpoint",
            run[0]
        );
        assert!(
            checkpoints[0] == checkpoints[1],
            "{}: the AVX-512 and AVX2 runs' checkpoints differ",
            run[0]
        );
    }
}

/// Train on the GPU once per value of the global option `flag` (`run`: the training
/// subcommand and its options), check that the device line names `marker` for the second
/// value only, and return each run's model tensors. A bad value (`bad`) is one error line.
/// `None` without a GPU.
fn gpu_models_by(
    name: &str,
    flag: &str,
    [first, second, bad]: [&str; 3],
    run: &[&str],
    marker: &str,
) -> Option<Vec<std::collections::BTreeMap<String, ebm::tensorfile::Tensor>>> {
    let tmp = TempDir::new(name);
    expect_bad_input(&tmp.0, &[flag, bad, "info"], &[&flag[2..], bad]);
    gpu_common::gpu()?;
    let mut models = Vec::new();
    for value in [first, second] {
        let out = tmp.join(&format!("run-{value}"));
        let mut args = vec!["--device", "gpu", flag, value, "train"];
        args.extend_from_slice(run);
        args.extend(["--quiet", "--out", path_str(&out)]);
        let done = {
            let _turn = gpu_common::gpu_turn();
            run_ok(&tmp.0, &args)
        };
        let said = text(&done.stdout) + &text(&done.stderr);
        let device = said
            .lines()
            .find(|l| l.starts_with("device:"))
            .unwrap_or("");
        let named = device.contains(marker);
        assert_eq!(named, value == second, "{}", describe(&args, &done));
        let model = TensorFile::read(&out.join("model.safetensors")).unwrap();
        assert!(!model.tensors.is_empty(), "an empty model");
        models.push(model.tensors);
    }
    Some(models)
}

/// `--conv-tiles 128` (the GPU's 128×128-tile conv kernels for the layers with 128 or more
/// channels: here the ConvNet's last two at n_f = 32) trains exactly like the 64×64 tiles:
/// the same sums in the same order (tests/gpu_conv.rs), so after two iterations the models
/// are the same to the bit. The device line names the choice; a bad value is one error line.
#[test]
fn gpu_conv_tiles_train_alike() {
    let run = [
        "images", "--nf", "32", "--iters", "2", "--batch", "8", "--steps", "3", "--buffer", "32",
    ];
    let values = ["64", "128", "96"];
    if let Some(m) = gpu_models_by(
        "cli-conv-tiles",
        "--conv-tiles",
        values,
        &run,
        "conv tiles 128",
    ) {
        assert!(m[0] == m[1], "the 128- and 64-tile runs' models differ");
    }
}

/// A GPU run may resume under another `--conv-tiles`: two ConvNet iterations (n_f = 32: two
/// layers of 128 channels or more) on 64×64 tiles, resumed for two more with `auto` (which
/// times both sizes and may take either), end on the model of four uninterrupted iterations
/// on 64×64 tiles, to the bit.
#[test]
fn gpu_resume_under_other_conv_tiles() {
    if gpu_common::gpu().is_none() {
        return;
    }
    let tmp = TempDir::new("cli-tiles-resume");
    let train = |tiles: &str, out: &Path, more: &[&str]| {
        let mut args = vec![
            "--device",
            "gpu",
            "--conv-tiles",
            tiles,
            "train",
            "images",
            "--nf",
            "32",
            "--batch",
            "4",
            "--steps",
            "3",
            "--buffer",
            "16",
            "--ckpt-every",
            "2",
            "--quiet",
            "--out",
            path_str(out),
        ];
        args.extend_from_slice(more);
        let _turn = gpu_common::gpu_turn();
        let done = run_ok(&tmp.0, &args);
        let said = text(&done.stdout) + &text(&done.stderr);
        let model = TensorFile::read(&out.join("model.safetensors")).unwrap();
        (model.tensors, said)
    };
    let (straight, _) = train("64", &tmp.join("straight"), &["--iters", "4"]);
    let resumed = tmp.join("resumed");
    train("64", &resumed, &["--iters", "2"]);
    let checkpoint = resumed.join("checkpoint.safetensors");
    let (resumed, said) = train(
        "auto",
        &resumed,
        &["--iters", "4", "--resume", path_str(&checkpoint)],
    );
    // It resumed (two more iterations, not four from scratch), under auto.
    assert!(
        said.contains("done: 2 iterations") && said.contains("conv tiles auto"),
        "{said}"
    );
    assert!(
        straight == resumed,
        "resumed under --conv-tiles auto, the model differs from the uninterrupted run's"
    );
}

/// `--mlp-chain-group 4` (the fused MLP chain with 4 chains a GPU workgroup) trains toy2d to
/// the same bits as the default 8, and says so on the device line; a bad value is one error
/// line.
#[test]
fn gpu_mlp_chain_groups_train_alike() {
    let run = ["toy2d", "--iters", "3", "--batch", "70", "--steps", "4"];
    let values = ["8", "4", "2"];
    let marker = "MLP chains by 4";
    if let Some(m) = gpu_models_by("cli-chain-group", "--mlp-chain-group", values, &run, marker) {
        assert!(m[0] == m[1], "the 4- and 8-chain runs' models differ");
    }
}

/// `--thin-inputs tiles` takes the gradient into the 3-channel image off its own kernel and
/// onto the tiles: a short ConvNet run trains to the same model up to the last bits (the two
/// cut K into other slices), the device line names the choice, and a bad value is one error
/// line.
#[test]
fn gpu_thin_inputs_train_alike() {
    let run = [
        "images", "--nf", "8", "--iters", "2", "--batch", "8", "--steps", "3", "--buffer", "32",
    ];
    let values = ["kernel", "tiles", "thin"];
    let marker = "thin inputs on tiles";
    if let Some(m) = gpu_models_by("cli-thin-inputs", "--thin-inputs", values, &run, marker) {
        for (name, kernel) in &m[0] {
            let tiles = &m[1][name];
            let (a, b) = (&kernel.data, &tiles.data);
            let scale = a.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-3);
            let worst = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
            assert!(
                worst <= 1e-4 * scale,
                "{name}: off by {worst:e} (scale {scale:e})"
            );
        }
    }
}

#[test]
fn bench_json_cpu() {
    let tmp = TempDir::new("cli-bench");
    let out = run_ok(
        &tmp.0,
        &[
            "bench",
            "--workload",
            "toy2d",
            "--batch",
            "64",
            "--steps",
            "3",
            "--iters",
            "2",
            "--warmup",
            "0",
            "--json",
            "--device",
            "cpu",
        ],
    );
    let stdout = text(&out.stdout);
    let records: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert_eq!(records.len(), 2, "{stdout}");
    for (r, (measure, rate)) in records.iter().zip([
        ("sampling", "chain_steps_per_s"),
        ("train", "train_iters_per_s"),
    ]) {
        assert_eq!(r["measure"], measure, "{r}");
        assert_eq!(r["device"], "cpu", "{r}");
        assert_eq!(r["batch"], 64, "{r}");
        assert_eq!(r["steps"], 3, "{r}");
        let v = r[rate].as_f64().unwrap_or(f64::NAN);
        assert!(v.is_finite() && v > 0.0, "{rate} = {v}: {r}");
    }
}

// ------------------------------------------------------------------ bad input

/// `ebm --device cpu train toy2d` with tiny settings plus `extra`, writing under `tmp`.
fn train_args<'a>(out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "--device", "cpu", "train", "toy2d", "--iters", "1", "--batch", "8", "--steps", "1",
        "--buffer", "16", "--quiet", "--out", out,
    ];
    args.extend_from_slice(extra);
    args
}

#[test]
fn bad_dataset() {
    let tmp = TempDir::new("cli-bad-dataset");
    let out = tmp.join("run");
    expect_bad_input(
        &tmp.0,
        &train_args(path_str(&out), &["--dataset", "nope"]),
        &["nope", "8gaussians", "swissroll"],
    );
}

#[test]
fn bad_batch_zero() {
    let tmp = TempDir::new("cli-bad-batch");
    let out = tmp.join("run");
    expect_bad_input(
        &tmp.0,
        &train_args(path_str(&out), &["--batch", "0"]),
        &["batch"],
    );
}

#[test]
fn bad_steps_zero() {
    let tmp = TempDir::new("cli-bad-steps");
    let out = tmp.join("run");
    expect_bad_input(
        &tmp.0,
        &train_args(path_str(&out), &["--steps", "0"]),
        &["steps"],
    );
}

#[test]
fn bad_negative_step_size() {
    let tmp = TempDir::new("cli-bad-step-size");
    let out = tmp.join("run");
    expect_bad_input(
        &tmp.0,
        &train_args(path_str(&out), &["--step-size=-1"]),
        &["step size"],
    );
}

#[test]

fn bad_negative_step_size_separate_value() {
    // `--step-size -1` (value as its own argument), the way people type it.
    let tmp = TempDir::new("cli-bad-step-size2");
    let out = tmp.join("run");
    expect_bad_input(
        &tmp.0,
        &train_args(path_str(&out), &["--step-size", "-1"]),
        &["step size"],
    );
}

#[test]
fn bad_device() {
    let tmp = TempDir::new("cli-bad-device");
    let out = tmp.join("o.safetensors");
    let model = golden("torch_toy2d.safetensors");
    let input = golden("torch_x.safetensors");
    let score = [
        "score",
        "--model",
        path_str(&model),
        "--input",
        path_str(&input),
        "--out",
        path_str(&out),
    ];
    expect_bad_input(
        &tmp.0,
        &[&["--device", "tpu"], &score[..]].concat(),
        &["tpu"],
    );
    // The same through EBM_DEVICE.
    let env = Command::new(env!("CARGO_BIN_EXE_ebm"))
        .args(score)
        .current_dir(&tmp.0)
        .env("EBM_DEVICE", "tpu")
        .output()
        .unwrap();
    let what = describe(&["EBM_DEVICE=tpu", "score", "…"], &env);
    assert_eq!(env.status.code(), Some(2), "{what}");
    assert!(
        text(&env.stderr).contains("error:") && text(&env.stderr).contains("tpu"),
        "{what}"
    );
    assert!(!out.exists(), "no output on error");
}

#[test]

fn bad_device_info() {
    let tmp = TempDir::new("cli-bad-device-info");
    expect_bad_input(&tmp.0, &["--device", "tpu", "info"], &["tpu"]);
}

/// `ebm --device cpu score` of torch_x with `model`.
fn score_args<'a>(model: &'a str, input: &'a str, out: &'a str) -> Vec<&'a str> {
    vec![
        "--device", "cpu", "score", "--model", model, "--input", input, "--out", out,
    ]
}

#[test]
fn bad_missing_model() {
    let tmp = TempDir::new("cli-bad-missing");
    let model = tmp.join("no_such_model.safetensors");
    let input = golden("torch_x.safetensors");
    let out = tmp.join("o.safetensors");
    expect_bad_input(
        &tmp.0,
        &score_args(path_str(&model), path_str(&input), path_str(&out)),
        &[path_str(&model)],
    );
}

#[test]
fn bad_corrupt_model() {
    let tmp = TempDir::new("cli-bad-corrupt");
    let input = golden("torch_x.safetensors");
    let out = tmp.join("o.safetensors");
    // Random bytes (a fixed xorshift stream, so a failure reproduces).
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    let bytes: Vec<u8> = (0..4096)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 24) as u8
        })
        .collect();
    let random = tmp.join("random.safetensors");
    std::fs::write(&random, &bytes).unwrap();
    // A plausible header length followed by garbage, and a real model cut in half.
    let mut garbage = 64u64.to_le_bytes().to_vec();
    garbage.extend_from_slice(&bytes[..200]);
    let small_header = tmp.join("garbage_header.safetensors");
    std::fs::write(&small_header, &garbage).unwrap();
    let real = std::fs::read(golden("torch_toy2d.safetensors")).unwrap();
    let truncated = tmp.join("truncated.safetensors");
    std::fs::write(&truncated, &real[..real.len() / 2]).unwrap();
    for model in [&random, &small_header, &truncated] {
        expect_bad_input(
            &tmp.0,
            &score_args(path_str(model), path_str(&input), path_str(&out)),
            &[path_str(model)],
        );
    }
}

#[test]
fn bad_model_without_spec() {
    let tmp = TempDir::new("cli-bad-nospec");
    let input = golden("torch_x.safetensors");
    let out = tmp.join("o.safetensors");
    let mut model = TensorFile::read(&golden("torch_toy2d.safetensors")).unwrap();
    model.metadata.clear();
    let path = tmp.join("nospec.safetensors");
    model.write(&path).unwrap();
    expect_bad_input(
        &tmp.0,
        &score_args(path_str(&path), path_str(&input), path_str(&out)),
        &[path_str(&path), "ebm.spec"],
    );
}

#[test]
fn bad_input_shape() {
    let tmp = TempDir::new("cli-bad-shape");
    let model = golden("torch_toy2d.safetensors");
    let input = tmp.join("x43.safetensors");
    let mut file = TensorFile::new();
    file.insert("x", vec![4, 3], (0..12).map(|i| i as f32 * 0.1).collect());
    file.write(&input).unwrap();
    let out = tmp.join("o.safetensors");
    expect_bad_input(
        &tmp.0,
        &score_args(path_str(&model), path_str(&input), path_str(&out)),
        &[path_str(&input), "[4, 3]"],
    );
    assert!(!out.exists(), "no output on error");
}

/// `ebm score` on the ConvNet goldens (anatomy32, mnist32 at n_f = 8): the golden's weights
/// saved as a model file with its spec, x_neg as the input, PyTorch's f64 energies and ∇ₓE.
fn score_matches_convnet_golden(device: &str, workload: &str) {
    let dir = TempDir::new(&format!("cli-score-{workload}"));
    let path = golden("golden.safetensors");
    let file = TensorFile::read(&path).unwrap();
    let t = |key: &str| {
        file.get(&format!("{workload}/{key}"), &path)
            .unwrap()
            .clone()
    };
    let spec = Spec::from_json(&file.metadata[&format!("{workload}/spec")]).unwrap();
    let mut model = TensorFile::new();
    for (name, tensor) in &file.tensors {
        if let Some(param) = name.strip_prefix(&format!("{workload}/layers.")) {
            model
                .tensors
                .insert(format!("layers.{param}"), tensor.clone());
        }
    }
    model.metadata.insert("ebm.spec".into(), spec.to_json());
    model.write(&dir.join("model.safetensors")).unwrap();
    let mut input = TensorFile::new();
    input.tensors.insert("x".into(), t("x_neg"));
    input.write(&dir.join("x.safetensors")).unwrap();
    run_ok(
        &dir.0,
        &[
            "--device",
            device,
            "score",
            "--model",
            "model.safetensors",
            "--input",
            "x.safetensors",
            "--out",
            "y.safetensors",
            "--grad",
        ],
    );
    let scores = TensorFile::read(&dir.join("y.safetensors")).unwrap();
    let out = |key: &str| {
        scores
            .get(key, &dir.join("y.safetensors"))
            .unwrap()
            .data
            .clone()
    };
    for (ours, want) in [("energy", "energy_neg"), ("grad_x", "grad_x_neg")] {
        let e = rel_err(&out(ours), &t(want).data);
        assert!(
            e <= TOL,
            "{workload} {ours} on {device}: relative error {e:.3e}"
        );
    }
}

#[test]
fn score_convnet_goldens_cpu() {
    for workload in ["anatomy32", "mnist32"] {
        score_matches_convnet_golden("cpu", workload);
    }
}

#[test]
fn score_convnet_goldens_gpu() {
    if gpu_common::gpu().is_none() {
        return;
    }
    for workload in ["anatomy32", "mnist32"] {
        score_matches_convnet_golden("gpu", workload);
    }
}

#[test]
fn train_images_tiny_run() {
    let dir = TempDir::new("cli-images");
    let out = dir.join("run");
    run_ok(
        &dir.0,
        &[
            "--device",
            "cpu",
            "train",
            "images",
            "--nf",
            "4",
            "--iters",
            "4",
            "--batch",
            "8",
            "--steps",
            "3",
            "--buffer",
            "32",
            "--plot-every",
            "2",
            "--log-every",
            "2",
            "--quiet",
            "--out",
            path_str(&out),
        ],
    );
    for png in [
        "samples_000002.png",
        "samples_000004.png",
        "samples.png",
        "replay.png",
        "metrics.png",
    ] {
        check_png(&out.join(png));
    }
    let (header, rows) = read_csv(&out.join("metrics.csv"));
    assert_eq!(header, "iter,loss,e_pos,e_neg,it_per_s,seconds");
    assert_eq!(rows.len(), 2);
    let ckpt = TensorFile::read(&out.join("checkpoint.safetensors")).unwrap();
    assert_eq!(ckpt.tensors["replay.chains"].shape, vec![32, 1024]);
}

/// inpaint, denoise and dataset scoring on a tiny freshly trained image model: the known
/// pixels stay exactly fixed, outputs are finite, grids are written, AUROC lands in [0, 1].
#[test]
fn inpaint_denoise_and_ood_scores() {
    let dir = TempDir::new("cli-restore");
    let run = dir.join("run");
    let digits = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist-subset");
    run_ok(
        &dir.0,
        &[
            "--device",
            "cpu",
            "train",
            "images",
            "--nf",
            "4",
            "--iters",
            "2",
            "--batch",
            "8",
            "--steps",
            "2",
            "--buffer",
            "16",
            "--quiet",
            "--out",
            path_str(&run),
        ],
    );
    let model = run.join("model.safetensors");
    // Every sampler of the two commands; the exact ones with a step small enough to accept.
    for (command, extra) in [
        ("inpaint", vec!["--mask", "left"]),
        ("denoise", vec!["--sigma", "0.3"]),
        (
            "inpaint",
            vec!["--mask", "left", "--sampler", "annealed", "--levels", "3"],
        ),
        (
            "inpaint",
            vec!["--mask", "left", "--sampler", "mala", "--step-size", "1e-4"],
        ),
        (
            "inpaint",
            vec!["--mask", "left", "--sampler", "hmc", "--step-size", "1e-3"],
        ),
    ] {
        let png = dir.join(&format!("{command}.png"));
        let mut args = vec![
            "--device",
            "cpu",
            command,
            "--model",
            path_str(&model),
            "--data",
            path_str(&digits),
            "--n",
            "5",
            "--steps",
            "3",
            "--out",
            path_str(&png),
        ];
        args.extend(&extra);
        run_ok(&dir.0, &args);
        check_png(&png);
        let result = TensorFile::read(&png.with_extension("safetensors")).unwrap();
        let x = &result.tensors["x"];
        assert_eq!(x.shape, vec![5, 1, 32, 32]);
        assert!(x
            .data
            .iter()
            .all(|v| v.is_finite() && (-1.0..=1.0).contains(v)));
        if command == "inpaint" {
            // Left half unknown: the right half must equal the original digits exactly.
            let original = ebm::data::images::load(&digits, 1, 32, 32).unwrap();
            for n in 0..5 {
                for y in 0..32 {
                    for c in 16..32 {
                        let i = n * 1024 + y * 32 + c;
                        assert_eq!(x.data[i], original.data[i], "known pixel {i} moved");
                    }
                }
            }
            let before = &result.tensors["before"].data;
            assert!(
                x.data.iter().zip(before).any(|(a, b)| a != b),
                "the masked half never moved"
            );
        }
    }
    let scores = dir.join("scores.safetensors");
    let out = run_ok(
        &dir.0,
        &[
            "--device",
            "cpu",
            "score",
            "--model",
            path_str(&model),
            "--data",
            path_str(&digits),
            "--ood",
            "noise",
            "--limit",
            "50",
            "--out",
            path_str(&scores),
        ],
    );
    let file = TensorFile::read(&scores).unwrap();
    assert_eq!(file.tensors["energy"].shape, vec![50]);
    assert_eq!(file.tensors["energy_ood"].shape, vec![50]);
    let auroc: f64 = file.metadata["ebm.auroc"].parse().unwrap();
    assert!((0.0..=1.0).contains(&auroc), "AUROC {auroc}");
    // The AUROC must be the one of the energies written: recomputed here from its definition,
    // P(E_ood > E_in) + ½·P(tie) over all (in, ood) pairs, without ebm::eval::auroc.
    // Mutation that makes it fail (checked, then reverted): `auroc(&energy_ood, &energy)`
    // (arguments swapped) in src/bin/ebm/score.rs.
    let (e_in, e_ood) = (
        &file.tensors["energy"].data,
        &file.tensors["energy_ood"].data,
    );
    let pairs: f64 = e_in
        .iter()
        .flat_map(|a| e_ood.iter().map(move |b| (a, b)))
        .map(|(a, b)| match b.partial_cmp(a).unwrap() {
            std::cmp::Ordering::Greater => 1.0,
            std::cmp::Ordering::Equal => 0.5,
            std::cmp::Ordering::Less => 0.0,
        })
        .sum();
    let recomputed = pairs / (e_in.len() * e_ood.len()) as f64;
    assert!(
        (recomputed - auroc).abs() < 1e-12,
        "written AUROC {auroc} but the written energies give {recomputed}"
    );
    // And the printed one is the same number, to its 4 decimals.
    let stdout = text(&out.stdout);
    let printed = stdout
        .lines()
        .find(|l| l.starts_with("AUROC"))
        .and_then(|l| l.rsplit(": ").next())
        .unwrap_or_else(|| panic!("no AUROC line in {stdout:?}"));
    assert_eq!(
        printed,
        format!("{recomputed:.4}"),
        "printed AUROC vs the energies' (stdout {stdout:?})"
    );
    eprintln!("AUROC {printed} (recomputed {recomputed:.6})");
    assert!(
        recomputed != 0.5,
        "a chance-level AUROC would not tell swapped arguments apart"
    );
}

// ------------------------------------------------------------------ --device auto

/// `--device auto` on a machine whose adapters are all software (lavapipe in CI): it must fall
/// back to the CPU with its one-line notice and still do the work, with the CPU's results.
/// Where a hardware GPU exists it must take it, silently. Without any adapter it falls back
/// too, so that case is checked the same way.
///
/// Mutation that makes it fail (checked, then reverted): `GpuBackend::new(true)` in the
/// `Auto` arm of src/backend/device.rs (auto then takes lavapipe: no notice, "on vulkan …").
#[test]
fn device_auto_skips_software_adapters() {
    use ebm::backend::gpu::describe_adapters;
    use ebm::backend::{choose_backend, AnyBackend, DeviceChoice};

    let adapters = describe_adapters();
    let hardware = adapters.iter().any(|a| !a.is_software);
    eprintln!(
        "adapters: {:?}",
        adapters.iter().map(|a| a.name.clone()).collect::<Vec<_>>()
    );

    // The library: which backend, and how many notices.
    let mut notices = Vec::new();
    let chosen = {
        let _turn = gpu_common::gpu_turn();
        let backend = choose_backend(DeviceChoice::Auto, |n| notices.push(n.to_string())).unwrap();
        matches!(backend, AnyBackend::Cpu(_))
    };
    if hardware {
        assert!(!chosen, "auto passed over a hardware GPU");
        assert!(
            notices.is_empty(),
            "a notice with a hardware GPU: {notices:?}"
        );
    } else {
        assert!(chosen, "auto took a software adapter");
        assert_eq!(notices.len(), 1, "{notices:?}");
        assert!(
            notices[0].starts_with("notice:") && notices[0].contains("running on the CPU backend"),
            "{notices:?}"
        );
    }

    // The CLI: the same choice, one notice line on stderr, and the run still works.
    let tmp = TempDir::new("cli-device-auto");
    let model = golden("torch_toy2d.safetensors");
    let input = golden("torch_x.safetensors");
    let mut outputs = Vec::new();
    for device in ["auto", "cpu"] {
        let out_path = tmp.join(&format!("{device}.safetensors"));
        let args = [
            "--device",
            device,
            "score",
            "--model",
            path_str(&model),
            "--input",
            path_str(&input),
            "--out",
            path_str(&out_path),
        ];
        let out = {
            let _turn = gpu_common::gpu_turn();
            run_ok(&tmp.0, &args)
        };
        let stderr = text(&out.stderr);
        let notice_lines = stderr.lines().filter(|l| l.starts_with("notice:")).count();
        let on_cpu = stderr.contains("inputs on cpu");
        if device == "auto" && !hardware {
            assert_eq!(
                notice_lines,
                1,
                "want one notice: {}",
                describe(&args, &out)
            );
            assert!(
                stderr.contains("running on the CPU backend") && on_cpu,
                "{}",
                describe(&args, &out)
            );
        } else if device == "auto" {
            assert!(notice_lines == 0 && !on_cpu, "{}", describe(&args, &out));
        }
        outputs.push(TensorFile::read(&out_path).unwrap().tensors["energy"].clone());
    }
    if !hardware {
        assert_eq!(
            outputs[0].data, outputs[1].data,
            "auto fell back to the CPU, so its energies are the CPU's"
        );
    }
}

/// `ebm sample --sampler mala|hmc` writes the chains with their acceptance counts, and
/// `ebm eval loglik` of a flat energy (E = 0 everywhere) gives log Z = the log volume of the
/// box, 2·ln 9 for the 2D default box [−4.5, 4.5]², whatever the chains do.
#[test]
fn exact_samplers_and_loglik_from_the_command_line() {
    use ebm::backend::CpuBackend;
    use ebm::train::checkpoint::save_model;
    use ebm::EnergyNet;
    let dir = TempDir::new("cli-exact");
    let b = CpuBackend::new();
    let flat = EnergyNet::from_params(&b, &Spec::mlp(2, 8, 1), |_, shape| {
        Ok(vec![0.0; shape.iter().product()])
    })
    .unwrap();
    let model = dir.0.join("flat.safetensors");
    save_model(&b, &flat, &model).unwrap();
    let model = path_str(&model);
    for sampler in ["mala", "hmc"] {
        let out = dir.0.join(format!("{sampler}.safetensors"));
        let args = [
            "sample",
            "--device",
            "cpu",
            "--model",
            model,
            "--n",
            "30",
            "--steps",
            "5",
            "--sampler",
            sampler,
            "--leapfrog",
            "2",
            "--step-size",
            "1e-8",
            "--out",
            path_str(&out),
        ];
        let ran = run_ok(&dir.0, &args);
        assert!(
            text(&ran.stderr).contains("acceptance: 100.0 %"),
            "{}",
            describe(&args, &ran)
        );
        let file = TensorFile::read(&out).unwrap();
        // A flat energy accepts every proposal that stays in the box, and steps of ~10⁻⁴
        // leave it with odds of ~10⁻⁵ here.
        let accepted = file.get("accepted", &out).unwrap();
        assert_eq!(accepted.shape, [30]);
        assert!(accepted.data.iter().all(|&a| a == 5.0));
        let settings = &file.metadata["ebm.sampler"];
        assert!(
            settings.contains(&format!("\"sampler\":\"{sampler}\"")),
            "{settings}"
        );
    }
    let args = [
        "eval", "loglik", "--device", "cpu", "--model", model, "--data", "rings", "--chains", "20",
        "--levels", "3", "--limit", "50",
    ];
    let ran = run_ok(&dir.0, &args);
    let stdout = text(&ran.stdout);
    let log_z: f64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("log Z = "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no log Z line: {}", describe(&args, &ran)));
    assert!((log_z - 2.0 * 9f64.ln()).abs() < 1e-3, "log Z {log_z}");
}

/// `ebm train toy2d --objective coop | latent-ebm` and `ebm sample` on what they write: a
/// model file with both nets, samples (revised, or decoded from the prior), pictures, the
/// generator's loss in the metrics; resuming the run folder continues it; bad generator
/// options and `--revise` on a one-energy model are one error line each.
#[test]
fn generator_families_train_sample_and_resume() {
    let dir = TempDir::new("cli-generators");
    for (family, extra) in [
        ("coop", &["--steps", "5"][..]),
        (
            "latent-ebm",
            &["--prior-steps", "5", "--post-steps", "3"][..],
        ),
    ] {
        let run = dir.0.join(family);
        let run = path_str(&run);
        let mut args = vec![
            "train",
            "toy2d",
            "--device",
            "cpu",
            "--objective",
            family,
            "--iters",
            "12",
            "--batch",
            "32",
            "--hidden",
            "16",
            "--log-every",
            "4",
            "--plot-every",
            "12",
            "--ckpt-every",
            "6",
            "--quiet",
            "--out",
            run,
        ];
        args.extend(extra);
        let ran = run_ok(&dir.0, &args);
        let log = text(&ran.stderr);
        assert!(log.contains("KL_GEN") && log.contains("  G "), "{log}");
        let csv = std::fs::read_to_string(Path::new(run).join("metrics.csv")).unwrap();
        assert!(csv.lines().next().unwrap().contains(",gen,"), "{csv}");
        assert!(Path::new(run).join("toy2d.png").is_file());
        let model = Path::new(run).join("model.safetensors");
        let file = TensorFile::read(&model).unwrap();
        assert_eq!(file.metadata["ebm.model"], family);
        assert!(file.metadata.contains_key("ebm.spec.energy"));
        assert!(file.metadata.contains_key("ebm.spec.generator"));
        assert!(file
            .tensors
            .keys()
            .any(|k| k.starts_with("generator.layers.")));
        // Resume the folder: it continues at iteration 12.
        let more = [
            "train",
            "toy2d",
            "--device",
            "cpu",
            "--iters",
            "14",
            "--log-every",
            "2",
            "--quiet",
            "--resume",
            run,
        ];
        let ran = run_ok(&dir.0, &more);
        assert!(
            text(&ran.stderr).contains("iteration 12"),
            "{}",
            describe(&more, &ran)
        );
        // Sample it.
        let out = dir.0.join(format!("{family}-samples.safetensors"));
        let mut sample = vec![
            "sample",
            "--device",
            "cpu",
            "--model",
            path_str(&model),
            "--n",
            "40",
            "--out",
            path_str(&out),
        ];
        if family == "coop" {
            sample.extend(["--revise", "3"]);
        } else {
            sample.extend(["--prior-steps", "4"]);
        }
        run_ok(&dir.0, &sample);
        let samples = TensorFile::read(&out).unwrap();
        assert_eq!(samples.tensors["x"].shape, [40, 2]);
        let beside = if family == "coop" { "x_generator" } else { "z" };
        assert_eq!(samples.tensors[beside].shape, [40, 2]);
        assert!(out.with_extension("png").is_file());
        // Options for one-energy models are refused by name.
        let bad = [
            "sample",
            "--device",
            "cpu",
            "--model",
            path_str(&model),
            "--sampler",
            "mala",
        ];
        expect_bad_input(&dir.0, &bad, &["--sampler", family]);
        if family == "latent-ebm" {
            // Its energy is a prior on z, not an energy of data.
            let bad = [
                "eval",
                "loglik",
                "--device",
                "cpu",
                "--model",
                path_str(&model),
                "--data",
                "8gaussians",
            ];
            expect_bad_input(&dir.0, &bad, &["latent-EBM", "prior"]);
        }
        // The wrong family's option.
        let wrong = if family == "coop" {
            "--prior-steps"
        } else {
            "--revise"
        };
        let bad = [
            "sample",
            "--device",
            "cpu",
            "--model",
            path_str(&model),
            "--n",
            "4",
            wrong,
            "2",
        ];
        expect_bad_input(&dir.0, &bad, &[wrong.trim_start_matches('-')]);
    }
    // An energy spec as the generator.
    let bad = [
        "train",
        "toy2d",
        "--device",
        "cpu",
        "--objective",
        "coop",
        "--iters",
        "1",
        "--gen-spec",
        "toy2d",
    ];
    expect_bad_input(&dir.0, &bad, &["gen-spec", "tensor"]);
    // Generator options out of range: one line naming the option (without its dashes); an
    // option the objective would ignore: one line naming it.
    for (family, option, value, named) in [
        ("coop", "--latent-dim", "0", "latent-dim"),
        ("coop", "--gen-sigma", "0", "gen-sigma"),
        ("coop", "--gen-lr", "-1", "gen-lr"),
        ("latent-ebm", "--prior-step", "-0.5", "prior-step"),
        ("latent-ebm", "--post-step", "nan", "post-step"),
        ("cd", "--gen-lr", "0.1", "--gen-lr"),
        ("coop", "--prior-steps", "3", "--prior-steps"),
        ("latent-ebm", "--infer-steps", "3", "--infer-steps"),
        ("latent-ebm", "--sampler", "mala", "--sampler"),
    ] {
        let bad = [
            "train",
            "toy2d",
            "--device",
            "cpu",
            "--objective",
            family,
            "--iters",
            "1",
            option,
            value,
        ];
        expect_bad_input(&dir.0, &bad, &[named]);
    }
    // --revise on a model with one energy.
    let b = ebm::backend::CpuBackend::new();
    let net = ebm::EnergyNet::new(&b, &Spec::mlp(2, 8, 1), 0).unwrap();
    let one = dir.0.join("one.safetensors");
    ebm::train::checkpoint::save_model(&b, &net, &one).unwrap();
    let bad = [
        "sample",
        "--device",
        "cpu",
        "--model",
        path_str(&one),
        "--revise",
        "2",
    ];
    expect_bad_input(&dir.0, &bad, &["revise", "one energy"]);
}
