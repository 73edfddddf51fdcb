//! `DeepseekV3ForCausalLM` configuration (DeepSeek-V3, V3.1, R1) from a Hugging Face `config.json`.
//!
//! Two spellings are read: DeepSeek's own (`rope_theta` at top level, `rope_scaling` with `type`) and
//! transformers 5's (`rope_parameters` with `rope_type` and `rope_theta` inside). Fields that change
//! the math but are not implemented (another scoring function, `moe_layer_freq != 1`, ...) are refused
//! with an error naming the field, never silently ignored.

use crate::config::{read_config_json, token_ids, Fields};
use crate::error::{EngineError, Result};
use serde_json::Value;
use std::path::Path;

/// The architecture name this configuration belongs to.
pub const DEEPSEEK_V3_ARCHITECTURE: &str = "DeepseekV3ForCausalLM";

/// YaRN rope scaling (`rope_scaling.type = "yarn"`), with transformers' defaults for absent keys.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct YarnScaling {
    pub factor: f64,
    pub original_max_position_embeddings: f64,
    pub beta_fast: f64,
    pub beta_slow: f64,
    /// `mscale` (None when absent or 0: then the cos/sin factor is `0.1 ln(factor) + 1`).
    pub mscale: Option<f64>,
    /// `mscale_all_dim` (None when absent or 0: no softmax-scale correction).
    pub mscale_all_dim: Option<f64>,
    /// Explicit `attention_factor` (overrides the one derived from the mscales).
    pub attention_factor: Option<f64>,
    /// Floor/ceil the correction range (transformers' `truncate`, default true).
    pub truncate: bool,
}

/// Everything the DeepSeek forward pass needs to know about a model's shape.
#[derive(Clone, Debug, PartialEq)]
pub struct DeepseekConfig {
    pub hidden_size: usize,
    /// Width of the dense MLP of the first `first_k_dense_replace` layers.
    pub intermediate_size: usize,
    /// Width of one routed (and one shared) expert.
    pub moe_intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub vocab_size: usize,
    pub rms_norm_eps: f32,
    pub max_position_embeddings: usize,
    pub tie_word_embeddings: bool,
    /// Bias on q_a_proj / q_proj, kv_a_proj_with_mqa and o_proj.
    pub attention_bias: bool,
    // ---- MLA ----
    /// `None`: a direct `q_proj`; else q_a_proj -> q_a_layernorm -> q_b_proj.
    pub q_lora_rank: Option<usize>,
    pub kv_lora_rank: usize,
    pub qk_nope_head_dim: usize,
    pub qk_rope_head_dim: usize,
    pub v_head_dim: usize,
    // ---- rope ----
    pub rope_theta: f64,
    pub yarn: Option<YarnScaling>,
    /// The checkpoint stores rope dimensions as interleaved pairs (transformers' default: true).
    pub rope_interleave: bool,
    // ---- MoE ----
    pub first_k_dense_replace: usize,
    pub n_routed_experts: usize,
    pub n_shared_experts: usize,
    pub num_experts_per_tok: usize,
    pub n_group: usize,
    pub topk_group: usize,
    pub norm_topk_prob: bool,
    pub routed_scaling_factor: f32,
    /// MTP layers stored as `model.layers.{num_hidden_layers + i}`: recognised, not run.
    pub num_nextn_predict_layers: usize,
    pub bos_token_id: Option<u32>,
    pub eos_token_ids: Vec<u32>,
}

/// Whether a parsed config.json names `DeepseekV3ForCausalLM` (or `model_type: deepseek_v3`).
pub fn is_deepseek_v3(v: &Value) -> bool {
    let by_arch = v
        .get("architectures")
        .and_then(|a| a.as_array())
        .and_then(|a| a.first())
        .and_then(|a| a.as_str())
        == Some(DEEPSEEK_V3_ARCHITECTURE);
    by_arch || v.get("model_type").and_then(|m| m.as_str()) == Some("deepseek_v3")
}

/// Whether the model directory (or config file) at `path` holds a DeepSeek-V3 config.json; the
/// commands use it to pick the model family.
pub fn is_deepseek_dir(path: &Path) -> Result<bool> {
    let (_, v) = read_config_json(path)?;
    Ok(is_deepseek_v3(&v))
}

impl DeepseekConfig {
    /// Read `config.json` from a model directory (or the file itself).
    pub fn from_path(path: &Path) -> Result<Self> {
        let (file, v) = read_config_json(path)?;
        Self::from_json(&v, &file)
    }

    /// Parse an already-read config; `path` is used in error messages only.
    pub fn from_json(v: &Value, path: &Path) -> Result<Self> {
        let f = Fields { path, v };
        if !is_deepseek_v3(v) {
            let arch = v
                .get("architectures")
                .and_then(|a| a.as_array())
                .and_then(|a| a.first())
                .and_then(|a| a.as_str())
                .unwrap_or("(none)");
            return Err(EngineError::UnsupportedArchitecture {
                path: path.to_path_buf(),
                architecture: arch.to_string(),
            });
        }
        if let Some(act) = f.str_opt("hidden_act") {
            if act != "silu" {
                return Err(f.err(
                    "hidden_act",
                    format!("'{act}' is not supported (only silu)"),
                ));
            }
        }
        if let Some(s) = f.str_opt("scoring_func") {
            if s != "sigmoid" {
                return Err(f.err(
                    "scoring_func",
                    format!("'{s}' is not supported (only sigmoid)"),
                ));
            }
        }
        if let Some(t) = f.str_opt("topk_method") {
            if t != "noaux_tc" {
                return Err(f.err(
                    "topk_method",
                    format!("'{t}' is not supported (only noaux_tc, DeepSeek-V3's)"),
                ));
            }
        }
        if let Some(freq) = f.usize_opt("moe_layer_freq")? {
            if freq != 1 {
                return Err(f.err(
                    "moe_layer_freq",
                    format!("{freq} is not supported (only 1)"),
                ));
            }
        }

        let hidden_size = f.usize_req("hidden_size")?;
        let num_attention_heads = f.usize_req("num_attention_heads")?;
        let qk_rope_head_dim = f.usize_req("qk_rope_head_dim")?;
        if qk_rope_head_dim == 0 || !qk_rope_head_dim.is_multiple_of(2) {
            return Err(f.err(
                "qk_rope_head_dim",
                format!("{qk_rope_head_dim}: rope needs a positive even size"),
            ));
        }
        let n_routed_experts = f.usize_opt("n_routed_experts")?.unwrap_or(0);
        let num_experts_per_tok = f.usize_opt("num_experts_per_tok")?.unwrap_or(0);
        let n_group = f.usize_opt("n_group")?.unwrap_or(1);
        let topk_group = f.usize_opt("topk_group")?.unwrap_or(1);
        let num_hidden_layers = f.usize_req("num_hidden_layers")?;
        let first_k_dense_replace = f
            .usize_opt("first_k_dense_replace")?
            .unwrap_or(0)
            .min(num_hidden_layers);
        if first_k_dense_replace < num_hidden_layers {
            // MoE layers exist: the routing shape must be consistent.
            if n_routed_experts == 0 || n_group == 0 || !n_routed_experts.is_multiple_of(n_group) {
                return Err(f.err(
                    "n_group",
                    format!("{n_group} groups do not split {n_routed_experts} routed experts"),
                ));
            }
            if n_routed_experts / n_group < 2 {
                // transformers scores a group by the sum of its two best experts.
                return Err(f.err(
                    "n_group",
                    "each group needs at least 2 experts (a group's score is its top-2 sum)",
                ));
            }
            if topk_group == 0 || topk_group > n_group {
                return Err(f.err(
                    "topk_group",
                    format!("{topk_group} is not in 1..={n_group}"),
                ));
            }
            let reachable = (n_routed_experts / n_group) * topk_group;
            if num_experts_per_tok == 0 || num_experts_per_tok > reachable {
                return Err(f.err(
                    "num_experts_per_tok",
                    format!("{num_experts_per_tok} is not in 1..={reachable} (experts in the top groups)"),
                ));
            }
        }

        // Rope: DeepSeek spells `rope_theta` + `rope_scaling`; transformers 5 `rope_parameters`.
        let rope_params = f.opt("rope_parameters");
        let rope_theta = match rope_params
            .and_then(|p| p.get("rope_theta"))
            .and_then(|x| x.as_f64())
        {
            Some(t) => t,
            None => f.f64_opt("rope_theta")?.unwrap_or(10000.0),
        };
        let max_position_embeddings = f.usize_opt("max_position_embeddings")?.unwrap_or(4096);
        let scaling = f.opt("rope_scaling").or(rope_params);
        let yarn = match scaling {
            None => None,
            Some(s) => parse_yarn(&f, s, max_position_embeddings)?,
        };

        let cfg = DeepseekConfig {
            hidden_size,
            intermediate_size: f.usize_req("intermediate_size")?,
            moe_intermediate_size: f.usize_opt("moe_intermediate_size")?.unwrap_or(0),
            num_hidden_layers,
            num_attention_heads,
            vocab_size: f.usize_req("vocab_size")?,
            rms_norm_eps: f.f64_opt("rms_norm_eps")?.unwrap_or(1e-6) as f32,
            max_position_embeddings,
            tie_word_embeddings: f.bool_opt("tie_word_embeddings")?.unwrap_or(false),
            attention_bias: f.bool_opt("attention_bias")?.unwrap_or(false),
            q_lora_rank: f.usize_opt("q_lora_rank")?.filter(|&r| r > 0),
            kv_lora_rank: f.usize_req("kv_lora_rank")?,
            qk_nope_head_dim: f.usize_req("qk_nope_head_dim")?,
            qk_rope_head_dim,
            v_head_dim: f.usize_req("v_head_dim")?,
            rope_theta,
            yarn,
            rope_interleave: f.bool_opt("rope_interleave")?.unwrap_or(true),
            first_k_dense_replace,
            n_routed_experts,
            n_shared_experts: f.usize_opt("n_shared_experts")?.unwrap_or(0),
            num_experts_per_tok,
            n_group,
            topk_group,
            norm_topk_prob: f.bool_opt("norm_topk_prob")?.unwrap_or(false),
            routed_scaling_factor: f.f64_opt("routed_scaling_factor")?.unwrap_or(1.0) as f32,
            num_nextn_predict_layers: f.usize_opt("num_nextn_predict_layers")?.unwrap_or(0),
            bos_token_id: token_ids(&f, "bos_token_id")?.first().copied(),
            eos_token_ids: token_ids(&f, "eos_token_id")?,
        };
        let positive = [
            ("hidden_size", cfg.hidden_size),
            ("intermediate_size", cfg.intermediate_size),
            ("num_attention_heads", cfg.num_attention_heads),
            ("vocab_size", cfg.vocab_size),
            ("kv_lora_rank", cfg.kv_lora_rank),
            ("v_head_dim", cfg.v_head_dim),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(f.err(name, "must be positive"));
            }
        }
        if cfg.first_k_dense_replace < cfg.num_hidden_layers && cfg.moe_intermediate_size == 0 {
            return Err(f.err(
                "moe_intermediate_size",
                "missing or 0 while MoE layers exist",
            ));
        }
        // Size products used to allocate buffers: refuse configs whose products overflow.
        for (name, a, b) in [
            (
                "num_attention_heads",
                cfg.num_attention_heads,
                cfg.q_head_dim(),
            ),
            (
                "num_attention_heads",
                cfg.num_attention_heads,
                cfg.qk_nope_head_dim + cfg.v_head_dim,
            ),
            ("vocab_size", cfg.vocab_size, cfg.hidden_size),
        ] {
            if a.checked_mul(b).is_none() {
                return Err(f.err(name, "sizes overflow"));
            }
        }
        Ok(cfg)
    }

    /// Query/key width of one head: the no-rope part plus the rope part.
    pub fn q_head_dim(&self) -> usize {
        self.qk_nope_head_dim + self.qk_rope_head_dim
    }

    /// Whether layer `l` has a routed MoE block (else a dense MLP).
    pub fn is_moe_layer(&self, l: usize) -> bool {
        l >= self.first_k_dense_replace && self.n_routed_experts > 0
    }

    /// Latent values the KV cache keeps per token per layer (compressed kv + rope key).
    pub fn cache_width(&self) -> usize {
        self.kv_lora_rank + self.qk_rope_head_dim
    }

    /// The softmax scale: 1/sqrt(q_head_dim), times mscale(factor, mscale_all_dim)^2 under YaRN.
    pub fn softmax_scale(&self) -> f32 {
        let base = 1.0 / (self.q_head_dim() as f64).sqrt();
        let m = match &self.yarn {
            Some(y) => match y.mscale_all_dim {
                Some(all) => crate::yarn::yarn_mscale(y.factor, all),
                None => 1.0,
            },
            None => 1.0,
        };
        (base * m * m) as f32
    }
}

fn parse_yarn(
    f: &Fields,
    s: &Value,
    max_position_embeddings: usize,
) -> Result<Option<YarnScaling>> {
    let kind = s
        .get("rope_type")
        .or_else(|| s.get("type"))
        .and_then(|x| x.as_str())
        .unwrap_or("default");
    let num = |k: &str| -> Result<Option<f64>> {
        match s.get(k).filter(|x| !x.is_null()) {
            None => Ok(None),
            Some(x) => x
                .as_f64()
                .map(Some)
                .ok_or_else(|| f.err("rope_scaling", format!("'{k}' is not a number: {x}"))),
        }
    };
    match kind {
        "default" => Ok(None),
        "yarn" => {
            let factor = num("factor")?
                .ok_or_else(|| f.err("rope_scaling", "yarn scaling needs 'factor'"))?;
            if !(factor.is_finite() && factor > 0.0) {
                return Err(f.err("rope_scaling", format!("factor {factor} must be positive")));
            }
            let nonzero = |x: Option<f64>| x.filter(|&v| v != 0.0);
            Ok(Some(YarnScaling {
                factor,
                original_max_position_embeddings: num("original_max_position_embeddings")?
                    .unwrap_or(max_position_embeddings as f64),
                beta_fast: nonzero(num("beta_fast")?).unwrap_or(32.0),
                beta_slow: nonzero(num("beta_slow")?).unwrap_or(1.0),
                mscale: nonzero(num("mscale")?),
                mscale_all_dim: nonzero(num("mscale_all_dim")?),
                attention_factor: num("attention_factor")?,
                truncate: s.get("truncate").and_then(|x| x.as_bool()).unwrap_or(true),
            }))
        }
        other => Err(f.err(
            "rope_scaling",
            format!("type '{other}' is not supported for DeepSeek (supported: default, yarn)"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> Value {
        json!({
            "architectures": ["DeepseekV3ForCausalLM"],
            "hidden_size": 64, "intermediate_size": 96, "moe_intermediate_size": 16,
            "num_hidden_layers": 3, "num_attention_heads": 4, "vocab_size": 100,
            "q_lora_rank": 32, "kv_lora_rank": 24, "qk_nope_head_dim": 16, "qk_rope_head_dim": 8,
            "v_head_dim": 12, "first_k_dense_replace": 1, "n_routed_experts": 8, "n_group": 2,
            "topk_group": 1, "num_experts_per_tok": 3, "n_shared_experts": 1,
            "routed_scaling_factor": 2.5, "norm_topk_prob": true, "num_nextn_predict_layers": 1
        })
    }

    #[test]
    fn both_rope_spellings_parse_to_the_same_config() {
        let mut ds = base();
        ds["rope_theta"] = json!(50000.0);
        ds["rope_scaling"] = json!({"type": "yarn", "factor": 40, "original_max_position_embeddings": 4096,
            "beta_fast": 32, "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 1.0});
        let mut tf5 = base();
        tf5["rope_parameters"] = json!({"rope_type": "yarn", "rope_theta": 50000.0, "factor": 40,
            "original_max_position_embeddings": 4096, "beta_fast": 32, "beta_slow": 1,
            "mscale": 1.0, "mscale_all_dim": 1.0});
        let p = Path::new("config.json");
        let a = DeepseekConfig::from_json(&ds, p).unwrap();
        let b = DeepseekConfig::from_json(&tf5, p).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.rope_theta, 50000.0);
        let y = a.yarn.unwrap();
        assert_eq!((y.factor, y.mscale_all_dim), (40.0, Some(1.0)));
        assert!(a.rope_interleave, "transformers' default is interleaved");
        assert_eq!(a.q_lora_rank, Some(32));
        assert_eq!(a.cache_width(), 32);
        assert!(!a.is_moe_layer(0) && a.is_moe_layer(1) && a.is_moe_layer(2));
    }

    #[test]
    fn null_q_lora_rank_means_direct_q_proj() {
        let mut v = base();
        v["q_lora_rank"] = Value::Null;
        let c = DeepseekConfig::from_json(&v, Path::new("c.json")).unwrap();
        assert_eq!(c.q_lora_rank, None);
        assert_eq!(c.yarn, None);
    }

    #[test]
    fn unsupported_fields_are_refused_by_name() {
        let p = Path::new("c.json");
        for (field, value) in [
            ("scoring_func", json!("softmax")),
            ("topk_method", json!("greedy")),
            ("hidden_act", json!("gelu")),
            ("n_group", json!(3)),
            ("topk_group", json!(3)),
            ("num_experts_per_tok", json!(5)),
            ("rope_scaling", json!({"type": "linear", "factor": 2.0})),
        ] {
            let mut v = base();
            v[field] = value;
            match DeepseekConfig::from_json(&v, p) {
                Err(EngineError::Config { field: got, .. }) => assert_eq!(got, field),
                other => panic!("{field}: expected a config error, got {other:?}"),
            }
        }
        let mut v = base();
        v["architectures"] = json!(["LlamaForCausalLM"]);
        assert!(matches!(
            DeepseekConfig::from_json(&v, p),
            Err(EngineError::UnsupportedArchitecture { .. })
        ));
    }

    #[test]
    fn softmax_scale_carries_the_yarn_mscale_squared() {
        let mut v = base();
        v["rope_scaling"] = json!({"type": "yarn", "factor": 40, "mscale_all_dim": 1.0,
            "original_max_position_embeddings": 4096});
        let c = DeepseekConfig::from_json(&v, Path::new("c.json")).unwrap();
        let m = 0.1 * 40f64.ln() + 1.0;
        let want = (1.0 / 24f64.sqrt() * m * m) as f32;
        assert_eq!(c.softmax_scale(), want);
    }
}
