//! `Net`: a graph of layers built from a [`Spec`], with one hand-written forward and backward
//! per node kind (llm.c style, no general autograd).
//!
//! Node 0 is the net's input and node `i + 1` the output of layer `i`; layers run in list
//! order, which the spec check guarantees is a topological order. The backward pass walks
//! the layers in reverse. A node read by several layers (the input of a residual block) gets
//! the *sum* of their gradients: the first reader to reach it writes its gradient, each later
//! one adds to it (`axpy` from a scratch buffer) — the same result as zeroing every gradient
//! before the pass and accumulating, without a zero-fill per node. Each parameter belongs to
//! one layer, so parameter gradients are written once per pass.
//!
//! A `Net` maps an input to its last layer's output, whatever that is: an energy, class
//! logits, or an image (a generator). [`EnergyNet`](super::EnergyNet) puts an energy head on
//! top.
//!
//! ```
//! use ebm::{Backend, CpuBackend};
//! use ebm::nn::{Net, Spec};
//!
//! # fn main() -> ebm::Result<()> {
//! let b = CpuBackend::new();
//! // A generator: a latent z of 4 values → a 1×4×4 image.
//! let spec = Spec::from_json(r#"{"input": [4], "layers": [
//!     {"type": "linear", "in": 4, "out": 8},
//!     {"type": "reshape", "shape": [2, 2, 2]},
//!     {"type": "upsample", "factor": 2},
//!     {"type": "conv2d", "in": 2, "out": 1, "kernel": 3, "padding": 1},
//!     {"type": "tanh"}
//! ], "output": {"tensor": [1, 4, 4]}}"#)?;
//! let mut net = Net::new(&b, &spec, 0)?;
//! let z = b.upload(&[0.1, -0.2, 0.3, 0.5])?;
//! let image = b.read(net.forward(&b, &z, 1)?)?;
//! assert_eq!(image.len(), 16);
//! assert!(image.iter().all(|v| v.abs() < 1.0), "tanh output");
//! // Gradients of Σ out·1 with respect to z and every parameter.
//! net.backward(&b, 1, &b.upload(&[1.0; 16])?, true, true)?;
//! assert_eq!(b.read(net.input_grad_tensor(1)?)?.len(), 4);
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;

use super::conv2d::Conv2d;
use super::conv_transpose2d::ConvTranspose2d;
use super::init;
use super::linear::Linear;
use super::spec::{LayerSpec, Output, Plan, Spec};
use super::spectral_norm::{self, SpectralNorm};
use crate::backend::{Activation, Backend, PoolShape, UpsampleShape};
use crate::tensorfile::Tensor;
use crate::{Error, Result};

/// A named parameter tensor and its gradient, both on the device.
pub struct Param<B: Backend> {
    /// `{layer name}.weight` or `{layer name}.bias` (the PyTorch state_dict names).
    pub name: String,
    /// PyTorch layout: linear `[out, in]`, conv `[out, in, k, k]`, conv-transpose
    /// `[in, out, k, k]`, bias `[out]`.
    pub shape: Vec<usize>,
    /// The values, `shape.iter().product()` of them, on the device.
    pub value: B::Tensor,
    /// The gradient of the last backward pass, laid out like `value`.
    pub grad: B::Tensor,
}

/// What one layer computes, with the shapes it was built for.
enum Node<B: Backend> {
    /// With its spectral-norm state when the spec asks for one.
    Linear(Linear, Option<SpectralNorm<B>>),
    Conv2d(Conv2d, Option<SpectralNorm<B>>),
    ConvTranspose2d(ConvTranspose2d<B>),
    AvgPool(PoolShape),
    /// `[C, H·W]` rows averaged to `[C]`.
    GlobalAvgPool {
        channels: usize,
        pixels: usize,
    },
    Upsample(UpsampleShape),
    Activation(Activation),
    /// Flatten and reshape: the values stay as they are.
    Copy,
    Add,
}

/// Device buffers for one batch size: every node's values and the gradients flowing back.
struct Workspace<B: Backend> {
    /// `acts[n]`: node n's values (`acts[0]` the input).
    acts: Vec<B::Tensor>,
    /// `grads[n]`: d(objective)/d`acts[n]`.
    grads: Vec<B::Tensor>,
    /// Where a second reader of a node computes its share before adding it; only for nets
    /// with such nodes.
    scratch: Option<B::Tensor>,
}

/// A graph of layers on backend `B` (see the [module](self) docs).
pub struct Net<B: Backend> {
    spec: Spec,
    plan: Plan,
    nodes: Vec<Node<B>>,
    /// Per-sample length of every node (`sizes[0]` = input).
    sizes: Vec<usize>,
    params: Vec<Param<B>>,
    workspaces: HashMap<usize, Workspace<B>>,
}

impl<B: Backend> Net<B> {
    /// A freshly initialised net (PyTorch's default init, drawn from Philox stream 3 with
    /// the parameter's index in [`params`](Self::params) as its counter).
    pub fn new(b: &B, spec: &Spec, seed: u64) -> Result<Self> {
        Self::build(b, spec, |index, name, shape, fan_in| {
            let len = shape.iter().product();
            if name.ends_with(".weight_u") || name.ends_with(".weight_v") {
                return Ok(spectral_norm::unit_vector(seed, index, len));
            }
            Ok(init::uniform_fan_in(seed, index, len, fan_in))
        })
    }

    /// A net whose parameters come from `lookup(name, shape)` (a model file, say); a lookup
    /// error, or values that do not fill `shape`, fails the build.
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
        let plan = spec.plan()?;
        let mut nodes = Vec::new();
        let mut params: Vec<Param<B>> = Vec::new();
        // (layer, W as rows × cols, W's parameter index) of each spectral-normed layer.
        let mut normed = Vec::new();
        for (i, layer) in spec.layers.iter().enumerate() {
            let input = &plan.shapes[plan.inputs[i][0]];
            let name = spec.layer_name(i);
            let sn = layer.spectral_norm;
            let mut add_params =
                |weight_shape: Vec<usize>, outputs: usize, fan_in: usize| -> Result<usize> {
                    let first = params.len();
                    let cols = weight_shape[1..].iter().product::<usize>();
                    let mut tensors = vec![
                        (if sn { "weight_orig" } else { "weight" }, weight_shape),
                        ("bias", vec![outputs]),
                    ];
                    if sn {
                        tensors.push(("weight_u", vec![outputs]));
                        tensors.push(("weight_v", vec![cols]));
                    }
                    for (suffix, shape) in tensors {
                        let pname = format!("{name}.{suffix}");
                        let value = values(params.len(), &pname, &shape, fan_in)?;
                        let len: usize = shape.iter().product();
                        if value.len() != len {
                            return Err(Error::Shape(format!(
                                "{pname} has {} values, the spec needs {shape:?}",
                                value.len()
                            )));
                        }
                        params.push(Param {
                            name: pname,
                            shape,
                            value: b.upload(&value)?,
                            grad: b.zeros(len)?,
                        });
                    }
                    Ok(first)
                };
            nodes.push(match layer.op {
                LayerSpec::Linear { inputs, outputs } => {
                    let weight = add_params(vec![outputs, inputs], outputs, inputs)?;
                    if sn {
                        normed.push((i, (outputs, inputs), weight));
                    }
                    Node::Linear(
                        Linear {
                            inputs,
                            outputs,
                            weight,
                        },
                        None,
                    )
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
                    if sn {
                        normed.push((i, (outputs, inputs * kernel * kernel), weight));
                    }
                    Node::Conv2d(
                        Conv2d {
                            in_channels: inputs,
                            out_channels: outputs,
                            height: input[1],
                            width: input[2],
                            kernel,
                            stride,
                            padding,
                            weight,
                        },
                        None,
                    )
                }
                LayerSpec::ConvTranspose2d {
                    inputs,
                    outputs,
                    kernel,
                    stride,
                    padding,
                    output_padding,
                } => {
                    // PyTorch's fan-in of a [in, out, k, k] weight is out·k².
                    let weight = add_params(
                        vec![inputs, outputs, kernel, kernel],
                        outputs,
                        outputs * kernel * kernel,
                    )?;
                    Node::ConvTranspose2d(ConvTranspose2d::new(
                        b,
                        inputs,
                        outputs,
                        (input[1], input[2]),
                        kernel,
                        stride,
                        padding,
                        output_padding,
                        weight,
                    )?)
                }
                LayerSpec::AvgPool { kernel } => Node::AvgPool(PoolShape {
                    batch: 0,
                    channels: input[0],
                    height: input[1],
                    width: input[2],
                    kernel,
                }),
                LayerSpec::GlobalAvgPool => Node::GlobalAvgPool {
                    channels: input[0],
                    pixels: input[1] * input[2],
                },
                LayerSpec::Upsample { factor } => Node::Upsample(UpsampleShape {
                    batch: 0,
                    channels: input[0],
                    height: input[1],
                    width: input[2],
                    factor,
                }),
                LayerSpec::LeakyRelu { slope } => Node::Activation(Activation::LeakyRelu(slope)),
                LayerSpec::Silu => Node::Activation(Activation::Silu),
                LayerSpec::Relu => Node::Activation(Activation::Relu),
                LayerSpec::Tanh => Node::Activation(Activation::Tanh),
                LayerSpec::Sigmoid => Node::Activation(Activation::Sigmoid),
                LayerSpec::Softplus => Node::Activation(Activation::Softplus),
                LayerSpec::Square => Node::Activation(Activation::Square),
                LayerSpec::Flatten | LayerSpec::Reshape { .. } => Node::Copy,
                LayerSpec::Add => Node::Add,
            });
        }
        // u and v follow W and its bias.
        for (i, shape, weight) in normed {
            let state = SpectralNorm::new(b, &mut params, shape, (weight, weight + 2, weight + 3))?;
            match &mut nodes[i] {
                Node::Linear(_, sn) | Node::Conv2d(_, sn) => *sn = Some(state),
                _ => unreachable!("spectral norm is checked to sit on linear and conv2d"),
            }
        }
        let sizes = plan.shapes.iter().map(|s| s.iter().product()).collect();
        Ok(Net {
            spec: spec.clone(),
            plan,
            nodes,
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

    /// Values per output sample (1 for a scalar energy, C for class logits).
    pub fn output_len(&self) -> usize {
        self.sizes[self.nodes.len()]
    }

    /// Parameters in spec order (weight, bias per layer).
    pub fn params(&self) -> &[Param<B>] {
        &self.params
    }

    /// Mutable parameters, for the optimiser.
    pub fn params_mut(&mut self) -> &mut [Param<B>] {
        &mut self.params
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

    /// The widths and activations of this net when it is a plain MLP energy —
    /// `Linear (Activation Linear)*` in sequence, ending in one output, flattens ignored —
    /// the shape the fused [`MlpChain`](crate::sampler::MlpChain) runs; `None` for anything else.
    pub fn mlp_layout(&self) -> Option<(Vec<usize>, Vec<Activation>)> {
        if self.spec.output != Output::Scalar || !self.plan.is_sequential() {
            return None;
        }
        let mut widths = Vec::new();
        let mut activations = Vec::new();
        let mut expect_linear = true;
        for node in &self.nodes {
            match (node, expect_linear) {
                (Node::Linear(l, None), true) => {
                    if widths.is_empty() {
                        widths.push(l.inputs);
                    }
                    widths.push(l.outputs);
                }
                (Node::Activation(a), false) => activations.push(*a),
                // Values are flat on the device already.
                (Node::Copy, _) => continue,
                _ => return None,
            }
            expect_linear = !expect_linear;
        }
        (!expect_linear && widths.last() == Some(&1)).then_some((widths, activations))
    }

    /// Whether any layer is spectrally normalised.
    pub fn has_spectral_norm(&self) -> bool {
        self.nodes
            .iter()
            .any(|n| matches!(n, Node::Linear(_, Some(_)) | Node::Conv2d(_, Some(_))))
    }

    /// Recompute every spectral-normed weight W/σ from the current W: after one power
    /// iteration when `iterate` (once per training step, before the loss), from the stored
    /// u, v otherwise (after a parameter update, so that sampling sees the new weights).
    pub fn refresh_spectral_norm(&mut self, b: &B, iterate: bool) {
        for node in &mut self.nodes {
            if let Node::Linear(_, Some(sn)) | Node::Conv2d(_, Some(sn)) = node {
                sn.refresh(b, &mut self.params, iterate);
            }
        }
    }

    fn workspace(&mut self, b: &B, batch: usize) -> Result<()> {
        if !self.workspaces.contains_key(&batch) {
            self.spec
                .check_batch(batch, &format!("a batch of {batch}"))?;
            let mut acts = Vec::new();
            let mut grads = Vec::new();
            for &size in &self.sizes {
                acts.push(b.zeros(batch * size)?);
                grads.push(b.zeros(batch * size)?);
            }
            let shared = (0..self.sizes.len()).filter(|&n| self.plan.readers[n] > 1);
            let scratch = match shared.map(|n| self.sizes[n]).max() {
                Some(size) => Some(b.zeros(batch * size)?),
                None => None,
            };
            self.workspaces.insert(
                batch,
                Workspace {
                    acts,
                    grads,
                    scratch,
                },
            );
        }
        Ok(())
    }

    /// The last layer's output for `batch` samples in `x` (`[batch, input_len]`).
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
        for (i, node) in self.nodes.iter().enumerate() {
            let (before, after) = ws.acts.split_at_mut(i + 1);
            let y = &mut after[0];
            let from = &self.plan.inputs[i];
            let x = &before[from[0]];
            let len = batch * self.sizes[i + 1];
            match node {
                Node::Linear(l, sn) => l.forward(b, &self.params, sn_weight(sn), batch, x, y),
                Node::Conv2d(c, sn) => c.forward(b, &self.params, sn_weight(sn), batch, x, y),
                Node::ConvTranspose2d(c) => c.forward(b, &self.params, batch, x, y),
                Node::AvgPool(p) => b.avg_pool_forward(PoolShape { batch, ..*p }, x, y),
                Node::GlobalAvgPool { channels, pixels } => {
                    b.row_sum(batch * channels, *pixels, 1.0 / *pixels as f32, x, y)
                }
                Node::Upsample(u) => b.upsample_forward(UpsampleShape { batch, ..*u }, x, y),
                Node::Activation(a) => b.activation_forward(*a, x, y),
                Node::Copy => b.copy(x, 0, y, 0, len),
                Node::Add => {
                    b.add(x, &before[from[1]], y, len);
                    for &more in &from[2..] {
                        b.axpy(1.0, &before[more], y, len);
                    }
                }
            }
        }
        Ok(&ws.acts[self.nodes.len()])
    }

    /// The output of the last [`forward`](Self::forward) on `batch` samples.
    pub fn output(&self, batch: usize) -> Result<&B::Tensor> {
        self.workspaces
            .get(&batch)
            .map(|ws| &ws.acts[self.nodes.len()])
            .ok_or_else(|| Error::Shape(format!("no forward pass on a batch of {batch} yet")))
    }

    /// The input gradient of the last [`backward`](Self::backward) with `input` set.
    pub fn input_grad_tensor(&self, batch: usize) -> Result<&B::Tensor> {
        self.workspaces
            .get(&batch)
            .map(|ws| &ws.grads[0])
            .ok_or_else(|| Error::Shape(format!("no backward pass on a batch of {batch} yet")))
    }

    /// Back-propagate `d_out` (d(objective)/d(output), `[batch, output_len]`) through the
    /// activations of the last forward pass on `batch` samples: into the input gradient
    /// ([`input_grad_tensor`](Self::input_grad_tensor)) when `input`, into every
    /// [`Param::grad`] when `params`.
    pub fn backward(
        &mut self,
        b: &B,
        batch: usize,
        d_out: &B::Tensor,
        input: bool,
        params: bool,
    ) -> Result<()> {
        let top = self.nodes.len();
        let Some(ws) = self.workspaces.get_mut(&batch) else {
            return Err(Error::Shape(format!(
                "backward on batch {batch} before any forward"
            )));
        };
        let out_len = batch * self.sizes[top];
        if b.len(d_out) < out_len {
            return Err(Error::Shape(format!(
                "output gradient holds {} values, {batch} samples of {} need {out_len}",
                b.len(d_out),
                self.sizes[top]
            )));
        }
        let Workspace {
            acts,
            grads,
            scratch,
        } = ws;
        b.copy(d_out, 0, &mut grads[top], 0, out_len);
        // Whether a node's gradient holds a first reader's share yet.
        let mut written = vec![false; top + 1];
        for (i, node) in self.nodes.iter_mut().enumerate().rev() {
            let (lower, upper) = grads.split_at_mut(i + 1);
            let dy = &upper[0];
            let from = &self.plan.inputs[i];
            for &src in from {
                if src == 0 && !input {
                    continue;
                }
                let len = batch * self.sizes[src];
                if let Node::Add = node {
                    // d(sum)/d(each term) = 1: the share is dy itself.
                    if written[src] {
                        b.axpy(1.0, dy, &mut lower[src], len);
                    } else {
                        b.copy(dy, 0, &mut lower[src], 0, len);
                    }
                    written[src] = true;
                    continue;
                }
                let dx = if written[src] {
                    scratch.as_mut().expect("a scratch buffer for shared nodes")
                } else {
                    &mut lower[src]
                };
                let x = &acts[src];
                match node {
                    Node::Linear(l, sn) => {
                        l.backward_data(b, &self.params, sn_weight(sn), batch, dy, dx)
                    }
                    Node::Conv2d(c, sn) => {
                        c.backward_data(b, &self.params, sn_weight(sn), batch, dy, dx)
                    }
                    Node::ConvTranspose2d(c) => c.backward_data(b, &self.params, batch, dy, dx),
                    Node::AvgPool(p) => b.avg_pool_backward(PoolShape { batch, ..*p }, dy, dx),
                    Node::GlobalAvgPool { channels, pixels } => {
                        b.broadcast_rows(batch * *channels, *pixels, 1.0 / *pixels as f32, dy, dx)
                    }
                    Node::Upsample(u) => b.upsample_backward(UpsampleShape { batch, ..*u }, dy, dx),
                    Node::Activation(a) => b.activation_backward(*a, x, dy, dx),
                    Node::Copy => b.copy(dy, 0, dx, 0, len),
                    Node::Add => unreachable!("handled above"),
                }
                if written[src] {
                    let share = scratch.as_ref().expect("a scratch buffer for shared nodes");
                    b.axpy(1.0, share, &mut lower[src], len);
                }
                written[src] = true;
            }
            if params {
                let x = &acts[from[0]];
                match node {
                    Node::Linear(l, sn) => {
                        l.backward_params(b, &mut self.params, sn_grad(sn), batch, x, dy);
                        if let Some(sn) = sn {
                            sn.backward(b, &mut self.params);
                        }
                    }
                    Node::Conv2d(c, sn) => {
                        c.backward_params(b, &mut self.params, sn_grad(sn), batch, x, dy);
                        if let Some(sn) = sn {
                            sn.backward(b, &mut self.params);
                        }
                    }
                    Node::ConvTranspose2d(c) => {
                        c.backward_params(b, &mut self.params, batch, x, dy)
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }
}

/// The weight a layer computes with: W/σ under spectral norm, else its own (`None`).
fn sn_weight<B: Backend>(sn: &Option<SpectralNorm<B>>) -> Option<&B::Tensor> {
    sn.as_ref().map(|sn| &sn.w_sn)
}

/// Where a layer's weight gradient goes: dL/d(W/σ) under spectral norm (then turned into
/// dL/dW), else its own parameter gradient (`None`).
fn sn_grad<B: Backend>(sn: &mut Option<SpectralNorm<B>>) -> Option<&mut B::Tensor> {
    sn.as_mut().map(|sn| &mut sn.g)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CpuBackend;

    /// `add` reading one node twice, after another layer already read it: every share of
    /// the gradient is summed (the path where `add` is not the first reader to write).
    #[test]
    fn a_node_read_three_times_gets_three_shares() {
        let b = CpuBackend::new();
        // y = a + a, then the head reads y and — through `from` — a again: E = w·(3a) + c.
        let spec = Spec::from_json(
            r#"{"input":[2],"layers":[
                {"type":"linear","name":"a","in":2,"out":3},
                {"type":"add","name":"twice","from":["a","a"]},
                {"type":"add","from":["twice","a"]},
                {"type":"linear","in":3,"out":1}]}"#,
        )
        .unwrap();
        let single = Spec::from_json(
            r#"{"input":[2],"layers":[
                {"type":"linear","name":"a","in":2,"out":3},
                {"type":"linear","name":"layers.3","in":3,"out":1}]}"#,
        )
        .unwrap();
        let mut net = Net::new(&b, &spec, 5).unwrap();
        let values: HashMap<String, Vec<f32>> = net
            .read_params(&b)
            .unwrap()
            .into_iter()
            .map(|(name, t)| (name, t.data))
            .collect();
        let mut plain = Net::from_params(&b, &single, |name, _| Ok(values[name].clone())).unwrap();
        let x = b.upload(&[0.3, -0.7]).unwrap();
        let one = b.upload(&[1.0]).unwrap();
        net.forward(&b, &x, 1).unwrap();
        net.backward(&b, 1, &one, true, true).unwrap();
        plain.forward(&b, &x, 1).unwrap();
        plain.backward(&b, 1, &one, true, true).unwrap();
        let grad = b.read(net.input_grad_tensor(1).unwrap()).unwrap();
        let once = b.read(plain.input_grad_tensor(1).unwrap()).unwrap();
        for (g, o) in grad.iter().zip(&once) {
            assert!((g - 3.0 * o).abs() < 1e-5, "{grad:?} vs 3 × {once:?}");
        }
        // The first layer's weight gradient triples too; the head's sees 3a.
        let gw = b.read(&net.params()[0].grad).unwrap();
        let ow = b.read(&plain.params()[0].grad).unwrap();
        for (g, o) in gw.iter().zip(&ow) {
            assert!((g - 3.0 * o).abs() < 1e-5, "{gw:?} vs 3 × {ow:?}");
        }
    }
}
