//! The engine's f32 logits against the independent numpy reference (tools/ref_forward), on tiny
//! random-weight checkpoints of every supported architecture and weight format (fixtures).

use std::path::{Path, PathBuf};
use ue8_engine::{Checkpoint, LlamaModel, Logits, Matmul, ModelConfig, Session};

/// Allowed |ue8 - reference| relative to the largest |logit| of the fixture. Derivation: the
/// reference is float64; ue8 computes in f32 (unit roundoff u = 2^-24 = 6e-8). Each logit passes
/// through 2 layers x 7 chained matmuls with K <= 272 plus norms and softmax; the worst-case bound
/// for a dot product is K*u relative to sum |x||w|, i.e. 272 * 6e-8 = 1.6e-5 per matmul, ~14 in a
/// chain plus the output projection: 15 * 1.6e-5 = 2.4e-4. A wrong rope, mask, bias or scale moves
/// logits by O(1), four orders above this.
const LOGIT_TOL_REL: f32 = 2.5e-4;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

struct Reference {
    tokens: Vec<u32>,
    logits: Vec<Vec<f32>>,
}

fn reference(dir: &Path) -> Reference {
    let text = std::fs::read_to_string(dir.join("reference.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let tokens = v["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_u64().unwrap() as u32)
        .collect();
    let logits = v["logits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            row.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect()
        })
        .collect();
    Reference { tokens, logits }
}

fn max_rel_err(got: &[f32], want: &[f32], scale: f32) -> f32 {
    assert_eq!(got.len(), want.len());
    got.iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs() / scale)
        .fold(0.0, f32::max)
}

/// Compare prefill-all, token-by-token decode and uneven batches against the reference.
fn check(name: &str) {
    let dir = fixture(name);
    let r = reference(&dir);
    let ck = Checkpoint::open(&dir).unwrap();
    let model = LlamaModel::load(&ck, ModelConfig::from_path(&dir).unwrap()).unwrap();
    let scale = r
        .logits
        .iter()
        .flatten()
        .fold(0.0f32, |a, &b| a.max(b.abs()));
    let v = model.config.vocab_size;
    let mm = Matmul::new(2).unwrap();
    let t = r.tokens.len();

    // one batch, all logits
    let mut s = Session::new(&model, &mm, 64, t).unwrap();
    let all = s.forward(&r.tokens, Logits::All).unwrap().to_vec();
    for (i, want) in r.logits.iter().enumerate() {
        let err = max_rel_err(&all[i * v..(i + 1) * v], want, scale);
        assert!(
            err <= LOGIT_TOL_REL,
            "{name}: prefill position {i}: rel err {err}"
        );
    }

    // one token at a time (decode path)
    let mut s = Session::new(&model, &mm, 64, 1).unwrap();
    for (i, want) in r.logits.iter().enumerate() {
        let got = s.forward(&r.tokens[i..i + 1], Logits::Last).unwrap();
        let err = max_rel_err(got, want, scale);
        assert!(
            err <= LOGIT_TOL_REL,
            "{name}: decode position {i}: rel err {err}"
        );
    }

    // uneven batches of 5: the last logits of each batch
    let mut s = Session::new(&model, &mm, 64, 5).unwrap();
    for chunk_start in (0..t).step_by(5) {
        let end = (chunk_start + 5).min(t);
        let got = s
            .forward(&r.tokens[chunk_start..end], Logits::Last)
            .unwrap();
        let err = max_rel_err(got, &r.logits[end - 1], scale);
        assert!(
            err <= LOGIT_TOL_REL,
            "{name}: batch ending {end}: rel err {err}"
        );
    }
}

#[test]
fn llama_bf16_tied_llama3_rope() {
    check("llama_bf16");
}
#[test]
fn qwen2_f32_qkv_bias() {
    check("qwen2_f32");
}
#[test]
fn qwen3_f16_qk_norm_head_dim() {
    check("qwen3_f16");
}
#[test]
fn mistral_sliding_window() {
    check("mistral_window");
}
#[test]
fn llama_fp8_ue8m0_f32_scales() {
    check("llama_fp8_ue8m0");
}
#[test]
fn llama_fp8_e8m0_scales_quantized_lm_head() {
    check("llama_fp8_e8m0_qhead");
}
#[test]
fn llama_mxfp8_e4m3() {
    check("llama_mxfp8");
}
#[test]
fn llama_mxfp6_e3m2_padded_rows() {
    check("llama_mxfp6_e3m2");
}
#[test]
fn llama_mxfp4_tied_padded_rows() {
    check("llama_mxfp4_tied");
}

/// ue8's perplexity on one chunk equals exp(mean NLL) computed here from the reference logits over
/// positions ctx/2 .. ctx-2 (llama-perplexity's scoring window).
#[test]
fn perplexity_scores_llama_perplexity_window() {
    let dir = fixture("llama_bf16");
    let r = reference(&dir);
    let ck = Checkpoint::open(&dir).unwrap();
    let model = LlamaModel::load(&ck, ModelConfig::from_path(&dir).unwrap()).unwrap();
    let mm = Matmul::new(1).unwrap();
    let ctx = 16;
    let mut s = Session::new(&model, &mm, ctx, 5).unwrap();
    let got = ue8_engine::perplexity::perplexity(
        &mut s,
        &r.tokens,
        ctx,
        Some(1),
        None,
        &mut |_, _, _| {},
    )
    .unwrap();
    let mut nll = 0.0f64;
    for j in ctx / 2..ctx - 1 {
        nll += ue8_engine::perplexity::nll(&r.logits[j], r.tokens[j + 1] as usize);
    }
    let want = (nll / (ctx / 2 - 1) as f64).exp();
    assert_eq!(got.tokens_scored, ctx / 2 - 1);
    assert_eq!(got.chunks, 1);
    let scale = r
        .logits
        .iter()
        .flatten()
        .fold(0.0f32, |a, &b| a.max(b.abs())) as f64;
    // each NLL moves by at most twice the logit tolerance (target logit and log-sum-exp)
    let nll_tol = 2.0 * LOGIT_TOL_REL as f64 * scale;
    assert!(
        (got.perplexity.ln() - want.ln()).abs() <= nll_tol,
        "{} vs {}",
        got.perplexity,
        want
    );
}

/// Allowed |ue8 int8 - reference| relative to the largest |logit| with `Activations::Int8`. Each of
/// the 15 chained matmuls (2 layers x 7, plus the output projection) sees activations moved by up to
/// half a step of their 32-column block, 1/254 of the block's largest magnitude; to first order
/// these add: 15 / 254 = 5.9e-2. A mis-scaled block or a swapped nibble moves logits by O(1).
const INT8_LOGIT_TOL_REL: f32 = 5.9e-2;

#[test]
fn llama_mxfp4_int8_activations_stay_within_the_quantization_budget() {
    use ue8_engine::kernels::Activations;
    let dir = fixture("llama_mxfp4_tied");
    let r = reference(&dir);
    let ck = Checkpoint::open(&dir).unwrap();
    let model = LlamaModel::load(&ck, ModelConfig::from_path(&dir).unwrap()).unwrap();
    let scale = r
        .logits
        .iter()
        .flatten()
        .fold(0.0f32, |a, &b| a.max(b.abs()));
    let v = model.config.vocab_size;
    let t = r.tokens.len();
    let mut mm = Matmul::new(2).unwrap();
    mm.set_activations(Activations::Int8);
    let mut s = Session::new(&model, &mm, 64, t).unwrap();
    let all = s.forward(&r.tokens, Logits::All).unwrap().to_vec();
    let mut worst = 0f32;
    for (i, want) in r.logits.iter().enumerate() {
        worst = worst.max(max_rel_err(&all[i * v..(i + 1) * v], want, scale));
    }
    assert!(worst <= INT8_LOGIT_TOL_REL, "prefill: rel err {worst}");
    // The int8 path really ran: exact f32 logits would be within LOGIT_TOL_REL.
    assert!(
        worst > LOGIT_TOL_REL,
        "int8 logits equal the f32 ones ({worst})"
    );
    let mut s = Session::new(&model, &mm, 64, 1).unwrap();
    for (i, want) in r.logits.iter().enumerate() {
        let got = s.forward(&r.tokens[i..i + 1], Logits::Last).unwrap();
        let err = max_rel_err(got, want, scale);
        assert!(
            err <= INT8_LOGIT_TOL_REL,
            "decode position {i}: rel err {err}"
        );
    }
}
