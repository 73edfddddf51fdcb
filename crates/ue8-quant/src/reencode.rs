//! DeepSeek-V4 FP4 experts -> FP8 with 128x128 UE8M0 tiles, losslessly (issue 11).
//!
//! Input: MXFP4 in the Hugging Face / DeepSeek-V4 layout (`[n, ceil(k/32) * 16]` packed bytes,
//! element 2i in the low nibble, plus E8M0 scale bytes `[n, ceil(k/32)]`). Output: E4M3 codes
//! `[n, k]` and E8M0 tile scales `[ceil(n/128), ceil(k/128)]`, the tile scale byte being
//! `T = max(G - 6, 0)` where `G` is the largest 32-group scale byte of the tile.
//!
//! Why it is exact, and the bound. A group with scale byte `g` holds values `c * 2^(g-127)` with
//! `c` in {0, 0.5, 1, 1.5, 2, 3, 4, 6}; under the tile scale they become `c * 2^(g - T)`. With
//! `gap = G - g >= 0` and `T = G - 6` that is `c * 2^(6 - gap)`.
//! - Largest: `6 * 2^6 = 384 <= 448`, so nothing saturates (and `T = 0` when `G < 6` only makes
//!   the exponent smaller: `6 * 2^G <= 192`).
//! - Every non-zero `c` is `m * 2^p` with `m` in {1, 1.5} and `p >= -1`; E4M3 holds `1 * 2^e`
//!   for `e >= -9` (its smallest subnormal) and `1.5 * 2^e` for `e >= -8` (`3 * 2^-9`). The
//!   smallest exponents occur at `c = 0.5` (`2^(5 - gap)`) and `c = 1.5` (`1.5 * 2^(6 - gap)`),
//!   both representable iff `gap <= 14`. So every group within `2^14` of the tile's largest is
//!   exact for every code ([`REENCODE_MAX_GAP`]); at gap 15, 0.5 becomes `2^-10`, which E4M3
//!   cannot hold. Groups further below are checked code by code (zeros, for example, still fit)
//!   and the first element that would change is refused with an error naming its tile.
//!
//! [`check_reencode_mxfp4_to_fp8`] answers the same question without writing (for `inspect`,
//! and to refuse a checkpoint before any output exists); [`reencode_mxfp4_to_fp8_lossy`] rounds
//! such elements to the nearest E4M3 value instead and reports how many and the error.

use ue8_formats::{Element, Overflow, E2M1, E4M3};

use crate::metrics::ErrorStats;
use crate::mx::MX_BLOCK;
use crate::rules::pow2;
use crate::shape::{blocks, check_len, elements};
use crate::QuantError;

/// Largest gap (in binades) between a 32-group's scale and its tile's largest scale for which
/// every FP4 code re-encodes exactly (proof in the module docs).
pub const REENCODE_MAX_GAP: u32 = 14;

/// Tile edge of the FP8 output.
const TILE: usize = 128;

/// Exponent headroom: the tile scale is the largest group scale / 2^6 (6 * 2^6 = 384 <= 448).
const HEADROOM: u8 = 6;

/// What a re-encode saw.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ReencodeReport {
    /// Largest gap between a group scale and its tile's largest over the tensor.
    pub max_gap: u32,
    /// Groups beyond [`REENCODE_MAX_GAP`] that were checked code by code.
    pub groups_checked: u64,
    /// Elements whose E4M3 value differs from the FP4 value (only the lossy mode writes any).
    pub inexact: u64,
    /// FP8 values against the FP4 values (zero error unless the lossy mode rounded something).
    pub stats: ErrorStats,
}

/// What happens to an element that E4M3 cannot hold exactly under its tile scale.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Refuse with [`QuantError::ReencodeNotExact`].
    Exact,
    /// Round to the nearest E4M3 (RNE) and count it.
    Lossy,
}

/// E4M3 code of E2M1 `code` times `2^shift` (RNE, saturating) and whether it is exact.
fn reencode_code(code: u8, shift: i32) -> (u8, bool) {
    let v = E2M1::from_bits(code).to_f32() * crate::rules::pow2(shift);
    let q = E4M3::from_f32(v, Overflow::Saturate);
    let exact = q.to_f32() == v && q.to_f32().is_sign_negative() == v.is_sign_negative();
    (q.0, exact)
}

/// Re-encodes packed MXFP4 `[n, k]` into E4M3 codes and 128x128 E8M0 tile scales, exactly;
/// refuses (naming the tile and element) if any element would change.
pub fn reencode_mxfp4_to_fp8(
    packed: &[u8],
    scales: &[u8],
    n: usize,
    k: usize,
    q_out: &mut [u8],
    tile_scales_out: &mut [u8],
) -> Result<ReencodeReport, QuantError> {
    reencode(
        packed,
        scales,
        n,
        k,
        Mode::Exact,
        Some((q_out, tile_scales_out)),
    )
}

/// As [`reencode_mxfp4_to_fp8`], but elements E4M3 cannot hold are rounded to the nearest E4M3
/// value and reported (`inexact`, `stats`) instead of refused: the `--allow-lossy` path.
pub fn reencode_mxfp4_to_fp8_lossy(
    packed: &[u8],
    scales: &[u8],
    n: usize,
    k: usize,
    q_out: &mut [u8],
    tile_scales_out: &mut [u8],
) -> Result<ReencodeReport, QuantError> {
    reencode(
        packed,
        scales,
        n,
        k,
        Mode::Lossy,
        Some((q_out, tile_scales_out)),
    )
}

/// Checks, without writing anything, that [`reencode_mxfp4_to_fp8`] would succeed (for
/// `inspect` and for refusing a checkpoint before any output exists).
pub fn check_reencode_mxfp4_to_fp8(
    packed: &[u8],
    scales: &[u8],
    n: usize,
    k: usize,
) -> Result<ReencodeReport, QuantError> {
    reencode(packed, scales, n, k, Mode::Exact, None)
}

fn reencode(
    packed: &[u8],
    scales: &[u8],
    n: usize,
    k: usize,
    mode: Mode,
    mut out: Option<(&mut [u8], &mut [u8])>,
) -> Result<ReencodeReport, QuantError> {
    let len = elements(n, k)?;
    let nb = blocks(k, MX_BLOCK);
    let row_bytes = nb * (MX_BLOCK / 2);
    check_len("packed FP4", n * row_bytes, packed.len())?;
    check_len("FP4 scales", n * nb, scales.len())?;
    let (gr, gc) = (blocks(n, TILE), blocks(k, TILE));
    if let Some((q_out, tile_scales_out)) = &out {
        check_len("E4M3 output", len, q_out.len())?;
        check_len("tile scales", gr * gc, tile_scales_out.len())?;
    }
    if let Some(index) = scales.iter().position(|&b| b == 0xFF) {
        return Err(QuantError::NanScale { index });
    }
    let groups_per_tile = TILE / MX_BLOCK;
    let mut report = ReencodeReport::default();
    let mut stats = ErrorStats::new();
    for ti in 0..gr {
        let rows = ti * TILE..((ti + 1) * TILE).min(n);
        for tj in 0..gc {
            let groups = tj * groups_per_tile..((tj + 1) * groups_per_tile).min(nb);
            let gmax = rows
                .clone()
                .flat_map(|r| scales[r * nb + groups.start..r * nb + groups.end].iter())
                .copied()
                .max()
                .unwrap_or(0);
            let t = gmax.saturating_sub(HEADROOM);
            if let Some((_, tile_scales_out)) = &mut out {
                tile_scales_out[ti * gc + tj] = t;
            }
            let tile_scale = pow2(t as i32 - 127);
            // E4M3 code of each FP4 code, per group scale byte, built on first use in this tile
            let mut tables: [Option<[(u8, bool); 16]>; 256] = [None; 256];
            for r in rows.clone() {
                for g in groups.clone() {
                    let sg = scales[r * nb + g];
                    let gap = (gmax - sg) as u32;
                    report.max_gap = report.max_gap.max(gap);
                    let table = *tables[sg as usize].get_or_insert_with(|| {
                        let shift = sg as i32 - t as i32;
                        let mut table = [(0u8, true); 16];
                        for (code, slot) in table.iter_mut().enumerate() {
                            *slot = reencode_code(code as u8, shift);
                        }
                        table
                    });
                    if gap > REENCODE_MAX_GAP {
                        report.groups_checked += 1;
                    }
                    let group_scale = pow2(sg as i32 - 127);
                    let cols = g * MX_BLOCK..((g + 1) * MX_BLOCK).min(k);
                    for c in cols {
                        let byte = packed[r * row_bytes + c / 2];
                        let code = (byte >> (4 * (c % 2))) & 0xF;
                        let (q, exact) = table[code as usize];
                        if !exact {
                            if mode == Mode::Exact {
                                return Err(QuantError::ReencodeNotExact {
                                    tile_row: ti,
                                    tile_col: tj,
                                    row: r,
                                    col: c,
                                    gap,
                                    max_gap: REENCODE_MAX_GAP,
                                });
                            }
                            report.inexact += 1;
                            let before = E2M1::from_bits(code).to_f32() * group_scale;
                            stats.add(before, E4M3::from_bits(q).to_f32() * tile_scale);
                        }
                        if let Some((q_out, _)) = &mut out {
                            q_out[r * k + c] = q;
                        }
                    }
                }
            }
        }
    }
    // exact elements add zero error: count them without visiting them again
    stats.merge(&ErrorStats::exact(len as u64 - report.inexact));
    report.stats = stats;
    Ok(report)
}
