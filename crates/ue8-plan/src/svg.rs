//! A roofline chart as hand-written SVG: per chip, attainable TFLOPS against arithmetic intensity
//! (FLOP per byte read), both log-scaled, with the model's decode and prefill intensities marked.

use crate::plan::Plan;
use std::fmt::Write as _;

const WIDTH: f64 = 900.0;
const HEIGHT: f64 = 560.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 260.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 60.0;
/// Intensity axis range, FLOP/byte (decode of small batches sits near 1-10, prefill far right).
const X_MIN: f64 = 0.1;
const X_MAX: f64 = 10_000.0;
/// Performance axis range, TFLOPS.
const Y_MIN: f64 = 0.01;
const Y_MAX: f64 = 20_000.0;
const COLORS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf",
];

fn x_of(i: f64) -> f64 {
    let t = (i.clamp(X_MIN, X_MAX).log10() - X_MIN.log10()) / (X_MAX.log10() - X_MIN.log10());
    LEFT + t * (WIDTH - LEFT - RIGHT)
}

fn y_of(p: f64) -> f64 {
    let t = (p.clamp(Y_MIN, Y_MAX).log10() - Y_MIN.log10()) / (Y_MAX.log10() - Y_MIN.log10());
    HEIGHT - BOTTOM - t * (HEIGHT - TOP - BOTTOM)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Roofline of each distinct chip in the plan (bandwidth slope, then the highest peak among the formats
/// planned), and vertical marks for the decode intensity of each format at the planned batch.
pub fn roofline_svg(plan: &Plan, title: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="22" font-size="15">{}</text>"#,
        LEFT,
        escape(title)
    );
    // Axes and decade grid.
    let mut d = X_MIN;
    while d <= X_MAX * 1.0001 {
        let x = x_of(d);
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" stroke="#ddd"/>"##,
            HEIGHT - BOTTOM
        );
        let _ = writeln!(
            s,
            r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{d}</text>"#,
            HEIGHT - BOTTOM + 16.0
        );
        d *= 10.0;
    }
    let mut p = Y_MIN;
    while p <= Y_MAX * 1.0001 {
        let y = y_of(p);
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/>"##,
            WIDTH - RIGHT
        );
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{p}</text>"#,
            LEFT - 6.0,
            y + 4.0
        );
        p *= 10.0;
    }
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">arithmetic intensity (FLOP per byte read)</text>"#,
        (LEFT + WIDTH - RIGHT) / 2.0,
        HEIGHT - 18.0
    );
    let _ = writeln!(
        s,
        r#"<text transform="translate(20,{:.1}) rotate(-90)" text-anchor="middle">attainable TFLOPS (per chip)</text>"#,
        (TOP + HEIGHT - BOTTOM) / 2.0
    );
    // Rooflines.
    let mut seen: Vec<&str> = Vec::new();
    let mut legend_y = TOP + 10.0;
    for row in &plan.rows {
        if seen.contains(&row.chip.as_str()) {
            continue;
        }
        let peak = plan
            .rows
            .iter()
            .filter(|r| r.chip == row.chip)
            .filter_map(|r| r.compute_peak_tflops)
            .fold(None, |a: Option<f64>, v| Some(a.map_or(v, |a| a.max(v))));
        let (Some(bw_bytes), Some(peak)) = (row.chip_bandwidth_bytes_per_s, peak) else {
            continue;
        };
        seen.push(&row.chip);
        let color = COLORS[(seen.len() - 1) % COLORS.len()];
        let bw_tb = bw_bytes / 1e12;
        let ridge = peak / bw_tb;
        let (x0, y0) = (X_MIN, bw_tb * X_MIN);
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{:.1},{:.1} {:.1},{:.1} {:.1},{:.1}"/>"#,
            x_of(x0),
            y_of(y0),
            x_of(ridge),
            y_of(peak),
            x_of(X_MAX),
            y_of(peak)
        );
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{legend_y:.1}" fill="{color}">{}</text>"#,
            WIDTH - RIGHT + 10.0,
            escape(&row.chip_name)
        );
        legend_y += 16.0;
    }
    // Model intensities: decode per format (FLOPs of a step / bytes it reads), prefill.
    let active = plan.model.params.active as f64;
    for (i, f) in plan.formats.iter().enumerate() {
        let bytes = f.decode_weight_bytes_per_step
            + (plan.model.kv_bytes_per_sequence * plan.options.batch) as f64;
        if bytes <= 0.0 {
            continue;
        }
        let intensity = 2.0 * active * plan.options.batch as f64 / bytes;
        let x = x_of(intensity);
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" stroke="#444" stroke-dasharray="4 3"/>"##,
            HEIGHT - BOTTOM
        );
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{:.1}" fill="#444" transform="rotate(-90 {:.1} {:.1})">decode {} (batch {})</text>"##,
            x - 4.0,
            TOP + 120.0 + 10.0 * i as f64,
            x - 4.0,
            TOP + 120.0 + 10.0 * i as f64,
            f.format.name(),
            plan.options.batch
        );
    }
    let _ = writeln!(s, "</svg>");
    s
}
