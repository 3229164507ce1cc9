/*
 * auditor.h -- the invariant checker: an independent model of an on-sale,
 * built only from the commands it sees and the outcomes and effects that
 * came back, checked after every step.
 *
 * It shares no code with the core. It keeps its own small model -- per zone
 * seats held and sold, per (event, user) the queue place and tickets, every
 * pass, hold and payment with its state, the idempotency answers given, the
 * provider event ids that took effect -- and holds each outcome against the
 * rules of docs/DESIGN.md:
 *
 *   S1 no oversell: held + sold <= capacity; a reserve refused as sold out
 *      really had too few seats; the backend's counters equal the model's
 *      after every step that touched a zone (every event's, however many)
 *      and for every zone at the end.
 *   S2 a confirmed hold never changes owner or state again.
 *   S3 the per-user limit (held + bought over the sale) holds; a reserve
 *      refused for the limit really was over it.
 *   S4 fairness: passes go out in queue order (the shuffled pre-queue first,
 *      then strict FIFO), never before the opening, at most max_active live;
 *      positions and queue lengths are right; the opening shuffle shuffles;
 *      nobody holds seats without a live pass of their own.
 *   S5 each provider event id takes effect once; one charge counts once;
 *      one booking has one payment (paying again after a decline reopens
 *      it, for a new confirmation of the same intent) and at most one
 *      successful charge.
 *   S6 a successful payment ends confirmed xor refunded, and it is refunded
 *      exactly when its hold was no longer live; payment_check (point 8)
 *      asks the provider only about open payments (pending or failed,
 *      created with checks, not closed), voiding exactly when the hold is
 *      gone.
 *   S7 an expired hold returns its seats exactly once, never before its
 *      deadline, sweeps go in deadline order.
 *   S8 charges = confirmed value + refunds owed; amounts match prices.
 *   S9 the same idempotency key always gets the same answer.
 *   L1 a sweep that did not hit its batch limit left no expired hold behind;
 *      at the end (br_auditor_finish): queues drained, no hold past its
 *      deadline, every payment final, no refund owed.
 *   I1 (issue 13) inventory: no pass while no seat is available; a sold-out
 *      queue closes (events with BR_QF_INVENTORY_AWARE).
 *      Every seat sold: a join taking a new place is refused SOLD_OUT, and
 *      the next admit announces sold_out (queue_state) to the waiting users;
 *      each admit announces exactly when the inventory gate changed.
 *   M1 (issue 13) modes: no admission while paused, closed or passthrough;
 *      closed refuses joins that would take a new place, passthrough answers
 *      them without one and lets holds go without a pass; queue_mode_set
 *      answers and announces the model's mode and gate; outflow within
 *      admit_per_min by the auditor's own pace-credit model (so over any
 *      window w at most apm * w / 60000 + the 2 s burst).
 *   S4 (issue 13, with presence_ttl_s): passes in queue order among the
 *      users present: a place_lapsed for a user the model saw (join or
 *      presence) less than presence_ttl ago, or a pass to a user absent for
 *      presence_ttl or more, is a violation; an absent earlier joiner must
 *      have lapsed before a later one is admitted (the order check).
 *
 * The first violation is kept with the step, the command and the entities;
 * counts of checks and violations are kept per invariant. Cost per step is
 * O(effects * log n); memory is about 100 bytes per person plus 32 per hold.
 */
#ifndef BR_SIM_AUDITOR_H
#define BR_SIM_AUDITOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/cmd.h"
#include "core/engine.h"
#include "sim/backend.h"

enum br_inv {
    BR_INV_S1 = 0,
    BR_INV_S2,
    BR_INV_S3,
    BR_INV_S4,
    BR_INV_S5,
    BR_INV_S6,
    BR_INV_S7,
    BR_INV_S8,
    BR_INV_S9,
    BR_INV_L1,
    BR_INV_I1, /* issue 13: inventory-aware admission, sold-out closing */
    BR_INV_M1, /* issue 13: operator modes and outflow */
    BR_INV_COUNT
};

/* "S1" ... "L1", "I1", "M1". */
const char *br_inv_name(int inv);
/* One line: what the invariant says. */
const char *br_inv_title(int inv);

struct br_violation {
    int inv;        /* enum br_inv */
    uint64_t step;  /* 1-based index of the command in the run */
    int64_t now_ms; /* the command's clock */
    uint8_t cmd_type;
    uint64_t event_id; /* entities involved; 0 = none */
    uint64_t user_id;
    uint64_t hold_id;
    uint64_t payment_id;
    uint64_t pass_id;
    char msg[256];
};

struct br_audit_funnel {
    uint64_t joined;   /* distinct (event, user) that joined a queue */
    uint64_t admitted; /* passes issued */
    uint64_t held;     /* holds created */
    uint64_t confirmed;
    uint64_t expired;
    uint64_t cancelled;
    uint64_t refunded; /* refunds completed */
    uint64_t declined; /* payments that failed */
};

struct br_audit_liveness {
    bool converged;
    uint64_t waiting;       /* still in a queue */
    uint64_t overdue_holds; /* held past their deadline */
    uint64_t live_holds;    /* held, deadline not reached */
    uint64_t pending_payments;
    uint64_t refunds_owed;
};

/* Issue 13: the waiting room's figures, as the auditor's model saw them. */
struct br_audit_wr {
    uint64_t passes_no_seats; /* passes issued while no seat was available (any event) */
    uint64_t passes_absent;   /* passes to users not seen for presence_ttl (events with it) */
    uint64_t lapsed;          /* place_lapsed effects */
    uint64_t queue_states;    /* queue_state effects */
    int64_t sold_out_ms;      /* now_ms when the first event to sell out sold its last seat, -1 */
    int64_t sold_out_told_ms; /* its first queue_state sold_out after that, -1 = never */
};

struct br_auditor;

/* A new auditor. cfg sizes nothing hard (the model grows) but is kept for
 * the default queue capacity. backend may be NULL; when its zone_counts is
 * set, the model's seat counters are compared with the backend's after
 * every step that touched them. NULL when out of memory. */
struct br_auditor *br_auditor_new(const struct br_config *cfg,
                                  const struct br_sim_backend *backend);
void br_auditor_free(struct br_auditor *a);

/* A journal repair's id skip (journal_file.h) applies here: in every event
 * known so far, the next pass, hold and payment id may each jump forward
 * once (the ids between were lost with the damage and never exist); never
 * back. Call it where the replay applies the skip. */
void br_auditor_skip_ids(struct br_auditor *a);

/* Audits one applied command: its outcome and effects fx[0..n). */
void br_auditor_observe(struct br_auditor *a, const struct br_cmd *cmd,
                        const struct br_outcome *out, const struct br_effect *fx, uint32_t n);

/* End-of-run checks (L1, and S6/S8 in their final form) at time now_ms;
 * fills *live. Call once, when the driver believes everything converged. */
void br_auditor_finish(struct br_auditor *a, int64_t now_ms, struct br_audit_liveness *live);

/* Counts the state that is not final yet, without judging (replay of a log
 * that ends mid-sale). */
void br_auditor_liveness(const struct br_auditor *a, int64_t now_ms,
                         struct br_audit_liveness *live);

uint64_t br_auditor_violations(const struct br_auditor *a);
const struct br_violation *br_auditor_first(const struct br_auditor *a); /* NULL if none */
uint64_t br_auditor_checks(const struct br_auditor *a, int inv);
uint64_t br_auditor_violations_of(const struct br_auditor *a, int inv);
uint64_t br_auditor_steps(const struct br_auditor *a);
const struct br_audit_funnel *br_auditor_funnel(const struct br_auditor *a);
const struct br_audit_wr *br_auditor_wr(const struct br_auditor *a);

/* Fairness: the worst admission inversion (waiting users who joined after
 * the opening and before the admitted one, plus pre-queue users still
 * waiting when a later joiner was admitted) and the wait from join to pass. */
uint64_t br_auditor_worst_inversion(const struct br_auditor *a);
/* p in [0, 1]: the p-quantile of join-to-pass waits in ms (0 when none). */
int64_t br_auditor_wait_quantile(struct br_auditor *a, double p);
uint64_t br_auditor_waits(const struct br_auditor *a);

/* Money as the auditor saw it: sum of successful charges, of confirmed
 * bookings' value, of refunds owed (pending or done) and done. */
void br_auditor_money(const struct br_auditor *a, int64_t *charged, int64_t *confirmed,
                      int64_t *refund_owed, int64_t *refunded);

/* Records a violation found by the driver (checks it makes from outside the
 * command stream, e.g. the provider's ledger). */
void br_auditor_report(struct br_auditor *a, int inv, const char *msg);
/* Counts a check made by the driver. */
void br_auditor_count_check(struct br_auditor *a, int inv);

#endif
