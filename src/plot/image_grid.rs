//! Tile grids of images: the picture an image EBM is judged by (data next to Langevin
//! samples), and before / after pairs for inpainting and denoising.
//!
//! Images come in the engine's own layout, `[n, C, H, W]` f32 in [−1, 1] (docs/ARCHITECTURE.md, Conventions),
//! exactly what the data loaders produce and the samplers return, so a caller never
//! converts anything. Values are clamped to [−1, 1] before being mapped to 0..255: a
//! Langevin chain that overshoots its box shows as saturated, not as wrapped-around noise.
//! NaN shows as black. Each image pixel becomes a `scale × scale` square (nearest
//! neighbour, no smoothing), because 28-pixel digits are unreadable at 1:1 and blurring
//! would hide exactly the pixel-level artefacts one looks for in samples.
//!
//! The page, title font and colors are those of [`super::figures`], so grids and the other
//! figures of a run look like one set.
//!
//! ```
//! use ebm::plot::{image_grid, image_pairs};
//!
//! # fn main() -> ebm::Result<()> {
//! // Six 1×8×8 gray images in [−1, 1]: horizontal ramps of rising contrast.
//! let images: Vec<f32> = (0..6)
//!     .flat_map(|k| (0..64).map(move |i| (i % 8) as f32 / 7.0 * k as f32 / 5.0 * 2.0 - 1.0))
//!     .collect();
//! let dir = std::env::temp_dir();
//! let pid = std::process::id();
//! let grid = dir.join(format!("ebm-doc-grid-{pid}.png"));
//! image_grid(&grid, "samples", &images, 1, 8, 8, 3, 4)?; // 3 per row, 4× enlarged
//! let noisy: Vec<f32> = images.iter().map(|v| -v).collect();
//! let pairs = dir.join(format!("ebm-doc-pairs-{pid}.png"));
//! image_pairs(&pairs, "denoising", &noisy, &images, 1, 8, 8, 3, 4)?;
//! // Shapes that do not add up are errors, not panics.
//! assert!(image_grid(&grid, "bad", &images[..100], 1, 8, 8, 3, 4).is_err());
//! # std::fs::remove_file(&grid).ok();
//! # std::fs::remove_file(&pairs).ok();
//! # Ok(())
//! # }
//! ```

use std::path::Path;

use super::canvas::Canvas;
use super::colormap::Rgb;
use crate::{Error, Result};

/// Page background (as in `figures.rs`); also the color of the gaps between tiles.
const PAGE: Rgb = [255, 255, 255];
/// Titles and labels (as in `figures.rs`).
const INK: Rgb = [33, 33, 38];
/// Text scales of the 5 × 7 font, as in `figures.rs`.
const TITLE_SCALE: u32 = 2;
const LABEL_SCALE: u32 = 2;
/// Height of the title band: the title sits at y = 16, as in `figures.rs`.
const TOP: i32 = 46;
/// Space around the grids.
const MARGIN: i32 = 16;
/// Gap between tiles, in page pixels.
const GAP: i32 = 2;
/// Space between the two grids of [`image_pairs`].
const PAIR_GAP: i32 = 24;
/// Space from a grid's label to the grid.
const LABEL_GAP: i32 = 8;
/// Largest canvas side we agree to draw: a typo in `scale` should be an error, not 10 GB.
const MAX_SIDE: i64 = 16_384;

/// A batch of images laid out as tiles: validated shape and the grid's geometry.
struct Tiles<'a> {
    images: &'a [f32],
    c: usize,
    h: usize,
    w: usize,
    n: usize,
    cols: usize,
    rows: usize,
    scale: i32,
}

impl<'a> Tiles<'a> {
    fn new(
        what: &str,
        images: &'a [f32],
        c: usize,
        h: usize,
        w: usize,
        cols: usize,
        scale: u32,
    ) -> Result<Self> {
        if c != 1 && c != 3 {
            return Err(Error::Shape(format!(
                "{what}: image grids need 1 or 3 channels, got {c}"
            )));
        }
        let len = c * h * w;
        if len == 0 || images.is_empty() || !images.len().is_multiple_of(len) {
            return Err(Error::Shape(format!(
                "{what}: {} values are not a whole number (≥ 1) of {c}x{h}x{w} images",
                images.len()
            )));
        }
        if cols == 0 || scale == 0 {
            return Err(Error::Shape(format!(
                "{what}: columns ({cols}) and scale ({scale}) must be at least 1"
            )));
        }
        let n = images.len() / len;
        let cols = cols.min(n);
        let t = Tiles {
            images,
            c,
            h,
            w,
            n,
            cols,
            rows: n.div_ceil(cols),
            scale: scale.min(MAX_SIDE as u32) as i32,
        };
        let (gw, gh) = (t.width_i64(), t.height_i64());
        if gw > MAX_SIDE || gh > MAX_SIDE {
            return Err(Error::Shape(format!(
                "{what}: a {gw} x {gh} pixel grid is too large (at most {MAX_SIDE} per side); \
                 lower the scale or the number of images"
            )));
        }
        Ok(t)
    }

    fn width_i64(&self) -> i64 {
        let tile = self.w as i64 * self.scale as i64;
        self.cols as i64 * (tile + GAP as i64) - GAP as i64
    }

    fn height_i64(&self) -> i64 {
        let tile = self.h as i64 * self.scale as i64;
        self.rows as i64 * (tile + GAP as i64) - GAP as i64
    }

    /// Grid width in page pixels (checked to fit in `MAX_SIDE`).
    fn width(&self) -> i32 {
        self.width_i64() as i32
    }

    fn height(&self) -> i32 {
        self.height_i64() as i32
    }

    /// Draws the grid with its top-left corner at (x0, y0): tile k at row k / cols, column
    /// k mod cols.
    fn draw(&self, c: &mut Canvas, x0: i32, y0: i32) {
        let (h, w, s) = (self.h, self.w, self.scale);
        let plane = h * w;
        for k in 0..self.n {
            let img = &self.images[k * self.c * plane..(k + 1) * self.c * plane];
            let tx = x0 + (k % self.cols) as i32 * (w as i32 * s + GAP);
            let ty = y0 + (k / self.cols) as i32 * (h as i32 * s + GAP);
            for y in 0..h {
                for x in 0..w {
                    let i = y * w + x;
                    let color = if self.c == 1 {
                        let v = to_byte(img[i]);
                        [v, v, v]
                    } else {
                        [
                            to_byte(img[i]),
                            to_byte(img[plane + i]),
                            to_byte(img[2 * plane + i]),
                        ]
                    };
                    c.fill_rect(tx + x as i32 * s, ty + y as i32 * s, s, s, color);
                }
            }
        }
    }
}

/// [−1, 1] → 0..255, clamped; NaN → 0.
fn to_byte(v: f32) -> u8 {
    if v.is_nan() {
        0
    } else {
        ((v.clamp(-1.0, 1.0) + 1.0) * 127.5).round() as u8
    }
}

/// The figure title, centred and bold, as `figures.rs` draws it.
fn draw_title(c: &mut Canvas, text: &str, width: i32) {
    let w = Canvas::text_width(text, TITLE_SCALE);
    let x = ((width - w) / 2).max(8);
    c.draw_text(x, 16, text, TITLE_SCALE, INK);
    c.draw_text(x + 1, 16, text, TITLE_SCALE, INK);
}

/// Page width that fits `content` pixels and the title.
fn page_width(content: i32, title: &str) -> i32 {
    (content + 2 * MARGIN).max(Canvas::text_width(title, TITLE_SCALE) + 2 * MARGIN + 2)
}

/// Writes `images` (`[n, C, H, W]` in [−1, 1], C = 1 gray or 3 RGB) as a PNG grid of n tiles,
/// `cols` per row (fewer when n < cols), 2-pixel gaps, each pixel drawn as a
/// `scale × scale` square, under a title. Saved atomically. Shapes that do not add up are an
/// [`Error::Shape`], never a panic.
#[allow(clippy::too_many_arguments)] // one flat call mirrors the tensor's layout; a struct would only rename it
pub fn image_grid(
    path: &Path,
    title: &str,
    images: &[f32],
    channels: usize,
    height: usize,
    width: usize,
    cols: usize,
    scale: u32,
) -> Result<()> {
    let t = Tiles::new("image grid", images, channels, height, width, cols, scale)?;
    let page_w = page_width(t.width(), title);
    let page_h = TOP + t.height() + MARGIN;
    let mut c = Canvas::new(page_w as u32, page_h as u32, PAGE);
    draw_title(&mut c, title, page_w);
    t.draw(&mut c, (page_w - t.width()) / 2, TOP);
    c.save_png(path)
}

/// Writes two grids side by side, labelled "before" and "after" (e.g. masked input and
/// inpainted result, or noisy and denoised images), under a title. `before` and `after`
/// must hold the same number of `[C, H, W]` images, tile k of one matching tile k of the
/// other; otherwise as [`image_grid`].
#[allow(clippy::too_many_arguments)] // as image_grid
pub fn image_pairs(
    path: &Path,
    title: &str,
    before: &[f32],
    after: &[f32],
    channels: usize,
    height: usize,
    width: usize,
    cols: usize,
    scale: u32,
) -> Result<()> {
    if before.len() != after.len() {
        return Err(Error::Shape(format!(
            "image pairs: 'before' has {} values, 'after' {}; they must match",
            before.len(),
            after.len()
        )));
    }
    let a = Tiles::new("before", before, channels, height, width, cols, scale)?;
    let b = Tiles::new("after", after, channels, height, width, cols, scale)?;
    let content = a.width() + PAIR_GAP + b.width();
    let page_w = page_width(content, title);
    let label_h = Canvas::text_height(LABEL_SCALE);
    let grid_y = TOP + label_h + LABEL_GAP;
    let page_h = grid_y + a.height() + MARGIN;
    let mut c = Canvas::new(page_w as u32, page_h as u32, PAGE);
    draw_title(&mut c, title, page_w);
    let xa = (page_w - content) / 2;
    let xb = xa + a.width() + PAIR_GAP;
    for (x, grid, label) in [(xa, &a, "before"), (xb, &b, "after")] {
        let lw = Canvas::text_width(label, LABEL_SCALE);
        c.draw_text(x + (grid.width() - lw) / 2, TOP, label, LABEL_SCALE, INK);
        grid.draw(&mut c, x, grid_y);
    }
    c.save_png(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("ebm-grid-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn grid_png_has_the_expected_size_and_pixels() {
        let dir = temp_dir("gray");
        let path = dir.join("g.png");
        // Five 2 × 3 gray images, all −1 except: image 3 pixel (row 1, col 2) = 1, image 4
        // pixel (0, 0) = 0, image 0 pixel (0, 1) = 7 (clamped to 1).
        let (h, w, scale, cols) = (2usize, 3usize, 3u32, 2usize);
        let mut images = vec![-1.0f32; 5 * h * w];
        images[3 * 6 + w + 2] = 1.0;
        images[4 * 6] = 0.0;
        images[1] = 7.0;
        image_grid(&path, "t", &images, 1, h, w, cols, scale).unwrap();
        let png = image::open(&path).unwrap().to_rgb8();
        // 2 columns of 9-px tiles and one gap; 3 rows of 6-px tiles and two gaps.
        let (gw, gh) = (2 * 9 + 2, 3 * 6 + 2 * 2);
        assert_eq!(png.dimensions(), ((gw + 32) as u32, (46 + gh + 16) as u32));
        let (x0, y0) = (16u32, 46u32);
        let px = |x: u32, y: u32| png.get_pixel(x0 + x, y0 + y).0;
        // Image 3 is row 1, column 1: its pixel (1, 2) spans 3 × 3 page pixels.
        let (tx, ty) = (9 + 2, 6 + 2);
        for d in 0..3 {
            assert_eq!(px(tx + 2 * 3 + d, ty + 3 + d), [255; 3]);
        }
        assert_eq!(px(tx + 2 * 3 - 1, ty + 3), [0; 3], "left neighbour is −1");
        assert_eq!(px(0, 2 * (6 + 2)), [128; 3], "image 4, value 0");
        assert_eq!(px(3, 0), [255; 3], "7 is clamped to 1");
        assert_eq!(px(9, 0), [255; 3], "the gap is page white");
        assert_eq!(px(tx, 2 * (6 + 2)), [255; 3], "no sixth tile: page");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn rgb_tiles_and_pairs() {
        let dir = temp_dir("rgb");
        // One 3 × 1 × 2 image: pixel 0 = (1, −1, 0), pixel 1 = (−1, 1, NaN).
        let img = [1.0, -1.0, -1.0, 1.0, 0.0, f32::NAN];
        let path = dir.join("rgb.png");
        image_grid(&path, "rgb", &img, 3, 1, 2, 8, 4).unwrap();
        let png = image::open(&path).unwrap().to_rgb8();
        let x0 = (png.width() - 8) / 2;
        assert_eq!(png.get_pixel(x0 + 1, 47).0, [255, 0, 128]);
        assert_eq!(png.get_pixel(x0 + 5, 49).0, [0, 255, 0]);
        // Pairs: before all −1, after all 1; the right grid is white, the left black.
        let before = vec![-1.0f32; 4 * 16];
        let after = vec![1.0f32; 4 * 16];
        let path = dir.join("pairs.png");
        image_pairs(&path, "inpainting", &before, &after, 1, 4, 4, 2, 2).unwrap();
        let png = image::open(&path).unwrap().to_rgb8();
        let gw = 2 * 8 + 2;
        let content = 2 * gw + PAIR_GAP as u32;
        assert_eq!(png.width(), page_width(content as i32, "inpainting") as u32);
        let grid_y = (TOP + Canvas::text_height(LABEL_SCALE) + LABEL_GAP) as u32;
        assert_eq!(png.height(), grid_y + 2 * 8 + 2 + 16);
        let xa = (png.width() - content) / 2;
        assert_eq!(png.get_pixel(xa, grid_y).0, [0; 3]);
        assert_eq!(png.get_pixel(xa + gw + PAIR_GAP as u32, grid_y).0, [255; 3]);
        // The labels put ink above the grids.
        let ink = (TOP as u32..grid_y)
            .flat_map(|y| (0..png.width()).map(move |x| (x, y)))
            .filter(|&(x, y)| png.get_pixel(x, y).0 == INK)
            .count();
        assert!(ink > 40, "label ink {ink}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_shapes_are_errors() {
        let p = std::env::temp_dir().join("ebm-grid-never-written.png");
        let img = vec![0.0f32; 10];
        assert!(
            image_grid(&p, "x", &img, 1, 2, 2, 4, 1).is_err(),
            "10 % 4 != 0"
        );
        assert!(
            image_grid(&p, "x", &img, 2, 1, 5, 4, 1).is_err(),
            "2 channels"
        );
        assert!(
            image_grid(&p, "x", &[], 1, 2, 2, 4, 1).is_err(),
            "no images"
        );
        assert!(
            image_grid(&p, "x", &img, 1, 1, 10, 0, 1).is_err(),
            "0 columns"
        );
        assert!(
            image_grid(&p, "x", &img, 1, 1, 10, 1, 100_000).is_err(),
            "huge"
        );
        assert!(image_pairs(&p, "x", &img, &img[..5], 1, 1, 5, 1, 1).is_err());
        assert!(!p.exists());
    }

    /// Draws the shipped digits into /tmp/img for eyeballing:
    /// `cargo test --lib render_digit_grid -- --ignored`.
    #[test]
    #[ignore]
    fn render_digit_grid() {
        use crate::data::images;
        let dir = Path::new("/tmp/img");
        std::fs::create_dir_all(dir).unwrap();
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(images::DEFAULT_DIGITS);
        let set = images::load(&p, 1, 32, 32).unwrap();
        let first = &set.data[..64 * set.sample_len()];
        image_grid(
            &dir.join("digits.png"),
            "MNIST subset - first 64 digits (1x32x32)",
            first,
            1,
            32,
            32,
            8,
            3,
        )
        .unwrap();
        let noisy: Vec<f32> = first
            .iter()
            .enumerate()
            .map(|(i, &v)| if (i * 7919) % 5 == 0 { -v } else { v })
            .collect();
        image_pairs(
            &dir.join("pairs.png"),
            "denoising (example)",
            &noisy[..16 * 1024],
            &first[..16 * 1024],
            1,
            32,
            32,
            4,
            3,
        )
        .unwrap();
        let rgb = images::load(&p, 3, 48, 48).unwrap();
        image_grid(
            &dir.join("digits_rgb48.png"),
            "resized to 3x48x48",
            &rgb.data[..16 * rgb.sample_len()],
            3,
            48,
            48,
            8,
            2,
        )
        .unwrap();
    }
}
