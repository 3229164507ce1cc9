-- 0001_init.sql -- the record of the distributed deployment (adapters/pg.h).
--
-- Applied by br_pg_migrate inside one transaction together with its row in
-- schema_migrations. Ids are the core's: users and events dense (max + 1
-- under an advisory lock, the Redis twin allocating the same), holds
-- (= bookings), payments as (event << 32 | n). Unsigned 32-bit values of the
-- core are stored in bigint. Times are the core's now_ms (bigint *_ms);
-- created_at columns are the database's own clock, for operators.

-- Accounts. The email is unique byte for byte: COLLATE "C" compares bytes, so
-- "A@x" and "a@x" are two users (the server lower-cases before it gets here).
CREATE TABLE users (
    id              bigint PRIMARY KEY CHECK (id > 0),
    email           text COLLATE "C" NOT NULL UNIQUE,
    name            text NOT NULL,
    password_hash   bytea NOT NULL CHECK (length(password_hash) = 32),
    salt            bytea NOT NULL CHECK (length(salt) = 16),
    role            smallint NOT NULL CHECK (role BETWEEN 0 AND 2),
    sessions_floor  bigint NOT NULL DEFAULT 0,  -- logout-all: sessions with id <= it are revoked
    created_ms      bigint NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- Refresh sessions (core/session.h).
CREATE TABLE sessions (
    id              bigserial PRIMARY KEY,
    user_id         bigint NOT NULL REFERENCES users (id),
    generation      bigint NOT NULL CHECK (generation BETWEEN 1 AND 4294967295),
    expires_at_ms   bigint NOT NULL,
    revoked         boolean NOT NULL DEFAULT false,
    created_ms      bigint NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sessions_user ON sessions (user_id, id);

-- The catalog: struct br_event_spec column for column, zones in their table.
CREATE TABLE events (
    id                bigint PRIMARY KEY CHECK (id > 0),
    owner_id          bigint NOT NULL,
    name              text NOT NULL,
    venue             text NOT NULL,
    starts_at_ms      bigint NOT NULL,
    sale_opens_at_ms  bigint NOT NULL,
    per_user_limit    bigint NOT NULL,
    requires_pass     boolean NOT NULL,
    max_active        bigint NOT NULL,
    admit_per_tick    bigint NOT NULL,
    pass_ttl_ms       bigint NOT NULL,
    hold_ttl_ms       bigint NOT NULL,
    queue_capacity    bigint NOT NULL,
    zone_count        integer NOT NULL CHECK (zone_count BETWEEN 1 AND 8),
    created_ms        bigint NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now()
);

-- Per-zone counters moved by the projection. The CHECK is the last guard
-- against an oversell: a projection that would break it fails and is never
-- "fixed" by lowering a count.
CREATE TABLE zones (
    event_id     bigint NOT NULL,  -- no FOREIGN KEY: PostgreSQL rechecks one on every update
                                   -- of a row the transaction updated before (each zone row
                                   -- moves once per entry of a projection batch); events are
                                   -- never deleted and zones are inserted with their event
    zone_id      integer NOT NULL CHECK (zone_id >= 1),
    name         text NOT NULL,
    capacity     bigint NOT NULL CHECK (capacity >= 1),
    price_minor  bigint NOT NULL CHECK (price_minor >= 0),
    currency     text NOT NULL,
    held         bigint NOT NULL DEFAULT 0,
    sold         bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (event_id, zone_id),
    CONSTRAINT zones_no_oversell CHECK (held >= 0 AND sold >= 0 AND held + sold <= capacity)
);

-- Bookings: one per hold (id = the hold id). state = enum br_hold_state.
CREATE TABLE bookings (
    id             bigint PRIMARY KEY,
    event_id       bigint NOT NULL,
    user_id        bigint NOT NULL,
    zone_id        integer NOT NULL,
    quantity       integer NOT NULL CHECK (quantity >= 1),
    state          smallint NOT NULL CHECK (state BETWEEN 1 AND 5),
    total_minor    bigint NOT NULL,
    currency       text NOT NULL,
    created_at_ms  bigint NOT NULL,
    expires_at_ms  bigint NOT NULL,
    pass_id        bigint NOT NULL DEFAULT 0,
    payment_id     bigint NOT NULL DEFAULT 0   -- the latest payment, 0 = none
    -- No FOREIGN KEY to zones: the projection inserts a booking only by
    -- joining its zone's row (which it holds locked), and the key's check,
    -- a row lock on a zone row updated once per batch, cost ~1 ms a booking.
);
CREATE INDEX bookings_event_state ON bookings (event_id, state, id);
CREATE INDEX bookings_user ON bookings (user_id, id);

-- Payments: state = enum br_payment_state.
CREATE TABLE payments (
    id                   bigint PRIMARY KEY,
    booking_id           bigint NOT NULL REFERENCES bookings (id),
    event_id             bigint NOT NULL,
    state                smallint NOT NULL CHECK (state BETWEEN 1 AND 5),
    amount_minor         bigint NOT NULL CHECK (amount_minor >= 0),
    currency             text NOT NULL,
    created_ms           bigint NOT NULL,
    refund_attempts      integer NOT NULL DEFAULT 0,
    next_attempt_ms      bigint NOT NULL DEFAULT 0,
    provider_payment_id  text
);
CREATE INDEX payments_event_state ON payments (event_id, state, id);

-- Provider events applied (exactly once): id = the br_hash64 of the
-- provider's event id as the commands carry it (stored as its signed 64-bit
-- pattern); provider_event_id = the provider's own string when known.
CREATE TABLE processed_provider_events (
    id                 bigint PRIMARY KEY,
    event_id           bigint NOT NULL,
    payment_id         bigint NOT NULL,
    at_ms              bigint NOT NULL,
    provider_event_id  text,
    created_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX processed_provider_events_event ON processed_provider_events (event_id, id);

-- Effects for the relay (next issue): one row per effect; source = the log
-- entry's stream id and the effect's index, so writing it twice is harmless.
CREATE TABLE outbox (
    id          bigserial PRIMARY KEY,
    topic       text NOT NULL,
    key         text NOT NULL,
    payload     jsonb NOT NULL,
    source      text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    sent_at     timestamptz
);
CREATE INDEX outbox_unsent ON outbox (id) WHERE sent_at IS NULL;

-- Each event's projection position: the last log entry applied, written in
-- the same transaction as the rows it produced (exactly once).
CREATE TABLE projection (
    event_id    bigint PRIMARY KEY REFERENCES events (id),
    stream_id   text NOT NULL,
    stream_ms   bigint NOT NULL,
    stream_seq  bigint NOT NULL,
    applied     bigint NOT NULL DEFAULT 0,
    pass_seq       bigint NOT NULL DEFAULT 0,  -- the largest pass number issued (the rebuild's
    passes_issued  bigint NOT NULL DEFAULT 0,  -- counters: passes themselves live in Redis)
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- The built-in test provider's intents, shared by every server process.
CREATE TABLE test_intents (
    id             text PRIMARY KEY,
    payment_id     bigint NOT NULL UNIQUE,
    booking_id     bigint NOT NULL,
    client_secret  text NOT NULL,
    amount_minor   bigint NOT NULL,
    currency       text NOT NULL,
    status         text NOT NULL,
    created_ms     bigint NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);
