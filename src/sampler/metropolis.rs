//! The Metropolis–Hastings tests of the exact samplers, their own kernels
//! (`shaders/metropolis.wgsl` and the CPU twins): MALA's accept step, HMC's momentum draw and
//! accept step, each per chain on the device with no readback, and the acceptance counts they
//! accumulate there.
//!
//! The target is p(x) ∝ exp(−E(x)/T) on the box [lo, hi]^dim: a proposal with an element
//! outside the box is rejected (a rejecting boundary, which keeps the chain exact for the
//! target restricted to the box), as is one whose log α is not a number. The uniform of chain
//! r at global step s is the first word of Philox counter (0, r, s, stream 5), HMC's momenta
//! the normals of (block, r, s, stream 6); chain r accepts iff log u < log α.
//!
//! ```
//! use ebm::backend::Backend;
//! use ebm::sampler::metropolis::{Acceptance, MalaAccept, MetropolisTest};
//! use ebm::CpuBackend;
//!
//! # fn main() -> ebm::Result<()> {
//! let b = CpuBackend::new();
//! // One chain at x = 0 on E(x) = x²/2 (∇E = x); the proposal x' = 1 (ε = 0.01).
//! let test = MetropolisTest {
//!     rows: 1, dim: 1, eps: 0.01, temperature: 1.0, lo: -5.0, hi: 5.0,
//!     seed: 0, global_step: 0, chain_offset: 0,
//! };
//! let (mut x, mut grad, mut energy) = (b.upload(&[0.0])?, b.upload(&[0.0])?, b.upload(&[0.0])?);
//! let mut stats = b.zeros(2)?;
//! let proposal = [b.upload(&[1.0])?, b.upload(&[1.0])?, b.upload(&[0.5])?];
//! MalaAccept(test).run(&b, [&proposal[0], &proposal[1], &proposal[2]], [&mut x, &mut grad, &mut energy], &mut stats);
//! // log α = −0.5 + (1² − (−1 + 0.01)²)/0.04 = −0.0025: α = 0.9975.
//! let acceptance = Acceptance::read(&b, &stats, 1, 1)?;
//! assert!((acceptance.mean_probability - (-0.0025f64).exp()).abs() < 1e-5);
//! assert_eq!(b.read(&x)?[0] == 1.0, acceptance.accepted[0] == 1.0);
//! # Ok(())
//! # }
//! ```

use rayon::prelude::*;

use crate::backend::kernel::{arity, layout, need, seed_words, Access, ImmediateLayout};
use crate::backend::kernel::{Kernel, WgslEntry, WgslShader};
use crate::backend::{Backend, GpuBackend, GpuTensor};
use crate::rng::{self, Stream};
use crate::{Error, Result};

/// What every Metropolis kernel of one step needs: the chains, the target's temperature and
/// box, and the Philox counter of the step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MetropolisTest {
    /// Chains.
    pub rows: usize,
    /// Values per chain.
    pub dim: usize,
    /// MALA's step ε (the proposal x − (ε/T)∇E + √(2ε)ξ); unused by HMC's test.
    pub eps: f32,
    /// T of the target exp(−E/T).
    pub temperature: f32,
    /// The box [lo, hi] outside which the target is 0.
    pub lo: f32,
    /// Upper end of the box.
    pub hi: f32,
    /// Philox key: the run's seed.
    pub seed: u64,
    /// The step's Philox step counter.
    pub global_step: u32,
    /// Row r is Philox chain `chain_offset + r`.
    pub chain_offset: u32,
}

/// MALA's accept step: inputs `[x', ∇E(x'), E(x')]`, outputs `[x, ∇E(x), E(x), stats]`,
/// log α = −(E' − E)/T + (‖x' − x + (ε/T)g‖² − ‖x − x' + (ε/T)g'‖²)/(4ε).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MalaAccept(pub MetropolisTest);

/// HMC's accept step after the leapfrog trajectory: inputs `[x', ∇E(x'), E(x'), p_L]`,
/// outputs `[x, ∇E(x), E(x), stats]`, log α = −(E' − E)/T + (‖p₀‖² − ‖p_L‖²)/2 with p₀
/// drawn again from its Philox counter (the one [`HmcMomentum`] used).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HmcAccept(pub MetropolisTest);

/// HMC's fresh momenta p₀ ~ N(0, I) `[rows, dim]`: no inputs, output `[p]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HmcMomentum(pub MetropolisTest);

impl MalaAccept {
    /// Accept or keep each chain; `stats` (`[2·rows]`) accumulates as [`Acceptance`] reads.
    pub fn run<B: Backend>(
        &self,
        b: &B,
        proposal: [&B::Tensor; 3],
        state: [&mut B::Tensor; 3],
        stats: &mut B::Tensor,
    ) {
        let [x, grad, energy] = state;
        b.run(self, &proposal, &mut [x, grad, energy, stats]);
    }
}

impl HmcAccept {
    /// Accept or keep each chain given the trajectory's end `proposal` = [x', ∇E(x'), E(x'),
    /// p_L]; `stats` as [`MalaAccept::run`].
    pub fn run<B: Backend>(
        &self,
        b: &B,
        proposal: [&B::Tensor; 4],
        state: [&mut B::Tensor; 3],
        stats: &mut B::Tensor,
    ) {
        let [x, grad, energy] = state;
        b.run(self, &proposal, &mut [x, grad, energy, stats]);
    }
}

impl HmcMomentum {
    /// Write p₀ into `momentum` `[rows, dim]`.
    pub fn run<B: Backend>(&self, b: &B, momentum: &mut B::Tensor) {
        b.run(self, &[], &mut [momentum]);
    }
}

/// Acceptance over a run, read from the device's stats buffer.
#[derive(Clone, Debug, PartialEq)]
pub struct Acceptance {
    /// Accepted proposals per chain.
    pub accepted: Vec<f32>,
    /// Tests per chain (steps).
    pub steps: usize,
    /// Accepted / tests, over all chains.
    pub rate: f64,
    /// The mean of min(1, α) over all tests: the expected acceptance, with less noise than
    /// the rate (what step-size adaptation steers).
    pub mean_probability: f64,
}

impl Acceptance {
    /// A one-line hint when hardly any proposal was accepted (under 1 %): the chains then
    /// barely move, almost always because ε is far too large for the target.
    pub fn advice(&self, step_size: f32) -> Option<String> {
        (self.rate < 0.01).then(|| {
            format!(
                "note: only {:.2} % of the proposals were accepted, so the chains barely moved: \
                 ε = {step_size} is too large for this target (try a smaller --step-size, or \
                 --adapt)",
                100.0 * self.rate
            )
        })
    }

    /// Read `stats` (`[2·rows]`: counts, then Σ min(1, α) per chain) after `steps` tests.
    pub fn read<B: Backend>(b: &B, stats: &B::Tensor, rows: usize, steps: usize) -> Result<Self> {
        let all = b.read(stats)?;
        if all.len() < 2 * rows {
            return Err(Error::Shape(format!(
                "acceptance stats hold {} values, {rows} chains need {}",
                all.len(),
                2 * rows
            )));
        }
        let tests = (rows * steps).max(1) as f64;
        let sum = |v: &[f32]| v.iter().map(|&a| a as f64).sum::<f64>();
        Ok(Acceptance {
            accepted: all[..rows].to_vec(),
            steps,
            rate: sum(&all[..rows]) / tests,
            mean_probability: sum(&all[rows..2 * rows]) / tests,
        })
    }
}

impl MetropolisTest {
    fn check_state(&self, name: &str, inputs: &[usize], outputs: &[usize]) -> Result<()> {
        let (len, rows) = (self.rows * self.dim, self.rows);
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(Error::Option(format!(
                "{name}: temperature {} must be finite and > 0",
                self.temperature
            )));
        }
        need(
            name,
            &[
                ("x'", inputs[0], len),
                ("∇E(x')", inputs[1], len),
                ("E(x')", inputs[2], rows),
                ("x", outputs[0], len),
                ("∇E(x)", outputs[1], len),
                ("E(x)", outputs[2], rows),
                ("stats", outputs[3], 2 * rows),
            ],
        )
    }

    /// The uniform of chain `row` at this step.
    fn uniform(&self, row: usize) -> f32 {
        let w = rng::words(
            self.seed,
            0,
            self.chain_offset + row as u32,
            self.global_step,
            Stream::Metropolis,
        );
        rng::uniform(w[0])
    }

    /// Whether a proposal has an element outside the box (or NaN).
    pub(crate) fn outside(&self, x_prop: &[f32]) -> bool {
        x_prop.iter().any(|&v| !(v >= self.lo && v <= self.hi))
    }

    /// The test of chain `row` given log α and whether the proposal left the box: (accept,
    /// min(1, α)), both false/0 for a proposal outside the box or a log α that is NaN.
    pub(crate) fn decide(&self, row: usize, log_alpha: f64, out: bool) -> (bool, f64) {
        let accept = !out && (self.uniform(row) as f64).ln() < log_alpha;
        let p = if out || log_alpha.is_nan() {
            0.0
        } else {
            log_alpha.min(0.0).exp()
        };
        (accept, p)
    }

    /// MALA's log q(x | x') − log q(x' | x) in f64, for one chain.
    pub(crate) fn mala_log_ratio(&self, x: &[f32], g: &[f32], xp: &[f32], gp: &[f32]) -> f64 {
        let drift = (self.eps / self.temperature) as f64;
        let mut s = 0.0;
        for (((&x, &g), &xp), &gp) in x.iter().zip(g).zip(xp).zip(gp) {
            let forward = xp as f64 - x as f64 + drift * g as f64;
            let backward = x as f64 - xp as f64 + drift * gp as f64;
            s += forward * forward - backward * backward;
        }
        s / (4.0 * self.eps as f64)
    }

    /// p₀ of block `block` of chain `row`.
    fn momentum_block(&self, row: usize, block: usize) -> [f32; 4] {
        rng::normals(rng::words(
            self.seed,
            block as u32,
            self.chain_offset + row as u32,
            self.global_step,
            Stream::HmcMomentum,
        ))
    }

    /// The CPU twin of both accept kernels: `log_ratio(row)` gives log α without the energy
    /// term. Sums in f64; the GPU's f32 sums may round a test that sits within float error
    /// of log u the other way.
    fn accept_cpu(
        &self,
        inputs: &[&[f32]],
        outputs: &mut [&mut [f32]],
        log_ratio: impl Fn(usize, &[f32], &[f32], &[f32], &[f32]) -> f64 + Sync,
    ) {
        let (rows, dim) = (self.rows, self.dim.max(1));
        let len = self.rows * self.dim;
        let inv_temp = 1.0 / self.temperature as f64;
        let [x, grad, energy, stats] = outputs else {
            unreachable!("checked: four outputs")
        };
        let (x_prop, grad_prop, e_prop) = (inputs[0], inputs[1], inputs[2]);
        let (counts, probs) = stats[..2 * rows].split_at_mut(rows);
        x[..len]
            .par_chunks_mut(dim)
            .zip(grad[..len].par_chunks_mut(dim))
            .zip(energy[..rows].par_iter_mut())
            .zip(counts.par_iter_mut().zip(probs.par_iter_mut()))
            .enumerate()
            .for_each(|(row, (((xr, gr), e), (count, prob)))| {
                let at = row * self.dim..(row + 1) * self.dim;
                let (xp, gp) = (&x_prop[at.clone()], &grad_prop[at]);
                let out = self.outside(xp);
                let log_alpha =
                    -(e_prop[row] as f64 - *e as f64) * inv_temp + log_ratio(row, xr, gr, xp, gp);
                let (accept, p) = self.decide(row, log_alpha, out);
                if accept {
                    xr.copy_from_slice(xp);
                    gr.copy_from_slice(gp);
                    *e = e_prop[row];
                }
                *count += f32::from(u8::from(accept));
                *prob += p as f32;
            });
    }

    fn params(&self, gpu: &GpuBackend) -> Result<MetropolisParams> {
        let (seed_lo, seed_hi) = seed_words(self.seed);
        Ok(MetropolisParams {
            rows: gpu.dim_u32(self.rows)?,
            dim: gpu.dim_u32(self.dim)?,
            blocks_per_row: gpu.dim_u32(self.dim.div_ceil(4))?,
            eps: self.eps,
            inv_temp: 1.0 / self.temperature,
            lo: self.lo,
            hi: self.hi,
            seed_lo,
            seed_hi,
            global_step: self.global_step,
            chain_offset: self.chain_offset,
        })
    }

    /// One thread per chain: state outputs, then the proposal inputs.
    fn dispatch_accept(
        &self,
        gpu: &GpuBackend,
        entry: &WgslEntry,
        inputs: &[&GpuTensor],
        outputs: &[&GpuTensor],
    ) -> Result<()> {
        if self.rows * self.dim == 0 {
            return Ok(());
        }
        let groups = gpu.grid_1d(self.rows)?;
        let buffers: Vec<&GpuTensor> = outputs.iter().chain(inputs).copied().collect();
        gpu.dispatch(entry, &buffers, &self.params(gpu)?, groups);
        Ok(())
    }
}

impl Kernel for MalaAccept {
    fn name(&self) -> &'static str {
        "mala_accept"
    }

    fn check(&self, inputs: &[usize], outputs: &[usize]) -> Result<()> {
        arity(self.name(), inputs, outputs, (3, 4))?;
        if !(self.0.eps.is_finite() && self.0.eps > 0.0) {
            return Err(Error::Option(format!(
                "mala_accept: step ε = {} must be finite and > 0",
                self.0.eps
            )));
        }
        self.0.check_state(self.name(), inputs, outputs)
    }

    fn cpu(&self, inputs: &[&[f32]], outputs: &mut [&mut [f32]]) {
        let t = &self.0;
        t.accept_cpu(inputs, outputs, |_, x, g, xp, gp| {
            t.mala_log_ratio(x, g, xp, gp)
        });
    }

    fn gpu(&self, gpu: &GpuBackend, inputs: &[&GpuTensor], outputs: &[&GpuTensor]) -> Result<()> {
        self.0.dispatch_accept(gpu, &MALA_ACCEPT, inputs, outputs)
    }
}

impl Kernel for HmcAccept {
    fn name(&self) -> &'static str {
        "hmc_accept"
    }

    fn check(&self, inputs: &[usize], outputs: &[usize]) -> Result<()> {
        arity(self.name(), inputs, outputs, (4, 4))?;
        let len = self.0.rows * self.0.dim;
        need(self.name(), &[("p_L", inputs[3], len)])?;
        self.0.check_state(self.name(), inputs, outputs)
    }

    fn cpu(&self, inputs: &[&[f32]], outputs: &mut [&mut [f32]]) {
        let t = &self.0;
        let momentum_end = inputs[3];
        t.accept_cpu(inputs, outputs, |row, _, _, _, _| {
            let mut s = 0.0;
            let end = &momentum_end[row * t.dim..(row + 1) * t.dim];
            for (block, pl) in end.chunks(4).enumerate() {
                let p0 = t.momentum_block(row, block);
                for (&p0, &pl) in p0.iter().zip(pl) {
                    s += (p0 as f64).powi(2) - (pl as f64).powi(2);
                }
            }
            0.5 * s
        });
    }

    fn gpu(&self, gpu: &GpuBackend, inputs: &[&GpuTensor], outputs: &[&GpuTensor]) -> Result<()> {
        self.0.dispatch_accept(gpu, &HMC_ACCEPT, inputs, outputs)
    }
}

impl Kernel for HmcMomentum {
    fn name(&self) -> &'static str {
        "hmc_momentum"
    }

    fn check(&self, inputs: &[usize], outputs: &[usize]) -> Result<()> {
        arity(self.name(), inputs, outputs, (0, 1))?;
        need(
            self.name(),
            &[("momentum", outputs[0], self.0.rows * self.0.dim)],
        )
    }

    fn cpu(&self, _: &[&[f32]], outputs: &mut [&mut [f32]]) {
        let t = &self.0;
        let dim = t.dim.max(1);
        outputs[0][..t.rows * t.dim]
            .par_chunks_mut(dim)
            .enumerate()
            .for_each(|(row, p)| {
                for (block, pb) in p.chunks_mut(4).enumerate() {
                    let z = t.momentum_block(row, block);
                    pb.copy_from_slice(&z[..pb.len()]);
                }
            });
    }

    fn gpu(&self, gpu: &GpuBackend, _: &[&GpuTensor], outputs: &[&GpuTensor]) -> Result<()> {
        let t = &self.0;
        if t.rows * t.dim == 0 {
            return Ok(());
        }
        let groups = gpu.grid_1d(t.rows * t.dim.div_ceil(4))?;
        gpu.dispatch(&HMC_MOMENTUM, &[outputs[0]], &t.params(gpu)?, groups);
        Ok(())
    }
}

/// `shaders/metropolis.wgsl`.
pub(crate) const METROPOLIS: WgslShader = WgslShader {
    file: "metropolis.wgsl",
    body: include_str!("../../shaders/metropolis.wgsl"),
    preludes: &[crate::backend::kernel::RNG],
    unchecked_indexing: false,
};

/// The chains' state (x, ∇E, E, stats: read-write), then the proposal (x', ∇E(x'), E(x')).
const ACCEPT_BINDINGS: [(u32, Access); 7] = [
    (0, Access::ReadWrite),
    (1, Access::ReadWrite),
    (2, Access::ReadWrite),
    (3, Access::ReadWrite),
    (4, Access::Read),
    (5, Access::Read),
    (6, Access::Read),
];

/// MALA's test.
pub(crate) const MALA_ACCEPT: WgslEntry = WgslEntry {
    shader: &METROPOLIS,
    entry: "mala_accept",
    bindings: &ACCEPT_BINDINGS,
};

/// HMC's test: MALA's bindings and the trajectory's end momenta.
pub(crate) const HMC_ACCEPT: WgslEntry = WgslEntry {
    shader: &METROPOLIS,
    entry: "hmc_accept",
    bindings: &[
        ACCEPT_BINDINGS[0],
        ACCEPT_BINDINGS[1],
        ACCEPT_BINDINGS[2],
        ACCEPT_BINDINGS[3],
        ACCEPT_BINDINGS[4],
        ACCEPT_BINDINGS[5],
        ACCEPT_BINDINGS[6],
        (7, Access::Read),
    ],
};

/// HMC's momentum draw: p (read-write).
pub(crate) const HMC_MOMENTUM: WgslEntry = WgslEntry {
    shader: &METROPOLIS,
    entry: "hmc_momentum",
    bindings: &[(8, Access::ReadWrite)],
};

/// `MetropolisParams` in metropolis.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct MetropolisParams {
    rows: u32,
    dim: u32,
    blocks_per_row: u32,
    eps: f32,
    inv_temp: f32,
    lo: f32,
    hi: f32,
    seed_lo: u32,
    seed_hi: u32,
    global_step: u32,
    chain_offset: u32,
}

/// The immediates layout the shader test checks.
pub(crate) fn immediate_layouts() -> Vec<ImmediateLayout> {
    vec![layout!(
        "metropolis.wgsl",
        MetropolisParams {
            rows,
            dim,
            blocks_per_row,
            eps,
            inv_temp,
            lo,
            hi,
            seed_lo,
            seed_hi,
            global_step,
            chain_offset,
        }
    )]
}
