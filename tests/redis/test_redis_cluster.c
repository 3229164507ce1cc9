/*
 * test_redis_cluster.c -- the Redis adapter on a three-node Redis Cluster:
 * slots computed as Redis computes them, events spread over several nodes,
 * and a slot migrated while a generated sequence runs, with every outcome
 * and the final state compared with the core's (so following ASK and MOVED
 * is shown to be right, not only to happen); TRYAGAIN bounded; seeds that
 * do not answer; a lost reply (UNKNOWN_OUTCOME), CLUSTERDOWN and a dead
 * node (UNAVAILABLE).
 *
 * The cluster comes from tests/fixtures/redis-cluster.sh (ctest runs
 * `redis-cluster.sh run -- test_redis_cluster`), which passes the node list
 * in BR_TEST_REDIS_CLUSTER and stops the nodes afterwards. The tests run in
 * order on one cluster; the migration test moves event 1's slot for good.
 *
 * With --failover (ctest redis_cluster_failover: three masters with a
 * replica each, a node timeout of 1 s) one test instead: a master dies
 * during a sequence and its replica takes over.
 *
 * The planted builds (BR_PLANT=CLUSTER_MOVED_IGNORED, CLUSTER_ASK_IGNORED,
 * CLUSTER_SCRIPT_ASK_FOLLOWED: redis_cluster.c) must fail the migration
 * test (scripts/test.d/52-redis-cluster-plant.sh).
 */
#define _POSIX_C_SOURCE 200809L

#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "adapters/redis.h"
#include "adapters/redis_cluster.h"
#include "core/engine.h"
#include "core/err.h"
#include "core/gen.h"
#include "tests/redis/server.h"

#define NODES 3     /* the main group's cluster: three masters */
#define NODES_MAX 6 /* the failover group's: three masters and a replica each */
#define SEQ_LEN 900 /* three phases of 300: before, during (ASK) and after (MOVED) the move */

struct node {
    int port;
    char id[41];
    redisContext *admin;
};

struct fixture {
    char list[BR_REDIS_SEEDS_MAX]; /* "127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3" */
    struct node node[NODES_MAX];
    int count; /* nodes in the list */
};

static int group_setup(void **state)
{
    static struct fixture f;
    memset(&f, 0, sizeof f);
    const char *list = getenv("BR_TEST_REDIS_CLUSTER");
    if (list == NULL || strlen(list) >= sizeof f.list) {
        fprintf(stderr, "run under tests/fixtures/redis-cluster.sh run -- %s\n",
                "test_redis_cluster");
        return -1;
    }
    strcpy(f.list, list);
    const char *p = list;
    for (int i = 0; i < NODES_MAX && p != NULL; i++) {
        const char *colon = strchr(p, ':');
        if (colon == NULL) {
            return -1;
        }
        f.node[i].port = atoi(colon + 1);
        struct timeval tv = {.tv_sec = 5, .tv_usec = 0};
        f.node[i].admin = redisConnectWithTimeout("127.0.0.1", f.node[i].port, tv);
        if (f.node[i].admin == NULL || f.node[i].admin->err != 0) {
            return -1;
        }
        redisReply *r = redisCommand(f.node[i].admin, "CLUSTER MYID");
        if (r == NULL || r->type != REDIS_REPLY_STRING || r->len != 40) {
            return -1;
        }
        memcpy(f.node[i].id, r->str, 41);
        freeReplyObject(r);
        f.count = i + 1;
        p = strchr(colon, ',');
        p = p != NULL ? p + 1 : p;
    }
    if (f.count < NODES) {
        return -1;
    }
    *state = &f;
    return 0;
}

static int group_teardown(void **state)
{
    struct fixture *f = *state;
    for (int i = 0; i < f->count; i++) {
        redisFree(f->node[i].admin);
    }
    return 0;
}

/* An admin command on one node that must succeed; the reply is freed. */
static void admin_ok(struct node *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(n->admin, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    if (r->type == REDIS_REPLY_ERROR) {
        fprintf(stderr, "admin on %d: %s\n", n->port, r->str);
    }
    assert_int_not_equal(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
}

static long long admin_int(struct node *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(n->admin, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

/* The node holding keys of slot s (COUNTKEYSINSLOT > 0), or -1. */
static int holder(struct fixture *f, unsigned s)
{
    for (int i = 0; i < NODES; i++) {
        if (admin_int(&f->node[i], "CLUSTER COUNTKEYSINSLOT %u", s) > 0) {
            return i;
        }
    }
    return -1;
}

static void test_slot_is_crc16_of_the_hash_tag(void **state)
{
    struct fixture *f = *state;
    /* The specification's check value: CRC16-XMODEM("123456789") = 0x31c3. */
    assert_int_equal(br_cluster_slot("123456789", 9), 0x31c3 & 16383);
    static const char *const keys[] = {
        "br:{cat}:cat",
        "br:{e1}:",
        "br:{e1}:ev",
        "br:{e42}:h:7",
        "br:{u9}:idem:3",
        "br:{v77}:pev",
        "{}",
        "foo{}{bar}",
        "foo{{bar}}zap",
        "foo{bar}{zap}",
        "{user1000}.x",
        "no tag at all",
        "}{",
        "a{b",
        "",
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        long long want = admin_int(&f->node[0], "CLUSTER KEYSLOT %s", keys[i]);
        assert_int_equal(br_cluster_slot(keys[i], strlen(keys[i])), want);
    }
}

static void test_cluster_url(void **state)
{
    (void)state;
    struct br_redis_options o;
    assert_int_equal(br_redis_parse_url("redis-cluster://10.0.0.5:7000,10.0.0.6,h:7002", &o),
                     BR_OK);
    assert_true(o.cluster);
    assert_string_equal(o.seeds, "10.0.0.5:7000,10.0.0.6,h:7002");
    assert_string_equal(o.host, "10.0.0.5");
    assert_int_equal(o.port, 7000);
    assert_int_equal(o.db, 0);
    assert_int_equal(br_redis_parse_url("redis-cluster://h", &o), BR_OK);
    assert_int_equal(o.port, 6379);
    assert_int_equal(br_redis_parse_url("redis://h:7000", &o), BR_OK);
    assert_false(o.cluster);
    static const char *const bad[] = {
        "redis-cluster://",        "redis-cluster://h:7000,", "redis-cluster://,h:7000",
        "redis-cluster://h:0",     "redis-cluster://h:70000", "redis-cluster://h:7000/1",
        "redis-cluster://h:x,k:1", "redis-cluster://h:1,:2",  "redis-cluster://h:1,,k:2",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (br_redis_parse_url(bad[i], &o) != BR_E_INVALID) {
            fail_msg("%s accepted", bad[i]);
        }
    }
}

static void test_open_learns_every_slot(void **state)
{
    struct fixture *f = *state;
    static struct br_cluster c;
    char one[64];
    snprintf(one, sizeof one, "127.0.0.1:%d", f->node[1].port);
    assert_int_equal(br_cluster_open(&c, one, 1000, 5000, true), BR_OK);
    uint32_t masters = 0;
    for (uint32_t i = 0; i < c.node_count; i++) {
        masters += c.node[i].master;
    }
    assert_int_equal(masters, NODES);
    for (unsigned s = 0; s < BR_CLUSTER_SLOTS; s++) {
        assert_int_not_equal(c.slot_node[s], BR_CLUSTER_NO_NODE);
    }
    br_cluster_close(&c);
    /* A dead seed first: the next one answers. All dead: unavailable. */
    char list[128];
    snprintf(list, sizeof list, "127.0.0.1:1,127.0.0.1:%d", f->node[2].port);
    assert_int_equal(br_cluster_open(&c, list, 1000, 5000, true), BR_OK);
    br_cluster_close(&c);
    assert_int_equal(br_cluster_open(&c, "127.0.0.1:1", 1000, 5000, true), BR_E_UNAVAILABLE);
    /* A plain redis-server answers, but is no cluster; a one-node cluster is one. */
    struct test_redis_server plain = {0}, single = {0};
    assert_int_equal(test_redis_server_start(&plain), 0);
    assert_int_equal(test_redis_server_start_cluster(&single), 0);
    snprintf(list, sizeof list, "127.0.0.1:%d", plain.port);
    int rc_plain = br_cluster_open(&c, list, 1000, 5000, true);
    snprintf(list, sizeof list, "127.0.0.1:%d", single.port);
    int rc_single = br_cluster_open(&c, list, 1000, 5000, true);
    uint32_t single_nodes = c.node_count;
    br_cluster_close(&c);
    test_redis_server_stop(&plain);
    test_redis_server_stop(&single);
    assert_int_equal(rc_plain, BR_E_INVALID);
    assert_int_equal(rc_single, BR_OK);
    assert_int_equal(single_nodes, 1);
    assert_int_equal(br_cluster_open(&c, "127.0.0.1:x", 1000, 5000, true), BR_E_INVALID);
    assert_int_equal(br_cluster_open(&c, "127.0.0.1:7000,", 1000, 5000, true), BR_E_INVALID);
}

/* ---- a generated sequence, core against Redis, with a slot moved in the middle ---- */

struct run {
    struct br_config cfg;
    struct br_engine engine;
    void *mem;
    struct br_redis redis;
    struct br_effect fx_e[BR_EFFECTS_MAX];
    struct br_effect fx_r[BR_EFFECTS_MAX];
    struct br_gen gen;
    struct br_gen_source src;
    uint64_t for_event1; /* commands naming event 1 (whose slot moves) */
    uint64_t refused;    /* ... refused while it moved */
};

static bool same_effects(const struct br_effect *a, const struct br_effect *b, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        if (a[i].kind != b[i].kind || a[i].event_id != b[i].event_id ||
            a[i].user_id != b[i].user_id || a[i].id != b[i].id || a[i].ref != b[i].ref ||
            a[i].deadline_ms != b[i].deadline_ms || a[i].amount_minor != b[i].amount_minor) {
            return false;
        }
    }
    return true;
}

static uint64_t event_of(const struct br_cmd *c)
{
    switch (c->type) {
    case BR_CMD_QUEUE_JOIN:
    case BR_CMD_QUEUE_LEAVE:
    case BR_CMD_ADMIT:
        return c->u.queue_join.event_id;
    case BR_CMD_RESERVE:
        return c->u.reserve.event_id;
    case BR_CMD_SWEEP:
        return c->u.sweep.event_id;
    case BR_CMD_CANCEL:
        return c->u.cancel.hold_id >> 32;
    case BR_CMD_PAYMENT_CREATE:
        return c->u.payment_create.hold_id >> 32;
    case BR_CMD_PAYMENT_EVENT:
        return c->u.payment_event.payment_id >> 32;
    case BR_CMD_REFUND_RESULT:
        return c->u.refund_result.payment_id >> 32;
    default:
        return 0;
    }
}

/*
 * n more generated commands on both sides; each outcome must agree. While
 * `moving` (event 1's slot migrates), a script of event 1 must be refused
 * with UNAVAILABLE (it waits for the move, redis_cluster.h), so the core is
 * not asked; saga_step, which runs every event's share, is left out then.
 */
static void steps(struct run *x, size_t n, const char *phase, bool moving);

/*
 * After a failover: n commands on both sides, where Redis may first answer
 * UNAVAILABLE (nothing ran: a node's connection refused, the map being
 * learned again) and is asked again, at most `tries` times, 50 ms apart.
 * Returns how many answers were UNAVAILABLE before the first real one.
 */
static uint64_t steps_retrying(struct run *x, size_t n, const char *phase, int tries)
{
    uint64_t refused = 0;
    for (size_t i = 0; i < n; i++) {
        struct br_cmd c;
        assert_true(br_gen_next(&x->gen, &x->src, &c));
        struct br_outcome oe, orr;
        uint32_t ne = 0, nr = 0;
        for (int t = 0; t < tries; t++) {
            br_redis_apply(&x->redis, &c, &orr, x->fx_r, &nr);
            if (orr.err != BR_E_UNAVAILABLE) {
                break;
            }
            refused++;
            struct timespec ts = {.tv_sec = 0, .tv_nsec = 50000000};
            nanosleep(&ts, NULL);
        }
        br_engine_apply(&x->engine, &c, &oe);
        const struct br_effect *fx = br_engine_effects(&x->engine, &ne);
        memcpy(x->fx_e, fx, sizeof *fx * ne);
        if (memcmp(&oe, &orr, sizeof oe) != 0 || ne != nr || !same_effects(x->fx_e, x->fx_r, nr)) {
            fail_msg("%s, command %zu (%s, event %" PRIu64 "): core says %s, Redis says %s", phase,
                     i, br_cmd_name(c.type), event_of(&c), br_err_name(oe.err),
                     br_err_name(orr.err));
        }
        br_gen_observe(&x->gen, &c, &oe, x->fx_e, ne);
    }
    return refused;
}

static void steps(struct run *x, size_t n, const char *phase, bool moving)
{
    for (size_t i = 0; i < n; i++) {
        struct br_cmd c;
        assert_true(br_gen_next(&x->gen, &x->src, &c));
        if (moving && c.type == BR_CMD_SAGA_STEP) {
            continue;
        }
        struct br_outcome oe, orr;
        uint32_t ne = 0, nr = 0;
        x->for_event1 += event_of(&c) == 1;
        if (moving && event_of(&c) == 1) {
            br_redis_apply(&x->redis, &c, &orr, x->fx_r, &nr);
            if (orr.err != BR_E_UNAVAILABLE) {
                fail_msg("%s, command %zu (%s, event 1): Redis says %s, not UNAVAILABLE", phase, i,
                         br_cmd_name(c.type), br_err_name(orr.err));
            }
            x->refused++;
            continue;
        }
        br_engine_apply(&x->engine, &c, &oe);
        const struct br_effect *fx = br_engine_effects(&x->engine, &ne);
        memcpy(x->fx_e, fx, sizeof *fx * ne);
        br_redis_apply(&x->redis, &c, &orr, x->fx_r, &nr);
        if (memcmp(&oe, &orr, sizeof oe) != 0 || ne != nr || !same_effects(x->fx_e, x->fx_r, nr)) {
            fail_msg("%s, command %zu (%s, event %" PRIu64 "): core says %s, Redis says %s", phase,
                     i, br_cmd_name(c.type), event_of(&c), br_err_name(oe.err),
                     br_err_name(orr.err));
        }
        br_gen_observe(&x->gen, &c, &oe, x->fx_e, ne);
    }
}

/* The whole state, read back across the nodes, is the core's. */
static void same_state(struct run *x, const char *phase)
{
    uint64_t hr = 0;
    int rc = br_redis_state_hash(&x->redis, &hr);
    if (rc != BR_OK || hr != br_engine_state_hash(&x->engine)) {
        fail_msg("%s, the state read back: %s, %s", phase, br_err_name(rc),
                 rc == BR_OK ? "differs from the core's" : "not read");
    }
}

static void run_open(struct fixture *f, struct run *x, uint64_t seed)
{
    struct br_gen_params params;
    br_gen_params_default(&params);
    params.weights[BR_CMD_SESSION_OPEN] = params.weights[BR_CMD_SESSION_ROTATE] = 0;
    params.weights[BR_CMD_SESSION_REVOKE] = params.weights[BR_CMD_SESSION_REVOKE_ALL] = 0;
    br_gen_engine_config(&params, seed, &x->cfg);
    uint32_t room = 8 * SEQ_LEN + 64; /* table sizes are no limits in Redis (test_redis_diff.c) */
    x->cfg.passes_max = x->cfg.holds_max = x->cfg.payments_max = room;
    x->cfg.idem_max = x->cfg.provider_events_max = room;
    size_t size = br_engine_memory_size(&x->cfg);
    x->mem = aligned_alloc(16, (size + 15) & ~(size_t)15);
    assert_non_null(x->mem);
    assert_int_equal(br_engine_init(&x->engine, &x->cfg, x->mem, size), BR_OK);
    char url[BR_REDIS_SEEDS_MAX + 32];
    snprintf(url, sizeof url, "redis-cluster://%s", f->list);
    struct br_redis_options opt;
    assert_int_equal(br_redis_parse_url(url, &opt), BR_OK);
    assert_true(opt.cluster);
    opt.fresh = true;
    opt.quiet = getenv("BR_TEST_VERBOSE") == NULL; /* refusals while a slot migrates */
    assert_int_equal(br_redis_open(&x->redis, &opt, &x->cfg), BR_OK);
    assert_non_null(x->redis.cluster);
    br_gen_init(&x->gen, &params);
    br_gen_source_rng(&x->src, seed, 0x636c757374ULL);
}

static void run_close(struct run *x)
{
    br_redis_close(&x->redis);
    free(x->mem);
}

/* The first phase's events must live on at least two nodes. */
static void check_events_spread(struct fixture *f, struct run *x)
{
    int nodes_with_events = 0;
    bool seen[NODES] = {false};
    assert_true(x->engine.event_count >= 2);
    for (uint64_t e = 1; e <= x->engine.event_count; e++) {
        char key[64];
        snprintf(key, sizeof key, "br:{e%" PRIu64 "}:ev", e);
        long long slot = admin_int(&f->node[0], "CLUSTER KEYSLOT %s", key);
        assert_int_equal(slot, br_cluster_slot(key, strlen(key)));
        int h = holder(f, (unsigned)slot);
        assert_true(h >= 0);
        nodes_with_events += !seen[h];
        seen[h] = true;
        printf("event %" PRIu64 ": slot %lld on node %d (port %d)\n", e, slot, h, f->node[h].port);
    }
    assert_true(nodes_with_events >= 2);
}

/* MIGRATE of the slot's keys number first, first + step, ... (as listed by
 * CLUSTER GETKEYSINSLOT) from node `from` to node `to`, one MIGRATE each.
 * Returns how many moved. */
static size_t slot_move_keys(struct node *from, struct node *to, unsigned slot, size_t first,
                             size_t step)
{
    redisReply *keys = redisCommand(from->admin, "CLUSTER GETKEYSINSLOT %u 100000", slot);
    assert_non_null(keys);
    assert_int_equal(keys->type, REDIS_REPLY_ARRAY);
    size_t moved = 0;
    char port[16];
    snprintf(port, sizeof port, "%d", to->port);
    for (size_t i = first; i < keys->elements; i += step) {
        const char *argv[6] = {"MIGRATE", "127.0.0.1", port, keys->element[i]->str, "0", "5000"};
        size_t len[6] = {7, 9, strlen(port), keys->element[i]->len, 1, 4};
        redisReply *r = redisCommandArgv(from->admin, 6, argv, len);
        assert_non_null(r);
        assert_int_equal(r->type, REDIS_REPLY_STATUS);
        freeReplyObject(r);
        moved++;
    }
    freeReplyObject(keys);
    return moved;
}

/* Starts a migration of the slot: IMPORTING on the target, then MIGRATING
 * on the source (the order redis-cli --cluster uses). */
static void slot_begin(struct node *from, struct node *to, unsigned slot)
{
    admin_ok(to, "CLUSTER SETSLOT %u IMPORTING %s", slot, from->id);
    admin_ok(from, "CLUSTER SETSLOT %u MIGRATING %s", slot, to->id);
}

/* Ends the migration: the slot belongs to `to` on every node. */
static void slot_finish(struct fixture *f, int to, unsigned slot)
{
    admin_ok(&f->node[to], "CLUSTER SETSLOT %u NODE %s", slot, f->node[to].id);
    for (int i = 0; i < NODES; i++) {
        if (i != to) {
            admin_ok(&f->node[i], "CLUSTER SETSLOT %u NODE %s", slot, f->node[to].id);
        }
    }
}

static void test_slot_moved_during_a_sequence(void **state)
{
    struct fixture *f = *state;
    static struct run x;
    memset(&x, 0, sizeof x);
    run_open(f, &x, 11);
    const struct br_cluster_stats *st = &x.redis.cluster->stats;

    steps(&x, SEQ_LEN / 3, "before the move", false);
    check_events_spread(f, &x);
    const char *key = "br:{e1}:";
    unsigned slot = br_cluster_slot(key, strlen(key));
    int from = holder(f, slot);
    assert_true(from >= 0);
    int to = (from + 1) % NODES;

    /* Half of event 1's keys on each node: its scripts wait (a short wait
     * here, to keep the test quick) and are refused; reads follow ASK. */
    uint64_t ask0 = st->ask, e1 = x.for_event1;
    x.redis.cluster->script_ask_waits_max = 1;
    slot_begin(&f->node[from], &f->node[to], slot);
    size_t half = slot_move_keys(&f->node[from], &f->node[to], slot, 0, 2);
    printf("slot %u migrating from port %d to %d: %zu keys moved, the rest not yet\n", slot,
           f->node[from].port, f->node[to].port, half);
    steps(&x, SEQ_LEN / 3, "while the slot migrates", true);
    same_state(&x, "while the slot migrates");
    printf("while migrating: %" PRIu64 " commands for event 1 refused after %" PRIu64
           " waits, %" PRIu64 " ASK followed (reads)\n",
           x.for_event1 - e1, st->ask_waits, st->ask - ask0);
    assert_true(x.refused > 0 && x.refused == x.for_event1 - e1);
    assert_true(st->ask_waits >= x.refused);
    assert_true(st->ask > ask0);
    assert_int_equal(st->moved, 0);

    uint64_t moved0 = st->moved, refreshes0 = st->refreshes;
    e1 = x.for_event1;
    slot_move_keys(&f->node[from], &f->node[to], slot, 0, 1);
    slot_finish(f, to, slot);
    x.redis.cluster->script_ask_waits_max = BR_CLUSTER_SCRIPT_ASK_WAITS_MAX;
    steps(&x, SEQ_LEN / 3, "after the move", false);
    printf("after the move: %" PRIu64 " commands for event 1, %" PRIu64 " MOVED followed, "
           "%" PRIu64 " map refreshes\n",
           x.for_event1 - e1, st->moved - moved0, st->refreshes - refreshes0);
    assert_true(x.for_event1 > e1);
    assert_true(st->moved > moved0);
    assert_true(st->refreshes > refreshes0);
    assert_int_equal(holder(f, slot), to);
    assert_int_equal(admin_int(&f->node[from], "CLUSTER COUNTKEYSINSLOT %u", slot), 0);

    /* Commands outside the scripts reach every event's node too. */
    for (uint64_t e = 1; e <= x.engine.event_count; e++) {
        char ev[64];
        snprintf(ev, sizeof ev, "br:{e%" PRIu64 "}:ev", e);
        const char *argv[3] = {"HGET", ev, "id"};
        size_t len[3] = {4, strlen(ev), 2};
        redisReply *rep;
        assert_int_equal(br_redis_command(&x.redis, 3, argv, len, &rep), BR_OK);
        assert_int_equal(rep->type, REDIS_REPLY_STRING);
        assert_int_equal(strtoull(rep->str, NULL, 10), e);
        freeReplyObject(rep);
        assert_int_equal(br_redis_commandf(&x.redis, &rep, "HMGET br:{e%" PRIu64 "}:ev %s %b", e,
                                           "id", "zc", (size_t)2),
                         BR_OK);
        assert_int_equal(rep->type, REDIS_REPLY_ARRAY);
        assert_int_equal(rep->elements, 2);
        assert_int_equal(strtoull(rep->element[0]->str, NULL, 10), e);
        freeReplyObject(rep);
    }
    redisReply *none = NULL;
    assert_int_equal(br_redis_commandf(&x.redis, &none, ""), BR_E_INVALID);
    assert_null(none);
    same_state(&x, "after the move");
    run_close(&x);
}

/* A two-key command while its slot's keys are split: TRYAGAIN, waited out
 * a bounded number of times, then unavailable; after the move it works
 * (through a MOVED). */
static void test_tryagain_is_bounded(void **state)
{
    struct fixture *f = *state;
    static struct br_cluster c;
    assert_int_equal(br_cluster_open(&c, f->list, 1000, 5000, true), BR_OK);
    const char *set_a[3] = {"SET", "t{split}a", "1"}, *set_b[3] = {"SET", "t{split}b", "2"};
    size_t l3[3] = {3, 9, 1};
    redisReply *rep;
    assert_int_equal(br_cluster_call(&c, 3, set_a, l3, &rep), BR_OK);
    freeReplyObject(rep);
    assert_int_equal(br_cluster_call(&c, 3, set_b, l3, &rep), BR_OK);
    freeReplyObject(rep);
    unsigned slot = br_cluster_slot("{split}", 7);
    int from = holder(f, slot), to = (from + 2) % NODES;
    assert_true(from >= 0);
    admin_ok(&f->node[to], "CLUSTER SETSLOT %u IMPORTING %s", slot, f->node[from].id);
    admin_ok(&f->node[from], "CLUSTER SETSLOT %u MIGRATING %s", slot, f->node[to].id);
    admin_ok(&f->node[from], "MIGRATE 127.0.0.1 %d t{split}a 0 5000", f->node[to].port);

    const char *mget[3] = {"MGET", "t{split}a", "t{split}b"};
    size_t lm[3] = {4, 9, 9};
    uint64_t waits0 = c.stats.tryagain;
    assert_int_equal(br_cluster_call(&c, 3, mget, lm, &rep), BR_E_UNAVAILABLE);
    assert_int_equal(c.stats.tryagain - waits0, BR_CLUSTER_TRYAGAIN_MAX);
    /* One key alone: the source lacks it and says ASK; the target has it. */
    const char *get_a[2] = {"GET", "t{split}a"};
    size_t lg[2] = {3, 9};
    uint64_t ask0 = c.stats.ask;
    assert_int_equal(br_cluster_call(&c, 2, get_a, lg, &rep), BR_OK);
    assert_int_equal(rep->type, REDIS_REPLY_STRING);
    assert_string_equal(rep->str, "1");
    freeReplyObject(rep);
    assert_int_equal(c.stats.ask - ask0, 1);

    admin_ok(&f->node[from], "MIGRATE 127.0.0.1 %d t{split}b 0 5000", f->node[to].port);
    slot_finish(f, to, slot);
    uint64_t moved0 = c.stats.moved;
    assert_int_equal(br_cluster_call(&c, 3, mget, lm, &rep), BR_OK);
    assert_int_equal(rep->type, REDIS_REPLY_ARRAY);
    assert_string_equal(rep->element[1]->str, "2");
    freeReplyObject(rep);
    assert_int_equal(c.stats.moved - moved0, 1);
    br_cluster_close(&c);
}

/* A key of the given slot owner's: "k<i>" for the first i whose slot node n holds. */
static void key_on(struct br_cluster *c, struct fixture *f, int n, char *key, size_t cap)
{
    for (int i = 0; i < 100000; i++) {
        snprintf(key, cap, "k%d", i);
        const struct br_cluster_node *at =
            &c->node[c->slot_node[br_cluster_slot(key, strlen(key))]];
        if (at->port == f->node[n].port) {
            return;
        }
    }
    fail_msg("no key found for node %d", n);
}

static int call_text(struct br_cluster *c, const char *a0, const char *a1, const char *a2,
                     redisReply **rep)
{
    const char *argv[3] = {a0, a1, a2};
    size_t len[3] = {strlen(a0), strlen(a1), a2 != NULL ? strlen(a2) : 0};
    return br_cluster_call(c, a2 != NULL ? 3 : 2, argv, len, rep);
}

/* A node that pauses past the command timeout: the command was sent, no
 * reply came: UNKNOWN_OUTCOME; the next call works on a new connection. */
static void test_lost_reply_is_unknown_outcome(void **state)
{
    struct fixture *f = *state;
    static struct br_cluster c;
    assert_int_equal(br_cluster_open(&c, f->list, 1000, 300, true), BR_OK);
    char key[32];
    key_on(&c, f, 1, key, sizeof key);
    redisReply *rep;
    admin_ok(&f->node[1], "CLIENT PAUSE 800 ALL");
    assert_int_equal(call_text(&c, "SET", key, "late", &rep), BR_E_UNKNOWN_OUTCOME);
    assert_null(rep);
    struct timespec ts = {.tv_sec = 1, .tv_nsec = 0};
    nanosleep(&ts, NULL);
    assert_int_equal(call_text(&c, "GET", key, NULL, &rep), BR_OK);
    /* Whether it ran is what nobody knows: a paused server drops the
     * command of a client gone meanwhile, one resumed in time runs it. */
    bool ran = rep->type == REDIS_REPLY_STRING, not_ran = rep->type == REDIS_REPLY_NIL;
    freeReplyObject(rep);
    assert_true(ran || not_ran);
    assert_true(c.stats.connects >= 2); /* the timed-out connection was made again */
    br_cluster_close(&c);
}

static void wait_state_ok(struct node *n);

/* Two nodes that each say the other serves a slot: MOVED back and forth,
 * followed BR_CLUSTER_REDIRECTS_MAX times, then unavailable (nothing ran). */
static void test_redirects_are_bounded(void **state)
{
    struct fixture *f = *state;
    static struct br_cluster c;
    assert_int_equal(br_cluster_open(&c, f->list, 1000, 5000, true), BR_OK);
    char key[32];
    key_on(&c, f, 0, key, sizeof key);
    unsigned slot = br_cluster_slot(key, strlen(key));
    assert_int_equal(admin_int(&f->node[0], "CLUSTER COUNTKEYSINSLOT %u", slot), 0);
    /* Node 0 hands the (empty) slot to node 1 in its own view only. */
    admin_ok(&f->node[0], "CLUSTER SETSLOT %u NODE %s", slot, f->node[1].id);
    redisReply *rep;
    uint64_t moved0 = c.stats.moved;
    int rc = call_text(&c, "SET", key, "loop", &rep);
    uint64_t moved = c.stats.moved - moved0;
    admin_ok(&f->node[0], "CLUSTER SETSLOT %u NODE %s", slot, f->node[0].id); /* back */
    assert_int_equal(rc, BR_E_UNAVAILABLE);
    assert_int_equal(moved, BR_CLUSTER_REDIRECTS_MAX); /* followed; the next one was not */
    assert_int_equal(admin_int(&f->node[0], "CLUSTER COUNTKEYSINSLOT %u", slot), 0);
    assert_int_equal(admin_int(&f->node[1], "CLUSTER COUNTKEYSINSLOT %u", slot), 0);
    wait_state_ok(&f->node[0]);
    assert_int_equal(call_text(&c, "SET", key, "fine", &rep), BR_OK);
    freeReplyObject(rep);
    br_cluster_close(&c);
}

/* A connection the node closed while idle (a restart, a timeout, CLIENT
 * KILL) is found before sending: the command goes on a new one. */
static void test_idle_connection_closed_is_made_again(void **state)
{
    struct fixture *f = *state;
    static struct br_cluster c;
    assert_int_equal(br_cluster_open(&c, f->list, 1000, 5000, true), BR_OK);
    char key[32];
    key_on(&c, f, 1, key, sizeof key);
    redisReply *rep;
    assert_int_equal(call_text(&c, "SET", key, "a", &rep), BR_OK);
    freeReplyObject(rep);
    uint64_t connects = c.stats.connects;
    admin_ok(&f->node[1], "CLIENT KILL TYPE normal SKIPME yes");
    struct timespec ts = {.tv_sec = 0, .tv_nsec = 20000000};
    nanosleep(&ts, NULL);
    assert_int_equal(call_text(&c, "SET", key, "b", &rep), BR_OK);
    freeReplyObject(rep);
    assert_int_equal(c.stats.connects, connects + 1);
    br_cluster_close(&c);
}

static void wait_state_ok(struct node *n)
{
    for (int i = 0; i < 500; i++) {
        redisReply *r = redisCommand(n->admin, "CLUSTER INFO");
        bool ok = r != NULL && r->type == REDIS_REPLY_STRING &&
                  strstr(r->str, "cluster_state:ok") != NULL;
        if (r != NULL) {
            freeReplyObject(r);
        }
        if (ok) {
            return;
        }
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 20000000};
        nanosleep(&ts, NULL);
    }
    fail_msg("cluster_state did not come back to ok on port %d", n->port);
}

/* A node that sees a slot unserved says CLUSTERDOWN: unavailable, nothing ran. */
static void test_clusterdown_is_unavailable(void **state)
{
    struct fixture *f = *state;
    static struct br_cluster c;
    assert_int_equal(br_cluster_open(&c, f->list, 1000, 5000, true), BR_OK);
    char key[32], other[32];
    key_on(&c, f, 0, key, sizeof key);
    snprintf(other, sizeof other, "%s", key);
    unsigned gone = 0;
    for (unsigned s = 0; s < BR_CLUSTER_SLOTS; s++) { /* another slot of node 0's */
        if (c.node[c.slot_node[s]].port == f->node[0].port &&
            s != br_cluster_slot(key, strlen(key))) {
            gone = s;
            break;
        }
    }
    admin_ok(&f->node[0], "CLUSTER DELSLOTS %u", gone);
    redisReply *rep;
    int rc = BR_OK;
    for (int i = 0; i < 100 && rc == BR_OK; i++) { /* the node updates its state at once */
        rc = call_text(&c, "SET", key, "x", &rep);
        if (rc == BR_OK) {
            freeReplyObject(rep);
            struct timespec ts = {.tv_sec = 0, .tv_nsec = 10000000};
            nanosleep(&ts, NULL);
        }
    }
    assert_int_equal(rc, BR_E_UNAVAILABLE);
    admin_ok(&f->node[0], "CLUSTER ADDSLOTS %u", gone);
    wait_state_ok(&f->node[0]);
    assert_int_equal(call_text(&c, "SET", key, "y", &rep), BR_OK);
    freeReplyObject(rep);
    br_cluster_close(&c);
}

/* Last (it stops a node): a dead node's slots are unavailable, the others still answer. */
static void test_dead_node_is_unavailable(void **state)
{
    struct fixture *f = *state;
    static struct br_cluster c;
    assert_int_equal(br_cluster_open(&c, f->list, 1000, 5000, true), BR_OK);
    char dead_key[32], live_key[32];
    key_on(&c, f, 2, dead_key, sizeof dead_key);
    key_on(&c, f, 0, live_key, sizeof live_key);
    redisReply *rep;
    assert_int_equal(call_text(&c, "SET", dead_key, "1", &rep), BR_OK);
    freeReplyObject(rep);
    redisAppendCommand(f->node[2].admin, "SHUTDOWN NOSAVE");
    int done = 0;
    while (!done && redisBufferWrite(f->node[2].admin, &done) == REDIS_OK) {
    }
    void *gone = NULL;
    assert_int_not_equal(redisGetReply(f->node[2].admin, &gone), REDIS_OK); /* it closed */
    for (int i = 0; i < 500; i++) { /* until the process is gone (connections refused) */
        struct timeval tv = {.tv_sec = 1, .tv_usec = 0};
        redisContext *probe = redisConnectWithTimeout("127.0.0.1", f->node[2].port, tv);
        bool refused = probe == NULL || probe->err != 0;
        redisFree(probe);
        if (refused) {
            break;
        }
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 10000000};
        nanosleep(&ts, NULL);
    }
    /* The router's idle connection to it was closed: seen before sending
     * (once idle BR_CLUSTER_IDLE_CHECK_MS: a connection used less than
     * that ago is not polled), so nothing is sent and nothing is unknown. */
    struct timespec idle = {.tv_sec = 0, .tv_nsec = (BR_CLUSTER_IDLE_CHECK_MS + 5) * 1000000L};
    nanosleep(&idle, NULL);
    uint64_t refused = c.stats.refused;
    assert_int_equal(call_text(&c, "GET", dead_key, NULL, &rep), BR_E_UNAVAILABLE);
    assert_int_equal(c.stats.refused, refused + 1);
    /* Within the backoff: no connect is tried (a dead host's timeout each time). */
    assert_int_equal(call_text(&c, "GET", dead_key, NULL, &rep), BR_E_UNAVAILABLE);
    assert_int_equal(c.stats.refused, refused + 1);
    struct timespec later = {.tv_sec = 0,
                             .tv_nsec = (BR_CLUSTER_RECONNECT_BACKOFF_MS + 50) * 1000000L};
    nanosleep(&later, NULL);
    assert_int_equal(call_text(&c, "GET", dead_key, NULL, &rep), BR_E_UNAVAILABLE);
    assert_int_equal(c.stats.refused, refused + 2);
    assert_int_equal(call_text(&c, "SET", live_key, "2", &rep), BR_OK);
    freeReplyObject(rep);
    br_cluster_close(&c);
}

/* ---- failover (a cluster with a replica per master) ---- */

/* The index of the node listening on port, or -1. */
static int node_at(struct fixture *f, int port)
{
    for (int i = 0; i < f->count; i++) {
        if (f->node[i].port == port) {
            return i;
        }
    }
    return -1;
}

/* Whether node i reports that slot's master on a port other than `old`. */
static bool slot_moved_off(struct fixture *f, int i, unsigned slot, int old)
{
    redisReply *r = redisCommand(f->node[i].admin, "CLUSTER SLOTS");
    bool moved = false;
    for (size_t k = 0; r != NULL && r->type == REDIS_REPLY_ARRAY && k < r->elements; k++) {
        const redisReply *e = r->element[k];
        if ((unsigned)e->element[0]->integer <= slot && slot <= (unsigned)e->element[1]->integer) {
            moved = e->element[2]->element[1]->integer != old;
        }
    }
    if (r != NULL) {
        freeReplyObject(r);
    }
    return moved;
}

/* A master dies during a sequence: its replica takes over and the adapter,
 * after a few UNAVAILABLE answers (nothing ran), carries on; every outcome
 * and the final state stay the core's. The replicas first confirm every
 * write (WAIT): an acknowledged write a replica never got would be lost in
 * a failover, which is Redis's asynchronous replication, not the router's. */
static void test_failover_is_followed(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(f->count, NODES_MAX);
    static struct run x;
    memset(&x, 0, sizeof x);
    run_open(f, &x, 13);
    steps(&x, SEQ_LEN / 3, "before the failover", false);
    const char *key = "br:{e1}:";
    unsigned slot = br_cluster_slot(key, strlen(key));
    const struct br_cluster *c = x.redis.cluster;
    int dead = node_at(f, c->node[c->slot_node[slot]].port);
    assert_true(dead >= 0);
    for (uint32_t i = 0; i < c->node_count; i++) {
        int n = node_at(f, c->node[i].port);
        if (c->node[i].master && n >= 0) {
            /* A loaded machine can keep a replica from acknowledging within
             * one WAIT: ask again, up to 30 s in all. */
            long long acked = 0;
            for (int t = 0; t < 6 && acked < 1; t++) {
                acked = admin_int(&f->node[n], "WAIT 1 5000");
            }
            assert_true(acked >= 1);
        }
    }
    uint64_t refreshes0 = c->stats.refreshes;
    redisAppendCommand(f->node[dead].admin, "SHUTDOWN NOSAVE");
    int done = 0;
    while (!done && redisBufferWrite(f->node[dead].admin, &done) == REDIS_OK) {
    }
    int witness = (dead + 1) % f->count;
    bool over = false;
    for (int i = 0; i < 1000 && !over; i++) { /* node timeout 1 s: a few seconds */
        over = slot_moved_off(f, witness, slot, f->node[dead].port);
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 20000000};
        nanosleep(&ts, NULL);
    }
    assert_true(over);
    wait_state_ok(&f->node[witness]);
    uint64_t refused = steps_retrying(&x, SEQ_LEN / 3, "after the failover", 200);
    printf("failover: port %d died, %" PRIu64 " answers UNAVAILABLE before the new master "
           "answered, %" PRIu64 " map refreshes\n",
           f->node[dead].port, refused, c->stats.refreshes - refreshes0);
    assert_true(c->stats.refreshes > refreshes0);
    same_state(&x, "after the failover");
    run_close(&x);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slot_is_crc16_of_the_hash_tag),
        cmocka_unit_test(test_cluster_url),
        cmocka_unit_test(test_open_learns_every_slot),
        cmocka_unit_test(test_slot_moved_during_a_sequence),
        cmocka_unit_test(test_tryagain_is_bounded),
        cmocka_unit_test(test_redirects_are_bounded),
        cmocka_unit_test(test_lost_reply_is_unknown_outcome),
        cmocka_unit_test(test_idle_connection_closed_is_made_again),
        cmocka_unit_test(test_clusterdown_is_unavailable),
        cmocka_unit_test(test_dead_node_is_unavailable),
    };
    const struct CMUnitTest failover[] = {
        cmocka_unit_test(test_failover_is_followed),
    };
    if (argc > 1 && strcmp(argv[1], "--failover") == 0) {
        return cmocka_run_group_tests(failover, group_setup, group_teardown);
    }
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
