#!/usr/bin/env bash
# 53-record-plant.sh -- proof that tests/record's properties can fail, with
# two planted builds (each test starts its own redis-server and PostgreSQL):
#
# 1. BR_PLANT=PG_NO_POSITION: br_pg_project ignores the stored projection
#    position (adapters/pg_record.c), so a batch two recorders project at
#    once is applied twice. two_recorders_at_once must fail, naming a log
#    position or a zone on which the record and Redis disagree.
#    (recorder_exactly_once_across_kills survives this plant: a restarted
#    recorder reads the committed position, and what overlapping children
#    apply twice is refused by the rows' own checks and rolled back in the
#    child; it would fail if rows and position were not committed together,
#    which no plant here breaks.)
# 2. BR_PLANT=RECONCILER_NO_MARGIN: the rebuild restarts the id counters at
#    the largest id the record holds (server/reconciler.c), so hold ids that
#    Redis handed out after the recorder's last commit are handed out again.
#    reconciler_rebuilds_after_flushall must fail on reused hold ids.
# 3. BR_PLANT=RECONCILER_FORGETS_REBUILD: the rebuild ignores the counters
#    the previous rebuild kept in rebuild_counters (server/reconciler.c), so
#    after a payment recorded between two losses the ids the first rebuilt
#    Redis handed out come again. reconciler_ids_unique_over_two_losses must
#    fail on hold, payment or pass ids handed out again.
# usage: 53-record-plant.sh ASAN_BUILD RELEASE_BUILD
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=lib/plant-build.sh
. scripts/test.d/lib/plant-build.sh

# plant TEST_FILTER WANT_REGEX: builds the plant (lib/plant-build.sh), runs the filtered
# tests, requires them to fail with WANT_REGEX in the output.
plant() {
  local name=$1 filter=$2 want=$3
  local build=$PLANT_DIR
  local log=$build/plant.log
  plant_build "$name" test_record
  set +e
  timeout -k 10 600 "$build/tests/record/test_record" "$filter" >"$log" 2>&1
  local status=$?
  set -e
  if [ "$status" -eq 0 ] || ! grep -q -E "$want" "$log"; then
    grep -E '^\[|^  ' "$log" | tail -30
    echo "53-record-plant: $name: expected $filter to fail with /$want/ (exit $status)"
    return 1
  fi
  grep -E '^\[ *(RUN|OK|FAILED)|^  ' "$log" | head -12
  echo "53-record-plant: $name caught by $filter"
}

plant PG_NO_POSITION '*two_recorders*' '^  event [0-9]+'
plant RECONCILER_NO_MARGIN '*reconciler*' 'reused_ids'
plant RECONCILER_FORGETS_REBUILD '*two_losses*' '[1-9][0-9]* (hold|payment|pass) ids'
