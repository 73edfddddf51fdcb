//! The facts `shared/design/formats.md` section 1 states in words (type table, overflow examples,
//! E8M0 cast examples), each checked twice: against the implementation, and against the ml_dtypes
//! golden vectors, so a disagreement between the written contract and the oracle cannot go unseen.

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

/// The oracle's code for input `x`, looked up in an encode fixture (every fact below is one of the
/// script's listed inputs, so a missing one means the generator lost coverage).
fn oracle(bytes: &[u8], x: f32) -> u8 {
    bytes
        .chunks_exact(5)
        .find(|r| u32::from_le_bytes([r[0], r[1], r[2], r[3]]) == x.to_bits())
        .map(|r| r[4])
        .unwrap_or_else(|| panic!("input {x:e} ({:#010x}) is not in the fixture", x.to_bits()))
}

/// One row of the type table of formats.md section 1.
struct TypeRow {
    max: f32,
    max_code: u8,
    min_subnormal: f32,
    nan_codes: &'static [u8],
    inf_code: Option<u8>,
}

fn check_row<T: Element>(row: &TypeRow) {
    let name = T::ML_DTYPES_NAME;
    assert_eq!(T::MAX, row.max, "{name} MAX");
    assert_eq!(T::MAX_CODE, row.max_code, "{name} MAX_CODE");
    assert_eq!(
        T::from_bits(row.max_code).to_f32(),
        row.max,
        "{name} max decodes"
    );
    assert_eq!(
        T::from_bits(1).to_f32(),
        row.min_subnormal,
        "{name} code 1 is the smallest subnormal"
    );
    assert_eq!(T::INF_CODE, row.inf_code, "{name} INF_CODE");
    let sign = 1u8 << (T::BITS - 1);
    for code in 0..(1u16 << T::BITS) {
        let code = u8::try_from(code).expect("byte");
        let v = T::from_bits(code).to_f32();
        let is_nan_code = row.nan_codes.contains(&code);
        assert_eq!(v.is_nan(), is_nan_code, "{name} code {code:#04x} NaN-ness");
        assert_eq!(
            T::from_bits(code).is_nan(),
            is_nan_code,
            "{name} code {code:#04x} is_nan()"
        );
        let is_inf_code = row.inf_code.is_some_and(|i| code & !sign == i);
        assert_eq!(
            v.is_infinite(),
            is_inf_code,
            "{name} code {code:#04x} inf-ness"
        );
    }
}

#[test]
fn type_table_of_formats_md() {
    check_row::<E4M3>(&TypeRow {
        max: 448.0,
        max_code: 0x7E,
        min_subnormal: 2f32.powi(-9),
        nan_codes: &[0x7F, 0xFF],
        inf_code: None,
    });
    check_row::<E5M2>(&TypeRow {
        max: 57344.0,
        max_code: 0x7B,
        min_subnormal: 2f32.powi(-16),
        nan_codes: &[0x7D, 0x7E, 0x7F, 0xFD, 0xFE, 0xFF],
        inf_code: Some(0x7C),
    });
    check_row::<E3M2>(&TypeRow {
        max: 28.0,
        max_code: 0x1F,
        min_subnormal: 0.0625,
        nan_codes: &[],
        inf_code: None,
    });
    check_row::<E2M3>(&TypeRow {
        max: 7.5,
        max_code: 0x1F,
        min_subnormal: 0.125,
        nan_codes: &[],
        inf_code: None,
    });
    check_row::<E2M1>(&TypeRow {
        max: 6.0,
        max_code: 0x7,
        min_subnormal: 0.5,
        nan_codes: &[],
        inf_code: None,
    });
    // E8M0: 2^127 at 0xFE, 2^-127 at 0x00 (an f32 subnormal, bits 0x0040_0000), NaN at 0xFF
    assert_eq!(E8M0::from_bits(0xFE).to_f32(), 2f32.powi(127));
    assert_eq!(E8M0::from_bits(0).to_f32().to_bits(), 0x0040_0000);
    assert!(E8M0::from_bits(0xFF).to_f32().is_nan());
    assert!(E8M0::NAN.is_nan() && E8M0::from_bits(0xFF).exponent().is_none());
}

#[test]
fn overflow_examples_of_formats_md() {
    let (ieee, sat) = (
        fixture!("encode_e4m3_ieee.bin"),
        fixture!("encode_e4m3_saturate.bin"),
    );
    // "E4M3 values that round above 448 -> NaN, e.g. 464.1 -> NaN but 464 -> 448"
    let x464_1 = f32::from_bits(464.0f32.to_bits() + 1); // the f32 just above the tie
    for (x, want_ieee, want_sat) in [
        (464.0f32, 0x7E, 0x7E),
        (x464_1, 0x7F, 0x7E),
        (-x464_1, 0xFF, 0xFE),
    ] {
        assert_eq!(
            E4M3::from_f32(x, Overflow::Ieee).to_bits(),
            want_ieee,
            "E4M3 Ieee {x}"
        );
        assert_eq!(
            E4M3::from_f32(x, Overflow::Saturate).to_bits(),
            want_sat,
            "E4M3 Saturate {x}"
        );
        assert_eq!(oracle(ieee, x), want_ieee, "ml_dtypes E4M3 {x}");
        assert_eq!(oracle(sat, x), want_sat, "clip + ml_dtypes E4M3 {x}");
    }
    // "E5M2 -> inf": the f32 just past the tie 61440 between 57344 and 65536
    let (ieee, sat) = (
        fixture!("encode_e5m2_ieee.bin"),
        fixture!("encode_e5m2_saturate.bin"),
    );
    let x = f32::from_bits(61440.0f32.to_bits() + 1);
    assert_eq!(E5M2::from_f32(x, Overflow::Ieee).to_bits(), 0x7C);
    assert_eq!(oracle(ieee, x), 0x7C);
    assert_eq!(E5M2::from_f32(x, Overflow::Saturate).to_bits(), 0x7B);
    assert_eq!(oracle(sat, x), 0x7B);
    // "FP4/FP6 types saturate overflow and inf to +-max and turn NaN into -0 (0x8 / 0x20)"
    let e2m1 = fixture!("encode_e2m1_ieee.bin");
    for (x, want) in [
        (f32::INFINITY, 0x7u8),
        (f32::NEG_INFINITY, 0xF),
        (12.0, 0x7),
        (f32::NAN, 0x8),
    ] {
        assert_eq!(
            E2M1::from_f32(x, Overflow::Ieee).to_bits(),
            want,
            "E2M1 {x}"
        );
        assert_eq!(oracle(e2m1, x), want, "ml_dtypes E2M1 {x}");
    }
    let e3m2 = fixture!("encode_e3m2_ieee.bin");
    assert_eq!(E3M2::from_f32(f32::NAN, Overflow::Ieee).to_bits(), 0x20);
    assert_eq!(oracle(e3m2, f32::NAN), 0x20);
    assert_eq!(E2M3::from_f32(f32::NAN, Overflow::Ieee).to_bits(), 0x20);
}

#[test]
fn e8m0_cast_examples_of_formats_md() {
    let ieee = fixture!("encode_e8m0_ieee.bin");
    // "rounds to the nearer power of two on a linear scale with ties up (1.5 -> 2, 3 -> 4, 6 -> 8)"
    for (x, want) in [
        (1.5f32, 128u8),
        (3.0, 129),
        (6.0, 130),
        (1.0, 127),
        (2.0, 128),
    ] {
        assert_eq!(
            E8M0::from_f32(x, Overflow::Ieee).to_bits(),
            want,
            "E8M0 {x}"
        );
        assert_eq!(oracle(ieee, x), want, "ml_dtypes E8M0 {x}");
    }
    // just below the linear midpoint stays down
    let below = f32::from_bits(1.5f32.to_bits() - 1);
    assert_eq!(E8M0::from_f32(below, Overflow::Ieee).to_bits(), 127);
    assert_eq!(oracle(ieee, below), 127);
    // "maps 0, negatives, inf and NaN to 0xFF"
    for x in [0.0f32, -0.0, -1.0, f32::INFINITY, f32::NAN] {
        assert_eq!(
            E8M0::from_f32(x, Overflow::Ieee).to_bits(),
            0xFF,
            "E8M0 {x}"
        );
        assert_eq!(oracle(ieee, x), 0xFF, "ml_dtypes E8M0 {x}");
    }
    // the f32-subnormal corner (docs/formats.md): (0, 2^-127] -> byte 0, (2^-127, 2^-126) -> byte 1
    for (bits, want) in [
        (0x0000_0001u32, 0u8),
        (0x0040_0000, 0),
        (0x0040_0001, 1),
        (0x005F_FFFF, 1),
        (0x007F_FFFF, 1),
    ] {
        let x = f32::from_bits(bits);
        assert_eq!(
            E8M0::from_f32(x, Overflow::Ieee).to_bits(),
            want,
            "E8M0 bits {bits:#x}"
        );
        assert_eq!(oracle(ieee, x), want, "ml_dtypes E8M0 bits {bits:#x}");
    }
}
