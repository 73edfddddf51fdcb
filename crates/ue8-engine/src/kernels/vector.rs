//! f32 vector primitives of attention: dot product, `y += a x`, softmax. The crate is built for the
//! x86-64 baseline (SSE2), so plain loops would not use AVX2/FMA; these dispatch at run time like the
//! matmul kernels ([`Isa::best`]), with the scalar loops as the reference twins.
//!
//! The AVX2 softmax uses a polynomial `exp` (range reduction by ln 2 split in two parts, then a
//! degree-6 polynomial on [-ln2/2, ln2/2], the classic single-precision scheme): within
//! [`EXP_MAX_REL_ERROR`] of the true value, where libm's `expf` is within about 1 ulp. Prefill
//! attention spends a third of its time in `exp` otherwise.

use super::Isa;

/// Largest relative error of the vector `exp` against the exact value, over the inputs softmax
/// gives it ((-inf, 0]): 4 ulp of f32 (2^-21). The scheme is documented at about 2 ulp; the test
/// checks the named bound on a dense sweep.
pub const EXP_MAX_REL_ERROR: f64 = 4.0 / (1u64 << 23) as f64;

fn use_avx2() -> bool {
    matches!(Isa::best(), Isa::Avx2 | Isa::Avx512)
}

/// `sum a[i] b[i]` over the common length.
#[inline]
pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if use_avx2() {
        // SAFETY: AVX2 and FMA were detected (Isa::best).
        return unsafe { avx2::dot(a, b) };
    }
    dot_f32_ref(a, b)
}

/// Scalar twin of [`dot_f32`]: eight running sums, then the tail.
pub fn dot_f32_ref(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

/// `y[i] += a * x[i]` over the common length.
#[inline]
pub fn axpy_f32(y: &mut [f32], a: f32, x: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if use_avx2() {
        // SAFETY: AVX2 and FMA were detected (Isa::best).
        return unsafe { avx2::axpy(y, a, x) };
    }
    axpy_f32_ref(y, a, x)
}

/// Scalar twin of [`axpy_f32`].
pub fn axpy_f32_ref(y: &mut [f32], a: f32, x: &[f32]) {
    for (o, &v) in y.iter_mut().zip(x) {
        *o += a * v;
    }
}

/// Numerically stable in-place softmax (max subtracted first).
pub fn softmax_f32(x: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if use_avx2() {
        // SAFETY: AVX2 and FMA were detected (Isa::best).
        return unsafe { avx2::softmax(x) };
    }
    softmax_f32_ref(x)
}

/// Scalar twin of [`softmax_f32`], with libm's `exp`.
pub fn softmax_f32_ref(x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0f32;
    for v in x.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    let inv = 1.0 / sum;
    for v in x.iter_mut() {
        *v *= inv;
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2 {
    use std::arch::x86_64::*;

    use super::super::avx2::hsum;

    /// # Safety
    /// AVX2 and FMA present.
    #[target_feature(enable = "avx2,fma")]
    pub(crate) unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        // SAFETY: every load is below n, inside both slices.
        unsafe {
            let (mut s0, mut s1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
            let mut i = 0;
            while i + 16 <= n {
                s0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), s0);
                s1 = _mm256_fmadd_ps(
                    _mm256_loadu_ps(pa.add(i + 8)),
                    _mm256_loadu_ps(pb.add(i + 8)),
                    s1,
                );
                i += 16;
            }
            if i + 8 <= n {
                s0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), s0);
                i += 8;
            }
            let mut s = hsum(_mm256_add_ps(s0, s1));
            while i < n {
                s += *pa.add(i) * *pb.add(i);
                i += 1;
            }
            s
        }
    }

    /// # Safety
    /// AVX2 and FMA present.
    #[target_feature(enable = "avx2,fma")]
    pub(crate) unsafe fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
        let n = y.len().min(x.len());
        let (py, px) = (y.as_mut_ptr(), x.as_ptr());
        // SAFETY: every access is below n, inside both slices.
        unsafe {
            let av = _mm256_set1_ps(a);
            let mut i = 0;
            while i + 8 <= n {
                let v = _mm256_fmadd_ps(av, _mm256_loadu_ps(px.add(i)), _mm256_loadu_ps(py.add(i)));
                _mm256_storeu_ps(py.add(i), v);
                i += 8;
            }
            while i < n {
                *py.add(i) += a * *px.add(i);
                i += 1;
            }
        }
    }

    /// `exp` of 8 lanes; inputs below about -87.3 give 0, above 88.7 give +inf, NaN stays NaN.
    ///
    /// # Safety
    /// AVX2 and FMA present.
    #[target_feature(enable = "avx2,fma")]
    pub(crate) unsafe fn exp8(x: __m256) -> __m256 {
        // x = n ln2 + r, |r| <= ln2/2; ln2 split so that n * LN2_HI is exact for |n| < 2^9.
        const LOG2E: f32 = std::f32::consts::LOG2_E;
        const LN2_HI: f32 = 0.693_359_4;
        const LN2_LO: f32 = -2.121_944_4e-4;
        // Minimax coefficients of (e^r - 1 - r) / r^2 on [-ln2/2, ln2/2] (single-precision Cephes).
        const P: [f32; 6] = [
            1.987_569_1e-4,
            1.398_199_9e-3,
            8.333_452e-3,
            4.166_579_6e-2,
            1.666_666_5e-1,
            0.5, // 5.0000001201e-1, which is 0.5 in f32
        ];
        let xc = _mm256_min_ps(x, _mm256_set1_ps(88.7));
        let xc = _mm256_max_ps(xc, _mm256_set1_ps(-87.3));
        let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm256_mul_ps(xc, _mm256_set1_ps(LOG2E)),
        );
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), xc);
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LO), r);
        let mut p = _mm256_set1_ps(P[0]);
        for &c in &P[1..] {
            p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
        }
        let r2 = _mm256_mul_ps(r, r);
        let e = _mm256_add_ps(_mm256_fmadd_ps(p, r2, r), _mm256_set1_ps(1.0));
        // 2^n through the exponent field: n in [-126, 128] after the clamps; 2^128 is split in two
        // factors so that it does not overflow the field.
        let ni = _mm256_cvtps_epi32(n);
        let half = _mm256_srai_epi32::<1>(ni);
        let pow = |k: __m256i| {
            _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(
                k,
                _mm256_set1_epi32(127),
            )))
        };
        let y = _mm256_mul_ps(_mm256_mul_ps(e, pow(half)), pow(_mm256_sub_epi32(ni, half)));
        // Below the clamp the true value is under 2^-126: 0, as softmax wants; above it, +inf.
        let under = _mm256_cmp_ps::<_CMP_LT_OQ>(x, _mm256_set1_ps(-87.3));
        let over = _mm256_cmp_ps::<_CMP_GT_OQ>(x, _mm256_set1_ps(88.7));
        let y = _mm256_andnot_ps(under, y);
        let y = _mm256_blendv_ps(y, _mm256_set1_ps(f32::INFINITY), over);
        // NaN in, NaN out.
        let nan = _mm256_cmp_ps::<_CMP_UNORD_Q>(x, x);
        _mm256_blendv_ps(y, x, nan)
    }

    /// # Safety
    /// AVX2 and FMA present.
    #[target_feature(enable = "avx2,fma")]
    pub(crate) unsafe fn softmax(x: &mut [f32]) {
        let n = x.len();
        let p = x.as_mut_ptr();
        // SAFETY: every access is below n.
        unsafe {
            let mut i = 0;
            let mut mv = _mm256_set1_ps(f32::NEG_INFINITY);
            while i + 8 <= n {
                mv = _mm256_max_ps(mv, _mm256_loadu_ps(p.add(i)));
                i += 8;
            }
            let mut lanes = [0f32; 8];
            _mm256_storeu_ps(lanes.as_mut_ptr(), mv);
            let mut max = lanes.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            for j in i..n {
                max = max.max(*p.add(j));
            }
            let maxv = _mm256_set1_ps(max);
            let mut sv = _mm256_setzero_ps();
            i = 0;
            while i + 8 <= n {
                let e = exp8(_mm256_sub_ps(_mm256_loadu_ps(p.add(i)), maxv));
                _mm256_storeu_ps(p.add(i), e);
                sv = _mm256_add_ps(sv, e);
                i += 8;
            }
            if i < n {
                // The tail through the same exp, padded with -inf (exp = 0).
                let mut t = [f32::NEG_INFINITY; 8];
                for j in i..n {
                    t[j - i] = *p.add(j) - max;
                }
                let e = exp8(_mm256_loadu_ps(t.as_ptr()));
                _mm256_storeu_ps(t.as_mut_ptr(), e);
                for j in i..n {
                    *p.add(j) = t[j - i];
                }
                sv = _mm256_add_ps(sv, e);
            }
            let inv = 1.0 / hsum(sv);
            let invv = _mm256_set1_ps(inv);
            i = 0;
            while i + 8 <= n {
                _mm256_storeu_ps(p.add(i), _mm256_mul_ps(_mm256_loadu_ps(p.add(i)), invv));
                i += 8;
            }
            for j in i..n {
                *p.add(j) *= inv;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rng_vec(n: usize, seed: u64, scale: f32) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
            })
            .collect()
    }

    /// Relative error of an f32 sum of n products against f64 (Higham: gamma(n + 2) * sum |a b|).
    fn dot_bound(a: &[f32], b: &[f32]) -> f64 {
        let u = 1.0 / (1u64 << 24) as f64;
        let g = (a.len() + 2) as f64 * u;
        g / (1.0 - g)
            * a.iter()
                .zip(b)
                .map(|(x, y)| (f64::from(*x) * f64::from(*y)).abs())
                .sum::<f64>()
    }

    #[test]
    fn dot_and_axpy_match_f64_on_edge_lengths() {
        for n in [0usize, 1, 7, 8, 9, 15, 16, 17, 31, 33, 64, 127, 129, 1000] {
            let a = rng_vec(n, 1 + n as u64, 1.5);
            let b = rng_vec(n, 99 + n as u64, 2.0);
            let exact: f64 = a
                .iter()
                .zip(&b)
                .map(|(x, y)| f64::from(*x) * f64::from(*y))
                .sum();
            for (name, got) in [("dot_f32", dot_f32(&a, &b)), ("ref", dot_f32_ref(&a, &b))] {
                let err = (f64::from(got) - exact).abs();
                assert!(err <= dot_bound(&a, &b), "{name} n={n}: {got} vs {exact}");
            }
            let y0 = rng_vec(n, 7 + n as u64, 1.0);
            let (mut y, mut y_ref) = (y0.clone(), y0.clone());
            axpy_f32(&mut y, 0.375, &a);
            axpy_f32_ref(&mut y_ref, 0.375, &a);
            let u = 1.0 / (1u64 << 24) as f64;
            for i in 0..n {
                let prod = 0.375 * f64::from(a[i]);
                let exact = f64::from(y0[i]) + prod;
                // At most two roundings (the product, the sum; FMA has one): u |a x| + u |y + a x|.
                let tol = u * (prod.abs() + exact.abs());
                for (name, got) in [("axpy_f32", y[i]), ("ref", y_ref[i])] {
                    assert!((f64::from(got) - exact).abs() <= tol, "{name} n={n} i={i}");
                }
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn vector_exp_is_within_its_named_bound_and_handles_the_edges() {
        use std::arch::x86_64::*;
        if !(std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma"))
        {
            return;
        }
        let exp8 = |v: [f32; 8]| {
            let mut out = [0f32; 8];
            // SAFETY: AVX2 and FMA detected above.
            unsafe {
                _mm256_storeu_ps(out.as_mut_ptr(), avx2::exp8(_mm256_loadu_ps(v.as_ptr())));
            }
            out
        };
        // Dense sweep of the normal-result range softmax uses, and a bit of the positive side.
        let mut worst = 0f64;
        let mut x = -87.0f32;
        while x < 10.0 {
            let v = [
                x,
                x + 1e-3,
                x + 2e-3,
                x + 3e-3,
                x + 4e-3,
                x + 5e-3,
                x + 6e-3,
                x + 7e-3,
            ];
            for (xi, yi) in v.iter().zip(exp8(v)) {
                let exact = f64::from(*xi).exp();
                worst = worst.max((f64::from(yi) - exact).abs() / exact);
            }
            x += 8e-3;
        }
        assert!(worst <= EXP_MAX_REL_ERROR, "worst relative error {worst}");
        let e = exp8([
            0.0,
            f32::NEG_INFINITY,
            -100.0,
            f32::INFINITY,
            100.0,
            f32::NAN,
            88.0,
            -87.0,
        ]);
        assert_eq!(e[0], 1.0);
        assert_eq!(e[1], 0.0);
        assert_eq!(e[2], 0.0);
        assert_eq!(e[3], f32::INFINITY);
        assert_eq!(e[4], f32::INFINITY);
        assert!(e[5].is_nan());
        assert!(((f64::from(e[6]) - 88f64.exp()) / 88f64.exp()).abs() <= EXP_MAX_REL_ERROR);
        assert!(((f64::from(e[7]) - (-87f64).exp()) / (-87f64).exp()).abs() <= EXP_MAX_REL_ERROR);
    }

    #[test]
    fn softmax_matches_the_f64_softmax_on_edge_lengths() {
        for n in [1usize, 2, 7, 8, 9, 31, 33, 129, 1000] {
            let x = rng_vec(n, 5 + n as u64, 30.0);
            let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let e: Vec<f64> = x
                .iter()
                .map(|v| (f64::from(*v) - f64::from(max)).exp())
                .collect();
            let s: f64 = e.iter().sum();
            let mut got = x.clone();
            softmax_f32(&mut got);
            for (i, (g, w)) in got.iter().zip(&e).enumerate() {
                let want = w / s;
                // exp's bound; the f32 subtraction of the max (an absolute error of |x - max| u
                // in exp's argument, the same relative error in its value); the final scaling
                // (2 roundings) and the f32 sum of n terms (gamma(n)).
                let u = 1.0 / (1u64 << 24) as f64;
                let arg = (f64::from(x[i]) - f64::from(max)).abs();
                let tol = want * (EXP_MAX_REL_ERROR + (arg + n as f64 + 3.0) * u) + 1e-30;
                assert!(
                    (f64::from(*g) - want).abs() <= tol,
                    "n={n} i={i}: {g} vs {want}"
                );
            }
        }
    }
}
