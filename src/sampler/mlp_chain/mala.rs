//! MALA fused into the MLP chain kernel (`mlp_mala_chain` in `shaders/mlp_chain.wgsl`, CPU
//! twin in `cpu.rs`): all K proposals, energy passes and Metropolis tests of MALA on an MLP
//! energy in one op, so toy2d MALA keeps the fused chain's speed. Step for step it is what
//! [`Mala::run`](crate::sampler::Mala::run) does layer by layer — the same Philox noise,
//! uniforms, proposal and test — up to float rounding.

use crate::backend::kernel::{seed_words, Access, Kernel, WgslEntry};
use crate::backend::{Activation, Backend, GpuBackend, GpuTensor};
use crate::sampler::metropolis::MetropolisTest;
use crate::{Error, Result};

use super::{
    activation_codes, cpu, dispatch_packed, fits_the_kernel, packed_widths, MlpChainParams, CHAINS,
    MLP_CHAIN,
};

/// The widest input the fused MALA kernel takes (its chains, proposals and gradients share
/// the Langevin chain's input region of workgroup memory).
pub const MAX_DIM: usize = 32;

/// K MALA steps on an MLP energy `E(x) = W_L·act(…act(W_1·x + b_1)…) + b_L` (last width 1),
/// as one op. `test` gives the chains, ε, T, the box and the Philox counter of the first
/// step (step k uses `global_step + k`).
#[derive(Clone, Debug, PartialEq)]
pub struct MlpMala {
    /// Layer widths: input, hidden…, 1.
    pub widths: Vec<usize>,
    /// The activation after each hidden layer.
    pub activations: Vec<Activation>,
    /// Chains, ε, T, box, seed, first step.
    pub test: MetropolisTest,
    /// K.
    pub steps: usize,
}

impl MlpMala {
    /// Run all K steps: `params` = `[W_1, b_1, …, W_L, b_L]`; `state` = the chains x
    /// `[rows, dim]`, their ∇ₓE and E (current on entry, kept current), and the acceptance
    /// stats `[2·rows]` (accumulated, as [`Acceptance`](crate::sampler::Acceptance) reads).
    pub fn run<B: Backend>(&self, b: &B, params: &[&B::Tensor], state: [&mut B::Tensor; 4]) {
        let [x, grad, energy, stats] = state;
        b.run(self, params, &mut [x, grad, energy, stats]);
    }

    fn param_lens(&self) -> Vec<usize> {
        self.widths
            .windows(2)
            .flat_map(|io| [io[0] * io[1], io[1]])
            .collect()
    }
}

/// Inputs `[W_1, b_1, …, W_L, b_L]`, outputs `[x, ∇ₓE, E, stats]`.
impl Kernel for MlpMala {
    fn name(&self) -> &'static str {
        "mlp_mala_chain"
    }

    fn check(&self, inputs: &[usize], outputs: &[usize]) -> Result<()> {
        let (w, t) = (&self.widths, &self.test);
        let well_formed = w.len() >= 2
            && w.iter().all(|&w| w > 0)
            && w.last() == Some(&1)
            && self.activations.len() == w.len() - 2
            && t.dim == w[0];
        let len = t.rows * t.dim;
        let state_ok = outputs.len() == 4
            && outputs[0] >= len
            && outputs[1] >= len
            && outputs[2] >= t.rows
            && outputs[3] >= 2 * t.rows;
        if !well_formed || inputs != self.param_lens().as_slice() || !state_ok {
            return Err(Error::Shape(format!(
                "mlp_mala_chain of widths {w:?} (dim {}, {} rows): parameter lengths {inputs:?}, \
                 state lengths {outputs:?}",
                t.dim, t.rows
            )));
        }
        if !(t.eps.is_finite() && t.eps > 0.0 && t.temperature.is_finite() && t.temperature > 0.0) {
            return Err(Error::Option(format!(
                "mlp_mala_chain: ε = {} and T = {} must be finite and > 0",
                t.eps, t.temperature
            )));
        }
        Ok(())
    }

    fn cpu(&self, inputs: &[&[f32]], outputs: &mut [&mut [f32]]) {
        let [x, grad, energy, stats] = outputs else {
            unreachable!("checked: four outputs")
        };
        cpu::run_mala(self, inputs, [x, grad, energy, stats]);
    }

    fn runs_on_gpu(&self, gpu: &GpuBackend) -> bool {
        self.widths[0] <= MAX_DIM && fits_the_kernel(gpu, &self.widths, &self.activations)
    }

    fn gpu(&self, gpu: &GpuBackend, inputs: &[&GpuTensor], outputs: &[&GpuTensor]) -> Result<()> {
        let t = &self.test;
        if !self.runs_on_gpu(gpu) {
            return Err(Error::Shape(format!(
                "the fused MALA kernel cannot run widths {:?}",
                self.widths
            )));
        }
        if t.rows == 0 || self.steps == 0 {
            return Ok(());
        }
        let groups = gpu.grid(t.rows.div_ceil(CHAINS))?;
        let (activations, slope) = activation_codes(&self.activations);
        let (seed_lo, seed_hi) = seed_words(t.seed);
        let params = MlpChainParams {
            widths: packed_widths(&self.widths),
            rows: gpu.dim_u32(t.rows)?,
            layers: (self.widths.len() - 1) as u32,
            activations,
            slope,
            steps: gpu.dim_u32(self.steps)?,
            step: t.eps / t.temperature,
            noise: (2.0 * t.eps).sqrt(),
            clip: 0.0,
            has_clip: 0,
            lo: t.lo,
            hi: t.hi,
            seed_lo,
            seed_hi,
            global_step: t.global_step,
            chain_offset: t.chain_offset,
            inv_temp: 1.0 / t.temperature,
            mh_scale: 1.0 / (4.0 * t.eps),
            // MALA's kernel keeps 8 chains a workgroup.
            chains: CHAINS as u32,
        };
        dispatch_packed(gpu, &MLP_MALA_CHAIN, inputs, outputs, &params, groups)
    }
}

/// The packed parameters, then x, ∇ₓE, E and the stats (read-write).
pub(crate) const MLP_MALA_CHAIN: WgslEntry = WgslEntry {
    shader: &MLP_CHAIN,
    entry: "mlp_mala_chain",
    bindings: &[
        (0, Access::Read),
        (1, Access::ReadWrite),
        (2, Access::ReadWrite),
        (3, Access::ReadWrite),
        (4, Access::ReadWrite),
    ],
};
