//! Shape checks shared by every scheme: sizes from files are untrusted, so every product is checked.

use crate::QuantError;

/// `n * k` with both dimensions at least 1.
pub(crate) fn elements(n: usize, k: usize) -> Result<usize, QuantError> {
    if n == 0 || k == 0 {
        return Err(QuantError::EmptyShape { n, k });
    }
    n.checked_mul(k).ok_or(QuantError::ShapeOverflow { n, k })
}

/// Fails unless `len == expected`.
pub(crate) fn check_len(what: &'static str, expected: usize, len: usize) -> Result<(), QuantError> {
    if expected == len {
        Ok(())
    } else {
        Err(QuantError::LengthMismatch {
            what,
            expected,
            actual: len,
        })
    }
}

/// Number of blocks of `block` covering `len` (ceil division; `block` >= 1).
#[inline]
pub(crate) fn blocks(len: usize, block: usize) -> usize {
    len.div_ceil(block)
}
