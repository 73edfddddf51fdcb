#!/usr/bin/env bash
# Usage: tools/fuzz.sh [SECONDS] [TARGET...]   (env: FUZZ_JOBS, FUZZ_MAX_LEN)
# Runs cargo-fuzz targets of fuzz/ (default: all) for SECONDS each (default 180) and prints, per target, the
# executions and crashes reported by libFuzzer. Not part of CI. Needs `cargo install cargo-fuzz`;
# RUSTC_BOOTSTRAP=1 lets the stable toolchain accept the sanitizer flags cargo-fuzz passes.
# Seeds: the GGUF and safetensors fixtures of ue8-io. Crashes land in fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
SECONDS_EACH="${1:-180}"
shift || true
MAX_LEN="${FUZZ_MAX_LEN:-1048576}"
JOBS="${FUZZ_JOBS:-1}"
export RUSTC_BOOTSTRAP=1
targets=(gguf_header safetensors_header)
if [ "$#" -gt 0 ]; then targets=("$@"); fi
mkdir -p corpus/gguf_header corpus/safetensors_header
cp -n ../crates/ue8-io/tests/fixtures/gguf/*.gguf corpus/gguf_header/ 2>/dev/null || true
find ../crates -path '*/tests/fixtures/*' -name '*.safetensors' -size -2M -exec cp -n {} corpus/safetensors_header/ \; 2>/dev/null || true
for t in "${targets[@]}"; do
  log="$(mktemp)"
  status=0
  # With -jobs, libFuzzer writes each job's output to fuzz-<job>.log in the current directory.
  parallel=()
  if [ "$JOBS" -gt 1 ]; then parallel=(-jobs="$JOBS" -workers="$JOBS"); fi
  rm -f fuzz-*.log
  cargo fuzz run "$t" "corpus/$t" -- -max_total_time="$SECONDS_EACH" -max_len="$MAX_LEN" -rss_limit_mb=2048 \
    "${parallel[@]}" -print_final_stats=1 >"$log" 2>&1 || status=$?
  cat fuzz-*.log >>"$log" 2>/dev/null || true
  rm -f fuzz-*.log
  execs="$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' | paste -sd+ | bc || true)"
  crashes="$(ls "artifacts/$t" 2>/dev/null | grep -c -E '^(crash|oom|timeout|leak)-' || true)"
  echo "$t: seconds=$SECONDS_EACH execs=${execs:-?} crashes=${crashes:-0} exit=$status"
  if [ "$status" -ne 0 ]; then tail -40 "$log"; fi
  rm -f "$log"
done
