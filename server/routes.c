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

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "adapters/auth.h"
#include "adapters/clock.h"
#include "adapters/pg.h"
#include "core/catalog.h"
#include "core/err.h"
#include "core/hash.h"
#include "core/panic.h"
#include "core/session.h"
#include "core/str.h"
#include "server/backend_distributed.h"
#include "server/parse.h"
#include "server/pow.h"
#include "server/presence.h"
#include "server/render.h"
#include "server/web.h"

enum body_kind { BODY_NONE = 0, BODY_JSON, BODY_JSON_OR_FORM, BODY_RAW_JSON };
/* Who may call a route. Every authenticated request's token must name a
 * user who exists (user_exists: cheap, no lock). Routes that decide by role
 * look the user's CURRENT role up first (one backend read), so a demotion
 * takes effect at once, whatever role the token still carries; AUTH_USER
 * routes (the hot path: join, reserve) need no role and skip that read. */
enum auth_kind {
    AUTH_NONE = 0,
    AUTH_USER,      /* any user */
    AUTH_USER_ROLE, /* any user; the route needs the current role (an admin sees more) */
    AUTH_ORGANIZER, /* organizers and admins, by current role */
    AUTH_ADMIN      /* admins, by current role */
};

struct rq;
typedef void (*route_fn)(struct rq *q);

/* What the routes do with a request; method and path are parse.c's table
 * (enum br_route indexes both). */
struct route {
    route_fn fn;
    enum body_kind body;
    enum auth_kind auth;
    bool limit_exempt;       /* operations and webhooks skip the rate limits */
    enum br_body_kind parse; /* BODY_JSON and BODY_JSON_OR_FORM: the body's parser */
};

struct rq {
    struct br_routes *rt;
    struct br_http_req *req;
    unsigned route;
    char id[BR_REQUEST_ID_MAX + 1];
    char client[BR_ADDR_TEXT_MAX];
    struct br_route_match match; /* the route, and its path's id or segment */
    bool authed;
    struct br_jwt_claims who;
    struct br_body body;  /* the parsed body (BODY_JSON, BODY_JSON_OR_FORM) */
    int body_rc;          /* br_parse_body's result, answered after authentication */
    char why[BR_WHY_MAX]; /* the reason of a refused body, query or header */
    const char *raw;      /* the body, for BODY_RAW_JSON */
    size_t raw_len;
    struct br_call call;
    route_fn cont;        /* runs on the loop thread once the call is done */
    struct br_api_event *events;
    struct br_api_booking *bookings;
    struct br_hub_sub *sub;
    char *provider_json;  /* the test provider's answer */
    size_t provider_len;
    int provider_err;
    bool id_header;       /* X-Request-Id already added */
    /* register and login: the hash pool's work on this request */
    int hash_rc;
    uint8_t pw_hash[BR_PASSWORD_HASH_LEN];
    uint8_t pw_salt[BR_SALT_LEN];
    uint64_t login_user;  /* login: the user whose password matched */
    uint8_t login_role;
};

/* ---- answering ---- */

static void reply(struct rq *q, unsigned status, const char *ctype, char *body, size_t len)
{
    struct br_routes *rt = q->rt;
    int64_t dur_us = br_clock_mono_us() - br_http_started_us(q->req);
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
    if (err == BR_E_STORAGE_UNAVAILABLE || err == BR_E_UNAVAILABLE) {
        /* The embedded backend retries the disk each second; the distributed
         * one checks Redis and PostgreSQL each tick. */
        br_http_add_header(q->req, "Retry-After", "2");
    }
    reply_code(q, br_err_http_status(err), br_err_name(err), br_err_message(err));
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

/* Answers a body that br_parse_body refused after authentication (run()
 * answered a malformed one before it), and says whether the body parsed. */
static bool body_ok(struct rq *q)
{
    if (q->body_rc == BR_OK) {
        return true;
    }
    BR_ASSERT(q->body_rc == BR_E_INVALID || q->body_rc == BR_E_UNAUTHORIZED);
    reply_code(q, br_err_http_status(q->body_rc), br_err_name(q->body_rc), q->why);
    return false;
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
                                  BR_JWT_ISSUER, token, br_clock_wall_ms() / 1000, &q->who);
    q->authed = rc == BR_OK;
    return rc;
}

/* ---- the door (issue 13, point 5: server/pow.h) ---- */

/* Checks a proof of work for (event, user) needing bits and marks it used:
 * in-process (rt->pow, embedded) or deployment-wide (backend pow_use).
 * BR_OK, BR_E_POW_REQUIRED (none given), BR_E_POW_INVALID, BR_E_OVERLOADED
 * or BR_E_UNAVAILABLE. */
static int door_check(struct rq *q, const char *challenge, const char *nonce, uint64_t event_id,
                      uint64_t user_id, unsigned bits)
{
    BR_ASSERT(bits >= 1 && bits <= BR_POW_BITS_MAX);
    struct br_routes *rt = q->rt;
    if (challenge[0] == '\0') {
        return BR_E_POW_REQUIRED;
    }
    if (rt->pow_secret == NULL) {
        return BR_E_UNAVAILABLE;
    }
    int64_t now = br_clock_wall_ms();
    if (rt->pow != NULL) {
        return br_pow_verify(rt->pow, rt->pow_secret, challenge, nonce, event_id, user_id, bits,
                             now);
    }
    if (BE(q)->ops->pow_use == NULL) {
        return BR_E_UNAVAILABLE; /* no used set anywhere: refuse rather than accept twice */
    }
    uint64_t key = 0;
    int64_t expires_ms = 0;
    char rand_hex[BR_POW_RAND_HEX_MAX];
    int rc = br_pow_check(rt->pow_secret, challenge, nonce, event_id, user_id, bits, now, &key,
                          &expires_ms, rand_hex);
    if (rc != BR_OK) {
        return rc;
    }
    BR_ASSERT(expires_ms > now);
    return BE(q)->ops->pow_use(BE(q), event_id, rand_hex, expires_ms - now);
}

/* Answers a challenge for (event, user) at bits; bits 0 = none needed. */
static void reply_challenge(struct rq *q, uint64_t event_id, uint64_t user_id, unsigned bits)
{
    if (bits == 0) {
        reply_json(q, 200, json_pack("{s:I, s:i, s:n, s:n}", "event_id", (json_int_t)event_id,
                                     "bits", 0, "challenge", "expires_at"));
        return;
    }
    char text[BR_POW_TEXT_MAX];
    int64_t now = br_clock_wall_ms();
    int rc = q->rt->pow_secret == NULL
                 ? BR_E_UNAVAILABLE
                 : br_pow_issue(q->rt->pow, q->rt->pow_secret, event_id, user_id, bits, now, text,
                                sizeof text);
    if (rc != BR_OK) {
        if (rc == BR_E_OVERLOADED) {
            br_http_add_header(q->req, "Retry-After", "5");
        }
        reply_err(q, rc);
        return;
    }
    char exp[BR_TIME_TEXT_MAX];
    br_time_format(now + BR_POW_TTL_MS, exp);
    br_http_add_header(q->req, "Cache-Control", "no-store");
    reply_json(q, 200,
               json_pack("{s:I, s:i, s:s, s:s, s:s}", "event_id", (json_int_t)event_id, "bits",
                         (int)bits, "challenge", text, "expires_at", exp, "algorithm",
                         "find a nonce of 1 to 32 of [0-9A-Za-z_-] such that SHA-256(challenge "
                         "\".\" nonce) starts with bits zero bits"));
}

/* Answers 501 NOT_IMPLEMENTED for a backend without the operation. */
static bool op_present(struct rq *q, bool present)
{
    if (present) {
        return true;
    }
    reply_code(q, 501, "NOT_IMPLEMENTED", "this deployment's backend does not offer this yet");
    return false;
}

static void r_register_challenge(struct rq *q)
{
    reply_challenge(q, 0, 0, q->rt->cfg->pow_register_bits);
}

static void r_queue_challenge(struct rq *q)
{
    if (!body_ok(q) || !op_present(q, BE(q)->ops->queue_status_peek != NULL)) {
        return;
    }
    struct br_api_queue_status st;
    int rc = BE(q)->ops->queue_status_peek(BE(q), q->body.u.event_id, &st);
    if (rc != BR_OK) {
        reply_err(q, rc);
        return;
    }
    reply_challenge(q, q->body.u.event_id, q->who.user_id, st.pow_bits);
}

/* ---- routes: accounts ---- */

/* Runs job on the hash pool and continues at cont on the loop thread once
 * it is done; scrypt never runs on a loop thread. A full queue answers 503
 * OVERLOADED with Retry-After at once. */
static void hash_then(struct rq *q, br_hashpool_fn job, route_fn cont)
{
    q->cont = cont;
    br_http_defer(q->req);
    int rc = br_hashpool_submit(q->rt->hashpool, job, q);
    if (rc != BR_OK) {
        q->cont = NULL;
        memset(q->body.u.account.password, 0, sizeof q->body.u.account.password);
        br_http_add_header(q->req, "Retry-After", "1");
        reply_err(q, rc == BR_E_OVERLOADED ? BR_E_OVERLOADED : BR_E_UNAVAILABLE);
    }
}

/* On a hash thread: the new account's hash and salt. */
static void hash_new_password(void *ctx)
{
    struct rq *q = ctx;
    struct br_body_account *a = &q->body.u.account;
    q->hash_rc = br_auth_password_hash(a->password, a->password_len, q->rt->cfg->scrypt_log2n,
                                       q->pw_hash, q->pw_salt);
    memset(a->password, 0, sizeof a->password);
    br_http_resume(q->req);
}

/* On a hash thread: the login's password against the user found (or the
 * same work for nobody, so the timing does not tell whether the email exists). */
static void hash_check_password(void *ctx)
{
    struct rq *q = ctx;
    struct br_body_account *a = &q->body.u.account;
    int rc = q->call.err;
    if (rc == BR_E_NOT_FOUND) {
        br_auth_password_dummy(a->password, a->password_len, q->rt->cfg->scrypt_log2n);
        rc = BR_E_UNAUTHORIZED;
    } else if (rc == BR_OK) {
        rc = br_auth_password_verify(a->password, a->password_len, q->call.r.user.password_hash,
                                     q->call.r.user.salt);
    }
    memset(a->password, 0, sizeof a->password);
    q->hash_rc = rc;
    br_http_resume(q->req);
}

static void register_done(struct rq *q)
{
    if (q->call.err != BR_OK) {
        reply_err(q, q->call.err);
        return;
    }
    reply_json(q, 201, br_render_user(&q->call.r.user));
}

static void register_hashed(struct rq *q)
{
    if (q->hash_rc != BR_OK) {
        reply_err(q, q->hash_rc == BR_E_INVALID ? BR_E_INVALID : BR_E_UNAVAILABLE);
        return;
    }
    struct br_body_account *a = &q->body.u.account;
    BE(q)->ops->user_register(BE(q), a->email, a->name, q->pw_hash, q->pw_salt, BR_ROLE_CUSTOMER,
                              begin(q, register_done));
}

static void r_register(struct rq *q)
{
    if (!body_ok(q)) {
        return;
    }
    /* The door before scrypt: a bot pays its proof of work first. */
    unsigned bits = q->rt->cfg->pow_register_bits;
    struct br_body_account *a = &q->body.u.account;
    int rc = bits > 0 ? door_check(q, a->pow_challenge, a->pow_nonce, 0, 0, bits) : BR_OK;
    if (rc != BR_OK) {
        memset(a->password, 0, sizeof a->password);
        reply_err(q, rc);
        return;
    }
    hash_then(q, hash_new_password, register_hashed);
}

/* Answers a sign-in (login or refresh): a new access token for the user's
 * role and, when s is not NULL, the refresh token of session s. */
static void reply_tokens(struct rq *q, uint64_t user_id, uint8_t role,
                         const struct br_api_session *s)
{
    int64_t now_s = br_clock_wall_ms() / 1000;
    struct br_jwt_claims c = {
        .user_id = user_id, .role = role, .exp_s = now_s + (int64_t)q->rt->cfg->jwt_ttl_s};
    char token[BR_JWT_MAX];
    char refresh[BR_REFRESH_TOKEN_MAX];
    if (br_jwt_issue(q->rt->jwt_secret, q->rt->jwt_secret_len, BR_JWT_ISSUER, &c, now_s, token,
                     sizeof token) != BR_OK ||
        (s != NULL && br_refresh_token_sign(q->rt->jwt_secret, q->rt->jwt_secret_len, s->id,
                                            s->generation, refresh, sizeof refresh) != BR_OK)) {
        reply_err(q, BR_E_UNAVAILABLE);
        return;
    }
    char exp[BR_TIME_TEXT_MAX];
    br_time_format(c.exp_s * 1000, exp);
    json_t *j = json_pack("{s:s, s:s, s:s, s:I}", "access_token", token, "token_type", "Bearer",
                          "expires_at", exp, "user_id", (json_int_t)c.user_id);
    if (j != NULL && s != NULL) {
        char rexp[BR_TIME_TEXT_MAX];
        br_time_format(s->expires_at_ms, rexp);
        json_object_set_new(j, "refresh_token", json_string(refresh));
        json_object_set_new(j, "refresh_expires_at", json_string(rexp));
    }
    reply_json(q, 200, j);
}

static void login_session(struct rq *q)
{
    if (q->call.err == BR_E_FULL) {
        /* No session left: the user is signed in without a refresh token. */
        br_logf(q->rt->log, BR_LOG_WARN, "no refresh session left",
                "\"req_id\":\"%s\",\"user\":%" PRIu64, q->id, q->login_user);
        reply_tokens(q, q->login_user, q->login_role, NULL);
        return;
    }
    if (q->call.err != BR_OK) {
        reply_err(q, q->call.err);
        return;
    }
    struct br_api_session s = q->call.r.session;
    reply_tokens(q, q->login_user, q->login_role, &s);
}

static void login_checked(struct rq *q)
{
    int rc = q->hash_rc;
    if (rc != BR_OK) {
        reply_code(q, br_err_http_status(rc), br_err_name(rc),
                   rc == BR_E_UNAUTHORIZED ? "wrong email or password" : br_err_message(rc));
        return;
    }
    q->login_user = q->call.r.user.id;
    q->login_role = q->call.r.user.role;
    int64_t ttl_ms = (int64_t)q->rt->cfg->refresh_ttl_s * 1000;
    /* A random first generation (core/session.h: ids are dense indices). */
    uint8_t r[4] = {0};
    if (br_auth_random(r, sizeof r) != BR_OK) {
        reply_err(q, BR_E_UNAVAILABLE);
        return;
    }
    uint32_t gen = ((uint32_t)r[0] << 24 | (uint32_t)r[1] << 16 | (uint32_t)r[2] << 8 | r[3]) %
                       BR_SESSION_GENERATION_FIRST_MAX + 1;
    BE(q)->ops->session_open(BE(q), q->login_user, gen, ttl_ms, begin(q, login_session));
}

static void login_found(struct rq *q)
{
    if (q->call.err != BR_OK && q->call.err != BR_E_NOT_FOUND) {
        memset(q->body.u.account.password, 0, sizeof q->body.u.account.password);
        reply_err(q, q->call.err);
        return;
    }
    hash_then(q, hash_check_password, login_checked);
}

static void r_login(struct rq *q)
{
    /* An email no account can have is refused here as 401 (body_ok), the
     * answer of a wrong password. */
    if (!body_ok(q)) {
        return;
    }
    BE(q)->ops->user_find(BE(q), q->body.u.account.email, begin(q, login_found));
}

/* The refresh token of a refresh or logout body; answers 401 itself when
 * it is not one of ours. */
static bool refresh_token_ok(struct rq *q, uint64_t *session_id, uint32_t *generation)
{
    if (!body_ok(q)) {
        return false;
    }
    int rc = br_refresh_token_verify(q->rt->jwt_secret, q->rt->jwt_secret_len,
                                     q->body.u.refresh_token, session_id, generation);
    memset(q->body.u.refresh_token, 0, sizeof q->body.u.refresh_token);
    if (rc != BR_OK) {
        reply_code(q, 401, "UNAUTHORIZED", "the refresh token is not valid");
        return false;
    }
    return true;
}

static void refreshed(struct rq *q)
{
    if (q->call.err != BR_OK) {
        if (q->call.err == BR_E_UNAUTHORIZED) {
            reply_code(q, 401, "UNAUTHORIZED",
                       "the refresh token is expired, revoked or was already used");
            return;
        }
        reply_err(q, q->call.err);
        return;
    }
    struct br_api_session s = q->call.r.session;
    reply_tokens(q, s.user_id, s.role, &s);
}

static void r_refresh(struct rq *q)
{
    uint64_t sid = 0;
    uint32_t gen = 0;
    if (!refresh_token_ok(q, &sid, &gen)) {
        return;
    }
    int64_t ttl_ms = (int64_t)q->rt->cfg->refresh_ttl_s * 1000;
    BE(q)->ops->session_rotate(BE(q), sid, gen, ttl_ms, begin(q, refreshed));
}

static void logged_out(struct rq *q)
{
    if (q->call.err != BR_OK) {
        reply_err(q, q->call.err);
        return;
    }
    reply(q, 204, NULL, NULL, 0);
}

static void r_logout(struct rq *q)
{
    uint64_t sid = 0;
    uint32_t gen = 0;
    if (!refresh_token_ok(q, &sid, &gen)) {
        return;
    }
    BE(q)->ops->session_revoke(BE(q), sid, gen, begin(q, logged_out));
}

static void r_logout_all(struct rq *q)
{
    BE(q)->ops->session_revoke_all(BE(q), q->who.user_id, begin(q, logged_out));
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
    if (!body_ok(q)) {
        return;
    }
    BE(q)->ops->user_role_set(BE(q), q->who.user_id, q->match.id, q->body.u.role,
                              begin(q, user_done));
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

static void r_event_create(struct rq *q)
{
    if (!body_ok(q)) {
        return;
    }
    BE(q)->ops->event_create(BE(q), q->who.user_id, &q->body.u.event, begin(q, event_created));
}

static void r_event_get(struct rq *q)
{
    BE(q)->ops->event_get(BE(q), q->match.id, begin(q, event_done));
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
    if (br_parse_after_id(br_http_query(q->req, "after_id"), &after, q->why) != BR_OK) {
        reply_code(q, 400, "INVALID_REQUEST", q->why);
        return;
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
    /* who.role is the current role (run() looked it up for this route). */
    if (!br_catalog_may_steer(q->who.role, q->who.user_id, q->call.r.stats.owner_id)) {
        reply_code(q, 403, "FORBIDDEN", "organizers see the stats of their own events only");
        return;
    }
    reply_json(q, 200, br_render_stats(&q->call.r.stats));
}

static void r_event_stats(struct rq *q)
{
    BE(q)->ops->event_stats(BE(q), q->match.id, begin(q, stats_done));
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

static void joined(struct rq *q)
{
    if (q->call.err == BR_E_SOLD_OUT) {
        reply_code(q, 409, "SOLD_OUT", "every seat of the event is sold: the queue takes no one new");
        return;
    }
    queue_done(q);
}

/* Whether the user already holds a place (a join then keeps it, and needs
 * no new proof of work: a retried join costs nothing). */
static bool holds_place(struct rq *q, uint64_t event_id)
{
    struct br_api_queue v;
    if (BE(q)->ops->queue_peek(BE(q), q->who.user_id, event_id, &v) != BR_OK) {
        return false;
    }
    return v.status == BR_QS_PREQUEUE || v.status == BR_QS_WAITING ||
           v.status == BR_QS_ADMITTED;
}

static void r_queue_join(struct rq *q)
{
    if (!body_ok(q)) {
        return;
    }
    struct br_routes *rt = q->rt;
    if (rt->rl_join != NULL) {
        unsigned retry = 1;
        uint64_t key = br_hash64(q->client, strlen(q->client), 0x6a6f696eULL);
        if (!br_ratelimit_allow(rt->rl_join, key, br_clock_mono_us(), &retry)) {
            char v[16];
            snprintf(v, sizeof v, "%u", retry);
            br_http_add_header(q->req, "Retry-After", v);
            reply_err(q, BR_E_JOIN_LIMITED);
            return;
        }
    }
    const struct br_body_join *b = &q->body.u.join;
    if (BE(q)->ops->queue_status_peek != NULL) {
        struct br_api_queue_status st;
        int rc = BE(q)->ops->queue_status_peek(BE(q), b->event_id, &st);
        /* An unknown event is the core's to answer (404), as before. */
        if (rc == BR_OK && st.pow_bits > 0 && !holds_place(q, b->event_id)) {
            rc = door_check(q, b->pow_challenge, b->pow_nonce, b->event_id, q->who.user_id,
                            st.pow_bits);
            if (rc != BR_OK) {
                reply_err(q, rc);
                return;
            }
        } else if (rc != BR_OK && rc != BR_E_NOT_FOUND) {
            reply_err(q, rc);
            return;
        }
    }
    BE(q)->ops->queue_join(BE(q), q->who.user_id, b->event_id, begin(q, joined));
}

/* ---- routes: the waiting room's status and modes (issue 13) ---- */

static void r_queue_status(struct rq *q)
{
    if (!op_present(q, BE(q)->ops->queue_status_peek != NULL)) {
        return;
    }
    struct br_api_queue_status st;
    int rc = BE(q)->ops->queue_status_peek(BE(q), q->match.id, &st);
    if (rc != BR_OK) {
        reply_err(q, rc);
        return;
    }
    /* Public and the same for everyone: caches and CDNs may share it for a
     * second, which is what a crowd refreshing it needs. */
    br_http_add_header(q->req, "Cache-Control", "public, max-age=1");
    reply_json(q, 200, br_render_queue_status(&st));
}

static void mode_set_done(struct rq *q)
{
    if (q->call.err == BR_E_FORBIDDEN) {
        reply_code(q, 403, "FORBIDDEN", "organizers steer the queues of their own events only");
        return;
    }
    if (q->call.err == BR_E_INVALID) {
        reply_code(q, 400, "INVALID_REQUEST",
                   "max_active must be 1 to the event's own max_active");
        return;
    }
    if (q->call.err != BR_OK) {
        reply_err(q, q->call.err);
        return;
    }
    reply_json(q, 200, br_render_queue_status(&q->call.r.queue_status));
}

static void r_queue_mode_set(struct rq *q)
{
    if (!body_ok(q) || !op_present(q, BE(q)->ops->queue_mode_set != NULL)) {
        return;
    }
    const struct br_body_queue_mode_set *b = &q->body.u.queue_mode;
    BE(q)->ops->queue_mode_set(BE(q), q->who.user_id, q->match.id, b->set, b->mode,
                               b->max_active, b->admit_per_min, begin(q, mode_set_done));
}

static void r_queue_position(struct rq *q)
{
    /* A poll is a sign of life (issue 13, point 3): the core's join already
     * counts as one; the reporter de-duplicates and batches. */
    if (q->rt->presence != NULL) {
        br_presence_seen(q->rt->presence, q->match.id, q->who.user_id, br_clock_mono_ms());
    }
    BE(q)->ops->queue_position(BE(q), q->who.user_id, q->match.id, begin(q, queue_done));
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
    if (!body_ok(q)) {
        return;
    }
    BE(q)->ops->queue_leave(BE(q), q->who.user_id, q->body.u.event_id, begin(q, left_done));
}

static void r_queue_stream(struct rq *q)
{
    struct br_api_queue v;
    int rc = BE(q)->ops->queue_peek(BE(q), q->who.user_id, q->match.id, &v);
    if (rc != BR_OK) {
        reply_err(q, rc);
        return;
    }
    br_http_add_header(q->req, "Cache-Control", "no-cache");
    br_http_add_header(q->req, "X-Accel-Buffering", "no");
    br_http_add_header(q->req, "X-Request-Id", q->id);
    q->id_header = true;
    q->sub = br_hub_subscribe(q->rt->hub, q->req, q->match.id, q->who.user_id, &v);
    if (q->sub == NULL) {
        reply_err(q, BR_E_UNAVAILABLE);
        return;
    }
    br_metrics_observe(q->rt->metrics, q->route, 200, 0);
    br_logf(q->rt->log, BR_LOG_INFO, "stream opened",
            "\"req_id\":\"%s\",\"event\":%" PRIu64 ",\"user\":%" PRIu64, q->id, q->match.id,
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
    if (!body_ok(q)) {
        return;
    }
    const struct br_body_reserve *b = &q->body.u.reserve;
    uint64_t event_id = b->event_id;
    uint64_t idem = 0;
    if (br_parse_idem_key(br_http_header(q->req, "Idempotency-Key"), &idem, q->why) != BR_OK) {
        reply_code(q, 400, "INVALID_REQUEST", q->why);
        return;
    }
    uint64_t pass_id = 0;
    const char *token = br_http_header(q->req, "X-Queue-Pass");
    if (token != NULL) {
        /* The token must be genuine and bound to this event and this user;
         * the core then checks the pass itself (unknown, used, expired). Its
         * expiry is left to the core on purpose: the core replays a request
         * it already answered (same Idempotency-Key) before it looks at the
         * pass, so a double click whose second copy arrives after the pass
         * expired gets the first one's 201, not 403 PASS_EXPIRED. */
        struct br_pass_claims c;
        int rc = br_pass_token_verify(q->rt->pass_secret, q->rt->pass_secret_len, token,
                                      br_clock_wall_ms(), &c);
        if (rc == BR_E_PASS_EXPIRED) {
            rc = BR_OK;
        }
        if (rc == BR_OK && (c.event_id != event_id || c.user_id != q->who.user_id)) {
            rc = BR_E_PASS_INVALID;
        }
        if (rc != BR_OK) {
            reply_err(q, rc);
            return;
        }
        pass_id = c.pass_id;
    }
    BE(q)->ops->reserve(BE(q), q->who.user_id, event_id, b->zone_id, b->quantity, pass_id, idem,
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
    BE(q)->ops->booking_get(BE(q), q->match.id, begin(q, booking_got));
}

static void cancelled(struct rq *q)
{
    booking_done(q, 200);
}

static void r_booking_cancel(struct rq *q)
{
    BE(q)->ops->booking_cancel(BE(q), q->who.user_id, q->match.id, begin(q, cancelled));
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
    if (!body_ok(q)) {
        return;
    }
    BE(q)->ops->payment_create(BE(q), q->who.user_id, q->body.u.booking_id, begin(q, payment_done));
}

static void webhook_done(struct rq *q)
{
    int rc = q->call.err;
    if (rc != BR_OK && rc != BR_E_DUPLICATE) {
        br_metrics_webhook(q->rt->metrics, rc == BR_E_INVALID || rc == BR_E_NOT_FOUND
                                               ? BR_WEBHOOK_INVALID
                                               : BR_WEBHOOK_UNAVAILABLE);
        reply_err(q, rc);
        return;
    }
    br_metrics_webhook(q->rt->metrics,
                       rc == BR_E_DUPLICATE ? BR_WEBHOOK_DUPLICATE : BR_WEBHOOK_STORED);
    /* A redelivery is acknowledged like the first delivery: it took effect once. */
    reply_json(q, 200, json_pack("{s:b, s:b}", "received", 1, "duplicate", rc == BR_E_DUPLICATE));
}

/* --kafka: the verified fact is stored (provider_events_received + an
 * outbox row, one transaction) before the 200; the saga's consumers apply
 * it. PostgreSQL away: 503, and the provider delivers it again. */
static void webhook_ingest(struct rq *q, const struct br_webhook_event *ev)
{
    struct br_pg_fact f = {.provider_event_id = ev->id,
                           .payment_id = ev->payment_id,
                           .booking_id = ev->booking_id,
                           .succeeded = ev->kind == BR_WEBHOOK_SUCCEEDED,
                           .source = "webhook",
                           .received_ms = br_clock_wall_ms()};
    int rc = br_pg_fact_ingest(q->rt->facts_pg, &f);
    if (rc == BR_E_INVALID) {
        br_metrics_webhook(q->rt->metrics, BR_WEBHOOK_INVALID);
        reply_code(q, 400, br_err_name(rc), "the event id has characters we do not store");
        return;
    }
    if (rc != BR_OK && rc != BR_E_DUPLICATE) {
        br_logf(q->rt->log, BR_LOG_WARN, "webhook not stored: the provider retries",
                "\"req_id\":\"%s\",\"payment\":%" PRIu64 ",\"err\":\"%s\"", q->id,
                ev->payment_id, br_err_name(rc));
        br_metrics_webhook(q->rt->metrics, BR_WEBHOOK_UNAVAILABLE);
        reply_err(q, BR_E_UNAVAILABLE);
        return;
    }
    br_metrics_webhook(q->rt->metrics,
                       rc == BR_E_DUPLICATE ? BR_WEBHOOK_DUPLICATE : BR_WEBHOOK_STORED);
    reply_json(q, 200, json_pack("{s:b, s:b}", "received", 1, "duplicate", rc == BR_E_DUPLICATE));
}

static void r_webhook(struct rq *q)
{
    /* br_webhook_accept_any verifies the signature over the raw bytes before
     * it parses anything. */
    const struct br_routes *rt = q->rt;
    const char *const one[1] = {rt->webhook_secret};
    const char *const *secrets = rt->webhook_secret_count > 0 ? rt->webhook_secrets : one;
    size_t n = rt->webhook_secret_count > 0 ? rt->webhook_secret_count : 1;
    int64_t tolerance =
        rt->webhook_tolerance_s > 0 ? rt->webhook_tolerance_s : BR_PROVIDER_SIG_TOLERANCE_S;
    struct br_webhook_event ev;
    int rc = br_webhook_accept_any(secrets, n, tolerance,
                                   br_http_header(q->req, "Stripe-Signature"), q->raw, q->raw_len,
                                   br_clock_wall_ms() / 1000, &ev, q->why);
    if (rc != BR_OK) {
        br_metrics_webhook(rt->metrics, rc == BR_E_UNAUTHORIZED ? BR_WEBHOOK_UNAUTHORIZED
                                                                : BR_WEBHOOK_INVALID);
        reply_code(q, br_err_http_status(rc), br_err_name(rc), q->why);
        return;
    }
    if (ev.kind == BR_WEBHOOK_IGNORED) {
        br_metrics_webhook(rt->metrics, BR_WEBHOOK_IGNORED_TYPE);
        reply_json(q, 200, json_pack("{s:b, s:b}", "received", 1, "ignored", 1));
        return;
    }
    if (rt->facts_pg != NULL) {
        webhook_ingest(q, &ev);
        return;
    }
    BE(q)->ops->payment_event(BE(q), ev.id, ev.payment_id, ev.kind == BR_WEBHOOK_SUCCEEDED,
                              begin(q, webhook_done));
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

/* A refused confirm, answered as Stripe answers it (its error codes, upper
 * case as ours): the client secret is required and must be the intent's
 * (Stripe asks for it whenever the caller holds only a publishable key,
 * which is what a public route is). Every refusal is a 4xx. */
static void confirm_refused(struct rq *q, int rc)
{
    switch (rc) {
    case BR_E_UNAUTHORIZED:
        reply_code(q, 400, "PARAMETER_MISSING",
                   "client_secret is required: the payment intent's client secret from "
                   "POST /api/v1/payments");
        break;
    case BR_E_FORBIDDEN:
        reply_code(q, 400, "PAYMENT_INTENT_INVALID_PARAMETER",
                   "the client_secret provided does not match the payment intent's");
        break;
    case BR_E_NOT_FOUND:
        reply_code(q, 404, "NOT_FOUND", "no such payment intent");
        break;
    case BR_E_INVALID:
        reply_code(q, 400, "INVALID_REQUEST", "unknown test payment method");
        break;
    case BR_E_DUPLICATE:
        reply_code(q, 409, "PAYMENT_INTENT_UNEXPECTED_STATE",
                   "the payment intent has already succeeded");
        break;
    default:
        reply_code(q, br_err_http_status(rc), br_err_name(rc), br_err_message(rc));
        break;
    }
}

static void r_provider_confirm(struct rq *q)
{
    const struct br_provider *pv = q->rt->provider;
    if (pv == NULL || pv->ops == NULL || pv->ops->confirm == NULL) {
        reply_code(q, 404, "NOT_FOUND", "this deployment has no test provider");
        return;
    }
    /* JSON or, as Stripe's own API takes, a form (payment_method=pm_card_visa):
     * run() picked the parser by Content-Type. */
    if (!body_ok(q)) {
        return;
    }
    br_http_defer(q->req);
    q->cont = confirm_done;
    int rc = pv->ops->confirm(pv->self, q->match.segment, q->body.u.client_secret,
                              q->body.u.payment_method, provider_confirmed, q);
    if (rc != BR_OK) {
        q->cont = NULL;
        confirm_refused(q, rc);
    }
}

/* ---- routes: operations ---- */

static void r_healthz(struct rq *q)
{
    reply_json(q, 200, json_pack("{s:s}", "status", "ok"));
}

static void r_readyz(struct rq *q)
{
    if (atomic_load(&q->rt->draining)) {
        reply_code(q, 503, "UNAVAILABLE", "the server is shutting down");
        return;
    }
    const char *why = NULL;
    if (!BE(q)->ops->ready(BE(q), &why)) {
        bool disk = strstr(why, "journal") != NULL;
        br_http_add_header(q->req, "Retry-After", "2");
        reply_code(q, 503, disk ? "STORAGE_UNAVAILABLE" : "UNAVAILABLE", why);
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
        .presence_dropped = br_presence_dropped(q->rt->presence), /* 0 without a reporter */
    };
    struct br_http_server *http = atomic_load(&q->rt->http);
    x.inflight = http != NULL ? br_http_inflight(http) : 0;
    x.awaiting = http != NULL ? br_http_awaiting(http) : 0;
    x.hash_yielded_ms = br_hashpool_yielded_ms(q->rt->hashpool);
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

/* Indexed by enum br_route, whose order is the order routes are tried in
 * (br_route_match) and the rows of the metrics table. */
static const struct route ROUTES[BR_ROUTE_COUNT] = {
    [BR_ROUTE_REGISTER] = {r_register, BODY_JSON, AUTH_NONE, false, BR_BODY_REGISTER},
    [BR_ROUTE_LOGIN] = {r_login, BODY_JSON, AUTH_NONE, false, BR_BODY_LOGIN},
    [BR_ROUTE_ME] = {r_me, BODY_NONE, AUTH_USER, false, 0},
    [BR_ROUTE_EVENTS_LIST] = {r_events_list, BODY_NONE, AUTH_NONE, false, 0},
    [BR_ROUTE_EVENT_CREATE] = {r_event_create, BODY_JSON, AUTH_ORGANIZER, false,
                               BR_BODY_EVENT_CREATE},
    [BR_ROUTE_EVENT_GET] = {r_event_get, BODY_NONE, AUTH_NONE, false, 0},
    [BR_ROUTE_EVENT_STATS] = {r_event_stats, BODY_NONE, AUTH_ORGANIZER, false, 0},
    [BR_ROUTE_ROLE_SET] = {r_role_set, BODY_JSON, AUTH_ADMIN, false, BR_BODY_ROLE},
    [BR_ROUTE_QUEUE_JOIN] = {r_queue_join, BODY_JSON, AUTH_USER, false, BR_BODY_QUEUE_JOIN},
    [BR_ROUTE_QUEUE_POSITION] = {r_queue_position, BODY_NONE, AUTH_USER, false, 0},
    [BR_ROUTE_QUEUE_STREAM] = {r_queue_stream, BODY_NONE, AUTH_USER, false, 0},
    [BR_ROUTE_QUEUE_LEAVE] = {r_queue_leave, BODY_JSON, AUTH_USER, false, BR_BODY_QUEUE_LEAVE},
    [BR_ROUTE_RESERVE] = {r_reserve, BODY_JSON, AUTH_USER, false, BR_BODY_RESERVE},
    [BR_ROUTE_BOOKINGS_LIST] = {r_bookings_list, BODY_NONE, AUTH_USER, false, 0},
    [BR_ROUTE_BOOKING_GET] = {r_booking_get, BODY_NONE, AUTH_USER_ROLE, false, 0},
    [BR_ROUTE_BOOKING_CANCEL] = {r_booking_cancel, BODY_NONE, AUTH_USER, false, 0},
    [BR_ROUTE_PAYMENTS] = {r_payments, BODY_JSON, AUTH_USER, false, BR_BODY_PAYMENT},
    [BR_ROUTE_WEBHOOK] = {r_webhook, BODY_RAW_JSON, AUTH_NONE, true, 0},
    /* A form body goes to BR_BODY_CONFIRM_FORM instead (run()). */
    [BR_ROUTE_PROVIDER_CONFIRM] = {r_provider_confirm, BODY_JSON_OR_FORM, AUTH_NONE, false,
                                   BR_BODY_CONFIRM_JSON},
    [BR_ROUTE_HEALTHZ] = {r_healthz, BODY_NONE, AUTH_NONE, true, 0},
    [BR_ROUTE_READYZ] = {r_readyz, BODY_NONE, AUTH_NONE, true, 0},
    [BR_ROUTE_METRICS] = {r_metrics, BODY_NONE, AUTH_NONE, true, 0},
    [BR_ROUTE_OPENAPI] = {r_openapi, BODY_NONE, AUTH_NONE, true, 0},
    [BR_ROUTE_REFRESH] = {r_refresh, BODY_JSON, AUTH_NONE, false, BR_BODY_REFRESH},
    [BR_ROUTE_LOGOUT] = {r_logout, BODY_JSON, AUTH_NONE, false, BR_BODY_REFRESH},
    [BR_ROUTE_LOGOUT_ALL] = {r_logout_all, BODY_NONE, AUTH_USER, false, 0},
    /* Issue 13: the waiting room. The status is public (no login); a mode
     * change is for organizers (the core checks the event is theirs) and admins. */
    [BR_ROUTE_QUEUE_STATUS] = {r_queue_status, BODY_NONE, AUTH_NONE, false, 0},
    [BR_ROUTE_QUEUE_MODE_SET] = {r_queue_mode_set, BODY_JSON, AUTH_ORGANIZER, false,
                                 BR_BODY_QUEUE_MODE_SET},
    [BR_ROUTE_QUEUE_CHALLENGE] = {r_queue_challenge, BODY_JSON, AUTH_USER, false,
                                  BR_BODY_CHALLENGE},
    [BR_ROUTE_REGISTER_CHALLENGE] = {r_register_challenge, BODY_NONE, AUTH_NONE, false, 0},
};

#define ROUTE_UNMATCHED BR_ROUTE_COUNT /* metrics row for 404 / 405 / 413 */

static const char *const ROUTE_NAMES[BR_ROUTE_COUNT + 1] = {
    [BR_ROUTE_REGISTER] = "POST /api/v1/auth/register",
    [BR_ROUTE_LOGIN] = "POST /api/v1/auth/login",
    [BR_ROUTE_ME] = "GET /api/v1/auth/me",
    [BR_ROUTE_EVENTS_LIST] = "GET /api/v1/events",
    [BR_ROUTE_EVENT_CREATE] = "POST /api/v1/events",
    [BR_ROUTE_EVENT_GET] = "GET /api/v1/events/{id}",
    [BR_ROUTE_EVENT_STATS] = "GET /api/v1/admin/events/{id}/stats",
    [BR_ROUTE_ROLE_SET] = "POST /api/v1/admin/users/{id}/role",
    [BR_ROUTE_QUEUE_JOIN] = "POST /api/v1/queue/join",
    [BR_ROUTE_QUEUE_POSITION] = "GET /api/v1/queue/position/{event_id}",
    [BR_ROUTE_QUEUE_STREAM] = "GET /api/v1/queue/position/{event_id}/stream",
    [BR_ROUTE_QUEUE_LEAVE] = "DELETE /api/v1/queue/leave",
    [BR_ROUTE_RESERVE] = "POST /api/v1/bookings/reserve",
    [BR_ROUTE_BOOKINGS_LIST] = "GET /api/v1/bookings",
    [BR_ROUTE_BOOKING_GET] = "GET /api/v1/bookings/{id}",
    [BR_ROUTE_BOOKING_CANCEL] = "POST /api/v1/bookings/{id}/cancel",
    [BR_ROUTE_PAYMENTS] = "POST /api/v1/payments",
    [BR_ROUTE_WEBHOOK] = "POST /api/v1/webhooks/stripe",
    [BR_ROUTE_PROVIDER_CONFIRM] = "POST /test-provider/v1/payment_intents/{id}/confirm",
    [BR_ROUTE_HEALTHZ] = "GET /healthz",
    [BR_ROUTE_READYZ] = "GET /readyz",
    [BR_ROUTE_METRICS] = "GET /metrics",
    [BR_ROUTE_OPENAPI] = "GET /api/v1/openapi.json",
    [BR_ROUTE_REFRESH] = "POST /api/v1/auth/refresh",
    [BR_ROUTE_LOGOUT] = "POST /api/v1/auth/logout",
    [BR_ROUTE_LOGOUT_ALL] = "POST /api/v1/auth/logout-all",
    [BR_ROUTE_QUEUE_STATUS] = "GET /api/v1/events/{id}/queue",
    [BR_ROUTE_QUEUE_MODE_SET] = "POST /api/v1/admin/events/{id}/queue",
    [BR_ROUTE_QUEUE_CHALLENGE] = "POST /api/v1/queue/challenge",
    [BR_ROUTE_REGISTER_CHALLENGE] = "POST /api/v1/auth/challenge",
    [ROUTE_UNMATCHED] = "ANY (unmatched)",
};

const char *const *br_routes_names(unsigned *count)
{
    *count = BR_ROUTE_COUNT + 1;
    return ROUTE_NAMES;
}

static void request_id(struct rq *q)
{
    const char *given = br_http_header(q->req, "X-Request-Id");
    if (br_request_id_ok(given)) {
        size_t n = strlen(given);
        BR_ASSERT(n < sizeof q->id);
        memcpy(q->id, given, n + 1);
        return;
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

/* ---- the web front end (web.h): GET / and GET /web/<path> ---- */

/* Everything from this origin only (connect, images, scripts, styles: no
 * inline code); fits BR_HTTP_HEADER_VALUE_MAX. */
static const char WEB_CSP[] =
    "default-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";
_Static_assert(sizeof WEB_CSP <= BR_HTTP_HEADER_VALUE_MAX, "the policy fits a header value");

/* Answers the request when it is one of the front end's files (true), or
 * leaves it to the API's 404 (false: not a front-end path). */
static bool serve_web(struct rq *q)
{
    const char *method = br_http_method(q->req);
    const char *path = br_http_path(q->req);
    bool head = strcmp(method, "HEAD") == 0;
    if (strcmp(method, "GET") != 0 && !head) {
        return false;
    }
    const char *rel;
    if (strcmp(path, "/") == 0) {
        rel = "index.html";
    } else if (strncmp(path, "/web/", 5) == 0) {
        rel = path + 5;
    } else {
        return false;
    }
    const char *type = br_web_content_type(rel);
    if (!br_web_path_ok(rel) || type == NULL) {
        reply_code(q, 404, "NOT_FOUND", "no such file of the web front end");
        return true;
    }
    const char *dir = q->rt->cfg->web_dir;
    const struct br_web_file *f = NULL;
    char *owned = NULL;
    size_t len = 0;
    if (dir[0] != '\0') {
        if (br_web_read_dir(dir, rel, &owned, &len) != 0) {
            reply_code(q, 404, "NOT_FOUND", "no such file of the web front end");
            return true;
        }
    } else if ((f = br_web_find(rel)) == NULL) {
        reply_code(q, 404, "NOT_FOUND", "no such file of the web front end");
        return true;
    } else {
        len = f->len;
    }
    char etag[19];
    br_web_etag(owned != NULL ? (const void *)owned : (const void *)f->bytes, len, etag);
    br_http_add_header(q->req, "ETag", etag);
    br_http_add_header(q->req, "Cache-Control",
                       strcmp(rel, "index.html") == 0 ? "no-cache" : "public, max-age=60");
    br_http_add_header(q->req, "Content-Security-Policy", WEB_CSP);
    br_http_add_header(q->req, "X-Content-Type-Options", "nosniff");
    br_http_add_header(q->req, "Referrer-Policy", "no-referrer");
    const char *inm = br_http_header(q->req, "If-None-Match");
    if (inm != NULL && strstr(inm, etag) != NULL) {
        free(owned);
        br_http_respond(q->req, 304, NULL, NULL, 0);
        return true;
    }
    if (owned != NULL) {
        br_http_respond(q->req, 200, type, owned, len);
    } else {
        br_http_respond_static(q->req, 200, type, f->bytes, len);
    }
    return true;
}

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
    if (br_route_match(br_http_method(req), br_http_path(req), &q->match) == BR_OK) {
        BR_ASSERT(ROUTES[q->match.route].fn != NULL);
        q->route = q->match.route;
        bool ops = q->route == BR_ROUTE_HEALTHZ || q->route == BR_ROUTE_READYZ ||
                   q->route == BR_ROUTE_METRICS;
        if (!ops && !(rt->cfg->roles & BR_DIST_ROLE_API)) {
            /* A worker process (--roles without api): only its health and
             * metrics; the load balancer sends the API elsewhere. */
            reply_code(q, 404, "NOT_FOUND", "this process does not serve the API (--roles)");
            return;
        }
        run(q, &ROUTES[q->route]);
        return;
    }
    if (q->match.allow[0] != '\0') {
        br_http_add_header(req, "Allow", q->match.allow);
        reply_code(q, 405, "METHOD_NOT_ALLOWED", "this route does not take that method");
        return;
    }
    if (serve_web(q)) {
        return;
    }
    reply_code(q, 404, "NOT_FOUND", "no such route");
}

static bool rate_ok(struct rq *q, struct br_ratelimit *rl, uint64_t key, bool by_user)
{
    unsigned retry = 1;
    int64_t now_us = br_clock_mono_us();
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

/* The route's role check against the user's current role (the token's
 * may be stale), then the route itself. */
static void authorised(struct rq *q)
{
    const struct route *r = &ROUTES[q->route];
    if (q->call.err != BR_OK) {
        reply_err(q, q->call.err == BR_E_NOT_FOUND ? BR_E_UNAUTHORIZED : q->call.err);
        return;
    }
    q->who.role = q->call.r.user.role;
    if ((r->auth == AUTH_ORGANIZER && q->who.role < BR_ROLE_ORGANIZER) ||
        (r->auth == AUTH_ADMIN && q->who.role != BR_ROLE_ADMIN)) {
        reply_err(q, BR_E_FORBIDDEN);
        return;
    }
    r->fn(q);
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
    bool form =
        r->body == BODY_JSON_OR_FORM && br_content_type_is(ct, "application/x-www-form-urlencoded");
    if (r->body == BODY_JSON || r->body == BODY_RAW_JSON ||
        (r->body == BODY_JSON_OR_FORM && !form)) {
        if (!br_content_type_is(ct, "application/json")) {
            reply_code(q, 415, "UNSUPPORTED_MEDIA_TYPE", "send Content-Type: application/json");
            return;
        }
    }
    if (r->body == BODY_JSON || r->body == BODY_JSON_OR_FORM) {
        BR_ASSERT(r->body != BODY_JSON_OR_FORM || r->parse == BR_BODY_CONFIRM_JSON);
        enum br_body_kind kind = form ? BR_BODY_CONFIRM_FORM : r->parse;
        q->body_rc = br_parse_body(kind, body, len, br_clock_wall_ms(), &q->body, q->why);
        if (q->body_rc == BR_E_CORRUPT) {
            /* Not a JSON object at all: refused before authentication, like
             * any malformed request. A missing or wrong member is the
             * route's to answer (body_ok), once the caller is known. */
            reply_code(q, 400, "INVALID_REQUEST", q->why);
            return;
        }
    }
    if (r->auth != AUTH_NONE) {
        int rc = authenticate(q, r->fn == r_queue_stream);
        if (rc == BR_OK && !BE(q)->ops->user_exists(BE(q), q->who.user_id)) {
            rc = BR_E_UNAUTHORIZED; /* a genuine token for nobody (a forged or foreign secret) */
        }
        if (rc != BR_OK) {
            reply_err(q, rc);
            return;
        }
        if (!r->limit_exempt && !rate_ok(q, rt->rl_user, q->who.user_id, true)) {
            return;
        }
        if (r->auth != AUTH_USER) {
            BE(q)->ops->user_get(BE(q), q->who.user_id, begin(q, authorised));
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
    free(q->events);
    free(q->bookings);
    free(q->provider_json);
    free(q);
}
