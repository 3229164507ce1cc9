/*
 * provider_delivery.h -- the webhook delivery queue the two built-in test
 * providers share (provider_test.c: intents in memory; provider_test_pg.c:
 * intents and an outbox in PostgreSQL).
 *
 * A delivery is one Stripe-like event (JSON, signed afresh with the webhook
 * secret on each attempt, provider_sig.h) POSTed with libcurl, with the
 * confirm callback that waits for its first attempt. The queue keeps
 * deliveries by due time and is drained by the provider's threads (the
 * in-memory one runs BR_DELIVERY_THREADS_MAX, never two POSTs of one
 * payment's events at once, see br_delivery_take; the PostgreSQL one runs
 * one); what
 * the thread does between attempts (retry in memory, or record the attempt
 * in PostgreSQL) stays with the provider. The queue borrows the provider's
 * mutex and condition variable (the in-memory provider guards its intents
 * with the same mutex).
 *
 * Also here, as both providers decide and draw alike: the test cards'
 * decision and the random base62 of intent ids and secrets.
 *
 * Limits: at most q->max deliveries queued (callers check q->queued);
 * stopping drops what is still queued, callbacks run with BR_E_UNAVAILABLE.
 */
#ifndef BR_PROVIDER_DELIVERY_H
#define BR_PROVIDER_DELIVERY_H

#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "adapters/log.h"
#include "adapters/provider.h"

#define BR_DELIVERY_EVENT_ID_MAX 48u /* "evt_" + 24 hex, incl. NUL */
#define BR_DELIVERY_TIMEOUT_MS 5000L /* one POST, connect included */
#define BR_DELIVERY_THREADS_MAX 8u   /* threads a queue may have */

struct br_delivery {
    struct br_delivery *next;
    char event_id[BR_DELIVERY_EVENT_ID_MAX];
    char *payload; /* the event JSON, signed afresh on each attempt */
    size_t len;
    unsigned attempts;
    int64_t due_ms;            /* monotonic */
    br_provider_confirm_fn cb; /* NULL once called (or for a redelivery) */
    void *cb_ctx;
    char *intent_json; /* handed to cb */
    size_t intent_len;
    uint64_t key; /* the payment: its deliveries go one at a time (0 = no order kept) */
};

struct br_delivery_queue {
    pthread_mutex_t *mu;      /* borrowed: guards everything below */
    pthread_cond_t *cv;       /* borrowed: signalled on enqueue and stop */
    struct br_delivery *head; /* by due time */
    uint32_t queued;
    uint32_t max;
    bool stop;
    bool started;
    unsigned threads;                         /* started */
    pthread_t thread[BR_DELIVERY_THREADS_MAX];
    uint64_t busy[BR_DELIVERY_THREADS_MAX];   /* keys being POSTed (0 = none), by thread slot */
};

/* A fresh event id "evt_" + 24 random hex digits. BR_OK or BR_E_UNAVAILABLE. */
int br_delivery_event_id(char out[BR_DELIVERY_EVENT_ID_MAX]);

/* The delivery of a payment_intent.succeeded (ok) or .payment_failed event
 * whose data.object is intent (consumed, even on failure); NULL when out of
 * memory. */
struct br_delivery *br_delivery_new(json_t *intent, bool ok, const char *event_id);

/* A delivery of an already serialised event (copied), no callback; NULL
 * when out of memory. */
struct br_delivery *br_delivery_copy(const char *event_id, const char *payload);

/* Runs d's callback with err once (later calls do nothing). */
void br_delivery_finish(struct br_delivery *d, int err);

void br_delivery_free(struct br_delivery *d);

/* One POST of d to url, signed with secret. true on a 2xx; else logs
 * (attempt = the number logged) and returns false. */
bool br_delivery_post(CURL *curl, const char *secret, const char *url, const struct br_delivery *d,
                      unsigned attempt, const struct br_log *log);

/* The wait after `attempts` failed attempts: 200 ms, x4 each, at most 60 s. */
int64_t br_delivery_backoff_ms(unsigned attempts);

/* Inserts d by due time. Caller holds q->mu (and counts a new delivery in
 * q->queued; a retried one is counted already). */
void br_delivery_enqueue(struct br_delivery_queue *q, struct br_delivery *d);

/* Caller holds q->mu. Takes out the first delivery due at now whose key is
 * not being POSTed by another thread, marks its key busy in `slot` (the
 * caller's thread slot, 0..threads-1) and returns it; NULL when none is.
 * *wait_ms: how long until the first delivery is due (1000 when nothing is
 * queued, or only busy keys are due: br_delivery_done wakes the waiters). */
struct br_delivery *br_delivery_take(struct br_delivery_queue *q, unsigned slot, int64_t now,
                                     int64_t *wait_ms);

/* Caller holds q->mu: the thread in `slot` is done with its delivery's key
 * (call before re-enqueueing a retry); wakes the waiting threads. */
void br_delivery_done(struct br_delivery_queue *q, unsigned slot);

/* Starts `threads` (1..BR_DELIVERY_THREADS_MAX) threads running fn(arg)
 * each; a thread learns its slot from br_delivery_slot. BR_OK or BR_E_IO
 * (none left running). */
int br_delivery_start(struct br_delivery_queue *q, unsigned threads, void *(*fn)(void *),
                      void *arg);

/* The calling thread's slot in q (0 for a thread q did not start). Takes
 * q->mu itself. */
unsigned br_delivery_slot(struct br_delivery_queue *q);

/* Stops and joins q's threads (each ends when it sees q->stop), then
 * drops what is queued (callbacks with BR_E_UNAVAILABLE, logged).
 * Idempotent. Takes q->mu itself. */
void br_delivery_stop(struct br_delivery_queue *q, const struct br_log *log);

/* The test card's decision: BR_OK with *ok (and *decline, the decline
 * code, when not ok), or BR_E_INVALID for a payment method we do not know. */
int br_delivery_test_card(const char *payment_method, bool *ok, const char **decline);

/* A confirm's arguments, before any lookup: the card's decision (BR_OK
 * with *ok, *decline), or BR_E_INVALID (unknown payment method),
 * BR_E_NOT_FOUND (no or too long an intent id), BR_E_UNAUTHORIZED (no
 * client secret), checked in that order. */
int br_delivery_confirm_args(const char *intent_id, const char *client_secret,
                             const char *payment_method, bool *ok, const char **decline);

/* n random base62 characters and a NUL from OpenSSL's generator, each
 * uniform (bytes >= 248 drawn again). BR_OK or BR_E_IO. */
int br_delivery_random_base62(char *out, size_t n);

#endif
