//! Which tensors a conversion quantizes (issue 4): 2-D linear weights only. Kept as they are:
//! embeddings, `lm_head` (unless asked), norms, MoE router `gate.weight`, biases,
//! `e_score_correction_bias`, anything matching `--keep`, and the model's own
//! `modules_to_not_convert` / `ignored_layers` / compressed-tensors `ignore`.

use crate::ConvertError;
use regex::Regex;

/// Why a tensor is kept (for the manifest and `inspect`), or `None` when it is quantized.
pub type KeepReason = Option<&'static str>;

/// The selection rules of one conversion.
pub struct Selector {
    keep: Vec<Regex>,
    /// Module patterns from config.json (exact names, `*` wildcards or `re:` regexes).
    config_modules: Vec<Regex>,
    quantize_lm_head: bool,
}

const EMBEDDING_MARKERS: [&str; 7] = [
    "embed_tokens",
    "word_embeddings",
    "position_embeddings",
    "token_type_embeddings",
    "wte",
    "wpe",
    "tok_embeddings",
];

/// True if the tensor is an embedding table.
pub fn is_embedding(name: &str) -> bool {
    let module = name.strip_suffix(".weight").unwrap_or(name);
    module
        .split('.')
        .any(|part| EMBEDDING_MARKERS.contains(&part))
}

/// True if the tensor is the output projection.
pub fn is_lm_head(name: &str) -> bool {
    let module = name.strip_suffix(".weight").unwrap_or(name);
    module == "lm_head"
        || module.ends_with(".lm_head")
        || module == "output"
        || module == "embed_out"
}

fn module_pattern(p: &str) -> Option<Regex> {
    if let Some(re) = p.strip_prefix("re:") {
        return Regex::new(&format!("^(?:{re})$")).ok();
    }
    let escaped = regex::escape(p).replace(r"\*", ".*");
    Regex::new(&format!("^(?:.*\\.)?{escaped}(?:\\..*)?$")).ok()
}

impl Selector {
    /// `keep`: user regexes (searched anywhere in the tensor name); `config`: the input config.json.
    pub fn new(
        keep: &[String],
        config: Option<&serde_json::Value>,
        quantize_lm_head: bool,
    ) -> Result<Self, ConvertError> {
        let keep = keep
            .iter()
            .map(|k| Regex::new(k).map_err(|e| ConvertError::Usage(format!("--keep '{k}': {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let mut config_modules = Vec::new();
        if let Some(cfg) = config {
            let q = cfg.get("quantization_config");
            let lists = [
                cfg.get("modules_to_not_convert"),
                q.and_then(|q| q.get("modules_to_not_convert")),
                q.and_then(|q| q.get("ignored_layers")),
                q.and_then(|q| q.get("ignore")),
            ];
            for list in lists.into_iter().flatten() {
                for m in list
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|m| m.as_str())
                {
                    if let Some(r) = module_pattern(m) {
                        config_modules.push(r);
                    }
                }
            }
        }
        Ok(Selector {
            keep,
            config_modules,
            quantize_lm_head,
        })
    }

    /// Decides for a plain float tensor of `shape`.
    pub fn keep_reason(&self, name: &str, shape: &[usize]) -> KeepReason {
        if shape.len() != 2 {
            return Some("not 2-D");
        }
        if shape.contains(&0) {
            return Some("empty");
        }
        let Some(module) = name.strip_suffix(".weight") else {
            return Some("not a .weight");
        };
        if self.keep.iter().any(|r| r.is_match(name)) {
            return Some("--keep");
        }
        if is_embedding(name) {
            return Some("embedding");
        }
        if is_lm_head(name) && !self.quantize_lm_head {
            return Some("lm_head");
        }
        let last = module.rsplit('.').next().unwrap_or(module);
        if last.contains("norm") || last.starts_with("ln_") || last == "ln" {
            return Some("norm");
        }
        if last == "gate" || last == "router" {
            return Some("MoE router");
        }
        if self.config_modules.iter().any(|r| r.is_match(module)) {
            return Some("config: modules_to_not_convert");
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deepseek_and_llama_names() {
        let s = Selector::new(&[], None, false).unwrap();
        let q = |n: &str| s.keep_reason(n, &[256, 256]);
        assert_eq!(q("model.layers.0.self_attn.q_proj.weight"), None);
        assert_eq!(q("model.layers.3.mlp.experts.7.down_proj.weight"), None);
        assert_eq!(
            q("model.layers.0.self_attn.kv_a_proj_with_mqa.weight"),
            None
        );
        assert_eq!(q("model.embed_tokens.weight"), Some("embedding"));
        assert_eq!(q("lm_head.weight"), Some("lm_head"));
        assert_eq!(q("model.layers.3.mlp.gate.weight"), Some("MoE router"));
        assert_eq!(
            q("model.layers.0.self_attn.kv_a_layernorm.weight"),
            Some("norm")
        );
        assert_eq!(
            q("model.layers.3.mlp.gate.e_score_correction_bias"),
            Some("not a .weight")
        );
        assert_eq!(s.keep_reason("model.norm.weight", &[256]), Some("not 2-D"));
        assert_eq!(q("embeddings.word_embeddings.weight"), Some("embedding"));
        assert_eq!(q("encoder.layer.0.attention.self.query.weight"), None);
        assert_eq!(s.keep_reason("x.weight", &[0, 4]), Some("empty"));
        let s = Selector::new(&[], None, true).unwrap();
        assert_eq!(s.keep_reason("lm_head.weight", &[8, 8]), None);
    }

    #[test]
    fn keep_and_config_lists() {
        let cfg = serde_json::json!({"quantization_config": {"modules_to_not_convert":
            ["model.layers.*.self_attn", "re:.*down_proj"], "ignored_layers": ["model.layers.1.mlp.up_proj"]}});
        let s = Selector::new(&["layers\\.0\\.mlp".into()], Some(&cfg), false).unwrap();
        let q = |n: &str| s.keep_reason(n, &[64, 64]);
        assert_eq!(q("model.layers.0.mlp.up_proj.weight"), Some("--keep"));
        assert_eq!(
            q("model.layers.5.self_attn.o_proj.weight"),
            Some("config: modules_to_not_convert")
        );
        assert_eq!(
            q("model.layers.5.mlp.down_proj.weight"),
            Some("config: modules_to_not_convert")
        );
        assert_eq!(
            q("model.layers.1.mlp.up_proj.weight"),
            Some("config: modules_to_not_convert")
        );
        assert_eq!(q("model.layers.2.mlp.up_proj.weight"), None);
        assert!(Selector::new(&["(".into()], None, false).is_err());
    }
}
