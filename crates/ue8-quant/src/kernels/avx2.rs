//! AVX2 + FMA + F16C versions of the kernel primitives (x86-64 only).
//!
//! Every function here is `unsafe` only because it needs the CPU features; the dispatcher in
//! `mod.rs` calls it after detecting them. Memory is touched through `chunks_exact` slices, so
//! each unaligned load/store reads or writes exactly the bytes of one chunk.

use std::arch::x86_64::*;
use std::ops::Range;

use half::bf16;

use super::{scalar, ScaleOp};
use crate::rules::{e8m0_to_f32, pow2, MxElement, MxScaleRule};

/// Horizontal max of eight u32 lanes.
#[target_feature(enable = "avx2,fma,f16c")]
fn hmax_epu32(v: __m256i) -> u32 {
    let m = _mm_max_epu32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
    let m = _mm_max_epu32(m, _mm_shuffle_epi32::<0b01_00_11_10>(m));
    let m = _mm_max_epu32(m, _mm_shuffle_epi32::<0b10_11_00_01>(m));
    _mm_cvtsi128_si32(m) as u32
}

/// Folds |x| bits of `src` into the lane maxima `m`; returns the scalar max of the tail.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn acc_max_abs_f32(m: &mut __m256i, src: &[f32]) -> u32 {
    let mask = _mm256_set1_epi32(0x7FFF_FFFF);
    let mut chunks = src.chunks_exact(8);
    for c in &mut chunks {
        // SAFETY: `c` holds exactly 8 f32 = one 32-byte load.
        let a = unsafe { _mm256_loadu_si256(c.as_ptr() as *const __m256i) };
        *m = _mm256_max_epu32(*m, _mm256_and_si256(a, mask));
    }
    scalar::max_abs_bits(chunks.remainder())
}

/// As [`acc_max_abs_f32`] for bf16: sixteen u16 lanes of |x| bits.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn acc_max_abs_bf16(m: &mut __m256i, src: &[bf16]) -> u32 {
    let mask = _mm256_set1_epi16(0x7FFF);
    let mut chunks = src.chunks_exact(16);
    for c in &mut chunks {
        // SAFETY: `c` holds exactly 16 bf16 = one 32-byte load.
        let a = unsafe { _mm256_loadu_si256(c.as_ptr() as *const __m256i) };
        *m = _mm256_max_epu16(*m, _mm256_and_si256(a, mask));
    }
    scalar::max_abs_bits(chunks.remainder())
}

/// Horizontal max of sixteen u16 lanes, moved to f32 bit position.
#[target_feature(enable = "avx2,fma,f16c")]
fn hmax_epu16_as_f32_bits(m: __m256i) -> u32 {
    let m = _mm_max_epu16(_mm256_castsi256_si128(m), _mm256_extracti128_si256::<1>(m));
    // _mm_minpos_epu16 finds the minimum: invert to get the maximum.
    let inv = _mm_xor_si128(m, _mm_set1_epi32(-1));
    ((!(_mm_cvtsi128_si32(_mm_minpos_epu16(inv)) as u16)) as u32) << 16
}

/// Max |x| bits over columns `cols` of every row of a row-major band with row length `k`.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn tile_max_abs_bits_f32(src: &[f32], k: usize, cols: Range<usize>) -> u32 {
    let mut m = _mm256_setzero_si256();
    let mut tail = 0;
    for row in src.chunks(k) {
        if let Some(seg) = row.get(cols.clone()) {
            tail = acc_max_abs_f32(&mut m, seg).max(tail);
        }
    }
    hmax_epu32(m).max(tail)
}

/// As [`tile_max_abs_bits_f32`], for bf16.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn tile_max_abs_bits_bf16(src: &[bf16], k: usize, cols: Range<usize>) -> u32 {
    let mut m = _mm256_setzero_si256();
    let mut tail = 0;
    for row in src.chunks(k) {
        if let Some(seg) = row.get(cols.clone()) {
            tail = acc_max_abs_bf16(&mut m, seg).max(tail);
        }
    }
    hmax_epu16_as_f32_bits(m).max(tail)
}

/// Encodes columns `cols` of every row of a band (row length `k`) into `q` (same layout).
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn encode_tile_e4m3_f32(
    src: &[f32],
    k: usize,
    cols: Range<usize>,
    op: ScaleOp,
    may_clip: bool,
    q: &mut [u8],
) -> u64 {
    let mut clipped = 0;
    for (row, qrow) in src.chunks(k).zip(q.chunks_mut(k)) {
        if let (Some(s), Some(d)) = (row.get(cols.clone()), qrow.get_mut(cols.clone())) {
            // SAFETY: same target features as this function.
            clipped += unsafe {
                if may_clip {
                    encode_e4m3_f32::<true>(s, op, d)
                } else {
                    encode_e4m3_f32::<false>(s, op, d)
                }
            };
        }
    }
    clipped
}

/// As [`encode_tile_e4m3_f32`], for bf16.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn encode_tile_e4m3_bf16(
    src: &[bf16],
    k: usize,
    cols: Range<usize>,
    op: ScaleOp,
    may_clip: bool,
    q: &mut [u8],
) -> u64 {
    let mut clipped = 0;
    for (row, qrow) in src.chunks(k).zip(q.chunks_mut(k)) {
        if let (Some(s), Some(d)) = (row.get(cols.clone()), qrow.get_mut(cols.clone())) {
            // SAFETY: same target features as this function.
            clipped += unsafe {
                if may_clip {
                    encode_e4m3_bf16::<true>(s, op, d)
                } else {
                    encode_e4m3_bf16::<false>(s, op, d)
                }
            };
        }
    }
    clipped
}

/// Eight bf16 widened to f32.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn widen_bf16(h: __m128i) -> __m256 {
    _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(h)))
}

#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn apply(op: ScaleOp, x: __m256) -> __m256 {
    match op {
        ScaleOp::MulInv(i) => _mm256_mul_ps(x, _mm256_set1_ps(i)),
        ScaleOp::Div(s) => _mm256_div_ps(x, _mm256_set1_ps(s)),
    }
}

/// E4M3 codes (one per i32 lane) of eight finite scaled values, plus the mask of lanes that
/// exceeded 448. With `CLIP` the magnitudes are clamped to 448 first; without, the caller knows
/// none exceeds it (its tile's scaled amax is <= 448). Normal results: RNE on the f32 bits at
/// mantissa bit 20, then rebias by (127 - 7) << 3 = 960, folded into the rounding constant.
/// Subnormal results (|x| < 2^-6, rare in real tiles, so only computed when a lane needs it):
/// adding 2^14, whose ulp is E4M3's quantum 2^-9, makes the FPU do the RNE; the integer
/// difference is the code.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn e4m3_codes<const CLIP: bool>(x: __m256) -> (__m256i, i32) {
    let xi = _mm256_castps_si256(x);
    let sign = _mm256_and_si256(xi, _mm256_set1_epi32(i32::MIN));
    let mut a = _mm256_castsi256_ps(_mm256_and_si256(xi, _mm256_set1_epi32(0x7FFF_FFFF)));
    let mut clip = 0;
    if CLIP {
        let max = _mm256_set1_ps(448.0);
        clip = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_GT_OQ>(a, max));
        a = _mm256_min_ps(a, max);
    }
    let b = _mm256_castps_si256(a);
    let lsb = _mm256_and_si256(_mm256_srli_epi32::<20>(b), _mm256_set1_epi32(1));
    // (b + 0x7FFFF + lsb) >> 20 is the rounded (exponent, mantissa); minus 960 << 20 rebiases.
    // Lanes below 2^-6 wrap here and are replaced by the subnormal path.
    let round_rebias = _mm256_set1_epi32(0x7_FFFFi32.wrapping_sub(960 << 20));
    let code_n = _mm256_srli_epi32::<20>(_mm256_add_epi32(_mm256_add_epi32(b, round_rebias), lsb));
    let is_sub = _mm256_cmp_ps::<_CMP_LT_OQ>(a, _mm256_set1_ps(0.015625));
    let code = if _mm256_movemask_ps(is_sub) == 0 {
        code_n
    } else {
        let t = _mm256_add_ps(a, _mm256_set1_ps(16384.0));
        let code_s = _mm256_sub_epi32(_mm256_castps_si256(t), _mm256_set1_epi32(0x4680_0000));
        _mm256_blendv_epi8(code_n, code_s, _mm256_castps_si256(is_sub))
    };
    (_mm256_or_si256(code, _mm256_srli_epi32::<24>(sign)), clip)
}

/// Four vectors of eight i32 codes (each 0..=255) to 32 bytes in element order.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn pack_codes(c0: __m256i, c1: __m256i, c2: __m256i, c3: __m256i) -> __m256i {
    let ab = _mm256_packs_epi32(c0, c1);
    let cd = _mm256_packs_epi32(c2, c3);
    let bytes = _mm256_packus_epi16(ab, cd);
    _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7))
}

#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(super) unsafe fn encode_e4m3_f32<const CLIP: bool>(
    src: &[f32],
    op: ScaleOp,
    out: &mut [u8],
) -> u64 {
    let n = src.len().min(out.len());
    let (src, out) = (&src[..n], &mut out[..n]);
    let mut clipped = 0u64;
    let mut s = src.chunks_exact(32);
    let mut o = out.chunks_exact_mut(32);
    for (c, d) in (&mut s).zip(&mut o) {
        let p = c.as_ptr();
        // SAFETY: `c` holds exactly 32 f32.
        let (x0, x1, x2, x3) = unsafe {
            (
                _mm256_loadu_ps(p),
                _mm256_loadu_ps(p.add(8)),
                _mm256_loadu_ps(p.add(16)),
                _mm256_loadu_ps(p.add(24)),
            )
        };
        let (c0, k0) = e4m3_codes::<CLIP>(apply(op, x0));
        let (c1, k1) = e4m3_codes::<CLIP>(apply(op, x1));
        let (c2, k2) = e4m3_codes::<CLIP>(apply(op, x2));
        let (c3, k3) = e4m3_codes::<CLIP>(apply(op, x3));
        clipped += (k0.count_ones() + k1.count_ones() + k2.count_ones() + k3.count_ones()) as u64;
        // SAFETY: `d` holds exactly 32 bytes.
        unsafe { _mm256_storeu_si256(d.as_mut_ptr() as *mut __m256i, pack_codes(c0, c1, c2, c3)) };
    }
    clipped + scalar::encode_e4m3(s.remainder(), op, o.into_remainder())
}

#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(super) unsafe fn encode_e4m3_bf16<const CLIP: bool>(
    src: &[bf16],
    op: ScaleOp,
    out: &mut [u8],
) -> u64 {
    let n = src.len().min(out.len());
    let (src, out) = (&src[..n], &mut out[..n]);
    let mut clipped = 0u64;
    let mut s = src.chunks_exact(32);
    let mut o = out.chunks_exact_mut(32);
    for (c, d) in (&mut s).zip(&mut o) {
        let p = c.as_ptr() as *const __m128i;
        // SAFETY: `c` holds exactly 32 bf16 = four 16-byte loads.
        let (h0, h1, h2, h3) = unsafe {
            (
                _mm_loadu_si128(p),
                _mm_loadu_si128(p.add(1)),
                _mm_loadu_si128(p.add(2)),
                _mm_loadu_si128(p.add(3)),
            )
        };
        let (c0, k0) = e4m3_codes::<CLIP>(apply(op, widen_bf16(h0)));
        let (c1, k1) = e4m3_codes::<CLIP>(apply(op, widen_bf16(h1)));
        let (c2, k2) = e4m3_codes::<CLIP>(apply(op, widen_bf16(h2)));
        let (c3, k3) = e4m3_codes::<CLIP>(apply(op, widen_bf16(h3)));
        clipped += (k0.count_ones() + k1.count_ones() + k2.count_ones() + k3.count_ones()) as u64;
        // SAFETY: `d` holds exactly 32 bytes.
        unsafe { _mm256_storeu_si256(d.as_mut_ptr() as *mut __m256i, pack_codes(c0, c1, c2, c3)) };
    }
    clipped + scalar::encode_e4m3(s.remainder(), op, o.into_remainder())
}

/// Sixteen E4M3 codes (u8 in each u16 lane) to sixteen f32 times `s256` (= scale * 2^8), via the
/// exact E4M3 -> f16 bit move of formats.md section 5.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn e4m3x16_to_f32(w: __m256i, s256: __m256) -> (__m256, __m256) {
    let sign = _mm256_slli_epi16::<8>(_mm256_and_si256(w, _mm256_set1_epi16(0x80)));
    let mag = _mm256_slli_epi16::<7>(_mm256_and_si256(w, _mm256_set1_epi16(0x7F)));
    let h = _mm256_or_si256(sign, mag);
    let lo = _mm256_cvtph_ps(_mm256_castsi256_si128(h));
    let hi = _mm256_cvtph_ps(_mm256_extracti128_si256::<1>(h));
    (_mm256_mul_ps(lo, s256), _mm256_mul_ps(hi, s256))
}

/// True if any of the 32 codes is an E4M3 NaN (0x7F / 0xFF), which the f16 trick would decode
/// as +-480: such chunks take the scalar path.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn has_nan_code(v: __m256i) -> bool {
    let m = _mm256_and_si256(v, _mm256_set1_epi8(0x7F));
    _mm256_movemask_epi8(_mm256_cmpeq_epi8(m, _mm256_set1_epi8(0x7F))) != 0
}

/// `scale * 256` when the fast path is exact for this scale: finite and no overflow.
fn fast_scale(s: f32) -> Option<f32> {
    let s256 = s * 256.0;
    s256.is_finite().then_some(s256)
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn decode_e4m3_f32(q: &[u8], s: f32, out: &mut [f32]) {
    let Some(s256) = fast_scale(s) else {
        return scalar::decode_e4m3_f32(q, s, out);
    };
    let sv = _mm256_set1_ps(s256);
    let n = q.len().min(out.len());
    let (q, out) = (&q[..n], &mut out[..n]);
    let mut qc = q.chunks_exact(32);
    let mut oc = out.chunks_exact_mut(32);
    for (c, d) in (&mut qc).zip(&mut oc) {
        // SAFETY: `c` holds exactly 32 bytes.
        let v = unsafe { _mm256_loadu_si256(c.as_ptr() as *const __m256i) };
        if has_nan_code(v) {
            scalar::decode_e4m3_f32(c, s, d);
            continue;
        }
        let (a, b) = e4m3x16_to_f32(_mm256_cvtepu8_epi16(_mm256_castsi256_si128(v)), sv);
        let (e, f) = e4m3x16_to_f32(_mm256_cvtepu8_epi16(_mm256_extracti128_si256::<1>(v)), sv);
        let p = d.as_mut_ptr();
        // SAFETY: `d` holds exactly 32 f32.
        unsafe {
            _mm256_storeu_ps(p, a);
            _mm256_storeu_ps(p.add(8), b);
            _mm256_storeu_ps(p.add(16), e);
            _mm256_storeu_ps(p.add(24), f);
        }
    }
    scalar::decode_e4m3_f32(qc.remainder(), s, oc.into_remainder());
}

/// Sixteen f32 to sixteen bf16 (RNE; inputs are never NaN here), in element order.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn to_bf16x16(a: __m256, b: __m256) -> __m256i {
    let rne = |x: __m256| {
        let bits = _mm256_castps_si256(x);
        let lsb = _mm256_and_si256(_mm256_srli_epi32::<16>(bits), _mm256_set1_epi32(1));
        let r = _mm256_add_epi32(_mm256_add_epi32(bits, _mm256_set1_epi32(0x7FFF)), lsb);
        _mm256_srli_epi32::<16>(r)
    };
    let packed = _mm256_packus_epi32(rne(a), rne(b));
    _mm256_permute4x64_epi64::<0b11_01_10_00>(packed)
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn decode_e4m3_bf16(q: &[u8], s: f32, out: &mut [bf16]) {
    let Some(s256) = fast_scale(s) else {
        return scalar::decode_e4m3_bf16(q, s, out);
    };
    let sv = _mm256_set1_ps(s256);
    let n = q.len().min(out.len());
    let (q, out) = (&q[..n], &mut out[..n]);
    let mut qc = q.chunks_exact(32);
    let mut oc = out.chunks_exact_mut(32);
    for (c, d) in (&mut qc).zip(&mut oc) {
        // SAFETY: `c` holds exactly 32 bytes.
        let v = unsafe { _mm256_loadu_si256(c.as_ptr() as *const __m256i) };
        if has_nan_code(v) {
            scalar::decode_e4m3_bf16(c, s, d);
            continue;
        }
        let (a, b) = e4m3x16_to_f32(_mm256_cvtepu8_epi16(_mm256_castsi256_si128(v)), sv);
        let (e, f) = e4m3x16_to_f32(_mm256_cvtepu8_epi16(_mm256_extracti128_si256::<1>(v)), sv);
        let p = d.as_mut_ptr() as *mut __m256i;
        // SAFETY: `d` holds exactly 32 bf16 = two 32-byte stores.
        unsafe {
            _mm256_storeu_si256(p, to_bf16x16(a, b));
            _mm256_storeu_si256(p.add(1), to_bf16x16(e, f));
        }
    }
    scalar::decode_e4m3_bf16(qc.remainder(), s, oc.into_remainder());
}

/// E2M1 codes of eight scaled values (RNE, saturating), one per i32 lane: the code of |x| is the
/// number of rounding thresholds it passes; ties go to the even code, hence `>` vs `>=`.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn e2m1_codes(x: __m256) -> __m256i {
    let xi = _mm256_castps_si256(x);
    let a = _mm256_castsi256_ps(_mm256_and_si256(xi, _mm256_set1_epi32(0x7FFF_FFFF)));
    let gt = |t: f32| _mm256_castps_si256(_mm256_cmp_ps::<_CMP_GT_OQ>(a, _mm256_set1_ps(t)));
    let ge = |t: f32| _mm256_castps_si256(_mm256_cmp_ps::<_CMP_GE_OQ>(a, _mm256_set1_ps(t)));
    let mut n = _mm256_add_epi32(gt(0.25), ge(0.75));
    n = _mm256_add_epi32(n, _mm256_add_epi32(gt(1.25), ge(1.75)));
    n = _mm256_add_epi32(n, _mm256_add_epi32(gt(2.5), ge(3.5)));
    n = _mm256_add_epi32(n, gt(5.0));
    let code = _mm256_sub_epi32(_mm256_setzero_si256(), n);
    let sign = _mm256_srli_epi32::<28>(_mm256_and_si256(xi, _mm256_set1_epi32(i32::MIN)));
    _mm256_or_si256(code, sign)
}

/// Quantizes one full 32-value MXFP4 block given as four f32 vectors.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn mxfp4_block(rule: MxScaleRule, x: [__m256; 4], packed: &mut [u8]) -> u8 {
    let mask = _mm256_set1_epi32(0x7FFF_FFFF);
    let abs = |v: __m256| _mm256_and_si256(_mm256_castps_si256(v), mask);
    let m = _mm256_max_epu32(
        _mm256_max_epu32(abs(x[0]), abs(x[1])),
        _mm256_max_epu32(abs(x[2]), abs(x[3])),
    );
    let amax_bits = hmax_epu32(m);
    if amax_bits >= 0x7F80_0000 {
        packed.fill(0);
        return 0xFF;
    }
    let byte = rule.scale_byte(MxElement::E2M1, f32::from_bits(amax_bits));
    let inv = _mm256_set1_ps(pow2(127 - byte as i32));
    let codes = pack_codes(
        e2m1_codes(_mm256_mul_ps(x[0], inv)),
        e2m1_codes(_mm256_mul_ps(x[1], inv)),
        e2m1_codes(_mm256_mul_ps(x[2], inv)),
        e2m1_codes(_mm256_mul_ps(x[3], inv)),
    );
    // 32 codes in bytes -> 16 bytes, element 2i in the low nibble: within each u16 lane the
    // even element is the low byte, so (lane & 0xF) | (lane >> 4 & 0xF0) then pack.
    let lo = _mm256_and_si256(codes, _mm256_set1_epi16(0x000F));
    let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(codes), _mm256_set1_epi16(0x00F0));
    let nib = _mm256_or_si256(lo, hi);
    let packed16 = _mm_packus_epi16(
        _mm256_castsi256_si128(nib),
        _mm256_extracti128_si256::<1>(nib),
    );
    let mut tmp = [0u8; 16];
    // SAFETY: `tmp` is 16 bytes.
    unsafe { _mm_storeu_si128(tmp.as_mut_ptr() as *mut __m128i, packed16) };
    packed.copy_from_slice(&tmp[..packed.len().min(16)]);
    byte
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn mxfp4_quantize_row_f32(
    rule: MxScaleRule,
    src: &[f32],
    blocks: &mut [u8],
    scales: &mut [u8],
) {
    let full = src.len() / 32;
    for ((c, packed), scale) in src
        .chunks_exact(32)
        .zip(blocks.chunks_exact_mut(16))
        .zip(scales.iter_mut())
    {
        let p = c.as_ptr();
        // SAFETY: `c` holds exactly 32 f32.
        let x = unsafe {
            [
                _mm256_loadu_ps(p),
                _mm256_loadu_ps(p.add(8)),
                _mm256_loadu_ps(p.add(16)),
                _mm256_loadu_ps(p.add(24)),
            ]
        };
        *scale = mxfp4_block(rule, x, packed);
    }
    if let (Some(b), Some(s)) = (blocks.get_mut(full * 16..), scales.get_mut(full..)) {
        scalar::mxfp4_quantize_row(rule, &src[full * 32..], b, s);
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn mxfp4_quantize_row_bf16(
    rule: MxScaleRule,
    src: &[bf16],
    blocks: &mut [u8],
    scales: &mut [u8],
) {
    let full = src.len() / 32;
    for ((c, packed), scale) in src
        .chunks_exact(32)
        .zip(blocks.chunks_exact_mut(16))
        .zip(scales.iter_mut())
    {
        let p = c.as_ptr() as *const __m128i;
        // SAFETY: `c` holds exactly 32 bf16 = four 16-byte loads.
        let x = unsafe {
            [
                widen_bf16(_mm_loadu_si128(p)),
                widen_bf16(_mm_loadu_si128(p.add(1))),
                widen_bf16(_mm_loadu_si128(p.add(2))),
                widen_bf16(_mm_loadu_si128(p.add(3))),
            ]
        };
        *scale = mxfp4_block(rule, x, packed);
    }
    if let (Some(b), Some(s)) = (blocks.get_mut(full * 16..), scales.get_mut(full..)) {
        scalar::mxfp4_quantize_row(rule, &src[full * 32..], b, s);
    }
}

/// 32 f32 values of one packed MXFP4 block (scale byte not 0xFF). Magnitudes come from ggml's
/// doubled integer table by `pshufb`, times X/2 (exact: at most 2 significant bits times a power
/// of two); the sign is OR-ed in from bit 3 so code 8 gives -0.0 as the scalar decode does.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn mxfp4_block_f32(packed: __m128i, half_x: f32) -> [__m256; 4] {
    let lo = _mm_and_si128(packed, _mm_set1_epi8(0x0F));
    let hi = _mm_and_si128(_mm_srli_epi16::<4>(packed), _mm_set1_epi8(0x0F));
    let first = _mm_unpacklo_epi8(lo, hi); // elements 0..16
    let second = _mm_unpackhi_epi8(lo, hi); // elements 16..32
    let table = _mm_setr_epi8(0, 1, 2, 3, 4, 6, 8, 12, 0, 1, 2, 3, 4, 6, 8, 12);
    let hx = _mm256_set1_ps(half_x);
    let eight = |codes: __m128i| {
        let c = _mm256_cvtepu8_epi32(codes);
        let mag = _mm256_cvtepu8_epi32(_mm_shuffle_epi8(table, codes));
        let v = _mm256_mul_ps(_mm256_cvtepi32_ps(mag), hx);
        let sign = _mm256_slli_epi32::<28>(_mm256_and_si256(c, _mm256_set1_epi32(8)));
        _mm256_castsi256_ps(_mm256_or_si256(_mm256_castps_si256(v), sign))
    };
    [
        eight(first),
        eight(_mm_srli_si128::<8>(first)),
        eight(second),
        eight(_mm_srli_si128::<8>(second)),
    ]
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn mxfp4_dequantize_row_f32(blocks: &[u8], scales: &[u8], out: &mut [f32]) {
    let full = out.len() / 32;
    for ((b, &scale), d) in blocks
        .chunks_exact(16)
        .zip(scales)
        .zip(out.chunks_exact_mut(32))
    {
        if scale == 0xFF {
            scalar::mxfp4_dequantize_row(b, &[scale], d, |v| v);
            continue;
        }
        // SAFETY: `b` holds exactly 16 bytes.
        let packed = unsafe { _mm_loadu_si128(b.as_ptr() as *const __m128i) };
        let v = mxfp4_block_f32(packed, e8m0_to_f32(scale) * 0.5);
        let p = d.as_mut_ptr();
        // SAFETY: `d` holds exactly 32 f32.
        unsafe {
            _mm256_storeu_ps(p, v[0]);
            _mm256_storeu_ps(p.add(8), v[1]);
            _mm256_storeu_ps(p.add(16), v[2]);
            _mm256_storeu_ps(p.add(24), v[3]);
        }
    }
    if let (Some(b), Some(s), Some(o)) = (
        blocks.get(full * 16..),
        scales.get(full..),
        out.get_mut(full * 32..),
    ) {
        scalar::mxfp4_dequantize_row(b, s, o, |v| v);
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn mxfp4_dequantize_row_bf16(blocks: &[u8], scales: &[u8], out: &mut [bf16]) {
    let full = out.len() / 32;
    for ((b, &scale), d) in blocks
        .chunks_exact(16)
        .zip(scales)
        .zip(out.chunks_exact_mut(32))
    {
        if scale == 0xFF {
            scalar::mxfp4_dequantize_row(b, &[scale], d, bf16::from_f32);
            continue;
        }
        // SAFETY: `b` holds exactly 16 bytes.
        let packed = unsafe { _mm_loadu_si128(b.as_ptr() as *const __m128i) };
        let v = mxfp4_block_f32(packed, e8m0_to_f32(scale) * 0.5);
        let p = d.as_mut_ptr() as *mut __m256i;
        // SAFETY: `d` holds exactly 32 bf16 = two 32-byte stores.
        unsafe {
            _mm256_storeu_si256(p, to_bf16x16(v[0], v[1]));
            _mm256_storeu_si256(p.add(1), to_bf16x16(v[2], v[3]));
        }
    }
    if let (Some(b), Some(s), Some(o)) = (
        blocks.get(full * 16..),
        scales.get(full..),
        out.get_mut(full * 32..),
    ) {
        scalar::mxfp4_dequantize_row(b, s, o, bf16::from_f32);
    }
}

/// One full 32-value MX block of E4M3 or E2M1 elements into 32 unpacked codes; `None` when the
/// block holds NaN or inf (the caller takes the scalar path, which writes scale 0xFF).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn mx_block_codes(
    elem: MxElement,
    rule: MxScaleRule,
    x: [__m256; 4],
    codes: &mut [u8],
) -> Option<(u8, u32)> {
    let mask = _mm256_set1_epi32(0x7FFF_FFFF);
    let abs = |v: __m256| _mm256_and_si256(_mm256_castps_si256(v), mask);
    let m = _mm256_max_epu32(
        _mm256_max_epu32(abs(x[0]), abs(x[1])),
        _mm256_max_epu32(abs(x[2]), abs(x[3])),
    );
    let amax_bits = hmax_epu32(m);
    if amax_bits >= 0x7F80_0000 {
        return None;
    }
    let byte = rule.scale_byte(elem, f32::from_bits(amax_bits));
    let inv = _mm256_set1_ps(pow2(127 - byte as i32));
    let y = [
        _mm256_mul_ps(x[0], inv),
        _mm256_mul_ps(x[1], inv),
        _mm256_mul_ps(x[2], inv),
        _mm256_mul_ps(x[3], inv),
    ];
    let (c, clipped) = if elem == MxElement::E4M3 {
        let (c0, k0) = e4m3_codes::<true>(y[0]);
        let (c1, k1) = e4m3_codes::<true>(y[1]);
        let (c2, k2) = e4m3_codes::<true>(y[2]);
        let (c3, k3) = e4m3_codes::<true>(y[3]);
        let k = k0.count_ones() + k1.count_ones() + k2.count_ones() + k3.count_ones();
        (pack_codes(c0, c1, c2, c3), k)
    } else {
        let six = _mm256_set1_ps(6.0);
        let clip = |v: __m256| {
            let a = _mm256_castsi256_ps(abs(v));
            _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_GT_OQ>(a, six)).count_ones()
        };
        let k = clip(y[0]) + clip(y[1]) + clip(y[2]) + clip(y[3]);
        let c = pack_codes(
            e2m1_codes(y[0]),
            e2m1_codes(y[1]),
            e2m1_codes(y[2]),
            e2m1_codes(y[3]),
        );
        (c, k)
    };
    if codes.len() == 32 {
        // SAFETY: `codes` holds exactly 32 bytes.
        unsafe { _mm256_storeu_si256(codes.as_mut_ptr() as *mut __m256i, c) };
    }
    Some((byte, clipped))
}

/// One row of MX E4M3 or E2M1 into unpacked codes and scale bytes; (clipped, non-finite).
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn mx_quantize_row_f32(
    elem: MxElement,
    rule: MxScaleRule,
    src: &[f32],
    codes: &mut [u8],
    scales: &mut [u8],
) -> (u64, u64) {
    let (mut clipped, mut nonfinite) = (0u64, 0u64);
    let full = src.len() / 32;
    for ((c, out), scale) in src
        .chunks_exact(32)
        .zip(codes.chunks_exact_mut(32))
        .zip(scales.iter_mut())
    {
        let p = c.as_ptr();
        // SAFETY: `c` holds exactly 32 f32.
        let x = unsafe {
            [
                _mm256_loadu_ps(p),
                _mm256_loadu_ps(p.add(8)),
                _mm256_loadu_ps(p.add(16)),
                _mm256_loadu_ps(p.add(24)),
            ]
        };
        match mx_block_codes(elem, rule, x, out) {
            Some((byte, k)) => {
                *scale = byte;
                clipped += k as u64;
            }
            None => {
                let (k, nf) =
                    scalar::mx_quantize_row(elem, rule, c, out, std::slice::from_mut(scale));
                clipped += k;
                nonfinite += nf;
            }
        }
    }
    if let (Some(c), Some(s)) = (codes.get_mut(full * 32..), scales.get_mut(full..)) {
        let (k, nf) = scalar::mx_quantize_row(elem, rule, &src[full * 32..], c, s);
        clipped += k;
        nonfinite += nf;
    }
    (clipped, nonfinite)
}

/// As [`mx_quantize_row_f32`], for bf16.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn mx_quantize_row_bf16(
    elem: MxElement,
    rule: MxScaleRule,
    src: &[bf16],
    codes: &mut [u8],
    scales: &mut [u8],
) -> (u64, u64) {
    let (mut clipped, mut nonfinite) = (0u64, 0u64);
    let full = src.len() / 32;
    for ((c, out), scale) in src
        .chunks_exact(32)
        .zip(codes.chunks_exact_mut(32))
        .zip(scales.iter_mut())
    {
        let p = c.as_ptr() as *const __m128i;
        // SAFETY: `c` holds exactly 32 bf16 = four 16-byte loads.
        let x = unsafe {
            [
                widen_bf16(_mm_loadu_si128(p)),
                widen_bf16(_mm_loadu_si128(p.add(1))),
                widen_bf16(_mm_loadu_si128(p.add(2))),
                widen_bf16(_mm_loadu_si128(p.add(3))),
            ]
        };
        match mx_block_codes(elem, rule, x, out) {
            Some((byte, k)) => {
                *scale = byte;
                clipped += k as u64;
            }
            None => {
                let (k, nf) =
                    scalar::mx_quantize_row(elem, rule, c, out, std::slice::from_mut(scale));
                clipped += k;
                nonfinite += nf;
            }
        }
    }
    if let (Some(c), Some(s)) = (codes.get_mut(full * 32..), scales.get_mut(full..)) {
        let (k, nf) = scalar::mx_quantize_row(elem, rule, &src[full * 32..], c, s);
        clipped += k;
        nonfinite += nf;
    }
    (clipped, nonfinite)
}
