#!/usr/bin/env bash
# 52-pg-plant.sh -- proof that the PostgreSQL tests can fail. For each bug
# the adapter can plant (-DBR_PLANT=NAME, see adapters/pg*.c; PG_NO_REDELIVERY
# in adapters/provider_test_pg.c: the webhook outbox never swept), build the pg
# tests in the shared plant tree (lib/plant-build.sh), start a throwaway PostgreSQL
# (tests/fixtures/pg.sh), run the one test that guards against that bug, and
# require that it fails the way the bug predicts. ctest runs the same tests
# on the normal builds, where they pass.
# usage: 52-pg-plant.sh ASAN_BUILD RELEASE_BUILD
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=lib/plant-build.sh
. scripts/test.d/lib/plant-build.sh
state=$(mktemp -d)
trap 'tests/fixtures/pg.sh stop "$state" >/dev/null 2>&1 || true; rm -rf "$state"' EXIT
tests/fixtures/pg.sh start "$state" >/dev/null
export BR_TEST_PG_STATE=$state

# plant | test program | its argument | text the failure must show
plants=(
  "PG_NO_POSITION|test_pg|test_projection_exactly_once|FAILED"
  "PG_BLIND_RETRY|test_pg|test_lost_commit_answer_is_resolved_not_repeated|FAILED"
  "PG_NO_RETRY|test_pg|test_connection_killed_*|FAILED"
  "PG_NO_CHECK|test_pg|test_projection_check_refuses_oversell|FAILED"
  "PG_EMAIL_CASE|test_pg|test_email_unique_byte_for_byte|FAILED"
  "PG_REUSE_NOT_REVOKED|test_pg|test_sessions_follow_session_h|FAILED"
  "PG_CONFIRM_KEEPS_HELD|test_pg_diff|--seeds 3|DIVERGED"
  "PG_NO_REDELIVERY|test_provider_pg||FAILED"
)
if [ -n "${BR_PLANT_ONLY:-}" ]; then
  mapfile -t plants < <(printf '%s\n' "${plants[@]}" | grep -E "^(${BR_PLANT_ONLY})\|")
fi
failed=0
for p in "${plants[@]}"; do
  IFS='|' read -r name prog arg want <<<"$p"
  dir=$PLANT_DIR
  if ! grep -q "BR_PLANT_$name" adapters/pg*.c adapters/provider_test_pg.c; then
    echo "52-pg-plant: FAIL: adapters/pg*.c, provider_test_pg.c have no BR_PLANT_$name"
    failed=1; continue
  fi
  plant_build "$name" "$prog"
  set +e
  # shellcheck disable=SC2086 # the argument list is split on purpose
  out=$(timeout -k 10 300 "$dir/tests/pg/$prog" $arg 2>&1); rc=$?
  set -e
  if [ "$rc" -ne 0 ] && grep -q "$want" <<<"$out"; then
    echo "52-pg-plant: $name caught by $prog $arg: $(grep -m1 -E '^DIVERGED|\] --- ' <<<"$out" | cut -c1-200)"
  else
    echo "52-pg-plant: FAIL: $name was not caught by $prog $arg (exit $rc)"
    tail -20 <<<"$out"
    failed=1
  fi
done
exit $failed
