/*
 * backend.c -- the in-memory backend: the core engine in one block of
 * memory sized from the config.
 *
 * The block comes from calloc (16-byte aligned on the platforms we build
 * for; br_engine_init checks), already zero: the engine's init leaves it
 * untouched (br_engine_init_zeroed), so a page becomes resident only when
 * a row on it is used. The reserved size is reported beside the peak RSS
 * so benchmarks can show where memory goes.
 */
#include "sim/backend.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/panic.h"
#include "core/queue.h"

struct mem_impl {
    struct br_engine engine;
    void *block;
    size_t block_len;
};

static int mem_apply(struct br_sim_backend *b, const struct br_cmd *cmd, struct br_outcome *out,
                     const struct br_effect **fx, uint32_t *fx_count)
{
    struct mem_impl *m = b->impl;
    int rc = br_engine_apply(&m->engine, cmd, out);
    *fx = br_engine_effects(&m->engine, fx_count);
    return rc;
}

static uint64_t mem_digest(const struct br_sim_backend *b)
{
    const struct mem_impl *m = b->impl;
    return br_engine_digest(&m->engine);
}

static uint64_t mem_final_digest(const struct br_sim_backend *b)
{
    const struct mem_impl *m = b->impl;
    return br_engine_final_digest(&m->engine);
}

static int mem_zone_counts(const struct br_sim_backend *b, uint64_t event_id, uint32_t zone_id,
                           uint32_t *held, uint32_t *sold)
{
    const struct mem_impl *m = b->impl;
    const struct br_engine *e = &m->engine;
    if (event_id == 0 || event_id > e->event_count) {
        return BR_E_NOT_FOUND;
    }
    const struct br_event *ev = &e->events[event_id - 1];
    if (zone_id < 1 || zone_id > ev->spec.zone_count) {
        return BR_E_NOT_FOUND;
    }
    *held = ev->zone_held[zone_id - 1];
    *sold = ev->zone_sold[zone_id - 1];
    return BR_OK;
}

static void mem_self_check(const struct br_sim_backend *b)
{
    const struct mem_impl *m = b->impl;
    br_engine_check(&m->engine);
}

/* Issue 13: the estimate the status route would give someone at `position`. */
static int mem_queue_estimate(const struct br_sim_backend *b, uint64_t event, uint32_t position,
                              int64_t now_ms, uint32_t tick_ms, struct br_queue_estimate *out)
{
    const struct mem_impl *m = b->impl;
    struct br_queue_event_view v;
    int rc = br_queue_event_view(&m->engine, event, now_ms, tick_ms, &v);
    if (rc != BR_OK) {
        return rc;
    }
    const struct br_event *ev = &m->engine.events[event - 1];
    br_queue_estimate(&ev->spec, v.admit_per_min, &ev->q_rate, v.gate, position, tick_ms, now_ms,
                      out);
    return BR_OK;
}

static void mem_close(struct br_sim_backend *b)
{
    struct mem_impl *m = b->impl;
    if (m != NULL) {
        free(m->block);
        free(m);
    }
}

static const struct br_sim_backend_ops mem_ops = {
    .name = "memory",
    .apply = mem_apply,
    .digest = mem_digest,
    .final_digest = mem_final_digest,
    .zone_counts = mem_zone_counts,
    .self_check = mem_self_check,
    .close = mem_close,
    .queue_estimate = mem_queue_estimate,
};

int br_sim_backend_memory_open(struct br_sim_backend *b, const struct br_config *cfg)
{
    memset(b, 0, sizeof *b);
    size_t need = br_engine_memory_size(cfg);
    if (need == 0) {
        return BR_E_INVALID;
    }
    struct mem_impl *m = calloc(1, sizeof *m);
    if (m == NULL) {
        return BR_E_FULL;
    }
    m->block_len = need;
    m->block = calloc(1, need);
    if (m->block == NULL) {
        free(m);
        return BR_E_FULL;
    }
    int rc = br_engine_init_zeroed(&m->engine, cfg, m->block, need);
    if (rc != BR_OK) {
        free(m->block);
        free(m);
        return rc;
    }
    b->ops = &mem_ops;
    b->impl = m;
    b->memory_bytes = need;
    return BR_OK;
}

struct br_engine *br_sim_backend_memory_engine(struct br_sim_backend *b)
{
    if (b->ops != &mem_ops) {
        return NULL;
    }
    struct mem_impl *m = b->impl;
    return &m->engine;
}
