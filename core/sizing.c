/*
 * sizing.c -- one rule from a few counts to the engine's capacities
 * (sizing.h); the ratios live in limits.h.
 */
#include "sizing.h"

#include <string.h>

#include "catalog.h"
#include "limits.h"
#include "panic.h"

_Static_assert(BR_QUEUE_PLACES_MIN >= BR_QUEUE_CAPACITY_MAX,
               "the smallest deployment takes an event with the largest default queue");
_Static_assert(BR_QUEUE_PLACES_MIN / BR_QUEUE_DEFAULT_SHARE >= 1, "a default queue has a place");

static uint32_t clamp_rows(uint64_t v)
{
    return v > BR_TABLE_ROWS_MAX ? BR_TABLE_ROWS_MAX : v < 1 ? 1u : (uint32_t)v;
}

/* given, else people * per_100 / 100 but at least floor, within
 * [1, BR_TABLE_ROWS_MAX]. */
static uint32_t pick_min(uint32_t given, uint64_t people, uint32_t per_100, uint32_t floor)
{
    uint64_t derived = people * per_100 / 100u;
    return clamp_rows(given != 0 ? given : derived < floor ? floor : derived);
}

static uint32_t pick(uint32_t given, uint64_t people, uint32_t per_100)
{
    return pick_min(given, people, per_100, 1);
}

void br_config_size(const struct br_sizing *z, uint64_t seed, struct br_config *cfg)
{
    uint64_t people = clamp_rows(z->people != 0 ? z->people : BR_PEOPLE_DEFAULT);
    memset(cfg, 0, sizeof *cfg);
    cfg->seed = seed;
    cfg->users_max = pick(z->users, people, BR_USERS_PER_100_PEOPLE);
    cfg->events_max = clamp_rows(z->events != 0 ? z->events : BR_EVENTS_DEFAULT);
    if (cfg->events_max > BR_EVENT_ID_MAX) {
        cfg->events_max = BR_EVENT_ID_MAX;
    }
    cfg->members_max = pick(z->members, people, BR_MEMBERS_PER_100_PEOPLE);
    cfg->queue_slots_max =
        pick_min(z->queue_places, people, BR_QUEUE_PLACES_PER_100_PEOPLE, BR_QUEUE_PLACES_MIN);
    cfg->passes_max = pick(z->passes, people, BR_PASSES_PER_100_PEOPLE);
    cfg->active_max = pick_min(z->active, people, BR_ACTIVE_PER_100_PEOPLE, BR_ACTIVE_MIN);
    cfg->holds_max = pick(z->holds, people, BR_HOLDS_PER_100_PEOPLE);
    cfg->seats_max = pick_min(z->seats, people, BR_SEATS_PER_100_PEOPLE, BR_SEATS_MIN);
    cfg->payments_max = pick(z->payments, people, BR_PAYMENTS_PER_100_PEOPLE);
    cfg->idem_max = pick(z->idem_keys, people, BR_IDEM_PER_100_PEOPLE);
    cfg->provider_events_max = clamp_rows(
        (uint64_t)cfg->payments_max * BR_PROVIDER_EVENTS_PER_PAYMENT + BR_PROVIDER_EVENTS_EXTRA);
    uint32_t qd =
        z->queue_default != 0 ? z->queue_default : cfg->queue_slots_max / BR_QUEUE_DEFAULT_SHARE;
    cfg->queue_capacity_default = qd < 1                      ? 1u
                                  : qd > cfg->queue_slots_max ? cfg->queue_slots_max
                                                              : qd;
    BR_ASSERT(cfg->queue_capacity_default <= cfg->queue_slots_max);
    BR_ASSERT(br_engine_memory_size(cfg) > 0);
}

void br_config_default(struct br_config *cfg)
{
    struct br_sizing z;
    memset(&z, 0, sizeof z);
    br_config_size(&z, 1, cfg);
}
