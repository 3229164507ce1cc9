/*
 * test_sig.c -- webhook signatures (adapters/provider_sig.h) against vectors
 * computed outside our code: `printf '%s' "1492774577.$PAYLOAD" | openssl dgst
 * -sha256 -hmac whsec_test_secret` (and Python's hmac, same digests; ISSUE11.md
 * §1.7). Also: rotation (several secrets, several v1), the tolerance at its
 * boundaries +-1 s, a header with only v0, Stripe's documented header as a
 * format fixture (it parses, and verifies under no secret of ours: Stripe
 * publishes no secret or payload for it). sig.sh adds random payloads
 * signed by openssl at run time.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "adapters/provider_sig.h"
#include "core/err.h"

static const char payload[] =
    "{\"id\":\"evt_1\",\"object\":\"event\",\"type\":\"payment_intent.succeeded\",\"data\":{\"object\":"
    "{\"id\":\"pi_1\",\"object\":\"payment_intent\",\"status\":\"succeeded\",\"metadata\":"
    "{\"payment_id\":\"4294967297\",\"booking_id\":\"4294967298\"}}}}";
#define T0 1492774577
#define V_TEST "df4b0841a06eabf1213493dccfbdc40a9f47fd240827ffe4d7186237ed2a270f"
#define V_ROTATED "378bda20bd17df39cf74d5333999c7155b4ac78371b865df704833df715a8263"
static const char *const test_secret[] = {"whsec_test_secret"};
static const char *const rotated_secret[] = {"whsec_rotated_secret"};
static const char *const both_secrets[] = {"whsec_test_secret", "whsec_rotated_secret"};
static const char *const other_then_rotated[] = {"whsec_other", "whsec_rotated_secret"};

static int verify_any(const char *const *secrets, size_t n, const char *header, int64_t now,
                      int64_t tolerance)
{
    return br_provider_sig_verify_any(secrets, n, header, payload, strlen(payload), now, tolerance);
}

static void test_payload_is_the_209_bytes_of_the_vectors(void **state)
{
    (void)state;
    assert_int_equal(strlen(payload), 209);
}

static void test_openssl_vector_test_secret(void **state)
{
    (void)state;
    const char *h = "t=1492774577,v1=" V_TEST;
    assert_int_equal(verify_any(test_secret, 1, h, T0, 300), BR_OK);
    assert_int_equal(verify_any(rotated_secret, 1, h, T0, 300), BR_E_UNAUTHORIZED);
    assert_int_equal(br_provider_sig_verify("whsec_test_secret", h, payload, strlen(payload), T0,
                                            BR_PROVIDER_SIG_TOLERANCE_S),
                     BR_OK);
}

static void test_openssl_vector_rotated_secret(void **state)
{
    (void)state;
    const char *h = "t=1492774577,v1=" V_ROTATED;
    assert_int_equal(verify_any(rotated_secret, 1, h, T0, 300), BR_OK);
    assert_int_equal(verify_any(test_secret, 1, h, T0, 300), BR_E_UNAUTHORIZED);
}

static void test_sign_writes_the_openssl_vector(void **state)
{
    (void)state;
    char out[160];
    assert_int_equal(br_provider_sig_sign("whsec_test_secret", T0, payload, strlen(payload), out,
                                          sizeof out),
                     BR_OK);
    assert_string_equal(out, "t=1492774577,v1=" V_TEST);
    assert_int_equal(br_provider_sig_sign("whsec_test_secret", T0, payload, strlen(payload), out, 20),
                     BR_E_INVALID);
}

static void test_rotation_two_v1_either_secret(void **state)
{
    (void)state;
    const char *h = "t=1492774577,v1=" V_TEST ",v1=" V_ROTATED;
    assert_int_equal(verify_any(test_secret, 1, h, T0, 300), BR_OK);
    assert_int_equal(verify_any(rotated_secret, 1, h, T0, 300), BR_OK);
    static const char *const other[] = {"whsec_other"};
    assert_int_equal(verify_any(other, 1, h, T0, 300), BR_E_UNAUTHORIZED);
}

static void test_rotation_second_secret_of_ours_matches(void **state)
{
    (void)state;
    /* Stripe signs with the new secret only; we still list the old first. */
    const char *h = "t=1492774577,v1=" V_ROTATED;
    assert_int_equal(verify_any(both_secrets, 2, h, T0, 300), BR_OK);
    assert_int_equal(verify_any(other_then_rotated, 2, h, T0, 300), BR_OK);
    static const char *const four[] = {"a", "b", "c", "whsec_test_secret"};
    assert_int_equal(verify_any(four, 4, "t=1492774577,v1=" V_TEST, T0, 300), BR_OK);
    assert_int_equal(verify_any(four, 3, "t=1492774577,v1=" V_TEST, T0, 300), BR_E_UNAUTHORIZED);
}

static void test_tolerance_boundaries(void **state)
{
    (void)state;
    const char *h = "t=1492774577,v1=" V_TEST;
    assert_int_equal(verify_any(test_secret, 1, h, T0 + 300, 300), BR_OK);
    assert_int_equal(verify_any(test_secret, 1, h, T0 + 301, 300), BR_E_UNAUTHORIZED); /* stale */
    assert_int_equal(verify_any(test_secret, 1, h, T0 - 300, 300), BR_OK);
    assert_int_equal(verify_any(test_secret, 1, h, T0 - 301, 300), BR_E_UNAUTHORIZED); /* future */
    /* a configured tolerance, not the default */
    assert_int_equal(verify_any(test_secret, 1, h, T0 + 10, 10), BR_OK);
    assert_int_equal(verify_any(test_secret, 1, h, T0 + 11, 10), BR_E_UNAUTHORIZED);
    assert_int_equal(verify_any(test_secret, 1, h, T0 - 11, 10), BR_E_UNAUTHORIZED);
    assert_int_equal(verify_any(test_secret, 1, h, T0, 0), BR_OK);
    assert_int_equal(verify_any(test_secret, 1, h, T0 + 1, 0), BR_E_UNAUTHORIZED);
    /* the one-secret wrapper keeps its meaning */
    assert_int_equal(br_provider_sig_verify("whsec_test_secret", h, payload, strlen(payload),
                                            T0 + 301, 300),
                     BR_E_UNAUTHORIZED);
}

static void test_v0_only_header_is_invalid(void **state)
{
    (void)state;
    /* a correct MAC, but under the scheme v0 that we ignore */
    assert_int_equal(verify_any(test_secret, 1, "t=1492774577,v0=" V_TEST, T0, 300), BR_E_INVALID);
    assert_int_equal(verify_any(test_secret, 1, "t=1492774577,v0=" V_ROTATED ",v1=" V_TEST, T0, 300),
                     BR_OK);
}

static void test_stripe_documented_header_parses_and_is_refused(void **state)
{
    (void)state;
    /* From Stripe's webhook documentation (no secret or payload published):
     * a format fixture. Parsed (t, one v1, v0 ignored): refused as a wrong
     * signature, not as a malformed header. */
    const char *h = "t=1492774577,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd,"
                    "v0=6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39";
    assert_int_equal(verify_any(both_secrets, 2, h, T0, 300), BR_E_UNAUTHORIZED);
    assert_int_equal(verify_any(test_secret, 1, h, T0, 300), BR_E_UNAUTHORIZED);
}

static void test_malformed_headers(void **state)
{
    (void)state;
    assert_int_equal(verify_any(test_secret, 1, NULL, T0, 300), BR_E_INVALID);
    assert_int_equal(verify_any(test_secret, 1, "", T0, 300), BR_E_INVALID);
    assert_int_equal(verify_any(test_secret, 1, "v1=" V_TEST, T0, 300), BR_E_INVALID);
    assert_int_equal(verify_any(test_secret, 1, "t=14927x4577,v1=" V_TEST, T0, 300), BR_E_INVALID);
    assert_int_equal(verify_any(test_secret, 1, "t=1492774577", T0, 300), BR_E_INVALID);
    assert_int_equal(verify_any(test_secret, 1, "t=1492774577,v1=zz", T0, 300), BR_E_INVALID);
    char longh[BR_PROVIDER_SIG_HEADER_MAX + 64];
    memset(longh, 'x', sizeof longh - 1);
    longh[sizeof longh - 1] = '\0';
    memcpy(longh, "t=1492774577,v1=" V_TEST ",", 16 + 64 + 1);
    assert_int_equal(verify_any(test_secret, 1, longh, T0, 300), BR_E_INVALID);
}

static void test_flipped_byte_or_time_is_refused(void **state)
{
    (void)state;
    char copy[sizeof payload];
    memcpy(copy, payload, sizeof payload);
    copy[100] ^= 1;
    assert_int_equal(br_provider_sig_verify_any(test_secret, 1, "t=1492774577,v1=" V_TEST, copy,
                                                strlen(copy), T0, 300),
                     BR_E_UNAUTHORIZED);
    /* the same MAC claimed for another second */
    assert_int_equal(verify_any(test_secret, 1, "t=1492774578,v1=" V_TEST, T0, 300),
                     BR_E_UNAUTHORIZED);
}

int main(int argc, char **argv)
{
    if (argc > 1) {
        cmocka_set_test_filter(argv[1]); /* one test by name (scripts/test.d/54-stripe-plant.sh) */
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_payload_is_the_209_bytes_of_the_vectors),
        cmocka_unit_test(test_openssl_vector_test_secret),
        cmocka_unit_test(test_openssl_vector_rotated_secret),
        cmocka_unit_test(test_sign_writes_the_openssl_vector),
        cmocka_unit_test(test_rotation_two_v1_either_secret),
        cmocka_unit_test(test_rotation_second_secret_of_ours_matches),
        cmocka_unit_test(test_tolerance_boundaries),
        cmocka_unit_test(test_v0_only_header_is_invalid),
        cmocka_unit_test(test_stripe_documented_header_parses_and_is_refused),
        cmocka_unit_test(test_malformed_headers),
        cmocka_unit_test(test_flipped_byte_or_time_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
