#!/usr/bin/env bash
# make bench: runs every scripts/bench.d/*.sh section in order with the release
# build dir as its argument, and collects what they print into bench-results.txt.
# Each section measures its figure next to a baseline taken in the same run and
# prints the ratio; add a section as a new file in scripts/bench.d/ (do not edit
# this runner). BENCH_ONLY=pattern runs only matching sections.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
out=bench-results.txt
: > "$out"
shopt -s nullglob
for s in scripts/bench.d/*.sh; do
  if [ -n "${BENCH_ONLY:-}" ] && [[ $s != *${BENCH_ONLY}* ]]; then continue; fi
  echo "== $s" | tee -a "$out"
  bash "$s" "$build" 2>&1 | tee -a "$out"
done
echo "bench: results in $out"
