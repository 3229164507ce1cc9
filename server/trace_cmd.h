/*
 * trace_cmd.h -- `bookingrush trace export`: one event's log, as Redis
 * ordered it, written in the journal format (core/journal.h), so that
 * `bookingrush replay` reproduces a production incident through the core.
 *
 * A trace is:
 *   1. the journal header: the deployment's config. Redis records the seed
 *      and the catalog-time capacities in br:{cat}:cat (config.lua); the
 *      engine's table sizes (members, passes, holds, payments, idempotency
 *      keys, provider events) are no limits in Redis, so the export sizes
 *      them from the log itself (a first pass counts the commands that can
 *      add a row), which is enough for every command of the trace to find
 *      room exactly as it did in Redis;
 *   2. a prologue without outcomes (nothing is compared there): a
 *      user_register for every user 1..users of the catalog (email, name,
 *      password hash, salt and role as Redis's catalog holds them now; the
 *      organizer who created event N, if demoted to customer since, as an
 *      organizer: the creation succeeded, so they could organize then), then
 *      an event_create for every event 1..N-1, taken from the first entry of
 *      that event's own log (event_put.lua writes it) and issued by the
 *      system actor, so a later role change of its organizer cannot refuse
 *      it. This gives event N the same id and the same share of the
 *      catalog's capacities it had;
 *   3. every entry of event N's log in stream order: the command and the
 *      outcome Redis gave it (replay compares them field by field), except
 *      the entries marked external (decided outside the event's slot: an
 *      unregistered user, an idempotency key or a provider event id taken
 *      by another event; they changed nothing, and the core replaying this
 *      event alone could not reproduce them: adapters/redis.h).
 *
 * What a trace cannot be made of: an event the reconciler rebuilt from
 * PostgreSQL (Redis lost its log; the export refuses a log whose first
 * entry is not the event's event_create). The recorder never trims the
 * logs, so otherwise the first entry stays.
 */
#ifndef BR_SERVER_TRACE_CMD_H
#define BR_SERVER_TRACE_CMD_H

#include <stdint.h>
#include <stdio.h>

#include "adapters/redis.h"

struct br_trace_stats {
    uint64_t users;    /* user_register records in the prologue */
    uint64_t events;   /* event_create records in the prologue (N - 1) */
    uint64_t entries;  /* log entries of event N written, with outcomes */
    uint64_t external; /* entries left out: decided outside the event's slot */
    uint64_t bytes;    /* bytes written, header included */
};

/* Writes event_id's trace to out (binary). Reads Redis only (the catalog
 * and the logs; nothing is written there). BR_OK; BR_E_NOT_FOUND (no such
 * event, or its log does not start with its creation); BR_E_UNAVAILABLE /
 * BR_E_IO (Redis); BR_E_CORRUPT (a log entry or catalog record that does
 * not decode); BR_E_IO also for a failed write to out. why (cap bytes)
 * says what went wrong in a sentence. Work: two passes over the log in
 * batches, plus one read per user. */
int br_trace_export(const struct br_redis_options *o, uint64_t event_id, FILE *out,
                    struct br_trace_stats *st, char *why, size_t why_cap);

/* `bookingrush trace ...`: argv[0] is "trace". Exit 0 ok, 1 failed, 2 usage. */
int br_trace_main(int argc, char **argv);

#endif
