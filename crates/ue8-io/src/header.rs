//! The safetensors header parser and validator. The header is untrusted input: the length is capped,
//! every size is computed with checked arithmetic, offsets must tile the data section exactly (no gap,
//! no overlap, nothing past the end) and each dtype x shape must match its byte span, as the
//! `safetensors` crate requires; errors name the file and the tensor.

use crate::{Dtype, IoError};
use std::collections::BTreeMap;
use std::path::Path;

/// Largest header accepted, the same cap as the `safetensors` crate (100 MB).
pub const MAX_HEADER_LEN: u64 = 100_000_000;

/// One tensor's entry in a safetensors header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    /// Byte range inside the data section (which starts right after the header).
    pub start: u64,
    pub end: u64,
}

impl TensorInfo {
    /// Number of logical elements.
    pub fn numel(&self) -> u64 {
        self.shape.iter().map(|&d| d as u64).product()
    }
}

/// A validated safetensors header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Offset of the data section from the start of the file (8 + header length).
    pub data_start: u64,
    /// Tensors in data order (sorted by offset).
    pub tensors: Vec<TensorInfo>,
    /// The `__metadata__` string map.
    pub metadata: BTreeMap<String, String>,
}

fn bad(path: &Path, problem: impl Into<String>) -> IoError {
    IoError::BadHeader {
        path: path.to_path_buf(),
        problem: problem.into(),
    }
}

fn bad_tensor(path: &Path, tensor: &str, problem: impl Into<String>) -> IoError {
    IoError::BadTensor {
        path: path.to_path_buf(),
        tensor: tensor.to_string(),
        problem: problem.into(),
    }
}

/// Parses and validates the header of a whole safetensors file held in `file` (usually an mmap).
/// `path` is only used in error messages.
pub fn parse_header(path: &Path, file: &[u8]) -> Result<Header, IoError> {
    let file_len = file.len() as u64;
    let len_bytes: [u8; 8] = match file.get(..8).and_then(|b| b.try_into().ok()) {
        Some(b) => b,
        None => {
            return Err(IoError::TooShort {
                path: path.to_path_buf(),
                len: file_len,
            })
        }
    };
    let header_len = u64::from_le_bytes(len_bytes);
    if header_len > MAX_HEADER_LEN {
        return Err(IoError::HeaderTooLarge {
            path: path.to_path_buf(),
            header_len,
            max: MAX_HEADER_LEN,
        });
    }
    let data_start = 8 + header_len; // cannot overflow: header_len <= 1e8
    if data_start > file_len {
        return Err(IoError::HeaderPastEnd {
            path: path.to_path_buf(),
            header_len,
            file_len,
        });
    }
    let header_bytes = file.get(8..data_start as usize).unwrap_or_default();
    let text = std::str::from_utf8(header_bytes).map_err(|e| IoError::HeaderNotJson {
        path: path.to_path_buf(),
        problem: format!("not UTF-8 ({e})"),
    })?;
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| IoError::HeaderNotJson {
            path: path.to_path_buf(),
            problem: e.to_string(),
        })?;
    let obj = value
        .as_object()
        .ok_or_else(|| bad(path, "header is not a JSON object"))?;

    let mut metadata = BTreeMap::new();
    let mut tensors = Vec::with_capacity(obj.len());
    for (name, entry) in obj {
        if name == "__metadata__" {
            let map = entry
                .as_object()
                .ok_or_else(|| bad(path, "__metadata__ is not an object"))?;
            for (k, v) in map {
                let s = v.as_str().ok_or_else(|| {
                    bad(path, format!("__metadata__ value of '{k}' is not a string"))
                })?;
                metadata.insert(k.clone(), s.to_string());
            }
            continue;
        }
        tensors.push(parse_entry(path, name, entry)?);
    }

    tensors.sort_by_key(|t| (t.start, t.end));
    let data_len = file_len - data_start;
    let mut expected_start = 0u64;
    for t in &tensors {
        if t.end < t.start {
            return Err(offsets_err(path, t, "end before start"));
        }
        if t.start < expected_start {
            return Err(offsets_err(path, t, "overlap the previous tensor"));
        }
        if t.start > expected_start {
            return Err(offsets_err(
                path,
                t,
                format!("leave a gap after byte {expected_start}"),
            ));
        }
        if t.end > data_len {
            return Err(offsets_err(
                path,
                t,
                format!("run past the end of the data section ({data_len} bytes; file truncated?)"),
            ));
        }
        let expected = t.dtype.byte_len(&t.shape).ok_or_else(|| {
            bad_tensor(
                path,
                &t.name,
                format!(
                    "dtype {} x shape {:?} overflows or is not a whole number of bytes",
                    t.dtype, t.shape
                ),
            )
        })?;
        if expected != t.end - t.start {
            return Err(IoError::SizeMismatch {
                path: path.to_path_buf(),
                tensor: t.name.clone(),
                dtype: t.dtype.to_string(),
                shape: t.shape.clone(),
                expected,
                got: t.end - t.start,
            });
        }
        expected_start = t.end;
    }
    if expected_start != data_len {
        return Err(bad(
            path,
            format!(
                "tensor data covers {expected_start} bytes but the data section holds {data_len} (truncated or trailing bytes)"
            ),
        ));
    }
    Ok(Header {
        data_start,
        tensors,
        metadata,
    })
}

fn offsets_err(path: &Path, t: &TensorInfo, problem: impl Into<String>) -> IoError {
    IoError::BadOffsets {
        path: path.to_path_buf(),
        tensor: t.name.clone(),
        start: t.start,
        end: t.end,
        problem: problem.into(),
    }
}

fn parse_entry(path: &Path, name: &str, entry: &serde_json::Value) -> Result<TensorInfo, IoError> {
    let obj = entry
        .as_object()
        .ok_or_else(|| bad_tensor(path, name, "entry is not an object"))?;
    let dtype_str = obj
        .get("dtype")
        .and_then(|v| v.as_str())
        .ok_or_else(|| bad_tensor(path, name, "missing or non-string 'dtype'"))?;
    let dtype = Dtype::from_name(dtype_str).ok_or_else(|| IoError::UnknownDtype {
        path: path.to_path_buf(),
        tensor: name.to_string(),
        dtype: dtype_str.to_string(),
    })?;
    let shape_v = obj
        .get("shape")
        .and_then(|v| v.as_array())
        .ok_or_else(|| bad_tensor(path, name, "missing or non-array 'shape'"))?;
    let mut shape = Vec::with_capacity(shape_v.len());
    for d in shape_v {
        let d = d
            .as_u64()
            .and_then(|d| usize::try_from(d).ok())
            .ok_or_else(|| bad_tensor(path, name, "shape entries must be non-negative integers"))?;
        shape.push(d);
    }
    let offs = obj
        .get("data_offsets")
        .and_then(|v| v.as_array())
        .ok_or_else(|| bad_tensor(path, name, "missing or non-array 'data_offsets'"))?;
    let (start, end) = match offs.as_slice() {
        [a, b] => match (a.as_u64(), b.as_u64()) {
            (Some(a), Some(b)) => (a, b),
            _ => return Err(bad_tensor(path, name, "data_offsets must be two integers")),
        },
        _ => return Err(bad_tensor(path, name, "data_offsets must have two entries")),
    };
    Ok(TensorInfo {
        name: name.to_string(),
        dtype,
        shape,
        start,
        end,
    })
}
