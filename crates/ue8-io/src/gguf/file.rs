//! A GGUF file opened by mmap: the parsed header plus borrowed tensor data.

use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use super::dequant::dequantize_to_f32;
use super::error::GgufError;
use super::reader::{GgufHeader, TensorInfo};
use super::value::MetadataValue;

/// A validated GGUF file. Tensor data stays in the page cache; nothing is copied until asked for.
pub struct GgufFile {
    path: PathBuf,
    mmap: Mmap,
    header: GgufHeader,
}

impl GgufFile {
    /// Opens, maps and validates `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, GgufError> {
        let path = path.as_ref().to_path_buf();
        let io = |source| GgufError::Io {
            path: path.clone(),
            source,
        };
        let file = File::open(&path).map_err(io)?;
        // SAFETY: the map is read-only and private to this process. Another process truncating or
        // rewriting the file while it is mapped is outside what any mmap-based reader can guard against
        // (safetensors and llama.cpp make the same assumption); ue8 never writes its inputs.
        let mmap = unsafe { Mmap::map(&file) }.map_err(io)?;
        let header = GgufHeader::parse(&mmap, &path)?;
        Ok(Self { path, mmap, header })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn header(&self) -> &GgufHeader {
        &self.header
    }

    /// Tensor infos in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.header.tensors
    }

    /// The metadata value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&MetadataValue> {
        self.header.get(key)
    }

    /// The raw bytes of a tensor of this file (blocks as GGML stores them).
    pub fn tensor_bytes(&self, t: &TensorInfo) -> Result<&[u8], GgufError> {
        // An empty tensor has no position to check: the data section may even be absent (a header
        // that ends before its alignment padding). Found by fuzzing (regression test in
        // tests/gguf_reader.rs).
        if t.n_bytes == 0 {
            return Ok(&[]);
        }
        let out_of_file = || GgufError::TensorOutOfFile {
            path: self.path.clone(),
            tensor: t.name.clone(),
            start: t.offset,
            end: t.offset.saturating_add(t.n_bytes),
            data_len: (self.mmap.len() as u64).saturating_sub(self.header.data_offset),
        };
        let start = self
            .header
            .data_offset
            .checked_add(t.offset)
            .and_then(|s| usize::try_from(s).ok())
            .ok_or_else(out_of_file)?;
        let len = usize::try_from(t.n_bytes).map_err(|_| out_of_file())?;
        let end = start.checked_add(len).ok_or_else(out_of_file)?;
        self.mmap.get(start..end).ok_or_else(out_of_file)
    }

    /// Dequantizes a tensor to f32, in GGUF element order (row-major over [`TensorInfo::shape`]).
    pub fn dequantize(&self, t: &TensorInfo) -> Result<Vec<f32>, GgufError> {
        let bytes = self.tensor_bytes(t)?;
        let n = usize::try_from(t.n_elems).map_err(|_| GgufError::SizeOverflow {
            path: self.path.clone(),
            tensor: t.name.clone(),
        })?;
        let mut out = vec![0f32; n];
        dequantize_to_f32(t.ggml_type, bytes, &mut out).map_err(|e| e.at(&self.path, &t.name))?;
        Ok(out)
    }
}
