/*
 * provider_test.c -- the in-memory, Stripe-like test provider (see
 * provider_test.h): intents in an open-addressing table keyed by payment id,
 * and a delivery thread that POSTs signed events with libcurl.
 */
#define _POSIX_C_SOURCE 200809L

#include "adapters/provider_test.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "adapters/auth.h"
#include "adapters/log.h"
#include "adapters/provider_sig.h"
#include "core/err.h"
#include "core/panic.h"

#define PROBE_MAX 64u                /* slots probed before a lookup gives up */
#define DELIVERY_TIMEOUT_MS 5000L    /* one POST, connect included */
#define BACKOFF_FIRST_MS 200         /* then x4 per attempt */
#define BACKOFF_MAX_MS 60000
#define WEBHOOK_SECRET_MAX 128u

enum intent_status { PI_EMPTY = 0, PI_REQUIRES_PM, PI_SUCCEEDED };

struct intent {
    uint64_t payment_id; /* 0 = empty slot */
    uint64_t hold_id;
    int64_t amount_minor;
    char currency[8];    /* lower case, as Stripe writes it */
    uint8_t status;      /* enum intent_status */
    bool refunded;
    uint32_t attempts;   /* confirms so far */
    char last_error[32]; /* decline code of the last failed confirm */
};

struct delivery {
    struct delivery *next;
    char *payload;          /* the event JSON, signed afresh on each attempt */
    size_t len;
    unsigned attempts;
    int64_t due_ms;         /* monotonic */
    br_provider_confirm_fn cb; /* NULL once called */
    void *cb_ctx;
    char *intent_json;      /* handed to cb */
    size_t intent_len;
};

struct br_provider_test {
    struct br_provider_test_config cfg;
    char secret[WEBHOOK_SECRET_MAX];
    char url[256];
    uint8_t id_key[32]; /* derives intent ids and client secrets */

    pthread_mutex_t mu;  /* intents, queue, stop */
    pthread_cond_t cv;
    struct intent *intents;
    uint32_t mask;       /* table size - 1 */
    uint32_t count;
    struct delivery *head; /* by due time */
    uint32_t queued;
    bool stop;
    bool started;
    pthread_t thread;
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec;
}

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
    if (p->intents == NULL || br_auth_random(p->id_key, sizeof p->id_key) != BR_OK) {
        free(p->intents);
        free(p);
        return BR_E_IO;
    }
    p->mask = size - 1;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
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

static void intent_id(uint64_t payment_id, char id[BR_PROVIDER_ID_MAX])
{
    snprintf(id, BR_PROVIDER_ID_MAX, "pi_br%016" PRIx64, payment_id);
}

/* "pi_..." back to the payment id; 0 when it is not one of ours. */
static uint64_t intent_payment_id(const char *id)
{
    if (id == NULL || strncmp(id, "pi_br", 5) != 0 || strlen(id) != 21) {
        return 0;
    }
    uint64_t v = 0;
    for (const char *c = id + 5; *c; c++) {
        int d = (*c >= '0' && *c <= '9') ? *c - '0' : (*c >= 'a' && *c <= 'f') ? *c - 'a' + 10 : -1;
        if (d < 0) {
            return 0;
        }
        v = v << 4 | (uint64_t)d;
    }
    return v;
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
    pthread_mutex_unlock(&p->mu);
    intent_id(payment_id, id);
    uint8_t mac[32];
    char hex[65];
    br_auth_hmac_sha256(p->id_key, sizeof p->id_key, id, strlen(id), mac);
    br_auth_hex(mac, 12, hex);
    snprintf(client_secret, BR_PROVIDER_SECRET_MAX, "%s_secret_%s", id, hex);
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

/* The intent as Stripe would show it. Caller holds mu. Returns a json_t. */
static json_t *intent_json(const struct intent *it)
{
    char id[BR_PROVIDER_ID_MAX];
    char pay[24];
    char hold[24];
    intent_id(it->payment_id, id);
    snprintf(pay, sizeof pay, "%" PRIu64, it->payment_id);
    snprintf(hold, sizeof hold, "%" PRIu64, it->hold_id);
    json_t *err = json_null();
    if (it->status == PI_REQUIRES_PM && it->last_error[0] != '\0') {
        err = json_pack("{s:s, s:s, s:s}", "type", "card_error", "code", "card_declined",
                        "decline_code", it->last_error);
    }
    return json_pack("{s:s, s:s, s:I, s:s, s:s, s:b, s:{s:s, s:s}, s:o}", "id", id, "object",
                     "payment_intent", "amount", (json_int_t)it->amount_minor, "currency",
                     it->currency, "status",
                     it->status == PI_SUCCEEDED ? "succeeded" : "requires_payment_method",
                     "refunded", it->refunded, "metadata", "payment_id", pay, "booking_id", hold,
                     "last_payment_error", err);
}

/* Inserts d by due time. Caller holds mu. */
static void enqueue(struct br_provider_test *p, struct delivery *d)
{
    struct delivery **at = &p->head;
    for (uint32_t i = 0; i < BR_PROVIDER_QUEUE_MAX && *at != NULL && (*at)->due_ms <= d->due_ms;
         i++) {
        at = &(*at)->next;
    }
    d->next = *at;
    *at = d;
}

int br_provider_test_confirm(struct br_provider_test *p, const char *intent_id_text,
                             const char *payment_method, br_provider_confirm_fn cb, void *ctx)
{
    bool ok;
    const char *decline = NULL;
    if (strcmp(payment_method, "pm_card_visa") == 0 ||
        strcmp(payment_method, "pm_card_mastercard") == 0 ||
        strcmp(payment_method, "pm_card_amex") == 0) {
        ok = true;
    } else if (strcmp(payment_method, "pm_card_chargeDeclined") == 0) {
        ok = false;
        decline = "generic_decline";
    } else if (strcmp(payment_method, "pm_card_chargeDeclinedInsufficientFunds") == 0) {
        ok = false;
        decline = "insufficient_funds";
    } else {
        return BR_E_INVALID;
    }
    uint64_t payment_id = intent_payment_id(intent_id_text);
    if (payment_id == 0) {
        return BR_E_NOT_FOUND;
    }
    uint8_t rnd[12];
    char rnd_hex[25];
    if (br_auth_random(rnd, sizeof rnd) != BR_OK) {
        return BR_E_UNAVAILABLE;
    }
    br_auth_hex(rnd, sizeof rnd, rnd_hex);

    pthread_mutex_lock(&p->mu);
    struct intent *it = slot_of(p, payment_id);
    if (it == NULL || it->payment_id != payment_id) {
        pthread_mutex_unlock(&p->mu);
        return BR_E_NOT_FOUND;
    }
    if (it->status == PI_SUCCEEDED) {
        pthread_mutex_unlock(&p->mu);
        return BR_E_DUPLICATE;
    }
    if (p->queued >= BR_PROVIDER_QUEUE_MAX) {
        pthread_mutex_unlock(&p->mu);
        return BR_E_FULL;
    }
    it->attempts++;
    it->status = ok ? PI_SUCCEEDED : PI_REQUIRES_PM;
    snprintf(it->last_error, sizeof it->last_error, "%s", ok ? "" : decline);
    json_t *obj = intent_json(it);
    char evt_id[40];
    snprintf(evt_id, sizeof evt_id, "evt_%s", rnd_hex);
    json_t *event = json_pack("{s:s, s:s, s:s, s:I, s:b, s:s, s:{s:O}}", "id", evt_id, "object",
                              "event", "api_version", "2023-10-16", "created",
                              (json_int_t)wall_s(), "livemode", 0, "type",
                              ok ? "payment_intent.succeeded" : "payment_intent.payment_failed",
                              "data", "object", obj);
    struct delivery *d = calloc(1, sizeof *d);
    char *payload = event ? json_dumps(event, JSON_COMPACT) : NULL;
    char *ij = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(event);
    json_decref(obj);
    if (d == NULL || payload == NULL || ij == NULL) {
        pthread_mutex_unlock(&p->mu);
        free(d);
        free(payload);
        free(ij);
        return BR_E_UNAVAILABLE;
    }
    d->payload = payload;
    d->len = strlen(payload);
    d->due_ms = mono_ms();
    d->cb = cb;
    d->cb_ctx = ctx;
    d->intent_json = ij;
    d->intent_len = strlen(ij);
    enqueue(p, d);
    p->queued++;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return BR_OK;
}

static size_t discard(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    (void)ptr;
    (void)userdata;
    return size * nmemb;
}

/* One POST of d. Returns true on a 2xx. */
static bool post(struct br_provider_test *p, CURL *curl, const struct delivery *d)
{
    char sig[BR_PROVIDER_SIG_HEADER_MAX];
    char header[BR_PROVIDER_SIG_HEADER_MAX + 32];
    if (br_provider_sig_sign(p->secret, wall_s(), d->payload, d->len, sig, sizeof sig) != BR_OK) {
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
        br_logf(&br_log_stderr, BR_LOG_WARN, "webhook delivery failed",
                "\"curl\":\"%s\",\"status\":%ld,\"attempt\":%u", curl_easy_strerror(rc), status,
                d->attempts + 1);
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

static void *deliver_loop(void *arg)
{
    struct br_provider_test *p = arg;
    CURL *curl = curl_easy_init();
    BR_ASSERT(curl != NULL);
    pthread_mutex_lock(&p->mu);
    while (!p->stop) {
        struct delivery *d = p->head;
        int64_t now = mono_ms();
        if (d == NULL || d->due_ms > now) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            int64_t wait_ms = d == NULL ? 1000 : d->due_ms - now;
            until.tv_sec += (time_t)(wait_ms / 1000);
            until.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
            if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&p->cv, &p->mu, &until);
            continue;
        }
        p->head = d->next;
        pthread_mutex_unlock(&p->mu);
        bool ok = post(p, curl, d);
        d->attempts++;
        finish(d, ok ? BR_OK : BR_E_UNAVAILABLE);
        pthread_mutex_lock(&p->mu);
        if (ok || d->attempts >= p->cfg.attempts_max) {
            if (!ok) {
                br_logf(&br_log_stderr, BR_LOG_ERROR, "webhook dropped after retries", NULL);
            }
            p->queued--;
            delivery_free(d);
            continue;
        }
        int64_t backoff = BACKOFF_FIRST_MS;
        for (unsigned i = 1; i < d->attempts && backoff < BACKOFF_MAX_MS; i++) {
            backoff *= 4;
        }
        d->due_ms = mono_ms() + (backoff < BACKOFF_MAX_MS ? backoff : BACKOFF_MAX_MS);
        enqueue(p, d);
    }
    pthread_mutex_unlock(&p->mu);
    curl_easy_cleanup(curl);
    return NULL;
}

int br_provider_test_start(struct br_provider_test *p, const char *webhook_url)
{
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

void br_provider_test_stop(struct br_provider_test *p)
{
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
    for (uint32_t i = 0; i < BR_PROVIDER_QUEUE_MAX && p->head != NULL; i++) {
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
        br_logf(&br_log_stderr, BR_LOG_WARN, "test provider stopped", "\"dropped\":%u", dropped);
    }
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
    free(p);
}
