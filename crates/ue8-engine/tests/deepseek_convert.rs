//! ue8's own fp8-ue8m0 conversion of the BF16 DeepSeek fixture: byte-identical to the fixture the
//! reference generator wrote (formats.md s.2 rule), and the engine runs it within issue 10's targets
//! against transformers on the same dequantized weights.

use std::path::{Path, PathBuf};
use ue8_convert::{
    execute, plan_quantize, NoProgress, QuantizePlanOptions, RunOptions, Scheme, TargetFormat,
};
use ue8_engine::checkpoint::Checkpoint;
use ue8_engine::config_deepseek::DeepseekConfig;
use ue8_engine::models::deepseek::{DeepseekModel, DeepseekSession};
use ue8_engine::{Logits, Matmul};

/// Issue 10's target: mean NLL within 0.05% of transformers on the same dequantized weights.
const NLL_REL_TOL: f64 = 5e-4;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/deepseek")
        .join(name)
}

fn quantize(src: &Path, out: &Path, to: &str) {
    let ck = ue8_io::Checkpoint::open(src).unwrap();
    let format = TargetFormat::parse(to).unwrap();
    let scheme = Scheme::resolve(format, None, None).unwrap();
    let plan = plan_quantize(
        &ck,
        &QuantizePlanOptions {
            format,
            scheme,
            keep: Vec::new(),
            quantize_lm_head: false,
        },
    )
    .unwrap();
    let opts = RunOptions {
        max_shard_size: u64::MAX,
        force: false,
        command_line: vec!["test".into()],
    };
    execute(&ck, &plan, out, &opts, &NoProgress).unwrap();
}

#[test]
fn ue8_fp8_ue8m0_conversion_is_the_fixture_and_matches_transformers() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("q");
    quantize(&fixture("tiny_a_bf16"), &out, "fp8-ue8m0");
    let fix_dir = fixture("tiny_a_fp8_ue8m0");
    let ours = Checkpoint::open(&out).unwrap();
    let fix = Checkpoint::open(&fix_dir).unwrap();
    // every quantized linear of the model, weight and scales, byte for byte
    let cfg = DeepseekConfig::from_path(&fix_dir).unwrap();
    let mut names = vec!["model.layers.3.eh_proj".to_string()];
    for l in 0..cfg.num_hidden_layers {
        let p = format!("model.layers.{l}");
        for m in [
            "q_a_proj",
            "q_b_proj",
            "kv_a_proj_with_mqa",
            "kv_b_proj",
            "o_proj",
        ] {
            names.push(format!("{p}.self_attn.{m}"));
        }
        let mlps: Vec<String> = if cfg.is_moe_layer(l) {
            (0..cfg.n_routed_experts)
                .map(|e| format!("{p}.mlp.experts.{e}"))
                .chain([format!("{p}.mlp.shared_experts")])
                .collect()
        } else {
            vec![format!("{p}.mlp")]
        };
        for m in mlps {
            for proj in ["gate_proj", "up_proj", "down_proj"] {
                names.push(format!("{m}.{proj}"));
            }
        }
    }
    for m in &names {
        for t in [format!("{m}.weight"), format!("{m}.weight_scale_inv")] {
            let a = ours.tensor(&t, "converted").unwrap();
            let b = fix.tensor(&t, "fixture").unwrap();
            assert_eq!((a.dtype, a.shape), (b.dtype, b.shape), "{t}");
            assert!(a.data == b.data, "{t}: bytes differ");
        }
    }
    for kept in [
        "model.embed_tokens.weight",
        "lm_head.weight",
        "model.layers.1.mlp.gate.weight",
    ] {
        assert_eq!(
            ours.tensor(kept, "kept").unwrap().data,
            fix.tensor(kept, "kept").unwrap().data
        );
    }

    // and the converted directory (its own config.json) runs within the targets
    let reference = Checkpoint::open(&fix_dir.join("reference.safetensors")).unwrap();
    let tokens: Vec<u32> = reference
        .tensor("tokens", "reference tokens")
        .unwrap()
        .data
        .chunks_exact(4)
        .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as u32)
        .collect();
    let want_nll = f64::from_le_bytes(
        reference.tensor("mean_nll", "nll").unwrap().data[..8]
            .try_into()
            .unwrap(),
    );
    let model = DeepseekModel::load(&ours, DeepseekConfig::from_path(&out).unwrap()).unwrap();
    let mm = Matmul::new(1).unwrap();
    let mut s = DeepseekSession::new(&model, &mm, tokens.len(), tokens.len()).unwrap();
    let logits = s.forward(&tokens, Logits::All).unwrap();
    let v = model.config.vocab_size;
    let mut total = 0.0f64;
    for i in 0..tokens.len() - 1 {
        let row = &logits[i * v..(i + 1) * v];
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let lse = row
            .iter()
            .map(|&x| (x as f64 - max).exp())
            .sum::<f64>()
            .ln()
            + max;
        total += lse - row[tokens[i + 1] as usize] as f64;
    }
    let nll = total / (tokens.len() - 1) as f64;
    let rel = (nll - want_nll).abs() / want_nll;
    assert!(
        rel <= NLL_REL_TOL,
        "mean NLL {nll} vs transformers {want_nll}"
    );
}
