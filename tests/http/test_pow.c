/*
 * test_pow.c -- the proof of work at the door (server/pow.h) on its own:
 * challenges issued and solved here (OpenSSL's SHA-256, as a browser's
 * WebCrypto would), every refusal of verification in its order, the used
 * set (each solution accepted once; entries free once expired; issue
 * refuses at 90%), and the leading-zero count. ctest http_pow; the planted
 * BR_PLANT_POW_REUSE must make test_a_solved_challenge_is_accepted_once
 * fail (scripts/test.d/25-pow-plant.sh).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/sha.h>

#include "core/err.h"
#include "server/parse.h"
#include "server/pow.h"

#define SECRET "test-pow-secret"
#define NOW 1700000000000LL

/* A nonce for challenge c: SHA-256(c "." nonce) with bits leading zeros. */
static void solve(const char *c, unsigned bits, char nonce[BR_POW_NONCE_MAX])
{
    for (unsigned long i = 0; i < (1ul << 26); i++) {
        snprintf(nonce, BR_POW_NONCE_MAX, "n%lu", i);
        char text[BR_POW_TEXT_MAX + BR_POW_NONCE_MAX + 2];
        int n = snprintf(text, sizeof text, "%s.%s", c, nonce);
        uint8_t h[32];
        SHA256((const unsigned char *)text, (size_t)n, h);
        if (br_pow_leading_zero_bits(h) >= bits) {
            return;
        }
    }
    fail_msg("no nonce found");
}

/* A nonce that does NOT reach bits (so the work check has to refuse it). */
static void unsolve(const char *c, unsigned bits, char nonce[BR_POW_NONCE_MAX])
{
    for (unsigned long i = 0;; i++) {
        snprintf(nonce, BR_POW_NONCE_MAX, "x%lu", i);
        char text[BR_POW_TEXT_MAX + BR_POW_NONCE_MAX + 2];
        int n = snprintf(text, sizeof text, "%s.%s", c, nonce);
        uint8_t h[32];
        SHA256((const unsigned char *)text, (size_t)n, h);
        if (br_pow_leading_zero_bits(h) < bits) {
            return;
        }
    }
}

static void test_leading_zero_bits_counts_from_the_first_byte(void **state)
{
    (void)state;
    uint8_t h[32];
    memset(h, 0, sizeof h);
    assert_int_equal(br_pow_leading_zero_bits(h), 256);
    h[0] = 0x80;
    assert_int_equal(br_pow_leading_zero_bits(h), 0);
    h[0] = 0x01;
    assert_int_equal(br_pow_leading_zero_bits(h), 7);
    h[0] = 0;
    h[1] = 0x10;
    assert_int_equal(br_pow_leading_zero_bits(h), 11);
    h[1] = 0;
    h[31] = 1;
    assert_int_equal(br_pow_leading_zero_bits(h), 255);
}

static void test_a_solved_challenge_is_accepted_once(void **state)
{
    (void)state;
    struct br_pow *p = NULL;
    assert_int_equal(br_pow_new(&p, 1024), BR_OK);
    char c[BR_POW_TEXT_MAX];
    char nonce[BR_POW_NONCE_MAX];
    assert_int_equal(br_pow_issue(p, SECRET, 7, 42, 8, NOW, c, sizeof c), BR_OK);
    assert_true(strncmp(c, "v1.7.42.", 8) == 0);
    solve(c, 8, nonce);
    assert_int_equal(br_pow_verify(p, SECRET, c, nonce, 7, 42, 8, NOW + 1), BR_OK);
    /* The same solution again, and the same challenge with another nonce. */
    assert_int_equal(br_pow_verify(p, SECRET, c, nonce, 7, 42, 8, NOW + 2), BR_E_POW_INVALID);
    char other[BR_POW_NONCE_MAX];
    for (unsigned long i = 0;; i++) { /* another valid nonce of the same challenge */
        char text[BR_POW_TEXT_MAX + BR_POW_NONCE_MAX + 2];
        snprintf(other, sizeof other, "m%lu", i);
        int n = snprintf(text, sizeof text, "%s.%s", c, other);
        uint8_t h[32];
        SHA256((const unsigned char *)text, (size_t)n, h);
        if (br_pow_leading_zero_bits(h) >= 8) {
            break;
        }
    }
    assert_int_equal(br_pow_verify(p, SECRET, c, other, 7, 42, 8, NOW + 3), BR_E_POW_INVALID);
    /* A second challenge is a second admission ticket. */
    char c2[BR_POW_TEXT_MAX];
    assert_int_equal(br_pow_issue(p, SECRET, 7, 42, 8, NOW, c2, sizeof c2), BR_OK);
    assert_string_not_equal(c, c2);
    solve(c2, 8, nonce);
    assert_int_equal(br_pow_verify(p, SECRET, c2, nonce, 7, 42, 8, NOW + 4), BR_OK);
    assert_int_equal(br_pow_used(p), 2);
    br_pow_free(p);
}

static void test_verification_refuses_every_wrong_part(void **state)
{
    (void)state;
    struct br_pow *p = NULL;
    assert_int_equal(br_pow_new(&p, 1024), BR_OK);
    char c[BR_POW_TEXT_MAX];
    char nonce[BR_POW_NONCE_MAX];
    assert_int_equal(br_pow_issue(p, SECRET, 7, 42, 10, NOW, c, sizeof c), BR_OK);
    solve(c, 10, nonce);
    /* Another secret, event, user; more bits asked than the challenge has. */
    assert_int_equal(br_pow_verify(p, "other", c, nonce, 7, 42, 10, NOW), BR_E_POW_INVALID);
    assert_int_equal(br_pow_verify(p, SECRET, c, nonce, 8, 42, 10, NOW), BR_E_POW_INVALID);
    assert_int_equal(br_pow_verify(p, SECRET, c, nonce, 7, 43, 10, NOW), BR_E_POW_INVALID);
    assert_int_equal(br_pow_verify(p, SECRET, c, nonce, 7, 42, 11, NOW), BR_E_POW_INVALID);
    /* Expired: at exactly expires_ms it is over. */
    assert_int_equal(br_pow_verify(p, SECRET, c, nonce, 7, 42, 10, NOW + BR_POW_TTL_MS),
                     BR_E_POW_INVALID);
    /* A tampered challenge: fewer bits claimed, or one byte of the MAC. */
    char t[BR_POW_TEXT_MAX];
    snprintf(t, sizeof t, "%s", c);
    char *bits = strstr(t, ".10.");
    assert_non_null(bits);
    memcpy(bits, ".11.", 4);
    assert_int_equal(br_pow_verify(p, SECRET, t, nonce, 7, 42, 10, NOW), BR_E_POW_INVALID);
    snprintf(t, sizeof t, "%s", c);
    size_t n = strlen(t);
    t[n - 1] = t[n - 1] == 'A' ? 'B' : 'A';
    assert_int_equal(br_pow_verify(p, SECRET, t, nonce, 7, 42, 10, NOW), BR_E_POW_INVALID);
    /* Garbage, an empty or foreign nonce, and not enough work. */
    assert_int_equal(br_pow_verify(p, SECRET, "v1.7.42", nonce, 7, 42, 10, NOW), BR_E_POW_INVALID);
    assert_int_equal(br_pow_verify(p, SECRET, c, "", 7, 42, 10, NOW), BR_E_POW_INVALID);
    assert_int_equal(br_pow_verify(p, SECRET, c, "a b", 7, 42, 10, NOW), BR_E_POW_INVALID);
    char weak[BR_POW_NONCE_MAX];
    unsolve(c, 10, weak);
    assert_int_equal(br_pow_verify(p, SECRET, c, weak, 7, 42, 10, NOW), BR_E_POW_INVALID);
    /* None of the refusals used it up: the genuine solution still passes once. */
    assert_int_equal(br_pow_used(p), 0);
    assert_int_equal(br_pow_verify(p, SECRET, c, nonce, 7, 42, 10, NOW), BR_OK);
    br_pow_free(p);
}

static void test_check_names_the_random_part_for_a_shared_used_set(void **state)
{
    (void)state;
    char c[BR_POW_TEXT_MAX];
    char nonce[BR_POW_NONCE_MAX];
    assert_int_equal(br_pow_issue(NULL, SECRET, 0, 0, 4, NOW, c, sizeof c), BR_OK);
    solve(c, 4, nonce);
    uint64_t key = 0;
    int64_t exp = 0;
    char hex[BR_POW_RAND_HEX_MAX];
    assert_int_equal(br_pow_check(SECRET, c, nonce, 0, 0, 4, NOW, &key, &exp, hex), BR_OK);
    assert_int_equal(strlen(hex), 32);
    assert_true(exp == NOW + BR_POW_TTL_MS);
    /* Without a used set (pow NULL) verification accepts it each time: the
     * backend's pow_use is then the one to say "used". */
    assert_int_equal(br_pow_verify(NULL, SECRET, c, nonce, 0, 0, 4, NOW), BR_OK);
    assert_int_equal(br_pow_verify(NULL, SECRET, c, nonce, 0, 0, 4, NOW), BR_OK);
}

/* The used set holds 64 entries (the least): 90% are 58. Issue refuses at
 * 58 live entries; once they expire the sweep frees them all. */
static void test_the_used_set_fills_and_frees_expired_entries(void **state)
{
    (void)state;
    struct br_pow *p = NULL;
    assert_int_equal(br_pow_new(&p, 1), BR_OK);
    char c[BR_POW_TEXT_MAX];
    char nonce[BR_POW_NONCE_MAX];
    unsigned accepted = 0;
    for (unsigned i = 0; i < 64; i++) {
        int rc = br_pow_issue(p, SECRET, 1, i + 1, 2, NOW, c, sizeof c);
        if (rc == BR_E_OVERLOADED) {
            break;
        }
        assert_int_equal(rc, BR_OK);
        solve(c, 2, nonce);
        assert_int_equal(br_pow_verify(p, SECRET, c, nonce, 1, i + 1, 2, NOW + 1), BR_OK);
        accepted++;
    }
    assert_int_equal(accepted, 58);
    assert_int_equal(br_pow_used(p), 58);
    /* Still inside the TTL: refused. After it: swept, room again. */
    assert_int_equal(br_pow_issue(p, SECRET, 1, 1, 2, NOW + 2000, c, sizeof c), BR_E_OVERLOADED);
    int64_t later = NOW + BR_POW_TTL_MS + 1;
    assert_int_equal(br_pow_issue(p, SECRET, 1, 1, 2, later, c, sizeof c), BR_OK);
    assert_int_equal(br_pow_used(p), 0);
    solve(c, 2, nonce);
    assert_int_equal(br_pow_verify(p, SECRET, c, nonce, 1, 1, 2, later + 1), BR_OK);
    assert_int_equal(br_pow_verify(p, SECRET, c, nonce, 1, 1, 2, later + 2), BR_E_POW_INVALID);
    br_pow_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_leading_zero_bits_counts_from_the_first_byte),
        cmocka_unit_test(test_a_solved_challenge_is_accepted_once),
        cmocka_unit_test(test_verification_refuses_every_wrong_part),
        cmocka_unit_test(test_check_names_the_random_part_for_a_shared_used_set),
        cmocka_unit_test(test_the_used_set_fills_and_frees_expired_entries),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
