//! Scalar element and scale types of the FP8 / FP6 / FP4 / UE8M0 world, bit-exact to ml_dtypes 0.6
//! and to `shared/design/formats.md` section 1 (user-facing summary: `docs/formats.md`).
//!
//! Every element type is a `u8` newtype holding its bit pattern in the low bits:
//! [`E4M3`], [`E5M2`] (FP8), [`E3M2`], [`E2M3`] (FP6), [`E2M1`] (FP4), all behind the [`Element`]
//! trait, and the scale type [`E8M0`]. Conversion from f32 (or bf16 / f16, widened exactly first)
//! rounds to nearest, ties to even, once; [`Overflow`] picks what happens past the largest finite
//! value. Subnormals are kept, never flushed. [`decode_table`] and [`e4m3_to_f32_via_f16_bits`] are
//! the exact decodes the SIMD kernels of `ue8-quant` mirror.
//!
//! Every conversion is tested bit for bit against golden vectors written by ml_dtypes
//! (`tools/golden/gen_scalar.py`), in both overflow modes, for every code and every bf16 / f16 input.
//!
//! ```
//! use ue8_formats::{decode_table, Element, Overflow, E2M1, E4M3, E8M0};
//!
//! // E4M3: 464 is the tie between 448 and the (absent) 480; it rounds to the even code 0x7E.
//! assert_eq!(E4M3::from_f32(464.0, Overflow::Ieee).to_f32(), 448.0);
//! assert!(E4M3::from_f32(464.1, Overflow::Ieee).to_f32().is_nan()); // ml_dtypes' rule
//! assert_eq!(E4M3::from_f32(464.1, Overflow::Saturate).to_f32(), 448.0); // OCP / DeepSeek rule
//! assert_eq!(E4M3::from_f32(2f32.powi(-9), Overflow::Saturate).to_bits(), 0x01); // a subnormal
//!
//! // FP4 values are 0, 0.5, 1, 1.5, 2, 3, 4, 6: 2.5 ties to 2 (even code), 5 to 4, 7 saturates.
//! let fp4 = |x: f32| E2M1::from_f32(x, Overflow::Saturate).to_f32();
//! assert_eq!((fp4(2.5), fp4(5.0), fp4(7.0), fp4(-0.2)), (2.0, 4.0, 6.0, -0.0));
//!
//! // UE8M0 scales: byte 0 is 2^-127 (an f32 subnormal), 0xFF is NaN.
//! assert_eq!(E8M0::from_bits(0).to_f32(), 2f32.powi(-127));
//! // The DeepSeek V3.1 scale rule rounds UP to a power of two, exactly at powers of two.
//! assert_eq!(E8M0::ceil_pow2(1.0).exponent(), Some(0));
//! assert_eq!(E8M0::ceil_pow2(1.0000001).exponent(), Some(1));
//! // A plain cast (ml_dtypes) rounds to the nearer power of two instead, ties up.
//! assert_eq!(E8M0::from_f32(1.5, Overflow::Ieee).exponent(), Some(1));
//!
//! // Whole-type decode tables for kernels.
//! assert_eq!(decode_table::<E4M3>()[0x7E], 448.0);
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
    /// Clamp to +-max finite, infinities included (OCP MX, DeepSeek, NVIDIA `satfinite`). Defined as
    /// "clamp, then the `Ieee` cast", so NaN is handled exactly as in `Ieee`.
    Saturate,
    /// ml_dtypes' cast: past max, E4M3 -> NaN and E5M2 -> inf; FP6/FP4 (no inf, no NaN) saturate.
    /// NaN keeps its sign on E4M3 (0x7F) and E5M2 (0x7E); on FP6/FP4 it becomes the zero of the
    /// opposite sign (+NaN -> -0), as ml_dtypes does.
    Ieee,
}

/// Round-to-nearest-even of an f32 to a `bf16`, the rounding every dequantizer in ue8 uses.
///
/// Bit-exact to ml_dtypes' cast (golden vectors): finite values round to nearest, ties to even, and
/// overflow to inf; any NaN becomes the quiet NaN 0x7FC0 with the input's sign (the payload is
/// dropped; `half::bf16::from_f32` would keep its top bits).
#[inline]
pub fn f32_to_bf16_rne(x: f32) -> half::bf16 {
    let b = x.to_bits();
    if b & 0x7FFF_FFFF > 0x7F80_0000 {
        return half::bf16::from_bits(((b >> 16) as u16 & 0x8000) | 0x7FC0);
    }
    // add half - 1, plus 1 when the kept LSB is odd; no u32 overflow (b <= 0xFF80_0000 here)
    let lsb = (b >> 16) & 1;
    half::bf16::from_bits(((b + 0x7FFF + lsb) >> 16) as u16)
}
