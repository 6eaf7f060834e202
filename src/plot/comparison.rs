//! Samplers side by side: a 2D model's own density exp(−E)/Z next to the densities of
//! several samplers' chains (smoothed histograms), all on one colour scale — the picture
//! that shows a biased sampler for what it is.

use std::path::Path;

use super::canvas::Canvas;
use super::figures::{
    colorbar, max_finite, smooth, title, Panel, DENSITY_MAP, LABEL_SCALE, MUTED, PAGE,
};
use super::{density_from_energy, histogram_density, Grid2d};
use crate::Result;

/// Side of one panel, in pixels.
const PANEL: i32 = 300;

/// Writes the model density (E at `grid.points()`) and, for each `(name, points)` in
/// `samples`, the density of those points, in a row of panels under `title`, with `footer`
/// below. The colour scale is the model density's: a sampler that piles its chains where
/// the model has little mass shows it.
///
/// ```
/// use ebm::plot::{sampler_comparison_figure, Grid2d};
///
/// # fn main() -> ebm::Result<()> {
/// let grid = Grid2d::new(32, 2.0);
/// let energy: Vec<f32> = grid.points().chunks(2).map(|p| p[0] * p[0] + p[1] * p[1]).collect();
/// let path = std::env::temp_dir().join(format!("ebm-doc-compare-{}.png", std::process::id()));
/// sampler_comparison_figure(&path, "a Gaussian", &grid, &energy, &[("none", &[0.0, 0.0])], "")?;
/// # std::fs::remove_file(&path).ok();
/// # Ok(())
/// # }
/// ```
pub fn sampler_comparison_figure(
    path: &Path,
    figure_title: &str,
    grid: &Grid2d,
    energy: &[f32],
    samples: &[(&str, &[f32])],
    footer: &str,
) -> Result<()> {
    let model = density_from_energy(energy, grid.cell_area());
    let mut densities = vec![("model exp(-E)/Z", model)];
    for (name, points) in samples {
        densities.push((name, points_density(grid, points)));
    }
    densities_figure(path, figure_title, grid, &densities, footer)
}

/// The smoothed histogram density of `points` `[m, 2]` on `grid`, as the panels show it.
pub fn points_density(grid: &Grid2d, points: &[f32]) -> Vec<f32> {
    smooth(grid, &histogram_density(grid, points))
}

/// Densities on `grid` (`(panel title, density at grid.points())`), in a row of panels on
/// the first one's colour scale, under `figure_title` with `footer` below.
pub fn densities_figure(
    path: &Path,
    figure_title: &str,
    grid: &Grid2d,
    densities: &[(&str, Vec<f32>)],
    footer: &str,
) -> Result<()> {
    let vmax = densities.first().map_or(1.0, |(_, d)| max_finite(d));
    const LEFT: i32 = 44;
    const GAP: i32 = 36;
    const RIGHT: i32 = 24;
    const TOP: i32 = 46;
    const PANEL_TITLE: i32 = 26;
    const BOTTOM: i32 = 58;
    let n = densities.len() as i32;
    let width = LEFT + n * PANEL + (n - 1) * GAP + RIGHT;
    let height = TOP + PANEL_TITLE + PANEL + BOTTOM;
    let mut c = Canvas::new(width as u32, height as u32, PAGE);
    title(&mut c, figure_title, width);
    for (i, (name, density)) in densities.iter().enumerate() {
        let panel = Panel {
            x: LEFT + i as i32 * (PANEL + GAP),
            y: TOP + PANEL_TITLE,
            size: PANEL,
            range: grid.range,
        };
        panel.title(&mut c, name);
        panel.heatmap(&mut c, grid, density, |v| DENSITY_MAP.map(v / vmax));
        panel.frame_and_ticks(&mut c, i == 0);
    }
    let footer_y = height - 12 - Canvas::text_height(LABEL_SCALE);
    c.draw_text(LEFT, footer_y, footer, LABEL_SCALE, MUTED);
    colorbar(&mut c, width - RIGHT, footer_y, vmax);
    c.save_png(path)
}
