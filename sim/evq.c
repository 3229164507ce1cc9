/*
 * evq.c -- a 4-ary min-heap of (time, seq, slot) keys over a pool of
 * actions (see evq.h).
 */
#include "sim/evq.h"

#include <stdio.h>
#include <stdlib.h>

#include "core/panic.h"

static bool before(const struct br_evq_key *a, const struct br_evq_key *b)
{
    return a->at_ms < b->at_ms || (a->at_ms == b->at_ms && a->seq < b->seq);
}

static void *grow_or_die(void *p, size_t bytes)
{
    void *q = realloc(p, bytes);
    if (q == NULL) {
        fprintf(stderr, "bookingrush: sim: out of memory for the agenda\n");
        abort();
    }
    return q;
}

bool br_evq_init(struct br_evq *q, uint32_t cap_hint)
{
    q->count = 0;
    q->pushes = 0;
    q->cap = cap_hint < 64 ? 64 : cap_hint;
    q->keys = malloc(sizeof *q->keys * q->cap);
    q->pool_cap = q->cap;
    q->pool = malloc(sizeof *q->pool * q->pool_cap);
    q->free_head = 0;
    q->pool_used = 0;
    return q->keys != NULL && q->pool != NULL;
}

void br_evq_free(struct br_evq *q)
{
    free(q->keys);
    free(q->pool);
    q->keys = NULL;
    q->pool = NULL;
    q->count = q->cap = q->pool_cap = 0;
}

static uint32_t pool_take(struct br_evq *q)
{
    if (q->free_head != 0) {
        uint32_t slot = q->free_head - 1;
        q->free_head = q->pool[slot].next_free;
        return slot;
    }
    if (q->pool_used == q->pool_cap) {
        BR_ASSERT(q->pool_cap < UINT32_MAX / 2);
        q->pool_cap *= 2;
        q->pool = grow_or_die(q->pool, sizeof *q->pool * q->pool_cap);
    }
    return q->pool_used++;
}

void br_evq_push(struct br_evq *q, const struct br_action *a)
{
    if (q->count == q->cap) {
        BR_ASSERT(q->cap < UINT32_MAX / 2);
        q->cap *= 2;
        q->keys = grow_or_die(q->keys, sizeof *q->keys * q->cap);
    }
    BR_ASSERT(q->pushes < UINT32_MAX); /* seq must not wrap within a run */
    uint32_t slot = pool_take(q);
    q->pool[slot] = *a;
    struct br_evq_key k = {a->at_ms, (uint32_t)q->pushes++, slot};
    uint32_t i = q->count++;
    /* Sift up: bounded by the depth, log4(count). */
    while (i > 0) {
        uint32_t parent = (i - 1) / 4;
        if (!before(&k, &q->keys[parent])) {
            break;
        }
        q->keys[i] = q->keys[parent];
        i = parent;
    }
    q->keys[i] = k;
}

bool br_evq_pop(struct br_evq *q, struct br_action *out)
{
    if (q->count == 0) {
        return false;
    }
    uint32_t slot = q->keys[0].slot;
    *out = q->pool[slot];
    q->pool[slot].next_free = q->free_head;
    q->free_head = slot + 1;
    struct br_evq_key last = q->keys[--q->count];
    uint32_t n = q->count;
    uint32_t i = 0;
    /* Sift down: bounded by the depth. */
    for (;;) {
        uint32_t first = 4 * i + 1;
        if (first >= n) {
            break;
        }
        uint32_t best = first;
        uint32_t end = first + 4 < n ? first + 4 : n;
        for (uint32_t c = first + 1; c < end; c++) {
            if (before(&q->keys[c], &q->keys[best])) {
                best = c;
            }
        }
        if (!before(&q->keys[best], &last)) {
            break;
        }
        q->keys[i] = q->keys[best];
        i = best;
    }
    if (n > 0) {
        q->keys[i] = last;
    }
    return true;
}

void br_evq_check(const struct br_evq *q)
{
    for (uint32_t i = 1; i < q->count; i++) {
        BR_ASSERT(!before(&q->keys[i], &q->keys[(i - 1) / 4]));
    }
}
