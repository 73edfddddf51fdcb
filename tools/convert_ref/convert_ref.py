#!/usr/bin/env python3
"""Independent numpy + ml_dtypes reference of every ue8 conversion (docs/layouts.md, formats.md).

Writes small fixtures that the Rust tests compare bit for bit with `ue8 quantize/requantize/dequantize`
(crates/ue8-convert/tests/fixtures/ref/). Nothing here imports ue8 code; the element casts come from
ml_dtypes (round to nearest even), the scale rules are written from formats.md with integer bit logic
(DeepSeek ceil) and float64 frexp (OCP floor), on purpose a different route from ue8's Rust code.

    python3 tools/convert_ref/convert_ref.py            # regenerate fixtures
Safetensors files are written by hand (8-byte length + JSON header + data), because the Python package's
numpy API cannot hold FP8/FP6/FP4 arrays.
"""
import json
import os
import struct
import sys

import ml_dtypes
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "crates", "ue8-convert", "tests", "fixtures", "ref")

F32 = np.float32
ELEM = {  # name -> (ml_dtypes type, max finite, emax)
    "e4m3": (ml_dtypes.float8_e4m3fn, 448.0, 8),
    "e5m2": (ml_dtypes.float8_e5m2, 57344.0, 15),
    "e3m2": (ml_dtypes.float6_e3m2fn, 28.0, 4),
    "e2m3": (ml_dtypes.float6_e2m3fn, 7.5, 2),
    "e2m1": (ml_dtypes.float4_e2m1fn, 6.0, 2),
}
DTYPE_NAME = {np.dtype(np.float32): "F32", np.dtype(ml_dtypes.bfloat16): "BF16", np.dtype(np.float16): "F16",
              np.dtype(np.uint8): "U8"}


# ---------------------------------------------------------------- safetensors by hand
def write_st(path, tensors, metadata=None):
    """tensors: list of (name, dtype string, shape, raw bytes)."""
    header = {}
    if metadata:
        header["__metadata__"] = metadata
    off = 0
    for name, dt, shape, raw in tensors:
        header[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + len(raw)]}
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for _, _, _, raw in tensors:
            f.write(raw)


def arr(name, a):
    return (name, DTYPE_NAME[a.dtype], a.shape, a.tobytes())


# ---------------------------------------------------------------- DeepSeek blockwise FP8
def ceil_pow2_bits(s):
    """formats.md section 2: exponent rounded UP from the f32 bits, clamped to [1, 254]."""
    bits = np.asarray(s, dtype=F32).view(np.uint32)
    e = ((bits >> 23) & 0xFF).astype(np.int64) + ((bits & 0x7FFFFF) != 0)
    e = np.clip(e, 1, 254)
    return e.astype(np.uint8), (e.astype(np.uint32) << 23).view(F32)


def blockfp8(w, rule):
    n, k = w.shape
    gr, gc = -(-n // 128), -(-k // 128)
    q = np.zeros((n, k), np.uint8)
    scales = np.zeros((gr, gc), F32)
    ebytes = np.zeros((gr, gc), np.uint8)
    for i in range(gr):
        for j in range(gc):
            t = w[i * 128:(i + 1) * 128, j * 128:(j + 1) * 128]
            amax = F32(np.max(np.abs(t)))
            s = F32(max(amax, F32(1e-4)) / F32(448.0))
            if rule == "ue8m0":
                e, S = ceil_pow2_bits(s)
                ebytes[i, j] = e
                S = F32(S)
            else:
                S = s
            scales[i, j] = S
            y = np.clip(t / S, F32(-448), F32(448)).astype(F32)
            q[i * 128:(i + 1) * 128, j * 128:(j + 1) * 128] = y.astype(ml_dtypes.float8_e4m3fn).view(np.uint8)
    return q, scales, ebytes


def blockfp8_dequant(q, scales):
    n, k = q.shape
    v = q.view(ml_dtypes.float8_e4m3fn).astype(F32)
    s = np.repeat(np.repeat(scales, 128, axis=0), 128, axis=1)[:n, :k]
    return (v * s).astype(F32)


def requant(q, scales):
    """formats.md section 2: dequantize each tile in f32, quantize again with the ue8m0 rule; pass
    through a tensor whose scales are all powers of two already."""
    bits = scales.view(np.uint32)
    pow2 = np.all((bits & 0x7FFFFF) == 0) and np.all(((bits >> 23) & 0xFF) > 0)
    if pow2:
        return q.copy(), scales.copy(), True
    w = blockfp8_dequant(q, scales)
    q2, s2, _ = blockfp8(w, "ue8m0")
    return q2, s2, False


# ---------------------------------------------------------------- OCP MX
def mx_scale_byte(amax, elem, rule):
    _, mx, emax = ELEM[elem]
    if amax == 0:
        return 0
    if rule == "floor":
        _, e = np.frexp(np.float64(amax))  # amax = m * 2^e, m in [0.5, 1): floor(log2 amax) = e - 1, exact
        shared = int(e) - 1 - emax
        return int(np.clip(shared, -127, 127)) + 127
    s = F32(F32(amax) / F32(mx))
    e, _ = ceil_pow2_bits(s)
    return int(e)


def e8m0_value(b):
    return F32(np.ldexp(np.float64(1.0), int(b) - 127))


def mx_quant(w, elem, rule):
    dt, mx, _ = ELEM[elem]
    n, k = w.shape
    nb = -(-k // 32)
    codes = np.zeros((n, k), np.uint8)
    sc = np.zeros((n, nb), np.uint8)
    for r in range(n):
        for b in range(nb):
            blk = w[r, b * 32:(b + 1) * 32].astype(F32)
            byte = mx_scale_byte(F32(np.max(np.abs(blk))), elem, rule)
            sc[r, b] = byte
            y = np.clip(blk / e8m0_value(byte), F32(-mx), F32(mx)).astype(F32)
            codes[r, b * 32:(b + 1) * 32] = y.astype(dt).view(np.uint8)
    return codes, sc


def mx_dequant(codes, sc, elem):
    dt = ELEM[elem][0]
    n, k = codes.shape
    v = codes.view(dt).astype(F32)
    x = np.array([[e8m0_value(b) for b in row] for row in sc], dtype=F32).reshape(n, -1)
    x = np.repeat(x, 32, axis=1)[:, :k]
    return (v * x).astype(F32)


def pad_rows(codes):
    n, k = codes.shape
    kp = -(-k // 32) * 32
    out = np.zeros((n, kp), np.uint8)
    out[:, :k] = codes
    return out


def pack_fp4(codes):
    c = pad_rows(codes) & 0x0F
    return (c[:, 0::2] | (c[:, 1::2] << 4)).astype(np.uint8)


def pack_fp6(codes):
    """Little-endian bit stream, element i in bits 6i..6i+5 (docs/layouts.md)."""
    c = pad_rows(codes).astype(np.uint32) & 0x3F
    n, kp = c.shape
    q = c.reshape(n, kp // 4, 4)
    word = q[..., 0] | (q[..., 1] << 6) | (q[..., 2] << 12) | (q[..., 3] << 18)
    out = np.stack([(word >> (8 * i)) & 0xFF for i in range(3)], axis=-1).astype(np.uint8)
    return out.reshape(n, kp // 4 * 3)


# ---------------------------------------------------------------- the generated model
def make_inputs():
    rng = np.random.default_rng(20261125)
    bf16 = ml_dtypes.bfloat16
    q = (rng.standard_normal((129, 160)) * 0.05).astype(F32)
    q[0, :40] *= 300.0  # one tile/block with large values
    q[128, 5] = 0.0
    up = (rng.standard_normal((130, 97)) * 2.0).astype(F32)
    up[:, 64:96] = 0.0  # all-zero blocks (MX byte 0) and ...
    up[0:128, 0:97] *= 1.0
    up[5, :] = 1e-30  # tiny values: subnormal-ish scales
    up[6, 0] = 1e30  # huge value: scale clamp / clipping
    up[7, :32] = np.float32(448.0) * np.float32(2.0) ** -3  # exact power-of-two amax
    k = (rng.standard_normal((31, 33)) * 0.3).astype(F32)
    k[3, 4] = 0.5 * (1.0 + 1.0 / 16.0)  # an E4M3 tie (before scaling; exercised by random scales too)
    down = np.array([[0.75]], F32)
    emb = (rng.standard_normal((40, 64)) * 0.1).astype(F32)
    head = (rng.standard_normal((40, 64)) * 0.1).astype(F32)
    norm = (1.0 + 0.01 * rng.standard_normal(200)).astype(F32)
    t = [
        ("model.embed_tokens.weight", emb.astype(bf16)),
        ("model.layers.0.self_attn.q_proj.weight", q.astype(bf16)),
        ("model.layers.0.self_attn.k_proj.weight", k),
        ("model.layers.0.mlp.down_proj.weight", down.astype(np.float16)),
        ("model.layers.0.mlp.up_proj.weight", up.astype(bf16)),
        ("model.layers.0.input_layernorm.weight", norm),
        ("lm_head.weight", head.astype(bf16)),
    ]
    return t


QUANTIZED = {"model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.k_proj.weight",
             "model.layers.0.mlp.down_proj.weight", "model.layers.0.mlp.up_proj.weight"}

VARIANTS = {  # fixture name -> (format, rule, scale storage)
    "fp8-ue8m0": ("fp8-ue8m0", None, "f32"),
    "fp8-ue8m0-e8m0": ("fp8-ue8m0", None, "e8m0"),
    "fp8": ("fp8", None, "f32"),
    "mxfp8": ("e4m3", "floor", "u8"),
    "mxfp8-rceil": ("e4m3", "rceil", "u8"),
    "mxfp8-e5m2": ("e5m2", "floor", "u8"),
    "mxfp6-e3m2": ("e3m2", "floor", "u8"),
    "mxfp6-e2m3": ("e2m3", "floor", "u8"),
    "mxfp4": ("e2m1", "floor", "u8"),
    "mxfp4-rceil": ("e2m1", "rceil", "e8m0"),
    # issue 9: --quantize-lm-head quantizes the output projection like every other linear weight
    "fp8-ue8m0-lm-head": ("fp8-ue8m0", None, "f32"),
    "mxfp4-lm-head": ("e2m1", "floor", "u8"),
}


def quantize_variant(inputs, variant):
    fmt, rule, storage = VARIANTS[variant]
    out, meta, deq = [], {"format": "pt"}, []
    quantized = QUANTIZED | ({"lm_head.weight"} if variant.endswith("-lm-head") else set())
    for name, a in inputs:
        if name not in quantized:
            out.append(arr(name, a))
            continue  # kept tensors are copied; the dequant fixture holds only decoded weights
        w = a.astype(F32)
        n, k = w.shape
        if fmt in ("fp8-ue8m0", "fp8"):
            q, s, e = blockfp8(w, "ue8m0" if fmt == "fp8-ue8m0" else "f32")
            out.append((name, "F8_E4M3", q.shape, q.tobytes()))
            if storage == "e8m0":
                out.append((name + "_scale_inv", "F8_E8M0", e.shape, e.tobytes()))
            else:
                out.append((name + "_scale_inv", "F32", s.shape, s.tobytes()))
            back = blockfp8_dequant(q, s)
        else:
            codes, sc = mx_quant(w, fmt, rule)
            st = "F8_E8M0" if storage == "e8m0" else "U8"
            kp = -(-k // 32) * 32
            if fmt in ("e4m3", "e5m2"):
                out.append((name, "F8_E4M3" if fmt == "e4m3" else "F8_E5M2", codes.shape, codes.tobytes()))
                out.append((name + "_scale", st, sc.shape, sc.tobytes()))
            elif fmt in ("e3m2", "e2m3"):
                if kp != k:
                    meta["ue8.logical_shape." + name] = "[%d, %d]" % (n, k)
                out.append((name, "F6_E3M2" if fmt == "e3m2" else "F6_E2M3", (n, kp), pack_fp6(codes).tobytes()))
                out.append((name + "_scale", st, sc.shape, sc.tobytes()))
            else:
                if kp != k:
                    meta["ue8.logical_shape." + name + "_blocks"] = "[%d, %d]" % (n, k)
                out.append((name + "_blocks", "U8", (n, kp // 32, 16), pack_fp4(codes).tobytes()))
                out.append((name + "_scales", st, sc.shape, sc.tobytes()))
            back = mx_dequant(codes, sc, fmt)
        deq.append(arr(name, back.astype(ml_dtypes.bfloat16)))
    return out, meta, deq


def main():
    inputs = make_inputs()
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "tie_word_embeddings": False,
           "torch_dtype": "bfloat16"}
    write_st(os.path.join(OUT, "input", "model.safetensors"), [arr(n, a) for n, a in inputs], {"format": "pt"})
    with open(os.path.join(OUT, "input", "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    for v in VARIANTS:
        out, meta, deq = quantize_variant(inputs, v)
        write_st(os.path.join(OUT, "expected", v + ".safetensors"), out, meta)
        write_st(os.path.join(OUT, "expected", v + ".dequant-bf16.safetensors"), deq, {"format": "pt"})

    # requantize: an F32-scale FP8 checkpoint (the reference `fp8` output of the inputs above, plus
    # one tensor whose F32 scales are powers of two, which must pass through unchanged).
    rq_in, rq_out = [], []
    for name, a in inputs:
        if name not in QUANTIZED:
            rq_in.append(arr(name, a))
            rq_out.append(arr(name, a))
            continue
        q, s, _ = blockfp8(a.astype(F32), "f32")
        rq_in += [(name, "F8_E4M3", q.shape, q.tobytes()), (name + "_scale_inv", "F32", s.shape, s.tobytes())]
        q2, s2, _ = requant(q, s)
        rq_out += [(name, "F8_E4M3", q2.shape, q2.tobytes()), (name + "_scale_inv", "F32", s2.shape, s2.tobytes())]
    pq = np.arange(1, 200 * 130 + 1, dtype=np.uint32).reshape(200, 130) % 126
    pq = pq.astype(np.uint8)  # E4M3 codes 0..125 (no NaN)
    ps = np.array([[2.0 ** -3, 2.0 ** 5], [1.0, 2.0 ** -20]], F32)
    q2, s2, passed = requant(pq, ps)
    assert passed
    name = "model.layers.0.mlp.gate_proj.weight"
    rq_in += [(name, "F8_E4M3", pq.shape, pq.tobytes()), (name + "_scale_inv", "F32", ps.shape, ps.tobytes())]
    rq_out += [(name, "F8_E4M3", q2.shape, q2.tobytes()), (name + "_scale_inv", "F32", s2.shape, s2.tobytes())]
    qcfg = dict(cfg, quantization_config={"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
                                          "weight_block_size": [128, 128]})
    write_st(os.path.join(OUT, "requant-input", "model.safetensors"), rq_in, {"format": "pt"})
    with open(os.path.join(OUT, "requant-input", "config.json"), "w") as f:
        json.dump(qcfg, f, indent=2)
    write_st(os.path.join(OUT, "expected", "requantized.safetensors"), rq_out, {"format": "pt"})
    print("fixtures written to", OUT, file=sys.stderr)


if __name__ == "__main__":
    main()
