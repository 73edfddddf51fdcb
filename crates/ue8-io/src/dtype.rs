//! Tensor element types of safetensors, ours so that other crates need not depend on the
//! `safetensors` crate. Names are the safetensors header strings.

use std::fmt;

/// A safetensors dtype, with its header name and size in bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dtype {
    Bool,
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    U64,
    I64,
    F16,
    BF16,
    F32,
    F64,
    C64,
    F8E4M3,
    F8E5M2,
    F8E8M0,
    F8E4M3Fnuz,
    F8E5M2Fnuz,
    F6E3M2,
    F6E2M3,
    F4,
}

const ALL: [Dtype; 22] = [
    Dtype::Bool,
    Dtype::U8,
    Dtype::I8,
    Dtype::U16,
    Dtype::I16,
    Dtype::U32,
    Dtype::I32,
    Dtype::U64,
    Dtype::I64,
    Dtype::F16,
    Dtype::BF16,
    Dtype::F32,
    Dtype::F64,
    Dtype::C64,
    Dtype::F8E4M3,
    Dtype::F8E5M2,
    Dtype::F8E8M0,
    Dtype::F8E4M3Fnuz,
    Dtype::F8E5M2Fnuz,
    Dtype::F6E3M2,
    Dtype::F6E2M3,
    Dtype::F4,
];

impl Dtype {
    /// The string used in safetensors headers.
    pub const fn name(self) -> &'static str {
        match self {
            Dtype::Bool => "BOOL",
            Dtype::U8 => "U8",
            Dtype::I8 => "I8",
            Dtype::U16 => "U16",
            Dtype::I16 => "I16",
            Dtype::U32 => "U32",
            Dtype::I32 => "I32",
            Dtype::U64 => "U64",
            Dtype::I64 => "I64",
            Dtype::F16 => "F16",
            Dtype::BF16 => "BF16",
            Dtype::F32 => "F32",
            Dtype::F64 => "F64",
            Dtype::C64 => "C64",
            Dtype::F8E4M3 => "F8_E4M3",
            Dtype::F8E5M2 => "F8_E5M2",
            Dtype::F8E8M0 => "F8_E8M0",
            Dtype::F8E4M3Fnuz => "F8_E4M3FNUZ",
            Dtype::F8E5M2Fnuz => "F8_E5M2FNUZ",
            Dtype::F6E3M2 => "F6_E3M2",
            Dtype::F6E2M3 => "F6_E2M3",
            Dtype::F4 => "F4",
        }
    }

    /// Parses a safetensors header dtype string.
    pub fn from_name(s: &str) -> Option<Dtype> {
        ALL.iter().copied().find(|d| d.name() == s)
    }

    /// Size of one element in bits (4 and 6 for the packed types).
    pub const fn bits(self) -> usize {
        match self {
            Dtype::F4 => 4,
            Dtype::F6E3M2 | Dtype::F6E2M3 => 6,
            Dtype::Bool
            | Dtype::U8
            | Dtype::I8
            | Dtype::F8E4M3
            | Dtype::F8E5M2
            | Dtype::F8E8M0
            | Dtype::F8E4M3Fnuz
            | Dtype::F8E5M2Fnuz => 8,
            Dtype::U16 | Dtype::I16 | Dtype::F16 | Dtype::BF16 => 16,
            Dtype::U32 | Dtype::I32 | Dtype::F32 => 32,
            Dtype::U64 | Dtype::I64 | Dtype::F64 | Dtype::C64 => 64,
        }
    }

    /// True for the plain float types a converter reads as source weights.
    pub const fn is_plain_float(self) -> bool {
        matches!(self, Dtype::F16 | Dtype::BF16 | Dtype::F32)
    }

    /// Bytes needed by `shape` elements of this dtype, `None` on overflow or when the bit count is not
    /// a whole number of bytes (the safetensors rule for sub-byte types).
    pub fn byte_len(self, shape: &[usize]) -> Option<u64> {
        let elems = shape
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))?;
        let bits = elems.checked_mul(self.bits() as u64)?;
        if bits % 8 != 0 {
            return None;
        }
        Some(bits / 8)
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for d in ALL {
            assert_eq!(Dtype::from_name(d.name()), Some(d));
        }
        assert_eq!(Dtype::from_name("F7"), None);
    }

    #[test]
    fn byte_len_rules() {
        assert_eq!(Dtype::F4.byte_len(&[3, 2]), Some(3));
        assert_eq!(Dtype::F4.byte_len(&[3]), None);
        assert_eq!(Dtype::F6E3M2.byte_len(&[4]), Some(3));
        assert_eq!(Dtype::F6E3M2.byte_len(&[2]), None);
        assert_eq!(Dtype::F32.byte_len(&[]), Some(4));
        assert_eq!(Dtype::F32.byte_len(&[0, 7]), Some(0));
        assert_eq!(Dtype::F64.byte_len(&[usize::MAX, 2]), None);
    }
}
