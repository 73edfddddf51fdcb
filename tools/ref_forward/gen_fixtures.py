"""Generate tiny random-weight Llama/Qwen2/Qwen3/Mistral checkpoints (plain and quantized) and their
reference logits from ref_forward.py, as small committed fixtures for ue8-engine's tests.

    python3 tools/ref_forward/gen_fixtures.py   # writes crates/ue8-engine/tests/fixtures/<name>/

Each fixture directory: config.json, model.safetensors, reference.json {"tokens": [...],
"logits": [[...] per position]} (f32-rounded float64 reference). The quantizers here are an
independent numpy implementation of formats.md (ue8m0-ceil tiles, OCP floor MX); the reference
runs on the dequantized weights, so the engine test checks decoding + forward pass together.
"""
import json
import os
import sys

import ml_dtypes
import numpy as np

import ref_forward
import safetensors_np as st

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "crates", "ue8-engine", "tests", "fixtures")


def base_config(arch, d, nh, nkv, ffn, layers, vocab, **extra):
    c = {
        "architectures": [arch], "hidden_size": d, "num_attention_heads": nh,
        "num_key_value_heads": nkv, "intermediate_size": ffn, "num_hidden_layers": layers,
        "vocab_size": vocab, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
        "max_position_embeddings": 256, "hidden_act": "silu", "tie_word_embeddings": False,
        "bos_token_id": 1, "eos_token_id": 2,
    }
    c.update(extra)
    return c


def random_weights(cfg, rng):
    """f32 weights with activations of order 1 (std 1/sqrt(K)) so every part of the math shows."""
    d, nh = cfg["hidden_size"], cfg["num_attention_heads"]
    nkv, ffn = cfg["num_key_value_heads"], cfg["intermediate_size"]
    hd = cfg.get("head_dim") or d // nh
    arch = cfg["architectures"][0]
    mat = lambda n, k: (rng.standard_normal((n, k)) / np.sqrt(k)).astype(np.float32)
    vec = lambda n, s=0.1, m=1.0: (m + s * rng.standard_normal(n)).astype(np.float32)
    w = {"model.embed_tokens.weight": rng.standard_normal((cfg["vocab_size"], d)).astype(np.float32)}
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        w[p + "input_layernorm.weight"] = vec(d)
        w[p + "post_attention_layernorm.weight"] = vec(d)
        w[p + "self_attn.q_proj.weight"] = mat(nh * hd, d)
        w[p + "self_attn.k_proj.weight"] = mat(nkv * hd, d)
        w[p + "self_attn.v_proj.weight"] = mat(nkv * hd, d)
        w[p + "self_attn.o_proj.weight"] = mat(d, nh * hd)
        w[p + "mlp.gate_proj.weight"] = mat(ffn, d)
        w[p + "mlp.up_proj.weight"] = mat(ffn, d)
        w[p + "mlp.down_proj.weight"] = mat(d, ffn)
        if arch == "Qwen2ForCausalLM":
            for m, n in (("q_proj", nh * hd), ("k_proj", nkv * hd), ("v_proj", nkv * hd)):
                w[p + f"self_attn.{m}.bias"] = vec(n, 0.3, 0.0)
        if arch == "Qwen3ForCausalLM":
            w[p + "self_attn.q_norm.weight"] = vec(hd)
            w[p + "self_attn.k_norm.weight"] = vec(hd)
    w["model.norm.weight"] = vec(d)
    if not cfg["tie_word_embeddings"]:
        w["lm_head.weight"] = mat(cfg["vocab_size"], d)
    return w


def plain(arr, dtype):
    if dtype == "F32":
        return ("F32", arr.shape, arr.astype(np.float32).tobytes())
    if dtype == "F16":
        return ("F16", arr.shape, arr.astype(np.float16).tobytes())
    return ("BF16", arr.shape, st.bf16_bytes(arr))


def fp8_tiles(w, scale_dtype):
    """DeepSeek 128x128 E4M3 tiles, ue8m0-ceil rule (formats.md section 2), partial edge tiles."""
    n, k = w.shape
    gn, gk = -(-n // 128), -(-k // 128)
    scales = np.zeros((gn, gk), dtype=np.float32)
    q = np.zeros((n, k), dtype=np.uint8)
    for i in range(gn):
        for j in range(gk):
            tile = w[i * 128:(i + 1) * 128, j * 128:(j + 1) * 128]
            amax = np.float32(np.abs(tile).max())
            s = np.float32(max(amax, np.float32(1e-4)) / np.float32(448.0))
            bits = int(np.array(s, dtype=np.float32).view(np.uint32))
            e = ((bits >> 23) & 0xFF) + (1 if bits & 0x7FFFFF else 0)
            e = min(max(e, 1), 254)
            S = np.array(e << 23, dtype=np.uint32).view(np.float32)
            scales[i, j] = S
            qt = np.clip(tile / S, -448, 448).astype(ml_dtypes.float8_e4m3fn)
            q[i * 128:(i + 1) * 128, j * 128:(j + 1) * 128] = qt.view(np.uint8)
    if scale_dtype == "F8_E8M0":
        sraw = ((scales.view(np.uint32) >> 23) & 0xFF).astype(np.uint8).tobytes()
    else:
        sraw = scales.tobytes()
    return ("F8_E4M3", [n, k], q.tobytes()), (scale_dtype, [gn, gk], sraw)


EMAX = {"e4m3": 8, "e3m2": 4, "e2m1": 2}
NP_ELEM = {"e4m3": ml_dtypes.float8_e4m3fn, "e3m2": ml_dtypes.float6_e3m2fn, "e2m1": ml_dtypes.float4_e2m1fn}
MAXV = {"e4m3": 448.0, "e3m2": 28.0, "e2m1": 6.0}


def mx_quant(w, elem):
    """OCP floor rule, 32-element blocks along K, last block partial; rows zero-padded for FP4/FP6."""
    n, k = w.shape
    nb = -(-k // 32)
    kp = nb * 32
    wp = np.zeros((n, kp), dtype=np.float32)
    wp[:, :k] = w
    blocks = wp.reshape(n, nb, 32)
    amax = np.abs(blocks).max(-1)
    _, ex = np.frexp(amax)  # amax = m * 2^ex, m in [0.5, 1): floor(log2) = ex - 1
    shared = np.where(amax > 0, ex - 1 - EMAX[elem], -127)
    shared = np.clip(shared, -127, 127)
    sbytes = (shared + 127).astype(np.uint8)
    X = np.ldexp(1.0, shared.astype(np.int32))[..., None]
    codes = np.clip(blocks / X, -MAXV[elem], MAXV[elem]).astype(np.float32).astype(NP_ELEM[elem]).view(np.uint8)
    codes = codes.reshape(n, kp)
    return codes, sbytes, k, kp


def mx_tensors(name, w, elem):
    codes, sbytes, k, kp = mx_quant(w, elem)
    n = w.shape[0]
    meta = {}
    scale = ("U8", [n, kp // 32], sbytes.tobytes())
    if elem == "e4m3":
        return {name: ("F8_E4M3", [n, k], np.ascontiguousarray(codes[:, :k]).tobytes()), name + "_scale": scale}, meta
    if elem == "e3m2":
        c = codes.astype(np.uint32).reshape(n, kp // 4, 4)
        word = c[..., 0] | (c[..., 1] << 6) | (c[..., 2] << 12) | (c[..., 3] << 18)
        b = np.stack([word & 0xFF, (word >> 8) & 0xFF, (word >> 16) & 0xFF], -1).astype(np.uint8)
        if kp != k:
            meta["ue8.logical_shape." + name] = json.dumps([n, k])
        return {name: ("F6_E3M2", [n, kp], b.tobytes()), name + "_scale": scale}, meta
    c = codes.reshape(n, kp // 2, 2)
    packed = (c[..., 0] | (c[..., 1] << 4)).astype(np.uint8)
    if kp != k:
        meta["ue8.logical_shape." + name + "_blocks"] = json.dumps([n, k])
    return {name + "_blocks": ("U8", [n, kp // 32, 16], packed.tobytes()), name + "_scales": scale}, meta


def is_linear(name):
    return name.endswith("_proj.weight") or name == "lm_head.weight"


def write_fixture(name, cfg, w, fmt, tokens, quantize_lm_head=False):
    """fmt: F32 | BF16 | F16 | fp8-ue8m0 | fp8-ue8m0-e8m0 | mxfp8 | mxfp6-e3m2 | mxfp4."""
    out = os.path.join(ROOT, name)
    os.makedirs(out, exist_ok=True)
    tensors, meta = {}, {"format": "pt"}
    for tname, arr in w.items():
        quant = is_linear(tname) and (tname != "lm_head.weight" or quantize_lm_head)
        if fmt in ("F32", "BF16", "F16") or not quant:
            tensors[tname] = plain(arr, fmt if fmt in ("F32", "F16") else "BF16")
        elif fmt.startswith("fp8"):
            wt, sc = fp8_tiles(arr, "F8_E8M0" if fmt == "fp8-ue8m0-e8m0" else "F32")
            tensors[tname] = wt
            tensors[tname + "_scale_inv"] = sc
        else:
            elem = {"mxfp8": "e4m3", "mxfp6-e3m2": "e3m2", "mxfp4": "e2m1"}[fmt]
            t, m = mx_tensors(tname, arr, elem)
            tensors.update(t)
            meta.update(m)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    st.write(os.path.join(out, "model.safetensors"), tensors, meta)
    # the reference reads back exactly what was written
    rcfg, rw = ref_forward.load(out)
    logits = ref_forward.forward(rcfg, rw, tokens).astype(np.float32)
    with open(os.path.join(out, "reference.json"), "w") as f:
        json.dump({"tokens": tokens, "logits": [[float(v) for v in row] for row in logits]}, f)
    size = sum(os.path.getsize(os.path.join(out, x)) for x in os.listdir(out))
    print(f"{name}: {fmt}, {size} bytes, argmax {logits.argmax(-1).tolist()}", file=sys.stderr)


def main():
    rng = np.random.default_rng(20261125)
    toks = lambda v, n: [int(t) for t in rng.integers(0, v, n)]
    # Llama with GQA, tied embeddings and Llama-3.1 rope scaling, BF16 storage
    c = base_config("LlamaForCausalLM", 64, 4, 2, 176, 2, 97, tie_word_embeddings=True,
                    rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                  "high_freq_factor": 4.0, "original_max_position_embeddings": 16})
    write_fixture("llama_bf16", c, random_weights(c, rng), "BF16", toks(97, 21))
    # Qwen2: q/k/v bias, odd sizes, F32
    c = base_config("Qwen2ForCausalLM", 48, 6, 2, 80, 2, 61)
    write_fixture("qwen2_f32", c, random_weights(c, rng), "F32", toks(61, 17))
    # Qwen3: explicit head_dim != hidden/heads, q/k norms, F16
    c = base_config("Qwen3ForCausalLM", 40, 4, 1, 72, 2, 53, head_dim=16, rope_theta=1e6)
    write_fixture("qwen3_f16", c, random_weights(c, rng), "F16", toks(53, 13))
    # Mistral with a sliding window shorter than the sequence
    c = base_config("MistralForCausalLM", 40, 5, 5, 56, 2, 37, sliding_window=5)
    write_fixture("mistral_window", c, random_weights(c, rng), "F32", toks(37, 14))
    # Quantized: shapes that cross and miss 128 and 32 (d 160, ffn 272, vocab 131)
    c = base_config("LlamaForCausalLM", 160, 5, 1, 272, 2, 131)
    wq = random_weights(c, rng)
    t = toks(131, 12)
    write_fixture("llama_fp8_ue8m0", c, wq, "fp8-ue8m0", t)
    cq = dict(c)
    write_fixture("llama_fp8_e8m0_qhead", cq, wq, "fp8-ue8m0-e8m0", t, quantize_lm_head=True)
    write_fixture("llama_mxfp8", c, wq, "mxfp8", t)
    write_fixture("llama_mxfp6_e3m2", c, wq, "mxfp6-e3m2", t)
    ct = dict(c, tie_word_embeddings=True)
    wt = {k: v for k, v in wq.items() if k != "lm_head.weight"}
    write_fixture("llama_mxfp4_tied", ct, wt, "mxfp4", t)


if __name__ == "__main__":
    main()
