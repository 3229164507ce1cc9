/*
 * engine.h -- the one entry point of the core: apply a command, get an
 * outcome and effects.
 *
 * The engine owns all state in one block of memory the caller hands in
 * (br_engine_memory_size tells how much); capacities come from struct
 * br_config and never change. br_engine_apply is deterministic: the same
 * config, seed and command sequence give the same outcomes, effects and
 * digests on every run and machine. It does no I/O, reads no clock and
 * allocates nothing.
 *
 * Two digests:
 *  - br_engine_digest(): a running hash chained over every (command,
 *    outcome, effects) applied, O(1) per command;
 *  - br_engine_state_hash(): a hash over the canonical state (zones, members,
 *    passes, holds, payments in id order), O(state); what another backend
 *    (the Redis twin) must reproduce from its own state.
 * br_engine_final_digest() combines both; simulator and replay print it.
 */
#ifndef BR_ENGINE_H
#define BR_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "catalog.h"
#include "cmd.h"
#include "err.h"
#include "heap.h"
#include "inventory.h"
#include "map.h"
#include "queue.h"
#include "rng.h"
#include "saga.h"
#include "session.h"

/* Capacities, fixed at init; core/sizing.h derives them from a few counts.
 * Cost per row (a map index takes 48-96 B an entry; limits.h sums them). */
struct br_config {
    uint64_t seed;                  /* drives the opening shuffles */
    uint32_t events_max;            /* 0.9 KiB each */
    uint32_t users_max;             /* 232 B each + email index + a session (24 B) */
    uint32_t members_max;           /* (event, user) pairs: 44 B + index */
    uint32_t queue_slots_max;       /* joins over all events: 8 B each */
    uint32_t queue_capacity_default; /* an event's slots when its spec says 0 */
    uint32_t passes_max;            /* 44 B + index */
    uint32_t active_max;            /* sum of max_active over events: 24 B each */
    uint32_t holds_max;             /* 100 B + index */
    uint32_t seats_max;             /* sum of zone capacities over events: 24 B each */
    uint32_t payments_max;          /* 136 B + index */
    uint32_t idem_max;              /* idempotency keys: 24 B + index */
    uint32_t provider_events_max;   /* de-duplicated provider event ids: index only */
    uint32_t email_hash_bits;       /* 0 = 64; fewer only in tests, to force email collisions */
};

struct br_engine {
    struct br_config cfg;
    struct br_event *events;
    uint32_t event_count;
    struct br_user *users;
    uint32_t user_count;
    struct br_map users_by_email;   /* (hash(email), n) -> user index (catalog.c) */
    struct br_member *members;
    uint32_t member_count;
    struct br_map members_by_key;   /* (event_id, user_id) -> member index */
    uint32_t *slots;                /* queue slot -> member index + 1, 0 = empty */
    uint32_t *fenwick;              /* per-event Fenwick trees over waiting slots */
    uint32_t slots_used;            /* slot ranges handed to events */
    struct br_pass *passes;
    uint32_t pass_count;
    struct br_map passes_by_id;
    uint32_t *pass_pos;             /* heap back-links for passes */
    struct br_heap_node *pass_nodes; /* pool for the events' pass heaps */
    uint32_t pass_nodes_used;
    struct br_hold *holds;
    uint32_t hold_count;
    struct br_map holds_by_id;
    uint32_t *hold_pos;
    struct br_heap_node *hold_nodes; /* pool for the events' hold heaps */
    uint32_t hold_nodes_used;
    struct br_payment *payments;
    uint32_t payment_count;
    struct br_map payments_by_id;
    uint32_t *payment_pos;
    struct br_heap refund_heap;     /* refund-pending payments by next attempt */
    uint32_t *check_pos;            /* check heap back-links for payments */
    struct br_heap check_heap;      /* undecided payments by next status query (saga.h) */
    struct br_idem *idems;
    uint32_t idem_count;
    struct br_map idem_by_key;      /* (user_id, key) -> idem index */
    struct br_map provider_events;  /* (provider event id, 0) -> 0 */
    struct br_effect *effects;      /* effects of the last command */
    uint32_t effect_count;
    uint32_t *scratch;              /* checkers' counters: members_max + events_max * zones */
    struct br_session *sessions;    /* refresh sessions (session.h) */
    uint32_t session_count;
    uint32_t sessions_max;          /* users_max * BR_SESSIONS_PER_USER */
    uint64_t digest;                /* running chain */
    uint64_t applied;               /* commands applied */
};

/* Fills cfg with the defaults: br_config_size (sizing.h) for
 * BR_PEOPLE_DEFAULT people and BR_EVENTS_DEFAULT events, seed 1 (112 MiB). */
void br_config_default(struct br_config *cfg);

/* Bytes of memory br_engine_init needs for cfg, or 0 when cfg is invalid
 * (a zero capacity, or one above 2^31). */
size_t br_engine_memory_size(const struct br_config *cfg);

/* Lays the engine out in mem (16-byte aligned, size >= memory_size).
 * BR_OK or BR_E_INVALID (bad config, memory too small). The engine keeps
 * pointers into mem; mem must outlive it. O(size) to zero it. */
int br_engine_init(struct br_engine *e, const struct br_config *cfg, void *mem, size_t size);

/* br_engine_init over memory the caller knows is all zero bytes (fresh from
 * calloc or mmap): nothing is zeroed again, so the block costs resident
 * memory only as rows are used. O(passes + holds + payments) (their heap
 * back-links, 4 bytes each, are set). */
int br_engine_init_zeroed(struct br_engine *e, const struct br_config *cfg, void *mem,
                          size_t size);

/* Applies one command at cmd->now_ms. Fills *out (cleared first) and returns
 * out->err. The effects stay readable through br_engine_effects until the
 * next apply. Worst-case work is bounded by the BR_*_MAX limits in limits.h
 * times O(log n). A command that fails changes no state (except the
 * idempotency record of a reserve, a due opening shuffle and the revocation
 * of a session whose old refresh token was reused (session.h), all of which
 * the outcome reflects deterministically). */
int br_engine_apply(struct br_engine *e, const struct br_cmd *cmd, struct br_outcome *out);

/* The effects of the last apply; *count set. */
const struct br_effect *br_engine_effects(const struct br_engine *e, uint32_t *count);

uint64_t br_engine_digest(const struct br_engine *e);
uint64_t br_engine_state_hash(const struct br_engine *e);
uint64_t br_engine_final_digest(const struct br_engine *e);

/* The chain step of the running digest; exported so another backend's
 * driver computes the same running digest from the outcomes it observes
 * (the outcome carries the effects' hash). */
uint64_t br_digest_step(uint64_t digest, const struct br_cmd *cmd, const struct br_outcome *out);

/* The running digest of a fresh engine seeded with `seed`. */
uint64_t br_digest_initial(uint64_t seed);

/* One record's contribution to br_engine_state_hash: the state hash is
 * br_hash_step(br_state_record(10, counts, 8), sum of every record's value),
 * so another backend reproduces it from the same records in any order. */
uint64_t br_state_record(uint64_t tag, const uint64_t *v, size_t n);

/* Hash of one outcome's fields (padding excluded). */
uint64_t br_outcome_hash(const struct br_outcome *out);

/* Hash of an effect list (outcome.effects_hash). */
uint64_t br_effects_hash(const struct br_effect *effects, uint32_t count);

/* For the modules: appends a zeroed effect of this kind to the current
 * command's list and returns it to be filled. The list holds BR_EFFECTS_MAX,
 * which bounds every command's emissions (limits.h). */
struct br_effect *br_engine_emit(struct br_engine *e, uint8_t kind);

/* Runs every module's checker (asserts). O(state). */
void br_engine_check(const struct br_engine *e);

/* ---- read-only queries (not commands: never journaled) ---- */

/* Per-event counters for the stats route. */
struct br_event_stats {
    uint32_t queue_length;
    uint32_t admitted;      /* passes issued over the sale */
    uint32_t active_passes;
    uint32_t bookings[BR_HOLD_STATE_COUNT];   /* by enum br_hold_state */
};
int br_engine_event_stats(const struct br_engine *e, uint64_t event_id, struct br_event_stats *s);

/* Which worker commands would change anything at now_ms (a bit set of
 * enum br_due), so drivers skip idle ticks and journal nothing: admit when
 * the opening shuffle is due, a pass has lapsed, or someone waits while
 * there is room; sweep when a hold's deadline has passed; saga when a
 * refund attempt is due; check when a payment's status query is due
 * (event_id is ignored for BR_DUE_SAGA and BR_DUE_CHECK). O(1). */
enum br_due { BR_DUE_ADMIT = 1, BR_DUE_SWEEP = 2, BR_DUE_SAGA = 4, BR_DUE_CHECK = 8 };
unsigned br_engine_due(const struct br_engine *e, uint64_t event_id, int64_t now_ms);

/* The label of an enum br_table (limits.h), "holds"; "unknown" out of range. */
const char *br_table_name(unsigned table);

/* Rows in use and rows allowed in a table (both 0 for event_queue and
 * other, which are not deployment tables). O(1). */
void br_engine_table_usage(const struct br_engine *e, unsigned table, uint32_t *used,
                           uint32_t *max);

/* Which table refused cmd, just after br_engine_apply answered it BR_E_FULL
 * (a refused command changes no state, so the engine still shows why).
 * BR_TABLE_OTHER when cmd was not refused for room. O(1). */
enum br_table br_engine_full_table(const struct br_engine *e, const struct br_cmd *cmd);

/* The user's holds, newest first: up to max ids into ids; returns how many. */
uint32_t br_engine_user_holds(const struct br_engine *e, uint64_t user_id, uint64_t *ids,
                              uint32_t max);

/* Name of a command type, hold state, queue status, payment state, effect kind. */
const char *br_cmd_name(uint8_t type);
const char *br_hold_state_name(uint8_t state);
const char *br_queue_status_name(uint8_t status);
const char *br_payment_state_name(uint8_t state);
const char *br_effect_name(uint8_t kind);

#endif
