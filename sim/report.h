/*
 * report.h -- what a run tells: the text report for people and the JSON
 * report for scripts (the same facts in both).
 *
 * JSON shape (stable; scripts and tests read it):
 *   { "mode": "sim"|"replay", "scenario": .., "path": .., "seed": N, "swarm": bool,
 *     "digest": "16 hex digits", "ok": bool,
 *     "simulated_ms": N, "wall_s": x, "cpu_s": x, "users": N, "users_per_s": x,
 *     "commands": N, "commands_by_type": {..}, "capacity_refusals": N,
 *     "memory": {"engine_bytes": N, "peak_rss_kib": N},
 *     "funnel": {"joined", "admitted", "held", "confirmed", "expired", "cancelled",
 *                "refunded", "declined"},
 *     "invariants": {"S1": {"checks": N, "violations": N, "title": ..}, ... "L1": ..},
 *     "fairness": {"worst_inversion": N, "wait_p50_ms": N, "wait_p99_ms": N, "admissions": N},
 *     "liveness": {"converged": bool, "converge_ms": N, "waiting": N, "overdue_holds": N,
 *                  "live_holds": N, "pending_payments": N, "refunds_owed": N},
 *     "faults": {"admitter_crash": N, ...},
 *     "violation": null | {"invariant", "title", "step", "now_ms", "command", "event_id",
 *                          "user_id", "hold_id", "payment_id", "pass_id", "message"},
 *     "reproduce": "bookingrush sim .. --seed N",
 *     "waiting_room" (issue 13, scenarios using it): {"on": F, "off": F | null,
 *        "bot_farm": {"places", "pow_bits", "hashes", "join_limit", "addresses" (null = no limit)}}
 *        F = {"ok", "digest", "passes_to_gone", "passes_absent", "passes_no_seats", "lapsed",
 *             "abandoned", "sold_out_told_ms" (null = not sold out, -1 = never told),
 *             "estimates", "est_err_p50_ms", "est_err_p99_ms" (null = none),
 *             "operator_steps", "presence_commands", "told_closed"} }
 *   replay adds: "source": {"path", "bytes"}, "time": {"first_now_ms", "last_now_ms",
 *     "first", "last" (RFC 3339), "span_ms"}, "verdict": "ok"|"violation"|"damaged"|
 *     "diverged", "in_progress": bool (the sale had not settled at the journal's end).
 *
 * Progress: a long run prints a line a second on stderr (br_progress); a run
 * shorter than that prints none. BR_PROGRESS_MS sets the period (tests).
 */
#ifndef BR_SIM_REPORT_H
#define BR_SIM_REPORT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "sim/auditor.h"
#include "sim/driver.h"

/* Issue 13: one run's waiting-room figures (see br_report_wr_of). */
struct br_wr_figures {
    bool present;
    bool ok;                    /* that run found no violation */
    uint64_t digest;
    uint64_t passes_to_gone;    /* passes issued to people who had left (driver) */
    uint64_t passes_absent;     /* ... to users not seen for presence_ttl (auditor) */
    uint64_t passes_no_seats;   /* passes issued while no seat was available (auditor) */
    uint64_t lapsed;
    uint64_t abandoned;
    int64_t sold_out_told_ms;   /* last seat sold -> sold_out announced; -1 never, -2 not sold out */
    uint64_t estimates;
    int64_t est_err_p50_ms, est_err_p99_ms; /* -1 = none */
    uint64_t operator_steps, presence_commands, told_closed;
};

/* The figures of a finished run. */
void br_report_wr_of(struct br_wr_figures *f, struct br_auditor *a,
                     const struct br_driver_stats *st, uint64_t digest);

struct br_report {
    const char *mode;     /* "sim" or "replay" */
    const char *scenario; /* name */
    const char *path;     /* scenario or journal file */
    uint64_t seed;
    bool swarm;
    int64_t simulated_ms;
    double wall_s; /* engine allocation to final digest */
    double cpu_s;  /* CPU time over the same span (0 = not measured) */
    uint64_t users;
    uint64_t commands;
    struct br_auditor *auditor;
    const struct br_driver_stats *stats; /* NULL in replay */
    const struct br_audit_liveness *live;
    uint64_t digest;
    size_t engine_bytes;
    long peak_rss_kib;
    const char *reproduce; /* the command that reproduces this run */
    /* replay only (records > 0): the journal and the span of now_ms it covers */
    uint64_t records;
    long long source_bytes; /* size of the journal file, -1 = unknown */
    int64_t first_now_ms;
    int64_t last_now_ms;
    int exit_code; /* what the replay exits with (its verdict) */
    /* issue 13 (sim): the waiting room, the switches on (this run) and off
     * (the scenario's "compare" run; present = false without it), and the
     * bot farm's bill at the door. NULL = not a waiting-room scenario. */
    const struct br_wr_figures *wr_on, *wr_off;
    uint8_t door_bits;       /* proof-of-work bits a bot pays per join */
    uint32_t door_join_limit; /* joins per address per window, 0 = none */
    uint64_t door_places;    /* places the farm wants (the crowd's size) */
};

/* True when the run found no violation. */
bool br_report_ok(const struct br_report *r);

void br_report_text(FILE *f, const struct br_report *r);

/* A new JSON object (caller json_decref's it). */
json_t *br_report_json(const struct br_report *r);

/* One line naming the violation, for sweeps: "S3 at step 123 (reserve ...): msg". */
void br_report_violation_line(FILE *f, const struct br_report *r);

/* Peak resident memory of this process, KiB (getrusage). */
long br_peak_rss_kib(void);

/* Writes a duration for people: "1.250 s", "3.50 min", "2.00 h", "3.00 d". */
void br_report_fmt_ms(char *buf, size_t cap, int64_t ms);

/* Writes ms since the epoch as RFC 3339 UTC with milliseconds
 * ("2026-01-01T00:00:00.000Z") into buf (at least 32 bytes). */
void br_report_rfc3339(char *buf, size_t cap, int64_t ms);

/* Paces progress lines: due() is true at most once per period, the first
 * time one period after init, so runs shorter than a period print nothing. */
struct br_progress {
    double start_s;  /* monotonic clock at init */
    double next_s;   /* when the next line is due */
    double period_s; /* 1 s, or BR_PROGRESS_MS from the environment */
};

void br_progress_init(struct br_progress *p);

/* True when a line is due (and schedules the next one). Costs one clock read. */
bool br_progress_due(struct br_progress *p);

/* Seconds since init. */
double br_progress_elapsed(const struct br_progress *p);

#endif
