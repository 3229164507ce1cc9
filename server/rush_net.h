/*
 * rush_net.h -- the rush's one epoll loop: non-blocking keep-alive
 * connection pools for requests, one connection per SSE stream, timers and
 * timeouts. Callbacks run on the loop and may send, open, close and set
 * timers. Every request ends in exactly one callback.
 *
 * As built (rush_net.c): callbacks run only from br_rush_net_run, never from
 * inside send or stream_open (a failure there is reported on the next turn).
 * Targets are "http://host:port" or "host:port", resolved once; https is
 * BR_E_INVALID. A pool's connections are split evenly over the targets. A
 * request re-sent after the keep-alive race goes on a new connection, once.
 * queued_us is a duration (send to first byte written, connect included);
 * sent_us and done_us are CLOCK_MONOTONIC stamps. timeout_ms 0 = 10 s,
 * connect_timeout_ms 0 = 3 s, idle_ms 0 = 45 s; a request's timeout runs
 * from its connection being ready. Streams: every callback carries the
 * answer's status; a stream answered with a status other than 200 gets
 * OPEN(status) and END (its body is not parsed as events).
 */
#ifndef BR_SERVER_RUSH_NET_H
#define BR_SERVER_RUSH_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server/rush_http.h"
enum br_rush_pool { BR_RUSH_POOL_CROWD = 0, BR_RUSH_POOL_STORM, BR_RUSH_POOL_ADMIN, BR_RUSH_POOL_COUNT };
enum br_rush_net_err { BR_RUSH_NET_OK = 0, BR_RUSH_NET_TIMEOUT, BR_RUSH_NET_CLOSED, BR_RUSH_NET_PROTOCOL,
                       BR_RUSH_NET_CONNECT };
#define BR_RUSH_QUEUE_MAX 65536u        /* queued requests per pool */
struct br_rush_net;
struct br_rush_net_config {
    const char *const *targets; uint32_t target_count;
    uint32_t pool_conns[BR_RUSH_POOL_COUNT], streams_max, timers_max, connect_timeout_ms;
};
struct br_rush_req {
    uint8_t route, pool;                  /* enum br_rush_route (metering), enum br_rush_pool */
    uint32_t target;                      /* UINT32_MAX = round-robin */
    const char *method, *path, *token;    /* token: Bearer or NULL */
    const char *idem_key, *pass;          /* Idempotency-Key, X-Queue-Pass, or NULL */
    const char *content_type, *body;      /* body copied at send; type NULL = application/json */
    size_t body_len; uint32_t timeout_ms;
};
struct br_rush_resp {
    int status, err;                      /* status 0 = no answer: see err (enum br_rush_net_err) */
    const char *body; size_t body_len;    /* NUL-terminated, valid during the callback only */
    uint32_t retry_after_s; uint8_t route;
    int64_t queued_us, sent_us, done_us;  /* waited for a connection; first byte out; last byte in */
    int64_t arrived_us;                   /* the kernel's receipt of the last byte (SO_TIMESTAMPNS), in
                                             [sent_us, done_us]; done_us when unknown. done - arrived
                                             is the rush's own delay in reading an answer */
};
typedef void (*br_rush_resp_fn)(void *ctx, const struct br_rush_resp *r);
enum br_rush_stream_kind { BR_RUSH_STREAM_OPEN = 0, BR_RUSH_STREAM_EVENT, BR_RUSH_STREAM_END, BR_RUSH_STREAM_CUT };
typedef void (*br_rush_stream_fn)(void *ctx, uint32_t stream, int kind, int status,
                                  const struct br_rush_sse_event *ev);
typedef void (*br_rush_timer_fn)(void *ctx, uint32_t timer);
int br_rush_net_new(struct br_rush_net **n, const struct br_rush_net_config *cfg, br_rush_timer_fn on_timer,
                    void *timer_ctx);
void br_rush_net_free(struct br_rush_net *n);
/* fn runs exactly once (answer, timeout or failure). BR_OK or BR_E_FULL. */
int br_rush_net_send(struct br_rush_net *n, const struct br_rush_req *q, br_rush_resp_fn fn, void *ctx);
/* GET path with Bearer, Accept: text/event-stream, Last-Event-ID if last_id. fn: OPEN(status), EVENT...,
 * then END (server ended) or CUT (EOF, error, idle_ms silent); the id is then free. BR_OK or BR_E_FULL. */
int br_rush_net_stream_open(struct br_rush_net *n, uint32_t target, const char *path, const char *token,
                            const char *last_id, uint32_t idle_ms, br_rush_stream_fn fn, void *ctx,
                            uint32_t *stream);
void br_rush_net_stream_close(struct br_rush_net *n, uint32_t stream);   /* no callback */
void br_rush_net_timer_set(struct br_rush_net *n, uint32_t timer, int64_t at_us); /* replaces an armed one */
void br_rush_net_timer_cancel(struct br_rush_net *n, uint32_t timer);
/* Until until_us or done(ctx) (checked each turn; <= 256 events a turn). BR_OK or BR_E_IO. */
int br_rush_net_run(struct br_rush_net *n, int64_t until_us, bool (*done)(void *), void *ctx);
uint32_t br_rush_net_streams_open(const struct br_rush_net *n);
struct br_rush_net_stats {              /* counters since br_rush_net_new */
    uint64_t connects, connect_errors;  /* dials; those that failed (refused, timed out, no fd) */
    uint64_t retried_closed;            /* keep-alive race: re-sent once on a fresh connection */
    uint64_t timeouts, streams_opened, streams_peak;
};
void br_rush_net_stats(const struct br_rush_net *n, struct br_rush_net_stats *out);
int64_t br_rush_now_us(void);     /* CLOCK_MONOTONIC */
int64_t br_rush_wall_ms(void);    /* CLOCK_REALTIME */

#endif /* BR_SERVER_RUSH_NET_H */
