/*
 * presence.h -- who is still there: the server's "seen" reports for the
 * waiting room's abandonment rule (issue 13, point 3; core presence command).
 *
 * Sources: the SSE hub (on subscribe and every BR_PRESENCE_REPORT_MS for
 * every open stream of an event whose presence_ttl_s > 0), and the position
 * and join routes. Reports go to a bounded pending table (pending_max
 * entries of 24 B; full -> dropped and counted), de-duplicated: a user
 * reported less than BR_PRESENCE_DEDUP_MS ago is not reported again. The
 * hub's thread flushes it once a second: per event, chunks of at most
 * BR_PRESENCE_BATCH_MAX users go to the backend's presence_report op.
 *
 * Advisory: a lost report can only make a lapse later than the truth
 * allows, never earlier (the TTL, 300 s by default, is 5x the period).
 * Thread-safe (one mutex); no I/O of its own. server/presence.c: T5.
 */
#ifndef BR_PRESENCE_H
#define BR_PRESENCE_H

#include <stdint.h>

#include "core/limits.h"

#define BR_PRESENCE_REPORT_MS 60000       /* an open stream is reported this often */
#define BR_PRESENCE_DEDUP_MS 30000        /* not re-reported sooner than this */
#define BR_PRESENCE_PENDING_MAX 65536u    /* default pending table: 1.5 MiB */

struct br_presence;
struct br_backend;

/* A reporter with room for pending_max pending (event, user) entries
 * (1..BR_PRESENCE_PENDING_MAX). BR_OK or BR_E_FULL (out of memory). */
int br_presence_new(struct br_presence **p, uint32_t pending_max);

/* (event, user) was seen at now_ms. Never blocks on I/O; drops (and counts)
 * when the table is full. */
void br_presence_seen(struct br_presence *p, uint64_t event_id, uint64_t user_id, int64_t now_ms);

/* Sends what is pending to backend->ops->presence_report (skipped when that
 * op is NULL), at most BR_PRESENCE_BATCH_MAX users per call. */
void br_presence_flush(struct br_presence *p, struct br_backend *backend, int64_t now_ms);

/* Reports dropped because the table was full, since start (metrics). */
uint64_t br_presence_dropped(const struct br_presence *p);

void br_presence_free(struct br_presence *p);

#endif
