//! Packed MXFP4 (E2M1 + E8M0 per 32) in the Hugging Face / gpt-oss layout, with fast kernels:
//! `blocks` U8 `[n, ceil(k/32), 16]` (byte j of a block: element 2j in the low nibble, 2j+1 in
//! the high nibble) and `scales` U8 `[n, ceil(k/32)]`. A partial last block is zero-padded.

use half::bf16;
use rayon::prelude::*;

use crate::kernels::{self, Isa};
use crate::mx::{MxScheme, MX_BLOCK};
use crate::pack::pack_e2m1;
use crate::rules::{MxElement, MxScaleRule};
use crate::shape::{check_len, elements};
use crate::source::SourceElement;
use crate::QuantError;

/// Bytes of one packed MXFP4 block's codes.
pub const MXFP4_BLOCK_BYTES: usize = 16;

/// (blocks per row, packed bytes of all rows, scales of all rows) for `[n, k]`.
fn sizes(n: usize, k: usize) -> Result<(usize, usize, usize), QuantError> {
    elements(n, k)?;
    let nb = MxScheme::blocks_per_row(k);
    let scales = n
        .checked_mul(nb)
        .ok_or(QuantError::ShapeOverflow { n, k })?;
    let bytes = scales
        .checked_mul(MXFP4_BLOCK_BYTES)
        .ok_or(QuantError::ShapeOverflow { n, k })?;
    Ok((nb, bytes, scales))
}

fn check(
    n: usize,
    k: usize,
    values_len: usize,
    blocks_len: usize,
    scales_len: usize,
) -> Result<usize, QuantError> {
    let (nb, bytes, scales) = sizes(n, k)?;
    check_len("values", n * k, values_len)?;
    check_len("packed blocks", bytes, blocks_len)?;
    check_len("scales", scales, scales_len)?;
    Ok(nb)
}

/// f32 `[n, k]` -> packed MXFP4, fastest kernel of this CPU.
pub fn quantize_mxfp4_f32(
    rule: MxScaleRule,
    src: &[f32],
    n: usize,
    k: usize,
    blocks_out: &mut [u8],
    scales_out: &mut [u8],
) -> Result<(), QuantError> {
    quantize_mxfp4_f32_with(Isa::detect(), rule, src, n, k, blocks_out, scales_out)
}

/// bf16 `[n, k]` -> packed MXFP4, fastest kernel of this CPU.
pub fn quantize_mxfp4_bf16(
    rule: MxScaleRule,
    src: &[bf16],
    n: usize,
    k: usize,
    blocks_out: &mut [u8],
    scales_out: &mut [u8],
) -> Result<(), QuantError> {
    quantize_mxfp4_bf16_with(Isa::detect(), rule, src, n, k, blocks_out, scales_out)
}

/// As [`quantize_mxfp4_bf16`], rows spread over the rayon pool.
pub fn quantize_mxfp4_bf16_par(
    rule: MxScaleRule,
    src: &[bf16],
    n: usize,
    k: usize,
    blocks_out: &mut [u8],
    scales_out: &mut [u8],
) -> Result<(), QuantError> {
    let nb = check(n, k, src.len(), blocks_out.len(), scales_out.len())?;
    let isa = Isa::detect();
    src.par_chunks(k)
        .zip(blocks_out.par_chunks_mut(nb * MXFP4_BLOCK_BYTES))
        .zip(scales_out.par_chunks_mut(nb))
        .for_each(|((s, b), sc)| kernels::mxfp4_quantize_row_bf16(isa, rule, s, b, sc));
    Ok(())
}

/// Kernel-variant entry point (tests, benchmarks).
#[doc(hidden)]
pub fn quantize_mxfp4_f32_with(
    isa: Isa,
    rule: MxScaleRule,
    src: &[f32],
    n: usize,
    k: usize,
    blocks_out: &mut [u8],
    scales_out: &mut [u8],
) -> Result<(), QuantError> {
    let nb = check(n, k, src.len(), blocks_out.len(), scales_out.len())?;
    for ((s, b), sc) in src
        .chunks(k)
        .zip(blocks_out.chunks_mut(nb * MXFP4_BLOCK_BYTES))
        .zip(scales_out.chunks_mut(nb))
    {
        kernels::mxfp4_quantize_row_f32(isa, rule, s, b, sc);
    }
    Ok(())
}

/// Kernel-variant entry point (tests, benchmarks).
#[doc(hidden)]
pub fn quantize_mxfp4_bf16_with(
    isa: Isa,
    rule: MxScaleRule,
    src: &[bf16],
    n: usize,
    k: usize,
    blocks_out: &mut [u8],
    scales_out: &mut [u8],
) -> Result<(), QuantError> {
    let nb = check(n, k, src.len(), blocks_out.len(), scales_out.len())?;
    for ((s, b), sc) in src
        .chunks(k)
        .zip(blocks_out.chunks_mut(nb * MXFP4_BLOCK_BYTES))
        .zip(scales_out.chunks_mut(nb))
    {
        kernels::mxfp4_quantize_row_bf16(isa, rule, s, b, sc);
    }
    Ok(())
}

/// Reference twin of the packed quantizers: [`MxScheme::quantize`] with E2M1, then
/// [`pack_e2m1`] per block (zero-padded to 32 codes).
pub fn quantize_mxfp4_ref<T: SourceElement>(
    rule: MxScaleRule,
    src: &[T],
    n: usize,
    k: usize,
    blocks_out: &mut [u8],
    scales_out: &mut [u8],
) -> Result<(), QuantError> {
    let nb = check(n, k, src.len(), blocks_out.len(), scales_out.len())?;
    let scheme = MxScheme {
        elem: MxElement::E2M1,
        rule,
    };
    let mut codes = vec![0u8; n * k];
    scheme.quantize(src, n, k, &mut codes, scales_out)?;
    for (crow, brow) in codes
        .chunks(k)
        .zip(blocks_out.chunks_mut(nb * MXFP4_BLOCK_BYTES))
    {
        for (c, b) in crow
            .chunks(MX_BLOCK)
            .zip(brow.chunks_mut(MXFP4_BLOCK_BYTES))
        {
            let mut padded = [0u8; MX_BLOCK];
            padded[..c.len()].copy_from_slice(c);
            pack_e2m1(&padded, b)?;
        }
    }
    Ok(())
}

/// Packed MXFP4 -> f32 `[n, k]`.
pub fn dequantize_mxfp4_to_f32(
    blocks: &[u8],
    scales: &[u8],
    n: usize,
    k: usize,
    out: &mut [f32],
) -> Result<(), QuantError> {
    dequantize_mxfp4_to_f32_with(Isa::detect(), blocks, scales, n, k, out)
}

/// Packed MXFP4 -> bf16 `[n, k]`.
pub fn dequantize_mxfp4_to_bf16(
    blocks: &[u8],
    scales: &[u8],
    n: usize,
    k: usize,
    out: &mut [bf16],
) -> Result<(), QuantError> {
    dequantize_mxfp4_to_bf16_with(Isa::detect(), blocks, scales, n, k, out)
}

/// As [`dequantize_mxfp4_to_bf16`], rows spread over the rayon pool.
pub fn dequantize_mxfp4_to_bf16_par(
    blocks: &[u8],
    scales: &[u8],
    n: usize,
    k: usize,
    out: &mut [bf16],
) -> Result<(), QuantError> {
    let nb = check(n, k, out.len(), blocks.len(), scales.len())?;
    let isa = Isa::detect();
    blocks
        .par_chunks(nb * MXFP4_BLOCK_BYTES)
        .zip(scales.par_chunks(nb))
        .zip(out.par_chunks_mut(k))
        .for_each(|((b, s), o)| kernels::mxfp4_dequantize_row_bf16(isa, b, s, o));
    Ok(())
}

/// Kernel-variant entry point (tests, benchmarks).
#[doc(hidden)]
pub fn dequantize_mxfp4_to_f32_with(
    isa: Isa,
    blocks: &[u8],
    scales: &[u8],
    n: usize,
    k: usize,
    out: &mut [f32],
) -> Result<(), QuantError> {
    let nb = check(n, k, out.len(), blocks.len(), scales.len())?;
    for ((b, s), o) in blocks
        .chunks(nb * MXFP4_BLOCK_BYTES)
        .zip(scales.chunks(nb))
        .zip(out.chunks_mut(k))
    {
        kernels::mxfp4_dequantize_row_f32(isa, b, s, o);
    }
    Ok(())
}

/// Kernel-variant entry point (tests, benchmarks).
#[doc(hidden)]
pub fn dequantize_mxfp4_to_bf16_with(
    isa: Isa,
    blocks: &[u8],
    scales: &[u8],
    n: usize,
    k: usize,
    out: &mut [bf16],
) -> Result<(), QuantError> {
    let nb = check(n, k, out.len(), blocks.len(), scales.len())?;
    for ((b, s), o) in blocks
        .chunks(nb * MXFP4_BLOCK_BYTES)
        .zip(scales.chunks(nb))
        .zip(out.chunks_mut(k))
    {
        kernels::mxfp4_dequantize_row_bf16(isa, b, s, o);
    }
    Ok(())
}

/// Reference twin of the packed dequantizers: unpack, then [`MxScheme::dequantize_to_f32`].
pub fn dequantize_mxfp4_ref(
    blocks: &[u8],
    scales: &[u8],
    n: usize,
    k: usize,
    out: &mut [f32],
) -> Result<(), QuantError> {
    let nb = check(n, k, out.len(), blocks.len(), scales.len())?;
    let mut codes = vec![0u8; n * k];
    for (brow, crow) in blocks
        .chunks(nb * MXFP4_BLOCK_BYTES)
        .zip(codes.chunks_mut(k))
    {
        let mut all = vec![0u8; nb * MX_BLOCK];
        crate::pack::unpack_e2m1(brow, &mut all)?;
        crow.copy_from_slice(&all[..k]);
    }
    MxScheme::MXFP4.dequantize_to_f32(&codes, scales, n, k, out)
}
