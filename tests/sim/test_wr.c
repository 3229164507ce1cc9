/*
 * test_wr.c -- issue 13's simulator pieces: the scenario parser's waiting-room
 * keys and their errors, and the auditor's I1, M1 and S4 (presence) checks,
 * each fed a hand-written trace that breaks the rule (no engine: the
 * auditor judges what it is shown, so a violating trace needs no bug).
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
#include "core/err.h"
#include "sim/auditor.h"
#include "sim/scenario.h"

#define T0 1767225600000LL
#define OPEN (T0 + 1000)

/* ---- the parser ---- */

static void expect_error(const char *json, const char *needle)
{
    struct br_scenario s;
    char err[256];
    assert_int_equal(br_scenario_parse(&s, json, err, sizeof err), BR_E_INVALID);
    if (strstr(err, needle) == NULL) {
        print_error("error '%s' does not name '%s'\n", err, needle);
        fail();
    }
}

static void sim_wr_parser_errors_name_the_key(void **state)
{
    (void)state;
    expect_error("{\"operator\": [{\"event\": 0, \"mode\": \"paused\"}]}", "at_ms");
    expect_error("{\"operator\": [{\"at_ms\": 5, \"event\": 0}]}", "operator[0]");
    expect_error("{\"operator\": [{\"at_ms\": 5, \"event\": 3, \"mode\": \"open\"}]}", "event");
    expect_error("{\"operator\": [{\"at_ms\": 5, \"event\": 0, \"mode\": \"asleep\"}]}", "mode");
    expect_error("{\"operator\": [{\"at_ms\": 5, \"event\": 0, \"speed\": 1}]}", "speed");
    expect_error("{\"operator\": [{\"at_ms\": 9, \"event\": 0, \"mode\": \"open\"},"
                 "{\"at_ms\": 5, \"event\": 0, \"mode\": \"open\"}]}",
                 "at_ms");
    expect_error("{\"presence\": {\"report_ms\": -1}}", "report_ms");
    expect_error("{\"presence\": {\"every\": 1}}", "every");
    expect_error("{\"door\": {\"bot_pow_bits\": 40}}", "bot_pow_bits");
    expect_error("{\"door\": {\"join_limit\": \"x\"}}", "join_limit");
    expect_error("{\"compare\": 1}", "compare");
    expect_error("{\"crowd\": {\"abandon_share\": 1.5}}", "abandon_share");
    expect_error("{\"events\": [{\"name\": \"e\", \"mode\": \"nope\"}]}", "events[0].mode");
    expect_error("{\"events\": [{\"name\": \"e\", \"inventory_aware\": 1}]}", "inventory_aware");
    expect_error("{\"events\": [{\"name\": \"e\", \"pow_bits\": 29}]}", "pow_bits");
    expect_error("{\"events\": [{\"name\": \"e\", \"presence_ttl_s\": 86401}]}", "presence_ttl_s");
    expect_error("{\"events\": [{\"name\": \"e\", \"admit_per_min\": 600001}]}", "admit_per_min");
}

static void sim_wr_parser_defaults_off_and_keys_read(void **state)
{
    (void)state;
    struct br_scenario s;
    char err[256];
    assert_int_equal(br_scenario_parse(&s, "{}", err, sizeof err), BR_OK);
    const struct br_event_spec *e = &s.events[0].spec;
    assert_int_equal(e->admit_per_min + e->presence_ttl_s + e->pow_bits + e->queue_flags + e->mode,
                     0);
    assert_int_equal(s.operator_count, 0);
    assert_int_equal(s.presence_report_ms, 0);
    assert_false(s.compare);
    assert_true(s.crowd.abandon_share == 0);
    const char *j = "{\"compare\": true, \"presence\": {\"report_ms\": 5000},"
                    "\"door\": {\"bot_pow_bits\": 20, \"join_limit\": 10},"
                    "\"crowd\": {\"abandon_share\": 0.33},"
                    "\"events\": [{\"name\": \"e\", \"admit_per_min\": 600, \"presence_ttl_s\": 30,"
                    " \"pow_bits\": 12, \"inventory_aware\": true, \"mode\": \"paused\"}],"
                    "\"operator\": [{\"at_ms\": 70000, \"event\": 0, \"mode\": \"closed\","
                    " \"max_active\": 5, \"admit_per_min\": 0}]}";
    assert_int_equal(br_scenario_parse(&s, j, err, sizeof err), BR_OK);
    e = &s.events[0].spec;
    assert_int_equal(e->admit_per_min, 600);
    assert_int_equal(e->presence_ttl_s, 30);
    assert_int_equal(e->pow_bits, 12);
    assert_int_equal(e->queue_flags, BR_QF_INVENTORY_AWARE);
    assert_int_equal(e->mode, BR_QM_PAUSED);
    assert_true(s.compare);
    assert_int_equal(s.presence_report_ms, 5000);
    assert_int_equal(s.door.bot_pow_bits, 20);
    assert_int_equal(s.door.join_limit, 10);
    assert_int_equal(s.operator_count, 1);
    assert_int_equal(s.operators[0].set, BR_QSET_MODE | BR_QSET_MAX_ACTIVE | BR_QSET_ADMIT_PER_MIN);
    assert_int_equal(s.operators[0].mode, BR_QM_CLOSED);
    br_scenario_switches_off(&s);
    e = &s.events[0].spec;
    assert_int_equal(e->admit_per_min + e->presence_ttl_s + e->pow_bits + e->queue_flags + e->mode,
                     0);
    assert_int_equal(s.operator_count + (uint32_t)s.presence_report_ms, 0);
    assert_true(s.crowd.abandon_share > 0.3); /* the same crowd */
}

/* ---- the auditor, fed traces by hand ---- */

struct tr {
    struct br_config cfg;
    struct br_auditor *a;
};

static void tr_init(struct tr *t, uint32_t ttl_s, uint8_t flags, uint8_t mode, uint32_t seats)
{
    memset(&t->cfg, 0, sizeof t->cfg);
    t->cfg.queue_capacity_default = 32;
    t->cfg.passes_max = 64;
    t->a = br_auditor_new(&t->cfg, NULL);
    struct br_cmd c = {.type = BR_CMD_EVENT_CREATE, .now_ms = T0};
    br_event_spec_default(&c.u.event_create, OPEN);
    struct br_event_spec *sp = &c.u.event_create;
    snprintf(sp->name, sizeof sp->name, "e");
    sp->requires_pass = true;
    sp->max_active = 10;
    sp->admit_per_tick = 10;
    sp->presence_ttl_s = ttl_s;
    sp->queue_flags = flags;
    sp->mode = mode;
    sp->admit_per_min = 0;
    sp->zone_count = 1;
    sp->zones[0].capacity = seats;
    sp->zones[0].price_minor = 100;
    struct br_outcome o = {.err = BR_OK, .id = 1};
    br_auditor_observe(t->a, &c, &o, NULL, 0);
    for (uint64_t u = 1; u <= 3; u++) {
        struct br_cmd r = {.type = BR_CMD_USER_REGISTER, .now_ms = T0};
        struct br_outcome ro = {.err = BR_OK, .id = u};
        br_auditor_observe(t->a, &r, &ro, NULL, 0);
    }
}

static void tr_join(struct tr *t, int64_t now, uint64_t user, uint32_t position, uint32_t qlen)
{
    struct br_cmd c = {.type = BR_CMD_QUEUE_JOIN, .now_ms = now, .user_id = user};
    c.u.queue_join.event_id = 1;
    struct br_outcome o = {.err = BR_OK, .status = BR_QS_WAITING, .id = 1,
                           .position = position, .queue_length = qlen};
    br_auditor_observe(t->a, &c, &o, NULL, 0);
}

static struct br_effect pass_fx(int64_t now, uint64_t user, uint32_t n)
{
    struct br_effect f = {.kind = BR_FX_PASS_ISSUED, .event_id = 1, .user_id = user,
                          .id = (uint64_t)1 << 32 | n};
    f.deadline_ms = now + BR_EVENT_PASS_TTL_MS_DEFAULT;
    return f;
}

static void tr_admit(struct tr *t, int64_t now, const struct br_effect *fx, uint32_t n,
                     uint32_t count, uint32_t lapsed, uint32_t qlen)
{
    struct br_cmd c = {.type = BR_CMD_ADMIT, .now_ms = now};
    c.u.admit.event_id = 1;
    struct br_outcome o = {.err = BR_OK, .count = count, .ref = lapsed, .queue_length = qlen};
    br_auditor_observe(t->a, &c, &o, fx, n);
}

static void expect_first(struct tr *t, int inv)
{
    const struct br_violation *v = br_auditor_first(t->a);
    assert_non_null(v);
    print_message("caught %s: %s\n", br_inv_name(v->inv), v->msg);
    assert_int_equal(v->inv, inv);
    br_auditor_free(t->a);
}

static void sim_wr_pass_while_paused_is_m1(void **state)
{
    (void)state;
    struct tr t;
    tr_init(&t, 0, 0, BR_QM_PAUSED, 10);
    tr_join(&t, OPEN + 1, 1, 1, 1);
    struct br_effect f = pass_fx(OPEN + 100, 1, 1);
    tr_admit(&t, OPEN + 100, &f, 1, 1, 0, 0);
    expect_first(&t, BR_INV_M1);
}

static void sim_wr_closed_queue_taking_a_place_is_m1(void **state)
{
    (void)state;
    struct tr t;
    tr_init(&t, 0, 0, BR_QM_CLOSED, 10);
    tr_join(&t, OPEN + 1, 1, 1, 1);
    expect_first(&t, BR_INV_M1);
}

static void sim_wr_pass_with_no_seat_is_i1(void **state)
{
    (void)state;
    struct tr t;
    tr_init(&t, 0, BR_QF_INVENTORY_AWARE, BR_QM_OPEN, 1);
    tr_join(&t, OPEN + 1, 1, 1, 1);
    struct br_effect f = pass_fx(OPEN + 100, 1, 1);
    tr_admit(&t, OPEN + 100, &f, 1, 1, 0, 0);
    /* user 1 holds the one seat */
    struct br_cmd r = {.type = BR_CMD_RESERVE, .now_ms = OPEN + 200, .user_id = 1};
    r.u.reserve.event_id = 1;
    r.u.reserve.zone_id = 1;
    r.u.reserve.quantity = 1;
    r.u.reserve.pass_id = f.id;
    struct br_outcome ro = {.err = BR_OK, .status = BR_HOLD_HELD, .id = (uint64_t)1 << 32 | 1,
                            .amount_minor = 100};
    ro.deadline_ms = OPEN + 200 + 600000; /* br_event_spec_default's hold_ttl_ms */
    br_auditor_observe(t.a, &r, &ro, NULL, 0);
    assert_null(br_auditor_first(t.a));
    tr_join(&t, OPEN + 300, 2, 1, 1);
    /* the admit announces seats_held (right), then issues a pass anyway */
    struct br_effect fx[2] = {{.kind = BR_FX_QUEUE_STATE, .event_id = 1, .id = BR_GATE_SEATS_HELD},
                              pass_fx(OPEN + 400, 2, 2)};
    tr_admit(&t, OPEN + 400, fx, 2, 1, 0, 0);
    expect_first(&t, BR_INV_I1);
}

static void sim_wr_a_present_user_lapsed_is_s4(void **state)
{
    (void)state;
    struct tr t;
    tr_init(&t, 30, 0, BR_QM_OPEN, 10);
    tr_join(&t, OPEN + 1, 1, 1, 1);
    struct br_effect f = {.kind = BR_FX_PLACE_LAPSED, .event_id = 1, .user_id = 1,
                          .deadline_ms = OPEN + 1 + 30000};
    tr_admit(&t, OPEN + 10000, &f, 1, 0, 1, 0); /* seen 10 s ago: present */
    expect_first(&t, BR_INV_S4);
}

static void sim_wr_an_absent_user_admitted_is_s4(void **state)
{
    (void)state;
    struct tr t;
    tr_init(&t, 30, 0, BR_QM_OPEN, 10);
    tr_join(&t, OPEN + 1, 1, 1, 1);
    struct br_effect f = pass_fx(OPEN + 40000, 1, 1);
    tr_admit(&t, OPEN + 40000, &f, 1, 1, 0, 0); /* not seen for 40 s */
    expect_first(&t, BR_INV_S4);
}

static void sim_wr_presence_keeps_a_user_and_a_lapse_of_the_absent_passes(void **state)
{
    (void)state;
    struct tr t;
    tr_init(&t, 30, 0, BR_QM_OPEN, 10);
    tr_join(&t, OPEN + 1, 1, 1, 1);
    tr_join(&t, OPEN + 2, 2, 2, 2);
    struct br_cmd p = {.type = BR_CMD_PRESENCE, .now_ms = OPEN + 20000};
    p.u.presence.event_id = 1;
    p.u.presence.count = 1;
    p.u.presence.user_ids[0] = 2;
    struct br_outcome po = {.err = BR_OK, .id = 1, .count = 1, .queue_length = 2};
    br_auditor_observe(t.a, &p, &po, NULL, 0);
    /* at +40 s user 1 (absent) lapses, user 2 (seen at +20 s) gets the pass */
    struct br_effect fx[2] = {{.kind = BR_FX_PLACE_LAPSED, .event_id = 1, .user_id = 1,
                               .deadline_ms = OPEN + 1 + 30000},
                              pass_fx(OPEN + 40000, 2, 1)};
    tr_admit(&t, OPEN + 40000, fx, 2, 1, 1, 0);
    const struct br_violation *v = br_auditor_first(t.a);
    if (v != NULL) {
        print_error("%s: %s\n", br_inv_name(v->inv), v->msg);
    }
    assert_null(v);
    assert_true(br_auditor_checks(t.a, BR_INV_S4) > 0 && br_auditor_checks(t.a, BR_INV_M1) > 0);
    assert_int_equal(br_auditor_wr(t.a)->lapsed, 1);
    br_auditor_free(t.a);
}

/* The gate's NOT_OPEN (WR-SPEC §2 rule 4 as the core reads it): before the
 * opening only while the opening shuffle has not run. A skewed admitter clock
 * stepping back over the opening after the shuffle still admits (as it always
 * did); before the shuffle, a pass is a violation. */
static void sim_wr_clock_back_over_the_opening_after_the_shuffle_admits(void **state)
{
    (void)state;
    struct tr t;
    tr_init(&t, 0, 0, BR_QM_OPEN, 10);
    tr_join(&t, OPEN + 1, 1, 1, 1); /* the shuffle runs */
    struct br_effect f = pass_fx(OPEN - 150, 1, 1);
    tr_admit(&t, OPEN - 150, &f, 1, 1, 0, 0);
    const struct br_violation *v = br_auditor_first(t.a);
    if (v != NULL) {
        print_error("%s: %s\n", br_inv_name(v->inv), v->msg);
    }
    assert_null(v);
    br_auditor_free(t.a);

    tr_init(&t, 0, 0, BR_QM_OPEN, 10);
    struct br_cmd c = {.type = BR_CMD_QUEUE_JOIN, .now_ms = OPEN - 5000, .user_id = 1};
    c.u.queue_join.event_id = 1;
    struct br_outcome o = {.err = BR_OK, .status = BR_QS_PREQUEUE, .id = 1, .position = 1,
                           .queue_length = 1};
    br_auditor_observe(t.a, &c, &o, NULL, 0);
    f = pass_fx(OPEN - 150, 1, 1);
    tr_admit(&t, OPEN - 150, &f, 1, 1, 0, 0); /* no shuffle yet: not open */
    assert_non_null(br_auditor_first(t.a));
    print_message("caught %s: %s\n", br_inv_name(br_auditor_first(t.a)->inv),
                  br_auditor_first(t.a)->msg);
    br_auditor_free(t.a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sim_wr_parser_errors_name_the_key),
        cmocka_unit_test(sim_wr_parser_defaults_off_and_keys_read),
        cmocka_unit_test(sim_wr_pass_while_paused_is_m1),
        cmocka_unit_test(sim_wr_closed_queue_taking_a_place_is_m1),
        cmocka_unit_test(sim_wr_pass_with_no_seat_is_i1),
        cmocka_unit_test(sim_wr_a_present_user_lapsed_is_s4),
        cmocka_unit_test(sim_wr_an_absent_user_admitted_is_s4),
        cmocka_unit_test(sim_wr_presence_keeps_a_user_and_a_lapse_of_the_absent_passes),
        cmocka_unit_test(sim_wr_clock_back_over_the_opening_after_the_shuffle_admits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
