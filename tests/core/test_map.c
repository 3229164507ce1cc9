/* test_map.c -- the fixed-capacity hash map: put/get/del, backward-shift
 * deletion under heavy collisions and wrap-around, FULL, DUPLICATE, check. */
#include "support.h"

#include <stdlib.h>
#include <string.h>

#include "core/map.h"
#include "core/rng.h"

/* A map of count_max entries over a buffer the test owns. */
struct tmap {
    struct br_map m;
    _Alignas(16) uint8_t mem[64 * 1024];
};

static void tmap_init(struct tmap *t, uint32_t count_max)
{
    struct br_arena a = {.base = t->mem, .size = sizeof t->mem, .used = 0};
    br_map_init(&t->m, &a, count_max);
    assert_true(a.used <= a.size);
    assert_non_null(t->m.slots);
    br_map_check(&t->m);
}

/* The slot a key lands in when the map is empty: its home, found through
 * the map itself so the test does not copy the hash function. */
static uint32_t home_of(struct tmap *scratch, uint64_t a, uint64_t b)
{
    assert_int_equal(scratch->m.count, 0);
    assert_int_equal(br_map_put(&scratch->m, a, b, 0), BR_OK);
    uint32_t at = UINT32_MAX;
    for (uint32_t i = 0; i <= scratch->m.mask; i++) {
        if (scratch->m.slots[i].used) {
            at = i;
        }
    }
    assert_true(br_map_del(&scratch->m, a, b));
    assert_true(at != UINT32_MAX);
    return at;
}

/* Up to n keys (k, 7) whose home is `home`, searched over k = 1, 2, ... */
static uint32_t colliding_keys(struct tmap *scratch, uint32_t home, uint64_t *keys, uint32_t n)
{
    uint32_t found = 0;
    for (uint64_t k = 1; k < 200000 && found < n; k++) {
        if (home_of(scratch, k, 7) == home) {
            keys[found++] = k;
        }
    }
    return found;
}

static void test_put_get_del_round_trip(void **state)
{
    (void)state;
    struct tmap *t = calloc(1, sizeof *t);
    tmap_init(t, 16);
    uint32_t v = 0;
    assert_false(br_map_get(&t->m, 1, 2, &v));
    assert_int_equal(br_map_put(&t->m, 1, 2, 77), BR_OK);
    assert_int_equal(br_map_put(&t->m, 2, 1, 88), BR_OK); /* (a, b) is ordered */
    assert_true(br_map_get(&t->m, 1, 2, &v));
    assert_int_equal(v, 77);
    assert_true(br_map_get(&t->m, 2, 1, &v));
    assert_int_equal(v, 88);
    assert_int_equal(t->m.count, 2);
    assert_true(br_map_del(&t->m, 1, 2));
    assert_false(br_map_del(&t->m, 1, 2));
    assert_false(br_map_get(&t->m, 1, 2, &v));
    assert_true(br_map_get(&t->m, 2, 1, &v));
    assert_int_equal(t->m.count, 1);
    br_map_check(&t->m);
    free(t);
}

static void test_put_of_present_key_is_duplicate_and_keeps_the_value(void **state)
{
    (void)state;
    struct tmap *t = calloc(1, sizeof *t);
    tmap_init(t, 4);
    assert_int_equal(br_map_put(&t->m, 5, 5, 1), BR_OK);
    assert_int_equal(br_map_put(&t->m, 5, 5, 2), BR_E_DUPLICATE);
    uint32_t v = 0;
    assert_true(br_map_get(&t->m, 5, 5, &v));
    assert_int_equal(v, 1);
    assert_int_equal(t->m.count, 1);
    br_map_check(&t->m);
    free(t);
}

static void test_full_map_refuses_new_keys_but_reports_duplicates(void **state)
{
    (void)state;
    struct tmap *t = calloc(1, sizeof *t);
    tmap_init(t, 4);
    for (uint64_t k = 1; k <= 4; k++) {
        assert_int_equal(br_map_put(&t->m, k, 0, (uint32_t)k), BR_OK);
    }
    assert_int_equal(br_map_put(&t->m, 99, 0, 99), BR_E_FULL);
    assert_int_equal(br_map_put(&t->m, 3, 0, 99), BR_E_DUPLICATE);
    uint32_t v = 0;
    assert_false(br_map_get(&t->m, 99, 0, &v));
    assert_int_equal(t->m.count, 4);
    br_map_check(&t->m);
    /* A delete makes room again. */
    assert_true(br_map_del(&t->m, 2, 0));
    assert_int_equal(br_map_put(&t->m, 99, 0, 99), BR_OK);
    br_map_check(&t->m);
    free(t);
}

static void test_slots_keep_load_at_most_half(void **state)
{
    (void)state;
    struct tmap *t = calloc(1, sizeof *t);
    const uint32_t sizes[] = {1, 2, 3, 5, 8, 100};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        tmap_init(t, sizes[i]);
        assert_true(t->m.mask + 1 >= 2 * sizes[i]);
        assert_int_equal((t->m.mask + 1) & t->m.mask, 0); /* a power of two */
    }
    free(t);
}

/* Every colliding key stays findable through every deletion order the test
 * tries, and br_map_check holds after each step. */
static void check_colliding_deletes(uint32_t home, uint32_t order_seed)
{
    struct tmap *scratch = calloc(1, sizeof *scratch);
    struct tmap *t = calloc(1, sizeof *t);
    tmap_init(scratch, 32);
    tmap_init(t, 32);
    uint64_t same[12], next[4];
    assert_int_equal(colliding_keys(scratch, home, same, 12), 12);
    uint32_t home2 = (home + 1) & scratch->m.mask;
    assert_int_equal(colliding_keys(scratch, home2, next, 4), 4);
    /* Interleave: the neighbours' keys sit inside the long run and must move
     * back only as far as their own home. */
    uint64_t keys[16];
    for (int i = 0; i < 12; i++) {
        keys[i] = same[i];
    }
    for (int i = 0; i < 4; i++) {
        keys[12 + i] = next[i];
    }
    for (int i = 0; i < 16; i++) {
        assert_int_equal(br_map_put(&t->m, keys[i], 7, (uint32_t)i), BR_OK);
        br_map_check(&t->m);
    }
    bool gone[16] = {false};
    struct br_rng r;
    br_rng_seed(&r, order_seed, 0);
    for (int left = 16; left > 0; left--) {
        uint32_t pick = (uint32_t)br_rng_below(&r, (uint64_t)left);
        int idx = -1;
        for (int i = 0; i < 16; i++) {
            if (!gone[i] && pick-- == 0) {
                idx = i;
                break;
            }
        }
        assert_true(idx >= 0);
        assert_true(br_map_del(&t->m, keys[idx], 7));
        gone[idx] = true;
        br_map_check(&t->m);
        for (int i = 0; i < 16; i++) {
            uint32_t v = UINT32_MAX;
            assert_int_equal(br_map_get(&t->m, keys[i], 7, &v), !gone[i]);
            if (!gone[i]) {
                assert_int_equal(v, (uint32_t)i);
            }
        }
    }
    assert_int_equal(t->m.count, 0);
    free(scratch);
    free(t);
}

static void test_backward_shift_keeps_colliding_keys_findable(void **state)
{
    (void)state;
    for (uint32_t seed = 1; seed <= 20; seed++) {
        check_colliding_deletes(5, seed);
    }
}

static void test_backward_shift_across_the_end_of_the_slot_array(void **state)
{
    (void)state;
    /* Home at the last slot: the run wraps to slot 0 and beyond. */
    for (uint32_t seed = 1; seed <= 20; seed++) {
        check_colliding_deletes(63, seed);
        check_colliding_deletes(61, seed);
    }
}

static void test_random_operations_agree_with_a_reference(void **state)
{
    (void)state;
    enum { KEYS = 48, CAP = 40 };
    struct tmap *t = calloc(1, sizeof *t);
    tmap_init(t, CAP);
    uint32_t ref[KEYS];
    bool present[KEYS] = {false};
    uint32_t count = 0;
    struct br_rng r;
    br_rng_seed(&r, 77, 1);
    for (int step = 0; step < 20000; step++) {
        uint32_t k = (uint32_t)br_rng_below(&r, KEYS);
        uint64_t a = k * 1000003ULL, b = k % 3;
        if (br_rng_chance(&r, 0.55)) {
            uint32_t v = (uint32_t)br_rng_next(&r);
            int rc = br_map_put(&t->m, a, b, v);
            if (present[k]) {
                assert_int_equal(rc, BR_E_DUPLICATE);
            } else if (count == CAP) {
                assert_int_equal(rc, BR_E_FULL);
            } else {
                assert_int_equal(rc, BR_OK);
                present[k] = true;
                ref[k] = v;
                count++;
            }
        } else {
            assert_int_equal(br_map_del(&t->m, a, b), present[k]);
            count -= present[k];
            present[k] = false;
        }
        br_map_check(&t->m);
        assert_int_equal(t->m.count, count);
        uint32_t v;
        assert_int_equal(br_map_get(&t->m, a, b, &v), present[k]);
        if (present[k]) {
            assert_int_equal(v, ref[k]);
        }
    }
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_get_del_round_trip),
        cmocka_unit_test(test_put_of_present_key_is_duplicate_and_keeps_the_value),
        cmocka_unit_test(test_full_map_refuses_new_keys_but_reports_duplicates),
        cmocka_unit_test(test_slots_keep_load_at_most_half),
        cmocka_unit_test(test_backward_shift_keeps_colliding_keys_findable),
        cmocka_unit_test(test_backward_shift_across_the_end_of_the_slot_array),
        cmocka_unit_test(test_random_operations_agree_with_a_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
