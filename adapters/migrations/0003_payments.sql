-- 0003_payments.sql -- payments in production (ISSUE11 §4.4).
--
-- provider_events_received: every payment fact the provider told us, once
-- each, whether by a verified webhook or by a status query's answer (point 8:
-- "never wait on a webhook forever"). The webhook route (and the saga role
-- for query answers) writes a row here AND an outbox row (topic 'payments')
-- in ONE transaction before answering, so a fact acknowledged to Stripe is
-- never lost and a redelivered one is recognised (ON CONFLICT DO NOTHING)
-- and not relayed twice. This means "received", not "applied": the applied
-- set is processed_provider_events, written by the recorder.
CREATE TABLE provider_events_received (
    provider_event_id  text PRIMARY KEY,      -- "evt_..." or "q:<payment>:succeeded" / "q:<payment>:failed:<ch_ or n>"
    payment_id         bigint NOT NULL,
    booking_id         bigint NOT NULL,
    succeeded          boolean NOT NULL,
    source             text NOT NULL CHECK (source IN ('webhook', 'query')),
    received_ms        bigint NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now()
);

-- stripe_intents: payment -> Stripe PaymentIntent, the first stored wins.
-- The Stripe adapter creates an intent only when this has none for the
-- payment: Stripe's Idempotency-Key protects only 24 hours.
CREATE TABLE stripe_intents (
    payment_id  bigint PRIMARY KEY,
    intent_id   text NOT NULL UNIQUE,
    created_ms  bigint NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
