#!/usr/bin/env bash
# cluster_digest.sh -- the simulator on a Redis Cluster prints the in-memory
# engine's digest (the chain over every command and outcome, and the final
# state hash read back across the nodes), as 50-redis-digest.sh checks on one
# node. Run under tests/fixtures/redis-cluster.sh, which starts the cluster:
#   redis-cluster.sh run -- cluster_digest.sh BOOKINGRUSH @URL@ [SCENARIO...]
set -euo pipefail
bin=$1 url=$2
shift 2
cd "$(dirname "$0")/../.."
scenarios=("$@")
[ ${#scenarios[@]} -gt 0 ] || scenarios=(last-seat presale-shuffle webhook-chaos worker-crashes)
runs=("--seed 1" "--seed 2 --swarm")
digest() { awk '$1 == "digest" { print $2 }'; }
failed=0
for s in "${scenarios[@]}"; do
  for run in "${runs[@]}"; do
    # shellcheck disable=SC2086
    mem=$("$bin" sim "scenarios/$s.json" $run | digest)
    # shellcheck disable=SC2086
    red=$("$bin" sim "scenarios/$s.json" $run --backend redis --redis "$url" | digest)
    verdict=same
    if [ -z "$mem" ] || [ "$mem" != "$red" ]; then
      verdict=DIFFERENT
      failed=1
    fi
    printf '%-16s %-18s memory %s  cluster %s  %s\n' "$s" "$run" "$mem" "${red:-none}" "$verdict"
  done
done
if [ "$failed" -ne 0 ]; then
  echo "cluster_digest: the digest on the Redis Cluster differs from the in-memory engine's"
  exit 1
fi
echo "cluster_digest: every scenario gives the same digest on the cluster"
