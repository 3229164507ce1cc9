/*
 * hash.h -- the hashes the core uses: a 64-bit hash for keys and digests,
 * and CRC-32C for journal records. Both are fixed functions of their input
 * bytes (little-endian reads), so digests match across runs and machines.
 */
#ifndef BR_HASH_H
#define BR_HASH_H

#include <stddef.h>
#include <stdint.h>

/* Finalizer that spreads every input bit over the output (splitmix64's). */
static inline uint64_t br_mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

/* Order-dependent combination of a running hash with one more value. */
static inline uint64_t br_hash_step(uint64_t h, uint64_t v)
{
    return br_mix64(h ^ (v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2)));
}

/* 64-bit hash of len bytes, seeded. O(len). Used for idempotency keys,
 * provider event ids, emails and digests. Not cryptographic. */
uint64_t br_hash64(const void *data, size_t len, uint64_t seed);

/* CRC-32C (Castagnoli) of len bytes, continuing from crc (start with 0). O(len). */
uint32_t br_crc32c(uint32_t crc, const void *data, size_t len);

#endif
