/* metrics.c -- counters, histograms and the Prometheus exposition (metrics.h). */
#define _POSIX_C_SOURCE 200809L

#include "server/metrics.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    struct route_cells routes[BR_METRICS_ROUTES_MAX];
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

static void sb_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
    for (int round = 0; round < 2 && !b->failed; round++) {
        va_list ap;
        va_start(ap, fmt);
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

/* "POST /api/v1/x" -> method and path parts for labels. */
static void split_name(const char *name, char *method, size_t mcap, const char **path)
{
    const char *sp = strchr(name, ' ');
    int n = sp != NULL ? (int)(sp - name) : 0;
    snprintf(method, mcap, "%.*s", n, name);
    *path = sp != NULL ? sp + 1 : name;
}

char *br_metrics_render(struct br_metrics *m, const struct br_api_gauges *g,
                        const struct br_metrics_extra *x, size_t *len)
{
    struct sbuf b = {.p = malloc(16384), .len = 0, .cap = 16384, .failed = false};
    if (b.p == NULL) {
        return NULL;
    }
    sb_printf(&b, "# HELP br_http_requests_total HTTP requests answered, by route and status.\n"
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
            sb_printf(&b, "br_http_requests_total{route=\"%s\",method=\"%s\",status=\"%s\"} %" PRIu64
                          "\n",
                      path, method, st, v);
        }
    }
    sb_printf(&b, "# HELP br_http_request_duration_seconds Time from request start to answer.\n"
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
            sb_printf(&b,
                      "br_http_request_duration_seconds_bucket{route=\"%s\",method=\"%s\",le=\"%g\"} "
                      "%" PRIu64 "\n",
                      path, method, (double)BUCKETS_US[i] / 1e6, run);
        }
        sb_printf(&b,
                  "br_http_request_duration_seconds_bucket{route=\"%s\",method=\"%s\",le=\"+Inf\"} "
                  "%" PRIu64 "\n",
                  path, method, cum);
        sb_printf(&b, "br_http_request_duration_seconds_sum{route=\"%s\",method=\"%s\"} %.6f\n", path,
                  method,
                  (double)atomic_load_explicit(&m->routes[r].sum_us, memory_order_relaxed) / 1e6);
        sb_printf(&b, "br_http_request_duration_seconds_count{route=\"%s\",method=\"%s\"} %" PRIu64
                      "\n",
                  path, method, cum);
    }
    sb_printf(&b,
              "# HELP br_rate_limited_total Requests refused by a rate limiter.\n"
              "# TYPE br_rate_limited_total counter\n"
              "br_rate_limited_total{scope=\"user\"} %" PRIu64 "\n"
              "br_rate_limited_total{scope=\"ip\"} %" PRIu64 "\n",
              (uint64_t)atomic_load(&m->limited_user), (uint64_t)atomic_load(&m->limited_ip));
    sb_printf(&b,
              "# TYPE br_sse_streams gauge\nbr_sse_streams %u\n"
              "# TYPE br_http_inflight gauge\nbr_http_inflight %u\n"
              "# TYPE br_commands_applied_total counter\nbr_commands_applied_total %" PRIu64 "\n"
              "# TYPE br_journal_commits_total counter\nbr_journal_commits_total %" PRIu64 "\n"
              "# HELP br_journal_sync_seconds_total Time spent in the commits' fdatasyncs.\n"
              "# TYPE br_journal_sync_seconds_total counter\nbr_journal_sync_seconds_total %.6f\n"
              "# HELP br_journal_gather_seconds_total Time each commit's first command waited "
              "before the write.\n"
              "# TYPE br_journal_gather_seconds_total counter\nbr_journal_gather_seconds_total %.6f\n"
              "# TYPE br_journal_replayed_commands gauge\nbr_journal_replayed_commands %" PRIu64
              "\n",
              x->sse_streams, x->inflight, g->commands, g->commits, (double)g->sync_us / 1e6,
              (double)g->gather_us / 1e6, x->replayed);
    sb_printf(&b,
              "# HELP br_journal_storage_unavailable 1 while writes are refused because the "
              "journal cannot be written (full or failing data disk).\n"
              "# TYPE br_journal_storage_unavailable gauge\nbr_journal_storage_unavailable %d\n"
              "# HELP br_journal_storage_failures_total Failed journal writes and zero-fills.\n"
              "# TYPE br_journal_storage_failures_total counter\n"
              "br_journal_storage_failures_total %" PRIu64 "\n",
              g->storage_unavailable ? 1 : 0, g->storage_failures);
    static const char *const metric[] = {"br_queue_length", "br_admitted_total", "br_active_passes"};
    static const char *const help[] = {"Users waiting in an event's queue.",
                                       "Passes issued for an event.",
                                       "Passes issued and not yet used or expired."};
    static const char *const type[] = {"gauge", "counter", "gauge"};
    for (unsigned k = 0; k < 3; k++) {
        sb_printf(&b, "# HELP %s %s\n# TYPE %s %s\n", metric[k], help[k], metric[k], type[k]);
        for (uint32_t i = 0; i < g->event_count; i++) {
            uint32_t v = k == 0 ? g->events[i].queue_length
                       : k == 1 ? g->events[i].admitted
                                : g->events[i].active_passes;
            sb_printf(&b, "%s{event=\"%" PRIu64 "\"} %u\n", metric[k], g->events[i].id, v);
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
        sb_printf(&b, "%s", zone_help[k]);
        for (uint32_t i = 0; i < g->event_count; i++) {
            for (uint32_t z = 0; z < g->events[i].zone_count && z < BR_EVENT_ZONES_MAX; z++) {
                uint32_t cap = g->events[i].capacity[z];
                uint32_t used = g->events[i].held[z] + g->events[i].sold[z];
                uint32_t v = k == 0 ? cap
                           : k == 1 ? g->events[i].held[z]
                           : k == 2 ? g->events[i].sold[z]
                                    : (used < cap ? cap - used : 0);
                sb_printf(&b, "%s{event=\"%" PRIu64 "\",zone=\"%u\"} %u\n", zone_metric[k],
                          g->events[i].id, z + 1, v);
            }
        }
    }
    if (b.failed) {
        free(b.p);
        return NULL;
    }
    *len = b.len;
    return b.p;
}
