//! Text <-> token ids for a model directory: `tokenizer.json` through the `tokenizers` crate, the
//! BOS rule of issue 8 item 7, the chat template of `tokenizer_config.json` (rendered with
//! minijinja: the Jinja subset of Hugging Face templates, plus `raise_exception`), and streaming
//! detokenization that never emits half a UTF-8 character.
//!
//! BOS rule: a BOS token is added only when the tokenizer says so: `add_bos_token: true` in
//! `tokenizer_config.json`, or a post-processor in `tokenizer.json` that inserts it. A
//! `bos_token_id` in config.json alone adds nothing.

use crate::error::{EngineError, Result};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// A model's tokenizer with its special-token conventions.
pub struct TextTokenizer {
    tok: tokenizers::Tokenizer,
    path: PathBuf,
    add_bos_token: bool,
    bos_id: Option<u32>,
    bos_token: String,
    eos_token: String,
    eos_ids: Vec<u32>,
    chat_template: Option<String>,
}

fn token_string(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("content")?.as_str().map(str::to_string),
        _ => None,
    }
}

impl TextTokenizer {
    /// Load `tokenizer.json` (+ `tokenizer_config.json` when present) from `dir`. `config_bos` /
    /// `config_eos` are config.json's ids (EOS ids stop generation; the BOS id is used only when the
    /// tokenizer asks for a BOS and names none).
    pub fn from_dir(dir: &Path, config_bos: Option<u32>, config_eos: &[u32]) -> Result<Self> {
        let path = dir.join("tokenizer.json");
        let tok = tokenizers::Tokenizer::from_file(&path).map_err(|e| EngineError::Tokenizer {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let tc_path = dir.join("tokenizer_config.json");
        let tc: Value = match std::fs::read_to_string(&tc_path) {
            Ok(text) => serde_json::from_str(&text).map_err(|source| EngineError::Json {
                path: tc_path.clone(),
                source,
            })?,
            Err(_) => Value::Null,
        };
        let add_bos_token = tc
            .get("add_bos_token")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let bos_token = token_string(tc.get("bos_token")).unwrap_or_default();
        let eos_token = token_string(tc.get("eos_token")).unwrap_or_default();
        let bos_id = tok.token_to_id(&bos_token).or(config_bos);
        let mut eos_ids: Vec<u32> = config_eos.to_vec();
        if let Some(id) = tok.token_to_id(&eos_token) {
            if !eos_ids.contains(&id) {
                eos_ids.push(id);
            }
        }
        let chat_template = match tc.get("chat_template") {
            Some(Value::String(s)) => Some(s.clone()),
            // list form: [{"name": "default", "template": "..."}, ...]
            Some(Value::Array(items)) => items
                .iter()
                .find(|t| t.get("name").and_then(Value::as_str) == Some("default"))
                .or_else(|| items.first())
                .and_then(|t| t.get("template"))
                .and_then(Value::as_str)
                .map(str::to_string),
            _ => None,
        };
        // A separate chat_template.jinja (newer transformers) wins when present.
        let chat_template = std::fs::read_to_string(dir.join("chat_template.jinja"))
            .ok()
            .or(chat_template);
        Ok(TextTokenizer {
            tok,
            path,
            add_bos_token,
            bos_id,
            bos_token,
            eos_token,
            eos_ids,
            chat_template,
        })
    }

    fn err(&self, e: impl std::fmt::Display) -> EngineError {
        EngineError::Tokenizer {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    /// Token ids of `text`, with BOS per the rule in the module docs.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self.tok.encode(text, true).map_err(|e| self.err(e))?;
        let mut ids = enc.get_ids().to_vec();
        if self.add_bos_token {
            if let Some(bos) = self.bos_id {
                if ids.first() != Some(&bos) {
                    ids.insert(0, bos);
                }
            }
        }
        Ok(ids)
    }

    /// Whether a BOS token starts every encoded text (and every perplexity chunk).
    pub fn adds_bos(&self) -> Option<u32> {
        if self.add_bos_token {
            self.bos_id
        } else {
            None
        }
    }

    /// Text of `ids` (special tokens skipped).
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.tok.decode(ids, true).map_err(|e| self.err(e))
    }

    /// Whether generation should stop at this token.
    pub fn is_eos(&self, id: u32) -> bool {
        self.eos_ids.contains(&id)
    }

    /// Whether the tokenizer has a chat template.
    pub fn has_chat_template(&self) -> bool {
        self.chat_template.is_some()
    }

    /// Render the chat template for one user message (with the generation prompt appended).
    pub fn apply_chat_template(&self, user: &str) -> Result<String> {
        let Some(tpl) = &self.chat_template else {
            return Err(EngineError::Template(format!(
                "{}: no chat_template in tokenizer_config.json",
                self.path.display()
            )));
        };
        render_chat(tpl, user, &self.bos_token, &self.eos_token)
    }
}

/// Render a Hugging Face chat template with one user message and `add_generation_prompt`.
pub fn render_chat(template: &str, user: &str, bos: &str, eos: &str) -> Result<String> {
    let mut env = minijinja::Environment::new();
    env.add_function(
        "raise_exception",
        |msg: String| -> std::result::Result<String, minijinja::Error> {
            Err(minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                msg,
            ))
        },
    );
    env.add_template("chat", template)
        .map_err(|e| EngineError::Template(e.to_string()))?;
    let tpl = env
        .get_template("chat")
        .map_err(|e| EngineError::Template(e.to_string()))?;
    let messages = vec![serde_json::json!({"role": "user", "content": user})];
    tpl.render(minijinja::context! {
        messages => messages,
        add_generation_prompt => true,
        bos_token => bos,
        eos_token => eos,
    })
    .map_err(|e| EngineError::Template(e.to_string()))
}

/// Incremental detokenizer: feed ids one at a time, get the new text once it is complete UTF-8.
/// Decodes a short window of recent ids, so each step costs O(window), not O(all text).
#[derive(Default)]
pub struct StreamDecoder {
    ids: Vec<u32>,
    prefix_offset: usize,
    read_offset: usize,
}

impl StreamDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Add one token; returns the text it completes (possibly empty).
    pub fn push(&mut self, tok: &TextTokenizer, id: u32) -> Result<String> {
        self.ids.push(id);
        let prefix = tok.decode(&self.ids[self.prefix_offset..self.read_offset])?;
        let full = tok.decode(&self.ids[self.prefix_offset..])?;
        if full.len() > prefix.len()
            && !full.ends_with('\u{FFFD}')
            && full.is_char_boundary(prefix.len())
        {
            let new = full[prefix.len()..].to_string();
            self.prefix_offset = self.read_offset;
            self.read_offset = self.ids.len();
            Ok(new)
        } else {
            Ok(String::new())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SmolLM2-135M-Instruct's template, verbatim from its tokenizer_config.json.
    const SMOLLM2_TEMPLATE: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    #[test]
    fn smollm2_chat_template_renders_like_transformers() {
        let out = render_chat(SMOLLM2_TEMPLATE, "Hi there", "<|im_start|>", "<|im_end|>").unwrap();
        assert_eq!(
            out,
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn raise_exception_is_an_error_not_a_panic() {
        let e = render_chat("{{ raise_exception('no system role') }}", "x", "", "").unwrap_err();
        assert!(e.to_string().contains("no system role"), "{e}");
    }

    #[test]
    fn broken_template_is_an_error() {
        assert!(render_chat("{% for %}", "x", "", "").is_err());
    }
}
