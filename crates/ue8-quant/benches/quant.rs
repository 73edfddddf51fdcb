//! Single-thread throughput of the hot kernels, each variant this CPU runs, next to a memcpy of
//! the same bytes measured in the same run. After criterion's own output, prints a table of
//! Gelem/s and the ratio to memcpy (read back from criterion's estimates).
//!
//! Two groups: `quant` measures wall-clock time (criterion's default); `quant_cpu` measures the
//! benchmark thread's CPU time (Linux `/proc/thread-self/schedstat`), i.e. Gelem/s per core even
//! when a shared machine's scheduler takes the core away part of the time.
//!
//! `cargo bench -p ue8-quant --bench quant` (env `UE8_BENCH_ROWS` / `UE8_BENCH_COLS` change the
//! matrix, default 2048 x 7168 like a DeepSeek projection).

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{BenchmarkId, Criterion, Throughput};
use half::bf16;
use ue8_quant::mxfp4::{dequantize_mxfp4_to_bf16_with, quantize_mxfp4_bf16_with};
use ue8_quant::{BlockFp8, Isa, MxScaleRule, MxScheme, NonFinite};

fn dims() -> (usize, usize) {
    let get = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    (get("UE8_BENCH_ROWS", 2048), get("UE8_BENCH_COLS", 7168))
}

fn weights(len: usize) -> Vec<bf16> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // roughly normal-ish magnitudes around 0.02, like trained weights
            let u = (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
            bf16::from_f32(u * 0.05)
        })
        .collect()
}

/// CPU time of the calling thread in ns (0 where /proc is unavailable).
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// Criterion measurement: CPU time of the benchmark thread.
struct CpuTime;

struct NsFormatter;

impl ValueFormatter for NsFormatter {
    fn scale_values(&self, _typical: f64, _values: &mut [f64]) -> &'static str {
        "ns"
    }
    fn scale_throughputs(&self, _typical: f64, t: &Throughput, values: &mut [f64]) -> &'static str {
        let elems = match *t {
            Throughput::Elements(e) | Throughput::ElementsAndBytes { elements: e, .. } => e,
            Throughput::Bytes(b) | Throughput::BytesDecimal(b) => b,
            Throughput::Bits(b) => b,
        } as f64;
        for v in values {
            *v = elems / *v; // per ns = G per s
        }
        "G/s"
    }
    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}

impl Measurement for CpuTime {
    type Intermediate = u64;
    type Value = u64;
    fn start(&self) -> u64 {
        thread_cpu_ns()
    }
    fn end(&self, i: u64) -> u64 {
        thread_cpu_ns().saturating_sub(i)
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, v: &u64) -> f64 {
        *v as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &NsFormatter
    }
}

fn bench<M: Measurement>(c: &mut Criterion<M>, group: &str) {
    let (n, k) = dims();
    let len = n * k;
    let src = weights(len);
    let scheme = BlockFp8::WEIGHT;
    let (gr, gc) = scheme.scale_grid(n, k).expect("shape");
    let mut q = vec![0u8; len];
    let mut s = vec![0f32; gr * gc];
    let mut out = vec![bf16::ZERO; len];
    let mut copy_dst = vec![bf16::ZERO; len];
    let nb = MxScheme::blocks_per_row(k);
    let mut packed = vec![0u8; n * nb * 16];
    let mut mx_scales = vec![0u8; n * nb];

    let mut g = c.benchmark_group(group);
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(len as u64));
    g.bench_function("memcpy_bf16", |b| {
        b.iter(|| copy_dst.copy_from_slice(black_box(&src)))
    });
    for isa in Isa::available() {
        g.bench_function(
            BenchmarkId::new("quantize_bf16_e4m3_ue8m0", isa.name()),
            |b| {
                b.iter(|| {
                    scheme
                        .quantize_with(
                            isa,
                            black_box(&src),
                            n,
                            k,
                            NonFinite::Reject,
                            &mut q,
                            &mut s,
                        )
                        .expect("quantize")
                })
            },
        );
        g.bench_function(
            BenchmarkId::new("dequantize_e4m3_ue8m0_bf16", isa.name()),
            |b| {
                b.iter(|| {
                    scheme
                        .dequantize_to_bf16_with(isa, black_box(&q), &s, n, k, &mut out)
                        .expect("dequantize")
                })
            },
        );
        g.bench_function(BenchmarkId::new("quantize_bf16_mxfp4", isa.name()), |b| {
            b.iter(|| {
                quantize_mxfp4_bf16_with(
                    isa,
                    MxScaleRule::Floor,
                    black_box(&src),
                    n,
                    k,
                    &mut packed,
                    &mut mx_scales,
                )
                .expect("mxfp4 quantize")
            })
        });
        g.bench_function(BenchmarkId::new("dequantize_mxfp4_bf16", isa.name()), |b| {
            b.iter(|| {
                dequantize_mxfp4_to_bf16_with(isa, black_box(&packed), &mx_scales, n, k, &mut out)
                    .expect("mxfp4 dequantize")
            })
        });
    }
    g.finish();
}

/// Criterion's output directory: `<target>/criterion`, found from this executable's path
/// (`<target>/release/deps/quant-*`).
fn criterion_dir() -> Option<PathBuf> {
    if let Ok(home) = std::env::var("CRITERION_HOME") {
        return Some(PathBuf::from(home));
    }
    let exe = std::env::current_exe().ok()?;
    Some(exe.parent()?.parent()?.parent()?.join("criterion"))
}

/// Mean time (ns) of one benchmark from criterion's estimates.json.
fn mean_ns(dir: &Path, group: &str, id: &str) -> Option<f64> {
    let path = dir.join(group).join(id).join("new").join("estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["mean"]["point_estimate"].as_f64()
}

fn summary(group: &str, what: &str) {
    let (n, k) = dims();
    let len = (n * k) as f64;
    let Some(dir) = criterion_dir() else { return };
    let Some(copy) = mean_ns(&dir, group, "memcpy_bf16") else {
        return;
    };
    println!("\nue8-quant kernels, 1 thread, {what}, {n} x {k} = {len:.0} elements");
    println!(
        "{:<34} {:>10} {:>12}",
        "kernel/variant", "Gelem/s", "x memcpy"
    );
    println!(
        "{:<34} {:>10.3} {:>12.2}",
        "memcpy_bf16 (2 B/elem)",
        len / copy,
        1.0
    );
    for name in [
        "quantize_bf16_e4m3_ue8m0",
        "dequantize_e4m3_ue8m0_bf16",
        "quantize_bf16_mxfp4",
        "dequantize_mxfp4_bf16",
    ] {
        for isa in Isa::available() {
            let id = format!("{name}/{}", isa.name());
            if let Some(t) = mean_ns(&dir, group, &id) {
                println!("{:<34} {:>10.3} {:>12.2}", id, len / t, copy / t);
            }
        }
    }
}

fn main() {
    let mut wall = Criterion::default().configure_from_args();
    bench(&mut wall, "quant");
    wall.final_summary();
    let mut cpu = Criterion::default()
        .with_measurement(CpuTime)
        .configure_from_args();
    bench(&mut cpu, "quant_cpu");
    cpu.final_summary();
    summary("quant", "wall-clock time");
    summary("quant_cpu", "thread CPU time");
}
