#!/usr/bin/env python3
"""Converter benchmark (issue 4, issue 8 item 3), driven by tools/bench/convert.sh.

1. Generates a BF16 checkpoint of --gib GiB (tensors of 8192 x 8192, written by hand as safetensors).
2. Warms the page cache, then alternates, --reps times: `cp -r --reflink=never INPUT` and
   `ue8 quantize INPUT --to fp8-ue8m0` (which hashes its output as it always does), timing each.
   ue8's peak RSS and peak RssAnon are sampled from /proc/PID/status every 5 ms.
3. Times a numpy + ml_dtypes implementation of the same conversion (vectorised 128x128 tiles, the
   formats.md bit rule, output written as safetensors) on the first --numpy-tensors tensors, and
   reports its throughput (bytes of input per second) against ue8's.
Prints one JSON document with every figure.
"""
import argparse
import json
import os
import shutil
import statistics
import struct
import subprocess
import sys
import time

import ml_dtypes
import numpy as np

ROWS = COLS = 8192


def write_st(path, tensors):
    header, off = {}, 0
    for name, dt, shape, nbytes in tensors:
        header[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + nbytes]}
        off += nbytes
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    f = open(path, "wb")
    f.write(struct.pack("<Q", len(h)))
    f.write(h)
    return f


def generate(dirname, gib):
    n = max(1, int(gib * (1 << 30) // (ROWS * COLS * 2)))
    os.makedirs(dirname, exist_ok=True)
    names = [f"model.layers.{i}.mlp.up_proj.weight" for i in range(n)]
    f = write_st(os.path.join(dirname, "model.safetensors"), [(nm, "BF16", (ROWS, COLS), ROWS * COLS * 2) for nm in names])
    rng = np.random.default_rng(1)
    for _ in names:
        for r in range(0, ROWS, 1024):
            f.write((rng.standard_normal((1024, COLS), dtype=np.float32) * 0.02).astype(ml_dtypes.bfloat16).tobytes())
    f.close()
    with open(os.path.join(dirname, "config.json"), "w") as c:
        json.dump({"model_type": "llama", "torch_dtype": "bfloat16"}, c)
    return names


def run_sampled(cmd):
    """Runs cmd, sampling VmRSS/RssAnon (kB) of the process; returns (seconds, peak_rss, peak_anon)."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    peak_rss = peak_anon = 0
    status = f"/proc/{p.pid}/status"
    while p.poll() is None:
        try:
            with open(status) as s:
                for line in s:
                    if line.startswith("VmRSS:"):
                        peak_rss = max(peak_rss, int(line.split()[1]))
                    elif line.startswith("RssAnon:"):
                        peak_anon = max(peak_anon, int(line.split()[1]))
        except OSError:
            pass
        time.sleep(0.005)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit(f"{cmd} failed")
    return dt, peak_rss * 1024, peak_anon * 1024


def numpy_quantize(src_path, names, count, out_path):
    """Same conversion in numpy + ml_dtypes: per 128x128 tile amax, s = max(amax, 1e-4)/448 in f32,
    exponent rounded up from the bits, q = e4m3(clip(w / S))."""
    data_start = 8 + struct.unpack("<Q", open(src_path, "rb").read(8))[0]
    mm = np.memmap(src_path, dtype=np.uint8, mode="r")
    gr, gc = ROWS // 128, COLS // 128
    specs = []
    for nm in names[:count]:
        specs += [(nm, "F8_E4M3", (ROWS, COLS), ROWS * COLS), (nm + "_scale_inv", "F32", (gr, gc), gr * gc * 4)]
    f = write_st(out_path, specs)
    t0 = time.perf_counter()
    for i in range(count):
        off = data_start + i * ROWS * COLS * 2
        w = mm[off: off + ROWS * COLS * 2].view(ml_dtypes.bfloat16).reshape(ROWS, COLS).astype(np.float32)
        tiles = w.reshape(gr, 128, gc, 128)
        amax = np.abs(tiles).max(axis=(1, 3))
        s = (np.maximum(amax, np.float32(1e-4)) / np.float32(448.0)).astype(np.float32)
        bits = s.view(np.uint32)
        e = ((bits >> 23) & 0xFF).astype(np.int64) + ((bits & 0x7FFFFF) != 0)
        S = (np.clip(e, 1, 254).astype(np.uint32) << 23).view(np.float32)
        q = np.clip(tiles / S[:, None, :, None], -448, 448).astype(ml_dtypes.float8_e4m3fn)
        f.write(q.reshape(ROWS, COLS).tobytes())
        f.write(S.tobytes())
    f.close()
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ue8", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--gib", type=float, default=2.0)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--numpy-tensors", type=int, default=4)
    a = ap.parse_args()
    src = os.path.join(a.work, "bf16")
    if not os.path.isfile(os.path.join(src, "model.safetensors")):
        names = generate(src, a.gib)
    else:
        with open(os.path.join(src, "model.safetensors"), "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]
            header = json.loads(f.read(n))
        names = sorted((k for k in header if k != "__metadata__"), key=lambda k: header[k]["data_offsets"][0])
    size = os.path.getsize(os.path.join(src, "model.safetensors"))
    subprocess.run(["cat", os.path.join(src, "model.safetensors")], stdout=subprocess.DEVNULL, check=True)
    cp_t, ue_t, rss, anon = [], [], [], []
    for _ in range(a.reps):
        for d in ("cp", "q"):
            shutil.rmtree(os.path.join(a.work, d), ignore_errors=True)
        t, _, _ = run_sampled(["cp", "-r", "--reflink=never", src, os.path.join(a.work, "cp")])
        cp_t.append(t)
        t, r, an = run_sampled([a.ue8, "quantize", src, os.path.join(a.work, "q"), "--to", "fp8-ue8m0", "--quiet"])
        ue_t.append(t)
        rss.append(r)
        anon.append(an)
    npt = numpy_quantize(os.path.join(src, "model.safetensors"), names, a.numpy_tensors, os.path.join(a.work, "np.safetensors"))
    np_bytes = a.numpy_tensors * ROWS * COLS * 2
    ue_med, cp_med = statistics.median(ue_t), statistics.median(cp_t)
    largest_f32 = ROWS * COLS * 4
    doc = {
        "input_bytes": size, "tensors": len(names), "largest_tensor_f32_bytes": largest_f32,
        "cp_seconds": cp_t, "ue8_seconds": ue_t,
        "cp_gb_per_s": size / cp_med / 1e9, "ue8_gb_per_s": size / ue_med / 1e9,
        "ue8_vs_cp": cp_med / ue_med,
        "ue8_peak_rss_bytes": max(rss), "ue8_peak_rss_anon_bytes": max(anon),
        "rss_anon_bound_bytes": 2 * largest_f32 + (256 << 20),
        "numpy_seconds": npt, "numpy_input_bytes": np_bytes, "numpy_gb_per_s": np_bytes / npt / 1e9,
        "ue8_vs_numpy": (size / ue_med) / (np_bytes / npt),
        "cpus": os.cpu_count(), "load_avg_at_end": os.getloadavg(),
    }
    print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
