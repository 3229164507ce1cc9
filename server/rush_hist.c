/*
 * rush_hist.c -- the rush's log-linear latency histogram (layout and error
 * bound in rush_hist.h). Pure: no I/O, no allocation, no clock.
 */
#include "server/rush_hist.h"

#include <string.h>

#include "core/panic.h"

#define SUB_BITS 5u /* 32 sub-buckets per power of two */
#define SUB_COUNT (1u << SUB_BITS)
#define ROWS 33u /* row 0: 0..31 exactly; row r >= 1: [2^(r+4), 2^(r+5)) */
#define RANGE_US (1ull << (ROWS + SUB_BITS - 1u)) /* 2^37: first value past the last row */

_Static_assert(ROWS *SUB_COUNT == BR_RUSH_HIST_BUCKETS, "buckets = rows x sub-buckets");

static uint32_t log2_floor(uint64_t v)
{
    return 63u - (uint32_t)__builtin_clzll(v);
}

uint32_t br_rush_hist_bucket(uint64_t us)
{
    if (us < SUB_COUNT) {
        return (uint32_t)us;
    }
    if (us >= RANGE_US) {
        return BR_RUSH_HIST_BUCKETS - 1u;
    }
    uint32_t e = log2_floor(us); /* 5..36 */
    uint32_t m = (uint32_t)(us >> (e - SUB_BITS)) & (SUB_COUNT - 1u);
    uint32_t b = (e - SUB_BITS + 1u) * SUB_COUNT + m;
    BR_ASSERT(b < BR_RUSH_HIST_BUCKETS);
    return b;
}

uint64_t br_rush_hist_bucket_upper(uint32_t bucket)
{
    BR_ASSERT(bucket < BR_RUSH_HIST_BUCKETS);
    if (bucket < SUB_COUNT) {
        return bucket;
    }
    uint32_t row = bucket / SUB_COUNT, m = bucket % SUB_COUNT;
    uint32_t e = row + SUB_BITS - 1u; /* the power of two of the row */
    uint64_t width = 1ull << (e - SUB_BITS);
    return (1ull << e) + (uint64_t)(m + 1u) * width - 1u;
}

void br_rush_hist_reset(struct br_rush_hist *h)
{
    memset(h, 0, sizeof *h);
}

void br_rush_hist_add(struct br_rush_hist *h, uint64_t us)
{
    uint32_t b = br_rush_hist_bucket(us);
    BR_ASSERT(h->counts[b] < UINT32_MAX);
    h->counts[b]++;
    h->count++;
    h->sum_us = (h->sum_us > UINT64_MAX - us) ? UINT64_MAX : h->sum_us + us;
    if (us > h->max_us) {
        h->max_us = us;
    }
}

void br_rush_hist_merge(struct br_rush_hist *dst, const struct br_rush_hist *src)
{
    if (src->count == 0) {
        return;
    }
    for (uint32_t b = 0; b < BR_RUSH_HIST_BUCKETS; b++) {
        BR_ASSERT(dst->counts[b] <= UINT32_MAX - src->counts[b]);
        dst->counts[b] += src->counts[b];
    }
    dst->count += src->count;
    dst->sum_us = (dst->sum_us > UINT64_MAX - src->sum_us) ? UINT64_MAX : dst->sum_us + src->sum_us;
    if (src->max_us > dst->max_us) {
        dst->max_us = src->max_us;
    }
}

uint64_t br_rush_hist_quantile(const struct br_rush_hist *h, double q)
{
    if (h->count == 0) {
        return 0;
    }
    if (!(q > 0.0)) { /* also NaN */
        q = 0.0;
    }
    if (q > 1.0) {
        q = 1.0;
    }
    double want = q * (double)h->count;
    uint64_t rank = (uint64_t)want;
    if ((double)rank < want) {
        rank++; /* ceil */
    }
    if (rank < 1) {
        rank = 1;
    }
    if (rank > h->count) {
        rank = h->count;
    }
    uint64_t seen = 0;
    for (uint32_t b = 0; b < BR_RUSH_HIST_BUCKETS; b++) {
        seen += h->counts[b];
        if (seen >= rank) {
            if (b == BR_RUSH_HIST_BUCKETS - 1u) {
                return h->max_us; /* the overflow bucket: only the max is known */
            }
            uint64_t up = br_rush_hist_bucket_upper(b);
            return up < h->max_us ? up : h->max_us;
        }
    }
    BR_ASSERT(0 && "counts sum to count");
    return h->max_us;
}
