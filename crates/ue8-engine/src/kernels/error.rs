//! Errors of the matmul kernels. They are raised once, when a weight matrix is wrapped at load time or
//! when a caller hands a kernel buffers of the wrong size; the kernels themselves never fail.

/// What is wrong with a weight matrix or with the buffers handed to a kernel.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum KernelError {
    /// `n * k` (or a derived byte count) does not fit in `usize`.
    #[error("weight matrix [{n}, {k}]: size overflows usize")]
    SizeOverflow { n: usize, k: usize },
    /// The element bytes of a weight matrix have the wrong length.
    #[error(
        "weight matrix [{n}, {k}] ({format}): {what} holds {found} bytes, expected {expected}"
    )]
    DataLength {
        n: usize,
        k: usize,
        format: &'static str,
        what: &'static str,
        expected: usize,
        found: usize,
    },
    /// The scale array of a block-quantized matrix has the wrong number of entries.
    #[error("weight matrix [{n}, {k}] ({format}): {found} scales, expected {expected}")]
    ScaleCount {
        n: usize,
        k: usize,
        format: &'static str,
        expected: usize,
        found: usize,
    },
    /// A scale the kernels cannot apply exactly: NaN/inf, an E8M0 NaN byte (0xFF), or a magnitude so
    /// large that folding the decode constant (up to 2^14, formats.md section 5) would overflow f32.
    /// No real checkpoint comes near: the limit corresponds to weights beyond 2^113.
    #[error(
        "weight matrix [{n}, {k}] ({format}): scale #{index} = {value} is not usable ({problem})"
    )]
    BadScale {
        n: usize,
        k: usize,
        format: &'static str,
        index: usize,
        value: f32,
        problem: &'static str,
    },
    /// A kernel named for one weight format was called on a matrix of another.
    #[error("kernel {kernel} called on a {found} weight matrix")]
    FormatMismatch {
        kernel: &'static str,
        found: &'static str,
    },
    /// Activation, output or row-range sizes do not match the matrix.
    #[error("{kernel}: {what}: got {found}, expected {expected} (weight [{n}, {k}], m = {m})")]
    Shape {
        kernel: &'static str,
        what: &'static str,
        n: usize,
        k: usize,
        m: usize,
        expected: usize,
        found: usize,
    },
}
