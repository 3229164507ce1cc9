/*
 * rush_hist.h -- a log-linear latency histogram: 32 sub-buckets per power of
 * two from 1 us to 2^37 us, relative error <= 3.2%, exact count, sum and max.
 *
 * Layout (rush_hist.c): a value v < 32 us has its own bucket (v). A value
 * v >= 32 with e = floor(log2 v) goes to row e - 4 (1..32) and, within the
 * row, to the next 5 bits after the leading one, so a bucket spans 2^(e-5)
 * values and its upper bound is at most 1/32 (3.125%) above any value in it.
 * Values at or above 2^37 us (38 hours) land in the last bucket; the exact max
 * still records them and a quantile there answers the max. Fixed size (4.2 KiB),
 * no allocation; add is O(1), merge, reset and quantile O(buckets).
 */
#ifndef BR_SERVER_RUSH_HIST_H
#define BR_SERVER_RUSH_HIST_H

#include <stdint.h>
#define BR_RUSH_HIST_BUCKETS 1056u      /* 33 powers of two x 32 sub-buckets: 1 us .. 2^37 us, <= 3.2% */
struct br_rush_hist { uint64_t count, sum_us, max_us; uint32_t counts[BR_RUSH_HIST_BUCKETS]; };
void br_rush_hist_reset(struct br_rush_hist *h);
void br_rush_hist_add(struct br_rush_hist *h, uint64_t us);
void br_rush_hist_merge(struct br_rush_hist *dst, const struct br_rush_hist *src);
/* The q-quantile (q clamped to [0, 1]) as the rank ceil(q * count) (at least 1) of the sorted values: the upper
 * bound of that value's bucket, clamped to the max, so within 3.2% above the exact answer; 0 when empty. */
uint64_t br_rush_hist_quantile(const struct br_rush_hist *h, double q); /* bucket upper bound, <= max; 0 empty */

/* The bucket of a value and a bucket's largest value (exposed for the test of the layout). */
uint32_t br_rush_hist_bucket(uint64_t us);
uint64_t br_rush_hist_bucket_upper(uint32_t bucket);

#endif /* BR_SERVER_RUSH_HIST_H */
