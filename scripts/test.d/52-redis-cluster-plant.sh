#!/usr/bin/env bash
# 52-redis-cluster-plant.sh -- proof that the cluster test can fail. The
# adapter is built twice with a planted slot router (adapters/redis_cluster.c,
# classify): BR_PLANT=CLUSTER_MOVED_IGNORED hands a MOVED reply back instead of
# following it, BR_PLANT=CLUSTER_ASK_IGNORED does the same with ASK.
# test_redis_cluster, on a three-node cluster from tests/fixtures/redis-cluster.sh,
# must then fail in the migration test: after the slot moved (MOVED) or while
# it migrates (ASK), the core answers and Redis does not (UNAVAILABLE for a
# script, CORRUPT for saga_step's pipelined read of a redirection).
# usage: 52-redis-cluster-plant.sh ASAN_BUILD RELEASE_BUILD
set -euo pipefail
cd "$(dirname "$0")/../.."

plant() { # NAME BUILD_DIR PHASE
  local name=$1 build=$2 phase=$3 status
  local log=$build/plant.log
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBR_PLANT="$name" >/dev/null
  cmake --build "$build" -j 2 --target test_redis_cluster >/dev/null
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
  if ! grep -q "$phase, command .*core says OK, Redis says [A-Z_]*\$" "$log"; then
    tail -40 "$log"
    echo "52-redis-cluster-plant: $name: the failure is not the planted one"
    exit 1
  fi
  grep -m1 "$phase, command" "$log"
  echo "52-redis-cluster-plant: $name was caught"
}

plant CLUSTER_MOVED_IGNORED build-plant-cluster-moved "after the move"
plant CLUSTER_ASK_IGNORED build-plant-cluster-ask "while the slot migrates"
