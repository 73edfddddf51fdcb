#!/usr/bin/env python3
"""Tiny DeepSeek-V4 checkpoints and an independent numpy + ml_dtypes reference of ue8's V4 conversions.

Writes crates/ue8-convert/tests/fixtures/v4/:
  flash/   released layout: FP8 E4M3 dense weights + F8_E8M0 `.scale` [ceil(out/128), ceil(in/128)],
           FP4 routed experts I8 [out, in/2] + F8_E8M0 `.scale` [out, in/32], expert_dtype "fp4", 2 shards
  base/    Base layout: F32 `.scale` (one tensor with power-of-two F32 scales), FP8 routed experts,
           config.json WITHOUT expert_dtype (ue8 must infer it), 3 shards
  gap/     one file: an FP4 expert with a 32-group 2^15 below its tile's largest holding code 0.5
           (not exact in FP8: refused unless --allow-lossy), one at 2^15 holding only exact codes,
           one at exactly 2^14 (the bound), and one whose tile scales are all < 6 (tile byte 0)
  expected.json  sha256 of every output tensor's bytes, per operation, computed here:
           dequantize --dtype bf16 / f32, requantize (FP4 -> FP8 re-encode, F32 -> UE8M0),
           requantize --allow-lossy on gap/.

Nothing here imports ue8. Routes differ on purpose: FP4 decoding uses a value table and np.ldexp,
E4M3 casts come from ml_dtypes (RNE), the UE8M0 ceil uses integer bit logic on the f32 scale.

    python3 tools/ref_v4/gen_v4.py           # regenerate (deterministic, seed fixed)
"""
import hashlib
import json
import os
import struct

import ml_dtypes
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "crates", "ue8-convert", "tests", "fixtures", "v4")
TILE = 128
GROUP = 32
E2M1 = np.array([0, 0.5, 1, 1.5, 2, 3, 4, 6, -0.0, -0.5, -1, -1.5, -2, -3, -4, -6], dtype=np.float64)
E4M3 = ml_dtypes.float8_e4m3fn

CFG = dict(dim=160, vocab=64, heads=2, head_dim=32, q_lora=97, o_groups=2, o_lora=25, experts=2,
           moe_inter=64, shared_inter=41, hc=2, index_heads=2, index_head_dim=32, topk=2)


# ------------------------------------------------------------------ safetensors by hand
def write_st(path, tensors):
    """tensors: list of (name, dtype, shape, raw bytes)."""
    header, off = {"__metadata__": {"format": "pt"}}, 0
    for name, dt, shape, raw in tensors:
        header[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + len(raw)]}
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for t in tensors:
            f.write(t[3])


def write_checkpoint(d, tensors, config, shards):
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        os.remove(os.path.join(d, f))
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        f.write('{"add_bos_token": true, "bos_token": "<|begin_of_sentence|>"}\n')
    if shards == 1:
        write_st(os.path.join(d, "model.safetensors"), tensors)
        return
    per = -(-len(tensors) // shards)
    weight_map, total = {}, 0
    for i in range(shards):
        name = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        part = tensors[i * per:(i + 1) * per]
        write_st(os.path.join(d, name), part)
        for t in part:
            weight_map[t[0]] = name
            total += len(t[3])
    with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
        f.write("\n")


# ------------------------------------------------------------------ random tensors
rng = np.random.default_rng(20261125)


def bf16(shape):
    return ("BF16", shape, rng.standard_normal(shape).astype(np.float32).astype(ml_dtypes.bfloat16).tobytes())


def f32(shape):
    return ("F32", shape, rng.standard_normal(shape).astype(np.float32).tobytes())


def fp8_codes(shape):
    c = rng.integers(0, 256, size=shape, dtype=np.uint8)
    c[(c & 0x7F) == 0x7F] = 0x7E  # no NaN codes
    return c


def fp8_weight(name, out, inp, scale_kind):
    """-> [(name.weight ...), (name.scale ...)]; scale_kind 'e8m0', 'f32' or 'f32pow2'."""
    grid = (-(-out // TILE), -(-inp // TILE))
    codes = fp8_codes((out, inp))
    if scale_kind == "e8m0":
        s = ("F8_E8M0", grid, rng.integers(112, 128, size=grid, dtype=np.uint8).tobytes())
    elif scale_kind == "f32pow2":
        s = ("F32", grid, np.ldexp(np.float32(1), rng.integers(-12, -4, size=grid)).astype(np.float32).tobytes())
    else:  # DeepSeek V3-style amax / 448 scales: not powers of two
        s = ("F32", grid, (rng.uniform(0.5, 8.0, size=grid) / 448.0).astype(np.float32).tobytes())
    return [(f"{name}.weight", "F8_E4M3", (out, inp), codes.tobytes()), (f"{name}.scale",) + s]


def fp4_weight(name, out, inp, scales=None, codes=None):
    """I8 [out, in/2] packed E2M1 (low nibble = even input) + F8_E8M0 [out, in/32]."""
    if codes is None:
        codes = rng.integers(0, 16, size=(out, inp), dtype=np.uint8)
    if scales is None:
        top = int(rng.integers(118, 130))
        scales = rng.integers(top - 14, top + 1, size=(out, inp // GROUP), dtype=np.uint8)
    packed = (codes[:, 0::2] | (codes[:, 1::2] << 4)).astype(np.uint8)
    return [(f"{name}.weight", "I8", (out, inp // 2), packed.tobytes()),
            (f"{name}.scale", "F8_E8M0", (out, inp // GROUP), scales.astype(np.uint8).tobytes())]


def layer(p, i, scale_kind, experts_fp4, compress_ratio):
    c = CFG
    h, m = c["dim"], c["hc"]
    mix = (2 + m) * m
    t = []
    add = lambda name, spec: t.append((name,) + spec)
    for hcn in ("hc_attn", "hc_ffn"):
        add(f"{p}.{hcn}_fn", f32((mix, m * h)))
        add(f"{p}.{hcn}_base", f32((mix,)))
        add(f"{p}.{hcn}_scale", f32((3,)))
    add(f"{p}.attn_norm.weight", bf16((h,)))
    t += fp8_weight(f"{p}.attn.wq_a", c["q_lora"], h, scale_kind)
    add(f"{p}.attn.q_norm.weight", bf16((c["q_lora"],)))
    t += fp8_weight(f"{p}.attn.wq_b", c["heads"] * c["head_dim"], c["q_lora"], scale_kind)
    t += fp8_weight(f"{p}.attn.wkv", c["head_dim"], h, scale_kind)
    add(f"{p}.attn.kv_norm.weight", bf16((c["head_dim"],)))
    t += fp8_weight(f"{p}.attn.wo_a", c["o_groups"] * c["o_lora"], c["heads"] * c["head_dim"] // c["o_groups"],
                    scale_kind)
    t += fp8_weight(f"{p}.attn.wo_b", h, c["o_groups"] * c["o_lora"], scale_kind)
    add(f"{p}.attn.attn_sink", f32((c["heads"],)))
    if compress_ratio:
        out = 2 * c["head_dim"] if compress_ratio == 4 else c["head_dim"]
        add(f"{p}.attn.compressor.wkv.weight", bf16((out, h)))
        add(f"{p}.attn.compressor.wgate.weight", bf16((out, h)))
        add(f"{p}.attn.compressor.ape", f32((compress_ratio, out)))
        add(f"{p}.attn.compressor.norm.weight", bf16((c["head_dim"],)))
        t += fp8_weight(f"{p}.attn.indexer.wq_b", c["index_heads"] * c["index_head_dim"], c["q_lora"], scale_kind)
        add(f"{p}.attn.indexer.weights_proj.weight", bf16((c["index_heads"], h)))
    add(f"{p}.ffn_norm.weight", bf16((h,)))
    add(f"{p}.ffn.gate.weight", bf16((c["experts"], h)))
    if i == 0:  # hash-routed first layer: token id -> expert table
        add(f"{p}.ffn.gate.tid2eid", ("I64", (c["vocab"], c["topk"]),
                                      rng.integers(0, c["experts"], size=(c["vocab"], c["topk"])).astype(np.int64).tobytes()))
    else:
        add(f"{p}.ffn.gate.bias", f32((c["experts"],)))
    mi = c["moe_inter"]
    for e in range(c["experts"]):
        for w, (o, k) in (("w1", (mi, h)), ("w2", (h, mi)), ("w3", (mi, h))):
            name = f"{p}.ffn.experts.{e}.{w}"
            t += fp4_weight(name, o, k) if experts_fp4 else fp8_weight(name, o, k, scale_kind)
    si = c["shared_inter"]
    for w, (o, k) in (("w1", (si, h)), ("w2", (h, si)), ("w3", (si, h))):
        t += fp8_weight(f"{p}.ffn.shared_experts.{w}", o, k, scale_kind)
    return t


def model(scale_kind, experts_fp4):
    c = CFG
    h = c["dim"]
    t = [("embed.weight",) + bf16((c["vocab"], h))]
    ratios = [0, 4]
    for i, r in enumerate(ratios):
        t += layer(f"layers.{i}", i, scale_kind, experts_fp4, r)
    t.append(("norm.weight",) + bf16((h,)))
    t.append(("head.weight",) + bf16((c["vocab"], h)))
    m = c["hc"]
    t += [("hc_head_fn",) + f32((m, m * h)), ("hc_head_base",) + f32((m,)), ("hc_head_scale",) + f32((1,))]
    # MTP module: its own projections, norms, hc head and one layer
    t += fp8_weight("mtp.0.e_proj", h, h, scale_kind)
    t += fp8_weight("mtp.0.h_proj", h, h, scale_kind)
    for n in ("enorm", "hnorm", "norm"):
        t.append((f"mtp.0.{n}.weight",) + bf16((h,)))
    t += [("mtp.0.hc_head_fn",) + f32((m, m * h)), ("mtp.0.hc_head_base",) + f32((m,)),
          ("mtp.0.hc_head_scale",) + f32((1,))]
    t += layer("mtp.0", 1, scale_kind, experts_fp4, 0)
    if scale_kind == "f32":  # one tensor whose F32 scales are already powers of two (pass-through)
        t = [x for x in t if not x[0].startswith("layers.1.attn.wkv.")]
        t += fp8_weight("layers.1.attn.wkv", c["head_dim"], h, "f32pow2")
    return t


def config(expert_dtype, scale_fmt):
    c = CFG
    cfg = {
        "architectures": ["DeepseekV4ForCausalLM"], "model_type": "deepseek_v4",
        "vocab_size": c["vocab"], "hidden_size": c["dim"], "num_hidden_layers": 2,
        "num_attention_heads": c["heads"], "num_key_value_heads": 1, "head_dim": c["head_dim"],
        "q_lora_rank": c["q_lora"], "o_lora_rank": c["o_lora"], "o_groups": c["o_groups"],
        "qk_rope_head_dim": 16, "n_routed_experts": c["experts"], "n_shared_experts": 1,
        "num_experts_per_tok": c["topk"], "moe_intermediate_size": c["moe_inter"], "num_hash_layers": 1,
        "num_nextn_predict_layers": 1, "hc_mult": c["hc"], "hc_sinkhorn_iters": 20, "hc_eps": 1e-6,
        "index_n_heads": c["index_heads"], "index_head_dim": c["index_head_dim"], "index_topk": 8,
        "compress_ratios": [0, 4, 0], "sliding_window": 128, "rms_norm_eps": 1e-6,
        "scoring_func": "sqrtsoftplus", "topk_method": "noaux_tc", "routed_scaling_factor": 1.5,
        "tie_word_embeddings": False, "torch_dtype": "bfloat16",
        "quantization_config": {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
                                "weight_block_size": [128, 128]},
    }
    if scale_fmt:
        cfg["quantization_config"]["scale_fmt"] = scale_fmt
    if expert_dtype:
        cfg["expert_dtype"] = expert_dtype
    return cfg


# ------------------------------------------------------------------ reference conversions
def sha(b):
    return hashlib.sha256(b).hexdigest()


def e4m3_f32(codes):
    return codes.view(E4M3).astype(np.float32)


def tile_scales_f32(raw, dt, grid):
    if dt == "F32":
        return np.frombuffer(raw, dtype=np.float32).reshape(grid)
    b = np.frombuffer(raw, dtype=np.uint8).reshape(grid).astype(np.int32)
    return np.ldexp(np.float32(1), b - 127).astype(np.float32)


def expand_tiles(s, out, inp):
    return np.repeat(np.repeat(s, TILE, axis=0), TILE, axis=1)[:out, :inp]


def dequant_fp8(w, s):
    (_, _, (out, inp), raw), (_, sdt, grid, sraw) = w, s
    codes = np.frombuffer(raw, dtype=np.uint8).reshape(out, inp)
    return e4m3_f32(codes) * expand_tiles(tile_scales_f32(sraw, sdt, grid), out, inp)  # one f32 multiply


def unpack_fp4(raw, out, inp):
    b = np.frombuffer(raw, dtype=np.uint8).reshape(out, inp // 2)
    codes = np.empty((out, inp), dtype=np.uint8)
    codes[:, 0::2] = b & 0xF
    codes[:, 1::2] = b >> 4
    return codes


def dequant_fp4(w, s):
    (_, _, (out, half), raw), (_, _, (_, nb), sraw) = w, s
    inp = 2 * half
    codes = unpack_fp4(raw, out, inp)
    g = np.repeat(np.frombuffer(sraw, dtype=np.uint8).reshape(out, nb).astype(np.int32), GROUP, axis=1)
    return np.ldexp(E2M1[codes], g - 127).astype(np.float32)  # exact in float64, then f32 (no rounding)


def reencode_fp4(w, s, lossy):
    """-> (E4M3 codes bytes, E8M0 tile bytes, exact?) with tile byte max(G - 6, 0)."""
    (_, _, (out, half), raw), (_, _, (_, nb), sraw) = w, s
    inp = 2 * half
    codes = unpack_fp4(raw, out, inp)
    g = np.frombuffer(sraw, dtype=np.uint8).reshape(out, nb).astype(np.int32)
    gr, gc = -(-out // TILE), -(-inp // TILE)
    tiles = np.zeros((gr, gc), dtype=np.int32)
    for i in range(gr):
        for j in range(gc):
            tiles[i, j] = max(int(g[i * TILE:(i + 1) * TILE, j * 4:(j + 1) * 4].max()) - 6, 0)
    shift = np.repeat(g, GROUP, axis=1) - expand_tiles(tiles, out, inp)
    exact_vals = np.ldexp(E2M1[codes], shift)  # float64, exact
    q = exact_vals.astype(E4M3)  # ml_dtypes: RNE
    exact = bool(np.all(q.astype(np.float64) == exact_vals))
    if not exact and not lossy:
        return None, None, False
    return q.view(np.uint8).tobytes(), tiles.astype(np.uint8).tobytes(), exact


def requant_f32_scales(w, s):
    """F32-scale FP8 -> UE8M0 (formats.md section 2). -> (codes bytes, E8M0 tile bytes)."""
    (_, _, (out, inp), raw), (_, sdt, grid, sraw) = w, s
    sc = np.frombuffer(sraw, dtype=np.float32).reshape(grid)
    bits = sc.view(np.uint32)
    if np.all((bits & 0x7FFFFF) == 0):  # already powers of two: pass through
        return raw, ((bits >> 23) & 0xFF).astype(np.uint8).tobytes()
    wf = dequant_fp8(w, s)
    codes = np.empty((out, inp), dtype=np.uint8)
    ebytes = np.zeros(grid, dtype=np.uint8)
    for i in range(grid[0]):
        for j in range(grid[1]):
            blk = wf[i * TILE:(i + 1) * TILE, j * TILE:(j + 1) * TILE]
            amax = np.float32(np.abs(blk).max())
            sv = np.float32(max(amax, np.float32(1e-4)) / np.float32(448.0))
            b = int(np.array(sv, dtype=np.float32).view(np.uint32))
            e = ((b >> 23) & 0xFF) + (1 if (b & 0x7FFFFF) else 0)
            e = min(max(e, 1), 254)
            S = np.float32(np.ldexp(np.float32(1), e - 127))
            ebytes[i, j] = e
            codes[i * TILE:(i + 1) * TILE, j * TILE:(j + 1) * TILE] = \
                np.clip(blk / S, -448, 448).astype(np.float32).astype(E4M3).view(np.uint8)
    return codes.tobytes(), ebytes.tobytes()


def pairs(tensors):
    by = {t[0]: t for t in tensors}
    for t in tensors:
        if t[0].endswith(".weight") and t[0][:-7] + ".scale" in by:
            yield t, by[t[0][:-7] + ".scale"]


def expectations(tensors, allow_lossy=False):
    e = {"dequantize_bf16": {}, "dequantize_f32": {}, "requantize": {}, "refused": []}
    for w, s in pairs(tensors):
        vals = dequant_fp4(w, s) if w[1] == "I8" else dequant_fp8(w, s)
        e["dequantize_f32"][w[0]] = sha(vals.astype(np.float32).tobytes())
        e["dequantize_bf16"][w[0]] = sha(vals.astype(ml_dtypes.bfloat16).tobytes())
        if w[1] == "I8":
            q, tiles, exact = reencode_fp4(w, s, allow_lossy)
            if q is None:
                e["refused"].append(w[0])
                continue
            e["requantize"][w[0]] = sha(q)
            e["requantize"][s[0]] = sha(tiles)
            if not exact:
                e.setdefault("lossy", []).append(w[0])
        elif s[1] == "F32":
            q, tiles = requant_f32_scales(w, s)
            e["requantize"][w[0]] = sha(q)
            e["requantize"][s[0]] = sha(tiles)
    return e


def gap_model():
    h, mi = CFG["dim"], CFG["moe_inter"]
    t = [("embed.weight",) + bf16((CFG["vocab"], h))]

    def expert(name, gap, codes_at_gap):
        scales = np.full((mi, h // GROUP), 127, dtype=np.uint8)
        codes = rng.integers(0, 16, size=(mi, h), dtype=np.uint8)
        scales[3, 1] = 127 - gap  # row 3, inputs 32..63, in tile (0, 0) whose largest is 127
        codes[3, 32:64] = rng.choice(codes_at_gap, size=32)
        return fp4_weight(name, mi, h, scales=scales, codes=codes)

    t += expert("layers.0.ffn.experts.0.w1", 15, [1, 9])  # 0.5 at 2^15 below: not exact
    t += expert("layers.0.ffn.experts.0.w3", 15, [0, 2, 4, 6, 7, 10, 15])  # 0, 1, 2, 4, 6: exact
    t += expert("layers.0.ffn.experts.1.w1", 14, [1, 3, 9, 11])  # 0.5 and 1.5 at the bound: exact
    low = fp4_weight("layers.0.ffn.experts.1.w3", mi, h,
                     scales=rng.integers(0, 6, size=(mi, h // GROUP), dtype=np.uint8))  # tile byte 0
    return t + low


def main():
    os.makedirs(OUT, exist_ok=True)
    flash = model("e8m0", True)
    base = model("f32", False)
    gap = gap_model()
    write_checkpoint(os.path.join(OUT, "flash"), flash, config("fp4", "ue8m0"), 2)
    write_checkpoint(os.path.join(OUT, "base"), base, config(None, None), 3)
    cfg = config("fp4", "ue8m0")
    write_checkpoint(os.path.join(OUT, "gap"), gap, cfg, 1)
    expected = {
        "_generator": "tools/ref_v4/gen_v4.py (numpy + ml_dtypes, independent of ue8)",
        "flash": expectations(flash),
        "base": expectations(base),
        "gap": expectations(gap),
        "gap_lossy": expectations(gap, allow_lossy=True),
    }
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True)
        f.write("\n")
    for k in ("flash", "base", "gap"):
        d = os.path.join(OUT, k)
        print(k, sum(os.path.getsize(os.path.join(d, x)) for x in os.listdir(d)), "bytes")
    print("refused:", expected["gap"]["refused"], "lossy:", expected["gap_lossy"].get("lossy"))


if __name__ == "__main__":
    main()
