/*
 * test_pg.c -- the PostgreSQL adapter (adapters/pg.h) against a real server
 * (the ctest fixture pg_server): migrations twice and from two processes at
 * once, ids and the hook, byte-exact emails, refresh sessions, the
 * projection's exactly-once position and its CHECK against an oversell,
 * a connection killed before and inside a transaction, a lost COMMIT
 * answer, the pool's bound, the test provider's intents. Each test works in
 * a database of its own.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "adapters/pg.h"
#include "core/engine.h"
#include "core/err.h"
#include "core/session.h"
#include "tests/core/support.h"
#include "tests/pg/pgtest.h"

static struct br_cmd reg(const char *email, uint8_t role)
{
    struct br_cmd c = c_register(1000, email, role);
    strcpy(c.u.user_register.name, "Name");
    for (int i = 0; i < BR_PASSWORD_HASH_LEN; i++) {
        c.u.user_register.password_hash[i] = (uint8_t)(i * 7 + 1);
    }
    for (int i = 0; i < BR_SALT_LEN; i++) {
        c.u.user_register.salt[i] = (uint8_t)(0xF0 ^ i);
    }
    return c;
}

/* ---- migrations --------------------------------------------------------- */

static void test_migrate_twice_applies_once(void **state)
{
    (void)state;
    char url[PGT_URL_MAX];
    pgt_fresh_db("t_migrate_twice", url, sizeof url);
    struct br_pg *pg = NULL;
    assert_int_equal(br_pg_open(&pg, url, 1, NULL), BR_OK);
    uint32_t have = 9, want = 0;
    assert_int_equal(br_pg_schema_status(pg, &have, &want), BR_E_VERSION); /* empty database */
    assert_int_equal(have, 0);
    assert_true(want >= 1);
    uint32_t first = 0;
    assert_int_equal(br_pg_migrate(pg, NULL, &first), BR_OK);
    assert_int_equal(first, want);
    assert_int_equal(br_pg_schema_status(pg, &have, NULL), BR_OK);
    assert_int_equal(have, want);
    uint32_t applied = 99;
    assert_int_equal(br_pg_migrate(pg, NULL, &applied), BR_OK);
    assert_int_equal(applied, 0);
    long long rows = pgt_scalar(url, "SELECT count(*) FROM schema_migrations");
    assert_true(rows >= 1);
    /* a migration from a newer binary: this one says so */
    assert_int_equal(pgt_exec(url, "INSERT INTO schema_migrations (version, name) "
                                   "VALUES (9999, '9999_future')"),
                     0);
    assert_int_equal(br_pg_schema_status(pg, &have, NULL), BR_E_VERSION);
    assert_int_equal(br_pg_migrate(pg, NULL, &applied), BR_E_VERSION);
    br_pg_close(pg);
}

static void test_migrate_from_two_processes_at_once(void **state)
{
    (void)state;
    char url[PGT_URL_MAX];
    pgt_fresh_db("t_migrate_race", url, sizeof url);
    pid_t kids[2];
    for (int k = 0; k < 2; k++) {
        kids[k] = fork();
        assert_true(kids[k] >= 0);
        if (kids[k] == 0) {
            struct br_pg *pg = NULL;
            uint32_t applied = 0;
            int rc = br_pg_open(&pg, url, 1, NULL);
            if (rc == BR_OK) {
                rc = br_pg_migrate(pg, NULL, &applied);
            }
            br_pg_close(pg);
            _exit(rc == BR_OK ? (int)applied : 100);
        }
    }
    int total = 0;
    for (int k = 0; k < 2; k++) {
        int st = 0;
        assert_int_equal(waitpid(kids[k], &st, 0), kids[k]);
        assert_true(WIFEXITED(st));
        assert_true(WEXITSTATUS(st) < 100); /* both succeeded */
        total += WEXITSTATUS(st);
    }
    long long rows = pgt_scalar(url, "SELECT count(*) FROM schema_migrations");
    assert_int_equal(total, rows); /* each migration applied by exactly one of them */
    assert_true(pgt_scalar(url, "SELECT count(*) FROM information_schema.tables WHERE "
                                "table_name = 'zones'") == 1);
}

/* ---- users -------------------------------------------------------------- */

struct hook_log {
    const char *lock_out_url; /* refuse new connections to the database on the first call */
    int calls;
    uint64_t ids[8];
    int fail_with;         /* returned instead of BR_OK when nonzero */
    const char *kill_url;  /* kill the adapter's connections on the first call */
    struct br_pg *reenter; /* call into the pool from inside the hook */
    int reenter_rc;
};

static int hook(void *ctx, uint64_t id)
{
    struct hook_log *h = ctx;
    if (h->calls < 8) {
        h->ids[h->calls] = id;
    }
    h->calls++;
    if (h->lock_out_url != NULL && h->calls == 1) {
        assert_int_equal(
            pgt_exec(h->lock_out_url, "ALTER DATABASE t_unknown WITH ALLOW_CONNECTIONS false"), 0);
    }
    if (h->kill_url != NULL && h->calls == 1) {
        assert_true(pgt_kill_adapter_connections(h->kill_url) >= 1);
    }
    if (h->reenter != NULL) {
        struct br_pg_user u;
        h->reenter_rc = br_pg_user_get(h->reenter, 1, &u);
        return h->reenter_rc;
    }
    return h->fail_with != 0 ? h->fail_with : BR_OK;
}

static void test_register_dense_ids_and_hook(void **state)
{
    (void)state;
    char url[PGT_URL_MAX];
    struct br_pg *pg = pgt_open_db("t_register", 2, NULL, url);
    struct hook_log h = {0};
    uint64_t id = 0;
    struct br_cmd c = reg("a@x.io", BR_ROLE_CUSTOMER);
    assert_int_equal(br_pg_user_register(pg, &c, hook, &h, &id), BR_OK);
    assert_int_equal(id, 1);
    c = reg("b@x.io", BR_ROLE_ORGANIZER);
    assert_int_equal(br_pg_user_register(pg, &c, hook, &h, &id), BR_OK);
    assert_int_equal(id, 2);
    assert_int_equal(h.calls, 2);
    assert_int_equal(h.ids[0], 1);
    assert_int_equal(h.ids[1], 2);
    /* a hook that refuses: nothing commits, and the id is taken again next time */
    h.fail_with = BR_E_UNAVAILABLE;
    c = reg("c@x.io", BR_ROLE_CUSTOMER);
    assert_int_equal(br_pg_user_register(pg, &c, hook, &h, &id), BR_E_UNAVAILABLE);
    struct br_pg_user u;
    assert_int_equal(br_pg_user_by_email(pg, "c@x.io", &u), BR_E_NOT_FOUND);
    h.fail_with = 0;
    assert_int_equal(br_pg_user_register(pg, &c, hook, &h, &id), BR_OK);
    assert_int_equal(id, 3);
    uint64_t max = 0;
    assert_int_equal(br_pg_user_max_id(pg, &max), BR_OK);
    assert_int_equal(max, 3);
    /* read back byte for byte */
    assert_int_equal(br_pg_user_get(pg, 2, &u), BR_OK);
    assert_string_equal(u.email, "b@x.io");
    assert_int_equal(u.role, BR_ROLE_ORGANIZER);
    assert_memory_equal(u.password_hash, c.u.user_register.password_hash, BR_PASSWORD_HASH_LEN);
    assert_memory_equal(u.salt, c.u.user_register.salt, BR_SALT_LEN);
    assert_int_equal(br_pg_user_role_set(pg, 2, BR_ROLE_ADMIN), BR_OK);
    assert_int_equal(br_pg_user_get(pg, 2, &u), BR_OK);
    assert_int_equal(u.role, BR_ROLE_ADMIN);
    assert_int_equal(br_pg_user_role_set(pg, 99, BR_ROLE_ADMIN), BR_E_NOT_FOUND);
    assert_int_equal(br_pg_user_role_set(pg, 2, 7), BR_E_INVALID);
    assert_int_equal(br_pg_user_get(pg, 99, &u), BR_E_NOT_FOUND);
    br_pg_close(pg);
}

static void test_email_unique_byte_for_byte(void **state)
{
    (void)state;
    char url[PGT_URL_MAX];
    struct br_pg *pg = pgt_open_db("t_email", 1, NULL, url);
    struct hook_log h = {0};
    uint64_t id = 0;
    struct br_cmd c = reg("ann@x.io", BR_ROLE_CUSTOMER);
    assert_int_equal(br_pg_user_register(pg, &c, hook, &h, &id), BR_OK);
    c = reg("Ann@x.io", BR_ROLE_CUSTOMER); /* case differs: another user */
    assert_int_equal(br_pg_user_register(pg, &c, hook, &h, &id), BR_OK);
    assert_int_equal(id, 2);
    c = reg("ann@x.io ", BR_ROLE_CUSTOMER); /* a trailing space: another user */
    assert_int_equal(br_pg_user_register(pg, &c, hook, &h, &id), BR_OK);
    assert_int_equal(id, 3);
    c = reg("ann@x.io", BR_ROLE_CUSTOMER); /* the same bytes: taken, hook not run */
    int calls = h.calls;
    assert_int_equal(br_pg_user_register(pg, &c, hook, &h, &id), BR_E_EMAIL_TAKEN);
    assert_int_equal(h.calls, calls);
    struct br_pg_user u;
    assert_int_equal(br_pg_user_by_email(pg, "Ann@x.io", &u), BR_OK);
    assert_int_equal(u.id, 2);
    assert_int_equal(br_pg_user_by_email(pg, "ann@x.io", &u), BR_OK);
    assert_int_equal(u.id, 1);
    assert_int_equal(br_pg_user_by_email(pg, "ANN@x.io", &u), BR_E_NOT_FOUND);
    assert_int_equal(pgt_scalar(url, "SELECT count(*) FROM users"), 3);
    br_pg_close(pg);
}

/* ---- sessions ----------------------------------------------------------- */

static struct br_cmd s_open(int64_t now, uint64_t user, int64_t ttl, uint32_t gen)
{
    struct br_cmd c;
    memset(&c, 0, sizeof c);
    c.type = BR_CMD_SESSION_OPEN;
    c.now_ms = now;
    c.user_id = user;
    c.u.session_open.ttl_ms = ttl;
    c.u.session_open.generation = gen;
    return c;
}

static struct br_cmd s_use(uint8_t type, int64_t now, uint64_t session, uint32_t gen, int64_t ttl)
{
    struct br_cmd c;
    memset(&c, 0, sizeof c);
    c.type = type;
    c.now_ms = now;
    c.u.session_rotate.session_id = session;
    c.u.session_rotate.generation = gen;
    c.u.session_rotate.ttl_ms = ttl;
    return c;
}

static void test_sessions_follow_session_h(void **state)
{
    (void)state;
    char url[PGT_URL_MAX];
    struct br_pg *pg = pgt_open_db("t_sessions", 1, NULL, url);
    uint64_t id = 0;
    struct br_cmd c = reg("s@x.io", BR_ROLE_ORGANIZER);
    assert_int_equal(br_pg_user_register(pg, &c, NULL, NULL, &id), BR_OK);
    struct br_outcome o;
    c = s_open(1000, 1, 500, 77);
    assert_int_equal(br_pg_session_open(pg, &c, &o), BR_OK);
    assert_int_equal(o.id, 1);
    assert_int_equal(o.ref, 1);
    assert_int_equal(o.count, 77);
    assert_int_equal(o.deadline_ms, 1500);
    c = s_open(1000, 9, 500, 1);
    assert_int_equal(br_pg_session_open(pg, &c, &o), BR_E_NOT_FOUND);
    c = s_open(1000, 0, 500, 1);
    assert_int_equal(br_pg_session_open(pg, &c, &o), BR_E_FORBIDDEN);
    c = s_open(1000, 1, 0, 1);
    assert_int_equal(br_pg_session_open(pg, &c, &o), BR_E_INVALID);
    /* rotate: the current generation moves on, the role comes back */
    c = s_use(BR_CMD_SESSION_ROTATE, 1100, 1, 77, 500);
    assert_int_equal(br_pg_session_rotate(pg, &c, &o), BR_OK);
    assert_int_equal(o.count, 78);
    assert_int_equal(o.status, BR_ROLE_ORGANIZER);
    assert_int_equal(o.deadline_ms, 1600);
    /* a generation never issued: refused, nothing learnt */
    c = s_use(BR_CMD_SESSION_ROTATE, 1100, 1, 79, 500);
    assert_int_equal(br_pg_session_rotate(pg, &c, &o), BR_E_UNAUTHORIZED);
    assert_int_equal(o.count, 0);
    /* a copied older token: reuse revokes the session (committed) */
    c = s_use(BR_CMD_SESSION_ROTATE, 1200, 1, 77, 500);
    assert_int_equal(br_pg_session_rotate(pg, &c, &o), BR_E_UNAUTHORIZED);
    assert_int_equal(o.count, 1);
    assert_int_equal(o.status, BR_SESSION_REVOKED);
    c = s_use(BR_CMD_SESSION_ROTATE, 1200, 1, 78, 500);
    assert_int_equal(br_pg_session_rotate(pg, &c, &o), BR_E_UNAUTHORIZED);
    assert_int_equal(o.status, BR_SESSION_REVOKED);
    uint8_t st = 0;
    assert_int_equal(br_pg_session_state(pg, 1, 1200, &st), BR_OK);
    assert_int_equal(st, BR_SESSION_REVOKED);
    /* expiry: at the deadline exactly */
    c = s_open(2000, 1, 100, 5);
    assert_int_equal(br_pg_session_open(pg, &c, &o), BR_OK);
    uint64_t s2 = o.id;
    c = s_use(BR_CMD_SESSION_ROTATE, 2100, s2, 5, 100);
    assert_int_equal(br_pg_session_rotate(pg, &c, &o), BR_E_UNAUTHORIZED);
    assert_int_equal(o.status, BR_SESSION_EXPIRED);
    /* revoke: idempotent, count 1 only the first time */
    c = s_open(3000, 1, 100, 5);
    assert_int_equal(br_pg_session_open(pg, &c, &o), BR_OK);
    uint64_t s3 = o.id;
    c = s_use(BR_CMD_SESSION_REVOKE, 3001, s3, 5, 0);
    assert_int_equal(br_pg_session_revoke(pg, &c, &o), BR_OK);
    assert_int_equal(o.count, 1);
    assert_int_equal(br_pg_session_revoke(pg, &c, &o), BR_OK);
    assert_int_equal(o.count, 0);
    c = s_use(BR_CMD_SESSION_REVOKE, 3001, 999, 1, 0);
    assert_int_equal(br_pg_session_revoke(pg, &c, &o), BR_E_UNAUTHORIZED);
    c = s_use(BR_CMD_SESSION_REVOKE, 3001, s3, 5, 0);
    c.user_id = 1;
    assert_int_equal(br_pg_session_revoke(pg, &c, &o), BR_E_FORBIDDEN);
    /* logout-all: every session so far, not the ones opened after */
    c = s_open(4000, 1, 1000, 9);
    assert_int_equal(br_pg_session_open(pg, &c, &o), BR_OK);
    uint64_t s4 = o.id;
    struct br_cmd all;
    memset(&all, 0, sizeof all);
    all.type = BR_CMD_SESSION_REVOKE_ALL;
    all.now_ms = 4001;
    all.user_id = 1;
    assert_int_equal(br_pg_session_revoke_all(pg, &all, &o), BR_OK);
    assert_int_equal(o.id, 1);
    c = s_use(BR_CMD_SESSION_ROTATE, 4002, s4, 9, 1000);
    assert_int_equal(br_pg_session_rotate(pg, &c, &o), BR_E_UNAUTHORIZED);
    assert_int_equal(o.status, BR_SESSION_REVOKED);
    c = s_open(4003, 1, 1000, 3);
    assert_int_equal(br_pg_session_open(pg, &c, &o), BR_OK);
    c = s_use(BR_CMD_SESSION_ROTATE, 4004, o.id, 3, 1000);
    assert_int_equal(br_pg_session_rotate(pg, &c, &o), BR_OK);
    all.user_id = 42;
    assert_int_equal(br_pg_session_revoke_all(pg, &all, &o), BR_E_NOT_FOUND);
    br_pg_close(pg);
}

/* ---- events ------------------------------------------------------------- */

static void test_event_spec_round_trips(void **state)
{
    (void)state;
    char url[PGT_URL_MAX];
    struct br_pg *pg = pgt_open_db("t_events", 1, NULL, url);
    struct br_event_spec s = t_spec();
    s.requires_pass = true;
    s.queue_capacity = 1234;
    s.sale_opens_at_ms = 5555;
    s.zone_count = 3;
    strcpy(s.zones[1].name, "Balcony \xc3\xa9");
    s.zones[1].capacity = 1000000;
    s.zones[1].price_minor = 100000000;
    strcpy(s.zones[1].currency, "USD");
    strcpy(s.zones[2].name, "Z");
    s.zones[2].capacity = 1;
    strcpy(s.zones[2].currency, "GBP");
    struct hook_log h = {0};
    uint64_t id = 0;
    for (uint64_t want = 1; want <= 3; want++) {
        struct br_cmd c = c_event(100, 7, &s);
        assert_int_equal(br_pg_event_create(pg, &c, hook, &h, &id), BR_OK);
        assert_int_equal(id, want);
    }
    struct br_pg_event e;
    assert_int_equal(br_pg_event_get(pg, 2, &e), BR_OK);
    assert_int_equal(e.owner_id, 7);
    assert_int_equal(e.created_ms, 100);
    assert_memory_equal(&e.spec, &s, sizeof s);
    assert_int_equal(br_pg_event_get(pg, 9, &e), BR_E_NOT_FOUND);
    struct br_pg_event list[4];
    uint32_t n = 0;
    assert_int_equal(br_pg_event_list(pg, 1, 4, list, &n), BR_OK);
    assert_int_equal(n, 2);
    assert_int_equal(list[0].id, 2);
    assert_int_equal(list[1].id, 3);
    assert_memory_equal(&list[1].spec, &s, sizeof s);
    assert_int_equal(br_pg_event_list(pg, 0, 1, list, &n), BR_OK);
    assert_int_equal(n, 1);
    struct br_pg_zone z[BR_EVENT_ZONES_MAX];
    assert_int_equal(br_pg_zones(pg, 3, z, &n), BR_OK);
    assert_int_equal(n, 3);
    assert_int_equal(z[1].capacity, 1000000);
    assert_int_equal(z[2].held + z[2].sold, 0);
    uint64_t max = 0;
    assert_int_equal(br_pg_event_max_id(pg, &max), BR_OK);
    assert_int_equal(max, 3);
    br_pg_close(pg);
}

/* ---- the projection ----------------------------------------------------- */

#define REC_FX_MAX 16

struct rec {
    char sid[BR_PG_STREAM_ID_MAX];
    struct br_cmd c;
    struct br_outcome o;
    struct br_effect fx[REC_FX_MAX];
    uint32_t nfx;
};

static uint32_t rec_seq;

/* Applies c to the engine and records it as the event's next log entry. */
static void record(struct br_engine *e, struct rec *r, const struct br_cmd *c, int want)
{
    r->c = *c;
    apply_expect(e, c, want, &r->o);
    const struct br_effect *fx = br_engine_effects(e, &r->nfx);
    assert_true(r->nfx <= REC_FX_MAX);
    memcpy(r->fx, fx, r->nfx * sizeof *fx);
    snprintf(r->sid, sizeof r->sid, "%lld-%u", (long long)c->now_ms, rec_seq++);
}

static void items_of(const struct rec *r, uint32_t n, struct br_pg_log_item *items)
{
    for (uint32_t i = 0; i < n; i++) {
        items[i].stream_id = r[i].sid;
        items[i].cmd = &r[i].c;
        items[i].out = &r[i].o;
        items[i].fx = r[i].fx;
        items[i].fx_count = r[i].nfx;
    }
}

/* One event of capacity `cap` in the engine and in PostgreSQL, users 1..3. */
static struct br_engine *sale(struct br_pg *pg, uint32_t cap)
{
    struct br_engine *e = t_engine_new(NULL);
    struct br_event_spec s = t_spec();
    s.zones[0].capacity = cap;
    s.hold_ttl_ms = 10000;
    uint64_t ids[3];
    t_users(e, 3, ids);
    t_event(e, 0, &s);
    struct br_cmd c = c_event(0, 0, &s);
    uint64_t id = 0;
    assert_int_equal(br_pg_event_create(pg, &c, NULL, NULL, &id), BR_OK);
    assert_int_equal(id, 1);
    return e;
}

/* The log's first three entries of sale(pg, 10) into r[0..2]: user 1
 * holds 2 seats, user 2 holds 3, user 1 cancels. */
static void record_opening(struct br_engine *e, struct rec *r)
{
    struct br_cmd c = c_reserve(100, 1, 1, 1, 2, 0, 0);
    record(e, &r[0], &c, BR_OK);
    c = c_reserve(101, 2, 1, 1, 3, 0, 0);
    record(e, &r[1], &c, BR_OK);
    c = c_cancel(102, 1, r[0].o.id);
    record(e, &r[2], &c, BR_OK);
}

static void expect_zone(struct br_pg *pg, uint32_t held, uint32_t sold)
{
    struct br_pg_zone z[BR_EVENT_ZONES_MAX];
    uint32_t n = 0;
    assert_int_equal(br_pg_zones(pg, 1, z, &n), BR_OK);
    assert_int_equal(n, 1);
    assert_int_equal(z[0].held, held);
    assert_int_equal(z[0].sold, sold);
}

static void test_projection_exactly_once(void **state)
{
    (void)state;
    char url[PGT_URL_MAX];
    struct br_pg *pg = pgt_open_db("t_project_once", 1, NULL, url);
    struct br_engine *e = sale(pg, 10);
    struct rec r[8];
    record_opening(e, r);
    struct br_cmd c = c_pay(103, 2, r[1].o.id);
    record(e, &r[3], &c, BR_OK);
    c = c_pay_event(104, 0xFEEDFACECAFEBEEFull, r[3].o.id, T_SUCCEEDED);
    record(e, &r[4], &c, BR_OK);
    struct br_pg_log_item items[8];
    items_of(r, 5, items);
    uint32_t applied = 0;
    assert_int_equal(br_pg_project(pg, 1, items, 5, &applied), BR_OK);
    assert_int_equal(applied, 5);
    expect_zone(pg, 0, 3);
    /* the same batch again: nothing applied, nothing moved */
    assert_int_equal(br_pg_project(pg, 1, items, 5, &applied), BR_OK);
    assert_int_equal(applied, 0);
    expect_zone(pg, 0, 3);
    char pos[BR_PG_STREAM_ID_MAX];
    assert_int_equal(br_pg_projection_position(pg, 1, pos), BR_OK);
    assert_string_equal(pos, r[4].sid);
    /* overlapping: the tail of the old batch and one new entry */
    c = c_reserve(105, 3, 1, 1, 1, 0, 0);
    record(e, &r[5], &c, BR_OK);
    items_of(r, 6, items);
    assert_int_equal(br_pg_project(pg, 1, items + 3, 3, &applied), BR_OK);
    assert_int_equal(applied, 1);
    expect_zone(pg, 1, 3);
    /* the record agrees with the engine */
    struct br_pg_booking b;
    assert_int_equal(br_pg_booking_get(pg, r[0].o.id, &b), BR_OK);
    assert_int_equal(b.state, BR_HOLD_CANCELLED);
    assert_int_equal(br_pg_booking_get(pg, r[1].o.id, &b), BR_OK);
    assert_int_equal(b.state, BR_HOLD_CONFIRMED);
    assert_int_equal(b.payment_id, r[3].o.id);
    assert_int_equal(b.total_minor, 3 * 2500);
    assert_string_equal(b.currency, "EUR");
    struct br_pg_payment p;
    assert_int_equal(br_pg_payment_get(pg, r[3].o.id, &p), BR_OK);
    assert_int_equal(p.state, BR_PAY_CONFIRMED);
    uint64_t pev[4];
    uint32_t n = 0;
    assert_int_equal(br_pg_provider_events(pg, 1, 0, 4, pev, &n), BR_OK);
    assert_int_equal(n, 1);
    assert_true(pev[0] == 0xFEEDFACECAFEBEEFull);
    /* outbox: notify (cancel), provider_charge, booking_confirmed; once each */
    assert_int_equal(pgt_scalar(url, "SELECT count(*) FROM outbox"), 3);
    assert_int_equal(pgt_scalar(url, "SELECT applied FROM projection WHERE event_id = 1"), 6);
    /* live holds for the rebuild */
    struct br_pg_booking live[4];
    assert_int_equal(br_pg_bookings(pg, 1, 1u << BR_HOLD_HELD, 0, 4, live, &n), BR_OK);
    assert_int_equal(n, 1);
    assert_int_equal(live[0].id, r[5].o.id);
    assert_int_equal(live[0].expires_at_ms, r[5].o.deadline_ms);
    /* malformed batches */
    items[1].stream_id = items[0].stream_id;
    assert_int_equal(br_pg_project(pg, 1, items, 2, &applied), BR_E_INVALID);
    assert_int_equal(br_pg_project(pg, 2, items + 5, 1, &applied), BR_E_NOT_FOUND);
    t_engine_free(e);
    br_pg_close(pg);
}

/* A reserve script that oversold (planted in the log itself): the CHECK
 * refuses the batch, loudly, and the record keeps its last good state. */
static void test_projection_check_refuses_oversell(void **state)
{
    (void)state;
    char url[PGT_URL_MAX];
    struct br_pg *pg = pgt_open_db("t_project_oversell", 1, NULL, url);
    struct br_engine *e = sale(pg, 3);
    struct rec r[4];
    struct br_cmd c = c_reserve(100, 1, 1, 1, 2, 0, 0);
    record(e, &r[0], &c, BR_OK);
    struct br_pg_log_item items[4];
    items_of(r, 1, items);
    assert_int_equal(br_pg_project(pg, 1, items, 1, NULL), BR_OK);
    /* the engine refuses 2 more seats; the log says a buggy script sold them */
    c = c_reserve(101, 2, 1, 1, 2, 0, 0);
    record(e, &r[1], &c, BR_E_SOLD_OUT);
    r[1].o.err = BR_OK;
    r[1].o.id = (1ull << 32) | 2;
    r[1].o.status = BR_HOLD_HELD;
    r[1].o.count = 2;
    r[1].o.amount_minor = 5000;
    r[1].o.deadline_ms = 10101;
    c = c_reserve(102, 3, 1, 1, 1, 0, 0);
    record(e, &r[2], &c, BR_OK);
    items_of(r, 3, items);
    uint32_t applied = 7;
    assert_int_equal(br_pg_project(pg, 1, items + 1, 2, &applied), BR_E_CORRUPT);
    assert_int_equal(applied, 0);
    expect_zone(pg, 2, 0); /* never "fixed", never partly applied */
    struct br_pg_stats st;
    br_pg_stats(pg, &st);
    assert_int_equal(st.refused, 1);
    char pos[BR_PG_STREAM_ID_MAX];
    assert_int_equal(br_pg_projection_position(pg, 1, pos), BR_OK);
    assert_string_equal(pos, r[0].sid);
    assert_int_equal(pgt_scalar(url, "SELECT count(*) FROM bookings"), 1);
    /* and it keeps refusing: the recorder stops there */
    assert_int_equal(br_pg_project(pg, 1, items + 1, 2, &applied), BR_E_CORRUPT);
    /* an oversell that a later cancel in the same batch would hide in the
     * final counts (2 + 2 - 2 <= 3) is refused too: every entry is checked */
    c = c_cancel(103, 1, r[0].o.id);
    record(e, &r[3], &c, BR_OK);
    items_of(r, 4, items);
    struct br_pg_log_item hide[2] = {items[1], items[3]};
    assert_int_equal(br_pg_project(pg, 1, hide, 2, &applied), BR_E_CORRUPT);
    expect_zone(pg, 2, 0);
    t_engine_free(e);
    br_pg_close(pg);
}

/* ---- lost connections --------------------------------------------------- */

static void test_connection_killed_between_calls_is_retried(void **state)
{
    (void)state;
    char url[PGT_URL_MAX];
    struct br_pg *pg = pgt_open_db("t_kill_idle", 1, NULL, url);
    assert_int_equal(br_pg_ping(pg), BR_OK);
    uint64_t before = br_pg_connects(pg);
    assert_int_equal(pgt_kill_adapter_connections(url), 1);
    uint64_t id = 0;
    struct br_cmd c = reg("k@x.io", BR_ROLE_CUSTOMER);
    assert_int_equal(br_pg_user_register(pg, &c, NULL, NULL, &id), BR_OK);
    assert_int_equal(id, 1);
    assert_int_equal(br_pg_connects(pg), before + 1);
    /* a read after a kill, too */
    assert_int_equal(pgt_kill_adapter_connections(url), 1);
    struct br_pg_user u;
    assert_int_equal(br_pg_user_get(pg, 1, &u), BR_OK);
    assert_int_equal(pgt_scalar(url, "SELECT count(*) FROM users"), 1);
    br_pg_close(pg);
}

static void test_connection_killed_inside_transaction_retried_once(void **state)
{
    (void)state;
    char url[PGT_URL_MAX];
    struct br_pg *pg = pgt_open_db("t_kill_tx", 2, NULL, url);
    uint64_t id = 0;
    struct br_cmd c = reg("first@x.io", BR_ROLE_CUSTOMER);
    assert_int_equal(br_pg_user_register(pg, &c, NULL, NULL, &id), BR_OK);
    /* the hook kills the transaction's connection: nothing committed, so the
     * whole transaction runs again, the hook sees the same id twice */
    struct hook_log h = {0};
    h.kill_url = url;
    c = reg("k@x.io", BR_ROLE_CUSTOMER);
    assert_int_equal(br_pg_user_register(pg, &c, hook, &h, &id), BR_OK);
    assert_int_equal(id, 2);
    assert_int_equal(h.calls, 2);
    assert_int_equal(h.ids[0], 2);
    assert_int_equal(h.ids[1], 2);
    assert_int_equal(pgt_scalar(url, "SELECT count(*) FROM users"), 2);
    struct br_pg_stats st;
    br_pg_stats(pg, &st);
    assert_int_equal(st.retries, 1);
    /* the projection, killed inside its transaction: applied once */
    struct br_engine *e = t_engine_new(NULL);
    uint64_t ids[3];
    t_users(e, 3, ids);
    struct br_event_spec s = t_spec();
    t_event(e, 0, &s);
    struct br_cmd ec = c_event(0, 0, &s);
    struct hook_log eh = {0};
    eh.kill_url = url;
    assert_int_equal(br_pg_event_create(pg, &ec, hook, &eh, &id), BR_OK);
    assert_int_equal(id, 1);
    assert_int_equal(eh.calls, 2);
    assert_int_equal(pgt_scalar(url, "SELECT count(*) FROM zones"), 1);
    t_engine_free(e);
    br_pg_close(pg);
}

static void test_lost_commit_answer_is_resolved_not_repeated(void **state)
{
    (void)state;
    char url[PGT_URL_MAX];
    struct br_pg *pg = pgt_open_db("t_lost_commit", 2, NULL, url);
    struct hook_log h = {0};
    uint64_t id = 0;
    struct br_cmd c = reg("lost@x.io", BR_ROLE_CUSTOMER);
    br_pg_fault_lose_commits(pg, 1);
    assert_int_equal(br_pg_user_register(pg, &c, hook, &h, &id), BR_OK);
    assert_int_equal(id, 1);
    assert_int_equal(h.calls, 1); /* committed: found out, not run again */
    struct br_pg_stats st;
    br_pg_stats(pg, &st);
    assert_int_equal(st.commits_resolved, 1);
    assert_int_equal(st.retries, 0);
    assert_int_equal(st.unknown_outcomes, 0);
    assert_int_equal(pgt_scalar(url, "SELECT count(*) FROM users"), 1);
    /* the projection: a lost COMMIT answer, then the recorder's retry */
    struct br_engine *e = sale(pg, 10);
    struct rec r[2];
    struct br_cmd rc = c_reserve(100, 1, 1, 1, 2, 0, 0);
    record(e, &r[0], &rc, BR_OK);
    struct br_pg_log_item items[2];
    items_of(r, 1, items);
    br_pg_fault_lose_commits(pg, 1);
    uint32_t applied = 0;
    assert_int_equal(br_pg_project(pg, 1, items, 1, &applied), BR_OK);
    assert_int_equal(applied, 1);
    assert_int_equal(br_pg_project(pg, 1, items, 1, &applied), BR_OK);
    assert_int_equal(applied, 0);
    expect_zone(pg, 2, 0);
    t_engine_free(e);
    br_pg_close(pg);
}

static void test_projection_killed_before_commit_applies_once(void **state)
{
    (void)state;
    char url[PGT_URL_MAX];
    struct br_pg *pg = pgt_open_db("t_kill_project", 1, NULL, url);
    struct br_engine *e = sale(pg, 10);
    struct rec r[3];
    record_opening(e, r);
    struct br_pg_log_item items[3];
    items_of(r, 3, items);
    uint64_t before = br_pg_connects(pg);
    br_pg_fault_kill_before_commit(pg, 1);
    uint32_t applied = 0;
    assert_int_equal(br_pg_project(pg, 1, items, 3, &applied), BR_OK);
    assert_int_equal(applied, 3);
    assert_true(br_pg_connects(pg) > before); /* it did lose its connection */
    expect_zone(pg, 3, 0);
    assert_int_equal(pgt_scalar(url, "SELECT count(*) FROM outbox"), 1);
    assert_int_equal(pgt_scalar(url, "SELECT applied FROM projection"), 3);
    /* twice in a row: the retry dies too, nothing committed, the caller retries */
    struct br_cmd c = c_reserve(103, 3, 1, 1, 1, 0, 0);
    record(e, &r[0], &c, BR_OK);
    items_of(r, 1, items);
    br_pg_fault_kill_before_commit(pg, 2);
    assert_int_equal(br_pg_project(pg, 1, items, 1, &applied), BR_E_UNAVAILABLE);
    expect_zone(pg, 3, 0);
    assert_int_equal(br_pg_project(pg, 1, items, 1, &applied), BR_OK);
    assert_int_equal(applied, 1);
    expect_zone(pg, 4, 0);
    t_engine_free(e);
    br_pg_close(pg);
}

struct racer {
    struct br_pg *pg;
    const struct br_pg_log_item *items;
    uint32_t n;
    int base;
    uint32_t applied;
    int rc;
    uint64_t ids[16];
};

static void *project_racer(void *arg)
{
    struct racer *x = arg;
    x->rc = br_pg_project(x->pg, 1, x->items, x->n, &x->applied);
    return NULL;
}

static void *register_racer(void *arg)
{
    struct racer *x = arg;
    x->rc = BR_OK;
    for (int i = 0; i < 16 && x->rc == BR_OK; i++) {
        char email[32];
        snprintf(email, sizeof email, "r%d@x.io", x->base + i);
        struct br_cmd c = reg(email, BR_ROLE_CUSTOMER);
        x->rc = br_pg_user_register(x->pg, &c, NULL, NULL, &x->ids[i]);
    }
    return NULL;
}

static void test_two_writers_at_once(void **state)
{
    (void)state;
    char url[PGT_URL_MAX];
    struct br_pg *pg1 = pgt_open_db("t_race", 2, NULL, url);
    struct br_pg *pg2 = NULL;
    assert_int_equal(br_pg_open(&pg2, url, 2, NULL), BR_OK);
    /* two registrations streams: ids stay dense and distinct */
    struct racer a = {.pg = pg1, .base = 0}, b = {.pg = pg2, .base = 100};
    pthread_t ta, tb;
    assert_int_equal(pthread_create(&ta, NULL, register_racer, &a), 0);
    assert_int_equal(pthread_create(&tb, NULL, register_racer, &b), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    assert_int_equal(a.rc, BR_OK);
    assert_int_equal(b.rc, BR_OK);
    bool seen[33] = {false};
    for (int i = 0; i < 16; i++) {
        assert_true(a.ids[i] >= 1 && a.ids[i] <= 32 && !seen[a.ids[i]]);
        seen[a.ids[i]] = true;
        assert_true(b.ids[i] >= 1 && b.ids[i] <= 32 && !seen[b.ids[i]]);
        seen[b.ids[i]] = true;
    }
    /* two recorders projecting the same batch: each entry once */
    struct br_engine *e = t_engine_new(NULL);
    uint64_t ids[3];
    t_users(e, 3, ids);
    struct br_event_spec s = t_spec();
    s.hold_ttl_ms = 100000;
    t_event(e, 0, &s);
    struct br_cmd ec = c_event(0, 0, &s);
    uint64_t id = 0;
    assert_int_equal(br_pg_event_create(pg1, &ec, NULL, NULL, &id), BR_OK);
    struct rec r[6];
    for (int i = 0; i < 6; i++) {
        struct br_cmd c = c_reserve(100 + i, 1 + (uint64_t)(i % 3), 1, 1, 1, 0, 0);
        record(e, &r[i], &c, BR_OK);
    }
    struct br_pg_log_item items[6];
    items_of(r, 6, items);
    a = (struct racer){.pg = pg1, .items = items, .n = 6};
    b = (struct racer){.pg = pg2, .items = items, .n = 6};
    assert_int_equal(pthread_create(&ta, NULL, project_racer, &a), 0);
    assert_int_equal(pthread_create(&tb, NULL, project_racer, &b), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    assert_int_equal(a.rc, BR_OK);
    assert_int_equal(b.rc, BR_OK);
    assert_int_equal(a.applied + b.applied, 6);
    assert_true(a.applied == 0 || b.applied == 0);
    expect_zone(pg1, 6, 0);
    t_engine_free(e);
    br_pg_close(pg1);
    br_pg_close(pg2);
}

/* The COMMIT answer is lost and no new connection can ask the server what
 * happened: the caller is told the truth, UNKNOWN_OUTCOME. */
static void test_unknown_outcome_when_nobody_can_tell(void **state)
{
    (void)state;
    char url[PGT_URL_MAX];
    struct br_pg *pg = pgt_open_db("t_unknown", 1, NULL, url);
    char admin[PGT_URL_MAX];
    snprintf(admin, sizeof admin, "%s", url);
    strcpy(strrchr(admin, '/'), "/postgres");
    struct hook_log h = {0};
    h.lock_out_url = admin;
    struct br_cmd c = reg("u@x.io", BR_ROLE_CUSTOMER);
    uint64_t id = 0;
    br_pg_fault_lose_commits(pg, 1);
    assert_int_equal(br_pg_user_register(pg, &c, hook, &h, &id), BR_E_UNKNOWN_OUTCOME);
    assert_int_equal(h.calls, 1); /* not run again blindly */
    struct br_pg_stats st;
    br_pg_stats(pg, &st);
    assert_int_equal(st.unknown_outcomes, 1);
    assert_int_equal(pgt_exec(admin, "ALTER DATABASE t_unknown WITH ALLOW_CONNECTIONS true"), 0);
    /* it had committed; doing it again is harmless: the email is taken */
    assert_int_equal(pgt_scalar(url, "SELECT count(*) FROM users"), 1);
    assert_int_equal(br_pg_user_register(pg, &c, NULL, NULL, &id), BR_E_EMAIL_TAKEN);
    br_pg_close(pg);
}

static void test_server_gone_is_unavailable_then_recovers(void **state)
{
    (void)state;
    struct br_pg *pg = NULL;
    /* nothing listens on port 1 */
    assert_int_equal(br_pg_open(&pg, "postgresql://postgres@127.0.0.1:1/postgres", 1, NULL), BR_OK);
    assert_int_equal(br_pg_ping(pg), BR_E_UNAVAILABLE);
    struct br_pg_user u;
    assert_int_equal(br_pg_user_get(pg, 1, &u), BR_E_UNAVAILABLE);
    br_pg_close(pg);
    assert_int_equal(br_pg_open(&pg, "", 1, NULL), BR_E_INVALID);
    assert_int_equal(br_pg_open(&pg, "x", 0, NULL), BR_E_INVALID);
}

static void test_pool_bound_overloaded(void **state)
{
    (void)state;
    char url[PGT_URL_MAX];
    struct br_pg *pg = pgt_open_db("t_pool", 1, NULL, url);
    br_pg_set_wait_ms(pg, 50);
    /* the only connection is inside the register; the hook asks for another */
    struct hook_log h = {0};
    h.reenter = pg;
    uint64_t id = 0;
    struct br_cmd c = reg("p@x.io", BR_ROLE_CUSTOMER);
    assert_int_equal(br_pg_user_register(pg, &c, hook, &h, &id), BR_E_OVERLOADED);
    assert_int_equal(h.reenter_rc, BR_E_OVERLOADED);
    assert_int_equal(pgt_scalar(url, "SELECT count(*) FROM users"), 0);
    assert_int_equal(br_pg_ping(pg), BR_OK); /* given back */
    struct br_pg_stats st;
    br_pg_stats(pg, &st);
    assert_int_equal(st.overloaded, 1);
    assert_int_equal(st.pool_size, 1);
    assert_int_equal(st.busy, 0);
    br_pg_close(pg);
}

/* ---- test intents ------------------------------------------------------- */

static void test_intents_shared(void **state)
{
    (void)state;
    char url[PGT_URL_MAX];
    struct br_pg *pg = pgt_open_db("t_intents", 2, NULL, url);
    struct br_pg_intent in, got;
    memset(&in, 0, sizeof in);
    strcpy(in.id, "pi_first");
    in.payment_id = (1ull << 32) | 1;
    in.booking_id = (1ull << 32) | 1;
    strcpy(in.client_secret, "pi_first_secret_x");
    in.amount_minor = 5000;
    strcpy(in.currency, "EUR");
    strcpy(in.status, "requires_payment_method");
    in.created_ms = 10;
    assert_int_equal(br_pg_intent_put(pg, &in, &got), BR_OK);
    assert_memory_equal(&got, &in, sizeof in);
    /* another process creating the same payment's intent gets the first */
    struct br_pg_intent other = in;
    strcpy(other.id, "pi_second");
    strcpy(other.client_secret, "pi_second_secret_y");
    assert_int_equal(br_pg_intent_put(pg, &other, &got), BR_OK);
    assert_string_equal(got.id, "pi_first");
    assert_string_equal(got.client_secret, "pi_first_secret_x");
    assert_int_equal(br_pg_intent_get(pg, "pi_first", &got), BR_OK);
    assert_int_equal(br_pg_intent_get(pg, "pi_second", &got), BR_E_NOT_FOUND);
    assert_int_equal(br_pg_intent_by_payment(pg, in.payment_id, &got), BR_OK);
    assert_string_equal(got.id, "pi_first");
    assert_int_equal(br_pg_intent_set_status(pg, "pi_first", "requires_payment_method"), BR_OK);
    assert_int_equal(br_pg_intent_set_status(pg, "pi_first", "succeeded"), BR_OK);
    assert_int_equal(br_pg_intent_set_status(pg, "pi_first", "requires_payment_method"),
                     BR_E_DUPLICATE);
    assert_int_equal(br_pg_intent_set_status(pg, "pi_none", "succeeded"), BR_E_NOT_FOUND);
    assert_int_equal(br_pg_intent_get(pg, "pi_first", &got), BR_OK);
    assert_string_equal(got.status, "succeeded");
    br_pg_close(pg);
}

int main(int argc, char **argv)
{
    if (argc > 1) {
        cmocka_set_test_filter(argv[1]); /* one test by name (scripts/test.d/52-pg-plant.sh) */
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_migrate_twice_applies_once),
        cmocka_unit_test(test_migrate_from_two_processes_at_once),
        cmocka_unit_test(test_register_dense_ids_and_hook),
        cmocka_unit_test(test_email_unique_byte_for_byte),
        cmocka_unit_test(test_sessions_follow_session_h),
        cmocka_unit_test(test_event_spec_round_trips),
        cmocka_unit_test(test_projection_exactly_once),
        cmocka_unit_test(test_projection_check_refuses_oversell),
        cmocka_unit_test(test_connection_killed_between_calls_is_retried),
        cmocka_unit_test(test_connection_killed_inside_transaction_retried_once),
        cmocka_unit_test(test_lost_commit_answer_is_resolved_not_repeated),
        cmocka_unit_test(test_projection_killed_before_commit_applies_once),
        cmocka_unit_test(test_two_writers_at_once),
        cmocka_unit_test(test_unknown_outcome_when_nobody_can_tell),
        cmocka_unit_test(test_server_gone_is_unavailable_then_recovers),
        cmocka_unit_test(test_pool_bound_overloaded),
        cmocka_unit_test(test_intents_shared),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
