//! Catalog parsing and provenance, export classification, execution modes and the plan arithmetic.

use ue8_plan::catalog::{Catalog, Chip, Confidence, Figure, Flag};
use ue8_plan::export_control::{class_of, classify};
use ue8_plan::plan::{execution, expected_distinct_experts, ExecMode, PlanOptions};
use ue8_plan::{builtin::load_model, plan, ParamBreakdown, PlanError, WeightFormat};

fn fig(value: f64) -> Option<Figure> {
    Some(Figure {
        value,
        confidence: Confidence::Assumption,
        source: "test".to_string(),
        note: None,
    })
}

/// A chip with round figures, so the plan arithmetic can be checked by hand.
fn test_chip(memory_gb: f64, bw_gbs: f64, bf16: f64, fp8: Option<f64>, on_the_fly: bool) -> Chip {
    Chip {
        id: "test".to_string(),
        name: "Test chip".to_string(),
        vendor: "test".to_string(),
        year: 2026,
        fp8_hw: String::new(),
        mx_hw: String::new(),
        fp8_native: fp8.is_some(),
        fp4_native: false,
        memory_gb: fig(memory_gb),
        mem_bw_gbs: fig(bw_gbs),
        bf16_tflops: fig(bf16),
        fp8_tflops: fp8.and_then(fig),
        int8_tops: None,
        fp4_tflops: None,
        die_area_mm2: None,
        tdp_w: None,
        interconnect: None,
        dequant_on_the_fly: Some(Flag {
            value: on_the_fly,
            confidence: Confidence::Assumption,
            source: "test".to_string(),
        }),
        china_status: None,
    }
}

#[test]
fn catalog_parses_and_every_figure_has_a_source_and_confidence() {
    let cat = Catalog::builtin().unwrap();
    assert!(cat.chips.len() >= 20);
    for chip in &cat.chips {
        assert!(!chip.figures().is_empty(), "{} has no figure", chip.id);
        for (name, f) in chip.figures() {
            assert!(
                !f.source.trim().is_empty(),
                "{}.{name} has no source",
                chip.id
            );
        }
        for fact in [&chip.interconnect, &chip.china_status]
            .into_iter()
            .flatten()
        {
            assert!(
                !fact.source.trim().is_empty(),
                "{} fact without source",
                chip.id
            );
        }
    }
}

#[test]
fn catalog_keeps_the_reference_confidence_marks() {
    let cat = Catalog::builtin().unwrap();
    let get = |id: &str| cat.chips.iter().find(|c| c.id == id).unwrap();
    // Datasheet rows.
    assert_eq!(
        get("h100-sxm").mem_bw_gbs.as_ref().unwrap().confidence,
        Confidence::Datasheet
    );
    assert_eq!(get("h100-sxm").mem_bw_gbs.as_ref().unwrap().value, 3350.0);
    // Dagger (reported) and double dagger (single third-party compilation) from the reference table.
    assert_eq!(
        get("ascend-910b").bf16_tflops.as_ref().unwrap().confidence,
        Confidence::Reported
    );
    assert_eq!(
        get("mlu590").bf16_tflops.as_ref().unwrap().confidence,
        Confidence::Low
    );
    assert_eq!(
        get("k100-ai").mem_bw_gbs.as_ref().unwrap().confidence,
        Confidence::Low
    );
    // Chips without FP8 hardware say so.
    assert!(!get("ascend-910b").fp8_native && get("ascend-910b").fp8_tflops.is_none());
    assert!(get("b200").fp4_native && get("ascend-950pr").fp4_native);
}

#[test]
fn catalog_errors_name_the_problem() {
    let cat = Catalog::builtin().unwrap();
    let text = ue8_plan::catalog::CATALOG_TOML;
    // A duplicated chip id.
    let first = text.find("[[chip]]").unwrap();
    let dup = format!(
        "{text}\n{}",
        &text[first..text[first + 8..].find("[[chip]]").unwrap() + first + 8]
    );
    match Catalog::parse(&dup, "dup.toml") {
        Err(PlanError::Catalog { problem, .. }) => assert!(problem.contains("twice"), "{problem}"),
        other => panic!("expected a duplicate-id error, got {other:?}"),
    }
    // A figure without a source.
    let no_source = text.replacen(&cat.chips[0].memory_gb.as_ref().unwrap().source, " ", 1);
    assert!(matches!(
        Catalog::parse(&no_source, "x.toml"),
        Err(PlanError::Catalog { .. })
    ));
    // Not TOML at all.
    assert!(matches!(
        Catalog::parse("[[chip]\nid=", "bad.toml"),
        Err(PlanError::Catalog { .. })
    ));
    // Selection errors.
    assert!(matches!(
        cat.select("no-such-chip"),
        Err(PlanError::UnknownChip { .. })
    ));
    assert_eq!(cat.select("H200").unwrap()[0].id, "h200");
    assert_eq!(cat.select("all").unwrap().len(), cat.chips.len());
}

#[test]
fn export_classification_of_reference_chips() {
    let cat = Catalog::builtin().unwrap();
    let get = |id: &str| cat.chips.iter().find(|c| c.id == id).unwrap();
    let h100 = classify(get("h100-sxm"), &cat.export_rule);
    // TPP = 1979 FP8 TOPS x 8 bits = 15,832; PD = 15,832 / 814 mm2 = 19.45.
    assert_eq!(h100.tpp, Some(15_832.0));
    assert!((h100.performance_density.unwrap() - 15_832.0 / 814.0).abs() < 1e-9);
    assert_eq!(h100.class, "3A090.a");
    let h20 = classify(get("h20"), &cat.export_rule);
    // TPP = 296 x 8 = 2,368 (< 2,400), PD 2.91 (< 3.2): outside .a and .b.
    assert_eq!(h20.tpp, Some(2368.0));
    assert_eq!(h20.class, "not 3A090");
    assert_eq!(h100.rule_date, "2023-10-17");
    let r = &cat.export_rule;
    assert_eq!(class_of(4800.0, None, r), "3A090.a");
    assert_eq!(class_of(1599.0, Some(100.0), r), "not 3A090");
    assert_eq!(class_of(2000.0, Some(6.0), r), "3A090.a");
    assert_eq!(class_of(3000.0, Some(2.0), r), "3A090.b");
    assert_eq!(class_of(2000.0, Some(3.5), r), "3A090.b");
    assert_eq!(class_of(2000.0, Some(2.0), r), "not 3A090");
    assert!(class_of(2000.0, None, r).starts_with("undetermined"));
}

#[test]
fn execution_modes_follow_the_chip() {
    let fp8_chip = test_chip(80.0, 1000.0, 100.0, Some(200.0), true);
    let plain = test_chip(80.0, 1000.0, 100.0, None, false);
    let plain_otf = test_chip(80.0, 1000.0, 100.0, None, true);
    assert_eq!(
        execution(&fp8_chip, WeightFormat::Fp8Ue8m0).mode,
        ExecMode::Native
    );
    let w = execution(&plain, WeightFormat::Fp8Ue8m0);
    assert_eq!(
        (w.mode, w.memory_format, w.compute),
        (ExecMode::WidenedInMemory, WeightFormat::Bf16, "bf16")
    );
    let o = execution(&plain_otf, WeightFormat::Fp8Ue8m0);
    assert_eq!(
        (o.mode, o.memory_format),
        (ExecMode::DequantOnTheFly, WeightFormat::Fp8Ue8m0)
    );
    // MXFP4 on an FP8 chip that does not dequantize on the fly: widened to FP8, not BF16.
    let fp8_no_otf = test_chip(80.0, 1000.0, 100.0, Some(200.0), false);
    let m = execution(&fp8_no_otf, WeightFormat::Mxfp4);
    assert_eq!(
        (m.mode, m.memory_format),
        (ExecMode::WidenedInMemory, WeightFormat::Fp8Ue8m0)
    );
    // DeepSeek-V4's FP4 experts need the FP8 form on an FP8 chip without FP4, even with on-the-fly kernels.
    let v4 = execution(&fp8_chip, WeightFormat::Fp8Mxfp4Experts);
    assert_eq!(
        (v4.mode, v4.memory_format),
        (ExecMode::WidenedInMemory, WeightFormat::Fp8Ue8m0)
    );
}

#[test]
fn chips_needed_and_roofline_bounds_by_hand() {
    let spec = load_model("llama-3.1-8b").unwrap();
    let chip = test_chip(10.0, 1000.0, 100.0, None, false);
    let cat = Catalog::builtin().unwrap();
    let opts = PlanOptions {
        context: 4096,
        batch: 1,
        headroom: 0.10,
        quantize_lm_head: false,
    };
    let p = plan(
        &spec,
        &[&chip],
        &[WeightFormat::Bf16],
        &cat.export_rule,
        opts,
    );
    let row = &p.rows[0];
    let total = 8_030_261_248u64;
    let active = 7_504_924_672u64;
    let weights = 2 * total;
    let kv = 4096 * 131_072u64;
    assert_eq!(row.weight_bytes_in_memory, weights);
    assert_eq!(row.kv_bytes, kv);
    // (16.06 GB + 0.54 GB) / (10 GB x 0.9) = 1.84 -> 2 chips.
    assert_eq!(row.chips_needed, Some(2));
    // Step reads every active weight (BF16), one embedding row, and the whole KV cache.
    let step = (2 * active + 4096 * 2 + kv) as f64;
    assert_eq!(row.bytes_read_per_step, step);
    let decode = 2.0 * 1000e9 / step;
    assert!((row.decode_tokens_per_s.unwrap() - decode).abs() < 1e-9 * decode);
    // Prefill: 2 chips x 100 TFLOPS / (2 x active + attention at position 2048).
    let attn = 32.0 * 4.0 * 32.0 * 128.0 * 2048.0;
    let prefill = 2.0 * 100e12 / (2.0 * active as f64 + attn);
    assert!((row.prefill_tokens_per_s.unwrap() - prefill).abs() < 1e-9 * prefill);
    // Batch 8 reads the weights once per step: aggregate rate grows, per-sequence rate shrinks (on a
    // chip big enough that the chip count stays 1 for both).
    let big = test_chip(100.0, 1000.0, 100.0, None, false);
    let row = &plan(
        &spec,
        &[&big],
        &[WeightFormat::Bf16],
        &cat.export_rule,
        opts,
    )
    .rows[0];
    let p8 = plan(
        &spec,
        &[&big],
        &[WeightFormat::Bf16],
        &cat.export_rule,
        PlanOptions { batch: 8, ..opts },
    );
    let r8 = &p8.rows[0];
    assert_eq!((row.chips_needed, r8.chips_needed), (Some(1), Some(1)));
    assert!(r8.decode_tokens_per_s.unwrap() > row.decode_tokens_per_s.unwrap());
    assert!(r8.decode_tokens_per_s_per_sequence.unwrap() < row.decode_tokens_per_s.unwrap());
}

#[test]
fn moe_decode_reads_only_selected_experts() {
    let spec = load_model("deepseek-v3.1").unwrap();
    let b = ParamBreakdown::of(&spec);
    let t = b.totals();
    let one =
        ue8_plan::plan::decode_weight_bytes(&b, &spec, WeightFormat::Bf16, Default::default(), 1);
    // Batch 1 reads the active parameters (minus the embedding, plus one of its rows) in BF16.
    assert_eq!(one, (2 * t.active + 7168 * 2) as f64);
    assert_eq!(expected_distinct_experts(256, 8, 1), 8.0);
    // A large batch touches nearly every expert.
    let e = expected_distinct_experts(256, 8, 10_000);
    assert!(e > 255.99 && e <= 256.0);
}

#[test]
fn chips_without_memory_figures_say_why() {
    let spec = load_model("smollm2-135m").unwrap();
    let cat = Catalog::builtin().unwrap();
    let p800 = cat.select("kunlunxin-p800").unwrap();
    let p = plan(
        &spec,
        &p800,
        &[WeightFormat::Bf16],
        &cat.export_rule,
        PlanOptions::default(),
    );
    let row = &p.rows[0];
    assert!(row.decode_tokens_per_s.is_none());
    assert!(row.notes.iter().any(|n| n.contains("bandwidth unknown")));
}
