/*
 * rng.c -- xoshiro256** seeded through splitmix64. Streams: the seed material
 * is hashed together with the stream id, so split streams never overlap in
 * practice and do not depend on how far the parent has advanced.
 */
#include "rng.h"

#include "hash.h"

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

void br_rng_seed(struct br_rng *r, uint64_t seed, uint64_t stream)
{
    uint64_t x = br_mix64(seed) ^ br_mix64(stream + 0x632be59bd9b4e019ULL);
    for (int i = 0; i < 4; i++) {
        x += 0x9e3779b97f4a7c15ULL;
        r->s[i] = br_mix64(x);
    }
    if ((r->s[0] | r->s[1] | r->s[2] | r->s[3]) == 0) {
        r->s[0] = 1; /* the all-zero state is the one xoshiro cannot leave */
    }
}

struct br_rng br_rng_split(const struct br_rng *parent, uint64_t stream)
{
    struct br_rng child;
    uint64_t material = parent->s[0] ^ rotl(parent->s[1], 17) ^ rotl(parent->s[2], 31) ^
                        rotl(parent->s[3], 47);
    br_rng_seed(&child, material, stream);
    return child;
}

uint64_t br_rng_next(struct br_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint64_t br_rng_below(struct br_rng *r, uint64_t n)
{
    /* Rejection sampling: draws above the largest multiple of n are redrawn.
     * The expected number of draws is < 2 for every n. */
    if (n <= 1) {
        return 0;
    }
    uint64_t limit = UINT64_MAX - (UINT64_MAX % n);
    for (;;) {
        uint64_t x = br_rng_next(r);
        if (x < limit) {
            return x % n;
        }
    }
}

double br_rng_unit(struct br_rng *r)
{
    return (double)(br_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

int br_rng_chance(struct br_rng *r, double p)
{
    if (p <= 0.0) {
        return 0;
    }
    if (p >= 1.0) {
        return 1;
    }
    return br_rng_unit(r) < p;
}
