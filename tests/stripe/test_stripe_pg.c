/*
 * test_stripe_pg.c -- the Stripe adapter with its payment -> intent map in
 * PostgreSQL (stripe_intents through br_pg_stripe_intent_get/put), against
 * the test double and the pg fixture: two adapters on one database stand for
 * two processes. One intent per payment at Stripe even when the second
 * process asks after Stripe forgot the key (24 h), and refund / query find
 * the intent through the map alone.
 */
#define _POSIX_C_SOURCE 200809L

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>

#include "adapters/pg.h"
#include "adapters/stripe.h"
#include "core/err.h"
#include "double_http.h"
#include "tests/pg/pgtest.h"

#define KEY DOUBLE_KEY
static char g_base[128];

/* A control route or a form POST with the key (form != 0). */
static json_t *http(const char *method, const char *path, const char *body, int form)
{
    return double_http(g_base, method, path, body, !form, NULL, NULL);
}

static struct br_stripe *adapter(struct br_pg *pg)
{
    struct br_stripe_config cfg = {.api_base = g_base, .secret_key = KEY,
                                   .connect_timeout_ms = 1000, .timeout_ms = 5000,
                                   .attempts_max = 3, .pg = pg, .log = NULL};
    struct br_stripe *s = NULL;
    assert_int_equal(br_stripe_new(&s, &cfg), BR_OK);
    return s;
}

static void test_two_processes_one_intent_through_the_map(void **state)
{
    (void)state;
    json_decref(http("POST", "/__double/reset", "{}", 0));
    char url[PGT_URL_MAX];
    struct br_pg *pg = pgt_open_db("stripe_map", 2, NULL, url);
    struct br_stripe *a = adapter(pg), *b = adapter(pg);
    struct br_provider pa = br_stripe_provider(a), pb = br_stripe_provider(b);
    char ida[BR_PROVIDER_ID_MAX], idb[BR_PROVIDER_ID_MAX], sec[BR_PROVIDER_SECRET_MAX];
    assert_int_equal(br_provider_create_intent(&pa, 7, 70, 2500, "EUR", ida, sec), BR_OK);
    json_decref(http("POST", "/__double/expire_keys", "{}", 0)); /* a day later */
    assert_int_equal(br_provider_create_intent(&pb, 7, 70, 2500, "EUR", idb, sec), BR_OK);
    assert_string_equal(ida, idb);
    assert_non_null(strstr(sec, "_secret_"));
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM stripe_intents WHERE payment_id = 7 AND intent_id = '%s'",
             ida);
    assert_int_equal(pgt_scalar(url, sql), 1);
    json_t *st = http("GET", "/__double/state", NULL, 0);
    assert_int_equal(json_object_size(json_object_get(st, "intents")), 1);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(st, "posts"),
                                                        "POST /v1/payment_intents")),
                     1);
    json_decref(st);
    /* the other process refunds and queries by payment id alone */
    char path[128];
    snprintf(path, sizeof path, "/v1/payment_intents/%s/confirm", ida);
    json_decref(http("POST", path, "payment_method=pm_card_visa", 1));
    struct br_provider_answer ans;
    assert_int_equal(br_provider_query(&pb, 7, NULL, false, &ans), BR_OK);
    assert_int_equal(ans.status, BR_PROVIDER_SUCCEEDED);
    assert_string_equal(ans.intent_id, ida);
    assert_int_equal(br_provider_refund(&pb, 7, NULL, 2500), BR_OK);
    st = http("GET", "/__double/state", NULL, 0);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(st, "totals"), "refunded")),
                     2500);
    json_decref(st);
    br_stripe_free(a);
    br_stripe_free(b);
    br_pg_close(pg);
}

int main(void)
{
    const char *dir = getenv("BR_TEST_STRIPE_STATE");
    char path[512];
    snprintf(path, sizeof path, "%s/url", dir ? dir : ".");
    FILE *f = fopen(path, "r");
    if (dir == NULL || f == NULL || fgets(g_base, sizeof g_base, f) == NULL) {
        fprintf(stderr, "test_stripe_pg: no double (BR_TEST_STRIPE_STATE; run through ctest)\n");
        return 1;
    }
    fclose(f);
    g_base[strcspn(g_base, "\r\n")] = '\0';
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_processes_one_intent_through_the_map),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
