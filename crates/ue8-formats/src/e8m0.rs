//! UE8M0 / E8M0: the one-byte power-of-two scale of DeepSeek-V3.1 and OCP MX.

use crate::minifloat::pow2;
use crate::Overflow;

/// Unsigned power of two, value `2^(byte - 127)`; byte 0xFF is NaN. No zero, no sign.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(transparent)]
pub struct E8M0(pub u8);

impl E8M0 {
    /// The NaN byte: a reader must reject or flag it.
    pub const NAN: E8M0 = E8M0(0xFF);
    /// 2^0.
    pub const ONE: E8M0 = E8M0(127);

    /// Wraps a scale byte (every byte is valid; 0xFF is the NaN).
    #[inline]
    pub const fn from_bits(b: u8) -> Self {
        E8M0(b)
    }
    /// The scale byte, as stored in F8_E8M0 / U8 scale tensors.
    #[inline]
    pub const fn to_bits(self) -> u8 {
        self.0
    }
    /// True for byte 0xFF, the only NaN (ml_dtypes' `float8_e8m0fnu` and the OCP MX spec agree).
    #[inline]
    pub const fn is_nan(self) -> bool {
        self.0 == 0xFF
    }
    /// Unbiased exponent, `None` for NaN.
    #[inline]
    pub const fn exponent(self) -> Option<i32> {
        if self.0 == 0xFF {
            None
        } else {
            Some(self.0 as i32 - 127)
        }
    }
    /// Exact f32 value. Byte 0 is 2^-127, an f32 subnormal (`e << 23` would give 0).
    #[inline]
    pub fn to_f32(self) -> f32 {
        match self.0 {
            0xFF => f32::NAN,
            b => pow2(b as i32 - 127),
        }
    }
    /// Byte of an f32 that is exactly a power of two in [2^-127, 2^127]; `None` otherwise.
    #[inline]
    pub fn from_exact_pow2(x: f32) -> Option<Self> {
        if x.is_nan() || x <= 0.0 || x.is_infinite() {
            return None;
        }
        let b = x.to_bits();
        let (e, m) = ((b >> 23) as i32, b & 0x7F_FFFF);
        if e == 0 {
            // only 2^-127 (bits 0x0040_0000) is representable among f32 subnormals
            (m == 0x40_0000).then_some(E8M0(0))
        } else if m == 0 && e <= 254 {
            Some(E8M0(e as u8))
        } else {
            None
        }
    }

    /// Plain f32 -> E8M0 cast as ml_dtypes does it (formats.md section 1): the nearer power of two
    /// on a linear scale, ties up; 0, negatives, inf and NaN become 0xFF. With `Overflow::Saturate`
    /// values that round above 2^127, and +inf, clamp to 0xFE instead of becoming NaN. f32
    /// subnormals follow ml_dtypes' own rule, see the body. Not a scale rule: quantizers want
    /// [`E8M0::ceil_pow2`] (DeepSeek, NVIDIA RCEIL) or the OCP floor rule of `ue8-quant`.
    #[inline]
    pub fn from_f32(x: f32, mode: Overflow) -> Self {
        /// f32 bits of +infinity.
        const INF_BITS: u32 = 0x7F80_0000;
        let b = x.to_bits();
        // +0, every negative (sign bit set, -0 included), +inf and NaN: one unsigned comparison.
        if b.wrapping_sub(1) >= INF_BITS - 1 {
            return if b == INF_BITS && mode == Overflow::Saturate {
                E8M0(0xFE)
            } else {
                E8M0::NAN
            };
        }
        let (e, m) = (b >> 23, b & 0x7F_FFFF);
        // Normal f32: the upper power of two once the mantissa reaches 1.5 (nearer, or tied: ties up).
        // f32 subnormal (e == 0), (0, 2^-126): ml_dtypes does NOT use the linear midpoint
        // 1.5 * 2^-127 here. It rounds the subnormal to the nearest multiple of 2^-126, ties to
        // even, as if byte 0 were zero, then reads byte 0 as 2^-127: so (0, 2^-127] (mantissa bits
        // up to 0x40_0000) -> byte 0 and (2^-127, 2^-126) -> byte 1. Pinned by the golden vectors.
        let threshold = 0x40_0000 + u32::from(e == 0);
        let r = e + u32::from(m >= threshold);
        if r > 254 {
            return match mode {
                Overflow::Saturate => E8M0(0xFE),
                Overflow::Ieee => E8M0::NAN,
            };
        }
        E8M0(r as u8)
    }

    /// Scale exponent rounded UP (DeepGEMM's `ceil_to_ue8m0`, formats.md section 2): the smallest
    /// power of two >= `s`, from the f32 bits, never via log2. Clamped to bytes [1, 254].
    #[inline]
    pub fn ceil_pow2(s: f32) -> Self {
        let b = s.to_bits();
        let e = ((b >> 23) & 0xFF) as i32 + ((b & 0x7F_FFFF) != 0) as i32;
        E8M0(e.clamp(1, 254) as u8)
    }
}
