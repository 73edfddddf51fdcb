//! F32-scale DeepSeek FP8 (V3) -> UE8M0-scale FP8 (V3.1), formats.md section 2: each tile is
//! dequantized to f32 (`f32(q) * S`, one rounding) and quantized again with
//! [`ScaleRule::Ue8m0Ceil`]. A tensor whose scales are all powers of two already passes through
//! with bytes and scales identical.

use crate::e8m0_scales::all_pow2;
use crate::kernels::Isa;
use crate::metrics::ErrorStats;
use crate::rules::{NonFinite, ScaleRule};
use crate::shape::check_len;
use crate::{BlockFp8, QuantError};

/// What a requantization did.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RequantReport {
    /// True if the scales were all powers of two and the input was copied unchanged.
    pub passed_through: bool,
    /// Error added, new dequantized values against the old dequantized values.
    pub stats: ErrorStats,
}

impl BlockFp8 {
    /// Requantizes E4M3 codes with any f32 scales on this scheme's tiles to UE8M0 scales.
    /// `nonfinite` applies to the dequantized values (E4M3 NaN codes, non-finite scales).
    #[allow(clippy::too_many_arguments)]
    pub fn requantize_to_ue8m0(
        &self,
        q: &[u8],
        scales: &[f32],
        n: usize,
        k: usize,
        nonfinite: NonFinite,
        q_out: &mut [u8],
        scales_out: &mut [f32],
    ) -> Result<RequantReport, QuantError> {
        let (gr, gc) = self.scale_grid(n, k)?;
        let len = n * k;
        check_len("codes", len, q.len())?;
        check_len("scales", gr * gc, scales.len())?;
        check_len("output codes", len, q_out.len())?;
        check_len("output scales", gr * gc, scales_out.len())?;
        if all_pow2(scales) {
            q_out.copy_from_slice(q);
            scales_out.copy_from_slice(scales);
            return Ok(RequantReport {
                passed_through: true,
                stats: ErrorStats::exact(len as u64),
            });
        }
        let target = self.with_rule(ScaleRule::Ue8m0Ceil);
        let isa = Isa::detect();
        let band_rows = self.tile_rows.min(n);
        let mut old = vec![0f32; band_rows * k];
        let mut new = vec![0f32; band_rows * k];
        let mut stats = ErrorStats::new();
        for (b, (((qb, sb), qo), so)) in q
            .chunks(band_rows * k)
            .zip(scales.chunks(gc))
            .zip(q_out.chunks_mut(band_rows * k))
            .zip(scales_out.chunks_mut(gc))
            .enumerate()
        {
            let rows = qb.len() / k;
            let (old, new) = (&mut old[..qb.len()], &mut new[..qb.len()]);
            self.dequantize_to_f32_with(isa, qb, sb, rows, k, old)?;
            let report = target
                .quantize_with(isa, &*old, rows, k, nonfinite, qo, so)
                .map_err(|e| match e {
                    QuantError::NonFinite { row, col, value } => QuantError::NonFinite {
                        row: row + b * band_rows,
                        col,
                        value,
                    },
                    other => other,
                })?;
            stats.add_clipped(report.clipped);
            target.dequantize_to_f32_with(isa, qo, so, rows, k, new)?;
            stats.add_slices(old, new);
        }
        Ok(RequantReport {
            passed_through: false,
            stats,
        })
    }
}

/// [`BlockFp8::requantize_to_ue8m0`] on DeepSeek's 128x128 weight tiles.
pub fn requantize_to_ue8m0(
    q: &[u8],
    scales: &[f32],
    n: usize,
    k: usize,
    nonfinite: NonFinite,
    q_out: &mut [u8],
    scales_out: &mut [f32],
) -> Result<RequantReport, QuantError> {
    BlockFp8::WEIGHT.requantize_to_ue8m0(q, scales, n, k, nonfinite, q_out, scales_out)
}
