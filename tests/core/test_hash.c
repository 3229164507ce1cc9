/* test_hash.c -- CRC-32C and br_hash64: known answers, determinism, sensitivity. */
#include "support.h"

#include <string.h>

#include "core/hash.h"

static void test_crc32c_of_check_string_is_e3069283(void **state)
{
    (void)state;
    assert_int_equal(br_crc32c(0, "123456789", 9), 0xE3069283u);
}

static void test_crc32c_of_nothing_is_zero_and_it_chains(void **state)
{
    (void)state;
    assert_int_equal(br_crc32c(0, "", 0), 0);
    uint32_t part = br_crc32c(0, "1234", 4);
    assert_int_equal(br_crc32c(part, "56789", 5), 0xE3069283u);
    /* RFC 3720 B.4 test vector: 32 bytes of zeros. */
    uint8_t zeros[32] = {0};
    assert_int_equal(br_crc32c(0, zeros, sizeof zeros), 0x8A9136AAu);
}

static void test_crc32c_detects_every_single_bit_flip(void **state)
{
    (void)state;
    uint8_t buf[64];
    for (size_t i = 0; i < sizeof buf; i++) {
        buf[i] = (uint8_t)(i * 31 + 7);
    }
    uint32_t good = br_crc32c(0, buf, sizeof buf);
    for (size_t bit = 0; bit < 8 * sizeof buf; bit++) {
        buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        assert_true(br_crc32c(0, buf, sizeof buf) != good);
        buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
}

static void test_hash64_is_deterministic_and_alignment_free(void **state)
{
    (void)state;
    const char *s = "idempotency-key-0123456789";
    size_t n = strlen(s);
    uint64_t h = br_hash64(s, n, 0);
    assert_true(h == br_hash64(s, n, 0));
    char shifted[64];
    for (size_t off = 1; off < 8; off++) {
        memcpy(shifted + off, s, n);
        assert_true(br_hash64(shifted + off, n, 0) == h);
    }
}

static void test_hash64_depends_on_seed_length_and_every_bit(void **state)
{
    (void)state;
    uint8_t buf[24];
    memset(buf, 0xA5, sizeof buf);
    uint64_t h = br_hash64(buf, sizeof buf, 1);
    assert_true(h != br_hash64(buf, sizeof buf, 2));
    /* Every length of the same bytes hashes differently, trailing zeros included. */
    uint8_t zeros[16] = {0};
    for (size_t a = 0; a <= 16; a++) {
        for (size_t b = a + 1; b <= 16; b++) {
            assert_true(br_hash64(zeros, a, 0) != br_hash64(zeros, b, 0));
        }
    }
    for (size_t bit = 0; bit < 8 * sizeof buf; bit++) {
        buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        assert_true(br_hash64(buf, sizeof buf, 1) != h);
        buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
}

static void test_hash_step_is_order_dependent(void **state)
{
    (void)state;
    uint64_t ab = br_hash_step(br_hash_step(0, 1), 2);
    uint64_t ba = br_hash_step(br_hash_step(0, 2), 1);
    assert_true(ab != ba);
    assert_true(br_hash_step(0, 0) != 0);
    assert_true(br_mix64(1) != br_mix64(2));
    assert_true(br_mix64(12345) == br_mix64(12345));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32c_of_check_string_is_e3069283),
        cmocka_unit_test(test_crc32c_of_nothing_is_zero_and_it_chains),
        cmocka_unit_test(test_crc32c_detects_every_single_bit_flip),
        cmocka_unit_test(test_hash64_is_deterministic_and_alignment_free),
        cmocka_unit_test(test_hash64_depends_on_seed_length_and_every_bit),
        cmocka_unit_test(test_hash_step_is_order_dependent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
