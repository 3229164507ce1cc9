#!/usr/bin/env bash
# Tests that need more than one build: each scripts/test.d/*.sh is run with
# the sanitized build dir and the release build dir as arguments, in order.
# Each section's time is printed when it ends, and a summary at the end, so
# a slow step is visible in CI's log (make test must stay under 25 minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
asan=${1:-build-asan}; rel=${2:-build}
shopt -s nullglob
summary=""
for t in scripts/test.d/*.sh; do
  echo "== $t"
  start=$SECONDS
  bash "$t" "$asan" "$rel"
  took=$((SECONDS - start))
  echo "== $t: passed in ${took} s"
  summary+="$(printf '%6d s  %s' "$took" "$t")"$'\n'
done
printf 'test-extra: all passed; time per section:\n%s' "$summary"
