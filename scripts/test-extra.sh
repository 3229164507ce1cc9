#!/usr/bin/env bash
# Tests that need more than one build: each scripts/test.d/*.sh is run with
# the sanitized build dir and the release build dir as arguments, in order.
# Each section's time is printed when it ends, and a summary at the end, so
# a slow step is visible in CI's log (make test must stay under 25 minutes),
# with how busy the machine's CPUs were meanwhile (/proc/stat).
set -euo pipefail
cd "$(dirname "$0")/.."
asan=${1:-build-asan}; rel=${2:-build}
shopt -s nullglob
summary=""
# busy: the CPU jiffies spent working and in all, from /proc/stat's first line.
busy() { awk '/^cpu /{print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8; exit}' /proc/stat; }
for t in scripts/test.d/*.sh; do
  echo "== $t"
  start=$SECONDS
  read -r b0 a0 <<<"$(busy)"
  bash "$t" "$asan" "$rel"
  took=$((SECONDS - start))
  read -r b1 a1 <<<"$(busy)"
  cpu=$(( (b1 - b0) * 100 / ((a1 - a0) > 0 ? (a1 - a0) : 1) ))
  echo "== $t: passed in ${took} s (CPUs ${cpu}% busy)"
  summary+="$(printf '%6d s  %3d%%  %s' "$took" "$cpu" "$t")"$'\n'
done
printf 'test-extra: all passed; time per section (and CPU busy):\n%s' "$summary"
