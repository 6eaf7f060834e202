//! Perceptually uniform colormaps (matplotlib's viridis, magma and inferno) as
//! piecewise-linear tables.
//!
//! Why these: equal steps in value look like equal steps in color, lightness rises
//! monotonically (so the picture still reads in grayscale and for color-blind readers), and
//! readers know them from every paper's density plots. Ten evenly spaced stops, linearly
//! interpolated in sRGB, stay within a couple of 8-bit levels of the 256-entry originals,
//! which is far below what the eye notices in a heatmap.
//!
//! ```
//! use ebm::plot::colormap::{mix, viridis, Colormap};
//!
//! assert_eq!(viridis(0.0), [0x44, 0x01, 0x54]); // the first stop, dark purple
//! assert_eq!(viridis(2.0), viridis(1.0), "t is clamped");
//! assert_eq!(Colormap::Viridis.map(f32::NAN), viridis(0.0));
//! assert_eq!(mix([0, 0, 0], [255, 255, 255], 0.5), [128, 128, 128]);
//! ```

/// An sRGB color, 8 bits per channel.
pub type Rgb = [u8; 3];

/// A colormap: maps t ∈ [0, 1] (clamped; NaN reads as 0) to a color.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Colormap {
    /// Dark blue → teal → yellow; the default for densities.
    Viridis,
    /// Black → purple → orange → pale yellow; good where low values should vanish into black.
    Magma,
    /// Black → purple → red → bright yellow; like magma with a hotter top end.
    Inferno,
}

impl Colormap {
    /// The color for `t`, linearly interpolated between the table's ten stops.
    pub fn map(self, t: f32) -> Rgb {
        let stops = self.stops();
        let t = if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) };
        let pos = t * (stops.len() - 1) as f32;
        let i = (pos as usize).min(stops.len() - 2);
        let f = pos - i as f32;
        let (a, b) = (stops[i], stops[i + 1]);
        std::array::from_fn(|k| (a[k] as f32 + (b[k] as f32 - a[k] as f32) * f).round() as u8)
    }

    /// The table: the colormap sampled at t = 0, 1/9, …, 1 (R's `viridisLite` values).
    fn stops(self) -> &'static [Rgb; 10] {
        match self {
            Colormap::Viridis => &VIRIDIS,
            Colormap::Magma => &MAGMA,
            Colormap::Inferno => &INFERNO,
        }
    }
}

/// viridis(t); see [`Colormap::Viridis`].
pub fn viridis(t: f32) -> Rgb {
    Colormap::Viridis.map(t)
}

/// magma(t); see [`Colormap::Magma`].
pub fn magma(t: f32) -> Rgb {
    Colormap::Magma.map(t)
}

/// inferno(t); see [`Colormap::Inferno`].
pub fn inferno(t: f32) -> Rgb {
    Colormap::Inferno.map(t)
}

/// Linear mix of two colors: `a` at f = 0, `b` at f = 1.
pub fn mix(a: Rgb, b: Rgb, f: f32) -> Rgb {
    let f = f.clamp(0.0, 1.0);
    std::array::from_fn(|k| (a[k] as f32 + (b[k] as f32 - a[k] as f32) * f).round() as u8)
}

const fn hex(v: u32) -> Rgb {
    [(v >> 16) as u8, (v >> 8) as u8, v as u8]
}

const VIRIDIS: [Rgb; 10] = [
    hex(0x440154),
    hex(0x482878),
    hex(0x3E4A89),
    hex(0x31688E),
    hex(0x26828E),
    hex(0x1F9E89),
    hex(0x35B779),
    hex(0x6DCD59),
    hex(0xB4DE2C),
    hex(0xFDE725),
];

const MAGMA: [Rgb; 10] = [
    hex(0x000004),
    hex(0x180F3E),
    hex(0x451077),
    hex(0x721F81),
    hex(0x9F2F7F),
    hex(0xCD4071),
    hex(0xF1605D),
    hex(0xFD9567),
    hex(0xFEC98D),
    hex(0xFCFDBF),
];

const INFERNO: [Rgb; 10] = [
    hex(0x000004),
    hex(0x1B0C42),
    hex(0x4B0C6B),
    hex(0x781C6D),
    hex(0xA52C60),
    hex(0xCF4446),
    hex(0xED6925),
    hex(0xFB9A06),
    hex(0xF7D03C),
    hex(0xFCFFA4),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Relative luminance (Rec. 709 weights on sRGB values; enough to check monotonicity).
    fn luma(c: Rgb) -> f32 {
        0.2126 * c[0] as f32 + 0.7152 * c[1] as f32 + 0.0722 * c[2] as f32
    }

    #[test]
    fn endpoints_and_clamping() {
        assert_eq!(viridis(0.0), [0x44, 0x01, 0x54]);
        assert_eq!(viridis(1.0), [0xFD, 0xE7, 0x25]);
        assert_eq!(magma(0.0), [0, 0, 4]);
        assert_eq!(magma(1.0), [0xFC, 0xFD, 0xBF]);
        assert_eq!(inferno(1.0), [0xFC, 0xFF, 0xA4]);
        assert_eq!(viridis(-3.0), viridis(0.0));
        assert_eq!(viridis(7.0), viridis(1.0));
        assert_eq!(viridis(f32::NAN), viridis(0.0));
        // Matplotlib's viridis(0.5) is (33, 145, 140); ten stops get within a few levels.
        let mid = viridis(0.5);
        for (got, want) in mid.iter().zip([33u8, 145, 140]) {
            assert!(got.abs_diff(want) <= 4, "viridis(0.5) = {mid:?}");
        }
    }

    #[test]
    fn lightness_increases() {
        for cmap in [Colormap::Viridis, Colormap::Magma, Colormap::Inferno] {
            let mut last = -1.0;
            for i in 0..=100 {
                let l = luma(cmap.map(i as f32 / 100.0));
                assert!(l >= last - 0.5, "{cmap:?} at {i}: {l} < {last}");
                last = l;
            }
        }
    }
}
