#!/usr/bin/env bash
# Tests that need more than one build: each scripts/test.d/*.sh is run with
# the sanitized build dir and the release build dir as arguments, in order.
set -euo pipefail
cd "$(dirname "$0")/.."
asan=${1:-build-asan}; rel=${2:-build}
shopt -s nullglob
for t in scripts/test.d/*.sh; do
  echo "== $t"
  bash "$t" "$asan" "$rel"
done
echo "test-extra: all passed"
