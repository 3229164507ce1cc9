/*
 * map.h -- a fixed-capacity hash map from a pair of 64-bit keys to a 32-bit
 * value (an index into some table), with linear probing and backward-shift
 * deletion (no tombstones, so probe lengths never degrade).
 *
 * The slot array is sized at init to the next power of two >= 2 * count_max,
 * so the load factor stays <= 0.5 and an operation probes O(1) slots
 * expected. A full map returns BR_E_FULL and never grows. Cost: 24 bytes a
 * slot, i.e. about 48-96 bytes per entry of count_max.
 */
#ifndef BR_MAP_H
#define BR_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arena.h"

struct br_map_slot {
    uint64_t a;
    uint64_t b;
    uint32_t value;
    uint32_t used; /* 0 = empty */
};

struct br_map {
    struct br_map_slot *slots;
    uint32_t mask;      /* slot count - 1 */
    uint32_t count;     /* entries present */
    uint32_t count_max; /* entries allowed */
};

/* Carves the slots out of the arena. count_max >= 1. */
void br_map_init(struct br_map *m, struct br_arena *arena, uint32_t count_max);

/* Finds (a, b). Returns true and sets *value when present. O(1) expected. */
bool br_map_get(const struct br_map *m, uint64_t a, uint64_t b, uint32_t *value);

/* Inserts (a, b) -> value. BR_OK, BR_E_DUPLICATE if present (unchanged),
 * BR_E_FULL if count_max entries are present (unchanged). */
int br_map_put(struct br_map *m, uint64_t a, uint64_t b, uint32_t value);

/* Removes (a, b). Returns true if it was present. */
bool br_map_del(struct br_map *m, uint64_t a, uint64_t b);

/* Asserts the probing invariant for every entry. O(slots). */
void br_map_check(const struct br_map *m);

#endif
