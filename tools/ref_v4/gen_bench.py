#!/usr/bin/env python3
"""A multi-GiB DeepSeek-V4-shaped checkpoint for tools/bench/v4.sh: V4 Flash's real per-layer shapes
(dim 4096, expert inter 2048, q_lora 1024, ...) with random bytes, FP4 experts + E8M0 scales within the
exact-re-encode bound, FP8 dense + E8M0 tile scales, BF16/F32 others, 4 GB shards with an index.

    python3 tools/ref_v4/gen_bench.py OUT_DIR SIZE_GIB
"""
import json
import os
import struct
import sys

import numpy as np

rng = np.random.default_rng(7)
DIM, INTER, QL, HEADS, HD, OG, OL = 4096, 2048, 1024, 64, 512, 8, 1024


def fp8(name, out, inp):
    c = rng.integers(0, 256, size=out * inp, dtype=np.uint8)
    c[(c & 0x7F) == 0x7F] = 0x7E
    g = ((out + 127) // 128, (inp + 127) // 128)
    return [(f"{name}.weight", "F8_E4M3", (out, inp), c.tobytes()),
            (f"{name}.scale", "F8_E8M0", g, rng.integers(110, 125, size=g, dtype=np.uint8).tobytes())]


def fp4(name, out, inp):
    return [(f"{name}.weight", "I8", (out, inp // 2), rng.integers(0, 256, size=out * inp // 2, dtype=np.uint8).tobytes()),
            (f"{name}.scale", "F8_E8M0", (out, inp // 32), rng.integers(113, 128, size=out * inp // 32, dtype=np.uint8).tobytes())]


def layer(i, n_experts):
    p = f"layers.{i}"
    t = [(f"{p}.attn_norm.weight", "BF16", (DIM,), bytes(2 * DIM))]
    t += fp8(f"{p}.attn.wq_a", QL, DIM) + fp8(f"{p}.attn.wq_b", HEADS * HD, QL) + fp8(f"{p}.attn.wkv", HD, DIM)
    t += fp8(f"{p}.attn.wo_a", OG * OL, HEADS * HD // OG) + fp8(f"{p}.attn.wo_b", DIM, OG * OL)
    t.append((f"{p}.attn.attn_sink", "F32", (HEADS,), bytes(4 * HEADS)))
    t.append((f"{p}.ffn.gate.weight", "BF16", (n_experts, DIM), bytes(2 * n_experts * DIM)))
    for e in range(n_experts):
        for w, (o, k) in (("w1", (INTER, DIM)), ("w2", (DIM, INTER)), ("w3", (INTER, DIM))):
            t += fp4(f"{p}.ffn.experts.{e}.{w}", o, k)
    for w, (o, k) in (("w1", (INTER, DIM)), ("w2", (DIM, INTER)), ("w3", (INTER, DIM))):
        t += fp8(f"{p}.ffn.shared_experts.{w}", o, k)
    return t


def write_st(path, tensors):
    header, off = {}, 0
    for name, dt, shape, raw in tensors:
        header[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + len(raw)]}
        off += len(raw)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for t in tensors:
            f.write(t[3])


def main():
    out, gib = sys.argv[1], float(sys.argv[2])
    os.makedirs(out, exist_ok=True)
    budget = int(gib * (1 << 30))
    shards, cur, size, i = [], [], 0, 0
    total = 0
    while total < budget:
        lt = layer(i, 16)
        cur += lt
        b = sum(len(t[3]) for t in lt)
        size += b
        total += b
        i += 1
        if size > 4_000_000_000 or total >= budget:
            shards.append(cur)
            cur, size = [], 0
    n = len(shards)
    wm = {}
    for k, part in enumerate(shards):
        name = f"model-{k + 1:05d}-of-{n:05d}.safetensors"
        write_st(os.path.join(out, name), part)
        wm.update({t[0]: name for t in part})
    with open(os.path.join(out, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": wm}, f)
    cfg = {"model_type": "deepseek_v4", "architectures": ["DeepseekV4ForCausalLM"], "expert_dtype": "fp4",
           "hidden_size": DIM, "num_hidden_layers": i, "moe_intermediate_size": INTER,
           "quantization_config": {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
                                   "scale_fmt": "ue8m0", "weight_block_size": [128, 128]}}
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    print(f"{out}: {i} layers, {total / (1 << 30):.2f} GiB in {n} shard(s)")


if __name__ == "__main__":
    main()
