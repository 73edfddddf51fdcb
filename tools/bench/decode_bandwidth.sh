#!/usr/bin/env bash
# Decode bandwidth on a >= 1 GB FP8 model (issue 5): generate a random-weight Llama (default 1.04 GB of
# fp8-ue8m0 layer weights, tools/bench/make_llama_bench_model.py), quantize it with `ue8 quantize`,
# then at 1 and 2 threads measure in the same run: the machine's streaming-read bandwidth (ue8-plan's
# probe, a buffer twice the last-level cache) and `ue8 bench` decode; print weight bytes per token x
# tg t/s as GB/s and as a share of the read bandwidth (target >= 70%). The probe runs right before
# and right after each bench and the mean of the two is used.
#
# Usage: tools/bench/decode_bandwidth.sh [WORK_DIR]   env: UE8 (binary), N (tokens, default 32),
#        R (repetitions, default 3), MODEL_ARGS (flags for make_llama_bench_model.py), PYTHON (with
#        numpy, ml_dtypes, safetensors; a venv is made from tools/ref_v4/requirements.txt otherwise)
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
work="${1:-/tmp/ue8-bench-decode-bw}"
ue8="${UE8:-$here/target/release/ue8}"
N="${N:-32}"; R="${R:-3}"
log() { echo "[decode_bandwidth.sh] $*" >&2; }
[ -x "$ue8" ] || (cd "$here" && cargo build --release -q -p ue8-cli)
bw="$here/target/release/examples/bandwidth"
[ -x "$bw" ] || (cd "$here" && cargo build --release -q -p ue8-plan --example bandwidth)
py="${PYTHON:-}"
if [ -z "$py" ]; then
  venv="$work/venv"
  if ! "$venv/bin/python" -c "import numpy, ml_dtypes, safetensors" 2>/dev/null; then
    log "creating $venv (numpy, ml_dtypes, safetensors from PyPI)"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q -r "$here/tools/ref_v4/requirements.txt" safetensors >&2
  fi
  py="$venv/bin/python"
fi
mkdir -p "$work"
if [ ! -f "$work/bf16/config.json" ]; then
  log "generating the BF16 model (about 2.2 GB)"
  rm -rf "$work/bf16"
  "$py" "$here/tools/bench/make_llama_bench_model.py" "$work/bf16" ${MODEL_ARGS:-}
fi
if [ ! -f "$work/fp8-ue8m0/ue8-manifest.json" ]; then
  "$ue8" quantize "$work/bf16" "$work/fp8-ue8m0" --quiet --to fp8-ue8m0 >&2
fi
probe() { "$bw" "$1" 2 | sed -n 's/^\([0-9.]*\) GB\/s.*/\1/p'; }
echo "| threads | read GB/s (before, after) | tg$N t/s | weight MB/token | decode GB/s | share of read |"
echo "|---:|---:|---:|---:|---:|---:|"
for t in 1 2; do
  b0=$(probe "$t")
  j="$("$ue8" bench "$work/fp8-ue8m0" -p 16 -n "$N" -r "$R" -t "$t" --json)"
  b1=$(probe "$t")
  python3 - "$j" "$t" "$b0" "$b1" <<'PY'
import json, sys
j, t, b0, b1 = json.loads(sys.argv[1]), sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
bpt = j["weight_bytes_per_token"]
gbs = bpt * j["tg_tokens_per_s"] / 1e9
bw = (b0 + b1) / 2
print(f"| {t} | {bw:.2f} ({b0:.2f}, {b1:.2f}) | {j['tg_tokens_per_s']:.2f} ± {j['tg_stddev']:.2f} "
      f"| {bpt / 1e6:.1f} | {gbs:.2f} | {100 * gbs / bw:.0f}% |")
PY
done
