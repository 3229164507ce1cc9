/*
 * map.c -- open addressing with linear probing; deletion shifts later
 * entries of the same probe run back, so no tombstones accumulate.
 */
#include "map.h"

#include "err.h"
#include "hash.h"
#include "panic.h"

static uint32_t home(const struct br_map *m, uint64_t a, uint64_t b)
{
    return (uint32_t)(br_mix64(a * 0x9e3779b97f4a7c15ULL ^ br_mix64(b)) & m->mask);
}

void br_map_init(struct br_map *m, struct br_arena *arena, uint32_t count_max)
{
    BR_ASSERT(count_max >= 1 && count_max <= (1u << 30));
    uint32_t slots = 2;
    while (slots < 2 * count_max) {
        slots *= 2;
    }
    m->slots = br_arena_alloc(arena, (size_t)slots * sizeof(struct br_map_slot));
    m->mask = slots - 1;
    m->count = 0;
    m->count_max = count_max;
}

/* Index of the slot holding (a, b), or of the empty slot ending its run. */
static uint32_t probe(const struct br_map *m, uint64_t a, uint64_t b)
{
    uint32_t i = home(m, a, b);
    for (uint32_t n = 0; n <= m->mask; n++) {
        const struct br_map_slot *s = &m->slots[i];
        if (!s->used || (s->a == a && s->b == b)) {
            return i;
        }
        i = (i + 1) & m->mask;
    }
    BR_ASSERT(0 && "map has no empty slot"); /* load <= 0.5 makes this unreachable */
    return 0;
}

bool br_map_get(const struct br_map *m, uint64_t a, uint64_t b, uint32_t *value)
{
    const struct br_map_slot *s = &m->slots[probe(m, a, b)];
    if (!s->used) {
        return false;
    }
    *value = s->value;
    return true;
}

int br_map_put(struct br_map *m, uint64_t a, uint64_t b, uint32_t value)
{
    struct br_map_slot *s = &m->slots[probe(m, a, b)];
    if (s->used) {
        return BR_E_DUPLICATE;
    }
    if (m->count >= m->count_max) {
        return BR_E_FULL;
    }
    s->a = a;
    s->b = b;
    s->value = value;
    s->used = 1;
    m->count++;
    return BR_OK;
}

bool br_map_del(struct br_map *m, uint64_t a, uint64_t b)
{
    uint32_t i = probe(m, a, b);
    if (!m->slots[i].used) {
        return false;
    }
    m->slots[i].used = 0;
    m->count--;
    /* Backward shift: move each later entry of the run into the hole when
     * its home does not lie cyclically within (hole, j]. */
    uint32_t hole = i;
    uint32_t j = i;
    for (uint32_t n = 0; n <= m->mask; n++) {
        j = (j + 1) & m->mask;
        struct br_map_slot *s = &m->slots[j];
        if (!s->used) {
            break;
        }
        uint32_t h = home(m, s->a, s->b);
        bool stays = (hole <= j) ? (hole < h && h <= j) : (hole < h || h <= j);
        if (!stays) {
            m->slots[hole] = *s;
            s->used = 0;
            hole = j;
        }
    }
    return true;
}

void br_map_check(const struct br_map *m)
{
    uint32_t count = 0;
    for (uint32_t i = 0; i <= m->mask; i++) {
        const struct br_map_slot *s = &m->slots[i];
        if (!s->used) {
            continue;
        }
        count++;
        /* Every slot between the entry's home and the entry is occupied. */
        for (uint32_t k = home(m, s->a, s->b); k != i; k = (k + 1) & m->mask) {
            BR_ASSERT(m->slots[k].used);
        }
    }
    BR_ASSERT(count == m->count);
    BR_ASSERT(m->count <= m->count_max);
}
