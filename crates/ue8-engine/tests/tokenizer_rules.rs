//! The BOS rule of issue 8 item 7 and EOS handling, on a tiny word-level tokenizer written here.

use std::path::Path;
use ue8_engine::tokenizer::{StreamDecoder, TextTokenizer};

fn tokenizer_json(post_processor_adds_bos: bool) -> String {
    let post = if post_processor_adds_bos {
        r#"{"type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [0], "tokens": ["<s>"]}}}"#
    } else {
        "null"
    };
    format!(
        r#"{{"version": "1.0", "truncation": null, "padding": null,
  "added_tokens": [
    {{"id": 0, "content": "<s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}},
    {{"id": 1, "content": "</s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}}],
  "normalizer": null,
  "pre_tokenizer": {{"type": "Whitespace"}},
  "post_processor": {post},
  "decoder": null,
  "model": {{"type": "WordLevel", "vocab": {{"<s>": 0, "</s>": 1, "hello": 2, "world": 3, "[UNK]": 4}}, "unk_token": "[UNK]"}}}}"#
    )
}

fn make(dir: &Path, post_bos: bool, add_bos_token: Option<bool>) -> TextTokenizer {
    std::fs::write(dir.join("tokenizer.json"), tokenizer_json(post_bos)).unwrap();
    let mut tc = serde_json::json!({"bos_token": "<s>", "eos_token": "</s>"});
    if let Some(b) = add_bos_token {
        tc["add_bos_token"] = serde_json::json!(b);
    }
    std::fs::write(dir.join("tokenizer_config.json"), tc.to_string()).unwrap();
    // config.json's bos_token_id (0) alone must add nothing
    TextTokenizer::from_dir(dir, Some(0), &[]).unwrap()
}

#[test]
fn bos_added_only_when_the_tokenizer_says_so() {
    let d = tempfile::tempdir().unwrap();
    assert_eq!(
        make(d.path(), false, None).encode("hello world").unwrap(),
        [2, 3]
    );
    assert_eq!(
        make(d.path(), false, Some(false))
            .encode("hello world")
            .unwrap(),
        [2, 3]
    );
    let t = make(d.path(), false, Some(true));
    assert_eq!(t.encode("hello world").unwrap(), [0, 2, 3]);
    assert_eq!(t.adds_bos(), Some(0));
}

#[test]
fn bos_from_post_processor_is_kept_and_never_doubled() {
    let d = tempfile::tempdir().unwrap();
    assert_eq!(
        make(d.path(), true, None).encode("hello world").unwrap(),
        [0, 2, 3]
    );
    assert_eq!(
        make(d.path(), true, Some(true))
            .encode("hello world")
            .unwrap(),
        [0, 2, 3]
    );
}

#[test]
fn eos_from_tokenizer_config_stops_and_stream_decodes_words() {
    let d = tempfile::tempdir().unwrap();
    let t = make(d.path(), false, None);
    assert!(t.is_eos(1));
    assert!(!t.is_eos(2));
    let mut s = StreamDecoder::new();
    let text: String = [2u32, 3, 2]
        .iter()
        .map(|&id| s.push(&t, id).unwrap())
        .collect();
    assert_eq!(text, t.decode(&[2, 3, 2]).unwrap());
}

#[test]
fn missing_tokenizer_is_an_error_naming_the_file() {
    let d = tempfile::tempdir().unwrap();
    let e = TextTokenizer::from_dir(d.path(), None, &[]).err().unwrap();
    assert!(e.to_string().contains("tokenizer.json"), "{e}");
}
