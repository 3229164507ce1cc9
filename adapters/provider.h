/*
 * provider.h -- what a deployment needs from a payment provider, as a table
 * of function pointers: create a payment intent, refund one, and deliver the
 * provider's decisions to our webhook. The built-in test provider
 * (provider_test.h) implements it now; Stripe implements the same table next.
 *
 * The saga in the core decides WHEN to charge and refund (the effects
 * provider_charge and provider_refund, core/cmd.h); a provider only carries
 * them out. Both calls carry an idempotency key, so a call repeated after a
 * crash or a timeout (the saga re-emits a duty it has no result for) never
 * charges or refunds twice: the provider answers the repeat with the first
 * call's result. Keys are built by br_provider_idem_key() from the payment
 * id, which the core never reuses: "charge-<payment id>" and
 * "refund-<payment id>".
 *
 * Decisions (succeeded, failed) do not come back through this table: the
 * provider POSTs them to our webhook (POST /api/v1/webhooks/stripe), where
 * the route verifies the signature (provider_sig.h) and applies them as the
 * payment_event command, whatever the provider. start() tells the provider
 * where that webhook is and starts its delivery (the test provider's thread;
 * Stripe: nothing to start, the URL is configured in its dashboard).
 *
 * Threads: the embedded backend calls create_intent and refund from its
 * workers (syncer and ticker threads), never from an HTTP loop thread; the
 * distributed backend calls them on the thread that applied the command:
 * the request's HTTP loop thread (payment_create, a webhook that owes a
 * refund) or its roles thread (saga_step). They may block on the network
 * for a bounded time (the provider's own timeout) and must be safe to call
 * from several threads at once. start/stop are called once each by serve.
 *
 * Errors (enum br_err): BR_OK; BR_E_UNAVAILABLE (the provider is down or
 * timed out: the saga retries later with the same key); BR_E_FULL (the test
 * provider's intent table); BR_E_INVALID (the provider refused the request:
 * logged with its message at the call site in the adapter).
 */
#ifndef BR_PROVIDER_H
#define BR_PROVIDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/err.h"

#define BR_PROVIDER_ID_MAX 48u       /* an intent id ("pi_...") incl. NUL */
#define BR_PROVIDER_SECRET_MAX 96u   /* an intent's client secret incl. NUL */
#define BR_PROVIDER_IDEM_KEY_MAX 40u /* "refund-" + 20 digits incl. NUL, rounded up */

/* Called once per accepted confirm (test provider only), after the first
 * delivery attempt of its event: err is BR_OK when the webhook was accepted
 * (2xx), else BR_E_UNAVAILABLE (delivery continues in the background).
 * intent_json is the intent after the decision (borrowed for the call). */
/* What a status query (point 8, core/saga.h payment_check) learned about a
 * payment's intent. */
enum br_provider_status { BR_PROVIDER_OPEN = 0, BR_PROVIDER_SUCCEEDED = 1, BR_PROVIDER_FAILED = 2 };
#define BR_PROVIDER_FACT_MAX 96u

struct br_provider_answer {
    uint8_t status;                      /* enum br_provider_status */
    char fact_key[BR_PROVIDER_FACT_MAX]; /* "q:<payment>:succeeded" | "q:<payment>:failed:<token>",
                                            token = Stripe's latest_charge "ch_...", "canceled", or
                                            (test providers) the decline's ordinal; "" when open.
                                            br_hash64 of it is the payment_event id */
    char intent_id[BR_PROVIDER_ID_MAX];  /* the intent asked about, "" if none exists */
};

typedef void (*br_provider_confirm_fn)(void *ctx, int err, const char *intent_json, size_t len);

struct br_provider_ops {
    const char *name; /* "test", "stripe": for logs */

    /* Creates the intent for payment_id (or, with the same idem_key, finds
     * the one created before), for amount_minor in currency ("EUR"). Fills
     * id_out and secret_out (the client secret the buyer confirms with).
     * booking_id goes into the intent's metadata. BR_OK, BR_E_UNAVAILABLE,
     * BR_E_FULL, BR_E_INVALID; the outputs are untouched unless BR_OK. */
    int (*create_intent)(void *p, uint64_t payment_id, uint64_t booking_id, int64_t amount_minor,
                         const char *currency, const char *idem_key,
                         char id_out[BR_PROVIDER_ID_MAX], char secret_out[BR_PROVIDER_SECRET_MAX]);

    /* Refunds amount_minor of the payment's intent. intent_id may be NULL
     * when the caller does not know it (the embedded backend: the core
     * keeps only the payment id); a provider that needs it (Stripe) then
     * finds it by the payment id in the intent's metadata. A refund of an
     * unknown or already refunded intent succeeds: the saga needs to know
     * the money is not kept, not who returned it. BR_OK, BR_E_UNAVAILABLE
     * (retried by the saga with the same key), BR_E_INVALID. */
    int (*refund)(void *p, uint64_t payment_id, const char *intent_id, int64_t amount_minor,
                  const char *idem_key);

    /* Asks for payment_id's intent status (intent_id may be NULL: the
     * provider finds it). void_if_open: cancel an open intent first (the
     * hold is gone) and answer FAILED "canceled"; a succeeded intent is
     * never cancelled. No intent at all -> FAILED "canceled" when
     * void_if_open, else OPEN. BR_OK (out filled), BR_E_UNAVAILABLE,
     * BR_E_UNKNOWN_OUTCOME, BR_E_INVALID. Blocking, bounded, thread-safe
     * like refund. */
    int (*query)(void *p, uint64_t payment_id, const char *intent_id, bool void_if_open,
                 struct br_provider_answer *out);

    /* Test provider only (NULL otherwise): the buyer's confirm with a test
     * payment method; see provider_test.h for its answers. */
    int (*confirm)(void *p, const char *intent_id, const char *client_secret,
                   const char *payment_method, br_provider_confirm_fn cb, void *ctx);

    /* Starts delivering decisions to webhook_url (copied). BR_OK or
     * BR_E_IO. NULL = nothing to start. */
    int (*start)(void *p, const char *webhook_url);

    /* Stops delivery (idempotent); create_intent and refund keep working.
     * NULL = nothing to stop. */
    void (*stop)(void *p);
};

/* A provider: its table and its state. Owned by whoever created it (serve),
 * which also frees it with the implementation's own free function. */
struct br_provider {
    const struct br_provider_ops *ops;
    void *self; /* the implementation's state, passed as p */
};

/* The idempotency key of a charge or refund of payment_id. */
static inline void br_provider_idem_key(char out[BR_PROVIDER_IDEM_KEY_MAX], const char *what,
                                        uint64_t payment_id)
{
    snprintf(out, BR_PROVIDER_IDEM_KEY_MAX, "%s-%llu", what, (unsigned long long)payment_id);
}

static inline int br_provider_create_intent(const struct br_provider *pv, uint64_t payment_id,
                                            uint64_t booking_id, int64_t amount_minor,
                                            const char *currency, char id_out[BR_PROVIDER_ID_MAX],
                                            char secret_out[BR_PROVIDER_SECRET_MAX])
{
    char key[BR_PROVIDER_IDEM_KEY_MAX];
    br_provider_idem_key(key, "charge", payment_id);
    return pv->ops->create_intent(pv->self, payment_id, booking_id, amount_minor, currency, key,
                                  id_out, secret_out);
}

static inline int br_provider_refund(const struct br_provider *pv, uint64_t payment_id,
                                     const char *intent_id, int64_t amount_minor)
{
    char key[BR_PROVIDER_IDEM_KEY_MAX];
    br_provider_idem_key(key, "refund", payment_id);
    return pv->ops->refund(pv->self, payment_id, intent_id, amount_minor, key);
}

/* Point 8's status query (ops->query above). */
static inline int br_provider_query(const struct br_provider *pv, uint64_t payment_id,
                                    const char *intent_id, bool void_if_open,
                                    struct br_provider_answer *out)
{
    return pv->ops->query(pv->self, payment_id, intent_id, void_if_open, out);
}

/* BR_OK when the provider has nothing to start. */
static inline int br_provider_start(const struct br_provider *pv, const char *webhook_url)
{
    return pv->ops->start != NULL ? pv->ops->start(pv->self, webhook_url) : BR_OK;
}

/* Nothing for a provider never set up (ops NULL) or with nothing to stop. */
static inline void br_provider_stop(const struct br_provider *pv)
{
    if (pv->ops != NULL && pv->ops->stop != NULL) {
        pv->ops->stop(pv->self);
    }
}

#endif
