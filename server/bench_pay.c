/*
 * bench_pay.c -- br-bench-pay, numbers for scripts/bench.d/65-payments.sh.
 *
 * Two modes.
 *
 * --raw-producer: the idempotent producer of adapters/kafka.h (acks=all,
 * linger.ms=5) into a running Kafka (kafka-dev): N messages of S bytes in
 * batches of K, each batch waiting for all its delivery reports
 * (br_kafka_produce, as the relay uses it). Prints one line:
 *   raw producer: N msgs x S B, K per batch: R msg/s, A acked, F failed
 *
 * --webhooks PORT[,PORT...] ADMIN_EMAIL ADMIN_PASSWORD WHSEC N RATE[,RATE...]:
 * the payment path through two or more `serve --backend distributed --kafka
 * ... --payments ...` processes. Setup (not measured): one event (N x rates
 * seats (+ the warm-up's), per-user limit 64, holds an hour), ceil(seats / 64) buyers
 * registered and logged in, one one-seat hold per seat, one POST
 * /api/v1/payments per hold. Then, per RATE (a phase, N payments): signed
 * payment_intent.succeeded webhooks (Stripe-Signature over "<t>.<body>"
 * with WHSEC, br_provider_sig_sign, signed when sent) POSTed to
 * /api/v1/webhooks/stripe at RATE/s, in slices of RATE/10 every 100 ms
 * (each slice over up to 32 keep-alive connections spread over the ports;
 * a slice longer than 100 ms makes the achieved rate lower, reported);
 * then every booking of the phase is read back through the API until all
 * are confirmed (60 s at most). The latency itself is the servers'
 * br_payment_confirm_seconds (fact received to booking confirmed), read by
 * the caller: BENCH_PAY_HOOK, when set, is run (system()) with `start P`
 * before a phase's first webhook and `end P` once its bookings are all
 * confirmed (or the wait ran out). BENCH_PAY_WARMUP=W adds a phase 0 of
 * W payments at 100/s first, not hooked (the saga consumers' group
 * settles). Per phase one stdout line of key=value pairs: phase, rate,
 * sent, accepted (2xx), seconds, achieved, confirmed, wait_s,
 * answer_p50_ms and answer_p99_ms (the webhooks' answers, client side);
 * plus setup_s and event on the first.
 * Limits: 127.0.0.1 only; N x (rates + 1) <= 200000; the closed-loop client of
 * bench_dist_load.h (one thread).
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "adapters/clock.h"
#include "adapters/kafka.h"
#include "adapters/log.h"
#include "adapters/provider_sig.h"
#include "bench_dist_load.h"
#include "core/err.h"

#define PAY_PER_USER 64u       /* the event's per-user limit: one-seat holds per buyer */
#define PAY_SEATS_MAX 200000u  /* N x (rates + 1) */
#define PAY_PHASES_MAX 8u
#define PAY_SETUP_CONNS 16u    /* registrations and logins wait for a hash thread */
#define PAY_CONNS 32u          /* webhooks and read-backs */
#define PAY_TOKEN_MAX 1024
#define PAY_INTENT_MAX 96
#define PAY_TIMEOUT_S 300.0
#define PAY_CONFIRM_WAIT_S 60.0

struct pay {
    unsigned ports[BD_PORTS_MAX];
    unsigned nports;
    const char *whsec;
    unsigned seats, users;
    long long event_id;
    char (*tokens)[PAY_TOKEN_MAX];    /* per buyer */
    uint64_t *booking, *payment;      /* per seat */
    char (*intent)[PAY_INTENT_MAX];   /* per seat */
};

static void die(const char *what)
{
    fprintf(stderr, "br-bench-pay: %s\n", what);
    exit(1);
}

static double now_s(void)
{
    return (double)br_clock_mono_us() / 1e6;
}

/* A request's text (bd_request_text): method, path, optional bearer token,
 * optional Stripe-Signature, optional JSON body. malloc'd. */
static char *request(const char *method, const char *path, const char *token, const char *sig,
                     const char *body, size_t *len)
{
    const char *headers[2] = {"Stripe-Signature", sig};
    char *t = bd_request_text(method, path, token, headers, 1, body, len);
    if (t == NULL) {
        die("out of memory");
    }
    return t;
}

static void run(const struct pay *b, struct bd_req *q, size_t n, unsigned conns, int bodies)
{
    double elapsed = 0;
    if (conns > n) {
        conns = (unsigned)n;
    }
    if (bd_run(b->ports, b->nports, conns, q, n, bodies, PAY_TIMEOUT_S, &elapsed) != 0) {
        die("a request batch failed (above)");
    }
}

static void release(struct bd_req *q, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(q[i].text);
        free(q[i].body);
        q[i].text = q[i].body = NULL;
    }
}

/* Fails the run unless every answer of q[0..n) has status want. */
static void expect(const struct bd_req *q, size_t n, int want, const char *what)
{
    for (size_t i = 0; i < n; i++) {
        if (q[i].status != want) {
            fprintf(stderr, "br-bench-pay: %s %zu: HTTP %d %s\n", what, i, q[i].status,
                    q[i].body != NULL ? q[i].body : "");
            exit(1);
        }
    }
}

/* The value at body.key: a string copied to out (cap), or an integer to *num. */
static int json_field(const char *body, const char *key, char *out, size_t cap, uint64_t *num)
{
    json_t *j = json_loads(body != NULL ? body : "", 0, NULL);
    json_t *v = json_object_get(j, key);
    int rc = -1;
    if (out != NULL && json_is_string(v) && strlen(json_string_value(v)) < cap) {
        memcpy(out, json_string_value(v), strlen(json_string_value(v)) + 1);
        rc = 0;
    } else if (num != NULL && json_is_integer(v) && json_integer_value(v) > 0) {
        *num = (uint64_t)json_integer_value(v);
        rc = 0;
    }
    json_decref(j);
    return rc;
}

static void setup(struct pay *b, struct bd_req *q, const char *email, const char *password)
{
    char body[512];
    snprintf(body, sizeof body, "{\"email\":\"%s\",\"password\":\"%s\"}", email, password);
    q[0].text = request("POST", "/api/v1/auth/login", NULL, NULL, body, &q[0].len);
    run(b, q, 1, 1, 1);
    char admin[PAY_TOKEN_MAX];
    if (q[0].status != 200 || json_field(q[0].body, "access_token", admin, sizeof admin, NULL)) {
        die("the admin's login failed");
    }
    release(q, 1);
    snprintf(body, sizeof body,
             "{\"name\":\"Payments Benchmark Night\",\"venue\":\"Loopback Hall\","
             "\"per_user_limit\":%u,\"requires_pass\":false,\"hold_ttl_s\":3600,\"zones\":"
             "[{\"name\":\"Floor\",\"capacity\":%u,\"price_minor\":5000,\"currency\":\"EUR\"}]}",
             PAY_PER_USER, b->seats);
    q[0].text = request("POST", "/api/v1/events", admin, NULL, body, &q[0].len);
    run(b, q, 1, 1, 1);
    uint64_t ev = 0;
    if (q[0].status != 201 || json_field(q[0].body, "id", NULL, 0, &ev) != 0) {
        fprintf(stderr, "br-bench-pay: create event: HTTP %d %s\n", q[0].status,
                q[0].body != NULL ? q[0].body : "");
        exit(1);
    }
    b->event_id = (long long)ev;
    release(q, 1);

    for (unsigned i = 0; i < b->users; i++) {
        snprintf(body, sizeof body,
                 "{\"email\":\"pay-%lld-%u@bench.local\",\"password\":\"bench-password\","
                 "\"name\":\"Bench Buyer\"}",
                 b->event_id, i);
        q[i].text = request("POST", "/api/v1/auth/register", NULL, NULL, body, &q[i].len);
    }
    run(b, q, b->users, PAY_SETUP_CONNS, 1);
    expect(q, b->users, 201, "register buyer");
    release(q, b->users);
    for (unsigned i = 0; i < b->users; i++) {
        snprintf(body, sizeof body,
                 "{\"email\":\"pay-%lld-%u@bench.local\",\"password\":\"bench-password\"}",
                 b->event_id, i);
        q[i].text = request("POST", "/api/v1/auth/login", NULL, NULL, body, &q[i].len);
    }
    run(b, q, b->users, PAY_SETUP_CONNS, 1);
    for (unsigned i = 0; i < b->users; i++) {
        if (q[i].status != 200 ||
            json_field(q[i].body, "access_token", b->tokens[i], PAY_TOKEN_MAX, NULL) != 0) {
            fprintf(stderr, "br-bench-pay: login buyer %u: HTTP %d\n", i, q[i].status);
            exit(1);
        }
    }
    release(q, b->users);

    /* One one-seat hold per seat, seat i held by buyer i / 64. */
    snprintf(body, sizeof body, "{\"event_id\":%lld,\"zone_id\":1,\"quantity\":1}", b->event_id);
    for (unsigned i = 0; i < b->seats; i++) {
        q[i].text = request("POST", "/api/v1/bookings/reserve", b->tokens[i / PAY_PER_USER], NULL,
                            body, &q[i].len);
    }
    run(b, q, b->seats, PAY_CONNS, 1);
    expect(q, b->seats, 201, "reserve");
    for (unsigned i = 0; i < b->seats; i++) {
        if (json_field(q[i].body, "id", NULL, 0, &b->booking[i]) != 0) {
            die("a hold's answer has no id");
        }
    }
    release(q, b->seats);
    for (unsigned i = 0; i < b->seats; i++) {
        snprintf(body, sizeof body, "{\"booking_id\":%" PRIu64 "}", b->booking[i]);
        q[i].text = request("POST", "/api/v1/payments", b->tokens[i / PAY_PER_USER], NULL, body,
                            &q[i].len);
    }
    run(b, q, b->seats, PAY_CONNS, 1);
    expect(q, b->seats, 201, "create payment");
    for (unsigned i = 0; i < b->seats; i++) {
        if (json_field(q[i].body, "payment_id", NULL, 0, &b->payment[i]) != 0 ||
            json_field(q[i].body, "provider_payment_id", b->intent[i], PAY_INTENT_MAX, NULL) != 0) {
            die("a payment's answer has no payment_id / provider_payment_id");
        }
    }
    release(q, b->seats);
}

/* The signed payment_intent.succeeded delivery for seat i, signed now. */
static char *webhook(const struct pay *b, unsigned i, size_t *len)
{
    char body[1024], sig[BR_PROVIDER_SIG_HEADER_MAX];
    int64_t t = (int64_t)time(NULL);
    int n = snprintf(body, sizeof body,
                     "{\"id\":\"evt_bench_%" PRIu64 "\",\"object\":\"event\","
                     "\"type\":\"payment_intent.succeeded\",\"created\":%" PRId64 ","
                     "\"data\":{\"object\":{\"id\":\"%s\",\"object\":\"payment_intent\","
                     "\"status\":\"succeeded\",\"amount\":5000,\"currency\":\"eur\","
                     "\"latest_charge\":\"ch_bench_%" PRIu64 "\",\"metadata\":{\"payment_id\":"
                     "\"%" PRIu64 "\",\"booking_id\":\"%" PRIu64 "\"}}}}",
                     b->payment[i], t, b->intent[i], b->payment[i], b->payment[i], b->booking[i]);
    if (n <= 0 || (size_t)n >= sizeof body ||
        br_provider_sig_sign(b->whsec, t, body, (size_t)n, sig, sizeof sig) != BR_OK) {
        die("cannot sign a webhook");
    }
    return request("POST", "/api/v1/webhooks/stripe", NULL, sig, body, len);
}

/* Reads seats [from, from + n) back until all are confirmed or the wait
 * runs out; returns how many are confirmed. */
static unsigned confirm_wait(const struct pay *b, struct bd_req *q, unsigned from, unsigned n,
                             double *waited)
{
    unsigned *left = malloc(n * sizeof *left);
    if (left == NULL) {
        die("out of memory");
    }
    unsigned nleft = n, confirmed = 0;
    for (unsigned i = 0; i < n; i++) {
        left[i] = from + i;
    }
    double t0 = now_s();
    char path[64];
    for (;;) {
        for (unsigned k = 0; k < nleft; k++) {
            snprintf(path, sizeof path, "/api/v1/bookings/%" PRIu64, b->booking[left[k]]);
            q[k].text =
                request("GET", path, b->tokens[left[k] / PAY_PER_USER], NULL, NULL, &q[k].len);
        }
        run(b, q, nleft, PAY_CONNS, 1);
        unsigned still = 0;
        for (unsigned k = 0; k < nleft; k++) {
            char st[32] = "";
            if (q[k].status == 200 && json_field(q[k].body, "status", st, sizeof st, NULL) == 0 &&
                strcmp(st, "confirmed") == 0) {
                confirmed++;
            } else {
                left[still++] = left[k];
            }
        }
        release(q, nleft);
        nleft = still;
        if (nleft == 0 || now_s() - t0 > PAY_CONFIRM_WAIT_S) {
            break;
        }
        struct timespec ts = {0, 200 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    *waited = now_s() - t0;
    free(left);
    return confirmed;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static void hook(const char *what, unsigned phase)
{
    const char *h = getenv("BENCH_PAY_HOOK");
    if (h == NULL || *h == '\0') {
        return;
    }
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s %s %u", h, what, phase);
    if (system(cmd) != 0) {
        fprintf(stderr, "br-bench-pay: the hook failed: %s\n", cmd);
        exit(1);
    }
}

static int webhooks_main(int argc, char **argv)
{
    if (argc != 8) {
        fprintf(stderr, "usage: br-bench-pay --webhooks PORT[,PORT...] ADMIN_EMAIL ADMIN_PASSWORD "
                        "WHSEC N RATE[,RATE...]\n");
        return 2;
    }
    struct pay b = {.whsec = argv[5]};
    char *end = NULL;
    for (const char *s = argv[2]; *s != '\0'; s = *end == ',' ? end + 1 : end) {
        unsigned long p = strtoul(s, &end, 10);
        if (end == s || p == 0 || p > 65535 || b.nports == BD_PORTS_MAX) {
            die("bad port list");
        }
        b.ports[b.nports++] = (unsigned)p;
    }
    unsigned long n = strtoul(argv[6], NULL, 10);
    unsigned rates[PAY_PHASES_MAX], nrates = 0;
    for (const char *s = argv[7]; *s != '\0'; s = *end == ',' ? end + 1 : end) {
        unsigned long r = strtoul(s, &end, 10);
        if (end == s || r < 10 || r > 100000 || nrates == PAY_PHASES_MAX) {
            die("bad rate list (10..100000 each)");
        }
        rates[nrates++] = (unsigned)r;
    }
    if (n == 0 || nrates == 0 || n * (nrates + 1) > PAY_SEATS_MAX) {
        die("N x (rates + 1) must be 1..200000");
    }
    /* BENCH_PAY_WARMUP payments first at 100/s, not hooked (phase 0): the
     * saga consumers' group settles, connections and caches fill. */
    const char *w = getenv("BENCH_PAY_WARMUP");
    unsigned long warm = w != NULL ? strtoul(w, NULL, 10) : 0;
    if (warm > n) {
        die("BENCH_PAY_WARMUP must be at most N");
    }
    b.seats = (unsigned)(n * nrates + warm);
    b.users = (b.seats + PAY_PER_USER - 1) / PAY_PER_USER;
    b.tokens = calloc(b.users, sizeof *b.tokens);
    b.booking = calloc(b.seats, sizeof *b.booking);
    b.payment = calloc(b.seats, sizeof *b.payment);
    b.intent = calloc(b.seats, sizeof *b.intent);
    struct bd_req *q = calloc(b.seats, sizeof *q);
    uint32_t *lat = calloc(b.seats, sizeof *lat);
    if (lat == NULL || b.tokens == NULL || b.booking == NULL || b.payment == NULL || b.intent == NULL ||
        q == NULL) {
        die("out of memory");
    }
    double t0 = now_s();
    setup(&b, q, argv[3], argv[4]);
    double setup_s = now_s() - t0;

    for (unsigned ph = warm > 0 ? 0 : 1; ph <= nrates; ph++) {
        unsigned r = ph == 0 ? 100 : rates[ph - 1], slice = r / 10;
        unsigned from = ph == 0 ? 0 : (unsigned)warm + (ph - 1) * (unsigned)n;
        unsigned long count = ph == 0 ? warm : n;
        unsigned sent = 0, accepted = 0;
        if (ph > 0) {
            hook("start", ph);
        }
        double start = now_s();
        for (unsigned k = 0; sent < count; k++) {
            unsigned m = count - sent < slice ? (unsigned)count - sent : slice;
            for (unsigned i = 0; i < m; i++) {
                q[i].text = webhook(&b, from + sent + i, &q[i].len);
            }
            run(&b, q, m, PAY_CONNS, 1);
            for (unsigned i = 0; i < m; i++) {
                accepted += q[i].status >= 200 && q[i].status < 300 ? 1u : 0u;
                lat[sent + i] = q[i].latency_us;
                if (q[i].status < 200 || q[i].status >= 300) {
                    fprintf(stderr, "br-bench-pay: webhook: HTTP %d %s\n", q[i].status,
                            q[i].body != NULL ? q[i].body : "");
                }
            }
            release(q, m);
            sent += m;
            double next = start + 0.1 * (double)(k + 1), now = now_s();
            if (next > now) {
                double d = next - now;
                struct timespec ts = {(time_t)d, (long)((d - (double)(time_t)d) * 1e9)};
                nanosleep(&ts, NULL);
            }
        }
        double secs = now_s() - start;
        double waited = 0;
        unsigned confirmed = confirm_wait(&b, q, from, (unsigned)count, &waited);
        if (ph > 0) {
            hook("end", ph);
        }
        qsort(lat, sent, sizeof *lat, cmp_u32);
        printf("phase=%u rate=%u sent=%u accepted=%u seconds=%.2f achieved=%.0f confirmed=%u "
               "wait_s=%.2f answer_p50_ms=%.2f answer_p99_ms=%.2f",
               ph, r, sent, accepted, secs, (double)sent / secs, confirmed, waited,
               (double)lat[(size_t)((double)(sent - 1) * 0.50)] / 1000.0,
               (double)lat[(size_t)((double)(sent - 1) * 0.99)] / 1000.0);
        if (ph == (warm > 0 ? 0u : 1u)) {
            printf(" setup_s=%.1f event=%lld", setup_s, b.event_id);
        }
        printf("\n");
        fflush(stdout);
    }
    free(b.tokens);
    free(b.booking);
    free(b.payment);
    free(b.intent);
    free(q);
    free(lat);
    return 0;
}

static int usage(void)
{
    fprintf(stderr, "usage: br-bench-pay --raw-producer --bootstrap HOST:PORT,... [--messages N]\n"
                    "                    [--size BYTES] [--batch K] [--topic T]\n"
                    "       br-bench-pay --webhooks PORT[,PORT...] ADMIN_EMAIL ADMIN_PASSWORD "
                    "WHSEC N RATE[,RATE...]\n");
    return 2;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--webhooks") == 0) {
        return webhooks_main(argc, argv);
    }
    const char *bootstrap = NULL, *topic = "br.effects";
    unsigned long n = 200000, size = 100, batch = 10000;
    bool raw = false;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(o, "--raw-producer") == 0) {
            raw = true;
        } else if (strcmp(o, "--bootstrap") == 0 && v != NULL) {
            bootstrap = v;
            i++;
        } else if (strcmp(o, "--topic") == 0 && v != NULL) {
            topic = v;
            i++;
        } else if (strcmp(o, "--messages") == 0 && v != NULL) {
            n = strtoul(v, NULL, 10);
            i++;
        } else if (strcmp(o, "--size") == 0 && v != NULL) {
            size = strtoul(v, NULL, 10);
            i++;
        } else if (strcmp(o, "--batch") == 0 && v != NULL) {
            batch = strtoul(v, NULL, 10);
            i++;
        } else {
            return usage();
        }
    }
    if (!raw || bootstrap == NULL || n == 0 || size == 0 || size > 65536 || batch == 0 ||
        batch > 1000000) {
        return usage();
    }
    const struct br_log log = {BR_LOG_WARN, 2};
    struct br_kafka_config cfg = {.bootstrap = bootstrap,
                                  .prefix = "br.",
                                  .group = "bench",
                                  .dlq_after = 1,
                                  .session_timeout_ms = 6000,
                                  .log = &log};
    struct br_kafka_producer *p = NULL;
    if (br_kafka_producer_new(&p, &cfg) != BR_OK) {
        fprintf(stderr, "br-bench-pay: producer not created\n");
        return 1;
    }
    char *value = malloc(size);
    struct br_kafka_msg *m = calloc(batch, sizeof *m);
    char(*keys)[24] = calloc(batch, sizeof *keys);
    bool *acked = calloc(batch, sizeof *acked);
    if (value == NULL || m == NULL || keys == NULL || acked == NULL) {
        return 1;
    }
    memset(value, 'x', size);
    uint64_t ok = 0, failed = 0;
    int64_t t0 = br_clock_mono_us();
    for (unsigned long done = 0; done < n;) {
        uint32_t k = (uint32_t)(n - done < batch ? n - done : batch);
        for (uint32_t i = 0; i < k; i++) {
            snprintf(keys[i], sizeof keys[i], "%lu", (done + i) % 4096);
            m[i] = (struct br_kafka_msg){.topic = topic,
                                         .key = keys[i],
                                         .key_len = strlen(keys[i]),
                                         .value = value,
                                         .len = size};
        }
        (void)br_kafka_produce(p, m, k, acked, 30000);
        for (uint32_t i = 0; i < k; i++) {
            ok += acked[i] ? 1 : 0;
            failed += acked[i] ? 0 : 1;
        }
        done += k;
    }
    double s = (double)(br_clock_mono_us() - t0) / 1e6;
    printf("raw producer: %lu msgs x %lu B, %lu per batch: %.0f msg/s, %" PRIu64 " acked, %" PRIu64
           " failed\n",
           n, size, batch, (double)ok / s, ok, failed);
    br_kafka_producer_free(p);
    free(value);
    free(m);
    free(keys);
    free(acked);
    return failed == 0 ? 0 : 1;
}
