//! CIFAR-10 binary batches: one `.bin` file or a folder of them.

use std::path::{Path, PathBuf};

use super::{check_set_size, file_name, has_ext, list_files, push_image, Fit, ImageSet, Target};
use crate::{Error, Result};

/// One CIFAR-10 record: a label byte, then 32 × 32 red, green and blue planes.
const CIFAR_SIDE: usize = 32;
const CIFAR_RECORD: usize = 1 + 3 * CIFAR_SIDE * CIFAR_SIDE;

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
    if !b.len().is_multiple_of(CIFAR_RECORD) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::images::load;
    use crate::data::images::test_util::{err_text, scaled, temp_dir};

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
}
