/*
 * hub.h -- the queue's server-sent-event fan-out: one in-process hub for all
 * open position streams, indexed per event and per (event, user).
 *
 * The backend reports two things (struct br_backend_listener): a pass was
 * issued to (event, user) -- the hub's thread signs the pass token and
 * writes it down that user's open streams at once (the reporting thread only
 * queues it: hub.c) -- and an event's queue moved -- the
 * hub's thread then recomputes the position of every subscriber of that
 * event (once per refresh period, however many changes came in) and sends
 * it to those whose view changed, at most one position frame a stream per
 * position_ms (a newer position waits, and only the newest goes; a pass,
 * an admission, a terminal view and a change to closed or passthrough never
 * wait; the opening's pre-queue -> waiting does). Nothing is subscribed per user anywhere
 * else: the distributed backend feeds the same two calls from one Redis
 * subscription per process (backend_distributed_fanout.c).
 *
 * A stream carries:
 *   retry: 3000                      (once, first)
 *   event: position / data: {...}    (the position object of the API)
 *   event: pass / data: {event_id, token, expires_at}   then the stream ends
 *   : keep-alive                     (every keepalive_ms without traffic)
 * A stream whose user is not waiting any more (used, expired, left, lapsed)
 * gets one position event and ends. Issue 13, the waiting room: when the
 * event's gate changes (struct br_backend_listener queue_state) every stream
 * still in line gets
 *   event: queue / data: {"event_id":N,"gate":"paused","mode":"paused"}
 * and when every seat is sold (gate sold_out, or a view whose status is
 * sold_out) also
 *   event: sold_out / data: {"event_id":N}    then the stream ends.
 * A place in a closed or passthrough queue keeps its stream open.
 *
 * Limits: BR_HUB_BUFFER bytes buffered per stream (a slow reader misses
 * intermediate positions, never the pass); BR_HUB_EVENT_SLOTS events with
 * open streams at once.
 */
#ifndef BR_HUB_H
#define BR_HUB_H

#include <stddef.h>
#include <stdint.h>

#include "adapters/http.h"
#include "server/backend.h"
#include "server/log.h"

#define BR_HUB_BUFFER 4096u     /* bytes buffered per stream */
#define BR_HUB_EVENT_SLOTS 1024u /* distinct events with streams */
#define BR_HUB_KEY_BUCKETS 65536u /* (event, user) hash buckets: 8 B each */

struct br_hub;
struct br_hub_sub;
struct br_presence;

struct br_hub_config {
    struct br_backend *backend;
    const uint8_t *pass_secret; /* signs pass tokens; must outlive the hub */
    size_t pass_secret_len;
    unsigned keepalive_ms;
    unsigned refresh_ms;        /* position recomputation period */
    unsigned position_ms;       /* least gap between two waiting positions on a stream; 0 = none */
    const struct br_log *log;
    /* Issue 13: who is still there (presence.h; NULL = not reported): every
     * open stream is reported on subscribe and every presence_report_ms
     * (0 = BR_PRESENCE_REPORT_MS); the hub's thread flushes the table to
     * the backend once a second. */
    struct br_presence *presence;
    unsigned presence_report_ms;
};

/* Creates the hub and starts its thread. BR_OK or BR_E_IO. */
int br_hub_new(struct br_hub **h, const struct br_hub_config *cfg);

/* Refuses new streams, ends every open one (their connections finish) and
 * stops the refresh thread (so the backend is not read any more). Streams
 * still open must be closed (br_hub_closed) before br_hub_free. */
void br_hub_end_all(struct br_hub *h);

/* Stops the thread and frees h (may be NULL). No stream may remain. */
void br_hub_free(struct br_hub *h);

/* The listener the backend calls (ctx = the hub). */
struct br_backend_listener br_hub_listener(struct br_hub *h);

/* Answers req with a stream for (event, user), starting from view.
 * Returns the subscription, to be handed to br_hub_closed when req closes;
 * NULL when the hub is full or shutting down (req is not answered then). */
struct br_hub_sub *br_hub_subscribe(struct br_hub *h, struct br_http_req *req, uint64_t event_id,
                                    uint64_t user_id, const struct br_api_queue *view);

/* The stream's request closed: forget it. */
void br_hub_closed(struct br_hub *h, struct br_hub_sub *s);

/* Open streams now. */
uint32_t br_hub_streams(struct br_hub *h);

/* Signs a pass token (also used by the position route). Returns 0 or -1. */
int br_hub_pass_token(const struct br_hub *h, uint64_t event_id, uint64_t user_id,
                      uint64_t pass_id, int64_t expires_at_ms, char *out, size_t cap);

#endif
