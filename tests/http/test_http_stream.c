/*
 * test_http_stream.c -- the HTTP adapter's streams on their own
 * (adapters/http.c, adapters/http_stream.c): a server started with
 * br_http_start and a handler that answers /s?i=N with stream N, whose
 * bytes the test appends and wakes. Over raw sockets it checks the wire
 * (HTTP/1.1 chunks, HTTP/1.0 close-delimited, HEAD header only), that a
 * peer that goes away ends its stream (the application's closed runs), that
 * streams count against connections_max though libmicrohttpd no longer
 * holds them, that 400 streams each get their own bytes, and that stopping
 * the server closes every stream still open.
 * scripts/test.d/27-http-stream-plant.sh shows it failing on planted bugs.
 */
#define _GNU_SOURCE

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "adapters/http.h"

#define STREAMS_MAX 512
#define MANY 400

/* Locks as the server's hub takes them: g.mu (which streams exist) before
 * the request's mutex (inside br_http_stream_wake); a stream's own bmu (its
 * bytes) is a leaf, taken by pull under the request's mutex. */
struct tstream {
    struct br_http_req *req; /* under g.mu, NULL once closed */
    pthread_mutex_t bmu;     /* guards the rest */
    char buf[256];
    size_t len;
    bool end;
    int pulls;
    bool closed;
};

static struct {
    pthread_mutex_t mu;
    struct tstream s[STREAMS_MAX];
    atomic_int closed;
} g = {.mu = PTHREAD_MUTEX_INITIALIZER};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec d = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&d, NULL);
}

static ssize_t pull(void *cls, char *buf, size_t max)
{
    struct tstream *t = cls;
    pthread_mutex_lock(&t->bmu);
    t->pulls++;
    ssize_t n = 0;
    if (t->len > 0) {
        size_t k = t->len < max ? t->len : max;
        memcpy(buf, t->buf, k);
        memmove(t->buf, t->buf + k, t->len - k);
        t->len -= k;
        n = (ssize_t)k;
    } else if (t->end) {
        n = -1;
    }
    pthread_mutex_unlock(&t->bmu);
    return n;
}

static void handler(void *ctx, struct br_http_req *r)
{
    (void)ctx;
    const char *i = br_http_query(r, "i");
    if (strcmp(br_http_path(r), "/s") != 0 || i == NULL || atoi(i) < 0 ||
        atoi(i) >= STREAMS_MAX) {
        br_http_respond_static(r, 200, "text/plain", "plain\n", 6);
        return;
    }
    struct tstream *t = &g.s[atoi(i)];
    pthread_mutex_lock(&g.mu);
    t->req = r;
    pthread_mutex_unlock(&g.mu);
    br_http_set_app(r, t);
    br_http_add_header(r, "X-Test", "yes");
    br_http_respond_stream(r, "text/event-stream", pull, t);
}

static void closed(void *ctx, struct br_http_req *r)
{
    (void)ctx;
    struct tstream *t = br_http_app(r);
    if (t == NULL) {
        return;
    }
    pthread_mutex_lock(&g.mu);
    t->req = NULL;
    t->closed = true;
    pthread_mutex_unlock(&g.mu);
    atomic_fetch_add(&g.closed, 1);
}

/* Appends text to stream i (and ends it when end) and wakes it. */
static void say(int i, const char *text, bool end)
{
    struct tstream *t = &g.s[i];
    size_t n = strlen(text);
    pthread_mutex_lock(&t->bmu);
    bool fits = t->len + n <= sizeof t->buf;
    if (fits) {
        memcpy(t->buf + t->len, text, n);
        t->len += n;
        t->end = t->end || end;
    }
    pthread_mutex_unlock(&t->bmu);
    assert_true(fits);
    pthread_mutex_lock(&g.mu);
    if (t->req != NULL) {
        br_http_stream_wake(t->req); /* under g.mu: closed cannot run meanwhile */
    }
    pthread_mutex_unlock(&g.mu);
}

static struct br_http_server *start(unsigned connections_max)
{
    memset(g.s, 0, sizeof g.s);
    for (int i = 0; i < STREAMS_MAX; i++) {
        pthread_mutex_init(&g.s[i].bmu, NULL);
    }
    atomic_store(&g.closed, 0);
    struct br_http_config cfg = {
        .threads = 2,
        .body_max = 4096,
        .conn_memory_max = 16384,
        .idle_timeout_s = 30,
        .connections_max = connections_max,
        .turbo = true,
        .handler = handler,
        .closed = closed,
    };
    struct br_http_server *s = NULL;
    assert_int_equal(br_http_start(&s, &cfg), 0);
    return s;
}

static int dial(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    struct timeval tv = {.tv_sec = 0, .tv_usec = 100000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

static void send_text(int fd, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    assert_true(n > 0 && (size_t)n < sizeof buf);
    assert_int_equal(send(fd, buf, (size_t)n, MSG_NOSIGNAL), n);
}

struct got {
    char data[8192];
    size_t len;
    bool eof;
};

/* Reads into *x until needle is in it (NULL: until the server closes) or
 * timeout_ms pass. True when found (or closed). */
static bool read_until(int fd, struct got *x, const char *needle, int timeout_ms)
{
    int64_t t0 = now_ms();
    while (now_ms() - t0 < timeout_ms) {
        if (needle != NULL && strstr(x->data, needle) != NULL) {
            return true;
        }
        if (x->eof) {
            return needle == NULL;
        }
        ssize_t n = recv(fd, x->data + x->len, sizeof x->data - 1 - x->len, 0);
        if (n > 0) {
            x->len += (size_t)n;
            x->data[x->len] = '\0';
        } else if (n == 0 || x->len == sizeof x->data - 1) {
            x->eof = true;
        } else if (n < 0 && errno == ECONNRESET) {
            x->eof = true;
        }
    }
    return needle != NULL && strstr(x->data, needle) != NULL;
}

static bool wait_closed(int want, int timeout_ms)
{
    int64_t t0 = now_ms();
    while (atomic_load(&g.closed) < want && now_ms() - t0 < timeout_ms) {
        sleep_ms(5);
    }
    return atomic_load(&g.closed) >= want;
}

/* inflight drops just after closed runs: wait for it. */
static unsigned inflight_after(struct br_http_server *s, int timeout_ms)
{
    int64_t t0 = now_ms();
    while (br_http_inflight(s) > 0 && now_ms() - t0 < timeout_ms) {
        sleep_ms(5);
    }
    return br_http_inflight(s);
}

static void test_http11_stream_is_chunked_and_closes_at_its_end(void **state)
{
    (void)state;
    struct br_http_server *s = start(64);
    int fd = dial(br_http_port(s));
    send_text(fd, "GET /s?i=0 HTTP/1.1\r\nHost: t\r\n\r\n");
    struct got x = {0};
    assert_true(read_until(fd, &x, "\r\n\r\n", 3000));
    assert_non_null(strstr(x.data, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(x.data, "Transfer-Encoding: chunked\r\n"));
    assert_non_null(strstr(x.data, "Content-Type: text/event-stream\r\n"));
    assert_non_null(strstr(x.data, "X-Test: yes\r\n"));
    assert_non_null(strstr(x.data, "Connection: close\r\n"));
    say(0, "data: one\n\n", false);
    assert_true(read_until(fd, &x, "b\r\ndata: one\n\n\r\n", 3000));
    say(0, "data: two\n\n", true);
    assert_true(read_until(fd, &x, "b\r\ndata: two\n\n\r\n0\r\n\r\n", 3000));
    assert_true(read_until(fd, &x, NULL, 3000)); /* then the server closes */
    assert_true(wait_closed(1, 3000));
    assert_int_equal(inflight_after(s, 3000), 0);
    close(fd);
    br_http_stop(s);
}

static void test_http10_stream_is_close_delimited(void **state)
{
    (void)state;
    struct br_http_server *s = start(64);
    int fd = dial(br_http_port(s));
    send_text(fd, "GET /s?i=1 HTTP/1.0\r\n\r\n");
    struct got x = {0};
    assert_true(read_until(fd, &x, "\r\n\r\n", 3000));
    assert_non_null(strstr(x.data, "HTTP/1.0 200 OK\r\n"));
    assert_null(strstr(x.data, "Transfer-Encoding"));
    say(1, "data: raw\n\n", true);
    assert_true(read_until(fd, &x, NULL, 3000));
    const char *body = strstr(x.data, "\r\n\r\n") + 4;
    assert_string_equal(body, "data: raw\n\n");
    assert_true(wait_closed(1, 3000));
    close(fd);
    br_http_stop(s);
}

static void test_head_sends_the_header_only(void **state)
{
    (void)state;
    struct br_http_server *s = start(64);
    int fd = dial(br_http_port(s));
    send_text(fd, "HEAD /s?i=2 HTTP/1.1\r\nHost: t\r\n\r\n");
    struct got x = {0};
    assert_true(read_until(fd, &x, NULL, 3000));
    assert_non_null(strstr(x.data, "HTTP/1.1 200 OK\r\n"));
    assert_string_equal(strstr(x.data, "\r\n\r\n"), "\r\n\r\n"); /* nothing after */
    assert_true(wait_closed(1, 3000));
    pthread_mutex_lock(&g.s[2].bmu);
    int pulls = g.s[2].pulls;
    pthread_mutex_unlock(&g.s[2].bmu);
    assert_int_equal(pulls, 0);
    close(fd);
    br_http_stop(s);
}

static void test_a_peer_that_goes_ends_its_stream(void **state)
{
    (void)state;
    struct br_http_server *s = start(64);
    int fd = dial(br_http_port(s));
    send_text(fd, "GET /s?i=3 HTTP/1.1\r\nHost: t\r\n\r\n");
    struct got x = {0};
    assert_true(read_until(fd, &x, "\r\n\r\n", 3000));
    assert_int_equal(br_http_inflight(s), 1);
    close(fd); /* nothing is ever written to it again: only the close tells */
    if (!wait_closed(1, 3000)) {
        fail_msg("the peer closed its stream 3 s ago and the application was not told "
                 "(closed never ran; inflight %u)", br_http_inflight(s));
    }
    assert_int_equal(inflight_after(s, 3000), 0);
    br_http_stop(s);
}

static void test_streams_count_against_connections_max(void **state)
{
    (void)state;
    enum { LIMIT = 4 };
    struct br_http_server *s = start(LIMIT);
    int fds[LIMIT];
    for (int i = 0; i < LIMIT; i++) {
        fds[i] = dial(br_http_port(s));
        send_text(fds[i], "GET /s?i=%d HTTP/1.1\r\nHost: t\r\n\r\n", 10 + i);
        struct got x = {0};
        assert_true(read_until(fds[i], &x, "\r\n\r\n", 3000));
    }
    /* Every slot is a held stream: the next connection is closed unanswered. */
    int extra = dial(br_http_port(s));
    send_text(extra, "GET /plain HTTP/1.1\r\nHost: t\r\n\r\n");
    struct got y = {0};
    (void)read_until(extra, &y, NULL, 1500);
    if (y.len > 0) {
        fail_msg("%d streams held with connections_max %d, and connection %d was answered: %.40s",
                 LIMIT, LIMIT, LIMIT + 1, y.data);
    }
    close(extra);
    /* One stream goes: a slot is free again. */
    close(fds[0]);
    assert_true(wait_closed(1, 3000));
    int64_t t0 = now_ms();
    bool served = false;
    while (!served && now_ms() - t0 < 3000) {
        int fd = dial(br_http_port(s));
        send_text(fd, "GET /plain HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        struct got z = {0};
        served = read_until(fd, &z, "plain\n", 1000);
        close(fd);
    }
    assert_true(served);
    for (int i = 1; i < LIMIT; i++) {
        close(fds[i]);
    }
    assert_true(wait_closed(LIMIT, 3000));
    br_http_stop(s);
}

static void test_many_streams_each_get_their_bytes_and_stop_closes_them(void **state)
{
    (void)state;
    struct br_http_server *s = start(2 * MANY);
    static int fds[MANY];
    for (int i = 0; i < MANY; i++) {
        fds[i] = dial(br_http_port(s));
        send_text(fds[i], "GET /s?i=%d HTTP/1.1\r\nHost: t\r\n\r\n", i);
    }
    for (int i = 0; i < MANY; i++) {
        struct got x = {0};
        assert_true(read_until(fds[i], &x, "\r\n\r\n", 5000));
    }
    for (int i = 0; i < MANY; i++) {
        char text[64];
        snprintf(text, sizeof text, "data: for %d\n\n", i);
        say(i, text, false);
    }
    for (int i = 0; i < MANY; i++) {
        char want[64];
        snprintf(want, sizeof want, "data: for %d\n\n\r\n", i);
        struct got x = {0};
        if (!read_until(fds[i], &x, want, 5000)) {
            fail_msg("stream %d of %d did not get its bytes (got %zu: %.60s)", i, MANY, x.len,
                     x.data);
        }
    }
    assert_int_equal(br_http_inflight(s), MANY);
    br_http_stop(s); /* every stream still open is closed and the application told */
    assert_int_equal(atomic_load(&g.closed), MANY);
    for (int i = 0; i < MANY; i++) {
        struct got x = {0};
        assert_true(read_until(fds[i], &x, NULL, 3000));
        close(fds[i]);
    }
}

int main(void)
{
    /* Two descriptors a stream here (the test's and the server's), and a
     * third while libmicrohttpd still holds its copy. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 4096) {
        rl.rlim_cur = rl.rlim_max < 4096 ? rl.rlim_max : 4096;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http11_stream_is_chunked_and_closes_at_its_end),
        cmocka_unit_test(test_http10_stream_is_close_delimited),
        cmocka_unit_test(test_head_sends_the_header_only),
        cmocka_unit_test(test_a_peer_that_goes_ends_its_stream),
        cmocka_unit_test(test_streams_count_against_connections_max),
        cmocka_unit_test(test_many_streams_each_get_their_bytes_and_stop_closes_them),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
