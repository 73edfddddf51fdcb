//! Weight formats a plan can assume, and the bytes each tensor takes in them (scales included).
//!
//! Which tensors are converted follows ue8's converter: 2-D linear weights (attention, dense FFN,
//! shared and routed experts) are quantized; embeddings, `lm_head` (unless `--quantize-lm-head`), norms,
//! biases and routers stay BF16.

use crate::error::{PlanError, Result};
use crate::params::{TensorGroup, TensorKind};

/// FP8 block tile edge (DeepSeek's 128 x 128 weight blocks).
pub const FP8_TILE: u64 = 128;
/// Bytes of one FP8 tile scale stored as F32 (issue 8 item 4: `--scale-dtype` defaults to f32).
pub const FP8_SCALE_BYTES_F32: u64 = 4;
/// Bytes of one E8M0 scale (MX formats; DeepSeek-V4's released FP8 tiles).
pub const E8M0_SCALE_BYTES: u64 = 1;
/// MX block length along the reduction axis.
pub const MX_BLOCK: u64 = 32;
/// Bytes of a BF16 value.
pub const BF16_BYTES: u64 = 2;

/// A storage format for a whole model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum WeightFormat {
    /// Everything BF16.
    Bf16,
    /// E4M3 weights with one F32 power-of-two scale per 128 x 128 tile (DeepSeek-V3.1 layout).
    Fp8Ue8m0,
    /// OCP MXFP4: E2M1 elements, one E8M0 scale per 32 inputs (4.25 bits a weight).
    Mxfp4,
    /// DeepSeek-V4 as released: FP8 E4M3 with E8M0 128 x 128 tile scales for dense weights, MXFP4 experts.
    Fp8Mxfp4Experts,
}

impl WeightFormat {
    /// The formats every model gets with `--format all`.
    pub const GENERAL: [WeightFormat; 3] = [
        WeightFormat::Bf16,
        WeightFormat::Fp8Ue8m0,
        WeightFormat::Mxfp4,
    ];

    /// Name as the CLI spells it.
    pub fn name(self) -> &'static str {
        match self {
            WeightFormat::Bf16 => "bf16",
            WeightFormat::Fp8Ue8m0 => "fp8-ue8m0",
            WeightFormat::Mxfp4 => "mxfp4",
            WeightFormat::Fp8Mxfp4Experts => "fp8-mxfp4-experts",
        }
    }

    /// Parse a CLI name.
    pub fn parse(name: &str) -> Result<Self> {
        match name.to_ascii_lowercase().as_str() {
            "bf16" => Ok(WeightFormat::Bf16),
            "fp8-ue8m0" | "fp8" => Ok(WeightFormat::Fp8Ue8m0),
            "mxfp4" => Ok(WeightFormat::Mxfp4),
            "fp8-mxfp4-experts" => Ok(WeightFormat::Fp8Mxfp4Experts),
            _ => Err(PlanError::UnknownFormat {
                name: name.to_string(),
            }),
        }
    }

    /// Element type a converted matrix of `kind` has in this format.
    pub fn element_of(self, kind: TensorKind) -> Element {
        match (self, kind) {
            (WeightFormat::Bf16, _) => Element::Bf16,
            (WeightFormat::Fp8Ue8m0, k) if k.is_quantized_matrix() => Element::Fp8TileF32,
            (WeightFormat::Mxfp4, k) if k.is_quantized_matrix() => Element::Mxfp4,
            (WeightFormat::Fp8Mxfp4Experts, TensorKind::RoutedExpert) => Element::Mxfp4,
            (WeightFormat::Fp8Mxfp4Experts, TensorKind::Linear) => Element::Fp8TileE8m0,
            _ => Element::Bf16,
        }
    }
}

/// How one tensor's elements are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Element {
    Bf16,
    /// 1 byte + 4 bytes per 128 x 128 tile.
    Fp8TileF32,
    /// 1 byte + 1 byte per 128 x 128 tile.
    Fp8TileE8m0,
    /// Half a byte + 1 byte per 32 inputs.
    Mxfp4,
}

impl Element {
    /// Bytes of one [rows, cols] matrix (cols = the input, reduction axis), scales included; partial
    /// tiles and blocks are padded as the layouts do.
    pub fn matrix_bytes(self, rows: u64, cols: u64) -> u64 {
        let n = rows.saturating_mul(cols);
        let tiles = rows
            .div_ceil(FP8_TILE)
            .saturating_mul(cols.div_ceil(FP8_TILE));
        match self {
            Element::Bf16 => n.saturating_mul(BF16_BYTES),
            Element::Fp8TileF32 => n.saturating_add(tiles.saturating_mul(FP8_SCALE_BYTES_F32)),
            Element::Fp8TileE8m0 => n.saturating_add(tiles.saturating_mul(E8M0_SCALE_BYTES)),
            Element::Mxfp4 => rows
                .saturating_mul(cols.div_ceil(2))
                .saturating_add(rows.saturating_mul(cols.div_ceil(MX_BLOCK)) * E8M0_SCALE_BYTES),
        }
    }
}

/// Options that change which tensors a format converts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FormatOptions {
    /// Quantize the output projection too (issue 9's `--quantize-lm-head`).
    pub quantize_lm_head: bool,
}

/// Element type of a tensor group in `format`.
pub fn group_element(format: WeightFormat, g: &TensorGroup, opts: FormatOptions) -> Element {
    let kind = if g.kind == TensorKind::LmHead && opts.quantize_lm_head {
        TensorKind::Linear
    } else {
        g.kind
    };
    format.element_of(kind)
}

/// Bytes of one tensor of the group in `format`.
pub fn tensor_bytes(format: WeightFormat, g: &TensorGroup, opts: FormatOptions) -> u64 {
    group_element(format, g, opts).matrix_bytes(g.rows, g.cols)
}
