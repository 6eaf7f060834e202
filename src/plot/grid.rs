//! A square grid over [−range, range]²: where the 2D figures evaluate energies and bin data.
//!
//! Its cells are laid out exactly like image pixels — row 0 at the top (largest y), columns
//! left to right — so any per-cell array in row-major order *is* a picture: a histogram or
//! an energy evaluated at [`Grid2d::points`] can be colored cell by cell with no flipping.
//! The same grid gives a model's normaliser Z ≈ Σ exp(−E)·cell_area on toy data.
//!
//! ```
//! use ebm::plot::Grid2d;
//!
//! let grid = Grid2d::new(4, 2.0); // cells 1 × 1 over [−2, 2]²
//! let points = grid.points(); // [16, 2], the batch to evaluate E on
//! assert_eq!(&points[..4], [-1.5, 1.5, -0.5, 1.5]); // row 0 is the top
//! assert_eq!(grid.cell_of(-1.5, 1.5), Some(0));
//! assert_eq!(grid.cell_of(1.9, -1.9), Some(15));
//! assert_eq!(grid.cell_of(3.0, 0.0), None);
//! // Z of E = 0 is the box's area.
//! let z: f32 = (0..16).map(|_| grid.cell_area()).sum();
//! assert_eq!(z, 16.0);
//! ```

/// An n × n grid of square cells covering [−range, range]².
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Grid2d {
    /// Cells per side.
    pub n: usize,
    /// Half-width of the covered square.
    pub range: f32,
}

impl Grid2d {
    /// An `n × n` grid over [−range, range]².
    pub fn new(n: usize, range: f32) -> Self {
        Grid2d { n, range }
    }

    /// Side length of one cell: 2·range / n.
    pub fn cell_size(&self) -> f32 {
        2.0 * self.range / self.n as f32
    }

    /// Area of one cell, the weight of each cell in grid integrals such as Z.
    pub fn cell_area(&self) -> f32 {
        self.cell_size() * self.cell_size()
    }

    /// x of the centre of column `c`: −range + (c + ½)·cell_size.
    pub fn x_of(&self, col: usize) -> f32 {
        -self.range + (col as f32 + 0.5) * self.cell_size()
    }

    /// y of the centre of row `r`: range − (r + ½)·cell_size (row 0 is the top).
    pub fn y_of(&self, row: usize) -> f32 {
        self.range - (row as f32 + 0.5) * self.cell_size()
    }

    /// The n² cell centres as an `[n², 2]` row-major array, cell `row·n + col` at index
    /// `row·n + col`: the batch to evaluate an energy on.
    pub fn points(&self) -> Vec<f32> {
        let mut out = Vec::with_capacity(2 * self.n * self.n);
        for row in 0..self.n {
            for col in 0..self.n {
                out.push(self.x_of(col));
                out.push(self.y_of(row));
            }
        }
        out
    }

    /// The cell (row·n + col) containing (x, y), or None outside the grid or for NaN.
    /// Cells are half-open, [left, right) × (bottom, top], except that points exactly on
    /// the outer edges +range (x) and −range (y) still belong to the last column/row.
    pub fn cell_of(&self, x: f32, y: f32) -> Option<usize> {
        let h = self.cell_size();
        let fc = (x + self.range) / h;
        let fr = (self.range - y) / h;
        let n = self.n as f32;
        if !(fc >= 0.0 && fc <= n && fr >= 0.0 && fr <= n) {
            return None;
        }
        let col = (fc as usize).min(self.n - 1);
        let row = (fr as usize).min(self.n - 1);
        Some(row * self.n + col)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_layout() {
        let g = Grid2d::new(4, 2.0);
        let p = g.points();
        assert_eq!(p.len(), 32);
        assert_eq!(&p[..2], &[-1.5, 1.5], "cell 0 is the top-left");
        assert_eq!(&p[2..4], &[-0.5, 1.5], "cell 1 is to its right");
        assert_eq!(&p[8..10], &[-1.5, 0.5], "cell n is below cell 0");
        assert_eq!(&p[30..], &[1.5, -1.5], "last cell is bottom-right");
        assert_eq!(g.cell_area(), 1.0);
    }

    #[test]
    fn cell_of_round_trip() {
        let g = Grid2d::new(37, 4.5);
        let p = g.points();
        for (i, xy) in p.chunks_exact(2).enumerate() {
            assert_eq!(g.cell_of(xy[0], xy[1]), Some(i));
            // Anywhere inside the cell, not just its centre.
            let q = 0.49 * g.cell_size();
            assert_eq!(g.cell_of(xy[0] + q, xy[1] - q), Some(i));
            assert_eq!(g.cell_of(xy[0] - q, xy[1] + q), Some(i));
        }
        assert_eq!(
            g.cell_of(4.5, -4.5),
            Some(37 * 37 - 1),
            "outer corner included"
        );
        assert_eq!(g.cell_of(-4.5, 4.5), Some(0));
        assert_eq!(g.cell_of(4.6, 0.0), None);
        assert_eq!(g.cell_of(0.0, -4.51), None);
        assert_eq!(g.cell_of(f32::NAN, 0.0), None);
    }
}
