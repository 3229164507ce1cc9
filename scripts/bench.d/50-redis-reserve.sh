#!/usr/bin/env bash
# 50-redis-reserve.sh -- what one reserve costs Redis, and reserve calls per
# second through the Redis adapter (adapters/redis.h) next to redis-benchmark
# running the same FCALL of the same library function in the same run, and
# the ratio (goal: >= 80%).
#
# Per-reserve Redis cost: INFO commandstats' usec_per_call of FCALL (the
# function's own time inside Redis, its log append included; goal: <= 20 us),
# and Redis's main-thread CPU per call (the same plus reading the request and
# writing the reply). Both sides run the same function, so both figures
# should match; usec_per_call is wall time inside the command, so other work
# preempting Redis on a busy machine inflates it (the load average is shown).
#
# Both sides start from the same fresh state (tests/redis/bench_redis.c: one
# event of 8 x 1,000,000 seats, no pass required) and make real holds, each
# by its own random user, each appending to the event's log: redis-benchmark
# with -c 50 connections, the adapter with 50 client threads of one
# connection each (its API is synchronous, so concurrency comes from
# callers, as in the server's worker threads). redis-benchmark's arguments
# cannot carry the binary journal record the adapter logs, so its calls log
# a stand-in of the same length. On a busy machine one redis-benchmark thread
# may get less CPU than the adapter's 50, so the raw side also runs with
# --threads 2 and the ratio is taken against the better raw figure. Rounds
# alternate raw and adapter; the best round of each counts. Also printed:
# the adapter with an idempotency key on every reserve (a claim in the
# user's slot first: two round trips).
# usage: 50-redis-reserve.sh RELEASE_BUILD
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
bench=$build/tests/redis/bench_redis
n=${REDIS_BENCH_REQUESTS:-200000}
clients=${REDIS_BENCH_CLIENTS:-50}
rounds=${REDIS_BENCH_ROUNDS:-3}

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
  if redis-cli -p "$p" ping >/dev/null 2>&1; then continue; fi
  redis-server --port "$p" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
    --pidfile "$pidfile" --dir "$dir" --logfile "$dir/redis.log" >/dev/null
  for i in $(seq 1 100); do
    if redis-cli -p "$p" ping >/dev/null 2>&1; then port=$p; break; fi
    sleep 0.02
  done
  [ -n "$port" ] && break
done
[ -n "$port" ] || { echo "50-redis-reserve: could not start redis-server"; exit 1; }
url=redis://127.0.0.1:$port

best() { sort -g | tail -1; }
least() { sort -g | head -1; }
# Redis's own CPU seconds (main thread, user + sys) so far.
redis_cpu() {
  redis-cli -p "$port" info cpu | tr -d '\r' |
    awk -F: '$1 == "used_cpu_user_main_thread" || $1 == "used_cpu_sys_main_thread" { s += $2 }
             END { printf "%.6f", s }'
}
per_call_us() { awk -v a="$1" -v b="$2" -v n="$n" 'BEGIN { print (b - a) * 1000000 / n }'; }
# FCALL's usec_per_call since the last CONFIG RESETSTAT.
fcall_us() {
  redis-cli -p "$port" info commandstats | tr -d '\r' |
    sed -n 's/^cmdstat_fcall:.*usec_per_call=\([0-9.]*\).*/\1/p'
}
resetstat() { redis-cli -p "$port" config resetstat >/dev/null; }
raw_all=() adapter_all=() raw_us_all=() ad_us_all=() raw_cpu_all=() ad_cpu_all=()
for r in $(seq 1 "$rounds"); do
  args=$("$bench" setup --redis "$url")
  resetstat
  c0=$(redis_cpu)
  # shellcheck disable=SC2086
  raw1=$(redis-benchmark -p "$port" -n "$n" -c "$clients" -r 10000000 --csv $args 2>/dev/null |
    awk -F'","' 'NR == 2 { print $2 }')
  c1=$(redis_cpu)
  raw_us=$(fcall_us)
  "$bench" setup --redis "$url" >/dev/null
  # shellcheck disable=SC2086
  raw2=$(redis-benchmark -p "$port" -n "$n" -c "$clients" --threads 2 -r 10000000 --csv $args \
    2>/dev/null | awk -F'","' 'NR == 2 { print $2 }')
  raw=$(printf '%s\n%s\n' "$raw1" "$raw2" | best)
  "$bench" setup --redis "$url" >/dev/null
  resetstat
  c2=$(redis_cpu)
  ad=$("$bench" run --redis "$url" --requests "$n" --clients "$clients" |
    sed -n 's/.*: \([0-9]*\) calls\/s$/\1/p')
  c3=$(redis_cpu)
  ad_us=$(fcall_us)
  raw_cpu=$(per_call_us "$c0" "$c1")
  ad_cpu=$(per_call_us "$c2" "$c3")
  printf 'round %d: raw FCALL %6.0f (1 thread) %6.0f (2 threads) calls/s, %5.1f us in FCALL, %5.1f us CPU/call;' \
    "$r" "$raw1" "$raw2" "$raw_us" "$raw_cpu"
  printf ' adapter %6.0f calls/s, %5.1f us in FCALL, %5.1f us CPU/call\n' "$ad" "$ad_us" "$ad_cpu"
  raw_all+=("$raw")
  adapter_all+=("$ad")
  raw_us_all+=("$raw_us")
  ad_us_all+=("$ad_us")
  raw_cpu_all+=("$raw_cpu")
  ad_cpu_all+=("$ad_cpu")
done
raw=$(printf '%s\n' "${raw_all[@]}" | best)
ad=$(printf '%s\n' "${adapter_all[@]}" | best)
raw_us=$(printf '%s\n' "${raw_us_all[@]}" | least)
ad_us=$(printf '%s\n' "${ad_us_all[@]}" | least)
raw_cpu=$(printf '%s\n' "${raw_cpu_all[@]}" | least)
ad_cpu=$(printf '%s\n' "${ad_cpu_all[@]}" | least)
keys=$("$bench" run --redis "$url" --requests "$n" --clients "$clients" --keys |
  sed -n 's/.*: \([0-9]*\) calls\/s$/\1/p')
echo "redis reserve (log append included), $clients clients, $n calls per run, best of $rounds:"
printf '  Redis time per reserve (FCALL usec_per_call)  raw %5.1f us  adapter %5.1f us  (goal <= 20 us)\n' \
  "$raw_us" "$ad_us"
printf '  Redis main-thread CPU per reserve (+ network) raw %5.1f us  adapter %5.1f us\n' \
  "$raw_cpu" "$ad_cpu"
printf '  raw redis-benchmark FCALL reserve           %8.0f calls/s (-c %d, 1 or 2 threads)\n' "$raw" \
  "$clients"
printf '  through the adapter (br_redis_apply)        %8.0f calls/s   ratio %.0f%% (goal >= 80%%)\n' \
  "$ad" "$(awk -v a="$ad" -v r="$raw" 'BEGIN { print 100 * a / r }')"
printf '  through the adapter, idempotency keys       %8.0f calls/s   (claim + script: 2 round trips)\n' \
  "$keys"
echo "  (load average during the run: $(cut -d' ' -f1-3 /proc/loadavg); other work on the same"
echo "   cores shifts every figure: the ratio and the raw/adapter pairs are what compare)"

# A figure the machine's load does not move: the instructions Redis executes
# per reserve (everything in redis-server from reading the request to
# writing the reply, the function and its log append included), counted by
# callgrind on a server of its own: over 2,000 redis-benchmark reserves (new
# user, no pass), and over 1,000 reserves that each consume a queue pass, as
# the HTTP path's do (bench_redis passes: users joined and admitted first,
# their reserves sent by redis-cli --pipe, so reading requests costs a
# little less there). Skipped without valgrind (it is not one of the
# project's dependencies) or with REDIS_BENCH_CALLGRIND=0.
# callgrind_reserve MODE (raw | pass): prints the instructions per reserve.
callgrind_reserve() {
  local cg=$dir/cg-$1 cport= p vpid cargs total calls
  mkdir -p "$cg"
  for attempt in 1 2 3 4 5 6 7 8; do
    p=$((20000 + RANDOM % 30000))
    redis-cli -p "$p" ping >/dev/null 2>&1 && continue
    cport=$p
    break
  done
  valgrind --tool=callgrind --callgrind-out-file="$cg/out" redis-server --hz 1 --port "$cport" \
    --bind 127.0.0.1 --save '' --appendonly no --dir "$cg" >/dev/null 2>"$cg/valgrind.log" &
  vpid=$!
  for i in $(seq 1 600); do redis-cli -p "$cport" ping >/dev/null 2>&1 && break; sleep 0.1; done
  if [ "$1" = pass ]; then
    calls=1000
    "$bench" passes --redis "redis://127.0.0.1:$cport" --users "$calls" --out "$cg/reserves"
    callgrind_control -z "$vpid" >/dev/null 2>&1
    redis-cli -p "$cport" --pipe <"$cg/reserves" >/dev/null
  else
    calls=2000
    cargs=$("$bench" setup --redis "redis://127.0.0.1:$cport")
    # shellcheck disable=SC2086
    redis-benchmark -p "$cport" -n 200 -c 10 -r 10000000 $cargs >/dev/null # warm
    callgrind_control -z "$vpid" >/dev/null 2>&1
    # shellcheck disable=SC2086
    redis-benchmark -p "$cport" -n "$calls" -c 10 -r 10000000 $cargs >/dev/null
  fi
  callgrind_control -d "$vpid" >/dev/null 2>&1
  redis-cli -p "$cport" shutdown nosave >/dev/null 2>&1 || true
  wait "$vpid" 2>/dev/null || true
  total=$(callgrind_annotate "$cg/out.1" 2>/dev/null |
    sed -n 's/^ *\([0-9,]*\) .*PROGRAM TOTALS.*/\1/p' | tr -d ,)
  [ -n "$total" ] && awk -v t="$total" -v n="$calls" 'BEGIN { printf "%.0f", t / n }'
}
if [ "${REDIS_BENCH_CALLGRIND:-1}" != 0 ] && command -v valgrind >/dev/null &&
   command -v callgrind_control >/dev/null; then
  raw_i=$(callgrind_reserve raw)
  pass_i=$(callgrind_reserve pass)
  [ -n "$raw_i" ] &&
    printf '  Redis instructions per reserve (callgrind, load-free)  %8s  (new user, no pass)\n' "$raw_i"
  [ -n "$pass_i" ] &&
    printf '  Redis instructions per reserve consuming a pass        %8s  (the HTTP path'"'"'s)\n' \
      "$pass_i"
fi
