#!/usr/bin/env bash
# 72-dist-cluster.sh -- one HTTP suite (flow) and tests/dist's properties
# (all but redis_emptied, which restarts a single Redis, and the projection's
# capacity fault, which writes to one) against two distributed processes on
# a three-node Redis Cluster
# (tests/fixtures/redis-cluster.sh: three `redis-server --cluster-enabled yes`
# joined with `redis-cli --cluster create`), PostgreSQL from tests/dist/env.sh.
# Each event's keys share one slot ({e<id>}); consecutive events land on
# different nodes, so the adapter must route (and follow MOVED/ASK).
# usage: 72-dist-cluster.sh ASAN_BUILD RELEASE_BUILD
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build-asan}
bin=$PWD/$build/bookingrush
fixture=tests/fixtures/redis-cluster.sh
if [ ! -x "$fixture" ]; then
  echo "72-dist-cluster: $fixture is missing (branch h/cluster)" >&2
  exit 1
fi
dir=$(mktemp -d /tmp/br-dist-cluster.XXXXXX)
trap '"$fixture" stop "$dir/cluster" >/dev/null 2>&1 || true
      tests/dist/env.sh stop "$dir/env.d" >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
tests/dist/env.sh start "$dir/env.d" >/dev/null
set -a
# shellcheck disable=SC1091
. "$dir/env.d/env"
set +a
nodes=$("$fixture" start "$dir/cluster" 3)
export BR_TEST_DIST=redis-cluster://$nodes
unset BR_REDIS_DIR
export BR_ENV_SH=$PWD/tests/dist/env.sh
# Where the first events' slots live: on different nodes.
for e in 1 2 3; do
  slot=$(redis-cli -h "${nodes%%:*}" -p "$(cut -d, -f1 <<<"$nodes" | cut -d: -f2)" \
    cluster keyslot "br:{e$e}:" 2>/dev/null || echo '?')
  echo "72-dist-cluster: event $e -> slot $slot"
done
failed=()
s0=$(date +%s)
if ! timeout -k 10 600 "$build/tests/http/test_http_flow" "$bin" >"$dir/flow.log" 2>&1; then
  grep -E 'want |error:|FAILED|http suite:' "$dir/flow.log" | head -30 >&2 || true
  echo "72-dist-cluster: http suite (flow) FAILED on the cluster" >&2
  failed+=(http-flow)
else
  echo "dist http flow on a 3-node Redis Cluster: passed ($(($(date +%s) - s0)) s)"
fi
s0=$(date +%s)
if ! timeout -k 10 600 "$build/tests/dist/test_dist" "$bin" >"$dir/dist.log" 2>&1; then
  grep -E 'want |error:|FAILED|http suite:' "$dir/dist.log" | head -30 >&2 || true
  echo "72-dist-cluster: tests/dist FAILED on the cluster" >&2
  failed+=(test_dist)
else
  grep -E '^(round|[0-9]+ (acknowledged|requests|of)|sold|PostgreSQL away)' "$dir/dist.log" || true
  echo "dist properties on a 3-node Redis Cluster: passed ($(($(date +%s) - s0)) s)"
fi
if [ "${#failed[@]}" -gt 0 ]; then
  echo "72-dist-cluster: FAILED: ${failed[*]}" >&2
  exit 1
fi
