/*
 * hashpool.c -- the password-hashing pool (see hashpool.h): a ring buffer
 * of jobs under one mutex, and threads that take jobs in FIFO order.
 */
#define _GNU_SOURCE /* pthread_setname_np */
#include "server/hashpool.h"

#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "adapters/clock.h"
#include "core/err.h"
#include "core/panic.h"

struct job {
    br_hashpool_fn fn;
    void *ctx;
};

struct br_hashpool {
    pthread_mutex_t mu;
    pthread_cond_t work_cv; /* a job was queued, or stop */
    struct job *ring;
    unsigned queue_max;
    unsigned head;  /* the oldest waiting job */
    unsigned count; /* waiting jobs */
    bool stop;
    pthread_t threads[BR_HASHPOOL_THREADS_MAX];
    unsigned started;
    unsigned nice; /* added to each worker's nice value (lower priority) */
    bool idle;     /* workers run under SCHED_IDLE */
    unsigned running; /* jobs taken by a thread, yielding or hashing */
    br_hashpool_busy_fn busy; /* NULL: never yield */
    void *busy_ctx;
    unsigned busy_above, yield_max_ms;
    atomic_uint_fast64_t yielded_ms;
};

#define YIELD_STEP_MS 2u

/* Called with p->mu held, a job taken: waits, the mutex released, while the
 * server has more than busy_above requests of its own awaiting an answer
 * (the pool's jobs not counted), for at most yield_max_ms. */
static void yield_to_sale(struct br_hashpool *p)
{
    if (p->busy == NULL || p->yield_max_ms == 0) {
        return;
    }
    int64_t start = br_clock_mono_ms(), now = start;
    for (;;) {
        unsigned ours = p->count + p->running;
        if (p->stop || now - start >= (int64_t)p->yield_max_ms) {
            break;
        }
        br_hashpool_busy_fn busy = p->busy;
        void *ctx = p->busy_ctx;
        unsigned above = p->busy_above;
        pthread_mutex_unlock(&p->mu);
        unsigned all = busy(ctx);
        bool quiet = all <= ours || all - ours <= above;
        if (!quiet) {
            struct timespec ts = {0, (long)YIELD_STEP_MS * 1000000L};
            nanosleep(&ts, NULL);
            now = br_clock_mono_ms();
        }
        pthread_mutex_lock(&p->mu);
        if (quiet) {
            break;
        }
    }
    if (now > start) {
        atomic_fetch_add(&p->yielded_ms, (uint_fast64_t)(now - start));
    }
}

static void *worker_main(void *arg)
{
    struct br_hashpool *p = arg;
    pthread_setname_np(pthread_self(), "br-hash"); /* for top -H and perf */
    if (p->nice > 0) {
        /* Linux: PRIO_PROCESS with a thread id sets that thread's nice value.
         * Raising it needs no privilege; should it fail all the same, the
         * thread keeps the process's priority and hashes as before. */
        id_t tid = (id_t)gettid();
        errno = 0;
        int cur = getpriority(PRIO_PROCESS, tid);
        if (cur != -1 || errno == 0) {
            int want = cur + (int)p->nice > 19 ? 19 : cur + (int)p->nice;
            (void)setpriority(PRIO_PROCESS, tid, want);
        }
    }
#ifndef BR_PLANT_HASH_NOT_IDLE
    if (p->idle) {
        /* SCHED_IDLE: the thread runs on CPU time no other thread of the
         * machine wants (Linux gives it a weight of 3 against nice 0's
         * 1,024; nice 19 still has 15). A nice value alone let a storm's
         * hash take most of a core at a sale's opening (make bench,
         * 2026-12-06). Needs no privilege; on failure the nice value above
         * stays in force. */
        struct sched_param sp = {.sched_priority = 0};
        (void)pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp);
    }
#endif
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->count == 0 && !p->stop) {
            pthread_cond_wait(&p->work_cv, &p->mu);
        }
        if (p->count == 0) {
            break; /* stopping, and every queued job has run */
        }
        struct job j = p->ring[p->head];
        p->head = (p->head + 1) % p->queue_max;
        p->count--;
        p->running++;
        yield_to_sale(p);
        pthread_mutex_unlock(&p->mu);
        BR_ASSERT(j.fn != NULL);
        j.fn(j.ctx);
        pthread_mutex_lock(&p->mu);
        p->running--;
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

int br_hashpool_new(struct br_hashpool **out, unsigned threads, unsigned queue_max, unsigned nice,
                    bool idle)
{
    *out = NULL;
    if (threads < 1 || threads > BR_HASHPOOL_THREADS_MAX || queue_max < 1 ||
        queue_max > BR_HASHPOOL_QUEUE_MAX || nice > BR_HASHPOOL_NICE_MAX) {
        return BR_E_INVALID;
    }
    struct br_hashpool *p = calloc(1, sizeof *p);
    if (p == NULL || (p->ring = calloc(queue_max, sizeof *p->ring)) == NULL) {
        free(p);
        return BR_E_IO;
    }
    p->queue_max = queue_max;
    p->nice = nice;
    p->idle = idle;
    atomic_init(&p->yielded_ms, 0);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work_cv, NULL);
    for (unsigned i = 0; i < threads; i++) {
        if (pthread_create(&p->threads[i], NULL, worker_main, p) != 0) {
            br_hashpool_free(p);
            return BR_E_IO;
        }
        p->started++;
    }
    *out = p;
    return BR_OK;
}

int br_hashpool_submit(struct br_hashpool *p, br_hashpool_fn fn, void *ctx)
{
    BR_ASSERT(fn != NULL);
    pthread_mutex_lock(&p->mu);
    int rc = BR_OK;
    if (p->stop) {
        rc = BR_E_UNAVAILABLE;
    } else if (p->count >= p->queue_max) {
        rc = BR_E_OVERLOADED;
    } else {
        p->ring[(p->head + p->count) % p->queue_max] = (struct job){.fn = fn, .ctx = ctx};
        p->count++;
        pthread_cond_signal(&p->work_cv);
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

void br_hashpool_yield(struct br_hashpool *p, br_hashpool_busy_fn busy, void *ctx,
                       unsigned above, unsigned max_ms)
{
    pthread_mutex_lock(&p->mu);
    p->busy = busy;
    p->busy_ctx = ctx;
    p->busy_above = above;
    p->yield_max_ms = max_ms > BR_HASHPOOL_YIELD_MS_MAX ? BR_HASHPOOL_YIELD_MS_MAX : max_ms;
    pthread_mutex_unlock(&p->mu);
}

uint64_t br_hashpool_yielded_ms(const struct br_hashpool *p)
{
    return p == NULL ? 0 : (uint64_t)atomic_load(&((struct br_hashpool *)(uintptr_t)p)->yielded_ms);
}

void br_hashpool_stop(struct br_hashpool *p)
{
    if (p == NULL) {
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->mu);
    for (unsigned i = 0; i < p->started; i++) {
        pthread_join(p->threads[i], NULL);
    }
    p->started = 0;
    BR_ASSERT(p->count == 0);
}

void br_hashpool_free(struct br_hashpool *p)
{
    if (p == NULL) {
        return;
    }
    br_hashpool_stop(p);
    pthread_cond_destroy(&p->work_cv);
    pthread_mutex_destroy(&p->mu);
    free(p->ring);
    free(p);
}
