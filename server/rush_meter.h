/*
 * rush_meter.h -- what a rush measures while it runs: per-route latency and
 * status/code counts, the opening-spike and login-storm windows, pass
 * delivery latency, the server's samples, and the once-a-second progress line.
 *
 * One meter per run, written from the rush's single loop thread (no locks).
 * Memory: about 35 KiB a route (latency, queued and five 1-second histograms,
 * 600 status counters, 32 codes) = 0.6 MiB, plus 24 bytes per reserve answer
 * kept for the windows (at most BR_RUSH_WINDOW_SAMPLES_MAX, then counted as
 * dropped). A route's latencies are first byte written .. last byte read
 * (rush_net.h); the queued time (waiting for a pooled connection) is kept
 * apart so a client-bound run shows as such instead of as a slow server.
 * The windows' reserves are what the buyer waited: from the crowd's send,
 * queued time included, to the answer (a rush with too few connections
 * cannot hide the spike's wait in its own queue); to the answer as read and
 * as the kernel received it.
 */
#ifndef BR_SERVER_RUSH_METER_H
#define BR_SERVER_RUSH_METER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "server/rush.h"
#include "server/rush_hist.h"
#include "server/rush_net.h"

enum br_rush_window { BR_RUSH_WIN_SPIKE = 0, BR_RUSH_WIN_STORM, BR_RUSH_WIN_COUNT };
#define BR_RUSH_CODES_MAX 32u           /* error codes kept per route, then OTHER */
struct br_rush_server_sample {          /* per target, once a second */
    double rss_bytes, vmhwm_bytes;      /* vmhwm 0 unless --server-pid */
    uint32_t open_fds, sse_streams, inflight, queue_length, admitted;
};
struct br_rush_meter;
/* t0_us: the crowd's start (br_rush_now_us), second 0 of the progress line. BR_OK, or BR_E_FULL out of memory. */
int br_rush_meter_new(struct br_rush_meter **m, int64_t t0_us);
void br_rush_meter_free(struct br_rush_meter *m);
void br_rush_meter_request(struct br_rush_meter *m, const struct br_rush_resp *r, const char *code); /* code NULL */
void br_rush_meter_window(struct br_rush_meter *m, enum br_rush_window w, int64_t from_us, int64_t to_us);
void br_rush_meter_pass(struct br_rush_meter *m, int64_t admit_to_pass_ms, bool reconnected);
void br_rush_meter_storm_login(struct br_rush_meter *m, int status, int64_t latency_us, bool retried);
void br_rush_meter_server(struct br_rush_meter *m, uint32_t target, const struct br_rush_server_sample *s);
void br_rush_meter_tick(struct br_rush_meter *m, int64_t now_us, const struct br_rush_progress *p, FILE *f);
const struct br_rush_hist *br_rush_meter_route(const struct br_rush_meter *m, unsigned route);

/* ---- additions (rD): limits, setters the command calls, read accessors for the report ---- */
#define BR_RUSH_STATUS_MAX 600u         /* statuses counted exactly, 0 (no answer) .. 599; above: 599 */
#define BR_RUSH_CODE_MAX 48u            /* an error code, incl. NUL (longer codes are cut) */
#define BR_RUSH_RING_S 5u               /* the progress line's "p99 (5 s)": five 1-second histograms */
#define BR_RUSH_WINDOW_SAMPLES_MAX (1u << 22) /* reserve (sent, latency) pairs kept: <= 64 MiB */

/* The rush's open streams now (br_rush_net_streams_open), for the progress line and streams_peak. */
void br_rush_meter_streams(struct br_rush_meter *m, uint32_t open);
/* The sum of the events' stats.admitted before the crowd: the progress line's passes a/(admitted - this). */
void br_rush_meter_admitted_baseline(struct br_rush_meter *m, uint32_t admitted);
/* Requests the net sent again after a keep-alive connection closed under them (the net's count, total). */
void br_rush_meter_retried_closed(struct br_rush_meter *m, uint64_t total);

struct br_rush_code_count {             /* one (status, error.code) pair of a route */
    int status;                         /* 0: no answer, code = the net error (TIMEOUT, CLOSED, ...) */
    uint32_t n;
    char code[BR_RUSH_CODE_MAX];        /* "" = an error status without a JSON code */
};
struct br_rush_route_view {
    uint64_t n;                         /* requests metered, answered or not */
    const struct br_rush_hist *latency; /* answered requests only (status > 0) */
    const struct br_rush_hist *queued;  /* every request that was sent */
    const uint32_t *status;             /* [BR_RUSH_STATUS_MAX]; [0] = no answer */
    const struct br_rush_code_count *codes; /* first-seen order */
    uint32_t code_count, codes_other;   /* codes_other: error answers past BR_RUSH_CODES_MAX pairs */
};
void br_rush_meter_route_view(const struct br_rush_meter *m, unsigned route, struct br_rush_route_view *out);
/* The window's bounds as last set; false when never set (then the histogram is empty). */
bool br_rush_meter_window_bounds(const struct br_rush_meter *m, enum br_rush_window w, int64_t *from_us,
                                 int64_t *to_us);
/* Fills out with the reserves the crowd sent in [from, to) of the window, whenever the window was set,
 * each from its send (queued time included) to its answer: read by the rush (arrived false), or
 * received by the rush's kernel (arrived true: br_rush_resp.arrived_us; the rush's own delay in
 * getting to the answer left out, which on a machine it shares with the server is its CPU wait).
 * O(reserves). */
void br_rush_meter_window_reserve(const struct br_rush_meter *m, enum br_rush_window w, bool arrived,
                                  struct br_rush_hist *out);
struct br_rush_storm_view {             /* storm logins: each call to br_rush_meter_storm_login is one answer */
    uint32_t sent;                      /* logins that ended (answers not retried) */
    uint32_t ok, unauthorized, overloaded, retried, failed; /* 200; 401; 503 answers; answers retried; other ends */
    const struct br_rush_hist *latency; /* the ends answered 200 or 401 (the hash work was done) */
};
void br_rush_meter_storm_view(const struct br_rush_meter *m, struct br_rush_storm_view *out);
struct br_rush_pass_view {
    const struct br_rush_hist *direct, *reconnected; /* admission -> pass, us (ms resolution) */
    uint64_t clamped;                   /* admission after receipt (clock offset): counted as 0 */
};
void br_rush_meter_pass_view(const struct br_rush_meter *m, struct br_rush_pass_view *out);
struct br_rush_server_peaks {
    double rss_bytes, vmhwm_bytes;
    uint32_t open_fds, sse_streams, samples;
};
/* One target's peaks, or with target UINT32_MAX all of them: the max of RSS, VmHWM and fds over the targets,
 * and the peak of the streams summed over the targets' latest samples. */
void br_rush_meter_server_peaks(const struct br_rush_meter *m, uint32_t target, struct br_rush_server_peaks *out);
struct br_rush_client_view { double cpu_s; uint64_t rss_peak_bytes; uint32_t streams_peak; };
/* The rush process's own CPU (user + system) and peak RSS from getrusage now, and its streams peak. */
void br_rush_meter_client(const struct br_rush_meter *m, struct br_rush_client_view *out);
uint64_t br_rush_meter_retried_closed_total(const struct br_rush_meter *m);
/* Reserve answers not kept for the windows (past BR_RUSH_WINDOW_SAMPLES_MAX, or out of memory). */
uint32_t br_rush_meter_reserves_dropped(const struct br_rush_meter *m);
/* The top_max largest (status, code) pairs of one route, or of all with route -1, largest first. */
uint32_t br_rush_meter_top_errors(const struct br_rush_meter *m, int route, struct br_rush_code_count *top,
                                  uint32_t top_max);
/* The error.code of a JSON error body ({"error":{"code":"SOLD_OUT",...}}, render.c br_render_error), found by
 * scanning (no jansson on the hot path): buf (letters, digits, '_', cut at n - 1), or NULL when the body has none.
 * For br_rush_meter_request's code. O(len). */
const char *br_rush_error_code(const char *body, size_t len, char *buf, size_t n);
/* A duration for people: "8.1ms", "12ms", "1.90s", "12.4s". Returns buf. */
const char *br_rush_format_us(uint64_t us, char *buf, size_t n);

#endif /* BR_SERVER_RUSH_METER_H */
