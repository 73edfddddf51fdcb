//! AVX2 + FMA + F16C kernels for every weight format (x86-64 only, chosen at run time).
//!
//! One generic kernel walks a block of rows for a group of up to 4 tokens: each 16-element group of a
//! weight row is decoded once into two `__m256` and multiplied into every token of the group, so
//! prefill reads each weight row once per 4 tokens (from L1 after the first group: rows are taken 16 at
//! a time). Per-format decoders are exact for every finite code (formats.md section 5): E4M3, E3M2 and
//! E2M3 are shifted into f16 bit patterns and converted with F16C, leaving 2^-8, 2^-12 and 2^-14 of
//! the value; E5M2 is the high byte of an f16; E2M1 is a `pshufb` table of doubled integers (x2,
//! ggml's table). Those constants are folded into the block scale. (Building f32 bit patterns and
//! multiplying by 2^120 instead measured no faster with AVX2 and slower with AVX-512: the multiply
//! competes with the FMAs.)

// Token loops index several per-token arrays (accumulators, x rows) in lockstep.
#![allow(clippy::needless_range_loop)]

use std::arch::x86_64::*;
use std::ops::Range;

use super::panel::{self, Micro, PanelJob, PANEL_MIN_TOKENS};
use super::reference::{mx_code, mx_value};
use super::weights::{MxElement, WeightData, WeightMatrix, E4M3_TILE, MX_BLOCK};
use super::OutPtr;

/// Rows walked together for all token groups, so that prefill re-reads them from L1 (16 rows of a
/// 4096-wide FP8 matrix are 64 KiB: L2 at worst).
const ROW_BLOCK: usize = 16;
/// Columns decoded per step.
const STEP: usize = 16;

/// How one weight format decodes 16 elements.
trait Decode16 {
    /// Bytes from the start of a row to column `c` (`c % 16 == 0`).
    fn byte_of(c: usize) -> usize;
    /// Bytes `load16` touches from `byte_of(c)` on (more than 16 elements' worth where it over-reads).
    const READ: usize;
    /// Elements `c .. c+16` of the row at `row`, each times `2^-fold`.
    ///
    /// # Safety
    /// `row + byte_of(c) .. + READ` must be readable; the CPU must have AVX2, FMA and F16C.
    unsafe fn load16(row: *const u8, c: usize) -> (__m256, __m256);

    /// End of the vector part of columns `start .. end` (`start % 16 == 0`) of the row whose bytes
    /// begin at `row_off`: whole 16-column steps whose loads stay inside `data_len` bytes (FP6
    /// loads 16 bytes for 12, so the last step of the last row may have to go to the scalar tail).
    fn vector_end(row_off: usize, data_len: usize, start: usize, end: usize) -> usize
    where
        Self: Sized,
    {
        let mut e = start + (end - start) / STEP * STEP;
        while e > start && row_off + Self::byte_of(e - STEP) + Self::READ > data_len {
            e -= STEP;
        }
        e
    }

    /// Adds `w * x[t]` over the `B` columns at `c0` (a whole block) into the accumulators: even
    /// 16-column steps into `e0/e1`, odd ones into `o0/o1` for one or two tokens.
    ///
    /// # Safety
    /// As [`full_block`].
    #[inline(always)]
    unsafe fn block_dot<const B: usize, const T: usize>(
        rp: *const u8,
        xp: *const f32,
        k: usize,
        t0: usize,
        c0: usize,
        acc: &mut Accumulators<T>,
    ) where
        Self: Sized,
    {
        // SAFETY: forwarded from the caller.
        unsafe {
            for j in 0..B / STEP {
                // One prefetch per cache line of weights (compile-time condition).
                let step_bytes = Self::byte_of(STEP);
                if (j * step_bytes) % 64 < step_bytes {
                    prefetch_ahead(rp, Self::byte_of(c0 + j * STEP));
                }
                // Two accumulator sets for one or two tokens, against FMA latency.
                if T <= 2 && j % 2 == 1 {
                    step16::<Self, T>(rp, xp, k, t0, c0 + j * STEP, &mut acc.o0, &mut acc.o1);
                } else {
                    step16::<Self, T>(rp, xp, k, t0, c0 + j * STEP, &mut acc.e0, &mut acc.e1);
                }
            }
        }
    }
}

/// Per-token accumulators of one block: even steps (`e0`, `e1`: columns 0-7 and 8-15 of each 16)
/// and odd steps (`o0`, `o1`, used for one or two tokens only).
pub(super) struct Accumulators<const T: usize> {
    e0: [__m256; T],
    e1: [__m256; T],
    o0: [__m256; T],
    o1: [__m256; T],
}

struct F32Fmt;
impl Decode16 for F32Fmt {
    fn byte_of(c: usize) -> usize {
        4 * c
    }
    const READ: usize = 64;
    #[inline(always)]
    unsafe fn load16(row: *const u8, c: usize) -> (__m256, __m256) {
        // SAFETY: the caller guarantees 64 readable bytes at row + 4c; loadu has no alignment need.
        unsafe {
            let p = row.add(4 * c) as *const f32;
            (_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8)))
        }
    }
}

struct Bf16Fmt;
impl Decode16 for Bf16Fmt {
    fn byte_of(c: usize) -> usize {
        2 * c
    }
    const READ: usize = 32;
    #[inline(always)]
    unsafe fn load16(row: *const u8, c: usize) -> (__m256, __m256) {
        // SAFETY: 32 readable bytes at row + 2c (caller); bf16 is the high half of an f32.
        unsafe {
            let p = row.add(2 * c) as *const __m128i;
            let a = _mm256_cvtepu16_epi32(_mm_loadu_si128(p));
            let b = _mm256_cvtepu16_epi32(_mm_loadu_si128(p.add(1)));
            (
                _mm256_castsi256_ps(_mm256_slli_epi32::<16>(a)),
                _mm256_castsi256_ps(_mm256_slli_epi32::<16>(b)),
            )
        }
    }
}

struct F16Fmt;
impl Decode16 for F16Fmt {
    fn byte_of(c: usize) -> usize {
        2 * c
    }
    const READ: usize = 32;
    #[inline(always)]
    unsafe fn load16(row: *const u8, c: usize) -> (__m256, __m256) {
        // SAFETY: 32 readable bytes at row + 2c (caller).
        unsafe {
            let p = row.add(2 * c) as *const __m128i;
            (
                _mm256_cvtph_ps(_mm_loadu_si128(p)),
                _mm256_cvtph_ps(_mm_loadu_si128(p.add(1))),
            )
        }
    }
}

/// Converts 16 f16 bit patterns (one per 16-bit lane) to f32.
#[inline(always)]
unsafe fn cvtph16(h: __m256i) -> (__m256, __m256) {
    // SAFETY: register-only intrinsics; the caller runs with F16C and AVX2.
    unsafe {
        (
            _mm256_cvtph_ps(_mm256_castsi256_si128(h)),
            _mm256_cvtph_ps(_mm256_extracti128_si256::<1>(h)),
        )
    }
}

struct E4m3Fmt;
impl Decode16 for E4m3Fmt {
    fn byte_of(c: usize) -> usize {
        c
    }
    const READ: usize = 16;
    #[inline(always)]
    unsafe fn load16(row: *const u8, c: usize) -> (__m256, __m256) {
        // SAFETY: 16 readable bytes at row + c (caller).
        unsafe {
            let v = _mm_loadu_si128(row.add(c) as *const __m128i);
            // f16 = ((x & 0x80) << 8) | ((x & 0x7F) << 7): sign-extend, shift by 7, clear bit 14.
            let h = _mm256_slli_epi16::<7>(_mm256_cvtepi8_epi16(v));
            cvtph16(_mm256_and_si256(h, _mm256_set1_epi16(0xBFFF_u16 as i16)))
        }
    }
}

struct E5m2Fmt;
impl Decode16 for E5m2Fmt {
    fn byte_of(c: usize) -> usize {
        c
    }
    const READ: usize = 16;
    #[inline(always)]
    unsafe fn load16(row: *const u8, c: usize) -> (__m256, __m256) {
        // SAFETY: 16 readable bytes at row + c (caller). The byte is the high byte of an f16.
        unsafe {
            let v = _mm_loadu_si128(row.add(c) as *const __m128i);
            cvtph16(_mm256_slli_epi16::<8>(_mm256_cvtepu8_epi16(v)))
        }
    }
}

struct E2m1Fmt;
impl Decode16 for E2m1Fmt {
    fn byte_of(c: usize) -> usize {
        c / 2
    }
    const READ: usize = 8;
    #[inline(always)]
    unsafe fn load16(row: *const u8, c: usize) -> (__m256, __m256) {
        // SAFETY: 8 readable bytes at row + c/2 (caller).
        unsafe {
            let v = _mm_loadl_epi64(row.add(c / 2) as *const __m128i);
            let nib = _mm_set1_epi8(0x0F);
            let lo = _mm_and_si128(v, nib);
            let hi = _mm_and_si128(_mm_srli_epi16::<4>(v), nib);
            // Byte j holds element 2j (low nibble) and 2j+1 (high): interleave back to order.
            let codes = _mm_unpacklo_epi8(lo, hi);
            // E2M1 values doubled (ggml's table): 0 0.5 1 1.5 2 3 4 6 -> 0 1 2 3 4 6 8 12.
            let table = _mm_setr_epi8(0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12);
            let vals = _mm_shuffle_epi8(table, codes);
            (
                _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(vals)),
                _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128::<8>(vals))),
            )
        }
    }
}

/// MXFP4 against activations reordered evens-first within each 32 columns
/// ([`deinterleave_blocks`]): the 16 bytes of a block give 16 even elements (low nibbles) and 16 odd
/// ones (high nibbles) with one `pshufb` each and no interleaving shuffle. Partial blocks keep the
/// natural order and go through `load16`.
struct E2m1Deinterleaved;
impl Decode16 for E2m1Deinterleaved {
    fn byte_of(c: usize) -> usize {
        E2m1Fmt::byte_of(c)
    }
    const READ: usize = E2m1Fmt::READ;
    #[inline(always)]
    unsafe fn load16(row: *const u8, c: usize) -> (__m256, __m256) {
        // SAFETY: forwarded from the caller.
        unsafe { E2m1Fmt::load16(row, c) }
    }
    #[inline(always)]
    unsafe fn block_dot<const B: usize, const T: usize>(
        rp: *const u8,
        xp: *const f32,
        k: usize,
        t0: usize,
        c0: usize,
        acc: &mut Accumulators<T>,
    ) {
        // SAFETY: 16 readable bytes per 32 columns at rp + c/2 (caller: a whole block inside the
        // row); x holds tokens t0 .. t0+T of k columns, reordered within this block.
        unsafe {
            let nib = _mm_set1_epi8(0x0F);
            let table = _mm_setr_epi8(0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12);
            let widen = |v: __m128i| {
                (
                    _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v)),
                    _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128::<8>(v))),
                )
            };
            for j in 0..B / 32 {
                let c = c0 + j * 32;
                if j % 4 == 0 {
                    prefetch_ahead(rp, c / 2);
                }
                let v = _mm_loadu_si128(rp.add(c / 2) as *const __m128i);
                let even = _mm_shuffle_epi8(table, _mm_and_si128(v, nib));
                let odd = _mm_shuffle_epi8(table, _mm_and_si128(_mm_srli_epi16::<4>(v), nib));
                let ((e_lo, e_hi), (o_lo, o_hi)) = (widen(even), widen(odd));
                for t in 0..T {
                    let xt = xp.add((t0 + t) * k + c);
                    acc.e0[t] = _mm256_fmadd_ps(e_lo, _mm256_loadu_ps(xt), acc.e0[t]);
                    acc.e1[t] = _mm256_fmadd_ps(e_hi, _mm256_loadu_ps(xt.add(8)), acc.e1[t]);
                    if T <= 2 {
                        acc.o0[t] = _mm256_fmadd_ps(o_lo, _mm256_loadu_ps(xt.add(16)), acc.o0[t]);
                        acc.o1[t] = _mm256_fmadd_ps(o_hi, _mm256_loadu_ps(xt.add(24)), acc.o1[t]);
                    } else {
                        acc.e0[t] = _mm256_fmadd_ps(o_lo, _mm256_loadu_ps(xt.add(16)), acc.e0[t]);
                        acc.e1[t] = _mm256_fmadd_ps(o_hi, _mm256_loadu_ps(xt.add(24)), acc.e1[t]);
                    }
                }
            }
        }
    }
}

/// Copies `x` [m, k] into `buf`, each 32 columns of each token's whole `block`-column blocks
/// reordered as their 16 even columns then their 16 odd ones (the order the deinterleaved decoders
/// read); the last partial block stays as it is. `buf` keeps its capacity between calls: no
/// allocation in steady state.
pub(super) fn deinterleave_blocks(x: &[f32], k: usize, block: usize, buf: &mut Vec<f32>) {
    buf.clear();
    buf.extend_from_slice(x);
    if k == 0 || block == 0 {
        return;
    }
    // Exactly the blocks `full_block` takes: whole blocks inside the 16-column vector part.
    let whole = k / STEP * STEP / block * block;
    for (src, dst) in x.chunks_exact(k).zip(buf.chunks_exact_mut(k)) {
        for (s, d) in src[..whole]
            .chunks_exact(32)
            .zip(dst[..whole].chunks_exact_mut(32))
        {
            for j in 0..16 {
                d[j] = s[2 * j];
                d[16 + j] = s[2 * j + 1];
            }
        }
    }
}

thread_local! {
    /// Per-thread scratch for reordered activations (deinterleaved decoders).
    pub(super) static X_DEINTERLEAVED: std::cell::RefCell<Vec<f32>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// How far ahead of the decode the weights are prefetched. Decode runs below the read bandwidth, so
/// with the hardware streamer alone DRAM latency shows (Zen 4, 64 MB E4M3 matrix, 1 thread, AVX-512:
/// 10 -> 14-16 GB/s at 2 KiB; 4 KiB no better; prefetching whole rows at once was slower; in-cache
/// speed unchanged).
pub(super) const PREFETCH_AHEAD: usize = 2048;

/// Prefetch hint for the byte `PREFETCH_AHEAD` after `rp + offset` (may lie past the matrix: the
/// address is formed with `wrapping_add` and a prefetch never faults).
#[inline(always)]
pub(super) unsafe fn prefetch_ahead(rp: *const u8, offset: usize) {
    // SAFETY: prefetch is a hint that never faults and the pointer is never dereferenced.
    unsafe {
        _mm_prefetch::<_MM_HINT_T0>(rp.wrapping_add(offset + PREFETCH_AHEAD) as *const i8);
    }
}

/// Gathers the 16 six-bit fields of 12 bytes into 16-bit lanes (field j at bit offset 6j of the
/// little-endian stream, docs/layouts.md) and shifts each so that its lowest bit lands on bit `t`.
#[inline(always)]
unsafe fn fp6_fields(row: *const u8, c: usize, mult: __m256i) -> __m256i {
    // SAFETY: 16 readable bytes at row + 3c/4 (caller); 12 of them are used.
    unsafe {
        let v = _mm_loadu_si128(row.add(c / 4 * 3) as *const __m128i);
        let both = _mm256_broadcastsi128_si256(v);
        // Word j of half h takes bytes 6h + [0,0,1,2,3,3,4,5][j] and the byte after it.
        let idx = _mm256_setr_epi8(
            0, 1, 0, 1, 1, 2, 2, 3, 3, 4, 3, 4, 4, 5, 5, 6, //
            6, 7, 6, 7, 7, 8, 8, 9, 9, 10, 9, 10, 10, 11, 11, 12,
        );
        // Field j sits at bit 6j mod 8 = [0,6,4,2] of its word; a multiply by 2^(t - that) aligns it.
        _mm256_mullo_epi16(_mm256_shuffle_epi8(both, idx), mult)
    }
}

struct E3m2Fmt;
impl Decode16 for E3m2Fmt {
    fn byte_of(c: usize) -> usize {
        c / 4 * 3
    }
    const READ: usize = 16;
    #[inline(always)]
    unsafe fn load16(row: *const u8, c: usize) -> (__m256, __m256) {
        // SAFETY: see fp6_fields.
        unsafe {
            // Field to bit 8: magnitude eeemm at bits 8..12 = f16 exponent low bits + mantissa
            // top bits (2^-12 of the value), sign at bit 13 moves to 15.
            let m = _mm256_setr_epi16(
                256, 4, 16, 64, 256, 4, 16, 64, 256, 4, 16, 64, 256, 4, 16, 64,
            );
            let f = fp6_fields(row, c, m);
            let mag = _mm256_and_si256(f, _mm256_set1_epi16(0x1F00));
            let sign = _mm256_slli_epi16::<2>(_mm256_and_si256(f, _mm256_set1_epi16(0x2000)));
            cvtph16(_mm256_or_si256(mag, sign))
        }
    }
}

struct E2m3Fmt;
impl Decode16 for E2m3Fmt {
    fn byte_of(c: usize) -> usize {
        c / 4 * 3
    }
    const READ: usize = 16;
    #[inline(always)]
    unsafe fn load16(row: *const u8, c: usize) -> (__m256, __m256) {
        // SAFETY: see fp6_fields.
        unsafe {
            // Field to bit 7: magnitude eemmm at bits 7..11 (2^-14 of the value), sign 12 -> 15.
            let m = _mm256_setr_epi16(128, 2, 8, 32, 128, 2, 8, 32, 128, 2, 8, 32, 128, 2, 8, 32);
            let f = fp6_fields(row, c, m);
            let mag = _mm256_and_si256(f, _mm256_set1_epi16(0x0F80));
            let sign = _mm256_slli_epi16::<3>(_mm256_and_si256(f, _mm256_set1_epi16(0x1000)));
            cvtph16(_mm256_or_si256(mag, sign))
        }
    }
}

#[inline(always)]
pub(super) unsafe fn hsum(v: __m256) -> f32 {
    // SAFETY: register-only intrinsics under AVX.
    unsafe {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s)
    }
}

/// Everything the generic kernel needs about one matrix besides its decoder.
pub(super) struct Job<'a> {
    pub(super) data: &'a [u8],
    pub(super) row_bytes: usize,
    pub(super) n: usize,
    pub(super) k: usize,
    pub(super) x: &'a [f32],
    pub(super) out: OutPtr,
}

/// `acc0/acc1[t] += w * x[t]` for the 16 columns at `c`.
///
/// # Safety
/// As [`rows_tokens`]; `c + 16 <=` the row's vector limit.
#[inline(always)]
unsafe fn step16<D: Decode16, const T: usize>(
    rp: *const u8,
    xp: *const f32,
    k: usize,
    t0: usize,
    c: usize,
    acc0: &mut [__m256; T],
    acc1: &mut [__m256; T],
) {
    // SAFETY: forwarded from the caller.
    unsafe {
        let (w0, w1) = D::load16(rp, c);
        for t in 0..T {
            let xt = xp.add((t0 + t) * k + c);
            acc0[t] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(xt), acc0[t]);
            acc1[t] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(xt.add(8)), acc1[t]);
        }
    }
}

/// Sum over the `B` columns at `c0` (a whole block inside the vector part) of `w * x[t]`, per token,
/// still in 8 lanes.
///
/// # Safety
/// As [`step16`] for every step of the block.
#[inline(always)]
unsafe fn full_block<D: Decode16, const B: usize, const T: usize>(
    rp: *const u8,
    xp: *const f32,
    k: usize,
    t0: usize,
    c0: usize,
) -> [__m256; T] {
    // SAFETY: forwarded from the caller.
    unsafe {
        let zero = [_mm256_setzero_ps(); T];
        let mut acc = Accumulators {
            e0: zero,
            e1: zero,
            o0: zero,
            o1: zero,
        };
        D::block_dot::<B, T>(rp, xp, k, t0, c0, &mut acc);
        let mut sum = zero;
        for t in 0..T {
            sum[t] = _mm256_add_ps(acc.e0[t], acc.e1[t]);
            if T <= 2 {
                sum[t] = _mm256_add_ps(sum[t], _mm256_add_ps(acc.o0[t], acc.o1[t]));
            }
        }
        sum
    }
}

/// Rows `rows` for tokens `t0 .. t0+T`; `B` columns share a scale (0: the whole row, unscaled).
///
/// # Safety
/// AVX2+FMA+F16C present; `job` describes a validated matrix (`data.len() == n * row_bytes`),
/// `x.len() >= (t0+T) * k`, `rows.end <= n`, `out` covers `(t0+T) * n` floats and no other thread
/// writes these rows.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn rows_tokens<D: Decode16, const B: usize, const T: usize>(
    job: &Job,
    rows: Range<usize>,
    t0: usize,
    scale: &impl Fn(usize, usize) -> f32,
    tail: &impl Fn(&[u8], usize) -> f32,
) {
    let (k, rb) = (job.k, job.row_bytes);
    let block = if B == 0 { k.max(1) } else { B };
    let xp = job.x.as_ptr();
    for r in rows {
        let row_off = r * rb;
        let row = job.data.get(row_off..row_off + rb).unwrap_or(&[]);
        let kv = D::vector_end(row_off, job.data.len(), 0, k);
        // SAFETY (whole block): every pointer below stays inside `job.data` (checked just above and
        // by validation) or inside `x` (t0+T tokens of k columns, caller).
        unsafe {
            let rp = row.as_ptr();
            let zero = [_mm256_setzero_ps(); T];
            // FMA latency (4 cycles) would bind one or two tokens: they get two sets of accumulators
            // (even and odd steps); 3-4 tokens have enough independent chains with one set.
            let split = T <= 2;
            let (mut tot_even, mut tot_odd) = (zero, zero);
            let mut tail_tot = [0f32; T];
            let mut c0 = 0;
            let mut b = 0;
            // Whole blocks inside the vector part: a fixed trip count the compiler unrolls.
            if B != 0 {
                // Pairs of blocks into two running totals: no choice made at run time, so the
                // totals stay in registers.
                while c0 + 2 * B <= kv {
                    let s0 = full_block::<D, B, T>(rp, xp, k, t0, c0);
                    let s1 = full_block::<D, B, T>(rp, xp, k, t0, c0 + B);
                    let sv0 = _mm256_set1_ps(scale(r, b));
                    let sv1 = _mm256_set1_ps(scale(r, b + 1));
                    for t in 0..T {
                        tot_even[t] = _mm256_fmadd_ps(s0[t], sv0, tot_even[t]);
                        tot_odd[t] = _mm256_fmadd_ps(s1[t], sv1, tot_odd[t]);
                    }
                    c0 += 2 * B;
                    b += 2;
                }
                if c0 + B <= kv {
                    let s0 = full_block::<D, B, T>(rp, xp, k, t0, c0);
                    let sv0 = _mm256_set1_ps(scale(r, b));
                    for t in 0..T {
                        tot_even[t] = _mm256_fmadd_ps(s0[t], sv0, tot_even[t]);
                    }
                    c0 += B;
                    b += 1;
                }
            }
            // The rest: the whole row of an unscaled format, or the blocks that reach the tail.
            while c0 < k {
                let c1 = (c0 + block).min(k);
                let cv = c1.min(kv).max(c0);
                let (mut e0, mut e1, mut o0, mut o1) = (zero, zero, zero, zero);
                let mut c = c0;
                while c + 2 * STEP <= cv {
                    step16::<D, T>(rp, xp, k, t0, c, &mut e0, &mut e1);
                    if split {
                        step16::<D, T>(rp, xp, k, t0, c + STEP, &mut o0, &mut o1);
                    } else {
                        step16::<D, T>(rp, xp, k, t0, c + STEP, &mut e0, &mut e1);
                    }
                    c += 2 * STEP;
                }
                if c < cv {
                    step16::<D, T>(rp, xp, k, t0, c, &mut e0, &mut e1);
                }
                let s = if B == 0 { 1.0 } else { scale(r, b) };
                let sv = _mm256_set1_ps(s);
                for t in 0..T {
                    let sum =
                        _mm256_add_ps(_mm256_add_ps(e0[t], e1[t]), _mm256_add_ps(o0[t], o1[t]));
                    tot_even[t] = _mm256_fmadd_ps(sum, sv, tot_even[t]);
                }
                if cv < c1 {
                    let mut part = [0f32; T];
                    for cc in cv..c1 {
                        let v = tail(row, cc);
                        for (t, p) in part.iter_mut().enumerate() {
                            *p += v * *xp.add((t0 + t) * k + cc);
                        }
                    }
                    for t in 0..T {
                        tail_tot[t] += part[t] * s;
                    }
                }
                c0 = c1;
                b += 1;
            }
            for t in 0..T {
                let tot = _mm256_add_ps(tot_even[t], tot_odd[t]);
                job.out.write((t0 + t) * job.n + r, hsum(tot) + tail_tot[t]);
            }
        }
    }
}

/// Row `r`, columns `c0 .. c0 + dst.len()` as f32 with the block scale multiplied in: exactly
/// `f32(q) * S`, the reference dequantization (the decoder's `2^-fold` cancels against the folded
/// scale's `2^fold`, both exact). `c0` is a multiple of the block size and of 16.
///
/// # Safety
/// As [`rows_tokens`] for row `r`; `c0 + dst.len() <= k`.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn decode_span<D: Decode16, const B: usize>(
    job: &Job,
    r: usize,
    c0: usize,
    dst: &mut [f32],
    scale: &impl Fn(usize, usize) -> f32,
    tail: &impl Fn(&[u8], usize) -> f32,
) {
    let row_off = r * job.row_bytes;
    let row = job
        .data
        .get(row_off..row_off + job.row_bytes)
        .unwrap_or(&[]);
    let c1 = c0 + dst.len();
    let cv = D::vector_end(row_off, job.data.len(), c0, c1);
    let block_scale = |c: usize| c.checked_div(B).map_or(1.0, |b| scale(r, b));
    let rp = row.as_ptr();
    let dp = dst.as_mut_ptr();
    let mut c = c0;
    // SAFETY: loads stay inside the row's data (limit above); stores inside dst (c < cv <= c1).
    unsafe {
        while c < cv {
            let sv = _mm256_set1_ps(block_scale(c));
            let (w0, w1) = D::load16(rp, c);
            _mm256_storeu_ps(dp.add(c - c0), _mm256_mul_ps(w0, sv));
            _mm256_storeu_ps(dp.add(c - c0 + 8), _mm256_mul_ps(w1, sv));
            c += STEP;
        }
    }
    for cc in c..c1 {
        dst[cc - c0] = tail(row, cc) * block_scale(cc);
    }
}

/// Walks `rows` in blocks of [`ROW_BLOCK`], each block for all tokens in groups of 4.
///
/// # Safety
/// As [`rows_tokens`] with `x.len() == m * k` and `out` covering `m * n` floats.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn run<D: Decode16, const B: usize>(
    job: &Job,
    m: usize,
    rows: Range<usize>,
    scale: &impl Fn(usize, usize) -> f32,
    tail: &impl Fn(&[u8], usize) -> f32,
    micro: Micro,
) {
    if m >= PANEL_MIN_TOKENS {
        let pj = PanelJob {
            n: job.n,
            k: job.k,
            x: job.x,
            out: job.out,
        };
        // SAFETY: forwarded from the caller (`micro` is AVX2 here, or AVX-512 from avx512.rs
        // after its own detection); decode_span gets rows < n and spans inside k.
        unsafe {
            panel::gemm(micro, &pj, m, rows, &|r, c0, dst| {
                decode_span::<D, B>(job, r, c0, dst, scale, tail)
            })
        };
        return;
    }
    let mut r0 = rows.start;
    while r0 < rows.end {
        let r1 = (r0 + ROW_BLOCK).min(rows.end);
        let mut t0 = 0;
        // SAFETY: forwarded from the caller; token groups stay below m.
        unsafe {
            while t0 + 4 <= m {
                rows_tokens::<D, B, 4>(job, r0..r1, t0, scale, tail);
                t0 += 4;
            }
            match m - t0 {
                3 => rows_tokens::<D, B, 3>(job, r0..r1, t0, scale, tail),
                2 => rows_tokens::<D, B, 2>(job, r0..r1, t0, scale, tail),
                1 => rows_tokens::<D, B, 1>(job, r0..r1, t0, scale, tail),
                _ => {}
            }
        }
        r0 = r1;
    }
}

/// Runs decoder `D` (a deinterleaved one) on activations reordered for blocks of `B`, or the
/// natural-order decoder `N` if this thread's scratch is already in use (cannot happen from the pool).
///
/// # Safety
/// As [`run`].
#[inline(always)]
unsafe fn run_deinterleaved<D: Decode16, N: Decode16, const B: usize>(
    job: &Job,
    m: usize,
    rows: Range<usize>,
    scale: &impl Fn(usize, usize) -> f32,
    tail: &impl Fn(&[u8], usize) -> f32,
    micro: Micro,
) {
    if m >= PANEL_MIN_TOKENS {
        // The panel decodes rows in natural order: no reordered activations.
        // SAFETY: forwarded from the caller.
        return unsafe { run::<N, B>(job, m, rows, scale, tail, micro) };
    }
    X_DEINTERLEAVED.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            deinterleave_blocks(job.x, job.k, B, &mut buf);
            let reordered = Job {
                x: &buf,
                data: job.data,
                row_bytes: job.row_bytes,
                n: job.n,
                k: job.k,
                out: job.out,
            };
            // SAFETY: forwarded from the caller; `buf` has x's shape.
            unsafe { run::<D, B>(&reordered, m, rows, scale, tail, micro) }
        }
        // SAFETY: forwarded from the caller.
        Err(_) => unsafe { run::<N, B>(job, m, rows, scale, tail, micro) },
    })
}

/// 2^k as an f32 for k in [-149, 127].
pub(super) const fn pow2(k: i32) -> f32 {
    if k >= -126 {
        f32::from_bits(((k + 127) as u32) << 23)
    } else {
        f32::from_bits(1u32 << (k + 149))
    }
}

/// `lut[e] = 2^(e - 127 + fold)`, the E8M0 scale with the decoder's constant folded in; NaN for
/// bytes that validation rejects.
const fn folded_e8m0_lut(fold: i32) -> [f32; 256] {
    let mut lut = [f32::NAN; 256];
    let mut e = 0;
    while e < 255 {
        let k = e - 127 + fold;
        if k >= -149 && k <= 127 {
            lut[e as usize] = pow2(k);
        }
        e += 1;
    }
    lut
}

pub(super) static LUT_E4M3: [f32; 256] = folded_e8m0_lut(8);
pub(super) static LUT_E5M2: [f32; 256] = folded_e8m0_lut(0);
pub(super) static LUT_E3M2: [f32; 256] = folded_e8m0_lut(12);
pub(super) static LUT_E2M3: [f32; 256] = folded_e8m0_lut(14);
pub(super) static LUT_E2M1: [f32; 256] = folded_e8m0_lut(-1);

/// `y[t*n + r] = sum_c W[r, c] x[t*k + c]` for `r` in `rows`, `t < m`.
///
/// # Safety
/// The CPU has AVX2, FMA and F16C; `w` is validated; `x.len() == m * k`; `rows.end <= n`; `out`
/// covers `m * n` floats and no other thread writes rows in `rows` concurrently.
pub(crate) unsafe fn matmul_rows<'a>(
    w: &WeightMatrix<'a>,
    x: &'a [f32],
    m: usize,
    rows: Range<usize>,
    out: OutPtr,
) {
    // SAFETY: forwarded from the caller.
    unsafe { matmul_rows_micro(w, x, m, rows, out, Micro::Avx2) }
}

/// [`matmul_rows`] whose batches of [`PANEL_MIN_TOKENS`] or more run the `micro` panel microkernel
/// (avx512.rs sends its batches here with [`Micro::Avx512`]).
///
/// # Safety
/// As [`matmul_rows`]; the CPU has what `micro` needs.
pub(super) unsafe fn matmul_rows_micro<'a>(
    w: &WeightMatrix<'a>,
    x: &'a [f32],
    m: usize,
    rows: Range<usize>,
    out: OutPtr,
    micro: Micro,
) {
    // SAFETY: forwarded from the caller.
    unsafe { per_format(w, x, out, Action::Matmul { m, rows, micro }) }
}

/// Row `r` of `w` dequantized into `dst[..k]` with the vector decoders: bit-identical to the
/// reference (`f32(q) * S`, see [`decode_span`]).
///
/// # Safety
/// The CPU has AVX2, FMA and F16C; `w` is validated; `r < n`; `dst.len() == k`.
pub(crate) unsafe fn dequantize_row(w: &WeightMatrix, r: usize, dst: &mut [f32]) {
    let out = OutPtr::new(&mut []);
    // SAFETY: forwarded from the caller; the Action reads only row r.
    unsafe { per_format(w, &[], out, Action::DequantRow { r, dst }) }
}

/// What [`per_format`] does with the format's decoder.
enum Action<'b> {
    Matmul {
        m: usize,
        rows: Range<usize>,
        micro: Micro,
    },
    DequantRow {
        r: usize,
        dst: &'b mut [f32],
    },
}

/// Runs `action` with decoder `D` and block size `B`.
///
/// # Safety
/// As [`run`] for a matmul, as [`decode_span`] for a row.
#[inline(always)]
unsafe fn act<D: Decode16, const B: usize>(
    job: &Job,
    action: Action,
    scale: &impl Fn(usize, usize) -> f32,
    tail: &impl Fn(&[u8], usize) -> f32,
) {
    // SAFETY: forwarded from the caller.
    unsafe {
        match action {
            Action::Matmul { m, rows, micro } => run::<D, B>(job, m, rows, scale, tail, micro),
            Action::DequantRow { r, dst } => decode_span::<D, B>(job, r, 0, dst, scale, tail),
        }
    }
}

/// Picks the decoder, scale and tail of `w`'s format and runs `action` with them.
///
/// # Safety
/// As [`matmul_rows`] (matmul) or [`dequantize_row`] (row).
unsafe fn per_format<'a>(w: &WeightMatrix<'a>, x: &'a [f32], out: OutPtr, action: Action) {
    let (n, k) = (w.n(), w.k());
    let job = |data: &'a [u8]| Job {
        data,
        row_bytes: w.row_bytes(),
        n,
        k,
        x,
        out,
    };
    let unscaled = |_: usize, _: usize| 1f32;
    // SAFETY (all arms): forwarded from the caller; the Job matches the validated matrix.
    unsafe {
        match *w.data() {
            WeightData::F32(d) => {
                let tail = |row: &[u8], c: usize| {
                    let b = row.get(4 * c..4 * c + 4).unwrap_or(&[0; 4]);
                    f32::from_le_bytes([b[0], b[1], b[2], b[3]])
                };
                act::<F32Fmt, 0>(&job(d), action, &unscaled, &tail)
            }
            WeightData::Bf16(d) => {
                let tail = |row: &[u8], c: usize| {
                    let b = row.get(2 * c..2 * c + 2).unwrap_or(&[0; 2]);
                    half::bf16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32()
                };
                act::<Bf16Fmt, 0>(&job(d), action, &unscaled, &tail)
            }
            WeightData::F16(d) => {
                let tail = |row: &[u8], c: usize| {
                    let b = row.get(2 * c..2 * c + 2).unwrap_or(&[0; 2]);
                    half::f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32()
                };
                act::<F16Fmt, 0>(&job(d), action, &unscaled, &tail)
            }
            WeightData::E4m3Tiles { q, scales } => {
                let tiles_per_row = k.div_ceil(E4M3_TILE);
                let scale = |r: usize, b: usize| {
                    // SAFETY (inside the unsafe block above): validation made scales.len() == ceil(n/128) * tiles_per_row and the
                    // kernels pass r < n, b < tiles_per_row. Validation also checked that
                    // scale * 2^8 (the F16C decode's constant) is finite.
                    *scales.get_unchecked((r / E4M3_TILE) * tiles_per_row + b) * 256.0
                };
                let tail = |row: &[u8], c: usize| {
                    mx_value(MxElement::E4M3, row.get(c).copied().unwrap_or(0)) * pow2(-8)
                };
                act::<E4m3Fmt, E4M3_TILE>(&job(q), action, &scale, &tail)
            }
            WeightData::Mx { elem, data, scales } => {
                let blocks = k.div_ceil(MX_BLOCK);
                let lut: &[f32; 256] = match elem {
                    MxElement::E4M3 => &LUT_E4M3,
                    MxElement::E5M2 => &LUT_E5M2,
                    MxElement::E3M2 => &LUT_E3M2,
                    MxElement::E2M3 => &LUT_E2M3,
                    MxElement::E2M1 => &LUT_E2M1,
                };
                let scale = |r: usize, b: usize| {
                    // SAFETY (inside the unsafe block above): validation made scales.len() == n * blocks; the kernels pass r < n and
                    // b < blocks. Any byte indexes the 256-entry table.
                    lut[usize::from(*scales.get_unchecked(r * blocks + b))]
                };
                let unfold = pow2(-elem.fold_log2());
                let tail = |row: &[u8], c: usize| mx_value(elem, mx_code(elem, row, c)) * unfold;
                let j = job(data);
                match elem {
                    MxElement::E4M3 => act::<E4m3Fmt, MX_BLOCK>(&j, action, &scale, &tail),
                    MxElement::E5M2 => act::<E5m2Fmt, MX_BLOCK>(&j, action, &scale, &tail),
                    MxElement::E3M2 => act::<E3m2Fmt, MX_BLOCK>(&j, action, &scale, &tail),
                    MxElement::E2M3 => act::<E2m3Fmt, MX_BLOCK>(&j, action, &scale, &tail),
                    MxElement::E2M1 => match action {
                        Action::Matmul { m, rows, micro } => {
                            run_deinterleaved::<E2m1Deinterleaved, E2m1Fmt, MX_BLOCK>(
                                &j, m, rows, &scale, &tail, micro,
                            )
                        }
                        // The vector table decodes code 8 (-0) as +0: harmless in a dot product,
                        // not bit-exact for a dequantized row, which takes the reference.
                        Action::DequantRow { r, dst } => {
                            super::reference::dequantize_row_ref(w, r, dst)
                        }
                    },
                }
            }
        }
    }
}
