//! The fused MLP Langevin chain, an algorithm kernel (`shaders/mlp_chain.wgsl` and its CPU
//! twin in `cpu.rs`): all K steps of a chain on an MLP energy in one op, with no
//! intermediate tensor leaving workgroup memory (GPU) or the core's cache (CPU).
//!
//! It is an optional fast path: [`Backend::supports`] says whether it runs a given net on a
//! given device (the GPU kernel bounds widths and depth), and the sampler goes layer by
//! layer where it does not. Step k is exactly [`LangevinUpdate`] with
//! `global_step = update.global_step + k` applied to ∇ₓE, so the two paths differ only by
//! float rounding.

mod cpu;
pub mod mala;

use crate::backend::kernel::{layout, seed_words, Access, ImmediateLayout};
use crate::backend::kernel::{Kernel, WgslEntry, WgslShader};
use crate::backend::{Activation, Backend, GpuBackend, GpuTensor};
use crate::sampler::LangevinUpdate;
use crate::{Error, Result};

/// A whole K-step Langevin chain on an MLP energy
/// `E(x) = W_L·act_{L−1}(…act_1(W_1·x + b_1)…) + b_L` (last width 1), run as one fused op:
/// on the GPU one dispatch with every chain's activations in workgroup memory, on the CPU one
/// cache-resident block of chains per thread.
#[derive(Clone, Debug, PartialEq)]
pub struct MlpChain {
    /// Layer widths: input, hidden…, 1.
    pub widths: Vec<usize>,
    /// The activation after each hidden layer (`widths.len() − 2` of them).
    pub activations: Vec<Activation>,
    /// Step settings; `rows` chains of `dim = widths[0]`.
    pub update: LangevinUpdate,
    /// K.
    pub steps: usize,
}

impl MlpChain {
    /// Checks the shape invariants that every backend relies on.
    pub fn is_well_formed(&self) -> bool {
        self.widths.len() >= 2
            && self.widths.iter().all(|&w| w > 0)
            && self.widths.last() == Some(&1)
            && self.activations.len() == self.widths.len() - 2
            && self.update.dim == self.widths[0]
    }

    /// Run all K steps in place on `x` `[rows, widths[0]]`; `params` are
    /// `[W_1, b_1, …, W_L, b_L]` in PyTorch layout. Ask [`Backend::supports`] first: a
    /// device that cannot run it reports an error on the next read.
    pub fn run<B: Backend>(&self, b: &B, params: &[&B::Tensor], x: &mut B::Tensor) {
        b.run(self, params, &mut [x]);
    }

    /// The lengths of `[W_1, b_1, …, W_L, b_L]`.
    fn param_lens(&self) -> Vec<usize> {
        self.widths
            .windows(2)
            .flat_map(|io| [io[0] * io[1], io[1]])
            .collect()
    }
}

/// Inputs `[W_1, b_1, …, W_L, b_L]`, outputs `[x]`.
impl Kernel for MlpChain {
    fn name(&self) -> &'static str {
        "mlp_langevin_chain"
    }

    fn check(&self, inputs: &[usize], outputs: &[usize]) -> Result<()> {
        let w = &self.widths;
        let expected = self.param_lens();
        let u = &self.update;
        if !self.is_well_formed() {
            return Err(Error::Shape(format!(
                "mlp_langevin_chain: widths {w:?} with {} activations and dim {} are not an MLP \
                 energy (input, hidden…, 1)",
                self.activations.len(),
                u.dim
            )));
        }
        if inputs != expected.as_slice() || outputs.len() != 1 || outputs[0] < u.rows * u.dim {
            return Err(Error::Shape(format!(
                "mlp_langevin_chain of widths {w:?}: parameter lengths {inputs:?} (expected \
                 {expected:?}), x {outputs:?} for {} rows",
                u.rows
            )));
        }
        Ok(())
    }

    fn cpu(&self, inputs: &[&[f32]], outputs: &mut [&mut [f32]]) {
        cpu::run(self, inputs, outputs[0]);
    }

    fn runs_on_gpu(&self, gpu: &GpuBackend) -> bool {
        fits_the_kernel(gpu, &self.widths, &self.activations)
    }

    fn gpu(&self, gpu: &GpuBackend, inputs: &[&GpuTensor], outputs: &[&GpuTensor]) -> Result<()> {
        let u = &self.update;
        if !self.runs_on_gpu(gpu) {
            return Err(Error::Shape(format!(
                "the fused MLP chain kernel cannot run widths {:?}",
                self.widths
            )));
        }
        if u.rows == 0 || self.steps == 0 {
            return Ok(());
        }
        // Chains per workgroup: 8 unless the device was opened with 4 (GpuOptions); the
        // same bits either way.
        let chains = gpu.mlp_chain_group();
        let groups = gpu.grid(u.rows.div_ceil(chains))?;
        let widths = packed_widths(&self.widths);
        let (codes, slope) = activation_codes(&self.activations);
        let (seed_lo, seed_hi) = seed_words(u.seed);
        let params = MlpChainParams {
            widths,
            rows: gpu.dim_u32(u.rows)?,
            layers: (self.widths.len() - 1) as u32,
            activations: codes,
            slope,
            steps: gpu.dim_u32(self.steps)?,
            step: u.step,
            noise: u.noise,
            clip: u.grad_clip.unwrap_or(0.0),
            has_clip: u32::from(u.grad_clip.is_some()),
            lo: u.lo,
            hi: u.hi,
            seed_lo,
            seed_hi,
            global_step: u.global_step,
            chain_offset: u.chain_offset,
            inv_temp: 1.0,
            mh_scale: 0.0,
            chains: chains as u32,
        };
        // All weights and biases travel in one buffer (one binding however deep the net),
        // packed by device copies into scratch memory the backend keeps between calls.
        dispatch_packed(gpu, &MLP_LANGEVIN_CHAIN, inputs, outputs, &params, groups)
    }
}

/// Dispatch `entry` with the parameters `inputs` packed into one buffer (binding 0) and then
/// `outputs`: all weights and biases travel in one buffer (one binding however deep the
/// net), packed by device copies into scratch memory the backend keeps between calls.
fn dispatch_packed(
    gpu: &GpuBackend,
    entry: &WgslEntry,
    inputs: &[&GpuTensor],
    outputs: &[&GpuTensor],
    params: &MlpChainParams,
    groups: (u32, u32, u32),
) -> Result<()> {
    let total = inputs.iter().map(|t| t.len()).sum();
    gpu.with_scratch("mlp_chain_params", total, |packed| {
        let mut offset = 0;
        for t in inputs {
            gpu.copy(t, 0, packed, offset, t.len());
            offset += t.len();
        }
        let buffers: Vec<&GpuTensor> = std::iter::once(&*packed)
            .chain(outputs.iter().copied())
            .collect();
        gpu.dispatch(entry, &buffers, params, groups);
    })
}

/// The activation codes of mlp_chain.wgsl (4 bits per hidden layer) and the one leaky-ReLU
/// slope.
fn activation_codes(activations: &[Activation]) -> (u32, f32) {
    let mut codes = 0u32;
    let mut slope = 0.0f32;
    for (l, a) in activations.iter().enumerate() {
        let code = match *a {
            Activation::Relu => 0,
            Activation::LeakyRelu(s) => {
                slope = s;
                1
            }
            Activation::Silu => 2,
            Activation::Tanh => 3,
            Activation::Sigmoid => 4,
            Activation::Softplus => 5,
            Activation::Square => 6,
        };
        codes |= code << (4 * l);
    }
    (codes, slope)
}

/// Whether mlp_chain.wgsl can run an MLP of these widths and activations on this adapter:
/// widths and depth within its limits, one leaky-ReLU slope, enough workgroup memory.
fn fits_the_kernel(gpu: &GpuBackend, widths: &[usize], activations: &[Activation]) -> bool {
    let r = gpu.adapter_report();
    let slopes = activations.iter().filter_map(|a| match a {
        Activation::LeakyRelu(s) => Some(s.to_bits()),
        _ => None,
    });
    let one_slope = slopes.clone().min() == slopes.max();
    widths.len() >= 2
        && widths.len() - 2 <= MAX_HIDDEN
        && widths.iter().all(|&w| w > 0 && w <= MAX_WIDTH)
        && one_slope
        && r.max_compute_workgroup_storage_size >= WORKGROUP_BYTES
        && r.max_compute_invocations_per_workgroup >= WORKGROUP
}

/// The eight widths as the shader's two vec4s.
fn packed_widths(widths: &[usize]) -> [u32; 8] {
    let mut packed = [0u32; 8];
    for (slot, &width) in packed.iter_mut().zip(widths) {
        *slot = width as u32;
    }
    packed
}

/// `shaders/mlp_chain.wgsl`.
pub(crate) const MLP_CHAIN: WgslShader = WgslShader {
    file: "mlp_chain.wgsl",
    body: include_str!("../../../shaders/mlp_chain.wgsl"),
    preludes: &[crate::backend::kernel::RNG],
    unchecked_indexing: false,
};

/// Its one entry point: the packed parameters, x (read-write).
pub(crate) const MLP_LANGEVIN_CHAIN: WgslEntry = WgslEntry {
    shader: &MLP_CHAIN,
    entry: "mlp_langevin_chain",
    bindings: &[(0, Access::Read), (1, Access::ReadWrite)],
};

/// Limits of mlp_chain.wgsl: its `MAX_WIDTH`, `MAX_HIDDEN`, workgroup size, chains per
/// workgroup and workgroup memory.
const MAX_WIDTH: usize = 128;
const MAX_HIDDEN: usize = 4;
const WORKGROUP: u32 = 128;
const CHAINS: usize = 8;
const WORKGROUP_BYTES: u32 = 1792 * 16 + 4 * 16 + 8 * 4;

/// `MlpChainParams` in mlp_chain.wgsl (the two vec4s first, so no padding is needed).
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct MlpChainParams {
    widths: [u32; 8],
    rows: u32,
    layers: u32,
    activations: u32,
    slope: f32,
    steps: u32,
    step: f32,
    noise: f32,
    clip: f32,
    has_clip: u32,
    lo: f32,
    hi: f32,
    seed_lo: u32,
    seed_hi: u32,
    global_step: u32,
    chain_offset: u32,
    inv_temp: f32,
    mh_scale: f32,
    chains: u32,
}

/// The immediates layout the shader test checks.
pub(crate) fn immediate_layouts() -> Vec<ImmediateLayout> {
    // The shader holds the eight widths as two vec4<u32>: `widths_lo`, `widths_hi`.
    let mut l = layout!(
        "mlp_chain.wgsl",
        MlpChainParams {
            widths,
            rows,
            layers,
            activations,
            slope,
            steps,
            step,
            noise,
            clip,
            has_clip,
            lo,
            hi,
            seed_lo,
            seed_hi,
            global_step,
            chain_offset,
            inv_temp,
            mh_scale,
            chains,
        }
    );
    let widths = std::mem::offset_of!(MlpChainParams, widths);
    l.fields
        .splice(0..1, [("widths_lo", widths), ("widths_hi", widths + 16)]);
    vec![l]
}
