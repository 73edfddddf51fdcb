#!/usr/bin/env python3
"""Generate a random-weight LlamaForCausalLM BF16 checkpoint for decode-bandwidth measurements (issue 5:
">= 1 GB of FP8 weights"), not for accuracy: config.json + model-0000N-of-0000M.safetensors shards
(+ index), written one layer at a time so memory stays at one layer. numpy + ml_dtypes only.

Defaults: hidden 2048, intermediate 5632, 23 layers, 16 heads / 4 KV heads, vocab 8192, untied head:
1.04e9 weights in the layers (1.04 GB as fp8-ue8m0 plus scales) + 2 x 16.8e6 in embedding and head.

Usage: make_llama_bench_model.py OUT_DIR [--hidden 2048] [--inter 5632] [--layers 23] [--heads 16]
       [--kv-heads 4] [--vocab 8192] [--seed 0]
"""
import argparse
import json
import os

import ml_dtypes
import numpy as np
from safetensors.numpy import save_file


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--hidden", type=int, default=2048)
    ap.add_argument("--inter", type=int, default=5632)
    ap.add_argument("--layers", type=int, default=23)
    ap.add_argument("--heads", type=int, default=16)
    ap.add_argument("--kv-heads", type=int, default=4)
    ap.add_argument("--vocab", type=int, default=8192)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    rng = np.random.default_rng(a.seed)
    h, hd = a.hidden, a.hidden // a.heads

    def mat(n, k):
        # N(0, 1/k): activations keep their scale through the layers, so nothing overflows.
        return (rng.standard_normal((n, k), dtype=np.float32) / np.sqrt(k)).astype(ml_dtypes.bfloat16)

    shards = []

    def write(tensors):
        name = f"part-{len(shards):05d}.safetensors"
        save_file(tensors, os.path.join(a.out, name))
        shards.append((name, list(tensors)))

    ones = np.ones(h, dtype=ml_dtypes.bfloat16)
    write({"model.embed_tokens.weight": mat(a.vocab, h), "model.norm.weight": ones,
           "lm_head.weight": mat(a.vocab, h)})
    for i in range(a.layers):
        p = f"model.layers.{i}."
        write({
            p + "input_layernorm.weight": ones, p + "post_attention_layernorm.weight": ones,
            p + "self_attn.q_proj.weight": mat(a.heads * hd, h),
            p + "self_attn.k_proj.weight": mat(a.kv_heads * hd, h),
            p + "self_attn.v_proj.weight": mat(a.kv_heads * hd, h),
            p + "self_attn.o_proj.weight": mat(h, a.heads * hd),
            p + "mlp.gate_proj.weight": mat(a.inter, h),
            p + "mlp.up_proj.weight": mat(a.inter, h),
            p + "mlp.down_proj.weight": mat(h, a.inter),
        })
    # Standard shard names and index, renamed once every shard exists.
    total, weight_map = len(shards), {}
    for j, (name, keys) in enumerate(shards):
        final = f"model-{j + 1:05d}-of-{total:05d}.safetensors"
        os.replace(os.path.join(a.out, name), os.path.join(a.out, final))
        weight_map.update({k: final for k in keys})
    size = sum(os.path.getsize(os.path.join(a.out, f)) for f in set(weight_map.values()))
    with open(os.path.join(a.out, "model.safetensors.index.json"), "w") as fh:
        json.dump({"metadata": {"total_size": size}, "weight_map": weight_map}, fh, indent=1)
    cfg = dict(architectures=["LlamaForCausalLM"], model_type="llama", hidden_size=h,
               intermediate_size=a.inter, num_hidden_layers=a.layers, num_attention_heads=a.heads,
               num_key_value_heads=a.kv_heads, head_dim=hd, vocab_size=a.vocab, rms_norm_eps=1e-5,
               rope_theta=10000.0, max_position_embeddings=4096, tie_word_embeddings=False,
               hidden_act="silu", bos_token_id=1, eos_token_id=2, torch_dtype="bfloat16")
    with open(os.path.join(a.out, "config.json"), "w") as fh:
        json.dump(cfg, fh, indent=1)


if __name__ == "__main__":
    main()
