//! GGUF v2/v3 parser over a byte slice (normally an mmap of the file). The file is untrusted: every
//! count is capped and checked against the bytes left, every size uses checked arithmetic, tensor data
//! must be aligned, inside the file and must not overlap, and a failure is a typed [`GgufError`].

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::error::GgufError;
use super::ggml_type::GgmlType;
use super::value::{MetadataArray, MetadataValue};

/// "GGUF" as the first four bytes.
pub const GGUF_MAGIC: [u8; 4] = *b"GGUF";
/// Alignment of the data section when `general.alignment` is absent (the GGUF spec's default).
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// Caps that keep a hostile header from asking for absurd allocations. Real files are far below them
/// (SmolLM2: 272 tensors, 33 keys, 49152 tokens; DeepSeek-V3 GGUFs: ~1,100 tensors, 129k tokens).
pub const MAX_TENSORS: u64 = 1 << 20;
pub const MAX_KV: u64 = 1 << 20;
pub const MAX_ARRAY_LEN: u64 = 1 << 28;
pub const MAX_STRING_BYTES: u64 = 1 << 28;
/// Keys are at most 65535 bytes in the GGUF spec.
pub const MAX_KEY_BYTES: u64 = 65_535;
/// ggml caps tensor names at 63 bytes; other writers exist, so ue8 is more lenient.
pub const MAX_TENSOR_NAME_BYTES: u64 = 4096;
/// Arrays of arrays nest at most this deep.
pub const MAX_ARRAY_DEPTH: u32 = 8;
/// GGML_MAX_DIMS.
pub const MAX_DIMS: u32 = 4;

/// A tensor's entry in the GGUF header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    pub ggml_type: GgmlType,
    /// Dimensions as GGUF lists them: innermost (contiguous) first, i.e. ggml's `ne[0], ne[1], ...`.
    pub dims: Vec<u64>,
    /// Offset of the data from the start of the data section.
    pub offset: u64,
    pub n_elems: u64,
    pub n_bytes: u64,
}

impl TensorInfo {
    /// The row-major (PyTorch / safetensors) shape: the GGUF dimension list reversed.
    pub fn shape(&self) -> Vec<u64> {
        self.dims.iter().rev().copied().collect()
    }
}

/// Everything before the tensor data: version, metadata, tensor infos and where the data starts.
#[derive(Debug, Clone)]
pub struct GgufHeader {
    pub version: u32,
    /// Metadata in file order.
    pub metadata: Vec<(String, MetadataValue)>,
    /// Tensor infos in file order.
    pub tensors: Vec<TensorInfo>,
    pub alignment: u64,
    /// Absolute file offset of the data section.
    pub data_offset: u64,
}

impl GgufHeader {
    /// Parses and validates a whole GGUF file held in `bytes`; `path` only names it in errors.
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Self, GgufError> {
        parse(bytes, path)
    }

    /// The metadata value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&MetadataValue> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The tensor named `name`, if present.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> u64 {
        (self.bytes.len() - self.pos) as u64
    }

    fn truncated(&self, what: &dyn Fn() -> String, needed: u64) -> GgufError {
        GgufError::Truncated {
            path: self.path.to_path_buf(),
            what: what(),
            offset: self.pos as u64,
            needed,
            len: self.bytes.len() as u64,
        }
    }

    fn take(&mut self, n: u64, what: &dyn Fn() -> String) -> Result<&'a [u8], GgufError> {
        if n > self.remaining() {
            return Err(self.truncated(what, n));
        }
        // n <= remaining <= usize::MAX, so the casts and the addition cannot overflow.
        let start = self.pos;
        self.pos += n as usize;
        Ok(&self.bytes[start..self.pos])
    }

    fn array<const N: usize>(&mut self, what: &dyn Fn() -> String) -> Result<[u8; N], GgufError> {
        let s = self.take(N as u64, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(s);
        Ok(out)
    }

    fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &dyn Fn() -> String) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    fn over_limit(&self, what: String, value: u64, limit: u64) -> GgufError {
        GgufError::OverLimit {
            path: self.path.to_path_buf(),
            what,
            value,
            limit,
        }
    }

    fn string(&mut self, limit: u64, what: &dyn Fn() -> String) -> Result<String, GgufError> {
        let len = self.u64(what)?;
        if len > limit {
            return Err(self.over_limit(format!("length of {}", what()), len, limit));
        }
        let raw = self.take(len, what)?;
        String::from_utf8(raw.to_vec()).map_err(|_| GgufError::BadUtf8 {
            path: self.path.to_path_buf(),
            what: what(),
        })
    }

    /// Checks that `count` elements of at least `min_size` bytes each can still be in the file, so
    /// that the allocation that follows is bounded by the file's size.
    fn check_count(
        &self,
        count: u64,
        min_size: u64,
        cap: u64,
        what: &dyn Fn() -> String,
    ) -> Result<usize, GgufError> {
        if count > cap {
            return Err(self.over_limit(format!("element count of {}", what()), count, cap));
        }
        let needed = count.saturating_mul(min_size);
        if needed > self.remaining() {
            return Err(self.truncated(what, needed));
        }
        usize::try_from(count).map_err(|_| self.over_limit(what(), count, cap))
    }
}

const TYPE_U8: u32 = 0;
const TYPE_I8: u32 = 1;
const TYPE_U16: u32 = 2;
const TYPE_I16: u32 = 3;
const TYPE_U32: u32 = 4;
const TYPE_I32: u32 = 5;
const TYPE_F32: u32 = 6;
const TYPE_BOOL: u32 = 7;
const TYPE_STRING: u32 = 8;
const TYPE_ARRAY: u32 = 9;
const TYPE_U64: u32 = 10;
const TYPE_I64: u32 = 11;
const TYPE_F64: u32 = 12;

/// Smallest encoding of one value of a type (used to bound array allocations).
fn min_value_size(type_id: u32) -> u64 {
    match type_id {
        TYPE_U8 | TYPE_I8 | TYPE_BOOL => 1,
        TYPE_U16 | TYPE_I16 => 2,
        TYPE_U32 | TYPE_I32 | TYPE_F32 => 4,
        TYPE_STRING => 8,
        TYPE_ARRAY => 12,
        _ => 8,
    }
}

fn read_bool(c: &mut Cursor<'_>, key: &str, what: &dyn Fn() -> String) -> Result<bool, GgufError> {
    let [b] = c.array::<1>(what)?;
    match b {
        0 => Ok(false),
        1 => Ok(true),
        other => Err(GgufError::Invalid {
            path: c.path.to_path_buf(),
            problem: format!("metadata key '{key}': bool byte is {other}, expected 0 or 1"),
        }),
    }
}

fn read_scalar(
    c: &mut Cursor<'_>,
    type_id: u32,
    key: &str,
    what: &dyn Fn() -> String,
) -> Result<MetadataValue, GgufError> {
    Ok(match type_id {
        TYPE_U8 => MetadataValue::U8(u8::from_le_bytes(c.array(what)?)),
        TYPE_I8 => MetadataValue::I8(i8::from_le_bytes(c.array(what)?)),
        TYPE_U16 => MetadataValue::U16(u16::from_le_bytes(c.array(what)?)),
        TYPE_I16 => MetadataValue::I16(i16::from_le_bytes(c.array(what)?)),
        TYPE_U32 => MetadataValue::U32(u32::from_le_bytes(c.array(what)?)),
        TYPE_I32 => MetadataValue::I32(i32::from_le_bytes(c.array(what)?)),
        TYPE_F32 => MetadataValue::F32(f32::from_le_bytes(c.array(what)?)),
        TYPE_BOOL => MetadataValue::Bool(read_bool(c, key, what)?),
        TYPE_STRING => MetadataValue::String(c.string(MAX_STRING_BYTES, what)?),
        TYPE_U64 => MetadataValue::U64(u64::from_le_bytes(c.array(what)?)),
        TYPE_I64 => MetadataValue::I64(i64::from_le_bytes(c.array(what)?)),
        TYPE_F64 => MetadataValue::F64(f64::from_le_bytes(c.array(what)?)),
        TYPE_ARRAY => MetadataValue::Array(read_array(c, key, 1, what)?),
        other => {
            return Err(GgufError::UnknownValueType {
                path: c.path.to_path_buf(),
                key: key.to_string(),
                type_id: other,
            })
        }
    })
}

fn read_vec<T>(
    c: &mut Cursor<'_>,
    n: usize,
    mut one: impl FnMut(&mut Cursor<'_>) -> Result<T, GgufError>,
) -> Result<Vec<T>, GgufError> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(one(c)?);
    }
    Ok(out)
}

fn read_array(
    c: &mut Cursor<'_>,
    key: &str,
    depth: u32,
    what: &dyn Fn() -> String,
) -> Result<MetadataArray, GgufError> {
    if depth > MAX_ARRAY_DEPTH {
        return Err(c.over_limit(
            format!("array nesting depth of {}", what()),
            depth.into(),
            MAX_ARRAY_DEPTH.into(),
        ));
    }
    let elem_type = c.u32(what)?;
    let count = c.u64(what)?;
    let n = c.check_count(count, min_value_size(elem_type), MAX_ARRAY_LEN, what)?;
    macro_rules! plain {
        ($variant:ident, $t:ty) => {
            MetadataArray::$variant(read_vec(c, n, |c| Ok(<$t>::from_le_bytes(c.array(what)?)))?)
        };
    }
    Ok(match elem_type {
        TYPE_U8 => MetadataArray::U8(c.take(count, what)?.to_vec()),
        TYPE_I8 => plain!(I8, i8),
        TYPE_U16 => plain!(U16, u16),
        TYPE_I16 => plain!(I16, i16),
        TYPE_U32 => plain!(U32, u32),
        TYPE_I32 => plain!(I32, i32),
        TYPE_F32 => plain!(F32, f32),
        TYPE_U64 => plain!(U64, u64),
        TYPE_I64 => plain!(I64, i64),
        TYPE_F64 => plain!(F64, f64),
        TYPE_BOOL => MetadataArray::Bool(read_vec(c, n, |c| read_bool(c, key, what))?),
        TYPE_STRING => MetadataArray::String(read_vec(c, n, |c| c.string(MAX_STRING_BYTES, what))?),
        TYPE_ARRAY => {
            MetadataArray::Array(read_vec(c, n, |c| read_array(c, key, depth + 1, what))?)
        }
        other => {
            return Err(GgufError::UnknownValueType {
                path: c.path.to_path_buf(),
                key: key.to_string(),
                type_id: other,
            })
        }
    })
}

fn invalid(path: &Path, problem: String) -> GgufError {
    GgufError::Invalid {
        path: path.to_path_buf(),
        problem,
    }
}

fn read_tensor_info(c: &mut Cursor<'_>, index: u64) -> Result<TensorInfo, GgufError> {
    let name = c.string(MAX_TENSOR_NAME_BYTES, &|| {
        format!("name of tensor #{index}")
    })?;
    let path: PathBuf = c.path.to_path_buf();
    let what = || format!("info of tensor '{name}'");
    let n_dims = c.u32(&what)?;
    if n_dims > MAX_DIMS {
        return Err(GgufError::BadDimCount {
            path,
            tensor: name.clone(),
            n_dims,
        });
    }
    let mut dims = Vec::with_capacity(n_dims as usize);
    for _ in 0..n_dims {
        let d = c.u64(&what)?;
        if d > i64::MAX as u64 {
            return Err(GgufError::SizeOverflow { path, tensor: name });
        }
        dims.push(d);
    }
    let type_id = c.u32(&what)?;
    let offset = c.u64(&what)?;
    let Some(ggml_type) = GgmlType::from_id(type_id) else {
        return Err(GgufError::UnknownGgmlType {
            path,
            tensor: name,
            type_id,
        });
    };
    let n_elems = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| GgufError::SizeOverflow {
            path: path.clone(),
            tensor: name.clone(),
        })?;
    let row = dims.first().copied().unwrap_or(1);
    let block = ggml_type.block_elems();
    if !row.is_multiple_of(block) {
        return Err(GgufError::RowNotBlockAligned {
            path,
            tensor: name,
            ggml_type: ggml_type.name(),
            row,
            block,
        });
    }
    // row is a multiple of block, hence so is n_elems.
    let n_bytes = (n_elems / block)
        .checked_mul(ggml_type.block_bytes())
        .ok_or_else(|| GgufError::SizeOverflow {
            path: path.clone(),
            tensor: name.clone(),
        })?;
    Ok(TensorInfo {
        name,
        ggml_type,
        dims,
        offset,
        n_elems,
        n_bytes,
    })
}

fn parse(bytes: &[u8], path: &Path) -> Result<GgufHeader, GgufError> {
    let mut c = Cursor {
        bytes,
        pos: 0,
        path,
    };
    let magic = c.array::<4>(&|| "the magic bytes".to_string())?;
    if magic != GGUF_MAGIC {
        return Err(GgufError::NotGguf {
            path: path.to_path_buf(),
            magic: magic.to_vec(),
        });
    }
    let version = c.u32(&|| "the version".to_string())?;
    if version != 2 && version != 3 {
        return Err(GgufError::UnsupportedVersion {
            path: path.to_path_buf(),
            version,
        });
    }
    let tensor_count = c.u64(&|| "the tensor count".to_string())?;
    let kv_count = c.u64(&|| "the metadata count".to_string())?;
    // Smallest metadata entry: key length (8) + type (4) + a one-byte value.
    let kv_n = c.check_count(kv_count, 13, MAX_KV, &|| "the metadata section".to_string())?;

    let mut metadata: Vec<(String, MetadataValue)> = Vec::with_capacity(kv_n);
    let mut seen_keys: HashSet<String> = HashSet::with_capacity(kv_n);
    for i in 0..kv_n {
        let key = c.string(MAX_KEY_BYTES, &|| format!("key of metadata entry #{i}"))?;
        let what = || format!("metadata key '{key}'");
        let type_id = c.u32(&what)?;
        let value = read_scalar(&mut c, type_id, &key, &what)?;
        if !seen_keys.insert(key.clone()) {
            return Err(GgufError::DuplicateKey {
                path: path.to_path_buf(),
                key,
            });
        }
        metadata.push((key, value));
    }

    let alignment = match metadata.iter().find(|(k, _)| k == "general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some((_, v)) => {
            let a = v.as_u64().ok_or_else(|| GgufError::WrongKeyType {
                path: path.to_path_buf(),
                key: "general.alignment".into(),
                expected: "an unsigned integer",
                found: v.type_name().into(),
            })?;
            if a == 0 || !a.is_power_of_two() {
                return Err(GgufError::BadAlignment {
                    path: path.to_path_buf(),
                    alignment: a,
                });
            }
            a
        }
    };

    // Smallest tensor info: name length (8) + n_dims (4) + type (4) + offset (8).
    let tensor_n = c.check_count(tensor_count, 24, MAX_TENSORS, &|| {
        "the tensor info section".to_string()
    })?;
    let mut tensors = Vec::with_capacity(tensor_n);
    let mut seen_names: HashSet<String> = HashSet::with_capacity(tensor_n);
    for i in 0..tensor_count {
        let t = read_tensor_info(&mut c, i)?;
        if !seen_names.insert(t.name.clone()) {
            return Err(GgufError::DuplicateTensor {
                path: path.to_path_buf(),
                tensor: t.name,
            });
        }
        tensors.push(t);
    }

    let header_end = c.pos as u64;
    let data_offset = header_end
        .checked_next_multiple_of(alignment)
        .ok_or_else(|| invalid(path, "data section offset overflows".into()))?;
    let data_len = (bytes.len() as u64).saturating_sub(data_offset);
    check_tensor_placement(path, &tensors, alignment, data_len)?;

    Ok(GgufHeader {
        version,
        metadata,
        tensors,
        alignment,
        data_offset,
    })
}

fn check_tensor_placement(
    path: &Path,
    tensors: &[TensorInfo],
    alignment: u64,
    data_len: u64,
) -> Result<(), GgufError> {
    let mut spans: Vec<(u64, u64, usize)> = Vec::with_capacity(tensors.len());
    for (i, t) in tensors.iter().enumerate() {
        if !t.offset.is_multiple_of(alignment) {
            return Err(GgufError::TensorMisaligned {
                path: path.to_path_buf(),
                tensor: t.name.clone(),
                offset: t.offset,
                alignment,
            });
        }
        let end = t
            .offset
            .checked_add(t.n_bytes)
            .ok_or_else(|| GgufError::SizeOverflow {
                path: path.to_path_buf(),
                tensor: t.name.clone(),
            })?;
        if end > data_len {
            return Err(GgufError::TensorOutOfFile {
                path: path.to_path_buf(),
                tensor: t.name.clone(),
                start: t.offset,
                end,
                data_len,
            });
        }
        if t.n_bytes > 0 {
            spans.push((t.offset, end, i));
        }
    }
    spans.sort_unstable();
    for pair in spans.windows(2) {
        if let [(_, end_a, a), (start_b, _, b)] = pair {
            if start_b < end_a {
                let (first, second) = (&tensors[*a].name, &tensors[*b].name);
                return Err(GgufError::TensorsOverlap {
                    path: path.to_path_buf(),
                    first: first.clone(),
                    second: second.clone(),
                });
            }
        }
    }
    Ok(())
}
