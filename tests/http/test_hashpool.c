/*
 * test_hashpool.c -- the password-hashing pool (server/hashpool.h) on its
 * own: every job runs once, in FIFO order on one thread; a full queue
 * refuses at once; arguments out of range are refused; and the threads run
 * at the process's nice value plus --hash-nice (capped at 19), so that a
 * login storm yields the CPU to the HTTP threads. ctest http_hashpool.
 */
#define _GNU_SOURCE /* gettid */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <pthread.h>
#include <sys/resource.h>
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
    assert_int_equal(br_hashpool_new(&p, 1, 8, 0), BR_OK);
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
    assert_int_equal(br_hashpool_new(&p, 0, 8, 0), BR_E_INVALID);
    assert_null(p);
    assert_int_equal(br_hashpool_new(&p, BR_HASHPOOL_THREADS_MAX + 1, 8, 0), BR_E_INVALID);
    assert_int_equal(br_hashpool_new(&p, 1, 0, 0), BR_E_INVALID);
    assert_int_equal(br_hashpool_new(&p, 1, BR_HASHPOOL_QUEUE_MAX + 1, 0), BR_E_INVALID);
    assert_int_equal(br_hashpool_new(&p, 1, 8, BR_HASHPOOL_NICE_MAX + 1), BR_E_INVALID);
    assert_null(p);
}

/* The nice value a pool thread runs at, pool made with nice n. */
static int pool_nice(unsigned n)
{
    struct br_hashpool *p = NULL;
    assert_int_equal(br_hashpool_new(&p, 1, 4, n), BR_OK);
    seen_nice = -100;
    assert_int_equal(br_hashpool_submit(p, read_nice, NULL), BR_OK);
    br_hashpool_stop(p);
    br_hashpool_free(p);
    return seen_nice;
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jobs_run_once_in_order_and_a_full_queue_refuses),
        cmocka_unit_test(test_arguments_out_of_range_are_refused),
        cmocka_unit_test(test_threads_run_at_the_raised_nice_value),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
