/*
 * stripe.h -- the Stripe payment provider (provider.h) over its HTTP API
 * with libcurl: create a PaymentIntent, refund it, query (and void) it.
 *
 * Every POST carries the provider's idempotency key ("charge-<payment>",
 * "refund-<payment>"): a try that timed out after the request left has an
 * unknown outcome and is repeated with the SAME key, so Stripe answers with
 * the first result instead of charging or refunding twice. Because Stripe
 * forgets keys after 24 h, the payment -> intent map (PostgreSQL
 * stripe_intents through pg.h, or an in-memory map when cfg.pg is NULL, for
 * tests) is consulted before any creation: an intent is never created
 * twice by key alone.
 *
 * One call makes up to attempts_max tries with backoff (200 ms x2 up to 5 s,
 * +-25 % jitter) on network errors, 409, 429, 5xx, or when Stripe says
 * "Stripe-Should-Retry: true". Errors are translated here into enum br_err
 * and logged with Stripe's error type, code and request id; the secret key
 * is never logged. Thread-safe: a mutex-guarded pool of curl handles.
 */
#ifndef BR_STRIPE_H
#define BR_STRIPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "adapters/provider.h"

struct br_pg;
struct br_log;
struct br_stripe;

struct br_stripe_config {
    const char *api_base;      /* "https://api.stripe.com" or the double's URL; copied */
    const char *secret_key;    /* "sk_..."; copied; never logged */
    long connect_timeout_ms;   /* 2000 */
    long timeout_ms;           /* 10000, one attempt */
    unsigned attempts_max;     /* >= 1 */
    struct br_pg *pg;          /* the payment -> intent map (pg.h); NULL: in-memory map (tests) */
    const struct br_log *log;  /* NULL: stderr */
};

int br_stripe_new(struct br_stripe **s, const struct br_stripe_config *cfg); /* BR_OK, BR_E_INVALID, BR_E_IO */
struct br_provider br_stripe_provider(struct br_stripe *s);  /* create_intent, refund, query; confirm/start/stop NULL */
void br_stripe_free(struct br_stripe *s);

/* Counters for /metrics (br_stripe_requests_total{op,outcome},
 * br_stripe_replayed_total): an addition to the contract of ISSUE11.md §5.2 C.
 * Per call, one final outcome (ok, invalid, unavailable, unknown); per try that
 * was repeated, one "retry"; replayed = answers with Idempotent-Replayed: true. */
enum br_stripe_op { BR_STRIPE_OP_CREATE = 0, BR_STRIPE_OP_REFUND, BR_STRIPE_OP_QUERY,
                    BR_STRIPE_OP_VOID, BR_STRIPE_OP_COUNT };
enum br_stripe_outcome { BR_STRIPE_OK = 0, BR_STRIPE_RETRY, BR_STRIPE_UNKNOWN, BR_STRIPE_INVALID,
                         BR_STRIPE_UNAVAILABLE, BR_STRIPE_OUTCOME_COUNT };
struct br_stripe_stats {
    uint64_t requests[BR_STRIPE_OP_COUNT][BR_STRIPE_OUTCOME_COUNT];
    uint64_t replayed;
};
extern const char *const br_stripe_op_names[BR_STRIPE_OP_COUNT];           /* "create_intent", .. */
extern const char *const br_stripe_outcome_names[BR_STRIPE_OUTCOME_COUNT]; /* "ok", "retry", .. */
/* A snapshot (relaxed reads, thread-safe). */
void br_stripe_stats(const struct br_stripe *s, struct br_stripe_stats *out);

#endif
