//! Kernel profiles: on the CPU (wall clock per op) and the GPU (timestamp queries, lavapipe in
//! CI) a layer-by-layer toy2d Langevin run names exactly the kernels it ran, as many times as
//! steps × layers say, with positive times, and the fused run names its one chain kernel;
//! profiling off records nothing and does not change the samples; `ebm bench --profile`
//! prints the table.

#[path = "common/gpu.rs"]
mod gpu_common;

use std::process::Command;

use ebm::backend::{Backend, Profile, ProfileSupport};
use ebm::sampler::{Langevin, LangevinConfig};
use ebm::{EnergyNet, Spec};

const BATCH: usize = 8;

/// toy2d is 2 → 128 → 128 → 128 → 1 with SiLU: 4 linear layers and 3 activations.
const LINEAR: u64 = 4;
const SILU: u64 = 3;

/// Run `steps` layer-by-layer Langevin steps of the toy2d MLP on `BATCH` chains; the samples.
fn sample<B: Backend>(b: &B, steps: usize) -> Vec<f32> {
    sample_with(b, steps, false)
}

/// [`sample`], fused into one chain op when `fused`.
fn sample_with<B: Backend>(b: &B, steps: usize, fused: bool) -> Vec<f32> {
    let mut net = EnergyNet::new(b, &Spec::builtin("toy2d").unwrap(), 0).unwrap();
    let init: Vec<f32> = (0..2 * BATCH).map(|i| (i as f32 * 0.37).sin()).collect();
    let mut x = b.upload(&init).unwrap();
    let sampler = Langevin {
        config: LangevinConfig {
            steps,
            step_size: 0.01,
            noise: 0.005,
            grad_clip: None,
            lo: -1.0,
            hi: 1.0,
        },
        seed: 0,
    };
    if fused {
        sampler.run(b, &mut net, &mut x, BATCH, 0).unwrap();
    } else {
        sampler.run_unfused(b, &mut net, &mut x, BATCH, 0).unwrap();
    }
    b.read(&x).unwrap()
}

/// The kernels one Langevin step runs on the toy2d MLP, with their counts per step:
/// forward (linear, SiLU), backward to the input (the same), then the update. The CPU names
/// its linear ops; the GPU runs them on the conv products (as 1×1 convolutions of 1×1
/// images), whose kernels it names, the gradient into the 2-D input on the thin kernel with
/// its K split.
fn expected(steps: usize, source: &str) -> Vec<(&'static str, u64)> {
    let k = steps as u64;
    let mut kernels = vec![
        ("silu_forward", SILU * k),
        ("silu_backward", SILU * k),
        ("langevin_update", k),
    ];
    if source == GPU {
        kernels.extend([
            ("conv2d_forward", LINEAR * k),
            ("conv2d_backward_data", (LINEAR - 1) * k),
            ("conv2d_backward_data_thin", k),
            // Its K (128 hidden units) is split for so few chains, then summed.
            ("conv2d_sum_data", k),
        ]);
    } else {
        kernels.extend([
            ("linear_forward", LINEAR * k),
            ("linear_backward_data", LINEAR * k),
        ]);
    }
    kernels
}

/// The GPU profiles' source.
const GPU: &str = "GPU timestamp queries";

fn check(p: &Profile, steps: usize, source: &str) {
    assert_eq!(p.source, source);
    let want = expected(steps, source);
    assert_eq!(
        p.kernels.len(),
        want.len(),
        "kernels {:?}",
        p.kernels.iter().map(|k| &k.name).collect::<Vec<_>>()
    );
    for (name, calls) in want {
        let k = p
            .kernel(name)
            .unwrap_or_else(|| panic!("{name} missing from {p:?}"));
        assert_eq!(k.calls, calls, "{name}");
        assert!(
            k.seconds > 0.0 && k.seconds.is_finite(),
            "{name}: {} s",
            k.seconds
        );
    }
    let sorted = p.kernels.windows(2).all(|w| w[0].seconds >= w[1].seconds);
    assert!(sorted, "rows not sorted by total time: {p:?}");
}

/// Profile `steps` steps, then check that profiling off records nothing and leaves the
/// samples as they were.
fn profile_roundtrip<B: Backend>(b: &B, steps: usize, source: &'static str) {
    assert_eq!(b.set_profiling(true), ProfileSupport::Supported { source });
    let profiled = sample(b, steps);
    let p = b.take_profile().unwrap();
    check(&p, steps, source);
    assert!(
        b.take_profile().unwrap().kernels.is_empty(),
        "take_profile clears"
    );

    b.set_profiling(false);
    let plain = sample(b, steps);
    assert_eq!(profiled, plain, "profiling changed the samples");
    let off = b.take_profile().unwrap();
    assert!(off.kernels.is_empty(), "profiling off recorded {off:?}");

    // The fused chain is one kernel run for all the steps.
    b.set_profiling(true);
    sample_with(b, steps, true);
    let fused = b.take_profile().unwrap();
    b.set_profiling(false);
    let names: Vec<_> = fused.kernels.iter().map(|k| (&k.name, k.calls)).collect();
    assert_eq!(names.len(), 1, "fused kernels {names:?}");
    let chain = fused
        .kernel("mlp_langevin_chain")
        .expect("mlp_langevin_chain");
    assert_eq!(chain.calls, 1);
    assert!(chain.seconds > 0.0 && chain.seconds.is_finite());
}

#[test]
fn cpu_profile_names_the_kernels() {
    profile_roundtrip(&ebm::CpuBackend::new(), 3, "CPU wall clock per op");
}

#[test]
fn gpu_profile_names_the_kernels() {
    let gpu = gpu_or_skip!();
    if !gpu.adapter_report().timestamp_query {
        // Then it must say so, and record nothing.
        assert!(!gpu.set_profiling(true).is_supported());
        sample(&*gpu, 1);
        assert!(gpu.take_profile().unwrap().kernels.is_empty());
        eprintln!("skipping: {} has no timestamp queries", gpu.name());
        return;
    }
    profile_roundtrip(&*gpu, 3, GPU);
}

/// 70 steps × 15 kernels = 1050 passes: more than one query set's worth, so a full set is
/// resolved and reused inside the same command buffer.
#[test]
fn gpu_profile_spans_query_sets() {
    let gpu = gpu_or_skip!();
    if !gpu.adapter_report().timestamp_query {
        return;
    }
    gpu.set_profiling(true);
    sample(&*gpu, 70);
    let p = gpu.take_profile().unwrap();
    gpu.set_profiling(false);
    check(&p, 70, GPU);
}

#[test]
fn bench_profile_prints_a_kernel_table() {
    let args = [
        "bench",
        "--workload",
        "toy2d",
        "--batch",
        "8",
        "--steps",
        "2",
        "--iters",
        "1",
        "--profile",
        "--unfused",
        "--device",
        "cpu",
    ];
    let out = Command::new(env!("CARGO_BIN_EXE_ebm"))
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let what = format!(
        "ebm {}\nstatus {}\nstdout:\n{stdout}\nstderr:\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{what}");
    for measure in ["sampling", "train"] {
        let header = format!("profile {measure} (CPU wall clock per op)");
        assert!(stdout.contains(&header), "no `{header}`: {what}");
    }
    assert!(
        stdout.lines().any(|l| l.trim_start().starts_with("kernel")
            && l.contains("calls")
            && l.contains("share")),
        "no table header: {what}"
    );
    // Sampling (layer by layer, --unfused) runs K = 2 updates; training runs the fused chain.
    let row = |kernel: &str| -> Vec<String> {
        stdout
            .lines()
            .filter(|l| l.trim_start().starts_with(kernel))
            .map(|l| l.split_whitespace().nth(1).unwrap_or("").to_string())
            .collect()
    };
    assert_eq!(row("langevin_update "), ["2"], "{what}");
    assert_eq!(row("mlp_langevin_chain "), ["1"], "{what}");
}

#[test]
fn bench_profile_json_rows() {
    let out = Command::new(env!("CARGO_BIN_EXE_ebm"))
        .args([
            "bench",
            "--workload",
            "toy2d",
            "--batch",
            "8",
            "--steps",
            "2",
            "--iters",
            "1",
            "--only",
            "sampling",
            "--profile",
            "--unfused",
            "--json",
            "--device",
            "cpu",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|r: &serde_json::Value| r.get("kernel").is_some())
        .collect();
    let names: Vec<&str> = rows.iter().filter_map(|r| r["kernel"].as_str()).collect();
    for (name, calls) in expected(2, "CPU wall clock per op") {
        let row = rows
            .iter()
            .find(|r| r["kernel"] == name)
            .unwrap_or_else(|| panic!("{name} missing from {names:?}"));
        assert_eq!(row["calls"], calls, "{row}");
        assert_eq!(row["measure"], "sampling");
        assert_eq!(row["device"], "cpu");
        assert_eq!(row["workload"], "toy2d");
        assert!(row["seconds"].as_f64().unwrap() > 0.0, "{row}");
    }
    let share: f64 = rows.iter().map(|r| r["share"].as_f64().unwrap()).sum();
    assert!((share - 1.0).abs() < 1e-9, "shares sum to {share}");
}
