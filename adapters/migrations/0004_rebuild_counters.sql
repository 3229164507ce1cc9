-- 0004_rebuild_counters.sql -- the id counters each rebuild of an event gave
-- Redis (server/reconciler.c, fill_rebuild).
--
-- A rebuild starts an event's counters (pass, hold and payment seqs) past
-- the largest id the record holds plus a margin that grows with the time
-- since the last recorded entry. The ids the rebuilt Redis hands out are
-- recorded only as the recorder catches up: after a second loss, an entry
-- recorded since the first rebuild that makes no id (a payment's state, a
-- cancel) restarts that clock while the largest recorded id stays below
-- what the first rebuild started from. So each rebuild keeps here, before
-- Redis gets them, the counters it starts from and the time it did, and the
-- next rebuild starts past the greater of those and the record. Columns only
-- grow (GREATEST), so two reconcilers, or an attempt retried, never lower
-- them. No row: the event was never rebuilt.
CREATE TABLE rebuild_counters (
    event_id     bigint PRIMARY KEY REFERENCES events (id),
    pass_seq     bigint NOT NULL CHECK (pass_seq >= 0),
    hold_seq     bigint NOT NULL CHECK (hold_seq >= 0),
    payment_seq  bigint NOT NULL CHECK (payment_seq >= 0),
    rebuilt_ms   bigint NOT NULL,  -- the reconciler's wall clock when it gave them
    updated_at   timestamptz NOT NULL DEFAULT now()
);
