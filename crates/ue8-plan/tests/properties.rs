//! Properties: the config reader and the counters never panic on any sizes, and plan bounds move the
//! right way with context and batch.

use proptest::prelude::*;
use ue8_plan::catalog::Catalog;
use ue8_plan::plan::PlanOptions;
use ue8_plan::{builtin::load_model, plan, ModelSpec, ParamBreakdown, WeightFormat};

fn any_size() -> impl Strategy<Value = u64> {
    prop_oneof![
        0u64..8,
        1u64..5000,
        Just(u64::MAX),
        Just(1u64 << 22),
        Just((1u64 << 22) + 1)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any sizes in a DeepSeek-V3-shaped or V4-shaped config: an error or a count, never a panic.
    #[test]
    fn deepseek_configs_with_any_sizes_never_panic(
        hidden in any_size(), heads in any_size(), layers in 0u64..70, experts in any_size(),
        top_k in any_size(), inter in any_size(), lora in any_size(), ratio in prop::sample::select(vec![0u64, 4, 128, 3]),
    ) {
        let v3 = format!(r#"{{"model_type":"deepseek_v3","vocab_size":1000,"hidden_size":{hidden},"num_hidden_layers":{layers},
            "num_attention_heads":{heads},"q_lora_rank":{lora},"kv_lora_rank":{lora},"qk_nope_head_dim":16,"qk_rope_head_dim":8,
            "v_head_dim":16,"intermediate_size":{inter},"n_routed_experts":{experts},"num_experts_per_tok":{top_k},
            "moe_intermediate_size":{inter},"n_shared_experts":1,"first_k_dense_replace":1,"num_nextn_predict_layers":1}}"#);
        if let Ok(spec) = ModelSpec::from_json_str(&v3, "p") {
            let t = ParamBreakdown::of(&spec).totals();
            prop_assert!(t.active <= t.total.saturating_add(t.lm_head));
            let _ = ue8_plan::kv::kv_bytes(&spec, u64::MAX);
        }
        let v4 = format!(r#"{{"model_type":"deepseek_v4","vocab_size":1000,"hidden_size":{hidden},"num_hidden_layers":{layers},
            "num_attention_heads":{heads},"head_dim":64,"q_lora_rank":{lora},"o_lora_rank":{lora},"o_groups":2,
            "n_routed_experts":{experts},"num_experts_per_tok":{top_k},"moe_intermediate_size":{inter},
            "compress_ratios":[{ratio}],"index_n_heads":4,"index_head_dim":16,"hc_mult":4}}"#);
        if let Ok(spec) = ModelSpec::from_json_str(&v4, "p") {
            let _ = ParamBreakdown::of(&spec).totals();
            let _ = ue8_plan::kv::kv_bytes_per_token(&spec);
        }
    }

    /// More context or a bigger batch never needs fewer chips, and never raises the per-sequence bound.
    #[test]
    fn bounds_are_monotone_in_context_and_batch(ctx in 1u64..200_000, extra in 1u64..100_000, batch in 1u64..64) {
        let spec = load_model("llama-3.1-8b").unwrap();
        let cat = Catalog::builtin().unwrap();
        let chips = cat.select("h100-sxm").unwrap();
        let run = |context, batch| {
            let opts = PlanOptions { context, batch, ..PlanOptions::default() };
            plan(&spec, &chips, &[WeightFormat::Fp8Ue8m0], &cat.export_rule, opts).rows.remove(0)
        };
        let a = run(ctx, batch);
        let b = run(ctx + extra, batch);
        let c = run(ctx, batch + 1);
        prop_assert!(b.chips_needed >= a.chips_needed);
        prop_assert!(c.chips_needed >= a.chips_needed);
        if a.chips_needed == b.chips_needed {
            prop_assert!(b.decode_tokens_per_s_per_sequence <= a.decode_tokens_per_s_per_sequence);
        }
        prop_assert!(b.bytes_read_per_step > a.bytes_read_per_step);
    }
}
