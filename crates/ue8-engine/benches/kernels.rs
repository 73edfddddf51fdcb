//! Matmul kernel throughput: GB/s of weights read per call, for every weight format on the shapes of
//! SmolLM2-135M (576x576, 1536x576, 576x1536, 49152x576), a large 4096x4096 and a DRAM-sized
//! 16384x4096, on 1 and 2 threads,
//! next to a plain memory read (sum of u64) of the same number of bytes in the same run.
//! `cargo bench -p ue8-engine --bench kernels` runs criterion (means). With `UE8_BENCH_TABLE=1` it
//! prints instead a markdown table of best-of-N times, kernel and memory read interleaved call by call:
//! on a shared machine the best run is the one no other process interrupted, which is what the ratio
//! to the memory read needs. Figures go to docs/benchmarks/kernels.md.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use ue8_engine::kernels::{Activations, Isa, MxElement, Pool, WeightData, WeightMatrix};

const SHAPES: [(usize, usize); 6] = [
    (576, 576),
    (1536, 576),
    (576, 1536),
    (49152, 576),
    (4096, 4096),
    // 64 MB of FP8: beyond this machine's 32 MB L3, so the read peer and the kernel come from DRAM.
    (16384, 4096),
];

#[derive(Clone, Copy)]
enum Fmt {
    F32,
    Bf16,
    F16,
    E4m3Tiles,
    Mx(MxElement),
}

const FORMATS: [(&str, Fmt); 8] = [
    ("f32", Fmt::F32),
    ("bf16", Fmt::Bf16),
    ("f16", Fmt::F16),
    ("e4m3-tiles", Fmt::E4m3Tiles),
    ("mxfp8-e4m3", Fmt::Mx(MxElement::E4M3)),
    ("mxfp8-e5m2", Fmt::Mx(MxElement::E5M2)),
    ("mxfp6-e3m2", Fmt::Mx(MxElement::E3M2)),
    ("mxfp4", Fmt::Mx(MxElement::E2M1)),
];

/// Owned storage of a random weight matrix in one format.
struct Stored {
    bytes: Vec<u8>,
    f32_scales: Vec<f32>,
    u8_scales: Vec<u8>,
    fmt: Fmt,
    n: usize,
    k: usize,
}

fn pseudo_random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut s = seed | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 24) as u8
        })
        .collect()
}

impl Stored {
    fn new(fmt: Fmt, n: usize, k: usize) -> Stored {
        let (row_bytes, f32_scales, u8_scales) = match fmt {
            Fmt::F32 => (4 * k, vec![], vec![]),
            Fmt::Bf16 | Fmt::F16 => (2 * k, vec![], vec![]),
            Fmt::E4m3Tiles => (
                k,
                vec![2f32.powi(-10); n.div_ceil(128) * k.div_ceil(128)],
                vec![],
            ),
            Fmt::Mx(e) => (
                e.row_bytes(k).unwrap_or(0),
                vec![],
                vec![120u8; n * k.div_ceil(32)],
            ),
        };
        let mut bytes = pseudo_random_bytes(n * row_bytes, 42);
        match fmt {
            // Finite, moderate values: f32 from small integers, 16-bit formats with a clean exponent.
            Fmt::F32 => {
                for ch in bytes.chunks_exact_mut(4) {
                    let v = f32::from(ch[0]) / 256.0 - 0.5;
                    ch.copy_from_slice(&v.to_le_bytes());
                }
            }
            Fmt::Bf16 | Fmt::F16 => {
                for ch in bytes.chunks_exact_mut(2) {
                    ch[1] = (ch[1] & 0x83) | 0x38;
                }
            }
            // Clear the E4M3 NaN codes (the loader's job in real use).
            Fmt::E4m3Tiles | Fmt::Mx(MxElement::E4M3) => bytes
                .iter_mut()
                .filter(|b| **b & 0x7F == 0x7F)
                .for_each(|b| *b &= 0xFE),
            Fmt::Mx(MxElement::E5M2) => bytes.iter_mut().for_each(|b| *b &= 0xBF),
            _ => {}
        }
        Stored {
            bytes,
            f32_scales,
            u8_scales,
            fmt,
            n,
            k,
        }
    }

    fn matrix(&self) -> WeightMatrix<'_> {
        let data = match self.fmt {
            Fmt::F32 => WeightData::F32(&self.bytes),
            Fmt::Bf16 => WeightData::Bf16(&self.bytes),
            Fmt::F16 => WeightData::F16(&self.bytes),
            Fmt::E4m3Tiles => WeightData::E4m3Tiles {
                q: &self.bytes,
                scales: &self.f32_scales,
            },
            Fmt::Mx(elem) => WeightData::Mx {
                elem,
                data: &self.bytes,
                scales: &self.u8_scales,
            },
        };
        match WeightMatrix::new(self.n, self.k, data) {
            Ok(w) => w,
            Err(e) => panic!("bench matrix: {e}"),
        }
    }
}

/// The peer: read `bytes` once as u64 words, split across the pool's threads like a matmul.
fn memory_read(pool: &Pool, bytes: &[u64]) -> u64 {
    let total = AtomicU64::new(0);
    pool.parallel_chunks(bytes.len(), 1024, |range| {
        let words = &bytes[range];
        let mut acc = [0u64; 4];
        let mut chunks = words.chunks_exact(4);
        for c in &mut chunks {
            acc[0] = acc[0].wrapping_add(c[0]);
            acc[1] = acc[1].wrapping_add(c[1]);
            acc[2] = acc[2].wrapping_add(c[2]);
            acc[3] = acc[3].wrapping_add(c[3]);
        }
        let tail: u64 = chunks.remainder().iter().fold(0, |a, &b| a.wrapping_add(b));
        let sum = acc.iter().fold(tail, |a, &b| a.wrapping_add(b));
        total.fetch_add(sum, Ordering::Relaxed);
    });
    total.load(Ordering::Relaxed)
}

fn bench_decode(c: &mut Criterion) {
    let pools: Vec<Pool> = [1usize, 2]
        .iter()
        .map(|&t| Pool::new(t).unwrap_or_else(|e| panic!("pool: {e}")))
        .collect();
    for (n, k) in SHAPES {
        let mut group = c.benchmark_group(format!("gemv_{n}x{k}"));
        group.sample_size(10);
        group.warm_up_time(Duration::from_millis(300));
        group.measurement_time(Duration::from_millis(700));
        let x: Vec<f32> = (0..k).map(|i| ((i % 17) as f32 - 8.0) / 8.0).collect();
        let mut y = vec![0f32; n];
        for (name, fmt) in FORMATS {
            let stored = Stored::new(fmt, n, k);
            let w = stored.matrix();
            group.throughput(Throughput::Bytes(w.bytes() as u64));
            for pool in &pools {
                let id = BenchmarkId::new(name, format!("t{}", pool.threads()));
                group.bench_function(id, |b| {
                    b.iter(|| {
                        pool.matmul(&w, black_box(&x), 1, &mut y)
                            .unwrap_or_else(|e| panic!("{e}"));
                        black_box(&y);
                    })
                });
            }
            // The peer read of the same byte count, right after this format, same pools.
            let words = vec![1u64; w.bytes().div_ceil(8)];
            for pool in &pools {
                let id =
                    BenchmarkId::new(format!("{name}-memread"), format!("t{}", pool.threads()));
                group.bench_function(id, |b| {
                    b.iter(|| black_box(memory_read(pool, black_box(&words))))
                });
            }
        }
        group.finish();
    }
}

fn bench_prefill(c: &mut Criterion) {
    let pools: Vec<Pool> = [1usize, 2]
        .iter()
        .map(|&t| Pool::new(t).unwrap_or_else(|e| panic!("pool: {e}")))
        .collect();
    let (n, k, m) = (1536, 576, 64);
    let mut group = c.benchmark_group(format!("gemm_{n}x{k}_m{m}"));
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(300));
    group.measurement_time(Duration::from_millis(700));
    // Throughput in elements = multiply-adds, so criterion's "elem/s" reads as MAC/s.
    group.throughput(Throughput::Elements((n * k * m) as u64));
    let x: Vec<f32> = (0..m * k).map(|i| ((i % 13) as f32 - 6.0) / 8.0).collect();
    let mut y = vec![0f32; m * n];
    for (name, fmt) in FORMATS {
        let stored = Stored::new(fmt, n, k);
        let w = stored.matrix();
        for pool in &pools {
            let id = BenchmarkId::new(name, format!("t{}", pool.threads()));
            group.bench_function(id, |b| {
                b.iter(|| {
                    pool.matmul(&w, black_box(&x), m, &mut y)
                        .unwrap_or_else(|e| panic!("{e}"));
                    black_box(&y);
                })
            });
        }
    }
    group.finish();
}

/// Best time of `f` over at least `min_reps` calls and at least `min_time` of calls.
fn best_of(f: &mut dyn FnMut(), min_reps: usize, min_time: Duration) -> f64 {
    let start = Instant::now();
    let mut best = f64::MAX;
    let mut reps = 0;
    while reps < min_reps || start.elapsed() < min_time {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64());
        reps += 1;
    }
    best
}

/// The markdown table of docs/benchmarks/kernels.md (best of N, GB/s = 1e9 bytes/s).
fn table() {
    let pools: Vec<Pool> = [1usize, 2]
        .iter()
        .map(|&t| Pool::new(t).unwrap_or_else(|e| panic!("pool: {e}")))
        .collect();
    let isa = pools.first().map(|p| p.isa().name()).unwrap_or("?");
    println!("Kernels: {isa}. Best of >= 30 calls and >= 0.4 s per cell; read = sum of u64 over the same bytes.");
    println!();
    println!("| matrix | format | MB | 1 thread GB/s | read 1t | ratio | 2 threads GB/s | read 2t | ratio |");
    println!("|---|---|---|---|---|---|---|---|---|");
    let budget = Duration::from_millis(400);
    for (n, k) in SHAPES {
        let x: Vec<f32> = (0..k).map(|i| ((i % 17) as f32 - 8.0) / 8.0).collect();
        let mut y = vec![0f32; n];
        for (name, fmt) in FORMATS {
            let stored = Stored::new(fmt, n, k);
            let w = stored.matrix();
            let bytes = w.bytes() as f64;
            let words = vec![1u64; w.bytes().div_ceil(8)];
            let mut cells = Vec::new();
            for pool in &pools {
                let mut kernel = || {
                    pool.matmul(&w, black_box(&x), 1, &mut y)
                        .unwrap_or_else(|e| panic!("{e}"));
                    black_box(&y);
                };
                let mut read = || {
                    black_box(memory_read(pool, black_box(&words)));
                };
                // Interleave so that both see the same machine state.
                let (mut tk, mut tr) = (f64::MAX, f64::MAX);
                for _ in 0..4 {
                    tk = tk.min(best_of(&mut kernel, 8, budget / 4));
                    tr = tr.min(best_of(&mut read, 8, budget / 4));
                }
                let (gk, gr) = (bytes / tk / 1e9, bytes / tr / 1e9);
                cells.push(format!("{gk:.1} | {gr:.1} | {:.2}", gk / gr));
            }
            println!(
                "| {n}x{k} | {name} | {:.1} | {} |",
                bytes / 1e6,
                cells.join(" | ")
            );
        }
    }
    prefill_table(&pools, budget);
}

/// Prefill GMAC/s of every format at 1 and 2 threads (`UE8_BENCH_PREFILL=1` prints only this).
fn prefill_table(pools: &[Pool], budget: Duration) {
    let (n, k, m) = (1536, 576, 128);
    println!();
    println!("Prefill, {n}x{k}, m = {m} tokens: GMAC/s (multiply-adds per second).");
    println!();
    println!("| format | 1 thread | 2 threads |");
    println!("|---|---|---|");
    let x: Vec<f32> = (0..m * k).map(|i| ((i % 13) as f32 - 6.0) / 8.0).collect();
    let mut y = vec![0f32; m * n];
    for (name, fmt) in FORMATS {
        let stored = Stored::new(fmt, n, k);
        let w = stored.matrix();
        let mut cells = Vec::new();
        for pool in pools {
            let t = best_of(
                &mut || {
                    pool.matmul(&w, black_box(&x), m, &mut y)
                        .unwrap_or_else(|e| panic!("{e}"));
                    black_box(&y);
                },
                10,
                budget,
            );
            cells.push(format!("{:.1}", (n * k * m) as f64 / t / 1e9));
        }
        println!("| {name} | {} |", cells.join(" | "));
    }
}

/// MXFP4 with f32 and int8 activations, per instruction set, at 1 and 4 tokens: G weights/s per
/// thread (`UE8_BENCH_INT8=1`). One thread, so that the figure is the kernel's, not the pool's.
fn int8_table(budget: Duration) {
    println!("MXFP4, 1 thread: G weights per second (decode m = 1; m = 4 counts weight x token).");
    println!();
    println!("| shape | isa | m | f32 activations | int8 activations |");
    println!("|---|---|---|---|---|");
    for (n, k) in [(1536, 576), (576, 1536), (49152, 576)] {
        let stored = Stored::new(Fmt::Mx(MxElement::E2M1), n, k);
        let w = stored.matrix();
        for isa in Isa::supported().into_iter().filter(|&i| i != Isa::Scalar) {
            for m in [1usize, 4, 64] {
                let x: Vec<f32> = (0..m * k).map(|i| ((i % 13) as f32 - 6.0) / 8.0).collect();
                let mut y = vec![0f32; m * n];
                let mut cells = Vec::new();
                for acts in [Activations::F32, Activations::Int8] {
                    let mut pool = Pool::new(1).unwrap_or_else(|e| panic!("pool: {e}"));
                    pool.set_isa(isa);
                    pool.set_activations(acts);
                    let t = best_of(
                        &mut || {
                            pool.matmul(&w, black_box(&x), m, &mut y)
                                .unwrap_or_else(|e| panic!("{e}"));
                            black_box(&y);
                        },
                        20,
                        budget,
                    );
                    cells.push(format!("{:.1}", (n * k * m) as f64 / t / 1e9));
                }
                println!("| {n}x{k} | {} | {m} | {} |", isa.name(), cells.join(" | "));
            }
        }
    }
}

criterion_group!(benches, bench_decode, bench_prefill);

fn main() {
    if std::env::var_os("UE8_BENCH_PREFILL").is_some() {
        let pools: Vec<Pool> = [1usize, 2]
            .iter()
            .map(|&t| Pool::new(t).unwrap_or_else(|e| panic!("pool: {e}")))
            .collect();
        prefill_table(&pools, Duration::from_millis(400));
        return;
    }
    if std::env::var_os("UE8_BENCH_INT8").is_some() {
        int8_table(Duration::from_millis(300));
        return;
    }
    if std::env::var_os("UE8_BENCH_TABLE").is_some() {
        table();
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
