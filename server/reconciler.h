/*
 * reconciler.h -- the `reconciler` role: watches that Redis (the live
 * on-sale) and PostgreSQL (the record) agree, and rebuilds Redis from the
 * record after Redis lost its data.
 *
 * One reconciler works at a time: each tick takes (or renews) the lease
 * br:{cat}:lease:reconcile; a process without it does nothing that tick.
 *
 * Drift. For every event and zone the tick compares Redis's held and sold
 * (br_redis_zone_counts) with PostgreSQL's projected counters
 * (br_pg_zones), but only when both describe the same log position: the
 * projection position equals the log's last id before and after the reads
 * on both sides (otherwise the recorder is behind or a write landed
 * meanwhile, and the zone is left for the next tick). The difference
 * |held_redis - held_pg| + |sold_redis - sold_pg| is exported as
 * br_reconcile_drift_seats{event,zone}; anything but 0 means the
 * projection and the twins disagree (a bug, or a log entry lost) and
 * deserves an alert. Nothing is changed because of a drift.
 *
 * Data loss. The epoch key br:{cat}:epoch is written once, at the first
 * tick that finds it missing while Redis holds every user and event
 * PostgreSQL has (a fresh deployment). Redis has lost data when it holds
 * fewer users or events than PostgreSQL (read first: the twin counts an id
 * before its row commits, so a healthy Redis is never behind), with the
 * epoch missing (a restart without persistence, a failover to an empty
 * replica) or present (a failover to a replica that missed writes), or
 * when an event's log ends before the record's projected position (the
 * drift pass finds it: the position only ever comes from entries Redis
 * had). Then:
 *   1. writes are refused: the reconciler calls opt.writes(ctx, true, s)
 *      (the distributed backend answers 503 UNAVAILABLE with Retry-After s;
 *      other processes see the epoch missing and do the same);
 *   2. Redis is emptied (FLUSHDB: whatever it holds was written after the
 *      loss or is a stale copy; PostgreSQL is the truth), the config
 *      recorded again, and br:{cat}:rebuilding set (with an expiry, renewed
 *      per event): Redis's counters catch up with PostgreSQL's before the
 *      last event's slot is written, so processes must refuse writes while
 *      the epoch is missing and either Redis is behind or this key exists;
 *   3. users 1..max are registered again in id order with the user_register
 *      twin (the same ids, emails, hashes, roles);
 *   4. every event 1..max is rebuilt with br_redis_rebuild_event from the
 *      record: spec and zones, held/sold, every booking (live holds with
 *      their deadlines, which the sweeper expires as usual), every payment
 *      (pending ones stay payable; refund-pending ones go back to the
 *      saga; every one not decided and whose status checks are not closed
 *      gets its next check at now + opt.payment_check_ms, so a payment in
 *      flight whose webhook is lost still ends confirmed or refunded),
 *      the provider event ids applied, and the id counters (pass, hold,
 *      payment) moved past the greater of the largest id recorded and the
 *      counters the event's previous rebuild gave Redis (kept in the
 *      record's rebuild_counters, written before Redis gets them), by
 *      BR_RECONCILER_ID_MARGIN plus BR_RECONCILER_IDS_PER_MS per ms since
 *      the later of the last projected entry and that rebuild, so no id
 *      that Redis handed out after the last projection is handed out
 *      again, after any number of losses in a row with anything or nothing
 *      projected between (reconciler.c, past_margin, has the proof);
 *      the event's (lost) log is made to continue past the projected
 *      position (an empty stream whose last id is the position's
 *      successor), so the recorder finds every new entry after it even if
 *      the new Redis's clock is behind the old one's;
 *   5. the epoch is written, br:{cat}:rebuilding deleted, and writes
 *      resume (opt.writes(ctx, false, 0)).
 * A failure anywhere leaves the epoch missing and writes refused; the next
 * tick starts over from step 2.
 *
 * What cannot be rebuilt (Redis alone held it):
 *   - the waiting queues and the passes: everyone waiting or admitted must
 *     join again. The position routes and the stream answer that they are
 *     not in the queue (404 NOT_IN_QUEUE; status "none" for a user who holds
 *     seats in the event, whose member record comes back with its tickets),
 *     and a reserve with a pass issued before the loss is PASS_INVALID
 *     (403). A join puts them at the end of the new queue (before the
 *     opening, in the pre-queue, shuffled at the opening as usual); pass ids
 *     restart past the margin, so an old token never matches a new pass.
 *     Per-user limits still hold: tickets come from the holds.
 *   - whatever Redis acknowledged after the recorder's last commit (the
 *     projection lag, under a second at load): holds, payments and
 *     confirmations of that window are gone from the on-sale. Redis
 *     persistence (appendfsync always) is what closes this window; a
 *     payment confirmed by the provider in it is delivered again by the
 *     provider's webhook retries and applied then.
 *   - the idempotency answers of reserves: a retry after the rebuild with
 *     the same key makes a new hold (within the per-user limit, which
 *     counts the first one), so a client that never saw the first answer
 *     may hold twice its seats until the first hold expires.
 *   - the event logs before the loss: `trace export` of a rebuilt event is
 *     refused (its log no longer starts with its creation).
 *
 * Drift right after a rebuild: an event's log is then empty, and Redis's
 * counters are compared with the record at its position (they were just
 * written from it).
 *
 * Every command goes through the adapter (scripts with br_redis_apply and
 * br_redis_rebuild_event, the lease, the epoch, the flush and the log
 * continuation with br_redis_commandf), so on a Redis Cluster each reaches
 * its key's node (FLUSHDB goes to every node).
 *
 * Metrics (br_reconciler_metrics): br_reconcile_drift_seats{event,zone},
 * br_reconcile_compared{event} (1 when the last tick compared it),
 * br_reconcile_writes_refused (1 while refused), br_reconcile_rebuilds_total,
 * br_reconcile_rebuild_failures_total, br_reconcile_leader (1 with the lease).
 * Limits: events up to the config's events_max, zones BR_EVENT_ZONES_MAX.
 */
#ifndef BR_SERVER_RECONCILER_H
#define BR_SERVER_RECONCILER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "adapters/log.h"
#include "adapters/redis.h"
#include "server/recorder.h"

#define BR_RECONCILER_INTERVAL_MS_DEFAULT 3000
#define BR_RECONCILER_LEASE_MS_DEFAULT 10000
#define BR_RECONCILER_RETRY_AFTER_S 5
#define BR_RECONCILER_ID_MARGIN (1u << 20) /* ids skipped at a rebuild, at least */
#define BR_RECONCILER_IDS_PER_MS                                                                   \
    50u /* and this many per ms since the last projected                                           \
           entry (an event's scripts: ~20 ids/ms at most) */
#define BR_RECONCILER_ELAPSED_MS_MAX (6LL * 3600 * 1000) /* 1.08e9 ids: a quarter of the seqs */

struct br_pg;

/* Called with refuse = true before a rebuild and false after it; the
 * distributed backend refuses writes (503 + Retry-After retry_after_s)
 * while refused. May be called from the reconciler's thread. */
typedef void (*br_reconciler_writes_fn)(void *ctx, bool refuse, int retry_after_s);

struct br_reconciler_options {
    int64_t interval_ms;            /* between ticks; 0 = default */
    int64_t lease_ms;               /* 0 = default */
    char owner[BR_LEASE_OWNER_MAX]; /* "" = host:pid */
    br_reconciler_writes_fn writes; /* may be NULL */
    void *writes_ctx;
    /* Point 8: the servers' --payment-check-ms (0 = no status checks, as
     * the distributed backend's payment_check_ms). The record keeps no
     * check schedule: a rebuild gives every payment this check_ms and
     * schedules the next check of each one whose checks are open at
     * rebuild time + check_ms (redis.h, "rebuilding an event"). */
    uint32_t payment_check_ms;
};

/* What the last tick found (tests and metrics). */
struct br_reconciler_report {
    bool leader; /* held the lease */
    bool epoch_present;
    bool lost;    /* Redis had lost data at this tick */
    bool rebuilt; /* and this tick rebuilt it */
    int err;      /* BR_OK or the error that stopped the tick */
    uint32_t events_compared;
    uint32_t events_behind; /* events whose Redis log ends before the record's position */
    uint64_t drift_total;   /* sum of the drift over the zones compared */
    uint64_t users_restored;
    uint64_t events_rebuilt;
};

struct br_reconciler;

/* Opens on Redis o (cfg as for br_redis_open) and the pool pg (borrowed).
 * BR_OK, BR_E_INVALID, BR_E_FULL, or br_redis_open's errors. */
int br_reconciler_open(struct br_reconciler **out, const struct br_redis_options *o,
                       const struct br_config *cfg, struct br_pg *pg, const struct br_log *log,
                       const struct br_reconciler_options *opt);

/* One tick (above); *rep (may be NULL) says what it found. Returns rep.err.
 * Work: a lease and an epoch round trip; per event two position reads and
 * per zone one read on each side; a rebuild reads the whole record. */
int br_reconciler_tick(struct br_reconciler *rc, struct br_reconciler_report *rep);

/* Starts / stops the thread that ticks every interval_ms. */
int br_reconciler_start(struct br_reconciler *rc);
void br_reconciler_stop(struct br_reconciler *rc);

/* Prometheus text, snprintf rules (returns the length needed). */
size_t br_reconciler_metrics(struct br_reconciler *rc, char *buf, size_t cap);

/* The drift of one zone as last computed; -1 when never compared. */
int64_t br_reconciler_drift(struct br_reconciler *rc, uint64_t event_id, uint32_t zone_id);

void br_reconciler_close(struct br_reconciler *rc);

#endif
