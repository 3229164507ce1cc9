/*
 * cmd.h -- the command vocabulary: everything that enters the core, and what
 * comes out of it.
 *
 * A command is a plain value: its type, the time it is applied at (now_ms,
 * chosen by the driver), the acting user (0 = the system: workers and the
 * server's own configuration) and the arguments of its type. The engine turns
 * one command into one outcome (a result code plus data) and a list of effects
 * the driver must carry out. The journal codec (journal.h) turns commands and
 * outcomes into bytes; the embedded server's journal, the simulator's
 * --record file and replay all speak this list.
 *
 * Ids: user and event ids are small counters (1, 2, ...). Hold (= booking),
 * pass and payment ids are (event_id << 32 | n) with n a per-event counter
 * starting at 1, so one event's ids never collide with another's and every id
 * stays below 2^53 (exact in JSON). Zone ids are 1..zone_count within their
 * event.
 */
#ifndef BR_CMD_H
#define BR_CMD_H

#include <stdbool.h>
#include <stdint.h>

#include "limits.h"

/* X(symbol, value, name): the name is what journals, reports and logs print. */
#define BR_CMD_TYPE_MAP(X)                                                                  \
    X(BR_CMD_NONE, 0, "none")                                                               \
    X(BR_CMD_EVENT_CREATE, 1, "event_create")     /* actor: organizer, admin or system */  \
    X(BR_CMD_USER_REGISTER, 2, "user_register")   /* actor: system (password hashed) */    \
    X(BR_CMD_USER_ROLE_SET, 3, "user_role_set")   /* actor: admin or system */             \
    X(BR_CMD_QUEUE_JOIN, 4, "queue_join")         /* actor: the joining user */            \
    X(BR_CMD_QUEUE_LEAVE, 5, "queue_leave")       /* actor: the leaving user */            \
    X(BR_CMD_ADMIT, 6, "admit")                   /* actor: system (the admitter) */       \
    X(BR_CMD_RESERVE, 7, "reserve")               /* actor: the buyer */                   \
    X(BR_CMD_CANCEL, 8, "cancel")                 /* actor: the hold's owner */            \
    X(BR_CMD_SWEEP, 9, "sweep")                   /* actor: system (the sweeper) */        \
    X(BR_CMD_PAYMENT_CREATE, 10, "payment_create") /* actor: the hold's owner */           \
    X(BR_CMD_PAYMENT_EVENT, 11, "payment_event")  /* actor: system (a verified webhook) */ \
    X(BR_CMD_REFUND_RESULT, 12, "refund_result")  /* actor: system (the saga worker) */    \
    X(BR_CMD_SAGA_STEP, 13, "saga_step")          /* actor: system (the saga worker) */    \
    /* Refresh sessions (session.h); the embedded deployment's accounts only:               \
     * no Lua twin (lua/README.md). */                                                      \
    X(BR_CMD_SESSION_OPEN, 14, "session_open")     /* actor: the user who just logged in */ \
    X(BR_CMD_SESSION_ROTATE, 15, "session_rotate") /* actor: system (token MAC checked) */  \
    X(BR_CMD_SESSION_REVOKE, 16, "session_revoke") /* actor: system (logout) */             \
    X(BR_CMD_SESSION_REVOKE_ALL, 17, "session_revoke_all") /* actor: the user */        \
    /* Point 8: ask the provider about payments no webhook decided (saga.h). */             \
    X(BR_CMD_PAYMENT_CHECK, 18, "payment_check") /* actor: system (the saga worker) */   \
    /* Issue 13: the waiting room (queue.h). */                                             \
    X(BR_CMD_QUEUE_MODE_SET, 19, "queue_mode_set") /* actor: organizer (own event), admin,  \
                                                      system */                             \
    X(BR_CMD_PRESENCE, 20, "presence") /* actor: system (the server's seen batches) */

#define BR_ENUM_ENTRY(sym, val, name) sym = (val),
enum br_cmd_type { BR_CMD_TYPE_MAP(BR_ENUM_ENTRY) BR_CMD_TYPE_COUNT };

/* Operator modes (queue_mode_set). */
#define BR_QUEUE_MODE_MAP(X)                                                    \
    X(BR_QM_OPEN, 0, "open")               /* joins and admissions */           \
    X(BR_QM_PAUSED, 1, "paused")           /* joins accepted, no admissions */  \
    X(BR_QM_CLOSED, 2, "closed")           /* no new joins, no admissions */    \
    X(BR_QM_PASSTHROUGH, 3, "passthrough") /* no queue: holds need no pass */
enum br_queue_mode { BR_QUEUE_MODE_MAP(BR_ENUM_ENTRY) BR_QUEUE_MODE_COUNT };

/* What admission is doing now (br_queue_gate): reported, never stored per user. */
#define BR_QUEUE_GATE_MAP(X)                                                                 \
    X(BR_GATE_OPEN, 0, "open")                                                               \
    X(BR_GATE_NOT_OPEN, 1, "not_open")       /* before sale_opens_at */                     \
    X(BR_GATE_PAUSED, 2, "paused")           /* mode paused */                              \
    X(BR_GATE_SEATS_HELD, 3, "seats_held")   /* every seat held or sold; some may return */ \
    X(BR_GATE_SOLD_OUT, 4, "sold_out")       /* every seat sold: final */                   \
    X(BR_GATE_CLOSED, 5, "closed")           /* mode closed */                              \
    X(BR_GATE_PASSTHROUGH, 6, "passthrough") /* mode passthrough */
enum br_queue_gate { BR_QUEUE_GATE_MAP(BR_ENUM_ENTRY) BR_QUEUE_GATE_COUNT };

#define BR_QF_INVENTORY_AWARE 0x01u /* spec.queue_flags: point 1 */
#define BR_QF_ALL 0x01u             /* other bits are INVALID */

#define BR_QSET_MODE 0x01u /* queue_mode_set.set bits */
#define BR_QSET_MAX_ACTIVE 0x02u
#define BR_QSET_ADMIT_PER_MIN 0x04u

enum br_role { BR_ROLE_CUSTOMER = 0, BR_ROLE_ORGANIZER = 1, BR_ROLE_ADMIN = 2, BR_ROLE_COUNT = 3 };

struct br_zone_spec {
    char name[BR_ZONE_NAME_MAX];    /* NUL-terminated */
    uint32_t capacity;              /* seats, 1..BR_ZONE_CAPACITY_MAX */
    int64_t price_minor;            /* per seat, 0..BR_PRICE_MINOR_MAX */
    char currency[BR_CURRENCY_MAX]; /* "EUR": three upper-case letters */
};

struct br_event_spec {
    char name[BR_NAME_MAX];
    char venue[BR_NAME_MAX];
    int64_t starts_at_ms;     /* when the show starts (informational) */
    int64_t sale_opens_at_ms; /* joins before this go to the shuffled pre-queue */
    uint32_t per_user_limit;  /* tickets held + bought per user, 1..BR_PER_USER_LIMIT_MAX */
    bool requires_pass;       /* reserve needs a queue pass */
    uint32_t max_active;      /* outstanding passes at most, 1..BR_MAX_ACTIVE_MAX */
    uint32_t admit_per_tick;  /* passes one admit may issue, 1..BR_ADMIT_PER_TICK_MAX */
    int64_t pass_ttl_ms;      /* 1..BR_TTL_MS_MAX */
    int64_t hold_ttl_ms;      /* 1..BR_TTL_MS_MAX */
    uint32_t queue_capacity;  /* joins the event's queue can take over the sale; 0 = config default */
    /* Issue 13: the waiting room. All zero = every switch off (events of v1/v2 journals). */
    uint32_t admit_per_min;  /* new users per minute at most; 0 = no pacing; ..BR_ADMIT_PER_MIN_MAX */
    uint32_t presence_ttl_s; /* skip users not seen for this long at their turn; 0 = off;
                                ..BR_PRESENCE_TTL_S_MAX */
    uint8_t pow_bits;        /* proof-of-work on join (server); 0 = off; ..BR_POW_BITS_MAX */
    uint8_t queue_flags;     /* BR_QF_* */
    uint8_t mode;            /* initial enum br_queue_mode */
    uint32_t zone_count;      /* 1..BR_EVENT_ZONES_MAX */
    struct br_zone_spec zones[BR_EVENT_ZONES_MAX];
};

struct br_cmd {
    uint8_t type;     /* enum br_cmd_type */
    int64_t now_ms;   /* the driver's clock, 0..BR_NOW_MS_MAX; may go backwards (clock skew) */
    uint64_t user_id; /* acting user; 0 = system */
    union {
        struct br_event_spec event_create;
        struct {
            char email[BR_EMAIL_MAX]; /* compared byte for byte; the server lower-cases */
            char name[BR_NAME_MAX];
            uint8_t password_hash[BR_PASSWORD_HASH_LEN];
            uint8_t salt[BR_SALT_LEN];
            uint8_t role; /* enum br_role */
        } user_register;
        struct {
            uint64_t target_user_id;
            uint8_t role;
        } user_role_set;
        struct {
            uint64_t event_id;
        } queue_join, queue_leave, admit;
        struct {
            uint64_t event_id;
            uint32_t zone_id;
            uint32_t quantity;
            uint64_t pass_id;  /* 0 = none */
            uint64_t idem_key; /* 0 = none; the driver hashes the header with br_hash64() */
        } reserve;
        struct {
            uint64_t hold_id;
        } cancel;
        struct {
            uint64_t hold_id;
            uint32_t check_ms; /* quiet time before the first status query (payment_check):
                                  0 = never (journal v1 records), else
                                  BR_PAYMENT_CHECK_MS_MIN..BR_PAYMENT_CHECK_MS_MAX */
        } payment_create;
        struct {
            uint64_t event_id;
            uint32_t max; /* 1..BR_SWEEP_MAX */
        } sweep;
        struct {
            uint64_t provider_event_id; /* br_hash64 of the provider's event id string */
            uint64_t payment_id;
            bool succeeded;
        } payment_event;
        struct {
            uint64_t payment_id;
            bool ok;
        } refund_result;
        struct {
            uint32_t max; /* 1..BR_SAGA_STEP_MAX */
        } saga_step;
        struct {
            uint32_t max; /* 1..BR_SAGA_STEP_MAX */
        } payment_check;
        struct {
            int64_t ttl_ms;      /* 1..BR_TTL_MS_MAX: the session lives until now + ttl */
            uint32_t generation; /* the first, 1..BR_SESSION_GENERATION_FIRST_MAX: drawn at
                                    random by the server (session.h) */
        } session_open;
        struct {
            uint64_t session_id;
            uint32_t generation; /* the generation the presented token was issued for */
            int64_t ttl_ms;      /* rotate: the new expiry is now + ttl; revoke: 0 */
        } session_rotate, session_revoke;
        struct {
            uint64_t event_id;
            uint8_t set;            /* BR_QSET_* bits, at least one */
            uint8_t mode;           /* enum br_queue_mode, when BR_QSET_MODE */
            uint32_t max_active;    /* 1..spec.max_active, when BR_QSET_MAX_ACTIVE */
            uint32_t admit_per_min; /* 0..BR_ADMIT_PER_MIN_MAX (0 = off), when BR_QSET_ADMIT_PER_MIN */
        } queue_mode_set;
        struct {
            uint64_t event_id;
            uint32_t count;                           /* 1..BR_PRESENCE_BATCH_MAX */
            uint64_t user_ids[BR_PRESENCE_BATCH_MAX]; /* [count..) zero */
        } presence;
    } u;
};

/* Queue status of a user in an event's queue (outcome.status of join). */
/* X(symbol, value, name): the name is what the API and reports print. */
#define BR_QUEUE_STATUS_MAP(X)                                                          \
    X(BR_QS_NONE, 0, "none")         /* not in the queue */                             \
    X(BR_QS_PREQUEUE, 1, "prequeue") /* joined before the opening; no position yet */   \
    X(BR_QS_WAITING, 2, "waiting")   /* in FIFO order at `position` */                  \
    X(BR_QS_ADMITTED, 3, "admitted") /* holds a live pass */                            \
    X(BR_QS_USED, 4, "used")         /* the pass was consumed by a hold */              \
    X(BR_QS_EXPIRED, 5, "expired")   /* the pass expired unused */                      \
    X(BR_QS_LEFT, 6, "left")         /* left the queue */                               \
    X(BR_QS_LAPSED, 7, "lapsed")     /* skipped at its turn: not seen for presence_ttl */ \
    X(BR_QS_SOLD_OUT, 8, "sold_out") /* view only: waiting in a sold-out queue */        \
    X(BR_QS_CLOSED, 9, "closed")     /* view only: waiting while the mode is closed */   \
    X(BR_QS_PASSTHROUGH, 10, "passthrough") /* view only / join answer: no queue, book now */

enum br_queue_status { BR_QUEUE_STATUS_MAP(BR_ENUM_ENTRY) BR_QUEUE_STATUS_COUNT };

/* A pass or a hold is live while now_ms < its deadline_ms: it lapses exactly
 * at its deadline, never a millisecond later. The one statement of that rule
 * in C; lua/lib.lua's lapsed() is its twin, and the index walks (sweep, admit,
 * saga_step) take the entries whose deadline_ms <= now_ms, the same set. */
static inline bool br_lapsed(int64_t deadline_ms, int64_t now_ms)
{
    return now_ms >= deadline_ms;
}

/*
 * Hold (booking) states.
 *
 *     held ──payment succeeded before deadline──▶ confirmed   (final)
 *       │ ──now >= deadline (sweep, or late payment)──▶ expired ──refund done──▶ refunded
 *       └──cancel──▶ cancelled ──refund done──▶ refunded
 */
#define BR_HOLD_STATE_MAP(X)                 \
    X(BR_HOLD_NONE, 0, "none")               \
    X(BR_HOLD_HELD, 1, "held")               \
    X(BR_HOLD_CONFIRMED, 2, "confirmed")     \
    X(BR_HOLD_EXPIRED, 3, "expired")         \
    X(BR_HOLD_CANCELLED, 4, "cancelled")     \
    X(BR_HOLD_REFUNDED, 5, "refunded")
enum br_hold_state { BR_HOLD_STATE_MAP(BR_ENUM_ENTRY) BR_HOLD_STATE_COUNT };

/*
 * Payment (saga) states.
 *
 *     pending ──failed──▶ failed ──payment_create again──▶ pending (the same payment)
 *        │ └──succeeded, hold live──▶ confirmed (final)
 *        └──succeeded, hold gone──▶ refund_pending ──refund ok──▶ refunded (final)
 */
#define BR_PAYMENT_STATE_MAP(X)                      \
    X(BR_PAY_NONE, 0, "none")                        \
    X(BR_PAY_PENDING, 1, "pending")                  \
    X(BR_PAY_FAILED, 2, "failed")                    \
    X(BR_PAY_CONFIRMED, 3, "confirmed")              \
    X(BR_PAY_REFUND_PENDING, 4, "refund_pending")    \
    X(BR_PAY_REFUNDED, 5, "refunded")
enum br_payment_state { BR_PAYMENT_STATE_MAP(BR_ENUM_ENTRY) BR_PAYMENT_STATE_COUNT };

#define BR_EFFECT_MAP(X)                                                                    \
    X(BR_FX_NONE, 0, "none")                                                                \
    X(BR_FX_PASS_ISSUED, 1, "pass_issued")   /* id = pass, deadline_ms = expiry; sign it */ \
    X(BR_FX_PASS_EXPIRED, 2, "pass_expired") /* id = pass */                                \
    X(BR_FX_PROVIDER_CHARGE, 3, "provider_charge") /* id = payment, ref = hold, amount;     \
                                                      idempotency key = payment id */       \
    X(BR_FX_PROVIDER_REFUND, 4, "provider_refund")     /* id = payment, ref = hold, amount */ \
    X(BR_FX_BOOKING_CONFIRMED, 5, "booking_confirmed") /* id = hold, ref = payment */       \
    X(BR_FX_BOOKING_EXPIRED, 6, "booking_expired")     /* id = hold */                      \
    X(BR_FX_NOTIFY, 7, "notify") /* id = hold; the booking changed state (cancel, refund) */ \
    X(BR_FX_PROVIDER_QUERY, 8, "provider_query") /* id = payment, ref = hold, amount: ask     \
                                                    the provider; feed the answer back as   \
                                                    payment_event */                        \
    X(BR_FX_PROVIDER_VOID, 9, "provider_void")   /* id = payment, ref = hold: the hold is     \
                                                    gone: cancel the intent unless paid,    \
                                                    then feed the answer back */ \
    X(BR_FX_QUEUE_STATE, 10, "queue_state")   /* event_id; id = enum br_queue_gate, ref = mode: \
                                                 tell every waiting user (one broadcast) */    \
    X(BR_FX_PLACE_LAPSED, 11, "place_lapsed") /* event_id, user_id; deadline_ms = seen + ttl */
enum br_effect_kind { BR_EFFECT_MAP(BR_ENUM_ENTRY) BR_EFFECT_KIND_COUNT };

struct br_effect {
    uint8_t kind; /* enum br_effect_kind */
    uint64_t event_id;
    uint64_t user_id;
    uint64_t id;
    uint64_t ref;
    int64_t deadline_ms;
    int64_t amount_minor;
};

/*
 * The outcome of one command. Unused fields are zero, so outcomes compare
 * with memcmp after br_outcome_clear()'s memset. Effects are listed by the
 * engine (br_engine_effects) and summarised here by count and hash, so a
 * recorded outcome pins the effects too.
 *
 * Issue 13: admit -- count = passes issued, ref = places lapsed by this admit;
 * queue_mode_set -- id = event, status = mode, position = gate (enum
 * br_queue_gate), count = live max_active, ref = live admit_per_min;
 * presence -- id = event, count = members marked, queue_length.
 */
struct br_outcome {
    int32_t err;            /* enum br_err */
    uint8_t status;         /* queue status, hold state or payment state */
    uint64_t id;            /* the entity created or acted on */
    uint64_t ref;           /* a second entity: reserve -> pass, payment -> hold */
    uint32_t position;      /* queue position (1 = next), 0 when not waiting */
    uint32_t queue_length;  /* users waiting (pre-queue included) */
    int64_t deadline_ms;    /* pass or hold expiry */
    int64_t amount_minor;   /* payment amount */
    uint32_t count;         /* admitted, swept, re-emitted */
    uint32_t effect_count;
    uint64_t effects_hash;  /* hash over the effect list */
};

#endif
