//! Read-only, memory-mapped view of a safetensors checkpoint: one file, or a directory with
//! `model.safetensors` or shards listed in `model.safetensors.index.json`.
//!
//! Weights are never copied: [`Checkpoint::tensor`] hands out slices of the mmap. Headers are
//! validated by the `safetensors` crate (checked sizes, contiguous in-file offsets).

use crate::error::{EngineError, Result};
use memmap2::Mmap;
use safetensors::tensor::{Dtype, TensorInfo};
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

struct Shard {
    path: PathBuf,
    mmap: Mmap,
    data_start: usize,
    infos: HashMap<String, TensorInfo>,
}

/// One tensor as stored: dtype, row-major shape and its raw little-endian bytes in the mmap.
#[derive(Clone, Copy, Debug)]
pub struct TensorRef<'a> {
    pub name: &'a str,
    pub file: &'a Path,
    pub dtype: Dtype,
    pub shape: &'a [usize],
    pub data: &'a [u8],
}

/// All tensors of a model, by name.
pub struct Checkpoint {
    shards: Vec<Shard>,
    index: HashMap<String, usize>,
    /// f32 copies of every block-scale grid (`*.weight_scale_inv`, float `*.weight_scale`), decoded
    /// once at open: the kernels want aligned f32 scales, and owning them here lets weights borrow
    /// them for as long as they borrow the mmap. They are ~1/16000 of the weights (128x128 tiles).
    tile_scales: HashMap<String, Vec<f32>>,
}

/// Whether a tensor is a per-tile scale grid that is decoded to f32 at open.
fn is_tile_scale(name: &str, dtype: Dtype) -> bool {
    name.ends_with(".weight_scale_inv")
        || (name.ends_with(".weight_scale")
            && matches!(dtype, Dtype::F32 | Dtype::BF16 | Dtype::F16))
}

/// f32 values of a scale grid stored as F32, BF16, F16 or E8M0 bytes (U8 / F8_E8M0).
fn decode_scales(t: &TensorRef) -> Option<Vec<f32>> {
    match t.dtype {
        Dtype::F8_E8M0 | Dtype::U8 => Some(
            t.data
                .iter()
                .map(|&b| ue8_formats::E8M0::from_bits(b).to_f32())
                .collect(),
        ),
        _ => t.to_f32_vec().ok(),
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> EngineError + '_ {
    move |source| EngineError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn open_shard(path: &Path) -> Result<Shard> {
    let file = File::open(path).map_err(io_err(path))?;
    // SAFETY: the file is opened read-only and ue8 never writes it; like every mmap reader we rely on
    // no other process truncating it while the model is loaded.
    let mmap = unsafe { Mmap::map(&file) }.map_err(io_err(path))?;
    let (header_len, metadata) =
        safetensors::SafeTensors::read_metadata(&mmap).map_err(|e| EngineError::Safetensors {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    let data_start = header_len
        .checked_add(8)
        .ok_or_else(|| EngineError::Safetensors {
            path: path.to_path_buf(),
            message: "header length overflows".into(),
        })?;
    let infos = metadata
        .tensors()
        .into_iter()
        .map(|(name, info)| (name, info.clone()))
        .collect();
    Ok(Shard {
        path: path.to_path_buf(),
        mmap,
        data_start,
        infos,
    })
}

impl Checkpoint {
    /// Open a `.safetensors` file or a model directory.
    pub fn open(path: &Path) -> Result<Self> {
        let files: Vec<PathBuf> = if path.is_dir() {
            let index = path.join("model.safetensors.index.json");
            let single = path.join("model.safetensors");
            if index.is_file() {
                shard_files(&index, path)?
            } else if single.is_file() {
                vec![single]
            } else {
                let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                    .map_err(io_err(path))?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
                    .collect();
                found.sort();
                if found.is_empty() {
                    return Err(EngineError::Io {
                        path: path.to_path_buf(),
                        source: std::io::Error::new(
                            std::io::ErrorKind::NotFound,
                            "no model.safetensors, index or *.safetensors file in this directory",
                        ),
                    });
                }
                found
            }
        } else {
            vec![path.to_path_buf()]
        };
        let mut shards = Vec::with_capacity(files.len());
        let mut index = HashMap::new();
        for (i, f) in files.iter().enumerate() {
            let shard = open_shard(f)?;
            for name in shard.infos.keys() {
                index.insert(name.clone(), i);
            }
            shards.push(shard);
        }
        let mut ck = Checkpoint {
            shards,
            index,
            tile_scales: HashMap::new(),
        };
        let mut tile_scales = HashMap::new();
        for name in ck.index.keys() {
            if let Some(t) = ck.get(name) {
                if is_tile_scale(name, t.dtype) {
                    if let Some(v) = decode_scales(&t) {
                        tile_scales.insert(name.clone(), v);
                    }
                }
            }
        }
        ck.tile_scales = tile_scales;
        Ok(ck)
    }

    /// The f32 copy of a block-scale grid decoded at open (see the field's docs).
    pub fn tile_scales(&self, name: &str) -> Option<&[f32]> {
        self.tile_scales.get(name).map(Vec::as_slice)
    }

    /// Whether a tensor of this name exists.
    pub fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    /// Look a tensor up; `None` when absent.
    pub fn get(&self, name: &str) -> Option<TensorRef<'_>> {
        let shard = self.shards.get(*self.index.get(name)?)?;
        let (key, info) = shard.infos.get_key_value(name)?;
        let (begin, end) = info.data_offsets;
        // Offsets were validated against the file size by read_metadata; `get` keeps this total.
        let data = shard
            .mmap
            .get(shard.data_start.checked_add(begin)?..shard.data_start.checked_add(end)?)?;
        Some(TensorRef {
            name: key,
            file: &shard.path,
            dtype: info.dtype,
            shape: &info.shape,
            data,
        })
    }

    /// Look a tensor up; an error naming it and `what` it is for when absent.
    pub fn tensor(&self, name: &str, what: &str) -> Result<TensorRef<'_>> {
        self.get(name).ok_or_else(|| EngineError::MissingTensor {
            tensor: name.to_string(),
            what: what.to_string(),
        })
    }

    /// Total bytes of all tensors (the size of the weights on disk).
    pub fn total_bytes(&self) -> u64 {
        self.shards
            .iter()
            .flat_map(|s| s.infos.values())
            .map(|i| (i.data_offsets.1 - i.data_offsets.0) as u64)
            .sum()
    }
}

fn shard_files(index: &Path, dir: &Path) -> Result<Vec<PathBuf>> {
    let text = std::fs::read_to_string(index).map_err(io_err(index))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|source| EngineError::Json {
        path: index.to_path_buf(),
        source,
    })?;
    let map = v
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| EngineError::Config {
            path: index.to_path_buf(),
            field: "weight_map".into(),
            problem: "missing or not an object".into(),
        })?;
    let mut names: Vec<&str> = map.values().filter_map(|x| x.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    names
        .into_iter()
        .map(|n| {
            let p = Path::new(n);
            if p.is_absolute()
                || p.components()
                    .any(|c| matches!(c, std::path::Component::ParentDir))
            {
                Err(EngineError::Config {
                    path: index.to_path_buf(),
                    field: "weight_map".into(),
                    problem: format!("shard name '{n}' leaves the model directory"),
                })
            } else {
                Ok(dir.join(p))
            }
        })
        .collect()
}

impl TensorRef<'_> {
    /// Shape check with a precise error.
    pub fn expect_shape(&self, expected: &[usize]) -> Result<()> {
        if self.shape == expected {
            Ok(())
        } else {
            Err(EngineError::TensorShape {
                file: self.file.to_path_buf(),
                tensor: self.name.to_string(),
                expected: expected.to_vec(),
                found: self.shape.to_vec(),
            })
        }
    }

    /// Error for a dtype this use does not accept.
    pub fn dtype_error(&self, expected: &str) -> EngineError {
        EngineError::TensorDtype {
            file: self.file.to_path_buf(),
            tensor: self.name.to_string(),
            dtype: format!("{:?}", self.dtype),
            expected: expected.to_string(),
        }
    }

    /// Read a small F32/BF16/F16 tensor (norms, biases, scales) into an owned f32 vector.
    pub fn to_f32_vec(&self) -> Result<Vec<f32>> {
        let d = self.data;
        Ok(match self.dtype {
            Dtype::F32 => d
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            Dtype::BF16 => d
                .chunks_exact(2)
                .map(|c| half::bf16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32())
                .collect(),
            Dtype::F16 => d
                .chunks_exact(2)
                .map(|c| half::f16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32())
                .collect(),
            _ => return Err(self.dtype_error("F32, BF16 or F16")),
        })
    }
}
