//! Property tests: round trips on representable grids and dequantization error bounds.

use half::bf16;
use proptest::prelude::*;
use ue8_quant::mxfp4::{dequantize_mxfp4_to_f32, quantize_mxfp4_f32};
use ue8_quant::{
    pack_e2m1, pack_fp6, unpack_e2m1, unpack_fp6, BlockFp8, BlockMxfp4, MxElement, MxScaleRule,
    MxScheme, NonFinite, ScaleRule,
};

/// E4M3 has 3 mantissa bits: RNE moves a normal value by at most half an ulp, 2^-4 of 2^e <= |x|.
const E4M3_NORMAL_REL_ERR: f32 = 1.0 / 16.0;
/// Below 2^-6 E4M3 is subnormal with quantum 2^-9: RNE error at most 2^-10 (times the scale).
const E4M3_SUBNORMAL_ABS_ERR: f32 = 1.0 / 1024.0;
/// One f32 rounding (relative, <= 2^-24 < EPSILON): `w / S` before the E4M3 cast and `q * S`
/// after it, when S is an arbitrary f32 (the DeepSeek-V3 `F32` rule).
const F32_SCALE_ROUNDING: f32 = f32::EPSILON;
/// E2M1's widest gap is 4 -> 6, so RNE without clipping moves a value by at most 1 (times X).
const E2M1_MAX_ABS_ERR: f32 = 1.0;

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    /// Codes on a grid whose every tile holds +-448 at least once, with power-of-two scales:
    /// dequantize then quantize returns the same codes and scales (the rule re-derives S).
    #[test]
    fn blockfp8_quantize_dequantize_round_trip(
        n in 1usize..200, k in 1usize..300, seed in any::<u64>(),
        exps in proptest::collection::vec(-20i32..100, 8),
    ) {
        let scheme = BlockFp8::WEIGHT;
        let (gr, gc) = scheme.scale_grid(n, k).unwrap();
        let mut rng = seed | 1;
        let mut next = || { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; rng };
        let mut q: Vec<u8> = (0..n * k).map(|_| { let c = next() as u8; if c & 0x7F == 0x7F { 0 } else { c } }).collect();
        for ti in 0..gr { for tj in 0..gc {
            // the tile's first element carries the tile max
            q[ti * 128 * k + tj * 128] = if next() & 1 == 0 { 0x7E } else { 0xFE };
        }}
        let s: Vec<f32> = (0..gr * gc).map(|i| 2f32.powi(exps[i % exps.len()])).collect();
        let mut f = vec![0f32; n * k];
        scheme.dequantize_to_f32(&q, &s, n, k, &mut f).unwrap();
        let (mut q2, mut s2) = (vec![0u8; n * k], vec![0f32; gr * gc]);
        let r = scheme.quantize_f32(&f, n, k, NonFinite::Reject, &mut q2, &mut s2).unwrap();
        prop_assert_eq!(r.clipped, 0);
        prop_assert_eq!(s2, s);
        prop_assert_eq!(q2, q);
    }

    /// Quantization error of each element is within E4M3's rounding bound under its tile scale.
    #[test]
    fn blockfp8_error_bound(
        vals in proptest::collection::vec(-1.0e6f32..1.0e6, 1..600),
        k in 1usize..64, f32_rule in any::<bool>(),
    ) {
        let n = vals.len() / k;
        prop_assume!(n >= 1);
        let w = &vals[..n * k];
        let scheme = if f32_rule { BlockFp8::WEIGHT.with_rule(ScaleRule::F32) } else { BlockFp8::WEIGHT };
        let (gr, gc) = scheme.scale_grid(n, k).unwrap();
        let (mut q, mut s) = (vec![0u8; n * k], vec![0f32; gr * gc]);
        scheme.quantize_f32(w, n, k, NonFinite::Reject, &mut q, &mut s).unwrap();
        let mut back = vec![0f32; n * k];
        scheme.dequantize_to_f32(&q, &s, n, k, &mut back).unwrap();
        // UE8M0 scales are powers of two: w / S and q * S are exact, no slack. F32 scales round
        // both (F32_SCALE_ROUNDING each).
        let slack = if f32_rule { F32_SCALE_ROUNDING } else { 0.0 };
        for (i, (&x, &y)) in w.iter().zip(&back).enumerate() {
            let sc = s[(i / k / 128) * gc + (i % k) / 128];
            let bound = (E4M3_NORMAL_REL_ERR * x.abs()).max(E4M3_SUBNORMAL_ABS_ERR * sc)
                * (1.0 + slack) + x.abs() * slack;
            prop_assert!((x - y).abs() <= bound, "{} -> {} (scale {})", x, y, sc);
        }
    }

    /// MX: codes with the element max in each block and a scale byte: dequantize then quantize
    /// gives the same codes and scale under both rules, for every element type.
    #[test]
    fn mx_round_trip(rows in 1usize..5, k in 1usize..130, byte in 40u8..200, seed in any::<u64>(),
                     e in 0usize..5, rceil in any::<bool>()) {
        let elem = MxElement::ALL[e];
        let scheme = MxScheme { elem, rule: if rceil { MxScaleRule::Rceil } else { MxScaleRule::Floor } };
        let nb = MxScheme::blocks_per_row(k);
        let mut rng = seed | 1;
        let mut next = || { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; rng };
        let mask = ((1u16 << elem.bits()) - 1) as u8;
        let max_code = elem.encode(elem.max());
        let mut codes: Vec<u8> = (0..rows * k).map(|_| {
            let c = next() as u8 & mask;
            if elem.decode(c).is_finite() { c } else { 0 }
        }).collect();
        for r in 0..rows { for b in 0..nb { codes[r * k + b * 32] = max_code; } }
        let scales = vec![byte; rows * nb];
        let mut f = vec![0f32; rows * k];
        scheme.dequantize_to_f32(&codes, &scales, rows, k, &mut f).unwrap();
        let (mut c2, mut s2) = (vec![0u8; rows * k], vec![0u8; rows * nb]);
        scheme.quantize_f32(&f, rows, k, &mut c2, &mut s2).unwrap();
        prop_assert_eq!(s2, scales);
        prop_assert_eq!(c2, codes);
    }

    /// MXFP4 with the RCEIL rule never clips: error <= 1 * X per element.
    #[test]
    fn mxfp4_rceil_error_bound(vals in proptest::collection::vec(-1.0e4f32..1.0e4, 64)) {
        let (n, k) = (2, 32);
        let (mut p, mut s) = (vec![0u8; 32], vec![0u8; 2]);
        quantize_mxfp4_f32(MxScaleRule::Rceil, &vals, n, k, &mut p, &mut s).unwrap();
        let mut back = vec![0f32; 64];
        dequantize_mxfp4_to_f32(&p, &s, n, k, &mut back).unwrap();
        for (i, (&x, &y)) in vals.iter().zip(&back).enumerate() {
            let xs = ue8_quant::e8m0_to_f32(s[i / 32]);
            prop_assert!((x - y).abs() <= E2M1_MAX_ABS_ERR * xs, "{} -> {}", x, y);
        }
    }

    #[test]
    fn fp4_fp6_pack_round_trip(codes in proptest::collection::vec(0u8..64, 0..200)) {
        let fp4: Vec<u8> = codes.iter().map(|c| c & 0xF).collect();
        let mut p = vec![0u8; fp4.len().div_ceil(2)];
        pack_e2m1(&fp4, &mut p).unwrap();
        let mut back = vec![0u8; fp4.len()];
        unpack_e2m1(&p, &mut back).unwrap();
        prop_assert_eq!(&back, &fp4);
        let mut p6 = vec![0u8; (codes.len() * 6).div_ceil(8)];
        pack_fp6(&codes, &mut p6).unwrap();
        let mut back6 = vec![0u8; codes.len()];
        unpack_fp6(&p6, &mut back6).unwrap();
        prop_assert_eq!(back6, codes);
    }

    /// GGUF block_mxfp4 <-> Hugging Face block, and ggml's doubled-table decode equals OCP's.
    #[test]
    fn block_mxfp4_matches_hf(packed in proptest::array::uniform16(any::<u8>()), e in 0u8..255) {
        let blk = BlockMxfp4::from_hf(&packed, e);
        prop_assert_eq!(blk.to_hf(), (packed, e));
        prop_assert_eq!(BlockMxfp4::from_bytes(&blk.to_bytes()), blk);
        let mut ocp = vec![0f32; 32];
        dequantize_mxfp4_to_f32(&packed, &[e], 1, 32, &mut ocp).unwrap();
        let ggml = blk.to_f32_ggml();
        for (a, b) in ggml.iter().zip(&ocp) {
            // ggml has no -0 (its table is integers): compare values, not bits
            prop_assert!(a == b, "{} vs {}", a, b);
        }
    }
}

#[test]
fn bf16_dequantize_is_rne_of_f32_dequantize() {
    // 1.0 + 2^-8 is a tie between two bf16 values: RNE picks the even one (1.0).
    let q = [0x38u8 /* 1.0 */, 0x39 /* 1.125 */];
    let s = [1.0f32 + 2f32.powi(-8)];
    let mut f = [0f32; 2];
    let mut b = [bf16::ZERO; 2];
    BlockFp8::ACTIVATION
        .dequantize_to_f32(&q, &s, 1, 2, &mut f)
        .unwrap();
    BlockFp8::ACTIVATION
        .dequantize_to_bf16(&q, &s, 1, 2, &mut b)
        .unwrap();
    assert_eq!(b[0], bf16::from_f32(f[0]));
    assert_eq!(b[0].to_f32(), 1.0);
    assert_eq!(b[1], bf16::from_f32(f[1]));
}
