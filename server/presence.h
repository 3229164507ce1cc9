/*
 * presence.h -- who is still there: the server's "seen" reports for the
 * waiting room's abandonment rule (issue 13, point 3; core presence command).
 *
 * Sources: the SSE hub (on subscribe and every BR_PRESENCE_REPORT_MS for
 * every open stream), and the position and join routes. Reports go to a
 * bounded table (pending_max entries; 24 B a slot, twice as many slots as
 * entries, plus 16 B an entry for the flush: 4 MiB at the default; full ->
 * dropped and counted), de-duplicated: a user reported less than
 * BR_PRESENCE_DEDUP_MS ago is not reported again. The hub's thread flushes
 * it once a second: per event, chunks of at most BR_PRESENCE_BATCH_MAX users
 * go to the backend's presence_report op, which skips the events whose
 * presence_ttl_s is 0 (the core would change nothing).
 *
 * Clock: every caller passes br_clock_mono_ms() (adapters/clock.h) as now_ms:
 * it only times the de-dup; the command's own time is the backend's.
 *
 * Advisory: a lost report can only make a lapse later than the truth
 * allows, never earlier (the TTL, 300 s by default, is 5x the period).
 * Thread-safe (one mutex); no I/O of its own (server/presence.c).
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
 * (1..BR_PRESENCE_PENDING_MAX). BR_OK, BR_E_INVALID (pending_max out of range) or BR_E_FULL (out of
 * memory). */
int br_presence_new(struct br_presence **p, uint32_t pending_max);

/* De-dup period (default BR_PRESENCE_DEDUP_MS); serve shortens it with the
 * report period under BR_TEST_PRESENCE_REPORT_MS (tests only). */
void br_presence_set_dedup_ms(struct br_presence *p, int64_t dedup_ms);

/* (event, user) was seen at now_ms. p NULL: nothing. Never blocks on I/O; drops (and counts)
 * when the table is full. */
void br_presence_seen(struct br_presence *p, uint64_t event_id, uint64_t user_id, int64_t now_ms);

/* Sends what is pending to backend->ops->presence_report (skipped when that
 * op is NULL), at most BR_PRESENCE_BATCH_MAX users per call, never under the
 * table's mutex. One flusher thread only (the hub's). p NULL: nothing. */
void br_presence_flush(struct br_presence *p, struct br_backend *backend, int64_t now_ms);

/* Reports dropped because the table was full, since start (metrics). */
uint64_t br_presence_dropped(const struct br_presence *p);

void br_presence_free(struct br_presence *p);

#endif
