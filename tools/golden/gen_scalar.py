#!/usr/bin/env python3
"""Golden vectors for ue8-formats' scalar conversions, produced by ml_dtypes (the independent oracle).

Writes little-endian binary fixtures into crates/ue8-formats/tests/fixtures/ (see README.md here for the
layouts). The Rust tests compare against them bit for bit, so CI needs no Python.

`Ieee` mode is ml_dtypes' own cast. ml_dtypes has no saturating cast, so `Saturate` mode is computed here
as clip-to-+-max followed by the same cast (np.clip keeps NaN as NaN, so NaN handling is ml_dtypes').
"""

import argparse
import json
import pathlib
import struct

import ml_dtypes
import numpy as np

SEED = 20261125
RANDOM_IN_RANGE = 4000  # random f32 spread over each type's binades
RANDOM_ANY_BITS = 1000  # arbitrary u32 patterns (any exponent, NaN payloads included)
BF16_PATTERNS = 3000  # random bf16 patterns whose f32 neighbourhood (ties, +-1) is rounded
RANDOM_SUBNORMAL = 200  # random f32 subnormals (only E8M0 can tell them apart, all must not break)

# name, ml_dtypes dtype, bits, exponent bits, mantissa bits, bias, largest finite value
TYPES = [
    ("e4m3", ml_dtypes.float8_e4m3fn, 8, 4, 3, 7, 448.0),
    ("e5m2", ml_dtypes.float8_e5m2, 8, 5, 2, 15, 57344.0),
    ("e3m2", ml_dtypes.float6_e3m2fn, 6, 3, 2, 3, 28.0),
    ("e2m3", ml_dtypes.float6_e2m3fn, 6, 2, 3, 1, 7.5),
    ("e2m1", ml_dtypes.float4_e2m1fn, 4, 2, 1, 1, 6.0),
    ("e8m0", ml_dtypes.float8_e8m0fnu, 8, 8, 0, 127, 2.0**127),
]
# bf16 / f16 sources: every 16-bit pattern, for the element types (E8M0 has no half-precision API).
WIDEN_TYPES = ["e4m3", "e5m2", "e3m2", "e2m3", "e2m1"]
# FP6/FP4 have neither inf nor NaN, so clip+cast equals the plain cast on every input; storing their
# Saturate tables twice would add nothing (the Rust test checks Saturate == Ieee for them on all inputs).
WIDEN_SATURATE_TYPES = ["e4m3", "e5m2"]

NAN_PAYLOADS = [0x7FC00000, 0x7F800001, 0x7FA00000, 0x7FE00000, 0x7FFFFFFF, 0x7F840000, 0x7FC00001]


def f32_bits(values):
    return np.asarray(values, dtype=np.float32).view(np.uint32)


def next_up(x):
    return np.nextafter(np.float32(x), np.float32(np.inf), dtype=np.float32)


def next_down(x):
    return np.nextafter(np.float32(x), np.float32(-np.inf), dtype=np.float32)


def decode_all(dtype, bits):
    codes = np.arange(1 << bits, dtype=np.uint8)
    return codes.view(dtype).astype(np.float32)


def special_inputs(dtype, bits, man, bias, max_value):
    """Every bit-pattern class, positive side; the caller adds the negated copies."""
    out = []
    # zeros and f32 subnormals (smallest, largest, the middle, and a spread)
    out += [0x00000000, 0x00000001, 0x00000002, 0x00000003, 0x003FFFFF, 0x00400000, 0x00400001,
            0x005FFFFF, 0x00600000, 0x00600001, 0x007FFFFF, 0x00800000, 0x00800001]
    out += [1 << k for k in range(23)]
    # every representable value, its f32 neighbours, and every midpoint between adjacent values
    values = decode_all(dtype, bits)
    finite = np.unique(values[np.isfinite(values) & (values >= 0)].astype(np.float32))
    for v in finite:
        v = np.float32(v)
        out += [f32_bits(v), f32_bits(next_up(v)), f32_bits(next_down(v))]
    for lo, hi in zip(finite[:-1], finite[1:]):
        if man == 0:
            # E8M0 rounds on a linear scale: the "tie" is the arithmetic midpoint 1.5 * lo
            mid = np.float32(lo) * np.float32(1.5)
        else:
            mid = (np.float64(lo) + np.float64(hi)) / 2
        mid = np.float32(mid)
        out += [f32_bits(mid), f32_bits(next_up(mid)), f32_bits(next_down(mid))]
    # below the smallest non-zero value: half of it (a tie with zero), a quarter, and neighbours
    smallest = np.float32(finite[finite > 0][0]) if man > 0 else np.float32(2.0**-127)
    for frac in (0.5, 0.25, 0.75):
        q = np.float32(np.float64(smallest) * frac)
        out += [f32_bits(q), f32_bits(next_up(q)), f32_bits(next_down(q))]
    # max, just above max, the midpoint to the next value after max (binade spacing at max), beyond
    maxf = np.float32(max_value)
    if man > 0:
        ulp_at_max = 2.0 ** (np.floor(np.log2(max_value)) - man)
    else:
        ulp_at_max = max_value  # E8M0: the next power of two is 2 * max
    # (for E8M0 the value after max, 2^128, is past f32's range: it becomes inf, listed anyway)
    with np.errstate(over="ignore"):
        beyond_mid = np.float32(np.float64(max_value) + ulp_at_max / 2)
        beyond = np.float32(np.float64(max_value) + ulp_at_max)
        twice = np.float32(2 * np.float64(max_value))
    for v in (maxf, next_up(maxf), beyond_mid, next_up(beyond_mid), next_down(beyond_mid), beyond, twice):
        out.append(f32_bits(v))
    # f32 extremes, inf, NaNs
    out += [0x7F7FFFFF, 0x7F000000, 0x7F800000]
    out += NAN_PAYLOADS
    out += [f32_bits(x) for x in (1.0, 1.5, 2.0, 3.0, 6.0, 0.1, 1e-4, 1e-4 / 448.0, 1.0 / 3.0)]
    return [int(x) for x in out]


def random_inputs(rng, man, bias, max_value):
    emin = 1 - bias
    emax = int(np.floor(np.log2(max_value)))
    lo_e, hi_e = emin - man - 3, emax + 2
    exps = rng.integers(lo_e, hi_e + 1, size=RANDOM_IN_RANGE)
    exps = np.clip(exps, -126, 127)
    mant = rng.integers(0, 1 << 23, size=RANDOM_IN_RANGE, dtype=np.uint32)
    sign = rng.integers(0, 2, size=RANDOM_IN_RANGE, dtype=np.uint32) << 31
    spread = sign | ((exps + 127).astype(np.uint32) << 23) | mant
    anybits = rng.integers(0, 1 << 32, size=RANDOM_ANY_BITS, dtype=np.uint64).astype(np.uint32)
    subnormal = rng.integers(1, 1 << 23, size=RANDOM_SUBNORMAL, dtype=np.uint32)
    subnormal |= rng.integers(0, 2, size=RANDOM_SUBNORMAL, dtype=np.uint32) << 31
    return [int(x) for x in spread] + [int(x) for x in anybits] + [int(x) for x in subnormal]


def cast(src, dtype, mode, max_value):
    """The oracle: ml_dtypes cast, with clip first for Saturate. Returns the codes as uint8."""
    if mode == "saturate":
        m = np.asarray(max_value, dtype=src.dtype)
        src = np.clip(src, -m, m)
    with np.errstate(invalid="ignore", over="ignore"):
        return src.astype(dtype).view(np.uint8)


def main():
    here = pathlib.Path(__file__).resolve().parent
    default_out = here.parent.parent / "crates" / "ue8-formats" / "tests" / "fixtures"
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=pathlib.Path, default=default_out)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    manifest = {
        "generator": "tools/golden/gen_scalar.py",
        "ml_dtypes": ml_dtypes.__version__,
        "numpy": np.__version__,
        "seed": SEED,
        "files": {},
    }

    for name, dtype, bits, _exp, man, bias, max_value in TYPES:
        pos = special_inputs(dtype, bits, man, bias, max_value)
        inputs = pos + [x | 0x80000000 for x in pos] + random_inputs(rng, man, bias, max_value)
        inputs = list(dict.fromkeys(inputs))  # de-duplicate, keep order
        src = np.array(inputs, dtype=np.uint32).view(np.float32)
        for mode in ("ieee", "saturate"):
            codes = cast(src, dtype, mode, max_value)
            rec = np.zeros(len(inputs), dtype=[("x", "<u4"), ("code", "u1")])
            rec["x"] = np.array(inputs, dtype=np.uint32)
            rec["code"] = codes
            fname = f"encode_{name}_{mode}.bin"
            (args.out / fname).write_bytes(rec.tobytes())
            manifest["files"][fname] = {"records": len(inputs), "record": "u32le f32 bits, u8 code"}
        dec = decode_all(dtype, bits).view(np.uint32).astype("<u4")
        fname = f"decode_{name}.bin"
        (args.out / fname).write_bytes(dec.tobytes())
        manifest["files"][fname] = {"records": 1 << bits, "record": "u32le f32 bits, indexed by code"}

    all16 = np.arange(1 << 16, dtype=np.uint16)
    sources = {"bf16": all16.view(ml_dtypes.bfloat16), "f16": all16.view(np.float16)}
    by_name = {t[0]: t for t in TYPES}
    for name in WIDEN_TYPES:
        _n, dtype, *_rest, max_value = by_name[name]
        for src_name, src in sources.items():
            modes = ["ieee"] + (["saturate"] if name in WIDEN_SATURATE_TYPES else [])
            for mode in modes:
                codes = cast(src, dtype, mode, max_value)
                fname = f"widen_{src_name}_{name}_{mode}.bin"
                (args.out / fname).write_bytes(codes.astype(np.uint8).tobytes())
                manifest["files"][fname] = {"records": 1 << 16, "record": "u8 code, indexed by source bits"}

    # f32 -> bf16 (the rounding of every dequantizer's output): ties, near-ties and exact values
    # around random bf16 patterns (all exponents, both signs), NaN payloads, random f32.
    hi = rng.choice(1 << 16, size=BF16_PATTERNS, replace=False).astype(np.uint32) << 16
    near = np.concatenate([hi, hi | 0x8000, hi | 0x7FFF, hi | 0x8001, hi | 0x0001, hi | 0xFFFF])
    nan_bits = np.array(NAN_PAYLOADS + [p | 0x80000000 for p in NAN_PAYLOADS], dtype=np.uint32)
    anybits = rng.integers(0, 1 << 32, size=RANDOM_ANY_BITS, dtype=np.uint64).astype(np.uint32)
    fixed = np.array([0x7F7FFFFF, 0x7F7F8000, 0x7F7F7FFF, 0x7F800000, 0xFF800000, 0, 0x80000000,
                      0x00008000, 0x00018000, 0x00000001], dtype=np.uint32)
    bits = np.array(list(dict.fromkeys(int(v) for v in np.concatenate([fixed, nan_bits, near, anybits]))),
                    dtype=np.uint32)
    with np.errstate(invalid="ignore", over="ignore"):
        out = bits.view(np.float32).astype(ml_dtypes.bfloat16).view(np.uint16)
    rec = np.zeros(len(bits), dtype=[("x", "<u4"), ("y", "<u2")])
    rec["x"], rec["y"] = bits, out
    fname = "round_f32_bf16.bin"
    (args.out / fname).write_bytes(rec.tobytes())
    manifest["files"][fname] = {"records": len(bits), "record": "u32le f32 bits, u16le bf16 bits"}

    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    total = sum((args.out / f).stat().st_size for f in manifest["files"])
    print(f"wrote {len(manifest['files'])} fixtures, {total} bytes, to {args.out}")


if __name__ == "__main__":
    main()
