/* test_inventory.c -- holds: the TTL boundary, the last seat, the per-user
 * limit, idempotency keys, cancel and sweep. */
#include "support.h"

#include <string.h>

#include "core/inventory.h"
#include "core/queue.h"

static struct br_outcome reserve(struct br_engine *e, int64_t now, uint64_t user, uint64_t ev,
                                 uint32_t qty, uint64_t key, int want)
{
    struct br_cmd c = c_reserve(now, user, ev, 1, qty, 0, key);
    struct br_outcome o;
    apply_expect(e, &c, want, &o);
    return o;
}

static uint32_t sweep(struct br_engine *e, int64_t now, uint64_t ev, uint32_t max)
{
    struct br_cmd c = c_sweep(now, ev, max);
    struct br_outcome o;
    apply_expect(e, &c, BR_OK, &o);
    assert_int_equal(o.count, t_effect_count(e, BR_FX_BOOKING_EXPIRED));
    return o.count;
}

/* ---- the hold and its outcome ---- */

static void test_reserve_claims_seats_and_reports_the_hold(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    struct br_event_spec s = t_spec();
    uint64_t ev = t_event(e, 0, &s);
    uint64_t u = t_user(e, 0, "a@t");
    struct br_outcome o = reserve(e, 100, u, ev, 3, 0, BR_OK);
    assert_int_equal(o.id, (ev << 32) | 1);
    assert_int_equal(o.status, BR_HOLD_HELD);
    assert_int_equal(o.deadline_ms, 100 + s.hold_ttl_ms);
    assert_int_equal(o.amount_minor, 3 * 2500);
    assert_int_equal(o.count, 3);
    assert_int_equal(o.ref, 0); /* no pass */
    assert_int_equal(t_available(e, ev, 1), 7);
    assert_int_equal(t_tickets(e, ev, u), 3);
    o = reserve(e, 101, u, ev, 1, 0, BR_OK);
    assert_int_equal(o.id, (ev << 32) | 2);
    uint64_t ids[4];
    assert_int_equal(br_engine_user_holds(e, u, ids, 4), 2);
    assert_int_equal(ids[0], (ev << 32) | 2); /* newest first */
    assert_int_equal(ids[1], (ev << 32) | 1);
    struct br_event_stats st;
    assert_int_equal(br_engine_event_stats(e, ev, &st), BR_OK);
    assert_int_equal(st.bookings[BR_HOLD_HELD], 2);
    assert_int_equal(br_engine_event_stats(e, ev + 1, &st), BR_E_NOT_FOUND);
    t_engine_free(e);
}

static void test_reserve_refuses_bad_requests(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    struct br_event_spec s = t_spec();
    s.sale_opens_at_ms = 500;
    uint64_t ev = t_event(e, 0, &s);
    uint64_t u = t_user(e, 0, "a@t");
    struct br_cmd c = c_reserve(600, u, ev + 1, 1, 1, 0, 0);
    apply_expect(e, &c, BR_E_NOT_FOUND, NULL);
    c = c_reserve(600, u, ev, 0, 1, 0, 0);
    apply_expect(e, &c, BR_E_NOT_FOUND, NULL);
    c = c_reserve(600, u, ev, 2, 1, 0, 0); /* one zone only */
    apply_expect(e, &c, BR_E_NOT_FOUND, NULL);
    c = c_reserve(600, u + 1, ev, 1, 1, 0, 0);
    apply_expect(e, &c, BR_E_UNAUTHORIZED, NULL);
    c = c_reserve(600, 0, ev, 1, 1, 0, 0);
    apply_expect(e, &c, BR_E_UNAUTHORIZED, NULL);
    c = c_reserve(600, u, ev, 1, 0, 0, 0);
    apply_expect(e, &c, BR_E_INVALID, NULL);
    c = c_reserve(600, u, ev, 1, BR_HOLD_QUANTITY_MAX + 1, 0, 0);
    apply_expect(e, &c, BR_E_INVALID, NULL);
    c = c_reserve(499, u, ev, 1, 1, 0, 0);
    apply_expect(e, &c, BR_E_SALE_NOT_OPEN, NULL);
    assert_int_equal(e->hold_count, 0);
    c = c_reserve(500, u, ev, 1, 1, 0, 0); /* exactly at the opening */
    apply_expect(e, &c, BR_OK, NULL);
    t_engine_free(e);
}

static void test_refused_reserve_changes_no_state(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    struct br_event_spec s = t_spec();
    s.requires_pass = true;
    s.zones[0].capacity = 1;
    uint64_t ev = t_event(e, 0, &s);
    uint64_t u[2];
    t_users(e, 2, u);
    /* A user who never queued: each refusal must leave no trace, not even
     * an empty (event, user) record that would use up the member table. */
    const struct br_cmd refused[] = {
        c_reserve(1, u[0], ev, 1, 1, 0, 0),           /* PASS_REQUIRED */
        c_reserve(1, u[0], ev, 1, 1, (ev << 32) | 9, 0), /* PASS_INVALID */
    };
    const int want[] = {BR_E_PASS_REQUIRED, BR_E_PASS_INVALID};
    for (int i = 0; i < 2; i++) {
        uint64_t before = br_engine_state_hash(e);
        uint32_t members = e->member_count;
        apply_expect(e, &refused[i], want[i], NULL);
        assert_int_equal(e->member_count, members);
        assert_true(br_engine_state_hash(e) == before);
    }
    /* Same for a sold-out zone on an event without passes. */
    s.requires_pass = false;
    uint64_t ev2 = t_event(e, 0, &s);
    t_hold(e, 1, u[0], ev2, 1);
    uint64_t before = br_engine_state_hash(e);
    struct br_cmd c = c_reserve(2, u[1], ev2, 1, 1, 0, 0);
    apply_expect(e, &c, BR_E_SOLD_OUT, NULL);
    assert_true(br_engine_state_hash(e) == before);
    t_engine_free(e);
}

/* ---- the TTL boundary ---- */

static void test_hold_is_live_one_ms_before_its_deadline(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    struct br_event_spec s = t_spec();
    uint64_t ev = t_event(e, 0, &s);
    uint64_t u = t_user(e, 0, "a@t");
    uint64_t h1 = t_hold(e, 1000, u, ev, 1);
    uint64_t h2 = t_hold(e, 1000, u, ev, 1);
    int64_t deadline = 1000 + s.hold_ttl_ms;
    assert_int_equal(sweep(e, deadline - 1, ev, 10), 0);
    assert_int_equal(t_hold_state(e, h1), BR_HOLD_HELD);
    struct br_cmd c = c_cancel(deadline - 1, u, h1);
    apply_expect(e, &c, BR_OK, NULL);
    c = c_pay(deadline - 1, u, h2);
    apply_expect(e, &c, BR_OK, NULL);
    t_engine_free(e);
}

static void test_hold_expires_exactly_at_deadline(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    struct br_event_spec s = t_spec();
    uint64_t ev = t_event(e, 0, &s);
    uint64_t u = t_user(e, 0, "a@t");
    uint64_t h = t_hold(e, 1000, u, ev, 2);
    int64_t deadline = 1000 + s.hold_ttl_ms;
    struct br_outcome o;
    struct br_cmd c = c_cancel(deadline, u, h);
    apply_expect(e, &c, BR_E_HOLD_EXPIRED, &o);
    assert_int_equal(o.id, h);
    assert_int_equal(o.status, BR_HOLD_HELD); /* the sweep, not cancel, returns the seats */
    c = c_pay(deadline, u, h);
    apply_expect(e, &c, BR_E_HOLD_EXPIRED, NULL);
    assert_int_equal(t_available(e, ev, 1), 8);
    assert_int_equal(sweep(e, deadline, ev, 10), 1);
    const struct br_effect *fx = t_effect(e, BR_FX_BOOKING_EXPIRED);
    assert_int_equal(fx->id, h);
    assert_int_equal(fx->user_id, u);
    assert_int_equal(fx->deadline_ms, deadline);
    assert_int_equal(t_hold_state(e, h), BR_HOLD_EXPIRED);
    assert_int_equal(t_available(e, ev, 1), 10);
    assert_int_equal(t_tickets(e, ev, u), 0);
    c = c_cancel(deadline, u, h);
    apply_expect(e, &c, BR_E_BOOKING_NOT_HELD, &o);
    assert_int_equal(o.status, BR_HOLD_EXPIRED);
    t_engine_free(e);
}

static void test_sweep_returns_each_expired_hold_once_in_deadline_order(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    struct br_event_spec s = t_spec();
    s.per_user_limit = 10;
    uint64_t ev = t_event(e, 0, &s);
    uint64_t u = t_user(e, 0, "a@t");
    uint64_t late = t_hold(e, 300, u, ev, 1);
    uint64_t early_b = t_hold(e, 100, u, ev, 1); /* clock went back: earlier deadline */
    uint64_t early_a = t_hold(e, 100, u, ev, 1);
    uint64_t live = t_hold(e, 5000, u, ev, 1);
    (void)live;
    /* At most `max` per sweep, in (deadline, id) order. */
    assert_int_equal(sweep(e, 2000, ev, 1), 1);
    assert_int_equal(t_effect(e, BR_FX_BOOKING_EXPIRED)->id, early_b); /* lower id first */
    assert_int_equal(sweep(e, 2000, ev, 1), 1);
    assert_int_equal(t_effect(e, BR_FX_BOOKING_EXPIRED)->id, early_a);
    assert_int_equal(sweep(e, 2000, ev, 10), 1);
    assert_int_equal(t_effect(e, BR_FX_BOOKING_EXPIRED)->id, late);
    assert_int_equal(sweep(e, 2000, ev, 10), 0); /* each exactly once */
    assert_int_equal(t_available(e, ev, 1), 9);
    t_engine_free(e);
}

static void test_sweep_refuses_users_unknown_events_and_bad_bounds(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    struct br_event_spec s = t_spec();
    uint64_t ev = t_event(e, 0, &s);
    uint64_t u = t_user(e, 0, "a@t");
    struct br_cmd c = c_sweep(0, ev, 1);
    c.user_id = u;
    apply_expect(e, &c, BR_E_FORBIDDEN, NULL);
    c = c_sweep(0, ev + 1, 1);
    apply_expect(e, &c, BR_E_NOT_FOUND, NULL);
    c = c_sweep(0, ev, 0);
    apply_expect(e, &c, BR_E_INVALID, NULL);
    c = c_sweep(0, ev, BR_SWEEP_MAX + 1);
    apply_expect(e, &c, BR_E_INVALID, NULL);
    c = c_sweep(0, ev, BR_SWEEP_MAX);
    apply_expect(e, &c, BR_OK, NULL);
    t_engine_free(e);
}

/* ---- the last seat ---- */

static void test_last_seat_goes_to_one_buyer_and_returns_once_after_expiry(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    struct br_event_spec s = t_spec();
    s.zones[0].capacity = 1;
    uint64_t ev = t_event(e, 0, &s);
    uint64_t u[3];
    t_users(e, 3, u);
    uint64_t h = reserve(e, 10, u[0], ev, 1, 0, BR_OK).id;
    reserve(e, 10, u[1], ev, 1, 0, BR_E_SOLD_OUT);
    assert_int_equal(t_available(e, ev, 1), 0);
    int64_t deadline = 10 + s.hold_ttl_ms;
    reserve(e, deadline, u[1], ev, 1, 0, BR_E_SOLD_OUT); /* expired but not swept */
    assert_int_equal(sweep(e, deadline, ev, 10), 1);
    assert_int_equal(t_hold_state(e, h), BR_HOLD_EXPIRED);
    assert_int_equal(t_available(e, ev, 1), 1);
    assert_int_equal(sweep(e, deadline + 1, ev, 10), 0);
    assert_int_equal(t_available(e, ev, 1), 1); /* returned exactly once */
    reserve(e, deadline + 2, u[1], ev, 1, 0, BR_OK);
    reserve(e, deadline + 2, u[2], ev, 1, 0, BR_E_SOLD_OUT);
    reserve(e, deadline + 2, u[0], ev, 1, 0, BR_E_SOLD_OUT);
    t_engine_free(e);
}

static void test_quantity_larger_than_what_is_left_is_sold_out(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    struct br_event_spec s = t_spec();
    s.zones[0].capacity = 5;
    uint64_t ev = t_event(e, 0, &s);
    uint64_t u[2];
    t_users(e, 2, u);
    reserve(e, 0, u[0], ev, 3, 0, BR_OK);
    reserve(e, 0, u[1], ev, 3, 0, BR_E_SOLD_OUT);
    reserve(e, 0, u[1], ev, 2, 0, BR_OK); /* exactly what is left */
    assert_int_equal(t_available(e, ev, 1), 0);
    t_engine_free(e);
}

/* ---- the per-user limit ---- */

static void test_per_user_limit_at_and_over_the_edge(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    struct br_event_spec s = t_spec(); /* limit 4 */
    uint64_t ev = t_event(e, 0, &s);
    uint64_t u = t_user(e, 0, "a@t");
    reserve(e, 0, u, ev, 5, 0, BR_E_LIMIT_EXCEEDED);
    reserve(e, 0, u, ev, 2, 0, BR_OK);
    reserve(e, 0, u, ev, 1, 0, BR_OK);
    reserve(e, 0, u, ev, 2, 0, BR_E_LIMIT_EXCEEDED); /* 3 + 2 > 4 */
    reserve(e, 0, u, ev, 1, 0, BR_OK);               /* 4: at the edge */
    reserve(e, 0, u, ev, 1, 0, BR_E_LIMIT_EXCEEDED);
    assert_int_equal(t_tickets(e, ev, u), 4);
    assert_int_equal(t_available(e, ev, 1), 6);
    t_engine_free(e);
}

static void test_per_user_limit_counts_confirmed_tickets_for_the_whole_sale(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    struct br_event_spec s = t_spec(); /* limit 4 */
    s.zone_count = 2;
    s.zones[1] = s.zones[0];
    strcpy(s.zones[1].name, "Balcony");
    uint64_t ev = t_event(e, 0, &s);
    uint64_t other = t_event(e, 0, &s);
    uint64_t u = t_user(e, 0, "a@t");
    uint64_t bought = t_hold(e, 0, u, ev, 2);
    uint64_t pay = t_payment(e, 1, u, bought);
    struct br_cmd c = c_pay_event(2, 1, pay, T_SUCCEEDED);
    apply_expect(e, &c, BR_OK, NULL);
    assert_int_equal(t_hold_state(e, bought), BR_HOLD_CONFIRMED);
    uint64_t cancelled = t_hold(e, 3, u, ev, 1);
    uint64_t expiring = t_hold(e, 3, u, ev, 1);
    assert_int_equal(t_tickets(e, ev, u), 4);
    /* Another zone of the same event counts too: the limit is per event. */
    c = c_reserve(4, u, ev, 2, 1, 0, 0);
    apply_expect(e, &c, BR_E_LIMIT_EXCEEDED, NULL);
    /* Another event has its own limit. */
    t_hold(e, 4, u, other, 4);
    /* A cancelled hold gives its tickets back... */
    c = c_cancel(5, u, cancelled);
    apply_expect(e, &c, BR_OK, NULL);
    assert_int_equal(t_tickets(e, ev, u), 3);
    /* ...and an expired one too; the confirmed ones stay counted. */
    assert_int_equal(sweep(e, 3 + s.hold_ttl_ms, ev, 10), 1);
    assert_int_equal(t_hold_state(e, expiring), BR_HOLD_EXPIRED);
    assert_int_equal(t_tickets(e, ev, u), 2);
    c = c_reserve(2000, u, ev, 2, 2, 0, 0);
    apply_expect(e, &c, BR_OK, NULL);
    c = c_reserve(2000, u, ev, 2, 1, 0, 0);
    apply_expect(e, &c, BR_E_LIMIT_EXCEEDED, NULL);
    t_engine_free(e);
}

/* ---- idempotency keys ---- */

static void test_same_key_same_request_gets_the_same_hold(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    struct br_event_spec s = t_spec();
    uint64_t ev = t_event(e, 0, &s);
    uint64_t u = t_user(e, 0, "a@t");
    struct br_outcome first = reserve(e, 10, u, ev, 2, 777, BR_OK);
    struct br_outcome again = reserve(e, 20, u, ev, 2, 777, BR_OK);
    assert_int_equal(again.id, first.id);
    assert_int_equal(again.deadline_ms, first.deadline_ms);
    assert_int_equal(again.amount_minor, first.amount_minor);
    assert_int_equal(e->hold_count, 1);
    assert_int_equal(t_available(e, ev, 1), 8);
    assert_int_equal(t_tickets(e, ev, u), 2);
    /* Later it reports the hold's current state, still the same hold. */
    struct br_cmd c = c_cancel(30, u, first.id);
    apply_expect(e, &c, BR_OK, NULL);
    again = reserve(e, 40, u, ev, 2, 777, BR_OK);
    assert_int_equal(again.id, first.id);
    assert_int_equal(again.status, BR_HOLD_CANCELLED);
    assert_int_equal(e->hold_count, 1);
    t_engine_free(e);
}

static void test_same_key_different_request_is_a_conflict(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    struct br_event_spec s = t_spec();
    s.zone_count = 2;
    s.zones[1] = s.zones[0];
    uint64_t ev = t_event(e, 0, &s);
    uint64_t ev2 = t_event(e, 0, &s);
    uint64_t u = t_user(e, 0, "a@t");
    reserve(e, 10, u, ev, 2, 5, BR_OK);
    const struct br_cmd differ[] = {
        c_reserve(11, u, ev, 1, 3, 0, 5),  /* quantity */
        c_reserve(11, u, ev, 2, 2, 0, 5),  /* zone */
        c_reserve(11, u, ev2, 1, 2, 0, 5), /* event */
        c_reserve(11, u, ev, 1, 2, 9, 5),  /* pass */
    };
    for (int i = 0; i < 4; i++) {
        uint64_t before = br_engine_state_hash(e);
        apply_expect(e, &differ[i], BR_E_IDEMPOTENCY_CONFLICT, NULL);
        assert_true(br_engine_state_hash(e) == before);
    }
    assert_int_equal(e->hold_count, 1);
    t_engine_free(e);
}

static void test_idempotency_keys_are_per_user(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    struct br_event_spec s = t_spec();
    uint64_t ev = t_event(e, 0, &s);
    uint64_t u[2];
    t_users(e, 2, u);
    struct br_outcome a = reserve(e, 10, u[0], ev, 1, 42, BR_OK);
    struct br_outcome b = reserve(e, 10, u[1], ev, 3, 42, BR_OK); /* same key, other user */
    assert_true(a.id != b.id);
    assert_int_equal(t_available(e, ev, 1), 6);
    t_engine_free(e);
}

static void test_same_key_repeats_a_failure_too(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    struct br_event_spec s = t_spec();
    s.zones[0].capacity = 1;
    uint64_t ev = t_event(e, 0, &s);
    uint64_t u[2];
    t_users(e, 2, u);
    uint64_t h = t_hold(e, 0, u[0], ev, 1);
    struct br_outcome o = reserve(e, 1, u[1], ev, 1, 66, BR_E_SOLD_OUT);
    assert_int_equal(o.id, 0);
    struct br_cmd c = c_cancel(2, u[0], h);
    apply_expect(e, &c, BR_OK, NULL);
    assert_int_equal(t_available(e, ev, 1), 1);
    o = reserve(e, 3, u[1], ev, 1, 66, BR_E_SOLD_OUT); /* the stored answer, not a new try */
    assert_int_equal(o.id, 0);
    assert_int_equal(t_available(e, ev, 1), 1);
    reserve(e, 4, u[1], ev, 1, 67, BR_OK); /* a new key is a new request */
    t_engine_free(e);
}

static void test_idempotency_table_full(void **state)
{
    (void)state;
    struct br_config cfg;
    t_config_small(&cfg);
    cfg.idem_max = 2;
    struct br_engine *e = t_engine_new(&cfg);
    struct br_event_spec s = t_spec();
    uint64_t ev = t_event(e, 0, &s);
    uint64_t u = t_user(e, 0, "a@t");
    reserve(e, 0, u, ev, 1, 1, BR_OK);
    reserve(e, 0, u, ev, 1, 2, BR_OK);
    uint64_t before = br_engine_state_hash(e);
    reserve(e, 0, u, ev, 1, 3, BR_E_FULL);
    assert_true(br_engine_state_hash(e) == before);
    reserve(e, 0, u, ev, 1, 2, BR_OK);   /* known keys still answer */
    reserve(e, 0, u, ev, 1, 0, BR_OK);   /* and requests without a key still work */
    assert_int_equal(e->hold_count, 3);
    t_engine_free(e);
}

static void test_hold_table_full(void **state)
{
    (void)state;
    struct br_config cfg;
    t_config_small(&cfg);
    cfg.holds_max = 2;
    struct br_engine *e = t_engine_new(&cfg);
    struct br_event_spec s = t_spec();
    uint64_t ev = t_event(e, 0, &s);
    uint64_t u[2];
    t_users(e, 2, u);
    t_hold(e, 0, u[0], ev, 1);
    t_hold(e, 0, u[0], ev, 1);
    uint64_t before = br_engine_state_hash(e);
    struct br_outcome o = reserve(e, 0, u[1], ev, 1, 8, BR_E_FULL);
    assert_int_equal(o.id, 0);
    assert_true(br_engine_state_hash(e) == before); /* a full table is not a stored answer */
    t_engine_free(e);
}

static void test_member_table_full_refuses_a_first_hold_only(void **state)
{
    (void)state;
    struct br_config cfg;
    t_config_small(&cfg);
    cfg.members_max = 1;
    struct br_engine *e = t_engine_new(&cfg);
    struct br_event_spec s = t_spec();
    uint64_t ev = t_event(e, 0, &s);
    uint64_t u[2];
    t_users(e, 2, u);
    t_hold(e, 0, u[0], ev, 1); /* takes the one (event, user) record */
    uint64_t before = br_engine_state_hash(e);
    reserve(e, 0, u[1], ev, 1, 0, BR_E_FULL);
    assert_true(br_engine_state_hash(e) == before);
    t_hold(e, 0, u[0], ev, 1); /* the member who has a record goes on */
    t_engine_free(e);
}

/* ---- cancel ---- */

static void test_cancel_returns_the_seats_and_notifies(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    struct br_event_spec s = t_spec();
    uint64_t ev = t_event(e, 0, &s);
    uint64_t u = t_user(e, 0, "a@t");
    uint64_t h = t_hold(e, 0, u, ev, 3);
    struct br_cmd c = c_cancel(1, u, h);
    struct br_outcome o;
    apply_expect(e, &c, BR_OK, &o);
    assert_int_equal(o.id, h);
    assert_int_equal(o.status, BR_HOLD_CANCELLED);
    assert_int_equal(t_effect_count(e, BR_FX_NOTIFY), 1);
    assert_int_equal(t_effect(e, BR_FX_NOTIFY)->id, h);
    assert_int_equal(t_available(e, ev, 1), 10);
    apply_expect(e, &c, BR_E_BOOKING_NOT_HELD, &o); /* twice */
    assert_int_equal(o.status, BR_HOLD_CANCELLED);
    assert_int_equal(sweep(e, 5000, ev, 10), 0); /* a cancelled hold is not swept */
    t_engine_free(e);
}

static void test_cancel_of_unknown_or_foreign_hold_is_not_found(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    struct br_event_spec s = t_spec();
    uint64_t ev = t_event(e, 0, &s);
    uint64_t u[2];
    t_users(e, 2, u);
    uint64_t h = t_hold(e, 0, u[0], ev, 1);
    struct br_cmd c = c_cancel(1, u[1], h);
    apply_expect(e, &c, BR_E_NOT_FOUND, NULL);
    c = c_cancel(1, u[0], h + 1);
    apply_expect(e, &c, BR_E_NOT_FOUND, NULL);
    assert_int_equal(t_hold_state(e, h), BR_HOLD_HELD);
    t_engine_free(e);
}

static void test_cancel_of_confirmed_hold_is_not_held(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    struct br_event_spec s = t_spec();
    uint64_t ev = t_event(e, 0, &s);
    uint64_t u = t_user(e, 0, "a@t");
    uint64_t h = t_hold(e, 0, u, ev, 1);
    uint64_t p = t_payment(e, 1, u, h);
    struct br_cmd c = c_pay_event(2, 1, p, T_SUCCEEDED);
    apply_expect(e, &c, BR_OK, NULL);
    c = c_cancel(3, u, h);
    struct br_outcome o;
    apply_expect(e, &c, BR_E_BOOKING_NOT_HELD, &o);
    assert_int_equal(o.status, BR_HOLD_CONFIRMED);
    assert_int_equal(t_hold_state(e, h), BR_HOLD_CONFIRMED);
    t_engine_free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reserve_claims_seats_and_reports_the_hold),
        cmocka_unit_test(test_reserve_refuses_bad_requests),
        cmocka_unit_test(test_refused_reserve_changes_no_state),
        cmocka_unit_test(test_hold_is_live_one_ms_before_its_deadline),
        cmocka_unit_test(test_hold_expires_exactly_at_deadline),
        cmocka_unit_test(test_sweep_returns_each_expired_hold_once_in_deadline_order),
        cmocka_unit_test(test_sweep_refuses_users_unknown_events_and_bad_bounds),
        cmocka_unit_test(test_last_seat_goes_to_one_buyer_and_returns_once_after_expiry),
        cmocka_unit_test(test_quantity_larger_than_what_is_left_is_sold_out),
        cmocka_unit_test(test_per_user_limit_at_and_over_the_edge),
        cmocka_unit_test(test_per_user_limit_counts_confirmed_tickets_for_the_whole_sale),
        cmocka_unit_test(test_same_key_same_request_gets_the_same_hold),
        cmocka_unit_test(test_same_key_different_request_is_a_conflict),
        cmocka_unit_test(test_idempotency_keys_are_per_user),
        cmocka_unit_test(test_same_key_repeats_a_failure_too),
        cmocka_unit_test(test_idempotency_table_full),
        cmocka_unit_test(test_hold_table_full),
        cmocka_unit_test(test_member_table_full_refuses_a_first_hold_only),
        cmocka_unit_test(test_cancel_returns_the_seats_and_notifies),
        cmocka_unit_test(test_cancel_of_unknown_or_foreign_hold_is_not_found),
        cmocka_unit_test(test_cancel_of_confirmed_hold_is_not_held),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
