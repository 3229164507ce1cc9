#!/usr/bin/env bash
# 55-pg.sh -- PostgreSQL, the distributed deployment's record: how many
# reserve entries per second the recorder's projection writes
# (tests/pg/bench_pg_project: br_pg_project, batches of 256, one event, one
# connection), next to a plain single-row INSERT rate measured by pgbench on
# the same server in the same run (8 clients, prepared statements), and the
# ratio. Both run on a throwaway server (tests/fixtures/pg.sh) with
# PostgreSQL's durable defaults (fsync and synchronous_commit on): one
# projection batch is one commit, one INSERT is one commit each.
# usage: 55-pg.sh RELEASE_BUILD
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
bench=$build/tests/pg/bench_pg_project
entries=${PG_BENCH_ENTRIES:-40000}
seconds=${PG_BENCH_SECONDS:-10}
pgbench=/usr/lib/postgresql/15/bin/pgbench
state=$(mktemp -d)
trap 'tests/fixtures/pg.sh stop "$state" >/dev/null 2>&1 || true; rm -rf "$state"' EXIT
url=$(BR_PG_DURABLE=1 tests/fixtures/pg.sh start "$state")

psql -q "$url" -c "CREATE TABLE bench_insert (id bigserial PRIMARY KEY, user_id bigint, zone_id int, quantity int)"
cat > "$state/insert.sql" <<'SQL'
\set u random(1, 1000000)
INSERT INTO bench_insert (user_id, zone_id, quantity) VALUES (:u, 1, 1);
SQL
tps=$("$pgbench" -n -M prepared -c 8 -j 2 -T "$seconds" -f "$state/insert.sql" "$url" 2>/dev/null \
      | sed -n 's/^tps = \([0-9.]*\).*/\1/p' | head -1)
line=$(BR_TEST_PG_STATE=$state "$bench" --entries "$entries" --batch 256 2>/dev/null | grep '^pg projection')
rate=$(sed -n 's/.*: \([0-9]*\) entries\/s.*/\1/p' <<<"$line")
echo "pgbench single-row INSERT, 8 clients, durable: ${tps%.*} tps"
echo "$line"
awk -v r="$rate" -v t="$tps" 'BEGIN { printf "projection / plain INSERT: %.0f%% (entries per second over inserts per second)\n", 100 * r / t }'
