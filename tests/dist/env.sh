#!/usr/bin/env bash
# tests/dist/env.sh -- the distributed deployment's servers for a test: one
# redis-server (tests/fixtures/redis.sh) and one PostgreSQL 15 cluster
# (tests/fixtures/pg.sh when present, else started here the same way: run
# as the `postgres` user, fsync off: a test fixture, never a benchmark), both
# on free 127.0.0.1 ports, their files under DIR.
#
#   env.sh start DIR   starts both; writes DIR/env (BR_TEST_DIST, BR_TEST_PG,
#                      BR_REDIS_DIR) for `source`, and prints it
#   env.sh stop DIR    stops both (no error for what is already down)
#   env.sh pg-stop DIR / pg-start DIR
#                      stops PostgreSQL (fast shutdown) / starts it again with
#                      the same options and data (a test of PostgreSQL away)
#
# BR_TEST_PG names the `postgres` database: the HTTP harness creates one
# database per server start from it (tests/http/client.h). Installs
# redis-server / postgresql-15 with apt-get only when they are missing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
[ $# -eq 2 ] || { sed -n '2,17p' "$0" >&2; exit 2; }
cmd=$1 dir=$2
pgbin=/usr/lib/postgresql/15/bin

pg_start() {
  if [ ! -x "$pgbin/initdb" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql-15 \
      >/dev/null
  fi
  # Its own directory under /tmp, owned by postgres (DIR's parents may be
  # closed to that user); DIR/pgdata remembers it.
  local data
  data=$(mktemp -d /tmp/br-pg-dist.XXXXXX)
  echo "$data" >"$dir/pgdata"
  chown postgres:postgres "$data"
  chmod 700 "$data"
  runuser -u postgres -- "$pgbin/initdb" -D "$data/db" -U postgres --auth=trust -E UTF8 \
    --no-locale >"$data/initdb.log" 2>&1 || { cat "$data/initdb.log" >&2; return 1; }
  for _ in 1 2 3 4 5 6 7 8; do
    local p=$((20000 + RANDOM % 30000))
    (echo >"/dev/tcp/127.0.0.1/$p") 2>/dev/null && continue # taken
    if runuser -u postgres -- "$pgbin/pg_ctl" -D "$data/db" -w -t 60 -l "$data/server.log" \
        -o "-p $p -k $data -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300" \
        start >/dev/null 2>&1; then
      echo "$p" >"$dir/pg.port"
      return 0
    fi
  done
  cat "$data/server.log" >&2
  return 1
}

pg_stop() {
  [ -s "$dir/pgdata" ] || return 0
  local data
  data=$(cat "$dir/pgdata")
  case $data in
    /tmp/br-pg-dist.*)
      if [ -f "$data/db/postmaster.pid" ]; then
        runuser -u postgres -- "$pgbin/pg_ctl" -D "$data/db" -m immediate -w stop \
          >/dev/null 2>&1 || true
      fi
      rm -rf "$data"
      ;;
  esac
  rm -f "$dir/pgdata"
}

case $cmd in
  start)
    mkdir -p "$dir"
    redis=$("$here/../fixtures/redis.sh" start "$dir/redis")
    if [ -x "$here/../fixtures/pg.sh" ]; then
      pg=$("$here/../fixtures/pg.sh" start "$dir/pgstate")
    else # until tests/fixtures/pg.sh (branch h/pg) is merged
      pg_start
      pg=postgresql://postgres@127.0.0.1:$(cat "$dir/pg.port")/postgres
    fi
    {
      echo "BR_TEST_DIST=$redis"
      echo "BR_TEST_PG=$pg"
      echo "BR_REDIS_DIR=$dir/redis"
      echo "BR_ENV_DIR=$dir"
    } >"$dir/env"
    cat "$dir/env"
    ;;
  stop)
    "$here/../fixtures/redis.sh" stop "$dir/redis" || true
    if [ -x "$here/../fixtures/pg.sh" ]; then
      "$here/../fixtures/pg.sh" stop "$dir/pgstate" || true
    fi
    pg_stop
    ;;
  pg-stop | pg-start)
    # The cluster's data dir: pg.sh's (STATE/datadir) or ours (DIR/pgdata).
    if [ -s "$dir/pgstate/datadir" ]; then db=$(cat "$dir/pgstate/datadir")/db
    else db=$(cat "$dir/pgdata")/db; fi
    if [ "$cmd" = pg-stop ]; then
      runuser -u postgres -- "$pgbin/pg_ctl" -D "$db" -m fast -w stop >/dev/null
    else
      # postmaster.opts: the command line it last ran with, words quoted.
      opts=$(sed -e 's|^[^ ]* ||' "$db/postmaster.opts")
      runuser -u postgres -- "$pgbin/pg_ctl" -D "$db" -w -t 60 -l "$db/../restart.log" \
        -o "$opts" start >/dev/null
    fi
    ;;
  *) sed -n '2,17p' "$0" >&2; exit 2 ;;
esac
