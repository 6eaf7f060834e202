//! The CPU twin of `shaders/mlp_chain.wgsl`: all K Langevin steps of an MLP energy for one
//! block of chains at a time, each block on one thread from start to end.
//!
//! Layer by layer, every step of a chain is a handful of batch-wide ops with a thread
//! hand-off between each; here a block's activations (a few tens of KB) stay in the core's
//! cache for all K steps and threads never wait on each other.

use rayon::prelude::*;

use super::mala::MlpMala;
use super::MlpChain;
use crate::backend::cpu::activation;
use crate::backend::cpu::matmul::{matmul_serial, Mat};
use crate::backend::cpu::tile::{self, Offsets};
use crate::backend::Activation;
use crate::sampler::metropolis::MetropolisTest;
use crate::sampler::LangevinUpdate;

/// Chains per block: an eighth of the chains, between 16 and 128. Larger blocks let gemm
/// reach its full speed (toy2d on two cores: 32 → 128 chains per block took sampling from
/// 6.3e5 to 8.5e5 chain-steps/s); eight blocks keep the threads of a small CPU busy. It
/// depends on `rows` alone, so results do not depend on the number of threads.
fn block_rows(rows: usize) -> usize {
    rows.div_ceil(8).clamp(16, 128)
}

/// Run `chain` in place on `x` [rows, widths[0]]; `params` = [W_1, b_1, …, W_L, b_L].
pub(super) fn run(chain: &MlpChain, params: &[&[f32]], x: &mut [f32]) {
    let dim = chain.widths[0];
    let rows = chain.update.rows;
    let block_rows = block_rows(rows);
    let layers = Layers::new(chain, params);
    x[..rows * dim]
        .par_chunks_mut(block_rows * dim)
        .enumerate()
        .for_each(|(block, xb)| {
            let mut ws = Workspace::new(&chain.widths, xb.len() / dim);
            for k in 0..chain.steps {
                ws.input_grad(chain, &layers, xb);
                let update = LangevinUpdate {
                    global_step: chain.update.global_step.wrapping_add(k as u32),
                    chain_offset: chain.update.chain_offset + (block * block_rows) as u32,
                    ..chain.update
                };
                for (row, (xr, gr)) in xb.chunks_mut(dim).zip(ws.grad().chunks(dim)).enumerate() {
                    update.row(row, xr, gr);
                }
            }
        });
}

/// All K MALA steps of `mala` on the state (x, ∇ₓE, E, stats), one block of chains per
/// thread: the proposal is the Langevin update of the layer-by-layer sampler (ε/T drift,
/// √(2ε) noise, no clip or clamp), the test is `MetropolisTest`'s, row by row.
pub(super) fn run_mala(mala: &MlpMala, params: &[&[f32]], state: [&mut [f32]; 4]) {
    let t = &mala.test;
    let (dim, rows) = (t.dim, t.rows);
    let [x, grad, energy, stats] = state;
    let (counts, probs) = stats[..2 * rows].split_at_mut(rows);
    let block_rows = block_rows(rows);
    let chain = MlpChain {
        widths: mala.widths.clone(),
        activations: mala.activations.clone(),
        update: LangevinUpdate {
            rows,
            dim,
            step: t.eps / t.temperature,
            noise: (2.0 * t.eps).sqrt(),
            grad_clip: None,
            lo: f32::MIN,
            hi: f32::MAX,
            seed: t.seed,
            global_step: t.global_step,
            chain_offset: t.chain_offset,
        },
        steps: mala.steps,
    };
    let inv_temp = 1.0 / t.temperature as f64;
    let layers = Layers::new(&chain, params);
    x[..rows * dim]
        .par_chunks_mut(block_rows * dim)
        .zip(grad[..rows * dim].par_chunks_mut(block_rows * dim))
        .zip(energy[..rows].par_chunks_mut(block_rows))
        .zip(
            counts
                .par_chunks_mut(block_rows)
                .zip(probs.par_chunks_mut(block_rows)),
        )
        .enumerate()
        .for_each(|(block, (((xb, gb), eb), (cb, pb)))| {
            let n = eb.len();
            let first = block * block_rows;
            let mut ws = Workspace::new(&chain.widths, n);
            let mut xp = vec![0.0; xb.len()];
            for k in 0..mala.steps {
                let step = t.global_step.wrapping_add(k as u32);
                let update = LangevinUpdate {
                    global_step: step,
                    chain_offset: t.chain_offset + first as u32,
                    ..chain.update
                };
                xp.copy_from_slice(xb);
                for (row, (xr, gr)) in xp.chunks_mut(dim).zip(gb.chunks(dim)).enumerate() {
                    update.row(row, xr, gr);
                }
                ws.input_grad(&chain, &layers, &xp);
                let e_prop = ws.energies(&chain, layers.params, &xp);
                let test = MetropolisTest {
                    global_step: step,
                    chain_offset: t.chain_offset + first as u32,
                    ..*t
                };
                for row in 0..n {
                    let at = row * dim..(row + 1) * dim;
                    let (xr, gr, xpr) = (&xb[at.clone()], &gb[at.clone()], &xp[at.clone()]);
                    let gpr = &ws.grad()[at.clone()];
                    let log_alpha = -(e_prop[row] as f64 - eb[row] as f64) * inv_temp
                        + test.mala_log_ratio(xr, gr, xpr, gpr);
                    let (accept, p) = test.decide(row, log_alpha, test.outside(xpr));
                    if accept {
                        xb[at.clone()].copy_from_slice(xpr);
                        gb[at].copy_from_slice(gpr);
                        eb[row] = e_prop[row];
                    }
                    cb[row] += f32::from(u8::from(accept));
                    pb[row] += p as f32;
                }
            }
        });
}

/// A layer's weights packed for [`tile::rows_times_packed`], with the offsets 0..depth.
type PackedWeights = (Vec<f32>, Offsets);

/// The chain's parameters, and each hidden layer's weights packed for the register tiles
/// once per run (they do not change over its K steps; gemm packed them again at every
/// product, and its packing and dispatch were a fifth of toy2d sampling).
struct Layers<'a> {
    /// [W_1, b_1, …, W_L, b_L].
    params: &'a [&'a [f32]],
    /// Per hidden layer: z = W·a (lanes = outputs, k = inputs) and the gradient g·W
    /// (lanes = inputs, k = outputs), or None where a tile would be mostly empty.
    packed: Vec<[Option<PackedWeights>; 2]>,
}

impl<'a> Layers<'a> {
    fn new(chain: &MlpChain, params: &'a [&'a [f32]]) -> Self {
        let w = &chain.widths;
        let pack = |lanes: usize, depth: usize, value: &(dyn Fn(usize, usize) -> f32 + Sync)| {
            let wide = tile::available() && lanes >= tile::LANES / 2;
            wide.then(|| {
                let mut packed = vec![0.0; tile::packed_len(lanes, depth)];
                tile::pack(lanes, depth, value, &mut packed);
                (packed, Offsets::new((0..depth).collect()))
            })
        };
        let packed = (0..w.len() - 2)
            .map(|l| {
                let (n_in, n_out, weight) = (w[l], w[l + 1], params[2 * l]);
                [
                    pack(n_out, n_in, &|m, k| weight[m * n_in + k]),
                    pack(n_in, n_out, &|m, k| weight[k * n_in + m]),
                ]
            })
            .collect();
        Layers { params, packed }
    }
}

/// One block's buffers, reused across the K steps.
struct Workspace {
    rows: usize,
    /// Pre-activations of each hidden layer [rows, width].
    pre: Vec<Vec<f32>>,
    /// σ(pre) of the SiLU layers, kept from the forward pass for the backward one.
    sigmoid: Vec<Vec<f32>>,
    /// Post-activations, ping-ponged between layers.
    post: [Vec<f32>; 2],
    /// Gradients flowing back, ping-ponged; ends as ∇ₓE.
    grads: [Vec<f32>; 2],
    /// Which of `grads` holds ∇ₓE after `input_grad`.
    grad_slot: usize,
}

impl Workspace {
    fn new(widths: &[usize], rows: usize) -> Self {
        let widest = rows * widths.iter().copied().max().unwrap_or(1);
        let hidden = &widths[1..widths.len() - 1];
        Workspace {
            rows,
            pre: hidden.iter().map(|&w| vec![0.0; rows * w]).collect(),
            sigmoid: hidden.iter().map(|&w| vec![0.0; rows * w]).collect(),
            post: [vec![0.0; widest], vec![0.0; widest]],
            grads: [vec![0.0; widest], vec![0.0; widest]],
            grad_slot: 0,
        }
    }

    fn grad(&self) -> &[f32] {
        &self.grads[self.grad_slot]
    }

    /// The energies `[rows]` of the inputs `x` last passed to
    /// [`input_grad`](Self::input_grad): the last layer on the last hidden output.
    fn energies(&self, chain: &MlpChain, params: &[&[f32]], x: &[f32]) -> Vec<f32> {
        let w = &chain.widths;
        let hidden = w.len() - 2;
        let n_last = w[hidden];
        let a = if hidden == 0 {
            x
        } else {
            &self.post[(hidden - 1) % 2][..]
        };
        let (weight, bias) = (params[2 * hidden], params[2 * hidden + 1][0]);
        a[..self.rows * n_last]
            .chunks(n_last)
            .map(|row| bias + row.iter().zip(weight).map(|(a, w)| a * w).sum::<f32>())
            .collect()
    }

    /// ∇ₓE for the block's rows `x`, into `grads[grad_slot]`.
    fn input_grad(&mut self, chain: &MlpChain, layers: &Layers, x: &[f32]) {
        let params = layers.params;
        let (w, acts, rows) = (&chain.widths, &chain.activations, self.rows);
        let hidden = w.len() - 2;
        // Forward through the hidden layers, keeping pre-activations for the backward pass.
        for l in 0..hidden {
            let (n_in, n_out) = (w[l], w[l + 1]);
            let (weight, bias) = (params[2 * l], params[2 * l + 1]);
            let z = &mut self.pre[l];
            let input = if l == 0 {
                x
            } else {
                &self.post[(l - 1) % 2][..]
            };
            if let Some((packed, k_all)) = &layers.packed[l][0] {
                tile::rows_times_packed(packed, n_out, input, k_all, Some(bias), z);
            } else {
                for row in z.chunks_mut(n_out) {
                    row.copy_from_slice(&bias[..n_out]);
                }
                matmul_serial(
                    Mat::row_major(input, rows, n_in),
                    Mat::transposed(weight, n_out, n_in),
                    z,
                    true,
                );
            }
            let out = &mut self.post[l % 2][..rows * n_out];
            if acts[l] == Activation::Silu {
                activation::silu_keeping_sigmoid(z, out, &mut self.sigmoid[l]);
            } else {
                activation::forward(acts[l], z, out);
            }
        }
        // dE/d(last hidden output) is the last layer's weight row, for every chain.
        let last = params[2 * hidden];
        let mut slot = 0;
        for row in self.grads[slot][..rows * w[hidden]].chunks_mut(w[hidden]) {
            row.copy_from_slice(&last[..w[hidden]]);
        }
        // Back through the hidden layers: g ← (g ⊙ act'(z))·W.
        for l in (0..hidden).rev() {
            let (n_in, n_out) = (w[l], w[l + 1]);
            let [g0, g1] = &mut self.grads;
            let (g, g_in) = if slot == 0 { (g0, g1) } else { (g1, g0) };
            let g = &mut g[..rows * n_out];
            if acts[l] == Activation::Silu {
                activation::scale_by_silu_derivative(&self.pre[l], &self.sigmoid[l], g);
            } else {
                activation::scale_by_derivative(acts[l], &self.pre[l], g);
            }
            let g_in = &mut g_in[..rows * n_in];
            if let Some((packed, k_all)) = &layers.packed[l][1] {
                tile::rows_times_packed(packed, n_in, g, k_all, None, g_in);
            } else {
                matmul_serial(
                    Mat::row_major(g, rows, n_out),
                    Mat::row_major(params[2 * l], n_out, n_in),
                    g_in,
                    false,
                );
            }
            slot = 1 - slot;
        }
        self.grad_slot = slot;
    }
}
