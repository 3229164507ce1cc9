#!/usr/bin/env bash
# 25-pow-plant.sh -- proof that tests/http/test_pow.c can fail: the door's
# used set (server/pow.c) is built with a planted bug (BR_PLANT_POW_REUSE: a
# challenge already solved and accepted is accepted again, so one solution
# buys any number of queue places) and the test must fail on it, naming
# test_a_solved_challenge_is_accepted_once; the normal build (ctest
# http_pow) passes. Builds one small target (about half a minute).
# usage: 25-pow-plant.sh ASAN_BUILD RELEASE_BUILD
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=lib/plant-build.sh
. scripts/test.d/lib/plant-build.sh
build=$PLANT_DIR
plant_build POW_REUSE test_pow
set +e
out=$("$build/tests/http/test_pow" 2>&1); rc=$?
set -e
if [ "$rc" -ne 0 ] && grep -q "FAILED  \] test_a_solved_challenge_is_accepted_once" <<<"$out"; then
  echo "pow plant: caught (test_a_solved_challenge_is_accepted_once failed, exit $rc)"
else
  echo "$out" >&2
  echo "pow plant: FAIL: the planted bug in server/pow.c went unnoticed (exit $rc)" >&2
  exit 1
fi
