//! Scalar element and scale types of the FP8 / FP6 / FP4 / UE8M0 world, bit-exact to
//! `shared/design/formats.md` section 1 (the OCP MX v1.0 spec, DeepSeek's rules and ml_dtypes 0.6).
//!
//! Every element type is a `u8` newtype holding its bit pattern in the low bits:
//! [`E4M3`], [`E5M2`] (FP8), [`E3M2`], [`E2M3`] (FP6), [`E2M1`] (FP4) and the scale type [`E8M0`].
//! Conversion from f32 rounds to nearest, ties to even, on the f32 value itself; [`Overflow`] picks
//! what happens past the largest finite value. Subnormals are kept, never flushed.
//!
//! ```
//! use ue8_formats::{Element, Overflow, E4M3, E8M0};
//! assert_eq!(E4M3::from_f32(464.0, Overflow::Ieee).to_f32(), 448.0); // tie rounds to even
//! assert!(E4M3::from_f32(464.1, Overflow::Ieee).to_f32().is_nan());   // ml_dtypes' rule
//! assert_eq!(E4M3::from_f32(464.1, Overflow::Saturate).to_f32(), 448.0); // OCP / DeepSeek rule
//! assert_eq!(E8M0::from_bits(0).to_f32(), 2f32.powi(-127));
//! ```
#![no_std]

mod decode;
mod e8m0;
mod minifloat;

pub use decode::{decode_table, e4m3_to_f16_bits, e4m3_to_f32_via_f16_bits};
pub use e8m0::E8M0;
pub use minifloat::{Element, E2M1, E2M3, E3M2, E4M3, E5M2};

/// What an f32 -> element conversion does with values whose rounded magnitude exceeds the largest
/// finite value, and with infinities.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Overflow {
    /// Clamp to +-max finite (OCP MX and DeepSeek quantizers). NaN stays NaN where the type has one.
    Saturate,
    /// What ml_dtypes does: E4M3 -> NaN, E5M2 -> inf; FP6/FP4 (no inf, no NaN) saturate anyway.
    Ieee,
}

/// Round-to-nearest-even of an f32 to a `bf16`, the rounding every dequantizer in ue8 uses.
#[inline]
pub fn f32_to_bf16_rne(x: f32) -> half::bf16 {
    half::bf16::from_f32(x)
}
