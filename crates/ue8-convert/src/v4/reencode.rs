//! FP4 expert -> FP8 E4M3 with 128x128 E8M0 tiles, for a whole tensor: `ue8_quant`'s exact re-encode
//! run on bands of 128 rows in parallel (tile rows are independent), plus the `--allow-lossy` fallback
//! for tiles past the 2^14 bound (proof in `ue8_quant::reencode_mxfp4_to_fp8`).
//!
//! Lossy fallback: the tile scale stays `max(G - 6, 0)` and each element is rounded to nearest even
//! E4M3 (`c * 2^(g - T)` is computed exactly, so there is a single rounding); the error is measured
//! against the FP4 values and reported per tensor.

use rayon::prelude::*;
use ue8_formats::{Element, Overflow, E2M1, E4M3};
use ue8_quant::{ErrorStats, QuantError, REENCODE_MAX_GAP};

/// Rows per band = tile edge, so each band owns one row of tile scales.
const TILE: usize = 128;
/// Inputs per FP4 scale.
const GROUP: usize = 32;
/// Headroom of the tile scale over the largest group scale (6 x 2^6 = 384 <= 448), as in ue8-quant.
const HEADROOM: u8 = 6;

/// A re-encoded tensor.
pub struct Reencoded {
    /// E4M3 codes `[n, k]`.
    pub codes: Vec<u8>,
    /// E8M0 tile scale bytes `[ceil(n/128), ceil(k/128)]`.
    pub tile_scales: Vec<u8>,
    /// Largest gap between a group scale and its tile's largest.
    pub max_gap: u32,
    /// Error against the FP4 values: exact (all zero) unless `lossy`.
    pub stats: ErrorStats,
    /// True when some element was rounded (only with `allow_lossy`).
    pub lossy: bool,
}

/// Largest gap (binades) between a 32-group scale and the largest of its 128x128 tile, from the scale
/// bytes alone (`[n, k/32]`): <= [`REENCODE_MAX_GAP`] proves the re-encode exact without reading codes.
pub fn max_tile_gap(scales: &[u8], n: usize, k: usize) -> u32 {
    let nb = k.div_ceil(GROUP);
    let per_tile = TILE / GROUP;
    let mut worst = 0u32;
    for band in scales.chunks(TILE * nb.max(1)) {
        for tj in 0..nb.div_ceil(per_tile) {
            let cols = tj * per_tile..((tj + 1) * per_tile).min(nb);
            let mut lo = u8::MAX;
            let mut hi = 0u8;
            for row in band.chunks(nb.max(1)).take(n) {
                for &s in row.get(cols.clone()).unwrap_or(&[]) {
                    lo = lo.min(s);
                    hi = hi.max(s);
                }
            }
            if hi >= lo {
                worst = worst.max(u32::from(hi - lo));
            }
        }
    }
    worst
}

fn pow2(e: i32) -> f32 {
    // Exact for every exponent an f32 holds; below 2^-149 the product is far under E4M3's half-ulp 2^-10.
    match e {
        -126..=127 => f32::from_bits(((e + 127) as u32) << 23),
        -149..=-127 => f32::from_bits(1u32 << (e + 149)),
        e if e > 127 => f32::INFINITY,
        _ => 0.0,
    }
}

/// Lossy band: same tile scales as the exact path, elements rounded to nearest even.
fn lossy_band(
    packed: &[u8],
    scales: &[u8],
    rows: usize,
    k: usize,
    q_out: &mut [u8],
    tiles_out: &mut [u8],
) -> ErrorStats {
    let nb = k.div_ceil(GROUP);
    let row_bytes = nb * GROUP / 2;
    let per_tile = TILE / GROUP;
    let mut stats = ErrorStats::new();
    for (tj, t) in tiles_out.iter_mut().enumerate() {
        let groups = tj * per_tile..((tj + 1) * per_tile).min(nb);
        let gmax = (0..rows)
            .flat_map(|r| scales[r * nb + groups.start..r * nb + groups.end].iter())
            .copied()
            .max()
            .unwrap_or(0);
        *t = gmax.saturating_sub(HEADROOM);
        for r in 0..rows {
            for g in groups.clone() {
                let sg = scales[r * nb + g];
                let to_tile = pow2(i32::from(sg) - i32::from(*t));
                let value = pow2(i32::from(sg) - 127);
                let tile_value = pow2(i32::from(*t) - 127);
                for c in g * GROUP..((g + 1) * GROUP).min(k) {
                    let code = (packed[r * row_bytes + c / 2] >> (4 * (c % 2))) & 0xF;
                    let e = E2M1::from_bits(code).to_f32();
                    let q = E4M3::from_f32(e * to_tile, Overflow::Saturate);
                    q_out[r * k + c] = q.to_bits();
                    stats.add(e * value, q.to_f32() * tile_value);
                }
            }
        }
    }
    stats
}

/// Re-encodes packed FP4 `[n, k]` (`k` a multiple of 32) with scales `[n, k/32]`. Without
/// `allow_lossy` the first element that would change is an error naming its tile (whole-tensor
/// coordinates); with it, such bands are rounded and the error is reported.
pub fn reencode_tensor(
    packed: &[u8],
    scales: &[u8],
    n: usize,
    k: usize,
    allow_lossy: bool,
) -> Result<Reencoded, QuantError> {
    let nb = k.div_ceil(GROUP);
    let row_bytes = nb * GROUP / 2;
    let gc = k.div_ceil(TILE);
    let len = n.checked_mul(k).ok_or(QuantError::ShapeOverflow { n, k })?;
    if packed.len() != n * row_bytes {
        return Err(QuantError::LengthMismatch {
            what: "packed FP4",
            expected: n * row_bytes,
            actual: packed.len(),
        });
    }
    if scales.len() != n * nb {
        return Err(QuantError::LengthMismatch {
            what: "FP4 scales",
            expected: n * nb,
            actual: scales.len(),
        });
    }
    let mut codes = vec![0u8; len];
    let mut tile_scales = vec![0u8; n.div_ceil(TILE) * gc];
    if len == 0 {
        return Ok(Reencoded {
            codes,
            tile_scales,
            max_gap: 0,
            stats: ErrorStats::new(),
            lossy: false,
        });
    }
    let results: Vec<Result<(u32, ErrorStats, bool), QuantError>> = codes
        .par_chunks_mut(TILE * k)
        .zip(tile_scales.par_chunks_mut(gc))
        .zip(packed.par_chunks(TILE * row_bytes))
        .zip(scales.par_chunks(TILE * nb))
        .enumerate()
        .map(|(band, (((q, t), p), s))| {
            let rows = q.len() / k;
            match ue8_quant::reencode_mxfp4_to_fp8(p, s, rows, k, q, t) {
                Ok(rep) => Ok((rep.max_gap, ErrorStats::exact(q.len() as u64), false)),
                Err(QuantError::ReencodeNotExact {
                    tile_col,
                    row,
                    col,
                    gap,
                    max_gap,
                    ..
                }) if !allow_lossy => Err(QuantError::ReencodeNotExact {
                    tile_row: band,
                    tile_col,
                    row: band * TILE + row,
                    col,
                    gap,
                    max_gap,
                }),
                Err(QuantError::ReencodeNotExact { .. }) => {
                    let stats = lossy_band(p, s, rows, k, q, t);
                    Ok((max_tile_gap(s, rows, k), stats, true))
                }
                Err(e) => Err(e),
            }
        })
        .collect();
    let mut out = Reencoded {
        codes: Vec::new(),
        tile_scales: Vec::new(),
        max_gap: 0,
        stats: ErrorStats::new(),
        lossy: false,
    };
    for r in results {
        let (gap, stats, lossy) = r?;
        out.max_gap = out.max_gap.max(gap);
        out.stats.merge(&stats);
        out.lossy |= lossy;
    }
    out.codes = codes;
    out.tile_scales = tile_scales;
    Ok(out)
}

/// True when the scales alone prove the re-encode exact.
pub fn exact_by_scales(scales: &[u8], n: usize, k: usize) -> bool {
    max_tile_gap(scales, n, k) <= REENCODE_MAX_GAP
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pack(codes: &[u8]) -> Vec<u8> {
        codes.chunks(2).map(|c| c[0] | (c[1] << 4)).collect()
    }

    #[test]
    fn gap_from_scales_counts_within_tiles_only() {
        // 2 rows x 256 inputs: tile 0 holds groups 0..4, tile 1 groups 4..8.
        let mut s = vec![120u8; 16];
        s[1] = 105; // gap 15 in tile 0
        s[12] = 110; // row 1 group 4: gap 10 in tile 1
        assert_eq!(max_tile_gap(&s, 2, 256), 15);
        s[1] = 106;
        assert_eq!(max_tile_gap(&s, 2, 256), 14);
        assert!(exact_by_scales(&s, 2, 256));
    }

    #[test]
    fn refusal_names_the_tile_in_tensor_coordinates() {
        // 130 rows: the bad group sits in the second band (tile row 1), row 129.
        let (n, k) = (130usize, 32usize);
        let mut codes = vec![2u8; n * k];
        let mut scales = vec![127u8; n];
        scales[129] = 112; // 2^15 below the tile's largest
        codes[129 * k + 5] = 1; // 0.5: becomes 2^-10, not an E4M3 value
        let err = reencode_tensor(&pack(&codes), &scales, n, k, false)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("tile row 1") && err.contains("row 129"),
            "{err}"
        );
        let lossy = reencode_tensor(&pack(&codes), &scales, n, k, true);
        let lossy = lossy.ok().filter(|r| r.lossy);
        assert!(lossy.is_some_and(|r| r.stats.max_abs() > 0.0 && r.max_gap == 15));
    }
}
