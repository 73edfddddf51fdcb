//! Property tests of the FP4 -> FP8 re-encode bound (issue 11): every tensor whose 32-group scales stay
//! within 2^14 of their 128x128 tile's largest re-encodes exactly, for every code; 2^15 with code 0.5
//! is always refused.

use proptest::prelude::*;
use ue8_convert::v4::{max_tile_gap, reencode_tensor};
use ue8_formats::{Element, E2M1, E4M3};
use ue8_quant::REENCODE_MAX_GAP;

fn pow2(e: i32) -> f64 {
    2f64.powi(e)
}

fn pack(codes: &[u8]) -> Vec<u8> {
    codes.chunks(2).map(|c| c[0] | (c[1] << 4)).collect()
}

/// Rows, k (multiple of 32), codes, scales with every tile's gap <= 14.
fn within_bound() -> impl Strategy<Value = (usize, usize, Vec<u8>, Vec<u8>)> {
    (1usize..=140, 1usize..=9, 0u8..=254).prop_flat_map(|(n, kb, top)| {
        let k = kb * 32;
        let lo = top.saturating_sub(REENCODE_MAX_GAP as u8);
        (
            Just(n),
            Just(k),
            proptest::collection::vec(0u8..16, n * k),
            proptest::collection::vec(lo..=top, n * kb),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn within_the_bound_every_value_is_kept((n, k, codes, scales) in within_bound()) {
        prop_assert!(max_tile_gap(&scales, n, k) <= REENCODE_MAX_GAP);
        let r = reencode_tensor(&pack(&codes), &scales, n, k, false);
        prop_assert!(r.is_ok(), "{:?}", r.err());
        let r = r.unwrap_or_else(|_| unreachable!());
        prop_assert!(!r.lossy);
        let gc = k.div_ceil(128);
        for row in 0..n {
            for col in 0..k {
                let fp4 = f64::from(E2M1::from_bits(codes[row * k + col]).to_f32())
                    * pow2(i32::from(scales[row * (k / 32) + col / 32]) - 127);
                let t = r.tile_scales[(row / 128) * gc + col / 128];
                let fp8 = f64::from(E4M3::from_bits(r.codes[row * k + col]).to_f32())
                    * pow2(i32::from(t) - 127);
                prop_assert_eq!(fp4.to_bits(), fp8.to_bits(), "({}, {})", row, col);
            }
        }
    }

    #[test]
    fn past_the_bound_half_is_refused(n in 1usize..=130, row in 0usize..130, top in 15u8..=254) {
        let row = row % n;
        let k = 64;
        let mut scales = vec![top; n * 2];
        let mut codes = vec![4u8; n * k];
        scales[row * 2 + 1] = top - 15;
        codes[row * k + 40] = 1; // 0.5 at 2^15 below the tile's largest -> 2^-10
        let err = reencode_tensor(&pack(&codes), &scales, n, k, false).err().map(|e| e.to_string());
        let want = format!("tile row {}, tile col 0", row / 128);
        prop_assert!(err.as_deref().is_some_and(|e| e.contains(&want) && e.contains(&format!("row {row}, col 40"))), "{:?}", err);
    }
}

#[test]
fn edge_shapes() {
    for n in [0usize, 1, 31, 33, 127, 128, 129] {
        for k in [0usize, 32, 96, 128, 160] {
            let codes = vec![7u8; n * k];
            let scales = vec![130u8; n * k / 32];
            let r = reencode_tensor(&pack(&codes), &scales, n, k, false).expect("exact");
            assert_eq!(r.codes.len(), n * k);
            assert_eq!(r.tile_scales.len(), n.div_ceil(128) * k.div_ceil(128));
            // 6 * 2^(130-127) = 48: tile byte 124 (2^-3), element 6 * 2^6 = 384 = E4M3 0x7C
            assert!(r.codes.iter().all(|&c| c == 0x7C));
            assert!(r.tile_scales.iter().all(|&t| t == 124));
        }
    }
}
