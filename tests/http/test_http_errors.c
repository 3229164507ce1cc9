/*
 * test_http_errors.c -- every way a request can be refused, through the
 * real binary: unknown routes and wrong methods, content types, malformed
 * and oversized bodies and headers, forged, expired and wrongly signed
 * tokens, every queue-pass failure, the inventory's refusals, idempotency
 * conflicts, bad webhooks, the test provider's refusals, rate limits.
 * Each answer must carry the right status and error code, and none of them
 * may be a 5xx.
 *
 * Usage: test_http_errors BINARY [BASE_URL]   (see client.h)
 */
#define _DEFAULT_SOURCE

#include <inttypes.h>
#include <openssl/hmac.h>
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
    t_server_start(&f->srv, (const char *const[]){"--rate-limit-user", "0", "--rate-limit-ip",
                                                  "0", "--body-max", "4096", NULL});
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    int rc = t_server_stop(&f->srv);
    t_server_cleanup(&f->srv);
    free(f);
    return rc == 0 ? 0 : -1;
}

static struct t_server *srv(void **state)
{
    return &((struct fx *)*state)->srv;
}

static void post_raw_json(struct t_server *s, const char *path, const char *token,
                          const char *body, struct t_resp *r)
{
    const char *hs[] = {"Content-Type: application/json", NULL};
    t_request(s, "POST", path, token, hs, body, strlen(body), r);
}

static void test_routes_and_methods(void **state)
{
    struct t_server *s = srv(state);
    struct t_resp r;
    t_request(s, "GET", "/api/v1/nothing-here", NULL, NULL, NULL, 0, &r);
    EXPECT(r, 404, "NOT_FOUND");
    t_resp_free(&r);
    t_request(s, "GET", "/api/v1/events/not-a-number", NULL, NULL, NULL, 0, &r);
    EXPECT(r, 404, "NOT_FOUND");
    t_resp_free(&r);
    t_request(s, "GET", "/api/v1/events/99999", NULL, NULL, NULL, 0, &r);
    EXPECT(r, 404, "NOT_FOUND");
    t_resp_free(&r);
    t_request(s, "PUT", "/api/v1/events", NULL, NULL, NULL, 0, &r);
    EXPECT(r, 405, "METHOD_NOT_ALLOWED");
    assert_non_null(strstr(r.allow, "GET"));
    assert_non_null(strstr(r.allow, "POST"));
    t_resp_free(&r);
    t_request(s, "GET", "/api/v1/bookings/reserve", NULL, NULL, NULL, 0, &r);
    EXPECT(r, 405, "METHOD_NOT_ALLOWED");
    assert_string_equal(r.allow, "POST");
    t_resp_free(&r);
    t_request(s, "DELETE", "/healthz", NULL, NULL, NULL, 0, &r);
    EXPECT(r, 405, "METHOD_NOT_ALLOWED");
    t_resp_free(&r);
    /* after_id reads as 2^64-1 here (strtoull saturates); listing after it
     * once wrapped around to event 0 and crashed the server. */
    static const char *const past_all[] = {"/api/v1/events?after_id=18446744073709551615",
                                           "/api/v1/events?after_id=99999999999999999999999"};
    for (size_t i = 0; i < sizeof past_all / sizeof past_all[0]; i++) {
        t_request(s, "GET", past_all[i], NULL, NULL, NULL, 0, &r);
        assert_int_equal(r.status, 200);
        assert_non_null(strstr(r.body, "\"events\":[]"));
        t_resp_free(&r);
    }
}

static void test_content_types(void **state)
{
    struct t_server *s = srv(state);
    struct t_resp r;
    const char *body = "{\"email\":\"a@b.c\",\"password\":\"password1\",\"name\":\"x\"}";
    const char *text[] = {"Content-Type: text/plain", NULL};
    t_request(s, "POST", "/api/v1/auth/register", NULL, text, body, strlen(body), &r);
    EXPECT(r, 415, "UNSUPPORTED_MEDIA_TYPE");
    t_resp_free(&r);
    const char *form[] = {"Content-Type: application/x-www-form-urlencoded", NULL};
    t_request(s, "POST", "/api/v1/auth/login", NULL, form, "email=a", 7, &r);
    EXPECT(r, 415, "UNSUPPORTED_MEDIA_TYPE");
    t_resp_free(&r);
    const char *none[] = {"Content-Type:", NULL};
    t_request(s, "POST", "/api/v1/auth/login", NULL, none, body, strlen(body), &r);
    EXPECT(r, 415, "UNSUPPORTED_MEDIA_TYPE");
    t_resp_free(&r);
    /* Parameters after the media type are fine. */
    const char *utf8[] = {"Content-Type: application/json; charset=utf-8", NULL};
    t_request(s, "POST", "/api/v1/auth/login", NULL, utf8, "{}", 2, &r);
    EXPECT(r, 400, "INVALID_REQUEST");
    t_resp_free(&r);
}

static void test_malformed_json(void **state)
{
    struct t_server *s = srv(state);
    struct t_resp r;
    static const char *const bad[] = {
        "{",
        "",
        "[]",
        "\"text\"",
        "42",
        "{\"email\":\"a@b.c\",\"email\":\"d@e.f\",\"password\":\"x\"}", /* duplicate key */
        "{\"email\":\"a@b.c\",\"password\":\"password1\"} trailing",
        "{\"email\":\"a@b.c\",\"password\":\"password1\",\"name\":\"\\u0000\"}",
        "{\"email\":5,\"password\":\"password1\",\"name\":\"x\"}",
        "{\"email\":\"no-at-sign\",\"password\":\"password1\",\"name\":\"x\"}",
        "{\"email\":\"a@b.c\",\"password\":\"short\",\"name\":\"x\"}",
        "{\"email\":\"a@b.c\",\"password\":\"password1\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        post_raw_json(s, "/api/v1/auth/register", NULL, bad[i], &r);
        if (r.status != 400) {
            fprintf(stderr, "body #%zu: %s\n", i, bad[i]);
        }
        EXPECT(r, 400, "INVALID_REQUEST");
        t_resp_free(&r);
    }
    /* Nesting deeper than the bound is refused before it is parsed. */
    char deep[256] = "{\"a\":";
    for (int i = 0; i < 40; i++) {
        strcat(deep, "[");
    }
    for (int i = 0; i < 40; i++) {
        strcat(deep, "]");
    }
    strcat(deep, "}");
    post_raw_json(s, "/api/v1/auth/login", NULL, deep, &r);
    EXPECT(r, 400, "INVALID_REQUEST");
    t_resp_free(&r);
}

static void test_bad_fields(void **state)
{
    struct t_server *s = srv(state);
    char token[1024];
    t_buyer(s, "fields", token, sizeof token);
    struct t_resp r;
    static const char *const bad[] = {
        "{\"event_id\":\"1\",\"zone_id\":1,\"quantity\":1}",
        "{\"event_id\":1,\"zone_id\":1,\"quantity\":0}",
        "{\"event_id\":1,\"zone_id\":1,\"quantity\":17}",
        "{\"event_id\":1,\"zone_id\":0,\"quantity\":1}",
        "{\"event_id\":-4,\"zone_id\":1,\"quantity\":1}",
        "{\"event_id\":1.5,\"zone_id\":1,\"quantity\":1}",
        "{\"zone_id\":1,\"quantity\":1}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        post_raw_json(s, "/api/v1/bookings/reserve", token, bad[i], &r);
        EXPECT(r, 400, "INVALID_REQUEST");
        t_resp_free(&r);
    }
    const char *hs[] = {"Idempotency-Key: ", NULL};
    t_json(s, "POST", "/api/v1/bookings/reserve", token,
           json_pack("{s:i, s:i, s:i}", "event_id", 1, "zone_id", 1, "quantity", 1), hs, &r);
    /* An empty key header is either dropped by the client or refused. */
    assert_true(r.status == 400 || r.status == 403 || r.status == 404 || r.status == 201 ||
                r.status == 409);
    t_resp_free(&r);
    /* Event specs: no zones, too many zones, a bad currency, a bad time. */
    static const char *const specs[] = {
        "{\"name\":\"x\",\"zones\":[]}",
        "{\"name\":\"x\",\"zones\":[{\"name\":\"a\",\"capacity\":1,\"price_minor\":1,\"currency\":\"eur\"}]}",
        "{\"name\":\"x\",\"zones\":[{\"name\":\"a\",\"capacity\":0,\"price_minor\":1,\"currency\":\"EUR\"}]}",
        "{\"name\":\"x\",\"sale_opens_at\":\"tomorrow\",\"zones\":[{\"name\":\"a\",\"capacity\":1,"
        "\"price_minor\":1,\"currency\":\"EUR\"}]}",
        "{\"zones\":[{\"name\":\"a\",\"capacity\":1,\"price_minor\":1,\"currency\":\"EUR\"}]}",
        "{\"name\":\"x\",\"queue\":{\"max_active\":0},\"zones\":[{\"name\":\"a\",\"capacity\":1,"
        "\"price_minor\":1,\"currency\":\"EUR\"}]}",
    };
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
        post_raw_json(s, "/api/v1/events", s->admin_token, specs[i], &r);
        EXPECT(r, 400, "INVALID_REQUEST");
        t_resp_free(&r);
    }
}

static void test_oversized(void **state)
{
    struct t_server *s = srv(state);
    struct t_resp r;
    size_t n = 8192; /* the suite's server takes 4096 bytes */
    char *big = malloc(n + 1);
    memset(big, ' ', n);
    big[0] = '{';
    big[n - 1] = '}';
    big[n] = '\0';
    post_raw_json(s, "/api/v1/auth/login", NULL, big, &r);
    EXPECT(r, 413, "PAYLOAD_TOO_LARGE");
    t_resp_free(&r);
    free(big);

    /* Without a Content-Length: chunks past the limit. */
    char req[16384];
    int off = snprintf(req, sizeof req,
                       "POST /api/v1/auth/login HTTP/1.1\r\nHost: t\r\nContent-Type: "
                       "application/json\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < 6; i++) {
        off += snprintf(req + off, sizeof req - (size_t)off, "800\r\n");
        memset(req + off, ' ', 0x800);
        off += 0x800;
        off += snprintf(req + off, sizeof req - (size_t)off, "\r\n");
    }
    off += snprintf(req + off, sizeof req - (size_t)off, "0\r\n\r\n");
    assert_int_equal(t_raw(s, req, (size_t)off), 413);

    /* A header section larger than the connection's buffer. */
    char *hdr = malloc(40000);
    int h = snprintf(hdr, 40000, "GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: ");
    memset(hdr + h, 'a', 30000);
    h += 30000;
    h += snprintf(hdr + h, 40000 - (size_t)h, "\r\n\r\n");
    int st = t_raw(s, hdr, (size_t)h);
    free(hdr);
    assert_true(st == 431 || st == 413);
    /* And the server is still fine. */
    t_request(s, "GET", "/healthz", NULL, NULL, NULL, 0, &r);
    EXPECT(r, 200, NULL);
    t_resp_free(&r);
}

static void test_tokens(void **state)
{
    struct t_server *s = srv(state);
    struct t_resp r;
    t_request(s, "GET", "/api/v1/auth/me", NULL, NULL, NULL, 0, &r);
    EXPECT(r, 401, "UNAUTHORIZED");
    t_resp_free(&r);
    t_request(s, "GET", "/api/v1/auth/me", "not.a.jwt", NULL, NULL, 0, &r);
    EXPECT(r, 401, "UNAUTHORIZED");
    t_resp_free(&r);
    const char *basic[] = {"Authorization: Basic YWRtaW46YWRtaW4=", NULL};
    t_request(s, "GET", "/api/v1/auth/me", NULL, basic, NULL, 0, &r);
    EXPECT(r, 401, "UNAUTHORIZED");
    t_resp_free(&r);

    char token[1024];
    uint64_t uid = t_buyer(s, "tok", token, sizeof token);
    /* A customer on an organizer's and an admin's route. */
    t_request(s, "GET", "/api/v1/admin/events/1/stats", token, NULL, NULL, 0, &r);
    EXPECT(r, 403, "FORBIDDEN");
    t_resp_free(&r);
    /* A tampered payload (role raised) breaks the signature. */
    char tampered[1024];
    snprintf(tampered, sizeof tampered, "%s", token);
    char *dot = strchr(tampered, '.');
    assert_non_null(dot);
    dot[3] = dot[3] == 'A' ? 'B' : 'A';
    t_request(s, "GET", "/api/v1/auth/me", tampered, NULL, NULL, 0, &r);
    EXPECT(r, 401, "UNAUTHORIZED");
    t_resp_free(&r);

    if (s->jwt_secret == NULL) {
        skip(); /* an external deployment's secret is unknown */
    }
    char sub[24];
    snprintf(sub, sizeof sub, "%" PRIu64, uid);
    struct {
        const char *secret;
        const char *alg;
        const char *role;
        long exp;
        const char *iss;
        long want;
    } cases[] = {
        {s->jwt_secret, "HS256", "customer", 600, "bookingrush", 200}, /* the control */
        {"another-secret", "HS256", "customer", 600, "bookingrush", 401},
        {s->jwt_secret, "HS256", "customer", -5, "bookingrush", 401},  /* expired */
        {s->jwt_secret, "HS512", "customer", 600, "bookingrush", 401}, /* other algorithm */
        {s->jwt_secret, "none", "customer", 600, "bookingrush", 401},  /* unsigned */
        {s->jwt_secret, "HS256", "customer", 600, "someone-else", 401},
        {s->jwt_secret, "HS256", "customer", 600, NULL, 401},
        {s->jwt_secret, "HS256", "emperor", 600, "bookingrush", 401},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *jwt = t_forge_jwt(cases[i].secret, cases[i].alg, sub, cases[i].role, cases[i].exp,
                                cases[i].iss);
        assert_non_null(jwt);
        t_request(s, "GET", "/api/v1/auth/me", jwt, NULL, NULL, 0, &r);
        if (r.status != cases[i].want) {
            fprintf(stderr, "token case %zu\n", i);
        }
        EXPECT(r, cases[i].want, cases[i].want == 401 ? "UNAUTHORIZED" : NULL);
        t_resp_free(&r);
        free(jwt);
    }
    /* A genuine token for a user that does not exist. */
    char *ghost = t_forge_jwt(s->jwt_secret, "HS256", "987654", "customer", 600, "bookingrush");
    t_request(s, "GET", "/api/v1/auth/me", ghost, NULL, NULL, 0, &r);
    EXPECT(r, 401, "UNAUTHORIZED");
    t_resp_free(&r);
    free(ghost);
}

static void reserve_with(struct t_server *s, const char *token, uint64_t ev, const char *pass,
                         const char *key, int quantity, struct t_resp *r)
{
    char hp[400];
    char hk[300];
    const char *hs[3] = {NULL, NULL, NULL};
    int n = 0;
    if (pass != NULL) {
        snprintf(hp, sizeof hp, "X-Queue-Pass: %s", pass);
        hs[n++] = hp;
    }
    if (key != NULL) {
        snprintf(hk, sizeof hk, "Idempotency-Key: %s", key);
        hs[n++] = hk;
    }
    t_json(s, "POST", "/api/v1/bookings/reserve", token,
           json_pack("{s:I, s:i, s:i}", "event_id", (json_int_t)ev, "zone_id", 1, "quantity",
                     quantity),
           hs, r);
}

static void test_pass_errors(void **state)
{
    struct t_server *s = srv(state);
    uint64_t e1 = t_event(s, NULL);
    uint64_t e2 = t_event(s, NULL);
    char a[1024];
    char b[1024];
    t_buyer(s, "pass-a", a, sizeof a);
    t_buyer(s, "pass-b", b, sizeof b);
    struct t_resp r;
    reserve_with(s, a, e1, NULL, NULL, 1, &r);
    EXPECT(r, 403, "PASS_REQUIRED");
    t_resp_free(&r);
    reserve_with(s, a, e1, "garbage", NULL, 1, &r);
    EXPECT(r, 403, "PASS_INVALID");
    t_resp_free(&r);

    char pa1[256];
    char pa2[256];
    char pb1[256];
    assert_true(t_wait_pass(s, a, e1, pa1, sizeof pa1, 10000));
    assert_true(t_wait_pass(s, a, e2, pa2, sizeof pa2, 10000));
    assert_true(t_wait_pass(s, b, e1, pb1, sizeof pb1, 10000));

    char forged[256];
    snprintf(forged, sizeof forged, "%s", pa1);
    size_t n = strlen(forged);
    forged[n - 1] = forged[n - 1] == '0' ? '1' : '0';
    reserve_with(s, a, e1, forged, NULL, 1, &r);
    EXPECT(r, 403, "PASS_INVALID");
    t_resp_free(&r);
    /* Another user's pass. */
    reserve_with(s, b, e1, pa1, NULL, 1, &r);
    EXPECT(r, 403, "PASS_INVALID");
    t_resp_free(&r);
    /* A pass for another event. */
    reserve_with(s, a, e2, pa1, NULL, 1, &r);
    EXPECT(r, 403, "PASS_INVALID");
    t_resp_free(&r);
    /* The genuine one works once; reused, it is refused. */
    reserve_with(s, a, e1, pa1, "pass-use-1", 1, &r);
    EXPECT(r, 201, NULL);
    t_resp_free(&r);
    reserve_with(s, a, e1, pa1, "pass-use-2", 1, &r);
    EXPECT(r, 403, "PASS_INVALID");
    t_resp_free(&r);
    reserve_with(s, a, e2, pa2, NULL, 1, &r);
    EXPECT(r, 201, NULL);
    t_resp_free(&r);
    reserve_with(s, b, e1, pb1, NULL, 1, &r);
    EXPECT(r, 201, NULL);
    t_resp_free(&r);

    /* A pass that lapsed. */
    uint64_t e3 = t_event(s, json_pack("{s:{s:i, s:i, s:i}}", "queue", "max_active", 10,
                                       "admit_per_tick", 10, "pass_ttl_s", 1));
    char pa3[256];
    assert_true(t_wait_pass(s, a, e3, pa3, sizeof pa3, 10000));
    t_sleep_ms(1200);
    reserve_with(s, a, e3, pa3, NULL, 1, &r);
    EXPECT(r, 403, "PASS_EXPIRED");
    t_resp_free(&r);
}

static void test_inventory_errors(void **state)
{
    struct t_server *s = srv(state);
    uint64_t ev = t_event(s, json_pack("{s:b, s:i, s:[{s:s, s:i, s:i, s:s}]}", "requires_pass", 0,
                                       "per_user_limit", 2, "zones", "name", "Tiny", "capacity",
                                       3, "price_minor", 100, "currency", "EUR"));
    char a[1024];
    char b[1024];
    t_buyer(s, "inv-a", a, sizeof a);
    t_buyer(s, "inv-b", b, sizeof b);
    struct t_resp r;
    reserve_with(s, a, ev, NULL, NULL, 3, &r);
    EXPECT(r, 409, "LIMIT_EXCEEDED");
    t_resp_free(&r);
    reserve_with(s, a, ev, NULL, "inv-key", 2, &r);
    EXPECT(r, 201, NULL);
    uint64_t held = J_INT(r, "id");
    t_resp_free(&r);
    /* The same key with another request. */
    reserve_with(s, a, ev, NULL, "inv-key", 1, &r);
    EXPECT(r, 422, "IDEMPOTENCY_CONFLICT");
    t_resp_free(&r);
    reserve_with(s, a, ev, NULL, NULL, 1, &r);
    EXPECT(r, 409, "LIMIT_EXCEEDED");
    t_resp_free(&r);
    reserve_with(s, b, ev, NULL, NULL, 2, &r);
    EXPECT(r, 409, "SOLD_OUT");
    t_resp_free(&r);
    reserve_with(s, b, ev, NULL, NULL, 1, &r);
    EXPECT(r, 201, NULL);
    t_resp_free(&r);
    /* Zone 2 does not exist in this event. */
    t_json(s, "POST", "/api/v1/bookings/reserve", b,
           json_pack("{s:I, s:i, s:i}", "event_id", (json_int_t)ev, "zone_id", 2, "quantity", 1),
           NULL, &r);
    EXPECT(r, 404, "NOT_FOUND");
    t_resp_free(&r);
    t_json(s, "POST", "/api/v1/bookings/reserve", b,
           json_pack("{s:i, s:i, s:i}", "event_id", 4000, "zone_id", 1, "quantity", 1), NULL, &r);
    EXPECT(r, 404, "NOT_FOUND");
    t_resp_free(&r);
    /* Another user's booking is invisible: get, cancel and pay are 404. */
    char p[96];
    snprintf(p, sizeof p, "/api/v1/bookings/%" PRIu64, held);
    t_request(s, "GET", p, b, NULL, NULL, 0, &r);
    EXPECT(r, 404, "NOT_FOUND");
    t_resp_free(&r);
    snprintf(p, sizeof p, "/api/v1/bookings/%" PRIu64 "/cancel", held);
    t_request(s, "POST", p, b, NULL, NULL, 0, &r);
    EXPECT(r, 404, "NOT_FOUND");
    t_resp_free(&r);
    t_json(s, "POST", "/api/v1/payments", b, json_pack("{s:I}", "booking_id", (json_int_t)held),
           NULL, &r);
    EXPECT(r, 404, "NOT_FOUND");
    t_resp_free(&r);
    t_request(s, "GET", "/api/v1/bookings/77777777", a, NULL, NULL, 0, &r);
    EXPECT(r, 404, "NOT_FOUND");
    t_resp_free(&r);
    /* Queue routes on an unknown event. */
    t_json(s, "POST", "/api/v1/queue/join", a, json_pack("{s:i}", "event_id", 4000), NULL, &r);
    EXPECT(r, 404, "NOT_FOUND");
    t_resp_free(&r);
    t_request(s, "GET", "/api/v1/queue/position/4000/stream", a, NULL, NULL, 0, &r);
    EXPECT(r, 404, "NOT_FOUND");
    t_resp_free(&r);
}

static void sign(const char *secret, long t, const char *payload, char *out, size_t cap)
{
    char *msg = malloc(strlen(payload) + 32);
    int n = sprintf(msg, "%ld.%s", t, payload);
    unsigned char mac[32];
    unsigned int len = 32;
    HMAC(EVP_sha256(), secret, (int)strlen(secret), (unsigned char *)msg, (size_t)n, mac, &len);
    int o = snprintf(out, cap, "Stripe-Signature: t=%ld,v1=", t);
    for (int i = 0; i < 32; i++) {
        o += snprintf(out + o, cap - (size_t)o, "%02x", mac[i]);
    }
    free(msg);
}

static void test_webhook_errors(void **state)
{
    struct t_server *s = srv(state);
    struct t_resp r;
    const char *payload = "{\"id\":\"evt_test_1\",\"type\":\"payment_intent.succeeded\","
                          "\"data\":{\"object\":{\"metadata\":{\"payment_id\":\"999\"}}}}";
    const char *json_only[] = {"Content-Type: application/json", NULL};
    t_request(s, "POST", "/api/v1/webhooks/stripe", NULL, json_only, payload, strlen(payload), &r);
    EXPECT(r, 400, "INVALID_REQUEST");
    t_resp_free(&r);
    char zero[200];
    snprintf(zero, sizeof zero, "Stripe-Signature: t=%ld,v1=%064d", (long)time(NULL), 0);
    const char *bad[] = {"Content-Type: application/json", zero, NULL};
    t_request(s, "POST", "/api/v1/webhooks/stripe", NULL, bad, payload, strlen(payload), &r);
    EXPECT(r, 401, "UNAUTHORIZED");
    t_resp_free(&r);
    char *secret = t_secret(s, "webhook_secret");
    if (secret == NULL) {
        skip();
    }
    char sig[200];
    sign(secret, (long)time(NULL) - 1000, payload, sig, sizeof sig); /* stale */
    const char *stale[] = {"Content-Type: application/json", sig, NULL};
    t_request(s, "POST", "/api/v1/webhooks/stripe", NULL, stale, payload, strlen(payload), &r);
    EXPECT(r, 401, "UNAUTHORIZED");
    t_resp_free(&r);
    sign("whsec_wrong", (long)time(NULL), payload, sig, sizeof sig);
    t_request(s, "POST", "/api/v1/webhooks/stripe", NULL, stale, payload, strlen(payload), &r);
    EXPECT(r, 401, "UNAUTHORIZED");
    t_resp_free(&r);
    /* Genuine, but for a payment nobody made. */
    sign(secret, (long)time(NULL), payload, sig, sizeof sig);
    t_request(s, "POST", "/api/v1/webhooks/stripe", NULL, stale, payload, strlen(payload), &r);
    EXPECT(r, 404, "NOT_FOUND");
    t_resp_free(&r);
    /* Genuine and of a type we do not act on. */
    const char *other = "{\"id\":\"evt_test_2\",\"type\":\"charge.updated\",\"data\":{\"object\":{}}}";
    sign(secret, (long)time(NULL), other, sig, sizeof sig);
    t_request(s, "POST", "/api/v1/webhooks/stripe", NULL, stale, other, strlen(other), &r);
    EXPECT(r, 200, NULL);
    t_resp_free(&r);
    /* Genuine, for a real payment, delivered twice: it takes effect once. */
    uint64_t ev = t_event(s, json_pack("{s:b}", "requires_pass", 0));
    char a[1024];
    t_buyer(s, "hook", a, sizeof a);
    reserve_with(s, a, ev, NULL, NULL, 1, &r);
    EXPECT(r, 201, NULL);
    uint64_t booking = J_INT(r, "id");
    t_resp_free(&r);
    t_json(s, "POST", "/api/v1/payments", a, json_pack("{s:I}", "booking_id", (json_int_t)booking),
           NULL, &r);
    EXPECT(r, 201, NULL);
    uint64_t payment = J_INT(r, "payment_id");
    t_resp_free(&r);
    char real[300];
    snprintf(real, sizeof real,
             "{\"id\":\"evt_dup_%" PRIu64 "\",\"type\":\"payment_intent.succeeded\",\"data\":"
             "{\"object\":{\"metadata\":{\"payment_id\":\"%" PRIu64 "\"}}}}",
             payment, payment);
    sign(secret, (long)time(NULL), real, sig, sizeof sig);
    for (int i = 0; i < 2; i++) {
        t_request(s, "POST", "/api/v1/webhooks/stripe", NULL, stale, real, strlen(real), &r);
        EXPECT(r, 200, NULL);
        assert_int_equal(json_is_true(json_object_get(r.json, "duplicate")), i == 1);
        t_resp_free(&r);
    }
    char p[96];
    snprintf(p, sizeof p, "/api/v1/bookings/%" PRIu64, booking);
    t_request(s, "GET", p, a, NULL, NULL, 0, &r);
    assert_string_equal(J_STR(r, "status"), "confirmed");
    t_resp_free(&r);
    free(secret);
}

static void test_provider_errors(void **state)
{
    struct t_server *s = srv(state);
    struct t_resp r;
    t_json(s, "POST", "/test-provider/v1/payment_intents/pi_nope/confirm", NULL,
           json_pack("{s:s, s:s}", "payment_method", "pm_card_visa", "client_secret",
                     "pi_nope_secret_x"),
           NULL, &r);
    EXPECT(r, 404, "NOT_FOUND");
    t_resp_free(&r);
    t_json(s, "POST", "/test-provider/v1/payment_intents/pi_br00000001000000ff/confirm", NULL,
           json_pack("{s:s}", "payment_method", "pm_card_unknown"), NULL, &r);
    EXPECT(r, 400, "INVALID_REQUEST");
    t_resp_free(&r);
    t_json(s, "POST", "/test-provider/v1/payment_intents/pi_nope/confirm", NULL, json_object(),
           NULL, &r);
    EXPECT(r, 400, "INVALID_REQUEST");
    t_resp_free(&r);
}

static void test_rate_limits(void **state)
{
    (void)state;
    if (t_external()) {
        skip(); /* needs a server started with limits on */
    }
    struct t_server s;
    t_server_start(&s, (const char *const[]){"--rate-limit-ip", "2:4", "--rate-limit-user", "2:4",
                                             "--trusted-proxies", "127.0.0.1/32", NULL});
    struct t_resp r;
    int limited = 0;
    const char *from1[] = {"X-Forwarded-For: 203.0.113.7", NULL};
    for (int i = 0; i < 12; i++) {
        t_request(&s, "GET", "/api/v1/events", NULL, from1, NULL, 0, &r);
        if (r.status == 429) {
            EXPECT(r, 429, "RATE_LIMITED");
            assert_true(atoi(r.retry_after) >= 1);
            limited++;
        } else {
            EXPECT(r, 200, NULL);
        }
        t_resp_free(&r);
    }
    assert_true(limited >= 6);
    /* Another client behind the same proxy has its own bucket. */
    const char *from2[] = {"X-Forwarded-For: 198.51.100.1, 203.0.113.9", NULL};
    t_request(&s, "GET", "/api/v1/events", NULL, from2, NULL, 0, &r);
    EXPECT(r, 200, NULL);
    t_resp_free(&r);
    /* Operations routes are never limited. */
    for (int i = 0; i < 10; i++) {
        t_request(&s, "GET", "/healthz", NULL, from1, NULL, 0, &r);
        EXPECT(r, 200, NULL);
        t_resp_free(&r);
    }
    /* Per user: one user from many addresses. */
    char token[1024];
    t_buyer(&s, "limited", token, sizeof token);
    limited = 0;
    for (int i = 0; i < 12; i++) {
        char xff[64];
        snprintf(xff, sizeof xff, "X-Forwarded-For: 192.0.2.%d", 100 + i);
        const char *hs[] = {xff, NULL};
        t_request(&s, "GET", "/api/v1/bookings", token, hs, NULL, 0, &r);
        limited += r.status == 429;
        assert_true(r.status == 200 || r.status == 429);
        t_resp_free(&r);
    }
    assert_true(limited >= 6);
    t_request(&s, "GET", "/metrics", NULL, NULL, NULL, 0, &r);
    assert_non_null(strstr(r.body, "br_rate_limited_total{scope=\"user\"}"));
    t_resp_free(&r);
    assert_int_equal(t_server_stop(&s), 0);
    t_server_cleanup(&s);
}

int main(int argc, char **argv)
{
    t_init(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routes_and_methods), cmocka_unit_test(test_content_types),
        cmocka_unit_test(test_malformed_json),     cmocka_unit_test(test_bad_fields),
        cmocka_unit_test(test_oversized),          cmocka_unit_test(test_tokens),
        cmocka_unit_test(test_pass_errors),        cmocka_unit_test(test_inventory_errors),
        cmocka_unit_test(test_webhook_errors),     cmocka_unit_test(test_provider_errors),
        cmocka_unit_test(test_rate_limits),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
