/*
 * hub.c -- the SSE fan-out (see hub.h).
 *
 * Locks, always taken in this order: the hub's mutex (the indexes, every
 * subscription's membership), then a request's mutex inside
 * br_http_stream_wake, or a subscription's mutex (its buffer). The adapter
 * calls pull() holding the request's mutex and pull takes only the
 * subscription's mutex; so a subscription's mutex is never held while
 * waking a request.
 *
 * Passes do not wait for the hub's mutex: the backend's thread that made
 * an admission durable (the embedded syncer, which answers the commit's
 * reserves only after it, or the distributed fan-out) appends it to the
 * pass queue under pq_mu, a leaf lock held for an append, and the hub's
 * thread delivers the queue when woken, and every PASS_DRAIN_EVERY streams
 * during a refresh. So a refresh of 10,000 streams delays a pass by at most
 * that many streams' work, and a reserve's answer by nothing.
 *
 * The backend is never asked with the hub's mutex held: the refresh copies
 * an event's users, releases the mutex, asks queue_positions once per
 * BR_API_POSITIONS_MAX users, and takes the mutex again to send. So a
 * backend whose listener (which takes the hub's mutex) runs while it holds
 * its own lock, or one that waits on the network (Redis), never stalls
 * pass deliveries, subscriptions or closes behind a refresh.
 */
#define _GNU_SOURCE /* pthread_setname_np */

#include "server/hub.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "adapters/auth.h"
#include "adapters/clock.h"
#include "core/err.h"
#include "core/hash.h"
#include "core/panic.h"
#include "core/queue.h"
#include "server/presence.h"
#include "server/render.h"

#define PRESENCE_FLUSH_MS 1000 /* the presence table goes to the backend once a second */
#define PASS_ROOM 1024u /* buffer bytes a pass event may need; positions leave it free */
#define PASS_DRAIN_EVERY 64u /* a refresh delivers the queued passes after this many streams */
#define PASS_QUEUE_FIRST 256u /* the pass queue's first size; it doubles as needed */

struct queued_pass {
    uint64_t event_id;
    uint64_t user_id;
    uint64_t pass_id;
    int64_t expires_at_ms;
};

struct br_hub_sub {
    struct br_hub_sub *ev_next; /* the event slot's list */
    struct br_hub_sub *ev_prev;
    struct br_hub_sub *key_next; /* the (event, user) bucket's chain */
    uint32_t slot;
    uint64_t event_id;
    uint64_t user_id;
    struct br_http_req *req;
    int64_t last_send_ms;        /* under the hub's mutex */
    int64_t last_position_ms;    /* when the last position frame went; under the hub's mutex */
    struct br_api_queue last;    /* last position sent; under the hub's mutex */
    struct br_api_queue withheld; /* a newer waiting position, not yet due; under the hub's mutex */
    bool has_withheld;           /* `withheld` is to be sent when due; under the hub's mutex */
    bool passed;                 /* the pass went out, or the stream is over (sold out);
                                    under the hub's mutex */
    int64_t last_presence_ms;    /* when the stream was last reported seen; under the hub's mutex */

    pthread_mutex_t mu;          /* the buffer below */
    bool ending;                 /* end the stream once the buffer is drained */
    size_t len;
    size_t off;
    char buf[BR_HUB_BUFFER];
};

struct event_slot {
    uint64_t event_id; /* 0 = free */
    struct br_hub_sub *head;
    uint32_t count;
    bool dirty;        /* positions may have moved since the last refresh */
};

struct br_hub {
    struct br_hub_config cfg;
    pthread_mutex_t mu;
    bool stop;
    bool ending;        /* no new streams */
    bool started;
    pthread_t thread;
    uint32_t streams;
    struct event_slot slots[BR_HUB_EVENT_SLOTS];
    struct br_hub_sub *buckets[BR_HUB_KEY_BUCKETS];
    /* The refresh thread's scratch for one event: its users and their
     * views, grown to the largest event's stream count (56 B a stream). */
    uint64_t *scratch_users;
    struct br_api_queue *scratch_views;
    int *scratch_rcs;
    uint32_t scratch_cap;

    /* The pass queue (see the header comment). Under pq_mu, a leaf lock:
     * nothing else is taken while it is held. The hub's thread sleeps on
     * pq_cv, so an append wakes it without the hub's mutex. */
    pthread_mutex_t pq_mu;
    pthread_cond_t pq_cv;
    struct queued_pass *pq;      /* appended to by the backend's threads */
    uint32_t pq_len;
    uint32_t pq_cap;
    bool pq_stop;                /* the hub's thread is to stop */
    struct queued_pass *pq_work; /* the hub's thread's batch; swapped with pq */
    uint32_t pq_work_cap;
};

static uint32_t bucket_of(uint64_t event_id, uint64_t user_id)
{
    return (uint32_t)(br_hash_step(br_mix64(event_id), user_id) & (BR_HUB_KEY_BUCKETS - 1));
}

/* ---- a subscription's buffer ---- */

/* Appends bytes; positions leave PASS_ROOM free so the pass always fits.
 * Returns false (nothing written) when it does not fit. */
static bool sub_append(struct br_hub_sub *s, const char *data, size_t n, bool is_pass, bool end)
{
    pthread_mutex_lock(&s->mu);
    if (s->off > 0) {
        memmove(s->buf, s->buf + s->off, s->len - s->off);
        s->len -= s->off;
        s->off = 0;
    }
    size_t room = sizeof s->buf - s->len;
    bool fits = is_pass ? n <= room : n + PASS_ROOM <= room;
    if (fits) {
        memcpy(s->buf + s->len, data, n);
        s->len += n;
    }
    if (end) {
        s->ending = true;
    }
    pthread_mutex_unlock(&s->mu);
    return fits;
}

static ssize_t sub_pull(void *cls, char *out, size_t max)
{
    struct br_hub_sub *s = cls;
    pthread_mutex_lock(&s->mu);
    ssize_t n = 0;
    if (s->off < s->len) {
        size_t k = s->len - s->off < max ? s->len - s->off : max;
        memcpy(out, s->buf + s->off, k);
        s->off += k;
        if (s->off == s->len) {
            s->off = s->len = 0;
        }
        n = (ssize_t)k;
    } else if (s->ending) {
        n = -1;
    }
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* "event: <name>\ndata: <data>\n\n" into out. Returns bytes or 0 (data
 * empty: not rendered; or out too small). */
static size_t sse_frame(const char *name, const char *data, size_t data_len, char *out,
                        size_t cap)
{
    if (data_len == 0) {
        return 0;
    }
    int n = snprintf(out, cap, "event: %s\ndata: %s\n\n", name, data);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

static size_t position_frame(const struct br_api_queue *v, char *out, size_t cap)
{
    char data[256];
    return sse_frame("position", data, br_render_queue_text(v, data, sizeof data), out, cap);
}

static size_t pass_frame(uint64_t event_id, const char *token, int64_t expires_at_ms, char *out,
                         size_t cap)
{
    char data[PASS_ROOM];
    return sse_frame("pass", data,
                     br_render_pass_text(event_id, token, expires_at_ms, data, sizeof data), out,
                     cap);
}

/* Issue 13: "event: queue" with the gate and mode (a gate change), and
 * "event: sold_out" (every seat sold: the stream ends after it). */
static size_t queue_frame(uint64_t event_id, uint8_t gate, uint8_t mode, char *out, size_t cap)
{
    char data[160];
    int n = snprintf(data, sizeof data, "{\"event_id\":%" PRIu64 ",\"gate\":\"%s\",\"mode\":\"%s\"}",
                     event_id, br_queue_gate_name(gate), br_queue_mode_name(mode));
    return n > 0 && (size_t)n < sizeof data ? sse_frame("queue", data, (size_t)n, out, cap) : 0;
}

static size_t sold_out_frame(uint64_t event_id, char *out, size_t cap)
{
    char data[64];
    int n = snprintf(data, sizeof data, "{\"event_id\":%" PRIu64 "}", event_id);
    return n > 0 && (size_t)n < sizeof data ? sse_frame("sold_out", data, (size_t)n, out, cap) : 0;
}

/* Ends s with the sold_out event (always fits: the pass's room). Under the
 * hub's mutex. */
static void sub_sold_out(struct br_hub_sub *s)
{
    char frame[128];
    size_t n = sold_out_frame(s->event_id, frame, sizeof frame);
#ifdef BR_PLANT_HUB_NO_SOLD_OUT /* planted (26-wr-sse-plant.sh): the stream just ends */
    n = 0;
#endif
    sub_append(s, frame, n, true, true);
    s->passed = true; /* the stream is over */
}

static bool queue_view_same(const struct br_api_queue *a, const struct br_api_queue *b)
{
    return a->status == b->status && a->position == b->position &&
           a->queue_length == b->queue_length && a->pass_id == b->pass_id;
}

/* Whether s may get a waiting position at now: the last one went at least
 * position_ms ago (0: every change goes at once). Under the hub's mutex. */
static bool position_due(const struct br_hub *h, const struct br_hub_sub *s, int64_t now)
{
    return h->cfg.position_ms == 0 || now - s->last_position_ms >= (int64_t)h->cfg.position_ms;
}

/* Sends view down s if it changed; the pass too when admitted. A change of
 * a waiting (or pre-queue) position within position_ms of the last one is
 * withheld instead, and sent by a later refresh (the newest one only); an
 * admission, a terminal view and a forced view (a new stream) go at once.
 * Returns true when s must be woken. Under the hub's mutex. */
static bool sub_send_view(struct br_hub *h, struct br_hub_sub *s, const struct br_api_queue *view,
                          bool force, int64_t now)
{
    if (s->passed) {
        return false;
    }
    struct br_api_queue v = *view; /* view may be s->withheld itself */
    bool admitted = v.status == BR_QS_ADMITTED;
    /* Issue 13: a place in a closed or passthrough queue is kept (the mode
     * may change back); sold out and lapsed end the stream. */
    bool in_line = v.status == BR_QS_WAITING || v.status == BR_QS_PREQUEUE ||
                   v.status == BR_QS_CLOSED || v.status == BR_QS_PASSTHROUGH;
    bool terminal = !in_line && !admitted;
    /* A change to closed or passthrough (an operator's, also announced by
     * the queue event) goes at once. The opening's pre-queue -> waiting is
     * a position like the others: at once it would put a frame on every
     * stream of the event in the same refresh, ahead of the first passes
     * (README, "Rehearsing an on-sale"). */
    bool mode_view = v.status != s->last.status &&
                     (v.status == BR_QS_CLOSED || v.status == BR_QS_PASSTHROUGH);
    bool urgent = force || admitted || terminal || mode_view;
    if (!urgent && queue_view_same(&v, &s->last)) {
        s->has_withheld = false; /* back to what the stream shows */
        return false;
    }
    if (!urgent && !position_due(h, s, now)) {
        s->withheld = v;
        s->has_withheld = true;
        return false;
    }
    char frame[PASS_ROOM];
    bool wrote = false;
    size_t n = position_frame(&v, frame, sizeof frame);
    if (n > 0 && sub_append(s, frame, n, false, terminal)) {
        s->last = v;
        s->last_position_ms = now;
        s->has_withheld = false;
        wrote = true;
    } else if (terminal) {
        sub_append(s, "", 0, true, true);
    }
    if (v.status == BR_QS_SOLD_OUT) {
        sub_sold_out(s);
        wrote = true;
    }
#ifdef BR_PLANT_HUB_DROP_PASS
    /* Planted (caught by scripts/test.d/79-rush-plant.sh, PASS_UNDELIVERED): every
     * 5th pass is marked sent but never written, a lost write -- here, where
     * every path that sends a pass (the admit's fan-out, a refresh, a
     * subscribe) goes through. */
    static unsigned dropped_seq;
    if (admitted && ++dropped_seq % 5 == 0) {
        s->passed = true;
        return wrote;
    }
#endif
    if (admitted) {
        char token[BR_PASS_TOKEN_MAX];
        if (br_hub_pass_token(h, v.event_id, s->user_id, v.pass_id, v.pass_expires_at_ms, token,
                              sizeof token) == 0) {
            n = pass_frame(v.event_id, token, v.pass_expires_at_ms, frame, sizeof frame);
            if (n > 0 && sub_append(s, frame, n, true, true)) {
                s->passed = true;
                wrote = true;
            }
        }
    }
    if (wrote) {
        s->last_send_ms = now;
    }
    return wrote || terminal;
}

/* ---- indexes (under the hub's mutex) ---- */

static struct event_slot *slot_find(struct br_hub *h, uint64_t event_id, bool create)
{
    struct event_slot *free_slot = NULL;
    for (uint32_t i = 0; i < BR_HUB_EVENT_SLOTS; i++) {
        if (h->slots[i].event_id == event_id) {
            return &h->slots[i];
        }
        if (free_slot == NULL && h->slots[i].event_id == 0) {
            free_slot = &h->slots[i];
        }
    }
    if (create && free_slot != NULL) {
        memset(free_slot, 0, sizeof *free_slot);
        free_slot->event_id = event_id;
        return free_slot;
    }
    return NULL;
}

/* ---- listener (backend threads) ---- */

/* Sends the pass to every stream of (event, user). Under the hub's mutex. */
static void deliver_pass_locked(struct br_hub *h, uint64_t event_id, uint64_t user_id,
                                uint64_t pass_id, int64_t expires_at_ms)
{
    for (struct br_hub_sub *s = h->buckets[bucket_of(event_id, user_id)]; s != NULL;
         s = s->key_next) {
        if (s->event_id != event_id || s->user_id != user_id) {
            continue;
        }
        /* The newest position the hub knows, sent or withheld. */
        struct br_api_queue v = s->has_withheld ? s->withheld : s->last;
        v.event_id = event_id;
        v.status = BR_QS_ADMITTED;
        v.position = 0;
        v.estimated_wait_s = 0;
        v.pass_id = pass_id;
        v.pass_expires_at_ms = expires_at_ms;
        if (v.queue_length > 0 &&
            (s->has_withheld ? s->withheld.status : s->last.status) == BR_QS_WAITING) {
            v.queue_length--; /* we left the line */
        }
        if (sub_send_view(h, s, &v, false, br_clock_mono_ms())) {
            br_http_stream_wake(s->req);
        }
    }
}

/* Delivers every queued pass, oldest first. The hub's thread only, under
 * the hub's mutex; pq_mu is held only to swap the queue with the empty
 * work array. */
static void drain_passes_locked(struct br_hub *h)
{
    pthread_mutex_lock(&h->pq_mu);
    struct queued_pass *batch = h->pq;
    uint32_t n = h->pq_len;
    uint32_t cap = h->pq_cap;
    h->pq = h->pq_work;
    h->pq_cap = h->pq_work_cap;
    h->pq_len = 0;
    pthread_mutex_unlock(&h->pq_mu);
    for (uint32_t i = 0; i < n; i++) {
        const struct queued_pass *q = &batch[i];
        deliver_pass_locked(h, q->event_id, q->user_id, q->pass_id, q->expires_at_ms);
    }
    h->pq_work = batch;
    h->pq_work_cap = cap;
}

/* The listener's pass: queued for the hub's thread (see the header
 * comment). Only when the queue cannot grow (out of memory) is it
 * delivered here, under the hub's mutex: a pass is never dropped. */
static void on_pass_issued(void *ctx, uint64_t event_id, uint64_t user_id, uint64_t pass_id,
                           int64_t expires_at_ms)
{
    struct br_hub *h = ctx;
    pthread_mutex_lock(&h->pq_mu);
    if (h->pq_len == h->pq_cap) {
        uint32_t cap = h->pq_cap != 0 ? 2 * h->pq_cap : PASS_QUEUE_FIRST;
        struct queued_pass *grown =
            cap > h->pq_cap ? realloc(h->pq, (size_t)cap * sizeof *grown) : NULL;
        if (grown == NULL) {
            pthread_mutex_unlock(&h->pq_mu);
            pthread_mutex_lock(&h->mu);
            deliver_pass_locked(h, event_id, user_id, pass_id, expires_at_ms);
            pthread_mutex_unlock(&h->mu);
            return;
        }
        h->pq = grown;
        h->pq_cap = cap;
    }
    h->pq[h->pq_len++] = (struct queued_pass){
        .event_id = event_id, .user_id = user_id, .pass_id = pass_id,
        .expires_at_ms = expires_at_ms};
    pthread_cond_signal(&h->pq_cv);
    pthread_mutex_unlock(&h->pq_mu);
}

static void on_queue_changed(void *ctx, uint64_t event_id)
{
    struct br_hub *h = ctx;
    pthread_mutex_lock(&h->mu);
    struct event_slot *slot = slot_find(h, event_id, false);
    if (slot != NULL) {
        slot->dirty = true;
    }
    pthread_mutex_unlock(&h->mu);
}

/* Issue 13: the gate changed: every stream of the event still in line
 * gets "event: queue"; on sold out also "event: sold_out", and it ends.
 * Otherwise the positions are recomputed (their status and estimate). */
static void on_queue_state(void *ctx, uint64_t event_id, uint8_t gate, uint8_t mode)
{
    struct br_hub *h = ctx;
    pthread_mutex_lock(&h->mu);
    struct event_slot *slot = slot_find(h, event_id, false);
    if (slot != NULL) {
        char frame[256];
        size_t n = queue_frame(event_id, gate, mode, frame, sizeof frame);
        int64_t now = br_clock_mono_ms();
        for (struct br_hub_sub *s = slot->head; s != NULL; s = s->ev_next) {
            if (s->passed) {
                continue;
            }
            bool wrote = n > 0 && sub_append(s, frame, n, gate == BR_GATE_SOLD_OUT, false);
            if (gate == BR_GATE_SOLD_OUT) {
                sub_sold_out(s);
                wrote = true;
            }
            if (wrote) {
                s->last_send_ms = now;
                br_http_stream_wake(s->req);
            }
        }
        slot->dirty = true;
    }
    pthread_mutex_unlock(&h->mu);
}

struct br_backend_listener br_hub_listener(struct br_hub *h)
{
    struct br_backend_listener l = {.ctx = h,
                                    .pass_issued = on_pass_issued,
                                    .queue_changed = on_queue_changed,
                                    .queue_state = on_queue_state};
    return l;
}

/* ---- the refresh thread ---- */

#define VIEW_UNKNOWN 1 /* a user's rc when the backend could not be asked (errors are <= 0) */

/* Makes room in the scratch arrays for n users. false when out of memory. */
static bool scratch_reserve(struct br_hub *h, uint32_t n)
{
    if (n <= h->scratch_cap) {
        return true;
    }
    uint64_t *users = realloc(h->scratch_users, n * sizeof *users);
    if (users != NULL) {
        h->scratch_users = users;
    }
    struct br_api_queue *views = realloc(h->scratch_views, n * sizeof *views);
    if (views != NULL) {
        h->scratch_views = views;
    }
    int *rcs = realloc(h->scratch_rcs, n * sizeof *rcs);
    if (rcs != NULL) {
        h->scratch_rcs = rcs;
    }
    if (users == NULL || views == NULL || rcs == NULL) {
        return false;
    }
    h->scratch_cap = n;
    return true;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a;
    uint64_t y = *(const uint64_t *)b;
    return x < y ? -1 : x > y ? 1 : 0;
}

/* The index of user in the first n (sorted) scratch users, or -1. */
static int64_t scratch_find(const struct br_hub *h, uint32_t n, uint64_t user)
{
    uint32_t lo = 0, hi = n;
    while (lo < hi) { /* log2(n) rounds */
        uint32_t mid = lo + (hi - lo) / 2;
        if (h->scratch_users[mid] < user) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo < n && h->scratch_users[lo] == user ? (int64_t)lo : -1;
}

/* Asks the backend for the views of the users with a stream on the slot's
 * event, without the hub's mutex: the users are copied (sorted, once each)
 * under it, the backend asked in chunks of BR_API_POSITIONS_MAX after
 * releasing it, and the views applied once it is taken again. Returns the
 * number of users asked (their views in the scratch arrays), 0 when none.
 * Under the hub's mutex, released meanwhile: the slot may be closed or
 * reused by then (the caller checks its event). */
static uint32_t ask_views(struct br_hub *h, struct event_slot *slot)
{
    uint64_t event_id = slot->event_id;
    if (!scratch_reserve(h, slot->count)) {
        slot->dirty = true; /* next time */
        return 0;
    }
    uint32_t n = 0;
    for (struct br_hub_sub *s = slot->head; s != NULL; s = s->ev_next) {
        BR_ASSERT(n < slot->count);
        if (!s->passed) {
            h->scratch_users[n++] = s->user_id;
        }
    }
    if (n == 0) {
        return 0;
    }
    qsort(h->scratch_users, n, sizeof *h->scratch_users, cmp_u64);
    uint32_t unique = 1;
    for (uint32_t i = 1; i < n; i++) {
        if (h->scratch_users[i] != h->scratch_users[unique - 1]) {
            h->scratch_users[unique++] = h->scratch_users[i];
        }
    }
    pthread_mutex_unlock(&h->mu);
    struct br_backend *b = h->cfg.backend;
    bool failed = false;
    for (uint32_t at = 0; at < unique; at += BR_API_POSITIONS_MAX) {
        uint32_t k = unique - at < BR_API_POSITIONS_MAX ? unique - at : BR_API_POSITIONS_MAX;
        int rc = b->ops->queue_positions(b, event_id, h->scratch_users + at, k,
                                         h->scratch_views + at, h->scratch_rcs + at);
        if (rc != BR_OK) {
            for (uint32_t i = 0; i < k; i++) {
                h->scratch_rcs[at + i] = VIEW_UNKNOWN;
            }
            failed = true;
        }
    }
    pthread_mutex_lock(&h->mu);
    if (failed) {
        br_logf(h->cfg.log, BR_LOG_WARN, "queue positions unavailable: streams keep their view",
                "\"event\":%" PRIu64, event_id);
        if (slot->event_id == event_id) {
            slot->dirty = true; /* asked again at the next refresh */
        }
    }
    return unique;
}

/* Sends s its new view from the scratch arrays (when asked: `asked` users),
 * or the position it withheld once that is due, else a keep-alive when
 * due. Returns whether s must be woken. Under the hub's mutex. */
static bool refresh_sub(struct br_hub *h, struct br_hub_sub *s, uint32_t asked,
                        bool keepalive_round, int64_t now)
{
    bool wake = false;
    int64_t at = asked > 0 && !s->passed ? scratch_find(h, asked, s->user_id) : -1;
    if (at >= 0 && h->scratch_rcs[at] == BR_OK) {
        wake = sub_send_view(h, s, &h->scratch_views[at], false, now);
    } else if (at >= 0 && h->scratch_rcs[at] != VIEW_UNKNOWN) {
        sub_append(s, "", 0, true, true); /* no such event or user any more: the end */
        wake = true;
    } else if (s->has_withheld && position_due(h, s, now)) {
        wake = sub_send_view(h, s, &s->withheld, false, now);
    }
#ifndef BR_PLANT_HUB_NO_PRESENCE /* planted (26-wr-sse-plant.sh): open streams not reported */
    if (h->cfg.presence != NULL && !s->passed &&
        now - s->last_presence_ms >= (int64_t)h->cfg.presence_report_ms) {
        br_presence_seen(h->cfg.presence, s->event_id, s->user_id, now); /* an open stream */
        s->last_presence_ms = now;
    }
#endif
    if (keepalive_round && !wake && now - s->last_send_ms >= (int64_t)h->cfg.keepalive_ms) {
        static const char ka[] = ": keep-alive\n\n";
        if (sub_append(s, ka, sizeof ka - 1, false, false)) {
            s->last_send_ms = now;
            wake = true;
        }
    }
    return wake;
}

static void refresh_locked(struct br_hub *h, bool keepalive_round)
{
    for (uint32_t i = 0; i < BR_HUB_EVENT_SLOTS; i++) {
        struct event_slot *slot = &h->slots[i];
        uint64_t event_id = slot->event_id;
        if (event_id == 0) {
            continue;
        }
        uint32_t asked = 0;
        if (slot->dirty) {
            slot->dirty = false;
            asked = ask_views(h, slot);
            if (slot->event_id != event_id || h->stop) {
                continue; /* every stream closed meanwhile, or stopping */
            }
            /* A pass queued while the views were read goes first: a view that says `left`
             * (a leave applied after the admission) must not end a stream ahead of it. */
            drain_passes_locked(h);
        }
        int64_t now = br_clock_mono_ms();
        uint32_t visited = 0;
        for (struct br_hub_sub *s = slot->head; s != NULL; s = s->ev_next) {
            if (refresh_sub(h, s, asked, keepalive_round, now)) {
                br_http_stream_wake(s->req);
            }
            if (++visited % PASS_DRAIN_EVERY == 0) {
                drain_passes_locked(h); /* the mutex stays held: s stays valid */
            }
        }
    }
}

/* Sleeps until a pass is queued, the hub stops, or refresh_at (monotonic
 * ms). Without the hub's mutex. */
static void wait_for_work(struct br_hub *h, int64_t refresh_at)
{
    int64_t left = refresh_at - br_clock_mono_ms();
    if (left <= 0) {
        return;
    }
    struct timespec until = br_clock_deadline(left);
    pthread_mutex_lock(&h->pq_mu);
    /* One wait: a spurious wake-up costs one more turn of the loop. */
    if (h->pq_len == 0 && !h->pq_stop) {
        pthread_cond_timedwait(&h->pq_cv, &h->pq_mu, &until);
    }
    pthread_mutex_unlock(&h->pq_mu);
}

static void *hub_main(void *arg)
{
    struct br_hub *h = arg;
    int64_t next_keepalive = br_clock_mono_ms() + h->cfg.keepalive_ms / 2;
    int64_t next_flush = br_clock_mono_ms() + PRESENCE_FLUSH_MS;
    int64_t refresh_at = br_clock_mono_ms() + (int64_t)h->cfg.refresh_ms;
    pthread_mutex_lock(&h->mu);
    while (!h->stop) {
        pthread_mutex_unlock(&h->mu);
        wait_for_work(h, refresh_at);
        pthread_mutex_lock(&h->mu);
        if (h->stop) {
            break;
        }
        drain_passes_locked(h);
        if (br_clock_mono_ms() < refresh_at) {
            continue; /* woken for passes only */
        }
        refresh_at = br_clock_mono_ms() + (int64_t)h->cfg.refresh_ms;
        bool ka = br_clock_mono_ms() >= next_keepalive;
        if (ka) {
            next_keepalive = br_clock_mono_ms() + h->cfg.keepalive_ms / 2;
        }
        refresh_locked(h, ka);
        int64_t now = br_clock_mono_ms();
        if (h->cfg.presence != NULL && now >= next_flush && !h->stop) {
            next_flush = now + PRESENCE_FLUSH_MS;
            pthread_mutex_unlock(&h->mu); /* the backend is never asked under it */
            br_presence_flush(h->cfg.presence, h->cfg.backend, now);
            pthread_mutex_lock(&h->mu);
        }
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

/* ---- public ---- */

int br_hub_new(struct br_hub **out, const struct br_hub_config *cfg)
{
    *out = NULL;
    BR_ASSERT(cfg->backend != NULL && cfg->pass_secret != NULL && cfg->refresh_ms > 0 &&
              cfg->keepalive_ms > 0);
    struct br_hub *h = calloc(1, sizeof *h);
    if (h == NULL) {
        return BR_E_IO;
    }
    h->cfg = *cfg;
    if (h->cfg.presence_report_ms == 0) {
        h->cfg.presence_report_ms = BR_PRESENCE_REPORT_MS;
    }
    pthread_mutex_init(&h->mu, NULL);
    pthread_mutex_init(&h->pq_mu, NULL);
    br_clock_cond_init(&h->pq_cv);
    if (pthread_create(&h->thread, NULL, hub_main, h) != 0) {
        pthread_cond_destroy(&h->pq_cv);
        pthread_mutex_destroy(&h->pq_mu);
        pthread_mutex_destroy(&h->mu);
        free(h);
        return BR_E_IO;
    }
    pthread_setname_np(h->thread, "br-hub");
    h->started = true;
    *out = h;
    return BR_OK;
}

int br_hub_pass_token(const struct br_hub *h, uint64_t event_id, uint64_t user_id,
                      uint64_t pass_id, int64_t expires_at_ms, char *out, size_t cap)
{
    struct br_pass_claims c = {
        .event_id = event_id, .user_id = user_id, .pass_id = pass_id,
        .expires_at_ms = expires_at_ms};
    return br_pass_token_sign(h->cfg.pass_secret, h->cfg.pass_secret_len, &c, out, cap) == BR_OK
               ? 0
               : -1;
}

struct br_hub_sub *br_hub_subscribe(struct br_hub *h, struct br_http_req *req, uint64_t event_id,
                                    uint64_t user_id, const struct br_api_queue *view)
{
    struct br_hub_sub *s = calloc(1, sizeof *s);
    if (s == NULL) {
        return NULL;
    }
    pthread_mutex_init(&s->mu, NULL);
    s->event_id = event_id;
    s->user_id = user_id;
    s->req = req;
    pthread_mutex_lock(&h->mu);
    struct event_slot *slot = h->ending ? NULL : slot_find(h, event_id, true);
    if (slot == NULL) {
        pthread_mutex_unlock(&h->mu);
        pthread_mutex_destroy(&s->mu);
        free(s);
        return NULL;
    }
    s->slot = (uint32_t)(slot - h->slots);
    s->ev_next = slot->head;
    if (slot->head != NULL) {
        slot->head->ev_prev = s;
    }
    slot->head = s;
    slot->count++;
    /* A pass issued between the caller's view and now would be missed:
     * the next refresh looks again. */
    slot->dirty = true;
    uint32_t bk = bucket_of(event_id, user_id);
    s->key_next = h->buckets[bk];
    h->buckets[bk] = s;
    h->streams++;
    int64_t now = br_clock_mono_ms();
#ifndef BR_PLANT_HUB_NO_PRESENCE
    br_presence_seen(h->cfg.presence, event_id, user_id, now); /* a stream opened */
#endif
    s->last_presence_ms = now;
    static const char hello[] = "retry: 3000\n\n";
    sub_append(s, hello, sizeof hello - 1, false, false);
    sub_send_view(h, s, view, true, br_clock_mono_ms());
    /* Answer while holding the hub's mutex: no pass can slip in before the
     * stream exists, and the wake below finds a stream to wake. */
    br_http_respond_stream(req, "text/event-stream", sub_pull, s);
    pthread_mutex_unlock(&h->mu);
    return s;
}

void br_hub_closed(struct br_hub *h, struct br_hub_sub *s)
{
    pthread_mutex_lock(&h->mu);
    struct event_slot *slot = &h->slots[s->slot];
    if (s->ev_prev != NULL) {
        s->ev_prev->ev_next = s->ev_next;
    } else {
        slot->head = s->ev_next;
    }
    if (s->ev_next != NULL) {
        s->ev_next->ev_prev = s->ev_prev;
    }
    BR_ASSERT(slot->count > 0);
    if (--slot->count == 0) {
        slot->event_id = 0;
        slot->head = NULL;
        slot->dirty = false;
    }
    struct br_hub_sub **at = &h->buckets[bucket_of(s->event_id, s->user_id)];
    /* s is on its bucket's chain, which is no longer than every stream. */
    uint32_t n = 0;
    while (*at != s) {
        BR_ASSERT(*at != NULL && n++ < h->streams);
        at = &(*at)->key_next;
    }
    *at = s->key_next;
    BR_ASSERT(h->streams > 0);
    h->streams--;
    pthread_mutex_unlock(&h->mu);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

uint32_t br_hub_streams(struct br_hub *h)
{
    pthread_mutex_lock(&h->mu);
    uint32_t n = h->streams;
    pthread_mutex_unlock(&h->mu);
    return n;
}

static void stop_thread(struct br_hub *h)
{
    pthread_mutex_lock(&h->mu);
    bool was = h->started && !h->stop;
    h->stop = true;
    pthread_mutex_unlock(&h->mu);
    pthread_mutex_lock(&h->pq_mu);
    h->pq_stop = true;
    pthread_cond_signal(&h->pq_cv);
    pthread_mutex_unlock(&h->pq_mu);
    if (was) {
        pthread_join(h->thread, NULL);
    }
    /* Passes queued since the thread's last turn still reach their streams
     * (br_hub_end_all then ends them). */
    pthread_mutex_lock(&h->mu);
    drain_passes_locked(h);
    pthread_mutex_unlock(&h->mu);
}

void br_hub_end_all(struct br_hub *h)
{
    stop_thread(h);
    pthread_mutex_lock(&h->mu);
    h->ending = true;
    for (uint32_t i = 0; i < BR_HUB_EVENT_SLOTS; i++) {
        for (struct br_hub_sub *s = h->slots[i].head; s != NULL; s = s->ev_next) {
            sub_append(s, "", 0, true, true);
            br_http_stream_wake(s->req);
        }
    }
    pthread_mutex_unlock(&h->mu);
}

void br_hub_free(struct br_hub *h)
{
    if (h == NULL) {
        return;
    }
    stop_thread(h);
    BR_ASSERT(h->streams == 0);
    free(h->scratch_users);
    free(h->scratch_views);
    free(h->scratch_rcs);
    free(h->pq);
    free(h->pq_work);
    pthread_cond_destroy(&h->pq_cv);
    pthread_mutex_destroy(&h->pq_mu);
    pthread_mutex_destroy(&h->mu);
    free(h);
}
