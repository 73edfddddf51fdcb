//! Generic small-float codec, instantiated for E4M3, E5M2, E3M2, E2M3 and E2M1.
//!
//! A non-negative code is `(biased exponent << M) | mantissa`, and codes are monotonic in value.
//! Encoding works on the f32 bits: in the element's normal range, dropping the low `23 - M` mantissa
//! bits with round-to-nearest-even and re-biasing the exponent gives the code directly (a rounding
//! carry lands in the exponent field, which is the next code); below the smallest normal, one f32
//! addition of a power of two rounds the value onto the subnormal grid.

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
    /// Code a positive f32 NaN becomes (the sign bit is added for a negative NaN), `None` for types
    /// without NaN, where a NaN becomes the zero of the opposite sign (ml_dtypes' rule).
    const NAN_CODE: Option<u8>;
    /// Code of +infinity, if the type has one.
    const INF_CODE: Option<u8>;
    /// The exact f32 value of every byte (bits above `BITS` ignored, so narrower types repeat);
    /// what [`Element::to_f32`] reads. Built at compile time.
    const F32_TABLE: [f32; 256];

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
    /// True for the NaN codes (E4M3 0x7F/0xFF, E5M2 0x7D-0x7F/0xFD-0xFF; FP6/FP4 have none): what a
    /// loader screens for before a fast decode that does not (formats.md section 5).
    #[inline]
    fn is_nan(self) -> bool {
        self.to_f32().is_nan()
    }
    /// element -> f32, exact (a lookup in [`Element::F32_TABLE`]).
    #[inline]
    fn to_f32(self) -> f32 {
        Self::F32_TABLE[usize::from(self.to_bits())]
    }
}

const fn sign_bit(bits: u32) -> u8 {
    1u8 << (bits - 1)
}

/// f32 bits of +infinity; any larger magnitude is a NaN.
const F32_INF_BITS: u32 = 0x7F80_0000;

/// f32 -> code. Never panics, for any input bits.
#[inline]
fn encode<T: Element>(x: f32, mode: Overflow) -> u8 {
    let bits = x.to_bits();
    let sign = ((bits >> 31) as u8) << (T::BITS - 1);
    let abs = bits & 0x7FFF_FFFF;
    let overflow = match (mode, T::INF_CODE, T::NAN_CODE) {
        (Overflow::Saturate, _, _) => T::MAX_CODE,
        (Overflow::Ieee, Some(inf), _) => inf,
        (Overflow::Ieee, None, Some(nan)) => nan,
        (Overflow::Ieee, None, None) => T::MAX_CODE,
    };
    if abs >= F32_INF_BITS {
        if abs == F32_INF_BITS {
            return overflow | sign;
        }
        return match T::NAN_CODE {
            // ml_dtypes keeps the sign and drops the payload (checked by the golden vectors).
            Some(nan) => nan | sign,
            // Types without NaN: ml_dtypes gives a zero of the OPPOSITE sign, so +NaN -> -0 and
            // -NaN -> +0 (formats.md section 1 names the -0 case; the golden vectors pin both).
            None => sign_bit(T::BITS) ^ sign,
        };
    }
    let man = T::MAN_BITS;
    let drop = 23 - man;
    // Normal range: round the f32 bits to M mantissa bits, ties to even (add half - 1, plus 1 when
    // the kept LSB is odd), then move the exponent bias from 127 to T's. No u32 overflow: abs is
    // below the f32 inf bits.
    let lsb = (abs >> drop) & 1;
    let rounded = (abs + (1 << (drop - 1)) - 1 + lsb) >> drop;
    let normal = rounded.wrapping_sub(((127 - T::BIAS) as u32) << man);
    // Below 2^emin (T's subnormals and everything that rounds to 0): adding 2^(emin - M + 23) puts
    // the value in the f32 binade whose ulp is T's subnormal step, so the addition itself rounds it
    // to nearest even; the sum's bits minus the constant's bits are the code (2^M is exactly the
    // smallest normal code).
    let emin = 1 - T::BIAS;
    let magic = pow2(emin - man as i32 + 23);
    let subnormal = (f32::from_bits(abs) + magic).to_bits() - magic.to_bits();
    let min_normal_bits = ((emin + 127) as u32) << 23;
    let code = if abs < min_normal_bits {
        subnormal
    } else {
        normal
    };
    if code > u32::from(T::MAX_CODE) {
        return overflow | sign;
    }
    code as u8 | sign
}

/// 2^k as f32 for k in -149..=127, exact.
#[inline]
pub(crate) const fn pow2(k: i32) -> f32 {
    if k >= -126 {
        f32::from_bits(((k + 127) as u32) << 23)
    } else {
        f32::from_bits(1u32 << (k + 149))
    }
}

/// Exact value of a code, from the type's parameters (a `const fn`, so tables build at compile time).
const fn decode(
    bits: u8,
    width: u32,
    man_bits: u32,
    bias: i32,
    max_code: u8,
    inf: Option<u8>,
) -> f32 {
    let sign_mask = sign_bit(width);
    let code = bits & (sign_mask | (sign_mask - 1));
    let mag = code & !sign_mask;
    let is_inf = match inf {
        Some(i) => mag == i,
        None => false,
    };
    let v = if is_inf {
        f32::INFINITY
    } else if mag > max_code {
        f32::NAN
    } else {
        let exp_field = (mag >> man_bits) as i32;
        let man = (mag & ((1 << man_bits) - 1)) as f32;
        if exp_field == 0 {
            man * pow2(1 - bias - man_bits as i32)
        } else {
            (man + (1u32 << man_bits) as f32) * pow2(exp_field - bias - man_bits as i32)
        }
    };
    if code & sign_mask != 0 {
        -v
    } else {
        v
    }
}

/// Every byte's value, for [`Element::F32_TABLE`].
const fn decode_all(
    width: u32,
    man_bits: u32,
    bias: i32,
    max_code: u8,
    inf: Option<u8>,
) -> [f32; 256] {
    let mut table = [0.0f32; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = decode(b as u8, width, man_bits, bias, max_code, inf);
        b += 1;
    }
    table
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
            const F32_TABLE: [f32; 256] = decode_all($bits, $m, $bias, $maxc, $inf);
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
