//! `EnergyNet`: a sequential net E(x) built from a [`Spec`], with the two backward passes an
//! EBM needs — to the input only (Langevin sampling) and to the parameters (training).
//!
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

use super::conv2d::Conv2d;
use super::init;
use super::linear::Linear;
use super::spec::{LayerSpec, Spec};
use crate::backend::{Activation, Backend, PoolShape};
use crate::tensorfile::Tensor;
use crate::{Error, Result};

/// Host-side convenience calls ([`EnergyNet::energies`]) work through at most this many
/// samples at a time.
pub const HOST_CHUNK: usize = 1024;

/// A named parameter tensor and its gradient, both on the device.
pub struct Param<B: Backend> {
    /// `layers.{i}.weight` or `layers.{i}.bias` (the PyTorch state_dict names).
    pub name: String,
    /// PyTorch layout: linear `[out, in]`, conv `[out, in, k, k]`, bias `[out]`.
    pub shape: Vec<usize>,
    /// The values, `shape.iter().product()` of them, on the device.
    pub value: B::Tensor,
    /// The gradient of the last [`EnergyNet::backward_params`], laid out like `value`.
    pub grad: B::Tensor,
}

enum Layer {
    Linear(Linear),
    Conv2d(Conv2d),
    AvgPool(PoolShape),
    Activation(Activation),
    /// Values are already flat on the device: a copy.
    Flatten,
}

/// Device buffers for one batch size: every layer's input and the gradients flowing back.
struct Workspace<B: Backend> {
    /// `acts[i]` is the input of layer i; `acts[layers]` holds the energies.
    acts: Vec<B::Tensor>,
    /// `grads[i]` is dE/d`acts[i]`.
    grads: Vec<B::Tensor>,
    /// dE/dE = 1 per sample, to start the input-gradient pass.
    ones: B::Tensor,
}

/// A sequential energy network on backend `B`.
pub struct EnergyNet<B: Backend> {
    spec: Spec,
    layers: Vec<Layer>,
    /// Per-sample length of every activation (`sizes[0]` = input, last = 1).
    sizes: Vec<usize>,
    params: Vec<Param<B>>,
    workspaces: HashMap<usize, Workspace<B>>,
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
        Self::build(b, spec, |index, _name, shape, fan_in| {
            let len = shape.iter().product();
            Ok(init::uniform_fan_in(seed, index, len, fan_in))
        })
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
        mut lookup: impl FnMut(&str, &[usize]) -> Result<Vec<f32>>,
    ) -> Result<Self> {
        Self::build(b, spec, |_, name, shape, _| lookup(name, shape))
    }

    fn build(
        b: &B,
        spec: &Spec,
        mut values: impl FnMut(usize, &str, &[usize], usize) -> Result<Vec<f32>>,
    ) -> Result<Self> {
        let shapes = spec.shapes()?;
        let mut layers = Vec::new();
        let mut params = Vec::new();
        for (i, layer) in spec.layers.iter().enumerate() {
            let input = &shapes[i];
            let mut add_params =
                |weight_shape: Vec<usize>, outputs: usize, fan_in: usize| -> Result<usize> {
                    let first = params.len();
                    for (suffix, shape) in [("weight", weight_shape), ("bias", vec![outputs])] {
                        let name = format!("layers.{i}.{suffix}");
                        let value = values(params.len(), &name, &shape, fan_in)?;
                        let len: usize = shape.iter().product();
                        if value.len() != len {
                            return Err(Error::Shape(format!(
                                "{name} has {} values, the spec needs {shape:?}",
                                value.len()
                            )));
                        }
                        params.push(Param {
                            name,
                            shape,
                            value: b.upload(&value)?,
                            grad: b.zeros(len)?,
                        });
                    }
                    Ok(first)
                };
            layers.push(match *layer {
                LayerSpec::Linear { inputs, outputs } => {
                    let weight = add_params(vec![outputs, inputs], outputs, inputs)?;
                    Layer::Linear(Linear {
                        inputs,
                        outputs,
                        weight,
                    })
                }
                LayerSpec::Conv2d {
                    inputs,
                    outputs,
                    kernel,
                    stride,
                    padding,
                } => {
                    let weight = add_params(
                        vec![outputs, inputs, kernel, kernel],
                        outputs,
                        inputs * kernel * kernel,
                    )?;
                    Layer::Conv2d(Conv2d {
                        in_channels: inputs,
                        out_channels: outputs,
                        height: input[1],
                        width: input[2],
                        kernel,
                        stride,
                        padding,
                        weight,
                    })
                }
                LayerSpec::AvgPool { kernel } => Layer::AvgPool(PoolShape {
                    batch: 0,
                    channels: input[0],
                    height: input[1],
                    width: input[2],
                    kernel,
                }),
                LayerSpec::LeakyRelu { slope } => Layer::Activation(Activation::LeakyRelu(slope)),
                LayerSpec::Silu => Layer::Activation(Activation::Silu),
                LayerSpec::Relu => Layer::Activation(Activation::Relu),
                LayerSpec::Flatten => Layer::Flatten,
            });
        }
        let sizes = shapes.iter().map(|s| s.iter().product()).collect();
        Ok(EnergyNet {
            spec: spec.clone(),
            layers,
            sizes,
            params,
            workspaces: HashMap::new(),
        })
    }

    /// The spec this net was built from.
    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    /// Values per input sample.
    pub fn input_len(&self) -> usize {
        self.sizes[0]
    }

    /// Parameters in spec order (weight, bias per layer).
    pub fn params(&self) -> &[Param<B>] {
        &self.params
    }

    /// Mutable parameters, for the optimiser.
    pub fn params_mut(&mut self) -> &mut [Param<B>] {
        &mut self.params
    }

    /// The widths and activations of this net when it is a plain MLP —
    /// `Linear (Activation Linear)*` ending in one output, flattens ignored — the shape the
    /// fused [`Backend::mlp_langevin_chain`] runs; `None` for anything else (ConvNets, two
    /// activations in a row, a trailing activation).
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
        let mut widths = Vec::new();
        let mut activations = Vec::new();
        let mut expect_linear = true;
        for layer in &self.layers {
            match (layer, expect_linear) {
                (Layer::Linear(l), true) => {
                    if widths.is_empty() {
                        widths.push(l.inputs);
                    }
                    widths.push(l.outputs);
                }
                (Layer::Activation(a), false) => activations.push(*a),
                // Values are flat on the device already.
                (Layer::Flatten, _) => continue,
                _ => return None,
            }
            expect_linear = !expect_linear;
        }
        (!expect_linear && widths.last() == Some(&1)).then_some((widths, activations))
    }

    /// Parameter values in spec order, for the fused ops.
    pub fn param_values(&self) -> Vec<&B::Tensor> {
        self.params.iter().map(|p| &p.value).collect()
    }

    /// Read every parameter back, by name.
    pub fn read_params(&self, b: &B) -> Result<Vec<(String, Tensor)>> {
        self.params
            .iter()
            .map(|p| {
                let data = b.read(&p.value)?;
                Ok((
                    p.name.clone(),
                    Tensor {
                        shape: p.shape.clone(),
                        data,
                    },
                ))
            })
            .collect()
    }

    fn workspace(&mut self, b: &B, batch: usize) -> Result<&mut Workspace<B>> {
        if !self.workspaces.contains_key(&batch) {
            self.spec
                .check_batch(batch, &format!("a batch of {batch}"))?;
            let mut acts = Vec::new();
            let mut grads = Vec::new();
            for &size in &self.sizes {
                acts.push(b.zeros(batch * size)?);
                grads.push(b.zeros(batch * size)?);
            }
            let ones = b.upload(&vec![1.0; batch])?;
            self.workspaces
                .insert(batch, Workspace { acts, grads, ones });
        }
        Ok(self.workspaces.get_mut(&batch).expect("inserted above"))
    }

    /// E(x) for `batch` samples in `x` (`[batch, input_len]`); returns the energies (`[batch]`).
    pub fn forward(&mut self, b: &B, x: &B::Tensor, batch: usize) -> Result<&B::Tensor> {
        let input_len = self.input_len();
        if b.len(x) < batch * input_len {
            return Err(Error::Shape(format!(
                "input holds {} values, {batch} samples of {input_len} need {}",
                b.len(x),
                batch * input_len
            )));
        }
        self.workspace(b, batch)?;
        let ws = self.workspaces.get_mut(&batch).expect("created above");
        b.copy(x, 0, &mut ws.acts[0], 0, batch * input_len);
        for (i, layer) in self.layers.iter().enumerate() {
            let (inputs, outputs) = ws.acts.split_at_mut(i + 1);
            let (x, y) = (&inputs[i], &mut outputs[0]);
            match layer {
                Layer::Linear(l) => l.forward(b, &self.params, batch, x, y),
                Layer::Conv2d(c) => c.forward(b, &self.params, batch, x, y),
                Layer::AvgPool(p) => b.avg_pool_forward(PoolShape { batch, ..*p }, x, y),
                Layer::Activation(a) => b.activation_forward(*a, x, y),
                Layer::Flatten => b.copy(x, 0, y, 0, batch * self.sizes[i]),
            }
        }
        Ok(&ws.acts[self.layers.len()])
    }

    /// ∇ₓ Σ E(x) [batch, input_len] (forward + backward to the input, no parameter gradients).
    pub fn input_grad(&mut self, b: &B, x: &B::Tensor, batch: usize) -> Result<&B::Tensor> {
        self.forward(b, x, batch)?;
        self.backward(b, batch, None, true, false);
        Ok(&self.workspaces[&batch].grads[0])
    }

    /// Parameter gradients of Σ d_energy·E over the batch last passed to [`forward`](Self::forward),
    /// written into each [`Param::grad`].
    pub fn backward_params(&mut self, b: &B, batch: usize, d_energy: &B::Tensor) -> Result<()> {
        if !self.workspaces.contains_key(&batch) {
            return Err(Error::Shape(format!(
                "backward on batch {batch} before any forward"
            )));
        }
        self.backward(b, batch, Some(d_energy), false, true);
        Ok(())
    }

    fn backward(
        &mut self,
        b: &B,
        batch: usize,
        d_energy: Option<&B::Tensor>,
        input: bool,
        params: bool,
    ) {
        let ws = self.workspaces.get_mut(&batch).expect("forward ran first");
        let top = self.layers.len();
        b.copy(
            d_energy.unwrap_or(&ws.ones),
            0,
            &mut ws.grads[top],
            0,
            batch,
        );
        for (i, layer) in self.layers.iter().enumerate().rev() {
            let need_dx = i > 0 || input;
            let (lower, upper) = ws.grads.split_at_mut(i + 1);
            let (dx, dy, x) = (&mut lower[i], &upper[0], &ws.acts[i]);
            match layer {
                Layer::Linear(l) => {
                    if params {
                        l.backward_params(b, &mut self.params, batch, x, dy);
                    }
                    if need_dx {
                        l.backward_data(b, &self.params, batch, dy, dx);
                    }
                }
                Layer::Conv2d(c) => {
                    if params {
                        c.backward_params(b, &mut self.params, batch, x, dy);
                    }
                    if need_dx {
                        c.backward_data(b, &self.params, batch, dy, dx);
                    }
                }
                Layer::AvgPool(p) if need_dx => {
                    b.avg_pool_backward(PoolShape { batch, ..*p }, dy, dx)
                }
                Layer::Activation(a) if need_dx => b.activation_backward(*a, x, dy, dx),
                Layer::Flatten if need_dx => b.copy(dy, 0, dx, 0, batch * self.sizes[i]),
                _ => {}
            }
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
        self.checked_batch(x)?;
        let chunk = HOST_CHUNK * self.input_len();
        let mut energies = Vec::with_capacity(x.len() / self.input_len());
        for part in x.chunks(chunk) {
            let t = b.upload(part)?;
            let e = self.forward(b, &t, part.len() / self.input_len())?;
            energies.extend(b.read(e)?);
        }
        Ok(energies)
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
        let energies = b.read(&self.workspaces[&batch].acts[self.layers.len()])?;
        Ok((energies, grad))
    }

    fn checked_batch(&self, x: &[f32]) -> Result<usize> {
        let n = self.input_len();
        if x.is_empty() || x.len() % n != 0 {
            return Err(Error::Shape(format!(
                "{} values is not a whole number of samples of {n}",
                x.len()
            )));
        }
        Ok(x.len() / n)
    }
}
