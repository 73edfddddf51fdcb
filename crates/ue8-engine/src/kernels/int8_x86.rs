//! x86-64 kernels of the int8 path (int8.rs): the vector activation quantizer and MXFP4 rows against
//! int8 activations, with the block dot product done by one of three instructions.
//!
//! Each 32-column block of a weight row is 16 bytes. Broadcast to both halves of a register and
//! shifted by 0 or 4 bits per half, they give the 16 even columns' codes, then the 16 odd ones.
//! One `pshufb` turns the codes into `2w + 12` (unsigned bytes). A `vpdpbusd` against the block's
//! activations, started from `-12 * sum q` per lane, then leaves the exact `sum 2w q` in 8 lanes.
//! Without VNNI, `pmaddubsw` + `pmaddwd` + an add do the same. A convert and one FMA per block and
//! token apply `d * s`.

// Token loops index several per-token arrays in lockstep.
#![allow(clippy::needless_range_loop)]

use std::arch::x86_64::*;
use std::ops::Range;

use super::avx2::{hsum, prefetch_ahead, LUT_E2M1};
use super::int8::{block_scale, mxfp4_parts, QuantizedX, E2M1_TWICE_PLUS_12};
use super::weights::{WeightMatrix, MX_BLOCK};
use super::{Isa, OutPtr};

/// Rows walked together for every group of tokens, so prefill re-reads them from L1.
const ROW_BLOCK: usize = 16;

/// The instruction that multiplies unsigned weight bytes by signed activation bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DotI8 {
    /// AVX2 `pmaddubsw` + `pmaddwd` (x86-64-v3, what llama.cpp's AVX2 build uses).
    Maddubs,
    /// AVX-VNNI `vpdpbusd` on 256-bit registers (Alder Lake and later, Zen 5).
    AvxVnni,
    /// AVX-512 VNNI + VL `vpdpbusd` on 256-bit registers (Ice Lake, Sapphire Rapids, Zen 4).
    Avx512Vnni,
}

impl DotI8 {
    /// Whether this CPU has the variant's instructions.
    pub(crate) fn available(self) -> bool {
        let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
        avx2 && match self {
            DotI8::Maddubs => true,
            DotI8::AvxVnni => is_x86_feature_detected!("avxvnni"),
            DotI8::Avx512Vnni => {
                is_x86_feature_detected!("avx512vnni") && is_x86_feature_detected!("avx512vl")
            }
        }
    }

    /// The variant for kernels of instruction set `isa`: AVX2 means x86-64-v3 and no VNNI (so that a
    /// capped run compares like for like with an AVX2 build of a peer); AVX-512 takes VNNI if present.
    pub(crate) fn for_isa(isa: Isa) -> DotI8 {
        match isa {
            Isa::Avx512 if DotI8::Avx512Vnni.available() => DotI8::Avx512Vnni,
            Isa::Avx512 if DotI8::AvxVnni.available() => DotI8::AvxVnni,
            _ => DotI8::Maddubs,
        }
    }
}

/// One block dot product: `acc + sum over each 4 bytes of u * q` per i32 lane.
trait Dot {
    /// # Safety
    /// The CPU has the instruction the implementation uses.
    unsafe fn dot(acc: __m256i, u: __m256i, q: __m256i) -> __m256i;
}

struct Maddubs;
impl Dot for Maddubs {
    #[inline(always)]
    unsafe fn dot(acc: __m256i, u: __m256i, q: __m256i) -> __m256i {
        // SAFETY: register-only AVX2 intrinsics (caller). Pair sums stay within i16: at most
        // 2 * 24 * 128 = 6144.
        unsafe {
            let pairs = _mm256_maddubs_epi16(u, q);
            _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)))
        }
    }
}

struct AvxVnni;
impl Dot for AvxVnni {
    #[inline(always)]
    unsafe fn dot(acc: __m256i, u: __m256i, q: __m256i) -> __m256i {
        // SAFETY: AVX-VNNI present (caller).
        unsafe { _mm256_dpbusd_avx_epi32(acc, u, q) }
    }
}

struct Avx512Vnni;
impl Dot for Avx512Vnni {
    #[inline(always)]
    unsafe fn dot(acc: __m256i, u: __m256i, q: __m256i) -> __m256i {
        // SAFETY: AVX-512 VNNI and VL present (caller).
        unsafe { _mm256_dpbusd_epi32(acc, u, q) }
    }
}

/// Quantizes `x` [m, k] into `out` by int8.rs's rule, bit-identical to `quantize_ref`.
///
/// # Safety
/// The CPU has AVX2 and FMA; `x.len() == m * k`.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn quantize_avx2(x: &[f32], m: usize, k: usize, out: &mut QuantizedX) {
    out.reset(m, k);
    let blocks = out.blocks;
    let abs_mask = _mm256_set1_epi32(0x7FFF_FFFF);
    let natural = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    let evens_odds = _mm256_setr_epi8(
        0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15, //
        0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15,
    );
    let twelve = _mm256_set1_epi8(12);
    let ones = _mm256_set1_epi16(1);
    let mut padded = [0f32; MX_BLOCK];
    for t in 0..m {
        let row = &x[t * k..(t + 1) * k];
        for b in 0..blocks {
            let c0 = b * MX_BLOCK;
            let src: &[f32] = if c0 + MX_BLOCK <= k {
                &row[c0..c0 + MX_BLOCK]
            } else {
                padded.fill(0.0);
                padded[..k - c0].copy_from_slice(&row[c0..]);
                &padded
            };
            let i = t * blocks + b;
            // SAFETY: `src` holds 32 floats; `out` was sized for m * blocks blocks by reset.
            unsafe {
                let p = src.as_ptr();
                let v = [0, 8, 16, 24].map(|o| _mm256_loadu_ps(p.add(o)));
                let bits = v.map(|x| _mm256_and_si256(_mm256_castps_si256(x), abs_mask));
                let mx = _mm256_max_epi32(
                    _mm256_max_epi32(bits[0], bits[1]),
                    _mm256_max_epi32(bits[2], bits[3]),
                );
                let mx = _mm_max_epi32(
                    _mm256_castsi256_si128(mx),
                    _mm256_extracti128_si256::<1>(mx),
                );
                let mx = _mm_max_epi32(mx, _mm_shuffle_epi32::<0b01_00_11_10>(mx));
                let mx = _mm_max_epi32(mx, _mm_shuffle_epi32::<0b10_11_00_01>(mx));
                let qp = out.q.as_mut_ptr().add(i * MX_BLOCK) as *mut __m256i;
                let q = match block_scale(_mm_cvtsi128_si32(mx) as u32) {
                    Ok(d) => {
                        out.d[i] = d;
                        let dv = _mm256_set1_ps(d);
                        // cvtps rounds half to even (the default MXCSR); the packs saturate.
                        let n = v.map(|x| _mm256_cvtps_epi32(_mm256_div_ps(x, dv)));
                        let lo = _mm256_packs_epi32(n[0], n[1]);
                        let hi = _mm256_packs_epi32(n[2], n[3]);
                        let bytes =
                            _mm256_permutevar8x32_epi32(_mm256_packs_epi16(lo, hi), natural);
                        let split = _mm256_shuffle_epi8(bytes, evens_odds);
                        _mm256_permute4x64_epi64::<0b11_01_10_00>(split)
                    }
                    Err(d) => {
                        out.d[i] = d;
                        _mm256_setzero_si256()
                    }
                };
                _mm256_storeu_si256(qp, q);
                let sums = _mm256_madd_epi16(_mm256_maddubs_epi16(twelve, q), ones);
                let sp = out.neg12_lane_sums.as_mut_ptr().add(i * 8) as *mut __m256i;
                _mm256_storeu_si256(sp, _mm256_sub_epi32(_mm256_setzero_si256(), sums));
            }
        }
    }
}

/// Blocks whose `d * s` products are computed ahead of the dot products, per token.
const CHUNK: usize = 64;

/// `c[t][j] = d[t0 + t][b0 + j] * s[b0 + j]` for `j < len`: the block scales of a row, times the
/// activation scales (`s` from the E8M0 bytes at `sp`, with the doubling undone).
///
/// # Safety
/// AVX2 present; `sp` has `len` readable bytes; `dp` holds tokens `t0 .. t0 + T` of `blocks` scales
/// with `b0 + len <= blocks`; `len <= CHUNK`.
#[inline(always)]
unsafe fn block_scales<const T: usize>(
    sp: *const u8,
    dp: *const f32,
    blocks: usize,
    t0: usize,
    b0: usize,
    len: usize,
    c: &mut [[f32; CHUNK]; T],
) {
    // SAFETY: forwarded from the caller.
    unsafe {
        let mut j = 0;
        while j + 8 <= len {
            // 2^(e - 128) from the byte e: (e - 1) << 23 for e >= 1; e = 0 is the subnormal 2^-128.
            let e = _mm256_cvtepu8_epi32(_mm_loadl_epi64(sp.add(j) as *const _));
            let bits = _mm256_slli_epi32::<23>(_mm256_sub_epi32(e, _mm256_set1_epi32(1)));
            let zero = _mm256_cmpeq_epi32(e, _mm256_setzero_si256());
            let s = _mm256_castsi256_ps(_mm256_blendv_epi8(
                bits,
                _mm256_set1_epi32(0x0040_0000),
                zero,
            ));
            for t in 0..T {
                let d = _mm256_loadu_ps(dp.add((t0 + t) * blocks + b0 + j));
                _mm256_storeu_ps(c[t].as_mut_ptr().add(j), _mm256_mul_ps(d, s));
            }
            j += 8;
        }
        while j < len {
            let s = *LUT_E2M1.get_unchecked(usize::from(*sp.add(j)));
            for t in 0..T {
                c[t][j] = *dp.add((t0 + t) * blocks + b0 + j) * s;
            }
            j += 1;
        }
    }
}

/// What [`block`] needs about the current row and token group.
struct Row {
    rp: *const u8,
    qp: *const i8,
    cp: *const i32,
    blocks: usize,
    t0: usize,
    table: __m256i,
    shifts: __m256i,
    nib: __m256i,
}

/// Adds block `b` of the row, for every token of the group, into `acc`; `c[t]` is the block's
/// `d * s` for token t. (A function, not a closure: a closure would not inherit the caller's target
/// features, and its intrinsics would not inline.)
///
/// # Safety
/// As [`rows_tokens`]; `b < blocks`.
#[inline(always)]
unsafe fn block<D: Dot, const T: usize>(
    row: &Row,
    b: usize,
    c: [*const f32; T],
    acc: &mut [__m256; T],
) {
    // SAFETY: forwarded from the caller: the row has `blocks * 16` bytes, qx holds tokens
    // t0 .. t0 + T, and each c[t] points at one float.
    unsafe {
        let v = _mm256_broadcastsi128_si256(_mm_loadu_si128(row.rp.add(b * 16) as *const _));
        let codes = _mm256_and_si256(_mm256_srlv_epi64(v, row.shifts), row.nib);
        let u = _mm256_shuffle_epi8(row.table, codes);
        for t in 0..T {
            let i = (row.t0 + t) * row.blocks + b;
            let lanes = D::dot(
                _mm256_loadu_si256(row.cp.add(i * 8) as *const _),
                u,
                _mm256_loadu_si256(row.qp.add(i * MX_BLOCK) as *const _),
            );
            let scale = _mm256_broadcast_ss(&*c[t]);
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(lanes), scale, acc[t]);
        }
    }
}

/// Rows `rows` for tokens `t0 .. t0 + T`.
///
/// # Safety
/// The CPU has AVX2, FMA and `D`'s instruction; `data`/`scales` are a validated MXFP4 matrix's
/// (`blocks * 16` bytes per row); `qx` holds `t0 + T` tokens of `blocks` blocks; `rows.end <= n`;
/// `out` covers `qx.m * n` floats and no other thread writes these rows.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn rows_tokens<D: Dot, const T: usize>(
    data: &[u8],
    scales: &[u8],
    n: usize,
    qx: &QuantizedX,
    t0: usize,
    rows: Range<usize>,
    out: OutPtr,
) {
    let blocks = qx.blocks;
    // SAFETY (whole body): pointer offsets stay inside the buffers described above.
    unsafe {
        let mut row = Row {
            rp: data.as_ptr(),
            qp: qx.q.as_ptr(),
            cp: qx.neg12_lane_sums.as_ptr(),
            blocks,
            t0,
            table: _mm256_broadcastsi128_si256(_mm_loadu_si128(
                E2M1_TWICE_PLUS_12.as_ptr() as *const _
            )),
            shifts: _mm256_setr_epi64x(0, 0, 4, 4),
            nib: _mm256_set1_epi8(0x0F),
        };
        let mut c = [[0f32; CHUNK]; T];
        for r in rows {
            row.rp = data.as_ptr().add(r * blocks * 16);
            let sp = scales.as_ptr().add(r * blocks);
            // Even and odd blocks into two sets of accumulators, against FMA latency (fixed
            // registers: no run-time index into them).
            let (mut even, mut odd) = ([_mm256_setzero_ps(); T], [_mm256_setzero_ps(); T]);
            let mut b0 = 0;
            while b0 < blocks {
                let len = CHUNK.min(blocks - b0);
                block_scales::<T>(sp.add(b0), qx.d.as_ptr(), blocks, t0, b0, len, &mut c);
                let at = |j: usize| std::array::from_fn::<_, T, _>(|t| c[t].as_ptr().add(j));
                let mut j = 0;
                while j + 4 <= len {
                    // One prefetch per 64 bytes of weights.
                    prefetch_ahead(row.rp, (b0 + j) * 16);
                    // Every group size splits the same way, so that a token's result does not
                    // depend on the batch it came in.
                    block::<D, T>(&row, b0 + j, at(j), &mut even);
                    block::<D, T>(&row, b0 + j + 1, at(j + 1), &mut odd);
                    block::<D, T>(&row, b0 + j + 2, at(j + 2), &mut even);
                    block::<D, T>(&row, b0 + j + 3, at(j + 3), &mut odd);
                    j += 4;
                }
                while j < len {
                    block::<D, T>(&row, b0 + j, at(j), &mut even);
                    j += 1;
                }
                b0 += len;
            }
            for t in 0..T {
                out.write((t0 + t) * n + r, hsum(_mm256_add_ps(even[t], odd[t])));
            }
        }
    }
}

/// All tokens of `qx` over `rows`, in row blocks of [`ROW_BLOCK`] and token groups of 4.
///
/// # Safety
/// As [`rows_tokens`] for every group.
#[inline(always)]
unsafe fn run<D: Dot>(w: &WeightMatrix, qx: &QuantizedX, rows: Range<usize>, out: OutPtr) {
    let Some((data, scales)) = mxfp4_parts(w) else {
        return;
    };
    let n = w.n();
    let mut r0 = rows.start;
    while r0 < rows.end {
        let r1 = (r0 + ROW_BLOCK).min(rows.end);
        let mut t0 = 0;
        // SAFETY: forwarded from the caller; token groups stay below qx.m.
        unsafe {
            while t0 + 4 <= qx.m {
                rows_tokens::<D, 4>(data, scales, n, qx, t0, r0..r1, out);
                t0 += 4;
            }
            match qx.m - t0 {
                3 => rows_tokens::<D, 3>(data, scales, n, qx, t0, r0..r1, out),
                2 => rows_tokens::<D, 2>(data, scales, n, qx, t0, r0..r1, out),
                1 => rows_tokens::<D, 1>(data, scales, n, qx, t0, r0..r1, out),
                _ => {}
            }
        }
        r0 = r1;
    }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn run_maddubs(w: &WeightMatrix, qx: &QuantizedX, rows: Range<usize>, out: OutPtr) {
    // SAFETY: forwarded from the caller.
    unsafe { run::<Maddubs>(w, qx, rows, out) }
}

#[target_feature(enable = "avx2,fma,avxvnni")]
unsafe fn run_avxvnni(w: &WeightMatrix, qx: &QuantizedX, rows: Range<usize>, out: OutPtr) {
    // SAFETY: forwarded from the caller.
    unsafe { run::<AvxVnni>(w, qx, rows, out) }
}

#[target_feature(enable = "avx2,fma,avx512f,avx512vl,avx512vnni")]
unsafe fn run_avx512vnni(w: &WeightMatrix, qx: &QuantizedX, rows: Range<usize>, out: OutPtr) {
    // SAFETY: forwarded from the caller.
    unsafe { run::<Avx512Vnni>(w, qx, rows, out) }
}

/// MXFP4 rows `rows` of `w` against quantized activations `qx`, with block dot product `dot`.
///
/// # Safety
/// `dot` is in [`DotI8::supported`]; `w` is a validated MXFP4 matrix and `qx` was quantized from
/// [m, w.k()] activations; `rows.end <= n`; `out` covers `m * n` floats and no other thread writes
/// rows in `rows`.
pub(crate) unsafe fn mxfp4_rows(
    dot: DotI8,
    w: &WeightMatrix,
    qx: &QuantizedX,
    rows: Range<usize>,
    out: OutPtr,
) {
    // SAFETY: forwarded from the caller.
    unsafe {
        match dot {
            DotI8::Maddubs => run_maddubs(w, qx, rows, out),
            DotI8::AvxVnni => run_avxvnni(w, qx, rows, out),
            DotI8::Avx512Vnni => run_avx512vnni(w, qx, rows, out),
        }
    }
}
