//! STUB: pictures (being written).
pub mod grid;
pub use grid::Grid2d;
// TEMPORARY stubs until the plot helper's figures land.
pub struct Toy2dFigure<'a> {
    pub title: &'a str,
    pub data: &'a [f32],
    pub samples: &'a [f32],
    pub grid: Grid2d,
    pub energy: &'a [f32],
    pub footer: &'a str,
}
pub fn toy2d_figure(_: &std::path::Path, _: &Toy2dFigure) -> crate::Result<()> {
    Ok(())
}
pub fn scatter_figure(
    _: &std::path::Path,
    _: &str,
    _: &[f32],
    _: f32,
    _: Option<(&Grid2d, &[f32])>,
) -> crate::Result<()> {
    Ok(())
}
pub fn line_chart(_: &std::path::Path, _: &str, _: &[f32], _: &[(&str, &[f32])]) -> crate::Result<()> {
    Ok(())
}
