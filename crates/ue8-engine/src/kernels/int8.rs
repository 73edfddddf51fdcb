//! MXFP4 weights against int8 activations: the opt-in fast path ([`Activations::Int8`]).
//!
//! The exact path widens every FP4 weight to f32. This one does what llama.cpp does for Q4_0: it
//! quantizes the activations to int8 once per call and works in integers. Doubled E2M1 values are
//! the integers -12..12, so each 32-element block gives an exact i32 dot product, and only the
//! scales and the sum over blocks are floating point.
//!
//! Activation rule, per token and per 32 columns (the last block zero-padded):
//! - `amax = max |x_i|`, `d = amax / 127` in f32;
//! - `q_i = round_half_even(x_i / d)`, saturated to [-128, 127];
//! - a block holding inf or NaN gets `d = NaN` (its tokens' outputs become NaN);
//! - a block whose `d` is 0 (all zeros, or amax below 127 * 2^-150) quantizes to zeros.
//!
//! Result: `y = sum_b f32(I_b) * (d_b * s_b)`, with `I_b = sum_i (2 w_i) q_i` exact and `s_b` the
//! weight's E8M0 scale times 1/2. The fast kernels sum in their own order; the reference sums in f64.

use std::ops::Range;

use super::weights::{MxElement, WeightData, WeightMatrix, MX_BLOCK};
use super::{Isa, OutPtr};

/// How activations meet the weights in a matmul.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Activations {
    /// f32 activations against exactly decoded weights: the reference numerics (default).
    #[default]
    F32,
    /// For MXFP4 weights, int8 activations with one f32 scale per 32 columns and integer block dot
    /// products (the rule above); every other format still takes f32 activations. Faster, and not
    /// exact: each activation moves by up to half its block's step (`amax / 254`).
    Int8,
}

impl Activations {
    /// Lower-case name for flags, logs and benchmark ids.
    pub fn name(self) -> &'static str {
        match self {
            Activations::F32 => "f32",
            Activations::Int8 => "int8",
        }
    }

    /// Parses a [`Activations::name`].
    pub fn from_name(name: &str) -> Option<Activations> {
        match name {
            "f32" => Some(Activations::F32),
            "int8" => Some(Activations::Int8),
            _ => None,
        }
    }
}

/// Doubled E2M1 value plus 12 for every code: `2 v + 12` lies in 0..=24, an unsigned byte, which is
/// what `pmaddubsw` / `vpdpbusd` multiply against signed activations. The 12 is taken back out with
/// [`QuantizedX::neg12_lane_sums`].
pub(crate) const E2M1_TWICE_PLUS_12: [u8; 16] =
    [12, 13, 14, 15, 16, 18, 20, 24, 12, 11, 10, 9, 8, 6, 4, 0];

/// Doubled E2M1 value of a code (`2 v`, an integer in -12..=12).
#[inline]
pub(crate) fn e2m1_twice(code: u8) -> i32 {
    i32::from(E2M1_TWICE_PLUS_12[usize::from(code & 0x0F)]) - 12
}

/// Bytes of one quantized block: its 16 even columns, then its 16 odd ones. The MXFP4 byte j of a
/// block holds columns 2j (low nibble) and 2j+1 (high), so this order needs no nibble interleaving.
pub(crate) const fn reordered(j: usize) -> usize {
    if j < 16 {
        2 * j
    } else {
        2 * (j - 16) + 1
    }
}

/// `m` tokens of activations quantized by the rule of this module. Buffers keep their capacity
/// between calls (per-thread scratch: no allocation in steady state).
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct QuantizedX {
    pub(crate) m: usize,
    pub(crate) blocks: usize,
    /// [m, blocks, 32], each block in [`reordered`] order.
    pub(crate) q: Vec<i8>,
    /// [m, blocks, 8]: `-12 * (q[4l] + .. + q[4l+3])` for each group of 4 bytes of a block, the
    /// initial value that turns a `vpdpbusd` of `2w + 12` by q into the exact `sum 2w q` per lane.
    pub(crate) neg12_lane_sums: Vec<i32>,
    /// [m, blocks]: the block scales `d`.
    pub(crate) d: Vec<f32>,
}

impl QuantizedX {
    /// Sizes the buffers for `m` tokens of `k` columns (contents unspecified until filled).
    pub(crate) fn reset(&mut self, m: usize, k: usize) {
        self.m = m;
        self.blocks = k.div_ceil(MX_BLOCK);
        let b = m * self.blocks;
        self.q.resize(b * MX_BLOCK, 0);
        self.neg12_lane_sums.resize(b * 8, 0);
        self.d.resize(b, 0.0);
    }

    /// Fills the lane sums of block `i` (index over m * blocks) from its bytes.
    pub(crate) fn fill_lane_sums(&mut self, i: usize) {
        let q = &self.q[i * MX_BLOCK..(i + 1) * MX_BLOCK];
        for (l, s) in self.neg12_lane_sums[i * 8..(i + 1) * 8]
            .iter_mut()
            .enumerate()
        {
            *s = -12
                * q[4 * l..4 * l + 4]
                    .iter()
                    .map(|&v| i32::from(v))
                    .sum::<i32>();
        }
    }
}

/// `d` for a block whose largest magnitude has bit pattern `amax_bits` (sign cleared), or `None`
/// where the block quantizes to zeros with `d` as given in the `Err`.
#[inline]
pub(crate) fn block_scale(amax_bits: u32) -> Result<f32, f32> {
    if amax_bits >= 0x7F80_0000 {
        return Err(f32::NAN);
    }
    let d = f32::from_bits(amax_bits) / 127.0;
    if d == 0.0 {
        Err(0.0)
    } else {
        Ok(d)
    }
}

/// The rule for one value: `round_half_even(x / d)` saturated to i8.
#[inline]
pub(crate) fn quantize_value(x: f32, d: f32) -> i8 {
    (x / d).round_ties_even().clamp(-128.0, 127.0) as i8
}

/// Scalar quantizer: the definition the vector one is tested against.
pub(crate) fn quantize_ref(x: &[f32], m: usize, k: usize, out: &mut QuantizedX) {
    out.reset(m, k);
    let blocks = out.blocks;
    for t in 0..m {
        let row = &x[t * k..(t + 1) * k];
        for b in 0..blocks {
            let cols = &row[(b * MX_BLOCK).min(k)..((b + 1) * MX_BLOCK).min(k)];
            let amax_bits = cols
                .iter()
                .map(|v| v.to_bits() & 0x7FFF_FFFF)
                .max()
                .unwrap_or(0);
            let i = t * blocks + b;
            let q = &mut out.q[i * MX_BLOCK..(i + 1) * MX_BLOCK];
            match block_scale(amax_bits) {
                Ok(d) => {
                    for (j, v) in q.iter_mut().enumerate() {
                        *v = cols.get(reordered(j)).map_or(0, |&x| quantize_value(x, d));
                    }
                    out.d[i] = d;
                }
                Err(d) => {
                    q.fill(0);
                    out.d[i] = d;
                }
            }
            out.fill_lane_sums(i);
        }
    }
}

/// `I_b = sum_i 2 w_i q_i` of block `b` of row `row` (an MXFP4 row's bytes) against a quantized block.
#[inline]
pub(crate) fn block_dot_ref(row: &[u8], b: usize, q: &[i8]) -> i32 {
    (0..MX_BLOCK)
        .map(|j| {
            let byte = row.get(b * 16 + j % 16).copied().unwrap_or(0);
            let code = if j < 16 { byte & 0x0F } else { byte >> 4 };
            e2m1_twice(code) * i32::from(q[j])
        })
        .sum()
}

/// The MXFP4 weight's scale for block `b` of row `r` with the doubling undone: `2^(e - 127) / 2`.
#[inline]
pub(crate) fn half_scale(scales: &[u8], blocks: usize, r: usize, b: usize) -> f32 {
    let e = scales.get(r * blocks + b).copied().unwrap_or(0xFF);
    // LUT_E2M1 only exists on x86; the same value from the E8M0 definition.
    ue8_formats::E8M0::from_bits(e).to_f32() * 0.5
}

/// The element bytes and E8M0 scale bytes of `w` if it is MXFP4: the one format this path takes.
pub(crate) fn mxfp4_parts<'a>(w: &WeightMatrix<'a>) -> Option<(&'a [u8], &'a [u8])> {
    match *w.data() {
        WeightData::Mx {
            elem: MxElement::E2M1,
            data,
            scales,
        } => Some((data, scales)),
        _ => None,
    }
}

/// Reference MXFP4 x int8 matmul over `rows`: exact block integers, f64 sum of `I_b * (d_b * s_b)`.
///
/// # Safety
/// `w` is MXFP4 and validated; `qx` holds `m` tokens of `w.k()` columns; `rows.end <= n`; `out`
/// covers `m * n` floats and no other thread writes rows in `rows`.
pub(crate) unsafe fn mxfp4_rows_ref(
    w: &WeightMatrix,
    qx: &QuantizedX,
    rows: Range<usize>,
    out: OutPtr,
) {
    let Some((data, scales)) = mxfp4_parts(w) else {
        return;
    };
    let (n, rb, blocks) = (w.n(), w.row_bytes(), qx.blocks);
    for r in rows {
        let row = data.get(r * rb..(r + 1) * rb).unwrap_or(&[]);
        for t in 0..qx.m {
            let mut acc = 0f64;
            for b in 0..blocks {
                let i = t * blocks + b;
                let q = &qx.q[i * MX_BLOCK..(i + 1) * MX_BLOCK];
                let c = qx.d[i] * half_scale(scales, blocks, r, b);
                acc += f64::from(block_dot_ref(row, b, q)) * f64::from(c);
            }
            // SAFETY: t < m and r < n (caller).
            unsafe { out.write(t * n + r, acc as f32) };
        }
    }
}

thread_local! {
    /// Per-thread quantized activations (each thread of a pooled matmul quantizes x itself: k
    /// values against its share of n * k weights).
    static QUANTIZED: std::cell::RefCell<QuantizedX> = std::cell::RefCell::new(QuantizedX::default());
}

/// Quantizes `x` [m, k] with the `isa` variant (bit-identical across variants).
pub(crate) fn quantize(isa: Isa, x: &[f32], m: usize, k: usize, out: &mut QuantizedX) {
    match isa {
        // SAFETY: the ISA was detected (callers pass supported ISAs); `x` holds m * k floats.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 | Isa::Avx512 => unsafe { super::int8_x86::quantize_avx2(x, m, k, out) },
        _ => quantize_ref(x, m, k, out),
    }
}

/// `w` (MXFP4) times `x` [m, k] by this module's rule over `rows`, with the `isa` variant.
///
/// # Safety
/// `isa` is supported; `w` is a validated MXFP4 matrix; shapes pass `check_shapes` for `out`'s
/// buffer; no other thread writes rows in `rows` of it.
pub(crate) unsafe fn mxfp4_int8_rows(
    isa: Isa,
    w: &WeightMatrix,
    x: &[f32],
    m: usize,
    rows: Range<usize>,
    out: OutPtr,
) {
    let k = w.k();
    let mut fresh = QuantizedX::default();
    QUANTIZED.with(|cell| {
        // A nested call on this thread (never from the pool) gets its own buffer.
        let mut guard = cell.try_borrow_mut();
        let qx = match guard.as_deref_mut() {
            Ok(q) => q,
            Err(_) => &mut fresh,
        };
        quantize(isa, x, m, k, qx);
        match isa {
            // SAFETY: forwarded from the caller; `for_isa` picks a supported dot product.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 | Isa::Avx512 => unsafe {
                super::int8_x86::mxfp4_rows(super::int8_x86::DotI8::for_isa(isa), w, qx, rows, out)
            },
            // SAFETY: forwarded from the caller.
            _ => unsafe { mxfp4_rows_ref(w, qx, rows, out) },
        }
    });
}
