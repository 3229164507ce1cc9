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
 *   - streams: the content reader pulls under the mutex and, when nothing is
 *     ready, suspends the connection and sets `suspended` before unlocking;
 *     br_http_stream_wake resumes it under the same mutex.
 *
 * A suspended connection never times out and is never closed by the peer's
 * disconnect (libmicrohttpd cannot see it), so every deferral must end in a
 * respond and every stream in an end (the server guarantees both).
 */
#define _POSIX_C_SOURCE 200809L

#include "adapters/http.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/err.h"
#include "core/panic.h"

#define BODY_INITIAL_CAP 1024u   /* first body allocation; doubles up to body_max */
#define HEADER_NAME_MAX 32u      /* bytes per extra header name, incl. NUL */
#define STREAM_BLOCK_SIZE 4096u  /* bytes libmicrohttpd asks a stream for at once */
#define DRAIN_FACTOR 16u         /* an oversized chunked body is drained up to 16 x body_max */

struct br_http_server {
    struct br_http_config cfg;
    struct MHD_Daemon *daemon;
    uint16_t port;
    atomic_uint inflight; /* requests created, not closed */
    bool quiesced;
};

enum answer_kind { ANSWER_NONE = 0, ANSWER_BODY, ANSWER_STATIC, ANSWER_STREAM };

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
    char peer[BR_HTTP_ADDR_MAX];
    int64_t started_us;
    void *app;

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
    unsigned header_count;
    struct extra_header headers[BR_HTTP_HEADERS_MAX];
};

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

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
    r->started_us = mono_us();
    peer_text(conn, r->peer, sizeof r->peer);
    pthread_mutex_init(&r->mu, NULL);
    atomic_fetch_add(&s->inflight, 1u);
    return r;
}

static void req_free(struct br_http_req *r)
{
    if (r->kind == ANSWER_BODY) {
        free(r->resp_body);
    }
    free(r->body);
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
    r->queued = true;
    enum MHD_Result rc = MHD_queue_response(r->conn, r->status, resp);
    MHD_destroy_response(resp);
    return rc;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version,
                                 const char *upload_data, size_t *upload_data_size, void **con_cls)
{
    (void)version;
    struct br_http_server *s = cls;
    struct br_http_req *r = *con_cls;
    if (r == NULL) {
        /* First call: headers only. Returning here (not answering) keeps the
         * connection alive; see the header comment. */
        r = req_new(s, conn, method, url);
        if (r == NULL) {
            return MHD_NO;
        }
        *con_cls = r;
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl != NULL) {
            char *end = NULL;
            unsigned long long n = strtoull(cl, &end, 10);
            if (end == cl || n > s->cfg.body_max) {
                r->too_large = true; /* answered below without reading the body */
            }
        }
        if (!r->too_large) {
            return MHD_YES;
        }
    }
    if (*upload_data_size > 0) {
        /* libmicrohttpd takes an answer only before the body starts or
         * after it ended, so a body that outgrows the limit half-way is
         * drained (not stored) and answered 413 at its end -- up to
         * DRAIN_FACTOR times the limit, then the connection is dropped. */
        if (!r->too_large) {
            body_append(r, upload_data, *upload_data_size);
        } else {
            r->drained += *upload_data_size;
        }
        *upload_data_size = 0;
        return r->drained > DRAIN_FACTOR * s->cfg.body_max ? MHD_NO : MHD_YES;
    }
    if (r->queued) {
        return MHD_YES; /* already answered (a too-large body still streaming in) */
    }
    if (!r->handled) {
        r->handled = true;
        s->cfg.handler(s->cfg.ctx, r);
    }
    /* Bounded: each round either answers, parks the connection, or runs
     * the application's continuation, which answers or defers again. */
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

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)conn;
    (void)toe;
    struct br_http_server *s = cls;
    struct br_http_req *r = *con_cls;
    if (r == NULL) {
        return;
    }
    *con_cls = NULL;
    if (s->cfg.closed != NULL) {
        s->cfg.closed(s->cfg.ctx, r);
    }
    req_free(r);
    atomic_fetch_sub(&s->inflight, 1u);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '"' || line[n - 1] == '\\')) {
        line[--n] = '\0';
    }
    for (size_t i = 0; i < n; i++) {
        if (line[i] == '"' || line[i] == '\\' || (unsigned char)line[i] < 0x20) {
            line[i] = ' ';
        }
    }
    fprintf(stderr, "{\"level\":\"warn\",\"msg\":\"libmicrohttpd\",\"detail\":\"%s\"}\n", line);
}

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

    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    const char *addr = cfg->bind_addr ? cfg->bind_addr : "0.0.0.0";
    struct sockaddr_in *in4 = (struct sockaddr_in *)(void *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)(void *)&ss;
    if (inet_pton(AF_INET, addr, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons(cfg->port);
    } else if (inet_pton(AF_INET6, addr, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(cfg->port);
        flags |= MHD_USE_IPv6;
    } else {
        free(s);
        return BR_E_INVALID;
    }
    if (cfg->turbo) {
        flags |= MHD_USE_TURBO;
    }
    s->daemon = MHD_start_daemon(
        flags, cfg->port, NULL, NULL, on_access, s, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s,
        MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)(void *)&ss, MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)cfg->threads,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)cfg->conn_memory_max,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)cfg->idle_timeout_s,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned int)cfg->connections_max,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_LISTENING_ADDRESS_REUSE,
        (unsigned int)1, MHD_OPTION_END);
    if (s->daemon == NULL) {
        fprintf(stderr,
                "{\"level\":\"error\",\"msg\":\"cannot listen\",\"addr\":\"%s\",\"port\":%u}\n",
                addr, (unsigned)cfg->port);
        free(s);
        return BR_E_IO;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di != NULL ? di->port : cfg->port;
    *out = s;
    return BR_OK;
}

uint16_t br_http_port(const struct br_http_server *s)
{
    return s->port;
}

void br_http_quiesce(struct br_http_server *s)
{
    if (s == NULL || s->quiesced) {
        return;
    }
    s->quiesced = true;
    MHD_socket fd = MHD_quiesce_daemon(s->daemon);
    if (fd != MHD_INVALID_SOCKET) {
        close(fd);
    }
}

unsigned br_http_inflight(const struct br_http_server *s)
{
    return atomic_load(&((struct br_http_server *)(uintptr_t)s)->inflight);
}

void br_http_stop(struct br_http_server *s)
{
    if (s == NULL) {
        return;
    }
    MHD_stop_daemon(s->daemon);
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
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *br_http_query(const struct br_http_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
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
    if (r->suspended) {
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
