#!/usr/bin/env bash
# DeepSeek-shaped speed benchmark (issue 10): generate a random DeepseekV3 BF16 checkpoint, convert it
# with `ue8 quantize --to fp8-ue8m0` (BF16 lm_head, the default), run `ue8 bench` (pp/tg at 1 and 2
# threads) and print a markdown table with the weight bytes read per generated token.
# Peer: llama.cpp's deepseek2 path needs convert_hf_to_gguf.py (llama-cpp-python sdist, with torch);
# set LLAMA_CONVERT=/path/to/convert_hf_to_gguf.py and LLAMA_BIN=dir-of-llama-bench to add its rows.
#
# Usage: tools/bench/deepseek.sh [WORK_DIR]   (env: UE8=path/to/ue8, P=128, N=64, R=3, and the
#        make_bench_model.py flags through MODEL_ARGS, e.g. MODEL_ARGS="--hidden 1024 --layers 8")
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
work="${1:-/tmp/ue8-bench-deepseek}"
ue8="${UE8:-$here/target/release/ue8}"
P="${P:-128}"; N="${N:-64}"; R="${R:-3}"
mkdir -p "$work"
if [ ! -f "$work/bf16/model.safetensors" ]; then
  python3 "$here/tools/ref_deepseek/make_bench_model.py" "$work/bf16" ${MODEL_ARGS:-}
fi
if [ ! -f "$work/fp8-ue8m0/model.safetensors" ]; then
  "$ue8" quantize --to fp8-ue8m0 -q "$work/bf16" "$work/fp8-ue8m0"
fi
echo "| engine | weights | threads | pp$P t/s | tg$N t/s | weight MB read per token |"
echo "|---|---|---:|---:|---:|---:|"
for t in 1 2; do
  j="$("$ue8" bench "$work/fp8-ue8m0" -p "$P" -n "$N" -r "$R" -t "$t" --json)"
  python3 - "$j" "$t" <<'PY'
import json, sys
j = json.loads(sys.argv[1])
print(f"| ue8 | fp8-ue8m0 (BF16 lm_head) | {sys.argv[2]} | {j['pp_tokens_per_s']:.2f} ± {j['pp_stddev']:.2f} "
      f"| {j['tg_tokens_per_s']:.2f} ± {j['tg_stddev']:.2f} | {j['weight_bytes_per_token'] / 1e6:.1f} |")
PY
done
if [ -n "${LLAMA_CONVERT:-}" ] && [ -n "${LLAMA_BIN:-}" ]; then
  if [ ! -f "$work/q8_0.gguf" ]; then
    python3 "$LLAMA_CONVERT" "$work/bf16" --outtype bf16 --outfile "$work/bf16.gguf"
    "$LLAMA_BIN/llama-quantize" --allow-requantize --token-embedding-type f16 \
      --output-tensor-type f16 "$work/bf16.gguf" "$work/q8_0.gguf" Q8_0
  fi
  for t in 1 2; do
    "$LLAMA_BIN/llama-bench" -m "$work/q8_0.gguf" -p "$P" -n "$N" -r "$R" -t "$t" -o md | tail -n +3
  done
else
  echo "(llama.cpp rows skipped: set LLAMA_CONVERT and LLAMA_BIN)" >&2
fi
