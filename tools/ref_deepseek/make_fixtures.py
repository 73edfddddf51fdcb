#!/usr/bin/env python3
"""Tiny random DeepseekV3ForCausalLM checkpoints and transformers' logits on them, as committed
fixtures for crates/ue8-engine/tests/deepseek_reference.rs (CI needs no torch).

The oracle is transformers' own DeepseekV3ForCausalLM (torch, CPU, float32, eager attention).
For every model directory written under crates/ue8-engine/tests/fixtures/deepseek/<name>/:
  config.json, model.safetensors      the checkpoint ue8 loads
  reference.safetensors                tokens [T] (I32), logits [T, V] (F32), mean_nll [1] (F64)
FP8 variants hold E4M3 weights + `weight_scale_inv` and their reference is transformers running the
same weights dequantized exactly as ue8 does (f32(q) * S in f32), per shared/design/formats.md s.2.

tiny_c_smollm2_vocab_bf16 (issue 10: "a model with SmolLM2's 49152-token vocabulary and tokenizer"):
hidden 16 so the checkpoint stays about 3 MB, DeepSeek-V3's own YaRN (factor 40, mscales 1), and as
input the start of data/demo/pride_and_prejudice_ch1-6.txt tokenized by SmolLM2's tokenizer.json (the
`tokenizers` package over the file `ue8 import-gguf` writes from the SmolLM2 GGUF of
shared/data/fetch-smollm2.sh; 3.5 MB, so only the ids are committed). Full [T, 49152] logits would be
50 MB, so its reference.safetensors holds instead:
  tokens [T] (I32), text_bytes [1] (I64: the ids are the encoding of the text's first text_bytes bytes),
  nll [T-1] (F64, per position), mean_nll [1] (F64), logsumexp [T] (F64),
  top_ids [T, K] / top_logits [T, K] (I32 / F32, the K largest logits), last_logits [V] (F32, last row)
and its metadata names the tokenizer.json's sha256.

Usage: python3 tools/ref_deepseek/make_fixtures.py [--only NAME] [--smollm2-tokenizer tokenizer.json]
       (pins in tools/ref_deepseek/requirements.txt; without --smollm2-tokenizer, the GGUF is imported
       with target/release/ue8 into a temporary directory)
"""
import argparse
import atexit
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

import ml_dtypes
import numpy as np
import torch
from safetensors.numpy import save_file

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "crates", "ue8-engine", "tests", "fixtures", "deepseek")
SEQ_LEN = 48
REPO = os.path.join(os.path.dirname(__file__), "..", "..")
DEMO_TEXT = os.path.join(REPO, "data", "demo", "pride_and_prejudice_ch1-6.txt")
# The SmolLM2-vocabulary fixture: the demo text up to the first line break after this many bytes
# (about 250 tokens), and the K largest logits kept per position.
VOCAB_TEXT_BYTES = 1000
VOCAB_TOP_K = 8

# Two shapes: A has q_lora, YaRN (unequal mscales), interleaved rope, dims not multiples of 128
# (160, partial FP8 tiles), an MTP layer stored and a dense first layer, DeepSeek's config
# spelling; B has a direct q_proj, no YaRN, rotate-half rope, multiples of 128, all layers MoE,
# transformers 5's `rope_parameters` spelling.
CONFIGS = {
    "tiny_a": dict(
        hidden_size=160, intermediate_size=192, moe_intermediate_size=32, num_hidden_layers=3,
        num_attention_heads=4, num_key_value_heads=4, vocab_size=320, q_lora_rank=96,
        kv_lora_rank=64, qk_nope_head_dim=32, qk_rope_head_dim=16, v_head_dim=24,
        first_k_dense_replace=1, n_routed_experts=16, n_group=4, topk_group=2,
        num_experts_per_tok=4, n_shared_experts=1, norm_topk_prob=True, routed_scaling_factor=2.5,
        rope_interleave=True, num_nextn_predict_layers=1, rms_norm_eps=1e-6,
        max_position_embeddings=256, tie_word_embeddings=False,
        rope_theta=10000.0,
        rope_scaling=dict(type="yarn", factor=4.0, original_max_position_embeddings=64,
                          beta_fast=32, beta_slow=1, mscale=0.707, mscale_all_dim=1.0),
    ),
    "tiny_b": dict(
        hidden_size=256, intermediate_size=256, moe_intermediate_size=48, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, vocab_size=288, q_lora_rank=None,
        kv_lora_rank=128, qk_nope_head_dim=32, qk_rope_head_dim=16, v_head_dim=32,
        first_k_dense_replace=0, n_routed_experts=8, n_group=2, topk_group=1,
        num_experts_per_tok=2, n_shared_experts=2, norm_topk_prob=False, routed_scaling_factor=1.5,
        rope_interleave=False, num_nextn_predict_layers=0, rms_norm_eps=1e-5,
        max_position_embeddings=256, tie_word_embeddings=False,
        rope_parameters=dict(rope_type="default", rope_theta=50000.0),
    ),
}


# DeepSeek-V3's layout at toy size with SmolLM2's vocabulary: separate lm_head, q_lora, a dense first
# layer, interleaved rope and DeepSeek-V3's YaRN (factor 40 from 4096, mscale = mscale_all_dim = 1).
VOCAB_CONFIG = dict(
    hidden_size=16, intermediate_size=32, moe_intermediate_size=16, num_hidden_layers=2,
    num_attention_heads=2, num_key_value_heads=2, vocab_size=49152, q_lora_rank=16,
    kv_lora_rank=16, qk_nope_head_dim=8, qk_rope_head_dim=8, v_head_dim=8,
    first_k_dense_replace=1, n_routed_experts=8, n_group=4, topk_group=2,
    num_experts_per_tok=2, n_shared_experts=1, norm_topk_prob=True, routed_scaling_factor=2.5,
    rope_interleave=True, num_nextn_predict_layers=0, rms_norm_eps=1e-6,
    max_position_embeddings=163840, tie_word_embeddings=False, rope_theta=10000.0,
    rope_scaling=dict(type="yarn", factor=40.0, original_max_position_embeddings=4096,
                      beta_fast=32, beta_slow=1, mscale=1.0, mscale_all_dim=1.0),
)


def config_json(c):
    d = dict(architectures=["DeepseekV3ForCausalLM"], model_type="deepseek_v3", hidden_act="silu",
             scoring_func="sigmoid", topk_method="noaux_tc", attention_bias=False,
             bos_token_id=0, eos_token_id=1, torch_dtype="bfloat16")
    d.update(c)
    return d


def bf16_round(a):
    return a.astype(np.float32).astype(ml_dtypes.bfloat16).astype(np.float32)


def make_weights(c, seed):
    """Per-module tensors in DeepSeek's Hugging Face naming (one 2-D tensor per expert), values
    already rounded to bf16. Scales are chosen so the model is confident (clear top-1 margins)."""
    rng = np.random.default_rng(seed)
    d, h = c["hidden_size"], c["num_attention_heads"]
    nope, rope, v = c["qk_nope_head_dim"], c["qk_rope_head_dim"], c["v_head_dim"]
    kl = c["kv_lora_rank"]
    w = {}

    def lin(name, n, k, gain=1.0):
        w[name + ".weight"] = bf16_round(rng.standard_normal((n, k)) * (gain / np.sqrt(k)))

    def norm(name, n):
        w[name + ".weight"] = bf16_round(1.0 + 0.2 * rng.standard_normal(n))

    w["model.embed_tokens.weight"] = bf16_round(rng.standard_normal((c["vocab_size"], d)))
    for l in range(c["num_hidden_layers"]):
        p = f"model.layers.{l}"
        norm(f"{p}.input_layernorm", d)
        norm(f"{p}.post_attention_layernorm", d)
        a = f"{p}.self_attn"
        if c["q_lora_rank"]:
            lin(f"{a}.q_a_proj", c["q_lora_rank"], d)
            norm(f"{a}.q_a_layernorm", c["q_lora_rank"])
            lin(f"{a}.q_b_proj", h * (nope + rope), c["q_lora_rank"], 2.0)
        else:
            lin(f"{a}.q_proj", h * (nope + rope), d, 2.0)
        lin(f"{a}.kv_a_proj_with_mqa", kl + rope, d, 2.0)
        norm(f"{a}.kv_a_layernorm", kl)
        lin(f"{a}.kv_b_proj", h * (nope + v), kl)
        lin(f"{a}.o_proj", d, h * v)
        m = f"{p}.mlp"
        if l >= c["first_k_dense_replace"]:
            e, f = c["n_routed_experts"], c["moe_intermediate_size"]
            lin(f"{m}.gate", e, d, 3.0)
            w[f"{m}.gate.e_score_correction_bias"] = (0.05 * rng.standard_normal(e)).astype(np.float32)
            for x in range(e):
                lin(f"{m}.experts.{x}.gate_proj", f, d)
                lin(f"{m}.experts.{x}.up_proj", f, d)
                lin(f"{m}.experts.{x}.down_proj", d, f)
            fs = f * c["n_shared_experts"]
            lin(f"{m}.shared_experts.gate_proj", fs, d)
            lin(f"{m}.shared_experts.up_proj", fs, d)
            lin(f"{m}.shared_experts.down_proj", d, fs)
        else:
            fi = c["intermediate_size"]
            lin(f"{m}.gate_proj", fi, d)
            lin(f"{m}.up_proj", fi, d)
            lin(f"{m}.down_proj", d, fi)
    norm("model.norm", d)
    lin("lm_head", c["vocab_size"], d, 2.0)
    # MTP layer(s): stored after the main layers; ue8 and transformers skip them.
    for i in range(c.get("num_nextn_predict_layers", 0)):
        p = f"model.layers.{c['num_hidden_layers'] + i}"
        lin(f"{p}.eh_proj", d, 2 * d)
        norm(f"{p}.enorm", d)
        norm(f"{p}.hnorm", d)
        norm(f"{p}.input_layernorm", d)
    return w


def is_quantized(name, arr):
    """DeepSeek's FP8 checkpoints (and `ue8 quantize`) quantize every 2-D linear weight except
    embeddings, lm_head and the router, the MTP layer's eh_proj included; norms and the correction
    bias stay as they are."""
    if arr.ndim != 2 or not name.endswith(".weight"):
        return False
    return not (name.startswith("model.embed_tokens") or name.startswith("lm_head")
                or name.endswith("mlp.gate.weight"))


def quantize_fp8(w, rule):
    """formats.md s.2: per 128x128 tile, s = max(amax, 1e-4) / 448 (f32); rule 'ue8m0' rounds s up
    to a power of two from its bits; q = e4m3_rne(clamp(w / S, -448, 448)). Returns E4M3 codes,
    F32 scales and the exact f32 dequantization f32(q) * S."""
    n, k = w.shape
    tn, tk = -(-n // 128), -(-k // 128)
    scales = np.zeros((tn, tk), np.float32)
    q = np.zeros((n, k), ml_dtypes.float8_e4m3fn)
    deq = np.zeros((n, k), np.float32)
    for i in range(tn):
        for j in range(tk):
            tile = w[i * 128:(i + 1) * 128, j * 128:(j + 1) * 128].astype(np.float32)
            amax = np.float32(np.abs(tile).max())
            s = np.float32(max(amax, np.float32(1e-4)) / np.float32(448.0))
            if rule == "ue8m0":
                bits = int(np.array(s, np.float32).view(np.uint32))
                e = ((bits >> 23) & 0xFF) + (1 if bits & 0x7FFFFF else 0)
                e = min(max(e, 1), 254)
                s = np.array(e << 23, np.uint32).view(np.float32)[()]
            scales[i, j] = s
            qt = np.clip(tile / np.float32(s), -448.0, 448.0).astype(np.float32).astype(ml_dtypes.float8_e4m3fn)
            q[i * 128:(i + 1) * 128, j * 128:(j + 1) * 128] = qt
            deq[i * 128:(i + 1) * 128, j * 128:(j + 1) * 128] = qt.astype(np.float32) * np.float32(s)
    return q, scales, deq


def transformers_logits(cfg_dict, weights, tokens):
    from transformers import DeepseekV3Config, DeepseekV3ForCausalLM
    cfg = DeepseekV3Config(**{k: v for k, v in cfg_dict.items() if k not in ("architectures", "torch_dtype")})
    cfg._attn_implementation = "eager"
    torch.manual_seed(0)
    model = DeepseekV3ForCausalLM(cfg).to(torch.float32).eval()
    sd = {}
    c = cfg_dict
    for l in range(c["num_hidden_layers"]):
        p = f"model.layers.{l}.mlp"
        if l >= c["first_k_dense_replace"]:
            e = c["n_routed_experts"]
            sd[f"{p}.experts.gate_up_proj"] = np.stack([
                np.concatenate([weights[f"{p}.experts.{x}.gate_proj.weight"], weights[f"{p}.experts.{x}.up_proj.weight"]])
                for x in range(e)])
            sd[f"{p}.experts.down_proj"] = np.stack([weights[f"{p}.experts.{x}.down_proj.weight"] for x in range(e)])
    mtp = c["num_hidden_layers"]
    for k, a in weights.items():
        if ".experts." in k or k.startswith(f"model.layers.{mtp}."):
            continue
        sd[k] = a
    state = {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in sd.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [m for m in missing if "rotary_emb" not in m]
    if missing or unexpected:
        sys.exit(f"state dict mismatch: missing {missing} unexpected {unexpected}")
    with torch.no_grad():
        out = model(torch.tensor([tokens], dtype=torch.long), use_cache=False)
    return out.logits[0].to(torch.float32).numpy()


def mean_nll(logits, tokens):
    lg = logits[:-1].astype(np.float64)
    lse = np.log(np.exp(lg - lg.max(-1, keepdims=True)).sum(-1)) + lg.max(-1)
    return float(np.mean(lse - lg[np.arange(len(tokens) - 1), tokens[1:]]))


def write_model(name, cfg, tensors, ref_weights, tokens, quant_config=None):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    cj = dict(cfg)
    if quant_config:
        cj["quantization_config"] = quant_config
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cj, f, indent=1, sort_keys=True)
    save_file(tensors, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    logits = transformers_logits(cfg, ref_weights, tokens)
    srt = np.sort(logits, -1)
    margin = float((srt[:, -1] - srt[:, -2]).min())
    nll = mean_nll(logits, tokens)
    save_file({"tokens": np.array(tokens, np.int32), "logits": logits.astype(np.float32),
               "mean_nll": np.array([nll], np.float64)}, os.path.join(d, "reference.safetensors"))
    size = os.path.getsize(os.path.join(d, "model.safetensors"))
    print(f"{name}: {size / 1e6:.2f} MB, mean NLL {nll:.6f}, smallest top-1 margin {margin:.4g}")


def smollm2_tokenizer_json(path):
    """SmolLM2's tokenizer.json: the given file, or `ue8 import-gguf` of the fetched GGUF."""
    if path:
        return path
    gguf = subprocess.run(["bash", os.path.join(REPO, "..", "shared", "data", "fetch-smollm2.sh")],
                          check=True, capture_output=True, text=True).stdout.strip()
    tmp = tempfile.mkdtemp()
    atexit.register(shutil.rmtree, tmp, True)
    ue8 = os.environ.get("UE8", os.path.join(REPO, "target", "release", "ue8"))
    subprocess.run([ue8, "import-gguf", gguf, os.path.join(tmp, "smollm2")], check=True)
    return os.path.join(tmp, "smollm2", "tokenizer.json")


def write_vocab_fixture(tokenizer_json):
    from tokenizers import Tokenizer
    name = "tiny_c_smollm2_vocab_bf16"
    data = open(DEMO_TEXT, "rb").read()
    n = data.index(b"\n", VOCAB_TEXT_BYTES) + 1
    text = data[:n].decode("utf-8")
    tokens = Tokenizer.from_file(tokenizer_json).encode(text, add_special_tokens=False).ids
    cfg = config_json(VOCAB_CONFIG)
    cfg.update(bos_token_id=1, eos_token_id=2)  # SmolLM2's <|im_start|>, <|im_end|>
    w = make_weights(VOCAB_CONFIG, seed=1002)
    bf16 = {k: (v.astype(ml_dtypes.bfloat16) if not k.endswith("e_score_correction_bias") else v)
            for k, v in w.items()}
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1, sort_keys=True)
    save_file(bf16, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    logits = transformers_logits(cfg, w, tokens)
    lg = logits.astype(np.float64)
    mx = lg.max(-1)
    lse = np.log(np.exp(lg - mx[:, None]).sum(-1)) + mx
    nll = lse[:-1] - lg[np.arange(len(tokens) - 1), tokens[1:]]
    top = np.argsort(-logits, -1, kind="stable")[:, :VOCAB_TOP_K].astype(np.int32)
    srt = np.sort(logits, -1)
    margin = float((srt[:, -1] - srt[:, -2]).min())
    sha = hashlib.sha256(open(tokenizer_json, "rb").read()).hexdigest()
    save_file({"tokens": np.array(tokens, np.int32), "text_bytes": np.array([n], np.int64),
               "nll": nll, "mean_nll": np.array([nll.mean()], np.float64), "logsumexp": lse,
               "top_ids": top, "top_logits": np.take_along_axis(logits, top, -1).astype(np.float32),
               "last_logits": logits[-1].astype(np.float32)},
              os.path.join(d, "reference.safetensors"),
              metadata={"tokenizer": "SmolLM2-135M-Instruct tokenizer.json from ue8 import-gguf",
                        "tokenizer_sha256": sha, "text": "data/demo/pride_and_prejudice_ch1-6.txt"})
    size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
    print(f"{name}: {len(tokens)} tokens of {n} bytes, {size / 1e6:.2f} MB in all, mean NLL "
          f"{nll.mean():.6f}, smallest top-1 margin {margin:.4g}, max |logit| {np.abs(logits).max():.3f}")


def main():
    import transformers
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", help="write only this fixture (tiny_a, tiny_b or tiny_c_smollm2_vocab)")
    ap.add_argument("--smollm2-tokenizer", help="SmolLM2's tokenizer.json (default: import the GGUF)")
    a = ap.parse_args()
    print(f"torch {torch.__version__}, transformers {transformers.__version__}")
    if a.only in (None, "tiny_c_smollm2_vocab"):
        write_vocab_fixture(smollm2_tokenizer_json(a.smollm2_tokenizer))
    for i, (name, c) in enumerate(CONFIGS.items()):
        if a.only not in (None, name):
            continue
        cfg = config_json(c)
        w = make_weights(c, seed=1000 + i)
        rng = np.random.default_rng(7 + i)
        tokens = [int(t) for t in rng.integers(2, c["vocab_size"], SEQ_LEN)]
        bf16 = {k: (v.astype(ml_dtypes.bfloat16) if v.dtype == np.float32 and not k.endswith("e_score_correction_bias") else v)
                for k, v in w.items()}
        write_model(f"{name}_bf16", cfg, bf16, w, tokens)
        rule = "ue8m0" if name == "tiny_a" else "f32"
        q_tensors, deq = {}, {}
        for k, v in w.items():
            if is_quantized(k, v):
                q, s, dq = quantize_fp8(v, rule)
                q_tensors[k] = q
                q_tensors[k + "_scale_inv"] = s
                deq[k] = dq
            else:
                q_tensors[k] = bf16[k]
                deq[k] = v
        qc = {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
              "weight_block_size": [128, 128]}
        if rule == "ue8m0":
            qc["scale_fmt"] = "ue8m0"
        write_model(f"{name}_fp8_{rule}", cfg, q_tensors, deq, tokens, qc)


if __name__ == "__main__":
    main()
