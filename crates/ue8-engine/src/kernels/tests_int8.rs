//! The int8-activation MXFP4 path (int8.rs): the vector quantizer against the scalar rule bit for
//! bit, every dot-product variant against the f64 reference within the summation bound, the
//! reference against the exact f32-activation dot within the quantization bound, and the special
//! blocks (zeros, inf, NaN, ties, saturation).

use super::int8::{quantize, quantize_ref, QuantizedX};
use super::tests::{make_case, Kind, Rng, F32_UNIT_ROUNDOFF};
use super::*;

/// Roundings beyond one per block that a term goes through in the fast kernel: acc_even + acc_odd
/// and three levels of horizontal sum (int8_x86.rs). The block integers and their conversion are
/// exact, and `d * s` is the same f32 product in every variant.
const INT8_EXTRA_ROUNDINGS: usize = 4;

fn gamma(j: usize) -> f64 {
    let ju = j as f64 * F32_UNIT_ROUNDOFF;
    ju / (1.0 - ju)
}

const SHAPES_N: [usize; 6] = [0, 1, 31, 33, 127, 129];
const SHAPES_K: [usize; 8] = [0, 1, 31, 32, 33, 127, 129, 1000];
const TOKENS: [usize; 6] = [1, 2, 3, 4, 5, 9];

fn mxfp4(n: usize, k: usize, rng: &mut Rng) -> super::tests::Case {
    make_case(Kind::Mx(MxElement::E2M1), n, k, rng)
}

fn random_x(rng: &mut Rng, len: usize) -> Vec<f32> {
    // Blocks of very different magnitudes, so that the per-block scales matter.
    (0..len)
        .map(|i| {
            let mag = [1e-3f32, 1.0, 40.0][(i / 32) % 3];
            rng.f32_in(-mag, mag)
        })
        .collect()
}

/// Exact doubled E2M1 value and E8M0 scale of each weight, from the case's codes.
fn weight_terms(case: &super::tests::Case, r: usize) -> Vec<(i32, f32)> {
    let blocks = case.k.div_ceil(MX_BLOCK);
    (0..blocks * MX_BLOCK)
        .map(|c| {
            let byte = case.bytes[r * blocks * 16 + c / 2];
            let code = (byte >> (4 * (c % 2))) & 0x0F;
            let scale = ue8_formats::E8M0::from_bits(case.u8_scales[r * blocks + c / MX_BLOCK]);
            (super::int8::e2m1_twice(code), scale.to_f32() * 0.5)
        })
        .collect()
}

/// `A = sum_b |d_b s_b| sum_i |2 w_i q_i|` for token t, row r: what the summation bound scales.
fn abs_terms(case: &super::tests::Case, qx: &QuantizedX, t: usize, r: usize) -> f64 {
    let terms = weight_terms(case, r);
    let mut a = 0f64;
    for b in 0..qx.blocks {
        let i = t * qx.blocks + b;
        let mut s = 0f64;
        for j in 0..MX_BLOCK {
            let c = b * MX_BLOCK + super::int8::reordered(j);
            s += f64::from(terms[c].0 * i32::from(qx.q[i * MX_BLOCK + j])).abs();
        }
        a += s * f64::from(qx.d[i] * terms[b * MX_BLOCK].1).abs();
    }
    a
}

#[test]
fn vector_quantizer_matches_the_scalar_rule_bit_for_bit() {
    let mut rng = Rng(0x51ED_270B_4F6C_DD1D);
    for isa in Isa::supported() {
        for k in SHAPES_K {
            for m in [1usize, 3] {
                let x = random_x(&mut rng, m * k);
                let (mut want, mut got) = (QuantizedX::default(), QuantizedX::default());
                quantize_ref(&x, m, k, &mut want);
                quantize(isa, &x, m, k, &mut got);
                assert_eq!(got, want, "{isa:?} k={k} m={m}");
            }
        }
    }
}

#[test]
fn special_blocks_follow_the_rule() {
    // Block 0: ties at d = 1 (amax 127); block 1: zeros; block 2: an inf; block 3: a NaN; block 4:
    // a tiny subnormal block (d = 0); block 5: amax subnormal enough that d is coarse (saturation).
    let mut x = vec![0f32; 6 * 32];
    x[0] = 127.0;
    x[1] = 2.5;
    x[2] = 3.5;
    x[3] = -2.5;
    x[4] = -0.5;
    x[5] = 126.5;
    x[64] = f32::INFINITY;
    x[65] = 1.0;
    x[96] = f32::from_bits(0xFFC0_0001); // a negative NaN
    x[128] = f32::from_bits(1);
    x[160] = f32::from_bits(0x0000_0300);
    x[161] = -f32::from_bits(0x0000_0300);
    for isa in Isa::supported() {
        let mut q = QuantizedX::default();
        quantize(isa, &x, 1, x.len(), &mut q);
        let at = |b: usize, c: usize| {
            let j = (0..32)
                .find(|&j| super::int8::reordered(j) == c)
                .unwrap_or(0);
            q.q[b * 32 + j]
        };
        assert_eq!(q.d[0], 1.0, "{isa:?}");
        // Half to even: 2.5 -> 2, 3.5 -> 4, -2.5 -> -2, -0.5 -> 0, 126.5 -> 126.
        assert_eq!(
            [at(0, 0), at(0, 1), at(0, 2), at(0, 3), at(0, 4), at(0, 5)],
            [127, 2, 4, -2, 0, 126],
            "{isa:?}"
        );
        assert_eq!((q.d[1], &q.q[32..64]), (0.0, &[0i8; 32][..]), "{isa:?}");
        assert!(
            q.d[2].is_nan() && q.q[64..96].iter().all(|&v| v == 0),
            "{isa:?}"
        );
        assert!(
            q.d[3].is_nan() && q.q[96..128].iter().all(|&v| v == 0),
            "{isa:?}"
        );
        assert_eq!((q.d[4], &q.q[128..160]), (0.0, &[0i8; 32][..]), "{isa:?}");
        // 0x300 / 127 rounds to the subnormal 6 * 2^-149, and 768 / 6 = 128 saturates.
        assert_eq!(q.d[5], f32::from_bits(6), "{isa:?}");
        assert_eq!([at(5, 0), at(5, 1)], [127, -128], "{isa:?}");
        // The lane sums that undo the +12 offset.
        for (l, &s) in q.neg12_lane_sums[..8].iter().enumerate() {
            let sum: i32 = q.q[4 * l..4 * l + 4].iter().map(|&v| i32::from(v)).sum();
            assert_eq!(s, -12 * sum, "{isa:?} lane {l}");
        }
    }
}

#[test]
fn quantization_error_is_within_half_a_step_per_element() {
    // |x - d q| <= d (1/2 + 128 u): the rounding to an integer plus the f32 division.
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let x = random_x(&mut rng, 4 * 1000);
    let mut q = QuantizedX::default();
    quantize_ref(&x, 4, 1000, &mut q);
    for t in 0..4 {
        for b in 0..q.blocks {
            let i = t * q.blocks + b;
            let d = f64::from(q.d[i]);
            for j in 0..32 {
                let c = b * 32 + super::int8::reordered(j);
                let xv = x
                    .get(t * 1000 + c)
                    .copied()
                    .filter(|_| c < 1000)
                    .unwrap_or(0.0);
                let err = (f64::from(xv) - d * f64::from(q.q[i * 32 + j])).abs();
                assert!(
                    err <= d * (0.5 + 128.0 * F32_UNIT_ROUNDOFF),
                    "t={t} c={c}: {err}"
                );
            }
        }
    }
}

/// Runs the int8 path on `case` with every variant this CPU has, through the given closure.
fn check_variants_against_reference(case: &super::tests::Case, x: &[f32], m: usize) {
    let (n, k) = (case.n, case.k);
    let w = case.matrix();
    let mut want = vec![f32::NAN; m * n];
    gemm_mxfp4_i8_ref(&w, x, m, 0..n, &mut want).unwrap();
    let mut qx = QuantizedX::default();
    quantize_ref(x, m, k, &mut qx);
    let mut runs: Vec<(String, Vec<f32>)> = Vec::new();
    let mut y = vec![f32::NAN; m * n];
    gemm_mxfp4_i8(&w, x, m, 0..n, &mut y).unwrap();
    runs.push(("gemm_mxfp4_i8".into(), y));
    #[cfg(target_arch = "x86_64")]
    for dot in [
        int8_x86::DotI8::Maddubs,
        int8_x86::DotI8::AvxVnni,
        int8_x86::DotI8::Avx512Vnni,
    ] {
        if !dot.available() {
            continue;
        }
        let mut y = vec![f32::NAN; m * n];
        // SAFETY: the variant is available; qx was quantized from [m, k]; y holds m * n floats.
        unsafe { int8_x86::mxfp4_rows(dot, &w, &qx, 0..n, OutPtr::new(&mut y)) };
        runs.push((format!("{dot:?}"), y));
    }
    let nb = k.div_ceil(MX_BLOCK);
    for (what, y) in &runs {
        for t in 0..m {
            for r in 0..n {
                let (got, r64) = (f64::from(y[t * n + r]), f64::from(want[t * n + r]));
                let bound = gamma(nb + INT8_EXTRA_ROUNDINGS) * abs_terms(case, &qx, t, r)
                    + F32_UNIT_ROUNDOFF * r64.abs();
                assert!(
                    (got - r64).abs() <= bound,
                    "{what} {}: m={m} token {t} row {r}: got {got}, reference {r64}, bound {bound}",
                    case.label
                );
            }
        }
    }
}

#[test]
fn every_int8_variant_matches_the_reference_on_odd_shapes() {
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    for n in SHAPES_N {
        for k in SHAPES_K {
            for m in TOKENS {
                if n * k * m > 300_000 {
                    continue;
                }
                let case = mxfp4(n, k, &mut rng);
                let x = random_x(&mut rng, m * k);
                check_variants_against_reference(&case, &x, m);
            }
        }
    }
}

#[test]
fn int8_reference_is_within_the_quantization_bound_of_the_exact_dot() {
    // Against the f64 dot of the exactly decoded weights and the original activations: each
    // activation moves by at most d (1/2 + 128 u), and the reference adds its own final rounding.
    let mut rng = Rng(0xA076_1D64_78BD_642F);
    for (n, k) in [(33usize, 1000usize), (129, 129), (7, 31)] {
        let case = mxfp4(n, k, &mut rng);
        let m = 3;
        let x = random_x(&mut rng, m * k);
        let w = case.matrix();
        let mut y = vec![0f32; m * n];
        gemm_mxfp4_i8_ref(&w, &x, m, 0..n, &mut y).unwrap();
        let mut qx = QuantizedX::default();
        quantize_ref(&x, m, k, &mut qx);
        for t in 0..m {
            for r in 0..n {
                let (mut exact, mut bound) = (0f64, 0f64);
                for c in 0..k {
                    let wv = case.exact[r * k + c];
                    exact += wv * f64::from(x[t * k + c]);
                    let d = f64::from(qx.d[t * qx.blocks + c / MX_BLOCK]);
                    bound += wv.abs() * d * (0.5 + 128.0 * F32_UNIT_ROUNDOFF);
                }
                let got = f64::from(y[t * n + r]);
                bound += 2.0 * F32_UNIT_ROUNDOFF * got.abs();
                assert!(
                    (got - exact).abs() <= bound,
                    "n={n} k={k} token {t} row {r}: int8 {got}, exact {exact}, bound {bound}"
                );
            }
        }
    }
}

#[test]
fn each_token_is_computed_the_same_in_any_batch_and_any_thread_split() {
    let mut rng = Rng(0x94D0_49BB_1331_11EB);
    let (n, k, m) = (131, 577, 9);
    let case = mxfp4(n, k, &mut rng);
    let w = case.matrix();
    let x = random_x(&mut rng, m * k);
    let mut batch = vec![0f32; m * n];
    gemm_mxfp4_i8(&w, &x, m, 0..n, &mut batch).unwrap();
    for t in 0..m {
        let mut one = vec![0f32; n];
        gemv_mxfp4_i8(&w, &x[t * k..(t + 1) * k], 0..n, &mut one).unwrap();
        assert_eq!(one, batch[t * n..(t + 1) * n], "token {t}");
    }
    for threads in [2usize, 3] {
        let mut pool = Pool::new(threads).unwrap();
        pool.set_activations(Activations::Int8);
        let mut pooled = vec![0f32; m * n];
        pool.matmul(&w, &x, m, &mut pooled).unwrap();
        assert_eq!(pooled, batch, "{threads} threads");
    }
}

#[test]
fn int8_activations_leave_other_formats_exact() {
    let mut rng = Rng(0x3C6E_F372_FE94_F82B);
    for kind in [
        Kind::F32,
        Kind::Bf16,
        Kind::E4m3Tiles,
        Kind::Mx(MxElement::E4M3),
        Kind::Mx(MxElement::E3M2),
    ] {
        let (n, k, m) = (33, 129, 3);
        let case = make_case(kind, n, k, &mut rng);
        let w = case.matrix();
        let x = random_x(&mut rng, m * k);
        for isa in Isa::supported() {
            let mut f = vec![0f32; m * n];
            let mut i = vec![1f32; m * n];
            matmul_rows_act(isa, Activations::F32, &w, &x, m, 0..n, &mut f).unwrap();
            matmul_rows_act(isa, Activations::Int8, &w, &x, m, 0..n, &mut i).unwrap();
            assert_eq!(f, i, "{kind:?} {isa:?}");
        }
    }
}

#[test]
fn a_non_finite_activation_block_makes_its_token_nan() {
    let mut rng = Rng(0x6A09_E667_F3BC_C908);
    let (n, k) = (5, 96);
    let case = mxfp4(n, k, &mut rng);
    let w = case.matrix();
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let mut x = random_x(&mut rng, 2 * k);
        x[k + 40] = bad;
        for isa in Isa::supported() {
            let mut y = vec![0f32; 2 * n];
            matmul_rows_act(isa, Activations::Int8, &w, &x, 2, 0..n, &mut y).unwrap();
            assert!(y[..n].iter().all(|v| v.is_finite()), "{isa:?} {bad}");
            assert!(
                y[n..].iter().all(|v| v.is_nan()),
                "{isa:?} {bad}: {:?}",
                &y[n..]
            );
        }
    }
}

#[test]
fn named_int8_kernels_reject_other_formats() {
    let mut rng = Rng(7);
    let case = make_case(Kind::Bf16, 2, 32, &mut rng);
    let w = case.matrix();
    let mut y = [0f32; 2];
    let err = gemv_mxfp4_i8(&w, &[0.0; 32], 0..2, &mut y).unwrap_err();
    assert!(
        matches!(err, KernelError::FormatMismatch { found: "bf16", .. }),
        "{err}"
    );
    assert!(gemm_mxfp4_i8_ref(&w, &[0.0; 32], 1, 0..2, &mut y).is_err());
}

#[test]
fn every_usable_scale_byte_is_applied_by_every_variant() {
    // Block b of row r gets E8M0 byte (b + 7r) % 255: 0 (the subnormal 2^-127) up to 254, through
    // the vector scale pre-pass (8 blocks at a time) and its scalar tail alike.
    let mut rng = Rng(0xBB67_AE85_84CA_A73B);
    let (n, k, m) = (3, 255 * MX_BLOCK + 40, 2);
    let mut case = mxfp4(n, k, &mut rng);
    let blocks = k.div_ceil(MX_BLOCK);
    for r in 0..n {
        for b in 0..blocks {
            case.u8_scales[r * blocks + b] = ((b + 7 * r) % 255) as u8;
        }
    }
    // Small activations keep 2^127-scaled blocks finite.
    let x: Vec<f32> = (0..m * k).map(|_| rng.f32_in(-1e-3, 1e-3)).collect();
    check_variants_against_reference(&case, &x, m);
}
