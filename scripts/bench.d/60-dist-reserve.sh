#!/usr/bin/env bash
# 60-dist-reserve.sh -- the distributed deployment under a reserve load, with
# its baselines, all in one run on 127.0.0.1:
#
#   - reserve requests/s and p50/p99 through TWO `bookingrush serve --backend
#     distributed` processes, every role in both (the README's default),
#     64 keep-alive connections, half on each (br-bench-dist, server/
#     bench_dist.c). Every request is a real hold: access token (JWT)
#     checked, queue pass checked and consumed, the reserve Lua twin (a
#     Redis Function) with its log append, the answer. A pass is used once,
#     so the load runs in rounds: every buyer reserves once (timed), joins
#     again and is admitted (not timed). Only the reserves are timed;
#   - raw: redis-benchmark running the same reserve function (FCALL, as
#     50-redis-reserve.sh does; its event needs no pass) on the same
#     redis-server (its db 1), 64 clients, right after each phase (back to
#     back: other work on the machine moves both alike); the ratio HTTP /
#     raw (goal >= 50%, p99 < 20 ms);
#   - PostgreSQL: pgbench, a one-row INSERT per transaction, 8 clients, on
#     the same PostgreSQL (fsync and synchronous_commit on);
#   - Redis time per reserve under the HTTP load: INFO commandstats'
#     usec_per_call of FCALL over the reserve rounds (log append included;
#     goal <= 20 us; an admitter or sweeper tick falling in a round is in
#     it too), and Redis's main-thread CPU per reserve;
#   - projection lag (log append to PostgreSQL commit) at that load: the
#     recorders' br_projection_batch_lag_seconds histogram (each batch's
#     oldest entry: the batch's largest lag) over the phase, summed over
#     both processes, its p99 interpolated within the bucket as Prometheus's
#     histogram_quantile does (goal < 1 s); and the drain: how long after
#     the phase the record reaches the log's last entry. The seats held in
#     Redis (the event's availability) and the bookings in PostgreSQL must
#     both equal the reserves answered 2xx.
#
# Persistence: PostgreSQL with its durable defaults (fsync and
# synchronous_commit on). Redis with appendonly yes and appendfsync always
# (nothing acknowledged is lost: the README's setting for an on-sale) for
# the first phase, then `CONFIG SET appendfsync everysec` (up to a second
# lost on a machine crash) for the second phase on the same servers; each
# phase has its raw baseline. BENCH_DIST_FSYNC=always (or everysec)
# measures that one alone.
#
# Usage: scripts/bench.d/60-dist-reserve.sh BUILD_DIR
#   BENCH_DIST_SECONDS (5)  reserve time per phase (rounds end at the first past it)
#   BENCH_DIST_USERS (2000) buyers, i.e. reserves per round
#   BENCH_DIST_FSYNC (both) Redis appendfsync: both, always or everysec
#   BENCH_DIST_KEYS (0)     1: every reserve carries an Idempotency-Key
#   BENCH_DIST_KEEP (0)     1: keep the run's files (logs, hook, outputs)
#   BENCH_DIST_THREADS      --threads of each server process (its default if unset):
#                           a process has at most that many requests in Redis at once
# Stops every server it started on exit, failure or Ctrl-C. Takes about
# a minute here, 1.5 on a busy machine (setup: registrations hash passwords).
set -euo pipefail

# --drain REDIS_PORT PG_URL EVENT (used by the hook below): waits until the
# record holds every entry of the event's log present now (the admitter's
# ticks go on appending), at most 30 s; prints the seconds it took.
if [ "${1:-}" = --drain ]; then
  rport=$2 pg_url=$3 event=$4
  reached() { # stream ids $1 >= $2
    awk -v a="$1" -v b="$2" 'BEGIN { split(a, x, "-"); split(b, y, "-")
      exit !(x[1] + 0 > y[1] + 0 || (x[1] + 0 == y[1] + 0 && x[2] + 0 >= y[2] + 0)) }'
  }
  start=$(date +%s.%N)
  last=$(redis-cli -p "$rport" xrevrange "br:{e$event}:log" + - count 1 | head -1 | tr -d '\r')
  [ -n "$last" ] || { echo "60-dist-reserve: the log of event $event is empty" >&2; exit 1; }
  pos=
  for _ in $(seq 1 600); do
    pos=$(psql -qtAX "$pg_url" -c "SELECT stream_id FROM projection WHERE event_id = $event")
    [ -n "$pos" ] && reached "$pos" "$last" && break
    sleep 0.05
  done
  if [ -z "$pos" ] || ! reached "$pos" "$last"; then
    echo "60-dist-reserve: the projection did not reach $last in 30 s (at '$pos')" >&2
    exit 1
  fi
  awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f\n", b - a }'
  exit 0
fi

# --raw BUILD_DIR REDIS_PORT CLIENTS CALLS (used by the hook below): the raw
# baseline, redis-benchmark running the reserve Function (FCALL) in db 1 of
# that redis-server, from a fresh event (tests/redis/bench_redis setup);
# prints "calls/s usec_per_call" and empties db 1 again.
if [ "${1:-}" = --raw ]; then
  bin=$2 rport=$3 clients=$4 calls=$5
  args=$("$bin/tests/redis/bench_redis" setup --redis "redis://127.0.0.1:$rport/1")
  redis-cli -p "$rport" config resetstat >/dev/null
  # shellcheck disable=SC2086
  rate=$(redis-benchmark -p "$rport" --dbnum 1 -n "$calls" -c "$clients" -r 10000000 --csv $args \
    2>/dev/null | awk -F'","' 'NR == 2 { print $2 }')
  us=$(redis-cli -p "$rport" info commandstats | tr -d '\r' |
    sed -n 's/^cmdstat_fcall:.*usec_per_call=\([0-9.]*\).*/\1/p')
  redis-cli -p "$rport" -n 1 flushdb >/dev/null
  if [ -z "$rate" ] || [ -z "$us" ]; then
    echo "60-dist-reserve: redis-benchmark gave no figure" >&2
    exit 1
  fi
  echo "$rate $us"
  exit 0
fi

cd "$(dirname "$0")/../.."
build=${1:-build}
secs=${BENCH_DIST_SECONDS:-5}
users=${BENCH_DIST_USERS:-2000}
fsync=${BENCH_DIST_FSYNC:-both}
raw_n=${BENCH_DIST_RAW_REQUESTS:-50000}
pg_secs=${BENCH_DIST_PG_SECONDS:-5}
conns=64

die() { echo "60-dist-reserve: $*" >&2; exit 1; }
for b in "$build/bookingrush" "$build/br-bench-dist" "$build/tests/redis/bench_redis"; do
  [ -x "$b" ] || die "$b is missing (make build)"
done
for t in redis-server redis-cli redis-benchmark psql pgbench curl; do
  command -v "$t" >/dev/null || die "$t is not installed (scripts/install-deps.sh)"
done
case $fsync in
  both) modes=(always everysec) ;;
  always | everysec) modes=("$fsync") ;;
  *) die "BENCH_DIST_FSYNC wants both, always or everysec" ;;
esac

# shellcheck source=lib/stop-pids.sh
. scripts/bench.d/lib/stop-pids.sh
tmp=$(mktemp -d)
pids=()
cleanup() {
  trap - EXIT INT TERM
  stop_pids "${pids[@]}"
  tests/fixtures/redis.sh stop "$tmp/redis" >/dev/null 2>&1 || true
  tests/fixtures/pg.sh stop "$tmp/pg" >/dev/null 2>&1 || true
  if [ "${BENCH_DIST_KEEP:-0}" = 1 ]; then echo "60-dist-reserve: files kept in $tmp" >&2
  else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'echo "60-dist-reserve: interrupted" >&2; exit 130' INT TERM

echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
redis_url=$(tests/fixtures/redis.sh start "$tmp/redis" --appendonly yes --appendfsync "${modes[0]}") ||
  die "cannot start redis-server"
rport=${redis_url##*:}
pg_url=$(BR_PG_DURABLE=1 tests/fixtures/pg.sh start "$tmp/pg" 2>"$tmp/pg.err") ||
  die "cannot start PostgreSQL: $(cat "$tmp/pg.err")"
"$build/bookingrush" migrate --pg "$pg_url" >"$tmp/migrate.out" 2>&1 ||
  die "bookingrush migrate failed: $(cat "$tmp/migrate.out")"

# Two processes, every role in both, the same secrets. The second starts
# once the first is ready (the first writes Redis's epoch key).
hex() { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }
jwt=$(hex 32) whsec=whsec_$(hex 24) pass=$(hex 32)
ports=()
for i in 1 2; do
  "$build/bookingrush" serve --backend distributed --redis "$redis_url" --pg "$pg_url" \
    --bind 127.0.0.1 --port 0 --port-file "$tmp/port$i" --data-dir "$tmp/data$i" \
    --jwt-secret "$jwt" --webhook-secret "$whsec" --pass-secret "$pass" \
    --admin bench@bench.local:bench-admin-pw --scrypt-log2n 10 --rate-limit-user 0 \
    --rate-limit-ip 0 --log-level warn --people 1000000 \
    ${BENCH_DIST_THREADS:+--threads "$BENCH_DIST_THREADS"} \
    >"$tmp/server$i.out" 2>"$tmp/server$i.log" &
  pids+=($!)
  for _ in $(seq 1 600); do
    if [ -s "$tmp/port$i" ] && curl -sf "http://127.0.0.1:$(cat "$tmp/port$i")/readyz" >/dev/null; then
      break
    fi
    kill -0 "${pids[$((i - 1))]}" 2>/dev/null || break
    sleep 0.05
  done
  if ! { [ -s "$tmp/port$i" ] && curl -sf "http://127.0.0.1:$(cat "$tmp/port$i")/readyz" >/dev/null; }; then
    die "server $i did not start or is not ready; its log: $(tail -5 "$tmp/server$i.log")"
  fi
  ports+=("$(cat "$tmp/port$i")")
done

# ---- the PostgreSQL baseline, on the same server (the servers idle) ----
psql -qtAX "$pg_url" -c "CREATE TABLE bench_insert (id bigserial PRIMARY KEY, event_id bigint,
  user_id bigint, zone_id int, quantity int, created_at timestamptz DEFAULT now())" >/dev/null
cat >"$tmp/insert.sql" <<'SQL'
\set u random(1, 1000000)
INSERT INTO bench_insert (event_id, user_id, zone_id, quantity) VALUES (1, :u, 1, 1);
SQL
tps=$(pgbench -n -M prepared -c 8 -j 2 -T "$pg_secs" -f "$tmp/insert.sql" "$pg_url" 2>/dev/null |
  sed -n 's/^tps = \([0-9.]*\).*/\1/p' | head -1)
psql -qtAX "$pg_url" -c "DROP TABLE bench_insert" >/dev/null
[ -n "$tps" ] || die "pgbench gave no figure"

# ---- the load: br-bench-dist calls the hook around every timed round ----
# (start/end: Redis's FCALL count and time and its main-thread CPU over
# the reserves alone; phase: the recorders' lag histogram, the drain, the
# raw FCALL baseline right after the phase under the same appendfsync, so
# that the two figures a ratio compares are taken back to back, and the
# next appendfsync).
cat >"$tmp/hook.sh" <<EOF
#!/usr/bin/env bash
set -euo pipefail
what=\$1 phase=\$2 event=\$3
rcli() { redis-cli -p $rport "\$@" | tr -d '\r'; }
cpu() { rcli info cpu | awk -F: '\$1 ~ /^used_cpu_(user|sys)_main_thread\$/ { s += \$2 }
                                 END { printf "%.6f", s }'; }
# CPU seconds (user + system) of the two server processes together.
servers() { awk '{ s += \$14 + \$15 } END { printf "%.2f", s / $(getconf CLK_TCK) }' \
  /proc/${pids[0]}/stat /proc/${pids[1]}/stat; }
fcall() { rcli info commandstats |
  sed -n 's/^cmdstat_fcall:calls=\([0-9]*\),usec=\([0-9]*\),.*/\1 \2/p'; }
lag() {
  for p in ${ports[*]}; do
    curl -s "http://127.0.0.1:\$p/metrics" |
      sed -n 's/^br_projection_batch_lag_seconds_bucket{le="\([^"]*\)"} \([0-9]*\)\$/\1 \2/p'
  done | awk '{ c[\$1] += \$2; if (!(\$1 in o)) { o[\$1] = ++k; l[k] = \$1 } }
              END { for (i = 1; i <= k; i++) print l[i], c[l[i]] }'
}
case \$what in
  start)
    [ -s $tmp/lag0.\$phase ] || lag >$tmp/lag0.\$phase
    rcli config resetstat >/dev/null
    echo "\$(cpu) \$(servers)" >$tmp/cpu0
    ;;
  end)
    echo "\$(fcall) \$(cpu) \$(servers) \$(cat $tmp/cpu0)" >>$tmp/rounds.\$phase
    ;;
  phase)
    $PWD/scripts/bench.d/60-dist-reserve.sh --drain $rport "$pg_url" "\$event" >$tmp/drain.\$phase
    lag >$tmp/lag1.\$phase
    $PWD/scripts/bench.d/60-dist-reserve.sh --raw "$(cd "$build" && pwd)" $rport $conns $raw_n \
      >$tmp/raw.\$phase
    next=\$(sed -n "\$((phase + 1))p" $tmp/modes)
    [ -z "\$next" ] || rcli config set appendfsync "\$next" >/dev/null
    ;;
esac
EOF
chmod +x "$tmp/hook.sh"
printf '%s\n' "${modes[@]}" >"$tmp/modes"
phases=$(printf "$secs,%.0s" "${modes[@]}")
# In the background, so that Ctrl-C or a TERM is acted on at once.
BENCH_DIST_HOOK=$tmp/hook.sh "$build/br-bench-dist" "${ports[0]},${ports[1]}" bench@bench.local \
  bench-admin-pw "$users" "${phases%,}" "$conns" >"$tmp/load.out" 2>"$tmp/load.err" &
pids+=($!)
wait $! || die "the load failed: $(tail -5 "$tmp/load.err")"

# ---- the figures ----
kv() { sed -n "${1}p" <(grep '^phase=' "$tmp/load.out") | tr ' ' '\n' | sed -n "s/^$2=//p"; }
event=$(kv 1 event)
held=$(curl -s "http://127.0.0.1:${ports[0]}/api/v1/events/$event" |
  sed -n 's/.*"capacity":\([0-9]*\),"available":\([0-9]*\).*/\1 \2/p' | awk '{ print $1 - $2 }')
booked=$(psql -qtAX "$pg_url" -c "SELECT count(*) FROM bookings WHERE event_id = $event")
printf 'setup: %s buyers registered, logged in and queued through both processes in %s s\n' \
  "$users" "$(kv 1 setup_s)"
echo "baseline: PostgreSQL one-row INSERT (pgbench, 8 clients, fsync on): ${tps%.*} tps"
ok_all=0
for i in "${!modes[@]}"; do
  m=${modes[$i]} p=$((i + 1))
  ok_all=$((ok_all + $(kv $p ok)))
  # p99 of the batch lag over the phase: bucket deltas (cumulative, in the
  # metric's order), interpolated within the bucket.
  lag=$(awk 'NR == FNR { a[$1] = $2; next } { print $1, $2 - a[$1] }' "$tmp/lag0.$p" "$tmp/lag1.$p" |
    awk '{ le[NR] = $1; d[NR] = $2 } END {
      total = d[NR]; if (NR == 0 || total <= 0) { print "none 0"; exit }
      want = 0.99 * total; prev = 0; lo = 0
      for (i = 1; i <= NR; i++) {
        if (d[i] >= want) {
          if (le[i] == "+Inf") { printf ">%s %d\n", lo, total; exit }
          printf "%.3f %d\n", lo + (le[i] - lo) * (want - prev) / (d[i] - prev), total; exit }
        prev = d[i]; lo = le[i] } }')
  # rounds.P: FCALL calls, their usec, Redis CPU, servers' CPU, at the end
  # of a round and then at its start.
  redis=$(awk '{ calls += $1; usec += $2; cpu += $3 - $5; srv += $4 - $6 }
    END { printf "%.1f %.6f %.2f", calls ? usec / calls : 0, cpu, srv }' "$tmp/rounds.$p")
  keys=""
  [ "${BENCH_DIST_KEYS:-0}" != 1 ] || keys=", an Idempotency-Key on every reserve"
  echo "Redis appendfsync $m (phase $p$keys):"
  awk -v r="$(kv $p rate)" -v p50="$(kv $p p50_ms)" -v p99="$(kv $p p99_ms)" -v n="$(kv $p reserves)" \
      -v ok="$(kv $p ok)" -v rounds="$(kv $p rounds)" \
      -v raw="$(cut -d' ' -f1 "$tmp/raw.$p")" -v rus="$(cut -d' ' -f2 "$tmp/raw.$p")" \
      -v rmin="$(kv $p round_min)" -v rmax="$(kv $p round_max)" \
      -v redis="$redis" -v lag="$lag" -v drain="$(cat "$tmp/drain.$p")" -v c="$conns" 'BEGIN {
    split(redis, x, " "); split(lag, l, " ")
    printf "  through 2 processes (JWT, pass, FCALL + log)  %6.0f req/s  p50 %6.2f ms  p99 %6.2f ms  (%d reserves in %d rounds of %.0f-%.0f req/s, %d 2xx, %d connections)\n", r, p50, p99, n, rounds, rmin, rmax, ok, c
    printf "  raw redis-benchmark FCALL reserve             %6.0f calls/s  (%d clients, db 1 of the same Redis)\n", raw, c
    ratio = raw > 0 ? 100 * r / raw : 0
    printf "  HTTP / raw: %.0f%% of the rate (goal >= 50%%), p99 %.2f ms (goal < 20 ms): %s\n", ratio, p99, (ratio >= 50 && p99 < 20) ? "met" : "NOT met"
    printf "  Redis per reserve: %.1f us in FCALL (raw run: %.1f us; goal <= 20 us: %s)\n", x[1], rus, x[1] <= 20 ? "met" : "NOT met"
    printf "  CPU per reserve: %.0f us Redis main thread, %.0f us the two server processes\n", (n > 0 ? x[2] * 1e6 / n : 0), (n > 0 ? x[3] * 1e6 / n : 0)
    printf "  projection lag p99 %s s over %d batches (append to commit; goal < 1 s: %s), drained %s s after the phase\n", l[1], l[2], (l[1] != "none" && l[1] !~ />/ && l[1] < 1) ? "met" : "NOT met", drain
  }'
done
[ -z "${BENCH_DIST_THREADS:-}" ] || echo "(each server process ran with --threads $BENCH_DIST_THREADS)"
echo "check: $ok_all reserves answered 2xx, $held seats held in Redis, $booked bookings in PostgreSQL"
if [ "$ok_all" -ne "$held" ] || [ "$held" -ne "$booked" ]; then
  die "answered, held and recorded disagree ($ok_all / $held / $booked)"
fi
echo "(load average now: $(cut -d' ' -f1-3 /proc/loadavg); everything here shares the same $(nproc) cores)"
