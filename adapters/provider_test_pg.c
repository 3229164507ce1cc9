/*
 * provider_test_pg.c -- the test provider with its intents in PostgreSQL
 * (see provider_test_pg.h): intents through adapters/pg.h, a delivery
 * thread that POSTs signed events (provider_delivery.h) and records each
 * attempt in the PostgreSQL outbox. The intent JSON and the
 * event are shaped as provider_test.c shapes them (the webhook route reads
 * data.object.metadata.payment_id).
 */
#define _POSIX_C_SOURCE 200809L

#include "adapters/provider_test_pg.h"

#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/auth.h"
#include "adapters/clock.h"
#include "adapters/pg.h"
#include "adapters/provider_delivery.h"
#include "adapters/provider_test.h"
#include "core/err.h"
#include "core/panic.h"

#define RANDOM_CHARS 24u          /* base62 characters of an id or secret: ~143 bits */
#define LEASE_MS (BR_DELIVERY_TIMEOUT_MS + 1000) /* a claimed or fresh event is not claimed again */
#define SWEEP_MS 1000                         /* undelivered events looked for, and at start */
#define SWEEP_BATCH 16u                       /* events claimed per look */
#define SECRET_MAX 128u
#define URL_MAX 256u

struct br_provider_test_pg {
    struct br_provider_test_pg_config cfg;
    char secret[SECRET_MAX];
    char url[URL_MAX];
    pthread_mutex_t mu; /* the queue, stop, cut */
    pthread_cond_t cv;
    struct br_delivery_queue q; /* under mu */
    uint32_t cut; /* tests: first attempts of confirms to drop unsent (BR_TEST_PROVIDER_CUT) */
    bool sweep_failing; /* the last claim failed: logged once until one succeeds */
};

static const struct br_log *logger(const struct br_provider_test_pg *p)
{
    return p->cfg.log != NULL ? p->cfg.log : &br_log_stderr;
}

int br_provider_test_pg_new(struct br_provider_test_pg **out,
                            const struct br_provider_test_pg_config *cfg)
{
    *out = NULL;
    if (cfg->pg == NULL || cfg->webhook_secret == NULL ||
        strlen(cfg->webhook_secret) >= SECRET_MAX || cfg->attempts_max == 0) {
        return BR_E_INVALID;
    }
    struct br_provider_test_pg *p = calloc(1, sizeof *p);
    if (p == NULL) {
        return BR_E_IO;
    }
    p->cfg = *cfg;
    snprintf(p->secret, sizeof p->secret, "%s", cfg->webhook_secret);
    p->cfg.webhook_secret = p->secret;
    pthread_mutex_init(&p->mu, NULL);
    br_clock_cond_init(&p->cv);
    p->q.mu = &p->mu;
    p->q.cv = &p->cv;
    p->q.max = BR_PROVIDER_PG_QUEUE_MAX;
    const char *cut = getenv("BR_TEST_PROVIDER_CUT");
    if (cut != NULL) {
        p->cut = (uint32_t)strtoul(cut, NULL, 10);
    }
    *out = p;
    return BR_OK;
}

/* ---- intents ---- */

static int op_create_intent(void *self, uint64_t payment_id, uint64_t booking_id,
                            int64_t amount_minor, const char *currency, const char *idem_key,
                            char id_out[BR_PROVIDER_ID_MAX],
                            char secret_out[BR_PROVIDER_SECRET_MAX])
{
    (void)idem_key; /* one intent per payment id: the table's unique key */
    struct br_provider_test_pg *p = self;
    BR_ASSERT(payment_id != 0 && amount_minor >= 0);
    struct br_pg_intent in;
    memset(&in, 0, sizeof in);
    char r1[RANDOM_CHARS + 1], r2[RANDOM_CHARS + 1];
    if (br_delivery_random_base62(r1, RANDOM_CHARS) != BR_OK ||
        br_delivery_random_base62(r2, RANDOM_CHARS) != BR_OK) {
        return BR_E_UNAVAILABLE;
    }
    snprintf(in.id, sizeof in.id, "pi_%s", r1);
    snprintf(in.client_secret, sizeof in.client_secret, "%s_secret_%s", in.id, r2);
    in.payment_id = payment_id;
    in.booking_id = booking_id;
    in.amount_minor = amount_minor;
    for (size_t i = 0; i < sizeof in.currency - 1 && currency[i]; i++) {
        char c = currency[i];
        in.currency[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c; /* Stripe's case */
    }
    snprintf(in.status, sizeof in.status, "requires_payment_method");
    in.created_ms = br_clock_wall_ms();
    struct br_pg_intent stored;
    int rc = br_pg_intent_put(p->cfg.pg, &in, &stored);
    if (rc != BR_OK) {
        return BR_E_UNAVAILABLE; /* the saga's payment stays pending: created again later */
    }
    memcpy(id_out, stored.id, BR_PROVIDER_ID_MAX);
    memcpy(secret_out, stored.client_secret, BR_PROVIDER_SECRET_MAX);
    return BR_OK;
}

static int op_refund(void *self, uint64_t payment_id, const char *intent_id, int64_t amount_minor,
                     const char *idem_key)
{
    (void)self, (void)payment_id, (void)intent_id, (void)amount_minor, (void)idem_key;
    return BR_OK; /* no money is held: a refund of anything is done */
}

/* ---- status query (point 8) ---- */

/* From test_intents: succeeded -> SUCCEEDED; canceled -> FAILED
 * "canceled"; requires_payment_method -> OPEN, or with void_if_open
 * cancelled first (unless it succeeded meanwhile: then SUCCEEDED). A
 * decline is not told apart from "not yet paid" here (the table keeps the
 * status only; its webhook says it). No intent: FAILED "canceled" when
 * void_if_open, else OPEN. */
static int op_query(void *self, uint64_t payment_id, const char *intent_id, bool void_if_open,
                    struct br_provider_answer *out)
{
    (void)intent_id; /* found by payment id */
    struct br_provider_test_pg *p = self;
    struct br_pg_intent it;
    int rc = br_pg_intent_by_payment(p->cfg.pg, payment_id, &it);
    if (rc == BR_E_NOT_FOUND) {
        br_provider_answer_set(out, void_if_open ? BR_PROVIDER_FAILED : BR_PROVIDER_OPEN,
                               payment_id, "canceled", NULL);
        return BR_OK;
    }
    if (rc != BR_OK) {
        return BR_E_UNAVAILABLE;
    }
    if (void_if_open && strcmp(it.status, "requires_payment_method") == 0) {
        rc = br_pg_intent_set_status(p->cfg.pg, it.id, "canceled");
        if (rc == BR_OK) {
            snprintf(it.status, sizeof it.status, "canceled");
        } else if (rc == BR_E_DUPLICATE) {
            snprintf(it.status, sizeof it.status, "succeeded"); /* paid just now */
        } else {
            return BR_E_UNAVAILABLE;
        }
    }
    if (strcmp(it.status, "succeeded") == 0) {
        br_provider_answer_set(out, BR_PROVIDER_SUCCEEDED, payment_id, NULL, it.id);
    } else if (strcmp(it.status, "canceled") == 0) {
        br_provider_answer_set(out, BR_PROVIDER_FAILED, payment_id, "canceled", it.id);
    } else {
        br_provider_answer_set(out, BR_PROVIDER_OPEN, payment_id, NULL, it.id);
    }
    return BR_OK;
}

/* ---- confirm ---- */

static json_t *intent_json(const struct br_pg_intent *it, bool ok, const char *decline)
{
    char pay[24], hold[24];
    snprintf(pay, sizeof pay, "%" PRIu64, it->payment_id);
    snprintf(hold, sizeof hold, "%" PRIu64, it->booking_id);
    json_t *err = ok ? json_null()
                     : json_pack("{s:s, s:s, s:s}", "type", "card_error", "code", "card_declined",
                                 "decline_code", decline);
    return json_pack("{s:s, s:s, s:I, s:s, s:s, s:b, s:{s:s, s:s}, s:o}", "id", it->id, "object",
                     "payment_intent", "amount", (json_int_t)it->amount_minor, "currency",
                     it->currency, "status", ok ? "succeeded" : "requires_payment_method",
                     "refunded", 0, "metadata", "payment_id", pay, "booking_id", hold,
                     "last_payment_error", err);
}

/* The stored intent id names, if client_secret is its own and it may be
 * confirmed: BR_OK, BR_E_NOT_FOUND, BR_E_FORBIDDEN, BR_E_DUPLICATE,
 * BR_E_UNAVAILABLE (PostgreSQL). */
static int confirmable(struct br_provider_test_pg *p, const char *id, const char *client_secret,
                       struct br_pg_intent *it)
{
    int rc = br_pg_intent_get(p->cfg.pg, id, it);
    if (rc != BR_OK) {
        return rc == BR_E_NOT_FOUND ? BR_E_NOT_FOUND : BR_E_UNAVAILABLE;
    }
    /* Constant time over the stored secret's length (all have one length). */
    size_t n = strlen(it->client_secret);
    if (strnlen(client_secret, BR_PROVIDER_SECRET_MAX) != n ||
        !br_auth_equal(client_secret, it->client_secret, n)) {
        return BR_E_FORBIDDEN;
    }
    /* decided: succeeded, or canceled by a status query (point 8) */
    return strcmp(it->status, "succeeded") == 0 || strcmp(it->status, "canceled") == 0
               ? BR_E_DUPLICATE
               : BR_OK;
}

static int op_confirm(void *self, const char *intent_id, const char *client_secret,
                      const char *payment_method, br_provider_confirm_fn cb, void *ctx)
{
    struct br_provider_test_pg *p = self;
    bool ok;
    const char *decline;
    int arc = br_delivery_confirm_args(intent_id, client_secret, payment_method, &ok, &decline);
    if (arc != BR_OK) {
        return arc;
    }
    struct br_pg_intent it;
    int rc = confirmable(p, intent_id, client_secret, &it);
    char evt_id[BR_DELIVERY_EVENT_ID_MAX];
    if (rc == BR_OK && br_delivery_event_id(evt_id) != BR_OK) {
        rc = BR_E_UNAVAILABLE;
    }
    struct br_delivery *d = NULL;
    if (rc == BR_OK) {
        d = br_delivery_new(intent_json(&it, ok, decline), ok, evt_id);
        rc = d != NULL ? BR_OK : BR_E_UNAVAILABLE;
    }
    pthread_mutex_lock(&p->mu);
    if (rc == BR_OK && (p->q.queued >= BR_PROVIDER_PG_QUEUE_MAX || p->q.stop)) {
        rc = BR_E_FULL;
    }
    pthread_mutex_unlock(&p->mu);
    if (rc == BR_OK) {
        /* The decision and its event in one transaction (the outbox): a
         * concurrent second success elsewhere finds the intent final
         * (DUPLICATE) and records nothing; a process dying from here on
         * leaves the event to be claimed by another after LEASE_MS. */
        int64_t now = br_clock_wall_ms();
        int drc = br_pg_intent_decide(p->cfg.pg, it.id, ok ? "succeeded" : "requires_payment_method",
                                      d->event_id, d->payload, now, now + LEASE_MS);
        rc = drc == BR_OK || drc == BR_E_DUPLICATE ? drc : BR_E_UNAVAILABLE;
    }
    if (rc != BR_OK) {
        if (d != NULL) {
            br_delivery_free(d);
        }
        return rc; /* nothing changed (UNAVAILABLE: or recorded, then delivered later) */
    }
    pthread_mutex_lock(&p->mu);
    d->attempts = 1;
    d->due_ms = br_clock_mono_ms();
    d->cb = cb;
    d->cb_ctx = ctx;
    br_delivery_enqueue(&p->q, d);
    p->q.queued++;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return BR_OK;
}

void br_provider_test_pg_fault_cut(struct br_provider_test_pg *p, uint32_t n)
{
    pthread_mutex_lock(&p->mu);
    p->cut = n;
    pthread_mutex_unlock(&p->mu);
}

/* ---- delivery ---- */

/* Claims the undelivered events due in PostgreSQL (other processes', dead
 * ones', this one's failed attempts) and queues them, due now. */
static void sweep(struct br_provider_test_pg *p)
{
    struct br_pg_delivery *rows = calloc(SWEEP_BATCH, sizeof *rows);
    if (rows == NULL) {
        return;
    }
    uint32_t n = 0;
#ifndef BR_PLANT_PG_NO_REDELIVERY
    int rc = br_pg_delivery_claim(p->cfg.pg, br_clock_wall_ms(), LEASE_MS, rows, SWEEP_BATCH, &n);
    if (rc != BR_OK && !p->sweep_failing) {
        br_logf(logger(p), BR_LOG_WARN, "webhook outbox unreadable, retrying each second",
                "\"err\":\"%s\"", br_err_name(rc));
    } else if (rc == BR_OK && p->sweep_failing) {
        br_logf(logger(p), BR_LOG_INFO, "webhook outbox readable again", NULL);
    }
    p->sweep_failing = rc != BR_OK; /* the delivery thread's own */
#endif
    for (uint32_t i = 0; i < n; i++) {
        struct br_delivery *d = br_delivery_copy(rows[i].event_id, rows[i].payload);
        if (d == NULL) {
            break; /* the claim lapses: claimed again after LEASE_MS */
        }
        d->attempts = rows[i].attempts;
        pthread_mutex_lock(&p->mu);
        if (p->q.queued >= BR_PROVIDER_PG_QUEUE_MAX || p->q.stop) {
            pthread_mutex_unlock(&p->mu);
            br_delivery_free(d);
            break;
        }
        d->due_ms = br_clock_mono_ms();
        br_delivery_enqueue(&p->q, d);
        p->q.queued++;
        pthread_mutex_unlock(&p->mu);
    }
    free(rows);
}

/* Takes the first due delivery, waiting for one or for the sweep's time
 * (*sweep_now set, NULL returned); NULL when stopping. */
static struct br_delivery *next_due(struct br_provider_test_pg *p, int64_t sweep_at, bool *sweep_now)
{
    *sweep_now = false;
    pthread_mutex_lock(&p->mu);
    while (!p->q.stop) {
        struct br_delivery *d = p->q.head;
        int64_t now = br_clock_mono_ms();
        if (d != NULL && d->due_ms <= now) {
            p->q.head = d->next;
            pthread_mutex_unlock(&p->mu);
            return d;
        }
        if (sweep_at <= now) {
            *sweep_now = true;
            break;
        }
        int64_t until = d != NULL && d->due_ms < sweep_at ? d->due_ms : sweep_at;
        struct timespec ts = br_clock_deadline(until - now);
        pthread_cond_timedwait(&p->cv, &p->mu, &ts);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* Records d's attempt in PostgreSQL: delivered, or claimable again after
 * the backoff. A failure to record is harmless: the lease lapses and the
 * event is delivered again (the receiver de-duplicates its id). */
static void record_attempt(struct br_provider_test_pg *p, const struct br_delivery *d, bool ok)
{
    int64_t now = br_clock_wall_ms();
    int rc = ok ? br_pg_delivery_done(p->cfg.pg, d->event_id, now)
                : br_pg_delivery_retry(p->cfg.pg, d->event_id, now + br_delivery_backoff_ms(d->attempts));
    if (rc != BR_OK) {
        br_logf(logger(p), BR_LOG_WARN, "webhook attempt not recorded",
                "\"event\":\"%s\",\"err\":\"%s\"", d->event_id, br_err_name(rc));
    }
    if (!ok && d->attempts == p->cfg.attempts_max) {
        br_logf(logger(p), BR_LOG_ERROR, "webhook undelivered after retries, retrying still",
                "\"event\":\"%s\",\"attempts\":%u", d->event_id, d->attempts);
    }
}

static void *deliver_loop(void *arg)
{
    struct br_provider_test_pg *p = arg;
    CURL *curl = curl_easy_init();
    BR_ASSERT(curl != NULL);
    int64_t sweep_at = br_clock_mono_ms(); /* at start: what dead processes left */
    for (;;) {
        bool sweep_now;
        struct br_delivery *d = next_due(p, sweep_at, &sweep_now);
        if (sweep_now) {
            sweep(p);
            sweep_at = br_clock_mono_ms() + SWEEP_MS;
            continue;
        }
        if (d == NULL) {
            break;
        }
        pthread_mutex_lock(&p->mu);
        bool cut = d->cb != NULL && p->cut > 0;
        if (cut) {
            p->cut--;
        }
        pthread_mutex_unlock(&p->mu);
        if (cut) {
            /* Tests: as if the process died between the commit and the POST. */
            br_logf(logger(p), BR_LOG_WARN, "test: webhook delivery cut", "\"event\":\"%s\"",
                    d->event_id);
            br_delivery_finish(d, BR_E_UNAVAILABLE);
        } else {
            bool ok = br_delivery_post(curl, p->secret, p->url, d, d->attempts, logger(p));
            br_delivery_finish(d, ok ? BR_OK : BR_E_UNAVAILABLE);
            record_attempt(p, d, ok);
        }
        pthread_mutex_lock(&p->mu);
        p->q.queued--;
        pthread_mutex_unlock(&p->mu);
        br_delivery_free(d);
    }
    curl_easy_cleanup(curl);
    return NULL;
}

static int op_start(void *self, const char *webhook_url)
{
    struct br_provider_test_pg *p = self;
    BR_ASSERT(!p->q.started);
    if (strlen(webhook_url) >= sizeof p->url) {
        return BR_E_INVALID;
    }
    snprintf(p->url, sizeof p->url, "%s", webhook_url);
    return br_delivery_start(&p->q, 1, deliver_loop, p);
}

static void op_stop(void *self)
{
    struct br_provider_test_pg *p = self;
    br_delivery_stop(&p->q, logger(p));
}

static const struct br_provider_ops TEST_PG_OPS = {
    .name = "test",
    .create_intent = op_create_intent,
    .refund = op_refund,
    .query = op_query,
    .confirm = op_confirm,
    .start = op_start,
    .stop = op_stop,
};

struct br_provider br_provider_test_pg_provider(struct br_provider_test_pg *p)
{
    BR_ASSERT(p != NULL);
    struct br_provider pv = {.ops = &TEST_PG_OPS, .self = p};
    return pv;
}

void br_provider_test_pg_free(struct br_provider_test_pg *p)
{
    if (p == NULL) {
        return;
    }
    op_stop(p);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}
