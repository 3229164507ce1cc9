#!/usr/bin/env bash
# HTTP section of make bench: reserve requests/s and p50/p99 latency against
# the embedded server (bookingrush serve: JWT check, JSON, the core's
# decision, the journal's group commit with fsync, the answer), next to a
# hello-world libmicrohttpd server with the same threading (br-http-hello),
# both measured in this run with wrk -t2 -c64. Goal: reserve >= 50% of the
# baseline's rate with p99 < 10 ms. Also prints this disk's fsync latency
# (measured now), which bounds a durable server's latency.
#
# Usage: scripts/bench.d/30-http.sh BUILD_DIR
#   BENCH_HTTP_SECONDS (default 8)  BENCH_HTTP_USERS (default 4000)
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
secs=${BENCH_HTTP_SECONDS:-8}
users=${BENCH_HTTP_USERS:-4000}
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

# wrk output -> "rate p50_ms p99_ms non2xx"
summarise() {
  awk '
    /Requests\/sec:/ { rate = $2 }
    /^ +50%/ { p50 = $2 } /^ +99%/ { p99 = $2 }
    /Non-2xx or 3xx responses:/ { bad = $5 }
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
    END { printf "%.0f %.2f %.2f %d\n", rate, ms(p50), ms(p99), bad + 0 }' "$1"
}

echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
dd if=/dev/zero of="$tmp/fsync.probe" bs=512 count=200 oflag=dsync 2>"$tmp/dd.txt" || true
fsync_us=$(awk '/copied/ { for (i = 1; i <= NF; i++) if ($(i+1) ~ /^s,?$/) { printf "%.0f", $i * 1e6 / 200; exit } }' "$tmp/dd.txt")
echo "disk: ${fsync_us:-?} us per synchronous 512 B write (dd oflag=dsync), measured now"

# Baseline: hello world.
"$build/br-http-hello" 0 2 >"$tmp/hello.out" &
pids+=($!)
for _ in $(seq 100); do grep -q '^port ' "$tmp/hello.out" 2>/dev/null && break; sleep 0.05; done
hport=$(awk '/^port / { print $2 }' "$tmp/hello.out")
wrk -t2 -c64 -d"${secs}s" --latency "http://127.0.0.1:$hport/" >"$tmp/hello.wrk"
read -r h_rate h_p50 h_p99 h_bad < <(summarise "$tmp/hello.wrk")
kill "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true; pids=()

# The embedded server, durable (fsync on every group commit), sized for the
# million seats and the holds the run makes (untouched rows cost no memory).
"$build/bookingrush" serve --bind 127.0.0.1 --port 0 --port-file "$tmp/port" \
  --data-dir "$tmp/data" --admin bench@bench.local:bench-admin-pw --scrypt-log2n 10 \
  --rate-limit-user 0 --rate-limit-ip 0 --log-level warn --threads 2 --people 1000000 \
  >"$tmp/server.out" 2>"$tmp/server.log" &
pids+=($!)
for _ in $(seq 600); do [ -s "$tmp/port" ] && break; sleep 0.05; done
sport=$(cat "$tmp/port")
"$build/br-bench-setup" "http://127.0.0.1:$sport" bench@bench.local bench-admin-pw "$users" \
  "$tmp/reserve.lua" >/dev/null
metric() { curl -s "http://127.0.0.1:$sport/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }
c0=$(metric br_journal_commits_total); n0=$(metric br_commands_applied_total)
s0=$(metric br_journal_sync_seconds_total)
wrk -t2 -c64 -d"${secs}s" --latency -s "$tmp/reserve.lua" "http://127.0.0.1:$sport" >"$tmp/reserve.wrk"
read -r r_rate r_p50 r_p99 r_bad < <(summarise "$tmp/reserve.wrk")
c1=$(metric br_journal_commits_total); n1=$(metric br_commands_applied_total)
s1=$(metric br_journal_sync_seconds_total)
kill -TERM "${pids[0]}"; wait "${pids[0]}"; pids=()

commits=$((c1 - c0)); cmds=$((n1 - n0))
printf 'hello (baseline)  %8s req/s  p50 %6s ms  p99 %6s ms\n' "$h_rate" "$h_p50" "$h_p99"
printf 'reserve (durable) %8s req/s  p50 %6s ms  p99 %6s ms  non-2xx %s\n' \
  "$r_rate" "$r_p50" "$r_p99" "$r_bad"
awk -v a="$cmds" -v b="$commits" -v s0="$s0" -v s1="$s1" 'BEGIN {
  printf "  journal: %d fdatasyncs, %.1f commands each, %.0f us each on average\n",
    b, b ? a / b : 0, b ? (s1 - s0) * 1e6 / b : 0 }'
awk -v r="$r_rate" -v h="$h_rate" -v p99="$r_p99" 'BEGIN {
  ratio = h > 0 ? 100 * r / h : 0
  printf "reserve / baseline: %.0f%% of the rate (goal >= 50%%), p99 %.2f ms (goal < 10 ms): %s\n",
    ratio, p99, (ratio >= 50 && p99 < 10) ? "met" : "NOT met" }'
