/* test_heap.c -- the indexed deadline heap: order, ties by key, removal from
 * the middle, FULL, back-links (br_heap_check). */
#include "support.h"

#include <string.h>

#include "core/heap.h"
#include "core/rng.h"

enum { CAP = 64 };

struct theap {
    struct br_heap h;
    struct br_heap_node nodes[CAP];
    uint32_t pos[CAP];
};

static void theap_init(struct theap *t, uint32_t count_max)
{
    memset(t->pos, 0xff, sizeof t->pos);
    br_heap_init(&t->h, t->nodes, count_max, t->pos);
    assert_null(br_heap_top(&t->h));
    br_heap_check(&t->h);
}

static uint32_t pop(struct theap *t)
{
    const struct br_heap_node *top = br_heap_top(&t->h);
    assert_non_null(top);
    uint32_t item = top->item;
    br_heap_remove(&t->h, item);
    assert_int_equal(t->pos[item], BR_HEAP_NOWHERE);
    br_heap_check(&t->h);
    return item;
}

static void test_pops_in_deadline_order(void **state)
{
    (void)state;
    struct theap t;
    theap_init(&t, CAP);
    const int64_t deadlines[] = {50, 10, 40, 20, 30};
    for (uint32_t i = 0; i < 5; i++) {
        assert_int_equal(br_heap_push(&t.h, i, deadlines[i], 100 + i), BR_OK);
        br_heap_check(&t.h);
    }
    const uint32_t want[] = {1, 3, 4, 2, 0};
    for (int i = 0; i < 5; i++) {
        assert_int_equal(pop(&t), want[i]);
    }
    assert_null(br_heap_top(&t.h));
}

static void test_equal_deadlines_pop_by_key_whatever_the_push_order(void **state)
{
    (void)state;
    struct theap t;
    theap_init(&t, CAP);
    /* items 0..5 share one deadline; keys are pushed in a scrambled order */
    const uint64_t keys[] = {30, 10, 60, 20, 50, 40};
    for (uint32_t i = 0; i < 6; i++) {
        assert_int_equal(br_heap_push(&t.h, i, 1000, keys[i]), BR_OK);
    }
    assert_int_equal(br_heap_push(&t.h, 6, 999, 99), BR_OK);
    const uint32_t want[] = {6, 1, 3, 0, 5, 4, 2};
    for (int i = 0; i < 7; i++) {
        assert_int_equal(pop(&t), want[i]);
    }
}

static void test_remove_from_the_middle_keeps_order_and_links(void **state)
{
    (void)state;
    struct theap t;
    theap_init(&t, CAP);
    for (uint32_t i = 0; i < 20; i++) {
        assert_int_equal(br_heap_push(&t.h, i, (int64_t)((i * 7) % 20), i), BR_OK);
    }
    /* Remove items sitting deep inside the array, then the last node. */
    const uint32_t victims[] = {13, 4, 18, 0};
    for (int v = 0; v < 4; v++) {
        assert_true(t.pos[victims[v]] != BR_HEAP_NOWHERE);
        br_heap_remove(&t.h, victims[v]);
        assert_int_equal(t.pos[victims[v]], BR_HEAP_NOWHERE);
        br_heap_check(&t.h);
    }
    br_heap_remove(&t.h, t.nodes[t.h.count - 1].item);
    br_heap_check(&t.h);
    assert_int_equal(t.h.count, 15);
    int64_t last = -1;
    while (t.h.count > 0) {
        int64_t d = br_heap_top(&t.h)->deadline_ms;
        uint32_t item = pop(&t);
        assert_true(item != 13 && item != 4 && item != 18 && item != 0);
        assert_true(d >= last);
        last = d;
    }
}

static void test_full_heap_refuses_a_push_and_stays_intact(void **state)
{
    (void)state;
    struct theap t;
    theap_init(&t, 3);
    for (uint32_t i = 0; i < 3; i++) {
        assert_int_equal(br_heap_push(&t.h, i, 10 - (int64_t)i, i), BR_OK);
    }
    assert_int_equal(br_heap_push(&t.h, 3, 0, 3), BR_E_FULL);
    assert_int_equal(t.pos[3], BR_HEAP_NOWHERE);
    assert_int_equal(t.h.count, 3);
    br_heap_check(&t.h);
    assert_int_equal(br_heap_top(&t.h)->item, 2);
    /* After a removal there is room again. */
    br_heap_remove(&t.h, 1);
    assert_int_equal(br_heap_push(&t.h, 3, 0, 3), BR_OK);
    assert_int_equal(br_heap_top(&t.h)->item, 3);
    br_heap_check(&t.h);
}

static void test_two_heaps_share_one_back_link_array(void **state)
{
    (void)state;
    struct br_heap_node n1[8], n2[8];
    uint32_t pos[16];
    memset(pos, 0xff, sizeof pos);
    struct br_heap a, b;
    br_heap_init(&a, n1, 8, pos);
    br_heap_init(&b, n2, 8, pos);
    for (uint32_t i = 0; i < 16; i++) {
        assert_int_equal(br_heap_push(i % 2 ? &b : &a, i, (int64_t)(16 - i), i), BR_OK);
    }
    br_heap_check(&a);
    br_heap_check(&b);
    assert_int_equal(br_heap_top(&a)->item, 14);
    assert_int_equal(br_heap_top(&b)->item, 15);
    br_heap_remove(&b, 7);
    br_heap_check(&a);
    br_heap_check(&b);
    assert_int_equal(b.count, 7);
}

static void test_random_pushes_and_removals_pop_sorted(void **state)
{
    (void)state;
    struct theap t;
    struct br_rng r;
    br_rng_seed(&r, 11, 0);
    for (int round = 0; round < 200; round++) {
        theap_init(&t, CAP);
        for (int step = 0; step < 200; step++) {
            uint32_t item = (uint32_t)br_rng_below(&r, CAP);
            if (t.pos[item] == BR_HEAP_NOWHERE) {
                /* few distinct deadlines, so ties are frequent */
                int64_t d = (int64_t)br_rng_below(&r, 5);
                assert_int_equal(br_heap_push(&t.h, item, d, br_rng_next(&r) % 1000), BR_OK);
            } else {
                br_heap_remove(&t.h, item);
            }
            br_heap_check(&t.h);
        }
        int64_t last_d = INT64_MIN;
        uint64_t last_k = 0;
        while (t.h.count > 0) {
            const struct br_heap_node *top = br_heap_top(&t.h);
            assert_true(top->deadline_ms > last_d ||
                        (top->deadline_ms == last_d && top->key >= last_k));
            last_d = top->deadline_ms;
            last_k = top->key;
            pop(&t);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pops_in_deadline_order),
        cmocka_unit_test(test_equal_deadlines_pop_by_key_whatever_the_push_order),
        cmocka_unit_test(test_remove_from_the_middle_keeps_order_and_links),
        cmocka_unit_test(test_full_heap_refuses_a_push_and_stays_intact),
        cmocka_unit_test(test_two_heaps_share_one_back_link_array),
        cmocka_unit_test(test_random_pushes_and_removals_pop_sorted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
