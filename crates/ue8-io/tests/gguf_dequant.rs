//! Dequantizers against the oracle: `gguf.quants.dequantize` of the PyPI `gguf` package, run by
//! tools/golden/gen_gguf.py on random blocks whose scales run through edge values (zero, -0,
//! subnormal, max, inf, NaN; for MXFP4 the E8M0 bytes 0, 1, 2, 126, 127, 128, 254, 255).

use std::path::PathBuf;

use ue8_io::gguf::{dequantize_to_f32, GgmlType};

/// Bit-exact: every output bit pattern must equal the oracle's, NaN payloads included.
const ORACLE_ULPS: u32 = 0;

fn fixture(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/gguf")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn check(ty: GgmlType) {
    let raw = fixture(&format!("dequant_{}.bin", ty.name()));
    let expected: Vec<u32> = fixture(&format!("dequant_{}.f32", ty.name()))
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let mut out = vec![0f32; expected.len()];
    dequantize_to_f32(ty, &raw, &mut out).unwrap();
    let mut bad = 0;
    for (i, (got, want)) in out.iter().zip(&expected).enumerate() {
        let diff = got.to_bits().abs_diff(*want);
        if diff > ORACLE_ULPS {
            if bad < 5 {
                eprintln!(
                    "{ty} element {i}: got {:#010x} ({got}), oracle {want:#010x} ({})",
                    got.to_bits(),
                    f32::from_bits(*want)
                );
            }
            bad += 1;
        }
    }
    assert_eq!(
        bad,
        0,
        "{ty}: {bad} of {} values differ from the oracle",
        out.len()
    );
    // The fixtures must exercise the edge cases they claim to.
    assert!(
        out.iter().any(|v| v.is_nan()) || matches!(ty, GgmlType::Mxfp4),
        "{ty}: no NaN case"
    );
    assert!(
        out.iter().any(|v| *v != 0.0 && v.is_finite()),
        "{ty}: no ordinary values"
    );
}

#[test]
fn f32_matches_oracle() {
    check(GgmlType::F32);
}

#[test]
fn f16_matches_oracle() {
    check(GgmlType::F16);
}

#[test]
fn bf16_matches_oracle() {
    check(GgmlType::Bf16);
}

#[test]
fn q8_0_matches_oracle() {
    check(GgmlType::Q8_0);
}

#[test]
fn q4_0_matches_oracle() {
    check(GgmlType::Q4_0);
}

#[test]
fn q4_1_matches_oracle() {
    check(GgmlType::Q4_1);
}

#[test]
fn q4_k_matches_oracle() {
    check(GgmlType::Q4K);
}

#[test]
fn q6_k_matches_oracle() {
    check(GgmlType::Q6K);
}

#[test]
fn mxfp4_matches_oracle() {
    check(GgmlType::Mxfp4);
}

/// Prefixes of whole blocks decode to the prefix of the full output (0, 1, 31, 33 ... elements for
/// the plain types, 0, 1, 2 ... blocks for the block types).
#[test]
fn block_prefixes_decode_independently() {
    for ty in [
        GgmlType::F16,
        GgmlType::Q8_0,
        GgmlType::Q4_1,
        GgmlType::Q4K,
        GgmlType::Mxfp4,
    ] {
        let raw = fixture(&format!("dequant_{}.bin", ty.name()));
        let block = ty.block_elems() as usize;
        let bytes = ty.block_bytes() as usize;
        let n_blocks = raw.len() / bytes;
        let mut full = vec![0f32; n_blocks * block];
        dequantize_to_f32(ty, &raw, &mut full).unwrap();
        for k in [0, 1, 2, 31, 33].into_iter().filter(|&k| k <= n_blocks) {
            let mut part = vec![0f32; k * block];
            dequantize_to_f32(ty, &raw[..k * bytes], &mut part).unwrap();
            let same = part
                .iter()
                .zip(&full)
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "{ty}: first {k} blocks differ");
        }
    }
}
