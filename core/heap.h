/*
 * heap.h -- an indexed binary min-heap of deadlines.
 *
 * Items are indices into the caller's table (holds, passes, payments). Ties
 * on the deadline are broken by a caller-chosen 64-bit key (an id), so the
 * pop order is a total order that depends only on the data: two runs pop the
 * same items in the same order. pos[] is indexed by item and may be shared by
 * several heaps as long as an item sits in at most one of them; it lets an
 * item leave from the middle in O(log n) (a hold confirmed before expiry).
 */
#ifndef BR_HEAP_H
#define BR_HEAP_H

#include <stdbool.h>
#include <stdint.h>

#define BR_HEAP_NOWHERE UINT32_MAX /* pos[item] of an item in no heap */

struct br_heap_node {
    int64_t deadline_ms;
    uint64_t key; /* tie-break */
    uint32_t item;
};

struct br_heap {
    struct br_heap_node *nodes; /* count_max of them, owned by the caller */
    uint32_t *pos;              /* item -> node index, BR_HEAP_NOWHERE if absent */
    uint32_t count;
    uint32_t count_max;
};

/* nodes has room for count_max; pos covers every item that may be pushed and
 * is filled with BR_HEAP_NOWHERE by the caller once. */
void br_heap_init(struct br_heap *h, struct br_heap_node *nodes, uint32_t count_max, uint32_t *pos);

/* BR_OK or BR_E_FULL. The item must not be in a heap. O(log n). */
int br_heap_push(struct br_heap *h, uint32_t item, int64_t deadline_ms, uint64_t key);

/* The earliest node, or NULL when empty. O(1). */
const struct br_heap_node *br_heap_top(const struct br_heap *h);

/* Removes the item (which must be in this heap). O(log n). */
void br_heap_remove(struct br_heap *h, uint32_t item);

/* Asserts the heap order and the pos[] back-links. O(n). */
void br_heap_check(const struct br_heap *h);

#endif
