/*
 * report.c -- text and JSON reports of a simulation or a replay.
 */
#define _XOPEN_SOURCE 700
#include "sim/report.h"

#include <inttypes.h>
#include <math.h>
#include <string.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

#include "adapters/clock.h"
#include "core/engine.h"
#include "core/panic.h"

long br_peak_rss_kib(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) {
        return -1;
    }
    return ru.ru_maxrss; /* KiB on Linux */
}

void br_report_rfc3339(char *buf, size_t cap, int64_t ms)
{
    BR_ASSERT(cap >= 32);
    int64_t s = ms >= 0 ? ms / 1000 : (ms - 999) / 1000; /* floor, also before 1970 */
    time_t t = (time_t)s;
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL) {
        snprintf(buf, cap, "(now_ms %" PRId64 ")", ms);
        return;
    }
    snprintf(buf, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms - s * 1000));
}

void br_progress_init(struct br_progress *p)
{
    const char *env = getenv("BR_PROGRESS_MS");
    long ms = env != NULL ? strtol(env, NULL, 10) : 0;
    p->period_s = ms > 0 && ms <= 3600000 ? (double)ms / 1000.0 : 1.0;
    p->start_s = br_clock_mono_s();
    p->next_s = p->start_s + p->period_s;
}

bool br_progress_due(struct br_progress *p)
{
    BR_ASSERT(p->period_s > 0);
    double now = br_clock_mono_s();
    if (now < p->next_s) {
        return false;
    }
    p->next_s = now + p->period_s;
    return true;
}

double br_progress_elapsed(const struct br_progress *p)
{
    return br_clock_mono_s() - p->start_s;
}

bool br_report_ok(const struct br_report *r)
{
    return br_auditor_violations(r->auditor) == 0 &&
           (r->wr_off == NULL || !r->wr_off->present || r->wr_off->ok);
}

void br_report_fmt_ms(char *buf, size_t cap, int64_t ms)
{
    if (ms >= 86400000LL) {
        snprintf(buf, cap, "%.2f d", (double)ms / 86400000.0);
    } else if (ms >= 3600000LL) {
        snprintf(buf, cap, "%.2f h", (double)ms / 3600000.0);
    } else if (ms >= 60000LL) {
        snprintf(buf, cap, "%.2f min", (double)ms / 60000.0);
    } else {
        snprintf(buf, cap, "%.3f s", (double)ms / 1000.0);
    }
}

void br_report_violation_line(FILE *f, const struct br_report *r)
{
    const struct br_violation *v = br_auditor_first(r->auditor);
    if (v == NULL) {
        return;
    }
    fprintf(f, "VIOLATION %s (%s) at step %" PRIu64 ", command %s at now_ms %" PRId64 ": %s\n",
            br_inv_name(v->inv), br_inv_title(v->inv), v->step, br_cmd_name(v->cmd_type), v->now_ms,
            v->msg);
    fprintf(f,
            "  entities: event %" PRIu64 " user %" PRIu64 " hold %" PRIu64 " payment %" PRIu64
            " pass %" PRIu64 "\n",
            v->event_id, v->user_id, v->hold_id, v->payment_id, v->pass_id);
    if (r->reproduce != NULL) {
        fprintf(f, "  reproduce: %s\n", r->reproduce);
    }
}

/* A replay's first lines: which file, and the span of time its commands cover. */
static void replay_header(FILE *f, const struct br_report *r)
{
    fprintf(f, "replay of %s", r->path ? r->path : "(unnamed)");
    if (r->source_bytes >= 0) {
        fprintf(f, " (%lld bytes)", r->source_bytes);
    }
    fprintf(f, "\n");
    if (r->records == 0) {
        fprintf(f, "  simulated     nothing: the journal holds no command\n");
        return;
    }
    char first[40], last[40], span[32];
    br_report_rfc3339(first, sizeof first, r->first_now_ms);
    br_report_rfc3339(last, sizeof last, r->last_now_ms);
    br_report_fmt_ms(span, sizeof span, r->last_now_ms - r->first_now_ms);
    fprintf(f, "  simulated     %s .. %s (%s), %" PRIu64 " commands\n", first, last, span,
            r->commands);
}

/* A replay judges no liveness: a live server's journal ends mid-sale. It
 * says what was still in progress when the journal ended. */
static void replay_liveness(FILE *f, const struct br_audit_liveness *l)
{
    if (l->converged) {
        fprintf(f, "  at the end    settled: no one waiting, no live hold, no payment pending, "
                   "no refund owed\n");
        return;
    }
    fprintf(f,
            "  at the end    still in progress at the end of the journal: %" PRIu64
            " waiting, %" PRIu64 " holds live (%" PRIu64 " past their deadline, due for the "
            "next sweep), %" PRIu64 " sagas open (%" PRIu64 " payments pending, %" PRIu64
            " refunds owed)\n",
            l->waiting, l->live_holds + l->overdue_holds, l->overdue_holds,
            l->pending_payments + l->refunds_owed, l->pending_payments, l->refunds_owed);
}

/* The invariants' table and the fairness line. */
static void text_invariants(FILE *f, const struct br_report *r)
{
    fprintf(f, "  invariants\n");
    for (int i = 0; i < BR_INV_COUNT; i++) {
        uint64_t v = br_auditor_violations_of(r->auditor, i);
        fprintf(f, "    %s %-5s %12" PRIu64 " checks %6" PRIu64 " violations  %s\n", br_inv_name(i),
                v ? "FAIL" : "ok", br_auditor_checks(r->auditor, i), v, br_inv_title(i));
    }
    char p50[32], p99[32];
    br_report_fmt_ms(p50, sizeof p50, br_auditor_wait_quantile(r->auditor, 0.5));
    br_report_fmt_ms(p99, sizeof p99, br_auditor_wait_quantile(r->auditor, 0.99));
    fprintf(f,
            "  fairness      worst admission inversion %" PRIu64
            ", wait join->pass p50 %s, p99 %s (%" PRIu64 " passes)\n",
            br_auditor_worst_inversion(r->auditor), p50, p99, br_auditor_waits(r->auditor));
}

/* A simulation's own lines: liveness, the faults injected, the provider's
 * ledger and the steps given up at a table's cap. */
static void text_sim(FILE *f, const struct br_report *r)
{
    const struct br_driver_stats *st = r->stats;
    if (r->live != NULL) {
        const struct br_audit_liveness *l = r->live;
        char conv[32];
        br_report_fmt_ms(conv, sizeof conv, st->converge_ms);
        fprintf(f,
                "  liveness      %s, %s; waiting %" PRIu64 ", overdue holds %" PRIu64
                ", live holds %" PRIu64 ", pending payments %" PRIu64 ", refunds owed %" PRIu64
                "\n                (time to converge counts from the end of the faults)\n",
                st->converged ? "converged" : "NOT converged", conv, l->waiting, l->overdue_holds,
                l->live_holds, l->pending_payments, l->refunds_owed);
    }
    fprintf(f, "  faults       ");
    for (int i = 0; i < BR_FAULT_COUNT; i++) {
        fprintf(f, " %s=%" PRIu64, br_fault_name(i), st->faults[i]);
        if (i % 5 == 4 && i + 1 < BR_FAULT_COUNT) {
            fprintf(f, "\n               ");
        }
    }
    fprintf(f,
            "\n  provider      captured %" PRId64 ", refunded %" PRId64
            ", re-confirmed after a decline %" PRIu64 "\n",
            st->provider_captured, st->provider_refunded, st->reconfirmations);
    if (st->capacity_refusals > 0) {
        fprintf(f, "  capacity      %" PRIu64 " steps given up at an engine table's cap\n",
                st->capacity_refusals);
    }
}

static void text_wr(FILE *f, const struct br_report *r);

void br_report_text(FILE *f, const struct br_report *r)
{
    char sim[32];
    br_report_fmt_ms(sim, sizeof sim, r->simulated_ms);
    const struct br_audit_funnel *fn = br_auditor_funnel(r->auditor);
    if (r->stats == NULL) {
        replay_header(f, r);
    } else {
        fprintf(f, "%s %s (%s)\n", r->mode, r->scenario ? r->scenario : "",
                r->path ? r->path : "");
        fprintf(f, "  seed          %" PRIu64 "%s\n", r->seed,
                r->swarm ? " (swarm: fault mix drawn from the seed)" : "");
        fprintf(f, "  simulated     %s, %" PRIu64 " commands\n", sim, r->commands);
    }
    fprintf(f, "  wall          %.3f s (cpu %.3f s)", r->wall_s, r->cpu_s);
    if (r->users > 0 && r->wall_s > 0) {
        fprintf(f, ", %" PRIu64 " users, %.0f users/s simulated", r->users,
                (double)r->users / r->wall_s);
    }
    fprintf(f, "\n  memory        engine %.1f MiB, peak RSS %.1f MiB\n",
            (double)r->engine_bytes / 1048576.0, (double)r->peak_rss_kib / 1024.0);
    fprintf(f,
            "  funnel        joined %" PRIu64 ", admitted %" PRIu64 ", held %" PRIu64
            ", confirmed %" PRIu64 ", expired %" PRIu64 ", cancelled %" PRIu64 ", refunded %" PRIu64
            ", declined %" PRIu64 "\n",
            fn->joined, fn->admitted, fn->held, fn->confirmed, fn->expired, fn->cancelled,
            fn->refunded, fn->declined);
    text_invariants(f, r);
    if (r->stats == NULL) {
        if (r->live != NULL) {
            replay_liveness(f, r->live);
        }
    } else {
        text_sim(f, r);
    }
    if (r->wr_on != NULL) {
        text_wr(f, r);
    }
    fprintf(f, "  digest        %016" PRIx64 "\n", r->digest);
    if (!br_report_ok(r)) {
        br_report_violation_line(f, r);
    } else if (r->reproduce != NULL) {
        fprintf(f, "  reproduce     %s\n", r->reproduce);
    }
}

/* ---- issue 13: the waiting room ---- */

void br_report_wr_of(struct br_wr_figures *f, struct br_auditor *a,
                     const struct br_driver_stats *st, uint64_t digest)
{
    const struct br_audit_wr *w = br_auditor_wr(a);
    memset(f, 0, sizeof *f);
    f->present = true;
    f->ok = br_auditor_violations(a) == 0;
    f->digest = digest;
    f->passes_to_gone = st->passes_to_gone;
    f->passes_absent = w->passes_absent;
    f->passes_no_seats = w->passes_no_seats;
    f->lapsed = w->lapsed;
    f->abandoned = st->abandoned;
    f->sold_out_told_ms = w->sold_out_ms < 0        ? -2
                          : w->sold_out_told_ms < 0 ? -1
                                                    : w->sold_out_told_ms - w->sold_out_ms;
    f->estimates = st->estimates;
    f->est_err_p50_ms = st->est_err_p50_ms;
    f->est_err_p99_ms = st->est_err_p99_ms;
    f->operator_steps = st->operator_steps;
    f->presence_commands = st->presence_commands;
    f->told_closed = st->told_closed;
}

/* 2^bits hashes per place, saturating; ceil(places / limit) addresses. */
static double farm_hashes(const struct br_report *r)
{
    return (double)r->door_places * ldexp(1.0, r->door_bits);
}

static void fmt_told(char *buf, size_t cap, int64_t ms)
{
    if (ms == -2) {
        snprintf(buf, cap, "not sold out");
    } else if (ms == -1) {
        snprintf(buf, cap, "never told");
    } else {
        br_report_fmt_ms(buf, cap, ms);
    }
}

static void fmt_est(char *buf, size_t cap, const struct br_wr_figures *f)
{
    if (f->est_err_p50_ms < 0) {
        snprintf(buf, cap, "none");
        return;
    }
    char a[24], b[24];
    br_report_fmt_ms(a, sizeof a, f->est_err_p50_ms);
    br_report_fmt_ms(b, sizeof b, f->est_err_p99_ms);
    snprintf(buf, cap, "p50 %s p99 %s (%" PRIu64 ")", a, b, f->estimates);
}

static void text_wr(FILE *f, const struct br_report *r)
{
    const struct br_wr_figures *on = r->wr_on, *off = r->wr_off;
    bool cmp = off != NULL && off->present;
    fprintf(f, "  waiting room  %-34s %s\n", "switches on", cmp ? "off (same crowd, seed)" : "");
    char a[96], b[96];
#define WR_ROW(label, fmt_on, fmt_off) fprintf(f, "    %-26s %-34s %s\n", label, fmt_on, cmp ? fmt_off : "")
    snprintf(a, sizeof a, "%" PRIu64, on->passes_to_gone);
    snprintf(b, sizeof b, "%" PRIu64, cmp ? off->passes_to_gone : 0);
    WR_ROW("passes to people gone", a, b);
    snprintf(a, sizeof a, "%" PRIu64, on->passes_no_seats);
    snprintf(b, sizeof b, "%" PRIu64, cmp ? off->passes_no_seats : 0);
    WR_ROW("passes with no seat left", a, b);
    fmt_told(a, sizeof a, on->sold_out_told_ms);
    fmt_told(b, sizeof b, cmp ? off->sold_out_told_ms : -2);
    WR_ROW("last seat -> sold_out told", a, b);
    fmt_est(a, sizeof a, on);
    if (cmp) {
        fmt_est(b, sizeof b, off);
    }
    WR_ROW("estimate error", a, b);
    snprintf(a, sizeof a, "%" PRIu64 " lapsed, %" PRIu64 " gone", on->lapsed, on->abandoned);
    snprintf(b, sizeof b, "%" PRIu64 " lapsed, %" PRIu64 " gone", cmp ? off->lapsed : 0,
             cmp ? off->abandoned : 0);
    WR_ROW("places", a, b);
    snprintf(a, sizeof a, "%016" PRIx64 "%s", on->digest, on->ok ? "" : " VIOLATION");
    snprintf(b, sizeof b, "%016" PRIx64 "%s", cmp ? off->digest : 0,
             cmp && !off->ok ? " VIOLATION" : "");
    WR_ROW("digest", a, b);
#undef WR_ROW
    if (r->door_places > 0) {
        fprintf(f, "  bot farm      %" PRIu64 " places: %.3g hashes (2^%u each)", r->door_places,
                farm_hashes(r), r->door_bits);
        if (r->door_join_limit > 0) {
            fprintf(f, ", %" PRIu64 " addresses (%u joins each)\n",
                    (r->door_places + r->door_join_limit - 1) / r->door_join_limit,
                    r->door_join_limit);
        } else {
            fprintf(f, ", 1 address (no join limit)\n");
        }
    }
}

static json_t *wr_fig_json(const struct br_wr_figures *w)
{
    if (w == NULL || !w->present) {
        return json_null();
    }
    json_t *o = json_object();
    char hex[20];
    snprintf(hex, sizeof hex, "%016" PRIx64, w->digest);
    json_object_set_new(o, "ok", json_boolean(w->ok));
    json_object_set_new(o, "digest", json_string(hex));
    json_object_set_new(o, "passes_to_gone", json_integer((json_int_t)w->passes_to_gone));
    json_object_set_new(o, "passes_absent", json_integer((json_int_t)w->passes_absent));
    json_object_set_new(o, "passes_no_seats", json_integer((json_int_t)w->passes_no_seats));
    json_object_set_new(o, "lapsed", json_integer((json_int_t)w->lapsed));
    json_object_set_new(o, "abandoned", json_integer((json_int_t)w->abandoned));
    json_object_set_new(o, "sold_out_told_ms", w->sold_out_told_ms == -2
                                                   ? json_null()
                                                   : json_integer(w->sold_out_told_ms));
    json_object_set_new(o, "estimates", json_integer((json_int_t)w->estimates));
    json_object_set_new(o, "est_err_p50_ms",
                        w->est_err_p50_ms < 0 ? json_null() : json_integer(w->est_err_p50_ms));
    json_object_set_new(o, "est_err_p99_ms",
                        w->est_err_p99_ms < 0 ? json_null() : json_integer(w->est_err_p99_ms));
    json_object_set_new(o, "operator_steps", json_integer((json_int_t)w->operator_steps));
    json_object_set_new(o, "presence_commands", json_integer((json_int_t)w->presence_commands));
    json_object_set_new(o, "told_closed", json_integer((json_int_t)w->told_closed));
    return o;
}

static json_t *wr_json(const struct br_report *r)
{
    json_t *o = json_object();
    json_object_set_new(o, "on", wr_fig_json(r->wr_on));
    json_object_set_new(o, "off", wr_fig_json(r->wr_off));
    json_t *farm = json_object();
    json_object_set_new(farm, "places", json_integer((json_int_t)r->door_places));
    json_object_set_new(farm, "pow_bits", json_integer(r->door_bits));
    json_object_set_new(farm, "hashes", json_real(farm_hashes(r)));
    json_object_set_new(farm, "join_limit", json_integer(r->door_join_limit));
    json_object_set_new(farm, "addresses",
                        r->door_join_limit == 0
                            ? json_null()
                            : json_integer((json_int_t)((r->door_places + r->door_join_limit - 1) /
                                                        r->door_join_limit)));
    json_object_set_new(o, "bot_farm", farm);
    return o;
}

/* The verdict a replay's exit status stands for (sim.h). */
static const char *replay_verdict(int exit_code)
{
    switch (exit_code) {
    case 0:
        return "ok";
    case 1:
        return "violation";
    case 2:
        return "damaged";
    default:
        return "diverged";
    }
}

/* The replay's own fields: its source, the time it covers, its verdict. */
static void replay_json(json_t *o, const struct br_report *r)
{
    json_t *src = json_object();
    json_object_set_new(src, "path", r->path ? json_string(r->path) : json_null());
    json_object_set_new(src, "bytes", json_integer(r->source_bytes));
    json_object_set_new(o, "source", src);
    if (r->records > 0) {
        char first[40], last[40];
        br_report_rfc3339(first, sizeof first, r->first_now_ms);
        br_report_rfc3339(last, sizeof last, r->last_now_ms);
        json_t *t = json_object();
        json_object_set_new(t, "first_now_ms", json_integer(r->first_now_ms));
        json_object_set_new(t, "last_now_ms", json_integer(r->last_now_ms));
        json_object_set_new(t, "first", json_string(first));
        json_object_set_new(t, "last", json_string(last));
        json_object_set_new(t, "span_ms", json_integer(r->last_now_ms - r->first_now_ms));
        json_object_set_new(o, "time", t);
    }
    json_object_set_new(o, "verdict", json_string(replay_verdict(r->exit_code)));
    json_object_set_new(o, "in_progress", json_boolean(r->live != NULL && !r->live->converged));
}

static json_t *funnel_json(const struct br_audit_funnel *fn)
{
    json_t *f = json_object();
    json_object_set_new(f, "joined", json_integer((json_int_t)fn->joined));
    json_object_set_new(f, "admitted", json_integer((json_int_t)fn->admitted));
    json_object_set_new(f, "held", json_integer((json_int_t)fn->held));
    json_object_set_new(f, "confirmed", json_integer((json_int_t)fn->confirmed));
    json_object_set_new(f, "expired", json_integer((json_int_t)fn->expired));
    json_object_set_new(f, "cancelled", json_integer((json_int_t)fn->cancelled));
    json_object_set_new(f, "refunded", json_integer((json_int_t)fn->refunded));
    json_object_set_new(f, "declined", json_integer((json_int_t)fn->declined));
    return f;
}

/* "invariants" (checks, violations and title of each) and "fairness". */
static void invariants_json(json_t *o, struct br_auditor *au)
{
    json_t *inv = json_object();
    for (int i = 0; i < BR_INV_COUNT; i++) {
        json_t *x = json_object();
        json_object_set_new(x, "checks", json_integer((json_int_t)br_auditor_checks(au, i)));
        json_object_set_new(x, "violations",
                            json_integer((json_int_t)br_auditor_violations_of(au, i)));
        json_object_set_new(x, "title", json_string(br_inv_title(i)));
        json_object_set_new(inv, br_inv_name(i), x);
    }
    json_object_set_new(o, "invariants", inv);

    json_t *fair = json_object();
    json_object_set_new(fair, "worst_inversion",
                        json_integer((json_int_t)br_auditor_worst_inversion(au)));
    json_object_set_new(fair, "wait_p50_ms", json_integer(br_auditor_wait_quantile(au, 0.5)));
    json_object_set_new(fair, "wait_p99_ms", json_integer(br_auditor_wait_quantile(au, 0.99)));
    json_object_set_new(fair, "admissions", json_integer((json_int_t)br_auditor_waits(au)));
    json_object_set_new(o, "fairness", fair);
}

static json_t *liveness_json(const struct br_report *r)
{
    const struct br_audit_liveness *l = r->live;
    json_t *lv = json_object();
    json_object_set_new(lv, "converged",
                        json_boolean(r->stats ? r->stats->converged : l->converged));
    json_object_set_new(lv, "converge_ms", json_integer(r->stats ? r->stats->converge_ms : 0));
    json_object_set_new(lv, "waiting", json_integer((json_int_t)l->waiting));
    json_object_set_new(lv, "overdue_holds", json_integer((json_int_t)l->overdue_holds));
    json_object_set_new(lv, "live_holds", json_integer((json_int_t)l->live_holds));
    json_object_set_new(lv, "pending_payments", json_integer((json_int_t)l->pending_payments));
    json_object_set_new(lv, "refunds_owed", json_integer((json_int_t)l->refunds_owed));
    return lv;
}

/* A simulation's "faults" injected and the "provider"'s ledger. */
static void sim_json(json_t *o, const struct br_driver_stats *st)
{
    json_t *fx = json_object();
    for (int i = 0; i < BR_FAULT_COUNT; i++) {
        json_object_set_new(fx, br_fault_name(i), json_integer((json_int_t)st->faults[i]));
    }
    json_object_set_new(o, "faults", fx);
    json_t *pv = json_object();
    json_object_set_new(pv, "captured_minor", json_integer(st->provider_captured));
    json_object_set_new(pv, "refunded_minor", json_integer(st->provider_refunded));
    json_object_set_new(pv, "reconfirmations", json_integer((json_int_t)st->reconfirmations));
    json_object_set_new(o, "provider", pv);
}

/* The first violation in full, or null. */
static json_t *violation_json(const struct br_violation *v)
{
    if (v == NULL) {
        return json_null();
    }
    json_t *x = json_object();
    json_object_set_new(x, "invariant", json_string(br_inv_name(v->inv)));
    json_object_set_new(x, "title", json_string(br_inv_title(v->inv)));
    json_object_set_new(x, "step", json_integer((json_int_t)v->step));
    json_object_set_new(x, "now_ms", json_integer(v->now_ms));
    json_object_set_new(x, "command", json_string(br_cmd_name(v->cmd_type)));
    json_object_set_new(x, "event_id", json_integer((json_int_t)v->event_id));
    json_object_set_new(x, "user_id", json_integer((json_int_t)v->user_id));
    json_object_set_new(x, "hold_id", json_integer((json_int_t)v->hold_id));
    json_object_set_new(x, "payment_id", json_integer((json_int_t)v->payment_id));
    json_object_set_new(x, "pass_id", json_integer((json_int_t)v->pass_id));
    json_object_set_new(x, "message", json_string(v->msg));
    return x;
}

json_t *br_report_json(const struct br_report *r)
{
    json_t *o = json_object();
    char hex[17];
    snprintf(hex, sizeof hex, "%016" PRIx64, r->digest);
    json_object_set_new(o, "mode", json_string(r->mode));
    json_object_set_new(o, "scenario", r->scenario ? json_string(r->scenario) : json_null());
    json_object_set_new(o, "path", r->path ? json_string(r->path) : json_null());
    if (r->stats != NULL) {
        json_object_set_new(o, "seed", json_integer((json_int_t)r->seed));
        json_object_set_new(o, "swarm", json_boolean(r->swarm));
    }
    json_object_set_new(o, "digest", json_string(hex));
    json_object_set_new(o, "ok", json_boolean(br_report_ok(r)));
    json_object_set_new(o, "simulated_ms", json_integer(r->simulated_ms));
    json_object_set_new(o, "wall_s", json_real(r->wall_s));
    json_object_set_new(o, "cpu_s", json_real(r->cpu_s));
    json_object_set_new(o, "users", json_integer((json_int_t)r->users));
    json_object_set_new(o, "users_per_s",
                        json_real(r->wall_s > 0 ? (double)r->users / r->wall_s : 0.0));
    json_object_set_new(o, "commands", json_integer((json_int_t)r->commands));
    if (r->stats != NULL) {
        json_t *bt = json_object();
        for (int i = 1; i < BR_CMD_TYPE_COUNT; i++) {
            json_object_set_new(bt, br_cmd_name((uint8_t)i),
                                json_integer((json_int_t)r->stats->by_type[i]));
        }
        json_object_set_new(o, "commands_by_type", bt);
        json_object_set_new(o, "capacity_refusals",
                            json_integer((json_int_t)r->stats->capacity_refusals));
    }
    json_t *mem = json_object();
    json_object_set_new(mem, "engine_bytes", json_integer((json_int_t)r->engine_bytes));
    json_object_set_new(mem, "peak_rss_kib", json_integer(r->peak_rss_kib));
    json_object_set_new(o, "memory", mem);
    json_object_set_new(o, "funnel", funnel_json(br_auditor_funnel(r->auditor)));
    invariants_json(o, r->auditor);
    if (r->live != NULL) {
        json_object_set_new(o, "liveness", liveness_json(r));
    }
    if (r->stats != NULL) {
        sim_json(o, r->stats);
    }
    json_object_set_new(o, "violation", violation_json(br_auditor_first(r->auditor)));
    json_object_set_new(o, "reproduce", r->reproduce ? json_string(r->reproduce) : json_null());
    if (r->wr_on != NULL) {
        json_object_set_new(o, "waiting_room", wr_json(r));
    }
    if (r->stats == NULL) {
        replay_json(o, r);
    }
    return o;
}
