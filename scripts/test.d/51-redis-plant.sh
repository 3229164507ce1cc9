#!/usr/bin/env bash
# 51-redis-plant.sh -- proof that the differential test can fail (four planted bugs). The adapter
# is built with BR_PLANT=LUA_LIMIT_OFF_BY_ONE: it loads a reserve.lua whose
# per-user limit check lets a user go one ticket over (adapters/redis.c,
# prepare_library). test_redis_diff (which starts its own redis-server) must
# then report a divergence, shrink it, and print a short failing sequence in
# which the core answers LIMIT_EXCEEDED and Redis does not.
# usage: 51-redis-plant.sh ASAN_BUILD RELEASE_BUILD
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=lib/plant-build.sh
. scripts/test.d/lib/plant-build.sh
build=$PLANT_DIR
log=$build/plant.log

plant_build LUA_LIMIT_OFF_BY_ONE test_redis_diff

set +e
timeout -k 10 600 "$build/tests/redis/test_redis_diff" --sequences 2000 --length 120 >"$log" 2>&1
status=$?
set -e
if [ "$status" -ne 1 ]; then
  tail -20 "$log"
  echo "51-redis-plant: expected the differential test to fail (status 1), got $status"
  exit 1
fi
if ! grep -q '^DIVERGED' "$log" || ! grep -q 'LIMIT_EXCEEDED' "$log"; then
  tail -40 "$log"
  echo "51-redis-plant: the failure is not the planted limit check"
  exit 1
fi
shortest=$(sed -n 's/^shortest failing sequence found: \([0-9]*\) commands$/\1/p' "$log")
sed -n '/^DIVERGED/,/ mix: /p' "$log" | head -60
echo "51-redis-plant: the planted off-by-one was caught; shortest sequence: $shortest commands"

# The trace property (lua/README.md "The event log"): an adapter built with
# BR_PLANT=LUA_LOG_SAGA_MAX logs each event's saga_step share with the
# step's max instead of the share's own count, which Redis answers right but
# the core, replaying that event's log alone, re-emits more refunds from.
# Shares smaller than their event's due refunds need several events with
# refunds due at once: the wide mix (ctest redis_diff_wide) meets them.
build=$PLANT_DIR
log=$build/plant.log
plant_build LUA_LOG_SAGA_MAX test_redis_diff
set +e
timeout -k 10 600 "$build/tests/redis/test_redis_diff" --mix wide --seed 3 --sequences 150 \
  --length 500 >"$log" 2>&1
status=$?
set -e
if [ "$status" -ne 1 ] || ! grep -q '^TRACE DIVERGED' "$log" ||
   ! grep -A1 '^TRACE DIVERGED' "$log" | grep -q 'saga_step'; then
  tail -40 "$log"
  echo "51-redis-plant: expected the trace check to catch the planted saga_step record (status $status)"
  exit 1
fi
grep -A8 '^TRACE DIVERGED' "$log" | head -12
echo "51-redis-plant: the planted saga_step record was caught by the trace replay"

# The rebuild (lua/README.md "Rebuilding an event"): BR_PLANT=LUA_REBUILD_TICKETS
# rebuilds each member's ticket count from confirmed holds only, forgetting
# live ones (the per-user limit would let a user past it); test_redis_diff's
# rebuild check must see the members' tickets differ after the rebuild.
build=$PLANT_DIR
log=$build/plant.log
plant_build LUA_REBUILD_TICKETS test_redis_diff
set +e
timeout -k 10 600 "$build/tests/redis/test_redis_diff" --sequences 300 --length 120 >"$log" 2>&1
status=$?
set -e
if [ "$status" -ne 1 ] || ! grep -q '^REBUILD FAILED' "$log" || ! grep -q 'only in .*member' "$log"; then
  tail -40 "$log"
  echo "51-redis-plant: expected the rebuild check to catch the planted ticket count (status $status)"
  exit 1
fi
grep -A6 '^REBUILD FAILED' "$log" | head -8
echo "51-redis-plant: the planted rebuild of members' tickets was caught"

# Issue 13, the waiting room's headroom: BR_PLANT=LUA_NO_HEADROOM makes admit.lua
# ignore the seats available (an inventory-aware event admits up to its
# max_active and admit_per_tick however few seats are left), which the core
# does not; the differential test's waiting_room mix (ctest
# redis_diff_waiting_room) must diverge on an admit that issues more passes.
build=$PLANT_DIR
log=$build/plant.log
plant_build LUA_NO_HEADROOM test_redis_diff
set +e
timeout -k 10 600 "$build/tests/redis/test_redis_diff" --mix waiting_room --seed 13 \
  --sequences 120 --length 150 >"$log" 2>&1
status=$?
set -e
if [ "$status" -ne 1 ] || ! grep -q '^DIVERGED' "$log" ||
   ! sed -n '/^shortest failing sequence/,$p' "$log" | grep -q '!= admit '; then
  tail -40 "$log"
  echo "51-redis-plant: expected the differential test to catch admit without headroom (status $status)"
  exit 1
fi
sed -n '/^DIVERGED/,/ mix: /p' "$log" | tail -12
echo "51-redis-plant: the planted admit without headroom was caught"
