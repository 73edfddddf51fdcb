//! A weight matrix exactly as it lies in a checkpoint (usually an mmap), validated once so the kernels
//! can trust every length. `y = x W^T` with `W` row-major [n, k]: n outputs, k the reduction axis.

use super::error::KernelError;

/// Rows per tile and columns per tile of DeepSeek's blockwise FP8 scale grid (formats.md section 2).
pub const E4M3_TILE: usize = 128;
/// Elements per OCP MX block along k (formats.md section 3).
pub const MX_BLOCK: usize = 32;

/// Element type of an OCP MX block (formats.md section 3). Variant names follow `ue8_quant`'s type so
/// that switching to it is a one-line change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MxElement {
    /// MXFP8, one byte per element.
    E4M3,
    /// MXFP8 with E5M2 elements, one byte per element.
    E5M2,
    /// MXFP6 E3M2, safetensors F6 packing (docs/layouts.md).
    E3M2,
    /// MXFP6 E2M3, safetensors F6 packing.
    E2M3,
    /// MXFP4, two elements per byte, element 2j in the low nibble (gpt-oss order).
    E2M1,
}

impl MxElement {
    /// Every MX element type.
    pub const ALL: [MxElement; 5] = [
        MxElement::E4M3,
        MxElement::E5M2,
        MxElement::E3M2,
        MxElement::E2M3,
        MxElement::E2M1,
    ];

    /// Short name used in errors and benchmark ids.
    pub fn name(self) -> &'static str {
        match self {
            MxElement::E4M3 => "mxfp8-e4m3",
            MxElement::E5M2 => "mxfp8-e5m2",
            MxElement::E3M2 => "mxfp6-e3m2",
            MxElement::E2M3 => "mxfp6-e2m3",
            MxElement::E2M1 => "mxfp4",
        }
    }

    /// Bytes of one stored row of k logical elements (docs/layouts.md: FP8 rows are unpadded, FP6 and
    /// FP4 rows are zero-padded to a whole number of 32-element blocks). `None` on overflow.
    pub fn row_bytes(self, k: usize) -> Option<usize> {
        let kp = k.div_ceil(MX_BLOCK).checked_mul(MX_BLOCK)?;
        match self {
            MxElement::E4M3 | MxElement::E5M2 => Some(k),
            MxElement::E3M2 | MxElement::E2M3 => kp.checked_mul(3).map(|b| b / 4),
            MxElement::E2M1 => Some(kp / 2),
        }
    }

    /// log2 of the constant the fast decode leaves out of each element: the kernels fold `2^fold`
    /// into the block scale. Through F16C (formats.md section 5) E4M3 is 2^-8 of the value, E3M2
    /// 2^-12, E2M3 2^-14, E5M2 exact; E2M1 is decoded as doubled integers (ggml's table).
    pub(crate) fn fold_log2(self) -> i32 {
        match self {
            MxElement::E4M3 => 8,
            MxElement::E5M2 => 0,
            MxElement::E3M2 => 12,
            MxElement::E2M3 => 14,
            MxElement::E2M1 => -1,
        }
    }

    /// Largest E8M0 scale byte whose folded scale `2^(byte - 127 + fold)` is still a finite f32.
    pub(crate) fn max_scale_byte(self) -> u8 {
        (254 - self.fold_log2().max(0)) as u8
    }
}

/// Where the weights are and how they are encoded. Byte slices are little-endian and may be unaligned
/// (they usually come straight from an mmap of a safetensors file).
#[derive(Clone, Copy, Debug)]
pub enum WeightData<'a> {
    /// IEEE f32, 4 bytes per element.
    F32(&'a [u8]),
    /// bfloat16, 2 bytes per element.
    Bf16(&'a [u8]),
    /// IEEE f16, 2 bytes per element.
    F16(&'a [u8]),
    /// DeepSeek blockwise FP8: E4M3 bytes [n, k] and one f32 scale per 128x128 tile, grid
    /// [ceil(n/128), ceil(k/128)], edge tiles partial. UE8M0 checkpoints hold powers of two here.
    /// E4M3 NaN codes (0x7F, 0xFF) are not screened by the kernels: the loader rejects them.
    E4m3Tiles { q: &'a [u8], scales: &'a [f32] },
    /// OCP MX: 32-element blocks along k, E8M0 scale bytes [n, ceil(k/32)], element storage per
    /// [`MxElement::row_bytes`].
    Mx {
        elem: MxElement,
        data: &'a [u8],
        scales: &'a [u8],
    },
}

impl WeightData<'_> {
    /// Name of the storage format, as used in kernel names and errors.
    pub fn format_name(&self) -> &'static str {
        match self {
            WeightData::F32(_) => "f32",
            WeightData::Bf16(_) => "bf16",
            WeightData::F16(_) => "f16",
            WeightData::E4m3Tiles { .. } => "e4m3-tiles",
            WeightData::Mx { elem, .. } => elem.name(),
        }
    }
}

/// A validated weight matrix W [n, k]. Fields are private so that every instance went through
/// [`WeightMatrix::new`]: the kernels index without bounds checks on that guarantee.
#[derive(Clone, Copy, Debug)]
pub struct WeightMatrix<'a> {
    n: usize,
    k: usize,
    row_bytes: usize,
    data: WeightData<'a>,
}

impl<'a> WeightMatrix<'a> {
    /// Checks every length (with checked arithmetic) and every scale once.
    pub fn new(n: usize, k: usize, data: WeightData<'a>) -> Result<Self, KernelError> {
        let overflow = KernelError::SizeOverflow { n, k };
        let format = data.format_name();
        let elem_bytes = |bytes_per: usize| k.checked_mul(bytes_per).ok_or(overflow.clone());
        let (row_bytes, stored) = match data {
            WeightData::F32(b) => (elem_bytes(4)?, b.len()),
            WeightData::Bf16(b) | WeightData::F16(b) => (elem_bytes(2)?, b.len()),
            WeightData::E4m3Tiles { q, .. } => (k, q.len()),
            WeightData::Mx { elem, data, .. } => {
                (elem.row_bytes(k).ok_or(overflow.clone())?, data.len())
            }
        };
        let expected = n.checked_mul(row_bytes).ok_or(overflow.clone())?;
        if stored != expected {
            return Err(KernelError::DataLength {
                n,
                k,
                format,
                what: "element data",
                expected,
                found: stored,
            });
        }
        match data {
            WeightData::E4m3Tiles { scales, .. } => {
                let grid = n
                    .div_ceil(E4M3_TILE)
                    .checked_mul(k.div_ceil(E4M3_TILE))
                    .ok_or(overflow)?;
                check_count(n, k, format, grid, scales.len())?;
                for (index, &value) in scales.iter().enumerate() {
                    // The kernels multiply each tile scale by 2^8 (E4M3 via F16C, formats.md 5).
                    if !(value * 256.0).is_finite() {
                        return Err(KernelError::BadScale {
                            n,
                            k,
                            format,
                            index,
                            value,
                            problem: "not finite, or too large to fold 2^8 into",
                        });
                    }
                }
            }
            WeightData::Mx { elem, scales, .. } => {
                let count = n.checked_mul(k.div_ceil(MX_BLOCK)).ok_or(overflow)?;
                check_count(n, k, format, count, scales.len())?;
                let max = elem.max_scale_byte();
                if let Some(index) = scales.iter().position(|&b| b > max) {
                    let byte = scales.get(index).copied().unwrap_or(0xFF);
                    return Err(KernelError::BadScale {
                        n,
                        k,
                        format,
                        index,
                        value: ue8_formats::E8M0::from_bits(byte).to_f32(),
                        problem: if byte == 0xFF {
                            "E8M0 NaN byte 0xFF"
                        } else {
                            "E8M0 scale too large for the folded fast decode"
                        },
                    });
                }
            }
            _ => {}
        }
        Ok(WeightMatrix {
            n,
            k,
            row_bytes,
            data,
        })
    }

    /// Output rows.
    pub fn n(&self) -> usize {
        self.n
    }
    /// Reduction length (logical columns, padding excluded).
    pub fn k(&self) -> usize {
        self.k
    }
    /// The stored data.
    pub fn data(&self) -> &WeightData<'a> {
        &self.data
    }
    /// Bytes of one stored row.
    pub fn row_bytes(&self) -> usize {
        self.row_bytes
    }
    /// Bytes of weights (elements plus scales) a full pass over the matrix reads.
    pub fn bytes(&self) -> usize {
        let scales = match self.data {
            WeightData::E4m3Tiles { scales, .. } => std::mem::size_of_val(scales),
            WeightData::Mx { scales, .. } => scales.len(),
            _ => 0,
        };
        self.n * self.row_bytes + scales
    }
}

fn check_count(
    n: usize,
    k: usize,
    format: &'static str,
    expected: usize,
    found: usize,
) -> Result<(), KernelError> {
    if expected == found {
        Ok(())
    } else {
        Err(KernelError::ScaleCount {
            n,
            k,
            format,
            expected,
            found,
        })
    }
}
