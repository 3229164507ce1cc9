/*
 * backend_distributed_int.h -- what the files of the distributed backend
 * share (backend_distributed.h has the design): the backend's struct, the
 * connection pool, the clock, the readiness flags, the event spec cache,
 * and the functions each file offers the others. Not for other modules.
 *
 *   backend_distributed.c         lifecycle, pool, readiness, gauges and metrics
 *   backend_distributed_accounts.c accounts, sessions, catalog (PostgreSQL first)
 *   backend_distributed_sale.c    queue, bookings, payments (the Lua twins)
 *   backend_distributed_read.c    reads of the live state, through the adapter (redis.h)
 *   backend_distributed_roles.c   admitter, sweeper, saga, health checks
 *   backend_distributed_fanout.c  the SSE fan-out over one subscription per process
 *   backend_distributed_index.c   each user's list of bookings
 *   backend_distributed_io.c      our own Redis commands, on one node or a cluster
 *   backend_distributed_pay.c     payments in production: saga worker, Kafka consumer, relay
 */
#ifndef BR_BACKEND_DISTRIBUTED_INT_H
#define BR_BACKEND_DISTRIBUTED_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "adapters/redis.h"
#include "server/backend_distributed.h"

struct redisContext;

#define DIST_URL_MAX 512u
#define DIST_FAN_PENDING_MAX 256u /* events with a queue change waiting to be published */

/* One pooled slot: the adapter (scripts) and a plain connection (reads). */
struct dist_conn {
    struct br_redis r; /* opened lazily (opened) */
    bool opened;
    struct redisContext *rd; /* NULL while disconnected; made again on use */
    uint32_t rd_pending;     /* replies to writes sent on rd without waiting (dist_send_nowait) */
    uint32_t index;
    uint64_t gen;     /* conn_gen when its connections were made */
    uint64_t checked; /* r.connects when the adapter's instance was last checked */
    /* Effects scratch, BR_EFFECTS_MAX each (~460 KB: never on a request
     * thread's stack): fx for the command the slot's holder applies,
     * fx_inner for one applied while carrying out fx (a refund's result). */
    struct br_effect *fx;
    struct br_effect *fx_inner;
};

struct dist_spec {
    bool have;
    uint64_t owner_id;
    struct br_event_spec spec; /* queue_capacity resolved */
};

struct br_distributed {
    struct br_backend base; /* first: the routes see only this */
    struct br_distributed_config cfg;
    char redis_url[DIST_URL_MAX];
    struct br_redis_options ropt;
    struct br_config ecfg; /* as recorded in Redis */
    char pid[BR_DIST_PROCESS_ID_MAX];

    pthread_mutex_t pool_mu;
    pthread_cond_t pool_cv;
    struct dist_conn *conns;
    uint32_t conn_count;
    uint32_t *free_stack; /* indexes of free slots */
    uint32_t free_count;

    pthread_mutex_t spec_mu;
    struct dist_spec *specs; /* [BR_DIST_SPEC_CACHE], event id - 1 */

    _Atomic uint64_t users_known; /* users 1..users_known exist (PostgreSQL said so) */
    _Atomic int64_t last_now_ms;
    _Atomic uint64_t commands; /* scripts applied through this process */
    _Atomic uint64_t fanout_reconnects;
    _Atomic uint64_t conn_gen; /* bumped when Redis comes back: older connections are dropped */

    pthread_mutex_t state_mu; /* the readiness fields below */
    bool redis_down;
    bool pg_down;
    bool writable;
    bool lost;                 /* Redis lost its data (epoch check, roles.c) */
    bool changed;              /* a connection met another Redis instance (run_id): writes wait for
                                  the data-loss check */
    char run_id[48];           /* the Redis instance known good; "" = not yet (one node only) */
    char why[BR_DIST_WHY_MAX]; /* the reconciler's reason while !writable */
    char ready_why[BR_DIST_WHY_MAX]; /* what ready() last said (stable storage) */

    pthread_mutex_t stop_mu;
    pthread_cond_t stop_cv;
    bool stop;
    pthread_t roles_thread;
    bool roles_started;
    pthread_t fanout_thread;
    bool fanout_started;

    struct {
        br_distributed_metrics_fn fn;
        void *ctx;
    } metrics[BR_DIST_METRICS_MAX];
    uint32_t metrics_count;

    struct dist_pay *pay; /* backend_distributed_pay.c */

    pthread_mutex_t fan_mu;
    uint64_t fan_pending[DIST_FAN_PENDING_MAX];
    uint32_t fan_pending_count;
};

/* ---- backend_distributed.c ---- */

/* A free slot, waiting up to BR_DIST_CONN_WAIT_MS: BR_OK, BR_E_OVERLOADED,
 * BR_E_UNAVAILABLE (its adapter could not be opened). */
int dist_conn_take(struct br_distributed *x, struct dist_conn **c);
void dist_conn_give(struct br_distributed *x, struct dist_conn *c);

/* The slot's read connection, connected if it was not: NULL when Redis
 * cannot be reached (logged, readiness updated). */
struct redisContext *dist_rd(struct br_distributed *x, struct dist_conn *c);

/* The command clock: wall ms, never backwards within this process. */
int64_t dist_now_ms(struct br_distributed *x);

/* Readiness bookkeeping after a call: BR_E_UNAVAILABLE / UNKNOWN_OUTCOME
 * mark the server down until the next health check says otherwise. */
void dist_note_redis(struct br_distributed *x, int rc);
void dist_note_pg(struct br_distributed *x, int rc);

/* Whether writes are refused now (the reconciler's flag). */
bool dist_refusing(struct br_distributed *x);

/* A slot for a write: BR_OK, or the error to answer (writes refused, no
 * slot). Taking the slot may (re)connect it, which checks the Redis
 * instance first, so a write never reaches a Redis restarted empty before
 * the data-loss check saw it. */
int dist_take_for_write(struct br_distributed *x, struct dist_conn **c);

/* The Redis instance behind ctx (INFO server's run_id): BR_OK when it is
 * the known one (or the first seen), else BR_E_UNAVAILABLE with
 * x->changed set (logged): writes then wait until the data-loss check
 * accepts the instance (dist_accept_instance) or finds it lost. */
int dist_check_instance(struct br_distributed *x, struct redisContext *ctx);

/* The data-loss check found Redis whole: the instance behind ctx becomes
 * the known one and writes may go on (roles.c). */
void dist_accept_instance(struct br_distributed *x, struct redisContext *ctx);

/* br_redis_apply with the command's now_ms set, counted, readiness noted. */
int dist_apply(struct br_distributed *x, struct dist_conn *c, struct br_cmd *cmd,
               struct br_outcome *out, struct br_effect *fx, uint32_t *fx_count);

/* The event's spec (cached; on a miss read from Redis on the slot held,
 * or a slot taken when held is NULL, then from PostgreSQL). BR_OK,
 * BR_E_NOT_FOUND, or a connection error. */
int dist_spec(struct br_distributed *x, struct dist_conn *held, uint64_t event_id,
              struct dist_spec *out);

/* ---- backend_distributed_io.c: our own commands, one node or a cluster ---- */

struct redisReply;

/* Whether the slot talks to a Redis Cluster (then a batch cannot hold a
 * script: send those with dist_cmd). */
bool dist_is_cluster(const struct dist_conn *c);

/* A failed command: logged (with Redis's message when rep is an error
 * reply), the plain connection dropped, Redis marked down. */
void dist_io_fail(struct br_distributed *x, struct dist_conn *c, const char *what,
                  const struct redisReply *rep);

/* A write whose reply is not waited for (one node: read by the next use
 * of the slot's plain connection, an error reply logged then; a cluster:
 * an ordinary command). BR_OK once sent, else BR_E_UNAVAILABLE (logged).
 * Nothing may depend on its having been applied: a crash can lose it. */
int dist_send_nowait(struct br_distributed *x, struct dist_conn *c, int argc, const char **argv,
                     const size_t *len);
/* Reads the replies dist_send_nowait left on the plain connection (dist_rd
 * does, before handing it out); a transport failure drops it (logged). */
void dist_rd_settle(struct br_distributed *x, struct dist_conn *c);

/* One command: BR_OK with *rep (not an error reply; the caller frees it)
 * or BR_E_UNAVAILABLE (logged). dist_cmdf formats and splits at spaces. */
int dist_cmd(struct br_distributed *x, struct dist_conn *c, struct redisReply **rep, int argc,
             const char **argv, const size_t *len);
int dist_cmdf(struct br_distributed *x, struct dist_conn *c, struct redisReply **rep,
              const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* A batch of commands (never a script on a cluster): begin, add (at most
 * BR_CLUSTER_QUEUE_MAX = 512 in cluster mode), then next once per command added (NULL after a
 * failure: logged, nothing more comes), then end (reads what is left; BR_OK or BR_E_UNAVAILABLE).
 */
struct dist_pipe {
    struct br_distributed *x;
    struct dist_conn *c;
    uint32_t queued;
    uint32_t read;
    bool failed;
};
#define DIST_PIPE_MAX 512u
void dist_pipe_begin(struct br_distributed *x, struct dist_conn *c, struct dist_pipe *p);
void dist_pipe_add(struct dist_pipe *p, int argc, const char **argv, const size_t *len);
void dist_pipe_addf(struct dist_pipe *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
struct redisReply *dist_pipe_next(struct dist_pipe *p);
int dist_pipe_end(struct dist_pipe *p);

/* ---- backend_distributed_accounts.c ---- */

void dist_op_user_register(struct br_backend *b, const char *email, const char *name,
                           const uint8_t hash[BR_PASSWORD_HASH_LEN],
                           const uint8_t salt[BR_SALT_LEN], uint8_t role, struct br_call *call);
void dist_op_user_find(struct br_backend *b, const char *email, struct br_call *call);
void dist_op_user_get(struct br_backend *b, uint64_t user_id, struct br_call *call);
void dist_op_user_role_set(struct br_backend *b, uint64_t actor, uint64_t target, uint8_t role,
                           struct br_call *call);
bool dist_op_user_exists(struct br_backend *b, uint64_t user_id);
void dist_op_session_open(struct br_backend *b, uint64_t user, uint32_t generation, int64_t ttl_ms,
                          struct br_call *call);
void dist_op_session_rotate(struct br_backend *b, uint64_t session_id, uint32_t generation,
                            int64_t ttl_ms, struct br_call *call);
void dist_op_session_revoke(struct br_backend *b, uint64_t session_id, uint32_t generation,
                            struct br_call *call);
void dist_op_session_revoke_all(struct br_backend *b, uint64_t user, struct br_call *call);
void dist_op_event_create(struct br_backend *b, uint64_t actor, const struct br_event_spec *spec,
                          struct br_call *call);
void dist_op_event_list(struct br_backend *b, uint64_t after_id, struct br_call *call);
void dist_op_event_get(struct br_backend *b, uint64_t event_id, struct br_call *call);
void dist_op_event_stats(struct br_backend *b, uint64_t event_id, struct br_call *call);

/* ---- backend_distributed_sale.c ---- */

void dist_op_queue_join(struct br_backend *b, uint64_t user, uint64_t event_id,
                        struct br_call *call);
void dist_op_queue_leave(struct br_backend *b, uint64_t user, uint64_t event_id,
                         struct br_call *call);
void dist_op_queue_position(struct br_backend *b, uint64_t user, uint64_t event_id,
                            struct br_call *call);
int dist_op_queue_peek(struct br_backend *b, uint64_t user, uint64_t event_id,
                       struct br_api_queue *out);
int dist_op_queue_positions(struct br_backend *b, uint64_t event_id, const uint64_t *users,
                            uint32_t n, struct br_api_queue *out, int *rc);
void dist_op_reserve(struct br_backend *b, uint64_t user, uint64_t event_id, uint32_t zone_id,
                     uint32_t quantity, uint64_t pass_id, uint64_t idem_key, struct br_call *call);
void dist_op_booking_list(struct br_backend *b, uint64_t user, struct br_call *call);
void dist_op_booking_get(struct br_backend *b, uint64_t booking_id, struct br_call *call);
void dist_op_booking_cancel(struct br_backend *b, uint64_t user, uint64_t booking_id,
                            struct br_call *call);
void dist_op_payment_create(struct br_backend *b, uint64_t user, uint64_t booking_id,
                            struct br_call *call);
void dist_op_payment_event(struct br_backend *b, const char *provider_event_id, uint64_t payment_id,
                           bool succeeded, struct br_call *call);

/* Carries out a command's effects (charges, refunds, fan-out). For
 * payment_create, the intent goes into *pay when not NULL. */
void dist_effects(struct br_distributed *x, struct dist_conn *c, const struct br_cmd *cmd,
                  const struct br_outcome *out, const struct br_effect *fx, uint32_t n,
                  struct br_api_payment *pay);

/* ---- backend_distributed_read.c ---- */

/* Each: BR_OK, BR_E_NOT_FOUND, BR_E_UNAVAILABLE (Redis marked down),
 * BR_E_CORRUPT. The adapter's reads (adapters/redis.h, which owns lib.lua's
 * layout) on the slot's adapter connection, readiness noted. */
int dist_read_hold(struct br_distributed *x, struct dist_conn *c, uint64_t hold_id,
                   struct br_redis_hold *out);
int dist_read_payment(struct br_distributed *x, struct dist_conn *c, uint64_t payment_id,
                      struct br_redis_payment *out);
int dist_read_counters(struct br_distributed *x, struct dist_conn *c, uint64_t event_id,
                       uint32_t zone_count, struct br_redis_counters *out);
/* The event's spec as event_put.lua stored it (queue capacity resolved). */
int dist_read_spec(struct br_distributed *x, struct dist_conn *c, uint64_t event_id,
                   struct dist_spec *out);
/* A user's email, name and role (no password hash). */
int dist_read_user(struct br_distributed *x, struct dist_conn *c, uint64_t user_id,
                   struct br_api_user *out);
/* A counter of the catalog hash ("events", "users"). */
int dist_read_cat(struct br_distributed *x, struct dist_conn *c, const char *field, uint64_t *out);

/* The queue views of n users of one event (br_redis_queue_positions).
 * rc[i] = BR_OK or BR_E_NOT_IN_QUEUE; returns BR_OK, BR_E_NOT_FOUND (no
 * event) or BR_E_UNAVAILABLE. */
int dist_read_views(struct br_distributed *x, struct dist_conn *c, uint64_t event_id,
                    const uint64_t *users, uint32_t n, struct br_api_queue *out, int *rc);

/* A reply's integer or decimal string as a number (0 otherwise). */
uint64_t dist_num(const struct redisReply *e);

/* ---- backend_distributed_index.c: the user's booking index ---- */

/* The user's booking ids, newest first, after making sure the index holds
 * every live or sold hold of the user (repaired from the events' records
 * when a crash left one out). */
int dist_read_user_holds(struct br_distributed *x, struct dist_conn *c, uint64_t user_id,
                         uint64_t *ids, uint32_t max, uint32_t *count);
/* Adds a hold to the user's index (NX: the first time stays). */
int dist_index_hold(struct br_distributed *x, struct dist_conn *c, uint64_t user_id,
                    uint64_t hold_id, int64_t created_ms);

/* ---- backend_distributed_roles.c ---- */

int dist_roles_start(struct br_distributed *x);
/* A write met "Redis lost its data" or "another instance": is the epoch
 * back (the rebuild is done, or the instance kept its data)? Then the
 * refusal ends now, not at the roles thread's next tick. One round trip. */
bool dist_recheck_lost(struct br_distributed *x, struct dist_conn *c);
void dist_roles_stop(struct br_distributed *x);

/* ---- backend_distributed_pay.c ---- */

struct br_metrics_sink;
/* After open: the saga worker's state, the relay's producer (--kafka, role
 * relay). BR_OK, BR_E_INVALID (--kafka without Kafka built in), BR_E_IO. */
int dist_pay_open(struct br_distributed *x);
/* The saga worker (role saga), the consumer (--kafka, role saga), the relay. */
int dist_pay_start(struct br_distributed *x);
/* After the roles thread stopped, before the pool goes. */
void dist_pay_close(struct br_distributed *x);
/* The roles thread saw a refund attempt (saga_step) or a status check
 * (payment_check) due: the saga worker runs it, with its provider calls. */
void dist_pay_kick(struct br_distributed *x, bool step_due, bool check_due);
/* A provider_query / provider_void effect: ask the provider, feed the answer back. */
void dist_pay_check_effect(struct br_distributed *x, struct dist_conn *c,
                           const struct br_effect *fx);
void dist_pay_metrics(struct br_distributed *x, struct br_metrics_sink *out);
/* Issue 13: the waiting room (backend.h). */
void dist_op_queue_mode_set(struct br_backend *b, uint64_t actor, uint64_t event_id, uint8_t set,
                            uint8_t mode, uint32_t max_active, uint32_t admit_per_min,
                            struct br_call *call);
int dist_op_queue_status_peek(struct br_backend *b, uint64_t event_id,
                              struct br_api_queue_status *out);
void dist_op_presence_report(struct br_backend *b, uint64_t event_id, const uint64_t *users,
                             uint32_t n);
int dist_op_pow_use(struct br_backend *b, uint64_t event_id, const char *rand_hex, int64_t ttl_ms);

/* ---- backend_distributed_fanout.c ---- */

int dist_fanout_start(struct br_distributed *x);
void dist_fanout_stop(struct br_distributed *x);
/* The pass_issued effects among fx[0..n): published at once on the
 * channel (pipelined: one round trip). */
void dist_fanout_passes(struct br_distributed *x, struct dist_conn *c, const struct br_effect *fx,
                        uint32_t n);
/* Issue 13: the queue_state effects among fx[0..n): published at once
 * ("s <event> <gate> <mode>") to every process's hub. */
void dist_fanout_states(struct br_distributed *x, struct dist_conn *c, const struct br_effect *fx,
                        uint32_t n);
/* Positions of the event may have moved: published by the next flush
 * (at most once per event per flush). */
void dist_fanout_queue_changed(struct br_distributed *x, uint64_t event_id);
/* Publishes the pending queue changes (the roles thread, each tick). */
void dist_fanout_flush(struct br_distributed *x, struct dist_conn *c);

#endif
