/*
 * test_http_flow.c -- the buyer's and the operator's paths through the real
 * binary over HTTP: register, log in, join, stream until the pass arrives,
 * reserve, pay through the test provider, confirmed; declines, cancels,
 * expiry with a late payment refunded, the pre-queue, roles, listings,
 * stats, operations routes and a graceful stop.
 *
 * Usage: test_http_flow BINARY [BASE_URL]   (see client.h)
 */
#define _DEFAULT_SOURCE

#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "check.h"
#include "client.h"

struct fx {
    struct t_server srv;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    t_server_start(&f->srv, (const char *const[]){"--sse-keepalive-s", "1", NULL});
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    int rc = t_server_stop(&f->srv);
    t_server_cleanup(&f->srv);
    free(f);
    return rc == 0 ? 0 : -1; /* a graceful stop exits 0 */
}

/* ---- operations ---- */

static void test_health_ready_openapi_metrics(void **state)
{
    struct t_server *s = &((struct fx *)*state)->srv;
    struct t_resp r;
    t_request(s, "GET", "/healthz", NULL, NULL, NULL, 0, &r);
    EXPECT(r, 200, NULL);
    t_resp_free(&r);
    t_request(s, "GET", "/readyz", NULL, NULL, NULL, 0, &r);
    EXPECT(r, 200, NULL);
    t_resp_free(&r);
    t_request(s, "GET", "/api/v1/openapi.json", NULL, NULL, NULL, 0, &r);
    EXPECT(r, 200, NULL);
    assert_non_null(J_STR(r, "openapi"));
    assert_non_null(json_object_get(json_object_get(r.json, "paths"), "/api/v1/bookings/reserve"));
    t_resp_free(&r);
    const char *hs[] = {"X-Request-Id: my-trace-42", NULL};
    t_request(s, "GET", "/healthz", NULL, hs, NULL, 0, &r);
    assert_string_equal(r.request_id, "my-trace-42");
    t_resp_free(&r);
    t_request(s, "GET", "/healthz", NULL, NULL, NULL, 0, &r);
    assert_true(strlen(r.request_id) > 0); /* generated when not given */
    t_resp_free(&r);
    t_request(s, "GET", "/metrics", NULL, NULL, NULL, 0, &r);
    EXPECT(r, 200, NULL);
    assert_non_null(strstr(r.body, "br_http_requests_total{route=\"/healthz\",method=\"GET\",status=\"200\"}"));
    assert_non_null(strstr(r.body, "br_http_request_duration_seconds_bucket"));
    assert_non_null(strstr(r.body, "br_zone_available"));
    assert_non_null(strstr(r.body, "br_queue_length"));
    /* issue 13: the presence reporter's losses, a counter with HELP and TYPE */
    assert_non_null(strstr(r.body, "# HELP br_presence_dropped_total "));
    assert_non_null(strstr(r.body, "# TYPE br_presence_dropped_total counter\nbr_presence_dropped_total 0\n"));
    t_resp_free(&r);
}

/* ---- accounts ---- */

static void test_register_login_me(void **state)
{
    struct t_server *s = &((struct fx *)*state)->srv;
    char email[128];
    char upper[128];
    t_email("Reg", email, sizeof email);
    snprintf(upper, sizeof upper, "%s", email);
    struct t_resp r;
    t_json(s, "POST", "/api/v1/auth/register", NULL,
           json_pack("{s:s, s:s, s:s}", "email", upper, "password", T_PASSWORD, "name", "Reg"),
           NULL, &r);
    EXPECT(r, 201, NULL);
    uint64_t id = J_INT(r, "user_id");
    assert_true(id > 0);
    assert_string_equal(J_STR(r, "role"), "customer");
    for (char *p = upper; *p; p++) {
        *p = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
    }
    assert_string_equal(J_STR(r, "email"), upper); /* stored lower-case */
    t_resp_free(&r);

    t_json(s, "POST", "/api/v1/auth/register", NULL,
           json_pack("{s:s, s:s, s:s}", "email", email, "password", T_PASSWORD, "name", "Again"),
           NULL, &r);
    EXPECT(r, 409, "EMAIL_TAKEN");
    t_resp_free(&r);

    t_json(s, "POST", "/api/v1/auth/login", NULL,
           json_pack("{s:s, s:s}", "email", email, "password", "wrong-password"), NULL, &r);
    EXPECT(r, 401, "UNAUTHORIZED");
    t_resp_free(&r);
    t_json(s, "POST", "/api/v1/auth/login", NULL,
           json_pack("{s:s, s:s}", "email", "nobody@test.local", "password", T_PASSWORD), NULL,
           &r);
    EXPECT(r, 401, "UNAUTHORIZED");
    t_resp_free(&r);

    t_json(s, "POST", "/api/v1/auth/login", NULL,
           json_pack("{s:s, s:s}", "email", email, "password", T_PASSWORD), NULL, &r);
    EXPECT(r, 200, NULL);
    assert_string_equal(J_STR(r, "token_type"), "Bearer");
    assert_non_null(J_STR(r, "expires_at"));
    char token[1024];
    snprintf(token, sizeof token, "%s", J_STR(r, "access_token"));
    t_resp_free(&r);

    t_request(s, "GET", "/api/v1/auth/me", token, NULL, NULL, 0, &r);
    EXPECT(r, 200, NULL);
    assert_int_equal(J_INT(r, "user_id"), id);
    assert_string_equal(J_STR(r, "name"), "Reg");
    t_resp_free(&r);
}

/* ---- the whole purchase ---- */

static char *sse_data(const char *text, const char *event)
{
    char marker[64];
    snprintf(marker, sizeof marker, "event: %s\ndata: ", event);
    const char *at = strstr(text, marker);
    if (at == NULL) {
        return NULL;
    }
    at += strlen(marker);
    size_t n = strcspn(at, "\n");
    char *out = malloc(n + 1);
    memcpy(out, at, n);
    out[n] = '\0';
    return out;
}

static void test_buyer_flow_with_stream(void **state)
{
    struct t_server *s = &((struct fx *)*state)->srv;
    char p[160];
    uint64_t ev = t_event(s, NULL);
    char token[1024];
    t_buyer(s, "flow", token, sizeof token);
    struct t_resp r;
    t_json(s, "POST", "/api/v1/queue/join", token, json_pack("{s:I}", "event_id", (json_int_t)ev),
           NULL, &r);
    EXPECT(r, 200, NULL);
    const char *st = J_STR(r, "status");
    assert_true(strcmp(st, "waiting") == 0 || strcmp(st, "admitted") == 0);
    t_resp_free(&r);

    /* The pass arrives on the stream, pushed by the admitter. */
    char *text = t_sse(s, t_path_of(p, sizeof p, "/api/v1/queue/position/%llu/stream", ev), token,
                       "pass", 10000);
    char *pass_json = sse_data(text, "pass");
    if (pass_json == NULL) {
        fprintf(stderr, "stream said: %s\n", text);
    }
    assert_non_null(pass_json);
    assert_non_null(strstr(text, "event: position"));
    json_t *pj = json_loads(pass_json, 0, NULL);
    char pass[256];
    snprintf(pass, sizeof pass, "%s", json_string_value(json_object_get(pj, "token")));
    assert_non_null(json_string_value(json_object_get(pj, "expires_at")));
    json_decref(pj);
    free(pass_json);
    free(text);

    char hp[300];
    snprintf(hp, sizeof hp, "X-Queue-Pass: %s", pass);
    const char *hs[] = {hp, "Idempotency-Key: flow-key-1", NULL};
    t_json(s, "POST", "/api/v1/bookings/reserve", token,
           json_pack("{s:I, s:i, s:i}", "event_id", (json_int_t)ev, "zone_id", 1, "quantity", 2),
           hs, &r);
    EXPECT(r, 201, NULL);
    uint64_t booking = J_INT(r, "id");
    assert_string_equal(J_STR(r, "status"), "held");
    assert_int_equal(J_INT(r, "total_minor"), 10000);
    assert_string_equal(J_STR(r, "currency"), "EUR");
    assert_non_null(J_STR(r, "expires_at"));
    t_resp_free(&r);

    /* A retry with the same key gets the same booking, not a second one. */
    t_json(s, "POST", "/api/v1/bookings/reserve", token,
           json_pack("{s:I, s:i, s:i}", "event_id", (json_int_t)ev, "zone_id", 1, "quantity", 2),
           hs, &r);
    EXPECT(r, 201, NULL);
    assert_int_equal(J_INT(r, "id"), booking);
    t_resp_free(&r);

    t_json(s, "POST", "/api/v1/payments", token,
           json_pack("{s:I}", "booking_id", (json_int_t)booking), NULL, &r);
    EXPECT(r, 201, NULL);
    assert_int_equal(J_INT(r, "amount_minor"), 10000);
    assert_string_equal(J_STR(r, "status"), "pending");
    assert_non_null(J_STR(r, "client_secret"));
    char pi[64], secret[128];
    snprintf(pi, sizeof pi, "%s", J_STR(r, "provider_payment_id"));
    snprintf(secret, sizeof secret, "%s", J_STR(r, "client_secret"));
    t_resp_free(&r);

    char cp[160];
    snprintf(cp, sizeof cp, "/test-provider/v1/payment_intents/%s/confirm", pi);
    t_json(s, "POST", cp, NULL,
           json_pack("{s:s, s:s}", "payment_method", "pm_card_visa", "client_secret", secret), NULL,
           &r);
    EXPECT(r, 200, NULL);
    assert_string_equal(J_STR(r, "status"), "succeeded");
    t_resp_free(&r);

    /* The signed webhook went through the saga before confirm answered. */
    t_request(s, "GET", t_path_of(p, sizeof p, "/api/v1/bookings/%llu", booking), token, NULL, NULL,
              0, &r);
    EXPECT(r, 200, NULL);
    assert_string_equal(J_STR(r, "status"), "confirmed");
    t_resp_free(&r);

    t_request(s, "GET", "/api/v1/bookings", token, NULL, NULL, 0, &r);
    EXPECT(r, 200, NULL);
    json_t *list = json_object_get(r.json, "bookings");
    assert_int_equal(json_array_size(list), 1);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(list, 0), "id")), booking);
    t_resp_free(&r);

    t_request(s, "GET", t_path_of(p, sizeof p, "/api/v1/admin/events/%llu/stats", ev),
              s->admin_token, NULL, NULL, 0, &r);
    EXPECT(r, 200, NULL);
    json_t *z1 = json_array_get(json_object_get(r.json, "zones"), 0);
    assert_int_equal(json_integer_value(json_object_get(z1, "sold")), 2);
    assert_int_equal(json_integer_value(json_object_get(z1, "available")), 98);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(r.json, "bookings"), "confirmed")), 1);
    assert_true(J_INT(r, "admitted") >= 1);
    t_resp_free(&r);

    t_request(s, "GET", t_path_of(p, sizeof p, "/api/v1/events/%llu", ev), NULL, NULL, NULL, 0, &r);
    EXPECT(r, 200, NULL);
    z1 = json_array_get(json_object_get(r.json, "zones"), 0);
    assert_int_equal(json_integer_value(json_object_get(z1, "available")), 98);
    t_resp_free(&r);
}

/* Reserves one seat in a fresh event without a pass; returns the booking. */
static uint64_t reserve_one(struct t_server *s, const char *token, uint64_t ev, long want)
{
    struct t_resp r;
    t_json(s, "POST", "/api/v1/bookings/reserve", token,
           json_pack("{s:I, s:i, s:i}", "event_id", (json_int_t)ev, "zone_id", 1, "quantity", 1),
           NULL, &r);
    EXPECT(r, want, NULL);
    uint64_t id = J_INT(r, "id");
    t_resp_free(&r);
    return id;
}

/* Starts paying; pi gets "intent-id client-secret" (what confirm needs). */
static void pay_start(struct t_server *s, const char *token, uint64_t booking, char *pi, size_t cap)
{
    struct t_resp r;
    t_json(s, "POST", "/api/v1/payments", token,
           json_pack("{s:I}", "booking_id", (json_int_t)booking), NULL, &r);
    EXPECT(r, 201, NULL);
    snprintf(pi, cap, "%s %s", J_STR(r, "provider_payment_id"), J_STR(r, "client_secret"));
    t_resp_free(&r);
}

static void confirm(struct t_server *s, const char *pi, const char *pm, long want,
                    const char *want_status)
{
    char cp[160], id[64];
    struct t_resp r;
    const char *secret = strchr(pi, ' ');
    assert_non_null(secret);
    snprintf(id, sizeof id, "%.*s", (int)(secret - pi), pi);
    snprintf(cp, sizeof cp, "/test-provider/v1/payment_intents/%s/confirm", id);
    t_json(s, "POST", cp, NULL,
           json_pack("{s:s, s:s}", "payment_method", pm, "client_secret", secret + 1), NULL, &r);
    EXPECT(r, want, NULL);
    if (want_status != NULL) {
        assert_string_equal(J_STR(r, "status"), want_status);
    }
    t_resp_free(&r);
}

static void expect_booking(struct t_server *s, const char *token, uint64_t booking,
                           const char *status)
{
    char p[96];
    struct t_resp r;
    t_request(s, "GET", t_path_of(p, sizeof p, "/api/v1/bookings/%llu", booking), token, NULL, NULL,
              0, &r);
    EXPECT(r, 200, NULL);
    assert_string_equal(J_STR(r, "status"), status);
    t_resp_free(&r);
}

static void test_declines_then_success(void **state)
{
    struct t_server *s = &((struct fx *)*state)->srv;
    uint64_t ev = t_event(s, json_pack("{s:b}", "requires_pass", 0));
    char token[1024];
    t_buyer(s, "decline", token, sizeof token);
    uint64_t b = reserve_one(s, token, ev, 201);
    char pi[192];
    pay_start(s, token, b, pi, sizeof pi);
    confirm(s, pi, "pm_card_chargeDeclined", 200, "requires_payment_method");
    expect_booking(s, token, b, "held");
    confirm(s, pi, "pm_card_chargeDeclinedInsufficientFunds", 200, "requires_payment_method");
    expect_booking(s, token, b, "held");
    /* The buyer pays again: the same payment and intent, open again. */
    char pi2[192];
    pay_start(s, token, b, pi2, sizeof pi2);
    assert_string_equal(pi2, pi);
    confirm(s, pi2, "pm_card_visa", 200, "succeeded");
    expect_booking(s, token, b, "confirmed");
    /* A succeeded intent cannot be confirmed again. */
    confirm(s, pi2, "pm_card_visa", 409, NULL);
    /* Paying for a confirmed booking is refused. */
    struct t_resp r;
    t_json(s, "POST", "/api/v1/payments", token, json_pack("{s:I}", "booking_id", (json_int_t)b),
           NULL, &r);
    EXPECT(r, 409, "BOOKING_NOT_HELD");
    t_resp_free(&r);
}

static void test_cancel_returns_seats(void **state)
{
    struct t_server *s = &((struct fx *)*state)->srv;
    uint64_t ev = t_event(s, json_pack("{s:b}", "requires_pass", 0));
    char token[1024];
    t_buyer(s, "cancel", token, sizeof token);
    uint64_t b = reserve_one(s, token, ev, 201);
    char p[96];
    struct t_resp r;
    t_request(s, "POST", t_path_of(p, sizeof p, "/api/v1/bookings/%llu/cancel", b), token, NULL,
              NULL, 0, &r);
    EXPECT(r, 200, NULL);
    assert_string_equal(J_STR(r, "status"), "cancelled");
    t_resp_free(&r);
    t_request(s, "POST", p, token, NULL, NULL, 0, &r);
    EXPECT(r, 409, "BOOKING_NOT_HELD");
    t_resp_free(&r);
    t_request(s, "GET", t_path_of(p, sizeof p, "/api/v1/events/%llu", ev), NULL, NULL, NULL, 0, &r);
    json_t *z1 = json_array_get(json_object_get(r.json, "zones"), 0);
    assert_int_equal(json_integer_value(json_object_get(z1, "available")), 100);
    t_resp_free(&r);
}

static void test_late_payment_is_refunded(void **state)
{
    struct t_server *s = &((struct fx *)*state)->srv;
    uint64_t ev = t_event(s, json_pack("{s:b, s:i}", "requires_pass", 0, "hold_ttl_s", 1));
    char token[1024];
    t_buyer(s, "late", token, sizeof token);
    uint64_t b = reserve_one(s, token, ev, 201);
    char pi[192];
    pay_start(s, token, b, pi, sizeof pi);
    t_sleep_ms(1400); /* the hold expires; the sweeper returns its seats */
    expect_booking(s, token, b, "expired");
    struct t_resp r;
    t_json(s, "POST", "/api/v1/payments", token, json_pack("{s:I}", "booking_id", (json_int_t)b),
           NULL, &r);
    EXPECT(r, 409, "BOOKING_NOT_HELD");
    t_resp_free(&r);
    /* The card is charged anyway: the saga refunds it. */
    confirm(s, pi, "pm_card_visa", 200, "succeeded");
    char p[96];
    bool refunded = false;
    for (int i = 0; i < 500 && !refunded; i++) {
        t_request(s, "GET", t_path_of(p, sizeof p, "/api/v1/bookings/%llu", b), token, NULL, NULL, 0,
                  &r);
        refunded = r.status == 200 && strcmp(J_STR(r, "status"), "refunded") == 0;
        t_resp_free(&r);
        if (!refunded) {
            t_sleep_ms(20);
        }
    }
    assert_true(refunded);
}

static void test_hold_expired_payment_gone(void **state)
{
    struct t_server *s = &((struct fx *)*state)->srv;
    uint64_t ev = t_event(s, json_pack("{s:b, s:i}", "requires_pass", 0, "hold_ttl_s", 1));
    char token[1024];
    t_buyer(s, "expired", token, sizeof token);
    uint64_t b = reserve_one(s, token, ev, 201);
    t_sleep_ms(1100);
    /* Past its deadline, whether or not swept yet: expired (410) or no longer held (409). */
    struct t_resp r;
    t_json(s, "POST", "/api/v1/payments", token, json_pack("{s:I}", "booking_id", (json_int_t)b),
           NULL, &r);
    assert_true(r.status == 410 || r.status == 409);
    t_resp_free(&r);
}

static void test_queue_leave_and_prequeue(void **state)
{
    struct t_server *s = &((struct fx *)*state)->srv;
    char p[96];
    /* An event whose sale opens in 3 s: arrivals wait in the pre-queue. */
    time_t opens = time(NULL) + 3;
    struct tm tm;
    gmtime_r(&opens, &tm);
    char when[40];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    uint64_t ev = t_event(s, json_pack("{s:s, s:b}", "sale_opens_at", when, "requires_pass", 0));
    char a[1024];
    char b[1024];
    t_buyer(s, "preq-a", a, sizeof a);
    t_buyer(s, "preq-b", b, sizeof b);
    struct t_resp r;
    t_json(s, "POST", "/api/v1/queue/join", a, json_pack("{s:I}", "event_id", (json_int_t)ev),
           NULL, &r);
    EXPECT(r, 200, NULL);
    assert_string_equal(J_STR(r, "status"), "prequeue");
    assert_true(J_INT(r, "estimated_wait_s") >= 1);
    t_resp_free(&r);
    /* Joining again keeps the place. */
    t_json(s, "POST", "/api/v1/queue/join", a, json_pack("{s:I}", "event_id", (json_int_t)ev),
           NULL, &r);
    EXPECT(r, 200, NULL);
    assert_int_equal(J_INT(r, "queue_length"), 1);
    t_resp_free(&r);
    /* Before the opening nothing can be reserved. */
    t_json(s, "POST", "/api/v1/bookings/reserve", b,
           json_pack("{s:I, s:i, s:i}", "event_id", (json_int_t)ev, "zone_id", 1, "quantity", 1),
           NULL, &r);
    EXPECT(r, 409, "SALE_NOT_OPEN");
    t_resp_free(&r);
    /* Leaving: 204, then the position says "left", a second leave is 404. */
    const char *hs[] = {"Content-Type: application/json", NULL};
    char body[64];
    snprintf(body, sizeof body, "{\"event_id\":%llu}", (unsigned long long)ev);
    t_request(s, "DELETE", "/api/v1/queue/leave", a, hs, body, strlen(body), &r);
    EXPECT(r, 204, NULL);
    t_resp_free(&r);
    t_request(s, "GET", t_path_of(p, sizeof p, "/api/v1/queue/position/%llu", ev), a, NULL, NULL, 0,
              &r);
    EXPECT(r, 200, NULL);
    assert_string_equal(J_STR(r, "status"), "left");
    t_resp_free(&r);
    t_request(s, "DELETE", "/api/v1/queue/leave", a, hs, body, strlen(body), &r);
    EXPECT(r, 404, "NOT_IN_QUEUE");
    t_resp_free(&r);
    t_request(s, "GET", t_path_of(p, sizeof p, "/api/v1/queue/position/%llu", ev), b, NULL, NULL, 0,
              &r);
    EXPECT(r, 404, "NOT_IN_QUEUE");
    t_resp_free(&r);
}

static void test_stream_keepalive_and_end(void **state)
{
    struct t_server *s = &((struct fx *)*state)->srv;
    char p[128];
    /* Before the opening the stream only waits: keep-alive comments flow. */
    time_t opens = time(NULL) + 30;
    struct tm tm;
    gmtime_r(&opens, &tm);
    char when[40];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    uint64_t ev = t_event(s, json_pack("{s:s}", "sale_opens_at", when));
    char token[1024];
    t_buyer(s, "ka", token, sizeof token);
    struct t_resp r;
    t_json(s, "POST", "/api/v1/queue/join", token, json_pack("{s:I}", "event_id", (json_int_t)ev),
           NULL, &r);
    EXPECT(r, 200, NULL);
    t_resp_free(&r);
    snprintf(p, sizeof p, "/api/v1/queue/position/%llu/stream", (unsigned long long)ev);
    char *text = t_sse(s, p, token, ": keep-alive", 5000);
    assert_non_null(strstr(text, "\"status\":\"prequeue\""));
    assert_non_null(strstr(text, ": keep-alive\n"));
    free(text);
    /* The token may come in the query string (EventSource cannot set headers). */
    char q[1400];
    snprintf(q, sizeof q, "%s?access_token=%s", p, token);
    text = t_sse(s, q, NULL, "position", 5000);
    assert_non_null(strstr(text, "event: position"));
    free(text);
    /* A user who left gets one position ("left") and the end of the stream. */
    const char *hs[] = {"Content-Type: application/json", NULL};
    char body[64];
    snprintf(body, sizeof body, "{\"event_id\":%llu}", (unsigned long long)ev);
    t_request(s, "DELETE", "/api/v1/queue/leave", token, hs, body, strlen(body), &r);
    EXPECT(r, 204, NULL);
    t_resp_free(&r);
    text = t_sse(s, p, token, "pass", 5000);
    assert_non_null(strstr(text, "\"status\":\"left\""));
    assert_null(strstr(text, "event: pass"));
    free(text);
}

/* Leaves B's queue after a moment, while C's stream is open. */
struct later_leave {
    struct t_server *s;
    const char *token;
    uint64_t event_id;
};

static void *leave_later(void *arg)
{
    struct later_leave *l = arg;
    t_sleep_ms(400);
    const char *hs[] = {"Content-Type: application/json", NULL};
    char body[64];
    snprintf(body, sizeof body, "{\"event_id\":%llu}", (unsigned long long)l->event_id);
    struct t_resp r;
    t_request(l->s, "DELETE", "/api/v1/queue/leave", l->token, hs, body, strlen(body), &r);
    t_resp_free(&r);
    return NULL;
}

/* An open stream follows its position as the line moves: the hub's refresh
 * (queue_positions), not the pass, carries it. One pass at a time: A holds
 * it, B waits 1st, C 2nd; B leaves while C's stream is open, and C's stream
 * then says position 1. */
static void test_stream_follows_the_line(void **state)
{
    struct t_server *s = &((struct fx *)*state)->srv;
    uint64_t ev = t_event(s, json_pack("{s:{s:i, s:i, s:i}}", "queue", "max_active", 1,
                                       "admit_per_tick", 1, "pass_ttl_s", 120));
    char a[1024], b[1024], c[1024], pass[1024];
    t_buyer(s, "line-a", a, sizeof a);
    t_buyer(s, "line-b", b, sizeof b);
    t_buyer(s, "line-c", c, sizeof c);
    assert_true(t_wait_pass(s, a, ev, pass, sizeof pass, 5000));
    struct t_resp r;
    const char *tokens[] = {b, c};
    for (int i = 0; i < 2; i++) {
        t_json(s, "POST", "/api/v1/queue/join", tokens[i],
               json_pack("{s:I}", "event_id", (json_int_t)ev), NULL, &r);
        EXPECT(r, 200, NULL);
        assert_int_equal(J_INT(r, "position"), i + 1);
        t_resp_free(&r);
    }
    struct later_leave l = {s, b, ev};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, leave_later, &l), 0);
    char p[128];
    char *text = t_sse(s, t_path_of(p, sizeof p, "/api/v1/queue/position/%llu/stream", ev), c,
                       "\"position\":1,", 5000);
    pthread_join(th, NULL);
    assert_non_null(strstr(text, "\"position\":2,"));
    if (strstr(text, "\"position\":1,") == NULL) {
        fprintf(stderr, "stream said: %s\n", text);
    }
    assert_non_null(strstr(text, "\"position\":1,"));
    free(text);
}

/* ---- position frames are coalesced, the pass is not ---- */

#define COALESCE_POSITION_MS 5000 /* the server's --sse-position-ms here */
#define COALESCE_AHEAD 30         /* buyers ahead; one admitted a tick (100 ms) */
#define COALESCE_FRAMES_MAX 256

struct frame {
    int64_t wall_ms;  /* when the client had it whole */
    char event[16];
    char data[512];
};

struct frames {
    char buf[8192];
    size_t len;
    struct frame f[COALESCE_FRAMES_MAX];
    int n;
    bool passed;
};

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Cuts the complete frames ("...\n\n") off the front of fr->buf. */
static void frames_take(struct frames *fr)
{
    char *end;
    while ((end = strstr(fr->buf, "\n\n")) != NULL) {
        *end = '\0';
        const char *ev = strstr(fr->buf, "event: ");
        const char *data = strstr(fr->buf, "data: ");
        if (ev != NULL && data != NULL && fr->n < COALESCE_FRAMES_MAX) {
            struct frame *f = &fr->f[fr->n++];
            f->wall_ms = wall_ms();
            snprintf(f->event, sizeof f->event, "%.*s", (int)strcspn(ev + 7, "\n"), ev + 7);
            snprintf(f->data, sizeof f->data, "%.*s", (int)strcspn(data + 6, "\n"), data + 6);
            fr->passed |= strcmp(f->event, "pass") == 0;
        }
        size_t used = (size_t)(end + 2 - fr->buf);
        memmove(fr->buf, end + 2, fr->len - used + 1);
        fr->len -= used;
    }
}

static size_t on_frames(char *ptr, size_t size, size_t n, void *ud)
{
    struct frames *fr = ud;
    size_t add = size * n;
    if (fr->len + add >= sizeof fr->buf) {
        return 0;
    }
    memcpy(fr->buf + fr->len, ptr, add);
    fr->len += add;
    fr->buf[fr->len] = '\0';
    frames_take(fr);
    return fr->passed ? 0 : add; /* the pass ends the reading */
}

static void read_frames(struct t_server *s, const char *path, const char *token, struct frames *fr)
{
    CURL *c = curl_easy_init();
    char url[1024], auth[1200];
    snprintf(url, sizeof url, "%s%s", s->base, path);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
    struct curl_slist *h = curl_slist_append(NULL, auth);
    h = curl_slist_append(h, "Accept: text/event-stream");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_frames);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, fr);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 20000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_perform(c);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
}

static json_int_t data_int(const struct frame *f, const char *key)
{
    json_t *j = json_loads(f->data, 0, NULL);
    assert_non_null(j);
    json_int_t v = json_integer_value(json_object_get(j, key));
    json_decref(j);
    return v;
}

static bool data_says(const struct frame *f, const char *status)
{
    char want[48];
    snprintf(want, sizeof want, "\"status\":\"%s\"", status);
    return strstr(f->data, want) != NULL;
}

/* The pass frame's admission instant on the server's clock: expires_at - pass_ttl. */
static int64_t admitted_wall_ms(const struct frame *f, int64_t pass_ttl_ms)
{
    json_t *j = json_loads(f->data, 0, NULL);
    assert_non_null(j);
    const char *at = json_string_value(json_object_get(j, "expires_at"));
    assert_non_null(at);
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    int ms = 0;
    assert_int_equal(sscanf(at, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &tm.tm_year, &tm.tm_mon,
                            &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms),
                     7);
    json_decref(j);
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm) * 1000 + ms - pass_ttl_ms;
}

static int setup_coalesced(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    *state = f;
    if (t_external() || t_redis_cluster()) {
        /* The test skips: no second server (on a cluster it would empty
         * the suite's own server's Redis, which later tests still use). */
        return 0;
    }
    char ms[16];
    snprintf(ms, sizeof ms, "%d", COALESCE_POSITION_MS);
    t_server_start(&f->srv, (const char *const[]){"--sse-position-ms", ms, "--tick-ms", "100",
                                                  NULL});
    return 0;
}

/* The line moves every tick (one admission a tick, COALESCE_AHEAD ahead):
 * the stream gets its first position at once, then at most one waiting
 * position per --sse-position-ms (none here: the wait is shorter), and the
 * pass within a second of the admission (it would wait up to 5 s if it
 * were coalesced like a position). */
static void test_stream_positions_coalesced_pass_at_once(void **state)
{
    if (t_external() || t_redis_cluster()) {
        /* External: the server's --sse-position-ms is not ours to set. A
         * cluster: see setup_coalesced (70-dist-http runs it on Redis). */
        skip();
    }
    struct t_server *s = &((struct fx *)*state)->srv;
    uint64_t ev = t_event(s, json_pack("{s:{s:i, s:i, s:i}}", "queue", "max_active", 100,
                                       "admit_per_tick", 1, "pass_ttl_s", 120));
    static char tokens[COALESCE_AHEAD + 1][1024];
    for (int i = 0; i <= COALESCE_AHEAD; i++) {
        char tag[32];
        snprintf(tag, sizeof tag, "co-%d", i);
        t_buyer(s, tag, tokens[i], sizeof tokens[i]);
    }
    for (int i = 0; i <= COALESCE_AHEAD; i++) {
        struct t_resp r;
        t_json(s, "POST", "/api/v1/queue/join", tokens[i],
               json_pack("{s:I}", "event_id", (json_int_t)ev), NULL, &r);
        EXPECT(r, 200, NULL);
        t_resp_free(&r);
    }
    char p[128];
    static struct frames fr;
    memset(&fr, 0, sizeof fr);
    read_frames(s, t_path_of(p, sizeof p, "/api/v1/queue/position/%llu/stream", ev),
                tokens[COALESCE_AHEAD], &fr);
    for (int i = 0; i < fr.n; i++) {
        fprintf(stderr, "  +%5lld ms %s %s\n", (long long)(fr.f[i].wall_ms - fr.f[0].wall_ms),
                fr.f[i].event, fr.f[i].data);
    }
    assert_true(fr.passed);
    assert_true(fr.n >= 3); /* the first position, the admitted one, the pass */
    assert_true(data_says(&fr.f[0], "waiting"));
    /* The line did move under the stream: without coalescing every tick's
     * position would have gone. */
    json_int_t first_position = data_int(&fr.f[0], "position");
    assert_true(first_position >= 5);
    int waiting = 0;
    for (int i = 0; i < fr.n; i++) {
        waiting += strcmp(fr.f[i].event, "position") == 0 && data_says(&fr.f[i], "waiting");
    }
    const struct frame *pass = &fr.f[fr.n - 1];
    int64_t span_ms = pass->wall_ms - fr.f[0].wall_ms;
    assert_true(waiting <= 1 + (int)(span_ms / COALESCE_POSITION_MS));
    /* The admission's own position goes with the pass, at once. */
    assert_string_equal(pass->event, "pass");
    assert_string_equal(fr.f[fr.n - 2].event, "position");
    assert_true(data_says(&fr.f[fr.n - 2], "admitted"));
    int64_t late_ms = pass->wall_ms - admitted_wall_ms(pass, 120000);
    fprintf(stderr, "  %d waiting positions over %lld ms (first position %lld); pass %lld ms "
                    "after the admission\n",
            waiting, (long long)span_ms, (long long)first_position, (long long)late_ms);
    assert_true(late_ms < 1000);
}

static void test_roles_and_events_list(void **state)
{
    struct t_server *s = &((struct fx *)*state)->srv;
    char token[1024];
    char email[128];
    t_email("org", email, sizeof email);
    struct t_resp r;
    t_json(s, "POST", "/api/v1/auth/register", NULL,
           json_pack("{s:s, s:s, s:s}", "email", email, "password", T_PASSWORD, "name", "Org"),
           NULL, &r);
    EXPECT(r, 201, NULL);
    uint64_t uid = J_INT(r, "user_id");
    t_resp_free(&r);
    t_json(s, "POST", "/api/v1/auth/login", NULL,
           json_pack("{s:s, s:s}", "email", email, "password", T_PASSWORD), NULL, &r);
    snprintf(token, sizeof token, "%s", J_STR(r, "access_token"));
    t_resp_free(&r);
    json_t *spec = json_pack("{s:s, s:[{s:s, s:i, s:i, s:s}]}", "name", "Org Night", "zones",
                             "name", "GA", "capacity", 10, "price_minor", 100, "currency", "USD");
    t_json(s, "POST", "/api/v1/events", token, json_incref(spec), NULL, &r);
    EXPECT(r, 403, "FORBIDDEN");
    t_resp_free(&r);
    char p[96];
    t_json(s, "POST", t_path_of(p, sizeof p, "/api/v1/admin/users/%llu/role", uid), token,
           json_pack("{s:s}", "role", "admin"), NULL, &r);
    EXPECT(r, 403, "FORBIDDEN");
    t_resp_free(&r);
    t_json(s, "POST", p, s->admin_token, json_pack("{s:s}", "role", "organizer"), NULL, &r);
    EXPECT(r, 200, NULL);
    assert_string_equal(J_STR(r, "role"), "organizer");
    t_resp_free(&r);
    /* Roles travel in the token: log in again to use the new one. */
    t_json(s, "POST", "/api/v1/auth/login", NULL,
           json_pack("{s:s, s:s}", "email", email, "password", T_PASSWORD), NULL, &r);
    snprintf(token, sizeof token, "%s", J_STR(r, "access_token"));
    t_resp_free(&r);
    t_json(s, "POST", "/api/v1/events", token, spec, NULL, &r);
    EXPECT(r, 201, NULL);
    uint64_t ev = J_INT(r, "id");
    /* Defaults fill what the organizer left out. */
    assert_true(json_is_true(json_object_get(r.json, "requires_pass")));
    assert_int_equal(J_INT(r, "per_user_limit"), 4);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(r.json, "queue"),
                                                        "max_active")),
                     100);
    t_resp_free(&r);

    t_request(s, "GET", "/api/v1/events", NULL, NULL, NULL, 0, &r);
    EXPECT(r, 200, NULL);
    json_t *events = json_object_get(r.json, "events");
    bool found = false;
    for (size_t i = 0; i < json_array_size(events); i++) {
        found |= json_integer_value(json_object_get(json_array_get(events, i), "id")) ==
                 (json_int_t)ev;
    }
    assert_true(found);
    t_resp_free(&r);
    t_request(s, "GET", t_path_of(p, sizeof p, "/api/v1/events?after_id=%llu", ev), NULL, NULL, NULL,
              0, &r);
    EXPECT(r, 200, NULL);
    assert_int_equal(json_array_size(json_object_get(r.json, "events")), 0);
    t_resp_free(&r);
}

int main(int argc, char **argv)
{
    t_init(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_health_ready_openapi_metrics),
        cmocka_unit_test(test_register_login_me),
        cmocka_unit_test(test_buyer_flow_with_stream),
        cmocka_unit_test(test_declines_then_success),
        cmocka_unit_test(test_cancel_returns_seats),
        cmocka_unit_test(test_late_payment_is_refunded),
        cmocka_unit_test(test_hold_expired_payment_gone),
        cmocka_unit_test(test_queue_leave_and_prequeue),
        cmocka_unit_test(test_stream_keepalive_and_end),
        cmocka_unit_test(test_stream_follows_the_line),
        cmocka_unit_test_setup_teardown(test_stream_positions_coalesced_pass_at_once,
                                        setup_coalesced, teardown),
        cmocka_unit_test(test_roles_and_events_list),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
