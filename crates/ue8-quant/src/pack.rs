//! Sub-byte packing layouts: FP4 nibbles (Hugging Face / gpt-oss, safetensors `F4`), GGUF
//! `block_mxfp4`, and FP6 (safetensors `F6_E2M3` / `F6_E3M2`).
//!
//! Bit order. safetensors >= 0.6 (checked in 0.8.0, Rust `Dtype::bitsize` and
//! `TensorView::new`) defines only sizes: a tensor of `n` sub-byte elements has `n * bits / 8`
//! bytes and `n * bits % 8 != 0` is `MisalignedSlice`. Its Python torch backend maps `F4` to
//! `torch.float4_e2m1fn_x2`, whose first element is the low nibble, the same order as gpt-oss
//! `_blocks`. ue8 therefore packs every sub-byte type as one little-endian bit stream: element i
//! occupies bits `[b*i, b*i + b)` counted from bit 0 of byte 0 (FP4: element 2i low nibble; FP6:
//! four elements in three bytes, `a | b << 6`, `b >> 2 | c << 4`, `c >> 4 | d << 2`). A partial
//! last byte is zero-padded.

use crate::rules::pow2;
use crate::shape::check_len;
use crate::QuantError;

fn check_codes(codes: &[u8], bits: u32) -> Result<(), QuantError> {
    let limit = 1u16 << bits;
    match codes.iter().position(|&c| c as u16 >= limit) {
        Some(index) => Err(QuantError::CodeOutOfRange {
            index,
            code: codes[index],
            bits,
        }),
        None => Ok(()),
    }
}

/// Bytes needed for `n` FP4 codes: `ceil(n / 2)`.
pub fn e2m1_packed_len(n: usize) -> usize {
    n.div_ceil(2)
}

/// FP4 codes (one per byte, low 4 bits) -> nibbles, element 2i in the low nibble of byte i.
/// `out.len()` must be `ceil(codes.len() / 2)`.
pub fn pack_e2m1(codes: &[u8], out: &mut [u8]) -> Result<(), QuantError> {
    check_len("packed FP4 output", e2m1_packed_len(codes.len()), out.len())?;
    check_codes(codes, 4)?;
    for (o, pair) in out.iter_mut().zip(codes.chunks(2)) {
        *o = pair[0] | pair.get(1).map_or(0, |&h| h << 4);
    }
    Ok(())
}

/// Inverse of [`pack_e2m1`]: `out.len()` codes from `ceil(out.len() / 2)` packed bytes.
pub fn unpack_e2m1(packed: &[u8], out: &mut [u8]) -> Result<(), QuantError> {
    check_len("packed FP4 input", e2m1_packed_len(out.len()), packed.len())?;
    for (pair, &b) in out.chunks_mut(2).zip(packed) {
        pair[0] = b & 0xF;
        if let Some(h) = pair.get_mut(1) {
            *h = b >> 4;
        }
    }
    Ok(())
}

/// safetensors `F4`: the same nibble order as [`pack_e2m1`].
pub fn pack_f4(codes: &[u8], out: &mut [u8]) -> Result<(), QuantError> {
    pack_e2m1(codes, out)
}

/// safetensors `F4`: the same nibble order as [`unpack_e2m1`].
pub fn unpack_f4(packed: &[u8], out: &mut [u8]) -> Result<(), QuantError> {
    unpack_e2m1(packed, out)
}

/// Bytes needed for `n` FP6 codes: `ceil(6n / 8)` (safetensors itself needs `n % 4 == 0`).
pub fn fp6_packed_len(n: usize) -> Option<usize> {
    n.checked_mul(6).map(|b| b.div_ceil(8))
}

/// FP6 codes (low 6 bits of each byte) -> little-endian bit stream (see the module docs).
pub fn pack_fp6(codes: &[u8], out: &mut [u8]) -> Result<(), QuantError> {
    let need = fp6_packed_len(codes.len()).ok_or(QuantError::ShapeOverflow {
        n: codes.len(),
        k: 6,
    })?;
    check_len("packed FP6 output", need, out.len())?;
    check_codes(codes, 6)?;
    out.fill(0);
    for (quad, o) in codes.chunks(4).zip(out.chunks_mut(3)) {
        let mut q = [0u8; 4];
        q[..quad.len()].copy_from_slice(quad);
        let word = q[0] as u32 | (q[1] as u32) << 6 | (q[2] as u32) << 12 | (q[3] as u32) << 18;
        for (i, b) in o.iter_mut().enumerate() {
            *b = (word >> (8 * i)) as u8;
        }
    }
    Ok(())
}

/// Inverse of [`pack_fp6`]: `out.len()` codes from `ceil(6 * out.len() / 8)` bytes.
pub fn unpack_fp6(packed: &[u8], out: &mut [u8]) -> Result<(), QuantError> {
    let need = fp6_packed_len(out.len()).ok_or(QuantError::ShapeOverflow { n: out.len(), k: 6 })?;
    check_len("packed FP6 input", need, packed.len())?;
    for (quad, p) in out.chunks_mut(4).zip(packed.chunks(3)) {
        let word = p
            .iter()
            .enumerate()
            .fold(0u32, |w, (i, &b)| w | (b as u32) << (8 * i));
        for (i, c) in quad.iter_mut().enumerate() {
            *c = ((word >> (6 * i)) & 0x3F) as u8;
        }
    }
    Ok(())
}

/// ggml's MXFP4 value table: E2M1 values doubled so they are integers (code order).
pub const GGML_MXFP4_VALUES: [i8; 16] = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];

/// GGUF tensor type 39, ggml's `block_mxfp4`: one E8M0 byte and 32 E2M1 codes, `qs[j]` holding
/// element j in the low nibble and element j + 16 in the high nibble.
///
/// ggml decodes `GGML_MXFP4_VALUES[code] * 2^(e - 128)`: the doubled table and the halved scale
/// cancel, so `e` is the same byte as the OCP E8M0 scale and the codes are the same E2M1 codes;
/// only the nibble order differs from the Hugging Face layout.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct BlockMxfp4 {
    pub e: u8,
    pub qs: [u8; 16],
}

const _: () = assert!(std::mem::size_of::<BlockMxfp4>() == 17);

impl BlockMxfp4 {
    /// Bytes of one block in a GGUF file.
    pub const SIZE: usize = 17;

    /// From 32 E2M1 codes (low 4 bits used) and the E8M0 scale byte.
    pub fn from_codes(codes: &[u8; 32], scale: u8) -> BlockMxfp4 {
        let mut qs = [0u8; 16];
        for (j, q) in qs.iter_mut().enumerate() {
            *q = (codes[j] & 0xF) | (codes[j + 16] & 0xF) << 4;
        }
        BlockMxfp4 { e: scale, qs }
    }

    /// The 32 E2M1 codes and the E8M0 scale byte.
    pub fn to_codes(&self) -> ([u8; 32], u8) {
        let mut codes = [0u8; 32];
        for (j, &q) in self.qs.iter().enumerate() {
            codes[j] = q & 0xF;
            codes[j + 16] = q >> 4;
        }
        (codes, self.e)
    }

    /// From one Hugging Face / gpt-oss block (16 bytes, element 2i low nibble) and its scale.
    pub fn from_hf(packed: &[u8; 16], scale: u8) -> BlockMxfp4 {
        let mut codes = [0u8; 32];
        for (i, &b) in packed.iter().enumerate() {
            codes[2 * i] = b & 0xF;
            codes[2 * i + 1] = b >> 4;
        }
        BlockMxfp4::from_codes(&codes, scale)
    }

    /// To one Hugging Face / gpt-oss block and its scale.
    pub fn to_hf(&self) -> ([u8; 16], u8) {
        let (codes, e) = self.to_codes();
        let mut packed = [0u8; 16];
        for (i, p) in packed.iter_mut().enumerate() {
            *p = codes[2 * i] | codes[2 * i + 1] << 4;
        }
        (packed, e)
    }

    /// Parses one block from 17 bytes of a GGUF tensor.
    pub fn from_bytes(bytes: &[u8; 17]) -> BlockMxfp4 {
        let mut qs = [0u8; 16];
        qs.copy_from_slice(&bytes[1..]);
        BlockMxfp4 { e: bytes[0], qs }
    }

    /// The 17 bytes of this block as GGUF stores them.
    pub fn to_bytes(&self) -> [u8; 17] {
        let mut b = [0u8; 17];
        b[0] = self.e;
        b[1..].copy_from_slice(&self.qs);
        b
    }

    /// Decodes as ggml does: `GGML_MXFP4_VALUES[code] * 2^(e - 128)` (e = 0xFF gives NaN).
    pub fn to_f32_ggml(&self) -> [f32; 32] {
        let d = if self.e == 0xFF {
            f32::NAN
        } else {
            pow2(self.e as i32 - 128)
        };
        let (codes, _) = self.to_codes();
        let mut out = [0f32; 32];
        for (o, &c) in out.iter_mut().zip(&codes) {
            *o = GGML_MXFP4_VALUES[c as usize] as f32 * d;
        }
        out
    }
}
