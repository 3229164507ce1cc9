/*
 * heap.c -- binary min-heap on (deadline_ms, key) with back-links, so an
 * item can be removed from anywhere. All operations are O(log n).
 */
#include "heap.h"

#include <stddef.h>

#include "err.h"
#include "panic.h"

static bool less(const struct br_heap_node *x, const struct br_heap_node *y)
{
    if (x->deadline_ms != y->deadline_ms) {
        return x->deadline_ms < y->deadline_ms;
    }
    return x->key < y->key;
}

static void place(struct br_heap *h, uint32_t at, struct br_heap_node node)
{
    h->nodes[at] = node;
    h->pos[node.item] = at;
}

static void sift_up(struct br_heap *h, uint32_t at)
{
    struct br_heap_node node = h->nodes[at];
    while (at > 0) {
        uint32_t parent = (at - 1) / 2;
        if (!less(&node, &h->nodes[parent])) {
            break;
        }
        place(h, at, h->nodes[parent]);
        at = parent;
    }
    place(h, at, node);
}

static void sift_down(struct br_heap *h, uint32_t at)
{
    struct br_heap_node node = h->nodes[at];
    for (;;) {
        uint32_t child = 2 * at + 1;
        if (child >= h->count) {
            break;
        }
        if (child + 1 < h->count && less(&h->nodes[child + 1], &h->nodes[child])) {
            child++;
        }
        if (!less(&h->nodes[child], &node)) {
            break;
        }
        place(h, at, h->nodes[child]);
        at = child;
    }
    place(h, at, node);
}

void br_heap_init(struct br_heap *h, struct br_heap_node *nodes, uint32_t count_max, uint32_t *pos)
{
    h->nodes = nodes;
    h->pos = pos;
    h->count = 0;
    h->count_max = count_max;
}

int br_heap_push(struct br_heap *h, uint32_t item, int64_t deadline_ms, uint64_t key)
{
    BR_ASSERT(h->pos[item] == BR_HEAP_NOWHERE);
    if (h->count >= h->count_max) {
        return BR_E_FULL;
    }
    struct br_heap_node node = {.deadline_ms = deadline_ms, .key = key, .item = item};
    place(h, h->count, node);
    h->count++;
    sift_up(h, h->count - 1);
    return BR_OK;
}

const struct br_heap_node *br_heap_top(const struct br_heap *h)
{
    return h->count ? &h->nodes[0] : NULL;
}

void br_heap_remove(struct br_heap *h, uint32_t item)
{
    uint32_t at = h->pos[item];
    BR_ASSERT(at < h->count && h->nodes[at].item == item);
    h->pos[item] = BR_HEAP_NOWHERE;
    h->count--;
    if (at == h->count) {
        return;
    }
    struct br_heap_node moved = h->nodes[h->count];
    place(h, at, moved);
    sift_up(h, at);
    if (h->pos[moved.item] == at) {
        sift_down(h, at);
    }
}

void br_heap_check(const struct br_heap *h)
{
    BR_ASSERT(h->count <= h->count_max);
    for (uint32_t i = 0; i < h->count; i++) {
        BR_ASSERT(h->pos[h->nodes[i].item] == i);
        if (i > 0) {
            BR_ASSERT(!less(&h->nodes[i], &h->nodes[(i - 1) / 2]));
        }
    }
}
