//! `ebm bench --profile`: one more repeat of a measurement with kernel timing on, printed as
//! a table of time per kernel next to the repeat's wall clock, so the gap (host work, kernel
//! launches, submission and readback) shows.

use std::time::Instant;

use ebm::backend::{Backend, Profile, ProfileSupport};
use ebm::Result;

/// A profiled repeat: the kernel times and the wall clock of the whole repeat.
pub struct Profiled {
    pub profile: Profile,
    pub wall_seconds: f64,
}

/// Run `f` once with profiling on, or say why this device cannot time its kernels.
pub fn repeat<B: Backend>(
    b: &B,
    f: impl FnOnce() -> Result<()>,
) -> Result<std::result::Result<Profiled, String>> {
    if let ProfileSupport::Unsupported(why) = b.set_profiling(true) {
        return Ok(Err(why));
    }
    let run = || {
        b.take_profile()?; // start from nothing
        let t0 = Instant::now();
        f()?;
        let wall_seconds = t0.elapsed().as_secs_f64();
        Ok(Profiled {
            profile: b.take_profile()?,
            wall_seconds,
        })
    };
    let profiled = run();
    b.set_profiling(false);
    profiled.map(Ok)
}

/// Where the bench is printing: the workload, "cpu"/"gpu", and the output format.
pub struct Target<'a> {
    pub workload: &'a str,
    pub device: &'a str,
    pub json: bool,
}

/// The table (or, with `--json`, one object per kernel) for one measurement.
pub fn print(t: &Target, measure: &str, p: &Profiled) {
    let total = p.profile.total_seconds();
    let share = |s: f64| if total > 0.0 { s / total } else { 0.0 };
    if t.json {
        for k in &p.profile.kernels {
            let record = serde_json::json!({
                "workload": t.workload, "device": t.device, "measure": measure,
                "kernel": k.name, "calls": k.calls, "seconds": k.seconds,
                "share": share(k.seconds), "source": p.profile.source,
                "wall_seconds": p.wall_seconds,
            });
            println!("{record}");
        }
        return;
    }
    println!(
        "\nprofile {measure} ({}): {} kernel runs, {:.3} ms in kernels of the repeat's {:.3} ms \
         wall clock ({:.0}%; the rest: copies, host work, launches, waits)",
        p.profile.source,
        p.profile.total_calls(),
        total * 1e3,
        p.wall_seconds * 1e3,
        100.0 * total / p.wall_seconds.max(f64::MIN_POSITIVE),
    );
    println!(
        "  {:<24} {:>7} {:>10} {:>10} {:>7}",
        "kernel", "calls", "total ms", "µs/call", "share"
    );
    for k in &p.profile.kernels {
        println!(
            "  {:<24} {:>7} {:>10.3} {:>10.2} {:>6.1}%",
            k.name,
            k.calls,
            k.seconds * 1e3,
            k.seconds * 1e6 / k.calls.max(1) as f64,
            100.0 * share(k.seconds),
        );
    }
}

/// The one line for a device that cannot time its kernels (on stderr with `--json`, so
/// stdout stays one JSON object per line).
pub fn print_unsupported(t: &Target, why: &str) {
    let line = format!("profile: {why}");
    if t.json {
        eprintln!("{line}");
    } else {
        println!("\n{line}");
    }
}
