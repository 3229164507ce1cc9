/*
 * test_http_waiting_room.c -- issue 13's waiting room over HTTP against a
 * real server (ctest http_waiting_room): the public status route, operator
 * modes and who may change them, what a waiting person sees in each mode
 * (paused: no pass; closed: QUEUE_CLOSED; passthrough: booking without a
 * pass; sold out: SOLD_OUT and status sold_out), the proof of work at the
 * door (required, invalid, reused, solved: solved here with OpenSSL's
 * SHA-256 as a browser's WebCrypto would), the per-address join limit and
 * the register proof of work (a second server with those flags), and the
 * bodies the routes refuse with 400 and a code.
 */
#define _POSIX_C_SOURCE 200809L

#include <openssl/sha.h>
#include <stdlib.h>
#include <time.h>

#include "check.h"
#include "client.h"

static struct t_server g_srv;

/* ---- helpers ---- */

/* A user promoted to organizer by the admin, logged in again (roles travel
 * in the token). Returns the id; the token into token. */
static uint64_t organizer(struct t_server *s, const char *tag, char *token, size_t cap)
{
    uint64_t id = t_buyer(s, tag, token, cap);
    char p[96];
    struct t_resp r;
    t_json(s, "POST", t_path_of(p, sizeof p, "/api/v1/admin/users/%llu/role", id), s->admin_token,
           json_pack("{s:s}", "role", "organizer"), NULL, &r);
    EXPECT(r, 200, NULL);
    t_resp_free(&r);
    return id;
}

/* An event made by token (the admin's when NULL) with one zone of
 * capacity seats and the waiting room's settings in queue (consumed; may
 * be NULL). requires_pass true. */
static uint64_t event_of(struct t_server *s, const char *token, unsigned capacity, json_t *queue)
{
    json_t *q = json_pack("{s:i, s:i, s:i}", "max_active", 10, "admit_per_tick", 10, "pass_ttl_s",
                          120);
    if (queue != NULL) {
        json_object_update(q, queue);
        json_decref(queue);
    }
    json_t *spec = json_pack("{s:s, s:b, s:i, s:o, s:[{s:s, s:i, s:i, s:s}]}", "name", "Room",
                             "requires_pass", 1, "per_user_limit", 4, "queue", q, "zones", "name",
                             "GA", "capacity", (int)capacity, "price_minor", 100, "currency",
                             "EUR");
    struct t_resp r;
    t_json(s, "POST", "/api/v1/events", token != NULL ? token : s->admin_token, spec, NULL, &r);
    EXPECT(r, 201, NULL);
    uint64_t id = J_INT(r, "id");
    t_resp_free(&r);
    return id;
}

static void status_of(struct t_server *s, uint64_t ev, struct t_resp *r)
{
    char p[96];
    t_request(s, "GET", t_path_of(p, sizeof p, "/api/v1/events/%llu/queue", ev), NULL, NULL, NULL, 0,
              r);
}

static void mode_set(struct t_server *s, const char *token, uint64_t ev, json_t *body,
                     struct t_resp *r)
{
    char p[96];
    t_json(s, "POST", t_path_of(p, sizeof p, "/api/v1/admin/events/%llu/queue", ev), token, body,
           NULL, r);
}

static void set_mode(struct t_server *s, uint64_t ev, const char *mode)
{
    struct t_resp r;
    mode_set(s, s->admin_token, ev, json_pack("{s:s}", "mode", mode), &r);
    EXPECT(r, 200, NULL);
    assert_string_equal(J_STR(r, "mode"), mode);
    t_resp_free(&r);
}

/* Joins with an optional proof of work (challenge NULL = none). */
static void join(struct t_server *s, const char *token, uint64_t ev, const char *challenge,
                 const char *nonce, struct t_resp *r)
{
    json_t *b = json_pack("{s:I}", "event_id", (json_int_t)ev);
    if (challenge != NULL) {
        json_object_set_new(b, "pow_challenge", json_string(challenge));
        json_object_set_new(b, "pow_nonce", json_string(nonce));
    }
    t_json(s, "POST", "/api/v1/queue/join", token, b, NULL, r);
}

static void position(struct t_server *s, const char *token, uint64_t ev, struct t_resp *r)
{
    char p[96];
    t_request(s, "GET", t_path_of(p, sizeof p, "/api/v1/queue/position/%llu", ev), token, NULL, NULL,
              0, r);
}

/* A nonce such that SHA-256(challenge "." nonce) has >= bits leading zero
 * bits (want true), or has fewer (want false). */
static void solve(const char *challenge, unsigned bits, bool want, char *nonce, size_t cap)
{
    for (unsigned long i = 0; i < (1ul << 28); i++) {
        snprintf(nonce, cap, "%c%lu", want ? 'n' : 'x', i);
        char text[512];
        int n = snprintf(text, sizeof text, "%s.%s", challenge, nonce);
        uint8_t h[32];
        SHA256((const unsigned char *)text, (size_t)n, h);
        unsigned z = 0;
        for (unsigned k = 0; k < 256 && ((unsigned)h[k / 8u] & (0x80u >> (k % 8u))) == 0; k++) {
            z++;
        }
        if ((z >= bits) == want) {
            return;
        }
    }
    fail_msg("no nonce found");
}

/* POST /api/v1/queue/challenge for ev: the challenge into out, its bits returned. */
static unsigned challenge_for(struct t_server *s, const char *token, uint64_t ev, char *out,
                              size_t cap)
{
    struct t_resp r;
    t_json(s, "POST", "/api/v1/queue/challenge", token,
           json_pack("{s:I}", "event_id", (json_int_t)ev), NULL, &r);
    EXPECT(r, 200, NULL);
    unsigned bits = (unsigned)J_INT(r, "bits");
    const char *c = J_STR(r, "challenge");
    snprintf(out, cap, "%s", c != NULL ? c : "");
    t_resp_free(&r);
    return bits;
}

/* Polls the status route until sold_out is true (timeout_ms). */
static bool wait_sold_out(struct t_server *s, uint64_t ev, int timeout_ms)
{
    int64_t until = t_mono_ms() + timeout_ms;
    while (t_mono_ms() < until) {
        struct t_resp r;
        status_of(s, ev, &r);
        bool sold = r.status == 200 && json_is_true(json_object_get(r.json, "sold_out"));
        t_resp_free(&r);
        if (sold) {
            return true;
        }
        t_sleep_ms(50);
    }
    return false;
}

/* ---- the status route and the modes ---- */

static void test_the_status_route_is_public_and_cacheable(void **state)
{
    (void)state;
    struct t_server *s = &g_srv;
    uint64_t ev = event_of(s, NULL, 10, json_pack("{s:i}", "admit_per_min", 120));
    struct t_resp r;
    status_of(s, ev, &r); /* no token */
    EXPECT(r, 200, NULL);
    assert_non_null(strstr(r.cache_control, "public"));
    assert_non_null(strstr(r.cache_control, "max-age="));
    assert_int_equal(J_INT(r, "event_id"), ev);
    assert_string_equal(J_STR(r, "mode"), "open");
    assert_true(json_is_false(json_object_get(r.json, "sold_out")));
    assert_int_equal(J_INT(r, "queue_length"), 0);
    assert_int_equal(J_INT(r, "admit_per_min"), 120);
    assert_int_equal(J_INT(r, "max_active"), 10);
    assert_int_equal(J_INT(r, "pow_bits"), 0);
    assert_non_null(J_STR(r, "gate"));
    assert_non_null(J_STR(r, "estimate_basis"));
    assert_non_null(json_object_get(r.json, "estimated_wait_s"));
    assert_non_null(json_object_get(r.json, "admitted_per_min"));
    t_resp_free(&r);
    status_of(s, 999999, &r);
    EXPECT(r, 404, "NOT_FOUND");
    t_resp_free(&r);
    char p[96];
    t_request(s, "DELETE", t_path_of(p, sizeof p, "/api/v1/events/%llu/queue", ev), NULL, NULL, NULL,
              0, &r);
    EXPECT(r, 405, "METHOD_NOT_ALLOWED");
    t_resp_free(&r);
}

static void test_modes_are_for_the_events_organizer_and_admins(void **state)
{
    (void)state;
    struct t_server *s = &g_srv;
    char org[1024];
    char other[1024];
    char buyer[1024];
    organizer(s, "org-a", org, sizeof org);
    organizer(s, "org-b", other, sizeof other);
    t_buyer(s, "cust", buyer, sizeof buyer);
    uint64_t ev = event_of(s, org, 10, NULL);
    struct t_resp r;
    mode_set(s, NULL, ev, json_pack("{s:s}", "mode", "paused"), &r);
    EXPECT(r, 401, "UNAUTHORIZED");
    t_resp_free(&r);
    mode_set(s, buyer, ev, json_pack("{s:s}", "mode", "paused"), &r);
    EXPECT(r, 403, "FORBIDDEN");
    t_resp_free(&r);
    mode_set(s, other, ev, json_pack("{s:s}", "mode", "paused"), &r);
    EXPECT(r, 403, "FORBIDDEN");
    t_resp_free(&r);
    status_of(s, ev, &r);
    assert_string_equal(J_STR(r, "mode"), "open"); /* the refusals changed nothing */
    t_resp_free(&r);
    mode_set(s, org, ev, json_pack("{s:s, s:i, s:i}", "mode", "paused", "max_active", 3,
                                   "admit_per_min", 60),
             &r);
    EXPECT(r, 200, NULL);
    assert_string_equal(J_STR(r, "mode"), "paused");
    assert_string_equal(J_STR(r, "gate"), "paused");
    assert_int_equal(J_INT(r, "max_active"), 3);
    assert_int_equal(J_INT(r, "admit_per_min"), 60);
    t_resp_free(&r);
    mode_set(s, s->admin_token, ev, json_pack("{s:s}", "mode", "open"), &r);
    EXPECT(r, 200, NULL);
    assert_int_equal(J_INT(r, "max_active"), 3); /* only what the body names changes */
    t_resp_free(&r);
    status_of(s, ev, &r);
    assert_string_equal(J_STR(r, "mode"), "open");
    assert_int_equal(J_INT(r, "admit_per_min"), 60);
    t_resp_free(&r);
    /* max_active beyond the event's own, an unknown event. */
    mode_set(s, org, ev, json_pack("{s:i}", "max_active", 11), &r);
    EXPECT(r, 400, "INVALID_REQUEST");
    t_resp_free(&r);
    mode_set(s, s->admin_token, 999999, json_pack("{s:s}", "mode", "open"), &r);
    EXPECT(r, 404, "NOT_FOUND");
    t_resp_free(&r);
}

static void test_paused_issues_no_pass_until_reopened(void **state)
{
    (void)state;
    struct t_server *s = &g_srv;
    uint64_t ev = event_of(s, NULL, 10, NULL);
    set_mode(s, ev, "paused");
    char tok[1024];
    t_buyer(s, "paused", tok, sizeof tok);
    struct t_resp r;
    join(s, tok, ev, NULL, NULL, &r);
    EXPECT(r, 200, NULL); /* paused takes joins */
    t_resp_free(&r);
    t_sleep_ms(400); /* twenty admitter ticks */
    position(s, tok, ev, &r);
    EXPECT(r, 200, NULL);
    assert_string_not_equal(J_STR(r, "status"), "admitted");
    assert_null(json_object_get(r.json, "pass"));
    assert_string_equal(J_STR(r, "gate"), "paused");
    t_resp_free(&r);
    set_mode(s, ev, "open");
    char pass[512];
    assert_true(t_wait_pass(s, tok, ev, pass, sizeof pass, 5000));
}

static void test_closed_refuses_new_joins_and_tells_those_waiting(void **state)
{
    (void)state;
    struct t_server *s = &g_srv;
    uint64_t ev = event_of(s, NULL, 10, NULL);
    set_mode(s, ev, "paused");
    char early[1024];
    char late[1024];
    t_buyer(s, "closed-early", early, sizeof early);
    t_buyer(s, "closed-late", late, sizeof late);
    struct t_resp r;
    join(s, early, ev, NULL, NULL, &r);
    EXPECT(r, 200, NULL);
    t_resp_free(&r);
    set_mode(s, ev, "closed");
    join(s, late, ev, NULL, NULL, &r);
    EXPECT(r, 409, "QUEUE_CLOSED");
    t_resp_free(&r);
    join(s, early, ev, NULL, NULL, &r); /* a place already held is kept */
    EXPECT(r, 200, NULL);
    t_resp_free(&r);
    position(s, early, ev, &r);
    EXPECT(r, 200, NULL);
    assert_string_equal(J_STR(r, "status"), "closed");
    assert_string_equal(J_STR(r, "gate"), "closed");
    assert_true(json_is_null(json_object_get(r.json, "estimated_wait_s")));
    t_resp_free(&r);
    status_of(s, ev, &r);
    assert_string_equal(J_STR(r, "gate"), "closed");
    assert_true(json_is_null(json_object_get(r.json, "estimated_wait_s")));
    t_resp_free(&r);
}

static void test_passthrough_books_without_a_pass(void **state)
{
    (void)state;
    struct t_server *s = &g_srv;
    uint64_t ev = event_of(s, NULL, 10, NULL);
    char tok[1024];
    t_buyer(s, "pt", tok, sizeof tok);
    struct t_resp r;
    json_t *hold = json_pack("{s:I, s:i, s:i}", "event_id", (json_int_t)ev, "zone_id", 1,
                             "quantity", 1);
    t_json(s, "POST", "/api/v1/bookings/reserve", tok, json_incref(hold), NULL, &r);
    EXPECT(r, 403, NULL); /* open: a pass is needed */
    t_resp_free(&r);
    set_mode(s, ev, "passthrough");
    join(s, tok, ev, NULL, NULL, &r);
    EXPECT(r, 200, NULL);
    assert_string_equal(J_STR(r, "status"), "passthrough");
    t_resp_free(&r);
    t_json(s, "POST", "/api/v1/bookings/reserve", tok, hold, NULL, &r);
    EXPECT(r, 201, NULL);
    t_resp_free(&r);
    status_of(s, ev, &r);
    assert_string_equal(J_STR(r, "gate"), "passthrough");
    t_resp_free(&r);
}

static void test_sold_out_refuses_joins_and_tells_those_waiting(void **state)
{
    (void)state;
    struct t_server *s = &g_srv;
    uint64_t ev = event_of(s, NULL, 1, json_pack("{s:b}", "inventory_aware", 1));
    char waiter[1024];
    char buyer[1024];
    char late[1024];
    t_buyer(s, "so-wait", waiter, sizeof waiter);
    t_buyer(s, "so-buy", buyer, sizeof buyer);
    t_buyer(s, "so-late", late, sizeof late);
    set_mode(s, ev, "paused");
    struct t_resp r;
    join(s, waiter, ev, NULL, NULL, &r);
    EXPECT(r, 200, NULL);
    t_resp_free(&r);
    /* The one seat is bought through passthrough, then the queue is open again. */
    set_mode(s, ev, "passthrough");
    t_json(s, "POST", "/api/v1/bookings/reserve", buyer,
           json_pack("{s:I, s:i, s:i}", "event_id", (json_int_t)ev, "zone_id", 1, "quantity", 1),
           NULL, &r);
    EXPECT(r, 201, NULL);
    uint64_t booking = J_INT(r, "id");
    t_resp_free(&r);
    t_pay(s, buyer, booking);
    set_mode(s, ev, "open");
    assert_true(wait_sold_out(s, ev, 10000));
    status_of(s, ev, &r);
    assert_string_equal(J_STR(r, "gate"), "sold_out");
    assert_true(json_is_null(json_object_get(r.json, "estimated_wait_s")));
    t_resp_free(&r);
    join(s, late, ev, NULL, NULL, &r);
    EXPECT(r, 409, "SOLD_OUT");
    t_resp_free(&r);
    position(s, waiter, ev, &r);
    EXPECT(r, 200, NULL);
    assert_string_equal(J_STR(r, "status"), "sold_out");
    assert_null(json_object_get(r.json, "pass"));
    t_resp_free(&r);
}

/* ---- the door ---- */

static void test_a_join_needs_a_fresh_proof_of_work(void **state)
{
    (void)state;
    struct t_server *s = &g_srv;
    uint64_t ev = event_of(s, NULL, 10, json_pack("{s:i}", "pow_bits", 8));
    char tok[1024];
    char tok2[1024];
    t_buyer(s, "pow", tok, sizeof tok);
    t_buyer(s, "pow2", tok2, sizeof tok2);
    struct t_resp r;
    status_of(s, ev, &r);
    assert_int_equal(J_INT(r, "pow_bits"), 8);
    t_resp_free(&r);
    join(s, tok, ev, NULL, NULL, &r);
    EXPECT(r, 403, "POW_REQUIRED");
    t_resp_free(&r);
    char c[256];
    char nonce[40];
    assert_int_equal(challenge_for(s, tok, ev, c, sizeof c), 8);
    solve(c, 8, false, nonce, sizeof nonce);
    join(s, tok, ev, c, nonce, &r);
    EXPECT(r, 403, "POW_INVALID"); /* not enough work */
    t_resp_free(&r);
    solve(c, 8, true, nonce, sizeof nonce);
    join(s, tok2, ev, c, nonce, &r);
    EXPECT(r, 403, "POW_INVALID"); /* another user's challenge */
    t_resp_free(&r);
    join(s, tok, ev, c, nonce, &r);
    EXPECT(r, 200, NULL);
    t_resp_free(&r);
    join(s, tok, ev, NULL, NULL, &r); /* holding a place: a retry needs no new work */
    EXPECT(r, 200, NULL);
    t_resp_free(&r);
    t_json(s, "DELETE", "/api/v1/queue/leave", tok,
           json_pack("{s:I}", "event_id", (json_int_t)ev), NULL, &r);
    EXPECT(r, 204, NULL);
    t_resp_free(&r);
    join(s, tok, ev, c, nonce, &r);
    EXPECT(r, 403, "POW_INVALID"); /* used */
    t_resp_free(&r);
    assert_int_equal(challenge_for(s, tok, ev, c, sizeof c), 8);
    solve(c, 8, true, nonce, sizeof nonce);
    join(s, tok, ev, c, nonce, &r);
    EXPECT(r, 200, NULL);
    t_resp_free(&r);
    /* An event without the door: a challenge of 0 bits, none needed. */
    uint64_t open_ev = event_of(s, NULL, 10, NULL);
    assert_int_equal(challenge_for(s, tok, open_ev, c, sizeof c), 0);
    assert_string_equal(c, "");
}

/* Registers with a proof of work of bits (challenge from the route). */
static long register_with_pow(struct t_server *s, const char *email, bool solved, char *c,
                              size_t cap, char *nonce, size_t ncap)
{
    struct t_resp r;
    if (c[0] == '\0') {
        t_request(s, "POST", "/api/v1/auth/challenge", NULL, NULL, NULL, 0, &r);
        EXPECT(r, 200, NULL);
        unsigned bits = (unsigned)J_INT(r, "bits");
        assert_int_equal(bits, 6);
        snprintf(c, cap, "%s", J_STR(r, "challenge"));
        t_resp_free(&r);
        solve(c, bits, solved, nonce, ncap);
    }
    t_json(s, "POST", "/api/v1/auth/register", NULL,
           json_pack("{s:s, s:s, s:s, s:s, s:s}", "email", email, "password", T_PASSWORD, "name",
                     "P", "pow_challenge", c, "pow_nonce", nonce),
           NULL, &r);
    long status = r.status;
    const char *code =
        json_string_value(json_object_get(json_object_get(r.json, "error"), "code"));
    if (status == 403) {
        assert_string_equal(code, "POW_INVALID");
    }
    t_resp_free(&r);
    return status;
}

static void test_register_proof_of_work_and_the_join_limit(void **state)
{
    (void)state;
    struct t_server s;
    t_server_start(&s, (const char *const[]){"--pow-register-bits", "6", "--join-limit-ip",
                                             "0.01:3", NULL});
    char email[96];
    t_email("powreg", email, sizeof email);
    struct t_resp r;
    t_json(&s, "POST", "/api/v1/auth/register", NULL,
           json_pack("{s:s, s:s, s:s}", "email", email, "password", T_PASSWORD, "name", "P"),
           NULL, &r);
    EXPECT(r, 403, "POW_REQUIRED");
    t_resp_free(&r);
    char c[256] = "";
    char nonce[40];
    assert_int_equal(register_with_pow(&s, email, false, c, sizeof c, nonce, sizeof nonce), 403);
    c[0] = '\0';
    assert_int_equal(register_with_pow(&s, email, true, c, sizeof c, nonce, sizeof nonce), 201);
    char email2[96];
    t_email("powreg", email2, sizeof email2);
    /* The same solution for a second account: used. */
    assert_int_equal(register_with_pow(&s, email2, true, c, sizeof c, nonce, sizeof nonce), 403);
    t_json(&s, "POST", "/api/v1/auth/login", NULL,
           json_pack("{s:s, s:s}", "email", email, "password", T_PASSWORD), NULL, &r);
    EXPECT(r, 200, NULL);
    char tok[1024];
    snprintf(tok, sizeof tok, "%s", J_STR(r, "access_token"));
    t_resp_free(&r);
    /* Three joins from this address pass (the bucket's burst), the fourth is refused. */
    uint64_t ev = event_of(&s, NULL, 10, NULL);
    for (int i = 0; i < 3; i++) {
        join(&s, tok, ev, NULL, NULL, &r);
        EXPECT(r, 200, NULL);
        t_resp_free(&r);
    }
    join(&s, tok, ev, NULL, NULL, &r);
    EXPECT(r, 429, "JOIN_LIMITED");
    assert_true(atoi(r.retry_after) >= 1);
    t_resp_free(&r);
    /* Other routes are not counted against it. */
    position(&s, tok, ev, &r);
    EXPECT(r, 200, NULL);
    t_resp_free(&r);
    assert_int_equal(t_server_stop(&s), 0);
    t_server_cleanup(&s);
}

/* ---- bodies ---- */

static void expect_400(struct t_server *s, const char *method, const char *path,
                       const char *token, const char *body)
{
    struct t_resp r;
    const char *h[] = {"Content-Type: application/json", NULL};
    t_request(s, method, path, token, h, body, strlen(body), &r);
    if (r.status != 400) {
        fprintf(stderr, "%s %s %s\n", method, path, body);
    }
    EXPECT(r, 400, "INVALID_REQUEST");
    assert_non_null(strstr(r.body, "message"));
    t_resp_free(&r);
}

static void test_bad_bodies_are_400_with_a_code(void **state)
{
    (void)state;
    struct t_server *s = &g_srv;
    uint64_t ev = event_of(s, NULL, 10, NULL);
    char p[96];
    t_path_of(p, sizeof p, "/api/v1/admin/events/%llu/queue", ev);
    const char *adm = s->admin_token;
    expect_400(s, "POST", p, adm, "{}");
    expect_400(s, "POST", p, adm, "{\"mode\":\"sideways\"}");
    expect_400(s, "POST", p, adm, "{\"mode\":1}");
    expect_400(s, "POST", p, adm, "{\"max_active\":0}");
    expect_400(s, "POST", p, adm, "{\"admit_per_min\":600001}");
    expect_400(s, "POST", p, adm, "{\"admit_per_min\":-1}");
    expect_400(s, "POST", p, adm, "not json");
    char tok[1024];
    t_buyer(s, "bodies", tok, sizeof tok);
    expect_400(s, "POST", "/api/v1/queue/join", tok, "{\"event_id\":1,\"pow_challenge\":\"x\"}");
    expect_400(s, "POST", "/api/v1/queue/join", tok,
               "{\"event_id\":1,\"pow_challenge\":\"x\",\"pow_nonce\":7}");
    expect_400(s, "POST", "/api/v1/queue/challenge", tok, "{}");
    expect_400(s, "POST", "/api/v1/queue/challenge", tok, "{\"event_id\":0}");
    static const char *const bad_queue[] = {
        "{\"pow_bits\":29}",        "{\"mode\":\"x\"}",           "{\"inventory_aware\":\"yes\"}",
        "{\"admit_per_min\":-5}",   "{\"presence_ttl_s\":86401}", "{\"admit_per_min\":600001}",
    };
    for (size_t i = 0; i < sizeof bad_queue / sizeof bad_queue[0]; i++) {
        char body[512];
        snprintf(body, sizeof body,
                 "{\"name\":\"E\",\"queue\":%s,\"zones\":[{\"name\":\"A\",\"capacity\":1,"
                 "\"price_minor\":1,\"currency\":\"EUR\"}]}",
                 bad_queue[i]);
        expect_400(s, "POST", "/api/v1/events", adm, body);
    }
    /* Accepted settings come back in the event's queue object. */
    uint64_t ok = event_of(s, NULL, 10,
                           json_pack("{s:i, s:i, s:i, s:b, s:s}", "admit_per_min", 90,
                                     "presence_ttl_s", 60, "pow_bits", 3, "inventory_aware", 0,
                                     "mode", "paused"));
    struct t_resp r;
    t_request(s, "GET", t_path_of(p, sizeof p, "/api/v1/events/%llu", ok), NULL, NULL, NULL, 0, &r);
    EXPECT(r, 200, NULL);
    json_t *q = json_object_get(r.json, "queue");
    assert_int_equal(json_integer_value(json_object_get(q, "admit_per_min")), 90);
    assert_int_equal(json_integer_value(json_object_get(q, "presence_ttl_s")), 60);
    assert_int_equal(json_integer_value(json_object_get(q, "pow_bits")), 3);
    assert_true(json_is_false(json_object_get(q, "inventory_aware")));
    assert_string_equal(json_string_value(json_object_get(q, "mode")), "paused");
    t_resp_free(&r);
}

static int setup(void **state)
{
    (void)state;
    t_server_start(&g_srv, (const char *const[]){"--rate-limit-ip", "0", "--rate-limit-user", "0",
                                                 NULL});
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    t_server_stop(&g_srv);
    t_server_cleanup(&g_srv);
    return 0;
}

int main(int argc, char **argv)
{
    t_init(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_the_status_route_is_public_and_cacheable),
        cmocka_unit_test(test_modes_are_for_the_events_organizer_and_admins),
        cmocka_unit_test(test_paused_issues_no_pass_until_reopened),
        cmocka_unit_test(test_closed_refuses_new_joins_and_tells_those_waiting),
        cmocka_unit_test(test_passthrough_books_without_a_pass),
        cmocka_unit_test(test_sold_out_refuses_joins_and_tells_those_waiting),
        cmocka_unit_test(test_a_join_needs_a_fresh_proof_of_work),
        cmocka_unit_test(test_register_proof_of_work_and_the_join_limit),
        cmocka_unit_test(test_bad_bodies_are_400_with_a_code),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
