/*
 * rush_report.c -- the rush's report (rush_report.h): the text for a person
 * and the JSON (schema 1) for scripts, both from one struct br_rush_result.
 * The JSON's keys are a contract (scripts/test.d/78-rush.sh and
 * scripts/bench.d/70-rush.sh read them with jq; tests/rush/test_rush_report.c
 * pins them). Every latency is in ms; a latency with no samples is null.
 * Any part of the result may be NULL (a run that stopped early): its
 * sections are then zero or null, never missing.
 */
#include "server/rush_report.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define ROUTE_COL 30 /* the text table's route column, wider for a longer name */

static json_t *ms_or_null(const struct br_rush_hist *h, double q)
{
    if (h == NULL || h->count == 0) {
        return json_null();
    }
    uint64_t us = q >= 1.0 ? h->max_us : br_rush_hist_quantile(h, q);
    return json_real(round((double)us) / 1000.0);
}

static void set_new(json_t *o, const char *k, json_t *v)
{
    json_object_set_new(o, k, v);
}

/* {"n", "p50_ms", "p99_ms", "max_ms"} of a histogram. */
static json_t *lat_json(const struct br_rush_hist *h, bool with_p50)
{
    json_t *o = json_object();
    set_new(o, "n", json_integer(h ? (json_int_t)h->count : 0));
    if (with_p50) {
        set_new(o, "p50_ms", ms_or_null(h, 0.5));
    }
    set_new(o, "p99_ms", ms_or_null(h, 0.99));
    if (with_p50) {
        set_new(o, "max_ms", ms_or_null(h, 1.0));
    }
    return o;
}

static void add_count(json_t *o, const char *k, uint64_t n)
{
    json_t *v = json_object_get(o, k);
    json_int_t had = v ? json_integer_value(v) : 0;
    set_new(o, k, json_integer(had + (json_int_t)n));
}

static const char *scenario_name(const char *path, char *buf, size_t n)
{
    const char *base = path ? strrchr(path, '/') : NULL;
    base = base ? base + 1 : (path ? path : "");
    snprintf(buf, n, "%s", base);
    char *dot = strrchr(buf, '.');
    if (dot != NULL && strcmp(dot, ".json") == 0) {
        *dot = '\0';
    }
    return buf;
}

static bool loopback_target(const char *url)
{
    const char *h = strncmp(url, "http://", 7) == 0 ? url + 7 : url;
    return strncmp(h, "127.", 4) == 0 || strncmp(h, "localhost", 9) == 0 ||
           strncmp(h, "[::1]", 5) == 0;
}

static json_t *events_json(const struct br_rush_ledger *l)
{
    json_t *a = json_array();
    for (uint32_t e = 0; l != NULL && e < l->event_count && e < BR_RUSH_EVENTS_MAX; e++) {
        const struct br_rush_event *ev = &l->events[e];
        json_t *zones = json_array();
        for (uint32_t z = 0; z < ev->zone_count && z < BR_EVENT_ZONES_MAX; z++) {
            json_array_append_new(zones, json_pack("{s:i, s:I}", "id", (int)(z + 1), "capacity",
                                                   (json_int_t)ev->capacity[z]));
        }
        json_array_append_new(
            a, json_pack("{s:I, s:b, s:b, s:I, s:I, s:I, s:o}", "id", (json_int_t)ev->id, "owned",
                         ev->owned, "requires_pass", ev->requires_pass, "per_user_limit",
                         (json_int_t)ev->per_user_limit, "pass_ttl_ms", (json_int_t)ev->pass_ttl_ms,
                         "hold_ttl_ms", (json_int_t)ev->hold_ttl_ms, "zones", zones));
    }
    return a;
}

static json_t *route_json(const struct br_rush_route_view *v, double crowd_s)
{
    json_t *o = json_object(), *status = json_object(), *codes = json_object();
    set_new(o, "n", json_integer((json_int_t)v->n));
    set_new(o, "rps",
            crowd_s > 0 ? json_real(round((double)v->n / crowd_s * 10.0) / 10.0) : json_null());
    set_new(o, "p50_ms", ms_or_null(v->latency, 0.5));
    set_new(o, "p90_ms", ms_or_null(v->latency, 0.9));
    set_new(o, "p99_ms", ms_or_null(v->latency, 0.99));
    set_new(o, "max_ms", ms_or_null(v->latency, 1.0));
    set_new(o, "queued_p99_ms", ms_or_null(v->queued, 0.99));
    for (uint32_t s = 0; s < BR_RUSH_STATUS_MAX; s++) {
        if (v->status[s] > 0) {
            char k[8];
            snprintf(k, sizeof k, "%u", s);
            set_new(status, k, json_integer(v->status[s]));
        }
    }
    for (uint32_t i = 0; i < v->code_count; i++) {
        if (v->codes[i].code[0] != '\0') {
            add_count(codes, v->codes[i].code, v->codes[i].n);
        }
    }
    if (v->codes_other > 0) {
        add_count(codes, "OTHER", v->codes_other);
    }
    set_new(o, "status", status);
    set_new(o, "codes", codes);
    return o;
}

/* routes{} and errors{} together: the errors are the routes' error answers summed. */
static void routes_json(const struct br_rush_result *r, json_t *root)
{
    json_t *routes = json_object(), *by_status = json_object(), *by_code = json_object();
    uint64_t timeouts = 0;
    for (unsigned rt = 0; r->meter != NULL && rt < BR_RR_COUNT; rt++) {
        struct br_rush_route_view v;
        br_rush_meter_route_view(r->meter, rt, &v);
        if (v.n == 0) {
            continue;
        }
        set_new(routes, br_rush_route_name(rt), route_json(&v, r->phase_s[BR_RUSH_PHASE_CROWD]));
        for (uint32_t s = 0; s < BR_RUSH_STATUS_MAX; s++) {
            if (v.status[s] > 0 && (s == 0 || s >= 400)) {
                char k[8];
                snprintf(k, sizeof k, "%u", s);
                add_count(by_status, k, v.status[s]);
            }
        }
        for (uint32_t i = 0; i < v.code_count; i++) {
            if (v.codes[i].code[0] != '\0') {
                add_count(by_code, v.codes[i].code, v.codes[i].n);
            }
            if (v.codes[i].status == 0 && strcmp(v.codes[i].code, "TIMEOUT") == 0) {
                timeouts += v.codes[i].n;
            }
        }
        if (v.codes_other > 0) {
            add_count(by_code, "OTHER", v.codes_other);
        }
    }
    set_new(root, "routes", routes);
    json_t *errors = json_object();
    set_new(errors, "by_status", by_status);
    set_new(errors, "by_code", by_code);
    set_new(errors, "timeouts", json_integer((json_int_t)timeouts));
    set_new(errors, "retried_closed",
            json_integer(r->meter ? (json_int_t)br_rush_meter_retried_closed_total(r->meter) : 0));
    set_new(errors, "streams_lost",
            json_integer(r->ledger ? (json_int_t)r->ledger->streams_lost : 0));
    set_new(root, "errors", errors);
}

static json_t *windows_json(const struct br_rush_meter *m)
{
    struct br_rush_hist *h = calloc(1, sizeof *h);
    if (h == NULL) {
        return NULL;
    }
    json_t *spike = json_object(), *storm = json_object(), *logins = json_object();
    /* "reserve": to the answer as the rush read it; "reserve_arrived": as its
     * kernel received it (the rush's own scheduling left out). */
    static const char *const name[2] = {"reserve", "reserve_arrived"};
    for (int arrived = 0; arrived < 2; arrived++) {
        br_rush_hist_reset(h);
        if (m != NULL) {
            br_rush_meter_window_reserve(m, BR_RUSH_WIN_SPIKE, arrived, h);
        }
        set_new(spike, name[arrived], lat_json(h, true));
        br_rush_hist_reset(h);
        if (m != NULL) {
            br_rush_meter_window_reserve(m, BR_RUSH_WIN_STORM, arrived, h);
        }
        set_new(storm, name[arrived], lat_json(h, true));
    }
    free(h);
    struct br_rush_storm_view sv = {0};
    if (m != NULL) {
        br_rush_meter_storm_view(m, &sv);
    }
    set_new(logins, "sent", json_integer(sv.sent));
    set_new(logins, "ok", json_integer(sv.ok));
    set_new(logins, "unauthorized", json_integer(sv.unauthorized));
    set_new(logins, "overloaded", json_integer(sv.overloaded));
    set_new(logins, "retried", json_integer(sv.retried));
    set_new(logins, "failed", json_integer(sv.failed));
    set_new(logins, "p50_ms", ms_or_null(sv.latency, 0.5));
    set_new(logins, "p99_ms", ms_or_null(sv.latency, 0.99));
    set_new(storm, "logins", logins);
    return json_pack("{s:o, s:o}", "spike", spike, "storm", storm);
}

static bool all_local(const struct br_rush_config *cfg)
{
    for (uint32_t t = 0; cfg != NULL && t < cfg->target_count && t < BR_RUSH_TARGETS_MAX; t++) {
        if (!loopback_target(cfg->targets[t])) {
            return false;
        }
    }
    return true;
}

static json_t *passes_json(const struct br_rush_result *r)
{
    const struct br_rush_verdict *v = r->verdict;
    uint32_t listening = v ? v->admissions_listening : 0, received = v ? v->passes_received : 0;
    struct br_rush_pass_view pv = {0};
    if (r->meter != NULL) {
        br_rush_meter_pass_view(r->meter, &pv);
    }
    json_t *o = json_object();
    set_new(o, "admissions", json_integer(v ? v->admissions : 0));
    set_new(o, "admissions_listening", json_integer(listening));
    set_new(o, "received", json_integer(received));
    set_new(o, "delivery_ratio",
            listening ? json_real((double)received / (double)listening) : json_null());
    set_new(o, "silent_admitted", json_integer(v ? v->silent_admitted : 0));
    set_new(o, "unattributed", json_integer(v ? v->unattributed : 0));
    set_new(o, "left_while_waiting", json_integer(v ? v->left_while_waiting : 0));
    set_new(o, "received_leaving", json_integer(v ? v->received_leaving : 0));
    set_new(o, "final_unread", json_integer(v ? v->final_unread : 0));
    set_new(o, "direct", lat_json(pv.direct, true));
    set_new(o, "reconnected", lat_json(pv.reconnected, false));
    set_new(o, "clamped", json_integer((json_int_t)pv.clamped));
    set_new(o, "clock", json_string(all_local(r->cfg) ? "local" : "remote"));
    return o;
}

static json_t *peak_or_null(uint32_t samples, double v)
{
    return samples ? json_integer((json_int_t)v) : json_null();
}

static json_t *server_json(const struct br_rush_meter *m)
{
    struct br_rush_server_peaks p = {0};
    if (m != NULL) {
        br_rush_meter_server_peaks(m, UINT32_MAX, &p);
    }
    json_t *o = json_object();
    set_new(o, "rss_peak_bytes", peak_or_null(p.samples, p.rss_bytes));
    set_new(o, "vmhwm_bytes", peak_or_null(p.samples && p.vmhwm_bytes > 0, p.vmhwm_bytes));
    set_new(o, "open_fds_peak", peak_or_null(p.samples, p.open_fds));
    set_new(o, "sse_streams_peak", peak_or_null(p.samples, p.sse_streams));
    set_new(o, "samples", json_integer(p.samples));
    return o;
}

/* "client-bound": more than 0.9 CPU-s per second of the run (the rush's own loop
 * delays what it reads: latencies are upper bounds), or a queued p99 over 1 ms on some route
 * (requests waited for one of the rush's connections: the server saw less concurrency than the
 * crowd made; the windows count that wait, the routes' latencies do not). */
enum bound { BOUND_NO = 0, BOUND_CPU, BOUND_QUEUED };
static enum bound client_bound(const struct br_rush_result *r, const struct br_rush_client_view *c,
                               unsigned *route, double *queued_ms)
{
    double run_s = 0;
    for (unsigned i = 0; i < BR_RUSH_PHASE_COUNT; i++) {
        run_s += r->phase_s[i];
    }
    if (run_s > 0 && c->cpu_s / run_s > 0.9) {
        return BOUND_CPU;
    }
    enum bound b = BOUND_NO;
    for (unsigned rt = 0; r->meter != NULL && rt < BR_RR_COUNT; rt++) {
        struct br_rush_route_view v;
        br_rush_meter_route_view(r->meter, rt, &v);
        uint64_t q = v.queued->count > 0 ? br_rush_hist_quantile(v.queued, 0.99) : 0;
        if (q > 1000 && (b == BOUND_NO || (double)q / 1000.0 > *queued_ms)) {
            b = BOUND_QUEUED;
            *route = rt;
            *queued_ms = (double)q / 1000.0;
        }
    }
    return b;
}

static json_t *client_json(const struct br_rush_result *r)
{
    struct br_rush_client_view c = {0};
    unsigned rt = 0;
    double q = 0;
    if (r->meter != NULL) {
        br_rush_meter_client(r->meter, &c);
    }
    return json_pack("{s:f, s:I, s:I, s:b}", "cpu_s", round(c.cpu_s * 100.0) / 100.0,
                     "rss_peak_bytes", (json_int_t)c.rss_peak_bytes, "streams_peak",
                     (json_int_t)c.streams_peak, "bound", client_bound(r, &c, &rt, &q) != BOUND_NO);
}

static bool verdict_ok(const struct br_rush_verdict *v)
{
    for (unsigned c = 0; c < BR_RUSH_CHECK_COUNT; c++) {
        if (v->counts[c] > 0) {
            return false;
        }
    }
    return true;
}

static json_t *verdict_json(const struct br_rush_verdict *v)
{
    if (v == NULL) {
        return json_null();
    }
    json_t *checks = json_array(), *counts = json_object(), *viol = json_array();
    for (unsigned c = 0; c < BR_RUSH_CHECK_COUNT; c++) {
        json_array_append_new(checks, json_string(br_rush_check_name(c)));
        set_new(counts, br_rush_check_name(c), json_integer(v->counts[c]));
    }
    for (uint32_t i = 0; i < v->listed && i < BR_RUSH_VIOLATIONS_LISTED; i++) {
        const struct br_rush_violation *x = &v->v[i];
        json_array_append_new(
            viol, json_pack("{s:s, s:s, s:I, s:I, s:I, s:I}", "invariant",
                            br_rush_check_name(x->check), "message", x->message, "event",
                            (json_int_t)x->event_id, "user", (json_int_t)x->user_id, "zone",
                            (json_int_t)x->zone_id, "booking", (json_int_t)x->booking_id));
    }
    return json_pack("{s:b, s:o, s:o, s:o, s:b, s:o}", "ok", verdict_ok(v), "checks", checks,
                     "violations", viol, "counts", counts, "shuffle_evaluated",
                     v->shuffle_evaluated, "shuffle_agree",
                     v->shuffle_evaluated ? json_real(v->shuffle_agree) : json_null());
}

json_t *br_rush_report_json(const struct br_rush_result *r)
{
    const struct br_rush_config *cfg = r->cfg;
    json_t *root = json_object();
    if (root == NULL) {
        return NULL;
    }
    char name[128];
    set_new(root, "rush", json_integer(1));
    set_new(root, "scenario",
            json_string(scenario_name(cfg ? cfg->scenario_path : NULL, name, sizeof name)));
    set_new(root, "seed", json_integer(cfg ? (json_int_t)cfg->seed : 0));
    json_t *targets = json_array();
    for (uint32_t t = 0; cfg != NULL && t < cfg->target_count && t < BR_RUSH_TARGETS_MAX; t++) {
        json_array_append_new(targets, json_string(cfg->targets[t]));
    }
    set_new(root, "targets", targets);
    set_new(root, "backend", json_string(r->backend ? r->backend : "unknown"));
    set_new(root, "users", json_integer(r->ledger ? (json_int_t)r->ledger->crowd_count : 0));
    set_new(root, "storm", json_integer(cfg ? (json_int_t)cfg->login_storm : 0));
    set_new(root, "events", events_json(r->ledger));
    set_new(root, "phases_s",
            json_pack("{s:f, s:f, s:f, s:f}", "prepare", r->phase_s[BR_RUSH_PHASE_PREPARE], "crowd",
                      r->phase_s[BR_RUSH_PHASE_CROWD], "settle", r->phase_s[BR_RUSH_PHASE_SETTLE],
                      "verdict", r->phase_s[BR_RUSH_PHASE_VERDICT]));
    routes_json(r, root);
    set_new(root, "windows", windows_json(r->meter));
    set_new(root, "passes", passes_json(r));
    set_new(root, "server", server_json(r->meter));
    set_new(root, "client", client_json(r));
    set_new(root, "verdict", verdict_json(r->verdict));
    set_new(root, "reproduce", r->reproduce ? json_string(r->reproduce) : json_null());
    return root;
}

/* ---- text ---- */

static void text_head(FILE *f, const struct br_rush_result *r)
{
    const struct br_rush_config *cfg = r->cfg;
    const struct br_rush_ledger *l = r->ledger;
    fprintf(f, "rush: %s seed %llu against ", cfg && cfg->scenario_path ? cfg->scenario_path : "?",
            cfg ? (unsigned long long)cfg->seed : 0ull);
    for (uint32_t t = 0; cfg != NULL && t < cfg->target_count && t < BR_RUSH_TARGETS_MAX; t++) {
        fprintf(f, "%s%s", t ? "," : "", cfg->targets[t]);
    }
    uint32_t events = l ? l->event_count : 0;
    fprintf(f, " (%s), %u users, %u event%s\n", r->backend ? r->backend : "unknown",
            l ? l->crowd_count : 0, events, events == 1 ? "" : "s");
    fprintf(f,
            "  prepared %u accounts in %.1f s (excluded); opening at +%.1f s; crowd phase %.1f s; "
            "settle %.1f s\n",
            l ? l->user_count : 0, r->phase_s[BR_RUSH_PHASE_PREPARE],
            cfg ? (double)cfg->open_in_ms / 1000.0 : 0.0, r->phase_s[BR_RUSH_PHASE_CROWD],
            r->phase_s[BR_RUSH_PHASE_SETTLE]);
}

static void text_routes(FILE *f, const struct br_rush_result *r)
{
    int col = ROUTE_COL;
    for (unsigned rt = 0; r->meter != NULL && rt < BR_RR_COUNT; rt++) {
        struct br_rush_route_view v;
        br_rush_meter_route_view(r->meter, rt, &v);
        int len = (int)strlen(br_rush_route_name(rt));
        col = v.n > 0 && len > col ? len : col;
    }
    fprintf(f, "%-*s %7s %7s %7s %7s %7s %7s  errors\n", col, "route", "n", "rps", "p50", "p90",
            "p99", "max");
    for (unsigned rt = 0; r->meter != NULL && rt < BR_RR_COUNT; rt++) {
        struct br_rush_route_view v;
        br_rush_meter_route_view(r->meter, rt, &v);
        if (v.n == 0) {
            continue;
        }
        char q[4][16] = {"-", "-", "-", "-"};
        static const double QS[4] = {0.5, 0.9, 0.99, 1.0};
        for (int i = 0; i < 4 && v.latency->count > 0; i++) {
            br_rush_format_us(QS[i] >= 1.0 ? v.latency->max_us
                                           : br_rush_hist_quantile(v.latency, QS[i]),
                              q[i], sizeof q[i]);
        }
        double crowd_s = r->phase_s[BR_RUSH_PHASE_CROWD];
        fprintf(f, "%-*s %7llu %7.1f %7s %7s %7s %7s  ", col, br_rush_route_name(rt),
                (unsigned long long)v.n, crowd_s > 0 ? (double)v.n / crowd_s : 0.0, q[0], q[1],
                q[2], q[3]);
        struct br_rush_code_count top[3];
        uint32_t k = br_rush_meter_top_errors(r->meter, (int)rt, top, 3);
        if (k == 0) {
            fputs("-", f);
        }
        for (uint32_t i = 0; i < k; i++) {
            fprintf(f, "%s%d %s%s%u", i ? ", " : "", top[i].status, top[i].code,
                    top[i].code[0] ? " " : "", top[i].n);
        }
        fputc('\n', f);
    }
}

static void text_lat(FILE *f, const char *label, const struct br_rush_hist *h)
{
    char a[16], b[16], c[16];
    if (h->count == 0) {
        fprintf(f, "%s: none", label);
        return;
    }
    fprintf(f, "%s: p50 %s, p99 %s, max %s (n %llu)", label,
            br_rush_format_us(br_rush_hist_quantile(h, 0.5), a, 16),
            br_rush_format_us(br_rush_hist_quantile(h, 0.99), b, 16),
            br_rush_format_us(h->max_us, c, 16), (unsigned long long)h->count);
}

static void text_passes(FILE *f, const struct br_rush_result *r)
{
    const struct br_rush_verdict *v = r->verdict;
    if (v != NULL) {
        double ratio =
            v->admissions_listening ? 100.0 * v->passes_received / v->admissions_listening : 100.0;
        fprintf(f,
                "passes: received %u of %u admissions to listening users (%.1f%%); silent leavers "
                "admitted %u\n",
                v->passes_received, v->admissions_listening, ratio, v->silent_admitted);
        if (v->unattributed > 0) {
            uint32_t why = v->left_while_waiting + v->final_unread;
            fprintf(f,
                    "passes: %u admissions no user saw (%u users left by DELETE while waiting: a "
                    "leave that races an admission gives its pass back; %u users' final position "
                    "unread%s)\n",
                    v->unattributed, v->left_while_waiting, v->final_unread,
                    v->unattributed > why ? "; more than those is unexplained" : "");
        }
    }
    if (r->meter == NULL) {
        return;
    }
    struct br_rush_pass_view pv;
    br_rush_meter_pass_view(r->meter, &pv);
    text_lat(f, "admission -> pass (direct)", pv.direct);
    char b[16];
    fprintf(f, "; after reconnect %llu", (unsigned long long)pv.reconnected->count);
    if (pv.reconnected->count > 0) {
        fprintf(f, " (p99 %s)",
                br_rush_format_us(br_rush_hist_quantile(pv.reconnected, 0.99), b, sizeof b));
    }
    if (pv.clamped > 0) {
        fprintf(f, "; %llu clamped at 0", (unsigned long long)pv.clamped);
    }
    fprintf(f, "%s\n", all_local(r->cfg) ? "" : " (includes clock offset)");
}

static void text_windows(FILE *f, const struct br_rush_result *r)
{
    struct br_rush_hist *h = calloc(1, sizeof *h);
    if (h == NULL || r->meter == NULL) {
        free(h);
        return;
    }
    /* A line as the rush read the answers, then one to their arrival. */
    static const char *const label[2][2] = {
        {"reserve during the opening spike", "during the login storm"},
        {"  the same, to the answer's arrival (the rush's own delay left out): spike", "storm"}};
    for (int arrived = 0; arrived < 2; arrived++) {
        br_rush_meter_window_reserve(r->meter, BR_RUSH_WIN_SPIKE, arrived, h);
        text_lat(f, label[arrived][0], h);
        br_rush_meter_window_reserve(r->meter, BR_RUSH_WIN_STORM, arrived, h);
        fputs("; ", f);
        text_lat(f, label[arrived][1], h);
        fputc('\n', f);
    }
    free(h);
    struct br_rush_storm_view sv;
    br_rush_meter_storm_view(r->meter, &sv);
    if (sv.sent > 0 || sv.retried > 0) {
        char a[16] = "-", b[16] = "-";
        if (sv.latency->count > 0) {
            br_rush_format_us(br_rush_hist_quantile(sv.latency, 0.5), a, sizeof a);
            br_rush_format_us(br_rush_hist_quantile(sv.latency, 0.99), b, sizeof b);
        }
        fprintf(f,
                "login storm: %u logins, %u ok, %u unknown (401) (p50 %s, p99 %s), %u refused 503 "
                "OVERLOADED, "
                "%u retried, %u failed\n",
                sv.sent, sv.ok, sv.unauthorized, a, b, sv.overloaded, sv.retried, sv.failed);
    }
}

static void text_machines(FILE *f, const struct br_rush_result *r)
{
    struct br_rush_server_peaks p = {0};
    struct br_rush_client_view c = {0};
    if (r->meter != NULL) {
        br_rush_meter_server_peaks(r->meter, UINT32_MAX, &p);
        br_rush_meter_client(r->meter, &c);
    }
    if (p.samples > 0) {
        fprintf(f, "server at peak: RSS %.1f MiB", p.rss_bytes / 1048576.0);
        if (p.vmhwm_bytes > 0) {
            fprintf(f, " (VmHWM %.1f)", p.vmhwm_bytes / 1048576.0);
        }
        fprintf(f, ", fds %u, streams %u; ", p.open_fds, p.sse_streams);
    } else {
        fputs("server: not sampled; ", f);
    }
    fprintf(f, "rush: %.1f CPU-s, RSS %.0f MiB, streams %u\n", c.cpu_s,
            (double)c.rss_peak_bytes / 1048576.0, c.streams_peak);
    unsigned rt = 0;
    double q = 0;
    switch (client_bound(r, &c, &rt, &q)) {
    case BOUND_CPU:
        fputs("client-bound: the rush used over 0.9 CPU-s a second; latencies are upper bounds\n", f);
        break;
    case BOUND_QUEUED:
        fprintf(f, "client-bound: requests waited for a free connection (%s queued p99 %.1f ms): the "
                   "server saw less concurrency than the crowd; the windows count the wait, the routes "
                   "do not; raise --connections\n", br_rush_route_name(rt), q);
        break;
    case BOUND_NO:
        break;
    }
}

static void text_verdict(FILE *f, const struct br_rush_verdict *v)
{
    if (v == NULL) {
        fputs("verdict: not reached\n", f);
        return;
    }
    if (verdict_ok(v)) {
        fprintf(f, "verdict: OK (%u checks:", (unsigned)BR_RUSH_CHECK_COUNT);
        for (unsigned c = 0; c < BR_RUSH_CHECK_COUNT; c++) {
            fprintf(f, " %s", br_rush_check_name(c));
        }
        fprintf(f, ")%s\n",
                v->shuffle_evaluated ? ""
                                     : "; SHUFFLE not evaluated (fewer than 200 ordered pairs)");
        return;
    }
    uint64_t total = 0;
    for (unsigned c = 0; c < BR_RUSH_CHECK_COUNT; c++) {
        total += v->counts[c];
    }
    if (v->listed > 0) {
        fprintf(f, "verdict: VIOLATED %s: %s", br_rush_check_name(v->v[0].check), v->v[0].message);
        if (total > 1) {
            fprintf(f, "; %llu more", (unsigned long long)(total - 1));
        }
    } else {
        fputs("verdict: VIOLATED", f);
    }
    fputs("\n  violated:", f);
    for (unsigned c = 0; c < BR_RUSH_CHECK_COUNT; c++) {
        if (v->counts[c] > 0) {
            fprintf(f, " %s %u", br_rush_check_name(c), v->counts[c]);
        }
    }
    fputc('\n', f);
    for (uint32_t i = 1; i < v->listed && i < BR_RUSH_VIOLATIONS_LISTED; i++) {
        fprintf(f, "  %s: %s\n", br_rush_check_name(v->v[i].check), v->v[i].message);
    }
}

int br_rush_report_text(FILE *f, const struct br_rush_result *r)
{
    text_head(f, r);
    text_routes(f, r);
    text_passes(f, r);
    text_windows(f, r);
    text_machines(f, r);
    text_verdict(f, r->verdict);
    fprintf(f, "reproduce: %s\n", r->reproduce ? r->reproduce : "-");
    return ferror(f) ? -1 : 0;
}
