/*
 * backend_distributed_read.c -- reads of the live on-sale state in Redis
 * for the distributed backend. The layout lua/lib.lua writes is the
 * adapter's knowledge (adapters/redis.h: its record reads share their
 * parsers with the state walk); here each read runs on the slot's adapter
 * connection (one node or a cluster), its failure marks Redis down, and
 * the adapter's records become the backend's answers. Each read is one
 * round trip (a batch of queue views two or three) and sees one consistent
 * moment of each key, not of several keys together: an answer may mix
 * states a few microseconds apart, as any read of a live sale does.
 */
#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>

#include "core/panic.h"
#include "server/backend_distributed_int.h"

uint64_t dist_num(const redisReply *e)
{
    if (e->type == REDIS_REPLY_STRING) {
        return strtoull(e->str, NULL, 10);
    }
    if (e->type == REDIS_REPLY_INTEGER && e->integer >= 0) {
        return (uint64_t)e->integer;
    }
    return 0;
}

/* A read's result, readiness noted (a connection error marks Redis down). */
static int noted(struct br_distributed *x, int rc)
{
    dist_note_redis(x, rc);
    return rc;
}

int dist_read_hold(struct br_distributed *x, struct dist_conn *c, uint64_t hold_id,
                   struct br_redis_hold *out)
{
    return noted(x, br_redis_hold_read(&c->r, hold_id, out));
}

int dist_read_payment(struct br_distributed *x, struct dist_conn *c, uint64_t payment_id,
                      struct br_redis_payment *out)
{
    return noted(x, br_redis_payment_read(&c->r, payment_id, out));
}

int dist_read_counters(struct br_distributed *x, struct dist_conn *c, uint64_t event_id,
                       uint32_t zone_count, struct br_redis_counters *out)
{
    return noted(x, br_redis_counters_read(&c->r, event_id, zone_count, out));
}

int dist_read_spec(struct br_distributed *x, struct dist_conn *c, uint64_t event_id,
                   struct dist_spec *out)
{
    memset(out, 0, sizeof *out);
    int rc = noted(x, br_redis_event_read(&c->r, event_id, &out->owner_id, &out->spec));
    out->have = rc == BR_OK;
    return rc;
}

int dist_read_user(struct br_distributed *x, struct dist_conn *c, uint64_t user_id,
                   struct br_api_user *out)
{
    memset(out, 0, sizeof *out);
    int rc = noted(x, br_redis_user_read(&c->r, user_id, out->email, out->name, &out->role));
    if (rc == BR_OK) {
        out->id = user_id;
    }
    return rc;
}

int dist_read_cat(struct br_distributed *x, struct dist_conn *c, const char *field, uint64_t *out)
{
    return noted(x, br_redis_catalog_count(&c->r, field, out));
}

int dist_read_views(struct br_distributed *x, struct dist_conn *c, uint64_t event_id,
                    const uint64_t *users, uint32_t n, struct br_api_queue *out, int *rc)
{
    struct br_redis_view v[BR_REDIS_VIEWS_CHUNK];
    for (uint32_t at = 0; at < n; at += BR_REDIS_VIEWS_CHUNK) {
        uint32_t k = n - at < BR_REDIS_VIEWS_CHUNK ? n - at : BR_REDIS_VIEWS_CHUNK;
        int err = noted(x, br_redis_queue_positions(&c->r, event_id, users + at, k, v, rc + at));
        if (err != BR_OK) {
            return err;
        }
        for (uint32_t i = 0; i < k; i++) {
            struct br_api_queue *q = &out[at + i];
            memset(q, 0, sizeof *q);
            if (rc[at + i] == BR_OK) {
                q->event_id = event_id;
                q->status = v[i].status;
                q->position = v[i].position;
                q->queue_length = v[i].queue_length;
                q->pass_id = v[i].pass_id;
                q->pass_expires_at_ms = v[i].pass_expires_at_ms;
            }
        }
    }
    return BR_OK;
}
