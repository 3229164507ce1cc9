/*
 * catalog.h -- events with their zones, and users.
 *
 * Events and users are appended and never removed; their ids are their
 * index + 1. An event's record also carries the per-event state the other
 * modules own (queue range, pass and hold heaps, counters) so one lookup
 * finds everything about an event. Emails are unique byte strings.
 */
#ifndef BR_CATALOG_H
#define BR_CATALOG_H

#include <stdbool.h>
#include <stdint.h>

#include "cmd.h"
#include "heap.h"

struct br_engine;
struct br_outcome;

/* Issue 13: admissions per 10 s bucket over the last 5 min (queue.h: br_queue_rate_add/read). */
struct br_queue_rate {
    int64_t bucket_last; /* now / BR_RATE_BUCKET_MS of the newest bucket; -1 = none */
    int64_t since_ms;    /* the first admission's now */
    uint32_t n[BR_RATE_BUCKETS];
};

struct br_event {
    uint64_t id;
    uint64_t owner_user_id; /* who created it (event_create's actor); 0 = the system */
    struct br_event_spec spec;                 /* as created (queue_capacity resolved) */
    uint32_t zone_held[BR_EVENT_ZONES_MAX];    /* seats in live holds, per zone */
    uint32_t zone_sold[BR_EVENT_ZONES_MAX];    /* seats in confirmed holds, per zone */
    /* queue (queue.c) */
    uint32_t q_base;          /* first slot of this event's range in engine->slots */
    uint32_t q_tail;          /* slots used so far; the next join takes q_base + q_tail */
    uint32_t q_head;          /* no waiting slot lies before q_base + q_head */
    uint32_t q_waiting;       /* users waiting, pre-queue included */
    uint32_t q_prequeue_end;  /* slots [0, end) were taken before the opening */
    bool q_shuffled;          /* the opening shuffle has run */
    uint32_t passes_active;   /* issued, not consumed, not expired */
    uint32_t passes_issued;   /* over the whole sale */
    uint32_t pass_seq;        /* last pass number used */
    struct br_heap pass_heap; /* live passes by deadline; capacity max_active */
    /* Issue 13: the waiting room's live controls (queue.c, queue_gate.c). */
    uint8_t q_mode;             /* enum br_queue_mode, live */
    uint32_t q_max_active;      /* live max_active, 1..spec.max_active */
    uint32_t q_admit_per_min;   /* live pacing, 0 = off */
    int64_t q_pace_credit;      /* 1/60000 admissions; <= max(60000, apm * BR_PACE_BURST_MS) */
    int64_t q_pace_last_ms;
    uint8_t q_gate_told;        /* last inventory gate announced: OPEN, SEATS_HELD or SOLD_OUT */
    uint32_t q_lapsed;          /* places lapsed over the sale */
    struct br_queue_rate q_rate;
    /* inventory and saga (inventory.c, saga.c) */
    uint32_t hold_seq;
    uint32_t payment_seq;
    struct br_heap hold_heap;       /* live holds by deadline; capacity = seats */
    uint32_t bookings[BR_HOLD_STATE_COUNT];           /* holds by enum br_hold_state */
};

struct br_user {
    uint64_t id;
    uint8_t role; /* enum br_role */
    char email[BR_EMAIL_MAX];
    char name[BR_NAME_MAX];
    uint8_t password_hash[BR_PASSWORD_HASH_LEN];
    uint8_t salt[BR_SALT_LEN];
    uint32_t holds_head; /* newest hold's index + 1; 0 = none (list via br_hold.next_of_user) */
    uint64_t sessions_floor; /* logout-all: this user's sessions with id <= floor are revoked */
};

/* Command handlers; each fills *out and returns out->err. */
int br_catalog_event_create(struct br_engine *e, const struct br_cmd *c, struct br_outcome *out);
int br_catalog_user_register(struct br_engine *e, const struct br_cmd *c, struct br_outcome *out);
int br_catalog_user_role_set(struct br_engine *e, const struct br_cmd *c, struct br_outcome *out);

/* Whether a user with this (current) role may see and steer (stats,
 * queue_mode_set) the event owned by owner_user_id: administrators every event,
 * organizers their own, customers none. Pure; O(1). */
bool br_catalog_may_steer(uint8_t role, uint64_t user_id, uint64_t owner_user_id);

/* Validates an event spec without applying it: BR_OK or BR_E_INVALID. */
int br_catalog_spec_validate(const struct br_event_spec *s);

/* Lookups; NULL when absent. O(1). */
struct br_event *br_catalog_event(const struct br_engine *e, uint64_t event_id);
struct br_user *br_catalog_user(const struct br_engine *e, uint64_t user_id);

/* The user with this email, 0 if none. O(1) expected. */
uint64_t br_catalog_user_by_email(const struct br_engine *e, const char *email);

/* ---- event defaults: the one definition the API, the scenarios and the demo share ---- */

#define BR_EVENT_PER_USER_LIMIT_DEFAULT 4u
#define BR_EVENT_MAX_ACTIVE_DEFAULT 100u
#define BR_EVENT_ADMIT_PER_TICK_DEFAULT 10u
#define BR_EVENT_PASS_TTL_MS_DEFAULT 300000   /* 5 minutes to use a pass */
#define BR_EVENT_HOLD_TTL_MS_DEFAULT 600000   /* 10 minutes to pay for a hold */
/* Issue 13: the API's defaults for new events (br_event_spec_default); the
 * scenarios' parser defaults stay 0 (every switch off). */
#define BR_EVENT_PRESENCE_TTL_S_DEFAULT 300u
#define BR_EVENT_QUEUE_FLAGS_DEFAULT BR_QF_INVENTORY_AWARE
#define BR_EVENT_SHOW_AFTER_SALE_MS_DEFAULT (30LL * 24 * 3600 * 1000) /* starts_at - opens */
/* The default queue_capacity: joins per seat over the sale, clamped. */
#define BR_QUEUE_PER_SEAT 20u
#define BR_QUEUE_CAPACITY_MIN 10000u
#define BR_QUEUE_CAPACITY_MAX 250000u

/* Fills *s with the defaults of every setting for a sale opening at
 * opens_at_ms: pass required, the limits and TTLs above, starts_at 30 days
 * later; the waiting room's API defaults: presence_ttl_s 300, queue_flags
 * inventory-aware, mode open, no pacing, no proof of work (the scenario
 * parser and the generator zero the last two switches themselves). Names, venue and zones are left empty (zone_count 0), and
 * queue_capacity 0 until br_event_spec_queue_default is called once the
 * zones are known. O(1). */
void br_event_spec_default(struct br_event_spec *s, int64_t opens_at_ms);

/* The default queue_capacity for s's zones: BR_QUEUE_PER_SEAT joins per seat,
 * clamped to [BR_QUEUE_CAPACITY_MIN, BR_QUEUE_CAPACITY_MAX]. O(zones). */
uint32_t br_event_spec_queue_default(const struct br_event_spec *s);

/* Asserts: per zone held + sold <= capacity; ids are index + 1; email index. O(n). */
void br_catalog_check(const struct br_engine *e);

#define BR_SKIP_IDS_MAX (1u << 20) /* records a journal repair may skip the ids of */

/* After a journal repair dropped up to n records (n <= BR_SKIP_IDS_MAX):
 * moves every event's hold and payment counters n ahead, and its pass
 * counter n * admit_per_tick ahead, so no id a dropped record may have
 * handed out is handed out again. User and event ids are dense indices and
 * are not moved. O(events). */
void br_catalog_skip_ids(struct br_engine *e, uint32_t n);

#endif
