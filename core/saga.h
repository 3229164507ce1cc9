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
 * Point 8, "never wait on a webhook forever" (payment_check): a webhook
 * may never come. payment_create with check_ms > 0 (0 = never, as journal
 * v1 records say; else BR_PAYMENT_CHECK_MS_MIN..MAX, or BR_E_INVALID before
 * any other check) schedules a status query of the payment at now +
 * check_ms. Every payment_create with check_ms > 0 that returns the payment
 * (new, repeated while pending, reopened after a decline) sets check_ms,
 * check_attempts = 0, check_closed = 0, next_check_ms = now + check_ms and
 * (re)places it in the check heap (keyed next_check_ms, then payment id);
 * check_ms = 0 on an existing payment leaves its schedule alone.
 *   payment_event succeeded that moves pending|failed on -> leaves the heap
 *   payment_event failed, applied, payment failed with check_ms > 0, its
 *     hold no longer live (not held, or its deadline <= now) and the event
 *     the void's answer (provider event id br_saga_answer_id(payment, false,
 *     "canceled")) -> check_closed = 1, leaves the heap: the provider
 *     cancelled the intent, nothing can be paid any more. A webhook's
 *     decline is not final (the buyer may still pay the same intent, and
 *     that success's webhook may be lost): the next check voids it.
 *   payment_check{max} (system only; max 1..BR_SAGA_STEP_MAX) takes up to
 *     max heap tops with next_check_ms <= now, in (next_check_ms, id) order:
 *     check_attempts++, next_check_ms = now + min(check_ms << min(attempts,
 *     20), BR_PAYMENT_CHECK_BACKOFF_MS_MAX), back into the heap, and emits
 *     provider_query when the hold is live, else provider_void. count =
 *     effects emitted, queue_length = the check heap's size. No jitter: the
 *     schedule is a function of the commands.
 * The driver asks the provider (provider.h query; void cancels an open
 * intent first) and feeds a decided answer back as payment_event with the
 * provider event id br_hash64("q:<payment>:succeeded") or
 * br_hash64("q:<payment>:failed:<token>"); an open answer or a provider
 * error feeds nothing back (the next check is already scheduled). The state
 * machine above de-duplicates these with the webhooks.
 * For twins: br_engine_state_hash adds, per payment with check_ms > 0 only,
 * the record (tag 12) {id, check_ms, check_attempts, next_check_ms,
 * check_closed}; next_check_ms keeps its last value after the payment
 * leaves the check heap (as next_attempt_ms does); br_engine_due reports
 * BR_DUE_CHECK when the heap's top is due.
 *
 * Invariants (br_saga_check): charges - refunds = value of confirmed holds
 * once no refund is pending; a confirmed hold has exactly one confirmed
 * payment; every refund-pending payment is in the retry heap; a payment is
 * in the check heap, at its next_check_ms, exactly when it is pending or
 * failed, has check_ms > 0 and is not check_closed.
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
    uint32_t check_ms;        /* point 8 quiet time, 0 = no status queries */
    uint32_t check_attempts;  /* status queries since the last (re)open */
    int64_t next_check_ms;    /* next status query while in the check heap; kept after */
    uint8_t check_closed;     /* the void's answer after the hold was gone: no more queries */
};

int br_saga_payment_create(struct br_engine *e, const struct br_cmd *c, struct br_outcome *out);
int br_saga_payment_event(struct br_engine *e, const struct br_cmd *c, struct br_outcome *out);
int br_saga_refund_result(struct br_engine *e, const struct br_cmd *c, struct br_outcome *out);
int br_saga_step(struct br_engine *e, const struct br_cmd *c, struct br_outcome *out);
int br_saga_payment_check(struct br_engine *e, const struct br_cmd *c, struct br_outcome *out);

/* The payment with this id, NULL if none. */
struct br_payment *br_saga_payment(const struct br_engine *e, uint64_t payment_id);

void br_saga_check(const struct br_engine *e);

/* The provider event id of a status answer (point 8): br_hash64 (seed 0) of
 * "q:<payment>:succeeded" (succeeded) or "q:<payment>:failed:<token>"; 1 if
 * the hash is 0. */
uint64_t br_saga_answer_id(uint64_t payment_id, bool succeeded, const char *token);

#endif
