//! Checking a [`Spec`] before anything is allocated: every `from` resolved to an earlier
//! layer, every layer against the shape it reads, the output head against the last layer,
//! and sizes against limits — each problem one error naming the layer.
//!
//! The result is a [`Plan`]: the graph as node ids (0 = the net's input, `i + 1` = layer
//! `i`'s output), which [`Net`](super::Net) builds from.

use std::collections::HashMap;

use super::spec::{LayerSpec, Output, Source, Spec};
use crate::{Error, Result};

/// The most values a model may hold in its parameters, and one sample in its activations
/// (summed over the input and every layer's output): 2^28, 1 GiB of f32. Far above any net
/// this crate trains (anatomy32 at n_f = 64: 2.8 M parameters, 0.25 M activation values per
/// image), low enough that a size typo is an error, not an abort on allocation.
pub const MAX_VALUES: usize = 1 << 28;

/// The most values `batch` samples may hold across the activations of a net
/// ([`Spec::check_batch`]): 2^31, 8 GiB of f32 (and as much again for the gradients).
pub const MAX_BATCH_VALUES: usize = 1 << 31;

/// A checked spec as a graph of nodes: node 0 is the input, node `i + 1` layer `i`'s output.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// Per-sample shape of every node.
    pub shapes: Vec<Vec<usize>>,
    /// For layer `i`, the nodes it reads (one, or two or more for `add`).
    pub inputs: Vec<Vec<usize>>,
    /// How many layers read each node (a node read twice needs its gradients summed).
    pub readers: Vec<usize>,
    /// Parameter values of the whole net.
    pub params: usize,
    /// Activation values of one sample (all nodes).
    pub activations: usize,
}

impl Plan {
    /// Whether every layer reads the one before it (a version-1 net).
    pub fn is_sequential(&self) -> bool {
        self.inputs.iter().enumerate().all(|(i, from)| from == &[i])
    }
}

/// The product of `dims`, or `None` on overflow.
fn product(dims: &[usize]) -> Option<usize> {
    dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

impl Spec {
    /// Check the whole spec and resolve its wiring (see the [module](self) docs).
    pub fn plan(&self) -> Result<Plan> {
        if self.input.is_empty() || self.input.contains(&0) {
            return Err(Error::Spec(format!(
                "input shape {:?} has a zero or no dimension",
                self.input
            )));
        }
        if self.layers.is_empty() {
            return Err(Error::Spec("no layers".into()));
        }
        // `what` holds `count` values (None: more than a usize holds), over the limit.
        let limit = |count: Option<usize>, what: String| match count {
            Some(n) if n <= MAX_VALUES => Ok(n),
            _ => Err(Error::Spec(format!(
                "{what}: {} values, more than the {MAX_VALUES} a model may have",
                count.map_or("too many".into(), |n| n.to_string())
            ))),
        };
        let input_len = limit(
            product(&self.input),
            format!("input shape {:?}", self.input),
        )?;
        let mut plan = Plan {
            shapes: vec![self.input.clone()],
            inputs: Vec::new(),
            readers: vec![0; self.layers.len() + 1],
            params: 0,
            activations: input_len,
        };
        // Names of the layers seen so far → their index; a later name is not yet in it.
        let mut names: HashMap<String, usize> = HashMap::new();
        let all_names: HashMap<String, usize> = (0..self.layers.len())
            .map(|i| (self.layer_name(i), i))
            .collect();
        for (i, layer) in self.layers.iter().enumerate() {
            let label = match &layer.name {
                Some(n) => format!("layers.{i} ({n})"),
                None => format!("layers.{i}"),
            };
            let bad = |what: String| Error::Spec(format!("{label}: {what}"));
            let name = self.layer_name(i);
            if name == "input" {
                return Err(bad("the name 'input' means the net's input".into()));
            }
            if let Some(first) = names.get(&name) {
                return Err(bad(format!(
                    "name '{name}' is already layers.{first}'s; names must be unique"
                )));
            }
            // Resolve `from` to node ids.
            let is_add = layer.op == LayerSpec::Add;
            if is_add && layer.from.len() < 2 {
                return Err(bad(
                    "add needs \"from\": a list of two or more layers to sum".into(),
                ));
            }
            if !is_add && layer.from.len() > 1 {
                return Err(bad(format!(
                    "{} reads one input, \"from\" lists {}",
                    layer.op.type_name(),
                    layer.from.len()
                )));
            }
            let mut from = Vec::new();
            for source in &layer.from {
                let node = match source {
                    Source::Input => 0,
                    Source::Index(j) if *j < i => j + 1,
                    Source::Index(j) if *j < self.layers.len() => {
                        return Err(bad(format!(
                            "from {j}: layers.{j} does not come before it (layers run in list \
                             order, so this would be a cycle)"
                        )))
                    }
                    Source::Index(j) => {
                        return Err(bad(format!(
                            "from {j}: there is no layers.{j} ({} layers)",
                            self.layers.len()
                        )))
                    }
                    Source::Name(n) => match (names.get(n), all_names.get(n)) {
                        (Some(&j), _) => j + 1,
                        (None, Some(&j)) => {
                            return Err(bad(format!(
                                "from '{n}': layers.{j} does not come before it (layers run \
                                 in list order, so this would be a cycle)"
                            )))
                        }
                        (None, None) => {
                            return Err(bad(format!("from '{n}': no layer has that name")))
                        }
                    },
                };
                from.push(node);
            }
            if from.is_empty() {
                from.push(i); // the previous entry's output (node i), the input for i = 0
            }
            for &node in &from {
                plan.readers[node] += 1;
            }
            let shape = plan.shapes[from[0]].clone();
            if layer.spectral_norm
                && !matches!(
                    layer.op,
                    LayerSpec::Linear { .. } | LayerSpec::Conv2d { .. }
                )
            {
                return Err(bad(format!(
                    "spectral_norm applies to linear and conv2d layers, not {}",
                    layer.op.type_name()
                )));
            }
            let mut layer_params = 0usize;
            let out = match layer.op {
                LayerSpec::Linear { inputs, outputs } => {
                    if inputs == 0 || outputs == 0 {
                        return Err(bad(format!(
                            "linear in={inputs} out={outputs} has a zero size"
                        )));
                    }
                    if shape != [inputs] {
                        return Err(bad(format!(
                            "linear in={inputs} but its input has shape {shape:?}"
                        )));
                    }
                    layer_params = inputs
                        .checked_mul(outputs)
                        .and_then(|w| w.checked_add(outputs))
                        .and_then(|p| {
                            // u [out] and v [in] of the power iteration.
                            p.checked_add(if layer.spectral_norm {
                                outputs + inputs
                            } else {
                                0
                            })
                        })
                        .ok_or_else(|| bad(format!("linear {inputs}×{outputs} overflows")))?;
                    vec![outputs]
                }
                LayerSpec::Conv2d {
                    inputs,
                    outputs,
                    kernel,
                    stride,
                    padding,
                } => {
                    if shape.len() != 3 || shape[0] != inputs {
                        return Err(bad(format!(
                            "conv2d in={inputs} but its input has shape {shape:?}"
                        )));
                    }
                    if outputs == 0 || kernel == 0 || stride == 0 {
                        return Err(bad(format!(
                            "conv2d out={outputs} kernel={kernel} stride={stride}: out, kernel \
                             and stride must be positive"
                        )));
                    }
                    let side = |n: usize| {
                        padding
                            .checked_mul(2)
                            .and_then(|p| p.checked_add(n))
                            .and_then(|padded| padded.checked_sub(kernel))
                            .map(|v| v / stride + 1)
                    };
                    let sn = if layer.spectral_norm {
                        inputs
                            .saturating_mul(kernel * kernel)
                            .saturating_add(outputs)
                    } else {
                        0
                    };
                    layer_params = product(&[outputs, inputs, kernel, kernel])
                        .and_then(|w| w.checked_add(outputs))
                        .and_then(|p| p.checked_add(sn))
                        .ok_or_else(|| {
                            bad(format!(
                                "conv2d {outputs}×{inputs}×{kernel}×{kernel} overflows"
                            ))
                        })?;
                    match (side(shape[1]), side(shape[2])) {
                        (Some(h), Some(w)) => vec![outputs, h, w],
                        _ => {
                            return Err(bad(format!(
                                "conv2d kernel {kernel} (padding {padding}) does not fit its \
                                 input {shape:?}"
                            )))
                        }
                    }
                }
                LayerSpec::ConvTranspose2d {
                    inputs,
                    outputs,
                    kernel,
                    stride,
                    padding,
                    output_padding,
                } => {
                    if shape.len() != 3 || shape[0] != inputs {
                        return Err(bad(format!(
                            "conv_transpose2d in={inputs} but its input has shape {shape:?}"
                        )));
                    }
                    if outputs == 0 || kernel == 0 || stride == 0 {
                        return Err(bad(format!(
                            "conv_transpose2d out={outputs} kernel={kernel} stride={stride}: \
                             out, kernel and stride must be positive"
                        )));
                    }
                    if output_padding >= stride {
                        return Err(bad(format!(
                            "conv_transpose2d output_padding {output_padding} must be smaller \
                             than stride {stride}"
                        )));
                    }
                    // (n − 1)·s − 2p + k + output_padding, at least 1.
                    let side = |n: usize| {
                        (n - 1)
                            .checked_mul(stride)
                            .and_then(|v| v.checked_add(kernel + output_padding))
                            .and_then(|v| v.checked_sub(2 * padding))
                            .filter(|&v| v >= 1)
                    };
                    layer_params = product(&[inputs, outputs, kernel, kernel])
                        .and_then(|w| w.checked_add(outputs))
                        .ok_or_else(|| {
                            bad(format!(
                                "conv_transpose2d {inputs}×{outputs}×{kernel}×{kernel} overflows"
                            ))
                        })?;
                    match (side(shape[1]), side(shape[2])) {
                        (Some(h), Some(w)) => vec![outputs, h, w],
                        _ => {
                            return Err(bad(format!(
                                "conv_transpose2d padding {padding} crops its whole output \
                                 (input {shape:?}, kernel {kernel})"
                            )))
                        }
                    }
                }
                LayerSpec::AvgPool { kernel } => {
                    if shape.len() != 3 || kernel == 0 || shape[1] < kernel || shape[2] < kernel {
                        return Err(bad(format!("avg_pool kernel {kernel} on input {shape:?}")));
                    }
                    vec![shape[0], shape[1] / kernel, shape[2] / kernel]
                }
                LayerSpec::GlobalAvgPool => {
                    if shape.len() != 3 {
                        return Err(bad(format!(
                            "global_avg_pool needs a [C, H, W] input, not {shape:?}"
                        )));
                    }
                    vec![shape[0]]
                }
                LayerSpec::Upsample { factor } => {
                    if shape.len() != 3 || factor == 0 {
                        return Err(bad(format!("upsample factor {factor} on input {shape:?}")));
                    }
                    let grow = |n: usize| {
                        n.checked_mul(factor)
                            .ok_or_else(|| bad(format!("upsample ×{factor} overflows")))
                    };
                    vec![shape[0], grow(shape[1])?, grow(shape[2])?]
                }
                LayerSpec::LeakyRelu { slope } => {
                    if !slope.is_finite() {
                        return Err(bad(format!("leaky_relu slope {slope} is not finite")));
                    }
                    shape
                }
                // The input's product was checked, and no layer's output is larger than
                // MAX_VALUES, so this cannot overflow.
                LayerSpec::Flatten => vec![shape.iter().product()],
                LayerSpec::Reshape { shape: ref to } => {
                    if to.is_empty() || to.contains(&0) || product(to) != product(&shape) {
                        return Err(bad(format!(
                            "reshape {shape:?} ({} values) to {to:?} ({} values)",
                            shape.iter().product::<usize>(),
                            product(to).map_or("too many".into(), |n| n.to_string())
                        )));
                    }
                    to.clone()
                }
                LayerSpec::Add => {
                    for &node in &from[1..] {
                        if plan.shapes[node] != shape {
                            return Err(bad(format!(
                                "add of mismatched shapes: {shape:?} and {:?}",
                                plan.shapes[node]
                            )));
                        }
                    }
                    shape
                }
                LayerSpec::Silu
                | LayerSpec::Relu
                | LayerSpec::Tanh
                | LayerSpec::Sigmoid
                | LayerSpec::Softplus
                | LayerSpec::Square => shape,
            };
            plan.params = limit(
                plan.params.checked_add(layer_params),
                format!("{label}: the parameter count up to this layer"),
            )?;
            let len = limit(product(&out), format!("{label}: the output shape {out:?}"))?;
            plan.activations = limit(
                plan.activations.checked_add(len),
                format!("{label}: one sample's activations up to this layer"),
            )?;
            plan.shapes.push(out);
            plan.inputs.push(from);
            names.insert(name, i);
        }
        let last = self.layers.len();
        for node in 1..last {
            if plan.readers[node] == 0 {
                let i = node - 1;
                return Err(Error::Spec(format!(
                    "{}: its output is never used (no later layer reads it, and only the last \
                     layer's output is the net's)",
                    self.layer_name(i)
                )));
            }
        }
        let out = &plan.shapes[last];
        let values = product(out).unwrap_or(usize::MAX);
        let last_name = self.layer_name(last - 1);
        match &self.output {
            Output::Scalar if values != 1 => Err(Error::Spec(format!(
                "the last layer ({last_name}) outputs shape {out:?}, not one energy per sample \
                 (a classifier head needs \"output\": {{\"energy\": \"neg_logsumexp\", \
                 \"classes\": C}})"
            ))),
            Output::NegLogSumExp { classes } if *classes == 0 || out != &[*classes] => {
                Err(Error::Spec(format!(
                    "output neg_logsumexp with {classes} classes needs the last layer \
                     ({last_name}) to output [{classes}] logits, not {out:?}"
                )))
            }
            Output::Tensor(shape) if shape.is_empty() || product(shape) != Some(values) => {
                Err(Error::Spec(format!(
                    "output tensor {shape:?} does not fit the last layer ({last_name}), which \
                     outputs {out:?}"
                )))
            }
            _ => Ok(plan),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_specs_name_the_problem() {
        let cases = [
            (
                r#"{"input":[2],"layers":[{"type":"linear","in":3,"out":1}]}"#,
                "layers.0",
            ),
            (
                r#"{"input":[2],"layers":[{"type":"dense","in":2,"out":1}]}"#,
                "dense",
            ),
            (
                r#"{"input":[2],"layers":[{"type":"linear","in":2,"out":3}]}"#,
                "one energy",
            ),
            (
                r#"{"input":[0],"layers":[{"type":"linear","in":0,"out":1}]}"#,
                "zero",
            ),
            (r#"{"input":[2],"layers":[]}"#, "no layers"),
            (
                r#"{"input":[2],"layers":[{"type":"relu","slope":0.2},{"type":"linear","in":2,"out":1}]}"#,
                "slope",
            ),
            (
                r#"{"input":[2],"layers":[{"type":"linear","in":2,"out":100000000},{"type":"linear","in":100000000,"out":1}]}"#,
                "layers.0: the parameter count",
            ),
            // v2 wiring
            (
                r#"{"input":[2],"layers":[{"type":"linear","in":2,"out":1,"from":"nope"}]}"#,
                "layers.0: from 'nope': no layer has that name",
            ),
            (
                r#"{"input":[2],"layers":[{"type":"linear","in":2,"out":2,"from":"b","name":"a"},{"type":"linear","in":2,"out":1,"name":"b"}]}"#,
                "layers.0 (a): from 'b': layers.1 does not come before it",
            ),
            (
                r#"{"input":[2],"layers":[{"type":"linear","in":2,"out":2,"from":1},{"type":"linear","in":2,"out":1}]}"#,
                "cycle",
            ),
            (
                r#"{"input":[2],"layers":[{"type":"linear","in":2,"out":4,"name":"a"},{"type":"linear","in":4,"out":3,"name":"b"},{"type":"add","name":"s","from":["a","b"]},{"type":"linear","in":4,"out":1}]}"#,
                "layers.2 (s): add of mismatched shapes: [4] and [3]",
            ),
            (
                r#"{"input":[2],"layers":[{"type":"linear","in":2,"out":4},{"type":"add","from":[0]},{"type":"linear","in":4,"out":1}]}"#,
                "add needs",
            ),
            (
                r#"{"input":[2],"layers":[{"type":"linear","in":2,"out":4,"name":"x"},{"type":"linear","in":4,"out":1,"name":"x"}]}"#,
                "already",
            ),
            (
                r#"{"input":[2],"layers":[{"type":"linear","in":2,"out":4},{"type":"linear","in":2,"out":1,"from":"input"}]}"#,
                "layers.0: its output is never used",
            ),
            (
                r#"{"input":[2],"layers":[{"type":"linear","in":2,"out":4}],"output":{"energy":"neg_logsumexp","classes":3}}"#,
                "output neg_logsumexp with 3 classes needs the last layer (layers.0) to output [3]",
            ),
            (
                r#"{"input":[2],"layers":[{"type":"linear","in":2,"out":4}],"output":{"tensor":[5]}}"#,
                "output tensor [5] does not fit the last layer (layers.0)",
            ),
            (
                r#"{"input":[2],"layers":[{"type":"tanh","spectral_norm":true},{"type":"linear","in":2,"out":1}]}"#,
                "spectral_norm applies to linear and conv2d layers, not tanh",
            ),
            (
                r#"{"input":[1,4,4],"layers":[{"type":"conv_transpose2d","in":1,"out":1,"kernel":3,"stride":2,"output_padding":2},{"type":"flatten"},{"type":"linear","in":81,"out":1}]}"#,
                "output_padding 2 must be smaller than stride 2",
            ),
            (
                r#"{"input":[2],"layers":[{"type":"reshape","shape":[3]},{"type":"linear","in":3,"out":1}]}"#,
                "reshape [2] (2 values) to [3] (3 values)",
            ),
            (
                r#"{"input":[2],"layers":[{"type":"global_avg_pool"},{"type":"linear","in":2,"out":1}]}"#,
                "global_avg_pool needs a [C, H, W] input",
            ),
            (
                r#"{"input":[2],"layers":[{"type":"linear","in":2,"out":1}],"output":{"energy":"neg_logsumexp"}}"#,
                "needs \"classes\"",
            ),
        ];
        for (text, needle) in cases {
            let err = Spec::from_json(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{err}\n  should mention: {needle}");
        }
    }

    #[test]
    fn wiring_resolves_names_indices_and_the_input() {
        let spec = Spec::from_json(
            r#"{"input":[1,4,4],"layers":[
                {"type":"conv2d","name":"c","in":1,"out":2,"kernel":3,"padding":1},
                {"type":"conv2d","in":1,"out":2,"kernel":1,"from":-1},
                {"type":"add","from":["c",1]},
                {"type":"global_avg_pool"},
                {"type":"linear","in":2,"out":1}
            ]}"#,
        )
        .unwrap();
        let plan = spec.plan().unwrap();
        assert_eq!(
            plan.inputs,
            [vec![0], vec![0], vec![1, 2], vec![3], vec![4]]
        );
        assert_eq!(plan.readers, [2, 1, 1, 1, 1, 0]);
        assert_eq!(plan.shapes[4], [2]);
        assert!(!spec.is_sequential().unwrap());
        assert!(Spec::builtin("toy2d").unwrap().is_sequential().unwrap());
    }

    #[test]
    fn conv_transpose_output_size_is_pytorchs() {
        // (H − 1)·s − 2p + k + output_padding: 4 → 8 and 16 → 32 as in the golden generator.
        let spec = Spec::from_json(
            r#"{"input":[2,4,4],"layers":[
                {"type":"conv_transpose2d","in":2,"out":3,"kernel":4,"stride":2,"padding":1},
                {"type":"conv_transpose2d","in":3,"out":1,"kernel":3,"stride":2,"padding":1,"output_padding":1}
            ],"output":{"tensor":[1,16,16]}}"#,
        )
        .unwrap();
        let shapes = spec.shapes().unwrap();
        assert_eq!(
            (shapes[1].clone(), shapes[2].clone()),
            (vec![3, 8, 8], vec![1, 16, 16])
        );
        assert_eq!(spec.param_count().unwrap(), (2 * 3 * 16 + 3) + (3 * 9 + 1));
    }
}
