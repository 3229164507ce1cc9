/*
 * bench_redis.c -- reserve calls per second through the adapter, and the
 * arguments for redis-benchmark to run the same script raw
 * (scripts/bench.d/50-redis-reserve.sh puts the two side by side).
 *
 *   bench_redis setup --redis URL
 *       empties the db, creates one event (8 zones of 1,000,000 seats, no
 *       pass, a limit of 64) and marks users 1..10^7 as registered (the
 *       catalog's user counter is set directly: a reserve reads nothing
 *       else about its user), then prints the redis-benchmark arguments of
 *       a reserve by a random user: FCALL reserve_<hash> 1 br:{e1}: <now>
 *       __rand_int__ ... <record>. The journal record the script logs is
 *       binary (NUL bytes), which redis-benchmark's arguments cannot carry
 *       (its -x too cuts at the first NUL), so the raw side logs a stand-in
 *       of the same length ('r' bytes): the same work for Redis.
 *   bench_redis run --redis URL --requests N --clients C [--keys]
 *       the same setup, then C threads with one adapter each (as
 *       redis-benchmark's C connections) send N reserves in all, each by
 *       its own user; prints calls/s. --keys gives every reserve an
 *       idempotency key (the claim in the user's slot is a second round trip).
 *   bench_redis passes --redis URL --users N --out FILE
 *       the same setup but the event requires a queue pass (as the HTTP
 *       bench's event does); users 1..N (N <= 1000) join and are admitted,
 *       then FILE gets their N reserves, each with its pass and its real
 *       journal record, as the adapter sends them (RESP, for redis-cli
 *       --pipe): what a reserve that consumes a pass costs Redis, counted
 *       by 50-redis-reserve.sh's callgrind step.
 */
#define _POSIX_C_SOURCE 200809L

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "adapters/redis.h"
#include "core/err.h"
#include "core/hash.h"
#include "core/journal.h"
#include "core/panic.h"

#define T0 ((int64_t)1700000000000)
#define USERS 10000000

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void config(struct br_config *cfg)
{
    br_config_default(cfg);
    cfg->users_max = USERS;
    cfg->seats_max = 8000000;
}

/* A fresh db with the event and the users; returns the adapter open on it. */
static void setup(const struct br_redis_options *opt, struct br_redis *r, bool pass)
{
    struct br_config cfg;
    config(&cfg);
    struct br_redis_options o = *opt;
    o.fresh = true;
    int rc = br_redis_open(r, &o, &cfg);
    if (rc != BR_OK) {
        fprintf(stderr, "bench_redis: cannot open redis: %s\n", br_err_name(rc));
        exit(2);
    }
    struct br_cmd c;
    memset(&c, 0, sizeof c);
    c.type = BR_CMD_EVENT_CREATE;
    c.now_ms = T0;
    struct br_event_spec *s = &c.u.event_create;
    strcpy(s->name, "Benchmark night");
    strcpy(s->venue, "Arena");
    s->sale_opens_at_ms = T0;
    s->per_user_limit = 64;
    s->requires_pass = pass;
    s->max_active = 1000;
    s->admit_per_tick = 100;
    s->pass_ttl_ms = 600000;
    s->hold_ttl_ms = 600000;
    s->zone_count = 8;
    for (int z = 0; z < 8; z++) {
        snprintf(s->zones[z].name, sizeof s->zones[z].name, "Zone %d", z + 1);
        s->zones[z].capacity = 1000000;
        s->zones[z].price_minor = 5000;
        strcpy(s->zones[z].currency, "EUR");
    }
    struct br_outcome out;
    static struct br_effect fx[BR_EFFECTS_MAX];
    uint32_t n;
    rc = br_redis_apply(r, &c, &out, fx, &n);
    BR_ASSERT(rc == BR_OK && out.id == 1);
    redisContext *ctx = redisConnect(opt->host, opt->port);
    BR_ASSERT(ctx != NULL && ctx->err == 0);
    if (opt->db != 0) {
        freeReplyObject(redisCommand(ctx, "SELECT %d", opt->db));
    }
    redisReply *rep = redisCommand(ctx, "HSET br:{cat}:cat users %d", USERS);
    BR_ASSERT(rep != NULL && rep->type == REDIS_REPLY_INTEGER);
    freeReplyObject(rep);
    redisFree(ctx);
}

struct worker {
    pthread_t thread;
    pthread_barrier_t *start; /* every adapter is open before the clock starts */
    struct br_redis_options opt;
    uint64_t first_user;
    uint64_t requests;
    bool keys;
    uint64_t ok;
    int failed_rc;
};

static void *work(void *arg)
{
    struct worker *w = arg;
    struct br_config cfg;
    config(&cfg);
    struct br_redis r;
    int rc = br_redis_open(&r, &w->opt, &cfg);
    pthread_barrier_wait(w->start);
    if (rc != BR_OK) {
        w->failed_rc = rc;
        return NULL;
    }
    struct br_effect *fx = malloc(sizeof *fx * BR_EFFECTS_MAX);
    BR_ASSERT(fx != NULL);
    struct br_cmd c;
    memset(&c, 0, sizeof c);
    c.type = BR_CMD_RESERVE;
    c.now_ms = T0 + 1;
    c.u.reserve.event_id = 1;
    c.u.reserve.quantity = 1;
    for (uint64_t i = 0; i < w->requests; i++) {
        c.user_id = w->first_user + i;
        c.u.reserve.zone_id = 1 + (uint32_t)(i % 8);
        c.u.reserve.idem_key = w->keys ? br_mix64(c.user_id) : 0;
        struct br_outcome out;
        uint32_t n;
        rc = br_redis_apply(&r, &c, &out, fx, &n);
        if (rc == BR_OK) {
            w->ok++;
        } else if (w->failed_rc == 0) {
            w->failed_rc = rc;
        }
    }
    free(fx);
    br_redis_close(&r);
    return NULL;
}

/* One RESP bulk string. */
static void resp_bulk(FILE *f, const void *p, size_t len)
{
    fprintf(f, "$%zu\r\n", len);
    fwrite(p, 1, len, f);
    fputs("\r\n", f);
}

/* passes: users 1..n join the event (it requires a pass) and are admitted;
 * then writes their reserves, as the adapter would send them, to path. */
static void write_passes(struct br_redis *r, unsigned n, const char *path)
{
    static struct br_effect fx[BR_EFFECTS_MAX];
    static uint64_t pass_of[1001];
    struct br_outcome out;
    uint32_t nfx;
    struct br_cmd c;
    memset(&c, 0, sizeof c);
    c.type = BR_CMD_QUEUE_JOIN;
    c.now_ms = T0 + 1;
    c.u.queue_join.event_id = 1;
    for (unsigned u = 1; u <= n; u++) {
        c.user_id = u;
        BR_ASSERT(br_redis_apply(r, &c, &out, fx, &nfx) == BR_OK && out.err == BR_OK);
    }
    memset(&c, 0, sizeof c);
    c.type = BR_CMD_ADMIT;
    c.now_ms = T0 + 2;
    c.u.admit.event_id = 1;
    unsigned admitted = 0;
    while (admitted < n) {
        BR_ASSERT(br_redis_apply(r, &c, &out, fx, &nfx) == BR_OK && out.err == BR_OK);
        BR_ASSERT(nfx > 0);
        for (uint32_t i = 0; i < nfx; i++) {
            if (fx[i].kind == BR_FX_PASS_ISSUED && fx[i].user_id <= n) {
                pass_of[fx[i].user_id] = fx[i].id;
                admitted++;
            }
        }
    }
    FILE *f = fopen(path, "wb");
    BR_ASSERT(f != NULL);
    const char *fn = br_redis_function_name(r, "reserve");
    for (unsigned u = 1; u <= n; u++) {
        memset(&c, 0, sizeof c);
        c.type = BR_CMD_RESERVE;
        c.now_ms = T0 + 3;
        c.user_id = u;
        c.u.reserve.event_id = 1;
        c.u.reserve.zone_id = 1 + u % 8;
        c.u.reserve.quantity = 1;
        c.u.reserve.pass_id = pass_of[u];
        uint8_t rec[BR_JOURNAL_RECORD_MAX];
        size_t len = br_journal_record_encode(rec, sizeof rec, &c, NULL);
        BR_ASSERT(len > 0);
        /* now user known zone qty pass key fingerprint claim record (no key:
         * the fingerprint is not read) */
        char a[9][24];
        snprintf(a[0], sizeof a[0], "%" PRId64, c.now_ms);
        snprintf(a[1], sizeof a[1], "%u", u);
        snprintf(a[2], sizeof a[2], "1");
        snprintf(a[3], sizeof a[3], "%" PRIu32, c.u.reserve.zone_id);
        snprintf(a[4], sizeof a[4], "1");
        snprintf(a[5], sizeof a[5], "%" PRIu64, c.u.reserve.pass_id);
        snprintf(a[6], sizeof a[6], "0");
        snprintf(a[7], sizeof a[7], "0");
        snprintf(a[8], sizeof a[8], "0");
        fprintf(f, "*14\r\n");
        resp_bulk(f, "FCALL", 5);
        resp_bulk(f, fn, strlen(fn));
        resp_bulk(f, "1", 1);
        resp_bulk(f, "br:{e1}:", 8);
        for (int i = 0; i < 9; i++) {
            resp_bulk(f, a[i], strlen(a[i]));
        }
        resp_bulk(f, rec, len);
    }
    BR_ASSERT(fclose(f) == 0);
}

static const char *arg(int argc, char **argv, const char *name, const char *dflt)
{
    for (int i = 2; i + 1 < argc; i++) {
        if (strcmp(argv[i], name) == 0) {
            return argv[i + 1];
        }
    }
    return dflt;
}

static bool flag(int argc, char **argv, const char *name)
{
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], name) == 0) {
            return true;
        }
    }
    return false;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr,
                "usage: bench_redis setup|run|passes --redis URL [--requests N --clients C --keys]"
                " [--users N --out FILE]\n");
        return 2;
    }
    struct br_redis_options opt;
    if (br_redis_parse_url(arg(argc, argv, "--redis", "redis://127.0.0.1:6379"), &opt) != BR_OK) {
        fprintf(stderr, "bench_redis: bad --redis\n");
        return 2;
    }
    struct br_redis r;
    bool pass = strcmp(argv[1], "passes") == 0;
    setup(&opt, &r, pass);
    if (pass) {
        unsigned users = (unsigned)strtoul(arg(argc, argv, "--users", "1000"), NULL, 10);
        const char *path = arg(argc, argv, "--out", NULL);
        if (users < 1 || users > 1000 || path == NULL) {
            fprintf(stderr, "bench_redis: passes needs --users 1..1000 and --out FILE\n");
            return 2;
        }
        write_passes(&r, users, path);
        br_redis_close(&r);
        return 0;
    }
    if (strcmp(argv[1], "setup") == 0) {
        /* now user known zone qty pass key fingerprint claim record: as the adapter
         * sends them, but for the record: a stand-in of the same length. */
        struct br_cmd c;
        memset(&c, 0, sizeof c);
        c.type = BR_CMD_RESERVE;
        c.now_ms = T0 + 1;
        c.user_id = 1;
        c.u.reserve.event_id = 1;
        c.u.reserve.zone_id = 1;
        c.u.reserve.quantity = 1;
        uint8_t rec[BR_JOURNAL_RECORD_MAX];
        size_t len = br_journal_record_encode(rec, sizeof rec, &c, NULL);
        BR_ASSERT(len > 0 && len < sizeof rec);
        memset(rec, 'r', len);
        rec[len] = 0;
        uint64_t fp = br_hash_step(br_hash_step(br_hash_step(br_hash_step(0, 1), 1), 1), 0);
        printf("FCALL %s 1 br:{e1}: %" PRId64 " __rand_int__ 1 1 1 0 0 %" PRIu64 " 0 %s\n",
               br_redis_function_name(&r, "reserve"), T0 + 1, fp, (const char *)rec);
        br_redis_close(&r);
        return 0;
    }
    br_redis_close(&r);
    uint64_t requests = strtoull(arg(argc, argv, "--requests", "200000"), NULL, 10);
    unsigned clients = (unsigned)strtoul(arg(argc, argv, "--clients", "50"), NULL, 10);
    if (clients < 1 || clients > 1024 || requests < clients) {
        fprintf(stderr, "bench_redis: 1..1024 clients, at least one request each\n");
        return 2;
    }
    struct worker *w = calloc(clients, sizeof *w);
    BR_ASSERT(w != NULL);
    pthread_barrier_t start;
    BR_ASSERT(pthread_barrier_init(&start, NULL, clients + 1) == 0);
    for (unsigned i = 0; i < clients; i++) {
        w[i].start = &start;
        w[i].opt = opt;
        w[i].requests = requests / clients;
        w[i].first_user = 1 + (uint64_t)i * (requests / clients + 1);
        w[i].keys = flag(argc, argv, "--keys");
        BR_ASSERT(pthread_create(&w[i].thread, NULL, work, &w[i]) == 0);
    }
    pthread_barrier_wait(&start);
    double t0 = now_s();
    uint64_t ok = 0;
    int failed = 0;
    for (unsigned i = 0; i < clients; i++) {
        pthread_join(w[i].thread, NULL);
        ok += w[i].ok;
        failed = failed ? failed : w[i].failed_rc;
    }
    double secs = now_s() - t0;
    if (failed != 0) {
        fprintf(stderr, "bench_redis: a reserve failed: %s\n", br_err_name(failed));
        return 1;
    }
    printf("adapter: %" PRIu64 " reserves by %u clients in %.2f s: %.0f calls/s\n", ok, clients,
           secs, (double)ok / secs);
    free(w);
    return 0;
}
