//! DeepseekV3ForCausalLM against transformers: tiny random checkpoints and transformers' f32 logits
//! on them are committed fixtures (written by tools/ref_deepseek/make_fixtures.py), so this runs
//! without torch. Each fixture is checked in prefill (expanded MLA), token-by-token decode
//! (weight-absorbed MLA) and a two-chunk prefill (absorbed with a batch), on BF16 weights, on a
//! UE8M0 FP8 checkpoint (ue8's fp8-ue8m0 layout) and on a DeepSeek-V3 FP8 checkpoint with F32
//! scales loaded without conversion. A third shape has SmolLM2's 49152-token vocabulary, runs on
//! SmolLM2's tokenization of the repo's demo text and is compared through per-position NLL,
//! log-sum-exp and top-K logits (its full logits would be 50 MB); with UE8_SLOW=1 ue8's own
//! tokenizer must give the same ids.

use std::path::{Path, PathBuf};
use ue8_engine::checkpoint::Checkpoint;
use ue8_engine::config_deepseek::DeepseekConfig;
use ue8_engine::models::deepseek::mla::MlaMode;
use ue8_engine::models::deepseek::{DeepseekModel, DeepseekSession};
use ue8_engine::{Logits, Matmul};

/// Issue 10's target: mean NLL within 0.05% of transformers' f32 forward pass.
const NLL_REL_TOL: f64 = 5e-4;
/// Issue 10's target: top-1 agreement with transformers of at least 99.5%.
const TOP1_MIN_AGREEMENT: f64 = 0.995;

/// `agree` of `n` positions have ue8's top-1 token equal to transformers': at least the target share.
fn assert_top1_agreement(what: &str, agree: usize, n: usize) {
    let share = agree as f64 / n as f64;
    assert!(
        share >= TOP1_MIN_AGREEMENT,
        "{what}: top-1 agreement {share}"
    );
}
/// Largest |logit - reference| allowed, relative to the largest reference |logit|. Both sides are
/// f32 with reductions of at most 512 terms per matmul over a few layers: a few 1e-5 relative
/// error is what reordered f32 sums give; 1e-3 leaves room for that and still catches any wrong
/// scale, rope frequency, routing choice or norm (each moves logits by percents).
const LOGIT_REL_TOL: f32 = 1e-3;
/// Absorbed and expanded MLA compute the same sums in a different order: f32 rounding only.
const MLA_FORMS_REL_TOL: f32 = 1e-4;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/deepseek")
        .join(name)
}

struct Reference {
    tokens: Vec<u32>,
    logits: Vec<f32>,
    mean_nll: f64,
}

fn reference(dir: &Path) -> Reference {
    let ck = Checkpoint::open(&dir.join("reference.safetensors")).unwrap();
    let tokens = ck
        .tensor("tokens", "reference tokens")
        .unwrap()
        .data
        .chunks_exact(4)
        .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as u32)
        .collect();
    let logits = ck
        .tensor("logits", "reference logits")
        .unwrap()
        .to_f32_vec()
        .unwrap();
    let nll = ck.tensor("mean_nll", "reference NLL").unwrap().data;
    let mean_nll = f64::from_le_bytes(nll[..8].try_into().unwrap());
    Reference {
        tokens,
        logits,
        mean_nll,
    }
}

/// Mean negative log-likelihood of tokens[1..] given logits of tokens[..n-1] (f64 log-sum-exp).
fn mean_nll(logits: &[f32], tokens: &[u32], vocab: usize) -> f64 {
    let n = tokens.len() - 1;
    let mut total = 0.0f64;
    for i in 0..n {
        let row = &logits[i * vocab..(i + 1) * vocab];
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let lse = row
            .iter()
            .map(|&v| (v as f64 - max).exp())
            .sum::<f64>()
            .ln()
            + max;
        total += lse - row[tokens[i + 1] as usize] as f64;
    }
    total / n as f64
}

fn compare(what: &str, got: &[f32], r: &Reference, vocab: usize) {
    assert_eq!(got.len(), r.logits.len(), "{what}: logits shape");
    let scale = r.logits.iter().fold(0.0f32, |a, &v| a.max(v.abs()));
    let worst = got
        .iter()
        .zip(&r.logits)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        worst <= LOGIT_REL_TOL * scale,
        "{what}: max |logit diff| {worst} > {LOGIT_REL_TOL} * {scale}"
    );
    let n = r.tokens.len();
    let agree = (0..n)
        .filter(|&i| {
            ue8_engine::sampler::argmax(&got[i * vocab..(i + 1) * vocab])
                == ue8_engine::sampler::argmax(&r.logits[i * vocab..(i + 1) * vocab])
        })
        .count();
    assert_top1_agreement(what, agree, n);
    let nll = mean_nll(got, &r.tokens, vocab);
    let rel = (nll - r.mean_nll).abs() / r.mean_nll;
    eprintln!(
        "{what}: max |dlogit| {worst:.3e} (scale {scale:.2}), top-1 {agree}/{n}, mean NLL {nll:.6} vs {:.6} (rel {rel:.2e})",
        r.mean_nll
    );
    assert!(
        rel <= NLL_REL_TOL,
        "{what}: mean NLL {nll} vs transformers {} (rel {rel})",
        r.mean_nll
    );
}

/// Runs `tokens` through the checkpoint in `dir` three ways -- prefill in one batch, decode token by
/// token, prefill in two chunks -- and hands each [T, vocab] logits to `check` with its label.
fn three_ways(dir: &Path, tokens: &[u32], mut check: impl FnMut(&str, &[f32], usize)) {
    let ck = Checkpoint::open(dir).unwrap();
    let cfg = DeepseekConfig::from_path(dir).unwrap();
    let model = DeepseekModel::load(&ck, cfg).unwrap();
    let vocab = model.config.vocab_size;
    let mm = Matmul::new(1).unwrap();
    let n = tokens.len();
    let mut s = DeepseekSession::new(&model, &mm, n, n).unwrap();

    let prefill = s.forward(tokens, Logits::All).unwrap().to_vec();
    check("prefill", &prefill, vocab);
    drop(prefill);

    s.reset();
    let mut decode = Vec::with_capacity(n * vocab);
    for &t in tokens {
        decode.extend_from_slice(s.forward(&[t], Logits::Last).unwrap());
    }
    check("decode", &decode, vocab);
    drop(decode);

    s.reset();
    let split = n / 3;
    let mut chunks = s.forward(&tokens[..split], Logits::All).unwrap().to_vec();
    chunks.extend_from_slice(s.forward(&tokens[split..], Logits::All).unwrap());
    check("two chunks", &chunks, vocab);
    assert_eq!(s.position(), n);
}

/// Prefill in one batch, decode token by token, and prefill in two chunks: all match transformers.
fn check_fixture(name: &str) {
    let dir = fixture(name);
    let r = reference(&dir);
    three_ways(&dir, &r.tokens, |how, logits, vocab| {
        compare(&format!("{name} {how}"), logits, &r, vocab)
    });
}

#[test]
fn tiny_a_bf16_matches_transformers() {
    check_fixture("tiny_a_bf16");
}

#[test]
fn tiny_a_fp8_ue8m0_matches_transformers_on_the_same_dequantized_weights() {
    check_fixture("tiny_a_fp8_ue8m0");
}

#[test]
fn tiny_b_bf16_matches_transformers() {
    check_fixture("tiny_b_bf16");
}

#[test]
fn tiny_b_deepseek_fp8_with_f32_scales_runs_without_conversion() {
    check_fixture("tiny_b_fp8_f32");
}

/// The SmolLM2-vocabulary fixture's reference (make_fixtures.py's docstring): per position the NLL of
/// the next token, the log-sum-exp and the K largest logits with their ids, plus the whole last row.
struct VocabReference {
    tokens: Vec<u32>,
    /// The tokens are SmolLM2's encoding of the demo text's first `text_bytes` bytes.
    text_bytes: usize,
    nll: Vec<f64>,
    mean_nll: f64,
    logsumexp: Vec<f64>,
    top_k: usize,
    top_ids: Vec<u32>,
    top_logits: Vec<f32>,
    last_logits: Vec<f32>,
}

fn f64s(ck: &Checkpoint, name: &str) -> Vec<f64> {
    ck.tensor(name, "reference")
        .unwrap()
        .data
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn vocab_reference(dir: &Path) -> VocabReference {
    let ck = Checkpoint::open(&dir.join("reference.safetensors")).unwrap();
    let i32s = |name: &str| -> Vec<u32> {
        ck.tensor(name, "reference")
            .unwrap()
            .data
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes(c.try_into().unwrap()) as u32)
            .collect()
    };
    let f32s = |name: &str| ck.tensor(name, "reference").unwrap().to_f32_vec().unwrap();
    let tokens = i32s("tokens");
    let top_ids = i32s("top_ids");
    let text_bytes = ck.tensor("text_bytes", "reference").unwrap().data;
    VocabReference {
        top_k: top_ids.len() / tokens.len(),
        text_bytes: i64::from_le_bytes(text_bytes[..8].try_into().unwrap()) as usize,
        nll: f64s(&ck, "nll"),
        mean_nll: f64s(&ck, "mean_nll")[0],
        logsumexp: f64s(&ck, "logsumexp"),
        top_logits: f32s("top_logits"),
        last_logits: f32s("last_logits"),
        tokens,
        top_ids,
    }
}

/// log(sum(exp(row))) in f64, as the generator computes it.
fn logsumexp(row: &[f32]) -> f64 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    row.iter()
        .map(|&v| (v as f64 - max).exp())
        .sum::<f64>()
        .ln()
        + max
}

/// The same targets as `compare` over what the reference keeps: mean NLL over every position (issue
/// 10's 0.05%), top-1 agreement at every position (99.5%), and LOGIT_REL_TOL x the largest stored
/// |logit| on the stored logits (the K largest of each position and the whole last row) and on each
/// position's log-sum-exp (|lse(a) - lse(b)| <= max |a - b|, so the logit bound covers it).
fn compare_vocab(what: &str, got: &[f32], r: &VocabReference, vocab: usize) {
    let n = r.tokens.len();
    assert_eq!(got.len(), n * vocab, "{what}: logits shape");
    let row = |i: usize| &got[i * vocab..(i + 1) * vocab];
    let scale = r
        .top_logits
        .iter()
        .chain(&r.last_logits)
        .fold(0.0f32, |a, &v| a.max(v.abs()));
    let tol = LOGIT_REL_TOL * scale;
    let mut worst = 0.0f32;
    for i in 0..n {
        for j in 0..r.top_k {
            let id = r.top_ids[i * r.top_k + j] as usize;
            worst = worst.max((row(i)[id] - r.top_logits[i * r.top_k + j]).abs());
        }
    }
    for (a, b) in row(n - 1).iter().zip(&r.last_logits) {
        worst = worst.max((a - b).abs());
    }
    assert!(
        worst <= tol,
        "{what}: max |logit diff| {worst} > {LOGIT_REL_TOL} * {scale}"
    );
    let lse_worst = (0..n)
        .map(|i| (logsumexp(row(i)) - r.logsumexp[i]).abs())
        .fold(0.0f64, f64::max);
    assert!(
        lse_worst <= tol as f64,
        "{what}: max |log-sum-exp diff| {lse_worst} > {tol}"
    );
    let agree = (0..n)
        .filter(|&i| ue8_engine::sampler::argmax(row(i)) == r.top_ids[i * r.top_k])
        .count();
    assert_top1_agreement(what, agree, n);
    let nll = mean_nll(got, &r.tokens, vocab);
    let worst_pos = (0..n - 1)
        .map(|i| (logsumexp(row(i)) - row(i)[r.tokens[i + 1] as usize] as f64 - r.nll[i]).abs())
        .fold(0.0f64, f64::max);
    let rel = (nll - r.mean_nll).abs() / r.mean_nll;
    eprintln!(
        "{what}: max |dlogit| {worst:.3e} (scale {scale:.2}), max |dlse| {lse_worst:.3e}, max |dNLL| per \
         position {worst_pos:.3e}, top-1 {agree}/{n}, mean NLL {nll:.6} vs {:.6} (rel {rel:.2e})",
        r.mean_nll
    );
    assert!(
        rel <= NLL_REL_TOL,
        "{what}: mean NLL {nll} vs transformers {} (rel {rel})",
        r.mean_nll
    );
}

const VOCAB_FIXTURE: &str = "tiny_c_smollm2_vocab_bf16";

#[test]
fn tiny_c_smollm2_vocabulary_on_austen_matches_transformers() {
    let dir = fixture(VOCAB_FIXTURE);
    let r = vocab_reference(&dir);
    assert_eq!(r.nll.len(), r.tokens.len() - 1);
    let cfg = DeepseekConfig::from_path(&dir).unwrap();
    assert_eq!(cfg.vocab_size, 49152, "SmolLM2's vocabulary");
    three_ways(&dir, &r.tokens, |how, logits, vocab| {
        compare_vocab(&format!("{VOCAB_FIXTURE} {how}"), logits, &r, vocab)
    });
}

/// ue8's tokenizer over SmolLM2's tokenizer.json (imported from the GGUF: 3.5 MB, not committed)
/// gives the fixture's ids for the same text. UE8_SLOW=1 (needs shared/data/fetch-smollm2.sh).
#[test]
fn tiny_c_tokens_are_ue8s_smollm2_encoding_of_the_demo_text() {
    if std::env::var("UE8_SLOW").as_deref() != Ok("1") {
        eprintln!(
            "skipped: set UE8_SLOW=1 to check ue8's SmolLM2 tokenizer against the fixture ids"
        );
        return;
    }
    use ue8_io::gguf::import::{import_gguf, ImportDtype, ImportOptions};
    let data = std::env::var_os("UE8_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/ue8-data")
        });
    let tmp = tempfile::tempdir().unwrap();
    let smol = tmp.path().join("smol");
    import_gguf(
        &data.join("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),
        &smol,
        &ImportOptions {
            dtype: ImportDtype::Bf16,
            force: true,
        },
    )
    .expect("import the SmolLM2 GGUF (fetch it with shared/data/fetch-smollm2.sh)");
    let cfg = ue8_engine::ModelConfig::from_path(&smol).unwrap();
    let tok =
        ue8_engine::tokenizer::TextTokenizer::from_dir(&smol, cfg.bos_token_id, &cfg.eos_token_ids)
            .unwrap();
    let r = vocab_reference(&fixture(VOCAB_FIXTURE));
    let text = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/demo/pride_and_prejudice_ch1-6.txt"),
    )
    .unwrap();
    let text = std::str::from_utf8(&text[..r.text_bytes]).unwrap();
    assert_eq!(tok.encode(text).unwrap(), r.tokens);
}

#[test]
fn absorbed_and_expanded_prefill_agree() {
    for name in ["tiny_a_bf16", "tiny_b_fp8_f32"] {
        let dir = fixture(name);
        let r = reference(&dir);
        let ck = Checkpoint::open(&dir).unwrap();
        let model = DeepseekModel::load(&ck, DeepseekConfig::from_path(&dir).unwrap()).unwrap();
        // two workers: the absorbed form shares heads out over the pool
        let mm = Matmul::new(2).unwrap();
        let n = r.tokens.len();
        let mut s = DeepseekSession::new(&model, &mm, n, n).unwrap();
        s.set_mla_mode(MlaMode::Expanded);
        let expanded = s.forward(&r.tokens, Logits::All).unwrap().to_vec();
        s.reset();
        s.set_mla_mode(MlaMode::Absorbed);
        let absorbed = s.forward(&r.tokens, Logits::All).unwrap().to_vec();
        let scale = expanded.iter().fold(0.0f32, |a, &v| a.max(v.abs()));
        let worst = expanded
            .iter()
            .zip(&absorbed)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(
            worst <= MLA_FORMS_REL_TOL * scale,
            "{name}: absorbed vs expanded differ by {worst} (scale {scale})"
        );
        assert_ne!(expanded, vec![0.0; expanded.len()]);
    }
}

#[test]
fn mtp_layer_is_recognised_and_skipped_and_cache_holds_only_latents() {
    let dir = fixture("tiny_a_bf16");
    let ck = Checkpoint::open(&dir).unwrap();
    let model = DeepseekModel::load(&ck, DeepseekConfig::from_path(&dir).unwrap()).unwrap();
    let c = &model.config;
    assert_eq!(c.num_nextn_predict_layers, 1);
    assert!(ck.contains("model.layers.3.eh_proj.weight"));
    assert_eq!(model.mtp_layers_skipped, 1);
    assert_eq!(model.layers.len(), 3);
    let mm = Matmul::new(1).unwrap();
    let s = DeepseekSession::new(&model, &mm, 10, 4).unwrap();
    // (kv_lora_rank 64 + qk_rope_head_dim 16) f32 per token per layer; no expanded K/V
    assert_eq!(s.kv_cache_bytes(), 3 * 10 * (64 + 16) * 4);
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    let dir = fixture("tiny_b_bf16");
    let ck = Checkpoint::open(&dir).unwrap();
    let model = DeepseekModel::load(&ck, DeepseekConfig::from_path(&dir).unwrap()).unwrap();
    let mm = Matmul::new(1).unwrap();
    let mut s = DeepseekSession::new(&model, &mm, 4, 2).unwrap();
    assert!(s.forward(&[], Logits::Last).is_err());
    assert!(
        s.forward(&[1, 2, 3], Logits::Last).is_err(),
        "batch too large"
    );
    assert!(
        s.forward(&[100_000], Logits::Last).is_err(),
        "token out of range"
    );
    s.forward(&[2, 3], Logits::None).unwrap();
    s.forward(&[4, 5], Logits::None).unwrap();
    assert!(s.forward(&[6], Logits::Last).is_err(), "context full");
    assert!(DeepseekSession::new(&model, &mm, 0, 1).is_err());
}

#[test]
fn model_family_is_detected_from_config_json() {
    assert!(ue8_engine::config_deepseek::is_deepseek_dir(&fixture("tiny_a_bf16")).unwrap());
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.json"),
        r#"{"architectures": ["LlamaForCausalLM"]}"#,
    )
    .unwrap();
    assert!(!ue8_engine::config_deepseek::is_deepseek_dir(dir.path()).unwrap());
    assert!(ue8_engine::config_deepseek::is_deepseek_dir(&dir.path().join("missing")).is_err());
}
