#!/usr/bin/env bash
# 80-browser.sh -- the web front end in a real browser (issue 14): Debian's
# Chromium driven by playwright-core, against the release binary serving the
# pages itself on 127.0.0.1 (tests/web/README.md lists the tests):
#   a full purchase through the waiting room, a sold-out event, a declined
#   card then a good one, a hold expiring on screen, an organizer creating an
#   event and watching the dashboard while a crowd of API users buys, and
#   axe-core on every page (no serious or critical violation).
# Installs what is missing: the chromium package (apt) and the npm packages
# pinned in tests/web/package-lock.json (npm ci into tests/web/node_modules).
# Screenshots of every step and each page's console go to $BR_WEB_ARTIFACTS
# (default build/browser-artifacts/, printed); the server's log beside them.
# usage: 80-browser.sh ASAN_BUILD RELEASE_BUILD [test name...]
#        (BR_TEST_KEEP=1 keeps the server's data dir; BR_WEB_README_SHOTS=1 copies the
#        README's screenshots into docs/screenshots/; BR_WEB_DEVSERVE=1, for development
#        only, serves web/ from the work tree through tests/web/lib/devserve.mjs)
set -euo pipefail
cd "$(dirname "$0")/../.."
rel=${2:-build}
shift $(($# < 2 ? $# : 2))
bin=$PWD/$rel/bookingrush
fail() { echo "80-browser: FAIL: $*" >&2; exit 1; }
[ -x "$bin" ] || fail "no release binary at $bin (make build)"
command -v node >/dev/null && command -v npm >/dev/null ||
  fail "node and npm are missing: scripts/install-deps.sh installs them"

# ---- what the tests need ----
if [ ! -x /usr/bin/chromium ]; then
  echo "80-browser: installing Debian's chromium"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive timeout 600 $SUDO apt-get install -y -qq -o DPkg::Lock::Timeout=300 \
    --no-install-recommends chromium >/dev/null
fi
web=$PWD/tests/web
# npm ci once per lock file: the copy in node_modules says which lock it installed.
if ! cmp -s "$web/package-lock.json" "$web/node_modules/.br-installed-lock.json"; then
  echo "80-browser: npm ci in tests/web (playwright-core, axe-core)"
  (cd "$web" && timeout 300 npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  cp "$web/package-lock.json" "$web/node_modules/.br-installed-lock.json"
fi

art=$(mkdir -p "${BR_WEB_ARTIFACTS:-$PWD/build/browser-artifacts}" && cd "${BR_WEB_ARTIFACTS:-$PWD/build/browser-artifacts}" && pwd)
rm -rf "${art:?}"/*
echo "80-browser: screenshots and logs in $art"

# ---- the server ----
d=$(mktemp -d /tmp/br-browser.XXXXXX)
pid=""
devpid=""
cleanup() {
  if [ -n "$devpid" ]; then kill "$devpid" 2>/dev/null || true; wait "$devpid" 2>/dev/null || true; fi
  if [ -n "$pid" ]; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  cp "$d/log" "$art/server.log" 2>/dev/null || true
  if [ -n "${BR_TEST_KEEP:-}" ]; then echo "80-browser: kept $d"; else rm -rf "$d"; fi
}
trap cleanup EXIT

admin=admin@web.test:browser-admin-pw
# scrypt 2^10: registrations and sign-ins cost milliseconds; no per-address rate limit (the crowd
# comes from one address); a 50 ms admitter tick so passes come at once.
"$bin" serve --demo --bind 127.0.0.1 --port 0 --port-file "$d/port" --data-dir "$d/data" \
  --admin "$admin" --scrypt-log2n 10 --rate-limit-ip 0 --tick-ms 50 --sse-keepalive-s 5 \
  --log-level warn >"$d/log" 2>&1 &
pid=$!
for _ in $(seq 200); do [ -s "$d/port" ] && break; sleep 0.05; done
[ -s "$d/port" ] || { tail -20 "$d/log" >&2; fail "the server wrote no port file"; }
base=http://127.0.0.1:$(cat "$d/port")
for _ in $(seq 200); do curl -sf "$base/readyz" >/dev/null && break; sleep 0.05; done
curl -sf "$base/readyz" >/dev/null || { tail -20 "$d/log" >&2; fail "the server is not ready"; }
if [ -n "${BR_WEB_DEVSERVE:-}" ]; then
  # Development only: web/ from the work tree through tests/web/lib/devserve.mjs, the API behind it.
  node "$web/lib/devserve.mjs" "$PWD/web" "$(cat "$d/port")" "$d/devport" >>"$d/log" 2>&1 &
  devpid=$!
  for _ in $(seq 100); do [ -s "$d/devport" ] && break; sleep 0.05; done
  base=http://127.0.0.1:$(cat "$d/devport")
fi
ctype=$(curl -s -o /dev/null -w '%{http_code} %{content_type}' "$base/")
case $ctype in
  "200 text/html"*) ;;
  *) fail "GET / answers '$ctype', not the page (text/html)";;
esac

# ---- the tests (each has its own time limit; all of them at most 4 minutes) ----
rc=0
BR_WEB_BASE=$base BR_WEB_ADMIN=$admin BR_WEB_ARTIFACTS=$art \
  timeout -k 10 240 node "$web/run.mjs" "$@" || rc=$?
if [ $rc != 0 ]; then
  echo "80-browser: server log (last lines):" >&2
  tail -15 "$d/log" >&2
  fail "browser tests failed (exit $rc); screenshots and console logs in $art"
fi
echo "80-browser: passed; screenshots in $art"
# BR_WEB_README_SHOTS=1: refresh the README's screenshots (docs/screenshots/) from this run.
if [ -n "${BR_WEB_README_SHOTS:-}" ]; then
  mkdir -p docs/screenshots
  while read -r from to; do
    [ -f "$art/$from" ] && cp "$art/$from" "docs/screenshots/$to"
  done <<'LIST'
10-purchase/01-event-page.png buyer-1-event.png
10-purchase/02-waiting-room.png buyer-2-waiting-room.png
10-purchase/03-pass-choose-seats.png buyer-3-choose-seats.png
10-purchase/04-hold-payment.png buyer-4-hold-payment.png
10-purchase/05-confirmation.png buyer-5-confirmation.png
30-declined-card/01-card-declined.png buyer-card-declined.png
60-accessibility/04-phone-hold.png buyer-phone-hold.png
50-organizer-dashboard/05-dashboard-after.png organizer-dashboard.png
LIST
  echo "80-browser: docs/screenshots/ refreshed"
fi
