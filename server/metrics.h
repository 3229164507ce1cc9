/*
 * metrics.h -- request counters and latency histograms for /metrics
 * (Prometheus text format 0.0.4).
 *
 *   br_http_requests_total{route,method,status}    counter
 *   br_http_request_duration_seconds{route}        histogram
 *   br_capacity_exhausted_total{table}             counter (engine tables, limits.h)
 *   br_engine_table_rows{table}, ..._rows_max{table}, br_engine_reserved_bytes
 *   plus the sale's gauges from the backend (rendered by br_metrics_render)
 *   process_cpu_seconds_total, process_resident_memory_bytes,
 *   process_virtual_memory_bytes, process_open_fds, process_max_fds,
 *   process_start_time_seconds                     from /proc/self and getrlimit
 *   br_build_info{version,commit} 1                 as `bookingrush --version`
 *   br_webhooks_total{result}                      payment webhooks by what became of them
 *   br_presence_dropped_total                      presence reports lost to a full table
 *                                                  (server/presence.h)
 *
 * Every family has HELP and TYPE; scripts/test.d/61-promtool.sh holds the
 * exposition of a live server to `promtool check metrics`.
 *
 * Routes are a fixed table (their names are the path templates, so ids in
 * paths never explode the label space); statuses are a fixed list plus
 * "other". Every cell is a relaxed atomic: observing costs a few atomic adds
 * and no lock. Memory: routes x (statuses + buckets) x 8 bytes.
 */
#ifndef BR_METRICS_H
#define BR_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "server/backend.h"

#define BR_METRICS_ROUTES_MAX 40u

struct br_metrics;

/* names[i] = "METHOD /path/template" of route i; borrowed for the lifetime. */
int br_metrics_new(struct br_metrics **m, const char *const *names, unsigned count);
void br_metrics_free(struct br_metrics *m);

/* One answered request. */
void br_metrics_observe(struct br_metrics *m, unsigned route, unsigned status, int64_t dur_us);

/* Counts a request refused by a rate limiter (by scope: "user" or "ip"). */
void br_metrics_rate_limited(struct br_metrics *m, int by_user);

/* What became of a payment webhook (br_webhooks_total{result}). */
enum br_webhook_result {
    BR_WEBHOOK_STORED = 0,   /* applied, or (--kafka) stored as a fact for the saga */
    BR_WEBHOOK_DUPLICATE,    /* seen before: acknowledged, nothing done */
    BR_WEBHOOK_IGNORED_TYPE, /* a type we do not act on */
    BR_WEBHOOK_UNAUTHORIZED, /* wrong or stale signature */
    BR_WEBHOOK_INVALID,      /* malformed header or payload */
    BR_WEBHOOK_UNAVAILABLE,  /* our fault (PostgreSQL or Redis away): 503, the provider retries */
    BR_WEBHOOK_RESULT_COUNT
};

/* Counts one webhook. */
void br_metrics_webhook(struct br_metrics *m, enum br_webhook_result r);

struct br_metrics_extra {
    uint32_t sse_streams;
    uint32_t inflight;
    uint32_t awaiting;         /* br_http_awaiting */
    uint64_t hash_yielded_ms;  /* br_hashpool_yielded_ms */
    uint64_t replayed;
    uint64_t presence_dropped; /* br_presence_dropped: seen reports lost to a full table */
};

/* The backend whose ops->metrics adds its own families to every render
 * (NULL or a backend without the hook: none). Set once by serve before the
 * server listens; b must outlive m's renders. */
void br_metrics_set_backend(struct br_metrics *m, struct br_backend *b);

/* For a backend's ops->metrics: appends printf-formatted exposition text
 * (at most 4 KiB per call) to the render in progress. */
void br_metrics_printf(struct br_metrics_sink *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The whole exposition as a malloc'd string; *len set. NULL when out of
 * memory. The backend's own families (br_metrics_set_backend) come after
 * the server's counters (x->replayed is not printed here: a backend with a
 * journal prints it in its own families). */
char *br_metrics_render(struct br_metrics *m, const struct br_api_gauges *g,
                        const struct br_metrics_extra *x, size_t *len);

#endif
