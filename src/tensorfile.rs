//! Named f32 tensors plus string metadata in a safetensors file: model files, checkpoints
//! and sample batches (DESIGN.md §3). Writes are atomic — temp file, fsync, rename — so a
//! crash never leaves half a file.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;

use safetensors::{Dtype, SafeTensors};

use crate::{Error, Result};

/// A tensor's shape and values.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// The contents of one safetensors file (f32 on the way out; f32, f64 or f16/bf16 read in).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TensorFile {
    pub tensors: BTreeMap<String, Tensor>,
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

/// Write `bytes` to `path` via a temp file in the same directory, fsync, rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let mut file = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    file.write_all(bytes).map_err(|e| Error::io(&tmp, e))?;
    file.sync_all().map_err(|e| Error::io(&tmp, e))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
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
        assert!(!dir.join("a.safetensors.tmp").exists());
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
