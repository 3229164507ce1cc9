#!/usr/bin/env bash
# 54-stripe-plant.sh -- proof that the Stripe tests can fail. For each bug
# the Stripe adapter or the webhook verifier can plant (-DBR_PLANT=NAME, see
# adapters/stripe.c and adapters/provider_sig.c), build the stripe tests into
# the shared plant tree (lib/plant-build.sh), start the Stripe test double (tests/fixtures/stripe.sh),
# run the one test that guards against that bug, and require that it fails
# (cmocka's FAILED or ERROR line naming it). ctest runs the same tests on the normal
# builds, where they pass.
# usage: 54-stripe-plant.sh [ASAN_BUILD RELEASE_BUILD]   (BR_PLANT_ONLY=REGEX to pick)
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=lib/plant-build.sh
. scripts/test.d/lib/plant-build.sh
state=$(mktemp -d)
trap 'tests/fixtures/stripe.sh stop "$state" >/dev/null 2>&1 || true; rm -rf "$state"' EXIT
tests/fixtures/stripe.sh start "$state" >/dev/null
export BR_TEST_STRIPE_STATE=$state

# plant | test program | the test (cmocka filter) | what the bug breaks
plants=(
  "REFUND_KEY_PER_ATTEMPT|test_stripe|test_refund_timeout_applied_is_refunded_once|a retried timeout refunds twice"
  "STRIPE_NEW_KEY_ON_RETRY|test_stripe|test_refund_timeout_applied_is_refunded_once|same bug, the brief's name"
  "STRIPE_KEY_ONLY|test_stripe|test_same_payment_twice_one_intent|a second intent after keys expire"
  "STRIPE_NO_RETRY|test_stripe|test_500_twice_then_200_one_intent|a 500 ends the call"
  "STRIPE_UNKNOWN_AS_UNAVAILABLE|test_stripe|test_no_answer_ever_is_unknown_outcome|an unanswered POST called a plain outage"
  "STRIPE_IDEM_ERROR_UNAVAILABLE|test_stripe|test_idempotency_error_is_invalid|a broken key retried forever"
  "STRIPE_ALREADY_REFUNDED_INVALID|test_stripe|test_already_refunded_is_ok|a done refund reported refused"
  "STRIPE_401_INVALID|test_stripe|test_wrong_key_401_is_unavailable|a refused key reported as a bad request"
  "STRIPE_NO_VOID|test_stripe|test_query_and_void|an abandoned intent stays payable"
  "STRIPE_LOG_KEY|test_stripe|test_idempotency_error_is_invalid|the secret key in the log"
  "SIG_NO_TOLERANCE|test_sig|test_tolerance_boundaries|stale signatures accepted"
  "SIG_FIRST_SECRET_ONLY|test_sig|test_rotation_second_secret_of_ours_matches|rotation broken"
  "SIG_FIRST_SECRET_ONLY|sig.sh|openssl-signed payloads|rotation broken, seen by openssl's signatures"
)
if [ -n "${BR_PLANT_ONLY:-}" ]; then
  mapfile -t plants < <(printf '%s\n' "${plants[@]}" | grep -E "^(${BR_PLANT_ONLY})\|")
fi
failed=0
for p in "${plants[@]}"; do
  IFS='|' read -r name prog test what <<<"$p"
  dir=$PLANT_DIR
  if ! grep -q "BR_PLANT_$name" adapters/stripe.c adapters/provider_sig.c; then
    echo "54-stripe-plant: FAIL: adapters/stripe.c, provider_sig.c have no BR_PLANT_$name"
    failed=1; continue
  fi
  target=$prog
  [ "$prog" = sig.sh ] && target=sig_check
  if ! plant_build "$name" "$target"; then
    echo "54-stripe-plant: FAIL: $name does not build"
    failed=1; continue
  fi
  set +e
  if [ "$prog" = sig.sh ]; then
    out=$(timeout -k 10 300 tests/stripe/sig.sh "$dir/tests/stripe/sig_check" 3 2>&1); rc=$?
  else
    out=$(timeout -k 10 300 "$dir/tests/stripe/$prog" "$test" 2>&1); rc=$?
  fi
  set -e
  if [ "$rc" -ne 0 ] && grep -qE "(FAILED  |ERROR   )\] $test|^sig.sh: FAIL" <<<"$out"; then
    echo "54-stripe-plant: $name ($what) caught by $prog $test: $(grep -m1 -E '^\[  ERROR   \]|^sig.sh: FAIL' <<<"$out" | cut -c1-160)"
  else
    echo "54-stripe-plant: FAIL: $name was not caught by $prog $test (exit $rc)"
    tail -20 <<<"$out"
    failed=1
  fi
done
exit $failed
