//! UE8M0 scales in their two stored forms: F32 powers of two (DeepSeek-V3.1 `weight_scale_inv`)
//! and E8M0 bytes (the F8_E8M0 dtype), converted exactly both ways.

use ue8_formats::E8M0;

use crate::shape::check_len;
use crate::QuantError;

/// Power-of-two f32 scales -> E8M0 bytes (the F8_E8M0 form of a UE8M0 checkpoint's scales).
/// Fails on the first scale that is not an exact power of two in [2^-127, 2^127].
pub fn scales_to_e8m0(scales: &[f32], out: &mut [u8]) -> Result<(), QuantError> {
    check_len("E8M0 output", scales.len(), out.len())?;
    for (index, (&s, o)) in scales.iter().zip(out.iter_mut()).enumerate() {
        *o = E8M0::from_exact_pow2(s)
            .ok_or(QuantError::NotPowerOfTwo { index, value: s })?
            .to_bits();
    }
    Ok(())
}

/// E8M0 bytes -> f32 scales (exact; byte 0 is the f32 subnormal 2^-127). 0xFF is refused.
pub fn e8m0_to_scales(bytes: &[u8], out: &mut [f32]) -> Result<(), QuantError> {
    check_len("f32 output", bytes.len(), out.len())?;
    for (index, (&b, o)) in bytes.iter().zip(out.iter_mut()).enumerate() {
        if b == 0xFF {
            return Err(QuantError::NanScale { index });
        }
        *o = E8M0::from_bits(b).to_f32();
    }
    Ok(())
}

/// True if every scale is an exact power of two representable as E8M0.
pub fn all_pow2(scales: &[f32]) -> bool {
    scales.iter().all(|&s| E8M0::from_exact_pow2(s).is_some())
}
