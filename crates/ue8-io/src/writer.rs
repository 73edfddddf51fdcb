//! Streaming safetensors writer: the header (every tensor's dtype, shape and offsets) is written
//! first from a list of specs known in advance, then tensor bytes one at a time in that order, each
//! hashed with sha256 as it passes, so nothing is ever held whole and nothing is read back.

use crate::{Dtype, IoError};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// What the header says about one tensor to be written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorSpec {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
}

impl TensorSpec {
    pub fn new(name: impl Into<String>, dtype: Dtype, shape: Vec<usize>) -> Self {
        TensorSpec {
            name: name.into(),
            dtype,
            shape,
        }
    }

    /// Bytes of data, `None` if the shape overflows or is not whole bytes.
    pub fn byte_len(&self) -> Option<u64> {
        self.dtype.byte_len(&self.shape)
    }
}

/// Size and sha256 of a file as written.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileDigest {
    pub bytes: u64,
    pub sha256: String,
}

/// A `Write` that hashes and counts what passes through it.
pub struct HashingWriter<W: Write> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// Flushes and returns the inner writer with the digest of everything written.
    pub fn finish(mut self) -> std::io::Result<(W, FileDigest)> {
        self.inner.flush()?;
        let digest = FileDigest {
            bytes: self.bytes,
            sha256: hex(&self.hasher.finalize()),
        };
        Ok((self.inner, digest))
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Lower-case hex of a byte string.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Builds the header bytes (length prefix included) for `specs`, padded with spaces to a multiple of
/// 8 as the `safetensors` crate does, so the data section starts 8-byte aligned.
pub fn encode_header(
    specs: &[TensorSpec],
    metadata: &BTreeMap<String, String>,
) -> Result<Vec<u8>, String> {
    let mut obj = serde_json::Map::new();
    if !metadata.is_empty() {
        obj.insert(
            "__metadata__".into(),
            serde_json::to_value(metadata).map_err(|e| e.to_string())?,
        );
    }
    let mut offset = 0u64;
    for s in specs {
        if s.name == "__metadata__" || obj.contains_key(&s.name) {
            return Err(format!("tensor name '{}' is reserved or repeated", s.name));
        }
        let len = s.byte_len().ok_or_else(|| {
            format!(
                "tensor '{}': {} x {:?} is not whole bytes",
                s.name, s.dtype, s.shape
            )
        })?;
        let end = offset
            .checked_add(len)
            .ok_or_else(|| format!("tensor '{}': offsets overflow", s.name))?;
        obj.insert(
            s.name.clone(),
            serde_json::json!({"dtype": s.dtype.name(), "shape": s.shape, "data_offsets": [offset, end]}),
        );
        offset = end;
    }
    let mut json = serde_json::to_vec(&obj).map_err(|e| e.to_string())?;
    while json.len() % 8 != 0 {
        json.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + json.len());
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(&json);
    Ok(out)
}

/// Writes one safetensors file tensor by tensor. Tensors must come in the order of the specs given to
/// [`SafetensorsWriter::new`], each with exactly its byte length.
pub struct SafetensorsWriter<W: Write> {
    path: PathBuf,
    out: HashingWriter<W>,
    specs: Vec<TensorSpec>,
    next: usize,
}

impl SafetensorsWriter<BufWriter<File>> {
    /// Creates `path` (which must not exist) and writes the header.
    pub fn create(
        path: &Path,
        specs: Vec<TensorSpec>,
        metadata: &BTreeMap<String, String>,
    ) -> Result<Self, IoError> {
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| IoError::io(path, e))?;
        Self::new(
            path,
            BufWriter::with_capacity(1 << 20, file),
            specs,
            metadata,
        )
    }
}

impl<W: Write> SafetensorsWriter<W> {
    /// Writes the header into `sink`; `path` names the file in errors.
    pub fn new(
        path: &Path,
        sink: W,
        specs: Vec<TensorSpec>,
        metadata: &BTreeMap<String, String>,
    ) -> Result<Self, IoError> {
        let header = encode_header(&specs, metadata).map_err(|problem| IoError::Writer {
            path: path.to_path_buf(),
            problem,
        })?;
        let mut out = HashingWriter::new(sink);
        out.write_all(&header).map_err(|e| IoError::io(path, e))?;
        Ok(SafetensorsWriter {
            path: path.to_path_buf(),
            out,
            specs,
            next: 0,
        })
    }

    /// The name of the next tensor expected, if any.
    pub fn next_name(&self) -> Option<&str> {
        self.specs.get(self.next).map(|s| s.name.as_str())
    }

    /// Writes the next tensor's bytes.
    pub fn write_tensor(&mut self, name: &str, bytes: &[u8]) -> Result<(), IoError> {
        let spec = self.specs.get(self.next).ok_or_else(|| IoError::Writer {
            path: self.path.clone(),
            problem: format!("tensor '{name}' written after the last one of the header"),
        })?;
        if spec.name != name {
            return Err(IoError::Writer {
                path: self.path.clone(),
                problem: format!("tensor '{name}' written where '{}' was expected", spec.name),
            });
        }
        if spec.byte_len() != Some(bytes.len() as u64) {
            return Err(IoError::Writer {
                path: self.path.clone(),
                problem: format!(
                    "tensor '{name}': {} bytes given, the header says {:?}",
                    bytes.len(),
                    spec.byte_len()
                ),
            });
        }
        self.out
            .write_all(bytes)
            .map_err(|e| IoError::io(&self.path, e))?;
        self.next += 1;
        Ok(())
    }

    /// Checks every tensor was written, flushes, and returns the file's digest and the sink.
    pub fn finish(self) -> Result<(W, FileDigest), IoError> {
        if self.next != self.specs.len() {
            return Err(IoError::Writer {
                path: self.path.clone(),
                problem: format!("only {} of {} tensors written", self.next, self.specs.len()),
            });
        }
        self.out.finish().map_err(|e| IoError::io(&self.path, e))
    }
}

/// Finishes a file writer: flush, fsync-free (the directory rename is the commit point).
pub fn finish_file(w: SafetensorsWriter<BufWriter<File>>) -> Result<FileDigest, IoError> {
    let path = w.path.clone();
    let (buf, digest) = w.finish()?;
    buf.into_inner()
        .map_err(|e| IoError::io(&path, e.into_error()))?;
    Ok(digest)
}

/// Copies a file byte for byte, hashing it on the way.
pub fn copy_hashed(src: &Path, dst: &Path) -> Result<FileDigest, IoError> {
    let mut input = File::open(src).map_err(|e| IoError::io(src, e))?;
    let out = File::options()
        .write(true)
        .create_new(true)
        .open(dst)
        .map_err(|e| IoError::io(dst, e))?;
    let mut w = HashingWriter::new(BufWriter::new(out));
    std::io::copy(&mut input, &mut w).map_err(|e| IoError::io(dst, e))?;
    let (_, d) = w.finish().map_err(|e| IoError::io(dst, e))?;
    Ok(d)
}

/// Writes a small file (JSON) whole, hashing it.
pub fn write_hashed(dst: &Path, bytes: &[u8]) -> Result<FileDigest, IoError> {
    let out = File::options()
        .write(true)
        .create_new(true)
        .open(dst)
        .map_err(|e| IoError::io(dst, e))?;
    let mut w = HashingWriter::new(out);
    w.write_all(bytes).map_err(|e| IoError::io(dst, e))?;
    let (_, d) = w.finish().map_err(|e| IoError::io(dst, e))?;
    Ok(d)
}

/// sha256 of a file read in chunks.
pub fn hash_file(path: &Path) -> Result<FileDigest, IoError> {
    let mut input = File::open(path).map_err(|e| IoError::io(path, e))?;
    let mut w = HashingWriter::new(std::io::sink());
    std::io::copy(&mut input, &mut w).map_err(|e| IoError::io(path, e))?;
    let (_, d) = w.finish().map_err(|e| IoError::io(path, e))?;
    Ok(d)
}
