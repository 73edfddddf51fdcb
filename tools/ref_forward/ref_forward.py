"""Independent numpy reference forward pass for the Llama family (Llama, Qwen2, Qwen3, Mistral).

Float64 throughout, written from the Hugging Face modeling files' math (rotate-half rope, GQA,
SwiGLU, RMS norm), not from ue8's code. Weights are dequantized with ml_dtypes (the format oracle):
DeepSeek 128x128 FP8 tiles and the MX layouts of docs/layouts.md.

Usage: python3 ref_forward.py MODEL_DIR TOKEN_IDS...   (prints the argmax of each position)
       python3 ref_forward.py --dump OUT.json MODEL_DIR TOKEN_IDS...   (writes the logits)
"""
import json
import math
import sys

import ml_dtypes
import numpy as np

import safetensors_np as st

ELEM = {
    "F8_E4M3": ml_dtypes.float8_e4m3fn, "F8_E5M2": ml_dtypes.float8_e5m2,
    "F6_E3M2": ml_dtypes.float6_e3m2fn, "F6_E2M3": ml_dtypes.float6_e2m3fn,
}


def e8m0(raw, shape):
    b = np.frombuffer(raw, dtype=np.uint8).reshape(shape).astype(np.int32)
    assert (b != 255).all(), "E8M0 NaN scale"
    return np.ldexp(1.0, b - 127)


def codes_to_float(codes, np_elem):
    return codes.astype(np.uint8).view(np_elem).astype(np.float64)


def unpack_fp6(raw, rows, kp):
    """LSB-first 6-bit stream per docs/layouts.md."""
    b = np.frombuffer(raw, dtype=np.uint8).reshape(rows, kp * 3 // 4).astype(np.uint32)
    g = b.reshape(rows, kp // 4, 3)
    word = g[..., 0] | (g[..., 1] << 8) | (g[..., 2] << 16)
    codes = np.stack([(word >> (6 * i)) & 0x3F for i in range(4)], axis=-1)
    return codes.reshape(rows, kp)


def load(model_dir):
    """Returns (config dict, dict of float64 weights by HF module/tensor name)."""
    cfg = json.load(open(f"{model_dir}/config.json"))
    meta, t = st.read(f"{model_dir}/model.safetensors")
    w = {}
    for name, (dtype, shape, raw) in t.items():
        if name.endswith(("_scale_inv", "_scale", "_scales")):
            continue
        if name.endswith(".weight_blocks"):  # MXFP4 gpt-oss naming
            base = name[: -len("_blocks")]
            n, nb, _ = shape
            by = np.frombuffer(raw, dtype=np.uint8).reshape(n, nb * 16)
            codes = np.stack([by & 0xF, by >> 4], axis=-1).reshape(n, nb * 32)
            vals = codes_to_float(codes, ml_dtypes.float4_e2m1fn)
            sd, ss, sraw = t[base + "_scales"]
            scale = np.repeat(e8m0(sraw, ss), 32, axis=1)
            k = json.loads(meta.get("ue8.logical_shape." + name, "null") or "null")
            full = vals * scale
            w[base] = full[:, : k[1]] if k else full
            continue
        if dtype == "F32":
            w[name] = np.frombuffer(raw, dtype=np.float32).reshape(shape).astype(np.float64)
        elif dtype == "F16":
            w[name] = np.frombuffer(raw, dtype=np.float16).reshape(shape).astype(np.float64)
        elif dtype == "BF16":
            w[name] = st.bf16_to_f32(raw, shape).astype(np.float64)
        elif dtype in ELEM:
            n = shape[0]
            if dtype.startswith("F6"):
                kp = shape[1]
                codes = unpack_fp6(raw, n, kp)
            else:
                codes = np.frombuffer(raw, dtype=np.uint8).reshape(shape)
            vals = codes_to_float(codes, ELEM[dtype])
            if name + "_scale_inv" in t:
                sd, ss, sraw = t[name + "_scale_inv"]
                s = (np.frombuffer(sraw, dtype=np.float32).reshape(ss).astype(np.float64)
                     if sd == "F32" else e8m0(sraw, ss))
                full = np.kron(s, np.ones((128, 128)))[: vals.shape[0], : vals.shape[1]]
                w[name] = vals * full
            else:
                sd, ss, sraw = t[name + "_scale"]
                scale = np.repeat(e8m0(sraw, ss), 32, axis=1)[:, : vals.shape[1]]
                full = vals * scale
                k = json.loads(meta.get("ue8.logical_shape." + name, "null") or "null")
                w[name] = full[:, : k[1]] if k else full
        else:
            raise ValueError(f"{name}: dtype {dtype}")
    return cfg, w


def rms_norm(x, g, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * g


def inv_freq(cfg, hd):
    theta = cfg.get("rope_theta", 10000.0)
    f = 1.0 / theta ** (np.arange(0, hd, 2, dtype=np.float64) / hd)
    rs = cfg.get("rope_scaling")
    if rs and rs.get("rope_type", rs.get("type")) == "llama3":
        factor, lf, hf = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
        old = rs["original_max_position_embeddings"]
        wavelen = 2 * math.pi / f
        smooth = (old / wavelen - lf) / (hf - lf)
        scaled = np.where(wavelen > old / lf, f / factor, f)
        mid = (wavelen <= old / lf) & (wavelen >= old / hf)
        f = np.where(mid, (1 - smooth) * f / factor + smooth * f, scaled)
    return f


def rope(x, pos, f):
    """x: [T, heads, hd], rotate-half convention."""
    ang = pos[:, None] * f[None, :]
    cos = np.concatenate([np.cos(ang)] * 2, axis=-1)[:, None, :]
    sin = np.concatenate([np.sin(ang)] * 2, axis=-1)[:, None, :]
    h = x.shape[-1] // 2
    rot = np.concatenate([-x[..., h:], x[..., :h]], axis=-1)
    return x * cos + rot * sin


def forward(cfg, w, tokens):
    """Logits [T, V] for every position of `tokens` (float64)."""
    arch = cfg["architectures"][0]
    d = cfg["hidden_size"]
    nh = cfg["num_attention_heads"]
    nkv = cfg.get("num_key_value_heads", nh)
    hd = cfg.get("head_dim") or d // nh
    eps = cfg.get("rms_norm_eps", 1e-6)
    window = cfg.get("sliding_window") if arch == "MistralForCausalLM" else None
    T = len(tokens)
    pos = np.arange(T, dtype=np.float64)
    f = inv_freq(cfg, hd)
    x = w["model.embed_tokens.weight"][tokens]
    mask = np.tril(np.ones((T, T), dtype=bool))
    if window:
        mask &= (np.arange(T)[:, None] - np.arange(T)[None, :]) < window
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        lin = lambda name, v: v @ w[p + name + ".weight"].T + w.get(p + name + ".bias", 0.0)
        h = rms_norm(x, w[p + "input_layernorm.weight"], eps)
        q = lin("self_attn.q_proj", h).reshape(T, nh, hd)
        k = lin("self_attn.k_proj", h).reshape(T, nkv, hd)
        v = lin("self_attn.v_proj", h).reshape(T, nkv, hd)
        if arch == "Qwen3ForCausalLM":
            q = rms_norm(q, w[p + "self_attn.q_norm.weight"], eps)
            k = rms_norm(k, w[p + "self_attn.k_norm.weight"], eps)
        q, k = rope(q, pos, f), rope(k, pos, f)
        rep = nh // nkv
        k = np.repeat(k, rep, axis=1)
        v = np.repeat(v, rep, axis=1)
        s = np.einsum("thd,shd->hts", q, k) / math.sqrt(hd)
        s = np.where(mask[None], s, -np.inf)
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        a = np.einsum("hts,shd->thd", s, v).reshape(T, nh * hd)
        x = x + lin("self_attn.o_proj", a)
        h = rms_norm(x, w[p + "post_attention_layernorm.weight"], eps)
        g = lin("mlp.gate_proj", h)
        u = lin("mlp.up_proj", h)
        x = x + lin("mlp.down_proj", g / (1 + np.exp(-g)) * u)
    x = rms_norm(x, w["model.norm.weight"], eps)
    head = w.get("lm_head.weight")
    if head is None:
        head = w["model.embed_tokens.weight"]
    return x @ head.T




def dump(model_dir, tokens, out_path):
    """Write {"tokens", "logits"} (f32-rounded) for `tokens` to out_path (used by slow tests)."""
    cfg, w = load(model_dir)
    logits = forward(cfg, w, tokens).astype(np.float32)
    with open(out_path, "w") as f:
        json.dump({"tokens": tokens, "logits": [[float(v) for v in row] for row in logits]}, f)


if __name__ == "__main__":
    if sys.argv[1] == "--dump":  # ref_forward.py --dump OUT.json MODEL_DIR TOKEN_IDS...
        dump(sys.argv[3], [int(t) for t in sys.argv[4:]], sys.argv[2])
    else:
        cfg, w = load(sys.argv[1])
        toks = [int(t) for t in sys.argv[2:]]
        print(forward(cfg, w, toks).argmax(-1).tolist())
