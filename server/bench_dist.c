/*
 * bench_dist.c -- br-bench-dist: the reserve load of the distributed
 * benchmark (scripts/bench.d/60-dist-reserve.sh), through two or more
 * `bookingrush serve --backend distributed` processes on 127.0.0.1.
 *
 *   br-bench-dist PORT[,PORT...] ADMIN_EMAIL ADMIN_PASSWORD USERS SECONDS[,SECONDS...] [CONNS]
 *
 * Setup (not measured): creates one event open now that requires a queue
 * pass (one zone of 1,000,000 seats, per-user limit 64, max_active = USERS,
 * the largest admission per tick, passes and holds valid an hour), then
 * registers USERS buyers, logs each in and has each join the queue.
 *
 * Then, for each SECONDS given (a phase), rounds until their reserve parts
 * add up to SECONDS (64 rounds in all at most: the per-user limit): every
 * buyer's pass is read (GET /api/v1/queue/position/N, again until the
 * admitter has admitted all), then the timed part: one POST
 * /api/v1/bookings/reserve per buyer (one seat, access token and pass; an
 * Idempotency-Key too when BENCH_DIST_KEYS=1) over CONNS keep-alive
 * connections (64) spread over the ports, each connection sending its next
 * request when the previous is answered; then every buyer joins again (a
 * used pass puts its holder at the back of the queue). A pass is consumed
 * by its hold, so the load cannot be a fixed list replayed, and wrk, which
 * cannot end a run when single-use work runs out, is not used;
 * bench_dist_load.h is.
 *
 * Only the reserve parts are timed: a phase's rate is its reserves over
 * their summed time, its percentiles are over each of its reserves'
 * latency. Output, on stdout, per phase one line of key=value pairs
 * (phase, event, users, rounds, reserves, ok (2xx), seconds, rate,
 * round_min and round_max (its slowest and fastest round's rate), p50_ms,
 * p90_ms, p99_ms, max_ms, setup_s) and a line with the count of each
 * status. Every step's failure is a message on stderr and exit status 1.
 *
 * BENCH_DIST_HOOK, when set, is a shell command run (system()) with
 * `start P E` and `end P E` appended around each measured reserve part and
 * `phase P E` after each phase (P = the phase's number, from 1; E = the
 * event's id), so the caller can read the servers' counters over the
 * reserves alone (Redis's commandstats, CPU), or measure a baseline and
 * change a setting between phases. A hook that fails ends the run.
 */
#define _POSIX_C_SOURCE 200809L

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_dist_load.h"

#define USERS_MAX 100000u
#define ROUNDS_MAX 64u /* the event's per-user limit: one seat a round */
#define TOKEN_MAX 1024
#define SETUP_CONNS 16 /* registrations and logins wait for a hash thread */
#define PHASE_TIMEOUT_S 300.0
#define ADMIT_WAIT_S 60

struct bench {
    unsigned ports[BD_PORTS_MAX];
    unsigned nports;
    unsigned users;
    unsigned conns;
    long long event_id;
    int keys;
    char (*tokens)[TOKEN_MAX];
    char (*passes)[TOKEN_MAX];
};

static void fail(const char *what)
{
    fprintf(stderr, "br-bench-dist: %s\n", what);
    exit(1);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* A request's text: method, path, optional token, pass and key headers,
 * optional JSON body. malloc'd. */
static char *request(const char *method, const char *path, const char *token, const char *pass,
                     const char *key, const char *body, size_t *len)
{
    const char *headers[4] = {"X-Queue-Pass", pass, "Idempotency-Key", key};
    char *t = bd_request_text(method, path, token, headers, 2, body, len);
    if (t == NULL) {
        fail("out of memory");
    }
    return t;
}

/* Runs n requests; fails the program on a transport failure. */
static double run(const struct bench *b, struct bd_req *q, size_t n, unsigned conns, int bodies)
{
    double elapsed = 0;
    if (bd_run(b->ports, b->nports, conns, q, n, bodies, PHASE_TIMEOUT_S, &elapsed) != 0) {
        fail("a load phase failed (above)");
    }
    return elapsed;
}

static void release(struct bd_req *q, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(q[i].text);
        free(q[i].body);
        q[i].text = q[i].body = NULL;
    }
}

/* The string at obj.key (or obj.key.sub), copied to out; 0 when there. */
static int json_text(const char *body, const char *key, const char *sub, char *out, size_t cap)
{
    json_t *j = json_loads(body != NULL ? body : "", 0, NULL);
    json_t *v = json_object_get(j, key);
    if (sub != NULL) {
        v = json_object_get(v, sub);
    }
    const char *s = json_string_value(v);
    int rc = s != NULL && strlen(s) < cap ? 0 : -1;
    if (rc == 0) {
        memcpy(out, s, strlen(s) + 1);
    }
    json_decref(j);
    return rc;
}

static void create_event(struct bench *b, const char *email, const char *password)
{
    struct bd_req q = {0};
    char body[512];
    snprintf(body, sizeof body, "{\"email\":\"%s\",\"password\":\"%s\"}", email, password);
    q.text = request("POST", "/api/v1/auth/login", NULL, NULL, NULL, body, &q.len);
    run(b, &q, 1, 1, 1);
    char admin[TOKEN_MAX];
    if (q.status != 200 || json_text(q.body, "access_token", NULL, admin, sizeof admin) != 0) {
        fail("the admin's login failed");
    }
    release(&q, 1);
    snprintf(
        body, sizeof body,
        "{\"name\":\"Distributed Benchmark Night\",\"venue\":\"Loopback Hall\","
        "\"per_user_limit\":%u,\"requires_pass\":true,\"queue\":{\"max_active\":%u,"
        "\"admit_per_tick\":4096,\"pass_ttl_s\":3600},\"hold_ttl_s\":3600,\"zones\":"
        "[{\"name\":\"Floor\",\"capacity\":1000000,\"price_minor\":5000,\"currency\":\"EUR\"}]}",
        ROUNDS_MAX, b->users);
    q.text = request("POST", "/api/v1/events", admin, NULL, NULL, body, &q.len);
    run(b, &q, 1, 1, 1);
    json_t *j = json_loads(q.body != NULL ? q.body : "", 0, NULL);
    b->event_id = (long long)json_integer_value(json_object_get(j, "id"));
    json_decref(j);
    if (q.status != 201 || b->event_id <= 0) {
        fprintf(stderr, "br-bench-dist: create event: HTTP %d %s\n", q.status,
                q.body != NULL ? q.body : "");
        exit(1);
    }
    release(&q, 1);
}

/* Registers and logs in every buyer; their access tokens go to b->tokens. */
static void enrol(struct bench *b, struct bd_req *q)
{
    char body[256];
    for (unsigned i = 0; i < b->users; i++) {
        snprintf(body, sizeof body,
                 "{\"email\":\"dist-%lld-%u@bench.local\",\"password\":\"bench-password\","
                 "\"name\":\"Bench Buyer\"}",
                 b->event_id, i);
        q[i].text = request("POST", "/api/v1/auth/register", NULL, NULL, NULL, body, &q[i].len);
    }
    run(b, q, b->users, SETUP_CONNS, 1);
    for (unsigned i = 0; i < b->users; i++) {
        if (q[i].status != 201) {
            fprintf(stderr, "br-bench-dist: register buyer %u: HTTP %d %s\n", i, q[i].status,
                    q[i].body != NULL ? q[i].body : "");
            exit(1);
        }
    }
    release(q, b->users);
    for (unsigned i = 0; i < b->users; i++) {
        snprintf(body, sizeof body,
                 "{\"email\":\"dist-%lld-%u@bench.local\",\"password\":\"bench-password\"}",
                 b->event_id, i);
        q[i].text = request("POST", "/api/v1/auth/login", NULL, NULL, NULL, body, &q[i].len);
    }
    run(b, q, b->users, SETUP_CONNS, 1);
    for (unsigned i = 0; i < b->users; i++) {
        if (q[i].status != 200 ||
            json_text(q[i].body, "access_token", NULL, b->tokens[i], TOKEN_MAX) != 0) {
            fprintf(stderr, "br-bench-dist: login buyer %u: HTTP %d\n", i, q[i].status);
            exit(1);
        }
    }
    release(q, b->users);
}

/* Every buyer joins the event's queue (again). */
static void join_all(struct bench *b, struct bd_req *q)
{
    char body[64];
    snprintf(body, sizeof body, "{\"event_id\":%lld}", b->event_id);
    for (unsigned i = 0; i < b->users; i++) {
        q[i].text =
            request("POST", "/api/v1/queue/join", b->tokens[i], NULL, NULL, body, &q[i].len);
    }
    run(b, q, b->users, b->conns, 0);
    for (unsigned i = 0; i < b->users; i++) {
        if (q[i].status != 200 && q[i].status != 201) {
            fprintf(stderr, "br-bench-dist: join buyer %u: HTTP %d\n", i, q[i].status);
            exit(1);
        }
    }
    release(q, b->users);
}

/* Reads every buyer's pass, asking again those still waiting. */
static void read_passes(struct bench *b, struct bd_req *q, unsigned *who)
{
    char path[64];
    snprintf(path, sizeof path, "/api/v1/queue/position/%lld", b->event_id);
    for (unsigned i = 0; i < b->users; i++) {
        b->passes[i][0] = 0;
    }
    double give_up = now_s() + ADMIT_WAIT_S;
    for (;;) {
        unsigned n = 0;
        for (unsigned i = 0; i < b->users; i++) {
            if (b->passes[i][0] == 0) {
                who[n] = i;
                q[n].text = request("GET", path, b->tokens[i], NULL, NULL, NULL, &q[n].len);
                n++;
            }
        }
        if (n == 0) {
            return;
        }
        if (now_s() > give_up) {
            fprintf(stderr, "br-bench-dist: %u buyers not admitted after %d s\n", n, ADMIT_WAIT_S);
            exit(1);
        }
        run(b, q, n, b->conns, 1);
        for (unsigned k = 0; k < n; k++) {
            char status[32] = "";
            json_text(q[k].body, "status", NULL, status, sizeof status);
            if (q[k].status == 200 && strcmp(status, "admitted") == 0 &&
                json_text(q[k].body, "pass", "token", b->passes[who[k]], TOKEN_MAX) == 0) {
                continue;
            }
            b->passes[who[k]][0] = 0;
            if (q[k].status != 200 || strcmp(status, "waiting") != 0) {
                fprintf(stderr, "br-bench-dist: buyer %u has no pass: HTTP %d %s\n", who[k],
                        q[k].status, q[k].body != NULL ? q[k].body : "");
                exit(1);
            }
        }
        release(q, n);
        nanosleep(&(struct timespec){0, 50 * 1000 * 1000}, NULL);
    }
}

/* One measured phase: every buyer reserves one seat with their pass.
 * Latencies are appended to lat; status counts added to statuses. */
static double reserve_all(struct bench *b, struct bd_req *q, unsigned round, uint32_t *lat,
                          size_t *nlat, unsigned long *statuses)
{
    char body[96], key[64];
    snprintf(body, sizeof body, "{\"event_id\":%lld,\"zone_id\":1,\"quantity\":1}", b->event_id);
    for (unsigned i = 0; i < b->users; i++) {
        snprintf(key, sizeof key, "bench-%u-%u", round, i);
        q[i].text = request("POST", "/api/v1/bookings/reserve", b->tokens[i], b->passes[i],
                            b->keys ? key : NULL, body, &q[i].len);
    }
    double t = run(b, q, b->users, b->conns, 0);
    for (unsigned i = 0; i < b->users; i++) {
        lat[(*nlat)++] = q[i].latency_us;
        statuses[q[i].status >= 100 && q[i].status < 600 ? q[i].status : 0]++;
    }
    release(q, b->users);
    return t;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static double pct_ms(const uint32_t *lat, size_t n, double p)
{
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return (double)lat[i] / 1000.0;
}

static int parse_ports(const char *s, struct bench *b)
{
    b->nports = 0;
    while (*s != 0 && b->nports < BD_PORTS_MAX) {
        char *end;
        unsigned long p = strtoul(s, &end, 10);
        if (end == s || p == 0 || p > 65535 || (*end != ',' && *end != 0)) {
            return -1;
        }
        b->ports[b->nports++] = (unsigned)p;
        s = *end == ',' ? end + 1 : end;
    }
    return b->nports == 0 || *s != 0 ? -1 : 0;
}

static void hook(const char *what, unsigned phase, long long event_id)
{
    const char *h = getenv("BENCH_DIST_HOOK");
    if (h == NULL || h[0] == 0) {
        return;
    }
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s %s %u %lld", h, what, phase, event_id);
    fflush(stdout);
    if (system(cmd) != 0) {
        fprintf(stderr, "br-bench-dist: the hook failed: %s\n", cmd);
        exit(1);
    }
}

/* What one phase measured. */
struct phase {
    unsigned number; /* from 1 */
    unsigned rounds;
    double spent_s;              /* the reserve parts' summed time */
    double round_min, round_max; /* the slowest and fastest round's reserves/s */
    double setup_s;
};

static void report(const struct bench *b, const struct phase *ph, uint32_t *lat, size_t nlat,
                   const unsigned long *statuses)
{
    qsort(lat, nlat, sizeof *lat, cmp_u32);
    unsigned long ok = 0;
    for (int s = 200; s < 300; s++) {
        ok += statuses[s];
    }
    printf("phase=%u event=%lld users=%u rounds=%u reserves=%zu ok=%lu seconds=%.3f rate=%.0f "
           "round_min=%.0f round_max=%.0f p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f max_ms=%.2f "
           "setup_s=%.1f\n",
           ph->number, b->event_id, b->users, ph->rounds, nlat, ok, ph->spent_s,
           (double)nlat / ph->spent_s, ph->round_min, ph->round_max, pct_ms(lat, nlat, 0.50),
           pct_ms(lat, nlat, 0.90), pct_ms(lat, nlat, 0.99), (double)lat[nlat - 1] / 1000.0,
           ph->setup_s);
    printf("statuses");
    for (int s = 0; s < 600; s++) {
        if (statuses[s] > 0) {
            printf(" %d:%lu", s, statuses[s]);
        }
    }
    printf("\n");
    fflush(stdout);
}

int main(int argc, char **argv)
{
    struct bench b = {0};
    if (argc == 2 && strcmp(argv[1], "--help") == 0) {
        printf("usage: br-bench-dist PORT[,PORT...] ADMIN_EMAIL ADMIN_PASSWORD USERS "
               "SECONDS[,SECONDS...] [CONNS]\n\n"
               "The distributed deployment's reserve load (scripts/bench.d/60-dist-reserve.sh):\n"
               "creates an event that requires a queue pass, registers, logs in and queues USERS\n"
               "buyers, then per phase (one per SECONDS) runs rounds until their reserves took\n"
               "SECONDS: every buyer's pass is read, every buyer reserves one seat (timed, over\n"
               "CONNS keep-alive connections, 64 by default, spread over the ports), every buyer\n"
               "joins again. Prints one key=value line per phase.\n"
               "Environment: BENCH_DIST_KEYS=1 (an Idempotency-Key on every reserve),\n"
               "BENCH_DIST_HOOK=CMD (run as CMD start|end P E around each timed round and\n"
               "CMD phase P E after each phase).\n");
        return 0;
    }
    if (argc < 6 || argc > 7 || parse_ports(argv[1], &b) != 0) {
        fprintf(stderr, "usage: br-bench-dist PORT[,PORT...] ADMIN_EMAIL ADMIN_PASSWORD USERS "
                        "SECONDS[,SECONDS...] [CONNS]\n");
        return 2;
    }
    b.users = (unsigned)strtoul(argv[4], NULL, 10);
    double phases[8];
    unsigned nphases = 0;
    for (const char *s = argv[5]; *s != 0 && nphases < 8;) {
        char *end;
        phases[nphases] = strtod(s, &end);
        if (end == s || phases[nphases] <= 0 || (*end != ',' && *end != 0)) {
            nphases = 0;
            break;
        }
        nphases++;
        s = *end == ',' ? end + 1 : end;
    }
    b.conns = argc == 7 ? (unsigned)strtoul(argv[6], NULL, 10) : 64;
    if (b.users == 0 || b.users > USERS_MAX || nphases == 0 || b.conns == 0 ||
        b.conns > BD_CONNS_MAX) {
        fprintf(stderr, "br-bench-dist: USERS 1..%u, 1..8 SECONDS > 0, CONNS 1..%d\n", USERS_MAX,
                BD_CONNS_MAX);
        return 2;
    }
    const char *k = getenv("BENCH_DIST_KEYS");
    b.keys = k != NULL && strcmp(k, "1") == 0;
    b.tokens = calloc(b.users, TOKEN_MAX);
    b.passes = calloc(b.users, TOKEN_MAX);
    struct bd_req *q = calloc(b.users, sizeof *q);
    unsigned *who = calloc(b.users, sizeof *who);
    uint32_t *lat = calloc((size_t)b.users * ROUNDS_MAX, sizeof *lat);
    unsigned long *statuses = calloc(600, sizeof *statuses);
    if (b.tokens == NULL || b.passes == NULL || q == NULL || who == NULL || lat == NULL ||
        statuses == NULL) {
        fail("out of memory");
    }
    double t0 = now_s();
    create_event(&b, argv[2], argv[3]);
    enrol(&b, q);
    join_all(&b, q);
    double setup_s = now_s() - t0;
    unsigned round = 0;
    for (unsigned p = 0; p < nphases; p++) {
        struct phase ph = {.number = p + 1, .round_min = 1e30, .setup_s = setup_s};
        size_t nlat = 0;
        memset(statuses, 0, 600 * sizeof *statuses);
        while (ph.spent_s < phases[p] && round < ROUNDS_MAX) {
            if (round > 0) {
                join_all(&b, q);
            }
            read_passes(&b, q, who);
            hook("start", ph.number, b.event_id);
            double t = reserve_all(&b, q, round, lat, &nlat, statuses);
            hook("end", ph.number, b.event_id);
            ph.spent_s += t;
            ph.round_min = (double)b.users / t < ph.round_min ? (double)b.users / t : ph.round_min;
            ph.round_max = (double)b.users / t > ph.round_max ? (double)b.users / t : ph.round_max;
            ph.rounds++;
            round++;
        }
        if (nlat == 0) {
            fail("no round left for a phase (64 rounds at most in all)");
        }
        report(&b, &ph, lat, nlat, statuses);
        hook("phase", ph.number, b.event_id);
    }
    free(b.tokens);
    free(b.passes);
    free(q);
    free(who);
    free(lat);
    free(statuses);
    return 0;
}
