/* metrics.c -- counters, histograms and the Prometheus exposition (metrics.h). */
#define _POSIX_C_SOURCE 200809L

#include "server/metrics.h"

#include <dirent.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "adapters/cli.h"
#include "core/engine.h"
#include "core/err.h"
#include "core/panic.h"

static const unsigned STATUSES[] = {200, 201, 204, 400, 401, 403, 404, 405, 409,
                                    410, 413, 415, 422, 429, 431, 500, 503};
#define STATUS_COUNT (sizeof STATUSES / sizeof STATUSES[0])
#define STATUS_SLOTS (STATUS_COUNT + 1) /* + other */

/* Upper bounds in microseconds; the last bucket is +Inf. */
static const int64_t BUCKETS_US[] = {250,   500,    1000,   2500,   5000,    10000,  25000,
                                     50000, 100000, 250000, 500000, 1000000, 2500000};
#define BUCKET_COUNT (sizeof BUCKETS_US / sizeof BUCKETS_US[0])

struct route_cells {
    atomic_uint_fast64_t status[STATUS_SLOTS];
    atomic_uint_fast64_t bucket[BUCKET_COUNT + 1];
    atomic_uint_fast64_t sum_us;
};

struct br_metrics {
    const char *const *names;
    unsigned count;
    atomic_uint_fast64_t limited_user;
    atomic_uint_fast64_t limited_ip;
    atomic_uint_fast64_t webhooks[BR_WEBHOOK_RESULT_COUNT];
    struct route_cells routes[BR_METRICS_ROUTES_MAX];
    struct br_backend *backend; /* its ops->metrics renders its own families; may be NULL */
};

int br_metrics_new(struct br_metrics **out, const char *const *names, unsigned count)
{
    BR_ASSERT(count <= BR_METRICS_ROUTES_MAX);
    struct br_metrics *m = calloc(1, sizeof *m);
    if (m == NULL) {
        return BR_E_IO;
    }
    m->names = names;
    m->count = count;
    *out = m;
    return BR_OK;
}

void br_metrics_free(struct br_metrics *m)
{
    free(m);
}

void br_metrics_observe(struct br_metrics *m, unsigned route, unsigned status, int64_t dur_us)
{
    if (route >= m->count) {
        return;
    }
    struct route_cells *c = &m->routes[route];
    unsigned si = STATUS_COUNT;
    for (unsigned i = 0; i < STATUS_COUNT; i++) {
        if (STATUSES[i] == status) {
            si = i;
            break;
        }
    }
    atomic_fetch_add_explicit(&c->status[si], 1, memory_order_relaxed);
    unsigned b = BUCKET_COUNT;
    for (unsigned i = 0; i < BUCKET_COUNT; i++) {
        if (dur_us <= BUCKETS_US[i]) {
            b = i;
            break;
        }
    }
    atomic_fetch_add_explicit(&c->bucket[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&c->sum_us, (uint_fast64_t)(dur_us > 0 ? dur_us : 0),
                              memory_order_relaxed);
}

void br_metrics_rate_limited(struct br_metrics *m, int by_user)
{
    atomic_fetch_add_explicit(by_user ? &m->limited_user : &m->limited_ip, 1,
                              memory_order_relaxed);
}

struct sbuf {
    char *p;
    size_t len;
    size_t cap;
    bool failed;
};

/* Appends; the buffer doubles when needed. On failure b->failed is set
 * and later appends do nothing (the render then returns NULL). */
static void sb_vprintf(struct sbuf *b, const char *fmt, va_list ap0)
{
    for (int round = 0; round < 2 && !b->failed; round++) {
        va_list ap;
        va_copy(ap, ap0);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = true;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap * 2 + (size_t)n + 1;
        char *np = realloc(b->p, cap);
        if (np == NULL) {
            b->failed = true;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
}

static void sb_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sb_vprintf(b, fmt, ap);
    va_end(ap);
}

/* A backend's view of the render in progress (backend.h). */
struct br_metrics_sink {
    struct sbuf *b;
};

void br_metrics_printf(struct br_metrics_sink *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sb_vprintf(out->b, fmt, ap);
    va_end(ap);
}

void br_metrics_set_backend(struct br_metrics *m, struct br_backend *b)
{
    m->backend = b;
}

/* ---- process metrics (the names every Prometheus client library uses) ---- */

/* Fields of /proc/self/stat this file reads (proc(5)). */
struct proc_stat {
    double cpu_s;        /* utime + stime */
    double start_ticks;  /* since boot, in clock ticks */
    double vsize_bytes;
    double rss_bytes;
};

static bool read_proc_stat(struct proc_stat *ps)
{
    char buf[1024];
    FILE *f = fopen("/proc/self/stat", "re");
    if (f == NULL) {
        return false;
    }
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* The command name (field 2) may hold spaces and parentheses: the
     * fields after it start at the last ')'. field[k] is field k of proc(5). */
    char *p = strrchr(buf, ')');
    if (p == NULL) {
        return false;
    }
    double field[25] = {0};
    char *save = NULL;
    int k = 3;
    for (char *t = strtok_r(p + 1, " ", &save); t != NULL && k < 25;
         t = strtok_r(NULL, " ", &save), k++) {
        field[k] = strtod(t, NULL); /* field 3, the state letter, reads as 0 */
    }
    if (k < 25) {
        return false;
    }
    long tick = sysconf(_SC_CLK_TCK);
    long page = sysconf(_SC_PAGESIZE);
    BR_ASSERT(tick > 0 && page > 0);
    ps->cpu_s = (field[14] + field[15]) / (double)tick;
    ps->start_ticks = field[22];
    ps->vsize_bytes = field[23];
    ps->rss_bytes = field[24] * (double)page;
    return true;
}

/* Seconds since the epoch when the machine booted (/proc/stat btime), 0 if unknown. */
static double boot_time_s(void)
{
    FILE *f = fopen("/proc/stat", "re");
    if (f == NULL) {
        return 0;
    }
    char line[256];
    double btime = 0;
    while (fgets(line, sizeof line, f) != NULL) { /* bounded by the file's lines */
        if (strncmp(line, "btime ", 6) == 0) {
            btime = strtod(line + 6, NULL);
            break;
        }
    }
    fclose(f);
    return btime;
}

static unsigned open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL) {
        return 0;
    }
    unsigned n = 0;
    for (struct dirent *e = readdir(d); e != NULL; e = readdir(d)) { /* bounded by the fds */
        n += e->d_name[0] != '.';
    }
    closedir(d);
    return n;
}

static void render_process(struct sbuf *b)
{
    struct proc_stat ps;
    if (!read_proc_stat(&ps)) {
        return; /* not Linux: the families are left out, never invented */
    }
    struct rlimit rl;
    double max_fds = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY
                         ? (double)rl.rlim_cur
                         : -1;
    long tick = sysconf(_SC_CLK_TCK);
    sb_printf(b,
              "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n"
              "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total %.2f\n"
              "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
              "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %.0f\n"
              "# HELP process_virtual_memory_bytes Virtual memory size in bytes.\n"
              "# TYPE process_virtual_memory_bytes gauge\nprocess_virtual_memory_bytes %.0f\n"
              "# HELP process_open_fds Number of open file descriptors.\n"
              "# TYPE process_open_fds gauge\nprocess_open_fds %u\n"
              "# HELP process_start_time_seconds Start time of the process since unix epoch in "
              "seconds.\n"
              "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds %.2f\n",
              ps.cpu_s, ps.rss_bytes, ps.vsize_bytes, open_fds(),
              boot_time_s() + ps.start_ticks / (double)tick);
    if (max_fds >= 0) {
        sb_printf(b,
                  "# HELP process_max_fds Maximum number of open file descriptors.\n"
                  "# TYPE process_max_fds gauge\nprocess_max_fds %.0f\n",
                  max_fds);
    }
}

/* "POST /api/v1/x" -> method and path parts for labels. */
static void split_name(const char *name, char *method, size_t mcap, const char **path)
{
    const char *sp = strchr(name, ' ');
    int n = sp != NULL ? (int)(sp - name) : 0;
    snprintf(method, mcap, "%.*s", n, name);
    *path = sp != NULL ? sp + 1 : name;
}

/* The engine's fixed-size tables: what is reserved, what is used, and the
 * answers refused because a table was full (CAPACITY_EXHAUSTED). */
static void render_tables(struct sbuf *b, const struct br_api_gauges *g)
{
    sb_printf(b,
              "# HELP br_capacity_exhausted_total Commands refused with CAPACITY_EXHAUSTED, by "
              "the engine table that was full.\n"
              "# TYPE br_capacity_exhausted_total counter\n");
    for (unsigned t = 0; t < BR_TABLE_COUNT; t++) {
        sb_printf(b, "br_capacity_exhausted_total{table=\"%s\"} %" PRIu64 "\n", br_table_name(t),
                  g->capacity_exhausted[t]);
    }
    sb_printf(b, "# HELP br_engine_table_rows Rows in use in an engine table.\n"
                 "# TYPE br_engine_table_rows gauge\n");
    for (unsigned t = 0; t < BR_TABLE_COUNT; t++) {
        if (g->table_rows_max[t] != 0) {
            sb_printf(b, "br_engine_table_rows{table=\"%s\"} %u\n", br_table_name(t),
                      g->table_rows[t]);
        }
    }
    sb_printf(b, "# HELP br_engine_table_rows_max Rows an engine table holds (fixed by the "
                 "journal).\n"
                 "# TYPE br_engine_table_rows_max gauge\n");
    for (unsigned t = 0; t < BR_TABLE_COUNT; t++) {
        if (g->table_rows_max[t] != 0) {
            sb_printf(b, "br_engine_table_rows_max{table=\"%s\"} %u\n", br_table_name(t),
                      g->table_rows_max[t]);
        }
    }
    sb_printf(b,
              "# HELP br_engine_reserved_bytes Memory reserved for the engine's tables (resident "
              "only as rows are used).\n"
              "# TYPE br_engine_reserved_bytes gauge\nbr_engine_reserved_bytes %" PRIu64 "\n",
              g->engine_bytes);
}

/* Requests by route and status, and their latency histogram. */
static void render_requests(struct sbuf *b, struct br_metrics *m)
{
    sb_printf(b, "# HELP br_http_requests_total HTTP requests answered, by route and status.\n"
                  "# TYPE br_http_requests_total counter\n");
    for (unsigned r = 0; r < m->count; r++) {
        char method[8];
        const char *path;
        split_name(m->names[r], method, sizeof method, &path);
        for (unsigned s = 0; s < STATUS_SLOTS; s++) {
            uint64_t v = atomic_load_explicit(&m->routes[r].status[s], memory_order_relaxed);
            if (v == 0) {
                continue;
            }
            char st[8];
            if (s < STATUS_COUNT) {
                snprintf(st, sizeof st, "%u", STATUSES[s]);
            } else {
                snprintf(st, sizeof st, "other");
            }
            sb_printf(b, "br_http_requests_total{route=\"%s\",method=\"%s\",status=\"%s\"} %" PRIu64
                          "\n",
                      path, method, st, v);
        }
    }
    sb_printf(b, "# HELP br_http_request_duration_seconds Time from request start to answer.\n"
                  "# TYPE br_http_request_duration_seconds histogram\n");
    for (unsigned r = 0; r < m->count; r++) {
        char method[8];
        const char *path;
        split_name(m->names[r], method, sizeof method, &path);
        uint64_t cum = 0;
        uint64_t counts[BUCKET_COUNT + 1];
        for (unsigned i = 0; i <= BUCKET_COUNT; i++) {
            counts[i] = atomic_load_explicit(&m->routes[r].bucket[i], memory_order_relaxed);
            cum += counts[i];
        }
        if (cum == 0) {
            continue;
        }
        uint64_t run = 0;
        for (unsigned i = 0; i < BUCKET_COUNT; i++) {
            run += counts[i];
            sb_printf(b,
                      "br_http_request_duration_seconds_bucket{route=\"%s\",method=\"%s\",le=\"%g\"} "
                      "%" PRIu64 "\n",
                      path, method, (double)BUCKETS_US[i] / 1e6, run);
        }
        sb_printf(b,
                  "br_http_request_duration_seconds_bucket{route=\"%s\",method=\"%s\",le=\"+Inf\"} "
                  "%" PRIu64 "\n",
                  path, method, cum);
        sb_printf(b, "br_http_request_duration_seconds_sum{route=\"%s\",method=\"%s\"} %.6f\n", path,
                  method,
                  (double)atomic_load_explicit(&m->routes[r].sum_us, memory_order_relaxed) / 1e6);
        sb_printf(b, "br_http_request_duration_seconds_count{route=\"%s\",method=\"%s\"} %" PRIu64
                      "\n",
                  path, method, cum);
    }
}

void br_metrics_webhook(struct br_metrics *m, enum br_webhook_result r)
{
    if (m != NULL && (unsigned)r < BR_WEBHOOK_RESULT_COUNT) {
        atomic_fetch_add_explicit(&m->webhooks[r], 1, memory_order_relaxed);
    }
}

static void render_webhooks(struct sbuf *b, struct br_metrics *m)
{
    static const char *const names[BR_WEBHOOK_RESULT_COUNT] = {
        "stored", "duplicate", "ignored", "unauthorized", "invalid", "unavailable"};
    sb_printf(b, "# HELP br_webhooks_total Payment webhooks received, by what became of them.\n"
                 "# TYPE br_webhooks_total counter\n");
    for (unsigned i = 0; i < BR_WEBHOOK_RESULT_COUNT; i++) {
        sb_printf(b, "br_webhooks_total{result=\"%s\"} %" PRIu64 "\n", names[i],
                  (uint64_t)atomic_load_explicit(&m->webhooks[i], memory_order_relaxed));
    }
}

/* The server's own counters, then the backend's own families (the
 * embedded backend: its journal's), in the order /metrics always had. */
static void render_server(struct sbuf *b, struct br_metrics *m, const struct br_api_gauges *g,
                          const struct br_metrics_extra *x)
{
    sb_printf(b,
              "# HELP br_rate_limited_total Requests refused by a rate limiter.\n"
              "# TYPE br_rate_limited_total counter\n"
              "br_rate_limited_total{scope=\"user\"} %" PRIu64 "\n"
              "br_rate_limited_total{scope=\"ip\"} %" PRIu64 "\n",
              (uint64_t)atomic_load(&m->limited_user), (uint64_t)atomic_load(&m->limited_ip));
    sb_printf(b,
              "# HELP br_presence_dropped_total Waiting-room presence reports dropped because "
              "the pending table was full (a lapse can only come later than it should).\n"
              "# TYPE br_presence_dropped_total counter\nbr_presence_dropped_total %" PRIu64 "\n",
              x->presence_dropped);
    sb_printf(b,
              "# HELP br_sse_streams Queue position streams (SSE) open.\n"
              "# TYPE br_sse_streams gauge\nbr_sse_streams %u\n"
              "# HELP br_http_inflight Requests received and not yet answered.\n"
              "# TYPE br_http_inflight gauge\nbr_http_inflight %u\n"
              "# HELP br_http_awaiting Requests read whose answer is not out yet (streams "
              "until their headers).\n"
              "# TYPE br_http_awaiting gauge\nbr_http_awaiting %u\n"
              "# HELP br_hash_yield_seconds_total Time password-hash threads waited for the "
              "sale's requests to be answered first.\n"
              "# TYPE br_hash_yield_seconds_total counter\nbr_hash_yield_seconds_total %.3f\n"
              "# HELP br_commands_applied_total Commands the engine applied since start, "
              "the journal's replay included.\n"
              "# TYPE br_commands_applied_total counter\nbr_commands_applied_total %" PRIu64 "\n",
              x->sse_streams, x->inflight, x->awaiting, (double)x->hash_yielded_ms / 1000.0, g->commands);
    render_webhooks(b, m);
    if (m->backend != NULL && m->backend->ops->metrics != NULL) {
        struct br_metrics_sink sink = {.b = b};
        m->backend->ops->metrics(m->backend, &sink);
    }
}

/* The sale: per event queue and passes, per zone seats. */
static void render_sale(struct sbuf *b, const struct br_api_gauges *g)
{
    static const char *const metric[] = {"br_queue_length", "br_admitted_total", "br_active_passes"};
    static const char *const help[] = {"Users waiting in an event's queue.",
                                       "Passes issued for an event.",
                                       "Passes issued and not yet used or expired."};
    static const char *const type[] = {"gauge", "counter", "gauge"};
    for (unsigned k = 0; k < 3; k++) {
        sb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", metric[k], help[k], metric[k], type[k]);
        for (uint32_t i = 0; i < g->event_count; i++) {
            uint32_t v = k == 0 ? g->events[i].queue_length
                       : k == 1 ? g->events[i].admitted
                                : g->events[i].active_passes;
            sb_printf(b, "%s{event=\"%" PRIu64 "\"} %u\n", metric[k], g->events[i].id, v);
        }
    }
    static const char *const zone_help[] = {
        "# HELP br_zone_capacity Seats in a zone.\n# TYPE br_zone_capacity gauge\n",
        "# HELP br_zone_held Seats in live holds.\n# TYPE br_zone_held gauge\n",
        "# HELP br_zone_sold Seats in confirmed bookings.\n# TYPE br_zone_sold gauge\n",
        "# HELP br_zone_available Seats neither held nor sold.\n# TYPE br_zone_available gauge\n"};
    static const char *const zone_metric[] = {"br_zone_capacity", "br_zone_held", "br_zone_sold",
                                              "br_zone_available"};
    for (unsigned k = 0; k < 4; k++) {
        sb_printf(b, "%s", zone_help[k]);
        for (uint32_t i = 0; i < g->event_count; i++) {
            for (uint32_t z = 0; z < g->events[i].zone_count && z < BR_EVENT_ZONES_MAX; z++) {
                uint32_t cap = g->events[i].capacity[z];
                uint32_t used = g->events[i].held[z] + g->events[i].sold[z];
                uint32_t v = k == 0 ? cap
                           : k == 1 ? g->events[i].held[z]
                           : k == 2 ? g->events[i].sold[z]
                                    : (used < cap ? cap - used : 0);
                sb_printf(b, "%s{event=\"%" PRIu64 "\",zone=\"%u\"} %u\n", zone_metric[k],
                          g->events[i].id, z + 1, v);
            }
        }
    }
}

char *br_metrics_render(struct br_metrics *m, const struct br_api_gauges *g,
                        const struct br_metrics_extra *x, size_t *len)
{
    struct sbuf b = {.p = malloc(16384), .len = 0, .cap = 16384, .failed = false};
    if (b.p == NULL) {
        return NULL;
    }
    render_process(&b);
    sb_printf(&b,
              "# HELP br_build_info The version and commit this server was built from.\n"
              "# TYPE br_build_info gauge\nbr_build_info{version=\"%s\",commit=\"%s\"} 1\n",
              br_cli_version(), br_cli_commit());
    render_requests(&b, m);
    render_server(&b, m, g, x);
    render_tables(&b, g);
    render_sale(&b, g);
    if (b.failed) {
        free(b.p);
        return NULL;
    }
    *len = b.len;
    return b.p;
}
