/*
 * rush_net.c -- the rush's one epoll loop (rush_net.h): keep-alive request
 * pools, one connection per SSE stream, user timers and every timeout.
 *
 * Layout. The connection table is fixed at br_rush_net_new: first the
 * request connections, grouped in lanes (one lane per pool and target, the
 * pool's connections split evenly over the targets), then one connection per
 * stream slot (stream s uses connection conns_pool + s). A lane has a FIFO of
 * requests waiting for a connection, a list of idle connections (reused most
 * recent first) and a stack of closed ones to dial. Requests live in slots
 * handed out from chunks that are allocated once and recycled, so the hot path
 * allocates nothing unless a request's text exceeds RQ_INLINE.
 *
 * Time. One heap holds each connection's deadline (connect, request or
 * stream idle; microseconds in the heap's deadline field), another the user
 * timers. epoll_wait sleeps until the nearer one, at most 100 ms. Request
 * connections ask for the kernel's receive timestamps (SO_TIMESTAMPNS), so an
 * answer says when it arrived as well as when the loop got to read it.
 *
 *   request:  QUEUED --lane has a connection--> on CONNECTING/BUSY connection --answer--> fn
 *                                     \-- idle keep-alive connection closed by the server
 *                                         before any byte: back to the FIFO's head, once
 *   stream:   CONNECTING --> BUSY: OPEN(status), EVENT..., END | CUT
 *
 * Callbacks run from the loop only (never from inside send/open), may call
 * every function here except br_rush_net_free, and a stream closed from its
 * own callback stops at once: its parser is not touched again.
 */
#define _GNU_SOURCE /* SOCK_NONBLOCK, SOCK_CLOEXEC, EPOLLRDHUP */
#include "server/rush_net.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "adapters/clock.h"
#include "core/err.h"
#include "core/heap.h"
#include "core/panic.h"

#define NONE UINT32_MAX
#define RQ_INLINE 1024u                /* request text kept in the slot; longer ones are allocated */
#define RQ_CHUNK 512u                  /* request slots allocated together */
#define BODY_FIRST 8192u               /* an answer's body buffer, grown by doubling */
#define BODY_MAX 65536u                /* beyond it the answer is a protocol error */
#define EVENTS_TURN 256
#define WAIT_MAX_MS 100
#define CONNECT_TIMEOUT_MS_DEFAULT 3000u
#define TIMERS_TURN_MAX 65536u         /* user timers fired in one turn */

enum { CS_CLOSED = 0, CS_CONNECTING, CS_IDLE, CS_BUSY, CS_CALLBACK };
enum { FAIL_NONE = 0, FAIL_CONNECT, FAIL_BROKEN };

struct rq {                            /* a request slot */
    br_rush_resp_fn fn;
    void *ctx;
    char *text;                        /* inline or allocated */
    size_t len;
    int64_t queued_at_us, sent_us;
    uint32_t timeout_ms, lane, next;   /* next: FIFO or free list */
    uint8_t route;
    bool retried, text_owned;
    char inline_text[RQ_INLINE];
};

struct target {
    struct sockaddr_storage addr;
    socklen_t addr_len;
    char host[128];                    /* the Host header: host:port */
};

struct lane {
    uint32_t pool, target, first, count;
    uint32_t q_head, q_tail;           /* waiting requests */
    uint32_t idle_head;                /* idle connections, doubly linked */
    uint32_t closed_head;              /* closed connections, a stack */
};

struct conn {
    int fd;
    uint8_t state;
    bool stream, got_bytes;
    uint8_t fail;                      /* a failure seen outside the loop, handled at its deadline (now) */
    uint32_t gen;                      /* bumped on each dial: stale epoll events are dropped */
    uint32_t lane;                     /* request connections */
    uint32_t rq;                       /* the request (or the stream's text) */
    uint32_t prev, next;               /* idle list; next also the closed stack */
    uint32_t answers;                  /* answers read on this connection */
    int64_t rx_us;                     /* request connections: the kernel's receipt of the
                                          last bytes read (SO_TIMESTAMPNS), 0 if none */
    size_t out_off;
    struct br_rush_http_resp resp;
    char *body;
    size_t body_len, body_cap;
};

struct stream {
    br_rush_stream_fn fn;
    void *ctx;
    uint32_t idle_ms, next_free;
    bool used, open_sent, busy, closing;
    struct br_rush_sse sse;
};

struct br_rush_net {
    int ep;
    struct target *targets;
    uint32_t target_count;
    struct lane *lanes;                /* BR_RUSH_POOL_COUNT x target_count */
    uint32_t rr[BR_RUSH_POOL_COUNT], queued[BR_RUSH_POOL_COUNT];
    struct conn *conns;
    uint32_t conns_pool, conns_total;
    struct stream *streams;
    uint32_t streams_max, stream_free, streams_open;
    struct rq **chunks;
    uint32_t chunk_count, chunk_max, rq_free;
    struct br_heap deadlines, timers;
    struct br_heap_node *deadline_nodes, *timer_nodes;
    uint32_t *deadline_pos, *timer_pos, timers_max, connect_timeout_ms;
    uint64_t seq;
    br_rush_timer_fn on_timer;
    void *timer_ctx;
    struct br_rush_net_stats stats;
    char rbuf[65536];
};

int64_t br_rush_now_us(void)
{
    return br_clock_mono_us();
}

int64_t br_rush_wall_ms(void)
{
    return br_clock_wall_ms();
}

/* ---- targets ---- */

/* "http://host:port[/...]" or "host:port"; https is refused. */
static int target_resolve(struct target *t, const char *url)
{
    if (strncmp(url, "https://", 8) == 0) {
        return BR_E_INVALID;
    }
    const char *h = strncmp(url, "http://", 7) == 0 ? url + 7 : url;
    size_t len = strcspn(h, "/");
    if (len == 0 || len >= sizeof t->host) {
        return BR_E_INVALID;
    }
    memcpy(t->host, h, len);
    t->host[len] = '\0';
    char host[128];
    memcpy(host, t->host, len + 1);
    char *colon = strrchr(host, ':');
    const char *port = "80";
    if (colon != NULL && strchr(colon, ']') == NULL) {
        *colon = '\0';
        port = colon + 1;
    }
    char *name = host;
    if (name[0] == '[') {
        name++;
        char *end = strchr(name, ']');
        if (end == NULL) {
            return BR_E_INVALID;
        }
        *end = '\0';
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(name, port, &hints, &res);
    if (rc != 0 || res == NULL) {
        fprintf(stderr, "rush: cannot resolve %s: %s\n", url, gai_strerror(rc));
        return BR_E_INVALID;
    }
    memcpy(&t->addr, res->ai_addr, res->ai_addrlen);
    t->addr_len = res->ai_addrlen;
    freeaddrinfo(res);
    return BR_OK;
}

/* ---- request slots ---- */

static struct rq *rq_at(struct br_rush_net *n, uint32_t i)
{
    BR_ASSERT(i / RQ_CHUNK < n->chunk_count);
    return &n->chunks[i / RQ_CHUNK][i % RQ_CHUNK];
}

static uint32_t rq_alloc(struct br_rush_net *n)
{
    if (n->rq_free == NONE) {
        if (n->chunk_count == n->chunk_max) {
            return NONE;
        }
        struct rq *c = calloc(RQ_CHUNK, sizeof *c);
        if (c == NULL) {
            return NONE;
        }
        n->chunks[n->chunk_count] = c;
        for (uint32_t k = RQ_CHUNK; k-- > 0;) {
            c[k].next = n->rq_free;
            n->rq_free = n->chunk_count * RQ_CHUNK + k;
        }
        n->chunk_count++;
    }
    uint32_t i = n->rq_free;
    struct rq *r = rq_at(n, i);
    n->rq_free = r->next;
    r->next = NONE;
    r->text_owned = false;
    r->retried = false;
    r->text = r->inline_text;
    r->len = 0;
    return i;
}

static void rq_release(struct br_rush_net *n, uint32_t i)
{
    struct rq *r = rq_at(n, i);
    if (r->text_owned) {
        free(r->text);
    }
    r->text_owned = false;
    r->text = NULL;
    r->fn = NULL;
    r->next = n->rq_free;
    n->rq_free = i;
}

/* Formats the request text into slot i (inline, or allocated when longer). */
static int rq_format(struct br_rush_net *n, uint32_t i, const struct target *t, const struct br_rush_req *q,
                     const char *accept, const char *last_id)
{
    struct rq *r = rq_at(n, i);
    bool has_body = q->body != NULL || strcmp(q->method, "GET") != 0;
    const char *type = q->content_type != NULL ? q->content_type : "application/json";
    for (int pass = 0; pass < 2; pass++) {
        size_t cap = pass == 0 ? RQ_INLINE : r->len + 1;
        char *out = pass == 0 ? r->inline_text : malloc(cap);
        if (out == NULL) {
            return BR_E_FULL;
        }
        int k = snprintf(out, cap, "%s %s HTTP/1.1\r\nHost: %s\r\n%s%s%s%s%s%s%s%s%s%s%s%s%s%s%s",
                         q->method, q->path, t->host, q->token != NULL ? "Authorization: Bearer " : "",
                         q->token != NULL ? q->token : "", q->token != NULL ? "\r\n" : "",
                         q->idem_key != NULL ? "Idempotency-Key: " : "", q->idem_key != NULL ? q->idem_key : "",
                         q->idem_key != NULL ? "\r\n" : "", q->pass != NULL ? "X-Queue-Pass: " : "",
                         q->pass != NULL ? q->pass : "", q->pass != NULL ? "\r\n" : "",
                         accept != NULL ? "Accept: " : "", accept != NULL ? accept : "",
                         accept != NULL ? "\r\nCache-Control: no-cache\r\n" : "",
                         last_id != NULL ? "Last-Event-ID: " : "", last_id != NULL ? last_id : "",
                         last_id != NULL ? "\r\n" : "");
        size_t len = k < 0 ? 0 : (size_t)k;
        if (has_body) {
            size_t room = len < cap ? cap - len : 0; /* 0: only measured, for the second pass */
            k = snprintf(room > 0 ? out + len : NULL, room, "Content-Type: %s\r\nContent-Length: %zu\r\n", type,
                         q->body != NULL ? q->body_len : 0);
            len += k < 0 ? 0 : (size_t)k;
        }
        if (len + 2 < cap) {
            memcpy(out + len, "\r\n", 2);
        }
        len += 2;
        if (has_body && q->body != NULL) {
            if (len + q->body_len < cap) {
                memcpy(out + len, q->body, q->body_len);
            }
            len += q->body_len;
        }
        r->len = len;
        if (len < cap) {
            r->text = out;
            r->text_owned = pass == 1;
            return BR_OK;
        }
        if (pass == 1) {
            free(out);
        }
    }
    return BR_E_FULL;
}

/* ---- deadlines and connections ---- */

static void deadline_set(struct br_rush_net *n, uint32_t c, int64_t at_us)
{
    if (n->deadline_pos[c] != BR_HEAP_NOWHERE) {
        br_heap_remove(&n->deadlines, c);
    }
    int rc = br_heap_push(&n->deadlines, c, at_us, n->seq++);
    BR_ASSERT(rc == BR_OK);
}

static void deadline_clear(struct br_rush_net *n, uint32_t c)
{
    if (n->deadline_pos[c] != BR_HEAP_NOWHERE) {
        br_heap_remove(&n->deadlines, c);
    }
}

static void idle_unlink(struct br_rush_net *n, struct lane *l, uint32_t c)
{
    struct conn *k = &n->conns[c];
    if (k->prev != NONE) {
        n->conns[k->prev].next = k->next;
    } else {
        l->idle_head = k->next;
    }
    if (k->next != NONE) {
        n->conns[k->next].prev = k->prev;
    }
    k->prev = k->next = NONE;
}

static void idle_push(struct br_rush_net *n, struct lane *l, uint32_t c)
{
    struct conn *k = &n->conns[c];
    k->state = CS_IDLE;
    k->prev = NONE;
    k->next = l->idle_head;
    if (l->idle_head != NONE) {
        n->conns[l->idle_head].prev = c;
    }
    l->idle_head = c;
}

/* Closes the socket. A request connection goes back to its lane's closed stack. */
static void conn_close(struct br_rush_net *n, uint32_t c)
{
    struct conn *k = &n->conns[c];
    if (!k->stream && k->state == CS_IDLE) {
        idle_unlink(n, &n->lanes[k->lane], c);
    }
    if (k->fd >= 0) {
        close(k->fd);
        k->fd = -1;
    }
    deadline_clear(n, c);
    k->state = CS_CLOSED;
    k->fail = FAIL_NONE;
    k->answers = 0;
    if (!k->stream) {
        struct lane *l = &n->lanes[k->lane];
        k->next = l->closed_head;
        l->closed_head = c;
    }
}

/* Starts a non-blocking connect. A failure now is reported from the loop
 * (deadline = now), never from inside the caller's send or open. */
static void conn_dial(struct br_rush_net *n, uint32_t c, uint32_t target)
{
    struct conn *k = &n->conns[c];
    const struct target *t = &n->targets[target];
    k->gen++;
    k->state = CS_CONNECTING;
    k->got_bytes = false;
    k->out_off = 0;
    k->answers = 0;
    k->fail = FAIL_CONNECT;
    n->stats.connects++;
    int64_t now = br_rush_now_us();
    k->fd = socket(t->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (k->fd >= 0) {
        int one = 1;
        (void)setsockopt(k->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (!k->stream) {
            /* The answer's arrival, not the loop's turn to read it (rx_now_us). */
            (void)setsockopt(k->fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
        }
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                                 .data.u64 = (uint64_t)k->gen << 32 | c};
        if (epoll_ctl(n->ep, EPOLL_CTL_ADD, k->fd, &ev) == 0 &&
            (connect(k->fd, (const struct sockaddr *)&t->addr, t->addr_len) == 0 || errno == EINPROGRESS)) {
            k->fail = FAIL_NONE;
        }
    }
    if (k->fail != FAIL_NONE) {
        n->stats.connect_errors++;
    }
    deadline_set(n, c, k->fail != FAIL_NONE ? now : now + (int64_t)n->connect_timeout_ms * 1000);
}

/* ---- requests on pooled connections ---- */

struct feed_ctx {
    struct br_rush_net *n;
    uint32_t c;
    bool broken;                       /* body over BODY_MAX, or the SSE stream broke */
};

static struct lane *lane_of(struct br_rush_net *n, uint32_t c)
{
    BR_ASSERT(!n->conns[c].stream);
    return &n->lanes[n->conns[c].lane];
}

static void lane_push(struct br_rush_net *n, struct lane *l, uint32_t i, bool front)
{
    struct rq *r = rq_at(n, i);
    if (front) {
        r->next = l->q_head;
        l->q_head = i;
        if (l->q_tail == NONE) {
            l->q_tail = i;
        }
    } else {
        r->next = NONE;
        if (l->q_tail != NONE) {
            rq_at(n, l->q_tail)->next = i;
        } else {
            l->q_head = i;
        }
        l->q_tail = i;
    }
    n->queued[l->pool]++;
}

/* Writes what is left of the connection's request. 0, or -1 when the
 * connection is broken (the caller decides what that means). */
static int conn_write(struct br_rush_net *n, uint32_t c)
{
    struct conn *k = &n->conns[c];
    struct rq *r = rq_at(n, k->rq);
    while (k->out_off < r->len) {
        if (k->out_off == 0) {
            k->rx_us = 0; /* a new request: the last answer's receipt is not its */
        }
        if (k->out_off == 0 && r->sent_us == 0) {
            r->sent_us = br_rush_now_us();
        }
        ssize_t w = send(k->fd, r->text + k->out_off, r->len - k->out_off, MSG_NOSIGNAL);
        if (w > 0) {
            k->out_off += (size_t)w;
        } else if (w < 0 && errno == EINTR) {
            continue;
        } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return 0;
        } else {
            return -1;
        }
    }
    return 0;
}

/* Puts request i on connection c (idle and connected, or just dialled). */
static void conn_start(struct br_rush_net *n, uint32_t c, uint32_t i)
{
    struct conn *k = &n->conns[c];
    struct rq *r = rq_at(n, i);
    k->rq = i;
    k->out_off = 0;
    k->got_bytes = false;
    k->body_len = 0;
    br_rush_http_resp_init(&k->resp);
    r->sent_us = 0;
    if (k->state == CS_CONNECTING) {
        return; /* written when the connect completes */
    }
    k->state = CS_BUSY;
    deadline_set(n, c, br_rush_now_us() + (int64_t)r->timeout_ms * 1000);
    if (conn_write(n, c) != 0) {
        /* Not from inside the caller's send: the loop handles it now. */
        k->fail = FAIL_BROKEN;
        deadline_set(n, c, 0);
    }
}

/* Gives waiting requests to idle connections, then dials closed ones. */
static void lane_pump(struct br_rush_net *n, struct lane *l)
{
    while (l->q_head != NONE) {
        uint32_t c;
        /* A request re-sent after the keep-alive race goes on a new connection. */
        bool fresh = rq_at(n, l->q_head)->retried && l->closed_head != NONE;
        if (l->idle_head != NONE && !fresh) {
            c = l->idle_head;
            idle_unlink(n, l, c);
        } else if (l->closed_head != NONE) {
            c = l->closed_head;
            l->closed_head = n->conns[c].next;
            n->conns[c].next = NONE;
            conn_dial(n, c, l->target);
        } else {
            return;
        }
        uint32_t i = l->q_head;
        l->q_head = rq_at(n, i)->next;
        if (l->q_head == NONE) {
            l->q_tail = NONE;
        }
        BR_ASSERT(n->queued[l->pool] > 0);
        n->queued[l->pool]--;
        conn_start(n, c, i);
    }
}

/* Ends connection c's request with an answer (status > 0) or a failure,
 * keeps or closes the connection, runs the callback, then feeds the lane. */
static void rq_finish(struct br_rush_net *n, uint32_t c, int status, int err, bool reusable)
{
    struct conn *k = &n->conns[c];
    struct lane *l = lane_of(n, c);
    BR_ASSERT(k->rq != NONE);
    struct rq *r = rq_at(n, k->rq);
    int64_t now = br_rush_now_us();
    struct br_rush_resp resp = {.status = status, .err = err, .body = "", .retry_after_s = k->resp.retry_after_s,
                                .route = r->route, .sent_us = r->sent_us, .done_us = now};
    /* Arrived: when the kernel had the answer's last bytes, within [sent, read]. */
    resp.arrived_us = status > 0 && k->rx_us > 0 ? k->rx_us : now;
    if (resp.arrived_us > now) {
        resp.arrived_us = now;
    }
    if (r->sent_us > 0 && resp.arrived_us < r->sent_us) {
        resp.arrived_us = r->sent_us;
    }
    resp.queued_us = (r->sent_us > 0 ? r->sent_us : now) - r->queued_at_us;
    if (status > 0 && k->body != NULL) {
        k->body[k->body_len] = '\0';
        resp.body = k->body;
        resp.body_len = k->body_len;
    }
    br_rush_resp_fn fn = r->fn;
    void *ctx = r->ctx;
    rq_release(n, k->rq);
    k->rq = NONE;
    deadline_clear(n, c);
    bool keep = status > 0 && reusable && !k->resp.close;
    if (keep) {
        k->state = CS_CALLBACK; /* neither idle nor closed while the body is read */
        k->answers++;
    } else {
        conn_close(n, c);
    }
    fn(ctx, &resp);
    if (k->state == CS_CALLBACK) {
        idle_push(n, l, c);
    }
    lane_pump(n, l);
}

/* EOF, a reset or a failed write on a request connection. */
static void pool_broken(struct br_rush_net *n, uint32_t c)
{
    struct conn *k = &n->conns[c];
    if (k->state != CS_BUSY) {
        conn_close(n, c);
        return;
    }
    struct rq *r = rq_at(n, k->rq);
    if (!k->got_bytes && k->answers > 0 && !r->retried) {
        /* The keep-alive race: the server closed the idle connection as we
         * reused it. Every request of the rush is safe to repeat: once more,
         * first in line, on a fresh connection. */
        uint32_t i = k->rq;
        struct lane *l = lane_of(n, c);
        r->retried = true;
        n->stats.retried_closed++;
        k->rq = NONE;
        conn_close(n, c);
        lane_push(n, l, i, true);
        lane_pump(n, l);
        return;
    }
    if (k->got_bytes && br_rush_http_eof(&k->resp) == BR_RUSH_PARSE_DONE) {
        rq_finish(n, c, k->resp.status, BR_RUSH_NET_OK, false);
        return;
    }
    rq_finish(n, c, 0, BR_RUSH_NET_CLOSED, false);
}

static void pool_body(void *ctx, const char *bytes, size_t len)
{
    struct feed_ctx *f = ctx;
    struct conn *k = &f->n->conns[f->c];
    if (f->broken) {
        return;
    }
    if (k->body_len + len + 1 > k->body_cap) {
        size_t cap = k->body_cap == 0 ? BODY_FIRST : k->body_cap;
        while (cap < k->body_len + len + 1 && cap < BODY_MAX) {
            cap *= 2;
        }
        char *b = cap >= k->body_len + len + 1 ? realloc(k->body, cap) : NULL;
        if (b == NULL) {
            f->broken = true;
            return;
        }
        k->body = b;
        k->body_cap = cap;
    }
    memcpy(k->body + k->body_len, bytes, len);
    k->body_len += len;
}

/* The monotonic time of a read's kernel receive timestamp (SCM_TIMESTAMPNS,
 * CLOCK_REALTIME), or 0 when the read carried none. The two clocks are read
 * now, back to back: the offset between them is good to a microsecond or so
 * unless the wall clock is stepped in between. */
static int64_t rx_now_us(struct msghdr *m)
{
    for (struct cmsghdr *h = CMSG_FIRSTHDR(m); h != NULL; h = CMSG_NXTHDR(m, h)) {
        if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_TIMESTAMPNS &&
            h->cmsg_len >= CMSG_LEN(sizeof(struct timespec))) {
            struct timespec rx, real;
            memcpy(&rx, CMSG_DATA(h), sizeof rx);
            int64_t mono = br_rush_now_us();
            clock_gettime(CLOCK_REALTIME, &real);
            int64_t ago_us = ((int64_t)real.tv_sec - (int64_t)rx.tv_sec) * 1000000 +
                             ((int64_t)real.tv_nsec - (int64_t)rx.tv_nsec) / 1000;
            return ago_us >= 0 ? mono - ago_us : mono;
        }
    }
    return 0;
}

/* Reads until EAGAIN or the end of the answer. */
static void pool_read(struct br_rush_net *n, uint32_t c)
{
    struct conn *k = &n->conns[c];
    for (;;) {
        struct iovec io = {n->rbuf, sizeof n->rbuf};
        union {
            char buf[CMSG_SPACE(sizeof(struct timespec))];
            struct cmsghdr align;
        } ctl;
        struct msghdr m = {.msg_iov = &io, .msg_iovlen = 1, .msg_control = ctl.buf,
                           .msg_controllen = sizeof ctl.buf};
        ssize_t got = recvmsg(k->fd, &m, 0);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return;
        }
        if (got <= 0 || k->state != CS_BUSY) {
            pool_broken(n, c); /* EOF or an error; bytes on an idle connection: close */
            return;
        }
        k->got_bytes = true;
        int64_t rx = rx_now_us(&m);
        if (rx > 0) {
            k->rx_us = rx;
        }
        struct feed_ctx f = {n, c, false};
        size_t used = 0;
        char why[96] = "";
        int rc = br_rush_http_feed(&k->resp, n->rbuf, (size_t)got, &used, pool_body, &f, why);
        if (rc == BR_RUSH_PARSE_ERROR || f.broken) {
            rq_finish(n, c, 0, BR_RUSH_NET_PROTOCOL, false);
            return;
        }
        if (rc == BR_RUSH_PARSE_DONE) {
            /* Bytes after the answer were never asked for: do not reuse. */
            rq_finish(n, c, k->resp.status, BR_RUSH_NET_OK, used == (size_t)got);
            return;
        }
    }
}

int br_rush_net_send(struct br_rush_net *n, const struct br_rush_req *q, br_rush_resp_fn fn, void *ctx)
{
    BR_ASSERT(q->pool < BR_RUSH_POOL_COUNT && fn != NULL && q->method != NULL && q->path != NULL);
    if (n->queued[q->pool] >= BR_RUSH_QUEUE_MAX) {
        return BR_E_FULL;
    }
    uint32_t t = q->target;
    if (t == UINT32_MAX) {
        t = n->rr[q->pool]++ % n->target_count;
    }
    BR_ASSERT(t < n->target_count);
    uint32_t i = rq_alloc(n);
    if (i == NONE) {
        return BR_E_FULL;
    }
    if (rq_format(n, i, &n->targets[t], q, NULL, NULL) != BR_OK) {
        rq_release(n, i);
        return BR_E_FULL;
    }
    struct rq *r = rq_at(n, i);
    r->fn = fn;
    r->ctx = ctx;
    r->route = q->route;
    r->timeout_ms = q->timeout_ms != 0 ? q->timeout_ms : 10000;
    r->lane = q->pool * n->target_count + t;
    r->queued_at_us = br_rush_now_us();
    r->sent_us = 0;
    struct lane *l = &n->lanes[r->lane];
    lane_push(n, l, i, false);
    lane_pump(n, l);
    return BR_OK;
}

/* ---- streams ---- */

static uint32_t stream_of(const struct br_rush_net *n, uint32_t c)
{
    BR_ASSERT(c >= n->conns_pool && c < n->conns_total);
    return c - n->conns_pool;
}

/* Closes the stream's connection and frees its slot; no callback. */
static void stream_free(struct br_rush_net *n, uint32_t s)
{
    struct stream *st = &n->streams[s];
    uint32_t c = n->conns_pool + s;
    struct conn *k = &n->conns[c];
    BR_ASSERT(st->used && !st->busy);
    conn_close(n, c);
    if (k->rq != NONE) {
        rq_release(n, k->rq);
        k->rq = NONE;
    }
    st->used = false;
    st->closing = false;
    st->fn = NULL;
    st->next_free = n->stream_free;
    n->stream_free = s;
    BR_ASSERT(n->streams_open > 0);
    n->streams_open--;
}

/* END or CUT: the slot is free again before the callback runs. */
static void stream_end(struct br_rush_net *n, uint32_t s, int kind)
{
    struct stream *st = &n->streams[s];
    br_rush_stream_fn fn = st->fn;
    void *ctx = st->ctx;
    int status = n->conns[n->conns_pool + s].resp.status;
    stream_free(n, s);
    fn(ctx, s, kind, status, NULL);
}

static void stream_open_cb(struct br_rush_net *n, uint32_t s)
{
    struct stream *st = &n->streams[s];
    if (!st->open_sent && !st->closing) {
        st->open_sent = true;
        st->fn(st->ctx, s, BR_RUSH_STREAM_OPEN, n->conns[n->conns_pool + s].resp.status, NULL);
    }
}

static void stream_event(void *ctx, const struct br_rush_sse_event *ev)
{
    struct feed_ctx *f = ctx;
    uint32_t s = stream_of(f->n, f->c);
    struct stream *st = &f->n->streams[s];
    if (!st->closing) {
        st->fn(st->ctx, s, BR_RUSH_STREAM_EVENT, f->n->conns[f->c].resp.status, ev);
    }
}

static void stream_body(void *ctx, const char *bytes, size_t len)
{
    struct feed_ctx *f = ctx;
    uint32_t s = stream_of(f->n, f->c);
    struct stream *st = &f->n->streams[s];
    stream_open_cb(f->n, s);
    if (st->closing || f->broken || f->n->conns[f->c].resp.status != 200) {
        return; /* a refused stream's body is not an event stream */
    }
    if (br_rush_sse_feed(&st->sse, bytes, len, stream_event, f) != 0) {
        f->broken = true;
    }
}

static void stream_read(struct br_rush_net *n, uint32_t c)
{
    struct conn *k = &n->conns[c];
    uint32_t s = stream_of(n, c);
    struct stream *st = &n->streams[s];
    for (;;) {
        ssize_t got = recv(k->fd, n->rbuf, sizeof n->rbuf, 0);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return;
        }
        if (got <= 0) {
            bool ended = got == 0 && br_rush_http_eof(&k->resp) == BR_RUSH_PARSE_DONE;
            stream_end(n, s, ended ? BR_RUSH_STREAM_END : BR_RUSH_STREAM_CUT);
            return;
        }
        deadline_set(n, c, br_rush_now_us() + (int64_t)st->idle_ms * 1000);
        struct feed_ctx f = {n, c, false};
        size_t used = 0;
        char why[96] = "";
        st->busy = true;
        int rc = br_rush_http_feed(&k->resp, n->rbuf, (size_t)got, &used, stream_body, &f, why);
        if (k->resp.headers_done) {
            stream_open_cb(n, s);
        }
        st->busy = false;
        if (st->closing) {
            stream_free(n, s);
            return;
        }
        if (rc == BR_RUSH_PARSE_ERROR || f.broken) {
            stream_end(n, s, BR_RUSH_STREAM_CUT);
            return;
        }
        if (rc == BR_RUSH_PARSE_DONE) {
            stream_end(n, s, BR_RUSH_STREAM_END);
            return;
        }
    }
}

int br_rush_net_stream_open(struct br_rush_net *n, uint32_t target, const char *path, const char *token,
                            const char *last_id, uint32_t idle_ms, br_rush_stream_fn fn, void *ctx,
                            uint32_t *stream)
{
    BR_ASSERT(path != NULL && fn != NULL);
    if (n->stream_free == NONE) {
        return BR_E_FULL;
    }
    uint32_t t = target == UINT32_MAX ? n->rr[BR_RUSH_POOL_CROWD]++ % n->target_count : target;
    BR_ASSERT(t < n->target_count);
    uint32_t i = rq_alloc(n);
    if (i == NONE) {
        return BR_E_FULL;
    }
    struct br_rush_req q = {.method = "GET", .path = path, .token = token};
    if (rq_format(n, i, &n->targets[t], &q, "text/event-stream", last_id) != BR_OK) {
        rq_release(n, i);
        return BR_E_FULL;
    }
    uint32_t s = n->stream_free;
    struct stream *st = &n->streams[s];
    n->stream_free = st->next_free;
    st->used = true;
    st->open_sent = st->busy = st->closing = false;
    st->fn = fn;
    st->ctx = ctx;
    st->idle_ms = idle_ms != 0 ? idle_ms : 45000;
    br_rush_sse_init(&st->sse);
    struct conn *k = &n->conns[n->conns_pool + s];
    k->rq = i;
    rq_at(n, i)->sent_us = 0;
    br_rush_http_resp_init(&k->resp);
    conn_dial(n, n->conns_pool + s, t);
    n->streams_open++;
    n->stats.streams_opened++;
    if (n->streams_open > n->stats.streams_peak) {
        n->stats.streams_peak = n->streams_open;
    }
    *stream = s;
    return BR_OK;
}

void br_rush_net_stream_close(struct br_rush_net *n, uint32_t stream)
{
    BR_ASSERT(stream < n->streams_max);
    struct stream *st = &n->streams[stream];
    if (!st->used) {
        return;
    }
    if (st->busy) {
        st->closing = true; /* from its own callback: freed when its parser returns */
        return;
    }
    stream_free(n, stream);
}

uint32_t br_rush_net_streams_open(const struct br_rush_net *n)
{
    return n->streams_open;
}

void br_rush_net_stats(const struct br_rush_net *n, struct br_rush_net_stats *out)
{
    *out = n->stats;
}

/* ---- timers, deadlines and the loop ---- */

void br_rush_net_timer_set(struct br_rush_net *n, uint32_t timer, int64_t at_us)
{
    BR_ASSERT(timer < n->timers_max);
    if (n->timer_pos[timer] != BR_HEAP_NOWHERE) {
        br_heap_remove(&n->timers, timer);
    }
    int rc = br_heap_push(&n->timers, timer, at_us, n->seq++);
    BR_ASSERT(rc == BR_OK);
}

void br_rush_net_timer_cancel(struct br_rush_net *n, uint32_t timer)
{
    BR_ASSERT(timer < n->timers_max);
    if (n->timer_pos[timer] != BR_HEAP_NOWHERE) {
        br_heap_remove(&n->timers, timer);
    }
}

/* A connection's deadline passed (or a failure was parked on it). */
static void deadline_fire(struct br_rush_net *n, uint32_t c)
{
    struct conn *k = &n->conns[c];
    bool connecting = k->state == CS_CONNECTING;
    uint8_t fail = k->fail;
    if (connecting && fail == FAIL_NONE) {
        n->stats.connect_errors++; /* timed out */
    } else if (!connecting && fail == FAIL_NONE) {
        n->stats.timeouts++;
    }
    if (k->stream) {
        stream_end(n, stream_of(n, c), BR_RUSH_STREAM_CUT);
    } else if (connecting) {
        rq_finish(n, c, 0, BR_RUSH_NET_CONNECT, false);
    } else if (fail == FAIL_BROKEN) {
        pool_broken(n, c);
    } else {
        rq_finish(n, c, 0, BR_RUSH_NET_TIMEOUT, false);
    }
}

static void fire_due(struct br_rush_net *n, int64_t now)
{
    for (uint32_t k = 0; k < n->conns_total; k++) {
        const struct br_heap_node *top = br_heap_top(&n->deadlines);
        if (top == NULL || top->deadline_ms > now) {
            break;
        }
        uint32_t c = top->item;
        br_heap_remove(&n->deadlines, c);
        deadline_fire(n, c);
    }
    for (uint32_t k = 0; k < TIMERS_TURN_MAX; k++) {
        const struct br_heap_node *top = br_heap_top(&n->timers);
        if (top == NULL || top->deadline_ms > now) {
            break;
        }
        uint32_t t = top->item;
        br_heap_remove(&n->timers, t);
        n->on_timer(n->timer_ctx, t);
    }
}

/* The connect finished (or failed). Returns false when c is gone. */
static bool conn_connected(struct br_rush_net *n, uint32_t c, uint32_t events)
{
    struct conn *k = &n->conns[c];
    int err = 0;
    socklen_t len = sizeof err;
    if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) == 0) {
        return false;
    }
    if (getsockopt(k->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0 || (events & EPOLLERR) != 0) {
        n->stats.connect_errors++;
        k->fail = FAIL_CONNECT;
        if (k->stream) {
            stream_end(n, stream_of(n, c), BR_RUSH_STREAM_CUT);
        } else {
            rq_finish(n, c, 0, BR_RUSH_NET_CONNECT, false);
        }
        return false;
    }
    k->state = CS_BUSY;
    uint32_t ms = k->stream ? n->streams[stream_of(n, c)].idle_ms : rq_at(n, k->rq)->timeout_ms;
    deadline_set(n, c, br_rush_now_us() + (int64_t)ms * 1000);
    return true;
}

static void conn_event(struct br_rush_net *n, uint64_t data, uint32_t events)
{
    uint32_t c = (uint32_t)data;
    BR_ASSERT(c < n->conns_total);
    struct conn *k = &n->conns[c];
    if (k->fd < 0 || k->gen != (uint32_t)(data >> 32) || k->fail != FAIL_NONE) {
        return; /* an event of a connection closed earlier in this turn, or a parked failure */
    }
    if (k->state == CS_CONNECTING && !conn_connected(n, c, events)) {
        return;
    }
    if (k->state == CS_BUSY && conn_write(n, c) != 0) {
        if (k->stream) {
            stream_end(n, stream_of(n, c), BR_RUSH_STREAM_CUT);
        } else {
            pool_broken(n, c);
        }
        return;
    }
    if (k->stream) {
        stream_read(n, c);
    } else {
        pool_read(n, c);
    }
}

int br_rush_net_run(struct br_rush_net *n, int64_t until_us, bool (*done)(void *), void *ctx)
{
    struct epoll_event evs[EVENTS_TURN];
    for (;;) {
        if (done != NULL && done(ctx)) {
            return BR_OK;
        }
        int64_t now = br_rush_now_us();
        if (now >= until_us) {
            return BR_OK;
        }
        fire_due(n, now);
        int64_t next = until_us < now + WAIT_MAX_MS * 1000 ? until_us : now + WAIT_MAX_MS * 1000;
        const struct br_heap_node *d = br_heap_top(&n->deadlines);
        const struct br_heap_node *t = br_heap_top(&n->timers);
        if (d != NULL && d->deadline_ms < next) {
            next = d->deadline_ms;
        }
        if (t != NULL && t->deadline_ms < next) {
            next = t->deadline_ms;
        }
        now = br_rush_now_us();
        int wait_ms = next <= now ? 0 : (int)((next - now + 999) / 1000);
        int got = epoll_wait(n->ep, evs, EVENTS_TURN, wait_ms);
        if (got < 0 && errno != EINTR) {
            fprintf(stderr, "rush: epoll_wait: %s\n", strerror(errno));
            return BR_E_IO;
        }
        for (int e = 0; e < got; e++) {
            conn_event(n, evs[e].data.u64, evs[e].events);
        }
    }
}

/* ---- life cycle ---- */

static int lanes_init(struct br_rush_net *n, const struct br_rush_net_config *cfg)
{
    uint32_t lanes = BR_RUSH_POOL_COUNT * n->target_count, first = 0;
    n->lanes = calloc(lanes, sizeof *n->lanes);
    if (n->lanes == NULL) {
        return BR_E_FULL;
    }
    for (uint32_t p = 0; p < BR_RUSH_POOL_COUNT; p++) {
        uint32_t want = cfg->pool_conns[p] != 0 ? cfg->pool_conns[p] : 1;
        for (uint32_t t = 0; t < n->target_count; t++) {
            struct lane *l = &n->lanes[p * n->target_count + t];
            l->pool = p;
            l->target = t;
            l->count = want / n->target_count + (t < want % n->target_count ? 1 : 0);
            l->count = l->count != 0 ? l->count : 1;
            l->first = first;
            first += l->count;
            l->q_head = l->q_tail = l->idle_head = l->closed_head = NONE;
        }
    }
    n->conns_pool = first;
    return BR_OK;
}

static int tables_init(struct br_rush_net *n)
{
    n->conns_total = n->conns_pool + n->streams_max;
    n->conns = calloc(n->conns_total, sizeof *n->conns);
    n->streams = calloc(n->streams_max != 0 ? n->streams_max : 1, sizeof *n->streams);
    n->deadline_nodes = calloc(n->conns_total, sizeof *n->deadline_nodes);
    n->deadline_pos = malloc(n->conns_total * sizeof *n->deadline_pos);
    n->timer_nodes = calloc(n->timers_max != 0 ? n->timers_max : 1, sizeof *n->timer_nodes);
    n->timer_pos = malloc((n->timers_max != 0 ? n->timers_max : 1) * sizeof *n->timer_pos);
    n->chunk_max = (3 * BR_RUSH_QUEUE_MAX + n->conns_total) / RQ_CHUNK + 1;
    n->chunks = calloc(n->chunk_max, sizeof *n->chunks);
    if (n->conns == NULL || n->streams == NULL || n->deadline_nodes == NULL || n->deadline_pos == NULL ||
        n->timer_nodes == NULL || n->timer_pos == NULL || n->chunks == NULL) {
        return BR_E_FULL;
    }
    memset(n->deadline_pos, 0xff, n->conns_total * sizeof *n->deadline_pos);
    memset(n->timer_pos, 0xff, (n->timers_max != 0 ? n->timers_max : 1) * sizeof *n->timer_pos);
    br_heap_init(&n->deadlines, n->deadline_nodes, n->conns_total, n->deadline_pos);
    br_heap_init(&n->timers, n->timer_nodes, n->timers_max, n->timer_pos);
    for (uint32_t c = 0; c < n->conns_total; c++) {
        struct conn *k = &n->conns[c];
        k->fd = -1;
        k->rq = k->prev = k->next = NONE;
        k->stream = c >= n->conns_pool;
    }
    for (uint32_t l = BR_RUSH_POOL_COUNT * n->target_count; l-- > 0;) {
        struct lane *ln = &n->lanes[l];
        for (uint32_t c = ln->first + ln->count; c-- > ln->first;) {
            n->conns[c].lane = l;
            n->conns[c].next = ln->closed_head;
            ln->closed_head = c;
        }
    }
    n->stream_free = NONE;
    for (uint32_t s = n->streams_max; s-- > 0;) {
        n->streams[s].next_free = n->stream_free;
        n->stream_free = s;
    }
    n->rq_free = NONE;
    return BR_OK;
}

int br_rush_net_new(struct br_rush_net **out, const struct br_rush_net_config *cfg, br_rush_timer_fn on_timer,
                    void *timer_ctx)
{
    *out = NULL;
    if (cfg->target_count == 0 || cfg->targets == NULL) {
        return BR_E_INVALID;
    }
    struct br_rush_net *n = calloc(1, sizeof *n);
    if (n == NULL) {
        return BR_E_FULL;
    }
    n->ep = epoll_create1(EPOLL_CLOEXEC);
    n->target_count = cfg->target_count;
    n->streams_max = cfg->streams_max;
    n->timers_max = cfg->timers_max;
    n->connect_timeout_ms = cfg->connect_timeout_ms != 0 ? cfg->connect_timeout_ms : CONNECT_TIMEOUT_MS_DEFAULT;
    n->on_timer = on_timer;
    n->timer_ctx = timer_ctx;
    n->targets = calloc(cfg->target_count, sizeof *n->targets);
    int rc = n->ep < 0 || n->targets == NULL ? BR_E_IO : BR_OK;
    for (uint32_t t = 0; rc == BR_OK && t < cfg->target_count; t++) {
        rc = target_resolve(&n->targets[t], cfg->targets[t]);
    }
    if (rc == BR_OK) {
        rc = lanes_init(n, cfg);
    }
    if (rc == BR_OK) {
        rc = tables_init(n);
    }
    if (rc != BR_OK) {
        br_rush_net_free(n);
        return rc;
    }
    BR_ASSERT(n->timers_max == 0 || on_timer != NULL);
    *out = n;
    return BR_OK;
}

void br_rush_net_free(struct br_rush_net *n)
{
    if (n == NULL) {
        return;
    }
    for (uint32_t c = 0; n->conns != NULL && c < n->conns_total; c++) {
        if (n->conns[c].fd >= 0) {
            close(n->conns[c].fd);
        }
        free(n->conns[c].body);
    }
    for (uint32_t k = 0; k < n->chunk_count; k++) {
        for (uint32_t i = 0; i < RQ_CHUNK; i++) {
            if (n->chunks[k][i].text_owned) {
                free(n->chunks[k][i].text);
            }
        }
        free(n->chunks[k]);
    }
    if (n->ep >= 0) {
        close(n->ep);
    }
    free(n->chunks);
    free(n->conns);
    free(n->streams);
    free(n->deadline_nodes);
    free(n->deadline_pos);
    free(n->timer_nodes);
    free(n->timer_pos);
    free(n->lanes);
    free(n->targets);
    free(n);
}
