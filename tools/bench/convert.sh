#!/usr/bin/env bash
# Converter benchmark: quantize --to fp8-ue8m0 of a generated 2 GiB BF16 checkpoint against
# `cp -r --reflink=never` of the same input (same run, alternating), peak RSS and RssAnon of ue8, and a
# numpy + ml_dtypes implementation of the same conversion. Prints one JSON document.
#   tools/bench/convert.sh [WORKDIR]      (needs ~5 GB free; python3 with tools/convert_ref/requirements.txt)
set -euo pipefail
cd "$(dirname "$0")/../.."
WORK="${1:-${TMPDIR:-/tmp}/ue8-convert-bench}"
mkdir -p "$WORK"
UE8="${UE8:-}"
if [ -z "$UE8" ]; then
  cargo build --release -p ue8-cli >&2
  UE8="${CARGO_TARGET_DIR:-target}/release/ue8"
fi
python3 tools/bench/convert_bench.py --ue8 "$UE8" --work "$WORK" --gib "${GIB:-2}" --reps "${REPS:-3}"
