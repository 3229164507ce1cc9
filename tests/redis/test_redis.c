/*
 * test_redis.c -- the Redis adapter's own behaviour on a real redis-server
 * (started by the group setup on a free port): URL parsing, connection
 * failures, lost-library reloads, timeouts that leave the outcome unknown and
 * their resolution by the idempotency key, reconnects, config checks, and
 * a corrupted state reported as such, the event log's read, length, trim
 * and damage, and the rebuild's refusals. What the scripts compute is the
 * differential test's job (test_redis_diff.c), the log's and the rebuild's
 * contents too.
 */
#define _POSIX_C_SOURCE 200809L

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
#include "core/engine.h"
#include "core/err.h"
#include "tests/redis/server.h"

#define T0 1700000000000LL

struct fixture {
    struct test_redis_server server;
    struct br_redis_options opt;
    struct br_config cfg;
    redisContext *admin; /* the test's own connection, to poke at the server */
};

static int group_setup(void **state)
{
    static struct fixture f;
    memset(&f, 0, sizeof f);
    if (test_redis_server_start(&f.server) != 0) {
        return -1;
    }
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", f.server.port);
    if (br_redis_parse_url(url, &f.opt) != BR_OK) {
        return -1;
    }
    f.opt.quiet = true;
    br_config_default(&f.cfg);
    f.cfg.seed = 7;
    struct timeval tv = {.tv_sec = 2, .tv_usec = 0};
    f.admin = redisConnectWithTimeout("127.0.0.1", f.server.port, tv);
    if (f.admin == NULL || f.admin->err != 0) {
        return -1;
    }
    *state = &f;
    return 0;
}

static int group_teardown(void **state)
{
    struct fixture *f = *state;
    redisFree(f->admin);
    test_redis_server_stop(&f->server);
    return 0;
}

static void admin(struct fixture *f, const char *cmd)
{
    redisReply *r = redisCommand(f->admin, cmd);
    assert_non_null(r);
    freeReplyObject(r);
}

static struct br_effect fx[BR_EFFECTS_MAX];

static int apply(struct br_redis *r, const struct br_cmd *c, struct br_outcome *out)
{
    uint32_t n;
    return br_redis_apply(r, c, out, fx, &n);
}

/* A fresh state: FLUSHDB and an open adapter. */
static void open_fresh(struct fixture *f, struct br_redis *r, const struct br_redis_options *opt)
{
    admin(f, "FLUSHDB");
    assert_int_equal(br_redis_open(r, opt, &f->cfg), BR_OK);
}

static struct br_cmd event_cmd(int64_t now_ms, bool requires_pass)
{
    struct br_cmd c;
    memset(&c, 0, sizeof c);
    c.type = BR_CMD_EVENT_CREATE;
    c.now_ms = now_ms;
    struct br_event_spec *s = &c.u.event_create;
    strcpy(s->name, "Tour night");
    strcpy(s->venue, "Arena");
    s->sale_opens_at_ms = T0;
    s->per_user_limit = 4;
    s->requires_pass = requires_pass;
    s->max_active = 10;
    s->admit_per_tick = 10;
    s->pass_ttl_ms = 60000;
    s->hold_ttl_ms = 60000;
    s->zone_count = 1;
    strcpy(s->zones[0].name, "Floor");
    s->zones[0].capacity = 100;
    s->zones[0].price_minor = 5000;
    strcpy(s->zones[0].currency, "EUR");
    return c;
}

static struct br_cmd user_cmd(int64_t now_ms, const char *email)
{
    struct br_cmd c;
    memset(&c, 0, sizeof c);
    c.type = BR_CMD_USER_REGISTER;
    c.now_ms = now_ms;
    strcpy(c.u.user_register.email, email);
    strcpy(c.u.user_register.name, "Ann");
    return c;
}

static struct br_cmd reserve_cmd(int64_t now_ms, uint64_t user, uint64_t key)
{
    struct br_cmd c;
    memset(&c, 0, sizeof c);
    c.type = BR_CMD_RESERVE;
    c.now_ms = now_ms;
    c.user_id = user;
    c.u.reserve.event_id = 1;
    c.u.reserve.zone_id = 1;
    c.u.reserve.quantity = 2;
    c.u.reserve.idem_key = key;
    return c;
}

/* An event without passes and one user: ready to reserve. */
static void catalog(struct br_redis *r)
{
    struct br_outcome out;
    struct br_cmd c = event_cmd(T0, false);
    assert_int_equal(apply(r, &c, &out), BR_OK);
    c = user_cmd(T0, "ann@example.com");
    assert_int_equal(apply(r, &c, &out), BR_OK);
}

static void test_url_parses_host_port_and_db(void **state)
{
    (void)state;
    struct br_redis_options o;
    assert_int_equal(br_redis_parse_url("redis://10.0.0.5:6380/3", &o), BR_OK);
    assert_string_equal(o.host, "10.0.0.5");
    assert_int_equal(o.port, 6380);
    assert_int_equal(o.db, 3);
    assert_int_equal(br_redis_parse_url("localhost", &o), BR_OK);
    assert_int_equal(o.port, 6379);
    assert_int_equal(o.db, 0);
    assert_int_equal(br_redis_parse_url("redis://:6379", &o), BR_E_INVALID);
    assert_int_equal(br_redis_parse_url("redis://h:0", &o), BR_E_INVALID);
    assert_int_equal(br_redis_parse_url("redis://h:70000", &o), BR_E_INVALID);
    assert_int_equal(br_redis_parse_url("redis://h:1x", &o), BR_E_INVALID);
}

static void test_open_without_a_server_is_unavailable(void **state)
{
    struct fixture *f = *state;
    struct br_redis_options o = f->opt;
    o.port = 1; /* nothing listens there */
    struct br_redis r;
    assert_int_equal(br_redis_open(&r, &o, &f->cfg), BR_E_UNAVAILABLE);
    br_redis_close(&r); /* safe after a failed open */
}

static void test_open_refuses_another_config(void **state)
{
    struct fixture *f = *state;
    struct br_redis r;
    open_fresh(f, &r, &f->opt);
    br_redis_close(&r);
    struct br_config other = f->cfg;
    other.seed = 8;
    assert_int_equal(br_redis_open(&r, &f->opt, &other), BR_E_INVALID);
    assert_int_equal(br_redis_open(&r, &f->opt, &f->cfg), BR_OK); /* the same one is fine */
    br_redis_close(&r);
}

/* A server that lost the library (restarted, FUNCTION FLUSH): the call is
 * refused before anything ran, so the adapter loads it again and runs it. */
static void test_lost_library_reloads_and_runs(void **state)
{
    struct fixture *f = *state;
    struct br_redis r;
    open_fresh(f, &r, &f->opt);
    catalog(&r);
    admin(f, "FUNCTION FLUSH");
    struct br_outcome out;
    struct br_cmd c = reserve_cmd(T0 + 1, 1, 0);
    assert_int_equal(apply(&r, &c, &out), BR_OK);
    assert_int_equal(out.id, (1ULL << 32) | 1);
    assert_int_equal(out.count, 2);
    br_redis_close(&r);
}

static void test_timeout_is_unknown_and_the_key_resolves_it(void **state)
{
    struct fixture *f = *state;
    struct br_redis_options o = f->opt;
    o.command_timeout_ms = 200;
    struct br_redis r;
    open_fresh(f, &r, &o);
    catalog(&r);
    /* The server holds every write for a second: the request is sent, the
     * reply does not come in time, and the server runs it later anyway. */
    admin(f, "CLIENT PAUSE 700 WRITE");
    struct br_outcome out;
    struct br_cmd c = reserve_cmd(T0 + 1, 1, 0xabcdef);
    assert_int_equal(apply(&r, &c, &out), BR_E_UNKNOWN_OUTCOME);
    assert_int_equal(out.id, 0);
    assert_int_equal(out.effect_count, 0);
    struct timespec nap = {.tv_sec = 1, .tv_nsec = 0};
    nanosleep(&nap, NULL);
    /* The caller retries with the same key: one hold, whatever happened. */
    assert_int_equal(apply(&r, &c, &out), BR_OK);
    assert_int_equal(out.id, (1ULL << 32) | 1);
    assert_int_equal(apply(&r, &c, &out), BR_OK);
    assert_int_equal(out.id, (1ULL << 32) | 1);
    uint32_t held, sold;
    assert_int_equal(br_redis_zone_counts(&r, 1, 1, &held, &sold), BR_OK);
    assert_int_equal(held, 2);
    assert_int_equal(sold, 0);
    assert_true(r.connects >= 2); /* the timed-out connection was dropped and made again */
    br_redis_close(&r);
}

static void test_a_killed_connection_is_made_again(void **state)
{
    struct fixture *f = *state;
    struct br_redis r;
    open_fresh(f, &r, &f->opt);
    catalog(&r);
    admin(f, "CLIENT KILL TYPE normal SKIPME yes");
    struct br_outcome out;
    struct br_cmd c = reserve_cmd(T0 + 1, 1, 0);
    int rc = apply(&r, &c, &out);
    /* The first request meets the dead socket: sent or not, it cannot tell. */
    assert_true(rc == BR_E_UNKNOWN_OUTCOME || rc == BR_E_UNAVAILABLE || rc == BR_OK);
    c.u.reserve.quantity = 1;
    assert_int_equal(apply(&r, &c, &out), BR_OK);
    assert_int_equal(out.count, 1);
    br_redis_close(&r);
}

static void test_broken_state_is_corrupt(void **state)
{
    struct fixture *f = *state;
    struct br_redis r;
    open_fresh(f, &r, &f->opt);
    catalog(&r);
    admin(f, "HSET br:{e1}:ev held1 1000"); /* more seats held than the zone has */
    struct br_outcome out;
    struct br_cmd c = reserve_cmd(T0 + 1, 1, 0);
    assert_int_equal(apply(&r, &c, &out), BR_E_CORRUPT);
    br_redis_close(&r);
}

static void test_clock_outside_range_is_invalid(void **state)
{
    struct fixture *f = *state;
    struct br_redis r;
    open_fresh(f, &r, &f->opt);
    catalog(&r);
    struct br_outcome out;
    struct br_cmd c = reserve_cmd(-1, 1, 0);
    assert_int_equal(apply(&r, &c, &out), BR_E_INVALID);
    c.now_ms = BR_NOW_MS_MAX + 1;
    assert_int_equal(apply(&r, &c, &out), BR_E_INVALID);
    br_redis_close(&r);
}

static void test_server_gone_is_unavailable(void **state)
{
    struct fixture *f = *state;
    struct br_redis r;
    open_fresh(f, &r, &f->opt);
    catalog(&r);
    struct br_redis_options o = f->opt;
    r.opt.port = 1; /* as if the server went away: the next connect fails */
    admin(f, "CLIENT KILL TYPE normal SKIPME yes");
    struct br_outcome out;
    struct br_cmd c = reserve_cmd(T0 + 1, 1, 0);
    int rc = apply(&r, &c, &out);
    assert_true(rc == BR_E_UNKNOWN_OUTCOME || rc == BR_E_UNAVAILABLE);
    assert_int_equal(apply(&r, &c, &out), BR_E_UNAVAILABLE); /* nothing was sent */
    r.opt = o;
    assert_int_equal(apply(&r, &c, &out), BR_OK);
    br_redis_close(&r);
}

static struct br_redis_log_entry entries[8];

/* The log: paged reads in order, the length and last id, the external
 * mark, trimming, bad arguments, and a damaged entry. */
static void test_log_reads_pages_trims_and_refuses_damage(void **state)
{
    struct fixture *f = *state;
    struct br_redis r;
    open_fresh(f, &r, &f->opt);
    catalog(&r);
    struct br_outcome out;
    struct br_cmd c = reserve_cmd(T0 + 1, 1, 0);
    assert_int_equal(apply(&r, &c, &out), BR_OK); /* 2 tickets */
    assert_int_equal(apply(&r, &c, &out), BR_OK); /* 4: the limit */
    assert_int_equal(apply(&r, &c, &out), BR_E_LIMIT_EXCEEDED);
    c = reserve_cmd(T0 + 1, 99, 0); /* not registered: decided in {cat} */
    assert_int_equal(apply(&r, &c, &out), BR_E_UNAUTHORIZED);
    c.u.reserve.event_id = 7; /* no such event: nothing logged, no stream made */
    assert_int_equal(apply(&r, &c, &out), BR_E_NOT_FOUND);

    uint64_t len = 0;
    char last[32];
    assert_int_equal(br_redis_log_len(&r, 1, &len, last), BR_OK);
    assert_int_equal(len, 5);
    char none[32];
    assert_int_equal(br_redis_log_len(&r, 7, &len, none), BR_OK);
    assert_int_equal(len, 0);
    assert_string_equal(none, "0-0");

    uint32_t n = 0;
    assert_int_equal(br_redis_log_read(&r, 1, "0", 2, entries, &n), BR_OK);
    assert_int_equal(n, 2);
    assert_int_equal(entries[0].cmd.type, BR_CMD_EVENT_CREATE);
    assert_int_equal(entries[0].out.id, 1);
    assert_int_equal(entries[1].cmd.type, BR_CMD_RESERVE);
    assert_int_equal(entries[1].cmd.now_ms, T0 + 1);
    assert_int_equal(entries[1].out.id, (1ULL << 32) | 1);
    assert_false(entries[1].external);
    char second[32];
    memcpy(second, entries[1].stream_id, sizeof second);
    assert_int_equal(br_redis_log_read(&r, 1, second, 8, entries, &n), BR_OK);
    assert_int_equal(n, 3);
    assert_int_equal(entries[1].out.err, BR_E_LIMIT_EXCEEDED);
    assert_int_equal(entries[2].out.err, BR_E_UNAUTHORIZED);
    assert_true(entries[2].external);
    assert_string_equal(entries[2].stream_id, last);
    assert_int_equal(br_redis_log_read(&r, 1, last, 8, entries, &n), BR_OK);
    assert_int_equal(n, 0);

    assert_int_equal(br_redis_log_read(&r, 1, "x", 8, entries, &n), BR_E_INVALID);
    assert_int_equal(br_redis_log_read(&r, 1, "0", 0, entries, &n), BR_E_INVALID);
    assert_int_equal(br_redis_log_read(&r, 0, "0", 8, entries, &n), BR_E_INVALID);

    uint64_t removed = 0;
    assert_int_equal(br_redis_log_trim(&r, 1, second, &removed), BR_OK);
    assert_int_equal(removed, 2); /* the entries up to and including `second` */
    assert_int_equal(br_redis_log_trim(&r, 1, second, &removed), BR_OK);
    assert_int_equal(removed, 0);
    assert_int_equal(br_redis_log_read(&r, 1, "0", 8, entries, &n), BR_OK);
    assert_int_equal(n, 3);
    assert_int_equal(br_redis_log_trim(&r, 1, "1-x", &removed), BR_E_INVALID);

    admin(f, "XADD br:{e1}:log * c junk o 0,0");
    assert_int_equal(br_redis_log_read(&r, 1, "0", 8, entries, &n), BR_E_CORRUPT);
    assert_int_equal(n, 0);
    br_redis_close(&r);
}

/* The rebuild refuses what it must not write, and writes nothing then. */
static void test_rebuild_refusals(void **state)
{
    struct fixture *f = *state;
    struct br_redis r;
    open_fresh(f, &r, &f->opt);
    catalog(&r);
    struct br_cmd ev = event_cmd(T0, false);
    struct br_redis_rebuild_hold hold = {.id = (2ULL << 32) | 1,
                                         .user_id = 1,
                                         .zone_id = 1,
                                         .quantity = 2,
                                         .state = BR_HOLD_HELD,
                                         .created_ms = T0,
                                         .deadline_ms = T0 + 60000,
                                         .amount_minor = 10000};
    struct br_redis_rebuild in;
    memset(&in, 0, sizeof in);
    in.event_id = 1;
    in.spec = ev.u.event_create;
    in.spec.queue_capacity = f->cfg.queue_capacity_default;
    in.hold_seq = 1;
    in.holds = &hold;
    in.hold_count = 1;
    in.zone_held[0] = 2;
    assert_int_equal(br_redis_rebuild_event(&r, &in), BR_E_INVALID); /* a hold of event 2 */
    hold.id = (1ULL << 32) | 1;
    assert_int_equal(br_redis_rebuild_event(&r, &in), BR_E_DUPLICATE); /* event 1 exists */
    in.event_id = 2;
    hold.id = (2ULL << 32) | 1;
    in.zone_held[0] = 3;
    assert_int_equal(br_redis_rebuild_event(&r, &in), BR_E_CORRUPT); /* 3 held, holds say 2 */
    in.event_id = 3;
    hold.id = (3ULL << 32) | 1;
    in.zone_held[0] = 2;
    assert_int_equal(br_redis_rebuild_event(&r, &in), BR_E_INVALID); /* event 2 is missing */
    in.event_id = 2;
    hold.id = (2ULL << 32) | 1;
    /* point 8: a check_ms the core refuses, and a clock out of range */
    struct br_redis_rebuild_payment pay = {.id = (2ULL << 32) | 1,
                                           .hold_id = hold.id,
                                           .state = BR_PAY_PENDING,
                                           .amount_minor = 10000,
                                           .created_ms = T0,
                                           .check_ms = BR_PAYMENT_CHECK_MS_MIN - 1};
    hold.payment_id = pay.id;
    in.payments = &pay;
    in.payment_count = 1;
    in.payment_seq = 1;
    assert_int_equal(br_redis_rebuild_event(&r, &in), BR_E_INVALID);
    pay.check_ms = BR_PAYMENT_CHECK_MS_MIN;
    in.now_ms = -1;
    assert_int_equal(br_redis_rebuild_event(&r, &in), BR_E_INVALID);
    in.now_ms = T0;
    assert_int_equal(br_redis_rebuild_event(&r, &in), BR_OK);
    struct br_redis_payment py;
    assert_int_equal(br_redis_payment_read(&r, pay.id, &py), BR_OK);
    assert_int_equal(py.check_ms, BR_PAYMENT_CHECK_MS_MIN);
    assert_int_equal(py.next_check_ms, T0 + BR_PAYMENT_CHECK_MS_MIN);
    uint32_t held = 0, sold = 0;
    assert_int_equal(br_redis_zone_counts(&r, 2, 1, &held, &sold), BR_OK);
    assert_int_equal(held, 2);
    /* It continues: the next hold is seq 2, user 1 has 2 of 4 tickets. */
    struct br_outcome out;
    struct br_cmd c = reserve_cmd(T0 + 1, 1, 0);
    c.u.reserve.event_id = 2;
    c.u.reserve.quantity = 3;
    assert_int_equal(apply(&r, &c, &out), BR_E_LIMIT_EXCEEDED);
    c.u.reserve.quantity = 2;
    assert_int_equal(apply(&r, &c, &out), BR_OK);
    assert_int_equal(out.id, (2ULL << 32) | 2);
    br_redis_close(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_parses_host_port_and_db),
        cmocka_unit_test(test_open_without_a_server_is_unavailable),
        cmocka_unit_test(test_open_refuses_another_config),
        cmocka_unit_test(test_lost_library_reloads_and_runs),
        cmocka_unit_test(test_timeout_is_unknown_and_the_key_resolves_it),
        cmocka_unit_test(test_a_killed_connection_is_made_again),
        cmocka_unit_test(test_broken_state_is_corrupt),
        cmocka_unit_test(test_clock_outside_range_is_invalid),
        cmocka_unit_test(test_server_gone_is_unavailable),
        cmocka_unit_test(test_log_reads_pages_trims_and_refuses_damage),
        cmocka_unit_test(test_rebuild_refusals),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
