#!/usr/bin/env python3
"""The numpy + ml_dtypes peer of benches/scalar.rs: the same conversions on 1 Mi f32 of the same
distribution, best of several timed runs, printed as Melem/s. Run both back to back on an idle machine:
    python3 crates/ue8-formats/benches/peer_ml_dtypes.py
    cargo bench -p ue8-formats --bench scalar
Needs tools/golden/requirements.txt (ml_dtypes, numpy)."""

import time

import ml_dtypes
import numpy as np

N = 1 << 20
REPEATS = 20


def inputs():
    rng = np.random.default_rng(7)
    u = rng.random((3, N), dtype=np.float32).sum(axis=0) - np.float32(1.5)
    return (u * np.exp2(np.arange(N) % 16 - 6).astype(np.float32)).astype(np.float32)


def rates(fn):
    """(median, best) Melem/s over REPEATS timed runs after one warm-up."""
    fn()
    times = []
    for _ in range(REPEATS):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return N / float(np.median(times)) / 1e6, N / min(times) / 1e6


def main():
    xs = inputs()
    e4 = ml_dtypes.float8_e4m3fn
    dst = np.empty_like(xs)
    codes = xs.astype(e4)
    absx = np.abs(xs)
    rows = [
        ("memcpy_f32", lambda: np.copyto(dst, xs)),
        ("f32_to_e4m3_saturate", lambda: np.clip(xs, -448, 448).astype(e4)),
        ("f32_to_e4m3_ieee", lambda: xs.astype(e4)),
        ("f32_to_e2m1_saturate", lambda: xs.astype(ml_dtypes.float4_e2m1fn)),
        ("f32_to_e8m0_cast", lambda: absx.astype(ml_dtypes.float8_e8m0fnu)),
        ("e4m3_to_f32", lambda: codes.astype(np.float32)),
    ]
    print(f"numpy {np.__version__}, ml_dtypes {ml_dtypes.__version__}, N = {N}, {REPEATS} runs")
    print(f"{'':24s} {'median':>10s} {'best':>10s}  Melem/s")
    for name, fn in rows:
        med, top = rates(fn)
        print(f"{name:24s} {med:10.1f} {top:10.1f}")


if __name__ == "__main__":
    main()
