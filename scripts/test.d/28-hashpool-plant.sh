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
plant_build HASH_NOT_IDLE test_hashpool
plant_catches hashpool HASH_NOT_IDLE test_idle_threads_run_under_sched_idle tests/http/test_hashpool
