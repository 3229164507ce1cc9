/*
 * test_provider_pg.c -- the distributed test provider's webhook outbox
 * (adapters/provider_test_pg.h) against a real PostgreSQL (the ctest
 * fixture pg_server) and a small webhook receiver on 127.0.0.1:
 *
 *   - a confirm whose first delivery is cut (as if its process died between
 *     the commit and the POST) is delivered by another provider instance
 *     (another process, or the same after a restart) with the same event id,
 *     and marked delivered; a second confirm answers DUPLICATE meanwhile;
 *   - a receiver answering 503 gets the event again, the same id, until it
 *     answers 2xx, then no more.
 *   - point 8's status query (provider.h query) of both test providers,
 *     this one from test_intents and the in-memory one: open, void
 *     (canceled unless paid; a confirm after is refused), succeeded, no
 *     intent, the "q:" fact keys.
 * Fails with the redelivery taken out (-DBR_PLANT=PG_NO_REDELIVERY).
 * Limits: one receiver thread, requests read whole, bounded in size.
 */
#define _GNU_SOURCE /* strcasestr, usleep */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "adapters/pg.h"
#include "adapters/provider_test.h"
#include "adapters/provider_test_pg.h"
#include "core/err.h"
#include "tests/pg/pgtest.h"

#define EVENTS_MAX 16

/* ---- a webhook receiver: answers fail_first requests 503, then 200 ---- */

struct receiver {
    int fd;
    int port;
    pthread_t thread;
    pthread_mutex_t mu;
    bool stop;
    int fail_first;
    int requests;
    char ids[EVENTS_MAX][48]; /* event id per request */
    char types[EVENTS_MAX][48];
};

static void field(const char *body, const char *key, char *out, size_t cap)
{
    out[0] = '\0';
    const char *at = strstr(body, key);
    if (at == NULL) {
        return;
    }
    at += strlen(key);
    size_t n = 0;
    while (at[n] != '"' && at[n] != '\0' && n + 1 < cap) {
        n++;
    }
    memcpy(out, at, n);
    out[n] = '\0';
}

static void serve_one(struct receiver *r, int c)
{
    char buf[16384];
    size_t have = 0;
    long want = -1;
    for (int i = 0; i < 200 && have < sizeof buf - 1; i++) {
        struct pollfd pf = {.fd = c, .events = POLLIN};
        if (poll(&pf, 1, 50) <= 0) {
            continue;
        }
        ssize_t n = recv(c, buf + have, sizeof buf - 1 - have, 0);
        if (n <= 0) {
            break;
        }
        have += (size_t)n;
        buf[have] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (end != NULL) {
            const char *cl = strcasestr(buf, "Content-Length:");
            want = cl != NULL ? strtol(cl + 15, NULL, 10) : 0;
            if ((long)(have - (size_t)(end + 4 - buf)) >= want) {
                break;
            }
        }
    }
    const char *body = strstr(buf, "\r\n\r\n");
    pthread_mutex_lock(&r->mu);
    int k = r->requests++;
    bool fail = k < r->fail_first;
    if (k < EVENTS_MAX && body != NULL) {
        field(body, "{\"id\":\"", r->ids[k], sizeof r->ids[k]);
        field(body, "\"type\":\"", r->types[k], sizeof r->types[k]);
    }
    pthread_mutex_unlock(&r->mu);
    const char *ans = fail ? "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                             "Connection: close\r\n\r\n"
                           : "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    (void)!send(c, ans, strlen(ans), MSG_NOSIGNAL);
    close(c);
}

static void *receiver_loop(void *arg)
{
    struct receiver *r = arg;
    for (;;) {
        pthread_mutex_lock(&r->mu);
        bool stop = r->stop;
        pthread_mutex_unlock(&r->mu);
        if (stop) {
            return NULL;
        }
        struct pollfd pf = {.fd = r->fd, .events = POLLIN};
        if (poll(&pf, 1, 50) > 0) {
            int c = accept(r->fd, NULL, NULL);
            if (c >= 0) {
                serve_one(r, c);
            }
        }
    }
}

static void receiver_start(struct receiver *r, int fail_first)
{
    memset(r, 0, sizeof *r);
    r->fail_first = fail_first;
    pthread_mutex_init(&r->mu, NULL);
    r->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(r->fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(r->fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(r->fd, 16), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(r->fd, (struct sockaddr *)&a, &len), 0);
    r->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&r->thread, NULL, receiver_loop, r), 0);
}

static void receiver_stop(struct receiver *r)
{
    pthread_mutex_lock(&r->mu);
    r->stop = true;
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->thread, NULL);
    close(r->fd);
    pthread_mutex_destroy(&r->mu);
}

static int receiver_count(struct receiver *r)
{
    pthread_mutex_lock(&r->mu);
    int n = r->requests;
    pthread_mutex_unlock(&r->mu);
    return n;
}

/* Waits up to ms for at least n requests; returns how many came. */
static int receiver_wait(struct receiver *r, int n, int ms)
{
    for (int waited = 0; waited < ms && receiver_count(r) < n; waited += 50) {
        usleep(50 * 1000);
    }
    return receiver_count(r);
}

/* ---- helpers ---- */

struct confirm_seen {
    pthread_mutex_t mu;
    int calls;
    int err;
};

static void on_confirm(void *ctx, int err, const char *intent_json, size_t len)
{
    (void)intent_json, (void)len;
    struct confirm_seen *s = ctx;
    pthread_mutex_lock(&s->mu);
    s->calls++;
    s->err = err;
    pthread_mutex_unlock(&s->mu);
}

static int seen_calls(struct confirm_seen *s)
{
    pthread_mutex_lock(&s->mu);
    int n = s->calls;
    pthread_mutex_unlock(&s->mu);
    return n;
}

static struct br_provider_test_pg *provider_new(struct br_pg *pg)
{
    struct br_provider_test_pg_config cfg = {
        .pg = pg, .webhook_secret = "whsec_test", .attempts_max = 8};
    struct br_provider_test_pg *p = NULL;
    assert_int_equal(br_provider_test_pg_new(&p, &cfg), BR_OK);
    return p;
}

static void provider_start(struct br_provider_test_pg *p, const struct receiver *r)
{
    char url[96];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/api/v1/webhooks/stripe", r->port);
    struct br_provider pv = br_provider_test_pg_provider(p);
    assert_int_equal(pv.ops->start(pv.self, url), BR_OK);
}

/* ---- tests ---- */

static void test_cut_delivery_is_delivered_by_another_process(void **state)
{
    (void)state;
    char url[PGT_URL_MAX];
    struct br_pg *pg = pgt_open_db("br_test_provider_cut", 4, NULL, url);
    struct receiver r;
    receiver_start(&r, 0);

    /* Process A takes the confirm, commits, and "dies" before the POST. */
    struct br_provider_test_pg *a = provider_new(pg);
    br_provider_test_pg_fault_cut(a, 1);
    provider_start(a, &r);
    struct br_provider pa = br_provider_test_pg_provider(a);
    char id[BR_PROVIDER_ID_MAX], secret[BR_PROVIDER_SECRET_MAX];
    assert_int_equal(pa.ops->create_intent(pa.self, 7, 70, 5000, "EUR", "charge-7", id, secret),
                     BR_OK);
    struct confirm_seen seen = {.calls = 0};
    pthread_mutex_init(&seen.mu, NULL);
    assert_int_equal(pa.ops->confirm(pa.self, id, secret, "pm_card_visa", on_confirm, &seen), BR_OK);
    for (int i = 0; i < 100 && seen_calls(&seen) == 0; i++) {
        usleep(20 * 1000);
    }
    assert_int_equal(seen_calls(&seen), 1);
    assert_int_equal(seen.err, BR_E_UNAVAILABLE);
    br_provider_test_pg_free(a);
    assert_int_equal(receiver_count(&r), 0);
    assert_int_equal(pgt_scalar(url, "SELECT count(*) FROM test_deliveries WHERE delivered_ms "
                                      "IS NULL"),
                     1);

    /* Another process: a second confirm is DUPLICATE and sends nothing ... */
    struct br_provider_test_pg *b = provider_new(pg);
    struct br_provider pb = br_provider_test_pg_provider(b);
    assert_int_equal(pb.ops->confirm(pb.self, id, secret, "pm_card_visa", on_confirm, &seen),
                     BR_E_DUPLICATE);
    /* ... and its delivery thread delivers the event once A's lease lapsed. */
    provider_start(b, &r);
    assert_int_equal(receiver_wait(&r, 1, 15000), 1);
    char evt[64];
    PGconn *c = pgt_connect(url);
    PGresult *res = PQexec(c, "SELECT event_id FROM test_deliveries");
    assert_int_equal(PQntuples(res), 1);
    snprintf(evt, sizeof evt, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    PQfinish(c);
    assert_string_equal(r.ids[0], evt);
    assert_string_equal(r.types[0], "payment_intent.succeeded");
    for (int i = 0; i < 40 && pgt_scalar(url, "SELECT count(*) FROM test_deliveries WHERE "
                                              "delivered_ms IS NOT NULL") != 1;
         i++) {
        usleep(50 * 1000);
    }
    assert_int_equal(pgt_scalar(url, "SELECT count(*) FROM test_deliveries WHERE delivered_ms IS "
                                      "NOT NULL"),
                     1);
    /* Delivered: not sent again. */
    usleep(1500 * 1000);
    assert_int_equal(receiver_count(&r), 1);
    br_provider_test_pg_free(b);
    receiver_stop(&r);
    pthread_mutex_destroy(&seen.mu);
    br_pg_close(pg);
}

static void test_failed_delivery_retried_same_id(void **state)
{
    (void)state;
    char url[PGT_URL_MAX];
    struct br_pg *pg = pgt_open_db("br_test_provider_retry", 4, NULL, url);
    struct receiver r;
    receiver_start(&r, 2); /* 503, 503, then 200 */
    struct br_provider_test_pg *p = provider_new(pg);
    provider_start(p, &r);
    struct br_provider pv = br_provider_test_pg_provider(p);
    char id[BR_PROVIDER_ID_MAX], secret[BR_PROVIDER_SECRET_MAX];
    assert_int_equal(pv.ops->create_intent(pv.self, 9, 90, 100, "EUR", "charge-9", id, secret),
                     BR_OK);
    struct confirm_seen seen = {.calls = 0};
    pthread_mutex_init(&seen.mu, NULL);
    assert_int_equal(pv.ops->confirm(pv.self, id, secret, "pm_card_visa", on_confirm, &seen), BR_OK);
    /* Retries after 200 ms, then 800 ms (from the outbox, swept every second). */
    assert_int_equal(receiver_wait(&r, 3, 8000), 3);
    assert_int_equal(seen_calls(&seen), 1);
    assert_int_equal(seen.err, BR_E_UNAVAILABLE); /* the first attempt's answer */
    assert_string_equal(r.ids[0], r.ids[1]);
    assert_string_equal(r.ids[1], r.ids[2]);
    for (int i = 0; i < 40 && pgt_scalar(url, "SELECT count(*) FROM test_deliveries WHERE "
                                              "delivered_ms IS NOT NULL AND attempts = 3") != 1;
         i++) {
        usleep(50 * 1000);
    }
    assert_int_equal(pgt_scalar(url, "SELECT count(*) FROM test_deliveries WHERE delivered_ms IS "
                                      "NOT NULL AND attempts = 3"),
                     1);
    usleep(1500 * 1000);
    assert_int_equal(receiver_count(&r), 3);
    br_provider_test_pg_free(p);
    receiver_stop(&r);
    pthread_mutex_destroy(&seen.mu);
    br_pg_close(pg);
}


/* The answers both providers give alike: no intent, open, paid, voided. */
static void query_common(struct br_provider pv, uint64_t pay_open, uint64_t pay_paid,
                         uint64_t pay_void)
{
    struct br_provider_answer a;
    char id[BR_PROVIDER_ID_MAX], secret[BR_PROVIDER_SECRET_MAX];
    /* no intent: open, or canceled when voided */
    assert_int_equal(br_provider_query(&pv, 424242, NULL, false, &a), BR_OK);
    assert_int_equal(a.status, BR_PROVIDER_OPEN);
    assert_string_equal(a.fact_key, "");
    assert_string_equal(a.intent_id, "");
    assert_int_equal(br_provider_query(&pv, 424242, NULL, true, &a), BR_OK);
    assert_int_equal(a.status, BR_PROVIDER_FAILED);
    assert_string_equal(a.fact_key, "q:424242:failed:canceled");
    /* created, not paid: open, and stays so when only asked */
    assert_int_equal(pv.ops->create_intent(pv.self, pay_open, 1, 100, "EUR", "k", id, secret),
                     BR_OK);
    assert_int_equal(br_provider_query(&pv, pay_open, NULL, false, &a), BR_OK);
    assert_int_equal(a.status, BR_PROVIDER_OPEN);
    assert_string_equal(a.intent_id, id);
    assert_int_equal(br_provider_query(&pv, pay_open, NULL, false, &a), BR_OK);
    assert_int_equal(a.status, BR_PROVIDER_OPEN);
    /* paid: succeeded, never voided */
    assert_int_equal(pv.ops->create_intent(pv.self, pay_paid, 2, 100, "EUR", "k", id, secret),
                     BR_OK);
    struct confirm_seen seen = {.calls = 0};
    pthread_mutex_init(&seen.mu, NULL);
    assert_int_equal(pv.ops->confirm(pv.self, id, secret, "pm_card_visa", on_confirm, &seen),
                     BR_OK);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(br_provider_query(&pv, pay_paid, NULL, i == 1, &a), BR_OK);
        assert_int_equal(a.status, BR_PROVIDER_SUCCEEDED);
        char want[64];
        snprintf(want, sizeof want, "q:%llu:succeeded", (unsigned long long)pay_paid);
        assert_string_equal(a.fact_key, want);
    }
    /* voided: canceled, the same fact on every ask, and a confirm is refused */
    assert_int_equal(pv.ops->create_intent(pv.self, pay_void, 3, 100, "EUR", "k", id, secret),
                     BR_OK);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(br_provider_query(&pv, pay_void, NULL, i == 0, &a), BR_OK);
        assert_int_equal(a.status, BR_PROVIDER_FAILED);
        char want[64];
        snprintf(want, sizeof want, "q:%llu:failed:canceled", (unsigned long long)pay_void);
        assert_string_equal(a.fact_key, want);
    }
    assert_int_equal(pv.ops->confirm(pv.self, id, secret, "pm_card_visa", on_confirm, &seen),
                     BR_E_DUPLICATE);
    for (int i = 0; i < 100 && seen_calls(&seen) == 0; i++) {
        usleep(20 * 1000);
    }
    pthread_mutex_destroy(&seen.mu);
}

/* Seen failing with void not cancelling (open answered, the confirm
 * accepted) and with a succeeded intent cancelled by void. */
static void test_pg_provider_status_query(void **state)
{
    (void)state;
    char url[PGT_URL_MAX];
    struct br_pg *pg = pgt_open_db("br_test_provider_query", 4, NULL, url);
    struct receiver r;
    receiver_start(&r, 0);
    struct br_provider_test_pg *p = provider_new(pg);
    provider_start(p, &r);
    query_common(br_provider_test_pg_provider(p), 11, 12, 13);
    assert_int_equal(pgt_scalar(url, "SELECT count(*) FROM test_intents WHERE status = 'canceled'"),
                     1);
    br_provider_test_pg_free(p);
    receiver_stop(&r);
    br_pg_close(pg);
}

static void test_memory_provider_status_query(void **state)
{
    (void)state;
    struct receiver r;
    receiver_start(&r, 0);
    struct br_provider_test_config cfg = {
        .webhook_secret = "whsec_test", .intents_max = 16, .attempts_max = 2};
    struct br_provider_test *p = NULL;
    assert_int_equal(br_provider_test_new(&p, &cfg), BR_OK);
    char hook[96];
    snprintf(hook, sizeof hook, "http://127.0.0.1:%d/api/v1/webhooks/stripe", r.port);
    assert_int_equal(br_provider_test_start(p, hook), BR_OK);
    struct br_provider pv = br_provider_test_provider(p);
    query_common(pv, 21, 22, 23);
    /* a decline: failed, keyed by the decline's ordinal; paying again after
     * it makes a new fact */
    char id[BR_PROVIDER_ID_MAX], secret[BR_PROVIDER_SECRET_MAX];
    assert_int_equal(pv.ops->create_intent(pv.self, 24, 4, 100, "EUR", "k", id, secret), BR_OK);
    assert_int_equal(
        br_provider_test_confirm(p, id, secret, "pm_card_chargeDeclined", NULL, NULL), BR_OK);
    struct br_provider_answer a;
    assert_int_equal(br_provider_query(&pv, 24, NULL, false, &a), BR_OK);
    assert_int_equal(a.status, BR_PROVIDER_FAILED);
    assert_string_equal(a.fact_key, "q:24:failed:1");
    assert_int_equal(
        br_provider_test_confirm(p, id, secret, "pm_card_chargeDeclined", NULL, NULL), BR_OK);
    assert_int_equal(br_provider_query(&pv, 24, NULL, false, &a), BR_OK);
    assert_string_equal(a.fact_key, "q:24:failed:2");
    br_provider_test_free(p);
    receiver_stop(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cut_delivery_is_delivered_by_another_process),
        cmocka_unit_test(test_failed_delivery_retried_same_id),
        cmocka_unit_test(test_pg_provider_status_query),
        cmocka_unit_test(test_memory_provider_status_query),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
