/*
 * backend_distributed.c -- the distributed backend's lifecycle, connection
 * pool, clock and readiness, its gauges and metric families (design in
 * backend_distributed.h; accounts, sessions and the catalog are in
 * backend_distributed_accounts.c).
 */
#define _GNU_SOURCE

#include "server/backend_distributed.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "adapters/auth.h"
#include "adapters/clock.h"
#include "adapters/pg.h"
#include "adapters/redis_cluster.h"
#include "core/catalog.h"
#include "core/panic.h"
#include "server/api_cmd.h"
#include "server/backend_distributed_int.h"
#include "server/metrics.h"

static struct br_distributed *self(struct br_backend *b)
{
    return (struct br_distributed *)(void *)b;
}

/* ---- roles ---- */

static const struct {
    const char *name;
    unsigned bit;
} ROLE_NAMES[] = {
    {"api", BR_DIST_ROLE_API},           {"admitter", BR_DIST_ROLE_ADMITTER},
    {"sweeper", BR_DIST_ROLE_SWEEPER},   {"saga", BR_DIST_ROLE_SAGA},
    {"recorder", BR_DIST_ROLE_RECORDER}, {"reconciler", BR_DIST_ROLE_RECONCILER},
    {"relay", BR_DIST_ROLE_RELAY},       {"all", BR_DIST_ROLE_ALL},
};

int br_distributed_roles_parse(const char *text, unsigned *roles, const char **bad)
{
    *roles = 0;
    const char *p = text;
    for (unsigned n = 0; n < 64 && *p != '\0'; n++) {
        size_t len = strcspn(p, ",");
        bool found = false;
        for (size_t i = 0; i < sizeof ROLE_NAMES / sizeof ROLE_NAMES[0]; i++) {
            if (strlen(ROLE_NAMES[i].name) == len && strncmp(p, ROLE_NAMES[i].name, len) == 0) {
                *roles |= ROLE_NAMES[i].bit;
                found = true;
            }
        }
        if (!found) {
            if (bad != NULL) {
                *bad = p;
            }
            return -1;
        }
        p += len;
        if (*p == ',') {
            p++;
        }
    }
    return *roles != 0 ? 0 : -1;
}

/* ---- clock and readiness ---- */

int64_t dist_now_ms(struct br_distributed *x)
{
    int64_t now = br_clock_wall_ms();
    int64_t last = atomic_load(&x->last_now_ms);
    /* Never backwards within the process: a step back of the wall clock
     * stands still until it catches up (README: keep hosts on NTP). */
    while (now > last && !atomic_compare_exchange_weak(&x->last_now_ms, &last, now)) {
    }
    return now > last ? now : last;
}

void dist_note_redis(struct br_distributed *x, int rc)
{
    if (rc != BR_E_UNAVAILABLE && rc != BR_E_UNKNOWN_OUTCOME) {
        return;
    }
    pthread_mutex_lock(&x->state_mu);
    x->redis_down = true;
    pthread_mutex_unlock(&x->state_mu);
}

void dist_note_pg(struct br_distributed *x, int rc)
{
    if (rc != BR_E_UNAVAILABLE && rc != BR_E_UNKNOWN_OUTCOME) {
        return;
    }
    pthread_mutex_lock(&x->state_mu);
    x->pg_down = true;
    pthread_mutex_unlock(&x->state_mu);
}

bool dist_refusing(struct br_distributed *x)
{
    /* Redis known down (a failed call or the last health check): refused
     * before anything is sent, so the answer is UNAVAILABLE (nothing done),
     * not UNKNOWN_OUTCOME. PostgreSQL down refuses only what needs it. */
    pthread_mutex_lock(&x->state_mu);
    bool r = !x->writable || x->lost || x->redis_down || x->changed;
    pthread_mutex_unlock(&x->state_mu);
    return r;
}

void br_distributed_set_writable(struct br_distributed *x, bool writable, const char *why)
{
    pthread_mutex_lock(&x->state_mu);
    if (x->writable != writable) {
        br_logf(x->cfg.log, writable ? BR_LOG_WARN : BR_LOG_ERROR,
                writable ? "writes accepted again" : "writes refused", "\"why\":\"%s\"",
                why != NULL ? why : "");
    }
    x->writable = writable;
    snprintf(x->why, sizeof x->why, "%s", why != NULL ? why : "writes are refused");
    pthread_mutex_unlock(&x->state_mu);
}

/* ---- the pool ---- */

static struct timeval ms_tv(int ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    return tv;
}

/* A plain connection with the adapter's timeouts and db. NULL on failure
 * (logged with the URL). */
static redisContext *connect_plain(struct br_distributed *x, const char *what)
{
    redisContext *c =
        redisConnectWithTimeout(x->ropt.host, x->ropt.port, ms_tv(x->ropt.connect_timeout_ms));
    const char *err = c == NULL ? "out of memory" : c->err != 0 ? c->errstr : NULL;
    if (err == NULL && (redisSetTimeout(c, ms_tv(x->ropt.command_timeout_ms)) != REDIS_OK ||
                        redisEnableKeepAlive(c) != REDIS_OK)) {
        err = c->errstr;
    }
    if (err == NULL && x->ropt.db != 0) {
        redisReply *rep = redisCommand(c, "SELECT %d", x->ropt.db);
        if (rep == NULL || rep->type != REDIS_REPLY_STATUS) {
            err = rep != NULL && rep->str != NULL ? "SELECT refused" : c->errstr;
        }
        if (rep != NULL) {
            freeReplyObject(rep);
        }
    }
    if (err != NULL) {
        char esc[DIST_URL_MAX + 64];
        br_logf(x->cfg.log, BR_LOG_ERROR, "redis: cannot connect",
                "\"url\":\"%s\",\"what\":\"%s\",\"detail\":\"%s\"",
                br_log_escape(x->redis_url, esc, sizeof esc), what, err);
        if (c != NULL) {
            redisFree(c);
        }
        dist_note_redis(x, BR_E_UNAVAILABLE);
        return NULL;
    }
    return c;
}

redisContext *dist_rd(struct br_distributed *x, struct dist_conn *c)
{
    dist_rd_settle(x, c); /* writes sent without waiting: their replies first */
    if (c->rd == NULL) {
        c->rd = connect_plain(x, "read connection");
        if (c->rd != NULL) {
            dist_check_instance(x, c->rd); /* another instance: writes wait (x->changed) */
        }
    }
    return c->rd;
}

/* INFO server's run_id into out (cap 48); false when it cannot be read. */
static bool run_id_of(redisContext *ctx, char out[48])
{
    redisReply *rep = redisCommand(ctx, "INFO server");
    bool ok = false;
    if (rep != NULL && rep->type == REDIS_REPLY_STRING) {
        const char *at = strstr(rep->str, "run_id:");
        ok = at != NULL && sscanf(at + 7, "%47[0-9a-f]", out) == 1;
    }
    if (rep != NULL) {
        freeReplyObject(rep);
    }
    return ok;
}

int dist_check_instance(struct br_distributed *x, redisContext *ctx)
{
    char id[48];
    if (!run_id_of(ctx, id)) {
        dist_note_redis(x, BR_E_UNAVAILABLE);
        return BR_E_UNAVAILABLE;
    }
    pthread_mutex_lock(&x->state_mu);
    if (x->run_id[0] == '\0') {
        snprintf(x->run_id, sizeof x->run_id, "%s", id);
    }
    bool same = strcmp(x->run_id, id) == 0;
    if (!same && !x->changed) {
        br_logf(x->cfg.log, BR_LOG_WARN,
                "redis: another instance answers (restarted?): writes wait for the data-loss check",
                "\"was\":\"%s\",\"now\":\"%s\"", x->run_id, id);
        x->changed = true;
    }
    pthread_mutex_unlock(&x->state_mu);
    return same ? BR_OK : BR_E_UNAVAILABLE;
}

void dist_accept_instance(struct br_distributed *x, redisContext *ctx)
{
    char id[48];
    if (ctx == NULL || !run_id_of(ctx, id)) {
        return;
    }
    pthread_mutex_lock(&x->state_mu);
    if (x->changed) {
        br_logf(x->cfg.log, BR_LOG_WARN, "redis: the new instance holds the sale: writes go on",
                "\"run_id\":\"%s\"", id);
    }
    snprintf(x->run_id, sizeof x->run_id, "%s", id);
    x->changed = false;
    pthread_mutex_unlock(&x->state_mu);
}

/* Refused only for data loss or another instance (what a rebuild ends). */
static bool refusing_for_loss(struct br_distributed *x)
{
    pthread_mutex_lock(&x->state_mu);
    bool r = x->writable && !x->redis_down && (x->lost || x->changed);
    pthread_mutex_unlock(&x->state_mu);
    return r;
}

int dist_take_for_write(struct br_distributed *x, struct dist_conn **c)
{
    *c = NULL;
    if (dist_refusing(x) && !refusing_for_loss(x)) {
        return BR_E_UNAVAILABLE;
    }
    int rc = dist_conn_take(x, c);
    /* Lost (or another instance): the rebuild may have ended since the
     * roles thread last looked; one read says (dist_recheck_lost). */
    if (rc == BR_OK && dist_refusing(x) &&
        (!refusing_for_loss(x) || !dist_recheck_lost(x, *c) || dist_refusing(x))) {
        dist_conn_give(x, *c);
        *c = NULL;
        rc = BR_E_UNAVAILABLE;
    }
    return rc;
}

/* The adapter's connection (one node): when it was (re)made since the
 * last check, the instance behind it is checked before anything is sent,
 * since the adapter reconnects by itself and a write must never reach a
 * Redis restarted empty. A dropped connection is made now (a PING) rather
 * than inside the next script call. */
static int adapter_instance(struct br_distributed *x, struct dist_conn *c)
{
    if (c->r.cluster != NULL) {
        return BR_OK; /* per node: not checked on a cluster */
    }
    if (c->r.ctx == NULL) {
        redisReply *rep = NULL;
        int rc = br_redis_commandf(&c->r, &rep, "PING");
        if (rep != NULL) {
            freeReplyObject(rep);
        }
        if (rc != BR_OK || c->r.ctx == NULL) {
            dist_note_redis(x, BR_E_UNAVAILABLE);
            return BR_E_UNAVAILABLE;
        }
    }
    if (c->checked != c->r.connects) {
        /* Another instance sets x->changed: writes wait for the data-loss
         * check (dist_take_for_write), reads and the roles go on. */
        dist_check_instance(x, c->r.ctx);
        c->checked = c->r.connects;
    }
    return BR_OK;
}

int dist_conn_take(struct br_distributed *x, struct dist_conn **out)
{
    *out = NULL;
    pthread_mutex_lock(&x->pool_mu);
    struct timespec until = br_clock_deadline(BR_DIST_CONN_WAIT_MS);
    while (x->free_count == 0) {
        if (pthread_cond_timedwait(&x->pool_cv, &x->pool_mu, &until) == ETIMEDOUT &&
            x->free_count == 0) {
            pthread_mutex_unlock(&x->pool_mu);
            return BR_E_OVERLOADED;
        }
    }
    struct dist_conn *c = &x->conns[x->free_stack[--x->free_count]];
    pthread_mutex_unlock(&x->pool_mu);
    uint64_t gen = atomic_load(&x->conn_gen);
    if (c->gen != gen) {
        /* Redis was away since these connections were made: a socket the
         * old server closed would take the next request and fail it as
         * UNKNOWN_OUTCOME although it never arrived. Made afresh instead. */
        if (c->opened && c->r.ctx != NULL) {
            redisFree(c->r.ctx);
            c->r.ctx = NULL;
        }
        if (c->rd != NULL) {
            redisFree(c->rd);
            c->rd = NULL;
        }
        c->rd_pending = 0;
        c->gen = gen;
    }
    if (!c->opened) {
        int rc = br_redis_open(&c->r, &x->ropt, &x->ecfg);
        if (rc != BR_OK) {
            dist_note_redis(x, BR_E_UNAVAILABLE);
            dist_conn_give(x, c);
            return rc == BR_E_UNAVAILABLE ? BR_E_UNAVAILABLE : BR_E_IO;
        }
        c->opened = true;
    }
    int rc = adapter_instance(x, c);
    if (rc != BR_OK) {
        dist_conn_give(x, c);
        return rc;
    }
    *out = c;
    return BR_OK;
}

void dist_conn_give(struct br_distributed *x, struct dist_conn *c)
{
    pthread_mutex_lock(&x->pool_mu);
    BR_ASSERT(x->free_count < x->conn_count);
    x->free_stack[x->free_count++] = c->index;
    pthread_cond_signal(&x->pool_cv);
    pthread_mutex_unlock(&x->pool_mu);
}

int dist_apply(struct br_distributed *x, struct dist_conn *c, struct br_cmd *cmd,
               struct br_outcome *out, struct br_effect *fx, uint32_t *fx_count)
{
    cmd->now_ms = dist_now_ms(x);
    int rc = br_redis_apply(&c->r, cmd, out, fx, fx_count);
    atomic_fetch_add(&x->commands, 1);
    dist_note_redis(x, rc);
    return rc;
}

/* ---- the spec cache ---- */

int dist_spec(struct br_distributed *x, struct dist_conn *held, uint64_t event_id,
              struct dist_spec *out)
{
    memset(out, 0, sizeof *out);
    if (event_id == 0 || event_id > BR_EVENT_ID_MAX) {
        return BR_E_NOT_FOUND;
    }
    bool cacheable = event_id <= BR_DIST_SPEC_CACHE;
    if (cacheable) {
        pthread_mutex_lock(&x->spec_mu);
        *out = x->specs[event_id - 1];
        pthread_mutex_unlock(&x->spec_mu);
        if (out->have) {
            return BR_OK;
        }
    }
    /* Redis first (the on-sale goes on while PostgreSQL is away), then
     * PostgreSQL (while Redis lost it, or the event is being created). */
    struct dist_conn *c = held;
    int rc = c != NULL ? BR_OK : dist_conn_take(x, &c);
    if (rc == BR_OK) {
        rc = dist_read_spec(x, c, event_id, out);
        if (held == NULL) {
            dist_conn_give(x, c);
        }
    }
    if (rc != BR_OK) {
        struct br_pg_event ev;
        int prc = br_pg_event_get(x->cfg.pg, event_id, &ev);
        dist_note_pg(x, prc);
        if (prc != BR_OK) {
            return rc == BR_E_NOT_FOUND ? prc : rc;
        }
        out->have = true;
        out->owner_id = ev.owner_id;
        out->spec = ev.spec;
    }
    if (out->spec.queue_capacity == 0) {
        out->spec.queue_capacity = x->ecfg.queue_capacity_default;
    }
    if (cacheable) {
        pthread_mutex_lock(&x->spec_mu);
        x->specs[event_id - 1] = *out;
        pthread_mutex_unlock(&x->spec_mu);
    }
    return BR_OK;
}

/* ---- operations ---- */

static bool op_ready(struct br_backend *b, const char **why)
{
    struct br_distributed *x = self(b);
    pthread_mutex_lock(&x->state_mu);
    bool ok = !x->redis_down && !x->pg_down && x->writable && !x->lost;
    if (x->lost) {
        snprintf(x->ready_why, sizeof x->ready_why,
                 "Redis lost its data: writes wait for the reconciler's rebuild from PostgreSQL");
    } else if (x->redis_down) {
        snprintf(x->ready_why, sizeof x->ready_why, "Redis cannot be reached");
    } else if (x->pg_down) {
        snprintf(x->ready_why, sizeof x->ready_why, "PostgreSQL cannot be reached");
    } else if (!x->writable) {
        snprintf(x->ready_why, sizeof x->ready_why, "%s", x->why);
    } else {
        x->ready_why[0] = '\0';
    }
    pthread_mutex_unlock(&x->state_mu);
    if (why != NULL) {
        *why = x->ready_why; /* stable storage; a later call may rewrite it */
    }
    return ok;
}

static void op_gauges(struct br_backend *b, struct br_api_gauges *g)
{
    struct br_distributed *x = self(b);
    memset(g, 0, sizeof *g);
    g->commands = atomic_load(&x->commands);
    struct dist_conn *c = NULL;
    if (dist_conn_take(x, &c) != BR_OK) {
        return;
    }
    uint64_t count = 0;
    if (dist_read_cat(x, c, "events", &count) == BR_OK) {
        for (uint64_t id = 1; id <= count && g->event_count < BR_API_LIST_MAX; id++) {
            struct dist_spec s;
            struct br_redis_counters k;
            if (dist_spec(x, c, id, &s) != BR_OK ||
                dist_read_counters(x, c, id, s.spec.zone_count, &k) != BR_OK) {
                continue;
            }
            uint32_t i = g->event_count++;
            g->events[i].id = id;
            g->events[i].zone_count = s.spec.zone_count;
            g->events[i].queue_length = k.queue_length;
            g->events[i].admitted = k.admitted;
            g->events[i].active_passes = k.active_passes;
            for (uint32_t z = 0; z < s.spec.zone_count; z++) {
                g->events[i].capacity[z] = s.spec.zones[z].capacity;
                g->events[i].held[z] = k.held[z];
                g->events[i].sold[z] = k.sold[z];
            }
        }
    }
    dist_conn_give(x, c);
}

/* The distributed backend's own families: backing services, the fan-out. */
static void op_metrics(struct br_backend *b, struct br_metrics_sink *out)
{
    struct br_distributed *x = self(b);
    pthread_mutex_lock(&x->state_mu);
    bool redis_down = x->redis_down, pg_down = x->pg_down;
    bool refusing = !x->writable || x->lost;
    pthread_mutex_unlock(&x->state_mu);
    br_metrics_printf(out,
                      "# HELP br_backing_service_up Whether this process reaches the service.\n"
                      "# TYPE br_backing_service_up gauge\n"
                      "br_backing_service_up{service=\"redis\"} %d\n"
                      "br_backing_service_up{service=\"postgresql\"} %d\n",
                      redis_down ? 0 : 1, pg_down ? 0 : 1);
    br_metrics_printf(out,
                      "# HELP br_writes_refused 1 while writes are refused (Redis lost its data, "
                      "rebuild pending).\n"
                      "# TYPE br_writes_refused gauge\n"
                      "br_writes_refused %d\n",
                      refusing ? 1 : 0);
    br_metrics_printf(out,
                      "# HELP br_fanout_resubscribes_total Fan-out subscriptions made again "
                      "after a drop.\n"
                      "# TYPE br_fanout_resubscribes_total counter\n"
                      "br_fanout_resubscribes_total %llu\n",
                      (unsigned long long)atomic_load(&x->fanout_reconnects));
    dist_pay_metrics(x, out);
    for (uint32_t i = 0; i < x->metrics_count; i++) {
        size_t need = x->metrics[i].fn(x->metrics[i].ctx, NULL, 0);
        char *buf = malloc(need + 1);
        if (buf == NULL) {
            continue;
        }
        size_t got = x->metrics[i].fn(x->metrics[i].ctx, buf, need + 1);
        if (got <= need) {
            br_metrics_printf(out, "%s", buf);
        }
        free(buf);
    }
}

static const struct br_backend_ops DIST_OPS = {
    .name = "distributed",
    .user_register = dist_op_user_register,
    .user_find = dist_op_user_find,
    .user_get = dist_op_user_get,
    .user_role_set = dist_op_user_role_set,
    .user_exists = dist_op_user_exists,
    .session_open = dist_op_session_open,
    .session_rotate = dist_op_session_rotate,
    .session_revoke = dist_op_session_revoke,
    .session_revoke_all = dist_op_session_revoke_all,
    .event_create = dist_op_event_create,
    .event_list = dist_op_event_list,
    .event_get = dist_op_event_get,
    .event_stats = dist_op_event_stats,
    .queue_join = dist_op_queue_join,
    .queue_leave = dist_op_queue_leave,
    .queue_position = dist_op_queue_position,
    .queue_peek = dist_op_queue_peek,
    .queue_positions = dist_op_queue_positions,
    .queue_mode_set = dist_op_queue_mode_set,
    .queue_status_peek = dist_op_queue_status_peek,
    .presence_report = dist_op_presence_report,
    .pow_use = dist_op_pow_use,
    .reserve = dist_op_reserve,
    .booking_list = dist_op_booking_list,
    .booking_get = dist_op_booking_get,
    .booking_cancel = dist_op_booking_cancel,
    .payment_create = dist_op_payment_create,
    .payment_event = dist_op_payment_event,
    .ready = op_ready,
    .gauges = op_gauges,
    .metrics = op_metrics,
};

/* ---- open and close ---- */

/* The deployment's engine config: the one recorded in Redis when there is
 * one (every process adopts it), else ours with a fresh seed (the first
 * process records it; a second starting at the same moment with another
 * seed is refused by config.lua and adopts the winner's on its retry). */
/* HMGET of the recorded config, on one node or through a cluster's router
 * (the catalog's slot may live on any node). NULL when unreachable. */
static redisReply *read_config(struct br_distributed *x)
{
    static const char *const argv[] = {
        "HMGET",          "br:{cat}:cat",     "cfg_seed",       "cfg_events_max", "cfg_users_max",
        "cfg_qslots_max", "cfg_qcap_default", "cfg_active_max", "cfg_seats_max"};
    size_t len[9];
    for (int i = 0; i < 9; i++) {
        len[i] = strlen(argv[i]);
    }
    redisReply *rep = NULL;
    if (x->ropt.cluster) {
        struct br_cluster *cl = calloc(1, sizeof *cl);
        if (cl != NULL && br_cluster_open(cl, x->ropt.seeds, x->ropt.connect_timeout_ms,
                                          x->ropt.command_timeout_ms, false) == BR_OK) {
            br_cluster_call(cl, 9, (const char **)argv, len, &rep);
            br_cluster_close(cl);
        }
        free(cl);
        return rep;
    }
    redisContext *rd = connect_plain(x, "start");
    if (rd != NULL) {
        rep = redisCommandArgv(rd, 9, (const char **)argv, len);
        redisFree(rd);
    }
    return rep;
}

static int adopt_config(struct br_distributed *x)
{
    redisReply *rep = read_config(x);
    int rc = BR_OK;
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements != 7) {
        char esc[DIST_URL_MAX + 64];
        br_logf(x->cfg.log, BR_LOG_ERROR, "redis: cannot read the deployment's config",
                "\"url\":\"%s\",\"detail\":\"%s\"", br_log_escape(x->redis_url, esc, sizeof esc),
                rep == NULL                      ? "no connection"
                : rep->type == REDIS_REPLY_ERROR ? rep->str
                                                 : "unexpected reply");
        rc = BR_E_UNAVAILABLE;
    } else if (rep->element[0]->type == REDIS_REPLY_STRING) {
        uint64_t v[7];
        for (int i = 0; i < 7; i++) {
            const redisReply *e = rep->element[i];
            v[i] = e->type == REDIS_REPLY_STRING ? strtoull(e->str, NULL, 10) : 0;
        }
        x->ecfg.seed = v[0];
        x->ecfg.events_max = (uint32_t)v[1];
        x->ecfg.users_max = (uint32_t)v[2];
        x->ecfg.queue_slots_max = (uint32_t)v[3];
        x->ecfg.queue_capacity_default = (uint32_t)v[4];
        x->ecfg.active_max = (uint32_t)v[5];
        x->ecfg.seats_max = (uint32_t)v[6];
    } else {
        uint8_t raw[8];
        rc = br_auth_random(raw, sizeof raw);
        uint64_t seed = 0;
        for (int i = 0; i < 8; i++) {
            seed = seed << 8 | raw[i];
        }
        x->ecfg.seed = seed;
    }
    if (rep != NULL) {
        freeReplyObject(rep);
    }
    return rc;
}

static int open_redis(struct br_distributed *x)
{
    int rc = BR_E_INVALID;
    for (int attempt = 0; attempt < 2 && rc == BR_E_INVALID; attempt++) {
        rc = adopt_config(x);
        if (rc != BR_OK) {
            return rc;
        }
        /* The first attempt quietly: a process starting at the same moment
         * may record its config first (INVALID here), and we adopt it. */
        struct br_redis_options o = x->ropt;
        o.quiet = attempt == 0;
        rc = br_redis_open(&x->conns[0].r, &o, &x->ecfg);
    }
    x->conns[0].r.opt.quiet = x->ropt.quiet;
    if (rc != BR_OK) {
        char esc[DIST_URL_MAX + 64];
        br_logf(x->cfg.log, BR_LOG_ERROR, "redis: cannot open the deployment's state",
                "\"url\":\"%s\",\"err\":\"%s\"", br_log_escape(x->redis_url, esc, sizeof esc),
                br_err_name(rc));
        return rc;
    }
    x->conns[0].opened = true;
    return BR_OK;
}

/* PostgreSQL reachable and its schema this binary's (br_pg_schema_status:
 * every embedded migration recorded, none unknown), checked before Redis is
 * touched. A missing or older schema (even one that has the tables) and a
 * newer one are refused with BR_E_VERSION, saying what to run. */
static int check_pg(struct br_distributed *x)
{
    int rc = br_pg_ping(x->cfg.pg);
    if (rc != BR_OK) {
        return BR_E_UNAVAILABLE;
    }
    uint32_t recorded = 0, embedded = 0;
    rc = br_pg_schema_status(x->cfg.pg, &recorded, &embedded);
    if (rc == BR_E_VERSION) {
        br_logf(x->cfg.log, BR_LOG_ERROR,
                recorded < embedded
                    ? "PostgreSQL's schema is missing or older than this binary's: run "
                      "`bookingrush migrate --pg URL` first"
                    : "PostgreSQL's schema has migrations this binary does not know (a newer "
                      "binary migrated it): run that binary, whose `bookingrush migrate --pg URL` "
                      "matches it",
                "\"recorded\":%u,\"embedded\":%u", recorded, embedded);
        return BR_E_VERSION;
    }
    uint64_t users = 0;
    if (rc == BR_OK) {
        rc = br_pg_user_max_id(x->cfg.pg, &users);
    }
    if (rc != BR_OK) {
        br_logf(x->cfg.log, BR_LOG_ERROR, "PostgreSQL: cannot read the schema's state",
                "\"err\":\"%s\"", br_err_name(rc));
        return rc == BR_E_UNKNOWN_OUTCOME ? BR_E_UNAVAILABLE : rc;
    }
    atomic_store(&x->users_known, users);
    return BR_OK;
}

static void process_id(char *out, size_t cap)
{
    char host[64] = "host";
    gethostname(host, sizeof host);
    host[sizeof host - 1] = '\0';
    uint8_t raw[4] = {0};
    br_auth_random(raw, sizeof raw);
    snprintf(out, cap, "%s:%ld:%02x%02x%02x%02x", host, (long)getpid(), raw[0], raw[1], raw[2],
             raw[3]);
}

static int alloc_pool(struct br_distributed *x)
{
    x->conn_count = x->cfg.conns;
    x->conns = calloc(x->conn_count, sizeof *x->conns);
    x->free_stack = calloc(x->conn_count, sizeof *x->free_stack);
    x->specs = calloc(BR_DIST_SPEC_CACHE, sizeof *x->specs);
    if (x->conns == NULL || x->free_stack == NULL || x->specs == NULL) {
        return BR_E_IO;
    }
    for (uint32_t i = 0; i < x->conn_count; i++) {
        x->conns[i].index = i;
        /* Pages are touched only as effects are written: most stay unmapped. */
        x->conns[i].fx = calloc(BR_EFFECTS_MAX, sizeof *x->conns[i].fx);
        x->conns[i].fx_inner = calloc(BR_EFFECTS_MAX, sizeof *x->conns[i].fx_inner);
        if (x->conns[i].fx == NULL || x->conns[i].fx_inner == NULL) {
            return BR_E_IO;
        }
        x->free_stack[x->conn_count - 1 - i] = i; /* slot 0 is taken first */
    }
    x->free_count = x->conn_count;
    return BR_OK;
}

int br_distributed_open(struct br_distributed **out, const struct br_distributed_config *cfg)
{
    *out = NULL;
    if (cfg->pg == NULL || cfg->redis_url == NULL || cfg->conns == 0 ||
        cfg->conns > BR_DIST_CONNS_MAX || cfg->tick_ms == 0 ||
        strlen(cfg->redis_url) >= DIST_URL_MAX) {
        return BR_E_INVALID;
    }
    struct br_distributed *x = calloc(1, sizeof *x);
    if (x == NULL) {
        return BR_E_IO;
    }
    x->cfg = *cfg;
    snprintf(x->redis_url, sizeof x->redis_url, "%s", cfg->redis_url);
    x->cfg.redis_url = x->redis_url;
    x->ecfg = cfg->engine;
    x->writable = true;
    x->base.ops = &DIST_OPS;
    pthread_mutex_init(&x->pool_mu, NULL);
    br_clock_cond_init(&x->pool_cv);
    pthread_mutex_init(&x->spec_mu, NULL);
    pthread_mutex_init(&x->state_mu, NULL);
    pthread_mutex_init(&x->stop_mu, NULL);
    br_clock_cond_init(&x->stop_cv);
    pthread_mutex_init(&x->fan_mu, NULL);
    process_id(x->pid, sizeof x->pid);
    int rc = br_redis_parse_url(x->redis_url, &x->ropt);
    if (rc != BR_OK) {
        br_logf(
            cfg->log, BR_LOG_ERROR,
            "--redis wants redis://host[:port][/db] or redis-cluster://host:port[,host:port...]",
            NULL);
    }
    if (rc == BR_OK) {
        rc = alloc_pool(x);
    }
    if (rc == BR_OK) {
        rc = check_pg(x); /* first: a refused schema leaves Redis untouched */
    }
    if (rc == BR_OK) {
        rc = open_redis(x);
    }
    if (rc == BR_OK) {
        rc = dist_pay_open(x);
    }
    if (rc != BR_OK) {
        br_distributed_close(x);
        return rc;
    }
    pthread_mutex_lock(&x->state_mu);
    x->redis_down = false;
    x->pg_down = false;
    pthread_mutex_unlock(&x->state_mu);
    *out = x;
    return BR_OK;
}

void br_distributed_set_listener(struct br_distributed *x, struct br_backend_listener l)
{
    BR_ASSERT(!x->roles_started && !x->fanout_started);
    x->cfg.listener = l;
}

int br_distributed_start(struct br_distributed *x)
{
    if (dist_fanout_start(x) != BR_OK || dist_pay_start(x) != BR_OK ||
        dist_roles_start(x) != BR_OK) {
        return BR_E_IO;
    }
    return BR_OK;
}

struct br_backend *br_distributed_backend(struct br_distributed *x)
{
    return &x->base;
}

void br_distributed_add_metrics(struct br_distributed *x, br_distributed_metrics_fn fn, void *ctx)
{
    BR_ASSERT(!x->roles_started && x->metrics_count < BR_DIST_METRICS_MAX);
    x->metrics[x->metrics_count].fn = fn;
    x->metrics[x->metrics_count].ctx = ctx;
    x->metrics_count++;
}

const struct br_redis_options *br_distributed_redis_options(const struct br_distributed *x)
{
    return &x->ropt;
}

const struct br_config *br_distributed_engine_config(const struct br_distributed *x)
{
    return &x->ecfg;
}

const char *br_distributed_process_id(const struct br_distributed *x)
{
    return x->pid;
}

void br_distributed_close(struct br_distributed *x)
{
    if (x == NULL) {
        return;
    }
    pthread_mutex_lock(&x->stop_mu);
    x->stop = true;
    pthread_cond_broadcast(&x->stop_cv);
    pthread_mutex_unlock(&x->stop_mu);
    dist_roles_stop(x);
    dist_fanout_stop(x);
    dist_pay_close(x);
    for (uint32_t i = 0; x->conns != NULL && i < x->conn_count; i++) {
        if (x->conns[i].opened) {
            br_redis_close(&x->conns[i].r);
        }
        if (x->conns[i].rd != NULL) {
            redisFree(x->conns[i].rd);
        }
        free(x->conns[i].fx);
        free(x->conns[i].fx_inner);
    }
    free(x->conns);
    free(x->free_stack);
    free(x->specs);
    pthread_mutex_destroy(&x->pool_mu);
    pthread_cond_destroy(&x->pool_cv);
    pthread_mutex_destroy(&x->spec_mu);
    pthread_mutex_destroy(&x->state_mu);
    pthread_mutex_destroy(&x->stop_mu);
    pthread_cond_destroy(&x->stop_cv);
    pthread_mutex_destroy(&x->fan_mu);
    free(x);
}
