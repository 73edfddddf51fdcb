#!/usr/bin/env bash
# Benchmark of `ue8 import-gguf` against a peer doing the same job in Python (PyPI gguf + numpy +
# safetensors: tools/golden/import_gguf_numpy.py), on the same GGUF, in the same run.
# Usage: tools/bench/import_gguf.sh [MODEL.gguf] [REPS]   (default SmolLM2-135M-Instruct Q4_1, 3 reps)
# Needs: a release build of ue8 (cargo build --release -p ue8-cli), pip install -r tools/golden/gguf-requirements.txt
# Prints wall seconds per run (median of REPS), MB/s of BF16 output, the ratio, and whether the two
# BF16 outputs hold the same tensor bytes.
set -euo pipefail
cd "$(dirname "$0")/../.."
MODEL="${1:-$HOME/.cache/ue8-data/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf}"
REPS="${2:-3}"
UE8="${UE8_BIN:-${CARGO_TARGET_DIR:-target}/release/ue8}"
[ -x "$UE8" ] || { echo "build ue8 first: cargo build --release -p ue8-cli (or set UE8_BIN)" >&2; exit 1; }
[ -f "$MODEL" ] || { echo "model not found: $MODEL" >&2; exit 1; }
TMP="$(mktemp -d)"; trap 'rm -rf "$TMP"' EXIT
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
time_it() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1; e=$(date +%s.%N); echo "$e - $s" | bc -l; }
ue8_times=(); py_times=()
for _ in $(seq "$REPS"); do
  ue8_times+=("$(time_it "$UE8" import-gguf "$MODEL" "$TMP/ue8" --force -q)")
  py_times+=("$(time_it python3 tools/golden/import_gguf_numpy.py "$MODEL" "$TMP/py.safetensors")")
done
t_ue8=$(printf '%s\n' "${ue8_times[@]}" | median)
t_py=$(printf '%s\n' "${py_times[@]}" | median)
bytes=$(stat -c %s "$TMP/ue8/model.safetensors")
same=$(python3 - "$TMP/ue8/model.safetensors" "$TMP/py.safetensors" <<'PY'
import json, struct, sys
def tensors(p):
    b = open(p, "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n]); h.pop("__metadata__", None)
    return {k: b[8 + n + v["data_offsets"][0]: 8 + n + v["data_offsets"][1]] for k, v in h.items()}
a, b = tensors(sys.argv[1]), tensors(sys.argv[2])
print("identical" if a.keys() == b.keys() and all(a[k] == b[k] for k in a) else "DIFFERENT")
PY
)
echo "model: $MODEL ($(stat -c %s "$MODEL") bytes), reps: $REPS, cpus: $(nproc)"
printf 'ue8 import-gguf : %.3f s  (%.0f MB/s of BF16 output)\n' "$t_ue8" "$(echo "$bytes / $t_ue8 / 1000000" | bc -l)"
printf 'python peer     : %.3f s\n' "$t_py"
printf 'speed-up        : %.1fx\n' "$(echo "$t_py / $t_ue8" | bc -l)"
echo "BF16 tensor bytes: $same"
