/*
 * rush_report.h -- the rush's report: text for a person (stdout) and JSON
 * for scripts (--json, schema version 1, "rush": 1). Both are built from the
 * same result: the configuration, the ledger, the meter and the verdict.
 * The JSON's keys are the contract scripts/test.d/78-rush.sh and
 * scripts/bench.d/70-rush.sh read with jq (docs/DESIGN.md "Rehearsing an on-sale").
 */
#ifndef BR_SERVER_RUSH_REPORT_H
#define BR_SERVER_RUSH_REPORT_H

#include <stdio.h>

#include <jansson.h>

#include "server/rush.h"
#include "server/rush_meter.h"
#include "server/rush_verdict.h"

enum br_rush_phase { BR_RUSH_PHASE_PREPARE = 0, BR_RUSH_PHASE_CROWD, BR_RUSH_PHASE_SETTLE,
                     BR_RUSH_PHASE_VERDICT, BR_RUSH_PHASE_COUNT };

struct br_rush_result {
    const struct br_rush_config *cfg;
    const struct br_rush_ledger *ledger;
    const struct br_rush_meter *meter;
    const struct br_rush_verdict *verdict;
    double phase_s[BR_RUSH_PHASE_COUNT];
    const char *backend;   /* "embedded", "distributed" or "unknown" (from /readyz or /metrics) */
    const char *reproduce; /* the command line that repeats the run */
};

/* Writes the text report; 0, or -1 on a write error. */
int br_rush_report_text(FILE *f, const struct br_rush_result *r);
/* The JSON report (caller owns the reference); NULL only when out of memory. */
json_t *br_rush_report_json(const struct br_rush_result *r);

#endif /* BR_SERVER_RUSH_REPORT_H */
