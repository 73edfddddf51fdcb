//! Config reading: every error names the file and the field.

use ue8_plan::builtin::load_model;
use ue8_plan::{ModelSpec, PlanError};

#[test]
fn missing_field_names_file_and_field() {
    let err =
        ModelSpec::from_json_str(r#"{"model_type":"llama","vocab_size":10}"#, "m/config.json")
            .unwrap_err();
    match &err {
        PlanError::MissingField { origin, field, .. } => {
            assert_eq!(origin, "m/config.json");
            assert_eq!(field, "hidden_size");
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("m/config.json"));
}

#[test]
fn wrong_types_and_zero_sizes_are_refused() {
    let bad = r#"{"model_type":"llama","vocab_size":"many","hidden_size":8,"num_hidden_layers":1,"num_attention_heads":2,"intermediate_size":4}"#;
    assert!(matches!(
        ModelSpec::from_json_str(bad, "x"),
        Err(PlanError::BadField { .. })
    ));
    let zero = r#"{"model_type":"llama","vocab_size":10,"hidden_size":0,"num_hidden_layers":1,"num_attention_heads":2,"intermediate_size":4}"#;
    assert!(matches!(
        ModelSpec::from_json_str(zero, "x"),
        Err(PlanError::BadField { .. })
    ));
    let odd_heads = r#"{"model_type":"llama","vocab_size":10,"hidden_size":9,"num_hidden_layers":1,"num_attention_heads":2,"intermediate_size":4}"#;
    assert!(matches!(
        ModelSpec::from_json_str(odd_heads, "x"),
        Err(PlanError::BadField { .. })
    ));
    let ratios = r#"{"model_type":"deepseek_v4","vocab_size":10,"hidden_size":8,"num_hidden_layers":1,"num_attention_heads":2,"head_dim":4,"q_lora_rank":4,"o_lora_rank":4,"o_groups":2,"n_routed_experts":2,"moe_intermediate_size":4,"num_experts_per_tok":1,"compress_ratios":[7]}"#;
    assert!(matches!(
        ModelSpec::from_json_str(ratios, "x"),
        Err(PlanError::BadField { .. })
    ));
}

#[test]
fn unknown_architecture_and_model_are_named() {
    let e = ModelSpec::from_json_str(r#"{"model_type":"mamba"}"#, "c.json").unwrap_err();
    assert!(matches!(e, PlanError::UnsupportedArchitecture { .. }));
    assert!(e.to_string().contains("mamba"));
    let e = load_model("no-such-model-or-path").unwrap_err();
    assert!(matches!(e, PlanError::UnknownModel { .. }));
    assert!(
        e.to_string().contains("deepseek-v3.1"),
        "lists the built-in names: {e}"
    );
    assert!(matches!(
        ModelSpec::from_json_str("{not json", "c.json"),
        Err(PlanError::Json { .. })
    ));
}

#[test]
fn architectures_field_alone_is_enough() {
    let cfg = r#"{"architectures":["LlamaForCausalLM"],"vocab_size":10,"hidden_size":8,"num_hidden_layers":2,"num_attention_heads":2,"intermediate_size":4}"#;
    let s = ModelSpec::from_json_str(cfg, "x").unwrap();
    assert_eq!(s.model_type, "llama");
    assert_eq!(s.num_layers(), 2);
}

#[test]
fn a_config_path_and_a_directory_load_like_the_builtin() {
    let dir = std::env::temp_dir().join(format!("ue8-plan-spec-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let text = ue8_plan::builtin::BUILTIN_MODELS
        .iter()
        .find(|(n, _)| *n == "qwen2.5-7b")
        .unwrap()
        .1;
    std::fs::write(dir.join("config.json"), text).unwrap();
    let from_dir = load_model(dir.to_str().unwrap()).unwrap();
    let from_file = load_model(dir.join("config.json").to_str().unwrap()).unwrap();
    let builtin = load_model("qwen2.5-7b").unwrap();
    assert_eq!(from_dir.layers, builtin.layers);
    assert_eq!(from_file.layers, builtin.layers);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn deepseek_v4_without_expert_dtype_says_it_assumed_fp4() {
    let cfg = r#"{"model_type":"deepseek_v4","vocab_size":10,"hidden_size":8,"num_hidden_layers":2,"num_attention_heads":2,"head_dim":4,"q_lora_rank":4,"o_lora_rank":4,"o_groups":2,"n_routed_experts":2,"moe_intermediate_size":4,"num_experts_per_tok":1,"compress_ratios":[0,4]}"#;
    let s = ModelSpec::from_json_str(cfg, "x").unwrap();
    assert!(s.experts_released_fp4);
    assert!(s.notes.iter().any(|n| n.contains("expert_dtype")));
}

#[test]
fn implausible_sizes_are_refused_before_any_arithmetic() {
    let huge = r#"{"model_type":"llama","vocab_size":10,"hidden_size":18446744073709551615,"num_hidden_layers":1,"num_attention_heads":1,"intermediate_size":4}"#;
    let e = ModelSpec::from_json_str(huge, "x").unwrap_err();
    assert!(
        matches!(e, PlanError::BadField { ref field, .. } if field == "hidden_size"),
        "{e}"
    );
    let layers = r#"{"model_type":"llama","vocab_size":10,"hidden_size":8,"num_hidden_layers":4000000,"num_attention_heads":2,"intermediate_size":4}"#;
    assert!(matches!(
        ModelSpec::from_json_str(layers, "x"),
        Err(PlanError::BadField { .. })
    ));
    // The largest accepted sizes still count without overflow (saturating where a product cannot fit).
    let max = ue8_plan::spec::MAX_CONFIG_DIM;
    let big = format!(
        r#"{{"model_type":"llama","vocab_size":{max},"hidden_size":{max},"num_hidden_layers":2,"num_attention_heads":1,"intermediate_size":{max}}}"#
    );
    let spec = ModelSpec::from_json_str(&big, "x").unwrap();
    let t = ue8_plan::ParamBreakdown::of(&spec).totals();
    assert!(t.total > 0);
    assert!(ue8_plan::kv::kv_bytes(&spec, u64::MAX) == u64::MAX);
}
