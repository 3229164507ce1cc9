/*
 * test_rush_verdict.c -- the rush's verdict on synthetic data: one ledger and
 * snapshot that pass every check, then one mutation per check that must be
 * named (every value of enum br_rush_check is produced at least once), and
 * the cases that must not be flagged (a concurrent pair, a silent leaver, a
 * pass issued as the crowd stopped, a double-click answered 503). The formats
 * the rush reads are pinned against the server's own writers: the pass token
 * (br_pass_token_sign), the stats JSON (br_render_stats) and the time format
 * (br_time_format), so a change there breaks this test, not the verdict.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "adapters/auth.h"
#include "core/err.h"
#include "core/rng.h"
#include "server/backend.h"
#include "server/render.h"
#include "server/rush_net.h"
#include "server/rush_verdict.h"

#define EV 7u
#define PASS(seq) (((uint64_t)EV << 32) | (uint64_t)(seq))
#define USERS_MAX 64u
#define ROWS_MAX 64u

struct fx {
    struct br_rush_ledger l;
    struct br_rush_snapshot s;
    struct br_rush_user users[USERS_MAX];
    struct br_rush_final_booking rows[USERS_MAX][8]; /* per user, before packing */
    uint32_t nrows[USERS_MAX];
    struct br_rush_final_booking packed[ROWS_MAX];
    uint32_t start[USERS_MAX + 1];
    struct br_rush_verdict v;
};

static struct br_rush_place *place(struct fx *f, uint32_t u, uint8_t status, int64_t sent_us,
                                   int64_t recv_us, uint32_t seq)
{
    struct br_rush_user *usr = &f->users[u];
    struct br_rush_place *p = &usr->places[usr->place_count++];
    p->join_sent_us = sent_us;
    p->join_recv_us = recv_us;
    p->join_status = status;
    p->stream_kept = true;
    if (seq != 0) {
        p->pass_via = 1;
        p->pass_id = PASS(seq);
        p->pass_issued_ms = 1000000 + seq;
    }
    return p;
}

static struct br_rush_booking *book(struct fx *f, uint32_t u, uint64_t id, uint8_t zone,
                                    uint16_t qty, uint8_t status)
{
    struct br_rush_user *usr = &f->users[u];
    struct br_rush_booking *b = &usr->bookings[usr->booking_count++];
    b->id = id;
    b->zone_id = zone;
    b->quantity = qty;
    b->place = (uint8_t)(usr->place_count - 1);
    b->last_status = BR_HOLD_HELD;
    f->rows[u][f->nrows[u]++] = (struct br_rush_final_booking){id, EV, 0, zone, status, qty};
    if (status == BR_HOLD_CONFIRMED) {
        b->pay = BR_RUSH_PAY_SUCCEEDED;
        b->card_success_sent = true;
        b->last_status = BR_HOLD_CONFIRMED;
    }
    return b;
}

/* The passing fixture: one owned event (2 zones of 10, limit 4, passes
 * required). Users 0-3 joined before the opening (passes shuffled: 3 1 4 2),
 * users 4-7 after it one by one (passes 5-8 in order); user 8 left silently
 * and was admitted; user 9 is a storm account. Bookings: 100 confirmed (z1
 * x2), 101 held (z2 x1), 102 cancelled (z1 x4), 103 expired (z2 x3). */
static void fx_init(struct fx *f)
{
    memset(f, 0, sizeof *f);
    f->l.users = f->users;
    f->l.event_count = 1;
    f->l.user_count = 10;
    f->l.crowd_count = 9;
    struct br_rush_event *e = &f->l.events[0];
    *e = (struct br_rush_event){.id = EV, .owned = true, .requires_pass = true,
                                .per_user_limit = 4, .zone_count = 2, .pass_ttl_ms = 20000,
                                .hold_ttl_ms = 8000, .capacity = {10, 10}};
    for (uint32_t u = 0; u < f->l.user_count; u++) {
        f->users[u].user_id = 1000 + u;
        f->users[u].final_queue_status = 0xff;
    }
    f->users[9].storm = true;
    static const uint32_t pre_seq[4] = {3, 1, 4, 2};
    for (uint32_t u = 0; u < 4; u++) {
        place(f, u, BR_QS_PREQUEUE, 1000 * u, 1000 * u + 500, pre_seq[u]);
    }
    for (uint32_t u = 4; u < 8; u++) {
        place(f, u, BR_QS_WAITING, 100000 + 1000 * u, 100000 + 1000 * u + 500, u + 1);
    }
    struct br_rush_place *silent = place(f, 8, BR_QS_WAITING, 200000, 200500, 0);
    silent->silent_left = true;
    silent->stream_kept = false;
    f->users[8].final_queue_status = BR_QS_ADMITTED;
    book(f, 0, 100, 1, 2, BR_HOLD_CONFIRMED);
    book(f, 1, 101, 2, 1, BR_HOLD_HELD);
    book(f, 4, 102, 1, 4, BR_HOLD_CANCELLED)->cancelled_by_us = true;
    book(f, 5, 103, 2, 3, BR_HOLD_EXPIRED);
    f->users[6].dups[f->users[6].dup_count++] =
        (struct br_rush_dup){BR_RR_JOIN, {200, 0}, {200, 0}};
    struct br_rush_stats *st = &f->s.stats[0];
    *st = (struct br_rush_stats){.event_id = EV, .admitted = 9, .zone_count = 2,
                                 .capacity = {10, 10}, .held = {0, 1}, .sold = {2, 0},
                                 .bookings = {1, 1, 1, 1, 0}};
    f->s.pass_seq_from_token = true;
}

static void fx_run(struct fx *f)
{
    uint32_t at = 0;
    for (uint32_t u = 0; u < f->l.user_count; u++) {
        f->start[u] = at;
        for (uint32_t r = 0; r < f->nrows[u]; r++) {
            assert_true(at < ROWS_MAX);
            f->packed[at++] = f->rows[u][r];
        }
    }
    f->start[f->l.user_count] = at;
    f->s.rows = f->packed;
    f->s.row_start = f->start;
    br_rush_verdict_check(&f->l, &f->s, &f->v);
}

static uint32_t produced[BR_RUSH_CHECK_COUNT]; /* over the whole run: every check at least once */

/* The verdict flags `check` (and it is listed, with its name), and nothing
 * else unless `also` allows it. */
static void expect(const struct fx *f, unsigned check, unsigned also)
{
    const struct br_rush_verdict *v = &f->v;
    assert_false(br_rush_verdict_ok(v));
    assert_true(v->counts[check] > 0);
    produced[check] += v->counts[check];
    bool listed = false;
    for (uint32_t i = 0; i < v->listed; i++) {
        listed |= v->v[i].check == check && v->v[i].message[0] != '\0';
    }
    assert_true(listed);
    for (unsigned c = 0; c < BR_RUSH_CHECK_COUNT; c++) {
        if (c != check && c != also && v->counts[c] != 0) {
            fail_msg("unexpected %s: %s", br_rush_check_name(c), v->v[0].message);
        }
    }
}

static void expect_ok(const struct fx *f)
{
    for (unsigned c = 0; c < BR_RUSH_CHECK_COUNT; c++) {
        if (f->v.counts[c] != 0) {
            fail_msg("%s flagged: %s", br_rush_check_name(c), f->v.v[0].message);
        }
    }
    assert_true(br_rush_verdict_ok(&f->v));
}

static struct fx F;

static void test_passing(void **state)
{
    (void)state;
    fx_init(&F);
    fx_run(&F);
    expect_ok(&F);
    assert_int_equal(F.v.admissions, 9);
    assert_int_equal(F.v.passes_received, 8);
    assert_int_equal(F.v.silent_admitted, 1);
    assert_int_equal(F.v.admissions_listening, 8);
    assert_false(F.v.shuffle_evaluated); /* 4 prequeue places: < 200 pairs */
}

static void test_oversell_stats(void **state)
{
    (void)state;
    fx_init(&F);
    F.s.stats[0].sold[0] = 10 - F.s.stats[0].held[0] + 1; /* the STATS_OVERSELL plant's shape */
    fx_run(&F);
    expect(&F, BR_RUSH_CHECK_OVERSELL, BR_RUSH_CHECK_STATS_MISMATCH);
    assert_true(F.v.counts[BR_RUSH_CHECK_STATS_MISMATCH] > 0);
    produced[BR_RUSH_CHECK_STATS_MISMATCH]++;
    assert_int_equal(F.v.v[0].zone_id, 1);
    assert_non_null(strstr(F.v.v[0].message, "stats held 0 + sold 11"));
}

static void test_oversell_bookings(void **state)
{
    (void)state;
    fx_init(&F);
    F.l.events[0].owned = false; /* --event: the stats may count others, not fewer than ours */
    book(&F, 2, 110, 1, 4, BR_HOLD_HELD);
    book(&F, 3, 111, 1, 4, BR_HOLD_HELD);
    book(&F, 6, 116, 1, 1, BR_HOLD_HELD);
    F.s.stats[0].held[0] = 8; /* the stats are not oversold (8 + 2), and undercount ours */
    F.s.stats[0].bookings[0] = 4;
    fx_run(&F);
    expect(&F, BR_RUSH_CHECK_OVERSELL, BR_RUSH_CHECK_STATS_MISMATCH);
    assert_int_equal(F.v.counts[BR_RUSH_CHECK_OVERSELL], 1);
    assert_non_null(strstr(F.v.v[0].message, "the users' bookings hold 9 held + 2 confirmed = 11"));
}

static void test_stats_mismatch(void **state)
{
    (void)state;
    fx_init(&F);
    F.s.stats[0].bookings[2] = 2; /* expired: 1 in the lists */
    fx_run(&F);
    expect(&F, BR_RUSH_CHECK_STATS_MISMATCH, BR_RUSH_CHECK_STATS_MISMATCH);
    assert_int_equal(F.v.counts[BR_RUSH_CHECK_STATS_MISMATCH], 1);
    /* --event: the server counting more than our users hold is fine, fewer is not. */
    fx_init(&F);
    F.l.events[0].owned = false;
    F.s.stats[0].bookings[2] = 7;
    F.s.stats[0].held[1] = 5;
    fx_run(&F);
    expect_ok(&F);
    F.s.stats[0].sold[0] = 1;
    fx_run(&F);
    expect(&F, BR_RUSH_CHECK_STATS_MISMATCH, BR_RUSH_CHECK_STATS_MISMATCH);
    /* An unstable snapshot (it moved three times) does not compare. */
    F.s.unstable = true;
    fx_run(&F);
    expect_ok(&F);
}

static void test_booking_lost(void **state)
{
    (void)state;
    fx_init(&F);
    F.nrows[1] = 0; /* booking 101 vanished from its user's list */
    F.s.stats[0].held[1] = 0;
    F.s.stats[0].bookings[0] = 0;
    fx_run(&F);
    expect(&F, BR_RUSH_CHECK_BOOKING_LOST, BR_RUSH_CHECK_BOOKING_LOST);
    assert_int_equal(F.v.v[0].booking_id, 101);
    /* Answered confirmed, later cancelled. */
    fx_init(&F);
    F.rows[0][0].status = BR_HOLD_CANCELLED;
    F.users[0].bookings[0].pay = BR_RUSH_PAY_NONE;
    F.s.stats[0].sold[0] = 0;
    F.s.stats[0].bookings[1] = 0;
    F.s.stats[0].bookings[3] = 2;
    fx_run(&F);
    expect(&F, BR_RUSH_CHECK_BOOKING_LOST, BR_RUSH_CHECK_BOOKING_LOST);
    assert_non_null(strstr(F.v.v[0].message, "answered confirmed, now cancelled"));
}

static void test_user_limit(void **state)
{
    (void)state;
    /* (a) a 201 for more than the limit (the booking then cancelled). */
    fx_init(&F);
    F.users[4].bookings[0].quantity = 5;
    F.rows[4][0].quantity = 5;
    fx_run(&F);
    expect(&F, BR_RUSH_CHECK_USER_LIMIT, BR_RUSH_CHECK_USER_LIMIT);
    assert_int_equal(F.v.counts[BR_RUSH_CHECK_USER_LIMIT], 1);
    /* (a) as counted by the crowd. */
    fx_init(&F);
    F.users[3].over_limit_201 = 2;
    fx_run(&F);
    expect(&F, BR_RUSH_CHECK_USER_LIMIT, BR_RUSH_CHECK_USER_LIMIT);
    /* (b) held + confirmed over the limit in the final list, each booking within it. */
    fx_init(&F);
    place(&F, 0, BR_QS_WAITING, 300000, 300500, 9);
    book(&F, 0, 112, 2, 3, BR_HOLD_HELD);
    F.s.stats[0].held[1] = 4;
    F.s.stats[0].bookings[0] = 2;
    F.s.stats[0].admitted = 10;
    fx_run(&F);
    expect(&F, BR_RUSH_CHECK_USER_LIMIT, BR_RUSH_CHECK_USER_LIMIT);
    assert_non_null(strstr(F.v.v[0].message, "holds 5 seats"));
}

static void test_payment_unsettled(void **state)
{
    (void)state;
    fx_init(&F);
    F.users[1].bookings[0].pay = BR_RUSH_PAY_SUCCEEDED; /* paid, yet still held */
    F.users[1].bookings[0].card_success_sent = true;
    fx_run(&F);
    expect(&F, BR_RUSH_CHECK_PAYMENT_UNSETTLED, BR_RUSH_CHECK_PAYMENT_UNSETTLED);
    fx_init(&F);
    F.users[1].bookings[0].pay = BR_RUSH_PAY_UNKNOWN; /* no answer, and point 8 never settled it */
    fx_run(&F);
    expect(&F, BR_RUSH_CHECK_PAYMENT_UNSETTLED, BR_RUSH_CHECK_PAYMENT_UNSETTLED);
    /* An unknown confirm that ended expired (declined, then the hold lapsed) is settled. */
    fx_init(&F);
    F.users[5].bookings[0].pay = BR_RUSH_PAY_UNKNOWN;
    fx_run(&F);
    expect_ok(&F);
}

static void test_unpaid_confirmed(void **state)
{
    (void)state;
    fx_init(&F);
    F.users[0].bookings[0].card_success_sent = false; /* only a declined card went out */
    F.users[0].bookings[0].pay = BR_RUSH_PAY_DECLINED;
    fx_run(&F);
    expect(&F, BR_RUSH_CHECK_UNPAID_CONFIRMED, BR_RUSH_CHECK_UNPAID_CONFIRMED);
    assert_int_equal(F.v.v[0].booking_id, 100);
}

static void test_pass_order_fifo(void **state)
{
    (void)state;
    fx_init(&F);
    /* User 4's join was answered before user 5's was sent; their passes inverted. */
    F.users[4].places[0].pass_id = PASS(6);
    F.users[5].places[0].pass_id = PASS(5);
    fx_run(&F);
    expect(&F, BR_RUSH_CHECK_PASS_ORDER, BR_RUSH_CHECK_PASS_ORDER);
    assert_int_equal(F.v.counts[BR_RUSH_CHECK_PASS_ORDER], 1);
    assert_int_equal(F.v.v[0].user_id, 1004);
    assert_non_null(strstr(F.v.v[0].message, "user 1004 (pass 30064771078) admitted after user 1005"));
    /* The same inversion by issue time, when some token did not parse. */
    F.s.pass_seq_from_token = false;
    F.users[4].places[0].pass_issued_ms = 1000006;
    F.users[5].places[0].pass_issued_ms = 1000005;
    fx_run(&F);
    expect(&F, BR_RUSH_CHECK_PASS_ORDER, BR_RUSH_CHECK_PASS_ORDER);
}

static void test_pass_order_concurrent(void **state)
{
    (void)state;
    fx_init(&F);
    /* User 5's join was sent before user 4's answer came back: no order is
     * known between them, so either pass order is FIFO. */
    F.users[4].places[0].pass_id = PASS(6);
    F.users[5].places[0].pass_id = PASS(5);
    F.users[5].places[0].join_sent_us = F.users[4].places[0].join_recv_us - 1;
    fx_run(&F);
    expect_ok(&F);
    /* Same issue ms (one tick) is no order either. */
    fx_init(&F);
    F.s.pass_seq_from_token = false;
    F.users[4].places[0].pass_issued_ms = 1000006;
    F.users[5].places[0].pass_issued_ms = 1000006;
    fx_run(&F);
    expect_ok(&F);
}

static void test_pass_order_prequeue(void **state)
{
    (void)state;
    fx_init(&F);
    /* A prequeue place admitted after a waiting one: rule P, whatever the times. */
    F.users[2].places[0].pass_id = PASS(6);
    F.users[5].places[0].pass_id = PASS(4);
    fx_run(&F);
    expect(&F, BR_RUSH_CHECK_PASS_ORDER, BR_RUSH_CHECK_PASS_ORDER);
    assert_non_null(strstr(F.v.v[0].message, "prequeue"));
}

/* 60 prequeue places joined one after another (1770 ordered pairs). */
static void shuffle_fixture(struct fx *f, bool sorted)
{
    memset(f, 0, sizeof *f);
    f->l.users = f->users;
    f->l.event_count = 1;
    f->l.user_count = 60;
    f->l.events[0] = (struct br_rush_event){.id = EV, .owned = true, .per_user_limit = 4,
                                            .zone_count = 1, .capacity = {10}};
    uint32_t seq[60];
    for (uint32_t i = 0; i < 60; i++) {
        seq[i] = i + 1;
    }
    struct br_rng r;
    br_rng_seed(&r, 12, 34);
    for (uint32_t i = 60; !sorted && i > 1; i--) {
        uint32_t j = (uint32_t)br_rng_below(&r, i);
        uint32_t t = seq[i - 1];
        seq[i - 1] = seq[j];
        seq[j] = t;
    }
    for (uint32_t u = 0; u < 60; u++) {
        f->users[u].user_id = 2000 + u;
        f->users[u].final_queue_status = 0xff;
        place(f, u, BR_QS_PREQUEUE, 1000 * u, 1000 * u + 300, seq[u]);
    }
    f->s.stats[0] = (struct br_rush_stats){.event_id = EV, .admitted = 60, .zone_count = 1,
                                           .capacity = {10}};
    f->s.pass_seq_from_token = true;
}

static void test_shuffle(void **state)
{
    (void)state;
    shuffle_fixture(&F, false);
    fx_run(&F);
    expect_ok(&F);
    assert_true(F.v.shuffle_evaluated);
    assert_true(F.v.shuffle_agree > 0.3 && F.v.shuffle_agree < 0.7);
    shuffle_fixture(&F, true); /* UNFAIR_SHUFFLE: arrival order kept */
    fx_run(&F);
    expect(&F, BR_RUSH_CHECK_SHUFFLE, BR_RUSH_CHECK_SHUFFLE);
    assert_true(F.v.shuffle_evaluated);
    assert_true(F.v.shuffle_agree > 0.999);
    assert_non_null(strstr(F.v.v[0].message, "1770 of 1770"));
    /* By issue ms with all 60 in one tick: every pair tied, not evaluated. */
    F.s.pass_seq_from_token = false;
    for (uint32_t u = 0; u < 60; u++) {
        F.users[u].places[0].pass_issued_ms = 5000;
    }
    fx_run(&F);
    expect_ok(&F);
    assert_false(F.v.shuffle_evaluated);
    /* 20 places (190 pairs) sorted: below 200 pairs, not evaluated. */
    shuffle_fixture(&F, true);
    F.l.user_count = 20;
    fx_run(&F);
    expect_ok(&F);
    assert_false(F.v.shuffle_evaluated);
}

static void test_pass_reused(void **state)
{
    (void)state;
    fx_init(&F);
    /* Two tabs of user 1 both got 201 on the one pass. */
    book(&F, 1, 113, 1, 1, BR_HOLD_HELD);
    F.s.stats[0].held[0] = 1;
    F.s.stats[0].bookings[0] = 2;
    fx_run(&F);
    expect(&F, BR_RUSH_CHECK_PASS_REUSED, BR_RUSH_CHECK_PASS_REUSED);
    assert_int_equal(F.v.counts[BR_RUSH_CHECK_PASS_REUSED], 2); /* the pair, and 2 bookings > 1 pass */
    /* A rejoin while the pass was live: the server kept the place, the crowd
     * recorded the same pass under a second place; a booking on each. */
    fx_init(&F);
    struct br_rush_place *again = place(&F, 1, BR_QS_ADMITTED, 300000, 300500, 0);
    *again = F.users[1].places[0];
    again->join_status = BR_QS_ADMITTED;
    book(&F, 1, 117, 1, 1, BR_HOLD_HELD);
    F.s.stats[0].held[0] = 1;
    F.s.stats[0].bookings[0] = 2;
    fx_run(&F);
    expect(&F, BR_RUSH_CHECK_PASS_REUSED, BR_RUSH_CHECK_PASS_REUSED);
    assert_int_equal(F.v.counts[BR_RUSH_CHECK_PASS_REUSED], 2);
    assert_int_equal(F.v.passes_received, 8); /* the pass seen twice counts once */
    /* (b) alone: a booking in the list the crowd never got a 201 for. */
    fx_init(&F);
    F.rows[1][F.nrows[1]++] = (struct br_rush_final_booking){114, EV, 0, 2, BR_HOLD_EXPIRED, 1};
    F.s.stats[0].bookings[2] = 2;
    fx_run(&F);
    expect(&F, BR_RUSH_CHECK_PASS_REUSED, BR_RUSH_CHECK_PASS_REUSED);
    assert_non_null(strstr(F.v.v[0].message, "2 bookings on event 7 with 1 passes"));
}

static void test_pass_undelivered(void **state)
{
    (void)state;
    fx_init(&F);
    F.users[7].places[0].pass_id = 0; /* admitted (stats count it), nothing came down the stream */
    F.users[7].places[0].pass_via = 0;
    F.users[7].final_queue_status = BR_QS_ADMITTED;
    fx_run(&F);
    expect(&F, BR_RUSH_CHECK_PASS_UNDELIVERED, BR_RUSH_CHECK_PASS_UNDELIVERED);
    assert_int_equal(F.v.v[0].user_id, 1007);
    assert_int_equal(F.v.admissions_listening, 8);
    assert_int_equal(F.v.passes_received, 7);
    /* Expired or used show a pass too. */
    F.users[7].final_queue_status = BR_QS_EXPIRED;
    fx_run(&F);
    expect(&F, BR_RUSH_CHECK_PASS_UNDELIVERED, BR_RUSH_CHECK_PASS_UNDELIVERED);
    /* Still waiting at the end: nothing was due. */
    F.users[7].final_queue_status = BR_QS_WAITING;
    fx_run(&F);
    expect_ok(&F);
    /* Admitted in the last 2 s of the crowd phase: excused and counted. */
    F.users[7].final_queue_status = BR_QS_ADMITTED;
    F.s.crowd_end_wall_ms = 50000;
    int64_t issued[USERS_MAX] = {0};
    issued[7] = 49000;
    F.s.final_pass_issued_ms = issued;
    fx_run(&F);
    expect_ok(&F);
    assert_int_equal(F.v.excused_admitted, 1);
    assert_int_equal(F.v.admissions_listening, 7);
    issued[7] = 47000; /* well before the stop: flagged */
    fx_run(&F);
    expect(&F, BR_RUSH_CHECK_PASS_UNDELIVERED, BR_RUSH_CHECK_PASS_UNDELIVERED);
    /* No crowd end given: the last pass received stands for it (the read is later). */
    F.s.crowd_end_wall_ms = 0;
    F.s.read_wall_ms = 90000;
    F.users[0].places[0].pass_recv_wall_ms = 50000;
    issued[7] = 49000;
    fx_run(&F);
    expect_ok(&F);
    issued[7] = 47000;
    fx_run(&F);
    expect(&F, BR_RUSH_CHECK_PASS_UNDELIVERED, BR_RUSH_CHECK_PASS_UNDELIVERED);
    /* ... or the last join answered, on the wall clock (the sale ended early, arrivals went on). */
    F.s.wall_minus_mono_ms = 60000; /* user 8's join answered at 200.5 ms mono = 60200 wall */
    issued[7] = 59000;
    fx_run(&F);
    expect_ok(&F);
    issued[7] = 50000;
    fx_run(&F);
    expect(&F, BR_RUSH_CHECK_PASS_UNDELIVERED, BR_RUSH_CHECK_PASS_UNDELIVERED);
    F.s.wall_minus_mono_ms = 0;
    /* Expired by a read a pass TTL (20 s) after the grace began: maybe issued in the grace,
     * excused. The positions read at the crowd's end instead: issued before it, flagged. */
    F.users[7].final_queue_status = BR_QS_EXPIRED;
    F.s.crowd_end_wall_ms = 50000;
    F.s.read_wall_ms = 68000;
    fx_run(&F);
    expect_ok(&F);
    uint8_t end_status[USERS_MAX];
    int64_t end_issued[USERS_MAX] = {0};
    memset(end_status, 0xff, sizeof end_status);
    F.s.end_status = end_status;
    F.s.end_pass_issued_ms = end_issued;
    F.s.positions_wall_ms = 50100;
    end_status[7] = BR_QS_EXPIRED;
    fx_run(&F);
    expect(&F, BR_RUSH_CHECK_PASS_UNDELIVERED, BR_RUSH_CHECK_PASS_UNDELIVERED);
    /* Admitted then: its issue time decides (47 s flagged, 49 s in the grace). */
    end_status[7] = BR_QS_ADMITTED;
    end_issued[7] = 47000;
    fx_run(&F);
    expect(&F, BR_RUSH_CHECK_PASS_UNDELIVERED, BR_RUSH_CHECK_PASS_UNDELIVERED);
    end_issued[7] = 49000;
    fx_run(&F);
    expect_ok(&F);
    /* Still waiting then: admitted after the crowd left, excused. */
    end_status[7] = BR_QS_WAITING;
    fx_run(&F);
    expect_ok(&F);
    assert_int_equal(F.v.excused_admitted, 1);
    F.s.end_status = NULL;
    F.s.end_pass_issued_ms = NULL;
    F.s.positions_wall_ms = 0;
    F.users[7].final_queue_status = BR_QS_ADMITTED;
    /* The stream budget ran out (streams_lost): a client error, not this check. */
    F.users[7].places[0].stream_kept = false;
    fx_run(&F);
    expect_ok(&F);
}

/* A place the user rejoined after: its stream ended by the server with a
 * status that shows a pass (expired) and no pass came down it. The final
 * status is the new place's, so only the place's own record can tell. */
static void test_pass_undelivered_on_an_earlier_place(void **state)
{
    (void)state;
    fx_init(&F);
    F.users[7].places[0].pass_id = 0;
    F.users[7].places[0].pass_via = 0;
    F.users[7].places[0].end_status = BR_QS_EXPIRED;
    place(&F, 7, BR_QS_WAITING, 300000, 300500, 0); /* rejoined: still waiting at the end */
    F.users[7].final_queue_status = BR_QS_WAITING;
    fx_run(&F);
    expect(&F, BR_RUSH_CHECK_PASS_UNDELIVERED, BR_RUSH_CHECK_PASS_UNDELIVERED);
    assert_int_equal(F.v.v[0].user_id, 1007);
    assert_non_null(strstr(F.v.v[0].message, "place 0 with status expired"));
    assert_int_equal(F.v.passes_received, 7);
    assert_int_equal(F.v.unattributed, 0); /* flagged, so accounted for */
    /* The rejoin was refused (no stream), the final status still the lapsed pass's: one
     * flag, and the same pass not also excused. */
    F.users[7].places[1].stream_kept = false;
    F.users[7].final_queue_status = BR_QS_EXPIRED;
    fx_run(&F);
    expect(&F, BR_RUSH_CHECK_PASS_UNDELIVERED, BR_RUSH_CHECK_PASS_UNDELIVERED);
    assert_int_equal(F.v.counts[BR_RUSH_CHECK_PASS_UNDELIVERED], 1);
    assert_int_equal(F.v.excused_admitted, 0);
    assert_int_equal(F.v.unattributed, 0);
    F.users[7].places[1].stream_kept = true;
    F.users[7].final_queue_status = BR_QS_WAITING;
    /* Ended by the server as left (its own leave): no pass was due. */
    F.users[7].places[0].end_status = BR_QS_LEFT;
    fx_run(&F);
    expect_ok(&F);
    assert_int_equal(F.v.unattributed, 1); /* stats still count 9 admissions */
    assert_int_equal(F.v.left_while_waiting, 0);
    /* The last place ended so too: one flag, not a second one from the final status. */
    F.users[7].place_count = 1;
    F.users[7].places[0].end_status = BR_QS_USED;
    F.users[7].final_queue_status = BR_QS_USED;
    fx_run(&F);
    expect(&F, BR_RUSH_CHECK_PASS_UNDELIVERED, BR_RUSH_CHECK_PASS_UNDELIVERED);
    assert_int_equal(F.v.counts[BR_RUSH_CHECK_PASS_UNDELIVERED], 1);
    /* A silent leaver's stream is not listened to. */
    F.users[7].places[0].silent_left = true;
    F.users[7].places[0].stream_kept = false;
    fx_run(&F);
    expect_ok(&F);
}

/* Patience ran out and the leave raced an admission: the server counts the
 * admission, the user ends `left`, no stream carried the pass. Not a flag
 * (nothing outside can tell it from a leave first), but counted: one
 * unattributed admission, one user who left while waiting. */
static void test_leave_racing_an_admission(void **state)
{
    (void)state;
    fx_init(&F);
    F.users[7].places[0].pass_id = 0;
    F.users[7].places[0].pass_via = 0;
    F.users[7].places[0].stream_kept = false;
    F.users[7].places[0].left_sent = true;
    F.users[7].final_queue_status = BR_QS_LEFT;
    fx_run(&F);
    expect_ok(&F);
    assert_int_equal(F.v.admissions_listening, 8);
    assert_int_equal(F.v.passes_received, 7);
    assert_int_equal(F.v.unattributed, 1);
    assert_int_equal(F.v.left_while_waiting, 1);
    /* The pass came down the stream as the user left: received, counted so. */
    F.users[7].places[0].pass_id = PASS(8);
    F.users[7].places[0].pass_via = 1;
    fx_run(&F);
    expect_ok(&F);
    assert_int_equal(F.v.passes_received, 8);
    assert_int_equal(F.v.received_leaving, 1);
    assert_int_equal(F.v.unattributed, 0);
    assert_int_equal(F.v.left_while_waiting, 0);
    F.users[7].places[0].pass_id = 0;
    F.users[7].places[0].pass_via = 0;
    /* Its final position not read (the snapshot gave up on it): counted apart. */
    F.users[7].final_queue_status = 0xff;
    fx_run(&F);
    expect_ok(&F);
    assert_int_equal(F.v.final_unread, 1);
    assert_int_equal(F.v.left_while_waiting, 0);
    assert_int_equal(F.v.unattributed, 1);
    F.users[7].final_queue_status = BR_QS_LEFT;
    /* Every admission seen: nothing unattributed. */
    F.s.stats[0].admitted = 8;
    fx_run(&F);
    assert_int_equal(F.v.unattributed, 0);
    assert_int_equal(F.v.left_while_waiting, 1);
}

static void test_silent_leaver(void **state)
{
    (void)state;
    fx_init(&F);
    F.users[8].final_queue_status = BR_QS_EXPIRED; /* the pass lapsed unseen: on purpose */
    fx_run(&F);
    expect_ok(&F);
    assert_int_equal(F.v.silent_admitted, 1);
}

static void test_idempotency(void **state)
{
    (void)state;
    fx_init(&F);
    F.users[5].dups[F.users[5].dup_count++] =
        (struct br_rush_dup){BR_RR_RESERVE, {201, 103}, {201, 115}};
    fx_run(&F);
    expect(&F, BR_RUSH_CHECK_IDEMPOTENCY, BR_RUSH_CHECK_IDEMPOTENCY);
    assert_non_null(strstr(F.v.v[0].message, "reserve sent twice with one key answered 201 (id 103)"));
    fx_init(&F);
    F.users[5].dups[F.users[5].dup_count++] =
        (struct br_rush_dup){BR_RR_RESERVE, {201, 103}, {409, 0}};
    fx_run(&F);
    expect(&F, BR_RUSH_CHECK_IDEMPOTENCY, BR_RUSH_CHECK_IDEMPOTENCY);
    /* Not flagged: an overloaded or timed-out twin, a confirm after success (409). */
    fx_init(&F);
    F.users[5].dups[F.users[5].dup_count++] =
        (struct br_rush_dup){BR_RR_RESERVE, {201, 103}, {503, 0}};
    F.users[5].dups[F.users[5].dup_count++] =
        (struct br_rush_dup){BR_RR_RESERVE, {0, 0}, {201, 103}};
    F.users[0].dups[F.users[0].dup_count++] =
        (struct br_rush_dup){BR_RR_CONFIRM, {200, 0}, {409, 0}};
    fx_run(&F);
    expect_ok(&F);
}

static void test_listing(void **state)
{
    (void)state;
    /* 40 undelivered passes, then one inverted pair: both named in the listed 32. */
    fx_init(&F);
    F.l.user_count = 50;
    for (uint32_t u = 10; u < 50; u++) {
        F.users[u].user_id = 1000 + u;
        place(&F, u, BR_QS_WAITING, 400000 + u, 400100 + u, 0);
        F.users[u].final_queue_status = BR_QS_ADMITTED;
    }
    F.s.stats[0].admitted = 49;
    fx_run(&F);
    assert_int_equal(F.v.counts[BR_RUSH_CHECK_PASS_UNDELIVERED], 40);
    /* Checked after them: an inverted pair (PASS_ORDER). */
    F.users[4].places[0].pass_id = PASS(6);
    F.users[5].places[0].pass_id = PASS(5);
    fx_run(&F);
    /* 22 undelivered (32 less a slot for each of the 10 other checks), then the pair. */
    assert_int_equal(F.v.listed, BR_RUSH_VIOLATIONS_LISTED - BR_RUSH_CHECK_COUNT + 2);
    assert_int_equal(F.v.counts[BR_RUSH_CHECK_PASS_UNDELIVERED], 40);
    bool order = false;
    for (uint32_t i = 0; i < F.v.listed; i++) {
        order |= F.v.v[i].check == BR_RUSH_CHECK_PASS_ORDER;
    }
    assert_true(order);
}

static void test_every_check_produced(void **state)
{
    (void)state;
    for (unsigned c = 0; c < BR_RUSH_CHECK_COUNT; c++) {
        if (produced[c] == 0) {
            fail_msg("no test produced %s", br_rush_check_name(c));
        }
    }
    assert_string_equal(br_rush_check_name(BR_RUSH_CHECK_PASS_UNDELIVERED), "PASS_UNDELIVERED");
    assert_string_equal(br_rush_check_name(BR_RUSH_CHECK_COUNT), "UNKNOWN");
}

/* ---- the formats the rush reads, against the server's writers ---- */

static void test_pass_token_layout(void **state)
{
    (void)state;
    static const uint8_t secret[] = "rush-verdict-test-secret";
    struct br_pass_claims c = {EV, 4242, PASS(17), 1796326200123};
    char token[BR_PASS_TOKEN_MAX];
    assert_int_equal(br_pass_token_sign(secret, sizeof secret - 1, &c, token, sizeof token), BR_OK);
    assert_true(strlen(token) < BR_RUSH_PASS_MAX);
    uint64_t ev = 0, user = 0, pass = 0;
    int64_t exp = 0;
    assert_int_equal(br_rush_pass_token_parse(token, &ev, &user, &pass, &exp), BR_OK);
    assert_int_equal(ev, EV);
    assert_int_equal(user, 4242);
    assert_int_equal(pass, PASS(17));
    assert_int_equal(exp, 1796326200123);
    assert_int_equal(pass & 0xffffffffu, 17); /* the per-event sequence PASS_ORDER orders by */
    char bad[BR_PASS_TOKEN_MAX];
    memcpy(bad, token, sizeof bad);
    bad[0] = 'q';
    assert_int_equal(br_rush_pass_token_parse(bad, &ev, &user, &pass, &exp), BR_E_INVALID);
    memcpy(bad, token, sizeof bad);
    bad[strlen(bad) - 1] = '\0'; /* a short hmac */
    assert_int_equal(br_rush_pass_token_parse(bad, &ev, &user, &pass, &exp), BR_E_INVALID);
    assert_int_equal(br_rush_pass_token_parse("p1.7.1.x.5.00", &ev, &user, &pass, &exp),
                     BR_E_INVALID);
}

static void test_time_format(void **state)
{
    (void)state;
    static const int64_t samples[] = {0, 1796326200123, 951782400999, 4102444799001};
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
        char text[BR_TIME_TEXT_MAX];
        br_time_format(samples[i], text);
        int64_t back = -1;
        assert_int_equal(br_rush_time_parse(text, &back), BR_OK);
        assert_int_equal(back, samples[i]);
    }
    int64_t ms = 0;
    assert_int_equal(br_rush_time_parse("2026-12-03T19:30:00Z", &ms), BR_E_INVALID);
    assert_int_equal(br_rush_time_parse("2026-13-03T19:30:00.000Z", &ms), BR_E_INVALID);
}

static void test_stats_json(void **state)
{
    (void)state;
    struct br_api_stats a = {.event_id = 9, .queue_length = 31, .admitted = 40,
                             .active_passes = 12, .zone_count = 2, .capacity = {60, 50},
                             .held = {3, 4}, .sold = {57, 10}};
    a.bookings[BR_HOLD_HELD] = 5;
    a.bookings[BR_HOLD_CONFIRMED] = 6;
    a.bookings[BR_HOLD_EXPIRED] = 7;
    a.bookings[BR_HOLD_CANCELLED] = 8;
    a.bookings[BR_HOLD_REFUNDED] = 9;
    size_t len = 0;
    char *text = br_render_dump(br_render_stats(&a), &len);
    assert_non_null(text);
    struct br_rush_stats s;
    assert_int_equal(br_rush_stats_parse(text, len, &s), BR_OK);
    free(text);
    assert_int_equal(s.event_id, 9);
    assert_int_equal(s.queue_length, 31);
    assert_int_equal(s.admitted, 40);
    assert_int_equal(s.active_passes, 12);
    assert_int_equal(s.zone_count, 2);
    assert_int_equal(s.capacity[1], 50);
    assert_int_equal(s.held[0], 3);
    assert_int_equal(s.sold[0], 57);
    assert_int_equal(s.sold[1], 10);
    static const uint32_t want[5] = {5, 6, 7, 8, 9};
    assert_memory_equal(s.bookings, want, sizeof want);
    static const char *const broken[] = {
        "", "[]", "{\"event_id\":1}",
        "{\"event_id\":1,\"queue_length\":0,\"admitted\":0,\"active_passes\":0,\"zones\":[{\"id\":0,"
        "\"capacity\":1,\"held\":0,\"sold\":0}],\"bookings\":{\"held\":0,\"confirmed\":0,\"expired\""
        ":0,\"cancelled\":0,\"refunded\":0}}",
        "{\"event_id\":1,\"queue_length\":0,\"admitted\":-1,\"active_passes\":0,\"zones\":[],"
        "\"bookings\":{\"held\":0,\"confirmed\":0,\"expired\":0,\"cancelled\":0,\"refunded\":0}}",
    };
    for (size_t i = 0; i < sizeof broken / sizeof broken[0]; i++) {
        assert_int_equal(br_rush_stats_parse(broken[i], strlen(broken[i]), &s), BR_E_INVALID);
    }
}


/* ---- br_rush_snapshot_read over a fake net (this file's br_rush_net_*: the
 * real loop is not linked in, it is exercised by scripts/test.d/78-rush.sh) ---- */

struct fake_call {
    struct br_rush_req q;
    char path[64], token[32];
    br_rush_resp_fn fn;
    void *ctx;
};

static struct {
    struct fake_call calls[64];
    uint32_t n, stats_reads, bookings_reads, position_reads, fail_first_bookings;
    int64_t now_us;
} NET;

int br_rush_net_send(struct br_rush_net *n, const struct br_rush_req *q, br_rush_resp_fn fn,
                     void *ctx)
{
    (void)n;
    assert_true(NET.n < 64);
    struct fake_call *c = &NET.calls[NET.n++];
    c->q = *q;
    snprintf(c->path, sizeof c->path, "%s", q->path);
    snprintf(c->token, sizeof c->token, "%s", q->token != NULL ? q->token : "");
    c->fn = fn;
    c->ctx = ctx;
    return BR_OK;
}

static void fake_answer(struct fake_call *c)
{
    char body[1024];
    struct br_rush_resp r = {.status = 200, .route = c->q.route};
    if (strstr(c->path, "/stats") != NULL) {
        assert_string_equal(c->token, "admin-token");
        /* Moves between the first take's two reads, then holds still. */
        unsigned held = NET.stats_reads++ == 0 ? 2 : 1;
        snprintf(body, sizeof body,
                 "{\"event_id\":7,\"queue_length\":0,\"admitted\":3,\"active_passes\":1,"
                 "\"zones\":[{\"id\":1,\"capacity\":10,\"available\":7,\"held\":%u,"
                 "\"sold\":2}],\"bookings\":{\"held\":1,\"confirmed\":1,\"expired\":0,"
                 "\"cancelled\":0,\"refunded\":0}}", held);
    } else if (strcmp(c->path, "/api/v1/bookings") == 0) {
        NET.bookings_reads++;
        if (NET.fail_first_bookings > 0) {
            NET.fail_first_bookings--;
            r.status = 503;
            r.retry_after_s = 0;
            snprintf(body, sizeof body, "{}");
        } else if (strcmp(c->token, "t0") == 0) {
            snprintf(body, sizeof body,
                     "{\"bookings\":[{\"id\":100,\"event_id\":7,\"zone_id\":1,\"quantity\":2,"
                     "\"status\":\"confirmed\",\"total_minor\":1,\"currency\":\"EUR\","
                     "\"created_at\":\"2026-12-03T19:30:00.000Z\",\"expires_at\":"
                     "\"2026-12-03T19:31:00.000Z\",\"payment_id\":55},{\"id\":900,\"event_id\":"
                     "99,\"zone_id\":1,\"quantity\":1,\"status\":\"held\"}]}");
        } else if (strcmp(c->token, "t1") == 0) {
            snprintf(body, sizeof body,
                     "{\"bookings\":[{\"id\":101,\"event_id\":7,\"zone_id\":1,\"quantity\":1,"
                     "\"status\":\"held\"}]}");
        } else {
            snprintf(body, sizeof body, "{\"bookings\":[]}");
        }
    } else {
        NET.position_reads++;
        assert_string_equal(c->token, "t2");
        snprintf(body, sizeof body,
                 "{\"event_id\":7,\"status\":\"admitted\",\"position\":0,\"queue_length\":0,"
                 "\"estimated_wait_s\":0,\"pass\":{\"token\":\"p1.7.1002.30064771075.1796326220123."
                 "00\",\"expires_at\":\"2026-12-03T19:30:20.123Z\"}}");
    }
    r.body = body;
    r.body_len = strlen(body);
    c->fn(c->ctx, &r);
}

int br_rush_net_run(struct br_rush_net *n, int64_t until_us, bool (*done)(void *), void *ctx)
{
    (void)n;
    while (!done(ctx) && NET.n > 0) {
        struct fake_call c = NET.calls[0];
        memmove(&NET.calls[0], &NET.calls[1], (NET.n - 1) * sizeof NET.calls[0]);
        NET.n--;
        fake_answer(&c);
    }
    if (NET.n == 0 && !done(ctx)) {
        NET.now_us = until_us; /* a sleep */
    }
    return BR_OK;
}

int64_t br_rush_now_us(void)
{
    return NET.now_us;
}

int64_t br_rush_wall_ms(void)
{
    return 1796326230000;
}

static void test_snapshot_read(void **state)
{
    (void)state;
    memset(&NET, 0, sizeof NET);
    NET.fail_first_bookings = 1; /* one 503: sent again in the next round */
    struct br_rush_user users[4];
    memset(users, 0, sizeof users);
    struct br_rush_ledger l = {.event_count = 1, .user_count = 4, .crowd_count = 3, .users = users};
    l.events[0] = (struct br_rush_event){.id = EV, .owned = true, .zone_count = 1,
                                         .pass_ttl_ms = 20000, .capacity = {10}};
    for (uint32_t u = 0; u < 4; u++) {
        snprintf(users[u].token, sizeof users[u].token, "t%u", u);
        users[u].user_id = 1000 + u;
    }
    users[3].storm = true;
    users[2].place_count = 1; /* a place and no pass: its position is read */
    users[0].place_count = 1;
    users[0].places[0].pass_id = PASS(1);
    users[0].places[0].pass_via = 1;
    users[1].place_count = 1; /* a pass whose token did not parse (the crowd's UINT64_MAX) */
    users[1].places[0].pass_id = UINT64_MAX;
    users[1].places[0].pass_via = 1;
    struct br_rush_snapshot s;
    memset(&s, 0, sizeof s);
    s.crowd_end_wall_ms = 123;
    assert_int_equal(br_rush_snapshot_read((struct br_rush_net *)&NET, "admin-token", &l, &s, 1000000000), BR_OK);
    assert_false(s.unstable);
    assert_false(s.pass_seq_from_token); /* user 1's pass: order by issue ms */
    assert_int_equal(NET.stats_reads, 4); /* moved once, then a stable retake */
    assert_int_equal(NET.position_reads, 2);
    assert_int_equal(NET.bookings_reads, 7); /* 3 users x 2 takes, one 503 again */
    assert_int_equal(s.stats[0].held[0], 1);
    assert_int_equal(s.row_start[0], 0);
    assert_int_equal(s.row_start[1], 1); /* event 99's booking left out */
    assert_int_equal(s.row_start[2], 2);
    assert_int_equal(s.row_start[4], 2);
    assert_int_equal(s.rows[0].id, 100);
    assert_int_equal(s.rows[0].status, BR_HOLD_CONFIRMED);
    assert_int_equal(s.rows[0].payment_id, 55);
    assert_int_equal(s.rows[0].quantity, 2);
    assert_int_equal(s.rows[1].status, BR_HOLD_HELD);
    assert_int_equal(users[2].final_queue_status, BR_QS_ADMITTED);
    assert_int_equal(users[0].final_queue_status, 0xff);
    assert_int_equal(s.final_pass_issued_ms[2], 1796326200123);
    assert_int_equal(s.read_wall_ms, 1796326230000);
    assert_int_equal(s.crowd_end_wall_ms, 123);
    br_rush_snapshot_free(&s);
    assert_null(s.rows);
    /* The positions read at the crowd's end, kept apart from the final ones. */
    memset(&NET, 0, sizeof NET);
    memset(&s, 0, sizeof s);
    users[2].final_queue_status = 0xff;
    assert_int_equal(br_rush_positions_read((struct br_rush_net *)&NET, &l, &s, 1000000000), BR_OK);
    assert_int_equal(NET.position_reads, 1); /* user 2 only: no pass at its last place */
    assert_int_equal(NET.bookings_reads, 0);
    assert_int_equal(NET.stats_reads, 0);
    assert_int_equal(s.end_status[2], BR_QS_ADMITTED);
    assert_int_equal(s.end_status[0], 0xff);
    assert_int_equal(s.end_pass_issued_ms[2], 1796326200123);
    assert_int_equal(s.positions_wall_ms, 1796326230000);
    assert_int_equal(br_rush_snapshot_read((struct br_rush_net *)&NET, "admin-token", &l, &s, 1000000000), BR_OK);
    assert_int_equal(NET.position_reads, 3);
    assert_int_equal(users[2].final_queue_status, BR_QS_ADMITTED);
    assert_int_equal(s.end_status[2], BR_QS_ADMITTED);
    br_rush_snapshot_free(&s);
    assert_null(s.end_status);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_passing),
        cmocka_unit_test(test_oversell_stats),
        cmocka_unit_test(test_oversell_bookings),
        cmocka_unit_test(test_stats_mismatch),
        cmocka_unit_test(test_booking_lost),
        cmocka_unit_test(test_user_limit),
        cmocka_unit_test(test_payment_unsettled),
        cmocka_unit_test(test_unpaid_confirmed),
        cmocka_unit_test(test_pass_order_fifo),
        cmocka_unit_test(test_pass_order_concurrent),
        cmocka_unit_test(test_pass_order_prequeue),
        cmocka_unit_test(test_shuffle),
        cmocka_unit_test(test_pass_reused),
        cmocka_unit_test(test_pass_undelivered),
        cmocka_unit_test(test_pass_undelivered_on_an_earlier_place),
        cmocka_unit_test(test_leave_racing_an_admission),
        cmocka_unit_test(test_silent_leaver),
        cmocka_unit_test(test_idempotency),
        cmocka_unit_test(test_listing),
        cmocka_unit_test(test_every_check_produced),
        cmocka_unit_test(test_pass_token_layout),
        cmocka_unit_test(test_time_format),
        cmocka_unit_test(test_stats_json),
        cmocka_unit_test(test_snapshot_read),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
