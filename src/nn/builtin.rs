//! The built-in specs (docs/ARCHITECTURE.md, Reference workloads): `toy2d`, ebm-anatomy's ConvNet (`anatomy32`,
//! `mnist32`) and IGEBM-style residual nets (`resnet32`, `mnist-resnet32`).

use super::spec::{Layer, LayerSpec, Output, Source, Spec};
use crate::{Error, Result};

/// The names [`Spec::builtin`] knows.
pub const BUILTIN_NAMES: [&str; 5] = [
    "toy2d",
    "anatomy32",
    "mnist32",
    "resnet32",
    "mnist-resnet32",
];

impl Spec {
    /// A built-in spec by name: `toy2d`, `anatomy32`, `mnist32`, `resnet32`,
    /// `mnist-resnet32` (the image nets at their reference width n_f = 64).
    ///
    /// ```
    /// use ebm::Spec;
    ///
    /// # fn main() -> ebm::Result<()> {
    /// assert_eq!(Spec::builtin("toy2d")?, Spec::mlp(2, 128, 3));
    /// assert_eq!(Spec::builtin("mnist32")?, Spec::convnet(1, 64));
    /// assert_eq!(Spec::builtin("anatomy32")?.input, [3, 32, 32]);
    /// assert_eq!(Spec::builtin("resnet32")?, Spec::resnet(3, 64));
    /// assert!(Spec::builtin("resnet18").is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn builtin(name: &str) -> Result<Spec> {
        Spec::builtin_with_width(name, 64)
    }

    /// A built-in spec with the image nets at width `nf` (`toy2d` ignores it).
    pub fn builtin_with_width(name: &str, nf: usize) -> Result<Spec> {
        match name {
            "toy2d" => Ok(Spec::mlp(2, 128, 3)),
            "anatomy32" => Ok(Spec::convnet(3, nf)),
            "mnist32" => Ok(Spec::convnet(1, nf)),
            "resnet32" => Ok(Spec::resnet(3, nf)),
            "mnist-resnet32" => Ok(Spec::resnet(1, nf)),
            other => Err(Error::Spec(format!(
                "unknown built-in spec '{other}' ({}, or a .json file)",
                BUILTIN_NAMES.join(", ")
            ))),
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
    /// assert_eq!(spec.layers[1].op, LayerSpec::Silu);
    /// assert_eq!(spec.layers[4].op, LayerSpec::Linear { inputs: 64, outputs: 1 });
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
        Spec::sequential(vec![dim], layers)
    }

    /// This net as a classifier energy with `classes` logits (JEM, conditional EBMs): the last
    /// layer — a linear or conv2d layer with one output, as every built-in energy ends — gets
    /// `classes` outputs (a conv2d one is followed by a flatten), and the head becomes
    /// `neg_logsumexp`. A spec that already has that head is returned as it is if its class
    /// count matches.
    ///
    /// ```
    /// use ebm::nn::Output;
    /// use ebm::Spec;
    ///
    /// # fn main() -> ebm::Result<()> {
    /// let spec = Spec::mlp(2, 32, 2).with_classes(8)?;
    /// assert_eq!(spec.output, Output::NegLogSumExp { classes: 8 });
    /// assert_eq!(spec.shapes()?.last().unwrap(), &[8]);
    /// let digits = Spec::builtin("mnist32")?.with_classes(10)?;
    /// assert_eq!(digits.shapes()?.last().unwrap(), &[10]);
    /// assert!(Spec::mlp(2, 32, 2).with_classes(0).is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_classes(mut self, classes: usize) -> Result<Spec> {
        if classes == 0 {
            return Err(Error::Spec("a classifier needs at least one class".into()));
        }
        match self.output {
            Output::NegLogSumExp { classes: c } if c == classes => return Ok(self),
            Output::Scalar => {}
            other => {
                return Err(Error::Spec(format!(
                    "this spec's output is {other:?}; a class head for {classes} classes needs \
                     a scalar energy net to adapt, or a neg_logsumexp head with {classes} classes"
                )))
            }
        }
        // The last layer with parameters: behind a trailing flatten or reshape, if any.
        let trailing = self
            .layers
            .iter()
            .rev()
            .take_while(|l| matches!(l.op, LayerSpec::Flatten | LayerSpec::Reshape { .. }))
            .count();
        if trailing > 0 && self.layers.len() > trailing {
            let keep = self.layers.len() - trailing;
            self.layers.truncate(keep);
        }
        let last = self.layers.len().checked_sub(1);
        match last.map(|i| &mut self.layers[i].op) {
            Some(LayerSpec::Linear { outputs, .. }) if *outputs == 1 => *outputs = classes,
            Some(LayerSpec::Conv2d { outputs, .. }) if *outputs == 1 => {
                *outputs = classes;
                self.layers.push(Layer::from(LayerSpec::Flatten));
            }
            _ => {
                return Err(Error::Spec(format!(
                    "cannot give this spec {classes} class logits: its last layer is not a \
                     linear or conv2d layer with one output"
                )))
            }
        }
        self.output = Output::NegLogSumExp { classes };
        self.plan()?;
        Ok(self)
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
        // of [`Spec::plan`], not overflow here.
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
        Spec::sequential(vec![channels, 32, 32], layers)
    }

    /// An IGEBM-style residual energy net on `channels`×32×32 images with width `nf`:
    /// a 3×3 stem conv, three stages of two residual blocks (conv3×3 – LeakyReLU(0.2) –
    /// conv3×3, plus the skip) at widths n_f, 2n_f, 4n_f with a 2×2 average pool and a 1×1
    /// conv between stages, LeakyReLU, global average pool, and a linear head to one energy.
    /// Layer names follow a PyTorch module (`stem`, `stages.1.proj`,
    /// `stages.0.blocks.1.conv2`, `head`), so its state_dict loads unchanged.
    ///
    /// ```
    /// use ebm::Spec;
    ///
    /// # fn main() -> ebm::Result<()> {
    /// let spec = Spec::resnet(3, 8);
    /// let shapes = spec.shapes()?;
    /// assert_eq!(shapes.last().unwrap(), &[1]);
    /// assert_eq!(spec.layer_name(1), "stages.0.blocks.0.conv1");
    /// assert!(!spec.is_sequential()?, "the skips read earlier layers");
    /// # Ok(())
    /// # }
    /// ```
    pub fn resnet(channels: usize, nf: usize) -> Spec {
        Spec::resnet_with_head(channels, nf, Output::Scalar)
    }

    /// [`Spec::resnet`] with another head: `Output::NegLogSumExp { classes }` gives a JEM
    /// classifier energy (the head outputs C logits).
    pub fn resnet_with_head(channels: usize, nf: usize, output: Output) -> Spec {
        let conv = |inputs, outputs, kernel, padding| LayerSpec::Conv2d {
            inputs,
            outputs,
            kernel,
            stride: 1,
            padding,
        };
        let mut layers = vec![Layer::named(conv(channels, nf, 3, 1), "stem")];
        let mut width = nf;
        let mut block_input = "stem".to_string();
        for stage in 0..3 {
            if stage > 0 {
                let wider = width.saturating_mul(2);
                layers.push(Layer::named(
                    LayerSpec::AvgPool { kernel: 2 },
                    format!("stages.{stage}.pool"),
                ));
                let proj = format!("stages.{stage}.proj");
                layers.push(Layer::named(conv(width, wider, 1, 0), proj.clone()));
                width = wider;
                block_input = proj;
            }
            for block in 0..2 {
                let at = format!("stages.{stage}.blocks.{block}");
                layers.push(Layer::named(
                    conv(width, width, 3, 1),
                    format!("{at}.conv1"),
                ));
                layers.push(Layer::named(
                    LayerSpec::LeakyRelu { slope: 0.2 },
                    format!("{at}.act"),
                ));
                layers.push(Layer::named(
                    conv(width, width, 3, 1),
                    format!("{at}.conv2"),
                ));
                let sum = format!("{at}.add");
                layers.push(Layer::named(LayerSpec::Add, sum.clone()).reading([
                    Source::Name(block_input.clone()),
                    Source::Name(format!("{at}.conv2")),
                ]));
                block_input = sum;
            }
        }
        layers.push(Layer::named(LayerSpec::LeakyRelu { slope: 0.2 }, "act"));
        layers.push(Layer::named(LayerSpec::GlobalAvgPool, "pool"));
        let outputs = match output {
            Output::NegLogSumExp { classes } => classes,
            _ => 1,
        };
        layers.push(Layer::named(
            LayerSpec::Linear {
                inputs: width,
                outputs,
            },
            "head",
        ));
        Spec {
            input: vec![channels, 32, 32],
            layers,
            output,
        }
    }
}

/// The generators and latent priors built in for the families that pair an energy with a
/// generator (cooperative learning, the latent-space prior model).
impl Spec {
    /// An MLP generator `latent → hidden → hidden → out` with SiLU and a linear output (toy
    /// data live on an unbounded plane): `"output": {"tensor": [out]}`.
    ///
    /// ```
    /// use ebm::nn::{Output, Spec};
    ///
    /// # fn main() -> ebm::Result<()> {
    /// let spec = Spec::generator_mlp(2, 64, 2);
    /// assert_eq!(spec.output, Output::Tensor(vec![2]));
    /// assert_eq!(spec.shapes()?.last().unwrap(), &[2]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn generator_mlp(latent: usize, hidden: usize, out: usize) -> Spec {
        let layers = vec![
            LayerSpec::Linear {
                inputs: latent,
                outputs: hidden,
            },
            LayerSpec::Silu,
            LayerSpec::Linear {
                inputs: hidden,
                outputs: hidden,
            },
            LayerSpec::Silu,
            LayerSpec::Linear {
                inputs: hidden,
                outputs: out,
            },
        ];
        let mut spec = Spec::sequential(vec![latent], layers);
        spec.output = Output::Tensor(vec![out]);
        spec
    }

    /// A DCGAN-style generator for `channels`×32×32 images in [−1, 1] (the image data's
    /// range): linear `latent → 4n_f·4·4`, reshape, LeakyReLU(0.2), then three
    /// `conv_transpose2d` (kernel 4, stride 2, padding 1: 4 → 8 → 16 → 32) at widths 2n_f, n_f
    /// and `channels`, LeakyReLU between them and tanh at the end.
    ///
    /// ```
    /// use ebm::nn::{Output, Spec};
    ///
    /// # fn main() -> ebm::Result<()> {
    /// let spec = Spec::generator32(100, 1, 16);
    /// assert_eq!(spec.output, Output::Tensor(vec![1, 32, 32]));
    /// assert_eq!(spec.shapes()?.last().unwrap(), &[1, 32, 32]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn generator32(latent: usize, channels: usize, nf: usize) -> Spec {
        let (w4, w2) = (nf.saturating_mul(4), nf.saturating_mul(2));
        let up = |inputs, outputs| LayerSpec::ConvTranspose2d {
            inputs,
            outputs,
            kernel: 4,
            stride: 2,
            padding: 1,
            output_padding: 0,
        };
        let layers = vec![
            LayerSpec::Linear {
                inputs: latent,
                outputs: w4.saturating_mul(16),
            },
            LayerSpec::Reshape {
                shape: vec![w4, 4, 4],
            },
            LayerSpec::LeakyRelu { slope: 0.2 },
            up(w4, w2),
            LayerSpec::LeakyRelu { slope: 0.2 },
            up(w2, nf),
            LayerSpec::LeakyRelu { slope: 0.2 },
            up(nf, channels),
            LayerSpec::Tanh,
        ];
        let mut spec = Spec::sequential(vec![latent], layers);
        spec.output = Output::Tensor(vec![channels, 32, 32]);
        spec
    }

    /// The latent-space prior's energy E(z) (Pang et al. 2020): an MLP
    /// `latent → hidden → hidden → 1` with LeakyReLU(0.2).
    ///
    /// ```
    /// use ebm::Spec;
    ///
    /// # fn main() -> ebm::Result<()> {
    /// assert_eq!(Spec::latent_prior(100, 200).shapes()?.last().unwrap(), &[1]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn latent_prior(latent: usize, hidden: usize) -> Spec {
        let act = LayerSpec::LeakyRelu { slope: 0.2 };
        let layers = vec![
            LayerSpec::Linear {
                inputs: latent,
                outputs: hidden,
            },
            act.clone(),
            LayerSpec::Linear {
                inputs: hidden,
                outputs: hidden,
            },
            act,
            LayerSpec::Linear {
                inputs: hidden,
                outputs: 1,
            },
        ];
        Spec::sequential(vec![latent], layers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_check_out() {
        for name in BUILTIN_NAMES {
            Spec::builtin(name).unwrap().shapes().unwrap();
        }
        // docs/ARCHITECTURE.md, Reference workloads: anatomy32 is ≈205 MFLOP forward per image.
        let flops = Spec::builtin("anatomy32").unwrap().forward_flops().unwrap();
        assert!((200e6..210e6).contains(&(flops as f64)), "{flops}");
    }

    #[test]
    fn resnet_matches_the_reference_layout() {
        let spec = Spec::resnet(1, 8);
        let plan = spec.plan().unwrap();
        // stem, 3 stages × 2 blocks × 4 entries, 2 × (pool + proj), act, pool, head
        assert_eq!(spec.layers.len(), 1 + 24 + 4 + 3);
        assert_eq!(plan.shapes.last().unwrap(), &[1]);
        // The widest stage runs at 8×8 with 4·n_f channels, then the global pool.
        let pool = spec.layers.len() - 2;
        assert_eq!(plan.shapes[pool], [32, 8, 8]);
        // Every add sums its block's input and conv2.
        let add = spec
            .layers
            .iter()
            .position(|l| l.op == LayerSpec::Add)
            .unwrap();
        assert_eq!(plan.inputs[add], [1, add]);
        let json = spec.to_json();
        assert!(json.starts_with(r#"{"input":[1,32,32],"layers":[{"type":"conv2d","in":1,"out":8,"kernel":3,"stride":1,"padding":1,"name":"stem"}"#), "{json}");
    }

    #[test]
    fn parses_reference_json() {
        let text = r#"{"input":[2],"layers":[{"type":"linear","in":2,"out":4},{"type":"silu"},
            {"type":"leaky_relu","slope":0.2},{"type":"linear","in":4,"out":1}]}"#;
        let spec = Spec::from_json(text).unwrap();
        assert_eq!(spec.layers[2].op, LayerSpec::LeakyRelu { slope: 0.2 });
        assert_eq!(Spec::from_json(&spec.to_json()).unwrap(), spec);
    }
}
