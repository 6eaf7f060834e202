//! The mean cross-entropy of a classifier's logits, L = mean_r (logsumexp f_r − f_r\[y_r\]),
//! and its gradient (softmax − one-hot)/rows, composed from the backend's general per-row ops
//! (no kernel of its own): the classifier term of JEM and the plain-classifier objective.
//!
//! ```
//! use ebm::train::CrossEntropy;
//! use ebm::{Backend, CpuBackend};
//!
//! # fn main() -> ebm::Result<()> {
//! let b = CpuBackend::new();
//! let mut ce = CrossEntropy::new(&b, 2, 3)?;
//! let logits = b.upload(&[1.0, 2.0, 3.0, 0.0, 0.0, 0.0])?;
//! let labels = b.upload(&[2.0, 0.0])?;
//! let mut loss = b.zeros(1)?;
//! ce.loss(&b, &logits, &labels, &mut loss, 0);
//! let want = ((1f32.exp() + 2f32.exp() + 3f32.exp()).ln() - 3.0 + 3f32.ln()) / 2.0;
//! assert!((b.read(&loss)?[0] - want).abs() < 1e-6);
//! // The gradient, added with weight 1 to zeros, from the rows' softmax.
//! let mut probs = b.zeros(6)?;
//! b.row_softmax(2, 3, &logits, &mut probs);
//! let mut d = b.zeros(6)?;
//! ce.add_gradient(&b, &probs, &labels, 1.0, &mut d);
//! let g = b.read(&d)?;
//! assert!((g[3] - (1.0 / 3.0 - 1.0) / 2.0).abs() < 1e-6 && (g[4] - 1.0 / 6.0).abs() < 1e-6);
//! # Ok(())
//! # }
//! ```

use crate::backend::Backend;
use crate::Result;

/// Work buffers of the cross-entropy of `rows` samples over `classes` classes.
pub struct CrossEntropy<B: Backend> {
    rows: usize,
    classes: usize,
    /// 1 per row: scattered into the one-hot matrix.
    ones: B::Tensor,
    /// −weight/rows at each row's label, `[rows, classes]`.
    onehot: B::Tensor,
    /// f_r\[y_r\], then the per-row losses.
    picked: B::Tensor,
    /// logsumexp f_r.
    lse: B::Tensor,
    /// The mean, before it is copied into its slot.
    mean: B::Tensor,
}

impl<B: Backend> CrossEntropy<B> {
    /// Buffers for `rows` samples of `classes` logits.
    pub fn new(b: &B, rows: usize, classes: usize) -> Result<Self> {
        Ok(CrossEntropy {
            rows,
            classes,
            ones: b.upload(&vec![1.0; rows])?,
            onehot: b.zeros(rows * classes)?,
            picked: b.zeros(rows)?,
            lse: b.zeros(rows)?,
            mean: b.zeros(1)?,
        })
    }

    /// `d_logits[..rows·classes] += weight·(probs − one-hot(labels))/rows`, with `probs` the
    /// softmax of the same rows (its first `rows·classes` values are used) and `labels` the
    /// class ids as exact f32.
    pub fn add_gradient(
        &mut self,
        b: &B,
        probs: &B::Tensor,
        labels: &B::Tensor,
        weight: f32,
        d_logits: &mut B::Tensor,
    ) {
        let (rows, cols) = (self.rows, self.classes);
        let scale = weight / rows as f32;
        b.axpy(scale, probs, d_logits, rows * cols);
        b.scatter_cols(rows, cols, -scale, &self.ones, labels, &mut self.onehot);
        b.axpy(1.0, &self.onehot, d_logits, rows * cols);
    }

    /// The mean cross-entropy of the first `rows` rows of `logits` into `out[slot]`.
    pub fn loss(
        &mut self,
        b: &B,
        logits: &B::Tensor,
        labels: &B::Tensor,
        out: &mut B::Tensor,
        slot: usize,
    ) {
        let (rows, cols) = (self.rows, self.classes);
        b.row_logsumexp(rows, cols, logits, &mut self.lse);
        b.gather_cols(rows, cols, logits, labels, &mut self.picked);
        b.axpy(-1.0, &self.picked, &mut self.lse, rows);
        b.row_sum(1, rows, 1.0 / rows as f32, &self.lse, &mut self.mean);
        b.copy(&self.mean, 0, out, slot, 1);
    }
}
