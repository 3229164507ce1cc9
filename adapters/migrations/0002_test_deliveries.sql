-- 0002_test_deliveries.sql -- the built-in test provider's webhook outbox
-- (adapters/provider_test_pg.h).
--
-- A confirm's decision (the intent's new status in test_intents) and the
-- webhook event that announces it are written in one transaction, so a
-- process that dies after the commit leaves the event here, undelivered,
-- for any process to deliver later (as Stripe retries for days). A row is
-- delivered once the webhook route answered 2xx; until then a process
-- claims it by moving next_ms forward (FOR UPDATE SKIP LOCKED: two
-- processes do not claim the same row at once) and POSTs the same event id
-- again, which the receiver de-duplicates. Rows are kept (one per confirm).
CREATE TABLE test_deliveries (
    event_id      text PRIMARY KEY,           -- "evt_...": the same on every attempt
    intent_id     text NOT NULL REFERENCES test_intents (id),
    payload       text NOT NULL,              -- the event's JSON, signed afresh per attempt
    attempts      integer NOT NULL CHECK (attempts >= 0),
    next_ms       bigint NOT NULL,            -- wall clock: not claimed again before
    delivered_ms  bigint,                     -- NULL until a 2xx answer
    created_ms    bigint NOT NULL
);
CREATE INDEX test_deliveries_due ON test_deliveries (next_ms) WHERE delivered_ms IS NULL;
