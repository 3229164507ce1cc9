#!/usr/bin/env bash
# 52-redis-cluster-plant.sh -- proof that the cluster test can fail. The
# adapter's slot router (adapters/redis_cluster.c) is built with one planted
# bug at a time, and test_redis_cluster, on a three-node cluster from
# tests/fixtures/redis-cluster.sh, must fail in its migration test where the
# bug bites:
#   CLUSTER_MOVED_IGNORED        MOVED handed back: after the slot moved, the
#                                core answers and Redis does not;
#   CLUSTER_ASK_IGNORED          ASK handed back: while the slot's keys are split,
#                                the state walk cannot read the moved half (an
#                                ASK where a record should be);
#   CLUSTER_SCRIPT_ASK_FOLLOWED  a script follows ASK onto half an event instead
#                                of waiting for the move: it answers (wrongly)
#                                where nothing may run.
# usage: 52-redis-cluster-plant.sh ASAN_BUILD RELEASE_BUILD
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=lib/plant-build.sh
. scripts/test.d/lib/plant-build.sh

plant() { # NAME BUILD_DIR PATTERN
  local name=$1 build=$2 pattern=$3 status
  local log=$build/plant.log
  plant_build "$name" test_redis_cluster
  set +e
  timeout -k 10 300 tests/fixtures/redis-cluster.sh run -- \
    "$build/tests/redis/test_redis_cluster" >"$log" 2>&1
  status=$?
  set -e
  if [ "$status" -eq 0 ]; then
    tail -20 "$log"
    echo "52-redis-cluster-plant: $name: expected the cluster test to fail, it passed"
    exit 1
  fi
  if ! grep -q "$pattern" "$log"; then
    grep -v '^{' "$log" | tail -40
    echo "52-redis-cluster-plant: $name: the failure is not the planted one"
    exit 1
  fi
  grep -m1 "$pattern" "$log"
  echo "52-redis-cluster-plant: $name was caught"
}

plant CLUSTER_MOVED_IGNORED "$PLANT_DIR" \
  '^ERROR: after the move, command .*core says OK, Redis says [A-Z_]*$'
plant CLUSTER_ASK_IGNORED "$PLANT_DIR" \
  '^ERROR: while the slot migrates, the state read back: [A-Z_]*, not read$'
plant CLUSTER_SCRIPT_ASK_FOLLOWED "$PLANT_DIR" \
  '^ERROR: while the slot migrates, command .*(.*, event 1): Redis says [A-Z_]*, not UNAVAILABLE$'
