//! A minimal RGB raster with anti-aliased drawing, just enough for the engine's figures.
//!
//! Why not a plotting crate: the figures are few and fixed, and owning the ~300 lines that
//! draw them keeps the dependency tree small and the output identical on every platform
//! (no system fonts, no font rasteriser). Coordinates are pixels with the origin at the top
//! left; pixel (x, y) covers the square [x, x+1) × [y, y+1), so its center is (x+½, y+½).
//! Shapes take `f32` coordinates and are anti-aliased by coverage: a pixel is blended with
//! the shape's color in proportion to how much of it the shape covers.
//!
//! ```
//! use ebm::plot::Canvas;
//!
//! # fn main() -> ebm::Result<()> {
//! let mut c = Canvas::new(80, 40, [255, 255, 255]);
//! c.fill_rect(0, 0, 8, 8, [200, 0, 0]);
//! c.draw_line((0.0, 39.0), (79.0, 0.0), 1.5, [0, 0, 0], 1.0);
//! c.draw_point(60.0, 30.0, 4.0, [0, 0, 255], 0.8);
//! let end = c.draw_text(12, 4, "E(x)", 1, [0, 0, 0]);
//! assert_eq!(end, 12 + 4 * 6); // four 6-pixel character cells
//! assert_eq!(c.pixel(2, 2), Some([200, 0, 0]));
//! assert_eq!(c.pixel(80, 0), None, "outside");
//! let path = std::env::temp_dir().join(format!("ebm-doc-canvas-{}.png", std::process::id()));
//! c.save_png(&path)?;
//! # std::fs::remove_file(&path).ok();
//! # Ok(())
//! # }
//! ```

use std::path::Path;

use image::{codecs::png::PngEncoder, ImageEncoder};

use super::colormap::Rgb;
use super::font;
use crate::{Error, Result};

/// A line segment between two pixel positions, for [`Canvas::draw_lines`].
pub type Segment = ((f32, f32), (f32, f32));

/// An 8-bit RGB image being drawn on.
#[derive(Clone, Debug)]
pub struct Canvas {
    width: u32,
    height: u32,
    /// Row-major RGB bytes, `3 · width · height` of them.
    data: Vec<u8>,
}

impl Canvas {
    /// A `width × height` canvas filled with `background`.
    pub fn new(width: u32, height: u32, background: Rgb) -> Self {
        let mut data = Vec::with_capacity(3 * width as usize * height as usize);
        for _ in 0..width as usize * height as usize {
            data.extend_from_slice(&background);
        }
        Canvas {
            width,
            height,
            data,
        }
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// The raw row-major RGB bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.data
    }

    /// The byte offset of pixel (x, y), or None outside the canvas (drawing clips silently).
    fn offset(&self, x: i32, y: i32) -> Option<usize> {
        (x >= 0 && y >= 0 && (x as u32) < self.width && (y as u32) < self.height)
            .then(|| 3 * (y as usize * self.width as usize + x as usize))
    }

    /// The color of pixel (x, y); None outside the canvas.
    pub fn pixel(&self, x: i32, y: i32) -> Option<Rgb> {
        self.offset(x, y)
            .map(|o| [self.data[o], self.data[o + 1], self.data[o + 2]])
    }

    /// Sets pixel (x, y) to `color`; ignored outside the canvas.
    pub fn set_pixel(&mut self, x: i32, y: i32, color: Rgb) {
        if let Some(o) = self.offset(x, y) {
            self.data[o..o + 3].copy_from_slice(&color);
        }
    }

    /// Blends `color` over pixel (x, y) with opacity `alpha` ∈ [0, 1] (the "over" operator
    /// in sRGB, as most plotting libraries do); ignored outside the canvas.
    pub fn blend_pixel(&mut self, x: i32, y: i32, color: Rgb, alpha: f32) {
        let a = alpha.clamp(0.0, 1.0);
        if a <= 0.0 {
            return;
        }
        if let Some(o) = self.offset(x, y) {
            for (k, &c) in color.iter().enumerate() {
                let old = self.data[o + k] as f32;
                self.data[o + k] = (old + (c as f32 - old) * a).round() as u8;
            }
        }
    }

    /// Fills the axis-aligned rectangle with top-left (x, y) and size w × h, clipped.
    pub fn fill_rect(&mut self, x: i32, y: i32, w: i32, h: i32, color: Rgb) {
        let (x0, y0) = (x.max(0), y.max(0));
        let x1 = (x + w).min(self.width as i32);
        let y1 = (y + h).min(self.height as i32);
        for py in y0..y1 {
            for px in x0..x1 {
                self.set_pixel(px, py, color);
            }
        }
    }

    /// A one-pixel frame just inside the rectangle (x, y, w, h): crisp panel borders.
    pub fn stroke_rect(&mut self, x: i32, y: i32, w: i32, h: i32, color: Rgb) {
        self.fill_rect(x, y, w, 1, color);
        self.fill_rect(x, y + h - 1, w, 1, color);
        self.fill_rect(x, y, 1, h, color);
        self.fill_rect(x + w - 1, y, 1, h, color);
    }

    /// An anti-aliased filled disc of `radius` pixels centred at (cx, cy), blended with
    /// opacity `alpha`: the marker for scatter plots, where thousands of translucent points
    /// build up a visible density.
    pub fn draw_point(&mut self, cx: f32, cy: f32, radius: f32, color: Rgb, alpha: f32) {
        let reach = radius + 1.0;
        let (x0, x1) = ((cx - reach).floor() as i32, (cx + reach).ceil() as i32);
        let (y0, y1) = ((cy - reach).floor() as i32, (cy + reach).ceil() as i32);
        for py in y0..=y1 {
            for px in x0..=x1 {
                let d = ((px as f32 + 0.5 - cx).powi(2) + (py as f32 + 0.5 - cy).powi(2)).sqrt();
                // Coverage of a pixel by an edge at distance d, approximated linearly over
                // the one-pixel band around the circle: 1 inside, 0 outside.
                let coverage = (radius + 0.5 - d).clamp(0.0, 1.0);
                // Discs smaller than a pixel keep their area, not their peak brightness.
                let coverage = coverage * (radius * radius * std::f32::consts::PI).min(1.0);
                self.blend_pixel(px, py, color, alpha * coverage);
            }
        }
    }

    /// An anti-aliased line segment of the given `width` (pixels) from (x0, y0) to (x1, y1)
    /// with round caps: every pixel near the segment is blended by how much of it lies
    /// within width/2 of the segment. Non-finite endpoints draw nothing.
    pub fn draw_line(&mut self, a: (f32, f32), b: (f32, f32), width: f32, color: Rgb, alpha: f32) {
        let mut cov = Vec::new();
        self.line_coverage(a, b, width, |px, py, c| cov.push((px, py, c)));
        for (px, py, c) in cov {
            self.blend_pixel(px, py, color, alpha * c);
        }
    }

    /// Many segments drawn as one translucent stroke: each pixel is blended once, with the
    /// largest coverage any segment gives it. Drawing the segments one by one would blend
    /// twice where they meet and put a darker dot at every joint of a polyline or contour.
    pub fn draw_lines(&mut self, segments: &[Segment], width: f32, color: Rgb, alpha: f32) {
        let (w, h) = (self.width as usize, self.height as usize);
        let mut cov = vec![0.0f32; w * h];
        for &(a, b) in segments {
            self.line_coverage(a, b, width, |px, py, c| {
                let i = py as usize * w + px as usize;
                cov[i] = cov[i].max(c);
            });
        }
        for (i, &c) in cov.iter().enumerate() {
            if c > 0.0 {
                self.blend_pixel((i % w) as i32, (i / w) as i32, color, alpha * c);
            }
        }
    }

    /// Calls `visit(x, y, coverage)` for every on-canvas pixel the segment touches, with
    /// coverage ∈ (0, 1]: linear in the distance from the pixel centre to the segment over
    /// a one-pixel band at the stroke's edge.
    fn line_coverage(
        &self,
        (x0, y0): (f32, f32),
        (x1, y1): (f32, f32),
        width: f32,
        mut visit: impl FnMut(i32, i32, f32),
    ) {
        if !(x0.is_finite() && y0.is_finite() && x1.is_finite() && y1.is_finite()) {
            return;
        }
        // Lines thinner than a pixel are drawn one pixel wide but fainter, which reads as
        // thinner and avoids broken, aliased hairlines.
        let (half, fade) = if width < 1.0 {
            (0.5, width.max(0.0))
        } else {
            (width / 2.0, 1.0)
        };
        let reach = half + 1.0;
        let bx0 = (x0.min(x1) - reach).floor().max(0.0) as i32;
        let bx1 = (x0.max(x1) + reach).ceil().min(self.width as f32 - 1.0) as i32;
        let by0 = (y0.min(y1) - reach).floor().max(0.0) as i32;
        let by1 = (y0.max(y1) + reach).ceil().min(self.height as f32 - 1.0) as i32;
        let (dx, dy) = (x1 - x0, y1 - y0);
        let len2 = dx * dx + dy * dy;
        for py in by0..=by1 {
            for px in bx0..=bx1 {
                let (qx, qy) = (px as f32 + 0.5, py as f32 + 0.5);
                let t = if len2 > 0.0 {
                    (((qx - x0) * dx + (qy - y0) * dy) / len2).clamp(0.0, 1.0)
                } else {
                    0.0
                };
                let d = ((qx - x0 - t * dx).powi(2) + (qy - y0 - t * dy).powi(2)).sqrt();
                let coverage = (half + 0.5 - d).clamp(0.0, 1.0) * fade;
                if coverage > 0.0 {
                    visit(px, py, coverage);
                }
            }
        }
    }

    /// Draws `text` with its top-left corner at (x, y) in the embedded 5 × 7 font, each font
    /// pixel a `scale × scale` square; returns the x just past the last character cell.
    /// Newlines are not interpreted; non-ASCII characters draw as '?'.
    pub fn draw_text(&mut self, x: i32, y: i32, text: &str, scale: u32, color: Rgb) -> i32 {
        let s = scale.max(1) as i32;
        let mut pen = x;
        for c in text.chars() {
            for col in 0..5 {
                for row in 0..font::GLYPH_H + font::DESCENT {
                    if font::ink(c, col, row) {
                        self.fill_rect(pen + col as i32 * s, y + row as i32 * s, s, s, color);
                    }
                }
            }
            pen += font::CELL_W as i32 * s;
        }
        pen
    }

    /// Width in pixels that [`Canvas::draw_text`] uses for `text`, without the trailing
    /// spacing column (so centred and right-aligned text sits where it looks like it should).
    pub fn text_width(text: &str, scale: u32) -> i32 {
        let n = text.chars().count() as i32;
        if n == 0 {
            0
        } else {
            (n * font::CELL_W as i32 - 1) * scale.max(1) as i32
        }
    }

    /// Height in pixels of a line of text at `scale`: the glyph body, capitals to baseline
    /// (descenders of g, j, p, q, y hang [`font::DESCENT`] font pixels below it).
    pub fn text_height(scale: u32) -> i32 {
        (font::GLYPH_H * scale.max(1)) as i32
    }

    /// Writes the canvas as a PNG, atomically: the bytes go to `<path>.tmp`, which is then
    /// renamed over `path`, so a reader (or a crash) never sees half a picture.
    pub fn save_png(&self, path: &Path) -> Result<()> {
        let mut png = Vec::new();
        PngEncoder::new(&mut png)
            .write_image(
                &self.data,
                self.width,
                self.height,
                image::ExtendedColorType::Rgb8,
            )
            .map_err(|e| Error::format(path, e.to_string()))?;
        // Same path as model files: unique temp file, fsync, rename, so that two writers or
        // a crash never leave half a picture.
        crate::tensorfile::write_atomic(path, &png)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WHITE: Rgb = [255, 255, 255];
    const BLACK: Rgb = [0, 0, 0];

    fn ink_count(c: &Canvas, bg: Rgb) -> usize {
        c.as_bytes().chunks_exact(3).filter(|p| *p != bg).count()
    }

    #[test]
    fn text_changes_pixels_and_width_matches() {
        let mut c = Canvas::new(200, 40, WHITE);
        let end = c.draw_text(10, 10, "Hi 42", 2, BLACK);
        assert_eq!(end, 10 + 5 * 12);
        assert!(ink_count(&c, WHITE) > 50);
        assert_eq!(Canvas::text_width("Hi 42", 2), 5 * 12 - 2);
        // Nothing drawn outside the text's box [10, 10 + width) × [10, 10 + 14).
        for y in 0..40 {
            for x in 0..200 {
                let inside = (10..10 + 58).contains(&x) && (10..24).contains(&y);
                if !inside {
                    assert_eq!(c.pixel(x, y), Some(WHITE), "({x}, {y})");
                }
            }
        }
        // Different strings give different pictures.
        let mut d = Canvas::new(200, 40, WHITE);
        d.draw_text(10, 10, "Hi 43", 2, BLACK);
        assert_ne!(c.as_bytes(), d.as_bytes());
    }

    #[test]
    fn point_is_round_and_antialiased() {
        let mut c = Canvas::new(21, 21, BLACK);
        c.draw_point(10.5, 10.5, 4.0, WHITE, 1.0);
        assert_eq!(c.pixel(10, 10), Some(WHITE));
        assert_eq!(c.pixel(10, 3), Some(BLACK), "outside the radius");
        assert_eq!(c.pixel(12, 12), Some(WHITE), "centre distance 2.8");
        assert_eq!(c.pixel(14, 14), Some(BLACK), "centre distance 5.7");
        // An edge pixel is partially covered: neither black nor white.
        let edge = c.pixel(10, 6).unwrap()[0];
        assert!(edge > 0 && edge < 255, "edge {edge}");
        // Area ≈ π r² = 50.3 pixels of ink.
        let total: f32 = c
            .as_bytes()
            .chunks_exact(3)
            .map(|p| p[0] as f32 / 255.0)
            .sum();
        assert!((total - 50.3).abs() < 2.0, "area {total}");
    }

    #[test]
    fn line_covers_its_length() {
        let mut c = Canvas::new(50, 20, BLACK);
        c.draw_line((5.0, 10.0), (45.0, 10.0), 1.0, WHITE, 1.0);
        let total: f32 = c
            .as_bytes()
            .chunks_exact(3)
            .map(|p| p[0] as f32 / 255.0)
            .sum();
        // 40 px long, 1 px wide, plus round caps.
        assert!((total - 41.0).abs() < 2.5, "ink {total}");
        c.draw_line((f32::NAN, 0.0), (1.0, 1.0), 1.0, WHITE, 1.0); // ignored, no panic
        c.draw_line((-100.0, -100.0), (100.0, 100.0), 3.0, WHITE, 1.0); // clipped, no panic
    }

    #[test]
    fn polyline_joints_are_not_darker() {
        // A translucent straight line split into two segments must look like one segment.
        let mut one = Canvas::new(40, 10, BLACK);
        one.draw_lines(&[((5.0, 5.0), (35.0, 5.0))], 1.5, WHITE, 0.4);
        let mut two = Canvas::new(40, 10, BLACK);
        two.draw_lines(
            &[((5.0, 5.0), (20.0, 5.0)), ((20.0, 5.0), (35.0, 5.0))],
            1.5,
            WHITE,
            0.4,
        );
        assert_eq!(one.as_bytes(), two.as_bytes());
        assert!(one.pixel(20, 4).unwrap()[0] > 50);
    }

    #[test]
    fn blend_and_clip() {
        let mut c = Canvas::new(4, 4, BLACK);
        c.blend_pixel(1, 1, WHITE, 0.5);
        assert_eq!(c.pixel(1, 1), Some([128, 128, 128]));
        c.blend_pixel(-1, 7, WHITE, 1.0);
        c.fill_rect(-5, -1, 100, 2, WHITE);
        assert_eq!(c.pixel(3, 0), Some(WHITE));
        assert_eq!(c.pixel(3, 1), Some(BLACK));
        assert_eq!(c.pixel(4, 0), None);
    }

    #[test]
    fn png_round_trip() {
        let dir = std::env::temp_dir().join(format!("ebm-canvas-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.png");
        let mut c = Canvas::new(30, 20, WHITE);
        c.fill_rect(0, 0, 10, 10, [200, 10, 20]);
        c.save_png(&path).unwrap();
        let img = image::open(&path).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (30, 20));
        assert_eq!(img.get_pixel(5, 5).0, [200, 10, 20]);
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(left.len(), 1, "no temp file left: {left:?}");
        // A missing folder is made; a file in the way is an error that names it.
        c.save_png(&dir.join("made/c.png")).unwrap();
        std::fs::write(dir.join("blocker"), b"").unwrap();
        let err = c.save_png(&dir.join("blocker/c.png")).unwrap_err();
        assert!(err.to_string().contains("blocker"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
