/*
 * http.c -- libmicrohttpd behind the request/response API of http.h.
 *
 * Threading. libmicrohttpd runs `threads` event loops (epoll), each owning
 * its connections. Everything about one request happens on its connection's
 * loop thread, except br_http_respond after br_http_defer and
 * br_http_stream_wake, which come from other threads (the journal flusher,
 * the queue fan-out). Those meet the loop thread under the request's mutex:
 *
 *   - deferral: after the handler returns, the loop thread takes the mutex;
 *     if the answer is already there it queues it at once, otherwise it
 *     suspends the connection and sets `suspended`. br_http_respond stores
 *     the answer under the mutex and resumes the connection if `suspended`
 *     is set. Either way exactly one side sees the other's write.
 *   - streams (turbo): queue_answer duplicates the socket and returns MHD_NO
 *     (take_stream); libmicrohttpd closes its side without shutting the
 *     socket down and calls on_completed, which hands the stream to a stream
 *     loop (http_stream.h) and sets `stream` under the mutex. From then on
 *     br_http_stream_wake pokes the loop, which pulls under the mutex, and
 *     the loop thread runs cfg.closed when the stream is over.
 *   - streams (no turbo): the content reader pulls under the mutex and, when
 *     nothing is ready, suspends the connection and sets `suspended` before
 *     unlocking; br_http_stream_wake resumes it under the same mutex.
 *
 * A suspended connection never times out and is never closed by the peer's
 * disconnect (libmicrohttpd cannot see it), so every deferral must end in a
 * respond and every stream in an end (the server guarantees both).
 *
 * Framing. on_access's first call checks the framing headers (all values,
 * not only the first) and refuses what could be read two ways (http.h).
 * A malformed Content-Length never reaches on_access: libmicrohttpd 0.9.75
 * queues its own 400/413 in parse_connection_headers, then builds the
 * header block a second time when it sends it. Its only hook on that path
 * is the error logger, called on the connection's thread just before; the
 * connection is the last one whose request line was parsed on that thread
 * (on_uri remembers it, on_connection forgets it when it closes). The
 * logger checks that this connection does carry a malformed Content-Length,
 * writes one complete 400 to its socket and shuts the sending side, so
 * libmicrohttpd's doubled answer is never sent (its writes fail and it
 * closes the connection).
 */
#define _DEFAULT_SOURCE

#include "adapters/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "adapters/clock.h"
#include "adapters/http_stream.h"
#include "core/err.h"
#include "core/panic.h"

#define BODY_INITIAL_CAP 1024u   /* first body allocation; doubles up to body_max */
#define HEADER_NAME_MAX 32u      /* bytes per extra header name, incl. NUL */
#define STREAM_BLOCK_SIZE 4096u  /* bytes libmicrohttpd asks a stream for at once */
#define RAW_ANSWER_MAX 512u      /* bytes of an answer written straight to the socket */
#define STREAM_HEAD_MAX 2048u    /* a taken-over stream's response header block */

struct br_http_server {
    struct br_http_config cfg;
    struct MHD_Daemon *daemon;
    uint16_t port;
    atomic_uint inflight; /* requests created, not closed */
    atomic_uint awaiting; /* requests created, their answer not yet queued */
    atomic_bool quiesced; /* set once: new connections are closed at accept */
    atomic_uint conns;    /* libmicrohttpd's connections (started, not closed or taken over) */
    struct br_http_streams *streams; /* the stream loops (turbo only), or NULL */
};

enum answer_kind { ANSWER_NONE = 0, ANSWER_BODY, ANSWER_STATIC, ANSWER_STREAM };

/* One per libmicrohttpd connection (its socket context): whether its
 * stream was taken over, so that `conns` counts it down once. */
struct conn_note {
    bool taken;
};

struct extra_header {
    char name[HEADER_NAME_MAX];
    char value[BR_HTTP_HEADER_VALUE_MAX];
};

struct br_http_req {
    struct br_http_server *srv;
    struct MHD_Connection *conn;
    const char *method; /* owned by libmicrohttpd, valid for the request */
    const char *path;
    char *body;         /* NUL-terminated; NULL when empty */
    size_t body_len;
    size_t body_cap;
    bool too_large;
    size_t drained;     /* bytes of an oversized body read and dropped */
    bool handled;       /* the handler ran */
    bool queued;        /* the answer went to libmicrohttpd */
    bool close_after;   /* answer with Connection: close */
    char peer[BR_HTTP_ADDR_MAX];
    int64_t started_us;
    void *app;
    bool http10;        /* an HTTP/1.0 request: a stream is close-delimited */
    bool head;          /* a HEAD request: a stream sends its header only */
    /* A stream taken over from libmicrohttpd (http_stream.h): set on the
     * loop thread when its answer is queued, handed over in on_completed. */
    bool taken;
    int take_fd;        /* the duplicated socket, until handed over */
    char *take_head;    /* the response header block, until handed over */
    size_t take_head_len;
    char *own_strings;  /* method and path, copied: libmicrohttpd's are gone */
    struct conn_note *note; /* the connection's, until handed over */

    pthread_mutex_t mu; /* guards everything below against other threads */
    bool suspended;     /* the connection is suspended by us */
    bool resumed;       /* br_http_resume was called: run cfg.resumed */
    enum answer_kind kind;
    unsigned status;
    const char *content_type; /* static strings only */
    char *resp_body;          /* ANSWER_BODY: owned; ANSWER_STATIC: borrowed */
    size_t resp_len;
    br_http_pull_fn pull;
    void *pull_cls;
    struct br_http_stream *stream; /* once taken over; wakes poke it */
    unsigned header_count;
    struct extra_header headers[BR_HTTP_HEADERS_MAX];
};

static void peer_text(struct MHD_Connection *conn, char *out, size_t cap)
{
    snprintf(out, cap, "unknown");
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci == NULL || ci->client_addr == NULL) {
        return;
    }
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        inet_ntop(AF_INET, &in->sin_addr, out, (socklen_t)cap);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, out, (socklen_t)cap);
        /* An IPv4 client on a dual-stack socket reads better as IPv4. */
        if (strncmp(out, "::ffff:", 7) == 0 && strchr(out + 7, '.') != NULL) {
            memmove(out, out + 7, strlen(out + 7) + 1);
        }
    }
}

static struct br_http_req *req_new(struct br_http_server *s, struct MHD_Connection *conn,
                                   const char *method, const char *path)
{
    struct br_http_req *r = calloc(1, sizeof *r);
    if (r == NULL) {
        return NULL;
    }
    r->srv = s;
    r->conn = conn;
    r->method = method;
    r->path = path;
    r->started_us = br_clock_mono_us();
    peer_text(conn, r->peer, sizeof r->peer);
    r->take_fd = -1;
    pthread_mutex_init(&r->mu, NULL);
    atomic_fetch_add(&s->inflight, 1u);
    atomic_fetch_add(&s->awaiting, 1u);
    return r;
}

static void req_free(struct br_http_req *r)
{
    if (r->kind == ANSWER_BODY) {
        free(r->resp_body);
    }
    free(r->body);
    free(r->take_head);
    free(r->own_strings);
    if (r->take_fd >= 0) {
        close(r->take_fd);
    }
    pthread_mutex_destroy(&r->mu);
    free(r);
}

/* Appends upload data; marks the request too large past body_max. */
static void body_append(struct br_http_req *r, const char *data, size_t len)
{
    size_t max = r->srv->cfg.body_max;
    if (r->too_large || len > max - r->body_len) {
        r->too_large = true;
        return;
    }
    size_t need = r->body_len + len + 1;
    if (need > r->body_cap) {
        size_t cap = r->body_cap ? r->body_cap : BODY_INITIAL_CAP;
        for (unsigned i = 0; i < 64 && cap < need; i++) {
            cap *= 2;
        }
        char *nb = realloc(r->body, cap);
        if (nb == NULL) {
            r->too_large = true; /* out of memory reads as too large: never a crash */
            return;
        }
        r->body = nb;
        r->body_cap = cap;
    }
    memcpy(r->body + r->body_len, data, len);
    r->body_len += len;
    r->body[r->body_len] = '\0';
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    struct br_http_req *r = cls;
    pthread_mutex_lock(&r->mu);
    ssize_t n = r->pull(r->pull_cls, buf, max);
    if (n == 0) {
        /* Nothing to send: park the connection until br_http_stream_wake. */
        MHD_suspend_connection(r->conn);
        r->suspended = true;
    }
    pthread_mutex_unlock(&r->mu);
    if (n < 0) {
        return MHD_CONTENT_READER_END_OF_STREAM;
    }
    return n;
}

/* Set on a loop thread while libmicrohttpd closes a connection whose
 * stream was taken over: its "internal error" line is not one. */
static _Thread_local bool tl_taking_over;

/* The response header block of a taken-over stream, as libmicrohttpd
 * would write it (status line, Date, the application's headers), with the
 * framing stated: chunked for HTTP/1.1, and Connection: close (the stream's
 * end closes the connection). Returns its length, 0 if it does not fit. */
static size_t stream_head(const struct br_http_req *r, char *out, size_t cap)
{
    char date[64];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    int n = snprintf(out, cap, "HTTP/1.%c 200 OK\r\nDate: %s\r\nConnection: close\r\n%s",
                     r->http10 ? '0' : '1', date,
                     r->http10 ? "" : "Transfer-Encoding: chunked\r\n");
    size_t len = n > 0 ? (size_t)n : cap;
    if (r->content_type != NULL && len < cap) {
        n = snprintf(out + len, cap - len, "Content-Type: %s\r\n", r->content_type);
        len += n > 0 ? (size_t)n : cap;
    }
    for (unsigned i = 0; i < r->header_count && len < cap; i++) {
        n = snprintf(out + len, cap - len, "%s: %s\r\n", r->headers[i].name,
                     r->headers[i].value);
        len += n > 0 ? (size_t)n : cap;
    }
    if (len < cap) {
        n = snprintf(out + len, cap - len, "\r\n");
        len += n > 0 ? (size_t)n : cap;
    }
    return len < cap ? len : 0;
}

/* Takes a stream's connection away from libmicrohttpd (see http_stream.h):
 * duplicates the socket, keeps the header block, and returns MHD_NO so that
 * libmicrohttpd forgets the connection (TURBO: it does not shut the socket
 * down, and closing its descriptor leaves ours open). on_completed, which
 * libmicrohttpd calls next, hands the stream to a stream loop. A failure
 * closes the connection as an error would. Loop thread only. */
static enum MHD_Result take_stream(struct br_http_req *r)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    char head[STREAM_HEAD_MAX];
    size_t hlen = stream_head(r, head, sizeof head);
    size_t ml = strlen(r->method);
    size_t pl = strlen(r->path);
    char *strings = malloc(ml + pl + 2);
    char *copy = hlen > 0 ? malloc(hlen) : NULL;
    int fd = ci != NULL ? fcntl(ci->connect_fd, F_DUPFD_CLOEXEC, 0) : -1;
    if (strings == NULL || copy == NULL || fd < 0) {
        free(strings);
        free(copy);
        if (fd >= 0) {
            close(fd);
        }
        return MHD_NO;
    }
    memcpy(strings, r->method, ml + 1);
    memcpy(strings + ml + 1, r->path, pl + 1);
    memcpy(copy, head, hlen);
    r->own_strings = strings;
    r->method = strings;
    r->path = strings + ml + 1;
    r->take_head = copy;
    r->take_head_len = hlen;
    const union MHD_ConnectionInfo *sc =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    r->note = sc != NULL ? sc->socket_context : NULL;
    r->take_fd = fd;
    r->taken = true;
    r->queued = true;
    atomic_fetch_sub(&r->srv->awaiting, 1u);
    tl_taking_over = true;
    return MHD_NO;
}

static ssize_t taken_pull(void *cls, char *buf, size_t max)
{
    struct br_http_req *r = cls;
    pthread_mutex_lock(&r->mu);
    ssize_t n = r->pull(r->pull_cls, buf, max);
    pthread_mutex_unlock(&r->mu);
    return n;
}

static void req_closed(struct br_http_req *r)
{
    struct br_http_server *s = r->srv;
    if (s->cfg.closed != NULL) {
        s->cfg.closed(s->cfg.ctx, r);
    }
    if (!r->queued) {
        atomic_fetch_sub(&s->awaiting, 1u); /* closed before its answer */
    }
    req_free(r);
    atomic_fetch_sub(&s->inflight, 1u);
}

static void taken_done(void *cls)
{
    req_closed(cls);
}

/* libmicrohttpd is done with a taken-over stream's connection: start the
 * stream on a loop. False when it cannot (out of memory): the request
 * closes as any other. */
static bool hand_over(struct br_http_req *r)
{
    int fd = r->take_fd;
    r->take_fd = -1;
    r->conn = NULL;
    struct br_http_stream *st =
        br_http_stream_new(r->srv->streams, fd, r->take_head, r->take_head_len, !r->http10,
                           r->head, taken_pull, taken_done, r);
    free(r->take_head);
    r->take_head = NULL;
    if (st == NULL) {
        return false;
    }
    if (r->note != NULL) {
        /* Counted as a stream from here (br_http_stream_new), no longer
         * as a connection of libmicrohttpd's, which closes it soon. */
        r->note->taken = true;
        atomic_fetch_sub(&r->srv->conns, 1u);
        r->note = NULL;
    }
    pthread_mutex_lock(&r->mu);
    r->stream = st;
    pthread_mutex_unlock(&r->mu);
    br_http_stream_poke(st); /* starts it: from here r belongs to the loop */
    return true;
}

/* Hands the stored answer to libmicrohttpd. Loop thread only. */
static enum MHD_Result queue_answer(struct br_http_req *r)
{
    struct MHD_Response *resp = NULL;
    switch (r->kind) {
    case ANSWER_BODY:
        resp = MHD_create_response_from_buffer(r->resp_len, r->resp_body, MHD_RESPMEM_MUST_FREE);
        if (resp != NULL) {
            r->resp_body = NULL; /* libmicrohttpd frees it now */
            r->kind = ANSWER_STATIC;
        }
        break;
    case ANSWER_STATIC:
        resp = MHD_create_response_from_buffer(r->resp_len, r->resp_body, MHD_RESPMEM_PERSISTENT);
        break;
    case ANSWER_STREAM:
        if (r->srv->streams != NULL) {
            return take_stream(r);
        }
        resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, STREAM_BLOCK_SIZE,
                                                 stream_reader, r, NULL);
        break;
    case ANSWER_NONE:
        break;
    }
    if (resp == NULL) {
        return MHD_NO; /* out of memory: libmicrohttpd closes the connection */
    }
    if (r->content_type != NULL) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->content_type);
    }
    for (unsigned i = 0; i < r->header_count; i++) {
        MHD_add_response_header(resp, r->headers[i].name, r->headers[i].value);
    }
    if (r->close_after || r->too_large) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    }
    r->queued = true;
    atomic_fetch_sub(&r->srv->awaiting, 1u);
    enum MHD_Result rc = MHD_queue_response(r->conn, r->status, resp);
    MHD_destroy_response(resp);
    return rc;
}

/* ---- framing (see the header comment) ---- */

struct framing {
    unsigned cl_count;
    const char *cl;  /* the first Content-Length value: the one libmicrohttpd uses */
    bool cl_differ;  /* a later Content-Length says something else */
    bool cl_bad;     /* a Content-Length value is not a decimal number below 2^64 */
    unsigned te_count;
    const char *te;  /* the first Transfer-Encoding value */
};

/* Parses a Content-Length value as libmicrohttpd does (digits only, at
 * least one, below 2^64). */
static bool length_parse(const char *v, uint64_t *out)
{
    uint64_t n = 0;
    size_t i = 0;
    for (; v[i] >= '0' && v[i] <= '9'; i++) {
        uint64_t d = (uint64_t)(v[i] - '0');
        if (n > (UINT64_MAX - d) / 10) {
            return false;
        }
        n = n * 10 + d;
    }
    *out = n;
    return i > 0 && v[i] == '\0';
}

static enum MHD_Result framing_scan(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value)
{
    (void)kind;
    struct framing *f = cls;
    const char *v = value != NULL ? value : "";
    uint64_t n = 0;
    if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) {
        if (f->cl_count++ == 0) {
            f->cl = v;
        } else if (strcmp(v, f->cl) != 0) {
            f->cl_differ = true;
        }
        f->cl_bad = f->cl_bad || !length_parse(v, &n);
    } else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0) {
        if (f->te_count++ == 0) {
            f->te = v;
        }
    }
    return MHD_YES;
}

static void framing_read(struct MHD_Connection *conn, struct framing *f)
{
    memset(f, 0, sizeof *f);
    MHD_get_connection_values(conn, MHD_HEADER_KIND, framing_scan, f);
}

/* A method is a token (RFC 9110 section 5.6.2). */
static bool method_ok(const char *m)
{
    static const char TCHAR[] = "!#$%&'*+-.^_`|~";
    if (m == NULL || m[0] == '\0') {
        return false;
    }
    for (const char *p = m; *p != '\0'; p++) {
        bool alnum = (*p >= '0' && *p <= '9') || (*p >= 'A' && *p <= 'Z') ||
                     (*p >= 'a' && *p <= 'z');
        if (!alnum && strchr(TCHAR, *p) == NULL) {
            return false;
        }
    }
    return true;
}

/* Why the request's framing cannot be trusted, or NULL when it can. */
static const char *framing_fault(const struct framing *f, const char *method)
{
    if (!method_ok(method)) {
        return "the method is not an HTTP token";
    }
    if (f->cl_differ) {
        return "conflicting Content-Length headers";
    }
    if (f->cl_bad) {
        return "Content-Length is not a decimal number below 2^64";
    }
    if (f->te_count > 0 && f->cl_count > 0) {
        return "Content-Length together with Transfer-Encoding";
    }
    if (f->te_count > 1) {
        return "more than one Transfer-Encoding header";
    }
    if (f->te_count == 1 && strcasecmp(f->te, "chunked") != 0) {
        return "the only Transfer-Encoding supported is chunked";
    }
    return NULL;
}

static size_t drain_max(const struct br_http_server *s)
{
    size_t max = s->cfg.body_max;
    return max > SIZE_MAX / BR_HTTP_DRAIN_FACTOR ? SIZE_MAX : max * BR_HTTP_DRAIN_FACTOR;
}

/* The adapter's own answers, in the application's error shape
 * ({"error":{"code":...,"message":...}}); message is a constant. */
static int error_body(char *buf, size_t cap, int err, const char *message)
{
    return snprintf(buf, cap, "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}", br_err_name(err),
                    message);
}

static void log_refusal(const struct br_http_server *s, const char *peer, const char *method,
                        const char *path, unsigned status, const char *why)
{
    if (!br_log_on(s->cfg.log, BR_LOG_WARN)) {
        return;
    }
    char m[64];
    char p[256];
    br_log_escape(method, m, sizeof m);
    br_log_escape(path, p, sizeof p);
    br_logf(s->cfg.log, BR_LOG_WARN, "request refused",
            "\"method\":\"%s\",\"path\":\"%s\",\"status\":%u,\"reason\":\"%s\",\"client\":\"%s\"", m,
            p, status, why, peer);
}

/* Answers err with Connection: close from the first call, without running
 * the handler. */
static enum MHD_Result refuse(struct br_http_req *r, int err, const char *why)
{
    char body[RAW_ANSWER_MAX];
    int n = error_body(body, sizeof body, err, why);
    BR_ASSERT(n > 0 && (size_t)n < sizeof body);
    r->handled = true;
    r->close_after = true;
    r->kind = ANSWER_BODY;
    r->status = br_err_http_status(err);
    r->content_type = "application/json";
    r->resp_len = (size_t)n;
    r->resp_body = malloc((size_t)n);
    if (r->resp_body == NULL) {
        return MHD_NO;
    }
    memcpy(r->resp_body, body, (size_t)n);
    log_refusal(r->srv, r->peer, r->method, r->path, r->status, why);
    return queue_answer(r);
}

/* Writes one whole answer straight to the connection's socket and shuts its
 * sending side, where libmicrohttpd cannot take an answer (see the header
 * comment; a chunked body past the drain bound). Its own later writes fail
 * and it closes the connection. The connection's loop thread only; best
 * effort (a full socket buffer cuts the answer). */
static void answer_raw(struct MHD_Connection *conn, int err, const char *why)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (ci == NULL) {
        return;
    }
    char body[RAW_ANSWER_MAX / 2];
    int blen = error_body(body, sizeof body, err, why);
    BR_ASSERT(blen > 0 && (size_t)blen < sizeof body);
    unsigned status = br_err_http_status(err);
    char msg[RAW_ANSWER_MAX];
    int n = snprintf(msg, sizeof msg,
                     "HTTP/1.1 %u %s\r\nConnection: close\r\nContent-Type: application/json\r\n"
                     "Content-Length: %d\r\n\r\n%s",
                     status, MHD_get_reason_phrase_for(status), blen, body);
    BR_ASSERT(n > 0 && (size_t)n < sizeof msg);
    ssize_t w = send(ci->connect_fd, msg, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)w; /* nothing more to do if the peer is gone or the buffer is full */
    shutdown(ci->connect_fd, SHUT_WR);
}

/* The connection whose request line this thread parsed last (on_uri), for
 * mhd_log; cleared when that connection closes (on_connection). Per loop
 * thread, touched by nothing else. */
static _Thread_local struct MHD_Connection *tl_last_request;

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    (void)cls;
    (void)uri;
    tl_last_request = conn;
    return NULL; /* on_access's first call still sees no request */
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    struct br_http_server *s = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        /* No note (out of memory): the connection counts until it closes. */
        *socket_context = calloc(1, sizeof(struct conn_note));
        atomic_fetch_add(&s->conns, 1u);
        return;
    }
    struct conn_note *note = *socket_context;
    if (note == NULL || !note->taken) {
        atomic_fetch_sub(&s->conns, 1u);
    }
    free(note);
    *socket_context = NULL;
    if (tl_last_request == conn) {
        tl_last_request = NULL;
    }
}

/* libmicrohttpd is about to answer a malformed Content-Length itself (and
 * badly): answer it here instead, if this thread's last request has one. */
static void length_refusal(struct br_http_server *s, const char *fmt)
{
    static const char *const PREFIXES[] = {"Failed to parse `Content-Length'",
                                           "Too large value of 'Content-Length'"};
    struct MHD_Connection *conn = tl_last_request;
    if (conn == NULL ||
        (strncmp(fmt, PREFIXES[0], strlen(PREFIXES[0])) != 0 &&
         strncmp(fmt, PREFIXES[1], strlen(PREFIXES[1])) != 0)) {
        return;
    }
    struct framing f;
    framing_read(conn, &f);
    uint64_t n = 0;
    if (f.cl_count == 0 || f.te_count > 0 || length_parse(f.cl, &n)) {
        return; /* not this connection: leave it to libmicrohttpd */
    }
    tl_last_request = NULL;
    char peer[BR_HTTP_ADDR_MAX];
    peer_text(conn, peer, sizeof peer);
    const char *why = "Content-Length is not a decimal number below 2^64";
    log_refusal(s, peer, "", "", br_err_http_status(BR_E_INVALID), why);
    answer_raw(conn, BR_E_INVALID, why);
}

int br_http_mhd_log_level(const char *line)
{
    /* libmicrohttpd 0.9.75's words for a send that found the peer gone: a
     * browser that closed its queue stream as the server ended it, which
     * thousands do in an opening's first second. Not a fault of anyone's. */
    static const char *const peer_gone[] = {"closed by remote peer", "no longer available for sending"};
    if (strncmp(line, "Failed to send ", 15) == 0) {
        for (size_t i = 0; i < sizeof peer_gone / sizeof peer_gone[0]; i++) {
            if (strstr(line, peer_gone[i]) != NULL) {
                return BR_LOG_DEBUG;
            }
        }
    }
    return BR_LOG_WARN;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    struct br_http_server *s = cls;
    if (tl_taking_over && strncmp(fmt, "Application reported internal error", 35) == 0) {
        return; /* a stream taken over (take_stream), not an error */
    }
    length_refusal(s, fmt);
    if (!br_log_on(s->cfg.log, BR_LOG_WARN)) {
        return; /* nothing from here is logged above warn, nor at debug without warn */
    }
    char line[512];
    char esc[1024];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == ' ')) {
        line[--n] = '\0';
    }
    int level = br_http_mhd_log_level(line);
    if (!br_log_on(s->cfg.log, (enum br_log_level)level)) {
        return;
    }
    br_log_escape(line, esc, sizeof esc);
    br_logf(s->cfg.log, (enum br_log_level)level, "libmicrohttpd", "\"detail\":\"%s\"", esc);
}

/* ---- the access handler ---- */

/* First call (headers only): refuses bad framing, sizes up the body.
 * Returns MHD_YES to read the body first, MHD_NO to drop the connection,
 * or sets *now to answer at once. */
static enum MHD_Result first_call(struct br_http_server *s, struct MHD_Connection *conn,
                                  const char *method, const char *url, const char *version,
                                  void **con_cls, bool *now)
{
    struct br_http_req *r = req_new(s, conn, method, url);
    if (r == NULL) {
        return MHD_NO;
    }
    *con_cls = r;
    r->http10 = strcmp(version, MHD_HTTP_VERSION_1_0) == 0;
    r->head = strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
    struct framing f;
    framing_read(conn, &f);
    const char *why = framing_fault(&f, method);
    if (why != NULL) {
        return refuse(r, BR_E_INVALID, why);
    }
    uint64_t declared = 0;
    if (f.cl_count > 0 && length_parse(f.cl, &declared) && declared > s->cfg.body_max) {
        /* Read and drop a body up to the drain bound, then answer 413, so
         * the client still sending it can read the answer; past the bound,
         * or when the client waits for 100 Continue before sending it,
         * answer now (libmicrohttpd then closes without reading it). */
        const char *expect = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                         MHD_HTTP_HEADER_EXPECT);
        bool waits = expect != NULL && strcasecmp(expect, "100-continue") == 0 &&
                     strcmp(version, MHD_HTTP_VERSION_1_1) == 0;
        r->too_large = true;
        *now = waits || declared > drain_max(s);
    }
    return MHD_YES;
}

/* A piece of the body: kept, or dropped once the body is too large. */
static enum MHD_Result body_piece(struct br_http_req *r, const char *data, size_t *size)
{
    if (!r->too_large) {
        body_append(r, data, *size);
    } else {
        r->drained += *size;
    }
    *size = 0;
    if (r->drained > drain_max(r->srv)) {
        /* No answer can be queued in the middle of a body: write it. */
        static const char WHY[] = "the request body is too large";
        log_refusal(r->srv, r->peer, r->method, r->path, 413, WHY);
        answer_raw(r->conn, BR_E_PAYLOAD_TOO_LARGE, WHY);
        return MHD_NO;
    }
    return MHD_YES;
}

/* After the handler: answer, park the connection, or run the application's
 * continuation. Bounded: each round answers, parks, or continues once. */
static enum MHD_Result settle(struct br_http_server *s, struct MHD_Connection *conn,
                              struct br_http_req *r)
{
    for (unsigned round = 0; round < 16; round++) {
        pthread_mutex_lock(&r->mu);
        if (r->kind != ANSWER_NONE) {
            pthread_mutex_unlock(&r->mu);
            return queue_answer(r);
        }
        if (r->resumed) {
            r->resumed = false;
            pthread_mutex_unlock(&r->mu);
            BR_ASSERT(s->cfg.resumed != NULL);
            s->cfg.resumed(s->cfg.ctx, r);
            continue;
        }
        /* Deferred: park the connection; respond or resume wakes it. */
        if (!r->suspended) {
            MHD_suspend_connection(conn);
            r->suspended = true;
        }
        pthread_mutex_unlock(&r->mu);
        return MHD_YES;
    }
    return MHD_NO; /* an application that keeps deferring: drop the connection */
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version,
                                 const char *upload_data, size_t *upload_data_size, void **con_cls)
{
    struct br_http_server *s = cls;
    struct br_http_req *r = *con_cls;
    if (r == NULL) {
        /* First call: headers only. Returning here (not answering) keeps the
         * connection alive; see the header comment. */
        bool now = false;
        enum MHD_Result rc = first_call(s, conn, method, url, version, con_cls, &now);
        r = *con_cls;
        if (rc == MHD_NO || !now || r->queued) {
            return rc;
        }
    }
    if (*upload_data_size > 0) {
        return body_piece(r, upload_data, upload_data_size);
    }
    if (r->queued) {
        return MHD_YES; /* already answered */
    }
    if (!r->handled) {
        r->handled = true;
        s->cfg.handler(s->cfg.ctx, r);
    }
    return settle(s, conn, r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)conn;
    (void)toe;
    (void)cls;
    struct br_http_req *r = *con_cls;
    if (r == NULL) {
        return;
    }
    *con_cls = NULL;
    if (r->taken) {
        tl_taking_over = false;
        if (hand_over(r)) {
            return;
        }
    }
    req_closed(r);
}

/* ---- the listening socket ---- */

static void log_listen_error(const struct br_http_config *cfg, const char *addr, const char *step,
                             int err)
{
    char esc[2 * BR_HTTP_ADDR_MAX];
    br_log_escape(addr, esc, sizeof esc);
    const char *hint = err == EADDRINUSE
                           ? "another server listens on this address and port; stop it, pick "
                             "another port, or start both with --reuse-port to share it"
                           : "";
    br_logf(cfg->log, BR_LOG_ERROR, "cannot listen",
            "\"addr\":\"%s\",\"port\":%u,\"step\":\"%s\",\"errno\":%d,\"reason\":\"%s\","
            "\"hint\":\"%s\"",
            esc, (unsigned)cfg->port, step, err, strerror(err), hint);
}

/* Opens, binds and listens on addr:port (see br_http_start for the socket
 * options). Returns the socket or -1 (logged); *v6 tells the family. */
static int listen_on(const struct br_http_config *cfg, const char *addr, bool *v6)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *in4 = (struct sockaddr_in *)(void *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)(void *)&ss;
    socklen_t len;
    if (inet_pton(AF_INET, addr, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons(cfg->port);
        len = sizeof *in4;
        *v6 = false;
    } else if (inet_pton(AF_INET6, addr, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(cfg->port);
        len = sizeof *in6;
        *v6 = true;
    } else {
        log_listen_error(cfg, addr, "address", EINVAL);
        return -1;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        log_listen_error(cfg, addr, "socket", errno);
        return -1;
    }
    int on = 1;
    const char *step = NULL;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0) {
        step = "SO_REUSEADDR";
    } else if (cfg->reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) != 0) {
        step = "SO_REUSEPORT";
    } else if (*v6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on) != 0) {
        step = "IPV6_V6ONLY";
    } else if (bind(fd, (struct sockaddr *)(void *)&ss, len) != 0) {
        step = "bind";
    } else if (listen(fd, SOMAXCONN) != 0) {
        step = "listen";
    }
    if (step != NULL) {
        int err = errno;
        close(fd);
        log_listen_error(cfg, addr, step, err);
        return -1;
    }
    return fd;
}

static uint16_t bound_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)(void *)&ss, &len) != 0) {
        return 0;
    }
    if (ss.ss_family == AF_INET6) {
        return ntohs(((struct sockaddr_in6 *)(void *)&ss)->sin6_port);
    }
    return ntohs(((struct sockaddr_in *)(void *)&ss)->sin_port);
}

static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen);

int br_http_start(struct br_http_server **out, const struct br_http_config *cfg)
{
    BR_ASSERT(out != NULL && cfg != NULL);
    *out = NULL;
    if (cfg->handler == NULL || cfg->threads == 0 || cfg->body_max == 0) {
        return BR_E_INVALID;
    }
    struct br_http_server *s = calloc(1, sizeof *s);
    if (s == NULL) {
        return BR_E_IO;
    }
    s->cfg = *cfg;
    atomic_init(&s->inflight, 0u);
    atomic_init(&s->awaiting, 0u);
    atomic_init(&s->quiesced, false);
    atomic_init(&s->conns, 0u);
    /* Streams leave libmicrohttpd only in TURBO mode, where closing its
     * side of a connection does not shut the socket down. A stream loop
     * never waits on anything but its sockets: one a CPU at most. */
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned loops = cpus > 0 && (unsigned long)cpus < cfg->threads ? (unsigned)cpus : cfg->threads;
    if (cfg->turbo && br_http_streams_start(&s->streams, loops, cfg->log) != BR_OK) {
        free(s);
        return BR_E_IO;
    }
    bool v6 = false;
    const char *addr = cfg->bind_addr != NULL ? cfg->bind_addr : "127.0.0.1";
    int fd = listen_on(cfg, addr, &v6);
    if (fd < 0) {
        br_http_streams_stop(s->streams);
        free(s);
        return BR_E_IO;
    }
    s->port = bound_port(fd);
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG |
                     (v6 ? MHD_USE_IPv6 : 0u) | (cfg->turbo ? MHD_USE_TURBO : 0u);
    /* From here libmicrohttpd owns fd: it closes it at stop, and on a
     * failed start it may already have (so it is not closed again here). */
    s->daemon = MHD_start_daemon(
        flags, s->port, on_accept, s, on_access, s, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s,
        MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd, MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned int)cfg->threads, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)cfg->conn_memory_max, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned int)cfg->idle_timeout_s, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned int)cfg->connections_max, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_URI_LOG_CALLBACK, on_uri, s, MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
        MHD_OPTION_END);
    if (s->daemon == NULL) {
        br_logf(cfg->log, BR_LOG_ERROR, "cannot start the HTTP server", "\"port\":%u",
                (unsigned)s->port);
        br_http_streams_stop(s->streams);
        free(s);
        return BR_E_IO;
    }
    *out = s;
    return BR_OK;
}

uint16_t br_http_port(const struct br_http_server *s)
{
    return s->port;
}

/* libmicrohttpd 0.9.75's MHD_quiesce_daemon takes the listening socket out
 * of every worker's epoll set from the calling thread while the workers may
 * do the same when they notice: the loser's epoll_ctl fails and the library
 * aborts the process ("Failed to remove listen FD from epoll set", seen at
 * SIGTERM under the test suite). So quiescing is an accept policy instead:
 * the socket stays where it is and every new connection is closed at once;
 * MHD_stop_daemon closes the socket. */
static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
    (void)addr;
    (void)addrlen;
    struct br_http_server *s = cls;
    if (atomic_load(&s->quiesced)) {
        return MHD_NO;
    }
    /* Taken-over streams are connections too, though libmicrohttpd no
     * longer counts them. */
    unsigned held = atomic_load(&s->conns) + br_http_streams_open(s->streams);
#ifdef BR_PLANT_STREAM_LIMIT_UNCOUNTED
    held = atomic_load(&s->conns); /* planted: the streams taken over are forgotten */
#endif
    return held < s->cfg.connections_max ? MHD_YES : MHD_NO;
}

void br_http_quiesce(struct br_http_server *s)
{
    if (s != NULL) {
        atomic_store(&s->quiesced, true);
    }
}

unsigned br_http_inflight(const struct br_http_server *s)
{
    return atomic_load(&((struct br_http_server *)(uintptr_t)s)->inflight);
}

unsigned br_http_awaiting(const struct br_http_server *s)
{
    return atomic_load(&((struct br_http_server *)(uintptr_t)s)->awaiting);
}

void br_http_stop(struct br_http_server *s)
{
    if (s == NULL) {
        return;
    }
    MHD_stop_daemon(s->daemon);
    br_http_streams_stop(s->streams); /* after: no stream is taken over any more */
    free(s);
}

const char *br_http_method(const struct br_http_req *r)
{
    return r->method;
}

const char *br_http_path(const struct br_http_req *r)
{
    return r->path;
}

const char *br_http_header(const struct br_http_req *r, const char *name)
{
    /* A stream taken over has no libmicrohttpd connection any more. */
    return r->conn != NULL ? MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name) : NULL;
}

const char *br_http_query(const struct br_http_req *r, const char *name)
{
    return r->conn != NULL ? MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name)
                           : NULL;
}

const char *br_http_body(const struct br_http_req *r, size_t *len)
{
    *len = r->body_len;
    return r->body != NULL ? r->body : "";
}

bool br_http_body_too_large(const struct br_http_req *r)
{
    return r->too_large;
}

const char *br_http_peer(const struct br_http_req *r)
{
    return r->peer;
}

int64_t br_http_started_us(const struct br_http_req *r)
{
    return r->started_us;
}

void br_http_set_app(struct br_http_req *r, void *app)
{
    r->app = app;
}

void *br_http_app(const struct br_http_req *r)
{
    return r->app;
}

void br_http_add_header(struct br_http_req *r, const char *name, const char *value)
{
    if (r->header_count >= BR_HTTP_HEADERS_MAX || strlen(name) >= HEADER_NAME_MAX ||
        strlen(value) >= BR_HTTP_HEADER_VALUE_MAX) {
        return;
    }
    struct extra_header *h = &r->headers[r->header_count++];
    snprintf(h->name, sizeof h->name, "%s", name);
    snprintf(h->value, sizeof h->value, "%s", value);
}

static void answer(struct br_http_req *r, enum answer_kind kind, unsigned status,
                   const char *content_type, char *body, size_t len)
{
    pthread_mutex_lock(&r->mu);
    BR_ASSERT(r->kind == ANSWER_NONE); /* exactly one answer per request */
    r->kind = kind;
    r->status = status;
    r->content_type = content_type;
    r->resp_body = body;
    r->resp_len = len;
    if (r->suspended) {
        r->suspended = false;
        MHD_resume_connection(r->conn);
    }
    pthread_mutex_unlock(&r->mu);
}

void br_http_respond(struct br_http_req *r, unsigned status, const char *content_type, char *body,
                     size_t len)
{
    answer(r, ANSWER_BODY, status, content_type, body, len);
}

void br_http_respond_static(struct br_http_req *r, unsigned status, const char *content_type,
                            const void *body, size_t len)
{
    answer(r, ANSWER_STATIC, status, content_type, (char *)(uintptr_t)body, len);
}

void br_http_respond_stream(struct br_http_req *r, const char *content_type, br_http_pull_fn pull,
                            void *cls)
{
    BR_ASSERT(pull != NULL);
    r->pull = pull;
    r->pull_cls = cls;
    answer(r, ANSWER_STREAM, 200, content_type, NULL, 0);
}

void br_http_stream_wake(struct br_http_req *r)
{
    pthread_mutex_lock(&r->mu);
    if (r->stream != NULL) {
        br_http_stream_poke(r->stream);
    } else if (r->suspended) {
        r->suspended = false;
        MHD_resume_connection(r->conn);
    }
    pthread_mutex_unlock(&r->mu);
}

void br_http_resume(struct br_http_req *r)
{
    pthread_mutex_lock(&r->mu);
    r->resumed = true;
    if (r->suspended) {
        r->suspended = false;
        MHD_resume_connection(r->conn);
    }
    pthread_mutex_unlock(&r->mu);
}

void br_http_defer(struct br_http_req *r)
{
    /* Nothing to do yet: the loop thread suspends the connection after the
     * handler returns unless the answer has arrived by then (see on_access). */
    BR_ASSERT(!r->queued);
}

unsigned br_http_status(const struct br_http_req *r)
{
    pthread_mutex_lock((pthread_mutex_t *)(uintptr_t)&r->mu);
    unsigned st = r->status;
    pthread_mutex_unlock((pthread_mutex_t *)(uintptr_t)&r->mu);
    return st;
}
