/* test_waiting_room.c -- issue 13's rules in the core (docs/DESIGN.md "The
 * waiting room"): spec fields and defaults, the gate, joins that meet it,
 * passthrough holds, queue_mode_set and presence (every refusal), admission
 * (pacing, announce, headroom, lapses, the rate ring) with exact
 * boundaries, the estimate, the due rule, the view overlay, the state-hash
 * records and journal v3. The plants BR_PLANT_ADMIT_NO_SEATS,
 * BR_PLANT_PAUSE_LEAK and BR_PLANT_PRESENCE_UNIT each fail a test here. */
#include "support.h"

#include <stdlib.h>
#include <string.h>

#include "core/hash.h"
#include "core/journal.h"

/* ---- helpers ---- */

static struct br_cmd c_mode(int64_t now, uint64_t actor, uint64_t event, uint8_t set, uint8_t mode,
                            uint32_t max_active, uint32_t apm)
{
    struct br_cmd c;
    memset(&c, 0, sizeof c);
    c.type = BR_CMD_QUEUE_MODE_SET;
    c.now_ms = now;
    c.user_id = actor;
    c.u.queue_mode_set.event_id = event;
    c.u.queue_mode_set.set = set;
    c.u.queue_mode_set.mode = mode;
    c.u.queue_mode_set.max_active = max_active;
    c.u.queue_mode_set.admit_per_min = apm;
    return c;
}

static struct br_cmd c_presence(int64_t now, uint64_t event, uint32_t n, const uint64_t *ids)
{
    struct br_cmd c;
    memset(&c, 0, sizeof c);
    c.type = BR_CMD_PRESENCE;
    c.now_ms = now;
    c.u.presence.event_id = event;
    c.u.presence.count = n;
    for (uint32_t i = 0; i < n && i < BR_PRESENCE_BATCH_MAX; i++) {
        c.u.presence.user_ids[i] = ids[i];
    }
    return c;
}

static struct br_event *ev_of(struct br_engine *e, uint64_t id)
{
    struct br_event *ev = br_catalog_event(e, id);
    assert_non_null(ev);
    return ev;
}

static const struct br_member *member(const struct br_engine *e, uint64_t event, uint64_t user)
{
    uint32_t mi = br_queue_member_find(e, event, user);
    assert_true(mi != UINT32_MAX);
    return &e->members[mi];
}

static void set_mode(struct br_engine *e, int64_t now, uint64_t event, uint8_t mode)
{
    struct br_cmd c = c_mode(now, 0, event, BR_QSET_MODE, mode, 0, 0);
    apply_expect(e, &c, BR_OK, NULL);
}

static void join_ok(struct br_engine *e, int64_t now, uint64_t user, uint64_t event)
{
    struct br_cmd c = c_join(now, user, event);
    apply_expect(e, &c, BR_OK, NULL);
}

static struct br_outcome admit(struct br_engine *e, int64_t now, uint64_t event)
{
    struct br_outcome o;
    struct br_cmd c = c_admit(now, event);
    apply_expect(e, &c, BR_OK, &o);
    return o;
}

/* Refusals change no state: the same state hash and member count after. */
static void expect_refusal(struct br_engine *e, const struct br_cmd *c, int want)
{
    uint64_t before = br_engine_state_hash(e);
    uint32_t members = e->member_count;
    struct br_outcome o;
    apply_expect(e, c, want, &o);
    assert_int_equal(o.effect_count, 0);
    assert_true(br_engine_state_hash(e) == before);
    assert_int_equal(e->member_count, members);
}

/* ---- spec fields, defaults, creation ---- */

static void test_spec_fields_are_validated_and_defaults_are_the_apis(void **state)
{
    (void)state;
    struct br_event_spec s = t_spec();
    assert_int_equal(br_catalog_spec_validate(&s), BR_OK);
    s.admit_per_min = BR_ADMIT_PER_MIN_MAX;
    s.presence_ttl_s = BR_PRESENCE_TTL_S_MAX;
    s.pow_bits = BR_POW_BITS_MAX;
    s.queue_flags = BR_QF_ALL;
    s.mode = BR_QUEUE_MODE_COUNT - 1;
    assert_int_equal(br_catalog_spec_validate(&s), BR_OK);
    struct br_event_spec bad[5] = {s, s, s, s, s};
    bad[0].admit_per_min = BR_ADMIT_PER_MIN_MAX + 1;
    bad[1].presence_ttl_s = BR_PRESENCE_TTL_S_MAX + 1;
    bad[2].pow_bits = BR_POW_BITS_MAX + 1;
    bad[3].queue_flags = 0x02;
    bad[4].mode = BR_QUEUE_MODE_COUNT;
    struct br_engine *e = t_engine_new(NULL);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(br_catalog_spec_validate(&bad[i]), BR_E_INVALID);
        struct br_cmd c = c_event(0, 0, &bad[i]);
        expect_refusal(e, &c, BR_E_INVALID);
    }
    /* The API's defaults: presence 300 s, inventory-aware, the rest off. */
    struct br_event_spec d;
    br_event_spec_default(&d, 5000);
    assert_int_equal(d.presence_ttl_s, 300);
    assert_int_equal(d.queue_flags, BR_QF_INVENTORY_AWARE);
    assert_int_equal(d.admit_per_min, 0);
    assert_int_equal(d.pow_bits, 0);
    assert_int_equal(d.mode, BR_QM_OPEN);
    t_engine_free(e);
}

static void test_event_create_starts_the_live_controls_from_the_spec(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    struct br_event_spec s = t_spec();
    s.max_active = 3;
    s.admit_per_min = 120;
    s.mode = BR_QM_PAUSED;
    uint64_t a = t_event(e, 777, &s);
    const struct br_event *ev = ev_of(e, a);
    assert_int_equal(ev->q_mode, BR_QM_PAUSED);
    assert_int_equal(ev->q_max_active, 3);
    assert_int_equal(ev->q_admit_per_min, 120);
    assert_true(ev->q_pace_credit == 0 && ev->q_pace_last_ms == 777);
    assert_int_equal(ev->q_gate_told, BR_GATE_OPEN);
    assert_int_equal(ev->q_lapsed, 0);
    assert_true(ev->q_rate.bucket_last == -1);
    s.admit_per_min = 0;
    uint64_t b = t_event(e, 888, &s);
    assert_true(ev_of(e, b)->q_pace_last_ms == 0); /* no pacing: not touched */
    t_engine_free(e);
}

/* ---- the gate ---- */

static void test_the_gate_takes_the_first_matching_rule(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    struct br_event_spec s = t_spec();
    s.sale_opens_at_ms = 1000;
    s.queue_flags = BR_QF_INVENTORY_AWARE;
    s.zones[0].capacity = 2;
    struct br_event *ev = ev_of(e, t_event(e, 0, &s));
    assert_int_equal(br_queue_gate(ev, 999), BR_GATE_NOT_OPEN);
    assert_int_equal(br_queue_gate(ev, 1000), BR_GATE_OPEN);
    ev->q_mode = BR_QM_PAUSED;
    assert_int_equal(br_queue_gate(ev, 999), BR_GATE_NOT_OPEN); /* not open before paused */
    assert_int_equal(br_queue_gate(ev, 1000), BR_GATE_PAUSED);
    ev->zone_held[0] = 2;
    assert_int_equal(br_queue_gate(ev, 1000), BR_GATE_PAUSED); /* paused before seats held */
    ev->q_mode = BR_QM_OPEN;
    assert_int_equal(br_queue_seats_available(ev), 0);
    assert_false(br_queue_sold_out(ev));
    assert_int_equal(br_queue_gate(ev, 1000), BR_GATE_SEATS_HELD);
    assert_int_equal(br_queue_inv_gate(ev), BR_GATE_SEATS_HELD);
    ev->zone_held[0] = 0;
    ev->zone_sold[0] = 2;
    assert_true(br_queue_sold_out(ev));
    assert_int_equal(br_queue_gate(ev, 0), BR_GATE_SOLD_OUT); /* sold out before not open */
    assert_int_equal(br_queue_inv_gate(ev), BR_GATE_SOLD_OUT);
    ev->q_mode = BR_QM_PASSTHROUGH;
    assert_int_equal(br_queue_gate(ev, 0), BR_GATE_PASSTHROUGH);
    ev->q_mode = BR_QM_CLOSED;
    assert_int_equal(br_queue_gate(ev, 0), BR_GATE_CLOSED);
    /* Not inventory-aware: seats never shut the gate. */
    ev->q_mode = BR_QM_OPEN;
    ev->spec.queue_flags = 0;
    assert_int_equal(br_queue_gate(ev, 1000), BR_GATE_OPEN);
    assert_int_equal(br_queue_inv_gate(ev), BR_GATE_OPEN);
    /* Once the opening shuffle ran, a clock stepping back stays open. */
    ev->zone_sold[0] = 0;
    ev->q_shuffled = true;
    assert_int_equal(br_queue_gate(ev, 999), BR_GATE_OPEN);
    t_engine_free(e);
}

/* ---- joins ---- */

static void test_a_join_for_a_new_place_meets_the_gate_and_a_refusal_changes_nothing(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    uint64_t ids[4];
    t_users(e, 4, ids);
    struct br_event_spec s = t_spec();
    s.zones[0].capacity = 1;
    s.queue_flags = BR_QF_INVENTORY_AWARE;
    uint64_t ev = t_event(e, 0, &s);
    join_ok(e, 1, ids[0], ev);
    set_mode(e, 2, ev, BR_QM_CLOSED);
    struct br_cmd c = c_join(3, ids[1], ev);
    expect_refusal(e, &c, BR_E_QUEUE_CLOSED);
    /* A member keeps its place in every mode. */
    struct br_outcome o;
    c = c_join(3, ids[0], ev);
    apply_expect(e, &c, BR_OK, &o);
    assert_int_equal(o.status, BR_QS_WAITING);
    assert_int_equal(o.position, 1);
    /* Passthrough: OK without a place, nothing changes. */
    set_mode(e, 4, ev, BR_QM_PASSTHROUGH);
    uint64_t before = br_engine_state_hash(e);
    c = c_join(5, ids[1], ev);
    apply_expect(e, &c, BR_OK, &o);
    assert_int_equal(o.status, BR_QS_PASSTHROUGH);
    assert_true(o.id == ev);
    assert_int_equal(o.position, 0);
    assert_int_equal(o.queue_length, 1);
    assert_int_equal(o.effect_count, 0);
    assert_true(br_queue_member_find(e, ev, ids[1]) == UINT32_MAX);
    assert_true(br_engine_state_hash(e) == before);
    /* Sold out: a new place is refused, a kept one is not. */
    set_mode(e, 6, ev, BR_QM_OPEN);
    uint64_t h = t_hold(e, 7, ids[2], ev, 1);
    uint64_t pay = t_payment(e, 8, ids[2], h);
    c = c_pay_event(9, 1, pay, T_SUCCEEDED);
    apply_expect(e, &c, BR_OK, NULL);
    assert_true(br_queue_sold_out(ev_of(e, ev)));
    c = c_join(10, ids[3], ev);
    expect_refusal(e, &c, BR_E_SOLD_OUT);
    c = c_join(10, ids[0], ev);
    apply_expect(e, &c, BR_OK, NULL);
    /* The same event, not inventory-aware: sold out is no refusal. */
    ev_of(e, ev)->spec.queue_flags = 0;
    join_ok(e, 11, ids[3], ev);
    t_engine_free(e);
}

static void test_seen_ms_is_written_only_while_presence_is_on(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    uint64_t ids[2];
    t_users(e, 2, ids);
    struct br_event_spec s = t_spec();
    uint64_t off = t_event(e, 0, &s);
    s.presence_ttl_s = 10;
    uint64_t on = t_event(e, 0, &s);
    join_ok(e, 100, ids[0], off);
    join_ok(e, 100, ids[0], on);
    assert_true(member(e, off, ids[0])->seen_ms == 0);
    assert_true(member(e, on, ids[0])->seen_ms == 100);
    join_ok(e, 250, ids[0], on); /* a kept place refreshes it */
    assert_true(member(e, on, ids[0])->seen_ms == 250);
    join_ok(e, 260, ids[0], off);
    assert_true(member(e, off, ids[0])->seen_ms == 0);
    t_engine_free(e);
}

/* ---- reserve in passthrough ---- */

static void test_passthrough_holds_need_no_pass_and_ignore_one_given(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    uint64_t ids[2];
    t_users(e, 2, ids);
    struct br_event_spec s = t_spec();
    s.requires_pass = true;
    uint64_t ev = t_event(e, 0, &s);
    struct br_cmd c = c_reserve(1, ids[0], ev, 1, 1, 0, 0);
    apply_expect(e, &c, BR_E_PASS_REQUIRED, NULL);
    set_mode(e, 2, ev, BR_QM_PASSTHROUGH);
    struct br_outcome o;
    apply_expect(e, &c, BR_OK, &o);
    assert_true(o.ref == 0);
    c = c_reserve(3, ids[1], ev, 1, 1, (ev << 32) | 99, 0); /* nobody's pass: ignored */
    apply_expect(e, &c, BR_OK, &o);
    assert_true(o.ref == 0);
    set_mode(e, 4, ev, BR_QM_OPEN);
    c = c_reserve(5, ids[1], ev, 1, 1, 0, 0);
    apply_expect(e, &c, BR_E_PASS_REQUIRED, NULL);
    t_engine_free(e);
}

/* ---- queue_mode_set ---- */

static void test_queue_mode_set_refusals_in_their_order(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    uint64_t org = t_user(e, 0, "org@t"), other = t_user(e, 0, "other@t");
    uint64_t admin = t_user(e, 0, "admin@t"), cust = t_user(e, 0, "cust@t");
    struct br_cmd c = c_role_set(0, 0, org, BR_ROLE_ORGANIZER);
    apply_expect(e, &c, BR_OK, NULL);
    c = c_role_set(0, 0, other, BR_ROLE_ORGANIZER);
    apply_expect(e, &c, BR_OK, NULL);
    c = c_role_set(0, 0, admin, BR_ROLE_ADMIN);
    apply_expect(e, &c, BR_OK, NULL);
    struct br_event_spec s = t_spec();
    s.max_active = 5;
    uint64_t ev = t_event(e, 0, &s);
    ev_of(e, ev)->owner_user_id = org; /* owned by org (t_event creates as the system) */
    /* actor */
    c = c_mode(1, 99, ev, BR_QSET_MODE, BR_QM_PAUSED, 0, 0);
    expect_refusal(e, &c, BR_E_UNAUTHORIZED);
    c = c_mode(1, cust, ev, BR_QSET_MODE, BR_QM_PAUSED, 0, 0);
    expect_refusal(e, &c, BR_E_FORBIDDEN);
    c = c_mode(1, other, ev, BR_QSET_MODE, BR_QM_PAUSED, 0, 0);
    expect_refusal(e, &c, BR_E_FORBIDDEN);
    c = c_mode(1, cust, ev + 7, 0, 0, 0, 0); /* the actor before the event and the fields */
    expect_refusal(e, &c, BR_E_FORBIDDEN);
    /* event */
    c = c_mode(1, 0, ev + 7, 0, 0, 0, 0);
    expect_refusal(e, &c, BR_E_NOT_FOUND);
    c = c_mode(1, admin, ev + 7, BR_QSET_MODE, 0, 0, 0);
    expect_refusal(e, &c, BR_E_NOT_FOUND);
    /* fields */
    const struct br_cmd bad[] = {
        c_mode(1, org, ev, 0, 0, 0, 0),
        c_mode(1, org, ev, 0x08, 0, 0, 0),
        c_mode(1, org, ev, BR_QSET_MODE | 0x10, BR_QM_OPEN, 0, 0),
        c_mode(1, org, ev, BR_QSET_MODE, BR_QUEUE_MODE_COUNT, 0, 0),
        c_mode(1, org, ev, BR_QSET_MAX_ACTIVE, 0, 0, 0),
        c_mode(1, org, ev, BR_QSET_MAX_ACTIVE, 0, 6, 0),
        c_mode(1, org, ev, BR_QSET_ADMIT_PER_MIN, 0, 0, BR_ADMIT_PER_MIN_MAX + 1),
        c_mode(1, org, ev, BR_QSET_MODE | BR_QSET_MAX_ACTIVE, BR_QM_CLOSED, 6, 0),
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        expect_refusal(e, &bad[i], BR_E_INVALID);
    }
    /* The owner, an admin and the system may. */
    struct br_outcome o;
    c = c_mode(2, org, ev, BR_QSET_MAX_ACTIVE, 0, 5, 0);
    apply_expect(e, &c, BR_OK, &o);
    c = c_mode(2, admin, ev, BR_QSET_MAX_ACTIVE, 0, 1, 0);
    apply_expect(e, &c, BR_OK, &o);
    assert_int_equal(o.effect_count, 0); /* no MODE bit: no queue_state */
    c = c_mode(2, 0, ev, BR_QSET_ADMIT_PER_MIN, 0, 0, BR_ADMIT_PER_MIN_MAX);
    apply_expect(e, &c, BR_OK, &o);
    t_engine_free(e);
}

static void test_queue_mode_set_applies_and_answers(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    struct br_event_spec s = t_spec();
    s.max_active = 4;
    s.sale_opens_at_ms = 500;
    uint64_t ev = t_event(e, 0, &s);
    struct br_event *x = ev_of(e, ev);
    x->q_pace_credit = 12345; /* as if accrued */
    struct br_outcome o;
    struct br_cmd c = c_mode(100, 0, ev, BR_QSET_MODE | BR_QSET_MAX_ACTIVE | BR_QSET_ADMIT_PER_MIN,
                             BR_QM_PAUSED, 3, 90);
    apply_expect(e, &c, BR_OK, &o);
    assert_true(o.id == ev);
    assert_int_equal(o.status, BR_QM_PAUSED);
    assert_int_equal(o.position, BR_GATE_NOT_OPEN); /* the gate after the change, at now */
    assert_int_equal(o.count, 3);
    assert_true(o.ref == 90);
    assert_int_equal(x->q_max_active, 3);
    assert_int_equal(x->q_admit_per_min, 90);
    assert_true(x->q_pace_credit == 0 && x->q_pace_last_ms == 100);
    assert_int_equal(t_effect_count(e, BR_FX_QUEUE_STATE), 1);
    const struct br_effect *fx = t_effect(e, BR_FX_QUEUE_STATE);
    assert_true(fx->event_id == ev && fx->id == BR_GATE_NOT_OPEN && fx->ref == BR_QM_PAUSED);
    c = c_mode(600, 0, ev, BR_QSET_MODE, BR_QM_PAUSED, 0, 0);
    apply_expect(e, &c, BR_OK, &o);
    assert_int_equal(o.position, BR_GATE_PAUSED);
    assert_int_equal(t_effect(e, BR_FX_QUEUE_STATE)->id, BR_GATE_PAUSED);
    /* Pacing off again: the pace fields go back to 0. */
    c = c_mode(700, 0, ev, BR_QSET_ADMIT_PER_MIN, 0, 0, 0);
    apply_expect(e, &c, BR_OK, &o);
    assert_true(x->q_pace_credit == 0 && x->q_pace_last_ms == 0 && x->q_admit_per_min == 0);
    assert_int_equal(o.effect_count, 0);
    t_engine_free(e);
}

static void test_lowering_max_active_below_active_revokes_nothing(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    uint64_t ids[4];
    t_users(e, 4, ids);
    struct br_event_spec s = t_spec();
    s.max_active = 3;
    s.admit_per_tick = 3;
    s.pass_ttl_ms = 100000;
    s.requires_pass = true; /* a hold consumes the pass: frees its place in max_active */
    uint64_t ev = t_event(e, 0, &s);
    for (int i = 0; i < 4; i++) {
        join_ok(e, 1, ids[i], ev);
    }
    assert_int_equal(admit(e, 2, ev).count, 3);
    struct br_cmd c = c_mode(3, 0, ev, BR_QSET_MAX_ACTIVE, 0, 1, 0);
    apply_expect(e, &c, BR_OK, NULL);
    assert_int_equal(ev_of(e, ev)->passes_active, 3);
    assert_int_equal(admit(e, 4, ev).count, 0);
    struct br_queue_due_in in;
    br_queue_due_in_of(ev_of(e, ev), &in);
    assert_false(br_queue_admit_due(&in, 4));
    /* Two passes used: active 1 == max 1, still none; one more: room for 1. */
    c = c_reserve(5, ids[0], ev, 1, 1, member(e, ev, ids[0])->pass_id, 0);
    apply_expect(e, &c, BR_OK, NULL);
    c = c_reserve(5, ids[1], ev, 1, 1, member(e, ev, ids[1])->pass_id, 0);
    apply_expect(e, &c, BR_OK, NULL);
    assert_int_equal(admit(e, 6, ev).count, 0);
    c = c_reserve(7, ids[2], ev, 1, 1, member(e, ev, ids[2])->pass_id, 0);
    apply_expect(e, &c, BR_OK, NULL);
    br_queue_due_in_of(ev_of(e, ev), &in);
    assert_true(br_queue_admit_due(&in, 8));
    assert_int_equal(admit(e, 8, ev).count, 1);
    t_engine_free(e);
}

/* ---- presence ---- */

static void test_presence_refusals_and_counting(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    uint64_t ids[5];
    t_users(e, 5, ids);
    struct br_event_spec s = t_spec();
    s.presence_ttl_s = 30;
    s.max_active = 1;
    s.admit_per_tick = 1;
    s.pass_ttl_ms = 100000;
    uint64_t ev = t_event(e, 0, &s);
    s.presence_ttl_s = 0;
    uint64_t off = t_event(e, 0, &s);
    struct br_cmd c = c_presence(5, ev, 1, ids);
    c.user_id = ids[0];
    expect_refusal(e, &c, BR_E_FORBIDDEN);
    c = c_presence(5, ev + 9, 1, ids);
    expect_refusal(e, &c, BR_E_NOT_FOUND);
    c = c_presence(5, ev, 0, ids);
    expect_refusal(e, &c, BR_E_INVALID);
    uint64_t many[BR_PRESENCE_BATCH_MAX];
    for (uint32_t i = 0; i < BR_PRESENCE_BATCH_MAX; i++) {
        many[i] = ids[i % 5];
    }
    c = c_presence(5, ev, BR_PRESENCE_BATCH_MAX + 1, many);
    expect_refusal(e, &c, BR_E_INVALID);
    uint64_t with_zero[3] = {ids[0], 0, ids[1]};
    c = c_presence(5, ev, 3, with_zero);
    expect_refusal(e, &c, BR_E_INVALID);
    /* ids[0] admitted, ids[1] waiting, ids[2] left, ids[3] never joined. */
    join_ok(e, 10, ids[0], ev);
    join_ok(e, 10, ids[1], ev);
    join_ok(e, 10, ids[2], ev);
    c = c_leave(11, ids[2], ev);
    apply_expect(e, &c, BR_OK, NULL);
    assert_int_equal(admit(e, 12, ev).count, 1);
    uint64_t batch[6] = {ids[0], ids[1], ids[1], ids[2], ids[3], 4242};
    struct br_outcome o;
    c = c_presence(20, ev, 6, batch);
    apply_expect(e, &c, BR_OK, &o);
    assert_true(o.id == ev);
    assert_int_equal(o.count, 3); /* a duplicate counts each time */
    assert_int_equal(o.queue_length, 1);
    assert_int_equal(o.effect_count, 0);
    assert_true(member(e, ev, ids[0])->seen_ms == 20);
    assert_true(member(e, ev, ids[1])->seen_ms == 20);
    assert_true(member(e, ev, ids[2])->seen_ms == 10); /* left: ignored */
    c = c_presence(15, ev, 1, ids); /* an older clock never moves seen back */
    apply_expect(e, &c, BR_OK, &o);
    assert_int_equal(o.count, 1);
    assert_true(member(e, ev, ids[0])->seen_ms == 20);
    /* Presence off: nothing changes. */
    join_ok(e, 30, ids[4], off);
    uint64_t before = br_engine_state_hash(e);
    c = c_presence(40, off, 1, &ids[4]);
    apply_expect(e, &c, BR_OK, &o);
    assert_int_equal(o.count, 0);
    assert_true(br_engine_state_hash(e) == before);
    assert_true(member(e, off, ids[4])->seen_ms == 0);
    t_engine_free(e);
}

/* ---- admission ---- */

/* Caught with BR_PLANT_PRESENCE_UNIT (a TTL in seconds compared as ms lapses
 * the present member at 9,999 ms). */
static void test_presence_ttl_lapses_exactly_at_ttl_and_not_a_ms_before(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    uint64_t ids[3];
    t_users(e, 3, ids);
    struct br_event_spec s = t_spec();
    s.presence_ttl_s = 10;
    s.max_active = 1;
    s.admit_per_tick = 1;
    s.pass_ttl_ms = 1000000;
    s.requires_pass = true;
    uint64_t ev = t_event(e, 0, &s);
    join_ok(e, 0, ids[0], ev);
    join_ok(e, 0, ids[1], ev);
    join_ok(e, 0, ids[2], ev);
    struct br_outcome o = admit(e, 9999, ev);
    assert_int_equal(o.count, 1);
    assert_true(o.ref == 0);
    assert_int_equal(member(e, ev, ids[0])->status, BR_QS_ADMITTED);
    /* No room: nobody's turn comes, so nobody lapses (ids[1] is absent). */
    o = admit(e, 20000, ev);
    assert_int_equal(o.count, 0);
    assert_int_equal(member(e, ev, ids[1])->status, BR_QS_WAITING);
    struct br_cmd c = c_reserve(20001, ids[0], ev, 1, 1, member(e, ev, ids[0])->pass_id, 0);
    apply_expect(e, &c, BR_OK, NULL);
    uint64_t seen = ids[2];
    c = c_presence(20001, ev, 1, &seen);
    apply_expect(e, &c, BR_OK, NULL);
    /* ids[1] seen at 0: at 10000 + k it lapses, ids[2] takes the pass. */
    o = admit(e, 20002, ev);
    assert_int_equal(o.count, 1);
    assert_true(o.ref == 1);
    assert_int_equal(o.queue_length, 0);
    assert_int_equal(member(e, ev, ids[1])->status, BR_QS_LAPSED);
    assert_int_equal(member(e, ev, ids[2])->status, BR_QS_ADMITTED);
    assert_int_equal(ev_of(e, ev)->q_lapsed, 1);
    uint32_t n;
    const struct br_effect *fx = br_engine_effects(e, &n);
    assert_int_equal(n, 2);
    assert_int_equal(fx[0].kind, BR_FX_PLACE_LAPSED);
    assert_true(fx[0].event_id == ev && fx[0].user_id == ids[1] && fx[0].deadline_ms == 10000);
    assert_int_equal(fx[1].kind, BR_FX_PASS_ISSUED);
    struct br_queue_view v;
    assert_int_equal(br_queue_view(e, ev, ids[1], &v), BR_OK);
    assert_int_equal(v.status, BR_QS_LAPSED);
    assert_int_equal(v.position, 0);
    /* A lapsed member's join takes a new place at the back. */
    join_ok(e, 20003, ids[1], ev);
    assert_int_equal(member(e, ev, ids[1])->status, BR_QS_WAITING);
    assert_true(member(e, ev, ids[1])->seen_ms == 20003);
    t_engine_free(e);
}

static void test_presence_ttl_boundary_exactly(void **state)
{
    (void)state;
    for (int64_t at = 9999; at <= 10000; at++) {
        struct br_engine *e = t_engine_new(NULL);
        uint64_t u = t_user(e, 0, "a@t");
        struct br_event_spec s = t_spec();
        s.presence_ttl_s = 10;
        uint64_t ev = t_event(e, 0, &s);
        join_ok(e, 0, u, ev);
        struct br_outcome o = admit(e, at, ev);
        assert_int_equal(o.count, at < 10000 ? 1 : 0);
        assert_true(o.ref == (at < 10000 ? 0u : 1u));
        t_engine_free(e);
    }
}

static void test_pacing_credit_and_its_cap(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    uint64_t ids[12];
    t_users(e, 12, ids);
    struct br_event_spec s = t_spec();
    s.max_active = 16;
    s.admit_per_tick = 16;
    s.admit_per_min = 60; /* one a second; cap max(60000, 60 * 2000) = 2 admissions */
    s.pass_ttl_ms = 10000000;
    uint64_t ev = t_event(e, 0, &s);
    for (int i = 0; i < 12; i++) {
        join_ok(e, 0, ids[i], ev);
    }
    struct br_event *x = ev_of(e, ev);
    assert_int_equal(admit(e, 999, ev).count, 0);
    assert_true(x->q_pace_credit == 59940 && x->q_pace_last_ms == 999);
    struct br_queue_due_in in;
    br_queue_due_in_of(x, &in);
    assert_false(br_queue_admit_due(&in, 999));
    assert_true(br_queue_admit_due(&in, 1000));
    assert_int_equal(admit(e, 1000, ev).count, 1);
    assert_true(x->q_pace_credit == 0);
    /* A long pause gives at most the cap: two admissions. */
    assert_int_equal(admit(e, 100000, ev).count, 2);
    assert_true(x->q_pace_credit == 0);
    /* A clock stepping back adds nothing. */
    assert_int_equal(admit(e, 50000, ev).count, 0);
    assert_true(x->q_pace_credit == 0 && x->q_pace_last_ms == 50000);
    /* A fast rate: cap = apm * 2000, and admit_per_tick still bounds one admit. */
    struct br_cmd c = c_mode(50000, 0, ev, BR_QSET_ADMIT_PER_MIN, 0, 0, 600);
    apply_expect(e, &c, BR_OK, NULL);
    assert_int_equal(admit(e, 60000, ev).count, 9); /* room 13, credit 20: the 9 left */
    assert_true(x->q_pace_credit == 600LL * 2000 - 9 * 60000);
    t_engine_free(e);
}

/* Caught with BR_PLANT_ADMIT_NO_SEATS (no headroom, no inventory gate). */
static void test_headroom_and_the_inventory_gate_announce(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    uint64_t ids[8];
    t_users(e, 8, ids);
    struct br_event_spec s = t_spec();
    s.queue_flags = BR_QF_INVENTORY_AWARE;
    s.zones[0].capacity = 3;
    s.max_active = 8;
    s.admit_per_tick = 8;
    s.pass_ttl_ms = 1000000;
    s.hold_ttl_ms = 1000;
    uint64_t ev = t_event(e, 0, &s);
    uint64_t h = t_hold(e, 1, ids[7], ev, 2); /* avail 1 */
    for (int i = 0; i < 6; i++) {
        join_ok(e, 2, ids[i], ev);
    }
    struct br_outcome o = admit(e, 3, ev);
    assert_int_equal(o.count, 1); /* headroom = seats available now */
    assert_int_equal(o.queue_length, 5);
    struct br_cmd c = c_reserve(4, ids[0], ev, 1, 1, member(e, ev, ids[0])->pass_id, 0);
    apply_expect(e, &c, BR_OK, NULL);
    /* avail 0: the next admit announces seats_held once, admits nobody. */
    struct br_queue_due_in in;
    br_queue_due_in_of(ev_of(e, ev), &in);
    assert_true(br_queue_admit_due(&in, 5)); /* the gate changed: due to tell */
    o = admit(e, 5, ev);
    assert_int_equal(o.count, 0);
    assert_int_equal(t_effect_count(e, BR_FX_QUEUE_STATE), 1);
    const struct br_effect *fx = t_effect(e, BR_FX_QUEUE_STATE);
    assert_true(fx->event_id == ev && fx->id == BR_GATE_SEATS_HELD && fx->ref == BR_QM_OPEN);
    assert_int_equal(ev_of(e, ev)->q_gate_told, BR_GATE_SEATS_HELD);
    br_queue_due_in_of(ev_of(e, ev), &in);
    assert_false(br_queue_admit_due(&in, 6));
    o = admit(e, 6, ev);
    assert_int_equal(o.count, 0);
    assert_int_equal(o.effect_count, 0); /* told once */
    /* The hold expires (sweep): seats come back, the next admit says open
     * (before its passes: effect order) and admits within headroom. */
    c = c_sweep(2000, ev, 8);
    apply_expect(e, &c, BR_OK, NULL);
    (void)h;
    o = admit(e, 2001, ev);
    assert_int_equal(o.count, 3); /* 3 seats, 5 waiting */
    uint32_t n;
    const struct br_effect *all = br_engine_effects(e, &n);
    assert_int_equal(n, 4);
    assert_int_equal(all[0].kind, BR_FX_QUEUE_STATE);
    assert_true(all[0].id == BR_GATE_OPEN);
    assert_int_equal(all[1].kind, BR_FX_PASS_ISSUED);
    assert_int_equal(all[2].kind, BR_FX_PASS_ISSUED);
    t_engine_free(e);
}

static void test_sold_out_is_announced_and_overlaid(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    uint64_t ids[4];
    t_users(e, 4, ids);
    struct br_event_spec s = t_spec();
    s.queue_flags = BR_QF_INVENTORY_AWARE;
    s.zones[0].capacity = 1;
    uint64_t ev = t_event(e, 0, &s);
    join_ok(e, 1, ids[0], ev);
    uint64_t h = t_hold(e, 2, ids[3], ev, 1);
    uint64_t pay = t_payment(e, 3, ids[3], h);
    struct br_cmd c = c_pay_event(4, 1, pay, T_SUCCEEDED);
    apply_expect(e, &c, BR_OK, NULL);
    struct br_queue_view v;
    assert_int_equal(br_queue_view(e, ev, ids[0], &v), BR_OK);
    assert_int_equal(v.status, BR_QS_SOLD_OUT);
    assert_int_equal(v.position, 1); /* still reported */
    struct br_outcome o = admit(e, 5, ev);
    assert_int_equal(o.count, 0);
    assert_int_equal(t_effect(e, BR_FX_QUEUE_STATE)->id, BR_GATE_SOLD_OUT);
    struct br_queue_event_view qv;
    assert_int_equal(br_queue_event_view(e, ev, 5, 250, &qv), BR_OK);
    assert_true(qv.sold_out);
    assert_int_equal(qv.gate, BR_GATE_SOLD_OUT);
    assert_int_equal(qv.join_now.basis, BR_EST_NONE);
    assert_true(qv.join_now.wait_s == UINT32_MAX);
    /* The state hash's record 4 uses the stored status, not the overlay. */
    assert_int_equal(member(e, ev, ids[0])->status, BR_QS_WAITING);
    t_engine_free(e);
}

/* Caught with BR_PLANT_PAUSE_LEAK. */
static void test_paused_closed_and_passthrough_admit_nobody(void **state)
{
    (void)state;
    const uint8_t modes[] = {BR_QM_PAUSED, BR_QM_CLOSED, BR_QM_PASSTHROUGH};
    const uint8_t overlay[] = {BR_QS_WAITING, BR_QS_CLOSED, BR_QS_PASSTHROUGH};
    for (size_t k = 0; k < sizeof modes; k++) {
        struct br_engine *e = t_engine_new(NULL);
        uint64_t u = t_user(e, 0, "a@t");
        struct br_event_spec s = t_spec();
        uint64_t ev = t_event(e, 0, &s);
        join_ok(e, 1, u, ev);
        set_mode(e, 2, ev, modes[k]);
        struct br_queue_due_in in;
        br_queue_due_in_of(ev_of(e, ev), &in);
        assert_false(br_queue_admit_due(&in, 3));
        struct br_outcome o = admit(e, 3, ev);
        assert_int_equal(o.count, 0);
        assert_int_equal(o.effect_count, 0);
        struct br_queue_view v;
        assert_int_equal(br_queue_view(e, ev, u, &v), BR_OK);
        assert_int_equal(v.status, overlay[k]);
        assert_int_equal(v.position, 1);
        set_mode(e, 4, ev, BR_QM_OPEN); /* reopened: the place is still there */
        assert_int_equal(admit(e, 5, ev).count, 1);
        t_engine_free(e);
    }
}

static void test_effect_order_expired_state_lapsed_and_issued_in_queue_order(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    uint64_t ids[5];
    t_users(e, 5, ids);
    struct br_event_spec s = t_spec();
    s.queue_flags = BR_QF_INVENTORY_AWARE;
    s.presence_ttl_s = 1;
    s.zones[0].capacity = 10;
    s.max_active = 2;
    s.admit_per_tick = 2;
    s.pass_ttl_ms = 500;
    uint64_t ev = t_event(e, 0, &s);
    join_ok(e, 0, ids[0], ev);
    assert_int_equal(admit(e, 0, ev).count, 1);
    ev_of(e, ev)->q_gate_told = BR_GATE_SEATS_HELD; /* as if told before: open is news */
    join_ok(e, 100, ids[1], ev); /* will be absent */
    join_ok(e, 1500, ids[2], ev);
    join_ok(e, 1500, ids[3], ev);
    join_ok(e, 1500, ids[4], ev);
    struct br_outcome o = admit(e, 1600, ev);
    assert_int_equal(o.count, 2);
    assert_true(o.ref == 1);
    uint32_t n;
    const struct br_effect *fx = br_engine_effects(e, &n);
    assert_int_equal(n, 5);
    assert_int_equal(fx[0].kind, BR_FX_PASS_EXPIRED);
    assert_true(fx[0].user_id == ids[0]);
    assert_int_equal(fx[1].kind, BR_FX_QUEUE_STATE);
    assert_int_equal(fx[2].kind, BR_FX_PLACE_LAPSED);
    assert_true(fx[2].user_id == ids[1] && fx[2].deadline_ms == 1100);
    assert_int_equal(fx[3].kind, BR_FX_PASS_ISSUED);
    assert_true(fx[3].user_id == ids[2]);
    assert_int_equal(fx[4].kind, BR_FX_PASS_ISSUED);
    assert_true(fx[4].user_id == ids[3]);
    t_engine_free(e);
}

/* ---- the rate ring and the estimate ---- */

static void test_rate_ring_buckets_roll_over_and_the_window_slides(void **state)
{
    (void)state;
    struct br_queue_rate r;
    memset(&r, 0xAB, sizeof r);
    r.bucket_last = -1;
    uint32_t count;
    int64_t span;
    br_queue_rate_read(&r, 5000, &count, &span);
    assert_int_equal(count, 0);
    assert_true(span == BR_RATE_BUCKET_MS);
    br_queue_rate_add(&r, 25000, 3); /* bucket 2; the garbage is zeroed */
    assert_true(r.bucket_last == 2 && r.since_ms == 25000);
    assert_int_equal(r.n[2], 3);
    for (uint32_t b = 0; b < BR_RATE_BUCKETS; b++) {
        if (b != 2) {
            assert_int_equal(r.n[b], 0);
        }
    }
    br_queue_rate_add(&r, 29999, 1); /* same bucket */
    br_queue_rate_add(&r, 30000, 2); /* the next */
    assert_int_equal(r.n[2], 4);
    assert_int_equal(r.n[3], 2);
    br_queue_rate_add(&r, 10000, 5); /* behind: counts in the newest */
    assert_int_equal(r.n[3], 7);
    br_queue_rate_read(&r, 35000, &count, &span);
    assert_int_equal(count, 11);
    assert_true(span == 10000); /* since 25000 */
    br_queue_rate_read(&r, 26000, &count, &span);
    assert_true(span == BR_RATE_BUCKET_MS); /* at least one bucket */
    /* Bucket 2 leaves the window when b - 30 + 1 > 2, i.e. b = 32. */
    br_queue_rate_read(&r, 31 * 10000 + 9999, &count, &span);
    assert_int_equal(count, 11);
    br_queue_rate_read(&r, 32 * 10000, &count, &span);
    assert_int_equal(count, 7);
    assert_true(span == 32 * 10000 - 3 * 10000);
    br_queue_rate_read(&r, 33 * 10000, &count, &span);
    assert_int_equal(count, 0);
    /* An add 29 buckets on wraps onto index 2 and zeroes what lies between. */
    br_queue_rate_add(&r, 32 * 10000, 1); /* bucket 32 = index 2 */
    assert_int_equal(r.n[2], 1);
    assert_int_equal(r.n[3], 7); /* bucket 3 is still in the ring (window 3..32) */
    br_queue_rate_add(&r, 33 * 10000, 1); /* bucket 33 = index 3: zeroed first */
    assert_int_equal(r.n[3], 1);
    /* A jump of a whole ring or more zeroes everything. */
    br_queue_rate_add(&r, 100 * 10000, 4);
    uint64_t total = 0;
    for (uint32_t b = 0; b < BR_RATE_BUCKETS; b++) {
        total += r.n[b];
    }
    assert_int_equal(total, 4);
    assert_true(r.since_ms == 25000 && r.bucket_last == 100);
}

static void test_estimate_bases(void **state)
{
    (void)state;
    struct br_event_spec s = t_spec();
    s.admit_per_tick = 10;
    s.sale_opens_at_ms = 100000;
    struct br_queue_rate r;
    memset(&r, 0, sizeof r);
    r.bucket_last = -1;
    struct br_queue_estimate est;
    br_queue_estimate(&s, 0, &r, BR_GATE_SOLD_OUT, 5, 1000, 200000, &est);
    assert_true(est.basis == BR_EST_NONE && est.wait_s == UINT32_MAX && est.admitted_per_min == 0);
    br_queue_estimate(&s, 0, &r, BR_GATE_CLOSED, 5, 1000, 200000, &est);
    assert_true(est.basis == BR_EST_NONE && est.wait_s == UINT32_MAX);
    br_queue_estimate(&s, 0, &r, BR_GATE_PASSTHROUGH, 5, 1000, 200000, &est);
    assert_true(est.basis == BR_EST_NONE && est.wait_s == 0);
    /* Configured: the tick estimate, or the pace when slower, plus the opening. */
    br_queue_estimate(&s, 0, &r, BR_GATE_OPEN, 25, 1000, 200000, &est);
    assert_true(est.basis == BR_EST_CONFIGURED && est.wait_s == 3 && est.admitted_per_min == 0);
    br_queue_estimate(&s, 60, &r, BR_GATE_OPEN, 25, 1000, 200000, &est);
    assert_true(est.wait_s == 25);
    br_queue_estimate(&s, 60, &r, BR_GATE_NOT_OPEN, 25, 1000, 98500, &est);
    assert_true(est.wait_s == 25 + 2); /* 1.5 s to the opening, rounded up */
    /* Measured: 12 in 20 s = 36 a minute; position 7 waits ceil(7 * 20000 / 12000) = 12 s. */
    br_queue_rate_add(&r, 180000, 12);
    br_queue_estimate(&s, 60, &r, BR_GATE_OPEN, 7, 1000, 200000, &est);
    assert_true(est.basis == BR_EST_MEASURED);
    assert_int_equal(est.admitted_per_min, 36);
    assert_int_equal(est.wait_s, 12);
    /* ... not before the opening, and at least 1 a minute. */
    br_queue_estimate(&s, 0, &r, BR_GATE_NOT_OPEN, 7, 1000, 200000, &est);
    assert_true(est.basis == BR_EST_CONFIGURED);
    struct br_queue_rate slow;
    memset(&slow, 0, sizeof slow);
    slow.bucket_last = -1;
    br_queue_rate_add(&slow, 0, 1);
    br_queue_estimate(&s, 0, &slow, BR_GATE_OPEN, UINT32_MAX, 1000, 290000, &est);
    assert_int_equal(est.admitted_per_min, 1);
    assert_true(est.wait_s == UINT32_MAX - 1); /* saturates below "unknown" */
}

static void test_event_view_and_not_found(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    uint64_t u = t_user(e, 0, "a@t");
    struct br_event_spec s = t_spec();
    s.pow_bits = 20;
    s.presence_ttl_s = 60;
    s.admit_per_min = 30;
    s.max_active = 7;
    uint64_t ev = t_event(e, 0, &s);
    join_ok(e, 1, u, ev);
    struct br_queue_event_view v;
    assert_int_equal(br_queue_event_view(e, ev + 3, 1, 250, &v), BR_E_NOT_FOUND);
    assert_int_equal(br_queue_event_view(e, ev, 1, 250, &v), BR_OK);
    assert_int_equal(v.mode, BR_QM_OPEN);
    assert_int_equal(v.gate, BR_GATE_OPEN);
    assert_int_equal(v.pow_bits, 20);
    assert_false(v.sold_out);
    assert_int_equal(v.queue_length, 1);
    assert_int_equal(v.max_active, 7);
    assert_int_equal(v.admit_per_min, 30);
    assert_int_equal(v.presence_ttl_s, 60);
    assert_int_equal(v.join_now.basis, BR_EST_CONFIGURED);
    assert_int_equal(v.join_now.wait_s, 4); /* position 2 at 30 a minute */
    t_engine_free(e);
}

/* ---- the due rule and br_engine_due ---- */

static void test_due_rule_cases(void **state)
{
    (void)state;
    struct br_queue_due_in in;
    memset(&in, 0, sizeof in);
    assert_false(br_queue_admit_due(&in, 0)); /* no event */
    in.exists = true;
    in.opens_ms = 100;
    in.next_pass_ms = INT64_MAX;
    assert_false(br_queue_admit_due(&in, 99));
    assert_true(br_queue_admit_due(&in, 100)); /* the opening */
    in.shuffled = true;
    assert_false(br_queue_admit_due(&in, 200)); /* nobody waiting */
    in.next_pass_ms = 200;
    assert_false(br_queue_admit_due(&in, 199));
    assert_true(br_queue_admit_due(&in, 200)); /* a pass to expire */
    in.next_pass_ms = INT64_MAX;
    in.waiting = 1;
    in.max_active_live = 1;
    assert_true(br_queue_admit_due(&in, 200));
    in.active = 1;
    assert_false(br_queue_admit_due(&in, 200));
    in.active = 0;
    in.mode = BR_QM_PAUSED;
    assert_false(br_queue_admit_due(&in, 200));
    in.mode = BR_QM_OPEN;
    in.flags = BR_QF_INVENTORY_AWARE;
    in.avail = 0;
    assert_true(br_queue_admit_due(&in, 200)); /* told open, is seats_held: tell */
    in.gate_told = BR_GATE_SEATS_HELD;
    assert_false(br_queue_admit_due(&in, 200));
    in.avail = 1;
    assert_true(br_queue_admit_due(&in, 200)); /* told seats_held, is open: tell */
    in.gate_told = BR_GATE_OPEN;
    in.admit_per_min = 60;
    in.pace_last_ms = 1000;
    in.pace_credit = 30000;
    assert_false(br_queue_admit_due(&in, 1499));
    assert_true(br_queue_admit_due(&in, 1500));
    assert_false(br_queue_admit_due(&in, 900)); /* a clock behind adds nothing */
}

static void test_engine_due_admit_follows_the_rule(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    uint64_t u = t_user(e, 0, "a@t");
    struct br_event_spec s = t_spec();
    s.sale_opens_at_ms = 100;
    uint64_t ev = t_event(e, 0, &s);
    assert_false(br_engine_due(e, ev, 99) & BR_DUE_ADMIT);
    assert_true(br_engine_due(e, ev, 100) & BR_DUE_ADMIT);
    admit(e, 100, ev);
    assert_false(br_engine_due(e, ev, 101) & BR_DUE_ADMIT);
    join_ok(e, 101, u, ev);
    assert_true(br_engine_due(e, ev, 101) & BR_DUE_ADMIT);
    set_mode(e, 102, ev, BR_QM_PAUSED);
    assert_false(br_engine_due(e, ev, 102) & BR_DUE_ADMIT);
    t_engine_free(e);
}

/* ---- the state hash ---- */

static void test_state_hash_records_only_where_a_switch_is_on(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    uint64_t ids[2];
    t_users(e, 2, ids);
    struct br_event_spec s = t_spec();
    uint64_t ev = t_event(e, 0, &s);
    join_ok(e, 1, ids[0], ev);
    admit(e, 2, ev);
    struct br_event *x = ev_of(e, ev);
    assert_true(x->q_rate.bucket_last == 0); /* the ring counts every event's admissions */
    uint64_t h = br_engine_state_hash(e);
    /* Switches off: the ring and seen_ms are not hashed (records 14/15 absent). */
    x->q_rate.n[0] = 99;
    assert_true(br_engine_state_hash(e) == h);
    x->q_rate.n[0] = 1;
    /* Each field of record 13 makes it appear. */
    x->q_lapsed = 1;
    uint64_t h13 = br_engine_state_hash(e);
    assert_true(h13 != h);
    x->q_rate.n[0] = 99; /* now record 14 is there, raw buckets */
    assert_true(br_engine_state_hash(e) != h13);
    x->q_rate.n[0] = 1;
    x->q_lapsed = 0;
    assert_true(br_engine_state_hash(e) == h);
    x->q_max_active = 1; /* != spec.max_active */
    assert_true(br_engine_state_hash(e) != h);
    x->q_max_active = x->spec.max_active;
    x->q_gate_told = BR_GATE_SEATS_HELD;
    assert_true(br_engine_state_hash(e) != h);
    x->q_gate_told = BR_GATE_OPEN;
    /* Record 15: a member's seen_ms. */
    e->members[br_queue_member_find(e, ev, ids[0])].seen_ms = 5;
    assert_true(br_engine_state_hash(e) != h);
    e->members[br_queue_member_find(e, ev, ids[0])].seen_ms = 0;
    assert_true(br_engine_state_hash(e) == h);
    /* A spec switch alone makes record 13 (every other field at its default). */
    s.presence_ttl_s = 7;
    uint64_t ev2 = t_event(e, 0, &s);
    uint64_t with = br_engine_state_hash(e);
    struct br_event *y = ev_of(e, ev2);
    y->spec.presence_ttl_s = 0; /* take the switch away: the record goes */
    uint64_t without = br_engine_state_hash(e);
    assert_true(with != without);
    y->spec.presence_ttl_s = 8;
    assert_true(br_engine_state_hash(e) != with);
    y->spec.presence_ttl_s = 7;
    assert_true(br_engine_state_hash(e) == with);
    t_engine_free(e);
}

/* ---- journal v3 ---- */

static void test_journal_v3_replays_the_waiting_room_to_the_same_digest(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    struct br_cmd cmds[32];
    struct br_outcome outs[32];
    uint32_t n = 0;
    uint64_t ids[3];
    t_users(e, 3, ids); /* their registrations are in neither list: replayed alike below */
    struct br_event_spec s = t_spec();
    s.presence_ttl_s = 5;
    s.admit_per_min = 120;
    s.queue_flags = BR_QF_INVENTORY_AWARE;
    s.pow_bits = 3;
    s.mode = BR_QM_PAUSED;
    cmds[n++] = c_event(0, 0, &s);
    cmds[n++] = c_join(10, ids[0], 1);
    cmds[n++] = c_join(20, ids[1], 1);
    cmds[n++] = c_join(30, ids[2], 1);
    cmds[n++] = c_mode(40, 0, 1, BR_QSET_MODE | BR_QSET_ADMIT_PER_MIN, BR_QM_OPEN, 0, 600);
    uint64_t seen[2] = {ids[0], ids[2]};
    cmds[n++] = c_presence(6000, 1, 2, seen);
    cmds[n++] = c_admit(7000, 1);
    cmds[n++] = c_mode(8000, 0, 1, BR_QSET_MODE, BR_QM_CLOSED, 0, 0);
    cmds[n++] = c_join(9000, ids[1], 1);
    cmds[n++] = c_presence(9000, 1, 0, seen); /* INVALID: journaled too */
    uint64_t digest_before = br_engine_digest(e);
    for (uint32_t i = 0; i < n; i++) {
        apply(e, &cmds[i], &outs[i]);
    }
    assert_int_equal(outs[6].count, 2);
    assert_true(outs[6].ref == 1);
    assert_int_equal(outs[8].err, BR_E_QUEUE_CLOSED);
    assert_int_equal(outs[9].err, BR_E_INVALID);
    uint64_t final = br_engine_final_digest(e);
    /* Through the codec, onto an engine at the same point. */
    struct br_engine *f = t_engine_new(NULL);
    t_users(f, 3, ids);
    assert_true(br_engine_digest(f) == digest_before);
    for (uint32_t i = 0; i < n; i++) {
        uint8_t buf[BR_JOURNAL_RECORD_MAX];
        size_t len = br_journal_record_encode(buf, sizeof buf, &cmds[i], &outs[i]);
        assert_true(len > 0);
        struct br_cmd d;
        struct br_outcome rec, o;
        bool has;
        size_t used;
        assert_int_equal(br_journal_record_decode(buf, len, &d, &rec, &has, &used), BR_OK);
        assert_memory_equal(&rec, &outs[i], sizeof rec);
        apply(f, &d, &o);
        assert_memory_equal(&o, &outs[i], sizeof o);
    }
    assert_true(br_engine_final_digest(f) == final);
    assert_memory_equal(&ev_of(f, 1)->spec, &ev_of(e, 1)->spec, sizeof(struct br_event_spec));
    t_engine_free(f);
    t_engine_free(e);
}

static void test_journal_v2_records_and_headers_still_read(void **state)
{
    (void)state;
    /* A v2 event_create (no waiting-room fields) is the v3 encoding of an
     * event with every switch off: the same bytes, the same hash. */
    struct br_event_spec s = t_spec();
    struct br_cmd c = c_event(5, 0, &s);
    uint8_t v2[BR_JOURNAL_RECORD_MAX], v3[BR_JOURNAL_RECORD_MAX];
    size_t n2 = br_journal_record_encode(v2, sizeof v2, &c, NULL);
    s.presence_ttl_s = 1;
    struct br_cmd c3 = c_event(5, 0, &s);
    size_t n3 = br_journal_record_encode(v3, sizeof v3, &c3, NULL);
    assert_int_equal(n3, n2 + 11); /* u32 + u32 + 3 x u8 after the zones */
    assert_memory_equal(v2 + 8, v3 + 8, n2 - 8);
    assert_true(br_journal_cmd_hash(&c) != br_journal_cmd_hash(&c3));
    struct br_cmd d;
    struct br_outcome o;
    bool has;
    size_t used;
    assert_int_equal(br_journal_record_decode(v2, n2, &d, &o, &has, &used), BR_OK);
    assert_int_equal(d.u.event_create.presence_ttl_s, 0);
    assert_int_equal(d.u.event_create.queue_flags, 0);
    assert_int_equal(d.u.event_create.mode, 0);
    assert_int_equal(br_journal_record_decode(v3, n3, &d, &o, &has, &used), BR_OK);
    assert_int_equal(d.u.event_create.presence_ttl_s, 1);
    /* Five zero fields are never written: such a record is damage. */
    memset(v3 + n3 - 11, 0, 11);
    uint32_t crc = br_crc32c(0, v3 + 8, n3 - 8);
    for (int i = 0; i < 4; i++) {
        v3[4 + i] = (uint8_t)(crc >> (8 * i));
    }
    assert_int_equal(br_journal_record_decode(v3, n3, &d, &o, &has, &used), BR_E_CORRUPT);
    /* Presence: only the first count ids travel; the rest decode as zero. */
    uint64_t ids[3] = {7, 8, 9};
    struct br_cmd p = c_presence(1, 2, 2, ids);
    p.u.presence.user_ids[2] = 9; /* beyond count: not carried */
    uint8_t buf[BR_JOURNAL_RECORD_MAX];
    size_t np = br_journal_record_encode(buf, sizeof buf, &p, NULL);
    assert_int_equal(np, 8 + 1 + 17 + 8 + 1 + 2 * 8);
    assert_int_equal(br_journal_record_decode(buf, np, &d, &o, &has, &used), BR_OK);
    assert_int_equal(d.u.presence.count, 2);
    assert_true(d.u.presence.user_ids[1] == 8 && d.u.presence.user_ids[2] == 0);
    p.u.presence.count = BR_PRESENCE_BATCH_MAX + 1;
    assert_int_equal(br_journal_record_encode(buf, sizeof buf, &p, NULL), 0);
    /* A v2 header reads. */
    struct br_config cfg, got;
    t_config_small(&cfg);
    uint8_t h[BR_JOURNAL_HEADER_MAX];
    size_t hn = br_journal_header_encode(h, sizeof h, &cfg);
    assert_int_equal(h[4], 3);
    h[4] = 2;
    crc = br_crc32c(0, h, hn - 4);
    for (int i = 0; i < 4; i++) {
        h[hn - 4 + (size_t)i] = (uint8_t)(crc >> (8 * i));
    }
    assert_int_equal(br_journal_header_decode(h, hn, &got, &used), BR_OK);
    assert_memory_equal(&got, &cfg, sizeof got);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_fields_are_validated_and_defaults_are_the_apis),
        cmocka_unit_test(test_event_create_starts_the_live_controls_from_the_spec),
        cmocka_unit_test(test_the_gate_takes_the_first_matching_rule),
        cmocka_unit_test(test_a_join_for_a_new_place_meets_the_gate_and_a_refusal_changes_nothing),
        cmocka_unit_test(test_seen_ms_is_written_only_while_presence_is_on),
        cmocka_unit_test(test_passthrough_holds_need_no_pass_and_ignore_one_given),
        cmocka_unit_test(test_queue_mode_set_refusals_in_their_order),
        cmocka_unit_test(test_queue_mode_set_applies_and_answers),
        cmocka_unit_test(test_lowering_max_active_below_active_revokes_nothing),
        cmocka_unit_test(test_presence_refusals_and_counting),
        cmocka_unit_test(test_presence_ttl_lapses_exactly_at_ttl_and_not_a_ms_before),
        cmocka_unit_test(test_presence_ttl_boundary_exactly),
        cmocka_unit_test(test_pacing_credit_and_its_cap),
        cmocka_unit_test(test_headroom_and_the_inventory_gate_announce),
        cmocka_unit_test(test_sold_out_is_announced_and_overlaid),
        cmocka_unit_test(test_paused_closed_and_passthrough_admit_nobody),
        cmocka_unit_test(test_effect_order_expired_state_lapsed_and_issued_in_queue_order),
        cmocka_unit_test(test_rate_ring_buckets_roll_over_and_the_window_slides),
        cmocka_unit_test(test_estimate_bases),
        cmocka_unit_test(test_event_view_and_not_found),
        cmocka_unit_test(test_due_rule_cases),
        cmocka_unit_test(test_engine_due_admit_follows_the_rule),
        cmocka_unit_test(test_state_hash_records_only_where_a_switch_is_on),
        cmocka_unit_test(test_journal_v3_replays_the_waiting_room_to_the_same_digest),
        cmocka_unit_test(test_journal_v2_records_and_headers_still_read),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
