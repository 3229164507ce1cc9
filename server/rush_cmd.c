/*
 * rush_cmd.c -- `bookingrush rush SCENARIO --target URL ...` (br_rush_main):
 * the command line (docs: README "Rehearsing an on-sale"), then the phases
 * in order, each bounded by the run's hard deadline:
 *
 *   1. parse, load the scenario, raise RLIMIT_NOFILE soft -> hard and check
 *      the descriptor budget (exit 2 with the numbers when it cannot fit);
 *   2. probe the targets (/readyz), log the administrator in;
 *   3. prepare the accounts (rush_prep.c; excluded from every figure),
 *      then create the events opening --open-in from now (or read --event)
 *      and read the baseline stats;
 *   4. the crowd (rush_crowd.c) until every user is terminal or --duration,
 *      a progress line and a server sample each second; then the queue
 *      positions of the users without a pass, as the crowd leaves;
 *   5. settle: poll the bookings whose payment is undecided or whose hold is
 *      still live, until final (bounded);
 *   6. the snapshot and the verdict (rush_verdict.c); 7. the report
 *      (rush_report.c), text or --json.
 *
 * Exit 0 every invariant held, 1 one was violated, 2 usage, 3 the target
 * failed us (unreachable, refused the admin, preparation incomplete, the
 * hard deadline = prepare (<= 600 s) + duration + settle + 60 s passed).
 * Single-threaded: everything runs on the one rush_net loop.
 */
#define _DEFAULT_SOURCE
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <jansson.h>

#include "adapters/cli.h"
#include "core/err.h"
#include "server/rush.h"
#include "server/rush_crowd.h"
#include "server/rush_meter.h"
#include "server/rush_net.h"
#include "server/rush_prep.h"
#include "server/rush_report.h"
#include "server/rush_verdict.h"
#include "sim/scenario.h"

#define CMD "rush"
#define PREPARE_MAX_S 600
#define SAMPLE_PERIOD_US 1000000

static const char USAGE[] =
    "usage: bookingrush rush SCENARIO.json --target URL[,URL...] [options]\n"
    "\n"
    "Drives a running deployment over real HTTP with the scenario's crowd, then reads the\n"
    "outcome back through the API and checks the invariants. Stops by itself.\n"
    "\n"
    "  --target URL[,URL]     http://host:port of the server(s); requests and streams are\n"
    "                         spread round-robin over them (a load balancer: give one URL)\n"
    "  --admin EMAIL:PASSWORD an administrator (BR_ADMIN); creates the events, reads stats\n"
    "  --event ID             use this existing event instead of creating the scenario's\n"
    "  --users N              the crowd's size (default: the scenario's crowd.users)\n"
    "  --connections N        keep-alive connections for requests, 1..4096 (64); streams\n"
    "                         have their own connection each\n"
    "  --duration S           bound on the crowd phase, opening window included (60)\n"
    "  --open-in S            seconds from the end of preparation to the opening; arrivals\n"
    "                         before it fill the pre-queue (default: scaled early window, >= 2)\n"
    "  --time-scale F         scenario ms -> real ms (default: fit the crowd into --duration)\n"
    "  --seed N               draws the crowd's plans (default: the scenario's seed)\n"
    "  --login-storm N        N extra accounts log in during the first --storm-window-s (0)\n"
    "  --storm-window-s S     (2)\n"
    "  --storm-accounts KIND  registered | unknown (emails with no account; same hash work)\n"
    "  --stream-drops F       fraction of waiting users whose stream the client cuts once (0)\n"
    "  --users-file FILE      prepared accounts: read if it exists, else written after preparing\n"
    "  --prepare-only         register and log in (and write --users-file), then exit 0\n"
    "  --user-prefix P        emails P-<i>@rush.test (default rush-<seed>-<epoch s>)\n"
    "  --request-timeout-s S  per request (10); --stream-idle-s S (45); --settle-s S (15)\n"
    "  --server-pid PID       also read /proc/PID for peak RSS (VmHWM) and open fds\n"
    "  --json                 the report as JSON on stdout (progress stays on stderr)\n"
    "  --quiet                no progress line\n"
    "  --help\n"
    "\n"
    "Exit status: 0 every invariant held; 1 an invariant was violated (named in the report);\n"
    "2 usage error; 3 the target failed us (unreachable, admin refused, event not created,\n"
    "preparation incomplete, the run's hard deadline hit before the verdict).\n";

/* ---- options ---- */

struct args {
    struct br_rush_config cfg;
    bool help, prefix_set, open_in_set;
};

static bool parse_u32(const char *v, uint32_t lo, uint32_t hi, uint32_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0' || v[0] == '-' || x < lo || x > hi) {
        return false;
    }
    *out = (uint32_t)x;
    return true;
}

static bool parse_double(const char *v, double lo, double hi, double *out)
{
    char *end = NULL;
    errno = 0;
    double x = strtod(v, &end);
    if (errno != 0 || end == v || *end != '\0' || !(x >= lo) || !(x <= hi)) {
        return false;
    }
    *out = x;
    return true;
}

/* "http://host:port[,http://...]": each kept as given (no trailing '/'). */
static int parse_targets(const char *v, struct br_rush_config *c)
{
    const char *p = v;
    c->target_count = 0;
    while (*p != '\0') {
        size_t n = strcspn(p, ",");
        if (c->target_count >= BR_RUSH_TARGETS_MAX) {
            return br_cli_usage_error(CMD, "--target: at most %u URLs", BR_RUSH_TARGETS_MAX);
        }
        if (n >= 8 && strncmp(p, "https://", 8) == 0) {
            return br_cli_usage_error(CMD, "--target: https is not supported (plain http:// only)");
        }
        if (n <= 7 || strncmp(p, "http://", 7) != 0 || n >= sizeof c->targets[0]) {
            return br_cli_usage_error(CMD, "--target: want http://host:port, got '%.*s'", (int)n,
                                      p);
        }
        char *t = c->targets[c->target_count++];
        memcpy(t, p, n);
        t[n] = '\0';
        while (n > 7 && t[n - 1] == '/') {
            t[--n] = '\0';
        }
        const char *colon = strrchr(t + 7, ':');
        uint32_t port = 0;
        if (colon == NULL || colon == t + 7 || !parse_u32(colon + 1, 1, 65535, &port)) {
            return br_cli_usage_error(CMD, "--target: want http://host:port, got '%s'", t);
        }
        p += n;
        p += *p == ',';
    }
    return c->target_count > 0 ? 0 : br_cli_usage_error(CMD, "--target: no URL");
}

static int set_admin(struct br_rush_config *c, const char *v)
{
    const char *colon = strchr(v, ':');
    if (colon == NULL || colon == v || colon[1] == '\0' ||
        (size_t)(colon - v) >= sizeof c->admin_email || strlen(colon + 1) >= sizeof c->admin_password) {
        return br_cli_usage_error(CMD, "--admin: want EMAIL:PASSWORD");
    }
    snprintf(c->admin_email, sizeof c->admin_email, "%.*s", (int)(colon - v), v);
    snprintf(c->admin_password, sizeof c->admin_password, "%s", colon + 1);
    return 0;
}

static const char *const VALUE_OPTS[] = {
    "--target", "--admin", "--event", "--users", "--connections", "--duration", "--open-in",
    "--time-scale", "--seed", "--login-storm", "--storm-window-s", "--storm-accounts",
    "--stream-drops", "--users-file", "--user-prefix", "--request-timeout-s", "--stream-idle-s",
    "--settle-s", "--server-pid", NULL};

static bool wants_value(const char *o)
{
    for (unsigned i = 0; VALUE_OPTS[i] != NULL; i++) {
        if (strcmp(o, VALUE_OPTS[i]) == 0) {
            return true;
        }
    }
    return false;
}

#define BAD(o, what) br_cli_usage_error(CMD, "%s: %s, got '%s'", (o), (what), v)

static int parse_opt(const char *o, const char *v, struct args *a)
{
    struct br_rush_config *c = &a->cfg;
    uint32_t u = 0;
    double d = 0;
    if (strcmp(o, "--json") == 0) {
        c->json = true;
    } else if (strcmp(o, "--quiet") == 0) {
        c->quiet = true;
    } else if (strcmp(o, "--prepare-only") == 0) {
        c->prepare_only = true;
    } else if (strcmp(o, "--target") == 0) {
        return parse_targets(v, c);
    } else if (strcmp(o, "--admin") == 0) {
        return set_admin(c, v);
    } else if (strcmp(o, "--event") == 0) {
        char *end = NULL;
        errno = 0;
        unsigned long long x = strtoull(v, &end, 10);
        if (errno != 0 || end == v || *end != '\0' || x == 0 || v[0] == '-') {
            return BAD(o, "want an event id");
        }
        c->event_id = x;
    } else if (strcmp(o, "--users") == 0) {
        if (!parse_u32(v, 1, BR_RUSH_USERS_MAX, &c->users)) {
            return BAD(o, "want 1..200000");
        }
    } else if (strcmp(o, "--connections") == 0) {
        if (!parse_u32(v, 1, 4096, &c->connections)) {
            return BAD(o, "want 1..4096");
        }
    } else if (strcmp(o, "--duration") == 0) {
        if (!parse_u32(v, 1, 86400, &c->duration_s)) {
            return BAD(o, "want 1..86400 seconds");
        }
    } else if (strcmp(o, "--open-in") == 0) {
        if (!parse_double(v, 0, 3600, &d)) {
            return BAD(o, "want 0..3600 seconds");
        }
        c->open_in_ms = (uint32_t)(d * 1000.0 + 0.5);
        a->open_in_set = true;
    } else if (strcmp(o, "--time-scale") == 0) {
        if (!parse_double(v, 1e-6, 1e6, &c->time_scale)) {
            return BAD(o, "want a factor > 0");
        }
    } else if (strcmp(o, "--seed") == 0) {
        char *end = NULL;
        errno = 0;
        c->seed = strtoull(v, &end, 10);
        if (errno != 0 || end == v || *end != '\0' || v[0] == '-') {
            return BAD(o, "want a number");
        }
        c->seed_set = true;
    } else if (strcmp(o, "--login-storm") == 0) {
        if (!parse_u32(v, 0, BR_RUSH_USERS_MAX, &c->login_storm)) {
            return BAD(o, "want 0..200000");
        }
    } else if (strcmp(o, "--storm-window-s") == 0) {
        if (!parse_double(v, 0.001, 3600, &d)) {
            return BAD(o, "want a duration in seconds");
        }
        c->storm_window_ms = (uint32_t)(d * 1000.0 + 0.5);
    } else if (strcmp(o, "--storm-accounts") == 0) {
        if (strcmp(v, "registered") == 0) {
            c->storm_kind = BR_RUSH_STORM_REGISTERED;
        } else if (strcmp(v, "unknown") == 0) {
            c->storm_kind = BR_RUSH_STORM_UNKNOWN;
        } else {
            return BAD(o, "want registered or unknown");
        }
    } else if (strcmp(o, "--stream-drops") == 0) {
        if (!parse_double(v, 0, 1, &c->stream_drops)) {
            return BAD(o, "want a fraction in [0, 1]");
        }
    } else if (strcmp(o, "--users-file") == 0) {
        c->users_file = v;
    } else if (strcmp(o, "--user-prefix") == 0) {
        if (v[0] == '\0' || strlen(v) >= sizeof c->user_prefix || strpbrk(v, "@ \t\"\\") != NULL) {
            return BAD(o, "want a short prefix without @, blanks or quotes");
        }
        snprintf(c->user_prefix, sizeof c->user_prefix, "%s", v);
        a->prefix_set = true;
    } else if (strcmp(o, "--request-timeout-s") == 0 || strcmp(o, "--stream-idle-s") == 0 ||
               strcmp(o, "--settle-s") == 0) {
        if (!parse_double(v, 0.001, 3600, &d)) {
            return BAD(o, "want seconds in (0, 3600]");
        }
        uint32_t ms = (uint32_t)(d * 1000.0 + 0.5);
        *(strcmp(o, "--settle-s") == 0        ? &c->settle_ms
          : strcmp(o, "--stream-idle-s") == 0 ? &c->stream_idle_ms
                                              : &c->request_timeout_ms) = ms;
    } else if (strcmp(o, "--server-pid") == 0) {
        if (!parse_u32(v, 1, INT32_MAX, &u)) {
            return BAD(o, "want a process id");
        }
        c->server_pid = (int)u;
    } else {
        return br_cli_unknown_option(CMD, o);
    }
    return 0;
}

/* 1 = --help printed, 0 = run, BR_CLI_EXIT_USAGE = usage error (printed). */
static int parse_args(int argc, char **argv, struct args *a)
{
    memset(a, 0, sizeof *a);
    struct br_rush_config *c = &a->cfg;
    c->connections = 64;
    c->duration_s = 60;
    c->storm_window_ms = 2000;
    c->request_timeout_ms = 10000;
    c->stream_idle_ms = 45000;
    c->settle_ms = 15000;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0) {
            fputs(USAGE, stdout);
            return 1;
        }
        if (s[0] != '-') {
            if (c->scenario_path != NULL) {
                return br_cli_usage_error(CMD, "one scenario at a time ('%s'?)", s);
            }
            c->scenario_path = s;
            continue;
        }
        const char *v = NULL;
        if (wants_value(s)) {
            if (i + 1 >= argc) {
                return br_cli_missing_value(CMD, s);
            }
            v = argv[++i];
        }
        int rc = parse_opt(s, v, a);
        if (rc != 0) {
            return rc;
        }
    }
    if (c->admin_email[0] == '\0') {
        const char *env = getenv("BR_ADMIN");
        if (env != NULL && env[0] != '\0' && set_admin(c, env) != 0) {
            return BR_CLI_EXIT_USAGE;
        }
    }
    if (c->scenario_path == NULL) {
        return br_cli_usage_error(CMD, "which scenario?");
    }
    if (c->target_count == 0) {
        return br_cli_usage_error(CMD, "--target URL is required");
    }
    if (!c->prepare_only && c->admin_email[0] == '\0') {
        return br_cli_usage_error(CMD, "--admin EMAIL:PASSWORD (or BR_ADMIN) is required");
    }
    return 0;
}

/* ---- the run ---- */

struct run {
    struct args a;
    struct br_scenario *scn;
    struct br_rush_ledger ledger;
    struct br_rush_net *net;
    struct br_rush_meter *meter;
    struct br_rush_crowd *crowd;
    char admin_token[BR_RUSH_TOKEN_MAX];
    char backend[16];
    const char *target_ptrs[BR_RUSH_TARGETS_MAX];
    int64_t start_us, hard_deadline_us;
    const char *phase;
    int64_t crowd_end_wall_ms;
    /* sampling */
    bool metrics_inflight[BR_RUSH_TARGETS_MAX];
    uint32_t stats_inflight;
    struct br_rush_server_sample sample[BR_RUSH_TARGETS_MAX];
    uint32_t queue_length[BR_RUSH_EVENTS_MAX], admitted[BR_RUSH_EVENTS_MAX];
};

static void on_timer(void *ctx, uint32_t timer)
{
    struct run *r = ctx;
    if (r->crowd != NULL) {
        br_rush_crowd_on_timer(r->crowd, timer);
    }
}

static bool never_done(void *ctx)
{
    (void)ctx;
    return false;
}

static int target_failed(struct run *r, const char *why)
{
    fprintf(stderr, "bookingrush rush: %s: %s\n", r->phase, why);
    return BR_RUSH_EXIT_TARGET;
}

static bool past_deadline(struct run *r)
{
    return br_rush_now_us() >= r->hard_deadline_us;
}

/* One metric's value from a /metrics text ("name value" or "name{...} value"
 * without labels); -1 when absent. */
static double metric_value(const char *text, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = text; p != NULL && *p != '\0';) {
        if (strncmp(p, name, n) == 0 && p[n] == ' ') {
            return strtod(p + n + 1, NULL);
        }
        p = strchr(p, '\n');
        p = p != NULL ? p + 1 : NULL;
    }
    return -1;
}

/* /proc/PID/status's VmHWM and VmRSS (bytes) and /proc/PID/fd's count. */
static void proc_sample(int pid, struct br_rush_server_sample *s)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (f != NULL) {
        char line[256];
        while (fgets(line, sizeof line, f) != NULL) {
            unsigned long long kb = 0;
            if (sscanf(line, "VmHWM: %llu kB", &kb) == 1) {
                s->vmhwm_bytes = (double)kb * 1024.0;
            } else if (sscanf(line, "VmRSS: %llu kB", &kb) == 1 && s->rss_bytes <= 0) {
                s->rss_bytes = (double)kb * 1024.0;
            }
        }
        fclose(f);
    }
    snprintf(path, sizeof path, "/proc/%d/fd", pid);
    DIR *d = opendir(path);
    if (d != NULL) {
        uint32_t n = 0;
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            n += e->d_name[0] != '.';
        }
        closedir(d);
        if (n > s->open_fds) {
            s->open_fds = n;
        }
    }
}

struct sample_req {
    struct run *r;
    uint32_t target; /* or event index for stats */
};

static void fill_stats_into(struct run *r, struct br_rush_server_sample *s)
{
    uint32_t q = 0, adm = 0;
    for (uint32_t e = 0; e < r->ledger.event_count; e++) {
        q += r->queue_length[e];
        adm += r->admitted[e];
    }
    s->queue_length = q;
    s->admitted = adm;
}

static void metrics_answer(void *ctx, const struct br_rush_resp *resp)
{
    struct sample_req *sr = ctx;
    struct run *r = sr->r;
    uint32_t t = sr->target;
    free(sr);
    r->metrics_inflight[t] = false;
    if (resp->status != 200 || resp->body == NULL) {
        return;
    }
    struct br_rush_server_sample s = {0};
    double v;
    s.rss_bytes = (v = metric_value(resp->body, "process_resident_memory_bytes")) > 0 ? v : 0;
    s.open_fds = (v = metric_value(resp->body, "process_open_fds")) > 0 ? (uint32_t)v : 0;
    s.sse_streams = (v = metric_value(resp->body, "br_sse_streams")) > 0 ? (uint32_t)v : 0;
    s.inflight = (v = metric_value(resp->body, "br_http_inflight")) > 0 ? (uint32_t)v : 0;
    if (r->a.cfg.server_pid != 0 && t == 0) {
        proc_sample(r->a.cfg.server_pid, &s);
    }
    fill_stats_into(r, &s);
    r->sample[t] = s;
    br_rush_meter_server(r->meter, t, &s);
}

static void stats_answer(void *ctx, const struct br_rush_resp *resp)
{
    struct sample_req *sr = ctx;
    struct run *r = sr->r;
    uint32_t e = sr->target;
    free(sr);
    r->stats_inflight--;
    if (resp->status != 200 || resp->body == NULL) {
        return;
    }
    json_t *j = json_loadb(resp->body, resp->body_len, 0, NULL);
    r->queue_length[e] = (uint32_t)json_integer_value(json_object_get(j, "queue_length"));
    r->admitted[e] = (uint32_t)json_integer_value(json_object_get(j, "admitted"));
    json_decref(j);
    if (r->stats_inflight == 0 && r->sample[0].open_fds + r->sample[0].sse_streams > 0) {
        /* The progress line reads the latest sample: give it this second's stats now
         * rather than with the next /metrics answer (a second later). */
        fill_stats_into(r, &r->sample[0]);
        br_rush_meter_server(r->meter, 0, &r->sample[0]);
    }
}

/* Once a second: /metrics of each target, the stats of each event. */
static void sample_send(struct run *r)
{
    for (uint32_t t = 0; t < r->a.cfg.target_count; t++) {
        if (r->metrics_inflight[t]) {
            continue;
        }
        struct sample_req *sr = malloc(sizeof *sr);
        if (sr == NULL) {
            return;
        }
        *sr = (struct sample_req){r, t};
        struct br_rush_req q = {.route = BR_RR_METRICS, .pool = BR_RUSH_POOL_ADMIN, .target = t,
                                .method = "GET", .path = "/metrics", .timeout_ms = 5000};
        if (br_rush_net_send(r->net, &q, metrics_answer, sr) == BR_OK) {
            r->metrics_inflight[t] = true;
        } else {
            free(sr);
        }
    }
    if (r->stats_inflight > 0) {
        return;
    }
    for (uint32_t e = 0; e < r->ledger.event_count; e++) {
        struct sample_req *sr = malloc(sizeof *sr);
        if (sr == NULL) {
            return;
        }
        *sr = (struct sample_req){r, e};
        char path[80];
        snprintf(path, sizeof path, "/api/v1/admin/events/%" PRIu64 "/stats",
                 r->ledger.events[e].id);
        struct br_rush_req q = {.route = BR_RR_STATS, .pool = BR_RUSH_POOL_ADMIN, .target = 0,
                                .method = "GET", .path = path, .token = r->admin_token,
                                .timeout_ms = 5000};
        if (br_rush_net_send(r->net, &q, stats_answer, sr) == BR_OK) {
            r->stats_inflight++;
        } else {
            free(sr);
        }
    }
}

static bool samples_done(void *ctx)
{
    struct run *r = ctx;
    for (uint32_t t = 0; t < r->a.cfg.target_count; t++) {
        if (r->metrics_inflight[t]) {
            return false;
        }
    }
    return r->stats_inflight == 0;
}

/* The settle phase's polls: GET /bookings/{id} of a booking not final. */
struct poll_req {
    struct run *r;
    uint32_t user;
    uint8_t booking;
};

static uint32_t polls_inflight;

static uint8_t hold_state_of(const char *s)
{
    static const char *const names[] = {"none", "held", "confirmed", "expired", "cancelled",
                                        "refunded"};
    for (uint8_t i = 0; s != NULL && i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(s, names[i]) == 0) {
            return i;
        }
    }
    return BR_HOLD_NONE;
}

static void poll_answer(void *ctx, const struct br_rush_resp *resp)
{
    struct poll_req *pq = ctx;
    polls_inflight--;
    if (resp->status == 200 && resp->body != NULL) {
        json_t *j = json_loadb(resp->body, resp->body_len, 0, NULL);
        uint8_t st = hold_state_of(json_string_value(json_object_get(j, "status")));
        if (st != BR_HOLD_NONE) {
            pq->r->ledger.users[pq->user].bookings[pq->booking].last_status = st;
        }
        json_decref(j);
    }
    free(pq);
}

static bool polls_done(void *ctx)
{
    (void)ctx;
    return polls_inflight == 0;
}

/* A booking still to watch: its payment undecided or succeeded while the
 * ledger still says held, or (owned events) a hold that lapses soon. */
static bool booking_pending(const struct br_rush_booking *b)
{
    return b->last_status == BR_HOLD_HELD &&
           (b->pay == BR_RUSH_PAY_UNKNOWN || b->pay == BR_RUSH_PAY_SUCCEEDED);
}

static double settle(struct run *r)
{
    int64_t t0 = br_rush_now_us();
    const struct br_rush_config *c = &r->a.cfg;
    /* The holds the crowd left live lapse within their TTL; wait for them
     * (plus two sweeps) when this run owns the events, so the snapshot does
     * not move under the verdict. */
    int64_t latest_hold_ms = 0;
    bool owned = r->ledger.event_count > 0 && r->ledger.events[0].owned;
    for (uint32_t u = 0; u < r->ledger.crowd_count; u++) {
        const struct br_rush_user *us = &r->ledger.users[u];
        for (uint8_t b = 0; b < us->booking_count; b++) {
            const struct br_rush_booking *bk = &us->bookings[b];
            if (bk->last_status == BR_HOLD_HELD && !bk->cancelled_by_us &&
                bk->expires_at_ms > latest_hold_ms) {
                latest_hold_ms = bk->expires_at_ms;
            }
        }
    }
    int64_t hold_wait_us =
        owned && latest_hold_ms > 0 ? (latest_hold_ms + 2000 - br_rush_wall_ms()) * 1000 : 0;
    int64_t bound_us = (int64_t)c->settle_ms * 1000;
    if (hold_wait_us > bound_us) {
        bound_us = hold_wait_us;
    }
    int64_t end = t0 + bound_us;
    if (end > r->hard_deadline_us) {
        end = r->hard_deadline_us;
    }
    for (;;) {
        uint32_t pending = 0;
        for (uint32_t u = 0; u < r->ledger.crowd_count; u++) {
            struct br_rush_user *us = &r->ledger.users[u];
            for (uint8_t b = 0; b < us->booking_count; b++) {
                if (!booking_pending(&us->bookings[b])) {
                    continue;
                }
                pending++;
                struct poll_req *pq = malloc(sizeof *pq);
                if (pq == NULL) {
                    continue;
                }
                *pq = (struct poll_req){r, u, b};
                char path[64];
                snprintf(path, sizeof path, "/api/v1/bookings/%" PRIu64, us->bookings[b].id);
                struct br_rush_req q = {.route = BR_RR_BOOKING_GET, .pool = BR_RUSH_POOL_CROWD,
                                        .target = UINT32_MAX, .method = "GET", .path = path,
                                        .token = us->token, .timeout_ms = c->request_timeout_ms};
                if (br_rush_net_send(r->net, &q, poll_answer, pq) == BR_OK) {
                    polls_inflight++;
                } else {
                    free(pq);
                }
            }
        }
        while (polls_inflight > 0) {
            (void)br_rush_net_run(r->net, br_rush_now_us() + 100000, polls_done, NULL);
        }
        int64_t now = br_rush_now_us();
        bool holds_left = now - t0 < hold_wait_us;
        if ((pending == 0 && !holds_left) || now >= end) {
            break;
        }
        int64_t next = now + 500000;
        (void)br_rush_net_run(r->net, next < end ? next : end, never_done, NULL);
    }
    return (double)(br_rush_now_us() - t0) / 1e6;
}

/* The crowd phase: until every user is terminal or --duration. */
static double crowd_phase(struct run *r, int64_t t0_us, int64_t open_us)
{
    const struct br_rush_config *c = &r->a.cfg;
    int64_t end = t0_us + (int64_t)c->duration_s * 1000000;
    if (end > r->hard_deadline_us) {
        end = r->hard_deadline_us;
    }
    /* The crowd sets the spike and storm windows itself (rush_crowd.h). */
    br_rush_crowd_start(r->crowd, t0_us, open_us);
    int64_t next_tick = t0_us + SAMPLE_PERIOD_US;
    sample_send(r);
    while (!br_rush_crowd_done(r->crowd)) {
        int64_t now = br_rush_now_us();
        if (now >= end) {
            break;
        }
        if (now >= next_tick) {
            struct br_rush_progress p;
            br_rush_crowd_progress(r->crowd, &p);
            br_rush_meter_streams(r->meter, br_rush_net_streams_open(r->net));
            br_rush_meter_tick(r->meter, now, &p, c->quiet ? NULL : stderr);
            sample_send(r);
            next_tick += SAMPLE_PERIOD_US;
            if (next_tick < now) {
                next_tick = now + SAMPLE_PERIOD_US;
            }
        }
        int64_t until = next_tick < end ? next_tick : end;
        if (br_rush_net_run(r->net, until, br_rush_crowd_done, r->crowd) != BR_OK) {
            fprintf(stderr, "bookingrush rush: the event loop failed\n");
            break;
        }
    }
    br_rush_crowd_stop(r->crowd);
    r->crowd_end_wall_ms = br_rush_wall_ms();
    /* In-flight requests complete (bounded by their timeout); samples too. */
    int64_t drain_end = br_rush_now_us() + (int64_t)c->request_timeout_ms * 1000 + 1000000;
    while (!br_rush_crowd_idle(r->crowd) && br_rush_now_us() < drain_end) {
        (void)br_rush_net_run(r->net, br_rush_now_us() + 100000, br_rush_crowd_idle, r->crowd);
    }
    while (!samples_done(r) && br_rush_now_us() < drain_end) {
        (void)br_rush_net_run(r->net, br_rush_now_us() + 100000, samples_done, r);
    }
    return (double)(br_rush_now_us() - t0_us) / 1e6;
}

/* Streams the crowd may hold at once: one per user, plus the extra tabs of
 * the users drawn to open several (the expected count + 4 sigma). */
static uint64_t streams_needed(const struct br_rush_config *c, const struct br_scenario *scn)
{
    double f = scn->crowd.tabs_fraction, n = (double)c->users;
    double extra = scn->crowd.tabs_max > 1 ? (double)(scn->crowd.tabs_max - 1) : 0;
    double tabs = f > 0 ? (n * f + 4.0 * sqrt(n * f * (1.0 - f)) + 1.0) * extra : 0;
    return (uint64_t)c->users + (uint64_t)ceil(tabs) + 16;
}

/* The descriptor budget: raise the soft limit to the hard one, then check
 * that the run fits. 0, or BR_CLI_EXIT_USAGE with the numbers printed. */
static int fd_budget(const struct br_rush_config *c, const struct br_scenario *scn)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        return 0;
    }
    if (rl.rlim_cur < rl.rlim_max) {
        rlim_t old = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
            rl.rlim_cur = old;
        }
    }
    uint64_t streams = streams_needed(c, scn);
    uint64_t need = streams + c->connections + c->login_storm + 64;
    if (c->prepare_only) {
        need = (uint64_t)c->connections + 64;
    }
    if (rl.rlim_cur != RLIM_INFINITY && need > (uint64_t)rl.rlim_cur) {
        return br_cli_usage_error(CMD,
                                  "%u users need %" PRIu64 " streams (tabs included) + %u "
                                  "connections + %u storm + 64 = %" PRIu64 " descriptors, but the "
                                  "limit is %llu (ulimit -n; hard %llu)",
                                  c->users, streams, c->connections, c->login_storm, need,
                                  (unsigned long long)rl.rlim_cur,
                                  (unsigned long long)rl.rlim_max);
    }
    return 0;
}

/* The command line that repeats the run. */
static void reproduce_line(const struct run *r, char *out, size_t cap)
{
    const struct br_rush_config *c = &r->a.cfg;
    int n = snprintf(out, cap,
                     "bookingrush rush %s --target URL --seed %" PRIu64
                     " --users %u --duration %u --time-scale %.6g --open-in %.3g",
                     c->scenario_path, c->seed, c->users, c->duration_s, c->time_scale,
                     (double)c->open_in_ms / 1000.0);
    if (n > 0 && (size_t)n < cap && c->login_storm > 0) {
        n += snprintf(out + n, cap - (size_t)n, " --login-storm %u --storm-accounts %s",
                      c->login_storm,
                      c->storm_kind == BR_RUSH_STORM_UNKNOWN ? "unknown" : "registered");
    }
    if (n > 0 && (size_t)n < cap && c->stream_drops > 0) {
        n += snprintf(out + n, cap - (size_t)n, " --stream-drops %g", c->stream_drops);
    }
    if (n > 0 && (size_t)n < cap && c->event_id != 0) {
        snprintf(out + n, cap - (size_t)n, " --event %" PRIu64, c->event_id);
    }
}

static int run_phases(struct run *r)
{
    struct br_rush_config *c = &r->a.cfg;
    char why[BR_RUSH_WHY_MAX];
    double phase_s[BR_RUSH_PHASE_COUNT] = {0};

    r->phase = "probe";
    if (br_rush_prep_probe(r->net, c, r->backend, r->hard_deadline_us, why) != BR_OK) {
        return target_failed(r, why);
    }
    if (!c->prepare_only) {
        r->phase = "administrator login";
        if (br_rush_prep_admin(r->net, c, r->admin_token, r->hard_deadline_us, why) != BR_OK) {
            return target_failed(r, why);
        }
    }
    if (!c->quiet) {
        fprintf(stderr, "rush: %s against %s (%s)%s, %u users, %u storm accounts (%s), prefix %s\n",
                c->scenario_path, c->targets[0], r->backend, c->target_count > 1 ? " and more" : "",
                c->users, c->login_storm,
                c->storm_kind == BR_RUSH_STORM_UNKNOWN ? "unknown" : "registered", c->user_prefix);
    }
    r->phase = "preparation";
    int64_t prep_deadline = r->start_us + (int64_t)PREPARE_MAX_S * 1000000;
    struct br_rush_prep_stats st;
    if (br_rush_prep_accounts(r->net, c, &r->ledger, prep_deadline, &st, why) != BR_OK) {
        return target_failed(r, why);
    }
    phase_s[BR_RUSH_PHASE_PREPARE] = st.seconds;
    if (c->prepare_only) {
        return BR_RUSH_EXIT_OK;
    }
    /* Events open --open-in from the end of the preparation. */
    r->phase = "event setup";
    int64_t open_wall_ms = br_rush_wall_ms() + c->open_in_ms;
    int64_t t0_us = br_rush_now_us();
    if (br_rush_prep_events(r->net, c, r->scn, r->admin_token, &r->ledger, open_wall_ms,
                            r->hard_deadline_us, why) != BR_OK) {
        return target_failed(r, why);
    }
    for (uint32_t e = 0; e < r->ledger.event_count; e++) {
        uint32_t ql = 0, adm = 0;
        if (br_rush_prep_stats_read(r->net, r->admin_token, r->ledger.events[e].id, &ql, &adm,
                                    r->hard_deadline_us, why) != BR_OK) {
            return target_failed(r, why);
        }
        r->ledger.events[e].admitted_baseline = adm;
        r->admitted[e] = adm;
        r->queue_length[e] = ql;
    }
    if (c->event_id != 0) {
        /* An existing event opens when it opens; arrivals are scheduled
         * around that (or now, when it is already open). */
        int64_t opens = r->ledger.events[0].opens_at_wall_ms;
        int64_t delta_ms = opens - br_rush_wall_ms();
        c->open_in_ms = delta_ms > 0 ? (uint32_t)delta_ms : 0;
    }
    int64_t open_us = t0_us + (int64_t)c->open_in_ms * 1000;
    if (br_rush_meter_new(&r->meter, t0_us) != BR_OK ||
        br_rush_crowd_new(&r->crowd, c, r->scn, &r->ledger, r->net, r->meter) != BR_OK) {
        fprintf(stderr, "bookingrush rush: cannot set up the crowd (out of memory?)\n");
        return BR_RUSH_EXIT_TARGET;
    }
    br_rush_crowd_set_password(r->crowd, br_rush_prep_password);
    uint32_t baseline = 0;
    for (uint32_t e = 0; e < r->ledger.event_count; e++) {
        baseline += r->ledger.events[e].admitted_baseline;
    }
    br_rush_meter_admitted_baseline(r->meter, baseline);
    r->phase = "crowd";
    phase_s[BR_RUSH_PHASE_CROWD] = crowd_phase(r, t0_us, open_us);
    if (past_deadline(r)) {
        return target_failed(r, "the run's hard deadline passed");
    }
    /* The queue positions now, as the crowd leaves (br_rush_positions_read). */
    struct br_rush_snapshot snap;
    memset(&snap, 0, sizeof snap);
    if (br_rush_positions_read(r->net, &r->ledger, &snap, r->hard_deadline_us) != BR_OK) {
        br_rush_snapshot_free(&snap);
        return target_failed(r, "the queue positions at the crowd's end could not be read");
    }
    r->phase = "settle";
    phase_s[BR_RUSH_PHASE_SETTLE] = settle(r);
    r->phase = "snapshot";
    int64_t v0 = br_rush_now_us();
    if (br_rush_snapshot_read(r->net, r->admin_token, &r->ledger, &snap, r->hard_deadline_us) !=
        BR_OK) {
        br_rush_snapshot_free(&snap);
        return target_failed(r, "the final snapshot could not be read");
    }
    snap.crowd_end_wall_ms = r->crowd_end_wall_ms;
    struct br_rush_verdict *v = calloc(1, sizeof *v);
    if (v == NULL) {
        br_rush_snapshot_free(&snap);
        return BR_RUSH_EXIT_TARGET;
    }
    br_rush_verdict_check(&r->ledger, &snap, v);
    br_rush_snapshot_free(&snap);
    phase_s[BR_RUSH_PHASE_VERDICT] = (double)(br_rush_now_us() - v0) / 1e6;

    char repro[600];
    reproduce_line(r, repro, sizeof repro);
    struct br_rush_result res = {.cfg = c, .ledger = &r->ledger, .meter = r->meter,
                                 .verdict = v, .backend = r->backend, .reproduce = repro};
    memcpy(res.phase_s, phase_s, sizeof phase_s);
    int rc = br_rush_verdict_ok(v) ? BR_RUSH_EXIT_OK : BR_RUSH_EXIT_VIOLATION;
    if (c->json) {
        json_t *j = br_rush_report_json(&res);
        if (j == NULL || json_dumpf(j, stdout, JSON_COMPACT) != 0) {
            fprintf(stderr, "bookingrush rush: cannot write the JSON report\n");
        }
        fputc('\n', stdout);
        json_decref(j);
    } else {
        (void)br_rush_report_text(stdout, &res);
    }
    fflush(stdout);
    free(v);
    return rc;
}

int br_rush_main(int argc, char **argv)
{
    struct run *r = calloc(1, sizeof *r);
    if (r == NULL) {
        return BR_RUSH_EXIT_TARGET;
    }
    int prc = parse_args(argc, argv, &r->a);
    if (prc != 0) {
        free(r);
        return prc == 1 ? BR_RUSH_EXIT_OK : BR_RUSH_EXIT_USAGE;
    }
    struct br_rush_config *c = &r->a.cfg;
    r->start_us = br_rush_now_us();
    r->scn = malloc(sizeof *r->scn);
    char err[600];
    if (r->scn == NULL || br_scenario_load(r->scn, c->scenario_path, err, sizeof err) != BR_OK) {
        fprintf(stderr, "bookingrush rush: %s\n", r->scn == NULL ? "out of memory" : err);
        free(r->scn);
        free(r);
        return BR_RUSH_EXIT_USAGE;
    }
    struct br_scenario *scn = r->scn;
    if (!c->seed_set) {
        c->seed = scn->seed;
    }
    if (c->users == 0) {
        c->users = scn->crowd.users;
    }
    if (c->users == 0 || c->users + c->login_storm > BR_RUSH_USERS_MAX) {
        (void)br_cli_usage_error(CMD, "%u users + %u storm accounts: at most %u in all", c->users,
                                 c->login_storm, BR_RUSH_USERS_MAX);
        free(scn);
        free(r);
        return BR_RUSH_EXIT_USAGE;
    }
    scn->crowd.users = c->users; /* the split over events follows --users */
    if (c->event_id != 0 && scn->event_count > 1) {
        scn->event_count = 1; /* --event: the first event's crowd behaviour, all users */
    }
    /* Early window + tail + 3 spike decays fit into 0.8 x --duration (rush_plan.c); both
     * stored back, so the events, the crowd and the reproduce line agree. */
    br_rush_plan_timing(scn, c, &c->time_scale, &c->open_in_ms);
    if (!r->a.prefix_set) {
        snprintf(c->user_prefix, sizeof c->user_prefix, "rush-%" PRIu64 "-%lld", c->seed,
                 (long long)time(NULL));
    }
    if (c->storm_window_ms == 0) {
        c->storm_window_ms = 2000;
    }
    int frc = fd_budget(c, scn);
    if (frc != 0) {
        free(scn);
        free(r);
        return BR_RUSH_EXIT_USAGE;
    }
    signal(SIGPIPE, SIG_IGN);
    r->hard_deadline_us = r->start_us +
                          ((int64_t)PREPARE_MAX_S + c->duration_s + 60) * 1000000 +
                          (int64_t)c->settle_ms * 1000;
    r->ledger.crowd_count = c->users;
    r->ledger.user_count = c->users + c->login_storm;
    r->ledger.users = calloc(r->ledger.user_count, sizeof *r->ledger.users);
    for (uint32_t t = 0; t < c->target_count; t++) {
        r->target_ptrs[t] = c->targets[t];
    }
    struct br_rush_net_config nc = {
        .targets = r->target_ptrs, .target_count = c->target_count,
        .pool_conns = {c->connections, c->login_storm == 0 ? 1
                                       : c->login_storm < 256 ? c->login_storm
                                                              : 256,
                       4},
        .streams_max = c->prepare_only ? 1 : (uint32_t)streams_needed(c, scn),
        .timers_max = br_rush_crowd_timers(c->users + c->login_storm) + 64,
        .connect_timeout_ms = 3000};
    int rc = BR_RUSH_EXIT_TARGET;
    if (r->ledger.users == NULL || br_rush_net_new(&r->net, &nc, on_timer, r) != BR_OK) {
        fprintf(stderr, "bookingrush rush: cannot set up the event loop for %u users\n", c->users);
    } else {
        for (uint32_t u = 0; u < r->ledger.user_count; u++) {
            r->ledger.users[u].event_ix =
                u < c->users && c->event_id == 0 ? br_scenario_event_of_user(scn, u) : 0;
        }
        rc = run_phases(r);
    }
    if (r->crowd != NULL) {
        br_rush_crowd_free(r->crowd);
    }
    if (r->meter != NULL) {
        br_rush_meter_free(r->meter);
    }
    if (r->net != NULL) {
        br_rush_net_free(r->net);
    }
    free(r->ledger.users);
    free(scn);
    free(r);
    return rc;
}
