//! `ebm bench`: the reference workloads, timed the way `ebm_ref.py bench` times them, with
//! the same fields, so the two compare line by line (docs/ARCHITECTURE.md, Reference workloads).

use std::time::Instant;

use clap::Args;
use ebm::backend::Backend;
use ebm::data::{DataSource, Toy2d, ToyData};
use ebm::sampler::{Langevin, LangevinConfig};
use ebm::train::{AdamConfig, TrainConfig, Trainer};
use ebm::{with_backend, EnergyNet, Error, Result, Spec};

use crate::profile::{self, Profiled};

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// toy2d, anatomy32, mnist32, resnet32, mnist-resnet32, or a spec JSON file.
    #[arg(long, default_value = "toy2d")]
    pub workload: String,
    /// Width n_f of the built-in ConvNets (as ebm_ref.py's --nf).
    #[arg(long, default_value_t = 64)]
    pub nf: usize,
    /// Chains B (default: toy2d 1024, ConvNets 100); a list (1,16,256) measures each, for
    /// scaling tables.
    #[arg(long, value_delimiter = ',')]
    pub batch: Vec<usize>,
    /// Langevin steps K (default: toy2d 20, ConvNets 100); a list measures each.
    #[arg(long, value_delimiter = ',')]
    pub steps: Vec<usize>,
    /// Timed repeats (median/min/max).
    #[arg(long, default_value_t = 5)]
    pub iters: usize,
    /// Untimed warm-up repeats.
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// Only one measurement: sampling or train.
    #[arg(long)]
    pub only: Option<String>,
    /// One JSON object per measurement.
    #[arg(long)]
    pub json: bool,
    /// Then one more repeat of each measurement with the time per kernel (GPU timestamp
    /// queries where the adapter has them, the wall clock per op on the CPU).
    #[arg(long)]
    pub profile: bool,
    /// Sample layer by layer (one dispatch per layer and step) even where the fused MLP chain
    /// exists, to compare the two; training always uses the fused chain where it can.
    #[arg(long)]
    pub unfused: bool,
}

pub fn run(device: &str, args: &BenchArgs) -> Result<()> {
    if args.iters == 0 {
        return Err(Error::Option("--iters must be at least 1".into()));
    }
    if let Some(only) = args
        .only
        .as_deref()
        .filter(|o| !["sampling", "train"].contains(o))
    {
        return Err(Error::Option(format!(
            "--only {only}: expected sampling or train"
        )));
    }
    if args.nf == 0 {
        return Err(Error::Option("--nf must be at least 1".into()));
    }
    let spec = Spec::from_name_or_file_with_width(&args.workload, args.nf)?;
    let one_d = spec.input.len() == 1;
    let or_default = |list: &[usize], default: usize| {
        if list.is_empty() {
            vec![default]
        } else {
            list.to_vec()
        }
    };
    let batches = or_default(&args.batch, if one_d { 1024 } else { 100 });
    let steps = or_default(&args.steps, if one_d { 20 } else { 100 });
    if batches.contains(&0) || steps.contains(&0) {
        return Err(Error::Option(
            "--batch and --steps must be at least 1".into(),
        ));
    }
    for &batch in &batches {
        // Training runs data and samples through the net together, 2B at once.
        let samples = if args.only.as_deref() == Some("sampling") {
            batch
        } else {
            batch.saturating_mul(2)
        };
        spec.check_batch(samples, &format!("--batch {batch}"))?;
    }
    let backend = crate::open_device(device)?;
    with_backend!(&backend, |b| {
        for &batch in &batches {
            for &k in &steps {
                bench(b, &spec, args, batch, k)?;
            }
        }
        Ok::<(), Error>(())
    })?;
    // What `--conv-tiles auto` chose, product by product (on stderr: stdout may be JSON).
    if let ebm::backend::AnyBackend::Gpu(gpu) = &backend {
        for line in gpu.conv_tile_choices() {
            eprintln!("conv tiles: {line}");
        }
    }
    Ok(())
}

fn median_min_max(mut t: Vec<f64>) -> (f64, f64, f64) {
    t.sort_by(f64::total_cmp);
    let n = t.len();
    let median = if n % 2 == 1 {
        t[n / 2]
    } else {
        0.5 * (t[n / 2 - 1] + t[n / 2])
    };
    (median, t[0], t[n - 1])
}

fn time(warmup: usize, iters: usize, mut f: impl FnMut() -> Result<()>) -> Result<(f64, f64, f64)> {
    for _ in 0..warmup {
        f()?;
    }
    let mut times = Vec::with_capacity(iters);
    for _ in 0..iters {
        let t0 = Instant::now();
        f()?;
        times.push(t0.elapsed().as_secs_f64());
    }
    Ok(median_min_max(times))
}

fn bench<B: Backend>(
    b: &B,
    spec: &Spec,
    args: &BenchArgs,
    batch: usize,
    steps: usize,
) -> Result<()> {
    let one_d = spec.input.len() == 1;
    let dim = spec.input_len();
    let fwd_flops = spec.forward_flops()? as f64;
    // ebm_ref.py's defaults: step 0.01, noise 0.005, clamp [−1, 1], α 0.1, Adam lr 1e-4.
    let langevin = LangevinConfig {
        steps,
        step_size: 0.01,
        noise: 0.005,
        grad_clip: None,
        lo: -1.0,
        hi: 1.0,
    };
    let mut net = EnergyNet::new(b, spec, 0)?;
    let sampler = Langevin {
        config: langevin,
        seed: 0,
    };
    let init = sampler.noise(batch, dim);
    let mut x = b.upload(&init)?;
    let mut round = 0u64;
    let mut measures = Vec::new();
    // Profiled right after each measurement's timed repeats (the sampler's net moves into
    // the trainer next), printed after all of them.
    let mut profiles: Vec<(&str, Profiled)> = Vec::new();
    let mut unsupported = None;
    let mut profile_repeat = |measure, f: &mut dyn FnMut() -> Result<()>| -> Result<()> {
        if args.profile && unsupported.is_none() {
            match profile::repeat(b, f)? {
                Ok(p) => profiles.push((measure, p)),
                Err(why) => unsupported = Some(why),
            }
        }
        Ok(())
    };
    if args.only.as_deref() != Some("train") {
        let mut sample = || {
            b.write(&mut x, 0, &init)?;
            if args.unfused {
                sampler.run_unfused(b, &mut net, &mut x, batch, round * steps as u64)?;
            } else {
                sampler.run(b, &mut net, &mut x, batch, round * steps as u64)?;
            }
            round += 1;
            b.read(&x).map(|_| ())
        };
        let t = time(args.warmup, args.iters, &mut sample)?;
        measures.push(("sampling", t, 2.0 * fwd_flops * (batch * steps) as f64));
        profile_repeat("sampling", &mut sample)?;
    }
    if args.only.as_deref() != Some("sampling") {
        let config = TrainConfig {
            batch,
            langevin,
            alpha: 0.1,
            adam: AdamConfig {
                lr: 1e-4,
                ..AdamConfig::default()
            },
            buffer_size: batch,
            reinit_prob: 1.0, // short-run chains from noise, as ebm_ref.py's train_iter
            seed: 0,
            objective: ebm::train::Objective::Cd,
            sampler: ebm::sampler::Method::Ula,
            adapt: None,
        };
        let mut trainer = Trainer::new(b, net, config)?;
        let mut data = ToyData {
            dataset: Toy2d::EightGaussians,
            seed: 0,
        };
        let x_data = if one_d && dim == 2 {
            data.batch(0, batch)?
        } else {
            init.clone()
        };
        let mut train = || {
            trainer.step(b, &x_data)?;
            trainer.stats(b).map(|_| ())
        };
        let t = time(args.warmup, args.iters, &mut train)?;
        let flops = 2.0 * fwd_flops * (batch * steps) as f64 + 3.0 * fwd_flops * (2 * batch) as f64;
        measures.push(("train", t, flops));
        profile_repeat("train", &mut train)?;
    }
    for (name, (median, min, max), flops) in measures {
        let rate = if name == "sampling" {
            (batch * steps) as f64 / median
        } else {
            1.0 / median
        };
        if args.json {
            let record = serde_json::json!({
                "workload": args.workload, "nf": (spec.input.len() == 3).then_some(args.nf), "engine": "ebm", "device": if b.is_gpu() { "gpu" } else { "cpu" },
                "device_name": b.name(), "threads": rayon::current_num_threads(), "batch": batch, "steps": steps,
                "flops_per_sample": fwd_flops, "iters": args.iters, "measure": name,
                "chain_steps_per_s": (name == "sampling").then_some(rate),
                "train_iters_per_s": (name == "train").then_some(rate),
                "gflops": flops / median / 1e9, "seconds_median": median, "seconds_min": min, "seconds_max": max,
            });
            println!("{record}");
        } else {
            let rate = if name == "sampling" {
                format!("{rate:.4e} chain-steps/s")
            } else {
                format!("{rate:.4} it/s")
            };
            println!(
                "{} {name:8} {} B={batch} K={steps}: {rate}, {:.2} GFLOP/s, median {:.3} ms [{:.3}, {:.3}] ({})",
                args.workload,
                if b.is_gpu() { "gpu" } else { "cpu" },
                flops / median / 1e9,
                median * 1e3,
                min * 1e3,
                max * 1e3,
                b.name()
            );
        }
    }
    let target = profile::Target {
        workload: &args.workload,
        device: if b.is_gpu() { "gpu" } else { "cpu" },
        json: args.json,
    };
    if let Some(why) = unsupported {
        profile::print_unsupported(&target, &why);
    }
    for (measure, p) in &profiles {
        profile::print(&target, measure, p);
    }
    Ok(())
}
