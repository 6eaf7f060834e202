//! How good and how honest a classifier's probabilities are: accuracy, per-class accuracy,
//! negative log-likelihood and the expected calibration error (ECE) of a reliability diagram.
//!
//! A classifier is *calibrated* when, among the inputs it labels with confidence p, a fraction
//! p is right. The reliability diagram (Guo et al. 2017, "On Calibration of Modern Neural
//! Networks") sorts the samples into `bins` equal-width bins of confidence — the largest
//! softmax probability — over (0, 1]; bin b holds n_b samples with mean confidence conf_b and
//! accuracy acc_b, and
//!
//! ECE = Σ_b (n_b / N) · |acc_b − conf_b|,  MCE = max_b |acc_b − conf_b| (non-empty bins).
//!
//! JEM (Grathwohl et al. 2019) reports this ECE for its classifiers; Guo et al. use 15 bins,
//! the default of `ebm classify`. Bins are right-closed, as in Guo et al.'s code: bin b covers
//! (b/B, (b+1)/B], so a confidence of exactly 0.5 with 2 bins falls in the first bin.
//! The predicted class is the arg max of the probabilities, the lowest class on a tie.
//!
//! Every function takes the probabilities row-major, `[N, classes]`, and one label per row:
//!
//! ```
//! use ebm::eval::calibration::{accuracy, ece, nll, reliability};
//!
//! // Four samples, two classes: (p(0), p(1)) per row, and the true classes.
//! let probs = [0.9, 0.1, 0.25, 0.75, 0.55, 0.45, 0.35, 0.65];
//! let labels = [0, 1, 1, 1];
//! // Predictions 0, 1, 0, 1: the third is wrong.
//! assert_eq!(accuracy(&probs, &labels, 2), 0.75);
//! // Confidences 0.9, 0.75, 0.55, 0.65. With 2 bins all four fall in (0.5, 1]: accuracy
//! // 0.75, mean confidence 0.7125, ECE = |0.75 − 0.7125|.
//! assert!((ece(&probs, &labels, 2, 2) - 0.0375).abs() < 1e-6);
//! // With 5 bins: (0.4, 0.6] holds the wrong 0.55, (0.6, 0.8] the right 0.65 and 0.75,
//! // (0.8, 1] the right 0.9: ECE = ¼·0.55 + ½·|1 − 0.7| + ¼·0.1 = 0.3125.
//! let r = reliability(&probs, &labels, 2, 5);
//! assert_eq!(r.bins.iter().map(|b| b.count).collect::<Vec<_>>(), [0, 0, 1, 2, 1]);
//! assert!((r.ece() - 0.3125).abs() < 1e-6);
//! // NLL = mean −ln p(true class) = −(ln 0.9 + ln 0.75 + ln 0.45 + ln 0.65) / 4.
//! let want = -(0.9f64.ln() + 0.75f64.ln() + 0.45f64.ln() + 0.65f64.ln()) / 4.0;
//! assert!((nll(&probs, &labels, 2) - want).abs() < 1e-6);
//! ```
//!
//! The functions panic when the shapes disagree (`probs.len() != labels.len() · classes`),
//! when `classes` or `bins` is 0, or when a label is not below `classes`: those are caller
//! bugs, which the command line checks for before it calls them. An empty set gives NaN
//! metrics, like [`auroc`](fn@super::auroc).

/// One confidence bin of a [`Reliability`] diagram.
#[derive(Clone, Debug, PartialEq)]
pub struct Bin {
    /// The bin covers (lo, hi].
    pub lo: f64,
    /// Upper edge (inclusive).
    pub hi: f64,
    /// Samples whose confidence falls in the bin.
    pub count: usize,
    /// Of those, how many are classified right.
    pub correct: usize,
    /// Their accuracy, correct / count (0 for an empty bin).
    pub accuracy: f64,
    /// Their mean confidence (0 for an empty bin).
    pub confidence: f64,
}

impl Bin {
    /// |accuracy − confidence|: the bin's calibration gap (0 for an empty bin).
    pub fn gap(&self) -> f64 {
        (self.accuracy - self.confidence).abs()
    }
}

/// A reliability diagram: the samples binned by confidence, with the totals.
#[derive(Clone, Debug, PartialEq)]
pub struct Reliability {
    /// Equal-width bins over (0, 1], lowest first.
    pub bins: Vec<Bin>,
    /// N, the number of samples.
    pub samples: usize,
    /// Overall accuracy (NaN when N = 0).
    pub accuracy: f64,
    /// Mean confidence (NaN when N = 0).
    pub confidence: f64,
}

impl Reliability {
    /// Expected calibration error, Σ_b (n_b / N) · |acc_b − conf_b| (NaN when N = 0).
    ///
    /// ```
    /// use ebm::eval::calibration::reliability;
    ///
    /// // Always 90 % sure, right half the time: ECE = |0.5 − 0.9| = 0.4.
    /// let r = reliability(&[0.9, 0.1, 0.9, 0.1], &[0, 1], 2, 10);
    /// assert!((r.ece() - 0.4).abs() < 1e-6);
    /// assert!((r.mce() - 0.4).abs() < 1e-6);
    /// ```
    pub fn ece(&self) -> f64 {
        if self.samples == 0 {
            return f64::NAN;
        }
        let n = self.samples as f64;
        self.bins.iter().map(|b| b.count as f64 / n * b.gap()).sum()
    }

    /// Maximum calibration error, the largest |acc_b − conf_b| over the non-empty bins
    /// (NaN when N = 0).
    pub fn mce(&self) -> f64 {
        if self.samples == 0 {
            return f64::NAN;
        }
        self.bins
            .iter()
            .filter(|b| b.count > 0)
            .map(Bin::gap)
            .fold(0.0, f64::max)
    }
}

/// Right and total predictions of one class (by its true label).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClassAccuracy {
    /// Samples whose label is this class.
    pub count: usize,
    /// Of those, how many were predicted as this class.
    pub correct: usize,
}

impl ClassAccuracy {
    /// correct / count, NaN for a class with no sample.
    pub fn accuracy(&self) -> f64 {
        if self.count == 0 {
            f64::NAN
        } else {
            self.correct as f64 / self.count as f64
        }
    }
}

/// The predicted class (arg max, lowest on a tie) and its probability, per row.
///
/// ```
/// use ebm::eval::calibration::predictions;
///
/// let p = predictions(&[0.2, 0.5, 0.3, 0.5, 0.5, 0.0], 3);
/// assert_eq!(p, [(1, 0.5), (0, 0.5)]);
/// ```
pub fn predictions(probs: &[f32], classes: usize) -> Vec<(u32, f32)> {
    assert!(classes > 0, "classes must be at least 1");
    assert!(
        probs.len().is_multiple_of(classes),
        "{} probabilities is not a whole number of rows of {classes}",
        probs.len()
    );
    probs
        .chunks_exact(classes)
        .map(|row| {
            let mut best = 0;
            for (c, &p) in row.iter().enumerate() {
                // NaN never wins; a tie keeps the lower class.
                if p > row[best] || (row[best].is_nan() && !p.is_nan()) {
                    best = c;
                }
            }
            (best as u32, row[best])
        })
        .collect()
}

/// Panics unless `probs` is `[labels.len(), classes]` and every label is below `classes`.
fn check(probs: &[f32], labels: &[u32], classes: usize) {
    assert!(classes > 0, "classes must be at least 1");
    assert_eq!(
        probs.len(),
        labels.len() * classes,
        "{} probabilities for {} labels of {classes} classes",
        probs.len(),
        labels.len()
    );
    if let Some((i, &y)) = labels
        .iter()
        .enumerate()
        .find(|&(_, &y)| y as usize >= classes)
    {
        panic!("label {y} of sample {i} is not below classes = {classes}");
    }
}

/// The reliability diagram of `probs` (`[N, classes]`) against `labels` (`[N]`) with `bins`
/// equal-width confidence bins (module docs).
pub fn reliability(probs: &[f32], labels: &[u32], classes: usize, bins: usize) -> Reliability {
    check(probs, labels, classes);
    assert!(bins > 0, "bins must be at least 1");
    let mut count = vec![0usize; bins];
    let mut correct = vec![0usize; bins];
    let mut conf_sum = vec![0f64; bins];
    let (mut all_correct, mut all_conf) = (0usize, 0f64);
    for ((pred, conf), &y) in predictions(probs, classes).into_iter().zip(labels) {
        let conf = f64::from(conf);
        // Right-closed bins (b/B, (b+1)/B]; a confidence of 0 (or NaN) goes to the first.
        let b = ((conf * bins as f64).ceil() as usize).clamp(1, bins) - 1;
        let right = pred == y;
        count[b] += 1;
        correct[b] += usize::from(right);
        conf_sum[b] += conf;
        all_correct += usize::from(right);
        all_conf += conf;
    }
    let n = labels.len();
    let ratio = |a: f64, n: usize| if n == 0 { 0.0 } else { a / n as f64 };
    Reliability {
        bins: (0..bins)
            .map(|b| Bin {
                lo: b as f64 / bins as f64,
                hi: (b + 1) as f64 / bins as f64,
                count: count[b],
                correct: correct[b],
                accuracy: ratio(correct[b] as f64, count[b]),
                confidence: ratio(conf_sum[b], count[b]),
            })
            .collect(),
        samples: n,
        accuracy: all_correct as f64 / n as f64,
        confidence: all_conf / n as f64,
    }
}

/// Expected calibration error with `bins` equal-width bins: `reliability(…).ece()`.
pub fn ece(probs: &[f32], labels: &[u32], classes: usize, bins: usize) -> f64 {
    reliability(probs, labels, classes, bins).ece()
}

/// The fraction of rows whose arg max is the label (NaN when there are none).
pub fn accuracy(probs: &[f32], labels: &[u32], classes: usize) -> f64 {
    check(probs, labels, classes);
    let right = predictions(probs, classes)
        .iter()
        .zip(labels)
        .filter(|((pred, _), &y)| *pred == y)
        .count();
    right as f64 / labels.len() as f64
}

/// Accuracy per true class: for each class c, how many samples are labelled c and how many
/// of them are predicted c (its recall).
///
/// ```
/// use ebm::eval::calibration::{per_class_accuracy, ClassAccuracy};
///
/// let probs = [0.9, 0.1, 0.2, 0.8, 0.6, 0.4];
/// let per_class = per_class_accuracy(&probs, &[0, 1, 1], 2);
/// assert_eq!(per_class[0], ClassAccuracy { count: 1, correct: 1 });
/// assert_eq!(per_class[1].accuracy(), 0.5);
/// ```
pub fn per_class_accuracy(probs: &[f32], labels: &[u32], classes: usize) -> Vec<ClassAccuracy> {
    check(probs, labels, classes);
    let mut out = vec![ClassAccuracy::default(); classes];
    for ((pred, _), &y) in predictions(probs, classes).iter().zip(labels) {
        let c = &mut out[y as usize];
        c.count += 1;
        c.correct += usize::from(*pred == y);
    }
    out
}

/// The smallest probability [`nll`] takes the log of: a softmax that underflowed to 0 in
/// f32 counts as f32's smallest normal number, so one sample adds at most −ln(1.2e−38) ≈ 87.3
/// nats instead of infinity.
pub const NLL_FLOOR: f32 = f32::MIN_POSITIVE;

/// Mean negative log-likelihood of the labels, −(1/N) Σ ln p(yᵢ | xᵢ), in nats; each
/// probability is floored at [`NLL_FLOOR`]. NaN when there are no samples.
pub fn nll(probs: &[f32], labels: &[u32], classes: usize) -> f64 {
    check(probs, labels, classes);
    let sum: f64 = probs
        .chunks_exact(classes)
        .zip(labels)
        .map(|(row, &y)| -f64::from(row[y as usize].max(NLL_FLOOR)).ln())
        .sum();
    sum / labels.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Four samples, two classes, worked by hand:
    ///
    /// | row | p(0) | p(1) | label | pred | conf | right |
    /// |-----|------|------|-------|------|------|-------|
    /// | 0   | 0.95 | 0.05 | 0     | 0    | 0.95 | yes   |
    /// | 1   | 0.35 | 0.65 | 0     | 1    | 0.65 | no    |
    /// | 2   | 0.45 | 0.55 | 1     | 1    | 0.55 | yes   |
    /// | 3   | 0.15 | 0.85 | 1     | 1    | 0.85 | yes   |
    const PROBS: [f32; 8] = [0.95, 0.05, 0.35, 0.65, 0.45, 0.55, 0.15, 0.85];
    const LABELS: [u32; 4] = [0, 0, 1, 1];

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-6
    }

    #[test]
    fn hand_computed_four_samples() {
        assert_eq!(accuracy(&PROBS, &LABELS, 2), 0.75);
        // 4 bins of width 0.25: (0.5, 0.75] holds rows 1 and 2 (conf 0.6, acc ½),
        // (0.75, 1] rows 0 and 3 (conf 0.9, acc 1).
        let r = reliability(&PROBS, &LABELS, 2, 4);
        let counts: Vec<usize> = r.bins.iter().map(|b| b.count).collect();
        assert_eq!(counts, [0, 0, 2, 2]);
        assert_eq!(r.bins[2].correct, 1);
        assert!(close(r.bins[2].accuracy, 0.5) && close(r.bins[2].confidence, 0.6));
        assert!(close(r.bins[3].accuracy, 1.0) && close(r.bins[3].confidence, 0.9));
        assert_eq!((r.bins[3].lo, r.bins[3].hi), (0.75, 1.0));
        // ECE = ½·|0.5 − 0.6| + ½·|1 − 0.9| = 0.1; MCE = 0.1.
        assert!(close(r.ece(), 0.1), "{}", r.ece());
        assert!(close(r.mce(), 0.1));
        assert!(close(r.accuracy, 0.75) && close(r.confidence, 0.75));
        // 10 bins: each row alone in its bin: ECE = ¼(0.05 + 0.65 + 0.45 + 0.15) = 0.325.
        let r10 = reliability(&PROBS, &LABELS, 2, 10);
        assert_eq!(r10.bins.iter().filter(|b| b.count == 1).count(), 4);
        assert!(close(r10.ece(), 0.325), "{}", r10.ece());
        assert!(close(r10.mce(), 0.65));
        assert!(close(ece(&PROBS, &LABELS, 2, 10), 0.325));
        // One bin: |0.75 − 0.75| = 0.
        assert!(ece(&PROBS, &LABELS, 2, 1).abs() < 1e-6);
        // Per class: class 0 has rows 0 (right) and 1 (wrong), class 1 rows 2 and 3 (right).
        let pc = per_class_accuracy(&PROBS, &LABELS, 2);
        assert_eq!(
            pc[0],
            ClassAccuracy {
                count: 2,
                correct: 1
            }
        );
        assert_eq!(
            pc[1],
            ClassAccuracy {
                count: 2,
                correct: 2
            }
        );
        // NLL = −(ln 0.95 + ln 0.35 + ln 0.55 + ln 0.85) / 4.
        let want = -(0.95f64.ln() + 0.35f64.ln() + 0.55f64.ln() + 0.85f64.ln()) / 4.0;
        assert!(close(nll(&PROBS, &LABELS, 2), want));
    }

    #[test]
    fn bin_edges_are_right_closed() {
        // Confidence exactly 0.5 with 2 bins lands in (0, 0.5]; 1.0 in the last bin.
        let r = reliability(&[0.5, 0.5, 1.0, 0.0], &[0, 0], 2, 2);
        assert_eq!(r.bins[0].count, 1);
        assert_eq!(r.bins[1].count, 1);
        assert_eq!(
            predictions(&[0.5, 0.5], 2),
            [(0, 0.5)],
            "ties → lowest class"
        );
    }

    #[test]
    fn ece_matches_the_per_sample_definition() {
        // A pseudo-random set: ECE from the bins equals Σ_b |Σ_{i∈b} (right_i − conf_i)| / N.
        let (n, c, bins) = (500usize, 5usize, 15usize);
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32
        };
        let mut probs = Vec::new();
        let mut labels = Vec::new();
        for _ in 0..n {
            let raw: Vec<f32> = (0..c).map(|_| next().powi(3) + 1e-3).collect();
            let s: f32 = raw.iter().sum();
            probs.extend(raw.iter().map(|v| v / s));
            labels.push((next() * c as f32) as u32 % c as u32);
        }
        let mut diff = vec![0f64; bins];
        for (row, &y) in probs.chunks_exact(c).zip(&labels) {
            let (pred, conf) = predictions(row, c)[0];
            let b = ((conf as f64 * bins as f64).ceil() as usize).clamp(1, bins) - 1;
            diff[b] += f64::from(u8::from(pred == y)) - conf as f64;
        }
        let want: f64 = diff.iter().map(|d| d.abs()).sum::<f64>() / n as f64;
        let r = reliability(&probs, &labels, c, bins);
        assert!((r.ece() - want).abs() < 1e-9, "{} vs {want}", r.ece());
        assert_eq!(r.bins.iter().map(|b| b.count).sum::<usize>(), n);
        let pc = per_class_accuracy(&probs, &labels, c);
        assert_eq!(pc.iter().map(|p| p.count).sum::<usize>(), n);
        let right: usize = pc.iter().map(|p| p.correct).sum();
        assert!(close(right as f64 / n as f64, accuracy(&probs, &labels, c)));
    }

    #[test]
    fn underflow_and_empty_sets() {
        // p(true) = 0 is floored, not infinite.
        let v = nll(&[1.0, 0.0], &[1], 2);
        assert!(v.is_finite() && v > 87.0, "{v}");
        assert!(accuracy(&[], &[], 3).is_nan());
        let r = reliability(&[], &[], 3, 4);
        assert!(r.ece().is_nan() && r.accuracy.is_nan());
        assert!(per_class_accuracy(&[], &[], 2)[1].accuracy().is_nan());
    }

    #[test]
    #[should_panic(expected = "label 2 of sample 1")]
    fn label_out_of_range_panics() {
        accuracy(&[0.5, 0.5, 0.5, 0.5], &[0, 2], 2);
    }
}
