#!/usr/bin/env bash
# The HTTP suite once more, against the release binary (ctest ran it against
# the sanitized one), and `make run`'s own start-up: serve --demo on a free
# port with a fresh data dir answers with the demo event, the purchase walk-
# through of the README goes through, and SIGTERM stops it
# cleanly with a journal that replays.
#
# Usage: scripts/test.d/30-http-release.sh ASAN_BUILD_DIR RELEASE_BUILD_DIR
set -euo pipefail
cd "$(dirname "$0")/../.."
rel=${2:-build}
bin=$rel/bookingrush
for t in flow errors race crash payments framing ops capacity disk clock auth; do
  "$rel/tests/http/test_http_$t" "$bin" >/dev/null 2>"$rel/http-$t.log" || {
    cat "$rel/http-$t.log" >&2; echo "http suite ($t) failed on the release build" >&2; exit 1; }
  echo "http $t: passed (release)"
done

tmp=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
abs_bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
(cd "$tmp" && exec "$abs_bin" serve --demo --port 0 --port-file "$tmp/port" --bind 127.0.0.1 \
   >"$tmp/out" 2>"$tmp/log") &
pid=$!
for _ in $(seq 600); do [ -s "$tmp/port" ] && break; sleep 0.05; done
base=http://127.0.0.1:$(cat "$tmp/port")
grep -q "demo event:" "$tmp/out"
curl -sf "$base/api/v1/events/1" | jq -e '.zones | length == 3' >/dev/null
curl -sf -X POST "$base/api/v1/auth/register" -H 'Content-Type: application/json' \
  -d '{"email":"ada@example.com","password":"correct horse battery","name":"Ada"}' >/dev/null
token=$(curl -sf -X POST "$base/api/v1/auth/login" -H 'Content-Type: application/json' \
  -d '{"email":"ada@example.com","password":"correct horse battery"}' | jq -r .access_token)
auth="Authorization: Bearer $token"
curl -sf -X POST "$base/api/v1/queue/join" -H "$auth" -H 'Content-Type: application/json' \
  -d '{"event_id":1}' >/dev/null
curl -sfN --max-time 10 "$base/api/v1/queue/position/1/stream" -H "$auth" | grep -q '^event: pass'
pass=$(curl -sf "$base/api/v1/queue/position/1" -H "$auth" | jq -r .pass.token)
booking=$(curl -sf -X POST "$base/api/v1/bookings/reserve" -H "$auth" -H "X-Queue-Pass: $pass" \
  -H 'Idempotency-Key: ada-first-try' -H 'Content-Type: application/json' \
  -d '{"event_id":1,"zone_id":1,"quantity":2}' | jq .id)
payment=$(curl -sf -X POST "$base/api/v1/payments" -H "$auth" -H 'Content-Type: application/json' \
  -d "{\"booking_id\":$booking}")
pi=$(jq -r .provider_payment_id <<<"$payment")
secret=$(jq -r .client_secret <<<"$payment")
curl -sf -X POST "$base/test-provider/v1/payment_intents/$pi/confirm" \
  -d payment_method=pm_card_visa -d client_secret="$secret" \
  | jq -e '.status == "succeeded"' >/dev/null
curl -sf "$base/api/v1/bookings/$booking" -H "$auth" | jq -e '.status == "confirmed"' >/dev/null
kill -TERM "$pid"; wait "$pid"; pid=
"$bin" replay "$tmp/data/journal" >/dev/null
echo "serve --demo: the README purchase went through; clean stop; journal replays"
