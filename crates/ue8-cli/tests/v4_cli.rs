//! The README tour of DeepSeek-V4 support, through the `ue8` binary: inspect, requantize (exact re-encode,
//! refusal, --allow-lossy), dequantize, verify and diff on the tiny V4 fixtures of ue8-convert.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../ue8-convert/tests/fixtures/v4")
        .join(name)
}

fn ue8(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ue8"))
        .args(args)
        .output()
        .expect("ue8 runs")
}

fn json(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).expect("stdout is exactly one JSON document")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn inspect_json_describes_the_v4_layout() {
    let flash = fixture("flash");
    let v = json(&ue8(&["inspect", s(&flash), "--json"]));
    assert_eq!(v["layout"], "deepseek-v4");
    assert_eq!(v["fp4_experts"], 18);
    assert_eq!(v["fp4_reencode_exact"], 18);
    assert_eq!(v["anomalies"], serde_json::json!([]));
    let base = json(&ue8(&["inspect", s(&fixture("base")), "--json"]));
    assert_eq!(base["expert_dtype_inferred"], true);
    let text = ue8(&["inspect", s(&fixture("gap"))]);
    let out = String::from_utf8_lossy(&text.stdout);
    assert!(out.contains("3 of 4 re-encode"), "{out}");
    assert!(
        out.contains("not exact: layers.0.ffn.experts.0.w1.weight"),
        "{out}"
    );
}

#[test]
fn requantize_refuses_then_allow_lossy_converts() {
    let tmp = tempfile::tempdir().expect("tmp");
    let out = tmp.path().join("fp8");
    let o = ue8(&[
        "requantize",
        s(&fixture("gap")),
        s(&out),
        "--to",
        "fp8-ue8m0",
        "-q",
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("layers.0.ffn.experts.0.w1.weight") && err.contains("tile row 0, tile col 0"),
        "{err}"
    );
    assert!(!out.exists(), "nothing written on refusal");
    let v = json(&ue8(&[
        "requantize",
        s(&fixture("gap")),
        s(&out),
        "--to",
        "fp8-ue8m0",
        "--allow-lossy",
        "--json",
    ]));
    let lossy: Vec<_> = v["tensors"]
        .as_array()
        .expect("tensors")
        .iter()
        .filter(|t| t["reason"].as_str().is_some_and(|r| r.starts_with("LOSSY")))
        .map(|t| t["name"].clone())
        .collect();
    assert_eq!(
        lossy,
        [serde_json::json!("layers.0.ffn.experts.0.w1.weight")]
    );
}

#[test]
fn requantize_dequantize_verify_and_diff_round_trip() {
    let tmp = tempfile::tempdir().expect("tmp");
    let fp8 = tmp.path().join("fp8");
    let flash = fixture("flash");
    json(&ue8(&[
        "requantize",
        s(&flash),
        s(&fp8),
        "--to",
        "fp8-ue8m0",
        "--json",
    ]));
    let v = json(&ue8(&["verify", s(&fp8), "--json"]));
    assert_eq!(v["ok"], true, "{v}");
    let d = json(&ue8(&["diff", s(&flash), s(&fp8), "--json"]));
    let tensors = d["tensors"].as_array().expect("tensors");
    assert!(tensors.len() > 40);
    for t in tensors {
        assert_eq!(t["max_abs"], 0.0, "{}", t["name"]);
    }
    let bf16 = tmp.path().join("bf16");
    json(&ue8(&["dequantize", s(&fp8), s(&bf16), "--json"]));
    let v = json(&ue8(&["verify", s(&bf16), "--json"]));
    assert_eq!(v["ok"], true, "{v}");
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(bf16.join("config.json")).expect("config"))
            .expect("json");
    assert!(cfg.get("expert_dtype").is_none() && cfg.get("quantization_config").is_none());
}
