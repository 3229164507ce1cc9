#!/usr/bin/env bash
# 50-redis-digest.sh -- the simulator on both backends must print the same
# digest. Starts a redis-server on a free 127.0.0.1 port (no persistence),
# runs each shipped scenario with `bookingrush sim` on the in-memory engine
# and with --backend redis (the Lua twins), compares the digests (the running
# chain over every command and outcome plus the final state hash read back
# from Redis), and stops the server.
# usage: 50-redis-digest.sh ASAN_BUILD RELEASE_BUILD
set -euo pipefail
cd "$(dirname "$0")/../.."
rel=${2:-build}
bin=$rel/bookingrush
scenarios=${REDIS_DIGEST_SCENARIOS:-"last-seat presale-shuffle webhook-chaos worker-crashes"}
runs=("--seed 1" "--seed 2 --swarm")

dir=$(mktemp -d)
pidfile=$dir/redis.pid
stop() {
  if [ -s "$pidfile" ]; then
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || true
    for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.02; done
  fi
  rm -rf "$dir"
}
trap stop EXIT

port=
for attempt in 1 2 3 4 5 6 7 8; do
  p=$((20000 + RANDOM % 30000))
  if redis-cli -p "$p" ping >/dev/null 2>&1; then
    continue # somebody is there
  fi
  redis-server --port "$p" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
    --pidfile "$pidfile" --dir "$dir" --logfile "$dir/redis.log" >/dev/null
  for i in $(seq 1 100); do
    if redis-cli -p "$p" ping >/dev/null 2>&1; then
      port=$p
      break
    fi
    sleep 0.02
  done
  [ -n "$port" ] && break
done
if [ -z "$port" ]; then
  echo "50-redis-digest: could not start redis-server"
  exit 1
fi

digest() { awk '$1 == "digest" { print $2 }'; }
failed=0
for s in $scenarios; do
  for run in "${runs[@]}"; do
    # shellcheck disable=SC2086
    mem=$("$bin" sim "scenarios/$s.json" $run | digest)
    t0=$(date +%s.%N)
    # shellcheck disable=SC2086
    red=$("$bin" sim "scenarios/$s.json" $run --backend redis --redis "redis://127.0.0.1:$port" |
      digest)
    t1=$(date +%s.%N)
    verdict=same
    if [ -z "$mem" ] || [ "$mem" != "$red" ]; then
      verdict=DIFFERENT
      failed=1
    fi
    printf '%-16s %-18s memory %s  redis %s  %s (redis run %.1f s)\n' "$s" "$run" "$mem" \
      "${red:-none}" "$verdict" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')"
  done
done
if [ "$failed" -ne 0 ]; then
  echo "50-redis-digest: the Redis backend's digest differs from the in-memory engine's"
  exit 1
fi
echo "50-redis-digest: every scenario gives the same digest on both backends"
