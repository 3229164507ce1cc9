/*
 * test_hmac.c -- br_auth_hmac_sha256 (adapters/auth.c) against known answers
 * and against OpenSSL's one-shot HMAC().
 *
 * The pass tokens, refresh tokens and provider signatures all sign and check
 * with the same function, so a wrong MAC would pass every round trip; only a
 * known answer catches it. The vectors are RFC 4231's cases 1, 2 and 6
 * (checked with `openssl dgst -sha256 -mac HMAC`); case 6's 131-byte key is
 * longer than the per-thread context keeps, so it takes the fallback path.
 * Then four threads switch between keys of 1-200 bytes and compare every
 * MAC with HMAC(): the per-thread context must be reset to the new key each
 * time, and never shared between threads.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "adapters/auth.h"

static void expect_mac(const uint8_t *key, size_t key_len, const char *data, const char *hex)
{
    uint8_t mac[32];
    char got[65];
    br_auth_hmac_sha256(key, key_len, data, strlen(data), mac);
    br_auth_hex(mac, sizeof mac, got);
    assert_string_equal(got, hex);
}

static void test_rfc4231(void **state)
{
    (void)state;
    uint8_t k1[20], k6[131];
    memset(k1, 0x0b, sizeof k1);
    memset(k6, 0xaa, sizeof k6);
    expect_mac(k1, sizeof k1, "Hi There",
               "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    expect_mac((const uint8_t *)"Jefe", 4, "what do ya want for nothing?",
               "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    expect_mac(k6, sizeof k6, "Test Using Larger Than Block-Size Key - Hash Key First",
               "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
    /* Back to a short key after the long one, in the same thread. */
    expect_mac(k1, sizeof k1, "Hi There",
               "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
}

struct worker {
    uint32_t seed;
    unsigned mismatches;
};

static uint32_t next(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

static void *cross_check(void *arg)
{
    struct worker *w = arg;
    uint8_t key[200], data[300], mine[32], theirs[32];
    for (int i = 0; i < 3000; i++) {
        size_t key_len = 1 + next(&w->seed) % sizeof key;
        size_t len = next(&w->seed) % sizeof data;
        if (i % 7 == 0) {
            key_len = (size_t[]){64, 65, 128, 129}[i % 4]; /* around the block and kept sizes */
        }
        for (size_t j = 0; j < key_len; j++) {
            key[j] = (uint8_t)next(&w->seed);
        }
        for (size_t j = 0; j < len; j++) {
            data[j] = (uint8_t)next(&w->seed);
        }
        /* The same key twice in a row now and then: the reuse path. */
        int repeat = i % 5 == 0 ? 2 : 1;
        for (int r = 0; r < repeat; r++) {
            unsigned theirs_len = 0;
            br_auth_hmac_sha256(key, key_len, data, len, mine);
            HMAC(EVP_sha256(), key, (int)key_len, data, len, theirs, &theirs_len);
            if (theirs_len != 32 || memcmp(mine, theirs, 32) != 0) {
                w->mismatches++;
            }
        }
    }
    return NULL;
}

static void test_threads_agree_with_openssl(void **state)
{
    (void)state;
    pthread_t t[4];
    struct worker w[4];
    for (unsigned i = 0; i < 4; i++) {
        w[i] = (struct worker){.seed = 0x9e3779b9u * (i + 1), .mismatches = 0};
        assert_int_equal(pthread_create(&t[i], NULL, cross_check, &w[i]), 0);
    }
    for (unsigned i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        assert_int_equal(w[i].mismatches, 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc4231),
        cmocka_unit_test(test_threads_agree_with_openssl),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
