//! Source element types a quantizer reads: f32, bf16 and f16, each widened exactly to f32.

use half::{bf16, f16};

/// An input element that widens exactly to f32.
pub trait SourceElement: Copy + Send + Sync + 'static {
    /// Exact widening to f32.
    fn to_f32(self) -> f32;
}

impl SourceElement for f32 {
    #[inline]
    fn to_f32(self) -> f32 {
        self
    }
}
impl SourceElement for bf16 {
    #[inline]
    fn to_f32(self) -> f32 {
        bf16::to_f32(self)
    }
}
impl SourceElement for f16 {
    #[inline]
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }
}
