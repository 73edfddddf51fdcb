//! US ECCN 3A090 classification from the chip's figures (informational; not legal advice, and whether
//! the EAR applies to an item at all depends on its origin, which this metric does not decide).
//!
//! TPP = 2 x MacTOPS x bit length of the operation, max over the formats the chip computes in. A
//! catalog figure in TOPS/TFLOPS already counts two operations per MAC, so TPP = TOPS x bit length.
//! PD = TPP / die area (mm^2).

use crate::catalog::{Chip, ExportRule};

/// The classification of one chip.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Classification {
    /// Highest TPP over the catalogued formats, with the format that sets it.
    pub tpp: Option<f64>,
    pub tpp_format: Option<String>,
    pub performance_density: Option<f64>,
    /// "3A090.a", "3A090.b", "not 3A090", or "undetermined: ..." when a needed figure is unknown.
    pub class: String,
    pub rule: String,
    pub rule_date: String,
}

/// Classify a chip under `rule`.
pub fn classify(chip: &Chip, rule: &ExportRule) -> Classification {
    let candidates = [
        ("bf16", &chip.bf16_tflops, 16.0),
        ("fp8", &chip.fp8_tflops, 8.0),
        ("int8", &chip.int8_tops, 8.0),
        ("fp4", &chip.fp4_tflops, 4.0),
    ];
    let best = candidates
        .iter()
        .filter_map(|(name, fig, bits)| fig.as_ref().map(|f| (*name, f.value * bits)))
        .fold(None::<(&str, f64)>, |acc, (n, t)| match acc {
            Some((_, best)) if best >= t => acc,
            _ => Some((n, t)),
        });
    let pd = match (best, &chip.die_area_mm2) {
        (Some((_, tpp)), Some(area)) if area.value > 0.0 => Some(tpp / area.value),
        _ => None,
    };
    let class = match best {
        None => "undetermined: no compute figure".to_string(),
        Some((_, tpp)) => class_of(tpp, pd, rule),
    };
    Classification {
        tpp: best.map(|(_, t)| t),
        tpp_format: best.map(|(n, _)| n.to_string()),
        performance_density: pd,
        class,
        rule: rule.name.clone(),
        rule_date: rule.date.clone(),
    }
}

/// The rule's tests, in order: .a on TPP alone, .a on TPP and PD, then .b.
pub fn class_of(tpp: f64, pd: Option<f64>, rule: &ExportRule) -> String {
    if tpp >= rule.tpp_a {
        return "3A090.a".to_string();
    }
    if tpp < rule.tpp_a_with_pd {
        return "not 3A090".to_string();
    }
    let Some(pd) = pd else {
        return "undetermined: die area unknown (TPP alone does not decide)".to_string();
    };
    if pd >= rule.pd_a {
        return "3A090.a".to_string();
    }
    let b_first = tpp >= rule.tpp_b_low && pd >= rule.pd_b_low;
    let b_second = pd >= rule.pd_b_alt_low;
    if b_first || b_second {
        return "3A090.b".to_string();
    }
    "not 3A090".to_string()
}
