/*
 * http_stream.c -- the stream loops (see http_stream.h).
 *
 * One loop: an epoll set of its streams' sockets (edge-triggered), an
 * eventfd, and a ready list of poked streams under the loop's mutex (a
 * leaf: held to push or swap the list, never while calling out). A turn:
 * wait, handle the sockets' events (writable again: write what is left and
 * pull; readable: drain and discard, end of file or error: close), then
 * take the ready list and pump each stream on it. Pumping writes what is
 * pending, then pulls and writes until the application has nothing more,
 * the socket is full (EPOLLOUT resumes it) or the stream ends. A stream that
 * keeps producing is put back on the list after PUMP_ROUNDS pulls, so one
 * cannot starve the others.
 *
 * A stream is touched by its loop thread only, except `listed`, `gone` and
 * `ready_next` (the loop's mutex). It is freed by its loop thread: at once
 * when it closes off the ready list, or when it is taken off the list.
 */
#define _GNU_SOURCE

#include "adapters/http_stream.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/err.h"
#include "core/panic.h"

#define PULL_MAX 4096u  /* bytes pulled at once */
#define CHUNK_HEAD 16u  /* room for a chunk's "<hex>\r\n" before the data */
#define PUMP_ROUNDS 16u /* pulls per stream per turn */
#define EVENTS_MAX 256

struct loop;

struct br_http_stream {
    struct loop *loop;
    int fd;
    bool chunked;
    bool no_body;
    bool adopted; /* in the loop's epoll set and list */
    bool ending;  /* the last bytes are in out: close once written */
    br_http_stream_pull_fn pull;
    br_http_stream_done_fn done;
    void *cls;
    char *out; /* bytes not yet written, out[out_off..out_len) */
    size_t out_off, out_len;
    struct br_http_stream *prev, *next; /* the loop's streams (adopted) */
    /* under the loop's mutex */
    bool listed;
    bool gone; /* closed while listed: freed when taken off the list */
    struct br_http_stream *ready_next;
};

struct loop {
    struct br_http_streams *ss;
    pthread_t thread;
    bool running;
    int ep;
    int efd;
    struct br_http_stream *all; /* loop thread only */
    pthread_mutex_t mu;
    struct br_http_stream *ready; /* under mu */
    bool stop;                    /* under mu */
    char scratch[CHUNK_HEAD + PULL_MAX + 8];
};

struct br_http_streams {
    const struct br_log *log;
    unsigned n;
    atomic_uint next;
    atomic_uint open;
    struct loop *loops;
};

static void loop_signal(struct loop *l)
{
    uint64_t one = 1;
    ssize_t w = write(l->efd, &one, sizeof one);
    (void)w; /* EAGAIN: the counter is already non-zero, the loop wakes anyway */
}

void br_http_stream_poke(struct br_http_stream *st)
{
    struct loop *l = st->loop;
    pthread_mutex_lock(&l->mu);
    bool wake = false;
    if (!st->listed) {
        st->listed = true;
        wake = l->ready == NULL;
        st->ready_next = l->ready;
        l->ready = st;
    }
    pthread_mutex_unlock(&l->mu);
    if (wake) {
        loop_signal(l);
    }
}

/* Closes the stream and runs done; frees it unless it is on the ready
 * list (then taking it off frees it). Loop thread. */
static void finish(struct loop *l, struct br_http_stream *st)
{
    if (st->adopted) {
        /* Removed by hand: the descriptor libmicrohttpd had may still be
         * open, and epoll forgets a socket only when all are closed. */
        epoll_ctl(l->ep, EPOLL_CTL_DEL, st->fd, NULL);
        if (st->prev != NULL) {
            st->prev->next = st->next;
        } else {
            l->all = st->next;
        }
        if (st->next != NULL) {
            st->next->prev = st->prev;
        }
    }
    close(st->fd);
    st->fd = -1;
    free(st->out);
    st->out = NULL;
    atomic_fetch_sub(&l->ss->open, 1u);
    st->done(st->cls);
    pthread_mutex_lock(&l->mu);
    bool listed = st->listed;
    st->gone = true;
    pthread_mutex_unlock(&l->mu);
    if (!listed) {
        free(st);
    }
}

/* Writes buf; keeps what the socket did not take in st->out. 1: all
 * written, 0: the socket is full (EPOLLOUT resumes), -1: the peer is gone. */
static int send_all(struct br_http_stream *st, const char *buf, size_t len)
{
    size_t off = 0;
    while (off < len) {
        ssize_t w = send(st->fd, buf + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            off += (size_t)w;
        } else if (w < 0 && errno == EINTR) {
            continue;
        } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        } else {
            return -1;
        }
    }
    if (off == len) {
        return 1;
    }
    char *rest = malloc(len - off);
    if (rest == NULL) {
        return -1; /* cannot keep it: the stream ends (the client reconnects) */
    }
    memcpy(rest, buf + off, len - off);
    st->out = rest;
    st->out_off = 0;
    st->out_len = len - off;
    return 0;
}

/* Writes what is pending. 1: nothing left, 0: the socket is full, -1: gone. */
static int flush(struct br_http_stream *st)
{
    if (st->out == NULL) {
        return 1;
    }
    char *buf = st->out;
    size_t off = st->out_off;
    size_t len = st->out_len;
    st->out = NULL;
    int rc = send_all(st, buf + off, len - off);
    free(buf);
    return rc;
}

/* Frames n pulled bytes at data (inside l->scratch, CHUNK_HEAD after its
 * start) and writes them. */
static int send_piece(struct loop *l, struct br_http_stream *st, char *data, size_t n)
{
    if (!st->chunked) {
        return send_all(st, data, n);
    }
    char head[CHUNK_HEAD];
    int hl = snprintf(head, sizeof head, "%zx\r\n", n);
    BR_ASSERT(hl > 0 && (size_t)hl < sizeof head);
    char *start = data - hl;
    BR_ASSERT(start >= l->scratch);
    memcpy(start, head, (size_t)hl);
    memcpy(data + n, "\r\n", 2);
    return send_all(st, start, (size_t)hl + n + 2);
}

static void relist(struct loop *l, struct br_http_stream *st)
{
    pthread_mutex_lock(&l->mu);
    if (!st->listed) {
        st->listed = true;
        st->ready_next = l->ready;
        l->ready = st;
    }
    pthread_mutex_unlock(&l->mu);
}

/* Writes, pulls and writes until nothing is left to do now. Loop thread. */
static void pump(struct loop *l, struct br_http_stream *st)
{
    for (unsigned round = 0; round < PUMP_ROUNDS; round++) {
        int rc = flush(st);
        if (rc < 0) {
            finish(l, st);
            return;
        }
        if (rc == 0) {
            return; /* EPOLLOUT comes back */
        }
        if (st->ending) {
            finish(l, st);
            return;
        }
        if (st->no_body) {
            st->ending = true;
            continue;
        }
        char *data = l->scratch + CHUNK_HEAD;
        ssize_t n = st->pull(st->cls, data, PULL_MAX);
        if (n == 0) {
            return; /* until the next poke */
        }
        if (n < 0) {
            st->ending = true;
            if (st->chunked && send_all(st, "0\r\n\r\n", 5) < 0) {
                finish(l, st);
                return;
            }
            continue;
        }
        BR_ASSERT((size_t)n <= PULL_MAX);
        if (send_piece(l, st, data, (size_t)n) < 0) {
            finish(l, st);
            return;
        }
    }
    relist(l, st); /* more to say: after the others */
}

/* The peer sent bytes or closed: drain and discard; false once it is gone. */
static bool drain_input(struct br_http_stream *st)
{
    char buf[512];
    for (unsigned i = 0; i < 64; i++) {
        ssize_t n = recv(st->fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0) {
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
    }
    return true; /* a chatty peer: the next edge brings us back */
}

static void adopt(struct loop *l, struct br_http_stream *st)
{
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = st};
    if (epoll_ctl(l->ep, EPOLL_CTL_ADD, st->fd, &ev) != 0) {
        br_logf(l->ss->log, BR_LOG_WARN, "stream dropped", "\"reason\":\"epoll_ctl: %s\"",
                strerror(errno));
        finish(l, st);
        return;
    }
    st->adopted = true;
    st->prev = NULL;
    st->next = l->all;
    if (l->all != NULL) {
        l->all->prev = st;
    }
    l->all = st;
    pump(l, st);
}

/* Takes the ready list; true when the loop is asked to stop. */
static bool take_ready(struct loop *l, struct br_http_stream **list)
{
    pthread_mutex_lock(&l->mu);
    *list = l->ready;
    l->ready = NULL;
    bool stop = l->stop;
    pthread_mutex_unlock(&l->mu);
    return stop;
}

/* Takes each stream off the list and pumps it (a new one is adopted
 * first); when stopping, a new one is only closed. A stream that closed
 * while listed is freed. */
static void run_ready(struct loop *l, struct br_http_stream *list, bool stopping)
{
    while (list != NULL) {
        struct br_http_stream *st = list;
        pthread_mutex_lock(&l->mu);
        list = st->ready_next;
        st->ready_next = NULL;
        st->listed = false;
        bool gone = st->gone;
        pthread_mutex_unlock(&l->mu);
        if (gone) {
            free(st);
        } else if (!st->adopted) {
            if (stopping) {
                finish(l, st);
            } else {
                adopt(l, st);
            }
        } else if (!stopping) {
            pump(l, st);
        }
    }
}

static bool ready_empty(struct loop *l)
{
    pthread_mutex_lock(&l->mu);
    bool empty = l->ready == NULL;
    pthread_mutex_unlock(&l->mu);
    return empty;
}

/* Stopping: every stream closes, listed or not. */
static void close_all(struct loop *l)
{
    struct br_http_stream *list = NULL;
    (void)take_ready(l, &list);
    run_ready(l, list, true);
    while (l->all != NULL) {
        finish(l, l->all);
    }
}

static void *loop_main(void *arg)
{
    struct loop *l = arg;
    struct epoll_event evs[EVENTS_MAX];
    for (;;) {
        int n = epoll_wait(l->ep, evs, EVENTS_MAX, ready_empty(l) ? -1 : 0);
        if (n < 0 && errno != EINTR) {
            br_logf(l->ss->log, BR_LOG_ERROR, "stream loop", "\"reason\":\"epoll_wait: %s\"",
                    strerror(errno));
            n = 0;
        }
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == NULL) {
                uint64_t v;
                ssize_t r = read(l->efd, &v, sizeof v);
                (void)r;
                continue;
            }
            struct br_http_stream *st = evs[i].data.ptr;
            uint32_t e = evs[i].events;
#ifdef BR_PLANT_STREAM_PEER_GONE_IGNORED
            e &= ~(uint32_t)(EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR); /* planted */
#endif
            if ((e & (EPOLLERR | EPOLLHUP)) != 0 ||
                ((e & (EPOLLIN | EPOLLRDHUP)) != 0 && !drain_input(st))) {
                finish(l, st);
                continue;
            }
            if ((e & EPOLLOUT) != 0) {
                pump(l, st);
            }
        }
        struct br_http_stream *list = NULL;
        if (take_ready(l, &list)) {
            run_ready(l, list, false);
            close_all(l);
            return NULL;
        }
        run_ready(l, list, false);
    }
}

int br_http_streams_start(struct br_http_streams **out, unsigned loops, const struct br_log *log)
{
    BR_ASSERT(out != NULL);
    *out = NULL;
    if (loops == 0) {
        return BR_E_INVALID;
    }
    struct br_http_streams *ss = calloc(1, sizeof *ss);
    if (ss == NULL) {
        return BR_E_IO;
    }
    ss->log = log;
    atomic_init(&ss->next, 0u);
    atomic_init(&ss->open, 0u);
    ss->loops = calloc(loops, sizeof *ss->loops);
    if (ss->loops == NULL) {
        free(ss);
        return BR_E_IO;
    }
    for (unsigned i = 0; i < loops; i++) {
        struct loop *l = &ss->loops[i];
        l->ss = ss;
        l->ep = epoll_create1(EPOLL_CLOEXEC);
        l->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        pthread_mutex_init(&l->mu, NULL);
        ss->n = i + 1;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
        if (l->ep < 0 || l->efd < 0 || epoll_ctl(l->ep, EPOLL_CTL_ADD, l->efd, &ev) != 0 ||
            pthread_create(&l->thread, NULL, loop_main, l) != 0) {
            br_logf(log, BR_LOG_ERROR, "cannot start the stream loops", "\"reason\":\"%s\"",
                    strerror(errno));
            br_http_streams_stop(ss);
            return BR_E_IO;
        }
        l->running = true;
#ifdef __GLIBC__
        pthread_setname_np(l->thread, "br-stream");
#endif
    }
    *out = ss;
    return BR_OK;
}

struct br_http_stream *br_http_stream_new(struct br_http_streams *ss, int fd, const char *head,
                                          size_t head_len, bool chunked, bool no_body,
                                          br_http_stream_pull_fn pull,
                                          br_http_stream_done_fn done, void *cls)
{
    BR_ASSERT(ss != NULL && pull != NULL && done != NULL);
    struct br_http_stream *st = calloc(1, sizeof *st);
    char *copy = head_len > 0 ? malloc(head_len) : NULL;
    if (st == NULL || (head_len > 0 && copy == NULL)) {
        free(st);
        free(copy);
        close(fd);
        return NULL;
    }
    if (head_len > 0) {
        memcpy(copy, head, head_len);
    }
    st->loop = &ss->loops[atomic_fetch_add(&ss->next, 1u) % ss->n];
    st->fd = fd;
    st->chunked = chunked;
    st->no_body = no_body;
    st->pull = pull;
    st->done = done;
    st->cls = cls;
    st->out = copy;
    st->out_len = head_len;
    atomic_fetch_add(&ss->open, 1u);
    return st;
}

unsigned br_http_streams_open(const struct br_http_streams *ss)
{
    return ss == NULL ? 0u : atomic_load(&((struct br_http_streams *)(uintptr_t)ss)->open);
}

void br_http_streams_stop(struct br_http_streams *ss)
{
    if (ss == NULL) {
        return;
    }
    for (unsigned i = 0; i < ss->n; i++) {
        struct loop *l = &ss->loops[i];
        if (!l->running) {
            continue;
        }
        pthread_mutex_lock(&l->mu);
        l->stop = true;
        pthread_mutex_unlock(&l->mu);
        loop_signal(l);
        pthread_join(l->thread, NULL);
    }
    for (unsigned i = 0; i < ss->n; i++) {
        struct loop *l = &ss->loops[i];
        if (l->ep >= 0) {
            close(l->ep);
        }
        if (l->efd >= 0) {
            close(l->efd);
        }
        pthread_mutex_destroy(&l->mu);
    }
    free(ss->loops);
    free(ss);
}
