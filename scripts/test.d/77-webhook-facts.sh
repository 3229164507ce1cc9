#!/usr/bin/env bash
# 77-webhook-facts.sh -- the webhook route with --kafka (ISSUE11 §4.4): a
# verified Stripe webhook is stored as a fact (provider_events_received + one
# outbox row for the relay, one transaction) and answered 200 before anything
# applies it; the same event again is 200 duplicate:true with nothing written.
# Against a real Redis and PostgreSQL (tests/dist/env.sh) and one
# `serve --backend distributed --roles api --kafka ...` (api only: no consumer
# or relay, so no broker is needed; nothing is sent to the bootstrap address):
#   1. signed with the second of two rotated secrets: 200, duplicate false;
#      the same again (re-signed, fresh t): 200, duplicate true; one row each;
#   2. the outbox row: topic payments, key = metadata.booking_id, payload v1;
#   3. a wrong secret, a stale t (tolerance + 5 s), no header: 401 / 400;
#      nothing stored; an ignored type: 200 ignored;
#   4. PostgreSQL stopped: 503 UNAVAILABLE (the provider retries), then
#      started again: the same event is stored (200, duplicate false);
#   5. /metrics counts each result in br_webhooks_total{result}, has the
#      saga's, relay's, checks' and confirm latency's families, and passes
#      promtool check metrics;
#   6. bad payment flags refuse to start (--payments stripe without a key,
#      --payment-check-ms 999, four commas in --stripe-webhook-secret).
# Signatures are made here with `openssl dgst -sha256 -hmac`, not by our code.
# Seen failing: with the dedupe planted out (-DBR_PLANT=FACT_NO_DEDUPE the
# second delivery answers duplicate false and a second outbox row appears),
# and with the route applying instead of storing (facts_pg unset: 0 rows).
# usage: 77-webhook-facts.sh ASAN_BUILD RELEASE_BUILD
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build-asan}
bin=$PWD/$build/bookingrush
if ! grep -q -- '--kafka' <<<"$("$bin" serve --help 2>&1)"; then
  echo "77-webhook-facts: $bin has no --kafka" >&2
  exit 1
fi

dir=$(mktemp -d /tmp/br-webhook-facts.XXXXXX)
spid=""
cleanup() {
  if [ -n "$spid" ]; then kill -9 "$spid" 2>/dev/null || true; wait "$spid" 2>/dev/null || true; fi
  tests/dist/env.sh stop "$dir" >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT
tests/dist/env.sh start "$dir" >/dev/null
# shellcheck disable=SC1091
source "$dir/env"
pg=$BR_TEST_PG
psql_q() { psql -qAtX "$pg" -c "$1"; }
"$bin" migrate --pg "$pg" >/dev/null

fail() {
  echo "77-webhook-facts: FAILED: $*" >&2
  echo "--- server log (tail)" >&2
  tail -n 30 "$dir/serve.log" >&2 || true
  exit 1
}

start_serve() {
  rm -f "$dir/port"
  "$bin" serve --backend distributed --redis "$BR_TEST_DIST" --pg "$pg" --roles api \
    --port 0 --port-file "$dir/port" --data-dir "$dir/data" --kafka 127.0.0.1:1 \
    --webhook-secret whsec_old_one --stripe-webhook-secret whsec_old_one,whsec_new_one \
    --webhook-tolerance-s 60 --start-attempts 3 >>"$dir/serve.log" 2>&1 &
  spid=$!
  for _ in $(seq 1 100); do
    [ -s "$dir/port" ] && break
    kill -0 "$spid" 2>/dev/null || fail "serve exited at start"
    sleep 0.1
  done
  [ -s "$dir/port" ] || fail "serve did not listen"
  port=$(cat "$dir/port")
}

# post SECRET T BODY -> "status body" (SECRET "-" = no header)
post() {
  local secret=$1 t=$2 body=$3 hdr=()
  if [ "$secret" != "-" ]; then
    local sig
    sig=$(printf '%s' "$t.$body" | openssl dgst -sha256 -hmac "$secret" | sed 's/^.*= //')
    hdr=(-H "Stripe-Signature: t=$t,v1=$sig")
  fi
  curl -s -o "$dir/resp" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
    "${hdr[@]}" --data-binary "$body" "http://127.0.0.1:$port/api/v1/webhooks/stripe"
  printf ' %s' "$(cat "$dir/resp")"
}

event() { # ID TYPE
  printf '{"id":"%s","object":"event","type":"%s","created":%s,"data":{"object":{"id":"pi_1","object":"payment_intent","status":"succeeded","metadata":{"payment_id":"4294967297","booking_id":"4294967298"}}}}' \
    "$1" "$2" "$(date +%s)"
}

expect() { # WHAT GOT WANT_STATUS [GREP]
  local what=$1 got=$2 want=$3 pat=${4:-}
  [ "${got%% *}" = "$want" ] || fail "$what: want $want, got $got"
  if [ -n "$pat" ]; then grep -q -- "$pat" <<<"$got" || fail "$what: no $pat in $got"; fi
}

# 6. refused configurations (before anything is started)
for bad in "--payments stripe" "--payment-check-ms 999" "--payments paypal" \
  "--stripe-webhook-secret a,,b" "--kafka-dlq-after 0"; do
  # shellcheck disable=SC2086
  if "$bin" serve --backend distributed --redis "$BR_TEST_DIST" --pg "$pg" $bad \
    --port 0 --data-dir "$dir/data" >"$dir/bad.log" 2>&1; then
    fail "serve started with $bad"
  fi
  grep -q "bookingrush serve: --" "$dir/bad.log" || fail "no message for $bad: $(cat "$dir/bad.log")"
done

# every flag of ISSUE11 §4.2 is in --help with its variable; a variable is read
help=$("$bin" serve --help 2>&1)
for f in "--payments test|stripe.*BR_PAYMENTS" "--stripe-api-base.*BR_STRIPE_API_BASE" \
  "--stripe-key.*BR_STRIPE_KEY" "--stripe-webhook-secret.*BR_STRIPE_WEBHOOK_SECRET" \
  "--stripe-timeout-ms.*BR_STRIPE_TIMEOUT_MS" "--stripe-attempts.*BR_STRIPE_ATTEMPTS" \
  "--webhook-tolerance-s.*BR_WEBHOOK_TOLERANCE_S" "--payment-check-ms.*BR_PAYMENT_CHECK_MS" \
  "--kafka HOST.*BR_KAFKA\]" "--kafka-prefix.*BR_KAFKA_PREFIX" "--kafka-group.*BR_KAFKA_GROUP" \
  "--kafka-dlq-after.*BR_KAFKA_DLQ_AFTER" "--relay-batch.*BR_RELAY_BATCH" "reconciler,relay"; do
  grep -q -- "$f" <<<"$help" || fail "--help lacks $f"
done
if BR_PAYMENT_CHECK_MS=5 "$bin" serve --backend distributed --redis "$BR_TEST_DIST" --pg "$pg" \
  --port 0 --data-dir "$dir/data" >"$dir/bad.log" 2>&1; then
  fail "serve started with BR_PAYMENT_CHECK_MS=5"
fi
grep -q "BR_PAYMENT_CHECK_MS\|--payment-check-ms" "$dir/bad.log" || fail "no message for BR_PAYMENT_CHECK_MS=5"

start_serve
now=$(date +%s)
ev=$(event evt_facts_1 payment_intent.succeeded)

# 1. rotated secrets, stored once
expect "first delivery (second secret)" "$(post whsec_new_one "$now" "$ev")" 200 '"duplicate":false'
expect "redelivery (first secret, fresh t)" "$(post whsec_old_one "$((now + 1))" "$ev")" 200 \
  '"duplicate":true'
[ "$(psql_q "SELECT count(*) FROM provider_events_received")" = 1 ] || fail "received rows"
[ "$(psql_q "SELECT count(*) FROM outbox")" = 1 ] || fail "outbox rows: $(psql_q 'SELECT count(*) FROM outbox')"

# 2. the outbox row
row=$(psql_q "SELECT topic, key, payload->>'kind', payload->>'payment_id', payload->>'succeeded',
  payload->>'source', payload->>'provider_event_id', sent_at IS NULL FROM outbox")
[ "$row" = "payments|4294967298|payment_event|4294967297|true|webhook|evt_facts_1|t" ] ||
  fail "outbox row: $row"

# 3. refusals store nothing
expect "wrong secret" "$(post whsec_other "$now" "$(event evt_facts_2 payment_intent.succeeded)")" 401
expect "stale t" "$(post whsec_new_one "$((now - 65))" "$(event evt_facts_3 payment_intent.succeeded)")" 401
expect "no header" "$(post - "$now" "$(event evt_facts_4 payment_intent.succeeded)")" 400
expect "ignored type" "$(post whsec_new_one "$now" "$(event evt_facts_5 charge.refunded)")" 200 \
  '"ignored":true'
[ "$(psql_q "SELECT count(*) FROM provider_events_received")" = 1 ] || fail "refusals stored"

# 4. PostgreSQL away: 503, then stored once it is back
tests/dist/env.sh pg-stop "$dir" >/dev/null
ev6=$(event evt_facts_6 payment_intent.payment_failed)
expect "PostgreSQL down" "$(post whsec_new_one "$(date +%s)" "$ev6")" 503 UNAVAILABLE
tests/dist/env.sh pg-start "$dir" >/dev/null
ok=""
for _ in $(seq 1 50); do
  got=$(post whsec_new_one "$(date +%s)" "$ev6")
  if [ "${got%% *}" = 200 ]; then ok=$got; break; fi
  sleep 0.2
done
[ -n "$ok" ] || fail "not stored after PostgreSQL came back: $got"
grep -q '"duplicate":false' <<<"$ok" || fail "after PostgreSQL came back: $ok"
[ "$(psql_q "SELECT count(*) FROM outbox WHERE payload->>'succeeded' = 'false'")" = 1 ] ||
  fail "failed fact's row"

# 5. metrics
m=$(curl -s "http://127.0.0.1:$port/metrics")
for want in 'result="stored"} 2' 'result="duplicate"} 1' 'result="unauthorized"} 2' \
  'result="invalid"} 1' 'result="ignored"} 1'; do
  grep -q "br_webhooks_total{$want" <<<"$m" || fail "metrics: no br_webhooks_total{$want"
done
grep -q 'br_webhooks_total{result="unavailable"} [1-9]' <<<"$m" || fail "metrics: unavailable"
for fam in br_payment_checks_total br_saga_consumed_total br_saga_dlq_total br_outbox_unsent \
  br_payment_confirm_seconds_bucket br_payment_confirm_p99_seconds; do
  grep -q "^$fam" <<<"$m" || fail "metrics: no $fam"
done
# the distributed exposition, payments families included, passes promtool
# (61-promtool.sh checks the embedded one; here events are none, so only
# promtool's own rules apply)
if command -v promtool >/dev/null; then
  printf '%s\n' "$m" | promtool check metrics >"$dir/prom.log" 2>&1 ||
    { cat "$dir/prom.log" >&2; fail "promtool check metrics"; }
  [ ! -s "$dir/prom.log" ] || { cat "$dir/prom.log" >&2; fail "promtool printed problems"; }
else
  echo "77-webhook-facts: promtool missing, exposition not checked (scripts/install-deps.sh)" >&2
fi
echo "77-webhook-facts: passed (rotation, tolerance, dedupe, outbox row, 503 while PostgreSQL is away, metrics, refused flags)"
