/*
 * arena.h -- the one place the core gets memory: a bump allocator over a
 * block the caller hands in at init. With base == NULL it only measures, so
 * the same init code computes the size it needs (br_engine_memory_size) and
 * then lays the tables out for real. Nothing is ever freed or grown.
 */
#ifndef BR_ARENA_H
#define BR_ARENA_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct br_arena {
    uint8_t *base; /* NULL: measuring only */
    size_t size;   /* bytes available at base */
    size_t used;   /* bytes handed out (or that would be) */
    int zeroed;    /* base is known to be all zero bytes: hand it out untouched */
};

/* Returns n bytes aligned to 16, zeroed; NULL when measuring or out of room
 * (the caller checks arena->used <= arena->size once, after all allocations).
 * Over a zeroed block nothing is written, so untouched pages of a fresh
 * mapping stay out of resident memory until a row on them is used. */
static inline void *br_arena_alloc(struct br_arena *a, size_t n)
{
    size_t at = (a->used + 15u) & ~(size_t)15u;
    a->used = at + n;
    if (a->base == NULL || a->used > a->size) {
        return NULL;
    }
    if (!a->zeroed) {
        memset(a->base + at, 0, n);
    }
    return a->base + at;
}

#endif
