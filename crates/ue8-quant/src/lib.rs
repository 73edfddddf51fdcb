//! Block schemes, scale rules, packing layouts and fast conversion kernels for FP8 / FP6 / FP4
//! checkpoints, bit-exact to `shared/design/formats.md` sections 2 to 5.
//!
//! - [`BlockFp8`]: DeepSeek blockwise FP8 (E4M3 codes, one scale per 128x128 weight tile or 1x128
//!   activation group), scale rules [`ScaleRule::Ue8m0Ceil`] (V3.1) and [`ScaleRule::F32`] (V3);
//!   [`requantize_to_ue8m0`] moves V3 scales to V3.1 scales; [`scales_to_e8m0`] /
//!   [`e8m0_to_scales`] convert between the F32 and F8_E8M0 forms of power-of-two scales.
//! - [`MxScheme`]: OCP MX (32-element blocks along K) for every [`MxElement`], rules
//!   [`MxScaleRule::Floor`] and [`MxScaleRule::Rceil`]. K not a multiple of 32: the last block of
//!   a row is partial and its scale comes from its real elements; packed layouts zero-pad it.
//! - [`mxfp4`]: packed MXFP4 in the Hugging Face / gpt-oss layout with fast kernels;
//!   [`pack`]: FP4 / FP6 bit packing and GGUF's [`BlockMxfp4`].
//! - [`ErrorStats`]: max-abs, RMS, SNR, cosine and clipped share (formats.md section 4).
//! - [`reencode_mxfp4_to_fp8`]: DeepSeek-V4 FP4 experts to FP8 with 128x128 UE8M0 tiles, exactly
//!   (refused past the proven bound [`REENCODE_MAX_GAP`]); [`check_reencode_mxfp4_to_fp8`] is the
//!   dry run, [`reencode_mxfp4_to_fp8_lossy`] the `--allow-lossy` variant.
//!
//! Kernels pick AVX-512, AVX2+FMA+F16C or scalar once per process ([`Isa::detect`]); every fast
//! path has a scalar reference (`*_ref`, or [`MxScheme::quantize`]) it is tested against bit for
//! bit, and the references are tested against an independent numpy implementation
//! (`tools/golden/gen_blocks.py`, fixtures in `tests/fixtures/`). Whole-tensor entry points ending
//! in `_par` split the rows over the rayon pool (128-row bands are independent).
//!
//! ```
//! use ue8_quant::{BlockFp8, NonFinite};
//! let (n, k) = (2, 3);
//! let w = [1.0f32, -2.0, 448.0, 0.5, 0.0, -0.25];
//! let mut q = [0u8; 6];
//! let mut s = [0f32; 1];
//! BlockFp8::WEIGHT.quantize_f32(&w, n, k, NonFinite::Reject, &mut q, &mut s).unwrap();
//! assert_eq!(s[0], 1.0); // 448 / 448 is already a power of two
//! let mut back = [0f32; 6];
//! BlockFp8::WEIGHT.dequantize_to_f32(&q, &s, n, k, &mut back).unwrap();
//! assert_eq!(back, w); // every value here is an E4M3 value
//! ```

mod blockfp8;
mod e8m0_scales;
mod error;
pub mod kernels;
mod metrics;
pub mod mx;
pub mod mxfp4;
pub mod pack;
mod reencode;
mod requant;
mod rules;
mod shape;
mod source;

pub use blockfp8::{BlockFp8, Fp8Source, QuantReport};
pub use e8m0_scales::{all_pow2, e8m0_to_scales, scales_to_e8m0};
pub use error::QuantError;
pub use kernels::Isa;
pub use metrics::ErrorStats;
pub use mx::{MxScheme, MX_BLOCK};
pub use pack::{pack_e2m1, pack_fp6, unpack_e2m1, unpack_fp6, BlockMxfp4};
pub use reencode::{
    check_reencode_mxfp4_to_fp8, reencode_mxfp4_to_fp8, reencode_mxfp4_to_fp8_lossy,
    ReencodeReport, REENCODE_MAX_GAP,
};
pub use requant::{requantize_to_ue8m0, RequantReport};
pub use rules::{
    e8m0_to_f32, MxElement, MxScaleRule, NonFinite, ScaleRule, DEEPSEEK_AMAX_FLOOR, E4M3_MAX,
};
pub use source::SourceElement;
