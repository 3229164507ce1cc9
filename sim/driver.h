/*
 * driver.h -- turns a scenario and a seed into a stream of commands against
 * a backend: the crowd, the workers, the payment provider and the faults.
 *
 * Event-driven: an agenda (evq.h) holds every future action -- a person's
 * next click, a worker's tick, a charge reaching the provider, a webhook
 * delivery, a crash, a restart -- keyed by (simulated time, push order).
 * Nothing polls per millisecond; a worker with nothing to do sleeps until
 * something wakes it, so a sale whose last webhook comes three days late
 * costs a handful of actions for those three days, not 260 million ticks.
 *
 * Processes and clocks. Commands come from four processes -- the API (what
 * people do), the admitter, the sweeper and the saga worker -- each with its
 * own clock offset (clock skew), redrawn when it restarts. A crashed worker
 * is a gap in its commands; a crash lands "at a step": the worker's next
 * command is applied and then everything that should have followed it is
 * lost (a webhook's acknowledgement, a refund's result, the passes'
 * notifications), which is exactly what the core's recovery must survive.
 *
 * Every command goes through one function that applies it to the backend,
 * appends it to the record (when --record), and hands it to the auditor; the
 * run stops at the first violation. The run ends when the agenda is empty
 * (everything settled) or at faults_until + drain_max (then liveness fails).
 *
 * Randomness: one seed, split into independent streams (crowd arrivals,
 * behaviour, provider, faults, bots, clocks), so the same seed replays the
 * same run bit for bit, and changing one subsystem's draws leaves the
 * others' numbers alone.
 */
#ifndef BR_SIM_DRIVER_H
#define BR_SIM_DRIVER_H

#include <stdbool.h>
#include <stdint.h>

#include "adapters/journal_file.h"
#include "sim/auditor.h"
#include "sim/backend.h"
#include "sim/scenario.h"

enum br_fault {
    BR_FAULT_ADMITTER_CRASH = 0,
    BR_FAULT_SWEEPER_CRASH,
    BR_FAULT_SAGA_CRASH,
    BR_FAULT_LOST_AFTER_STEP, /* a crash landed between a command and its follow-up */
    BR_FAULT_WEBHOOK_DUPLICATE,
    BR_FAULT_WEBHOOK_REORDER,
    BR_FAULT_WEBHOOK_LATE,
    BR_FAULT_WEBHOOK_RETRY, /* a delivery failed (saga down) and was retried */
    BR_FAULT_PAYMENT_DECLINE,
    BR_FAULT_PAYMENT_TIMEOUT,
    BR_FAULT_REFUND_FAILURE,
    BR_FAULT_CLOCK_SKEW, /* processes started with a skewed clock */
    BR_FAULT_DOUBLE_CLICK,
    BR_FAULT_EXTRA_TAB,
    BR_FAULT_BOT_REQUEST,
    BR_FAULT_WEBHOOK_LOST, /* a webhook never delivered (point 8's checks must decide it) */
    BR_FAULT_COUNT
};

const char *br_fault_name(int fault);

struct br_driver_stats {
    uint64_t commands;
    uint64_t by_type[BR_CMD_TYPE_COUNT];
    uint64_t faults[BR_FAULT_COUNT];
    uint64_t users;        /* people simulated (bots excluded) */
    int64_t sim_end_ms;    /* simulated time of the last action (since t = 0) */
    int64_t faults_end_ms; /* when the last fault ended */
    bool converged;        /* everything settled before the drain limit */
    int64_t converge_ms;   /* from the end of the faults to the last action */
    bool stopped_on_violation;
    uint64_t capacity_refusals; /* steps given up because an engine table was at its cap */
    int64_t provider_captured;  /* money the provider took (its own ledger) */
    int64_t provider_refunded;
    uint64_t reconfirmations;   /* intents confirmed again after a decline */
    uint64_t provider_queries;  /* status queries answered (point 8), voids included */
    uint64_t provider_voids;    /* intents cancelled by a void */
    struct br_audit_liveness live;
    /* Issue 13: the waiting room as the crowd lived it. */
    uint64_t abandoned;          /* people who left a queue silently (crowd.abandon_share) */
    uint64_t passes_to_gone;     /* passes issued to people who had left (wasted) */
    uint64_t operator_steps;     /* queue_mode_set commands applied */
    uint64_t presence_commands;  /* presence batches sent */
    uint64_t told_closed;        /* waiting people told closed or sold out (queue_state) */
    uint64_t estimates;          /* joins with an estimate that later got a pass */
    int64_t est_err_p50_ms;      /* |estimated - actual wait|, -1 = no estimate (redis) */
    int64_t est_err_p99_ms;
};

/* Where a run is, for progress lines (br_driver_opts.progress). */
struct br_driver_progress {
    uint32_t arrived;      /* people who have arrived so far */
    uint32_t users;        /* people in the scenario */
    int64_t simulated_ms;  /* simulated time since t = 0 */
    uint64_t commands;     /* applied so far */
    uint64_t violations;   /* found so far (a run stops at the first) */
};

struct br_driver_opts {
    const struct br_scenario *scn; /* configured (br_scenario_config ran on it) */
    const struct br_config *cfg;   /* the engine's capacities: the driver stays within */
    uint64_t seed;
    struct br_sim_backend *backend;
    struct br_auditor *auditor;
    struct br_journal_writer *record; /* NULL: no record */
    uint32_t self_check_every; /* run the backend's self-check every N commands (0 = never) */
    /* Called every 1024 actions with the run's progress; NULL = never. Only
     * reads the run: nothing it does changes what the run does. */
    void (*progress)(void *ctx, const struct br_driver_progress *p);
    void *progress_ctx;
};

/* Runs the scenario to the end. Returns BR_OK (the stats say whether a
 * violation stopped it), or an error when the run could not proceed (the
 * record file failed, the backend refused setup). */
int br_driver_run(const struct br_driver_opts *o, struct br_driver_stats *stats);

#endif
