#!/usr/bin/env python3
"""Peer for the import-gguf benchmark: the same job as `ue8 import-gguf --dtype bf16` done the usual
Python way (PyPI gguf reader + gguf.quants.dequantize, numpy Q/K un-permutation, bf16 by round to
nearest even on the f32 bits, safetensors.numpy.save_file). Weights only: no config or tokenizer.

Usage: python3 tools/golden/import_gguf_numpy.py MODEL.gguf OUT.safetensors
"""
import sys

import numpy as np
import gguf
from gguf.quants import dequantize
from safetensors.numpy import save_file

NAMES = {"attn_norm": "input_layernorm", "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj",
         "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj", "ffn_norm": "post_attention_layernorm",
         "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}


def hf_name(n):
    fixed = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight",
             "output.weight": "lm_head.weight"}
    if n in fixed:
        return fixed[n]
    _, layer, module, suffix = n.split(".")
    return f"model.layers.{layer}.{NAMES[module]}.{suffix}"


def unpermute(w, n_head):
    d = w.shape[0] // n_head
    return w.reshape(n_head, d // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def to_bf16_bits(x):
    b = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    return ((b + 0x7FFF + ((b >> 16) & 1)) >> 16).astype(np.uint16)


def main():
    r = gguf.GGUFReader(sys.argv[1])
    heads = int(r.fields["llama.attention.head_count"].contents())
    kv = int(r.fields["llama.attention.head_count_kv"].contents())
    out = {}
    for t in r.tensors:
        shape = [int(x) for x in reversed(t.shape)]
        w = dequantize(t.data, t.tensor_type).reshape(shape)
        if ".attn_q." in t.name:
            w = unpermute(w, heads)
        elif ".attn_k." in t.name:
            w = unpermute(w, kv)
        # numpy has no bfloat16: store the bits as uint16 (same bytes as a BF16 tensor)
        out[hf_name(t.name)] = to_bf16_bits(w)
    save_file(out, sys.argv[2])


if __name__ == "__main__":
    main()
