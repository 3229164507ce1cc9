/*
 * provider_test_pg.h -- the built-in test payment provider for the
 * distributed deployment: the same behaviour as provider_test.h (Stripe's
 * test mode: intents, test cards, signed webhooks with retries), with the
 * intents in PostgreSQL's test_intents table (adapters/pg.h) instead of
 * one process's memory, so any server process can confirm an intent that
 * another created, and a restart loses none.
 *
 *   create_intent  one intent per payment id: the first stored wins
 *                  (br_pg_intent_put), so two processes creating at once
 *                  answer the same id and client secret
 *   confirm        the intent read from PostgreSQL, its client secret
 *                  compared in constant time; a success is recorded
 *                  ("succeeded", final: a second success is DUPLICATE)
 *                  before its webhook is queued; a decline changes nothing
 *                  stored, and the intent may be confirmed again
 *   refund         answers BR_OK (the test provider holds no money; the
 *                  saga needs to know the refund is done)
 *
 * Each process delivers the webhooks of the confirms it took, to its own
 * webhook URL, from one thread: POST, retried with backoff (x4 from 200 ms,
 * at most attempts_max), the same event id on every attempt; the confirm's
 * callback runs after the first attempt. A process that dies with
 * deliveries queued loses them (as Stripe's test mode would not): the
 * buyer's confirm got an answer and the payment stays pending. A decline
 * stored nothing, so a new confirm of the intent delivers again; a success
 * was recorded ("succeeded", final), so a new confirm answers DUPLICATE and
 * delivers nothing: the payment stays pending and the hold expires at its
 * deadline (the test provider holds no money).
 * Limits: BR_PROVIDER_PG_QUEUE_MAX deliveries queued per process.
 */
#ifndef BR_PROVIDER_TEST_PG_H
#define BR_PROVIDER_TEST_PG_H

#include <stdint.h>

#include "adapters/log.h"
#include "adapters/provider.h"

#define BR_PROVIDER_PG_QUEUE_MAX 65536u

struct br_pg;
struct br_provider_test_pg;

struct br_provider_test_pg_config {
    struct br_pg *pg;           /* not owned; must outlive the provider */
    const char *webhook_secret; /* "whsec_...", copied */
    unsigned attempts_max;      /* delivery attempts per event, >= 1 */
    const struct br_log *log;   /* NULL: br_log_stderr */
};

/* BR_OK, BR_E_INVALID, BR_E_IO. No thread until start. */
int br_provider_test_pg_new(struct br_provider_test_pg **p,
                            const struct br_provider_test_pg_config *cfg);

/* The provider interface over p (create_intent, refund, confirm, start, stop). */
struct br_provider br_provider_test_pg_provider(struct br_provider_test_pg *p);

/* Stops delivery (queued deliveries dropped, their callbacks run with
 * BR_E_UNAVAILABLE) and frees p (may be NULL). */
void br_provider_test_pg_free(struct br_provider_test_pg *p);

#endif
