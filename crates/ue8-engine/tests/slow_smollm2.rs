//! Real-model checks on SmolLM2-135M-Instruct (run with UE8_SLOW=1; they skip, passing, otherwise):
//! - imported at F32, ue8's logits match the numpy reference (tools/ref_forward) within a tolerance;
//! - ue8's perplexity on Austen is within 1% of llama-perplexity on the original GGUF (same ctx);
//! - greedy generation gives the same text as llama-completion at temperature 0.
//!
//! Data: the GGUF from shared/data/fetch-smollm2.sh, Austen from fetch-austen.sh, llama.cpp tools
//! from shared/peers/build-llama-cpp.sh (UE8_DATA, LLAMA_BIN override the default places).

use std::path::{Path, PathBuf};
use std::process::Command;
use ue8_engine::generate::greedy_tokens;
use ue8_engine::perplexity::{perplexity, prepare_text};
use ue8_engine::tokenizer::TextTokenizer;
use ue8_engine::{Checkpoint, LlamaModel, Logits, Matmul, ModelConfig, Session};

/// |ue8 - numpy| / max|logit| on SmolLM2 (30 layers, K up to 1536). Rounding errors of f32 dot
/// products grow like sqrt(K) * u on average (u = 6e-8): sqrt(1536) * 6e-8 = 2.4e-6 per matmul, over
/// 30 layers x 7 matmuls = 210 in a chain, about 5e-4; the normalizations keep it from compounding
/// further. 1e-3 is that figure with a factor 2 of headroom.
const SMOLLM2_LOGIT_TOL_REL: f32 = 1e-3;
/// Issue 5: ue8 on the F32 import vs llama-perplexity on the original GGUF (which quantizes the
/// activations to Q8 for its Q4_1 matmuls: interop.md section 5 reports 0.07-0.3% for numpy).
const PPL_VS_LLAMA_CPP_REL: f64 = 0.01;

fn slow() -> bool {
    if std::env::var("UE8_SLOW").as_deref() == Ok("1") {
        true
    } else {
        eprintln!("skipped: set UE8_SLOW=1 to run the SmolLM2 checks (needs the fetched data and llama.cpp)");
        false
    }
}

fn data_dir() -> PathBuf {
    std::env::var_os("UE8_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/ue8-data")
        })
}

fn gguf() -> PathBuf {
    data_dir().join("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
}

fn llama_bin(tool: &str) -> PathBuf {
    std::env::var_os("LLAMA_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/ue8-peers/llama.cpp/bin")
        })
        .join(tool)
}

fn import_f32(out: &Path) {
    use ue8_io::gguf::import::{import_gguf, ImportDtype, ImportOptions};
    import_gguf(
        &gguf(),
        out,
        &ImportOptions {
            dtype: ImportDtype::F32,
            force: true,
        },
    )
    .expect("import the SmolLM2 GGUF (fetch it with shared/data/fetch-smollm2.sh)");
}

#[test]
fn smollm2_f32_logits_match_numpy_reference() {
    if !slow() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("smol");
    import_f32(&dir);
    let cfg = ModelConfig::from_path(&dir).unwrap();
    let tok = TextTokenizer::from_dir(&dir, cfg.bos_token_id, &cfg.eos_token_ids).unwrap();
    let ids = tok
        .encode("It is a truth universally acknowledged, that a single man")
        .unwrap();
    let ck = Checkpoint::open(&dir).unwrap();
    let model = LlamaModel::load(&ck, cfg).unwrap();
    let mm = Matmul::new(2).unwrap();
    let mut s = Session::new(&model, &mm, 64, 64).unwrap();
    let got = s.forward(&ids, Logits::All).unwrap().to_vec();
    let json = tmp.path().join("ref.json");
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/ref_forward/ref_forward.py");
    let status = Command::new("python3")
        .arg(&script)
        .arg("--dump")
        .arg(&json)
        .arg(&dir)
        .args(ids.iter().map(|t| t.to_string()))
        .status()
        .unwrap();
    assert!(
        status.success(),
        "numpy reference failed (pip install -r tools/ref_forward/requirements.txt)"
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let want: Vec<f32> = v["logits"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
        })
        .collect();
    assert_eq!(want.len(), got.len());
    let scale = want.iter().fold(0.0f32, |a, &b| a.max(b.abs()));
    let err = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max)
        / scale;
    eprintln!("SmolLM2 F32 logits: max |ue8 - numpy| / max|logit| = {err:.2e}");
    assert!(err <= SMOLLM2_LOGIT_TOL_REL, "{err}");
}

#[test]
fn smollm2_perplexity_and_greedy_text_match_llama_cpp() {
    if !slow() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("smol");
    import_f32(&dir);
    let text_path = data_dir().join("austen/pride_and_prejudice.txt");
    let text =
        std::fs::read_to_string(&text_path).expect("fetch Austen with shared/data/fetch-austen.sh");
    let (ctx, chunks) = (512, 4);
    let cfg = ModelConfig::from_path(&dir).unwrap();
    let tok = TextTokenizer::from_dir(&dir, cfg.bos_token_id, &cfg.eos_token_ids).unwrap();
    let ck = Checkpoint::open(&dir).unwrap();
    let model = LlamaModel::load(&ck, cfg).unwrap();
    let mm = Matmul::new(2).unwrap();
    let mut s = Session::new(&model, &mm, ctx, ctx).unwrap();
    let ids = tok.encode(prepare_text(&text)).unwrap();
    let ours = perplexity(
        &mut s,
        &ids,
        ctx,
        Some(chunks),
        tok.adds_bos(),
        &mut |_, _, _| {},
    )
    .unwrap();

    let out = Command::new(llama_bin("llama-perplexity"))
        .arg("-m")
        .arg(gguf())
        .arg("-f")
        .arg(&text_path)
        .args(["-c", "512", "--chunks", "4", "-t", "2"])
        .output()
        .expect("llama-perplexity (build it with shared/peers/build-llama-cpp.sh)");
    let log =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    let theirs: f64 = log
        .split("Final estimate: PPL = ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|x| x.parse().ok())
        .unwrap_or_else(|| panic!("no PPL in llama-perplexity output:\n{log}"));
    let rel = ours.perplexity / theirs - 1.0;
    eprintln!(
        "perplexity ue8 {:.4} vs llama.cpp {theirs:.4} ({:+.2}%)",
        ours.perplexity,
        rel * 100.0
    );
    assert!(rel.abs() <= PPL_VS_LLAMA_CPP_REL, "{rel}");

    // greedy continuation: same text as llama-completion at temperature 0
    let prompt = "The capital of France is";
    let n = 12;
    let mut s = Session::new(&model, &mm, 128, 64).unwrap();
    let toks = greedy_tokens(&mut s, &tok.encode(prompt).unwrap(), n).unwrap();
    let ours = tok.decode(&toks).unwrap();
    let out = Command::new(llama_bin("llama-completion"))
        .arg("-m")
        .arg(gguf())
        .args([
            "-p",
            prompt,
            "-n",
            &n.to_string(),
            "--temp",
            "0",
            "-no-cnv",
            "-t",
            "2",
            "--no-warmup",
        ])
        .output()
        .unwrap();
    let theirs = String::from_utf8_lossy(&out.stdout).to_string();
    eprintln!("ue8: {ours:?}\nllama.cpp: {theirs:?}");
    // Compare the first words (" Paris." then "\n\nThe"): llama.cpp runs Q4_1 weights with Q8_1
    // activations, ue8 the exact F32 import with f32 activations; on this prompt the two then part
    // at a near-tie (" answer" vs " United"), measured 2026-11-25 and recorded in docs/engine.md.
    let first = |s: &str| s.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
    let theirs_gen = theirs.split(prompt).nth(1).unwrap_or(&theirs).to_string();
    assert_eq!(first(&ours), first(&theirs_gen));
}
