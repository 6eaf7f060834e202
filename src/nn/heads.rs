//! Energy heads: how a net's output becomes an energy, forward and backward, on the device.
//!
//! A scalar head needs nothing (the output is E). A class-logit head (JEM, Grathwohl et al.
//! 2019) reads C logits f(x) per sample:
//! - E(x) = −logsumexp_y f(x)\[y\], whose gradient is dE/df = −softmax f(x);
//! - E(x, y) = −f(x)\[y\], whose gradient is −1 at y and 0 elsewhere;
//! - p(y|x) = softmax f(x).
//!
//! ```
//! use ebm::{Backend, CpuBackend, EnergyNet, Spec};
//!
//! # fn main() -> ebm::Result<()> {
//! let b = CpuBackend::new();
//! // Three logits per sample: a linear layer on a 2D input.
//! let spec = Spec::from_json(r#"{"input": [2], "layers": [{"type": "linear", "in": 2, "out": 3}],
//!     "output": {"energy": "neg_logsumexp", "classes": 3}}"#)?;
//! let mut net = EnergyNet::new(&b, &spec, 0)?;
//! let x = b.upload(&[0.5, -1.0])?;
//! let e = b.read(net.forward(&b, &x, 1)?)?[0];
//! let f = b.read(net.logits(1)?)?;
//! let lse = f.iter().map(|v| v.exp()).sum::<f32>().ln();
//! assert!((e + lse).abs() < 1e-6, "E(x) = −logsumexp f(x)");
//! let p = b.read(net.probabilities(&b, 1)?)?;
//! assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
//! // E(x, y = 2) = −f(x)[2].
//! let e2 = b.read(net.forward_labelled(&b, &x, &b.upload(&[2.0])?, 1)?)?[0];
//! assert_eq!(e2, -f[2]);
//! # Ok(())
//! # }
//! ```

use crate::backend::Backend;
use crate::Result;

/// Device buffers of a class-logit head for one batch size.
pub(crate) struct Head<B: Backend> {
    batch: usize,
    classes: usize,
    /// The energies of the last forward pass, `[batch]`.
    pub energies: B::Tensor,
    /// softmax f(x), `[batch, C]`: for [`probabilities`](Self::probabilities) and the
    /// backward pass, computed when they ask.
    probs: B::Tensor,
    /// dE/df for the backward pass, `[batch, C]`.
    d_logits: B::Tensor,
    /// The labels of the last labelled forward pass, `[batch]`.
    labels: B::Tensor,
    /// Whether the last forward pass was E(x, y) (else E(x)).
    labelled: bool,
}

impl<B: Backend> Head<B> {
    pub fn new(b: &B, batch: usize, classes: usize) -> Result<Self> {
        Ok(Head {
            batch,
            classes,
            energies: b.zeros(batch)?,
            probs: b.zeros(batch * classes)?,
            d_logits: b.zeros(batch * classes)?,
            labels: b.zeros(batch)?,
            labelled: false,
        })
    }

    /// E(x) = −logsumexp f(x), or E(x, y) = −f(x)\[y\] with `labels` (kept for the backward
    /// pass), into `energies`.
    pub fn energy(&mut self, b: &B, logits: &B::Tensor, labels: Option<&B::Tensor>) {
        let (rows, cols) = (self.batch, self.classes);
        match labels {
            None => b.row_logsumexp(rows, cols, logits, &mut self.energies),
            Some(labels) => {
                b.gather_cols(rows, cols, logits, labels, &mut self.energies);
                b.copy(labels, 0, &mut self.labels, 0, rows);
            }
        }
        self.labelled = labels.is_some();
        b.scale(-1.0, &mut self.energies, rows);
    }

    /// p(y|x) = softmax f(x).
    pub fn probabilities(&mut self, b: &B, logits: &B::Tensor) -> &B::Tensor {
        b.row_softmax(self.batch, self.classes, logits, &mut self.probs);
        &self.probs
    }

    /// dL/df from dL/dE for the last forward pass's energy, whose logits are `logits`.
    pub fn backward(&mut self, b: &B, logits: &B::Tensor, d_energy: &B::Tensor) -> &B::Tensor {
        let (rows, cols) = (self.batch, self.classes);
        if self.labelled {
            b.scatter_cols(rows, cols, -1.0, d_energy, &self.labels, &mut self.d_logits);
        } else {
            // d(−logsumexp f)/df = −softmax f.
            b.row_softmax(rows, cols, logits, &mut self.probs);
            b.scale_rows(rows, cols, -1.0, &self.probs, d_energy, &mut self.d_logits);
        }
        &self.d_logits
    }
}
