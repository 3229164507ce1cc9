/*
 * rng.h -- a seeded, splittable pseudo-random generator (xoshiro256**).
 *
 * One seed is split into independent streams, one per subsystem (the opening
 * shuffle of each event, the simulator's crowd, its faults, ...), so adding a
 * draw in one subsystem never shifts the numbers another one sees. The state
 * is a plain value owned by the caller; nothing here reads a clock.
 */
#ifndef BR_RNG_H
#define BR_RNG_H

#include <stdint.h>

struct br_rng {
    uint64_t s[4];
};

/* Seeds a stream from (seed, stream). Distinct streams are independent. */
void br_rng_seed(struct br_rng *r, uint64_t seed, uint64_t stream);

/* A child stream derived from the parent's seed material and a stream id;
 * the parent is not advanced. */
struct br_rng br_rng_split(const struct br_rng *parent, uint64_t stream);

/* Next 64 random bits. */
uint64_t br_rng_next(struct br_rng *r);

/* Uniform integer in [0, n), n > 0, without modulo bias. */
uint64_t br_rng_below(struct br_rng *r, uint64_t n);

/* Uniform double in [0, 1). */
double br_rng_unit(struct br_rng *r);

/* true with probability p (clamped to [0, 1]). */
int br_rng_chance(struct br_rng *r, double p);

#endif
