//! Spectral normalisation of a linear or conv2d weight (Miyato et al. 2018; IGEBM uses it),
//! as PyTorch's `torch.nn.utils.spectral_norm` (dim 0, eps 1e-12, one power iteration):
//! the layer computes with W/σ, σ ≈ the largest singular value of W viewed as
//! `[out, in·k·k]`, estimated from vectors u, v that persist between steps.
//!
//! Stored as PyTorch stores it — `{name}.weight_orig` (W, trained), `{name}.bias`,
//! `{name}.weight_u` `[out]` and `{name}.weight_v` `[in·k·k]` — so a PyTorch model with
//! spectral norm loads unchanged. u and v sit in the parameter list with gradients that
//! stay zero, so Adam leaves them exactly as they are while checkpoints and model files carry
//! them.
//!
//! When σ moves: [`refresh`](SpectralNorm::refresh) with `iterate` does one power iteration
//! (a *training* forward in PyTorch's terms) and is called once per training step, before the
//! loss; without `iterate` it recomputes W/σ from the stored u, v (PyTorch's *eval* forward),
//! which is what building a net and every Langevin step see. Gradients flow through σ with
//! u, v held constant: dW = (G − ⟨G, W/σ⟩·u vᵀ)/σ, G the gradient with respect to W/σ.

use crate::backend::Backend;
use crate::Result;

use super::graph::Param;

/// The spectral-norm state of one layer.
pub struct SpectralNorm<B: Backend> {
    /// Rows of W as a matrix: output features.
    rows: usize,
    /// Columns: in (linear) or in·k·k (conv).
    cols: usize,
    /// Parameter indices of W (`weight_orig`; the bias follows it), u and v.
    weight: usize,
    u: usize,
    v: usize,
    /// W/σ, what the layer computes with.
    pub w_sn: B::Tensor,
    /// σ, one value.
    sigma: B::Tensor,
    /// dL/d(W/σ), written by the layer's weight-gradient primitive.
    pub g: B::Tensor,
}

impl<B: Backend> SpectralNorm<B> {
    /// The state for a weight of `rows × cols` at parameter `weight`, with u at `u` and v
    /// at `v`; computes W/σ from the stored u, v.
    pub fn new(
        b: &B,
        params: &mut [Param<B>],
        (rows, cols): (usize, usize),
        (weight, u, v): (usize, usize, usize),
    ) -> Result<Self> {
        let mut sn = SpectralNorm {
            rows,
            cols,
            weight,
            u,
            v,
            w_sn: b.zeros(rows * cols)?,
            sigma: b.zeros(1)?,
            g: b.zeros(rows * cols)?,
        };
        sn.refresh(b, params, false);
        Ok(sn)
    }

    /// W/σ from the current W: after one power iteration on u, v when `iterate`.
    pub fn refresh(&mut self, b: &B, params: &mut [Param<B>], iterate: bool) {
        // u and v come after W and its bias; split so that W is read while u, v change.
        let (head, tail) = params.split_at_mut(self.u);
        let (u, v) = tail.split_at_mut(self.v - self.u);
        b.spectral_norm_forward(
            self.rows,
            self.cols,
            &head[self.weight].value,
            &mut u[0].value,
            &mut v[0].value,
            &mut self.sigma,
            &mut self.w_sn,
            iterate,
        );
    }

    /// W's gradient from [`g`](Self::g), the gradient with respect to W/σ.
    pub fn backward(&self, b: &B, params: &mut [Param<B>]) {
        let (head, tail) = params.split_at_mut(self.u);
        b.spectral_norm_backward(
            self.rows,
            self.cols,
            &self.g,
            &self.w_sn,
            &tail[0].value,
            &tail[self.v - self.u].value,
            &self.sigma,
            &mut head[self.weight].grad,
        );
    }
}

/// Initial u or v as PyTorch draws them: a normal vector, normalised — here from the
/// parameter's Philox stream-3 values.
pub fn unit_vector(seed: u64, index: usize, len: usize) -> Vec<f32> {
    let mut x = vec![0.0f32; len];
    crate::rng::fill_normal(
        seed,
        index as u32,
        0,
        crate::rng::Stream::WeightInit,
        &mut x,
    );
    let norm = x
        .iter()
        .map(|v| f64::from(*v).powi(2))
        .sum::<f64>()
        .sqrt()
        .max(1e-12);
    x.iter().map(|v| (f64::from(*v) / norm) as f32).collect()
}
