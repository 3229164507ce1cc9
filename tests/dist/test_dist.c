/*
 * test_dist.c -- the distributed deployment's own properties, through two
 * `bookingrush serve --backend distributed` processes on one Redis and one
 * PostgreSQL (started by tests/dist/env.sh; the HTTP harness of
 * tests/http/client.h starts the processes on a fresh database each time):
 *
 *   last_seats      both processes take reserves for the same last seats at
 *                   once: exactly capacity sold (the 201s, the stats through
 *                   each process, the sum of the buyers' bookings, and
 *                   PostgreSQL's projected zone), never more;
 *   kill_one        kill -9 of one process in the middle of a reserve storm
 *                   spread over both: every answered hold is still there
 *                   (read through the other process, then through the
 *                   restarted one), no seat twice, and the requests the kill
 *                   cut, retried with their keys, get one answer each;
 *   sse_fanout      buyers join through one process and listen on their
 *                   stream through the other; every pass arrives, whichever
 *                   process admitted them;
 *   redis_emptied   Redis killed during an on-sale: writes and reads 503
 *                   UNAVAILABLE with Retry-After, /healthz 200, /readyz 503;
 *                   then back with no data, and once more restarted empty
 *                   at once (no request sees it down): writes
 *                   refused with 503 UNAVAILABLE and Retry-After, then the
 *                   on-sale rebuilt from PostgreSQL by the reconciler; every
 *                   hold and every paid booking still there, no seat twice;
 *   pg_down         PostgreSQL stopped during an on-sale: registration,
 *                   login and a new payment answer 503 UNAVAILABLE, reserves
 *                   and reads go on through both processes; back, the
 *                   projection catches up and accounts work, by themselves;
 *   projection      a sell-out projected into PostgreSQL: the projection
 *                   catches up and nothing is refused; then an event whose
 *                   capacity Redis was made to believe one higher oversells
 *                   by one, PostgreSQL's CHECK refuses the projection and
 *                   the refusal is reported (metric br_projection_failed
 *                   and an error log line), the zone never above capacity.
 *                   With BR_TEST_EXPECT_OVERSELL=1 (a build whose reserve
 *                   script oversells by one, BR_PLANT=LUA_OVERSELL_BY_ONE)
 *                   the first sell-out itself must be refused;
 *   trace_replays   `bookingrush trace export` of an event's log replays
 *                   with `bookingrush replay`, every outcome identical.
 *   webhook_outbox  a confirm whose webhook is cut (BR_TEST_PROVIDER_CUT)
 *                   and whose process is then killed: the other process
 *                   delivers it from PostgreSQL's outbox, the booking ends
 *                   confirmed.
 *
 * BR_TEST_BREAK=1 makes each test break its own property first (Redis's
 * capacity raised, an acknowledged hold cancelled behind the test's back, a
 * buyer who left the queue, a hold deleted from the record before the
 * rebuild, a seat the test does not count, a recorded outcome altered in
 * the trace, the undelivered webhook's outbox row deleted): each must then
 * fail (71-dist-plant.sh). BR_TEST_ONLY=NAME
 * runs the tests whose name matches (cmocka's filter).
 *
 * Skipped (each test) without BR_TEST_DIST; redis_emptied also needs
 * BR_REDIS_DIR and BR_REDIS_FIXTURE (the fixture that kills and restarts
 * Redis), pg_down BR_ENV_DIR and BR_ENV_SH (env.sh pg-stop / pg-start).
 * Limits: the checks of PostgreSQL's record read it with psql; the capacity
 * fault needs a single Redis (redis://), not a cluster.
 *
 * Usage: test_dist BINARY   (environment: tests/http/client.h, env.sh)
 */
#define _DEFAULT_SOURCE

#include <curl/curl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../http/check.h"
#include "../http/client.h"
#include "../http/journal_bytes.h"

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- many requests at once ---- */

struct call {
    char url[300];
    struct curl_slist *h;
    char body[160];
    long status;
    char *answer;
    size_t len;
    char retry_after[16];
    int who; /* the caller's index (a buyer) */
};

static size_t on_answer(char *ptr, size_t size, size_t n, void *ud)
{
    struct call *c = ud;
    size_t add = size * n;
    if (!t_append(&c->answer, &c->len, ptr, add)) {
        return 0;
    }
    return add;
}

static size_t on_header(char *line, size_t size, size_t n, void *ud)
{
    struct call *c = ud;
    size_t len = size * n;
    if (len > 12 && strncasecmp(line, "Retry-After:", 12) == 0) {
        snprintf(c->retry_after, sizeof c->retry_after, "%.*s", (int)(len - 12), line + 12);
    }
    return len;
}

/* A POST of body with the buyer's token and an idempotency key. */
static void call_set(struct call *c, const char *base, const char *path, const char *token,
                     const char *key, const char *body, int who)
{
    memset(c, 0, sizeof *c);
    snprintf(c->url, sizeof c->url, "%s%s", base, path);
    c->h = t_post_headers(token, key);
    snprintf(c->body, sizeof c->body, "%s", body);
    c->who = who;
}

static void call_free(struct call *c)
{
    curl_slist_free_all(c->h);
    free(c->answer);
    c->h = NULL;
    c->answer = NULL;
}

/* Runs every call at once (one connection each); statuses and answers in. */
static void run_all(struct call *cs, int n)
{
    CURLM *m = curl_multi_init();
    CURL **easy = calloc((size_t)n, sizeof *easy);
    for (int i = 0; i < n; i++) {
        CURL *e = curl_easy_init();
        curl_easy_setopt(e, CURLOPT_URL, cs[i].url);
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, cs[i].h);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, cs[i].body);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_answer);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, &cs[i]);
        curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(e, CURLOPT_HEADERDATA, &cs[i]);
        curl_easy_setopt(e, CURLOPT_PRIVATE, &cs[i]);
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 60000L);
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        curl_multi_add_handle(m, e);
        easy[i] = e;
    }
    t_multi_run(m);
    CURLMsg *msg;
    int left = 0;
    while ((msg = curl_multi_info_read(m, &left)) != NULL) {
        struct call *c = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&c);
        c->status = msg->msg == CURLMSG_DONE ? t_multi_status(msg, -1) : -1;
    }
    for (int i = 0; i < n; i++) {
        curl_multi_remove_handle(m, easy[i]);
        curl_easy_cleanup(easy[i]);
    }
    free(easy);
    curl_multi_cleanup(m);
}

/* ---- PostgreSQL, read with psql ---- */

/* The first row of a query on the server's database, as psql -At prints
 * it ("a|b"), into out; false when psql failed. */
static bool pg_row(struct t_server *s, char *out, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static bool pg_row(struct t_server *s, char *out, size_t cap, const char *fmt, ...)
{
    char sql[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    return t_psql_row(s->pg_url, sql, out, cap);
}

/* Waits until PostgreSQL's zone has held + sold == want (the projection
 * caught up); returns the last held+sold seen. */
static int64_t pg_zone_wait(struct t_server *s, uint64_t ev, int64_t want, int timeout_ms)
{
    int64_t until = now_ms() + timeout_ms;
    int64_t got = -1;
    for (;;) {
        char row[128];
        long long held = 0;
        long long sold = 0;
        if (pg_row(s, row, sizeof row,
                   "SELECT held, sold FROM zones WHERE event_id = %" PRIu64 " AND zone_id = 1",
                   ev) &&
            sscanf(row, "%lld|%lld", &held, &sold) == 2) {
            got = held + sold;
        }
        if (got == want || now_ms() > until) {
            return got;
        }
        t_sleep_ms(50);
    }
}

/* ---- the sale's checks, through the HTTP API ---- */

static uint64_t open_event(struct t_server *s, int capacity, int per_user)
{
    return t_event(s, json_pack("{s:b, s:i, s:[{s:s, s:i, s:i, s:s}]}", "requires_pass", 0,
                                "per_user_limit", per_user, "zones", "name", "Floor", "capacity",
                                capacity, "price_minor", 1000, "currency", "EUR"));
}

/* held + sold of zone 1 as one process's stats say. */
static int64_t stats_taken(struct t_server *s, int node, uint64_t ev, int64_t *held)
{
    char p[128];
    snprintf(p, sizeof p, "/api/v1/admin/events/%" PRIu64 "/stats", ev);
    struct t_resp r;
    t_request_to(s, node, "GET", p, s->admin_token, NULL, NULL, 0, &r);
    EXPECT(r, 200, NULL);
    json_t *z = json_array_get(json_object_get(r.json, "zones"), 0);
    int64_t h = (int64_t)json_integer_value(json_object_get(z, "held"));
    int64_t sold = (int64_t)json_integer_value(json_object_get(z, "sold"));
    t_resp_free(&r);
    if (held != NULL) {
        *held = h;
    }
    return h + sold;
}

/* Seats in the buyers' live bookings (held or confirmed), read through the
 * harness (round-robin over the processes); asserts no id twice. */
static int64_t bookings_seats(struct t_server *s, char (*tokens)[1024], int n, uint64_t ev)
{
    int64_t seats = 0;
    uint64_t *ids = calloc(4096, sizeof *ids);
    int nids = 0;
    for (int b = 0; b < n; b++) {
        struct t_resp r;
        t_request(s, "GET", "/api/v1/bookings", tokens[b], NULL, NULL, 0, &r);
        EXPECT(r, 200, NULL);
        json_t *list = json_object_get(r.json, "bookings");
        for (size_t i = 0; i < json_array_size(list); i++) {
            json_t *bk = json_array_get(list, i);
            if ((uint64_t)json_integer_value(json_object_get(bk, "event_id")) != ev) {
                continue;
            }
            const char *st = json_string_value(json_object_get(bk, "status"));
            if (strcmp(st, "held") == 0 || strcmp(st, "confirmed") == 0) {
                seats += json_integer_value(json_object_get(bk, "quantity"));
            }
            uint64_t id = (uint64_t)json_integer_value(json_object_get(bk, "id"));
            for (int k = 0; k < nids; k++) {
                assert_true(ids[k] != id);
            }
            if (nids < 4096) {
                ids[nids++] = id;
            }
        }
        t_resp_free(&r);
    }
    free(ids);
    return seats;
}

/* BR_TEST_BREAK=1: each test breaks its own property first (71-dist-plant.sh
 * requires every test to fail then: a test that cannot fail is a defect). */
static bool breaking(void)
{
    const char *b = getenv("BR_TEST_BREAK");
    return b != NULL && strcmp(b, "1") == 0;
}

/* Raises zone 1's capacity of event ev by one in Redis, behind
 * PostgreSQL's back (the record's fault for "Redis oversold"). */
static void raise_redis_capacity(const struct t_server *s, uint64_t ev)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "redis-cli -u '%s' HINCRBY 'br:{e%" PRIu64 "}:ev' cap1 1 >/dev/null",
             s->redis_url, ev);
    assert_int_equal(system(cmd), 0);
}

static bool dist_or_skip(void)
{
    if (!t_distributed()) {
        fprintf(stderr, "test_dist: BR_TEST_DIST is not set (tests/dist/env.sh): skipped\n");
        return false;
    }
    return true;
}

/* The deployment's processes with rate limits off: limits are counted per
 * process, and a test's own load must not run into them. */
static void start_unlimited(struct t_server *s)
{
    t_server_start(s,
                   (const char *const[]){"--rate-limit-user", "0", "--rate-limit-ip", "0", NULL});
}

/* ---- both processes, the same last seats ---- */

#define LAST_BUYERS 200
#define LAST_CAPACITY 20

static void test_last_seats(void **state)
{
    (void)state;
    if (!dist_or_skip()) {
        skip();
    }
    struct t_server s;
    start_unlimited(&s);
    assert_true(s.nodes >= 2);
    uint64_t ev = open_event(&s, LAST_CAPACITY, 1);
    if (breaking()) {
        raise_redis_capacity(&s, ev);
    }
    static char tokens[LAST_BUYERS][1024];
    for (int i = 0; i < LAST_BUYERS; i++) {
        t_buyer(&s, "last", tokens[i], sizeof tokens[i]);
    }
    struct call *cs = calloc(LAST_BUYERS, sizeof *cs);
    char body[96];
    snprintf(body, sizeof body, "{\"event_id\":%" PRIu64 ",\"zone_id\":1,\"quantity\":1}", ev);
    for (int round = 0; round < 2; round++) {
        /* Round 1 again with new keys: still nothing more to sell. */
        for (int i = 0; i < LAST_BUYERS; i++) {
            char key[48];
            snprintf(key, sizeof key, "last-%d-%d", round, i);
            call_set(&cs[i], s.bases[i % s.nodes], "/api/v1/bookings/reserve", tokens[i], key, body,
                     i);
        }
        run_all(cs, LAST_BUYERS);
        int won = 0;
        int sold_out = 0;
        int per_node[T_NODES_MAX] = {0};
        for (int i = 0; i < LAST_BUYERS; i++) {
            if (cs[i].status == 201) {
                won++;
                per_node[i % s.nodes]++;
            } else if (cs[i].status == 409 &&
                       (strstr(cs[i].answer, "\"SOLD_OUT\"") != NULL ||
                        strstr(cs[i].answer, "\"LIMIT_EXCEEDED\"") != NULL)) {
                sold_out++;
            } else {
                fprintf(stderr, "buyer %d: %ld %s\n", i, cs[i].status,
                        cs[i].answer ? cs[i].answer : "");
            }
            call_free(&cs[i]);
        }
        fprintf(stderr, "round %d: %d sold (by process: %d, %d), %d refused\n", round, won,
                per_node[0], per_node[1], sold_out);
        assert_int_equal(won, round == 0 ? LAST_CAPACITY : 0);
        assert_int_equal(sold_out, LAST_BUYERS - won);
    }
    for (int i = 0; i < s.nodes; i++) {
        int64_t held = 0;
        assert_int_equal(stats_taken(&s, i, ev, &held), LAST_CAPACITY);
    }
    assert_int_equal(bookings_seats(&s, tokens, LAST_BUYERS, ev), LAST_CAPACITY);
    /* The record: PostgreSQL's zone, once projected, says the same. */
    assert_int_equal(pg_zone_wait(&s, ev, LAST_CAPACITY, 20000), LAST_CAPACITY);
    free(cs);
    assert_int_equal(t_server_stop(&s), 0);
    t_server_cleanup(&s);
}

/* ---- kill -9 of one process during load ---- */

#define KILL_BUYERS 60
#define KILL_CAPACITY 6000
#define KILL_PARALLEL 32
#define KILL_ACKS 8192

struct ack {
    int buyer;
    uint64_t booking;
};

/* Requests the kill cut (no answer): retried afterwards with their keys. */
#define KILL_CUT_MAX 64
struct cut {
    int buyer;
    char key[64];
};
static struct cut g_cut[KILL_CUT_MAX];
static int g_ncut;

/* A storm's state: its requests' sequence, the 201s and the unexpected. */
struct kill_storm {
    struct t_server *s;
    char (*tokens)[1024];
    uint64_t ev;
    unsigned seq;
    struct ack *acks;
    int *nacks;
    int *after_kill;
    int unexpected;
};

static void next_reserve(void *ctx, struct t_storm_call *c)
{
    struct kill_storm *ks = ctx;
    struct t_server *s = ks->s;
    c->who = (int)(ks->seq % KILL_BUYERS);
    /* Alternate the processes; only live ones get new requests. */
    int node = (int)(ks->seq % (unsigned)s->nodes);
    if (s->pids[node] == 0) {
        node = (node + 1) % s->nodes;
    }
    ks->seq++;
    snprintf(c->key, sizeof c->key, "kill-%d-%u", (int)getpid(), ks->seq);
    snprintf(c->url, sizeof c->url, "%s/api/v1/bookings/reserve", s->bases[node]);
    snprintf(c->body, sizeof c->body, "{\"event_id\":%" PRIu64 ",\"zone_id\":1,\"quantity\":1}",
             ks->ev);
    c->h = t_post_headers(ks->tokens[c->who], c->key);
}

static void reserve_ended(void *ctx, const struct t_storm_call *c, long status, bool killed)
{
    struct kill_storm *ks = ctx;
    if (status == 201 && *ks->nacks < KILL_ACKS) {
        json_t *j = json_loads(c->answer, 0, NULL);
        ks->acks[*ks->nacks].buyer = c->who;
        ks->acks[*ks->nacks].booking = (uint64_t)json_integer_value(json_object_get(j, "id"));
        (*ks->nacks)++;
        *ks->after_kill += killed;
        json_decref(j);
    } else if (status == 0 && g_ncut < KILL_CUT_MAX) {
        g_cut[g_ncut].buyer = c->who;
        snprintf(g_cut[g_ncut].key, sizeof g_cut[g_ncut].key, "%s", c->key);
        g_ncut++;
    } else if (status != 0 && status != 409) {
        /* 0: the killed process's connections; 409: limits. */
        fprintf(stderr, "storm: unexpected %ld %s\n", status, c->answer ? c->answer : "");
        ks->unexpected++;
    }
}

/* Reserves from KILL_PARALLEL connections spread over the processes; kills
 * process 0 after kill_ms, goes on through the others until stop_ms. */
static void storm(struct t_server *s, char (*tokens)[1024], uint64_t ev, int kill_ms, int stop_ms,
                  struct ack *acks, int *nacks, int *after_kill)
{
    struct kill_storm ks = {.s = s,
                            .tokens = tokens,
                            .ev = ev,
                            .seq = 1,
                            .acks = acks,
                            .nacks = nacks,
                            .after_kill = after_kill};
    struct t_storm st = {.s = s,
                         .parallel = KILL_PARALLEL,
                         .kill_ms = kill_ms,
                         .stop_ms = stop_ms,
                         .kill_node = 0,
                         .next = next_reserve,
                         .ended = reserve_ended,
                         .ctx = &ks};
    t_storm_run(&st);
    assert_int_equal(ks.unexpected, 0);
}

/* Every acknowledged booking, through one process. */
static void acks_there(struct t_server *s, int node, char (*tokens)[1024], const struct ack *acks,
                       int nacks)
{
    for (int i = 0; i < nacks; i++) {
        char p[96];
        snprintf(p, sizeof p, "/api/v1/bookings/%" PRIu64, acks[i].booking);
        struct t_resp r;
        t_request_to(s, node, "GET", p, tokens[acks[i].buyer], NULL, NULL, 0, &r);
        if (r.status != 200) {
            fprintf(stderr, "acknowledged booking %" PRIu64 " lost: %ld %s\n", acks[i].booking,
                    r.status, r.body);
        }
        EXPECT(r, 200, NULL);
        const char *st = J_STR(r, "status");
        if (strcmp(st, "held") != 0 && strcmp(st, "confirmed") != 0) {
            fprintf(stderr, "acknowledged booking %" PRIu64 " lost: it is %s\n", acks[i].booking,
                    st);
            fail();
        }
        t_resp_free(&r);
    }
}

static void test_kill_one(void **state)
{
    (void)state;
    if (!dist_or_skip()) {
        skip();
    }
    struct t_server s;
    start_unlimited(&s);
    assert_true(s.nodes >= 2);
    uint64_t ev = open_event(&s, KILL_CAPACITY, 64);
    static char tokens[KILL_BUYERS][1024];
    for (int i = 0; i < KILL_BUYERS; i++) {
        t_buyer(&s, "kill", tokens[i], sizeof tokens[i]);
    }
    struct ack *acks = calloc(KILL_ACKS, sizeof *acks);
    int nacks = 0;
    int after = 0;
    storm(&s, tokens, ev, 400, 900, acks, &nacks, &after);
    fprintf(stderr, "%d acknowledged, %d of them after the kill\n", nacks, after);
    assert_true(nacks > 0);
    assert_true(after > 0); /* the other process went on serving */
    assert_int_equal(s.pids[0], 0);
    /* The requests the kill cut, retried through the survivor with their
     * keys, twice: one answer per key (applied before the kill or now,
     * once), and the held ones join the acknowledged. */
    char body[96];
    snprintf(body, sizeof body, "{\"event_id\":%" PRIu64 ",\"zone_id\":1,\"quantity\":1}", ev);
    for (int i = 0; i < g_ncut; i++) {
        struct call c[2];
        for (int k = 0; k < 2; k++) {
            call_set(&c[k], s.bases[1], "/api/v1/bookings/reserve", tokens[g_cut[i].buyer],
                     g_cut[i].key, body, g_cut[i].buyer);
            run_all(&c[k], 1);
        }
        assert_int_equal(c[0].status, c[1].status);
        if (c[0].status == 201) {
            json_t *a = json_loads(c[0].answer, 0, NULL);
            json_t *b = json_loads(c[1].answer, 0, NULL);
            uint64_t id = (uint64_t)json_integer_value(json_object_get(a, "id"));
            assert_int_equal(id, (uint64_t)json_integer_value(json_object_get(b, "id")));
            json_decref(a);
            json_decref(b);
            if (nacks < KILL_ACKS) {
                acks[nacks].buyer = g_cut[i].buyer;
                acks[nacks].booking = id;
                nacks++;
            }
        } else {
            assert_int_equal(c[0].status, 409);
        }
        call_free(&c[0]);
        call_free(&c[1]);
    }
    fprintf(stderr, "%d requests cut by the kill, retried with their keys: one answer each\n",
            g_ncut);
    if (breaking()) { /* one acknowledged hold let go behind the test's back */
        char p[96];
        snprintf(p, sizeof p, "/api/v1/bookings/%" PRIu64 "/cancel", acks[0].booking);
        struct t_resp r;
        t_request_to(&s, 1, "POST", p, tokens[acks[0].buyer], NULL, NULL, 0, &r);
        t_resp_free(&r);
    }
    /* Through the survivor, then through the restarted one. */
    acks_there(&s, 1, tokens, acks, nacks);
    t_server_restart(&s);
    acks_there(&s, 0, tokens, acks, nacks);
    int64_t seats = bookings_seats(&s, tokens, KILL_BUYERS, ev);
    for (int i = 0; i < s.nodes; i++) {
        assert_int_equal(stats_taken(&s, i, ev, NULL), seats);
    }
    assert_true(seats >= nacks);
    assert_true(seats <= KILL_CAPACITY);
    assert_int_equal(pg_zone_wait(&s, ev, seats, 20000), seats);
    free(acks);
    assert_int_equal(t_server_stop(&s), 0);
    t_server_cleanup(&s);
}

/* ---- Redis restarted empty ---- */

#define EMPTY_BUYERS 12
#define EMPTY_CAPACITY 60

static uint64_t reserve(struct t_server *s, const char *token, uint64_t ev, int qty,
                        struct t_resp *r)
{
    t_json(s, "POST", "/api/v1/bookings/reserve", token,
           json_pack("{s:I, s:i, s:i}", "event_id", (json_int_t)ev, "zone_id", 1, "quantity", qty),
           NULL, r);
    return r->status == 201 ? (uint64_t)json_integer_value(json_object_get(r->json, "id")) : 0;
}

static const char *booking_status(struct t_server *s, const char *token, uint64_t id, char *out,
                                  size_t cap)
{
    char p[96];
    snprintf(p, sizeof p, "/api/v1/bookings/%" PRIu64, id);
    struct t_resp r;
    t_request(s, "GET", p, token, NULL, NULL, 0, &r);
    snprintf(out, cap, "%ld %s", r.status,
             r.status == 200 ? json_string_value(json_object_get(r.json, "status")) : r.body);
    t_resp_free(&r);
    return out;
}

/* Refused because Redis is away: 503 UNAVAILABLE with Retry-After, or,
 * for the one request whose connection broke after it was sent, 503
 * UNKNOWN_OUTCOME (the adapter cannot know whether it ran). */
static void expect_refused(const struct t_resp *r)
{
    const char *code =
        json_string_value(json_object_get(json_object_get(r->json, "error"), "code"));
    if (r->status == 503 && code != NULL && strcmp(code, "UNKNOWN_OUTCOME") == 0) {
        return;
    }
    EXPECT(*r, 503, "UNAVAILABLE");
    assert_true(atoi(r->retry_after) >= 1);
}

/* Reserves one seat at a time, through each process in turn, until each
 * process has accepted one (the rebuild is done and every process has
 * seen it): before that every answer must be a refusal (503 UNAVAILABLE
 * with Retry-After; UNKNOWN_OUTCOME for a request sent on a connection
 * Redis's restart broke). A reserve that reached the empty Redis would say
 * NOT_FOUND: no other answer is allowed. */
static void until_rebuilt(struct t_server *s, char (*tokens)[1024], uint64_t ev, int64_t *taken,
                          const char *what, int64_t t0)
{
    int refused = 0;
    int accepted_after_ms = -1;
    bool accepted[T_NODES_MAX] = {false};
    int nodes_accepted = 0;
    char body[96];
    snprintf(body, sizeof body, "{\"event_id\":%" PRIu64 ",\"zone_id\":1,\"quantity\":1}", ev);
    for (int k = 0; now_ms() - t0 < 30000 && nodes_accepted < s->nodes; k++) {
        int node = k % s->nodes;
        char auth[1100];
        snprintf(auth, sizeof auth, "Authorization: Bearer %.1023s", tokens[k % EMPTY_BUYERS]);
        const char *hs[] = {"Content-Type: application/json", auth, NULL};
        struct t_resp r;
        t_request_to(s, node, "POST", "/api/v1/bookings/reserve", NULL, hs, body, strlen(body), &r);
        if (r.status == 503) {
            expect_refused(&r);
            refused++;
        } else if (r.status == 201) {
            if (accepted_after_ms < 0) {
                accepted_after_ms = (int)(now_ms() - t0);
            }
            *taken += 1;
            if (!accepted[node]) {
                accepted[node] = true;
                nodes_accepted++;
            }
        } else {
            fprintf(stderr, "Redis %s: a write got %ld %s\n", what, r.status, r.body);
            fail();
        }
        t_resp_free(&r);
        t_sleep_ms(5);
    }
    fprintf(stderr, "Redis %s: %d writes refused; the first accepted after %d ms\n", what, refused,
            accepted_after_ms);
    assert_int_equal(nodes_accepted, s->nodes);
}

/* Each hold and each paid booking came back, through every process. */
static void held_and_paid_there(struct t_server *s, char (*tokens)[1024], const uint64_t *held,
                                const uint64_t *paid)
{
    for (int i = 0; i < EMPTY_BUYERS; i++) {
        char st[300];
        assert_string_equal(booking_status(s, tokens[i], held[i], st, sizeof st), "200 held");
        assert_string_equal(booking_status(s, tokens[i], paid[i], st, sizeof st), "200 confirmed");
    }
}

static void test_redis_emptied(void **state)
{
    (void)state;
    const char *rdir = getenv("BR_REDIS_DIR");
    const char *fixture = getenv("BR_REDIS_FIXTURE");
    if (!dist_or_skip()) {
        skip();
    }
    if (rdir == NULL || fixture == NULL) {
        fprintf(stderr, "test_dist: no BR_REDIS_DIR/BR_REDIS_FIXTURE: redis_emptied skipped\n");
        skip();
    }
    struct t_server s;
    start_unlimited(&s);
    uint64_t ev = open_event(&s, EMPTY_CAPACITY, 10);
    static char tokens[EMPTY_BUYERS][1024];
    uint64_t held[EMPTY_BUYERS];
    uint64_t paid[EMPTY_BUYERS];
    for (int i = 0; i < EMPTY_BUYERS; i++) {
        t_buyer(&s, "empty", tokens[i], sizeof tokens[i]);
        struct t_resp r;
        held[i] = reserve(&s, tokens[i], ev, 2, &r);
        EXPECT(r, 201, NULL);
        t_resp_free(&r);
        paid[i] = reserve(&s, tokens[i], ev, 1, &r);
        EXPECT(r, 201, NULL);
        t_resp_free(&r);
        t_pay(&s, tokens[i], paid[i]);
    }
    int64_t taken = EMPTY_BUYERS * 3;
    /* Everything in the record before Redis goes. */
    assert_int_equal(pg_zone_wait(&s, ev, taken, 20000), taken);
    char row[128];
    assert_true(pg_row(
        &s, row, sizeof row,
        "SELECT count(*) FROM bookings WHERE event_id = %" PRIu64 " AND payment_id <> 0", ev));
    fprintf(stderr, "projected: %s paid bookings\n", row);

    if (breaking()) { /* a hold the record lost: the rebuild cannot bring it back */
        assert_true(pg_row(&s, row, sizeof row,
                           "DELETE FROM bookings WHERE id = %" PRIu64 "; UPDATE zones SET held = "
                           "held - 2 WHERE event_id = %" PRIu64 " AND zone_id = 1",
                           held[0], ev));
    }
    /* Redis down: writes and on-sale reads refused with 503 UNAVAILABLE and
     * Retry-After; the processes stay alive (/healthz) and say they are
     * not ready (/readyz). */
    char cmd[700];
    snprintf(cmd, sizeof cmd, "'%s' kill '%s'", fixture, rdir);
    assert_int_equal(system(cmd), 0);
    for (int i = 0; i < s.nodes; i++) {
        struct t_resp r;
        char body[96];
        snprintf(body, sizeof body, "{\"event_id\":%" PRIu64 ",\"zone_id\":1,\"quantity\":1}", ev);
        char auth[1100];
        snprintf(auth, sizeof auth, "Authorization: Bearer %.1023s", tokens[i]);
        const char *hs[] = {"Content-Type: application/json", auth, NULL};
        t_request_to(&s, i, "POST", "/api/v1/bookings/reserve", NULL, hs, body, strlen(body), &r);
        expect_refused(&r);
        t_resp_free(&r);
        char p[96];
        snprintf(p, sizeof p, "/api/v1/bookings/%" PRIu64, held[i]);
        t_request_to(&s, i, "GET", p, tokens[i], NULL, NULL, 0, &r);
        expect_refused(&r);
        t_resp_free(&r);
        t_request_to(&s, i, "GET", "/healthz", NULL, NULL, NULL, 0, &r);
        EXPECT(r, 200, NULL);
        t_resp_free(&r);
        t_request_to(&s, i, "GET", "/readyz", NULL, NULL, NULL, 0, &r);
        EXPECT(r, 503, NULL);
        t_resp_free(&r);
    }
    /* Back, empty. */
    snprintf(cmd, sizeof cmd, "'%s' restart-empty '%s'", fixture, rdir);
    assert_int_equal(system(cmd), 0);
    int64_t t0 = now_ms();
    until_rebuilt(&s, tokens, ev, &taken, "killed, back empty", t0);
    held_and_paid_there(&s, tokens, held, paid);
    /* Again, the quick way: everything projected, then Redis restarted
     * empty at once (no request in between to see it down), writes going
     * on from the first moment. Not one may reach the empty Redis. */
    assert_int_equal(pg_zone_wait(&s, ev, taken, 20000), taken);
    assert_int_equal(system(cmd), 0);
    until_rebuilt(&s, tokens, ev, &taken, "restarted empty at once", now_ms());
    held_and_paid_there(&s, tokens, held, paid);
    /* Sell the rest out: no seat sold twice across the rebuild. */
    for (int k = 0; k < 200; k++) {
        struct t_resp r;
        reserve(&s, tokens[k % EMPTY_BUYERS], ev, 1, &r);
        long st = r.status;
        if (st == 201) {
            taken++;
        } else {
            assert_int_equal(st, 409);
        }
        t_resp_free(&r);
    }
    assert_int_equal(taken, EMPTY_CAPACITY);
    for (int i = 0; i < s.nodes; i++) {
        assert_int_equal(stats_taken(&s, i, ev, NULL), EMPTY_CAPACITY);
    }
    assert_int_equal(bookings_seats(&s, tokens, EMPTY_BUYERS, ev), EMPTY_CAPACITY);
    assert_int_equal(pg_zone_wait(&s, ev, EMPTY_CAPACITY, 20000), EMPTY_CAPACITY);
    assert_int_equal(t_server_stop(&s), 0);
    t_server_cleanup(&s);
}

/* ---- SSE across processes ---- */

struct stream {
    char *text;
    size_t len;
    bool done;
};

static size_t on_stream(char *ptr, size_t size, size_t n, void *ud)
{
    struct stream *st = ud;
    size_t add = size * n;
    if (!t_append(&st->text, &st->len, ptr, add)) {
        return 0;
    }
    const char *at = strstr(st->text, "event: pass\n");
    if (at != NULL && strstr(at, "\n\n") != NULL) {
        st->done = true;
        return 0; /* got it: stop reading */
    }
    return add;
}

#define SSE_BUYERS 4

/* Buyer i joins the queue through process i % n and listens on its stream
 * through process (i + 1) % n, all before the sale opens; the admitter
 * (one process at a time, by its lease) admits them all. Every stream
 * gets its pass, so at least one pass crossed from the admitting process
 * to a stream another process holds (one Redis subscription each). */
static void test_sse_fanout(void **state)
{
    (void)state;
    if (!dist_or_skip()) {
        skip();
    }
    struct t_server s;
    t_server_start(&s, (const char *const[]){"--rate-limit-user", "0", "--rate-limit-ip", "0",
                                             "--sse-keepalive-s", "1", NULL});
    time_t opens = time(NULL) + 3;
    struct tm tm;
    gmtime_r(&opens, &tm);
    char when[40];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    uint64_t ev = t_event(&s, json_pack("{s:s}", "sale_opens_at", when));
    static char tokens[SSE_BUYERS][1024];
    for (int i = 0; i < SSE_BUYERS; i++) {
        t_buyer(&s, "sse", tokens[i], sizeof tokens[i]);
        char body[64];
        snprintf(body, sizeof body, "{\"event_id\":%" PRIu64 "}", ev);
        char auth[1100];
        snprintf(auth, sizeof auth, "Authorization: Bearer %.1023s", tokens[i]);
        const char *hs[] = {"Content-Type: application/json", auth, NULL};
        struct t_resp r;
        t_request_to(&s, i % s.nodes, "POST", "/api/v1/queue/join", NULL, hs, body, strlen(body),
                     &r);
        EXPECT(r, 200, NULL);
        t_resp_free(&r);
        if (breaking() && i == 0) { /* one buyer leaves: one pass must be missing */
            t_request_to(&s, 0, "DELETE", "/api/v1/queue/leave", NULL, hs, body, strlen(body), &r);
            t_resp_free(&r);
        }
    }
    CURLM *m = curl_multi_init();
    CURL *easy[SSE_BUYERS];
    struct curl_slist *hl[SSE_BUYERS];
    struct stream st[SSE_BUYERS];
    memset(st, 0, sizeof st);
    for (int i = 0; i < SSE_BUYERS; i++) {
        char url[300];
        snprintf(url, sizeof url, "%s/api/v1/queue/position/%" PRIu64 "/stream",
                 s.bases[(i + 1) % s.nodes], ev);
        char auth[1100];
        snprintf(auth, sizeof auth, "Authorization: Bearer %.1023s", tokens[i]);
        hl[i] = curl_slist_append(NULL, auth);
        hl[i] = curl_slist_append(hl[i], "Accept: text/event-stream");
        easy[i] = curl_easy_init();
        curl_easy_setopt(easy[i], CURLOPT_URL, url);
        curl_easy_setopt(easy[i], CURLOPT_HTTPHEADER, hl[i]);
        curl_easy_setopt(easy[i], CURLOPT_WRITEFUNCTION, on_stream);
        curl_easy_setopt(easy[i], CURLOPT_WRITEDATA, &st[i]);
        curl_easy_setopt(easy[i], CURLOPT_TIMEOUT_MS, 20000L);
        curl_easy_setopt(easy[i], CURLOPT_NOSIGNAL, 1L);
        curl_multi_add_handle(m, easy[i]);
    }
    t_multi_run(m);
    int passes = 0;
    for (int i = 0; i < SSE_BUYERS; i++) {
        if (st[i].done) {
            passes++;
        } else {
            fprintf(stderr, "buyer %d's stream on process %d got no pass:\n%s\n", i,
                    (i + 1) % s.nodes, st[i].text ? st[i].text : "");
        }
        curl_multi_remove_handle(m, easy[i]);
        curl_easy_cleanup(easy[i]);
        curl_slist_free_all(hl[i]);
        free(st[i].text);
    }
    curl_multi_cleanup(m);
    fprintf(stderr, "%d of %d passes arrived on streams held by another process than the join\n",
            passes, SSE_BUYERS);
    assert_int_equal(passes, SSE_BUYERS);
    assert_int_equal(t_server_stop(&s), 0);
    t_server_cleanup(&s);
}

/* ---- PostgreSQL away ---- */

#define PGDOWN_BUYERS 6
#define PGDOWN_CAPACITY 100

static bool g_pg_stopped;

static int env_sh(const char *what)
{
    char cmd[700];
    snprintf(cmd, sizeof cmd, "'%s' %s '%s'", getenv("BR_ENV_SH"), what, getenv("BR_ENV_DIR"));
    int rc = system(cmd);
    if (rc == 0) {
        g_pg_stopped = strcmp(what, "pg-stop") == 0;
    }
    return rc;
}

/* pg_down's teardown: PostgreSQL back even when the test failed midway. */
static int pg_back(void **state)
{
    (void)state;
    if (g_pg_stopped && env_sh("pg-start") != 0) {
        fprintf(stderr, "test_dist: could not start PostgreSQL again\n");
        return -1;
    }
    return 0;
}

/* PostgreSQL stopped during an on-sale: accounts answer 503 UNAVAILABLE
 * with Retry-After, the on-sale goes on through both processes (reserves,
 * reads, cancels), /healthz stays 200; once PostgreSQL is back, the
 * projection catches up with every seat taken meanwhile and accounts work
 * again, by themselves. */
static void test_pg_down(void **state)
{
    (void)state;
    if (!dist_or_skip()) {
        skip();
    }
    if (getenv("BR_ENV_DIR") == NULL || getenv("BR_ENV_SH") == NULL) {
        fprintf(stderr, "test_dist: no BR_ENV_DIR/BR_ENV_SH: pg_down skipped\n");
        skip();
    }
    struct t_server s;
    start_unlimited(&s);
    uint64_t ev = open_event(&s, PGDOWN_CAPACITY, 10);
    static char tokens[PGDOWN_BUYERS][1024];
    for (int i = 0; i < PGDOWN_BUYERS; i++) {
        t_buyer(&s, "pgdown", tokens[i], sizeof tokens[i]);
    }
    int64_t taken = 0;
    struct t_resp r;
    uint64_t first_hold = 0;
    for (int i = 0; i < PGDOWN_BUYERS; i++) {
        uint64_t id = reserve(&s, tokens[i], ev, 1, &r);
        EXPECT(r, 201, NULL);
        t_resp_free(&r);
        taken++;
        if (i == 0) {
            first_hold = id;
        }
    }
    assert_int_equal(env_sh("pg-stop"), 0);
    int64_t t0 = now_ms();
    if (breaking()) { /* a seat the test does not count: "catches up" must fail */
        reserve(&s, tokens[0], ev, 1, &r);
        t_resp_free(&r);
    }
    /* The on-sale goes on, through every process. */
    for (int k = 0; k < 2 * PGDOWN_BUYERS; k++) {
        uint64_t id = reserve(&s, tokens[k % PGDOWN_BUYERS], ev, 1, &r);
        if (r.status != 201) {
            fprintf(stderr, "reserve with PostgreSQL away: %ld %s\n", r.status, r.body);
        }
        EXPECT(r, 201, NULL);
        t_resp_free(&r);
        taken++;
        char st[300];
        assert_string_equal(booking_status(&s, tokens[k % PGDOWN_BUYERS], id, st, sizeof st),
                            "200 held");
    }
    t_request(&s, "GET", "/healthz", NULL, NULL, NULL, 0, &r);
    EXPECT(r, 200, NULL);
    t_resp_free(&r);
    /* Logins need PostgreSQL (sessions live there), and so does a new
     * payment (the built-in test provider keeps its intents there). */
    t_json(&s, "POST", "/api/v1/auth/login", NULL,
           json_pack("{s:s, s:s}", "email", T_ADMIN_EMAIL, "password", T_ADMIN_PASSWORD), NULL, &r);
    EXPECT(r, 503, "UNAVAILABLE");
    t_resp_free(&r);
    t_json(&s, "POST", "/api/v1/payments", tokens[0],
           json_pack("{s:I}", "booking_id", (json_int_t)first_hold), NULL, &r);
    EXPECT(r, 503, NULL);
    t_resp_free(&r);
    /* Accounts need PostgreSQL: 503 UNAVAILABLE with Retry-After. */
    char email[128];
    t_email("pgdown-new", email, sizeof email);
    t_json(&s, "POST", "/api/v1/auth/register", NULL,
           json_pack("{s:s, s:s, s:s}", "email", email, "password", T_PASSWORD, "name", "N"), NULL,
           &r);
    EXPECT(r, 503, "UNAVAILABLE");
    assert_true(atoi(r.retry_after) >= 1);
    t_resp_free(&r);
    fprintf(stderr, "PostgreSQL away for %lld ms: %d reserves answered, accounts refused\n",
            (long long)(now_ms() - t0), 2 * PGDOWN_BUYERS);
    assert_int_equal(env_sh("pg-start"), 0);
    /* Back by itself: the projection catches up, accounts work. */
    assert_int_equal(pg_zone_wait(&s, ev, taken, 30000), taken);
    int64_t until = now_ms() + 30000;
    for (;;) {
        t_json(&s, "POST", "/api/v1/auth/register", NULL,
               json_pack("{s:s, s:s, s:s}", "email", email, "password", T_PASSWORD, "name", "N"),
               NULL, &r);
        long st = r.status;
        t_resp_free(&r);
        if (st == 201 || now_ms() > until) {
            assert_int_equal(st, 201);
            break;
        }
        t_sleep_ms(100);
    }
    assert_int_equal(t_server_stop(&s), 0);
    t_server_cleanup(&s);
}

/* ---- the projection, with and without a planted oversell ---- */

#define PROJ_BUYERS 30
#define PROJ_CAPACITY 5


static bool logs_have(struct t_server *s, const char *what)
{
    char cmd[700];
    snprintf(cmd, sizeof cmd, "grep -q -F '%s' '%s'/server*.log", what, s->dir);
    return system(cmd) == 0;
}

/* Sells a zone of PROJ_CAPACITY out to PROJ_BUYERS buyers, one seat each,
 * through the harness (round-robin); returns the seats Redis sold. */
static int sell_out(struct t_server *s, char (*tokens)[1024], uint64_t ev)
{
    int won = 0;
    for (int i = 0; i < PROJ_BUYERS; i++) {
        struct t_resp r;
        reserve(s, tokens[i], ev, 1, &r);
        won += r.status == 201;
        assert_true(r.status == 201 || r.status == 409);
        t_resp_free(&r);
    }
    return won;
}

/* Waits up to timeout_ms for br_projection_failed{event} 1 on a process. */
static bool refusal_reported(struct t_server *s, uint64_t ev, int timeout_ms)
{
    char want[96];
    snprintf(want, sizeof want, "br_projection_failed{event=\"%" PRIu64 "\"} 1", ev);
    for (int64_t until = now_ms() + timeout_ms;;) {
        char *m = t_metrics_all(s);
        bool seen = strstr(m, want) != NULL;
        free(m);
        if (seen || now_ms() > until) {
            return seen;
        }
        t_sleep_ms(100);
    }
}

/* PostgreSQL's zone never above its capacity, whatever Redis did. */
static void pg_zone_within(struct t_server *s, uint64_t ev)
{
    char row[128];
    long long held = 0;
    long long sold = 0;
    assert_true(pg_row(s, row, sizeof row,
                       "SELECT held, sold FROM zones WHERE event_id = %" PRIu64 " AND zone_id = 1",
                       ev));
    assert_int_equal(sscanf(row, "%lld|%lld", &held, &sold), 2);
    assert_true(held >= 0 && sold >= 0 && held + sold <= PROJ_CAPACITY);
    fprintf(stderr, "projection refused and reported; PostgreSQL's zone %" PRIu64 ": %s\n", ev,
            row);
}

/* Event A sold out normally: projected, nothing refused. Event B's
 * capacity raised by one in Redis behind PostgreSQL's back (the record
 * test's fault: a script that oversells by one looks the same to the
 * projection): Redis sells one seat more, PostgreSQL's CHECK refuses the
 * batch, the refusal is reported, and A stays projected. With
 * BR_TEST_EXPECT_OVERSELL=1 (the server built with
 * BR_PLANT=LUA_OVERSELL_BY_ONE) A itself oversells and must be refused. */
static void test_projection(void **state)
{
    (void)state;
    if (!dist_or_skip()) {
        skip();
    }
    const char *expect = getenv("BR_TEST_EXPECT_OVERSELL");
    bool planted = expect != NULL && strcmp(expect, "1") == 0;
    struct t_server s;
    start_unlimited(&s);
    uint64_t a = open_event(&s, PROJ_CAPACITY, 1);
    static char tokens[PROJ_BUYERS][1024];
    for (int i = 0; i < PROJ_BUYERS; i++) {
        t_buyer(&s, "proj", tokens[i], sizeof tokens[i]);
    }
    if (breaking()) {
        raise_redis_capacity(&s, a); /* then "nothing refused" must fail */
    }
    int won = sell_out(&s, tokens, a);
    fprintf(stderr, "sold %d of %d (planted oversell: %s)\n", won, PROJ_CAPACITY,
            planted ? "yes" : "no");
    if (planted) {
        assert_true(won > PROJ_CAPACITY); /* the plant works: Redis oversold */
        assert_true(refusal_reported(&s, a, 30000));
        assert_true(logs_have(&s, "projection refused by PostgreSQL"));
        pg_zone_within(&s, a);
        assert_int_equal(t_server_stop(&s), 0);
        t_server_cleanup(&s);
        return;
    }
    assert_int_equal(won, PROJ_CAPACITY);
    assert_int_equal(pg_zone_wait(&s, a, PROJ_CAPACITY, 20000), PROJ_CAPACITY);
    assert_false(refusal_reported(&s, a, 0));
    assert_false(logs_have(&s, "projection refused by PostgreSQL"));

    const char *redis = getenv("BR_TEST_DIST");
    if (strncmp(redis, "redis://", 8) != 0) {
        fprintf(stderr, "test_dist: the capacity fault needs a single Redis: skipped\n");
    } else {
        uint64_t b = open_event(&s, PROJ_CAPACITY, 1);
        raise_redis_capacity(&s, b);
        won = sell_out(&s, tokens, b);
        fprintf(stderr, "sold %d of %d with Redis's capacity raised by one\n", won, PROJ_CAPACITY);
        assert_int_equal(won, PROJ_CAPACITY + 1);
        assert_true(refusal_reported(&s, b, 30000));
        assert_true(logs_have(&s, "projection refused by PostgreSQL"));
        pg_zone_within(&s, b);
        assert_false(refusal_reported(&s, a, 0)); /* the other event is unharmed */
    }
    assert_int_equal(t_server_stop(&s), 0);
    t_server_cleanup(&s);
}

/* ---- an exported trace replays ---- */

/* Flips a bit of the last record's effects hash (its payload's last 8
 * bytes, core/journal.h) and fixes its checksum: a well-formed trace whose
 * last recorded outcome differs from what the core computes. */
static void alter_last_outcome(const char *path)
{
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)len);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)len, f), (size_t)len);
    long at = (long)t_le32(b + 8); /* the header's length */
    long last = -1;
    while (at + 8 <= len && t_le32(b + at) != 0) {
        last = at;
        at += 8 + (long)t_le32(b + at);
    }
    assert_true(last > 0);
    uint32_t plen = t_le32(b + last);
    unsigned char *payload = b + last + 8;
    payload[plen - 8] ^= 0x01;
    uint32_t crc = t_crc32c(payload, plen);
    b[last + 4] = (unsigned char)crc;
    b[last + 5] = (unsigned char)(crc >> 8);
    b[last + 6] = (unsigned char)(crc >> 16);
    b[last + 7] = (unsigned char)(crc >> 24);
    fseek(f, 0, SEEK_SET);
    assert_int_equal(fwrite(b, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    free(b);
}

static void test_trace_replays(void **state)
{
    (void)state;
    if (!dist_or_skip() || getenv("BR_TEST_EXPECT_OVERSELL") != NULL) {
        skip();
    }
    struct t_server s;
    start_unlimited(&s);
    /* A first event, so that the traced one has a prologue to replay. */
    open_event(&s, 10, 4);
    uint64_t ev = t_event(&s, NULL); /* with passes: the queue, admits, passes */
    char tokens[6][1024];
    for (int i = 0; i < 6; i++) {
        t_buyer(&s, "trace", tokens[i], sizeof tokens[i]);
    }
    for (int i = 0; i < 6; i++) {
        char pass[256];
        assert_true(t_wait_pass(&s, tokens[i], ev, pass, sizeof pass, 20000));
        char ph[300];
        snprintf(ph, sizeof ph, "X-Queue-Pass: %s", pass);
        const char *hs[] = {ph, NULL};
        struct t_resp r;
        t_json(&s, "POST", "/api/v1/bookings/reserve", tokens[i],
               json_pack("{s:I, s:i, s:i}", "event_id", (json_int_t)ev, "zone_id", 1 + i % 2,
                         "quantity", 2),
               hs, &r);
        EXPECT(r, 201, NULL);
        uint64_t id = J_INT(r, "id");
        t_resp_free(&r);
        if (i % 3 == 0) {
            t_pay(&s, tokens[i], id);
        } else if (i % 3 == 1) {
            char p[96];
            snprintf(p, sizeof p, "/api/v1/bookings/%" PRIu64 "/cancel", id);
            t_request(&s, "POST", p, tokens[i], NULL, NULL, 0, &r);
            EXPECT(r, 200, NULL);
            t_resp_free(&r);
        }
    }
    /* Refusals are outcomes too. */
    struct t_resp r;
    reserve(&s, tokens[0], ev, 1, &r);
    assert_int_equal(r.status / 100, 4);
    t_resp_free(&r);

    char cmd[1500];
    snprintf(cmd, sizeof cmd,
             "'%s' trace export --redis '%s' --event %" PRIu64 " --out '%s/trace.brj' "
             "> '%s/trace.txt' 2>&1 && '%s' replay '%s/trace.brj' >> '%s/trace.txt' 2>&1",
             t_binary(), s.redis_url, ev, s.dir, s.dir, t_binary(), s.dir, s.dir);
    if (breaking()) { /* one recorded outcome altered: the replay must say so */
        snprintf(cmd, sizeof cmd,
                 "'%s' trace export --redis '%s' --event %" PRIu64 " --out '%s/trace.brj'",
                 t_binary(), s.redis_url, ev, s.dir);
        assert_int_equal(system(cmd), 0);
        snprintf(cmd, sizeof cmd, "%s/trace.brj", s.dir);
        alter_last_outcome(cmd);
        snprintf(cmd, sizeof cmd, "'%s' replay '%s/trace.brj' > '%s/trace.txt' 2>&1", t_binary(),
                 s.dir, s.dir);
    }
    int rc = system(cmd);
    snprintf(cmd, sizeof cmd, "cat '%s/trace.txt' >&2", s.dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "(no output)\n");
    }
    assert_true(WIFEXITED(rc) && WEXITSTATUS(rc) == 0);
    assert_int_equal(t_server_stop(&s), 0);
    t_server_cleanup(&s);
}

/* ---- a webhook cut by its process's death ---- */

/* Both processes with BR_TEST_PROVIDER_CUT=1: the first confirm each takes
 * is decided and recorded, but its webhook is never sent, as if the process
 * died between the commit and the POST; node 0 is then killed. The survivor
 * claims the undelivered event from PostgreSQL's outbox once the dead one's
 * lease lapsed (provider_test_pg.h) and the booking ends confirmed, while a
 * second confirm is refused (409: the intent succeeded). BR_TEST_BREAK=1:
 * the outbox row deleted behind the test's back (the payment stays pending). */
static void test_webhook_outbox(void **state)
{
    (void)state;
    if (!dist_or_skip()) {
        skip();
    }
    setenv("BR_TEST_PROVIDER_CUT", "1", 1);
    struct t_server s;
    t_server_start(&s, NULL);
    unsetenv("BR_TEST_PROVIDER_CUT"); /* not for the restart at the end */
    assert_true(s.nodes >= 2);
    uint64_t ev = open_event(&s, 10, 4);
    char token[1024];
    t_buyer(&s, "outbox", token, sizeof token);
    struct t_resp r;
    uint64_t booking = reserve(&s, token, ev, 1, &r);
    EXPECT(r, 201, NULL);
    t_resp_free(&r);
    t_json(&s, "POST", "/api/v1/payments", token,
           json_pack("{s:I}", "booking_id", (json_int_t)booking), NULL, &r);
    EXPECT(r, 201, NULL);
    char cp[160];
    snprintf(cp, sizeof cp, "/test-provider/v1/payment_intents/%s/confirm",
             J_STR(r, "provider_payment_id"));
    json_t *confirm = json_pack("{s:s, s:s}", "payment_method", "pm_card_visa", "client_secret",
                                J_STR(r, "client_secret"));
    char *body = json_dumps(confirm, JSON_COMPACT);
    json_decref(confirm);
    t_resp_free(&r);
    const char *const hs[] = {"Content-Type: application/json", NULL};
    t_request_to(&s, 0, "POST", cp, NULL, hs, body, strlen(body), &r);
    EXPECT(r, 200, NULL); /* decided; its webhook cut */
    t_resp_free(&r);
    s.current = 0;
    t_server_kill(&s);
    t_request_to(&s, 1, "POST", cp, NULL, hs, body, strlen(body), &r);
    EXPECT(r, 409, "PAYMENT_INTENT_UNEXPECTED_STATE");
    t_resp_free(&r);
    free(body);
    char row[64];
    assert_true(pg_row(&s, row, sizeof row,
                       "SELECT count(*) FROM test_deliveries WHERE delivered_ms IS NULL"));
    assert_string_equal(row, "1");
    if (breaking()) {
        assert_true(pg_row(&s, row, sizeof row, "DELETE FROM test_deliveries"));
    }
    char st[256];
    int64_t t0 = now_ms();
    while (now_ms() - t0 < 20000 &&
           strcmp(booking_status(&s, token, booking, st, sizeof st), "200 confirmed") != 0) {
        usleep(200 * 1000);
    }
    fprintf(stderr, "a webhook cut by a kill: booking %s after %" PRId64 " ms\n", st,
            now_ms() - t0);
    assert_string_equal(st, "200 confirmed");
    assert_true(pg_row(&s, row, sizeof row,
                       "SELECT count(*) FROM test_deliveries WHERE delivered_ms IS NOT NULL"));
    assert_string_equal(row, "1");
    t_server_restart(&s);
    assert_int_equal(t_server_stop(&s), 0);
    t_server_cleanup(&s);
}

int main(int argc, char **argv)
{
    t_init(argc, argv);
    const char *only = getenv("BR_TEST_ONLY"); /* a cmocka test-name filter */
    if (only != NULL) {
        cmocka_set_test_filter(only);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_last_seats),
        cmocka_unit_test(test_kill_one),
        cmocka_unit_test(test_sse_fanout),
        cmocka_unit_test(test_redis_emptied),
        cmocka_unit_test_teardown(test_pg_down, pg_back),
        cmocka_unit_test(test_projection),
        cmocka_unit_test(test_trace_replays),
        cmocka_unit_test(test_webhook_outbox),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
