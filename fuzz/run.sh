#!/usr/bin/env bash
# Run one fuzz harness for a fixed wall time: fuzz/run.sh <harness> <seconds> [extra libFuzzer flags]
#
# New corpus entries go to fuzz/corpus/<harness>/ (built by build_seeds.py if missing); crashes,
# hangs (-timeout) and memory blow-ups (-rss_limit_mb) to fuzz/crashes/<harness>/; the log to
# fuzz/logs/<harness>.log. libFuzzer stops at the first crash, so the run is restarted on the
# grown corpus until the wall time is used up (each restart is a "segment" in the log);
# `python -m fuzz.summarize <harness>` totals the segments. Runs at the lowest CPU priority.
set -uo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 <harness> <seconds> [libFuzzer flags...]" >&2
  exit 2
fi
harness="${1#fuzz_}"
seconds="$2"
shift 2
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
python="${PYTHON:-$repo/.venv/bin/python}"
corpus="$here/corpus/$harness"
crashes="$here/crashes/$harness"
log="$here/logs/$harness.log"
mkdir -p "$crashes" "$here/logs"
if [ ! -d "$corpus" ]; then
  (cd "$repo" && "$python" -m fuzz.build_seeds >/dev/null)
fi
seeds=()
if [ -d "$here/seeds/$harness" ]; then
  seeds+=("$here/seeds/$harness")
fi
cd "$repo" || exit 1
export FUZZ_KNOWN_ISSUES="${FUZZ_KNOWN_ISSUES:-1}"
start=$(date +%s)
deadline=$((start + seconds))
echo "=== fuzz/run.sh $harness $seconds started $(date -u +%FT%TZ)" >"$log"
segment=0
while :; do
  left=$((deadline - $(date +%s)))
  if [ "$left" -lt 5 ]; then
    break
  fi
  segment=$((segment + 1))
  seg_start=$(date +%s)
  echo "=== segment $segment: $left s left" >>"$log"
  nice -n 19 "$python" -m fuzz "fuzz_$harness" \
    -max_total_time="$left" \
    -timeout="${FUZZ_TIMEOUT:-10}" \
    -rss_limit_mb="${FUZZ_RSS_MB:-2048}" \
    -max_len="${FUZZ_MAX_LEN:-65536}" \
    -print_final_stats=1 \
    -artifact_prefix="$crashes/" \
    "$@" \
    "$corpus" "${seeds[@]}" >>"$log" 2>&1
  rc=$?
  echo "=== segment $segment exited rc=$rc" >>"$log"
  if [ "$rc" -eq 0 ]; then
    break
  fi
  if [ $(($(date +%s) - seg_start)) -lt 15 ]; then
    sleep 10 # crashing at once (e.g. a half-saved product file in the shared tree): don't spin
  fi
done
echo "=== finished $(date -u +%FT%TZ) wall $(($(date +%s) - start)) s" >>"$log"
cd "$repo" && "$python" -m fuzz.summarize "$harness"
