/*
 * backend_distributed_roles.c -- the background roles of a distributed
 * server process, run by one thread every tick_ms:
 *
 *   health      PING Redis, ping PostgreSQL: what ready() says (always)
 *   admitter    per event: hold or renew br:{e<id>}:lease:admit, then
 *               admit if the core would change anything (the core's one
 *               rule, br_queue_admit_due over struct br_redis_due: opening
 *               due, room with people waiting under the gate and pacing, a
 *               pass lapsed, a gate change to announce)
 *   sweeper     per event: sweep when the first live hold's deadline has
 *               passed (no lease: a second sweep finds nothing due and is
 *               not even sent, since the check comes first)
 *   saga        saga_step when some event's first refund attempt is due,
 *               payment_check when a payment status check is (point 8),
 *               both handed to the saga worker's thread with their provider
 *               calls (backend_distributed_pay.c; no lease: each step
 *               re-schedules what it re-emits in the same script, and
 *               provider calls carry the payment id in their keys)
 *   fan-out     the queue changes noted since the last tick are published
 *   data loss   each second: is br:{cat}:epoch missing while PostgreSQL
 *               holds users or events Redis does not, or while the
 *               reconciler's br:{cat}:rebuilding exists? Then writes are
 *               refused (every process, whatever its roles) until the
 *               reconciler's rebuild writes the epoch again
 *
 * The checks of one tick are one pipelined round trip over every event.
 * A lease lives 3 ticks and is renewed every tick by its holder: a holder
 * that stalls longer loses it, and for the rest of that stall two
 * admitters may admit the same event (each admit is atomic, so the only
 * harm is a faster admission rate for that moment). Limits: events
 * 1..BR_DIST_ROLES_EVENTS_MAX are looked at per tick.
 */
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/clock.h"
#include "adapters/pg.h"
#include "core/panic.h"
#include "core/queue.h"
#include "server/api_cmd.h"
#include "server/backend_distributed_int.h"

#define BR_DIST_ROLES_EVENTS_MAX 1024u
#define LEASE_TICKS 3u
#define EPOCH_CHECK_MS 1000 /* how often every process asks whether Redis lost its data */

/* Holds or renews a lease: 1 when this process holds it now. */
static const char LEASE_LUA[] =
    "local v = redis.call('GET', KEYS[1]) "
    "if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end "
    "if v then return 0 end "
    "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1";

struct event_due {
    bool lease; /* we hold the admit lease */
    bool admit;
    bool sweep;
    bool saga;
    bool check; /* a payment status check is due (point 8) */
};

static uint64_t num(const redisReply *e)
{
    return e->type == REDIS_REPLY_STRING                       ? strtoull(e->str, NULL, 10)
           : e->type == REDIS_REPLY_INTEGER && e->integer >= 0 ? (uint64_t)e->integer
                                                               : 0;
}

/* The lease's script, as argv (key and ttl filled into the caller's). */
static void lease_argv(struct br_distributed *x, uint64_t e, char key[64], char ttl[24],
                       const char *argv[6], size_t len[6])
{
    snprintf(key, 64, "br:{e%llu}:lease:admit", (unsigned long long)e);
    snprintf(ttl, 24, "%u", LEASE_TICKS * x->cfg.tick_ms);
    argv[0] = "EVAL";
    argv[1] = LEASE_LUA;
    argv[2] = "1";
    argv[3] = key;
    argv[4] = x->pid;
    argv[5] = ttl;
    for (int i = 0; i < 6; i++) {
        len[i] = strlen(argv[i]);
    }
}

/* Decides from the lease's reply (NULL: not asked) and the event's due
 * inputs (the twin of br_engine_due). */
static void decide(struct br_distributed *x, const redisReply *lease,
                   const struct br_redis_due *due, int64_t now, struct event_due *d)
{
    memset(d, 0, sizeof *d);
    d->lease = (x->cfg.roles & BR_DIST_ROLE_ADMITTER) && lease != NULL &&
               lease->type == REDIS_REPLY_INTEGER && lease->integer == 1;
    if (!due->exists) {
        return; /* being created */
    }
    /* Issue 13: the one rule (core/queue.h), over the same inputs read from Redis. */
    struct br_queue_due_in in = {
        .exists = due->exists,
        .shuffled = due->shuffled,
        .opens_ms = due->opens_ms,
        .next_pass_ms = due->next_pass_ms,
        .waiting = due->waiting < UINT32_MAX ? (uint32_t)due->waiting : UINT32_MAX,
        .active = due->active_passes < UINT32_MAX ? (uint32_t)due->active_passes : UINT32_MAX,
        .max_active_live = due->maxl,
        .avail = due->avail,
        .admit_per_min = due->apm,
        .mode = due->mode,
        .flags = due->flags,
        .gate_told = due->told,
        .sold_out = due->sold_out,
        .pace_credit = due->pcr,
        .pace_last_ms = due->plast,
    };
    d->admit = d->lease && br_queue_admit_due(&in, now);
    d->sweep = (x->cfg.roles & BR_DIST_ROLE_SWEEPER) && due->next_hold_ms <= now;
    d->saga = (x->cfg.roles & BR_DIST_ROLE_SAGA) && due->next_refund_ms <= now;
    d->check = (x->cfg.roles & BR_DIST_ROLE_SAGA) && due->next_check_ms <= now;
}

static void run(struct br_distributed *x, struct dist_conn *c, struct br_cmd *cmd)
{
    struct br_outcome out;
    uint32_t n = 0;
    int rc = dist_apply(x, c, cmd, &out, c->fx, &n);
    if (rc == BR_E_UNAVAILABLE || rc == BR_E_UNKNOWN_OUTCOME || rc == BR_E_CORRUPT ||
        rc == BR_E_IO) {
        br_logf(x->cfg.log, BR_LOG_WARN, "role command failed", "\"command\":\"%s\",\"err\":\"%s\"",
                br_cmd_name(cmd->type), br_err_name(rc));
        return;
    }
    dist_effects(x, c, cmd, &out, c->fx, n, NULL);
}

/* One event's share of the tick. */
static void act(struct br_distributed *x, struct dist_conn *c, uint64_t e,
                const struct event_due *d)
{
    struct br_cmd cmd;
    if (d->admit) {
        br_api_cmd_admit(&cmd, e);
        run(x, c, &cmd);
    }
    if (d->sweep) {
        br_api_cmd_sweep(&cmd, e);
        run(x, c, &cmd);
    }
}

/* The work roles of one tick. Returns false when Redis failed. */
static bool work(struct br_distributed *x, struct dist_conn *c)
{
    uint64_t events = 0;
    if (dist_read_cat(x, c, "events", &events) != BR_OK) {
        return false;
    }
    if (events > BR_DIST_ROLES_EVENTS_MAX) {
        events = BR_DIST_ROLES_EVENTS_MAX;
    }
    bool saga_due = false, check_due = false;
    int64_t now = dist_now_ms(x);
    bool admitter = (x->cfg.roles & BR_DIST_ROLE_ADMITTER) != 0;
    bool alone = dist_is_cluster(c); /* the lease's script outside the batch */
    for (uint64_t e = 1; e <= events; e++) {
        char key[64], ttl[24];
        const char *argv[6];
        size_t len[6];
        lease_argv(x, e, key, ttl, argv, len);
        redisReply *lease = NULL;
        if (admitter && alone && dist_cmd(x, c, &lease, 6, argv, len) != BR_OK) {
            return false;
        }
        /* One node: the lease's script in the same round trip as the reads. */
        bool batched = admitter && !alone;
        struct br_redis_due due;
        int rc =
            br_redis_event_due(&c->r, e, batched ? 6 : 0, argv, len, batched ? &lease : NULL, &due);
        dist_note_redis(x, rc);
        if (rc != BR_OK) {
            if (lease != NULL) {
                freeReplyObject(lease);
            }
            return false;
        }
        struct event_due d;
        decide(x, lease, &due, now, &d);
        if (lease != NULL) {
            freeReplyObject(lease);
        }
        saga_due = saga_due || d.saga;
        check_due = check_due || d.check;
        act(x, c, e, &d);
    }
    /* The saga worker (backend_distributed_pay.c) runs them with their
     * provider calls, which may block for seconds. */
    dist_pay_kick(x, saga_due, check_due);
    return true;
}

/* Did Redis lose its data? The epoch key (written once by the reconciler
 * of a deployment whose Redis held everything PostgreSQL had) is missing
 * while PostgreSQL holds users or events Redis does not. Every process
 * checks, whatever its roles, so all refuse writes until the rebuild
 * writes the epoch again. Returns false when it could not tell. */
static bool check_lost(struct br_distributed *x, struct dist_conn *c)
{
    /* PostgreSQL first: a user or event is counted in Redis (the twin,
     * inside the transaction) before its row commits, so Redis read after
     * PostgreSQL is never behind it unless Redis lost data. */
    uint64_t pg_users = 0, pg_events = 0;
    if (br_pg_user_max_id(x->cfg.pg, &pg_users) != BR_OK ||
        br_pg_event_max_id(x->cfg.pg, &pg_events) != BR_OK) {
        return false;
    }
    struct dist_pipe p;
    dist_pipe_begin(x, c, &p);
    dist_pipe_addf(&p, "EXISTS br:{cat}:epoch");
    dist_pipe_addf(&p, "HMGET br:{cat}:cat users events");
    dist_pipe_addf(&p, "EXISTS br:{cat}:rebuilding");
    redisReply *r[3] = {NULL, NULL, NULL};
    for (int i = 0; i < 3; i++) {
        r[i] = dist_pipe_next(&p);
    }
    bool ok = dist_pipe_end(&p) == BR_OK && r[0] != NULL && r[1] != NULL && r[2] != NULL;
    if (!ok) {
        for (int i = 0; i < 3; i++) {
            if (r[i] != NULL) {
                freeReplyObject(r[i]);
            }
        }
        return false;
    }
    const redisReply *epoch = r[0], *cat = r[1], *rebuilding = r[2];
    ok = ok && epoch->type == REDIS_REPLY_INTEGER && cat->type == REDIS_REPLY_ARRAY &&
         cat->elements == 2 && rebuilding->type == REDIS_REPLY_INTEGER;
    bool lost = false;
    if (ok && epoch->integer == 0) {
        /* The reconciler's rebuild marks itself (br:{cat}:rebuilding):
         * Redis's counters catch up before the last event is written. */
        lost = num(cat->element[0]) < pg_users || num(cat->element[1]) < pg_events ||
               rebuilding->integer > 0;
    }
    for (int i = 0; i < 3; i++) {
        freeReplyObject(r[i]);
    }
    if (!ok) {
        return false;
    }
    if (!lost && !dist_is_cluster(c)) {
        /* Whole: whatever instance answers now is the one writes go to. */
        dist_accept_instance(x, dist_rd(x, c));
    }
    pthread_mutex_lock(&x->state_mu);
    if (x->lost != lost) {
        br_logf(x->cfg.log, lost ? BR_LOG_ERROR : BR_LOG_WARN,
                lost ? "Redis lost its data: refusing writes until the rebuild"
                     : "Redis rebuilt: accepting writes",
                NULL);
    }
    x->lost = lost;
    pthread_mutex_unlock(&x->state_mu);
    return true;
}

bool dist_recheck_lost(struct br_distributed *x, struct dist_conn *c)
{
    redisReply *rep = NULL;
    if (dist_cmdf(x, c, &rep, "EXISTS br:{cat}:epoch") != BR_OK) {
        return false;
    }
    bool whole = rep->type == REDIS_REPLY_INTEGER && rep->integer == 1;
    freeReplyObject(rep);
    if (!whole) {
        return false;
    }
    /* The epoch is written last by the rebuild (and by nothing else), so
     * with it present Redis holds the sale: as check_lost would find. */
    if (!dist_is_cluster(c)) {
        dist_accept_instance(x, dist_rd(x, c));
    }
    pthread_mutex_lock(&x->state_mu);
    if (x->lost) {
        br_logf(x->cfg.log, BR_LOG_WARN, "Redis rebuilt: accepting writes", NULL);
    }
    x->lost = false;
    pthread_mutex_unlock(&x->state_mu);
    return true;
}

/* Health: the only place that clears the down flags. Returns true when
 * Redis just came back (it may have come back empty: check at once). */
static bool health(struct br_distributed *x, struct dist_conn *c, bool redis_ok)
{
    if (redis_ok) {
        redisReply *rep = NULL;
        redis_ok = dist_cmdf(x, c, &rep, "PING") == BR_OK;
        if (rep != NULL) {
            freeReplyObject(rep);
        }
    }
    bool pg_ok = br_pg_ping(x->cfg.pg) == BR_OK;
    pthread_mutex_lock(&x->state_mu);
    if (x->redis_down != !redis_ok || x->pg_down != !pg_ok) {
        br_logf(x->cfg.log, redis_ok && pg_ok ? BR_LOG_WARN : BR_LOG_ERROR, "backing services",
                "\"redis\":\"%s\",\"postgresql\":\"%s\"", redis_ok ? "up" : "down",
                pg_ok ? "up" : "down");
    }
    bool back = x->redis_down && redis_ok;
    if (back) {
        atomic_fetch_add(&x->conn_gen, 1); /* every slot reconnects before its next use */
    }
    pthread_mutex_unlock(&x->state_mu);
    if (back && c != NULL) {
        /* It may have come back empty: looked at before writes resume. */
        check_lost(x, c);
    }
    pthread_mutex_lock(&x->state_mu);
    x->redis_down = !redis_ok;
    x->pg_down = !pg_ok;
    pthread_mutex_unlock(&x->state_mu);
    return back;
}

static bool wait_tick(struct br_distributed *x, int64_t until_ms)
{
    pthread_mutex_lock(&x->stop_mu);
    while (!x->stop && br_clock_mono_ms() < until_ms) {
        struct timespec t = br_clock_deadline(until_ms - br_clock_mono_ms());
        pthread_cond_timedwait(&x->stop_cv, &x->stop_mu, &t);
    }
    bool stop = x->stop;
    pthread_mutex_unlock(&x->stop_mu);
    return !stop;
}

static void *roles_main(void *arg)
{
    struct br_distributed *x = arg;
    int64_t next = br_clock_mono_ms();
    int64_t next_epoch = next;
    while (wait_tick(x, next)) {
        next = br_clock_mono_ms() + x->cfg.tick_ms;
        struct dist_conn *c = NULL;
        int rc = dist_conn_take(x, &c);
        if (rc == BR_E_OVERLOADED) {
            continue;
        }
        if (c == NULL) {
            health(x, NULL, false);
            continue;
        }
        bool ok = true;
        pthread_mutex_lock(&x->state_mu);
        bool lost = x->lost || x->changed;
        pthread_mutex_unlock(&x->state_mu);
        /* Each second; each tick while lost, so writes resume with the
         * rebuild (the reconciler may run in another process). */
        if (lost || br_clock_mono_ms() >= next_epoch) {
            next_epoch = br_clock_mono_ms() + EPOCH_CHECK_MS;
            check_lost(x, c);
        }
        if (!dist_refusing(x)) {
            ok = work(x, c);
        }
        dist_fanout_flush(x, c);
        health(x, c, ok);
        dist_conn_give(x, c);
    }
    return NULL;
}

int dist_roles_start(struct br_distributed *x)
{
    if (pthread_create(&x->roles_thread, NULL, roles_main, x) != 0) {
        return BR_E_IO;
    }
    x->roles_started = true;
    return BR_OK;
}

void dist_roles_stop(struct br_distributed *x)
{
    if (x->roles_started) {
        pthread_join(x->roles_thread, NULL);
        x->roles_started = false;
    }
}
