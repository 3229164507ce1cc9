/*
 * test_auditor.c -- the invariant auditor (sim/auditor.h): it accepts what
 * the real engine does, and it names the right invariant for each kind of
 * wrong answer a broken backend could give.
 *
 * A clean sale is driven through the real engine (memory backend) and
 * audited step by step. The broken answers are made by hand: the test
 * feeds the auditor a command with an outcome and effects that a buggy
 * backend would return, and checks which invariant fires.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/catalog.h"
#include "core/cmd.h"
#include "core/engine.h"
#include "core/err.h"
#include "sim/auditor.h"
#include "sim/backend.h"

#define T0 1767225600000LL /* now at the start of every test */
#define OPEN (T0 + 1000)

static void small_config(struct br_config *c)
{
    memset(c, 0, sizeof *c);
    c->seed = 7;
    c->events_max = 2;
    c->users_max = 16;
    c->members_max = 32;
    c->queue_slots_max = 64;
    c->queue_capacity_default = 32;
    c->passes_max = 64;
    c->active_max = 16;
    c->holds_max = 64;
    c->seats_max = 64;
    c->payments_max = 64;
    c->idem_max = 64;
    c->provider_events_max = 64;
}

/* A harness: an engine behind the memory backend and an auditor watching. */
struct h {
    struct br_config cfg;
    struct br_sim_backend b;
    struct br_auditor *a;
};

static void h_init(struct h *h)
{
    small_config(&h->cfg);
    assert_int_equal(br_sim_backend_memory_open(&h->b, &h->cfg), BR_OK);
    h->a = br_auditor_new(&h->cfg, &h->b);
    assert_non_null(h->a);
}

static void h_free(struct h *h)
{
    br_auditor_free(h->a);
    br_sim_backend_close(&h->b);
}

/* Applies through the engine and audits; returns the outcome. */
static struct br_outcome run(struct h *h, const struct br_cmd *c)
{
    struct br_outcome out;
    const struct br_effect *fx;
    uint32_t n;
    br_sim_backend_apply(&h->b, c, &out, &fx, &n);
    br_auditor_observe(h->a, c, &out, fx, n);
    return out;
}

static struct br_cmd cmd(uint8_t type, int64_t now, uint64_t user)
{
    struct br_cmd c;
    memset(&c, 0, sizeof c);
    c.type = type;
    c.now_ms = now;
    c.user_id = user;
    return c;
}

/* One event (1 zone of `seats`, limit 2, pass required, hold ttl 10 s) and
 * `users` users. */
static void h_setup(struct h *h, uint32_t seats, uint32_t users)
{
    struct br_cmd c = cmd(BR_CMD_EVENT_CREATE, T0, 0);
    struct br_event_spec *s = &c.u.event_create;
    strcpy(s->name, "Show");
    s->sale_opens_at_ms = OPEN;
    s->starts_at_ms = OPEN + 1000000;
    s->per_user_limit = 2;
    s->requires_pass = true;
    s->max_active = 4;
    s->admit_per_tick = 2;
    s->pass_ttl_ms = 5000;
    s->hold_ttl_ms = 10000;
    s->zone_count = 1;
    strcpy(s->zones[0].name, "Floor");
    s->zones[0].capacity = seats;
    s->zones[0].price_minor = 1000;
    strcpy(s->zones[0].currency, "EUR");
    assert_int_equal(run(h, &c).err, BR_OK);
    for (uint32_t u = 1; u <= users; u++) {
        c = cmd(BR_CMD_USER_REGISTER, T0, 0);
        snprintf(c.u.user_register.email, sizeof c.u.user_register.email, "u%u@t", u);
        assert_int_equal(run(h, &c).err, BR_OK);
    }
}

static struct br_outcome join(struct h *h, int64_t now, uint64_t user)
{
    struct br_cmd c = cmd(BR_CMD_QUEUE_JOIN, now, user);
    c.u.queue_join.event_id = 1;
    return run(h, &c);
}

static struct br_outcome admit(struct h *h, int64_t now)
{
    struct br_cmd c = cmd(BR_CMD_ADMIT, now, 0);
    c.u.admit.event_id = 1;
    return run(h, &c);
}

static struct br_cmd reserve_cmd(int64_t now, uint64_t user, uint32_t qty, uint64_t pass,
                                 uint64_t key)
{
    struct br_cmd c = cmd(BR_CMD_RESERVE, now, user);
    c.u.reserve.event_id = 1;
    c.u.reserve.zone_id = 1;
    c.u.reserve.quantity = qty;
    c.u.reserve.pass_id = pass;
    c.u.reserve.idem_key = key;
    return c;
}

static uint64_t pass_of(uint32_t n)
{
    return (uint64_t)1 << 32 | n;
}

/* Audits a hand-made step: command c answered with *out and fx[0..n). */
static void fake(struct h *h, const struct br_cmd *c, struct br_outcome out,
                 const struct br_effect *fx, uint32_t n)
{
    out.effect_count = n;
    br_auditor_observe(h->a, c, &out, fx, n);
}

static void assert_first(struct h *h, int inv)
{
    const struct br_violation *v = br_auditor_first(h->a);
    assert_non_null(v);
    if (v->inv != inv) {
        print_error("expected %s, got %s: %s\n", br_inv_name(inv), br_inv_name(v->inv), v->msg);
    }
    assert_int_equal(v->inv, inv);
}

/* Users 1 and 2 join before the opening, are admitted; both passes live. */
static void two_admitted(struct h *h)
{
    assert_int_equal(join(h, T0 + 10, 1).err, BR_OK);
    assert_int_equal(join(h, T0 + 20, 2).err, BR_OK);
    struct br_outcome o = admit(h, OPEN);
    assert_int_equal(o.count, 2);
}

static void test_a_clean_sale_through_the_engine_has_no_violation(void **state)
{
    (void)state;
    struct h h;
    h_init(&h);
    h_setup(&h, 3, 4);
    two_admitted(&h);
    /* whichever got pass 1 (the shuffle decides) reserves with it */
    struct br_cmd c = reserve_cmd(OPEN + 100, 1, 2, pass_of(1), 11);
    struct br_outcome o = run(&h, &c);
    if (o.err == BR_E_PASS_INVALID) {
        c = reserve_cmd(OPEN + 100, 1, 2, pass_of(2), 12);
        o = run(&h, &c);
    }
    assert_int_equal(o.err, BR_OK);
    uint64_t hold = o.id;
    run(&h, &c); /* a double click: the same answer */
    c = cmd(BR_CMD_PAYMENT_CREATE, OPEN + 200, 1);
    c.u.payment_create.hold_id = hold;
    o = run(&h, &c);
    assert_int_equal(o.err, BR_OK);
    uint64_t pay = o.id;
    c = cmd(BR_CMD_PAYMENT_EVENT, OPEN + 300, 0);
    c.u.payment_event.payment_id = pay;
    c.u.payment_event.provider_event_id = 99;
    c.u.payment_event.succeeded = true;
    assert_int_equal(run(&h, &c).err, BR_OK);
    assert_int_equal(run(&h, &c).err, BR_E_DUPLICATE); /* redelivery */
    /* user 2 reserves 2 of the 1 seat left: sold out, then 1 seat, then lets it expire */
    c = reserve_cmd(OPEN + 400, 2, 2, 0, 21);
    assert_int_equal(run(&h, &c).err, BR_E_PASS_REQUIRED);
    for (uint32_t n = 1; n <= 2; n++) {
        c = reserve_cmd(OPEN + 500, 2, 2, pass_of(n), 22 + n);
        o = run(&h, &c);
        if (o.err != BR_E_PASS_INVALID) {
            assert_int_equal(o.err, BR_E_SOLD_OUT);
            c = reserve_cmd(OPEN + 600, 2, 1, pass_of(n), 30);
            assert_int_equal(run(&h, &c).err, BR_OK);
        }
    }
    c = cmd(BR_CMD_SWEEP, OPEN + 600 + 10000, 0);
    c.u.sweep.event_id = 1;
    c.u.sweep.max = 8;
    o = run(&h, &c);
    assert_int_equal(o.count, 1);
    struct br_audit_liveness live;
    br_auditor_finish(h.a, OPEN + 20000, &live);
    if (br_auditor_violations(h.a) != 0) {
        print_error("%s\n", br_auditor_first(h.a)->msg);
    }
    assert_int_equal(br_auditor_violations(h.a), 0);
    assert_true(live.converged);
    const struct br_audit_funnel *f = br_auditor_funnel(h.a);
    assert_int_equal(f->held, 2);
    assert_int_equal(f->confirmed, 1);
    assert_int_equal(f->expired, 1);
    for (int i = 0; i < BR_INV_COUNT; i++) {
        if (i != BR_INV_S2) {
            assert_true(br_auditor_checks(h.a, i) > 0);
        }
    }
    h_free(&h);
}

/* A repair's id skip moves the engine's id counters forward; told of it,
 * the auditor takes the one jump (no violation); a jump it was not told of
 * is a hold out of sequence (S2), and so is a second jump after the first. */
static void test_an_id_skip_is_a_jump_only_when_announced(void **state)
{
    (void)state;
    for (int told = 0; told <= 1; told++) {
        struct h h;
        h_init(&h);
        h_setup(&h, 10, 2);
        two_admitted(&h);
        /* the opening shuffle decides who got pass 1 */
        uint32_t p1 = 1;
        struct br_cmd c = reserve_cmd(OPEN + 5, 1, 1, pass_of(p1), 1);
        if (run(&h, &c).err == BR_E_PASS_INVALID) {
            p1 = 2;
            c = reserve_cmd(OPEN + 5, 1, 1, pass_of(p1), 3);
            assert_int_equal(run(&h, &c).err, BR_OK);
        }
        br_catalog_skip_ids(br_sim_backend_memory_engine(&h.b), 5);
        if (told) {
            br_auditor_skip_ids(h.a);
        }
        c = reserve_cmd(OPEN + 6, 2, 1, pass_of(3 - p1), 2);
        struct br_outcome o = run(&h, &c);
        assert_int_equal(o.err, BR_OK);
        assert_true((o.id & 0xffffffffu) > 2); /* the engine did skip */
        if (told) {
            assert_null(br_auditor_first(h.a));
        } else {
            assert_first(&h, BR_INV_S2);
        }
        h_free(&h);
    }
}

static void test_a_hold_past_capacity_is_s1(void **state)
{
    (void)state;
    struct h h;
    h_init(&h);
    h_setup(&h, 1, 2);
    two_admitted(&h);
    struct br_cmd c = reserve_cmd(OPEN + 1, 1, 2, pass_of(1), 1);
    struct br_outcome o = {0};
    o.id = (uint64_t)1 << 32 | 1;
    o.deadline_ms = OPEN + 1 + 10000;
    o.amount_minor = 2000;
    o.status = BR_HOLD_HELD;
    /* (pass 1 may be user 2's after the shuffle, so S4 may fire too: the
     * auditor keeps checking after a violation, and S1 must be among them) */
    br_auditor_observe(h.a, &c, &o, NULL, 0);
    assert_true(br_auditor_violations_of(h.a, BR_INV_S1) > 0);
    h_free(&h);
}

static void test_sold_out_with_seats_left_is_s1(void **state)
{
    (void)state;
    struct h h;
    h_init(&h);
    h_setup(&h, 3, 2);
    two_admitted(&h);
    struct br_cmd c = reserve_cmd(OPEN + 1, 1, 1, pass_of(1), 1);
    struct br_outcome o = {.err = BR_E_SOLD_OUT};
    fake(&h, &c, o, NULL, 0);
    assert_first(&h, BR_INV_S1);
    h_free(&h);
}

static void test_a_hold_past_the_per_user_limit_is_s3(void **state)
{
    (void)state;
    struct h h;
    h_init(&h);
    h_setup(&h, 10, 2);
    assert_int_equal(join(&h, OPEN + 1, 1).err, BR_OK); /* after the opening: FIFO */
    assert_int_equal(admit(&h, OPEN + 2).count, 1);
    struct br_cmd c = reserve_cmd(OPEN + 3, 1, 3, pass_of(1), 1); /* limit 2 */
    struct br_outcome o = {.id = (uint64_t)1 << 32 | 1,
                           .deadline_ms = OPEN + 3 + 10000,
                           .amount_minor = 3000,
                           .status = BR_HOLD_HELD,
                           .count = 3};
    fake(&h, &c, o, NULL, 0);
    assert_first(&h, BR_INV_S3);
    h_free(&h);
}

static void test_a_hold_without_a_pass_is_s4(void **state)
{
    (void)state;
    struct h h;
    h_init(&h);
    h_setup(&h, 10, 2);
    struct br_cmd c = reserve_cmd(OPEN + 3, 1, 1, 0, 1);
    struct br_outcome o = {.id = (uint64_t)1 << 32 | 1,
                           .deadline_ms = OPEN + 3 + 10000,
                           .amount_minor = 1000,
                           .status = BR_HOLD_HELD,
                           .count = 1};
    fake(&h, &c, o, NULL, 0);
    assert_first(&h, BR_INV_S4);
    h_free(&h);
}

static void test_a_pass_out_of_queue_order_is_s4(void **state)
{
    (void)state;
    struct h h;
    h_init(&h);
    h_setup(&h, 10, 3);
    assert_int_equal(join(&h, OPEN + 1, 1).err, BR_OK);
    assert_int_equal(join(&h, OPEN + 2, 2).err, BR_OK);
    /* the admitter hands the first pass to user 2, who joined second */
    struct br_cmd c = cmd(BR_CMD_ADMIT, OPEN + 3, 0);
    c.u.admit.event_id = 1;
    struct br_effect fx = {.kind = BR_FX_PASS_ISSUED,
                           .event_id = 1,
                           .user_id = 2,
                           .id = pass_of(1),
                           .deadline_ms = OPEN + 3 + 5000};
    struct br_outcome o = {.id = 1, .count = 1, .queue_length = 1};
    fake(&h, &c, o, &fx, 1);
    assert_first(&h, BR_INV_S4);
    assert_true(br_auditor_worst_inversion(h.a) >= 1);
    h_free(&h);
}

static void test_a_provider_event_applied_twice_is_s5(void **state)
{
    (void)state;
    struct h h;
    h_init(&h);
    h_setup(&h, 10, 2);
    assert_int_equal(join(&h, OPEN + 1, 1).err, BR_OK);
    assert_int_equal(admit(&h, OPEN + 2).count, 1);
    struct br_cmd c = reserve_cmd(OPEN + 3, 1, 1, pass_of(1), 1);
    uint64_t hold = run(&h, &c).id;
    c = cmd(BR_CMD_PAYMENT_CREATE, OPEN + 4, 1);
    c.u.payment_create.hold_id = hold;
    uint64_t pay = run(&h, &c).id;
    c = cmd(BR_CMD_PAYMENT_EVENT, OPEN + 5, 0);
    c.u.payment_event.payment_id = pay;
    c.u.payment_event.provider_event_id = 77;
    c.u.payment_event.succeeded = false;
    assert_int_equal(run(&h, &c).err, BR_OK);
    assert_int_equal(br_auditor_violations(h.a), 0);
    /* the redelivery is answered OK again instead of DUPLICATE */
    struct br_outcome o = {.id = pay, .ref = hold, .status = BR_PAY_FAILED};
    fake(&h, &c, o, NULL, 0);
    assert_first(&h, BR_INV_S5);
    h_free(&h);
}

static void test_confirming_a_hold_past_its_deadline_is_s6(void **state)
{
    (void)state;
    struct h h;
    h_init(&h);
    h_setup(&h, 10, 2);
    assert_int_equal(join(&h, OPEN + 1, 1).err, BR_OK);
    assert_int_equal(admit(&h, OPEN + 2).count, 1);
    struct br_cmd c = reserve_cmd(OPEN + 3, 1, 1, pass_of(1), 1);
    uint64_t hold = run(&h, &c).id;
    c = cmd(BR_CMD_PAYMENT_CREATE, OPEN + 4, 1);
    c.u.payment_create.hold_id = hold;
    uint64_t pay = run(&h, &c).id;
    /* the success arrives after the deadline (OPEN + 3 + 10000), before any sweep */
    c = cmd(BR_CMD_PAYMENT_EVENT, OPEN + 20000, 0);
    c.u.payment_event.payment_id = pay;
    c.u.payment_event.provider_event_id = 5;
    c.u.payment_event.succeeded = true;
    struct br_effect fx = {.kind = BR_FX_BOOKING_CONFIRMED,
                           .event_id = 1,
                           .user_id = 1,
                           .id = hold,
                           .ref = pay,
                           .amount_minor = 1000};
    struct br_outcome o = {
        .id = pay, .ref = hold, .status = BR_PAY_CONFIRMED, .amount_minor = 1000};
    fake(&h, &c, o, &fx, 1);
    assert_first(&h, BR_INV_S6);
    h_free(&h);
}

static void test_a_hold_expired_twice_is_s7(void **state)
{
    (void)state;
    struct h h;
    h_init(&h);
    h_setup(&h, 10, 2);
    assert_int_equal(join(&h, OPEN + 1, 1).err, BR_OK);
    assert_int_equal(admit(&h, OPEN + 2).count, 1);
    struct br_cmd c = reserve_cmd(OPEN + 3, 1, 1, pass_of(1), 1);
    uint64_t hold = run(&h, &c).id;
    c = cmd(BR_CMD_SWEEP, OPEN + 20000, 0);
    c.u.sweep.event_id = 1;
    c.u.sweep.max = 8;
    assert_int_equal(run(&h, &c).count, 1);
    assert_int_equal(br_auditor_violations(h.a), 0);
    struct br_effect fx = {.kind = BR_FX_BOOKING_EXPIRED, .event_id = 1, .user_id = 1, .id = hold};
    struct br_outcome o = {.id = 1, .count = 1};
    fake(&h, &c, o, &fx, 1);
    assert_first(&h, BR_INV_S7);
    h_free(&h);
}

static void test_a_confirmed_hold_that_expires_is_s2(void **state)
{
    (void)state;
    struct h h;
    h_init(&h);
    h_setup(&h, 10, 2);
    assert_int_equal(join(&h, OPEN + 1, 1).err, BR_OK);
    assert_int_equal(admit(&h, OPEN + 2).count, 1);
    struct br_cmd c = reserve_cmd(OPEN + 3, 1, 1, pass_of(1), 1);
    uint64_t hold = run(&h, &c).id;
    c = cmd(BR_CMD_PAYMENT_CREATE, OPEN + 4, 1);
    c.u.payment_create.hold_id = hold;
    uint64_t pay = run(&h, &c).id;
    c = cmd(BR_CMD_PAYMENT_EVENT, OPEN + 5, 0);
    c.u.payment_event.payment_id = pay;
    c.u.payment_event.provider_event_id = 5;
    c.u.payment_event.succeeded = true;
    run(&h, &c);
    c = cmd(BR_CMD_SWEEP, OPEN + 20000, 0);
    c.u.sweep.event_id = 1;
    c.u.sweep.max = 8;
    struct br_effect fx = {.kind = BR_FX_BOOKING_EXPIRED, .event_id = 1, .user_id = 1, .id = hold};
    struct br_outcome o = {.id = 1, .count = 1};
    fake(&h, &c, o, &fx, 1);
    assert_first(&h, BR_INV_S2);
    h_free(&h);
}

static void test_a_payment_of_the_wrong_amount_is_s8(void **state)
{
    (void)state;
    struct h h;
    h_init(&h);
    h_setup(&h, 10, 2);
    assert_int_equal(join(&h, OPEN + 1, 1).err, BR_OK);
    assert_int_equal(admit(&h, OPEN + 2).count, 1);
    struct br_cmd c = reserve_cmd(OPEN + 3, 1, 2, pass_of(1), 1);
    uint64_t hold = run(&h, &c).id;
    c = cmd(BR_CMD_PAYMENT_CREATE, OPEN + 4, 1);
    c.u.payment_create.hold_id = hold;
    struct br_effect fx = {.kind = BR_FX_PROVIDER_CHARGE,
                           .event_id = 1,
                           .user_id = 1,
                           .id = pass_of(1),
                           .ref = hold,
                           .amount_minor = 1000};
    struct br_outcome o = {.id = pass_of(1),
                           .ref = hold,
                           .status = BR_PAY_PENDING,
                           .amount_minor = 1000}; /* two seats cost 2000 */
    fake(&h, &c, o, &fx, 1);
    assert_first(&h, BR_INV_S8);
    h_free(&h);
}

static void test_another_answer_for_the_same_key_is_s9(void **state)
{
    (void)state;
    struct h h;
    h_init(&h);
    h_setup(&h, 10, 2);
    struct br_cmd c = reserve_cmd(OPEN + 3, 1, 1, 0, 42);
    assert_int_equal(run(&h, &c).err, BR_E_PASS_REQUIRED);
    struct br_outcome o = {.err = BR_E_SOLD_OUT};
    fake(&h, &c, o, NULL, 0); /* same key, same request, another answer */
    assert_first(&h, BR_INV_S9);
    h_free(&h);
}

static void test_a_reused_key_must_conflict_s9(void **state)
{
    (void)state;
    struct h h;
    h_init(&h);
    h_setup(&h, 10, 2);
    struct br_cmd c = reserve_cmd(OPEN + 3, 1, 1, 0, 42);
    assert_int_equal(run(&h, &c).err, BR_E_PASS_REQUIRED);
    c = reserve_cmd(OPEN + 4, 1, 2, 0, 42); /* other arguments */
    assert_int_equal(run(&h, &c).err, BR_E_IDEMPOTENCY_CONFLICT);
    assert_int_equal(br_auditor_violations(h.a), 0);
    struct br_outcome o = {.err = BR_E_PASS_REQUIRED};
    fake(&h, &c, o, NULL, 0);
    assert_first(&h, BR_INV_S9);
    h_free(&h);
}

static void test_a_sweep_that_leaves_an_expired_hold_is_l1(void **state)
{
    (void)state;
    struct h h;
    h_init(&h);
    h_setup(&h, 10, 2);
    assert_int_equal(join(&h, OPEN + 1, 1).err, BR_OK);
    assert_int_equal(admit(&h, OPEN + 2).count, 1);
    struct br_cmd c = reserve_cmd(OPEN + 3, 1, 1, pass_of(1), 1);
    assert_int_equal(run(&h, &c).err, BR_OK);
    c = cmd(BR_CMD_SWEEP, OPEN + 20000, 0);
    c.u.sweep.event_id = 1;
    c.u.sweep.max = 8;
    struct br_outcome o = {.id = 1, .count = 0};
    fake(&h, &c, o, NULL, 0);
    assert_first(&h, BR_INV_L1);
    h_free(&h);
}

static void test_the_end_with_a_waiting_user_is_l1(void **state)
{
    (void)state;
    struct h h;
    h_init(&h);
    h_setup(&h, 10, 2);
    assert_int_equal(join(&h, OPEN + 1, 1).err, BR_OK);
    struct br_audit_liveness live;
    br_auditor_finish(h.a, OPEN + 10, &live);
    assert_int_equal(live.waiting, 1);
    assert_false(live.converged);
    assert_first(&h, BR_INV_L1);
    h_free(&h);
}

static void test_a_backend_whose_counters_drift_is_caught(void **state)
{
    (void)state;
    /* The model's seat counters are compared with the backend's after each
     * step: a cancel the backend applied but reported as refused leaves
     * them apart. */
    struct h h;
    h_init(&h);
    h_setup(&h, 10, 2);
    assert_int_equal(join(&h, OPEN + 1, 1).err, BR_OK);
    assert_int_equal(admit(&h, OPEN + 2).count, 1);
    struct br_cmd c = reserve_cmd(OPEN + 3, 1, 1, pass_of(1), 1);
    uint64_t hold = run(&h, &c).id;
    c = cmd(BR_CMD_CANCEL, OPEN + 4, 1);
    c.u.cancel.hold_id = hold;
    struct br_outcome out;
    const struct br_effect *fx;
    uint32_t n;
    br_sim_backend_apply(&h.b, &c, &out, &fx, &n);
    assert_int_equal(out.err, BR_OK);
    /* a reserve of the next user touches the zone: the counters now differ */
    assert_int_equal(join(&h, OPEN + 5, 2).err, BR_OK);
    assert_int_equal(admit(&h, OPEN + 6).count, 1);
    c = reserve_cmd(OPEN + 7, 2, 1, pass_of(2), 2);
    run(&h, &c);
    assert_first(&h, BR_INV_S1);
    h_free(&h);
}

/* ---- one payment per booking (S5) ---- */

/* User 1 holds 1 seat of event 1 and has paid: returns the hold; *pay set. */
static uint64_t held_and_paying(struct h *h, uint64_t *pay)
{
    h_setup(h, 10, 2);
    assert_int_equal(join(h, OPEN + 1, 1).err, BR_OK);
    assert_int_equal(admit(h, OPEN + 2).count, 1);
    struct br_cmd c = reserve_cmd(OPEN + 3, 1, 1, pass_of(1), 1);
    uint64_t hold = run(h, &c).id;
    c = cmd(BR_CMD_PAYMENT_CREATE, OPEN + 4, 1);
    c.u.payment_create.hold_id = hold;
    *pay = run(h, &c).id;
    return hold;
}

static struct br_cmd pay_event_cmd(int64_t now, uint64_t pay, uint64_t pev, bool ok)
{
    struct br_cmd c = cmd(BR_CMD_PAYMENT_EVENT, now, 0);
    c.u.payment_event.payment_id = pay;
    c.u.payment_event.provider_event_id = pev;
    c.u.payment_event.succeeded = ok;
    return c;
}

static void test_reconfirming_after_a_decline_is_clean(void **state)
{
    (void)state;
    struct h h;
    h_init(&h);
    uint64_t pay = 0;
    uint64_t hold = held_and_paying(&h, &pay);
    struct br_cmd c = pay_event_cmd(OPEN + 5, pay, 1, false);
    assert_int_equal(run(&h, &c).status, BR_PAY_FAILED);
    c = cmd(BR_CMD_PAYMENT_CREATE, OPEN + 6, 1);
    c.u.payment_create.hold_id = hold;
    struct br_outcome o = run(&h, &c);
    assert_int_equal(o.id, pay); /* the same payment, open again */
    assert_int_equal(o.status, BR_PAY_PENDING);
    c = pay_event_cmd(OPEN + 7, pay, 2, true);
    assert_int_equal(run(&h, &c).status, BR_PAY_CONFIRMED);
    c = pay_event_cmd(OPEN + 8, pay, 3, true); /* the other attempt's success: counts once */
    assert_int_equal(run(&h, &c).err, BR_OK);
    if (br_auditor_violations(h.a) != 0) {
        print_error("%s\n", br_auditor_first(h.a)->msg);
    }
    assert_int_equal(br_auditor_violations(h.a), 0);
    assert_true(br_auditor_checks(h.a, BR_INV_S5) > 0);
    h_free(&h);
}

static void test_a_second_payment_for_a_declined_booking_is_s5(void **state)
{
    (void)state;
    /* The rule that charged bookings twice: after a decline, paying again
     * opened a second payment (a second intent) for the same booking. */
    struct h h;
    h_init(&h);
    uint64_t pay = 0;
    uint64_t hold = held_and_paying(&h, &pay);
    struct br_cmd c = pay_event_cmd(OPEN + 5, pay, 1, false);
    run(&h, &c);
    assert_int_equal(br_auditor_violations(h.a), 0);
    c = cmd(BR_CMD_PAYMENT_CREATE, OPEN + 6, 1);
    c.u.payment_create.hold_id = hold;
    struct br_outcome o = {.id = pay + 1, .ref = hold, .status = BR_PAY_PENDING,
                           .amount_minor = 1000};
    struct br_effect fx = {.kind = BR_FX_PROVIDER_CHARGE, .event_id = 1, .user_id = 1,
                           .id = pay + 1, .ref = hold, .amount_minor = 1000};
    fake(&h, &c, o, &fx, 1);
    assert_first(&h, BR_INV_S5);
    h_free(&h);
}

static void test_a_booking_charged_twice_is_s5(void **state)
{
    (void)state;
    /* Two payments of one booking both succeed: even refunded at once, the
     * second charge breaks "at most one successful charge per booking". */
    struct h h;
    h_init(&h);
    uint64_t pay = 0;
    uint64_t hold = held_and_paying(&h, &pay);
    struct br_cmd c = pay_event_cmd(OPEN + 5, pay, 1, false);
    run(&h, &c);
    c = cmd(BR_CMD_PAYMENT_CREATE, OPEN + 6, 1);
    c.u.payment_create.hold_id = hold;
    struct br_outcome o = {.id = pay + 1, .ref = hold, .status = BR_PAY_PENDING,
                           .amount_minor = 1000};
    struct br_effect fx = {.kind = BR_FX_PROVIDER_CHARGE, .event_id = 1, .user_id = 1,
                           .id = pay + 1, .ref = hold, .amount_minor = 1000};
    fake(&h, &c, o, &fx, 1); /* the second payment: one S5 */
    assert_int_equal(br_auditor_violations_of(h.a, BR_INV_S5), 1);
    c = pay_event_cmd(OPEN + 7, pay, 2, true);
    assert_int_equal(run(&h, &c).status, BR_PAY_CONFIRMED); /* the first charge: fine */
    assert_int_equal(br_auditor_violations_of(h.a, BR_INV_S5), 1);
    c = pay_event_cmd(OPEN + 8, pay + 1, 3, true);
    o = (struct br_outcome){.id = pay + 1, .ref = hold, .status = BR_PAY_REFUND_PENDING,
                            .amount_minor = 1000};
    fx = (struct br_effect){.kind = BR_FX_PROVIDER_REFUND, .event_id = 1, .user_id = 1,
                            .id = pay + 1, .ref = hold, .amount_minor = 1000};
    fake(&h, &c, o, &fx, 1); /* the second charge, refunded at once: still S5 */
    assert_int_equal(br_auditor_violations_of(h.a, BR_INV_S5), 2);
    assert_int_equal(br_auditor_violations_of(h.a, BR_INV_S6), 0);
    h_free(&h);
}

/* ---- the auditor covers every event ---- */

#define MANY_EVENTS 70u

/* MANY_EVENTS events of 1 zone (10 seats, no pass, open at T0, hold ttl
 * 10 s) and user 1 holding 1 seat in each, all observed. */
static void h_many(struct h *h)
{
    small_config(&h->cfg);
    h->cfg.events_max = MANY_EVENTS;
    h->cfg.queue_capacity_default = 2;
    h->cfg.queue_slots_max = 2 * MANY_EVENTS;
    h->cfg.active_max = MANY_EVENTS;
    h->cfg.members_max = 2 * MANY_EVENTS;
    h->cfg.seats_max = 10 * MANY_EVENTS;
    h->cfg.holds_max = h->cfg.idem_max = h->cfg.payments_max = 2 * MANY_EVENTS;
    assert_int_equal(br_sim_backend_memory_open(&h->b, &h->cfg), BR_OK);
    h->a = br_auditor_new(&h->cfg, &h->b);
    assert_non_null(h->a);
    struct br_cmd c = cmd(BR_CMD_USER_REGISTER, T0, 0);
    strcpy(c.u.user_register.email, "u1@t");
    assert_int_equal(run(h, &c).err, BR_OK);
    for (uint32_t e = 1; e <= MANY_EVENTS; e++) {
        c = cmd(BR_CMD_EVENT_CREATE, T0, 0);
        struct br_event_spec *s = &c.u.event_create;
        snprintf(s->name, sizeof s->name, "Show %u", e);
        s->sale_opens_at_ms = T0;
        s->starts_at_ms = T0 + 1000000;
        s->per_user_limit = 2;
        s->max_active = 1;
        s->admit_per_tick = 1;
        s->pass_ttl_ms = 5000;
        s->hold_ttl_ms = 10000;
        s->zone_count = 1;
        strcpy(s->zones[0].name, "Floor");
        s->zones[0].capacity = 10;
        s->zones[0].price_minor = 1000;
        strcpy(s->zones[0].currency, "EUR");
        assert_int_equal(run(h, &c).err, BR_OK);
        c = cmd(BR_CMD_RESERVE, T0 + 1, 1);
        c.u.reserve.event_id = e;
        c.u.reserve.zone_id = 1;
        c.u.reserve.quantity = 1;
        struct br_outcome o = run(h, &c);
        assert_int_equal(o.err, BR_OK);
        assert_int_equal(o.id, (uint64_t)e << 32 | 1);
    }
    assert_int_equal(br_auditor_violations(h->a), 0);
}

static void test_a_drift_in_event_65_and_later_is_caught(void **state)
{
    (void)state;
    /* One step touches every event's zone; the backend agrees with the
     * model for all of them but event 65. The auditor kept a list of 64
     * touched events and dropped the rest unchecked. */
    struct h h;
    h_many(&h);
    struct br_cmd c = cmd(BR_CMD_PAYMENT_CREATE, T0 + 2, 1);
    c.u.payment_create.hold_id = (uint64_t)1 << 32 | 1;
    uint64_t pay = run(&h, &c).id;
    int64_t late = T0 + 20000;
    /* The backend expires every hold but event 65's, unobserved. */
    for (uint32_t e = 1; e <= MANY_EVENTS; e++) {
        if (e == 65) {
            continue;
        }
        struct br_cmd sw = cmd(BR_CMD_SWEEP, late, 0);
        sw.u.sweep.event_id = e;
        sw.u.sweep.max = 8;
        struct br_outcome out;
        const struct br_effect *fx;
        uint32_t n;
        br_sim_backend_apply(&h.b, &sw, &out, &fx, &n);
        assert_int_equal(out.count, 1);
    }
    /* A late success that (wrongly) reports every hold expired: S6 for the
     * foreign holds, and each event's zone is touched in this one step. */
    static struct br_effect fx[MANY_EVENTS + 1];
    for (uint32_t e = 1; e <= MANY_EVENTS; e++) {
        fx[e - 1] = (struct br_effect){.kind = BR_FX_BOOKING_EXPIRED, .event_id = e, .user_id = 1,
                                       .id = (uint64_t)e << 32 | 1};
    }
    fx[MANY_EVENTS] = (struct br_effect){.kind = BR_FX_PROVIDER_REFUND, .event_id = 1,
                                         .user_id = 1, .id = pay, .ref = (uint64_t)1 << 32 | 1,
                                         .amount_minor = 1000};
    c = cmd(BR_CMD_PAYMENT_EVENT, late, 0);
    c.u.payment_event.payment_id = pay;
    c.u.payment_event.provider_event_id = 5;
    c.u.payment_event.succeeded = true;
    struct br_outcome o = {.id = pay, .ref = (uint64_t)1 << 32 | 1,
                           .status = BR_PAY_REFUND_PENDING, .amount_minor = 1000};
    fake(&h, &c, o, fx, MANY_EVENTS + 1);
    /* Exactly one zone disagrees with the backend: event 65's. */
    assert_int_equal(br_auditor_violations_of(h.a, BR_INV_S1), 1);
    h_free(&h);
}

static void test_a_drift_no_later_step_touches_is_s1_at_the_end(void **state)
{
    (void)state;
    /* The backend cancels a hold but the answer the auditor sees is lost:
     * no later step touches that zone, so only the end can notice. The end
     * used to count an S1 check per zone without comparing anything. */
    struct h h;
    h_init(&h);
    h_setup(&h, 10, 1);
    assert_int_equal(join(&h, OPEN + 1, 1).err, BR_OK);
    assert_int_equal(admit(&h, OPEN + 2).count, 1);
    struct br_cmd c = reserve_cmd(OPEN + 3, 1, 1, pass_of(1), 1);
    uint64_t hold = run(&h, &c).id;
    c = cmd(BR_CMD_CANCEL, OPEN + 4, 1);
    c.u.cancel.hold_id = hold;
    struct br_outcome out;
    const struct br_effect *fx;
    uint32_t n;
    br_sim_backend_apply(&h.b, &c, &out, &fx, &n);
    assert_int_equal(out.err, BR_OK);
    assert_int_equal(br_auditor_violations(h.a), 0);
    struct br_audit_liveness live;
    br_auditor_finish(h.a, OPEN + 5, &live);
    assert_int_equal(br_auditor_violations_of(h.a, BR_INV_S1), 1);
    h_free(&h);
}

static void test_wait_quantiles(void **state)
{
    (void)state;
    struct h h;
    h_init(&h);
    h_setup(&h, 10, 4);
    assert_int_equal(join(&h, OPEN + 0, 1).err, BR_OK);
    assert_int_equal(join(&h, OPEN + 100, 2).err, BR_OK);
    assert_int_equal(join(&h, OPEN + 200, 3).err, BR_OK);
    assert_int_equal(admit(&h, OPEN + 1000).count, 2); /* waits 1000, 900 */
    assert_int_equal(admit(&h, OPEN + 1200).count, 1); /* wait 1000 */
    assert_int_equal(br_auditor_violations(h.a), 0);
    assert_int_equal(br_auditor_waits(h.a), 3);
    assert_int_equal(br_auditor_wait_quantile(h.a, 0.0), 900);
    assert_int_equal(br_auditor_wait_quantile(h.a, 0.5), 1000);
    assert_int_equal(br_auditor_wait_quantile(h.a, 1.0), 1000);
    assert_int_equal(br_auditor_worst_inversion(h.a), 0);
    h_free(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_clean_sale_through_the_engine_has_no_violation),
        cmocka_unit_test(test_an_id_skip_is_a_jump_only_when_announced),
        cmocka_unit_test(test_a_hold_past_capacity_is_s1),
        cmocka_unit_test(test_sold_out_with_seats_left_is_s1),
        cmocka_unit_test(test_a_hold_past_the_per_user_limit_is_s3),
        cmocka_unit_test(test_a_hold_without_a_pass_is_s4),
        cmocka_unit_test(test_a_pass_out_of_queue_order_is_s4),
        cmocka_unit_test(test_a_provider_event_applied_twice_is_s5),
        cmocka_unit_test(test_confirming_a_hold_past_its_deadline_is_s6),
        cmocka_unit_test(test_a_hold_expired_twice_is_s7),
        cmocka_unit_test(test_a_confirmed_hold_that_expires_is_s2),
        cmocka_unit_test(test_a_payment_of_the_wrong_amount_is_s8),
        cmocka_unit_test(test_another_answer_for_the_same_key_is_s9),
        cmocka_unit_test(test_a_reused_key_must_conflict_s9),
        cmocka_unit_test(test_a_sweep_that_leaves_an_expired_hold_is_l1),
        cmocka_unit_test(test_the_end_with_a_waiting_user_is_l1),
        cmocka_unit_test(test_a_backend_whose_counters_drift_is_caught),
        cmocka_unit_test(test_reconfirming_after_a_decline_is_clean),
        cmocka_unit_test(test_a_second_payment_for_a_declined_booking_is_s5),
        cmocka_unit_test(test_a_booking_charged_twice_is_s5),
        cmocka_unit_test(test_a_drift_in_event_65_and_later_is_caught),
        cmocka_unit_test(test_a_drift_no_later_step_touches_is_s1_at_the_end),
        cmocka_unit_test(test_wait_quantiles),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
