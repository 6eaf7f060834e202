//! Pictures: PNG figures of toy 2D densities, samples and training curves.
//!
//! For a 2D energy-based model the pictures *are* the evaluation most people look at first:
//! does the model density match the data, do the Langevin samples sit in the energy wells,
//! is the loss settling. This module draws them with nothing but the `image` crate's PNG
//! encoder, so the engine needs no font, plotting or system graphics library.
//!
//! The pieces, bottom up:
//! - [`canvas`]: an RGB raster with anti-aliased discs and lines, alpha blending, an
//!   embedded bitmap font ([`font`]) and atomic PNG saving — the only drawing primitives
//!   the figures need.
//! - [`colormap`]: viridis, magma and inferno, perceptual colormaps, so that heatmaps show
//!   density differences honestly and read in grayscale.
//! - [`grid`]: [`Grid2d`], the n × n grid over [−range, range]² on which energies are
//!   evaluated and data is binned; its row-major cell order is image order.
//! - [`contour`]: marching-squares isolines, for energy contours.
//! - [`image_grid`](mod@image_grid): tile grids of `[n, C, H, W]` images ([`image_grid()`]) and before /
//!   after pairs ([`image_pairs`]), for image datasets and samples.
//! - [`figures`]: the figures the CLI writes — [`toy2d_figure`] (data vs model density vs
//!   samples), [`scatter_figure`], [`class_scatter_figure`] — plus the grid densities they show
//!   ([`histogram_density`], [`density_from_energy`]), which also serve grid estimates
//!   such as the KL between data and model; [`line_chart`](mod@line_chart) (training
//!   curves) and [`reliability`] (calibration diagrams) have files of their own.
//! - [`reliability`](mod@reliability): [`reliability_diagram`], a classifier's accuracy
//!   against its confidence per bin (calibration), one model or several overlaid.
//!
//! The toy 2D snapshot of a (here untrained) model, as `ebm train toy2d` writes it:
//!
//! ```
//! use ebm::data::{toy2d::RANGE, Toy2d};
//! use ebm::plot::{toy2d_figure, Grid2d, Toy2dFigure};
//! use ebm::{CpuBackend, EnergyNet, Spec};
//!
//! # fn main() -> ebm::Result<()> {
//! let b = CpuBackend::new();
//! let mut net = EnergyNet::new(&b, &Spec::mlp(2, 32, 2), 0)?;
//! let grid = Grid2d::new(64, RANGE);
//! let energy = net.energies(&b, &grid.points())?;
//! let data = Toy2d::EightGaussians.sample(0, 0, 2000);
//! let samples = Toy2d::EightGaussians.sample(0, 1, 500); // stand-ins for Langevin samples
//! let path = std::env::temp_dir().join(format!("ebm-doc-toy2d-{}.png", std::process::id()));
//! let figure = Toy2dFigure {
//!     title: "8gaussians - untrained MLP",
//!     data: &data,
//!     samples: &samples,
//!     grid,
//!     energy: &energy,
//!     footer: "iter 0",
//! };
//! toy2d_figure(&path, &figure)?;
//! assert!(path.is_file());
//! # std::fs::remove_file(&path).ok();
//! # Ok(())
//! # }
//! ```

pub mod canvas;
pub mod colormap;
pub mod comparison;
pub mod contour;
pub mod figures;
pub mod font;
pub mod grid;
pub mod image_grid;
pub mod line_chart;
pub mod reliability;

pub use canvas::{Canvas, Segment};
pub use colormap::{inferno, magma, viridis, Colormap, Rgb};
pub use comparison::{densities_figure, points_density, sampler_comparison_figure};
pub use contour::{isolines, quantile_levels};
pub use figures::{
    class_scatter_figure, density_from_energy, histogram_density, scatter_figure, toy2d_figure,
    Toy2dFigure,
};
pub use grid::Grid2d;
pub use image_grid::{image_grid, image_pairs};
pub use line_chart::line_chart;
pub use reliability::{reliability_diagram, reliability_size};
