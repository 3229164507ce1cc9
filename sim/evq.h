/*
 * evq.h -- the simulator's agenda: a min-heap of future actions keyed by
 * (time, sequence number).
 *
 * The simulator is event-driven: nothing polls per millisecond; every future
 * thing (a user's next click, a worker's tick, a webhook delivery) is one
 * action with the simulated time it happens at. Ties on time are broken by
 * the order the actions were pushed (a counter), so the pop order is a total
 * order that depends only on what was pushed: two runs with the same seed
 * pop the same actions in the same order.
 *
 * Layout: the heap holds 16-byte keys (time, seq, slot) -- four children of
 * the 4-ary heap share one cache line -- and the actions themselves sit in a
 * pool indexed by slot, with a free list. Both grow by doubling (the
 * simulator is a driver, not the core, so it may allocate). Push and pop
 * are O(log n).
 */
#ifndef BR_SIM_EVQ_H
#define BR_SIM_EVQ_H

#include <stdbool.h>
#include <stdint.h>

struct br_action {
    int64_t at_ms; /* simulated time (ms since the scenario's start) */
    uint8_t kind;  /* the driver's action kind */
    uint8_t a8;    /* small arguments, meaning per kind */
    uint8_t b8;
    uint8_t c8;
    uint32_t who;       /* a user index, worker or event index */
    uint32_t gen;       /* generation: stale user actions are dropped */
    uint32_t next_free; /* pool free list (internal) */
    uint64_t x;         /* an id (pass, hold, payment) */
    uint64_t y;         /* a second id (idempotency key, provider event id) */
};

struct br_evq_key {
    int64_t at_ms;
    uint32_t seq;  /* push order (wraps after 2^32 pushes: asserted against) */
    uint32_t slot; /* index in the pool */
};

struct br_evq {
    struct br_evq_key *keys;
    uint32_t count;
    uint32_t cap;
    struct br_action *pool;
    uint32_t pool_cap;
    uint32_t free_head; /* slot + 1 of the first free pool entry, 0 = none */
    uint32_t pool_used; /* entries ever handed out */
    uint64_t pushes;
};

/* Empty queue with room for cap_hint actions. Returns false when out of memory. */
bool br_evq_init(struct br_evq *q, uint32_t cap_hint);
void br_evq_free(struct br_evq *q);

/* Pushes a copy of *a. Aborts when out of memory: a simulation cannot go on
 * without its agenda. */
void br_evq_push(struct br_evq *q, const struct br_action *a);

/* Pops the earliest action into *a; false when empty. */
bool br_evq_pop(struct br_evq *q, struct br_action *a);

/* Asserts the heap order. O(n); tests only. */
void br_evq_check(const struct br_evq *q);

#endif
