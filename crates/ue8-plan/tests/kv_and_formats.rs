//! KV-cache bytes against hand-computed values, and weight bytes of each format.

use proptest::prelude::*;
use ue8_plan::builtin::load_model;
use ue8_plan::format::{Element, FormatOptions};
use ue8_plan::kv::{kv_bytes, kv_bytes_per_token};
use ue8_plan::plan::weight_bytes;
use ue8_plan::{ParamBreakdown, WeightFormat};

#[test]
fn deepseek_v3_mla_caches_latent_plus_rope_key() {
    let spec = load_model("deepseek-v3.1").unwrap();
    // (kv_lora_rank 512 + qk_rope_head_dim 64) values x 61 layers x 2 bytes.
    let per_token = (512 + 64) * 61 * 2;
    assert_eq!(per_token, 70_272);
    assert_eq!(kv_bytes_per_token(&spec), per_token as f64);
    assert_eq!(kv_bytes(&spec, 1), per_token);
    assert_eq!(kv_bytes(&spec, 32_768), 32_768 * per_token);
}

#[test]
fn llama_3_1_8b_gqa_caches_k_and_v_per_kv_head() {
    let spec = load_model("llama-3.1-8b").unwrap();
    // 2 (K and V) x 8 KV heads x 128 head_dim x 32 layers x 2 bytes.
    let per_token = 2 * 8 * 128 * 32 * 2;
    assert_eq!(per_token, 131_072);
    assert_eq!(kv_bytes_per_token(&spec), per_token as f64);
    assert_eq!(kv_bytes(&spec, 4096), 4096 * per_token);
}

#[test]
fn gpt_oss_sliding_layers_stop_growing_at_the_window() {
    let spec = load_model("gpt-oss-120b").unwrap();
    let per_layer_token = 2 * 8 * 64 * 2u64;
    // 18 full layers grow with the context, 18 sliding layers hold at most 128 tokens.
    assert_eq!(kv_bytes(&spec, 100), 36 * 100 * per_layer_token);
    assert_eq!(
        kv_bytes(&spec, 10_000),
        18 * 10_000 * per_layer_token + 18 * 128 * per_layer_token
    );
    assert_eq!(kv_bytes_per_token(&spec), (18 * per_layer_token) as f64);
}

#[test]
fn deepseek_v4_flash_window_plus_compressed_rows() {
    let spec = load_model("deepseek-v4-flash").unwrap();
    // 43 layers: 0-1 window only, 21 ratio-4 layers (+ indexer keys), 20 ratio-128 layers.
    let ctx = 1_048_576u64;
    let window = 128 * 512 * 2;
    let expected =
        43 * window + 21 * ((ctx / 4) * 512 * 2 + (ctx / 4) * 128 * 2) + 20 * (ctx / 128) * 512 * 2;
    assert_eq!(kv_bytes(&spec, ctx), expected);
    assert_eq!(
        kv_bytes_per_token(&spec),
        21.0 * (256.0 + 64.0) + 20.0 * 8.0
    );
}

#[test]
fn fp8_tiles_and_mx_blocks_pad_partial_edges() {
    // 129 x 129: 4 tiles of 128 x 128 (padded), 4 bytes each.
    assert_eq!(
        Element::Fp8TileF32.matrix_bytes(129, 129),
        129 * 129 + 4 * 4
    );
    assert_eq!(Element::Fp8TileE8m0.matrix_bytes(129, 129), 129 * 129 + 4);
    // 3 rows of 33 inputs: 17 bytes of nibbles + 2 scales each.
    assert_eq!(Element::Mxfp4.matrix_bytes(3, 33), 3 * (17 + 2));
    assert_eq!(Element::Bf16.matrix_bytes(1, 1000), 2000);
    for n in [0u64, 1, 31, 33, 127, 128, 129, 1000] {
        assert_eq!(Element::Bf16.matrix_bytes(1, n), 2 * n);
        assert_eq!(
            Element::Mxfp4.matrix_bytes(1, n),
            n.div_ceil(2) + n.div_ceil(32)
        );
        assert_eq!(
            Element::Fp8TileF32.matrix_bytes(1, n),
            n + 4 * n.div_ceil(128)
        );
    }
}

proptest! {
    #[test]
    fn aligned_matrices_cost_exactly_the_nominal_bits(r in 1u64..8, c in 1u64..8) {
        let (rows, cols) = (r * 128, c * 128);
        let n = rows * cols;
        // FP8 with F32 tile scales: 8 + 32/16384 bits; MXFP4: 4 + 8/32 = 4.25 bits.
        prop_assert_eq!(Element::Fp8TileF32.matrix_bytes(rows, cols) * 16384, n * 16384 + 4 * n);
        prop_assert_eq!(Element::Mxfp4.matrix_bytes(rows, cols) * 32, n * 17);
    }

    /// From 32 inputs on (one MX block; a tiny matrix pays a whole scale per row) narrower formats cost less.
    #[test]
    fn narrower_formats_never_cost_more(rows in 1u64..300, cols in 32u64..300) {
        let bf16 = Element::Bf16.matrix_bytes(rows, cols);
        let fp8 = Element::Fp8TileF32.matrix_bytes(rows, cols);
        let fp4 = Element::Mxfp4.matrix_bytes(rows, cols);
        prop_assert!(fp4 <= fp8 && fp8 <= bf16 + 4);
    }
}

#[test]
fn deepseek_v3_fp8_bytes_are_weights_plus_tile_scales_with_bf16_embeddings() {
    let spec = load_model("deepseek-v3.1").unwrap();
    let b = ParamBreakdown::of(&spec);
    let opts = FormatOptions::default();
    let bf16 = weight_bytes(&b, WeightFormat::Bf16, opts);
    assert_eq!(bf16, 2 * b.totals().total);
    let fp8 = weight_bytes(&b, WeightFormat::Fp8Ue8m0, opts);
    // Embedding and head stay BF16 (2 x 0.93B params); the rest is ~1 byte a parameter.
    let t = b.totals();
    let kept_bf16 = t.embedding + t.lm_head;
    assert!(fp8 > t.total + kept_bf16 && (fp8 as f64) < (t.total + kept_bf16) as f64 * 1.01);
    let fp4 = weight_bytes(&b, WeightFormat::Mxfp4, opts);
    assert!(fp4 < fp8);
    // Quantizing the head moves it from 2 bytes to ~1 byte a parameter.
    let with_head = weight_bytes(
        &b,
        WeightFormat::Fp8Ue8m0,
        FormatOptions {
            quantize_lm_head: true,
        },
    );
    assert!(fp8 - with_head > t.lm_head * 99 / 100);
}

#[test]
fn tied_head_becomes_a_stored_tensor_only_when_quantized() {
    let spec = load_model("smollm2-135m").unwrap();
    let b = ParamBreakdown::of(&spec);
    let plain = weight_bytes(&b, WeightFormat::Fp8Ue8m0, FormatOptions::default());
    let quantized_head = weight_bytes(
        &b,
        WeightFormat::Fp8Ue8m0,
        FormatOptions {
            quantize_lm_head: true,
        },
    );
    // 49152 x 576 head in FP8 with F32 tile scales: 384 x 5 tiles (576 = 4.5 tiles, padded to 5).
    assert_eq!(quantized_head - plain, 49_152 * 576 + 384 * 5 * 4);
}
