//! Error variants, requantization, FP4 -> FP8 re-encode and metrics.

use ue8_formats::{Element, E2M1, E4M3};
use ue8_quant::mxfp4::{dequantize_mxfp4_to_f32, quantize_mxfp4_f32};
use ue8_quant::pack::pack_e2m1;
use ue8_quant::{
    check_reencode_mxfp4_to_fp8, e8m0_to_scales, reencode_mxfp4_to_fp8,
    reencode_mxfp4_to_fp8_lossy, requantize_to_ue8m0, scales_to_e8m0, BlockFp8, ErrorStats,
    MxScaleRule, MxScheme, NonFinite, QuantError, ScaleRule, REENCODE_MAX_GAP,
};

#[test]
fn wrong_lengths_and_shapes_are_typed_errors() {
    let w = [0f32; 6];
    let (mut q, mut s) = ([0u8; 6], [0f32; 1]);
    let e = BlockFp8::WEIGHT.quantize_f32(&w[..5], 2, 3, NonFinite::Reject, &mut q, &mut s);
    assert_eq!(
        e,
        Err(QuantError::LengthMismatch {
            what: "source",
            expected: 6,
            actual: 5
        })
    );
    let e = BlockFp8::WEIGHT.quantize_f32(&w, 2, 3, NonFinite::Reject, &mut q, &mut [0f32; 2]);
    assert!(matches!(
        e,
        Err(QuantError::LengthMismatch { what: "scales", .. })
    ));
    let e = BlockFp8::WEIGHT.quantize_f32(&[], 0, 3, NonFinite::Reject, &mut [], &mut []);
    assert_eq!(e, Err(QuantError::EmptyShape { n: 0, k: 3 }));
    let e = BlockFp8::WEIGHT.scale_grid(usize::MAX, 2);
    assert_eq!(
        e,
        Err(QuantError::ShapeOverflow {
            n: usize::MAX,
            k: 2
        })
    );
    let bad = BlockFp8 {
        rule: ScaleRule::F32,
        tile_rows: 0,
        tile_cols: 128,
    };
    assert!(matches!(
        bad.scale_grid(1, 1),
        Err(QuantError::InvalidTile { .. })
    ));
    let e = MxScheme::MXFP4.quantize_f32(&w, 2, 3, &mut q, &mut [0u8; 1]);
    assert!(matches!(
        e,
        Err(QuantError::LengthMismatch { what: "scales", .. })
    ));
    let e = quantize_mxfp4_f32(MxScaleRule::Floor, &w, 2, 3, &mut [0u8; 16], &mut [0u8; 2]);
    assert!(matches!(e, Err(QuantError::LengthMismatch { .. })));
    let e = pack_e2m1(&[1, 16], &mut [0u8; 1]);
    assert_eq!(
        e,
        Err(QuantError::CodeOutOfRange {
            index: 1,
            code: 16,
            bits: 4
        })
    );
}

#[test]
fn e8m0_scale_conversions() {
    let s = [1.0f32, 0.5, 2f32.powi(-127), 2f32.powi(127)];
    let mut b = [0u8; 4];
    scales_to_e8m0(&s, &mut b).unwrap();
    assert_eq!(b, [127, 126, 0, 254]);
    let mut back = [0f32; 4];
    e8m0_to_scales(&b, &mut back).unwrap();
    assert_eq!(back, s);
    assert_eq!(
        scales_to_e8m0(&[1.0, 0.75], &mut [0u8; 2]),
        Err(QuantError::NotPowerOfTwo {
            index: 1,
            value: 0.75
        })
    );
    assert_eq!(
        e8m0_to_scales(&[1, 0xFF], &mut [0f32; 2]),
        Err(QuantError::NanScale { index: 1 })
    );
}

#[test]
fn ue8m0_rule_keeps_exact_powers_and_rounds_up_others() {
    // amax 448 * 2^-3 -> scale exactly 2^-3; a hair above -> 2^-2; amax 0 -> 1e-4 floor.
    assert_eq!(ScaleRule::Ue8m0Ceil.scale_from_amax(56.0), 0.125);
    assert_eq!(
        ScaleRule::Ue8m0Ceil.scale_from_amax(f32::from_bits(56f32.to_bits() + 1)),
        0.25
    );
    assert_eq!(ScaleRule::Ue8m0Ceil.scale_from_amax(0.0), 2f32.powi(-22)); // 1e-4/448 ~ 2^-22.1
    assert_eq!(ScaleRule::F32.scale_from_amax(0.0), 1e-4f32 / 448.0);
}

#[test]
fn nonfinite_allowed_saturates_inf_and_keeps_nan() {
    let w = [1.0f32, f32::INFINITY, f32::NAN, -f32::INFINITY, 2.0];
    let (mut q, mut s) = ([0u8; 5], [0f32; 1]);
    let r = BlockFp8::ACTIVATION
        .quantize_f32(&w, 1, 5, NonFinite::Allow, &mut q, &mut s)
        .unwrap();
    assert_eq!(r.nonfinite, 3);
    assert_eq!(s[0], ScaleRule::Ue8m0Ceil.scale_from_amax(2.0)); // amax over finite values
    assert_eq!(q[1], 0x7E);
    assert_eq!(q[2] & 0x7F, 0x7F);
    assert_eq!(q[3], 0xFE);
}

#[test]
fn requantize_passes_pow2_scales_through_unchanged() {
    let (n, k) = (130, 129);
    let w: Vec<f32> = (0..n * k)
        .map(|i| ((i * 37 % 1000) as f32 - 500.0) * 0.01)
        .collect();
    let (gr, gc) = BlockFp8::WEIGHT.scale_grid(n, k).unwrap();
    let (mut q, mut s) = (vec![0u8; n * k], vec![0f32; gr * gc]);
    BlockFp8::WEIGHT
        .quantize_f32(&w, n, k, NonFinite::Reject, &mut q, &mut s)
        .unwrap();
    let (mut q2, mut s2) = (vec![0u8; n * k], vec![0f32; gr * gc]);
    let r = requantize_to_ue8m0(&q, &s, n, k, NonFinite::Reject, &mut q2, &mut s2).unwrap();
    assert!(r.passed_through);
    assert_eq!((q2, s2), (q, s));
    assert_eq!(r.stats.max_abs(), 0.0);
}

#[test]
fn requantize_f32_scales_equals_quantize_of_dequantized() {
    let (n, k) = (129, 200);
    let w: Vec<f32> = (0..n * k)
        .map(|i| ((i * 7919 % 2003) as f32 - 1001.0) * 1e-3 * (1 + i % 5) as f32)
        .collect();
    let v3 = BlockFp8::WEIGHT.with_rule(ScaleRule::F32);
    let (gr, gc) = v3.scale_grid(n, k).unwrap();
    let (mut q, mut s) = (vec![0u8; n * k], vec![0f32; gr * gc]);
    v3.quantize_f32(&w, n, k, NonFinite::Reject, &mut q, &mut s)
        .unwrap();
    let (mut q2, mut s2) = (vec![0u8; n * k], vec![0f32; gr * gc]);
    let r = requantize_to_ue8m0(&q, &s, n, k, NonFinite::Reject, &mut q2, &mut s2).unwrap();
    assert!(!r.passed_through);
    // formats.md section 2: dequantize tile to f32 (one multiply), quantize with ue8m0
    let mut f = vec![0f32; n * k];
    v3.dequantize_ref(&q, &s, n, k, &mut f, |v| v).unwrap();
    let (mut q3, mut s3) = (vec![0u8; n * k], vec![0f32; gr * gc]);
    BlockFp8::WEIGHT
        .quantize_ref(&f, n, k, NonFinite::Reject, &mut q3, &mut s3)
        .unwrap();
    assert_eq!((&q2, &s2), (&q3, &s3));
    assert!(
        r.stats.max_abs() > 0.0,
        "F32 -> UE8M0 scales move some values"
    );
    assert!(r.stats.snr_db() > 20.0 && r.stats.cosine() > 0.99);
}

/// Random MXFP4 row block with the given per-group scale bytes.
fn mxfp4(n: usize, k: usize, scale_of: impl Fn(usize, usize) -> u8) -> (Vec<u8>, Vec<u8>) {
    let nb = k / 32;
    let codes: Vec<u8> = (0..n * k)
        .map(|i| ((i * 2654435761) >> 7) as u8 & 0xF)
        .collect();
    let mut packed = vec![0u8; n * k / 2];
    pack_e2m1(&codes, &mut packed).unwrap();
    let scales = (0..n * nb).map(|i| scale_of(i / nb, i % nb)).collect();
    (packed, scales)
}

fn fp8_dequant(q: &[u8], tile_scales: &[u8], n: usize, k: usize) -> Vec<f32> {
    let mut s = vec![0f32; tile_scales.len()];
    e8m0_to_scales(tile_scales, &mut s).unwrap();
    let mut out = vec![0f32; n * k];
    BlockFp8::WEIGHT
        .dequantize_to_f32(q, &s, n, k, &mut out)
        .unwrap();
    out
}

#[test]
fn reencode_fp4_to_fp8_is_exact_up_to_the_gap_bound() {
    let (n, k) = (200, 320);
    // gaps 0..=14 inside every tile: group g of row r gets 120 - (r + g) % 15
    let (packed, scales) = mxfp4(n, k, |r, g| 120 - ((r + g) % 15) as u8);
    let mut want = vec![0f32; n * k];
    dequantize_mxfp4_to_f32(&packed, &scales, n, k, &mut want).unwrap();
    let (mut q, mut ts) = (vec![0u8; n * k], vec![0u8; 2 * 3]);
    let r = reencode_mxfp4_to_fp8(&packed, &scales, n, k, &mut q, &mut ts).unwrap();
    assert_eq!(r.max_gap, REENCODE_MAX_GAP);
    assert_eq!((r.inexact, r.stats.max_abs()), (0, 0.0));
    assert_eq!(check_reencode_mxfp4_to_fp8(&packed, &scales, n, k), Ok(r));
    assert!(ts.iter().all(|&t| t == 120 - 6));
    let got = fp8_dequant(&q, &ts, n, k);
    let same = got
        .iter()
        .zip(&want)
        .all(|(a, b)| a.to_bits() == b.to_bits());
    assert!(
        same,
        "re-encoded FP8 dequantizes to the FP4 values bit for bit"
    );
}

#[test]
fn reencode_refuses_a_group_past_the_bound_and_names_the_tile() {
    let (n, k) = (130, 256);
    // tile (1, 1) holds a group 15 binades below its largest; 0.5 (code 1) there cannot fit
    let (mut packed, scales) = mxfp4(n, k, |r, g| if r == 129 && g == 5 { 100 } else { 115 });
    let col = 5 * 32; // first element of that group, row 129
    packed[(129 * k + col) / 2] = (packed[(129 * k + col) / 2] & 0xF0) | 0x1;
    let (mut q, mut ts) = (vec![0u8; n * k], vec![0u8; 4]);
    let e = reencode_mxfp4_to_fp8(&packed, &scales, n, k, &mut q, &mut ts).unwrap_err();
    assert_eq!(
        e,
        QuantError::ReencodeNotExact {
            tile_row: 1,
            tile_col: 1,
            row: 129,
            col,
            gap: 15,
            max_gap: REENCODE_MAX_GAP
        }
    );
    assert_eq!(
        check_reencode_mxfp4_to_fp8(&packed, &scales, n, k).unwrap_err(),
        e,
        "the dry-run check refuses the same element"
    );
    // lossy: 2^-10 is a tie between 0 and 2^-9; RNE picks the even code, 0
    let r = reencode_mxfp4_to_fp8_lossy(&packed, &scales, n, k, &mut q, &mut ts).unwrap();
    // in that group, exactly the magnitudes 0.5 and 1.5 (codes 1, 3 and their negatives) fall
    // off E4M3's grid (2^-10 and 3 * 2^-10); 1 * 2^-9 and up still fit
    let inexact = (col..col + 32)
        .filter(|c| {
            let code = (packed[(129 * k + c) / 2] >> (4 * (c % 2))) & 0x7;
            code == 1 || code == 3
        })
        .count();
    assert_eq!(r.inexact, inexact as u64);
    assert_eq!(q[129 * k + col], 0x00);
    let tile_scale = 2f64.powi(ts[3] as i32 - 127);
    assert_eq!(r.stats.max_abs(), 2f64.powi(-10) * tile_scale);
    assert_eq!(r.stats.count, (n * k) as u64);
    // the bound is tight: 0.5 * 2^(6 - 15) = 2^-10 is below E4M3's smallest subnormal 2^-9,
    // and 0.5 * 2^(6 - 14) = 2^-9 is exactly it
    assert_eq!(
        E4M3::from_f32(2f32.powi(-10), ue8_formats::Overflow::Saturate).to_f32(),
        0.0
    );
    assert_eq!(E4M3::from_bits(1).to_f32(), 2f32.powi(-9));
    assert_eq!(E2M1::from_bits(1).to_f32(), 0.5);
}

#[test]
fn reencode_accepts_far_groups_whose_codes_still_fit() {
    let (n, k) = (4, 128);
    // group 3 is 16 binades below but holds only zeros and -6.0: 6 * 2^(6 - 16) = 3 * 2^-9 fits
    let mut codes = vec![0x5u8; n * k];
    for r in 0..n {
        for c in 96..128 {
            codes[r * k + c] = if c % 2 == 0 { 0x0 } else { 0xF };
        }
    }
    let mut packed = vec![0u8; n * k / 2];
    pack_e2m1(&codes, &mut packed).unwrap();
    let scales: Vec<u8> = (0..n * 4)
        .map(|i| if i % 4 == 3 { 104 } else { 120 })
        .collect();
    let (mut q, mut ts) = (vec![0u8; n * k], vec![0u8; 1]);
    let r = reencode_mxfp4_to_fp8(&packed, &scales, n, k, &mut q, &mut ts).unwrap();
    assert_eq!(r.max_gap, 16);
    assert_eq!(r.groups_checked, 4);
    let mut want = vec![0f32; n * k];
    dequantize_mxfp4_to_f32(&packed, &scales, n, k, &mut want).unwrap();
    assert_eq!(fp8_dequant(&q, &ts, n, k), want);
}

#[test]
fn error_stats_match_hand_computation_and_merge() {
    let (r, t) = ([1.0f32, 2.0, -3.0], [1.0f32, 3.0, -3.5]);
    let mut a = ErrorStats::new();
    a.add_slices(&r, &t);
    assert_eq!(a.max_abs(), 1.0);
    assert!((a.rms() - (1.25f64 / 3.0).sqrt()).abs() < 1e-15);
    assert!((a.snr_db() - 10.0 * (14.0f64 / 1.25).log10()).abs() < 1e-12);
    let cos = (1.0 + 6.0 + 10.5) / (14.0f64 * (1.0 + 9.0 + 12.25)).sqrt();
    assert!((a.cosine() - cos).abs() < 1e-15);
    let (mut b, mut c) = (ErrorStats::new(), ErrorStats::new());
    b.add_slices(&r[..1], &t[..1]);
    c.add_slices(&r[1..], &t[1..]);
    c.add(f32::NAN, 1.0);
    c.add_clipped(1);
    b.merge(&c);
    assert_eq!(b.count, 3);
    assert_eq!(b.nonfinite, 1);
    assert_eq!(b.clipped_share(), 0.25);
    assert_eq!(b.max_abs(), a.max_abs());
    assert!((b.snr_db() - a.snr_db()).abs() < 1e-12);
    assert_eq!(ErrorStats::new().snr_db(), f64::INFINITY);
}

/// Reassociating f64 sums of a few hundred terms moves them by a few ulps at most.
const F64_REASSOCIATION_REL: f64 = 1e-12;

#[test]
fn error_stats_slices_equal_pairwise_adds() {
    let r: Vec<f32> = (0..1003)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.3)
        .collect();
    let mut t: Vec<f32> = r.iter().map(|x| x * 1.01 + 0.002).collect();
    t[17] = f32::NAN;
    t[500] = f32::INFINITY;
    let mut a = ErrorStats::new();
    a.add_slices(&r, &t);
    let mut b = ErrorStats::new();
    for (&x, &y) in r.iter().zip(&t) {
        b.add(x, y);
    }
    assert_eq!((a.count, a.nonfinite), (b.count, b.nonfinite));
    assert_eq!((a.count, a.nonfinite), (1001, 2));
    assert_eq!(a.max_abs(), b.max_abs());
    for (x, y) in [
        (a.rms(), b.rms()),
        (a.snr_db(), b.snr_db()),
        (a.cosine(), b.cosine()),
    ] {
        assert!(
            (x - y).abs() <= F64_REASSOCIATION_REL * y.abs(),
            "{x} vs {y}"
        );
    }
}

#[test]
fn f16_and_bf16_sources_match_f32() {
    use half::{bf16, f16};
    let (n, k) = (3, 150);
    let w: Vec<f32> = (0..n * k)
        .map(|i| bf16::from_f32(((i * 7919 % 997) as f32 - 498.0) * 0.01).to_f32())
        .collect();
    let wb: Vec<bf16> = w.iter().map(|&x| bf16::from_f32(x)).collect();
    let wh: Vec<f16> = w.iter().map(|&x| f16::from_f32(x)).collect();
    let wh32: Vec<f32> = wh.iter().map(|x| x.to_f32()).collect();
    let s = BlockFp8::WEIGHT;
    let (gr, gc) = s.scale_grid(n, k).unwrap();
    let run = |f: &dyn Fn(&mut [u8], &mut [f32])| {
        let (mut q, mut sc) = (vec![0u8; n * k], vec![0f32; gr * gc]);
        f(&mut q, &mut sc);
        (q, sc)
    };
    let a = run(&|q, sc| {
        s.quantize_f32(&w, n, k, NonFinite::Reject, q, sc).unwrap();
    });
    let b = run(&|q, sc| {
        s.quantize_bf16(&wb, n, k, NonFinite::Reject, q, sc)
            .unwrap();
    });
    assert_eq!(a, b);
    let c = run(&|q, sc| {
        s.quantize_f32(&wh32, n, k, NonFinite::Reject, q, sc)
            .unwrap();
    });
    let d = run(&|q, sc| {
        s.quantize_f16(&wh, n, k, NonFinite::Reject, q, sc).unwrap();
    });
    assert_eq!(c, d);
    let mx = MxScheme::MXFP8_E4M3;
    let nb = MxScheme::blocks_per_row(k);
    let (mut c1, mut s1) = (vec![0u8; n * k], vec![0u8; n * nb]);
    let (mut c2, mut s2) = (vec![0u8; n * k], vec![0u8; n * nb]);
    mx.quantize_f32(&w, n, k, &mut c1, &mut s1).unwrap();
    mx.quantize_bf16(&wb, n, k, &mut c2, &mut s2).unwrap();
    assert_eq!((c1, s1), (c2, s2));
}

#[test]
fn quantize_with_stats_equals_quantize_dequantize_compare() {
    use half::bf16;
    let (n, k) = (300, 333);
    let w: Vec<bf16> = (0..n * k)
        .map(|i| bf16::from_f32(((i * 7919 % 4001) as f32 - 2000.0) * 1e-3 * (1 + i % 7) as f32))
        .collect();
    for scheme in [BlockFp8::WEIGHT, BlockFp8::WEIGHT.with_rule(ScaleRule::F32)] {
        let (gr, gc) = scheme.scale_grid(n, k).unwrap();
        let (mut q, mut s) = (vec![0u8; n * k], vec![0f32; gr * gc]);
        let rep = scheme
            .quantize_bf16(&w, n, k, NonFinite::Reject, &mut q, &mut s)
            .unwrap();
        let mut back = vec![0f32; n * k];
        scheme.dequantize_to_f32(&q, &s, n, k, &mut back).unwrap();
        let wf: Vec<f32> = w.iter().map(|v| v.to_f32()).collect();
        let mut want = ErrorStats::new();
        want.add_slices(&wf, &back);
        want.add_clipped(rep.clipped);
        let (mut q2, mut s2) = (vec![0u8; n * k], vec![0f32; gr * gc]);
        let (rep2, got) = scheme
            .quantize_with_stats_par(&w, n, k, NonFinite::Reject, &mut q2, &mut s2)
            .unwrap();
        assert_eq!((rep2, &q2, &s2), (rep, &q, &s));
        assert_eq!(
            (got.count, got.clipped, got.max_abs()),
            (want.count, want.clipped, want.max_abs())
        );
        for (a, b) in [
            (got.rms(), want.rms()),
            (got.snr_db(), want.snr_db()),
            (got.cosine(), want.cosine()),
        ] {
            assert!(
                (a - b).abs() <= F64_REASSOCIATION_REL * b.abs(),
                "{a} vs {b}"
            );
        }
    }
    let mut bad: Vec<f32> = vec![1.0; 4 * 300];
    bad[2 * 300 + 7] = f32::NAN;
    let e = BlockFp8::WEIGHT
        .with_rule(ScaleRule::F32)
        .quantize_with_stats_par(
            &bad,
            4,
            300,
            NonFinite::Reject,
            &mut [0u8; 1200],
            &mut [0f32; 3],
        );
    assert!(matches!(
        e,
        Err(QuantError::NonFinite { row: 2, col: 7, .. })
    ));
}
