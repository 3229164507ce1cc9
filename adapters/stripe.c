/*
 * stripe.c -- the Stripe payment provider over libcurl (see stripe.h).
 *
 * Shape of one call: op function (create_intent / refund / query) -> one or
 * more logical requests (GET the intent, POST the refund, ...) -> each made
 * by send_call(), which tries up to attempts_max times and classifies every
 * try (classify_try): done, retry (nothing sent / 409 / 429 / 5xx /
 * Stripe-Should-Retry: true), or unknown (the request left, no answer came:
 * retried with the SAME idempotency key, so Stripe replays the first
 * result). The op then translates Stripe's answer into enum br_err at the
 * call site and logs Stripe's error type, code and request id. The secret
 * key lives only in the curl handle's USERPWD; it is never formatted into
 * a log line.
 *
 * Limits: answers over STRIPE_BODY_MAX bytes are treated as a failed try;
 * at most STRIPE_POOL_MAX idle curl handles are kept; the in-memory intent
 * map (cfg.pg NULL, tests only) holds STRIPE_MAP_MAX payments.
 */
#define _POSIX_C_SOURCE 200809L

#include "adapters/stripe.h"

#include <ctype.h>
#include <curl/curl.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "adapters/log.h"
#include "adapters/pg.h"
#include "core/err.h"
#include "core/panic.h"

#define STRIPE_POOL_MAX 8u          /* idle curl handles kept (keep-alive) */
#define STRIPE_MAP_MAX 16384u       /* in-memory payment -> intent map, tests only */
#define STRIPE_BODY_MAX (256u << 10) /* bytes of one answer */
#define STRIPE_BACKOFF_MS_FIRST 200
#define STRIPE_BACKOFF_MS_MAX 5000
#define STRIPE_FIELD_MAX 128u       /* type, code, request id as logged */

struct stripe_map_entry {
    uint64_t payment_id;
    char intent_id[BR_PROVIDER_ID_MAX];
};

struct br_stripe {
    char *api_base;          /* without a trailing '/' */
    char *userpwd;           /* "<secret key>:"; never logged */
    long connect_timeout_ms; /* per try */
    long timeout_ms;         /* per try */
    unsigned attempts_max;   /* tries per logical request */
    struct br_pg *pg;        /* NULL: map below */
    const struct br_log *log;
    pthread_mutex_t mu;      /* guards pool, map and rng */
    CURL *pool[STRIPE_POOL_MAX];
    unsigned pool_n;
    struct stripe_map_entry *map; /* in-memory map, map_n used, STRIPE_MAP_MAX slots */
    uint32_t map_n;
    uint64_t rng;            /* jitter only */
    _Atomic uint64_t counts[BR_STRIPE_OP_COUNT][BR_STRIPE_OUTCOME_COUNT]; /* br_stripe_stats */
    _Atomic uint64_t replayed;
};

const char *const br_stripe_op_names[BR_STRIPE_OP_COUNT] = {"create_intent", "refund", "query",
                                                            "void"};
const char *const br_stripe_outcome_names[BR_STRIPE_OUTCOME_COUNT] = {"ok", "retry", "unknown",
                                                                      "invalid", "unavailable"};

static enum br_stripe_op op_index(const char *op)
{
    for (unsigned i = 0; i < BR_STRIPE_OP_COUNT; i++) {
        if (strcmp(op, br_stripe_op_names[i]) == 0) {
            return (enum br_stripe_op)i;
        }
    }
    BR_ASSERT(!"unknown op name");
    return BR_STRIPE_OP_CREATE;
}

/* Counts a finished op call by its result; returns rc. */
static int counted(struct br_stripe *s, enum br_stripe_op op, int rc)
{
    enum br_stripe_outcome o = rc == BR_OK                  ? BR_STRIPE_OK
                               : rc == BR_E_UNKNOWN_OUTCOME ? BR_STRIPE_UNKNOWN
                               : rc == BR_E_INVALID         ? BR_STRIPE_INVALID
                                                            : BR_STRIPE_UNAVAILABLE;
    atomic_fetch_add_explicit(&s->counts[op][o], 1, memory_order_relaxed);
    return rc;
}

/* One answer of one try. */
struct stripe_answer {
    long status;                         /* HTTP status, 0 when none */
    char *body;                          /* NUL-terminated, malloc'd, may be NULL */
    size_t len;
    char request_id[STRIPE_FIELD_MAX];   /* Request-Id header */
    int should_retry;                    /* Stripe-Should-Retry: -1 absent, 0 false, 1 true */
    bool replayed;                       /* Idempotent-Replayed: true */
    bool too_big;
};

/* What one try means for the call. */
enum stripe_try {
    TRY_DONE = 0,     /* a final answer (2xx or a 4xx not worth repeating) */
    TRY_RETRY = 1,    /* nothing happened or Stripe asks for a retry */
    TRY_UNKNOWN = 2,  /* the request left and no answer came */
    TRY_FATAL = 3,    /* our configuration is wrong (bad URL): never retried */
};

/* A logical request and its result. */
struct stripe_call {
    const char *op;       /* "create_intent", "refund", "query", "void": for logs */
    uint64_t payment_id;
    bool post;
    char path[256];      /* "/v1/..." */
    const char *form;     /* POST body, form-encoded */
    const char *idem_key; /* POST only */
    struct stripe_answer ans;
    unsigned attempts;    /* tries made */
    bool unknown;         /* some try left without an answer */
    char stripe_type[STRIPE_FIELD_MAX]; /* error.type of the answer, "" if none */
    char stripe_code[STRIPE_FIELD_MAX]; /* error.code */
    json_t *json;         /* the parsed answer, NULL if none */
};

/* ---- pure helpers ---- */

/* Appends s percent-encoded to out at *at (letters, digits and "_-." plain, and
 * "~" too when tilde_plain); false when it does not fit. */
static bool pct_add(char *out, size_t cap, size_t *at, const char *s, bool tilde_plain)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t i = *at;
    for (const char *p = s; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;
        bool plain = isalnum(c) || c == '_' || c == '-' || c == '.' || (tilde_plain && c == '~');
        if (i + 3 >= cap) {
            return false;
        }
        if (plain) {
            out[i++] = (char)c;
        } else {
            out[i++] = '%';
            out[i++] = hex[c >> 4];
            out[i++] = hex[c & 15];
        }
    }
    *at = i;
    return true;
}

/* Appends "name=value" (value percent-encoded) to out at *n; false when it does not fit. */
static bool form_add(char *out, size_t cap, size_t *n, const char *name, const char *value)
{
    size_t at = *n;
    if (at > 0) {
        if (at + 1 >= cap) {
            return false;
        }
        out[at++] = '&';
    }
    /* names are ours: brackets percent-encoded */
    if (!pct_add(out, cap, &at, name, false)) {
        return false;
    }
    if (at + 1 >= cap) {
        return false;
    }
    out[at++] = '=';
    if (!pct_add(out, cap, &at, value, true)) {
        return false;
    }
    out[at] = '\0';
    *n = at;
    return true;
}

/* Whether a curl failure happened after the request left: then Stripe may
 * have acted on it. request_size is CURLINFO_REQUEST_SIZE (0 = nothing sent). */
static enum stripe_try classify_curl(CURLcode cc, long request_size)
{
    switch (cc) {
    case CURLE_OK:
        return TRY_DONE;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
        return TRY_FATAL;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
        return TRY_RETRY;
    default:
        return request_size > 0 ? TRY_UNKNOWN : TRY_RETRY;
    }
}

/* A complete HTTP answer: retry or not (ISSUE11.md §1.5). */
static enum stripe_try classify_status(long status, int should_retry)
{
    if (should_retry == 1) {
        return TRY_RETRY;
    }
    if (should_retry == 0) {
        return TRY_DONE;
    }
    if (status == 409 || status == 429 || status >= 500) {
        return TRY_RETRY;
    }
    return TRY_DONE;
}

static void copy_str(char *out, size_t cap, const char *s)
{
    snprintf(out, cap, "%s", s != NULL ? s : "");
}

static const char *jstr(const json_t *obj, const char *name)
{
    const char *s = json_string_value(json_object_get(obj, name));
    return s != NULL ? s : "";
}

/* ---- handles, map, clock ---- */

static CURL *handle_get(struct br_stripe *s)
{
    pthread_mutex_lock(&s->mu);
    CURL *h = s->pool_n > 0 ? s->pool[--s->pool_n] : NULL;
    pthread_mutex_unlock(&s->mu);
    if (h == NULL) {
        h = curl_easy_init();
    } else {
        curl_easy_reset(h); /* options cleared; live connections kept */
    }
    return h;
}

static void handle_put(struct br_stripe *s, CURL *h)
{
    pthread_mutex_lock(&s->mu);
    if (s->pool_n < STRIPE_POOL_MAX) {
        s->pool[s->pool_n++] = h;
        h = NULL;
    }
    pthread_mutex_unlock(&s->mu);
    if (h != NULL) {
        curl_easy_cleanup(h);
    }
}

/* Backoff before try k+1 (k >= 1): 200 ms x2^(k-1) up to 5 s, +-25 % jitter. */
static void backoff(struct br_stripe *s, unsigned k)
{
    int64_t ms = STRIPE_BACKOFF_MS_FIRST;
    for (unsigned i = 1; i < k && ms < STRIPE_BACKOFF_MS_MAX; i++) {
        ms *= 2;
    }
    if (ms > STRIPE_BACKOFF_MS_MAX) {
        ms = STRIPE_BACKOFF_MS_MAX;
    }
    pthread_mutex_lock(&s->mu);
    s->rng ^= s->rng << 13;
    s->rng ^= s->rng >> 7;
    s->rng ^= s->rng << 17;
    uint64_t r = s->rng;
    pthread_mutex_unlock(&s->mu);
    int64_t span = ms / 2; /* -25 % .. +25 % */
    ms = ms - ms / 4 + (int64_t)(r % (uint64_t)(span + 1));
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* BR_OK (id_out filled), BR_E_NOT_FOUND, BR_E_UNAVAILABLE. */
static int map_get(struct br_stripe *s, uint64_t payment_id, char id_out[BR_PROVIDER_ID_MAX])
{
    if (s->pg != NULL) {
        return br_pg_stripe_intent_get(s->pg, payment_id, id_out);
    }
    int rc = BR_E_NOT_FOUND;
    pthread_mutex_lock(&s->mu);
    for (uint32_t i = 0; i < s->map_n; i++) {
        if (s->map[i].payment_id == payment_id) {
            memcpy(id_out, s->map[i].intent_id, BR_PROVIDER_ID_MAX);
            rc = BR_OK;
            break;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* First stored wins; winner_out = the stored id. BR_OK, BR_E_FULL, BR_E_UNAVAILABLE. */
static int map_put(struct br_stripe *s, uint64_t payment_id, const char *intent_id,
                   char winner_out[BR_PROVIDER_ID_MAX])
{
    if (s->pg != NULL) {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        int64_t now_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
        return br_pg_stripe_intent_put(s->pg, payment_id, intent_id, now_ms, winner_out);
    }
    int rc = BR_OK;
    pthread_mutex_lock(&s->mu);
    uint32_t i = 0;
    while (i < s->map_n && s->map[i].payment_id != payment_id) {
        i++;
    }
    if (i == s->map_n) {
        if (s->map_n == STRIPE_MAP_MAX) {
            rc = BR_E_FULL;
        } else {
            s->map[i].payment_id = payment_id;
            copy_str(s->map[i].intent_id, BR_PROVIDER_ID_MAX, intent_id);
            s->map_n++;
        }
    }
    if (rc == BR_OK) {
        memcpy(winner_out, s->map[i].intent_id, BR_PROVIDER_ID_MAX);
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* ---- one try, one call ---- */

static size_t on_body(char *data, size_t size, size_t n, void *ctx)
{
    struct stripe_answer *a = ctx;
    size_t add = size * n;
    if (a->len + add > STRIPE_BODY_MAX) {
        a->too_big = true;
        return 0; /* curl fails the transfer */
    }
    char *b = realloc(a->body, a->len + add + 1);
    if (b == NULL) {
        return 0;
    }
    memcpy(b + a->len, data, add);
    a->len += add;
    b[a->len] = '\0';
    a->body = b;
    return add;
}

/* Copies the value of header "Name: value" into out when line is that header. */
static bool header_value(const char *line, size_t n, const char *name, char *out, size_t cap)
{
    size_t k = strlen(name);
    if (n <= k + 1 || strncasecmp(line, name, k) != 0 || line[k] != ':') {
        return false;
    }
    size_t i = k + 1;
    while (i < n && (line[i] == ' ' || line[i] == '\t')) {
        i++;
    }
    size_t j = n;
    while (j > i && (line[j - 1] == '\r' || line[j - 1] == '\n' || line[j - 1] == ' ')) {
        j--;
    }
    size_t len = j - i < cap - 1 ? j - i : cap - 1;
    memcpy(out, line + i, len);
    out[len] = '\0';
    return true;
}

static size_t on_header(char *data, size_t size, size_t n, void *ctx)
{
    struct stripe_answer *a = ctx;
    size_t len = size * n;
    char v[16];
    if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) { /* a new answer (after 100-continue) */
        a->should_retry = -1;
        a->replayed = false;
        a->request_id[0] = '\0';
    }
    header_value(data, len, "Request-Id", a->request_id, sizeof a->request_id);
    if (header_value(data, len, "Stripe-Should-Retry", v, sizeof v)) {
        a->should_retry = strcasecmp(v, "true") == 0 ? 1 : 0;
    }
    if (header_value(data, len, "Idempotent-Replayed", v, sizeof v)) {
        a->replayed = strcasecmp(v, "true") == 0;
    }
    return len;
}

static void answer_clear(struct stripe_answer *a)
{
    free(a->body);
    memset(a, 0, sizeof *a);
    a->should_retry = -1;
}

/* One HTTP exchange. Fills c->ans; returns the curl code and the request size. */
static CURLcode try_once(struct br_stripe *s, struct stripe_call *c, const char *key,
                         long *request_size)
{
    answer_clear(&c->ans);
    *request_size = 0;
    CURL *h = handle_get(s);
    if (h == NULL) {
        return CURLE_OUT_OF_MEMORY;
    }
    char url[512];
    snprintf(url, sizeof url, "%s%s", s->api_base, c->path);
    char key_header[300];
    struct curl_slist *hdrs = curl_slist_append(NULL, "Accept: application/json");
    if (c->post) {
        snprintf(key_header, sizeof key_header, "Idempotency-Key: %s", key);
        hdrs = curl_slist_append(hdrs, key_header);
        hdrs = curl_slist_append(hdrs, "Content-Type: application/x-www-form-urlencoded");
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, c->form);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(c->form));
    } else {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    }
    hdrs = curl_slist_append(hdrs, "Expect:");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_USERPWD, s->userpwd);
    curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, s->timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, s->connect_timeout_ms);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_USERAGENT, "bookingrush-stripe/1");
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &c->ans);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &c->ans);
    CURLcode cc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &c->ans.status);
    curl_easy_getinfo(h, CURLINFO_REQUEST_SIZE, request_size);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(hdrs);
    if (cc == CURLE_OK) {
        handle_put(s, h);
    } else {
        curl_easy_cleanup(h); /* its connection is in an unknown state */
    }
    return cc;
}

/* Parses the answer's JSON and its error object into c. */
static void parse_answer(struct stripe_call *c)
{
    json_decref(c->json);
    c->json = NULL;
    c->stripe_type[0] = c->stripe_code[0] = '\0';
    if (c->ans.body == NULL) {
        return;
    }
    c->json = json_loadb(c->ans.body, c->ans.len, 0, NULL);
    json_t *err = json_object_get(c->json, "error");
    if (json_is_object(err)) {
        copy_str(c->stripe_type, sizeof c->stripe_type, jstr(err, "type"));
        copy_str(c->stripe_code, sizeof c->stripe_code, jstr(err, "code"));
    }
}

static void log_try(struct br_stripe *s, enum br_log_level lvl, const char *msg,
                    const struct stripe_call *c, const char *key, const char *detail)
{
    if (!br_log_on(s->log, lvl)) {
        return;
    }
    char type[STRIPE_FIELD_MAX * 2], code[STRIPE_FIELD_MAX * 2], rid[STRIPE_FIELD_MAX * 2];
    char k[BR_PROVIDER_IDEM_KEY_MAX * 8], det[512], m[512];
    const char *emsg = "";
    json_t *err = json_object_get(c->json, "error");
    if (json_is_object(err)) {
        emsg = jstr(err, "message");
    }
    if (strstr(emsg, "sk_") != NULL || strstr(emsg, "rk_") != NULL) {
        emsg = "(withheld: it quotes an API key)"; /* Stripe's 401 echoes the key, masked */
    }
#ifdef BR_PLANT_STRIPE_LOG_KEY
    emsg = s->userpwd; /* planted: the secret key in the log */
#endif
    br_logf(s->log, lvl, msg,
            "\"op\":\"%s\",\"payment\":%" PRIu64 ",\"status\":%ld,\"stripe_type\":\"%s\","
            "\"stripe_code\":\"%s\",\"stripe_message\":\"%s\",\"request_id\":\"%s\","
            "\"replayed\":%s,\"attempt\":%u,\"key\":\"%s\",\"detail\":\"%s\"",
            c->op, c->payment_id, c->ans.status, br_log_escape(c->stripe_type, type, sizeof type),
            br_log_escape(c->stripe_code, code, sizeof code), br_log_escape(emsg, m, sizeof m),
            br_log_escape(c->ans.request_id, rid, sizeof rid), c->ans.replayed ? "true" : "false",
            c->attempts, br_log_escape(key != NULL ? key : "", k, sizeof k),
            br_log_escape(detail, det, sizeof det));
}

/* The idempotency key of try k (1-based): always the caller's key. The
 * planted bug makes a new one per try, which turns a retried timeout into
 * a second refund at Stripe (tests/stripe/test_stripe.c must catch it). */
static const char *try_key(const struct stripe_call *c, unsigned k, char *buf, size_t cap)
{
#if defined(BR_PLANT_REFUND_KEY_PER_ATTEMPT) || defined(BR_PLANT_STRIPE_NEW_KEY_ON_RETRY)
    if (c->idem_key != NULL && k > 1) {
        snprintf(buf, cap, "%s-%u", c->idem_key, k);
        return buf;
    }
#else
    (void)k;
    (void)buf;
    (void)cap;
#endif
    return c->idem_key;
}

/* Makes the call: up to attempts_max tries. BR_OK when a final HTTP answer
 * is in c (any status: the op judges it), BR_E_UNKNOWN_OUTCOME when tries
 * ran out and some try left without an answer (POST), BR_E_UNAVAILABLE when
 * they ran out otherwise, BR_E_INVALID for a configuration curl refuses. */
static int send_call(struct br_stripe *s, struct stripe_call *c)
{
    char keybuf[BR_PROVIDER_IDEM_KEY_MAX + 16];
    unsigned attempts = s->attempts_max;
#ifdef BR_PLANT_STRIPE_NO_RETRY
    attempts = 1; /* planted: one try per call */
#endif
    for (unsigned k = 1; k <= attempts; k++) {
        c->attempts = k;
        const char *key = try_key(c, k, keybuf, sizeof keybuf);
        long sent = 0;
        CURLcode cc = try_once(s, c, key, &sent);
        enum stripe_try t = classify_curl(cc, sent);
        if (cc == CURLE_OK) {
            parse_answer(c);
            if (c->ans.replayed) {
                atomic_fetch_add_explicit(&s->replayed, 1, memory_order_relaxed);
            }
            t = classify_status(c->ans.status, c->ans.should_retry);
            if (t == TRY_DONE) {
                log_try(s, BR_LOG_DEBUG, "stripe answer", c, key, "");
                return BR_OK;
            }
            log_try(s, BR_LOG_WARN, "stripe try failed: retrying", c, key, "retryable status");
        } else if (t == TRY_FATAL) {
            log_try(s, BR_LOG_ERROR, "stripe request impossible (check --stripe-api-base)", c, key,
                    curl_easy_strerror(cc));
            return BR_E_INVALID;
        } else {
            if (t == TRY_UNKNOWN && c->post) {
#ifndef BR_PLANT_STRIPE_UNKNOWN_AS_UNAVAILABLE
                c->unknown = true;
#endif
            }
            log_try(s, BR_LOG_WARN,
                    t == TRY_UNKNOWN ? "stripe try without answer: unknown outcome, retrying with the "
                                       "same key"
                                     : "stripe try failed before sending: retrying",
                    c, key, curl_easy_strerror(cc));
        }
        if (k < attempts) {
            atomic_fetch_add_explicit(&s->counts[op_index(c->op)][BR_STRIPE_RETRY], 1,
                                      memory_order_relaxed);
            backoff(s, k);
        }
    }
    int rc = c->unknown ? BR_E_UNKNOWN_OUTCOME : BR_E_UNAVAILABLE;
    log_try(s, BR_LOG_ERROR, "stripe call gave up", c, c->idem_key, br_err_name(rc));
    return rc;
}

static void call_init(struct stripe_call *c, const char *op, uint64_t payment_id)
{
    memset(c, 0, sizeof *c);
    c->op = op;
    c->payment_id = payment_id;
    c->ans.should_retry = -1;
}

static void call_done(struct stripe_call *c)
{
    free(c->ans.body);
    c->ans.body = NULL;
    json_decref(c->json);
    c->json = NULL;
}

/* The translation every op shares for a final answer that is not 2xx. */
static int error_status(struct br_stripe *s, const struct stripe_call *c)
{
#ifndef BR_PLANT_STRIPE_401_INVALID
    if (c->ans.status == 401 || c->ans.status == 403) {
#else
    if (c->ans.status == 403) {
#endif
        log_try(s, BR_LOG_ERROR, "stripe key refused: an operator must fix --stripe-key", c,
                c->idem_key, "");
        return BR_E_UNAVAILABLE;
    }
    if (c->ans.status == 409 || c->ans.status == 429 || c->ans.status >= 500) {
        /* Stripe-Should-Retry: false on a retryable status */
        log_try(s, BR_LOG_ERROR, "stripe failed, told not to retry", c, c->idem_key, "");
        return BR_E_UNAVAILABLE;
    }
    if (strcmp(c->stripe_type, "idempotency_error") == 0) {
#ifdef BR_PLANT_STRIPE_IDEM_ERROR_UNAVAILABLE
        return BR_E_UNAVAILABLE; /* planted: a broken key looks like an outage */
#endif
        log_try(s, BR_LOG_ERROR, "stripe idempotency_error: our key derivation is broken", c,
                c->idem_key, "");
        return BR_E_INVALID;
    }
    log_try(s, BR_LOG_ERROR, "stripe refused the request", c, c->idem_key, "");
    return BR_E_INVALID;
}

/* GET /v1/payment_intents/<id> into c (c->json the intent). */
static int get_intent(struct br_stripe *s, struct stripe_call *c, const char *op,
                      uint64_t payment_id, const char *intent_id)
{
    call_init(c, op, payment_id);
    char esc[BR_PROVIDER_ID_MAX * 3];
    size_t n = 0;
    if (!form_add(esc, sizeof esc, &n, "x", intent_id)) {
        return BR_E_INVALID;
    }
    snprintf(c->path, sizeof c->path, "/v1/payment_intents/%s", esc + 2);
    int rc = send_call(s, c);
    if (rc != BR_OK) {
        return rc;
    }
    if (c->ans.status != 200) {
        return error_status(s, c);
    }
    if (!json_is_object(c->json) || strcmp(jstr(c->json, "object"), "payment_intent") != 0) {
        log_try(s, BR_LOG_ERROR, "stripe answer is not a payment_intent", c, NULL, "");
        return BR_E_UNAVAILABLE;
    }
    return BR_OK;
}

/* ---- the ops ---- */

static int intent_fields(struct br_stripe *s, struct stripe_call *c,
                         char id_out[BR_PROVIDER_ID_MAX], char secret_out[BR_PROVIDER_SECRET_MAX])
{
    const char *id = jstr(c->json, "id");
    const char *secret = jstr(c->json, "client_secret");
    if (id[0] == '\0' || strlen(id) >= BR_PROVIDER_ID_MAX || strlen(secret) >= BR_PROVIDER_SECRET_MAX) {
        log_try(s, BR_LOG_ERROR, "stripe intent id or client secret missing or too long", c, NULL, "");
        return BR_E_INVALID;
    }
    copy_str(id_out, BR_PROVIDER_ID_MAX, id);
    copy_str(secret_out, BR_PROVIDER_SECRET_MAX, secret);
    return BR_OK;
}

/* The intent the map has for payment_id: its id and client secret. */
static int existing_intent(struct br_stripe *s, uint64_t payment_id, const char *intent_id,
                           char id_out[BR_PROVIDER_ID_MAX], char secret_out[BR_PROVIDER_SECRET_MAX])
{
    struct stripe_call c;
    int rc = get_intent(s, &c, "create_intent", payment_id, intent_id);
    if (rc == BR_OK) {
        rc = intent_fields(s, &c, id_out, secret_out);
    }
    call_done(&c);
    return rc;
}

static int create_form(char *form, size_t cap, uint64_t payment_id, uint64_t booking_id,
                       int64_t amount_minor, const char *currency)
{
    char cur[4], amount[24], pay[24], booking[24];
    if (currency == NULL || strlen(currency) != 3 || amount_minor <= 0) {
        return BR_E_INVALID;
    }
    for (int i = 0; i < 3; i++) {
        cur[i] = (char)tolower((unsigned char)currency[i]); /* Stripe wants "eur" */
    }
    cur[3] = '\0';
    snprintf(amount, sizeof amount, "%" PRId64, amount_minor);
    snprintf(pay, sizeof pay, "%" PRIu64, payment_id);
    snprintf(booking, sizeof booking, "%" PRIu64, booking_id);
    size_t n = 0;
    bool ok = form_add(form, cap, &n, "amount", amount) && form_add(form, cap, &n, "currency", cur) &&
              form_add(form, cap, &n, "metadata[payment_id]", pay) &&
              form_add(form, cap, &n, "metadata[booking_id]", booking) &&
              form_add(form, cap, &n, "automatic_payment_methods[enabled]", "true");
    return ok ? BR_OK : BR_E_INVALID;
}

static int create_intent_op(void *p, uint64_t payment_id, uint64_t booking_id,
                                int64_t amount_minor, const char *currency, const char *idem_key,
                                char id_out[BR_PROVIDER_ID_MAX],
                                char secret_out[BR_PROVIDER_SECRET_MAX])
{
    struct br_stripe *s = p;
    char known[BR_PROVIDER_ID_MAX];
    int rc = map_get(s, payment_id, known);
#ifdef BR_PLANT_STRIPE_KEY_ONLY
    rc = BR_E_NOT_FOUND; /* planted: trusts the idempotency key alone */
#endif
    if (rc == BR_OK) { /* never create twice: keys expire after 24 h, the map does not */
        return existing_intent(s, payment_id, known, id_out, secret_out);
    }
    if (rc != BR_E_NOT_FOUND) {
        return BR_E_UNAVAILABLE;
    }
    char form[512];
    if (create_form(form, sizeof form, payment_id, booking_id, amount_minor, currency) != BR_OK) {
        br_logf(s->log, BR_LOG_ERROR, "stripe create_intent: bad arguments",
                "\"payment\":%" PRIu64 ",\"amount\":%" PRId64, payment_id, amount_minor);
        return BR_E_INVALID;
    }
    struct stripe_call c;
    call_init(&c, "create_intent", payment_id);
    c.post = true;
    snprintf(c.path, sizeof c.path, "/v1/payment_intents");
    c.form = form;
    c.idem_key = idem_key;
    char id[BR_PROVIDER_ID_MAX], secret[BR_PROVIDER_SECRET_MAX];
    rc = send_call(s, &c);
    if (rc == BR_OK) {
        rc = c.ans.status == 200 ? intent_fields(s, &c, id, secret) : error_status(s, &c);
    }
    call_done(&c);
    if (rc != BR_OK) {
        return rc;
    }
    char winner[BR_PROVIDER_ID_MAX];
    rc = map_put(s, payment_id, id, winner);
    if (rc != BR_OK) {
        br_logf(s->log, BR_LOG_ERROR, "stripe intent map not written: the create is retried",
                "\"payment\":%" PRIu64 ",\"err\":\"%s\"", payment_id, br_err_name(rc));
        return rc == BR_E_FULL ? BR_E_FULL : BR_E_UNAVAILABLE;
    }
    if (strcmp(winner, id) != 0) { /* another process stored first (its key had expired) */
        br_logf(s->log, BR_LOG_WARN, "stripe intent created twice: using the stored one",
                "\"payment\":%" PRIu64 ",\"created\":\"%s\",\"stored\":\"%s\"", payment_id, id, winner);
        return existing_intent(s, payment_id, winner, id_out, secret_out);
    }
    copy_str(id_out, BR_PROVIDER_ID_MAX, id);
    copy_str(secret_out, BR_PROVIDER_SECRET_MAX, secret);
    return BR_OK;
}

/* The intent to act on: the caller's, else the map's. BR_OK, BR_E_NOT_FOUND, BR_E_UNAVAILABLE. */
static int which_intent(struct br_stripe *s, uint64_t payment_id, const char *intent_id,
                        char out[BR_PROVIDER_ID_MAX])
{
    if (intent_id != NULL && intent_id[0] != '\0') {
        if (strlen(intent_id) >= BR_PROVIDER_ID_MAX ||
            strspn(intent_id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") !=
                strlen(intent_id)) {
            return BR_E_INVALID; /* it goes into a URL path */
        }
        copy_str(out, BR_PROVIDER_ID_MAX, intent_id);
        return BR_OK;
    }
    int rc = map_get(s, payment_id, out);
    return rc == BR_OK || rc == BR_E_NOT_FOUND ? rc : BR_E_UNAVAILABLE;
}

static int refund_answer(struct br_stripe *s, struct stripe_call *c)
{
    if (c->ans.status != 200) {
#ifndef BR_PLANT_STRIPE_ALREADY_REFUNDED_INVALID
        if (c->ans.status == 400 && strcmp(c->stripe_code, "charge_already_refunded") == 0) {
#else
        if (false) {
#endif
            log_try(s, BR_LOG_INFO, "stripe refund: already refunded", c, c->idem_key, "");
            return BR_OK; /* provider.h: the money is not kept, whoever returned it */
        }
        if (c->ans.status == 404 && strcmp(c->stripe_code, "resource_missing") == 0) {
            log_try(s, BR_LOG_WARN, "stripe refund: no such intent, nothing to return", c,
                    c->idem_key, "");
            return BR_OK; /* provider.h: a refund of an unknown intent succeeds */
        }
        return error_status(s, c);
    }
    const char *st = jstr(c->json, "status");
    if (strcmp(st, "succeeded") == 0 || strcmp(st, "pending") == 0) {
        log_try(s, BR_LOG_INFO, "stripe refund done", c, c->idem_key, st);
        return BR_OK;
    }
    if (strcmp(st, "requires_action") == 0) {
        log_try(s, BR_LOG_WARN, "stripe refund requires action by the customer", c, c->idem_key, st);
        return BR_OK;
    }
    log_try(s, BR_LOG_ERROR, "stripe refund failed: an operator must look", c, c->idem_key,
            jstr(c->json, "failure_reason"));
    return BR_E_UNAVAILABLE;
}

static int refund_op(void *p, uint64_t payment_id, const char *intent_id, int64_t amount_minor,
                         const char *idem_key)
{
    struct br_stripe *s = p;
    char intent[BR_PROVIDER_ID_MAX];
    int rc = which_intent(s, payment_id, intent_id, intent);
    if (rc == BR_E_NOT_FOUND) {
        br_logf(s->log, BR_LOG_WARN, "stripe refund: no intent was ever created, nothing to return",
                "\"payment\":%" PRIu64, payment_id);
        return BR_OK;
    }
    if (rc != BR_OK) {
        return rc;
    }
    char form[512], amount[24], pay[24];
    snprintf(amount, sizeof amount, "%" PRId64, amount_minor);
    snprintf(pay, sizeof pay, "%" PRIu64, payment_id);
    size_t n = 0;
    bool ok = form_add(form, sizeof form, &n, "payment_intent", intent) &&
              (amount_minor <= 0 || form_add(form, sizeof form, &n, "amount", amount)) &&
              form_add(form, sizeof form, &n, "metadata[payment_id]", pay);
    BR_ASSERT(ok);
    struct stripe_call c;
    call_init(&c, "refund", payment_id);
    c.post = true;
    snprintf(c.path, sizeof c.path, "/v1/refunds");
    c.form = form;
    c.idem_key = idem_key;
    rc = send_call(s, &c);
    if (rc == BR_OK) {
        rc = refund_answer(s, &c);
    }
    call_done(&c);
    return rc;
}

/* The answer a payment_intent object means (ISSUE11.md §1.3). */
static void answer_from_intent(const json_t *it, uint64_t payment_id, struct br_provider_answer *out)
{
    const char *st = jstr(it, "status");
    copy_str(out->intent_id, BR_PROVIDER_ID_MAX, jstr(it, "id"));
    const json_t *lpe = json_object_get(it, "last_payment_error");
    if (strcmp(st, "succeeded") == 0) {
        out->status = BR_PROVIDER_SUCCEEDED;
        snprintf(out->fact_key, BR_PROVIDER_FACT_MAX, "q:%" PRIu64 ":succeeded", payment_id);
    } else if (strcmp(st, "canceled") == 0) {
        out->status = BR_PROVIDER_FAILED;
        snprintf(out->fact_key, BR_PROVIDER_FACT_MAX, "q:%" PRIu64 ":failed:canceled", payment_id);
    } else if (strcmp(st, "requires_payment_method") == 0 && json_is_object(lpe)) {
        const char *ch = jstr(it, "latest_charge");
        if (ch[0] == '\0') {
            ch = jstr(lpe, "charge");
        }
        out->status = BR_PROVIDER_FAILED;
        snprintf(out->fact_key, BR_PROVIDER_FACT_MAX, "q:%" PRIu64 ":failed:%.60s", payment_id,
                 ch[0] != '\0' ? ch : "declined");
    } else {
        out->status = BR_PROVIDER_OPEN;
        out->fact_key[0] = '\0';
    }
}

/* POST /cancel, then what the intent says (any 400: read it again). */
static int void_intent(struct br_stripe *s, uint64_t payment_id, const char *intent,
                       struct br_provider_answer *out)
{
    char key[BR_PROVIDER_IDEM_KEY_MAX];
    br_provider_idem_key(key, "void", payment_id);
    struct stripe_call c;
    call_init(&c, "void", payment_id);
    c.post = true;
    snprintf(c.path, sizeof c.path, "/v1/payment_intents/%s/cancel", intent);
    c.form = "cancellation_reason=abandoned";
    c.idem_key = key;
    int rc = send_call(s, &c);
    if (rc == BR_OK && c.ans.status == 200 && json_is_object(c.json)) {
        answer_from_intent(c.json, payment_id, out);
    } else if (rc == BR_OK && c.ans.status == 400) {
        log_try(s, BR_LOG_INFO, "stripe cancel refused: reading the intent", &c, key, "");
        call_done(&c);
        rc = get_intent(s, &c, "void", payment_id, intent);
        if (rc == BR_OK) {
            answer_from_intent(c.json, payment_id, out);
        }
    } else if (rc == BR_OK) {
        rc = error_status(s, &c);
    }
    call_done(&c);
    return rc;
}

static int query_op(void *p, uint64_t payment_id, const char *intent_id, bool void_if_open,
                        struct br_provider_answer *out)
{
    struct br_stripe *s = p;
    memset(out, 0, sizeof *out);
    char intent[BR_PROVIDER_ID_MAX];
    int rc = which_intent(s, payment_id, intent_id, intent);
    if (rc == BR_E_NOT_FOUND) { /* nothing was ever created: nothing can be paid */
        out->status = void_if_open ? BR_PROVIDER_FAILED : BR_PROVIDER_OPEN;
        if (void_if_open) {
            snprintf(out->fact_key, BR_PROVIDER_FACT_MAX, "q:%" PRIu64 ":failed:canceled",
                     payment_id);
        }
        return BR_OK;
    }
    if (rc != BR_OK) {
        return rc;
    }
    struct stripe_call c;
    rc = get_intent(s, &c, "query", payment_id, intent);
    if (rc == BR_OK) {
        answer_from_intent(c.json, payment_id, out);
    }
    call_done(&c);
    /* A hold that is gone makes "not paid" final at Stripe too: cancel what
     * is not succeeded or canceled yet, a decline included (the buyer could
     * still pay it later). */
    bool final = out->status == BR_PROVIDER_SUCCEEDED ||
                 strstr(out->fact_key, ":failed:canceled") != NULL;
#ifdef BR_PLANT_STRIPE_NO_VOID
    final = true; /* planted: an open intent stays payable after the hold is gone */
#endif
    if (rc == BR_OK && void_if_open && !final) {
        memset(out, 0, sizeof *out);
        rc = void_intent(s, payment_id, intent, out);
    }
    BR_ASSERT(rc != BR_OK || out->status != BR_PROVIDER_OPEN || out->fact_key[0] == '\0');
    return rc;
}

/* The table's entries: the ops above, counted for br_stripe_stats. */
static int stripe_create_intent(void *p, uint64_t payment_id, uint64_t booking_id,
                                int64_t amount_minor, const char *currency, const char *idem_key,
                                char id_out[BR_PROVIDER_ID_MAX],
                                char secret_out[BR_PROVIDER_SECRET_MAX])
{
    return counted(p, BR_STRIPE_OP_CREATE,
                   create_intent_op(p, payment_id, booking_id, amount_minor, currency, idem_key,
                                    id_out, secret_out));
}

static int stripe_refund(void *p, uint64_t payment_id, const char *intent_id, int64_t amount_minor,
                         const char *idem_key)
{
    return counted(p, BR_STRIPE_OP_REFUND,
                   refund_op(p, payment_id, intent_id, amount_minor, idem_key));
}

static int stripe_query(void *p, uint64_t payment_id, const char *intent_id, bool void_if_open,
                        struct br_provider_answer *out)
{
    return counted(p, void_if_open ? BR_STRIPE_OP_VOID : BR_STRIPE_OP_QUERY,
                   query_op(p, payment_id, intent_id, void_if_open, out));
}

void br_stripe_stats(const struct br_stripe *s, struct br_stripe_stats *out)
{
    struct br_stripe *m = (struct br_stripe *)s; /* atomic loads need a non-const object */
    for (unsigned i = 0; i < BR_STRIPE_OP_COUNT; i++) {
        for (unsigned j = 0; j < BR_STRIPE_OUTCOME_COUNT; j++) {
            out->requests[i][j] = atomic_load_explicit(&m->counts[i][j], memory_order_relaxed);
        }
    }
    out->replayed = atomic_load_explicit(&m->replayed, memory_order_relaxed);
}

/* ---- lifetime ---- */

static const struct br_provider_ops stripe_ops = {
    .name = "stripe",
    .create_intent = stripe_create_intent,
    .refund = stripe_refund,
    .confirm = NULL,
    .start = NULL,
    .stop = NULL,
    .query = stripe_query,
};

int br_stripe_new(struct br_stripe **out, const struct br_stripe_config *cfg)
{
    *out = NULL;
    if (cfg == NULL || cfg->api_base == NULL || cfg->secret_key == NULL ||
        cfg->secret_key[0] == '\0' || cfg->attempts_max < 1 || cfg->timeout_ms <= 0 ||
        cfg->connect_timeout_ms <= 0 ||
        (strncmp(cfg->api_base, "http://", 7) != 0 && strncmp(cfg->api_base, "https://", 8) != 0) ||
        strlen(cfg->api_base) > 256 || strchr(cfg->secret_key, ':') != NULL) {
        return BR_E_INVALID;
    }
    struct br_stripe *s = calloc(1, sizeof *s);
    if (s == NULL || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        free(s);
        return BR_E_IO;
    }
    size_t base_len = strlen(cfg->api_base);
    while (base_len > 0 && cfg->api_base[base_len - 1] == '/') {
        base_len--;
    }
    s->api_base = strndup(cfg->api_base, base_len);
    size_t klen = strlen(cfg->secret_key);
    s->userpwd = malloc(klen + 2);
    s->map = cfg->pg == NULL ? calloc(STRIPE_MAP_MAX, sizeof *s->map) : NULL;
    if (s->api_base == NULL || s->userpwd == NULL || (cfg->pg == NULL && s->map == NULL)) {
        free(s->api_base);
        free(s->userpwd);
        free(s->map);
        free(s);
        curl_global_cleanup();
        return BR_E_IO;
    }
    memcpy(s->userpwd, cfg->secret_key, klen);
    s->userpwd[klen] = ':';
    s->userpwd[klen + 1] = '\0';
    s->connect_timeout_ms = cfg->connect_timeout_ms;
    s->timeout_ms = cfg->timeout_ms;
    s->attempts_max = cfg->attempts_max;
    s->pg = cfg->pg;
    s->log = cfg->log != NULL ? cfg->log : &br_log_stderr;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    s->rng = ((uint64_t)now.tv_nsec << 20) ^ (uint64_t)now.tv_sec ^ ((uint64_t)getpid() << 40);
    if (s->rng == 0) {
        s->rng = 0x9e3779b97f4a7c15ull;
    }
    pthread_mutex_init(&s->mu, NULL);
    *out = s;
    return BR_OK;
}

struct br_provider br_stripe_provider(struct br_stripe *s)
{
    BR_ASSERT(s != NULL);
    struct br_provider pv = {.ops = &stripe_ops, .self = s};
    return pv;
}

void br_stripe_free(struct br_stripe *s)
{
    if (s == NULL) {
        return;
    }
    for (unsigned i = 0; i < s->pool_n; i++) {
        curl_easy_cleanup(s->pool[i]);
    }
    /* the key is overwritten before the memory goes back */
    volatile char *k = s->userpwd;
    for (size_t i = 0; k[i] != '\0'; i++) {
        k[i] = '\0';
    }
    free(s->userpwd);
    free(s->api_base);
    free(s->map);
    pthread_mutex_destroy(&s->mu);
    free(s);
    curl_global_cleanup();
}
