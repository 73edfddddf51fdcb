//! Target formats, scale rules and scale storage, and the `quantization_config` each writes
//! (docs/layouts.md is the contract).

use crate::ConvertError;
use ue8_io::layout::MxElementKind;
use ue8_quant::{MxElement, MxScaleRule, ScaleRule};

/// What `ue8 quantize --to` produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TargetFormat {
    /// DeepSeek-V3.1: E4M3 + 128x128 power-of-two scales.
    Fp8Ue8m0,
    /// DeepSeek-V3: E4M3 + 128x128 F32 scales.
    Fp8,
    Mxfp8,
    Mxfp8E5m2,
    Mxfp6E3m2,
    Mxfp6E2m3,
    Mxfp4,
}

impl TargetFormat {
    pub const ALL: [TargetFormat; 7] = [
        TargetFormat::Fp8Ue8m0,
        TargetFormat::Fp8,
        TargetFormat::Mxfp8,
        TargetFormat::Mxfp8E5m2,
        TargetFormat::Mxfp6E3m2,
        TargetFormat::Mxfp6E2m3,
        TargetFormat::Mxfp4,
    ];

    /// The command-line name.
    pub const fn name(self) -> &'static str {
        match self {
            TargetFormat::Fp8Ue8m0 => "fp8-ue8m0",
            TargetFormat::Fp8 => "fp8",
            TargetFormat::Mxfp8 => "mxfp8",
            TargetFormat::Mxfp8E5m2 => "mxfp8-e5m2",
            TargetFormat::Mxfp6E3m2 => "mxfp6-e3m2",
            TargetFormat::Mxfp6E2m3 => "mxfp6-e2m3",
            TargetFormat::Mxfp4 => "mxfp4",
        }
    }

    pub fn parse(s: &str) -> Result<Self, ConvertError> {
        Self::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|f| f.name()).collect();
                ConvertError::Usage(format!(
                    "unknown format '{s}' (expected one of {})",
                    names.join(", ")
                ))
            })
    }

    /// The MX element, `None` for the DeepSeek formats.
    pub const fn mx_element(self) -> Option<MxElement> {
        match self {
            TargetFormat::Fp8Ue8m0 | TargetFormat::Fp8 => None,
            TargetFormat::Mxfp8 => Some(MxElement::E4M3),
            TargetFormat::Mxfp8E5m2 => Some(MxElement::E5M2),
            TargetFormat::Mxfp6E3m2 => Some(MxElement::E3M2),
            TargetFormat::Mxfp6E2m3 => Some(MxElement::E2M3),
            TargetFormat::Mxfp4 => Some(MxElement::E2M1),
        }
    }

    pub const fn is_mx(self) -> bool {
        self.mx_element().is_some()
    }
}

/// `--scale-rule`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RuleChoice {
    Ue8m0Ceil,
    Floor,
    Rceil,
}

impl RuleChoice {
    pub fn parse(s: &str) -> Result<Self, ConvertError> {
        match s {
            "ue8m0-ceil" => Ok(RuleChoice::Ue8m0Ceil),
            "floor" => Ok(RuleChoice::Floor),
            "rceil" => Ok(RuleChoice::Rceil),
            _ => Err(ConvertError::Usage(format!(
                "unknown scale rule '{s}' (expected ue8m0-ceil, floor or rceil)"
            ))),
        }
    }
}

/// `--scale-dtype`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ScaleDtype {
    F32,
    E8m0,
}

/// How one tensor is quantized: a resolved format + rule + scale storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// DeepSeek 128x128; `e8m0_scales` stores F8_E8M0 bytes instead of F32.
    BlockFp8 { rule: ScaleRule, e8m0_scales: bool },
    /// OCP MX; `e8m0_scales` stores F8_E8M0 instead of U8.
    Mx {
        elem: MxElement,
        rule: MxScaleRule,
        e8m0_scales: bool,
    },
}

impl Scheme {
    /// Resolves the command-line choices, refusing combinations layouts.md rules out.
    pub fn resolve(
        format: TargetFormat,
        rule: Option<RuleChoice>,
        scale_dtype: Option<ScaleDtype>,
    ) -> Result<Scheme, ConvertError> {
        match format.mx_element() {
            None => {
                let rule = match (format, rule) {
                    (TargetFormat::Fp8, None) => ScaleRule::F32,
                    (TargetFormat::Fp8, Some(r)) => {
                        return Err(ConvertError::Usage(format!(
                            "--to fp8 uses DeepSeek-V3's F32 scales; --scale-rule {r:?} does not apply (use --to fp8-ue8m0)"
                        )))
                    }
                    (_, None | Some(RuleChoice::Ue8m0Ceil)) => ScaleRule::Ue8m0Ceil,
                    (_, Some(r)) => {
                        return Err(ConvertError::Usage(format!(
                            "--scale-rule {r:?} is an MX rule; fp8-ue8m0 uses ue8m0-ceil"
                        )))
                    }
                };
                let e8m0_scales = matches!(scale_dtype, Some(ScaleDtype::E8m0));
                if e8m0_scales && rule == ScaleRule::F32 {
                    return Err(ConvertError::Usage(
                        "--scale-dtype e8m0 needs power-of-two scales: use --to fp8-ue8m0".into(),
                    ));
                }
                Ok(Scheme::BlockFp8 { rule, e8m0_scales })
            }
            Some(elem) => {
                let rule = match rule {
                    None | Some(RuleChoice::Floor) => MxScaleRule::Floor,
                    Some(RuleChoice::Rceil) => MxScaleRule::Rceil,
                    Some(RuleChoice::Ue8m0Ceil) => {
                        return Err(ConvertError::Usage(
                            "--scale-rule ue8m0-ceil is the DeepSeek rule; MX formats take floor or rceil".into(),
                        ))
                    }
                };
                if scale_dtype == Some(ScaleDtype::F32) {
                    return Err(ConvertError::Usage(
                        "MX scales are E8M0 by definition: --scale-dtype f32 does not apply (default U8, or e8m0)".into(),
                    ));
                }
                Ok(Scheme::Mx {
                    elem,
                    rule,
                    e8m0_scales: scale_dtype == Some(ScaleDtype::E8m0),
                })
            }
        }
    }
}

/// Our element enum from the io layer's.
pub fn mx_element_of(kind: MxElementKind) -> MxElement {
    match kind {
        MxElementKind::E4M3 => MxElement::E4M3,
        MxElementKind::E5M2 => MxElement::E5M2,
        MxElementKind::E3M2 => MxElement::E3M2,
        MxElementKind::E2M3 => MxElement::E2M3,
        MxElementKind::E2M1 => MxElement::E2M1,
    }
}

/// The `quantization_config` of docs/layouts.md for `format`; `kept_modules` are linear/embedding
/// modules left unquantized (names without `.weight`).
pub fn quantization_config(format: TargetFormat, kept_modules: &[String]) -> serde_json::Value {
    use serde_json::json;
    match format {
        TargetFormat::Fp8Ue8m0 | TargetFormat::Fp8 => {
            let mut v = json!({"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
                "weight_block_size": [128, 128]});
            if format == TargetFormat::Fp8Ue8m0 {
                v["scale_fmt"] = json!("ue8m0");
            }
            if !kept_modules.is_empty() {
                v["modules_to_not_convert"] = json!(kept_modules);
            }
            v
        }
        TargetFormat::Mxfp4 => {
            json!({"quant_method": "mxfp4", "modules_to_not_convert": kept_modules})
        }
        _ => {
            let (bits, fmt, elem) = match format {
                TargetFormat::Mxfp8 => (8, "mxfp8-quantized", "e4m3"),
                TargetFormat::Mxfp8E5m2 => (8, "mxfp8-quantized", "e5m2"),
                TargetFormat::Mxfp6E3m2 => (6, "mxfp6-quantized", "e3m2"),
                _ => (6, "mxfp6-quantized", "e2m3"),
            };
            json!({"quant_method": "compressed-tensors", "format": fmt,
                "config_groups": {"group_0": {"targets": ["Linear"], "format": fmt,
                    "weights": {"num_bits": bits, "type": "float", "symmetric": true, "strategy": "group",
                        "group_size": 32, "dynamic": false, "scale_dtype": "uint8"},
                    "input_activations": null, "output_activations": null}},
                "ignore": kept_modules, "ue8_element": elem})
        }
    }
}
