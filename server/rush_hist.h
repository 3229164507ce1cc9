/*
 * rush_hist.h -- a log-linear latency histogram: 32 sub-buckets per power of
 * two from 1 us to 2^37 us, relative error <= 3.2%, exact count, sum and max.
 */
#ifndef BR_SERVER_RUSH_HIST_H
#define BR_SERVER_RUSH_HIST_H

#include <stdint.h>
#define BR_RUSH_HIST_BUCKETS 1056u      /* 33 powers of two x 32 sub-buckets: 1 us .. 2^37 us, <= 3.2% */
struct br_rush_hist { uint64_t count, sum_us, max_us; uint32_t counts[BR_RUSH_HIST_BUCKETS]; };
void br_rush_hist_reset(struct br_rush_hist *h);
void br_rush_hist_add(struct br_rush_hist *h, uint64_t us);
void br_rush_hist_merge(struct br_rush_hist *dst, const struct br_rush_hist *src);
uint64_t br_rush_hist_quantile(const struct br_rush_hist *h, double q); /* bucket upper bound, <= max; 0 empty */

#endif /* BR_SERVER_RUSH_HIST_H */
