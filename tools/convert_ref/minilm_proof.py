#!/usr/bin/env python3
"""MiniLM proof (issue 4): quantize the real F32 weights of all-MiniLM-L6-v2 to every format with the
`ue8` binary, collect SNR and cosine per tensor type from each run's manifest, read every output back
with the Python `safetensors` package (its `deserialize`, which returns raw bytes for FP8/FP6/FP4
dtypes the numpy loader cannot type), decode the weights independently with this repo's numpy
reference (convert_ref.py) and check them against ue8's own dequantize output.

    python3 tools/convert_ref/minilm_proof.py --ue8 target/release/ue8 [--model ~/.cache/ue8-data/minilm]
Prints a Markdown table (for docs/converter.md) on stdout; exits 1 on any mismatch.
"""
import argparse
import collections
import json
import os
import re
import subprocess
import sys
import tempfile

import ml_dtypes
import numpy as np
import safetensors

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import convert_ref as ref  # noqa: E402

FORMATS = ["fp8-ue8m0", "fp8", "mxfp8", "mxfp8-e5m2", "mxfp6-e3m2", "mxfp6-e2m3", "mxfp4"]


def tensor_type(name):
    """encoder.layer.3.attention.self.query.weight -> attention.self.query"""
    m = re.match(r"encoder\.layer\.\d+\.(.*)\.weight$", name)
    return m.group(1) if m else name.rsplit(".weight", 1)[0]


def read_back(path):
    with open(path, "rb") as f:
        items = safetensors.deserialize(f.read())
    return {name: info for name, info in items}


def decode(t, name, fmt):
    """Independent decode of one quantized weight from the raw tensors read by `safetensors`."""
    def raw(n):
        return np.frombuffer(bytes(t[n]["data"]), np.uint8)
    if fmt in ("fp8-ue8m0", "fp8"):
        w = t[name]
        n, k = w["shape"]
        s = t[name + "_scale_inv"]
        sc = np.frombuffer(bytes(s["data"]), np.float32).reshape(s["shape"])
        return ref.blockfp8_dequant(raw(name).reshape(n, k), sc)
    elem = {"mxfp8": "e4m3", "mxfp8-e5m2": "e5m2", "mxfp6-e3m2": "e3m2", "mxfp6-e2m3": "e2m3", "mxfp4": "e2m1"}[fmt]
    if elem == "e2m1":
        b = t[name + "_blocks"]
        n, kb, _ = b["shape"]
        packed = raw(name + "_blocks").reshape(n, kb * 16)
        codes = np.empty((n, kb * 32), np.uint8)
        codes[:, 0::2] = packed & 0x0F
        codes[:, 1::2] = packed >> 4
        sc = raw(name + "_scales").reshape(n, kb)
    elif elem in ("e3m2", "e2m3"):
        w = t[name]
        n, kp = w["shape"]
        p = raw(name).reshape(n, kp // 4, 3).astype(np.uint32)
        word = p[..., 0] | (p[..., 1] << 8) | (p[..., 2] << 16)
        codes = np.stack([(word >> (6 * i)) & 0x3F for i in range(4)], axis=-1).reshape(n, kp).astype(np.uint8)
        sc = raw(name + "_scale").reshape(n, -1)
    else:
        w = t[name]
        n, k = w["shape"]
        codes = raw(name).reshape(n, k)
        sc = raw(name + "_scale").reshape(n, -1)
    return ref.mx_dequant(codes, sc, elem)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ue8", default="target/release/ue8")
    ap.add_argument("--model", default=os.path.expanduser("~/.cache/ue8-data/minilm"))
    a = ap.parse_args()
    src = {n: i for n, i in read_back(os.path.join(a.model, "model.safetensors")).items()}
    failures = 0
    rows = collections.OrderedDict()
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in FORMATS:
            out = os.path.join(tmp, fmt)
            m = json.loads(subprocess.run([a.ue8, "quantize", a.model, out, "--to", fmt, "--json"], check=True,
                                          capture_output=True).stdout)
            deq = os.path.join(tmp, fmt + "-deq")
            subprocess.run([a.ue8, "dequantize", out, deq, "--dtype", "f32", "--quiet"], check=True)
            subprocess.run([a.ue8, "verify", out], check=True, capture_output=True)
            t = read_back(os.path.join(out, "model.safetensors"))
            d = read_back(os.path.join(deq, "model.safetensors"))
            per_type = collections.defaultdict(list)
            for rec in m["tensors"]:
                if rec["action"] != "quantized":
                    continue
                name = rec["name"]
                mine = decode(t, name, fmt)[:, : rec["shape"][1]]
                theirs = np.frombuffer(bytes(d[name]["data"]), np.float32).reshape(rec["shape"])
                if not np.array_equal(mine.view(np.uint32), theirs.view(np.uint32)):
                    print(f"MISMATCH {fmt} {name}", file=sys.stderr)
                    failures += 1
                x = np.frombuffer(bytes(src[name]["data"]), np.float32).reshape(rec["shape"]).astype(np.float64)
                e = x - theirs.astype(np.float64)
                snr = 10 * np.log10(np.sum(x * x) / np.sum(e * e))
                cos = np.sum(x * theirs) / np.sqrt(np.sum(x * x) * np.sum(theirs.astype(np.float64) ** 2))
                if abs(snr - rec["metrics"]["snr_db"]) > 1e-6 * max(1.0, abs(snr)):
                    print(f"SNR differs {fmt} {name}: numpy {snr} ue8 {rec['metrics']['snr_db']}", file=sys.stderr)
                    failures += 1
                per_type[tensor_type(name)].append((snr, cos))
            for ty, v in per_type.items():
                rows.setdefault(ty, {})[fmt] = (np.mean([s for s, _ in v]), np.min([c for _, c in v]))
    print("| tensor type | " + " | ".join(FORMATS) + " |")
    print("|---|" + "---|" * len(FORMATS))
    for ty, r in rows.items():
        cells = [f"{r[f][0]:.1f} dB / {r[f][1]:.5f}" if f in r else "-" for f in FORMATS]
        print(f"| {ty} | " + " | ".join(cells) + " |")
    print(f"\nmismatches: {failures}", file=sys.stderr)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
