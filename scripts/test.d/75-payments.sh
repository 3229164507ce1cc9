#!/usr/bin/env bash
# 75-payments.sh -- the money path end to end (tests/payments/test_money.c):
# starts a redis-server and a PostgreSQL (tests/dist/env.sh); each case of
# test_money then starts its own `bookingrush kafka-dev`
# (tests/fixtures/kafka.sh) and Stripe double (tests/fixtures/stripe.sh)
# under $dir/cases/, and two `serve --backend distributed --kafka ...
# --payments stripe` processes on a fresh database; this script stops
# whatever is left of them on exit, failed or not.
# Cases: buyer_flow, decline, late_payment, duplicates_reordered,
# saga_killed_before_commit, broker_down, relay_killed_mid_batch,
# refund_timeout, webhook_lost, dlq; each ends with the money check.
# Runs the sanitized build, bounded to 4 minutes. A missing piece (fixture,
# kafka-dev, the payment flags) FAILS with the reason: nothing passes
# silently. (For a quicker look: MONEY_ONLY=test_dlq.)
# usage: 75-payments.sh ASAN_BUILD RELEASE_BUILD
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build-asan}
bin=$PWD/$build/bookingrush
test=$PWD/$build/tests/payments/test_money

missing=()
[ -x "$test" ] || missing+=("$test not built")
[ -x tests/fixtures/kafka.sh ] || missing+=("tests/fixtures/kafka.sh (h/kafka11)")
[ -x tests/fixtures/stripe.sh ] || missing+=("tests/fixtures/stripe.sh (h/stripe11)")
help=$("$bin" serve --help 2>&1 || true)
for f in --kafka --kafka-group --kafka-dlq-after --payments --stripe-api-base --stripe-key \
  --stripe-webhook-secret --stripe-timeout-ms --payment-check-ms --kafka-session-timeout-ms; do
  grep -q -- "$f" <<<"$help" || missing+=("serve $f (h/wire11)")
done
grep -q kafka-dev <<<"$("$bin" --help 2>&1 || true)" ||
  "$bin" kafka-dev --help >/dev/null 2>&1 || missing+=("bookingrush kafka-dev (h/kafka11)")
if [ "${#missing[@]}" -gt 0 ]; then
  printf '75-payments: cannot run, missing: %s\n' "${missing[@]}" >&2
  echo "75-payments: FAILED (the money path is not all there)" >&2
  exit 1
fi

# shellcheck source=lib/payments-env.sh
. scripts/test.d/lib/payments-env.sh
payments_env_start payments
[ -n "${MONEY_ONLY:-}" ] && export BR_TEST_ONLY=$MONEY_ONLY
echo "75-payments: Redis $BR_TEST_DIST, PostgreSQL $BR_TEST_PG"

s0=$(date +%s)
set +e
timeout -k 10 240 "$test" "$bin" >"$dir/money.log" 2>&1
status=$?
set -e
grep -E '^(money |[a-z_]+: [0-9]+ ms|broker_down:|dlq:|webhook_lost:|duplicates_reordered:)' \
  "$dir/money.log" || true
if [ "$status" -ne 0 ] || grep -q 'SKIPPED' "$dir/money.log"; then
  grep -E 'FAILED|SKIPPED|ERROR|cannot run|want |money check|test_money:' "$dir/money.log" |
    head -40 >&2 || true
  tail -40 "$dir/money.log" >&2
  [ "$status" -eq 124 ] && echo "75-payments: test_money ran out of its 240 s" >&2
  echo "75-payments: FAILED (status $status)" >&2
  exit 1
fi
echo "75-payments: every money case passed ($(($(date +%s) - s0)) s)"
