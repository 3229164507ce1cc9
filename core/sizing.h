/*
 * sizing.h -- how big the engine's tables are: one rule from a few counts
 * to a struct br_config, shared by the server's flags (--people and the
 * per-table overrides) and the simulator's scenarios.
 *
 * A deployment is sized for a number of people; every other table follows
 * from it by the ratios in limits.h unless given. Nothing here allocates:
 * br_engine_memory_size() says what a config costs, and the engine's
 * layout touches a page only when a row on it is first used, so a config
 * costs resident memory in proportion to what the sale actually stores
 * (br_engine_init_zeroed).
 *
 * Capacities are part of the journal's header: a journal replays only with
 * the config it was written with (a full table answers BR_E_FULL, and that
 * answer is in the record), so a running deployment keeps its sizes.
 */
#ifndef BR_SIZING_H
#define BR_SIZING_H

#include <stdint.h>

#include "engine.h"

/* The counts a config is derived from. 0 means "derive it" (from people by
 * the ratios in limits.h); a value above BR_TABLE_ROWS_MAX is taken as that. */
struct br_sizing {
    uint32_t people;        /* what the other counts derive from; 0 = BR_PEOPLE_DEFAULT */
    uint32_t users;         /* accounts; 0 = people */
    uint32_t events;        /* 0 = BR_EVENTS_DEFAULT */
    uint32_t members;       /* (event, person) pairs: one per queue a person joins */
    uint32_t queue_places;  /* queue slots shared by all events for the whole sale */
    uint32_t queue_default; /* an event's queue when its spec says 0; 0 = places / 4 */
    uint32_t passes;        /* passes issued over the whole sale */
    uint32_t active;        /* sum of the events' max_active */
    uint32_t holds;         /* holds over the whole sale */
    uint32_t seats;         /* sum of the events' zone capacities */
    uint32_t payments;      /* payments over the whole sale (provider events: 2 each + 16) */
    uint32_t idem_keys;     /* reserves that carry an idempotency key */
};

/* Fills cfg (seed included) from z. Every capacity lands in
 * [1, BR_TABLE_ROWS_MAX], and queue_capacity_default <= queue_slots_max, so
 * br_engine_memory_size(cfg) > 0 for any z. Pure, O(1). */
void br_config_size(const struct br_sizing *z, uint64_t seed, struct br_config *cfg);

#endif
