//! MNIST / Fashion-MNIST IDX files (images and their labels), raw or gzipped.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::{check_set_size, file_name, push_image, Fit, ImageSet, Target};
use crate::{Error, Result};

/// IDX magic numbers (big-endian u32): unsigned-byte data with 3 dimensions (images) or 1
/// (labels).
const IDX_IMAGES: u32 = 0x0000_0803;
const IDX_LABELS: u32 = 0x0000_0801;
/// The first bytes of a gzip stream; compression is detected by content, not by name.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// The most bytes a gzipped file may inflate to (4 GiB; MNIST's training images are 47 MB):
/// past that it is corrupt or a decompression bomb, and an error, not an abort.
const MAX_GUNZIPPED: u64 = 1 << 32;

/// Reads a whole file, gunzipping it when it starts with the gzip magic (whatever its name).
pub(super) fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
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

fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Loads an MNIST / Fashion-MNIST IDX image file (magic 0x00000803, u8 pixels; gzipped or
/// raw, detected by content) and, when it exists beside it, the matching labels file
/// (`…-images-idx3-ubyte[.gz]` → `…-labels-idx1-ubyte[.gz]`, also the `images.idx3-ubyte`
/// spelling). A target [`PAD`](super::PAD) pixels larger on every side is padded with the
/// background −1 (28 × 28 → 32 × 32, the `mnist32` convention); other size mismatches are
/// resized bilinearly (module docs).
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
pub(super) fn idx_with_labels(path: &Path, bytes: &[u8], target: Target) -> Result<ImageSet> {
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

/// The labels file that belongs to an IDX images file, if it exists: the first of
/// [`idx_labels_candidates`] that is a file.
fn labels_path(images: &Path) -> Option<PathBuf> {
    idx_labels_candidates(images)
        .into_iter()
        .find(|p| p.is_file())
}

/// The labels files looked for beside an IDX images file, in the order they are tried:
/// same folder, `images` → `labels`, `idx3` → `idx1`, the images file's own compression
/// first. Empty when the name does not follow either MNIST spelling.
///
/// ```
/// use std::path::{Path, PathBuf};
/// use ebm::data::images::idx_labels_candidates;
///
/// let tried = idx_labels_candidates(Path::new("data/t10k-images-idx3-ubyte.gz"));
/// assert_eq!(tried, [
///     PathBuf::from("data/t10k-labels-idx1-ubyte.gz"),
///     PathBuf::from("data/t10k-labels-idx1-ubyte"),
/// ]);
/// assert!(idx_labels_candidates(Path::new("digits.idx")).is_empty());
/// ```
pub fn idx_labels_candidates(images: &Path) -> Vec<PathBuf> {
    let Some(name) = images.file_name().and_then(|n| n.to_str()) else {
        return Vec::new();
    };
    let (base, gz) = match name.strip_suffix(".gz") {
        Some(b) => (b, true),
        None => (name, false),
    };
    let Some(stem) = base
        .strip_suffix("images-idx3-ubyte")
        .map(|p| format!("{p}labels-idx1-ubyte"))
        .or_else(|| {
            base.strip_suffix("images.idx3-ubyte")
                .map(|p| format!("{p}labels.idx1-ubyte"))
        })
    else {
        return Vec::new();
    };
    let gz_name = format!("{stem}.gz");
    let order = if gz { [gz_name, stem] } else { [stem, gz_name] };
    order
        .into_iter()
        .map(|n| images.with_file_name(n))
        .collect()
}

/// Loads an IDX labels file (magic 0x00000801, one u8 class per image; gzipped or raw,
/// detected by content), for datasets whose labels do not sit beside the images under the
/// MNIST name.
pub fn load_idx_labels(path: impl AsRef<Path>) -> Result<Vec<u8>> {
    let path = path.as_ref();
    parse_idx_labels(path, &read_maybe_gz(path)?)
}

pub(super) fn is_idx_images_name(p: &Path) -> bool {
    let n = file_name(p);
    n.contains("images-idx3-ubyte") || n.contains("images.idx3-ubyte")
}

/// Whether `bytes` start with an IDX magic number (images or labels): what
/// [`load`](super::load) takes as an IDX file, whatever its name.
pub(super) fn has_idx_magic(bytes: &[u8]) -> bool {
    bytes.len() >= 4 && matches!(be_u32(bytes, 0), IDX_IMAGES | IDX_LABELS)
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::path::Path;

    use super::*;
    use crate::data::images::load;
    use crate::data::images::test_util::{err_text, scaled, temp_dir};

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
