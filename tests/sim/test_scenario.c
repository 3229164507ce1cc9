/*
 * test_scenario.c -- the scenario parser, swarm draws and engine sizing
 * (sim/scenario.h), and that every shipped scenario parses.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/catalog.h"
#include "core/err.h"
#include "sim/scenario.h"

#ifndef BR_SCENARIO_DIR
#error "BR_SCENARIO_DIR must name the scenarios/ directory"
#endif

static struct br_scenario scn;

static void test_an_empty_object_gives_the_documented_defaults(void **state)
{
    (void)state;
    char err[256];
    assert_int_equal(br_scenario_parse(&scn, "{}", err, sizeof err), BR_OK);
    assert_int_equal(scn.crowd.users, 1000);
    assert_int_equal(scn.event_count, 1);
    assert_int_equal(scn.events[0].spec.zone_count, 1);
    assert_int_equal(scn.events[0].spec.zones[0].capacity, 400);
    assert_true(scn.events[0].spec.requires_pass);
    assert_int_equal(scn.workers[BR_WORKER_ADMITTER].tick_ms, 250);
    assert_int_equal(scn.drain_max_ms, 7LL * 24 * 3600 * 1000);
    assert_int_equal(scn.seed, 1);
    /* The event's settings are the core's defaults, the API's too. */
    struct br_event_spec d;
    br_event_spec_default(&d, 60000);
    const struct br_event_spec *e = &scn.events[0].spec;
    assert_int_equal(e->sale_opens_at_ms, d.sale_opens_at_ms);
    assert_int_equal(e->starts_at_ms, d.starts_at_ms);
    assert_int_equal(e->per_user_limit, d.per_user_limit);
    assert_int_equal(e->max_active, d.max_active);
    assert_int_equal(e->admit_per_tick, d.admit_per_tick);
    assert_int_equal(e->pass_ttl_ms, d.pass_ttl_ms);
    assert_int_equal(e->hold_ttl_ms, d.hold_ttl_ms);
}

static void test_fields_are_read(void **state)
{
    (void)state;
    char err[256];
    const char *j =
        "{\"name\":\"x\",\"seed\":9,\"events\":[{\"name\":\"E\",\"sale_opens_at_ms\":120000,"
        "\"per_user_limit\":3,\"requires_pass\":false,\"zones\":[{\"name\":\"A\","
        "\"capacity\":5,\"price_minor\":100,\"currency\":\"USD\"},{\"name\":\"B\"}]}],"
        "\"crowd\":{\"users\":50,\"think_ms\":{\"min_ms\":5,\"max_ms\":6},"
        "\"quantity_weights\":[0,1]},\"payments\":{\"decline_rate\":0.5},"
        "\"workers\":{\"saga\":{\"batch\":7,\"crashes_per_hour\":1.5}},"
        "\"capacity\":{\"holds\":11},\"faults\":{\"until_ms\":5,\"clock_skew_ms\":6},"
        "\"drain_max_ms\":10000}";
    assert_int_equal(br_scenario_parse(&scn, j, err, sizeof err), BR_OK);
    assert_string_equal(scn.name, "x");
    assert_int_equal(scn.seed, 9);
    assert_int_equal(scn.events[0].spec.sale_opens_at_ms, 120000);
    assert_int_equal(scn.events[0].spec.per_user_limit, 3);
    assert_false(scn.events[0].spec.requires_pass);
    assert_int_equal(scn.events[0].spec.zone_count, 2);
    assert_string_equal(scn.events[0].spec.zones[0].currency, "USD");
    assert_int_equal(scn.events[0].spec.zones[1].capacity, 100); /* a zone's default */
    assert_int_equal(scn.crowd.users, 50);
    assert_int_equal(scn.crowd.think_ms.min_ms, 5);
    assert_int_equal(scn.crowd.think_ms.max_ms, 6);
    assert_true(scn.crowd.quantity_weights[0] == 0.0 && scn.crowd.quantity_weights[1] == 1.0);
    assert_true(scn.payments.decline_rate == 0.5);
    assert_int_equal(scn.workers[BR_WORKER_SAGA].batch, 7);
    assert_true(scn.workers[BR_WORKER_SAGA].crashes_per_hour == 1.5);
    assert_int_equal(scn.capacity.holds, 11);
    assert_int_equal(scn.faults_until_ms, 5);
    assert_int_equal(scn.clock_skew_ms, 6);
    assert_int_equal(scn.drain_max_ms, 10000);
}

/* Each bad input is refused, and the message names the field. */
static void expect_error(const char *json, const char *needle)
{
    char err[256];
    int rc = br_scenario_parse(&scn, json, err, sizeof err);
    if (rc != BR_E_INVALID || strstr(err, needle) == NULL) {
        print_error("input %s: rc %d, message \"%s\" lacks \"%s\"\n", json, rc, err, needle);
    }
    assert_int_equal(rc, BR_E_INVALID);
    assert_non_null(strstr(err, needle));
}

static void test_bad_inputs_are_refused_with_the_field_named(void **state)
{
    (void)state;
    expect_error("{\"crowd\":{\"decline_rate\":0.1}}", "crowd.decline_rate: unknown key");
    expect_error("{\"bogus\":1}", "bogus: unknown key");
    expect_error("{\"crowd\":{\"users\":0}}", "crowd.users: out of range");
    expect_error("{\"crowd\":{\"users\":1.5}}", "crowd.users: expected an integer");
    expect_error("{\"payments\":{\"decline_rate\":1.5}}", "payments.decline_rate");
    expect_error("{\"events\":[]}", "events");
    expect_error("{\"events\":[{\"zones\":[{\"currency\":\"eur\"}]}]}", "currency");
    expect_error("{\"events\":[{\"per_user_limit\":65}]}", "events[0].per_user_limit");
    expect_error("{\"events\":[{\"zones\":[{\"name\":\"\"}]}]}", "events[0].zones[0].name");
    expect_error("{\"workers\":{\"cook\":{}}}", "workers.cook");
    expect_error("{\"crowd\":{\"think_ms\":{\"min_ms\":5,\"max_ms\":1}}}", "min_ms > max_ms");
    expect_error("{\"crowd\":{\"quantity_weights\":[0,0]}}", "quantity_weights");
    expect_error("{\"crowd\":{\"early_window_ms\":600000}}", "sale_opens_at_ms");
    expect_error("{\"faults\":{\"until\":5}}", "faults.until");
    expect_error("{\"crowd\":", "JSON error");
    expect_error("{\"seed\":1,\"seed\":2}", "JSON error"); /* duplicate keys */
    expect_error("[1]", "expected an object");
}

static void test_swarm_draws_depend_only_on_the_seed(void **state)
{
    (void)state;
    char err[256];
    assert_int_equal(br_scenario_parse(&scn, "{}", err, sizeof err), BR_OK);
    struct br_scenario a = scn, b = scn, c = scn;
    br_scenario_swarm(&a, 5);
    br_scenario_swarm(&b, 5);
    br_scenario_swarm(&c, 6);
    assert_memory_equal(&a.payments, &b.payments, sizeof a.payments);
    assert_memory_equal(&a.workers, &b.workers, sizeof a.workers);
    assert_true(a.swarm);
    /* Over a few seeds the mixes differ, and some fault is switched off. */
    int differ = 0, off = 0;
    for (uint64_t s = 1; s <= 20; s++) {
        struct br_scenario x = scn;
        br_scenario_swarm(&x, s);
        differ += memcmp(&x.payments, &a.payments, sizeof a.payments) != 0;
        off += x.payments.decline_rate == 0.0;
        assert_true(x.payments.refund_failure_rate <= 0.95);
    }
    assert_true(differ >= 18);
    assert_true(off > 0 && off < 20);
    (void)c;
}

static void test_config_is_sized_from_the_budgets_and_caps(void **state)
{
    (void)state;
    char err[256];
    assert_int_equal(br_scenario_parse(&scn,
                                       "{\"crowd\":{\"users\":100,\"bots\":2,\"bot_requests\":10,"
                                       "\"rejoins_max\":1,\"reserve_attempts_max\":3}}",
                                       err, sizeof err),
                     BR_OK);
    struct br_config cfg;
    br_scenario_config(&scn, 77, &cfg);
    assert_int_equal(cfg.seed, 77);
    assert_int_equal(cfg.users_max, 103);
    /* places: 100 people x 2 + 20 bot requests + 16 */
    assert_int_equal(scn.events[0].spec.queue_capacity, 236);
    assert_int_equal(cfg.queue_slots_max, 236);
    assert_int_equal(cfg.idem_max, 100 * 3 + 20);
    assert_int_equal(cfg.seats_max, 400);
    assert_true(br_engine_memory_size(&cfg) > 0);
    scn.capacity.holds = 50;
    scn.capacity.idem_keys = 100000; /* larger than the worst case: ignored */
    br_scenario_config(&scn, 77, &cfg);
    assert_int_equal(cfg.holds_max, 50);
    assert_int_equal(cfg.idem_max, 320);
}

static void test_users_split_over_events_by_weight(void **state)
{
    (void)state;
    char err[256];
    const char *j = "{\"crowd\":{\"users\":1000},\"events\":[{\"name\":\"a\",\"weight\":3},"
                    "{\"name\":\"b\",\"weight\":1}]}";
    assert_int_equal(br_scenario_parse(&scn, j, err, sizeof err), BR_OK);
    assert_int_equal(br_scenario_event_users(&scn, 0), 750);
    assert_int_equal(br_scenario_event_users(&scn, 1), 250);
}

static void test_every_shipped_scenario_parses(void **state)
{
    (void)state;
    static const char *const names[] = {"onsale-100k",   "onsale-1m",      "last-seat",
                                        "webhook-chaos", "worker-crashes", "presale-shuffle"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char path[512], err[600];
        snprintf(path, sizeof path, "%s/%s.json", BR_SCENARIO_DIR, names[i]);
        int rc = br_scenario_load(&scn, path, err, sizeof err);
        if (rc != BR_OK) {
            print_error("%s\n", err);
        }
        assert_int_equal(rc, BR_OK);
        assert_string_equal(scn.name, names[i]);
        struct br_config cfg;
        br_scenario_config(&scn, 1, &cfg);
        assert_true(br_engine_memory_size(&cfg) > 0);
    }
    char err[600];
    assert_int_equal(br_scenario_load(&scn, "/nonexistent.json", err, sizeof err), BR_E_IO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_an_empty_object_gives_the_documented_defaults),
        cmocka_unit_test(test_fields_are_read),
        cmocka_unit_test(test_bad_inputs_are_refused_with_the_field_named),
        cmocka_unit_test(test_swarm_draws_depend_only_on_the_seed),
        cmocka_unit_test(test_config_is_sized_from_the_budgets_and_caps),
        cmocka_unit_test(test_users_split_over_events_by_weight),
        cmocka_unit_test(test_every_shipped_scenario_parses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
