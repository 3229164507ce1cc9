/*
 * test_pg_payments.c -- the payments-in-production calls of pg.h
 * (adapters/pg_payments.c, 0003_payments.sql) against a real PostgreSQL
 * (the ctest fixture pg_server):
 *
 *   - a fact stored once writes one provider_events_received row and one
 *     outbox row (topic payments, key = booking id, the §4.4 payload); the
 *     same fact again answers DUPLICATE and writes nothing (two threads at
 *     once: exactly one OK);
 *   - a fact without a booking is keyed by its payment; bad ids are refused;
 *   - stripe_intents: not found, first stored wins, the loser learns the winner;
 *   - a server that is not there answers UNAVAILABLE (the route's 503).
 * Fails with the dedupe taken out (-DBR_PLANT=FACT_NO_DEDUPE: two outbox rows).
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "adapters/pg.h"
#include "core/err.h"
#include "tests/pg/pgtest.h"

static void test_fact_once(void **state)
{
    (void)state;
    char url[PGT_URL_MAX];
    struct br_pg *pg = pgt_open_db("br_pg_payments_fact", 2, NULL, url);
    struct br_pg_fact f = {.provider_event_id = "evt_1",
                           .payment_id = 7,
                           .booking_id = 4294967298u,
                           .succeeded = true,
                           .source = "webhook",
                           .received_ms = 1700000000123};
    assert_int_equal(br_pg_fact_ingest(pg, &f), BR_OK);
    assert_int_equal(br_pg_fact_ingest(pg, &f), BR_E_DUPLICATE);
    f.succeeded = false; /* the same id with other content is still the same fact */
    assert_int_equal(br_pg_fact_ingest(pg, &f), BR_E_DUPLICATE);
    assert_int_equal(pgt_scalar(url, "SELECT count(*) FROM provider_events_received"), 1);
    assert_int_equal(pgt_scalar(url, "SELECT count(*) FROM outbox"), 1);
    assert_int_equal(pgt_scalar(url, "SELECT count(*) FROM outbox WHERE topic = 'payments' AND "
                                     "key = '4294967298' AND source = 'fact:evt_1' AND "
                                     "sent_at IS NULL AND payload->>'kind' = 'payment_event' AND "
                                     "(payload->>'payment_id')::bigint = 7 AND "
                                     "(payload->>'succeeded')::boolean AND "
                                     "(payload->>'received_ms')::bigint = 1700000000123 AND "
                                     "payload->>'source' = 'webhook' AND "
                                     "(payload->>'v')::int = 1"),
                     1);
    assert_int_equal(pgt_scalar(url, "SELECT count(*) FROM provider_events_received WHERE "
                                     "succeeded AND booking_id = 4294967298 AND source = 'webhook'"),
                     1);
    /* no booking: keyed by the payment */
    struct br_pg_fact q = {.provider_event_id = "q:9:failed:canceled",
                           .payment_id = 9,
                           .source = "query",
                           .received_ms = 5};
    assert_int_equal(br_pg_fact_ingest(pg, &q), BR_OK);
    assert_int_equal(pgt_scalar(url, "SELECT count(*) FROM outbox WHERE key = '9' AND "
                                     "NOT (payload->>'succeeded')::boolean"),
                     1);
    /* refused before any SQL */
    struct br_pg_fact bad = q;
    bad.provider_event_id = "evt_\"x";
    assert_int_equal(br_pg_fact_ingest(pg, &bad), BR_E_INVALID);
    bad.provider_event_id = "";
    assert_int_equal(br_pg_fact_ingest(pg, &bad), BR_E_INVALID);
    bad = q;
    bad.source = "mail";
    assert_int_equal(br_pg_fact_ingest(pg, &bad), BR_E_INVALID);
    bad = q;
    bad.payment_id = 0;
    assert_int_equal(br_pg_fact_ingest(pg, &bad), BR_E_INVALID);
    assert_int_equal(pgt_scalar(url, "SELECT count(*) FROM outbox"), 2);
    br_pg_close(pg);
}

struct racer {
    struct br_pg *pg;
    int rc[50];
};

static void *race(void *arg)
{
    struct racer *r = arg;
    for (int i = 0; i < 50; i++) {
        char id[32];
        snprintf(id, sizeof id, "evt_race_%d", i);
        struct br_pg_fact f = {.provider_event_id = id,
                               .payment_id = (uint64_t)i + 1,
                               .booking_id = 1,
                               .succeeded = true,
                               .source = "webhook",
                               .received_ms = 1};
        r->rc[i] = br_pg_fact_ingest(r->pg, &f);
    }
    return NULL;
}

static void test_fact_race(void **state)
{
    (void)state;
    char url[PGT_URL_MAX];
    struct br_pg *pg = pgt_open_db("br_pg_payments_race", 4, NULL, url);
    struct racer a = {.pg = pg}, b = {.pg = pg};
    pthread_t ta, tb;
    assert_int_equal(pthread_create(&ta, NULL, race, &a), 0);
    assert_int_equal(pthread_create(&tb, NULL, race, &b), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    for (int i = 0; i < 50; i++) {
        int ok = (a.rc[i] == BR_OK) + (b.rc[i] == BR_OK);
        int dup = (a.rc[i] == BR_E_DUPLICATE) + (b.rc[i] == BR_E_DUPLICATE);
        assert_int_equal(ok, 1);
        assert_int_equal(dup, 1);
    }
    assert_int_equal(pgt_scalar(url, "SELECT count(*) FROM outbox"), 50);
    br_pg_close(pg);
}

static void test_stripe_intents(void **state)
{
    (void)state;
    char url[PGT_URL_MAX];
    struct br_pg *pg = pgt_open_db("br_pg_payments_intents", 2, NULL, url);
    char id[BR_PROVIDER_ID_MAX];
    assert_int_equal(br_pg_stripe_intent_get(pg, 42, id), BR_E_NOT_FOUND);
    assert_string_equal(id, "");
    assert_int_equal(br_pg_stripe_intent_put(pg, 42, "pi_first", 10, id), BR_OK);
    assert_string_equal(id, "pi_first");
    assert_int_equal(br_pg_stripe_intent_put(pg, 42, "pi_second", 11, id), BR_OK);
    assert_string_equal(id, "pi_first");
    assert_int_equal(br_pg_stripe_intent_get(pg, 42, id), BR_OK);
    assert_string_equal(id, "pi_first");
    /* an intent id is one payment's only */
    assert_int_equal(br_pg_stripe_intent_put(pg, 43, "pi_first", 12, id), BR_E_DUPLICATE);
    assert_int_equal(br_pg_stripe_intent_put(pg, 43, "", 12, id), BR_E_INVALID);
    assert_int_equal(pgt_scalar(url, "SELECT count(*) FROM stripe_intents"), 1);
    br_pg_close(pg);
}

static void test_server_gone(void **state)
{
    (void)state;
    struct br_pg *pg = NULL;
    /* port 1 on loopback: nothing listens there */
    assert_int_equal(br_pg_open(&pg, "postgresql://x@127.0.0.1:1/x?connect_timeout=2", 1, NULL),
                     BR_OK);
    struct br_pg_fact f = {.provider_event_id = "evt_1",
                           .payment_id = 1,
                           .booking_id = 1,
                           .succeeded = true,
                           .source = "webhook",
                           .received_ms = 1};
    assert_int_equal(br_pg_fact_ingest(pg, &f), BR_E_UNAVAILABLE);
    char id[BR_PROVIDER_ID_MAX];
    assert_int_equal(br_pg_stripe_intent_get(pg, 1, id), BR_E_UNAVAILABLE);
    br_pg_close(pg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fact_once),
        cmocka_unit_test(test_fact_race),
        cmocka_unit_test(test_stripe_intents),
        cmocka_unit_test(test_server_gone),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
