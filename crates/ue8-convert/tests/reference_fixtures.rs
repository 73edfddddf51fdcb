//! Bit-for-bit comparison of ue8's conversions with the independent numpy + ml_dtypes reference
//! (tools/convert_ref/convert_ref.py, fixtures committed under tests/fixtures/ref): quantize to every
//! format and rule, dequantize each result to BF16, and requantize an F32-scale FP8 checkpoint.
//! Shapes include 1x1, 31x33, 129x160 and 130x97 (partial 128-tiles, partial 32-blocks, padded rows).

use std::path::{Path, PathBuf};
use ue8_convert::{
    execute, plan_dequantize, plan_quantize, plan_requantize, NoProgress, OutDtype,
    QuantizePlanOptions, RuleChoice, RunOptions, ScaleDtype, Scheme, TargetFormat,
};
use ue8_io::Checkpoint;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ref")
}

fn opts() -> RunOptions {
    RunOptions {
        max_shard_size: 5_000_000_000,
        force: false,
        command_line: vec!["test".into()],
    }
}

/// Every tensor of `expected` must be in `got` with the same dtype, shape and bytes; so must the
/// logical-shape metadata.
fn assert_same_tensors(got: &Checkpoint, expected: &Checkpoint, what: &str) {
    let mut n = 0;
    for e in expected.tensors() {
        let g = got
            .tensor(e.name)
            .unwrap_or_else(|_| panic!("{what}: missing tensor {}", e.name));
        assert_eq!(
            (g.dtype, g.shape),
            (e.dtype, e.shape),
            "{what}: {} dtype/shape",
            e.name
        );
        if g.bytes != e.bytes {
            let i = g
                .bytes
                .iter()
                .zip(e.bytes)
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            panic!(
                "{what}: tensor {} differs first at byte {i}: ue8 {:#04x}, reference {:#04x} ({} of {} bytes differ)",
                e.name,
                g.bytes[i],
                e.bytes[i],
                g.bytes.iter().zip(e.bytes).filter(|(a, b)| a != b).count(),
                e.bytes.len()
            );
        }
        let key = ue8_io::layout::logical_shape_key(e.name);
        assert_eq!(
            got.file_metadata(e.name, &key),
            expected.file_metadata(e.name, &key),
            "{what}: {key}"
        );
        n += 1;
    }
    assert!(n > 0, "{what}: empty expectation");
}

fn variant(name: &str) -> (TargetFormat, Option<RuleChoice>, Option<ScaleDtype>) {
    match name {
        "fp8-ue8m0" => (TargetFormat::Fp8Ue8m0, None, None),
        "fp8-ue8m0-e8m0" => (TargetFormat::Fp8Ue8m0, None, Some(ScaleDtype::E8m0)),
        "fp8" => (TargetFormat::Fp8, None, None),
        "mxfp8" => (TargetFormat::Mxfp8, None, None),
        "mxfp8-rceil" => (TargetFormat::Mxfp8, Some(RuleChoice::Rceil), None),
        "mxfp8-e5m2" => (TargetFormat::Mxfp8E5m2, None, None),
        "mxfp6-e3m2" => (TargetFormat::Mxfp6E3m2, None, None),
        "mxfp6-e2m3" => (TargetFormat::Mxfp6E2m3, None, None),
        "mxfp4" => (TargetFormat::Mxfp4, None, None),
        "mxfp4-rceil" => (
            TargetFormat::Mxfp4,
            Some(RuleChoice::Rceil),
            Some(ScaleDtype::E8m0),
        ),
        "fp8-ue8m0-lm-head" => (TargetFormat::Fp8Ue8m0, None, None),
        "mxfp4-lm-head" => (TargetFormat::Mxfp4, None, None),
        _ => unreachable!(),
    }
}

const VARIANTS: [&str; 12] = [
    "fp8-ue8m0",
    "fp8-ue8m0-e8m0",
    "fp8",
    "mxfp8",
    "mxfp8-rceil",
    "mxfp8-e5m2",
    "mxfp6-e3m2",
    "mxfp6-e2m3",
    "mxfp4",
    "mxfp4-rceil",
    "fp8-ue8m0-lm-head",
    "mxfp4-lm-head",
];

#[test]
fn quantize_and_dequantize_match_the_numpy_reference() {
    let input = Checkpoint::open(fixtures().join("input")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    for v in VARIANTS {
        let (format, rule, sd) = variant(v);
        let scheme = Scheme::resolve(format, rule, sd).unwrap();
        let plan = plan_quantize(
            &input,
            &QuantizePlanOptions {
                format,
                scheme,
                keep: vec![],
                quantize_lm_head: v.ends_with("-lm-head"),
            },
        )
        .unwrap();
        let out = tmp.path().join(v);
        execute(&input, &plan, &out, &opts(), &NoProgress).unwrap();
        let got = Checkpoint::open(&out).unwrap();
        let expected =
            Checkpoint::open(fixtures().join(format!("expected/{v}.safetensors"))).unwrap();
        assert_same_tensors(&got, &expected, v);
        assert_eq!(got.len(), expected.len(), "{v}: tensor count");

        let deq = tmp.path().join(format!("{v}-deq"));
        let plan = plan_dequantize(&got, OutDtype::Bf16).unwrap();
        execute(&got, &plan, &deq, &opts(), &NoProgress).unwrap();
        let got_deq = Checkpoint::open(&deq).unwrap();
        let expected_deq =
            Checkpoint::open(fixtures().join(format!("expected/{v}.dequant-bf16.safetensors")))
                .unwrap();
        assert_same_tensors(&got_deq, &expected_deq, &format!("{v} dequantized"));
        assert!(got_deq
            .config()
            .unwrap()
            .get("quantization_config")
            .is_none());
        // MX dequantize drops every companion (issue 8 item 5): the names are the input's names.
        let mut names: Vec<&str> = got_deq.tensors().map(|t| t.name).collect();
        let mut want: Vec<&str> = input.tensors().map(|t| t.name).collect();
        names.sort();
        want.sort();
        assert_eq!(names, want, "{v}: dequantized names");
    }
}

#[test]
fn requantize_matches_the_numpy_reference_and_passes_power_of_two_scales_through() {
    let input = Checkpoint::open(fixtures().join("requant-input")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("rq");
    let plan = plan_requantize(&input, false).unwrap();
    let summary = execute(&input, &plan, &out, &opts(), &NoProgress).unwrap();
    let got = Checkpoint::open(&out).unwrap();
    let expected = Checkpoint::open(fixtures().join("expected/requantized.safetensors")).unwrap();
    assert_same_tensors(&got, &expected, "requantize");
    let gate = "model.layers.0.mlp.gate_proj.weight";
    let rec = summary
        .manifest
        .tensors
        .iter()
        .find(|t| t.name == gate)
        .unwrap();
    assert_eq!(rec.action, "passed-through");
    assert_eq!(
        got.tensor(gate).unwrap().bytes,
        input.tensor(gate).unwrap().bytes
    );
    let q = summary
        .manifest
        .tensors
        .iter()
        .find(|t| t.name.ends_with("q_proj.weight"))
        .unwrap();
    assert_eq!(q.action, "requantized");
    assert!(q.metrics.as_ref().unwrap().snr_db.unwrap() > 20.0);
    assert_eq!(
        got.config().unwrap()["quantization_config"]["scale_fmt"],
        "ue8m0"
    );
}
