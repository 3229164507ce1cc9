/*
 * test_rush_report.c -- the rush's report (server/rush_report.h) over a fixed
 * synthetic result fed through the meter (server/rush_meter.h): the JSON has
 * every documented key (design §4.5; 78-rush.sh and the bench read them with
 * jq) with the values the inputs fix, a latency with no samples is null, and
 * the text carries the verdict line, OK or VIOLATED with the first violation.
 */
#define _POSIX_C_SOURCE 200809L

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "server/rush_report.h"

/* Until rush_verdict.c defines it on this branch: the same names from the same table
 * (rush_verdict.h). */
#define NAME_ENTRY(n) #n,
__attribute__((weak)) const char *br_rush_check_name(unsigned check)
{
    static const char *const names[BR_RUSH_CHECK_COUNT] = {BR_RUSH_CHECK_MAP(NAME_ENTRY)};
    return check < BR_RUSH_CHECK_COUNT ? names[check] : "UNKNOWN";
}

#define T0 1000000
#define RESERVE "POST /api/v1/bookings/reserve"

struct fixture {
    struct br_rush_config cfg;
    struct br_rush_ledger ledger;
    struct br_rush_verdict verdict;
    struct br_rush_meter *meter;
    struct br_rush_result result;
};

/* An answer sent at sent_us after waiting queued_us for a connection. */
static void request_q(struct br_rush_meter *m, uint8_t route, int status, int err, int64_t sent_us,
                      int64_t lat_us, int64_t queued_us, const char *code)
{
    struct br_rush_resp r = {.status = status,
                             .err = err,
                             .route = route,
                             .queued_us = queued_us,
                             .sent_us = sent_us,
                             .done_us = sent_us + lat_us};
    br_rush_meter_request(m, &r, code);
}

static void request(struct br_rush_meter *m, uint8_t route, int status, int err, int64_t sent_us,
                    int64_t lat_us, const char *code)
{
    request_q(m, route, status, err, sent_us, lat_us, 50, code);
}

/* Latencies are bucket upper bounds (2^k - 1, 3 * 2^k - 1), so the quantiles are exact. */
static void feed(struct br_rush_meter *m)
{
    static const int64_t lat[14] = {1023, 1023, 1023,  1023, 1023, 2047, 2047,
                                    2047, 8191, 12287, 1023, 1023, 1023, 2047};
    for (int i = 0; i < 15; i++) {
        int64_t sent = T0 + i * 100000;
        /* Reserve 4 waited 6143 us for a connection: the spike window counts the
         * wait (1023 + 6143 = 7166 us, its maximum), the route's latency does not. */
        int64_t queued = i == 4 ? 6143 : 0;
        if (i < 10) {
            request_q(m, BR_RR_RESERVE, 201, 0, sent, lat[i], queued, NULL);
        } else if (i < 13) {
            request_q(m, BR_RR_RESERVE, 409, 0, sent, lat[i], queued, "SOLD_OUT");
        } else if (i == 13) {
            request_q(m, BR_RR_RESERVE, 403, 0, sent, lat[i], queued, "PASS_INVALID");
        } else {
            request_q(m, BR_RR_RESERVE, 0, BR_RUSH_NET_TIMEOUT, sent, 10000000, queued, NULL);
        }
    }
    for (int i = 0; i < 5; i++) {
        request(m, BR_RR_JOIN, 200, 0, T0 + i * 1000, 511, NULL);
    }
    request(m, BR_RR_JOIN, 503, 0, T0, 511, "OVERLOADED");
    br_rush_meter_window(m, BR_RUSH_WIN_SPIKE, T0, T0 + 500000);            /* reserves 0..4 */
    br_rush_meter_window(m, BR_RUSH_WIN_STORM, T0 + 1000000, T0 + 1200000); /* reserves 10, 11 */
    br_rush_meter_pass(m, 3, false);
    br_rush_meter_pass(m, 11, false);
    br_rush_meter_pass(m, 19, false);
    br_rush_meter_pass(m, -5, false); /* clamped to 0 */
    br_rush_meter_pass(m, 3100, true);
    br_rush_meter_storm_login(m, 503, 1000, true);
    br_rush_meter_storm_login(m, 503, 1000, true);
    br_rush_meter_storm_login(m, 200, 400000, false);
    br_rush_meter_storm_login(m, 200, 400000, false);
    br_rush_meter_storm_login(m, 401, 300000, false);
    br_rush_meter_storm_login(m, 0, 0, false);
    struct br_rush_server_sample s = {
        .rss_bytes = 64172032.0, .vmhwm_bytes = 66060288.0, .open_fds = 412, .sse_streams = 301};
    br_rush_meter_server(m, 0, &s);
    s.rss_bytes = 1000.0;
    s.sse_streams = 10;
    br_rush_meter_server(m, 0, &s); /* peaks stay */
    br_rush_meter_streams(m, 290);
    br_rush_meter_streams(m, 3);
    br_rush_meter_retried_closed(m, 7);
}

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    fx->cfg.scenario_path = "scenarios/rush-ci.json";
    fx->cfg.seed = 1;
    fx->cfg.target_count = 1;
    snprintf(fx->cfg.targets[0], sizeof fx->cfg.targets[0], "http://127.0.0.1:41733");
    fx->cfg.login_storm = 50;
    fx->cfg.open_in_ms = 3000;
    fx->ledger.event_count = 1;
    fx->ledger.crowd_count = 300;
    fx->ledger.user_count = 350;
    fx->ledger.streams_lost = 2;
    struct br_rush_event *ev = &fx->ledger.events[0];
    ev->id = 2;
    ev->owned = true;
    ev->requires_pass = true;
    ev->per_user_limit = 4;
    ev->pass_ttl_ms = 10000;
    ev->hold_ttl_ms = 8000;
    ev->zone_count = 2;
    ev->capacity[0] = 60;
    ev->capacity[1] = 70;
    fx->verdict.admissions = 257;
    fx->verdict.admissions_listening = 250;
    fx->verdict.passes_received = 250;
    fx->verdict.silent_admitted = 7;
    fx->verdict.shuffle_evaluated = true;
    fx->verdict.shuffle_agree = 0.5;
    assert_int_equal(br_rush_meter_new(&fx->meter, T0), 0);
    feed(fx->meter);
    fx->result = (struct br_rush_result){.cfg = &fx->cfg,
                                         .ledger = &fx->ledger,
                                         .meter = fx->meter,
                                         .verdict = &fx->verdict,
                                         .phase_s = {2.5, 10.0, 0.5, 1.0},
                                         .backend = "embedded",
                                         .reproduce = "bookingrush rush x --seed 1"};
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    br_rush_meter_free(fx->meter);
    free(fx);
    return 0;
}

/* The value at a dotted path ("passes.direct.p99_ms"); fails the test when a key is missing. */
static json_t *at(json_t *root, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    json_t *v = root;
    for (char *save = NULL, *k = strtok_r(buf, ".", &save); k != NULL;
         k = strtok_r(NULL, ".", &save)) {
        json_t *next = json_is_object(v) ? json_object_get(v, k) : NULL;
        if (next == NULL) {
            fail_msg("JSON report: no key \"%s\" (path %s)", k, path);
        }
        v = next;
    }
    return v;
}

static void num_is(json_t *root, const char *path, double want)
{
    json_t *v = at(root, path);
    if (!json_is_number(v)) {
        fail_msg("%s is not a number", path);
    }
    double got = json_number_value(v);
    if (got < want - 1e-9 || got > want + 1e-9) {
        fail_msg("%s = %.6f, want %.6f", path, got, want);
    }
}

static void null_is(json_t *root, const char *path)
{
    if (!json_is_null(at(root, path))) {
        fail_msg("%s is not null", path);
    }
}

static const char *const DOCUMENTED[] = {
    "rush",
    "scenario",
    "seed",
    "targets",
    "backend",
    "users",
    "storm",
    "events",
    "phases_s.prepare",
    "phases_s.crowd",
    "phases_s.settle",
    "phases_s.verdict",
    "routes",
    "windows.spike.reserve.n",
    "windows.spike.reserve.p50_ms",
    "windows.spike.reserve.p99_ms",
    "windows.spike.reserve.max_ms",
    "windows.storm.reserve.n",
    "windows.spike.reserve_arrived.p99_ms",
    "windows.storm.reserve_arrived.n",
    "windows.storm.logins.sent",
    "windows.storm.logins.ok",
    "windows.storm.logins.overloaded",
    "windows.storm.logins.p99_ms",
    "passes.admissions",
    "passes.admissions_listening",
    "passes.received",
    "passes.delivery_ratio",
    "passes.silent_admitted",
    "passes.unattributed",
    "passes.left_while_waiting",
    "passes.received_leaving",
    "passes.final_unread",
    "passes.direct.n",
    "passes.direct.p50_ms",
    "passes.direct.p99_ms",
    "passes.direct.max_ms",
    "passes.reconnected.n",
    "passes.reconnected.p99_ms",
    "passes.clamped",
    "passes.clock",
    "errors.by_status",
    "errors.by_code",
    "errors.timeouts",
    "errors.retried_closed",
    "errors.streams_lost",
    "server.rss_peak_bytes",
    "server.vmhwm_bytes",
    "server.open_fds_peak",
    "server.sse_streams_peak",
    "client.cpu_s",
    "client.rss_peak_bytes",
    "client.streams_peak",
    "verdict.ok",
    "verdict.checks",
    "verdict.violations",
    "verdict.counts",
    "reproduce",
};
static const char *const ROUTE_KEYS[] = {"n",      "rps",           "p50_ms", "p90_ms", "p99_ms",
                                         "max_ms", "queued_p99_ms", "status", "codes"};

static void test_json_has_every_documented_key_and_value(void **state)
{
    struct fixture *fx = *state;
    json_t *j = br_rush_report_json(&fx->result);
    assert_non_null(j);
    for (size_t i = 0; i < sizeof DOCUMENTED / sizeof DOCUMENTED[0]; i++) {
        (void)at(j, DOCUMENTED[i]);
    }
    json_t *reserve = json_object_get(at(j, "routes"), RESERVE);
    assert_non_null(reserve);
    for (size_t i = 0; i < sizeof ROUTE_KEYS / sizeof ROUTE_KEYS[0]; i++) {
        (void)at(reserve, ROUTE_KEYS[i]);
    }
    num_is(j, "rush", 1);
    assert_string_equal(json_string_value(at(j, "scenario")), "rush-ci");
    num_is(j, "seed", 1);
    assert_string_equal(json_string_value(json_array_get(at(j, "targets"), 0)),
                        "http://127.0.0.1:41733");
    assert_string_equal(json_string_value(at(j, "backend")), "embedded");
    num_is(j, "users", 300);
    num_is(j, "storm", 50);
    json_t *ev = json_array_get(at(j, "events"), 0);
    num_is(ev, "id", 2);
    assert_true(json_is_true(at(ev, "requires_pass")));
    num_is(ev, "per_user_limit", 4);
    num_is(ev, "pass_ttl_ms", 10000);
    num_is(json_array_get(at(ev, "zones"), 1), "id", 2);
    num_is(json_array_get(at(ev, "zones"), 1), "capacity", 70);
    num_is(j, "phases_s.crowd", 10.0);
    /* reserve: 14 answered, sorted 1023 x8, 2047 x4, 8191, 12287 us; one timeout */
    num_is(reserve, "n", 15);
    num_is(reserve, "rps", 1.5);
    num_is(reserve, "p50_ms", 1.023);
    num_is(reserve, "p90_ms", 8.191);
    num_is(reserve, "p99_ms", 12.287);
    num_is(reserve, "max_ms", 12.287);
    num_is(reserve, "queued_p99_ms", 6.143);
    num_is(reserve, "status.201", 10);
    num_is(reserve, "status.409", 3);
    num_is(reserve, "status.403", 1);
    num_is(reserve, "status.0", 1);
    num_is(reserve, "codes.SOLD_OUT", 3);
    num_is(reserve, "codes.PASS_INVALID", 1);
    num_is(reserve, "codes.TIMEOUT", 1);
    num_is(at(j, "routes"), "POST /api/v1/queue/join.n", 6);
    num_is(j, "windows.spike.reserve.n", 5);
    num_is(j, "windows.spike.reserve.p50_ms", 1.023);
    num_is(j, "windows.spike.reserve.p99_ms", 7.166); /* reserve 4's wait for a connection counts */
    num_is(j, "windows.storm.reserve.n", 2);
    num_is(j, "windows.storm.logins.sent", 4);
    num_is(j, "windows.storm.logins.ok", 2);
    num_is(j, "windows.storm.logins.overloaded", 2);
    num_is(j, "windows.storm.logins.p99_ms", 400.0);
    num_is(j, "passes.admissions", 257);
    num_is(j, "passes.admissions_listening", 250);
    num_is(j, "passes.received", 250);
    num_is(j, "passes.delivery_ratio", 1.0);
    num_is(j, "passes.silent_admitted", 7);
    num_is(j, "passes.unattributed", 0);
    num_is(j, "passes.left_while_waiting", 0);
    num_is(j, "passes.received_leaving", 0);
    num_is(j, "passes.final_unread", 0);
    num_is(j, "passes.direct.n", 4);
    num_is(j, "passes.direct.p50_ms", 3.007);
    num_is(j, "passes.direct.p99_ms", 19.0);
    num_is(j, "passes.direct.max_ms", 19.0);
    num_is(j, "passes.reconnected.n", 1);
    num_is(j, "passes.reconnected.p99_ms", 3100.0);
    num_is(j, "passes.clamped", 1);
    assert_string_equal(json_string_value(at(j, "passes.clock")), "local");
    num_is(j, "errors.by_status.409", 3);
    num_is(j, "errors.by_status.503", 1);
    num_is(j, "errors.by_status.0", 1);
    assert_null(json_object_get(at(j, "errors.by_status"), "201"));
    num_is(j, "errors.by_code.SOLD_OUT", 3);
    num_is(j, "errors.by_code.OVERLOADED", 1);
    num_is(j, "errors.timeouts", 1);
    num_is(j, "errors.retried_closed", 7);
    num_is(j, "errors.streams_lost", 2);
    num_is(j, "server.rss_peak_bytes", 64172032);
    num_is(j, "server.vmhwm_bytes", 66060288);
    num_is(j, "server.open_fds_peak", 412);
    num_is(j, "server.sse_streams_peak", 301);
    num_is(j, "client.streams_peak", 290);
    assert_true(json_number_value(at(j, "client.cpu_s")) >= 0);
    assert_true(json_number_value(at(j, "client.rss_peak_bytes")) > 0);
    assert_true(json_is_true(at(j, "verdict.ok")));
    assert_int_equal(json_array_size(at(j, "verdict.checks")), BR_RUSH_CHECK_COUNT);
    assert_string_equal(
        json_string_value(json_array_get(at(j, "verdict.checks"), BR_RUSH_CHECK_PASS_ORDER)),
        "PASS_ORDER");
    assert_int_equal(json_array_size(at(j, "verdict.violations")), 0);
    num_is(j, "verdict.counts.IDEMPOTENCY", 0);
    assert_true(json_is_true(at(j, "verdict.shuffle_evaluated")));
    assert_string_equal(json_string_value(at(j, "reproduce")), "bookingrush rush x --seed 1");
    json_decref(j);
}

static void test_json_violation_entries(void **state)
{
    struct fixture *fx = *state;
    fx->verdict.counts[BR_RUSH_CHECK_PASS_ORDER] = 4;
    fx->verdict.listed = 1;
    fx->verdict.v[0] = (struct br_rush_violation){.check = BR_RUSH_CHECK_PASS_ORDER,
                                                  .zone_id = 0,
                                                  .event_id = 2,
                                                  .user_id = 17,
                                                  .booking_id = 0};
    snprintf(fx->verdict.v[0].message, sizeof fx->verdict.v[0].message,
             "user 17 admitted after user 42");
    json_t *j = br_rush_report_json(&fx->result);
    assert_non_null(j);
    assert_true(json_is_false(at(j, "verdict.ok")));
    num_is(j, "verdict.counts.PASS_ORDER", 4);
    json_t *v = json_array_get(at(j, "verdict.violations"), 0);
    assert_non_null(v);
    assert_string_equal(json_string_value(at(v, "invariant")), "PASS_ORDER");
    assert_string_equal(json_string_value(at(v, "message")), "user 17 admitted after user 42");
    num_is(v, "event", 2);
    num_is(v, "user", 17);
    num_is(v, "zone", 0);
    num_is(v, "booking", 0);
    json_decref(j);
}

static void test_latency_without_samples_is_null(void **state)
{
    (void)state;
    struct br_rush_meter *m = NULL;
    assert_int_equal(br_rush_meter_new(&m, T0), 0);
    struct br_rush_config cfg = {.target_count = 1};
    snprintf(cfg.targets[0], sizeof cfg.targets[0], "http://10.0.0.5:8080");
    struct br_rush_result r = {.cfg = &cfg, .meter = m};
    request(m, BR_RR_JOIN, 0, BR_RUSH_NET_CONNECT, T0, 0, NULL); /* a route with only a failure */
    json_t *j = br_rush_report_json(&r);
    assert_non_null(j);
    null_is(j, "windows.spike.reserve.p99_ms");
    null_is(j, "windows.storm.logins.p99_ms");
    null_is(j, "passes.direct.p50_ms");
    null_is(j, "passes.reconnected.p99_ms");
    null_is(j, "passes.delivery_ratio");
    null_is(j, "server.rss_peak_bytes");
    null_is(j, "verdict");
    null_is(j, "reproduce");
    num_is(j, "windows.spike.reserve.n", 0);
    json_t *join = json_object_get(at(j, "routes"), "POST /api/v1/queue/join");
    assert_non_null(join);
    num_is(join, "n", 1);
    null_is(join, "p99_ms");
    null_is(join, "rps");
    num_is(join, "codes.CONNECT", 1);
    assert_string_equal(json_string_value(at(j, "passes.clock")), "remote");
    json_decref(j);
    br_rush_meter_free(m);
}

static char *text_of(const struct br_rush_result *r)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    assert_int_equal(br_rush_report_text(f, r), 0);
    fclose(f);
    return buf;
}

/* A reserve the rush read 30 ms after its kernel had it: the windows' arrived
 * figures leave that delay out, the read figures and the route keep it, and an
 * answer without a kernel time (arrived_us 0) counts as read in both. */
static void test_arrived_leaves_out_the_rush_delay(void **state)
{
    (void)state;
    struct br_rush_meter *m = NULL;
    assert_int_equal(br_rush_meter_new(&m, T0), 0);
    struct br_rush_config cfg = {.target_count = 1};
    snprintf(cfg.targets[0], sizeof cfg.targets[0], "http://127.0.0.1:8080");
    struct br_rush_result r = {.cfg = &cfg, .meter = m};
    struct br_rush_resp late = {.status = 201, .route = BR_RR_RESERVE, .queued_us = 0,
                                .sent_us = T0 + 1000, .arrived_us = T0 + 1000 + 2047,
                                .done_us = T0 + 1000 + 2047 + 30000};
    br_rush_meter_request(m, &late, NULL);
    struct br_rush_resp unknown = {.status = 201, .route = BR_RR_RESERVE, .queued_us = 1023,
                                   .sent_us = T0 + 2000, .done_us = T0 + 2000 + 1023};
    br_rush_meter_request(m, &unknown, NULL);
    br_rush_meter_window(m, BR_RUSH_WIN_SPIKE, T0, T0 + 1000000);
    json_t *j = br_rush_report_json(&r);
    assert_non_null(j);
    num_is(j, "windows.spike.reserve.n", 2);
    num_is(j, "windows.spike.reserve.max_ms", 32.047);
    num_is(j, "windows.spike.reserve_arrived.n", 2);
    num_is(j, "windows.spike.reserve_arrived.max_ms", 2.047); /* 2.047 > 1.023 + 1.023 */
    json_t *route = json_object_get(at(j, "routes"), RESERVE);
    assert_non_null(route);
    num_is(route, "max_ms", 32.047);
    json_decref(j);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    assert_int_equal(br_rush_report_text(f, &r), 0);
    fclose(f);
    assert_non_null(strstr(text, "the answer's arrival"));
    free(text);
    br_rush_meter_free(m);
}

static void test_text_has_the_verdict_line(void **state)
{
    struct fixture *fx = *state;
    char *t = text_of(&fx->result);
    if (strstr(t, "\nverdict: OK (11 checks: OVERSELL STATS_MISMATCH") == NULL ||
        strstr(t, "IDEMPOTENCY)") == NULL || strstr(t, RESERVE) == NULL ||
        strstr(t, "409 SOLD_OUT 3") == NULL || strstr(t, "passes: received 250 of 250") == NULL ||
        strstr(t, "reproduce: bookingrush rush x --seed 1\n") == NULL ||
        strstr(t, "admissions no user saw") != NULL) {
        fail_msg("text report:\n%s", t);
    }
    free(t);
    /* Admissions nobody saw get their own line, and the leave race's bound. */
    fx->verdict.unattributed = 3;
    fx->verdict.left_while_waiting = 5;
    t = text_of(&fx->result);
    if (strstr(t, "passes: 3 admissions no user saw (5 users left by DELETE while waiting") ==
            NULL ||
        strstr(t, "unexplained") != NULL) {
        fail_msg("text report:\n%s", t);
    }
    free(t);
    fx->verdict.left_while_waiting = 2;
    t = text_of(&fx->result);
    if (strstr(t, "; 0 users' final position unread; more than those is unexplained)") == NULL) {
        fail_msg("text report:\n%s", t);
    }
    free(t);
    fx->verdict.final_unread = 1; /* 2 + 1 explain 3 */
    t = text_of(&fx->result);
    if (strstr(t, "1 users' final position unread)") == NULL || strstr(t, "unexplained") != NULL) {
        fail_msg("text report:\n%s", t);
    }
    free(t);
    fx->verdict.unattributed = fx->verdict.left_while_waiting = fx->verdict.final_unread = 0;
    fx->verdict.counts[BR_RUSH_CHECK_PASS_ORDER] = 4;
    fx->verdict.counts[BR_RUSH_CHECK_OVERSELL] = 1;
    fx->verdict.listed = 1;
    fx->verdict.v[0].check = BR_RUSH_CHECK_PASS_ORDER;
    snprintf(fx->verdict.v[0].message, sizeof fx->verdict.v[0].message,
             "user 17 admitted after user 42");
    t = text_of(&fx->result);
    if (strstr(t, "\nverdict: VIOLATED PASS_ORDER: user 17 admitted after user 42; 4 more\n") ==
            NULL ||
        strstr(t, "violated: OVERSELL 1 PASS_ORDER 4") == NULL) {
        fail_msg("text report:\n%s", t);
    }
    free(t);
}

static void test_progress_line_once_a_second(void **state)
{
    struct fixture *fx = *state;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    struct br_rush_progress p = {.held = 9, .paid = 4};
    br_rush_meter_tick(fx->meter, T0 + 500000, &p, f);  /* not a second yet */
    br_rush_meter_tick(fx->meter, T0 + 2100000, &p, f); /* second 2: one line */
    br_rush_meter_tick(fx->meter, T0 + 2900000, &p, f); /* same second: nothing */
    fclose(f);
    /* one line; second 1 answered reserves 10..13 (14 timed out): 4 req/s; their p99 12 ms is in
     * the last 5 s; the top error pair is 409 SOLD_OUT */
    const char *want = "rush: 2s queue 0 admitted 0 passes 5/0 held 9 sold 4 streams 3 | 4 req/s "
                       "reserve p99(5s) 12ms ";
    if (strncmp(buf, want, strlen(want)) != 0 || strstr(buf, "| err 409:SOLD_OUT=3 ") == NULL ||
        strchr(buf, '\n') != buf + len - 1) {
        fail_msg("progress: %s", buf);
    }
    free(buf);
}

static void test_error_code_from_the_body(void **state)
{
    (void)state;
    char buf[BR_RUSH_CODE_MAX], small[5];
    const char *b1 = "{\"error\":{\"code\":\"SOLD_OUT\",\"message\":\"not enough seats\"}}";
    const char *b2 =
        "{\"error\": {\"message\": \"say \\\"code\\\": x\", \"code\" : \"PASS_INVALID\"}}";
    assert_string_equal(br_rush_error_code(b1, strlen(b1), buf, sizeof buf), "SOLD_OUT");
    assert_string_equal(br_rush_error_code(b2, strlen(b2), buf, sizeof buf), "PASS_INVALID");
    assert_string_equal(br_rush_error_code(b1, strlen(b1), small, sizeof small), "SOLD");
    const char *b3 =
        "{\"error\":{\"message\":\"code\",\"code\":\"OVERLOADED\"}}"; /* "code" as a value first */
    assert_string_equal(br_rush_error_code(b3, strlen(b3), buf, sizeof buf), "OVERLOADED");
    assert_null(br_rush_error_code(b1, 17, buf, sizeof buf)); /* cut before the value */
    assert_null(br_rush_error_code("{\"id\":3,\"code\":\"X\"}", 20, buf,
                                   sizeof buf)); /* not an error body */
    assert_null(br_rush_error_code("<html>", 6, buf, sizeof buf));
    assert_null(br_rush_error_code(NULL, 0, buf, sizeof buf));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_json_has_every_documented_key_and_value, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_json_violation_entries, setup, teardown),
        cmocka_unit_test(test_latency_without_samples_is_null),
        cmocka_unit_test(test_arrived_leaves_out_the_rush_delay),
        cmocka_unit_test_setup_teardown(test_text_has_the_verdict_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_progress_line_once_a_second, setup, teardown),
        cmocka_unit_test(test_error_code_from_the_body),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
