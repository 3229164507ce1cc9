/*
 * scenario.h -- what a simulation runs: events and zones, the crowd, the
 * payment provider's behaviour, the workers and the faults (scenarios/NAME.json,
 * every field documented in scenarios/README.md).
 *
 * A scenario is a plain value. br_scenario_defaults fills every field, the
 * parser overwrites what the file sets and rejects unknown keys (a typo must
 * not silently fall back to a default) and out-of-range values. Times are
 * milliseconds relative to the scenario's start (t = 0); the driver adds
 * start_epoch_ms to make the core's now_ms.
 *
 * Swarm testing: br_scenario_swarm redraws the fault mix from a seed, so a
 * sweep over seeds also sweeps over configurations: each fault is switched
 * off with probability 1/2 and otherwise scaled by a factor in [0.25, 2].
 *
 * Budgets (rejoins_max, reserve_attempts_max, payment_creates_max,
 * bot_requests) bound what each simulated person may do; the engine's
 * capacities are computed from them (br_scenario_config), so a table can
 * never fill up by surprise.
 */
#ifndef BR_SIM_SCENARIO_H
#define BR_SIM_SCENARIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/cmd.h"
#include "core/engine.h"

#define BR_SCN_EVENTS_MAX 8 /* events one scenario may create */
#define BR_SCN_QTY_MAX 8    /* quantity weights for 1..8 seats */
#define BR_SCN_NAME_MAX 64
#define BR_SCN_USERS_MAX 4000000u /* people one scenario may simulate */
#define BR_SCN_OPERATOR_MAX 16  /* issue 13: operator steps (queue_mode_set) in a scenario */

struct br_scn_range {
    int64_t min_ms;
    int64_t max_ms;
};

/* Issue 13: the events' waiting-room keys are fields of spec: "admit_per_min",
 * "presence_ttl_s", "pow_bits", "inventory_aware" (bool -> queue_flags
 * BR_QF_INVENTORY_AWARE) and "mode" (string -> enum br_queue_mode); the
 * parser's defaults are 0 / false / "open" (every switch off). */
struct br_scn_event {
    struct br_event_spec spec; /* sale_opens_at_ms / starts_at_ms relative to t = 0 */
    double weight;             /* share of the crowd that wants this event */
};

struct br_scn_crowd {
    uint32_t users;
    double early_fraction;            /* arrive before the opening (the pre-queue) */
    int64_t early_window_ms;          /* ... spread uniformly over this window before it */
    double spike_fraction;            /* of the others: arrive in the opening spike */
    int64_t spike_decay_ms;           /* spike arrivals: exponential, this mean after opening */
    int64_t tail_window_ms;           /* the rest: uniform over this window after opening */
    double patience_fraction;         /* users with finite patience in the queue */
    int64_t patience_mean_ms;         /* ... who give up after exp(mean) of waiting */
    double silent_leave_fraction;     /* of those: just close the tab (no leave command) */
    double admitted_abandon_fraction; /* admitted, never come back (the pass lapses) */
    double abandon_hold_fraction;     /* hold seats, never pay (the hold expires) */
    double cancel_fraction;           /* hold seats, then cancel */
    double double_click_fraction;     /* send each request twice (same idempotency key) */
    double tabs_fraction;             /* open several tabs (parallel joins and reserves) */
    uint32_t tabs_max;                /* tabs per such user, 2.. */
    double greedy_fraction;           /* try to buy past the per-user limit */
    double rejoin_fraction;           /* after a lapsed pass, expiry or sold out: queue again */
    uint32_t rejoins_max;             /* budget: new places in a queue after the first */
    uint32_t reserve_attempts_max;    /* budget: reserve commands per user */
    uint32_t payment_creates_max;     /* budget: payment_create commands per user */
    double quantity_weights[BR_SCN_QTY_MAX]; /* weight of asking for 1..8 seats */
    double zone_weights[BR_EVENT_ZONES_MAX]; /* preference per zone (0 = uniform) */
    struct br_scn_range think_ms;            /* between a person's steps */
    struct br_scn_range notify_ms;           /* a pass reaching the browser (SSE) */
    int64_t poll_ms;                         /* position polling when a notification was lost */
    double soldout_leave_fraction;           /* admitted while the page shows sold out: go home */
    uint32_t bots;                           /* scripted clients that hammer */
    uint32_t bot_requests;                   /* requests per bot */
    int64_t bot_interval_ms;                 /* between a bot's requests */
    /* Issue 13: of the people who wait in a queue, the share who leave
     * silently at a random moment while waiting (no leave command; no
     * presence report from then on; they never come back). 0 = none. */
    double abandon_share;
};

struct br_scn_payments {
    double decline_rate;   /* the provider declines the charge */
    double timeout_rate;   /* the charge call times out (the charge still happens) */
    double duplicate_rate; /* a webhook is delivered twice or more */
    double reorder_rate;   /* a payment gets a decline then a success, delivered reversed */
    double late_rate;      /* a webhook arrives late ... */
    int64_t late_max_ms;   /* ... up to this long after the charge (days) */
    struct br_scn_range latency_ms; /* the usual charge-to-webhook delay */
    double retry_after_decline;     /* a declined buyer pays again while the hold lives */
    double refund_failure_rate;     /* the provider refuses a refund call for now */
    double lost_rate;               /* a webhook is never delivered (every attempt lost) */
    uint32_t check_ms; /* point 8: payment_create's check_ms (quiet time before the saga asks
                          the provider), 0 = no checks; else BR_PAYMENT_CHECK_MS_MIN..MAX */
};

/* Issue 13: one operator step, "operator": [{"at_ms", "event", "mode"?,
 * "max_active"?, "admit_per_min"?}]: the driver issues queue_mode_set as the
 * system at at_ms (the API process's clock). set says which keys were given. */
struct br_scn_operator {
    int64_t at_ms;          /* relative to t = 0 */
    uint32_t event;         /* index into events[] */
    uint8_t set;            /* BR_QSET_* of the keys present, at least one */
    uint8_t mode;           /* enum br_queue_mode, when BR_QSET_MODE */
    uint32_t max_active;    /* when BR_QSET_MAX_ACTIVE */
    uint32_t admit_per_min; /* when BR_QSET_ADMIT_PER_MIN */
};

/* Issue 13: "door": the bot-farm cost model's inputs (the sim does no hashing). */
struct br_scn_door {
    uint8_t bot_pow_bits; /* 0..BR_POW_BITS_MAX */
    uint32_t join_limit;  /* accepted joins per address per window; 0 = none */
};

enum br_worker_kind {
    BR_WORKER_ADMITTER = 0,
    BR_WORKER_SWEEPER = 1,
    BR_WORKER_SAGA = 2,
    BR_WORKER_COUNT = 3
};

struct br_scn_worker {
    int64_t tick_ms;             /* between commands while there is work */
    uint32_t batch;              /* sweep max / saga_step max (admitter: unused) */
    double crashes_per_hour;     /* while faults are on (Poisson) */
    struct br_scn_range down_ms; /* how long a crash keeps it down */
};

/* Engine tables the driver keeps within (0 = the worst case the budgets
 * allow). A person whose next step would need a row past a cap gives up
 * instead (counted in the report), so a table never fills by surprise. */
struct br_scn_capacity {
    uint32_t holds;
    uint32_t payments;
    uint32_t idem_keys;
};

struct br_scenario {
    char name[BR_SCN_NAME_MAX];
    char path[512];         /* the file it came from (for the reproduce line) */
    uint64_t seed;          /* default seed when the command line gives none */
    int64_t start_epoch_ms; /* the core's now_ms at t = 0 */
    uint32_t event_count;
    struct br_scn_event events[BR_SCN_EVENTS_MAX];
    struct br_scn_crowd crowd;
    struct br_scn_payments payments;
    struct br_scn_worker workers[BR_WORKER_COUNT];
    struct br_scn_capacity capacity;
    int64_t faults_until_ms; /* crashes stop here (t); liveness is judged after */
    int64_t clock_skew_ms;   /* each process's clock is off by up to +- this */
    int64_t drain_max_ms;    /* after the faults stop, converge within this */
    bool swarm;              /* the fault mix was redrawn (br_scenario_swarm) */
    /* Issue 13: the waiting room (ISSUE13 §9.1; parsed in scenario.c). */
    uint32_t operator_count;
    struct br_scn_operator operators[BR_SCN_OPERATOR_MAX];
    int64_t presence_report_ms; /* "presence": {"report_ms"}: 0 = no presence ticks */
    bool compare;               /* run twice, the second time with every switch off (§9.2) */
    struct br_scn_door door;
};

/* Every field at its documented default: one event, one zone, 1,000 users. */
void br_scenario_defaults(struct br_scenario *s);

/* Parses a JSON scenario from text. BR_OK, or BR_E_INVALID with a message
 * (field path and reason) in err[0..err_cap). */
int br_scenario_parse(struct br_scenario *s, const char *json_text, char *err, size_t err_cap);

/* Reads and parses a file; path is remembered in s->path. */
int br_scenario_load(struct br_scenario *s, const char *path, char *err, size_t err_cap);

/* Issue 13 ("compare"): the same scenario with every waiting-room switch
 * off -- the events' admit_per_min, presence_ttl_s, pow_bits, queue_flags and
 * mode, the operator steps, the presence reports -- and the crowd unchanged
 * (people still abandon: nobody notices). compare itself stays set. */
void br_scenario_switches_off(struct br_scenario *s);

/* Redraws the fault mix and rates from seed (swarm testing). */
void br_scenario_swarm(struct br_scenario *s, uint64_t seed);

/* The event (index) user number `user` (0-based) wants: users are split
 * over events by weight, independently of the seed. */
uint32_t br_scenario_event_of_user(const struct br_scenario *s, uint32_t user);

/* How many users want event `event`. O(users). */
uint32_t br_scenario_event_users(const struct br_scenario *s, uint32_t event);

/* The engine capacities this scenario needs at most (budgets times people),
 * with cfg->seed = seed. Event specs get their queue_capacity here. */
void br_scenario_config(struct br_scenario *s, uint64_t seed, struct br_config *cfg);

#endif
