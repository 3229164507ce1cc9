/*
 * provider_test_pg.c -- the test provider with its intents in PostgreSQL
 * (see provider_test_pg.h): intents through adapters/pg.h, a delivery
 * thread that POSTs signed events with libcurl. The intent JSON and the
 * event are shaped as provider_test.c shapes them (the webhook route reads
 * data.object.metadata.payment_id).
 */
#define _POSIX_C_SOURCE 200809L

#include "adapters/provider_test_pg.h"

#include <curl/curl.h>
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
#include "adapters/provider_sig.h"
#include "core/err.h"
#include "core/panic.h"

#define RANDOM_CHARS 24u          /* base62 characters of an id or secret: ~143 bits */
#define DELIVERY_TIMEOUT_MS 5000L /* one POST, connect included */
#define BACKOFF_FIRST_MS 200      /* then x4 per attempt */
#define BACKOFF_MAX_MS 60000
#define LEASE_MS (DELIVERY_TIMEOUT_MS + 1000) /* a claimed or fresh event is not claimed again */
#define SWEEP_MS 1000                         /* undelivered events looked for, and at start */
#define SWEEP_BATCH 16u                       /* events claimed per look */
#define SECRET_MAX 128u
#define URL_MAX 256u

struct delivery {
    struct delivery *next;
    char event_id[BR_PG_DELIVERY_ID_MAX]; /* its row in test_deliveries */
    char *payload;                        /* the event JSON, signed afresh on each attempt */
    size_t len;
    unsigned attempts; /* this one included */
    int64_t due_ms;            /* monotonic */
    br_provider_confirm_fn cb; /* NULL once called */
    void *cb_ctx;
    char *intent_json; /* handed to cb */
    size_t intent_len;
};

struct br_provider_test_pg {
    struct br_provider_test_pg_config cfg;
    char secret[SECRET_MAX];
    char url[URL_MAX];
    pthread_mutex_t mu; /* the queue, stop */
    pthread_cond_t cv;
    struct delivery *head; /* by due time */
    uint32_t queued;
    bool stop;
    bool started;
    uint32_t cut; /* tests: first attempts of confirms to drop unsent (BR_TEST_PROVIDER_CUT) */
    bool sweep_failing; /* the last claim failed: logged once until one succeeds */
    pthread_t thread;
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
    const char *cut = getenv("BR_TEST_PROVIDER_CUT");
    if (cut != NULL) {
        p->cut = (uint32_t)strtoul(cut, NULL, 10);
    }
    *out = p;
    return BR_OK;
}

/* ---- intents ---- */

/* n random base62 characters (bytes >= 248 drawn again, so each is uniform). */
static int random_base62(char *out, size_t n)
{
    static const char digits[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    uint8_t buf[64];
    size_t have = 0;
    for (uint32_t round = 0; have < n && round < 16; round++) {
        if (br_auth_random(buf, sizeof buf) != BR_OK) {
            return BR_E_IO;
        }
        for (size_t i = 0; i < sizeof buf && have < n; i++) {
            if (buf[i] < 248) {
                out[have++] = digits[buf[i] % 62];
            }
        }
    }
    out[have] = '\0';
    return have == n ? BR_OK : BR_E_IO;
}

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
    if (random_base62(r1, RANDOM_CHARS) != BR_OK || random_base62(r2, RANDOM_CHARS) != BR_OK) {
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

/* ---- confirm ---- */

/* The test card's decision, as provider_test.c decides. */
static int decide(const char *pm, bool *ok, const char **decline)
{
    *decline = NULL;
    *ok = strcmp(pm, "pm_card_visa") == 0 || strcmp(pm, "pm_card_mastercard") == 0 ||
          strcmp(pm, "pm_card_amex") == 0;
    if (*ok) {
        return BR_OK;
    }
    if (strcmp(pm, "pm_card_chargeDeclined") == 0) {
        *decline = "generic_decline";
    } else if (strcmp(pm, "pm_card_chargeDeclinedInsufficientFunds") == 0) {
        *decline = "insufficient_funds";
    }
    return *decline != NULL ? BR_OK : BR_E_INVALID;
}

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

static struct delivery *delivery_new(const struct br_pg_intent *it, bool ok, const char *decline,
                                     const char *evt_id)
{
    json_t *obj = intent_json(it, ok, decline);
    json_t *event = json_pack(
        "{s:s, s:s, s:s, s:I, s:b, s:s, s:{s:O}}", "id", evt_id, "object", "event", "api_version",
        "2023-10-16", "created", (json_int_t)(br_clock_wall_ms() / 1000), "livemode", 0, "type",
        ok ? "payment_intent.succeeded" : "payment_intent.payment_failed", "data", "object", obj);
    struct delivery *d = calloc(1, sizeof *d);
    char *payload = event ? json_dumps(event, JSON_COMPACT) : NULL;
    char *ij = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(event);
    json_decref(obj);
    if (d == NULL || payload == NULL || ij == NULL) {
        free(d);
        free(payload);
        free(ij);
        return NULL;
    }
    snprintf(d->event_id, sizeof d->event_id, "%s", evt_id);
    d->payload = payload;
    d->len = strlen(payload);
    d->intent_json = ij;
    d->intent_len = strlen(ij);
    return d;
}

/* Inserts d by due time. Caller holds mu. */
static void enqueue(struct br_provider_test_pg *p, struct delivery *d)
{
    struct delivery **at = &p->head;
    for (uint32_t i = 0; i < BR_PROVIDER_PG_QUEUE_MAX && *at != NULL && (*at)->due_ms <= d->due_ms;
         i++) {
        at = &(*at)->next;
    }
    d->next = *at;
    *at = d;
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
    return strcmp(it->status, "succeeded") == 0 ? BR_E_DUPLICATE : BR_OK;
}

static int op_confirm(void *self, const char *intent_id, const char *client_secret,
                      const char *payment_method, br_provider_confirm_fn cb, void *ctx)
{
    struct br_provider_test_pg *p = self;
    bool ok;
    const char *decline;
    if (decide(payment_method, &ok, &decline) != BR_OK) {
        return BR_E_INVALID;
    }
    if (intent_id == NULL || strlen(intent_id) >= BR_PROVIDER_ID_MAX) {
        return BR_E_NOT_FOUND;
    }
    if (client_secret == NULL || client_secret[0] == '\0') {
        return BR_E_UNAUTHORIZED;
    }
    struct br_pg_intent it;
    int rc = confirmable(p, intent_id, client_secret, &it);
    uint8_t rnd[12];
    char rnd_hex[25], evt_id[40];
    if (rc == BR_OK && br_auth_random(rnd, sizeof rnd) != BR_OK) {
        rc = BR_E_UNAVAILABLE;
    }
    struct delivery *d = NULL;
    if (rc == BR_OK) {
        br_auth_hex(rnd, sizeof rnd, rnd_hex);
        snprintf(evt_id, sizeof evt_id, "evt_%s", rnd_hex);
        d = delivery_new(&it, ok, decline, evt_id);
        rc = d != NULL ? BR_OK : BR_E_UNAVAILABLE;
    }
    pthread_mutex_lock(&p->mu);
    if (rc == BR_OK && (p->queued >= BR_PROVIDER_PG_QUEUE_MAX || p->stop)) {
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
            free(d->payload);
            free(d->intent_json);
            free(d);
        }
        return rc; /* nothing changed (UNAVAILABLE: or recorded, then delivered later) */
    }
    pthread_mutex_lock(&p->mu);
    d->attempts = 1;
    d->due_ms = br_clock_mono_ms();
    d->cb = cb;
    d->cb_ctx = ctx;
    enqueue(p, d);
    p->queued++;
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

static size_t discard(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    (void)ptr;
    (void)userdata;
    return size * nmemb;
}

/* One POST of d. Returns true on a 2xx. */
static bool post(struct br_provider_test_pg *p, CURL *curl, const struct delivery *d)
{
    char sig[BR_PROVIDER_SIG_HEADER_MAX];
    char header[BR_PROVIDER_SIG_HEADER_MAX + 32];
    if (br_provider_sig_sign(p->secret, br_clock_wall_ms() / 1000, d->payload, d->len, sig,
                             sizeof sig) != BR_OK) {
        return false;
    }
    snprintf(header, sizeof header, "Stripe-Signature: %s", sig);
    struct curl_slist *hs = curl_slist_append(NULL, "Content-Type: application/json");
    hs = curl_slist_append(hs, header);
    hs = curl_slist_append(hs, "User-Agent: bookingrush-test-provider/1");
    curl_easy_setopt(curl, CURLOPT_URL, p->url);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hs);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, d->payload);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)d->len);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, DELIVERY_TIMEOUT_MS);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
    CURLcode rc = curl_easy_perform(curl);
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(hs);
    if (rc != CURLE_OK || status < 200 || status > 299) {
        br_logf(logger(p), BR_LOG_WARN, "webhook delivery failed",
                "\"curl\":\"%s\",\"status\":%ld,\"event\":\"%s\",\"attempt\":%u",
                curl_easy_strerror(rc), status, d->event_id, d->attempts);
        return false;
    }
    return true;
}

static void finish(struct delivery *d, int err)
{
    if (d->cb != NULL) {
        d->cb(d->cb_ctx, err, d->intent_json, d->intent_len);
        d->cb = NULL;
    }
}

static void delivery_free(struct delivery *d)
{
    free(d->payload);
    free(d->intent_json);
    free(d);
}

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
        struct delivery *d = calloc(1, sizeof *d);
        char *payload = strdup(rows[i].payload);
        if (d == NULL || payload == NULL) {
            free(d);
            free(payload);
            break; /* the claim lapses: claimed again after LEASE_MS */
        }
        snprintf(d->event_id, sizeof d->event_id, "%s", rows[i].event_id);
        d->payload = payload;
        d->len = strlen(payload);
        d->attempts = rows[i].attempts;
        pthread_mutex_lock(&p->mu);
        if (p->queued >= BR_PROVIDER_PG_QUEUE_MAX || p->stop) {
            pthread_mutex_unlock(&p->mu);
            delivery_free(d);
            break;
        }
        d->due_ms = br_clock_mono_ms();
        enqueue(p, d);
        p->queued++;
        pthread_mutex_unlock(&p->mu);
    }
    free(rows);
}

/* Takes the first due delivery, waiting for one or for the sweep's time
 * (*sweep_now set, NULL returned); NULL when stopping. */
static struct delivery *next_due(struct br_provider_test_pg *p, int64_t sweep_at, bool *sweep_now)
{
    *sweep_now = false;
    pthread_mutex_lock(&p->mu);
    while (!p->stop) {
        struct delivery *d = p->head;
        int64_t now = br_clock_mono_ms();
        if (d != NULL && d->due_ms <= now) {
            p->head = d->next;
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

/* The wait after a failed attempt: x4 from BACKOFF_FIRST_MS, at most BACKOFF_MAX_MS. */
static int64_t backoff_ms(unsigned attempts)
{
    int64_t b = BACKOFF_FIRST_MS;
    for (unsigned i = 1; i < attempts && b < BACKOFF_MAX_MS; i++) {
        b *= 4;
    }
    return b < BACKOFF_MAX_MS ? b : BACKOFF_MAX_MS;
}

/* Records d's attempt in PostgreSQL: delivered, or claimable again after
 * the backoff. A failure to record is harmless: the lease lapses and the
 * event is delivered again (the receiver de-duplicates its id). */
static void record_attempt(struct br_provider_test_pg *p, const struct delivery *d, bool ok)
{
    int64_t now = br_clock_wall_ms();
    int rc = ok ? br_pg_delivery_done(p->cfg.pg, d->event_id, now)
                : br_pg_delivery_retry(p->cfg.pg, d->event_id, now + backoff_ms(d->attempts));
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
        struct delivery *d = next_due(p, sweep_at, &sweep_now);
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
            finish(d, BR_E_UNAVAILABLE);
        } else {
            bool ok = post(p, curl, d);
            finish(d, ok ? BR_OK : BR_E_UNAVAILABLE);
            record_attempt(p, d, ok);
        }
        pthread_mutex_lock(&p->mu);
        p->queued--;
        pthread_mutex_unlock(&p->mu);
        delivery_free(d);
    }
    curl_easy_cleanup(curl);
    return NULL;
}

static int op_start(void *self, const char *webhook_url)
{
    struct br_provider_test_pg *p = self;
    BR_ASSERT(!p->started);
    if (strlen(webhook_url) >= sizeof p->url) {
        return BR_E_INVALID;
    }
    snprintf(p->url, sizeof p->url, "%s", webhook_url);
    if (pthread_create(&p->thread, NULL, deliver_loop, p) != 0) {
        return BR_E_IO;
    }
    p->started = true;
    return BR_OK;
}

static void op_stop(void *self)
{
    struct br_provider_test_pg *p = self;
    pthread_mutex_lock(&p->mu);
    bool was = p->started && !p->stop;
    p->stop = true;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    if (was) {
        pthread_join(p->thread, NULL);
    }
    uint32_t dropped = 0;
    pthread_mutex_lock(&p->mu);
    for (uint32_t i = 0; i < BR_PROVIDER_PG_QUEUE_MAX && p->head != NULL; i++) {
        struct delivery *d = p->head;
        p->head = d->next;
        p->queued--;
        pthread_mutex_unlock(&p->mu);
        finish(d, BR_E_UNAVAILABLE);
        delivery_free(d);
        dropped++;
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    if (dropped > 0) {
        br_logf(logger(p), BR_LOG_WARN, "test provider stopped", "\"dropped\":%u", dropped);
    }
}

static const struct br_provider_ops TEST_PG_OPS = {
    .name = "test",
    .create_intent = op_create_intent,
    .refund = op_refund,
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
