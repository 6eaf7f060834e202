//! Image datasets: MNIST-style IDX files, CIFAR-10 binary batches and folders of PNG/JPEG
//! files, loaded into one in-memory [`ImageSet`] and served as seeded training batches by
//! [`ImageData`].
//!
//! ## Conventions (docs/ARCHITECTURE.md)
//!
//! Images are stored NCHW, f32, scaled from bytes by `v / 255 · 2 − 1` to [−1, 1], which is
//! the box the Langevin chains are clamped to. Every loader takes the model's input shape
//! `(channels, height, width)` and brings each image to it, so whatever the file holds, the
//! result fits the net:
//! - **channels**: gray → RGB replicates the gray plane; RGB → gray takes the luma
//!   0.299 R + 0.587 G + 0.114 B (ITU-R BT.601, what PIL's `convert("L")` uses, so a gray
//!   model trained here sees what a PyTorch pipeline would). Alpha is dropped.
//! - **size, IDX files**: a target exactly 4 pixels taller and wider than the images
//!   ([`PAD`] per side) is reached by *padding* with the background value −1 (MNIST's
//!   background is 0 → −1). This is the ebm-anatomy `mnist32` convention, 28 × 28 → 32 × 32,
//!   and it keeps the digit strokes' exact pixel values. Any other mismatch is resized as
//!   below: a user asking for 64 × 64 digits wants them to fill the frame, not a 28-pixel
//!   digit in a sea of black.
//! - **size, otherwise**: bilinear resize (the `image` crate's `Triangle` filter, which
//!   also averages when shrinking) so that the *shorter* side matches, then a centre crop to
//!   the target: the aspect ratio is kept and nothing is squashed. Photos are not padded:
//!   their background is not a known value.
//!
//! Every file that cannot be read, is truncated, has the wrong magic number, holds no images
//! or an undecodable image gives an [`Error`] naming the file and what is wrong; no input
//! makes a loader panic.
//!
//! ## Determinism
//!
//! [`ImageData::batch`](super::DataSource::batch) for iteration t takes positions
//! t·n … t·n + n − 1 of an endless sequence of epochs; epoch e is a Fisher–Yates permutation
//! of the whole set drawn from Philox `Stream::Data` keyed by `(seed, e)`. So a batch is a
//! pure function of `(seed, t, n)`, a resumed run sees exactly the batches an uninterrupted
//! one would, and every epoch visits every image exactly once.
//!
//! ```
//! use ebm::data::{images, DataSource, ImageData};
//!
//! # fn main() -> ebm::Result<()> {
//! // Three 2×2 gray images in MNIST's IDX format: magic 0x00000803, then the count, rows
//! // and columns as big-endian u32, then the pixels as bytes.
//! let mut idx = vec![0, 0, 8, 3];
//! for d in [3u32, 2, 2] {
//!     idx.extend(d.to_be_bytes());
//! }
//! idx.extend([0, 255, 255, 0, 255, 255, 255, 255, 0, 0, 0, 0]);
//! let path = std::env::temp_dir().join(format!("ebm-doc-{}-images-idx3-ubyte", std::process::id()));
//! std::fs::write(&path, &idx).map_err(|e| ebm::Error::io(&path, e))?;
//!
//! let set = images::load(&path, 1, 2, 2)?;
//! assert_eq!((set.len(), set.sample_len()), (3, 4));
//! assert_eq!(set.image(0), [-1.0, 1.0, 1.0, -1.0]); // bytes 0..255 → [−1, 1]
//!
//! // An epoch of 3 batches of 1: every image once, in a seeded order.
//! let mut data = ImageData::new(set, 0)?;
//! let mut seen: Vec<usize> = (0..3).flat_map(|t| data.indices(t, 1)).collect();
//! seen.sort();
//! assert_eq!(seen, [0, 1, 2]);
//! let first = data.indices(0, 1)[0];
//! assert_eq!(data.batch(0, 1)?, data.set().image(first));
//! # std::fs::remove_file(&path).ok();
//! # Ok(())
//! # }
//! ```

mod batches;
mod cifar;
mod folder;
mod idx;

use std::path::{Path, PathBuf};

use image::imageops::FilterType;
use image::{DynamicImage, GrayImage, RgbImage};

use crate::{Error, Result};

pub use batches::{epoch_permutation, ImageData};
pub use cifar::load_cifar10;
pub use folder::load_folder;
pub use idx::{idx_labels_candidates, load_idx, load_idx_labels};

/// The shipped demo digits (the first 4000 MNIST training images, see
/// `data/mnist-subset/README.md`), relative to the repository root. A program run from
/// elsewhere resolves it against `CARGO_MANIFEST_DIR` when the relative path does not exist.
pub const DEFAULT_DIGITS: &str = "data/mnist-subset/train-images-idx3-ubyte.gz";

/// Background pixels added on each side of IDX images when the target is exactly that much
/// larger: 28 × 28 MNIST → 32 × 32, as ebm-anatomy's `mnist32` pads it.
pub const PAD: usize = 2;
/// The most f32 values a loaded set may hold (16 GiB): a file of millions of tiny images
/// brought to a large target is an error naming the numbers, not an abort on allocation.
pub const MAX_SET_VALUES: usize = 1 << 32;

/// A set of equally shaped images in memory, ready for training.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageSet {
    /// Channels per image: 1 (gray) or 3 (RGB).
    pub channels: usize,
    /// Rows of pixels per image.
    pub height: usize,
    /// Pixels per row.
    pub width: usize,
    /// `[n, channels, height, width]`, row-major, values in [−1, 1].
    pub data: Vec<f32>,
    /// One class label per image when the source has them (IDX with its labels file beside
    /// it, CIFAR-10); unconditional EBMs ignore them, but they make sample grids and
    /// class-conditional experiments possible.
    pub labels: Option<Vec<u8>>,
}

impl ImageSet {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.data.len().checked_div(self.sample_len()).unwrap_or(0)
    }

    /// Whether the set holds no image (the loaders never return one).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Values per image, C·H·W.
    pub fn sample_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// The number of classes of its labels (the largest label + 1), `None` without labels.
    pub fn classes(&self) -> Option<usize> {
        let labels = self.labels.as_ref()?;
        Some(
            labels
                .iter()
                .copied()
                .max()
                .map_or(0, |m| usize::from(m) + 1),
        )
    }

    /// Image `i` as `[C, H, W]`. Panics when `i >= len()`, like slice indexing.
    pub fn image(&self, i: usize) -> &[f32] {
        let s = self.sample_len();
        &self.data[i * s..(i + 1) * s]
    }
}

/// The shape every loaded image is brought to.
#[derive(Clone, Copy, Debug)]
struct Target {
    c: usize,
    h: usize,
    w: usize,
}

impl Target {
    fn new(channels: usize, height: usize, width: usize) -> Result<Self> {
        if channels != 1 && channels != 3 {
            return Err(Error::Shape(format!(
                "images need 1 (gray) or 3 (RGB) channels, the model asks for {channels}"
            )));
        }
        if height == 0 || width == 0 || height > 1 << 14 || width > 1 << 14 {
            return Err(Error::Shape(format!(
                "image size {height}x{width} is out of range (1..=16384 per side)"
            )));
        }
        Ok(Target {
            c: channels,
            h: height,
            w: width,
        })
    }

    fn len(&self) -> usize {
        self.c * self.h * self.w
    }
}

/// How a size mismatch is resolved for a given source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fit {
    /// Pad [`PAD`] pixels of −1 on each side when the target is exactly that much larger,
    /// else resize (IDX: digits on a known black background).
    PadOrResize,
    /// Resize the shorter side and centre-crop (photos).
    Resize,
}

/// Appends one image, given as interleaved (HWC) bytes with `sc` ∈ {1, 3} channels and size
/// `sh × sw`, to `out` in the target's CHW layout and [−1, 1] scale.
fn push_image(out: &mut Vec<f32>, px: &[u8], sc: usize, sh: usize, sw: usize, t: Target, fit: Fit) {
    debug_assert_eq!(px.len(), sc * sh * sw);
    let same = sh == t.h && sw == t.w;
    let pad = fit == Fit::PadOrResize && t.h == sh + 2 * PAD && t.w == sw + 2 * PAD;
    let resized;
    let (px, sh, sw) = if same || pad {
        (px, sh, sw)
    } else {
        resized = resize_fill(px, sc, sh, sw, t);
        (&resized[..], t.h, t.w)
    };
    // Placement of the (possibly padded) source inside the target.
    let (top, left) = ((t.h - sh) / 2, (t.w - sw) / 2);
    let start = out.len();
    out.resize(start + t.len(), -1.0);
    let img = &mut out[start..];
    let scale = |v: f32| v / 255.0 * 2.0 - 1.0;
    for y in 0..sh {
        for x in 0..sw {
            let p = &px[(y * sw + x) * sc..(y * sw + x + 1) * sc];
            let at = (top + y) * t.w + left + x;
            match (sc, t.c) {
                (1, 1) => img[at] = scale(p[0] as f32),
                (1, _) => {
                    for ch in 0..t.c {
                        img[ch * t.h * t.w + at] = scale(p[0] as f32);
                    }
                }
                (_, 1) => {
                    let luma = 0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32;
                    img[at] = scale(luma);
                }
                _ => {
                    for ch in 0..t.c {
                        img[ch * t.h * t.w + at] = scale(p[ch] as f32);
                    }
                }
            }
        }
    }
}

/// Bilinear resize (shorter side to the target) and centre crop, through the `image`
/// crate; returns interleaved bytes of the target size with the source's channel count.
fn resize_fill(px: &[u8], sc: usize, sh: usize, sw: usize, t: Target) -> Vec<u8> {
    let (w, h) = (sw as u32, sh as u32);
    let img = if sc == 1 {
        DynamicImage::ImageLuma8(GrayImage::from_raw(w, h, px.to_vec()).expect("gray buffer"))
    } else {
        DynamicImage::ImageRgb8(RgbImage::from_raw(w, h, px.to_vec()).expect("rgb buffer"))
    };
    let out = img.resize_to_fill(t.w as u32, t.h as u32, FilterType::Triangle);
    if sc == 1 {
        out.into_luma8().into_raw()
    } else {
        out.into_rgb8().into_raw()
    }
}

/// `n` images brought to `t` must fit in [`MAX_SET_VALUES`].
fn check_set_size(path: &Path, n: usize, t: Target) -> Result<()> {
    match n.checked_mul(t.len()) {
        Some(v) if v <= MAX_SET_VALUES => Ok(()),
        _ => Err(Error::format(
            path,
            format!(
                "{n} images of {}x{}x{} are more than the {MAX_SET_VALUES} values (16 GiB) \
                 a dataset may hold in memory",
                t.c, t.h, t.w
            ),
        )),
    }
}

/// Regular, non-hidden files directly in `dir`, sorted by name.
fn list_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut files = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let p = entry.path();
        if p.is_file() && !file_name(&p).starts_with('.') {
            files.push(p);
        }
    }
    files.sort();
    Ok(files)
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn has_ext(p: &Path, exts: &[&str]) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| exts.iter().any(|x| e.eq_ignore_ascii_case(x)))
}

/// Loads whatever `path` is, brought to `(channels, height, width)`:
/// - a folder with CIFAR-10 `.bin` batches → [`load_cifar10`];
/// - a folder with IDX image files → its `train-images-idx3-ubyte[.gz]`, or its only IDX
///   image file ([`load_idx`]; e.g. `data/mnist` after `scripts/fetch_data.sh mnist`);
/// - any other folder → a folder of PNG/JPEG images ([`load_folder`]);
/// - a file: an IDX image file (by its magic, gzipped or not), a CIFAR-10 batch (`.bin`) or
///   a single PNG/JPEG image.
///
/// ```
/// use ebm::data::images::{self, DEFAULT_DIGITS};
///
/// # fn main() -> ebm::Result<()> {
/// // The demo digits shipped in the repository (run from its root): 28×28 MNIST, padded
/// // to 32×32 as the `mnist32` spec expects, with their labels from the file beside them.
/// let set = images::load(DEFAULT_DIGITS, 1, 32, 32)?;
/// assert_eq!((set.len(), set.channels, set.height, set.width), (4000, 1, 32, 32));
/// assert_eq!(set.labels.as_ref().map(Vec::len), Some(4000));
/// assert_eq!(set.image(0)[0], -1.0, "the padding is background");
/// // The same file as 3×16×16: gray replicated to RGB, resized.
/// let small = images::load(DEFAULT_DIGITS, 3, 16, 16)?;
/// assert_eq!(small.sample_len(), 3 * 16 * 16);
/// # Ok(())
/// # }
/// ```
pub fn load(
    path: impl AsRef<Path>,
    channels: usize,
    height: usize,
    width: usize,
) -> Result<ImageSet> {
    let path = path.as_ref();
    let target = Target::new(channels, height, width)?;
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_dir() {
        let files = list_files(path)?;
        if files.iter().any(|p| has_ext(p, &["bin"])) {
            return load_cifar10(path, channels, height, width);
        }
        if let Some(p) = idx_in_folder(path, &files)? {
            return load_idx(p, channels, height, width);
        }
        return load_folder(path, channels, height, width);
    }
    if has_ext(path, &["bin"]) {
        return load_cifar10(path, channels, height, width);
    }
    let bytes = idx::read_maybe_gz(path)?;
    if idx::has_idx_magic(&bytes) {
        return idx::idx_with_labels(path, &bytes, target);
    }
    if image::guess_format(&bytes).is_ok() {
        return Ok(ImageSet {
            channels,
            height,
            width,
            data: folder::decode_image(path, &bytes, target)?,
            labels: None,
        });
    }
    Err(Error::format(
        path,
        "not an image dataset: expected an IDX image file (MNIST format, .gz or raw), a \
         CIFAR-10 .bin batch, a PNG/JPEG image or a folder of them",
    ))
}

/// The IDX images file [`load`] takes from a folder: its `train-*` one, or its only one;
/// None without IDX image files, an error with several and no `train-*`.
fn idx_in_folder<'a>(dir: &Path, files: &'a [PathBuf]) -> Result<Option<&'a PathBuf>> {
    let idx: Vec<&PathBuf> = files
        .iter()
        .filter(|p| idx::is_idx_images_name(p))
        .collect();
    if idx.is_empty() {
        return Ok(None);
    }
    let train = idx
        .iter()
        .find(|p| file_name(p).starts_with("train-"))
        .or_else(|| (idx.len() == 1).then_some(&idx[0]));
    match train {
        Some(p) => Ok(Some(p)),
        None => Err(Error::format(
            dir,
            "several IDX image files and none named train-*; give one of them",
        )),
    }
}

/// Where [`load`] looks for the class labels of `path` when they are not inside the data
/// itself (CIFAR-10 batches carry theirs): the [`idx_labels_candidates`] of the IDX images
/// file it reads — `path` itself, or the one it picks in a folder. Empty when `path` is
/// neither (PNG/JPEG images have no labels file), or an IDX file not named the MNIST way.
///
/// ```
/// use ebm::data::images::{labels_looked_for, DEFAULT_DIGITS};
///
/// let tried = labels_looked_for(DEFAULT_DIGITS);
/// assert!(tried[0].ends_with("mnist-subset/train-labels-idx1-ubyte.gz"));
/// // A folder of IDX files: the labels of the images file it loads.
/// assert_eq!(labels_looked_for("data/mnist-subset"), tried);
/// ```
pub fn labels_looked_for(path: impl AsRef<Path>) -> Vec<PathBuf> {
    let path = path.as_ref();
    if !path.is_dir() {
        return idx_labels_candidates(path);
    }
    let files = list_files(path).unwrap_or_default();
    if files.iter().any(|p| has_ext(p, &["bin"])) {
        return Vec::new();
    }
    match idx_in_folder(path, &files) {
        Ok(Some(p)) => idx_labels_candidates(p),
        _ => Vec::new(),
    }
}

/// The labels of `set` (`data` is where it was loaded from): those of the IDX labels file
/// `labels_file` when given (its count must match), else the ones found with the images; an
/// error naming the files looked for when there are none ([`no_labels_error`]).
pub fn labels_for(set: &ImageSet, data: &Path, labels_file: Option<&Path>) -> Result<Vec<u8>> {
    match labels_file {
        Some(path) => {
            let labels = load_idx_labels(path)?;
            if labels.len() != set.len() {
                return Err(Error::format(
                    path,
                    format!(
                        "{} labels, but {} has {} images",
                        labels.len(),
                        data.display(),
                        set.len()
                    ),
                ));
            }
            Ok(labels)
        }
        None => set.labels.clone().ok_or_else(|| no_labels_error(data)),
    }
}

/// The one-line error for a labelled use of `data` that has no labels: it names the files
/// looked for beside IDX images, and says how else labels come.
pub fn no_labels_error(data: &Path) -> Error {
    let tried = labels_looked_for(data);
    let what = if tried.is_empty() {
        "no class labels: this dataset carries none (labels come from an IDX \
         …-labels-idx1-ubyte file beside …-images-idx3-ubyte, with CIFAR-10 batches, or from \
         one subfolder of images per class); give them with --labels FILE"
            .to_string()
    } else {
        let names: Vec<String> = tried.iter().map(|p| file_name(p)).collect();
        let folder = tried[0]
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| ".".to_string(), |p| p.display().to_string());
        format!(
            "no class labels: looked for {} in {folder}, found neither; give them with \
             --labels FILE",
            names.join(" and ")
        )
    };
    Error::format(data, what)
}

/// Helpers shared by the loaders' unit tests.
#[cfg(test)]
mod test_util {
    use std::path::PathBuf;

    use crate::Result;

    pub(super) fn temp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ebm-images-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    pub(super) fn scaled(v: u8) -> f32 {
        v as f32 / 255.0 * 2.0 - 1.0
    }

    pub(super) fn err_text<T: std::fmt::Debug>(r: Result<T>) -> String {
        r.unwrap_err().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_digits_load() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_DIGITS);
        let set = load(&p, 1, 32, 32).unwrap();
        assert_eq!((set.len(), set.sample_len()), (4000, 1024));
        let labels = set.labels.as_ref().expect("labels beside the images");
        assert_eq!(labels.len(), 4000);
        assert_eq!(
            &labels[..8],
            &[5, 0, 4, 1, 9, 2, 1, 3],
            "MNIST's first training labels"
        );
        assert!(set.data.iter().all(|v| (-1.0..=1.0).contains(v)));
        let ink = set.data.iter().filter(|&&v| v > 0.0).count() as f32 / set.data.len() as f32;
        assert!((0.05..0.25).contains(&ink), "ink fraction {ink}");
    }
}
