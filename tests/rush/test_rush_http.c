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
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/rush_http.h"

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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
