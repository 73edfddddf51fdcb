#!/usr/bin/env python3
"""Generate a random DeepSeek-V3-shaped BF16 checkpoint for speed measurements (not for accuracy):
config.json + model.safetensors in DeepSeek's per-expert naming. numpy + ml_dtypes only.

With --tokenizer DIR (a directory holding tokenizer.json, e.g. `ue8 import-gguf` of SmolLM2), its
tokenizer.json and tokenizer_config.json are copied in, bos/eos ids are taken from DIR/config.json
and the vocabulary defaults to the tokenizer's size: llama.cpp's convert_hf_to_gguf.py needs a
tokenizer whose pre-tokenizer it recognises (SmolLM2's is "smollm"), and `ue8 run` needs one too.

Usage: make_bench_model.py OUT_DIR [--hidden 1024] [--layers 8] [--experts 64] [--top-k 6]
       [--moe-inter 256] [--vocab 32000 | size of --tokenizer's vocabulary] [--tokenizer DIR]
"""
import argparse
import json
import os
import shutil

import ml_dtypes
import numpy as np
from safetensors.numpy import save_file


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--experts", type=int, default=64)
    ap.add_argument("--top-k", type=int, default=6)
    ap.add_argument("--moe-inter", type=int, default=256)
    ap.add_argument("--vocab", type=int, default=None)
    ap.add_argument("--tokenizer", default=None, help="directory with tokenizer.json to copy in")
    a = ap.parse_args()
    bos, eos = 0, 1
    if a.tokenizer:
        with open(os.path.join(a.tokenizer, "tokenizer.json"), encoding="utf-8") as fh:
            tj = json.load(fh)
        n_tok = 1 + max(list(tj["model"]["vocab"].values()) + [t["id"] for t in tj.get("added_tokens", [])])
        if a.vocab is None:
            a.vocab = n_tok
        elif a.vocab < n_tok:
            ap.error(f"--vocab {a.vocab} is smaller than the tokenizer's {n_tok} tokens")
        src_cfg = os.path.join(a.tokenizer, "config.json")
        if os.path.exists(src_cfg):
            with open(src_cfg) as fh:
                sc = json.load(fh)
            bos, eos = sc.get("bos_token_id", bos), sc.get("eos_token_id", eos)
    if a.vocab is None:
        a.vocab = 32000
    d, h = a.hidden, a.hidden // 64
    c = dict(architectures=["DeepseekV3ForCausalLM"], model_type="deepseek_v3", hidden_act="silu",
             hidden_size=d, intermediate_size=4 * d, moe_intermediate_size=a.moe_inter,
             num_hidden_layers=a.layers, num_attention_heads=h, num_key_value_heads=h,
             vocab_size=a.vocab, q_lora_rank=d // 2, kv_lora_rank=256, qk_nope_head_dim=64,
             qk_rope_head_dim=32, v_head_dim=64, first_k_dense_replace=1,
             n_routed_experts=a.experts, n_group=8, topk_group=4, num_experts_per_tok=a.top_k,
             n_shared_experts=1, norm_topk_prob=True, routed_scaling_factor=2.5,
             rope_interleave=True, rms_norm_eps=1e-6, max_position_embeddings=4096,
             rope_theta=10000.0, tie_word_embeddings=False, bos_token_id=bos, eos_token_id=eos,
             scoring_func="sigmoid", topk_method="noaux_tc")
    rng = np.random.default_rng(0)
    t = {}

    def lin(name, n, k):
        t[name + ".weight"] = (rng.standard_normal((n, k), np.float32) / np.sqrt(k)).astype(ml_dtypes.bfloat16)

    def norm(name, n):
        t[name + ".weight"] = np.ones(n, ml_dtypes.bfloat16)

    lin("model.embed_tokens", a.vocab, d)
    lin("lm_head", a.vocab, d)
    norm("model.norm", d)
    qhd = c["qk_nope_head_dim"] + c["qk_rope_head_dim"]
    for l in range(a.layers):
        p = f"model.layers.{l}"
        norm(f"{p}.input_layernorm", d)
        norm(f"{p}.post_attention_layernorm", d)
        lin(f"{p}.self_attn.q_a_proj", c["q_lora_rank"], d)
        norm(f"{p}.self_attn.q_a_layernorm", c["q_lora_rank"])
        lin(f"{p}.self_attn.q_b_proj", h * qhd, c["q_lora_rank"])
        lin(f"{p}.self_attn.kv_a_proj_with_mqa", c["kv_lora_rank"] + c["qk_rope_head_dim"], d)
        norm(f"{p}.self_attn.kv_a_layernorm", c["kv_lora_rank"])
        lin(f"{p}.self_attn.kv_b_proj", h * (c["qk_nope_head_dim"] + c["v_head_dim"]), c["kv_lora_rank"])
        lin(f"{p}.self_attn.o_proj", d, h * c["v_head_dim"])
        if l < c["first_k_dense_replace"]:
            for m, (n, k) in {"gate_proj": (4 * d, d), "up_proj": (4 * d, d), "down_proj": (d, 4 * d)}.items():
                lin(f"{p}.mlp.{m}", n, k)
        else:
            lin(f"{p}.mlp.gate", a.experts, d)
            t[f"{p}.mlp.gate.e_score_correction_bias"] = np.zeros(a.experts, np.float32)
            f = a.moe_inter
            for e in list(range(a.experts)) + ["shared"]:
                q = f"{p}.mlp.experts.{e}" if e != "shared" else f"{p}.mlp.shared_experts"
                lin(f"{q}.gate_proj", f, d)
                lin(f"{q}.up_proj", f, d)
                lin(f"{q}.down_proj", d, f)
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "config.json"), "w") as fh:
        json.dump(c, fh, indent=1)
    save_file(t, os.path.join(a.out, "model.safetensors"), metadata={"format": "pt"})
    if a.tokenizer:
        shutil.copyfile(os.path.join(a.tokenizer, "tokenizer.json"), os.path.join(a.out, "tokenizer.json"))
        tc = os.path.join(a.tokenizer, "tokenizer_config.json")
        if os.path.exists(tc):
            shutil.copyfile(tc, os.path.join(a.out, "tokenizer_config.json"))
        else:
            with open(os.path.join(a.out, "tokenizer_config.json"), "w") as fh:
                json.dump({"tokenizer_class": "PreTrainedTokenizerFast"}, fh)
    print(f"{a.out}: {sum(v.nbytes for v in t.values()) / 1e9:.2f} GB BF16")


if __name__ == "__main__":
    main()
