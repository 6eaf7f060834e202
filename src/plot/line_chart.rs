//! Line charts of named series over a shared x axis (training curves).

use std::path::Path;

use super::canvas::{Canvas, Segment};
use super::figures::{
    nice_ticks, tick_label, title, FRAME, GRIDLINE, INK, LABEL_SCALE, PAGE, SERIES,
};
use crate::Result;

/// Writes a chart of named curves over a shared x axis (e.g. loss, E+, E−, KL against the
/// iteration), with a legend, ticks and ranges chosen from the data. Non-finite values are
/// ignored (the curve joins their finite neighbours); each series is drawn over the first
/// min(x.len(), series.len()) points.
pub fn line_chart(
    path: &Path,
    title_text: &str,
    x: &[f32],
    series: &[(&str, &[f32])],
) -> Result<()> {
    const WIDTH: i32 = 960;
    const HEIGHT: i32 = 540;
    const LEFT: i32 = 76;
    const RIGHT: i32 = 28;
    const TOP: i32 = 50;
    const BOTTOM: i32 = 44;
    let mut c = Canvas::new(WIDTH as u32, HEIGHT as u32, PAGE);
    title(&mut c, title_text, WIDTH);
    let (px0, py0) = (LEFT, TOP);
    let (pw, ph) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);

    // Ranges over the finite values actually drawn.
    let mut xs = Range::default();
    let mut ys = Range::default();
    for (_, s) in series {
        for (&xv, &yv) in x.iter().zip(s.iter()) {
            if xv.is_finite() && yv.is_finite() {
                xs.add(xv);
                ys.add(yv);
            }
        }
    }
    let (x_lo, x_hi) = xs.padded(0.0);
    let (y_lo, y_hi) = ys.padded(0.05);
    let to_px = |xv: f32, yv: f32| {
        (
            px0 as f32 + (xv - x_lo) / (x_hi - x_lo) * pw as f32,
            py0 as f32 + (y_hi - yv) / (y_hi - y_lo) * ph as f32,
        )
    };

    // Gridlines and tick labels first, so the curves draw over them.
    let (xticks, xstep) = nice_ticks(x_lo, x_hi, 8);
    let (yticks, ystep) = nice_ticks(y_lo, y_hi, 6);
    let label_h = Canvas::text_height(LABEL_SCALE);
    for &t in &xticks {
        let (px, _) = to_px(t, y_lo);
        let px = px.round() as i32;
        c.fill_rect(px, py0, 1, ph, GRIDLINE);
        c.fill_rect(px, py0 + ph, 1, 5, FRAME);
        let label = tick_label(t, xstep);
        let w = Canvas::text_width(&label, LABEL_SCALE);
        c.draw_text(px - w / 2, py0 + ph + 10, &label, LABEL_SCALE, INK);
    }
    for &t in &yticks {
        let (_, py) = to_px(x_lo, t);
        let py = py.round() as i32;
        c.fill_rect(px0, py, pw, 1, GRIDLINE);
        c.fill_rect(px0 - 5, py, 5, 1, FRAME);
        let label = tick_label(t, ystep);
        let w = Canvas::text_width(&label, LABEL_SCALE);
        c.draw_text(px0 - 10 - w, py - label_h / 2, &label, LABEL_SCALE, INK);
    }
    if y_lo < 0.0 && y_hi > 0.0 {
        // The zero line matters for losses and energies: draw it a little darker.
        let (_, py) = to_px(x_lo, 0.0);
        c.fill_rect(px0, py.round() as i32, pw, 1, [190, 190, 196]);
    }

    for (i, (_, s)) in series.iter().enumerate() {
        let color = SERIES[i % SERIES.len()];
        // Non-finite values are skipped and their neighbours joined, so a metric logged only
        // every 100 iterations (NaN in between) still draws as one curve.
        let pts: Vec<(f32, f32)> = x
            .iter()
            .zip(s.iter())
            .filter(|(xv, yv)| xv.is_finite() && yv.is_finite())
            .map(|(&xv, &yv)| to_px(xv, yv))
            .collect();
        let segments: Vec<Segment> = pts.windows(2).map(|w| (w[0], w[1])).collect();
        c.draw_lines(&segments, 1.6, color, 1.0);
        // Sparse series get markers, so the reader sees where the measurements are.
        if pts.len() <= 60 {
            for &(px, py) in &pts {
                c.draw_point(px, py, 2.6, color, 1.0);
            }
        }
    }
    c.stroke_rect(px0, py0, pw + 1, ph + 1, FRAME);

    // Legend, top-right inside the plot: a swatch line and the name per series.
    if !series.is_empty() {
        let row_h = label_h + 8;
        let text_w = series
            .iter()
            .map(|(name, _)| Canvas::text_width(name, LABEL_SCALE))
            .max()
            .unwrap_or(0);
        let (bw, bh) = (text_w + 52, row_h * series.len() as i32 + 10);
        let (bx, by) = (px0 + pw - bw - 10, py0 + 10);
        c.fill_rect(bx, by, bw, bh, PAGE);
        c.stroke_rect(bx, by, bw, bh, [200, 200, 206]);
        for (i, (name, _)) in series.iter().enumerate() {
            let y = by + 9 + i as i32 * row_h;
            let mid = (y + label_h / 2) as f32 + 0.5;
            let color = SERIES[i % SERIES.len()];
            c.draw_line(
                (bx as f32 + 10.0, mid),
                (bx as f32 + 36.0, mid),
                2.2,
                color,
                1.0,
            );
            c.draw_text(bx + 44, y, name, LABEL_SCALE, INK);
        }
    }
    c.save_png(path)
}

/// A running min/max of finite values.
#[derive(Default)]
struct Range {
    lo: Option<f32>,
    hi: Option<f32>,
}

impl Range {
    fn add(&mut self, v: f32) {
        self.lo = Some(self.lo.map_or(v, |l| l.min(v)));
        self.hi = Some(self.hi.map_or(v, |h| h.max(v)));
    }

    /// The range widened by `pad` of its span on each side; a degenerate range is widened
    /// to a unit (or 10 %) span around its value, and an empty one becomes [0, 1].
    fn padded(&self, pad: f32) -> (f32, f32) {
        match (self.lo, self.hi) {
            (Some(lo), Some(hi)) if hi > lo => {
                let d = (hi - lo) * pad;
                (lo - d, hi + d)
            }
            (Some(v), Some(_)) => {
                let d = (v.abs() * 0.1).max(0.5);
                (v - d, v + d)
            }
            _ => (0.0, 1.0),
        }
    }
}
