#!/usr/bin/env bash
# migrate_cmd.sh -- `bookingrush migrate` as an operator runs it, against the
# fixture's server: --help, a database from --pg and from BR_PG_URL, what it
# prints the first and the second time, two at once, and the exit status of
# a server that is not there and of a missing URL.
# usage: migrate_cmd.sh BOOKINGRUSH  (BR_TEST_PG_STATE names the fixture)
set -uo pipefail
bin=$1
base=$(cat "$BR_TEST_PG_STATE/url")
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
ok() { echo "ok: $*"; }

psql -q "$base" -c "DROP DATABASE IF EXISTS t_migrate_cmd WITH (FORCE)" -c "CREATE DATABASE t_migrate_cmd"
url=${base%/postgres}/t_migrate_cmd

out=$("$bin" migrate --help); rc=$?
[ $rc = 0 ] && grep -q -- "--pg URL" <<<"$out" && grep -q BR_PG_URL <<<"$out" \
  && ok "--help" || fail "--help: exit $rc"

out=$("$bin" migrate --pg "$url" 2>/dev/null); rc=$?
[ $rc = 0 ] && grep -q '^applied 0001_init$' <<<"$out" && grep -q '^migrate: [1-9][0-9]* applied' <<<"$out" \
  && ok "first run applies: $(tr '\n' ' ' <<<"$out")" || fail "first run: exit $rc, '$out'"

out=$(BR_PG_URL=$url "$bin" migrate 2>/dev/null); rc=$?
[ $rc = 0 ] && grep -q '^migrate: 0 applied, schema up to date$' <<<"$out" \
  && ok "second run (BR_PG_URL) applies nothing" || fail "second run: exit $rc, '$out'"

psql -q "$base" -c "DROP DATABASE t_migrate_cmd WITH (FORCE)" -c "CREATE DATABASE t_migrate_cmd"
"$bin" migrate --pg "$url" >"$BR_TEST_PG_STATE/m1.out" 2>/dev/null & p1=$!
"$bin" migrate --pg "$url" >"$BR_TEST_PG_STATE/m2.out" 2>/dev/null & p2=$!
wait $p1; r1=$?; wait $p2; r2=$?
n=$(cat "$BR_TEST_PG_STATE/m1.out" "$BR_TEST_PG_STATE/m2.out" | grep -c '^applied ')
want=$(psql -tA "$url" -c "SELECT count(*) FROM schema_migrations")
[ $r1 = 0 ] && [ $r2 = 0 ] && [ "$n" = "$want" ] \
  && ok "two at once: $n migration(s) applied once between them" || fail "two at once: $r1 $r2, $n applied, $want recorded"

"$bin" migrate --pg "postgresql://postgres@127.0.0.1:1/x" >/dev/null 2>&1; rc=$?
[ $rc = 1 ] && ok "no server: exit 1" || fail "no server: exit $rc"
env -u BR_PG_URL "$bin" migrate >/dev/null 2>&1; rc=$?
[ $rc = 2 ] && ok "no URL: exit 2 (usage)" || fail "no URL: exit $rc"

exit $((failures > 0))
