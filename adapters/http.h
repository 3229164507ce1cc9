/*
 * http.h -- the HTTP transport: libmicrohttpd (epoll, a thread pool,
 * keep-alive) behind a small request/response API.
 *
 * The adapter knows nothing about routes, JSON or auth. For every request it
 * collects the body (bounded by body_max), then calls the application's
 * handler once. The handler either answers at once (br_http_respond) or
 * defers (br_http_defer) and answers later from any thread: a deferred
 * request's connection is suspended, so a request that waits for the
 * journal's group commit costs no thread. A response may also be a stream
 * (server-sent events): the adapter pulls bytes from the application and
 * waits while there is nothing to send; br_http_stream_wake wakes it. With
 * cfg.turbo a stream leaves libmicrohttpd once its answer is known and is
 * served by the adapter's stream loops (http_stream.h: chunked for HTTP/1.1,
 * close-delimited for HTTP/1.0, Connection: close; a client that goes ends
 * it); without turbo its connection is suspended in libmicrohttpd.
 *
 * Lifecycle of a request (each step at most once, in this order):
 *
 *   created ──body complete──▶ handler ──respond──▶ queued ──▶ closed
 *                                 └──defer──▶ suspended ──respond (any thread)──┘
 *                                                 └──resume (any thread)──▶ cfg.resumed
 *                                                      (on the loop thread: respond or defer)
 *
 * `closed` is reported to the application (cfg.closed) when the connection
 * is done with the request, after which the request is freed: that is where
 * the application drops every reference to it.
 *
 * Keep-alive: libmicrohttpd closes the connection when a response is queued
 * on the first call of a request, so the adapter always returns on the first
 * call and answers on a later one.
 *
 * Limits: the body (body_max, 413 via the handler), the header section
 * (conn_memory_max: libmicrohttpd answers 431 itself), extra response
 * headers (BR_HTTP_HEADERS_MAX), connections (connections_max).
 *
 * Framing (request smuggling): the adapter checks the framing headers
 * itself before libmicrohttpd reads a body, because libmicrohttpd 0.9.75
 * takes the first of two Content-Length headers and lets Transfer-Encoding
 * override Content-Length. Two different Content-Length values,
 * Content-Length with Transfer-Encoding, a Transfer-Encoding other than
 * "chunked", or a method that is not an HTTP token get 400 INVALID_REQUEST
 * (JSON, Connection: close) without reaching the handler, and the rest of
 * the connection is never read as a request. A malformed Content-Length
 * (negative, not a number, past 2^64) is answered by libmicrohttpd before
 * any handler runs, with its status line twice; the adapter answers it
 * itself instead (one 400 INVALID_REQUEST, then the connection closes).
 *
 * An oversized body (Content-Length over body_max, or a chunked body that
 * outgrows it) is read and dropped up to BR_HTTP_DRAIN_FACTOR x body_max
 * and then answered 413 (Connection: close) so that the client, which is
 * still sending, can read the answer. A client that waits for 100 Continue
 * is answered at once (it sends no body). Past that bound the answer goes out
 * at once (declared length) or as soon as the bound is crossed (chunked)
 * and the connection closes; the client may then see a reset.
 *
 * Logs: libmicrohttpd's messages and the adapter's own go to cfg.log as
 * JSON lines.
 */
#ifndef BR_HTTP_H
#define BR_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "adapters/log.h"

#define BR_HTTP_HEADERS_MAX 6      /* extra response headers per request */
#define BR_HTTP_HEADER_VALUE_MAX 96 /* bytes per extra header value, incl. NUL */
#define BR_HTTP_ADDR_MAX 48        /* textual client address, incl. NUL */
#define BR_HTTP_DRAIN_FACTOR 16u   /* an oversized body is read up to 16 x body_max */

struct br_http_server;
struct br_http_req;

/* Called once per request, when its body is complete or known to be too
 * large (br_http_body_too_large). Must respond or defer before returning. */
typedef void (*br_http_handler_fn)(void *ctx, struct br_http_req *req);

/* Called on the request's loop thread after br_http_resume: continue the
 * work and respond, or defer again. */
typedef void (*br_http_resumed_fn)(void *ctx, struct br_http_req *req);

/* Called once when the request is over (answered and sent, or the client is
 * gone). The request is freed right after; drop every reference to it. */
typedef void (*br_http_closed_fn)(void *ctx, struct br_http_req *req);

/* Stream pull: copy up to max bytes into buf. Returns the count (> 0), 0 when
 * nothing is ready now (nothing is pulled again until br_http_stream_wake)
 * or -1 to end the stream. Called on a server thread holding the request's
 * mutex, never concurrently for one stream. */
typedef ssize_t (*br_http_pull_fn)(void *cls, char *buf, size_t max);

struct br_http_config {
    const char *bind_addr;     /* numeric IPv4 or IPv6 address; NULL = 127.0.0.1 */
    uint16_t port;             /* 0 = any free port (see br_http_port) */
    bool reuse_port;           /* SO_REUSEPORT: share the port with other servers that
                                * ask for it too; otherwise a port in use fails the start */
    unsigned threads;          /* event-loop threads, >= 1 */
    size_t body_max;           /* request body bytes; more is 413 */
    size_t conn_memory_max;    /* per-connection buffer: bounds the header section */
    unsigned idle_timeout_s;   /* idle keep-alive connections are closed after this */
    unsigned connections_max;  /* concurrent connections */
    bool turbo;                /* MHD_USE_TURBO: fewer syscalls, no shutdown() on close;
                                * streams leave libmicrohttpd (http_stream.h) */
    br_http_handler_fn handler;
    br_http_resumed_fn resumed; /* may be NULL if nobody calls br_http_resume */
    br_http_closed_fn closed;  /* may be NULL */
    void *ctx;                 /* passed to handler and closed */
    const struct br_log *log;  /* libmicrohttpd's and the adapter's lines; NULL = none */
};

/* The level a libmicrohttpd message is logged at (enum br_log_level): debug
 * for a send that found the peer gone (a client that closed its connection,
 * as browsers close queue streams by the thousand at an opening), warn for
 * everything else. Exposed for its test. */
int br_http_mhd_log_level(const char *line);

/* Starts listening. The socket gets SO_REUSEADDR (a restart binds at once
 * despite connections in TIME_WAIT; on Linux it never lets two servers
 * listen on one port) and SO_REUSEPORT only with cfg.reuse_port. BR_OK,
 * BR_E_IO (the socket could not be bound or listened on: logged with the
 * address, the port and the reason) or BR_E_INVALID. */
int br_http_start(struct br_http_server **s, const struct br_http_config *cfg);

/* The bound port (useful with port 0). */
uint16_t br_http_port(const struct br_http_server *s);

/* Stops accepting new connections (each is closed as it arrives); open
 * ones keep being served. */
void br_http_quiesce(struct br_http_server *s);

/* Requests created and not yet closed (in flight, streams included). */
unsigned br_http_inflight(const struct br_http_server *s);

/* Requests created whose answer has not been handed to libmicrohttpd yet:
 * being read, handled, or deferred (a stream counts until its headers go
 * out). The server's own backlog; requests still unread in their sockets
 * are not in it. */
unsigned br_http_awaiting(const struct br_http_server *s);

/* Stops the server: closes every connection. No request may be deferred or
 * suspended any more (respond and end streams first). s may be NULL. */
void br_http_stop(struct br_http_server *s);

/* ---- the request (valid from the handler call until `closed`) ---- */

const char *br_http_method(const struct br_http_req *r);
const char *br_http_path(const struct br_http_req *r);
/* A request header or query argument, NULL when absent. */
const char *br_http_header(const struct br_http_req *r, const char *name);
const char *br_http_query(const struct br_http_req *r, const char *name);
/* The body (NUL-terminated for convenience; may contain NULs); *len set. */
const char *br_http_body(const struct br_http_req *r, size_t *len);
bool br_http_body_too_large(const struct br_http_req *r);
/* The peer's address as text ("127.0.0.1", "::1"). */
const char *br_http_peer(const struct br_http_req *r);
/* Monotonic time the request started, in microseconds. */
int64_t br_http_started_us(const struct br_http_req *r);

/* The application's per-request pointer (NULL initially). */
void br_http_set_app(struct br_http_req *r, void *app);
void *br_http_app(const struct br_http_req *r);

/* ---- answering: exactly one of respond / respond_static / respond_stream ---- */

/* Adds a response header (copied; silently dropped beyond the limits). */
void br_http_add_header(struct br_http_req *r, const char *name, const char *value);

/* Answers with body (malloc'd; ownership passes to the adapter; may be NULL
 * with len 0). Callable from the handler or, after br_http_defer, from any
 * thread. */
void br_http_respond(struct br_http_req *r, unsigned status, const char *content_type, char *body,
                     size_t len);

/* Answers with a body that outlives the server (static data). */
void br_http_respond_static(struct br_http_req *r, unsigned status, const char *content_type,
                            const void *body, size_t len);

/* Answers 200 with a stream of unknown length pulled from pull(cls, ...)
 * (see br_http_pull_fn). cls must stay valid until `closed`. Handler only. */
void br_http_respond_stream(struct br_http_req *r, const char *content_type, br_http_pull_fn pull,
                            void *cls);

/* Resumes a stream suspended for lack of data. Any thread; cheap when the
 * stream is not suspended. */
void br_http_stream_wake(struct br_http_req *r);

/* Marks the request as answered later: its connection is suspended when the
 * handler returns. Handler only; call it before handing r to another thread. */
void br_http_defer(struct br_http_req *r);

/* Wakes a deferred request so that cfg.resumed runs on its loop thread
 * (where rendering and responding belong). Any thread; at most once per
 * deferral. */
void br_http_resume(struct br_http_req *r);

/* Status the request was (or will be) answered with; 0 before respond. */
unsigned br_http_status(const struct br_http_req *r);

#endif
