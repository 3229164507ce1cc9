/* test_queue.c -- the waiting room: joins, re-joins, leaves, the opening
 * shuffle, admission and passes (TTL, one-time use, binding). */
#include "support.h"

#include <string.h>

#include "core/catalog.h"
#include "core/queue.h"

enum { OPEN = 10000 }; /* sale_opens_at_ms of the queued events */

static struct br_event_spec queued_spec(void)
{
    struct br_event_spec s = t_spec();
    s.sale_opens_at_ms = OPEN;
    s.requires_pass = true;
    return s;
}

static struct br_queue_view view(const struct br_engine *e, uint64_t ev, uint64_t user)
{
    struct br_queue_view v;
    int rc = br_queue_view(e, ev, user, &v);
    assert_true(rc == BR_OK || rc == BR_E_NOT_IN_QUEUE);
    return v;
}

static struct br_outcome join(struct br_engine *e, int64_t now, uint64_t user, uint64_t ev)
{
    struct br_cmd c = c_join(now, user, ev);
    struct br_outcome o;
    apply_expect(e, &c, BR_OK, &o);
    assert_int_equal(o.id, ev);
    return o;
}

static struct br_outcome admit(struct br_engine *e, int64_t now, uint64_t ev)
{
    struct br_cmd c = c_admit(now, ev);
    struct br_outcome o;
    apply_expect(e, &c, BR_OK, &o);
    assert_int_equal(o.count, t_effect_count(e, BR_FX_PASS_ISSUED));
    return o;
}

/* ---- joining before and after the opening ---- */

static void test_join_before_opening_waits_in_the_prequeue_without_position(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    struct br_event_spec s = queued_spec();
    uint64_t ev = t_event(e, 0, &s);
    uint64_t u[3];
    t_users(e, 3, u);
    for (int i = 0; i < 3; i++) {
        struct br_outcome o = join(e, 100 + i, u[i], ev);
        assert_int_equal(o.status, BR_QS_PREQUEUE);
        assert_int_equal(o.position, 0);
        assert_int_equal(o.queue_length, (uint32_t)i + 1);
    }
    assert_int_equal(view(e, ev, u[0]).status, BR_QS_PREQUEUE);
    t_engine_free(e);
}

static void test_opening_shuffle_gives_every_prequeue_member_a_distinct_position(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    struct br_event_spec s = queued_spec();
    uint64_t ev = t_event(e, 0, &s);
    enum { N = 12 };
    uint64_t u[N];
    t_users(e, N, u);
    for (int i = 0; i < N; i++) {
        join(e, i, u[i], ev);
    }
    /* The first command on the event at the opening runs the shuffle: here a
     * re-join, which keeps the place it is given. */
    struct br_outcome o = join(e, OPEN, u[0], ev);
    assert_int_equal(o.status, BR_QS_WAITING);
    bool seen[N + 1] = {false};
    for (int i = 0; i < N; i++) {
        struct br_queue_view v = view(e, ev, u[i]);
        assert_int_equal(v.status, BR_QS_WAITING);
        assert_true(v.position >= 1 && v.position <= N);
        assert_false(seen[v.position]);
        seen[v.position] = true;
        assert_int_equal(v.queue_length, N);
    }
    assert_true(br_catalog_event(e, ev)->q_shuffled);
    t_engine_free(e);
}

/* Positions of u[0..n) after joins at times[i] and an opening. */
static void shuffled_positions(uint64_t seed, const int64_t *times, uint32_t n, uint32_t *pos)
{
    struct br_config cfg;
    t_config_small(&cfg);
    cfg.seed = seed;
    struct br_engine *e = t_engine_new(&cfg);
    struct br_event_spec s = queued_spec();
    uint64_t ev = t_event(e, 0, &s);
    uint64_t u[16];
    t_users(e, n, u);
    for (uint32_t i = 0; i < n; i++) {
        join(e, times[i], u[i], ev);
    }
    admit(e, OPEN - 1, ev); /* still closed: nothing moves */
    assert_false(br_catalog_event(e, ev)->q_shuffled);
    struct br_cmd c = c_sweep(OPEN + 5, ev, 1); /* does not open the queue */
    apply_expect(e, &c, BR_OK, NULL);
    assert_false(br_catalog_event(e, ev)->q_shuffled);
    join(e, OPEN + 7, u[n - 1], ev); /* a re-join after the opening shuffles */
    for (uint32_t i = 0; i < n; i++) {
        pos[i] = view(e, ev, u[i]).position;
    }
    t_engine_free(e);
}

static void test_opening_shuffle_depends_only_on_the_seed(void **state)
{
    (void)state;
    enum { N = 10 };
    const int64_t early[N] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    const int64_t late[N] = {9000, 9100, 9200, 9300, 9400, 9500, 9600, 9700, 9800, 9999};
    uint32_t a[N], b[N], c[N];
    shuffled_positions(42, early, N, a);
    shuffled_positions(42, late, N, b);
    shuffled_positions(43, early, N, c);
    assert_memory_equal(a, b, sizeof a); /* arriving earlier bought nothing */
    assert_memory_not_equal(a, c, sizeof a); /* another seed, another order */
    /* And the order is not simply the arrival order. */
    uint32_t arrival[N];
    for (uint32_t i = 0; i < N; i++) {
        arrival[i] = i + 1;
    }
    assert_memory_not_equal(a, arrival, sizeof a);
}

static void test_joins_after_opening_are_fifo_behind_the_prequeue(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    struct br_event_spec s = queued_spec();
    uint64_t ev = t_event(e, 0, &s);
    uint64_t u[8];
    t_users(e, 8, u);
    for (int i = 0; i < 4; i++) {
        join(e, 50, u[i], ev);
    }
    for (int i = 4; i < 8; i++) {
        struct br_outcome o = join(e, OPEN + i, u[i], ev);
        assert_int_equal(o.status, BR_QS_WAITING);
        assert_int_equal(o.position, (uint32_t)i + 1);
        assert_int_equal(o.queue_length, (uint32_t)i + 1);
    }
    /* Admission takes the shuffled pre-queue first, then the FIFO tail. */
    uint64_t order[8];
    for (int i = 0; i < 8; i++) {
        order[view(e, ev, u[i]).position - 1] = u[i];
    }
    for (int tick = 0; tick < 4; tick++) {
        int64_t now = OPEN + 100 + tick * 2000; /* after the previous passes expired */
        admit(e, now, ev);
        uint32_t n = 0;
        const struct br_effect *fx = br_engine_effects(e, &n);
        uint32_t issued = 0;
        for (uint32_t i = 0; i < n; i++) {
            if (fx[i].kind == BR_FX_PASS_ISSUED) {
                assert_int_equal(fx[i].user_id, order[tick * 2 + issued]);
                assert_int_equal(fx[i].event_id, ev);
                assert_int_equal(fx[i].deadline_ms, now + s.pass_ttl_ms);
                issued++;
            }
        }
        assert_int_equal(issued, 2);
    }
    t_engine_free(e);
}

/* ---- re-join and leave ---- */

static void test_rejoin_keeps_the_place(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    struct br_event_spec s = t_spec(); /* open from 0: plain FIFO */
    uint64_t ev = t_event(e, 0, &s);
    uint64_t u[4];
    t_users(e, 4, u);
    for (int i = 0; i < 4; i++) {
        join(e, 10, u[i], ev);
    }
    uint32_t tail = br_catalog_event(e, ev)->q_tail;
    struct br_outcome o = join(e, 20, u[2], ev);
    assert_int_equal(o.status, BR_QS_WAITING);
    assert_int_equal(o.position, 3);
    assert_int_equal(o.queue_length, 4);
    assert_int_equal(br_catalog_event(e, ev)->q_tail, tail); /* no new slot taken */
    t_engine_free(e);
}

static void test_rejoin_in_the_prequeue_keeps_the_place(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    struct br_event_spec s = queued_spec();
    uint64_t ev = t_event(e, 0, &s);
    uint64_t u[2];
    t_users(e, 2, u);
    join(e, 1, u[0], ev);
    join(e, 2, u[1], ev);
    struct br_outcome o = join(e, 3, u[0], ev);
    assert_int_equal(o.status, BR_QS_PREQUEUE);
    assert_int_equal(o.queue_length, 2);
    assert_int_equal(br_catalog_event(e, ev)->q_tail, 2);
    t_engine_free(e);
}

static void test_rejoin_while_admitted_keeps_the_pass(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    struct br_event_spec s = t_spec();
    uint64_t ev = t_event(e, 0, &s);
    uint64_t u = t_user(e, 0, "a@t");
    uint64_t pass = t_pass(e, 100, u, ev);
    struct br_outcome o = join(e, 100 + s.pass_ttl_ms - 1, u, ev);
    assert_int_equal(o.status, BR_QS_ADMITTED);
    assert_int_equal(o.ref, pass);
    assert_int_equal(o.deadline_ms, 100 + s.pass_ttl_ms);
    assert_int_equal(o.position, 0);
    t_engine_free(e);
}

static void test_rejoin_after_the_pass_lapsed_expires_it_and_goes_to_the_back(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    struct br_event_spec s = t_spec();
    uint64_t ev = t_event(e, 0, &s);
    uint64_t u[3];
    t_users(e, 3, u);
    uint64_t pass = t_pass(e, 100, u[0], ev);
    join(e, 200, u[1], ev);
    join(e, 300, u[2], ev);
    struct br_outcome o = join(e, 100 + s.pass_ttl_ms, u[0], ev); /* exactly at the deadline */
    assert_int_equal(t_effect_count(e, BR_FX_PASS_EXPIRED), 1);
    assert_int_equal(t_effect(e, BR_FX_PASS_EXPIRED)->id, pass);
    assert_int_equal(o.status, BR_QS_WAITING);
    assert_int_equal(o.position, 3);
    assert_int_equal(br_catalog_event(e, ev)->passes_active, 0);
    t_engine_free(e);
}

static void test_leave_then_join_goes_to_the_back(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    struct br_event_spec s = t_spec();
    uint64_t ev = t_event(e, 0, &s);
    uint64_t u[4];
    t_users(e, 4, u);
    for (int i = 0; i < 4; i++) {
        join(e, 10, u[i], ev);
    }
    struct br_cmd c = c_leave(20, u[1], ev);
    struct br_outcome o;
    apply_expect(e, &c, BR_OK, &o);
    assert_int_equal(o.status, BR_QS_LEFT);
    assert_int_equal(o.queue_length, 3);
    assert_int_equal(view(e, ev, u[2]).position, 2); /* everyone behind moved up */
    assert_int_equal(view(e, ev, u[3]).position, 3);
    assert_int_equal(view(e, ev, u[1]).status, BR_QS_LEFT);
    o = join(e, 30, u[1], ev);
    assert_int_equal(o.status, BR_QS_WAITING);
    assert_int_equal(o.position, 4);
    assert_int_equal(o.queue_length, 4);
    t_engine_free(e);
}

static void test_leave_while_admitted_gives_the_pass_back(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    struct br_event_spec s = t_spec();
    s.max_active = 1;
    s.requires_pass = true;
    uint64_t ev = t_event(e, 0, &s);
    uint64_t u[2];
    t_users(e, 2, u);
    uint64_t pass = t_pass(e, 0, u[0], ev);
    join(e, 0, u[1], ev);
    assert_int_equal(admit(e, 1, ev).count, 0); /* max_active is taken */
    struct br_cmd c = c_leave(2, u[0], ev);
    apply_expect(e, &c, BR_OK, NULL);
    assert_int_equal(t_effect(e, BR_FX_PASS_EXPIRED)->id, pass);
    assert_int_equal(br_catalog_event(e, ev)->passes_active, 0);
    assert_int_equal(admit(e, 3, ev).count, 1);
    assert_int_equal(view(e, ev, u[1]).status, BR_QS_ADMITTED);
    /* The pass given back no longer buys anything. */
    c = c_reserve(4, u[0], ev, 1, 1, pass, 0);
    apply_expect(e, &c, BR_E_PASS_EXPIRED, NULL);
    t_engine_free(e);
}

static void test_leave_when_not_in_queue_is_not_in_queue(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    struct br_event_spec s = t_spec();
    uint64_t ev = t_event(e, 0, &s);
    uint64_t u[2];
    t_users(e, 2, u);
    struct br_cmd c = c_leave(0, u[0], ev); /* never joined */
    apply_expect(e, &c, BR_E_NOT_IN_QUEUE, NULL);
    join(e, 1, u[0], ev);
    c = c_leave(2, u[0], ev);
    apply_expect(e, &c, BR_OK, NULL);
    c = c_leave(3, u[0], ev); /* left already */
    apply_expect(e, &c, BR_E_NOT_IN_QUEUE, NULL);
    /* After the pass was used there is nothing to leave either. */
    s.requires_pass = true;
    uint64_t ev2 = t_event(e, 0, &s);
    uint64_t pass = t_pass(e, 10, u[1], ev2);
    c = c_reserve(11, u[1], ev2, 1, 1, pass, 0);
    apply_expect(e, &c, BR_OK, NULL);
    assert_int_equal(view(e, ev2, u[1]).status, BR_QS_USED);
    c = c_leave(12, u[1], ev2);
    apply_expect(e, &c, BR_E_NOT_IN_QUEUE, NULL);
    c = c_leave(12, u[1], 99);
    apply_expect(e, &c, BR_E_NOT_FOUND, NULL);
    t_engine_free(e);
}

static void test_join_refuses_unknown_events_and_users(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    struct br_event_spec s = t_spec();
    uint64_t ev = t_event(e, 0, &s);
    uint64_t u = t_user(e, 0, "a@t");
    struct br_cmd c = c_join(0, u, ev + 1);
    apply_expect(e, &c, BR_E_NOT_FOUND, NULL);
    c = c_join(0, 0, ev); /* the system does not queue */
    apply_expect(e, &c, BR_E_UNAUTHORIZED, NULL);
    c = c_join(0, u + 5, ev);
    apply_expect(e, &c, BR_E_UNAUTHORIZED, NULL);
    assert_int_equal(br_catalog_event(e, ev)->q_waiting, 0);
    t_engine_free(e);
}

static void test_queue_capacity_counts_joins_over_the_sale(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    struct br_event_spec s = t_spec();
    s.queue_capacity = 2;
    uint64_t ev = t_event(e, 0, &s);
    uint64_t u[3];
    t_users(e, 3, u);
    join(e, 0, u[0], ev);
    join(e, 0, u[1], ev);
    struct br_cmd c = c_join(0, u[2], ev);
    uint64_t before = br_engine_state_hash(e);
    apply_expect(e, &c, BR_E_FULL, NULL);
    assert_true(br_engine_state_hash(e) == before); /* no empty record left behind */
    assert_int_equal(br_queue_member_find(e, ev, u[2]), UINT32_MAX);
    c = c_leave(1, u[0], ev);
    apply_expect(e, &c, BR_OK, NULL);
    c = c_join(2, u[2], ev); /* a leave does not give a slot back */
    apply_expect(e, &c, BR_E_FULL, NULL);
    join(e, 3, u[1], ev); /* but a re-join of a waiting user needs none */
    t_engine_free(e);
}

static void test_refused_rejoin_into_a_full_queue_leaves_the_lapsed_pass_alone(void **state)
{
    (void)state;
    /* A refused command changes no state and its effects would be dropped by
     * a driver, so the lapsed pass must not be collected (and its
     * pass_expired effect lost) by a join that then fails. */
    struct br_engine *e = t_engine_new(NULL);
    struct br_event_spec s = t_spec();
    s.queue_capacity = 1;
    uint64_t ev = t_event(e, 0, &s);
    uint64_t u = t_user(e, 0, "a@t");
    uint64_t pass = t_pass(e, 0, u, ev);
    struct br_cmd c = c_join(s.pass_ttl_ms, u, ev); /* lapsed; needs a new place: none left */
    uint64_t before = br_engine_state_hash(e);
    struct br_outcome o;
    apply_expect(e, &c, BR_E_FULL, &o);
    assert_int_equal(o.effect_count, 0);
    assert_true(br_engine_state_hash(e) == before);
    /* The admitter collects it, with its effect. */
    struct br_outcome a = admit(e, s.pass_ttl_ms, ev);
    assert_int_equal(a.count, 0);
    assert_int_equal(t_effect(e, BR_FX_PASS_EXPIRED)->id, pass);
    assert_int_equal(view(e, ev, u).status, BR_QS_EXPIRED);
    t_engine_free(e);
}

static void test_member_table_full(void **state)
{
    (void)state;
    struct br_config cfg;
    t_config_small(&cfg);
    cfg.members_max = 2;
    struct br_engine *e = t_engine_new(&cfg);
    struct br_event_spec s = t_spec();
    uint64_t ev = t_event(e, 0, &s);
    uint64_t u[3];
    t_users(e, 3, u);
    join(e, 0, u[0], ev);
    join(e, 0, u[1], ev);
    struct br_cmd c = c_join(0, u[2], ev);
    apply_expect(e, &c, BR_E_FULL, NULL);
    join(e, 1, u[0], ev); /* existing members still re-join */
    t_engine_free(e);
}

/* ---- admission ---- */

static void test_admit_admits_nobody_before_the_opening(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    struct br_event_spec s = queued_spec();
    uint64_t ev = t_event(e, 0, &s);
    uint64_t u[3];
    t_users(e, 3, u);
    for (int i = 0; i < 3; i++) {
        join(e, i, u[i], ev);
    }
    struct br_outcome o = admit(e, OPEN - 1, ev);
    assert_int_equal(o.count, 0);
    assert_int_equal(o.effect_count, 0);
    assert_int_equal(o.queue_length, 3);
    assert_int_equal(br_catalog_event(e, ev)->passes_issued, 0);
    o = admit(e, OPEN, ev); /* exactly at the opening */
    assert_int_equal(o.count, 2);
    assert_int_equal(o.queue_length, 1);
    t_engine_free(e);
}

static void test_admit_admits_min_of_room_and_admit_per_tick(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    struct br_event_spec s = t_spec();
    s.max_active = 5;
    s.admit_per_tick = 2;
    s.requires_pass = true;
    uint64_t ev = t_event(e, 0, &s);
    uint64_t u[10];
    t_users(e, 10, u);
    for (int i = 0; i < 10; i++) {
        join(e, 0, u[i], ev);
    }
    assert_int_equal(admit(e, 1, ev).count, 2); /* room 5, per tick 2 */
    assert_int_equal(admit(e, 2, ev).count, 2); /* room 3 */
    assert_int_equal(admit(e, 3, ev).count, 1); /* room 1 */
    struct br_outcome o = admit(e, 4, ev);      /* room 0 */
    assert_int_equal(o.count, 0);
    assert_int_equal(o.queue_length, 5);
    assert_int_equal(br_catalog_event(e, ev)->passes_active, 5);
    /* A consumed pass frees its place in max_active. */
    struct br_queue_view v = view(e, ev, u[0]);
    struct br_cmd c = c_reserve(5, u[0], ev, 1, 1, v.pass_id, 0);
    apply_expect(e, &c, BR_OK, NULL);
    assert_int_equal(br_catalog_event(e, ev)->passes_active, 4);
    assert_int_equal(admit(e, 6, ev).count, 1);
    assert_int_equal(view(e, ev, u[5]).status, BR_QS_ADMITTED);
    assert_int_equal(view(e, ev, u[6]).status, BR_QS_WAITING);
    assert_int_equal(view(e, ev, u[6]).position, 1);
    t_engine_free(e);
}

static void test_admit_is_for_the_system_on_known_events(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    struct br_event_spec s = t_spec();
    uint64_t ev = t_event(e, 0, &s);
    uint64_t u = t_user(e, 0, "a@t");
    struct br_cmd c = c_admit(0, ev);
    c.user_id = u;
    apply_expect(e, &c, BR_E_FORBIDDEN, NULL);
    c = c_admit(0, ev + 1);
    apply_expect(e, &c, BR_E_NOT_FOUND, NULL);
    t_engine_free(e);
}

static void test_admit_stops_when_the_pass_table_is_full(void **state)
{
    (void)state;
    struct br_config cfg;
    t_config_small(&cfg);
    cfg.passes_max = 3;
    struct br_engine *e = t_engine_new(&cfg);
    struct br_event_spec s = t_spec();
    s.max_active = 10;
    s.admit_per_tick = 10;
    uint64_t ev = t_event(e, 0, &s);
    uint64_t u[5];
    t_users(e, 5, u);
    for (int i = 0; i < 5; i++) {
        join(e, 0, u[i], ev);
    }
    struct br_outcome o = admit(e, 1, ev);
    assert_int_equal(o.count, 3);
    assert_int_equal(o.queue_length, 2);
    assert_int_equal(admit(e, 5000, ev).count, 0); /* passes are not reused after expiry */
    assert_int_equal(view(e, ev, u[3]).status, BR_QS_WAITING);
    t_engine_free(e);
}

/* ---- passes ---- */

static void test_pass_is_valid_one_ms_before_its_deadline(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    struct br_event_spec s = queued_spec();
    s.sale_opens_at_ms = 0;
    uint64_t ev = t_event(e, 0, &s);
    uint64_t u = t_user(e, 0, "a@t");
    uint64_t pass = t_pass(e, 500, u, ev);
    int64_t deadline = 500 + s.pass_ttl_ms;
    struct br_cmd c = c_reserve(deadline - 1, u, ev, 1, 1, pass, 0);
    struct br_outcome o;
    apply_expect(e, &c, BR_OK, &o);
    assert_int_equal(o.ref, pass);
    assert_int_equal(view(e, ev, u).status, BR_QS_USED);
    t_engine_free(e);
}

static void test_pass_expires_exactly_at_its_deadline(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    struct br_event_spec s = queued_spec();
    s.sale_opens_at_ms = 0;
    uint64_t ev = t_event(e, 0, &s);
    uint64_t u = t_user(e, 0, "a@t");
    uint64_t pass = t_pass(e, 500, u, ev);
    int64_t deadline = 500 + s.pass_ttl_ms;
    struct br_cmd c = c_reserve(deadline, u, ev, 1, 1, pass, 0);
    apply_expect(e, &c, BR_E_PASS_EXPIRED, NULL);
    assert_int_equal(t_available(e, ev, 1), 10);
    t_engine_free(e);
}

static void test_admit_at_the_deadline_expires_the_pass_and_frees_its_slot(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    struct br_event_spec s = queued_spec();
    s.sale_opens_at_ms = 0;
    s.max_active = 1;
    uint64_t ev = t_event(e, 0, &s);
    uint64_t u[2];
    t_users(e, 2, u);
    uint64_t pass = t_pass(e, 500, u[0], ev);
    join(e, 501, u[1], ev);
    int64_t deadline = 500 + s.pass_ttl_ms;
    struct br_outcome o = admit(e, deadline - 1, ev);
    assert_int_equal(o.count, 0);
    assert_int_equal(t_effect_count(e, BR_FX_PASS_EXPIRED), 0);
    o = admit(e, deadline, ev);
    assert_int_equal(t_effect_count(e, BR_FX_PASS_EXPIRED), 1);
    const struct br_effect *fx = t_effect(e, BR_FX_PASS_EXPIRED);
    assert_int_equal(fx->id, pass);
    assert_int_equal(fx->user_id, u[0]);
    assert_int_equal(o.count, 1); /* the freed slot goes to the next in line at once */
    assert_int_equal(view(e, ev, u[0]).status, BR_QS_EXPIRED);
    assert_int_equal(view(e, ev, u[1]).status, BR_QS_ADMITTED);
    assert_int_equal(br_catalog_event(e, ev)->passes_active, 1);
    struct br_cmd c = c_reserve(deadline, u[0], ev, 1, 1, pass, 0);
    apply_expect(e, &c, BR_E_PASS_EXPIRED, NULL);
    t_engine_free(e);
}

static void test_pass_consumed_twice_is_invalid_the_second_time(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    struct br_event_spec s = queued_spec();
    s.sale_opens_at_ms = 0;
    uint64_t ev = t_event(e, 0, &s);
    uint64_t u = t_user(e, 0, "a@t");
    uint64_t pass = t_pass(e, 0, u, ev);
    struct br_cmd c = c_reserve(1, u, ev, 1, 1, pass, 1001);
    apply_expect(e, &c, BR_OK, NULL);
    c = c_reserve(2, u, ev, 1, 1, pass, 1002); /* same pass, another idempotency key */
    apply_expect(e, &c, BR_E_PASS_INVALID, NULL);
    c = c_reserve(2, u, ev, 1, 1, pass, 0);
    apply_expect(e, &c, BR_E_PASS_INVALID, NULL);
    assert_int_equal(t_tickets(e, ev, u), 1);
    assert_int_equal(t_available(e, ev, 1), 9);
    t_engine_free(e);
}

static void test_pass_of_another_user_or_event_is_invalid(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    struct br_event_spec s = queued_spec();
    s.sale_opens_at_ms = 0;
    uint64_t ev1 = t_event(e, 0, &s);
    uint64_t ev2 = t_event(e, 0, &s);
    uint64_t u[2];
    t_users(e, 2, u);
    uint64_t pass1 = t_pass(e, 0, u[0], ev1);
    t_pass(e, 0, u[0], ev2);
    struct br_cmd c = c_reserve(1, u[1], ev1, 1, 1, pass1, 0); /* another user */
    apply_expect(e, &c, BR_E_PASS_INVALID, NULL);
    c = c_reserve(1, u[0], ev2, 1, 1, pass1, 0); /* another event */
    apply_expect(e, &c, BR_E_PASS_INVALID, NULL);
    c = c_reserve(1, u[0], ev1, 1, 1, pass1 + 100, 0); /* unknown */
    apply_expect(e, &c, BR_E_PASS_INVALID, NULL);
    c = c_reserve(1, u[0], ev1, 1, 1, 0, 0); /* none */
    apply_expect(e, &c, BR_E_PASS_REQUIRED, NULL);
    /* The rightful owner still uses it. */
    c = c_reserve(1, u[0], ev1, 1, 1, pass1, 0);
    apply_expect(e, &c, BR_OK, NULL);
    t_engine_free(e);
}

static void test_failed_reserve_does_not_consume_the_pass(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    struct br_event_spec s = queued_spec();
    s.sale_opens_at_ms = 0;
    uint64_t ev = t_event(e, 0, &s);
    uint64_t u = t_user(e, 0, "a@t");
    uint64_t pass = t_pass(e, 0, u, ev);
    struct br_cmd c = c_reserve(1, u, ev, 1, 5, pass, 0); /* over the limit of 4 */
    apply_expect(e, &c, BR_E_LIMIT_EXCEEDED, NULL);
    c = c_reserve(1, u, ev, 1, 11, pass, 0);
    apply_expect(e, &c, BR_E_LIMIT_EXCEEDED, NULL);
    assert_int_equal(view(e, ev, u).status, BR_QS_ADMITTED);
    c = c_reserve(2, u, ev, 1, 4, pass, 0);
    apply_expect(e, &c, BR_OK, NULL);
    t_engine_free(e);
}

static void test_wait_estimate_counts_ticks_and_the_time_to_the_opening(void **state)
{
    (void)state;
    struct br_event_spec sp;
    br_event_spec_default(&sp, 10000);
    sp.admit_per_tick = 10;
    /* Open: position 1..10 go in the next tick, 11 in the second. */
    assert_int_equal(br_queue_wait_estimate_s(&sp, 1, 1000, 20000), 1);
    assert_int_equal(br_queue_wait_estimate_s(&sp, 10, 1000, 20000), 1);
    assert_int_equal(br_queue_wait_estimate_s(&sp, 11, 1000, 20000), 2);
    assert_int_equal(br_queue_wait_estimate_s(&sp, 25, 250, 20000), 1);
    /* Before the opening the wait until it is added (4 s + one tick). */
    assert_int_equal(br_queue_wait_estimate_s(&sp, 5, 1000, 6000), 5);
    /* Saturates instead of wrapping. */
    sp.admit_per_tick = 1;
    assert_int_equal(br_queue_wait_estimate_s(&sp, UINT32_MAX, UINT32_MAX, 20000), UINT32_MAX);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_join_before_opening_waits_in_the_prequeue_without_position),
        cmocka_unit_test(test_opening_shuffle_gives_every_prequeue_member_a_distinct_position),
        cmocka_unit_test(test_opening_shuffle_depends_only_on_the_seed),
        cmocka_unit_test(test_joins_after_opening_are_fifo_behind_the_prequeue),
        cmocka_unit_test(test_rejoin_keeps_the_place),
        cmocka_unit_test(test_rejoin_in_the_prequeue_keeps_the_place),
        cmocka_unit_test(test_rejoin_while_admitted_keeps_the_pass),
        cmocka_unit_test(test_rejoin_after_the_pass_lapsed_expires_it_and_goes_to_the_back),
        cmocka_unit_test(test_leave_then_join_goes_to_the_back),
        cmocka_unit_test(test_leave_while_admitted_gives_the_pass_back),
        cmocka_unit_test(test_leave_when_not_in_queue_is_not_in_queue),
        cmocka_unit_test(test_join_refuses_unknown_events_and_users),
        cmocka_unit_test(test_queue_capacity_counts_joins_over_the_sale),
        cmocka_unit_test(test_refused_rejoin_into_a_full_queue_leaves_the_lapsed_pass_alone),
        cmocka_unit_test(test_member_table_full),
        cmocka_unit_test(test_admit_admits_nobody_before_the_opening),
        cmocka_unit_test(test_admit_admits_min_of_room_and_admit_per_tick),
        cmocka_unit_test(test_admit_is_for_the_system_on_known_events),
        cmocka_unit_test(test_admit_stops_when_the_pass_table_is_full),
        cmocka_unit_test(test_pass_is_valid_one_ms_before_its_deadline),
        cmocka_unit_test(test_pass_expires_exactly_at_its_deadline),
        cmocka_unit_test(test_admit_at_the_deadline_expires_the_pass_and_frees_its_slot),
        cmocka_unit_test(test_pass_consumed_twice_is_invalid_the_second_time),
        cmocka_unit_test(test_pass_of_another_user_or_event_is_invalid),
        cmocka_unit_test(test_failed_reserve_does_not_consume_the_pass),
        cmocka_unit_test(test_wait_estimate_counts_ticks_and_the_time_to_the_opening),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
