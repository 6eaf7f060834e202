//! Named f32 tensors plus string metadata in a safetensors file: model files, checkpoints
//! and sample batches (docs/ARCHITECTURE.md, Files). Writes are atomic — temp file, fsync, rename, fsync of
//! the folder — so a crash never leaves half a file.
//!
//! ```
//! use ebm::tensorfile::TensorFile;
//!
//! # fn main() -> ebm::Result<()> {
//! let path = std::env::temp_dir().join(format!("ebm-doc-tensors-{}.safetensors", std::process::id()));
//! let mut file = TensorFile::new();
//! file.insert("samples", vec![2, 3], vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
//! file.metadata.insert("note".into(), "two rows of three".into());
//! file.write(&path)?;
//!
//! let back = TensorFile::read(&path)?;
//! assert_eq!(back, file);
//! assert_eq!(back.get("samples", &path)?.shape, [2, 3]);
//! assert!(back.get("chains", &path).is_err(), "missing tensors are errors naming the file");
//! # std::fs::remove_file(&path).ok();
//! # Ok(())
//! # }
//! ```

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use safetensors::{Dtype, SafeTensors};

use crate::{Error, Result};

/// A tensor's shape and values.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// The values, row-major: `shape.iter().product()` of them.
    pub data: Vec<f32>,
}

/// The contents of one safetensors file (f32 on the way out; f32, f64 or f16/bf16 read in).
/// [`write`](Self::write) and [`read`](Self::read) round-trip it (see the [module](self)
/// example).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TensorFile {
    /// Tensors by name, e.g. `layers.0.weight`.
    pub tensors: BTreeMap<String, Tensor>,
    /// The header's `__metadata__` strings, e.g. `ebm.spec` (see
    /// [`checkpoint`](crate::train::checkpoint)).
    pub metadata: HashMap<String, String>,
}

impl TensorFile {
    /// An empty file.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add (or replace) a tensor; panics in debug builds if the shape does not fit the data.
    pub fn insert(&mut self, name: impl Into<String>, shape: Vec<usize>, data: Vec<f32>) {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        self.tensors.insert(name.into(), Tensor { shape, data });
    }

    /// A tensor by name, or an error naming the file and the missing tensor.
    pub fn get(&self, name: &str, path: &Path) -> Result<&Tensor> {
        self.tensors.get(name).ok_or_else(|| {
            let have: Vec<_> = self.tensors.keys().take(8).cloned().collect();
            Error::format(
                path,
                format!("no tensor '{name}' (has: {})", have.join(", ")),
            )
        })
    }

    /// Read a safetensors file; any problem is an error naming the file.
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::from_bytes(&bytes).map_err(|what| Error::format(path, what))
    }

    fn from_bytes(bytes: &[u8]) -> std::result::Result<Self, String> {
        let bad = |e: safetensors::SafeTensorError| format!("not a valid safetensors file ({e})");
        let (_, header) = SafeTensors::read_metadata(bytes).map_err(bad)?;
        let metadata = header.metadata().clone().unwrap_or_default();
        let st = SafeTensors::deserialize(bytes).map_err(bad)?;
        let mut tensors = BTreeMap::new();
        for (name, view) in st.tensors() {
            let raw = view.data();
            let data: Vec<f32> = match view.dtype() {
                Dtype::F32 => raw
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                    .collect(),
                Dtype::F64 => raw
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32)
                    .collect(),
                Dtype::F16 => raw
                    .chunks_exact(2)
                    .map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
                    .collect(),
                Dtype::BF16 => raw
                    .chunks_exact(2)
                    .map(|c| f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16))
                    .collect(),
                other => {
                    return Err(format!(
                        "tensor '{name}' has dtype {other:?}; expected F32, F64, F16 or BF16"
                    ))
                }
            };
            tensors.insert(
                name,
                Tensor {
                    shape: view.shape().to_vec(),
                    data,
                },
            );
        }
        Ok(TensorFile { tensors, metadata })
    }

    /// Write the file atomically: a crash leaves either the old file or the new one.
    pub fn write(&self, path: &Path) -> Result<()> {
        let views: Vec<(String, safetensors::tensor::TensorView)> = self
            .tensors
            .iter()
            .map(|(name, t)| {
                let view = safetensors::tensor::TensorView::new(
                    Dtype::F32,
                    t.shape.clone(),
                    bytemuck::cast_slice(&t.data),
                )
                .map_err(|e| Error::Shape(format!("{name}: {e}")))?;
                Ok((name.clone(), view))
            })
            .collect::<Result<_>>()?;
        let metadata = (!self.metadata.is_empty()).then(|| self.metadata.clone());
        let bytes = safetensors::serialize(views, metadata)
            .map_err(|e| Error::format(path, e.to_string()))?;
        write_atomic(path, &bytes)
    }
}

/// Write `bytes` to `path` atomically: a temp file in the same directory (see
/// [`is_temp_file`]), fsync it, rename it over `path`, fsync the directory so the rename
/// itself is durable. A crash at any point leaves either the old file or the new one at
/// `path`, never half of one; at worst a stale temp file stays behind
/// ([`remove_stale_temps`] clears those).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = parent_dir(path);
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let tmp = temp_path(path);
    let written = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()
    })();
    if let Err(e) = written {
        std::fs::remove_file(&tmp).ok();
        return Err(Error::io(&tmp, e));
    }
    rename_durably(&tmp, path)
}

/// Make `dst` an atomic, durable copy of the finished file `src` (a hard link where the file
/// system allows it, else a full copy), by the same temp-and-rename path as [`write_atomic`].
pub fn link_atomic(src: &Path, dst: &Path) -> Result<()> {
    let tmp = temp_path(dst);
    match std::fs::hard_link(src, &tmp) {
        Ok(()) => rename_durably(&tmp, dst),
        Err(_) => {
            std::fs::remove_file(&tmp).ok();
            let bytes = std::fs::read(src).map_err(|e| Error::io(src, e))?;
            write_atomic(dst, &bytes)
        }
    }
}

/// Whether a file name is one of [`write_atomic`]'s temp files (`<name>.<pid>-<n>.tmp`, or
/// `<name>.safetensors.tmp` from older versions): never a finished file.
///
/// ```
/// use ebm::tensorfile::is_temp_file;
///
/// assert!(is_temp_file("model.safetensors.4242-0.tmp"));
/// assert!(!is_temp_file("model.safetensors"));
/// assert!(!is_temp_file("notes.tmp"));
/// ```
pub fn is_temp_file(name: &str) -> bool {
    let Some(stem) = name.strip_suffix(".tmp") else {
        return false;
    };
    if stem.ends_with(".safetensors") {
        return true;
    }
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    match stem
        .rsplit_once('.')
        .and_then(|(_, tag)| tag.split_once('-'))
    {
        Some((pid, n)) => digits(pid) && digits(n),
        None => false,
    }
}

/// Delete the temp files a killed writer left in `dir` (those of other processes; this
/// process's own are in flight). Returns how many went. Only for folders this process owns,
/// such as a run's output folder: a live writer elsewhere would lose its temp file.
pub fn remove_stale_temps(dir: &Path) -> Result<usize> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(Error::io(dir, e)),
    };
    let ours = format!(".{}-", std::process::id());
    let mut removed = 0;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !is_temp_file(name) || name.contains(&ours) || !entry.path().is_file() {
            continue;
        }
        match std::fs::remove_file(entry.path()) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(entry.path(), e)),
        }
    }
    Ok(removed)
}

/// The folder holding `path` (`.` for a bare file name).
fn parent_dir(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// A temp name next to `path`, unique to this process and call, so that two writers of one
/// path never rename each other's half-written file.
fn temp_path(path: &Path) -> std::path::PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}-{n}.tmp", std::process::id()));
    path.with_file_name(name)
}

/// Rename the finished, fsynced `tmp` over `path` and fsync the folder.
fn rename_durably(tmp: &Path, path: &Path) -> Result<()> {
    if let Err(e) = std::fs::rename(tmp, path) {
        std::fs::remove_file(tmp).ok();
        return Err(Error::io(path, e));
    }
    sync_dir(parent_dir(path))
}

/// fsync a folder, making renames and deletions in it durable (a no-op where folders cannot
/// be opened or synced, as on Windows or some network file systems).
pub fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        let synced = std::fs::File::open(dir).and_then(|d| d.sync_all());
        match synced {
            Err(e)
                if !matches!(
                    e.kind(),
                    std::io::ErrorKind::InvalidInput | std::io::ErrorKind::Unsupported
                ) =>
            {
                return Err(Error::io(dir, e))
            }
            _ => {}
        }
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let frac = (h & 0x3ff) as u32;
    let bits = match (exp, frac) {
        (0, 0) => sign,
        (0, _) => {
            // Subnormal: value = frac · 2⁻²⁴.
            let v = frac as f32 * (1.0 / 16_777_216.0);
            return if sign != 0 { -v } else { v };
        }
        (31, 0) => sign | 0x7f80_0000,
        (31, _) => sign | 0x7fc0_0000,
        _ => sign | ((exp + 112) << 23) | (frac << 13),
    };
    f32::from_bits(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_metadata() {
        let dir = std::env::temp_dir().join(format!("ebm-tf-{}", std::process::id()));
        let path = dir.join("a.safetensors");
        let mut f = TensorFile::new();
        f.insert("x", vec![2, 3], (0..6).map(|v| v as f32 * 0.5).collect());
        f.metadata.insert("ebm.spec".into(), "{}".into());
        f.write(&path).unwrap();
        assert_eq!(TensorFile::read(&path).unwrap(), f);
        let names = |dir: &Path| {
            let mut names: Vec<String> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            names.sort();
            names
        };
        assert_eq!(names(&dir), ["a.safetensors"], "temp file left behind");

        // A copy made by link_atomic reads the same and survives the original's deletion.
        let copy = dir.join("b.safetensors");
        link_atomic(&path, &copy).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(TensorFile::read(&copy).unwrap(), f);

        // Stale temp files (another process's, or the old naming) go; finished files stay.
        for stale in ["a.safetensors.1-0.tmp", "c.safetensors.tmp"] {
            std::fs::write(dir.join(stale), b"half").unwrap();
        }
        assert!(is_temp_file("a.safetensors.1-0.tmp"));
        assert!(is_temp_file("metrics.csv.123-45.tmp"));
        for not in ["a.safetensors", "notes.tmp", "a.1-.tmp", "a.x-1.tmp"] {
            assert!(!is_temp_file(not), "{not}");
        }
        std::fs::write(dir.join("notes.tmp"), b"the user's").unwrap();
        assert_eq!(remove_stale_temps(&dir).unwrap(), 2);
        assert_eq!(names(&dir), ["b.safetensors", "notes.tmp"]);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn corrupt_files_are_errors() {
        let dir = std::env::temp_dir().join(format!("ebm-tf-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.safetensors");
        std::fs::write(&path, b"\x10\x00\x00\x00\x00\x00\x00\x00{not json").unwrap();
        let err = TensorFile::read(&path).unwrap_err().to_string();
        assert!(err.contains("bad.safetensors"), "{err}");
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn half_floats() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
    }
}
