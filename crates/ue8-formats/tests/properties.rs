//! Property tests of the scalar conversions: exhaustive where the domain is small (every code, every
//! bf16/f16 pattern, every power of two) and proptest where it is not (f32 inputs).
//!
//! The rounding reference here is independent of the implementation's arithmetic: it brackets `x`
//! between the two nearest values of ml_dtypes' decode table (the committed fixture, not our decoder)
//! and compares distances in f64, where both are exact for inputs inside a type's range.

use half::{bf16, f16};
use proptest::prelude::*;
use ue8_formats::{Element, Overflow, E2M1, E2M3, E3M2, E4M3, E5M2, E8M0};

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

/// Cases per proptest property: enough to hit every binade of every type many times while keeping
/// each test well under a second at the test profile's opt-level 1.
const CASES: u32 = 4096;

/// The magnitudes of the non-negative finite codes of `T`, ascending, from ml_dtypes' decode fixture.
/// Codes are monotonic in value, so index == code.
fn oracle_magnitudes<T: Element>() -> Vec<f64> {
    let bytes = match T::ML_DTYPES_NAME {
        "float8_e4m3fn" => fixture!("decode_e4m3.bin"),
        "float8_e5m2" => fixture!("decode_e5m2.bin"),
        "float6_e3m2fn" => fixture!("decode_e3m2.bin"),
        "float6_e2m3fn" => fixture!("decode_e2m3.bin"),
        "float4_e2m1fn" => fixture!("decode_e2m1.bin"),
        other => panic!("no decode fixture for {other}"),
    };
    let codes = usize::from(T::MAX_CODE) + 1;
    bytes
        .chunks_exact(4)
        .take(codes)
        .map(|r| f64::from(f32::from_bits(u32::from_le_bytes([r[0], r[1], r[2], r[3]]))))
        .collect()
}

fn sign_bit<T: Element>() -> u8 {
    1u8 << (T::BITS - 1)
}

/// Reference RNE of a non-NaN `x`: bracket |x| between adjacent codes, take the nearer, ties to the
/// even code. Past max there is one virtual code (MAX_CODE + 1, value max + ulp at max) so ties at
/// the top follow the same parity rule; landing on it is an overflow, resolved by `mode`.
fn reference_encode<T: Element>(x: f32, mode: Overflow, mags: &[f64]) -> u8 {
    let sign = if x.is_sign_negative() {
        sign_bit::<T>()
    } else {
        0
    };
    let max = f64::from(T::MAX);
    let overflow = match (mode, T::INF_CODE, T::NAN_CODE) {
        (Overflow::Saturate, _, _) => T::MAX_CODE,
        (Overflow::Ieee, Some(inf), _) => inf,
        (Overflow::Ieee, None, Some(nan)) => nan,
        (Overflow::Ieee, None, None) => T::MAX_CODE,
    } | sign;
    let a = f64::from(x.abs());
    if a.is_infinite() {
        return overflow;
    }
    let top = mags.len() - 1;
    let ulp_at_max = mags[top] - mags[top - 1];
    if a > max + ulp_at_max {
        return overflow; // beyond the virtual code: no rounding can bring it back
    }
    let value = |i: usize| if i <= top { mags[i] } else { max + ulp_at_max };
    let hi = (0..=top + 1).find(|&i| value(i) >= a).unwrap_or(top + 1);
    let code = if value(hi) == a || hi == 0 {
        hi
    } else {
        let lo = hi - 1;
        let (dlo, dhi) = (a - value(lo), value(hi) - a);
        if dlo < dhi || (dlo == dhi && lo % 2 == 0) {
            lo
        } else {
            hi
        }
    };
    if code > top {
        overflow
    } else {
        u8::try_from(code).expect("codes fit a byte") | sign
    }
}

/// RNE moves a value inside the range by at most this many units in the last place of its binade.
const RNE_MAX_ERROR_ULPS: f64 = 0.5;

/// The bound for |x| = `a` (an f32): RNE_MAX_ERROR_ULPS times T's value spacing in a's binade (the
/// subnormal binade below 2^emin). The binade comes from the f32 exponent bits, not from log2.
fn rne_error_bound<T: Element>(a: f32) -> f64 {
    let emin = 1 - T::BIAS;
    let binade = ((a.to_bits() >> 23) & 0xFF) as i32 - 127; // f32 subnormals give -127 < emin
    RNE_MAX_ERROR_ULPS * 2f64.powi(binade.max(emin) - T::MAN_BITS as i32)
}

fn check_f32<T: Element>(x: f32) -> Result<(), TestCaseError> {
    check_f32_with::<T>(x, &oracle_magnitudes::<T>())
}

fn check_f32_with<T: Element>(x: f32, mags: &[f64]) -> Result<(), TestCaseError> {
    let name = T::ML_DTYPES_NAME;
    for mode in [Overflow::Saturate, Overflow::Ieee] {
        let got = T::from_f32(x, mode).to_bits();
        if x.is_nan() {
            continue; // NaN is pinned by the golden vectors
        }
        // nearest-even against the independent bracket reference
        let want = reference_encode::<T>(x, mode, mags);
        prop_assert_eq!(
            got,
            want,
            "{} {:?}: x = {:e} ({:#010x})",
            name,
            mode,
            x,
            x.to_bits()
        );
        // sign symmetry: -x encodes to the same code with the sign bit flipped
        let neg = T::from_f32(-x, mode).to_bits();
        prop_assert_eq!(
            neg,
            got ^ sign_bit::<T>(),
            "{} {:?}: sign of {:e}",
            name,
            mode,
            x
        );
        // error bound inside the range: |x - q| <= half an ulp of x's binade
        let a = f64::from(x.abs());
        if a <= f64::from(T::MAX) {
            let q = f64::from(T::from_bits(got).to_f32().abs());
            prop_assert!(
                (a - q).abs() <= rne_error_bound::<T>(x.abs()),
                "{} {:?}: |{:e} - {:e}| above half ulp",
                name,
                mode,
                a,
                q
            );
        }
        // Saturate never produces NaN or inf from a non-NaN input
        if mode == Overflow::Saturate {
            let v = T::from_bits(got).to_f32();
            prop_assert!(
                v.is_finite() && v.abs() <= T::MAX,
                "{}: saturate gave {:e} for {:e}",
                name,
                v,
                x
            );
        }
    }
    Ok(())
}

fn check_monotonic<T: Element>(x: f32, y: f32) -> Result<(), TestCaseError> {
    let (lo, hi) = if x <= y { (x, y) } else { (y, x) };
    let (qlo, qhi) = (
        T::from_f32(lo, Overflow::Saturate).to_f32(),
        T::from_f32(hi, Overflow::Saturate).to_f32(),
    );
    prop_assert!(
        qlo <= qhi,
        "{}: {:e} <= {:e} but {:e} > {:e}",
        T::ML_DTYPES_NAME,
        lo,
        hi,
        qlo,
        qhi
    );
    Ok(())
}

/// f32 spread over the binades the small types care about (2^-22 .. 2^17), any mantissa, any sign.
fn in_range_f32() -> impl Strategy<Value = f32> {
    (any::<bool>(), -22i32..=17, 0u32..(1 << 23)).prop_map(|(neg, e, m)| {
        let bits = (((e + 127) as u32) << 23) | m | if neg { 0x8000_0000 } else { 0 };
        f32::from_bits(bits)
    })
}

/// f32 with only the top 6 mantissa bits free: lands exactly on values, midpoints (ties) and their
/// near neighbours of every small type often, which fully random mantissas almost never do.
fn on_grid_f32() -> impl Strategy<Value = f32> {
    (any::<bool>(), -22i32..=17, 0u32..(1 << 6)).prop_map(|(neg, e, m)| {
        let bits = (((e + 127) as u32) << 23) | (m << 17) | if neg { 0x8000_0000 } else { 0 };
        f32::from_bits(bits)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES, ..ProptestConfig::default() })]

    #[test]
    fn rne_matches_bracket_reference_in_range(x in in_range_f32()) {
        check_f32::<E4M3>(x)?;
        check_f32::<E5M2>(x)?;
        check_f32::<E3M2>(x)?;
        check_f32::<E2M3>(x)?;
        check_f32::<E2M1>(x)?;
    }

    #[test]
    fn rne_matches_bracket_reference_on_ties(x in on_grid_f32()) {
        check_f32::<E4M3>(x)?;
        check_f32::<E5M2>(x)?;
        check_f32::<E3M2>(x)?;
        check_f32::<E2M3>(x)?;
        check_f32::<E2M1>(x)?;
    }

    #[test]
    fn rne_matches_bracket_reference_any_bits(bits in any::<u32>()) {
        let x = f32::from_bits(bits);
        check_f32::<E4M3>(x)?;
        check_f32::<E5M2>(x)?;
        check_f32::<E3M2>(x)?;
        check_f32::<E2M3>(x)?;
        check_f32::<E2M1>(x)?;
    }

    #[test]
    fn encode_is_monotonic(x in in_range_f32(), y in in_range_f32()) {
        check_monotonic::<E4M3>(x, y)?;
        check_monotonic::<E5M2>(x, y)?;
        check_monotonic::<E3M2>(x, y)?;
        check_monotonic::<E2M3>(x, y)?;
        check_monotonic::<E2M1>(x, y)?;
    }

    /// Fuzz-style: no input bits make any conversion panic, and codes stay inside the type's width.
    #[test]
    fn no_input_panics(bits in any::<u32>()) {
        let x = f32::from_bits(bits);
        for mode in [Overflow::Saturate, Overflow::Ieee] {
            prop_assert!(u32::from(E4M3::from_f32(x, mode).to_bits()) < 1 << E4M3::BITS);
            prop_assert!(u32::from(E5M2::from_f32(x, mode).to_bits()) < 1 << E5M2::BITS);
            prop_assert!(u32::from(E3M2::from_f32(x, mode).to_bits()) < 1 << E3M2::BITS);
            prop_assert!(u32::from(E2M3::from_f32(x, mode).to_bits()) < 1 << E2M3::BITS);
            prop_assert!(u32::from(E2M1::from_f32(x, mode).to_bits()) < 1 << E2M1::BITS);
            let _ = E8M0::from_f32(x, mode).to_f32();
        }
        let _ = E8M0::ceil_pow2(x).to_f32();
        let _ = E8M0::from_exact_pow2(x);
    }

    #[test]
    fn e8m0_ceil_pow2_is_the_smallest_power_of_two_at_or_above(bits in 1u32..0x7F80_0000) {
        let s = f32::from_bits(bits); // every positive finite f32, subnormals included
        let want = reference_ceil_pow2_byte(bits);
        let got = E8M0::ceil_pow2(s).to_bits();
        prop_assert_eq!(got, want, "s = {:e} ({:#010x})", s, bits);
        // the DeepSeek rule ignores the sign bit: -s gives the same byte
        prop_assert_eq!(E8M0::ceil_pow2(-s).to_bits(), want);
    }

    #[test]
    fn e8m0_cast_is_monotonic(a in 1u32..0x7F80_0000, b in 1u32..0x7F80_0000) {
        // positive f32 order is bit order
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        for mode in [Overflow::Saturate, Overflow::Ieee] {
            let (x, y) = (E8M0::from_f32(f32::from_bits(lo), mode), E8M0::from_f32(f32::from_bits(hi), mode));
            // NaN (0xFF) only ever follows finite bytes here, at the top: byte order is value order
            prop_assert!(x.to_bits() <= y.to_bits(), "{:?}: {:#010x} -> {:#04x}, {:#010x} -> {:#04x}", mode, lo, x.to_bits(), hi, y.to_bits());
        }
    }
}

/// Exact integer version of "smallest power of two >= s" for positive finite f32 bits, clamped to
/// bytes [1, 254] as DeepGEMM's rule does. Writes s = m * 2^k with an integer m, no floating point.
fn reference_ceil_pow2_byte(bits: u32) -> u8 {
    let (exp_field, frac) = ((bits >> 23) & 0xFF, bits & 0x7F_FFFF);
    let (m, k) = if exp_field == 0 {
        (frac, -149)
    } else {
        (frac | 0x80_0000, exp_field as i32 - 150)
    };
    let floor_log2_m = 31 - m.leading_zeros() as i32;
    let p = k + floor_log2_m + i32::from(!m.is_power_of_two());
    u8::try_from((p + 127).clamp(1, 254)).expect("clamped to a byte")
}

fn roundtrip_every_code<T: Element>() {
    for mode in [Overflow::Saturate, Overflow::Ieee] {
        for code in 0..(1u16 << T::BITS) {
            let code = u8::try_from(code).expect("at most 8 bits");
            let v = T::from_bits(code).to_f32();
            if v.is_nan() {
                continue;
            }
            let back = T::from_f32(v, mode).to_bits();
            let want = if v.is_infinite() && mode == Overflow::Saturate {
                T::MAX_CODE | (code & sign_bit::<T>()) // inf saturates
            } else {
                code
            };
            assert_eq!(
                back,
                want,
                "{} {mode:?}: code {code:#04x} -> {v:e} -> {back:#04x}",
                T::ML_DTYPES_NAME
            );
        }
    }
}

#[test]
fn every_non_nan_code_roundtrips() {
    roundtrip_every_code::<E4M3>();
    roundtrip_every_code::<E5M2>();
    roundtrip_every_code::<E3M2>();
    roundtrip_every_code::<E2M3>();
    roundtrip_every_code::<E2M1>();
    for b in 0..=254u8 {
        let v = E8M0::from_bits(b).to_f32();
        for mode in [Overflow::Saturate, Overflow::Ieee] {
            assert_eq!(
                E8M0::from_f32(v, mode).to_bits(),
                b,
                "E8M0 byte {b} {mode:?}"
            );
        }
        assert_eq!(
            E8M0::from_exact_pow2(v),
            Some(E8M0(b)),
            "from_exact_pow2 of byte {b}"
        );
        assert_eq!(
            E8M0::ceil_pow2(v).to_bits(),
            b.clamp(1, 254),
            "ceil_pow2 of byte {b}"
        );
    }
}

fn widen_equals_f32_path<T: Element>() {
    for mode in [Overflow::Saturate, Overflow::Ieee] {
        for b in 0..=u16::MAX {
            let (xb, xh) = (bf16::from_bits(b), f16::from_bits(b));
            assert_eq!(
                T::from_bf16(xb, mode),
                T::from_f32(xb.to_f32(), mode),
                "{} bf16 {b:#06x}",
                T::ML_DTYPES_NAME
            );
            assert_eq!(
                T::from_f16(xh, mode),
                T::from_f32(xh.to_f32(), mode),
                "{} f16 {b:#06x}",
                T::ML_DTYPES_NAME
            );
        }
    }
}

#[test]
fn bf16_and_f16_inputs_equal_the_widened_f32_path() {
    widen_equals_f32_path::<E4M3>();
    widen_equals_f32_path::<E5M2>();
    widen_equals_f32_path::<E3M2>();
    widen_equals_f32_path::<E2M3>();
    widen_equals_f32_path::<E2M1>();
}

#[test]
fn e8m0_ceil_pow2_is_exact_at_and_next_to_every_power_of_two() {
    // 2^k for every k an f32 can hold (subnormal powers included), and the f32 just above and below
    for k in -149i32..=127 {
        let p = if k >= -126 {
            f32::from_bits(((k + 127) as u32) << 23)
        } else {
            f32::from_bits(1 << (k + 149))
        };
        let bits = p.to_bits();
        let clamp = |e: i32| u8::try_from((e + 127).clamp(1, 254)).expect("byte");
        assert_eq!(E8M0::ceil_pow2(p).to_bits(), clamp(k), "ceil_pow2(2^{k})");
        assert_eq!(
            E8M0::ceil_pow2(f32::from_bits(bits + 1)).to_bits(),
            clamp(k + 1),
            "ceil_pow2(next_up(2^{k}))"
        );
        if bits > 1 {
            assert_eq!(
                E8M0::ceil_pow2(f32::from_bits(bits - 1)).to_bits(),
                clamp(k),
                "ceil_pow2(next_down(2^{k}))"
            );
        }
        assert_eq!(
            reference_ceil_pow2_byte(bits),
            clamp(k),
            "integer reference at 2^{k}"
        );
    }
}

#[test]
fn e8m0_ceil_pow2_of_deepseek_scales() {
    // s = max(amax, 1e-4) / 448 for amax exactly 448 * 2^j: the quotient is 2^j exactly and must
    // not be rounded up (the off-by-one that float log2/ceil gives)
    for j in -20i32..=20 {
        let amax = 448.0f32 * 2f32.powi(j);
        let s = amax.max(1e-4) / 448.0;
        assert_eq!(E8M0::ceil_pow2(s).exponent(), Some(j), "amax = 448 * 2^{j}");
    }
    // the 1e-4 floor: an all-zero tile gets 2^ceil(log2(1e-4 / 448)) = 2^-22
    assert_eq!(E8M0::ceil_pow2(1e-4f32 / 448.0).exponent(), Some(-22));
    // 0, NaN and inf follow the bit rule (callers never pass them): clamped to bytes 1 and 254
    assert_eq!(E8M0::ceil_pow2(0.0).to_bits(), 1);
    assert_eq!(E8M0::ceil_pow2(f32::INFINITY).to_bits(), 254);
    assert_eq!(E8M0::ceil_pow2(f32::NAN).to_bits(), 254);
}

/// Every value, every tie and the f32 on either side of each tie, in every binade of every type:
/// the small types' values and midpoints have at most 5 significant bits, so they are all bf16
/// patterns (upper 16 bits of an f32); each pattern is tried as is, one f32 ulp above, and one
/// below (the previous pattern's `| 0xFFFF`).
fn check_every_bf16_neighbourhood<T: Element>() {
    let mags = oracle_magnitudes::<T>();
    for hi in 0..=u16::MAX {
        let base = u32::from(hi) << 16;
        for bits in [base, base | 1, base | 0xFFFF] {
            if let Err(e) = check_f32_with::<T>(f32::from_bits(bits), &mags) {
                panic!("{} at f32 bits {bits:#010x}: {e}", T::ML_DTYPES_NAME);
            }
        }
    }
}

#[test]
fn rne_matches_bracket_reference_around_every_bf16() {
    check_every_bf16_neighbourhood::<E4M3>();
    check_every_bf16_neighbourhood::<E5M2>();
    check_every_bf16_neighbourhood::<E3M2>();
    check_every_bf16_neighbourhood::<E2M3>();
    check_every_bf16_neighbourhood::<E2M1>();
}
