//! Quality metrics of formats.md section 4, accumulated in f64 and mergeable across threads.

/// Running error statistics of a test tensor against its f32 reference.
///
/// Push pairs with [`ErrorStats::add`] or slices with [`ErrorStats::add_slices`], combine partial
/// results of threads with [`ErrorStats::merge`], then read the metrics. Pairs where either side
/// is NaN or infinite are counted in [`ErrorStats::nonfinite`] and left out of the sums, so one
/// NaN cannot hide the error of a whole tensor.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ErrorStats {
    /// Pairs accumulated into the sums.
    pub count: u64,
    /// Pairs skipped because a value was NaN or infinite.
    pub nonfinite: u64,
    /// Elements the quantizer saturated (added by the caller from its report).
    pub clipped: u64,
    max_abs: f64,
    sum_sq_ref: f64,
    sum_sq_test: f64,
    sum_sq_err: f64,
    sum_dot: f64,
}

impl ErrorStats {
    /// Empty accumulator.
    pub fn new() -> ErrorStats {
        ErrorStats::default()
    }

    /// Statistics of `count` pairs that are bit-identical (zero error), without visiting them.
    pub fn exact(count: u64) -> ErrorStats {
        ErrorStats {
            count,
            ..ErrorStats::default()
        }
    }

    /// Adds one (reference, test) pair.
    #[inline]
    pub fn add(&mut self, reference: f32, test: f32) {
        if !reference.is_finite() || !test.is_finite() {
            self.nonfinite += 1;
            return;
        }
        let (r, t) = (reference as f64, test as f64);
        let e = t - r;
        self.count += 1;
        self.max_abs = self.max_abs.max(e.abs());
        self.sum_sq_ref += r * r;
        self.sum_sq_test += t * t;
        self.sum_sq_err += e * e;
        self.sum_dot += r * t;
    }

    /// Adds every pair of two equally long slices (extra elements of the longer are ignored).
    ///
    /// Eight independent f64 lanes per sum let the compiler vectorize the finite chunks (the hot
    /// path of every conversion report); chunks holding a NaN or inf go through [`ErrorStats::add`].
    /// The sums are reassociated, so they can differ from pair-by-pair adds in the last f64 bits.
    pub fn add_slices(&mut self, reference: &[f32], test: &[f32]) {
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            unsafe { self.add_slices_avx2(reference, test) };
            return;
        }
        self.add_slices_lanes(reference, test);
    }

    /// [`ErrorStats::add_slices`] compiled for AVX2: the same operations in the same order (Rust never
    /// contracts a*b+c into an FMA by itself), so the sums are bit-identical to the baseline build,
    /// with 4-wide f64 vectors instead of 2-wide (the report was a quarter of a conversion's CPU time).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn add_slices_avx2(&mut self, reference: &[f32], test: &[f32]) {
        self.add_slices_lanes(reference, test);
    }

    #[inline(always)]
    fn add_slices_lanes(&mut self, reference: &[f32], test: &[f32]) {
        const LANES: usize = 8;
        let n = reference.len().min(test.len());
        let (r, t) = (&reference[..n], &test[..n]);
        let (mut sr, mut st, mut se, mut sd, mut mx) = (
            [0f64; LANES],
            [0f64; LANES],
            [0f64; LANES],
            [0f64; LANES],
            [0f64; LANES],
        );
        let mut finite_pairs = 0u64;
        let (rc, tc) = (r.chunks_exact(LANES), t.chunks_exact(LANES));
        let (rtail, ttail) = (rc.remainder(), tc.remainder());
        for (a, b) in rc.zip(tc) {
            let nonfinite = a.iter().chain(b).fold(false, |acc, x| {
                acc | (x.to_bits() & 0x7F80_0000 == 0x7F80_0000)
            });
            if nonfinite {
                for (&x, &y) in a.iter().zip(b) {
                    self.add(x, y);
                }
                continue;
            }
            for i in 0..LANES {
                let (x, y) = (a[i] as f64, b[i] as f64);
                let e = y - x;
                sr[i] += x * x;
                st[i] += y * y;
                se[i] += e * e;
                sd[i] += x * y;
                mx[i] = mx[i].max(e.abs());
            }
            finite_pairs += LANES as u64;
        }
        self.count += finite_pairs;
        self.sum_sq_ref += sr.iter().sum::<f64>();
        self.sum_sq_test += st.iter().sum::<f64>();
        self.sum_sq_err += se.iter().sum::<f64>();
        self.sum_dot += sd.iter().sum::<f64>();
        self.max_abs = mx.iter().fold(self.max_abs, |m, &v| m.max(v));
        for (&x, &y) in rtail.iter().zip(ttail) {
            self.add(x, y);
        }
    }

    /// Records `n` saturated elements (from a quantizer's report).
    pub fn add_clipped(&mut self, n: u64) {
        self.clipped += n;
    }

    /// Combines two partial accumulators (order does not matter up to f64 rounding).
    pub fn merge(&mut self, other: &ErrorStats) {
        self.count += other.count;
        self.nonfinite += other.nonfinite;
        self.clipped += other.clipped;
        self.max_abs = self.max_abs.max(other.max_abs);
        self.sum_sq_ref += other.sum_sq_ref;
        self.sum_sq_test += other.sum_sq_test;
        self.sum_sq_err += other.sum_sq_err;
        self.sum_dot += other.sum_dot;
    }

    /// Largest |test - reference|.
    pub fn max_abs(&self) -> f64 {
        self.max_abs
    }

    /// sqrt(mean((test - reference)^2)); 0 when empty.
    pub fn rms(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            (self.sum_sq_err / self.count as f64).sqrt()
        }
    }

    /// 10 log10(sum ref^2 / sum err^2): +inf when the error is zero, -inf when the reference is.
    pub fn snr_db(&self) -> f64 {
        if self.sum_sq_err == 0.0 {
            f64::INFINITY
        } else {
            10.0 * (self.sum_sq_ref / self.sum_sq_err).log10()
        }
    }

    /// Cosine similarity; 1 when both are all-zero, 0 when exactly one is.
    pub fn cosine(&self) -> f64 {
        let denom = (self.sum_sq_ref * self.sum_sq_test).sqrt();
        if denom == 0.0 {
            if self.sum_sq_ref == self.sum_sq_test {
                1.0
            } else {
                0.0
            }
        } else {
            self.sum_dot / denom
        }
    }

    /// Saturated elements / all elements seen (0 when empty).
    pub fn clipped_share(&self) -> f64 {
        let total = self.count + self.nonfinite;
        if total == 0 {
            0.0
        } else {
            self.clipped as f64 / total as f64
        }
    }
}
