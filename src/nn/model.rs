//! `EnergyNet`: a [`Net`] with an energy head, and the two backward passes an EBM needs — to
//! the input only (Langevin sampling) and to the parameters (training).
//!
//! The head is the spec's `output` ([`Output`]): a scalar net's output *is* E(x); a
//! classifier net's C logits f(x) give E(x) = −logsumexp f(x), E(x, y) = −f(x)\[y\] and
//! p(y|x) = softmax f(x) (JEM) — all computed on the device ([`heads`](super::heads)).
//! Activations are kept per batch size in a workspace, so the K steps of a chain reuse the
//! same device buffers and allocate nothing.
//!
//! Host code calls [`EnergyNet::energies`] and [`EnergyNet::energies_and_grad`]; device code
//! (samplers, trainers) works on tensors with [`EnergyNet::forward`],
//! [`EnergyNet::input_grad`] and [`EnergyNet::backward_params`]:
//!
//! ```
//! use ebm::{Backend, CpuBackend, EnergyNet, Spec};
//!
//! # fn main() -> ebm::Result<()> {
//! let b = CpuBackend::new();
//! let mut net = EnergyNet::new(&b, &Spec::mlp(2, 8, 1), 0)?;
//! let x = b.upload(&[0.0, 1.0, 2.0, -1.0])?; // 2 samples of 2
//! let energies = b.read(net.forward(&b, &x, 2)?)?;
//! assert_eq!(energies.len(), 2);
//! // Gradients of Σ d·E with d = (1, 1), i.e. of E(x₁) + E(x₂).
//! net.backward_params(&b, 2, &b.upload(&[1.0, 1.0])?)?;
//! // The last bias adds to each energy once: its gradient is 2.
//! let last = net.params().last().unwrap();
//! assert_eq!((last.name.as_str(), b.read(&last.grad)?), ("layers.2.bias", vec![2.0]));
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;

use super::graph::{Net, Param};
use super::heads::Head;
use super::spec::{Output, Spec};
use crate::backend::{Activation, Backend};
use crate::tensorfile::Tensor;
use crate::{Error, Result};

/// Host-side convenience calls ([`EnergyNet::energies`]) work through at most this many
/// samples at a time.
pub const HOST_CHUNK: usize = 1024;

/// An energy network on backend `B`: a [`Net`] whose output an energy head reads.
pub struct EnergyNet<B: Backend> {
    net: Net<B>,
    /// Head buffers per batch size (class-logit heads only).
    heads: HashMap<usize, Head<B>>,
    /// dE/dE = 1 per sample, per batch size: the start of the input-gradient pass.
    ones: HashMap<usize, B::Tensor>,
}

impl<B: Backend> EnergyNet<B> {
    /// A freshly initialised net (PyTorch's default init, drawn from Philox stream 3).
    ///
    /// ```
    /// use ebm::{CpuBackend, EnergyNet, Spec};
    ///
    /// # fn main() -> ebm::Result<()> {
    /// let b = CpuBackend::new();
    /// let net = EnergyNet::new(&b, &Spec::mlp(2, 32, 1), 7)?;
    /// let names: Vec<&str> = net.params().iter().map(|p| p.name.as_str()).collect();
    /// assert_eq!(names, ["layers.0.weight", "layers.0.bias", "layers.2.weight", "layers.2.bias"]);
    /// assert_eq!(net.params()[0].shape, [32, 2]);
    /// // The seed fixes every value, on every device.
    /// let again = EnergyNet::new(&b, &Spec::mlp(2, 32, 1), 7)?;
    /// assert_eq!(net.read_params(&b)?, again.read_params(&b)?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn new(b: &B, spec: &Spec, seed: u64) -> Result<Self> {
        Self::energy_spec(spec)?;
        Ok(Self::wrap(Net::new(b, spec, seed)?))
    }

    /// A net whose parameters come from `lookup(name, shape)` (a model file, say); a lookup
    /// error, or values that do not fill `shape`, fails the build.
    ///
    /// ```
    /// use ebm::{CpuBackend, EnergyNet, Spec};
    ///
    /// # fn main() -> ebm::Result<()> {
    /// let b = CpuBackend::new();
    /// // Every weight 0 and every bias 1: E(x) = 1 everywhere.
    /// let mut net = EnergyNet::from_params(&b, &Spec::mlp(2, 4, 1), |name, shape| {
    ///     let fill = if name.ends_with("bias") { 1.0 } else { 0.0 };
    ///     Ok(vec![fill; shape.iter().product()])
    /// })?;
    /// assert_eq!(net.energies(&b, &[3.0, -2.0])?, [1.0]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn from_params(
        b: &B,
        spec: &Spec,
        lookup: impl FnMut(&str, &[usize]) -> Result<Vec<f32>>,
    ) -> Result<Self> {
        Self::energy_spec(spec)?;
        Ok(Self::wrap(Net::from_params(b, spec, lookup)?))
    }

    fn energy_spec(spec: &Spec) -> Result<()> {
        if let Output::Tensor(shape) = &spec.output {
            return Err(Error::Spec(format!(
                "this spec outputs a tensor {shape:?} (a generator), not an energy"
            )));
        }
        Ok(())
    }

    fn wrap(net: Net<B>) -> Self {
        EnergyNet {
            net,
            heads: HashMap::new(),
            ones: HashMap::new(),
        }
    }

    /// The graph under the head.
    pub fn net(&self) -> &Net<B> {
        &self.net
    }

    /// The spec this net was built from.
    pub fn spec(&self) -> &Spec {
        self.net.spec()
    }

    /// Values per input sample.
    pub fn input_len(&self) -> usize {
        self.net.input_len()
    }

    /// C for a class-logit head, `None` for a scalar energy.
    pub fn classes(&self) -> Option<usize> {
        match self.spec().output {
            Output::NegLogSumExp { classes } => Some(classes),
            _ => None,
        }
    }

    /// Parameters in spec order (weight, bias per layer).
    pub fn params(&self) -> &[Param<B>] {
        self.net.params()
    }

    /// Mutable parameters, for the optimiser.
    pub fn params_mut(&mut self) -> &mut [Param<B>] {
        self.net.params_mut()
    }

    /// The widths and activations of this net when it is a plain MLP —
    /// `Linear (Activation Linear)*` ending in one output, flattens ignored — the shape the
    /// fused [`MlpChain`](crate::sampler::MlpChain) runs; `None` for anything else (ConvNets,
    /// residual nets, two activations in a row, a trailing activation, a classifier head).
    ///
    /// ```
    /// use ebm::backend::Activation;
    /// use ebm::{CpuBackend, EnergyNet, Spec};
    ///
    /// # fn main() -> ebm::Result<()> {
    /// let b = CpuBackend::new();
    /// let mlp = EnergyNet::new(&b, &Spec::mlp(2, 16, 2), 0)?;
    /// let (widths, activations) = mlp.mlp_layout().unwrap();
    /// assert_eq!(widths, [2, 16, 16, 1]);
    /// assert_eq!(activations, [Activation::Silu, Activation::Silu]);
    /// // A ConvNet is no MLP: Langevin sampling runs it layer by layer.
    /// let convnet = EnergyNet::new(&b, &Spec::convnet(1, 4), 0)?;
    /// assert!(convnet.mlp_layout().is_none());
    /// # Ok(())
    /// # }
    /// ```
    pub fn mlp_layout(&self) -> Option<(Vec<usize>, Vec<Activation>)> {
        self.net.mlp_layout()
    }

    /// Recompute spectral-normed weights (see [`Net::refresh_spectral_norm`]); nothing for
    /// nets without spectral norm.
    pub fn refresh_spectral_norm(&mut self, b: &B, iterate: bool) {
        self.net.refresh_spectral_norm(b, iterate);
    }

    /// Parameter values in spec order, for the fused ops.
    pub fn param_values(&self) -> Vec<&B::Tensor> {
        self.net.param_values()
    }

    /// Read every parameter back, by name.
    pub fn read_params(&self, b: &B) -> Result<Vec<(String, Tensor)>> {
        self.net.read_params(b)
    }

    fn head(&mut self, b: &B, batch: usize) -> Result<Option<&mut Head<B>>> {
        let Some(classes) = self.classes() else {
            return Ok(None);
        };
        Ok(Some(match self.heads.entry(batch) {
            std::collections::hash_map::Entry::Occupied(head) => head.into_mut(),
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(Head::new(b, batch, classes)?)
            }
        }))
    }

    /// E(x) for `batch` samples in `x` (`[batch, input_len]`); returns the energies (`[batch]`).
    pub fn forward(&mut self, b: &B, x: &B::Tensor, batch: usize) -> Result<&B::Tensor> {
        self.net.forward(b, x, batch)?;
        if self.classes().is_none() {
            return self.net.output(batch);
        }
        self.head(b, batch)?;
        let head = self.heads.get_mut(&batch).expect("made above");
        head.energy(b, self.net.output(batch)?, None);
        Ok(&head.energies)
    }

    /// E(x, y) = −f(x)\[y\] for a class-logit head, with `labels` the class ids `[batch]` as
    /// exact f32 (a later [`backward_params`](Self::backward_params) differentiates this).
    pub fn forward_labelled(
        &mut self,
        b: &B,
        x: &B::Tensor,
        labels: &B::Tensor,
        batch: usize,
    ) -> Result<&B::Tensor> {
        if self.classes().is_none() {
            return Err(Error::Spec(
                "E(x, y) needs a class-logit head (\"output\": {\"energy\": \"neg_logsumexp\", \
                 \"classes\": C})"
                    .into(),
            ));
        }
        if b.len(labels) < batch {
            return Err(Error::Shape(format!(
                "{} labels for a batch of {batch}",
                b.len(labels)
            )));
        }
        self.net.forward(b, x, batch)?;
        self.head(b, batch)?;
        let head = self.heads.get_mut(&batch).expect("made above");
        head.energy(b, self.net.output(batch)?, Some(labels));
        Ok(&head.energies)
    }

    /// p(y|x) = softmax f(x) of the last forward pass on `batch` samples (`[batch, C]`), for
    /// a class-logit head.
    pub fn probabilities(&mut self, b: &B, batch: usize) -> Result<&B::Tensor> {
        let logits = self.net.output(batch)?;
        match self.heads.get_mut(&batch) {
            Some(head) => Ok(head.probabilities(b, logits)),
            None => Err(Error::Spec(
                "probabilities need a class-logit head and a forward pass first".into(),
            )),
        }
    }

    /// The class logits f(x) of the last forward pass (`[batch, C]`), or the energies of a
    /// scalar net.
    pub fn logits(&self, batch: usize) -> Result<&B::Tensor> {
        self.net.output(batch)
    }

    /// ∇ₓ Σ E(x) [batch, input_len] (forward + backward to the input, no parameter gradients).
    pub fn input_grad(&mut self, b: &B, x: &B::Tensor, batch: usize) -> Result<&B::Tensor> {
        self.forward(b, x, batch)?;
        self.backward(b, batch, None, true, false)?;
        self.net.input_grad_tensor(batch)
    }

    /// E(x) `[batch]` and ∇ₓ Σ E(x) `[batch, input_len]` of one forward and backward pass:
    /// what an exact sampler needs at each proposal (the energy for its Metropolis test, the
    /// gradient for the next move). Both stay valid until the next pass on this batch size.
    pub fn energies_and_input_grad(
        &mut self,
        b: &B,
        x: &B::Tensor,
        batch: usize,
    ) -> Result<(&B::Tensor, &B::Tensor)> {
        self.forward(b, x, batch)?;
        self.backward(b, batch, None, true, false)?;
        let energies = match self.heads.get(&batch) {
            Some(head) => &head.energies,
            None => self.net.output(batch)?,
        };
        Ok((energies, self.net.input_grad_tensor(batch)?))
    }

    /// ∇ₓ Σ E(x, y) for a class-logit head: the gradient that conditional sampling follows.
    pub fn input_grad_labelled(
        &mut self,
        b: &B,
        x: &B::Tensor,
        labels: &B::Tensor,
        batch: usize,
    ) -> Result<&B::Tensor> {
        self.forward_labelled(b, x, labels, batch)?;
        self.backward(b, batch, None, true, false)?;
        self.net.input_grad_tensor(batch)
    }

    /// Parameter gradients of Σ d_energy·E over the batch last passed to
    /// [`forward`](Self::forward) (or [`forward_labelled`](Self::forward_labelled)), written
    /// into each [`Param::grad`].
    pub fn backward_params(&mut self, b: &B, batch: usize, d_energy: &B::Tensor) -> Result<()> {
        self.backward(b, batch, Some(d_energy), false, true)
    }

    /// Parameter gradients of Σ d_logits·f(x) for a class-logit net, over the batch last
    /// passed to [`forward`](Self::forward): for objectives that differentiate the logits
    /// themselves (cross-entropy, JEM) rather than one energy per sample. `d_logits` is
    /// `[batch, C]`.
    pub fn backward_params_logits(
        &mut self,
        b: &B,
        batch: usize,
        d_logits: &B::Tensor,
    ) -> Result<()> {
        let Some(classes) = self.classes() else {
            return Err(Error::Spec(
                "logit gradients need a class-logit head (\"output\": {\"energy\": \
                 \"neg_logsumexp\", \"classes\": C})"
                    .into(),
            ));
        };
        if b.len(d_logits) < batch * classes {
            return Err(Error::Shape(format!(
                "{} logit gradients for {batch} samples of {classes} classes",
                b.len(d_logits)
            )));
        }
        self.net.output(batch)?; // a forward pass on this batch first
        self.net.backward(b, batch, d_logits, false, true)
    }

    fn backward(
        &mut self,
        b: &B,
        batch: usize,
        d_energy: Option<&B::Tensor>,
        input: bool,
        params: bool,
    ) -> Result<()> {
        let logits = self.net.output(batch)?; // a forward pass on this batch first
        if let std::collections::hash_map::Entry::Vacant(slot) = self.ones.entry(batch) {
            slot.insert(b.upload(&vec![1.0; batch])?);
        }
        let d_energy = d_energy.unwrap_or(&self.ones[&batch]);
        match self.heads.get_mut(&batch) {
            Some(head) => {
                let d_logits = head.backward(b, logits, d_energy);
                self.net.backward(b, batch, d_logits, input, params)
            }
            None => self.net.backward(b, batch, d_energy, input, params),
        }
    }

    /// Convenience for host code: energies of `x` (host values, [batch, input_len]), in
    /// chunks of at most [`HOST_CHUNK`] samples so that a whole dataset fits in memory.
    /// An empty `x`, or one that is not a whole number of samples, is an [`Error::Shape`].
    ///
    /// ```
    /// use ebm::{CpuBackend, EnergyNet, Spec};
    ///
    /// # fn main() -> ebm::Result<()> {
    /// let b = CpuBackend::new();
    /// let mut net = EnergyNet::new(&b, &Spec::builtin("toy2d")?, 0)?;
    /// // Three 2D points, [3, 2] row-major.
    /// let energies = net.energies(&b, &[0.0, 0.0, 1.0, -1.0, 3.0, 3.0])?;
    /// assert_eq!(energies.len(), 3);
    /// assert!(net.energies(&b, &[0.0, 0.0, 1.0]).is_err(), "half a point");
    /// # Ok(())
    /// # }
    /// ```
    pub fn energies(&mut self, b: &B, x: &[f32]) -> Result<Vec<f32>> {
        self.in_chunks(b, x, |net, t, rows| b.read(net.forward(b, t, rows)?))
    }

    /// Convenience for host code: the class logits f(x) of a class-logit net for `x` (host
    /// values, [batch, input_len]), `[batch, C]`, in chunks like [`energies`](Self::energies);
    /// E(x, y) = −f(x)\[y\] and p(y|x) = softmax f(x) follow from them.
    ///
    /// ```
    /// use ebm::{CpuBackend, EnergyNet, Spec};
    ///
    /// # fn main() -> ebm::Result<()> {
    /// let b = CpuBackend::new();
    /// let mut net = EnergyNet::new(&b, &Spec::mlp(2, 8, 1).with_classes(3)?, 0)?;
    /// let logits = net.class_logits(&b, &[0.0, 1.0, 2.0, 3.0])?;
    /// assert_eq!(logits.len(), 2 * 3);
    /// let e = net.energies(&b, &[0.0, 1.0])?[0];
    /// let lse = logits[..3].iter().map(|f| f.exp()).sum::<f32>().ln();
    /// assert!((e + lse).abs() < 1e-5, "E(x) = −logsumexp f(x)");
    /// # Ok(())
    /// # }
    /// ```
    pub fn class_logits(&mut self, b: &B, x: &[f32]) -> Result<Vec<f32>> {
        if self.classes().is_none() {
            return Err(Error::Spec(
                "class logits need a class-logit head (\"output\": {\"energy\": \
                 \"neg_logsumexp\", \"classes\": C})"
                    .into(),
            ));
        }
        self.in_chunks(b, x, |net, t, rows| {
            net.forward(b, t, rows)?;
            b.read(net.net.output(rows)?)
        })
    }

    /// Convenience for host code: p(y|x) = softmax f(x) of a class-logit net for `x` (host
    /// values, `[batch, input_len]`), `[batch, C]`, computed on the device in chunks like
    /// [`energies`](Self::energies).
    ///
    /// ```
    /// use ebm::{CpuBackend, EnergyNet, Spec};
    ///
    /// # fn main() -> ebm::Result<()> {
    /// let b = CpuBackend::new();
    /// let mut net = EnergyNet::new(&b, &Spec::mlp(2, 8, 1).with_classes(3)?, 0)?;
    /// let p = net.class_probabilities(&b, &[0.0, 1.0, 2.0, 3.0])?;
    /// assert_eq!(p.len(), 2 * 3);
    /// assert!(p.chunks(3).all(|row| (row.iter().sum::<f32>() - 1.0).abs() < 1e-6));
    /// # Ok(())
    /// # }
    /// ```
    pub fn class_probabilities(&mut self, b: &B, x: &[f32]) -> Result<Vec<f32>> {
        if self.classes().is_none() {
            return Err(Error::Spec(
                "class probabilities need a class-logit head (\"output\": {\"energy\": \
                 \"neg_logsumexp\", \"classes\": C})"
                    .into(),
            ));
        }
        self.in_chunks(b, x, |net, t, rows| {
            net.forward(b, t, rows)?;
            b.read(net.probabilities(b, rows)?)
        })
    }

    /// `read(net, chunk, rows)` over `x` (host values, whole samples) in chunks of at most
    /// [`HOST_CHUNK`] samples, the results concatenated: the loop of the host conveniences.
    fn in_chunks(
        &mut self,
        b: &B,
        x: &[f32],
        mut read: impl FnMut(&mut Self, &B::Tensor, usize) -> Result<Vec<f32>>,
    ) -> Result<Vec<f32>> {
        self.checked_batch(x)?;
        let n = self.input_len();
        let mut out = Vec::new();
        for part in x.chunks(HOST_CHUNK * n) {
            let t = b.upload(part)?;
            out.extend(read(self, &t, part.len() / n)?);
        }
        Ok(out)
    }

    /// Convenience for host code: energies and ∇ₓE of `x` (host values, [batch, input_len]);
    /// the gradient has the layout of `x`. One batch, not chunked.
    ///
    /// ```
    /// use ebm::{CpuBackend, EnergyNet, Spec};
    ///
    /// # fn main() -> ebm::Result<()> {
    /// let b = CpuBackend::new();
    /// let mut net = EnergyNet::new(&b, &Spec::mlp(2, 32, 2), 0)?;
    /// let (energies, grad) = net.energies_and_grad(&b, &[0.5, -0.5])?;
    /// assert_eq!((energies.len(), grad.len()), (1, 2));
    /// // ∂E/∂x₀ against a central difference.
    /// let h = 1e-2;
    /// let plus = net.energies(&b, &[0.5 + h, -0.5])?[0];
    /// let minus = net.energies(&b, &[0.5 - h, -0.5])?[0];
    /// assert!(((plus - minus) / (2.0 * h) - grad[0]).abs() < 1e-2);
    /// // One hand-made Langevin step without noise: downhill in energy.
    /// let x: Vec<f32> = [0.5, -0.5].iter().zip(&grad).map(|(x, g)| x - 0.1 * g).collect();
    /// assert!(net.energies(&b, &x)?[0] <= energies[0]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn energies_and_grad(&mut self, b: &B, x: &[f32]) -> Result<(Vec<f32>, Vec<f32>)> {
        let batch = self.checked_batch(x)?;
        let t = b.upload(x)?;
        let grad = b.read(self.input_grad(b, &t, batch)?)?;
        let energies = match self.heads.get(&batch) {
            Some(head) => b.read(&head.energies)?,
            None => b.read(self.net.output(batch)?)?,
        };
        Ok((energies, grad))
    }

    fn checked_batch(&self, x: &[f32]) -> Result<usize> {
        let n = self.input_len();
        if x.is_empty() || !x.len().is_multiple_of(n) {
            return Err(Error::Shape(format!(
                "{} values is not a whole number of samples of {n}",
                x.len()
            )));
        }
        Ok(x.len() / n)
    }
}
