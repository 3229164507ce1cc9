/* config.c -- flags and environment variables of `bookingrush serve`. */
#define _POSIX_C_SOURCE 200809L

#include "server/config.h"
#include "server/pow.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "adapters/auth.h"
#include "adapters/cli.h"
#include "core/limits.h"
#include "server/backend_distributed.h"
#include "server/hashpool.h"

enum opt_kind { OPT_TEXT, OPT_UINT, OPT_SIZE, OPT_RATE, OPT_FLAG, OPT_LEVEL };

struct opt {
    const char *flag;
    const char *env;
    enum opt_kind kind;
    size_t offset;
    unsigned long max; /* OPT_UINT / OPT_SIZE: largest value accepted */
    const char *meta;
    const char *help;
};

#define OFF(f) offsetof(struct br_serve_config, f)

_Static_assert(sizeof(unsigned) == sizeof(uint32_t), "OPT_UINT fills the sizing's uint32_t counts");

/* --threads not given: its default depends on --backend, known only once
 * everything is parsed (a given value is at most 256, never this). */
#define THREADS_UNSET 0xffffffffu

/* The distributed backend's default thread count. A request holds its
 * HTTP thread while it waits for Redis (and PostgreSQL), so the threads
 * bound how many requests a process has in Redis at once: with one per
 * CPU a process kept 2 reserves in Redis while 32 connections waited,
 * and under appendfsync always each fsync served 2 writes where
 * redis-benchmark's 64 clients share one (README, Benchmarks). 8 per CPU,
 * 16 at least, 128 at most; the Redis pool follows (--redis-conns). */
static unsigned distributed_threads(long cpus)
{
    long n = cpus > 0 ? 8 * cpus : 16;
    return n < 16 ? 16u : n > 128 ? 128u : (unsigned)n;
}

static const struct opt OPTS[] = {
    {"--port", "BR_PORT", OPT_UINT, OFF(port), 65535, "N", "TCP port; 0 picks a free one (8080)"},
    {"--bind", "BR_BIND", OPT_TEXT, OFF(bind), 0, "ADDR",
     "address to listen on; 0.0.0.0 or :: for every interface (127.0.0.1)"},
    {"--reuse-port", "BR_REUSE_PORT", OPT_FLAG, OFF(reuse_port), 0, NULL,
     "share the port with other servers started with it (SO_REUSEPORT); without it a port "
     "in use fails the start"},
    {"--data-dir", "BR_DATA_DIR", OPT_TEXT, OFF(data_dir), 0, "DIR",
     "journal and secrets live here (./data)"},
    {"--admin", "BR_ADMIN", OPT_TEXT, OFF(admin), 0, "EMAIL:PASSWORD",
     "create (or promote) this administrator at start"},
    {"--jwt-secret", "BR_JWT_SECRET", OPT_TEXT, OFF(jwt_secret), 0, "SECRET",
     "HS256 key for access tokens (generated into the data dir)"},
    {"--jwt-ttl-s", "BR_JWT_TTL_S", OPT_UINT, OFF(jwt_ttl_s), 30u * 86400u, "N",
     "access token lifetime in seconds (3600)"},
    {"--webhook-secret", "BR_WEBHOOK_SECRET", OPT_TEXT, OFF(webhook_secret), 0, "whsec_...",
     "payment webhook signing secret (generated into the data dir)"},
    {"--rate-limit-user", "BR_RATE_LIMIT_USER", OPT_RATE, OFF(rate_user), 0, "RPS:BURST",
     "token bucket per user; 0 turns it off (20:40)"},
    {"--rate-limit-ip", "BR_RATE_LIMIT_IP", OPT_RATE, OFF(rate_ip), 0, "RPS:BURST",
     "token bucket per client address; 0 turns it off (100:200)"},
    /* Issue 13: the waiting room's door (README, "Waiting room"). */
    {"--join-limit-ip", "BR_JOIN_LIMIT_IP", OPT_RATE, OFF(join_limit_ip), 0, "RPS:BURST",
     "queue joins per client address, a token bucket of its own; beyond it 429 JOIN_LIMITED "
     "with Retry-After; 0 turns it off (0)"},
    {"--pow-register-bits", "BR_POW_REGISTER_BITS", OPT_UINT, OFF(pow_register_bits),
     BR_POW_BITS_MAX, "N",
     "proof of work on register: leading zero bits a solution of POST /api/v1/auth/challenge "
     "needs, 0 to 28; 0 turns it off (0)"},
    {"--pow-used-max", "BR_POW_USED_MAX", OPT_UINT, OFF(pow_used_max), 1u << 24, "N",
     "embedded: solved challenges remembered at once (16 B each), so each is accepted once; "
     "at 90% full new challenges are refused 503 OVERLOADED (262144)"},
    {"--web-dir", "BR_WEB_DIR", OPT_TEXT, OFF(web_dir), 0, "DIR",
     "serve the web front end (GET /, /web/...) from DIR instead of the copy built into the "
     "binary; for working on the pages (built in)"},
    {"--trusted-proxies", "BR_TRUSTED_PROXIES", OPT_TEXT, OFF(trusted_proxies), 0, "CIDR,...",
     "peers whose X-Forwarded-For is believed (none)"},
    {"--threads", "BR_THREADS", OPT_UINT, OFF(threads), 256, "N",
     "HTTP event-loop threads (number of CPUs, at least 2; distributed: 8 per CPU, 16 to 128, "
     "since each waits for Redis or PostgreSQL while it serves a request); as many SSE stream "
     "loops, at most one a CPU"},
    {"--tick-ms", "BR_TICK_MS", OPT_UINT, OFF(tick_ms), 60000, "N",
     "admitter / sweeper / saga period in ms (100)"},
    {"--journal-syncs", "BR_JOURNAL_SYNCS", OPT_UINT, OFF(journal_syncs), 8, "N",
     "journal commits (fdatasyncs) in flight at once, 1 to 8 (2)"},
    {"--sse-keepalive-s", "BR_SSE_KEEPALIVE_S", OPT_UINT, OFF(sse_keepalive_s), 3600, "N",
     "keep-alive comment period on queue streams (15)"},
    {"--sse-position-ms", "BR_SSE_POSITION_MS", OPT_UINT, OFF(sse_position_ms), 60000, "N",
     "least gap between two position events on one queue stream, in ms; a pass is never "
     "delayed; 0 sends every change (1000)"},
    {"--body-max", "BR_BODY_MAX", OPT_SIZE, OFF(body_max), 16u << 20, "BYTES",
     "largest request body; more is 413 (65536)"},
    {"--header-max", "BR_HEADER_MAX", OPT_SIZE, OFF(header_max), 1u << 20, "BYTES",
     "per-connection buffer, bounds the header section (8192)"},
    {"--scrypt-log2n", "BR_SCRYPT_LOG2N", OPT_UINT, OFF(scrypt_log2n), BR_AUTH_LOG2N_MAX, "N",
     "password hash cost: scrypt N = 2^N, r = 8, p = 1 (15)"},
    {"--hash-threads", "BR_HASH_THREADS", OPT_UINT, OFF(hash_threads), BR_HASHPOOL_THREADS_MAX, "N",
     "threads that hash passwords, off the HTTP threads (half the CPUs, at least 1)"},
    {"--hash-queue", "BR_HASH_QUEUE", OPT_UINT, OFF(hash_queue), BR_HASHPOOL_QUEUE_MAX, "N",
     "logins and registrations waiting for a hash thread; beyond, 503 OVERLOADED (64)"},
    {"--hash-nice", "BR_HASH_NICE", OPT_UINT, OFF(hash_nice), BR_HASHPOOL_NICE_MAX, "N",
     "added to the hash threads' nice value, so reserves get the CPU first in a login storm; 0 = same "
     "priority (10)"},
    {"--hash-sched", "BR_HASH_SCHED", OPT_TEXT, OFF(hash_sched), 0, "idle|nice",
     "idle: the hash threads run under SCHED_IDLE, only on CPU time nothing else wants, so a "
     "login storm cannot take a core from a sale's opening; nice: --hash-nice alone (idle)"},
    {"--hash-yield-ms", "BR_HASH_YIELD_MS", OPT_UINT, OFF(hash_yield_ms), BR_HASHPOOL_YIELD_MS_MAX, "MS",
     "a hash thread waits up to MS before each hash while more than --hash-yield-above other "
     "requests await their answer, so a login storm hashes in the gaps of the sale; 0 = never "
     "wait (1000)"},
    {"--hash-yield-above", "BR_HASH_YIELD_ABOVE", OPT_UINT, OFF(hash_yield_above), 1000000u, "N",
     "requests awaiting an answer (logins and registrations not counted) that make a hash thread "
     "wait (8)"},
    {"--refresh-ttl-s", "BR_REFRESH_TTL_S", OPT_UINT, OFF(refresh_ttl_s), 30u * 86400u, "N",
     "refresh token lifetime, renewed by each refresh (2592000: 30 days)"},
    {"--test-email-hash-bits", "BR_TEST_EMAIL_HASH_BITS", OPT_UINT, OFF(test_email_hash_bits), 64,
     "N", "testing only: narrow the email index's hash to force collisions (0 = all 64 bits)"},
    {"--shutdown-grace-s", "BR_SHUTDOWN_GRACE_S", OPT_UINT, OFF(shutdown_grace_s), 3600, "N",
     "on SIGTERM, wait this long for requests in flight (10)"},
    {"--log-level", "BR_LOG_LEVEL", OPT_LEVEL, OFF(log_level), 0, "LEVEL",
     "debug, info, warn or error (info)"},
    {"--port-file", "BR_PORT_FILE", OPT_TEXT, OFF(port_file), 0, "PATH",
     "write the bound port here once listening"},
    {"--demo", "BR_DEMO", OPT_FLAG, OFF(demo), 0, NULL,
     "create a demo event if there is none, print how to try it"},
    /* The distributed deployment (README, "Deployment"). */
    {"--backend", "BR_BACKEND", OPT_TEXT, OFF(backend), 0, "NAME",
     "embedded (one process, journal in the data dir) or distributed (Redis + PostgreSQL, "
     "any number of processes) (embedded)"},
    {"--redis", "BR_REDIS_URL", OPT_TEXT, OFF(redis_url), 0, "URL",
     "distributed: Redis holding the live on-sale, redis://host[:port][/db] or a Redis Cluster, "
     "redis-cluster://host:port[,host:port...] (any reachable seed tells the slot map)"},
    {"--pg", "BR_PG_URL", OPT_TEXT, OFF(pg_url), 0, "URL",
     "distributed: PostgreSQL holding the record, postgresql://user@host:port/db; its schema "
     "must be migrated first (bookingrush migrate --pg URL)"},
    {"--roles", "BR_ROLES", OPT_TEXT, OFF(roles_text), 0, "LIST",
     "distributed: what this process runs, from api,admitter,sweeper,saga,recorder,reconciler,"
     "relay (all)"},
    {"--pass-secret", "BR_PASS_SECRET", OPT_TEXT, OFF(pass_secret), 0, "HEX",
     "queue pass signing key, 64 hex digits (generated into the data dir); distributed "
     "processes on several hosts must share it, as they share --jwt-secret and --webhook-secret"},
    {"--pg-pool", "BR_PG_POOL", OPT_UINT, OFF(pg_pool), 64, "N",
     "distributed: PostgreSQL connections, 1 to 64 (8)"},
    {"--redis-conns", "BR_REDIS_CONNS", OPT_UINT, OFF(redis_conns), BR_DIST_CONNS_MAX, "N",
     "distributed: Redis connection pairs (threads + hash threads + 4)"},
    {"--start-attempts", "BR_START_ATTEMPTS", OPT_UINT, OFF(start_attempts), 100, "N",
     "distributed: tries to reach Redis and PostgreSQL at start, backing off from 0.25 s to "
     "4 s, before giving up (6)"},
    /* Payments in production (README, "Payments in production"). */
    {"--payments", "BR_PAYMENTS", OPT_TEXT, OFF(payments), 0, "test|stripe",
     "distributed: the payment provider, the built-in test provider or Stripe (the embedded "
     "deployment always uses the test provider) (test)"},
    {"--stripe-api-base", "BR_STRIPE_API_BASE", OPT_TEXT, OFF(stripe_api_base), 0, "URL",
     "Stripe's API; tests point it at the double (https://api.stripe.com)"},
    {"--stripe-key", "BR_STRIPE_KEY", OPT_TEXT, OFF(stripe_key), 0, "sk_...",
     "Stripe secret key, required with --payments stripe; never logged"},
    {"--stripe-webhook-secret", "BR_STRIPE_WEBHOOK_SECRET", OPT_TEXT, OFF(stripe_webhook_secret),
     0, "S[,S2]", "webhook endpoint secrets, any of which may sign (several while one is "
     "rotated, at most 4) (= --webhook-secret)"},
    {"--stripe-timeout-ms", "BR_STRIPE_TIMEOUT_MS", OPT_UINT, OFF(stripe_timeout_ms), 600000,
     "N", "one Stripe request's timeout in ms; connecting gets at most 2000 (10000)"},
    {"--stripe-attempts", "BR_STRIPE_ATTEMPTS", OPT_UINT, OFF(stripe_attempts), 10, "N",
     "tries of one Stripe call, 1 to 10, before it fails (4)"},
    {"--webhook-tolerance-s", "BR_WEBHOOK_TOLERANCE_S", OPT_UINT, OFF(webhook_tolerance_s),
     86400, "N", "largest age (or future) of a webhook signature's timestamp, 1 to 86400 (300)"},
    {"--payment-check-ms", "BR_PAYMENT_CHECK_MS", OPT_UINT, OFF(payment_check_ms), 259200000,
     "N", "distributed: quiet time before a payment without an answer from the provider is "
     "asked about (then backing off), 1000 to 259200000 (600000)"},
    {"--kafka", "BR_KAFKA", OPT_TEXT, OFF(kafka), 0, "HOST:PORT,..",
     "distributed: Kafka's bootstrap servers; webhooks become facts in PostgreSQL's outbox, "
     "relayed to Kafka and applied by the saga's consumers (none: applied at once)"},
    {"--kafka-prefix", "BR_KAFKA_PREFIX", OPT_TEXT, OFF(kafka_prefix), 0, "P",
     "prefix of the topic names (br.)"},
    {"--kafka-group", "BR_KAFKA_GROUP", OPT_TEXT, OFF(kafka_group), 0, "G",
     "the saga's consumer group (br-saga)"},
    {"--kafka-dlq-after", "BR_KAFKA_DLQ_AFTER", OPT_UINT, OFF(kafka_dlq_after), 1000, "N",
     "failed attempts of one message before it goes to <prefix>payments.dlq, 1 to 1000 (5)"},
    {"--kafka-session-timeout-ms", "BR_KAFKA_SESSION_TIMEOUT_MS", OPT_UINT,
     OFF(kafka_session_timeout_ms), 300000, "N",
     "how long a saga consumer that stopped answering keeps its partitions, 6000 to 300000 "
     "(45000)"},
    {"--relay-batch", "BR_RELAY_BATCH", OPT_UINT, OFF(relay_batch), 10000, "N",
     "outbox rows per relay transaction, 1 to 10000 (500)"},
    /* Engine tables (see the note under the list); 0 = the default shown. */
    {"--people", "BR_PEOPLE", OPT_UINT, OFF(sizing.people), BR_TABLE_ROWS_MAX, "N",
     "size every table below for N people (100000: 112 MiB)"},
    {"--users-max", "BR_USERS_MAX", OPT_UINT, OFF(sizing.users), BR_TABLE_ROWS_MAX, "N",
     "accounts (people): 304-352 B each, a refresh session included"},
    {"--events-max", "BR_EVENTS_MAX", OPT_UINT, OFF(sizing.events), BR_TABLE_ROWS_MAX, "N",
     "events (16): 0.9 KiB each"},
    {"--members-max", "BR_MEMBERS_MAX", OPT_UINT, OFF(sizing.members), BR_TABLE_ROWS_MAX, "N",
     "people in queues, once per event joined (people): 92-140 B each"},
    {"--queue-places", "BR_QUEUE_PLACES", OPT_UINT, OFF(sizing.queue_places), BR_TABLE_ROWS_MAX,
     "N", "queue slots every event's queue_capacity comes from (10 x people, >= 250000): 8 B each"},
    {"--passes-max", "BR_PASSES_MAX", OPT_UINT, OFF(sizing.passes), BR_TABLE_ROWS_MAX, "N",
     "passes issued over the sale (2 x people): 92-140 B each"},
    {"--active-max", "BR_ACTIVE_MAX", OPT_UINT, OFF(sizing.active), BR_TABLE_ROWS_MAX, "N",
     "sum of the events' max_active (people / 4, >= 1000): 24 B each"},
    {"--holds-max", "BR_HOLDS_MAX", OPT_UINT, OFF(sizing.holds), BR_TABLE_ROWS_MAX, "N",
     "holds over the sale (people / 2): 148-196 B each"},
    {"--seats-max", "BR_SEATS_MAX", OPT_UINT, OFF(sizing.seats), BR_TABLE_ROWS_MAX, "N",
     "sum of the events' zone capacities (people, >= 10000): 24 B each"},
    {"--payments-max", "BR_PAYMENTS_MAX", OPT_UINT, OFF(sizing.payments), BR_TABLE_ROWS_MAX, "N",
     "payments over the sale (people / 2): 280-424 B each with their webhooks"},
    {"--idem-keys-max", "BR_IDEM_KEYS_MAX", OPT_UINT, OFF(sizing.idem_keys), BR_TABLE_ROWS_MAX, "N",
     "reserves carrying an Idempotency-Key (2 x people): 72-120 B each"},
};

#define OPT_COUNT (sizeof OPTS / sizeof OPTS[0])

void br_serve_usage(void)
{
    printf("usage: bookingrush serve [options]\n\n"
           "Runs the whole product in one process: the core engine in memory, made durable by\n"
           "the command journal in the data dir, with the built-in test payment provider.\n"
           "With --backend distributed the process is stateless instead: the live on-sale is\n"
           "in Redis (--redis), the record in PostgreSQL (--pg), and any number of processes\n"
           "serve one sale behind a load balancer (README, \"Deployment\").\n\n"
           "options (environment variable in brackets; a flag beats its variable):\n");
    for (size_t i = 0; i < OPT_COUNT; i++) {
        char left[64];
        snprintf(left, sizeof left, "%s%s%s", OPTS[i].flag, OPTS[i].meta ? " " : "",
                 OPTS[i].meta ? OPTS[i].meta : "");
        printf("  %-34s %s [%s]\n", left, OPTS[i].help, OPTS[i].env);
    }
    printf("  %-34s this text\n", "--help");
    struct br_config d;
    br_config_default(&d);
    printf("\nEngine tables (the options from --people on) are reserved at start, sized from\n"
           "--people by the ratios in brackets unless given one by one; a page of that memory\n"
           "is used only once a row on it is. A full table answers 503 CAPACITY_EXHAUSTED\n"
           "(metric br_capacity_exhausted_total, a log line). The sizes go into a new journal's\n"
           "header and stay with it: a data dir that has a journal keeps its sizes.\n"
           "The defaults reserve %.0f MiB for %u people.\n",
           (double)br_engine_memory_size(&d) / (1024.0 * 1024.0), d.users_max);
    printf("\nThe design (threads, group commit, journal format): docs/DESIGN.md.\n");
}

bool br_serve_distributed(const struct br_serve_config *c)
{
    return strcmp(c->backend, "distributed") == 0;
}

bool br_serve_kafka(const struct br_serve_config *c)
{
    return c->kafka[0] != '\0';
}

bool br_serve_stripe(const struct br_serve_config *c)
{
    return strcmp(c->payments, "stripe") == 0;
}

int br_serve_webhook_secrets(const char *list, const char *fallback, char *buf, size_t cap,
                             const char *out[BR_CONFIG_WEBHOOK_SECRETS_MAX], size_t *n)
{
    *n = 0;
    const char *src = list != NULL && list[0] != '\0' ? list : fallback;
    if (src == NULL || strlen(src) >= cap) {
        return -1;
    }
    snprintf(buf, cap, "%s", src);
    char *p = buf;
    for (;;) {
        char *comma = strchr(p, ',');
        if (comma != NULL) {
            *comma = '\0';
        }
        if (p[0] == '\0' || *n >= BR_CONFIG_WEBHOOK_SECRETS_MAX) {
            *n = 0;
            return -1;
        }
        out[(*n)++] = p;
        if (comma == NULL) {
            return 0;
        }
        p = comma + 1;
    }
}

bool br_serve_sizing_given(const struct br_serve_config *c)
{
    struct br_sizing none;
    memset(&none, 0, sizeof none);
    return memcmp(&c->sizing, &none, sizeof none) != 0;
}

static int set_opt(const struct opt *o, const char *value, struct br_serve_config *c,
                   const char *source)
{
    char *base = (char *)c + o->offset;
    char *end = NULL;
    switch (o->kind) {
    case OPT_TEXT:
        if (strlen(value) >= BR_CONFIG_TEXT_MAX) {
            fprintf(stderr, "bookingrush: %s is too long\n", source);
            return -1;
        }
        snprintf(base, BR_CONFIG_TEXT_MAX, "%s", value);
        return 0;
    case OPT_UINT:
    case OPT_SIZE: {
        unsigned long long v = strtoull(value, &end, 10);
        if (end == value || *end != '\0' || value[0] == '-' || v > o->max) {
            fprintf(stderr, "bookingrush: %s wants a number up to %lu, got \"%s\"\n", source,
                    o->max, value);
            return -1;
        }
        if (o->kind == OPT_SIZE) {
            *(size_t *)(void *)base = (size_t)v;
        } else if (o->offset == OFF(port)) {
            *(uint16_t *)(void *)base = (uint16_t)v;
        } else {
            *(unsigned *)(void *)base = (unsigned)v;
        }
        return 0;
    }
    case OPT_RATE:
        if (br_rate_parse(value, (struct br_rate *)(void *)base) != 0) {
            fprintf(stderr, "bookingrush: %s wants RPS:BURST or 0, got \"%s\"\n", source, value);
            return -1;
        }
        return 0;
    case OPT_FLAG:
        *(bool *)(void *)base = strcmp(value, "0") != 0 && strcmp(value, "false") != 0;
        return 0;
    case OPT_LEVEL:
        if (br_log_level_parse(value, (enum br_log_level *)(void *)base) != 0) {
            fprintf(stderr, "bookingrush: %s wants debug, info, warn or error\n", source);
            return -1;
        }
        return 0;
    }
    return -1;
}

static void defaults(struct br_serve_config *c)
{
    memset(c, 0, sizeof *c);
    c->port = 8080;
    snprintf(c->bind, sizeof c->bind, "127.0.0.1");
    snprintf(c->data_dir, sizeof c->data_dir, "./data");
    c->jwt_ttl_s = 3600;
    c->rate_user = (struct br_rate){.rps = 20, .burst = 40};
    c->rate_ip = (struct br_rate){.rps = 100, .burst = 200};
    c->join_limit_ip = (struct br_rate){.rps = 0, .burst = 0};
    c->pow_register_bits = 0;
    c->pow_used_max = BR_POW_USED_MAX_DEFAULT;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    c->threads = THREADS_UNSET; /* resolved once --backend is known (br_serve_config_parse) */
    c->tick_ms = 100;
    c->journal_syncs = 2;
    c->sse_keepalive_s = 15;
    c->sse_position_ms = 1000;
    c->body_max = 65536;
    c->header_max = 8192;
    c->scrypt_log2n = BR_AUTH_LOG2N_DEFAULT;
    c->hash_threads = cpus >= 4 ? (unsigned)(cpus / 2 > 8 ? 8 : cpus / 2) : 1;
    c->hash_queue = 64;
    c->hash_nice = 10;
    snprintf(c->hash_sched, sizeof c->hash_sched, "idle");
    c->hash_yield_ms = 1000;
    c->hash_yield_above = 8;
    c->refresh_ttl_s = 30u * 86400u;
    c->shutdown_grace_s = 10;
    c->log_level = BR_LOG_INFO;
    snprintf(c->backend, sizeof c->backend, "embedded");
    snprintf(c->roles_text, sizeof c->roles_text, "all");
    c->pg_pool = 8;
    c->start_attempts = 6;
    snprintf(c->payments, sizeof c->payments, "test");
    snprintf(c->stripe_api_base, sizeof c->stripe_api_base, "https://api.stripe.com");
    c->stripe_timeout_ms = 10000;
    c->stripe_attempts = 4;
    c->webhook_tolerance_s = 300;
    c->payment_check_ms = BR_PAYMENT_CHECK_MS_DEFAULT;
    snprintf(c->kafka_prefix, sizeof c->kafka_prefix, "br.");
    snprintf(c->kafka_group, sizeof c->kafka_group, "br-saga");
    c->kafka_dlq_after = 5;
    c->kafka_session_timeout_ms = 45000;
    c->relay_batch = 500;
}

/* Payments in production: the options of ISSUE11 §4.2, once parsed. */
static int check_payments(const struct br_serve_config *c)
{
    if (strcmp(c->payments, "test") != 0 && !br_serve_stripe(c)) {
        fprintf(stderr, "bookingrush serve: --payments wants test or stripe, got \"%s\"\n",
                c->payments);
        return -1;
    }
    if (br_serve_stripe(c) && !br_serve_distributed(c)) {
        fprintf(stderr, "bookingrush serve: --payments stripe needs --backend distributed (the "
                        "embedded deployment uses the built-in test provider)\n");
        return -1;
    }
    if (br_serve_stripe(c) && c->stripe_key[0] == '\0') {
        fprintf(stderr, "bookingrush serve: --payments stripe needs --stripe-key (or "
                        "BR_STRIPE_KEY)\n");
        return -1;
    }
    if (strncmp(c->stripe_api_base, "http://", 7) != 0 &&
        strncmp(c->stripe_api_base, "https://", 8) != 0) {
        fprintf(stderr, "bookingrush serve: --stripe-api-base wants an http:// or https:// URL\n");
        return -1;
    }
    if (c->stripe_timeout_ms == 0 || c->stripe_attempts == 0 || c->webhook_tolerance_s == 0) {
        fprintf(stderr, "bookingrush serve: --stripe-timeout-ms, --stripe-attempts and "
                        "--webhook-tolerance-s must be positive\n");
        return -1;
    }
    if (c->payment_check_ms < BR_PAYMENT_CHECK_MS_MIN ||
        c->payment_check_ms > BR_PAYMENT_CHECK_MS_MAX) {
        fprintf(stderr, "bookingrush serve: --payment-check-ms wants %u to %u\n",
                BR_PAYMENT_CHECK_MS_MIN, BR_PAYMENT_CHECK_MS_MAX);
        return -1;
    }
    char buf[BR_CONFIG_TEXT_MAX];
    const char *secrets[BR_CONFIG_WEBHOOK_SECRETS_MAX];
    size_t n = 0;
    if (c->stripe_webhook_secret[0] != '\0' &&
        br_serve_webhook_secrets(c->stripe_webhook_secret, NULL, buf, sizeof buf, secrets, &n) !=
            0) {
        fprintf(stderr, "bookingrush serve: --stripe-webhook-secret wants 1 to %u secrets "
                        "separated by commas, none empty\n",
                BR_CONFIG_WEBHOOK_SECRETS_MAX);
        return -1;
    }
    if (br_serve_kafka(c) && !br_serve_distributed(c)) {
        fprintf(stderr, "bookingrush serve: --kafka needs --backend distributed\n");
        return -1;
    }
    if (c->kafka_prefix[0] == '\0' || strlen(c->kafka_prefix) > 64 ||
        c->kafka_group[0] == '\0' || c->kafka_dlq_after == 0 || c->relay_batch == 0 ||
        c->kafka_session_timeout_ms < 6000) {
        fprintf(stderr, "bookingrush serve: --kafka-prefix (1 to 64 bytes), --kafka-group, "
                        "--kafka-dlq-after and --relay-batch must not be empty or 0, "
                        "--kafka-session-timeout-ms at least 6000\n");
        return -1;
    }
    return 0;
}

/* The distributed deployment's options, once everything is parsed. */
static int check_distributed(struct br_serve_config *c)
{
    if (strcmp(c->backend, "embedded") != 0 && !br_serve_distributed(c)) {
        fprintf(stderr, "bookingrush serve: --backend wants embedded or distributed, got \"%s\"\n",
                c->backend);
        return -1;
    }
    const char *bad = NULL;
    if (br_distributed_roles_parse(c->roles_text, &c->roles, &bad) != 0) {
        fprintf(stderr,
                "bookingrush serve: --roles wants a list of api, admitter, sweeper, saga, "
                "recorder, reconciler, relay (or all), got \"%s\"\n",
                c->roles_text);
        return -1;
    }
    if (c->pass_secret[0] != '\0' && strlen(c->pass_secret) != 2 * BR_AUTH_SECRET_LEN) {
        fprintf(stderr, "bookingrush serve: --pass-secret wants %u hex digits\n",
                2 * BR_AUTH_SECRET_LEN);
        return -1;
    }
    if (!br_serve_distributed(c)) {
        return 0;
    }
    if (c->redis_url[0] == '\0' || c->pg_url[0] == '\0') {
        fprintf(stderr, "bookingrush serve: --backend distributed needs --redis URL and --pg URL "
                        "(or BR_REDIS_URL and BR_PG_URL)\n");
        return -1;
    }
    if (c->pg_pool == 0 || c->start_attempts == 0) {
        fprintf(stderr, "bookingrush serve: --pg-pool and --start-attempts must be positive\n");
        return -1;
    }
    if (c->redis_conns == 0) {
        unsigned n = c->threads + c->hash_threads + 4;
        c->redis_conns = n > BR_DIST_CONNS_MAX ? BR_DIST_CONNS_MAX : n;
    }
    return 0;
}

int br_serve_config_parse(int argc, char **argv, struct br_serve_config *c)
{
    defaults(c);
    for (size_t i = 0; i < OPT_COUNT; i++) {
        const char *v = getenv(OPTS[i].env);
        if (v != NULL && v[0] != '\0' && set_opt(&OPTS[i], v, c, OPTS[i].env) != 0) {
            return -1;
        }
    }
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            br_serve_usage();
            return 1;
        }
        const struct opt *o = NULL;
        const char *value = NULL;
        for (size_t k = 0; k < OPT_COUNT; k++) {
            size_t n = strlen(OPTS[k].flag);
            if (strncmp(a, OPTS[k].flag, n) == 0 && (a[n] == '\0' || a[n] == '=')) {
                o = &OPTS[k];
                value = a[n] == '=' ? a + n + 1 : NULL;
                break;
            }
        }
        if (o == NULL) {
            br_cli_unknown_option("serve", a);
            return -1;
        }
        if (o->kind == OPT_FLAG) {
            value = value ? value : "1";
        } else if (value == NULL) {
            if (i + 1 >= argc) {
                br_cli_missing_value("serve", o->flag);
                return -1;
            }
            value = argv[++i];
        }
        if (set_opt(o, value, c, o->flag) != 0) {
            return -1;
        }
    }
    if (c->threads == THREADS_UNSET) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        c->threads = br_serve_distributed(c)  ? distributed_threads(cpus)
                     : cpus >= 2              ? (unsigned)(cpus > 64 ? 64 : cpus)
                                              : 2;
    }
    if (c->threads == 0 || c->tick_ms == 0 || c->journal_syncs == 0 || c->sse_keepalive_s == 0 || c->body_max == 0 ||
        c->header_max < 1024 || c->scrypt_log2n < BR_AUTH_LOG2N_MIN) {
        fprintf(stderr, "bookingrush serve: --threads, --tick-ms, --journal-syncs, --sse-keepalive-s and "
                        "--body-max must be positive, --header-max >= 1024, --scrypt-log2n >= %u\n",
                BR_AUTH_LOG2N_MIN);
        return -1;
    }
    if (c->hash_threads == 0 || c->hash_queue == 0 || c->refresh_ttl_s == 0) {
        fprintf(stderr, "bookingrush serve: --hash-threads, --hash-queue and --refresh-ttl-s must "
                        "be positive\n");
        return -1;
    }
    if (strcmp(c->hash_sched, "idle") != 0 && strcmp(c->hash_sched, "nice") != 0) {
        fprintf(stderr, "bookingrush serve: --hash-sched wants idle or nice, got \"%s\"\n",
                c->hash_sched);
        return -1;
    }
    if (c->admin[0] != '\0' && strchr(c->admin, ':') == NULL) {
        fprintf(stderr, "bookingrush serve: --admin wants EMAIL:PASSWORD\n");
        return -1;
    }
    if (check_payments(c) != 0) {
        return -1;
    }
    return check_distributed(c);
}
