//! Matrix-vector and matrix-matrix kernels for every weight format ue8 loads, plus the persistent
//! thread pool that runs them.
//!
//! `y = x W^T`: W is [n, k] row-major exactly as stored on disk (no dequantized copy), x holds `m`
//! tokens of f32 activations [m, k], y is [m, n]. Kernels are named by operand formats
//! (`gemv_e4m3_f32`, `gemm_mxfp4_f32`, ...) and work on a range of rows so that threads can share a
//! matrix; each has a scalar `*_ref` twin. The instruction set is chosen once per process
//! ([`Isa::best`]): AVX2+FMA+F16C on x86-64, scalar elsewhere. See docs/kernels.md.
//!
//! ```
//! use ue8_engine::kernels::{gemv_bf16_f32, WeightData, WeightMatrix};
//! // W = [[1, 2], [3, 4]] in bf16 little-endian bytes.
//! let bytes: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0]
//!     .iter()
//!     .flat_map(|v| half::bf16::from_f32(*v).to_bits().to_le_bytes())
//!     .collect();
//! let w = WeightMatrix::new(2, 2, WeightData::Bf16(&bytes)).unwrap();
//! let mut y = [0f32; 2];
//! gemv_bf16_f32(&w, &[1.0, 1.0], 0..2, &mut y).unwrap();
//! assert_eq!(y, [3.0, 7.0]);
//! ```

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod error;
mod int8;
#[cfg(target_arch = "x86_64")]
mod int8_x86;
#[cfg(target_arch = "x86_64")]
mod panel;
mod pool;
mod reference;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_int8;
pub mod vector;
mod weights;

use std::ops::Range;
use std::sync::OnceLock;

pub use error::KernelError;
pub use int8::Activations;
pub use pool::{Pool, DEFAULT_SPIN, MATMUL_GROUP_MAX};
pub use vector::{axpy_f32, dot_f32, softmax_f32};
pub use weights::{MxElement, WeightData, WeightMatrix, E4M3_TILE, MX_BLOCK};

/// An instruction set a kernel variant is written for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isa {
    /// Portable scalar code: the `*_ref` twins.
    Scalar,
    /// x86-64 with AVX2, FMA and F16C.
    Avx2,
    /// x86-64 with AVX-512 F, BW and VL on top of AVX2, FMA and F16C.
    Avx512,
}

impl Isa {
    /// Every variant this CPU can run, scalar first.
    pub fn supported() -> Vec<Isa> {
        #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))]
        let mut v = vec![Isa::Scalar];
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("f16c")
        {
            v.push(Isa::Avx2);
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("avx512vl")
            {
                v.push(Isa::Avx512);
            }
        }
        v
    }

    /// The fastest supported variant, detected once per process. `UE8_KERNELS=scalar` or
    /// `UE8_KERNELS=avx2` in the environment caps it (debugging, comparisons).
    pub fn best() -> Isa {
        static BEST: OnceLock<Isa> = OnceLock::new();
        *BEST.get_or_init(|| {
            let cap = std::env::var("UE8_KERNELS")
                .unwrap_or_default()
                .to_ascii_lowercase();
            let supported = Isa::supported();
            let pick = |isa: Isa| supported.contains(&isa).then_some(isa);
            match cap.as_str() {
                "scalar" => Some(Isa::Scalar),
                "avx2" => pick(Isa::Avx2),
                _ => supported.last().copied(),
            }
            .unwrap_or(Isa::Scalar)
        })
    }

    /// Lower-case name for logs and benchmark ids.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }
}

/// A raw view of the output `y` [m, n] that several threads write disjoint elements of.
#[derive(Clone, Copy)]
pub(crate) struct OutPtr {
    ptr: *mut f32,
    len: usize,
}

// SAFETY: threads sharing an OutPtr write disjoint indices (each its own rows of W), and the
// buffer outlives the parallel call (Pool::matmul borrows it mutably for the duration).
unsafe impl Send for OutPtr {}
// SAFETY: as above.
unsafe impl Sync for OutPtr {}

impl OutPtr {
    pub(crate) fn new(y: &mut [f32]) -> Self {
        OutPtr {
            ptr: y.as_mut_ptr(),
            len: y.len(),
        }
    }

    /// # Safety
    /// `i < len`, the buffer is alive, and no other thread writes index `i` concurrently.
    #[inline(always)]
    pub(crate) unsafe fn write(self, i: usize, v: f32) {
        debug_assert!(i < self.len);
        // SAFETY: forwarded from the caller.
        unsafe { *self.ptr.add(i) = v };
    }

    /// Adds `v` to element `i`.
    ///
    /// # Safety
    /// As [`OutPtr::write`], and element `i` was written before.
    #[inline(always)]
    pub(crate) unsafe fn add(self, i: usize, v: f32) {
        debug_assert!(i < self.len);
        // SAFETY: forwarded from the caller.
        unsafe { *self.ptr.add(i) += v };
    }
}

/// Checks `x` [m, k], `y` [m, n] and `rows <= n`.
pub(crate) fn check_shapes(
    kernel: &'static str,
    w: &WeightMatrix,
    x: &[f32],
    m: usize,
    rows: Range<usize>,
    y: &[f32],
) -> Result<(), KernelError> {
    let (n, k) = (w.n(), w.k());
    let err = |what, expected, found| KernelError::Shape {
        kernel,
        what,
        n,
        k,
        m,
        expected,
        found,
    };
    let xs = m
        .checked_mul(k)
        .ok_or(err("x length (m * k overflows)", usize::MAX, x.len()))?;
    if x.len() != xs {
        return Err(err("x length", xs, x.len()));
    }
    let ys = m
        .checked_mul(n)
        .ok_or(err("y length (m * n overflows)", usize::MAX, y.len()))?;
    if y.len() != ys {
        return Err(err("y length", ys, y.len()));
    }
    if rows.start > rows.end || rows.end > n {
        return Err(err("row range end", n, rows.end));
    }
    Ok(())
}

/// Runs the `isa` variant on rows `rows` without checks.
///
/// # Safety
/// `isa` is in [`Isa::supported`]; the shapes pass [`check_shapes`] for `out`'s buffer; no other
/// thread writes rows in `rows` of that buffer concurrently.
pub(crate) unsafe fn matmul_rows_unchecked(
    isa: Isa,
    acts: Activations,
    w: &WeightMatrix,
    x: &[f32],
    m: usize,
    rows: Range<usize>,
    out: OutPtr,
) {
    if acts == Activations::Int8 && is_mxfp4(w) {
        // SAFETY: forwarded from the caller; the matrix is MXFP4.
        return unsafe { int8::mxfp4_int8_rows(isa, w, x, m, rows, out) };
    }
    match isa {
        // SAFETY: forwarded from the caller.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { avx2::matmul_rows(w, x, m, rows, out) },
        // SAFETY: forwarded from the caller.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { avx512::matmul_rows(w, x, m, rows, out) },
        // SAFETY: forwarded from the caller.
        _ => unsafe { reference::matmul_rows_ref(w, x, m, rows, out) },
    }
}

/// `y[t*n + r] = sum_c W[r, c] x[t*k + c]` for `t < m` and `r` in `rows`, with the `isa` variant
/// (scalar if the CPU lacks it). Other elements of `y` are left as they are.
pub fn matmul_rows_with(
    isa: Isa,
    w: &WeightMatrix,
    x: &[f32],
    m: usize,
    rows: Range<usize>,
    y: &mut [f32],
) -> Result<(), KernelError> {
    matmul_rows_act(isa, Activations::F32, w, x, m, rows, y)
}

/// As [`matmul_rows_with`], with activations taken as `acts` says.
pub fn matmul_rows_act(
    isa: Isa,
    acts: Activations,
    w: &WeightMatrix,
    x: &[f32],
    m: usize,
    rows: Range<usize>,
    y: &mut [f32],
) -> Result<(), KernelError> {
    check_shapes("matmul_rows", w, x, m, rows.clone(), y)?;
    let isa = if Isa::supported().contains(&isa) {
        isa
    } else {
        Isa::Scalar
    };
    // SAFETY: shapes checked; `isa` supported; `y` is borrowed mutably, so no other writer.
    unsafe { matmul_rows_unchecked(isa, acts, w, x, m, rows, OutPtr::new(y)) };
    Ok(())
}

/// As [`matmul_rows_with`] with [`Isa::best`], any weight format.
pub fn matmul_rows(
    w: &WeightMatrix,
    x: &[f32],
    m: usize,
    rows: Range<usize>,
    y: &mut [f32],
) -> Result<(), KernelError> {
    matmul_rows_with(Isa::best(), w, x, m, rows, y)
}

/// Row `r` of W dequantized into `out[..k]` (embedding lookups): `f32(q) * S` per element.
pub fn dequantize_row(w: &WeightMatrix, r: usize, out: &mut [f32]) -> Result<(), KernelError> {
    let (n, k) = (w.n(), w.k());
    let err = |what, expected, found| KernelError::Shape {
        kernel: "dequantize_row",
        what,
        n,
        k,
        m: 1,
        expected,
        found,
    };
    if r >= n {
        return Err(err("row index (must be below n)", n, r));
    }
    if out.len() < k {
        return Err(err("out length", k, out.len()));
    }
    match Isa::best() {
        // SAFETY: the ISA was detected; r < n and out[..k] checked above; w is validated.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 | Isa::Avx512 => unsafe { avx2::dequantize_row(w, r, &mut out[..k]) },
        _ => reference::dequantize_row_ref(w, r, out),
    }
    Ok(())
}

macro_rules! named_kernels {
    ($($gemv:ident, $gemm:ident, $gemv_ref:ident, $gemm_ref:ident, $label:literal, $pat:pat_param =>;)*) => {$(
        #[doc = concat!("Decode (one token) over `rows` for ", $label, " weights; `y` is [n].")]
        pub fn $gemv(
            w: &WeightMatrix,
            x: &[f32],
            rows: Range<usize>,
            y: &mut [f32],
        ) -> Result<(), KernelError> {
            $gemm(w, x, 1, rows, y)
        }

        #[doc = concat!("Prefill (`m` tokens) over `rows` for ", $label, " weights; `y` is [m, n].")]
        pub fn $gemm(
            w: &WeightMatrix,
            x: &[f32],
            m: usize,
            rows: Range<usize>,
            y: &mut [f32],
        ) -> Result<(), KernelError> {
            expect_format(stringify!($gemm), w, matches!(w.data(), $pat))?;
            matmul_rows(w, x, m, rows, y)
        }

        #[doc = concat!("Scalar twin of [`", stringify!($gemv), "`].")]
        pub fn $gemv_ref(
            w: &WeightMatrix,
            x: &[f32],
            rows: Range<usize>,
            y: &mut [f32],
        ) -> Result<(), KernelError> {
            $gemm_ref(w, x, 1, rows, y)
        }

        #[doc = concat!("Scalar twin of [`", stringify!($gemm), "`].")]
        pub fn $gemm_ref(
            w: &WeightMatrix,
            x: &[f32],
            m: usize,
            rows: Range<usize>,
            y: &mut [f32],
        ) -> Result<(), KernelError> {
            expect_format(stringify!($gemm_ref), w, matches!(w.data(), $pat))?;
            matmul_rows_with(Isa::Scalar, w, x, m, rows, y)
        }
    )*};
}

/// Decode (one token) over `rows` for MXFP4 weights against int8 activations ([`Activations::Int8`],
/// the rule in int8.rs); `y` is [n].
pub fn gemv_mxfp4_i8(
    w: &WeightMatrix,
    x: &[f32],
    rows: Range<usize>,
    y: &mut [f32],
) -> Result<(), KernelError> {
    gemm_mxfp4_i8(w, x, 1, rows, y)
}

/// Prefill (`m` tokens) over `rows` for MXFP4 weights against int8 activations; `y` is [m, n].
pub fn gemm_mxfp4_i8(
    w: &WeightMatrix,
    x: &[f32],
    m: usize,
    rows: Range<usize>,
    y: &mut [f32],
) -> Result<(), KernelError> {
    expect_format("gemm_mxfp4_i8", w, is_mxfp4(w))?;
    matmul_rows_act(Isa::best(), Activations::Int8, w, x, m, rows, y)
}

/// Scalar twin of [`gemm_mxfp4_i8`]: the same quantized activations and exact block integers, the
/// sum over blocks in f64.
pub fn gemm_mxfp4_i8_ref(
    w: &WeightMatrix,
    x: &[f32],
    m: usize,
    rows: Range<usize>,
    y: &mut [f32],
) -> Result<(), KernelError> {
    expect_format("gemm_mxfp4_i8_ref", w, is_mxfp4(w))?;
    matmul_rows_act(Isa::Scalar, Activations::Int8, w, x, m, rows, y)
}

fn is_mxfp4(w: &WeightMatrix) -> bool {
    int8::mxfp4_parts(w).is_some()
}

fn expect_format(kernel: &'static str, w: &WeightMatrix, ok: bool) -> Result<(), KernelError> {
    if ok {
        Ok(())
    } else {
        Err(KernelError::FormatMismatch {
            kernel,
            found: w.data().format_name(),
        })
    }
}

named_kernels! {
    gemv_f32_f32, gemm_f32_f32, gemv_f32_f32_ref, gemm_f32_f32_ref, "F32", WeightData::F32(_) =>;
    gemv_bf16_f32, gemm_bf16_f32, gemv_bf16_f32_ref, gemm_bf16_f32_ref, "BF16", WeightData::Bf16(_) =>;
    gemv_f16_f32, gemm_f16_f32, gemv_f16_f32_ref, gemm_f16_f32_ref, "F16", WeightData::F16(_) =>;
    gemv_e4m3_f32, gemm_e4m3_f32, gemv_e4m3_f32_ref, gemm_e4m3_f32_ref,
        "DeepSeek 128x128-tile E4M3", WeightData::E4m3Tiles { .. } =>;
    gemv_mxfp4_f32, gemm_mxfp4_f32, gemv_mxfp4_f32_ref, gemm_mxfp4_f32_ref,
        "MXFP4 (E2M1)", WeightData::Mx { elem: MxElement::E2M1, .. } =>;
    gemv_mxfp8_f32, gemm_mxfp8_f32, gemv_mxfp8_f32_ref, gemm_mxfp8_f32_ref,
        "MXFP8 (E4M3 or E5M2)", WeightData::Mx { elem: MxElement::E4M3 | MxElement::E5M2, .. } =>;
    gemv_mxfp6_f32, gemm_mxfp6_f32, gemv_mxfp6_f32_ref, gemm_mxfp6_f32_ref,
        "MXFP6 (E3M2 or E2M3)", WeightData::Mx { elem: MxElement::E3M2 | MxElement::E2M3, .. } =>;
}
