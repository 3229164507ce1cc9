#!/usr/bin/env bash
# serve_start.sh -- `bookingrush serve --backend distributed` at start, as
# an operator meets it, against the pg_server fixture and a redis-server of
# its own (free 127.0.0.1 port, no persistence, stopped on exit):
#
#   schema   a database never migrated, and one migrated but missing a
#            migration row (an older schema that still has the tables):
#            the server refuses to start (exit non-zero) saying to run
#            `bookingrush migrate --pg URL`, and Redis is left untouched
#   demo     two processes started at the same moment with --demo, a few
#            rounds on a fresh database and Redis each: exactly one event
#            in PostgreSQL and in Redis (both processes name it)
#
# usage: serve_start.sh BOOKINGRUSH  (BR_TEST_PG_STATE names the fixture)
set -uo pipefail
bin=$1
base=$(cat "$BR_TEST_PG_STATE/url")
work=$(mktemp -d /tmp/br-serve-start.XXXXXX)
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
ok() { echo "ok: $*"; }
db=t_serve_start_$$
url=${base%/postgres}/$db
pids=()

cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  if [ -f "$work/redis.pid" ]; then kill "$(cat "$work/redis.pid")" 2>/dev/null; fi
  psql -q "$base" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

started=0
for _ in $(seq 1 20); do
  rport=$((20000 + RANDOM % 40000))
  if redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
       --pidfile "$work/redis.pid" --logfile "$work/redis.log" >/dev/null 2>&1; then
    for _ in $(seq 1 100); do
      if redis-cli -p "$rport" ping >/dev/null 2>&1; then started=1; break; fi
      sleep 0.02
    done
  fi
  [ $started = 1 ] && break
done
[ $started = 1 ] || { echo "serve_start: could not start redis-server" >&2; exit 1; }
rurl=redis://127.0.0.1:$rport

fresh() {
  psql -q "$base" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" >/dev/null 2>&1
  redis-cli -p "$rport" flushall >/dev/null
}

# One server in the background; its pid in $! of the caller's shell.
serve() { # name extra-args...
  local name=$1
  shift
  mkdir -p "$work/$name"
  "$bin" serve --backend distributed --redis "$rurl" --pg "$url" --port 0 \
    --port-file "$work/$name/port" --data-dir "$work/$name" --start-attempts 1 \
    --people 2000 --threads 2 --hash-threads 1 --log-level warn "$@" \
    >"$work/$name/out" 2>"$work/$name/err" &
}

# A start that must be refused: exit non-zero within 60 s, the message said.
refused() { # what
  serve refused
  local p=$!
  pids+=("$p")
  for _ in $(seq 1 600); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$p" 2>/dev/null; then
    fail "$1: the server started (still running after 60 s)"
    return
  fi
  wait "$p"
  local rc=$?
  local keys
  keys=$(redis-cli -p "$rport" dbsize)
  if [ $rc != 0 ] && grep -q 'bookingrush migrate --pg URL' "$work/refused/err" && [ "$keys" = 0 ]; then
    ok "$1: refused (exit $rc), says to run bookingrush migrate --pg URL, Redis untouched"
  else
    fail "$1: exit $rc, $keys Redis keys, stderr: $(tail -c 600 "$work/refused/err")"
  fi
}

# --- schema ----------------------------------------------------------------
fresh
refused "never migrated"

fresh
"$bin" migrate --pg "$url" >/dev/null 2>&1 || fail "migrate"
last=$(psql -tA "$url" -c "SELECT version FROM schema_migrations ORDER BY version DESC LIMIT 1")
psql -q "$url" -c "DELETE FROM schema_migrations WHERE version = '$last'" >/dev/null
refused "a migration row removed ($last)"

# --- demo ------------------------------------------------------------------
rounds=${BR_SERVE_START_ROUNDS:-3}
for round in $(seq 1 "$rounds"); do
  fresh
  "$bin" migrate --pg "$url" >/dev/null 2>&1 || fail "migrate"
  serve "a$round" --demo
  pa=$!
  serve "b$round" --demo
  pb=$!
  pids+=("$pa" "$pb")
  for _ in $(seq 1 600); do
    [ -s "$work/a$round/port" ] && [ -s "$work/b$round/port" ] && break
    kill -0 "$pa" 2>/dev/null && kill -0 "$pb" 2>/dev/null || break
    sleep 0.1
  done
  pg_events=$(psql -tA "$url" -c "SELECT count(*) FROM events")
  redis_events=$(redis-cli -p "$rport" hget 'br:{cat}:cat' events)
  ea=$(grep -o 'events/[0-9]*' "$work/a$round/out" | head -1)
  eb=$(grep -o 'events/[0-9]*' "$work/b$round/out" | head -1)
  kill "$pa" "$pb" 2>/dev/null
  wait "$pa" "$pb" 2>/dev/null
  if [ "$pg_events" = 1 ] && [ "$redis_events" = 1 ] && [ "$ea" = events/1 ] && [ "$eb" = events/1 ]; then
    ok "demo round $round: two processes at once, one event (both name it)"
  else
    fail "demo round $round: $pg_events event(s) in PostgreSQL, '$redis_events' in Redis," \
      "processes name '$ea' '$eb'; stderr: $(tail -c 400 "$work/a$round/err") /" \
      "$(tail -c 400 "$work/b$round/err")"
  fi
done

exit $((failures > 0))
