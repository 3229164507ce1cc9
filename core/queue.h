/*
 * queue.h -- the waiting room: joins, leaves, the opening shuffle,
 * admission, and passes.
 *
 * Each event owns a contiguous range of slots (engine->slots), handed out in
 * join order; a slot holds the index + 1 of the member (event, user) who
 * took it, or 0 once that member left or was admitted. A Fenwick tree over
 * the range counts waiting slots, so a position (waiting slots up to mine)
 * and a leave are O(log n). Joins before sale_opens_at fill the front of the
 * range; at the first command on the event at or after the opening, that
 * prefix is shuffled by Fisher-Yates with a stream drawn from (seed,
 * event id) alone, so arriving a millisecond early buys nothing and the
 * order depends only on the seed. After that the order is strict FIFO.
 *
 *   join ──▶ prequeue ──opening shuffle──▶ waiting ──admit──▶ admitted ──reserve──▶ used
 *                 └─────────leave─────────────┴──▶ left         └──now >= deadline──▶ expired
 *
 * Admission: admit expires passes whose deadline <= now (each returns its
 * slot in max_active), then issues min(max_active - active, admit_per_tick)
 * passes to the head of the queue. A pass is bound to (event, user), valid
 * while now < deadline, and consumed once by a successful hold. A re-join
 * while waiting or admitted keeps the place; after the pass was used or
 * expired, or after a leave, a join takes a new place at the back.
 */
#ifndef BR_QUEUE_H
#define BR_QUEUE_H

#include <stdbool.h>
#include <stdint.h>

#include "cmd.h"

struct br_engine;

/* The opening shuffle's rng stream: br_rng_seed(seed, BR_SHUFFLE_STREAM ^
 * event_id). Public because the Redis twin draws the same permutation. */
#define BR_SHUFFLE_STREAM 0x5348554646000000ULL /* "SHUFF" */

/* (event, user): queue place, pass and ticket count for the per-user limit. */
struct br_member {
    uint64_t event_id;
    uint64_t user_id;
    uint32_t slot;    /* absolute slot + 1 while prequeue/waiting, else 0 */
    uint8_t status;   /* enum br_queue_status */
    uint64_t pass_id; /* latest pass, 0 = none */
    uint32_t tickets; /* held + confirmed over the whole sale (per-user limit) */
    int64_t seen_ms;  /* last sign of life (join, presence); 0 = never */
};

enum br_pass_state { BR_PASS_LIVE = 1, BR_PASS_USED = 2, BR_PASS_EXPIRED = 3 };

struct br_pass {
    uint64_t id;
    uint32_t member; /* member index */
    int64_t issued_ms;
    int64_t deadline_ms; /* valid while now < deadline */
    uint8_t state;       /* enum br_pass_state */
};

/* A user's view of a queue, for the position route. */
struct br_queue_view {
    uint8_t status;         /* enum br_queue_status */
    uint32_t position;      /* 1 = next; 0 unless waiting */
    uint32_t queue_length;  /* waiting, pre-queue included */
    uint64_t pass_id;       /* when admitted */
    int64_t pass_deadline_ms;
};

int br_queue_join(struct br_engine *e, const struct br_cmd *c, struct br_outcome *out);
int br_queue_leave(struct br_engine *e, const struct br_cmd *c, struct br_outcome *out);
int br_queue_admit(struct br_engine *e, const struct br_cmd *c, struct br_outcome *out);

/* Finds or creates the member (event, user). Returns its index, or
 * UINT32_MAX when the member table is full. */
uint32_t br_queue_member(struct br_engine *e, uint64_t event_id, uint64_t user_id);

/* The member index of (event, user), UINT32_MAX if none. */
uint32_t br_queue_member_find(const struct br_engine *e, uint64_t event_id, uint64_t user_id);

/* Checks a pass for a reserve by `member` at now_ms: BR_OK, BR_E_PASS_INVALID
 * (unknown, other event or user, used) or BR_E_PASS_EXPIRED. Changes nothing.
 * On BR_OK *pass_index is set. */
int br_queue_pass_validate(const struct br_engine *e, uint64_t pass_id, uint32_t member,
                           int64_t now_ms, uint32_t *pass_index);

/* Consumes a validated pass: live -> used; frees its active slot. */
void br_queue_pass_consume(struct br_engine *e, uint32_t pass_index);

/* Runs the opening shuffle if it is due at now_ms. Idempotent. */
void br_queue_open_if_due(struct br_engine *e, uint64_t event_id, int64_t now_ms);

/* Read-only view (no shuffle is run; a due shuffle shows as prequeue). */
int br_queue_view(const struct br_engine *e, uint64_t event_id, uint64_t user_id,
                  struct br_queue_view *v);

/* The wait, in whole seconds rounded up, of someone at `position` (1 = next)
 * in a queue whose admitter runs every tick_ms (> 0) and admits up to
 * spec->admit_per_tick a tick, plus the time until the sale opens when it
 * has not yet. An estimate from the settings, not a promise: it assumes every
 * tick admits its full share. Saturates at UINT32_MAX. O(1). */
uint32_t br_queue_wait_estimate_s(const struct br_event_spec *spec, uint32_t position,
                                  uint32_t tick_ms, int64_t now_ms);

/* ---- Issue 13: the waiting room (queue_gate.c; ISSUE13 §2-§5) ---- */

/* Command handlers: queue_mode_set (19) and presence (20). */
int br_queue_mode_set(struct br_engine *e, const struct br_cmd *c, struct br_outcome *out);
int br_queue_presence(struct br_engine *e, const struct br_cmd *c, struct br_outcome *out);

struct br_event;
struct br_queue_rate;

uint32_t br_queue_seats_available(const struct br_event *ev);    /* sum capacity - held - sold */
bool br_queue_sold_out(const struct br_event *ev);               /* every zone sold == capacity */
uint8_t br_queue_gate(const struct br_event *ev, int64_t now_ms); /* enum br_queue_gate, §2 */
/* The inventory gate: SOLD_OUT / SEATS_HELD for an inventory-aware event with no
 * seat left to sell / to hold, else OPEN. What q_gate_told remembers. O(zones). */
uint8_t br_queue_inv_gate(const struct br_event *ev);
void br_queue_rate_add(struct br_queue_rate *r, int64_t now_ms, uint32_t admitted);
void br_queue_rate_read(const struct br_queue_rate *r, int64_t now_ms, uint32_t *count,
                        int64_t *span_ms);

enum br_estimate_basis { BR_EST_NONE = 0, BR_EST_MEASURED = 1, BR_EST_CONFIGURED = 2 };
struct br_queue_estimate {
    uint8_t basis;             /* enum br_estimate_basis */
    uint32_t admitted_per_min; /* measured over the window; 0 when not measured */
    uint32_t wait_s;           /* UINT32_MAX = unknown (JSON null) */
};
void br_queue_estimate(const struct br_event_spec *spec, uint32_t admit_per_min_live,
                       const struct br_queue_rate *rate, uint8_t gate, uint32_t position,
                       uint32_t tick_ms, int64_t now_ms, struct br_queue_estimate *out);

/* Inputs of the admitter's due rule: the engine fills it from br_event, the distributed
 * admitter from struct br_redis_due; one rule for both (br_engine_due, roles.c decide()). */
struct br_queue_due_in {
    bool exists, shuffled;
    int64_t opens_ms, next_pass_ms; /* next live pass deadline, INT64_MAX = none */
    uint32_t waiting, active, max_active_live, avail, admit_per_min;
    uint8_t mode, flags, gate_told;
    bool sold_out;
    int64_t pace_credit, pace_last_ms;
};
void br_queue_due_in_of(const struct br_event *ev, struct br_queue_due_in *in);
bool br_queue_admit_due(const struct br_queue_due_in *in, int64_t now_ms);

/* For the status route and position views. O(zones). */
struct br_queue_event_view {
    uint8_t mode, gate, pow_bits;
    bool sold_out;
    uint32_t queue_length, max_active, admit_per_min, presence_ttl_s;
    struct br_queue_estimate join_now; /* for position queue_length + 1 */
};
int br_queue_event_view(const struct br_engine *e, uint64_t event_id, int64_t now_ms,
                        uint32_t tick_ms, struct br_queue_event_view *v); /* BR_OK, NOT_FOUND */
/* br_queue_view keeps its signature: its status carries the overlay (8-10 need
 * no clock: sold_out and mode are state). Gate and estimate for a user come from
 * br_queue_event_view + br_queue_estimate(position), which take now_ms. */

/* "open", "paused", ... / "open", "not_open", "seats_held", ...: the API's
 * names (BR_QUEUE_MODE_MAP / BR_QUEUE_GATE_MAP); "unknown" out of range. */
const char *br_queue_mode_name(uint8_t mode);
const char *br_queue_gate_name(uint8_t gate);
/* The mode for an API name; BR_QUEUE_MODE_COUNT when none. */
uint8_t br_queue_mode_parse(const char *name);

/* Asserts Fenwick sums, waiting counts, active pass counts, heap links. O(n). */
void br_queue_check(const struct br_engine *e);

#endif
