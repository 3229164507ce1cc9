/*
 * backend_distributed.h -- the production deployment: any number of
 * stateless `bookingrush serve` processes over one Redis (the live on-sale,
 * every change one Lua twin of the core) and one PostgreSQL (the record:
 * accounts, sessions, the catalog, the projection of each event's log).
 *
 *   request thread ─▶ (PostgreSQL: accounts, sessions, catalog)
 *                  ─▶ Redis: br_redis_apply (one script, log appended) or a read
 *                  ─▶ done() before the operation returns
 *   role threads:  admitter (lease per event), sweeper, saga   ─▶ Redis
 *   fan-out:       one SUBSCRIBE br:fanout per process ─▶ the SSE hub's listener
 *
 * Calls complete synchronously on the calling thread: an answer is sent
 * once Redis (or PostgreSQL) answered, so what it says is as durable as
 * that server's persistence makes it (README, "deployment").
 *
 * Connections. A bounded pool of BR_DIST_CONNS_MAX slots, each one
 * struct br_redis (the adapter's scripts; single-threaded) and one plain
 * hiredis connection of our own for reads, leases and PUBLISH. A caller
 * takes a free slot for the length of one operation, waiting up to
 * BR_DIST_CONN_WAIT_MS (then BR_E_OVERLOADED). PostgreSQL's pool is
 * adapters/pg.h's.
 *
 * Accounts and the catalog (contract 2): PostgreSQL first, the Redis twin
 * inside its transaction (the hook), so both allocate the same dense id
 * and the row commits only if Redis agreed. A role change runs the twin
 * first (it checks the actor as the core does), then PostgreSQL (idempotent:
 * a failure there answers an error and a retry sets it again). Login reads
 * PostgreSQL; sessions live there only.
 *
 * Reads come from Redis, the live state (key layout: lua/lib.lua), so
 * the on-sale (reserves, reads, cancels, payments) goes on while
 * PostgreSQL is away; only accounts, sign-ins and the catalog's writes
 * need it. An event's spec is immutable: cached per process (read from
 * Redis, else PostgreSQL). A user's role for the role checks is read from
 * Redis's twin (written before PostgreSQL's), else PostgreSQL. While
 * Redis lost its data, events are answered from PostgreSQL's record.
 * A user's bookings are indexed by this backend in the user's slot
 * (backend_distributed_index.c), repaired on read when a crash left a
 * hold out.
 *
 * Roles (br_distributed_config.roles): admitter holds
 * br:{e<id>}:lease:admit (SET NX PX 3 ticks, renewed each tick by its
 * holder) and admits only when admitting would change something (opening
 * due, room and people waiting, a pass lapsed); sweeper needs no lease (a
 * sweep is idempotent: the second finds nothing due) and sweeps only when
 * the first live hold's deadline has passed; saga needs no lease either
 * (saga_step re-emits a refund only when its attempt is due and schedules
 * the next one in the same script; a refund carries the payment id as its
 * idempotency key, so two workers refunding at once refund once); saga runs
 * saga_step and payment_check (point 8) on a worker thread of its own, so
 * the provider's calls never stall the roles thread, and with --kafka it
 * is also a consumer of <prefix>payments in the group --kafka-group; relay
 * (with --kafka) publishes PostgreSQL's outbox to Kafka (server/relay.h).
 * backend_distributed_pay.c has the payments side.
 *
 * Clock. now_ms is this host's wall clock in ms, never going backwards
 * within a process. Processes on one host share it; across hosts it may be
 * skewed, and the core is written for that (cmd.h: now_ms "may go backwards
 * (clock skew)"): a command stamped earlier than the last one of its event
 * is decided at its own time, as if it had arrived first (a hold's
 * deadline is its creator's clock plus the TTL). Keep hosts on NTP: a skew
 * of s ms moves holds' and passes' lifetimes by up to s ms.
 *
 * Readiness. ready() says no, with a sentence, while Redis or PostgreSQL
 * cannot be reached (checked each tick and on every failed call), while
 * br_distributed_set_writable(x, false, why) is in force (this process's
 * reconciler is rebuilding), or while Redis lost its data (every process
 * checks each second: br:{cat}:epoch missing and Redis behind PostgreSQL,
 * or br:{cat}:rebuilding present). Writes are refused with
 * BR_E_UNAVAILABLE before anything is sent while Redis is down or lost;
 * with PostgreSQL down only what needs it fails (UNAVAILABLE from pg.h).
 * When Redis comes back, every pooled connection is made afresh before
 * its next use, and every connection made checks which Redis instance it
 * reached (INFO run_id): another instance than the known one holds writes
 * until the data-loss check has looked, so no write ever reaches a Redis
 * restarted empty, however quickly it came back. A write refused for data
 * loss reads the epoch itself, so all processes resume the moment the
 * rebuild writes it. (One node only: on a Redis Cluster the instance check
 * is skipped, a node restarted empty is found by the epoch check alone.)
 */
#ifndef BR_BACKEND_DISTRIBUTED_H
#define BR_BACKEND_DISTRIBUTED_H

#include <stdbool.h>
#include <stdint.h>

#include "adapters/provider.h"
#include "adapters/redis.h"
#include "core/engine.h"
#include "server/backend.h"
#include "server/log.h"

#define BR_DIST_CONNS_MAX 256u    /* pooled Redis slots (two connections each) */
#define BR_DIST_CONN_WAIT_MS 2000 /* a caller waits this long for a free slot */
#define BR_DIST_SPEC_CACHE 4096u  /* event specs cached (events 1..4096): ~1 KiB each */
#define BR_DIST_FANOUT_CHANNEL "br:fanout"
#define BR_DIST_PROCESS_ID_MAX 64u
#define BR_DIST_WHY_MAX 256u

/* Roles (--roles). */
enum {
    BR_DIST_ROLE_API = 1u << 0,
    BR_DIST_ROLE_ADMITTER = 1u << 1,
    BR_DIST_ROLE_SWEEPER = 1u << 2,
    BR_DIST_ROLE_SAGA = 1u << 3,
    BR_DIST_ROLE_RECORDER = 1u << 4,
    BR_DIST_ROLE_RECONCILER = 1u << 5,
    BR_DIST_ROLE_RELAY = 1u << 6, /* the outbox relay (with --kafka only) */
    BR_DIST_ROLE_ALL = (1u << 7) - 1u,
};

/* Parses "api,admitter,..." (or "all") into a BR_DIST_ROLE_* set. Returns 0
 * or -1 (an unknown name; *bad points at it). */
int br_distributed_roles_parse(const char *text, unsigned *roles, const char **bad);

struct br_pg;
struct br_distributed;

struct br_distributed_config {
    const char *redis_url;       /* "redis://host:port[/db]" (copied) */
    struct br_pg *pg;            /* opened by the caller, not owned */
    unsigned roles;              /* BR_DIST_ROLE_* */
    unsigned tick_ms;            /* admitter / sweeper / saga / health period */
    unsigned conns;              /* Redis slots, 1..BR_DIST_CONNS_MAX */
    struct br_config engine;     /* capacities when Redis holds none yet (seed drawn then) */
    struct br_provider payments; /* charges and refunds (provider.h); not owned. Every
                                    process must see the same intents (provider_test_pg.h) */
    struct br_backend_listener listener;
    const struct br_log *log; /* not owned */
    /* Payments in production (ISSUE11); strings borrowed for x's life. */
    uint32_t payment_check_ms;         /* payment_create's check_ms (point 8); 0 = no checks */
    const char *kafka_bootstrap;       /* NULL or "": no Kafka, webhooks applied at once */
    const char *kafka_prefix;          /* "br." */
    const char *kafka_group;           /* "br-saga" */
    unsigned kafka_dlq_after;          /* 5 */
    uint32_t kafka_session_timeout_ms; /* 45000 */
    uint32_t relay_batch;              /* 500 */
};

/* Connects to Redis (recording or adopting the deployment's config and
 * seed) and checks PostgreSQL's schema is there. Nothing runs yet.
 * BR_OK, BR_E_UNAVAILABLE (a server cannot be reached: logged with its
 * URL), BR_E_VERSION (schema missing or old: run `bookingrush migrate`),
 * BR_E_INVALID, BR_E_IO. */
int br_distributed_open(struct br_distributed **x, const struct br_distributed_config *cfg);

/* Sets the listener (before start). */
void br_distributed_set_listener(struct br_distributed *x, struct br_backend_listener l);

/* Starts the role threads and the fan-out subscription. BR_OK or BR_E_IO. */
int br_distributed_start(struct br_distributed *x);

struct br_backend *br_distributed_backend(struct br_distributed *x);

/* The reconciler's switch: writes refused (503 UNAVAILABLE) while false;
 * why (copied) is what /readyz says. Any thread. */
void br_distributed_set_writable(struct br_distributed *x, bool writable, const char *why);

/* Another module's metric families on /metrics (the recorder's, the
 * reconciler's): fn writes Prometheus text into buf with snprintf's rules
 * and returns the length it needs. At most BR_DIST_METRICS_MAX; before
 * start. */
#define BR_DIST_METRICS_MAX 4u
typedef size_t (*br_distributed_metrics_fn)(void *ctx, char *buf, size_t cap);
void br_distributed_add_metrics(struct br_distributed *x, br_distributed_metrics_fn fn, void *ctx);

/* The Redis options parsed from the URL (for the recorder and reconciler,
 * which open their own connections). */
const struct br_redis_options *br_distributed_redis_options(const struct br_distributed *x);

/* The engine config recorded in Redis (seed and catalog capacities). */
const struct br_config *br_distributed_engine_config(const struct br_distributed *x);

/* This process's id in leases ("host:pid:random"). */
const char *br_distributed_process_id(const struct br_distributed *x);

/* Stops the threads, closes the connections, frees x (may be NULL). */
void br_distributed_close(struct br_distributed *x);

#endif
