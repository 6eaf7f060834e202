//! What a training run minimises: contrastive divergence on E(x) (IGEBM), on the
//! class-conditional E(x, y), the JEM hybrid of a classifier and an EBM, or the plain
//! classifier that JEM is compared against. Stored with the run's settings in checkpoints.
//!
//! ```
//! use ebm::train::Objective;
//!
//! # fn main() -> ebm::Result<()> {
//! assert_eq!("cd".parse::<Objective>()?, Objective::Cd);
//! let jem: Objective = "jem".parse()?;
//! assert_eq!(jem, Objective::Jem { ce_weight: 1.0, cd_weight: 1.0 });
//! assert!(jem.needs_labels() && jem.samples());
//! assert!(!Objective::Classifier.samples());
//! assert!("gan".parse::<Objective>().is_err());
//! # Ok(())
//! # }
//! ```

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The training objective.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Objective {
    /// Contrastive divergence on E(x): mean E(x⁺) − mean E(x⁻) + α(mean E⁺² + mean E⁻²),
    /// x⁻ from Langevin chains (IGEBM, ebm-anatomy). E is the net's energy: its scalar output,
    /// or −logsumexp f(x) for a class-logit net.
    #[default]
    Cd,
    /// CD on E(x, y) = −f(x)\[y\] of a class-logit net (IGEBM's conditional model): the data
    /// term at the data's labels, the chains each sampling their own class, which the replay
    /// buffer keeps with them (a re-initialised chain takes its row's data label).
    Conditional,
    /// JEM (Grathwohl et al. 2019): `ce_weight`·cross-entropy of p(y|x⁺) = softmax f(x⁺) plus
    /// `cd_weight`·CD on E(x) = −logsumexp f(x), the chains unconditional.
    Jem {
        /// Weight of the classifier's mean cross-entropy.
        ce_weight: f32,
        /// Weight of the CD term (with its α penalty).
        cd_weight: f32,
    },
    /// Cross-entropy of p(y|x) alone, no sampling: the baseline a JEM model is compared to.
    Classifier,
}

impl Objective {
    /// The names `--objective` takes.
    pub const NAMES: [&'static str; 4] = ["cd", "conditional", "jem", "classifier"];

    /// Its name on the command line.
    pub fn name(&self) -> &'static str {
        match self {
            Objective::Cd => "cd",
            Objective::Conditional => "conditional",
            Objective::Jem { .. } => "jem",
            Objective::Classifier => "classifier",
        }
    }

    /// Whether every data sample needs a class label.
    pub fn needs_labels(&self) -> bool {
        !matches!(self, Objective::Cd)
    }

    /// Whether the run draws Langevin samples (and so keeps a replay buffer busy).
    pub fn samples(&self) -> bool {
        !matches!(self, Objective::Classifier)
    }

    /// Check the weights, naming a bad one.
    pub fn validate(&self) -> Result<()> {
        if let Objective::Jem {
            ce_weight,
            cd_weight,
        } = *self
        {
            for (name, w) in [("ce-weight", ce_weight), ("cd-weight", cd_weight)] {
                if !(w.is_finite() && w >= 0.0) {
                    return Err(Error::Option(format!("--{name} {w} must be ≥ 0")));
                }
            }
        }
        Ok(())
    }
}

impl FromStr for Objective {
    type Err = Error;

    /// `jem` takes both weights 1 (JEM's setting); set others on the value afterwards.
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cd" => Ok(Objective::Cd),
            "conditional" => Ok(Objective::Conditional),
            "jem" => Ok(Objective::Jem {
                ce_weight: 1.0,
                cd_weight: 1.0,
            }),
            "classifier" => Ok(Objective::Classifier),
            other => Err(Error::Option(format!(
                "objective '{other}' is not one of {}",
                Objective::NAMES.join(", ")
            ))),
        }
    }
}
