//! `ue8 run`, `perplexity` and `bench` end to end on a tiny fixture model of the engine's tests,
//! with a word-level tokenizer written here: JSON contracts (issue 8 item 1), determinism, errors.

use std::path::{Path, PathBuf};
use std::process::Command;

fn ue8() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ue8"))
}

/// A copy of the engine's `llama_bf16` fixture (vocab 97) with a tokenizer: word `wI` is token I.
fn model_dir(tmp: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ue8-engine/tests/fixtures/llama_bf16");
    let dir = tmp.join("model");
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    let vocab: serde_json::Map<String, serde_json::Value> = (0..97)
        .map(|i| (format!("w{i}"), serde_json::json!(i)))
        .collect();
    let tok = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": null, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null,
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "w0"}
    });
    std::fs::write(dir.join("tokenizer.json"), tok.to_string()).unwrap();
    std::fs::write(
        dir.join("tokenizer_config.json"),
        r#"{"add_bos_token": false}"#,
    )
    .unwrap();
    dir
}

fn text_file(tmp: &Path, words: usize) -> PathBuf {
    let text: Vec<String> = (0..words)
        .map(|i| format!("w{}", (i * 7 + 3) % 97))
        .collect();
    let p = tmp.join("text.txt");
    std::fs::write(&p, text.join(" ") + "\n").unwrap();
    p
}

#[test]
fn perplexity_json_is_one_document_with_exactly_two_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = model_dir(tmp.path());
    let text = text_file(tmp.path(), 40);
    let out = ue8()
        .args(["perplexity"])
        .arg(&dir)
        .arg("--file")
        .arg(&text)
        .args(["--ctx", "16", "--json", "-t", "1"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let obj = v.as_object().unwrap();
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["perplexity", "tokens_scored"]);
    // 40 tokens -> 2 chunks of 16, each scoring 16/2 - 1 = 7 positions
    assert_eq!(v["tokens_scored"], 14);
    let ppl = v["perplexity"].as_f64().unwrap();
    assert!(ppl.is_finite() && ppl > 1.0, "{ppl}");
}

#[test]
fn perplexity_with_fewer_tokens_than_a_chunk_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = model_dir(tmp.path());
    let text = text_file(tmp.path(), 5);
    let out = ue8()
        .arg("perplexity")
        .arg(&dir)
        .arg("--file")
        .arg(&text)
        .args(["--ctx", "16", "--json"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("fewer than one chunk"));
}

#[test]
fn bench_json_has_means_and_stddevs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = model_dir(tmp.path());
    let out = ue8()
        .arg("bench")
        .arg(&dir)
        .args(["-p", "8", "-n", "4", "-r", "2", "-t", "1", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for k in [
        "pp_tokens_per_s",
        "tg_tokens_per_s",
        "pp_stddev",
        "tg_stddev",
    ] {
        let x = v[k].as_f64().unwrap_or(-1.0);
        assert!(x.is_finite() && x >= 0.0, "{k} = {x}");
    }
    assert!(v["pp_tokens_per_s"].as_f64().unwrap() > 0.0);
}

#[test]
fn greedy_run_is_deterministic_and_matches_across_thread_counts() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = model_dir(tmp.path());
    let go = |threads: &str| {
        let out = ue8()
            .arg("run")
            .arg(&dir)
            .args([
                "--prompt",
                "w5 w17 w3",
                "--max-tokens",
                "6",
                "--temperature",
                "0",
                "-t",
                threads,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let a = go("1");
    assert!(a.starts_with("w5 w17 w3"), "{a}");
    assert!(a.split_whitespace().count() > 3, "{a}");
    assert_eq!(a, go("2"));
}

#[test]
fn run_on_a_missing_model_names_the_path() {
    let out = ue8()
        .args(["run", "/nonexistent/model", "--prompt", "x"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/model"));
}
