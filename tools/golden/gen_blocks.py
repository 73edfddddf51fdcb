#!/usr/bin/env python3
"""Independent numpy implementation of every ue8 block scheme (formats.md sections 2 and 3),
writing golden fixtures to crates/ue8-quant/tests/fixtures/.

Written from the spec, not from the Rust code: scale exponents come from numpy's frexp (exact for
subnormals) or from the f32 bit fields; element casts use ml_dtypes (clip first for the saturating
MX/DeepSeek rule). Only the casts come from ml_dtypes.

Usage: python3 tools/golden/gen_blocks.py [--out DIR] [--check]
  --out DIR  write there (default: the crate's fixture folder); tools/golden/check.sh uses it
  --check    regenerate into a temporary folder and fail if any fixture differs
"""
import argparse
import json
import os
import sys
import tempfile

import ml_dtypes
import numpy as np

F32 = np.float32
OUT = os.path.join(os.path.dirname(__file__), "..", "..", "crates", "ue8-quant", "tests", "fixtures")

MX_ELEMS = {
    # name: (ml_dtypes type, max finite, emax)
    "e4m3": (ml_dtypes.float8_e4m3fn, 448.0, 8),
    "e5m2": (ml_dtypes.float8_e5m2, 57344.0, 15),
    "e3m2": (ml_dtypes.float6_e3m2fn, 28.0, 4),
    "e2m3": (ml_dtypes.float6_e2m3fn, 7.5, 2),
    "e2m1": (ml_dtypes.float4_e2m1fn, 6.0, 2),
}


def hex_bytes(a):
    return np.ascontiguousarray(a).tobytes().hex()


def pow2_f32(k):
    """2^k as float32, exact for k in [-149, 127]."""
    return F32(np.ldexp(np.float64(1.0), int(k)))


def ceil_pow2_byte(s):
    """Smallest power of two >= s (s > 0 finite float32) as a biased exponent, clamped to [1, 254]."""
    if s == 0:  # amax / max underflowed: exponent field 0, mantissa 0 -> clamped to 1
        return 1
    m, e = np.frexp(np.float64(s))  # s = m * 2^e, m in [0.5, 1); float64 holds every float32
    exp = int(e) - 1 if m == 0.5 else int(e)
    return min(max(exp + 127, 1), 254)


def e4m3_cast(x):
    """Saturating E4M3 cast: clip to +-448 then ml_dtypes RNE (NaN stays NaN)."""
    return np.clip(x.astype(F32), F32(-448), F32(448)).astype(ml_dtypes.float8_e4m3fn)


# ---------------------------------------------------------------- DeepSeek blockwise FP8

def deepseek_quantize(w, rule, tr, tc):
    n, k = w.shape
    gr, gc = -(-n // tr), -(-k // tc)
    q = np.zeros((n, k), dtype=np.uint8)
    s = np.zeros((gr, gc), dtype=F32)
    for i in range(gr):
        for j in range(gc):
            t = w[i * tr:(i + 1) * tr, j * tc:(j + 1) * tc]
            fin = t[np.isfinite(t)]
            amax = F32(np.max(np.abs(fin))) if fin.size else F32(0)
            sc = F32(max(amax, F32(1e-4))) / F32(448.0)
            if rule == "ue8m0":
                sc = pow2_f32(ceil_pow2_byte(sc) - 127)
            s[i, j] = sc
            q[i * tr:(i + 1) * tr, j * tc:(j + 1) * tc] = e4m3_cast(t / sc).view(np.uint8)
    return q, s


def deepseek_dequantize(q, s, tr, tc):
    vals = q.view(ml_dtypes.float8_e4m3fn).astype(F32)
    full = np.repeat(np.repeat(s, tr, axis=0), tc, axis=1)[: q.shape[0], : q.shape[1]]
    f = (vals * full).astype(F32)
    return f, f.astype(ml_dtypes.bfloat16)


# ---------------------------------------------------------------- OCP MX

def mx_scale_byte(amax, rule, emax, maxv):
    if amax == 0:
        return 0
    if rule == "floor":
        _, e = np.frexp(np.float64(amax))  # floor(log2(amax)) = e - 1, exact for subnormals
        return min(max(int(e) - 1 - emax, -127), 127) + 127
    return ceil_pow2_byte(F32(amax) / F32(maxv))  # rceil


def mx_quantize(w, elem, rule):
    ty, maxv, emax = MX_ELEMS[elem]
    n, k = w.shape
    nb = -(-k // 32)
    codes = np.zeros((n, k), dtype=np.uint8)
    scales = np.zeros((n, nb), dtype=np.uint8)
    bits = np.dtype(ty).itemsize * 8 if elem in ("e4m3", "e5m2") else (6 if elem in ("e3m2", "e2m3") else 4)
    for r in range(n):
        for b in range(nb):
            blk = w[r, b * 32:(b + 1) * 32]
            if not np.all(np.isfinite(blk)):
                scales[r, b] = 0xFF
                continue
            amax = F32(np.max(np.abs(blk)))
            byte = mx_scale_byte(amax, rule, emax, maxv)
            scales[r, b] = byte
            x = pow2_f32(byte - 127)
            y = np.clip((blk / x).astype(F32), F32(-maxv), F32(maxv)).astype(ty)
            codes[r, b * 32:(b + 1) * 32] = y.view(np.uint8) & ((1 << bits) - 1)
    return codes, scales


def mx_dequantize(codes, scales, elem):
    ty = MX_ELEMS[elem][0]
    n, k = codes.shape
    vals = codes.view(ty).astype(F32)
    x = np.where(scales == 0xFF, F32(np.nan), np.ldexp(np.float64(1), scales.astype(np.int64) - 127)).astype(F32)
    full = np.repeat(x, 32, axis=1)[:, :k]
    f = (vals * full).astype(F32)
    return f, f.astype(ml_dtypes.bfloat16)


def pack_bits_lsb(codes, bits):
    """Little-endian bit stream: element i at bits [bits*i, bits*(i+1)), from numpy's packbits."""
    unpacked = ((codes[:, None].astype(np.uint16) >> np.arange(bits)) & 1).astype(np.uint8).reshape(-1)
    return np.packbits(unpacked, bitorder="little")


# ---------------------------------------------------------------- inputs

def bf16_exact(x):
    return x.astype(ml_dtypes.bfloat16).astype(F32)


def deepseek_inputs(rng):
    cases = {}
    w = rng.standard_normal((129, 257)).astype(F32)
    w *= np.exp2(rng.integers(-12, 8, size=(129, 1))).astype(F32)  # row magnitudes vary
    cases["random_129x257"] = bf16_exact(w)
    cases["tiny_1x5"] = np.array([[0.5, -1.25, 3.0e-3, 100.0, -7.0]], dtype=F32)
    t = rng.standard_normal((130, 140)).astype(F32)
    t[:128, :128] *= F32(0.01)
    t[5, 7] = F32(56.0)  # amax/448 = 2^-3 exactly: ue8m0 keeps 2^-3, no rounding up
    t[:128, 128:] = 0  # amax 0 (tile (0, 1)): the 1e-4 floor
    t[128:, :128] = (rng.standard_normal((2, 128)) * 1e-40).astype(F32)  # f32 subnormals
    t[128:, 128:] = rng.standard_normal((2, 12)).astype(F32)
    t[129, 130] = F32(3.0e30)  # one huge outlier flushes its neighbours to 0
    cases["awkward_130x140"] = t
    u = (rng.standard_normal((3, 200)) * 4).astype(F32)
    u[1, 10] = np.nan
    u[2, 150] = -np.inf
    u[0, 199] = np.inf
    cases["nonfinite_3x200"] = u
    v = np.zeros((4, 130), dtype=F32)
    v[:, :] = (rng.standard_normal((4, 130)) * 1e-6).astype(F32)  # below the 1e-4 floor
    cases["below_floor_4x130"] = v
    return cases


def mx_inputs(rng):
    cases = {}
    w = (rng.standard_normal((3, 100)) * np.exp2(rng.integers(-6, 6, size=(3, 1)))).astype(F32)
    cases["random_3x100"] = bf16_exact(w)
    s = rng.standard_normal((6, 37)).astype(F32)
    s[0, :32] = 0  # amax 0: byte 0
    s[1, :32] = (rng.standard_normal(32) * 1e-41).astype(F32)  # subnormal amax
    s[2, 3] = np.nan  # NaN block: 0xFF
    s[3, 33] = np.inf  # inf in the partial block
    s[4, 0] = F32(1e4)  # outlier
    s[5, :32] = F32(6.0) * np.arange(-16, 16, dtype=F32) / 16  # exact grid values
    cases["awkward_6x37"] = s
    cases["tiny_1x5"] = np.array([[0.3, -0.7, 2.5, 5.0, -5.5]], dtype=F32)
    return cases


# ---------------------------------------------------------------- DeepSeek-V4 FP4 -> FP8 re-encode

def reencode_fp4_to_fp8(codes, scales):
    """MXFP4 codes [n, k] (k % 32 == 0 here) + E8M0 bytes [n, k/32] -> E4M3 bytes [n, k], tile
    E8M0 bytes [ceil(n/128), ceil(k/128)] (tile byte = max(largest group byte - 6, 0)) and a mask of
    elements whose value changed (RNE to E4M3; empty when the re-encode is exact)."""
    n, k = codes.shape
    vals = codes.view(ml_dtypes.float4_e2m1fn).astype(np.float64)
    group = np.repeat(scales.astype(np.int64), 32, axis=1)
    gr, gc = -(-n // 128), -(-k // 128)
    tiles = np.zeros((gr, gc), dtype=np.uint8)
    q = np.zeros((n, k), dtype=np.uint8)
    changed = np.zeros((n, k), dtype=bool)
    for i in range(gr):
        for j in range(gc):
            rs, cs = slice(i * 128, (i + 1) * 128), slice(j * 128, (j + 1) * 128)
            t = max(int(scales[rs, j * 4:(j + 1) * 4].max()) - 6, 0)
            tiles[i, j] = t
            x = (vals[rs, cs] * np.exp2(group[rs, cs] - t)).astype(F32)  # exact in f32
            e = x.astype(ml_dtypes.float8_e4m3fn)
            q[rs, cs] = e.view(np.uint8)
            changed[rs, cs] = e.astype(F32) != x
    return q, tiles, changed


def reencode_inputs(rng):
    cases = {}
    n, k = 130, 256
    codes = rng.integers(0, 16, size=(n, k)).astype(np.uint8)
    # within the bound: every gap 0..14 appears in every tile
    gaps = (np.arange(n)[:, None] + np.arange(k // 32)[None, :]) % 15
    cases["exact_130x256"] = (codes, (118 - gaps).astype(np.uint8))
    # past the bound: one group 15 and one 17 binades below its tile's largest
    s = np.full((n, k // 32), 118, dtype=np.uint8)
    s[3, 1], s[129, 5] = 103, 101
    cases["lossy_130x256"] = (codes, s)
    # small scales: largest group byte below 6, tile byte clamps to 0
    cases["tiny_scales_4x64"] = (rng.integers(0, 16, size=(4, 64)).astype(np.uint8),
                                 rng.integers(0, 5, size=(4, 2)).astype(np.uint8))
    return cases


def generate(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    rng = np.random.default_rng(20261125)
    ds = {"generator": "tools/golden/gen_blocks.py", "numpy": np.__version__,
          "ml_dtypes": ml_dtypes.__version__, "cases": []}
    for name, w in deepseek_inputs(rng).items():
        n, k = w.shape
        is_bf16 = bool(np.all(bf16_exact(w)[np.isfinite(w)] == w[np.isfinite(w)]))
        case = {"name": name, "n": n, "k": k, "bf16_exact": is_bf16, "outputs": []}
        if is_bf16:  # half the bytes: bf16 inputs widen to f32 exactly
            case["input_bf16"] = hex_bytes(w.astype(ml_dtypes.bfloat16).view(np.uint16).astype("<u2"))
        else:
            case["input_f32"] = hex_bytes(w.astype("<f4"))
        for rule in ("ue8m0", "f32"):
            for tr, tc in ((128, 128), (1, 128)):
                if tr == 1 and n * k > 2000:
                    continue
                q, s = deepseek_quantize(w, rule, tr, tc)
                out = {"rule": rule, "tile": [tr, tc], "codes": hex_bytes(q),
                       "scales_f32": hex_bytes(s.astype("<f4"))}
                if rule == "ue8m0":
                    out["scales_e8m0"] = hex_bytes((s.view(np.uint32) >> 23).astype(np.uint8))
                if n * k <= 2000:
                    f, b = deepseek_dequantize(q, s, tr, tc)
                    out["dequant_f32"] = hex_bytes(f.astype("<f4"))
                    out["dequant_bf16"] = hex_bytes(b.view(np.uint16).astype("<u2"))
                case["outputs"].append(out)
        ds["cases"].append(case)
    with open(os.path.join(out_dir, "deepseek_blocks.json"), "w") as f:
        json.dump(ds, f, indent=0)

    mx = {"generator": ds["generator"], "numpy": np.__version__, "ml_dtypes": ml_dtypes.__version__,
          "cases": []}
    for name, w in mx_inputs(rng).items():
        n, k = w.shape
        case = {"name": name, "n": n, "k": k, "input_f32": hex_bytes(w.astype("<f4")), "outputs": []}
        for elem in MX_ELEMS:
            for rule in ("floor", "rceil"):
                codes, scales = mx_quantize(w, elem, rule)
                f, b = mx_dequantize(codes, scales, elem)
                out = {"elem": elem, "rule": rule, "codes": hex_bytes(codes), "scales": hex_bytes(scales),
                       "dequant_f32": hex_bytes(f.astype("<f4")),
                       "dequant_bf16": hex_bytes(b.view(np.uint16).astype("<u2"))}
                if elem == "e2m1":
                    nb = scales.shape[1]
                    padded = np.zeros((n, nb * 32), dtype=np.uint8)
                    padded[:, :k] = codes
                    out["packed_hf"] = hex_bytes(np.concatenate([pack_bits_lsb(r, 4) for r in padded]))
                case["outputs"].append(out)
        mx["cases"].append(case)
    with open(os.path.join(out_dir, "mx_blocks.json"), "w") as f:
        json.dump(mx, f, indent=0)

    re = {"generator": ds["generator"], "numpy": np.__version__, "ml_dtypes": ml_dtypes.__version__,
          "cases": []}
    for name, (codes, scales) in reencode_inputs(rng).items():
        n, k = codes.shape
        q, tiles, changed = reencode_fp4_to_fp8(codes, scales)
        packed = np.concatenate([pack_bits_lsb(r, 4) for r in codes])
        re["cases"].append({"name": name, "n": n, "k": k, "packed": hex_bytes(packed),
                            "scales": hex_bytes(scales), "codes_e4m3": hex_bytes(q),
                            "tile_scales": hex_bytes(tiles), "inexact": int(changed.sum())})
    with open(os.path.join(out_dir, "reencode_fp4_fp8.json"), "w") as f:
        json.dump(re, f, indent=0)

    # sub-byte packing: FP6 and FP4 as little-endian bit streams (numpy packbits, bitorder little)
    pk = {"generator": ds["generator"], "cases": []}
    for bits, n in ((6, 4), (6, 8), (6, 36), (6, 5), (4, 1), (4, 33), (4, 64)):
        codes = rng.integers(0, 1 << bits, size=n).astype(np.uint8)
        pk["cases"].append({"bits": bits, "codes": hex_bytes(codes),
                            "packed": hex_bytes(pack_bits_lsb(codes, bits))})
    with open(os.path.join(out_dir, "packing.json"), "w") as f:
        json.dump(pk, f, indent=0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=OUT)
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    if args.check:
        with tempfile.TemporaryDirectory() as d:
            generate(d)
            bad = [n for n in sorted(os.listdir(d))
                   if open(os.path.join(d, n)).read() != open(os.path.join(args.out, n)).read()]
            if bad:
                print("gen_blocks: fixtures differ from a fresh run:", bad)
                sys.exit(1)
            print("gen_blocks: fixtures up to date")
    else:
        generate(args.out)
        print("gen_blocks: wrote", args.out)


if __name__ == "__main__":
    main()
