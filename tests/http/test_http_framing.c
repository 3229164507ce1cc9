/*
 * test_http_framing.c -- request framing through the real binary, with the
 * exact bytes on a raw socket read until the server closes it: requests
 * that could be read two ways (two Content-Length values, Content-Length
 * with Transfer-Encoding: request smuggling behind a proxy) are refused
 * with one 400 and the connection closes before the smuggled request is
 * read; a malformed Content-Length gets exactly one well-formed answer; an
 * oversized body gets a 413 the client can read; honest pipelining still
 * works.
 *
 * Usage: test_http_framing BINARY   (needs the process: skipped against a
 * base URL)
 */
#define _DEFAULT_SOURCE

#include <stdlib.h>

#include "check.h"
#include "client.h"
#include "raw.h"

#define BODY_MAX 4096u          /* the suite's server takes 4096 bytes */
#define DRAIN_BOUND (16u * BODY_MAX)
#define WAIT_MS 10000

struct fx {
    struct t_server srv;
    uint16_t port;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    t_server_start(&f->srv, (const char *const[]){"--rate-limit-user", "0", "--rate-limit-ip",
                                                  "0", "--body-max", "4096", NULL});
    f->port = t_base_port(f->srv.base);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    int rc = t_server_stop(&f->srv);
    t_server_cleanup(&f->srv);
    free(f);
    return rc == 0 ? 0 : -1;
}

static uint16_t port(void **state)
{
    return ((struct fx *)*state)->port;
}

static void show(const char *what, const struct t_exchange *x)
{
    fprintf(stderr, "%s: %zu bytes, eof %d, reset %d, timeout %d, sent all %d:\n%.*s\n", what,
            x->len, x->eof, x->reset, x->timed_out, x->sent_all, (int)(x->len > 2000 ? 2000 : x->len),
            x->data);
}

/* Exactly one answer with this status and error code, and the server
 * closed the connection (cleanly when clean is set). */
static void expect_one(const char *what, const struct t_exchange *x, int status, const char *code,
                       bool clean)
{
    char got[64];
    t_error_code(x, got, sizeof got);
    bool ok = t_status_lines(x) == 1 && t_first_status(x) == status && strcmp(got, code) == 0 &&
              !x->timed_out && (!clean || (x->eof && x->sent_all)) &&
              strstr(x->data, "Content-Type: application/json") != NULL;
    if (!ok) {
        show(what, x);
        fail_msg("%s: want exactly one %d %s and the connection closed%s", what, status, code,
                 clean ? " cleanly" : "");
    }
}

/* The smuggled request must not be answered: its path would answer 200
 * {"status":"ok"}. */
static void smuggle(void **state, const char *what, const char *req)
{
    struct t_exchange x;
    t_exchange(port(state), req, strlen(req), WAIT_MS, &x);
    expect_one(what, &x, 400, "INVALID_REQUEST", false);
    if (strstr(x.data, "\"ok\"") != NULL || strstr(x.data, "Connection: close") == NULL) {
        show(what, &x);
        fail_msg("%s: the smuggled request was answered, or no Connection: close", what);
    }
    t_exchange_free(&x);
}

static void test_two_content_lengths(void **state)
{
    smuggle(state, "two Content-Length",
            "POST /api/v1/auth/login HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            "Content-Length: 2\r\nContent-Length: 38\r\n\r\n"
            "{}GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
    smuggle(state, "two Content-Length, folded case",
            "POST /api/v1/auth/login HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            "content-length: 38\r\nCONTENT-LENGTH: 2\r\n\r\n"
            "{}GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
}

static void test_length_with_chunked(void **state)
{
    smuggle(state, "Content-Length with Transfer-Encoding",
            "POST /api/v1/auth/login HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            "Content-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n"
            "0\r\n\r\nGET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
    smuggle(state, "Transfer-Encoding then Content-Length",
            "POST /api/v1/auth/login HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"
            "0\r\n\r\nGET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
    smuggle(state, "a Transfer-Encoding other than chunked",
            "POST /api/v1/auth/login HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: gzip, chunked\r\n\r\n"
            "0\r\n\r\nGET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
}

static void test_malformed_length(void **state)
{
    static const char *const VALUES[] = {"-1", "99999999999999999999999", "18446744073709551616",
                                         "12abc", "0x10"};
    for (size_t i = 0; i < sizeof VALUES / sizeof VALUES[0]; i++) {
        char req[512];
        int n = snprintf(req, sizeof req,
                         "POST /api/v1/auth/login HTTP/1.1\r\nHost: t\r\nContent-Type: "
                         "application/json\r\nContent-Length: %s\r\n\r\n{}",
                         VALUES[i]);
        struct t_exchange x;
        t_exchange(port(state), req, (size_t)n, WAIT_MS, &x);
        char what[96];
        snprintf(what, sizeof what, "Content-Length: %s", VALUES[i]);
        expect_one(what, &x, 400, "INVALID_REQUEST", false);
        t_exchange_free(&x);
    }
    /* The server is still fine. */
    struct t_resp r;
    t_request(&((struct fx *)*state)->srv, "GET", "/healthz", NULL, NULL, NULL, 0, &r);
    EXPECT(r, 200, NULL);
    t_resp_free(&r);
}

static char *body_request(size_t body, bool chunked, size_t *len)
{
    char *req = malloc(body + body / 16 + 1024);
    int off = snprintf(req, 1024,
                       "POST /api/v1/auth/login HTTP/1.1\r\nHost: t\r\nContent-Type: "
                       "application/json\r\n");
    if (!chunked) {
        off += snprintf(req + off, 256, "Content-Length: %zu\r\n\r\n", body);
        memset(req + off, ' ', body);
        *len = (size_t)off + body;
        return req;
    }
    off += snprintf(req + off, 256, "Transfer-Encoding: chunked\r\n\r\n");
    for (size_t done = 0; done < body; done += 0x800) {
        off += snprintf(req + off, 16, "800\r\n");
        memset(req + off, ' ', 0x800);
        off += 0x800;
        off += snprintf(req + off, 8, "\r\n");
    }
    off += snprintf(req + off, 16, "0\r\n\r\n");
    *len = (size_t)off;
    return req;
}

static void test_oversized_readable(void **state)
{
    /* A declared body over the limit, within the drain bound: the client
     * sends it all, reads one 413, and the server closes cleanly (no reset
     * that could destroy the answer). */
    size_t len = 0;
    char *req = body_request(DRAIN_BOUND - 1024, false, &len);
    struct t_exchange x;
    t_exchange(port(state), req, len, WAIT_MS, &x);
    expect_one("declared oversized body", &x, 413, "PAYLOAD_TOO_LARGE", true);
    t_exchange_free(&x);
    free(req);

    /* The same in chunks. */
    req = body_request(DRAIN_BOUND - 4096, true, &len);
    t_exchange(port(state), req, len, WAIT_MS, &x);
    expect_one("chunked oversized body", &x, 413, "PAYLOAD_TOO_LARGE", true);
    t_exchange_free(&x);
    free(req);

    /* Chunks far past the drain bound: the 413 still arrives before the
     * connection closes (the client may then see a reset). */
    req = body_request(8 * DRAIN_BOUND, true, &len);
    t_exchange(port(state), req, len, WAIT_MS, &x);
    expect_one("chunked body past the drain bound", &x, 413, "PAYLOAD_TOO_LARGE", false);
    t_exchange_free(&x);
    free(req);
}

static void test_pipelining_still_works(void **state)
{
    /* Two honest requests on one connection, the first with a body: both
     * answered, in order. */
    static const char REQ[] =
        "POST /api/v1/auth/login HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        "Content-Length: 2\r\n\r\n{}"
        "GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    struct t_exchange x;
    t_exchange(port(state), REQ, sizeof REQ - 1, WAIT_MS, &x);
    if (t_status_lines(&x) != 2 || t_first_status(&x) != 400 ||
        strstr(x.data, "\"ok\"") == NULL) {
        show("pipelined", &x);
        fail_msg("want 400 then 200 on one connection");
    }
    t_exchange_free(&x);
}

int main(int argc, char **argv)
{
    t_init(argc, argv);
    if (t_external()) {
        printf("skipped: the framing tests start their own server\n");
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_content_lengths), cmocka_unit_test(test_length_with_chunked),
        cmocka_unit_test(test_malformed_length),    cmocka_unit_test(test_oversized_readable),
        cmocka_unit_test(test_pipelining_still_works),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
