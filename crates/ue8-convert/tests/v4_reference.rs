//! DeepSeek-V4 conversions against the independent numpy + ml_dtypes reference
//! (tools/ref_v4/gen_v4.py -> tests/fixtures/v4/expected.json holds the sha256 of every output tensor).

use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use ue8_convert::v4::{dequantize_v4, inspect_v4, requantize_v4, V4RequantizeOptions};
use ue8_convert::{NoProgress, OutDtype, RunOptions};
use ue8_io::Checkpoint;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/v4")
        .join(name)
}

fn expected() -> serde_json::Value {
    let text = std::fs::read_to_string(fixture("expected.json")).expect("expected.json");
    serde_json::from_str(&text).expect("expected.json parses")
}

fn opts(max_shard_size: u64) -> RunOptions {
    RunOptions {
        max_shard_size,
        force: false,
        command_line: vec!["test".into()],
    }
}

fn sha(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Every tensor the reference lists has the reference's bytes; returns how many were compared.
fn assert_matches(out: &Path, want: &serde_json::Value) -> usize {
    let ck = Checkpoint::open(out).expect("output opens");
    let want = want.as_object().expect("object");
    assert!(!want.is_empty());
    for (name, digest) in want {
        let t = ck.tensor(name).expect("tensor present in output");
        assert_eq!(
            Some(sha(t.bytes).as_str()),
            digest.as_str(),
            "tensor '{name}' differs from the numpy reference"
        );
    }
    want.len()
}

fn all_bytes(dir: &Path) -> BTreeMap<String, (String, Vec<usize>, String)> {
    let ck = Checkpoint::open(dir).expect("opens");
    ck.tensors()
        .map(|t| {
            (
                t.name.to_string(),
                (t.dtype.to_string(), t.shape.to_vec(), sha(t.bytes)),
            )
        })
        .collect()
}

fn config(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).expect("config"))
        .expect("config parses")
}

#[test]
fn dequantize_matches_numpy_bf16_and_f32() {
    let exp = expected();
    for (model, shards) in [("flash", 200_000u64), ("base", u64::MAX)] {
        let ck = Checkpoint::open(fixture(model)).expect("fixture");
        for (dtype, key) in [
            (OutDtype::Bf16, "dequantize_bf16"),
            (OutDtype::F32, "dequantize_f32"),
        ] {
            let tmp = tempfile::tempdir().expect("tmp");
            let out = tmp.path().join("out");
            dequantize_v4(&ck, dtype, &out, &opts(shards), &NoProgress).expect("dequantize");
            let n = assert_matches(&out, &exp[model][key]);
            assert!(n > 40, "{model}: only {n} tensors compared");
            let tensors = all_bytes(&out);
            assert!(
                !tensors.keys().any(|k| k.ends_with(".scale")),
                ".scale tensors are dropped"
            );
            // Plain tensors are copied unchanged.
            let src = all_bytes(&fixture(model));
            for name in ["embed.weight", "layers.0.ffn.gate.tid2eid", "hc_head_fn"] {
                assert_eq!(tensors.get(name), src.get(name), "{name} copied as is");
            }
            let cfg = config(&out);
            assert!(cfg.get("quantization_config").is_none());
            assert!(cfg.get("expert_dtype").is_none());
            assert_eq!(cfg["torch_dtype"], dtype.torch_name());
            assert!(out.join("tokenizer_config.json").is_file());
            let v = ue8_convert::verify::verify(&out);
            assert!(v.ok(), "{:?}", v.problems);
        }
    }
}

#[test]
fn requantize_matches_numpy_and_updates_config() {
    let exp = expected();
    for model in ["flash", "base"] {
        let ck = Checkpoint::open(fixture(model)).expect("fixture");
        let tmp = tempfile::tempdir().expect("tmp");
        let out = tmp.path().join("out");
        let s = requantize_v4(
            &ck,
            V4RequantizeOptions::default(),
            &out,
            &opts(300_000),
            &NoProgress,
        )
        .expect("requantize");
        assert_matches(&out, &exp[model]["requantize"]);
        let after = all_bytes(&out);
        assert!(
            after.values().all(|(d, _, _)| d != "I8"),
            "no FP4 expert left"
        );
        for (name, (d, _, _)) in &after {
            if name.ends_with(".scale") {
                assert_eq!(d, "F8_E8M0", "{name}");
            }
        }
        let cfg = config(&out);
        assert_eq!(cfg["expert_dtype"], "fp8", "{model}");
        assert_eq!(cfg["quantization_config"]["scale_fmt"], "ue8m0");
        // FP4 re-encodes are exact and report zero error; F32 -> UE8M0 requantization is not exact and
        // reports what it adds.
        for t in &s.manifest.tensors {
            if let Some(m) = &t.metrics {
                let fp4 = t.source_dtype.starts_with("FP4");
                assert_eq!(
                    m.max_abs == 0.0,
                    fp4 || t.action == "passed-through",
                    "{} {}",
                    t.name,
                    t.action
                );
            }
        }
    }
    // Flash: dense FP8 with E8M0 scales is copied byte for byte.
    let tmp = tempfile::tempdir().expect("tmp");
    let out = tmp.path().join("out");
    let ck = Checkpoint::open(fixture("flash")).expect("fixture");
    requantize_v4(
        &ck,
        V4RequantizeOptions::default(),
        &out,
        &opts(u64::MAX),
        &NoProgress,
    )
    .expect("requantize");
    let (src, dst) = (all_bytes(&fixture("flash")), all_bytes(&out));
    for name in ["layers.0.attn.wq_a.weight", "layers.0.attn.wq_a.scale"] {
        assert_eq!(src.get(name), dst.get(name));
    }
}

#[test]
fn base_power_of_two_scales_pass_through_byte_identical() {
    let ck = Checkpoint::open(fixture("base")).expect("fixture");
    let tmp = tempfile::tempdir().expect("tmp");
    let out = tmp.path().join("out");
    let s = requantize_v4(
        &ck,
        V4RequantizeOptions::default(),
        &out,
        &opts(u64::MAX),
        &NoProgress,
    )
    .expect("requantize");
    let rec = s
        .manifest
        .tensors
        .iter()
        .find(|t| t.name == "layers.1.attn.wkv.weight")
        .expect("record");
    assert_eq!(rec.action, "passed-through");
    let (src, dst) = (all_bytes(&fixture("base")), all_bytes(&out));
    let w = "layers.1.attn.wkv.weight";
    assert_eq!(src[w], dst[w]);
    // A non-power-of-two tensor really was requantized (its error is reported, not zero by fiat).
    let other = s
        .manifest
        .tensors
        .iter()
        .find(|t| t.name == "layers.0.attn.wq_a.weight")
        .expect("record");
    assert_eq!(other.action, "requantized");
    assert!(other.metrics.as_ref().is_some_and(|m| m.max_abs > 0.0));
}

#[test]
fn reencode_then_dequantize_equals_dequantize_byte_for_byte() {
    let ck = Checkpoint::open(fixture("flash")).expect("fixture");
    let tmp = tempfile::tempdir().expect("tmp");
    let fp8 = tmp.path().join("fp8");
    requantize_v4(
        &ck,
        V4RequantizeOptions::default(),
        &fp8,
        &opts(u64::MAX),
        &NoProgress,
    )
    .expect("requantize");
    let fp8_ck = Checkpoint::open(&fp8).expect("fp8 opens");
    for dtype in [OutDtype::Bf16, OutDtype::F32] {
        let a = tmp.path().join(format!("a-{}", dtype.torch_name()));
        let b = tmp.path().join(format!("b-{}", dtype.torch_name()));
        dequantize_v4(&ck, dtype, &a, &opts(u64::MAX), &NoProgress).expect("dequantize fp4");
        dequantize_v4(&fp8_ck, dtype, &b, &opts(u64::MAX), &NoProgress).expect("dequantize fp8");
        assert_eq!(all_bytes(&a), all_bytes(&b));
    }
}

#[test]
fn gap_past_the_bound_is_refused_before_anything_is_written() {
    let ck = Checkpoint::open(fixture("gap")).expect("fixture");
    let tmp = tempfile::tempdir().expect("tmp");
    let out = tmp.path().join("out");
    let err = requantize_v4(
        &ck,
        V4RequantizeOptions::default(),
        &out,
        &opts(u64::MAX),
        &NoProgress,
    )
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(
        err.contains("layers.0.ffn.experts.0.w1.weight")
            && err.contains("tile row 0, tile col 0")
            && err.contains("row 3"),
        "{err}"
    );
    assert!(!out.exists());
    assert_eq!(
        std::fs::read_dir(tmp.path()).map(|d| d.count()).ok(),
        Some(0),
        "no partial directory left"
    );
    // The numpy reference refuses the same tensors, and only those.
    let exp = expected();
    assert_eq!(
        exp["gap"]["refused"],
        serde_json::json!(["layers.0.ffn.experts.0.w1.weight"])
    );
}

#[test]
fn allow_lossy_rounds_to_nearest_even_and_reports_the_error() {
    let ck = Checkpoint::open(fixture("gap")).expect("fixture");
    let tmp = tempfile::tempdir().expect("tmp");
    let out = tmp.path().join("out");
    let s = requantize_v4(
        &ck,
        V4RequantizeOptions { allow_lossy: true },
        &out,
        &opts(u64::MAX),
        &NoProgress,
    )
    .expect("lossy requantize");
    assert_matches(&out, &expected()["gap_lossy"]["requantize"]);
    for t in &s.manifest.tensors {
        let lossy = t.reason.as_deref().is_some_and(|r| r.starts_with("LOSSY"));
        let err = t.metrics.as_ref().map_or(0.0, |m| m.max_abs);
        let is_bad = t.name == "layers.0.ffn.experts.0.w1.weight";
        assert_eq!(lossy, is_bad, "{}", t.name);
        assert_eq!(err > 0.0, is_bad, "{}: max_abs {err}", t.name);
    }
}

#[test]
fn inspect_reports_kinds_expert_dtype_and_reencode_exactness() {
    let flash = inspect_v4(&Checkpoint::open(fixture("flash")).expect("fixture"));
    assert!(flash.anomalies.is_empty(), "{:?}", flash.anomalies);
    assert_eq!(flash.fp4_experts, 18);
    assert_eq!(flash.fp4_reencode_exact, 18);
    assert!(!flash.expert_dtype_inferred);
    for k in [
        "fp8 block 128x128 (E8M0 scales)",
        "fp4 expert (I8-packed E2M1, E8M0 per 32)",
        "BF16",
        "F32",
        "I64",
    ] {
        assert!(flash.by_kind.contains_key(k), "{k}: {:?}", flash.by_kind);
    }
    let base = inspect_v4(&Checkpoint::open(fixture("base")).expect("fixture"));
    assert!(base.expert_dtype_inferred);
    assert!(
        base.expert_dtype.contains("inferred"),
        "{}",
        base.expert_dtype
    );
    assert!(base.by_kind.contains_key("fp8 block 128x128 (F32 scales)"));
    let gap = inspect_v4(&Checkpoint::open(fixture("gap")).expect("fixture"));
    assert_eq!(gap.fp4_experts, 4);
    assert_eq!(gap.fp4_reencode_exact, 3);
    assert_eq!(gap.fp4_max_gap, 15);
    let names: Vec<&str> = gap
        .fp4_reencode_not_exact
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(names, ["layers.0.ffn.experts.0.w1.weight"]);
}

#[test]
fn diff_between_fp4_original_and_fp8_reencode_is_zero() {
    let ck = Checkpoint::open(fixture("flash")).expect("fixture");
    let tmp = tempfile::tempdir().expect("tmp");
    let out = tmp.path().join("out");
    requantize_v4(
        &ck,
        V4RequantizeOptions::default(),
        &out,
        &opts(u64::MAX),
        &NoProgress,
    )
    .expect("requantize");
    let b = Checkpoint::open(&out).expect("opens");
    let d = ue8_convert::diff::diff(&ck, &b).expect("diff");
    assert!(d.only_in_a.is_empty() && d.only_in_b.is_empty() && d.shape_mismatch.is_empty());
    let experts: Vec<_> = d
        .tensors
        .iter()
        .filter(|t| t.name.contains(".ffn.experts."))
        .collect();
    assert_eq!(experts.len(), 18);
    for t in &d.tensors {
        assert_eq!(t.max_abs, 0.0, "{}", t.name);
        assert!(t.snr_db.is_none(), "{}: exact means infinite SNR", t.name);
    }
}
