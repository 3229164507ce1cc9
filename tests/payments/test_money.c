/*
 * test_money.c -- the money path end to end (issue 11, ISSUE11.md §4.13):
 * two `serve --backend distributed --kafka ... --payments stripe` processes
 * on one Redis and one PostgreSQL (tests/dist/env.sh), a
 * `bookingrush kafka-dev` mock cluster (tests/fixtures/kafka.sh) and the
 * Stripe test double (tests/fixtures/stripe.sh, tests/stripe/stripe_double.py),
 * each case with its own cluster, double, database and consumer group:
 *
 *   buyer_flow        three buyers pay through the double; each booking is
 *                     confirmed through the webhook, the outbox, the relay,
 *                     Kafka and the saga consumer;
 *   decline           a declined card leaves the booking held and the
 *                     payment failed; paid again with a good card (the same
 *                     payment and intent) it is confirmed; a second buyer
 *                     declined who never pays again ends with the hold
 *                     expired and nothing charged;
 *   late_payment      a webhook delayed past an 8 s hold: the seat went back
 *                     on sale and was sold once to another buyer, the late
 *                     payment is refunded, never a seat twice;
 *   duplicates_reordered  every webhook delivered twice, and a decline's
 *                     and a success's webhooks in reverse order: one fact
 *                     stored per event, one effect each, no refund;
 *   saga_killed_before_commit  BR_FAULT_SAGA_DIE=1: the consumer applies a
 *                     payment and dies before storing its offset; restarted,
 *                     the message comes again and changes nothing (run with
 *                     a large --payment-check-ms so point 8 cannot rescue a
 *                     lost message);
 *   broker_down       every broker down (kafka-dev `down -1`) while buyers
 *                     pay: the facts wait in PostgreSQL's outbox; brokers up
 *                     after 5 s, everything ends confirmed;
 *   relay_killed_mid_batch  BR_FAULT_RELAY_DIE=1: the relay dies after the
 *                     broker acknowledged a batch and before marking it
 *                     sent; restarted, the batch is sent again and the
 *                     consumers absorb the duplicates;
 *   refund_timeout    a late payment whose refund times out at the double
 *                     after the double applied it (apply:true): retried with
 *                     the same key, refunded once;
 *   webhook_lost      the double loses a success webhook: point 8's status
 *                     query (--payment-check-ms 1500) confirms the booking;
 *                     a buyer who never pays has the intent voided after
 *                     the hold expired;
 *   dlq               a correctly signed webhook for a payment that does
 *                     not exist: stored, relayed, dead-lettered after
 *                     --kafka-dlq-after attempts (br_saga_dlq_total and the
 *                     log line), and a real payment behind it still
 *                     confirmed.
 *
 * Each case ends with the money check: every payment final (PostgreSQL's
 * payments: confirmed or refunded, or failed with the hold gone; every
 * booking out of `held`), and charges - refunds at the double == the value
 * of the confirmed bookings read through the API == the same read from
 * PostgreSQL; one intent per payment, no unkeyed POST at the double, one
 * refund key per payment (refund-<payment>).
 *
 * Plants (scripts/test.d/76-payments-plant.sh): BR_PLANT=NO_PAYMENT_CHECK
 * must fail webhook_lost, BR_PLANT=SAGA_STORE_FIRST must fail
 * saga_killed_before_commit.
 *
 * Environment: BR_TEST_DIST, BR_TEST_PG (tests/dist/env.sh),
 * BR_KAFKA_FIXTURE, BR_STRIPE_FIXTURE (the fixture scripts' paths),
 * BR_MONEY_DIR (where each case's fixtures keep their state; the script
 * stops whatever is left there). BR_TEST_ONLY=NAME runs the matching cases.
 * Without BR_TEST_DIST every case is skipped with the reason; with it, a
 * missing piece (fixture, a serve flag) FAILS the case with the reason.
 * Every wait is a poll with a deadline; each case is bounded (< 60 s).
 *
 * Usage: test_money BINARY
 */
#define _DEFAULT_SOURCE

#include <curl/curl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../http/check.h"
#include "../http/client.h"

#define STRIPE_KEY "sk_test_money_e2e"
#define WEBHOOK_SECRET "whsec_money_e2e_secret"
#define DLQ_AFTER "3"
#define WAIT_MS 30000 /* the deadline of every wait for the saga */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- one case's world ---- */

struct world {
    const char *name;
    char dir[300];        /* BR_MONEY_DIR/<case>-<pid>-<n>: kafka/, stripe/, fixtures.log */
    char kafka[256];      /* bootstrap servers */
    char stripe[128];     /* the double's base URL */
    char group[64];       /* the saga's consumer group, unique */
    bool kafka_up, stripe_up, server_up;
    int64_t t0;           /* the case's start */
    struct t_server s;
};

static struct world g_w;

/* Formats a shell command into cmd and appends the redirection `tail`, whose
 * one %s is the case's folder. */
static void sh_format(char *cmd, size_t cap, const char *tail, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

static void sh_format(char *cmd, size_t cap, const char *tail, const char *fmt, va_list ap)
{
    int n = vsnprintf(cmd, cap, fmt, ap);
    assert_true(n > 0 && (size_t)n < cap - 400);
    snprintf(cmd + n, cap - (size_t)n, tail, g_w.dir);
}

/* A shell command, its output appended to the case's fixtures.log; its exit
 * status (-1 when it did not exit). */
static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    sh_format(cmd, sizeof cmd, " >>'%s/fixtures.log' 2>&1", fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* The last line a shell command printed on stdout (stderr to the log) into
 * out; false when it failed or printed nothing. */
static bool sh_line(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static bool sh_line(char *out, size_t cap, const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    sh_format(cmd, sizeof cmd, " 2>>'%s/fixtures.log'", fmt, ap);
    va_end(ap);
    FILE *p = popen(cmd, "r");
    if (p == NULL) {
        return false;
    }
    char line[1024];
    out[0] = '\0';
    while (fgets(line, sizeof line, p) != NULL) {
        line[strcspn(line, "\r\n")] = '\0';
        size_t len = strlen(line);
        if (len > 0) {
            len = len < cap ? len : cap - 1;
            memcpy(out, line, len);
            out[len] = '\0';
        }
    }
    return pclose(p) == 0 && out[0] != '\0';
}

/* Why this world cannot be built (a missing piece), or NULL. */
static const char *missing_piece(void)
{
    static char why[512];
    const char *kf = getenv("BR_KAFKA_FIXTURE");
    const char *sf = getenv("BR_STRIPE_FIXTURE");
    if (kf == NULL || access(kf, X_OK) != 0) {
        snprintf(why, sizeof why, "no Kafka fixture (BR_KAFKA_FIXTURE=%s): tests/fixtures/kafka.sh "
                 "(h/kafka11) not landed", kf ? kf : "unset");
        return why;
    }
    if (sf == NULL || access(sf, X_OK) != 0) {
        snprintf(why, sizeof why, "no Stripe double fixture (BR_STRIPE_FIXTURE=%s): "
                 "tests/fixtures/stripe.sh (h/stripe11) not landed", sf ? sf : "unset");
        return why;
    }
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' serve --help 2>&1 | grep -q -- '--stripe-api-base' && "
             "'%s' serve --help 2>&1 | grep -q -- '--kafka-group' && "
             "'%s' serve --help 2>&1 | grep -q -- '--payment-check-ms' && "
             "'%s' serve --help 2>&1 | grep -q -- '--kafka-session-timeout-ms'",
             t_binary(), t_binary(), t_binary(), t_binary());
    if (system(cmd) != 0) {
        snprintf(why, sizeof why, "%s serve has no --kafka-group / --stripe-api-base / "
                 "--payment-check-ms: the wiring (h/wire11) not landed", t_binary());
        return why;
    }
    return NULL;
}

/* Starts the case's kafka-dev and double and the two processes with the
 * payment flags plus extra (NULL-terminated, at most 4 words). */
static void world_start(const char *name, const char *const *extra)
{
    if (!t_distributed()) {
        fprintf(stderr, "test_money: %s SKIPPED: no BR_TEST_DIST (run by "
                "scripts/test.d/75-payments.sh)\n", name);
        skip();
    }
    const char *why = missing_piece();
    if (why != NULL) {
        fail_msg("test_money: %s cannot run: %s", name, why);
    }
    memset(&g_w, 0, sizeof g_w);
    g_w.name = name;
    g_w.t0 = now_ms();
    static unsigned n;
    n++;
    const char *root = getenv("BR_MONEY_DIR");
    /* The pid too: a kept dir (BR_TEST_KEEP) of an earlier run of the
     * same case, e.g. under another planted build, is never reused. */
    snprintf(g_w.dir, sizeof g_w.dir, "%s/%s-%d-%u", root != NULL ? root : "/tmp", name,
             (int)getpid(), n);
    assert_int_equal(mkdir(g_w.dir, 0700), 0);
    snprintf(g_w.group, sizeof g_w.group, "money-%s-%d-%u", name, (int)getpid(), n);

    char line[512];
    /* kafka.sh start BUILD_DIR STATE_DIR: the kafka-dev of the binary under test. */
    char build[512];
    snprintf(build, sizeof build, "%s", t_binary());
    char *slash = strrchr(build, '/');
    if (slash != NULL) {
        *slash = '\0';
    } else {
        snprintf(build, sizeof build, ".");
    }
    if (!sh_line(line, sizeof line, "'%s' start '%s' '%s/kafka'", getenv("BR_KAFKA_FIXTURE"), build,
                 g_w.dir)) {
        fail_msg("kafka-dev did not start (see %s/fixtures.log)", g_w.dir);
    }
    g_w.kafka_up = true;
    const char *bs = strstr(line, "bootstrap=");
    snprintf(g_w.kafka, sizeof g_w.kafka, "%.255s", bs != NULL ? bs + 10 : line);
    if (!sh_line(line, sizeof line, "'%s' start '%s/stripe'", getenv("BR_STRIPE_FIXTURE"),
                 g_w.dir)) {
        fail_msg("the Stripe double did not start (see %s/fixtures.log)", g_w.dir);
    }
    g_w.stripe_up = true;
    if (strncmp(line, "http://", 7) == 0) {
        snprintf(g_w.stripe, sizeof g_w.stripe, "%.127s", line);
    } else {
        const char *digits = line + strcspn(line, "0123456789");
        snprintf(g_w.stripe, sizeof g_w.stripe, "http://127.0.0.1:%.16s", digits);
    }

    const char *args[24];
    int k = 0;
    args[k++] = "--kafka";
    args[k++] = g_w.kafka;
    args[k++] = "--kafka-group";
    args[k++] = g_w.group;
    args[k++] = "--stripe-api-base";
    args[k++] = g_w.stripe;
    for (int i = 0; extra != NULL && extra[i] != NULL; i++) {
        assert_true(k < 16);
        args[k++] = extra[i];
    }
    args[k] = NULL;
    if (strlen(g_w.kafka) >= 64 || strlen(g_w.stripe) >= 64) {
        fail_msg("flag values too long for the harness (64): %s %s", g_w.kafka, g_w.stripe);
    }
    t_server_start(&g_w.s, args);
    g_w.server_up = true;
    assert_true(g_w.s.nodes >= 2);
    fprintf(stderr, "%s: kafka %s, double %s, group %s, processes up after %" PRId64 " ms\n",
            name, g_w.kafka, g_w.stripe, g_w.group, now_ms() - g_w.t0);
}

/* cmocka teardown: everything the case started, failed or not. */
static int world_stop(void **state)
{
    (void)state;
    int rc = 0;
    int64_t t_stop = now_ms();
    if (g_w.server_up) {
        rc = t_server_stop(&g_w.s);
        t_server_cleanup(&g_w.s);
        g_w.server_up = false;
    }
    /* The fixtures stop in the background (kafka-dev takes 3.5 s, the
     * double 1.7 s) while the next case starts; the script stops whatever
     * is left of them at its end. */
    if (g_w.stripe_up) {
        sh("('%s' stop '%s/stripe' &)", getenv("BR_STRIPE_FIXTURE"), g_w.dir);
        g_w.stripe_up = false;
    }
    if (g_w.kafka_up) {
        sh("('%s' stop '%s/kafka' &)", getenv("BR_KAFKA_FIXTURE"), g_w.dir);
        g_w.kafka_up = false;
    }
    if (g_w.name != NULL) {
        fprintf(stderr, "%s: %" PRId64 " ms (stopping %" PRId64 " ms)\n", g_w.name,
                now_ms() - g_w.t0, now_ms() - t_stop);
    }
    return rc == 0 ? 0 : -1;
}

/* kafka-dev's control (ISSUE11.md §4.10): "down -1", "up -1", ... */
static void kafka_ctl(const char *what)
{
    if (sh("'%s' ctl '%s/kafka' %s", getenv("BR_KAFKA_FIXTURE"), g_w.dir, what) != 0) {
        fail_msg("kafka-dev control '%s' failed (see %s/fixtures.log)", what, g_w.dir);
    }
}

/* ---- plain HTTP (the double, signed webhooks) ---- */

struct hres {
    long status;
    char *body;
    size_t len;
    json_t *json;
};

static size_t on_body(char *ptr, size_t size, size_t n, void *ud)
{
    struct hres *r = ud;
    return t_append(&r->body, &r->len, ptr, size * n) ? size * n : 0;
}

static void hres_free(struct hres *r)
{
    free(r->body);
    json_decref(r->json);
    memset(r, 0, sizeof *r);
}

/* One request to url; basic: the Stripe key as HTTP Basic user (or NULL);
 * headers NULL-terminated (or NULL). r->status 0 when no answer came. */
static void http(const char *method, const char *url, bool basic, const char *const *headers,
                 const char *body, struct hres *r)
{
    memset(r, 0, sizeof *r);
    CURL *e = curl_easy_init();
    assert_non_null(e);
    struct curl_slist *h = curl_slist_append(NULL, "Expect:");
    for (int i = 0; headers != NULL && headers[i] != NULL; i++) {
        h = curl_slist_append(h, headers[i]);
    }
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    if (body != NULL) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    }
    if (basic) {
        curl_easy_setopt(e, CURLOPT_USERPWD, STRIPE_KEY ":");
    }
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 15000L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    if (curl_easy_perform(e) == CURLE_OK) {
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &r->status);
    }
    curl_easy_cleanup(e);
    curl_slist_free_all(h);
    if (r->body != NULL) {
        r->json = json_loads(r->body, 0, NULL);
    }
}

/* POST of a JSON control document to the double (/__double/...). */
static void dbl_post(const char *path, json_t *doc)
{
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    char url[300];
    snprintf(url, sizeof url, "%s%s", g_w.stripe, path);
    const char *const hs[] = {"Content-Type: application/json", NULL};
    struct hres r;
    http("POST", url, false, hs, text, &r);
    if (r.status != 200) {
        fail_msg("double %s %s: %ld %s", path, text, r.status, r.body ? r.body : "");
    }
    free(text);
    hres_free(&r);
}

/* The double's whole state (GET /__double/state); json_decref it. */
static json_t *dbl_state(void)
{
    char url[300];
    snprintf(url, sizeof url, "%s/__double/state", g_w.stripe);
    struct hres r;
    http("GET", url, false, NULL, NULL, &r);
    if (r.status != 200 || r.json == NULL) {
        fail_msg("double state: %ld %s", r.status, r.body ? r.body : "");
    }
    json_t *j = json_incref(r.json);
    hres_free(&r);
    return j;
}

/* Points the double's webhooks at process node and gives it the key and
 * the webhook secret (what an operator sets up in Stripe's dashboard). */
static void dbl_target(int node)
{
    char url[320];
    snprintf(url, sizeof url, "%s/api/v1/webhooks/stripe", g_w.s.bases[node]);
    /* Retries like Stripe's (which go on for days): 40 attempts, 5 s apart
     * at most, outlast a restart of the processes. */
    dbl_post("/__double/config", json_pack("{s:s, s:s, s:[s], s:i}", "key", STRIPE_KEY,
                                           "webhook_url", url, "secrets", WEBHOOK_SECRET,
                                           "webhook_attempts", 40));
}

/* Delivery knobs for every webhook of one payment (the double's
 * webhook_by_payment: duplicate, delay_ms, lose, reorder). */
static void dbl_knobs(uint64_t payment, json_t *knobs)
{
    char id[32];
    snprintf(id, sizeof id, "%" PRIu64, payment);
    json_t *by = json_object();
    json_object_set_new(by, id, knobs);
    dbl_post("/__double/config", json_pack("{s:o}", "webhook_by_payment", by));
}

/* The buyer's card at the double (what Stripe.js does): the intent's
 * confirm with payment method pm. The double's answer's status. */
static long dbl_confirm(const char *intent, const char *pm)
{
    char url[300];
    snprintf(url, sizeof url, "%s/v1/payment_intents/%s/confirm", g_w.stripe, intent);
    char body[128];
    snprintf(body, sizeof body, "payment_method=%s", pm);
    const char *const hs[] = {"Content-Type: application/x-www-form-urlencoded", NULL};
    struct hres r;
    http("POST", url, true, hs, body, &r);
    long st = r.status;
    if (st != 200 && st != 402) {
        fprintf(stderr, "double confirm %s %s: %ld %s\n", intent, pm, st, r.body ? r.body : "");
    }
    hres_free(&r);
    return st;
}

/* ---- PostgreSQL, read with psql ---- */

static bool pg_row(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static bool pg_row(char *out, size_t cap, const char *fmt, ...)
{
    char sql[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    return t_psql_row(g_w.s.pg_url, sql, out, cap);
}

/* One integer from PostgreSQL (the first column of the first row). */
static int64_t pg_int(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int64_t pg_int(const char *fmt, ...)
{
    char sql[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    char out[256];
    if (!pg_row(out, sizeof out, "%s", sql)) {
        fail_msg("psql: %s: %s", sql, out);
    }
    char *end = NULL;
    long long v = strtoll(out, &end, 10);
    if (end == out) {
        fail_msg("psql: %s: not a number: '%s'", sql, out);
    }
    return (int64_t)v;
}

/* ---- buyers ---- */

struct buy {
    char token[1024];
    uint64_t booking;
    uint64_t payment;
    int64_t total;
    char intent[96];
};

static uint64_t open_event(int capacity, int hold_ttl_s)
{
    return t_event(&g_w.s, json_pack("{s:b, s:i, s:i, s:[{s:s, s:i, s:i, s:s}]}", "requires_pass", 0,
                                     "per_user_limit", 4, "hold_ttl_s", hold_ttl_s, "zones",
                                     "name", "Floor", "capacity", capacity, "price_minor", 1000,
                                     "currency", "EUR"));
}

/* reserve qty seats of zone 1; the answer's status (201: b->booking set). */
static long reserve(struct buy *b, uint64_t ev, int qty)
{
    struct t_resp r;
    t_json(&g_w.s, "POST", "/api/v1/bookings/reserve", b->token,
           json_pack("{s:I, s:i, s:i}", "event_id", (json_int_t)ev, "zone_id", 1, "quantity", qty),
           NULL, &r);
    long st = r.status;
    if (st == 201) {
        b->booking = J_INT(r, "id");
        b->total = (int64_t)J_INT(r, "total_minor");
    }
    t_resp_free(&r);
    return st;
}

/* A new buyer with a booking of qty seats. */
static void buyer(struct buy *b, const char *tag, uint64_t ev, int qty)
{
    memset(b, 0, sizeof *b);
    t_buyer(&g_w.s, tag, b->token, sizeof b->token);
    struct t_resp r;
    t_json(&g_w.s, "POST", "/api/v1/bookings/reserve", b->token,
           json_pack("{s:I, s:i, s:i}", "event_id", (json_int_t)ev, "zone_id", 1, "quantity", qty),
           NULL, &r);
    EXPECT(r, 201, NULL);
    b->booking = J_INT(r, "id");
    b->total = (int64_t)J_INT(r, "total_minor");
    t_resp_free(&r);
}

/* POST /api/v1/payments: the payment and its PaymentIntent at the double. */
static void pay_create(struct buy *b)
{
    struct t_resp r;
    t_json(&g_w.s, "POST", "/api/v1/payments", b->token,
           json_pack("{s:I}", "booking_id", (json_int_t)b->booking), NULL, &r);
    EXPECT(r, 201, NULL);
    b->payment = J_INT(r, "payment_id");
    const char *pi = J_STR(r, "provider_payment_id");
    assert_non_null(pi);
    if (strncmp(pi, "pi_", 3) != 0) {
        fail_msg("provider_payment_id %s is not a Stripe intent (is --payments stripe wired?)", pi);
    }
    snprintf(b->intent, sizeof b->intent, "%s", pi);
    t_resp_free(&r);
}

/* The booking's status through the API ("held", "confirmed", ...). */
static const char *booking_status(struct buy *b, char *out, size_t cap, int64_t *total)
{
    char p[96];
    snprintf(p, sizeof p, "/api/v1/bookings/%" PRIu64, b->booking);
    struct t_resp r;
    t_request(&g_w.s, "GET", p, b->token, NULL, NULL, 0, &r);
    if (r.status == 200) {
        snprintf(out, cap, "%s", J_STR(r, "status"));
        if (total != NULL) {
            *total = (int64_t)J_INT(r, "total_minor");
        }
    } else {
        snprintf(out, cap, "%ld %s", r.status, r.body ? r.body : "");
    }
    t_resp_free(&r);
    return out;
}

/* The booking's state in PostgreSQL (enum br_hold_state as text, "" none). */
static const char *booking_status_pg(struct buy *b, char *out, size_t cap)
{
    if (!pg_row(out, cap, "SELECT state FROM bookings WHERE id = %" PRIu64, b->booking)) {
        out[0] = '\0';
    }
    return out;
}

/* Waits (deadline ms) until the booking's status is want; asserts it. */
static void wait_booking(struct buy *b, const char *want, int deadline_ms)
{
    char st[256] = "";
    int64_t t0 = now_ms();
    while (now_ms() - t0 < deadline_ms) {
        if (strcmp(booking_status(b, st, sizeof st, NULL), want) == 0) {
            return;
        }
        t_sleep_ms(100);
    }
    fail_msg("%s: booking %" PRIu64 " is '%s' after %d ms, want '%s' (logs in %s)", g_w.name,
             b->booking, st, deadline_ms, want, g_w.s.dir);
}

/* The payment's state in PostgreSQL (enum br_payment_state; -1 none yet). */
static int64_t pg_payment_state(uint64_t payment)
{
    char out[64];
    if (!pg_row(out, sizeof out, "SELECT state FROM payments WHERE id = %" PRIu64, payment) ||
        out[0] == '\0') {
        return -1;
    }
    return strtoll(out, NULL, 10);
}

static void wait_payment_state(uint64_t payment, int64_t want, int deadline_ms)
{
    int64_t got = -1;
    int64_t t0 = now_ms();
    while (now_ms() - t0 < deadline_ms) {
        got = pg_payment_state(payment);
        if (got == want) {
            return;
        }
        t_sleep_ms(100);
    }
    fail_msg("%s: payment %" PRIu64 " in PostgreSQL has state %" PRId64 " after %d ms, want %" PRId64,
             g_w.name, payment, got, deadline_ms, want);
}

/* ---- the money check ---- */

/* Every payment final in PostgreSQL (the case's own database): confirmed
 * (3), refunded (5), or failed (2) with its booking no longer held; and no
 * booking held. */
static bool all_final(char *why, size_t cap)
{
    char out[256];
    if (!pg_row(out, sizeof out,
                "SELECT count(*) FILTER (WHERE p.state IN (1, 4) OR (p.state = 2 AND b.state = 1)),"
                " count(*) FROM payments p JOIN bookings b ON b.id = p.booking_id")) {
        snprintf(why, cap, "psql: %s", out);
        return false;
    }
    long long open = -1, all = -1;
    if (sscanf(out, "%lld|%lld", &open, &all) != 2 || open != 0) {
        snprintf(why, cap, "payments open|all in PostgreSQL: %s", out);
        return false;
    }
    int64_t held = pg_int("SELECT count(*) FROM bookings WHERE state = 1");
    if (held != 0) {
        snprintf(why, cap, "%" PRId64 " bookings still held in PostgreSQL", held);
        return false;
    }
    return true;
}

/* The double's ledger (GET /__double/state: "captured" and "refunded" by
 * intent id): sums; checks per intent that refunded <= captured, one intent
 * per payment id, and no POST without an Idempotency-Key. */
static void dbl_ledger(int64_t *captured, int64_t *refunded, int *intents)
{
    json_t *st = dbl_state();
    json_t *cap = json_object_get(st, "captured");
    json_t *ref = json_object_get(st, "refunded");
    *captured = 0;
    *refunded = 0;
    *intents = 0;
    const char *id;
    json_t *v;
    json_object_foreach(cap, id, v) {
        int64_t c = (int64_t)json_integer_value(v);
        int64_t r = (int64_t)json_integer_value(json_object_get(ref, id));
        if (r > c) {
            fail_msg("double: intent %s refunded %" PRId64 " of %" PRId64 " captured", id, r, c);
        }
        *captured += c;
    }
    json_object_foreach(ref, id, v) {
        if (json_object_get(cap, id) == NULL && json_integer_value(v) != 0) {
            fail_msg("double: intent %s refunded but never captured", id);
        }
        *refunded += (int64_t)json_integer_value(v);
    }
    uint64_t seen[256];
    int nseen = 0;
    json_object_foreach(json_object_get(st, "intents"), id, v) {
        (*intents)++;
        const char *pid = json_string_value(
            json_object_get(json_object_get(v, "metadata"), "payment_id"));
        uint64_t p = pid != NULL ? strtoull(pid, NULL, 10) : 0;
        for (int k = 0; k < nseen; k++) {
            if (seen[k] == p) {
                fail_msg("double: two intents for payment %s", pid ? pid : "(none)");
            }
        }
        if (nseen < 256) {
            seen[nseen++] = p;
        }
    }
    json_t *unkeyed = json_object_get(st, "unkeyed_posts");
    if (json_integer_value(unkeyed) != 0) {
        fail_msg("double: %" JSON_INTEGER_FORMAT " POSTs without an Idempotency-Key",
                 json_integer_value(unkeyed));
    }
    json_decref(st);
}

/* The intent's status at the double ("" when unknown). */
static void dbl_intent_status(const char *intent, char *out, size_t cap)
{
    json_t *st = dbl_state();
    const char *s = json_string_value(
        json_object_get(json_object_get(json_object_get(st, "intents"), intent), "status"));
    snprintf(out, cap, "%s", s != NULL ? s : "");
    json_decref(st);
}

/* How many distinct Idempotency-Keys the double saw on /v1/refunds for
 * payment (keys are refund-<payment>; more than one = a refund retried
 * under another key). */
static int dbl_refund_keys(uint64_t payment)
{
    json_t *st = dbl_state();
    int n = 0;
    char want[64];
    snprintf(want, sizeof want, "%" PRIu64, payment);
    const char *key;
    json_t *k;
    json_object_foreach(json_object_get(st, "keys"), key, k) {
        const char *path = json_string_value(json_object_get(k, "path"));
        if (path != NULL && strcmp(path, "/v1/refunds") == 0 && strstr(key, want) != NULL) {
            n++;
        }
    }
    json_decref(st);
    return n;
}

static bool breaking(void)
{
    const char *b = getenv("BR_TEST_BREAK");
    return b != NULL && strcmp(b, "1") == 0;
}

/* BR_TEST_BREAK=1: money taken behind the deployment's back, 500 charged
 * at the double for no booking (its webhook lost), as a charge nobody
 * accounts for would be: the money check must then fail, in every case. */
static void break_money(void)
{
    dbl_post("/__double/config", json_pack("{s:{s:{s:b}}}", "webhook_by_payment", "", "lose", 1));
    char url[300];
    snprintf(url, sizeof url, "%s/v1/payment_intents", g_w.stripe);
    const char *const hs[] = {"Content-Type: application/x-www-form-urlencoded",
                              "Idempotency-Key: money-break", NULL};
    struct hres r;
    http("POST", url, true, hs, "amount=500&currency=eur", &r);
    const char *id = json_string_value(json_object_get(r.json, "id"));
    assert_non_null(id);
    char pi[96];
    snprintf(pi, sizeof pi, "%s", id);
    hres_free(&r);
    assert_int_equal(dbl_confirm(pi, "pm_card_visa"), 200);
    fprintf(stderr, "%s: BR_TEST_BREAK: 500 charged at the double for no booking\n", g_w.name);
}

/* Asserts the double saw want refund keys for payment (1: refunded under
 * one key whatever the retries; 0: never refunded). */
static void expect_refund_keys(uint64_t payment, int want)
{
    int got = dbl_refund_keys(payment);
    if (got != want) {
        fail_msg("%s: %d refund keys for payment %" PRIu64 " at the double, want %d", g_w.name, got,
                 payment, want);
    }
}

/* The money check: waits until every payment is final (PostgreSQL, and the
 * API for the buyers' bookings: b[0..n) are every booking of the case),
 * then charges - refunds at the double == value of the confirmed bookings
 * through the API == the same in PostgreSQL (the case's own database, its
 * own double). Returns the confirmed value. */
static int64_t money_check(struct buy *b, int n)
{
    if (breaking()) {
        break_money();
    }
    char why[512] = "";
    int64_t t0 = now_ms();
    int64_t api = 0, pg = -1, captured = 0, refunded = 0;
    int intents = 0;
    for (;;) {
        bool done = all_final(why, sizeof why);
        api = 0;
        for (int i = 0; done && i < n; i++) {
            char st[256];
            int64_t total = 0;
            booking_status(&b[i], st, sizeof st, &total);
            if (strcmp(st, "held") == 0 || strchr(st, ' ') != NULL) {
                snprintf(why, sizeof why, "booking %" PRIu64 " is '%s' through the API",
                         b[i].booking, st);
                done = false;
            } else if (strcmp(st, "confirmed") == 0) {
                api += total;
            }
        }
        if (done) {
            pg = pg_int("SELECT coalesce(sum(total_minor), 0) FROM bookings WHERE state = 2");
            int64_t all = pg_int("SELECT count(*) FROM bookings");
            if (all != n) {
                fail_msg("%s: %" PRId64 " bookings in PostgreSQL, the case made %d", g_w.name, all, n);
            }
            dbl_ledger(&captured, &refunded, &intents);
            snprintf(why, sizeof why,
                     "captured %" PRId64 " - refunded %" PRId64 " = %" PRId64
                     " at the double, confirmed value %" PRId64 " (API) %" PRId64 " (PostgreSQL)",
                     captured, refunded, captured - refunded, api, pg);
            /* The projection may lag the API by a batch: wait for it. Once
             * every payment is final the double's ledger is complete (a
             * refund is there before refund_result is applied): a
             * difference then is final too. */
            if (pg == api) {
                if (captured - refunded != api) {
                    fail_msg("%s: money check: %s (logs in %s)", g_w.name, why, g_w.s.dir);
                }
                break;
            }
        }
        if (now_ms() - t0 > WAIT_MS) {
            fail_msg("%s: money check after %d ms: %s (logs in %s)", g_w.name, WAIT_MS, why,
                     g_w.s.dir);
        }
        t_sleep_ms(200);
    }
    fprintf(stderr,
            "money %s: captured %" PRId64 " - refunded %" PRId64 " = confirmed %" PRId64
            " (API and PostgreSQL); %d intents, every payment final (%" PRId64 " ms)\n",
            g_w.name, captured, refunded, api, intents, now_ms() - t0);
    return api;
}


/* Sum over the live processes of one metric's samples whose line starts
 * with prefix (a name, or a name with labels). */
static double metric_sum(const char *prefix)
{
    char *all = t_metrics_all(&g_w.s);
    double sum = 0;
    size_t pl = strlen(prefix);
    for (char *line = all; line != NULL && *line != '\0';) {
        char *nl = strchr(line, '\n');
        if (nl != NULL) {
            *nl = '\0'; /* the line alone */
        }
        if (strncmp(line, prefix, pl) == 0 && (line[pl] == ' ' || line[pl] == '{')) {
            const char *sp = strrchr(line, ' ');
            if (sp != NULL) {
                sum += strtod(sp + 1, NULL);
            }
        }
        line = nl != NULL ? nl + 1 : NULL;
    }
    free(all);
    return sum;
}

static bool logs_have(const char *what)
{
    char cmd[700];
    snprintf(cmd, sizeof cmd, "grep -q -F '%s' '%s'/server*.log", what, g_w.s.dir);
    return system(cmd) == 0;
}

/* A process that exited by itself (a fault hook): reaped and marked down;
 * true when node i is down now. */
static bool reap_if_dead(int i)
{
    if (g_w.s.pids[i] == 0) {
        return true;
    }
    int status;
    if (waitpid(g_w.s.pids[i], &status, WNOHANG) == g_w.s.pids[i]) {
        fprintf(stderr, "%s: process %d exited (%s %d)\n", g_w.name, i,
                WIFEXITED(status) ? "status" : "signal",
                WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
        g_w.s.pids[i] = 0;
        g_w.s.pid = g_w.s.pids[0];
        return true;
    }
    return false;
}

/* Waits (deadline) until at least one process died by itself; how many. */
static int wait_a_death(int deadline_ms)
{
    int64_t t0 = now_ms();
    for (;;) {
        int dead = 0;
        for (int i = 0; i < g_w.s.nodes; i++) {
            dead += reap_if_dead(i) ? 1 : 0;
        }
        if (dead > 0 || now_ms() - t0 > deadline_ms) {
            return dead;
        }
        t_sleep_ms(50);
    }
}

/* Requests go to a live process. */
static void use_live(void)
{
    for (int i = 0; i < g_w.s.nodes; i++) {
        if (g_w.s.pids[i] != 0) {
            g_w.s.current = i;
            snprintf(g_w.s.base, sizeof g_w.s.base, "%s", g_w.s.bases[i]);
            return;
        }
    }
}

/* The partitions node i's consumer holds now, from its log's last "kafka
 * partitions" line (needs --log-level info): -1 when none yet. */
static int assigned_now(int i)
{
    char cmd[600];
    if (i == 0) {
        snprintf(cmd, sizeof cmd, "grep -h '\"kafka partitions ' '%s/server.log' | tail -n 1",
                 g_w.s.dir);
    } else {
        snprintf(cmd, sizeof cmd, "grep -h '\"kafka partitions ' '%s/server%d.log' | tail -n 1",
                 g_w.s.dir, i);
    }
    FILE *p = popen(cmd, "r");
    if (p == NULL) {
        return -1;
    }
    char line[512] = "";
    if (fgets(line, sizeof line, p) == NULL) {
        line[0] = '\0';
    }
    pclose(p);
    const char *count = strstr(line, "\"count\":");
    if (strstr(line, "partitions assigned") == NULL || count == NULL) {
        return strstr(line, "partitions revoked") != NULL ? 0 : -1;
    }
    return atoi(count + 8);
}

/* Waits (deadline) until the live consumers hold every partition of
 * br.payments (kafka-dev's 4) between them: the group is stable, nobody
 * joining or leaving. Asserts it. */
static void wait_group_stable(int deadline_ms)
{
    int64_t t0 = now_ms();
    int sum = 0;
    while (now_ms() - t0 < deadline_ms) {
        sum = 0;
        for (int i = 0; i < g_w.s.nodes; i++) {
            int n = g_w.s.pids[i] != 0 ? assigned_now(i) : 0;
            sum += n > 0 ? n : 0;
        }
        if (sum == 4) {
            return;
        }
        t_sleep_ms(100);
    }
    fail_msg("%s: the saga's group holds %d of 4 partitions after %d ms (logs in %s)", g_w.name,
             sum, deadline_ms, g_w.s.dir);
}

/* ---- the cases ---- */

static void test_buyer_flow(void **state)
{
    (void)state;
    world_start("buyer_flow", NULL);
    dbl_target(0);
    uint64_t ev = open_event(10, 600);
    struct buy b[3];
    for (int i = 0; i < 3; i++) {
        buyer(&b[i], "flow", ev, i + 1);
        pay_create(&b[i]);
        assert_int_equal(dbl_confirm(b[i].intent, "pm_card_visa"), 200);
    }
    for (int i = 0; i < 3; i++) {
        wait_booking(&b[i], "confirmed", WAIT_MS);
    }
    /* One stored fact per payment, each relayed (sent) and none left. */
    assert_int_equal(pg_int("SELECT count(*) FROM provider_events_received WHERE source = 'webhook'"),
                     3);
    int64_t t0 = now_ms();
    while (pg_int("SELECT count(*) FROM outbox WHERE topic = 'payments' AND sent_at IS NULL") != 0 &&
           now_ms() - t0 < 10000) {
        t_sleep_ms(100);
    }
    assert_int_equal(pg_int("SELECT count(*) FROM outbox WHERE topic = 'payments' AND sent_at IS NULL"),
                     0);
    assert_int_equal(money_check(b, 3), 6000);
}

static void test_decline(void **state)
{
    (void)state;
    const char *const extra[] = {"--payment-check-ms", "1500", NULL};
    world_start("decline", extra);
    dbl_target(0);
    /* b0 has time to pay again; b1's hold lasts 4 s. */
    uint64_t ev = open_event(10, 600);
    uint64_t ev_short = open_event(10, 4);
    struct buy b[2];
    buyer(&b[0], "decline", ev, 1);
    buyer(&b[1], "decline-gone", ev_short, 1);
    pay_create(&b[0]);
    pay_create(&b[1]);
    long st = dbl_confirm(b[0].intent, "pm_card_chargeDeclined");
    assert_true(st == 402 || st == 200);
    st = dbl_confirm(b[1].intent, "pm_card_chargeDeclinedInsufficientFunds");
    assert_true(st == 402 || st == 200);
    wait_payment_state(b[0].payment, 2 /* failed */, WAIT_MS);
    char s0[64];
    assert_string_equal(booking_status(&b[0], s0, sizeof s0, NULL), "held");
    /* Paid again: the same payment and the same intent, a good card. */
    struct buy again = b[0];
    pay_create(&again);
    assert_int_equal(again.payment, b[0].payment);
    assert_string_equal(again.intent, b[0].intent);
    assert_int_equal(dbl_confirm(b[0].intent, "pm_card_visa"), 200);
    wait_booking(&b[0], "confirmed", WAIT_MS);
    /* b[1] never pays again: its hold expires, its payment stays failed. */
    wait_booking(&b[1], "expired", WAIT_MS);
    assert_int_equal(money_check(b, 2), 1000);
    assert_int_equal(pg_payment_state(b[1].payment), 2);
}

static void test_late_payment(void **state)
{
    (void)state;
    world_start("late_payment", NULL);
    dbl_target(0);
    /* One seat, held 8 s: long enough for the second buyer to pay in time
     * through Kafka on a loaded 2-core machine (with 3 s, its payment once
     * arrived after its own hold, beside 76-payments-plant and a build, and
     * was refunded), short enough for a case. */
    uint64_t ev = open_event(1, 8);
    struct buy b[2];
    buyer(&b[0], "late", ev, 1);
    memset(&b[1], 0, sizeof b[1]);
    t_buyer(&g_w.s, "late-second", b[1].token, sizeof b[1].token);
    pay_create(&b[0]);
    /* Its webhook comes 11 s later: after the hold, while the second buyer holds the seat. */
    dbl_knobs(b[0].payment, json_pack("{s:i}", "delay_ms", 11000));
    assert_int_equal(dbl_confirm(b[0].intent, "pm_card_visa"), 200);
    wait_booking(&b[0], "expired", 15000);
    /* The seat is on sale again: another buyer takes it and pays. */
    int64_t t0 = now_ms();
    long st;
    while ((st = reserve(&b[1], ev, 1)) != 201 && now_ms() - t0 < 10000) {
        t_sleep_ms(100);
    }
    assert_int_equal(st, 201);
    pay_create(&b[1]);
    assert_int_equal(dbl_confirm(b[1].intent, "pm_card_visa"), 200);
    wait_booking(&b[1], "confirmed", WAIT_MS);
    wait_payment_state(b[0].payment, 5 /* refunded */, WAIT_MS);
    assert_int_equal(money_check(b, 2), 1000);
    /* The seat sold once: PostgreSQL's zone and the stats. */
    assert_int_equal(pg_int("SELECT sold FROM zones WHERE event_id = %" PRIu64 " AND zone_id = 1", ev),
                     1);
    assert_int_equal(pg_int("SELECT count(*) FROM bookings WHERE event_id = %" PRIu64 " AND state = 2",
                            ev),
                     1);
    expect_refund_keys(b[0].payment, 1);
}

static void test_duplicates_reordered(void **state)
{
    (void)state;
    world_start("duplicates_reordered", NULL);
    dbl_target(0);
    uint64_t ev = open_event(10, 600);
    struct buy b[3];
    /* b0: its success webhook delivered twice. */
    buyer(&b[0], "dup", ev, 1);
    pay_create(&b[0]);
    dbl_knobs(b[0].payment, json_pack("{s:i}", "duplicate", 1));
    assert_int_equal(dbl_confirm(b[0].intent, "pm_card_visa"), 200);
    wait_booking(&b[0], "confirmed", WAIT_MS);
    /* b1: declined, then paid: the two webhooks (each twice) in reverse
     * order, the success first. */
    buyer(&b[1], "reorder", ev, 2);
    pay_create(&b[1]);
    dbl_post("/__double/config",
             json_pack("{s:[{s:b}, {s:i}]}", "webhook_next", "reorder", 1, "duplicate", 1));
    long st = dbl_confirm(b[1].intent, "pm_card_chargeDeclined");
    assert_true(st == 402 || st == 200);
    assert_int_equal(dbl_confirm(b[1].intent, "pm_card_visa"), 200);
    dbl_post("/__double/deliver", json_object());
    wait_booking(&b[1], "confirmed", WAIT_MS);
    /* b2: a plain one behind them, duplicated too. */
    buyer(&b[2], "dup-last", ev, 1);
    pay_create(&b[2]);
    dbl_knobs(b[2].payment, json_pack("{s:i}", "duplicate", 1));
    assert_int_equal(dbl_confirm(b[2].intent, "pm_card_visa"), 200);
    wait_booking(&b[2], "confirmed", WAIT_MS);
    assert_int_equal(money_check(b, 3), 4000);
    /* One fact per event: 1 + 2 + 1 stored, whatever was delivered. */
    assert_int_equal(pg_int("SELECT count(*) FROM provider_events_received"), 4);
    assert_int_equal(pg_int("SELECT count(*) FROM outbox WHERE topic = 'payments'"), 4);
    double dup = metric_sum("br_webhooks_total{result=\"duplicate\"}");
    fprintf(stderr, "duplicates_reordered: %g webhooks answered as duplicates\n", dup);
    assert_true(dup >= 3);
    for (int i = 0; i < 3; i++) {
        expect_refund_keys(b[i].payment, 0);
    }
}

static void test_saga_killed_before_commit(void **state)
{
    (void)state;
    /* A day of quiet before any status query: only the redelivered message
     * can finish the payment. */
    const char *const extra[] = {"--payment-check-ms", "86400000", "--log-level", "info", NULL};
    setenv("BR_FAULT_SAGA_DIE", "1", 1);
    world_start("saga_killed_before_commit", extra);
    unsetenv("BR_FAULT_SAGA_DIE"); /* not for the restarts */
    dbl_target(0);
    uint64_t ev = open_event(10, 600);
    struct buy b[3];
    buyer(&b[0], "sagakill", ev, 1);
    buyer(&b[1], "sagakill-2", ev, 2);
    buyer(&b[2], "sagakill-3", ev, 1);
    pay_create(&b[0]);
    assert_int_equal(dbl_confirm(b[0].intent, "pm_card_visa"), 200);
    int dead = wait_a_death(WAIT_MS);
    if (dead == 0) {
        fail_msg("no saga consumer died after its first apply within %d ms: BR_FAULT_SAGA_DIE "
                 "not wired? (logs in %s)", WAIT_MS, g_w.s.dir);
    }
    /* The other process may take the partition over and die on its own
     * first apply too: give it the time, then restart whatever is down. */
    t_sleep_ms(200);
    for (int i = 0; i < g_w.s.nodes; i++) {
        reap_if_dead(i);
    }
    use_live();
    if (g_w.s.pids[0] != 0 || g_w.s.pids[1] != 0) {
        /* one alive: wait up to a session timeout for a second death */
        int64_t t0 = now_ms();
        while (now_ms() - t0 < 12000 && !(reap_if_dead(0) || reap_if_dead(1))) {
            char st[64];
            if (strcmp(booking_status(&b[0], st, sizeof st, NULL), "confirmed") == 0) {
                break;
            }
            t_sleep_ms(100);
        }
    }
    use_live();
    t_server_restart(&g_w.s);
    dbl_target(0);
    wait_booking(&b[0], "confirmed", WAIT_MS);
    /* A second payment after the restart goes through normally. */
    pay_create(&b[1]);
    assert_int_equal(dbl_confirm(b[1].intent, "pm_card_visa"), 200);
    wait_booking(&b[1], "confirmed", WAIT_MS);

    /* Second kill: a consumer that took b2's message and cannot apply it
     * (Redis pauses writes) is killed more than an auto-commit interval
     * (1 s) later. Its offset was never stored, so the restarted group
     * gets the message again and applies it. (A consumer that stored the
     * offset before applying, BR_PLANT=SAGA_STORE_FIRST, has committed it by
     * then: the payment would never be applied.) */
    pay_create(&b[2]);
    /* A rebalance in progress would refuse any commit: wait for it. */
    wait_group_stable(WAIT_MS);
    if (sh("redis-cli -u '%s' CLIENT PAUSE 12000 WRITE", g_w.s.redis_url) != 0) {
        fail_msg("redis-cli CLIENT PAUSE failed (see %s/fixtures.log)", g_w.dir);
    }
    int64_t t0 = now_ms();
    assert_int_equal(dbl_confirm(b[2].intent, "pm_card_visa"), 200);
    /* Relayed to Kafka (the relay needs PostgreSQL only), then taken. */
    while (pg_int("SELECT count(*) FROM outbox WHERE topic = 'payments' AND sent_at IS NOT NULL") < 3 &&
           now_ms() - t0 < 8000) {
        t_sleep_ms(50);
    }
    t_sleep_ms(2500);
    for (int i = 0; i < g_w.s.nodes; i++) {
        if (g_w.s.pids[i] != 0) {
            g_w.s.current = i;
            t_server_kill(&g_w.s);
        }
    }
    sh("redis-cli -u '%s' CLIENT UNPAUSE", g_w.s.redis_url);
    fprintf(stderr, "saga_killed_before_commit: both processes killed %" PRId64
            " ms after b2's payment, its message taken and not applied\n", now_ms() - t0);
    char st[64];
    assert_string_equal(booking_status_pg(&b[2], st, sizeof st), "1");
    t_server_restart(&g_w.s);
    dbl_target(0);
    wait_booking(&b[2], "confirmed", WAIT_MS);
    assert_int_equal(money_check(b, 3), 4000);
    assert_int_equal(pg_int("SELECT count(*) FROM provider_events_received"), 3);
    expect_refund_keys(b[0].payment, 0);
}

static void test_broker_down(void **state)
{
    (void)state;
    world_start("broker_down", NULL);
    dbl_target(0);
    uint64_t ev = open_event(10, 600);
    struct buy b[3];
    for (int i = 0; i < 3; i++) {
        buyer(&b[i], "brokerdown", ev, 1);
        pay_create(&b[i]);
    }
    kafka_ctl("down -1");
    int64_t down_at = now_ms();
    for (int i = 0; i < 3; i++) {
        assert_int_equal(dbl_confirm(b[i].intent, "pm_card_visa"), 200);
    }
    /* Stored and answered, waiting in the outbox while no broker is up. */
    int64_t t0 = now_ms();
    while (pg_int("SELECT count(*) FROM provider_events_received") < 3 && now_ms() - t0 < 10000) {
        t_sleep_ms(100);
    }
    assert_int_equal(pg_int("SELECT count(*) FROM provider_events_received"), 3);
    int64_t unsent = pg_int("SELECT count(*) FROM outbox WHERE topic = 'payments' AND sent_at IS NULL");
    char st[64];
    fprintf(stderr, "broker_down: %" PRId64 " facts unsent while the brokers are down\n", unsent);
    assert_true(unsent >= 1);
    assert_string_equal(booking_status(&b[0], st, sizeof st, NULL), "held");
    int64_t left = 5000 - (now_ms() - down_at);
    if (left > 0) {
        t_sleep_ms((int)left);
    }
    kafka_ctl("up -1");
    for (int i = 0; i < 3; i++) {
        wait_booking(&b[i], "confirmed", WAIT_MS);
    }
    assert_int_equal(money_check(b, 3), 3000);
}

static void test_relay_killed_mid_batch(void **state)
{
    (void)state;
    setenv("BR_FAULT_RELAY_DIE", "1", 1);
    world_start("relay_killed_mid_batch", NULL);
    unsetenv("BR_FAULT_RELAY_DIE");
    dbl_target(0);
    uint64_t ev = open_event(10, 600);
    struct buy b[3];
    for (int i = 0; i < 3; i++) {
        buyer(&b[i], "relaykill", ev, 1);
        pay_create(&b[i]);
    }
    for (int i = 0; i < 3; i++) {
        assert_int_equal(dbl_confirm(b[i].intent, "pm_card_visa"), 200);
    }
    int dead = wait_a_death(WAIT_MS);
    if (dead == 0) {
        fail_msg("no relay died after its first acknowledged batch within %d ms: "
                 "BR_FAULT_RELAY_DIE not wired? (logs in %s)", WAIT_MS, g_w.s.dir);
    }
    /* The other relay takes the rows over (and dies the same way). */
    int64_t t0 = now_ms();
    while (now_ms() - t0 < 5000 && !(reap_if_dead(0) && reap_if_dead(1))) {
        t_sleep_ms(100);
    }
    use_live();
    t_server_restart(&g_w.s);
    dbl_target(0);
    for (int i = 0; i < 3; i++) {
        wait_booking(&b[i], "confirmed", WAIT_MS);
    }
    t0 = now_ms();
    while (pg_int("SELECT count(*) FROM outbox WHERE topic = 'payments' AND sent_at IS NULL") != 0 &&
           now_ms() - t0 < 10000) {
        t_sleep_ms(100);
    }
    assert_int_equal(pg_int("SELECT count(*) FROM outbox WHERE topic = 'payments' AND sent_at IS NULL"),
                     0);
    assert_int_equal(money_check(b, 3), 3000);
    assert_int_equal(pg_int("SELECT count(*) FROM provider_events_received"), 3);
}

static void test_refund_timeout(void **state)
{
    (void)state;
    const char *const extra[] = {"--stripe-timeout-ms", "1000", NULL};
    world_start("refund_timeout", extra);
    dbl_target(0);
    uint64_t ev = open_event(1, 2);
    struct buy b[1];
    buyer(&b[0], "refundto", ev, 1);
    pay_create(&b[0]);
    /* The refund's first try is done at the double, then answered after the
     * client gave up: an unknown outcome. */
    dbl_post("/__double/config", json_pack("{s:[{s:s, s:i, s:b}]}", "fail_next", "path",
                                           "/v1/refunds", "timeout_s", 3, "apply", 1));
    dbl_knobs(b[0].payment, json_pack("{s:i}", "delay_ms", 4000));
    assert_int_equal(dbl_confirm(b[0].intent, "pm_card_visa"), 200);
    wait_payment_state(b[0].payment, 5 /* refunded */, 45000);
    assert_int_equal(money_check(b, 1), 0);
    expect_refund_keys(b[0].payment, 1);
    int64_t captured, refunded;
    int intents;
    dbl_ledger(&captured, &refunded, &intents);
    assert_int_equal(captured, 1000);
    assert_int_equal(refunded, 1000);
}

static void test_webhook_lost(void **state)
{
    (void)state;
    const char *const extra[] = {"--payment-check-ms", "1500", NULL};
    world_start("webhook_lost", extra);
    dbl_target(0);
    uint64_t ev = open_event(10, 600);
    uint64_t ev_short = open_event(10, 3);
    struct buy b[2];
    buyer(&b[0], "lost", ev, 1);
    buyer(&b[1], "lost-never-pays", ev_short, 1);
    pay_create(&b[0]);
    pay_create(&b[1]);
    dbl_knobs(b[0].payment, json_pack("{s:b}", "lose", 1));
    assert_int_equal(dbl_confirm(b[0].intent, "pm_card_visa"), 200);
    /* Its webhook never comes: the status query finds it succeeded. */
    wait_booking(&b[0], "confirmed", WAIT_MS);
    assert_true(pg_int("SELECT count(*) FROM provider_events_received WHERE source = 'query'"
                       " AND payment_id = %" PRIu64 " AND succeeded", b[0].payment) == 1);
    assert_int_equal(pg_int("SELECT count(*) FROM provider_events_received WHERE source = 'webhook'"),
                     0);
    /* b1 never pays: after its hold its intent is voided at the double. */
    wait_booking(&b[1], "expired", WAIT_MS);
    assert_int_equal(money_check(b, 2), 1000);
    char status[64] = "";
    int64_t t0 = now_ms();
    do {
        dbl_intent_status(b[1].intent, status, sizeof status);
        if (strcmp(status, "canceled") == 0) {
            break;
        }
        t_sleep_ms(200);
    } while (now_ms() - t0 < 10000);
    fprintf(stderr, "webhook_lost: the unpaid intent is '%s' at the double\n", status);
    assert_string_equal(status, "canceled");
    assert_true(metric_sum("br_payment_checks_total") >= 2);
}

/* A Stripe-Signature for payload under the webhook secret, now. */
static void sign(const char *payload, char *out, size_t cap)
{
    long t = (long)time(NULL);
    char signed_text[2048];
    int n = snprintf(signed_text, sizeof signed_text, "%ld.%s", t, payload);
    assert_true(n > 0 && (size_t)n < sizeof signed_text);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned mac_len = 0;
    assert_non_null(HMAC(EVP_sha256(), WEBHOOK_SECRET, (int)strlen(WEBHOOK_SECRET),
                         (const unsigned char *)signed_text, (size_t)n, mac, &mac_len));
    char hex[2 * EVP_MAX_MD_SIZE + 1];
    for (unsigned i = 0; i < mac_len; i++) {
        snprintf(hex + 2 * i, 3, "%02x", mac[i]);
    }
    snprintf(out, cap, "Stripe-Signature: t=%ld,v1=%s", t, hex);
}

static void test_dlq(void **state)
{
    (void)state;
    world_start("dlq", NULL);
    dbl_target(0);
    uint64_t ev = open_event(10, 600);
    /* A correctly signed success for a payment no one created. */
    const char *ghost =
        "{\"id\":\"evt_money_ghost\",\"object\":\"event\",\"type\":\"payment_intent.succeeded\","
        "\"created\":1700000000,\"data\":{\"object\":{\"id\":\"pi_money_ghost\",\"object\":"
        "\"payment_intent\",\"status\":\"succeeded\",\"latest_charge\":\"ch_money_ghost\","
        "\"metadata\":{\"payment_id\":\"987654321987\",\"booking_id\":\"987654321988\"}}}}";
    char sig[200];
    sign(ghost, sig, sizeof sig);
    const char *const hs[] = {"Content-Type: application/json", sig, NULL};
    char url[320];
    snprintf(url, sizeof url, "%s/api/v1/webhooks/stripe", g_w.s.bases[1]);
    struct hres r;
    http("POST", url, false, hs, ghost, &r);
    if (r.status != 200) {
        fail_msg("the ghost webhook: %ld %s", r.status, r.body ? r.body : "");
    }
    hres_free(&r);
    assert_int_equal(pg_int("SELECT count(*) FROM provider_events_received WHERE"
                            " provider_event_id = 'evt_money_ghost'"),
                     1);
    /* A real payment behind it on whatever partition: still confirmed. */
    struct buy b[1];
    buyer(&b[0], "dlq", ev, 1);
    pay_create(&b[0]);
    assert_int_equal(dbl_confirm(b[0].intent, "pm_card_visa"), 200);
    wait_booking(&b[0], "confirmed", WAIT_MS);
    int64_t t0 = now_ms();
    double dlq = 0;
    while ((dlq = metric_sum("br_saga_dlq_total")) < 1 && now_ms() - t0 < WAIT_MS) {
        t_sleep_ms(200);
    }
    fprintf(stderr, "dlq: br_saga_dlq_total %g after %" PRId64 " ms\n", dlq, now_ms() - t0);
    assert_true(dlq == 1);
    assert_true(logs_have("dead-lettered"));
    assert_int_equal(money_check(b, 1), 1000);
    /* Sent once by the relay, never marked anything else. */
    assert_int_equal(pg_int("SELECT count(*) FROM outbox WHERE topic = 'payments' AND sent_at IS NULL"),
                     0);
}

int main(int argc, char **argv)
{
    /* The flags every process of every case gets (the harness's
     * BR_TEST_DIST_FLAGS; the per-case ones go through t_server_start). A
     * consumer killed by a case hands its partitions over after 6 s. */
    char flags[512];
    const char *given = getenv("BR_TEST_DIST_FLAGS");
    snprintf(flags, sizeof flags,
             "%s%s--payments stripe --stripe-key " STRIPE_KEY " --stripe-webhook-secret "
             WEBHOOK_SECRET " --kafka-dlq-after " DLQ_AFTER " --kafka-session-timeout-ms 6000",
             given != NULL ? given : "", given != NULL && given[0] != '\0' ? " " : "");
    setenv("BR_TEST_DIST_FLAGS", flags, 1);
    t_init(argc, argv);
    const char *only = getenv("BR_TEST_ONLY");
    if (only != NULL) {
        cmocka_set_test_filter(only);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_buyer_flow, world_stop),
        cmocka_unit_test_teardown(test_decline, world_stop),
        cmocka_unit_test_teardown(test_late_payment, world_stop),
        cmocka_unit_test_teardown(test_duplicates_reordered, world_stop),
        cmocka_unit_test_teardown(test_saga_killed_before_commit, world_stop),
        cmocka_unit_test_teardown(test_broker_down, world_stop),
        cmocka_unit_test_teardown(test_relay_killed_mid_batch, world_stop),
        cmocka_unit_test_teardown(test_refund_timeout, world_stop),
        cmocka_unit_test_teardown(test_webhook_lost, world_stop),
        cmocka_unit_test_teardown(test_dlq, world_stop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
