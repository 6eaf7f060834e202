//! Model specs, version 2: the JSON that `--spec FILE` reads and that model files carry in
//! their `ebm.spec` metadata.
//!
//! A spec is `{"input": [C,H,W] or [D], "layers": [...], "output": {...}}`. The layers form a
//! graph: each takes the previous layer's output unless its `"from"` names another (a layer
//! name, a layer index, or `"input"` / `-1` for the net's input), and `add` sums the outputs
//! it lists. The net's output is the last layer's. A version-1 spec — a plain list of layers
//! — is a valid version-2 spec with the same meaning and the same parameter names.
//!
//! Per layer: `"type"`; `"name"`, the parameter prefix (`{name}.weight`, `{name}.bias`),
//! `layers.{i}` when omitted; `"from"`; and `"spectral_norm": true` on `linear`/`conv2d`.
//! Types: `linear` (`in`, `out`), `conv2d` (`in`, `out`, `kernel`, `stride` = 1,
//! `padding` = 0), `conv_transpose2d` (the same plus `output_padding` = 0; weight
//! `[in, out, k, k]` as in PyTorch), `leaky_relu` (`slope` = 0.01), `silu`, `relu`, `tanh`,
//! `sigmoid`, `softplus`, `square` (x²), `avg_pool` (`kernel`), `global_avg_pool`, `upsample`
//! (`factor`, nearest), `flatten`, `reshape` (`shape`), `add`.
//!
//! `"output"` says what the last layer's output means ([`Output`]): one energy per sample
//! (the default), C class logits whose negative logsumexp is the energy (JEM), or a tensor
//! (a generator, not an energy).
//!
//! ```
//! use ebm::nn::{LayerSpec, Output, Spec};
//!
//! # fn main() -> ebm::Result<()> {
//! // A residual MLP: the skip adds fc1's output to fc2's.
//! let spec = Spec::from_json(r#"{
//!     "input": [2],
//!     "layers": [
//!         {"type": "linear", "name": "fc1", "in": 2, "out": 16},
//!         {"type": "tanh"},
//!         {"type": "linear", "name": "fc2", "in": 16, "out": 16},
//!         {"type": "add", "from": ["fc1", "fc2"]},
//!         {"type": "linear", "name": "out", "in": 16, "out": 1}
//!     ]
//! }"#)?;
//! assert_eq!(spec.layers[3].op, LayerSpec::Add);
//! assert_eq!(spec.plan()?.inputs[3], [1, 3], "add reads fc1 (node 1) and fc2 (node 3)");
//! assert_eq!(spec.output, Output::Scalar);
//! // What a model file stores, and reads back unchanged.
//! assert_eq!(Spec::from_json(&spec.to_json())?, spec);
//! # Ok(())
//! # }
//! ```

use serde::de::Error as _;
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

pub use super::check::{Plan, MAX_BATCH_VALUES, MAX_VALUES};
use crate::{Error, Result};

/// What one layer computes (its `"type"` and that type's fields).
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
    /// Transposed 2D convolution (PyTorch's `ConvTranspose2d`): each input pixel scatters a
    /// k×k patch, w `[in, out, k, k]`; the output side is (H − 1)·s − 2p + k + output_padding.
    ConvTranspose2d {
        /// Input channels (`"in"` in JSON).
        #[serde(rename = "in")]
        inputs: usize,
        /// Output channels (`"out"` in JSON).
        #[serde(rename = "out")]
        outputs: usize,
        /// Side k of the square filter.
        kernel: usize,
        /// Upsampling step; 1 when omitted.
        #[serde(default = "one")]
        stride: usize,
        /// Pixels cropped from each side of the full output; 0 when omitted.
        #[serde(default)]
        padding: usize,
        /// Extra rows and columns on one side of the output (below `stride`); 0 when omitted.
        #[serde(default)]
        output_padding: usize,
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
    /// tanh x, elementwise.
    Tanh,
    /// σ(x) = 1 / (1 + e^−x), elementwise.
    Sigmoid,
    /// ln(1 + eˣ), elementwise (PyTorch's `Softplus()`: x itself above 20).
    Softplus,
    /// x², elementwise (PyTorch's `torch.square`).
    Square,
    /// The mean of each `kernel × kernel` window, stride `kernel`, no padding (PyTorch's
    /// `AvgPool2d(k)`); rows and columns past the last whole window are dropped.
    AvgPool {
        /// Side and stride of the window.
        kernel: usize,
    },
    /// `[C, H, W]` → `[C]`: the mean over each channel's pixels.
    GlobalAvgPool,
    /// Nearest-neighbour upsampling of `[C, H, W]` to `[C, H·f, W·f]`.
    Upsample {
        /// The integer factor f.
        factor: usize,
    },
    /// `[C, H, W]` → `[C·H·W]`, so that a linear layer can follow a convolution; the values
    /// stay where they are.
    Flatten,
    /// Any shape → `shape` with the same number of values (row-major, values unmoved).
    Reshape {
        /// The new per-sample shape.
        shape: Vec<usize>,
    },
    /// The sum of the two or more outputs its `from` lists (shapes must match): a residual
    /// skip.
    Add,
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
    ConvTranspose2d {
        #[serde(rename = "in")]
        inputs: usize,
        #[serde(rename = "out")]
        outputs: usize,
        kernel: usize,
        #[serde(default = "one")]
        stride: usize,
        #[serde(default)]
        padding: usize,
        #[serde(default)]
        output_padding: usize,
    },
    LeakyRelu {
        #[serde(default = "default_slope")]
        slope: f32,
    },
    Silu {},
    Relu {},
    Tanh {},
    Sigmoid {},
    Softplus {},
    Square {},
    AvgPool {
        kernel: usize,
    },
    GlobalAvgPool {},
    Upsample {
        factor: usize,
    },
    Flatten {},
    Reshape {
        shape: Vec<usize>,
    },
    Add {},
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
            LayerJson::ConvTranspose2d {
                inputs,
                outputs,
                kernel,
                stride,
                padding,
                output_padding,
            } => LayerSpec::ConvTranspose2d {
                inputs,
                outputs,
                kernel,
                stride,
                padding,
                output_padding,
            },
            LayerJson::LeakyRelu { slope } => LayerSpec::LeakyRelu { slope },
            LayerJson::Silu {} => LayerSpec::Silu,
            LayerJson::Relu {} => LayerSpec::Relu,
            LayerJson::Tanh {} => LayerSpec::Tanh,
            LayerJson::Sigmoid {} => LayerSpec::Sigmoid,
            LayerJson::Softplus {} => LayerSpec::Softplus,
            LayerJson::Square {} => LayerSpec::Square,
            LayerJson::AvgPool { kernel } => LayerSpec::AvgPool { kernel },
            LayerJson::GlobalAvgPool {} => LayerSpec::GlobalAvgPool,
            LayerJson::Upsample { factor } => LayerSpec::Upsample { factor },
            LayerJson::Flatten {} => LayerSpec::Flatten,
            LayerJson::Reshape { shape } => LayerSpec::Reshape { shape },
            LayerJson::Add {} => LayerSpec::Add,
        }
    }
}

fn one() -> usize {
    1
}

fn default_slope() -> f32 {
    0.01
}

impl LayerSpec {
    /// Whether the layer has a weight and a bias.
    pub fn has_params(&self) -> bool {
        matches!(
            self,
            LayerSpec::Linear { .. } | LayerSpec::Conv2d { .. } | LayerSpec::ConvTranspose2d { .. }
        )
    }

    /// The JSON `"type"` name, for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            LayerSpec::Linear { .. } => "linear",
            LayerSpec::Conv2d { .. } => "conv2d",
            LayerSpec::ConvTranspose2d { .. } => "conv_transpose2d",
            LayerSpec::LeakyRelu { .. } => "leaky_relu",
            LayerSpec::Silu => "silu",
            LayerSpec::Relu => "relu",
            LayerSpec::Tanh => "tanh",
            LayerSpec::Sigmoid => "sigmoid",
            LayerSpec::Softplus => "softplus",
            LayerSpec::Square => "square",
            LayerSpec::AvgPool { .. } => "avg_pool",
            LayerSpec::GlobalAvgPool => "global_avg_pool",
            LayerSpec::Upsample { .. } => "upsample",
            LayerSpec::Flatten => "flatten",
            LayerSpec::Reshape { .. } => "reshape",
            LayerSpec::Add => "add",
        }
    }
}

/// Where a layer reads its input: one entry of its `"from"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// The net's input (`"input"` or `-1` in JSON).
    Input,
    /// The output of the layer at this index in `layers` (an earlier one).
    Index(usize),
    /// The output of the (earlier) layer with this name, or default name `layers.{i}`.
    Name(String),
}

impl Source {
    fn from_json(v: &Value) -> std::result::Result<Source, String> {
        match v {
            Value::String(s) if s == "input" => Ok(Source::Input),
            Value::String(s) => Ok(Source::Name(s.clone())),
            Value::Number(n) if n.as_i64() == Some(-1) => Ok(Source::Input),
            Value::Number(n) => n
                .as_u64()
                .and_then(|i| usize::try_from(i).ok())
                .map(Source::Index)
                .ok_or_else(|| format!("from {n}: expected a layer index ≥ 0, -1 or a name")),
            other => Err(format!(
                "from {other}: expected a layer name, a layer index, -1 or \"input\""
            )),
        }
    }

    fn to_json(&self) -> Value {
        match self {
            Source::Input => Value::String("input".into()),
            Source::Index(i) => Value::from(*i),
            Source::Name(n) => Value::String(n.clone()),
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Input => write!(f, "input"),
            Source::Index(i) => write!(f, "{i}"),
            Source::Name(n) => write!(f, "'{n}'"),
        }
    }
}

/// One entry of `layers`: what it computes and how it is wired.
#[derive(Clone, Debug, PartialEq)]
pub struct Layer {
    /// The computation (`"type"` and its fields).
    pub op: LayerSpec,
    /// The parameter prefix and the name other layers refer to it by; `layers.{i}` if `None`.
    pub name: Option<String>,
    /// Its inputs; empty means the previous entry's output (the net's input for entry 0).
    /// `add` lists two or more.
    pub from: Vec<Source>,
    /// Divide the weight by its largest singular value (linear and conv2d only): stored as
    /// `{name}.weight_orig` with the power-iteration vectors `{name}.weight_u`, `.weight_v`.
    pub spectral_norm: bool,
}

impl From<LayerSpec> for Layer {
    /// A layer of a sequential net: default name, input from the previous entry.
    fn from(op: LayerSpec) -> Self {
        Layer {
            op,
            name: None,
            from: Vec::new(),
            spectral_norm: false,
        }
    }
}

impl Layer {
    /// A named layer reading from the previous entry.
    pub fn named(op: LayerSpec, name: impl Into<String>) -> Self {
        Layer {
            name: Some(name.into()),
            ..op.into()
        }
    }

    /// This layer reading from `from` instead of the previous entry.
    pub fn reading(mut self, from: impl IntoIterator<Item = Source>) -> Self {
        self.from = from.into_iter().collect();
        self
    }
}

impl Serialize for Layer {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut v = serde_json::to_value(&self.op).map_err(S::Error::custom)?;
        let map = v
            .as_object_mut()
            .ok_or_else(|| S::Error::custom("a layer serialises to an object"))?;
        if let Some(name) = &self.name {
            map.insert("name".into(), Value::String(name.clone()));
        }
        if self.op == LayerSpec::Add || self.from.len() > 1 {
            let list = self.from.iter().map(Source::to_json).collect();
            map.insert("from".into(), Value::Array(list));
        } else if let Some(one) = self.from.first() {
            map.insert("from".into(), one.to_json());
        }
        if self.spectral_norm {
            map.insert("spectral_norm".into(), Value::Bool(true));
        }
        v.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Layer {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let mut map = Map::deserialize(d)?;
        let name = match map.remove("name") {
            None => None,
            Some(Value::String(s)) if !s.is_empty() => Some(s),
            Some(other) => {
                return Err(D::Error::custom(format!(
                    "name {other}: expected a non-empty string"
                )))
            }
        };
        let from = match map.remove("from") {
            None => Vec::new(),
            Some(Value::Array(list)) => list
                .iter()
                .map(Source::from_json)
                .collect::<std::result::Result<_, _>>()
                .map_err(D::Error::custom)?,
            Some(one) => vec![Source::from_json(&one).map_err(D::Error::custom)?],
        };
        let spectral_norm = match map.remove("spectral_norm") {
            None => false,
            Some(Value::Bool(b)) => b,
            Some(other) => {
                return Err(D::Error::custom(format!(
                    "spectral_norm {other}: expected true or false"
                )))
            }
        };
        let op = LayerSpec::deserialize(Value::Object(map)).map_err(D::Error::custom)?;
        Ok(Layer {
            op,
            name,
            from,
            spectral_norm,
        })
    }
}

/// What the last layer's output is (top-level `"output"`).
#[derive(Clone, Debug, PartialEq, Default)]
pub enum Output {
    /// `{"energy": "scalar"}` (the default): one energy per sample, E(x).
    #[default]
    Scalar,
    /// `{"energy": "neg_logsumexp", "classes": C}`: C logits f(x); E(x) = −logsumexp f(x),
    /// E(x, y) = −f(x)\[y\], p(y|x) = softmax f(x) (JEM).
    NegLogSumExp {
        /// C, the number of classes (logits per sample).
        classes: usize,
    },
    /// `{"tensor": [shape]}`: not an energy — a generator or decoder mapping its input to a
    /// tensor of this per-sample shape.
    Tensor(Vec<usize>),
}

impl Output {
    fn is_scalar(&self) -> bool {
        *self == Output::Scalar
    }

    /// Whether the net defines an energy (scalar or class-logit heads).
    pub fn is_energy(&self) -> bool {
        !matches!(self, Output::Tensor(_))
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct OutputJson {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    energy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    classes: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tensor: Option<Vec<usize>>,
}

impl Serialize for Output {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let json = match self {
            Output::Scalar => OutputJson {
                energy: Some("scalar".into()),
                classes: None,
                tensor: None,
            },
            Output::NegLogSumExp { classes } => OutputJson {
                energy: Some("neg_logsumexp".into()),
                classes: Some(*classes),
                tensor: None,
            },
            Output::Tensor(shape) => OutputJson {
                energy: None,
                classes: None,
                tensor: Some(shape.clone()),
            },
        };
        json.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Output {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let j = OutputJson::deserialize(d)?;
        match (j.energy.as_deref(), j.classes, j.tensor) {
            (Some("scalar"), None, None) => Ok(Output::Scalar),
            (Some("neg_logsumexp"), Some(classes), None) => Ok(Output::NegLogSumExp { classes }),
            (Some("neg_logsumexp"), None, None) => Err(D::Error::custom(
                "output neg_logsumexp needs \"classes\": the number of logits",
            )),
            (None, None, Some(shape)) => Ok(Output::Tensor(shape)),
            _ => Err(D::Error::custom(
                "output: expected {\"energy\": \"scalar\"}, {\"energy\": \"neg_logsumexp\", \
                 \"classes\": C} or {\"tensor\": [shape]}",
            )),
        }
    }
}

/// A whole model: the per-sample input shape, the layers, and what the output means.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Shape of one input sample: `[D]` for vectors, `[C, H, W]` for images.
    pub input: Vec<usize>,
    /// The layers, in an order where every layer comes after the ones it reads.
    pub layers: Vec<Layer>,
    /// What the last layer's output means; one energy per sample by default.
    #[serde(default, skip_serializing_if = "Output::is_scalar")]
    pub output: Output,
}

impl Spec {
    /// A sequential net (each layer reads the previous one) with one energy per sample: a
    /// version-1 spec.
    ///
    /// ```
    /// use ebm::nn::{LayerSpec, Spec};
    ///
    /// let spec = Spec::sequential(vec![2], vec![
    ///     LayerSpec::Linear { inputs: 2, outputs: 8 },
    ///     LayerSpec::Relu,
    ///     LayerSpec::Linear { inputs: 8, outputs: 1 },
    /// ]);
    /// assert_eq!(spec.to_json(), r#"{"input":[2],"layers":[{"type":"linear","in":2,"out":8},{"type":"relu"},{"type":"linear","in":8,"out":1}]}"#);
    /// ```
    pub fn sequential(input: Vec<usize>, layers: Vec<LayerSpec>) -> Spec {
        Spec {
            input,
            layers: layers.into_iter().map(Layer::from).collect(),
            output: Output::Scalar,
        }
    }

    /// A built-in name or a path to a spec JSON file.
    pub fn from_name_or_file(name: &str) -> Result<Spec> {
        Spec::from_name_or_file_with_width(name, 64)
    }

    /// [`from_name_or_file`](Self::from_name_or_file) with the built-in image nets at width
    /// `nf` (the `--nf` of the CLI).
    pub fn from_name_or_file_with_width(name: &str, nf: usize) -> Result<Spec> {
        if name.ends_with(".json") || std::path::Path::new(name).is_file() {
            let text = std::fs::read_to_string(name).map_err(|e| Error::io(name, e))?;
            Spec::from_json(&text).map_err(|e| Error::format(name, e.to_string()))
        } else {
            Spec::builtin_with_width(name, nf)
        }
    }

    /// Parse and check a spec: unknown layer types or fields, a layer that does not fit its
    /// input, a dangling or forward `from` (a cycle), an `add` of mismatched shapes and a last
    /// layer that does not fit the `output` are errors naming the layer — all found before
    /// anything is allocated.
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
    /// assert_eq!(spec.layers[1].op, LayerSpec::LeakyRelu { slope: 0.2 });
    /// assert_eq!(spec.shapes()?, [vec![2], vec![64], vec![64], vec![1]]);
    ///
    /// let bad = r#"{"input": [2], "layers": [{"type": "linear", "in": 3, "out": 1}]}"#;
    /// let err = Spec::from_json(bad).unwrap_err().to_string();
    /// assert!(err.contains("layers.0: linear in=3"), "{err}");
    /// let dangling = r#"{"input": [2], "layers": [{"type": "linear", "in": 2, "out": 1, "from": "fc0"}]}"#;
    /// let err = Spec::from_json(dangling).unwrap_err().to_string();
    /// assert!(err.contains("layers.0: from 'fc0'"), "{err}");
    /// # Ok(())
    /// # }
    /// ```
    pub fn from_json(text: &str) -> Result<Spec> {
        let spec: Spec = serde_json::from_str(text).map_err(|e| Error::Spec(e.to_string()))?;
        spec.plan()?;
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

    /// The name of layer `i`: its `"name"`, or `layers.{i}`.
    pub fn layer_name(&self, i: usize) -> String {
        self.layers[i]
            .name
            .clone()
            .unwrap_or_else(|| format!("layers.{i}"))
    }

    /// Whether every layer reads the one before it (a version-1 net).
    pub fn is_sequential(&self) -> Result<bool> {
        Ok(self.plan()?.is_sequential())
    }

    /// The per-sample shape of the input (`shapes()[0]`) and of each layer's output
    /// (`shapes()[i + 1]`), checking the whole spec ([`Spec::plan`]).
    pub fn shapes(&self) -> Result<Vec<Vec<usize>>> {
        Ok(self.plan()?.shapes)
    }

    /// Number of parameters (weights and biases of every layer; spectral norm's u and v
    /// vectors included).
    pub fn param_count(&self) -> Result<usize> {
        Ok(self.plan()?.params)
    }

    /// Values one sample occupies across all activations (the input and every layer's
    /// output): what a batch of one needs in each of the forward and backward workspaces.
    pub fn activation_values(&self) -> Result<usize> {
        Ok(self.plan()?.activations)
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

    /// Forward FLOPs per sample (a multiply-add counts 2; only linear and (transposed)
    /// convolution layers).
    pub fn forward_flops(&self) -> Result<u64> {
        let plan = self.plan()?;
        Ok(self
            .layers
            .iter()
            .enumerate()
            .map(|(i, layer)| {
                let out: u64 = plan.shapes[i + 1].iter().product::<usize>() as u64;
                let input = &plan.shapes[plan.inputs[i][0]];
                match layer.op {
                    LayerSpec::Linear { inputs, outputs } => 2 * inputs as u64 * outputs as u64,
                    LayerSpec::Conv2d { inputs, kernel, .. } => {
                        2 * out * (inputs * kernel * kernel) as u64
                    }
                    LayerSpec::ConvTranspose2d {
                        outputs, kernel, ..
                    } => {
                        let in_values: u64 = input.iter().product::<usize>() as u64;
                        2 * in_values * (outputs * kernel * kernel) as u64
                    }
                    _ => 0,
                }
            })
            .sum())
    }
}
