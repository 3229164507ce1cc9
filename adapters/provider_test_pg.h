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
 *                  compared in constant time; the decision ("succeeded",
 *                  final: a second success is DUPLICATE; a decline leaves
 *                  it confirmable again) and its webhook event are written
 *                  in ONE transaction (br_pg_intent_decide: the event into
 *                  test_deliveries, an outbox, migration 0002)
 *   refund         answers BR_OK (the test provider holds no money; the
 *                  saga needs to know the refund is done)
 *
 * Delivery, from one thread per process, to its own webhook URL: POST,
 * signed afresh, the same event id on every attempt (the route
 * de-duplicates). A confirm's first attempt is made at once by the process
 * that took it (the confirm's callback runs after it); the event's row is
 * marked delivered only after a 2xx answer. Every other attempt comes from
 * the outbox: each process, at start and every SWEEP_MS, claims due
 * undelivered rows (FOR UPDATE SKIP LOCKED, then a lease: next_ms moved
 * LEASE_MS on, so two processes do not send the same event at once; a
 * double delivery is harmless) and POSTs them; a failure makes the row due
 * again after a backoff (x4 from 200 ms, at most 60 s). Nothing is given up
 * (Stripe retries for days): after attempts_max failures an error is logged
 * and retries go on. So a process that dies after the commit, with its
 * first attempt unsent or unanswered, loses nothing: another process (or
 * the same after a restart) delivers the event once the lease lapses
 * (LEASE_MS, about 6 s), and a new confirm still answers DUPLICATE.
 * Limits: rows are kept (one per confirm, delivered_ms set); the buyer's
 * confirm answered UNAVAILABLE may still have been recorded (commit answer
 * lost), and is then delivered all the same; BR_PROVIDER_PG_QUEUE_MAX
 * deliveries queued in memory per process (a sweep claims no more); next_ms
 * is wall-clock time, so processes' clocks must agree to well within
 * LEASE_MS (else a lease lapses early: a double delivery, harmless).
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
    unsigned attempts_max;      /* failed attempts before an error is logged, >= 1 */
    const struct br_log *log;   /* NULL: br_log_stderr */
};

/* BR_OK, BR_E_INVALID, BR_E_IO. No thread until start. */
int br_provider_test_pg_new(struct br_provider_test_pg **p,
                            const struct br_provider_test_pg_config *cfg);

/* The provider interface over p (create_intent, refund, confirm, start, stop). */
struct br_provider br_provider_test_pg_provider(struct br_provider_test_pg *p);

/* Tests: the first attempts of the next n confirms' webhooks are dropped
 * unsent, as if the process died between the confirm's commit and the
 * POST (their events stay undelivered in PostgreSQL). The environment's
 * BR_TEST_PROVIDER_CUT=n sets it at br_provider_test_pg_new. */
void br_provider_test_pg_fault_cut(struct br_provider_test_pg *p, uint32_t n);

/* Stops delivery (queued deliveries dropped from memory, their callbacks
 * run with BR_E_UNAVAILABLE; their events stay in the outbox for others)
 * and frees p (may be NULL). */
void br_provider_test_pg_free(struct br_provider_test_pg *p);

#endif
