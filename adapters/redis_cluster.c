/*
 * redis_cluster.c -- slot routing on a Redis Cluster (design, redirection
 * rules and the migration limit in redis_cluster.h).
 *
 * Shape of one command: find its routing key (route()), its slot, the
 * slot's node; send it there (send_to(), which may prefix ASKING); look at
 * the reply: MOVED, ASK and TRYAGAIN loop back with a bound, CLUSTERDOWN
 * ends it, anything else is the caller's. Connections are made lazily and
 * dropped on any transport failure, which also marks the map stale.
 */
#define _POSIX_C_SOURCE 200809L

#include "adapters/redis_cluster.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "adapters/log.h"
#include "core/err.h"
#include "core/panic.h"

_Static_assert(BR_CLUSTER_NODES_MAX < BR_CLUSTER_NO_NODE, "a node index fits slot_node[]");

/* ---- slots ---- */

/* CRC16-CCITT (XMODEM: polynomial 0x1021, initial value 0), as the Redis
 * Cluster specification names it. Bitwise: keys are short. */
static uint16_t crc16(const char *p, size_t len)
{
    uint32_t crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint32_t)(uint8_t)p[i] << 8;
        for (int b = 0; b < 8; b++) {
            crc = (crc & 0x8000u) != 0 ? ((crc << 1) ^ 0x1021u) : (crc << 1);
            crc &= 0xffffu;
        }
    }
    return (uint16_t)crc;
}

uint16_t br_cluster_slot(const char *key, size_t len)
{
    const char *open = memchr(key, '{', len);
    if (open != NULL) {
        size_t from = (size_t)(open - key) + 1;
        const char *close = memchr(key + from, '}', len - from);
        if (close != NULL && close > key + from) {
            return (uint16_t)(crc16(key + from, (size_t)(close - key) - from) & 16383u);
        }
    }
    return (uint16_t)(crc16(key, len) & 16383u);
}

/* ---- logging ---- */

static void log_node(const struct br_cluster *c, const struct br_cluster_node *n, const char *what,
                     const char *detail)
{
    if (c->quiet) {
        return;
    }
    char host[2 * BR_CLUSTER_HOST_MAX];
    char esc[512];
    br_log_escape(n != NULL ? n->host : "", host, sizeof host);
    br_log_escape(detail, esc, sizeof esc);
    br_logf(&br_log_stderr, BR_LOG_ERROR, "redis-cluster",
            "\"host\":\"%s\",\"port\":%d,\"what\":\"%s\",\"detail\":\"%s\"", host,
            n != NULL ? n->port : 0, what, esc);
}

/* Monotonic milliseconds: when a node that refused a connection may be
 * tried again. */
static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void nap_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static struct timeval ms_tv(int ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    return tv;
}

/* ---- nodes ---- */

/* The index of host:port, added when new; BR_CLUSTER_NO_NODE when the
 * table is full or the host does not fit. */
static uint32_t node_find_or_add(struct br_cluster *c, const char *host, size_t host_len, int port)
{
    for (uint32_t i = 0; i < c->node_count; i++) {
        const struct br_cluster_node *n = &c->node[i];
        if (n->port == port && strlen(n->host) == host_len &&
            memcmp(n->host, host, host_len) == 0) {
            return i;
        }
    }
    if (c->node_count == BR_CLUSTER_NODES_MAX || host_len == 0 || host_len >= BR_CLUSTER_HOST_MAX ||
        port < 1 || port > 65535) {
        log_node(c, NULL, "node table", "a node does not fit (BR_CLUSTER_NODES_MAX or its name)");
        return BR_CLUSTER_NO_NODE;
    }
    struct br_cluster_node *n = &c->node[c->node_count];
    memset(n, 0, sizeof *n);
    memcpy(n->host, host, host_len);
    n->host[host_len] = 0;
    n->port = port;
    return c->node_count++;
}

static void node_drop(struct br_cluster *c, uint32_t i)
{
    if (c->node[i].ctx != NULL) {
        redisFree(c->node[i].ctx);
        c->node[i].ctx = NULL;
    }
    c->stale = true; /* the node may be gone for good: ask the cluster again */
}

bool br_cluster_peer_closed(struct redisContext *ctx)
{
    struct pollfd p = {.fd = ctx->fd, .events = POLLIN};
    if (poll(&p, 1, 0) <= 0) {
        return false; /* nothing to read: open as far as anyone can tell */
    }
    char b;
    ssize_t n = recv(ctx->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        return false;
    }
    return true; /* end of stream, an error, or bytes nobody asked for */
}

bool br_cluster_idle_check_due(int64_t *used_ms)
{
    int64_t now = mono_ms();
    bool due = now - *used_ms >= BR_CLUSTER_IDLE_CHECK_MS;
    *used_ms = now;
    return due;
}

/* Node i's connection, made when missing or when the node closed it while
 * it was idle (a restarted or failed node: found before sending, so the
 * command is not lost in a dead socket). */
static int node_connect(struct br_cluster *c, uint32_t i)
{
    struct br_cluster_node *n = &c->node[i];
    if (n->ctx != NULL && br_cluster_idle_check_due(&n->used_ms) && n->pending == 0 &&
        br_cluster_peer_closed(n->ctx)) {
        node_drop(c, i);
    }
    if (n->ctx != NULL) {
        return BR_OK;
    }
    if (n->retry_at_ms != 0 && mono_ms() < n->retry_at_ms) {
        return BR_E_UNAVAILABLE; /* it refused a moment ago: no connect timeout per command */
    }
    redisContext *ctx = redisConnectWithTimeout(n->host, n->port, ms_tv(c->connect_timeout_ms));
    if (ctx == NULL || ctx->err != 0) {
        log_node(c, n, "connect", ctx != NULL ? ctx->errstr : "out of memory");
        if (ctx != NULL) {
            redisFree(ctx);
        }
        n->retry_at_ms = mono_ms() + BR_CLUSTER_RECONNECT_BACKOFF_MS;
        c->stats.refused++;
        c->stale = true;
        return BR_E_UNAVAILABLE;
    }
    n->retry_at_ms = 0;
    if (redisSetTimeout(ctx, ms_tv(c->command_timeout_ms)) != REDIS_OK ||
        redisEnableKeepAlive(ctx) != REDIS_OK) {
        log_node(c, n, "socket options", ctx->errstr);
        redisFree(ctx);
        return BR_E_UNAVAILABLE;
    }
    n->ctx = ctx;
    n->used_ms = mono_ms(); /* fresh: idle from now */
    c->stats.connects++;
    return BR_OK;
}

/*
 * Sends one command to node i (after ASKING when asking) and reads its
 * reply. BR_E_UNAVAILABLE when no byte left, BR_E_UNKNOWN_OUTCOME when the
 * command may have reached the node but no reply came; the connection is
 * dropped either way.
 */
static int send_to(struct br_cluster *c, uint32_t i, bool asking, int argc, const char **argv,
                   const size_t *len, redisReply **rep)
{
    *rep = NULL;
    if (node_connect(c, i) != BR_OK) {
        return BR_E_UNAVAILABLE;
    }
    redisContext *ctx = c->node[i].ctx;
    BR_ASSERT(c->node[i].pending == 0); /* no pipelined reply in the way */
    BR_ASSERT(sdslen(ctx->obuf) == 0);  /* nothing left over from an earlier request */
    if ((asking && redisAppendCommand(ctx, "ASKING") != REDIS_OK) ||
        redisAppendCommandArgv(ctx, argc, argv, len) != REDIS_OK) {
        log_node(c, &c->node[i], "format", ctx->errstr);
        node_drop(c, i);
        return BR_E_UNAVAILABLE;
    }
    size_t whole = sdslen(ctx->obuf);
    int done = 0;
    for (uint32_t spins = 0; !done; spins++) {
        BR_ASSERT(spins < (1u << 30)); /* each round writes some bytes or fails */
        if (redisBufferWrite(ctx, &done) != REDIS_OK) {
            bool some_sent = sdslen(ctx->obuf) < whole;
            log_node(c, &c->node[i], "write", ctx->errstr);
            node_drop(c, i);
            return some_sent ? BR_E_UNKNOWN_OUTCOME : BR_E_UNAVAILABLE;
        }
    }
    for (int k = asking ? 0 : 1; k < 2; k++) {
        void *reply = NULL;
        if (redisGetReply(ctx, &reply) != REDIS_OK || reply == NULL) {
            log_node(c, &c->node[i], "read", ctx->errstr);
            node_drop(c, i);
            return BR_E_UNKNOWN_OUTCOME;
        }
        if (k == 0) {
            redisReply *ok = reply;
            if (ok->type != REDIS_REPLY_STATUS) {
                /* ASKING refused (logged): the command's own reply follows and answers. */
                log_node(c, &c->node[i], "asking", ok->type == REDIS_REPLY_ERROR ? ok->str : "?");
            }
            freeReplyObject(reply);
            continue;
        }
        *rep = reply;
    }
    c->last_ok = i;
    return BR_OK;
}

/* ---- the map ---- */

/* Fills the map from a CLUSTER SLOTS reply given by node `from`. BR_OK or
 * BR_E_IO (a reply of another shape). */
static int take_slots(struct br_cluster *c, uint32_t from, const redisReply *rep)
{
    if (rep->type != REDIS_REPLY_ARRAY) {
        return BR_E_IO;
    }
    uint8_t map[BR_CLUSTER_SLOTS];
    memset(map, BR_CLUSTER_NO_NODE, sizeof map);
    bool master[BR_CLUSTER_NODES_MAX] = {false}; /* a failed-over master is one no more */
    for (size_t k = 0; k < rep->elements; k++) {
        const redisReply *e = rep->element[k];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
            e->element[0]->type != REDIS_REPLY_INTEGER ||
            e->element[1]->type != REDIS_REPLY_INTEGER ||
            e->element[2]->type != REDIS_REPLY_ARRAY || e->element[2]->elements < 2) {
            return BR_E_IO;
        }
        long long lo = e->element[0]->integer, hi = e->element[1]->integer;
        const redisReply *addr = e->element[2]; /* the master: host, port, id, ... */
        if (lo < 0 || hi < lo || hi >= (long long)BR_CLUSTER_SLOTS ||
            addr->element[0]->type != REDIS_REPLY_STRING ||
            addr->element[1]->type != REDIS_REPLY_INTEGER) {
            return BR_E_IO;
        }
        const char *host = addr->element[0]->str;
        size_t host_len = addr->element[0]->len;
        if (host_len == 0 || strcmp(host, "?") == 0) { /* "unknown endpoint": the one asked */
            host = c->node[from].host;
            host_len = strlen(host);
        }
        uint32_t n = node_find_or_add(c, host, host_len, (int)addr->element[1]->integer);
        if (n != BR_CLUSTER_NO_NODE) {
            master[n] = true;
            memset(map + lo, (int)n, (size_t)(hi - lo + 1));
        }
    }
    memcpy(c->slot_node, map, sizeof map);
    for (uint32_t i = 0; i < c->node_count; i++) {
        c->node[i].master = master[i];
    }
    c->stats.refreshes++;
    c->stale = false;
    return BR_OK;
}

/* CLUSTER SLOTS from node `first`, then from the others in turn. BR_OK,
 * BR_E_UNAVAILABLE (no node answered), BR_E_IO (nodes answered, none with
 * a map: not a cluster). */
static int refresh_from(struct br_cluster *c, uint32_t first)
{
    static const char *const argv[2] = {"CLUSTER", "SLOTS"};
    static const size_t len[2] = {7, 5};
    int none = BR_E_UNAVAILABLE;
    for (uint32_t k = 0; k < c->node_count; k++) {
        uint32_t i = (first + k) % c->node_count;
        redisReply *rep;
        if (send_to(c, i, false, 2, (const char **)argv, len, &rep) != BR_OK) {
            continue;
        }
        int rc = take_slots(c, i, rep);
        if (rc != BR_OK) {
            log_node(c, &c->node[i], "cluster slots",
                     rep->type == REDIS_REPLY_ERROR ? rep->str : "a reply of another shape");
        }
        freeReplyObject(rep);
        if (rc == BR_OK) {
            return BR_OK;
        }
        none = BR_E_IO;
    }
    return none;
}

int br_cluster_refresh(struct br_cluster *c)
{
    /* From the node that last answered: a dead node first would cost its
     * connect timeout on every refresh. */
    uint32_t first = c->last_ok < c->node_count ? c->last_ok : 0;
    return c->node_count == 0 || refresh_from(c, first) != BR_OK ? BR_E_UNAVAILABLE : BR_OK;
}

/* ---- routing ---- */

enum route { ROUTE_KEY, ROUTE_SCRIPT, ROUTE_ALL, ROUTE_ANY };

static bool is(const char *arg, size_t len, const char *name)
{
    return strlen(name) == len && strncasecmp(arg, name, len) == 0;
}

/* Where a command goes; for ROUTE_KEY and ROUTE_SCRIPT (a script or
 * function with keys), which argument is its key. */
static enum route route(int argc, const char **argv, const size_t *len, int *key)
{
    const char *a = argv[0];
    size_t n = len[0];
    if (is(a, n, "EVAL") || is(a, n, "EVALSHA") || is(a, n, "EVAL_RO") || is(a, n, "EVALSHA_RO") ||
        is(a, n, "FCALL") || is(a, n, "FCALL_RO")) {
        if (argc > 3 && !(len[2] == 1 && argv[2][0] == '0')) {
            *key = 3;
            return ROUTE_SCRIPT;
        }
        return ROUTE_ANY;
    }
    if (is(a, n, "SCRIPT") || is(a, n, "FUNCTION") || is(a, n, "FLUSHDB") || is(a, n, "FLUSHALL")) {
        return ROUTE_ALL;
    }
    if (is(a, n, "XREAD") || is(a, n, "XREADGROUP")) {
        for (int i = 1; i + 1 < argc; i++) {
            if (is(argv[i], len[i], "STREAMS")) {
                *key = i + 1;
                return ROUTE_KEY;
            }
        }
        return ROUTE_ANY;
    }
    if (argc < 2 || is(a, n, "PING") || is(a, n, "INFO") || is(a, n, "CLUSTER")) {
        return ROUTE_ANY;
    }
    *key = 1;
    return ROUTE_KEY;
}

/* Parses "<slot> <host>:<port>" after "MOVED " or "ASK ": the target's
 * index (added when new) or BR_CLUSTER_NO_NODE. An empty host is the
 * replying node's. */
static uint32_t redirect_target(struct br_cluster *c, uint32_t from, const char *msg, long *slot)
{
    const char *p = strchr(msg, ' ');
    char *end;
    *slot = p != NULL ? strtol(p + 1, &end, 10) : -1;
    if (p == NULL || end == p + 1 || *end != ' ' || *slot < 0 || *slot >= (long)BR_CLUSTER_SLOTS) {
        return BR_CLUSTER_NO_NODE;
    }
    const char *host = end + 1;
    const char *colon = strrchr(host, ':');
    if (colon == NULL) {
        return BR_CLUSTER_NO_NODE;
    }
    long port = strtol(colon + 1, &end, 10);
    if (end == colon + 1 || *end != 0) {
        return BR_CLUSTER_NO_NODE;
    }
    size_t host_len = (size_t)(colon - host);
    if (host_len == 0) {
        host = c->node[from].host;
        host_len = strlen(host);
    }
    return node_find_or_add(c, host, host_len, (int)port);
}

static bool starts(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Sends a command to every master, in node order. */
static int call_all(struct br_cluster *c, int argc, const char **argv, const size_t *len,
                    redisReply **rep)
{
    *rep = NULL;
    int sent = 0;
    for (uint32_t i = 0; i < c->node_count; i++) {
        if (!c->node[i].master) {
            continue;
        }
        redisReply *one;
        int rc = send_to(c, i, false, argc, argv, len, &one);
        if (rc != BR_OK) {
            if (*rep != NULL) {
                freeReplyObject(*rep);
                *rep = NULL;
            }
            return sent > 0 && rc == BR_E_UNAVAILABLE ? BR_E_UNKNOWN_OUTCOME : rc;
        }
        sent++;
        bool keep =
            *rep == NULL || (one->type == REDIS_REPLY_ERROR && (*rep)->type != REDIS_REPLY_ERROR);
        if (keep && *rep != NULL) {
            freeReplyObject(*rep);
        }
        if (keep) {
            *rep = one;
        } else {
            freeReplyObject(one);
        }
    }
    if (sent == 0) {
        log_node(c, NULL, "route", "no master known");
        return BR_E_UNAVAILABLE;
    }
    return BR_OK;
}

/* What a reply asks for. */
enum next { NEXT_DONE, NEXT_MOVED, NEXT_ASK, NEXT_TRYAGAIN, NEXT_DOWN };

static enum next classify(const redisReply *rep)
{
    if (rep->type != REDIS_REPLY_ERROR) {
        return NEXT_DONE;
    }
    if (starts(rep->str, "MOVED ")) {
#ifdef BR_PLANT_CLUSTER_MOVED_IGNORED
        return NEXT_DONE; /* planted: MOVED handed back (test_redis_cluster must fail) */
#else
        return NEXT_MOVED;
#endif
    }
    if (starts(rep->str, "ASK ")) {
#ifdef BR_PLANT_CLUSTER_ASK_IGNORED
        return NEXT_DONE; /* planted: ASK handed back (test_redis_cluster must fail) */
#else
        return NEXT_ASK;
#endif
    }
    if (starts(rep->str, "TRYAGAIN")) {
        return NEXT_TRYAGAIN;
    }
    if (starts(rep->str, "CLUSTERDOWN")) {
        return NEXT_DOWN;
    }
    return NEXT_DONE;
}

/* Follows one MOVED: learns the map (from the new owner first) and makes
 * sure the slot points where MOVED said, whatever a lagging node told. */
static uint32_t follow_moved(struct br_cluster *c, uint32_t at, const redisReply *rep)
{
    long slot;
    uint32_t to = redirect_target(c, at, rep->str, &slot);
    c->stats.moved++;
    if (to == BR_CLUSTER_NO_NODE) {
        log_node(c, &c->node[at], "moved", rep->str);
        return to;
    }
    (void)refresh_from(c, to);
    c->node[to].master = true;
    c->slot_node[slot] = (uint8_t)to;
    return to;
}

/* One command's way through the cluster: where it goes next and what it
 * has used of its bounds. */
struct hop {
    uint32_t at;        /* the node to send to */
    bool asking;        /* send ASKING first */
    uint32_t redirects; /* MOVED and ASK followed */
    uint32_t waits;     /* TRYAGAIN and a script's ASK waited out */
    long backoff_ms;    /* the next wait */
};

/* Decides where the command goes after the redirection or refusal in rep
 * (classified nx) from node h->at. false when a bound is reached (or
 * CLUSTERDOWN): the caller gives up with BR_E_UNAVAILABLE. */
static bool next_hop(struct br_cluster *c, struct hop *h, enum next nx, bool script, uint16_t slot,
                     const redisReply *rep)
{
    uint32_t from = h->at;
    h->asking = false;
    if (nx == NEXT_ASK && script) {
        /* A script reaches keys it did not declare, and a migrating slot's
         * keys are split between the two nodes: on the target it could see
         * half an event. It waits until the slot has moved (MOVED) instead. */
        if (h->waits >= c->script_ask_waits_max) {
            return false;
        }
        h->waits++;
        c->stats.ask_waits++;
        nap_ms(h->backoff_ms);
        h->backoff_ms *= 2;
        h->at = c->slot_node[slot];
        return true;
    }
    if (nx == NEXT_TRYAGAIN) {
        if (h->waits >= BR_CLUSTER_TRYAGAIN_MAX) {
            return false;
        }
        h->waits++;
        c->stats.tryagain++;
        nap_ms(h->backoff_ms);
        h->backoff_ms *= 2;
        h->at = c->slot_node[slot];
        return true;
    }
    if (nx == NEXT_DOWN || h->redirects >= BR_CLUSTER_REDIRECTS_MAX) {
        return false;
    }
    h->redirects++;
    if (nx == NEXT_MOVED) {
        h->at = follow_moved(c, from, rep);
        return true;
    }
    long ask_slot;
    h->at = redirect_target(c, from, rep->str, &ask_slot);
    if (h->at != BR_CLUSTER_NO_NODE) {
        c->node[h->at].master = true; /* a slot's new home gets scripts loaded too */
    }
    h->asking = true;
    c->stats.ask++;
    return true;
}

int br_cluster_call(struct br_cluster *c, int argc, const char **argv, const size_t *len,
                    redisReply **rep)
{
    BR_ASSERT(c != NULL && argc >= 1 && rep != NULL);
    *rep = NULL;
    if (c->stale) {
        (void)br_cluster_refresh(c); /* best effort: the old map may still be right */
    }
    int key = 0;
    enum route r = route(argc, argv, len, &key);
    if (r == ROUTE_ALL) {
        return call_all(c, argc, argv, len, rep);
    }
    uint16_t slot = r == ROUTE_ANY ? 0 : br_cluster_slot(argv[key], len[key]);
    struct hop h = {.at = c->slot_node[slot], .backoff_ms = BR_CLUSTER_TRYAGAIN_BACKOFF_MS};
    for (;;) {
        BR_ASSERT(h.redirects <= BR_CLUSTER_REDIRECTS_MAX);
        BR_ASSERT(h.waits <= BR_CLUSTER_TRYAGAIN_MAX + c->script_ask_waits_max);
        if (h.at == BR_CLUSTER_NO_NODE) {
            log_node(c, NULL, "route", "no node serves the slot");
            c->stale = true;
            return BR_E_UNAVAILABLE;
        }
        int rc = send_to(c, h.at, h.asking, argc, argv, len, rep);
        if (rc != BR_OK) {
            return rc;
        }
        enum next nx = classify(*rep);
        if (nx == NEXT_DONE) {
            return BR_OK;
        }
        uint32_t from = h.at;
#ifdef BR_PLANT_CLUSTER_SCRIPT_ASK_FOLLOWED
        bool go_on = next_hop(c, &h, nx, false, slot, *rep); /* planted: scripts follow ASK */
#else
        bool go_on = next_hop(c, &h, nx, r == ROUTE_SCRIPT, slot, *rep);
#endif
        if (!go_on) {
            /* Nothing ran: CLUSTERDOWN, or redirected / told to wait too often. */
            log_node(c, &c->node[from], "route", (*rep)->str);
        }
        freeReplyObject(*rep);
        *rep = NULL;
        if (!go_on) {
            return BR_E_UNAVAILABLE;
        }
    }
}

/* ---- pipelines ---- */

/* argv[0..argc) and its lengths copied into one allocation (pointers,
 * lengths, then the bytes), for a re-send after a redirection. */
static char *copy_args(int argc, const char **argv, const size_t *len)
{
    size_t bytes = 0;
    for (int i = 0; i < argc; i++) {
        bytes += len[i] + 1;
    }
    size_t head = (size_t)argc * (sizeof(char *) + sizeof(size_t));
    char *mem = malloc(head + bytes);
    if (mem == NULL) {
        return NULL;
    }
    const char **av = (const char **)(void *)mem;
    size_t *lv = (size_t *)(void *)(mem + (size_t)argc * sizeof(char *));
    char *at = mem + head;
    for (int i = 0; i < argc; i++) {
        memcpy(at, argv[i], len[i]);
        at[len[i]] = 0;
        av[i] = at;
        lv[i] = len[i];
        at += len[i] + 1;
    }
    return mem;
}

static struct br_cluster_queued *queued(struct br_cluster *c, uint32_t k)
{
    return &c->queue[(c->queue_head + k) % BR_CLUSTER_QUEUE_MAX];
}

int br_cluster_queue(struct br_cluster *c, int argc, const char **argv, const size_t *len)
{
    BR_ASSERT(c->queue_count < BR_CLUSTER_QUEUE_MAX); /* callers keep their window */
    int key = 0;
    enum route r = route(argc, argv, len, &key);
    BR_ASSERT(r != ROUTE_ALL && r != ROUTE_SCRIPT); /* pipelines are reads of keys */
    uint32_t pending = 0;
    for (uint32_t i = 0; i < c->node_count; i++) {
        pending += c->node[i].pending;
    }
    if (c->stale && pending == 0) {
        (void)br_cluster_refresh(c);
    }
    uint32_t n = c->slot_node[r == ROUTE_ANY ? 0 : br_cluster_slot(argv[key], len[key])];
    if (n == BR_CLUSTER_NO_NODE || node_connect(c, n) != BR_OK) {
        return BR_E_UNAVAILABLE;
    }
    struct br_cluster_queued *q = queued(c, c->queue_count);
    q->copy = copy_args(argc, argv, len);
    if (q->copy == NULL) {
        return BR_E_UNAVAILABLE;
    }
    if (redisAppendCommandArgv(c->node[n].ctx, argc, argv, len) != REDIS_OK) {
        log_node(c, &c->node[n], "format", c->node[n].ctx->errstr);
        free(q->copy);
        q->copy = NULL;
        return BR_E_UNAVAILABLE;
    }
    q->reply = NULL;
    q->node = (uint8_t)n;
    q->argc = argc;
    c->node[n].pending++;
    c->queue_count++;
    return BR_OK;
}

/* Sends what the queue's unanswered commands left in the nodes' buffers
 * and reads their replies, in queue order, each from its node. */
static int read_pending(struct br_cluster *c)
{
    for (uint32_t i = 0; i < c->node_count; i++) {
        int done = c->node[i].pending == 0;
        for (uint32_t spins = 0; !done; spins++) {
            BR_ASSERT(spins < (1u << 30)); /* each round writes some bytes or fails */
            if (redisBufferWrite(c->node[i].ctx, &done) != REDIS_OK) {
                log_node(c, &c->node[i], "write", c->node[i].ctx->errstr);
                return BR_E_UNAVAILABLE;
            }
        }
    }
    for (uint32_t k = 0; k < c->queue_count; k++) {
        struct br_cluster_queued *q = queued(c, k);
        if (q->reply != NULL) {
            continue;
        }
        struct br_cluster_node *n = &c->node[q->node];
        BR_ASSERT(n->pending > 0 && n->ctx != NULL);
        void *reply = NULL;
        if (redisGetReply(n->ctx, &reply) != REDIS_OK || reply == NULL) {
            log_node(c, n, "read", n->ctx->errstr);
            return BR_E_UNAVAILABLE;
        }
        n->pending--;
        q->reply = reply;
    }
    return BR_OK;
}

/* Answers every queued command still unanswered: one round trip per node
 * for all of them, then each redirected or refused one again on its own
 * (br_cluster_call follows MOVED/ASK/TRYAGAIN; nothing is in flight then). */
static int resolve(struct br_cluster *c)
{
    int rc = read_pending(c);
    for (uint32_t k = 0; rc == BR_OK && k < c->queue_count; k++) {
        struct br_cluster_queued *q = queued(c, k);
        if (q->reply != NULL && classify(q->reply) != NEXT_DONE) {
            freeReplyObject(q->reply);
            q->reply = NULL;
            const char **av = (const char **)(void *)q->copy;
            const size_t *lv = (const size_t *)(void *)(q->copy + (size_t)q->argc * sizeof(char *));
            rc = br_cluster_call(c, q->argc, av, lv, &q->reply);
        }
    }
    return rc;
}

struct redisReply *br_cluster_next(struct br_cluster *c)
{
    BR_ASSERT(c->queue_count > 0); /* a read for every queued command */
    struct br_cluster_queued *q = queued(c, 0);
    if (q->reply == NULL && resolve(c) != BR_OK) {
        return NULL; /* the caller drops the queue */
    }
    BR_ASSERT(q->reply != NULL);
    redisReply *rep = q->reply;
    free(q->copy);
    memset(q, 0, sizeof *q);
    c->queue_head = (c->queue_head + 1) % BR_CLUSTER_QUEUE_MAX;
    c->queue_count--;
    return rep;
}

void br_cluster_queue_drop(struct br_cluster *c)
{
    for (uint32_t k = 0; k < c->queue_count; k++) {
        struct br_cluster_queued *q = queued(c, k);
        if (q->reply != NULL) {
            freeReplyObject(q->reply);
        }
        free(q->copy);
        memset(q, 0, sizeof *q);
    }
    c->queue_head = 0;
    c->queue_count = 0;
    for (uint32_t i = 0; i < c->node_count; i++) {
        if (c->node[i].pending > 0) {
            node_drop(c, i); /* replies still on the way: the connection is out of step */
            c->node[i].pending = 0;
        }
    }
}

/* ---- open and close ---- */

/* "host:port[,host:port...]" into node[] (not masters until a map says so). */
static int parse_seeds(struct br_cluster *c, const char *seeds)
{
    const char *p = seeds;
    while (*p != 0) {
        size_t item = strcspn(p, ",");
        const char *colon = memchr(p, ':', item);
        size_t host_len = colon != NULL ? (size_t)(colon - p) : item;
        long port = 6379;
        if (colon != NULL) {
            char *end;
            port = strtol(colon + 1, &end, 10);
            if (end == colon + 1 || end != p + item) {
                return BR_E_INVALID;
            }
        }
        if (host_len == 0 || port < 1 || port > 65535 ||
            node_find_or_add(c, p, host_len, (int)port) == BR_CLUSTER_NO_NODE) {
            return BR_E_INVALID;
        }
        p += item;
        if (*p == ',') {
            p++;
            if (*p == 0) {
                return BR_E_INVALID;
            }
        }
    }
    return c->node_count > 0 ? BR_OK : BR_E_INVALID;
}

int br_cluster_open(struct br_cluster *c, const char *seeds, int connect_timeout_ms,
                    int command_timeout_ms, bool quiet)
{
    memset(c, 0, sizeof *c);
    memset(c->slot_node, BR_CLUSTER_NO_NODE, sizeof c->slot_node);
    c->connect_timeout_ms = connect_timeout_ms;
    c->command_timeout_ms = command_timeout_ms;
    c->script_ask_waits_max = BR_CLUSTER_SCRIPT_ASK_WAITS_MAX;
    c->quiet = quiet;
    if (seeds == NULL || strlen(seeds) >= BR_CLUSTER_SEEDS_MAX || connect_timeout_ms < 1 ||
        command_timeout_ms < 1) {
        return BR_E_INVALID;
    }
    int rc = parse_seeds(c, seeds);
    if (rc == BR_OK) {
        rc = refresh_from(c, 0);
        rc = rc == BR_E_IO ? BR_E_INVALID : rc; /* a seed answered: it is no cluster */
    }
    if (rc != BR_OK) {
        br_cluster_close(c);
    }
    return rc;
}

void br_cluster_close(struct br_cluster *c)
{
    br_cluster_queue_drop(c);
    for (uint32_t i = 0; i < c->node_count && i < BR_CLUSTER_NODES_MAX; i++) {
        if (c->node[i].ctx != NULL) {
            redisFree(c->node[i].ctx);
            c->node[i].ctx = NULL;
        }
    }
    c->node_count = 0;
}
