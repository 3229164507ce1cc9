#!/usr/bin/env bash
# 28-hashpool-plant.sh -- proof that tests/http/test_hashpool.c can fail:
# the password-hashing pool (server/hashpool.c) is built with a planted bug
# and the suite must fail on it, naming the test that guards it:
#   HASH_NOT_IDLE   the threads of a pool made idle (--hash-sched idle, the
#       default) never ask for SCHED_IDLE, so a login storm's hashes compete
#       with the sale at a mere nice value
#       -> test_idle_threads_run_under_sched_idle
# The normal build (ctest http_hashpool) passes. Builds the suite alone in
# the shared plant tree.
# usage: 28-hashpool-plant.sh ASAN_BUILD RELEASE_BUILD
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=lib/plant-build.sh
. scripts/test.d/lib/plant-build.sh
build=$PLANT_DIR
for plant in HASH_NOT_IDLE:test_idle_threads_run_under_sched_idle; do
  name=${plant%%:*}
  test=${plant#*:}
  plant_build "$name" test_hashpool
  set +e
  out=$(timeout -k 10 120 "$build/tests/http/test_hashpool" 2>&1); rc=$?
  set -e
  if [ "$rc" -ne 0 ] && grep -q "FAILED  \] $test" <<<"$out"; then
    echo "hashpool plant $name: caught ($test failed, exit $rc)"
  else
    echo "$out" >&2
    echo "hashpool plant $name: FAIL: the planted bug in server/hashpool.c went unnoticed (exit $rc)" >&2
    exit 1
  fi
done
