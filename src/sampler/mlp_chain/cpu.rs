//! The CPU twin of `shaders/mlp_chain.wgsl`: all K Langevin steps of an MLP energy for one
//! block of chains at a time, each block on one thread from start to end.
//!
//! Layer by layer, every step of a chain is a handful of batch-wide ops with a thread
//! hand-off between each; here a block's activations (a few tens of KB) stay in the core's
//! cache for all K steps and threads never wait on each other.

use rayon::prelude::*;

use super::MlpChain;
use crate::backend::cpu::activation;
use crate::backend::cpu::matmul::{matmul_serial, Mat};
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
    x[..rows * dim]
        .par_chunks_mut(block_rows * dim)
        .enumerate()
        .for_each(|(block, xb)| {
            let mut ws = Workspace::new(&chain.widths, xb.len() / dim);
            for k in 0..chain.steps {
                ws.input_grad(chain, params, xb);
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

/// One block's buffers, reused across the K steps.
struct Workspace {
    rows: usize,
    /// Pre-activations of each hidden layer [rows, width].
    pre: Vec<Vec<f32>>,
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
            post: [vec![0.0; widest], vec![0.0; widest]],
            grads: [vec![0.0; widest], vec![0.0; widest]],
            grad_slot: 0,
        }
    }

    fn grad(&self) -> &[f32] {
        &self.grads[self.grad_slot]
    }

    /// ∇ₓE for the block's rows `x`, into `grads[grad_slot]`.
    fn input_grad(&mut self, chain: &MlpChain, params: &[&[f32]], x: &[f32]) {
        let (w, acts, rows) = (&chain.widths, &chain.activations, self.rows);
        let hidden = w.len() - 2;
        // Forward through the hidden layers, keeping pre-activations for the backward pass.
        for l in 0..hidden {
            let (n_in, n_out) = (w[l], w[l + 1]);
            let (weight, bias) = (params[2 * l], params[2 * l + 1]);
            let z = &mut self.pre[l];
            for row in z.chunks_mut(n_out) {
                row.copy_from_slice(&bias[..n_out]);
            }
            let input = if l == 0 {
                x
            } else {
                &self.post[(l - 1) % 2][..]
            };
            matmul_serial(
                Mat::row_major(input, rows, n_in),
                Mat::transposed(weight, n_out, n_in),
                z,
                true,
            );
            let out = &mut self.post[l % 2][..rows * n_out];
            activation::forward(acts[l], z, out);
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
            activation::scale_by_derivative(acts[l], &self.pre[l], g);
            matmul_serial(
                Mat::row_major(g, rows, n_out),
                Mat::row_major(params[2 * l], n_out, n_in),
                &mut g_in[..rows * n_in],
                false,
            );
            slot = 1 - slot;
        }
        self.grad_slot = slot;
    }
}
