//! `import-gguf`: a Llama-family GGUF to a Hugging Face model directory.

use std::path::{Path, PathBuf};

use super::error::GgufError;

/// Element type of the written safetensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ImportDtype {
    /// bfloat16, round to nearest even from the dequantized f32 (the default, like HF checkpoints).
    #[default]
    Bf16,
    /// f32, exactly the dequantized values.
    F32,
}

/// Options of [`import_gguf`].
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    pub dtype: ImportDtype,
    /// Replace an existing output directory.
    pub force: bool,
}

/// What [`import_gguf`] wrote.
#[derive(Debug, Clone)]
pub struct ImportReport {
    pub output_dir: PathBuf,
    pub architecture: String,
    /// Number of tensors written.
    pub tensors: usize,
    /// Number of parameters written.
    pub parameters: u64,
    /// `tokenizer.ggml.pre` of the source.
    pub pre_tokenizer: String,
    /// Files written, relative to `output_dir`.
    pub files: Vec<String>,
}

/// Imports `src` (a GGUF file) into the directory `dst`. The directory is built under a temporary
/// name beside `dst` and renamed when complete, so an interrupted run leaves nothing under `dst`.
pub fn import_gguf(
    src: &Path,
    dst: &Path,
    opts: &ImportOptions,
) -> Result<ImportReport, GgufError> {
    let _ = (src, dst, opts);
    Err(GgufError::Invalid {
        path: src.to_path_buf(),
        problem: "import-gguf is not implemented yet".into(),
    })
}
