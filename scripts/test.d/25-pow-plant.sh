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
plant_build POW_REUSE test_pow
plant_catches pow POW_REUSE test_a_solved_challenge_is_accepted_once tests/http/test_pow
