//! Reliability diagrams: how well a classifier's confidence matches its accuracy
//! ([`crate::eval::calibration`]), as Guo et al. (2017) draw them.
//!
//! The main panel has one bar per confidence bin, as tall as the accuracy of the samples in
//! it; the hatched red box between the bar's top and the bin's mean confidence is the
//! calibration gap, and the dashed diagonal is perfect calibration (bars below it: over-
//! confident). Under it, a strip shows how the samples spread over the bins, which tells a
//! wide gap on three samples from one on thousands. Several models can be overlaid: their
//! bars stand side by side in each bin, one color per model, and the header gives each
//! one's accuracy, ECE and MCE.
//!
//! ```
//! use ebm::eval::calibration::reliability;
//! use ebm::plot::reliability_diagram;
//!
//! # fn main() -> ebm::Result<()> {
//! // Two classes: a model that says 0.9 for what is right 70 % of the time.
//! let probs: Vec<f32> = (0..10).flat_map(|_| [0.9, 0.1]).collect();
//! let labels = [0, 0, 0, 0, 0, 0, 0, 1, 1, 1];
//! let r = reliability(&probs, &labels, 2, 15);
//! let path = std::env::temp_dir().join(format!("ebm-doc-reliability-{}.png", std::process::id()));
//! reliability_diagram(&path, "overconfident", &[("model", &r)])?;
//! assert!(path.is_file());
//! # std::fs::remove_file(&path).ok();
//! # Ok(())
//! # }
//! ```

use std::path::Path;

use super::canvas::{Canvas, Segment};
use super::colormap::{mix, Rgb};
use super::figures::{
    nice_ticks, tick_label, title, FRAME, GRIDLINE, INK, LABEL_SCALE, MUTED, PAGE, TITLE_SCALE,
};
use super::font;
use crate::eval::calibration::Reliability;
use crate::Result;

/// Bar colors, one per overlaid model: tab10's blue, green, purple and brown (its red and
/// orange would clash with the gap).
pub const BAR_COLORS: [Rgb; 4] = [
    [31, 119, 180],
    [44, 160, 44],
    [148, 103, 189],
    [140, 86, 75],
];
/// The calibration gap: hatched translucent red.
pub const GAP_COLOR: Rgb = [214, 39, 40];
/// The perfect-calibration diagonal.
const DIAGONAL: Rgb = [80, 80, 90];

/// Canvas layout in pixels: the square panel's side, the margins, the height of one
/// header line (the title's, then one per model), and the sample-count strip.
const PANEL: i32 = 520;
const LEFT: i32 = 86;
const RIGHT: i32 = 34;
const TITLE_H: i32 = 42;
const HEADER_LINE: i32 = 22;
const HEADER_GAP: i32 = 14;
const STRIP_GAP: i32 = 12;
const STRIP: i32 = 110;
const BOTTOM: i32 = 64;

/// The canvas size [`reliability_diagram`] draws for `models` overlaid series.
pub fn reliability_size(models: usize) -> (u32, u32) {
    let w = LEFT + PANEL + RIGHT;
    let h = top(models) + PANEL + STRIP_GAP + STRIP + BOTTOM;
    (w as u32, h as u32)
}

/// The y of the main panel's top edge.
fn top(models: usize) -> i32 {
    TITLE_H + HEADER_LINE * models.max(1) as i32 + HEADER_GAP
}

/// Writes the reliability diagram of one or more models, each a `(label, reliability)`
/// pair (a label may be empty for a lone model), under `title_text`.
pub fn reliability_diagram(
    path: &Path,
    title_text: &str,
    series: &[(&str, &Reliability)],
) -> Result<()> {
    draw(title_text, series).save_png(path)
}

/// The figure on a canvas (module docs).
fn draw(title_text: &str, series: &[(&str, &Reliability)]) -> Canvas {
    let (w, h) = reliability_size(series.len());
    let mut c = Canvas::new(w, h, PAGE);
    let width = w as i32;
    if Canvas::text_width(title_text, TITLE_SCALE) <= width - 32 {
        title(&mut c, title_text, width);
    } else {
        // Too long for the bold title: set smaller (and bold the same way) so it stays whole.
        let tw = Canvas::text_width(title_text, 1);
        let x = ((width - tw) / 2).max(8);
        c.draw_text(x, 20, title_text, 1, INK);
        c.draw_text(x + 1, 20, title_text, 1, INK);
    }
    header(&mut c, series, width);
    let p = Plot {
        x: LEFT,
        y: top(series.len()),
        w: PANEL,
        h: PANEL,
    };
    let strip = Plot {
        x: LEFT,
        y: p.y + p.h + STRIP_GAP,
        w: PANEL,
        h: STRIP,
    };

    // Gridlines, then bars and gaps, then the diagonal over them, then the frame.
    let (ticks, step) = nice_ticks(0.0, 1.0, 5);
    for &t in &ticks {
        let (x, y) = (p.px(t).round() as i32, p.py(t).round() as i32);
        c.fill_rect(x, p.y, 1, p.h, GRIDLINE);
        c.fill_rect(p.x, y, p.w, 1, GRIDLINE);
        c.fill_rect(x, strip.y, 1, strip.h, GRIDLINE);
    }
    let k = series.len().max(1);
    for (i, (_, r)) in series.iter().enumerate() {
        let color = BAR_COLORS[i % BAR_COLORS.len()];
        for bin in r.bins.iter().filter(|b| b.count > 0) {
            let (x0, x1) = slot(&p, bin.lo, bin.hi, i, k);
            let acc = p.py(bin.accuracy as f32).round() as i32;
            let conf = p.py(bin.confidence as f32).round() as i32;
            let bottom = p.y + p.h;
            blend_rect(&mut c, x0, acc, x1 - x0, bottom - acc, color, 0.88);
            outline(
                &mut c,
                x0,
                acc,
                x1 - x0,
                bottom - acc,
                mix(color, INK, 0.45),
            );
            let (g0, g1) = (acc.min(conf), acc.max(conf));
            if g1 > g0 {
                hatch(&mut c, x0, g0, x1 - x0, g1 - g0);
            }
        }
    }
    dashed(
        &mut c,
        (p.px(0.0), p.py(0.0)),
        (p.px(1.0), p.py(1.0)),
        1.8,
        DIAGONAL,
    );
    c.stroke_rect(p.x - 1, p.y - 1, p.w + 2, p.h + 2, FRAME);

    // The y axis: ticks, labels and the name, read bottom to top.
    let th = Canvas::text_height(LABEL_SCALE);
    let mut label_left = p.x;
    for &t in &ticks {
        let y = p.py(t).round() as i32;
        c.fill_rect(p.x - 6, y, 5, 1, FRAME);
        let label = tick_label(t, step);
        let lw = Canvas::text_width(&label, LABEL_SCALE);
        c.draw_text(p.x - 11 - lw, y - th / 2, &label, LABEL_SCALE, INK);
        label_left = label_left.min(p.x - 11 - lw);
    }
    let name = "accuracy";
    let name_h = Canvas::text_height(LABEL_SCALE) + 2 * font::DESCENT as i32;
    draw_text_up(
        &mut c,
        label_left - 12 - name_h,
        p.y + (p.h + Canvas::text_width(name, LABEL_SCALE)) / 2,
        name,
        LABEL_SCALE,
        INK,
    );
    legend(&mut c, &p, series);

    // The strip: share of the samples in each bin, scaled to the fullest bin of any model.
    let share_max = series
        .iter()
        .flat_map(|(_, r)| r.bins.iter().map(|b| share(b.count, r.samples)))
        .fold(0.0f64, f64::max);
    for (i, (_, r)) in series.iter().enumerate() {
        let color = BAR_COLORS[i % BAR_COLORS.len()];
        for bin in r.bins.iter().filter(|b| b.count > 0) {
            let (x0, x1) = slot(&strip, bin.lo, bin.hi, i, k);
            let frac = share(bin.count, r.samples) / share_max * 0.9;
            // At least one pixel: a bin with a handful of samples is still visibly not empty.
            let bh = ((frac * strip.h as f64).round() as i32).max(1);
            let y = strip.y + strip.h - bh;
            blend_rect(&mut c, x0, y, x1 - x0, bh, color, 0.88);
        }
    }
    c.stroke_rect(strip.x - 1, strip.y - 1, strip.w + 2, strip.h + 2, FRAME);
    c.draw_text(
        strip.x + 8,
        strip.y + 7,
        "share of samples",
        LABEL_SCALE,
        MUTED,
    );
    if share_max > 0.0 {
        let top_y = strip.y + strip.h - (0.9 * strip.h as f64).round() as i32;
        let label = format!("{:.0}%", 100.0 * share_max);
        let lw = Canvas::text_width(&label, LABEL_SCALE);
        c.fill_rect(strip.x - 6, top_y, 5, 1, FRAME);
        c.draw_text(strip.x - 11 - lw, top_y - th / 2, &label, LABEL_SCALE, INK);
        let zw = Canvas::text_width("0", LABEL_SCALE);
        let bottom = strip.y + strip.h;
        c.fill_rect(strip.x - 6, bottom - 1, 5, 1, FRAME);
        c.draw_text(strip.x - 11 - zw, bottom - th, "0", LABEL_SCALE, INK);
    }

    // The x axis under the strip: ticks, labels, name.
    let bottom = strip.y + strip.h;
    for &t in &ticks {
        let x = p.px(t).round() as i32;
        c.fill_rect(x, bottom + 1, 1, 5, FRAME);
        let label = tick_label(t, step);
        let lw = Canvas::text_width(&label, LABEL_SCALE);
        c.draw_text(x - lw / 2, bottom + 11, &label, LABEL_SCALE, INK);
    }
    // The bin count, when the models share one.
    let bins = series.first().map(|(_, r)| r.bins.len());
    let name = match bins.filter(|&b| series.iter().all(|(_, r)| r.bins.len() == b)) {
        Some(b) => format!("confidence (max softmax probability), {b} bins"),
        None => "confidence (max softmax probability)".to_string(),
    };
    let name = name.as_str();
    let nw = Canvas::text_width(name, LABEL_SCALE);
    c.draw_text(p.x + (p.w - nw) / 2, bottom + 36, name, LABEL_SCALE, INK);
    c
}

/// One line per model under the title: its swatch (when there are several), label,
/// accuracy, ECE, MCE and sample count — the last two dropped, then the text set smaller,
/// when the line would not fit.
fn header(c: &mut Canvas, series: &[(&str, &Reliability)], width: i32) {
    let swatch = if series.len() > 1 { 22 } else { 0 };
    // Per model: the full line, without N, and accuracy and ECE only.
    let lines: Vec<[String; 3]> = series
        .iter()
        .map(|(label, r)| {
            let label = if label.is_empty() {
                String::new()
            } else {
                format!("{label}:  ")
            };
            let acc = format!(
                "{label}accuracy {:.2}%  ECE {:.4}",
                100.0 * r.accuracy,
                r.ece()
            );
            let mce = format!("{acc}  MCE {:.4}", r.mce());
            [format!("{mce}  N {}", r.samples), mce, acc]
        })
        .collect();
    // One level of detail and one text size for every model, so the lines read alike.
    let fits = |t: &str| Canvas::text_width(t, LABEL_SCALE) + swatch <= width - 32;
    let (level, scale) = (0..3)
        .find(|&l| lines.iter().all(|line| fits(&line[l])))
        .map_or((0, 1), |l| (l, LABEL_SCALE));
    for (i, line) in lines.iter().enumerate() {
        let text = &line[level];
        let tw = Canvas::text_width(text, scale) + swatch;
        let x = ((width - tw) / 2).max(8);
        let y = TITLE_H + i as i32 * HEADER_LINE;
        let th = Canvas::text_height(scale);
        if swatch > 0 {
            let color = BAR_COLORS[i % BAR_COLORS.len()];
            c.fill_rect(x, y + th / 2 - 6, 14, 12, color);
        }
        c.draw_text(x + swatch, y, text, scale, INK);
    }
    if series.is_empty() {
        let text = "no samples";
        let tw = Canvas::text_width(text, LABEL_SCALE);
        c.draw_text((width - tw) / 2, TITLE_H, text, LABEL_SCALE, MUTED);
    }
}

/// The key, top left inside the panel: one bar swatch per model, the gap, the diagonal.
fn legend(c: &mut Canvas, p: &Plot, series: &[(&str, &Reliability)]) {
    let mut rows: Vec<(String, Option<Rgb>)> = series
        .iter()
        .enumerate()
        .map(|(i, (label, _))| {
            let text = if label.is_empty() || series.len() == 1 {
                "accuracy per bin".to_string()
            } else {
                label.to_string()
            };
            (text, Some(BAR_COLORS[i % BAR_COLORS.len()]))
        })
        .collect();
    rows.push(("gap to mean confidence".into(), None));
    rows.push(("perfect calibration".into(), None));
    let th = Canvas::text_height(LABEL_SCALE);
    let row_h = th + 10;
    let text_w = rows
        .iter()
        .map(|(t, _)| Canvas::text_width(t, LABEL_SCALE))
        .max()
        .unwrap_or(0);
    let (bw, bh) = (text_w + 58, row_h * rows.len() as i32 + 12);
    let (bx, by) = (p.x + 12, p.y + 12);
    c.fill_rect(bx, by, bw, bh, PAGE);
    c.stroke_rect(bx, by, bw, bh, [200, 200, 206]);
    let gap_row = rows.len() - 2;
    for (i, (text, color)) in rows.iter().enumerate() {
        let y = by + 10 + i as i32 * row_h;
        let (sx, sy, sw, sh) = (bx + 10, y - 2, 30, th + 4);
        match color {
            Some(color) => {
                blend_rect(c, sx, sy, sw, sh, *color, 0.88);
                outline(c, sx, sy, sw, sh, mix(*color, INK, 0.45));
            }
            None if i == gap_row => hatch(c, sx, sy, sw, sh),
            None => {
                let mid = sy as f32 + sh as f32 / 2.0;
                dashed(
                    c,
                    (sx as f32, mid + 5.0),
                    ((sx + sw) as f32, mid - 5.0),
                    1.8,
                    DIAGONAL,
                );
            }
        }
        c.draw_text(bx + 48, y, text, LABEL_SCALE, INK);
    }
}

/// A rectangle in pixels with data [0, 1] on both axes (y up).
struct Plot {
    x: i32,
    y: i32,
    w: i32,
    h: i32,
}

impl Plot {
    fn px(&self, v: f32) -> f32 {
        self.x as f32 + v * self.w as f32
    }

    fn py(&self, v: f32) -> f32 {
        self.y as f32 + (1.0 - v) * self.h as f32
    }
}

/// The pixel columns [x0, x1) of model `i` of `k` in the bin (lo, hi]: the bin's width less
/// a one-pixel gap on each side, shared side by side.
fn slot(p: &Plot, lo: f64, hi: f64, i: usize, k: usize) -> (i32, i32) {
    let (a, b) = (
        p.px(lo as f32).round() as i32,
        p.px(hi as f32).round() as i32,
    );
    let (a, b) = (a + 1, (b - 1).max(a + 2));
    let w = (b - a) as f32 / k as f32;
    let x0 = a + (w * i as f32).round() as i32;
    let x1 = (a + (w * (i + 1) as f32).round() as i32).max(x0 + 1);
    (x0, x1)
}

/// count / samples, 0 for an empty set.
fn share(count: usize, samples: usize) -> f64 {
    if samples == 0 {
        0.0
    } else {
        count as f64 / samples as f64
    }
}

/// `color` blended over the rectangle (x, y, w, h) with opacity `alpha`.
fn blend_rect(c: &mut Canvas, x: i32, y: i32, w: i32, h: i32, color: Rgb, alpha: f32) {
    for py in y..y + h {
        for px in x..x + w {
            c.blend_pixel(px, py, color, alpha);
        }
    }
}

/// A one-pixel frame just inside (x, y, w, h), for rectangles of at least 2 × 2.
fn outline(c: &mut Canvas, x: i32, y: i32, w: i32, h: i32, color: Rgb) {
    if w >= 2 && h >= 2 {
        c.stroke_rect(x, y, w, h, color);
    }
}

/// The gap: a light red wash, 45° hatching and a red frame over (x, y, w, h).
fn hatch(c: &mut Canvas, x: i32, y: i32, w: i32, h: i32) {
    blend_rect(c, x, y, w, h, GAP_COLOR, 0.2);
    for py in y..y + h {
        for px in x..x + w {
            match (px + py).rem_euclid(7) {
                0 => c.blend_pixel(px, py, GAP_COLOR, 0.85),
                1 => c.blend_pixel(px, py, GAP_COLOR, 0.3),
                _ => {}
            }
        }
    }
    if w >= 2 && h >= 2 {
        let edge = mix(GAP_COLOR, PAGE, 0.15);
        for (px, py, pw, ph) in [(x, y, w, 1), (x, y + h - 1, w, 1), (x, y, 1, h)] {
            blend_rect(c, px, py, pw, ph, edge, 0.9);
        }
        blend_rect(c, x + w - 1, y, 1, h, edge, 0.9);
    } else {
        blend_rect(c, x, y, w, h, GAP_COLOR, 0.7);
    }
}

/// A dashed anti-aliased line from `a` to `b`: 9-pixel dashes, 6-pixel gaps.
fn dashed(c: &mut Canvas, a: (f32, f32), b: (f32, f32), width: f32, color: Rgb) {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let len = (dx * dx + dy * dy).sqrt();
    if len.is_nan() || len <= 0.0 {
        return;
    }
    let (ux, uy) = (dx / len, dy / len);
    let mut segments: Vec<Segment> = Vec::new();
    let mut t = 0.0;
    while t < len {
        let e = (t + 9.0).min(len);
        segments.push(((a.0 + ux * t, a.1 + uy * t), (a.0 + ux * e, a.1 + uy * e)));
        t += 15.0;
    }
    c.draw_lines(&segments, width, color, 1.0);
}

/// `text` turned a quarter left, read bottom to top (a y-axis name): the baseline runs up
/// the column at `x` + glyph height, starting at `bottom`.
fn draw_text_up(c: &mut Canvas, x: i32, bottom: i32, text: &str, scale: u32, color: Rgb) {
    let s = scale.max(1) as i32;
    for (i, ch) in text.chars().enumerate() {
        for col in 0..5u32 {
            for row in 0..font::GLYPH_H + font::DESCENT {
                if font::ink(ch, col, row) {
                    // Unturned, this font pixel sits at (u, v) = (i·CELL_W + col, row);
                    // turned, u runs up from `bottom` and v runs right from `x`.
                    let u = i as i32 * font::CELL_W as i32 + col as i32;
                    c.fill_rect(x + row as i32 * s, bottom - (u + 1) * s, s, s, color);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::calibration::reliability;

    /// An overconfident model: `n` samples over two classes whose confidence is spread over
    /// [0.5, 1) but whose accuracy is the confidence squared.
    fn overconfident(n: usize) -> (Vec<f32>, Vec<u32>) {
        let mut probs = Vec::new();
        let mut labels = Vec::new();
        for i in 0..n {
            let conf = 0.5 + 0.5 * (i as f32 + 0.5) / n as f32;
            probs.extend([conf, 1.0 - conf]);
            // Right for the first conf² of each run of 20 (a deterministic "coin").
            let right = ((i * 7) % 20) as f32 / 20.0 < conf * conf;
            labels.push(if right { 0 } else { 1 });
        }
        (probs, labels)
    }

    fn count(c: &Canvas, color: Rgb) -> usize {
        c.as_bytes()
            .chunks_exact(3)
            .filter(|p| *p == color.as_slice())
            .count()
    }

    #[test]
    fn draws_bars_gaps_and_diagonal() {
        let (probs, labels) = overconfident(2000);
        let r = reliability(&probs, &labels, 2, 10);
        let c = draw("test", &[("", &r)]);
        assert_eq!((c.width(), c.height()), reliability_size(1));
        // Bars: the series color blended at 0.88 over the page appears in bulk.
        let bar = [
            (255.0 + (31.0 - 255.0) * 0.88f32).round() as u8,
            (255.0 + (119.0 - 255.0) * 0.88f32).round() as u8,
            (255.0 + (180.0 - 255.0) * 0.88f32).round() as u8,
        ];
        assert!(count(&c, bar) > 10_000, "{}", count(&c, bar));
        // The gap is red-tinted somewhere above the bars of the overconfident bins.
        let reddish = c
            .as_bytes()
            .chunks_exact(3)
            .filter(|p| p[0] > 200 && p[1] < 120 && p[2] < 120)
            .count();
        assert!(reddish > 100, "{reddish}");
        // The diagonal passes through the panel's centre, where nothing else is drawn in
        // the empty bins below 0.5: a dark pixel near (½, ½) in data coordinates.
        let y0 = top(1);
        let (cx, cy) = (LEFT + PANEL / 4, y0 + 3 * PANEL / 4);
        let dark = (-3..=3).any(|d| {
            (-3..=3).any(|e| {
                c.pixel(cx + d, cy + e)
                    .is_some_and(|p| p[0] < 150 && p[2] < 160)
            })
        });
        assert!(dark, "diagonal at (0.25, 0.25)");
    }

    #[test]
    fn two_models_side_by_side_and_empty_input() {
        let (probs, labels) = overconfident(500);
        let a = reliability(&probs, &labels, 2, 15);
        let calibrated: Vec<u32> = labels.iter().map(|_| 0).collect();
        let b = reliability(&probs, &calibrated, 2, 15);
        let c = draw("two", &[("A", &a), ("B", &b)]);
        assert_eq!((c.width(), c.height()), reliability_size(2));
        let green = [
            (255.0 + (44.0 - 255.0) * 0.88f32).round() as u8,
            (255.0 + (160.0 - 255.0) * 0.88f32).round() as u8,
            (255.0 + (44.0 - 255.0) * 0.88f32).round() as u8,
        ];
        assert!(count(&c, green) > 1000);
        // Nothing to draw is a blank diagram, not a panic.
        let empty = reliability(&[], &[], 2, 15);
        draw("empty", &[("", &empty)]);
        draw("none", &[]);
    }

    #[test]
    fn writes_a_png() {
        let (probs, labels) = overconfident(300);
        let r = reliability(&probs, &labels, 2, 15);
        let dir = std::env::temp_dir().join(format!("ebm-reliability-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("r.png");
        reliability_diagram(&path, "png", &[("m", &r)]).unwrap();
        let img = image::open(&path).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), reliability_size(1));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Renders examples into /tmp/viz for eyeballing:
    /// `cargo test --release --lib render_reliability -- --ignored`.
    #[test]
    #[ignore]
    fn render_reliability() {
        let dir = Path::new("/tmp/viz");
        std::fs::create_dir_all(dir).unwrap();
        let (probs, labels) = overconfident(10_000);
        let a = reliability(&probs, &labels, 2, 15);
        reliability_diagram(
            &dir.join("reliability.png"),
            "reliability - overconfident",
            &[("", &a)],
        )
        .unwrap();
        let good: Vec<u32> = probs
            .chunks_exact(2)
            .enumerate()
            .map(|(i, p)| u32::from(((i * 7) % 20) as f32 / 20.0 >= p[0]))
            .collect();
        let b = reliability(&probs, &good, 2, 15);
        reliability_diagram(
            &dir.join("reliability2.png"),
            "reliability - two models",
            &[("overconfident", &a), ("calibrated", &b)],
        )
        .unwrap();
    }
}
