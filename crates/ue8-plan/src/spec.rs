//! The architecture of a model, read from its config.json: one `LayerSpec` per decoder layer (attention
//! and FFN), plus the embedding, head and multi-token-prediction (MTP) modules.
//!
//! Every family reader follows the field names of the published config.json files (and transformers'
//! modelling code for the tensors those fields imply). Sizes are u64; products are checked.

use crate::error::{PlanError, Result};
use serde_json::Value;

/// Attention of one decoder layer.
#[derive(Debug, Clone, PartialEq)]
pub enum AttnSpec {
    /// Multi-head / grouped-query attention (Llama, Qwen, Mistral, gpt-oss).
    Gqa {
        heads: u64,
        kv_heads: u64,
        head_dim: u64,
        /// Bias on q, k and v (Qwen2, gpt-oss).
        qkv_bias: bool,
        /// Bias on the output projection (gpt-oss).
        o_bias: bool,
        /// Per-head RMSNorm on q and k (Qwen3).
        qk_norm: bool,
        /// One learned softmax sink per head (gpt-oss).
        sinks: bool,
        /// Sliding window in tokens; `None` is full attention.
        window: Option<u64>,
    },
    /// DeepSeek-V2/V3 multi-head latent attention.
    Mla {
        heads: u64,
        q_lora_rank: Option<u64>,
        kv_lora_rank: u64,
        qk_nope_head_dim: u64,
        qk_rope_head_dim: u64,
        v_head_dim: u64,
    },
    /// DeepSeek-V4 attention: one shared 512-wide K=V head, a 128-token sliding window, and (when
    /// `compress_ratio` > 0) a compressed KV history, plus an indexer on ratio-4 layers.
    DeepseekV4 {
        heads: u64,
        head_dim: u64,
        q_lora_rank: u64,
        o_lora_rank: u64,
        o_groups: u64,
        window: u64,
        compress_ratio: u64,
        index_heads: u64,
        index_head_dim: u64,
        index_topk: u64,
    },
}

/// Feed-forward block of one decoder layer.
#[derive(Debug, Clone, PartialEq)]
pub enum FfnSpec {
    /// SwiGLU MLP: gate, up [inter, hidden] and down [hidden, inter].
    Dense { intermediate: u64 },
    /// Mixture of experts.
    Moe(MoeSpec),
}

/// A mixture-of-experts FFN.
#[derive(Debug, Clone, PartialEq)]
pub struct MoeSpec {
    pub experts: u64,
    pub top_k: u64,
    pub expert_intermediate: u64,
    /// Total intermediate width of the always-on shared expert(s); 0 when none.
    pub shared_intermediate: u64,
    /// Router has a bias (gpt-oss) or an `e_score_correction_bias` (DeepSeek): both one value per expert.
    pub router_bias: bool,
    /// Experts carry biases on their projections (gpt-oss).
    pub expert_bias: bool,
    /// Hash-routed layer (DeepSeek-V4's first layers): a token-id -> expert table instead of a bias.
    pub hash_routed: bool,
}

/// One decoder layer.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerSpec {
    pub attn: AttnSpec,
    pub ffn: FfnSpec,
}

/// What an MTP (next-token prediction) module stores besides its decoder layer.
#[derive(Debug, Clone, PartialEq)]
pub enum MtpExtras {
    /// DeepSeek-V3: enorm, hnorm, eh_proj [h, 2h], shared_head.norm, and its own copies of the
    /// embedding and the output head (both stored in the checkpoint under layer `num_hidden_layers`).
    DeepseekV3,
    /// DeepSeek-V4: e_proj and h_proj [h, h], enorm, hnorm, norm and an hc_head; embedding and head shared.
    DeepseekV4,
}

/// The whole model.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpec {
    /// Where the config came from (path or `builtin:<name>`), used in messages.
    pub origin: String,
    pub model_type: String,
    pub vocab_size: u64,
    pub hidden_size: u64,
    pub tie_word_embeddings: bool,
    pub layers: Vec<LayerSpec>,
    /// Hyper-connection streams (DeepSeek-V4 `hc_mult`); `None` for a plain residual.
    pub hc_mult: Option<u64>,
    pub mtp_layers: Vec<LayerSpec>,
    pub mtp_extras: Option<MtpExtras>,
    /// The released checkpoint stores routed experts in MXFP4 (DeepSeek-V4 `expert_dtype: "fp4"`).
    pub experts_released_fp4: bool,
    /// Notes on assumptions made while reading the config (shown to the user).
    pub notes: Vec<String>,
}

impl ModelSpec {
    /// Parse a config.json document. `origin` names it in errors.
    pub fn from_json_str(text: &str, origin: &str) -> Result<Self> {
        let value: Value = serde_json::from_str(text).map_err(|source| PlanError::Json {
            origin: origin.to_string(),
            source,
        })?;
        Self::from_value(&value, origin)
    }

    /// Parse an already-decoded config.json.
    pub fn from_value(cfg: &Value, origin: &str) -> Result<Self> {
        let r = Reader { cfg, origin };
        let model_type = r.model_type();
        match model_type.as_str() {
            "llama" | "mistral" | "qwen2" | "qwen3" => read_dense(&r, &model_type),
            "qwen3_moe" | "qwen2_moe" => read_qwen_moe(&r, &model_type),
            "gpt_oss" => read_gpt_oss(&r),
            "deepseek_v3" | "deepseek_v2" => read_deepseek_v3(&r, &model_type),
            "deepseek_v4" => read_deepseek_v4(&r),
            _ => Err(PlanError::UnsupportedArchitecture {
                origin: origin.to_string(),
                model_type,
            }),
        }
    }

    /// Number of decoder layers of the main model.
    pub fn num_layers(&self) -> u64 {
        self.layers.len() as u64
    }
}

/// Largest size field accepted from a config.json (4,194,304): an order of magnitude above any published
/// width or vocabulary, and small enough that products of three sizes fit u64.
pub const MAX_CONFIG_DIM: u64 = 1 << 22;
/// Largest layer count accepted (layers are materialized one spec each).
pub const MAX_LAYERS: u64 = 1 << 16;

/// Typed access to config.json fields with errors that name the file and the field.
struct Reader<'a> {
    cfg: &'a Value,
    origin: &'a str,
}

impl Reader<'_> {
    fn model_type(&self) -> String {
        if let Some(t) = self.cfg.get("model_type").and_then(Value::as_str) {
            return t.to_string();
        }
        // Older configs name only the architecture class.
        let arch = self
            .cfg
            .get("architectures")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(Value::as_str)
            .unwrap_or("");
        match arch {
            "LlamaForCausalLM" => "llama",
            "MistralForCausalLM" => "mistral",
            "Qwen2ForCausalLM" => "qwen2",
            "Qwen3ForCausalLM" => "qwen3",
            "Qwen3MoeForCausalLM" => "qwen3_moe",
            "GptOssForCausalLM" => "gpt_oss",
            "DeepseekV3ForCausalLM" => "deepseek_v3",
            "DeepseekV4ForCausalLM" => "deepseek_v4",
            other => other,
        }
        .to_string()
    }

    fn u64_opt(&self, field: &str) -> Result<Option<u64>> {
        match self.cfg.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => match v.as_u64() {
                Some(n) if n <= MAX_CONFIG_DIM => Ok(Some(n)),
                Some(n) => Err(self.bad(
                    field,
                    &format!("{n} is implausibly large (limit {MAX_CONFIG_DIM})"),
                )),
                None => Err(self.bad(field, &format!("expected a non-negative integer, got {v}"))),
            },
        }
    }

    fn u64_req(&self, field: &str, family: &str) -> Result<u64> {
        self.u64_opt(field)?.ok_or_else(|| PlanError::MissingField {
            origin: self.origin.to_string(),
            field: field.to_string(),
            family: family.to_string(),
        })
    }

    /// A required size that must also be positive.
    fn positive(&self, field: &str, family: &str) -> Result<u64> {
        let v = self.u64_req(field, family)?;
        if v == 0 {
            return Err(self.bad(field, "must be > 0"));
        }
        Ok(v)
    }

    fn bool_or(&self, field: &str, default: bool) -> Result<bool> {
        match self.cfg.get(field) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => v
                .as_bool()
                .ok_or_else(|| self.bad(field, &format!("expected true or false, got {v}"))),
        }
    }

    fn u64_list(&self, field: &str) -> Result<Option<Vec<u64>>> {
        match self.cfg.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_u64().ok_or_else(|| {
                        self.bad(field, &format!("list entry {v} is not an integer"))
                    })
                })
                .collect::<Result<Vec<u64>>>()
                .map(Some),
            Some(v) => Err(self.bad(field, &format!("expected a list, got {v}"))),
        }
    }

    fn bad(&self, field: &str, problem: &str) -> PlanError {
        PlanError::BadField {
            origin: self.origin.to_string(),
            field: field.to_string(),
            problem: problem.to_string(),
        }
    }

    fn common(&self, family: &str) -> Result<(u64, u64, u64, bool)> {
        let vocab = self.positive("vocab_size", family)?;
        let hidden = self.positive("hidden_size", family)?;
        let layers = self.positive("num_hidden_layers", family)?;
        if layers > MAX_LAYERS {
            return Err(self.bad(
                "num_hidden_layers",
                &format!("{layers} is implausibly large (limit {MAX_LAYERS})"),
            ));
        }
        if self.u64_opt("num_nextn_predict_layers")?.unwrap_or(0) > MAX_LAYERS {
            return Err(self.bad("num_nextn_predict_layers", "implausibly large"));
        }
        Ok((
            vocab,
            hidden,
            layers,
            self.bool_or("tie_word_embeddings", false)?,
        ))
    }

    /// Explicit `head_dim`, or hidden / heads as transformers defaults it.
    fn head_dim(&self, hidden: u64, heads: u64) -> Result<u64> {
        match self.u64_opt("head_dim")? {
            Some(d) if d > 0 => Ok(d),
            Some(_) => Err(self.bad("head_dim", "must be > 0")),
            None => {
                if !hidden.is_multiple_of(heads) {
                    return Err(self.bad(
                        "num_attention_heads",
                        "hidden_size is not a multiple of it and head_dim is not given",
                    ));
                }
                Ok(hidden / heads)
            }
        }
    }
}

fn read_dense(r: &Reader, model_type: &str) -> Result<ModelSpec> {
    let (vocab, hidden, n_layers, tie) = r.common(model_type)?;
    let heads = r.positive("num_attention_heads", model_type)?;
    let kv_heads = r.u64_opt("num_key_value_heads")?.unwrap_or(heads);
    let head_dim = r.head_dim(hidden, heads)?;
    let inter = r.positive("intermediate_size", model_type)?;
    // Qwen2 always carries q/k/v biases; Llama and Mistral only when `attention_bias` says so.
    let qkv_bias = model_type == "qwen2" || r.bool_or("attention_bias", false)?;
    let o_bias = model_type != "qwen2" && r.bool_or("attention_bias", false)?;
    let attn = AttnSpec::Gqa {
        heads,
        kv_heads,
        head_dim,
        qkv_bias,
        o_bias,
        qk_norm: model_type == "qwen3",
        sinks: false,
        window: None,
    };
    let layer = LayerSpec {
        attn,
        ffn: FfnSpec::Dense {
            intermediate: inter,
        },
    };
    Ok(ModelSpec {
        origin: r.origin.to_string(),
        model_type: model_type.to_string(),
        vocab_size: vocab,
        hidden_size: hidden,
        tie_word_embeddings: tie,
        layers: vec![layer; n_layers as usize],
        hc_mult: None,
        mtp_layers: Vec::new(),
        mtp_extras: None,
        experts_released_fp4: false,
        notes: Vec::new(),
    })
}

fn read_qwen_moe(r: &Reader, model_type: &str) -> Result<ModelSpec> {
    let (vocab, hidden, n_layers, tie) = r.common(model_type)?;
    let heads = r.positive("num_attention_heads", model_type)?;
    let kv_heads = r.u64_opt("num_key_value_heads")?.unwrap_or(heads);
    let head_dim = r.head_dim(hidden, heads)?;
    let experts = r.positive("num_experts", model_type)?;
    let top_k = r.positive("num_experts_per_tok", model_type)?;
    let moe_inter = r.positive("moe_intermediate_size", model_type)?;
    let shared = r.u64_opt("shared_expert_intermediate_size")?.unwrap_or(0);
    let sparse_step = r.u64_opt("decoder_sparse_step")?.unwrap_or(1).max(1);
    let mlp_only = r.u64_list("mlp_only_layers")?.unwrap_or_default();
    let dense_inter = r.u64_opt("intermediate_size")?.unwrap_or(0);
    let attn = AttnSpec::Gqa {
        heads,
        kv_heads,
        head_dim,
        qkv_bias: model_type == "qwen2_moe",
        o_bias: false,
        qk_norm: model_type == "qwen3_moe",
        sinks: false,
        window: None,
    };
    let layers = (0..n_layers)
        .map(|i| {
            // transformers: MoE where (i + 1) % decoder_sparse_step == 0 and i not in mlp_only_layers.
            let moe = !mlp_only.contains(&i) && (i + 1).is_multiple_of(sparse_step);
            let ffn = if moe {
                FfnSpec::Moe(MoeSpec {
                    experts,
                    top_k,
                    expert_intermediate: moe_inter,
                    shared_intermediate: shared,
                    router_bias: false,
                    expert_bias: false,
                    hash_routed: false,
                })
            } else {
                FfnSpec::Dense {
                    intermediate: dense_inter,
                }
            };
            LayerSpec {
                attn: attn.clone(),
                ffn,
            }
        })
        .collect();
    let mut notes = Vec::new();
    if shared > 0 {
        notes.push("shared expert gate (1 x hidden) counted with the router".to_string());
    }
    Ok(ModelSpec {
        origin: r.origin.to_string(),
        model_type: model_type.to_string(),
        vocab_size: vocab,
        hidden_size: hidden,
        tie_word_embeddings: tie,
        layers,
        hc_mult: None,
        mtp_layers: Vec::new(),
        mtp_extras: None,
        experts_released_fp4: false,
        notes,
    })
}

fn read_gpt_oss(r: &Reader) -> Result<ModelSpec> {
    let fam = "gpt_oss";
    let (vocab, hidden, n_layers, tie) = r.common(fam)?;
    let heads = r.positive("num_attention_heads", fam)?;
    let kv_heads = r.u64_opt("num_key_value_heads")?.unwrap_or(heads);
    let head_dim = r.head_dim(hidden, heads)?;
    let experts = r.positive("num_local_experts", fam)?;
    let top_k = match r.u64_opt("num_experts_per_tok")? {
        Some(k) => k,
        None => r.positive("experts_per_token", fam)?,
    };
    let inter = r.positive("intermediate_size", fam)?;
    let window = r.u64_opt("sliding_window")?;
    let layer_types: Vec<String> = match r.cfg.get("layer_types").and_then(Value::as_array) {
        Some(a) => a
            .iter()
            .map(|v| v.as_str().unwrap_or("").to_string())
            .collect(),
        // gpt-oss alternates sliding and full attention, starting with sliding.
        None => (0..n_layers)
            .map(|i| {
                if i.is_multiple_of(2) {
                    "sliding_attention".to_string()
                } else {
                    "full_attention".to_string()
                }
            })
            .collect(),
    };
    if layer_types.len() as u64 != n_layers {
        return Err(r.bad(
            "layer_types",
            &format!("has {} entries for {n_layers} layers", layer_types.len()),
        ));
    }
    let layers = layer_types
        .iter()
        .map(|t| LayerSpec {
            attn: AttnSpec::Gqa {
                heads,
                kv_heads,
                head_dim,
                qkv_bias: true,
                o_bias: true,
                qk_norm: false,
                sinks: true,
                window: if t == "sliding_attention" {
                    window
                } else {
                    None
                },
            },
            ffn: FfnSpec::Moe(MoeSpec {
                experts,
                top_k,
                expert_intermediate: inter,
                shared_intermediate: 0,
                router_bias: true,
                expert_bias: true,
                hash_routed: false,
            }),
        })
        .collect();
    Ok(ModelSpec {
        origin: r.origin.to_string(),
        model_type: fam.to_string(),
        vocab_size: vocab,
        hidden_size: hidden,
        tie_word_embeddings: tie,
        layers,
        hc_mult: None,
        mtp_layers: Vec::new(),
        mtp_extras: None,
        experts_released_fp4: false,
        notes: Vec::new(),
    })
}

fn read_deepseek_v3(r: &Reader, model_type: &str) -> Result<ModelSpec> {
    let (vocab, hidden, n_layers, tie) = r.common(model_type)?;
    let heads = r.positive("num_attention_heads", model_type)?;
    let attn = AttnSpec::Mla {
        heads,
        q_lora_rank: r.u64_opt("q_lora_rank")?,
        kv_lora_rank: r.positive("kv_lora_rank", model_type)?,
        qk_nope_head_dim: r.positive("qk_nope_head_dim", model_type)?,
        qk_rope_head_dim: r.positive("qk_rope_head_dim", model_type)?,
        v_head_dim: r.positive("v_head_dim", model_type)?,
    };
    let dense_inter = r.positive("intermediate_size", model_type)?;
    let experts = r.u64_opt("n_routed_experts")?.unwrap_or(0);
    let first_dense = r.u64_opt("first_k_dense_replace")?.unwrap_or(0);
    let freq = r.u64_opt("moe_layer_freq")?.unwrap_or(1).max(1);
    let moe = if experts > 0 {
        Some(MoeSpec {
            experts,
            top_k: r.positive("num_experts_per_tok", model_type)?,
            expert_intermediate: r.positive("moe_intermediate_size", model_type)?,
            shared_intermediate: r
                .u64_opt("n_shared_experts")?
                .unwrap_or(0)
                .checked_mul(r.positive("moe_intermediate_size", model_type)?)
                .ok_or_else(|| PlanError::Overflow {
                    origin: r.origin.to_string(),
                    field: "n_shared_experts".to_string(),
                })?,
            // noaux_tc routing stores `e_score_correction_bias`, one value per expert.
            router_bias: r
                .cfg
                .get("topk_method")
                .and_then(Value::as_str)
                .map(|m| m == "noaux_tc")
                .unwrap_or(false),
            expert_bias: false,
            hash_routed: false,
        })
    } else {
        None
    };
    let layer_at = |i: u64| LayerSpec {
        attn: attn.clone(),
        ffn: match &moe {
            // transformers: MoE when i >= first_k_dense_replace and i % moe_layer_freq == 0.
            Some(m) if i >= first_dense && i.is_multiple_of(freq) => FfnSpec::Moe(m.clone()),
            _ => FfnSpec::Dense {
                intermediate: dense_inter,
            },
        },
    };
    let layers = (0..n_layers).map(layer_at).collect();
    let n_mtp = r.u64_opt("num_nextn_predict_layers")?.unwrap_or(0);
    let mtp_layers = (n_layers..n_layers + n_mtp).map(layer_at).collect();
    Ok(ModelSpec {
        origin: r.origin.to_string(),
        model_type: model_type.to_string(),
        vocab_size: vocab,
        hidden_size: hidden,
        tie_word_embeddings: tie,
        layers,
        hc_mult: None,
        mtp_layers,
        mtp_extras: (n_mtp > 0).then_some(MtpExtras::DeepseekV3),
        experts_released_fp4: false,
        notes: Vec::new(),
    })
}

fn read_deepseek_v4(r: &Reader) -> Result<ModelSpec> {
    let fam = "deepseek_v4";
    let (vocab, hidden, n_layers, tie) = r.common(fam)?;
    let heads = r.positive("num_attention_heads", fam)?;
    let head_dim = r.positive("head_dim", fam)?;
    let q_lora_rank = r.positive("q_lora_rank", fam)?;
    let o_lora_rank = r.positive("o_lora_rank", fam)?;
    let o_groups = r.positive("o_groups", fam)?;
    if !(heads * head_dim).is_multiple_of(o_groups) {
        return Err(r.bad("o_groups", "does not divide num_attention_heads * head_dim"));
    }
    let window = r.u64_opt("sliding_window")?.unwrap_or(128);
    let index_heads = r.u64_opt("index_n_heads")?.unwrap_or(0);
    let index_head_dim = r.u64_opt("index_head_dim")?.unwrap_or(0);
    let index_topk = r.u64_opt("index_topk")?.unwrap_or(0);
    let n_hash = r.u64_opt("num_hash_layers")?.unwrap_or(0);
    let n_mtp = r.u64_opt("num_nextn_predict_layers")?.unwrap_or(0);
    let mut notes = Vec::new();
    let ratios = match r.u64_list("compress_ratios")? {
        Some(list) => list,
        None => {
            // The published Flash config lists ratios 0, 0, then 4 and 128 alternating; MTP layers 0.
            notes.push(
                "compress_ratios missing: assumed 0, 0, then 4/128 alternating (the published Flash pattern)"
                    .to_string(),
            );
            (0..n_layers)
                .map(|i| match i {
                    0 | 1 => 0,
                    i if i.is_multiple_of(2) => 4,
                    _ => 128,
                })
                .collect()
        }
    };
    if let Some(bad) = ratios.iter().find(|r| ![0, 4, 128].contains(*r)) {
        return Err(r.bad(
            "compress_ratios",
            &format!("ratio {bad} is not one of 0, 4, 128"),
        ));
    }
    let experts = r.positive("n_routed_experts", fam)?;
    let moe_inter = r.positive("moe_intermediate_size", fam)?;
    let shared = r
        .u64_opt("n_shared_experts")?
        .unwrap_or(0)
        .checked_mul(moe_inter)
        .ok_or_else(|| PlanError::Overflow {
            origin: r.origin.to_string(),
            field: "n_shared_experts".to_string(),
        })?;
    let top_k = r.positive("num_experts_per_tok", fam)?;
    let layer_at = |i: u64| LayerSpec {
        attn: AttnSpec::DeepseekV4 {
            heads,
            head_dim,
            q_lora_rank,
            o_lora_rank,
            o_groups,
            window,
            // Layers past the list (MTP) use full-window attention only, as the reference code does.
            compress_ratio: ratios.get(i as usize).copied().unwrap_or(0),
            index_heads,
            index_head_dim,
            index_topk,
        },
        ffn: FfnSpec::Moe(MoeSpec {
            experts,
            top_k,
            expert_intermediate: moe_inter,
            shared_intermediate: shared,
            router_bias: i >= n_hash,
            expert_bias: false,
            hash_routed: i < n_hash,
        }),
    };
    let layers = (0..n_layers).map(layer_at).collect();
    let mtp_layers = (n_layers..n_layers + n_mtp).map(layer_at).collect();
    let experts_fp4 = match r.cfg.get("expert_dtype").and_then(Value::as_str) {
        Some("fp4") => true,
        Some(_) => false,
        None => {
            notes.push(
                "expert_dtype missing: assumed \"fp4\" (routed experts in MXFP4, as DeepSeek released V4)"
                    .to_string(),
            );
            true
        }
    };
    Ok(ModelSpec {
        origin: r.origin.to_string(),
        model_type: fam.to_string(),
        vocab_size: vocab,
        hidden_size: hidden,
        tie_word_embeddings: tie,
        layers,
        hc_mult: Some(r.u64_opt("hc_mult")?.unwrap_or(1)),
        mtp_layers,
        mtp_extras: (n_mtp > 0).then_some(MtpExtras::DeepseekV4),
        experts_released_fp4: experts_fp4,
        notes,
    })
}
