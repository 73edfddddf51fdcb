//! DeepseekV3ForCausalLM against transformers: tiny random checkpoints and transformers' f32 logits
//! on them are committed fixtures (written by tools/ref_deepseek/make_fixtures.py), so this runs
//! without torch. Each fixture is checked in prefill (expanded MLA), token-by-token decode
//! (weight-absorbed MLA) and a two-chunk prefill (absorbed with a batch), on BF16 weights, on a
//! UE8M0 FP8 checkpoint (ue8's fp8-ue8m0 layout) and on a DeepSeek-V3 FP8 checkpoint with F32
//! scales loaded without conversion.

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
    let share = agree as f64 / n as f64;
    assert!(
        share >= TOP1_MIN_AGREEMENT,
        "{what}: top-1 agreement {share}"
    );
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

/// Prefill in one batch, decode token by token, and prefill in two chunks: all match transformers.
fn check_fixture(name: &str) {
    let dir = fixture(name);
    let r = reference(&dir);
    let ck = Checkpoint::open(&dir).unwrap();
    let cfg = DeepseekConfig::from_path(&dir).unwrap();
    let model = DeepseekModel::load(&ck, cfg).unwrap();
    let vocab = model.config.vocab_size;
    let mm = Matmul::new(1).unwrap();
    let n = r.tokens.len();
    let mut s = DeepseekSession::new(&model, &mm, n, n).unwrap();

    let prefill = s.forward(&r.tokens, Logits::All).unwrap().to_vec();
    compare(&format!("{name} prefill"), &prefill, &r, vocab);

    s.reset();
    let mut decode = Vec::with_capacity(n * vocab);
    for &t in &r.tokens {
        decode.extend_from_slice(s.forward(&[t], Logits::Last).unwrap());
    }
    compare(&format!("{name} decode"), &decode, &r, vocab);

    s.reset();
    let split = n / 3;
    let mut chunks = s.forward(&r.tokens[..split], Logits::All).unwrap().to_vec();
    chunks.extend_from_slice(s.forward(&r.tokens[split..], Logits::All).unwrap());
    compare(&format!("{name} two chunks"), &chunks, &r, vocab);
    assert_eq!(s.position(), n);
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
