/*
 * test_log.c -- the logger on its own: whatever bytes go into a line (an
 * escaped client string, a careless raw field, a line longer than the
 * buffer), what comes out is one JSON object per line, valid UTF-8, with a
 * timestamp. The HTTP suite (test_http_ops) checks the same through the
 * real server. Also the level libmicrohttpd's own lines are logged at.
 */
#define _DEFAULT_SOURCE

#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "adapters/http.h"
#include "adapters/log.h"

static const char *const NASTY[] = {
    "plain", "quote\" backslash\\ slash/", "nl\n cr\r tab\t nul-less \x01\x1f\x7f",
    "\xff\xfe bytes", "\xc3\x28 bad continuation", "\xe2\x82 cut three", "\xf0\x9f\x98 cut four",
    "\xc0\xaf overlong", "\xed\xa0\x80 surrogate", "\xf4\x90\x80\x80 past U+10FFFF",
    "ok \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "{\"json\":\"inside\"}"};

/* s, quoted, must parse as one JSON string. */
static void expect_json_string(const char *escaped)
{
    size_t n = strlen(escaped);
    char *q = malloc(n + 3);
    q[0] = '"';
    memcpy(q + 1, escaped, n);
    q[n + 1] = '"';
    q[n + 2] = '\0';
    json_error_t e;
    json_t *j = json_loads(q, JSON_DECODE_ANY, &e);
    if (!json_is_string(j)) {
        fail_msg("not a JSON string (%s): %s", e.text, q);
    }
    json_decref(j);
    free(q);
}

static void test_escape(void **state)
{
    (void)state;
    char out[512];
    for (size_t i = 0; i < sizeof NASTY / sizeof NASTY[0]; i++) {
        expect_json_string(br_log_escape(NASTY[i], out, sizeof out));
        /* Cut at every size: never inside an escape or a character. */
        for (size_t cap = 1; cap < 64; cap++) {
            expect_json_string(br_log_escape(NASTY[i], out, cap));
            assert_true(strlen(out) < cap);
        }
    }
    assert_string_equal(br_log_escape("\xff", out, sizeof out), "\\ufffd");
    assert_string_equal(br_log_escape("a\xc3\xa9", out, sizeof out), "a\xc3\xa9");
    assert_string_equal(br_log_escape(NULL, out, sizeof out), "");
}

/* Lines written through a pipe: each a JSON object with "ts". */
static unsigned read_lines(int fd, char *buf, size_t cap)
{
    ssize_t n = read(fd, buf, cap - 1);
    assert_true(n > 0);
    buf[n] = '\0';
    unsigned lines = 0;
    for (char *line = buf; *line != '\0';) {
        char *nl = strchr(line, '\n');
        assert_non_null(nl);
        *nl = '\0';
        json_error_t e;
        json_t *j = json_loads(line, 0, &e);
        if (!json_is_object(j) || !json_is_string(json_object_get(j, "ts"))) {
            fail_msg("not a JSON line with ts (%s): %s", e.text, line);
        }
        json_decref(j);
        lines++;
        line = nl + 1;
    }
    return lines;
}

static void test_lines(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    struct br_log log = {.level = BR_LOG_DEBUG, .fd = p[1]};
    char esc[256];
    for (size_t i = 0; i < sizeof NASTY / sizeof NASTY[0]; i++) {
        br_logf(&log, BR_LOG_INFO, "escaped", "\"s\":\"%s\"", br_log_escape(NASTY[i], esc, sizeof esc));
    }
    /* A careless caller: raw control bytes and invalid UTF-8 in a field. */
    br_logf(&log, BR_LOG_WARN, "raw", "\"s\":\"%s\"", "line\nbreak \xff\xc3");
    /* Fields longer than a line: dropped, said so, still JSON. */
    char *big = malloc(3 * BR_LOG_LINE_MAX);
    memset(big, 'x', 3 * BR_LOG_LINE_MAX - 1);
    big[3 * BR_LOG_LINE_MAX - 1] = '\0';
    br_logf(&log, BR_LOG_ERROR, "long", "\"s\":\"%s\"", big);
    free(big);
    br_logf(&log, BR_LOG_DEBUG, "msg with \"quotes\"\n", NULL);
    close(p[1]);
    char buf[65536];
    unsigned want = (unsigned)(sizeof NASTY / sizeof NASTY[0]) + 3;
    assert_int_equal(read_lines(p[0], buf, sizeof buf), want);
    close(p[0]);
}

/* libmicrohttpd's lines (adapters/http.c): a send that found the peer gone is
 * a client that closed its connection (thousands of queue streams at an
 * opening): debug; anything else stays a warning. */
static void test_mhd_levels(void **state)
{
    (void)state;
    assert_int_equal(br_http_mhd_log_level("Failed to send the footers for the request for "
                                           "`/api/v1/queue/position/1/stream'. Error: The connection "
                                           "was forcibly closed by remote peer"),
                     BR_LOG_DEBUG);
    assert_int_equal(br_http_mhd_log_level("Failed to send the footers for the request for `/x'. "
                                           "Error: The socket is no longer available for sending"),
                     BR_LOG_DEBUG);
    assert_int_equal(br_http_mhd_log_level("Failed to send the chunked response body for the request "
                                           "for `/x'. Error: The connection was forcibly closed by "
                                           "remote peer"),
                     BR_LOG_DEBUG);
    /* Other send failures, and the peer's words outside a send failure, stay warnings. */
    assert_int_equal(br_http_mhd_log_level("Failed to send the response headers for the request for "
                                           "`/x'. Error: Not enough system resources to serve the "
                                           "request"),
                     BR_LOG_WARN);
    assert_int_equal(br_http_mhd_log_level("Error accepting connection: closed by remote peer"),
                     BR_LOG_WARN);
    assert_int_equal(br_http_mhd_log_level("Server reached connection limit. Closing inbound "
                                           "connection."),
                     BR_LOG_WARN);
    assert_int_equal(br_http_mhd_log_level(""), BR_LOG_WARN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_escape), cmocka_unit_test(test_lines),
                                       cmocka_unit_test(test_mhd_levels)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
