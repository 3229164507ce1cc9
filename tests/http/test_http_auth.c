/*
 * test_http_auth.c -- accounts and authorisation against the real binary:
 *
 *   - emails whose index hashes collide are still different accounts (a
 *     server started with --test-email-hash-bits 1, so every email collides);
 *   - roles are the user's current ones, not the token's: a demoted
 *     organizer's old token no longer reads stats; organizers read the stats
 *     of their own events only, admins of all; a genuine token naming no
 *     user is 401 on every authenticated route, reads included;
 *   - password hashing runs off the HTTP threads: reads stay fast during a
 *     storm of wrong-password logins, and a full hash queue answers 503
 *     OVERLOADED at once;
 *   - refresh tokens: refresh, rotation with reuse detection, logout,
 *     logout-all, expiry, and survival across a restart.
 *
 * Usage: test_http_auth BINARY [BASE_URL]   (see client.h; the tests that
 * need their own server flags or a restart skip against a base URL).
 * BR_TEST_ONLY=PATTERN runs the tests whose names match (cmocka's filter).
 */
#define _DEFAULT_SOURCE

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "check.h"
#include "client.h"

static uint64_t register_user(struct t_server *s, const char *email)
{
    struct t_resp r;
    t_json(s, "POST", "/api/v1/auth/register", NULL,
           json_pack("{s:s, s:s, s:s}", "email", email, "password", T_PASSWORD, "name", "T"), NULL,
           &r);
    EXPECT(r, 201, NULL);
    uint64_t id = J_INT(r, "user_id");
    t_resp_free(&r);
    return id;
}

/* Logs in; the whole answer into r (the caller frees it). */
static void login(struct t_server *s, const char *email, struct t_resp *r)
{
    t_json(s, "POST", "/api/v1/auth/login", NULL,
           json_pack("{s:s, s:s}", "email", email, "password", T_PASSWORD), NULL, r);
    EXPECT(*r, 200, NULL);
}

static void login_token(struct t_server *s, const char *email, char *token, size_t cap)
{
    struct t_resp r;
    login(s, email, &r);
    snprintf(token, cap, "%s", J_STR(r, "access_token"));
    t_resp_free(&r);
}

static void set_role(struct t_server *s, uint64_t user, const char *role)
{
    char path[96];
    snprintf(path, sizeof path, "/api/v1/admin/users/%" PRIu64 "/role", user);
    struct t_resp r;
    t_json(s, "POST", path, s->admin_token, json_pack("{s:s}", "role", role), NULL, &r);
    EXPECT(r, 200, NULL);
    t_resp_free(&r);
}

static long stats_status(struct t_server *s, uint64_t event, const char *token)
{
    char path[96];
    snprintf(path, sizeof path, "/api/v1/admin/events/%" PRIu64 "/stats", event);
    struct t_resp r;
    t_request(s, "GET", path, token, NULL, NULL, 0, &r);
    long st = r.status;
    t_resp_free(&r);
    return st;
}

/* An organizer: registered, promoted by the admin, logged in. */
static uint64_t organizer(struct t_server *s, const char *tag, char *token, size_t cap)
{
    char email[128];
    t_email(tag, email, sizeof email);
    uint64_t id = register_user(s, email);
    set_role(s, id, "organizer");
    login_token(s, email, token, cap);
    return id;
}

static uint64_t create_event(struct t_server *s, const char *token)
{
    json_t *spec = json_pack("{s:s, s:[{s:s, s:i, s:i, s:s}]}", "name", "Owned", "zones", "name",
                             "Floor", "capacity", 5, "price_minor", 1000, "currency", "EUR");
    struct t_resp r;
    t_json(s, "POST", "/api/v1/events", token, spec, NULL, &r);
    EXPECT(r, 201, NULL);
    uint64_t id = J_INT(r, "id");
    t_resp_free(&r);
    return id;
}

/* ---- item: email collisions ---- */

static void test_colliding_email_hashes_are_distinct_accounts(void **state)
{
    (void)state;
    if (t_external()) {
        skip();
    }
    struct t_server s;
    const char *extra[] = {"--test-email-hash-bits", "1", NULL};
    t_server_start(&s, extra);
    enum { N = 6 };
    char emails[N][128];
    uint64_t ids[N];
    for (int i = 0; i < N; i++) {
        char tag[16];
        snprintf(tag, sizeof tag, "collide%d", i);
        t_email(tag, emails[i], sizeof emails[i]);
        ids[i] = register_user(&s, emails[i]); /* 201, not EMAIL_TAKEN */
        for (int k = 0; k < i; k++) {
            assert_true(ids[k] != ids[i]);
        }
    }
    for (int i = 0; i < N; i++) {
        struct t_resp r;
        login(&s, emails[i], &r);
        assert_int_equal(J_INT(r, "user_id"), ids[i]); /* nobody signs in as someone else */
        t_resp_free(&r);
        t_json(&s, "POST", "/api/v1/auth/register", NULL,
               json_pack("{s:s, s:s, s:s}", "email", emails[i], "password", T_PASSWORD, "name",
                         "again"),
               NULL, &r);
        EXPECT(r, 409, "EMAIL_TAKEN");
        t_resp_free(&r);
    }
    t_server_stop(&s);
    t_server_cleanup(&s);
}

/* ---- item: current roles, event owners, tokens for nobody ---- */

static void test_a_demoted_organizer_loses_stats_at_once(void **state)
{
    (void)state;
    struct t_server s;
    t_server_start(&s, NULL);
    char tok[1024];
    uint64_t org = organizer(&s, "demoted", tok, sizeof tok);
    uint64_t ev = create_event(&s, tok);
    assert_int_equal(stats_status(&s, ev, tok), 200);
    set_role(&s, org, "customer");
    /* The token still says organizer; the server asks who the user is now. */
    assert_int_equal(stats_status(&s, ev, tok), 403);
    struct t_resp r;
    t_json(&s, "POST", "/api/v1/events", tok,
           json_pack("{s:s, s:[{s:s, s:i, s:i, s:s}]}", "name", "X", "zones", "name", "F",
                     "capacity", 1, "price_minor", 1, "currency", "EUR"),
           NULL, &r);
    EXPECT(r, 403, "FORBIDDEN");
    t_resp_free(&r);
    /* Promoted again: the same old token works again (current role). */
    set_role(&s, org, "organizer");
    assert_int_equal(stats_status(&s, ev, tok), 200);
    t_server_stop(&s);
    t_server_cleanup(&s);
}

static void test_organizers_see_the_stats_of_their_own_events_only(void **state)
{
    (void)state;
    struct t_server s;
    t_server_start(&s, NULL);
    char a_tok[1024];
    char b_tok[1024];
    char c_tok[1024];
    uint64_t a = organizer(&s, "owner-a", a_tok, sizeof a_tok);
    organizer(&s, "owner-b", b_tok, sizeof b_tok);
    t_buyer(&s, "owner-c", c_tok, sizeof c_tok);
    uint64_t ev = create_event(&s, a_tok);
    uint64_t admin_ev = create_event(&s, s.admin_token);
    assert_int_equal(stats_status(&s, ev, a_tok), 200);
    assert_int_equal(stats_status(&s, ev, b_tok), 403);
    assert_int_equal(stats_status(&s, ev, s.admin_token), 200);
    assert_int_equal(stats_status(&s, ev, c_tok), 403);
    assert_int_equal(stats_status(&s, admin_ev, a_tok), 403);
    assert_int_equal(stats_status(&s, admin_ev, s.admin_token), 200);
    /* The event says who owns it. */
    char path[64];
    snprintf(path, sizeof path, "/api/v1/events/%" PRIu64, ev);
    struct t_resp r;
    t_request(&s, "GET", path, NULL, NULL, NULL, 0, &r);
    EXPECT(r, 200, NULL);
    assert_int_equal(J_INT(r, "owner_id"), a);
    t_resp_free(&r);
    t_server_stop(&s);
    t_server_cleanup(&s);
}

static void test_a_token_for_a_user_who_does_not_exist_is_401_everywhere(void **state)
{
    (void)state;
    struct t_server s;
    t_server_start(&s, NULL);
    if (s.jwt_secret == NULL) {
        t_server_stop(&s);
        skip();
    }
    uint64_t ev = t_event(&s, NULL);
    char *ghost = t_forge_jwt(s.jwt_secret, "HS256", "987654", "admin", 600, "bookingrush");
    assert_non_null(ghost);
    char p_pos[64];
    char p_stats[80];
    char p_ev[64];
    snprintf(p_pos, sizeof p_pos, "/api/v1/queue/position/%" PRIu64, ev);
    snprintf(p_stats, sizeof p_stats, "/api/v1/admin/events/%" PRIu64 "/stats", ev);
    snprintf(p_ev, sizeof p_ev, "/api/v1/events/%" PRIu64, ev);
    const char *gets[] = {"/api/v1/auth/me", "/api/v1/bookings", "/api/v1/bookings/4294967297",
                          p_pos, p_stats};
    for (size_t i = 0; i < sizeof gets / sizeof gets[0]; i++) {
        struct t_resp r;
        t_request(&s, "GET", gets[i], ghost, NULL, NULL, 0, &r);
        if (r.status != 401) {
            fprintf(stderr, "GET %s\n", gets[i]);
        }
        EXPECT(r, 401, "UNAUTHORIZED");
        t_resp_free(&r);
    }
    char body[96];
    snprintf(body, sizeof body, "{\"event_id\":%" PRIu64 ",\"zone_id\":1,\"quantity\":1}", ev);
    struct {
        const char *method, *path;
        json_t *body;
    } posts[] = {
        {"POST", "/api/v1/queue/join", json_pack("{s:I}", "event_id", (json_int_t)ev)},
        {"POST", "/api/v1/bookings/reserve", json_loads(body, 0, NULL)},
        {"POST", "/api/v1/payments", json_pack("{s:I}", "booking_id", (json_int_t)1)},
        {"POST", "/api/v1/auth/logout-all", NULL},
        {"POST", "/api/v1/admin/users/1/role", json_pack("{s:s}", "role", "customer")},
    };
    for (size_t i = 0; i < sizeof posts / sizeof posts[0]; i++) {
        struct t_resp r;
        t_json(&s, posts[i].method, posts[i].path, ghost, posts[i].body, NULL, &r);
        if (r.status != 401) {
            fprintf(stderr, "%s %s\n", posts[i].method, posts[i].path);
        }
        EXPECT(r, 401, "UNAUTHORIZED");
        t_resp_free(&r);
    }
    free(ghost);
    /* The admin is untouched (the role change above was refused). */
    assert_int_equal(stats_status(&s, ev, s.admin_token), 200);
    struct t_resp r;
    t_request(&s, "GET", p_ev, NULL, NULL, NULL, 0, &r); /* public reads stay public */
    EXPECT(r, 200, NULL);
    t_resp_free(&r);
    t_server_stop(&s);
    t_server_cleanup(&s);
}

/* ---- item: hashing off the HTTP threads ---- */

struct storm {
    struct t_server *s;
    const char *email;
    long status;
    char code[32];
    char retry_after[16];
    int64_t ms; /* how long the answer took */
};

static atomic_int storm_done; /* logins answered */

static void *wrong_login(void *arg)
{
    struct storm *st = arg;
    int64_t t0 = t_mono_ms();
    struct t_resp r;
    t_json(st->s, "POST", "/api/v1/auth/login", NULL,
           json_pack("{s:s, s:s}", "email", st->email, "password", "not-the-password"), NULL, &r);
    st->ms = t_mono_ms() - t0;
    st->status = r.status;
    const char *code = json_string_value(json_object_get(json_object_get(r.json, "error"), "code"));
    snprintf(st->code, sizeof st->code, "%s", code ? code : "");
    snprintf(st->retry_after, sizeof st->retry_after, "%s", r.retry_after);
    t_resp_free(&r);
    atomic_fetch_add(&storm_done, 1);
    return NULL;
}

#define STORM 32

/* Fires STORM wrong-password logins at once; returns when all answered,
 * having measured GET latency meanwhile (*read_max_ms, *reads). */
static int64_t storm(struct t_server *s, const char *email, struct storm *st, const char *path,
                     int64_t *read_max_ms, int *reads)
{
    pthread_t th[STORM];
    atomic_store(&storm_done, 0);
    int64_t t0 = t_mono_ms();
    for (int i = 0; i < STORM; i++) {
        st[i] = (struct storm){.s = s, .email = email};
        assert_int_equal(pthread_create(&th[i], NULL, wrong_login, &st[i]), 0);
    }
    *read_max_ms = 0;
    *reads = 0;
    /* Reads while the storm lasts (the first login answers after a few
     * hashes at best; keep reading until every login has answered). */
    for (;;) {
        if (atomic_load(&storm_done) == STORM || t_mono_ms() - t0 > 120000) {
            break;
        }
        int64_t r0 = t_mono_ms();
        struct t_resp r;
        t_request(s, "GET", path, NULL, NULL, NULL, 0, &r);
        int64_t took = t_mono_ms() - r0;
        EXPECT(r, 200, NULL);
        t_resp_free(&r);
        *read_max_ms = took > *read_max_ms ? took : *read_max_ms;
        (*reads)++;
        t_sleep_ms(20);
    }
    for (int i = 0; i < STORM; i++) {
        pthread_join(th[i], NULL);
    }
    return t_mono_ms() - t0;
}

static void test_reads_stay_fast_during_a_login_storm(void **state)
{
    (void)state;
    if (t_external()) {
        skip();
    }
    struct t_server s;
    /* A real hash cost (scrypt N = 2^15, ~0.1 s a hash): 32 of them are seconds of CPU. */
    const char *extra[] = {"--scrypt-log2n", "15", "--hash-threads", "1", "--hash-queue", "64",
                           "--rate-limit-ip", "100000:100000", "--threads", "2", NULL};
    t_server_start(&s, extra);
    char email[128];
    t_email("stormed", email, sizeof email);
    register_user(&s, email);
    uint64_t ev = t_event(&s, NULL);
    char path[64];
    snprintf(path, sizeof path, "/api/v1/events/%" PRIu64, ev);
    struct storm st[STORM];
    int64_t read_max = 0;
    int reads = 0;
    int64_t took = storm(&s, email, st, path, &read_max, &reads);
    fprintf(stderr, "login storm: %d logins in %lld ms; %d reads meanwhile, slowest %lld ms\n",
            STORM, (long long)took, reads, (long long)read_max);
    for (int i = 0; i < STORM; i++) {
        assert_int_equal(st[i].status, 401);
    }
    assert_true(took >= 1000); /* the hashes did cost seconds: the bound below means something */
    assert_true(reads >= 5);
    assert_true(read_max < 500);
    t_server_stop(&s);
    t_server_cleanup(&s);
}

static void test_a_full_hash_queue_answers_503_overloaded_at_once(void **state)
{
    (void)state;
    if (t_external()) {
        skip();
    }
    struct t_server s;
    const char *extra[] = {"--scrypt-log2n", "15", "--hash-threads", "1", "--hash-queue", "2",
                           "--rate-limit-ip", "100000:100000", NULL};
    t_server_start(&s, extra);
    char email[128];
    t_email("overload", email, sizeof email);
    register_user(&s, email);
    struct storm st[STORM];
    int64_t read_max = 0;
    int reads = 0;
    storm(&s, email, st, "/healthz", &read_max, &reads);
    int refused = 0;
    int wrong = 0;
    for (int i = 0; i < STORM; i++) {
        if (st[i].status == 503) {
            assert_string_equal(st[i].code, "OVERLOADED");
            assert_string_equal(st[i].retry_after, "1");
            assert_true(st[i].ms < 1000); /* refused without waiting for a hash */
            refused++;
        } else {
            assert_int_equal(st[i].status, 401);
            wrong++;
        }
    }
    fprintf(stderr, "hash queue of 2: %d refused with 503, %d answered 401\n", refused, wrong);
    assert_true(refused > 0 && wrong >= 1);
    t_server_stop(&s);
    t_server_cleanup(&s);
}

/* ---- item: refresh tokens ---- */

/* POST path {refresh_token}; the answer into r. */
static void post_refresh(struct t_server *s, const char *path, const char *refresh,
                         struct t_resp *r)
{
    t_json(s, "POST", path, NULL, json_pack("{s:s}", "refresh_token", refresh), NULL, r);
}

static void login_refresh(struct t_server *s, const char *email, char *refresh, size_t cap)
{
    struct t_resp r;
    login(s, email, &r);
    const char *rt = J_STR(r, "refresh_token");
    assert_non_null(rt);
    assert_non_null(J_STR(r, "refresh_expires_at"));
    snprintf(refresh, cap, "%s", rt);
    t_resp_free(&r);
}

/* Refreshes: wants 200, copies the new refresh token (may be NULL), and
 * checks the new access token works. */
static void refresh_ok(struct t_server *s, const char *refresh, char *next, size_t cap)
{
    struct t_resp r;
    post_refresh(s, "/api/v1/auth/refresh", refresh, &r);
    EXPECT(r, 200, NULL);
    const char *access = J_STR(r, "access_token");
    const char *again = J_STR(r, "refresh_token");
    assert_non_null(access);
    assert_non_null(again);
    assert_string_not_equal(again, refresh); /* rotated */
    if (next != NULL) {
        snprintf(next, cap, "%s", again);
    }
    struct t_resp me;
    t_request(s, "GET", "/api/v1/auth/me", access, NULL, NULL, 0, &me);
    EXPECT(me, 200, NULL);
    t_resp_free(&me);
    t_resp_free(&r);
}

static void refresh_refused(struct t_server *s, const char *refresh)
{
    struct t_resp r;
    post_refresh(s, "/api/v1/auth/refresh", refresh, &r);
    EXPECT(r, 401, "UNAUTHORIZED");
    t_resp_free(&r);
}

static void test_refresh_rotates_and_a_reused_token_revokes_the_session(void **state)
{
    (void)state;
    struct t_server s;
    t_server_start(&s, NULL);
    char email[128];
    t_email("refresh", email, sizeof email);
    register_user(&s, email);
    char r1[256];
    char r2[256];
    char r3[256];
    login_refresh(&s, email, r1, sizeof r1);
    refresh_ok(&s, r1, r2, sizeof r2);
    refresh_ok(&s, r2, r3, sizeof r3);
    /* r1 was rotated away: presenting it is a copy's doing; it revokes r3 too. */
    refresh_refused(&s, r1);
    refresh_refused(&s, r3);
    /* Forged and malformed tokens. */
    char forged[256];
    snprintf(forged, sizeof forged, "%s", r3);
    forged[strlen(forged) - 1] = forged[strlen(forged) - 1] == '0' ? '1' : '0';
    refresh_refused(&s, forged);
    refresh_refused(&s, "r1.1.1.nothex");
    struct t_resp r;
    t_json(&s, "POST", "/api/v1/auth/refresh", NULL, json_pack("{s:i}", "refresh_token", 5), NULL,
           &r);
    EXPECT(r, 400, "INVALID_REQUEST");
    t_resp_free(&r);
    t_server_stop(&s);
    t_server_cleanup(&s);
}

static void test_logout_and_logout_all_revoke_refresh_tokens(void **state)
{
    (void)state;
    struct t_server s;
    t_server_start(&s, NULL);
    char email[128];
    char other[128];
    t_email("logout", email, sizeof email);
    t_email("bystander", other, sizeof other);
    register_user(&s, email);
    register_user(&s, other);
    char a[256];
    char b[256];
    char c[256];
    char keep[256];
    login_refresh(&s, email, a, sizeof a);
    login_refresh(&s, email, b, sizeof b);
    login_refresh(&s, other, keep, sizeof keep);
    struct t_resp r;
    post_refresh(&s, "/api/v1/auth/logout", a, &r);
    EXPECT(r, 204, NULL);
    t_resp_free(&r);
    refresh_refused(&s, a);
    refresh_ok(&s, b, c, sizeof c); /* another device's session lives on */
    char access[1024];
    login_token(&s, email, access, sizeof access);
    t_request(&s, "POST", "/api/v1/auth/logout-all", access, NULL, NULL, 0, &r);
    EXPECT(r, 204, NULL);
    t_resp_free(&r);
    refresh_refused(&s, c);
    refresh_ok(&s, keep, NULL, 0); /* someone else's session is untouched */
    t_request(&s, "POST", "/api/v1/auth/logout-all", NULL, NULL, NULL, 0, &r);
    EXPECT(r, 401, "UNAUTHORIZED");
    t_resp_free(&r);
    post_refresh(&s, "/api/v1/auth/logout", "r1.99.1.00", &r);
    EXPECT(r, 401, "UNAUTHORIZED");
    t_resp_free(&r);
    t_server_stop(&s);
    t_server_cleanup(&s);
}

static void test_refresh_tokens_survive_a_restart_and_so_do_revocations(void **state)
{
    (void)state;
    if (t_external()) {
        skip();
    }
    struct t_server s;
    t_server_start(&s, NULL);
    char email[128];
    t_email("restart", email, sizeof email);
    register_user(&s, email);
    char live[256];
    char dead[256];
    char next[256];
    login_refresh(&s, email, live, sizeof live);
    login_refresh(&s, email, dead, sizeof dead);
    struct t_resp r;
    post_refresh(&s, "/api/v1/auth/logout", dead, &r);
    EXPECT(r, 204, NULL);
    t_resp_free(&r);
    assert_int_equal(t_server_stop(&s), 0);
    t_server_restart(&s);
    refresh_ok(&s, live, next, sizeof next);
    refresh_refused(&s, dead);
    refresh_refused(&s, live); /* rotated before... */
    refresh_refused(&s, next); /* ...so that was a reuse: the session is gone */
    t_server_stop(&s);
    t_server_cleanup(&s);
}

static void test_an_expired_refresh_token_is_401(void **state)
{
    (void)state;
    if (t_external()) {
        skip();
    }
    struct t_server s;
    const char *extra[] = {"--refresh-ttl-s", "1", NULL};
    t_server_start(&s, extra);
    char email[128];
    t_email("expiry", email, sizeof email);
    register_user(&s, email);
    char a[256];
    char b[256];
    login_refresh(&s, email, a, sizeof a);
    refresh_ok(&s, a, b, sizeof b); /* within its second */
    t_sleep_ms(1300);
    refresh_refused(&s, b);
    t_server_stop(&s);
    t_server_cleanup(&s);
}

int main(int argc, char **argv)
{
    t_init(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_colliding_email_hashes_are_distinct_accounts),
        cmocka_unit_test(test_a_demoted_organizer_loses_stats_at_once),
        cmocka_unit_test(test_organizers_see_the_stats_of_their_own_events_only),
        cmocka_unit_test(test_a_token_for_a_user_who_does_not_exist_is_401_everywhere),
        cmocka_unit_test(test_reads_stay_fast_during_a_login_storm),
        cmocka_unit_test(test_a_full_hash_queue_answers_503_overloaded_at_once),
        cmocka_unit_test(test_refresh_rotates_and_a_reused_token_revokes_the_session),
        cmocka_unit_test(test_logout_and_logout_all_revoke_refresh_tokens),
        cmocka_unit_test(test_refresh_tokens_survive_a_restart_and_so_do_revocations),
        cmocka_unit_test(test_an_expired_refresh_token_is_401),
    };
    if (getenv("BR_TEST_ONLY") != NULL) {
        cmocka_set_test_filter(getenv("BR_TEST_ONLY")); /* e.g. "*storm*" */
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
