#!/usr/bin/env bash
# Simulator section of make bench: simulated users per second and peak
# memory on onsale-100k and onsale-1m (goals: >= 200,000 users/s in a
# release build, the 1M-user sale in < 1 GiB). Baseline, same run: replaying
# the onsale-100k run's own command journal (core + auditor, no crowd model),
# so the ratio shows what the crowd, workers and provider model cost on top.
#
# Usage: scripts/bench.d/20-sim.sh BUILD_DIR
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${1:-build}/bookingrush
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

run() { # scenario [extra args] -> prints a line, leaves $tmp/out.json
  local scn=$1; shift
  /usr/bin/time -f "%M" -o "$tmp/rss" "$bin" sim "scenarios/$scn.json" --json "$@" >"$tmp/out.json"
  local ok users wall cpu ups rss
  ok=$(jq -r .ok "$tmp/out.json"); users=$(jq -r .users "$tmp/out.json")
  wall=$(jq -r .wall_s "$tmp/out.json"); cpu=$(jq -r .cpu_s "$tmp/out.json")
  ups=$(jq -r '.users_per_s | floor' "$tmp/out.json")
  rss=$(($(tail -1 "$tmp/rss") / 1024))
  printf '%-12s %8s users  %7.3f s wall  %7.3f s cpu  %8s users/s (%s per cpu-s)  peak RSS %5s MiB  engine %4s MiB  commands %s  ok=%s\n' \
    "$scn" "$users" "$wall" "$cpu" "$ups" "$(awk -v u="$users" -v c="$cpu" 'BEGIN { printf "%.0f", u / c }')" "$rss" \
    "$(jq -r '.memory.engine_bytes / 1048576 | floor' "$tmp/out.json")" "$(jq -r .commands "$tmp/out.json")" "$ok"
  [ "$ok" = true ] || { echo "sim bench: $scn found a violation" >&2; exit 1; }
}

echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg) (wall figures suffer when the load exceeds the cores; cpu figures less)"
run onsale-100k --record "$tmp/100k.brj"
sim_wall=$(jq -r .wall_s "$tmp/out.json")
"$bin" replay "$tmp/100k.brj" --json >"$tmp/replay.json"
rep_wall=$(jq -r .wall_s "$tmp/replay.json")
records=$(jq -r .records "$tmp/replay.json")
awk -v n="$records" -v r="$rep_wall" -v s="$sim_wall" 'BEGIN {
  printf "baseline     replay of the same run: %d commands in %.3f s (%.0f commands/s, core + auditor)\n", n, r, n / r
  printf "ratio        simulation / replay wall time: %.2f (what the crowd model adds)\n", s / r }'
run onsale-100k
run onsale-1m
echo "goals: >= 200000 users/s (onsale-100k, release); onsale-1m peak RSS < 1024 MiB"
