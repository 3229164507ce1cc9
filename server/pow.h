/*
 * pow.h -- proof of work at the door (issue 13, point 5): challenges for
 * queue joins (per event, spec.pow_bits) and for registering
 * (--pow-register-bits; event 0, user 0).
 *
 * A challenge is "v1.<event>.<user>.<expires_ms>.<bits>.<rand>.<mac>": rand
 * 16 random bytes base64url, mac the first 16 bytes of
 * HMAC-SHA256(K, "pow|v1|event|user|expires|bits|rand") base64url, K =
 * HMAC-SHA256(secret, "bookingrush pow v1"). It lives BR_POW_TTL_MS. A
 * solution is a nonce (1..32 of [0-9a-zA-Z_-]) such that SHA-256(challenge
 * "." nonce) has at least bits leading zero bits.
 *
 * Verification, in this order: parse, MAC (constant time), now < expires,
 * event and user match, bits >= min_bits, the hash, then "used" (each
 * challenge is accepted once). The embedded deployment keeps the used set
 * here (an open-addressing table, 16 B an entry, entries free once
 * expired); the distributed one marks use in Redis (br_redis_pow_use).
 * Never journaled: the core never sees a join that failed the door.
 * Implemented in server/pow.c. A planted bug (BR_PLANT_POW_REUSE: a used challenge is
 * accepted again) proves tests/http/test_pow.c can fail (25-pow-plant.sh).
 */
#ifndef BR_POW_H
#define BR_POW_H

#include <stddef.h>
#include <stdint.h>

#include "core/limits.h"

#define BR_POW_TTL_MS 120000            /* a challenge's life */
#define BR_POW_USED_MAX_DEFAULT 262144u /* --pow-used-max: 4 MiB */
#define BR_POW_TEXT_MAX 160u            /* a challenge incl. NUL (= BR_POW_CHALLENGE_MAX) */

struct br_pow;

/* A used set of used_max entries. BR_OK or BR_E_FULL (out of memory). */
int br_pow_new(struct br_pow **pow, uint32_t used_max);
void br_pow_free(struct br_pow *pow);

/* Writes a challenge for (event, user) with bits (1..BR_POW_BITS_MAX) into
 * out[0..cap) (cap >= BR_POW_TEXT_MAX), expiring at now_ms + BR_POW_TTL_MS.
 * BR_OK, or BR_E_OVERLOADED when live used entries reach 90% of the table
 * (so verification never finds it full). */
int br_pow_issue(struct br_pow *pow, const char *secret, uint64_t event_id, uint64_t user_id,
                 unsigned bits, int64_t now_ms, char *out, size_t cap);

/* Verifies a solution for (event, user) needing at least min_bits, and
 * marks it used. pow NULL = the used set lives elsewhere (the caller marks
 * it). BR_OK, BR_E_POW_INVALID or BR_E_OVERLOADED. */
int br_pow_verify(struct br_pow *pow, const char *secret, const char *challenge,
                  const char *nonce, uint64_t event_id, uint64_t user_id, unsigned min_bits,
                  int64_t now_ms);

/* br_pow_verify without the used set: every check but "used", then the
 * challenge's used-set key, its expiry and (rand_hex not NULL) its random
 * part as 32 hex digits (backend pow_use). BR_OK or BR_E_POW_INVALID. */
#define BR_POW_RAND_HEX_MAX 33u
int br_pow_check(const char *secret, const char *challenge, const char *nonce, uint64_t event_id,
                 uint64_t user_id, unsigned min_bits, int64_t now_ms, uint64_t *key,
                 int64_t *expires_ms, char rand_hex[BR_POW_RAND_HEX_MAX]);

/* Occupied entries of the used set, live or not yet swept (tests, metrics). */
uint32_t br_pow_used(struct br_pow *pow);

/* Leading zero bits of a SHA-256 digest, 0..256. */
unsigned br_pow_leading_zero_bits(const uint8_t h[32]);

#endif
