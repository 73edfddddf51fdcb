//! `tokenizer.json` and `tokenizer_config.json` built from a GGUF's tokenizer metadata, so that the
//! `tokenizers` crate (and Python `transformers`) encode text exactly as llama.cpp does with the GGUF.
//!
//! Only byte-level BPE vocabularies (`tokenizer.ggml.model = "gpt2"`) are supported, with these
//! pre-tokenizers (`tokenizer.ggml.pre`), each a translation of the split regexes llama.cpp's
//! `llama-vocab.cpp` uses for it:
//! - `smollm`: every digit alone, then the GPT-2 split.
//! - `gpt-2`: the GPT-2 split.
//! - `llama-bpe` (also `llama3`, `llama-v3`): the Llama 3 split (numbers in groups of up to three),
//!   with `ignore_merges` (a word that is a whole token is taken as is), as llama.cpp does.
//! - `qwen2`: the Qwen2 split (every digit alone).
//!
//! Tokens of type 3 (control) become special added tokens, type 4 (user-defined) plain added tokens.
//! BOS is added only when the tokenizer says so (issue 8, item 7): `tokenizer.ggml.add_bos_token`
//! when present, else llama.cpp's default for the pre-tokenizer (true for `llama-bpe`, false for the
//! others); then the post-processor prepends it and `tokenizer_config.json` says `add_bos_token: true`.

use std::path::Path;

use serde_json::{json, Map, Value};

use super::error::GgufError;
use super::reader::GgufHeader;
use super::value::{MetadataArray, MetadataValue};

/// A pre-tokenizer ue8 can express in tokenizer.json.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreTokenizer {
    Smollm,
    Gpt2,
    Llama3,
    Qwen2,
}

/// The names of `tokenizer.ggml.pre` that ue8 accepts, for messages.
pub const SUPPORTED_PRE: &str = "smollm, gpt-2, llama-bpe (llama3, llama-v3), qwen2";

/// llama.cpp's GPT-2 split (`'s|'t|...| ?\p{L}+| ?\p{N}+|...`), which the `tokenizers` crate's
/// ByteLevel pre-tokenizer applies itself when `use_regex` is true.
const LLAMA3_SPLIT: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2_SPLIT: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

impl PreTokenizer {
    /// Maps a `tokenizer.ggml.pre` name as llama.cpp does; `None` for names ue8 does not support.
    pub fn from_gguf_name(name: &str) -> Option<Self> {
        match name {
            "smollm" => Some(Self::Smollm),
            "gpt-2" => Some(Self::Gpt2),
            "llama-bpe" | "llama3" | "llama-v3" => Some(Self::Llama3),
            "qwen2" => Some(Self::Qwen2),
            _ => None,
        }
    }

    /// llama.cpp's `add_bos` default for this pre-tokenizer (used when the GGUF has no
    /// `tokenizer.ggml.add_bos_token`).
    pub fn default_add_bos(self) -> bool {
        matches!(self, Self::Llama3)
    }

    fn ignore_merges(self) -> bool {
        matches!(self, Self::Llama3)
    }

    fn to_json(self) -> Value {
        let byte_level = |use_regex: bool| json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": use_regex});
        let split = |pattern: &str| json!({"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": false});
        match self {
            Self::Smollm => json!({"type": "Sequence", "pretokenizers": [
                {"type": "Digits", "individual_digits": true}, byte_level(true)]}),
            Self::Gpt2 => byte_level(true),
            Self::Llama3 => {
                json!({"type": "Sequence", "pretokenizers": [split(LLAMA3_SPLIT), byte_level(false)]})
            }
            Self::Qwen2 => {
                json!({"type": "Sequence", "pretokenizers": [split(QWEN2_SPLIT), byte_level(false)]})
            }
        }
    }
}

/// GGUF token types (llama.cpp's `llama_token_type`).
const TOKEN_TYPE_CONTROL: i64 = 3;
const TOKEN_TYPE_USER_DEFINED: i64 = 4;

/// The tokenizer files of an imported model.
#[derive(Debug, Clone)]
pub struct TokenizerFiles {
    pub tokenizer_json: Value,
    pub tokenizer_config: Value,
    pub pre: PreTokenizer,
    pub add_bos: bool,
    pub add_eos: bool,
    pub bos_token_id: Option<u32>,
    pub eos_token_id: Option<u32>,
    pub pad_token_id: Option<u32>,
    pub vocab_size: usize,
}

fn wrong_type(path: &Path, key: &str, expected: &'static str, v: &MetadataValue) -> GgufError {
    let found = match v.as_array() {
        Some(a) => format!("array of {}", a.elem_type_name()),
        None => v.type_name().to_string(),
    };
    GgufError::WrongKeyType {
        path: path.to_path_buf(),
        key: key.into(),
        expected,
        found,
    }
}

fn required<'h>(h: &'h GgufHeader, path: &Path, key: &str) -> Result<&'h MetadataValue, GgufError> {
    h.get(key).ok_or_else(|| GgufError::MissingKey {
        path: path.to_path_buf(),
        key: key.into(),
    })
}

fn string_array<'h>(h: &'h GgufHeader, path: &Path, key: &str) -> Result<&'h [String], GgufError> {
    let v = required(h, path, key)?;
    v.as_array()
        .and_then(MetadataArray::as_strings)
        .ok_or_else(|| wrong_type(path, key, "an array of strings", v))
}

fn optional_token_id(
    h: &GgufHeader,
    path: &Path,
    key: &str,
    n_tokens: usize,
) -> Result<Option<u32>, GgufError> {
    let Some(v) = h.get(key) else { return Ok(None) };
    let id = v
        .as_u64()
        .ok_or_else(|| wrong_type(path, key, "an unsigned integer", v))?;
    if id >= n_tokens as u64 {
        return Err(GgufError::Invalid {
            path: path.to_path_buf(),
            problem: format!("{key} = {id} is not below the vocabulary size {n_tokens}"),
        });
    }
    // id < n_tokens <= MAX_ARRAY_LEN < 2^32.
    Ok(u32::try_from(id).ok())
}

fn optional_bool(h: &GgufHeader, path: &Path, key: &str) -> Result<Option<bool>, GgufError> {
    match h.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_bool()
            .map(Some)
            .ok_or_else(|| wrong_type(path, key, "a bool", v)),
    }
}

fn template_processing(bos: Option<(&str, u32)>, eos: Option<(&str, u32)>) -> Value {
    let mut single = Vec::new();
    let mut pair = Vec::new();
    let mut specials = Map::new();
    let special = |t: &str, type_id: u32| json!({"SpecialToken": {"id": t, "type_id": type_id}});
    let seq = |id: &str, type_id: u32| json!({"Sequence": {"id": id, "type_id": type_id}});
    if let Some((t, _)) = bos {
        single.push(special(t, 0));
        pair.push(special(t, 0));
    }
    single.push(seq("A", 0));
    pair.push(seq("A", 0));
    if let Some((t, _)) = eos {
        single.push(special(t, 0));
        pair.push(special(t, 0));
    }
    if let Some((t, _)) = bos {
        pair.push(special(t, 1));
    }
    pair.push(seq("B", 1));
    if let Some((t, _)) = eos {
        pair.push(special(t, 1));
    }
    for (t, id) in bos.into_iter().chain(eos) {
        specials.insert(t.to_string(), json!({"id": t, "ids": [id], "tokens": [t]}));
    }
    json!({"type": "TemplateProcessing", "single": single, "pair": pair, "special_tokens": specials})
}

/// Builds tokenizer.json and tokenizer_config.json from the header of `path`.
pub fn build_tokenizer(h: &GgufHeader, path: &Path) -> Result<TokenizerFiles, GgufError> {
    let model_key = "tokenizer.ggml.model";
    let model_v = required(h, path, model_key)?;
    let model = model_v
        .as_str()
        .ok_or_else(|| wrong_type(path, model_key, "a string", model_v))?;
    if model != "gpt2" {
        return Err(GgufError::UnsupportedTokenizer {
            path: path.to_path_buf(),
            what: "model",
            name: model.to_string(),
            supported: "gpt2 (byte-level BPE)",
        });
    }
    let pre_name = match h.get("tokenizer.ggml.pre") {
        None => "default",
        Some(v) => v
            .as_str()
            .ok_or_else(|| wrong_type(path, "tokenizer.ggml.pre", "a string", v))?,
    };
    let pre =
        PreTokenizer::from_gguf_name(pre_name).ok_or_else(|| GgufError::UnsupportedTokenizer {
            path: path.to_path_buf(),
            what: "pre-tokenizer",
            name: pre_name.to_string(),
            supported: SUPPORTED_PRE,
        })?;

    let tokens = string_array(h, path, "tokenizer.ggml.tokens")?;
    let merges = string_array(h, path, "tokenizer.ggml.merges")?;
    let n = tokens.len();
    let types: Vec<i64> = match h.get("tokenizer.ggml.token_type") {
        None => vec![1; n],
        Some(v) => v
            .as_array()
            .and_then(MetadataArray::to_i64_vec)
            .ok_or_else(|| wrong_type(path, "tokenizer.ggml.token_type", "an integer array", v))?,
    };
    if types.len() != n {
        return Err(GgufError::Invalid {
            path: path.to_path_buf(),
            problem: format!(
                "tokenizer.ggml.token_type has {} entries, tokenizer.ggml.tokens {n}",
                types.len()
            ),
        });
    }

    let bos_id = optional_token_id(h, path, "tokenizer.ggml.bos_token_id", n)?;
    let eos_id = optional_token_id(h, path, "tokenizer.ggml.eos_token_id", n)?;
    let pad_id = optional_token_id(h, path, "tokenizer.ggml.padding_token_id", n)?;
    let unk_id = optional_token_id(h, path, "tokenizer.ggml.unknown_token_id", n)?;
    let add_bos = optional_bool(h, path, "tokenizer.ggml.add_bos_token")?
        .unwrap_or_else(|| pre.default_add_bos());
    let add_eos = optional_bool(h, path, "tokenizer.ggml.add_eos_token")?.unwrap_or(false);
    let token_text = |id: Option<u32>| id.and_then(|i| tokens.get(i as usize)).map(String::as_str);
    let missing_special = |what: &str| GgufError::Invalid {
        path: path.to_path_buf(),
        problem: format!("tokenizer adds {what} but tokenizer.ggml.{what}_token_id is missing"),
    };
    let bos_pair = match (add_bos, token_text(bos_id), bos_id) {
        (false, _, _) => None,
        (true, Some(t), Some(id)) => Some((t, id)),
        _ => return Err(missing_special("bos")),
    };
    let eos_pair = match (add_eos, token_text(eos_id), eos_id) {
        (false, _, _) => None,
        (true, Some(t), Some(id)) => Some((t, id)),
        _ => return Err(missing_special("eos")),
    };

    // The first occurrence of a duplicated token text wins, as in llama.cpp's text-to-id map.
    let mut vocab = Map::with_capacity(n);
    for (id, t) in tokens.iter().enumerate() {
        if !vocab.contains_key(t) {
            vocab.insert(t.clone(), json!(id));
        }
    }
    let mut merge_pairs = Vec::with_capacity(merges.len());
    for (i, m) in merges.iter().enumerate() {
        let (a, b) = m.split_once(' ').ok_or_else(|| GgufError::Invalid {
            path: path.to_path_buf(),
            problem: format!(
                "tokenizer.ggml.merges[{i}] = {m:?} is not two tokens separated by a space"
            ),
        })?;
        merge_pairs.push(json!([a, b]));
    }
    let mut added = Vec::new();
    for (id, (t, &ty)) in tokens.iter().zip(&types).enumerate() {
        if ty == TOKEN_TYPE_CONTROL || ty == TOKEN_TYPE_USER_DEFINED {
            added.push(json!({
                "id": id, "content": t, "single_word": false, "lstrip": false, "rstrip": false,
                "normalized": false, "special": ty == TOKEN_TYPE_CONTROL,
            }));
        }
    }
    let post_processor = if add_bos || add_eos {
        template_processing(bos_pair, eos_pair)
    } else {
        Value::Null
    };
    let tokenizer_json = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": pre.to_json(),
        "post_processor": post_processor,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {
            "type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
            "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
            "ignore_merges": pre.ignore_merges(), "vocab": vocab, "merges": merge_pairs,
        },
    });

    let mut config = Map::new();
    config.insert("tokenizer_class".into(), json!("PreTrainedTokenizerFast"));
    config.insert("add_bos_token".into(), json!(add_bos));
    config.insert("add_eos_token".into(), json!(add_eos));
    for (key, id) in [
        ("bos_token", bos_id),
        ("eos_token", eos_id),
        ("pad_token", pad_id),
        ("unk_token", unk_id),
    ] {
        if let Some(t) = token_text(id) {
            config.insert(key.into(), json!(t));
        }
    }
    config.insert("clean_up_tokenization_spaces".into(), json!(false));
    if let Some(v) = h.get("tokenizer.chat_template") {
        let t = v
            .as_str()
            .ok_or_else(|| wrong_type(path, "tokenizer.chat_template", "a string", v))?;
        config.insert("chat_template".into(), json!(t));
    }

    Ok(TokenizerFiles {
        tokenizer_json,
        tokenizer_config: Value::Object(config),
        pre,
        add_bos,
        add_eos,
        bos_token_id: bos_id,
        eos_token_id: eos_id,
        pad_token_id: pad_id,
        vocab_size: n,
    })
}
