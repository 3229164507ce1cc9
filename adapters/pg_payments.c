/*
 * pg_payments.c -- payments in production, PostgreSQL side (pg.h): the
 * received-fact transaction (provider_events_received + an outbox row for
 * the relay) and the Stripe adapter's payment -> intent map
 * (stripe_intents, 0003_payments.sql). Stub bodies for now: every call
 * answers BR_E_UNAVAILABLE.
 */
#include "adapters/pg.h"

int br_pg_fact_ingest(struct br_pg *pg, const struct br_pg_fact *f)
{
    (void)pg;
    (void)f;
    return BR_E_UNAVAILABLE;
}

int br_pg_stripe_intent_get(struct br_pg *pg, uint64_t payment_id, char id_out[BR_PROVIDER_ID_MAX])
{
    (void)pg;
    (void)payment_id;
    id_out[0] = '\0';
    return BR_E_UNAVAILABLE;
}

int br_pg_stripe_intent_put(struct br_pg *pg, uint64_t payment_id, const char *intent_id,
                            int64_t now_ms, char winner_out[BR_PROVIDER_ID_MAX])
{
    (void)pg;
    (void)payment_id;
    (void)intent_id;
    (void)now_ms;
    winner_out[0] = '\0';
    return BR_E_UNAVAILABLE;
}
