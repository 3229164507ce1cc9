/*
 * test_hashpool.c -- the password-hashing pool (server/hashpool.h) on its
 * own: every job runs once, in FIFO order on one thread; a full queue
 * refuses at once; arguments out of range are refused; and the threads run
 * at the process's nice value plus --hash-nice (capped at 19), and under
 * SCHED_IDLE when asked (--hash-sched idle), so that a login storm yields
 * the CPU to the HTTP threads; with br_hashpool_yield a
 * job waits while the server's own backlog (the pool's jobs not counted) is
 * above the threshold, at most the cap, and starts at once when it is not.
 * ctest http_hashpool.
 */
#define _GNU_SOURCE /* gettid */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "core/err.h"
#include "server/hashpool.h"

struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int open, entered;
};

static struct gate gate = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
static int order[64], order_n;
static int seen_nice = -100;

static void wait_gate(void *ctx)
{
    (void)ctx;
    pthread_mutex_lock(&gate.mu);
    gate.entered = 1;
    pthread_cond_broadcast(&gate.cv);
    while (!gate.open) {
        pthread_cond_wait(&gate.cv, &gate.mu);
    }
    pthread_mutex_unlock(&gate.mu);
}

static void record(void *ctx)
{
    order[order_n++] = (int)(intptr_t)ctx; /* one thread: no race */
}

static int seen_policy = -100;

static void read_policy(void *ctx)
{
    (void)ctx;
    seen_policy = sched_getscheduler(0); /* Linux: 0 is the calling thread */
}

static void read_nice(void *ctx)
{
    (void)ctx;
    errno = 0;
    int v = getpriority(PRIO_PROCESS, (id_t)gettid());
    seen_nice = v == -1 && errno != 0 ? -100 : v;
}

static void test_jobs_run_once_in_order_and_a_full_queue_refuses(void **state)
{
    (void)state;
    struct br_hashpool *p = NULL;
    assert_int_equal(br_hashpool_new(&p, 1, 8, 0, false), BR_OK);
    gate.open = gate.entered = 0;
    order_n = 0;
    assert_int_equal(br_hashpool_submit(p, wait_gate, NULL), BR_OK);
    pthread_mutex_lock(&gate.mu);
    while (!gate.entered) { /* the thread holds the first job: the queue is empty */
        pthread_cond_wait(&gate.cv, &gate.mu);
    }
    pthread_mutex_unlock(&gate.mu);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(br_hashpool_submit(p, record, (void *)(intptr_t)i), BR_OK);
    }
    assert_int_equal(br_hashpool_submit(p, record, (void *)(intptr_t)99), BR_E_OVERLOADED);
    pthread_mutex_lock(&gate.mu);
    gate.open = 1;
    pthread_cond_broadcast(&gate.cv);
    pthread_mutex_unlock(&gate.mu);
    br_hashpool_stop(p); /* runs every queued job first */
    assert_int_equal(order_n, 8);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(order[i], i);
    }
    assert_int_equal(br_hashpool_submit(p, record, NULL), BR_E_UNAVAILABLE);
    br_hashpool_free(p);
}

static void test_arguments_out_of_range_are_refused(void **state)
{
    (void)state;
    struct br_hashpool *p = (struct br_hashpool *)&p;
    assert_int_equal(br_hashpool_new(&p, 0, 8, 0, false), BR_E_INVALID);
    assert_null(p);
    assert_int_equal(br_hashpool_new(&p, BR_HASHPOOL_THREADS_MAX + 1, 8, 0, false), BR_E_INVALID);
    assert_int_equal(br_hashpool_new(&p, 1, 0, 0, false), BR_E_INVALID);
    assert_int_equal(br_hashpool_new(&p, 1, BR_HASHPOOL_QUEUE_MAX + 1, 0, false), BR_E_INVALID);
    assert_int_equal(br_hashpool_new(&p, 1, 8, BR_HASHPOOL_NICE_MAX + 1, false), BR_E_INVALID);
    assert_null(p);
}

/* The nice value a pool thread runs at, pool made with nice n. */
static int pool_nice(unsigned n)
{
    struct br_hashpool *p = NULL;
    assert_int_equal(br_hashpool_new(&p, 1, 4, n, false), BR_OK);
    seen_nice = -100;
    assert_int_equal(br_hashpool_submit(p, read_nice, NULL), BR_OK);
    br_hashpool_stop(p);
    br_hashpool_free(p);
    return seen_nice;
}

/* The scheduling policy a pool thread runs under. */
static int pool_policy(bool idle)
{
    struct br_hashpool *p = NULL;
    assert_int_equal(br_hashpool_new(&p, 1, 4, 0, idle), BR_OK);
    seen_policy = -100;
    assert_int_equal(br_hashpool_submit(p, read_policy, NULL), BR_OK);
    br_hashpool_stop(p);
    br_hashpool_free(p);
    return seen_policy;
}

static void test_idle_threads_run_under_sched_idle(void **state)
{
    (void)state;
    int mine = sched_getscheduler(0);
    assert_int_equal(pool_policy(false), mine);
    int idle = pool_policy(true);
    if (idle != SCHED_IDLE) {
        fail_msg("a pool made idle hashes under policy %d, want SCHED_IDLE (%d)", idle, SCHED_IDLE);
    }
    assert_int_equal(sched_getscheduler(0), mine); /* the caller's own thread is untouched */
}

static void test_threads_run_at_the_raised_nice_value(void **state)
{
    (void)state;
    errno = 0;
    int base = getpriority(PRIO_PROCESS, 0);
    assert_false(base == -1 && errno != 0);
    assert_int_equal(pool_nice(0), base);
    assert_int_equal(pool_nice(5), base + 5 > 19 ? 19 : base + 5);
    assert_int_equal(pool_nice(BR_HASHPOOL_NICE_MAX), 19); /* capped, whatever the base */
    /* The caller's own thread is untouched. */
    assert_int_equal(getpriority(PRIO_PROCESS, (id_t)gettid()), base);
}

/* ---- yielding to the sale ---- */

static atomic_uint backlog;        /* what the busy callback answers */
static atomic_llong started_ms;    /* when a job started */

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static unsigned busy_backlog(void *ctx)
{
    (void)ctx;
    return atomic_load(&backlog);
}

static void mark_start(void *ctx)
{
    (void)ctx;
    atomic_store(&started_ms, now_ms());
}

/* Waits up to limit_ms for the job to start (stopping the pool earlier
 * would cut its wait short). */
static void wait_started(long long limit_ms)
{
    long long t0 = now_ms();
    while (atomic_load(&started_ms) == 0 && now_ms() - t0 < limit_ms) {
        struct timespec ts = {0, 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* Submits one job to a fresh one-thread pool yielding above 8 for at most
 * max_ms, with `load` requests awaiting; returns ms from submit to start. */
static long long start_delay(unsigned load, unsigned max_ms, uint64_t *yielded)
{
    struct br_hashpool *p = NULL;
    assert_int_equal(br_hashpool_new(&p, 1, 4, 0, false), BR_OK);
    br_hashpool_yield(p, busy_backlog, NULL, 8, max_ms);
    atomic_store(&backlog, load);
    atomic_store(&started_ms, 0);
    long long t0 = now_ms();
    assert_int_equal(br_hashpool_submit(p, mark_start, NULL), BR_OK);
    wait_started(10000);
    br_hashpool_stop(p);
    *yielded = br_hashpool_yielded_ms(p);
    br_hashpool_free(p);
    assert_true(atomic_load(&started_ms) > 0);
    return atomic_load(&started_ms) - t0;
}

static void test_a_busy_server_delays_a_hash_up_to_the_cap(void **state)
{
    (void)state;
    uint64_t y = 0;
    /* 1 (the job itself) + 9 other requests: above 8, the job waits the cap. */
    long long d = start_delay(10, 150, &y);
    assert_true(d >= 150);
    assert_true(y >= 150);
}

static void test_a_quiet_server_hashes_at_once(void **state)
{
    (void)state;
    uint64_t y = 99;
    /* 1 (the job itself) + 8 others: not above 8. A cap of a minute would
     * show as a stuck test if the job waited. */
    long long d = start_delay(9, 60000, &y);
    assert_true(d < 5000); /* waiting, it would not have started within wait_started's 10 s */
    assert_int_equal(y, 0);
    /* Yielding off (cap 0): a busy server does not delay the job. */
    d = start_delay(1000, 0, &y);
    assert_true(d < 5000);
    assert_int_equal(y, 0);
}

static void *quiet_later(void *arg)
{
    (void)arg;
    struct timespec ts = {0, 100 * 1000000L};
    nanosleep(&ts, NULL);
    atomic_store(&backlog, 1u); /* only the job itself */
    return NULL;
}

static void test_a_hash_starts_when_the_backlog_drains(void **state)
{
    (void)state;
    struct br_hashpool *p = NULL;
    assert_int_equal(br_hashpool_new(&p, 1, 4, 0, false), BR_OK);
    br_hashpool_yield(p, busy_backlog, NULL, 8, 60000);
    atomic_store(&backlog, 500u);
    atomic_store(&started_ms, 0);
    long long t0 = now_ms();
    assert_int_equal(br_hashpool_submit(p, mark_start, NULL), BR_OK);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, quiet_later, NULL), 0);
    pthread_join(th, NULL);
    wait_started(10000);
    assert_true(atomic_load(&started_ms) > 0); /* started by itself, not by the stop */
    br_hashpool_stop(p);
    long long d = atomic_load(&started_ms) - t0;
    assert_true(d >= 100);   /* not before the backlog drained */
    assert_true(d < 30000);  /* nor at the minute's cap */
    assert_true(br_hashpool_yielded_ms(p) >= 100);
    br_hashpool_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jobs_run_once_in_order_and_a_full_queue_refuses),
        cmocka_unit_test(test_arguments_out_of_range_are_refused),
        cmocka_unit_test(test_threads_run_at_the_raised_nice_value),
        cmocka_unit_test(test_idle_threads_run_under_sched_idle),
        cmocka_unit_test(test_a_busy_server_delays_a_hash_up_to_the_cap),
        cmocka_unit_test(test_a_quiet_server_hashes_at_once),
        cmocka_unit_test(test_a_hash_starts_when_the_backlog_drains),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
