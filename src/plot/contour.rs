//! Isolines of a scalar field sampled on a [`Grid2d`], by marching squares.
//!
//! Energy landscapes are easiest to read as contour lines: they show where the model puts
//! its modes and how steep the walls between them are, and samples drawn on top show at a
//! glance whether Langevin chains sit in the wells. Marching squares treats each square of
//! four neighbouring cell centres independently, finds where the field crosses the level on
//! the square's edges by linear interpolation, and joins those crossings with segments.
//!
//! ```
//! use ebm::plot::{isolines, quantile_levels, Grid2d};
//!
//! let grid = Grid2d::new(40, 4.0);
//! // A bowl, |x|: its isolines are circles.
//! let field: Vec<f32> = grid.points().chunks(2).map(|p| p[0].hypot(p[1])).collect();
//! let circle = isolines(&grid, &field, 2.0);
//! assert!(circle.iter().flatten().all(|[x, y]| (x.hypot(*y) - 2.0).abs() < 0.05));
//! // Three levels that split the grid into four bands of equal area.
//! let levels = quantile_levels(&field, 3);
//! assert_eq!(levels.len(), 3);
//! assert!(levels.windows(2).all(|w| w[0] < w[1]));
//! ```

use super::grid::Grid2d;

/// A line segment between two points in data coordinates (x, y).
pub type Segment = [[f32; 2]; 2];

/// The segments of the isoline `field = level`, where `field[row·n + col]` is the value at
/// the centre of that grid cell (the layout of [`Grid2d::points`]).
///
/// Squares with a non-finite corner are skipped, so a field with holes gives broken lines
/// rather than garbage. The ambiguous saddle case (diagonally opposite corners above the
/// level) is resolved by the mean of the four corners, the usual choice.
///
/// # Panics
/// If `field.len() != grid.n²`.
pub fn isolines(grid: &Grid2d, field: &[f32], level: f32) -> Vec<Segment> {
    let n = grid.n;
    assert_eq!(field.len(), n * n, "field must have grid.n² values");
    let mut out = Vec::new();
    for row in 0..n.saturating_sub(1) {
        for col in 0..n - 1 {
            // Corners clockwise from the top-left, with their data coordinates.
            let corners = [
                (row, col),
                (row, col + 1),
                (row + 1, col + 1),
                (row + 1, col),
            ];
            let v = corners.map(|(r, c)| field[r * n + c]);
            if v.iter().any(|x| !x.is_finite()) {
                continue;
            }
            let p = corners.map(|(r, c)| [grid.x_of(c), grid.y_of(r)]);
            // Crossings on the edges top (0–1), right (1–2), bottom (2–3), left (3–0).
            let mut cross: [Option<[f32; 2]>; 4] = [None; 4];
            for (a, slot) in cross.iter_mut().enumerate() {
                let b = (a + 1) % 4;
                if (v[a] > level) != (v[b] > level) {
                    let t = (level - v[a]) / (v[b] - v[a]);
                    *slot = Some([
                        p[a][0] + t * (p[b][0] - p[a][0]),
                        p[a][1] + t * (p[b][1] - p[a][1]),
                    ]);
                }
            }
            let found: Vec<[f32; 2]> = cross.iter().flatten().copied().collect();
            match found.len() {
                2 => out.push([found[0], found[1]]),
                4 => {
                    let [t, r, b, l] = cross.map(Option::unwrap);
                    let centre_above = v.iter().sum::<f32>() / 4.0 > level;
                    if centre_above == (v[0] > level) {
                        // The top-left corner joins the centre: the line cuts off the
                        // top-right and bottom-left corners.
                        out.push([t, r]);
                        out.push([b, l]);
                    } else {
                        out.push([l, t]);
                        out.push([r, b]);
                    }
                }
                _ => {}
            }
        }
    }
    out
}

/// `k` contour levels at the quantiles j/(k+1), j = 1..=k, of the field's finite values:
/// each band between neighbouring levels covers the same area of the grid, so the lines are
/// spread over the whole picture whatever the field's scale (an energy can span thousands of
/// units far from the data and fractions of a unit near it). Empty if no value is finite.
pub fn quantile_levels(field: &[f32], k: usize) -> Vec<f32> {
    let mut v: Vec<f32> = field.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return Vec::new();
    }
    v.sort_by(f32::total_cmp);
    let mut levels: Vec<f32> = (1..=k).map(|j| v[(j * (v.len() - 1)) / (k + 1)]).collect();
    levels.dedup();
    levels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn circle_isoline_lies_on_the_radius() {
        let g = Grid2d::new(80, 4.0);
        let field: Vec<f32> = g
            .points()
            .chunks_exact(2)
            .map(|p| (p[0] * p[0] + p[1] * p[1]).sqrt())
            .collect();
        let segs = isolines(&g, &field, 2.5);
        // The circumference 2π·2.5 ≈ 15.7, over cells 0.1 wide: on the order of 200 segments.
        assert!(segs.len() > 100, "{} segments", segs.len());
        let mut length = 0.0;
        for s in &segs {
            for [x, y] in s {
                let r = (x * x + y * y).sqrt();
                assert!((r - 2.5).abs() < 0.01, "point at radius {r}");
            }
            length += ((s[0][0] - s[1][0]).powi(2) + (s[0][1] - s[1][1]).powi(2)).sqrt();
        }
        let want = std::f32::consts::TAU * 2.5;
        assert!(
            (length - want).abs() < 0.02 * want,
            "length {length} vs {want}"
        );
    }

    #[test]
    fn saddle_and_holes() {
        // A 2 × 2 field with diagonal highs: one square, four crossings, two segments.
        let g = Grid2d::new(2, 1.0);
        assert_eq!(isolines(&g, &[1.0, 0.0, 0.0, 1.0], 0.5).len(), 2);
        assert!(isolines(&g, &[1.0, 0.0, f32::NAN, 1.0], 0.5).is_empty());
        assert!(isolines(&g, &[1.0, 1.0, 1.0, 1.0], 0.5).is_empty());
    }

    #[test]
    fn levels_are_quantiles() {
        let field: Vec<f32> = (0..=100).map(|i| i as f32).collect();
        assert_eq!(quantile_levels(&field, 3), vec![25.0, 50.0, 75.0]);
        assert!(quantile_levels(&[f32::NAN], 3).is_empty());
        assert_eq!(quantile_levels(&[2.0; 10], 4), vec![2.0]);
    }
}
