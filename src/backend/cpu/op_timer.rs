//! The CPU backend's profiler: wall-clock time per op. Ops run synchronously (rayon joins
//! before an op returns), so the time between entering and leaving one is exactly its cost.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use crate::backend::profile::{Profile, Tally};

/// How the CPU's kernel times are taken (the `source` of its profiles).
pub(super) const SOURCE: &str = "CPU wall clock per op";

/// Per-op times, collected only while switched on.
#[derive(Debug, Default)]
pub(super) struct OpTimer {
    on: AtomicBool,
    tally: Mutex<Tally>,
}

/// Records the time from its creation to its drop under `name`; inert when profiling is off.
pub(super) struct Span<'a> {
    running: Option<(&'a OpTimer, &'static str, Instant)>,
}

impl OpTimer {
    pub fn set(&self, on: bool) {
        self.on.store(on, Ordering::Relaxed);
    }

    /// Start timing op `name`; off, this is one relaxed atomic load.
    pub fn start(&self, name: &'static str) -> Span<'_> {
        Span {
            running: self
                .on
                .load(Ordering::Relaxed)
                .then(|| (self, name, Instant::now())),
        }
    }

    pub fn take(&self) -> Profile {
        self.tally
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take(SOURCE)
    }
}

impl Drop for Span<'_> {
    fn drop(&mut self) {
        if let Some((timer, name, t0)) = self.running.take() {
            let seconds = t0.elapsed().as_secs_f64();
            timer
                .tally
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .add(name, seconds);
        }
    }
}
