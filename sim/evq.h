/*
 * evq.h -- the simulator's agenda: a min-heap of future actions keyed by
 * (time, sequence number).
 *
 * The simulator is event-driven: nothing polls per millisecond; every future
 * thing (a user's next click, a worker's tick, a webhook delivery) is one
 * action with the simulated time it happens at. Ties on time are broken by
 * the order the actions were pushed (a 64-bit counter), so the pop order is
 * a total order that depends only on what was pushed: two runs with the same
 * seed pop the same actions in the same order.
 *
 * A 4-ary heap of plain values; it grows by doubling (the simulator is a
 * driver, not the core, so it may allocate). Push and pop are O(log n).
 */
#ifndef BR_SIM_EVQ_H
#define BR_SIM_EVQ_H

#include <stdbool.h>
#include <stdint.h>

struct br_action {
    int64_t at_ms;  /* simulated time (ms since the scenario's start) */
    uint64_t seq;   /* push order: the tie-break */
    uint8_t kind;   /* the driver's action kind */
    uint8_t a8;     /* small arguments, meaning per kind */
    uint8_t b8;
    uint8_t c8;
    uint32_t who;   /* a user index, worker or event index */
    uint32_t gen;   /* generation: stale user actions are dropped */
    uint64_t x;     /* an id (pass, hold, payment) */
    uint64_t y;     /* a second id (idempotency key, provider event id) */
};

struct br_evq {
    struct br_action *items;
    uint32_t count;
    uint32_t cap;
    uint64_t next_seq;
};

/* Empty queue with room for cap_hint actions. Returns false when out of memory. */
bool br_evq_init(struct br_evq *q, uint32_t cap_hint);
void br_evq_free(struct br_evq *q);

/* Pushes a copy of *a (its seq is assigned here). Aborts when out of memory:
 * a simulation cannot go on without its agenda. */
void br_evq_push(struct br_evq *q, const struct br_action *a);

/* Pops the earliest action into *a; false when empty. */
bool br_evq_pop(struct br_evq *q, struct br_action *a);

/* The earliest action, NULL when empty. */
const struct br_action *br_evq_top(const struct br_evq *q);

/* Asserts the heap order. O(n); tests only. */
void br_evq_check(const struct br_evq *q);

#endif
