#!/usr/bin/env bash
# 23-check-plant.sh -- proof that point 8 ("never wait on a webhook forever")
# is tested: a release binary built with BR_PLANT=NO_PAYMENT_CHECK (the
# core's payment_check, and its Lua twin, emit no provider_query /
# provider_void: nobody asks the provider) runs webhook-chaos, whose
# provider loses 5% of its webhooks for good, on the in-memory engine and on
# the Redis backend (the Lua twin). Each run must exit non-zero naming L1
# (a payment still pending at the end), S6 (a success neither confirmed nor
# refunded) or S8 (the provider's ledger does not add up); the same runs on
# the normal release build must pass, so the violation is the plant's doing.
# Starts its own redis-server on a free 127.0.0.1 port (tests/fixtures/redis.sh)
# and stops it.
# usage: 23-check-plant.sh ASAN_BUILD RELEASE_BUILD
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=lib/plant-build.sh
. scripts/test.d/lib/plant-build.sh
rel=${2:-build}
build=$PLANT_DIR
scn=scenarios/webhook-chaos.json
want="L1 S6 S8"

if ! grep -q "BR_PLANT_NO_PAYMENT_CHECK" core/*.c || ! grep -q "BR_PLANT_NO_PAYMENT_CHECK" adapters/redis.c; then
  echo "23-check-plant: FAIL: core/ or adapters/redis.c has no BR_PLANT_NO_PAYMENT_CHECK"
  exit 1
fi
plant_build NO_PAYMENT_CHECK bookingrush

dir=$(mktemp -d)
stop() {
  tests/fixtures/redis.sh stop "$dir/redis" || true
  rm -rf "$dir"
}
trap stop EXIT
url=$(tests/fixtures/redis.sh start "$dir/redis")

failed=0
for backend in "" "--backend redis --redis $url"; do
  label=${backend:+redis}
  label=${label:-memory}
  set +e
  # shellcheck disable=SC2086
  out=$("$build/bookingrush" sim "$scn" --seed 1 --json $backend 2>/dev/null); rc=$?
  set -e
  got=$(jq -r '.violation.invariant // "none"' <<<"$out" 2>/dev/null || echo "no-json")
  msg=$(jq -r '.violation.message // ""' <<<"$out" 2>/dev/null || true)
  lost=$(jq -r '.faults.webhook_lost // "?"' <<<"$out" 2>/dev/null || echo "?")
  ok=0
  for w in $want; do [ "$got" = "$w" ] && ok=1; done
  if [ "$rc" -ne 0 ] && [ $ok = 1 ]; then
    echo "23-check-plant ($label): caught: exit $rc, $got: $msg (webhooks lost: $lost)"
  else
    echo "23-check-plant ($label): FAIL: exit $rc, invariant $got (wanted ${want// / or })"
    failed=1
  fi
  # The control: the normal build converges on the same run.
  if [ -x "$rel/bookingrush" ]; then
    # shellcheck disable=SC2086
    if ! "$rel/bookingrush" sim "$scn" --seed 1 --json $backend >/dev/null 2>&1; then
      echo "23-check-plant ($label): FAIL: the unplanted build fails the same run"
      failed=1
    fi
  fi
done
if [ $failed -ne 0 ]; then
  echo "23-check-plant: the missing status checks went unnoticed"
  exit 1
fi
echo "23-check-plant: without payment_check, lost webhooks are caught (L1/S6/S8) on both backends"
