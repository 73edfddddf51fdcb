//! Model configuration read from a Hugging Face `config.json` for the Llama family
//! (`LlamaForCausalLM`, `Qwen2ForCausalLM`, `Qwen3ForCausalLM`, `MistralForCausalLM`).
//!
//! Fields that change the math but are not implemented (e.g. `mlp_bias`, other rope scalings) are
//! refused with an error naming the field, never silently ignored.

use crate::error::{EngineError, Result};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Which member of the Llama family; they differ only in the details below.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Architecture {
    /// Llama 2/3 (also SmolLM2): plain attention, optional `attention_bias`.
    Llama,
    /// Qwen2: bias on q/k/v projections.
    Qwen2,
    /// Qwen3: RMS norms on q and k per head (`q_norm`, `k_norm`) before rope.
    Qwen3,
    /// Mistral: optional sliding-window attention.
    Mistral,
}

impl Architecture {
    fn from_name(name: &str) -> Option<Self> {
        match name {
            "LlamaForCausalLM" => Some(Self::Llama),
            "Qwen2ForCausalLM" => Some(Self::Qwen2),
            "Qwen3ForCausalLM" => Some(Self::Qwen3),
            "MistralForCausalLM" => Some(Self::Mistral),
            _ => None,
        }
    }
}

/// Llama-3.1's frequency-dependent rope rescaling (`rope_scaling.rope_type = "llama3"`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Llama3RopeScaling {
    pub factor: f32,
    pub low_freq_factor: f32,
    pub high_freq_factor: f32,
    pub original_max_position_embeddings: f32,
}

/// Everything the forward pass needs to know about a model's shape.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    pub architecture: Architecture,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub vocab_size: usize,
    pub rms_norm_eps: f32,
    pub rope_theta: f32,
    pub rope_scaling: Option<Llama3RopeScaling>,
    pub max_position_embeddings: usize,
    pub tie_word_embeddings: bool,
    /// Bias on q/k/v projections (always for Qwen2; `attention_bias` for Llama).
    pub qkv_bias: bool,
    /// Bias on the output projection too (`attention_bias` of Llama covers o_proj).
    pub o_bias: bool,
    /// q/k RMS norms per head (Qwen3).
    pub qk_norm: bool,
    /// Attend to at most this many most recent positions (Mistral, Qwen2 with use_sliding_window).
    pub sliding_window: Option<usize>,
    pub bos_token_id: Option<u32>,
    pub eos_token_ids: Vec<u32>,
}

/// Typed access to config.json fields; every error names the file and the field.
pub(crate) struct Fields<'a> {
    pub(crate) path: &'a Path,
    pub(crate) v: &'a Value,
}

impl Fields<'_> {
    pub(crate) fn err(&self, field: &str, problem: impl Into<String>) -> EngineError {
        EngineError::Config {
            path: self.path.to_path_buf(),
            field: field.to_string(),
            problem: problem.into(),
        }
    }
    pub(crate) fn opt(&self, field: &str) -> Option<&Value> {
        self.v.get(field).filter(|x| !x.is_null())
    }
    pub(crate) fn usize_req(&self, field: &str) -> Result<usize> {
        match self.opt(field) {
            None => Err(self.err(field, "missing")),
            Some(x) => self.as_usize(field, x),
        }
    }
    pub(crate) fn as_usize(&self, field: &str, x: &Value) -> Result<usize> {
        x.as_u64()
            .and_then(|u| usize::try_from(u).ok())
            .ok_or_else(|| self.err(field, format!("expected a non-negative integer, found {x}")))
    }
    pub(crate) fn usize_opt(&self, field: &str) -> Result<Option<usize>> {
        self.opt(field).map(|x| self.as_usize(field, x)).transpose()
    }
    pub(crate) fn f64_opt(&self, field: &str) -> Result<Option<f64>> {
        match self.opt(field) {
            None => Ok(None),
            Some(x) => x
                .as_f64()
                .map(Some)
                .ok_or_else(|| self.err(field, format!("expected a number, found {x}"))),
        }
    }
    pub(crate) fn f32_opt(&self, field: &str) -> Result<Option<f32>> {
        Ok(self.f64_opt(field)?.map(|f| f as f32))
    }
    pub(crate) fn bool_opt(&self, field: &str) -> Result<Option<bool>> {
        match self.opt(field) {
            None => Ok(None),
            Some(x) => x
                .as_bool()
                .map(Some)
                .ok_or_else(|| self.err(field, format!("expected true or false, found {x}"))),
        }
    }
    pub(crate) fn str_opt(&self, field: &str) -> Option<&str> {
        self.opt(field).and_then(|x| x.as_str())
    }
}

pub(crate) fn token_ids(f: &Fields, field: &str) -> Result<Vec<u32>> {
    let to_id = |x: &Value| {
        x.as_u64()
            .and_then(|u| u32::try_from(u).ok())
            .ok_or_else(|| f.err(field, format!("expected a token id, found {x}")))
    };
    match f.opt(field) {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => items.iter().map(to_id).collect(),
        Some(x) => Ok(vec![to_id(x)?]),
    }
}

/// Read and parse `config.json` from a model directory (or the file itself); returns the file's path
/// (for error messages) and its JSON.
pub(crate) fn read_config_json(path: &Path) -> Result<(PathBuf, Value)> {
    let file: PathBuf = if path.is_dir() {
        path.join("config.json")
    } else {
        path.to_path_buf()
    };
    let text = std::fs::read_to_string(&file).map_err(|source| EngineError::Io {
        path: file.clone(),
        source,
    })?;
    let v: Value = serde_json::from_str(&text).map_err(|source| EngineError::Json {
        path: file.clone(),
        source,
    })?;
    Ok((file, v))
}

impl ModelConfig {
    /// Read `config.json` from a model directory (or the file itself).
    pub fn from_path(path: &Path) -> Result<Self> {
        let (file, v) = read_config_json(path)?;
        Self::from_json(&v, &file)
    }

    /// Parse an already-read config; `path` is used in error messages only.
    pub fn from_json(v: &Value, path: &Path) -> Result<Self> {
        let f = Fields { path, v };
        let arch_name = f
            .opt("architectures")
            .and_then(|a| a.as_array())
            .and_then(|a| a.first())
            .and_then(|a| a.as_str())
            .ok_or_else(|| {
                f.err(
                    "architectures",
                    "missing (expected e.g. [\"LlamaForCausalLM\"])",
                )
            })?;
        let architecture = Architecture::from_name(arch_name).ok_or_else(|| {
            EngineError::UnsupportedArchitecture {
                path: path.to_path_buf(),
                architecture: arch_name.to_string(),
            }
        })?;

        let hidden_size = f.usize_req("hidden_size")?;
        let num_attention_heads = f.usize_req("num_attention_heads")?;
        let num_key_value_heads = f
            .usize_opt("num_key_value_heads")?
            .unwrap_or(num_attention_heads);
        if num_attention_heads == 0 || num_key_value_heads == 0 {
            return Err(f.err("num_attention_heads", "must be positive"));
        }
        if num_attention_heads % num_key_value_heads != 0 {
            return Err(f.err(
                "num_key_value_heads",
                format!("{num_key_value_heads} does not divide num_attention_heads {num_attention_heads}"),
            ));
        }
        let head_dim = match f.usize_opt("head_dim")? {
            Some(d) => d,
            None => {
                if hidden_size % num_attention_heads != 0 {
                    return Err(f.err(
                        "head_dim",
                        "missing and hidden_size is not a multiple of num_attention_heads",
                    ));
                }
                hidden_size / num_attention_heads
            }
        };
        if head_dim == 0 || head_dim % 2 != 0 {
            return Err(f.err(
                "head_dim",
                format!("{head_dim}: rope needs a positive even head size"),
            ));
        }
        if let Some(act) = f.str_opt("hidden_act") {
            if act != "silu" {
                return Err(f.err(
                    "hidden_act",
                    format!("'{act}' is not supported (only silu)"),
                ));
            }
        }
        if f.bool_opt("mlp_bias")?.unwrap_or(false) {
            return Err(f.err("mlp_bias", "true is not supported"));
        }
        if let Some(p) = f.f32_opt("partial_rotary_factor")? {
            if p != 1.0 {
                return Err(f.err(
                    "partial_rotary_factor",
                    format!("{p} is not supported (only 1.0)"),
                ));
            }
        }

        // Rope: transformers 4 spells `rope_theta` + `rope_scaling`; transformers 5 `rope_parameters`.
        let rope_params = f.opt("rope_parameters");
        let rope_theta = match rope_params
            .and_then(|p| p.get("rope_theta"))
            .and_then(|x| x.as_f64())
        {
            Some(t) => t as f32,
            None => f.f32_opt("rope_theta")?.unwrap_or(10000.0),
        };
        let scaling = f.opt("rope_scaling").or(rope_params);
        let rope_scaling = match scaling {
            None => None,
            Some(s) => parse_rope_scaling(&f, s)?,
        };

        let vocab_size = f.usize_req("vocab_size")?;
        let attention_bias = f.bool_opt("attention_bias")?.unwrap_or(false);
        let (qkv_bias, o_bias) = match architecture {
            Architecture::Qwen2 => (true, false),
            _ => (attention_bias, attention_bias),
        };
        let sliding_window = match architecture {
            Architecture::Mistral => f.usize_opt("sliding_window")?,
            Architecture::Qwen2 | Architecture::Qwen3 => {
                if f.bool_opt("use_sliding_window")?.unwrap_or(false) {
                    // Qwen's max_window_layers makes only some layers windowed; not modelled yet.
                    return Err(f.err(
                        "use_sliding_window",
                        "true is not supported for Qwen models",
                    ));
                }
                None
            }
            Architecture::Llama => None,
        };
        let bos_token_id = token_ids(&f, "bos_token_id")?.first().copied();
        let cfg = ModelConfig {
            architecture,
            hidden_size,
            intermediate_size: f.usize_req("intermediate_size")?,
            num_hidden_layers: f.usize_req("num_hidden_layers")?,
            num_attention_heads,
            num_key_value_heads,
            head_dim,
            vocab_size,
            rms_norm_eps: f.f32_opt("rms_norm_eps")?.unwrap_or(1e-6),
            rope_theta,
            rope_scaling,
            max_position_embeddings: f.usize_opt("max_position_embeddings")?.unwrap_or(2048),
            tie_word_embeddings: f.bool_opt("tie_word_embeddings")?.unwrap_or(false),
            qkv_bias,
            o_bias,
            qk_norm: architecture == Architecture::Qwen3,
            sliding_window,
            bos_token_id,
            eos_token_ids: token_ids(&f, "eos_token_id")?,
        };
        if cfg.hidden_size == 0 || cfg.intermediate_size == 0 || cfg.vocab_size == 0 {
            return Err(f.err(
                "hidden_size",
                "hidden_size, intermediate_size and vocab_size must be positive",
            ));
        }
        Ok(cfg)
    }

    /// Width of all query heads together.
    pub fn q_dim(&self) -> usize {
        self.num_attention_heads * self.head_dim
    }
    /// Width of all key (or value) heads together.
    pub fn kv_dim(&self) -> usize {
        self.num_key_value_heads * self.head_dim
    }
}

fn parse_rope_scaling(f: &Fields, s: &Value) -> Result<Option<Llama3RopeScaling>> {
    let kind = s
        .get("rope_type")
        .or_else(|| s.get("type"))
        .and_then(|x| x.as_str())
        .unwrap_or("default");
    match kind {
        "default" => Ok(None),
        "llama3" => {
            let num = |k: &str| {
                s.get(k)
                    .and_then(|x| x.as_f64())
                    .map(|x| x as f32)
                    .ok_or_else(|| f.err("rope_scaling", format!("llama3 scaling needs '{k}'")))
            };
            Ok(Some(Llama3RopeScaling {
                factor: num("factor")?,
                low_freq_factor: num("low_freq_factor")?,
                high_freq_factor: num("high_freq_factor")?,
                original_max_position_embeddings: num("original_max_position_embeddings")?,
            }))
        }
        other => Err(f.err(
            "rope_scaling",
            format!("type '{other}' is not supported (supported: default, llama3)"),
        )),
    }
}
