/*
 * backend_embedded_ops.c -- the embedded backend's operations (struct
 * br_backend_ops, backend.h) over the engine in memory. Writes are built by
 * api_cmd.h, applied under mu (embedded_commit.c) and answered once
 * durable; reads copy from the engine under mu and wait for everything they
 * saw to be durable.
 *
 * Reading the engine. Results are copied out of the engine under the mutex
 * right after the apply (the hold of a reserve, the event of a create), so a
 * call never points into the engine after the mutex is released.
 */

#include <inttypes.h>
#include <string.h>

#include "core/engine.h"
#include "core/panic.h"
#include "core/queue.h"
#include "server/api_cmd.h"
#include "server/embedded_internal.h"
#include "server/metrics.h"

static struct br_embedded *self(struct br_backend *b)
{
    return (struct br_embedded *)(void *)b;
}

/* ---- copying results out of the engine (under mu) ---- */

static void fill_user(const struct br_user *u, struct br_api_user *out, bool secrets)
{
    memset(out, 0, sizeof *out);
    out->id = u->id;
    out->role = u->role;
    memcpy(out->email, u->email, sizeof out->email);
    memcpy(out->name, u->name, sizeof out->name);
    if (secrets) {
        memcpy(out->password_hash, u->password_hash, sizeof out->password_hash);
        memcpy(out->salt, u->salt, sizeof out->salt);
    }
}

static void fill_event(const struct br_event *ev, struct br_api_event *out)
{
    out->id = ev->id;
    out->owner_id = ev->owner_user_id;
    out->spec = ev->spec;
    memcpy(out->held, ev->zone_held, sizeof out->held);
    memcpy(out->sold, ev->zone_sold, sizeof out->sold);
}

static void fill_booking(const struct br_engine *e, const struct br_hold *h,
                         struct br_api_booking *out)
{
    memset(out, 0, sizeof *out);
    const struct br_event *ev = br_catalog_event(e, h->event_id);
    BR_ASSERT(ev != NULL && h->zone_id >= 1 && h->zone_id <= ev->spec.zone_count);
    out->id = h->id;
    out->event_id = h->event_id;
    out->user_id = h->user_id;
    out->zone_id = h->zone_id;
    out->quantity = h->quantity;
    out->state = h->state;
    out->total_minor = h->amount_minor;
    memcpy(out->currency, ev->spec.zones[h->zone_id - 1].currency, sizeof out->currency);
    out->created_at_ms = h->created_ms;
    out->expires_at_ms = h->deadline_ms;
    out->payment_id = h->payment_id;
}

static void fill_queue(const struct br_embedded *x, const struct br_event *ev, uint8_t status,
                       uint32_t position, uint32_t length, uint64_t pass_id, int64_t deadline_ms,
                       int64_t now_ms, struct br_api_queue *out)
{
    br_api_queue_fill(out, ev->id, &ev->spec, status, position, length, pass_id, deadline_ms,
                      x->cfg.tick_ms, now_ms);
}

static void fill_payment(const struct br_engine *e, const struct br_payment *p,
                         struct br_api_payment *out)
{
    memset(out, 0, sizeof *out);
    out->id = p->id;
    out->booking_id = p->hold_id;
    out->state = p->state;
    out->amount_minor = p->amount_minor;
    const struct br_hold *h = &e->holds[p->hold];
    const struct br_event *ev = br_catalog_event(e, h->event_id);
    BR_ASSERT(ev != NULL);
    memcpy(out->currency, ev->spec.zones[h->zone_id - 1].currency, sizeof out->currency);
}

/* ---- the operations ---- */

/* The write ops' common start: takes mu and, unless the call is refused
 * (storage down: mu released, call answered, NULL returned), applies cmd
 * and sets call->err. Returns the outcome with mu held; the caller copies
 * what it needs and calls br_emb_unlock_and_finish. */
static const struct br_outcome *write_locked(struct br_embedded *x, struct br_cmd *cmd,
                                             struct br_call *call)
{
    pthread_mutex_lock(&x->mu);
    if (br_emb_refuse_locked(x, call)) {
        return NULL;
    }
    const struct br_outcome *out = &br_emb_apply_locked(x, cmd, call)->out;
    call->err = out->err;
    return out;
}

static void op_user_register(struct br_backend *b, const char *email, const char *name,
                             const uint8_t hash[BR_PASSWORD_HASH_LEN],
                             const uint8_t salt[BR_SALT_LEN], uint8_t role, struct br_call *call)
{
    struct br_embedded *x = self(b);
    struct br_cmd cmd;
    br_api_cmd_user_register(&cmd, email, name, hash, salt, role);
    const struct br_outcome *out = write_locked(x, &cmd, call);
    if (out == NULL) {
        return;
    }
    if (out->err == BR_OK) {
        fill_user(br_catalog_user(&x->engine, out->id), &call->r.user, false);
        atomic_store(&x->users_known, x->engine.user_count);
    }
    br_emb_unlock_and_finish(x, call, true);
}

static bool op_user_exists(struct br_backend *b, uint64_t user_id)
{
    struct br_embedded *x = self(b);
    return user_id >= 1 && user_id <= atomic_load_explicit(&x->users_known, memory_order_relaxed);
}

/* Applies a session command (its now_ms set by br_emb_apply_locked) and copies the
 * session out. Not refused up front while storage is down (as before the
 * split): it waits for durability like any write. */
static void session_cmd(struct br_embedded *x, struct br_cmd *cmd, struct br_call *call)
{
    pthread_mutex_lock(&x->mu);
    const struct br_outcome *out = &br_emb_apply_locked(x, cmd, call)->out;
    call->err = out->err;
    uint8_t role = 0;
    bool issued = cmd->type == BR_CMD_SESSION_OPEN || cmd->type == BR_CMD_SESSION_ROTATE;
    if (out->err == BR_OK && issued) {
        const struct br_user *u = br_catalog_user(&x->engine, out->ref);
        BR_ASSERT(u != NULL);
        role = u->role;
    }
    br_api_session_from_outcome(&call->r.session, cmd, out, role);
    br_emb_unlock_and_finish(x, call, true);
}

static void op_session_open(struct br_backend *b, uint64_t user, uint32_t generation,
                            int64_t ttl_ms, struct br_call *call)
{
    struct br_cmd cmd;
    br_api_cmd_session_open(&cmd, user, generation, ttl_ms);
    session_cmd(self(b), &cmd, call);
}

static void op_session_rotate(struct br_backend *b, uint64_t session_id, uint32_t generation,
                              int64_t ttl_ms, struct br_call *call)
{
    struct br_cmd cmd;
    br_api_cmd_session_rotate(&cmd, session_id, generation, ttl_ms);
    session_cmd(self(b), &cmd, call);
}

static void op_session_revoke(struct br_backend *b, uint64_t session_id, uint32_t generation,
                              struct br_call *call)
{
    struct br_cmd cmd;
    br_api_cmd_session_revoke(&cmd, session_id, generation);
    session_cmd(self(b), &cmd, call);
}

static void op_session_revoke_all(struct br_backend *b, uint64_t user, struct br_call *call)
{
    struct br_cmd cmd;
    br_api_cmd_session_revoke_all(&cmd, user);
    session_cmd(self(b), &cmd, call);
}

static void op_user_find(struct br_backend *b, const char *email, struct br_call *call)
{
    struct br_embedded *x = self(b);
    pthread_mutex_lock(&x->mu);
    uint64_t id = br_catalog_user_by_email(&x->engine, email);
    call->err = id == 0 ? BR_E_NOT_FOUND : BR_OK;
    if (id != 0) {
        fill_user(br_catalog_user(&x->engine, id), &call->r.user, true);
    }
    br_emb_unlock_and_finish(x, call, false);
}

static void op_user_get(struct br_backend *b, uint64_t user_id, struct br_call *call)
{
    struct br_embedded *x = self(b);
    pthread_mutex_lock(&x->mu);
    const struct br_user *u = br_catalog_user(&x->engine, user_id);
    call->err = u == NULL ? BR_E_NOT_FOUND : BR_OK;
    if (u != NULL) {
        fill_user(u, &call->r.user, false);
    }
    br_emb_unlock_and_finish(x, call, false);
}

static void op_user_role_set(struct br_backend *b, uint64_t actor, uint64_t target, uint8_t role,
                             struct br_call *call)
{
    struct br_embedded *x = self(b);
    struct br_cmd cmd;
    br_api_cmd_user_role_set(&cmd, actor, target, role);
    const struct br_outcome *out = write_locked(x, &cmd, call);
    if (out == NULL) {
        return;
    }
    const struct br_user *u = br_catalog_user(&x->engine, target);
    if (out->err == BR_OK && u != NULL) {
        fill_user(u, &call->r.user, false);
    }
    br_emb_unlock_and_finish(x, call, true);
}

static void op_event_create(struct br_backend *b, uint64_t actor, const struct br_event_spec *spec,
                            struct br_call *call)
{
    struct br_embedded *x = self(b);
    struct br_cmd cmd;
    br_api_cmd_event_create(&cmd, actor, spec);
    const struct br_outcome *out = write_locked(x, &cmd, call);
    if (out == NULL) {
        return;
    }
    if (out->err == BR_OK) {
        fill_event(br_catalog_event(&x->engine, out->id), &call->r.event);
    }
    br_emb_unlock_and_finish(x, call, true);
}

static void op_event_list(struct br_backend *b, uint64_t after_id, struct br_call *call)
{
    struct br_embedded *x = self(b);
    pthread_mutex_lock(&x->mu);
    call->list_count = 0;
    /* after_id is the client's, any uint64: 2^64-1 (what ?after_id= reads
     * for an overflowing number) must not wrap around to event 0. */
    uint64_t first = after_id < x->engine.event_count ? after_id + 1 : UINT64_MAX;
    for (uint64_t id = first; id <= x->engine.event_count && call->list_count < call->list_cap;
         id++) {
        const struct br_event *ev = br_catalog_event(&x->engine, id);
        BR_ASSERT(ev != NULL);
        fill_event(ev, &call->events[call->list_count++]);
    }
    call->err = BR_OK;
    br_emb_unlock_and_finish(x, call, false);
}

static void op_event_get(struct br_backend *b, uint64_t event_id, struct br_call *call)
{
    struct br_embedded *x = self(b);
    pthread_mutex_lock(&x->mu);
    const struct br_event *ev = br_catalog_event(&x->engine, event_id);
    call->err = ev == NULL ? BR_E_NOT_FOUND : BR_OK;
    if (ev != NULL) {
        fill_event(ev, &call->r.event);
    }
    br_emb_unlock_and_finish(x, call, false);
}

static void op_event_stats(struct br_backend *b, uint64_t event_id, struct br_call *call)
{
    struct br_embedded *x = self(b);
    pthread_mutex_lock(&x->mu);
    struct br_event_stats s;
    call->err = br_engine_event_stats(&x->engine, event_id, &s);
    if (call->err == BR_OK) {
        const struct br_event *ev = br_catalog_event(&x->engine, event_id);
        struct br_api_stats *o = &call->r.stats;
        memset(o, 0, sizeof *o);
        o->event_id = event_id;
        o->owner_id = ev->owner_user_id;
        o->queue_length = s.queue_length;
        o->admitted = s.admitted;
        o->active_passes = s.active_passes;
        o->zone_count = ev->spec.zone_count;
        for (uint32_t z = 0; z < ev->spec.zone_count; z++) {
            o->capacity[z] = ev->spec.zones[z].capacity;
            o->held[z] = ev->zone_held[z];
            o->sold[z] = ev->zone_sold[z];
        }
        memcpy(o->bookings, s.bookings, sizeof o->bookings);
    }
    br_emb_unlock_and_finish(x, call, false);
}

static void op_queue_join(struct br_backend *b, uint64_t user, uint64_t event_id,
                          struct br_call *call)
{
    struct br_embedded *x = self(b);
    struct br_cmd cmd;
    br_api_cmd_queue_join(&cmd, user, event_id);
    const struct br_outcome *out = write_locked(x, &cmd, call);
    if (out == NULL) {
        return;
    }
    if (out->err == BR_OK) {
        const struct br_event *ev = br_catalog_event(&x->engine, event_id);
        br_api_queue_from_join(&call->r.queue, &cmd, out, &ev->spec, x->cfg.tick_ms);
        br_api_queue_room(&call->r.queue, &ev->spec, ev->q_admit_per_min, &ev->q_rate,
                          br_queue_gate(ev, cmd.now_ms), x->cfg.tick_ms, cmd.now_ms);
    }
    br_emb_unlock_and_finish(x, call, true);
}

static void op_queue_leave(struct br_backend *b, uint64_t user, uint64_t event_id,
                           struct br_call *call)
{
    struct br_embedded *x = self(b);
    struct br_cmd cmd;
    br_api_cmd_queue_leave(&cmd, user, event_id);
    const struct br_outcome *out = write_locked(x, &cmd, call);
    if (out == NULL) {
        return;
    }
    br_emb_unlock_and_finish(x, call, true);
}

/* The view of (event, user) under mu, at now_ms. */
static int view_locked(struct br_embedded *x, uint64_t user, uint64_t event_id, int64_t now_ms,
                       struct br_api_queue *out)
{
    struct br_queue_view v;
    int rc = br_queue_view(&x->engine, event_id, user, &v);
    if (rc == BR_OK) {
        const struct br_event *ev = br_catalog_event(&x->engine, event_id);
        fill_queue(x, ev, v.status, v.position, v.queue_length, v.pass_id, v.pass_deadline_ms,
                   now_ms, out);
        br_api_queue_room(out, &ev->spec, ev->q_admit_per_min, &ev->q_rate,
                          br_queue_gate(ev, now_ms), x->cfg.tick_ms, now_ms);
    }
    return rc;
}

static void op_queue_position(struct br_backend *b, uint64_t user, uint64_t event_id,
                              struct br_call *call)
{
    struct br_embedded *x = self(b);
    pthread_mutex_lock(&x->mu);
    call->err = view_locked(x, user, event_id, br_emb_now_locked(x), &call->r.queue);
    br_emb_unlock_and_finish(x, call, false);
}

static int op_queue_peek(struct br_backend *b, uint64_t user, uint64_t event_id,
                         struct br_api_queue *out)
{
    struct br_embedded *x = self(b);
    pthread_mutex_lock(&x->mu);
    int rc = view_locked(x, user, event_id, br_emb_now_locked(x), out);
    pthread_mutex_unlock(&x->mu);
    return rc;
}

/* One lock and one clock reading for the n views (the hub's refresh). */
static int op_queue_positions(struct br_backend *b, uint64_t event_id, const uint64_t *users,
                              uint32_t n, struct br_api_queue *out, int *rc)
{
    BR_ASSERT(n <= BR_API_POSITIONS_MAX);
    struct br_embedded *x = self(b);
    pthread_mutex_lock(&x->mu);
    int64_t now = br_emb_now_locked(x);
    for (uint32_t i = 0; i < n; i++) {
        rc[i] = view_locked(x, users[i], event_id, now, &out[i]);
    }
    pthread_mutex_unlock(&x->mu);
    return BR_OK;
}

/* ---- issue 13: the waiting room ---- */

static void op_queue_mode_set(struct br_backend *b, uint64_t actor, uint64_t event_id, uint8_t set,
                              uint8_t mode, uint32_t max_active, uint32_t admit_per_min,
                              struct br_call *call)
{
    struct br_embedded *x = self(b);
    struct br_cmd cmd;
    br_api_cmd_queue_mode_set(&cmd, actor, event_id, set, mode, max_active, admit_per_min);
    const struct br_outcome *out = write_locked(x, &cmd, call);
    if (out == NULL) {
        return;
    }
    struct br_queue_event_view v;
    if (out->err == BR_OK &&
        br_queue_event_view(&x->engine, event_id, cmd.now_ms, x->cfg.tick_ms, &v) == BR_OK) {
        br_api_queue_status_fill(&call->r.queue_status, event_id, &v, cmd.now_ms);
    }
    br_emb_unlock_and_finish(x, call, true);
}

static int op_queue_status_peek(struct br_backend *b, uint64_t event_id,
                                struct br_api_queue_status *out)
{
    struct br_embedded *x = self(b);
    pthread_mutex_lock(&x->mu);
    int64_t now = br_emb_now_locked(x);
    struct br_queue_event_view v;
    int rc = br_queue_event_view(&x->engine, event_id, now, x->cfg.tick_ms, &v);
    if (rc == BR_OK) {
        br_api_queue_status_fill(out, event_id, &v, now);
    }
    pthread_mutex_unlock(&x->mu);
    return rc == BR_OK ? BR_OK : BR_E_NOT_FOUND;
}

/* Fire and forget: one presence command (20) per BR_PRESENCE_BATCH_MAX
 * users, journaled like any command. Nothing is written for an event
 * without presence (presence_ttl_s 0: the core would change nothing) or
 * while the journal cannot be written (a lost report only delays a lapse). */
static void op_presence_report(struct br_backend *b, uint64_t event_id, const uint64_t *users,
                               uint32_t n)
{
    struct br_embedded *x = self(b);
    pthread_mutex_lock(&x->mu);
    const struct br_event *ev = br_catalog_event(&x->engine, event_id);
    if (ev == NULL || ev->spec.presence_ttl_s == 0 || x->storage_down || !x->running ||
        x->stop_flusher) {
        pthread_mutex_unlock(&x->mu);
        return;
    }
    for (uint32_t at = 0; at < n; at += BR_PRESENCE_BATCH_MAX) {
        uint32_t k = n - at < BR_PRESENCE_BATCH_MAX ? n - at : BR_PRESENCE_BATCH_MAX;
        struct br_cmd cmd;
        br_api_cmd_presence(&cmd, event_id, users + at, k);
        br_emb_apply_locked(x, &cmd, NULL);
    }
    br_emb_unlock_kick(x);
}

static void op_reserve(struct br_backend *b, uint64_t user, uint64_t event_id, uint32_t zone_id,
                       uint32_t quantity, uint64_t pass_id, uint64_t idem_key,
                       struct br_call *call)
{
    struct br_embedded *x = self(b);
    struct br_cmd cmd;
    br_api_cmd_reserve(&cmd, user, event_id, zone_id, quantity, pass_id, idem_key);
    const struct br_outcome *out = write_locked(x, &cmd, call);
    if (out == NULL) {
        return;
    }
    /* From the stored hold, not the outcome: an idempotent repeat answers
     * with the first hold's creation time and payment (api_cmd.h). */
    const struct br_hold *h = out->id != 0 ? br_inventory_hold(&x->engine, out->id) : NULL;
    if (h != NULL) {
        fill_booking(&x->engine, h, &call->r.booking);
    }
    br_emb_unlock_and_finish(x, call, true);
}

static void op_booking_list(struct br_backend *b, uint64_t user, struct br_call *call)
{
    struct br_embedded *x = self(b);
    uint64_t ids[BR_API_LIST_MAX];
    uint32_t cap = call->list_cap < BR_API_LIST_MAX ? call->list_cap : BR_API_LIST_MAX;
    pthread_mutex_lock(&x->mu);
    uint32_t n = br_engine_user_holds(&x->engine, user, ids, cap);
    for (uint32_t i = 0; i < n; i++) {
        fill_booking(&x->engine, br_inventory_hold(&x->engine, ids[i]), &call->bookings[i]);
    }
    call->list_count = n;
    call->err = BR_OK;
    br_emb_unlock_and_finish(x, call, false);
}

static void op_booking_get(struct br_backend *b, uint64_t booking_id, struct br_call *call)
{
    struct br_embedded *x = self(b);
    pthread_mutex_lock(&x->mu);
    const struct br_hold *h = br_inventory_hold(&x->engine, booking_id);
    call->err = h == NULL ? BR_E_NOT_FOUND : BR_OK;
    if (h != NULL) {
        fill_booking(&x->engine, h, &call->r.booking);
    }
    br_emb_unlock_and_finish(x, call, false);
}

static void op_booking_cancel(struct br_backend *b, uint64_t user, uint64_t booking_id,
                              struct br_call *call)
{
    struct br_embedded *x = self(b);
    struct br_cmd cmd;
    br_api_cmd_booking_cancel(&cmd, user, booking_id);
    const struct br_outcome *out = write_locked(x, &cmd, call);
    if (out == NULL) {
        return;
    }
    const struct br_hold *h = br_inventory_hold(&x->engine, booking_id);
    if (h != NULL && h->user_id == user) {
        fill_booking(&x->engine, h, &call->r.booking);
    }
    br_emb_unlock_and_finish(x, call, true);
}

static void op_payment_create(struct br_backend *b, uint64_t user, uint64_t booking_id,
                              struct br_call *call)
{
    struct br_embedded *x = self(b);
    struct br_cmd cmd;
    br_api_cmd_payment_create_checked(&cmd, user, booking_id,
                                      x->cfg.payment_check_ms != 0 ? x->cfg.payment_check_ms
                                                                   : BR_PAYMENT_CHECK_MS_DEFAULT);
    pthread_mutex_lock(&x->mu);
    if (br_emb_refuse_locked(x, call)) {
        return;
    }
    struct pending_rec *r = br_emb_apply_locked(x, &cmd, call);
    const struct br_outcome *out = &r->out;
    call->err = out->err;
    const struct br_payment *p = out->err == BR_OK ? br_saga_payment(&x->engine, out->id) : NULL;
    if (p != NULL) {
        fill_payment(&x->engine, p, &call->r.payment);
        memcpy(r->currency, call->r.payment.currency, sizeof r->currency);
    }
    br_emb_unlock_and_finish(x, call, true);
}

static void op_payment_event(struct br_backend *b, const char *provider_event_id,
                             uint64_t payment_id, bool succeeded, struct br_call *call)
{
    struct br_embedded *x = self(b);
    struct br_cmd cmd;
    br_api_cmd_payment_event(&cmd, provider_event_id, payment_id, succeeded);
    const struct br_outcome *out = write_locked(x, &cmd, call);
    if (out == NULL) {
        return;
    }
    const struct br_payment *p = br_saga_payment(&x->engine, payment_id);
    if (p != NULL) {
        fill_payment(&x->engine, p, &call->r.payment);
    }
    br_emb_unlock_and_finish(x, call, true);
}

static bool op_ready(struct br_backend *b, const char **why)
{
    struct br_embedded *x = self(b);
    pthread_mutex_lock(&x->mu);
    bool r = x->running && !x->stop_flusher && !x->storage_down;
    const char *reason = !x->running || x->stop_flusher ? "the backend is not running"
                         : x->storage_err == BR_E_STORAGE_UNAVAILABLE
                             ? "the journal cannot be written: no space left on the data disk"
                             : "the journal cannot be written: i/o error on the data disk";
    pthread_mutex_unlock(&x->mu);
    if (why != NULL) {
        *why = r ? "" : reason;
    }
    return r;
}

static void op_gauges(struct br_backend *b, struct br_api_gauges *g)
{
    struct br_embedded *x = self(b);
    memset(g, 0, sizeof *g);
    pthread_mutex_lock(&x->mu);
    for (uint32_t i = 0; i < x->engine.event_count && i < BR_API_LIST_MAX; i++) {
        const struct br_event *ev = &x->engine.events[i];
        g->events[i].id = ev->id;
        g->events[i].zone_count = ev->spec.zone_count;
        g->events[i].queue_length = ev->q_waiting;
        g->events[i].admitted = ev->passes_issued;
        g->events[i].active_passes = ev->passes_active;
        for (uint32_t z = 0; z < ev->spec.zone_count; z++) {
            g->events[i].capacity[z] = ev->spec.zones[z].capacity;
            g->events[i].held[z] = ev->zone_held[z];
            g->events[i].sold[z] = ev->zone_sold[z];
        }
        g->event_count = i + 1;
    }
    g->commands = x->engine.applied;
    g->engine_bytes = x->engine_bytes;
    for (unsigned t = 0; t < BR_TABLE_COUNT; t++) {
        br_engine_table_usage(&x->engine, t, &g->table_rows[t], &g->table_rows_max[t]);
        g->capacity_exhausted[t] = x->full[t];
    }
    pthread_mutex_unlock(&x->mu);
}

/* The journal's families (backend.h: ops->metrics), in the order and with
 * the text /metrics has always had. */
static void op_metrics(struct br_backend *b, struct br_metrics_sink *out)
{
    struct br_embedded *x = self(b);
    pthread_mutex_lock(&x->mu);
    uint64_t commits = x->commits;
    uint64_t sync_us = x->sync_us;
    uint64_t gather_us = x->gather_us;
    bool down = x->storage_down;
    uint64_t failures = x->storage_failures;
    uint64_t lapsed = 0; /* issue 13: places lapsed over every sale (q_lapsed) */
    for (uint32_t i = 0; i < x->engine.event_count; i++) {
        lapsed += x->engine.events[i].q_lapsed;
    }
    pthread_mutex_unlock(&x->mu);
    br_metrics_printf(
        out,
        "# HELP br_journal_commits_total Group commits (fdatasyncs) of the journal.\n"
        "# TYPE br_journal_commits_total counter\nbr_journal_commits_total %" PRIu64 "\n"
        "# HELP br_journal_sync_seconds_total Time spent in the commits' fdatasyncs.\n"
        "# TYPE br_journal_sync_seconds_total counter\nbr_journal_sync_seconds_total %.6f\n"
        "# HELP br_journal_gather_seconds_total Time each commit's first command waited "
        "before the write.\n"
        "# TYPE br_journal_gather_seconds_total counter\nbr_journal_gather_seconds_total %.6f\n"
        "# HELP br_journal_replayed_commands Commands replayed from the journal at start.\n"
        "# TYPE br_journal_replayed_commands gauge\nbr_journal_replayed_commands %" PRIu64 "\n",
        commits, (double)sync_us / 1e6, (double)gather_us / 1e6, x->replayed);
    br_metrics_printf(
        out,
        "# HELP br_journal_storage_unavailable 1 while writes are refused because the "
        "journal cannot be written (full or failing data disk).\n"
        "# TYPE br_journal_storage_unavailable gauge\nbr_journal_storage_unavailable %d\n"
        "# HELP br_journal_storage_failures_total Failed journal writes and zero-fills.\n"
        "# TYPE br_journal_storage_failures_total counter\n"
        "br_journal_storage_failures_total %" PRIu64 "\n",
        down ? 1 : 0, failures);
    br_metrics_printf(out,
                      "# HELP br_queue_places_lapsed_total Waiting places skipped at their turn "
                      "because the user was not seen for the event's presence_ttl_s.\n"
                      "# TYPE br_queue_places_lapsed_total counter\n"
                      "br_queue_places_lapsed_total %" PRIu64 "\n",
                      lapsed);
}

const struct br_backend_ops br_emb_ops = {
    .name = "embedded",
    .user_register = op_user_register,
    .user_find = op_user_find,
    .user_get = op_user_get,
    .user_role_set = op_user_role_set,
    .user_exists = op_user_exists,
    .session_open = op_session_open,
    .session_rotate = op_session_rotate,
    .session_revoke = op_session_revoke,
    .session_revoke_all = op_session_revoke_all,
    .event_create = op_event_create,
    .event_list = op_event_list,
    .event_get = op_event_get,
    .event_stats = op_event_stats,
    .queue_join = op_queue_join,
    .queue_leave = op_queue_leave,
    .queue_position = op_queue_position,
    .queue_peek = op_queue_peek,
    .queue_positions = op_queue_positions,
    .queue_mode_set = op_queue_mode_set,
    .queue_status_peek = op_queue_status_peek,
    .presence_report = op_presence_report,
    .pow_use = NULL, /* the routes keep the used set in-process (br_pow) */
    .reserve = op_reserve,
    .booking_list = op_booking_list,
    .booking_get = op_booking_get,
    .booking_cancel = op_booking_cancel,
    .payment_create = op_payment_create,
    .payment_event = op_payment_event,
    .ready = op_ready,
    .gauges = op_gauges,
    .metrics = op_metrics,
};
