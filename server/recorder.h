/*
 * recorder.h -- the `recorder` role: projects every event's log (the Redis
 * stream br:{e<id>}:log that each Lua twin appends to, lua/README.md) into
 * PostgreSQL, in stream order and exactly once.
 *
 * One pass visits events 1..E (E = the catalog's event counter in Redis).
 * For each event it takes the event's lease (br:{e<id>}:lease:record, SET
 * NX PX, renewed while held), reads the log after the projected position
 * (PostgreSQL's, cached after a commit and read again once a second while
 * the event is caught up) in batches, and hands each batch
 * to br_pg_project (adapters/pg.h), which applies its rows and moves the
 * position to the batch's last stream id in one transaction, with the
 * event's row locked, skipping entries at or below the stored position.
 *
 * Exactly once does not rest on the lease: the position, stored in the
 * same transaction as the rows, does it. Two recorders that read the same
 * batch serialise on the event's row; the second finds the position moved
 * and applies nothing (counted as a conflict). A crash before the commit
 * leaves the old position and no rows; after it, the new position and all
 * the rows; a commit whose answer was lost (BR_E_UNKNOWN_OUTCOME) is
 * settled by projecting the same batch again, which skips what committed.
 * The lease only keeps two recorders from doing the same work twice.
 *
 * A batch PostgreSQL refuses by a CHECK (BR_E_CORRUPT: the zone's
 * held + sold would pass its capacity, i.e. Redis oversold) stops that
 * event's projection: logged at error level with the event and the stream
 * ids of the batch, br_projection_failed{event} = 1, and tried again after
 * retry_failed_ms -- never "fixed" by changing a count. It stays failed
 * until an operator repairs the record or the log, and the other events go
 * on. The same holds for a log entry that does not decode. Transport
 * failures (Redis or PostgreSQL away), and an event PostgreSQL does not
 * have yet (BR_E_NOT_FOUND: the twin logs its creation just before
 * PostgreSQL commits it; one whose commit failed stays so, and its warning
 * says so), are counted, logged once per outage, the cached position is
 * dropped, and the next pass tries again.
 *
 * Trimming: the recorder never trims a log. `bookingrush trace export`
 * needs each log from its first entry (the event's creation), and a log
 * costs Redis memory in proportion to the sale's commands (a few hundred
 * bytes an entry). An operator who must reclaim it after the sale can
 * XTRIM ... MINID up to the projected position (table projection in
 * PostgreSQL; br_redis_log_trim), giving up the event's trace.
 *
 * Metrics (br_recorder_metrics, Prometheus text):
 *   br_projection_lag_entries{event}   entries read and not yet projected when
 *                                      the event's pass ended (0 = caught up;
 *                                      a lower bound while behind)
 *   br_projection_lag_seconds{event}   now minus the append time (the stream
 *                                      id's ms part) of the oldest entry not
 *                                      projected, else of the last batch at
 *                                      its commit
 *   br_projection_failed{event}        1 while a CHECK refused the event's log
 *   br_projection_failures_total{event,reason} refused / unavailable / conflict
 *   br_projected_entries_total         log entries projected by this process
 *   br_projection_batch_lag_seconds    histogram: append-to-commit time of each
 *                                      batch's first entry
 *
 * Threads: br_recorder_start runs the passes on a thread of its own, with
 * its own Redis connections; the metrics may be read from any thread.
 * Limits: events tracked up to the config's events_max; batch <=
 * BR_RECORDER_BATCH_MAX entries.
 */
#ifndef BR_SERVER_RECORDER_H
#define BR_SERVER_RECORDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "adapters/log.h"
#include "adapters/redis.h"

#define BR_RECORDER_BATCH_MAX 1024u
#define BR_RECORDER_BATCH_DEFAULT 256u
#define BR_RECORDER_LEASE_MS_DEFAULT 10000
#define BR_RECORDER_RETRY_FAILED_MS_DEFAULT 30000
#define BR_RECORDER_IDLE_MS_DEFAULT 50
#define BR_LEASE_OWNER_MAX 64

struct br_pg;

struct br_recorder_options {
    uint32_t batch;                 /* entries per transaction; 0 = default */
    uint32_t batches_per_pass;      /* per event before the next event's turn; 0 = 16 */
    int64_t lease_ms;               /* per-event lease; 0 = default */
    int64_t retry_failed_ms;        /* a refused projection is tried again after; 0 = default */
    int idle_ms;                    /* pause between passes that found nothing; 0 = default */
    char owner[BR_LEASE_OWNER_MAX]; /* the lease's value ("" = host:pid) */
};

/* What the recorder knows of one event (for tests and the metrics). */
struct br_recorder_event {
    uint64_t event_id;
    char position[32];  /* the projected stream id as last seen; "" = unknown */
    uint64_t projected; /* entries this process projected */
    uint32_t lag_entries;
    int64_t lag_ms;
    bool failed;  /* stopped: a CHECK refused its log or an entry does not
                     decode (BR_E_CORRUPT; retried after a while) */
    int last_err; /* enum br_err of the last attempt */
    uint64_t refused, unavailable, conflicts; /* failures by reason (refused: the stops) */
};

struct br_recorder;

/* Opens a recorder on Redis o (the config cfg must be Redis's, as for
 * br_redis_open) and the pool pg (borrowed; must outlive the recorder).
 * log may be NULL (br_log_stderr). BR_OK, BR_E_INVALID, BR_E_FULL, or
 * br_redis_open's errors. */
int br_recorder_open(struct br_recorder **out, const struct br_redis_options *o,
                     const struct br_config *cfg, struct br_pg *pg, const struct br_log *log,
                     const struct br_recorder_options *opt);

/* One pass over every event, as the thread runs it; *projected (may be
 * NULL) gets the entries committed. BR_OK even when some events failed
 * (see br_recorder_event); BR_E_UNAVAILABLE when the catalog could not be
 * read. Work: per event one lease round trip plus up to batches_per_pass
 * reads and transactions. */
int br_recorder_pass(struct br_recorder *rec, uint64_t *projected);

/* Starts / stops the thread that runs passes until stopped (pausing idle_ms
 * after a pass that projected nothing). Stop waits for the pass in flight
 * and gives back every lease the recorder holds (also after direct passes). */
int br_recorder_start(struct br_recorder *rec);
void br_recorder_stop(struct br_recorder *rec);

/* Copies event_id's state; false when the recorder has not met it. */
bool br_recorder_event_get(struct br_recorder *rec, uint64_t event_id,
                           struct br_recorder_event *out);

/* Appends the metrics above to buf (Prometheus text; snprintf rules:
 * returns the length the whole text needs, writes at most cap bytes). */
size_t br_recorder_metrics(struct br_recorder *rec, char *buf, size_t cap);

/* Stops the thread if running and frees everything. NULL is fine. */
void br_recorder_close(struct br_recorder *rec);

/* ---- leases (also the reconciler's) ---- */

/* Takes or renews the lease `key` for owner for ttl_ms through r (on a
 * Redis Cluster, at the key's node): 1 held (taken now or renewed), 0 held
 * by another owner, BR_E_UNAVAILABLE on a transport failure. One round
 * trip (a short script: get, then set or renew). */
int br_lease_hold(struct br_redis *r, const char *key, const char *owner, int64_t ttl_ms);

/* Gives the lease back if owner holds it. One round trip; errors ignored
 * (the lease expires by itself). */
void br_lease_release(struct br_redis *r, const char *key, const char *owner);

/* "host:pid" into owner (cap bytes). */
void br_lease_owner_default(char *owner, size_t cap);

#endif
