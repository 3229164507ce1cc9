#!/usr/bin/env bash
# 70-dist-http.sh -- the distributed deployment under test: starts a
# redis-server and a PostgreSQL (tests/dist/env.sh), then
#   1. the HTTP suites flow, errors, race, crash, unchanged, and issue 13's
#      waiting_room and wr_sse (modes, the door, sold out and gate changes on
#      open streams, a stream as presence), each server start
#      being two `serve --backend distributed` processes on a fresh database
#      with requests round-robin over both (tests/http/client.h, BR_TEST_DIST);
#   2. tests/dist/test_dist: last seats over both processes, kill -9 of one
#      during load, Redis restarted empty, the projection, a trace replayed;
#   3. two processes behind nginx with the shipped deploy/nginx/bookingrush.conf
#      (its ports rewritten): requests and an SSE pass through it, and one
#      process killed without a refused GET;
# and stops everything, also on failure. Runs the sanitized build.
# usage: 70-dist-http.sh ASAN_BUILD RELEASE_BUILD
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build-asan}
bin=$PWD/$build/bookingrush
# (for a quicker look: DIST_HTTP_SUITES="flow", DIST_PROPERTIES=0)
suites=${DIST_HTTP_SUITES-"flow errors race crash waiting_room wr_sse"}

if ! grep -q -- '--backend' <<<"$("$bin" serve --help 2>&1)"; then
  echo "70-dist-http: $bin has no --backend (the distributed server is not built in)" >&2
  exit 1
fi

dir=$(mktemp -d /tmp/br-dist-http.XXXXXX)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  if [ -s "$dir/nginx.pid" ]; then kill "$(cat "$dir/nginx.pid")" 2>/dev/null || true; fi
  tests/dist/env.sh stop "$dir/env.d" >/dev/null 2>&1 || true
  if [ -n "${BR_TEST_KEEP:-}" ]; then echo "70-dist-http: kept $dir"; else rm -rf "$dir"; fi
}
trap cleanup EXIT
tests/dist/env.sh start "$dir/env.d" >/dev/null
set -a
# shellcheck disable=SC1091
. "$dir/env.d/env"
set +a
export BR_REDIS_FIXTURE=$PWD/tests/fixtures/redis.sh
export BR_ENV_SH=$PWD/tests/dist/env.sh
echo "70-dist-http: Redis $BR_TEST_DIST, PostgreSQL $BR_TEST_PG"

show_logs() { # what failed first, then the end of the output
  grep -E 'want |error:|FAILED|lost|unexpected|http suite:|"level":"(error|fatal)"|Sanitizer|runtime error' "$1" | head -40 >&2 || true
  tail -30 "$1" >&2
}

# Every part runs, failed or not; the script fails at the end if one did.
failed=()
for t in $suites; do
  s0=$(date +%s)
  if ! timeout -k 10 600 "$build/tests/http/test_http_$t" "$bin" >"$dir/http-$t.log" 2>&1; then
    show_logs "$dir/http-$t.log"
    echo "70-dist-http: http suite ($t) FAILED against two distributed processes" >&2
    failed+=("http-$t")
    continue
  fi
  echo "dist http $t: passed (2 processes, $(($(date +%s) - s0)) s)"
done

if [ "${DIST_PROPERTIES:-1}" = 1 ]; then
  s0=$(date +%s)
  if ! timeout -k 10 900 "$build/tests/dist/test_dist" "$bin" >"$dir/dist.log" 2>&1; then
    show_logs "$dir/dist.log"
    echo "70-dist-http: tests/dist FAILED" >&2
    failed+=(test_dist)
  else
    grep -E '^(round|[0-9]+ (acknowledged|requests|of)|sold|projected|PostgreSQL away|Redis |a webhook)' \
      "$dir/dist.log" ||
      true
    echo "dist properties: passed ($(($(date +%s) - s0)) s)"
  fi
fi

# ---- behind nginx ----
trap 'echo "70-dist-http: the nginx part failed at line $LINENO" >&2
      tail -5 "$dir"/n*/log "$dir"/nginx-*.log >&2 2>/dev/null || true' ERR
PATH=$PATH:/usr/sbin
if ! command -v nginx >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx >/dev/null
fi
db=brt_nginx_$$
psql -X -q -v ON_ERROR_STOP=1 -d "$BR_TEST_PG" -c "CREATE DATABASE $db"
pg=${BR_TEST_PG%/*}/$db
"$bin" migrate --pg "$pg" >"$dir/migrate.log" 2>&1
redis-cli -u "$BR_TEST_DIST" flushall >/dev/null
ports=()
for i in 0 1; do
  mkdir -p "$dir/n$i"
  if [ "$i" = 1 ] && [ -f "$dir/n0/data/secrets.json" ]; then
    mkdir -p "$dir/n1/data" && cp "$dir/n0/data/secrets.json" "$dir/n1/data/"
  fi
  "$bin" serve --backend distributed --redis "$BR_TEST_DIST" --pg "$pg" --bind 127.0.0.1 \
    --port 0 --port-file "$dir/n$i/port" --data-dir "$dir/n$i/data" \
    --admin admin@nginx.test:admin-password --jwt-secret nginx-test-secret --tick-ms 20 \
    --trusted-proxies 127.0.0.1/32 --sse-keepalive-s 1 --scrypt-log2n 10 \
    >"$dir/n$i/log" 2>&1 &
  pids+=($!)
  disown # its kill below is on purpose: no "Killed" from the shell
  for _ in $(seq 600); do [ -s "$dir/n$i/port" ] && break; sleep 0.05; done
  ports+=("$(cat "$dir/n$i/port")")
  for _ in $(seq 600); do
    curl -sf "http://127.0.0.1:${ports[$i]}/readyz" >/dev/null && break
    sleep 0.05
  done
done
lb=
for _ in 1 2 3 4 5 6 7 8; do
  p=$((20000 + RANDOM % 30000))
  (echo >"/dev/tcp/127.0.0.1/$p") 2>/dev/null && continue
  sed -e "s|listen 127.0.0.1:8080;|listen 127.0.0.1:$p;|" \
    -e "s|127.0.0.1:8081|127.0.0.1:${ports[0]}|" -e "s|127.0.0.1:8082|127.0.0.1:${ports[1]}|" \
    -e "s|^pid .*|pid $dir/nginx.pid;|" -e "s|/var/log/nginx/|$dir/nginx-|" \
    deploy/nginx/bookingrush.conf >"$dir/nginx.conf"
  if nginx -q -c "$dir/nginx.conf" 2>"$dir/nginx.start"; then lb=http://127.0.0.1:$p; break; fi
done
[ -n "$lb" ] || { cat "$dir/nginx.start" >&2; echo "70-dist-http: nginx did not start" >&2; exit 1; }
for _ in $(seq 100); do curl -sf "$lb/readyz" >/dev/null && break; sleep 0.05; done

json='Content-Type: application/json'
admin=$(curl -sf -X POST "$lb/api/v1/auth/login" -H "$json" \
  -d '{"email":"admin@nginx.test","password":"admin-password"}' | jq -r .access_token)
event=$(curl -sf -X POST "$lb/api/v1/events" -H "$json" -H "Authorization: Bearer $admin" \
  -d '{"name":"Proxy Night","venue":"Hall","per_user_limit":4,"requires_pass":true,
       "queue":{"max_active":100,"admit_per_tick":50,"pass_ttl_s":120},"hold_ttl_s":600,
       "zones":[{"name":"Floor","capacity":10,"price_minor":1000,"currency":"EUR"}]}' | jq .id)
curl -sf -X POST "$lb/api/v1/auth/register" -H "$json" \
  -d '{"email":"ada@nginx.test","password":"correct horse battery","name":"Ada"}' >/dev/null
token=$(curl -sf -X POST "$lb/api/v1/auth/login" -H "$json" \
  -d '{"email":"ada@nginx.test","password":"correct horse battery"}' | jq -r .access_token)
auth="Authorization: Bearer $token"
curl -sf -X POST "$lb/api/v1/queue/join" -H "$auth" -H "$json" -d "{\"event_id\":$event}" >/dev/null
# The pass arrives on the stream through the proxy (unbuffered), within 10 s.
(curl -sN --max-time 10 "$lb/api/v1/queue/position/$event/stream" -H "$auth" || true) |
  grep -q '^event: pass'
pass=$(curl -sf "$lb/api/v1/queue/position/$event" -H "$auth" | jq -r .pass.token)
booking=$(curl -sf -X POST "$lb/api/v1/bookings/reserve" -H "$auth" -H "X-Queue-Pass: $pass" \
  -H 'Idempotency-Key: nginx-1' -H "$json" -d "{\"event_id\":$event,\"zone_id\":1,\"quantity\":2}" |
  jq .id)
# X-Forwarded-For: a client on 127.0.0.2 is seen as 127.0.0.2 by the process
# behind the proxy (which connects from 127.0.0.1, trusted), as the
# per-address rate limit needs.
curl -s --interface 127.0.0.2 "$lb/api/v1/events/987654321" >/dev/null
sleep 0.2
grep -h '/api/v1/events/987654321' "$dir"/n*/log | grep -q '"client":"127.0.0.2"'
# One process killed: every GET still answered (nginx goes to the other).
kill -9 "${pids[0]}"
for i in $(seq 20); do
  curl -sf "$lb/api/v1/bookings/$booking" -H "$auth" | jq -e '.status == "held"' >/dev/null || {
    echo "70-dist-http: GET $i through nginx failed after one process was killed" >&2; exit 1; }
done
echo "nginx: the shipped config in front of two processes: login, event, SSE pass, reserve," \
  "X-Forwarded-For; one process killed, 20 GETs answered"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "70-dist-http: FAILED: ${failed[*]}" >&2
  exit 1
fi
