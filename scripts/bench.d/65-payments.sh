#!/usr/bin/env bash
# 65-payments.sh -- payments in production (ISSUE11 §4.13), all in one run
# on 127.0.0.1: a redis-server, a PostgreSQL (durable defaults), a throwaway
# `bookingrush kafka-dev` (tests/fixtures/kafka.sh: 3 mock brokers in
# memory, on this machine) and two `bookingrush serve --backend distributed
# --kafka ... --payments test` processes, every role in both (relay, saga
# consumers in one group). The Stripe double is not started: the webhooks
# are posted straight to the api (the double would be the bottleneck) and
# their path from the route on is the one --payments stripe takes.
#
#   - webhook -> confirmed: br-bench-pay --webhooks (server/bench_pay.c)
#     holds N seats per rate and creates their payments, then, per rate R,
#     POSTs N signed payment_intent.succeeded webhooks at R/s (slices of
#     R/10 every 100 ms); each is verified, stored as a fact (PostgreSQL,
#     outbox), relayed to Kafka, consumed by a saga consumer, applied in
#     Redis. The latency is the servers' br_payment_confirm_seconds (fact
#     received to booking confirmed), the phase's bucket deltas summed over
#     both processes, p50/p99 interpolated within the bucket as Prometheus's
#     histogram_quantile does (buckets 5, 10, 25, 50, 100, 250, 500 ms, 1 s,
#     ...: a coarse figure; each process's 1 ms-step p50/p99 gauges over
#     the whole run are printed as a cross-check). Every booking is then read back through the API and
#     must be confirmed, and PostgreSQL's bookings must say so too;
#   - raw producer: br-bench-pay --raw-producer, the idempotent producer of
#     adapters/kafka.h (acks=all, linger.ms=5, batches of 10 000 each
#     waiting for its delivery reports, as the relay produces) into the same
#     kafka-dev right after the webhook phases, PAY_BENCH_MESSAGES x 100 B.
#
# Measured here (2 cores shared with other engineers' builds and tests;
# load average 3-5 during the run), 2026-12-03:
#   (figures: see README.md "Benchmarks")
#
# usage: 65-payments.sh RELEASE_BUILD
#   PAY_BENCH_N (1500)          payments per rate
#   PAY_BENCH_RATES (200,500)   webhooks/s, one phase each
#   PAY_BENCH_MESSAGES (200000) raw producer messages
#   PAY_BENCH_WARMUP (300)      payments at 100/s first, not reported (the
#                               saga group's first assignment and rebalance)
#   PAY_BENCH_KEEP (0)          1: keep the run's files
# Stops every server it started on exit, failure or Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
n=${PAY_BENCH_N:-1500}
rates=${PAY_BENCH_RATES:-200,500}
msgs=${PAY_BENCH_MESSAGES:-200000}
warm=${PAY_BENCH_WARMUP:-300}

die() { echo "65-payments: $*" >&2; exit 1; }
for b in "$build/bookingrush" "$build/br-bench-pay"; do
  [ -x "$b" ] || die "$b is missing (make build)"
done
for t in redis-server redis-cli psql curl; do
  command -v "$t" >/dev/null || die "$t is not installed (scripts/install-deps.sh)"
done

tmp=$(mktemp -d)
pids=()
cleanup() {
  trap - EXIT INT TERM
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
    kill -KILL "$p" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  tests/fixtures/kafka.sh stop "$tmp/kafka" >/dev/null 2>&1 || true
  tests/fixtures/redis.sh stop "$tmp/redis" >/dev/null 2>&1 || true
  tests/fixtures/pg.sh stop "$tmp/pg" >/dev/null 2>&1 || true
  if [ "${PAY_BENCH_KEEP:-0}" = 1 ]; then echo "65-payments: files kept in $tmp" >&2
  else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'echo "65-payments: interrupted" >&2; exit 130' INT TERM

echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
redis_url=$(tests/fixtures/redis.sh start "$tmp/redis" --appendonly yes --appendfsync everysec) ||
  die "cannot start redis-server"
pg_url=$(BR_PG_DURABLE=1 tests/fixtures/pg.sh start "$tmp/pg" 2>"$tmp/pg.err") ||
  die "cannot start PostgreSQL: $(cat "$tmp/pg.err")"
"$build/bookingrush" migrate --pg "$pg_url" >"$tmp/migrate.out" 2>&1 ||
  die "bookingrush migrate failed: $(cat "$tmp/migrate.out")"
bs=$(tests/fixtures/kafka.sh start "$build" "$tmp/kafka") || die "kafka-dev did not start"
bs=${bs#bootstrap=}

hex() { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }
jwt=$(hex 32) whsec=whsec_$(hex 24) pass=$(hex 32)
ports=()
for i in 1 2; do
  "$build/bookingrush" serve --backend distributed --redis "$redis_url" --pg "$pg_url" \
    --kafka "$bs" --kafka-group bench-saga --payments test \
    --bind 127.0.0.1 --port 0 --port-file "$tmp/port$i" --data-dir "$tmp/data$i" \
    --jwt-secret "$jwt" --webhook-secret "$whsec" --pass-secret "$pass" \
    --admin bench@bench.local:bench-admin-pw --scrypt-log2n 10 --rate-limit-user 0 \
    --rate-limit-ip 0 --log-level warn --people 1000000 \
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

# The hook: the confirm-latency histogram of both processes, summed, at the
# start and the end of each phase.
cat >"$tmp/hook.sh" <<EOF
#!/usr/bin/env bash
set -euo pipefail
for p in ${ports[*]}; do
  curl -sf "http://127.0.0.1:\$p/metrics" |
    sed -n 's/^br_payment_confirm_seconds_bucket{le="\([^"]*\)"} \([0-9]*\)\$/\1 \2/p'
done | awk '{ c[\$1] += \$2; if (!(\$1 in o)) { o[\$1] = ++k; l[k] = \$1 } }
            END { for (i = 1; i <= k; i++) print l[i], c[l[i]] }' >$tmp/lat.\$1.\$2
EOF
chmod +x "$tmp/hook.sh"
BENCH_PAY_WARMUP=$warm BENCH_PAY_HOOK=$tmp/hook.sh "$build/br-bench-pay" --webhooks "${ports[0]},${ports[1]}" \
  bench@bench.local bench-admin-pw "$whsec" "$n" "$rates" >"$tmp/load.out" 2>"$tmp/load.err" &
pids+=($!)
wait $! || die "the webhook load failed: $(tail -5 "$tmp/load.err")"

raw=$("$build/br-bench-pay" --raw-producer --bootstrap "$bs" --messages "$msgs" --size 100 \
  --batch 10000) || die "the raw producer failed: $raw"
raw_rate=$(sed -n 's/.*: \([0-9]*\) msg\/s.*/\1/p' <<<"$raw")

kv() { grep "^phase=$1 " "$tmp/load.out" | tr ' ' '\n' | sed -n "s/^$2=//p"; }
first=$(head -1 "$tmp/load.out")
event=$(tr ' ' '\n' <<<"$first" | sed -n 's/^event=//p')
phases=$(grep -c '^phase=[1-9]' "$tmp/load.out")
total=$((n * phases + warm))
echo "setup: $total holds and payments through both processes in $(tr ' ' '\n' <<<"$first" | sed -n 's/^setup_s=//p') s"
[ "$warm" = 0 ] || echo "warm-up: $warm payments at 100/s, $(kv 0 confirmed) confirmed (not reported)"
bad=0
for p in $(seq 1 "$phases"); do
  # p50 and p99 of the phase's bucket deltas, interpolated within the bucket.
  q=$(awk 'NR == FNR { a[$1] = $2; next } { print $1, $2 - a[$1] }' "$tmp/lat.start.$p" "$tmp/lat.end.$p" |
    awk 'function at(f,   want, prev, lo, i) { want = f * total; prev = 0; lo = 0
           for (i = 1; i <= NR; i++) { if (d[i] >= want) {
             if (le[i] == "+Inf") return sprintf(">%.0f", lo * 1000)
             return sprintf("%.1f", 1000 * (lo + (le[i] - lo) * (want - prev) / (d[i] - prev))) }
             prev = d[i]; lo = le[i] } }
         { le[NR] = $1; d[NR] = $2 }
         END { total = d[NR]; if (NR == 0 || total <= 0) { print "none none 0"; exit }
               print at(0.5), at(0.99), total }')
  read -r p50 p99 count <<<"$q"
  echo "payments: $(kv "$p" rate)/s sustained (achieved $(kv "$p" achieved)/s, $(kv "$p" accepted)/$(kv "$p" sent) webhooks 2xx), webhook->confirmed p50 $p50 ms p99 $p99 ms ($(kv "$p" confirmed) confirmed, $count timed); raw producer $raw_rate msg/s (same run)"
  [ "$(kv "$p" confirmed)" = "$n" ] && [ "$(kv "$p" accepted)" = "$n" ] || bad=1
done
gauges=""
for i in 1 2; do
  g=$(curl -sf "http://127.0.0.1:${ports[$((i - 1))]}/metrics" | awk '
    $1 == "br_payment_confirm_p50_seconds" { a = $2 * 1000 }
    $1 == "br_payment_confirm_p99_seconds" { b = $2 * 1000 }
    $1 == "br_payment_confirm_seconds_count" { c = $2 }
    END { printf "p50 %.0f ms p99 %.0f ms over %d", a, b, c }')
  gauges="$gauges${gauges:+; }process $i $g"
done
echo "cross-check, each process's 1 ms-step gauges over the whole run (warm-up and every rate): $gauges"
echo "raw: $raw (kafka-dev, same machine)"
confirmed_pg=$(psql -qtAX "$pg_url" -c "SELECT count(*) FROM bookings WHERE event_id = $event AND state = 2" 2>&1) || true
echo "check: $confirmed_pg of $total bookings confirmed in PostgreSQL (state 2, BR_HOLD_CONFIRMED)"
[ "$confirmed_pg" = "$total" ] || bad=1
echo "(load average now: $(cut -d' ' -f1-3 /proc/loadavg); everything here shares the same $(nproc) cores)"
[ "$bad" = 0 ] || die "not every payment was accepted and confirmed"
