#!/usr/bin/env bash
# 53-record-plant.sh -- proof that the recorder's exactly-once tests can
# fail. A build with BR_PLANT=PG_NO_POSITION has br_pg_project ignore the
# stored projection position (adapters/pg_record.c), so a batch projected
# twice -- by a recorder killed after its commit and restarted, or by two
# recorders at once -- is applied twice. tests/record's two recorder tests
# (their own redis-server and PostgreSQL) must then fail, naming a zone or a
# log position on which the record and Redis disagree.
# usage: 53-record-plant.sh ASAN_BUILD RELEASE_BUILD
set -euo pipefail
cd "$(dirname "$0")/../.."
build=build-plant-pg-position
log=$build/plant.log

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBR_PLANT=PG_NO_POSITION >/dev/null
cmake --build "$build" -j 2 --target test_record >/dev/null

set +e
timeout -k 10 600 "$build/tests/record/test_record" '*recorder*' >"$log" 2>&1
status=$?
set -e
if [ "$status" -eq 0 ]; then
  tail -20 "$log"
  echo "53-record-plant: expected the recorder tests to fail with the position ignored"
  exit 1
fi
if ! grep -q 'FAILED  \] recorder_exactly_once_across_kills' "$log" ||
   ! grep -q 'FAILED  \] two_recorders_at_once' "$log"; then
  grep -E '^\[|^  ' "$log" | tail -30
  echo "53-record-plant: not both recorder tests failed"
  exit 1
fi
grep -E '^\[ *(RUN|OK|FAILED)|^  event' "$log" | head -20
echo "53-record-plant: with the projection position ignored, both exactly-once tests fail"
