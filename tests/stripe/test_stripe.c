/*
 * test_stripe.c -- the Stripe adapter (adapters/stripe.h) against the test
 * double (tests/stripe/stripe_double.py, started by the CTest fixture; its
 * directory in BR_TEST_STRIPE_STATE). Each test resets the double, drives
 * the adapter through the provider table, and checks the double's own
 * records (intents, ledger, keys, requests) and the adapter's captured log:
 * one intent per payment whatever the retries, a timed-out refund retried
 * with the same key refunded once, Stripe's errors translated (idempotency
 * error -> INVALID, already refunded -> OK, 401 -> UNAVAILABLE), the status
 * query, and never the secret key in a log line.
 */
#define _POSIX_C_SOURCE 200809L

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>

#include "adapters/log.h"
#include "adapters/stripe.h"
#include "core/err.h"
#include "double_http.h"

#define KEY DOUBLE_KEY

static char g_base[128];
static char g_log_path[256];
static int g_log_fd = -1;
static struct br_log g_log;

/* ---- talking to the double directly ---- */

/* method path [body]; json=1 sends JSON (control), else a form with the key. */
static json_t *http(const char *method, const char *path, const char *body, int json,
                    const char *idem_key, long *status)
{
    return double_http(g_base, method, path, body, json, idem_key, status);
}

static void control(const char *route, const char *json_body)
{
    long st = 0;
    json_t *j = http("POST", route, json_body ? json_body : "{}", 1, NULL, &st);
    assert_int_equal(st, 200);
    json_decref(j);
}

static json_t *double_state(void)
{
    long st = 0;
    json_t *j = http("GET", "/__double/state", NULL, 1, NULL, &st);
    assert_int_equal(st, 200);
    assert_non_null(j);
    return j;
}

static json_int_t state_int(json_t *s, const char *a, const char *b)
{
    json_t *x = json_object_get(s, a);
    if (b != NULL) {
        x = json_object_get(x, b);
    }
    return json_integer_value(x);
}

/* Requests the double saw for a method and path (replays included). */
static int requests_to(json_t *s, const char *method, const char *path)
{
    int n = 0;
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(s, "requests"), i, r)
    {
        if (strcmp(json_string_value(json_object_get(r, "method")), method) == 0 &&
            strcmp(json_string_value(json_object_get(r, "path")), path) == 0) {
            n++;
        }
    }
    return n;
}

static void confirm(const char *intent_id, const char *pm)
{
    char path[160], body[96];
    snprintf(path, sizeof path, "/v1/payment_intents/%s/confirm", intent_id);
    snprintf(body, sizeof body, "payment_method=%s", pm);
    json_decref(http("POST", path, body, 0, NULL, NULL));
}

/* ---- the adapter ---- */

static struct br_stripe *adapter(const char *base, const char *key, long timeout_ms,
                                 unsigned attempts)
{
    struct br_stripe_config cfg = {.api_base = base ? base : g_base,
                                   .secret_key = key ? key : KEY,
                                   .connect_timeout_ms = 1000,
                                   .timeout_ms = timeout_ms,
                                   .attempts_max = attempts,
                                   .pg = NULL,
                                   .log = &g_log};
    struct br_stripe *s = NULL;
    assert_int_equal(br_stripe_new(&s, &cfg), BR_OK);
    return s;
}

static char *log_text(void)
{
    FILE *f = fopen(g_log_path, "r");
    assert_non_null(f);
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static int setup(void **state)
{
    (void)state;
    control("/__double/reset", NULL);
    control("/__double/config", "{\"key\":\"" KEY "\",\"fail_clear\":true,\"refund_status\":\"succeeded\"}");
    assert_int_equal(ftruncate(g_log_fd, 0), 0);
    assert_int_equal(lseek(g_log_fd, 0, SEEK_SET), 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    /* never the secret key, in any test's log (Stripe's own masked "sk_****" neither) */
    assert_null(strstr(log_text(), "sk_"));
    return 0;
}

static void create(struct br_stripe *s, uint64_t payment, int64_t amount, int want,
                   char id[BR_PROVIDER_ID_MAX])
{
    struct br_provider pv = br_stripe_provider(s);
    char secret[BR_PROVIDER_SECRET_MAX] = "";
    assert_int_equal(br_provider_create_intent(&pv, payment, payment + 1000, amount, "EUR", id, secret),
                     want);
    if (want == BR_OK) {
        assert_int_equal(strncmp(id, "pi_", 3), 0);
        assert_non_null(strstr(secret, "_secret_"));
    }
}

/* ---- tests ---- */

static void test_create_confirm_refund_happy_path(void **state)
{
    (void)state;
    struct br_stripe *s = adapter(NULL, NULL, 5000, 4);
    struct br_provider pv = br_stripe_provider(s);
    char id[BR_PROVIDER_ID_MAX];
    create(s, 1, 1500, BR_OK, id);
    json_t *st = double_state();
    json_t *it = json_object_get(json_object_get(st, "intents"), id);
    assert_int_equal(json_integer_value(json_object_get(it, "amount")), 1500);
    assert_string_equal(json_string_value(json_object_get(it, "currency")), "eur");
    assert_string_equal(json_string_value(json_object_get(json_object_get(it, "metadata"), "payment_id")), "1");
    assert_string_equal(json_string_value(json_object_get(json_object_get(it, "metadata"), "booking_id")), "1001");
    json_decref(st);
    confirm(id, "pm_card_visa");
    assert_int_equal(br_provider_refund(&pv, 1, NULL, 1500), BR_OK);
    st = double_state();
    assert_int_equal(state_int(st, "totals", "captured"), 1500);
    assert_int_equal(state_int(st, "totals", "refunded"), 1500);
    assert_int_equal(state_int(st, "unkeyed_posts", NULL), 0);
    assert_non_null(json_object_get(json_object_get(st, "keys"), "charge-1"));
    assert_non_null(json_object_get(json_object_get(st, "keys"), "refund-1"));
    json_decref(st);
    br_stripe_free(s);
}

static void test_same_payment_twice_one_intent(void **state)
{
    (void)state;
    struct br_stripe *s = adapter(NULL, NULL, 5000, 4);
    char a[BR_PROVIDER_ID_MAX], b[BR_PROVIDER_ID_MAX], c[BR_PROVIDER_ID_MAX];
    create(s, 2, 700, BR_OK, a);
    create(s, 2, 700, BR_OK, b);
    assert_string_equal(a, b);
    /* Stripe forgets keys after 24 h: the map, not the key, prevents a second intent */
    control("/__double/expire_keys", NULL);
    create(s, 2, 700, BR_OK, c);
    assert_string_equal(a, c);
    json_t *st = double_state();
    assert_int_equal(json_object_size(json_object_get(st, "intents")), 1);
    assert_int_equal(state_int(st, "posts", "POST /v1/payment_intents"), 1);
    assert_int_equal(requests_to(st, "POST", "/v1/payment_intents"), 1);
    json_decref(st);
    br_stripe_free(s);
}

static void test_500_twice_then_200_one_intent(void **state)
{
    (void)state;
    control("/__double/config",
            "{\"fail_next\":[{\"path\":\"/v1/payment_intents\",\"method\":\"POST\",\"status\":500,\"count\":2}]}");
    struct br_stripe *s = adapter(NULL, NULL, 5000, 4);
    char id[BR_PROVIDER_ID_MAX];
    create(s, 3, 900, BR_OK, id);
    json_t *st = double_state();
    assert_int_equal(json_object_size(json_object_get(st, "intents")), 1);
    assert_int_equal(requests_to(st, "POST", "/v1/payment_intents"), 3);
    json_decref(st);
    assert_non_null(strstr(log_text(), "\"attempt\":2"));
    struct br_stripe_stats stats;
    br_stripe_stats(s, &stats);
    assert_int_equal(stats.requests[BR_STRIPE_OP_CREATE][BR_STRIPE_RETRY], 2);
    assert_int_equal(stats.requests[BR_STRIPE_OP_CREATE][BR_STRIPE_OK], 1);
    assert_string_equal(br_stripe_op_names[BR_STRIPE_OP_CREATE], "create_intent");
    assert_string_equal(br_stripe_outcome_names[BR_STRIPE_UNAVAILABLE], "unavailable");
    br_stripe_free(s);
}

static void test_saved_500_replayed_gives_up_unavailable(void **state)
{
    (void)state;
    /* a 500 saved under the key is replayed to every try (Stripe's rule) */
    control("/__double/config",
            "{\"fail_next\":[{\"path\":\"/v1/payment_intents\",\"status\":500,\"save\":true}]}");
    struct br_stripe *s = adapter(NULL, NULL, 5000, 3);
    char id[BR_PROVIDER_ID_MAX];
    create(s, 4, 900, BR_E_UNAVAILABLE, id);
    json_t *st = double_state();
    assert_int_equal(json_object_size(json_object_get(st, "intents")), 0);
    assert_int_equal(requests_to(st, "POST", "/v1/payment_intents"), 3);
    json_decref(st);
    br_stripe_free(s);
}

static void test_refund_timeout_applied_is_refunded_once(void **state)
{
    (void)state;
    struct br_stripe *s = adapter(NULL, NULL, 700, 4);
    struct br_provider pv = br_stripe_provider(s);
    char id[BR_PROVIDER_ID_MAX];
    create(s, 5, 1500, BR_OK, id);
    confirm(id, "pm_card_visa");
    /* the refund is done and saved, then the answer stalls past our 700 ms */
    control("/__double/config",
            "{\"fail_next\":[{\"path\":\"/v1/refunds\",\"timeout_s\":2,\"apply\":true}]}");
    /* a part of the payment, so a second refund would be accepted by Stripe */
    assert_int_equal(br_provider_refund(&pv, 5, id, 500), BR_OK);
    json_t *st = double_state();
    assert_int_equal(state_int(st, "totals", "refunded"), 500);
    assert_int_equal(json_array_size(json_object_get(st, "refunds")), 1);
    json_t *k = json_object_get(json_object_get(st, "keys"), "refund-5");
    assert_non_null(k);
    assert_true(json_integer_value(json_object_get(k, "replays")) >= 1);
    json_decref(st);
    assert_non_null(strstr(log_text(), "unknown outcome"));
    struct br_stripe_stats stats;
    br_stripe_stats(s, &stats);
    assert_true(stats.replayed >= 1);
    assert_int_equal(stats.requests[BR_STRIPE_OP_REFUND][BR_STRIPE_OK], 1);
    br_stripe_free(s);
}

static void test_no_answer_ever_is_unknown_outcome(void **state)
{
    (void)state;
    struct br_stripe *s = adapter(NULL, NULL, 400, 2);
    struct br_provider pv = br_stripe_provider(s);
    char id[BR_PROVIDER_ID_MAX];
    create(s, 6, 800, BR_OK, id);
    confirm(id, "pm_card_visa");
    control("/__double/config",
            "{\"fail_next\":[{\"path\":\"/v1/refunds\",\"timeout_s\":1,\"apply\":false,\"count\":2}]}");
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(br_provider_refund(&pv, 6, id, 800), BR_E_UNKNOWN_OUTCOME);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    /* bounded: 2 tries x 400 ms + one backoff of 200 ms +-25 % */
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    assert_true(secs >= 0.9);
    assert_true(secs < 3.0);
    /* the saga's later retry, same key, settles it once */
    assert_int_equal(br_provider_refund(&pv, 6, id, 800), BR_OK);
    json_t *st = double_state();
    assert_int_equal(state_int(st, "totals", "refunded"), 800);
    json_decref(st);
    br_stripe_free(s);
}

static void test_connection_refused_is_unavailable(void **state)
{
    (void)state;
    struct br_stripe *s = adapter("http://127.0.0.1:1", NULL, 500, 2);
    char id[BR_PROVIDER_ID_MAX];
    create(s, 7, 800, BR_E_UNAVAILABLE, id);
    br_stripe_free(s);
}

static void test_idempotency_error_is_invalid(void **state)
{
    (void)state;
    /* the key charge-8 was used before with other parameters */
    long st = 0;
    json_decref(http("POST", "/v1/payment_intents", "amount=999&currency=eur", 0, "charge-8", &st));
    assert_int_equal(st, 200);
    struct br_stripe *s = adapter(NULL, NULL, 5000, 4);
    char id[BR_PROVIDER_ID_MAX];
    create(s, 8, 1500, BR_E_INVALID, id);
    const char *log = log_text();
    assert_non_null(strstr(log, "\"stripe_type\":\"idempotency_error\""));
    assert_non_null(strstr(log, "\"request_id\":\"req_"));
    assert_null(strstr(log, "sk_")); /* the key, never (teardown checks every test too) */
    json_t *js = double_state();
    assert_int_equal(requests_to(js, "POST", "/v1/payment_intents"), 2); /* never retried */
    json_decref(js);
    br_stripe_free(s);
}

static void test_already_refunded_is_ok(void **state)
{
    (void)state;
    struct br_stripe *s = adapter(NULL, NULL, 5000, 4);
    struct br_provider pv = br_stripe_provider(s);
    char id[BR_PROVIDER_ID_MAX], body[96];
    create(s, 9, 1200, BR_OK, id);
    confirm(id, "pm_card_visa");
    snprintf(body, sizeof body, "payment_intent=%s", id);
    json_decref(http("POST", "/v1/refunds", body, 0, "operator-refund-9", NULL));
    assert_int_equal(br_provider_refund(&pv, 9, NULL, 1200), BR_OK);
    json_t *st = double_state();
    assert_int_equal(state_int(st, "totals", "refunded"), 1200);
    json_decref(st);
    assert_non_null(strstr(log_text(), "charge_already_refunded"));
    /* no intent ever made for a payment: nothing to give back */
    assert_int_equal(br_provider_refund(&pv, 99, NULL, 100), BR_OK);
    /* an intent Stripe does not know (provider.h: succeeds, nothing kept) */
    assert_int_equal(br_provider_refund(&pv, 98, "pi_unknown", 100), BR_OK);
    assert_int_equal(br_provider_refund(&pv, 98, "pi/../x", 100), BR_E_INVALID);
    br_stripe_free(s);
}

static void test_wrong_key_401_is_unavailable(void **state)
{
    (void)state;
    struct br_stripe *s = adapter(NULL, "sk_test_wrong", 5000, 4);
    char id[BR_PROVIDER_ID_MAX];
    create(s, 10, 1500, BR_E_UNAVAILABLE, id);
    json_t *st = double_state();
    assert_int_equal(requests_to(st, "POST", "/v1/payment_intents"), 1); /* not retried */
    json_decref(st);
    assert_non_null(strstr(log_text(), "stripe key refused"));
    br_stripe_free(s);
}

static void test_should_retry_header_obeyed(void **state)
{
    (void)state;
    struct br_stripe *s = adapter(NULL, NULL, 5000, 4);
    char id[BR_PROVIDER_ID_MAX];
    control("/__double/config", "{\"fail_next\":[{\"path\":\"/v1/payment_intents\",\"status\":503,"
                                "\"should_retry\":false}]}");
    create(s, 11, 100, BR_E_UNAVAILABLE, id);
    control("/__double/config", "{\"fail_next\":[{\"path\":\"/v1/payment_intents\",\"status\":400,"
                                "\"type\":\"invalid_request_error\",\"should_retry\":true}]}");
    create(s, 11, 100, BR_OK, id);
    /* 429 without the header: retried (rate limited, Stripe recommends backoff) */
    control("/__double/config", "{\"fail_next\":[{\"path\":\"/v1/payment_intents\",\"status\":429}]}");
    create(s, 12, 100, BR_OK, id);
    json_t *st = double_state();
    assert_int_equal(requests_to(st, "POST", "/v1/payment_intents"), 5);
    json_decref(st);
    br_stripe_free(s);
}

static void test_query_and_void(void **state)
{
    (void)state;
    struct br_stripe *s = adapter(NULL, NULL, 5000, 4);
    struct br_provider pv = br_stripe_provider(s);
    struct br_provider_answer a;
    char paid[BR_PROVIDER_ID_MAX], declined[BR_PROVIDER_ID_MAX], open[BR_PROVIDER_ID_MAX];
    /* no intent at all */
    assert_int_equal(br_provider_query(&pv, 20, NULL, false, &a), BR_OK);
    assert_int_equal(a.status, BR_PROVIDER_OPEN);
    assert_string_equal(a.fact_key, "");
    assert_int_equal(br_provider_query(&pv, 20, NULL, true, &a), BR_OK);
    assert_int_equal(a.status, BR_PROVIDER_FAILED);
    assert_string_equal(a.fact_key, "q:20:failed:canceled");
    create(s, 21, 100, BR_OK, paid);
    create(s, 22, 100, BR_OK, declined);
    create(s, 23, 100, BR_OK, open);
    assert_int_equal(br_provider_query(&pv, 21, NULL, false, &a), BR_OK);
    assert_int_equal(a.status, BR_PROVIDER_OPEN);
    assert_string_equal(a.intent_id, paid);
    confirm(paid, "pm_card_visa");
    confirm(declined, "pm_card_chargeDeclined");
    assert_int_equal(br_provider_query(&pv, 21, NULL, false, &a), BR_OK);
    assert_int_equal(a.status, BR_PROVIDER_SUCCEEDED);
    assert_string_equal(a.fact_key, "q:21:succeeded");
    /* a succeeded intent is never cancelled */
    assert_int_equal(br_provider_query(&pv, 21, paid, true, &a), BR_OK);
    assert_int_equal(a.status, BR_PROVIDER_SUCCEEDED);
    assert_int_equal(br_provider_query(&pv, 22, NULL, false, &a), BR_OK);
    assert_int_equal(a.status, BR_PROVIDER_FAILED);
    assert_int_equal(strncmp(a.fact_key, "q:22:failed:ch_", 15), 0);
    assert_int_equal(br_provider_query(&pv, 23, NULL, true, &a), BR_OK);
    assert_int_equal(a.status, BR_PROVIDER_FAILED);
    assert_string_equal(a.fact_key, "q:23:failed:canceled");
    json_t *st = double_state();
    json_t *intents = json_object_get(st, "intents");
    assert_string_equal(json_string_value(json_object_get(json_object_get(intents, open), "status")),
                        "canceled");
    assert_string_equal(json_string_value(json_object_get(json_object_get(intents, paid), "status")),
                        "succeeded");
    assert_int_equal(state_int(st, "unkeyed_posts", NULL), 0);
    json_decref(st);
    /* asked again: the same answer, the same fact */
    assert_int_equal(br_provider_query(&pv, 23, NULL, true, &a), BR_OK);
    assert_string_equal(a.fact_key, "q:23:failed:canceled");
    br_stripe_free(s);
}

struct racer {
    struct br_stripe *s;
    uint64_t payment;
    char id[BR_PROVIDER_ID_MAX];
    int rc;
};

static void *race(void *arg)
{
    struct racer *r = arg;
    struct br_provider pv = br_stripe_provider(r->s);
    char secret[BR_PROVIDER_SECRET_MAX];
    r->rc = br_provider_create_intent(&pv, r->payment, 1, 100, "EUR", r->id, secret);
    return NULL;
}

static void test_threads_one_intent_per_payment(void **state)
{
    (void)state;
    struct br_stripe *s = adapter(NULL, NULL, 5000, 6);
    struct racer r[8];
    pthread_t th[8];
    for (int i = 0; i < 8; i++) {
        r[i] = (struct racer){.s = s, .payment = 30 + (uint64_t)(i % 2)};
        assert_int_equal(pthread_create(&th[i], NULL, race, &r[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(r[i].rc, BR_OK);
        assert_string_equal(r[i].id, r[i % 2].id);
    }
    json_t *st = double_state();
    assert_int_equal(json_object_size(json_object_get(st, "intents")), 2);
    json_decref(st);
    br_stripe_free(s);
}

static void test_concurrent_same_key_409_then_replay(void **state)
{
    (void)state;
    /* the double runs the first create for 1 s with its key "running" */
    control("/__double/config",
            "{\"fail_next\":[{\"path\":\"/v1/payment_intents\",\"hold_s\":1}]}");
    struct br_stripe *s = adapter(NULL, NULL, 5000, 4);
    struct racer r = {.s = s, .payment = 40};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, race, &r), 0);
    struct timespec ts = {.tv_sec = 0, .tv_nsec = 300 * 1000000L};
    nanosleep(&ts, NULL);
    long st = 0;
    json_decref(http("POST", "/v1/payment_intents",
                     "amount=100&currency=eur&metadata%5Bpayment_id%5D=40&metadata%5Bbooking_id%5D=1"
                     "&automatic_payment_methods%5Benabled%5D=true",
                     0, "charge-40", &st));
    assert_int_equal(st, 409);
    pthread_join(th, NULL);
    assert_int_equal(r.rc, BR_OK);
    /* once finished, the same request is a replay of it */
    json_t *j = http("POST", "/v1/payment_intents",
                     "amount=100&currency=eur&metadata%5Bpayment_id%5D=40&metadata%5Bbooking_id%5D=1"
                     "&automatic_payment_methods%5Benabled%5D=true",
                     0, "charge-40", &st);
    assert_int_equal(st, 200);
    assert_string_equal(json_string_value(json_object_get(j, "id")), r.id);
    json_decref(j);
    json_t *js = double_state();
    assert_int_equal(json_object_size(json_object_get(js, "intents")), 1);
    json_decref(js);
    br_stripe_free(s);
}

static void test_bad_config_is_invalid(void **state)
{
    (void)state;
    struct br_stripe *s = NULL;
    struct br_stripe_config cfg = {.api_base = "ftp://x", .secret_key = KEY, .connect_timeout_ms = 1,
                                   .timeout_ms = 1, .attempts_max = 1};
    assert_int_equal(br_stripe_new(&s, &cfg), BR_E_INVALID);
    cfg.api_base = g_base;
    cfg.attempts_max = 0;
    assert_int_equal(br_stripe_new(&s, &cfg), BR_E_INVALID);
    cfg.attempts_max = 1;
    cfg.secret_key = "";
    assert_int_equal(br_stripe_new(&s, &cfg), BR_E_INVALID);
    assert_null(s);
}

int main(int argc, char **argv)
{
    if (argc > 1) {
        cmocka_set_test_filter(argv[1]); /* one test by name (scripts/test.d/54-stripe-plant.sh) */
    }
    const char *dir = getenv("BR_TEST_STRIPE_STATE");
    if (dir == NULL) {
        fprintf(stderr, "test_stripe: BR_TEST_STRIPE_STATE is not set (run through ctest)\n");
        return 1;
    }
    char path[512];
    snprintf(path, sizeof path, "%s/url", dir);
    FILE *f = fopen(path, "r");
    if (f == NULL || fgets(g_base, sizeof g_base, f) == NULL) {
        fprintf(stderr, "test_stripe: no double running (%s)\n", path);
        return 1;
    }
    fclose(f);
    g_base[strcspn(g_base, "\r\n")] = '\0';
    snprintf(g_log_path, sizeof g_log_path, "%s/adapter.log", dir);
    FILE *lf = fopen(g_log_path, "w+");
    if (lf == NULL) {
        return 1;
    }
    g_log_fd = dup(fileno(lf));
    fclose(lf);
    g_log = (struct br_log){.level = BR_LOG_DEBUG, .fd = g_log_fd};
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_confirm_refund_happy_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_same_payment_twice_one_intent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_500_twice_then_200_one_intent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_saved_500_replayed_gives_up_unavailable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refund_timeout_applied_is_refunded_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_answer_ever_is_unknown_outcome, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_refused_is_unavailable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idempotency_error_is_invalid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_already_refunded_is_ok, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_key_401_is_unavailable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_should_retry_header_obeyed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_and_void, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads_one_intent_per_payment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_same_key_409_then_replay, setup, teardown),
        cmocka_unit_test(test_bad_config_is_invalid),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    close(g_log_fd);
    return rc;
}
