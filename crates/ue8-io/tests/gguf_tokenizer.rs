//! tokenizer.json built from GGUF vocabularies against llama.cpp's own tokenizer.
//!
//! Fast (always): vocabulary-only GGUFs cut from SmolLM2's (tools/golden/gen_gguf.py), one per
//! supported pre-tokenizer, encode tests/fixtures/gguf/tokenizer-sample.txt to exactly the ids that
//! `llama-tokenize` gave for the same file (committed as vocab-<pre>.ids.json).
//! Slow (UE8_SLOW=1): the full SmolLM2 vocabulary on the Austen novels, compared with a live run of
//! `~/.cache/ue8-peers/llama.cpp/bin/llama-tokenize`.

use std::path::{Path, PathBuf};
use std::process::Command;

use ue8_io::gguf::tokenizer::{build_tokenizer, PreTokenizer};
use ue8_io::gguf::{GgufError, GgufFile};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/gguf")
        .join(name)
}

fn tokenizer_for(gguf: &Path) -> tokenizers::Tokenizer {
    let f = GgufFile::open(gguf).unwrap();
    let files = build_tokenizer(f.header(), gguf).unwrap();
    let text = serde_json::to_string(&files.tokenizer_json).unwrap();
    text.parse::<tokenizers::Tokenizer>().unwrap()
}

fn first_difference(a: &[u32], b: &[u32]) -> Option<usize> {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .or(if a.len() == b.len() {
            None
        } else {
            Some(a.len().min(b.len()))
        })
}

fn check_sample(pre: &str) {
    let tok = tokenizer_for(&fixture(&format!("vocab-{pre}.gguf")));
    let text = std::fs::read_to_string(fixture("tokenizer-sample.txt")).unwrap();
    // llama-tokenize -f drops nothing; it tokenizes the file's bytes as they are.
    let want: Vec<u32> =
        serde_json::from_slice(&std::fs::read(fixture(&format!("vocab-{pre}.ids.json"))).unwrap())
            .unwrap();
    let got = tok.encode(text.as_str(), true).unwrap().get_ids().to_vec();
    if let Some(i) = first_difference(&got, &want) {
        let lo = i.saturating_sub(3);
        panic!(
            "{pre}: first difference at id {i}: ue8 {:?}, llama-tokenize {:?}",
            &got[lo..(i + 4).min(got.len())],
            &want[lo..(i + 4).min(want.len())]
        );
    }
}

#[test]
fn smollm_matches_llama_tokenize() {
    check_sample("smollm");
}

#[test]
fn gpt2_matches_llama_tokenize() {
    check_sample("gpt-2");
}

#[test]
fn llama_bpe_matches_llama_tokenize() {
    check_sample("llama-bpe");
}

#[test]
fn qwen2_matches_llama_tokenize() {
    check_sample("qwen2");
}

#[test]
fn pre_tokenizer_names() {
    assert_eq!(
        PreTokenizer::from_gguf_name("smollm"),
        Some(PreTokenizer::Smollm)
    );
    assert_eq!(
        PreTokenizer::from_gguf_name("llama3"),
        Some(PreTokenizer::Llama3)
    );
    assert_eq!(PreTokenizer::from_gguf_name("deepseek-llm"), None);
    assert_eq!(PreTokenizer::from_gguf_name("default"), None);
    assert!(PreTokenizer::Llama3.default_add_bos());
    assert!(!PreTokenizer::Smollm.default_add_bos());
}

#[test]
fn llama_bpe_adds_bos_by_default() {
    // vocab-llama-bpe.gguf has no add_bos_token key: llama.cpp's default for llama-bpe is to add it.
    let p = fixture("vocab-llama-bpe.gguf");
    let f = GgufFile::open(&p).unwrap();
    let files = build_tokenizer(f.header(), &p).unwrap();
    assert!(files.add_bos);
    assert_eq!(files.tokenizer_config["add_bos_token"], true);
    let tok = tokenizer_for(&p);
    assert_eq!(
        tok.encode("Hello", true).unwrap().get_ids().first(),
        Some(&1)
    );
}

fn slow_enabled(what: &str) -> bool {
    if std::env::var("UE8_SLOW").as_deref() == Ok("1") {
        return true;
    }
    eprintln!("skipping {what}: set UE8_SLOW=1 to run it");
    false
}

/// The full SmolLM2 vocabulary on the Austen text, against a live llama-tokenize.
#[test]
fn smollm2_austen_matches_llama_tokenize_slow() {
    if !slow_enabled("the Austen tokenizer comparison") {
        return;
    }
    let home = PathBuf::from(std::env::var_os("HOME").unwrap_or_default());
    let model = home.join(".cache/ue8-data/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
    let text_path = home.join(".cache/ue8-data/austen/austen.txt");
    let bin = home.join(".cache/ue8-peers/llama.cpp/bin/llama-tokenize");
    for p in [&model, &text_path, &bin] {
        assert!(p.exists(), "UE8_SLOW=1 needs {}", p.display());
    }
    let tok = tokenizer_for(&model);
    let text = std::fs::read_to_string(&text_path).unwrap();
    let got = tok.encode(text.as_str(), true).unwrap().get_ids().to_vec();
    let out = Command::new(&bin)
        .args([
            "-m".as_ref(),
            model.as_os_str(),
            "-f".as_ref(),
            text_path.as_os_str(),
            "--ids".as_ref(),
            "--log-disable".as_ref(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "llama-tokenize failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let want: Vec<u32> = serde_json::from_str(stdout.lines().last().unwrap_or("[]")).unwrap();
    assert!(
        want.len() > 100_000,
        "llama-tokenize gave only {} ids",
        want.len()
    );
    assert_eq!(
        first_difference(&got, &want),
        None,
        "{} ue8 ids vs {} llama-tokenize ids",
        got.len(),
        want.len()
    );
}

#[test]
fn unsupported_tokenizers_are_refused_by_name() {
    // The tiny model with its pre-tokenizer name patched to one ue8 does not know (same length, so
    // the file stays valid).
    let mut bytes = std::fs::read(fixture("tiny-llama.gguf")).unwrap();
    let at = bytes.windows(6).position(|w| w == b"smollm").unwrap();
    bytes[at..at + 6].copy_from_slice(b"bloom!");
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.gguf");
    std::fs::write(&p, &bytes).unwrap();
    let f = GgufFile::open(&p).unwrap();
    let e = build_tokenizer(f.header(), &p).unwrap_err();
    assert!(
        matches!(e, GgufError::UnsupportedTokenizer { ref name, .. } if name == "bloom!"),
        "{e}"
    );
    assert!(
        e.to_string().contains("smollm"),
        "the message lists what is supported: {e}"
    );
}
