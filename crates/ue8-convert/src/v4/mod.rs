//! DeepSeek-V4 checkpoints (issue 11): `dequantize`, `requantize --to fp8-ue8m0` (FP4 experts re-encoded
//! to FP8 with 128x128 E8M0 tiles, exactly, or refused) and `inspect`, on the layout read by
//! `ue8_io::layout_v4`. The commands dispatch here when `ue8_io::layout_v4::is_v4` says so; output
//! directories, manifests, progress and errors are the converter's own. `diff` and `verify` reach V4
//! through [`layout_entries`], which presents V4 pairs as the converter's generic groups.

mod convert;
mod inspect;
mod reencode;

pub use convert::{check_reencode_exact, dequantize_v4, requantize_v4, V4RequantizeOptions};
pub use inspect::{inspect_v4, V4ExpertReencode, V4InspectReport};
pub use reencode::{exact_by_scales, max_tile_gap, reencode_tensor, Reencoded};

use ue8_io::layout::LayoutEntry;
use ue8_io::Checkpoint;

/// The V4 layout in the converter's generic form, or `None` when `ck` is not a V4 checkpoint.
/// Fails on the first malformed pair.
pub fn layout_entries(ck: &Checkpoint) -> Option<Result<Vec<LayoutEntry>, crate::ConvertError>> {
    if !ue8_io::layout_v4::is_v4(ck) {
        return None;
    }
    let layout = ue8_io::layout_v4::detect_v4(ck);
    Some(match layout.first_problem() {
        Some(e) => Err(e.into()),
        None => Ok(layout.to_layout_entries()),
    })
}
