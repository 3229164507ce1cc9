/*
 * backend_distributed_fanout.c -- the queue's SSE fan-out across server
 * processes: one Redis subscription per process, never one per user.
 *
 *   admitter (any process) ── PUBLISH br:fanout "p <event> <user> <pass> <expires_ms>"
 *   join / leave / admit   ── PUBLISH br:fanout "q <event>"   (once per event per tick)
 *   a gate change (issue 13) ─ PUBLISH br:fanout "s <event> <gate> <mode>"
 *   every process: one thread, one connection, SUBSCRIBE br:fanout
 *        └─▶ listener.pass_issued / listener.queue_changed (the hub)
 *
 * A pass therefore reaches the user's open stream whichever process holds
 * it and whichever process admitted them. Pub/sub delivers at most once:
 * a message published while a subscriber is disconnected is lost to it.
 * So after every (re)subscription the thread tells the hub that every
 * event's queue changed: the hub re-reads its subscribers' positions
 * (queue_positions), which shows a pass issued meanwhile as "admitted",
 * pass included, and nothing is lost (a gate change announced meanwhile
 * is not repeated: the views show its effect, a sold-out queue's included,
 * whose streams get their sold_out event from the view). A drop is noticed by the socket
 * (keepalive, a closed connection) and retried with backoff
 * (FANOUT_BACKOFF_MIN_MS doubling to FANOUT_BACKOFF_MAX_MS).
 *
 * Limits: DIST_FAN_PENDING_MAX events with queue changes per tick (beyond,
 * everyone is refreshed instead); FANOUT_EVENTS_MAX events refreshed after
 * a reconnect.
 */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/clock.h"
#include "core/panic.h"
#include "server/backend_distributed_int.h"

#define FANOUT_POLL_MS 200
#define FANOUT_BACKOFF_MIN_MS 100
#define FANOUT_BACKOFF_MAX_MS 2000
#define FANOUT_EVENTS_MAX 4096u

/* ---- publishing ---- */

static void publish(struct br_distributed *x, struct dist_conn *c, const char *msg)
{
    const char *argv[] = {"PUBLISH", BR_DIST_FANOUT_CHANNEL, msg};
    size_t len[] = {7, strlen(BR_DIST_FANOUT_CHANNEL), strlen(msg)};
    redisReply *rep = NULL;
    if (dist_cmd(x, c, &rep, 3, argv, len) == BR_OK) {
        freeReplyObject(rep);
    } /* else lost: the subscribers' next refresh shows it */
}

void dist_fanout_passes(struct br_distributed *x, struct dist_conn *c, const struct br_effect *fx,
                        uint32_t n)
{
    struct dist_pipe p = {0};
    bool any = false;
    for (uint32_t i = 0; i < n; i++) {
        if (fx[i].kind != BR_FX_PASS_ISSUED) {
            continue;
        }
        if (!any) {
            dist_pipe_begin(x, c, &p);
            any = true;
        }
        char msg[128];
        snprintf(msg, sizeof msg, "p %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRId64, fx[i].event_id,
                 fx[i].user_id, fx[i].id, fx[i].deadline_ms);
        const char *argv[] = {"PUBLISH", BR_DIST_FANOUT_CHANNEL, msg};
        size_t len[] = {7, strlen(BR_DIST_FANOUT_CHANNEL), strlen(msg)};
        dist_pipe_add(&p, 3, argv, len);
    }
    if (any) {
        dist_pipe_end(&p); /* a pass lost here shows on the next refresh */
    }
}

void dist_fanout_states(struct br_distributed *x, struct dist_conn *c, const struct br_effect *fx,
                        uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) { /* at most one per command */
        if (fx[i].kind == BR_FX_QUEUE_STATE) {
            char msg[96];
            snprintf(msg, sizeof msg, "s %" PRIu64 " %u %u", fx[i].event_id,
                     (unsigned)(uint8_t)fx[i].id, (unsigned)(uint8_t)fx[i].ref);
            publish(x, c, msg);
        }
    }
}

void dist_fanout_queue_changed(struct br_distributed *x, uint64_t event_id)
{
    pthread_mutex_lock(&x->fan_mu);
    bool have = false;
    for (uint32_t i = 0; i < x->fan_pending_count && !have; i++) {
        have = x->fan_pending[i] == event_id;
    }
    if (!have && x->fan_pending_count < DIST_FAN_PENDING_MAX) {
        x->fan_pending[x->fan_pending_count++] = event_id;
    } else if (!have) {
        x->fan_pending[0] = 0; /* too many: "q 0" = every event */
    }
    pthread_mutex_unlock(&x->fan_mu);
}

void dist_fanout_flush(struct br_distributed *x, struct dist_conn *c)
{
    uint64_t ids[DIST_FAN_PENDING_MAX];
    pthread_mutex_lock(&x->fan_mu);
    uint32_t n = x->fan_pending_count;
    memcpy(ids, x->fan_pending, sizeof ids[0] * n);
    x->fan_pending_count = 0;
    pthread_mutex_unlock(&x->fan_mu);
    for (uint32_t i = 0; i < n; i++) {
        char msg[32];
        snprintf(msg, sizeof msg, "q %" PRIu64, ids[i]);
        publish(x, c, msg);
        if (ids[i] == 0) {
            break;
        }
    }
}

/* ---- the subscription ---- */

/* Every event's subscribers are re-read (after a (re)subscription, or
 * "q 0"). */
static void refresh_all(struct br_distributed *x, uint64_t events)
{
    const struct br_backend_listener *l = &x->cfg.listener;
    if (l->queue_changed == NULL) {
        return;
    }
    for (uint64_t e = 1; e <= events && e <= FANOUT_EVENTS_MAX; e++) {
        l->queue_changed(l->ctx, e);
    }
}

static void on_message(struct br_distributed *x, const char *msg, uint64_t events)
{
    const struct br_backend_listener *l = &x->cfg.listener;
    unsigned long long e = 0, u = 0, p = 0;
    long long exp = 0;
    unsigned gate = 0, mode = 0;
    if (sscanf(msg, "p %llu %llu %llu %lld", &e, &u, &p, &exp) == 4) {
        if (l->pass_issued != NULL) {
            l->pass_issued(l->ctx, e, u, p, exp);
        }
        if (l->queue_changed != NULL) {
            l->queue_changed(l->ctx, e);
        }
    } else if (sscanf(msg, "s %llu %u %u", &e, &gate, &mode) == 3) {
        if (l->queue_state != NULL && gate < BR_QUEUE_GATE_COUNT && mode < BR_QUEUE_MODE_COUNT) {
            l->queue_state(l->ctx, e, (uint8_t)gate, (uint8_t)mode);
        }
    } else if (sscanf(msg, "q %llu", &e) == 1) {
        if (e == 0) {
            refresh_all(x, events);
        } else if (l->queue_changed != NULL) {
            l->queue_changed(l->ctx, e);
        }
    } else {
        br_logf(x->cfg.log, BR_LOG_WARN, "fan-out: unknown message ignored", NULL);
    }
}

static bool stopping(struct br_distributed *x)
{
    pthread_mutex_lock(&x->stop_mu);
    bool s = x->stop;
    pthread_mutex_unlock(&x->stop_mu);
    return s;
}

/* Connects, reads the event count, subscribes. NULL on failure. */
static redisContext *subscribe(struct br_distributed *x, uint64_t *events)
{
    struct timeval tv = {.tv_sec = x->ropt.connect_timeout_ms / 1000,
                         .tv_usec = (x->ropt.connect_timeout_ms % 1000) * 1000};
    redisContext *s = redisConnectWithTimeout(x->ropt.host, x->ropt.port, tv);
    if (s == NULL || s->err != 0 || redisEnableKeepAlive(s) != REDIS_OK) {
        if (s != NULL) {
            redisFree(s);
        }
        return NULL;
    }
    /* The event count through the pool (on a cluster the catalog's slot
     * may live on another node than this connection's). Pub/sub needs no
     * database (channels are global) and, on a cluster, reaches every node. */
    struct dist_conn *c = NULL;
    bool ok = dist_conn_take(x, &c) == BR_OK;
    if (ok) {
        ok = dist_read_cat(x, c, "events", events) == BR_OK;
        dist_conn_give(x, c);
    }
    redisReply *rep = ok ? redisCommand(s, "SUBSCRIBE %s", BR_DIST_FANOUT_CHANNEL) : NULL;
    ok = rep != NULL && rep->type == REDIS_REPLY_ARRAY;
    if (rep != NULL) {
        freeReplyObject(rep);
    }
    if (!ok) {
        redisFree(s);
        return NULL;
    }
    /* Reads below wait in poll(), not in the socket's timeout. */
    struct timeval none = {0, 0};
    redisSetTimeout(s, none);
    return s;
}

/* Reads messages until the connection breaks or the server stops. */
static void listen_loop(struct br_distributed *x, redisContext *s, uint64_t events)
{
    while (!stopping(x)) {
        struct pollfd pfd = {.fd = s->fd, .events = POLLIN};
        int n = poll(&pfd, 1, FANOUT_POLL_MS);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n == 0) {
            continue;
        }
        if (n < 0 || redisBufferRead(s) != REDIS_OK) {
            return;
        }
        for (;;) {
            void *r = NULL;
            if (redisGetReplyFromReader(s, &r) != REDIS_OK) {
                return;
            }
            if (r == NULL) {
                break;
            }
            redisReply *rep = r;
            if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 3 &&
                rep->element[0]->type == REDIS_REPLY_STRING &&
                strcmp(rep->element[0]->str, "message") == 0 &&
                rep->element[2]->type == REDIS_REPLY_STRING) {
                uint64_t e = 0;
                if (sscanf(rep->element[2]->str, "p %" SCNu64, &e) == 1 && e > events) {
                    events = e;
                }
                on_message(x, rep->element[2]->str, events);
            }
            freeReplyObject(rep);
        }
    }
}

static void *fanout_main(void *arg)
{
    struct br_distributed *x = arg;
    int64_t backoff = FANOUT_BACKOFF_MIN_MS;
    bool first = true;
    while (!stopping(x)) {
        uint64_t events = 0;
        redisContext *s = subscribe(x, &events);
        if (s == NULL) {
            pthread_mutex_lock(&x->stop_mu);
            struct timespec t = br_clock_deadline(backoff);
            if (!x->stop) {
                pthread_cond_timedwait(&x->stop_cv, &x->stop_mu, &t);
            }
            pthread_mutex_unlock(&x->stop_mu);
            backoff = backoff * 2 > FANOUT_BACKOFF_MAX_MS ? FANOUT_BACKOFF_MAX_MS : backoff * 2;
            continue;
        }
        backoff = FANOUT_BACKOFF_MIN_MS;
        if (!first) {
            atomic_fetch_add(&x->fanout_reconnects, 1);
            br_logf(x->cfg.log, BR_LOG_WARN, "fan-out: subscribed again; refreshing every stream",
                    "\"events\":%" PRIu64, events);
        }
        first = false;
        refresh_all(x, events); /* what was published while we were away */
        listen_loop(x, s, events);
        redisFree(s);
    }
    return NULL;
}

int dist_fanout_start(struct br_distributed *x)
{
    if (pthread_create(&x->fanout_thread, NULL, fanout_main, x) != 0) {
        return BR_E_IO;
    }
    x->fanout_started = true;
    return BR_OK;
}

void dist_fanout_stop(struct br_distributed *x)
{
    if (x->fanout_started) {
        pthread_join(x->fanout_thread, NULL);
        x->fanout_started = false;
    }
}
