//! Typed errors of every block scheme, packing layout and kernel in this crate.

/// Why a quantize, dequantize, pack or re-encode call refused its input.
///
/// Positions are in elements of the logical `[n, k]` matrix (row, column), or in the scale grid
/// (tile row, tile column), so the caller can name the tensor and the place.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QuantError {
    /// A slice does not have the length the shape asks for.
    #[error("{what}: expected {expected} elements for the given shape, got {actual}")]
    LengthMismatch {
        what: &'static str,
        expected: usize,
        actual: usize,
    },
    /// `n` or `k` is zero: there is nothing to quantize and no scale grid to write.
    #[error("empty shape [{n}, {k}]: both dimensions must be at least 1")]
    EmptyShape { n: usize, k: usize },
    /// `n * k` (or a derived size) does not fit in `usize`.
    #[error("shape [{n}, {k}] overflows usize")]
    ShapeOverflow { n: usize, k: usize },
    /// A tile shape of zero rows or columns.
    #[error("invalid tile shape {rows}x{cols}")]
    InvalidTile { rows: usize, cols: usize },
    /// A NaN or infinity in the source while `NonFinite::Reject` is in force.
    #[error("non-finite value {value} at (row {row}, col {col})")]
    NonFinite { row: usize, col: usize, value: f32 },
    /// A scale that must be an exact power of two in [2^-127, 2^127] is not.
    #[error("scale {value} at index {index} is not an exact power of two in [2^-127, 2^127]")]
    NotPowerOfTwo { index: usize, value: f32 },
    /// A scale that is NaN, infinite, zero or negative where a positive finite scale is needed.
    #[error("scale {value} at index {index} is not a positive finite number")]
    BadScale { index: usize, value: f32 },
    /// An E8M0 scale byte 0xFF (NaN) where a real scale is needed.
    #[error("E8M0 scale at index {index} is 0xFF (NaN)")]
    NanScale { index: usize },
    /// A code that does not fit the element width (e.g. a 5-bit value where FP4 is packed).
    #[error("code {code:#04x} at index {index} does not fit in {bits} bits")]
    CodeOutOfRange { index: usize, code: u8, bits: u32 },
    /// An FP4 -> FP8 re-encode that would lose information (issue 11).
    #[error(
        "tile (tile row {tile_row}, tile col {tile_col}): element at (row {row}, col {col}) is not \
         representable in E4M3 under the tile scale: its 32-group scale is 2^{gap} below the tile's \
         largest (at most 2^{max_gap} is always exact)"
    )]
    ReencodeNotExact {
        tile_row: usize,
        tile_col: usize,
        row: usize,
        col: usize,
        gap: u32,
        max_gap: u32,
    },
}
