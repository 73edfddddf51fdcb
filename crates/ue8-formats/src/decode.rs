//! Exact decodes in the shapes the kernels want: whole lookup tables and the F16C bit trick.

use crate::minifloat::Element;

/// `T`'s value for every byte, indexed by the byte: `decode_table::<T>()[b] == T::from_bits(b).to_f32()`.
///
/// For types narrower than 8 bits the bits above `T::BITS` are ignored, as [`Element::from_bits`]
/// does, so the table repeats; a kernel can index it with a raw byte without masking.
pub fn decode_table<T: Element>() -> [f32; 256] {
    T::F32_TABLE
}

/// The f16 bit pattern whose value is `E4M3 code / 2^8` (formats.md section 5).
///
/// E4M3 is an f16 with its exponent 8 smaller and 7 mantissa bits missing: placing the sign at bit
/// 15 and the 7 magnitude bits at bits 13..7 gives an f16 whose value is the E4M3 value times 2^-8,
/// subnormals included (both have their subnormal binade at exponent field 0). The NaN codes
/// (0x7F, 0xFF) become +-1.875 here, +-480 after the 2^8: screen for them when loading.
#[inline]
pub const fn e4m3_to_f16_bits(code: u8) -> u16 {
    (((code & 0x80) as u16) << 8) | (((code & 0x7F) as u16) << 7)
}

/// E4M3 -> f32 the way the F16C kernels do it: [`e4m3_to_f16_bits`], widen the f16 exactly, times 2^8.
/// Exact for the 254 non-NaN codes; the NaN codes give +-480 (see [`e4m3_to_f16_bits`]).
#[inline]
pub fn e4m3_to_f32_via_f16_bits(code: u8) -> f32 {
    /// 2^8: undoes the exponent offset between E4M3 (bias 7) and f16 (bias 15).
    const F16_TO_E4M3_SCALE: f32 = 256.0;
    half::f16::from_bits(e4m3_to_f16_bits(code)).to_f32() * F16_TO_E4M3_SCALE
}
