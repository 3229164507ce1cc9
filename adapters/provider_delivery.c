/*
 * provider_delivery.c -- see provider_delivery.h.
 */
#define _POSIX_C_SOURCE 200809L

#include "adapters/provider_delivery.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/auth.h"
#include "adapters/clock.h"
#include "adapters/provider_sig.h"
#include "core/err.h"
#include "core/panic.h"

#define BACKOFF_FIRST_MS 200 /* then x4 per attempt */
#define BACKOFF_MAX_MS 60000

int br_delivery_event_id(char out[BR_DELIVERY_EVENT_ID_MAX])
{
    uint8_t rnd[12];
    char rnd_hex[25];
    if (br_auth_random(rnd, sizeof rnd) != BR_OK) {
        return BR_E_UNAVAILABLE;
    }
    br_auth_hex(rnd, sizeof rnd, rnd_hex);
    snprintf(out, BR_DELIVERY_EVENT_ID_MAX, "evt_%s", rnd_hex);
    return BR_OK;
}

struct br_delivery *br_delivery_new(json_t *intent, bool ok, const char *event_id)
{
    json_t *event = json_pack("{s:s, s:s, s:s, s:I, s:b, s:s, s:{s:O}}", "id", event_id, "object",
                              "event", "api_version", "2023-10-16", "created",
                              (json_int_t)(br_clock_wall_ms() / 1000), "livemode", 0, "type",
                              ok ? "payment_intent.succeeded" : "payment_intent.payment_failed",
                              "data", "object", intent);
    struct br_delivery *d = calloc(1, sizeof *d);
    char *payload = event ? json_dumps(event, JSON_COMPACT) : NULL;
    char *ij = intent ? json_dumps(intent, JSON_COMPACT) : NULL;
    json_decref(event);
    json_decref(intent);
    if (d == NULL || payload == NULL || ij == NULL) {
        free(d);
        free(payload);
        free(ij);
        return NULL;
    }
    snprintf(d->event_id, sizeof d->event_id, "%s", event_id);
    d->payload = payload;
    d->len = strlen(payload);
    d->intent_json = ij;
    d->intent_len = strlen(ij);
    return d;
}

struct br_delivery *br_delivery_copy(const char *event_id, const char *payload)
{
    struct br_delivery *d = calloc(1, sizeof *d);
    char *copy = strdup(payload);
    if (d == NULL || copy == NULL) {
        free(d);
        free(copy);
        return NULL;
    }
    snprintf(d->event_id, sizeof d->event_id, "%s", event_id);
    d->payload = copy;
    d->len = strlen(copy);
    return d;
}

void br_delivery_finish(struct br_delivery *d, int err)
{
    if (d->cb != NULL) {
        d->cb(d->cb_ctx, err, d->intent_json, d->intent_len);
        d->cb = NULL;
    }
}

void br_delivery_free(struct br_delivery *d)
{
    free(d->payload);
    free(d->intent_json);
    free(d);
}

static size_t discard(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    (void)ptr;
    (void)userdata;
    return size * nmemb;
}

bool br_delivery_post(CURL *curl, const char *secret, const char *url, const struct br_delivery *d,
                      unsigned attempt, const struct br_log *log)
{
    char sig[BR_PROVIDER_SIG_HEADER_MAX];
    char header[BR_PROVIDER_SIG_HEADER_MAX + 32];
    if (br_provider_sig_sign(secret, br_clock_wall_ms() / 1000, d->payload, d->len, sig,
                             sizeof sig) != BR_OK) {
        return false;
    }
    snprintf(header, sizeof header, "Stripe-Signature: %s", sig);
    struct curl_slist *hs = curl_slist_append(NULL, "Content-Type: application/json");
    hs = curl_slist_append(hs, header);
    hs = curl_slist_append(hs, "User-Agent: bookingrush-test-provider/1");
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hs);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, d->payload);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)d->len);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, BR_DELIVERY_TIMEOUT_MS);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
    CURLcode rc = curl_easy_perform(curl);
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(hs);
    if (rc != CURLE_OK || status < 200 || status > 299) {
        br_logf(log, BR_LOG_WARN, "webhook delivery failed",
                "\"curl\":\"%s\",\"status\":%ld,\"event\":\"%s\",\"attempt\":%u",
                curl_easy_strerror(rc), status, d->event_id, attempt);
        return false;
    }
    return true;
}

int64_t br_delivery_backoff_ms(unsigned attempts)
{
    int64_t b = BACKOFF_FIRST_MS;
    for (unsigned i = 1; i < attempts && b < BACKOFF_MAX_MS; i++) {
        b *= 4;
    }
    return b < BACKOFF_MAX_MS ? b : BACKOFF_MAX_MS;
}

void br_delivery_enqueue(struct br_delivery_queue *q, struct br_delivery *d)
{
    struct br_delivery **at = &q->head;
    for (uint32_t i = 0; i < q->max && *at != NULL && (*at)->due_ms <= d->due_ms; i++) {
        at = &(*at)->next;
    }
    d->next = *at;
    *at = d;
}

static bool key_busy(const struct br_delivery_queue *q, uint64_t key)
{
    for (unsigned i = 0; key != 0 && i < BR_DELIVERY_THREADS_MAX; i++) {
        if (q->busy[i] == key) {
            return true;
        }
    }
    return false;
}

struct br_delivery *br_delivery_take(struct br_delivery_queue *q, unsigned slot, int64_t now,
                                     int64_t *wait_ms)
{
    BR_ASSERT(slot < BR_DELIVERY_THREADS_MAX);
    *wait_ms = 1000;
    struct br_delivery **at = &q->head;
    for (uint32_t i = 0; i < q->max && *at != NULL; i++) {
        struct br_delivery *d = *at;
        if (d->due_ms > now) {
            if (i == 0) {
                *wait_ms = d->due_ms - now;
            }
            break; /* by due time: nothing later is due either */
        }
        if (!key_busy(q, d->key)) {
            *at = d->next;
            d->next = NULL;
            q->busy[slot] = d->key;
            return d;
        }
        at = &d->next;
    }
    return NULL;
}

void br_delivery_done(struct br_delivery_queue *q, unsigned slot)
{
    BR_ASSERT(slot < BR_DELIVERY_THREADS_MAX);
    q->busy[slot] = 0;
    pthread_cond_broadcast(q->cv);
}

int br_delivery_start(struct br_delivery_queue *q, unsigned threads, void *(*fn)(void *),
                      void *arg)
{
    BR_ASSERT(threads >= 1 && threads <= BR_DELIVERY_THREADS_MAX);
    pthread_mutex_lock(q->mu); /* a thread asks for its slot under it */
    for (unsigned i = 0; i < threads; i++) {
        if (pthread_create(&q->thread[i], NULL, fn, arg) != 0) {
            break;
        }
        q->threads++;
    }
    q->started = q->threads > 0;
    bool all = q->threads == threads;
    pthread_mutex_unlock(q->mu);
    if (!all) {
        br_delivery_stop(q, &br_log_stderr);
        return BR_E_IO;
    }
    return BR_OK;
}

unsigned br_delivery_slot(struct br_delivery_queue *q)
{
    pthread_mutex_lock(q->mu);
    unsigned slot = 0;
    for (unsigned i = 0; i < q->threads; i++) {
        if (pthread_equal(q->thread[i], pthread_self())) {
            slot = i;
        }
    }
    pthread_mutex_unlock(q->mu);
    return slot;
}

void br_delivery_stop(struct br_delivery_queue *q, const struct br_log *log)
{
    pthread_mutex_lock(q->mu);
    bool was = q->started && !q->stop;
    q->stop = true;
    pthread_cond_broadcast(q->cv);
    pthread_mutex_unlock(q->mu);
    if (was) {
        for (unsigned i = 0; i < q->threads; i++) {
            pthread_join(q->thread[i], NULL);
        }
    }
    uint32_t dropped = 0;
    pthread_mutex_lock(q->mu);
    for (uint32_t i = 0; i < q->max && q->head != NULL; i++) {
        struct br_delivery *d = q->head;
        q->head = d->next;
        q->queued--;
        pthread_mutex_unlock(q->mu);
        br_delivery_finish(d, BR_E_UNAVAILABLE);
        br_delivery_free(d);
        dropped++;
        pthread_mutex_lock(q->mu);
    }
    pthread_mutex_unlock(q->mu);
    if (dropped > 0) {
        br_logf(log, BR_LOG_WARN, "test provider stopped", "\"dropped\":%u", dropped);
    }
}

int br_delivery_test_card(const char *payment_method, bool *ok, const char **decline)
{
    *decline = NULL;
    *ok = strcmp(payment_method, "pm_card_visa") == 0 ||
          strcmp(payment_method, "pm_card_mastercard") == 0 ||
          strcmp(payment_method, "pm_card_amex") == 0;
    if (*ok) {
        return BR_OK;
    }
    if (strcmp(payment_method, "pm_card_chargeDeclined") == 0) {
        *decline = "generic_decline";
    } else if (strcmp(payment_method, "pm_card_chargeDeclinedInsufficientFunds") == 0) {
        *decline = "insufficient_funds";
    }
    return *decline != NULL ? BR_OK : BR_E_INVALID;
}

int br_delivery_random_base62(char *out, size_t n)
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
    return have == n ? BR_OK : BR_E_IO; /* 16 rounds of 64 bytes: never short in practice */
}

int br_delivery_confirm_args(const char *intent_id, const char *client_secret,
                             const char *payment_method, bool *ok, const char **decline)
{
    if (br_delivery_test_card(payment_method, ok, decline) != BR_OK) {
        return BR_E_INVALID;
    }
    if (intent_id == NULL || strlen(intent_id) >= BR_PROVIDER_ID_MAX) {
        return BR_E_NOT_FOUND;
    }
    if (client_secret == NULL || client_secret[0] == '\0') {
        return BR_E_UNAUTHORIZED;
    }
    return BR_OK;
}
