/*
 * limits.h -- every compile-time limit of the core, in one place.
 *
 * Run-time capacities (how many users, holds, ...) are fields of struct
 * br_config (engine.h), fixed at init. The constants here bound the size of
 * single commands and of the work one command may do, so every loop in the
 * core has a bound that is visible here. Costs are per instance.
 */
#ifndef BR_LIMITS_H
#define BR_LIMITS_H

#define BR_NAME_MAX 64       /* event, venue and user names, incl. NUL: 64 B each */
#define BR_EMAIL_MAX 96      /* user email incl. NUL: 96 B per user */
#define BR_ZONE_NAME_MAX 32  /* zone name incl. NUL: 32 B per zone */
#define BR_CURRENCY_MAX 4    /* ISO 4217 code incl. NUL */
#define BR_PASSWORD_HASH_LEN 32 /* scrypt output stored per user: 32 B */
#define BR_SALT_LEN 16       /* salt stored per user: 16 B */

#define BR_EVENT_ZONES_MAX 8 /* zones per event; a br_cmd carries all of them (~0.5 KiB) */
#define BR_EVENT_ID_MAX ((1u << 20) - 1) /* ids are (event_id << 32 | seq) and stay below 2^53 */
#define BR_ZONE_CAPACITY_MAX 1000000u    /* seats per zone */
#define BR_HOLD_QUANTITY_MAX 16u         /* seats in one hold */
#define BR_PER_USER_LIMIT_MAX 64u        /* an event's per-user ticket limit */
#define BR_PRICE_MINOR_MAX 100000000     /* 1,000,000.00 in a 2-decimal currency */
#define BR_TTL_MS_MAX (30LL * 24 * 3600 * 1000) /* pass and hold TTLs: at most 30 days */

#define BR_ADMIT_PER_TICK_MAX 4096u /* users one admit command may admit */
#define BR_MAX_ACTIVE_MAX 1000000u  /* an event's max_active */
#define BR_SWEEP_MAX 4096u          /* holds one sweep command may expire */
#define BR_SAGA_STEP_MAX 1024u      /* duties one saga_step command may re-emit */
#define BR_PASS_EXPIRE_MAX 4096u    /* passes one admit command may expire first */

/* Issue 13: the waiting room (queue.h). */
#define BR_ADMIT_PER_MIN_MAX 600000u /* 10,000 a second */
#define BR_PACE_BURST_MS 2000        /* pace credit caps at 2 s of outflow (>= 1 admission) */
#define BR_PRESENCE_BATCH_MAX 64u    /* users in one presence command: 512 B of a record */
#define BR_PRESENCE_TTL_S_MAX 86400u
#define BR_LAPSE_SKIP_MAX 4096u      /* absent users one admit may skip */
#define BR_RATE_BUCKET_MS 10000      /* admission-rate ring: 30 x 10 s = 5 min, 136 B/event */
#define BR_RATE_BUCKETS 30u
#define BR_POW_BITS_MAX 28u

/* Effects one command may emit: the largest of the bounded loops above plus a few
 * (an admit: expiries, passes, lapsed places, one queue_state). */
#define BR_EFFECTS_MAX (BR_PASS_EXPIRE_MAX + BR_ADMIT_PER_TICK_MAX + BR_LAPSE_SKIP_MAX + 8u)

/* Deployment sizing (core/sizing.h). A table holds at most BR_TABLE_ROWS_MAX
 * rows. A server sized by people alone gets these tables, per 100 people,
 * with the memory each row reserves (a map rounds its slots up to a power
 * of two, 48-96 B an entry, hence the ranges):
 *   users 100 (304-352 B, a refresh session each), members 100 (92-140 B),
 *   queue places 1000 (8 B), passes 200 (92-140 B), active passes 25 (24 B),
 *   holds 50 (148-196 B),
 *   seats 100 (24 B), payments 50 (280-424 B with their provider events),
 *   idempotency keys 200 (72-120 B); an event reserves 0.9 KiB.
 * (at least the floors below for the cheap ones).
 * BR_PEOPLE_DEFAULT people and BR_EVENTS_DEFAULT events reserve 112 MiB,
 * what a 100,000-person on-sale needs (scenarios/onsale-100k.json). */
#define BR_TABLE_ROWS_MAX (1u << 30)
#define BR_PEOPLE_DEFAULT 100000u
#define BR_EVENTS_DEFAULT 16u
#define BR_USERS_PER_100_PEOPLE 100u        /* an account each */
#define BR_MEMBERS_PER_100_PEOPLE 100u      /* one event's queue each */
#define BR_QUEUE_PLACES_PER_100_PEOPLE 1000u /* room for big per-event queue capacities */
#define BR_PASSES_PER_100_PEOPLE 200u       /* admitted twice each (one re-join) */
#define BR_ACTIVE_PER_100_PEOPLE 25u        /* a quarter shopping at once */
#define BR_HOLDS_PER_100_PEOPLE 50u
#define BR_SEATS_PER_100_PEOPLE 100u
#define BR_PAYMENTS_PER_100_PEOPLE 50u
#define BR_IDEM_PER_100_PEOPLE 200u
#define BR_PROVIDER_EVENTS_PER_PAYMENT 2u   /* a decline, then a success */
#define BR_PROVIDER_EVENTS_EXTRA 16u
#define BR_QUEUE_DEFAULT_SHARE 4u           /* an event without queue_capacity takes 1/4 of the places */
/* Floors of the derived counts for the cheap tables, so a small deployment
 * still takes an event with the API's default queue (up to 250,000 places)
 * and the demo's 1,550 seats: 2.4 MiB reserved at most, resident as used. */
#define BR_QUEUE_PLACES_MIN 250000u
#define BR_SEATS_MIN 10000u
#define BR_ACTIVE_MIN 1000u

/* The fixed-size tables a command can find full (BR_E_FULL), for metrics
 * and logs. event_queue is one event's queue_capacity, not a deployment
 * table; other is a full answer none of the checks below explains. */
#define BR_TABLES(X)                                                                               \
    X(BR_TABLE_EVENTS, "events")                                                                   \
    X(BR_TABLE_USERS, "users")                                                                     \
    X(BR_TABLE_MEMBERS, "members")                                                                 \
    X(BR_TABLE_QUEUE_PLACES, "queue_places")                                                       \
    X(BR_TABLE_EVENT_QUEUE, "event_queue")                                                         \
    X(BR_TABLE_PASSES, "passes")                                                                   \
    X(BR_TABLE_ACTIVE, "active_passes")                                                            \
    X(BR_TABLE_HOLDS, "holds")                                                                     \
    X(BR_TABLE_SEATS, "seats")                                                                     \
    X(BR_TABLE_PAYMENTS, "payments")                                                               \
    X(BR_TABLE_IDEM, "idempotency_keys")                                                           \
    X(BR_TABLE_PROVIDER_EVENTS, "provider_events")                                                 \
    X(BR_TABLE_OTHER, "other")
#define BR_TABLE_ENUM(id, name) id,
enum br_table { BR_TABLES(BR_TABLE_ENUM) BR_TABLE_COUNT };
#undef BR_TABLE_ENUM

#define BR_REFUND_BACKOFF_MS_MIN 1000LL          /* first refund retry after 1 s */
#define BR_REFUND_BACKOFF_MS_MAX (3600LL * 1000) /* retries back off to one an hour */

/* Point 8 (payment_check, saga.h): a payment no webhook decided is asked
 * about check_ms after its creation, then again with the quiet time doubled
 * per attempt up to BR_PAYMENT_CHECK_BACKOFF_MS_MAX. */
#define BR_PAYMENT_CHECK_MS_DEFAULT 600000u          /* 10 min */
#define BR_PAYMENT_CHECK_MS_MIN 1000u                /* 1 s */
#define BR_PAYMENT_CHECK_MS_MAX 259200000u           /* 3 days */
#define BR_PAYMENT_CHECK_BACKOFF_MS_MAX (3600LL * 1000) /* one an hour at most */

/* A command's now_ms lies in [0, BR_NOW_MS_MAX] (ms since the epoch; the cap
 * is the year ~142,000). The engine refuses other clocks with BR_E_INVALID:
 * a deadline is now_ms plus a TTL or a backoff, which must neither overflow
 * int64 nor leave the integers a JSON number holds exactly. */
#define BR_NOW_MS_MAX (1LL << 52)

_Static_assert(BR_SWEEP_MAX <= BR_EFFECTS_MAX, "a full sweep must fit the effect buffer");
_Static_assert(BR_SAGA_STEP_MAX <= BR_EFFECTS_MAX, "a full saga step must fit the effects");
_Static_assert(BR_HOLD_QUANTITY_MAX <= BR_PER_USER_LIMIT_MAX, "a hold fits the largest limit");
_Static_assert((long long)BR_PRICE_MINOR_MAX * BR_HOLD_QUANTITY_MAX < (1LL << 53),
               "a hold's amount is exact in a JSON number");
_Static_assert(8 + 18 + 8 + 1 + 8 * BR_PRESENCE_BATCH_MAX + 61 <= 1024, "a presence record fits");
_Static_assert((long long)BR_ADMIT_PER_MIN_MAX * BR_PACE_BURST_MS < (1LL << 53), "pace credit exact");
_Static_assert(BR_NOW_MS_MAX + BR_TTL_MS_MAX + BR_REFUND_BACKOFF_MS_MAX < (1LL << 53),
               "every deadline is exact in a JSON number");

#endif
