#!/usr/bin/env bash
# 53-record-plant.sh -- proof that the recorder's exactly-once test can
# fail. A build with BR_PLANT=PG_NO_POSITION has br_pg_project ignore the
# stored projection position (adapters/pg_record.c), so a batch that two
# recorders project at once is applied twice: test_record's
# two_recorders_at_once (its own redis-server and PostgreSQL) must then
# fail, naming a log position or a zone on which the record and Redis
# disagree. (recorder_exactly_once_across_kills survives this plant: a
# restarted recorder reads the committed position, and what overlapping
# children apply twice is refused by the rows' own checks and rolled back
# in the child; it would fail if rows and position were not committed
# together, which no plant here breaks.)
# usage: 53-record-plant.sh ASAN_BUILD RELEASE_BUILD
set -euo pipefail
cd "$(dirname "$0")/../.."
build=build-plant-pg-position
log=$build/plant.log

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBR_PLANT=PG_NO_POSITION >/dev/null
cmake --build "$build" -j 2 --target test_record >/dev/null

set +e
timeout -k 10 600 "$build/tests/record/test_record" '*two_recorders*' >"$log" 2>&1
status=$?
set -e
if [ "$status" -eq 0 ]; then
  tail -20 "$log"
  echo "53-record-plant: expected the recorder tests to fail with the position ignored"
  exit 1
fi
if ! grep -q 'FAILED  \] two_recorders_at_once' "$log" ||
   ! grep -q -E '^  event [0-9]+' "$log"; then
  grep -E '^\[|^  ' "$log" | tail -30
  echo "53-record-plant: two_recorders_at_once did not fail on a disagreement"
  exit 1
fi
grep -E '^\[ *(RUN|OK|FAILED)|^  event' "$log" | head -20
echo "53-record-plant: with the projection position ignored, two recorders at once were caught"
