//! Bit-for-bit comparison with the ml_dtypes golden vectors in `tests/fixtures/`, written by
//! `tools/golden/gen_scalar.py` (layouts in `tools/golden/README.md`). `Ieee` is ml_dtypes' own cast;
//! `Saturate` is the script's clip-to-+-max followed by that cast.

use half::{bf16, f16};
use ue8_formats::{
    decode_table, e4m3_to_f32_via_f16_bits, f32_to_bf16_rne, Element, Overflow, E2M1, E2M3, E3M2,
    E4M3, E5M2, E8M0,
};

/// How many mismatches a failing test prints (the total count is always printed).
const SHOW_MISMATCHES: usize = 12;

macro_rules! fixture {
    ($file:literal) => {
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/",
            $file
        ))
        .as_slice()
    };
}

/// Collects mismatches and fails once with the first few, so one run shows the whole picture.
struct Mismatches {
    what: String,
    total: usize,
    shown: Vec<String>,
}

impl Mismatches {
    fn new(what: impl Into<String>) -> Self {
        Mismatches {
            what: what.into(),
            total: 0,
            shown: Vec::new(),
        }
    }
    fn push(&mut self, line: String) {
        self.total += 1;
        if self.shown.len() < SHOW_MISMATCHES {
            self.shown.push(line);
        }
    }
    fn finish(self, checked: usize) {
        assert!(checked > 0, "{}: fixture is empty", self.what);
        assert!(
            self.total == 0,
            "{}: {} of {} disagree with ml_dtypes; first ones:\n{}",
            self.what,
            self.total,
            checked,
            self.shown.join("\n")
        );
    }
}

/// Records of `u32le input f32 bits, u8 expected code`.
fn encode_records(bytes: &[u8]) -> impl Iterator<Item = (u32, u8)> + '_ {
    assert_eq!(
        bytes.len() % 5,
        0,
        "encode fixture length {} is not a multiple of 5",
        bytes.len()
    );
    bytes
        .chunks_exact(5)
        .map(|r| (u32::from_le_bytes([r[0], r[1], r[2], r[3]]), r[4]))
}

fn check_encode(what: &str, bytes: &[u8], convert: impl Fn(f32) -> u8) {
    let mut bad = Mismatches::new(what);
    let mut n = 0;
    for (x, want) in encode_records(bytes) {
        n += 1;
        let got = convert(f32::from_bits(x));
        if got != want {
            bad.push(format!(
                "  input {x:#010x} ({:e}): expected {want:#04x}, got {got:#04x}",
                f32::from_bits(x)
            ));
        }
    }
    bad.finish(n);
}

fn check_encode_element<T: Element>(bytes: &[u8], mode: Overflow) {
    let what = format!("f32 -> {} ({mode:?})", T::ML_DTYPES_NAME);
    check_encode(&what, bytes, |x| T::from_f32(x, mode).to_bits());
}

/// Expected f32 bits per code, NaN bits included (ml_dtypes gives 0x7fc00000 with the code's sign).
fn decode_records(bytes: &[u8]) -> Vec<u32> {
    assert_eq!(bytes.len() % 4, 0);
    bytes
        .chunks_exact(4)
        .map(|r| u32::from_le_bytes([r[0], r[1], r[2], r[3]]))
        .collect()
}

fn check_decode(what: &str, bytes: &[u8], convert: impl Fn(u8) -> f32) {
    let want = decode_records(bytes);
    let mut bad = Mismatches::new(what);
    for (code, &w) in want.iter().enumerate() {
        let code = u8::try_from(code).expect("at most 256 codes");
        let got = convert(code).to_bits();
        if got != w {
            bad.push(format!(
                "  code {code:#04x}: expected {w:#010x} ({:e}), got {got:#010x} ({:e})",
                f32::from_bits(w),
                f32::from_bits(got)
            ));
        }
    }
    bad.finish(want.len());
}

fn check_decode_element<T: Element>(bytes: &[u8]) {
    assert_eq!(
        bytes.len(),
        4 << T::BITS,
        "decode fixture of {} must list every code",
        T::ML_DTYPES_NAME
    );
    check_decode(&format!("{} -> f32", T::ML_DTYPES_NAME), bytes, |c| {
        T::from_bits(c).to_f32()
    });
    // the table the kernels use says the same, bit for bit
    let table = decode_table::<T>();
    check_decode(
        &format!("decode_table::<{}>", T::ML_DTYPES_NAME),
        bytes,
        |c| table[usize::from(c)],
    );
}

/// Codes indexed by the 16-bit source pattern.
fn check_widen<T: Element>(src: &str, bytes: &[u8], mode: Overflow, convert: impl Fn(u16) -> T) {
    assert_eq!(
        bytes.len(),
        1 << 16,
        "widen fixture must hold all 65536 patterns"
    );
    let mut bad = Mismatches::new(format!("{src} -> {} ({mode:?})", T::ML_DTYPES_NAME));
    for (b, &want) in bytes.iter().enumerate() {
        let b = u16::try_from(b).expect("65536 entries");
        let got = convert(b).to_bits();
        if got != want {
            bad.push(format!(
                "  {src} bits {b:#06x}: expected {want:#04x}, got {got:#04x}"
            ));
        }
    }
    bad.finish(bytes.len());
}

fn check_widen_both<T: Element>(bf16_bytes: &[u8], f16_bytes: &[u8], mode: Overflow) {
    check_widen::<T>("bf16", bf16_bytes, mode, |b| {
        T::from_bf16(bf16::from_bits(b), mode)
    });
    check_widen::<T>("f16", f16_bytes, mode, |b| {
        T::from_f16(f16::from_bits(b), mode)
    });
}

#[test]
fn e4m3_encode_matches_ml_dtypes() {
    check_encode_element::<E4M3>(fixture!("encode_e4m3_ieee.bin"), Overflow::Ieee);
    check_encode_element::<E4M3>(fixture!("encode_e4m3_saturate.bin"), Overflow::Saturate);
}

#[test]
fn e5m2_encode_matches_ml_dtypes() {
    check_encode_element::<E5M2>(fixture!("encode_e5m2_ieee.bin"), Overflow::Ieee);
    check_encode_element::<E5M2>(fixture!("encode_e5m2_saturate.bin"), Overflow::Saturate);
}

#[test]
fn e3m2_encode_matches_ml_dtypes() {
    check_encode_element::<E3M2>(fixture!("encode_e3m2_ieee.bin"), Overflow::Ieee);
    check_encode_element::<E3M2>(fixture!("encode_e3m2_saturate.bin"), Overflow::Saturate);
}

#[test]
fn e2m3_encode_matches_ml_dtypes() {
    check_encode_element::<E2M3>(fixture!("encode_e2m3_ieee.bin"), Overflow::Ieee);
    check_encode_element::<E2M3>(fixture!("encode_e2m3_saturate.bin"), Overflow::Saturate);
}

#[test]
fn e2m1_encode_matches_ml_dtypes() {
    check_encode_element::<E2M1>(fixture!("encode_e2m1_ieee.bin"), Overflow::Ieee);
    check_encode_element::<E2M1>(fixture!("encode_e2m1_saturate.bin"), Overflow::Saturate);
}

#[test]
fn e8m0_encode_matches_ml_dtypes() {
    for (bytes, mode) in [
        (fixture!("encode_e8m0_ieee.bin"), Overflow::Ieee),
        (fixture!("encode_e8m0_saturate.bin"), Overflow::Saturate),
    ] {
        check_encode(&format!("f32 -> float8_e8m0fnu ({mode:?})"), bytes, |x| {
            E8M0::from_f32(x, mode).to_bits()
        });
    }
}

#[test]
fn every_code_decodes_as_ml_dtypes() {
    check_decode_element::<E4M3>(fixture!("decode_e4m3.bin"));
    check_decode_element::<E5M2>(fixture!("decode_e5m2.bin"));
    check_decode_element::<E3M2>(fixture!("decode_e3m2.bin"));
    check_decode_element::<E2M3>(fixture!("decode_e2m3.bin"));
    check_decode_element::<E2M1>(fixture!("decode_e2m1.bin"));
    let bytes = fixture!("decode_e8m0.bin");
    assert_eq!(bytes.len(), 4 * 256);
    check_decode("float8_e8m0fnu -> f32", bytes, |c| {
        E8M0::from_bits(c).to_f32()
    });
}

#[test]
fn e4m3_f16_bit_trick_is_exact_for_every_non_nan_code() {
    // formats.md section 5: the NaN codes come out as +-480 by design, every other code exactly.
    let want = decode_records(fixture!("decode_e4m3.bin"));
    let mut bad = Mismatches::new("e4m3_to_f32_via_f16_bits");
    for code in 0..=255u8 {
        let got = e4m3_to_f32_via_f16_bits(code);
        let expected = if code & 0x7F == 0x7F {
            if code & 0x80 == 0 { 480.0f32 } else { -480.0 }.to_bits()
        } else {
            want[usize::from(code)]
        };
        if got.to_bits() != expected {
            bad.push(format!(
                "  code {code:#04x}: expected {expected:#010x}, got {:#010x}",
                got.to_bits()
            ));
        }
    }
    bad.finish(256);
}

#[test]
fn bf16_and_f16_inputs_match_ml_dtypes() {
    use Overflow::{Ieee, Saturate};
    check_widen_both::<E4M3>(
        fixture!("widen_bf16_e4m3_ieee.bin"),
        fixture!("widen_f16_e4m3_ieee.bin"),
        Ieee,
    );
    check_widen_both::<E4M3>(
        fixture!("widen_bf16_e4m3_saturate.bin"),
        fixture!("widen_f16_e4m3_saturate.bin"),
        Saturate,
    );
    check_widen_both::<E5M2>(
        fixture!("widen_bf16_e5m2_ieee.bin"),
        fixture!("widen_f16_e5m2_ieee.bin"),
        Ieee,
    );
    check_widen_both::<E5M2>(
        fixture!("widen_bf16_e5m2_saturate.bin"),
        fixture!("widen_f16_e5m2_saturate.bin"),
        Saturate,
    );
    // FP6 / FP4 have no inf and no NaN: ml_dtypes' cast already saturates, so both modes must
    // agree with the same table (the script stores it once).
    for mode in [Ieee, Saturate] {
        check_widen_both::<E3M2>(
            fixture!("widen_bf16_e3m2_ieee.bin"),
            fixture!("widen_f16_e3m2_ieee.bin"),
            mode,
        );
        check_widen_both::<E2M3>(
            fixture!("widen_bf16_e2m3_ieee.bin"),
            fixture!("widen_f16_e2m3_ieee.bin"),
            mode,
        );
        check_widen_both::<E2M1>(
            fixture!("widen_bf16_e2m1_ieee.bin"),
            fixture!("widen_f16_e2m1_ieee.bin"),
            mode,
        );
    }
}

#[test]
fn f32_to_bf16_matches_ml_dtypes() {
    let bytes = fixture!("round_f32_bf16.bin");
    assert_eq!(bytes.len() % 6, 0);
    let mut bad = Mismatches::new("f32 -> bfloat16 (f32_to_bf16_rne)");
    for r in bytes.chunks_exact(6) {
        let x = u32::from_le_bytes([r[0], r[1], r[2], r[3]]);
        let want = u16::from_le_bytes([r[4], r[5]]);
        let got = f32_to_bf16_rne(f32::from_bits(x)).to_bits();
        if got != want {
            bad.push(format!(
                "  input {x:#010x}: expected {want:#06x}, got {got:#06x}"
            ));
        }
    }
    bad.finish(bytes.len() / 6);
}

#[test]
fn manifest_matches_fixture_sizes() {
    let manifest: serde_json::Value = serde_json::from_str(include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/manifest.json"
    )))
    .expect("manifest.json parses");
    assert_eq!(
        manifest["ml_dtypes"], "0.6.0",
        "fixtures must come from the pinned ml_dtypes"
    );
    let files = manifest["files"].as_object().expect("files map");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for (name, info) in files {
        let records = info["records"].as_u64().expect("record count");
        let per = if name.starts_with("encode_") {
            5
        } else if name.starts_with("decode_") {
            4
        } else if name.starts_with("round_") {
            6
        } else {
            1
        };
        let len = std::fs::metadata(dir.join(name))
            .map(|m| m.len())
            .unwrap_or(0);
        assert_eq!(
            len,
            records * per,
            "{name}: size does not match the manifest"
        );
    }
    // every fixture this file includes is listed, so a regenerated set cannot silently drop one
    assert_eq!(
        files.len(),
        33,
        "fixture count changed: update golden.rs to test the new files"
    );
}
