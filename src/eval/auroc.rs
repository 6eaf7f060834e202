//! Out-of-distribution detection with an EBM (Grathwohl et al., JEM; Du & Mordatch, IGEBM):
//! a sample's energy is its OOD score. AUROC = P(E(x_ood) > E(x_in)), ties counting ½ — 1 is
//! perfect separation, 0.5 is chance.
//!
//! ```
//! use ebm::eval::auroc;
//!
//! // Energies as OOD scores: higher means less like the training data.
//! let inliers = [0.1, 0.4, 0.2, 0.3];
//! let ood = [0.9, 0.35, 1.2];
//! // 11 of the 12 (inlier, OOD) pairs are ordered right: 0.35 < 0.4 is the miss.
//! assert!((auroc(&inliers, &ood) - 11.0 / 12.0).abs() < 1e-12);
//! assert_eq!(auroc(&[1.0], &[1.0]), 0.5, "ties count one half");
//! assert!(auroc(&[], &ood).is_nan());
//! ```

/// AUROC of `ood` scores against `inliers` (higher = more OOD), by the Mann–Whitney U
/// statistic over the sorted union: O((n + m) log(n + m)). NaN if either side is empty.
///
/// ```
/// use ebm::eval::auroc;
///
/// assert_eq!(auroc(&[0.0, 1.0], &[2.0, 3.0]), 1.0); // every OOD score above every inlier
/// assert_eq!(auroc(&[2.0, 3.0], &[0.0, 1.0]), 0.0); // reversed: the scores point the wrong way
/// ```
pub fn auroc(inliers: &[f32], ood: &[f32]) -> f64 {
    if inliers.is_empty() || ood.is_empty() {
        return f64::NAN;
    }
    let mut all: Vec<(f32, bool)> = inliers
        .iter()
        .map(|&e| (e, false))
        .chain(ood.iter().map(|&e| (e, true)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Sum of the (1-based, tie-averaged) ranks of the OOD scores.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j < all.len() && all[j].0 == all[i].0 {
            j += 1;
        }
        let mean_rank = (i + 1 + j) as f64 / 2.0;
        rank_sum += mean_rank * all[i..j].iter().filter(|(_, is_ood)| *is_ood).count() as f64;
        i = j;
    }
    let (n, m) = (ood.len() as f64, inliers.len() as f64);
    (rank_sum - n * (n + 1.0) / 2.0) / (n * m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_chance_and_reversed() {
        assert_eq!(auroc(&[0.0, 1.0, 2.0], &[3.0, 4.0]), 1.0);
        assert_eq!(auroc(&[3.0, 4.0], &[0.0, 1.0, 2.0]), 0.0);
        assert_eq!(auroc(&[1.0, 1.0], &[1.0, 1.0, 1.0]), 0.5);
    }

    #[test]
    fn matches_the_pairwise_definition() {
        let inl = [0.3, -1.0, 2.5, 0.3, 7.0, 1.1];
        let ood = [0.3, 2.0, 9.0, -3.0, 1.1];
        let mut wins = 0.0;
        for &o in &ood {
            for &i in &inl {
                wins += if o > i {
                    1.0
                } else if o == i {
                    0.5
                } else {
                    0.0
                };
            }
        }
        let want = wins / (ood.len() * inl.len()) as f64;
        assert!((auroc(&inl, &ood) - want).abs() < 1e-12);
    }
}
