#!/usr/bin/env python3
"""Loads ue8's DeepSeek-V4 outputs with transformers' own `models/deepseek_v4` on CPU and compares the
weights the model ends up with against ue8's tensors (issue 11). Not run in CI: needs torch and
transformers >= 5.24 (tools/ref_v4/requirements-transformers.txt).

    python3 tools/ref_v4/transformers_check.py --ue8 target/release/ue8 [--model DIR]

Steps: `ue8 dequantize --dtype bf16` of DIR (default: the tiny `flash` fixture, whose config.json is a
tiny random V4 config) and `ue8 requantize` then `ue8 dequantize` of the FP8 re-encode; both BF16 outputs
are loaded with AutoModelForCausalLM.from_pretrained(torch_dtype=bfloat16, device_map="cpu"). For every
parameter of the loaded model, the ue8 tensor of the same name (after stripping transformers' prefixes and
trying its known V4 renames) must be bit-identical; parameters it cannot map, and ue8 tensors it did not
load, are listed. Exit 0: all mapped parameters equal; 1: a mismatch; 2: transformers/torch missing or
without deepseek_v4.
"""
import argparse
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURE = os.path.join(HERE, "..", "..", "crates", "ue8-convert", "tests", "fixtures", "v4", "flash")

# transformers-style name fragments -> DeepSeek's own names (tried in turn when the direct name is absent)
RENAMES = [
    ("model.", ""), ("embed_tokens", "embed"), ("lm_head", "head"), ("self_attn.", "attn."), ("mlp.", "ffn."),
    ("input_layernorm", "attn_norm"), ("post_attention_layernorm", "ffn_norm"),
    ("gate_proj", "w1"), ("down_proj", "w2"), ("up_proj", "w3"),
]


def candidates(name):
    out = [name]
    cur = name
    for a, b in RENAMES:
        if a in cur:
            cur = cur.replace(a, b)
            out.append(cur)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ue8", default="target/release/ue8")
    ap.add_argument("--model", default=FIXTURE)
    args = ap.parse_args()
    try:
        import torch
        import transformers
        from safetensors.torch import load_file
        from transformers import AutoModelForCausalLM
    except ImportError as e:
        print(f"needs torch + transformers>=5.24: {e}", file=sys.stderr)
        return 2
    try:
        import transformers.models.deepseek_v4  # noqa: F401
    except ImportError:
        print(f"transformers {transformers.__version__} has no models/deepseek_v4 (needs >= 5.24)", file=sys.stderr)
        return 2
    tmp = tempfile.mkdtemp(prefix="ue8-v4-tf-")
    bf16 = os.path.join(tmp, "bf16")
    fp8 = os.path.join(tmp, "fp8")
    fp8_bf16 = os.path.join(tmp, "fp8-bf16")
    run = lambda *a: subprocess.run([args.ue8, *a, "-q"], check=True)
    run("dequantize", args.model, bf16, "--dtype", "bf16")
    run("requantize", args.model, fp8, "--to", "fp8-ue8m0")
    run("dequantize", fp8, fp8_bf16, "--dtype", "bf16")
    status = 0
    for label, d in (("dequantized original", bf16), ("dequantized FP8 re-encode", fp8_bf16)):
        ours = {}
        for f in sorted(os.listdir(d)):
            if f.endswith(".safetensors"):
                ours.update(load_file(os.path.join(d, f)))
        model, info = AutoModelForCausalLM.from_pretrained(
            d, torch_dtype=torch.bfloat16, device_map="cpu", output_loading_info=True)
        matched, unmapped, bad = 0, [], []
        used = set()
        for pname, p in model.state_dict().items():
            hit = next((c for c in candidates(pname) if c in ours), None)
            if hit is None:
                unmapped.append(pname)
                continue
            used.add(hit)
            a, b = p.detach().to(torch.float32), ours[hit].to(torch.float32)
            if a.shape != b.shape or not torch.equal(a, b):
                bad.append(f"{pname} <- {hit}: shape {tuple(a.shape)} vs {tuple(b.shape)}")
            else:
                matched += 1
        print(f"{label}: {matched} parameters bit-identical to ue8's tensors, {len(bad)} differ, "
              f"{len(unmapped)} unmapped, {len(set(ours) - used)} ue8 tensors not loaded; "
              f"transformers missing_keys {len(info.get('missing_keys', []))}, "
              f"unexpected_keys {len(info.get('unexpected_keys', []))}")
        for x in bad[:20]:
            print("  DIFFERS", x)
        for x in unmapped[:20]:
            print("  unmapped", x)
        status |= 1 if bad else 0
    return status


if __name__ == "__main__":
    sys.exit(main())
