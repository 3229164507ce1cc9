#!/usr/bin/env bash
# /metrics of a live server (release build, after some traffic so every
# metric family has samples) passes `promtool check metrics` (HELP and TYPE
# on every family, Prometheus naming rules), every sample belongs to a
# family with HELP and TYPE, no family is empty, and the usual process
# metrics and the build-info metric are there with sane values (the
# version and commit are the ones `bookingrush --version` prints).
# The operators' files (issue 14) follow the server: `promtool check rules`
# passes on deploy/prometheus/alerts.yml, and every metric name used in it
# and in the Grafana dashboard (deploy/grafana/bookingrush.json, its
# expressions and variables) is in this live /metrics -- or, for the
# distributed deployment's own metrics, which an embedded server does not
# export, has a "# TYPE" line in server/*.c.
#
# Usage: scripts/test.d/61-promtool.sh ASAN_BUILD_DIR RELEASE_BUILD_DIR
#        (BR_METRICS_FILE=FILE checks a saved exposition instead of a live server)
set -euo pipefail
cd "$(dirname "$0")/../.."
rel=${2:-build}
bin=$rel/bookingrush
command -v promtool >/dev/null || { echo "promtool missing: scripts/install-deps.sh installs it" >&2; exit 1; }
tmp=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
fail() { echo "61-promtool: FAIL: $*" >&2; exit 1; }

if [ -n "${BR_METRICS_FILE:-}" ]; then
  cp "$BR_METRICS_FILE" "$tmp/metrics"
else
  "$bin" serve --demo --port 0 --port-file "$tmp/port" --bind 127.0.0.1 --data-dir "$tmp/data" \
    >"$tmp/out" 2>"$tmp/log" &
  pid=$!
  for _ in $(seq 600); do [ -s "$tmp/port" ] && break; sleep 0.05; done
  [ -s "$tmp/port" ] || { cat "$tmp/log" >&2; fail "the server did not start"; }
  base=http://127.0.0.1:$(cat "$tmp/port")
  # Traffic: reads, a 404, a 401, a registration and a login.
  curl -sf "$base/api/v1/events" >/dev/null
  curl -sf "$base/api/v1/events/1" >/dev/null
  curl -s "$base/no/such/route" >/dev/null
  curl -s "$base/api/v1/auth/me" >/dev/null
  curl -sf -X POST "$base/api/v1/auth/register" -H 'Content-Type: application/json' \
    -d '{"email":"prom@example.com","password":"correct horse battery","name":"Prom"}' >/dev/null
  curl -sf -X POST "$base/api/v1/auth/login" -H 'Content-Type: application/json' \
    -d '{"email":"prom@example.com","password":"correct horse battery"}' >/dev/null
  curl -sf "$base/metrics" >/dev/null
  curl -sf "$base/metrics" -o "$tmp/metrics"
fi

# promtool: syntax, HELP on every family, naming and unit rules.
promtool check metrics <"$tmp/metrics" >"$tmp/promtool" 2>&1 || {
  cat "$tmp/promtool" >&2; fail "promtool check metrics"; }
[ ! -s "$tmp/promtool" ] || { cat "$tmp/promtool" >&2; fail "promtool printed problems"; }

# Our own rules: every sample in a family with HELP and TYPE, every family has samples.
awk '
  /^# HELP / { help[$3] = 1; next }
  /^# TYPE / { type[$3] = $4; order[++n] = $3; next }
  /^#/ || /^$/ { next }
  {
    name = $1; sub(/\{.*/, "", name)
    fam = name
    if (!(fam in type)) { f = fam; sub(/_(bucket|sum|count)$/, "", f); if ((f in type) && type[f] == "histogram") fam = f }
    if (!(fam in type)) { print "no TYPE for " name; bad = 1 }
    if (!(fam in help)) { print "no HELP for " name; bad = 1 }
    samples[fam]++
  }
  END {
    for (i = 1; i <= n; i++) if (!(order[i] in samples)) { print "no samples in " order[i]; bad = 1 }
    exit bad
  }' "$tmp/metrics" || fail "families without HELP, TYPE or samples (above)"

# The process metrics and the build info.
value() { awk -v m="$1" '$1 == m { print $2 }' "$tmp/metrics"; }
for m in process_cpu_seconds_total process_resident_memory_bytes process_virtual_memory_bytes \
         process_open_fds process_max_fds process_start_time_seconds; do
  [ -n "$(value "$m")" ] || fail "$m missing"
done
now=$(date +%s)
awk -v s="$(value process_start_time_seconds)" -v now="$now" \
  'BEGIN { exit !(s > now - 86400 && s <= now + 5) }' || fail "process_start_time_seconds $(value process_start_time_seconds) is not a recent time"
awk -v r="$(value process_resident_memory_bytes)" -v f="$(value process_open_fds)" \
  'BEGIN { exit !(r > 1048576 && f >= 3) }' || fail "implausible RSS or open fds"
read -r version commit < <("$bin" --version | sed -n 's/^bookingrush \([^ ]*\) (commit \([^)]*\))$/\1 \2/p')
grep -qx "br_build_info{version=\"$version\",commit=\"$commit\"} 1" "$tmp/metrics" ||
  fail "br_build_info does not say version $version commit $commit: $(grep br_build_info "$tmp/metrics")"
echo "61-promtool: /metrics passes promtool ($(grep -c '^# TYPE' "$tmp/metrics") families), process and build info present"

# The alert rules and the dashboard (issue 14).
alerts=deploy/prometheus/alerts.yml
dash=deploy/grafana/bookingrush.json
promtool check rules "$alerts" >"$tmp/rules" 2>&1 || { cat "$tmp/rules" >&2; fail "promtool check rules $alerts"; }
command -v jq >/dev/null || fail "jq missing: scripts/install-deps.sh installs it"
jq -r '.panels[].targets[].expr, .templating.list[].query | strings' "$dash" >"$tmp/dash-exprs" ||
  fail "$dash is not the dashboard JSON"
[ "$(wc -l <"$tmp/dash-exprs")" -ge 10 ] || fail "read only $(wc -l <"$tmp/dash-exprs") expressions from $dash"
# The names /metrics has: families (HELP/TYPE) and the samples' own (_bucket, _sum, _count).
{ awk '/^# (HELP|TYPE) / { print $3; next } /^[a-z]/ { n = $1; sub(/\{.*/, "", n); print n }' "$tmp/metrics"; } |
  sort -u >"$tmp/live-names"
checked=0
for src in "$alerts" "$tmp/dash-exprs"; do
  for m in $(grep -v '^[[:space:]]*#' "$src" | grep -oE '\b(br|process)_[a-z0-9_]+' | sort -u); do
    checked=$((checked + 1))
    grep -qx "$m" "$tmp/live-names" && continue
    fam=$(echo "$m" | sed -E 's/_(bucket|sum|count)$//')
    grep -qF "# TYPE $fam " server/*.c ||
      fail "$m (in ${src/$tmp\/dash-exprs/$dash}) is neither in a live /metrics nor written by server/*.c"
    echo "61-promtool: $m is the distributed deployment's (server/*.c), not in the embedded /metrics"
  done
done
[ "$checked" -ge 10 ] || fail "found only $checked metric names in $alerts and $dash"
echo "61-promtool: $alerts passes promtool check rules; its metrics and $dash's ($checked names) are the server's"
