/*
 * provider_test.c -- the in-memory, Stripe-like test provider (see
 * provider_test.h): intents in an open-addressing table keyed by payment id,
 * and a delivery thread that POSTs signed events (provider_delivery.h),
 * retrying in memory.
 */
#define _POSIX_C_SOURCE 200809L

#include "adapters/provider_test.h"

#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "adapters/auth.h"
#include "adapters/clock.h"
#include "adapters/log.h"
#include "adapters/provider_delivery.h"
#include "core/err.h"
#include "core/panic.h"

#define PROBE_MAX 64u                /* slots probed before a lookup gives up */
#define RANDOM_CHARS 24u             /* base62 characters of an id or secret: ~143 bits */
#define WEBHOOK_SECRET_MAX 128u

enum intent_status { PI_EMPTY = 0, PI_REQUIRES_PM, PI_SUCCEEDED, PI_CANCELED };

struct intent {
    uint64_t payment_id; /* 0 = empty slot */
    char id[BR_PROVIDER_ID_MAX];         /* "pi_" + RANDOM_CHARS random base62 */
    char secret[BR_PROVIDER_SECRET_MAX]; /* id + "_secret_" + RANDOM_CHARS more, drawn apart */
    uint64_t hold_id;
    int64_t amount_minor;
    char currency[8];    /* lower case, as Stripe writes it */
    uint8_t status;      /* enum intent_status */
    bool refunded;
    uint32_t attempts;   /* confirms so far */
    char last_error[32]; /* decline code of the last failed confirm */
};

struct br_provider_test {
    struct br_provider_test_config cfg;
    char secret[WEBHOOK_SECRET_MAX];
    char url[256];
    pthread_mutex_t mu;  /* intents, queue, stop */
    pthread_cond_t cv;
    struct intent *intents;
    uint32_t *by_id;     /* intent id hash -> intent slot + 1, 0 = empty; same size */
    uint32_t mask;       /* table size - 1 (both tables) */
    uint32_t count;
    struct br_delivery_queue q; /* under mu too */
    uint32_t lose; /* tests: the next n events are lost, never POSTed (BR_TEST_PROVIDER_LOSE) */
};

int br_provider_test_new(struct br_provider_test **out, const struct br_provider_test_config *cfg)
{
    *out = NULL;
    if (cfg->webhook_secret == NULL || strlen(cfg->webhook_secret) >= WEBHOOK_SECRET_MAX ||
        cfg->intents_max == 0 || cfg->intents_max > (1u << 30) || cfg->attempts_max == 0) {
        return BR_E_INVALID;
    }
    struct br_provider_test *p = calloc(1, sizeof *p);
    if (p == NULL) {
        return BR_E_IO;
    }
    p->cfg = *cfg;
    snprintf(p->secret, sizeof p->secret, "%s", cfg->webhook_secret);
    p->cfg.webhook_secret = p->secret;
    uint32_t size = 1;
    while (size < 2 * cfg->intents_max) {
        size *= 2;
    }
    p->intents = calloc(size, sizeof *p->intents);
    p->by_id = calloc(size, sizeof *p->by_id);
    if (p->intents == NULL || p->by_id == NULL) {
        free(p->intents);
        free(p->by_id);
        free(p);
        return BR_E_IO;
    }
    p->mask = size - 1;
    pthread_mutex_init(&p->mu, NULL);
    br_clock_cond_init(&p->cv);
    p->q.mu = &p->mu;
    p->q.cv = &p->cv;
    p->q.max = BR_PROVIDER_QUEUE_MAX;
    const char *lose = getenv("BR_TEST_PROVIDER_LOSE");
    if (lose != NULL) {
        p->lose = (uint32_t)strtoul(lose, NULL, 10);
    }
    *out = p;
    return BR_OK;
}

/* The slot of payment_id, or an empty slot to put it in; NULL if neither. */
static struct intent *slot_of(struct br_provider_test *p, uint64_t payment_id)
{
    uint64_t h = payment_id * 0x9e3779b97f4a7c15ULL;
    for (uint32_t i = 0; i < PROBE_MAX; i++) {
        struct intent *it = &p->intents[((uint32_t)(h >> 32) + i) & p->mask];
        if (it->payment_id == payment_id || it->payment_id == 0) {
            return it;
        }
    }
    return NULL;
}

static uint64_t id_hash(const char *id)
{
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a: ids are random, no adversary picks them */
    for (const char *c = id; *c; c++) {
        h = (h ^ (uint8_t)*c) * 0x100000001b3ULL;
    }
    return h;
}

/* The intent with this id, NULL if none. Caller holds mu. */
static struct intent *intent_by_id(struct br_provider_test *p, const char *id)
{
    uint64_t h = id_hash(id);
    for (uint32_t i = 0; i < PROBE_MAX; i++) {
        uint32_t v = p->by_id[((uint32_t)(h >> 32) + i) & p->mask];
        if (v == 0) {
            return NULL;
        }
        if (strcmp(p->intents[v - 1].id, id) == 0) {
            return &p->intents[v - 1];
        }
    }
    return NULL;
}

/* Gives the new intent `it` a fresh random id and secret and indexes it.
 * BR_OK, BR_E_IO (no randomness), BR_E_FULL (no slot). Caller holds mu. */
static int intent_identity(struct br_provider_test *p, struct intent *it)
{
    char r1[RANDOM_CHARS + 1], r2[RANDOM_CHARS + 1];
    if (br_delivery_random_base62(r1, RANDOM_CHARS) != BR_OK ||
        br_delivery_random_base62(r2, RANDOM_CHARS) != BR_OK) {
        return BR_E_IO;
    }
    snprintf(it->id, sizeof it->id, "pi_%s", r1);
    snprintf(it->secret, sizeof it->secret, "%s_secret_%s", it->id, r2);
    uint64_t h = id_hash(it->id);
    for (uint32_t i = 0; i < PROBE_MAX; i++) {
        uint32_t *v = &p->by_id[((uint32_t)(h >> 32) + i) & p->mask];
        if (*v == 0) {
            *v = (uint32_t)(it - p->intents) + 1;
            return BR_OK;
        }
    }
    return BR_E_FULL;
}

int br_provider_test_charge(struct br_provider_test *p, uint64_t payment_id, uint64_t hold_id,
                            int64_t amount_minor, const char *currency,
                            char id[BR_PROVIDER_ID_MAX], char client_secret[BR_PROVIDER_SECRET_MAX])
{
    BR_ASSERT(payment_id != 0 && amount_minor >= 0);
    pthread_mutex_lock(&p->mu);
    struct intent *it = slot_of(p, payment_id);
    if (it == NULL || (it->payment_id == 0 && p->count >= p->cfg.intents_max)) {
        pthread_mutex_unlock(&p->mu);
        return BR_E_FULL;
    }
    if (it->payment_id == 0) {
        memset(it, 0, sizeof *it);
        int rc = intent_identity(p, it);
        if (rc != BR_OK) {
            memset(it, 0, sizeof *it);
            pthread_mutex_unlock(&p->mu);
            return rc;
        }
        it->payment_id = payment_id;
        it->hold_id = hold_id;
        it->amount_minor = amount_minor;
        for (size_t i = 0; i < sizeof it->currency - 1 && currency[i]; i++) {
            char c = currency[i];
            it->currency[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
        }
        it->status = PI_REQUIRES_PM;
        p->count++;
    }
    memcpy(id, it->id, BR_PROVIDER_ID_MAX);
    memcpy(client_secret, it->secret, BR_PROVIDER_SECRET_MAX);
    pthread_mutex_unlock(&p->mu);
    return BR_OK;
}

int br_provider_test_refund(struct br_provider_test *p, uint64_t payment_id, int64_t amount_minor)
{
    (void)amount_minor;
    pthread_mutex_lock(&p->mu);
    struct intent *it = slot_of(p, payment_id);
    if (it != NULL && it->payment_id == payment_id) {
        it->refunded = true;
    }
    pthread_mutex_unlock(&p->mu);
    return BR_OK;
}

void br_provider_answer_set(struct br_provider_answer *out, uint8_t status, uint64_t payment_id,
                            const char *token, const char *intent_id)
{
    memset(out, 0, sizeof *out);
    out->status = status;
    if (status == BR_PROVIDER_SUCCEEDED) {
        snprintf(out->fact_key, sizeof out->fact_key, "q:%" PRIu64 ":succeeded", payment_id);
    } else if (status == BR_PROVIDER_FAILED) {
        snprintf(out->fact_key, sizeof out->fact_key, "q:%" PRIu64 ":failed:%s", payment_id, token);
    }
    snprintf(out->intent_id, sizeof out->intent_id, "%s", intent_id != NULL ? intent_id : "");
}

int br_provider_test_query(struct br_provider_test *p, uint64_t payment_id, bool void_if_open,
                           struct br_provider_answer *out)
{
    pthread_mutex_lock(&p->mu);
    struct intent *it = slot_of(p, payment_id);
    if (it == NULL || it->payment_id != payment_id) {
        pthread_mutex_unlock(&p->mu);
        /* never created: nothing can succeed; "canceled" once the hold is gone */
        br_provider_answer_set(out, void_if_open ? BR_PROVIDER_FAILED : BR_PROVIDER_OPEN,
                               payment_id, "canceled", NULL);
        return BR_OK;
    }
    if (void_if_open && it->status == PI_REQUIRES_PM) {
        it->status = PI_CANCELED; /* a later confirm is refused */
    }
    char ordinal[16];
    snprintf(ordinal, sizeof ordinal, "%" PRIu32, it->attempts);
    switch (it->status) {
    case PI_SUCCEEDED:
        br_provider_answer_set(out, BR_PROVIDER_SUCCEEDED, payment_id, NULL, it->id);
        break;
    case PI_CANCELED:
        br_provider_answer_set(out, BR_PROVIDER_FAILED, payment_id, "canceled", it->id);
        break;
    default: /* requires_payment_method: declined (the decline's ordinal) or not yet paid */
        br_provider_answer_set(out,
                               it->last_error[0] != '\0' ? BR_PROVIDER_FAILED : BR_PROVIDER_OPEN,
                               payment_id, ordinal, it->id);
        break;
    }
    pthread_mutex_unlock(&p->mu);
    return BR_OK;
}

/* The intent as Stripe would show it. Caller holds mu. Returns a json_t. */
static json_t *intent_json(const struct intent *it)
{
    char pay[24];
    char hold[24];
    snprintf(pay, sizeof pay, "%" PRIu64, it->payment_id);
    snprintf(hold, sizeof hold, "%" PRIu64, it->hold_id);
    json_t *err = json_null();
    if (it->status == PI_REQUIRES_PM && it->last_error[0] != '\0') {
        err = json_pack("{s:s, s:s, s:s}", "type", "card_error", "code", "card_declined",
                        "decline_code", it->last_error);
    }
    return json_pack("{s:s, s:s, s:I, s:s, s:s, s:b, s:{s:s, s:s}, s:o}", "id", it->id, "object",
                     "payment_intent", "amount", (json_int_t)it->amount_minor, "currency",
                     it->currency, "status",
                     it->status == PI_SUCCEEDED  ? "succeeded"
                     : it->status == PI_CANCELED ? "canceled"
                                                 : "requires_payment_method",
                     "refunded", it->refunded, "metadata", "payment_id", pay, "booking_id", hold,
                     "last_payment_error", err);
}

/* The intent id_text names, if client_secret is its secret and it may be
 * confirmed: BR_OK (*out set), BR_E_NOT_FOUND, BR_E_FORBIDDEN (another
 * secret), BR_E_DUPLICATE (already succeeded). Caller holds mu. */
static int confirmable(struct br_provider_test *p, const char *id_text, const char *client_secret,
                       struct intent **out)
{
    struct intent *it = intent_by_id(p, id_text);
    if (it == NULL) {
        return BR_E_NOT_FOUND;
    }
    /* Constant time over the stored secret's length (every secret has the
     * same length): a wrong guess learns nothing from the refusal's time. */
    size_t secret_len = strlen(it->secret);
    if (strnlen(client_secret, BR_PROVIDER_SECRET_MAX) != secret_len ||
        !br_auth_equal(client_secret, it->secret, secret_len)) {
        return BR_E_FORBIDDEN;
    }
    if (it->status == PI_SUCCEEDED || it->status == PI_CANCELED) {
        return BR_E_DUPLICATE; /* decided (a declined intent may be confirmed again) */
    }
    *out = it;
    return BR_OK;
}

int br_provider_test_confirm(struct br_provider_test *p, const char *intent_id_text,
                             const char *client_secret, const char *payment_method,
                             br_provider_confirm_fn cb, void *ctx)
{
    bool ok;
    const char *decline;
    int arc = br_delivery_confirm_args(intent_id_text, client_secret, payment_method, &ok, &decline);
    if (arc != BR_OK) {
        return arc;
    }
    char evt_id[BR_DELIVERY_EVENT_ID_MAX];
    if (br_delivery_event_id(evt_id) != BR_OK) {
        return BR_E_UNAVAILABLE;
    }

    pthread_mutex_lock(&p->mu);
    struct intent *it = NULL;
    int rc = confirmable(p, intent_id_text, client_secret, &it);
    if (rc == BR_OK && p->q.queued >= BR_PROVIDER_QUEUE_MAX) {
        rc = BR_E_FULL;
    }
    struct intent after = {0};
    struct br_delivery *d = NULL;
    if (rc == BR_OK) {
        after = *it;
        after.attempts++;
        after.status = ok ? PI_SUCCEEDED : PI_REQUIRES_PM;
        snprintf(after.last_error, sizeof after.last_error, "%s", ok ? "" : decline);
        d = br_delivery_new(intent_json(&after), ok, evt_id);
        rc = d != NULL ? BR_OK : BR_E_UNAVAILABLE;
    }
    if (rc != BR_OK) {
        pthread_mutex_unlock(&p->mu);
        return rc; /* nothing changed */
    }
    *it = after;
    d->key = after.payment_id;
    d->due_ms = br_clock_mono_ms();
    d->cb = cb;
    d->cb_ctx = ctx;
    br_delivery_enqueue(&p->q, d);
    p->q.queued++;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return BR_OK;
}

static void *deliver_loop(void *arg)
{
    struct br_provider_test *p = arg;
    unsigned slot = br_delivery_slot(&p->q);
    CURL *curl = curl_easy_init();
    BR_ASSERT(curl != NULL);
    pthread_mutex_lock(&p->mu);
    while (!p->q.stop) {
        int64_t wait_ms = 0;
        struct br_delivery *d = br_delivery_take(&p->q, slot, br_clock_mono_ms(), &wait_ms);
        if (d == NULL) {
            struct timespec until = br_clock_deadline(wait_ms);
            pthread_cond_timedwait(&p->cv, &p->mu, &until);
            continue;
        }
        if (d->attempts == 0 && p->lose > 0) {
            /* tests: this event is lost for good (point 8 must find the decision) */
            p->lose--;
            p->q.queued--;
            br_delivery_done(&p->q, slot);
            pthread_mutex_unlock(&p->mu);
            br_delivery_finish(d, BR_E_UNAVAILABLE);
            br_delivery_free(d);
            pthread_mutex_lock(&p->mu);
            continue;
        }
        pthread_mutex_unlock(&p->mu);
        bool ok = br_delivery_post(curl, p->secret, p->url, d, d->attempts + 1, &br_log_stderr);
        d->attempts++;
        br_delivery_finish(d, ok ? BR_OK : BR_E_UNAVAILABLE);
        pthread_mutex_lock(&p->mu);
        br_delivery_done(&p->q, slot);
        if (ok || d->attempts >= p->cfg.attempts_max) {
            if (!ok) {
                br_logf(&br_log_stderr, BR_LOG_ERROR, "webhook dropped after retries", NULL);
            }
            p->q.queued--;
            br_delivery_free(d);
            continue;
        }
        d->due_ms = br_clock_mono_ms() + br_delivery_backoff_ms(d->attempts);
        br_delivery_enqueue(&p->q, d);
    }
    pthread_mutex_unlock(&p->mu);
    curl_easy_cleanup(curl);
    return NULL;
}

int br_provider_test_start(struct br_provider_test *p, const char *webhook_url)
{
    BR_ASSERT(!p->q.started);
    if (strlen(webhook_url) >= sizeof p->url) {
        return BR_E_INVALID;
    }
    snprintf(p->url, sizeof p->url, "%s", webhook_url);
    return br_delivery_start(&p->q, BR_DELIVERY_THREADS_MAX, deliver_loop, p);
}

void br_provider_test_stop(struct br_provider_test *p)
{
    br_delivery_stop(&p->q, &br_log_stderr);
}

void br_provider_test_free(struct br_provider_test *p)
{
    if (p == NULL) {
        return;
    }
    br_provider_test_stop(p);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p->intents);
    free(p->by_id);
    free(p);
}

/* ---- the provider interface (provider.h) ---- */

static int op_create_intent(void *p, uint64_t payment_id, uint64_t booking_id,
                            int64_t amount_minor, const char *currency, const char *idem_key,
                            char id_out[BR_PROVIDER_ID_MAX],
                            char secret_out[BR_PROVIDER_SECRET_MAX])
{
    (void)idem_key; /* one intent per payment id already */
    return br_provider_test_charge(p, payment_id, booking_id, amount_minor, currency, id_out,
                                   secret_out);
}

static int op_refund(void *p, uint64_t payment_id, const char *intent_id, int64_t amount_minor,
                     const char *idem_key)
{
    (void)intent_id; /* found by payment id */
    (void)idem_key;  /* a second refund of the same intent changes nothing */
    return br_provider_test_refund(p, payment_id, amount_minor);
}

static int op_query(void *p, uint64_t payment_id, const char *intent_id, bool void_if_open,
                    struct br_provider_answer *out)
{
    (void)intent_id; /* found by payment id */
    return br_provider_test_query(p, payment_id, void_if_open, out);
}

static int op_confirm(void *p, const char *intent_id, const char *client_secret,
                      const char *payment_method, br_provider_confirm_fn cb, void *ctx)
{
    return br_provider_test_confirm(p, intent_id, client_secret, payment_method, cb, ctx);
}

static int op_start(void *p, const char *webhook_url)
{
    return br_provider_test_start(p, webhook_url);
}

static void op_stop(void *p)
{
    br_provider_test_stop(p);
}

static const struct br_provider_ops TEST_PROVIDER_OPS = {
    .name = "test",
    .create_intent = op_create_intent,
    .refund = op_refund,
    .query = op_query,
    .confirm = op_confirm,
    .start = op_start,
    .stop = op_stop,
};

struct br_provider br_provider_test_provider(struct br_provider_test *p)
{
    BR_ASSERT(p != NULL);
    struct br_provider pv = {.ops = &TEST_PROVIDER_OPS, .self = p};
    return pv;
}
