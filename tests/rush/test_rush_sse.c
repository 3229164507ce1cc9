/*
 * test_rush_sse.c -- the rush's server-sent events parser (server/rush_http.h).
 *
 * Every stream is fed whole, byte by byte and split in two at every offset
 * (so a CR that ends one piece meets its LF in the next), and must dispatch
 * the same events with the same EventSource state each time. The streams are
 * the bytes server/hub.c writes (retry, position, keep-alive comment, pass),
 * the WHATWG line-ending and field rules, and the limits. The last case runs
 * a stream recorded from `serve --demo` through the chunked decoder into the
 * SSE parser.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "server/rush_http.h"

#define EVENTS_MAX 8

struct seen {
    unsigned count;
    char event[EVENTS_MAX][32];
    char data[EVENTS_MAX][BR_RUSH_SSE_DATA_MAX];
    size_t data_len[EVENTS_MAX];
};

static void on_event(void *ctx, const struct br_rush_sse_event *ev)
{
    struct seen *s = ctx;
    assert_true(s->count < EVENTS_MAX);
    assert_non_null(ev->event);
    assert_true(strlen(ev->event) < sizeof s->event[0]);
    strcpy(s->event[s->count], ev->event);
    assert_true(ev->data_len < BR_RUSH_SSE_DATA_MAX);
    assert_int_equal(ev->data[ev->data_len], '\0');
    memcpy(s->data[s->count], ev->data, ev->data_len + 1);
    s->data_len[s->count] = ev->data_len;
    s->count++;
}

struct expect {
    unsigned count;
    const char *event[EVENTS_MAX];
    const char *data[EVENTS_MAX];
    uint32_t retry_ms;
    uint64_t comments;
    const char *last_id; /* NULL: none */
    int rc;
};

static struct seen g_seen;
static struct br_rush_sse g_sse;

/* Feeds the stream cut at cuts[0..ncuts); returns 0 or the first -1. */
static int feed_cut(const char *m, size_t n, const size_t *cuts, size_t ncuts)
{
    br_rush_sse_init(&g_sse);
    memset(&g_seen, 0, sizeof g_seen);
    size_t from = 0;
    for (size_t c = 0; c <= ncuts; c++) {
        size_t to = c < ncuts ? cuts[c] : n;
        char *piece = malloc(to - from + 1);
        assert_non_null(piece);
        memcpy(piece, m + from, to - from);
        int rc = br_rush_sse_feed(&g_sse, piece, to - from, on_event, &g_seen);
        free(piece);
        if (rc != 0) {
            return rc;
        }
        from = to;
    }
    return 0;
}

static void check_one(const char *m, size_t n, const size_t *cuts, size_t ncuts, const struct expect *e)
{
    int rc = feed_cut(m, n, cuts, ncuts);
    assert_int_equal(rc, e->rc);
    if (e->rc != 0) {
        return;
    }
    assert_int_equal(g_seen.count, e->count);
    for (unsigned i = 0; i < e->count; i++) {
        assert_string_equal(g_seen.event[i], e->event[i]);
        assert_int_equal(g_seen.data_len[i], strlen(e->data[i]));
        assert_string_equal(g_seen.data[i], e->data[i]);
    }
    assert_int_equal(g_sse.retry_ms, e->retry_ms);
    assert_int_equal(g_sse.comments, e->comments);
    if (e->last_id == NULL) {
        assert_false(g_sse.has_id);
    } else {
        assert_true(g_sse.has_id);
        assert_string_equal(g_sse.last_id, e->last_id);
    }
}

static void check_all_splits(const char *m, size_t n, const struct expect *e)
{
    check_one(m, n, NULL, 0, e);
    size_t *cuts = malloc((n + 1) * sizeof *cuts);
    assert_non_null(cuts);
    for (size_t i = 0; i + 1 < n; i++) {
        cuts[i] = i + 1;
    }
    check_one(m, n, cuts, n > 0 ? n - 1 : 0, e);
    for (size_t k = 1; k < n; k++) {
        check_one(m, n, &k, 1, e);
    }
    free(cuts);
}

#define MSG(s) s, sizeof(s) - 1

#define POSITION_JSON                                                                              \
    "{\"event_id\":1,\"status\":\"waiting\",\"position\":1,\"queue_length\":1,\"estimated_wait_s\":1}"
#define PASS_JSON                                                                                  \
    "{\"event_id\":1,\"token\":\"p1.1.1.4294967297.1796327428911.6325d1b450dc00568d59fe2ed7c024f249" \
    "31d0dc663a6983ca4fe99ed090c6f5\",\"expires_at\":\"2026-12-03T19:50:28.911Z\"}"

/* What hub.c writes: the hello (hub.c:506), a position frame and a pass frame
 * (sse_frame, hub.c:142), the keep-alive comment (hub.c:382). */
static void test_hub_bytes(void **state)
{
    (void)state;
    static const char m[] = "retry: 3000\n\n"
                            "event: position\ndata: " POSITION_JSON "\n\n"
                            ": keep-alive\n\n"
                            ": keep-alive\n\n"
                            "event: pass\ndata: " PASS_JSON "\n\n";
    struct expect e = {.count = 2, .event = {"position", "pass"}, .data = {POSITION_JSON, PASS_JSON},
                       .retry_ms = 3000, .comments = 2};
    check_all_splits(MSG(m), &e);
}

static void test_line_ends_crlf_cr_lf(void **state)
{
    (void)state;
    static const char m[] = "data: a\r\ndata: b\rdata: c\n\r\n"
                            "event: x\r\rdata: d\r\r"
                            "data: e\n\n";
    /* "event: x" then an empty line with no data: nothing dispatched, type reset. */
    struct expect e = {.count = 3, .event = {"message", "message", "message"}, .data = {"a\nb\nc", "d", "e"}};
    check_all_splits(MSG(m), &e);
}

static void test_field_rules(void **state)
{
    (void)state;
    static const char m[] = "data\n"             /* no colon: the field with an empty value */
                            "data:x\n"           /* no space */
                            "data:  two\n"       /* only one space removed */
                            "unknown: field\n"   /* ignored */
                            "event: custom\n"
                            "\n"
                            "data:\n\n"          /* an empty data line still dispatches */
                            "event: lone\n\n";   /* no data: no dispatch */
    struct expect e = {.count = 2, .event = {"custom", "message"}, .data = {"\nx\n two", ""}};
    check_all_splits(MSG(m), &e);
}

static void test_id_field(void **state)
{
    (void)state;
    static const char m[] = "id: 41\ndata: a\n\n"
                            "id: 42\n\n"      /* no data: still becomes the last id */
                            "id: bad\0id\n\n" /* contains NUL: ignored */
                            "data: b\n\n";
    struct expect e = {.count = 2, .event = {"message", "message"}, .data = {"a", "b"}, .last_id = "42"};
    check_all_splits(MSG(m), &e);
    /* An empty id clears it; an id not followed by an empty line is not yet the last. */
    static const char m2[] = "id: 7\n\nid\n\nid: 8\n";
    struct expect e2 = {.count = 0};
    check_all_splits(MSG(m2), &e2);
}

static void test_retry_field(void **state)
{
    (void)state;
    static const char m[] = "retry: 500\nretry: 12a\nretry:\nretry: -1\nretry: 1 2\n\n";
    struct expect e = {.count = 0, .retry_ms = 500};
    check_all_splits(MSG(m), &e);
}

static void test_limits_break_the_stream(void **state)
{
    (void)state;
    char *m = malloc(BR_RUSH_SSE_LINE_MAX + 16);
    assert_non_null(m);
    memcpy(m, ": ", 2);
    memset(m + 2, 'c', BR_RUSH_SSE_LINE_MAX);
    m[BR_RUSH_SSE_LINE_MAX + 2] = '\n';
    struct expect e = {.rc = -1};
    check_all_splits(m, BR_RUSH_SSE_LINE_MAX + 3, &e);
    /* A line of exactly the max is fine. */
    struct expect ok = {.comments = 1};
    m[BR_RUSH_SSE_LINE_MAX] = '\n';
    check_one(m, BR_RUSH_SSE_LINE_MAX + 1, NULL, 0, &ok);
    free(m);
    /* Data over its max across lines. */
    size_t line = 1000, n = 0;
    char *d = malloc(4 * (line + 8));
    assert_non_null(d);
    for (int i = 0; i < 3; i++) {
        memcpy(d + n, "data: ", 6);
        memset(d + n + 6, 'd', line);
        d[n + 6 + line] = '\n';
        n += line + 7;
    }
    d[n++] = '\n';
    check_all_splits(d, n, &e);
    free(d);
    check_all_splits(MSG("event: an-event-name-of-more-than-32-bytes\ndata: x\n\n"), &e);
    check_all_splits(MSG("id: an-id-of-more-than-sixty-four-bytes-0123456789-0123456789-0123456789\n\n"), &e);
}

/* ---- the chunked decoder chained into the SSE parser ---- */

/* Recorded from `serve --demo` (curl --raw), with a keep-alive chunk added
 * as libmicrohttpd frames one pull of hub.c's buffer: "%X\r\n" bytes "\r\n". */
static const char recorded[] = "HTTP/1.1 200 OK\r\n"
                               "Date: Thu, 03 Dec 2026 19:45:28 GMT\r\n"
                               "Content-Type: text/event-stream\r\n"
                               "Cache-Control: no-cache\r\n"
                               "X-Accel-Buffering: no\r\n"
                               "X-Request-Id: 44400b04-4\r\n"
                               "Transfer-Encoding: chunked\r\n"
                               "\r\n"
                               "79\r\n"
                               "retry: 3000\n"
                               "\n"
                               "event: position\n"
                               "data: " POSITION_JSON "\n"
                               "\n"
                               "\r\n"
                               "E\r\n"
                               ": keep-alive\n\n"
                               "\r\n"
                               "122\r\n"
                               "event: position\n"
                               "data: {\"event_id\":1,\"status\":\"admitted\",\"position\":0,\"queue_length\":0,"
                               "\"estimated_wait_s\":0}\n"
                               "\n"
                               "event: pass\n"
                               "data: " PASS_JSON "\n"
                               "\n"
                               "\r\n"
                               "0\r\n"
                               "\r\n";

struct chain {
    struct br_rush_sse sse;
    struct seen seen;
    int sse_rc;
};

static void chain_body(void *ctx, const char *bytes, size_t n)
{
    struct chain *c = ctx;
    if (c->sse_rc == 0) {
        c->sse_rc = br_rush_sse_feed(&c->sse, bytes, n, on_event, &c->seen);
    }
}

static void chain_one(const size_t *cuts, size_t ncuts)
{
    static struct chain c;
    memset(&c, 0, sizeof c);
    br_rush_sse_init(&c.sse);
    struct br_rush_http_resp p;
    br_rush_http_resp_init(&p);
    size_t n = sizeof recorded - 1, from = 0;
    int rc = BR_RUSH_PARSE_AGAIN;
    for (size_t k = 0; k <= ncuts && rc == BR_RUSH_PARSE_AGAIN; k++) {
        size_t to = k < ncuts ? cuts[k] : n, used = 0;
        rc = br_rush_http_feed(&p, recorded + from, to - from, &used, chain_body, &c, NULL);
        from += used;
    }
    assert_int_equal(rc, BR_RUSH_PARSE_DONE);
    assert_int_equal(from, n);
    assert_int_equal(p.status, 200);
    assert_string_equal(p.content_type, "text/event-stream");
    assert_int_equal(c.sse_rc, 0);
    assert_int_equal(c.seen.count, 3);
    assert_string_equal(c.seen.event[0], "position");
    assert_string_equal(c.seen.data[0], POSITION_JSON);
    assert_string_equal(c.seen.event[1], "position");
    assert_non_null(strstr(c.seen.data[1], "\"status\":\"admitted\""));
    assert_string_equal(c.seen.event[2], "pass");
    assert_string_equal(c.seen.data[2], PASS_JSON);
    assert_int_equal(c.sse.retry_ms, 3000);
    assert_int_equal(c.sse.comments, 1);
}

static void test_recorded_stream_through_chunked_decoder(void **state)
{
    (void)state;
    size_t n = sizeof recorded - 1;
    chain_one(NULL, 0);
    size_t *cuts = malloc(n * sizeof *cuts);
    assert_non_null(cuts);
    for (size_t i = 0; i + 1 < n; i++) {
        cuts[i] = i + 1;
    }
    chain_one(cuts, n - 1);
    for (size_t k = 1; k < n; k++) {
        chain_one(&k, 1);
    }
    free(cuts);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hub_bytes),
        cmocka_unit_test(test_line_ends_crlf_cr_lf),
        cmocka_unit_test(test_field_rules),
        cmocka_unit_test(test_id_field),
        cmocka_unit_test(test_retry_field),
        cmocka_unit_test(test_limits_break_the_stream),
        cmocka_unit_test(test_recorded_stream_through_chunked_decoder),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
