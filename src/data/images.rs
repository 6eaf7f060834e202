//! Image datasets: MNIST-style IDX files, CIFAR-10 binary batches and folders of PNG/JPEG
//! files, loaded into one in-memory [`ImageSet`] and served as seeded training batches by
//! [`ImageData`].
//!
//! ## Conventions (DESIGN.md §3)
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
//! [`ImageData::batch`] for iteration t takes positions t·n … t·n + n − 1 of an endless
//! sequence of epochs; epoch e is a Fisher–Yates permutation of the whole set drawn from
//! Philox `Stream::Data` keyed by `(seed, e)`. So a batch is a pure function of
//! `(seed, t, n)`, a resumed run sees exactly the batches an uninterrupted one would, and
//! every epoch visits every image exactly once.
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

use std::io::Read;
use std::path::{Path, PathBuf};

use image::imageops::FilterType;
use image::{DynamicImage, GrayImage, RgbImage};
use rayon::prelude::*;

use super::DataSource;
use crate::rng::{self, Stream};
use crate::{Error, Result};

/// The shipped demo digits (the first 4000 MNIST training images, see
/// `data/mnist-subset/README.md`), relative to the repository root. A program run from
/// elsewhere resolves it against `CARGO_MANIFEST_DIR` when the relative path does not exist.
pub const DEFAULT_DIGITS: &str = "data/mnist-subset/train-images-idx3-ubyte.gz";

/// IDX magic numbers (big-endian u32): unsigned-byte data with 3 dimensions (images) or 1
/// (labels).
const IDX_IMAGES: u32 = 0x0000_0803;
const IDX_LABELS: u32 = 0x0000_0801;
/// One CIFAR-10 record: a label byte, then 32 × 32 red, green and blue planes.
const CIFAR_SIDE: usize = 32;
const CIFAR_RECORD: usize = 1 + 3 * CIFAR_SIDE * CIFAR_SIDE;
/// Background pixels added on each side of IDX images when the target is exactly that much
/// larger: 28 × 28 MNIST → 32 × 32, as ebm-anatomy's `mnist32` pads it.
pub const PAD: usize = 2;
/// The first bytes of a gzip stream; compression is detected by content, not by name.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// The most bytes a gzipped file may inflate to (4 GiB; MNIST's training images are 47 MB):
/// past that it is corrupt or a decompression bomb, and an error, not an abort.
const MAX_GUNZIPPED: u64 = 1 << 32;
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

/// Reads a whole file, gunzipping it when it starts with the gzip magic (whatever its name).
fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if !raw.starts_with(&GZIP_MAGIC) {
        return Ok(raw);
    }
    let mut out = Vec::with_capacity(raw.len().saturating_mul(4));
    flate2::read::MultiGzDecoder::new(&raw[..])
        .take(MAX_GUNZIPPED + 1)
        .read_to_end(&mut out)
        .map_err(|e| Error::format(path, format!("truncated or corrupt gzip data ({e})")))?;
    if out.len() as u64 > MAX_GUNZIPPED {
        return Err(Error::format(
            path,
            format!(
                "gzip data inflates to more than {MAX_GUNZIPPED} bytes: corrupt or not a dataset"
            ),
        ));
    }
    Ok(out)
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

fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Loads an MNIST / Fashion-MNIST IDX image file (magic 0x00000803, u8 pixels; gzipped or
/// raw, detected by content) and, when it exists beside it, the matching labels file
/// (`…-images-idx3-ubyte[.gz]` → `…-labels-idx1-ubyte[.gz]`, also the `images.idx3-ubyte`
/// spelling). A target [`PAD`] pixels larger on every side is padded with the background −1
/// (28 × 28 → 32 × 32, the `mnist32` convention); other size mismatches are resized
/// bilinearly (module docs).
pub fn load_idx(
    path: impl AsRef<Path>,
    channels: usize,
    height: usize,
    width: usize,
) -> Result<ImageSet> {
    let path = path.as_ref();
    let target = Target::new(channels, height, width)?;
    let bytes = read_maybe_gz(path)?;
    idx_with_labels(path, &bytes, target)
}

/// [`load_idx`] on bytes already read (and gunzipped) from `path`.
fn idx_with_labels(path: &Path, bytes: &[u8], target: Target) -> Result<ImageSet> {
    let mut set = parse_idx_images(path, bytes, target)?;
    if let Some(lp) = labels_path(path) {
        let labels = parse_idx_labels(&lp, &read_maybe_gz(&lp)?)?;
        if labels.len() != set.len() {
            return Err(Error::format(
                &lp,
                format!(
                    "{} labels, but {} has {} images",
                    labels.len(),
                    path.display(),
                    set.len()
                ),
            ));
        }
        set.labels = Some(labels);
    }
    Ok(set)
}

fn parse_idx_images(path: &Path, b: &[u8], t: Target) -> Result<ImageSet> {
    // The magic first: a labels file is shorter than an image header and deserves the
    // clearer message.
    let magic = (b.len() >= 4).then(|| be_u32(b, 0));
    if magic == Some(IDX_LABELS) {
        return Err(Error::format(
            path,
            "this is an IDX labels file (magic 0x00000801); give the images file (0x00000803)",
        ));
    }
    if let Some(m) = magic.filter(|&m| m != IDX_IMAGES) {
        return Err(Error::format(
            path,
            format!("not an IDX image file: magic {m:#010x}, expected 0x00000803"),
        ));
    }
    if b.len() < 16 {
        return Err(Error::format(
            path,
            format!(
                "truncated IDX header ({} bytes, an image file needs 16)",
                b.len()
            ),
        ));
    }
    let (n, rows, cols) = (
        be_u32(b, 4) as usize,
        be_u32(b, 8) as usize,
        be_u32(b, 12) as usize,
    );
    if n == 0 {
        return Err(Error::format(path, "the IDX header says 0 images"));
    }
    if rows == 0 || cols == 0 || rows > 1 << 14 || cols > 1 << 14 {
        return Err(Error::format(
            path,
            format!("bad IDX image size {rows}x{cols}"),
        ));
    }
    let need = n.checked_mul(rows * cols).and_then(|v| v.checked_add(16));
    let body = b.len() - 16;
    match need {
        Some(need) if need == b.len() => {}
        Some(need) if need > b.len() => {
            return Err(Error::format(
                path,
                format!(
                    "truncated: the header says {n} images of {rows}x{cols} ({} bytes) but \
                     only {body} bytes follow it",
                    need - 16
                ),
            ))
        }
        Some(need) => {
            return Err(Error::format(
                path,
                format!(
                    "{} stray bytes after {n} images of {rows}x{cols}: corrupt file",
                    b.len() - need
                ),
            ))
        }
        None => return Err(Error::format(path, "corrupt IDX header: sizes overflow")),
    }
    check_set_size(path, n, t)?;
    let mut data = Vec::with_capacity(n * t.len());
    for img in b[16..].chunks_exact(rows * cols) {
        push_image(&mut data, img, 1, rows, cols, t, Fit::PadOrResize);
    }
    Ok(ImageSet {
        channels: t.c,
        height: t.h,
        width: t.w,
        data,
        labels: None,
    })
}

fn parse_idx_labels(path: &Path, b: &[u8]) -> Result<Vec<u8>> {
    if b.len() < 8 {
        return Err(Error::format(
            path,
            format!(
                "truncated IDX header ({} bytes, a labels file needs 8)",
                b.len()
            ),
        ));
    }
    let magic = be_u32(b, 0);
    if magic != IDX_LABELS {
        return Err(Error::format(
            path,
            format!("not an IDX labels file: magic {magic:#010x}, expected 0x00000801"),
        ));
    }
    let n = be_u32(b, 4) as usize;
    if b.len() - 8 != n {
        return Err(Error::format(
            path,
            format!(
                "the header says {n} labels but {} bytes follow it",
                b.len() - 8
            ),
        ));
    }
    Ok(b[8..].to_vec())
}

/// The labels file that belongs to an IDX images file, if it exists: same folder, `images`
/// → `labels`, `idx3` → `idx1`, trying the images file's own compression first.
fn labels_path(images: &Path) -> Option<PathBuf> {
    let name = images.file_name()?.to_str()?;
    let (base, gz) = match name.strip_suffix(".gz") {
        Some(b) => (b, true),
        None => (name, false),
    };
    let stem = base
        .strip_suffix("images-idx3-ubyte")
        .map(|p| format!("{p}labels-idx1-ubyte"))
        .or_else(|| {
            base.strip_suffix("images.idx3-ubyte")
                .map(|p| format!("{p}labels.idx1-ubyte"))
        })?;
    let gz_name = format!("{stem}.gz");
    let order = if gz { [gz_name, stem] } else { [stem, gz_name] };
    order
        .into_iter()
        .map(|n| images.with_file_name(n))
        .find(|p| p.is_file())
}

/// Loads CIFAR-10 binary batches: one `.bin` file, or a folder of them. In a folder the
/// training batches `data_batch_*.bin` are taken (sorted by name) when there are any, else
/// every `.bin` file (e.g. a folder with only `test_batch.bin`). Records are a label byte
/// (0..9) and 32 × 32 R, G, B planes; other target sizes are resized bilinearly, a gray
/// target takes the luma.
pub fn load_cifar10(
    path: impl AsRef<Path>,
    channels: usize,
    height: usize,
    width: usize,
) -> Result<ImageSet> {
    let path = path.as_ref();
    let target = Target::new(channels, height, width)?;
    let files = if path.is_dir() {
        let bins: Vec<PathBuf> = list_files(path)?
            .into_iter()
            .filter(|p| has_ext(p, &["bin"]))
            .collect();
        let train: Vec<PathBuf> = bins
            .iter()
            .filter(|p| file_name(p).starts_with("data_batch_"))
            .cloned()
            .collect();
        let files = if train.is_empty() { bins } else { train };
        if files.is_empty() {
            return Err(Error::format(
                path,
                "no CIFAR-10 batch files (*.bin) in this folder",
            ));
        }
        files
    } else {
        vec![path.to_path_buf()]
    };
    let mut set = ImageSet {
        channels: target.c,
        height: target.h,
        width: target.w,
        data: Vec::new(),
        labels: Some(Vec::new()),
    };
    for f in &files {
        let bytes = std::fs::read(f).map_err(|e| Error::io(f, e))?;
        check_set_size(f, set.len() + bytes.len() / CIFAR_RECORD, target)?;
        parse_cifar(f, &bytes, target, &mut set)?;
    }
    Ok(set)
}

fn parse_cifar(path: &Path, b: &[u8], t: Target, set: &mut ImageSet) -> Result<()> {
    if b.is_empty() {
        return Err(Error::format(path, "empty file: no CIFAR-10 records"));
    }
    if b.len() % CIFAR_RECORD != 0 {
        return Err(Error::format(
            path,
            format!(
                "{} bytes is not a whole number of {CIFAR_RECORD}-byte CIFAR-10 records \
                 (truncated, or not a CIFAR-10 binary batch)",
                b.len()
            ),
        ));
    }
    let plane = CIFAR_SIDE * CIFAR_SIDE;
    let mut hwc = vec![0u8; 3 * plane];
    let labels = set.labels.get_or_insert_with(Vec::new);
    for (k, rec) in b.chunks_exact(CIFAR_RECORD).enumerate() {
        if rec[0] > 9 {
            return Err(Error::format(
                path,
                format!(
                    "record {k} has label {} (CIFAR-10 labels are 0..9): corrupt or not a \
                     CIFAR-10 batch",
                    rec[0]
                ),
            ));
        }
        labels.push(rec[0]);
        for i in 0..plane {
            for ch in 0..3 {
                hwc[3 * i + ch] = rec[1 + ch * plane + i];
            }
        }
        push_image(
            &mut set.data,
            &hwc,
            3,
            CIFAR_SIDE,
            CIFAR_SIDE,
            t,
            Fit::Resize,
        );
    }
    Ok(())
}

/// Loads every file of a folder (not its subfolders; hidden files are skipped) as a PNG or
/// JPEG image, in file-name order. Each is converted to gray (luma) or RGB by the target's
/// channels, resized bilinearly so its shorter side fits and centre-cropped to the target.
/// A file that is not a decodable image is an error naming it: the folder is the dataset,
/// and silently skipping a file would train on something else than the user thinks.
pub fn load_folder(
    path: impl AsRef<Path>,
    channels: usize,
    height: usize,
    width: usize,
) -> Result<ImageSet> {
    let path = path.as_ref();
    let target = Target::new(channels, height, width)?;
    let files = list_files(path)?;
    if files.is_empty() {
        return Err(Error::format(path, "no image files in this folder"));
    }
    // Decoding is the slow part (JPEG especially); images are independent.
    check_set_size(path, files.len(), target)?;
    let images: Vec<Vec<f32>> = files
        .par_iter()
        .map(|f| {
            let bytes = std::fs::read(f).map_err(|e| Error::io(f, e))?;
            decode_image(f, &bytes, target)
        })
        .collect::<Result<_>>()?;
    Ok(ImageSet {
        channels: target.c,
        height: target.h,
        width: target.w,
        data: images.concat(),
        labels: None,
    })
}

fn decode_image(path: &Path, bytes: &[u8], t: Target) -> Result<Vec<f32>> {
    let img = image::load_from_memory(bytes).map_err(|e| {
        Error::format(
            path,
            format!("not a decodable PNG or JPEG image ({e}); the folder must hold only images"),
        )
    })?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    if w == 0 || h == 0 {
        return Err(Error::format(path, "image has zero width or height"));
    }
    let mut out = Vec::with_capacity(t.len());
    // Gray sources stay one channel (cheaper to resize, exact when the target is gray).
    if img.color().has_color() {
        push_image(
            &mut out,
            &img.into_rgb8().into_raw(),
            3,
            h,
            w,
            t,
            Fit::Resize,
        );
    } else {
        push_image(
            &mut out,
            &img.into_luma8().into_raw(),
            1,
            h,
            w,
            t,
            Fit::Resize,
        );
    }
    Ok(out)
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

fn is_idx_images_name(p: &Path) -> bool {
    let n = file_name(p);
    n.contains("images-idx3-ubyte") || n.contains("images.idx3-ubyte")
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
        let idx: Vec<&PathBuf> = files.iter().filter(|p| is_idx_images_name(p)).collect();
        if !idx.is_empty() {
            let train = idx
                .iter()
                .find(|p| file_name(p).starts_with("train-"))
                .or_else(|| (idx.len() == 1).then_some(&idx[0]));
            return match train {
                Some(p) => load_idx(p, channels, height, width),
                None => Err(Error::format(
                    path,
                    "several IDX image files and none named train-*; give one of them",
                )),
            };
        }
        return load_folder(path, channels, height, width);
    }
    if has_ext(path, &["bin"]) {
        return load_cifar10(path, channels, height, width);
    }
    let bytes = read_maybe_gz(path)?;
    if bytes.len() >= 4 && matches!(be_u32(&bytes, 0), IDX_IMAGES | IDX_LABELS) {
        return idx_with_labels(path, &bytes, target);
    }
    if image::guess_format(&bytes).is_ok() {
        return Ok(ImageSet {
            channels,
            height,
            width,
            data: decode_image(path, &bytes, target)?,
            labels: None,
        });
    }
    Err(Error::format(
        path,
        "not an image dataset: expected an IDX image file (MNIST format, .gz or raw), a \
         CIFAR-10 .bin batch, a PNG/JPEG image or a folder of them",
    ))
}

/// An [`ImageSet`] as a seeded, endless, resumable [`DataSource`]: epoch after epoch, each a
/// fresh permutation of the set (module docs).
#[derive(Clone, Debug)]
pub struct ImageData {
    set: ImageSet,
    seed: u64,
    /// The last epoch's permutation: a cache only, the batches do not depend on it.
    order: Option<(u64, Vec<u32>)>,
}

impl ImageData {
    /// Serves `set` in an order drawn from `seed`. Fails on an empty or ragged set.
    pub fn new(set: ImageSet, seed: u64) -> Result<Self> {
        let s = set.sample_len();
        if s == 0 || set.data.is_empty() || set.data.len() % s != 0 {
            return Err(Error::Shape(format!(
                "an image set of {} values cannot be split into images of {}x{}x{}",
                set.data.len(),
                set.channels,
                set.height,
                set.width
            )));
        }
        if set.len() > u32::MAX as usize {
            return Err(Error::Shape(format!("{} images is too many", set.len())));
        }
        Ok(ImageData {
            set,
            seed,
            order: None,
        })
    }

    /// The images being served.
    pub fn set(&self) -> &ImageSet {
        &self.set
    }

    /// The seed of the data order.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The indices of the images in batch `iteration` of size `n`: positions
    /// `iteration·n + j` of the epoch sequence, position p being entry `p mod len` of
    /// epoch `p / len`'s permutation.
    pub fn indices(&mut self, iteration: u64, n: usize) -> Vec<usize> {
        let len = self.set.len() as u128;
        let mut out = Vec::with_capacity(n);
        for j in 0..n as u128 {
            let p = iteration as u128 * n as u128 + j;
            let epoch = (p / len) as u64;
            if self.order.as_ref().is_none_or(|(e, _)| *e != epoch) {
                self.order = Some((epoch, epoch_permutation(self.seed, epoch, len as usize)));
            }
            let order = &self.order.as_ref().expect("just set").1;
            out.push(order[(p % len) as usize] as usize);
        }
        out
    }
}

/// The order of epoch `epoch`: a Fisher–Yates shuffle of `0..len` whose swap partner for
/// position i is ⌊w·(i+1)/2³²⌋ (Lemire's multiply-shift, bias < len/2³²), w being word
/// `i mod 4` of Philox block `(i / 4, epoch low 32 bits, epoch high 32 bits, Stream::Data)`.
pub fn epoch_permutation(seed: u64, epoch: u64, len: usize) -> Vec<u32> {
    let mut p: Vec<u32> = (0..len as u32).collect();
    let (lo, hi) = (epoch as u32, (epoch >> 32) as u32);
    let mut block = (usize::MAX, [0u32; 4]);
    for i in (1..len).rev() {
        if block.0 != i / 4 {
            block = (
                i / 4,
                rng::words(seed, (i / 4) as u32, lo, hi, Stream::Data),
            );
        }
        let w = block.1[i % 4];
        let j = ((u64::from(w) * (i as u64 + 1)) >> 32) as usize;
        p.swap(i, j);
    }
    p
}

impl DataSource for ImageData {
    fn sample_len(&self) -> usize {
        self.set.sample_len()
    }

    fn batch(&mut self, iteration: u64, n: usize) -> Result<Vec<f32>> {
        let idx = self.indices(iteration, n);
        let mut out = Vec::with_capacity(n * self.set.sample_len());
        for i in idx {
            out.extend_from_slice(self.set.image(i));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn temp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ebm-images-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    fn idx_images(n: u32, rows: u32, cols: u32, pixels: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        for v in [IDX_IMAGES, n, rows, cols] {
            b.extend_from_slice(&v.to_be_bytes());
        }
        b.extend_from_slice(pixels);
        b
    }

    fn idx_labels(labels: &[u8]) -> Vec<u8> {
        let mut b = IDX_LABELS.to_be_bytes().to_vec();
        b.extend_from_slice(&(labels.len() as u32).to_be_bytes());
        b.extend_from_slice(labels);
        b
    }

    fn scaled(v: u8) -> f32 {
        v as f32 / 255.0 * 2.0 - 1.0
    }

    fn err_text<T: std::fmt::Debug>(r: Result<T>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn idx_round_trip_raw_and_gzipped() {
        let dir = temp_dir("idx");
        // Three 2 × 3 images with distinct values, and their labels.
        let pixels: Vec<u8> = (0..18).map(|i| (i * 15) as u8).collect();
        let images = idx_images(3, 2, 3, &pixels);
        let labels = idx_labels(&[7, 0, 9]);
        std::fs::write(dir.join("raw-images-idx3-ubyte"), &images).unwrap();
        std::fs::write(dir.join("raw-labels-idx1-ubyte"), &labels).unwrap();
        std::fs::write(dir.join("gz-images-idx3-ubyte.gz"), gz(&images)).unwrap();
        std::fs::write(dir.join("gz-labels-idx1-ubyte.gz"), gz(&labels)).unwrap();
        // Gzipped content under a name without .gz: detected by the magic; no labels file.
        std::fs::write(dir.join("sneaky-images-idx3-ubyte"), gz(&images)).unwrap();
        for (name, has_labels) in [
            ("raw-images-idx3-ubyte", true),
            ("gz-images-idx3-ubyte.gz", true),
            ("sneaky-images-idx3-ubyte", false),
        ] {
            let set = load_idx(dir.join(name), 1, 2, 3).unwrap();
            assert_eq!((set.len(), set.sample_len()), (3, 6), "{name}");
            let want: Vec<f32> = pixels.iter().map(|&v| scaled(v)).collect();
            assert_eq!(set.data, want, "{name}");
            assert_eq!(set.image(1), &want[6..12]);
            assert_eq!(set.data[0], -1.0);
            let labels = has_labels.then(|| vec![7, 0, 9]);
            assert_eq!(set.labels, labels, "{name}");
            // Through the dispatcher too.
            assert_eq!(load(dir.join(name), 1, 2, 3).unwrap(), set, "{name}");
        }
        // Gray → RGB replicates the plane.
        let rgb = load_idx(dir.join("raw-images-idx3-ubyte"), 3, 2, 3).unwrap();
        assert_eq!(rgb.sample_len(), 18);
        assert_eq!(&rgb.image(2)[0..6], &rgb.image(2)[6..12]);
        assert_eq!(&rgb.image(2)[0..6], &rgb.image(2)[12..18]);
        assert_eq!(rgb.image(2)[0], scaled(180));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_idx_files_are_errors_naming_the_file() {
        let dir = temp_dir("badidx");
        let pixels = [100u8; 18];
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            (
                "trunc-images-idx3-ubyte",
                idx_images(3, 2, 3, &pixels[..15]),
                "truncated",
            ),
            (
                "trunc-images-idx3-ubyte.gz",
                idx_images(3, 2, 3, &pixels[..15]),
                "truncated",
            ),
            (
                "short-header",
                vec![0, 0, 8, 3, 0, 0],
                "truncated IDX header",
            ),
            (
                "magic.idx",
                {
                    let mut b = idx_images(3, 2, 3, &pixels);
                    b[3] = 0x02;
                    b
                },
                "magic 0x00000802",
            ),
            (
                "zero-images-idx3-ubyte",
                idx_images(0, 28, 28, &[]),
                "0 images",
            ),
            ("labels-instead", idx_labels(&[1, 2]), "labels file"),
            ("extra.idx", idx_images(1, 2, 3, &pixels[..7]), "stray"),
        ];
        for (name, bytes, what) in cases {
            let bytes = if name.ends_with(".gz") {
                gz(&bytes)
            } else {
                bytes
            };
            let p = dir.join(name);
            std::fs::write(&p, bytes).unwrap();
            let e = err_text(load_idx(&p, 1, 32, 32));
            assert!(e.contains(name) && e.contains(what), "{name}: {e}");
        }
        // A gzip stream cut in half.
        let whole = gz(&idx_images(3, 2, 3, &pixels));
        let p = dir.join("cut-images-idx3-ubyte.gz");
        std::fs::write(&p, &whole[..whole.len() / 2]).unwrap();
        let e = err_text(load_idx(&p, 1, 2, 3));
        assert!(e.contains("cut-images") && e.contains("gzip"), "{e}");
        // A labels file that does not match its images names the labels file.
        std::fs::write(
            dir.join("m-images-idx3-ubyte"),
            idx_images(3, 2, 3, &pixels),
        )
        .unwrap();
        std::fs::write(dir.join("m-labels-idx1-ubyte"), idx_labels(&[1, 2])).unwrap();
        let e = err_text(load_idx(dir.join("m-images-idx3-ubyte"), 1, 2, 3));
        assert!(
            e.contains("m-labels-idx1-ubyte") && e.contains("2 labels"),
            "{e}"
        );
        // A missing file is an I/O error naming it.
        let e = err_text(load_idx(dir.join("nope-images-idx3-ubyte"), 1, 2, 3));
        assert!(e.contains("nope-images"), "{e}");
        let e = err_text(load(dir.join("nope"), 1, 2, 3));
        assert!(e.contains("nope"), "{e}");
        // A bad target is refused before any file is read.
        assert!(err_text(load_idx(dir.join("x"), 2, 2, 3)).contains("channels"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn mnist_28_is_padded_to_32_with_background() {
        let dir = temp_dir("pad");
        let p = dir.join("p-images-idx3-ubyte");
        std::fs::write(&p, idx_images(1, 28, 28, &[255u8; 784])).unwrap();
        let set = load_idx(&p, 1, 32, 32).unwrap();
        assert_eq!(set.data.len(), 1024);
        for y in 0..32 {
            for x in 0..32 {
                let inside = (2..30).contains(&y) && (2..30).contains(&x);
                let want = if inside { 1.0 } else { -1.0 };
                assert_eq!(set.data[y * 32 + x], want, "({x}, {y})");
            }
        }
        // Other sizes are resized, not padded or cropped: a uniform image stays uniform.
        for side in [14, 30, 56] {
            let r = load_idx(&p, 1, side, side).unwrap();
            assert_eq!(r.data.len(), side * side);
            assert!(
                r.data.iter().all(|&v| v == 1.0),
                "{side}: {:?}",
                &r.data[..4]
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A hand-made 2-record CIFAR-10 batch: record 0 label 3, R plane = pixel index mod 256,
    /// G = 128, B = 255; record 1 label 9, all zero.
    fn cifar_bytes() -> Vec<u8> {
        let mut b = vec![3u8];
        b.extend((0..1024).map(|i| (i % 256) as u8));
        b.extend([128u8; 1024]);
        b.extend([255u8; 1024]);
        b.push(9);
        b.extend([0u8; 3072]);
        b
    }

    #[test]
    fn cifar_records_parse() {
        let dir = temp_dir("cifar");
        let p = dir.join("data_batch_1.bin");
        std::fs::write(&p, cifar_bytes()).unwrap();
        std::fs::write(dir.join("batches.meta.txt"), "airplane\n").unwrap();
        let set = load_cifar10(&p, 3, 32, 32).unwrap();
        assert_eq!((set.len(), set.sample_len()), (2, 3072));
        assert_eq!(set.labels, Some(vec![3, 9]));
        let img = set.image(0);
        assert_eq!(img[0], -1.0);
        assert_eq!(img[33], scaled(33), "R plane, row 1 col 1");
        assert_eq!(img[1024 + 500], scaled(128), "G plane");
        assert_eq!(img[2048 + 7], 1.0, "B plane");
        assert!(set.image(1).iter().all(|&v| v == -1.0));
        // Folder and dispatcher give the same; a gray target takes the luma.
        assert_eq!(load_cifar10(&dir, 3, 32, 32).unwrap(), set);
        assert_eq!(load(&dir, 3, 32, 32).unwrap(), set);
        let gray = load(&p, 1, 32, 32).unwrap();
        let luma = 0.299 * 33.0 + 0.587 * 128.0 + 0.114 * 255.0;
        assert!((gray.image(0)[33] - (luma / 255.0 * 2.0 - 1.0)).abs() < 1e-6);
        // Truncated and corrupt batches are refused, naming the file.
        let bad = dir.join("test_batch.bin");
        std::fs::write(&bad, &cifar_bytes()[..5000]).unwrap();
        let e = err_text(load_cifar10(&bad, 3, 32, 32));
        assert!(e.contains("test_batch.bin") && e.contains("3073"), "{e}");
        let mut b = cifar_bytes();
        b[3073] = 200;
        std::fs::write(&bad, b).unwrap();
        let e = err_text(load_cifar10(&bad, 3, 32, 32));
        assert!(
            e.contains("test_batch.bin") && e.contains("label 200"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn folder_of_pngs_of_different_sizes() {
        let dir = temp_dir("pngs");
        // a.png: 40 × 20 RGB, left half black, right half red.
        let a = RgbImage::from_fn(40, 20, |x, _| {
            if x < 20 {
                image::Rgb([0, 0, 0])
            } else {
                image::Rgb([255, 0, 0])
            }
        });
        a.save(dir.join("a.png")).unwrap();
        // b.png: 10 × 30 gray, constant 200.
        GrayImage::from_pixel(10, 30, image::Luma([200]))
            .save(dir.join("b.png"))
            .unwrap();
        std::fs::write(dir.join(".hidden"), "skipped").unwrap();
        std::fs::create_dir(dir.join("sub")).unwrap();
        let set = load_folder(&dir, 3, 16, 16).unwrap();
        assert_eq!(
            (set.len(), set.channels, set.height, set.width),
            (2, 3, 16, 16)
        );
        assert!(set.data.iter().all(|v| (-1.0..=1.0).contains(v)));
        // a: shorter side 20 → 16 makes it 32 × 16; the centre crop keeps columns 8..24,
        // so the left of the tile is black and the right red (R plane 1, G plane −1).
        let img = set.image(0);
        assert_eq!(img[0], -1.0);
        assert_eq!(img[15], 1.0, "R at the right edge");
        assert_eq!(img[256 + 15], -1.0, "G at the right edge");
        // b: gray replicated into R, G and B.
        let want = scaled(200);
        assert!(set.image(1).iter().all(|&v| (v - want).abs() < 1e-6));
        // Gray target: the luma of red is 0.299 · 255.
        let gray = load(&dir, 1, 16, 16).unwrap();
        assert_eq!(gray.sample_len(), 256);
        let red = 0.299f32 * 255.0 / 255.0 * 2.0 - 1.0;
        assert!((gray.image(0)[15] - red).abs() < 1e-5);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn non_image_in_folder_is_an_error_naming_it() {
        let dir = temp_dir("notimg");
        GrayImage::from_pixel(8, 8, image::Luma([9]))
            .save(dir.join("a.png"))
            .unwrap();
        std::fs::write(dir.join("notes.txt"), "these are my digits").unwrap();
        let e = err_text(load_folder(&dir, 1, 8, 8));
        assert!(e.contains("notes.txt") && e.contains("PNG or JPEG"), "{e}");
        // A .png that is not one.
        std::fs::remove_file(dir.join("notes.txt")).unwrap();
        std::fs::write(dir.join("broken.png"), b"\x89PNG\r\n\x1a\n garbage").unwrap();
        let e = err_text(load(&dir, 1, 8, 8));
        assert!(e.contains("broken.png"), "{e}");
        // An empty folder.
        let empty = dir.join("empty");
        std::fs::create_dir(&empty).unwrap();
        let e = err_text(load(&empty, 1, 8, 8));
        assert!(e.contains("empty") && e.contains("no image"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A set of `n` 1 × 1 × 2 images whose values are their own index.
    fn indexed_set(n: usize) -> ImageSet {
        ImageSet {
            channels: 1,
            height: 1,
            width: 2,
            data: (0..n).flat_map(|i| [i as f32, i as f32]).collect(),
            labels: None,
        }
    }

    #[test]
    fn image_data_batches_are_deterministic_and_cover_every_epoch() {
        let len = 10;
        let mut d = ImageData::new(indexed_set(len), 7).unwrap();
        assert_eq!(d.sample_len(), 2);
        // Batches of 4 do not divide 10: epochs straddle batches. 15 batches = 6 epochs.
        let mut seen = Vec::new();
        for t in 0..15 {
            let b = d.batch(t, 4).unwrap();
            assert_eq!(b.len(), 8);
            seen.extend(b.chunks_exact(2).map(|p| {
                assert_eq!(p[0], p[1]);
                p[0] as usize
            }));
        }
        let epochs: Vec<&[usize]> = seen.chunks_exact(len).collect();
        for (e, ep) in epochs.iter().enumerate() {
            let mut s = ep.to_vec();
            s.sort();
            assert_eq!(s, (0..len).collect::<Vec<_>>(), "epoch {e}: {ep:?}");
        }
        assert!(epochs.windows(2).any(|w| w[0] != w[1]), "epochs reshuffle");
        assert_ne!(epochs[0], &(0..len).collect::<Vec<_>>()[..], "shuffled");
        // Pure in the iteration: a fresh source asked for batch 11 directly agrees, and so
        // does asking out of order.
        let mut fresh = ImageData::new(indexed_set(len), 7).unwrap();
        assert_eq!(fresh.batch(11, 4).unwrap(), d.batch(11, 4).unwrap());
        assert_eq!(fresh.batch(2, 4).unwrap(), d.batch(2, 4).unwrap());
        // Another seed, another order; a batch larger than the set spans epochs.
        let mut other = ImageData::new(indexed_set(len), 8).unwrap();
        assert_ne!(other.batch(0, 10).unwrap(), fresh.batch(0, 10).unwrap());
        assert_eq!(other.batch(1, 25).unwrap().len(), 50);
        assert!(ImageData::new(indexed_set(0), 1).is_err());
    }

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

    #[test]
    fn real_mnist_test_set_if_present() {
        // Full MNIST, where `scripts/fetch_data.sh mnist` put it.
        let p = &Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist/t10k-images-idx3-ubyte.gz");
        if !p.exists() {
            eprintln!("skipped: {} not found", p.display());
            return;
        }
        let set = load_idx(p, 1, 32, 32).unwrap();
        assert_eq!(
            (set.len(), set.channels, set.height, set.width),
            (10000, 1, 32, 32)
        );
        assert!(set.data.iter().all(|v| (-1.0..=1.0).contains(v)));
        assert!(set.data.contains(&1.0));
        assert_eq!(set.labels.as_ref().map(Vec::len), Some(10000));
        // The folder: `load` picks the training images and their labels.
        let train = load(p.parent().unwrap(), 1, 28, 28).unwrap();
        assert_eq!((train.len(), train.sample_len()), (60000, 784));
        assert_eq!(train.labels.as_ref().map(Vec::len), Some(60000));
    }
}
