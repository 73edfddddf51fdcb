//! `ue8-manifest.json`: what produced a directory (tool, version, command line), the sha256 of every
//! file computed while it was written, and per-tensor actions and quality metrics.

use crate::writer::FileDigest;
use crate::IoError;
use std::path::Path;

/// The manifest's file name inside an output directory.
pub const MANIFEST_FILE: &str = "ue8-manifest.json";

/// One file of the directory.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ManifestFile {
    /// Path relative to the directory, '/'-separated.
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}

/// Error of a converted tensor against its source (formats.md section 4).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TensorMetrics {
    pub max_abs: f64,
    pub rms: f64,
    /// `null` in JSON when infinite (exact conversion).
    pub snr_db: Option<f64>,
    pub cosine: f64,
    pub clipped_share: f64,
}

/// What happened to one tensor.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ManifestTensor {
    pub name: String,
    /// "quantized", "requantized", "passed-through", "dequantized", "kept".
    pub action: String,
    pub source_dtype: String,
    pub shape: Vec<usize>,
    /// Names written for it (the weight and its companions).
    pub outputs: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<TensorMetrics>,
    /// For requantize: error added on top of the F32-scale input (against its dequantized values).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The whole manifest.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    pub tool: String,
    pub version: String,
    pub command_line: Vec<String>,
    /// "quantize", "requantize" or "dequantize".
    pub operation: String,
    /// Target format (e.g. "fp8-ue8m0") or dtype for dequantize.
    pub target: String,
    pub files: Vec<ManifestFile>,
    pub tensors: Vec<ManifestTensor>,
}

impl Manifest {
    pub fn add_file(&mut self, rel: &str, d: &FileDigest) {
        self.files.push(ManifestFile {
            path: rel.to_string(),
            bytes: d.bytes,
            sha256: d.sha256.clone(),
        });
    }

    /// Reads and parses a manifest.
    pub fn read(path: &Path) -> Result<Manifest, IoError> {
        let text = std::fs::read_to_string(path).map_err(|e| IoError::io(path, e))?;
        serde_json::from_str(&text).map_err(|e| IoError::Manifest {
            path: path.to_path_buf(),
            problem: e.to_string(),
        })
    }

    /// Pretty JSON with a trailing newline.
    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).unwrap_or_default();
        v.push(b'\n');
        v
    }
}
