/*
 * backend.h -- what the simulator drives: anything that applies a command
 * and answers with an outcome, effects and digests.
 *
 * The simulator, replay and the auditor speak only this interface, so the
 * same scenarios run on the in-memory engine (the first implementation,
 * here) and on the Redis twin (--backend redis, later): both must answer
 * every command identically and end with the same digest.
 *
 * A backend owns its state; br_sim_backend_close frees it. apply's effects stay
 * valid until the next apply.
 */
#ifndef BR_SIM_BACKEND_H
#define BR_SIM_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/cmd.h"
#include "core/engine.h"

struct br_sim_backend;

struct br_sim_backend_ops {
    const char *name;
    /* Applies one command. Returns out->err. *fx / *fx_count: the effects. */
    int (*apply)(struct br_sim_backend *b, const struct br_cmd *cmd, struct br_outcome *out,
                 const struct br_effect **fx, uint32_t *fx_count);
    /* The running digest, and the final digest (running + state hash). */
    uint64_t (*digest)(const struct br_sim_backend *b);
    uint64_t (*final_digest)(const struct br_sim_backend *b);
    /* Optional (NULL when the backend cannot): seats held and sold in a
     * zone as the backend's state has them, so the auditor can compare its
     * own model with the real counters after each step. BR_OK or BR_E_NOT_FOUND. */
    int (*zone_counts)(const struct br_sim_backend *b, uint64_t event_id, uint32_t zone_id,
                       uint32_t *held, uint32_t *sold);
    /* Optional: the backend's own deep self-check (asserts). O(state). */
    void (*self_check)(const struct br_sim_backend *b);
    void (*close)(struct br_sim_backend *b);
    /* Issue 13, optional (NULL on redis: the estimate figures are then
     * absent): br_queue_estimate for someone at `position` in the event's
     * queue at now_ms with the admitter's tick_ms. BR_OK or BR_E_NOT_FOUND. */
    int (*queue_estimate)(const struct br_sim_backend *b, uint64_t event, uint32_t position,
                          int64_t now_ms, uint32_t tick_ms, struct br_queue_estimate *out);
};

struct br_sim_backend {
    const struct br_sim_backend_ops *ops;
    void *impl;
    size_t memory_bytes; /* what the backend's state takes (reported) */
};

/* The in-memory engine, sized by cfg. BR_OK, BR_E_INVALID (bad config) or
 * BR_E_FULL (out of memory). */
int br_sim_backend_memory_open(struct br_sim_backend *b, const struct br_config *cfg);

/* The core's Lua twins in the Redis at url (sim/backend_redis.c); the run
 * empties that database first. BR_OK, BR_E_INVALID (bad URL or config),
 * BR_E_UNAVAILABLE, BR_E_FULL. */
int br_sim_backend_redis_open(struct br_sim_backend *b, const struct br_config *cfg,
                              const char *url);

/* The engine inside a memory backend (queries for tests), NULL otherwise. */
struct br_engine *br_sim_backend_memory_engine(struct br_sim_backend *b);

static inline int br_sim_backend_apply(struct br_sim_backend *b, const struct br_cmd *cmd,
                                       struct br_outcome *out, const struct br_effect **fx,
                                       uint32_t *fx_count)
{
    return b->ops->apply(b, cmd, out, fx, fx_count);
}

static inline void br_sim_backend_close(struct br_sim_backend *b)
{
    if (b->ops != NULL) {
        b->ops->close(b);
    }
    b->ops = NULL;
    b->impl = NULL;
}

#endif
