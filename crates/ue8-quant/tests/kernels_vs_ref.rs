//! Every kernel variant this CPU supports against the scalar `*_ref` twins, bit for bit, on the
//! shapes of issue 3 (0, 1, 31, 33, 127, 128, 129, 1000 rows) with odd K.

use half::bf16;
use ue8_quant::mxfp4::{
    dequantize_mxfp4_ref, dequantize_mxfp4_to_bf16_with, dequantize_mxfp4_to_f32_with,
    quantize_mxfp4_bf16_with, quantize_mxfp4_f32_with, quantize_mxfp4_ref,
};
use ue8_quant::{
    BlockFp8, Isa, MxElement, MxScaleRule, MxScheme, NonFinite, QuantError, ScaleRule,
};

const ROWS: [usize; 8] = [0, 1, 31, 33, 127, 128, 129, 1000];

/// Odd K per row count: wide for small matrices, narrower for 1000 rows to keep the test fast.
fn k_for(rows: usize) -> usize {
    if rows >= 1000 {
        161
    } else {
        257
    }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Finite f32 spanning many binades, with some exact zeros and E4M3 rounding ties.
    fn value(&mut self) -> f32 {
        let r = self.next();
        match r % 16 {
            0 => 0.0,
            1 => -0.0,
            // exact halfway points between E4M3 neighbours times a power of two
            2 => {
                let m = (r >> 8) % 16;
                let e = ((r >> 16) % 12) as i32 - 9;
                (m as f32 + 8.5) * 2f32.powi(e) * if r & (1 << 30) != 0 { -1.0 } else { 1.0 }
            }
            _ => {
                let mant = (r >> 20) as u32 & 0x7F_FFFF;
                let exp = 100 + ((r >> 44) % 40) as u32; // 2^-27 .. 2^12
                let sign = ((r >> 63) as u32) << 31;
                f32::from_bits(sign | exp << 23 | mant)
            }
        }
    }
}

fn f32_matrix(rng: &mut Rng, len: usize) -> Vec<f32> {
    (0..len).map(|_| rng.value()).collect()
}

fn bf16_matrix(rng: &mut Rng, len: usize) -> Vec<bf16> {
    (0..len)
        .map(|_| {
            // any finite bf16 bit pattern, subnormals included
            let mut b = (rng.next() >> 48) as u16;
            if b & 0x7F80 == 0x7F80 {
                b &= !0x4000;
            }
            bf16::from_bits(b)
        })
        .collect()
}

#[test]
fn blockfp8_quantize_every_variant_matches_ref() {
    let mut rng = Rng(0x1234_5678_9ABC_DEF1);
    // F32 scales make amax / s land a rounding step above 448 in some tiles: those tiles take
    // the SIMD clamp path, which must be exercised too
    let mut clipped_seen = 0;
    for rows in ROWS {
        let k = k_for(rows);
        let len = rows * k;
        let f = f32_matrix(&mut rng, len);
        let b = bf16_matrix(&mut rng, len);
        for scheme in [
            BlockFp8::WEIGHT,
            BlockFp8::WEIGHT.with_rule(ScaleRule::F32),
            BlockFp8::ACTIVATION,
        ] {
            let grid = scheme.scale_grid(rows.max(1), k).unwrap();
            let ns = if rows == 0 { 0 } else { grid.0 * grid.1 };
            let (mut q_ref, mut s_ref) = (vec![0u8; len], vec![0f32; ns]);
            let r_ref = scheme.quantize_ref(&f, rows, k, NonFinite::Reject, &mut q_ref, &mut s_ref);
            let (mut qb_ref, mut sb_ref) = (vec![0u8; len], vec![0f32; ns]);
            let rb_ref =
                scheme.quantize_ref(&b, rows, k, NonFinite::Reject, &mut qb_ref, &mut sb_ref);
            if rows == 0 {
                assert!(matches!(r_ref, Err(QuantError::EmptyShape { .. })));
            }
            clipped_seen += r_ref.as_ref().map_or(0, |r| r.clipped);
            for isa in Isa::available() {
                let (mut q, mut s) = (vec![0u8; len], vec![0f32; ns]);
                let r = scheme.quantize_with(isa, &f, rows, k, NonFinite::Reject, &mut q, &mut s);
                assert_eq!(r, r_ref, "{isa:?} {scheme:?} rows {rows}");
                assert_eq!(q, q_ref, "{isa:?} {scheme:?} rows {rows} f32 codes");
                assert_eq!(bits32(&s), bits32(&s_ref), "{isa:?} rows {rows} scales");
                let (mut q, mut s) = (vec![0u8; len], vec![0f32; ns]);
                let r = scheme.quantize_with(isa, &b, rows, k, NonFinite::Reject, &mut q, &mut s);
                assert_eq!(r, rb_ref, "{isa:?} {scheme:?} rows {rows} bf16");
                assert_eq!(q, qb_ref, "{isa:?} {scheme:?} rows {rows} bf16 codes");
                assert_eq!(
                    bits32(&s),
                    bits32(&sb_ref),
                    "{isa:?} rows {rows} bf16 scales"
                );
            }
            if rows > 0 {
                let (mut q, mut s) = (vec![0u8; len], vec![0f32; ns]);
                let r = scheme.quantize_bf16_par(&b, rows, k, NonFinite::Reject, &mut q, &mut s);
                assert_eq!(r, rb_ref);
                assert_eq!((q, bits32(&s)), (qb_ref, bits32(&sb_ref)), "parallel");
            }
        }
    }
    assert!(clipped_seen > 0, "no tile exercised the clamp path");
}

fn bits32(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn bits16(v: &[bf16]) -> Vec<u16> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn blockfp8_dequantize_every_variant_matches_ref() {
    let mut rng = Rng(0xDEAD_BEEF_0000_0001);
    for rows in ROWS {
        let k = k_for(rows);
        let len = rows * k;
        // every code, NaN codes (0x7F, 0xFF) included
        let q: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let scheme = BlockFp8::WEIGHT;
        let (gr, gc) = scheme.scale_grid(rows.max(1), k).unwrap();
        let ns = if rows == 0 { 0 } else { gr * gc };
        // scales across the whole range: tiny, subnormal, arbitrary, and so large that
        // scale * 2^8 overflows (the fast path must fall back)
        let s: Vec<f32> = (0..ns)
            .map(|i| match i % 5 {
                0 => 2f32.powi(-127),
                1 => 2f32.powi(125),
                2 => f32::from_bits(0x3000_0000 | (rng.next() as u32 & 0x7F_FFFF)),
                3 => 1.0 / 448.0,
                _ => 2f32.powi((rng.next() % 40) as i32 - 20),
            })
            .collect();
        let mut f_ref = vec![0f32; len];
        let r = scheme.dequantize_ref(&q, &s, rows, k, &mut f_ref, |v| v);
        let mut b_ref = vec![bf16::ZERO; len];
        scheme
            .dequantize_ref(&q, &s, rows, k, &mut b_ref, bf16::from_f32)
            .unwrap_or(());
        for isa in Isa::available() {
            let mut f = vec![0f32; len];
            let rf = scheme.dequantize_to_f32_with(isa, &q, &s, rows, k, &mut f);
            assert_eq!(rf, r, "{isa:?} rows {rows}");
            assert_eq!(bits32(&f), bits32(&f_ref), "{isa:?} rows {rows} f32");
            let mut b = vec![bf16::ZERO; len];
            let _ = scheme.dequantize_to_bf16_with(isa, &q, &s, rows, k, &mut b);
            assert_eq!(bits16(&b), bits16(&b_ref), "{isa:?} rows {rows} bf16");
        }
        if rows > 0 {
            let mut b = vec![bf16::ZERO; len];
            scheme
                .dequantize_to_bf16_par(&q, &s, rows, k, &mut b)
                .unwrap();
            assert_eq!(bits16(&b), bits16(&b_ref), "parallel");
        }
    }
}

#[test]
fn mxfp4_every_variant_matches_ref() {
    let mut rng = Rng(0x0BAD_CAFE_1234_5678);
    for rows in ROWS {
        let k = k_for(rows);
        let len = rows * k;
        let nb = MxScheme::blocks_per_row(k);
        let mut f = f32_matrix(&mut rng, len);
        // a NaN and an infinity in a few blocks
        for (i, v) in f.iter_mut().enumerate() {
            if i % 997 == 5 {
                *v = f32::NAN;
            } else if i % 1499 == 7 {
                *v = f32::NEG_INFINITY;
            }
        }
        let b = bf16_matrix(&mut rng, len);
        for rule in [MxScaleRule::Floor, MxScaleRule::Rceil] {
            let (mut p_ref, mut s_ref) = (vec![0u8; rows * nb * 16], vec![0u8; rows * nb]);
            let r_ref = quantize_mxfp4_ref(rule, &f, rows, k, &mut p_ref, &mut s_ref);
            let (mut pb_ref, mut sb_ref) = (vec![0u8; rows * nb * 16], vec![0u8; rows * nb]);
            let _ = quantize_mxfp4_ref(rule, &b, rows, k, &mut pb_ref, &mut sb_ref);
            for isa in Isa::available() {
                let (mut p, mut s) = (vec![0u8; rows * nb * 16], vec![0u8; rows * nb]);
                let r = quantize_mxfp4_f32_with(isa, rule, &f, rows, k, &mut p, &mut s);
                assert_eq!(r, r_ref, "{isa:?} rows {rows}");
                assert_eq!(
                    (&p, &s),
                    (&p_ref, &s_ref),
                    "{isa:?} {rule:?} rows {rows} f32"
                );
                let (mut p, mut s) = (vec![0u8; rows * nb * 16], vec![0u8; rows * nb]);
                let _ = quantize_mxfp4_bf16_with(isa, rule, &b, rows, k, &mut p, &mut s);
                assert_eq!(
                    (&p, &s),
                    (&pb_ref, &sb_ref),
                    "{isa:?} {rule:?} rows {rows} bf16"
                );
            }
        }
        // dequantize: random packed bytes, every scale byte including 0 and 0xFF
        let p: Vec<u8> = (0..rows * nb * 16).map(|_| rng.next() as u8).collect();
        let s: Vec<u8> = (0..rows * nb).map(|_| rng.next() as u8).collect();
        let mut f_ref = vec![0f32; len];
        let r = dequantize_mxfp4_ref(&p, &s, rows, k, &mut f_ref);
        let b_ref: Vec<u16> = f_ref.iter().map(|&v| bf16::from_f32(v).to_bits()).collect();
        for isa in Isa::available() {
            let mut out = vec![0f32; len];
            assert_eq!(
                dequantize_mxfp4_to_f32_with(isa, &p, &s, rows, k, &mut out),
                r
            );
            assert_eq!(bits32(&out), bits32(&f_ref), "{isa:?} rows {rows} f32");
            let mut out = vec![bf16::ZERO; len];
            let _ = dequantize_mxfp4_to_bf16_with(isa, &p, &s, rows, k, &mut out);
            assert_eq!(bits16(&out), b_ref, "{isa:?} rows {rows} bf16");
        }
    }
}

#[test]
fn mx_unpacked_every_variant_matches_ref() {
    let mut rng = Rng(0x5EED_0000_7777_0001);
    for rows in ROWS {
        let k = k_for(rows);
        let len = rows * k;
        let nb = MxScheme::blocks_per_row(k);
        let mut f = f32_matrix(&mut rng, len);
        for (i, v) in f.iter_mut().enumerate() {
            if i % 1009 == 3 {
                *v = f32::NAN;
            } else if i % 1601 == 9 {
                *v = f32::INFINITY;
            }
        }
        let b = bf16_matrix(&mut rng, len);
        for elem in MxElement::ALL {
            for rule in [MxScaleRule::Floor, MxScaleRule::Rceil] {
                let scheme = MxScheme { elem, rule };
                let (mut c_ref, mut s_ref) = (vec![0u8; len], vec![0u8; rows * nb]);
                let r_ref = scheme.quantize(&f, rows, k, &mut c_ref, &mut s_ref);
                let (mut cb_ref, mut sb_ref) = (vec![0u8; len], vec![0u8; rows * nb]);
                let rb_ref = scheme.quantize(&b, rows, k, &mut cb_ref, &mut sb_ref);
                for isa in Isa::available() {
                    let what = format!("{isa:?} {elem:?} {rule:?} rows {rows}");
                    let (mut c, mut s) = (vec![0u8; len], vec![0u8; rows * nb]);
                    let r = scheme.quantize_f32_with(isa, &f, rows, k, &mut c, &mut s);
                    assert_eq!(r, r_ref, "{what}");
                    assert_eq!((&c, &s), (&c_ref, &s_ref), "{what} f32");
                    let (mut c, mut s) = (vec![0u8; len], vec![0u8; rows * nb]);
                    let r = scheme.quantize_bf16_with(isa, &b, rows, k, &mut c, &mut s);
                    assert_eq!(r, rb_ref, "{what} bf16");
                    assert_eq!((&c, &s), (&cb_ref, &sb_ref), "{what} bf16");
                }
            }
        }
    }
}

#[test]
fn mx_dequantize_every_variant_matches_ref() {
    let mut rng = Rng(0xFEED_FACE_0123_4567);
    for rows in [1, 33, 129] {
        let k = k_for(rows);
        let nb = MxScheme::blocks_per_row(k);
        // every code (bits above the width included) and every scale byte, 0 and 0xFF too
        let codes: Vec<u8> = (0..rows * k).map(|_| rng.next() as u8).collect();
        let scales: Vec<u8> = (0..rows * nb).map(|_| rng.next() as u8).collect();
        for elem in MxElement::ALL {
            let scheme = MxScheme {
                elem,
                rule: MxScaleRule::Floor,
            };
            let mut f_ref = vec![0f32; rows * k];
            scheme
                .dequantize_ref(&codes, &scales, rows, k, &mut f_ref, |v| v)
                .unwrap();
            let mut b_ref = vec![bf16::ZERO; rows * k];
            scheme
                .dequantize_ref(&codes, &scales, rows, k, &mut b_ref, bf16::from_f32)
                .unwrap();
            for isa in Isa::available() {
                let mut f = vec![0f32; rows * k];
                scheme
                    .dequantize_to_f32_with(isa, &codes, &scales, rows, k, &mut f)
                    .unwrap();
                assert_eq!(bits32(&f), bits32(&f_ref), "{isa:?} {elem:?} rows {rows}");
                let mut b = vec![bf16::ZERO; rows * k];
                scheme
                    .dequantize_to_bf16_with(isa, &codes, &scales, rows, k, &mut b)
                    .unwrap();
                assert_eq!(bits16(&b), bits16(&b_ref), "{isa:?} {elem:?} rows {rows}");
            }
        }
    }
}
