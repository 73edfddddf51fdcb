//! The accelerator catalog: a TOML data file (`data/chips.toml`) where every figure carries its source
//! and a confidence level, plus this machine's CPU with the memory bandwidth ue8 measures itself.

use crate::error::{PlanError, Result};
use serde::{Deserialize, Serialize};

/// The catalog shipped with ue8.
pub const CATALOG_TOML: &str = include_str!("../data/chips.toml");

/// How much a figure can be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Confidence {
    /// Vendor datasheet or product page.
    Datasheet,
    /// Reported, rumoured or estimated (the reference's dagger).
    Reported,
    /// One third-party spec compilation (the reference's double dagger).
    Low,
    /// ue8's own assumption, stated in the source.
    Assumption,
    /// Measured by ue8 on this machine.
    Measured,
}

impl Confidence {
    /// The mark shown next to a figure in tables.
    pub fn mark(self) -> &'static str {
        match self {
            Confidence::Datasheet => "",
            Confidence::Reported => "†",
            Confidence::Low => "‡",
            Confidence::Assumption => "*",
            Confidence::Measured => "(m)",
        }
    }
}

/// A number with its provenance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Figure {
    pub value: f64,
    pub confidence: Confidence,
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A yes/no fact with its provenance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Flag {
    pub value: bool,
    pub confidence: Confidence,
    pub source: String,
}

/// A text fact with its provenance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fact {
    pub text: String,
    pub confidence: Confidence,
    pub source: String,
}

/// One accelerator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Chip {
    pub id: String,
    pub name: String,
    pub vendor: String,
    pub year: u32,
    /// FP8 encodings the hardware takes, as text.
    pub fp8_hw: String,
    /// Hardware block-scaled (MX / UE8M0) formats, as text.
    pub mx_hw: String,
    pub fp8_native: bool,
    pub fp4_native: bool,
    pub memory_gb: Option<Figure>,
    pub mem_bw_gbs: Option<Figure>,
    pub bf16_tflops: Option<Figure>,
    pub fp8_tflops: Option<Figure>,
    pub int8_tops: Option<Figure>,
    pub fp4_tflops: Option<Figure>,
    pub die_area_mm2: Option<Figure>,
    pub tdp_w: Option<Figure>,
    pub interconnect: Option<Fact>,
    pub dequant_on_the_fly: Option<Flag>,
    pub china_status: Option<Fact>,
}

impl Chip {
    /// Every figure of the row with its name, for checks and listings.
    pub fn figures(&self) -> Vec<(&'static str, &Figure)> {
        [
            ("memory_gb", &self.memory_gb),
            ("mem_bw_gbs", &self.mem_bw_gbs),
            ("bf16_tflops", &self.bf16_tflops),
            ("fp8_tflops", &self.fp8_tflops),
            ("int8_tops", &self.int8_tops),
            ("fp4_tflops", &self.fp4_tflops),
            ("die_area_mm2", &self.die_area_mm2),
            ("tdp_w", &self.tdp_w),
        ]
        .into_iter()
        .filter_map(|(n, f)| f.as_ref().map(|f| (n, f)))
        .collect()
    }

    /// Whether narrow weights stay narrow in memory on chips that cannot compute on them.
    pub fn dequantizes_on_the_fly(&self) -> bool {
        self.dequant_on_the_fly.as_ref().is_some_and(|f| f.value)
    }
}

/// The thresholds of the export rule, from the catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportRule {
    pub name: String,
    pub date: String,
    pub source: String,
    pub tpp_a: f64,
    pub tpp_a_with_pd: f64,
    pub pd_a: f64,
    pub tpp_b_low: f64,
    pub pd_b_low: f64,
    pub pd_b_alt_low: f64,
}

/// The parsed catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    pub export_rule: ExportRule,
    #[serde(rename = "chip")]
    pub chips: Vec<Chip>,
}

impl Catalog {
    /// The catalog shipped with ue8.
    pub fn builtin() -> Result<Self> {
        Self::parse(CATALOG_TOML, "data/chips.toml")
    }

    /// Parse and check a catalog: ids unique, every figure finite, non-negative, with a source.
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let cat: Catalog = toml::from_str(text).map_err(|e| PlanError::Catalog {
            origin: origin.to_string(),
            problem: e.to_string(),
        })?;
        let bad = |problem: String| PlanError::Catalog {
            origin: origin.to_string(),
            problem,
        };
        let mut ids = std::collections::HashSet::new();
        for chip in &cat.chips {
            if !ids.insert(chip.id.as_str()) {
                return Err(bad(format!("chip id `{}` appears twice", chip.id)));
            }
            for (name, f) in chip.figures() {
                if !f.value.is_finite() || f.value < 0.0 {
                    return Err(bad(format!(
                        "{}: {name} = {} is not a size",
                        chip.id, f.value
                    )));
                }
                if f.source.trim().is_empty() {
                    return Err(bad(format!("{}: {name} has no source", chip.id)));
                }
            }
        }
        Ok(cat)
    }

    /// Chips matching a `--chip` argument: `all`, an id, or a case-insensitive part of the name.
    pub fn select(&self, query: &str) -> Result<Vec<&Chip>> {
        if query.eq_ignore_ascii_case("all") {
            return Ok(self.chips.iter().collect());
        }
        let q = query.to_ascii_lowercase();
        if let Some(c) = self.chips.iter().find(|c| c.id == q) {
            return Ok(vec![c]);
        }
        let hits: Vec<&Chip> = self
            .chips
            .iter()
            .filter(|c| c.name.to_ascii_lowercase().contains(&q))
            .collect();
        if hits.is_empty() {
            return Err(PlanError::UnknownChip {
                name: query.to_string(),
            });
        }
        Ok(hits)
    }
}

/// The row for this machine's CPU: memory bandwidth measured by ue8 (see `bandwidth`), memory size from
/// the OS where it can be read. Its compute peak is not catalogued, so no prefill bound is given.
pub fn this_cpu_row(measured_bw_gbs: f64, threads: usize, seconds: f64) -> Chip {
    let memory_gb = total_memory_bytes().map(|b| Figure {
        value: b as f64 / 1e9,
        confidence: Confidence::Measured,
        source: "MemTotal in /proc/meminfo".to_string(),
        note: None,
    });
    Chip {
        id: "this-cpu".to_string(),
        name: format!("This machine's CPU ({threads} threads)"),
        vendor: "local".to_string(),
        year: 0,
        fp8_hw: "no (ue8 widens FP8 to f32 inside its kernels)".to_string(),
        mx_hw: "no (ue8 widens MX to f32 inside its kernels)".to_string(),
        fp8_native: false,
        fp4_native: false,
        memory_gb,
        mem_bw_gbs: Some(Figure {
            value: measured_bw_gbs,
            confidence: Confidence::Measured,
            source: format!(
                "measured by ue8: {threads}-thread streaming read of a buffer larger than the caches, {seconds:.2} s{}",
                if cfg!(debug_assertions) {
                    " (debug build: unoptimized, far below the real figure; use a release build)"
                } else {
                    ""
                }
            ),
            note: None,
        }),
        bf16_tflops: None,
        fp8_tflops: None,
        int8_tops: None,
        fp4_tflops: None,
        die_area_mm2: None,
        tdp_w: None,
        interconnect: None,
        dequant_on_the_fly: Some(Flag {
            value: true,
            confidence: Confidence::Measured,
            source: "ue8's CPU engine reads quantized weights and widens them in registers".to_string(),
        }),
        china_status: None,
    }
}

/// Physical memory of this machine, where the OS says.
fn total_memory_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}
