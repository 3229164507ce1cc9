/*
 * routes.c -- the API routes (pipeline in routes.h).
 *
 * A request's state is a struct rq, created by the handler and freed when
 * the adapter reports the request closed. A route that needs the backend
 * sets rq->cont and calls one operation; the operation's done (any thread)
 * only resumes the request, and rq->cont then renders and answers on the
 * request's own loop thread, so rendering runs in parallel on the loop
 * threads rather than on the journal's flusher.
 */
#define _POSIX_C_SOURCE 200809L

#include "server/routes.h"

#include <ctype.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "adapters/auth.h"
#include "adapters/provider_sig.h"
#include "core/err.h"
#include "core/hash.h"
#include "core/panic.h"
#include "core/str.h"
#include "server/render.h"

#define PATH_SEGMENTS_MAX 8u
#define SEGMENT_MAX 64u
#define ID_DIGITS_MAX 16u      /* ids stay below 2^53 */
#define IDEM_KEY_MAX 255u
#define EMAIL_MIN 3u
#define PASSWORD_MIN 8u
#define REQUEST_ID_MAX 64u
#define QUEUE_PER_SEAT 20u         /* default queue_capacity: joins per seat... */
#define QUEUE_CAPACITY_MIN 10000u  /* ...at least this many... */
#define QUEUE_CAPACITY_MAX 250000u /* ...at most this many */

enum body_kind { BODY_NONE = 0, BODY_JSON, BODY_JSON_OR_FORM, BODY_RAW_JSON };
enum auth_kind { AUTH_NONE = 0, AUTH_USER, AUTH_ORGANIZER, AUTH_ADMIN };

struct rq;
typedef void (*route_fn)(struct rq *q);

struct route {
    const char *method;
    const char *tmpl;   /* segments; "{id}" = a positive integer, "{s}" = any segment */
    route_fn fn;
    enum body_kind body;
    enum auth_kind auth;
    bool limit_exempt;  /* operations and webhooks skip the rate limits */
};

struct rq {
    struct br_routes *rt;
    struct br_http_req *req;
    unsigned route;
    char id[REQUEST_ID_MAX + 1];
    char client[BR_ADDR_TEXT_MAX];
    uint64_t path_id;
    char path_str[SEGMENT_MAX];
    bool authed;
    struct br_jwt_claims who;
    json_t *json;
    const char *raw;      /* the body, for BODY_RAW_JSON and forms */
    size_t raw_len;
    struct br_call call;
    route_fn cont;        /* runs on the loop thread once the call is done */
    struct br_api_event *events;
    struct br_api_booking *bookings;
    struct br_hub_sub *sub;
    char *provider_json;  /* the test provider's answer */
    size_t provider_len;
    int provider_err;
    char password[BR_PASSWORD_MAX + 1];
    size_t password_len;
    bool id_header;       /* X-Request-Id already added */
};

/* ---- answering ---- */

unsigned br_routes_status(int err)
{
    switch (err) {
    case BR_OK:
        return 200;
    case BR_E_INVALID:
    case BR_E_TRUNCATED:
    case BR_E_CORRUPT:
    case BR_E_VERSION:
        return 400;
    case BR_E_UNAUTHORIZED:
        return 401;
    case BR_E_FORBIDDEN:
    case BR_E_PASS_REQUIRED:
    case BR_E_PASS_INVALID:
    case BR_E_PASS_EXPIRED:
        return 403;
    case BR_E_NOT_FOUND:
    case BR_E_NOT_IN_QUEUE:
        return 404;
    case BR_E_SOLD_OUT:
    case BR_E_LIMIT_EXCEEDED:
    case BR_E_BOOKING_NOT_HELD:
    case BR_E_EMAIL_TAKEN:
    case BR_E_DUPLICATE:
    case BR_E_SALE_NOT_OPEN:
        return 409;
    case BR_E_HOLD_EXPIRED:
        return 410;
    case BR_E_PAYLOAD_TOO_LARGE:
        return 413;
    case BR_E_IDEMPOTENCY_CONFLICT:
        return 422;
    case BR_E_RATE_LIMITED:
        return 429;
    case BR_E_FULL:
    case BR_E_UNAVAILABLE:
    case BR_E_UNKNOWN_OUTCOME:
        return 503;
    default:
        return 500;
    }
}

static void reply(struct rq *q, unsigned status, const char *ctype, char *body, size_t len)
{
    struct br_routes *rt = q->rt;
    int64_t dur_us = 0;
    {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        dur_us = ((int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000) - br_http_started_us(q->req);
    }
    br_metrics_observe(rt->metrics, q->route, status, dur_us);
    if (br_log_on(rt->log, BR_LOG_INFO)) {
        char path[256];
        br_log_escape(br_http_path(q->req), path, sizeof path);
        br_logf(rt->log, status >= 500 ? BR_LOG_ERROR : BR_LOG_INFO, "request",
                "\"req_id\":\"%s\",\"method\":\"%s\",\"path\":\"%s\",\"status\":%u,"
                "\"dur_us\":%lld,\"client\":\"%s\",\"user\":%" PRIu64,
                q->id, br_http_method(q->req), path, status, (long long)dur_us, q->client,
                q->authed ? q->who.user_id : 0);
    }
    if (!q->id_header) {
        br_http_add_header(q->req, "X-Request-Id", q->id);
    }
    br_http_respond(q->req, status, ctype, body, len);
}

static void reply_json(struct rq *q, unsigned status, json_t *j)
{
    size_t len = 0;
    char *body = br_render_dump(j, &len);
    if (body == NULL) {
        body = br_render_error("INTERNAL", "out of memory", &len);
        status = 500;
    }
    reply(q, status, "application/json", body, body ? len : 0);
}

static void reply_code(struct rq *q, unsigned status, const char *code, const char *message)
{
    size_t len = 0;
    char *body = br_render_error(code, message, &len);
    reply(q, status, "application/json", body, body ? len : 0);
}

static void reply_err(struct rq *q, int err)
{
    if (err == BR_E_UNAUTHORIZED) {
        br_http_add_header(q->req, "WWW-Authenticate", "Bearer realm=\"bookingrush\"");
    }
    reply_code(q, br_routes_status(err), br_err_name(err), br_err_message(err));
}

/* ---- backend calls ---- */

static void call_done(struct br_call *call)
{
    struct rq *q = call->ctx;
    br_http_resume(q->req);
}

/* Prepares rq->call for one backend operation continuing at cont. */
static struct br_call *begin(struct rq *q, route_fn cont)
{
    memset(&q->call, 0, sizeof q->call);
    q->call.done = call_done;
    q->call.ctx = q;
    q->cont = cont;
    br_http_defer(q->req);
    return &q->call;
}

#define BE(q) ((q)->rt->backend)

/* ---- input helpers ---- */

/* A positive integer id below 2^53 from a JSON member. */
static bool json_id(json_t *obj, const char *key, uint64_t *out)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v)) {
        return false;
    }
    json_int_t i = json_integer_value(v);
    if (i < 1 || i > (json_int_t)1 << 53) {
        return false;
    }
    *out = (uint64_t)i;
    return true;
}

/* An integer in [min, max]; the default when absent; false when wrong. */
static bool json_u32(json_t *obj, const char *key, uint32_t min, uint32_t max, uint32_t dflt,
                     uint32_t *out)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL) {
        *out = dflt;
        return true;
    }
    if (!json_is_integer(v) || json_integer_value(v) < (json_int_t)min ||
        json_integer_value(v) > (json_int_t)max) {
        return false;
    }
    *out = (uint32_t)json_integer_value(v);
    return true;
}

/* A string of min..cap-1 bytes, copied. Absent: the default (NULL = required). */
static bool json_str(json_t *obj, const char *key, size_t min, char *out, size_t cap,
                     const char *dflt)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL && dflt != NULL) {
        snprintf(out, cap, "%s", dflt);
        return true;
    }
    if (!json_is_string(v)) {
        return false;
    }
    size_t n = json_string_length(v);
    const char *s = json_string_value(v);
    if (n < min || n >= cap || memchr(s, '\0', n) != NULL) {
        return false;
    }
    memcpy(out, s, n + 1);
    return true;
}

/* Seconds (integer or real) as milliseconds within [1 ms, BR_TTL_MS_MAX]. */
static bool json_seconds_ms(json_t *obj, const char *key, int64_t dflt_ms, int64_t *out)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL) {
        *out = dflt_ms;
        return true;
    }
    if (!json_is_number(v)) {
        return false;
    }
    double ms = json_number_value(v) * 1000.0;
    if (!(ms >= 1.0) || ms > (double)BR_TTL_MS_MAX) {
        return false;
    }
    *out = (int64_t)(ms + 0.5);
    return true;
}

static bool json_time_ms(json_t *obj, const char *key, int64_t dflt_ms, int64_t *out)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL) {
        *out = dflt_ms;
        return true;
    }
    return json_is_string(v) && br_time_parse(json_string_value(v), out) == 0;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Deepest nesting of arrays/objects in a JSON text, strings skipped. O(len). */
static unsigned json_depth(const char *s, size_t len)
{
    unsigned depth = 0;
    unsigned max = 0;
    bool in_str = false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\') {
                i++;
            } else if (c == '"') {
                in_str = false;
            }
        } else if (c == '"') {
            in_str = true;
        } else if (c == '{' || c == '[') {
            if (++depth > max) {
                max = depth;
            }
        } else if ((c == '}' || c == ']') && depth > 0) {
            depth--;
        }
    }
    return max;
}

static bool content_type_is(const char *ct, const char *want)
{
    if (ct == NULL) {
        return false;
    }
    size_t n = strlen(want);
    return strncasecmp(ct, want, n) == 0 && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

/* ---- auth ---- */

static int authenticate(struct rq *q, bool allow_query)
{
    const char *h = br_http_header(q->req, "Authorization");
    const char *token = NULL;
    if (h != NULL && strncasecmp(h, "Bearer ", 7) == 0) {
        token = h + 7;
        while (*token == ' ') {
            token++;
        }
    } else if (allow_query) {
        token = br_http_query(q->req, "access_token"); /* EventSource cannot set headers */
    }
    if (token == NULL || token[0] == '\0') {
        return BR_E_UNAUTHORIZED;
    }
    int rc = br_jwt_verify_cached(q->rt->jwt_cache, q->rt->jwt_secret, q->rt->jwt_secret_len,
                                  BR_JWT_ISSUER, token, wall_ms() / 1000, &q->who);
    q->authed = rc == BR_OK;
    return rc;
}

/* ---- routes: accounts ---- */

static bool email_ok(char *email)
{
    size_t n = strlen(email);
    const char *at = strchr(email, '@');
    if (n < EMAIL_MIN || at == NULL || at == email || at[1] == '\0' || strchr(at + 1, '@')) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)email[i];
        if (c <= 0x20 || c == 0x7f) {
            return false;
        }
        email[i] = (char)tolower(c); /* emails compare case-insensitively here */
    }
    return true;
}

static void register_done(struct rq *q)
{
    if (q->call.err != BR_OK) {
        reply_err(q, q->call.err);
        return;
    }
    reply_json(q, 201, br_render_user(&q->call.r.user));
}

static void r_register(struct rq *q)
{
    char email[BR_EMAIL_MAX];
    char name[BR_NAME_MAX];
    char password[BR_PASSWORD_MAX + 1];
    if (!json_str(q->json, "email", EMAIL_MIN, email, sizeof email, NULL) || !email_ok(email) ||
        !json_str(q->json, "password", PASSWORD_MIN, password, sizeof password, NULL) ||
        !json_str(q->json, "name", 1, name, sizeof name, NULL)) {
        reply_code(q, 400, "INVALID_REQUEST",
                   "want {email, password (8 to 256 bytes), name (1 to 63 bytes)}");
        return;
    }
    uint8_t hash[BR_PASSWORD_HASH_LEN];
    uint8_t salt[BR_SALT_LEN];
    int rc = br_auth_password_hash(password, strlen(password), q->rt->cfg->scrypt_log2n, hash,
                                   salt);
    memset(password, 0, sizeof password);
    if (rc != BR_OK) {
        reply_err(q, rc == BR_E_INVALID ? BR_E_INVALID : BR_E_UNAVAILABLE);
        return;
    }
    BE(q)->ops->user_register(BE(q), email, name, hash, salt, BR_ROLE_CUSTOMER,
                              begin(q, register_done));
}

static void login_done(struct rq *q)
{
    int rc = q->call.err;
    if (rc == BR_E_NOT_FOUND) {
        br_auth_password_dummy(q->password, q->password_len, q->rt->cfg->scrypt_log2n);
        rc = BR_E_UNAUTHORIZED;
    } else if (rc == BR_OK) {
        rc = br_auth_password_verify(q->password, q->password_len, q->call.r.user.password_hash,
                                     q->call.r.user.salt);
    }
    memset(q->password, 0, sizeof q->password);
    if (rc != BR_OK) {
        reply_code(q, br_routes_status(rc), br_err_name(rc),
                   rc == BR_E_UNAUTHORIZED ? "wrong email or password" : br_err_message(rc));
        return;
    }
    int64_t now_s = wall_ms() / 1000;
    struct br_jwt_claims c = {.user_id = q->call.r.user.id,
                              .role = q->call.r.user.role,
                              .exp_s = now_s + (int64_t)q->rt->cfg->jwt_ttl_s};
    char token[BR_JWT_MAX];
    if (br_jwt_issue(q->rt->jwt_secret, q->rt->jwt_secret_len, BR_JWT_ISSUER, &c, now_s, token,
                     sizeof token) != BR_OK) {
        reply_err(q, BR_E_UNAVAILABLE);
        return;
    }
    char exp[BR_TIME_TEXT_MAX];
    br_time_format(c.exp_s * 1000, exp);
    reply_json(q, 200,
               json_pack("{s:s, s:s, s:s, s:I}", "access_token", token, "token_type", "Bearer",
                         "expires_at", exp, "user_id", (json_int_t)c.user_id));
}

static void r_login(struct rq *q)
{
    char email[BR_EMAIL_MAX];
    if (!json_str(q->json, "email", 1, email, sizeof email, NULL) ||
        !json_str(q->json, "password", 1, q->password, sizeof q->password, NULL)) {
        reply_code(q, 400, "INVALID_REQUEST", "want {email, password}");
        return;
    }
    q->password_len = strlen(q->password);
    if (!email_ok(email)) {
        reply_code(q, 401, "UNAUTHORIZED", "wrong email or password");
        return;
    }
    BE(q)->ops->user_find(BE(q), email, begin(q, login_done));
}

static void me_done(struct rq *q)
{
    if (q->call.err != BR_OK) {
        reply_err(q, q->call.err == BR_E_NOT_FOUND ? BR_E_UNAUTHORIZED : q->call.err);
        return;
    }
    reply_json(q, 200, br_render_user(&q->call.r.user));
}

static void r_me(struct rq *q)
{
    BE(q)->ops->user_get(BE(q), q->who.user_id, begin(q, me_done));
}

static void user_done(struct rq *q)
{
    if (q->call.err != BR_OK) {
        reply_err(q, q->call.err);
        return;
    }
    reply_json(q, 200, br_render_user(&q->call.r.user));
}

static void r_role_set(struct rq *q)
{
    char role_text[16];
    uint8_t role;
    if (!json_str(q->json, "role", 1, role_text, sizeof role_text, NULL) ||
        br_role_parse(role_text, &role) != 0) {
        reply_code(q, 400, "INVALID_REQUEST", "want {role: customer | organizer | admin}");
        return;
    }
    BE(q)->ops->user_role_set(BE(q), q->who.user_id, q->path_id, role, begin(q, user_done));
}

/* ---- routes: events ---- */

static void event_done(struct rq *q)
{
    if (q->call.err != BR_OK) {
        reply_err(q, q->call.err);
        return;
    }
    reply_json(q, 200, br_render_event(&q->call.r.event));
}

static void event_created(struct rq *q)
{
    if (q->call.err != BR_OK) {
        reply_err(q, q->call.err);
        return;
    }
    reply_json(q, 201, br_render_event(&q->call.r.event));
}

static bool parse_zone(json_t *z, struct br_zone_spec *out)
{
    uint32_t cap;
    json_t *price = json_object_get(z, "price_minor");
    if (!json_is_object(z) || !json_str(z, "name", 1, out->name, sizeof out->name, NULL) ||
        !json_u32(z, "capacity", 1, BR_ZONE_CAPACITY_MAX, 0, &cap) || cap == 0 ||
        !json_is_integer(price) || json_integer_value(price) < 0 ||
        json_integer_value(price) > BR_PRICE_MINOR_MAX ||
        !json_str(z, "currency", 3, out->currency, sizeof out->currency, NULL)) {
        return false;
    }
    for (unsigned i = 0; i < 3; i++) {
        if (out->currency[i] < 'A' || out->currency[i] > 'Z') {
            return false;
        }
    }
    out->capacity = cap;
    out->price_minor = (int64_t)json_integer_value(price);
    return true;
}

static void r_event_create(struct rq *q)
{
    struct br_event_spec s;
    memset(&s, 0, sizeof s);
    json_t *j = q->json;
    json_t *queue = json_object_get(j, "queue");
    json_t *zones = json_object_get(j, "zones");
    json_t *rp = json_object_get(j, "requires_pass");
    int64_t now = wall_ms();
    bool ok = json_str(j, "name", 1, s.name, sizeof s.name, NULL) &&
              json_str(j, "venue", 0, s.venue, sizeof s.venue, "") &&
              json_time_ms(j, "sale_opens_at", now, &s.sale_opens_at_ms) &&
              json_time_ms(j, "starts_at", s.sale_opens_at_ms, &s.starts_at_ms) &&
              json_u32(j, "per_user_limit", 1, BR_PER_USER_LIMIT_MAX, 4, &s.per_user_limit) &&
              json_seconds_ms(j, "hold_ttl_s", 600000, &s.hold_ttl_ms) &&
              json_u32(j, "queue_capacity", 0, UINT32_MAX, 0, &s.queue_capacity) &&
              (rp == NULL || json_is_boolean(rp)) && (queue == NULL || json_is_object(queue)) &&
              json_is_array(zones) && json_array_size(zones) >= 1 &&
              json_array_size(zones) <= BR_EVENT_ZONES_MAX;
    s.requires_pass = rp == NULL || json_is_true(rp);
    json_t *qo = queue != NULL ? queue : json_object();
    ok = ok && json_u32(qo, "max_active", 1, BR_MAX_ACTIVE_MAX, 100, &s.max_active) &&
         json_u32(qo, "admit_per_tick", 1, BR_ADMIT_PER_TICK_MAX, 10, &s.admit_per_tick) &&
         json_seconds_ms(qo, "pass_ttl_s", 300000, &s.pass_ttl_ms);
    if (queue == NULL) {
        json_decref(qo);
    }
    for (size_t i = 0; ok && i < json_array_size(zones); i++) {
        ok = parse_zone(json_array_get(zones, i), &s.zones[i]);
    }
    if (!ok) {
        reply_code(q, 400, "INVALID_REQUEST",
                   "want {name, venue?, starts_at?, sale_opens_at?, per_user_limit?, "
                   "requires_pass?, queue?: {max_active, admit_per_tick, pass_ttl_s}, hold_ttl_s?, "
                   "zones: [{name, capacity, price_minor, currency}] (1 to 8)}");
        return;
    }
    s.zone_count = (uint32_t)json_array_size(zones);
    if (json_object_get(j, "queue_capacity") == NULL) {
        /* Every join takes a slot for the whole sale, out of one pool the
         * deployment sizes (the engine's queue_slots_max): the default gives
         * a small event what it needs instead of the deployment's maximum. */
        uint64_t seats = 0;
        for (uint32_t z = 0; z < s.zone_count; z++) {
            seats += s.zones[z].capacity;
        }
        uint64_t want = seats * QUEUE_PER_SEAT;
        s.queue_capacity = (uint32_t)(want < QUEUE_CAPACITY_MIN   ? QUEUE_CAPACITY_MIN
                                      : want > QUEUE_CAPACITY_MAX ? QUEUE_CAPACITY_MAX
                                                                  : want);
    }
    BE(q)->ops->event_create(BE(q), q->who.user_id, &s, begin(q, event_created));
}

static void r_event_get(struct rq *q)
{
    BE(q)->ops->event_get(BE(q), q->path_id, begin(q, event_done));
}

static void events_done(struct rq *q)
{
    if (q->call.err != BR_OK) {
        reply_err(q, q->call.err);
        return;
    }
    json_t *arr = json_array();
    for (uint32_t i = 0; i < q->call.list_count; i++) {
        json_array_append_new(arr, br_render_event(&q->events[i]));
    }
    json_t *j = json_pack("{s:o}", "events", arr);
    if (q->call.list_count == q->call.list_cap && q->call.list_count > 0) {
        json_object_set_new(j, "next_after_id",
                            json_integer((json_int_t)q->events[q->call.list_count - 1].id));
    }
    reply_json(q, 200, j);
}

static void r_events_list(struct rq *q)
{
    uint64_t after = 0;
    const char *a = br_http_query(q->req, "after_id");
    if (a != NULL) {
        char *end = NULL;
        unsigned long long v = strtoull(a, &end, 10);
        if (end == a || *end != '\0' || a[0] == '-') {
            reply_code(q, 400, "INVALID_REQUEST", "after_id wants a non-negative integer");
            return;
        }
        after = v;
    }
    q->events = calloc(BR_API_LIST_MAX, sizeof *q->events);
    if (q->events == NULL) {
        reply_err(q, BR_E_UNAVAILABLE);
        return;
    }
    struct br_call *c = begin(q, events_done);
    c->events = q->events;
    c->list_cap = BR_API_LIST_MAX;
    BE(q)->ops->event_list(BE(q), after, c);
}

static void stats_done(struct rq *q)
{
    if (q->call.err != BR_OK) {
        reply_err(q, q->call.err);
        return;
    }
    reply_json(q, 200, br_render_stats(&q->call.r.stats));
}

static void r_event_stats(struct rq *q)
{
    BE(q)->ops->event_stats(BE(q), q->path_id, begin(q, stats_done));
}

/* ---- routes: the queue ---- */

static void queue_done(struct rq *q)
{
    if (q->call.err != BR_OK) {
        reply_err(q, q->call.err);
        return;
    }
    const struct br_api_queue *v = &q->call.r.queue;
    char token[BR_PASS_TOKEN_MAX];
    bool has = v->status == BR_QS_ADMITTED &&
               br_hub_pass_token(q->rt->hub, v->event_id, q->who.user_id, v->pass_id,
                                 v->pass_expires_at_ms, token, sizeof token) == 0;
    reply_json(q, 200, br_render_queue(v, has ? token : NULL));
}

static void r_queue_join(struct rq *q)
{
    uint64_t event_id;
    if (!json_id(q->json, "event_id", &event_id)) {
        reply_code(q, 400, "INVALID_REQUEST", "want {event_id}");
        return;
    }
    BE(q)->ops->queue_join(BE(q), q->who.user_id, event_id, begin(q, queue_done));
}

static void r_queue_position(struct rq *q)
{
    BE(q)->ops->queue_position(BE(q), q->who.user_id, q->path_id, begin(q, queue_done));
}

static void left_done(struct rq *q)
{
    if (q->call.err != BR_OK) {
        reply_err(q, q->call.err);
        return;
    }
    reply(q, 204, NULL, NULL, 0);
}

static void r_queue_leave(struct rq *q)
{
    uint64_t event_id;
    if (!json_id(q->json, "event_id", &event_id)) {
        reply_code(q, 400, "INVALID_REQUEST", "want {event_id}");
        return;
    }
    BE(q)->ops->queue_leave(BE(q), q->who.user_id, event_id, begin(q, left_done));
}

static void r_queue_stream(struct rq *q)
{
    struct br_api_queue v;
    int rc = BE(q)->ops->queue_peek(BE(q), q->who.user_id, q->path_id, &v);
    if (rc != BR_OK) {
        reply_err(q, rc);
        return;
    }
    br_http_add_header(q->req, "Cache-Control", "no-cache");
    br_http_add_header(q->req, "X-Accel-Buffering", "no");
    br_http_add_header(q->req, "X-Request-Id", q->id);
    q->id_header = true;
    q->sub = br_hub_subscribe(q->rt->hub, q->req, q->path_id, q->who.user_id, &v);
    if (q->sub == NULL) {
        reply_err(q, BR_E_UNAVAILABLE);
        return;
    }
    br_metrics_observe(q->rt->metrics, q->route, 200, 0);
    br_logf(q->rt->log, BR_LOG_INFO, "stream opened",
            "\"req_id\":\"%s\",\"event\":%" PRIu64 ",\"user\":%" PRIu64, q->id, q->path_id,
            q->who.user_id);
}

/* ---- routes: bookings ---- */

static void booking_done(struct rq *q, unsigned ok_status)
{
    if (q->call.err != BR_OK) {
        reply_err(q, q->call.err);
        return;
    }
    size_t len = 0;
    char *body = br_render_booking_text(&q->call.r.booking, &len);
    if (body == NULL) {
        reply_json(q, ok_status, br_render_booking(&q->call.r.booking));
        return;
    }
    reply(q, ok_status, "application/json", body, len);
}

static void reserved(struct rq *q)
{
    booking_done(q, 201);
}

static void r_reserve(struct rq *q)
{
    uint64_t event_id;
    uint32_t zone_id;
    uint32_t quantity;
    if (!json_id(q->json, "event_id", &event_id) ||
        !json_u32(q->json, "zone_id", 1, BR_EVENT_ZONES_MAX, 0, &zone_id) || zone_id == 0 ||
        !json_u32(q->json, "quantity", 1, BR_HOLD_QUANTITY_MAX, 0, &quantity) || quantity == 0) {
        reply_code(q, 400, "INVALID_REQUEST",
                   "want {event_id, zone_id, quantity (1 to 16)}");
        return;
    }
    uint64_t idem = 0;
    const char *key = br_http_header(q->req, "Idempotency-Key");
    if (key != NULL) {
        size_t n = strlen(key);
        bool ok = n >= 1 && n <= IDEM_KEY_MAX;
        for (size_t i = 0; ok && i < n; i++) {
            ok = key[i] > 0x20 && key[i] < 0x7f;
        }
        if (!ok) {
            reply_code(q, 400, "INVALID_REQUEST",
                       "Idempotency-Key wants 1 to 255 printable ASCII characters");
            return;
        }
        idem = br_hash64(key, n, 0x6964656dULL);
        idem = idem == 0 ? 1 : idem; /* 0 means "no key" to the core */
    }
    uint64_t pass_id = 0;
    const char *token = br_http_header(q->req, "X-Queue-Pass");
    if (token != NULL) {
        /* The token must be genuine, unexpired and bound to this event and
         * this user; the core then checks the pass itself (unknown, used). */
        struct br_pass_claims c;
        int rc = br_pass_token_verify(q->rt->pass_secret, q->rt->pass_secret_len, token,
                                      wall_ms(), &c);
        if (rc == BR_OK && (c.event_id != event_id || c.user_id != q->who.user_id)) {
            rc = BR_E_PASS_INVALID;
        }
        if (rc != BR_OK) {
            reply_err(q, rc);
            return;
        }
        pass_id = c.pass_id;
    }
    BE(q)->ops->reserve(BE(q), q->who.user_id, event_id, zone_id, quantity, pass_id, idem,
                        begin(q, reserved));
}

static void bookings_done(struct rq *q)
{
    if (q->call.err != BR_OK) {
        reply_err(q, q->call.err);
        return;
    }
    json_t *arr = json_array();
    for (uint32_t i = 0; i < q->call.list_count; i++) {
        json_array_append_new(arr, br_render_booking(&q->bookings[i]));
    }
    reply_json(q, 200, json_pack("{s:o}", "bookings", arr));
}

static void r_bookings_list(struct rq *q)
{
    q->bookings = calloc(BR_API_LIST_MAX, sizeof *q->bookings);
    if (q->bookings == NULL) {
        reply_err(q, BR_E_UNAVAILABLE);
        return;
    }
    struct br_call *c = begin(q, bookings_done);
    c->bookings = q->bookings;
    c->list_cap = BR_API_LIST_MAX;
    BE(q)->ops->booking_list(BE(q), q->who.user_id, c);
}

static void booking_got(struct rq *q)
{
    /* Another user's booking does not exist as far as this user can tell. */
    if (q->call.err == BR_OK && q->call.r.booking.user_id != q->who.user_id &&
        q->who.role != BR_ROLE_ADMIN) {
        q->call.err = BR_E_NOT_FOUND;
    }
    booking_done(q, 200);
}

static void r_booking_get(struct rq *q)
{
    BE(q)->ops->booking_get(BE(q), q->path_id, begin(q, booking_got));
}

static void cancelled(struct rq *q)
{
    booking_done(q, 200);
}

static void r_booking_cancel(struct rq *q)
{
    BE(q)->ops->booking_cancel(BE(q), q->who.user_id, q->path_id, begin(q, cancelled));
}

/* ---- routes: payments ---- */

static void payment_done(struct rq *q)
{
    if (q->call.err != BR_OK) {
        reply_err(q, q->call.err);
        return;
    }
    reply_json(q, 201, br_render_payment(&q->call.r.payment));
}

static void r_payments(struct rq *q)
{
    uint64_t booking_id;
    if (!json_id(q->json, "booking_id", &booking_id)) {
        reply_code(q, 400, "INVALID_REQUEST", "want {booking_id}");
        return;
    }
    BE(q)->ops->payment_create(BE(q), q->who.user_id, booking_id, begin(q, payment_done));
}

static void webhook_done(struct rq *q)
{
    int rc = q->call.err;
    if (rc != BR_OK && rc != BR_E_DUPLICATE) {
        reply_err(q, rc);
        return;
    }
    /* A redelivery is acknowledged like the first delivery: it took effect once. */
    reply_json(q, 200, json_pack("{s:b, s:b}", "received", 1, "duplicate", rc == BR_E_DUPLICATE));
}

/* Stripe puts our ids in metadata as strings; accept integers too. */
static bool metadata_id(json_t *md, const char *key, uint64_t *out)
{
    json_t *v = json_object_get(md, key);
    if (json_is_integer(v)) {
        return json_id(md, key, out);
    }
    if (!json_is_string(v)) {
        return false;
    }
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (n == 0 || n > ID_DIGITS_MAX) {
        return false;
    }
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        x = x * 10 + (uint64_t)(s[i] - '0');
    }
    *out = x;
    return x != 0;
}

static void r_webhook(struct rq *q)
{
    /* The signature covers the raw bytes: verify before parsing anything. */
    const char *sig = br_http_header(q->req, "Stripe-Signature");
    int rc = br_provider_sig_verify(q->rt->webhook_secret, sig, q->raw, q->raw_len,
                                    wall_ms() / 1000, BR_PROVIDER_SIG_TOLERANCE_S);
    if (rc != BR_OK) {
        reply_code(q, rc == BR_E_INVALID ? 400 : 401,
                   rc == BR_E_INVALID ? "INVALID_REQUEST" : "UNAUTHORIZED",
                   "missing, malformed, stale or wrong Stripe-Signature");
        return;
    }
    json_error_t jerr;
    if (json_depth(q->raw, q->raw_len) > BR_JSON_DEPTH_MAX) {
        reply_code(q, 400, "INVALID_REQUEST", "JSON nested too deeply");
        return;
    }
    q->json = json_loadb(q->raw, q->raw_len, 0, &jerr);
    char evt_id[256];
    char type[64];
    json_t *obj = json_object_get(json_object_get(q->json, "data"), "object");
    uint64_t payment_id = 0;
    if (!json_is_object(q->json) || !json_str(q->json, "id", 1, evt_id, sizeof evt_id, NULL) ||
        !json_str(q->json, "type", 1, type, sizeof type, NULL) || !json_is_object(obj)) {
        reply_code(q, 400, "INVALID_REQUEST", "not a provider event");
        return;
    }
    bool succeeded = strcmp(type, "payment_intent.succeeded") == 0;
    bool failed = strcmp(type, "payment_intent.payment_failed") == 0;
    if (!succeeded && !failed) {
        reply_json(q, 200, json_pack("{s:b, s:b}", "received", 1, "ignored", 1));
        return;
    }
    if (!metadata_id(json_object_get(obj, "metadata"), "payment_id", &payment_id)) {
        reply_code(q, 400, "INVALID_REQUEST", "the payment intent has no metadata.payment_id");
        return;
    }
    BE(q)->ops->payment_event(BE(q), evt_id, payment_id, succeeded, begin(q, webhook_done));
}

static void provider_confirmed(void *ctx, int err, const char *intent_json, size_t len)
{
    struct rq *q = ctx;
    q->provider_err = err;
    q->provider_json = malloc(len + 1);
    if (q->provider_json != NULL) {
        memcpy(q->provider_json, intent_json, len);
        q->provider_json[len] = '\0';
        q->provider_len = len;
    }
    br_http_resume(q->req);
}

static void confirm_done(struct rq *q)
{
    if (q->provider_json == NULL) {
        reply_err(q, BR_E_UNAVAILABLE);
        return;
    }
    if (q->provider_err != BR_OK) {
        /* The decision stands; the webhook keeps being retried in the background. */
        br_logf(q->rt->log, BR_LOG_WARN, "webhook not yet delivered", "\"req_id\":\"%s\"", q->id);
    }
    char *body = q->provider_json;
    q->provider_json = NULL;
    reply(q, 200, "application/json", body, q->provider_len);
}

static void r_provider_confirm(struct rq *q)
{
    if (q->rt->provider == NULL) {
        reply_code(q, 404, "NOT_FOUND", "this deployment has no test provider");
        return;
    }
    char pm[64] = "";
    const char *ct = br_http_header(q->req, "Content-Type");
    if (content_type_is(ct, "application/x-www-form-urlencoded")) {
        /* Stripe's own API takes forms: payment_method=pm_card_visa */
        const char *p = strstr(q->raw, "payment_method=");
        if (p != NULL && (p == q->raw || p[-1] == '&')) {
            p += strlen("payment_method=");
            size_t n = strcspn(p, "&");
            if (n > 0 && n < sizeof pm) {
                memcpy(pm, p, n);
                pm[n] = '\0';
            }
        }
    } else if (q->json != NULL) {
        json_str(q->json, "payment_method", 1, pm, sizeof pm, "");
    }
    if (pm[0] == '\0') {
        reply_code(q, 400, "INVALID_REQUEST", "want {payment_method}");
        return;
    }
    br_http_defer(q->req);
    q->cont = confirm_done;
    int rc = br_provider_test_confirm(q->rt->provider, q->path_str, pm, provider_confirmed, q);
    if (rc != BR_OK) {
        q->cont = NULL;
        reply_code(q, br_routes_status(rc),
                   rc == BR_E_DUPLICATE ? "PAYMENT_INTENT_UNEXPECTED_STATE" : br_err_name(rc),
                   rc == BR_E_NOT_FOUND   ? "no such payment intent"
                   : rc == BR_E_INVALID   ? "unknown test payment method"
                   : rc == BR_E_DUPLICATE ? "the payment intent has already succeeded"
                                          : br_err_message(rc));
    }
}

/* ---- routes: operations ---- */

static void r_healthz(struct rq *q)
{
    reply_json(q, 200, json_pack("{s:s}", "status", "ok"));
}

static void r_readyz(struct rq *q)
{
    bool ready = !atomic_load(&q->rt->draining) && BE(q)->ops->ready(BE(q));
    if (!ready) {
        reply_code(q, 503, "UNAVAILABLE", "not ready");
        return;
    }
    reply_json(q, 200, json_pack("{s:s, s:s}", "status", "ready", "backend", BE(q)->ops->name));
}

static void r_metrics(struct rq *q)
{
    struct br_api_gauges *g = calloc(1, sizeof *g);
    if (g == NULL) {
        reply_err(q, BR_E_UNAVAILABLE);
        return;
    }
    BE(q)->ops->gauges(BE(q), g);
    struct br_metrics_extra x = {
        .sse_streams = br_hub_streams(q->rt->hub),
        .inflight = 0,
        .replayed = q->rt->replayed,
    };
    struct br_http_server *http = atomic_load(&q->rt->http);
    x.inflight = http != NULL ? br_http_inflight(http) : 0;
    size_t len = 0;
    char *text = br_metrics_render(q->rt->metrics, g, &x, &len);
    free(g);
    if (text == NULL) {
        reply_err(q, BR_E_UNAVAILABLE);
        return;
    }
    reply(q, 200, "text/plain; version=0.0.4", text, len);
}

static void r_openapi(struct rq *q)
{
    br_metrics_observe(q->rt->metrics, q->route, 200, 0);
    br_http_add_header(q->req, "X-Request-Id", q->id);
    br_http_respond_static(q->req, 200, "application/json", q->rt->openapi, q->rt->openapi_len);
}

/* ---- the table ---- */

static const struct route ROUTES[] = {
    {"POST", "/api/v1/auth/register", r_register, BODY_JSON, AUTH_NONE, false},
    {"POST", "/api/v1/auth/login", r_login, BODY_JSON, AUTH_NONE, false},
    {"GET", "/api/v1/auth/me", r_me, BODY_NONE, AUTH_USER, false},
    {"GET", "/api/v1/events", r_events_list, BODY_NONE, AUTH_NONE, false},
    {"POST", "/api/v1/events", r_event_create, BODY_JSON, AUTH_ORGANIZER, false},
    {"GET", "/api/v1/events/{id}", r_event_get, BODY_NONE, AUTH_NONE, false},
    {"GET", "/api/v1/admin/events/{id}/stats", r_event_stats, BODY_NONE, AUTH_ORGANIZER, false},
    {"POST", "/api/v1/admin/users/{id}/role", r_role_set, BODY_JSON, AUTH_ADMIN, false},
    {"POST", "/api/v1/queue/join", r_queue_join, BODY_JSON, AUTH_USER, false},
    {"GET", "/api/v1/queue/position/{id}", r_queue_position, BODY_NONE, AUTH_USER, false},
    {"GET", "/api/v1/queue/position/{id}/stream", r_queue_stream, BODY_NONE, AUTH_USER, false},
    {"DELETE", "/api/v1/queue/leave", r_queue_leave, BODY_JSON, AUTH_USER, false},
    {"POST", "/api/v1/bookings/reserve", r_reserve, BODY_JSON, AUTH_USER, false},
    {"GET", "/api/v1/bookings", r_bookings_list, BODY_NONE, AUTH_USER, false},
    {"GET", "/api/v1/bookings/{id}", r_booking_get, BODY_NONE, AUTH_USER, false},
    {"POST", "/api/v1/bookings/{id}/cancel", r_booking_cancel, BODY_NONE, AUTH_USER, false},
    {"POST", "/api/v1/payments", r_payments, BODY_JSON, AUTH_USER, false},
    {"POST", "/api/v1/webhooks/stripe", r_webhook, BODY_RAW_JSON, AUTH_NONE, true},
    {"POST", "/test-provider/v1/payment_intents/{s}/confirm", r_provider_confirm,
     BODY_JSON_OR_FORM, AUTH_NONE, false},
    {"GET", "/healthz", r_healthz, BODY_NONE, AUTH_NONE, true},
    {"GET", "/readyz", r_readyz, BODY_NONE, AUTH_NONE, true},
    {"GET", "/metrics", r_metrics, BODY_NONE, AUTH_NONE, true},
    {"GET", "/api/v1/openapi.json", r_openapi, BODY_NONE, AUTH_NONE, true},
};

static const unsigned ROUTE_COUNT = sizeof ROUTES / sizeof ROUTES[0];
#define ROUTE_UNMATCHED ROUTE_COUNT /* metrics row for 404 / 405 / 413 */

static const char *const ROUTE_NAMES[] = {
    "POST /api/v1/auth/register",
    "POST /api/v1/auth/login",
    "GET /api/v1/auth/me",
    "GET /api/v1/events",
    "POST /api/v1/events",
    "GET /api/v1/events/{id}",
    "GET /api/v1/admin/events/{id}/stats",
    "POST /api/v1/admin/users/{id}/role",
    "POST /api/v1/queue/join",
    "GET /api/v1/queue/position/{event_id}",
    "GET /api/v1/queue/position/{event_id}/stream",
    "DELETE /api/v1/queue/leave",
    "POST /api/v1/bookings/reserve",
    "GET /api/v1/bookings",
    "GET /api/v1/bookings/{id}",
    "POST /api/v1/bookings/{id}/cancel",
    "POST /api/v1/payments",
    "POST /api/v1/webhooks/stripe",
    "POST /test-provider/v1/payment_intents/{id}/confirm",
    "GET /healthz",
    "GET /readyz",
    "GET /metrics",
    "GET /api/v1/openapi.json",
    "ANY (unmatched)",
};

_Static_assert(sizeof ROUTE_NAMES / sizeof ROUTE_NAMES[0] ==
                   sizeof ROUTES / sizeof ROUTES[0] + 1,
               "one metrics name per route, plus the unmatched row");

const char *const *br_routes_names(unsigned *count)
{
    *count = ROUTE_COUNT + 1;
    return ROUTE_NAMES;
}

static bool parse_id(const char *s, size_t n, uint64_t *out)
{
    if (n == 0 || n > ID_DIGITS_MAX || s[0] == '0') {
        return false;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return true;
}

/* Whether a path matches a template, segment by segment, in place (no
 * copies: this runs for every route on every request). A trailing slash is
 * an empty last segment, so "/x/" never matches "/x". Fills the
 * placeholder: "{id}" = a positive integer, "{s}" = any non-empty segment. */
static bool match(const char *tmpl, const char *path, struct rq *q)
{
    if (path == NULL || path[0] != '/') {
        return false;
    }
    const char *t = tmpl + 1;
    const char *p = path + 1;
    for (unsigned seg = 0; seg < PATH_SEGMENTS_MAX; seg++) {
        const char *te = strchr(t, '/');
        const char *pe = strchr(p, '/');
        size_t tn = te ? (size_t)(te - t) : strlen(t);
        size_t pn = pe ? (size_t)(pe - p) : strlen(p);
        if (tn == 4 && memcmp(t, "{id}", 4) == 0) {
            if (!parse_id(p, pn, &q->path_id)) {
                return false;
            }
        } else if (tn == 3 && memcmp(t, "{s}", 3) == 0) {
            if (pn == 0 || pn >= SEGMENT_MAX) {
                return false;
            }
            memcpy(q->path_str, p, pn);
            q->path_str[pn] = '\0';
        } else if (tn != pn || memcmp(t, p, tn) != 0) {
            return false;
        }
        if ((te == NULL) != (pe == NULL)) {
            return false;
        }
        if (te == NULL) {
            return true;
        }
        t = te + 1;
        p = pe + 1;
    }
    return false;
}

static void request_id(struct rq *q)
{
    const char *given = br_http_header(q->req, "X-Request-Id");
    if (given != NULL) {
        size_t n = strlen(given);
        bool ok = n >= 1 && n <= REQUEST_ID_MAX;
        for (size_t i = 0; ok && i < n; i++) {
            ok = isalnum((unsigned char)given[i]) || given[i] == '-' || given[i] == '_' ||
                 given[i] == '.';
        }
        if (ok) {
            memcpy(q->id, given, n + 1);
            return;
        }
    }
    /* "<8 hex of the process prefix>-<sequence>", written by hand: it is
     * made for every request. */
    uint64_t seq = atomic_fetch_add(&q->rt->req_seq, 1);
    static const char hex[] = "0123456789abcdef";
    char *o = q->id;
    for (int sh = 28; sh >= 0; sh -= 4) {
        *o++ = hex[(q->rt->req_prefix >> sh) & 15u];
    }
    *o++ = '-';
    char digits[20];
    int n = 0;
    do {
        digits[n++] = (char)('0' + seq % 10);
        seq /= 10;
    } while (seq > 0 && n < 20);
    while (n > 0) {
        *o++ = digits[--n];
    }
    *o = '\0';
}

static void run(struct rq *q, const struct route *r);

void br_routes_handle(void *ctx, struct br_http_req *req)
{
    struct br_routes *rt = ctx;
    struct rq *q = calloc(1, sizeof *q);
    if (q == NULL) {
        br_http_respond(req, 503, NULL, NULL, 0);
        return;
    }
    q->rt = rt;
    q->req = req;
    q->route = ROUTE_UNMATCHED;
    br_http_set_app(req, q);
    request_id(q);
    br_client_addr(br_http_peer(req), br_http_header(req, "X-Forwarded-For"), rt->trusted,
                   rt->trusted_count, q->client);
    if (atomic_load(&rt->draining)) {
        /* Shutting down: nothing new may reach the backend (it is about to
         * close); the client retries elsewhere or after the restart. */
        br_http_add_header(req, "Connection", "close");
        br_http_add_header(req, "Retry-After", "1");
        reply_code(q, 503, "UNAVAILABLE", "the server is shutting down");
        return;
    }
    if (br_http_body_too_large(req)) {
        reply_err(q, BR_E_PAYLOAD_TOO_LARGE);
        return;
    }
    const char *path = br_http_path(req);
    const char *method = br_http_method(req);
    char allow[64] = "";
    for (unsigned i = 0; i < ROUTE_COUNT; i++) {
        if (!match(ROUTES[i].tmpl, path, q)) {
            continue;
        }
        if (strcmp(ROUTES[i].method, method) == 0) {
            q->route = i;
            run(q, &ROUTES[i]);
            return;
        }
        if (strlen(allow) + strlen(ROUTES[i].method) + 3 < sizeof allow) {
            if (allow[0] != '\0') {
                strcat(allow, ", ");
            }
            strcat(allow, ROUTES[i].method);
        }
    }
    if (allow[0] != '\0') {
        br_http_add_header(req, "Allow", allow);
        reply_code(q, 405, "METHOD_NOT_ALLOWED", "this route does not take that method");
        return;
    }
    reply_code(q, 404, "NOT_FOUND", "no such route");
}

static bool rate_ok(struct rq *q, struct br_ratelimit *rl, uint64_t key, bool by_user)
{
    unsigned retry = 1;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t now_us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    if (br_ratelimit_allow(rl, key, now_us, &retry)) {
        return true;
    }
    char v[16];
    snprintf(v, sizeof v, "%u", retry);
    br_http_add_header(q->req, "Retry-After", v);
    br_metrics_rate_limited(q->rt->metrics, by_user);
    reply_err(q, BR_E_RATE_LIMITED);
    return false;
}

static void run(struct rq *q, const struct route *r)
{
    struct br_routes *rt = q->rt;
    if (!r->limit_exempt &&
        !rate_ok(q, rt->rl_ip, br_hash64(q->client, strlen(q->client), 0x6970ULL), false)) {
        return;
    }
    size_t len = 0;
    const char *body = br_http_body(q->req, &len);
    q->raw = body;
    q->raw_len = len;
    const char *ct = br_http_header(q->req, "Content-Type");
    if (r->body == BODY_JSON || r->body == BODY_RAW_JSON ||
        (r->body == BODY_JSON_OR_FORM && !content_type_is(ct, "application/x-www-form-urlencoded"))) {
        if (!content_type_is(ct, "application/json")) {
            reply_code(q, 415, "UNSUPPORTED_MEDIA_TYPE", "send Content-Type: application/json");
            return;
        }
        if (r->body != BODY_RAW_JSON) {
            if (json_depth(body, len) > BR_JSON_DEPTH_MAX) {
                reply_code(q, 400, "INVALID_REQUEST", "JSON nested too deeply");
                return;
            }
            json_error_t err;
            q->json = json_loadb(body, len, JSON_REJECT_DUPLICATES, &err);
            if (!json_is_object(q->json)) {
                char msg[200];
                snprintf(msg, sizeof msg, "the body must be a JSON object%s%s",
                         q->json == NULL ? ": " : "", q->json == NULL ? err.text : "");
                reply_code(q, 400, "INVALID_REQUEST", msg);
                return;
            }
        }
    }
    if (r->auth != AUTH_NONE) {
        int rc = authenticate(q, r->fn == r_queue_stream);
        if (rc != BR_OK) {
            reply_err(q, rc);
            return;
        }
        if ((r->auth == AUTH_ORGANIZER && q->who.role < BR_ROLE_ORGANIZER) ||
            (r->auth == AUTH_ADMIN && q->who.role != BR_ROLE_ADMIN)) {
            reply_err(q, BR_E_FORBIDDEN);
            return;
        }
        if (!r->limit_exempt && !rate_ok(q, rt->rl_user, q->who.user_id, true)) {
            return;
        }
    }
    r->fn(q);
}

void br_routes_resumed(void *ctx, struct br_http_req *req)
{
    (void)ctx;
    struct rq *q = br_http_app(req);
    BR_ASSERT(q != NULL && q->cont != NULL);
    route_fn cont = q->cont;
    q->cont = NULL;
    cont(q);
}

void br_routes_closed(void *ctx, struct br_http_req *req)
{
    struct br_routes *rt = ctx;
    struct rq *q = br_http_app(req);
    if (q == NULL) {
        return;
    }
    if (q->sub != NULL) {
        br_hub_closed(rt->hub, q->sub);
        br_logf(rt->log, BR_LOG_DEBUG, "stream closed", "\"req_id\":\"%s\"", q->id);
    }
    json_decref(q->json);
    free(q->events);
    free(q->bookings);
    free(q->provider_json);
    free(q);
}
