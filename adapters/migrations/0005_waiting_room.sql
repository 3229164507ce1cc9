-- 0005_waiting_room.sql -- issue 13, the waiting room: the five spec fields
-- an event is created with (core/cmd.h struct br_event_spec), stored column
-- for column like the rest of the spec so the rebuild and the trace
-- prologue give Redis and the core the same bytes. Events made before this
-- migration read back 0 for each: every switch off, as the journal's v1/v2
-- events. The live controls (queue_mode_set) are the on-sale state's, kept
-- in Redis with the rest of it; the bounds are the core's (core/limits.h).
ALTER TABLE events
    ADD COLUMN admit_per_min  bigint  NOT NULL DEFAULT 0 CHECK (admit_per_min BETWEEN 0 AND 600000),
    ADD COLUMN presence_ttl_s bigint  NOT NULL DEFAULT 0 CHECK (presence_ttl_s BETWEEN 0 AND 86400),
    ADD COLUMN pow_bits       integer NOT NULL DEFAULT 0 CHECK (pow_bits BETWEEN 0 AND 28),
    ADD COLUMN queue_flags    integer NOT NULL DEFAULT 0 CHECK (queue_flags BETWEEN 0 AND 255),
    ADD COLUMN queue_mode     integer NOT NULL DEFAULT 0 CHECK (queue_mode BETWEEN 0 AND 255);
