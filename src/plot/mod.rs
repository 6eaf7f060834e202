//! Pictures: PNG figures of toy 2D densities, samples and training curves.
pub mod canvas;
pub mod colormap;
pub mod contour;
pub mod figures;
pub mod font;
pub mod grid;
