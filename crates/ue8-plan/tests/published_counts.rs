//! Parameter counts of every built-in model against the figures their publishers give, and against
//! hand-written formulas of the architecture. Each tolerance says where it comes from: the published
//! figure's rounding.

use ue8_plan::builtin::load_model;
use ue8_plan::{ParamBreakdown, ParamTotals};

fn totals(name: &str) -> ParamTotals {
    let spec = load_model(name).unwrap_or_else(|e| panic!("{name}: {e}"));
    ParamBreakdown::of(&spec).totals()
}

const B: f64 = 1e9;
/// A figure published to the nearest billion ("671B") is exact to half a billion.
const NEAREST_BILLION: f64 = 0.5e9;
/// A figure published with two decimals in billions ("8.03B") is exact to 0.005B when rounded; Qwen's
/// "7.61B" is 7.6156B truncated, so figures that may be truncated get one unit of the last digit.
const TWO_DECIMALS_ROUNDED: f64 = 0.005e9;
const TWO_DECIMALS_TRUNCATED: f64 = 0.01e9;
/// "70.6B" / "1.6T": one decimal, rounded.
const ONE_DECIMAL_B: f64 = 0.05e9;
const ONE_DECIMAL_T: f64 = 0.05e12;
/// DeepSeek publishes the MTP module as 685B - 671B = 14B, a difference of two figures each rounded to
/// the nearest billion, so it is exact to one billion.
const DIFFERENCE_OF_TWO_ROUNDED: f64 = 1.0e9;

fn assert_near(what: &str, got: u64, published: f64, tol: f64) {
    let diff = (got as f64 - published).abs();
    assert!(
        diff <= tol,
        "{what}: counted {got} ({:.3}B), published {:.3}B, difference {:.4}B > allowed {:.4}B",
        got as f64 / B,
        published / B,
        diff / B,
        tol / B
    );
}

#[test]
fn deepseek_v3_family_671b_total_37b_active_mtp_apart() {
    for name in ["deepseek-v3", "deepseek-v3.1", "deepseek-r1"] {
        let t = totals(name);
        // Published: "671B total, 37B activated per token" and "685B = 671B main + 14B MTP".
        assert_near(name, t.total, 671.0 * B, NEAREST_BILLION);
        assert_near(name, t.active, 37.0 * B, NEAREST_BILLION);
        assert_near(name, t.mtp_total, 14.0 * B, DIFFERENCE_OF_TWO_ROUNDED);
    }
}

#[test]
fn deepseek_v3_total_equals_the_architecture_written_out() {
    let (v, h, layers, dense_layers) = (129_280u64, 7168u64, 61u64, 3u64);
    let heads = 128u64;
    let attn = h * 1536 + 1536 + 1536 * heads * (128 + 64) // q_a, q_a_layernorm, q_b
        + h * (512 + 64) + 512 + 512 * heads * (128 + 128) // kv_a_proj_with_mqa, kv_a_layernorm, kv_b
        + heads * 128 * h; // o_proj
    let dense = 3 * h * 18_432;
    let expert = 3 * h * 2048;
    let moe = 256 * expert + expert /* shared */ + 256 * h /* router */ + 256 /* correction bias */;
    let norms = 2 * h;
    let expected = v * h * 2
        + layers * (attn + norms)
        + dense_layers * dense
        + (layers - dense_layers) * moe
        + h;
    assert_eq!(totals("deepseek-v3").total, expected);
    let active = v * h
        + layers * (attn + norms)
        + dense_layers * dense
        + (layers - dense_layers) * (8 * expert + expert + 256 * h + 256)
        + h;
    assert_eq!(totals("deepseek-v3").active, active);
}

#[test]
fn deepseek_v4_flash_284b_13b_and_pro_1_6t_49b() {
    // Published (model cards): Flash 284B total / 13B active; Pro 1.6T / 49B.
    let f = totals("deepseek-v4-flash");
    assert_near("v4-flash total", f.total, 284.0 * B, NEAREST_BILLION);
    assert_near("v4-flash active", f.active, 13.0 * B, NEAREST_BILLION);
    let p = totals("deepseek-v4-pro");
    assert_near("v4-pro total", p.total, 1.6e12, ONE_DECIMAL_T);
    assert_near("v4-pro active", p.active, 49.0 * B, NEAREST_BILLION);
    // No published MTP figure for V4; the count must still be reported apart.
    assert!(f.mtp_total > 0 && p.mtp_total > 0);
}

#[test]
fn llama_3_1_8b_is_8_03b_and_matches_its_formula() {
    let (v, h, l, kv, hd, i) = (128_256u64, 4096u64, 32u64, 8u64, 128u64, 14_336u64);
    let per_layer = 2 * h * h + 2 * h * kv * hd + 3 * h * i + 2 * h;
    let expected = 2 * v * h + l * per_layer + h;
    let t = totals("llama-3.1-8b");
    assert_eq!(t.total, expected);
    assert_near("llama-3.1-8b", t.total, 8.03 * B, TWO_DECIMALS_ROUNDED);
    assert_eq!(
        t.active,
        expected - v * h,
        "active = all but the embedding lookup"
    );
}

#[test]
fn llama_3_1_70b_is_70_6b() {
    let (v, h, l, kv, hd, i) = (128_256u64, 8192u64, 80u64, 8u64, 128u64, 28_672u64);
    let expected = 2 * v * h + l * (2 * h * h + 2 * h * kv * hd + 3 * h * i + 2 * h) + h;
    let t = totals("llama-3.1-70b");
    assert_eq!(t.total, expected);
    // Hugging Face lists 70.6B for the checkpoint.
    assert_near("llama-3.1-70b", t.total, 70.6 * B, ONE_DECIMAL_B);
}

#[test]
fn qwen2_5_7b_is_7_61b_with_6_53b_non_embedding() {
    let t = totals("qwen2.5-7b");
    // Model card: "Number of Parameters: 7.61B; Number of Parameters (Non-Embedding): 6.53B".
    assert_near(
        "qwen2.5-7b total",
        t.total,
        7.61 * B,
        TWO_DECIMALS_TRUNCATED,
    );
    assert_near(
        "qwen2.5-7b non-embedding",
        t.total - t.embedding - t.lm_head,
        6.53 * B,
        TWO_DECIMALS_ROUNDED,
    );
}

#[test]
fn qwen3_235b_a22b() {
    let t = totals("qwen3-235b-a22b");
    // Model card: 235B total, 22B activated.
    assert_near("qwen3 total", t.total, 235.0 * B, NEAREST_BILLION);
    assert_near("qwen3 active", t.active, 22.0 * B, NEAREST_BILLION);
}

#[test]
fn gpt_oss_120b_is_116_83b_with_5_13b_active() {
    let t = totals("gpt-oss-120b");
    // gpt-oss model card: 116.83B total, 5.13B active (embedding not counted, unembedding counted).
    assert_near("gpt-oss total", t.total, 116.83 * B, TWO_DECIMALS_ROUNDED);
    assert_near("gpt-oss active", t.active, 5.13 * B, TWO_DECIMALS_ROUNDED);
}

#[test]
fn smollm2_135m_is_134_5m_with_tied_head() {
    let (v, h, l, kv, hd, i) = (49_152u64, 576u64, 30u64, 3u64, 64u64, 1536u64);
    let expected = v * h + l * (2 * h * h + 2 * h * kv * hd + 3 * h * i + 2 * h) + h;
    let t = totals("smollm2-135m");
    assert_eq!(t.total, expected, "tied head is not stored twice");
    // Published as ~134.5M (Hugging Face page: 135M).
    assert_near("smollm2", t.total, 134.5e6, 0.05e6);
    // The tied matrix is multiplied in the head, so active equals total (embedding lookup aside, it is
    // the same matrix counted once as the head).
    assert_eq!(t.active, expected);
}
