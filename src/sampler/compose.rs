//! Composed energies (IGEBM's concept combination): E(x) = Σᵢ wᵢ·Eᵢ(x), each term a model's
//! energy E(x) or, for a class-logit model, its class-conditional E(x, yᵢ) = −fᵢ(x)\[yᵢ\].
//! The product of experts p(x) ∝ Πᵢ pᵢ(x)^wᵢ samples where every term is likely; a negative
//! weight steers the chains away from a concept. Langevin follows Σᵢ wᵢ∇ₓEᵢ.
//!
//! ```
//! use ebm::sampler::{Composition, Langevin, LangevinConfig, Term};
//! use ebm::{CpuBackend, EnergyNet, Spec};
//!
//! # fn main() -> ebm::Result<()> {
//! let b = CpuBackend::new();
//! // Two MLP energies on the plane, the second weighted −0.5 (away from it).
//! let net = |seed| EnergyNet::new(&b, &Spec::mlp(2, 8, 1), seed);
//! let terms = vec![Term::new(net(1)?, 1.0, None), Term::new(net(2)?, -0.5, None)];
//! let mut both = Composition::new(&b, terms)?;
//! let x = [0.3, -0.2];
//! let (e1, e2) = (net(1)?.energies(&b, &x)?[0], net(2)?.energies(&b, &x)?[0]);
//! assert!((both.energies(&b, &x)?[0] - (e1 - 0.5 * e2)).abs() < 1e-5);
//! let sampler = Langevin {
//!     config: LangevinConfig { steps: 10, step_size: 0.01, noise: 0.1, grad_clip: None, lo: -3.0, hi: 3.0 },
//!     seed: 0,
//! };
//! let samples = sampler.sample_composed(&b, &mut both, 100, 10, |_| std::ops::ControlFlow::Continue(()))?;
//! assert_eq!(samples.x.len(), 200);
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;
use std::ops::ControlFlow;

use super::{Langevin, Progress, Samples};
use crate::backend::Backend;
use crate::nn::EnergyNet;
use crate::{Error, Result};

/// One term wᵢ·Eᵢ of a composition.
pub struct Term<B: Backend> {
    /// The model.
    pub net: EnergyNet<B>,
    /// Its weight (negative: away from the concept).
    pub weight: f32,
    /// The class whose conditional energy E(x, y) = −f(x)\[y\] the term uses (a class-logit
    /// model), or `None` for the model's E(x).
    pub class: Option<usize>,
}

impl<B: Backend> Term<B> {
    /// A term of `weight` on `net`'s energy, conditioned on `class` if given.
    pub fn new(net: EnergyNet<B>, weight: f32, class: Option<usize>) -> Self {
        Term { net, weight, class }
    }
}

/// A weighted sum of energies over one input shape, with its device buffers.
pub struct Composition<B: Backend> {
    terms: Vec<Term<B>>,
    /// Σ wᵢ∇ₓEᵢ and the class labels of each conditional term, per batch size.
    grads: HashMap<usize, B::Tensor>,
    labels: HashMap<(usize, usize), B::Tensor>,
}

impl<B: Backend> Composition<B> {
    /// The sum of `terms`; an error if there are none, their inputs differ, a weight is not
    /// finite, or a class is given for a model without one.
    pub fn new(b: &B, terms: Vec<Term<B>>) -> Result<Self> {
        let _ = b;
        let Some(first) = terms.first() else {
            return Err(Error::Option(
                "a composition needs at least one model".into(),
            ));
        };
        let input = first.net.spec().input.clone();
        for (i, t) in terms.iter().enumerate() {
            if t.net.spec().input != input {
                return Err(Error::Shape(format!(
                    "term {i} takes input {:?}, the first term {input:?}: composed models must \
                     share their input",
                    t.net.spec().input
                )));
            }
            if !t.weight.is_finite() {
                return Err(Error::Option(format!(
                    "term {i}: weight {} is not finite",
                    t.weight
                )));
            }
            match (t.class, t.net.classes()) {
                (Some(y), Some(c)) if y >= c => {
                    return Err(Error::Option(format!(
                        "term {i}: class {y} is not one of the model's classes 0..{c}"
                    )))
                }
                (Some(y), None) => {
                    return Err(Error::Option(format!(
                        "term {i}: class {y} given for a model without class logits"
                    )))
                }
                _ => {}
            }
        }
        Ok(Composition {
            terms,
            grads: HashMap::new(),
            labels: HashMap::new(),
        })
    }

    /// Values per input sample.
    pub fn input_len(&self) -> usize {
        self.terms[0].net.input_len()
    }

    /// The terms.
    pub fn terms(&self) -> &[Term<B>] {
        &self.terms
    }

    /// The labels tensor `[rows]` of term `i` (all its class), made on first use.
    fn labels(&mut self, b: &B, i: usize, rows: usize) -> Result<()> {
        if let (Some(y), std::collections::hash_map::Entry::Vacant(slot)) =
            (self.terms[i].class, self.labels.entry((i, rows)))
        {
            slot.insert(b.upload(&vec![y as f32; rows])?);
        }
        Ok(())
    }

    /// Σᵢ wᵢ∇ₓEᵢ for `rows` samples in `x` (`[rows, input_len]`).
    pub fn input_grad(&mut self, b: &B, x: &B::Tensor, rows: usize) -> Result<&B::Tensor> {
        let len = rows * self.input_len();
        if let std::collections::hash_map::Entry::Vacant(slot) = self.grads.entry(rows) {
            slot.insert(b.zeros(len)?);
        }
        for i in 0..self.terms.len() {
            self.labels(b, i, rows)?;
        }
        let sum = self.grads.get_mut(&rows).expect("made above");
        b.fill(sum, 0.0);
        for (i, t) in self.terms.iter_mut().enumerate() {
            let g = match self.labels.get(&(i, rows)) {
                Some(y) => t.net.input_grad_labelled(b, x, y, rows)?,
                None => t.net.input_grad(b, x, rows)?,
            };
            b.axpy(t.weight, g, sum, len);
        }
        Ok(&self.grads[&rows])
    }

    /// Convenience for host code: Σᵢ wᵢEᵢ(x) of `x` (host values, `[n, input_len]`).
    pub fn energies(&mut self, b: &B, x: &[f32]) -> Result<Vec<f32>> {
        let n = x.len() / self.input_len().max(1);
        let mut total = vec![0.0f32; n];
        for t in &mut self.terms {
            let e = match t.class {
                Some(y) => {
                    let c = t.net.classes().expect("checked in new");
                    let logits = t.net.class_logits(b, x)?;
                    logits.chunks(c).map(|f| -f[y]).collect()
                }
                None => t.net.energies(b, x)?,
            };
            for (sum, e) in total.iter_mut().zip(e) {
                *sum += t.weight * e;
            }
        }
        Ok(total)
    }
}

impl Langevin {
    /// [`run`](Self::run) on a composed energy: K steps of the Langevin update on
    /// Σᵢ wᵢ∇ₓEᵢ, layer by layer.
    pub fn run_composed<B: Backend>(
        &self,
        b: &B,
        comp: &mut Composition<B>,
        x: &mut B::Tensor,
        rows: usize,
        first_step: u64,
    ) -> Result<()> {
        let dim = comp.input_len();
        if b.len(x) < rows * dim {
            return Err(Error::Shape(format!(
                "composed Langevin: {} chain values for {rows} chains of {dim}",
                b.len(x)
            )));
        }
        for k in 0..self.config.steps as u64 {
            let grad = comp.input_grad(b, x, rows)?;
            self.update(rows, dim, first_step + k).run(b, x, grad);
        }
        Ok(())
    }

    /// [`sample`](Self::sample) from a composed energy: `n` chains from the same uniform noise
    /// [`sample`](Self::sample) starts from, or from `init` (host values, `[n, input_len]`)
    /// when given — cross-class sampling starts at images of one class under another's energy.
    pub fn sample_composed<B: Backend>(
        &self,
        b: &B,
        comp: &mut Composition<B>,
        n: usize,
        every: usize,
        progress: impl FnMut(Progress) -> ControlFlow<()>,
    ) -> Result<Samples> {
        let init = self.noise(n, comp.input_len());
        self.sample_composed_from(b, comp, &init, every, progress)
    }

    /// [`sample_composed`](Self::sample_composed) from the chains `init`
    /// (`[n, input_len]`).
    pub fn sample_composed_from<B: Backend>(
        &self,
        b: &B,
        comp: &mut Composition<B>,
        init: &[f32],
        every: usize,
        progress: impl FnMut(Progress) -> ControlFlow<()>,
    ) -> Result<Samples> {
        self.config.validate()?;
        let dim = comp.input_len();
        let n = init.len() / dim.max(1);
        if n == 0 || init.len() != n * dim {
            return Err(Error::Shape(format!(
                "{} initial values are not a whole number (≥ 1) of samples of {dim}",
                init.len()
            )));
        }
        let mut x = b.upload(init)?;
        let steps_run = self.run_chunks(b, 0, every, progress, |chunk, at| {
            chunk.run_composed(b, comp, &mut x, n, at)
        })?;
        Ok(Samples {
            x: b.read(&x)?,
            rows: n,
            steps_run,
        })
    }
}
