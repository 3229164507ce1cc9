/*
 * ratelimit.h -- token buckets per key (a user id, a client address), and
 * the client address itself behind trusted proxies.
 *
 * A bucket holds up to `burst` tokens and refills at `rps` per second; a
 * request takes one token or is refused with the time until the next one.
 * Buckets live in a fixed table (slots_max, 8-way set-associative): when a
 * set is full the bucket seen longest ago is reused, which at worst hands a
 * forgotten client a fresh burst -- never refuses someone wrongly. Locks are
 * striped by set, so limiting costs one uncontended mutex per request.
 *
 * Client address: the peer, unless the peer is a trusted proxy
 * (--trusted-proxies CIDR,...), then the right-most X-Forwarded-For entry
 * that is not itself trusted.
 */
#ifndef BR_RATELIMIT_H
#define BR_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BR_RATE_WAYS 8u        /* buckets per set */
#define BR_RATE_STRIPES 64u    /* mutexes */
#define BR_CIDR_MAX 32u        /* trusted proxy ranges */
#define BR_ADDR_TEXT_MAX 48u   /* textual IPv6 + NUL */

struct br_rate {
    double rps;   /* tokens per second; 0 = limiting off */
    double burst; /* bucket size, >= 1 when on */
};

/* Parses "RPS:BURST" or "0". Returns 0 or -1. */
int br_rate_parse(const char *s, struct br_rate *out);

struct br_ratelimit;

/* slots_max is rounded up to a power of two >= BR_RATE_WAYS. BR_OK or BR_E_IO. */
int br_ratelimit_new(struct br_ratelimit **rl, struct br_rate rate, uint32_t slots_max);
void br_ratelimit_free(struct br_ratelimit *rl);

/* Takes a token for key at now_us (monotonic). true = allowed; otherwise
 * *retry_after_s is the whole seconds until one is available (>= 1). */
bool br_ratelimit_allow(struct br_ratelimit *rl, uint64_t key, int64_t now_us,
                        unsigned *retry_after_s);

struct br_cidr {
    int family;       /* AF_INET or AF_INET6 */
    uint8_t addr[16];
    unsigned bits;
};

/* Parses "10.0.0.0/8,::1/128,192.168.1.7" into out. Returns the count or -1. */
int br_cidr_parse_list(const char *s, struct br_cidr *out, unsigned cap);

/* Whether the textual address lies in one of the ranges. */
bool br_cidr_match(const struct br_cidr *list, unsigned n, const char *addr);

/* The client address for a request (see above) into out. */
void br_client_addr(const char *peer, const char *forwarded_for, const struct br_cidr *trusted,
                    unsigned trusted_count, char out[BR_ADDR_TEXT_MAX]);

#endif
