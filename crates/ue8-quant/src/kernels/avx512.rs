//! AVX-512 (F + BW) versions of the E4M3 block kernels, the two hot loops of the converter and
//! loaders: encode (16 lanes, codes narrowed with `vpmovdb`) and decode (the f16 bit move of
//! formats.md section 5 with `vcvtph2ps` on 16 lanes). Everything else falls back to the AVX2
//! kernels, which every AVX-512 CPU also runs. Same rules and same tail handling as `avx2.rs`.

use std::arch::x86_64::*;
use std::ops::Range;

use half::bf16;

use super::{scalar, ScaleOp};

#[target_feature(enable = "avx512f,avx512bw,avx2,fma,f16c")]
#[inline]
fn apply(op: ScaleOp, x: __m512) -> __m512 {
    match op {
        ScaleOp::MulInv(i) => _mm512_mul_ps(x, _mm512_set1_ps(i)),
        ScaleOp::Div(s) => _mm512_div_ps(x, _mm512_set1_ps(s)),
    }
}

/// Sixteen E4M3 codes of finite scaled values (see `avx2::e4m3_codes` for the method) and the
/// number of lanes above 448.
#[target_feature(enable = "avx512f,avx512bw,avx2,fma,f16c")]
#[inline]
fn e4m3_codes<const CLIP: bool>(x: __m512) -> (__m512i, u32) {
    let xi = _mm512_castps_si512(x);
    let sign = _mm512_and_si512(xi, _mm512_set1_epi32(i32::MIN));
    let mut a = _mm512_castsi512_ps(_mm512_and_si512(xi, _mm512_set1_epi32(0x7FFF_FFFF)));
    let mut clipped = 0;
    if CLIP {
        let max = _mm512_set1_ps(448.0);
        clipped = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(a, max).count_ones();
        a = _mm512_min_ps(a, max);
    }
    let b = _mm512_castps_si512(a);
    let lsb = _mm512_and_si512(_mm512_srli_epi32::<20>(b), _mm512_set1_epi32(1));
    let round_rebias = _mm512_set1_epi32(0x7_FFFFi32.wrapping_sub(960 << 20));
    let code_n = _mm512_srli_epi32::<20>(_mm512_add_epi32(_mm512_add_epi32(b, round_rebias), lsb));
    let is_sub = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(a, _mm512_set1_ps(0.015625));
    let code = if is_sub == 0 {
        code_n
    } else {
        let t = _mm512_add_ps(a, _mm512_set1_ps(16384.0));
        let code_s = _mm512_sub_epi32(_mm512_castps_si512(t), _mm512_set1_epi32(0x4680_0000));
        _mm512_mask_blend_epi32(is_sub, code_n, code_s)
    };
    (
        _mm512_or_si512(code, _mm512_srli_epi32::<24>(sign)),
        clipped,
    )
}

#[target_feature(enable = "avx512f,avx512bw,avx2,fma,f16c")]
#[inline]
unsafe fn encode_e4m3_f32<const CLIP: bool>(src: &[f32], op: ScaleOp, out: &mut [u8]) -> u64 {
    let n = src.len().min(out.len());
    let (src, out) = (&src[..n], &mut out[..n]);
    let mut clipped = 0u64;
    let mut s = src.chunks_exact(16);
    let mut o = out.chunks_exact_mut(16);
    for (c, d) in (&mut s).zip(&mut o) {
        // SAFETY: `c` holds exactly 16 f32 = one 64-byte load.
        let x = unsafe { _mm512_loadu_ps(c.as_ptr()) };
        let (codes, k) = e4m3_codes::<CLIP>(apply(op, x));
        clipped += k as u64;
        // SAFETY: `d` holds exactly 16 bytes.
        unsafe { _mm_storeu_si128(d.as_mut_ptr() as *mut __m128i, _mm512_cvtepi32_epi8(codes)) };
    }
    clipped + scalar::encode_e4m3(s.remainder(), op, o.into_remainder())
}

#[target_feature(enable = "avx512f,avx512bw,avx2,fma,f16c")]
#[inline]
unsafe fn encode_e4m3_bf16<const CLIP: bool>(src: &[bf16], op: ScaleOp, out: &mut [u8]) -> u64 {
    let n = src.len().min(out.len());
    let (src, out) = (&src[..n], &mut out[..n]);
    let mut clipped = 0u64;
    let mut s = src.chunks_exact(16);
    let mut o = out.chunks_exact_mut(16);
    for (c, d) in (&mut s).zip(&mut o) {
        // SAFETY: `c` holds exactly 16 bf16 = one 32-byte load.
        let h = unsafe { _mm256_loadu_si256(c.as_ptr() as *const __m256i) };
        let x = _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(h)));
        let (codes, k) = e4m3_codes::<CLIP>(apply(op, x));
        clipped += k as u64;
        // SAFETY: `d` holds exactly 16 bytes.
        unsafe { _mm_storeu_si128(d.as_mut_ptr() as *mut __m128i, _mm512_cvtepi32_epi8(codes)) };
    }
    clipped + scalar::encode_e4m3(s.remainder(), op, o.into_remainder())
}

/// Encodes columns `cols` of every row of a band (row length `k`) into `q` (same layout).
#[target_feature(enable = "avx512f,avx512bw,avx2,fma,f16c")]
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
#[target_feature(enable = "avx512f,avx512bw,avx2,fma,f16c")]
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

/// Sixteen E4M3 codes (16 bytes) to f32 times `s256` (= scale * 2^8).
#[target_feature(enable = "avx512f,avx512bw,avx2,fma,f16c")]
#[inline]
fn e4m3x16_to_f32(bytes: __m128i, s256: __m512) -> __m512 {
    let w = _mm256_cvtepu8_epi16(bytes);
    let sign = _mm256_slli_epi16::<8>(_mm256_and_si256(w, _mm256_set1_epi16(0x80)));
    let mag = _mm256_slli_epi16::<7>(_mm256_and_si256(w, _mm256_set1_epi16(0x7F)));
    _mm512_mul_ps(_mm512_cvtph_ps(_mm256_or_si256(sign, mag)), s256)
}

/// True if any of the 32 codes is an E4M3 NaN (0x7F / 0xFF): such chunks take the scalar path.
#[target_feature(enable = "avx512f,avx512bw,avx2,fma,f16c")]
#[inline]
fn has_nan_code(v: __m256i) -> bool {
    let m = _mm256_and_si256(v, _mm256_set1_epi8(0x7F));
    _mm256_movemask_epi8(_mm256_cmpeq_epi8(m, _mm256_set1_epi8(0x7F))) != 0
}

/// Sixteen f32 to sixteen bf16, RNE (inputs are never NaN here).
#[target_feature(enable = "avx512f,avx512bw,avx2,fma,f16c")]
#[inline]
fn to_bf16x16(x: __m512) -> __m256i {
    let bits = _mm512_castps_si512(x);
    let lsb = _mm512_and_si512(_mm512_srli_epi32::<16>(bits), _mm512_set1_epi32(1));
    let r = _mm512_add_epi32(_mm512_add_epi32(bits, _mm512_set1_epi32(0x7FFF)), lsb);
    _mm512_cvtepi32_epi16(_mm512_srli_epi32::<16>(r))
}

#[target_feature(enable = "avx512f,avx512bw,avx2,fma,f16c")]
pub(super) unsafe fn decode_e4m3_f32(q: &[u8], s: f32, out: &mut [f32]) {
    let s256 = s * 256.0;
    if !s256.is_finite() {
        return scalar::decode_e4m3_f32(q, s, out);
    }
    let sv = _mm512_set1_ps(s256);
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
        let a = e4m3x16_to_f32(_mm256_castsi256_si128(v), sv);
        let b = e4m3x16_to_f32(_mm256_extracti128_si256::<1>(v), sv);
        let p = d.as_mut_ptr();
        // SAFETY: `d` holds exactly 32 f32 = two 64-byte stores.
        unsafe {
            _mm512_storeu_ps(p, a);
            _mm512_storeu_ps(p.add(16), b);
        }
    }
    scalar::decode_e4m3_f32(qc.remainder(), s, oc.into_remainder());
}

#[target_feature(enable = "avx512f,avx512bw,avx2,fma,f16c")]
pub(super) unsafe fn decode_e4m3_bf16(q: &[u8], s: f32, out: &mut [bf16]) {
    let s256 = s * 256.0;
    if !s256.is_finite() {
        return scalar::decode_e4m3_bf16(q, s, out);
    }
    let sv = _mm512_set1_ps(s256);
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
        let a = to_bf16x16(e4m3x16_to_f32(_mm256_castsi256_si128(v), sv));
        let b = to_bf16x16(e4m3x16_to_f32(_mm256_extracti128_si256::<1>(v), sv));
        let p = d.as_mut_ptr() as *mut __m256i;
        // SAFETY: `d` holds exactly 32 bf16 = two 32-byte stores.
        unsafe {
            _mm256_storeu_si256(p, a);
            _mm256_storeu_si256(p.add(1), b);
        }
    }
    scalar::decode_e4m3_bf16(qc.remainder(), s, oc.into_remainder());
}
