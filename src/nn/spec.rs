//! Model specs (DESIGN.md §3): `{"input": [C,H,W] or [D], "layers": [...]}`, the JSON that
//! `--spec FILE` reads and that model files carry in their `ebm.spec` metadata.
//!
//! Layer types are `linear` (`in`, `out`), `conv2d` (`in`, `out`, `kernel`, `stride` = 1,
//! `padding` = 0), `leaky_relu` (`slope` = 0.01), `silu`, `relu`, `avg_pool` (`kernel`) and
//! `flatten`; parameter names follow from the layer index (`layers.{i}.weight|bias`), as in a
//! PyTorch `nn.Sequential`.
//!
//! ```
//! use ebm::nn::{LayerSpec, Spec};
//!
//! # fn main() -> ebm::Result<()> {
//! // A small ConvNet on 1×8×8 images.
//! let spec = Spec::from_json(r#"{
//!     "input": [1, 8, 8],
//!     "layers": [
//!         {"type": "conv2d", "in": 1, "out": 4, "kernel": 3, "padding": 1},
//!         {"type": "silu"},
//!         {"type": "avg_pool", "kernel": 2},
//!         {"type": "flatten"},
//!         {"type": "linear", "in": 64, "out": 1}
//!     ]
//! }"#)?;
//! assert_eq!(spec.shapes()?[3], [4, 4, 4]);
//! assert_eq!(spec.param_count()?, (4 * 9 + 4) + (64 + 1));
//! // What a model file stores, and reads back unchanged.
//! assert_eq!(Spec::from_json(&spec.to_json())?, spec);
//! # Ok(())
//! # }
//! ```

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// One layer of a sequential energy net.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "snake_case",
    deny_unknown_fields,
    from = "LayerJson"
)]
pub enum LayerSpec {
    /// Fully connected, `y = x·wᵀ + b` with w `[out, in]`; its input must be flat, `[in]`.
    Linear {
        /// Input features (`"in"` in JSON).
        #[serde(rename = "in")]
        inputs: usize,
        /// Output features (`"out"` in JSON).
        #[serde(rename = "out")]
        outputs: usize,
    },
    /// 2D convolution with zero padding on a `[in, H, W]` input, w `[out, in, k, k]`.
    Conv2d {
        /// Input channels (`"in"` in JSON).
        #[serde(rename = "in")]
        inputs: usize,
        /// Output channels, i.e. filters (`"out"` in JSON).
        #[serde(rename = "out")]
        outputs: usize,
        /// Side k of the square filter.
        kernel: usize,
        /// Step between filter positions along both axes; 1 when omitted.
        #[serde(default = "one")]
        stride: usize,
        /// Zero pixels added on each side of both axes; 0 when omitted.
        #[serde(default)]
        padding: usize,
    },
    /// max(x, slope·x), elementwise.
    LeakyRelu {
        /// Slope for negative x; 0.01 (PyTorch's default) when omitted.
        #[serde(default = "default_slope")]
        slope: f32,
    },
    /// x·σ(x), elementwise.
    Silu,
    /// max(x, 0), elementwise.
    Relu,
    /// The mean of each `kernel × kernel` window, stride `kernel`, no padding (PyTorch's
    /// `AvgPool2d(k)`); rows and columns past the last whole window are dropped.
    AvgPool {
        /// Side and stride of the window.
        kernel: usize,
    },
    /// `[C, H, W]` → `[C·H·W]`, so that a linear layer can follow a convolution; the values
    /// stay where they are.
    Flatten,
}

/// What a layer's JSON is read as: [`LayerSpec`] with the field-less layers as empty
/// structs, because serde lets an internally tagged *unit* variant through with any fields
/// (`{"type":"relu","slope":0.2}` would silently drop the slope); these reject them.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum LayerJson {
    Linear {
        #[serde(rename = "in")]
        inputs: usize,
        #[serde(rename = "out")]
        outputs: usize,
    },
    Conv2d {
        #[serde(rename = "in")]
        inputs: usize,
        #[serde(rename = "out")]
        outputs: usize,
        kernel: usize,
        #[serde(default = "one")]
        stride: usize,
        #[serde(default)]
        padding: usize,
    },
    LeakyRelu {
        #[serde(default = "default_slope")]
        slope: f32,
    },
    Silu {},
    Relu {},
    AvgPool {
        kernel: usize,
    },
    Flatten {},
}

impl From<LayerJson> for LayerSpec {
    fn from(l: LayerJson) -> Self {
        match l {
            LayerJson::Linear { inputs, outputs } => LayerSpec::Linear { inputs, outputs },
            LayerJson::Conv2d {
                inputs,
                outputs,
                kernel,
                stride,
                padding,
            } => LayerSpec::Conv2d {
                inputs,
                outputs,
                kernel,
                stride,
                padding,
            },
            LayerJson::LeakyRelu { slope } => LayerSpec::LeakyRelu { slope },
            LayerJson::Silu {} => LayerSpec::Silu,
            LayerJson::Relu {} => LayerSpec::Relu,
            LayerJson::AvgPool { kernel } => LayerSpec::AvgPool { kernel },
            LayerJson::Flatten {} => LayerSpec::Flatten,
        }
    }
}

fn one() -> usize {
    1
}

fn default_slope() -> f32 {
    0.01
}

/// The most values a model may hold in its parameters, and one sample in its activations
/// (summed over the input and every layer's output): 2^28, 1 GiB of f32. Far above any net
/// this crate trains (anatomy32 at n_f = 64: 2.8 M parameters, 0.25 M activation values per
/// image), low enough that a size typo is an error, not an abort on allocation.
pub const MAX_VALUES: usize = 1 << 28;

/// The most values `batch` samples may hold across the activations of a net
/// ([`Spec::check_batch`]): 2^31, 8 GiB of f32 (and as much again for the gradients).
pub const MAX_BATCH_VALUES: usize = 1 << 31;

/// The product of `dims`, or `None` on overflow.
fn product(dims: &[usize]) -> Option<usize> {
    dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

/// What [`Spec::check`] finds out about a valid spec.
struct Checked {
    shapes: Vec<Vec<usize>>,
    params: usize,
    activations: usize,
}

/// A whole model: the per-sample input shape and the layers in order; the last one outputs
/// one energy per sample.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Shape of one input sample: `[D]` for vectors, `[C, H, W]` for images.
    pub input: Vec<usize>,
    /// The layers, applied in order to the input.
    pub layers: Vec<LayerSpec>,
}

impl Spec {
    /// A built-in spec by name: `toy2d`, `anatomy32`, `mnist32` (DESIGN.md §4).
    ///
    /// ```
    /// use ebm::Spec;
    ///
    /// # fn main() -> ebm::Result<()> {
    /// assert_eq!(Spec::builtin("toy2d")?, Spec::mlp(2, 128, 3));
    /// assert_eq!(Spec::builtin("mnist32")?, Spec::convnet(1, 64));
    /// assert_eq!(Spec::builtin("anatomy32")?.input, [3, 32, 32]);
    /// assert!(Spec::builtin("resnet18").is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn builtin(name: &str) -> Result<Spec> {
        match name {
            "toy2d" => Ok(Spec::mlp(2, 128, 3)),
            "anatomy32" => Ok(Spec::convnet(3, 64)),
            "mnist32" => Ok(Spec::convnet(1, 64)),
            other => Err(Error::Spec(format!(
                "unknown built-in spec '{other}' (toy2d, anatomy32, mnist32, or a .json file)"
            ))),
        }
    }

    /// A built-in name or a path to a spec JSON file.
    pub fn from_name_or_file(name: &str) -> Result<Spec> {
        if name.ends_with(".json") || std::path::Path::new(name).is_file() {
            let text = std::fs::read_to_string(name).map_err(|e| Error::io(name, e))?;
            Spec::from_json(&text).map_err(|e| Error::format(name, e.to_string()))
        } else {
            Spec::builtin(name)
        }
    }

    /// The toy MLP: `dim → hidden → … → hidden → 1` with `depth` hidden layers and SiLU.
    ///
    /// ```
    /// use ebm::nn::{LayerSpec, Spec};
    ///
    /// # fn main() -> ebm::Result<()> {
    /// let spec = Spec::mlp(2, 64, 2);
    /// // linear, silu, linear, silu, linear
    /// assert_eq!(spec.layers.len(), 5);
    /// assert_eq!(spec.layers[1], LayerSpec::Silu);
    /// assert_eq!(spec.layers[4], LayerSpec::Linear { inputs: 64, outputs: 1 });
    /// assert_eq!(spec.param_count()?, (2 * 64 + 64) + (64 * 64 + 64) + (64 + 1));
    /// # Ok(())
    /// # }
    /// ```
    pub fn mlp(dim: usize, hidden: usize, depth: usize) -> Spec {
        let mut layers = Vec::new();
        let mut inputs = dim;
        for _ in 0..depth {
            layers.push(LayerSpec::Linear {
                inputs,
                outputs: hidden,
            });
            layers.push(LayerSpec::Silu);
            inputs = hidden;
        }
        layers.push(LayerSpec::Linear { inputs, outputs: 1 });
        Spec {
            input: vec![dim],
            layers,
        }
    }

    /// ebm-anatomy's ConvNet (Nijkamp et al.) on 32×32 images with width `nf`, slope 0.2.
    ///
    /// Four conv + leaky-ReLU blocks (3×3 stride 1, then three 4×4 stride 2, doubling the
    /// channels) take 32×32 down to 4×4, and a last 4×4 convolution gives one energy.
    ///
    /// ```
    /// use ebm::Spec;
    ///
    /// # fn main() -> ebm::Result<()> {
    /// let spec = Spec::convnet(3, 16);
    /// let shapes = spec.shapes()?;
    /// assert_eq!(shapes[1], [16, 32, 32]);
    /// assert_eq!(shapes[7], [128, 4, 4]);
    /// assert_eq!(shapes.last().unwrap(), &[1, 1, 1]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn convnet(channels: usize, nf: usize) -> Spec {
        // Saturating: an absurd `nf` (a typo on the command line) must reach the size check
        // of [`Spec::shapes`], not overflow here.
        let widths = [
            channels,
            nf,
            nf.saturating_mul(2),
            nf.saturating_mul(4),
            nf.saturating_mul(8),
        ];
        let kernels = [(3, 1, 1), (4, 2, 1), (4, 2, 1), (4, 2, 1)];
        let mut layers = Vec::new();
        for (i, (kernel, stride, padding)) in kernels.into_iter().enumerate() {
            layers.push(LayerSpec::Conv2d {
                inputs: widths[i],
                outputs: widths[i + 1],
                kernel,
                stride,
                padding,
            });
            layers.push(LayerSpec::LeakyRelu { slope: 0.2 });
        }
        layers.push(LayerSpec::Conv2d {
            inputs: widths[4],
            outputs: 1,
            kernel: 4,
            stride: 1,
            padding: 0,
        });
        Spec {
            input: vec![channels, 32, 32],
            layers,
        }
    }

    /// Parse and check a spec: unknown layer types or fields, a layer that does not fit its
    /// input and a net that does not end in one energy are errors naming the layer.
    ///
    /// ```
    /// use ebm::nn::{LayerSpec, Spec};
    ///
    /// # fn main() -> ebm::Result<()> {
    /// let spec = Spec::from_json(r#"{"input": [2], "layers": [
    ///     {"type": "linear", "in": 2, "out": 64},
    ///     {"type": "leaky_relu", "slope": 0.2},
    ///     {"type": "linear", "in": 64, "out": 1}
    /// ]}"#)?;
    /// assert_eq!(spec.layers[1], LayerSpec::LeakyRelu { slope: 0.2 });
    /// assert_eq!(spec.shapes()?, [vec![2], vec![64], vec![64], vec![1]]);
    ///
    /// let bad = r#"{"input": [2], "layers": [{"type": "linear", "in": 3, "out": 1}]}"#;
    /// let err = Spec::from_json(bad).unwrap_err().to_string();
    /// assert!(err.contains("layers.0: linear in=3"), "{err}");
    /// # Ok(())
    /// # }
    /// ```
    pub fn from_json(text: &str) -> Result<Spec> {
        let spec: Spec = serde_json::from_str(text).map_err(|e| Error::Spec(e.to_string()))?;
        spec.shapes()?;
        Ok(spec)
    }

    /// Compact JSON, as stored in model files.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a spec always serialises")
    }

    /// Number of f32 values in one input sample.
    pub fn input_len(&self) -> usize {
        self.input.iter().product()
    }

    /// The per-sample shape after each layer (`shapes()[0]` is the input), checking every
    /// layer against its input, that the net ends in one energy per sample, and that its
    /// parameters and one sample's activations stay within [`MAX_VALUES`] (so a typo such as
    /// `"out": 1000000000` is an error here, not an abort when the net allocates).
    pub fn shapes(&self) -> Result<Vec<Vec<usize>>> {
        Ok(self.check()?.shapes)
    }

    /// Number of parameters (weights and biases of every layer).
    pub fn param_count(&self) -> Result<usize> {
        Ok(self.check()?.params)
    }

    /// Values one sample occupies across all activations (the input and every layer's
    /// output): what a batch of one needs in each of the forward and backward workspaces.
    pub fn activation_values(&self) -> Result<usize> {
        Ok(self.check()?.activations)
    }

    /// Check that `batch` samples of this net fit in memory: `batch` × [`activation_values`]
    /// at most [`MAX_BATCH_VALUES`]. `what` names the setting that chose `batch` with its
    /// value (e.g. `--n 5000`), for the error.
    ///
    /// [`activation_values`]: Spec::activation_values
    pub fn check_batch(&self, batch: usize, what: &str) -> Result<()> {
        let per_sample = self.activation_values()?;
        match batch.checked_mul(per_sample) {
            Some(total) if total <= MAX_BATCH_VALUES => Ok(()),
            _ => Err(Error::Option(format!(
                "{what} is too large for this model: {batch} samples × {per_sample} \
                 activation values each is more than {MAX_BATCH_VALUES} values ({} GiB of f32)",
                MAX_BATCH_VALUES >> 28
            ))),
        }
    }

    fn check(&self) -> Result<Checked> {
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
        let mut shape = self.input.clone();
        let mut shapes = vec![shape.clone()];
        let mut params = 0usize;
        let mut activations = input_len;
        for (i, layer) in self.layers.iter().enumerate() {
            let bad = |what: String| Error::Spec(format!("layers.{i}: {what}"));
            let mut layer_params = 0usize;
            shape = match *layer {
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
                    let out = |n: usize| {
                        padding
                            .checked_mul(2)
                            .and_then(|p| p.checked_add(n))
                            .and_then(|padded| padded.checked_sub(kernel))
                            .map(|v| v / stride + 1)
                    };
                    layer_params = product(&[outputs, inputs, kernel, kernel])
                        .and_then(|w| w.checked_add(outputs))
                        .ok_or_else(|| {
                            bad(format!(
                                "conv2d {outputs}×{inputs}×{kernel}×{kernel} overflows"
                            ))
                        })?;
                    match (out(shape[1]), out(shape[2])) {
                        (Some(h), Some(w)) => vec![outputs, h, w],
                        _ => {
                            return Err(bad(format!(
                                "conv2d kernel {kernel} (padding {padding}) does not fit its \
                                 input {shape:?}"
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
                LayerSpec::LeakyRelu { slope } => {
                    if !slope.is_finite() {
                        return Err(bad(format!("leaky_relu slope {slope} is not finite")));
                    }
                    shape
                }
                // The input's product was checked, and no layer's output is larger than
                // MAX_VALUES, so this cannot overflow.
                LayerSpec::Flatten => vec![shape.iter().product()],
                LayerSpec::Silu | LayerSpec::Relu => shape,
            };
            params = limit(
                params.checked_add(layer_params),
                format!("layers.{i}: the parameter count up to this layer"),
            )?;
            let len = limit(
                product(&shape),
                format!("layers.{i}: the output shape {shape:?}"),
            )?;
            activations = limit(
                activations.checked_add(len),
                format!("layers.{i}: one sample's activations up to this layer"),
            )?;
            shapes.push(shape.clone());
        }
        if product(&shape) != Some(1) {
            return Err(Error::Spec(format!(
                "the last layer outputs shape {shape:?}, not one energy per sample"
            )));
        }
        Ok(Checked {
            shapes,
            params,
            activations,
        })
    }

    /// Forward FLOPs per sample (a multiply-add counts 2; only linear and conv layers).
    pub fn forward_flops(&self) -> Result<u64> {
        let shapes = self.shapes()?;
        Ok(self
            .layers
            .iter()
            .zip(shapes.iter().skip(1))
            .map(|(layer, out)| match *layer {
                LayerSpec::Linear { inputs, outputs } => 2 * inputs as u64 * outputs as u64,
                LayerSpec::Conv2d { inputs, kernel, .. } => {
                    2 * out.iter().product::<usize>() as u64 * (inputs * kernel * kernel) as u64
                }
                _ => 0,
            })
            .sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_check_out() {
        for name in ["toy2d", "anatomy32", "mnist32"] {
            Spec::builtin(name).unwrap().shapes().unwrap();
        }
        // DESIGN.md §4: anatomy32 is ≈205 MFLOP forward per image.
        let flops = Spec::builtin("anatomy32").unwrap().forward_flops().unwrap();
        assert!((200e6..210e6).contains(&(flops as f64)), "{flops}");
    }

    #[test]
    fn parses_reference_json() {
        let text = r#"{"input":[2],"layers":[{"type":"linear","in":2,"out":4},{"type":"silu"},
            {"type":"leaky_relu","slope":0.2},{"type":"linear","in":4,"out":1}]}"#;
        let spec = Spec::from_json(text).unwrap();
        assert_eq!(spec.layers[2], LayerSpec::LeakyRelu { slope: 0.2 });
        assert_eq!(Spec::from_json(&spec.to_json()).unwrap(), spec);
    }

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
        ];
        for (text, needle) in cases {
            let err = Spec::from_json(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{err} should mention {needle}");
        }
    }
}
