#!/usr/bin/env python3
"""numpy + ml_dtypes timing of the work benchmarked by `cargo bench -p ue8-quant --bench quant`:
BF16 [2048, 7168] -> E4M3 + UE8M0 128x128 scales (formats.md section 2, vectorized over tiles),
E4M3 + scales -> BF16, and MXFP4 (floor rule) quantize / dequantize. One thread (numpy is
single-threaded for these element-wise ops). Prints elements/s per kernel and a memcpy (np.copyto)
of the same bf16 bytes.

Usage: python3 tools/bench/quant_numpy.py [rows] [cols]   (needs numpy, ml_dtypes; see
tools/golden/requirements.txt)
"""
import sys
import time

import ml_dtypes
import numpy as np

F32 = np.float32


def best_of(fn, reps=3):
    """Best wall-clock and best thread-CPU seconds over `reps` runs."""
    wall = cpu = float("inf")
    for _ in range(reps):
        t, c = time.perf_counter(), time.thread_time()
        fn()
        wall = min(wall, time.perf_counter() - t)
        cpu = min(cpu, time.thread_time() - c)
    return wall, cpu


def quantize_e4m3_ue8m0(w_bf16):
    n, k = w_bf16.shape  # multiples of 128 here
    w = w_bf16.astype(F32).reshape(n // 128, 128, k // 128, 128)
    amax = np.abs(w).max(axis=(1, 3))
    s = np.maximum(amax, F32(1e-4)) / F32(448.0)
    bits = s.view(np.uint32)
    e = ((bits >> 23) & 0xFF) + ((bits & 0x7FFFFF) != 0)
    e = np.clip(e, 1, 254).astype(np.uint32)
    scale = (e << 23).view(F32)
    q = np.clip(w / scale[:, None, :, None], F32(-448), F32(448)).astype(ml_dtypes.float8_e4m3fn)
    return q.reshape(n, k), scale


def dequantize_e4m3_bf16(q, scale):
    n, k = q.shape
    v = q.astype(F32).reshape(n // 128, 128, k // 128, 128) * scale[:, None, :, None]
    return v.reshape(n, k).astype(ml_dtypes.bfloat16)


def quantize_mxfp4(w_bf16):
    n, k = w_bf16.shape
    w = w_bf16.astype(F32).reshape(n, k // 32, 32)
    amax = np.abs(w).max(axis=2)
    _, e = np.frexp(amax)
    byte = np.where(amax == 0, 0, np.clip(e - 1 - 2, -127, 127) + 127).astype(np.uint8)
    x = np.ldexp(F32(1), byte.astype(np.int32) - 127).astype(F32)
    codes = np.clip(w / x[:, :, None], F32(-6), F32(6)).astype(ml_dtypes.float4_e2m1fn).view(np.uint8)
    packed = (codes[:, :, 0::2] & 0xF) | (codes[:, :, 1::2] << 4)
    return packed, byte


def dequantize_mxfp4(packed, byte):
    lo, hi = packed & 0xF, packed >> 4
    codes = np.stack([lo, hi], axis=-1).reshape(packed.shape[0], packed.shape[1], 32)
    v = codes.view(ml_dtypes.float4_e2m1fn).astype(F32)
    x = np.ldexp(F32(1), byte.astype(np.int32) - 127).astype(F32)
    return (v * x[:, :, None]).reshape(packed.shape[0], -1).astype(ml_dtypes.bfloat16)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2048
    k = int(sys.argv[2]) if len(sys.argv) > 2 else 7168
    rng = np.random.default_rng(0)
    w = (rng.random((n, k), dtype=F32) - F32(0.5)) * F32(0.05)
    w = w.astype(ml_dtypes.bfloat16)
    dst = np.empty_like(w)
    q, s = quantize_e4m3_ue8m0(w)
    p, b = quantize_mxfp4(w)
    elems = n * k
    rows = [
        ("memcpy_bf16", lambda: np.copyto(dst, w)),
        ("quantize_bf16_e4m3_ue8m0", lambda: quantize_e4m3_ue8m0(w)),
        ("dequantize_e4m3_ue8m0_bf16", lambda: dequantize_e4m3_bf16(q, s)),
        ("quantize_bf16_mxfp4", lambda: quantize_mxfp4(w)),
        ("dequantize_mxfp4_bf16", lambda: dequantize_mxfp4(p, b)),
    ]
    print(f"numpy {np.__version__} + ml_dtypes {ml_dtypes.__version__}, {n} x {k} = {elems} elements")
    print(f"{'kernel':<30} {'Melem/s wall':>13} {'Melem/s CPU':>12}")
    for name, fn in rows:
        wall, cpu = best_of(fn)
        print(f"{name:<30} {elems / wall / 1e6:>13.1f} {elems / cpu / 1e6:>12.1f}")


if __name__ == "__main__":
    main()
