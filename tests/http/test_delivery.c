/*
 * test_delivery.c -- the test providers' webhook queue
 * (adapters/provider_delivery.h) on its own: br_delivery_take hands out due
 * deliveries in due order, never one whose payment another thread is
 * POSTing, and says how long to wait; br_delivery_done frees the payment.
 * ctest http_delivery.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <pthread.h>
#include <stdlib.h>

#include "adapters/provider_delivery.h"
#include "core/err.h"

/* Each test has a mutex of its own: a failed assertion leaves it locked. */
static pthread_mutex_t mu1 = PTHREAD_MUTEX_INITIALIZER, mu2 = PTHREAD_MUTEX_INITIALIZER,
                       mu3 = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;

static struct br_delivery *mk(uint64_t key, int64_t due_ms)
{
    struct br_delivery *d = br_delivery_copy("evt_test", "{}");
    assert_non_null(d);
    d->key = key;
    d->due_ms = due_ms;
    return d;
}

static void queue_init(struct br_delivery_queue *q, pthread_mutex_t *mu)
{
    *q = (struct br_delivery_queue){.mu = mu, .cv = &cv, .max = 64};
}

static void test_one_payment_at_a_time(void **state)
{
    (void)state;
    struct br_delivery_queue q;
    queue_init(&q, &mu1);
    struct br_delivery *a1 = mk(7, 100), *a2 = mk(7, 110), *b = mk(9, 120);
    pthread_mutex_lock(&mu1);
    br_delivery_enqueue(&q, a1);
    br_delivery_enqueue(&q, a2);
    br_delivery_enqueue(&q, b);
    int64_t wait = 0;
    /* slot 0 takes payment 7's first event ... */
    assert_ptr_equal(br_delivery_take(&q, 0, 200, &wait), a1);
    /* ... so slot 1 skips payment 7's second and takes payment 9's */
    assert_ptr_equal(br_delivery_take(&q, 1, 200, &wait), b);
    /* slot 2: only a busy payment is due: nothing, wait for a wake-up */
    assert_null(br_delivery_take(&q, 2, 200, &wait));
    assert_int_equal(wait, 1000);
    br_delivery_done(&q, 0);
    assert_ptr_equal(br_delivery_take(&q, 2, 200, &wait), a2);
    assert_null(q.head);
    br_delivery_done(&q, 1);
    br_delivery_done(&q, 2);
    pthread_mutex_unlock(&mu1);
    br_delivery_free(a1);
    br_delivery_free(a2);
    br_delivery_free(b);
}

static void test_due_order_and_the_wait(void **state)
{
    (void)state;
    struct br_delivery_queue q;
    queue_init(&q, &mu2);
    struct br_delivery *late = mk(1, 500), *early = mk(2, 300), *free_key = mk(0, 310);
    pthread_mutex_lock(&mu2);
    br_delivery_enqueue(&q, late);
    br_delivery_enqueue(&q, early);
    br_delivery_enqueue(&q, free_key);
    int64_t wait = 0;
    assert_null(br_delivery_take(&q, 0, 250, &wait)); /* nothing due yet */
    assert_int_equal(wait, 50);
    assert_ptr_equal(br_delivery_take(&q, 0, 320, &wait), early);
    /* key 0 keeps no order: it is taken while another key-0 one would be busy */
    assert_ptr_equal(br_delivery_take(&q, 1, 320, &wait), free_key);
    assert_null(br_delivery_take(&q, 2, 320, &wait));
    assert_int_equal(wait, 180);
    assert_ptr_equal(br_delivery_take(&q, 2, 500, &wait), late);
    for (unsigned i = 0; i < 3; i++) {
        br_delivery_done(&q, i);
    }
    pthread_mutex_unlock(&mu2);
    br_delivery_free(late);
    br_delivery_free(early);
    br_delivery_free(free_key);
}

/* ---- threads: each learns its own slot ---- */

static struct br_delivery_queue tq;
static unsigned seen[BR_DELIVERY_THREADS_MAX];
static unsigned seen_n;

static void *learn_slot(void *arg)
{
    (void)arg;
    unsigned slot = br_delivery_slot(&tq);
    pthread_mutex_lock(&mu3);
    seen[seen_n++] = slot;
    pthread_mutex_unlock(&mu3);
    return NULL;
}

static void test_threads_get_distinct_slots(void **state)
{
    (void)state;
    queue_init(&tq, &mu3);
    seen_n = 0;
    assert_int_equal(br_delivery_start(&tq, BR_DELIVERY_THREADS_MAX, learn_slot, NULL), BR_OK);
    br_delivery_stop(&tq, &br_log_stderr); /* joins them */
    assert_int_equal(seen_n, BR_DELIVERY_THREADS_MAX);
    unsigned mask = 0;
    for (unsigned i = 0; i < seen_n; i++) {
        assert_true(seen[i] < BR_DELIVERY_THREADS_MAX);
        mask |= 1u << seen[i];
    }
    assert_int_equal(mask, (1u << BR_DELIVERY_THREADS_MAX) - 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_payment_at_a_time),
        cmocka_unit_test(test_due_order_and_the_wait),
        cmocka_unit_test(test_threads_get_distinct_slots),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
