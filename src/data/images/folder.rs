//! Folders of PNG/JPEG images, and the decoding of one image file.

use std::path::Path;

use rayon::prelude::*;

use super::{check_set_size, list_files, push_image, Fit, ImageSet, Target};
use crate::{Error, Result};

/// Loads every file of a folder (hidden files are skipped) as a PNG or JPEG image, in
/// file-name order. Each is converted to gray (luma) or RGB by the target's channels,
/// resized bilinearly so its shorter side fits and centre-cropped to the target. A file that
/// is not a decodable image is an error naming it: the folder is the dataset, and silently
/// skipping a file would train on something else than the user thinks.
///
/// A folder with no files but subfolders is a labelled dataset (torchvision's
/// `ImageFolder`): each subfolder, in name order, is one class, its images labelled with the
/// class's index.
pub fn load_folder(
    path: impl AsRef<Path>,
    channels: usize,
    height: usize,
    width: usize,
) -> Result<ImageSet> {
    let path = path.as_ref();
    let files = list_files(path)?;
    if files.is_empty() {
        let classes = list_subfolders(path)?;
        if classes.is_empty() {
            return Err(Error::format(path, "no image files in this folder"));
        }
        if classes.len() > 256 {
            return Err(Error::format(
                path,
                format!("{} class subfolders; at most 256 classes", classes.len()),
            ));
        }
        let mut set: Option<ImageSet> = None;
        let mut labels = Vec::new();
        for (class, dir) in classes.iter().enumerate() {
            let part = load_folder_files(dir, channels, height, width)?;
            labels.extend(std::iter::repeat_n(class as u8, part.len()));
            match &mut set {
                Some(s) => s.data.extend(part.data),
                None => set = Some(part),
            }
        }
        let mut set = set.expect("at least one class");
        set.labels = Some(labels);
        return Ok(set);
    }
    load_folder_files(path, channels, height, width)
}

/// Subfolders of `dir` (not hidden), sorted by name.
fn list_subfolders(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut dirs = Vec::new();
    for entry in rd {
        let p = entry.map_err(|e| Error::io(dir, e))?.path();
        let hidden = p
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if p.is_dir() && !hidden {
            dirs.push(p);
        }
    }
    dirs.sort();
    Ok(dirs)
}

/// The images directly in `path`, unlabelled.
fn load_folder_files(
    path: &Path,
    channels: usize,
    height: usize,
    width: usize,
) -> Result<ImageSet> {
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

pub(super) fn decode_image(path: &Path, bytes: &[u8], t: Target) -> Result<Vec<f32>> {
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

#[cfg(test)]
mod tests {
    use image::{GrayImage, RgbImage};

    use super::*;
    use crate::data::images::load;
    use crate::data::images::test_util::{err_text, scaled, temp_dir};

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

    /// One subfolder per class (torchvision's ImageFolder): labels by subfolder name order,
    /// images in file-name order within each; a loose file beside them makes it a plain
    /// (unlabelled) folder again, and an empty class folder is an error naming it.
    #[test]
    fn class_subfolders_are_labels() {
        let dir = temp_dir("classes");
        for (class, values) in [
            ("cat", vec![10u8, 20]),
            ("dog", vec![30]),
            ("emu", vec![40, 50, 60]),
        ] {
            std::fs::create_dir_all(dir.join(class)).unwrap();
            for (i, v) in values.into_iter().enumerate() {
                GrayImage::from_pixel(4, 4, image::Luma([v]))
                    .save(dir.join(class).join(format!("{i}.png")))
                    .unwrap();
            }
        }
        let set = load(&dir, 1, 4, 4).unwrap();
        assert_eq!(set.labels.as_deref(), Some(&[0u8, 0, 1, 2, 2, 2][..]));
        assert_eq!(set.classes(), Some(3));
        let firsts: Vec<f32> = (0..6).map(|i| set.image(i)[0]).collect();
        let want: Vec<f32> = [10u8, 20, 30, 40, 50, 60]
            .iter()
            .map(|&v| scaled(v))
            .collect();
        assert_eq!(firsts, want);
        std::fs::create_dir_all(dir.join("fox")).unwrap();
        let e = err_text(load(&dir, 1, 4, 4));
        assert!(e.contains("fox") && e.contains("no image files"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
