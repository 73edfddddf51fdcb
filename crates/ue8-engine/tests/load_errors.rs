//! Bad checkpoints and configs are typed errors naming the file, the tensor and the problem.

use std::path::{Path, PathBuf};
use ue8_engine::{Checkpoint, EngineError, LlamaModel, ModelConfig};

fn copy_fixture(name: &str, tmp: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let dir = tmp.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    dir
}

/// Overwrite `bytes` at `offset` into tensor `name`'s data.
fn patch(dir: &Path, name: &str, offset: usize, bytes: &[u8]) {
    let path = dir.join("model.safetensors");
    let mut data = std::fs::read(&path).unwrap();
    let (n, meta) = safetensors::SafeTensors::read_metadata(&data).unwrap();
    let info = meta.info(name).unwrap();
    let start = 8 + n + info.data_offsets.0 + offset;
    data[start..start + bytes.len()].copy_from_slice(bytes);
    std::fs::write(&path, data).unwrap();
}

fn load(dir: &Path) -> Result<(), EngineError> {
    let ck = Checkpoint::open(dir)?;
    LlamaModel::load(&ck, ModelConfig::from_path(dir)?).map(|_| ())
}

#[test]
fn e4m3_nan_code_is_refused_at_load() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = copy_fixture("llama_fp8_ue8m0", tmp.path());
    patch(&dir, "model.layers.1.mlp.up_proj.weight", 1000, &[0xFF]);
    let e = load(&dir).unwrap_err();
    assert!(
        matches!(
            e,
            EngineError::NanCode {
                index: 1000,
                code: 0xFF,
                ..
            }
        ),
        "{e}"
    );
    assert!(
        e.to_string().contains("model.layers.1.mlp.up_proj.weight"),
        "{e}"
    );
}

#[test]
fn nan_f32_scale_and_e8m0_nan_scale_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = copy_fixture("llama_fp8_ue8m0", tmp.path());
    patch(
        &dir,
        "model.layers.0.self_attn.o_proj.weight_scale_inv",
        4,
        &f32::NAN.to_le_bytes(),
    );
    let e = load(&dir).unwrap_err();
    assert!(matches!(e, EngineError::BadScale { index: 1, .. }), "{e}");
    assert!(e.to_string().contains("o_proj.weight_scale_inv"), "{e}");

    let dir = copy_fixture("llama_fp8_e8m0_qhead", tmp.path());
    patch(&dir, "lm_head.weight_scale_inv", 0, &[0xFF]);
    let e = load(&dir).unwrap_err();
    assert!(e.to_string().contains("0xFF"), "{e}");

    let dir = copy_fixture("llama_mxfp4_tied", tmp.path());
    patch(
        &dir,
        "model.layers.0.mlp.down_proj.weight_scales",
        3,
        &[0xFF],
    );
    let e = load(&dir).unwrap_err();
    assert!(matches!(e, EngineError::BadScale { index: 3, .. }), "{e}");
}

#[test]
fn missing_tensor_and_wrong_shape_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = copy_fixture("qwen2_f32", tmp.path());
    // a config that disagrees with the stored shapes, then one asking for a layer that is not there
    let cfg_path = dir.join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
    cfg["intermediate_size"] = serde_json::json!(81);
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    let e = load(&dir).unwrap_err();
    assert!(matches!(e, EngineError::TensorShape { .. }), "{e}");
    assert!(e.to_string().contains("gate_proj"), "{e}");

    cfg["intermediate_size"] = serde_json::json!(80);
    cfg["num_hidden_layers"] = serde_json::json!(3);
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    let e = load(&dir).unwrap_err();
    assert!(matches!(e, EngineError::MissingTensor { .. }), "{e}");
    assert!(e.to_string().contains("model.layers.2."), "{e}");
}

#[test]
fn unsupported_architecture_and_fields_are_config_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("config.json");
    let base = serde_json::json!({
        "architectures": ["LlamaForCausalLM"], "hidden_size": 32, "intermediate_size": 64,
        "num_hidden_layers": 1, "num_attention_heads": 4, "vocab_size": 10
    });
    let try_cfg = |patch: serde_json::Value| {
        let mut c = base.clone();
        for (k, v) in patch.as_object().unwrap() {
            c[k] = v.clone();
        }
        std::fs::write(&p, c.to_string()).unwrap();
        ModelConfig::from_path(&p)
    };
    assert!(try_cfg(serde_json::json!({})).is_ok());
    let e = try_cfg(serde_json::json!({"architectures": ["GPT2LMHeadModel"]})).unwrap_err();
    assert!(
        matches!(e, EngineError::UnsupportedArchitecture { .. }),
        "{e}"
    );
    for (field, value) in [
        ("hidden_act", serde_json::json!("gelu")),
        ("mlp_bias", serde_json::json!(true)),
        ("num_key_value_heads", serde_json::json!(3)),
        (
            "rope_scaling",
            serde_json::json!({"rope_type": "yarn", "factor": 4.0}),
        ),
        ("hidden_size", serde_json::json!("wide")),
    ] {
        let e = try_cfg(serde_json::json!({ field: value })).unwrap_err();
        assert!(matches!(e, EngineError::Config { .. }), "{field}: {e}");
        assert!(e.to_string().contains(field), "{field}: {e}");
    }
}

#[test]
fn truncated_safetensors_is_an_error_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = copy_fixture("qwen3_f16", tmp.path());
    let path = dir.join("model.safetensors");
    let data = std::fs::read(&path).unwrap();
    std::fs::write(&path, &data[..data.len() - 10]).unwrap();
    let e = Checkpoint::open(&dir).err().unwrap();
    assert!(matches!(e, EngineError::Safetensors { .. }), "{e}");
    assert!(e.to_string().contains("model.safetensors"), "{e}");
}
