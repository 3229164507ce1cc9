#!/usr/bin/env bash
# 24-payment-check-plant.sh -- proof that point 8's tests can fail: the core
# is built with BR_PLANT=NO_PAYMENT_CHECK (payment_check emits no
# provider_query / provider_void) and both the core's rule test
# (tests/core/test_saga.c: test_first_check_is_due_exactly_check_ms_after_create)
# and the embedded server end to end (tests/http/test_http_clock.c: a late
# confirm of an abandoned payment must be refused once voided; a paid
# payment whose webhook was lost must be confirmed by the query) must fail;
# the normal build passes them (ctest core_test_saga, http_clock). The sim's
# lost-webhook plant run is scripts/test.d/23-check-plant.sh (package B).
# Builds three targets (about a minute on 2 cores).
# usage: 24-payment-check-plant.sh ASAN_BUILD RELEASE_BUILD
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=lib/plant-build.sh
. scripts/test.d/lib/plant-build.sh
build=$PLANT_DIR
plant_build NO_PAYMENT_CHECK bookingrush test_saga test_http_clock
failed=0
set +e
out=$("$build/tests/core/test_saga" 2>&1); rc=$?
set -e
if [ "$rc" -ne 0 ] && grep -q "FAILED  \] test_first_check_is_due_exactly_check_ms_after_create" <<<"$out"; then
  echo "payment_check plant: caught by test_saga (exit $rc)"
else
  echo "$out" >&2
  echo "payment_check plant: FAIL: test_saga did not notice (exit $rc)" >&2
  failed=1
fi
set +e
out=$("$build/tests/http/test_http_clock" "$build/bookingrush" 2>&1); rc=$?
set -e
if [ "$rc" -ne 0 ] && grep -q "FAILED  \] test_an_abandoned_payment_is_voided_after_the_quiet_time" <<<"$out" &&
   grep -q "FAILED  \] test_a_paid_payment_whose_webhook_was_lost_is_confirmed" <<<"$out"; then
  echo "payment_check plant: caught by test_http_clock (exit $rc)"
else
  echo "$out" >&2
  echo "payment_check plant: FAIL: test_http_clock did not notice (exit $rc)" >&2
  failed=1
fi
exit $failed
