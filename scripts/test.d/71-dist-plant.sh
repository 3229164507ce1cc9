#!/usr/bin/env bash
# 71-dist-plant.sh -- proof that tests/dist can fail. Against two distributed
# processes (release build; Redis and PostgreSQL from tests/dist/env.sh):
#  1. each test of test_dist with BR_TEST_BREAK=1, which breaks the test's own
#     property first, must fail: last seats with Redis's capacity raised by
#     one (21 sold of 20), kill -9 with an acknowledged hold cancelled behind
#     the test's back, Redis emptied with a booking deleted from the record
#     (the rebuild cannot bring it back), the projection with the first event
#     oversold ("nothing refused" is false), a trace with one outcome altered
#     (replay names it), PostgreSQL away with a seat taken the test does not
#     count (the caught-up projection disagrees), SSE with one buyer who left
#     the queue (one pass missing), a webhook cut by a kill with its outbox
#     row deleted (the payment never confirmed);
#  2. when the tree has the plant BR_PLANT=LUA_OVERSELL_BY_ONE (a reserve
#     script that lets a zone go one seat below zero), a server built with it
#     sells 6 of 5 and the projection test (BR_TEST_EXPECT_OVERSELL=1)
#     requires PostgreSQL's CHECK to refuse the projection and the refusal to
#     be reported (br_projection_failed{event} 1, the error log line), the
#     zone in PostgreSQL never above its capacity.
# usage: 71-dist-plant.sh ASAN_BUILD RELEASE_BUILD
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=lib/plant-build.sh
. scripts/test.d/lib/plant-build.sh
rel=${2:-build}
tests=${DIST_BREAK_TESTS:-"test_last_seats test_kill_one test_sse_fanout test_redis_emptied test_pg_down test_projection test_trace_replays test_webhook_outbox"}

dir=$(mktemp -d /tmp/br-dist-plant.XXXXXX)
trap 'tests/dist/env.sh stop "$dir/env.d" >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
tests/dist/env.sh start "$dir/env.d" >/dev/null
set -a
# shellcheck disable=SC1091
. "$dir/env.d/env"
set +a
export BR_REDIS_FIXTURE=$PWD/tests/fixtures/redis.sh
export BR_ENV_SH=$PWD/tests/dist/env.sh

failed=0
for t in $tests; do
  set +e
  BR_TEST_BREAK=1 BR_TEST_ONLY=$t timeout -k 10 300 "$rel/tests/dist/test_dist" \
    "$PWD/$rel/bookingrush" >"$dir/$t.log" 2>&1
  status=$?
  set -e
  # cmocka's exit status is the number of failed tests: 1, not a crash (>=128)
  # nor the timeout (124).
  if [ "$status" -ne 1 ]; then
    tail -30 "$dir/$t.log" >&2
    echo "71-dist-plant: $t with its property broken: expected it to fail (1), got $status" >&2
    failed=1
    continue
  fi
  why=$(grep -m1 -E 'ERROR   \]|want |lost|divergence' "$dir/$t.log" || true)
  echo "71-dist-plant: $t fails with its property broken: $why"
done
[ "$failed" = 0 ] || exit 1

if ! grep -q 'BR_PLANT_LUA_OVERSELL_BY_ONE' adapters/*.c lua/* 2>/dev/null; then
  echo "71-dist-plant: no BR_PLANT_LUA_OVERSELL_BY_ONE in adapters/ or lua/: the planted" \
    "reserve script is not tried (the projection test's capacity fault covers the CHECK)"
  exit 0
fi
build=$PLANT_DIR
plant_build LUA_OVERSELL_BY_ONE bookingrush test_dist
set +e
BR_TEST_EXPECT_OVERSELL=1 BR_TEST_ONLY=test_projection timeout -k 10 300 \
  "$build/tests/dist/test_dist" "$PWD/$build/bookingrush" >"$dir/plant.log" 2>&1
status=$?
set -e
if [ "$status" -ne 0 ] || ! grep -q '^projection refused and reported' "$dir/plant.log"; then
  tail -40 "$dir/plant.log" >&2
  echo "71-dist-plant: the planted oversell was not stopped and reported (status $status)" >&2
  exit 1
fi
grep -E '^(sold|projection refused)' "$dir/plant.log"
echo "71-dist-plant: the planted oversell was refused by PostgreSQL's CHECK and reported"
