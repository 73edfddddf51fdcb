#!/usr/bin/env bash
# DeepSeek-shaped speed benchmark (issue 10): generate a random DeepseekV3 BF16 checkpoint with
# SmolLM2's tokenizer (vocab 49152), convert it with `ue8 quantize --to fp8-ue8m0` (BF16 lm_head,
# the default), run `ue8 bench` (pp/tg at 1 and 2 threads) and, with PEER=1, llama.cpp's deepseek2
# path on the same weights (convert_hf_to_gguf.py to BF16, then llama-quantize Q8_0 with F16
# token_embd/output, as DeepSeek keeps those in BF16) with `llama-bench` in the same run. The memory
# read bandwidth is measured in the same run too (ue8-plan's probe, `--example bandwidth`), so the
# table gives the share of it that decode reaches: weight bytes read per token x tg t/s / bandwidth.
#
# Usage: tools/bench/deepseek.sh [WORK_DIR]          (default /tmp/ue8-bench-deepseek)
# env:   UE8=path/to/ue8 (default target/release/ue8), P=128, N=64, R=3, THREADS="1 2",
#        MODEL_ARGS="..." (make_bench_model.py flags, e.g. "--hidden 1024 --layers 8"),
#        PEER=1      add the llama.cpp rows; sets up whatever is missing, each step cached:
#                    llama.cpp binaries (LLAMA_BIN, default $UE8_PEERS/llama.cpp/bin, built by
#                    ../shared/peers/build-llama-cpp.sh), convert_hf_to_gguf.py (LLAMA_CONVERT,
#                    default: extracted from the PyPI sdist llama-cpp-python==0.3.36 into
#                    $UE8_PEERS) and a venv for it (CONVERT_VENV, default $UE8_PEERS/convert-venv,
#                    from tools/ref_deepseek/requirements.txt + sentencepiece; torch pulls CUDA
#                    wheels, several GB). UE8_PEERS defaults to ~/.cache/ue8-peers.
#        TOKENIZER_DIR  a directory with tokenizer.json + config.json (default: `ue8 import-gguf` of
#                    the SmolLM2 GGUF at SMOLLM2_GGUF, default ~/.cache/ue8-data/smollm2/...,
#                    fetched with ../shared/data/fetch-smollm2.sh when missing). convert_hf_to_gguf.py
#                    needs a tokenizer whose pre-tokenizer it knows; SmolLM2's is "smollm".
#        BW_SECONDS=3 length of each bandwidth measurement; SETUP_ONLY=1 stops after the models.
# Generated models are cached in WORK_DIR (a stamp of MODEL_ARGS + tokenizer; a change regenerates).
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
work="${1:-/tmp/ue8-bench-deepseek}"
ue8="${UE8:-$here/target/release/ue8}"
P="${P:-128}"; N="${N:-64}"; R="${R:-3}"; THREADS="${THREADS:-1 2}"; BW_SECONDS="${BW_SECONDS:-3}"
peers="${UE8_PEERS:-$HOME/.cache/ue8-peers}"
log() { echo "[deepseek.sh] $*" >&2; }
mkdir -p "$work"
[ -x "$ue8" ] || (cd "$here" && cargo build --release -q -p ue8-cli)

# --- tokenizer (SmolLM2's, through ue8's own GGUF import) ---------------------------------------
tok="${TOKENIZER_DIR:-$work/smollm2-tokenizer}"
if [ ! -f "$tok/tokenizer.json" ]; then
  gguf="${SMOLLM2_GGUF:-${UE8_DATA:-$HOME/.cache/ue8-data}/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf}"
  [ -s "$gguf" ] || gguf="$(bash "$here/../shared/data/fetch-smollm2.sh")"
  log "tokenizer: ue8 import-gguf $gguf"
  rm -rf "$tok.tmp"
  "$ue8" import-gguf "$gguf" "$tok.tmp" >&2
  rm -f "$tok.tmp"/*.safetensors # only the tokenizer and config.json are used
  mv "$tok.tmp" "$tok"
fi

# --- llama.cpp peer tools -----------------------------------------------------------------------
peer=""
if [ "${PEER:-0}" = 1 ] || { [ -n "${LLAMA_CONVERT:-}" ] && [ -n "${LLAMA_BIN:-}" ]; }; then peer=1; fi
if [ -n "$peer" ]; then
  LLAMA_BIN="${LLAMA_BIN:-$peers/llama.cpp/bin}"
  if [ ! -x "$LLAMA_BIN/llama-bench" ]; then
    log "building llama.cpp (about 10 minutes on 2 cores)"
    bash "$here/../shared/peers/build-llama-cpp.sh" "$(dirname "$LLAMA_BIN")" >&2
  fi
  sdist="llama-cpp-python==0.3.36"
  LLAMA_CONVERT="${LLAMA_CONVERT:-$peers/llama_cpp_python-0.3.36/vendor/llama.cpp/convert_hf_to_gguf.py}"
  if [ ! -f "$LLAMA_CONVERT" ]; then
    log "fetching convert_hf_to_gguf.py from the PyPI sdist $sdist"
    t="$(mktemp -d)"
    python3 -m pip download -q --no-deps --no-binary :all: -d "$t" "$sdist" >&2
    mkdir -p "$peers"; tar -xzf "$t"/llama_cpp_python-0.3.36.tar.gz -C "$peers"; rm -rf "$t"
  fi
  lsrc="$(dirname "$LLAMA_CONVERT")"
  venv="${CONVERT_VENV:-$peers/convert-venv}"
  if ! "$venv/bin/python" -c "import torch, transformers, sentencepiece, safetensors, numpy" 2>/dev/null; then
    log "creating $venv (torch, transformers, ...: several GB)"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q -r "$here/tools/ref_deepseek/requirements.txt" sentencepiece protobuf >&2
  fi
  # the converter's own packages (conversion/, gguf-py/) come first: never an installed gguf
  conv_py() { PYTHONPATH="$lsrc:$lsrc/gguf-py" "$venv/bin/python" "$@"; }
fi

# --- the BF16 checkpoint and ue8's fp8-ue8m0 conversion ---------------------------------------
# make_bench_model.py needs numpy, ml_dtypes and safetensors: the converter's venv has them
gen_py="${PYTHON:-python3}"
if [ -n "$peer" ]; then gen_py="$venv/bin/python"
elif [ -z "${PYTHON:-}" ] && ! python3 -c "import numpy, ml_dtypes, safetensors" 2>/dev/null \
  && [ -x "$peers/convert-venv/bin/python" ]; then gen_py="$peers/convert-venv/bin/python"; fi
stamp="model_args=${MODEL_ARGS:-} tokenizer=$(sha256sum "$tok/tokenizer.json" | cut -c1-16)"
if [ "$(cat "$work/stamp" 2>/dev/null)" != "$stamp" ]; then
  log "new model shape or tokenizer: regenerating $work/{bf16,fp8-ue8m0,*.gguf}"
  rm -rf "$work/bf16" "$work/fp8-ue8m0" "$work"/*.gguf
fi
if [ ! -f "$work/bf16/model.safetensors" ]; then
  "$gen_py" "$here/tools/ref_deepseek/make_bench_model.py" "$work/bf16" --tokenizer "$tok" ${MODEL_ARGS:-}
fi
echo "$stamp" >"$work/stamp"
if [ ! -f "$work/fp8-ue8m0/model.safetensors" ]; then
  "$ue8" quantize --to fp8-ue8m0 -q "$work/bf16" "$work/fp8-ue8m0"
fi

if [ -n "$peer" ] && [ ! -f "$work/q8_0.gguf" ]; then
  [ -f "$work/bf16.gguf" ] || conv_py "$LLAMA_CONVERT" "$work/bf16" --outtype bf16 --outfile "$work/bf16.gguf" >&2
  "$LLAMA_BIN/llama-quantize" --allow-requantize --token-embedding-type f16 \
    --output-tensor-type f16 "$work/bf16.gguf" "$work/q8_0.gguf.tmp" Q8_0 >&2
  mv "$work/q8_0.gguf.tmp" "$work/q8_0.gguf"
fi
if [ "${SETUP_ONLY:-0}" = 1 ]; then log "models ready in $work"; exit 0; fi

# --- measurements (all in this run) --------------------------------------------------------------
res="$work/results"; rm -rf "$res"; mkdir -p "$res"
bw="${BW:-$here/target/release/examples/bandwidth}"
[ -x "$bw" ] || (cd "$here" && cargo build --release -q -p ue8-plan --example bandwidth)
for t in $THREADS; do "$bw" "$t" "$BW_SECONDS" >"$res/bw-$t.txt"; done
for t in $THREADS; do
  "$ue8" bench "$work/fp8-ue8m0" -p "$P" -n "$N" -r "$R" -t "$t" --json >"$res/ue8-$t.json"
done
if [ -n "$peer" ]; then
  for t in $THREADS; do
    "$LLAMA_BIN/llama-bench" -m "$work/q8_0.gguf" -p "$P" -n "$N" -r "$R" -t "$t" -o json >"$res/llama-$t.json"
  done
  # weight bytes one decoded token reads from the GGUF: every tensor, except the routed experts
  # (top-k of n_expert: ggml's CPU mul_mat_id skips experts no row was routed to) and token_embd
  # (one row)
  conv_py - "$work/q8_0.gguf" >"$res/llama-bytes.txt" <<'PY'
import sys
from gguf import GGUFReader
r = GGUFReader(sys.argv[1])
def meta(k):
    f = r.fields[k]
    return int(f.parts[f.data[0]][0])
n_exp, k_exp = meta("deepseek2.expert_count"), meta("deepseek2.expert_used_count")
total = 0.0
for t in r.tensors:
    b = int(t.n_bytes)
    if "_exps." in t.name:
        b = b * k_exp / n_exp
    elif t.name.startswith("token_embd."):
        b = b / int(t.shape[-1])  # GGUF shapes are [n_embd, n_vocab]
    total += b
print(int(total))
PY
fi

python3 - "$res" "$P" "$N" "$THREADS" "${peer:-0}" <<'PY'
import json, os, re, sys
res, P, N, threads, peer = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].split(), sys.argv[5] == "1"
bw = {}
for t in threads:
    m = re.search(r"([\d.]+) GB/s", open(os.path.join(res, f"bw-{t}.txt")).read())
    bw[t] = float(m.group(1)) * 1e9
print("read bandwidth (ue8-plan probe, buffer twice the last-level cache, >= 128 MiB): " +
      ", ".join(f"{t} thread(s) {bw[t] / 1e9:.2f} GB/s" for t in threads))
print()
print(f"| engine | weights | threads | pp{P} t/s | tg{N} t/s | weight MB read per token | decode GB/s "
      f"| share of read bandwidth | pp vs llama.cpp | tg vs llama.cpp |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
llama = {}
if peer:
    lbytes = float(open(os.path.join(res, "llama-bytes.txt")).read())
    for t in threads:
        rows = json.load(open(os.path.join(res, f"llama-{t}.json")))
        pp = next(x for x in rows if x["n_prompt"] > 0 and x["n_gen"] == 0)
        tg = next(x for x in rows if x["n_gen"] > 0 and x["n_prompt"] == 0)
        llama[t] = (pp["avg_ts"], pp["stddev_ts"], tg["avg_ts"], tg["stddev_ts"])
def row(engine, weights, t, pp, pps, tg, tgs, nbytes, ratios):
    gbs = nbytes * tg / 1e9
    print(f"| {engine} | {weights} | {t} | {pp:.2f} ± {pps:.2f} | {tg:.2f} ± {tgs:.2f} | {nbytes / 1e6:.1f} "
          f"| {gbs:.2f} | {100 * nbytes * tg / bw[t]:.0f}% | {ratios} |")
for t in threads:
    j = json.load(open(os.path.join(res, f"ue8-{t}.json")))
    if t in llama:
        ratios = f"{j['pp_tokens_per_s'] / llama[t][0]:.2f}x | {j['tg_tokens_per_s'] / llama[t][2]:.2f}x"
    else:
        ratios = "- | -"
    row("ue8", "fp8-ue8m0 (BF16 lm_head)", t, j["pp_tokens_per_s"], j["pp_stddev"], j["tg_tokens_per_s"],
        j["tg_stddev"], j["weight_bytes_per_token"], ratios)
for t in threads:
    if t in llama:
        pp, pps, tg, tgs = llama[t]
        row("llama.cpp", "Q8_0 (F16 token_embd/output)", t, pp, pps, tg, tgs, lbytes, "1.00x | 1.00x")
PY
