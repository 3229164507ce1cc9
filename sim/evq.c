/*
 * evq.c -- a 4-ary min-heap of actions keyed by (at_ms, seq). Four children
 * per node halve the depth of a binary heap, and sift-down compares four
 * neighbours that sit in one or two cache lines.
 */
#include "sim/evq.h"

#include <stdio.h>
#include <stdlib.h>

#include "core/panic.h"

static bool before(const struct br_action *a, const struct br_action *b)
{
    return a->at_ms < b->at_ms || (a->at_ms == b->at_ms && a->seq < b->seq);
}

bool br_evq_init(struct br_evq *q, uint32_t cap_hint)
{
    q->count = 0;
    q->next_seq = 1;
    q->cap = cap_hint < 64 ? 64 : cap_hint;
    q->items = malloc(sizeof *q->items * q->cap);
    return q->items != NULL;
}

void br_evq_free(struct br_evq *q)
{
    free(q->items);
    q->items = NULL;
    q->count = q->cap = 0;
}

void br_evq_push(struct br_evq *q, const struct br_action *a)
{
    if (q->count == q->cap) {
        BR_ASSERT(q->cap < UINT32_MAX / 2);
        uint32_t cap = q->cap * 2;
        struct br_action *items = realloc(q->items, sizeof *items * cap);
        if (items == NULL) {
            fprintf(stderr, "bookingrush: sim: out of memory for the agenda\n");
            abort();
        }
        q->items = items;
        q->cap = cap;
    }
    struct br_action v = *a;
    v.seq = q->next_seq++;
    uint32_t i = q->count++;
    /* Sift up: bounded by the depth, log4(count). */
    while (i > 0) {
        uint32_t parent = (i - 1) / 4;
        if (!before(&v, &q->items[parent])) {
            break;
        }
        q->items[i] = q->items[parent];
        i = parent;
    }
    q->items[i] = v;
}

const struct br_action *br_evq_top(const struct br_evq *q)
{
    return q->count ? &q->items[0] : NULL;
}

bool br_evq_pop(struct br_evq *q, struct br_action *out)
{
    if (q->count == 0) {
        return false;
    }
    *out = q->items[0];
    struct br_action last = q->items[--q->count];
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
            if (before(&q->items[c], &q->items[best])) {
                best = c;
            }
        }
        if (!before(&q->items[best], &last)) {
            break;
        }
        q->items[i] = q->items[best];
        i = best;
    }
    if (n > 0) {
        q->items[i] = last;
    }
    return true;
}

void br_evq_check(const struct br_evq *q)
{
    for (uint32_t i = 1; i < q->count; i++) {
        BR_ASSERT(!before(&q->items[i], &q->items[(i - 1) / 4]));
    }
}
