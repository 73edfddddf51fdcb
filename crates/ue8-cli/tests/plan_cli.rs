//! `ue8 plan` and `ue8 chips` end to end: exit codes, one JSON document on stdout, table contents,
//! SVG output, and errors naming the problem.

use std::process::Command;

fn ue8(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ue8"))
        .args(args)
        .output()
        .expect("run ue8")
}

fn stdout_json(args: &[&str]) -> serde_json::Value {
    let out = ue8(args);
    assert!(
        out.status.success(),
        "ue8 {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8 stdout");
    // Exactly one JSON document: parsing the whole of stdout must succeed.
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document: {e}\n{text}"))
}

#[test]
fn plan_json_has_totals_and_a_row_per_chip_and_format() {
    let doc = stdout_json(&[
        "plan",
        "llama-3.1-8b",
        "--chip",
        "h100-sxm,h20",
        "--json",
        "--no-cpu",
    ]);
    assert_eq!(doc["total_params"], 8_030_261_248u64);
    assert_eq!(doc["active_params"], 7_504_924_672u64);
    assert_eq!(doc["kv_bytes_per_token"], 131_072.0);
    let rows = doc["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 2 * 3, "2 chips x 3 formats");
    for r in rows {
        for key in [
            "chip",
            "format",
            "execution",
            "weight_bytes_in_memory",
            "kv_bytes",
            "chips_needed",
            "decode_tokens_per_s",
            "prefill_tokens_per_s",
            "export_control",
        ] {
            assert!(r.get(key).is_some(), "row lacks {key}: {r}");
        }
    }
    let h100_fp8 = rows
        .iter()
        .find(|r| r["chip"] == "h100-sxm" && r["format"] == "fp8-ue8m0")
        .expect("h100 fp8 row");
    assert_eq!(h100_fp8["execution"]["mode"], "native");
    assert_eq!(h100_fp8["chips_needed"], 1);
    assert_eq!(h100_fp8["export_control"]["class"], "3A090.a");
}

#[test]
fn deepseek_v3_1_table_across_all_chips() {
    let out = ue8(&["plan", "deepseek-v3.1", "--chip", "all", "--no-cpu"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("671.03B total"), "{text}");
    assert!(text.contains("MTP module, apart: 13.46B"), "{text}");
    assert!(text.contains("70272 bytes per token"), "{text}");
    assert!(
        text.contains("NVIDIA H20") && text.contains("not 3A090"),
        "{text}"
    );
    assert!(text.contains("widened to bf16 in memory"), "{text}");
}

#[test]
fn deepseek_v4_gets_its_release_format_and_fp8_form_on_hopper() {
    let doc = stdout_json(&[
        "plan",
        "deepseek-v4-flash",
        "--chip",
        "h200,b200",
        "--json",
        "--no-cpu",
    ]);
    let rows = doc["rows"].as_array().expect("rows");
    let find = |chip: &str| {
        rows.iter()
            .find(|r| r["chip"] == chip && r["format"] == "fp8-mxfp4-experts")
            .unwrap_or_else(|| panic!("no fp8-mxfp4-experts row for {chip}"))
    };
    assert_eq!(find("b200")["execution"]["mode"], "native");
    assert_eq!(find("h200")["execution"]["mode"], "widened-in-memory");
    assert_eq!(find("h200")["execution"]["memory_format"], "fp8-ue8m0");
}

#[test]
fn cpu_row_is_measured() {
    let doc = stdout_json(&[
        "plan",
        "smollm2-135m",
        "--chip",
        "this-cpu",
        "--format",
        "bf16",
        "--json",
    ]);
    let rows = doc["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["chip"], "this-cpu");
    assert!(
        rows[0]["decode_tokens_per_s"]
            .as_f64()
            .expect("decode bound")
            > 0.0
    );
}

#[test]
fn chips_json_lists_every_figure_with_source_and_confidence() {
    let doc = stdout_json(&["chips", "--json", "--no-cpu"]);
    assert!(doc["export_rule"]["date"].as_str().is_some());
    let chips = doc["chips"].as_array().expect("chips");
    assert!(chips.len() >= 20);
    for c in chips {
        for key in [
            "memory_gb",
            "mem_bw_gbs",
            "bf16_tflops",
            "fp8_tflops",
            "fp4_tflops",
            "die_area_mm2",
        ] {
            if let Some(f) = c.get(key).filter(|f| !f.is_null()) {
                assert!(
                    f["source"].as_str().is_some_and(|s| !s.is_empty()),
                    "{} {key}",
                    c["id"]
                );
                assert!(f["confidence"].as_str().is_some(), "{} {key}", c["id"]);
            }
        }
        assert!(c["export_control"]["class"].as_str().is_some());
    }
}

#[test]
fn plot_writes_an_svg() {
    let dir = std::env::temp_dir().join(format!("ue8-plan-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let svg = dir.join("roofline.svg");
    let out = ue8(&[
        "plan",
        "qwen2.5-7b",
        "--chip",
        "h100-sxm,mi300x",
        "--no-cpu",
        "--plot",
        svg.to_str().expect("utf-8 path"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&svg).expect("svg written");
    assert!(text.starts_with("<svg") && text.trim_end().ends_with("</svg>"));
    assert!(text.contains("NVIDIA H100 SXM") && text.contains("polyline"));
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn errors_name_the_problem_and_exit_1() {
    let out = ue8(&["plan", "no-such-model", "--no-cpu"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no-such-model") && err.contains("deepseek-v3.1"),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "nothing on stdout on error");

    let out = ue8(&[
        "plan",
        "llama-3.1-8b",
        "--chip",
        "nonexistent-gpu",
        "--no-cpu",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nonexistent-gpu"));

    let out = ue8(&["plan", "llama-3.1-8b", "--format", "int3", "--no-cpu"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("int3"));

    let out = ue8(&["plan", "llama-3.1-8b", "--headroom", "1.5", "--no-cpu"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn list_models_prints_the_builtins() {
    let out = ue8(&["plan", "--list-models"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for name in [
        "deepseek-v3.1",
        "deepseek-v4-pro",
        "gpt-oss-120b",
        "smollm2-135m",
    ] {
        assert!(text.contains(name), "{name} missing from {text}");
    }
}
