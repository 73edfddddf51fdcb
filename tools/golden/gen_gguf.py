#!/usr/bin/env python3
"""Writes the GGUF test fixtures of ue8-io to crates/ue8-io/tests/fixtures/gguf/.

Oracle: the PyPI `gguf` package (pinned in gguf-requirements.txt). Nothing here shares code with ue8.

  dequant_<TYPE>.bin / .f32   raw GGML blocks (random bytes with edge-value scales) and what
                              gguf.quants.dequantize makes of them (little-endian f32)
  tiny-llama.gguf             a 2-layer llama with a tensor of every supported type, a byte-level BPE
                              vocabulary, add_bos_token = true and a chat template
  tiny-llama-tied.gguf        the same without output.weight (tied embeddings), add_bos_token = false
  tiny-llama.expected.safetensors
                              what import-gguf --dtype f32 must write: HF names, f32 values; Q/K rows
                              put back in HF order by inverting llama.cpp's own `permute` formula
  unsupported-q5_0.gguf       one Q5_0 tensor (import must refuse it clearly)
  vocab-<pre>.gguf            vocabulary-only GGUFs cut from SmolLM2's (first tokens and the merges
                              among them) with tokenizer.ggml.pre = smollm / gpt-2 / llama-bpe / qwen2
  vocab-<pre>.ids.json        with --llama-tokenize PATH: ids llama-tokenize gives for tokenizer-sample.txt

Usage: python3 tools/golden/gen_gguf.py [--smollm2 PATH.gguf] [--llama-tokenize PATH]
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize, quantize
from safetensors.numpy import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "crates", "ue8-io", "tests", "fixtures", "gguf")

F16_EDGES = [0x0000, 0x8000, 0x0001, 0x03FF, 0x0400, 0x3C00, 0xBC00, 0x7BFF, 0xFBFF, 0x7C00, 0xFC00,
             0x7E00, 0x7C01, 0x3555, 0x1000]


def edge_blocks(qtype, n_blocks, rng):
    """Random blocks whose f16 / e8m0 scale fields run through edge values first."""
    block_size, type_size = gguf.GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, size=(n_blocks, type_size), dtype=np.uint8)
    if qtype in (T.F32, T.F16, T.BF16):
        return raw
    # (offset, kind) of scale fields in the block layout
    fields = {T.Q8_0: [0], T.Q4_0: [0], T.Q4_1: [0, 2], T.Q4_K: [0, 2], T.Q6_K: [208]}
    if qtype == T.MXFP4:
        raw[: 8, 0] = [0, 1, 2, 126, 127, 128, 254, 255]
        return raw
    for i, code in enumerate(F16_EDGES[: n_blocks]):
        for off in fields[qtype]:
            raw[i, off: off + 2] = np.array([code], dtype="<u2").view(np.uint8)
    # later blocks: moderate scales so the values are ordinary numbers too
    for i in range(len(F16_EDGES), n_blocks):
        for off in fields[qtype]:
            d = np.float16(rng.uniform(-0.1, 0.1))
            raw[i, off: off + 2] = np.array([d]).view(np.uint8)
    return raw


def write_dequant_fixtures(rng):
    plain = {T.F32: 4, T.F16: 2, T.BF16: 2}
    for qtype, n in [(T.F32, 97), (T.F16, 97), (T.BF16, 97), (T.Q8_0, 24), (T.Q4_0, 24), (T.Q4_1, 24),
                     (T.Q4_K, 20), (T.Q6_K, 20), (T.MXFP4, 24)]:
        raw = edge_blocks(qtype, n, rng)
        if qtype in plain:
            # special bit patterns for the plain types
            if qtype == T.F16:
                codes = np.array(F16_EDGES, dtype="<u2").view(np.uint8).reshape(-1, 2)
                raw[: len(codes)] = codes
            elif qtype == T.BF16:
                codes = np.array([0, 0x8000, 1, 0x7F80, 0xFF80, 0x7FC0, 0x7F81, 0x3F80, 0x0080],
                                 dtype="<u2").view(np.uint8).reshape(-1, 2)
                raw[: len(codes)] = codes
            else:
                codes = np.array([0, 0x80000000, 1, 0x7F800000, 0xFF800000, 0x7FC00000, 0x7F800001,
                                  0x3F800000, 0x00800000, 0x7F7FFFFF], dtype="<u4").view(np.uint8).reshape(-1, 4)
                raw[: len(codes)] = codes
            flat = raw.reshape(-1)
            data = flat.view({T.F32: np.float32, T.F16: np.float16, T.BF16: np.uint8}[qtype])
            out = dequantize(data if qtype != T.BF16 else flat, qtype)
        else:
            out = dequantize(raw, qtype)
        out = np.asarray(out, dtype=np.float32).reshape(-1)
        name = qtype.name
        raw.tofile(os.path.join(OUT, f"dequant_{name}.bin"))
        out.astype("<f4").tofile(os.path.join(OUT, f"dequant_{name}.f32"))
        print(f"dequant_{name}: {raw.size} bytes -> {out.size} values")


def bytes_to_unicode():
    """GPT-2's byte -> printable character map (the public algorithm, written out here)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def llama_cpp_permute(w, n_head):
    """llama.cpp convert_hf_to_gguf.py's LlamaModel.permute, HF order -> GGUF order."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def hf_rows_from_gguf(w, n_head):
    """Inverse of llama_cpp_permute by index bookkeeping (not by a reshape formula)."""
    idx = llama_cpp_permute(np.arange(w.shape[0]), n_head)  # gguf row i = hf row idx[i]
    out = np.empty_like(w)
    out[idx] = w
    return out


TINY = dict(hidden=64, ffn=256, layers=2, heads=4, kv_heads=2, ctx=512, eps=1e-5, theta=50000.0)
CHAT_TEMPLATE = "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"


def tiny_vocab():
    b2u = bytes_to_unicode()
    tokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"] + [b2u[b] for b in range(256)]
    merges = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("i", "n"), ("Ġ", "a"), ("a", "n"), ("e", "r"),
              ("o", "n"), ("Ġ", "s"), ("r", "e"), ("Ġa", "n"), ("Ġan", "d"), ("e", "d")]
    for a, b in merges:
        tokens.append(a + b)
    types = [3, 3, 3] + [1] * (len(tokens) - 3)
    return tokens, [f"{a} {b}" for a, b in merges], types


def write_tiny(path, rng, tied, add_bos):
    p = TINY
    tokens, merges, types = tiny_vocab()
    vocab = len(tokens)
    w = gguf.GGUFWriter(path, "llama")
    w.add_block_count(p["layers"])
    w.add_context_length(p["ctx"])
    w.add_embedding_length(p["hidden"])
    w.add_feed_forward_length(p["ffn"])
    w.add_head_count(p["heads"])
    w.add_head_count_kv(p["kv_heads"])
    w.add_rope_freq_base(p["theta"])
    w.add_layer_norm_rms_eps(p["eps"])
    w.add_vocab_size(vocab)
    w.add_rope_dimension_count(p["hidden"] // p["heads"])
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_pad_token_id(0)
    w.add_add_bos_token(add_bos)
    w.add_chat_template(CHAT_TEMPLATE)

    expected = {}
    hd = p["hidden"]
    kv_rows = hd // p["heads"] * p["kv_heads"]

    def add(gguf_name, hf_name, hf_value, qtype, perm_heads=None):
        """hf_value: the HF-layout f32 weight; returns nothing, records what import must produce."""
        g = llama_cpp_permute(hf_value, perm_heads) if perm_heads else hf_value
        g = np.ascontiguousarray(g.astype(np.float32))
        if qtype == T.F32:
            data, raw_dtype = g, None
        elif qtype == T.F16:
            data, raw_dtype = g.astype(np.float16), None
        elif qtype in (T.Q4_K, T.Q6_K):
            # gguf-py cannot quantize K-quants: random (always valid) blocks with sane f16 scales.
            bs, ts = gguf.GGML_QUANT_SIZES[qtype]
            blocks = edge_blocks(qtype, g.size // bs, rng)
            for i in range(blocks.shape[0]):
                for off in {T.Q4_K: [0, 2], T.Q6_K: [208]}[qtype]:
                    blocks[i, off:off + 2] = np.array([np.float16(rng.uniform(-0.01, 0.01))]).view(np.uint8)
            data, raw_dtype = blocks.reshape(g.shape[0], -1), qtype
        else:
            data, raw_dtype = quantize(g, qtype), qtype
        w.add_tensor(gguf_name, data, raw_dtype=raw_dtype)
        if raw_dtype is None:
            back = data.astype(np.float32)
        else:
            back = dequantize(data, qtype).reshape(g.shape)
        hf_back = hf_rows_from_gguf(back, perm_heads) if perm_heads else back
        if qtype == T.F32:
            assert np.array_equal(hf_back.view(np.uint32), hf_value.astype(np.float32).view(np.uint32))
        expected[hf_name] = np.ascontiguousarray(hf_back.astype(np.float32))

    r = lambda *shape: rng.standard_normal(shape).astype(np.float32) * 0.05
    add("token_embd.weight", "model.embed_tokens.weight", r(vocab, hd), T.Q8_0)
    kinds = [
        dict(q=T.Q4_1, k=T.F16, v=T.Q8_0, o=T.MXFP4, gate=T.BF16, up=T.Q4_0, down=T.Q4_K),
        dict(q=T.F32, k=T.Q8_0, v=T.F16, o=T.Q4_1, gate=T.MXFP4, up=T.Q8_0, down=T.Q6_K),
    ]
    for i, k in enumerate(kinds):
        pre, hf = f"blk.{i}.", f"model.layers.{i}."
        add(pre + "attn_norm.weight", hf + "input_layernorm.weight", 1 + r(hd), T.F32)
        add(pre + "attn_q.weight", hf + "self_attn.q_proj.weight", r(hd, hd), k["q"], p["heads"])
        add(pre + "attn_k.weight", hf + "self_attn.k_proj.weight", r(kv_rows, hd), k["k"], p["kv_heads"])
        add(pre + "attn_v.weight", hf + "self_attn.v_proj.weight", r(kv_rows, hd), k["v"])
        add(pre + "attn_output.weight", hf + "self_attn.o_proj.weight", r(hd, hd), k["o"])
        add(pre + "ffn_norm.weight", hf + "post_attention_layernorm.weight", 1 + r(hd), T.F32)
        add(pre + "ffn_gate.weight", hf + "mlp.gate_proj.weight", r(p["ffn"], hd), k["gate"])
        add(pre + "ffn_up.weight", hf + "mlp.up_proj.weight", r(p["ffn"], hd), k["up"])
        add(pre + "ffn_down.weight", hf + "mlp.down_proj.weight", r(hd, p["ffn"]), k["down"])
    add("output_norm.weight", "model.norm.weight", 1 + r(hd), T.F32)
    if not tied:
        add("output.weight", "lm_head.weight", r(vocab, hd), T.Q4_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return expected


def write_unsupported(path, rng):
    w = gguf.GGUFWriter(path, "llama")
    w.add_tensor("token_embd.weight", quantize(rng.standard_normal((4, 32)).astype(np.float32), T.Q5_0), raw_dtype=T.Q5_0)
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()


def write_vocab_fixtures(smollm2, llama_tokenize, keep=3000):
    r = gguf.GGUFReader(smollm2)
    tokens = r.fields["tokenizer.ggml.tokens"].contents()[:keep]
    types = r.fields["tokenizer.ggml.token_type"].contents()[:keep]
    kept = set(tokens)
    merges = [m for m in r.fields["tokenizer.ggml.merges"].contents()
              if (lambda a, b: a in kept and b in kept and a + b in kept)(*m.split(" ", 1))]
    sample = os.path.join(OUT, "tokenizer-sample.txt")
    for pre in ["smollm", "gpt-2", "llama-bpe", "qwen2"]:
        path = os.path.join(OUT, f"vocab-{pre}.gguf")
        w = gguf.GGUFWriter(path, "llama")
        p = TINY
        w.add_block_count(1); w.add_context_length(p["ctx"]); w.add_embedding_length(p["hidden"])
        w.add_feed_forward_length(p["ffn"]); w.add_head_count(p["heads"]); w.add_layer_norm_rms_eps(p["eps"])
        w.add_tokenizer_model("gpt2"); w.add_tokenizer_pre(pre)
        w.add_token_list(tokens); w.add_token_types(types); w.add_token_merges(merges)
        w.add_bos_token_id(1); w.add_eos_token_id(2)
        w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
        print(f"vocab-{pre}.gguf: {len(tokens)} tokens, {len(merges)} merges")
        if llama_tokenize:
            ids = subprocess.run([llama_tokenize, "-m", path, "-f", sample, "--ids", "--log-disable"],
                                 check=True, capture_output=True, text=True).stdout.strip()
            ids = json.loads(ids.splitlines()[-1])
            with open(os.path.join(OUT, f"vocab-{pre}.ids.json"), "w") as f:
                json.dump(ids, f)
                f.write("\n")
            print(f"  llama-tokenize: {len(ids)} ids")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--smollm2", default=os.path.expanduser("~/.cache/ue8-data/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--llama-tokenize", default=None)
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(20261125)
    write_dequant_fixtures(rng)
    exp = write_tiny(os.path.join(OUT, "tiny-llama.gguf"), rng, tied=False, add_bos=True)
    save_file(exp, os.path.join(OUT, "tiny-llama.expected.safetensors"))
    write_tiny(os.path.join(OUT, "tiny-llama-tied.gguf"), rng, tied=True, add_bos=False)
    write_unsupported(os.path.join(OUT, "unsupported-q5_0.gguf"), rng)
    if os.path.exists(args.smollm2):
        write_vocab_fixtures(args.smollm2, args.llama_tokenize)
    else:
        print(f"skipping vocab fixtures: {args.smollm2} not found", file=sys.stderr)


if __name__ == "__main__":
    main()
