//! Prefill matmul (`m >= PANEL_MIN_TOKENS` tokens): decode a panel of weight rows once into f32, then
//! a register-blocked f32 microkernel over it for every group of tokens.
//!
//! The per-token kernels (avx2.rs, avx512.rs) decode each weight for at most 4 tokens and load one
//! activation vector per FMA, so they are bound by loads and decoding, not by the FMA units. Here a
//! panel of [`PANEL_ROWS`] rows x [`PANEL_COLS`] columns is decoded once (the scale multiplied in:
//! exactly `f32(q) * S`, the reference dequantization) into a per-thread buffer that stays in L1/L2,
//! and the microkernel computes 4 rows x 3 tokens at a time (12 accumulators, 7 loads per 12 FMAs:
//! FMA-bound rather than load-bound). Decoding then costs 1/m of a weight per token instead of 1/4.
//!
//! Every output element goes through the same operations whatever its position (row tails use the
//! same 4-row reduction with unused lanes), so results do not depend on how rows are split among
//! threads.

// Token and row loops index several arrays in lockstep.
#![allow(clippy::needless_range_loop)]

use std::arch::x86_64::*;
use std::cell::RefCell;
use std::ops::Range;

use super::OutPtr;

/// Smallest batch that takes the panel path: below it the per-token kernels' decode is amortized
/// well enough and the panel's decode pass does not pay for itself.
pub(super) const PANEL_MIN_TOKENS: usize = 8;
/// Rows decoded into one panel (the pool splits rows in multiples of 16).
const PANEL_ROWS: usize = 16;
/// Columns per panel chunk: 16 rows x 512 f32 = 32 KiB, an L1-sized panel. A multiple of every block
/// size (32, 128), so chunks never split a scale block.
const PANEL_COLS: usize = 512;
/// Rows per microkernel call.
const MICRO_ROWS: usize = 4;
/// Tokens per microkernel call, both instruction sets: 4 x 3 accumulators. With AVX-512, 4 and 6
/// tokens (16 and 24 accumulators) measured slower on this Xeon (1536x576, m = 128, 1 thread: 41
/// GMAC/s at 3 tokens, 38-40 at 4, 19 at 6), so the wider registers buy lanes, not more tokens.
const MICRO_TOKENS: usize = 3;

/// The microkernel's instruction set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Micro {
    /// 8-lane FMA.
    Avx2,
    /// 16-lane FMA.
    Avx512,
}

impl Micro {
    fn lanes(self) -> usize {
        match self {
            Micro::Avx2 => 8,
            Micro::Avx512 => 16,
        }
    }
}

/// Per-thread buffers: the decoded panel and, when k is not a multiple of the lane count, a copy of x
/// with each row zero-padded. They keep their capacity between calls (no allocation in steady state).
#[derive(Default)]
struct Scratch {
    panel: Vec<f32>,
    x_padded: Vec<f32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// What the panel driver needs of one matrix.
pub(super) struct PanelJob<'a> {
    pub(super) n: usize,
    pub(super) k: usize,
    pub(super) x: &'a [f32],
    pub(super) out: OutPtr,
}

/// `y[t*n + r] = sum_c W[r, c] x[t*k + c]` for `r` in `rows`, `t < m`, where
/// `decode(r, c0, dst)` writes `W[r, c0 .. c0 + dst.len()]` as f32 (`c0` a multiple of
/// [`PANEL_COLS`], `c0 + dst.len() <= k`).
///
/// # Safety
/// The CPU has what `micro` needs (AVX2+FMA, or AVX-512 F on top); `x.len() == m * k`;
/// `rows.end <= n`; `out` covers `m * n` floats and no other thread writes rows in `rows`.
pub(super) unsafe fn gemm(
    micro: Micro,
    job: &PanelJob,
    m: usize,
    rows: Range<usize>,
    decode: &impl Fn(usize, usize, &mut [f32]),
) {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        // SAFETY: forwarded from the caller.
        Ok(mut s) => unsafe { gemm_with(micro, job, m, rows, decode, &mut s) },
        // Re-entered on this thread (not possible from the pool): fresh buffers.
        // SAFETY: forwarded from the caller.
        Err(_) => unsafe { gemm_with(micro, job, m, rows, decode, &mut Scratch::default()) },
    })
}

unsafe fn gemm_with(
    micro: Micro,
    job: &PanelJob,
    m: usize,
    rows: Range<usize>,
    decode: &impl Fn(usize, usize, &mut [f32]),
    s: &mut Scratch,
) {
    let (n, k) = (job.n, job.k);
    if rows.is_empty() || m == 0 {
        return;
    }
    let lanes = micro.lanes();
    let kp = k.div_ceil(lanes) * lanes;
    // x rows padded to kp so that the last vector step reads zeros, not the next token.
    let (xs, xstride): (&[f32], usize) = if kp == k {
        (job.x, k)
    } else {
        s.x_padded.clear();
        s.x_padded.resize(m * kp, 0.0);
        for (src, dst) in job.x.chunks_exact(k).zip(s.x_padded.chunks_exact_mut(kp)) {
            dst[..k].copy_from_slice(src);
        }
        (&s.x_padded, kp)
    };
    s.panel.resize(PANEL_ROWS * PANEL_COLS.min(kp), 0.0);
    let panel = &mut s.panel;
    let tokens = MICRO_TOKENS;
    let mut r0 = rows.start;
    while r0 < rows.end {
        let nr = (rows.end - r0).min(PANEL_ROWS);
        let mut c0 = 0;
        while c0 < kp {
            let cw = (kp - c0).min(PANEL_COLS);
            let valid = k.min(c0 + cw) - c0;
            for i in 0..nr {
                let dst = &mut panel[i * cw..(i + 1) * cw];
                decode(r0 + i, c0, &mut dst[..valid]);
                dst[valid..].fill(0.0);
            }
            let first = c0 == 0;
            let mut t0 = 0;
            while t0 < m {
                let tn = (m - t0).min(tokens);
                let mut q0 = 0;
                while q0 < nr {
                    let rn = (nr - q0).min(MICRO_ROWS);
                    // Missing rows of a tail quad re-read the quad's first row; their sums are dropped.
                    let mut wrows = [panel.as_ptr(); MICRO_ROWS];
                    for (i, p) in wrows.iter_mut().enumerate() {
                        let row = q0 + if i < rn { i } else { 0 };
                        *p = panel.as_ptr().wrapping_add(row * cw);
                    }
                    let xp = xs.as_ptr().wrapping_add(t0 * xstride + c0);
                    let mut sums = [[0f32; MICRO_ROWS]; MICRO_TOKENS];
                    // SAFETY: each wrows[i] has cw floats (panel row), x has tn rows of cw floats from
                    // xp (padded to kp), cw is a multiple of the lane count; ISA per the caller.
                    unsafe { micro_dispatch(micro, tn, &wrows, xp, xstride, cw, &mut sums) };
                    for t in 0..tn {
                        for i in 0..rn {
                            let idx = (t0 + t) * n + r0 + q0 + i;
                            // SAFETY: t0 + t < m and r0 + q0 + i < rows.end <= n; this thread owns
                            // the row (caller).
                            unsafe {
                                if first {
                                    job.out.write(idx, sums[t][i]);
                                } else {
                                    job.out.add(idx, sums[t][i]);
                                }
                            }
                        }
                    }
                    q0 += rn;
                }
                t0 += tn;
            }
            c0 += cw;
        }
        r0 += nr;
    }
}

/// # Safety
/// As [`micro_avx2`] / [`micro_avx512`] with `tn` tokens.
unsafe fn micro_dispatch(
    micro: Micro,
    tn: usize,
    w: &[*const f32; MICRO_ROWS],
    x: *const f32,
    xstride: usize,
    cols: usize,
    sums: &mut [[f32; MICRO_ROWS]; MICRO_TOKENS],
) {
    // SAFETY: forwarded from the caller.
    unsafe {
        match micro {
            Micro::Avx2 => match tn {
                1 => micro_avx2::<1>(w, x, xstride, cols, sums),
                2 => micro_avx2::<2>(w, x, xstride, cols, sums),
                _ => micro_avx2::<3>(w, x, xstride, cols, sums),
            },
            Micro::Avx512 => match tn {
                1 => micro_avx512::<1>(w, x, xstride, cols, sums),
                2 => micro_avx512::<2>(w, x, xstride, cols, sums),
                _ => micro_avx512::<3>(w, x, xstride, cols, sums),
            },
        }
    }
}

/// The four row sums of 8-lane accumulators: lane pairs, then pairs of pairs (`hadd`), then the two
/// 128-bit halves. The same tree for every row.
#[inline(always)]
unsafe fn reduce4(a: [__m256; MICRO_ROWS]) -> [f32; MICRO_ROWS] {
    // SAFETY: register-only intrinsics under AVX.
    unsafe {
        let ab = _mm256_hadd_ps(a[0], a[1]);
        let cd = _mm256_hadd_ps(a[2], a[3]);
        let abcd = _mm256_hadd_ps(ab, cd);
        let s = _mm_add_ps(
            _mm256_castps256_ps128(abcd),
            _mm256_extractf128_ps::<1>(abcd),
        );
        let mut out = [0f32; MICRO_ROWS];
        _mm_storeu_ps(out.as_mut_ptr(), s);
        out
    }
}

/// Sums of 4 weight rows x `T` token rows over `cols` columns (a multiple of 8).
///
/// # Safety
/// AVX2 and FMA present; `w[i] .. + cols` and `x + t * xstride .. + cols` (t < T) readable.
#[target_feature(enable = "avx2,fma")]
unsafe fn micro_avx2<const T: usize>(
    w: &[*const f32; MICRO_ROWS],
    x: *const f32,
    xstride: usize,
    cols: usize,
    sums: &mut [[f32; MICRO_ROWS]; MICRO_TOKENS],
) {
    // SAFETY: every load is inside the ranges the caller guarantees.
    unsafe {
        let mut acc = [[_mm256_setzero_ps(); MICRO_ROWS]; T];
        let mut c = 0;
        while c < cols {
            let mut xv = [_mm256_setzero_ps(); T];
            for t in 0..T {
                xv[t] = _mm256_loadu_ps(x.add(t * xstride + c));
            }
            for i in 0..MICRO_ROWS {
                let wv = _mm256_loadu_ps(w[i].add(c));
                for t in 0..T {
                    acc[t][i] = _mm256_fmadd_ps(wv, xv[t], acc[t][i]);
                }
            }
            c += 8;
        }
        for t in 0..T {
            sums[t] = reduce4(acc[t]);
        }
    }
}

/// As [`micro_avx2`] with 16 lanes; `cols` a multiple of 16. The 16 lanes are
/// first folded to 8 (low half + high half), then reduced as in AVX2.
///
/// # Safety
/// AVX-512 F, AVX2 and FMA present; ranges as in [`micro_avx2`].
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn micro_avx512<const T: usize>(
    w: &[*const f32; MICRO_ROWS],
    x: *const f32,
    xstride: usize,
    cols: usize,
    sums: &mut [[f32; MICRO_ROWS]; MICRO_TOKENS],
) {
    // SAFETY: every load is inside the ranges the caller guarantees.
    unsafe {
        let mut acc = [[_mm512_setzero_ps(); MICRO_ROWS]; T];
        let mut c = 0;
        while c < cols {
            let mut xv = [_mm512_setzero_ps(); T];
            for t in 0..T {
                xv[t] = _mm512_loadu_ps(x.add(t * xstride + c));
            }
            for i in 0..MICRO_ROWS {
                let wv = _mm512_loadu_ps(w[i].add(c));
                for t in 0..T {
                    acc[t][i] = _mm512_fmadd_ps(wv, xv[t], acc[t][i]);
                }
            }
            c += 16;
        }
        for t in 0..T {
            let mut half = [_mm256_setzero_ps(); MICRO_ROWS];
            for i in 0..MICRO_ROWS {
                half[i] = _mm256_add_ps(
                    _mm512_castps512_ps256(acc[t][i]),
                    _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(acc[t][i]))),
                );
            }
            sums[t] = reduce4(half);
        }
    }
}
