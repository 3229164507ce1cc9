#!/usr/bin/env bash
# The bookingrush binary as an operator meets it (issue 9, item 14):
#   1. --version and `version` print the version and the commit;
#   2. an unknown option in every subcommand (as `bookingrush help` lists
#      them) and at the top level: exit 2 and the one message style;
#   3. a data dir that cannot be used says what failed and why (errno text),
#      never "in use by another server";
#   4. long runs print progress on stderr: sim, a --seeds sweep, replay;
#   5. replay's report names its source and the time span it covers, and a
#      journal that ends mid-sale is "still in progress", not "NOT
#      converged", with a verdict matching the exit status (0);
#   6. rush: an unknown option is the house usage error (exit 2), and a
#      target where nothing listens is exit 3 within 5 s, saying so.
# Every check runs; the failures are listed at the end.
# Usage: cli_check.sh BOOKINGRUSH_BINARY SCENARIO_DIR
set -uo pipefail
bin=$1; scn=$2
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
ok() { echo "ok: $*"; }

# 1. version
for form in --version version; do
  out=$("$bin" $form 2>&1); rc=$?
  if [ $rc = 0 ] && [[ $out =~ ^bookingrush\ [0-9]+\.[0-9]+\.[0-9]+\ \(commit\ [0-9a-zA-Z.-]+\)$ ]]; then
    ok "$form: $out"
  else
    fail "$form: exit $rc, '$out'"
  fi
done

# 2. unknown options: every subcommand `bookingrush help` lists, and the top level
subs=$("$bin" help | awk '/^commands:/ {on = 1; next} on && /^  [a-z]/ {print $1} on && /^$/ {on = 0}' \
       | grep -v -x -e help -e version)
[ -n "$subs" ] || fail "no subcommands found in 'bookingrush help'"
for sub in $subs ""; do
  label=${sub:-(top level)}
  err=$("$bin" $sub --no-such-flag 2>&1 >/dev/null); rc=$?
  want="bookingrush${sub:+ $sub}: unknown option '--no-such-flag' (see 'bookingrush${sub:+ $sub} --help')"
  if [ $rc = 2 ] && [ "$err" = "$want" ]; then
    ok "unknown option, $label"
  else
    fail "unknown option, $label: exit $rc, stderr '$err', wanted '$want'"
  fi
done

# 3. data dir errors carry the reason
touch "$tmp/file"
err=$("$bin" serve --port 0 --bind 127.0.0.1 --data-dir "$tmp/file/data" 2>&1 >/dev/null); rc=$?
if [ $rc != 0 ] && grep -q "$tmp/file/data: Not a directory" <<<"$err"; then
  ok "data dir under a file: Not a directory"
else
  fail "data dir under a file: exit $rc, '$err'"
fi
mkdir -p "$tmp/dir/LOCK"
err=$("$bin" serve --port 0 --bind 127.0.0.1 --data-dir "$tmp/dir" 2>&1 >/dev/null); rc=$?
if [ $rc != 0 ] && grep -q "LOCK: Is a directory" <<<"$err" && ! grep -q "in use" <<<"$err"; then
  ok "unusable lock file: Is a directory"
else
  fail "unusable lock file: exit $rc, '$err'"
fi
err=$("$bin" replay "$tmp/missing.brj" 2>&1 >/dev/null); rc=$?
if [ $rc = 2 ] && grep -q "missing.brj: No such file or directory" <<<"$err"; then
  ok "replay of a missing file: No such file or directory"
else
  fail "replay of a missing file: exit $rc, '$err'"
fi

# 4. progress lines (BR_PROGRESS_MS shortens the 1 s period so the check is quick)
export BR_PROGRESS_MS=100
"$bin" sim "$scn/onsale-100k.json" --seed 1 --record "$tmp/100k.brj" >"$tmp/sim.out" 2>"$tmp/sim.err"
rc=$?
if [ $rc = 0 ] && grep -Eq '^sim: seed 1: [0-9]+% [0-9]+/100000 users arrived, .* simulated, [0-9]+ commands, 0 violations' "$tmp/sim.err"; then
  ok "sim progress: $(grep -c '^sim: ' "$tmp/sim.err") lines"
else
  fail "sim progress: exit $rc, stderr: $(head -3 "$tmp/sim.err")"
fi
BR_PROGRESS_MS=20 "$bin" sim "$scn/last-seat.json" --seeds 1..20 >/dev/null 2>"$tmp/sweep.err"; rc=$?
if [ $rc = 0 ] && grep -Eq '^sim: seeds 1\.\.20: [0-9]+% [0-9]+/20 runs, 0 failed' "$tmp/sweep.err"; then
  ok "sweep progress: $(grep -c '^sim: ' "$tmp/sweep.err") lines"
else
  fail "sweep progress: exit $rc, stderr: $(head -3 "$tmp/sweep.err")"
fi
"$bin" replay "$tmp/100k.brj" >"$tmp/rep.out" 2>"$tmp/rep.err"; rc=$?
if [ $rc = 0 ] && grep -Eq '^replay: [0-9]+% offset [0-9]+/[0-9]+ bytes, [0-9]+ records' "$tmp/rep.err"; then
  ok "replay progress: $(grep -c '^replay: ' "$tmp/rep.err") lines"
else
  fail "replay progress: exit $rc, stderr: $(head -3 "$tmp/rep.err")"
fi
unset BR_PROGRESS_MS

# 5. replay's report: source, time span, verdict
ts='[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z'
if grep -q "^replay of $tmp/100k.brj ([0-9]* bytes)" "$tmp/rep.out" &&
   grep -Eq "^  simulated     $ts \.\. $ts \([0-9.]+ [a-z]+\), [0-9]+ commands" "$tmp/rep.out" &&
   grep -q "^  verdict       ok: .*(exit 0)$" "$tmp/rep.out"; then
  ok "replay report names its source, time span and verdict"
else
  fail "replay report: $(head -3 "$tmp/rep.out")"
fi
# A journal that ends mid-sale, as a live server's does: cut the record at
# the middle of the file back to the record boundary the reader names.
size=$(stat -c %s "$tmp/100k.brj")
head -c $((size / 2)) "$tmp/100k.brj" >"$tmp/cut.brj"
at=$("$bin" replay "$tmp/cut.brj" 2>&1 >/dev/null | sed -n 's/.*truncated record at byte offset \([0-9]*\).*/\1/p')
if [ -z "$at" ]; then
  fail "could not find the torn record's offset"
else
  head -c "$at" "$tmp/100k.brj" >"$tmp/live.brj"
  out=$("$bin" replay "$tmp/live.brj" 2>/dev/null); rc=$?
  json=$("$bin" replay "$tmp/live.brj" --json 2>/dev/null)
  if [ $rc = 0 ] && ! grep -q "NOT converged" <<<"$out" &&
     grep -Eq "still in progress at the end of the journal: [0-9]+ waiting, [0-9]+ holds live" <<<"$out" &&
     grep -q "^  verdict       ok: .*still in progress (exit 0)$" <<<"$out" &&
     [ "$(jq -r '.verdict, .in_progress, .source.path' <<<"$json" | tr '\n' ' ')" = "ok true $tmp/live.brj " ] &&
     jq -e '.time.span_ms > 0 and (.time.first | test("Z$"))' <<<"$json" >/dev/null; then
    ok "a journal ending mid-sale: in progress, exit 0"
  else
    fail "a journal ending mid-sale: exit $rc, $(grep -E 'liveness|at the end|verdict' <<<"$out")"
  fi
fi

# 6. rush: usage error, and a target that is not there
err=$("$bin" rush --foo 2>&1 >/dev/null); rc=$?
want="bookingrush rush: unknown option '--foo' (see 'bookingrush rush --help')"
if [ $rc = 2 ] && [ "$err" = "$want" ]; then
  ok "rush --foo: exit 2, the house message"
else
  fail "rush --foo: exit $rc, stderr '$err', wanted '$want'"
fi
s0=$(date +%s%N)
err=$(timeout 20 "$bin" rush "$scn/rush-ci.json" --target http://127.0.0.1:1 \
        --admin admin@rush.test:admin-password --quiet 2>&1 >/dev/null); rc=$?
ms=$((($(date +%s%N) - s0) / 1000000))
if [ $rc = 3 ] && [ $ms -lt 5000 ] && grep -q "127.0.0.1:1" <<<"$err"; then
  ok "rush against a closed port: exit 3 in $ms ms ($err)"
else
  fail "rush against a closed port: exit $rc after $ms ms, stderr '$err' (want 3 within 5 s)"
fi

if [ $failures -gt 0 ]; then
  echo "cli_check: $failures failed" >&2
  exit 1
fi
echo "cli_check: all passed"
