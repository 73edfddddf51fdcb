//! A tiny generated checkpoint with DeepSeek-V3's exact tensor names, sharding and config (MLA + MoE:
//! q/kv low-rank projections and their norms, a dense first layer, routed + shared experts, router
//! `gate.weight` and `e_score_correction_bias`), stored as DeepSeek ships it (F8_E4M3 weights + F32
//! `weight_scale_inv`, BF16 elsewhere, several shards + index), then dequantized and requantized.

use half::bf16;
use std::collections::BTreeMap;
use std::path::Path;
use ue8_convert::{
    execute, plan_dequantize, plan_quantize, plan_requantize, NoProgress, OutDtype,
    QuantizePlanOptions, RunOptions, Scheme, TargetFormat,
};
use ue8_io::{Checkpoint, Dtype, SafetensorsWriter, TensorSpec};

/// The smallest SNR a 128x128-tile E4M3 weight keeps on Gaussian data: E4M3 has 3 mantissa bits, so the
/// relative rounding error is at most 2^-4 and its RMS about 2^-4/sqrt(3) of each value, ~29 dB; the
/// ceil-to-power-of-two scale costs up to 1 bit more (~6 dB). 20 dB leaves room for small tiles.
const MIN_FP8_SNR_DB: f64 = 20.0;

struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        // Sum of uniforms: roughly Gaussian, std ~0.3.
        let u = |x: u64| ((x >> 40) as f32) / (1u64 << 24) as f32 - 0.5;
        u(self.0) + u(self.0.rotate_left(21)) + u(self.0.rotate_left(42))
    }
}

// DeepSeek-V3's config.json fields, scaled down (hidden 7168 -> 256, kv_lora_rank 512 -> 128, ...).
fn config() -> serde_json::Value {
    serde_json::json!({
        "architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3",
        "hidden_size": 256, "intermediate_size": 384, "moe_intermediate_size": 64,
        "num_hidden_layers": 2, "first_k_dense_replace": 1, "n_routed_experts": 4, "n_shared_experts": 1,
        "num_experts_per_tok": 2, "n_group": 2, "topk_group": 1, "num_attention_heads": 2,
        "num_key_value_heads": 2, "q_lora_rank": 192, "kv_lora_rank": 128, "qk_nope_head_dim": 32,
        "qk_rope_head_dim": 64, "v_head_dim": 32, "vocab_size": 300, "tie_word_embeddings": false,
        "rms_norm_eps": 1e-6, "torch_dtype": "bfloat16",
        "quantization_config": {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
                                "weight_block_size": [128, 128]}
    })
}

fn tensor_shapes() -> Vec<(String, Vec<usize>, Dtype)> {
    let (h, inter, moe, heads, ql, kvl, nope, rope, v, vocab, experts) =
        (256, 384, 64, 2, 192, 128, 32, 64, 32, 300, 4);
    let mut t = vec![(
        "model.embed_tokens.weight".to_string(),
        vec![vocab, h],
        Dtype::BF16,
    )];
    for l in 0..2 {
        let p = format!("model.layers.{l}");
        t.push((format!("{p}.input_layernorm.weight"), vec![h], Dtype::BF16));
        t.push((
            format!("{p}.post_attention_layernorm.weight"),
            vec![h],
            Dtype::BF16,
        ));
        t.push((
            format!("{p}.self_attn.q_a_proj.weight"),
            vec![ql, h],
            Dtype::BF16,
        ));
        t.push((
            format!("{p}.self_attn.q_a_layernorm.weight"),
            vec![ql],
            Dtype::BF16,
        ));
        t.push((
            format!("{p}.self_attn.q_b_proj.weight"),
            vec![heads * (nope + rope), ql],
            Dtype::BF16,
        ));
        t.push((
            format!("{p}.self_attn.kv_a_proj_with_mqa.weight"),
            vec![kvl + rope, h],
            Dtype::BF16,
        ));
        t.push((
            format!("{p}.self_attn.kv_a_layernorm.weight"),
            vec![kvl],
            Dtype::BF16,
        ));
        t.push((
            format!("{p}.self_attn.kv_b_proj.weight"),
            vec![heads * (nope + v), kvl],
            Dtype::BF16,
        ));
        t.push((
            format!("{p}.self_attn.o_proj.weight"),
            vec![h, heads * v],
            Dtype::BF16,
        ));
        if l == 0 {
            for (n, s) in [
                ("gate_proj", [inter, h]),
                ("up_proj", [inter, h]),
                ("down_proj", [h, inter]),
            ] {
                t.push((format!("{p}.mlp.{n}.weight"), s.to_vec(), Dtype::BF16));
            }
        } else {
            t.push((
                format!("{p}.mlp.gate.weight"),
                vec![experts, h],
                Dtype::BF16,
            ));
            t.push((
                format!("{p}.mlp.gate.e_score_correction_bias"),
                vec![experts],
                Dtype::F32,
            ));
            let mut ffn = |prefix: String| {
                for (n, s) in [
                    ("gate_proj", [moe, h]),
                    ("up_proj", [moe, h]),
                    ("down_proj", [h, moe]),
                ] {
                    t.push((format!("{prefix}.{n}.weight"), s.to_vec(), Dtype::BF16));
                }
            };
            for e in 0..experts {
                ffn(format!("{p}.mlp.experts.{e}"));
            }
            ffn(format!("{p}.mlp.shared_experts"));
        }
    }
    t.push(("model.norm.weight".into(), vec![h], Dtype::BF16));
    t.push(("lm_head.weight".into(), vec![vocab, h], Dtype::BF16));
    t
}

/// Writes the BF16 original: one file.
fn write_bf16_model(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let shapes = tensor_shapes();
    let specs: Vec<TensorSpec> = shapes
        .iter()
        .map(|(n, s, d)| TensorSpec::new(n.clone(), *d, s.clone()))
        .collect();
    let mut w =
        SafetensorsWriter::create(&dir.join("model.safetensors"), specs, &BTreeMap::new()).unwrap();
    let mut rng = Lcg(7);
    for (n, s, d) in &shapes {
        let count: usize = s.iter().product();
        let bytes: Vec<u8> = match d {
            Dtype::F32 => (0..count).flat_map(|_| rng.next().to_le_bytes()).collect(),
            _ => (0..count)
                .flat_map(|_| bf16::from_f32(rng.next()).to_le_bytes())
                .collect(),
        };
        w.write_tensor(n, &bytes).unwrap();
    }
    ue8_io::writer::finish_file(w).unwrap();
    let mut cfg = config();
    cfg.as_object_mut().unwrap().remove("quantization_config");
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_vec_pretty(&cfg).unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.join("tokenizer_config.json"),
        b"{\"add_bos_token\": true}",
    )
    .unwrap();
}

fn run_opts(max_shard_size: u64) -> RunOptions {
    RunOptions {
        max_shard_size,
        force: false,
        command_line: vec!["test".into()],
    }
}

#[test]
fn deepseek_v3_layout_dequantizes_and_requantizes() {
    let tmp = tempfile::tempdir().unwrap();
    let bf16_dir = tmp.path().join("bf16");
    write_bf16_model(&bf16_dir);
    let original = Checkpoint::open(&bf16_dir).unwrap();

    // DeepSeek-V3 as shipped: F32 scales, sharded, DeepSeek's own quantization_config.
    let fp8_dir = tmp.path().join("fp8");
    let scheme = Scheme::resolve(TargetFormat::Fp8, None, None).unwrap();
    let plan = plan_quantize(
        &original,
        &QuantizePlanOptions {
            format: TargetFormat::Fp8,
            scheme,
            keep: vec![],
            quantize_lm_head: false,
        },
    )
    .unwrap();
    execute(&original, &plan, &fp8_dir, &run_opts(200_000), &NoProgress).unwrap();
    std::fs::write(
        fp8_dir.join("config.json"),
        serde_json::to_vec_pretty(&config()).unwrap(),
    )
    .unwrap();
    let fp8 = Checkpoint::open(&fp8_dir).unwrap();
    assert!(
        fp8.files().len() >= 3,
        "sharded: {} files",
        fp8.files().len()
    );
    assert!(fp8.index_path().is_some());

    // What DeepSeek quantizes and what it keeps in BF16/F32.
    for (name, shape, dtype) in tensor_shapes() {
        let t = fp8.tensor(&name).unwrap();
        let keep = name.contains("embed_tokens")
            || name.starts_with("lm_head")
            || name.contains("norm")
            || name.ends_with("mlp.gate.weight")
            || name.contains("e_score_correction_bias");
        if keep {
            assert_eq!(t.dtype, dtype, "{name} kept");
            assert_eq!(
                t.bytes,
                original.tensor(&name).unwrap().bytes,
                "{name} kept byte for byte"
            );
            assert!(!fp8.contains(&format!("{name}_scale_inv")));
        } else {
            assert_eq!(t.dtype, Dtype::F8E4M3, "{name} quantized");
            let s = fp8.tensor(&format!("{name}_scale_inv")).unwrap();
            assert_eq!(s.dtype, Dtype::F32);
            assert_eq!(
                s.shape,
                &[shape[0].div_ceil(128), shape[1].div_ceil(128)],
                "{name} scale grid"
            );
        }
    }
    // kv_a_proj_with_mqa has 192 rows here (576 in V3): a partial 128-row tile, which transformers'
    // dequantizer refuses and ue8 handles.
    assert_eq!(
        fp8.tensor("model.layers.0.self_attn.kv_a_proj_with_mqa.weight_scale_inv")
            .unwrap()
            .shape,
        &[2, 2]
    );

    // Dequantize (the CPU fp8_cast_bf16.py): same names, shapes and dtypes as the BF16 original,
    // values within FP8's error, quantization_config gone.
    let deq_dir = tmp.path().join("deq");
    let plan = plan_dequantize(&fp8, OutDtype::Bf16).unwrap();
    execute(&fp8, &plan, &deq_dir, &run_opts(5_000_000_000), &NoProgress).unwrap();
    let deq = Checkpoint::open(&deq_dir).unwrap();
    assert_eq!(deq.len(), original.len());
    let diff = ue8_convert::diff::diff(&original, &deq).unwrap();
    assert!(
        diff.only_in_a.is_empty() && diff.only_in_b.is_empty() && diff.shape_mismatch.is_empty()
    );
    for t in &diff.tensors {
        if let Some(snr) = t.snr_db {
            assert!(snr > MIN_FP8_SNR_DB, "{}: SNR {snr} dB", t.name);
        }
    }
    assert!(deq.config().unwrap().get("quantization_config").is_none());
    assert_eq!(deq.config().unwrap()["torch_dtype"], "bfloat16");
    assert!(deq_dir.join("tokenizer_config.json").is_file());

    // Requantize to UE8M0: every scale a power of two, shapes unchanged, kept tensors identical,
    // scale_fmt set, and the directory verifies.
    let rq_dir = tmp.path().join("rq");
    let plan = plan_requantize(&fp8, false).unwrap();
    let summary = execute(&fp8, &plan, &rq_dir, &run_opts(200_000), &NoProgress).unwrap();
    let rq = Checkpoint::open(&rq_dir).unwrap();
    let mut requantized = 0;
    for t in rq.tensors() {
        if t.name.ends_with("_scale_inv") {
            let vals: Vec<f32> = t
                .bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            assert!(ue8_quant::all_pow2(&vals), "{}", t.name);
            requantized += 1;
        } else if t.dtype != Dtype::F8E4M3 {
            assert_eq!(
                t.bytes,
                fp8.tensor(t.name).unwrap().bytes,
                "{} kept",
                t.name
            );
        }
    }
    assert_eq!(
        requantized,
        summary
            .manifest
            .tensors
            .iter()
            .filter(|t| t.metrics.is_some())
            .count()
    );
    assert_eq!(
        rq.config().unwrap()["quantization_config"]["scale_fmt"],
        "ue8m0"
    );
    let v = ue8_convert::verify::verify(&rq_dir);
    assert!(v.ok(), "{:?}", v.problems);
    assert!(rq_dir.join("model.safetensors.index.json").is_file());
}
