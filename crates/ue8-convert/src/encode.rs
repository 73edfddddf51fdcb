//! Quantizing one 2-D tensor into the tensors docs/layouts.md prescribes, in bands of rows spread
//! over the rayon pool, measuring the error against the source as it goes (block FP8: fused into the
//! quantization pass, read straight from the source type; MX: one f32 band at a time), so memory stays
//! at the output plus a few bands.

use crate::format::Scheme;
use crate::source::PlainData;
use crate::ConvertError;
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;
use ue8_io::layout::logical_shape_key;
use ue8_io::{Dtype, TensorSpec};
use ue8_quant::{BlockFp8, ErrorStats, MxElement, MxScheme, NonFinite, QuantError};

/// Rows per band for MX (rows are independent; enough work per rayon task without much memory).
const MX_BAND_ROWS: usize = 64;

/// The tensors written for one quantized weight, and its error against the source.
pub struct Encoded {
    /// Data tensor then scales, matching [`output_specs`].
    pub tensors: Vec<(String, Vec<u8>)>,
    pub stats: ErrorStats,
}

/// Padded row length of packed MX layouts.
fn padded_k(k: usize) -> usize {
    k.div_ceil(32) * 32
}

/// Names, dtypes and shapes written for weight `name` of shape [n, k], plus `__metadata__` entries.
pub fn output_specs(
    scheme: Scheme,
    name: &str,
    n: usize,
    k: usize,
) -> (Vec<TensorSpec>, BTreeMap<String, String>) {
    let mut meta = BTreeMap::new();
    let specs = match scheme {
        Scheme::BlockFp8 { e8m0_scales, .. } => vec![
            TensorSpec::new(name, Dtype::F8E4M3, vec![n, k]),
            TensorSpec::new(
                format!("{name}_scale_inv"),
                if e8m0_scales {
                    Dtype::F8E8M0
                } else {
                    Dtype::F32
                },
                vec![n.div_ceil(128), k.div_ceil(128)],
            ),
        ],
        Scheme::Mx {
            elem, e8m0_scales, ..
        } => {
            let sd = if e8m0_scales {
                Dtype::F8E8M0
            } else {
                Dtype::U8
            };
            let nb = k.div_ceil(32);
            let kp = padded_k(k);
            match elem {
                MxElement::E4M3 | MxElement::E5M2 => vec![
                    TensorSpec::new(
                        name,
                        if elem == MxElement::E4M3 {
                            Dtype::F8E4M3
                        } else {
                            Dtype::F8E5M2
                        },
                        vec![n, k],
                    ),
                    TensorSpec::new(format!("{name}_scale"), sd, vec![n, nb]),
                ],
                MxElement::E3M2 | MxElement::E2M3 => {
                    if kp != k {
                        meta.insert(logical_shape_key(name), format!("[{n}, {k}]"));
                    }
                    vec![
                        TensorSpec::new(
                            name,
                            if elem == MxElement::E3M2 {
                                Dtype::F6E3M2
                            } else {
                                Dtype::F6E2M3
                            },
                            vec![n, kp],
                        ),
                        TensorSpec::new(format!("{name}_scale"), sd, vec![n, nb]),
                    ]
                }
                MxElement::E2M1 => {
                    let blocks = format!("{name}_blocks");
                    if kp != k {
                        meta.insert(logical_shape_key(&blocks), format!("[{n}, {k}]"));
                    }
                    vec![
                        TensorSpec::new(blocks, Dtype::U8, vec![n, kp / 32, 16]),
                        TensorSpec::new(format!("{name}_scales"), sd, vec![n, nb]),
                    ]
                }
            }
        }
    };
    (specs, meta)
}

fn first_nonfinite(band: &[f32], k: usize) -> Option<(usize, usize, f32)> {
    band.iter()
        .position(|v| !v.is_finite())
        .map(|i| (i / k, i % k, band[i]))
}

/// Quantizes `src` ([n, k], row-major) of tensor `name` read from `file`.
pub fn encode(
    scheme: Scheme,
    file: &Path,
    name: &str,
    src: &PlainData<'_>,
    n: usize,
    k: usize,
) -> Result<Encoded, ConvertError> {
    let fail = |e: QuantError| ConvertError::quant(file, name, e);
    let nonfinite_err = |row: usize, col: usize, v: f32| {
        ConvertError::tensor(
            file,
            name,
            format!("non-finite value {v} at (row {row}, col {col}): refusing to quantize"),
        )
    };
    if src.len() != n * k || n == 0 || k == 0 {
        return Err(ConvertError::tensor(
            file,
            name,
            format!("cannot quantize shape [{n}, {k}] from {} values", src.len()),
        ));
    }
    let (specs, _) = output_specs(scheme, name, n, k);
    let out_len = |i: usize| specs[i].byte_len().unwrap_or(0) as usize;
    let mut data = vec![0u8; out_len(0)];
    let mut scale_bytes = vec![0u8; out_len(1)];
    let stats = match scheme {
        Scheme::BlockFp8 { rule, e8m0_scales } => {
            // One pass: each 128-row band is quantized straight from the source type (no f32 copy)
            // and compared with its decoding while still in cache.
            let scheme = BlockFp8::WEIGHT.with_rule(rule);
            let mut scales = vec![0f32; n.div_ceil(128) * k.div_ceil(128)];
            let fused = match src {
                PlainData::F32(v) => scheme.quantize_with_stats_par(
                    v,
                    n,
                    k,
                    NonFinite::Reject,
                    &mut data,
                    &mut scales,
                ),
                PlainData::Bf16(v) => scheme.quantize_with_stats_par(
                    v,
                    n,
                    k,
                    NonFinite::Reject,
                    &mut data,
                    &mut scales,
                ),
                PlainData::F16(v) => scheme.quantize_with_stats_par(
                    v,
                    n,
                    k,
                    NonFinite::Reject,
                    &mut data,
                    &mut scales,
                ),
            };
            let stats = match fused {
                Ok((_, stats)) => stats,
                // Only on failure: name the offending element in the converter's own words.
                Err(e) => {
                    return Err(match src.first_nonfinite() {
                        Some((i, v)) => nonfinite_err(i / k, i % k, v),
                        None => fail(e),
                    })
                }
            };
            if e8m0_scales {
                ue8_quant::scales_to_e8m0(&scales, &mut scale_bytes).map_err(fail)?;
            } else {
                for (o, s) in scale_bytes.chunks_exact_mut(4).zip(&scales) {
                    o.copy_from_slice(&s.to_le_bytes());
                }
            }
            stats
        }
        Scheme::Mx { elem, rule, .. } => {
            let mx = MxScheme { elem, rule };
            let nb = k.div_ceil(32);
            let kp = padded_k(k);
            let row_bytes = out_len(0) / n;
            data.par_chunks_mut(MX_BAND_ROWS * row_bytes)
                .zip(scale_bytes.par_chunks_mut(MX_BAND_ROWS * nb))
                .enumerate()
                .map(|(b, (d, s_out))| {
                    let rows = s_out.len() / nb;
                    let row0 = b * MX_BAND_ROWS;
                    let mut f = vec![0f32; rows * k];
                    src.to_f32_range(row0 * k, &mut f);
                    if let Some((r, c, v)) = first_nonfinite(&f, k) {
                        return Err(nonfinite_err(row0 + r, c, v));
                    }
                    let mut codes = vec![0u8; rows * k];
                    let report = mx
                        .quantize_f32(&f, rows, k, &mut codes, s_out)
                        .map_err(fail)?;
                    match elem {
                        MxElement::E4M3 | MxElement::E5M2 => d.copy_from_slice(&codes),
                        _ => {
                            let mut row = vec![0u8; kp];
                            for (c, o) in codes.chunks(k).zip(d.chunks_mut(row_bytes)) {
                                row[..k].copy_from_slice(c);
                                row[k..].fill(0);
                                if elem == MxElement::E2M1 {
                                    ue8_quant::pack_e2m1(&row, o).map_err(fail)?;
                                } else {
                                    ue8_quant::pack_fp6(&row, o).map_err(fail)?;
                                }
                            }
                        }
                    }
                    let mut back = vec![0f32; rows * k];
                    mx.dequantize_to_f32(&codes, s_out, rows, k, &mut back)
                        .map_err(fail)?;
                    let mut st = ErrorStats::new();
                    st.add_slices(&f, &back);
                    st.add_clipped(report.clipped);
                    Ok(st)
                })
                .try_reduce(ErrorStats::new, |mut a, b| {
                    a.merge(&b);
                    Ok(a)
                })?
        }
    };
    let names = specs.into_iter().map(|s| s.name);
    let tensors = names.zip([data, scale_bytes]).collect();
    Ok(Encoded { tensors, stats })
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::{bf16, f16};
    use std::borrow::Cow;
    use ue8_quant::ScaleRule;

    /// The fused pass sums the same f64 terms as the unfused one in another order (per tile segment
    /// instead of per band); f64 reassociation over <= 1e5 terms moves a sum by far less than this.
    const F64_REASSOCIATION_REL: f64 = 1e-9;

    fn values(len: usize, seed: u32) -> Vec<f32> {
        // Deterministic spread over several binades, with a few outliers that force clipping-free
        // but large-scale tiles.
        let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        (0..len)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let u = (x as f32 / u32::MAX as f32) - 0.5;
                if i % 997 == 3 {
                    u * 300.0
                } else {
                    u * 0.04
                }
            })
            .collect()
    }

    /// The converter's former path: f32 band copy, quantize, decode, compare.
    fn unfused(rule: ScaleRule, f: &[f32], n: usize, k: usize) -> (Vec<u8>, Vec<f32>, ErrorStats) {
        let scheme = BlockFp8::WEIGHT.with_rule(rule);
        let mut q = vec![0u8; n * k];
        let mut s = vec![0f32; n.div_ceil(128) * k.div_ceil(128)];
        let rep = scheme
            .quantize_f32(f, n, k, NonFinite::Reject, &mut q, &mut s)
            .unwrap();
        let mut back = vec![0f32; n * k];
        scheme.dequantize_to_f32(&q, &s, n, k, &mut back).unwrap();
        let mut st = ErrorStats::new();
        st.add_slices(f, &back);
        st.add_clipped(rep.clipped);
        (q, s, st)
    }

    fn close(a: f64, b: f64) -> bool {
        a == b || (a - b).abs() <= F64_REASSOCIATION_REL * a.abs().max(b.abs())
    }

    #[test]
    fn fused_block_fp8_matches_quantize_then_decode_for_every_source_type() {
        let path = Path::new("t.safetensors");
        for (n, k) in [(1, 1), (1, 33), (31, 127), (129, 128), (130, 300)] {
            for (si, source) in ["f32", "bf16", "f16"].into_iter().enumerate() {
                let raw = values(n * k, (n * 1000 + k + si) as u32);
                // The reference sees exactly the values the source type holds.
                let (data, f): (PlainData<'_>, Vec<f32>) = match source {
                    "f32" => (PlainData::F32(Cow::Owned(raw.clone())), raw.clone()),
                    "bf16" => {
                        let v: Vec<bf16> = raw.iter().map(|x| bf16::from_f32(*x)).collect();
                        let f = v.iter().map(|x| x.to_f32()).collect();
                        (PlainData::Bf16(Cow::Owned(v)), f)
                    }
                    _ => {
                        let v: Vec<f16> = raw.iter().map(|x| f16::from_f32(*x)).collect();
                        let f = v.iter().map(|x| x.to_f32()).collect();
                        (PlainData::F16(Cow::Owned(v)), f)
                    }
                };
                let scheme = Scheme::BlockFp8 {
                    rule: ScaleRule::Ue8m0Ceil,
                    e8m0_scales: false,
                };
                let enc = encode(scheme, path, "w", &data, n, k).unwrap();
                let (q, s, st) = unfused(ScaleRule::Ue8m0Ceil, &f, n, k);
                let ctx = format!("[{n}, {k}] from {source}");
                assert_eq!(enc.tensors[0].1, q, "codes {ctx}");
                let s_bytes: Vec<u8> = s.iter().flat_map(|x| x.to_le_bytes()).collect();
                assert_eq!(enc.tensors[1].1, s_bytes, "scales {ctx}");
                let e = &enc.stats;
                assert_eq!(e.max_abs(), st.max_abs(), "max_abs {ctx}");
                assert_eq!(e.clipped_share(), st.clipped_share(), "clipped {ctx}");
                assert!(close(e.rms(), st.rms()), "rms {ctx}");
                assert!(close(e.cosine(), st.cosine()), "cosine {ctx}");
                assert!(close(e.snr_db(), st.snr_db()), "snr {ctx}");
            }
        }
    }

    #[test]
    fn non_finite_source_is_named_by_row_and_column() {
        let (n, k) = (130, 33);
        let mut v: Vec<bf16> = values(n * k, 7)
            .iter()
            .map(|x| bf16::from_f32(*x))
            .collect();
        v[129 * k + 5] = bf16::INFINITY;
        let scheme = Scheme::BlockFp8 {
            rule: ScaleRule::Ue8m0Ceil,
            e8m0_scales: true,
        };
        let data = PlainData::Bf16(Cow::Owned(v));
        let err = encode(scheme, Path::new("m.safetensors"), "w", &data, n, k)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("row 129, col 5") && err.contains("non-finite") && err.contains("'w'"),
            "{err}"
        );
    }
}
