/*
 * pg_project.c -- the projection's meaning: one log entry -> row changes
 * (pg_project.h). Pure: no libpq, no I/O, no clock.
 */
#include "pg_project.h"

#include <string.h>

#include "core/err.h"
#include "core/limits.h"
#include "core/panic.h"

int64_t br_pg_refund_backoff_ms(uint32_t attempts)
{
    int64_t d = BR_REFUND_BACKOFF_MS_MIN;
    for (uint32_t i = 1; i < attempts && d < BR_REFUND_BACKOFF_MS_MAX; i++) {
        d *= 2;
    }
    return d < BR_REFUND_BACKOFF_MS_MAX ? d : BR_REFUND_BACKOFF_MS_MAX;
}

const char *br_pg_outbox_topic(uint8_t fx_kind)
{
    switch (fx_kind) {
    case BR_FX_PROVIDER_CHARGE:
        return "provider_charge";
    case BR_FX_PROVIDER_REFUND:
        return "provider_refund";
    case BR_FX_BOOKING_CONFIRMED:
        return "booking_confirmed";
    case BR_FX_BOOKING_EXPIRED:
        return "booking_expired";
    case BR_FX_NOTIFY:
        return "notify";
    default:
        return NULL; /* pass_issued, pass_expired: queue state stays in Redis */
    }
}

struct ops {
    struct br_pg_op *v;
    uint32_t cap;
    uint32_t n;
    bool full;               /* an op did not fit: the result is BR_E_FULL */
    struct br_pg_op scratch; /* where ops that do not fit are written, then dropped */
    const struct br_cmd *c;
};

/* The next op, zeroed, of this kind (never NULL: past cap, the scratch op). */
static struct br_pg_op *push(struct ops *o, uint8_t kind)
{
    struct br_pg_op *op = &o->scratch;
    if (o->n < o->cap) {
        op = &o->v[o->n++];
    } else {
        o->full = true;
    }
    memset(op, 0, sizeof *op);
    op->kind = kind;
    op->at_ms = o->c->now_ms;
    return op;
}

static struct br_pg_op *move(struct ops *o, uint64_t hold_id, uint32_t from_mask, uint8_t to,
                             int32_t held, int32_t sold, bool must_match)
{
    struct br_pg_op *op = push(o, BR_PG_OP_BOOKING_MOVE);
    op->id = hold_id;
    op->event_id = hold_id >> 32;
    op->from_mask = from_mask;
    op->to_state = to;
    op->held_per_seat = held;
    op->sold_per_seat = sold;
    op->must_match = must_match;
    return op;
}

/* The row changes an effect asks for, then its outbox row. */
static void effect_ops(struct ops *o, const struct br_effect *fx, uint32_t index)
{
    struct br_pg_op *op;
    const uint32_t held_mask = 1u << BR_HOLD_HELD;
    switch (fx->kind) {
    case BR_FX_BOOKING_EXPIRED:
        move(o, fx->id, held_mask, BR_HOLD_EXPIRED, -1, 0, true);
        break;
    case BR_FX_BOOKING_CONFIRMED:
        op = move(o, fx->id, held_mask, BR_HOLD_CONFIRMED, -1, 1, true);
#ifdef BR_PLANT_PG_CONFIRM_KEEPS_HELD
        op->held_per_seat = 0; /* planted: confirmed seats stay counted as held too */
#endif
        op->ref = fx->ref; /* the confirming payment */
        break;
    case BR_FX_PROVIDER_REFUND:
        op = push(o, BR_PG_OP_REFUND_ATTEMPT);
        op->id = fx->id;
        op->event_id = fx->event_id;
        break;
    default:
        break; /* nothing but the outbox row */
    }
    if (br_pg_outbox_topic(fx->kind) != NULL) {
        op = push(o, BR_PG_OP_OUTBOX);
        op->fx = fx;
        op->index = index;
        op->id = fx->id;
        op->event_id = fx->event_id;
    }
}

/* The changes the outcome itself implies (before the effects'). */
static void outcome_ops(struct ops *o, const struct br_outcome *out)
{
    const struct br_cmd *c = o->c;
    struct br_pg_op *op;
    switch (c->type) {
    case BR_CMD_RESERVE:
        op = push(o, BR_PG_OP_BOOKING_NEW);
        op->id = out->id;
        op->ref = out->ref;
        op->event_id = c->u.reserve.event_id;
        op->user_id = c->user_id;
        op->zone_id = c->u.reserve.zone_id;
        op->quantity = out->count;
        op->amount_minor = out->amount_minor;
        op->deadline_ms = out->deadline_ms;
        break;
    case BR_CMD_CANCEL:
        move(o, out->id, 1u << BR_HOLD_HELD, BR_HOLD_CANCELLED, -1, 0, true);
        break;
    case BR_CMD_PAYMENT_CREATE:
        op = push(o, BR_PG_OP_PAYMENT_NEW);
        op->id = out->id;
        op->ref = out->ref;
        op->event_id = out->id >> 32;
        op->amount_minor = out->amount_minor;
        break;
    case BR_CMD_PAYMENT_EVENT:
        op = push(o, BR_PG_OP_PROVIDER_EVENT);
        op->id = c->u.payment_event.provider_event_id;
        op->ref = out->id;
        op->event_id = out->id >> 32;
        op = push(o, BR_PG_OP_PAYMENT_STATE);
        op->id = out->id;
        op->event_id = out->id >> 32;
        op->to_state = out->status;
        break;
    case BR_CMD_REFUND_RESULT:
        op = push(o, BR_PG_OP_PAYMENT_STATE);
        op->id = out->id;
        op->event_id = out->id >> 32;
        op->to_state = out->status;
        if (c->u.refund_result.ok) {
            /* a confirmed booking (charged twice) stays confirmed */
            move(o, out->ref, (1u << BR_HOLD_EXPIRED) | (1u << BR_HOLD_CANCELLED), BR_HOLD_REFUNDED,
                 0, 0, false);
        } else {
            op = push(o, BR_PG_OP_REFUND_RETRY);
            op->id = out->id;
            op->event_id = out->id >> 32;
        }
        break;
    default:
        break;
    }
}

static bool ids_ok(const struct br_cmd *c, const struct br_outcome *out)
{
    switch (c->type) {
    case BR_CMD_RESERVE:
        return out->id != 0 && out->count >= 1 && (out->id >> 32) == c->u.reserve.event_id;
    case BR_CMD_CANCEL:
    case BR_CMD_PAYMENT_CREATE:
    case BR_CMD_PAYMENT_EVENT:
    case BR_CMD_REFUND_RESULT:
        return out->id != 0;
    default:
        return true;
    }
}

int br_pg_rows_of(const struct br_cmd *c, const struct br_outcome *out, const struct br_effect *fx,
                  uint32_t fx_count, struct br_pg_op *ops, uint32_t cap, uint32_t *n)
{
    BR_ASSERT(c != NULL && out != NULL && n != NULL);
    BR_ASSERT(fx_count == 0 || fx != NULL);
    *n = 0;
    if (out->err != BR_OK) {
        return BR_OK; /* a failed command changed nothing (a duplicate provider event included) */
    }
    if (!ids_ok(c, out)) {
        return BR_E_INVALID;
    }
    struct ops o;
    memset(&o, 0, sizeof o);
    o.v = ops;
    o.cap = cap;
    o.c = c;
    outcome_ops(&o, out);
    for (uint32_t i = 0; i < fx_count; i++) {
        effect_ops(&o, &fx[i], i);
    }
    if (o.full) {
        return BR_E_FULL;
    }
    BR_ASSERT(o.n <= BR_PG_OPS_FIXED + BR_PG_OPS_PER_EFFECT * fx_count);
    *n = o.n;
    return BR_OK;
}
