/*
 * provider_test.h -- the built-in test payment provider of the embedded
 * deployment, behaving like Stripe's test mode.
 *
 * Payment intents are created by the saga's provider_charge effect (one per
 * payment id: creating again returns the same intent, as Stripe does with an
 * idempotency key). An intent's id ("pi_" + 24 base62 characters) and its
 * client secret (id + "_secret_" + 24 more) are drawn from OpenSSL's
 * RAND_bytes, independently: about 143 bits each, nothing to guess from a
 * booking or payment id or from another intent. The confirm route is public,
 * as Stripe's is to a publishable key, so, as Stripe requires there, a confirm
 * must carry the intent's client secret (compared in constant time): the
 * buyer got it from POST /api/v1/payments, nobody else has it. A client
 * confirms an intent with a test payment method:
 *
 *   pm_card_visa, pm_card_mastercard, pm_card_amex   -> succeeded
 *   pm_card_chargeDeclined                           -> failed (generic_decline)
 *   pm_card_chargeDeclinedInsufficientFunds          -> failed (insufficient_funds)
 *
 * Each decision becomes a Stripe event (payment_intent.succeeded or
 * payment_intent.payment_failed, data.object = the intent with
 * metadata.payment_id) POSTed to the webhook URL with a Stripe-Signature
 * header (provider_sig.h), from a delivery thread, retried with backoff on
 * anything but a 2xx, with the same event id on every attempt (receivers
 * de-duplicate by it). A failed intent may be confirmed again with another
 * card; a succeeded one may not.
 *
 * A status query (point 8) answers from the intent; with void_if_open it
 * cancels an intent not yet paid (status "canceled"), as Stripe's cancel.
 *
 * It implements the provider interface (provider.h):
 * br_provider_test_provider() gives the table; idempotency keys are not kept,
 * since creating and refunding are already idempotent per payment id here.
 *
 * State is in memory: after a restart intents are gone and a client creates
 * the payment again (the core re-emits the charge for a pending payment).
 * Limits: intents_max intents (BR_E_FULL beyond), BR_PROVIDER_QUEUE_MAX
 * deliveries waiting.
 */
#ifndef BR_PROVIDER_TEST_H
#define BR_PROVIDER_TEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "adapters/provider.h"

#define BR_PROVIDER_QUEUE_MAX 65536u /* deliveries waiting for their next attempt */

struct br_provider_test;

struct br_provider_test_config {
    const char *webhook_secret; /* "whsec_..."; copied */
    uint32_t intents_max;       /* intents kept in memory */
    unsigned attempts_max;      /* delivery attempts per event, >= 1 */
};

/* Creates the provider (no thread yet). BR_OK, BR_E_INVALID or BR_E_IO.
 * Tests: BR_TEST_PROVIDER_LOSE=n in the environment loses the next n
 * events for good (never POSTed; their confirms answer as after a failed
 * first attempt), a webhook Stripe never delivered. */
int br_provider_test_new(struct br_provider_test **p, const struct br_provider_test_config *cfg);

/* Starts the delivery thread posting to webhook_url (copied). BR_OK or BR_E_IO. */
int br_provider_test_start(struct br_provider_test *p, const char *webhook_url);

/* Stops the delivery thread; deliveries still waiting are dropped (logged)
 * and their confirm callbacks run with BR_E_UNAVAILABLE. Idempotent. After
 * it, charges and refunds still work (they are in memory). */
void br_provider_test_stop(struct br_provider_test *p);

/* Stops (if needed) and frees p (may be NULL). */
void br_provider_test_free(struct br_provider_test *p);

/* Creates or finds the intent for payment_id. Fills its id and client
 * secret. BR_OK, BR_E_FULL. Any thread. */
int br_provider_test_charge(struct br_provider_test *p, uint64_t payment_id, uint64_t hold_id,
                            int64_t amount_minor, const char *currency,
                            char id[BR_PROVIDER_ID_MAX], char client_secret[BR_PROVIDER_SECRET_MAX]);

/* Refunds the intent of payment_id (a refund of an unknown or already
 * refunded intent succeeds: the result is what matters to the saga). BR_OK. */
int br_provider_test_refund(struct br_provider_test *p, uint64_t payment_id, int64_t amount_minor);

/* Point 8's status query (provider.h query): from the intent of
 * payment_id: succeeded -> SUCCEEDED "q:<p>:succeeded"; canceled ->
 * FAILED "q:<p>:failed:canceled"; declined (last confirm failed) -> FAILED
 * "q:<p>:failed:<confirms so far>"; not yet confirmed -> OPEN. void_if_open
 * first cancels an intent that has not succeeded (a confirm is refused
 * after, BR_E_DUPLICATE). No intent: FAILED "canceled" when void_if_open,
 * else OPEN. BR_OK. Any thread. */
int br_provider_test_query(struct br_provider_test *p, uint64_t payment_id, bool void_if_open,
                           struct br_provider_answer *out);

/* Fills *out (zeroed first) for a query answer: the fact key from status,
 * payment_id and token (FAILED only), intent_id ("" when NULL). Shared by
 * the test providers. */
void br_provider_answer_set(struct br_provider_answer *out, uint8_t status, uint64_t payment_id,
                            const char *token, const char *intent_id);

/* Confirms an intent with its client secret. BR_OK (cb will run, on the
 * delivery thread), BR_E_NOT_FOUND (no such intent), BR_E_UNAUTHORIZED (no
 * client secret), BR_E_FORBIDDEN (not this intent's client secret),
 * BR_E_INVALID (unknown payment method), BR_E_DUPLICATE (already succeeded;
 * a declined intent may be confirmed again), BR_E_FULL (delivery queue
 * full). Nothing changes unless BR_OK. */
int br_provider_test_confirm(struct br_provider_test *p, const char *intent_id,
                             const char *client_secret, const char *payment_method,
                             br_provider_confirm_fn cb, void *ctx);

/* The provider interface over p (valid until br_provider_test_free): its
 * create_intent is br_provider_test_charge, refund br_provider_test_refund
 * (the keys and intent id unused), confirm, start and stop the functions
 * above. */
struct br_provider br_provider_test_provider(struct br_provider_test *p);

#endif
