//! Block schemes against the independent numpy implementation in tools/golden/gen_blocks.py
//! (fixtures committed under tests/fixtures/), bit for bit.

use half::bf16;
use serde_json::Value;
use ue8_quant::mxfp4::{dequantize_mxfp4_to_f32, quantize_mxfp4_f32, quantize_mxfp4_ref};
use ue8_quant::{
    pack_e2m1, pack_fp6, reencode_mxfp4_to_fp8, reencode_mxfp4_to_fp8_lossy, scales_to_e8m0,
    unpack_e2m1, unpack_fp6, BlockFp8, MxElement, MxScaleRule, MxScheme, NonFinite, QuantError,
    ScaleRule,
};

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn hex(v: &Value) -> Vec<u8> {
    let s = v.as_str().expect("hex string");
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex digit"))
        .collect()
}

fn f32s(v: &Value) -> Vec<f32> {
    hex(v)
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn u16s(v: &Value) -> Vec<u16> {
    hex(v)
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect()
}

/// Bit equality, except that any two NaNs match (numpy and Rust may differ in NaN payload/sign).
fn same_f32(a: &[f32], b: &[f32], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: length");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()),
            "{what}[{i}]: {x:e} ({:#010x}) vs numpy {y:e} ({:#010x})",
            x.to_bits(),
            y.to_bits()
        );
    }
}

fn same_bf16(a: &[bf16], b: &[u16], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: length");
    for (i, (x, &y)) in a.iter().zip(b).enumerate() {
        let yb = bf16::from_bits(y);
        assert!(
            x.to_bits() == y || (x.is_nan() && yb.is_nan()),
            "{what}[{i}]: {x} vs numpy {yb}"
        );
    }
}

#[test]
fn deepseek_blocks_match_numpy() {
    let doc = fixture("deepseek_blocks.json");
    let cases = doc["cases"].as_array().expect("cases");
    assert!(cases.len() >= 5);
    for case in cases {
        let name = case["name"].as_str().unwrap_or("?");
        let (n, k) = (
            case["n"].as_u64().unwrap_or(0) as usize,
            case["k"].as_u64().unwrap_or(0) as usize,
        );
        let src_bf16: Option<Vec<bf16>> = case
            .get("input_bf16")
            .map(|v| u16s(v).into_iter().map(bf16::from_bits).collect());
        let src: Vec<f32> = match &src_bf16 {
            Some(b) => b.iter().map(|v| v.to_f32()).collect(),
            None => f32s(&case["input_f32"]),
        };
        assert_eq!(src.len(), n * k, "{name}");
        for out in case["outputs"].as_array().expect("outputs") {
            let rule = match out["rule"].as_str() {
                Some("ue8m0") => ScaleRule::Ue8m0Ceil,
                _ => ScaleRule::F32,
            };
            let tile = out["tile"].as_array().expect("tile");
            let scheme = BlockFp8 {
                rule,
                tile_rows: tile[0].as_u64().unwrap_or(0) as usize,
                tile_cols: tile[1].as_u64().unwrap_or(0) as usize,
            };
            let what = format!("{name} {rule:?} {}x{}", scheme.tile_rows, scheme.tile_cols);
            let want_q = hex(&out["codes"]);
            let want_s = f32s(&out["scales_f32"]);
            let mut q = vec![0u8; n * k];
            let mut s = vec![0f32; want_s.len()];
            scheme
                .quantize_f32(&src, n, k, NonFinite::Allow, &mut q, &mut s)
                .unwrap();
            assert_eq!(q, want_q, "{what}: codes (fast)");
            same_f32(&s, &want_s, &format!("{what}: scales"));
            let (mut q2, mut s2) = (vec![0u8; n * k], vec![0f32; want_s.len()]);
            scheme
                .quantize_ref(&src, n, k, NonFinite::Allow, &mut q2, &mut s2)
                .unwrap();
            assert_eq!(q2, want_q, "{what}: codes (ref)");
            if let Some(b) = &src_bf16 {
                let (mut q3, mut s3) = (vec![0u8; n * k], vec![0f32; want_s.len()]);
                scheme
                    .quantize_bf16(b, n, k, NonFinite::Allow, &mut q3, &mut s3)
                    .unwrap();
                assert_eq!(q3, want_q, "{what}: codes from bf16");
                same_f32(&s3, &want_s, &format!("{what}: scales from bf16"));
            }
            if let Some(e) = out.get("scales_e8m0") {
                let mut bytes = vec![0u8; s.len()];
                scales_to_e8m0(&s, &mut bytes).unwrap();
                assert_eq!(bytes, hex(e), "{what}: E8M0 scale bytes");
            }
            if let Some(d) = out.get("dequant_f32") {
                let mut f = vec![0f32; n * k];
                scheme.dequantize_to_f32(&q, &s, n, k, &mut f).unwrap();
                same_f32(&f, &f32s(d), &format!("{what}: dequant f32"));
                let mut b = vec![bf16::ZERO; n * k];
                scheme.dequantize_to_bf16(&q, &s, n, k, &mut b).unwrap();
                same_bf16(
                    &b,
                    &u16s(&out["dequant_bf16"]),
                    &format!("{what}: dequant bf16"),
                );
            }
        }
    }
}

#[test]
fn deepseek_reject_names_first_nonfinite_position() {
    let doc = fixture("deepseek_blocks.json");
    let case = doc["cases"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "nonfinite_3x200"))
        .expect("nonfinite case");
    let src = f32s(&case["input_f32"]);
    let (mut q, mut s) = (vec![0u8; 600], vec![0f32; 2]);
    let err = BlockFp8::WEIGHT
        .quantize_f32(&src, 3, 200, NonFinite::Reject, &mut q, &mut s)
        .unwrap_err();
    // gen_blocks.py puts +inf at (0, 199), NaN at (1, 10), -inf at (2, 150): row-major first wins.
    assert_eq!(
        err,
        QuantError::NonFinite {
            row: 0,
            col: 199,
            value: f32::INFINITY
        }
    );
    let err = BlockFp8::WEIGHT
        .quantize_f32_par(&src, 3, 200, NonFinite::Reject, &mut q, &mut s)
        .unwrap_err();
    assert!(matches!(
        err,
        QuantError::NonFinite {
            row: 0,
            col: 199,
            ..
        }
    ));
}

fn elem_of(s: &str) -> MxElement {
    match s {
        "e4m3" => MxElement::E4M3,
        "e5m2" => MxElement::E5M2,
        "e3m2" => MxElement::E3M2,
        "e2m3" => MxElement::E2M3,
        _ => MxElement::E2M1,
    }
}

#[test]
fn mx_blocks_match_numpy() {
    let doc = fixture("mx_blocks.json");
    let mut seen = 0;
    for case in doc["cases"].as_array().expect("cases") {
        let name = case["name"].as_str().unwrap_or("?");
        let (n, k) = (
            case["n"].as_u64().unwrap_or(0) as usize,
            case["k"].as_u64().unwrap_or(0) as usize,
        );
        let src = f32s(&case["input_f32"]);
        let nb = MxScheme::blocks_per_row(k);
        for out in case["outputs"].as_array().expect("outputs") {
            let elem = elem_of(out["elem"].as_str().unwrap_or(""));
            let rule = match out["rule"].as_str() {
                Some("floor") => MxScaleRule::Floor,
                _ => MxScaleRule::Rceil,
            };
            let what = format!("{name} {elem:?} {rule:?}");
            let scheme = MxScheme { elem, rule };
            let (mut codes, mut scales) = (vec![0u8; n * k], vec![0u8; n * nb]);
            scheme
                .quantize_f32(&src, n, k, &mut codes, &mut scales)
                .unwrap();
            assert_eq!(scales, hex(&out["scales"]), "{what}: scales");
            assert_eq!(codes, hex(&out["codes"]), "{what}: codes");
            let mut f = vec![0f32; n * k];
            scheme
                .dequantize_to_f32(&codes, &scales, n, k, &mut f)
                .unwrap();
            same_f32(&f, &f32s(&out["dequant_f32"]), &format!("{what}: dequant"));
            let mut b = vec![bf16::ZERO; n * k];
            scheme
                .dequantize_to_bf16(&codes, &scales, n, k, &mut b)
                .unwrap();
            same_bf16(&b, &u16s(&out["dequant_bf16"]), &format!("{what}: bf16"));
            if let Some(p) = out.get("packed_hf") {
                let want = hex(p);
                let (mut packed, mut sc) = (vec![0u8; n * nb * 16], vec![0u8; n * nb]);
                quantize_mxfp4_f32(rule, &src, n, k, &mut packed, &mut sc).unwrap();
                assert_eq!((&packed, &sc), (&want, &scales), "{what}: packed (fast)");
                quantize_mxfp4_ref(rule, &src, n, k, &mut packed, &mut sc).unwrap();
                assert_eq!(packed, want, "{what}: packed (ref)");
                let mut g = vec![0f32; n * k];
                dequantize_mxfp4_to_f32(&packed, &sc, n, k, &mut g).unwrap();
                same_f32(
                    &g,
                    &f32s(&out["dequant_f32"]),
                    &format!("{what}: packed dequant"),
                );
            }
            seen += 1;
        }
    }
    assert_eq!(seen, 3 * 5 * 2, "every case x element x rule");
}

/// Rule source: safetensors 0.8 defines sub-byte sizes only (`n * bits / 8` bytes); F4 maps to
/// torch.float4_e2m1fn_x2 (first element in the low nibble). gen_blocks.py packs with
/// `numpy.packbits(bitorder="little")`, the same little-endian bit stream ue8 uses for F4 and F6.
#[test]
fn packing_matches_numpy_packbits() {
    let doc = fixture("packing.json");
    for case in doc["cases"].as_array().expect("cases") {
        let codes = hex(&case["codes"]);
        let want = hex(&case["packed"]);
        let mut packed = vec![0u8; want.len()];
        let mut back = vec![0u8; codes.len()];
        match case["bits"].as_u64() {
            Some(6) => {
                pack_fp6(&codes, &mut packed).unwrap();
                unpack_fp6(&want, &mut back).unwrap();
            }
            _ => {
                pack_e2m1(&codes, &mut packed).unwrap();
                unpack_e2m1(&want, &mut back).unwrap();
            }
        }
        assert_eq!(
            packed,
            want,
            "{} codes of {:?} bits",
            codes.len(),
            case["bits"]
        );
        assert_eq!(back, codes);
    }
}

/// DeepSeek-V4 FP4 -> FP8 re-encode against gen_blocks.py's numpy version (tile byte = largest
/// group byte - 6, E4M3 by ml_dtypes RNE): exact cases byte for byte, lossy ones refused by the
/// exact entry point and matched byte for byte by the lossy one.
#[test]
fn reencode_fp4_to_fp8_matches_numpy() {
    let doc = fixture("reencode_fp4_fp8.json");
    let mut lossy_seen = false;
    for case in doc["cases"].as_array().expect("cases") {
        let name = case["name"].as_str().unwrap_or("?");
        let (n, k) = (
            case["n"].as_u64().unwrap_or(0) as usize,
            case["k"].as_u64().unwrap_or(0) as usize,
        );
        let (packed, scales) = (hex(&case["packed"]), hex(&case["scales"]));
        let (want_q, want_t) = (hex(&case["codes_e4m3"]), hex(&case["tile_scales"]));
        let inexact = case["inexact"].as_u64().unwrap_or(u64::MAX);
        let (mut q, mut t) = (vec![0u8; n * k], vec![0u8; want_t.len()]);
        let exact = reencode_mxfp4_to_fp8(&packed, &scales, n, k, &mut q, &mut t);
        if inexact == 0 {
            let r = exact.unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!((&q, &t), (&want_q, &want_t), "{name}");
            assert_eq!(r.inexact, 0);
        } else {
            lossy_seen = true;
            assert!(
                matches!(exact, Err(QuantError::ReencodeNotExact { .. })),
                "{name}"
            );
            let r = reencode_mxfp4_to_fp8_lossy(&packed, &scales, n, k, &mut q, &mut t).unwrap();
            assert_eq!((&q, &t), (&want_q, &want_t), "{name}");
            assert_eq!(r.inexact, inexact, "{name}");
        }
    }
    assert!(lossy_seen);
}
