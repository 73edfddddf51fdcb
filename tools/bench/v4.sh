#!/usr/bin/env bash
# DeepSeek-V4 conversion throughput (issue 11, issue 8 item 3): on a generated V4-shaped checkpoint of
# SIZE_GIB (default 2), times `cp -r --reflink=never` of the input, `ue8 requantize --to fp8-ue8m0`
# (FP4 experts -> FP8, exact) and `ue8 dequantize --dtype bf16`, each once after a warm-up read of the
# input, and reports throughput as input bytes / s, the ratio to cp, peak RSS and peak RssAnon.
#   tools/bench/v4.sh [SIZE_GIB] [WORK_DIR]
set -euo pipefail
SIZE=${1:-2}
WORK=${2:-$(mktemp -d /tmp/ue8-v4-bench.XXXX)}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
UE8=${UE8:-$ROOT/target/release/ue8}
[ -x "$UE8" ] || (cd "$ROOT" && cargo build --release -p ue8-cli)
IN=$WORK/in
[ -d "$IN" ] || python3 "$ROOT/tools/ref_v4/gen_bench.py" "$IN" "$SIZE"
BYTES=$(du -sb "$IN" | cut -f1)
cat "$IN"/*.safetensors > /dev/null   # page cache warm for every contender

# Runs a command, prints "seconds peak_rss_kib peak_rssanon_kib" (RssAnon sampled every 50 ms).
measure() {
  local start end pid peak_anon=0 a
  start=$(date +%s.%N)
  /usr/bin/time -f "%M" -o "$WORK/time.out" "$@" > /dev/null 2> "$WORK/err.out" &
  pid=$!
  while kill -0 "$pid" 2> /dev/null; do
    for c in $(pgrep -P "$pid" 2> /dev/null); do
      a=$(awk '/RssAnon/ {print $2}' "/proc/$c/status" 2> /dev/null || echo 0)
      [ "${a:-0}" -gt "$peak_anon" ] && peak_anon=$a
    done
    sleep 0.05
  done
  wait "$pid"
  end=$(date +%s.%N)
  echo "$(echo "$end - $start" | bc) $(cat "$WORK/time.out") $peak_anon"
}

rm -rf "$WORK/cp" "$WORK/fp8" "$WORK/bf16"
read -r t_cp rss_cp anon_cp < <(measure cp -r --reflink=never "$IN" "$WORK/cp")
rm -rf "$WORK/cp"
read -r t_rq rss_rq anon_rq < <(measure "$UE8" requantize "$IN" "$WORK/fp8" --to fp8-ue8m0 -q)
read -r t_dq rss_dq anon_dq < <(measure "$UE8" dequantize "$IN" "$WORK/bf16" --dtype bf16 -q)
OUT_RQ=$(du -sb "$WORK/fp8" | cut -f1); OUT_DQ=$(du -sb "$WORK/bf16" | cut -f1)
rm -rf "$WORK/fp8" "$WORK/bf16"
gib() { echo "scale=3; $1 / 1073741824" | bc; }
rate() { echo "scale=3; $BYTES / $1 / 1048576" | bc; }
echo "input: $(gib "$BYTES") GiB V4-shaped (FP4 experts, FP8 dense, E8M0 scales); cores: $(nproc); load: $(cut -d' ' -f1-3 /proc/loadavg)"
printf "%-34s %8s %10s %8s %10s %12s %10s\n" step seconds "in MiB/s" "vs cp" "out GiB" "peak RSS MiB" "RssAnon MiB"
printf "%-34s %8.2f %10s %8s %10s %12d %10d\n" "cp -r --reflink=never" "$t_cp" "$(rate "$t_cp")" 1.00 "$(gib "$BYTES")" $((rss_cp / 1024)) $((anon_cp / 1024))
printf "%-34s %8.2f %10s %8s %10s %12d %10d\n" "requantize --to fp8-ue8m0" "$t_rq" "$(rate "$t_rq")" "$(echo "scale=2; $t_cp / $t_rq" | bc)" "$(gib "$OUT_RQ")" $((rss_rq / 1024)) $((anon_rq / 1024))
printf "%-34s %8.2f %10s %8s %10s %12d %10d\n" "dequantize --dtype bf16" "$t_dq" "$(rate "$t_dq")" "$(echo "scale=2; $t_cp / $t_dq" | bc)" "$(gib "$OUT_DQ")" $((rss_dq / 1024)) $((anon_dq / 1024))
