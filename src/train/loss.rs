//! The device side of a training objective ([`Objective`]): its buffers, and the one pass
//! that turns a batch — data x⁺ and, for objectives that sample, the chains x⁻, with their
//! labels — into parameter gradients in the net and logged scalars in a small stats buffer.
//! The [`Trainer`](super::Trainer) draws the chains and steps Adam around it; tests call it
//! directly to compare the gradients with the PyTorch reference's.
//!
//! ```
//! use ebm::train::{Objective, ObjectiveLoss};
//! use ebm::{Backend, CpuBackend, EnergyNet, Spec};
//!
//! # fn main() -> ebm::Result<()> {
//! let b = CpuBackend::new();
//! let spec = Spec::mlp(2, 8, 1).with_classes(3)?;
//! let mut net = EnergyNet::new(&b, &spec, 0)?;
//! let jem = Objective::Jem { ce_weight: 1.0, cd_weight: 1.0 };
//! let mut loss = ObjectiveLoss::new(&b, &net, jem, 0.1, 2)?;
//! // Two data points with labels 0 and 2, then two chains (unlabelled for JEM).
//! let x = b.upload(&[0.5, 0.5, -1.0, 0.0, 2.0, 2.0, 0.0, -2.0])?;
//! let (y_pos, y_neg) = (b.upload(&[0.0, 2.0])?, b.zeros(2)?);
//! loss.gradients(&b, &mut net, &x, &y_pos, &y_neg, 1.0)?;
//! let stats = loss.read(&b)?;
//! assert!(stats.ce.unwrap() > 0.0 && stats.loss.is_finite());
//! assert!(b.read(&net.params()[0].grad)?.iter().any(|g| *g != 0.0));
//! # Ok(())
//! # }
//! ```

use super::{stat, CdLoss, CrossEntropy, FlagNonFinite, Objective, Stats};
use crate::backend::Backend;
use crate::nn::EnergyNet;
use crate::{Error, Result};

/// Slot of the stats buffer that holds the first iteration (+1) with a NaN or ±∞ energy, 0
/// while all were finite.
pub const HEALTH_ENERGIES: usize = stat::LEN;
/// Slot with the first iteration (+1) whose Adam step left a parameter NaN or ±∞.
pub const HEALTH_PARAMS: usize = stat::LEN + 1;
/// Slot with the mean cross-entropy of the data batch (JEM, classifier).
pub const CE_LOSS: usize = stat::LEN + 2;

/// An objective's buffers for batches of B data samples (and B chains).
pub struct ObjectiveLoss<B: Backend> {
    objective: Objective,
    alpha: f32,
    batch: usize,
    /// dLoss/dE per row of [x⁺; x⁻].
    d_energy: B::Tensor,
    /// [y⁺; y⁻] (conditional CD).
    labels_both: B::Tensor,
    /// dLoss/d(logits) [2B, C] and the cross-entropy's buffers (class-logit nets).
    d_logits: Option<B::Tensor>,
    ce: Option<CrossEntropy<B>>,
    /// The CD-loss stats, then the sticky health flags ([`HEALTH_ENERGIES`],
    /// [`HEALTH_PARAMS`]), then the cross-entropy ([`CE_LOSS`]): one buffer, so reading
    /// all is one readback.
    pub stats: B::Tensor,
}

impl<B: Backend> ObjectiveLoss<B> {
    /// Buffers for `objective` on `net` with batches of `batch`; an error if the objective
    /// needs a class-logit head and the net has none.
    pub fn new(
        b: &B,
        net: &EnergyNet<B>,
        objective: Objective,
        alpha: f32,
        batch: usize,
    ) -> Result<Self> {
        let classes = net.classes();
        if objective.needs_labels() && classes.is_none() {
            return Err(Error::Option(format!(
                "--objective {} needs a net with a class-logit head (spec \"output\": \
                 {{\"energy\": \"neg_logsumexp\", \"classes\": C}})",
                objective.name()
            )));
        }
        let (d_logits, ce) = match classes {
            Some(c) => (
                Some(b.zeros(2 * batch * c)?),
                Some(CrossEntropy::new(b, batch, c)?),
            ),
            None => (None, None),
        };
        Ok(ObjectiveLoss {
            objective,
            alpha,
            batch,
            d_energy: b.zeros(2 * batch)?,
            labels_both: b.zeros(2 * batch)?,
            d_logits,
            ce,
            stats: b.zeros(stat::LEN + 3)?,
        })
    }

    /// Parameter gradients of the objective into `net`'s [`Param::grad`](crate::nn::Param)s,
    /// and its scalars into [`stats`](Self::stats). `x` is `[x⁺; x⁻]` (2B rows; the classifier
    /// reads only x⁺), `labels_pos` the data's labels and `labels_neg` the chains' (each
    /// `[B]`, read only by the objectives that use them). A NaN or ±∞ energy sets the
    /// [`HEALTH_ENERGIES`] flag to `mark` (the iteration + 1) if it is still clear.
    pub fn gradients(
        &mut self,
        b: &B,
        net: &mut EnergyNet<B>,
        x: &B::Tensor,
        labels_pos: &B::Tensor,
        labels_neg: &B::Tensor,
        mark: f32,
    ) -> Result<()> {
        let batch = self.batch;
        let flag = FlagNonFinite {
            slot: HEALTH_ENERGIES,
            mark,
        };
        // Spectral norm: one power iteration per step, for the loss's one forward pass.
        net.refresh_spectral_norm(b, true);
        if self.objective == Objective::Classifier {
            let energies = net.forward(b, x, batch)?;
            flag.run(b, energies, &mut self.stats);
            let (Some(d_logits), Some(ce)) = (&mut self.d_logits, &mut self.ce) else {
                unreachable!("a class-logit net has both")
            };
            b.fill(d_logits, 0.0);
            let probs = net.probabilities(b, batch)?;
            ce.add_gradient(b, probs, labels_pos, 1.0, d_logits);
            ce.loss(b, net.logits(batch)?, labels_pos, &mut self.stats, CE_LOSS);
            return net.backward_params_logits(b, batch, d_logits);
        }
        let energies = if self.objective == Objective::Conditional {
            b.copy(labels_pos, 0, &mut self.labels_both, 0, batch);
            b.copy(labels_neg, 0, &mut self.labels_both, batch, batch);
            net.forward_labelled(b, x, &self.labels_both, 2 * batch)?
        } else {
            net.forward(b, x, 2 * batch)?
        };
        let cd = CdLoss {
            n_pos: batch,
            alpha: self.alpha,
        };
        cd.run(b, energies, &mut self.d_energy, &mut self.stats);
        // Non-finite values are caught here, on the device; the host sees the flags at its
        // next read of the stats (f32 holds iteration numbers exactly up to 2²⁴).
        flag.run(b, energies, &mut self.stats);
        let Objective::Jem {
            ce_weight,
            cd_weight,
        } = self.objective
        else {
            return net.backward_params(b, 2 * batch, &self.d_energy);
        };
        // dLoss/df = cd_weight·(−softmax·dL/dE), the CD term through E = −logsumexp f, on
        // all 2B rows, + ce_weight·(softmax − one-hot)/B on the data rows.
        let classes = net.classes().expect("checked in new");
        let probs = net.probabilities(b, 2 * batch)?;
        let d_energy = &self.d_energy;
        let (Some(d_logits), Some(ce)) = (&mut self.d_logits, &mut self.ce) else {
            unreachable!("a class-logit net has both")
        };
        b.scale_rows(2 * batch, classes, -cd_weight, probs, d_energy, d_logits);
        ce.add_gradient(b, probs, labels_pos, ce_weight, d_logits);
        let logits = net.logits(2 * batch)?;
        ce.loss(b, logits, labels_pos, &mut self.stats, CE_LOSS);
        net.backward_params_logits(b, 2 * batch, d_logits)
    }

    /// The scalars of the last pass (one small readback); an [`Error::NonFinite`] naming
    /// the first iteration that flagged a NaN or ±∞ energy or parameter, and the likely
    /// cause.
    pub fn read(&self, b: &B) -> Result<Stats> {
        let s = b.read(&self.stats)?;
        let first_bad = |slot: usize| (s[slot] != 0.0).then(|| s[slot] as u64);
        if let Some(it) = first_bad(HEALTH_ENERGIES) {
            return Err(Error::NonFinite(format!(
                "iteration {it}: an energy became NaN or infinite (the Langevin chains or the \
                 energy diverged: try a smaller Langevin step size or noise, a gradient clip, \
                 or a larger alpha)"
            )));
        }
        if let Some(it) = first_bad(HEALTH_PARAMS) {
            return Err(Error::NonFinite(format!(
                "iteration {it}: a parameter became NaN or infinite after the Adam step (try a \
                 smaller learning rate or gradient-norm clipping)"
            )));
        }
        let cd = Stats {
            loss: s[stat::LOSS],
            e_pos: s[stat::MEAN_E_POS],
            e_neg: s[stat::MEAN_E_NEG],
            ce: None,
            gen: None,
        };
        Ok(match self.objective {
            Objective::Cd | Objective::Conditional => cd,
            Objective::Jem {
                ce_weight,
                cd_weight,
            } => Stats {
                loss: cd_weight * cd.loss + ce_weight * s[CE_LOSS],
                ce: Some(s[CE_LOSS]),
                ..cd
            },
            Objective::Classifier => Stats {
                loss: s[CE_LOSS],
                ce: Some(s[CE_LOSS]),
                ..Stats::default()
            },
        })
    }
}
