//! Kernel times from GPU timestamp queries.
//!
//! While profiling is on, every compute pass writes a timestamp at its beginning and its end
//! into the next two slots of one query set, and the pass's entry point is noted beside
//! them. When the set is full, or when the profile is taken, the used slots are resolved and
//! copied into a fresh mappable buffer inside the pending encoder, so recording never waits
//! on the device; taking the profile submits, waits once, reads every such buffer and sums
//! end − begin per entry point. Reusing the slots later in the same command buffer is fine:
//! wgpu resets a compute pass's timestamp slots right before the pass.
//!
//! Resolved batches wait for the profile to be taken (16 KiB per 1024 passes), so a long
//! run with profiling on should take it now and then. Off, a dispatch pays one atomic load
//! and writes no query.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use super::lock;
use crate::backend::profile::{Profile, Tally};
use crate::{Error, Result};

/// How the GPU's kernel times are taken (the `source` of its profiles).
pub(super) const SOURCE: &str = "GPU timestamp queries";

/// Passes per query set (two timestamps each): 2048 slots of wgpu's 4096 maximum; a
/// toy2d sampling run of 20 steps records 300 passes.
const PASSES: u32 = 1024;

/// Resolved timestamps of up to [`PASSES`] passes, copied out and waiting to be read, with
/// the entry point of each pass.
struct Batch {
    readback: wgpu::Buffer,
    labels: Vec<&'static str>,
}

/// What the profiler has recorded and not yet read.
#[derive(Default)]
struct State {
    /// Entry points of the passes in the current query set, in slot order.
    labels: Vec<&'static str>,
    /// Batches resolved into the pending (or an already submitted) command buffer.
    batches: Vec<Batch>,
    tally: Tally,
}

/// The query set, the buffer it resolves into, and what was recorded.
pub(super) struct Profiler {
    on: AtomicBool,
    query_set: wgpu::QuerySet,
    /// QUERY_RESOLVE | COPY_SRC: resolve targets cannot be mapped, so each batch is copied
    /// on into its own MAP_READ buffer.
    resolve: wgpu::Buffer,
    /// Nanoseconds per timestamp tick.
    period_ns: f64,
    state: Mutex<State>,
}

impl Profiler {
    /// A profiler for a device created with `Features::TIMESTAMP_QUERY`.
    pub fn new(device: &wgpu::Device, queue: &wgpu::Queue) -> Self {
        let query_set = device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("ebm profiler"),
            ty: wgpu::QueryType::Timestamp,
            count: 2 * PASSES,
        });
        let resolve = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("ebm profiler resolve"),
            size: 2 * PASSES as u64 * wgpu::QUERY_SIZE as u64,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        Profiler {
            on: AtomicBool::new(false),
            query_set,
            resolve,
            period_ns: queue.get_timestamp_period() as f64,
            state: Mutex::default(),
        }
    }

    pub fn set(&self, on: bool) {
        self.on.store(on, Ordering::Relaxed);
    }

    /// The timestamp writes for the next pass, which runs entry point `name`, or `None`
    /// when profiling is off. A full query set is first resolved into `encoder`.
    pub fn pass_writes(
        &self,
        device: &wgpu::Device,
        encoder: &mut wgpu::CommandEncoder,
        name: &'static str,
    ) -> Option<wgpu::ComputePassTimestampWrites<'_>> {
        if !self.on.load(Ordering::Relaxed) {
            return None;
        }
        let mut state = lock(&self.state);
        if state.labels.len() == PASSES as usize {
            self.resolve_into(device, encoder, &mut state);
        }
        let slot = 2 * state.labels.len() as u32;
        state.labels.push(name);
        Some(wgpu::ComputePassTimestampWrites {
            query_set: &self.query_set,
            beginning_of_pass_write_index: Some(slot),
            end_of_pass_write_index: Some(slot + 1),
        })
    }

    /// Whether passes were timed whose timestamps are not yet resolved.
    pub fn has_unresolved(&self) -> bool {
        !lock(&self.state).labels.is_empty()
    }

    /// Resolve the passes recorded so far into `encoder` (a no-op if there are none).
    pub fn resolve_pending(&self, device: &wgpu::Device, encoder: &mut wgpu::CommandEncoder) {
        let mut state = lock(&self.state);
        if !state.labels.is_empty() {
            self.resolve_into(device, encoder, &mut state);
        }
    }

    /// Whether resolved batches wait to be read.
    pub fn has_batches(&self) -> bool {
        !lock(&self.state).batches.is_empty()
    }

    /// Resolve the current query set's used slots and copy them into a new mappable buffer.
    fn resolve_into(
        &self,
        device: &wgpu::Device,
        encoder: &mut wgpu::CommandEncoder,
        state: &mut State,
    ) {
        let slots = 2 * state.labels.len() as u32;
        let bytes = slots as u64 * wgpu::QUERY_SIZE as u64;
        let readback = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("ebm profiler readback"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        encoder.resolve_query_set(&self.query_set, 0..slots, &self.resolve, 0);
        encoder.copy_buffer_to_buffer(&self.resolve, 0, &readback, 0, bytes);
        let labels = std::mem::take(&mut state.labels);
        state.batches.push(Batch { readback, labels });
    }

    /// Wait for `submission` (which holds the last resolve), read every batch, and return
    /// the profile so far, clearing it.
    pub fn collect(
        &self,
        device: &wgpu::Device,
        submission: Option<wgpu::SubmissionIndex>,
    ) -> Result<Profile> {
        let batches = std::mem::take(&mut lock(&self.state).batches);
        let (tx, rx) = std::sync::mpsc::channel();
        for (i, batch) in batches.iter().enumerate() {
            let tx = tx.clone();
            batch
                .readback
                .slice(..)
                .map_async(wgpu::MapMode::Read, move |r| {
                    let _ = tx.send((i, r));
                });
        }
        drop(tx);
        if !batches.is_empty() {
            device
                .poll(wgpu::PollType::Wait {
                    submission_index: submission,
                    timeout: None,
                })
                .map_err(|e| Error::Gpu(format!("waiting for the profiled work: {e}")))?;
        }
        let mapped: Vec<_> = rx.try_iter().collect();
        if mapped.len() < batches.len() {
            return Err(Error::Gpu(
                "the timestamps were not mapped after the device finished".into(),
            ));
        }
        for (_, r) in mapped {
            r.map_err(|e| Error::Gpu(format!("mapping the timestamps: {e}")))?;
        }
        let mut state = lock(&self.state);
        for batch in &batches {
            let slice = batch.readback.slice(..);
            let view = slice
                .get_mapped_range()
                .map_err(|e| Error::Gpu(format!("reading the timestamps: {e}")))?;
            let ticks: Vec<u64> = bytemuck::pod_collect_to_vec(&view);
            for (name, pair) in batch.labels.iter().zip(ticks.chunks_exact(2)) {
                // A driver may hand back end < begin across a clock reset: count it as 0.
                let ns = pair[1].saturating_sub(pair[0]) as f64 * self.period_ns;
                state.tally.add(name, ns * 1e-9);
            }
            drop(view);
            batch.readback.unmap();
        }
        Ok(state.tally.take(SOURCE))
    }
}
