/*
 * pg_project.h -- what one entry of an event's log changes in PostgreSQL's
 * record, as a pure function (no libpq, no I/O): unit-testable without a
 * server, and the single statement of the projection's meaning. pg.c turns
 * each row change into SQL inside br_pg_project's transaction.
 *
 * The meaning, read from core/inventory.c and core/saga.c (a failed command,
 * err != BR_OK, changes nothing in the record, and neither do queue entries):
 *
 *   reserve OK            booking_new: the hold as a booking in state held,
 *                         zone.held += qty, only if no booking has that id yet
 *                         (a reserve answered again from its idempotency key
 *                         carries the same hold id: inserted once)
 *   cancel OK             booking_move held -> cancelled, held -= qty
 *   booking_expired fx    booking_move held -> expired, held -= qty (sweep, or a
 *                         payment_event on a lapsed hold)
 *   booking_confirmed fx  booking_move held -> confirmed, held -= qty, sold += qty,
 *                         booking.payment_id = the payment
 *   payment_create OK     payment_new (pending; or, existing, back to pending),
 *                         booking.payment_id = it
 *   payment_event OK      provider_event (the id, once) and payment_state =
 *                         outcome.status
 *   refund_result OK      payment_state = outcome.status; refunded: booking
 *                         expired|cancelled -> refunded (a confirmed one stays);
 *                         not ok: refund_retry (next attempt after the backoff)
 *   provider_refund fx    refund_attempt: attempts += 1, next attempt after the
 *                         core's backoff (saga_step re-emits these)
 *   provider_charge, provider_refund, booking_confirmed, booking_expired,
 *   notify fx             an outbox row each (topic = the effect's name)
 *   pass_issued/expired   nothing: queue state lives in Redis only
 *
 * A booking_move whose booking is not in the from state is a disagreement
 * between the log and the record: BR_E_CORRUPT (with must_match), never
 * skipped silently. Counters move only with a state change, so a zone's held
 * and sold are sums over its bookings' states, which the CHECK constraint
 * bounds by the capacity.
 */
#ifndef BR_PG_PROJECT_H
#define BR_PG_PROJECT_H

#include <stdbool.h>
#include <stdint.h>

#include "core/cmd.h"

enum br_pg_op_kind {
    BR_PG_OP_NONE = 0,
    BR_PG_OP_BOOKING_NEW =
        1, /* id, event, user, zone, quantity, amount, at, deadline, ref = pass */
    BR_PG_OP_BOOKING_MOVE =
        2,                    /* id: from_mask -> to_state, zone deltas x quantity, ref = payment */
    BR_PG_OP_PAYMENT_NEW = 3, /* id, ref = booking, amount, at: insert pending or set pending */
    BR_PG_OP_PAYMENT_STATE = 4,  /* id -> to_state */
    BR_PG_OP_REFUND_ATTEMPT = 5, /* id: attempts += 1, next = at + backoff(attempts) */
    BR_PG_OP_REFUND_RETRY = 6,   /* id: next = at + backoff(attempts) */
    BR_PG_OP_PROVIDER_EVENT = 7, /* id = the provider event id hash, ref = payment, at */
    BR_PG_OP_OUTBOX = 8          /* fx = the effect, index = its place in the entry */
};

struct br_pg_op {
    uint8_t kind;          /* enum br_pg_op_kind */
    uint8_t to_state;      /* booking_move: hold state; payment_state: payment state */
    bool must_match;       /* booking_move: the booking must be in from_mask, else CORRUPT */
    uint32_t from_mask;    /* booking_move: 1u << state of each state it may leave */
    int32_t held_per_seat; /* booking_move: zone.held += this * quantity (-1, 0) */
    int32_t sold_per_seat; /* booking_move: zone.sold += this * quantity (0, +1) */
    uint64_t id;
    uint64_t ref;
    uint64_t event_id;
    uint64_t user_id;
    uint32_t zone_id;
    uint32_t quantity;
    int64_t amount_minor;
    int64_t at_ms; /* the command's now_ms */
    int64_t deadline_ms;
    uint32_t index;             /* outbox: the effect's index in the entry */
    const struct br_effect *fx; /* outbox: borrowed from the caller's entry */
};

/* At most this many ops per effect, plus BR_PG_OPS_FIXED per entry. */
#define BR_PG_OPS_PER_EFFECT 2u
#define BR_PG_OPS_FIXED 4u

/* The row changes of one log entry, in the order they must be applied, into
 * ops[0..*n). cap >= BR_PG_OPS_FIXED + BR_PG_OPS_PER_EFFECT * fx_count is
 * always enough. BR_OK, BR_E_FULL (cap too small; *n undefined),
 * BR_E_INVALID (an OK outcome that cannot be what the core answers: an id of
 * 0). O(fx_count). */
int br_pg_rows_of(const struct br_cmd *c, const struct br_outcome *o, const struct br_effect *fx,
                  uint32_t fx_count, struct br_pg_op *ops, uint32_t cap, uint32_t *n);

/* The saga's refund backoff after `attempts` attempts (core/saga.c's rule:
 * 1 s, doubling, at most an hour). */
int64_t br_pg_refund_backoff_ms(uint32_t attempts);

/* The outbox topic of an effect kind ("booking_confirmed"), NULL for kinds
 * that make no outbox row (pass_issued, pass_expired). */
const char *br_pg_outbox_topic(uint8_t fx_kind);

#endif
