//! Sample quality for 2D models, measured rather than eyeballed: normalise the model density
//! exp(−E)/Z on a grid and compare it with the data's histogram on the same grid,
//! KL(data ‖ model) = Σ p_data · ln(p_data / p_model) over the cells.
//!
//! Both densities are per cell of a Grid2d, so the cell area cancels. The estimate carries
//! a small positive bias from the data histogram's sampling noise and the grid's
//! discretisation; an exact model scores near it, not at 0, and a model that is uniform on
//! the box scores ln(cells) − H(data histogram), about 1.6 nats for 8gaussians.
//!
//! ```
//! use ebm::data::{toy2d::RANGE, Toy2d};
//! use ebm::eval::kl::kl_data_model;
//! use ebm::plot::{histogram_density, Grid2d};
//!
//! let grid = Grid2d::new(50, RANGE);
//! let data = Toy2d::EightGaussians.sample(0, 0, 20_000);
//! // A model that knows nothing: E = 0, uniform on the box.
//! let kl_uniform = kl_data_model(&grid, &data, &vec![0.0; grid.n * grid.n]);
//! // A model that knows the data: E = −ln p from an independent sample of it.
//! let p = histogram_density(&grid, &Toy2d::EightGaussians.sample(0, 1, 20_000));
//! let energy: Vec<f32> = p.iter().map(|&p| -(p + 1e-4).ln()).collect();
//! let kl_good = kl_data_model(&grid, &data, &energy);
//! assert!(kl_good < 0.2 && kl_uniform > 1.0, "{kl_good} vs {kl_uniform}");
//! ```

use crate::plot::Grid2d;

/// KL(data ‖ model) in nats from `data` points [m, 2] and the model's `energy` at
/// `grid.points()` (`[n²]`). Data outside the grid are ignored.
pub fn kl_data_model(grid: &Grid2d, data: &[f32], energy: &[f32]) -> f64 {
    let cells = grid.n * grid.n;
    assert_eq!(energy.len(), cells, "one energy per grid cell");
    let mut counts = vec![0u64; cells];
    for p in data.chunks_exact(2) {
        if let Some(c) = grid.cell_of(p[0], p[1]) {
            counts[c] += 1;
        }
    }
    let total: u64 = counts.iter().sum();
    let log_z = log_partition(energy);
    counts
        .iter()
        .zip(energy)
        .filter(|(&n, _)| n > 0)
        .map(|(&n, &e)| {
            let p = n as f64 / total as f64;
            let log_q = -(e as f64) - log_z;
            p * (p.ln() - log_q)
        })
        .sum()
}

/// KL(data ‖ samples) in nats on the same grid as [`kl_data_model`], for models known only
/// by their samples (a generator). The samples' histogram, mixed with 1 % of the uniform
/// density so that a cell the data visit and the samples miss costs a finite amount, stands
/// in for the model's density. The estimate has a floor even for a perfect sampler: about
/// 0.01 for the mixture, plus (cells the data occupy)/(2m) for m samples' own noise —
/// compare against `kl_data_samples(grid, data, independent_data)` at the same m.
///
/// ```
/// use ebm::data::Toy2d;
/// use ebm::eval::kl::kl_data_samples;
/// use ebm::plot::Grid2d;
///
/// let grid = Grid2d::new(64, 4.5);
/// let data = Toy2d::EightGaussians.sample(0, 0, 100_000);
/// let same = kl_data_samples(&grid, &data, &Toy2d::EightGaussians.sample(0, 1, 20_000));
/// let other = kl_data_samples(&grid, &data, &Toy2d::Rings.sample(0, 1, 20_000));
/// assert!(same < 0.1 && other > 1.0, "{same} vs {other}");
/// ```
pub fn kl_data_samples(grid: &Grid2d, data: &[f32], samples: &[f32]) -> f64 {
    const UNIFORM: f64 = 0.01;
    let cells = grid.n * grid.n;
    let mut counts = vec![0.0f64; cells];
    for p in samples.chunks_exact(2) {
        if let Some(c) = grid.cell_of(p[0], p[1]) {
            counts[c] += 1.0;
        }
    }
    let m = (samples.len() / 2).max(1) as f64;
    // E = −ln q: kl_data_model normalises it over the grid.
    let energy: Vec<f32> = counts
        .iter()
        .map(|&c| -(((1.0 - UNIFORM) * c / m + UNIFORM / cells as f64).ln() as f32))
        .collect();
    kl_data_model(grid, data, &energy)
}

/// ln Σ exp(−E), computed stably around the smallest energy.
///
/// ```
/// use ebm::eval::kl::log_partition;
///
/// // Two states of equal energy 1000: Z = 2·e⁻¹⁰⁰⁰, which f64 alone would round to 0.
/// let log_z = log_partition(&[1000.0, 1000.0]);
/// assert!((log_z - (2f64.ln() - 1000.0)).abs() < 1e-9);
/// ```
pub fn log_partition(energy: &[f32]) -> f64 {
    let e_min = energy.iter().copied().fold(f32::INFINITY, f32::min) as f64;
    let sum: f64 = energy.iter().map(|&e| (e_min - e as f64).exp()).sum();
    sum.ln() - e_min
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_model_scores_zero_and_uniform_scores_log_ratio() {
        let grid = Grid2d { n: 4, range: 2.0 };
        let pts = grid.points();
        // Data: one point in each of the 4 top-left cells' centres → p_data = 1/4 there.
        let data: Vec<f32> = [0usize, 1, 4, 5]
            .iter()
            .flat_map(|&c| [pts[2 * c], pts[2 * c + 1]])
            .collect();
        let exact: Vec<f32> = (0..16)
            .map(|c| if [0, 1, 4, 5].contains(&c) { 0.0 } else { 60.0 })
            .collect();
        assert!(kl_data_model(&grid, &data, &exact).abs() < 1e-9);
        let uniform = vec![3.0; 16];
        assert!((kl_data_model(&grid, &data, &uniform) - 4f64.ln()).abs() < 1e-9);
    }
}
