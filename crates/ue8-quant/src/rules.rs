//! Scale rules (how a block's scale follows from its largest magnitude) and element choices.
//!
//! Every rule works on f32 bits, never on `log2`/`ceil` of floats (formats.md section 2: float
//! `log2` is off by one near powers of two).

use ue8_formats::{Element, Overflow, E2M1, E2M3, E3M2, E4M3, E5M2, E8M0};

/// E4M3's largest finite value, the divisor of both DeepSeek scale rules.
pub const E4M3_MAX: f32 = 448.0;

/// Lower bound DeepSeek puts on a tile's amax before dividing by 448 (formats.md section 2), so an
/// all-zero tile gets a finite, tiny scale instead of 0.
pub const DEEPSEEK_AMAX_FLOOR: f32 = 1e-4;

/// The DeepSeek blockwise FP8 scale rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ScaleRule {
    /// DeepSeek-V3.1 / DeepGEMM `ceil_to_ue8m0`: `max(amax, 1e-4) / 448` rounded UP to a power of
    /// two (exponent byte clamped to [1, 254]).
    Ue8m0Ceil,
    /// DeepSeek-V3: `max(amax, 1e-4) / 448` kept as an f32 (not a power of two).
    F32,
}

impl ScaleRule {
    /// The tile scale for a tile whose largest finite magnitude is `amax` (>= 0).
    #[inline]
    pub fn scale_from_amax(self, amax: f32) -> f32 {
        let s = amax.max(DEEPSEEK_AMAX_FLOOR) / E4M3_MAX;
        match self {
            ScaleRule::F32 => s,
            ScaleRule::Ue8m0Ceil => f32::from_bits((E8M0::ceil_pow2(s).to_bits() as u32) << 23),
        }
    }
}

/// The OCP MX shared-scale rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MxScaleRule {
    /// OCP MX v1.0: `floor(log2(amax)) - emax_elem`; large values may clip (saturate).
    Floor,
    /// NVIDIA Blackwell `cvt.rp.satfinite.ue8m0x2` / torchao RCEIL: `amax / max_elem` rounded up to
    /// a power of two with the bit rule of formats.md section 2 (byte clamped to [1, 254]).
    Rceil,
}

/// What a quantizer does with NaN and infinity in its input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NonFinite {
    /// Refuse with [`crate::QuantError::NonFinite`] naming the first position in row-major order.
    Reject,
    /// Quantize anyway: non-finite values are left out of the tile's amax, NaN becomes the E4M3
    /// NaN code (sign kept) and +-inf saturates to +-448.
    Allow,
}

/// Element type of an OCP MX block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MxElement {
    E4M3,
    E5M2,
    E3M2,
    E2M3,
    E2M1,
}

impl MxElement {
    /// Every MX element type, in the order of formats.md section 3.
    pub const ALL: [MxElement; 5] = [
        MxElement::E4M3,
        MxElement::E5M2,
        MxElement::E3M2,
        MxElement::E2M3,
        MxElement::E2M1,
    ];

    /// Bits per element (sign included).
    pub fn bits(self) -> u32 {
        match self {
            MxElement::E4M3 => E4M3::BITS,
            MxElement::E5M2 => E5M2::BITS,
            MxElement::E3M2 => E3M2::BITS,
            MxElement::E2M3 => E2M3::BITS,
            MxElement::E2M1 => E2M1::BITS,
        }
    }
    /// Largest finite value.
    pub fn max(self) -> f32 {
        match self {
            MxElement::E4M3 => E4M3::MAX,
            MxElement::E5M2 => E5M2::MAX,
            MxElement::E3M2 => E3M2::MAX,
            MxElement::E2M3 => E2M3::MAX,
            MxElement::E2M1 => E2M1::MAX,
        }
    }
    /// OCP's `emax_elem`: exponent of the largest normal binade.
    pub fn emax(self) -> i32 {
        match self {
            MxElement::E4M3 => E4M3::EMAX,
            MxElement::E5M2 => E5M2::EMAX,
            MxElement::E3M2 => E3M2::EMAX,
            MxElement::E2M3 => E2M3::EMAX,
            MxElement::E2M1 => E2M1::EMAX,
        }
    }
    /// ml_dtypes name of the element type.
    pub fn ml_dtypes_name(self) -> &'static str {
        match self {
            MxElement::E4M3 => E4M3::ML_DTYPES_NAME,
            MxElement::E5M2 => E5M2::ML_DTYPES_NAME,
            MxElement::E3M2 => E3M2::ML_DTYPES_NAME,
            MxElement::E2M3 => E2M3::ML_DTYPES_NAME,
            MxElement::E2M1 => E2M1::ML_DTYPES_NAME,
        }
    }
    /// f32 -> code, RNE, saturating (the MX rule).
    #[inline]
    pub fn encode(self, x: f32) -> u8 {
        let m = Overflow::Saturate;
        match self {
            MxElement::E4M3 => E4M3::from_f32(x, m).to_bits(),
            MxElement::E5M2 => E5M2::from_f32(x, m).to_bits(),
            MxElement::E3M2 => E3M2::from_f32(x, m).to_bits(),
            MxElement::E2M3 => E2M3::from_f32(x, m).to_bits(),
            MxElement::E2M1 => E2M1::from_f32(x, m).to_bits(),
        }
    }
    /// code -> f32, exact (bits above `bits()` are ignored).
    #[inline]
    pub fn decode(self, code: u8) -> f32 {
        match self {
            MxElement::E4M3 => E4M3::from_bits(code).to_f32(),
            MxElement::E5M2 => E5M2::from_bits(code).to_f32(),
            MxElement::E3M2 => E3M2::from_bits(code).to_f32(),
            MxElement::E2M3 => E2M3::from_bits(code).to_f32(),
            MxElement::E2M1 => E2M1::from_bits(code).to_f32(),
        }
    }
}

/// floor(log2(x)) of a positive finite f32 from its bits, exact for subnormals too.
#[inline]
pub(crate) fn floor_log2_bits(x: f32) -> i32 {
    let b = x.to_bits() & 0x7FFF_FFFF;
    let e = (b >> 23) as i32;
    if e == 0 {
        // subnormal: value = m * 2^-149 with m < 2^23
        let m = b & 0x7F_FFFF;
        (31 - m.leading_zeros() as i32) - 149
    } else {
        e - 127
    }
}

impl MxScaleRule {
    /// E8M0 scale byte of a block whose largest magnitude is `amax` (finite, >= 0).
    /// Non-finite blocks get 0xFF from the caller before this is asked.
    #[inline]
    pub fn scale_byte(self, elem: MxElement, amax: f32) -> u8 {
        if amax == 0.0 {
            return 0;
        }
        match self {
            MxScaleRule::Floor => {
                let shared = (floor_log2_bits(amax) - elem.emax()).clamp(-127, 127);
                (shared + 127) as u8
            }
            MxScaleRule::Rceil => E8M0::ceil_pow2(amax / elem.max()).to_bits(),
        }
    }
}

/// Value of an E8M0 scale byte (0 is 2^-127, 0xFF is NaN).
#[inline]
pub fn e8m0_to_f32(byte: u8) -> f32 {
    E8M0::from_bits(byte).to_f32()
}

/// 2^k, exact for k in -149..=127; 0 below that range and +inf above it.
#[inline]
pub(crate) fn pow2(k: i32) -> f32 {
    if k > 127 {
        f32::INFINITY
    } else if k >= -126 {
        f32::from_bits(((k + 127) as u32) << 23)
    } else if k >= -149 {
        f32::from_bits(1u32 << (k + 149))
    } else {
        0.0
    }
}
