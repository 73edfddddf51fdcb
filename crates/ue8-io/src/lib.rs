//! ue8-io: reading and writing checkpoints. safetensors (mmap read, streaming sharded write + index),
//! GGUF read, config.json and quantization_config, checkpoint layout detection, sha256 manifests.
//! Every file is untrusted input: sizes are checked, errors are typed and name the file and tensor.
//!
//! # Design
//! - **Read**: [`Checkpoint::open`] takes a `.safetensors` file or a model directory (a single
//!   `model.safetensors`, shards listed in `model.safetensors.index.json`, or else every
//!   `*.safetensors` in it). Each file is memory-mapped once; its header is parsed by
//!   [`header::parse_header`], which checks what the `safetensors` crate checks (header length cap,
//!   JSON object, known dtype, dtype x shape = byte span with checked arithmetic, offsets tiling the
//!   data section exactly) and names the file and tensor in every error. The index is checked
//!   against the shards (missing shard, tensor not where the index says, duplicates).
//!   [`Checkpoint::tensor`] returns a [`TensorView`] whose `bytes` borrow the mmap: no copy, so
//!   resident anonymous memory does not grow with the model.
//! - **Write**: [`SafetensorsWriter`] writes a header computed in advance from [`TensorSpec`]s and
//!   then streams tensors one at a time, hashing as it writes ([`FileDigest`]). [`shards`] splits
//!   specs into shards and builds the index. [`OutputDir`] builds a directory under a hidden
//!   sibling name and renames it into place on commit; [`manifest::Manifest`] is
//!   `ue8-manifest.json`.
//! - **Layouts**: [`layout`] recognises the quantized tensor groups of `docs/layouts.md`
//!   (DeepSeek `weight_scale_inv`, MX `weight_scale`, gpt-oss `_blocks`/`_scales`).
//!
//! ```
//! # fn main() -> Result<(), ue8_io::IoError> {
//! use std::collections::BTreeMap;
//! use ue8_io::{Checkpoint, Dtype, SafetensorsWriter, TensorSpec};
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("model.safetensors");
//! let specs = vec![TensorSpec::new("w", Dtype::F32, vec![2])];
//! let mut w = SafetensorsWriter::create(&path, specs, &BTreeMap::new())?;
//! w.write_tensor("w", &[0, 0, 128, 63, 0, 0, 0, 64])?; // [1.0, 2.0]
//! ue8_io::writer::finish_file(w)?;
//! let ck = Checkpoint::open(&path)?;
//! let t = ck.tensor("w")?;
//! assert_eq!((t.dtype, t.shape), (Dtype::F32, &[2usize][..]));
//! assert_eq!(t.bytes.len(), 8);
//! # Ok(()) }
//! ```

pub mod checkpoint;
pub mod dtype;
pub mod error;
pub mod gguf;
pub mod header;
pub mod layout;
pub mod layout_v4; // v4: DeepSeek-V4 layout (issue 11)
pub mod manifest;
pub mod outdir;
pub mod shards;
pub mod writer;

pub use checkpoint::{Checkpoint, SafetensorsFile, TensorView};
pub use dtype::Dtype;
pub use error::IoError;
pub use header::{Header, TensorInfo};
pub use manifest::{Manifest, ManifestFile, ManifestTensor, TensorMetrics};
pub use outdir::OutputDir;
pub use writer::{FileDigest, SafetensorsWriter, TensorSpec};
