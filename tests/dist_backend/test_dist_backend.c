/*
 * test_dist_backend.c -- the distributed backend (server/backend_distributed.h)
 * through its operations, two instances in one process standing for two
 * server processes, on a real redis-server (tests/redis/server.c) and a real
 * PostgreSQL (the ctest fixture pg_server, tests/pg/pgtest.h):
 *
 *   server_event_once  the server's own event (actor 0: --demo) is made only
 *                      while there is no event: a second process is refused
 *   register_retried   a registration whose PostgreSQL transaction is retried
 *                      after its twin ran commits (Redis has the same id)
 *   ids_agree          a user and an event written through one process get
 *                      the same id in PostgreSQL and Redis, and the other
 *                      process finds them (user_exists after a cache miss)
 *   positions_batched  queue_positions (the hub's batch) says what
 *                      queue_peek says, user by user, through either process
 *   index_repaired     a hold the user's booking index lost (a crash between
 *                      the reserve script and the index write) is listed again
 *   redis_lost         Redis emptied: ready() says no and writes are refused
 *                      with UNAVAILABLE (nothing sent), in every process
 *   fanout_crosses     a pass issued by the admitter of one process reaches
 *                      the listener (the SSE hub) of the other
 *
 * Each was seen to fail with its property broken by hand (the repair, the
 * data-loss check, the PUBLISH taken out): see the commit that added it.
 * Usage: test_dist_backend (BR_TEST_PG_STATE from CMake: the pg fixture).
 */
#define _DEFAULT_SOURCE

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "adapters/clock.h"
#include "adapters/pg.h"
#include "core/catalog.h"
#include "core/sizing.h"
#include "server/backend_distributed.h"
#include "tests/pg/pgtest.h"
#include "tests/redis/server.h"

static const struct br_log QUIET = {.level = BR_LOG_ERROR, .fd = 2};

/* ---- a provider that is never asked (no payments here) ---- */

static int no_intent(void *p, uint64_t payment_id, uint64_t booking_id, int64_t amount_minor,
                     const char *currency, const char *idem_key, char id_out[BR_PROVIDER_ID_MAX],
                     char secret_out[BR_PROVIDER_SECRET_MAX])
{
    (void)p, (void)payment_id, (void)booking_id, (void)amount_minor, (void)currency, (void)idem_key,
        (void)id_out, (void)secret_out;
    return BR_E_UNAVAILABLE;
}

static int no_refund(void *p, uint64_t payment_id, const char *intent_id, int64_t amount_minor,
                     const char *idem_key)
{
    (void)p, (void)payment_id, (void)intent_id, (void)amount_minor, (void)idem_key;
    return BR_E_UNAVAILABLE;
}

static const struct br_provider_ops NO_PROVIDER = {
    .name = "none", .create_intent = no_intent, .refund = no_refund};

/* ---- what a listener saw ---- */

struct seen {
    pthread_mutex_t mu;
    uint64_t passes;    /* pass_issued calls */
    uint64_t last_user; /* of the last one */
};

static void on_pass(void *ctx, uint64_t event_id, uint64_t user_id, uint64_t pass_id,
                    int64_t expires_at_ms)
{
    (void)event_id, (void)pass_id, (void)expires_at_ms;
    struct seen *s = ctx;
    pthread_mutex_lock(&s->mu);
    s->passes++;
    s->last_user = user_id;
    pthread_mutex_unlock(&s->mu);
}

static void on_queue(void *ctx, uint64_t event_id)
{
    (void)ctx, (void)event_id;
}

/* ---- the deployment under test ---- */

struct fx {
    struct test_redis_server redis;
    char redis_url[64];
    char pg_url[PGT_URL_MAX];
    struct br_pg *pg;
    struct br_distributed *a; /* "process" A */
    struct br_distributed *b; /* "process" B */
    struct seen seen_a;
};

static struct br_distributed *open_one(struct fx *f, unsigned roles, struct seen *seen)
{
    struct br_distributed_config cfg = {.redis_url = f->redis_url,
                                        .pg = f->pg,
                                        .roles = roles,
                                        .tick_ms = 20,
                                        .conns = 8,
                                        .log = &QUIET};
    cfg.payments.ops = &NO_PROVIDER;
    struct br_sizing z;
    memset(&z, 0, sizeof z);
    z.people = 1000;
    br_config_size(&z, 0, &cfg.engine);
    struct br_distributed *x = NULL;
    assert_int_equal(br_distributed_open(&x, &cfg), BR_OK);
    if (seen != NULL) {
        struct br_backend_listener l = {
            .ctx = seen, .pass_issued = on_pass, .queue_changed = on_queue};
        br_distributed_set_listener(x, l);
    }
    assert_int_equal(br_distributed_start(x), BR_OK);
    return x;
}

/* A: api only (nothing in the background); B: api and admitter. */
static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    pthread_mutex_init(&f->seen_a.mu, NULL);
    assert_int_equal(test_redis_server_start(&f->redis), 0);
    snprintf(f->redis_url, sizeof f->redis_url, "redis://127.0.0.1:%d", f->redis.port);
    char name[64];
    snprintf(name, sizeof name, "dist_backend_%d", (int)getpid());
    f->pg = pgt_open_db(name, 4, &QUIET, f->pg_url);
    f->a = open_one(f, BR_DIST_ROLE_API, &f->seen_a);
    f->b = open_one(f, BR_DIST_ROLE_API | BR_DIST_ROLE_ADMITTER, NULL);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    br_distributed_close(f->a);
    br_distributed_close(f->b);
    br_pg_close(f->pg);
    test_redis_server_stop(&f->redis);
    free(f);
    return 0;
}

/* ---- calls (every operation answers before it returns) ---- */

static void done(struct br_call *c)
{
    *(int *)c->ctx = 1;
}

static struct br_call *call_init(struct br_call *c, int *flag)
{
    memset(c, 0, sizeof *c);
    *flag = 0;
    c->done = done;
    c->ctx = flag;
    return c;
}

static struct br_backend *be(struct br_distributed *x)
{
    return br_distributed_backend(x);
}

static uint64_t user_new(struct br_distributed *x, const char *email)
{
    uint8_t hash[BR_PASSWORD_HASH_LEN] = {1};
    uint8_t salt[BR_SALT_LEN] = {2};
    struct br_call c;
    int flag;
    be(x)->ops->user_register(be(x), email, "N", hash, salt, BR_ROLE_ORGANIZER,
                              call_init(&c, &flag));
    assert_int_equal(flag, 1);
    assert_int_equal(c.err, BR_OK);
    return c.r.user.id;
}

/* A one-zone event through x by owner (0: the server itself): the call's
 * error, the id into *id. */
static int event_try(struct br_distributed *x, uint64_t owner, int64_t opens_ms,
                     uint32_t admit_per_tick, uint64_t *id)
{
    struct br_event_spec spec;
    br_event_spec_default(&spec, opens_ms);
    snprintf(spec.name, sizeof spec.name, "E");
    spec.requires_pass = false;
    spec.admit_per_tick = admit_per_tick;
    spec.queue_capacity = 1000; /* the default takes a quarter of all queue places */
    spec.zone_count = 1;
    snprintf(spec.zones[0].name, sizeof spec.zones[0].name, "Z");
    spec.zones[0].capacity = 100;
    spec.zones[0].price_minor = 100;
    snprintf(spec.zones[0].currency, sizeof spec.zones[0].currency, "EUR");
    struct br_call c;
    int flag;
    be(x)->ops->event_create(be(x), owner, &spec, call_init(&c, &flag));
    assert_int_equal(flag, 1);
    *id = c.r.event.id;
    return c.err;
}

static uint64_t event_new(struct br_distributed *x, uint64_t owner, int64_t opens_ms,
                          uint32_t admit_per_tick)
{
    uint64_t id = 0;
    assert_int_equal(event_try(x, owner, opens_ms, admit_per_tick, &id), BR_OK);
    return id;
}

static redisContext *raw(struct fx *f)
{
    redisContext *c = redisConnect("127.0.0.1", f->redis.port);
    assert_true(c != NULL && c->err == 0);
    return c;
}

static long long raw_int(redisContext *c, const char *cmd)
{
    redisReply *r = redisCommand(c, cmd);
    assert_non_null(r);
    long long v = r->type == REDIS_REPLY_INTEGER  ? r->integer
                  : r->type == REDIS_REPLY_STRING ? atoll(r->str)
                                                  : -1;
    freeReplyObject(r);
    return v;
}

/* ---- the tests ---- */

/* The server's own event (actor 0, --demo) through A makes event 1; then
 * through B (a process started at the same moment, whose list saw no event
 * yet) it is refused with DUPLICATE and nothing is created. */
static void test_server_event_once(void **state)
{
    struct fx *f = *state;
    int64_t opens = br_clock_wall_ms() + 3600000;
    uint64_t id = 0;
    assert_int_equal(event_try(f->a, 0, opens, 1, &id), BR_OK);
    assert_int_equal(id, 1);
    assert_int_equal(event_try(f->b, 0, opens, 1, &id), BR_E_DUPLICATE);
    assert_int_equal(pgt_scalar(f->pg_url, "SELECT count(*) FROM events"), 1);
    redisContext *r = raw(f);
    assert_int_equal(raw_int(r, "HGET br:{cat}:cat events"), 1);
    redisFree(r);
}

/* PostgreSQL loses the registration's session before COMMIT: pg retries
 * the transaction, whose hook finds the email already in Redis under the
 * same id (the adapter's email lookup) and lets it commit. */
static void test_register_retried(void **state)
{
    struct fx *f = *state;
    br_pg_fault_kill_before_commit(f->pg, 1);
    uint64_t u = user_new(f->a, "retried@dist.test");
    assert_int_equal(pgt_scalar(f->pg_url, "SELECT max(id) FROM users"), (long long)u);
    redisContext *r = raw(f);
    assert_int_equal(raw_int(r, "HGET br:{cat}:cat users"), (long long)u);
    assert_int_equal(raw_int(r, "HGET br:{cat}:email retried@dist.test"), (long long)u);
    redisFree(r);
}

static void test_ids_agree(void **state)
{
    struct fx *f = *state;
    uint64_t u1 = user_new(f->a, "one@dist.test");
    uint64_t u2 = user_new(f->b, "two@dist.test");
    assert_int_equal(u2, u1 + 1);
    uint64_t ev = event_new(f->b, u1, br_clock_wall_ms() + 3600000, 1);
    assert_int_equal(pgt_scalar(f->pg_url, "SELECT max(id) FROM users"), (long long)u2);
    assert_int_equal(pgt_scalar(f->pg_url, "SELECT max(id) FROM events"), (long long)ev);
    redisContext *r = raw(f);
    assert_int_equal(raw_int(r, "HGET br:{cat}:cat users"), (long long)u2);
    assert_int_equal(raw_int(r, "HGET br:{cat}:cat events"), (long long)ev);
    redisFree(r);
    /* A never saw u2 registered: its cache misses and asks again. */
    assert_true(be(f->a)->ops->user_exists(be(f->a), u2));
    assert_false(be(f->a)->ops->user_exists(be(f->a), u2 + 1));
    struct br_call c;
    int flag;
    be(f->a)->ops->user_find(be(f->a), "two@dist.test", call_init(&c, &flag));
    assert_int_equal(c.err, BR_OK);
    assert_int_equal(c.r.user.id, u2);
}

static void test_positions_batched(void **state)
{
    struct fx *f = *state;
    uint64_t owner = user_new(f->a, "owner@dist.test");
    /* Opens in an hour: everyone waits in the pre-queue, nobody is admitted. */
    uint64_t ev = event_new(f->a, owner, br_clock_wall_ms() + 3600000, 1);
    uint64_t users[6];
    for (int i = 0; i < 6; i++) {
        char email[64];
        snprintf(email, sizeof email, "q%d@dist.test", i);
        users[i] = user_new(f->a, email);
        if (i < 5) { /* the sixth never joins */
            struct br_call c;
            int flag;
            be(f->a)->ops->queue_join(be(f->a), users[i], ev, call_init(&c, &flag));
            assert_int_equal(c.err, BR_OK);
        }
    }
    struct br_api_queue batch[6];
    int rc[6];
    assert_int_equal(be(f->b)->ops->queue_positions(be(f->b), ev, users, 6, batch, rc), BR_OK);
    for (int i = 0; i < 6; i++) {
        struct br_api_queue one;
        int prc = be(f->a)->ops->queue_peek(be(f->a), users[i], ev, &one);
        assert_int_equal(rc[i], prc);
        assert_int_equal(rc[i], i < 5 ? BR_OK : BR_E_NOT_IN_QUEUE);
        if (prc == BR_OK) {
            assert_int_equal(batch[i].status, one.status);
            assert_int_equal(batch[i].status, BR_QS_PREQUEUE);
            assert_int_equal(batch[i].queue_length, 5);
            assert_int_equal(batch[i].position, one.position);
        }
    }
    /* An event that does not exist: every user NOT_FOUND, the call fine. */
    assert_int_equal(be(f->b)->ops->queue_positions(be(f->b), ev + 100, users, 2, batch, rc),
                     BR_OK);
    assert_int_equal(rc[0], BR_E_NOT_FOUND);
}

static void test_index_repaired(void **state)
{
    struct fx *f = *state;
    uint64_t owner = user_new(f->a, "owner2@dist.test");
    uint64_t ev = event_new(f->a, owner, br_clock_wall_ms() - 1000, 1);
    uint64_t buyer = user_new(f->a, "buyer@dist.test");
    struct br_call c;
    int flag;
    be(f->a)->ops->reserve(be(f->a), buyer, ev, 1, 2, 0, 0, call_init(&c, &flag));
    assert_int_equal(c.err, BR_OK);
    uint64_t hold = c.r.booking.id;
    /* The index write lost (the process died between script and ZADD). */
    redisContext *r = raw(f);
    char cmd[96];
    snprintf(cmd, sizeof cmd, "DEL br:{u%llu}:bk", (unsigned long long)buyer);
    assert_int_equal(raw_int(r, cmd), 1);
    redisFree(r);
    struct br_api_booking list[BR_API_LIST_MAX];
    call_init(&c, &flag);
    c.bookings = list;
    c.list_cap = BR_API_LIST_MAX;
    be(f->b)->ops->booking_list(be(f->b), buyer, &c);
    assert_int_equal(c.err, BR_OK);
    assert_int_equal(c.list_count, 1);
    assert_int_equal(list[0].id, hold);
    assert_int_equal(list[0].quantity, 2);
}

static void test_fanout_crosses(void **state)
{
    struct fx *f = *state;
    uint64_t owner = user_new(f->a, "owner3@dist.test");
    uint64_t ev = event_new(f->a, owner, br_clock_wall_ms() - 1000, 5);
    uint64_t buyer = user_new(f->a, "fan@dist.test");
    pthread_mutex_lock(&f->seen_a.mu);
    uint64_t before = f->seen_a.passes;
    pthread_mutex_unlock(&f->seen_a.mu);
    struct br_call c;
    int flag;
    be(f->a)->ops->queue_join(be(f->a), buyer, ev, call_init(&c, &flag));
    assert_int_equal(c.err, BR_OK);
    /* A admits nobody (no admitter role); B does and publishes. */
    bool got = false;
    for (int i = 0; i < 250 && !got; i++) {
        pthread_mutex_lock(&f->seen_a.mu);
        got = f->seen_a.passes > before && f->seen_a.last_user == buyer;
        pthread_mutex_unlock(&f->seen_a.mu);
        usleep(20000);
    }
    assert_true(got);
}

static void test_redis_lost(void **state)
{
    struct fx *f = *state;
    uint64_t owner = user_new(f->a, "owner4@dist.test");
    uint64_t ev = event_new(f->a, owner, br_clock_wall_ms() - 1000, 1);
    const char *why = NULL;
    assert_true(be(f->a)->ops->ready(be(f->a), &why));
    redisContext *r = raw(f);
    redisReply *rep = redisCommand(r, "FLUSHALL");
    freeReplyObject(rep);
    redisFree(r);
    /* Every process notices within about a second (its epoch check). */
    bool a_refuses = false, b_refuses = false;
    for (int i = 0; i < 150 && !(a_refuses && b_refuses); i++) {
        a_refuses = !be(f->a)->ops->ready(be(f->a), &why);
        b_refuses = !be(f->b)->ops->ready(be(f->b), NULL);
        usleep(20000);
    }
    assert_true(a_refuses && b_refuses);
    assert_non_null(strstr(why, "lost"));
    struct br_call c;
    int flag;
    be(f->b)->ops->reserve(be(f->b), owner, ev, 1, 1, 0, 0, call_init(&c, &flag));
    assert_int_equal(c.err, BR_E_UNAVAILABLE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_server_event_once), /* first: no event yet */
        cmocka_unit_test(test_register_retried),
        cmocka_unit_test(test_ids_agree),
        cmocka_unit_test(test_positions_batched),
        cmocka_unit_test(test_index_repaired),
        cmocka_unit_test(test_fanout_crosses),
        cmocka_unit_test(test_redis_lost), /* last: it empties Redis */
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
