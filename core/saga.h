/*
 * saga.h -- what happens after a payment: confirm, refund, or release.
 *
 * payment_create (hold live, owner acting) records a pending payment for the
 * hold's amount and emits provider_charge. One booking has one payment, as
 * one Stripe PaymentIntent serves every attempt: a repeated create returns
 * the same payment and re-emits the charge (the provider de-duplicates by
 * the payment id as idempotency key), and after a decline it opens that
 * payment again (failed -> pending; the client confirms the same intent
 * with another payment method). No second payment, so no second charge.
 *
 * payment_event applies a verified provider event exactly once per provider
 * event id (a second delivery is BR_E_DUPLICATE and changes nothing):
 *   succeeded, hold live and not yet confirmed  -> confirm (booking_confirmed)
 *   succeeded, hold expired/cancelled/confirmed by another payment, or its
 *     deadline passed (then it is expired here first) -> refund_pending
 *     (provider_refund)
 *   succeeded for a payment already succeeded  -> nothing (one charge counts once)
 *   failed, payment pending                    -> failed; the hold stays held so
 *     the buyer may pay again (payment_create reopens it); the sweep releases
 *     it at its deadline
 *   succeeded for a payment whose hold another payment confirmed (a booking
 *     charged twice: a state this rule no longer makes, still handled) ->
 *     refund_pending and provider_refund in the same step: refunded at once
 * refund_result ok -> refunded (final); not ok -> retried with backoff.
 * saga_step re-emits provider_refund for every refund that is due, so a
 * worker that crashed before carrying out an effect finds its duty again in
 * state: effects are never the only record of a duty.
 *
 * Invariants (br_saga_check): charges - refunds = value of confirmed holds
 * once no refund is pending; a confirmed hold has exactly one confirmed
 * payment; every refund-pending payment is in the retry heap.
 */
#ifndef BR_SAGA_H
#define BR_SAGA_H

#include <stdint.h>

#include "cmd.h"

struct br_engine;

struct br_payment {
    uint64_t id;
    uint64_t hold_id;
    uint32_t hold;            /* hold index */
    uint8_t state;            /* enum br_payment_state */
    int64_t amount_minor;
    int64_t created_ms;
    uint32_t refund_attempts;
    int64_t next_attempt_ms;  /* when refund_pending: next provider_refund */
};

int br_saga_payment_create(struct br_engine *e, const struct br_cmd *c, struct br_outcome *out);
int br_saga_payment_event(struct br_engine *e, const struct br_cmd *c, struct br_outcome *out);
int br_saga_refund_result(struct br_engine *e, const struct br_cmd *c, struct br_outcome *out);
int br_saga_step(struct br_engine *e, const struct br_cmd *c, struct br_outcome *out);

/* The payment with this id, NULL if none. */
struct br_payment *br_saga_payment(const struct br_engine *e, uint64_t payment_id);

void br_saga_check(const struct br_engine *e);

#endif
