/*
 * test_rush_hist.c -- the rush's log-linear histogram (server/rush_hist.h):
 * quantiles within 3.2% of the exact quantile of the sorted values over seeded
 * random data of several shapes, the exact max, merge equal to adding both,
 * reset, the empty histogram, the value 0 and values beyond the range.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "core/rng.h"
#include "server/rush_hist.h"

#define SAMPLES 20000u
static const double QS[] = {0.0, 0.01, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0};

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* The reference: the value of rank ceil(q * n) (at least 1) in the sorted array. */
static uint64_t exact_quantile(const uint64_t *sorted, size_t n, double q)
{
    double want = q * (double)n;
    size_t rank = (size_t)want;
    if ((double)rank < want) {
        rank++;
    }
    if (rank < 1) {
        rank = 1;
    }
    return sorted[rank - 1];
}

/* shape 0: uniform 0..2^20 us; 1: log-uniform 1 us .. 2^36 us; 2: a tight cluster around 5 ms. */
static uint64_t draw(struct br_rng *r, int shape)
{
    switch (shape) {
    case 0:
        return br_rng_below(r, 1u << 20);
    case 1: {
        uint64_t e = br_rng_below(r, 36);
        return (1ull << e) + br_rng_below(r, 1ull << e);
    }
    default:
        return 5000u + br_rng_below(r, 300);
    }
}

static void check_shape(int shape, uint64_t seed)
{
    static uint64_t v[SAMPLES];
    struct br_rush_hist *h = calloc(1, sizeof *h);
    assert_non_null(h);
    struct br_rng r;
    br_rng_seed(&r, seed, 0x48495354u + (uint64_t)shape);
    uint64_t max = 0;
    for (size_t i = 0; i < SAMPLES; i++) {
        v[i] = draw(&r, shape);
        br_rush_hist_add(h, v[i]);
        max = v[i] > max ? v[i] : max;
    }
    qsort(v, SAMPLES, sizeof v[0], cmp_u64);
    assert_int_equal(h->count, SAMPLES);
    assert_int_equal(h->max_us, max);
    for (size_t k = 0; k < sizeof QS / sizeof QS[0]; k++) {
        uint64_t want = exact_quantile(v, SAMPLES, QS[k]);
        uint64_t got = br_rush_hist_quantile(h, QS[k]);
        /* never below the exact value, at most 3.2% above it */
        if (got < want || (double)(got - want) > 0.032 * (double)want) {
            fail_msg("shape %d seed %llu q %.3f: histogram %llu, exact %llu", shape,
                     (unsigned long long)seed, QS[k], (unsigned long long)got,
                     (unsigned long long)want);
        }
    }
    assert_int_equal(br_rush_hist_quantile(h, 1.0), max);
    free(h);
}

static void test_quantiles_within_3_2_percent_of_sorted(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 5; seed++) {
        for (int shape = 0; shape < 3; shape++) {
            check_shape(shape, seed);
        }
    }
}

static void test_every_value_below_2_pow_20_within_bound(void **state)
{
    (void)state;
    /* exhaustively: a value's bucket bound is >= it and within 1/32 above */
    for (uint64_t v = 0; v < (1u << 20); v++) {
        uint64_t up = br_rush_hist_bucket_upper(br_rush_hist_bucket(v));
        if (up < v || (double)(up - v) > 0.032 * (double)v) {
            fail_msg("value %llu: bucket %u upper %llu", (unsigned long long)v,
                     br_rush_hist_bucket(v), (unsigned long long)up);
        }
    }
}

static void test_merge_equals_adding_both(void **state)
{
    (void)state;
    struct br_rush_hist *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b),
                        *both = calloc(1, sizeof *both);
    assert_true(a && b && both);
    struct br_rng r;
    br_rng_seed(&r, 7, 1);
    for (int i = 0; i < 5000; i++) {
        uint64_t x = draw(&r, 1), y = draw(&r, 0);
        br_rush_hist_add(a, x);
        br_rush_hist_add(b, y);
        br_rush_hist_add(both, x);
        br_rush_hist_add(both, y);
    }
    br_rush_hist_merge(a, b);
    assert_int_equal(a->count, both->count);
    assert_int_equal(a->sum_us, both->sum_us);
    assert_int_equal(a->max_us, both->max_us);
    assert_memory_equal(a->counts, both->counts, sizeof a->counts);
    for (size_t k = 0; k < sizeof QS / sizeof QS[0]; k++) {
        assert_int_equal(br_rush_hist_quantile(a, QS[k]), br_rush_hist_quantile(both, QS[k]));
    }
    /* merging an empty one changes nothing; merging into an empty one copies */
    struct br_rush_hist *e = calloc(1, sizeof *e);
    assert_non_null(e);
    br_rush_hist_merge(both, e);
    assert_int_equal(both->count, a->count);
    br_rush_hist_merge(e, b);
    assert_memory_equal(e, b, sizeof *e);
    free(a);
    free(b);
    free(both);
    free(e);
}

static void test_reset_and_empty(void **state)
{
    (void)state;
    struct br_rush_hist *h = calloc(1, sizeof *h);
    assert_non_null(h);
    assert_int_equal(br_rush_hist_quantile(h, 0.5), 0);
    assert_int_equal(br_rush_hist_quantile(h, 0.99), 0);
    br_rush_hist_add(h, 1234);
    br_rush_hist_add(h, 99999);
    assert_int_equal(h->count, 2);
    assert_int_equal(h->sum_us, 1234 + 99999);
    br_rush_hist_reset(h);
    assert_int_equal(h->count, 0);
    assert_int_equal(h->sum_us, 0);
    assert_int_equal(h->max_us, 0);
    assert_int_equal(br_rush_hist_quantile(h, 1.0), 0);
    for (uint32_t b = 0; b < BR_RUSH_HIST_BUCKETS; b++) {
        assert_int_equal(h->counts[b], 0);
    }
    free(h);
}

static void test_zero_single_and_max(void **state)
{
    (void)state;
    struct br_rush_hist *h = calloc(1, sizeof *h);
    assert_non_null(h);
    br_rush_hist_add(h, 0);
    assert_int_equal(h->count, 1);
    assert_int_equal(br_rush_hist_quantile(h, 0.5), 0);
    assert_int_equal(br_rush_hist_quantile(h, 1.0), 0);
    /* one value: every quantile is clamped to the exact max, not the bucket bound */
    br_rush_hist_reset(h);
    br_rush_hist_add(h, 100001);
    assert_true(br_rush_hist_bucket_upper(br_rush_hist_bucket(100001)) > 100001);
    assert_int_equal(br_rush_hist_quantile(h, 0.0), 100001);
    assert_int_equal(br_rush_hist_quantile(h, 0.5), 100001);
    assert_int_equal(br_rush_hist_quantile(h, 2.0), 100001); /* q clamped */
    /* small values are exact */
    br_rush_hist_reset(h);
    for (uint64_t v = 0; v < 32; v++) {
        br_rush_hist_add(h, v);
    }
    assert_int_equal(br_rush_hist_quantile(h, 0.5), 15);
    assert_int_equal(br_rush_hist_quantile(h, -1.0), 0);
    free(h);
}

static void test_values_beyond_range(void **state)
{
    (void)state;
    struct br_rush_hist *h = calloc(1, sizeof *h);
    assert_non_null(h);
    uint64_t big = 1ull << 40, huge = UINT64_MAX / 2;
    assert_int_equal(br_rush_hist_bucket(big), BR_RUSH_HIST_BUCKETS - 1u);
    assert_int_equal(br_rush_hist_bucket(huge), BR_RUSH_HIST_BUCKETS - 1u);
    assert_int_equal(br_rush_hist_bucket((1ull << 37) - 1u), BR_RUSH_HIST_BUCKETS - 1u);
    assert_int_equal(br_rush_hist_bucket_upper(BR_RUSH_HIST_BUCKETS - 1u), (1ull << 37) - 1u);
    br_rush_hist_add(h, 10);
    br_rush_hist_add(h, big);
    br_rush_hist_add(h, huge);
    assert_int_equal(h->count, 3);
    assert_int_equal(h->max_us, huge);
    assert_int_equal(br_rush_hist_quantile(h, 0.1), 10);
    assert_int_equal(br_rush_hist_quantile(h, 1.0), huge); /* the overflow bucket answers the max */
    br_rush_hist_add(h, UINT64_MAX); /* the sum saturates instead of wrapping */
    assert_int_equal(h->sum_us, UINT64_MAX);
    free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quantiles_within_3_2_percent_of_sorted),
        cmocka_unit_test(test_every_value_below_2_pow_20_within_bound),
        cmocka_unit_test(test_merge_equals_adding_both),
        cmocka_unit_test(test_reset_and_empty),
        cmocka_unit_test(test_zero_single_and_max),
        cmocka_unit_test(test_values_beyond_range),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
