/*
 * test_rush_http.c -- the rush's HTTP/1.1 response parser (server/rush_http.h)
 * and its epoll loop (server/rush_net.h).
 *
 * Parser: every answer is fed whole, byte by byte and split in two at every
 * offset, and must give the same status, flags, body and consumed length each
 * time (the parser keeps no pointer into the caller's buffer). Framing errors
 * (a bad status line, two different Content-Length, Content-Length with
 * chunked, an oversized head, bad hex, EOF inside a body) must be errors under
 * every split. The loop cases run br_rush_net against a scripted server on
 * 127.0.0.1:0 in a thread.
 */
#define _GNU_SOURCE /* MSG_NOSIGNAL, POSIX sockets under -std=c11 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/err.h"
#include "server/rush_http.h"
#include "server/rush_net.h"

#define BODY_CAP 65536u

struct got {
    char body[BODY_CAP];
    size_t len;
};

static void on_body(void *ctx, const char *bytes, size_t n)
{
    struct got *g = ctx;
    assert_true(n > 0);
    assert_true(g->len + n <= sizeof g->body);
    memcpy(g->body + g->len, bytes, n);
    g->len += n;
}

struct want {
    int rc;                 /* after the pieces (and eof when eof is set) */
    int status;
    const char *body;
    size_t body_len;
    size_t used;            /* bytes of the message consumed */
    bool chunked, close, eof;
    int64_t content_length;
    uint32_t retry_after_s;
    const char *content_type;
};

/* Feeds msg[0..n) cut at the offsets cuts[0..ncuts) (ascending), stopping at
 * DONE or ERROR. Returns the final code; *used is the total consumed. */
static int feed_cut(struct br_rush_http_resp *p, struct got *g, const char *msg, size_t n,
                    const size_t *cuts, size_t ncuts, bool eof, size_t *used)
{
    br_rush_http_resp_init(p);
    g->len = 0;
    *used = 0;
    size_t from = 0;
    int rc = BR_RUSH_PARSE_AGAIN;
    char why[96] = "";
    for (size_t c = 0; c <= ncuts && rc == BR_RUSH_PARSE_AGAIN; c++) {
        size_t to = c < ncuts ? cuts[c] : n;
        size_t k = 0;
        /* Each piece gets its own copy so no pointer into an old piece can survive. */
        char *piece = malloc(to - from + 1);
        assert_non_null(piece);
        memcpy(piece, msg + from, to - from);
        rc = br_rush_http_feed(p, piece, to - from, &k, on_body, g, why);
        memset(piece, 'Z', to - from);
        free(piece);
        assert_true(k <= to - from);
        *used += k;
        if (rc == BR_RUSH_PARSE_AGAIN) {
            assert_int_equal(k, to - from);
        }
        if (rc == BR_RUSH_PARSE_ERROR) {
            assert_true(why[0] != '\0');
        }
        from = to;
    }
    if (rc == BR_RUSH_PARSE_AGAIN && eof) {
        rc = br_rush_http_eof(p);
    }
    return rc;
}

static void check_one(const char *msg, size_t n, const size_t *cuts, size_t ncuts,
                      const struct want *w)
{
    static struct br_rush_http_resp p;
    static struct got g;
    size_t used = 0;
    int rc = feed_cut(&p, &g, msg, n, cuts, ncuts, w->eof, &used);
    assert_int_equal(rc, w->rc);
    if (w->rc == BR_RUSH_PARSE_ERROR) {
        /* Sticky: more bytes do not revive it. */
        size_t k = 0;
        assert_int_equal(br_rush_http_feed(&p, "x", 1, &k, on_body, &g, NULL), BR_RUSH_PARSE_ERROR);
        return;
    }
    assert_int_equal(p.status, w->status);
    assert_int_equal(used, w->used);
    assert_int_equal(g.len, w->body_len);
    assert_memory_equal(g.body, w->body, w->body_len);
    assert_int_equal(p.chunked, w->chunked);
    assert_int_equal(p.close, w->close);
    assert_true(p.headers_done);
    assert_int_equal(p.content_length, w->content_length);
    assert_int_equal(p.retry_after_s, w->retry_after_s);
    assert_string_equal(p.content_type, w->content_type != NULL ? w->content_type : "");
}

/* Whole, byte by byte, and split in two at every offset. */
static void check_all_splits(const char *msg, size_t n, const struct want *w)
{
    check_one(msg, n, NULL, 0, w);
    size_t *cuts = malloc((n + 1) * sizeof *cuts);
    assert_non_null(cuts);
    for (size_t i = 0; i + 1 < n; i++) {
        cuts[i] = i + 1;
    }
    check_one(msg, n, cuts, n > 0 ? n - 1 : 0, w);
    for (size_t k = 1; k < n; k++) {
        check_one(msg, n, &k, 1, w);
    }
    free(cuts);
}

#define MSG(s) s, sizeof(s) - 1

static void test_content_length_answer(void **state)
{
    (void)state;
    static const char m[] = "HTTP/1.1 201 Created\r\n"
                            "Content-Type: application/json\r\n"
                            "content-length: 11\r\n"
                            "X-Request-Id: abc\r\n"
                            "\r\n"
                            "{\"id\":4242}";
    struct want w = {.rc = BR_RUSH_PARSE_DONE, .status = 201, .body = "{\"id\":4242}", .body_len = 11,
                     .used = sizeof m - 1, .content_length = 11, .content_type = "application/json"};
    check_all_splits(MSG(m), &w);
}

static void test_content_length_same_twice_is_one(void **state)
{
    (void)state;
    static const char m[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length:  2 \r\n\r\nok";
    struct want w = {.rc = BR_RUSH_PARSE_DONE, .status = 200, .body = "ok", .body_len = 2,
                     .used = sizeof m - 1, .content_length = 2};
    check_all_splits(MSG(m), &w);
}

static void test_bare_lf_lines(void **state)
{
    (void)state;
    static const char m[] = "HTTP/1.1 200 OK\nContent-Length: 3\n\nabc";
    struct want w = {.rc = BR_RUSH_PARSE_DONE, .status = 200, .body = "abc", .body_len = 3,
                     .used = sizeof m - 1, .content_length = 3};
    check_all_splits(MSG(m), &w);
}

static void test_chunked_with_extensions_and_trailers(void **state)
{
    (void)state;
    static const char m[] = "HTTP/1.1 200 OK\r\n"
                            "Transfer-Encoding: gzip, Chunked\r\n"
                            "\r\n"
                            "5;name=value\r\nhello\r\n"
                            "1A \r\n abcdefghijklmnopqrstuvwxy\r\n"
                            "0;last\r\n"
                            "Trailer-One: 1\r\n"
                            "Trailer-Two: 2\r\n"
                            "\r\n";
    static const char body[] = "hello abcdefghijklmnopqrstuvwxy";
    struct want w = {.rc = BR_RUSH_PARSE_DONE, .status = 200, .body = body, .body_len = sizeof body - 1,
                     .used = sizeof m - 1, .chunked = true, .content_length = -1};
    check_all_splits(MSG(m), &w);
}

static void test_close_delimited_answer(void **state)
{
    (void)state;
    static const char m[] = "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: text/plain\r\n\r\nuntil the end";
    struct want w = {.rc = BR_RUSH_PARSE_DONE, .status = 200, .body = "until the end", .body_len = 13,
                     .used = sizeof m - 1, .close = true, .eof = true, .content_length = -1,
                     .content_type = "text/plain"};
    check_all_splits(MSG(m), &w);
}

static void test_http10_closes_unless_keep_alive(void **state)
{
    (void)state;
    static const char a[] = "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx";
    struct want w = {.rc = BR_RUSH_PARSE_DONE, .status = 200, .body = "x", .body_len = 1,
                     .used = sizeof a - 1, .close = true, .content_length = 1};
    check_all_splits(MSG(a), &w);
    static const char b[] = "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 1\r\n\r\nx";
    w.used = sizeof b - 1;
    w.close = false;
    check_all_splits(MSG(b), &w);
}

static void test_retry_after_and_no_body_statuses(void **state)
{
    (void)state;
    static const char a[] = "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 7\r\nConnection: keep-alive, close\r\n"
                            "Content-Length: 0\r\n\r\n";
    struct want w = {.rc = BR_RUSH_PARSE_DONE, .status = 503, .used = sizeof a - 1, .body = "",
                     .close = true, .content_length = 0, .retry_after_s = 7};
    check_all_splits(MSG(a), &w);
    /* A date in Retry-After is not a number of seconds: 0. */
    static const char b[] = "HTTP/1.1 204 No Content\r\nRetry-After: Fri, 31 Dec 1999 23:59:59 GMT\r\n\r\n";
    struct want w2 = {.rc = BR_RUSH_PARSE_DONE, .status = 204, .used = sizeof b - 1, .body = "",
                      .content_length = -1};
    check_all_splits(MSG(b), &w2);
}

static void test_interim_100_then_answer(void **state)
{
    (void)state;
    static const char m[] = "HTTP/1.1 100 Continue\r\nX: y\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";
    struct want w = {.rc = BR_RUSH_PARSE_DONE, .status = 200, .body = "hi", .body_len = 2,
                     .used = sizeof m - 1, .content_length = 2};
    check_all_splits(MSG(m), &w);
}

/* Two keep-alive answers in one buffer: the first stops at its own end. */
static void test_two_answers_in_one_buffer(void **state)
{
    (void)state;
    static const char m[] = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none"
                            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\ntwo\r\n0\r\n\r\n"
                            "HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnope";
    const char *answers[3] = {"one", "two", "nope"};
    int statuses[3] = {200, 200, 404};
    struct br_rush_http_resp p;
    struct got g;
    size_t off = 0;
    for (int a = 0; a < 3; a++) {
        br_rush_http_resp_init(&p);
        g.len = 0;
        size_t used = 0;
        assert_int_equal(br_rush_http_feed(&p, m + off, sizeof m - 1 - off, &used, on_body, &g, NULL),
                         BR_RUSH_PARSE_DONE);
        assert_int_equal(p.status, statuses[a]);
        assert_int_equal(g.len, strlen(answers[a]));
        assert_memory_equal(g.body, answers[a], g.len);
        off += used;
    }
    assert_int_equal(off, sizeof m - 1);
}

/* The exact head libmicrohttpd sent for a queue stream (recorded from
 * `serve --demo`), then a chunk and the end. */
static void test_recorded_mhd_stream_head(void **state)
{
    (void)state;
    static const char m[] = "HTTP/1.1 200 OK\r\n"
                            "Date: Thu, 03 Dec 2026 19:45:28 GMT\r\n"
                            "Content-Type: text/event-stream\r\n"
                            "Cache-Control: no-cache\r\n"
                            "X-Accel-Buffering: no\r\n"
                            "X-Request-Id: 44400b04-4\r\n"
                            "Transfer-Encoding: chunked\r\n"
                            "\r\n"
                            "E\r\n: keep-alive\n\n\r\n"
                            "0\r\n\r\n";
    struct want w = {.rc = BR_RUSH_PARSE_DONE, .status = 200, .body = ": keep-alive\n\n", .body_len = 14,
                     .used = sizeof m - 1, .chunked = true, .content_length = -1,
                     .content_type = "text/event-stream"};
    check_all_splits(MSG(m), &w);
}

static void check_error(const char *m, size_t n, bool eof)
{
    struct want w = {.rc = BR_RUSH_PARSE_ERROR, .eof = eof};
    check_all_splits(m, n, &w);
}

static void test_bad_status_lines(void **state)
{
    (void)state;
    check_error(MSG("HTTP/2 200 OK\r\n\r\n"), false);
    check_error(MSG("HTTP/1.1 2x0 OK\r\n\r\n"), false);
    check_error(MSG("HTTP/1.1 200OK\r\n\r\n"), false);
    check_error(MSG("HTTP/1.1 099 Low\r\n\r\n"), false);
    check_error(MSG("SSH-2.0-OpenSSH\r\n"), false);
    check_error(MSG("HTTP/1.1 200 OK\r\nno colon here\r\n\r\n"), false);
}

static void test_two_different_content_lengths(void **state)
{
    (void)state;
    check_error(MSG("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc"), false);
}

static void test_bad_content_length(void **state)
{
    (void)state;
    check_error(MSG("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"), false);
    check_error(MSG("HTTP/1.1 200 OK\r\nContent-Length: 1,1\r\n\r\nx"), false);
    check_error(MSG("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n"), false);
    check_error(MSG("HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n"), false);
}

static void test_content_length_with_chunked(void **state)
{
    (void)state;
    check_error(MSG("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "5\r\nhello\r\n0\r\n\r\n"),
                false);
    check_error(MSG("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"
                    "5\r\nhello\r\n0\r\n\r\n"),
                false);
}

static void test_oversized_head(void **state)
{
    (void)state;
    size_t cap = BR_RUSH_HEADERS_MAX + 256;
    char *m = malloc(cap);
    assert_non_null(m);
    size_t n = (size_t)snprintf(m, cap, "HTTP/1.1 200 OK\r\n");
    while (n + 40 < BR_RUSH_HEADERS_MAX + 64) {
        n += (size_t)snprintf(m + n, cap - n, "X-Filler: %028u\r\n", (unsigned)n);
    }
    n += (size_t)snprintf(m + n, cap - n, "Content-Length: 0\r\n\r\n");
    check_error(m, n, false);
    /* Just under the limit is fine. */
    n = (size_t)snprintf(m, cap, "HTTP/1.1 200 OK\r\n");
    while (n + 40 + 21 < BR_RUSH_HEADERS_MAX) {
        n += (size_t)snprintf(m + n, cap - n, "X-Filler: %028u\r\n", (unsigned)n);
    }
    n += (size_t)snprintf(m + n, cap - n, "Content-Length: 0\r\n\r\n");
    assert_true(n <= BR_RUSH_HEADERS_MAX);
    struct br_rush_http_resp p;
    br_rush_http_resp_init(&p);
    size_t used = 0;
    assert_int_equal(br_rush_http_feed(&p, m, n, &used, NULL, NULL, NULL), BR_RUSH_PARSE_DONE);
    free(m);
    /* One endless header line, never terminated. */
    char *big = malloc(BR_RUSH_HEADERS_MAX + 100);
    assert_non_null(big);
    memcpy(big, "HTTP/1.1 200 OK\r\nX-Long: ", 25);
    memset(big + 25, 'a', BR_RUSH_HEADERS_MAX + 75);
    br_rush_http_resp_init(&p);
    assert_int_equal(br_rush_http_feed(&p, big, BR_RUSH_HEADERS_MAX + 100, &used, NULL, NULL, NULL),
                     BR_RUSH_PARSE_ERROR);
    free(big);
}

static void test_bad_chunk_sizes(void **state)
{
    (void)state;
    check_error(MSG("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhi\r\n0\r\n\r\n"), false);
    check_error(MSG("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\n"), false);
    check_error(MSG("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n"), false);
    check_error(MSG("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2x\r\nhi\r\n0\r\n\r\n"), false);
    check_error(MSG("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n80000000\r\n"), false);
    check_error(MSG("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFFFF1\r\n"), false);
    /* Data longer than announced. */
    check_error(MSG("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhiX\r\n0\r\n\r\n"), false);
}

static void test_eof_inside_a_body(void **state)
{
    (void)state;
    check_error(MSG("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel"), true);
    check_error(MSG("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"), true);
    check_error(MSG("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nTrailer: 1\r\n"), true);
    check_error(MSG("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"), true);
    check_error(MSG("HTTP/1.1 200 OK\r\nContent-Len"), true);
    check_error("", 0, true);
}

/* ---- the loop against a scripted server on 127.0.0.1:0 ---- */

/* The server thread answers by path: /echo (200, the path or the POST body),
 * /slow (never), /close-after (200, then closes the connection), /drop
 * (closes at once), /stream (the hub's bytes, chunked, then the last chunk),
 * /silent (headers and one keep-alive chunk, then nothing). */
#define SRV_CLIENTS 16

struct srv {
    int lfd;
    uint16_t port;
    pthread_t th;
    atomic_bool stop;
    atomic_int accepted, requests;
    pthread_mutex_t mu;
    char last_head[2048];              /* the last request's head, for header checks */
};

struct srv_client {
    int fd;
    size_t len;
    char buf[8192];
};

static void srv_write(int fd, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        if (w <= 0) {
            return;
        }
        s += w;
        n -= (size_t)w;
    }
}

static void srv_answer(int fd, int status, const char *body, size_t n)
{
    char head[256];
    int k = snprintf(head, sizeof head, "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                     status, n);
    srv_write(fd, head, (size_t)k);
    srv_write(fd, body, n);
}

static const char srv_stream_bytes[] =
    "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    "D\r\nretry: 3000\n\n\r\n"
    "5E\r\nevent: position\ndata: {\"status\":\"waiting\"}\n\n: keep-alive\n\n"
    "event: pass\ndata: {\"token\":\"p1.x\"}\n\n\r\n" /* one chunk, as MHD sent position + pass */
    "0\r\n\r\n";

/* Handles one complete request at the head of c->buf. Returns false when
 * the connection was closed. */
static bool srv_request(struct srv *v, struct srv_client *c, size_t head_len, size_t body_len)
{
    pthread_mutex_lock(&v->mu);
    size_t k = head_len < sizeof v->last_head - 1 ? head_len : sizeof v->last_head - 1;
    memcpy(v->last_head, c->buf, k);
    v->last_head[k] = '\0';
    pthread_mutex_unlock(&v->mu);
    atomic_fetch_add(&v->requests, 1);
    const char *path = strchr(c->buf, ' ') + 1;
    size_t path_len = strcspn(path, " ");
    bool keep = true;
    if (strncmp(path, "/echo", 5) == 0) {
        if (body_len > 0) {
            srv_answer(c->fd, 201, c->buf + head_len, body_len);
        } else {
            srv_answer(c->fd, 200, path, path_len);
        }
    } else if (strncmp(path, "/wait", 5) == 0) {
        usleep(30000);
        srv_answer(c->fd, 200, path, path_len);
    } else if (strncmp(path, "/close-after", 12) == 0) {
        srv_answer(c->fd, 200, "ok", 2);
        keep = false;
    } else if (strncmp(path, "/drop", 5) == 0) {
        keep = false;
    } else if (strncmp(path, "/stream", 7) == 0) {
        srv_write(c->fd, srv_stream_bytes, sizeof srv_stream_bytes - 1);
    } else if (strncmp(path, "/silent", 7) == 0) {
        static const char h[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nE\r\n: keep-alive\n\n\r\n";
        srv_write(c->fd, h, sizeof h - 1);
    } /* /slow: nothing */
    size_t used = head_len + body_len;
    memmove(c->buf, c->buf + used, c->len - used);
    c->len -= used;
    if (!keep) {
        close(c->fd);
        c->fd = -1;
    }
    return keep;
}

static void srv_read(struct srv *v, struct srv_client *c)
{
    ssize_t got = recv(c->fd, c->buf + c->len, sizeof c->buf - 1 - c->len, 0);
    if (got <= 0) {
        close(c->fd);
        c->fd = -1;
        return;
    }
    c->len += (size_t)got;
    c->buf[c->len] = '\0';
    for (;;) {
        char *end = strstr(c->buf, "\r\n\r\n");
        if (end == NULL) {
            return;
        }
        size_t head_len = (size_t)(end - c->buf) + 4, body_len = 0;
        char *cl = strstr(c->buf, "Content-Length: ");
        if (cl != NULL && cl < end) {
            body_len = (size_t)strtoul(cl + 16, NULL, 10);
        }
        if (c->len < head_len + body_len || !srv_request(v, c, head_len, body_len)) {
            return;
        }
        c->buf[c->len] = '\0';
    }
}

static void *srv_main(void *arg)
{
    struct srv *v = arg;
    static struct srv_client cl[SRV_CLIENTS];
    for (int i = 0; i < SRV_CLIENTS; i++) {
        cl[i].fd = -1;
    }
    while (!atomic_load(&v->stop)) {
        struct pollfd p[SRV_CLIENTS + 1];
        p[0] = (struct pollfd){.fd = v->lfd, .events = POLLIN};
        for (int i = 0; i < SRV_CLIENTS; i++) {
            p[i + 1] = (struct pollfd){.fd = cl[i].fd, .events = POLLIN};
        }
        if (poll(p, SRV_CLIENTS + 1, 20) <= 0) {
            continue;
        }
        if (p[0].revents & POLLIN) {
            int fd = accept(v->lfd, NULL, NULL);
            for (int i = 0; fd >= 0 && i < SRV_CLIENTS; i++) {
                if (cl[i].fd < 0) {
                    cl[i].fd = fd;
                    cl[i].len = 0;
                    fd = -1;
                    atomic_fetch_add(&v->accepted, 1);
                }
            }
            if (fd >= 0) {
                close(fd);
            }
        }
        for (int i = 0; i < SRV_CLIENTS; i++) {
            if (cl[i].fd >= 0 && (p[i + 1].revents & (POLLIN | POLLHUP | POLLERR))) {
                srv_read(v, &cl[i]);
            }
        }
    }
    for (int i = 0; i < SRV_CLIENTS; i++) {
        if (cl[i].fd >= 0) {
            close(cl[i].fd);
        }
    }
    return NULL;
}

static void srv_start(struct srv *v)
{
    memset(v, 0, sizeof *v);
    pthread_mutex_init(&v->mu, NULL);
    v->lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(v->lfd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(v->lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(v->lfd, 64), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(v->lfd, (struct sockaddr *)&a, &len), 0);
    v->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&v->th, NULL, srv_main, v), 0);
}

static void srv_stop(struct srv *v)
{
    atomic_store(&v->stop, true);
    pthread_join(v->th, NULL);
    close(v->lfd);
    pthread_mutex_destroy(&v->mu);
}

struct client {
    struct br_rush_net *net;
    char target[64];
    int answers, expect;
    struct br_rush_resp last[8];
    char bodies[8][256];
    uint32_t timers_fired[8];
    int timers;
    int stream_kinds[16], stream_statuses[16];
    char stream_data[16][128];
    int stream_n;
    bool close_on_event;
    uint32_t stream_id;
};


static void on_timer(void *ctx, uint32_t timer)
{
    struct client *cl = ctx;
    assert_true(cl->timers < 8);
    cl->timers_fired[cl->timers++] = timer;
}

static void net_open(struct client *cl, struct srv *v, uint32_t streams_max, uint32_t pool_conns)
{
    memset(cl, 0, sizeof *cl);
    snprintf(cl->target, sizeof cl->target, "http://127.0.0.1:%u", v != NULL ? (unsigned)v->port : 1u);
    const char *targets[1] = {cl->target};
    struct br_rush_net_config cfg = {.targets = targets, .target_count = 1,
                                     .pool_conns = {pool_conns, 1, 1}, .streams_max = streams_max,
                                     .timers_max = 8, .connect_timeout_ms = 1000};
    assert_int_equal(br_rush_net_new(&cl->net, &cfg, on_timer, cl), BR_OK);
}

static void on_resp(void *ctx, const struct br_rush_resp *r)
{
    struct client *cl = ctx;
    assert_true(cl->answers < 8);
    cl->last[cl->answers] = *r;
    size_t k = r->body_len < 255 ? r->body_len : 255;
    memcpy(cl->bodies[cl->answers], r->body, k);
    cl->bodies[cl->answers][k] = '\0';
    assert_int_equal(r->body[r->body_len], '\0');
    cl->answers++;
}

static bool all_answered(void *ctx)
{
    struct client *cl = ctx;
    return cl->answers >= cl->expect;
}

static void get(struct client *cl, const char *path, uint32_t timeout_ms)
{
    struct br_rush_req q = {.route = 0, .pool = BR_RUSH_POOL_CROWD, .target = UINT32_MAX, .method = "GET",
                            .path = path, .token = "tok", .timeout_ms = timeout_ms};
    assert_int_equal(br_rush_net_send(cl->net, &q, on_resp, cl), BR_OK);
}

static void run_until(struct client *cl, int expect, int64_t ms)
{
    cl->expect = expect;
    assert_int_equal(br_rush_net_run(cl->net, br_rush_now_us() + ms * 1000, all_answered, cl), BR_OK);
}

static void test_net_round_trip_and_keep_alive(void **state)
{
    (void)state;
    struct srv v;
    srv_start(&v);
    static struct client cl;
    net_open(&cl, &v, 0, 4);
    int64_t t0 = br_rush_now_us();
    get(&cl, "/echo/1", 2000);
    run_until(&cl, 1, 3000);
    get(&cl, "/echo/2", 2000);
    run_until(&cl, 2, 3000);
    struct br_rush_req q = {.route = 3, .pool = BR_RUSH_POOL_CROWD, .target = 0, .method = "POST",
                            .path = "/echo", .token = "tok", .idem_key = "k-1", .pass = "p1.z",
                            .body = "{\"a\":1}", .body_len = 7, .timeout_ms = 2000};
    assert_int_equal(br_rush_net_send(cl.net, &q, on_resp, &cl), BR_OK);
    run_until(&cl, 3, 3000);
    /* A request longer than a slot's inline text (a long token and body). */
    static char big[3000], token[1500];
    memset(big, 'b', sizeof big);
    memset(token, 't', sizeof token - 1);
    q.body = big;
    q.body_len = sizeof big;
    q.token = token;
    assert_int_equal(br_rush_net_send(cl.net, &q, on_resp, &cl), BR_OK);
    run_until(&cl, 4, 3000);
    assert_int_equal(cl.answers, 4);
    assert_int_equal(cl.last[3].status, 201);
    assert_int_equal(cl.last[3].body_len, sizeof big);
    assert_int_equal(cl.last[0].status, 200);
    assert_string_equal(cl.bodies[0], "/echo/1");
    assert_string_equal(cl.bodies[1], "/echo/2");
    assert_int_equal(cl.last[2].status, 201);
    assert_int_equal(cl.last[2].route, 3);
    assert_string_equal(cl.bodies[2], "{\"a\":1}");
    for (int i = 0; i < 3; i++) {
        assert_int_equal(cl.last[i].err, BR_RUSH_NET_OK);
        assert_true(cl.last[i].sent_us >= t0 && cl.last[i].done_us >= cl.last[i].sent_us);
        assert_true(cl.last[i].queued_us >= 0);
    }
    pthread_mutex_lock(&v.mu);
    assert_non_null(strstr(v.last_head, "POST /echo HTTP/1.1\r\nHost: 127.0.0.1:"));
    assert_non_null(strstr(v.last_head, "\r\nAuthorization: Bearer ttttttttttttttttttttt"));
    assert_non_null(strstr(v.last_head, "\r\nIdempotency-Key: k-1\r\n"));
    assert_non_null(strstr(v.last_head, "\r\nX-Queue-Pass: p1.z\r\n"));
    assert_non_null(strstr(v.last_head, "\r\nContent-Type: application/json\r\nContent-Length: 3000\r\n"));
    pthread_mutex_unlock(&v.mu);
    /* Four answers, one connection: kept alive and reused. */
    assert_int_equal(atomic_load(&v.accepted), 1);
    struct br_rush_net_stats st;
    br_rush_net_stats(cl.net, &st);
    assert_int_equal(st.connects, 1);
    br_rush_net_free(cl.net);
    srv_stop(&v);
}

/* The answer arrives (30 ms after the request) while the rush is not in its
 * loop and is read 100 ms later: arrived_us is the kernel's receipt, not the
 * read (which done_us keeps). */
static void test_net_arrived_is_the_kernels_receipt(void **state)
{
    (void)state;
    struct srv v;
    srv_start(&v);
    static struct client cl;
    net_open(&cl, &v, 0, 1);
    get(&cl, "/wait", 2000);
    int64_t give_up = br_rush_now_us() + 2000000;
    while (atomic_load(&v.requests) < 1 && br_rush_now_us() < give_up) {
        /* Slices of 5 ms: the loop writes the request, then stops before the answer. */
        assert_int_equal(br_rush_net_run(cl.net, br_rush_now_us() + 5000, NULL, NULL), BR_OK);
    }
    assert_int_equal(cl.answers, 0);
    usleep(100000);
    run_until(&cl, 1, 3000);
    assert_int_equal(cl.answers, 1);
    const struct br_rush_resp *r = &cl.last[0];
    assert_int_equal(r->status, 200);
    fprintf(stderr, "sent +0, arrived +%.1f ms, read +%.1f ms\n", (double)(r->arrived_us - r->sent_us) / 1e3,
            (double)(r->done_us - r->sent_us) / 1e3);
    assert_true(r->arrived_us >= r->sent_us + 25000);
    assert_true(r->done_us - r->arrived_us >= 50000);
    br_rush_net_free(cl.net);
    srv_stop(&v);
}

static void test_net_request_timeout(void **state)
{
    (void)state;
    struct srv v;
    srv_start(&v);
    static struct client cl;
    net_open(&cl, &v, 0, 2);
    int64_t t0 = br_rush_now_us();
    get(&cl, "/slow", 200);
    get(&cl, "/echo/after", 2000);
    run_until(&cl, 2, 3000);
    int64_t took = br_rush_now_us() - t0;
    assert_int_equal(cl.answers, 2);
    /* The echo went out on the second connection and came back first. */
    assert_int_equal(cl.last[0].status, 200);
    assert_int_equal(cl.last[1].status, 0);
    assert_int_equal(cl.last[1].err, BR_RUSH_NET_TIMEOUT);
    assert_true(took >= 200000 && took < 1500000);
    struct br_rush_net_stats st;
    br_rush_net_stats(cl.net, &st);
    assert_int_equal(st.timeouts, 1);
    br_rush_net_free(cl.net);
    srv_stop(&v);
}

static void resend_from_callback(void *ctx, const struct br_rush_resp *r)
{
    struct client *cl = ctx;
    on_resp(ctx, r);
    /* Sent while the answer's connection is about to be closed by the server. */
    get(cl, "/echo/again", 2000);
}

static void test_net_keep_alive_race_resent_once(void **state)
{
    (void)state;
    struct srv v;
    srv_start(&v);
    static struct client cl;
    net_open(&cl, &v, 0, 1);
    struct br_rush_req q = {.pool = BR_RUSH_POOL_CROWD, .target = 0, .method = "GET", .path = "/close-after",
                            .timeout_ms = 2000};
    assert_int_equal(br_rush_net_send(cl.net, &q, resend_from_callback, &cl), BR_OK);
    run_until(&cl, 2, 3000);
    assert_int_equal(cl.answers, 2);
    assert_int_equal(cl.last[0].status, 200);
    assert_int_equal(cl.last[1].status, 200);
    assert_string_equal(cl.bodies[1], "/echo/again");
    struct br_rush_net_stats st;
    br_rush_net_stats(cl.net, &st);
    assert_int_equal(st.retried_closed, 1);
    assert_int_equal(st.connects, 2);
    /* Closed again before any byte on the fresh connection: only once, then CLOSED. */
    get(&cl, "/drop", 2000);
    run_until(&cl, 3, 3000);
    assert_int_equal(cl.last[2].status, 0);
    assert_int_equal(cl.last[2].err, BR_RUSH_NET_CLOSED);
    br_rush_net_stats(cl.net, &st);
    assert_int_equal(st.retried_closed, 2);
    assert_int_equal(atomic_load(&v.requests), 4);
    br_rush_net_free(cl.net);
    /* A fresh connection closed before any byte is not the race: CLOSED, no resend. */
    net_open(&cl, &v, 0, 1);
    get(&cl, "/drop", 2000);
    run_until(&cl, 1, 3000);
    assert_int_equal(cl.last[0].err, BR_RUSH_NET_CLOSED);
    br_rush_net_stats(cl.net, &st);
    assert_int_equal(st.retried_closed, 0);
    assert_int_equal(atomic_load(&v.requests), 5);
    br_rush_net_free(cl.net);
    srv_stop(&v);
}

static void test_net_connect_refused(void **state)
{
    (void)state;
    /* A port that was just listened on and closed: nobody there. */
    struct srv v;
    srv_start(&v);
    srv_stop(&v);
    static struct client cl;
    net_open(&cl, &v, 0, 1);
    get(&cl, "/echo/x", 2000);
    run_until(&cl, 1, 3000);
    assert_int_equal(cl.answers, 1);
    assert_int_equal(cl.last[0].status, 0);
    assert_int_equal(cl.last[0].err, BR_RUSH_NET_CONNECT);
    br_rush_net_free(cl.net);
}

static void on_stream(void *ctx, uint32_t stream, int kind, int status, const struct br_rush_sse_event *ev)
{
    struct client *cl = ctx;
    assert_int_equal(stream, cl->stream_id);
    assert_true(cl->stream_n < 16);
    cl->stream_kinds[cl->stream_n] = kind;
    cl->stream_statuses[cl->stream_n] = status;
    cl->stream_data[cl->stream_n][0] = '\0';
    if (kind == BR_RUSH_STREAM_EVENT) {
        snprintf(cl->stream_data[cl->stream_n], 128, "%s:%s", ev->event, ev->data);
        if (cl->close_on_event) {
            br_rush_net_stream_close(cl->net, stream);
        }
    }
    cl->stream_n++;
    if (kind == BR_RUSH_STREAM_END || kind == BR_RUSH_STREAM_CUT) {
        cl->answers++;
    }
}

static void test_net_stream_two_events_then_end(void **state)
{
    (void)state;
    struct srv v;
    srv_start(&v);
    static struct client cl;
    net_open(&cl, &v, 1, 1);
    assert_int_equal(br_rush_net_stream_open(cl.net, 0, "/stream/1", "tok", "41", 2000, on_stream, &cl,
                                             &cl.stream_id),
                     BR_OK);
    uint32_t other = 0;
    assert_int_equal(br_rush_net_stream_open(cl.net, 0, "/stream/2", "tok", NULL, 2000, on_stream, &cl, &other),
                     BR_E_FULL);
    assert_int_equal(br_rush_net_streams_open(cl.net), 1);
    run_until(&cl, 1, 3000);
    assert_int_equal(cl.stream_n, 4);
    assert_int_equal(cl.stream_kinds[0], BR_RUSH_STREAM_OPEN);
    assert_int_equal(cl.stream_statuses[0], 200);
    assert_int_equal(cl.stream_kinds[1], BR_RUSH_STREAM_EVENT);
    assert_string_equal(cl.stream_data[1], "position:{\"status\":\"waiting\"}");
    assert_int_equal(cl.stream_kinds[2], BR_RUSH_STREAM_EVENT);
    assert_string_equal(cl.stream_data[2], "pass:{\"token\":\"p1.x\"}");
    assert_int_equal(cl.stream_kinds[3], BR_RUSH_STREAM_END);
    assert_int_equal(br_rush_net_streams_open(cl.net), 0);
    pthread_mutex_lock(&v.mu);
    assert_non_null(strstr(v.last_head, "GET /stream/1 HTTP/1.1\r\n"));
    assert_non_null(strstr(v.last_head, "\r\nAuthorization: Bearer tok\r\n"));
    assert_non_null(strstr(v.last_head, "\r\nAccept: text/event-stream\r\n"));
    assert_non_null(strstr(v.last_head, "\r\nLast-Event-ID: 41\r\n"));
    pthread_mutex_unlock(&v.mu);
    br_rush_net_free(cl.net);
    srv_stop(&v);
}

static void test_net_stream_cut_when_idle(void **state)
{
    (void)state;
    struct srv v;
    srv_start(&v);
    static struct client cl;
    net_open(&cl, &v, 2, 1);
    int64_t t0 = br_rush_now_us();
    assert_int_equal(br_rush_net_stream_open(cl.net, 0, "/silent", "tok", NULL, 300, on_stream, &cl, &cl.stream_id),
                     BR_OK);
    run_until(&cl, 1, 3000);
    int64_t took = br_rush_now_us() - t0;
    assert_int_equal(cl.stream_n, 2);
    assert_int_equal(cl.stream_kinds[0], BR_RUSH_STREAM_OPEN);
    assert_int_equal(cl.stream_kinds[1], BR_RUSH_STREAM_CUT);
    assert_true(took >= 300000 && took < 2000000);
    assert_int_equal(br_rush_net_streams_open(cl.net), 0);
    pthread_mutex_lock(&v.mu);
    assert_null(strstr(v.last_head, "Last-Event-ID"));
    pthread_mutex_unlock(&v.mu);
    br_rush_net_free(cl.net);
    srv_stop(&v);
}

static bool stream_quiet(void *ctx)
{
    struct client *cl = ctx;
    return cl->stream_n >= 2;
}

static void test_net_stream_closed_from_its_callback(void **state)
{
    (void)state;
    struct srv v;
    srv_start(&v);
    static struct client cl;
    net_open(&cl, &v, 1, 1);
    cl.close_on_event = true;
    assert_int_equal(br_rush_net_stream_open(cl.net, 0, "/stream/c", "tok", NULL, 2000, on_stream, &cl,
                                             &cl.stream_id),
                     BR_OK);
    assert_int_equal(br_rush_net_run(cl.net, br_rush_now_us() + 3000000, stream_quiet, &cl), BR_OK);
    /* Let the rest of the bytes arrive: no callback after the close. */
    assert_int_equal(br_rush_net_run(cl.net, br_rush_now_us() + 200000, NULL, NULL), BR_OK);
    assert_int_equal(cl.stream_n, 2);
    assert_int_equal(cl.stream_kinds[0], BR_RUSH_STREAM_OPEN);
    assert_int_equal(cl.stream_kinds[1], BR_RUSH_STREAM_EVENT);
    assert_int_equal(br_rush_net_streams_open(cl.net), 0);
    br_rush_net_free(cl.net);
    srv_stop(&v);
}

static bool three_timers(void *ctx)
{
    struct client *cl = ctx;
    return cl->timers >= 3;
}

static void test_net_timers(void **state)
{
    (void)state;
    static struct client cl;
    net_open(&cl, NULL, 0, 1);
    int64_t now = br_rush_now_us();
    br_rush_net_timer_set(cl.net, 5, now + 60000);
    br_rush_net_timer_set(cl.net, 2, now + 20000);
    br_rush_net_timer_set(cl.net, 7, now + 40000);
    br_rush_net_timer_set(cl.net, 3, now + 30000);
    br_rush_net_timer_cancel(cl.net, 3);
    br_rush_net_timer_set(cl.net, 2, now + 50000); /* replaces the armed one */
    assert_int_equal(br_rush_net_run(cl.net, now + 2000000, three_timers, &cl), BR_OK);
    assert_true(br_rush_now_us() - now >= 60000);
    assert_int_equal(cl.timers, 3);
    assert_int_equal(cl.timers_fired[0], 7);
    assert_int_equal(cl.timers_fired[1], 2);
    assert_int_equal(cl.timers_fired[2], 5);
    assert_int_equal(br_rush_net_run(cl.net, br_rush_now_us() + 50000, NULL, NULL), BR_OK);
    assert_int_equal(cl.timers, 3);
    br_rush_net_free(cl.net);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_content_length_answer),
        cmocka_unit_test(test_content_length_same_twice_is_one),
        cmocka_unit_test(test_bare_lf_lines),
        cmocka_unit_test(test_chunked_with_extensions_and_trailers),
        cmocka_unit_test(test_close_delimited_answer),
        cmocka_unit_test(test_http10_closes_unless_keep_alive),
        cmocka_unit_test(test_retry_after_and_no_body_statuses),
        cmocka_unit_test(test_interim_100_then_answer),
        cmocka_unit_test(test_two_answers_in_one_buffer),
        cmocka_unit_test(test_recorded_mhd_stream_head),
        cmocka_unit_test(test_bad_status_lines),
        cmocka_unit_test(test_two_different_content_lengths),
        cmocka_unit_test(test_bad_content_length),
        cmocka_unit_test(test_content_length_with_chunked),
        cmocka_unit_test(test_oversized_head),
        cmocka_unit_test(test_bad_chunk_sizes),
        cmocka_unit_test(test_eof_inside_a_body),
        cmocka_unit_test(test_net_round_trip_and_keep_alive),
        cmocka_unit_test(test_net_request_timeout),
        cmocka_unit_test(test_net_arrived_is_the_kernels_receipt),
        cmocka_unit_test(test_net_keep_alive_race_resent_once),
        cmocka_unit_test(test_net_connect_refused),
        cmocka_unit_test(test_net_stream_two_events_then_end),
        cmocka_unit_test(test_net_stream_cut_when_idle),
        cmocka_unit_test(test_net_stream_closed_from_its_callback),
        cmocka_unit_test(test_net_timers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
