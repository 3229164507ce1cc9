/*
 * backend_distributed_sale.c -- the on-sale operations of the distributed
 * backend: queue, bookings and payments. Every change is one Lua twin
 * (br_redis_apply, which also appends it to the event's log); answers are
 * filled from the outcome and, where the outcome does not carry a field
 * (a booking's zone, its creation time), from one read of the record the
 * script just wrote. Effects are carried out here, synchronously, before
 * the answer: a charge creates the provider's intent, a refund is made and
 * its result applied, a pass is published to every process's hub.
 * A crash between a script and its effect leaves the duty in Redis (a
 * pending payment is charged again by the next payment_create; a refund
 * is re-emitted by saga_step), so effects are never the only record.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "core/panic.h"
#include "core/queue.h"
#include "server/api_cmd.h"
#include "server/backend_distributed_int.h"

static struct br_distributed *self(struct br_backend *b)
{
    return (struct br_distributed *)(void *)b;
}

#define W32 4294967296ull

/* ---- answers ---- */

/* A stored hold naming a zone its event does not have: Redis's state
 * breaks an invariant (logged loudly; never answered from). */
static int zone_ok(struct br_distributed *x, uint64_t hold_id, uint32_t zone_id,
                   const struct dist_spec *s)
{
    if (zone_id >= 1 && zone_id <= s->spec.zone_count) {
        return BR_OK;
    }
    br_logf(x->cfg.log, BR_LOG_ERROR, "redis: a hold names a zone its event does not have",
            "\"hold\":%" PRIu64 ",\"zone\":%u", hold_id, zone_id);
    return BR_E_CORRUPT;
}

/* Issue 13: an event's live waiting-room fields (one round trip). Not
 * noted as Redis being down: a failure here costs the room's fields of one
 * answer, and the read next to it notes the connection. */
static int read_live(struct br_distributed *x, struct dist_conn *c, uint64_t event_id,
                     struct br_redis_queue_live *live)
{
    (void)x;
    uint64_t owner = 0;
    struct br_event_spec spec;
    memset(live, 0, sizeof *live);
    return br_redis_event_read_live(&c->r, event_id, &owner, &spec, live);
}

/* The gate now from the live fields (core/queue.h br_queue_gate_of). The
 * live fields do not say whether the opening shuffle ran: by the server's
 * clock, before the opening is not open. */
static uint8_t live_gate(const struct dist_spec *s, const struct br_redis_queue_live *live,
                         int64_t now_ms)
{
    return br_queue_gate_of(live->mode, s->spec.queue_flags, live->sold_out, live->avail,
                            s->spec.sale_opens_at_ms, false, now_ms);
}

/* A view read from Redis, completed as every backend completes it
 * (api_cmd.h: the estimate, the pass only when admitted; issue 13: the
 * gate and the estimate from the live fields, when they could be read). */
static void fill_estimate(struct br_distributed *x, const struct dist_spec *s,
                          const struct br_redis_queue_live *live, struct br_api_queue *v,
                          int64_t now_ms)
{
    struct br_api_queue raw = *v;
    if (live != NULL) { /* the views of Redis carry the stored status: §9's overlay here */
        raw.status = br_queue_status_overlay(raw.status, live->mode, s->spec.queue_flags,
                                           live->sold_out);
    }
    br_api_queue_fill(v, raw.event_id, &s->spec, raw.status, raw.position, raw.queue_length,
                      raw.pass_id, raw.pass_expires_at_ms, x->cfg.tick_ms, now_ms);
    if (live != NULL) {
        br_api_queue_room(v, &s->spec, live->admit_per_min, &live->rate, live_gate(s, live, now_ms),
                          x->cfg.tick_ms, now_ms);
    }
}

static int fill_booking(struct br_distributed *x, struct dist_conn *c, uint64_t hold_id,
                        struct br_api_booking *out)
{
    struct br_redis_hold h;
    int rc = dist_read_hold(x, c, hold_id, &h);
    struct dist_spec s;
    if (rc == BR_OK) {
        rc = dist_spec(x, c, hold_id >> 32, &s);
    }
    if (rc == BR_OK) {
        rc = zone_ok(x, hold_id, h.zone_id, &s);
    }
    if (rc != BR_OK) {
        return rc;
    }
    memset(out, 0, sizeof *out);
    out->id = hold_id;
    out->event_id = hold_id >> 32;
    out->user_id = h.user_id;
    out->zone_id = h.zone_id;
    out->quantity = h.quantity;
    out->state = h.state;
    out->total_minor = h.amount_minor;
    memcpy(out->currency, s.spec.zones[h.zone_id - 1].currency, sizeof out->currency);
    out->created_at_ms = h.created_ms;
    out->expires_at_ms = h.deadline_ms;
    out->payment_id = h.payment_seq != 0 ? (hold_id >> 32) * W32 + h.payment_seq : 0;
    return BR_OK;
}

static int fill_payment(struct br_distributed *x, struct dist_conn *c, uint64_t payment_id,
                        struct br_api_payment *out)
{
    struct br_redis_payment p;
    int rc = dist_read_payment(x, c, payment_id, &p);
    uint64_t event_id = payment_id >> 32;
    struct br_redis_hold h;
    if (rc == BR_OK) {
        rc = dist_read_hold(x, c, event_id * W32 + p.hold_seq, &h);
    }
    struct dist_spec s;
    if (rc == BR_OK) {
        rc = dist_spec(x, c, event_id, &s);
    }
    if (rc == BR_OK) {
        rc = zone_ok(x, event_id * W32 + p.hold_seq, h.zone_id, &s);
    }
    if (rc != BR_OK) {
        return rc;
    }
    memset(out, 0, sizeof *out);
    out->id = payment_id;
    out->booking_id = event_id * W32 + p.hold_seq;
    out->state = p.state;
    out->amount_minor = p.amount_minor;
    memcpy(out->currency, s.spec.zones[h.zone_id - 1].currency, sizeof out->currency);
    return BR_OK;
}

/* ---- effects ---- */

/* A refund at the provider (the payment id is its idempotency key), then
 * its result as a command. A failure here leaves the payment
 * refund_pending: saga_step re-emits it at its next attempt. */
static void refund(struct br_distributed *x, struct dist_conn *c, const struct br_effect *fx)
{
    int prc = br_provider_refund(&x->cfg.payments, fx->id, NULL, fx->amount_minor);
    struct br_cmd cmd;
    br_api_cmd_refund_result(&cmd, fx->id, prc == BR_OK);
    struct br_outcome out;
    uint32_t n = 0; /* its effects are not carried out: fx_inner, not fx (being read) */
    int rc = dist_apply(x, c, &cmd, &out, c->fx_inner, &n);
    if (rc != BR_OK) {
        br_logf(x->cfg.log, BR_LOG_WARN, "refund result not applied: the saga retries",
                "\"payment\":%" PRIu64 ",\"provider\":\"%s\",\"err\":\"%s\"", fx->id,
                br_err_name(prc), br_err_name(rc));
    }
}

static void charge(struct br_distributed *x, struct dist_conn *c, const struct br_effect *fx,
                   struct br_api_payment *pay)
{
    char id[BR_API_PROVIDER_ID_MAX] = "";
    char secret[BR_API_SECRET_MAX] = "";
    char currency[BR_CURRENCY_MAX] = "EUR";
    struct br_redis_hold h;
    struct dist_spec s;
    if (dist_read_hold(x, c, fx->ref, &h) == BR_OK && dist_spec(x, c, fx->event_id, &s) == BR_OK &&
        h.zone_id >= 1 && h.zone_id <= s.spec.zone_count) {
        memcpy(currency, s.spec.zones[h.zone_id - 1].currency, sizeof currency);
    }
    int rc = br_provider_create_intent(&x->cfg.payments, fx->id, fx->ref, fx->amount_minor,
                                       currency, id, secret);
    if (pay == NULL) {
        return;
    }
    if (rc == BR_OK) {
        snprintf(pay->provider_payment_id, sizeof pay->provider_payment_id, "%s", id);
        snprintf(pay->client_secret, sizeof pay->client_secret, "%s", secret);
    }
}

void dist_effects(struct br_distributed *x, struct dist_conn *c, const struct br_cmd *cmd,
                  const struct br_outcome *out, const struct br_effect *fx, uint32_t n,
                  struct br_api_payment *pay)
{
    dist_fanout_passes(x, c, fx, n);
    dist_fanout_states(x, c, fx, n);
    for (uint32_t i = 0; i < n; i++) {
        switch (fx[i].kind) {
        case BR_FX_PROVIDER_CHARGE:
            charge(x, c, &fx[i], pay);
            break;
        case BR_FX_PROVIDER_REFUND:
            refund(x, c, &fx[i]);
            break;
        default:
            break; /* confirmed / expired / notify: visible through the booking */
        }
    }
    bool moved = cmd->type == BR_CMD_QUEUE_JOIN || cmd->type == BR_CMD_QUEUE_LEAVE ||
                 (cmd->type == BR_CMD_ADMIT && (out->count > 0 || n > 0));
    if (moved && out->err == BR_OK) {
        dist_fanout_queue_changed(x, cmd->u.queue_join.event_id);
    }
    if (cmd->type == BR_CMD_QUEUE_MODE_SET && out->err == BR_OK) {
        dist_fanout_queue_changed(x, cmd->u.queue_mode_set.event_id); /* views' overlay */
    }
}

/* ---- queue ---- */

static void queue_cmd(struct br_distributed *x, uint8_t type, uint64_t user, uint64_t event_id,
                      struct br_call *call)
{
    struct br_cmd cmd;
    if (type == BR_CMD_QUEUE_JOIN) {
        br_api_cmd_queue_join(&cmd, user, event_id);
    } else {
        br_api_cmd_queue_leave(&cmd, user, event_id);
    }
    struct dist_conn *c = NULL;
    call->err = dist_take_for_write(x, &c);
    if (call->err == BR_OK) {
        struct br_outcome out;
        uint32_t n = 0;
        call->err = dist_apply(x, c, &cmd, &out, c->fx, &n);
        dist_effects(x, c, &cmd, &out, c->fx, n, NULL);
        struct dist_spec s;
        if (call->err == BR_OK && type == BR_CMD_QUEUE_JOIN) {
            int rc = dist_spec(x, c, event_id, &s);
            struct br_redis_queue_live live;
            if (rc == BR_OK) {
                br_api_queue_from_join(&call->r.queue, &cmd, &out, &s.spec, x->cfg.tick_ms);
                if (read_live(x, c, event_id, &live) == BR_OK) {
                    br_api_queue_room(&call->r.queue, &s.spec, live.admit_per_min, &live.rate,
                                      live_gate(&s, &live, cmd.now_ms), x->cfg.tick_ms,
                                      cmd.now_ms);
                }
            } else {
                call->err = rc;
            }
        }
        dist_conn_give(x, c);
    }
    call->done(call);
}

void dist_op_queue_join(struct br_backend *b, uint64_t user, uint64_t event_id,
                        struct br_call *call)
{
    queue_cmd(self(b), BR_CMD_QUEUE_JOIN, user, event_id, call);
}

void dist_op_queue_leave(struct br_backend *b, uint64_t user, uint64_t event_id,
                         struct br_call *call)
{
    queue_cmd(self(b), BR_CMD_QUEUE_LEAVE, user, event_id, call);
}

/* Views of n users of one event, estimates included. */
static int views(struct br_distributed *x, struct dist_conn *c, uint64_t event_id,
                 const uint64_t *users, uint32_t n, struct br_api_queue *out, int *rc)
{
    struct dist_spec s;
    int err = dist_spec(x, c, event_id, &s);
    if (err == BR_OK) {
        err = dist_read_views(x, c, event_id, users, n, out, rc);
    }
    if (err != BR_OK) {
        return err;
    }
    struct br_redis_queue_live live;
    bool have_live = read_live(x, c, event_id, &live) == BR_OK;
    int64_t now = dist_now_ms(x);
    for (uint32_t i = 0; i < n; i++) {
        if (rc[i] == BR_OK) {
            fill_estimate(x, &s, have_live ? &live : NULL, &out[i], now);
        }
    }
    return BR_OK;
}

int dist_op_queue_peek(struct br_backend *b, uint64_t user, uint64_t event_id,
                       struct br_api_queue *out)
{
    struct br_distributed *x = self(b);
    struct dist_conn *c = NULL;
    int err = dist_conn_take(x, &c);
    int rc = BR_OK;
    if (err == BR_OK) {
        err = views(x, c, event_id, &user, 1, out, &rc);
        dist_conn_give(x, c);
    }
    return err != BR_OK ? err : rc;
}

int dist_op_queue_positions(struct br_backend *b, uint64_t event_id, const uint64_t *users,
                            uint32_t n, struct br_api_queue *out, int *rc)
{
    struct br_distributed *x = self(b);
    BR_ASSERT(n <= BR_API_POSITIONS_MAX);
    struct dist_conn *c = NULL;
    int err = dist_conn_take(x, &c);
    if (err != BR_OK) {
        return err;
    }
    err = views(x, c, event_id, users, n, out, rc);
    dist_conn_give(x, c);
    if (err == BR_E_NOT_FOUND) {
        for (uint32_t i = 0; i < n; i++) {
            rc[i] = BR_E_NOT_FOUND; /* the whole call answered: per user */
        }
        err = BR_OK;
    }
    return err;
}

void dist_op_queue_position(struct br_backend *b, uint64_t user, uint64_t event_id,
                            struct br_call *call)
{
    call->err = dist_op_queue_peek(b, user, event_id, &call->r.queue);
    call->done(call);
}

/* ---- issue 13: the waiting room ---- */

/* The event's public queue status from its spec and live fields. */
static int status_read(struct br_distributed *x, struct dist_conn *c, uint64_t event_id,
                       struct br_api_queue_status *out)
{
    struct dist_spec s;
    int rc = dist_spec(x, c, event_id, &s);
    struct br_redis_queue_live live;
    if (rc == BR_OK) {
        rc = read_live(x, c, event_id, &live);
        dist_note_redis(x, rc);
    }
    if (rc != BR_OK) {
        return rc;
    }
    int64_t now = dist_now_ms(x);
    struct br_queue_event_view v;
    memset(&v, 0, sizeof v);
    v.mode = live.mode;
    v.gate = live_gate(&s, &live, now);
    v.pow_bits = s.spec.pow_bits;
    v.sold_out = v.gate == BR_GATE_SOLD_OUT;
    v.queue_length = live.queue_length;
    v.max_active = live.max_active;
    v.admit_per_min = live.admit_per_min;
    v.presence_ttl_s = s.spec.presence_ttl_s;
    uint32_t pos = live.queue_length < UINT32_MAX ? live.queue_length + 1 : UINT32_MAX;
    br_queue_estimate(&s.spec, live.admit_per_min, &live.rate, v.gate, pos, x->cfg.tick_ms, now,
                      &v.join_now);
    br_api_queue_status_fill(out, event_id, &v, now);
    return BR_OK;
}

int dist_op_queue_status_peek(struct br_backend *b, uint64_t event_id,
                              struct br_api_queue_status *out)
{
    struct br_distributed *x = self(b);
    struct dist_conn *c = NULL;
    int rc = dist_conn_take(x, &c);
    if (rc == BR_OK) {
        rc = status_read(x, c, event_id, out);
        dist_conn_give(x, c);
    }
    return rc;
}

void dist_op_queue_mode_set(struct br_backend *b, uint64_t actor, uint64_t event_id, uint8_t set,
                            uint8_t mode, uint32_t max_active, uint32_t admit_per_min,
                            struct br_call *call)
{
    struct br_distributed *x = self(b);
    struct br_cmd cmd;
    br_api_cmd_queue_mode_set(&cmd, actor, event_id, set, mode, max_active, admit_per_min);
    struct dist_conn *c = NULL;
    call->err = dist_take_for_write(x, &c);
    if (call->err == BR_OK) {
        struct br_outcome out;
        uint32_t n = 0;
        call->err = dist_apply(x, c, &cmd, &out, c->fx, &n);
        dist_effects(x, c, &cmd, &out, c->fx, n, NULL);
        if (call->err == BR_OK && status_read(x, c, event_id, &call->r.queue_status) != BR_OK) {
            /* applied: answer from the outcome (WR-SPEC §7) */
            struct br_api_queue_status *q = &call->r.queue_status;
            memset(q, 0, sizeof *q);
            q->event_id = event_id;
            q->mode = out.status;
            q->gate = (uint8_t)out.position;
            q->max_active = out.count;
            q->admit_per_min = (uint32_t)out.ref;
            q->estimated_wait_s = UINT32_MAX;
            q->as_of_ms = cmd.now_ms;
        }
        dist_conn_give(x, c);
    }
    call->done(call);
}

/* Fire and forget (the hub's thread): one presence script per
 * BR_PRESENCE_BATCH_MAX users; nothing for an event without presence. */
void dist_op_presence_report(struct br_backend *b, uint64_t event_id, const uint64_t *users,
                             uint32_t n)
{
    struct br_distributed *x = self(b);
    struct dist_conn *c = NULL;
    if (dist_take_for_write(x, &c) != BR_OK) {
        return; /* lost: a lapse can only come later than the truth */
    }
    struct dist_spec s;
    if (dist_spec(x, c, event_id, &s) == BR_OK && s.spec.presence_ttl_s > 0) {
        for (uint32_t at = 0; at < n; at += BR_PRESENCE_BATCH_MAX) {
            uint32_t k = n - at < BR_PRESENCE_BATCH_MAX ? n - at : BR_PRESENCE_BATCH_MAX;
            struct br_cmd cmd;
            br_api_cmd_presence(&cmd, event_id, users + at, k);
            struct br_outcome out;
            uint32_t fx = 0;
            if (dist_apply(x, c, &cmd, &out, c->fx, &fx) != BR_OK) {
                break;
            }
        }
    }
    dist_conn_give(x, c);
}

int dist_op_pow_use(struct br_backend *b, uint64_t event_id, const char *rand_hex, int64_t ttl_ms)
{
    struct br_distributed *x = self(b);
    struct dist_conn *c = NULL;
    int rc = dist_conn_take(x, &c);
    if (rc != BR_OK) {
        return rc;
    }
    rc = br_redis_pow_use(&c->r, event_id, rand_hex, ttl_ms > 0 ? ttl_ms : 1);
    if (rc != BR_OK && rc != BR_E_POW_INVALID) {
        dist_note_redis(x, rc);
        rc = BR_E_UNAVAILABLE;
    }
    dist_conn_give(x, c);
    return rc;
}

/* ---- bookings ---- */

void dist_op_reserve(struct br_backend *b, uint64_t user, uint64_t event_id, uint32_t zone_id,
                     uint32_t quantity, uint64_t pass_id, uint64_t idem_key, struct br_call *call)
{
    struct br_distributed *x = self(b);
    struct br_cmd cmd;
    br_api_cmd_reserve(&cmd, user, event_id, zone_id, quantity, pass_id, idem_key);
    struct dist_conn *c = NULL;
    call->err = dist_take_for_write(x, &c);
    if (call->err != BR_OK) {
        call->done(call);
        return;
    }
    struct br_outcome out;
    uint32_t n = 0;
    call->err = dist_apply(x, c, &cmd, &out, c->fx, &n);
    dist_effects(x, c, &cmd, &out, c->fx, n, NULL);
    struct dist_spec s;
    if (call->err == BR_OK && idem_key == 0 && dist_spec(x, c, event_id, &s) == BR_OK &&
        zone_id >= 1 && zone_id <= s.spec.zone_count) {
        /* A new hold (no key: no repeat): the outcome says it all. */
        br_api_booking_from_reserve(&call->r.booking, &cmd, &out,
                                    s.spec.zones[zone_id - 1].currency);
        dist_index_hold(x, c, user, out.id, cmd.now_ms);
    } else if (out.id != 0) {
        /* A repeat answers the first hold: read it as stored. */
        int rc = fill_booking(x, c, out.id, &call->r.booking);
        if (rc == BR_OK && call->err == BR_OK) {
            /* The user's list; a retry with the same key writes it again. */
            dist_index_hold(x, c, user, out.id, call->r.booking.created_at_ms);
        }
        if (rc != BR_OK && call->err == BR_OK) {
            call->err = rc;
        }
    }
    dist_conn_give(x, c);
    call->done(call);
}

void dist_op_booking_list(struct br_backend *b, uint64_t user, struct br_call *call)
{
    struct br_distributed *x = self(b);
    uint64_t ids[BR_API_LIST_MAX];
    uint32_t cap = call->list_cap < BR_API_LIST_MAX ? call->list_cap : BR_API_LIST_MAX;
    call->list_count = 0;
    struct dist_conn *c = NULL;
    call->err = dist_conn_take(x, &c);
    uint32_t n = 0;
    if (call->err == BR_OK) {
        call->err = dist_read_user_holds(x, c, user, ids, cap, &n);
    }
    for (uint32_t i = 0; call->err == BR_OK && i < n; i++) {
        int rc = fill_booking(x, c, ids[i], &call->bookings[call->list_count]);
        if (rc == BR_OK) {
            call->list_count++;
        } else if (rc != BR_E_NOT_FOUND) {
            call->err = rc;
        }
    }
    if (c != NULL) {
        dist_conn_give(x, c);
    }
    call->done(call);
}

void dist_op_booking_get(struct br_backend *b, uint64_t booking_id, struct br_call *call)
{
    struct br_distributed *x = self(b);
    struct dist_conn *c = NULL;
    call->err = dist_conn_take(x, &c);
    if (call->err == BR_OK) {
        call->err = fill_booking(x, c, booking_id, &call->r.booking);
        dist_conn_give(x, c);
    }
    call->done(call);
}

void dist_op_booking_cancel(struct br_backend *b, uint64_t user, uint64_t booking_id,
                            struct br_call *call)
{
    struct br_distributed *x = self(b);
    struct br_cmd cmd;
    br_api_cmd_booking_cancel(&cmd, user, booking_id);
    struct dist_conn *c = NULL;
    call->err = dist_take_for_write(x, &c);
    if (call->err == BR_OK) {
        struct br_outcome out;
        uint32_t n = 0;
        call->err = dist_apply(x, c, &cmd, &out, c->fx, &n);
        dist_effects(x, c, &cmd, &out, c->fx, n, NULL);
        struct br_api_booking bk;
        if (fill_booking(x, c, booking_id, &bk) == BR_OK && bk.user_id == user) {
            call->r.booking = bk;
        }
        dist_conn_give(x, c);
    }
    call->done(call);
}

/* ---- payments ---- */

void dist_op_payment_create(struct br_backend *b, uint64_t user, uint64_t booking_id,
                            struct br_call *call)
{
    struct br_distributed *x = self(b);
    struct br_cmd cmd;
    br_api_cmd_payment_create_checked(&cmd, user, booking_id, x->cfg.payment_check_ms);
    struct dist_conn *c = NULL;
    call->err = dist_take_for_write(x, &c);
    if (call->err != BR_OK) {
        call->done(call);
        return;
    }
    struct br_outcome out;
    uint32_t n = 0;
    call->err = dist_apply(x, c, &cmd, &out, c->fx, &n);
    struct br_api_payment *p = &call->r.payment;
    memset(p, 0, sizeof *p);
    if (call->err == BR_OK) {
        int rc = fill_payment(x, c, out.id, p);
        call->err = rc;
    }
    dist_effects(x, c, &cmd, &out, c->fx, n, call->err == BR_OK ? p : NULL);
    if (call->err == BR_OK && p->provider_payment_id[0] == '\0') {
        call->err = BR_E_UNAVAILABLE; /* no intent: the payment stays pending, retry */
    }
    dist_conn_give(x, c);
    call->done(call);
}

void dist_op_payment_event(struct br_backend *b, const char *provider_event_id, uint64_t payment_id,
                           bool succeeded, struct br_call *call)
{
    struct br_distributed *x = self(b);
    struct br_cmd cmd;
    br_api_cmd_payment_event(&cmd, provider_event_id, payment_id, succeeded);
    struct dist_conn *c = NULL;
    call->err = dist_take_for_write(x, &c);
    if (call->err == BR_OK) {
        struct br_outcome out;
        uint32_t n = 0;
        call->err = dist_apply(x, c, &cmd, &out, c->fx, &n);
        dist_effects(x, c, &cmd, &out, c->fx, n, NULL);
        struct br_api_payment p;
        if (fill_payment(x, c, payment_id, &p) == BR_OK) {
            call->r.payment = p;
        }
        dist_conn_give(x, c);
    }
    call->done(call);
}
