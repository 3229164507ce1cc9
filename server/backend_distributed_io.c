/*
 * backend_distributed_io.c -- how the distributed backend sends its own
 * Redis commands (reads, leases, PUBLISH, the booking index), apart from
 * the scripts that br_redis_apply runs.
 *
 *   one node      the slot's plain connection (rd), pipelined with
 *                 redisAppendCommandArgv: one round trip for a batch
 *   Redis Cluster the adapter's slot router (redis_cluster.h): one command
 *                 goes to its key's node with MOVED/ASK followed; a batch
 *                 is queued per node (br_cluster_queue) and read back in
 *                 order, one round trip per node
 *
 * A write whose answer nobody waits for (the booking index,
 * backend_distributed_index.c) is sent with dist_send_nowait: on one node
 * it is written to the plain connection and its reply is left there, read
 * (and checked) when the slot's plain connection is next used for anything
 * else (dist_rd calls dist_rd_settle) or once NOWAIT_PENDING_MAX replies
 * wait, so the request that sent it does not wait a round trip, nor under
 * appendfsync always an fsync, for it. On a cluster it is
 * an ordinary command (the router reads every reply at once).
 *
 * Every command is argv (binary-safe); dist_cmdf/dist_pipe_addf format a
 * printf-like text and split it at spaces, for the many commands whose
 * arguments are numbers and key names (never a value with a space: use the
 * argv forms for those). A transport failure or an error reply drops the
 * connection (made again on the next use), marks Redis down for
 * readiness, and is logged with Redis's message here.
 * Limits: DIST_ARGS_MAX arguments per formatted command, DIST_FMT_MAX bytes.
 */
#define _POSIX_C_SOURCE 200809L

#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/redis_cluster.h"
#include "core/panic.h"
#include "server/backend_distributed_int.h"

#define DIST_ARGS_MAX 300u
#define DIST_FMT_MAX 8192u
#define NOWAIT_PENDING_MAX 32u /* unread replies to writes sent without waiting, per slot */

static bool cluster(const struct dist_conn *c)
{
    return c->r.cluster != NULL;
}

bool dist_is_cluster(const struct dist_conn *c)
{
    return cluster(c);
}

void dist_io_fail(struct br_distributed *x, struct dist_conn *c, const char *what,
                  const redisReply *rep)
{
    const char *detail = rep != NULL && rep->type == REDIS_REPLY_ERROR ? rep->str
                         : c->rd != NULL && c->rd->err != 0            ? c->rd->errstr
                                                                       : "no reply";
    br_logf(x->cfg.log, BR_LOG_WARN, "redis: command failed", "\"what\":\"%s\",\"detail\":\"%s\"",
            what, detail);
    if (c->rd != NULL) {
        redisFree(c->rd);
        c->rd = NULL;
    }
    c->rd_pending = 0;
    dist_note_redis(x, BR_E_UNAVAILABLE);
}

void dist_rd_settle(struct br_distributed *x, struct dist_conn *c)
{
    while (c->rd != NULL && c->rd_pending > 0) {
        void *v = NULL;
        redisReply *r = redisGetReply(c->rd, &v) == REDIS_OK ? v : NULL;
        if (r == NULL) {
            dist_io_fail(x, c, "unanswered write", NULL); /* drops rd, pending = 0 */
            return;
        }
        c->rd_pending--;
        if (r->type == REDIS_REPLY_ERROR) {
            /* The connection is still in step: only this write failed. */
            br_logf(x->cfg.log, BR_LOG_WARN, "redis: a write sent without waiting failed",
                    "\"detail\":\"%.200s\"", r->str);
        }
        freeReplyObject(r);
    }
}

int dist_send_nowait(struct br_distributed *x, struct dist_conn *c, int argc, const char **argv,
                     const size_t *len)
{
    if (cluster(c)) {
        redisReply *rep = NULL;
        int rc = dist_cmd(x, c, &rep, argc, argv, len);
        if (rep != NULL) {
            freeReplyObject(rep);
        }
        return rc;
    }
    /* Earlier replies are read only once NOWAIT_PENDING_MAX wait (then in
     * one read, a few bytes each): a reserve after a reserve on this slot
     * costs one write here, no read. */
    if (c->rd_pending >= NOWAIT_PENDING_MAX) {
        dist_rd_settle(x, c);
    }
    redisContext *rd = c->rd != NULL ? c->rd : dist_rd(x, c);
    if (rd == NULL) {
        return BR_E_UNAVAILABLE;
    }
    if (redisAppendCommandArgv(rd, argc, argv, len) != REDIS_OK) {
        dist_io_fail(x, c, argv[0], NULL);
        return BR_E_UNAVAILABLE;
    }
    int done = 0;
    for (uint32_t spins = 0; !done; spins++) {
        BR_ASSERT(spins < (1u << 30)); /* each round writes some bytes or fails */
        if (redisBufferWrite(rd, &done) != REDIS_OK) {
            dist_io_fail(x, c, argv[0], NULL);
            return BR_E_UNAVAILABLE;
        }
    }
    c->rd_pending++;
    return BR_OK;
}

/* Splits a formatted command at spaces into argv (pointers into buf). */
static int split(char *buf, const char **argv, size_t *len)
{
    int argc = 0;
    char *save = NULL;
    for (char *t = strtok_r(buf, " ", &save); t != NULL && argc < (int)DIST_ARGS_MAX;
         t = strtok_r(NULL, " ", &save)) {
        argv[argc] = t;
        len[argc] = strlen(t);
        argc++;
    }
    return argc;
}

int dist_cmd(struct br_distributed *x, struct dist_conn *c, redisReply **rep, int argc,
             const char **argv, const size_t *len)
{
    *rep = NULL;
    if (cluster(c)) {
        int rc = br_redis_command(&c->r, argc, argv, len, rep);
        if (rc != BR_OK || *rep == NULL || (*rep)->type == REDIS_REPLY_ERROR) {
            dist_io_fail(x, c, argv[0], *rep);
            if (*rep != NULL) {
                freeReplyObject(*rep);
                *rep = NULL;
            }
            return BR_E_UNAVAILABLE;
        }
        return BR_OK;
    }
    redisContext *rd = dist_rd(x, c);
    if (rd == NULL) {
        return BR_E_UNAVAILABLE;
    }
    redisReply *r = redisCommandArgv(rd, argc, argv, len);
    if (r == NULL || r->type == REDIS_REPLY_ERROR) {
        dist_io_fail(x, c, argv[0], r);
        if (r != NULL) {
            freeReplyObject(r);
        }
        return BR_E_UNAVAILABLE;
    }
    *rep = r;
    return BR_OK;
}

int dist_cmdf(struct br_distributed *x, struct dist_conn *c, redisReply **rep, const char *fmt, ...)
{
    char buf[DIST_FMT_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    BR_ASSERT(n > 0 && (size_t)n < sizeof buf);
    const char *argv[DIST_ARGS_MAX];
    size_t len[DIST_ARGS_MAX];
    int argc = split(buf, argv, len);
    return dist_cmd(x, c, rep, argc, argv, len);
}

/* ---- batches ---- */

void dist_pipe_begin(struct br_distributed *x, struct dist_conn *c, struct dist_pipe *p)
{
    memset(p, 0, sizeof *p);
    p->x = x;
    p->c = c;
    if (!cluster(c) && dist_rd(x, c) == NULL) {
        p->failed = true;
    }
}

void dist_pipe_add(struct dist_pipe *p, int argc, const char **argv, const size_t *len)
{
    if (p->failed) {
        return;
    }
    int rc = cluster(p->c) ? br_cluster_queue(p->c->r.cluster, argc, argv, len)
             : redisAppendCommandArgv(p->c->rd, argc, argv, len) == REDIS_OK ? BR_OK
                                                                             : BR_E_UNAVAILABLE;
    if (rc != BR_OK) {
        p->failed = true;
        return;
    }
    p->queued++;
}

void dist_pipe_addf(struct dist_pipe *p, const char *fmt, ...)
{
    char buf[DIST_FMT_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    BR_ASSERT(n > 0 && (size_t)n < sizeof buf);
    const char *argv[DIST_ARGS_MAX];
    size_t len[DIST_ARGS_MAX];
    int argc = split(buf, argv, len);
    dist_pipe_add(p, argc, argv, len);
}

redisReply *dist_pipe_next(struct dist_pipe *p)
{
    if (p->failed || p->read >= p->queued) {
        return NULL;
    }
    redisReply *r = NULL;
    if (cluster(p->c)) {
        r = br_cluster_next(p->c->r.cluster);
    } else {
        void *v = NULL;
        r = redisGetReply(p->c->rd, &v) == REDIS_OK ? v : NULL;
    }
    if (r == NULL || r->type == REDIS_REPLY_ERROR) {
        p->failed = true;
        if (cluster(p->c)) {
            br_cluster_queue_drop(p->c->r.cluster);
        }
        dist_io_fail(p->x, p->c, "pipeline", r);
        if (r != NULL) {
            freeReplyObject(r);
        }
        return NULL;
    }
    p->read++;
    return r;
}

int dist_pipe_end(struct dist_pipe *p)
{
    while (!p->failed && p->read < p->queued) {
        redisReply *r = dist_pipe_next(p);
        if (r != NULL) {
            freeReplyObject(r);
        }
    }
    if (p->failed && cluster(p->c)) {
        br_cluster_queue_drop(p->c->r.cluster);
    }
    return p->failed ? BR_E_UNAVAILABLE : BR_OK;
}
