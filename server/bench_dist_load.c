/*
 * bench_dist_load.c -- the closed-loop HTTP/1.1 load generator of
 * bench_dist_load.h: one epoll thread, keep-alive connections, finite work.
 */
#define _POSIX_C_SOURCE 200809L

#include "bench_dist_load.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct conn {
    int fd;
    unsigned port;
    size_t req;  /* index of the request in flight, SIZE_MAX = idle */
    size_t sent; /* bytes of it written */
    size_t got;  /* bytes of the answer read */
    uint64_t t0_ns;
    unsigned redials; /* connections opened again since the last answer */
    char buf[BD_ANSWER_MAX + 1];
};

struct run {
    int ep;
    struct bd_req *reqs;
    size_t n, next, done;
    int keep_bodies;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int dial(struct run *r, struct conn *c)
{
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        perror("bench-dist: socket");
        return -1;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)c->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(c->fd, (struct sockaddr *)&a, sizeof a) != 0 && errno != EINPROGRESS) {
        fprintf(stderr, "bench-dist: connect to port %u: %s\n", c->port, strerror(errno));
        return -1;
    }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.ptr = c};
    return epoll_ctl(r->ep, EPOLL_CTL_ADD, c->fd, &ev);
}

/* Takes the next request, if any, and starts writing it. */
static void start(struct run *r, struct conn *c)
{
    c->req = r->next < r->n ? r->next++ : SIZE_MAX;
    c->sent = 0;
    c->got = 0;
    c->t0_ns = now_ns();
}

/* Writes what the socket takes. -1 on a broken connection. */
static int pump_out(struct conn *c, const struct bd_req *q)
{
    while (c->sent < q->len) {
        ssize_t w = write(c->fd, q->text + c->sent, q->len - c->sent);
        if (w < 0) {
            return errno == EAGAIN || errno == ENOTCONN ? 0 : -1;
        }
        c->sent += (size_t)w;
    }
    return 0;
}

/* The answer's total length once its headers are in, 0 while they are
 * not, -1 when malformed. Sets *status. */
static long answer_len(const char *b, size_t got, int *status)
{
    const char *end = strstr(b, "\r\n\r\n");
    if (end == NULL) {
        return got >= BD_ANSWER_MAX ? -1 : 0;
    }
    if (strncmp(b, "HTTP/1.", 7) != 0 || got < 12) {
        return -1;
    }
    *status = atoi(b + 9);
    long body = 0;
    for (const char *p = strstr(b, "\r\n"); p != NULL && p < end; p = strstr(p + 2, "\r\n")) {
        if (strncasecmp(p + 2, "Content-Length:", 15) == 0) {
            body = atol(p + 17);
        }
    }
    long total = (long)(end + 4 - b) + body;
    return total > BD_ANSWER_MAX || body < 0 ? -1 : total;
}

/* Reads what there is; completes the request when its answer is whole.
 * 1 = completed, 0 = more to come, -1 = broken connection, -2 = bad answer. */
static int pump_in(struct run *r, struct conn *c)
{
    for (;;) {
        ssize_t g = read(c->fd, c->buf + c->got, BD_ANSWER_MAX - c->got);
        if (g == 0 || (g < 0 && errno != EAGAIN)) {
            return -1;
        }
        if (g < 0) {
            return 0;
        }
        c->got += (size_t)g;
        c->buf[c->got] = 0;
        int status = 0;
        long total = answer_len(c->buf, c->got, &status);
        if (total < 0 || (c->req == SIZE_MAX && total > 0)) {
            return -2;
        }
        if (total > 0 && c->got >= (size_t)total) {
            struct bd_req *q = &r->reqs[c->req];
            q->status = status;
            q->latency_us = (uint32_t)((now_ns() - c->t0_ns) / 1000u);
            if (r->keep_bodies) {
                const char *body = strstr(c->buf, "\r\n\r\n") + 4;
                q->body = strndup(body, (size_t)(c->buf + total - body));
            }
            r->done++;
            return 1;
        }
    }
}

/* Handles readiness on c; -1 on a failure that ends the run. */
static int step(struct run *r, struct conn *c)
{
    for (;;) {
        if (c->req == SIZE_MAX) {
            return 0;
        }
        struct bd_req *q = &r->reqs[c->req];
        int rc = pump_out(c, q);
        if (rc == 0 && c->sent < q->len) {
            return 0;
        }
        if (rc == 0) {
            rc = pump_in(r, c);
        }
        if (rc == -1 && c->got == 0) { /* closed (after the last answer): again */
            close(c->fd);
            c->fd = -1;
            c->sent = 0;
            if (++c->redials > BD_REDIALS_MAX) {
                fprintf(stderr,
                        "bench-dist: port %u: the connection was closed or refused %u times in a "
                        "row without an answer (server gone?)\n",
                        c->port, c->redials);
                return -1;
            }
            return dial(r, c);
        }
        if (rc < 0) {
            fprintf(stderr, "bench-dist: port %u: %s answer to request %zu: %.200s\n", c->port,
                    rc == -1 ? "a cut" : "a malformed or oversized", c->req, c->buf);
            return -1;
        }
        if (rc == 0) {
            return 0;
        }
        c->redials = 0;
        start(r, c);
    }
}

int bd_run(const unsigned *ports, unsigned nports, unsigned conns, struct bd_req *reqs, size_t n,
           int keep_bodies, double timeout_s, double *elapsed_s)
{
    if (conns == 0 || conns > BD_CONNS_MAX || nports == 0 || nports > BD_PORTS_MAX) {
        fprintf(stderr, "bench-dist: 1..%d connections, 1..%d ports\n", BD_CONNS_MAX, BD_PORTS_MAX);
        return -1;
    }
    signal(SIGPIPE, SIG_IGN); /* a write to a closed connection is an error, not a death */
    struct run r = {
        .ep = epoll_create1(EPOLL_CLOEXEC), .reqs = reqs, .n = n, .keep_bodies = keep_bodies};
    struct conn *cs = calloc(conns, sizeof *cs);
    if (r.ep < 0 || cs == NULL) {
        fprintf(stderr, "bench-dist: out of resources\n");
        return -1;
    }
    int rc = 0;
    for (unsigned i = 0; i < conns; i++) {
        cs[i].fd = -1;
    }
    for (unsigned i = 0; i < conns && rc == 0; i++) {
        cs[i].port = ports[i % nports];
        cs[i].req = SIZE_MAX;
        rc = dial(&r, &cs[i]);
    }
    uint64_t t0 = now_ns();
    uint64_t limit = t0 + (uint64_t)(timeout_s * 1e9);
    for (unsigned i = 0; i < conns && rc == 0; i++) {
        start(&r, &cs[i]);
        rc = step(&r, &cs[i]);
    }
    struct epoll_event evs[64];
    while (rc == 0 && r.done < n) {
        int k = epoll_wait(r.ep, evs, 64, 100);
        for (int i = 0; i < k && rc == 0; i++) {
            rc = step(&r, evs[i].data.ptr);
        }
        if (now_ns() > limit) {
            fprintf(stderr, "bench-dist: %zu of %zu requests answered in %.0f s\n", r.done, n,
                    timeout_s);
            rc = -1;
        }
    }
    *elapsed_s = (double)(now_ns() - t0) / 1e9;
    for (unsigned i = 0; i < conns; i++) {
        if (cs[i].fd >= 0) {
            close(cs[i].fd);
        }
    }
    free(cs);
    close(r.ep);
    return rc;
}

char *bd_request_text(const char *method, const char *path, const char *token,
                      const char *const *headers, size_t nheaders, const char *body, size_t *len)
{
    size_t cap = 512 + strlen(path) + (token ? strlen(token) : 0) + (body ? strlen(body) : 0);
    for (size_t i = 0; i < nheaders; i++) {
        cap += strlen(headers[2 * i]) + (headers[2 * i + 1] ? strlen(headers[2 * i + 1]) : 0) + 4;
    }
    char *t = malloc(cap);
    if (t == NULL) {
        return NULL;
    }
    int n = snprintf(t, cap, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n", method, path);
    if (token != NULL) {
        n += snprintf(t + n, cap - (size_t)n, "Authorization: Bearer %s\r\n", token);
    }
    for (size_t i = 0; i < nheaders; i++) {
        if (headers[2 * i + 1] != NULL) {
            n += snprintf(t + n, cap - (size_t)n, "%s: %s\r\n", headers[2 * i],
                          headers[2 * i + 1]);
        }
    }
    if (body != NULL) {
        n += snprintf(t + n, cap - (size_t)n,
                      "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                      strlen(body), body);
    } else {
        n += snprintf(t + n, cap - (size_t)n, "\r\n");
    }
    *len = (size_t)n;
    return t;
}
