//! The standard toy 2D distributions of the EBM and normalising-flow literature
//! (FFJORD's `toy_data.py`, also used by IGEBM, JEM and "anatomy of MCMC-based EBMs").
//!
//! Two dimensions are where an energy-based model can be checked by eye: the true density,
//! the model density exp(−E)/Z and the Langevin samples all fit in one picture, and
//! quantities that are intractable for images (Z, the KL to the data) can be computed on a
//! grid. Every dataset here is scaled, as FFJORD scales them, to lie within about [−4, 4]²,
//! so one plotting box, [−[`RANGE`], [`RANGE`]]², fits all of them.
//!
//! ## Determinism
//!
//! Points are a pure function of `(seed, batch, i)`: point `i` of batch `batch` draws its
//! randomness from the Philox counters `(block, chain = i, step = batch, Stream::Data)`
//! (docs/ARCHITECTURE.md, Random numbers). Block 0 supplies four uniforms and block 1 four standard normals, which
//! is more than any dataset needs. So a training run can regenerate batch 1234 on resume,
//! and asking for more points never changes the first ones.
//!
//! ```
//! use ebm::data::toy2d::{Toy2d, ALL, RANGE};
//!
//! # fn main() -> ebm::Result<()> {
//! let d: Toy2d = "8gaussians".parse()?;
//! assert_eq!(d, Toy2d::EightGaussians);
//! let points = d.sample(0, 0, 1000); // [1000, 2]: x, y per row
//! let inside = points.chunks(2).filter(|p| p[0].abs() <= RANGE && p[1].abs() <= RANGE);
//! assert!(inside.count() >= 999);
//! assert_eq!(d.sample(0, 0, 10), &points[..20], "more points never change the first ones");
//! assert!(ALL.iter().any(|d| d.name() == "swissroll"));
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::str::FromStr;

use crate::rng::{self, Stream};
use crate::{Error, Result};

/// Half-width of the box [−RANGE, RANGE]² used to plot toy data and to clamp Langevin chains;
/// every dataset keeps (far) more than 99.9 % of its mass inside it.
pub const RANGE: f32 = 4.5;

/// One of the seven toy 2D distributions; parse it from its name with [`str::parse`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Toy2d {
    /// Eight Gaussians on a circle of radius 4/√2 ≈ 2.83, std 0.5/√2: the EBM "hello world",
    /// well-separated modes that test whether Langevin sampling mixes between them.
    EightGaussians,
    /// A 5 × 5 grid of small Gaussians (centers −3, −1.5, 0, 1.5, 3 on each axis, std 0.2):
    /// many modes, each of which the model must give the same mass.
    TwentyFiveGaussians,
    /// Four concentric noisy circles (radii 0.75, 1.5, 2.25, 3; noise std 0.08): thin,
    /// curved ridges of mass separated by empty rings.
    Rings,
    /// Two interleaved spiral arms (FFJORD's `2spirals`): long thin curved ridges.
    TwoSpirals,
    /// Eight 2 × 2 squares of a 4 × 4 checkerboard over [−4, 4]²: uniform mass with sharp
    /// edges, hard for a smooth energy.
    Checkerboard,
    /// Two interleaving half circles (scikit-learn's `make_moons`, noise 0.1, scaled ×2).
    Moons,
    /// scikit-learn's swiss roll (noise 1.0) seen from its side, scaled by 1/5.
    SwissRoll,
}

/// Every dataset, in the order their names are listed in error messages and help texts.
pub const ALL: [Toy2d; 7] = [
    Toy2d::EightGaussians,
    Toy2d::TwentyFiveGaussians,
    Toy2d::Rings,
    Toy2d::TwoSpirals,
    Toy2d::Checkerboard,
    Toy2d::Moons,
    Toy2d::SwissRoll,
];

impl Toy2d {
    /// The name used on the command line and in file names.
    pub fn name(&self) -> &'static str {
        match self {
            Toy2d::EightGaussians => "8gaussians",
            Toy2d::TwentyFiveGaussians => "25gaussians",
            Toy2d::Rings => "rings",
            Toy2d::TwoSpirals => "2spirals",
            Toy2d::Checkerboard => "checkerboard",
            Toy2d::Moons => "moons",
            Toy2d::SwissRoll => "swissroll",
        }
    }

    /// `n` points of batch `batch` as an `[n, 2]` row-major array (x, y per row).
    ///
    /// Deterministic in `(seed, batch)`, and point `i` depends only on `(seed, batch, i)`,
    /// never on `n` (see the module docs for the counter layout).
    pub fn sample(&self, seed: u64, batch: u32, n: usize) -> Vec<f32> {
        self.sample_labelled(seed, batch, n).0
    }

    /// How many classes its points fall into ([`sample_labelled`](Self::sample_labelled)):
    /// each Gaussian of 8gaussians (8) and 25gaussians (25), each ring of rings (4), each
    /// arm of 2spirals and each half-moon of moons (2), each black square of checkerboard
    /// (8); `None` for swissroll, which is one continuous curve.
    pub fn classes(&self) -> Option<usize> {
        match self {
            Toy2d::EightGaussians | Toy2d::Checkerboard => Some(8),
            Toy2d::TwentyFiveGaussians => Some(25),
            Toy2d::Rings => Some(4),
            Toy2d::TwoSpirals | Toy2d::Moons => Some(2),
            Toy2d::SwissRoll => None,
        }
    }

    /// [`sample`](Self::sample)'s points with the class of each (the component it was drawn
    /// from; see [`classes`](Self::classes)), as exact f32 ids `[n]` (0 for swissroll).
    ///
    /// ```
    /// use ebm::data::Toy2d;
    ///
    /// let (points, labels) = Toy2d::EightGaussians.sample_labelled(0, 0, 500);
    /// assert_eq!(points, Toy2d::EightGaussians.sample(0, 0, 500));
    /// // Mode k sits at angle 2πk/8 on the circle of radius 4/√2.
    /// for (p, &k) in points.chunks(2).zip(&labels) {
    ///     let angle = std::f32::consts::TAU * k / 8.0;
    ///     let (cx, cy) = (2.83 * angle.cos(), 2.83 * angle.sin());
    ///     assert!((p[0] - cx).hypot(p[1] - cy) < 2.0);
    /// }
    /// ```
    pub fn sample_labelled(&self, seed: u64, batch: u32, n: usize) -> (Vec<f32>, Vec<f32>) {
        let mut out = Vec::with_capacity(2 * n);
        let mut labels = Vec::with_capacity(n);
        for i in 0..n {
            let draws = Draws::new(seed, batch, i as u32);
            let ([x, y], label) = self.point(&draws);
            out.push(x as f32);
            out.push(y as f32);
            labels.push(label as f32);
        }
        (out, labels)
    }

    /// One point from its random draws, and its class; the formulas follow FFJORD's
    /// generators, with the batch-level shuffles and counts replaced by per-point uniform
    /// choices.
    fn point(&self, d: &Draws) -> ([f64; 2], usize) {
        use std::f64::consts::{PI, SQRT_2, TAU};
        let [u0, u1, u2, u3] = d.u;
        let [z0, z1, _, _] = d.z;
        match self {
            Toy2d::EightGaussians => {
                let k = choose(u0, 8);
                let (s, c) = (TAU * k as f64 / 8.0).sin_cos();
                let p = [(4.0 * c + 0.5 * z0) / SQRT_2, (4.0 * s + 0.5 * z1) / SQRT_2];
                (p, k)
            }
            Toy2d::TwentyFiveGaussians => {
                let k = choose(u0, 25);
                let cx = (k % 5) as f64 - 2.0;
                let cy = (k / 5) as f64 - 2.0;
                ([1.5 * cx + 0.2 * z0, 1.5 * cy + 0.2 * z1], k)
            }
            Toy2d::Rings => {
                let ring = choose(u0, 4);
                let radius = 0.75 * (ring + 1) as f64;
                let (s, c) = (TAU * u1).sin_cos();
                ([radius * c + 0.08 * z0, radius * s + 0.08 * z1], ring)
            }
            Toy2d::TwoSpirals => {
                // Arm length ∝ √u so that mass is uniform along the spiral's area, as in FFJORD.
                let t = u0.sqrt() * 3.0 * PI;
                let (arm, class) = if u1 < 0.5 { (1.0, 0) } else { (-1.0, 1) };
                let x = -t.cos() * t + 0.5 * u2;
                let y = t.sin() * t + 0.5 * u3;
                ([arm * x / 3.0 + 0.1 * z0, arm * y / 3.0 + 0.1 * z1], class)
            }
            Toy2d::Checkerboard => {
                // x1 ∈ [−2, 2); x2 in [0, 1) or [−2, −1), shifted up by one on odd columns:
                // exactly the black squares of a 4 × 4 board, then scaled ×2 to [−4, 4].
                let x1 = 4.0 * u0 - 2.0;
                let row = if u2 < 0.5 { 0.0 } else { -2.0 };
                let x2 = u1 + row + x1.floor().rem_euclid(2.0);
                // The square: its column (0..4) and which of the column's two it is.
                let square = 2 * ((x1.floor() + 2.0) as usize).min(3) + usize::from(u2 >= 0.5);
                ([2.0 * x1, 2.0 * x2], square)
            }
            Toy2d::Moons => {
                let t = PI * u0;
                let (x, y, moon) = if u1 < 0.5 {
                    (t.cos(), t.sin(), 0)
                } else {
                    (1.0 - t.cos(), 0.5 - t.sin(), 1)
                };
                (
                    [2.0 * (x + 0.1 * z0) - 1.0, 2.0 * (y + 0.1 * z1) - 0.2],
                    moon,
                )
            }
            Toy2d::SwissRoll => {
                let t = 1.5 * PI * (1.0 + 2.0 * u0);
                ([(t * t.cos() + z0) / 5.0, (t * t.sin() + z1) / 5.0], 0)
            }
        }
    }
}

/// The random numbers one point may use: four uniforms in (0, 1] from block 0 and four
/// standard normals (Box–Muller) from block 1 of its counter row.
struct Draws {
    u: [f64; 4],
    z: [f64; 4],
}

impl Draws {
    fn new(seed: u64, batch: u32, i: u32) -> Self {
        let w0 = rng::words(seed, 0, i, batch, Stream::Data);
        let z = rng::normals(rng::words(seed, 1, i, batch, Stream::Data));
        Draws {
            u: w0.map(|w| f64::from(rng::uniform(w))),
            z: z.map(f64::from),
        }
    }
}

/// A uniform choice among `k` items from u ∈ (0, 1] (u = 1 maps to the last item).
fn choose(u: f64, k: usize) -> usize {
    ((u * k as f64) as usize).min(k - 1)
}

impl fmt::Display for Toy2d {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Toy2d {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        ALL.iter().copied().find(|d| d.name() == s).ok_or_else(|| {
            let names: Vec<&str> = ALL.iter().map(Toy2d::name).collect();
            Error::Option(format!(
                "unknown toy dataset '{s}' (one of: {})",
                names.join(", ")
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points(v: &[f32]) -> impl Iterator<Item = (f32, f32)> + '_ {
        v.chunks_exact(2).map(|p| (p[0], p[1]))
    }

    #[test]
    fn names_round_trip() {
        for d in ALL {
            assert_eq!(d.to_string().parse::<Toy2d>().unwrap(), d);
        }
        let err = "9gaussians".parse::<Toy2d>().unwrap_err().to_string();
        assert!(
            err.contains("9gaussians") && err.contains("swissroll"),
            "{err}"
        );
    }

    #[test]
    fn deterministic_and_independent_of_n() {
        for d in ALL {
            let a = d.sample(7, 3, 100);
            assert_eq!(a, d.sample(7, 3, 100), "{d}: same (seed, batch)");
            assert_eq!(
                &a[..20],
                &d.sample(7, 3, 10)[..],
                "{d}: prefix independent of n"
            );
            assert_ne!(a, d.sample(8, 3, 100), "{d}: seed matters");
            assert_ne!(a, d.sample(7, 4, 100), "{d}: batch matters");
            assert!(a.iter().all(|v| v.is_finite()));
        }
    }

    #[test]
    fn within_range() {
        for d in ALL {
            let v = d.sample(1, 0, 20_000);
            let inside = points(&v)
                .filter(|&(x, y)| x.abs() <= RANGE && y.abs() <= RANGE)
                .count();
            assert!(inside as f64 >= 0.999 * 20_000.0, "{d}: {inside} inside");
            // And the data actually uses the box: not squeezed into a corner of it.
            let extent = v.iter().fold(0.0f32, |m, &x| m.max(x.abs()));
            assert!(extent > 2.5, "{d}: extent {extent}");
        }
    }

    #[test]
    fn eight_gaussians_cluster_at_centers() {
        let v = Toy2d::EightGaussians.sample(2, 0, 8000);
        let r = 4.0 / 2f32.sqrt();
        let mut counts = [0usize; 8];
        for (x, y) in points(&v) {
            let k = ((y.atan2(x) / std::f32::consts::TAU * 8.0).round() as i32).rem_euclid(8);
            let (s, c) = (std::f32::consts::TAU * k as f32 / 8.0).sin_cos();
            let dist = ((x - r * c).powi(2) + (y - r * s).powi(2)).sqrt();
            assert!(
                dist < 6.0 * 0.5 / 2f32.sqrt(),
                "({x}, {y}) far from center {k}"
            );
            counts[k as usize] += 1;
        }
        for c in counts {
            assert!((800..1200).contains(&c), "unbalanced modes {counts:?}");
        }
    }

    #[test]
    fn checkerboard_on_black_squares() {
        let v = Toy2d::Checkerboard.sample(3, 1, 5000);
        for (x, y) in points(&v) {
            assert!(x.abs() <= 4.0 && y.abs() <= 4.0, "({x}, {y})");
            // 2 × 2 squares indexed from the lower-left corner: filled iff col + row is even
            // (so the corner square [−4, −2)² is filled).
            let col = (((x + 4.0) / 2.0).floor() as i32).min(3);
            let row = (((y + 4.0) / 2.0).floor() as i32).min(3);
            assert_eq!(
                (col + row).rem_euclid(2),
                0,
                "({x}, {y}) on an empty square"
            );
        }
    }

    #[test]
    fn rings_on_their_radii() {
        let v = Toy2d::Rings.sample(4, 0, 4000);
        let mut counts = [0usize; 4];
        for (x, y) in points(&v) {
            let r = (x * x + y * y).sqrt();
            let k = ((r / 0.75).round() as usize).clamp(1, 4);
            assert!((r - 0.75 * k as f32).abs() < 0.5, "radius {r}");
            counts[k - 1] += 1;
        }
        assert!(counts.iter().all(|&c| c > 800), "{counts:?}");
    }

    #[test]
    fn twenty_five_gaussians_on_grid() {
        let v = Toy2d::TwentyFiveGaussians.sample(5, 0, 5000);
        for (x, y) in points(&v) {
            for c in [x, y] {
                let near = (c / 1.5).round() * 1.5;
                assert!((c - near).abs() < 1.2 && near.abs() <= 3.0, "({x}, {y})");
            }
        }
    }

    #[test]
    fn symmetric_datasets_are_centered() {
        // 8gaussians, 25gaussians, rings, 2spirals and checkerboard are symmetric about 0.
        for d in &ALL[..5] {
            let v = d.sample(6, 0, 20_000);
            let (mut mx, mut my) = (0.0f64, 0.0f64);
            for (x, y) in points(&v) {
                mx += x as f64 / 20_000.0;
                my += y as f64 / 20_000.0;
            }
            assert!(mx.abs() < 0.08 && my.abs() < 0.08, "{d}: mean ({mx}, {my})");
        }
    }
}
