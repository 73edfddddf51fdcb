//! Typed errors of the converter; each names the file and tensor where one is involved.

use std::path::PathBuf;
use ue8_io::IoError;
use ue8_quant::QuantError;

/// Why a conversion, verification or comparison failed.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error(transparent)]
    Io(#[from] IoError),
    #[error("{file}: tensor '{tensor}': {source}")]
    Quant {
        file: PathBuf,
        tensor: String,
        #[source]
        source: QuantError,
    },
    #[error("{file}: tensor '{tensor}': {problem}")]
    Tensor {
        file: PathBuf,
        tensor: String,
        problem: String,
    },
    #[error("{0}")]
    Usage(String),
    #[error("{path}: {problem}")]
    Verify { path: PathBuf, problem: String },
    #[error("conversion interrupted")]
    Interrupted,
}

impl ConvertError {
    pub(crate) fn tensor(file: &std::path::Path, tensor: &str, problem: impl Into<String>) -> Self {
        ConvertError::Tensor {
            file: file.to_path_buf(),
            tensor: tensor.to_string(),
            problem: problem.into(),
        }
    }

    pub(crate) fn quant(file: &std::path::Path, tensor: &str, source: QuantError) -> Self {
        ConvertError::Quant {
            file: file.to_path_buf(),
            tensor: tensor.to_string(),
            source,
        }
    }
}
