//! Scalar reference kernels: the plainest correct code, the twin every fast kernel is tested against.
//! Each weight is dequantized exactly as formats.md says (`f32(q) * S`, one f32 multiply, exact for
//! power-of-two scales) and dotted with the activations in column order in f32.

use std::ops::Range;

use ue8_formats::{Element, E2M1, E2M3, E3M2, E4M3, E5M2, E8M0};

use super::weights::{MxElement, WeightData, WeightMatrix, E4M3_TILE, MX_BLOCK};
use super::OutPtr;

/// Code of element `c` of an MX row (`row` = that row's stored bytes). Out-of-range reads give 0.
#[inline]
pub(crate) fn mx_code(elem: MxElement, row: &[u8], c: usize) -> u8 {
    let byte = |i: usize| row.get(i).copied().unwrap_or(0);
    match elem {
        MxElement::E4M3 | MxElement::E5M2 => byte(c),
        MxElement::E2M1 => (byte(c / 2) >> (4 * (c % 2))) & 0x0F,
        MxElement::E3M2 | MxElement::E2M3 => {
            // One little-endian bit stream, element c in bits 6c .. 6c+5 (docs/layouts.md).
            let bit = 6 * c;
            let pair = u16::from(byte(bit / 8)) | (u16::from(byte(bit / 8 + 1)) << 8);
            ((pair >> (bit % 8)) & 0x3F) as u8
        }
    }
}

/// Exact f32 value of an MX element code.
#[inline]
pub(crate) fn mx_value(elem: MxElement, code: u8) -> f32 {
    match elem {
        MxElement::E4M3 => E4M3::from_bits(code).to_f32(),
        MxElement::E5M2 => E5M2::from_bits(code).to_f32(),
        MxElement::E3M2 => E3M2::from_bits(code).to_f32(),
        MxElement::E2M3 => E2M3::from_bits(code).to_f32(),
        MxElement::E2M1 => E2M1::from_bits(code).to_f32(),
    }
}

/// Writes the k dequantized values of row `r` into `out[..k]` (scalar, any format).
/// Callers guarantee `r < n` and `out.len() >= k`; out-of-range data reads as zero, never panics.
pub(crate) fn dequantize_row_ref(w: &WeightMatrix, r: usize, out: &mut [f32]) {
    let k = w.k();
    let rb = w.row_bytes();
    let span = r * rb..(r + 1) * rb;
    let len = k.min(out.len());
    let out = &mut out[..len];
    match *w.data() {
        WeightData::F32(b) => {
            let row = b.get(span).unwrap_or(&[]);
            for (o, ch) in out.iter_mut().zip(row.chunks_exact(4)) {
                *o = f32::from_le_bytes([ch[0], ch[1], ch[2], ch[3]]);
            }
        }
        WeightData::Bf16(b) => {
            let row = b.get(span).unwrap_or(&[]);
            for (o, ch) in out.iter_mut().zip(row.chunks_exact(2)) {
                *o = half::bf16::from_bits(u16::from_le_bytes([ch[0], ch[1]])).to_f32();
            }
        }
        WeightData::F16(b) => {
            let row = b.get(span).unwrap_or(&[]);
            for (o, ch) in out.iter_mut().zip(row.chunks_exact(2)) {
                *o = half::f16::from_bits(u16::from_le_bytes([ch[0], ch[1]])).to_f32();
            }
        }
        WeightData::E4m3Tiles { q, scales } => {
            let row = q.get(span).unwrap_or(&[]);
            let tiles_per_row = k.div_ceil(E4M3_TILE);
            let base = (r / E4M3_TILE) * tiles_per_row;
            for (c, (o, &b)) in out.iter_mut().zip(row).enumerate() {
                let s = scales
                    .get(base + c / E4M3_TILE)
                    .copied()
                    .unwrap_or(f32::NAN);
                *o = E4M3::from_bits(b).to_f32() * s;
            }
        }
        WeightData::Mx { elem, data, scales } => {
            let row = data.get(span).unwrap_or(&[]);
            let blocks = k.div_ceil(MX_BLOCK);
            for (c, o) in out.iter_mut().enumerate() {
                let byte = scales
                    .get(r * blocks + c / MX_BLOCK)
                    .copied()
                    .unwrap_or(0xFF);
                *o = mx_value(elem, mx_code(elem, row, c)) * E8M0::from_bits(byte).to_f32();
            }
        }
    }
}

/// Reference matmul over a row range: `y[t*n + r] = sum_c W[r, c] * x[t*k + c]` for `t < m`,
/// `r` in `rows`.
///
/// # Safety
/// Shapes pass `check_shapes` for `out`'s buffer; no other thread writes rows in `rows` of it.
pub(crate) unsafe fn matmul_rows_ref(
    w: &WeightMatrix,
    x: &[f32],
    m: usize,
    rows: Range<usize>,
    out: OutPtr,
) {
    // The scalar twins are also the production path where no SIMD variant exists (aarch64): the
    // row buffer is per-thread scratch so that decode allocates nothing in steady state.
    ROW.with(|cell| match cell.try_borrow_mut() {
        // SAFETY: forwarded from the caller.
        Ok(mut row) => unsafe { rows_into(w, x, m, rows, out, &mut row) },
        // SAFETY: forwarded from the caller.
        Err(_) => unsafe { rows_into(w, x, m, rows, out, &mut Vec::new()) },
    })
}

thread_local! {
    static ROW: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The reference loop with a caller-provided row buffer.
///
/// # Safety
/// As [`matmul_rows_ref`].
unsafe fn rows_into(
    w: &WeightMatrix,
    x: &[f32],
    m: usize,
    rows: Range<usize>,
    out: OutPtr,
    row: &mut Vec<f32>,
) {
    let (n, k) = (w.n(), w.k());
    row.clear();
    row.resize(k, 0.0);
    for r in rows {
        dequantize_row_ref(w, r, row);
        for t in 0..m {
            let xt = &x[t * k..(t + 1) * k];
            let mut acc = 0f32;
            for (a, b) in row.iter().zip(xt) {
                acc += a * b;
            }
            // SAFETY: t < m and r < n (caller), so the index is inside out's m * n floats.
            unsafe { out.write(t * n + r, acc) };
        }
    }
}
