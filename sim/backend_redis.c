/*
 * backend_redis.c -- the simulator's Redis backend (`bookingrush sim
 * --backend redis --redis URL`): every command runs as the core's Lua twin
 * inside a real Redis, through adapters/redis.h.
 *
 * The digests are computed exactly as the in-memory engine computes them:
 * the running digest is br_digest_step chained over (command, outcome) from
 * the same starting value (br_digest_initial), and the final digest adds
 * br_redis_state_hash, the state read back from Redis. For the same
 * scenario and seed both backends must print the same digest
 * (scripts/test.d/50-redis-digest.sh).
 *
 * The run owns the Redis database it is given: it is emptied (FLUSHDB) when
 * the backend opens. A transport failure cannot be answered the way the
 * core would answer, so it is reported on stderr and counted; the digest
 * then differs, which is the point.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/redis.h"
#include "core/err.h"
#include "core/hash.h"
#include "core/panic.h"
#include "sim/backend.h"

struct redis_impl {
    struct br_redis redis;
    struct br_effect *fx; /* the last command's effects: BR_EFFECTS_MAX */
    uint64_t digest;      /* running chain, as br_engine_digest */
    uint64_t failures;    /* transport failures met */
};

static int redis_apply(struct br_sim_backend *b, const struct br_cmd *cmd, struct br_outcome *out,
                       const struct br_effect **fx, uint32_t *fx_count)
{
    struct redis_impl *m = b->impl;
    int rc = br_redis_apply(&m->redis, cmd, out, m->fx, fx_count);
    if (rc == BR_E_UNAVAILABLE || rc == BR_E_UNKNOWN_OUTCOME) {
        if (m->failures++ < 10) {
            fprintf(stderr, "bookingrush sim: redis backend: %s on %s\n", br_err_name(rc),
                    br_cmd_name(cmd->type));
        }
    }
    *fx = m->fx;
    m->digest = br_digest_step(m->digest, cmd, out);
    return rc;
}

static uint64_t redis_digest(const struct br_sim_backend *b)
{
    const struct redis_impl *m = b->impl;
    return m->digest;
}

static uint64_t redis_final_digest(const struct br_sim_backend *b)
{
    struct redis_impl *m = b->impl; /* reading the state back uses the connection */
    uint64_t state = 0;
    int rc = br_redis_state_hash(&m->redis, &state);
    if (rc != BR_OK) {
        fprintf(stderr, "bookingrush sim: redis backend: cannot read the state back: %s\n",
                br_err_name(rc));
    }
    return br_hash_step(m->digest, state);
}

static int redis_zone_counts(const struct br_sim_backend *b, uint64_t event_id, uint32_t zone_id,
                             uint32_t *held, uint32_t *sold)
{
    struct redis_impl *m = b->impl;
    return br_redis_zone_counts(&m->redis, event_id, zone_id, held, sold);
}

static void redis_close(struct br_sim_backend *b)
{
    struct redis_impl *m = b->impl;
    if (m != NULL) {
        if (m->failures > 0) {
            fprintf(stderr, "bookingrush sim: redis backend: %" PRIu64 " transport failures\n",
                    m->failures);
        }
        br_redis_close(&m->redis);
        free(m->fx);
        free(m);
    }
}

static const struct br_sim_backend_ops redis_ops = {
    .name = "redis",
    .apply = redis_apply,
    .digest = redis_digest,
    .final_digest = redis_final_digest,
    .zone_counts = redis_zone_counts,
    .self_check = NULL,
    .close = redis_close,
};

int br_sim_backend_redis_open(struct br_sim_backend *b, const struct br_config *cfg,
                              const char *url)
{
    memset(b, 0, sizeof *b);
    struct br_redis_options opt;
    if (br_redis_parse_url(url, &opt) != BR_OK) {
        fprintf(stderr,
                "bookingrush sim: bad --redis URL %s (redis://host:port[/db] or "
                "redis-cluster://host:port[,host:port...])\n",
                url);
        return BR_E_INVALID;
    }
    struct redis_impl *m = calloc(1, sizeof *m);
    if (m == NULL) {
        return BR_E_FULL;
    }
    m->fx = malloc(sizeof *m->fx * BR_EFFECTS_MAX);
    m->digest = br_digest_initial(cfg->seed);
    int rc = m->fx != NULL ? BR_OK : BR_E_FULL;
    if (rc == BR_OK) {
        opt.fresh = true; /* an earlier run's state must not mix in */
        rc = br_redis_open(&m->redis, &opt, cfg);
    }
    if (rc != BR_OK) {
        fprintf(stderr, "bookingrush sim: cannot use redis at %s: %s\n", url, br_err_name(rc));
        br_redis_close(&m->redis);
        free(m->fx);
        free(m);
        return rc;
    }
    b->ops = &redis_ops;
    b->impl = m;
    b->memory_bytes = 0; /* the state lives in Redis */
    return BR_OK;
}
