/*
 * test_pg_project.c -- the projection's meaning (adapters/pg_project.h)
 * without a server: which row changes each command's outcome and effects
 * ask for, taken from the core's own answers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "adapters/pg_project.h"
#include "core/engine.h"
#include "core/err.h"
#include "tests/core/support.h"

#define OPS_MAX 64

struct got {
    struct br_outcome o;
    struct br_pg_op ops[OPS_MAX];
    uint32_t n;
};

/* Applies c to the engine (expecting want) and derives its row changes. */
static void run(struct br_engine *e, const struct br_cmd *c, int want, struct got *g)
{
    apply_expect(e, c, want, &g->o);
    uint32_t nfx = 0;
    const struct br_effect *fx = br_engine_effects(e, &nfx);
    assert_int_equal(br_pg_rows_of(c, &g->o, fx, nfx, g->ops, OPS_MAX, &g->n), BR_OK);
}

static struct br_engine *one_event(void)
{
    struct br_engine *e = t_engine_new(NULL);
    uint64_t ids[3];
    t_users(e, 3, ids);
    struct br_event_spec s = t_spec();
    t_event(e, 0, &s);
    return e;
}

static void test_reserve_is_a_new_booking(void **state)
{
    (void)state;
    struct br_engine *e = one_event();
    struct got g;
    struct br_cmd c = c_reserve(10, 1, 1, 1, 3, 0, 0);
    run(e, &c, BR_OK, &g);
    assert_int_equal(g.n, 1);
    assert_int_equal(g.ops[0].kind, BR_PG_OP_BOOKING_NEW);
    assert_int_equal(g.ops[0].id, g.o.id);
    assert_int_equal(g.ops[0].quantity, 3);
    assert_int_equal(g.ops[0].zone_id, 1);
    assert_int_equal(g.ops[0].user_id, 1);
    assert_int_equal(g.ops[0].event_id, 1);
    assert_int_equal(g.ops[0].amount_minor, 3 * 2500);
    assert_int_equal(g.ops[0].deadline_ms, 10 + 1000);
    /* a failed reserve changes nothing */
    c = c_reserve(11, 1, 1, 1, 30, 0, 0);
    run(e, &c, BR_E_INVALID, &g);
    assert_int_equal(g.n, 0);
    t_engine_free(e);
}

static void test_cancel_and_sweep_move_held_seats(void **state)
{
    (void)state;
    struct br_engine *e = one_event();
    uint64_t h1 = t_hold(e, 10, 1, 1, 2);
    uint64_t h2 = t_hold(e, 10, 2, 1, 1);
    struct got g;
    struct br_cmd c = c_cancel(20, 1, h1);
    run(e, &c, BR_OK, &g);
    assert_int_equal(g.n, 2); /* the move and the notify's outbox row */
    assert_int_equal(g.ops[0].kind, BR_PG_OP_BOOKING_MOVE);
    assert_int_equal(g.ops[0].from_mask, 1u << BR_HOLD_HELD);
    assert_int_equal(g.ops[0].to_state, BR_HOLD_CANCELLED);
    assert_int_equal(g.ops[0].held_per_seat, -1);
    assert_int_equal(g.ops[0].sold_per_seat, 0);
    assert_true(g.ops[0].must_match);
    assert_int_equal(g.ops[1].kind, BR_PG_OP_OUTBOX);
    c = c_sweep(5000, 1, 10);
    run(e, &c, BR_OK, &g);
    assert_int_equal(g.n, 2);
    assert_int_equal(g.ops[0].kind, BR_PG_OP_BOOKING_MOVE);
    assert_int_equal(g.ops[0].id, h2);
    assert_int_equal(g.ops[0].to_state, BR_HOLD_EXPIRED);
    assert_int_equal(g.ops[0].held_per_seat, -1);
    assert_int_equal(g.ops[1].kind, BR_PG_OP_OUTBOX);
    t_engine_free(e);
}

static void test_payment_success_confirms_and_sells(void **state)
{
    (void)state;
    struct br_engine *e = one_event();
    uint64_t h = t_hold(e, 10, 1, 1, 2);
    struct got g;
    struct br_cmd c = c_pay(20, 1, h);
    run(e, &c, BR_OK, &g);
    assert_int_equal(g.ops[0].kind, BR_PG_OP_PAYMENT_NEW);
    assert_int_equal(g.ops[0].ref, h);
    assert_int_equal(g.ops[1].kind, BR_PG_OP_OUTBOX); /* provider_charge */
    uint64_t pay = g.o.id;
    c = c_pay_event(30, 77, pay, T_SUCCEEDED);
    run(e, &c, BR_OK, &g);
    assert_int_equal(g.ops[0].kind, BR_PG_OP_PROVIDER_EVENT);
    assert_int_equal(g.ops[0].id, 77);
    assert_int_equal(g.ops[1].kind, BR_PG_OP_PAYMENT_STATE);
    assert_int_equal(g.ops[1].to_state, BR_PAY_CONFIRMED);
    assert_int_equal(g.ops[2].kind, BR_PG_OP_BOOKING_MOVE);
    assert_int_equal(g.ops[2].to_state, BR_HOLD_CONFIRMED);
    assert_int_equal(g.ops[2].held_per_seat, -1);
    assert_int_equal(g.ops[2].sold_per_seat, 1);
    assert_int_equal(g.ops[2].ref, pay);
    /* the same provider event again: DUPLICATE, nothing */
    run(e, &c, BR_E_DUPLICATE, &g);
    assert_int_equal(g.n, 0);
    t_engine_free(e);
}

static void test_late_payment_expires_and_refunds(void **state)
{
    (void)state;
    struct br_engine *e = one_event();
    uint64_t h = t_hold(e, 10, 1, 1, 1);
    uint64_t pay = t_payment(e, 20, 1, h);
    struct got g;
    struct br_cmd c = c_pay_event(5000, 78, pay, T_SUCCEEDED); /* past the deadline */
    run(e, &c, BR_OK, &g);
    uint8_t kinds[OPS_MAX];
    for (uint32_t i = 0; i < g.n; i++) {
        kinds[i] = g.ops[i].kind;
    }
    assert_int_equal(g.n, 6);
    assert_int_equal(kinds[0], BR_PG_OP_PROVIDER_EVENT);
    assert_int_equal(kinds[1], BR_PG_OP_PAYMENT_STATE);
    assert_int_equal(g.ops[1].to_state, BR_PAY_REFUND_PENDING);
    assert_int_equal(kinds[2], BR_PG_OP_BOOKING_MOVE);
    assert_int_equal(g.ops[2].to_state, BR_HOLD_EXPIRED);
    assert_int_equal(kinds[3], BR_PG_OP_OUTBOX);
    assert_int_equal(kinds[4], BR_PG_OP_REFUND_ATTEMPT);
    assert_int_equal(kinds[5], BR_PG_OP_OUTBOX);
    c = c_refund(6000, pay, T_FAILED);
    run(e, &c, BR_OK, &g);
    assert_int_equal(g.n, 2);
    assert_int_equal(g.ops[1].kind, BR_PG_OP_REFUND_RETRY);
    c = c_refund(7000, pay, T_SUCCEEDED);
    run(e, &c, BR_OK, &g);
    assert_int_equal(g.ops[0].kind, BR_PG_OP_PAYMENT_STATE);
    assert_int_equal(g.ops[0].to_state, BR_PAY_REFUNDED);
    assert_int_equal(g.ops[1].kind, BR_PG_OP_BOOKING_MOVE);
    assert_int_equal(g.ops[1].id, h);
    assert_int_equal(g.ops[1].to_state, BR_HOLD_REFUNDED);
    assert_false(g.ops[1].must_match);
    assert_int_equal(g.ops[1].held_per_seat, 0);
    assert_int_equal(g.ops[1].sold_per_seat, 0);
    t_engine_free(e);
}

static void test_queue_commands_change_nothing(void **state)
{
    (void)state;
    struct br_engine *e = one_event();
    struct got g;
    struct br_cmd c = c_join(10, 1, 1);
    run(e, &c, BR_OK, &g);
    assert_int_equal(g.n, 0);
    c = c_admit(11, 1);
    run(e, &c, BR_OK, &g);
    assert_int_equal(g.n, 0); /* pass_issued: Redis only */
    t_engine_free(e);
}

/* Point 8: payment_check changes no row, and its provider_query /
 * provider_void effects have no outbox topic (the saga asks the provider
 * itself; the answer comes back as a payment fact). */
static void test_payment_check_changes_nothing(void **state)
{
    (void)state;
    struct br_cmd c;
    memset(&c, 0, sizeof c);
    c.type = BR_CMD_PAYMENT_CHECK;
    c.now_ms = 1000;
    c.u.payment_check.max = 8;
    struct br_outcome o;
    memset(&o, 0, sizeof o);
    o.err = BR_OK;
    o.count = 2;
    struct br_effect fx[2];
    memset(fx, 0, sizeof fx);
    fx[0].kind = BR_FX_PROVIDER_QUERY;
    fx[0].id = (1ull << 32) | 1;
    fx[0].ref = (1ull << 32) | 1;
    fx[0].event_id = 1;
    fx[1] = fx[0];
    fx[1].kind = BR_FX_PROVIDER_VOID;
    struct br_pg_op ops[OPS_MAX];
    uint32_t n = 99;
    assert_int_equal(br_pg_rows_of(&c, &o, fx, 2, ops, OPS_MAX, &n), BR_OK);
    assert_int_equal(n, 0);
    assert_null(br_pg_outbox_topic(BR_FX_PROVIDER_QUERY));
    assert_null(br_pg_outbox_topic(BR_FX_PROVIDER_VOID));
}

static void test_capacity_and_malformed(void **state)
{
    (void)state;
    struct br_engine *e = one_event();
    uint64_t h = t_hold(e, 10, 1, 1, 1);
    struct br_cmd c = c_cancel(20, 1, h);
    struct br_outcome o;
    apply_expect(e, &c, BR_OK, &o);
    uint32_t nfx = 0;
    const struct br_effect *fx = br_engine_effects(e, &nfx);
    struct br_pg_op ops[2];
    uint32_t n = 9;
    assert_int_equal(br_pg_rows_of(&c, &o, fx, nfx, ops, 1, &n), BR_E_FULL);
    assert_int_equal(br_pg_rows_of(&c, &o, fx, nfx, ops, 2, &n), BR_OK);
    assert_int_equal(n, 2);
    o.id = 0;
    assert_int_equal(br_pg_rows_of(&c, &o, fx, nfx, ops, 2, &n), BR_E_INVALID);
    t_engine_free(e);
}

static void test_refund_backoff_is_the_saga_rule(void **state)
{
    (void)state;
    assert_int_equal(br_pg_refund_backoff_ms(0), 1000);
    assert_int_equal(br_pg_refund_backoff_ms(1), 1000);
    assert_int_equal(br_pg_refund_backoff_ms(2), 2000);
    assert_int_equal(br_pg_refund_backoff_ms(5), 16000);
    assert_int_equal(br_pg_refund_backoff_ms(12), 2048000);
    assert_int_equal(br_pg_refund_backoff_ms(13), 3600000);
    assert_int_equal(br_pg_refund_backoff_ms(1000), 3600000);
    assert_null(br_pg_outbox_topic(BR_FX_PASS_ISSUED));
    assert_string_equal(br_pg_outbox_topic(BR_FX_BOOKING_CONFIRMED), "booking_confirmed");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reserve_is_a_new_booking),
        cmocka_unit_test(test_cancel_and_sweep_move_held_seats),
        cmocka_unit_test(test_payment_success_confirms_and_sells),
        cmocka_unit_test(test_late_payment_expires_and_refunds),
        cmocka_unit_test(test_queue_commands_change_nothing),
        cmocka_unit_test(test_payment_check_changes_nothing),
        cmocka_unit_test(test_capacity_and_malformed),
        cmocka_unit_test(test_refund_backoff_is_the_saga_rule),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
