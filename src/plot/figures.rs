//! The figures the CLI writes: the toy 2D training snapshot, a scatter of samples, and
//! training curves.
//!
//! All figures share one look — white page, dark text, framed panels, perceptual colormaps —
//! so a directory of snapshots reads as one series. Layout constants live at the top; each
//! figure is a short function that places panels and calls the panel painters below it.
//!
//! ```
//! use ebm::plot::line_chart;
//!
//! # fn main() -> ebm::Result<()> {
//! let iterations: Vec<f32> = (0..100).map(|i| 10.0 * i as f32).collect();
//! let loss: Vec<f32> = iterations.iter().map(|t| (-t / 300.0).exp() - 0.5).collect();
//! let kl: Vec<f32> = iterations.iter().map(|t| 3.0 / (1.0 + t / 100.0)).collect();
//! let path = std::env::temp_dir().join(format!("ebm-doc-curves-{}.png", std::process::id()));
//! line_chart(&path, "training", &iterations, &[("loss", &loss), ("KL", &kl)])?;
//! assert!(path.is_file());
//! # std::fs::remove_file(&path).ok();
//! # Ok(())
//! # }
//! ```

use std::path::Path;

use super::canvas::{Canvas, Segment};
use super::colormap::{mix, Colormap, Rgb};
use super::contour::{isolines, quantile_levels};
use super::grid::Grid2d;
use crate::Result;

// ---------------------------------------------------------------------------------------
// Style
// ---------------------------------------------------------------------------------------

/// Page background.
pub(super) const PAGE: Rgb = [255, 255, 255];
/// Titles and tick labels.
pub(super) const INK: Rgb = [33, 33, 38];
/// Secondary text: the footer, axis notes.
pub(super) const MUTED: Rgb = [110, 110, 120];
/// Panel frames and tick marks.
pub(super) const FRAME: Rgb = [70, 70, 78];
/// Gridlines of line charts.
pub(super) const GRIDLINE: Rgb = [228, 228, 232];
/// Background of sample panels: high energy / empty space.
const NIGHT: Rgb = [18, 20, 34];
/// Sample panels: the color of the lowest-energy regions (a muted slate blue, so the
/// bright samples on top stay the most salient thing in the panel).
const WELL: Rgb = [78, 92, 138];
/// Langevin samples: a warm, bright color that stands out on the dark energy background.
const SAMPLE: Rgb = [255, 190, 60];
/// Density heatmaps.
pub(super) const DENSITY_MAP: Colormap = Colormap::Viridis;
/// Qualitative palette for line charts (matplotlib's tab10, first eight).
pub(super) const SERIES: [Rgb; 8] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
];

/// Text scales (multiples of the 5 × 7 font): figure titles, panel titles and footers,
/// tick labels.
pub(super) const TITLE_SCALE: u32 = 2;
pub(super) const LABEL_SCALE: u32 = 2;
const TICK_SCALE: u32 = 1;

// ---------------------------------------------------------------------------------------
// Figures
// ---------------------------------------------------------------------------------------

/// What [`toy2d_figure`] shows: one training snapshot of a 2D energy-based model.
#[derive(Clone, Copy, Debug)]
pub struct Toy2dFigure<'a> {
    /// Figure title, e.g. "8gaussians - toy2d MLP".
    pub title: &'a str,
    /// Data points, `[m, 2]` row-major.
    pub data: &'a [f32],
    /// Langevin samples from the model, `[k, 2]` row-major.
    pub samples: &'a [f32],
    /// The grid the energy was evaluated on.
    pub grid: Grid2d,
    /// E at `grid.points()`, `[n·n]`.
    pub energy: &'a [f32],
    /// One line of run facts, e.g. "iter 1500  KL 0.12  loss -0.03".
    pub footer: &'a str,
}

/// Side of one square panel of the toy 2D figure, in pixels.
const PANEL: i32 = 384;

/// Writes the toy 2D snapshot: three panels side by side — the data density (a smoothed
/// histogram), the model density exp(−E)/Z on the grid, and the Langevin samples over the
/// energy landscape. The two densities share one color scale (the data's), so "brighter
/// in the model than in the data" means what it says; a model more peaked than the data
/// saturates.
pub fn toy2d_figure(path: &Path, fig: &Toy2dFigure) -> Result<()> {
    let grid = fig.grid;
    check_len("energy", fig.energy.len(), grid.n * grid.n);
    let data = histogram_density(&grid, fig.data);
    let data = smooth(&grid, &data);
    let model = density_from_energy(fig.energy, grid.cell_area());
    let data_max = max_finite(&data);
    let vmax = if data_max > 0.0 {
        data_max
    } else {
        max_finite(&model)
    };

    const LEFT: i32 = 44;
    const GAP: i32 = 40;
    const RIGHT: i32 = 24;
    const TOP: i32 = 46;
    const PANEL_TITLE: i32 = 26;
    const BOTTOM: i32 = 58;
    let width = LEFT + 3 * PANEL + 2 * GAP + RIGHT;
    let height = TOP + PANEL_TITLE + PANEL + BOTTOM;
    let mut c = Canvas::new(width as u32, height as u32, PAGE);

    title(&mut c, fig.title, width);
    let panels: Vec<Panel> = (0..3)
        .map(|i| Panel {
            x: LEFT + i * (PANEL + GAP),
            y: TOP + PANEL_TITLE,
            size: PANEL,
            range: grid.range,
        })
        .collect();
    let names = ["data", "model density exp(-E)/Z", "samples over energy"];
    for (p, name) in panels.iter().zip(names) {
        p.title(&mut c, name);
    }
    panels[0].heatmap(&mut c, &grid, &data, |v| DENSITY_MAP.map(v / vmax));
    panels[1].heatmap(&mut c, &grid, &model, |v| DENSITY_MAP.map(v / vmax));
    panels[2].energy_background(&mut c, &grid, fig.energy);
    panels[2].points(&mut c, fig.samples, SAMPLE);
    for (i, p) in panels.iter().enumerate() {
        p.frame_and_ticks(&mut c, i == 0);
    }
    let footer_y = height - 12 - Canvas::text_height(LABEL_SCALE);
    c.draw_text(LEFT, footer_y, fig.footer, LABEL_SCALE, MUTED);
    // The shared density scale, bottom right: what full brightness means in both panels.
    colorbar(&mut c, panels[1].x + PANEL, footer_y, vmax);
    c.save_png(path)
}

/// A horizontal colorbar for the density colormap whose right end is at `right`, with text
/// top at `y`: "density 0 [gradient] vmax".
pub(super) fn colorbar(c: &mut Canvas, right: i32, y: i32, vmax: f32) {
    const BAR_W: i32 = 160;
    let th = Canvas::text_height(LABEL_SCALE);
    let hi = tick_label(vmax, vmax / 100.0);
    let hi_w = Canvas::text_width(&hi, LABEL_SCALE);
    let bar_x = right - hi_w - 8 - BAR_W;
    for i in 0..BAR_W {
        let color = DENSITY_MAP.map(i as f32 / (BAR_W - 1) as f32);
        c.fill_rect(bar_x + i, y, 1, th, color);
    }
    c.stroke_rect(bar_x - 1, y - 1, BAR_W + 2, th + 2, FRAME);
    c.draw_text(right - hi_w, y, &hi, LABEL_SCALE, MUTED);
    let lo_w = Canvas::text_width("0", LABEL_SCALE);
    c.draw_text(bar_x - 8 - lo_w, y, "0", LABEL_SCALE, MUTED);
    let label = "density";
    let w = Canvas::text_width(label, LABEL_SCALE);
    c.draw_text(bar_x - 8 - lo_w - 12 - w, y, label, LABEL_SCALE, MUTED);
}

/// Writes one square panel of `points` (`[k, 2]`) over [−range, range]², drawn over the
/// energy landscape when `energy` (a grid and E at its points) is given.
///
/// ```
/// use ebm::data::{toy2d::RANGE, Toy2d};
/// use ebm::plot::scatter_figure;
///
/// # fn main() -> ebm::Result<()> {
/// let points = Toy2d::SwissRoll.sample(0, 0, 2000);
/// let path = std::env::temp_dir().join(format!("ebm-doc-scatter-{}.png", std::process::id()));
/// scatter_figure(&path, "swissroll", &points, RANGE, None)?;
/// # std::fs::remove_file(&path).ok();
/// # Ok(())
/// # }
/// ```
pub fn scatter_figure(
    path: &Path,
    title_text: &str,
    points: &[f32],
    range: f32,
    energy: Option<(&Grid2d, &[f32])>,
) -> Result<()> {
    scatter_page(title_text, range, energy, 24, |c, p| {
        p.points(c, points, SAMPLE)
    })
    .save_png(path)
}

/// The page of [`scatter_figure`] and [`class_scatter_figure`]: title, one square panel with
/// the energy (or plain night) behind, `draw` putting the points on it, frame and ticks;
/// `right` pixels of margin on the right (room for a legend).
fn scatter_page(
    title_text: &str,
    range: f32,
    energy: Option<(&Grid2d, &[f32])>,
    right: i32,
    draw: impl FnOnce(&mut Canvas, &Panel),
) -> Canvas {
    const SIZE: i32 = 480;
    const LEFT: i32 = 44;
    const TOP: i32 = 46;
    const BOTTOM: i32 = 30;
    let width = LEFT + SIZE + right;
    let height = TOP + SIZE + BOTTOM;
    let mut c = Canvas::new(width as u32, height as u32, PAGE);
    title(&mut c, title_text, width);
    let p = Panel {
        x: LEFT,
        y: TOP,
        size: SIZE,
        range,
    };
    match energy {
        Some((grid, e)) => {
            check_len("energy", e.len(), grid.n * grid.n);
            p.energy_background(&mut c, grid, e);
        }
        None => c.fill_rect(p.x, p.y, p.size, p.size, NIGHT),
    }
    draw(&mut c, &p);
    p.frame_and_ticks(&mut c, true);
    c
}

/// [`scatter_figure`] with each point coloured by its class (`labels`, one exact f32 class
/// id per point: a conditional model's samples, or labelled data), and a legend of the
/// classes' colours.
///
/// ```
/// use ebm::data::toy2d::{Toy2d, RANGE};
/// use ebm::plot::class_scatter_figure;
///
/// # fn main() -> ebm::Result<()> {
/// let (points, labels) = Toy2d::EightGaussians.sample_labelled(0, 0, 2000);
/// let path = std::env::temp_dir().join(format!("ebm-doc-classes-{}.png", std::process::id()));
/// class_scatter_figure(&path, "8gaussians by mode", &points, &labels, RANGE, None)?;
/// # std::fs::remove_file(&path).ok();
/// # Ok(())
/// # }
/// ```
pub fn class_scatter_figure(
    path: &Path,
    title_text: &str,
    points: &[f32],
    labels: &[f32],
    range: f32,
    energy: Option<(&Grid2d, &[f32])>,
) -> Result<()> {
    check_len("labels", labels.len(), points.len() / 2);
    let classes = labels.iter().fold(0usize, |m, &y| m.max(y as usize + 1));
    let color = |y: usize| {
        // Past the palette, lighter and then darker shades of it (never the page's white).
        let base = SERIES[y % SERIES.len()];
        match y / SERIES.len() {
            0 => base,
            1 => mix(base, PAGE, 0.45),
            k => mix(base, INK, (0.25 * (k - 1) as f32).min(0.7)),
        }
    };
    let c = scatter_page(title_text, range, energy, 96, |c, p| {
        for y in 0..classes {
            let mine: Vec<f32> = points
                .chunks_exact(2)
                .zip(labels)
                .filter(|(_, &l)| l as usize == y)
                .flat_map(|(q, _)| [q[0], q[1]])
                .collect();
            p.points(c, &mine, color(y));
        }
        // The legend, right of the panel.
        let th = Canvas::text_height(LABEL_SCALE);
        let x = p.x + p.size + 14;
        for y in 0..classes.min(24) {
            let top = p.y + 4 + y as i32 * (th + 6);
            c.fill_rect(x, top, th, th, color(y));
            c.draw_text(x + 6 + th, top, &format!("y={y}"), LABEL_SCALE, INK);
        }
    });
    c.save_png(path)
}

// ---------------------------------------------------------------------------------------
// Densities on the grid
// ---------------------------------------------------------------------------------------

/// The empirical density of `points` (`[m, 2]`) on the grid: count / (m · cell_area) per
/// cell, so it integrates to the fraction of points inside the grid. Points outside are
/// counted in m but land in no cell.
///
/// ```
/// use ebm::plot::{histogram_density, Grid2d};
///
/// let grid = Grid2d::new(2, 1.0); // four 1 × 1 cells
/// let density = histogram_density(&grid, &[-0.5, 0.5, -0.5, 0.5, 0.5, -0.5, 9.0, 9.0]);
/// assert_eq!(density, [0.5, 0.0, 0.0, 0.25]); // the point at (9, 9) is outside
/// ```
pub fn histogram_density(grid: &Grid2d, points: &[f32]) -> Vec<f32> {
    let mut h = vec![0.0f32; grid.n * grid.n];
    let m = points.len() / 2;
    if m == 0 {
        return h;
    }
    let w = 1.0 / (m as f32 * grid.cell_area());
    for p in points.chunks_exact(2) {
        if let Some(i) = grid.cell_of(p[0], p[1]) {
            h[i] += w;
        }
    }
    h
}

/// The model density exp(−E)/Z on the grid, Z = Σ exp(−E)·cell_area, computed stably by
/// subtracting min E before exponentiating (energies of thousands would overflow or vanish
/// otherwise). Cells with non-finite E get density 0; all zeros if no E is finite.
///
/// ```
/// use ebm::plot::density_from_energy;
///
/// // E differs by ln 3 between two unit cells: 3 : 1 odds, even at energies of thousands.
/// let density = density_from_energy(&[5000.0, 5000.0 + 3f32.ln()], 1.0);
/// assert!((density[0] - 0.75).abs() < 1e-4 && (density[1] - 0.25).abs() < 1e-4);
/// ```
pub fn density_from_energy(energy: &[f32], cell_area: f32) -> Vec<f32> {
    let e_min = energy
        .iter()
        .copied()
        .filter(|e| e.is_finite())
        .fold(f32::INFINITY, f32::min);
    if !e_min.is_finite() {
        return vec![0.0; energy.len()];
    }
    let w: Vec<f64> = energy
        .iter()
        .map(|&e| {
            if e.is_finite() {
                (-(f64::from(e) - f64::from(e_min))).exp()
            } else {
                0.0
            }
        })
        .collect();
    let z: f64 = w.iter().sum::<f64>() * f64::from(cell_area);
    w.iter().map(|&v| (v / z) as f32).collect()
}

/// A 3 × 3 binomial blur ([1 2 1] ⊗ [1 2 1] / 16), renormalised at the borders: takes the
/// shot noise out of a histogram without visibly widening its features.
pub(super) fn smooth(grid: &Grid2d, v: &[f32]) -> Vec<f32> {
    let n = grid.n as i64;
    let mut out = vec![0.0; v.len()];
    for r in 0..n {
        for c in 0..n {
            let (mut acc, mut wsum) = (0.0, 0.0);
            for dr in -1..=1i64 {
                for dc in -1..=1i64 {
                    let (rr, cc) = (r + dr, c + dc);
                    if rr < 0 || cc < 0 || rr >= n || cc >= n {
                        continue;
                    }
                    let w = ((2 - dr.abs()) * (2 - dc.abs())) as f32;
                    acc += w * v[(rr * n + cc) as usize];
                    wsum += w;
                }
            }
            out[(r * n + c) as usize] = acc / wsum;
        }
    }
    out
}

pub(super) fn max_finite(v: &[f32]) -> f32 {
    v.iter()
        .copied()
        .filter(|x| x.is_finite())
        .fold(0.0, f32::max)
}

/// Bilinear interpolation of a per-cell field at (x, y), clamped at the grid's borders;
/// None outside the grid. Heatmaps use it so that a 100 × 100 grid drawn on 384 pixels
/// looks smooth instead of blocky.
fn sample_field(grid: &Grid2d, field: &[f32], x: f32, y: f32) -> Option<f32> {
    let h = grid.cell_size();
    if x.abs() > grid.range || y.abs() > grid.range {
        return None;
    }
    let max = (grid.n - 1) as f32;
    let fc = ((x + grid.range) / h - 0.5).clamp(0.0, max);
    let fr = ((grid.range - y) / h - 0.5).clamp(0.0, max);
    let (c0, r0) = (fc as usize, fr as usize);
    let (c1, r1) = ((c0 + 1).min(grid.n - 1), (r0 + 1).min(grid.n - 1));
    let (tc, tr) = (fc - c0 as f32, fr - r0 as f32);
    let at = |r: usize, c: usize| field[r * grid.n + c];
    let top = at(r0, c0) + (at(r0, c1) - at(r0, c0)) * tc;
    let bottom = at(r1, c0) + (at(r1, c1) - at(r1, c0)) * tc;
    Some(top + (bottom - top) * tr)
}

// ---------------------------------------------------------------------------------------
// Panels
// ---------------------------------------------------------------------------------------

/// A square plot of [−range, range]² at pixel position (x, y) with side `size`.
pub(super) struct Panel {
    pub(super) x: i32,
    pub(super) y: i32,
    pub(super) size: i32,
    pub(super) range: f32,
}

impl Panel {
    /// Data coordinates → pixel coordinates (y up in data, down on the canvas).
    fn to_px(&self, x: f32, y: f32) -> (f32, f32) {
        let s = self.size as f32 / (2.0 * self.range);
        (
            self.x as f32 + (x + self.range) * s,
            self.y as f32 + (self.range - y) * s,
        )
    }

    /// Pixel centre (px, py) of the canvas → data coordinates.
    fn to_data(&self, px: i32, py: i32) -> (f32, f32) {
        let s = 2.0 * self.range / self.size as f32;
        (
            -self.range + (px - self.x) as f32 * s + 0.5 * s,
            self.range - (py - self.y) as f32 * s - 0.5 * s,
        )
    }

    /// The panel's name, centred above it.
    pub(super) fn title(&self, c: &mut Canvas, text: &str) {
        let w = Canvas::text_width(text, LABEL_SCALE);
        let y = self.y - 9 - Canvas::text_height(LABEL_SCALE);
        c.draw_text(self.x + (self.size - w) / 2, y, text, LABEL_SCALE, INK);
    }

    /// Colors every pixel by `color(field value)`, the field interpolated from the grid.
    pub(super) fn heatmap(
        &self,
        c: &mut Canvas,
        grid: &Grid2d,
        field: &[f32],
        color: impl Fn(f32) -> Rgb,
    ) {
        for py in self.y..self.y + self.size {
            for px in self.x..self.x + self.size {
                let (x, y) = self.to_data(px, py);
                let rgb = match sample_field(grid, field, x, y) {
                    Some(v) => color(v),
                    None => NIGHT,
                };
                c.set_pixel(px, py, rgb);
            }
        }
    }

    /// The energy as a muted background — each cell shaded by the rank of its energy among
    /// all cells, so the picture is legible whatever the energy's scale — with thin
    /// contour lines at ten quantile levels on top.
    fn energy_background(&self, c: &mut Canvas, grid: &Grid2d, energy: &[f32]) {
        let rank = ranks(energy);
        self.heatmap(c, grid, &rank, |t| mix(NIGHT, WELL, (1.0 - t).powf(1.5)));
        let mut segments: Vec<Segment> = Vec::new();
        for level in quantile_levels(energy, 10) {
            for [a, b] in isolines(grid, energy, level) {
                segments.push((self.to_px(a[0], a[1]), self.to_px(b[0], b[1])));
            }
        }
        c.draw_lines(&segments, 1.0, [220, 226, 255], 0.35);
    }

    /// Scatter of `points` (`[k, 2]`) as small translucent discs; the opacity falls with
    /// the number of points so that dense regions still show structure instead of a blob.
    fn points(&self, c: &mut Canvas, points: &[f32], color: Rgb) {
        let k = (points.len() / 2).max(1) as f32;
        let alpha = (40.0 / k.sqrt()).clamp(0.3, 0.85);
        for p in points.chunks_exact(2) {
            let (x, y) = (p[0], p[1]);
            if !(x.abs() <= self.range && y.abs() <= self.range) {
                continue;
            }
            let (px, py) = self.to_px(x, y);
            c.draw_point(px, py, 1.5, color, alpha);
        }
    }

    /// The frame, tick marks on the bottom and left edges, x tick labels below and, when
    /// `y_labels`, y tick labels to the left.
    pub(super) fn frame_and_ticks(&self, c: &mut Canvas, y_labels: bool) {
        c.stroke_rect(self.x - 1, self.y - 1, self.size + 2, self.size + 2, FRAME);
        let (ticks, step) = nice_ticks(-self.range, self.range, 5);
        let th = Canvas::text_height(TICK_SCALE);
        for &t in &ticks {
            let label = tick_label(t, step);
            let w = Canvas::text_width(&label, TICK_SCALE);
            let (px, _) = self.to_px(t, 0.0);
            let px = px.round() as i32;
            let bottom = self.y + self.size;
            c.fill_rect(px, bottom + 1, 1, 4, FRAME);
            c.draw_text(px - w / 2, bottom + 8, &label, TICK_SCALE, INK);
            let (_, py) = self.to_px(0.0, t);
            let py = py.round() as i32;
            c.fill_rect(self.x - 5, py, 4, 1, FRAME);
            if y_labels {
                c.draw_text(self.x - 8 - w, py - th / 2, &label, TICK_SCALE, INK);
            }
        }
    }
}

/// The figure title, centred in the top band.
pub(super) fn title(c: &mut Canvas, text: &str, width: i32) {
    let w = Canvas::text_width(text, TITLE_SCALE);
    let x = ((width - w) / 2).max(8);
    // Drawn twice, one pixel apart: a bold weight for the one line that names the figure.
    c.draw_text(x, 16, text, TITLE_SCALE, INK);
    c.draw_text(x + 1, 16, text, TITLE_SCALE, INK);
}

/// Each value's rank among the finite values, scaled to [0, 1] (non-finite → 1, the top).
fn ranks(v: &[f32]) -> Vec<f32> {
    let mut idx: Vec<usize> = (0..v.len()).filter(|&i| v[i].is_finite()).collect();
    idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut out = vec![1.0; v.len()];
    let denom = (idx.len().max(2) - 1) as f32;
    for (r, &i) in idx.iter().enumerate() {
        out[i] = r as f32 / denom;
    }
    out
}

/// Round tick positions covering [lo, hi]: multiples of a step 1, 2 or 5 × 10^k chosen so
/// that about `target` ticks fit. Returns the ticks and the step.
pub(super) fn nice_ticks(lo: f32, hi: f32, target: usize) -> (Vec<f32>, f32) {
    let span = (hi - lo) as f64;
    if !(span > 0.0 && span.is_finite()) {
        return (vec![lo], 1.0);
    }
    let raw = span / target.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = mag
        * match raw / mag {
            r if r < 1.5 => 1.0,
            r if r < 3.0 => 2.0,
            r if r < 7.0 => 5.0,
            _ => 10.0,
        };
    let first = (lo as f64 / step).ceil() as i64;
    let last = (hi as f64 / step).floor() as i64;
    let ticks = (first..=last).map(|i| (i as f64 * step) as f32).collect();
    (ticks, step as f32)
}

/// A tick label with just enough decimals for the step (0.25 → "0.25", 2000 → "2000"),
/// switching to scientific notation for very large or very small magnitudes.
pub(super) fn tick_label(v: f32, step: f32) -> String {
    if v == 0.0 {
        return "0".into();
    }
    if v.abs() >= 1e6 || step < 1e-4 {
        return format!("{v:.1e}");
    }
    let decimals = (-(step.log10()).floor()).clamp(0.0, 6.0) as usize;
    let s = format!("{v:.decimals$}");
    if s.trim_start_matches('-')
        .chars()
        .all(|c| c == '0' || c == '.')
    {
        "0".into()
    } else {
        s
    }
}

/// Panics with a clear message when a caller passes a field of the wrong size; that is a
/// programming error, not a runtime condition.
fn check_len(what: &str, got: usize, want: usize) {
    assert_eq!(got, want, "{what} has {got} values, the grid needs {want}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::toy2d::{Toy2d, RANGE};
    use crate::plot::line_chart;

    /// −log density of the 8-gaussians mixture (up to a constant): a stand-in for a trained
    /// model's energy.
    fn eight_gaussians_energy(grid: &Grid2d) -> Vec<f32> {
        let r = 4.0 / 2f32.sqrt();
        let var = 0.125f32;
        grid.points()
            .chunks_exact(2)
            .map(|p| {
                let mut s = 0.0f64;
                for k in 0..8 {
                    let (sn, cs) = (std::f32::consts::TAU * k as f32 / 8.0).sin_cos();
                    let d2 = (p[0] - r * cs).powi(2) + (p[1] - r * sn).powi(2);
                    s += (-(d2 / (2.0 * var)) as f64).exp();
                }
                -(s.max(1e-300).ln() as f32)
            })
            .collect()
    }

    fn temp_dir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("ebm-fig-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn toy2d_figure_writes_a_png_of_the_expected_size() {
        let dir = temp_dir("toy");
        let grid = Grid2d::new(60, RANGE);
        let energy = eight_gaussians_energy(&grid);
        let data = Toy2d::EightGaussians.sample(0, 0, 4000);
        let samples = Toy2d::EightGaussians.sample(0, 1, 500);
        let path = dir.join("toy.png");
        let fig = Toy2dFigure {
            title: "test",
            data: &data,
            samples: &samples,
            grid,
            energy: &energy,
            footer: "iter 0",
        };
        toy2d_figure(&path, &fig).unwrap();
        let img = image::open(&path).unwrap().to_rgb8();
        assert_eq!(
            img.dimensions(),
            (44 + 3 * 384 + 2 * 40 + 24, 46 + 26 + 384 + 58)
        );
        // The data panel's brightest pixel is the top of the colormap (the shared scale is
        // the data's own maximum), and a panel corner is the colormap's bottom.
        let panel =
            |x0: u32| (0..384u32).flat_map(move |y| (0..384u32).map(move |x| (x0 + x, 72 + y)));
        let brightest = panel(44)
            .map(|(x, y)| img.get_pixel(x, y).0)
            .max_by_key(|p| p[0] as u32 + p[1] as u32)
            .unwrap();
        // (Interpolation between cell centres may stop just short of the peak itself.)
        let top = DENSITY_MAP.map(1.0);
        assert!(
            brightest.iter().zip(top).all(|(a, b)| a.abs_diff(b) <= 6),
            "{brightest:?}"
        );
        assert_eq!(img.get_pixel(44 + 2, 72 + 2).0, DENSITY_MAP.map(0.0));
        // The samples panel has sample-colored pixels.
        assert!(panel(44 + 2 * 424)
            .any(|(x, y)| img.get_pixel(x, y).0[0] > 200 && img.get_pixel(x, y).0[2] < 120));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn scatter_and_line_chart_write_pngs() {
        let dir = temp_dir("misc");
        let pts = Toy2d::Moons.sample(1, 0, 300);
        let path = dir.join("s.png");
        scatter_figure(&path, "moons", &pts, RANGE, None).unwrap();
        assert_eq!(
            image::open(&path).unwrap().to_rgb8().dimensions(),
            (548, 556)
        );

        let x: Vec<f32> = (0..50).map(|i| i as f32).collect();
        let a: Vec<f32> = x.iter().map(|v| (v * 0.2).sin()).collect();
        let mut b: Vec<f32> = x.iter().map(|v| v * 0.01).collect();
        b[10] = f32::NAN;
        b[30] = f32::INFINITY;
        let path = dir.join("l.png");
        line_chart(&path, "curves", &x, &[("a", &a), ("b", &b)]).unwrap();
        let img = image::open(&path).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (960, 540));
        assert!(img.pixels().any(|p| p.0 == SERIES[0]), "series a drawn");
        // No finite data at all still makes a (blank) chart rather than failing.
        line_chart(&path, "empty", &x, &[("nan", &[f32::NAN; 50])]).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn model_density_normalises_and_is_stable() {
        let grid = Grid2d::new(30, 3.0);
        // Energies far too large for a naive exp: still a proper density.
        let e: Vec<f32> = grid
            .points()
            .chunks_exact(2)
            .map(|p| 5000.0 + p[0] * p[0] + p[1] * p[1])
            .collect();
        let p = density_from_energy(&e, grid.cell_area());
        let total: f32 = p.iter().sum::<f32>() * grid.cell_area();
        assert!((total - 1.0).abs() < 1e-4, "∫p = {total}");
        assert!(p.iter().all(|v| v.is_finite()));
        let h = histogram_density(&grid, &[0.1, 0.1, 9.0, 9.0]);
        let total: f32 = h.iter().sum::<f32>() * grid.cell_area();
        assert!(
            (total - 0.5).abs() < 1e-5,
            "one of two points inside: {total}"
        );
    }

    #[test]
    fn ticks_and_labels() {
        let (t, s) = nice_ticks(-4.5, 4.5, 5);
        assert_eq!(s, 2.0);
        assert_eq!(t, vec![-4.0, -2.0, 0.0, 2.0, 4.0]);
        let (t, s) = nice_ticks(0.0, 1500.0, 8);
        assert_eq!((t[1], s), (200.0, 200.0));
        assert_eq!(tick_label(0.25, 0.05), "0.25");
        assert_eq!(tick_label(2000.0, 500.0), "2000");
        assert_eq!(tick_label(-0.1, 0.1), "-0.1");
        assert_eq!(tick_label(3e7, 1e7), "3.0e7");
    }

    /// Renders one example of each figure into /tmp/viz for eyeballing:
    /// `cargo test --lib render_examples -- --ignored`.
    #[test]
    #[ignore]
    fn render_examples() {
        let dir = Path::new("/tmp/viz");
        std::fs::create_dir_all(dir).unwrap();
        let grid = Grid2d::new(120, RANGE);
        let energy = eight_gaussians_energy(&grid);
        let data = Toy2d::EightGaussians.sample(0, 0, 20_000);
        let samples = Toy2d::EightGaussians.sample(0, 1, 1024);
        let fig = Toy2dFigure {
            title: "8gaussians  -  toy2d MLP 2-128-128-128-1",
            data: &data,
            samples: &samples,
            grid,
            energy: &energy,
            footer: "iter 1500  KL 0.12  loss -0.03",
        };
        toy2d_figure(&dir.join("toy2d.png"), &fig).unwrap();
        // An early, barely trained model: a wide bowl, samples still spread out.
        let bowl: Vec<f32> = grid
            .points()
            .chunks_exact(2)
            .map(|p| 0.08 * (p[0] * p[0] + p[1] * p[1]))
            .collect();
        let spread: Vec<f32> = Toy2d::TwentyFiveGaussians
            .sample(1, 0, 1024)
            .iter()
            .map(|v| v * 1.2)
            .collect();
        let early = Toy2dFigure {
            title: "8gaussians  -  early",
            samples: &spread,
            energy: &bowl,
            footer: "iter 10  KL 2.31  loss 0.87",
            ..fig
        };
        toy2d_figure(&dir.join("toy2d_early.png"), &early).unwrap();
        let pts = Toy2d::EightGaussians.sample(3, 0, 5000);
        scatter_figure(
            &dir.join("scatter.png"),
            "5000 Langevin samples",
            &pts,
            RANGE,
            Some((&grid, &energy)),
        )
        .unwrap();
        for d in crate::data::toy2d::ALL {
            let pts = d.sample(0, 0, 5000);
            scatter_figure(
                &dir.join(format!("data_{d}.png")),
                &d.to_string(),
                &pts,
                RANGE,
                None,
            )
            .unwrap();
        }
        let x: Vec<f32> = (0..2000).map(|i| i as f32).collect();
        let loss: Vec<f32> = x
            .iter()
            .map(|&t| -0.5 * (1.0 - (-t / 300.0).exp()) + 0.05 * (t * 0.37).sin())
            .collect();
        let ep: Vec<f32> = x
            .iter()
            .map(|&t| -2.0 * (1.0 - (-t / 400.0).exp()))
            .collect();
        let en: Vec<f32> = ep.iter().zip(&loss).map(|(a, l)| a - l).collect();
        let kl: Vec<f32> = x
            .iter()
            .map(|&t| {
                if (t as usize).is_multiple_of(100) {
                    3.0 * (-t / 500.0).exp()
                } else {
                    f32::NAN
                }
            })
            .collect();
        line_chart(
            &dir.join("curves.png"),
            "training curves",
            &x,
            &[("loss", &loss), ("E+", &ep), ("E-", &en), ("KL", &kl)],
        )
        .unwrap();
        let mut all = Canvas::new(600, 60, PAGE);
        let chars: String = (32u8..=126).map(|b| b as char).collect();
        all.draw_text(4, 4, &chars[..48], 2, INK);
        all.draw_text(4, 24, &chars[48..], 2, INK);
        all.draw_text(4, 46, &chars, 1, INK);
        all.save_png(&dir.join("font.png")).unwrap();
    }
}
