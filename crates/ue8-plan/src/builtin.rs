//! Configs of well-known models shipped with ue8 (written from each model's published config.json; the
//! `_ue8_source` field of each file says where from), and the lookup of a MODEL argument.

use crate::error::{PlanError, Result};
use crate::spec::ModelSpec;
use std::path::Path;

/// (name, config.json text) of every built-in model.
pub const BUILTIN_MODELS: &[(&str, &str)] = &[
    (
        "deepseek-v3",
        include_str!("../data/models/deepseek-v3.json"),
    ),
    (
        "deepseek-v3.1",
        include_str!("../data/models/deepseek-v3.1.json"),
    ),
    (
        "deepseek-r1",
        include_str!("../data/models/deepseek-r1.json"),
    ),
    (
        "deepseek-v4-flash",
        include_str!("../data/models/deepseek-v4-flash.json"),
    ),
    (
        "deepseek-v4-pro",
        include_str!("../data/models/deepseek-v4-pro.json"),
    ),
    ("qwen2.5-7b", include_str!("../data/models/qwen2.5-7b.json")),
    (
        "qwen3-235b-a22b",
        include_str!("../data/models/qwen3-235b-a22b.json"),
    ),
    (
        "llama-3.1-8b",
        include_str!("../data/models/llama-3.1-8b.json"),
    ),
    (
        "llama-3.1-70b",
        include_str!("../data/models/llama-3.1-70b.json"),
    ),
    (
        "gpt-oss-120b",
        include_str!("../data/models/gpt-oss-120b.json"),
    ),
    (
        "smollm2-135m",
        include_str!("../data/models/smollm2-135m.json"),
    ),
];

/// Names of the built-in models, comma-separated.
pub fn builtin_names() -> String {
    BUILTIN_MODELS
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The spec of a built-in model by name (case-insensitive).
pub fn builtin(name: &str) -> Option<Result<ModelSpec>> {
    let lower = name.to_ascii_lowercase();
    BUILTIN_MODELS
        .iter()
        .find(|(n, _)| *n == lower)
        .map(|(n, text)| ModelSpec::from_json_str(text, &format!("builtin:{n}")))
}

/// Resolve a MODEL argument: a directory holding config.json, a config.json path, or a built-in name.
/// A path that exists wins over a built-in name.
pub fn load_model(arg: &str) -> Result<ModelSpec> {
    let path = Path::new(arg);
    if path.is_dir() {
        return read_config(&path.join("config.json"));
    }
    if path.is_file() {
        return read_config(path);
    }
    match builtin(arg) {
        Some(spec) => spec,
        None => Err(PlanError::UnknownModel {
            name: arg.to_string(),
            known: builtin_names(),
        }),
    }
}

fn read_config(path: &Path) -> Result<ModelSpec> {
    let text = std::fs::read_to_string(path).map_err(|source| PlanError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    ModelSpec::from_json_str(&text, &path.display().to_string())
}
