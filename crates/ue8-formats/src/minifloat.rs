//! Generic small-float codec, instantiated for E4M3, E5M2, E3M2, E2M3 and E2M1.
//!
//! A non-negative code is `(biased exponent << M) | mantissa`; codes are monotonic in value, so a
//! rounded magnitude `n * quantum` maps to code `((max(E, emin) - emin) << M) + n` where
//! `quantum = 2^(max(E, emin) - M)`. That one formula covers subnormals, normals and the carry
//! into the next binade.

use crate::Overflow;

/// An element type of up to 8 bits stored in the low bits of a `u8`.
pub trait Element:
    Copy + Sized + core::fmt::Debug + PartialEq + Eq + Default + Send + Sync + 'static
{
    /// Name as ml_dtypes spells it.
    const ML_DTYPES_NAME: &'static str;
    /// Total bits (sign included).
    const BITS: u32;
    /// Exponent bits.
    const EXP_BITS: u32;
    /// Mantissa bits.
    const MAN_BITS: u32;
    /// Exponent bias.
    const BIAS: i32;
    /// Largest finite value.
    const MAX: f32;
    /// Code of the largest finite positive value.
    const MAX_CODE: u8;
    /// Exponent of the largest normal binade (OCP's `emax_elem`).
    const EMAX: i32;
    /// Code an f32 NaN becomes (positive NaN input; sign is applied where the type keeps it).
    const NAN_CODE: Option<u8>;
    /// Code of +infinity, if the type has one.
    const INF_CODE: Option<u8>;

    /// Wraps a bit pattern (bits above `BITS` are ignored).
    fn from_bits(bits: u8) -> Self;
    /// The bit pattern, in the low `BITS` bits.
    fn to_bits(self) -> u8;

    /// f32 -> element, round to nearest even, with the given overflow mode.
    #[inline]
    fn from_f32(x: f32, mode: Overflow) -> Self {
        Self::from_bits(encode::<Self>(x, mode))
    }
    /// f16 -> element (exact widening to f32 first, so a single rounding).
    #[inline]
    fn from_f16(x: half::f16, mode: Overflow) -> Self {
        Self::from_f32(x.to_f32(), mode)
    }
    /// bf16 -> element (exact widening to f32 first, so a single rounding).
    #[inline]
    fn from_bf16(x: half::bf16, mode: Overflow) -> Self {
        Self::from_f32(x.to_f32(), mode)
    }
    /// element -> f32, exact.
    #[inline]
    fn to_f32(self) -> f32 {
        decode::<Self>(self.to_bits())
    }
}

const fn sign_bit(bits: u32) -> u8 {
    1u8 << (bits - 1)
}

/// f32 -> code. Never panics, for any input bits.
#[inline]
fn encode<T: Element>(x: f32, mode: Overflow) -> u8 {
    let sign = if x.is_sign_negative() {
        sign_bit(T::BITS)
    } else {
        0
    };
    if x.is_nan() {
        return match T::NAN_CODE {
            // ml_dtypes keeps the sign and drops the payload (checked by the golden vectors).
            Some(nan) => nan | sign,
            // Types without NaN: ml_dtypes gives a zero of the OPPOSITE sign, so +NaN -> -0 and
            // -NaN -> +0 (formats.md section 1 names the -0 case; the golden vectors pin both).
            None => sign_bit(T::BITS) ^ sign,
        };
    }
    let a = x.abs();
    let overflow = || -> u8 {
        match (mode, T::INF_CODE, T::NAN_CODE) {
            (Overflow::Saturate, _, _) => T::MAX_CODE | sign,
            (Overflow::Ieee, Some(inf), _) => inf | sign,
            (Overflow::Ieee, None, Some(nan)) => nan | sign,
            (Overflow::Ieee, None, None) => T::MAX_CODE | sign,
        }
    };
    if a.is_infinite() {
        return overflow();
    }
    if a == 0.0 {
        return sign;
    }
    let emin = 1 - T::BIAS;
    // floor(log2(a)) from the bits; f32 subnormals lie far below every element's smallest
    // subnormal, so treating them as binade -127 only ever rounds them to zero, correctly.
    let e = ((a.to_bits() >> 23) as i32) - 127;
    if e > T::EMAX + 1 {
        return overflow();
    }
    let e = e.max(emin);
    let qexp = e - T::MAN_BITS as i32;
    // a / 2^qexp is exact (a power-of-two scaling that stays normal or exactly subnormal)
    // and below 2^(M+2), so round_ties_even on it is the RNE of the element.
    let n = (a * pow2(-qexp)).round_ties_even() as u32;
    let code = (((e - emin) as u32) << T::MAN_BITS) + n;
    if code > T::MAX_CODE as u32 {
        return overflow();
    }
    code as u8 | sign
}

/// 2^k as f32 for k in -149..=127, exact.
#[inline]
pub(crate) fn pow2(k: i32) -> f32 {
    if k >= -126 {
        f32::from_bits(((k + 127) as u32) << 23)
    } else {
        f32::from_bits(1u32 << (k + 149))
    }
}

#[inline]
fn decode<T: Element>(bits: u8) -> f32 {
    let sign_mask = sign_bit(T::BITS);
    let code = bits & (sign_mask | (sign_mask - 1));
    let neg = code & sign_mask != 0;
    let mag = code & !sign_mask;
    let v = if Some(mag) == T::INF_CODE {
        f32::INFINITY
    } else if mag > T::MAX_CODE {
        f32::NAN
    } else {
        let exp_field = (mag >> T::MAN_BITS) as i32;
        let man = (mag & ((1 << T::MAN_BITS) - 1)) as f32;
        if exp_field == 0 {
            man * pow2(1 - T::BIAS - T::MAN_BITS as i32)
        } else {
            (man + (1u32 << T::MAN_BITS) as f32) * pow2(exp_field - T::BIAS - T::MAN_BITS as i32)
        }
    };
    if neg {
        -v
    } else {
        v
    }
}

macro_rules! element {
    ($(#[$doc:meta])* $name:ident, $ml:literal, bits $bits:literal, exp $e:literal, man $m:literal,
     bias $bias:literal, max $max:literal, max_code $maxc:literal, emax $emax:literal,
     nan $nan:expr, inf $inf:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
        #[repr(transparent)]
        pub struct $name(pub u8);

        impl Element for $name {
            const ML_DTYPES_NAME: &'static str = $ml;
            const BITS: u32 = $bits;
            const EXP_BITS: u32 = $e;
            const MAN_BITS: u32 = $m;
            const BIAS: i32 = $bias;
            const MAX: f32 = $max;
            const MAX_CODE: u8 = $maxc;
            const EMAX: i32 = $emax;
            const NAN_CODE: Option<u8> = $nan;
            const INF_CODE: Option<u8> = $inf;
            #[inline]
            fn from_bits(bits: u8) -> Self {
                Self(bits & (((1u16 << $bits) - 1) as u8))
            }
            #[inline]
            fn to_bits(self) -> u8 {
                self.0
            }
        }
    };
}

element!(
    /// FP8 E4M3 "fn": bias 7, max 448, no inf, NaN 0x7F/0xFF.
    E4M3, "float8_e4m3fn", bits 8, exp 4, man 3, bias 7, max 448.0, max_code 0x7E, emax 8,
    nan Some(0x7F), inf None
);
element!(
    /// FP8 E5M2: bias 15, max 57344, inf 0x7C, NaN 0x7D-0x7F. An f32 NaN becomes 0x7E (with its
    /// sign), the canonical quiet NaN (top mantissa bit set) that ml_dtypes writes for any payload.
    E5M2, "float8_e5m2", bits 8, exp 5, man 2, bias 15, max 57344.0, max_code 0x7B, emax 15,
    nan Some(0x7E), inf Some(0x7C)
);
element!(
    /// FP6 E3M2: bias 3, max 28, no inf, no NaN.
    E3M2, "float6_e3m2fn", bits 6, exp 3, man 2, bias 3, max 28.0, max_code 0x1F, emax 4,
    nan None, inf None
);
element!(
    /// FP6 E2M3: bias 1, max 7.5, no inf, no NaN.
    E2M3, "float6_e2m3fn", bits 6, exp 2, man 3, bias 1, max 7.5, max_code 0x1F, emax 2,
    nan None, inf None
);
element!(
    /// FP4 E2M1: bias 1, values 0, 0.5, 1, 1.5, 2, 3, 4, 6; no inf, no NaN.
    E2M1, "float4_e2m1fn", bits 4, exp 2, man 1, bias 1, max 6.0, max_code 0x7, emax 2,
    nan None, inf None
);
