/*
 * pg.h -- PostgreSQL, the distributed deployment's system of record
 * (docs/DESIGN.md, "The distributed deployment"): accounts, refresh
 * sessions, the catalog, and the projection of each event's Redis log
 * into bookings, payments and per-zone counters.
 *
 * Connections. struct br_pg is a bounded pool of pool_size libpq
 * connections, safe to share between threads: each call borrows one
 * connection for its duration and gives it back. When all are busy a caller
 * waits up to wait_ms (default BR_PG_WAIT_MS_DEFAULT) and then gets
 * BR_E_OVERLOADED. A connection is made lazily on first use and again after
 * it broke. Every statement is prepared once per connection (by name, on
 * first use on that connection) and run with binary-safe parameters.
 *
 * Errors, translated here at each call site and logged with the SQLSTATE
 * and the server's message:
 *   BR_E_UNAVAILABLE      nothing was done: no connection could be made, or
 *                         the server refused (57P01 admin shutdown, 53xxx,
 *                         08xxx before the statement was sent). The caller
 *                         may retry later; the pool recovers by itself.
 *   BR_E_UNKNOWN_OUTCOME  a write's COMMIT was sent, no answer came, and no
 *                         connection could ask the server what became of it
 *                         (below): it may or may not have committed. Every
 *                         write here is designed so that doing it again is
 *                         harmless (ON CONFLICT, the projection position, a
 *                         taken email answering EMAIL_TAKEN), so the caller
 *                         retries once the server is back.
 *   BR_E_CORRUPT          a CHECK constraint refused (23514: an oversold
 *                         zone in the projection) or a stored row cannot be
 *                         read back; logged at error level, never "fixed".
 *   BR_E_OVERLOADED       every pooled connection stayed busy for wait_ms.
 * Retry rule: a connection found broken before a statement is sent, or a
 * transaction that failed before its COMMIT was sent (08xxx, 57P01, a
 * broken socket), is run again once, from its start, on a fresh
 * connection. When a COMMIT's answer is lost, a fresh connection asks
 * txid_status() of the transaction's id (taken at BEGIN): "committed" is
 * success (not run again), "aborted" is retried once like the above, and
 * no answer (three tries, 250 ms) is UNKNOWN_OUTCOME. A transaction whose
 * retry fails too answers BR_E_UNAVAILABLE. Every connection has a statement
 * timeout (30 s), an idle-in-transaction timeout (60 s) and TCP keepalives
 * with a 10 s user timeout, so a vanished server turns into an error, not a
 * hang. br_pg_stats counts retries, resolutions and refusals.
 *
 * Ids (the brief's contract 2): users and events get dense ids 1, 2, 3 in
 * PostgreSQL, taken as max(id) + 1 under a transaction-scoped advisory lock
 * (one lock for users, one for events), and the caller's hook runs inside
 * that transaction before COMMIT: the distributed backend asks the Redis
 * twin to allocate the same id there and the row commits only if the hook
 * returns BR_OK. Because a lost connection before COMMIT retries the whole
 * transaction, a hook may run twice for one call, with the same id both
 * times (the first transaction never committed, so max + 1 is the same):
 * a hook must answer BR_OK when it finds its work already done for that id.
 *
 * Schema: adapters/migrations/NNNN_*.sql, embedded into the binary at build
 * time and applied by br_pg_migrate (also `bookingrush migrate --pg URL`).
 *
 * Limits: pool_size 1..BR_PG_POOL_MAX; one projection batch at most
 * BR_PG_PROJECT_BATCH_MAX log entries; list calls return at most their max.
 */
#ifndef BR_PG_H
#define BR_PG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "adapters/log.h"
#include "adapters/provider.h"
#include "core/cmd.h"

#define BR_PG_POOL_MAX 64u
#define BR_PG_WAIT_MS_DEFAULT 2000 /* a caller waits this long for a free connection */
#define BR_PG_CONNECT_TIMEOUT_S 5  /* libpq connect_timeout */
#define BR_PG_PROJECT_BATCH_MAX 1024u
#define BR_PG_STREAM_ID_MAX 32u     /* "<ms>-<seq>" incl. NUL, as Redis streams write them */
#define BR_PG_INTENT_ID_MAX 48u     /* = BR_PROVIDER_ID_MAX */
#define BR_PG_INTENT_SECRET_MAX 96u /* = BR_PROVIDER_SECRET_MAX */
#define BR_PG_INTENT_STATUS_MAX 32u /* "requires_payment_method" incl. NUL */

struct br_pg;

/* Opens the pool (no connection is made yet: the first call makes one, so
 * a server that is down at start is not fatal). url is a libpq URI or
 * conninfo string (copied). log may be NULL (then br_log_stderr). BR_OK,
 * BR_E_INVALID (pool_size, url), BR_E_IO (out of memory). */
int br_pg_open(struct br_pg **pg, const char *url, uint32_t pool_size, const struct br_log *log);

/* Closes every connection and frees pg (may be NULL). No call may be running. */
void br_pg_close(struct br_pg *pg);

/* How long a caller waits for a free connection before BR_E_OVERLOADED. */
void br_pg_set_wait_ms(struct br_pg *pg, int64_t wait_ms);

/* Makes one connection if none is open and runs SELECT 1: BR_OK or
 * BR_E_UNAVAILABLE (readiness checks). */
int br_pg_ping(struct br_pg *pg);

/* Connections made so far, in total (reconnects included): tests and metrics. */
uint64_t br_pg_connects(const struct br_pg *pg);

/* Counters for /metrics, since open. */
struct br_pg_stats {
    uint64_t connects;         /* connections made, reconnects included */
    uint64_t connect_failures; /* attempts that failed (server down, refused) */
    uint64_t retries;          /* bodies run again on a fresh connection */
    uint64_t commits_resolved; /* lost COMMIT answers found out with txid_status */
    uint64_t unknown_outcomes; /* lost COMMIT answers nobody could resolve */
    uint64_t overloaded;       /* callers that waited wait_ms for a connection in vain */
    uint64_t refused;          /* CHECK or key refusals translated to BR_E_CORRUPT */
    uint32_t pool_size;
    uint32_t busy; /* connections lent out right now */
};

/* A consistent copy of the counters. O(pool_size). Any thread. */
void br_pg_stats(struct br_pg *pg, struct br_pg_stats *out);

/* Fault injection for tests: the next n COMMITs that succeed have their
 * answer thrown away as if the network failed right after the server
 * committed (the connection is dropped), so the lost-COMMIT path runs. */
void br_pg_fault_lose_commits(struct br_pg *pg, uint32_t n);

/* Fault injection for tests: the next n write transactions have their
 * server session terminated (pg_terminate_backend of itself) after their
 * statements ran and before COMMIT, as an operator or a failover would. */
void br_pg_fault_kill_before_commit(struct br_pg *pg, uint32_t n);

/* --- migrations ----------------------------------------------------------- */

/* Applies every embedded migration not yet recorded in schema_migrations, in
 * version order, each in its own transaction together with its row, all under
 * a session advisory lock so two processes at once apply each exactly once
 * (the second waits, then finds nothing to do). report (may be NULL) gets
 * one line per migration applied ("applied 0001_init\n"). *applied (may be
 * NULL) = how many this call applied. BR_OK, BR_E_UNAVAILABLE, BR_E_CORRUPT
 * (a migration failed: rolled back, named in the log), BR_E_VERSION (the
 * database has a migration this binary does not know: an older binary). */
int br_pg_migrate(struct br_pg *pg, FILE *report, uint32_t *applied);

/* Whether the database's schema is this binary's, without changing it (a
 * server start checks this; `bookingrush migrate` changes it). BR_OK: every
 * embedded migration is recorded and none other. BR_E_VERSION: some are
 * missing (no schema_migrations table included: run migrate) or the
 * database has one this binary does not know (an older binary). Or a
 * connection error. *recorded and *embedded (either may be NULL): the
 * migrations the database records / this binary carries. */
int br_pg_schema_status(struct br_pg *pg, uint32_t *recorded, uint32_t *embedded);

/* --- users ---------------------------------------------------------------- */

/* Runs inside the transaction that creates a row with this id, before COMMIT:
 * the row commits only if it returns BR_OK (any other value is returned to the
 * caller and the transaction is rolled back). May run twice with the same id
 * (see the header comment). NULL = no hook. */
typedef int (*br_pg_hook)(void *ctx, uint64_t id);

struct br_pg_user {
    uint64_t id;
    char email[BR_EMAIL_MAX]; /* as stored, byte for byte */
    char name[BR_NAME_MAX];
    uint8_t password_hash[BR_PASSWORD_HASH_LEN];
    uint8_t salt[BR_SALT_LEN];
    uint8_t role;            /* enum br_role */
    uint64_t sessions_floor; /* logout-all: the user's sessions with id <= it are revoked */
    int64_t created_ms;
};

/* Registers c (type BR_CMD_USER_REGISTER: email, name, hash, salt, role;
 * created_ms = c->now_ms) with id = max(id) + 1 under the users lock, runs
 * hook(ctx, id), commits. *id_out = the id. BR_OK, BR_E_EMAIL_TAKEN (the email,
 * byte for byte: "A@x" and "a@x" are two users), BR_E_INVALID (bad role, an
 * email or name not valid UTF-8), the hook's error, or a connection error. */
int br_pg_user_register(struct br_pg *pg, const struct br_cmd *c, br_pg_hook hook, void *ctx,
                        uint64_t *id_out);

/* The user with this email, byte for byte. BR_OK, BR_E_NOT_FOUND, ... */
int br_pg_user_by_email(struct br_pg *pg, const char *email, struct br_pg_user *out);

/* The user with this id. BR_OK, BR_E_NOT_FOUND, ... */
int br_pg_user_get(struct br_pg *pg, uint64_t id, struct br_pg_user *out);

/* Sets the user's role (c: BR_CMD_USER_ROLE_SET; the caller checked the actor).
 * BR_OK, BR_E_NOT_FOUND, BR_E_INVALID (role). */
int br_pg_user_role_set(struct br_pg *pg, uint64_t user_id, uint8_t role);

/* The largest user id (0 when none). */
int br_pg_user_max_id(struct br_pg *pg, uint64_t *out);

/* --- refresh sessions: exactly core/session.h's rules ---------------------- */

/* Each takes the command of its type (BR_CMD_SESSION_OPEN / _ROTATE / _REVOKE
 * / _REVOKE_ALL, now_ms as the clock) and fills *out as the core's handler
 * does (session.h: the same err, id, ref, status, count, deadline_ms;
 * effect_count 0), in one transaction with the user's row locked, so two
 * rotations of one token at once are ordered: one succeeds, the other is a
 * reuse and revokes. Returns out->err, or a connection error (then *out is
 * cleared and nothing is known beyond what that error says). Session ids are
 * a sequence (dense only without rollbacks); BR_E_FULL is never answered by
 * open. A rotate that revokes for reuse commits that revocation and still
 * answers BR_E_UNAUTHORIZED (count = 1), as the core does. */
int br_pg_session_open(struct br_pg *pg, const struct br_cmd *c, struct br_outcome *out);
int br_pg_session_rotate(struct br_pg *pg, const struct br_cmd *c, struct br_outcome *out);
int br_pg_session_revoke(struct br_pg *pg, const struct br_cmd *c, struct br_outcome *out);
int br_pg_session_revoke_all(struct br_pg *pg, const struct br_cmd *c, struct br_outcome *out);

/* The session's state at now_ms (enum br_session_state; BR_SESSION_NONE if
 * unknown) into *state. BR_OK or a connection error. */
int br_pg_session_state(struct br_pg *pg, uint64_t session_id, int64_t now_ms, uint8_t *state);

/* --- events and zones ------------------------------------------------------ */

struct br_pg_event {
    uint64_t id;
    uint64_t owner_id; /* the creating user (0 = system) */
    int64_t created_ms;
    struct br_event_spec spec; /* round-trips exactly: memcmp-equal to what was created if
                                  that spec was zero-filled beyond its strings and zones */
};

/* Creates the event c->u.event_create (c: BR_CMD_EVENT_CREATE; owner =
 * c->user_id, created_ms = c->now_ms) and its zones (held = sold = 0) with
 * id = max(id) + 1 under the events lock, runs hook(ctx, id), commits.
 * The spec is stored as given (the caller validated it: the core's rules).
 * BR_OK, BR_E_INVALID (a name not valid UTF-8, a CHECK on the spec), the hook's
 * error, or a connection error. */
int br_pg_event_create(struct br_pg *pg, const struct br_cmd *c, br_pg_hook hook, void *ctx,
                       uint64_t *id_out);

/* The event. BR_OK, BR_E_NOT_FOUND, ... */
int br_pg_event_get(struct br_pg *pg, uint64_t id, struct br_pg_event *out);

/* Events with id > after_id in id order, at most max, into out[0..*count). */
int br_pg_event_list(struct br_pg *pg, uint64_t after_id, uint32_t max, struct br_pg_event *out,
                     uint32_t *count);

/* The largest event id (0 when none). */
int br_pg_event_max_id(struct br_pg *pg, uint64_t *out);

/* --- the projection of an event's log ------------------------------------- */

/* One decoded entry of an event's Redis log (contract 1: the recorder builds
 * these from struct br_redis_log_entry; everything is borrowed for the call). */
struct br_pg_log_item {
    const char *stream_id; /* "<ms>-<seq>", strictly increasing within the event */
    const struct br_cmd *cmd;
    const struct br_outcome *out;
    const struct br_effect *fx; /* the effects of the command, in order */
    uint32_t fx_count;
};

/* Applies items[0..n) of one event, in order, in ONE transaction that also
 * moves the event's projection position to the last item's stream id. Items
 * at or below the stored position are skipped (so the same batch twice, or
 * overlapping batches, apply each entry exactly once); the event's row is
 * locked, so two recorders at once serialise. What each entry changes is
 * br_pg_rows_of's (pg_project.h). Statements are pipelined (a round trip per
 * 256) and each zone row is written once per batch, with the CHECK shown the
 * counts right after the first entry that broke it, if any (pg_record.c);
 * consecutive reserves become one multi-row INSERT. Cost O(n + effects):
 * on the 2-core test machine ~30k reserve entries/s in batches of 256,
 * ~50k in batches of 1024 (tests/pg/bench_pg_project, make bench). Stream
 * ids are compared as (ms, seq) numbers. *applied (may be NULL) = entries
 * applied.
 * BR_OK, BR_E_CORRUPT (a CHECK refused: a zone would be oversold or a count
 * negative; the transaction is rolled back, the position stays, and the log
 * line names the event, the zone and the stream id; never "fixed"),
 * BR_E_INVALID (items not of this event or not increasing), BR_E_NOT_FOUND
 * (no such event), or a connection error (UNKNOWN_OUTCOME is harmless here:
 * applying again skips what committed). */
int br_pg_project(struct br_pg *pg, uint64_t event_id, const struct br_pg_log_item *items,
                  uint32_t n, uint32_t *applied);

/* The event's projection position ("0" when nothing was applied yet). */
int br_pg_projection_position(struct br_pg *pg, uint64_t event_id,
                              char stream_id[BR_PG_STREAM_ID_MAX]);

/* What the projection has seen of an event's log so far: counters the
 * rebuild needs that no row carries. Queue state itself is Redis's only. */
struct br_pg_progress {
    char stream_id[BR_PG_STREAM_ID_MAX]; /* the position ("0": nothing yet) */
    uint64_t applied;                    /* log entries applied */
    uint32_t pass_seq;                   /* the largest pass number (id & 0xFFFFFFFF) issued */
    uint64_t passes_issued;              /* pass_issued effects (the event's "admitted") */
};

/* The event's progress (all zero, stream_id "0", when nothing was applied). */
int br_pg_projection_progress(struct br_pg *pg, uint64_t event_id, struct br_pg_progress *out);

/* The id counters the event's last rebuild gave Redis, kept before Redis got
 * them (server/reconciler.c: a later rebuild starts past them even when the
 * ids they led to were never recorded). Each seq only grows. */
struct br_pg_rebuild_counters {
    uint32_t pass_seq, hold_seq, payment_seq;
    int64_t rebuilt_ms; /* when (the reconciler's wall clock); 0 = never rebuilt */
};

/* The event's counters (all zero when it was never rebuilt). BR_OK or a
 * connection error. */
int br_pg_rebuild_counters_get(struct br_pg *pg, uint64_t event_id,
                               struct br_pg_rebuild_counters *out);

/* Keeps c for the event, each column the greater of the stored one and c's,
 * committed before returning BR_OK. BR_E_NOT_FOUND (no such event) or a
 * connection error (UNKNOWN_OUTCOME: calling again is harmless). */
int br_pg_rebuild_counters_put(struct br_pg *pg, uint64_t event_id,
                               const struct br_pg_rebuild_counters *c);

/* --- reads for the reconciler and the rebuild ------------------------------ */

struct br_pg_zone {
    uint32_t zone_id; /* 1..zone_count */
    uint32_t capacity;
    uint32_t held;
    uint32_t sold;
};

/* The event's zones in zone order into out[0..*count), count <= BR_EVENT_ZONES_MAX. */
int br_pg_zones(struct br_pg *pg, uint64_t event_id, struct br_pg_zone out[BR_EVENT_ZONES_MAX],
                uint32_t *count);

struct br_pg_booking {
    uint64_t id; /* = the hold id */
    uint64_t event_id;
    uint64_t user_id;
    uint32_t zone_id;
    uint32_t quantity;
    uint8_t state; /* enum br_hold_state */
    int64_t total_minor;
    char currency[BR_CURRENCY_MAX];
    int64_t created_at_ms;
    int64_t expires_at_ms; /* the hold's deadline */
    uint64_t pass_id;      /* 0 = none */
    uint64_t payment_id;   /* the latest payment, 0 = none */
};

/* Bookings of the event with id > after_id whose state bit (1u << state) is
 * in states_mask, in id order, at most max. Live holds: mask 1u << BR_HOLD_HELD
 * (their deadlines are expires_at_ms). */
int br_pg_bookings(struct br_pg *pg, uint64_t event_id, uint32_t states_mask, uint64_t after_id,
                   uint32_t max, struct br_pg_booking *out, uint32_t *count);

/* One booking. BR_OK, BR_E_NOT_FOUND. */
int br_pg_booking_get(struct br_pg *pg, uint64_t id, struct br_pg_booking *out);

struct br_pg_payment {
    uint64_t id;
    uint64_t booking_id;
    uint64_t event_id;
    uint8_t state; /* enum br_payment_state */
    int64_t amount_minor;
    char currency[BR_CURRENCY_MAX];
    int64_t created_ms;
    uint32_t refund_attempts; /* provider_refund effects so far */
    int64_t next_attempt_ms;  /* refund_pending: when the saga retries (core's backoff) */
    char provider_payment_id[BR_PG_INTENT_ID_MAX]; /* "" until known */
};

/* Payments of the event with id > after_id whose state bit is in states_mask,
 * in id order, at most max. In flight: pending, failed, refund_pending. */
int br_pg_payments(struct br_pg *pg, uint64_t event_id, uint32_t states_mask, uint64_t after_id,
                   uint32_t max, struct br_pg_payment *out, uint32_t *count);

/* One payment. BR_OK, BR_E_NOT_FOUND. */
int br_pg_payment_get(struct br_pg *pg, uint64_t id, struct br_pg_payment *out);

/* Provider event ids (br_hash64 values, as in the commands) applied to the
 * event, > after, ascending, at most max (the rebuild's exactly-once set). */
int br_pg_provider_events(struct br_pg *pg, uint64_t event_id, uint64_t after, uint32_t max,
                          uint64_t *out, uint32_t *count);

/* --- the built-in test provider's intents, shared by server processes ----- */

struct br_pg_intent {
    char id[BR_PG_INTENT_ID_MAX]; /* "pi_..." */
    uint64_t payment_id;          /* unique: one intent per payment */
    uint64_t booking_id;
    char client_secret[BR_PG_INTENT_SECRET_MAX];
    int64_t amount_minor;
    char currency[BR_CURRENCY_MAX];
    char status[BR_PG_INTENT_STATUS_MAX]; /* Stripe's words: "requires_payment_method", ... */
    int64_t created_ms;
};

/* Stores in unless an intent for in->payment_id exists; either way *stored =
 * the intent of that payment (the first one wins: creating again returns the
 * same intent). BR_OK or a connection error. */
int br_pg_intent_put(struct br_pg *pg, const struct br_pg_intent *in, struct br_pg_intent *stored);

/* The intent by its id / by its payment. BR_OK, BR_E_NOT_FOUND. */
int br_pg_intent_get(struct br_pg *pg, const char *id, struct br_pg_intent *out);
int br_pg_intent_by_payment(struct br_pg *pg, uint64_t payment_id, struct br_pg_intent *out);

/* Sets the intent's status unless it is "succeeded" (final). BR_OK,
 * BR_E_NOT_FOUND, BR_E_DUPLICATE (already succeeded: nothing changed). */
int br_pg_intent_set_status(struct br_pg *pg, const char *id, const char *status);

/* --- the test provider's webhook outbox (test_deliveries, 0002) ----------- */

#define BR_PG_DELIVERY_ID_MAX 48u        /* "evt_" + hex, incl. NUL */
#define BR_PG_DELIVERY_PAYLOAD_MAX 4096u /* the event's JSON, incl. NUL */

struct br_pg_delivery {
    char event_id[BR_PG_DELIVERY_ID_MAX];
    char payload[BR_PG_DELIVERY_PAYLOAD_MAX];
    uint32_t attempts; /* made or claimed so far, this one included */
};

/* A confirm's decision, in one transaction: the intent's status set to
 * status (as br_pg_intent_set_status: not over "succeeded") and its webhook
 * event recorded undelivered, attempts 1 (the caller's own first attempt),
 * not claimable before next_ms. BR_OK; BR_E_DUPLICATE (the intent had
 * succeeded: nothing written), BR_E_NOT_FOUND, BR_E_INVALID (too long), or
 * a connection error (UNKNOWN_OUTCOME: the event may be recorded, and then
 * is delivered by whoever claims it). */
int br_pg_intent_decide(struct br_pg *pg, const char *intent_id, const char *status,
                        const char *event_id, const char *payload, int64_t now_ms,
                        int64_t next_ms);

/* Claims up to max undelivered events due at now_ms (next_ms <= now_ms),
 * oldest due first, skipping rows another transaction holds: each gets
 * attempts + 1 and next_ms = now_ms + lease_ms, so no one claims it again
 * before then. *count claimed, into out. */
int br_pg_delivery_claim(struct br_pg *pg, int64_t now_ms, int64_t lease_ms,
                         struct br_pg_delivery *out, uint32_t max, uint32_t *count);

/* The webhook route answered 2xx: the event is delivered (never claimed
 * again). BR_OK (also when it was already delivered). */
int br_pg_delivery_done(struct br_pg *pg, const char *event_id, int64_t now_ms);

/* An attempt failed: claimable again from next_ms. BR_OK. */
int br_pg_delivery_retry(struct br_pg *pg, const char *event_id, int64_t next_ms);

/* --- payments in production (0003_payments.sql, adapters/pg_payments.c) --- */

/* A payment fact received from the provider: a verified webhook or a status
 * query's answer (point 8). Everything is borrowed for the call. */
struct br_pg_fact {
    const char *provider_event_id; /* "evt_..." or "q:..." */
    uint64_t payment_id, booking_id;
    bool succeeded;
    const char *source;            /* "webhook" | "query" */
    int64_t received_ms;           /* wall clock */
};
/* provider_events_received row + outbox row (topic "payments", key booking id) in one
 * transaction. BR_OK (stored now), BR_E_DUPLICATE (stored before, nothing written), BR_E_UNAVAILABLE. */
int br_pg_fact_ingest(struct br_pg *pg, const struct br_pg_fact *f);

/* The Stripe adapter's payment -> PaymentIntent map (stripe_intents). */
int br_pg_stripe_intent_get(struct br_pg *pg, uint64_t payment_id, char id_out[BR_PROVIDER_ID_MAX]);
                                                   /* BR_OK, BR_E_NOT_FOUND, BR_E_UNAVAILABLE */
int br_pg_stripe_intent_put(struct br_pg *pg, uint64_t payment_id, const char *intent_id,
                            int64_t now_ms, char winner_out[BR_PROVIDER_ID_MAX]);
                                                   /* first wins; winner_out = the stored id */

#endif
