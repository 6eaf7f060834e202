//! Checkpoints survive crashes (docs/ARCHITECTURE.md, Files): `ebm train toy2d` runs as a child process and
//! is killed with SIGKILL in the middle of training, at seeded random points. Every
//! checkpoint left on disk must load (no half files), `--resume RUN_DIR` must start from the
//! newest one (losing at most the iterations since it) and finish with the same parameters,
//! Adam moments, replay chains and logged metrics, bit for bit, as an uninterrupted run of
//! the same command. Also: `--keep-checkpoints`, skipping a corrupt newest checkpoint, and
//! clearing the temp files a killed writer leaves.

#[path = "common/tempdir.rs"]
mod tempdir;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use tempdir::TempDir;

use ebm::tensorfile::{is_temp_file, TensorFile};
use ebm::train::checkpoint::{
    checkpoint_file_name, checkpoint_iteration, list_checkpoints, load_trainer,
};
use ebm::CpuBackend;

fn path_str(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temp path")
}

fn ebm(cwd: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ebm"));
    cmd.args(args).current_dir(cwd).env_remove("EBM_DEVICE");
    cmd
}

/// Run to completion and require success; returns stderr.
fn run_ok(cwd: &Path, args: &[&str]) -> String {
    let out: Output = ebm(cwd, args).output().expect("the ebm binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "ebm {} failed ({}):\n{stderr}",
        args.join(" "),
        out.status
    );
    stderr
}

/// Total iterations, checkpoint interval and kept checkpoints of the crash runs.
const ITERS: u64 = 600;
const EVERY: u64 = 25;
const KEEP: usize = 3;

/// `ebm train toy2d` small enough to be quick (~1.5 s on two cores) but slow enough to be
/// killed in the middle; `--log-every` divides `--ckpt-every`.
fn train_args(iters: u64) -> Vec<String> {
    [
        "--device",
        "cpu",
        "train",
        "toy2d",
        "--dataset",
        "rings",
        "--iters",
        &iters.to_string(),
        "--batch",
        "128",
        "--steps",
        "10",
        "--buffer",
        "1024",
        "--hidden",
        "64",
        "--depth",
        "2",
        "--max-grad-norm",
        "1",
        "--seed",
        "7",
        "--plot-every",
        "1000000",
        "--log-every",
        "5",
        "--ckpt-every",
        &EVERY.to_string(),
        "--keep-checkpoints",
        &KEEP.to_string(),
        "--quiet",
    ]
    .map(String::from)
    .to_vec()
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// The file names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// The iteration a checkpoint file stands at, loading it in full (parameters, Adam state,
/// replay chains) as `--resume` does; panics naming the file if it does not load.
fn loaded_iteration(path: &Path) -> u64 {
    match load_trainer(&CpuBackend::new(), path) {
        Ok(trainer) => trainer.iteration,
        Err(e) => panic!("{} does not load: {e}", path.display()),
    }
}

/// Two checkpoint files hold the same state, bit for bit: every tensor (parameters,
/// `adam.m.*`, `adam.v.*`, `replay.chains`) and the run's config and position.
fn assert_same_checkpoint(a: &Path, b: &Path) {
    let (fa, fb) = (TensorFile::read(a).unwrap(), TensorFile::read(b).unwrap());
    assert_eq!(
        fa.tensors.keys().collect::<Vec<_>>(),
        fb.tensors.keys().collect::<Vec<_>>()
    );
    for key in ["adam.m.", "adam.v.", "replay.chains", "layers."] {
        assert!(fa.tensors.keys().any(|k| k.starts_with(key)), "no {key}*");
    }
    for (name, ta) in &fa.tensors {
        let tb = &fb.tensors[name];
        assert_eq!(ta.shape, tb.shape, "{name}");
        let differing = ta
            .data
            .iter()
            .zip(&tb.data)
            .filter(|(x, y)| x.to_bits() != y.to_bits())
            .count();
        assert_eq!(
            differing,
            0,
            "{name}: {differing} of {} values differ between {} and {}",
            ta.data.len(),
            a.display(),
            b.display()
        );
    }
    for key in ["ebm.spec", "ebm.train", "ebm.rng"] {
        assert_eq!(fa.metadata.get(key), fb.metadata.get(key), "{key}");
    }
}

/// metrics.csv rows without the timing columns (it/s, seconds), which differ run to run.
fn metric_rows(dir: &Path) -> Vec<String> {
    let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    csv.lines()
        .skip(1)
        .map(|l| {
            let cols: Vec<&str> = l.split(',').collect();
            cols[..cols.len() - 2].join(",")
        })
        .collect()
}

/// The last iteration logged in metrics.csv (0 if none).
fn last_logged(dir: &Path) -> u64 {
    let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap_or_default();
    csv.lines()
        .skip(1)
        .filter_map(|l| l.split(',').next()?.parse().ok())
        .max()
        .unwrap_or(0)
}

/// xorshift64*, for the seeded kill points.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) % n
    }
}

#[test]
fn kill_nine_then_resume_equals_uninterrupted() {
    let tmp = TempDir::new("crash-kill");
    let args = train_args(ITERS);
    let straight = tmp.join("straight");
    let t0 = Instant::now();
    run_ok(
        &tmp.0,
        &[strs(&args), vec!["--out", path_str(&straight)]].concat(),
    );
    let straight_s = t0.elapsed().as_secs_f64();
    let last_k: Vec<String> = (0..KEEP as u64)
        .rev()
        .map(|i| checkpoint_file_name(ITERS - i * EVERY))
        .collect();
    assert_eq!(
        list_checkpoints(&straight)
            .unwrap()
            .iter()
            .map(|(_, p)| p.file_name().unwrap().to_str().unwrap().to_string())
            .collect::<Vec<_>>(),
        last_k,
        "--keep-checkpoints {KEEP}"
    );
    assert_eq!(
        loaded_iteration(&straight.join("checkpoint.safetensors")),
        ITERS
    );

    let mut rng = Rng(0x005e_ed0f_c2a5);
    for trial in 0..4 {
        // Kill once the checkpoint at `target` is on disk, after a random extra delay of up
        // to about one checkpoint interval, so the kill lands anywhere: mid-iteration,
        // mid-log or mid-checkpoint-write.
        let target = EVERY * (2 + rng.below(ITERS / EVERY / 2 - 2));
        let delay = Duration::from_micros(rng.below(60_000));
        let dir = tmp.join(&format!("crashed-{trial}"));
        std::fs::create_dir_all(&dir).unwrap();
        let log = std::fs::File::create(tmp.join(&format!("crashed-{trial}.log"))).unwrap();
        let mut child = ebm(
            &tmp.0,
            &[strs(&args), vec!["--out", path_str(&dir)]].concat(),
        )
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("the ebm binary starts");
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let newest = list_checkpoints(&dir)
                .unwrap()
                .last()
                .map_or(0, |(it, _)| *it);
            if newest >= target {
                break;
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("trial {trial}: the run ended ({status}) before checkpoint {target}");
            }
            assert!(Instant::now() < deadline, "no checkpoint {target} in 120 s");
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(delay);
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        assert!(
            !status.success(),
            "trial {trial}: the run finished before the kill; make it longer"
        );

        // No half files: every checkpoint left behind loads in full.
        let left = names(&dir);
        let found = list_checkpoints(&dir).unwrap();
        assert!(!found.is_empty() && found.len() <= KEEP + 1, "{left:?}");
        for (iteration, path) in &found {
            assert_eq!(loaded_iteration(path), *iteration, "{}", path.display());
        }
        let newest = found.last().unwrap().0;
        let latest = loaded_iteration(&dir.join("checkpoint.safetensors"));
        assert!(
            latest == newest || latest + EVERY == newest,
            "checkpoint.safetensors at {latest}, newest numbered {newest}"
        );
        // Lost work: what the run had logged when it died, beyond the newest checkpoint, is
        // at most one checkpoint interval.
        let logged = last_logged(&dir);
        assert!(
            newest <= logged && logged <= newest + EVERY,
            "trial {trial}: killed after logging iteration {logged}, newest checkpoint {newest}"
        );
        let temps: Vec<&String> = left.iter().filter(|n| is_temp_file(n)).collect();
        eprintln!(
            "trial {trial}: killed at ≥ {target} (+{delay:?}): logged {logged}, \
             checkpoints {:?}, temp files {temps:?}",
            found.iter().map(|(it, _)| *it).collect::<Vec<_>>()
        );

        // Resume from the run folder (no --out: the folder is the output) to the end.
        let stderr = run_ok(
            &tmp.0,
            &[strs(&args), vec!["--resume", path_str(&dir)]].concat(),
        );
        assert!(
            stderr.contains(&format!(
                "{} (iteration {newest})",
                checkpoint_file_name(newest)
            )),
            "trial {trial}: did not resume from the newest checkpoint {newest}:\n{stderr}"
        );
        assert!(!stderr.contains("note: skipping"), "{stderr}");

        assert_same_checkpoint(
            &dir.join("checkpoint.safetensors"),
            &straight.join("checkpoint.safetensors"),
        );
        assert_same_checkpoint(
            &dir.join(checkpoint_file_name(ITERS - EVERY)),
            &straight.join(checkpoint_file_name(ITERS - EVERY)),
        );
        let model = |d: &Path| std::fs::read(d.join("model.safetensors")).unwrap();
        assert!(model(&dir) == model(&straight), "model.safetensors differs");
        // The log reads as one run: the rows the killed run wrote after its last checkpoint
        // are replaced by the resumed run's, which are the uninterrupted run's values.
        assert_eq!(metric_rows(&dir), metric_rows(&straight), "metrics.csv");
        let after = names(&dir);
        assert!(
            !after.iter().any(|n| is_temp_file(n)),
            "temp files survive the resume: {after:?}"
        );
        let numbered: Vec<&String> = after
            .iter()
            .filter(|n| checkpoint_iteration(n).is_some())
            .collect();
        assert_eq!(numbered, last_k.iter().collect::<Vec<_>>());
    }
    eprintln!(
        "uninterrupted run {straight_s:.1} s; all trials {:.1} s",
        t0.elapsed().as_secs_f64()
    );
}

/// `--resume RUN_DIR` skips a corrupt newest checkpoint with one notice, clears stale temp
/// files, and still ends where an uninterrupted run does; `--keep-checkpoints 1` keeps one.
#[test]
fn resume_from_folder_skips_corrupt_checkpoint() {
    let tmp = TempDir::new("crash-corrupt");
    let dir = tmp.join("run");
    let straight = tmp.join("straight");
    let with_keep = |iters: u64, keep: &str| {
        let mut args = train_args(iters);
        let at = args.iter().position(|a| a == "--keep-checkpoints").unwrap();
        args[at + 1] = keep.into();
        args
    };
    run_ok(
        &tmp.0,
        &[
            strs(&with_keep(150, "10")),
            vec!["--out", path_str(&straight)],
        ]
        .concat(),
    );
    run_ok(
        &tmp.0,
        &[strs(&with_keep(100, "1")), vec!["--out", path_str(&dir)]].concat(),
    );
    assert_eq!(
        names(&dir)
            .into_iter()
            .filter(|n| n.ends_with(".safetensors"))
            .collect::<Vec<_>>(),
        [
            "checkpoint-00000100.safetensors",
            "checkpoint.safetensors",
            "model.safetensors"
        ],
        "--keep-checkpoints 1"
    );
    // An older valid checkpoint (as a run with more kept would have), the newest cut in half
    // (checkpoint.safetensors, a copy of it, too), and a killed writer's temp file.
    std::fs::copy(
        straight.join(checkpoint_file_name(75)),
        dir.join(checkpoint_file_name(75)),
    )
    .unwrap();
    for name in [checkpoint_file_name(100), "checkpoint.safetensors".into()] {
        let bytes = std::fs::read(dir.join(&name)).unwrap();
        std::fs::remove_file(dir.join(&name)).unwrap();
        std::fs::write(dir.join(&name), &bytes[..bytes.len() / 2]).unwrap();
    }
    let stale = format!("{}.999999-0.tmp", checkpoint_file_name(125));
    std::fs::write(dir.join(&stale), b"half a file").unwrap();

    let stderr = run_ok(
        &tmp.0,
        &[strs(&with_keep(150, "3")), vec!["--resume", path_str(&dir)]].concat(),
    );
    let notes: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("note: skipping"))
        .collect();
    assert_eq!(notes.len(), 1, "{stderr}");
    assert!(notes[0].contains(&checkpoint_file_name(100)), "{stderr}");
    assert!(
        stderr.contains(&format!("{} (iteration 75)", checkpoint_file_name(75))),
        "{stderr}"
    );
    assert!(!dir.join(&stale).exists(), "stale temp file kept");
    assert_same_checkpoint(
        &dir.join("checkpoint.safetensors"),
        &straight.join("checkpoint.safetensors"),
    );
    for it in [100, 125, 150] {
        assert_eq!(loaded_iteration(&dir.join(checkpoint_file_name(it))), it);
    }
    assert_eq!(list_checkpoints(&dir).unwrap().len(), 3);

    // A folder without checkpoints is one clear error.
    let empty = tmp.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let out = ebm(
        &tmp.0,
        &[strs(&train_args(10)), vec!["--resume", path_str(&empty)]].concat(),
    )
    .output()
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("no checkpoint-"), "{err}");
}

#[test]
fn keep_checkpoints_must_be_positive() {
    let tmp = TempDir::new("crash-keep");
    for bad in ["0", "-2"] {
        let mut args = train_args(10);
        let at = args.iter().position(|a| a == "--keep-checkpoints").unwrap();
        args[at + 1] = bad.into();
        let out = ebm(&tmp.0, &strs(&args)).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            err.lines()
                .any(|l| l.starts_with("error:") && l.contains("--keep-checkpoints")),
            "{err}"
        );
    }
}

#[test]
fn checkpoint_names() {
    assert_eq!(
        checkpoint_file_name(1000),
        "checkpoint-00001000.safetensors"
    );
    assert_eq!(
        checkpoint_iteration("checkpoint-00001000.safetensors"),
        Some(1000)
    );
    for not in [
        "checkpoint.safetensors",
        "checkpoint-.safetensors",
        "checkpoint-00001000.safetensors.123-0.tmp",
        "checkpoint-+1.safetensors",
        "model.safetensors",
    ] {
        assert_eq!(checkpoint_iteration(not), None, "{not}");
    }
}
