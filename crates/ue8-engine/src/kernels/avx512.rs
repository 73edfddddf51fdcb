//! AVX-512 (F, BW, VL) kernels: the AVX2 kernels' structure with 16-lane registers, chosen at run time
//! where the CPU has them (Zen 4, recent Intel). Decoding is instruction-bound at one token, so fewer
//! instructions per element is what pays: MXFP4, MXFP8 and the E4M3 tiles decode whole blocks against
//! activations reordered evens-first within each 32 columns (one scratch copy of x per call and
//! thread), which removes every nibble and byte-widening shuffle. MXFP6 stays on the AVX2 path.

// Token loops index several per-token arrays (accumulators, x rows) in lockstep.
#![allow(clippy::needless_range_loop)]

use std::arch::x86_64::*;
use std::ops::Range;

use super::avx2::{
    self, deinterleave_blocks, pow2, prefetch_ahead, Job, LUT_E2M1, LUT_E4M3, LUT_E5M2,
    X_DEINTERLEAVED,
};
use super::panel::{Micro, PANEL_MIN_TOKENS};
use super::reference::{mx_code, mx_value};
use super::weights::{MxElement, WeightData, WeightMatrix, E4M3_TILE, MX_BLOCK};
use super::OutPtr;

/// Rows walked together for all token groups (as in the AVX2 kernels).
const ROW_BLOCK: usize = 16;
/// Columns decoded per step: one register.
const STEP: usize = 16;

/// How one weight format decodes 16 elements into one register.
trait Decode16 {
    /// Bytes from the start of a row to column `c` (`c % 16 == 0`).
    fn byte_of(c: usize) -> usize;
    /// Bytes `load16` touches from `byte_of(c)` on.
    const READ: usize;
    /// Elements `c .. c+16` of the row at `row`, each times `2^-fold` (the element's fold).
    ///
    /// # Safety
    /// `row + byte_of(c) .. + READ` readable; AVX-512 F/BW/VL present.
    unsafe fn load16(row: *const u8, c: usize) -> __m512;

    /// Adds `w * x[t]` over the `B` columns at `c0` (a whole block) into the accumulators: even
    /// 16-column steps into `e`, odd ones into `o` for one or two tokens (against FMA latency).
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
        e: &mut [__m512; T],
        o: &mut [__m512; T],
    ) {
        // SAFETY: forwarded from the caller.
        unsafe {
            for j in 0..B / STEP {
                let c = c0 + j * STEP;
                let w = Self::load16(rp, c);
                for t in 0..T {
                    let xv = _mm512_loadu_ps(xp.add((t0 + t) * k + c));
                    if T <= 2 && j % 2 == 1 {
                        o[t] = _mm512_fmadd_ps(w, xv, o[t]);
                    } else {
                        e[t] = _mm512_fmadd_ps(w, xv, e[t]);
                    }
                }
            }
        }
    }
}

struct F32Fmt;
impl Decode16 for F32Fmt {
    fn byte_of(c: usize) -> usize {
        4 * c
    }
    const READ: usize = 64;
    #[inline(always)]
    unsafe fn load16(row: *const u8, c: usize) -> __m512 {
        // SAFETY: 64 readable bytes at row + 4c (caller).
        unsafe { _mm512_loadu_ps(row.add(4 * c) as *const f32) }
    }
}

struct Bf16Fmt;
impl Decode16 for Bf16Fmt {
    fn byte_of(c: usize) -> usize {
        2 * c
    }
    const READ: usize = 32;
    #[inline(always)]
    unsafe fn load16(row: *const u8, c: usize) -> __m512 {
        // SAFETY: 32 readable bytes at row + 2c (caller); bf16 is the high half of an f32.
        unsafe {
            let v = _mm512_cvtepu16_epi32(_mm256_loadu_si256(row.add(2 * c) as *const __m256i));
            _mm512_castsi512_ps(_mm512_slli_epi32::<16>(v))
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
    unsafe fn load16(row: *const u8, c: usize) -> __m512 {
        // SAFETY: 32 readable bytes at row + 2c (caller).
        unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(row.add(2 * c) as *const __m256i)) }
    }
}

struct E4m3Fmt;
impl Decode16 for E4m3Fmt {
    fn byte_of(c: usize) -> usize {
        c
    }
    const READ: usize = 16;
    #[inline(always)]
    unsafe fn load16(row: *const u8, c: usize) -> __m512 {
        // SAFETY: 16 readable bytes at row + c (caller). f16 = ((x & 0x80) << 8) | ((x & 0x7F) << 7)
        // (sign-extend, shift by 7, clear bit 14) is 2^-8 of the E4M3 value, subnormals included.
        unsafe {
            let v = _mm_loadu_si128(row.add(c) as *const __m128i);
            let h = _mm256_slli_epi16::<7>(_mm256_cvtepi8_epi16(v));
            _mm512_cvtph_ps(_mm256_and_si256(h, _mm256_set1_epi16(0xBFFF_u16 as i16)))
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
    unsafe fn load16(row: *const u8, c: usize) -> __m512 {
        // SAFETY: 16 readable bytes at row + c (caller). The byte is the high byte of an f16.
        unsafe {
            let v = _mm_loadu_si128(row.add(c) as *const __m128i);
            _mm512_cvtph_ps(_mm256_slli_epi16::<8>(_mm256_cvtepu8_epi16(v)))
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
    unsafe fn load16(row: *const u8, c: usize) -> __m512 {
        // SAFETY: 8 readable bytes at row + c/2 (caller).
        unsafe {
            let v = _mm_loadl_epi64(row.add(c / 2) as *const __m128i);
            let nib = _mm_set1_epi8(0x0F);
            let lo = _mm_and_si128(v, nib);
            let hi = _mm_and_si128(_mm_srli_epi16::<4>(v), nib);
            // Byte j holds element 2j (low nibble) and 2j+1 (high): back to element order, one
            // code per 32-bit lane, then a 16-entry f32 table (doubled values, as the AVX2 path).
            let codes = _mm512_cvtepu8_epi32(_mm_unpacklo_epi8(lo, hi));
            let table = _mm512_setr_ps(
                0.0, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, //
                -0.0, -1.0, -2.0, -3.0, -4.0, -6.0, -8.0, -12.0,
            );
            _mm512_permutexvar_ps(codes, table)
        }
    }
}

/// MXFP4 against activations whose whole 32-blocks were reordered evens-first (see
/// [`deinterleave_blocks`]): then the 16 bytes of a block give the 16 even elements from their low
/// nibbles and the 16 odd ones from their high nibbles, each with one `vpermps` from a 16-entry
/// table that ignores the index bits above 4, with no nibble shuffling. Half the instructions of
/// [`E2m1Fmt`]. Partial blocks keep the natural order and go through `load16`.
struct E2m1Deinterleaved;
impl Decode16 for E2m1Deinterleaved {
    fn byte_of(c: usize) -> usize {
        E2m1Fmt::byte_of(c)
    }
    const READ: usize = E2m1Fmt::READ;
    #[inline(always)]
    unsafe fn load16(row: *const u8, c: usize) -> __m512 {
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
        e: &mut [__m512; T],
        o: &mut [__m512; T],
    ) {
        // SAFETY: 16 readable bytes per 32 columns at rp + c/2 (caller: a whole block inside the
        // row); x holds tokens t0 .. t0+T of k columns, reordered within this block.
        unsafe {
            let table = _mm512_setr_ps(
                0.0, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, //
                -0.0, -1.0, -2.0, -3.0, -4.0, -6.0, -8.0, -12.0,
            );
            for j in 0..B / 32 {
                let c = c0 + j * 32;
                if j % 2 == 0 {
                    prefetch_ahead(rp, c / 2);
                }
                let bytes = _mm512_cvtepu8_epi32(_mm_loadu_si128(rp.add(c / 2) as *const __m128i));
                let even = _mm512_permutexvar_ps(bytes, table);
                let odd = _mm512_permutexvar_ps(_mm512_srli_epi32::<4>(bytes), table);
                for t in 0..T {
                    let xt = xp.add((t0 + t) * k + c);
                    e[t] = _mm512_fmadd_ps(even, _mm512_loadu_ps(xt), e[t]);
                    if T <= 2 {
                        o[t] = _mm512_fmadd_ps(odd, _mm512_loadu_ps(xt.add(16)), o[t]);
                    } else {
                        e[t] = _mm512_fmadd_ps(odd, _mm512_loadu_ps(xt.add(16)), e[t]);
                    }
                }
            }
        }
    }
}

/// E4M3 (`SIGNED`) or E5M2 against activations reordered evens-first within each 32 columns: 32
/// bytes read as 16 words give the even elements from their low bytes and the odd ones from their
/// high bytes with shifts and masks only, no byte-to-word widening shuffle (the scarce port).
/// E4M3: f16 = sign, 0, 7 magnitude bits (2^-8 of the value, as [`E4m3Fmt`]); E5M2: the byte is the
/// f16's high byte. Partial blocks keep the natural order and go through `load16`.
struct ByteDeinterleaved<D, const SIGNED: bool>(std::marker::PhantomData<D>);
impl<D: Decode16, const SIGNED: bool> Decode16 for ByteDeinterleaved<D, SIGNED> {
    fn byte_of(c: usize) -> usize {
        D::byte_of(c)
    }
    const READ: usize = D::READ;
    #[inline(always)]
    unsafe fn load16(row: *const u8, c: usize) -> __m512 {
        // SAFETY: forwarded from the caller.
        unsafe { D::load16(row, c) }
    }
    #[inline(always)]
    unsafe fn block_dot<const B: usize, const T: usize>(
        rp: *const u8,
        xp: *const f32,
        k: usize,
        t0: usize,
        c0: usize,
        e: &mut [__m512; T],
        o: &mut [__m512; T],
    ) {
        // SAFETY: 32 readable bytes per 32 columns at rp + c (caller: a whole block inside the
        // row); x holds tokens t0 .. t0+T of k columns, reordered within this block.
        unsafe {
            for j in 0..B / 32 {
                let c = c0 + j * 32;
                prefetch_ahead(rp, c);
                let w = _mm256_loadu_si256(rp.add(c) as *const __m256i);
                let (even, odd) = if SIGNED {
                    let keep = _mm256_set1_epi16(0xBF80_u16 as i16);
                    let lo = _mm256_srai_epi16::<1>(_mm256_slli_epi16::<8>(w));
                    let hi = _mm256_srai_epi16::<1>(w);
                    (_mm256_and_si256(lo, keep), _mm256_and_si256(hi, keep))
                } else {
                    let high = _mm256_set1_epi16(0xFF00_u16 as i16);
                    (_mm256_slli_epi16::<8>(w), _mm256_and_si256(w, high))
                };
                let (even, odd) = (_mm512_cvtph_ps(even), _mm512_cvtph_ps(odd));
                for t in 0..T {
                    let xt = xp.add((t0 + t) * k + c);
                    e[t] = _mm512_fmadd_ps(even, _mm512_loadu_ps(xt), e[t]);
                    if T <= 2 {
                        o[t] = _mm512_fmadd_ps(odd, _mm512_loadu_ps(xt.add(16)), o[t]);
                    } else {
                        e[t] = _mm512_fmadd_ps(odd, _mm512_loadu_ps(xt.add(16)), e[t]);
                    }
                }
            }
        }
    }
}

/// Sum over the `B` columns at `c0` (a whole block inside the vector part) of `w * x[t]`, per token.
///
/// # Safety
/// `rp + byte_of(c0 + B - 16) + READ` readable, `x` holds tokens `t0 .. t0+T` of `k` columns,
/// `c0 + B <= k`; AVX-512 F/BW/VL present.
#[inline(always)]
unsafe fn full_block<D: Decode16, const B: usize, const T: usize>(
    rp: *const u8,
    xp: *const f32,
    k: usize,
    t0: usize,
    c0: usize,
) -> [__m512; T] {
    // SAFETY: forwarded from the caller.
    unsafe {
        let zero = [_mm512_setzero_ps(); T];
        let (mut e, mut o) = (zero, zero);
        D::block_dot::<B, T>(rp, xp, k, t0, c0, &mut e, &mut o);
        if T <= 2 {
            for t in 0..T {
                e[t] = _mm512_add_ps(e[t], o[t]);
            }
        }
        e
    }
}

/// Rows `rows` for tokens `t0 .. t0+T`; `B` columns share a scale (0: whole row, unscaled).
///
/// # Safety
/// AVX-512 F/BW/VL present; `job` describes a validated matrix, `x.len() >= (t0+T) * k`,
/// `rows.end <= n`, `out` covers `(t0+T) * n` floats and no other thread writes these rows.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
unsafe fn rows_tokens<D: Decode16, const B: usize, const T: usize>(
    job: &Job,
    rows: Range<usize>,
    t0: usize,
    scale: &impl Fn(usize, usize) -> f32,
    tail: &impl Fn(&[u8], usize) -> f32,
) {
    let (k, rb) = (job.k, job.row_bytes);
    let block = if B == 0 { k.max(1) } else { B };
    let kv_full = k / STEP * STEP;
    let xp = job.x.as_ptr();
    for r in rows {
        let row_off = r * rb;
        let row = job.data.get(row_off..row_off + rb).unwrap_or(&[]);
        let mut kv = kv_full;
        while kv > 0 && row_off + D::byte_of(kv - STEP) + D::READ > job.data.len() {
            kv -= STEP;
        }
        // SAFETY (whole block): pointers stay inside `job.data` (checked above, validation) or
        // inside `x` (t0+T tokens of k columns, caller).
        unsafe {
            let rp = row.as_ptr();
            let zero = [_mm512_setzero_ps(); T];
            // One or two tokens: two accumulator sets (even/odd steps) against FMA latency.
            let split = T <= 2;
            let (mut tot_even, mut tot_odd) = (zero, zero);
            let mut tail_tot = [0f32; T];
            let mut c0 = 0;
            let mut b = 0;
            if B != 0 {
                // Pairs of blocks into two running totals, chosen at compile time (registers).
                while c0 + 2 * B <= kv {
                    let s0 = full_block::<D, B, T>(rp, xp, k, t0, c0);
                    let s1 = full_block::<D, B, T>(rp, xp, k, t0, c0 + B);
                    let sv0 = _mm512_set1_ps(scale(r, b));
                    let sv1 = _mm512_set1_ps(scale(r, b + 1));
                    for t in 0..T {
                        tot_even[t] = _mm512_fmadd_ps(s0[t], sv0, tot_even[t]);
                        tot_odd[t] = _mm512_fmadd_ps(s1[t], sv1, tot_odd[t]);
                    }
                    c0 += 2 * B;
                    b += 2;
                }
                if c0 + B <= kv {
                    let s0 = full_block::<D, B, T>(rp, xp, k, t0, c0);
                    let sv0 = _mm512_set1_ps(scale(r, b));
                    for t in 0..T {
                        tot_even[t] = _mm512_fmadd_ps(s0[t], sv0, tot_even[t]);
                    }
                    c0 += B;
                    b += 1;
                }
            }
            while c0 < k {
                let c1 = (c0 + block).min(k);
                let cv = c1.min(kv).max(c0);
                let (mut e, mut o) = (zero, zero);
                let mut c = c0;
                while c + 2 * STEP <= cv {
                    let w0 = D::load16(rp, c);
                    let w1 = D::load16(rp, c + STEP);
                    for t in 0..T {
                        let xv = xp.add((t0 + t) * k + c);
                        e[t] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(xv), e[t]);
                        if split {
                            o[t] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(xv.add(STEP)), o[t]);
                        } else {
                            e[t] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(xv.add(STEP)), e[t]);
                        }
                    }
                    c += 2 * STEP;
                }
                if c < cv {
                    let w0 = D::load16(rp, c);
                    for t in 0..T {
                        let xv = _mm512_loadu_ps(xp.add((t0 + t) * k + c));
                        e[t] = _mm512_fmadd_ps(w0, xv, e[t]);
                    }
                }
                let s = if B == 0 { 1.0 } else { scale(r, b) };
                let sv = _mm512_set1_ps(s);
                for t in 0..T {
                    tot_even[t] = _mm512_fmadd_ps(_mm512_add_ps(e[t], o[t]), sv, tot_even[t]);
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
                let tot = _mm512_add_ps(tot_even[t], tot_odd[t]);
                let half = _mm256_add_ps(
                    _mm512_castps512_ps256(tot),
                    _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(tot))),
                );
                job.out
                    .write((t0 + t) * job.n + r, avx2::hsum(half) + tail_tot[t]);
            }
        }
    }
}

/// Walks `rows` in blocks of [`ROW_BLOCK`], each for all tokens in groups of 4.
///
/// # Safety
/// As [`rows_tokens`] with `x.len() == m * k` and `out` covering `m * n` floats.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
unsafe fn run<D: Decode16, const B: usize>(
    job: &Job,
    m: usize,
    rows: Range<usize>,
    scale: &impl Fn(usize, usize) -> f32,
    tail: &impl Fn(&[u8], usize) -> f32,
) {
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
) {
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
            unsafe { run::<D, B>(&reordered, m, rows, scale, tail) }
        }
        // SAFETY: forwarded from the caller.
        Err(_) => unsafe { run::<N, B>(job, m, rows, scale, tail) },
    })
}

/// `y[t*n + r] = sum_c W[r, c] x[t*k + c]` for `r` in `rows`, `t < m`.
///
/// # Safety
/// The CPU has AVX-512 F/BW/VL, AVX2, FMA and F16C; otherwise as [`avx2::matmul_rows`].
pub(crate) unsafe fn matmul_rows<'a>(
    w: &WeightMatrix<'a>,
    x: &'a [f32],
    m: usize,
    rows: Range<usize>,
    out: OutPtr,
) {
    if m >= PANEL_MIN_TOKENS {
        // Batches: decoded panel + 16-lane microkernel (panel.rs).
        // SAFETY: forwarded from the caller; this variant runs only where AVX-512 F was detected.
        return unsafe { avx2::matmul_rows_micro(w, x, m, rows, out, Micro::Avx512) };
    }
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
                run::<F32Fmt, 0>(&job(d), m, rows, &unscaled, &tail)
            }
            WeightData::Bf16(d) => {
                let tail = |row: &[u8], c: usize| {
                    let b = row.get(2 * c..2 * c + 2).unwrap_or(&[0; 2]);
                    half::bf16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32()
                };
                run::<Bf16Fmt, 0>(&job(d), m, rows, &unscaled, &tail)
            }
            WeightData::F16(d) => {
                let tail = |row: &[u8], c: usize| {
                    let b = row.get(2 * c..2 * c + 2).unwrap_or(&[0; 2]);
                    half::f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32()
                };
                run::<F16Fmt, 0>(&job(d), m, rows, &unscaled, &tail)
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
                run_deinterleaved::<ByteDeinterleaved<E4m3Fmt, true>, E4m3Fmt, E4M3_TILE>(
                    &job(q),
                    m,
                    rows,
                    &scale,
                    &tail,
                )
            }
            WeightData::Mx { elem, data, scales } => {
                let blocks = k.div_ceil(MX_BLOCK);
                let lut: &[f32; 256] = match elem {
                    MxElement::E4M3 => &LUT_E4M3,
                    MxElement::E5M2 => &LUT_E5M2,
                    MxElement::E2M1 => &LUT_E2M1,
                    MxElement::E3M2 | MxElement::E2M3 => {
                        return avx2::matmul_rows(w, x, m, rows, out);
                    }
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
                    MxElement::E4M3 => {
                        run_deinterleaved::<ByteDeinterleaved<E4m3Fmt, true>, E4m3Fmt, MX_BLOCK>(
                            &j, m, rows, &scale, &tail,
                        )
                    }
                    MxElement::E5M2 => {
                        run_deinterleaved::<ByteDeinterleaved<E5m2Fmt, false>, E5m2Fmt, MX_BLOCK>(
                            &j, m, rows, &scale, &tail,
                        )
                    }
                    _ => run_deinterleaved::<E2m1Deinterleaved, E2m1Fmt, MX_BLOCK>(
                        &j, m, rows, &scale, &tail,
                    ),
                }
            }
        }
    }
}
