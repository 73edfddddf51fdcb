//! Throughput of the scalar conversions (the `*_ref` paths of the kernels and every non-SIMD caller),
//! with a `memcpy` of the same bytes as the yardstick. The numpy + ml_dtypes peer for the same work
//! is `benches/peer_ml_dtypes.py`; figures are in `docs/benchmarks/formats.md`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use ue8_formats::{decode_table, Element, Overflow, E2M1, E4M3, E8M0};

/// Elements per run: 1 Mi f32 = 4 MiB, beyond L2 so memory effects show as they would on a tensor.
const N: usize = 1 << 20;

/// Deterministic inputs spread like weights: a xorshift stream mapped to roughly N(0, 1)-sized values
/// (sum of uniforms) times a spread of binades, so every code path is taken.
fn inputs() -> Vec<f32> {
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 40) as f32 / (1u64 << 24) as f32
    };
    (0..N)
        .map(|i| (next() + next() + next() - 1.5) * 2f32.powi((i % 16) as i32 - 6))
        .collect()
}

fn bench(c: &mut Criterion) {
    let xs = inputs();
    let mut g = c.benchmark_group("scalar");
    g.throughput(Throughput::Elements(N as u64));

    let mut dst = vec![0f32; N];
    g.bench_function(BenchmarkId::new("memcpy_f32", N), |b| {
        b.iter(|| dst.copy_from_slice(black_box(&xs)));
    });

    let mut codes = vec![0u8; N];
    for (name, mode) in [("saturate", Overflow::Saturate), ("ieee", Overflow::Ieee)] {
        g.bench_function(BenchmarkId::new(format!("f32_to_e4m3_{name}"), N), |b| {
            b.iter(|| {
                for (q, &x) in codes.iter_mut().zip(black_box(&xs)) {
                    *q = E4M3::from_f32(x, mode).to_bits();
                }
            });
        });
    }
    g.bench_function(BenchmarkId::new("f32_to_e2m1_saturate", N), |b| {
        b.iter(|| {
            for (q, &x) in codes.iter_mut().zip(black_box(&xs)) {
                *q = E2M1::from_f32(x, Overflow::Saturate).to_bits();
            }
        });
    });
    g.bench_function(BenchmarkId::new("f32_to_e8m0_cast", N), |b| {
        b.iter(|| {
            for (q, &x) in codes.iter_mut().zip(black_box(&xs)) {
                *q = E8M0::from_f32(x.abs(), Overflow::Ieee).to_bits();
            }
        });
    });
    g.bench_function(BenchmarkId::new("e8m0_ceil_pow2", N), |b| {
        b.iter(|| {
            for (q, &x) in codes.iter_mut().zip(black_box(&xs)) {
                *q = E8M0::ceil_pow2(x).to_bits();
            }
        });
    });

    for (q, &x) in codes.iter_mut().zip(&xs) {
        *q = E4M3::from_f32(x, Overflow::Saturate).to_bits();
    }
    g.bench_function(BenchmarkId::new("e4m3_to_f32", N), |b| {
        b.iter(|| {
            for (y, &q) in dst.iter_mut().zip(black_box(&codes)) {
                *y = E4M3(q).to_f32();
            }
        });
    });
    let table = decode_table::<E4M3>();
    g.bench_function(BenchmarkId::new("e4m3_to_f32_table", N), |b| {
        b.iter(|| {
            for (y, &q) in dst.iter_mut().zip(black_box(&codes)) {
                *y = table[usize::from(q)];
            }
        });
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
