/*
 * backend.h -- what the HTTP routes need from a deployment, as a table of
 * function pointers. The routes (routes.c) never touch an engine, a journal,
 * Redis or PostgreSQL: they parse, authorise, call one operation here and
 * render its result. Two deployments implement the table:
 *
 *   - embedded (backend_embedded.c): the core engine in memory behind one
 *     mutex, the command journal with group commit, an in-process saga bus and
 *     the built-in test provider;
 *   - distributed (backend_distributed.c): Redis scripts, PostgreSQL, the
 *     test provider (Stripe and Kafka in a later issue).
 *
 * The translation between these calls and the core's commands and outcomes
 * (which command an operation is, how an outcome becomes a result) is
 * shared by both: server/api_cmd.h.
 *
 * Calls are asynchronous. Every operation takes a struct br_call the caller
 * owns; the backend fills call->err and the result, then calls call->done
 * exactly once -- possibly before the operation returns, possibly later on
 * another thread. A write's done runs only once its effect is durable (the
 * embedded backend: after the journal's fsync), so an answer the client sees
 * is never lost by a crash. A read's done runs once everything it may have
 * seen is durable. The call must stay valid until done has run.
 *
 * Results use the core's vocabulary (cmd.h: roles, hold states, event specs)
 * but never the engine's structs, so the distributed backend can fill them
 * from Redis replies and SQL rows.
 */
#ifndef BR_BACKEND_H
#define BR_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/cmd.h"
#include "core/limits.h"

#define BR_API_LIST_MAX 100u      /* items in one list answer (events, bookings) */
#define BR_API_PROVIDER_ID_MAX 48u /* provider payment id incl. NUL */
#define BR_API_SECRET_MAX 96u      /* provider client secret incl. NUL */
#define BR_API_POSITIONS_MAX 256u  /* users in one queue_positions call */

struct br_api_user {
    uint64_t id;
    uint8_t role; /* enum br_role */
    char email[BR_EMAIL_MAX];
    char name[BR_NAME_MAX];
    uint8_t password_hash[BR_PASSWORD_HASH_LEN]; /* filled by user_find only */
    uint8_t salt[BR_SALT_LEN];
};

struct br_api_event {
    uint64_t id;
    uint64_t owner_id; /* the organizer who created it; 0 = the system (the demo event) */
    struct br_event_spec spec;
    uint32_t held[BR_EVENT_ZONES_MAX];
    uint32_t sold[BR_EVENT_ZONES_MAX];
};

struct br_api_queue {
    uint64_t event_id;
    uint8_t status;         /* enum br_queue_status */
    uint32_t position;      /* 1 = next; 0 unless waiting */
    uint32_t queue_length;
    uint32_t estimated_wait_s; /* issue 13: UINT32_MAX = unknown (JSON null) */
    uint64_t pass_id;       /* when admitted */
    int64_t pass_expires_at_ms;
    /* Issue 13: the waiting room. */
    uint8_t gate;               /* enum br_queue_gate */
    uint8_t estimate_basis;     /* enum br_estimate_basis (core/queue.h) */
    uint32_t admitted_per_min;  /* measured; 0 when not measured */
};

/* Issue 13: the public status of an event's queue (GET /api/v1/events/{id}/queue)
 * and the answer of queue_mode_set. */
struct br_api_queue_status {
    uint64_t event_id;
    uint8_t mode, gate, pow_bits, estimate_basis; /* enum br_queue_mode, br_queue_gate, -,
                                                     br_estimate_basis */
    bool sold_out;
    uint32_t queue_length, admitted_per_min;
    uint32_t estimated_wait_s; /* for someone joining now; UINT32_MAX = null */
    uint32_t max_active, admit_per_min; /* the live controls */
    int64_t as_of_ms;
};

struct br_api_booking {
    uint64_t id;
    uint64_t event_id;
    uint64_t user_id;
    uint32_t zone_id;
    uint32_t quantity;
    uint8_t state;          /* enum br_hold_state */
    int64_t total_minor;
    char currency[BR_CURRENCY_MAX];
    int64_t created_at_ms;
    int64_t expires_at_ms;
    uint64_t payment_id;    /* latest payment, 0 = none */
};

struct br_api_payment {
    uint64_t id;
    uint64_t booking_id;
    uint8_t state;          /* enum br_payment_state */
    int64_t amount_minor;
    char currency[BR_CURRENCY_MAX];
    char provider_payment_id[BR_API_PROVIDER_ID_MAX];
    char client_secret[BR_API_SECRET_MAX];
};

struct br_api_stats {
    uint64_t event_id;
    uint64_t owner_id; /* the route decides who may see them (br_catalog_may_steer) */
    uint32_t queue_length;
    uint32_t admitted;
    uint32_t active_passes;
    uint32_t zone_count;
    uint32_t capacity[BR_EVENT_ZONES_MAX];
    uint32_t held[BR_EVENT_ZONES_MAX];
    uint32_t sold[BR_EVENT_ZONES_MAX];
    uint32_t bookings[BR_HOLD_STATE_COUNT]; /* by enum br_hold_state */
};

/* A refresh session (core/session.h) after open or rotate. */
struct br_api_session {
    uint64_t id;
    uint64_t user_id;
    uint8_t role;          /* the user's current role (rotate only) */
    uint32_t generation;   /* the generation a new refresh token is issued for */
    int64_t expires_at_ms;
};

struct br_call;
typedef void (*br_call_done_fn)(struct br_call *call);

struct br_call {
    br_call_done_fn done; /* set by the caller */
    void *ctx;            /* the caller's */
    int err;              /* enum br_err, set by the backend */
    union {
        struct br_api_user user;
        struct br_api_event event;
        struct br_api_queue queue;
        struct br_api_booking booking;
        struct br_api_payment payment;
        struct br_api_stats stats;
        struct br_api_session session;
        struct br_api_queue_status queue_status; /* issue 13 */
    } r;
    /* List answers go to caller-provided arrays. */
    struct br_api_event *events;
    struct br_api_booking *bookings;
    uint32_t list_cap;   /* room in the array, <= BR_API_LIST_MAX */
    uint32_t list_count; /* filled by the backend */
    /* Nothing backend-private: a backend that must remember a call while it
     * waits (the embedded backend's commit sequence) keeps its own record. */
};

/* What a backend tells the server as the sale moves (the queue fan-out).
 * Called on backend threads, after the change is durable; must not block. */
struct br_backend_listener {
    void *ctx;
    /* A pass was issued to (event, user). */
    void (*pass_issued)(void *ctx, uint64_t event_id, uint64_t user_id, uint64_t pass_id,
                        int64_t expires_at_ms);
    /* Positions in the event's queue may have moved. */
    void (*queue_changed)(void *ctx, uint64_t event_id);
    /* Issue 13: the event's admission gate changed (BR_FX_QUEUE_STATE; gate =
     * enum br_queue_gate, mode = enum br_queue_mode after the change). May be
     * NULL: a backend calls it only when set. */
    void (*queue_state)(void *ctx, uint64_t event_id, uint8_t gate, uint8_t mode);
};

/* Gauges for /metrics, per event (bounded by BR_API_LIST_MAX events). */
struct br_api_gauges {
    uint32_t event_count;
    struct {
        uint64_t id;
        uint32_t zone_count;
        uint32_t queue_length;
        uint32_t admitted;
        uint32_t active_passes;
        uint32_t capacity[BR_EVENT_ZONES_MAX];
        uint32_t held[BR_EVENT_ZONES_MAX];
        uint32_t sold[BR_EVENT_ZONES_MAX];
    } events[BR_API_LIST_MAX];
    uint64_t commands;      /* commands applied since start (replay included) */
    uint64_t engine_bytes;  /* memory reserved for the engine's tables; 0 = not tracked */
    uint32_t table_rows[BR_TABLE_COUNT];       /* rows in use, by enum br_table (limits.h) */
    uint32_t table_rows_max[BR_TABLE_COUNT];   /* rows allowed; 0 = not a deployment table */
    uint64_t capacity_exhausted[BR_TABLE_COUNT]; /* answers refused for room since start */
    /* What only one backend has (the embedded journal's commits, fsync time,
     * storage faults) is not here: it writes its own families through
     * ops->metrics. */
};

/* Where a backend writes its own metric families for /metrics: Prometheus
 * text format 0.0.4, each family with its HELP and TYPE lines, written with
 * br_metrics_printf() (server/metrics.h). Opaque: metrics.c owns it. */
struct br_metrics_sink;

struct br_backend;

struct br_backend_ops {
    const char *name;

    /* ---- accounts ---- */
    /* Registers a user with an already hashed password. Result: r.user. */
    void (*user_register)(struct br_backend *b, const char *email, const char *name,
                          const uint8_t hash[BR_PASSWORD_HASH_LEN],
                          const uint8_t salt[BR_SALT_LEN], uint8_t role, struct br_call *call);
    /* The user with this email, hash and salt included (login). r.user. */
    void (*user_find)(struct br_backend *b, const char *email, struct br_call *call);
    /* r.user (no hash). */
    void (*user_get)(struct br_backend *b, uint64_t user_id, struct br_call *call);
    /* actor 0 = the server itself. r.user. */
    void (*user_role_set)(struct br_backend *b, uint64_t actor, uint64_t target, uint8_t role,
                          struct br_call *call);
    /* Synchronous and cheap (every authenticated request asks): whether a
     * user with this id exists. Users are never removed, so a yes stays
     * true. May say yes for a user whose registration is not yet durable
     * (no token can name such a user: login reads wait for durability). */
    bool (*user_exists)(struct br_backend *b, uint64_t user_id);

    /* ---- refresh sessions (core/session.h) ---- */
    /* A new session for the user, living ttl_ms, its first generation drawn
     * at random by the caller (1..BR_SESSION_GENERATION_FIRST_MAX). r.session.
     * BR_E_FULL: none left. */
    void (*session_open)(struct br_backend *b, uint64_t user, uint32_t generation, int64_t ttl_ms,
                         struct br_call *call);
    /* Rotates the session presented at this generation (the token's MAC
     * checked): r.session with the next generation, or BR_E_UNAUTHORIZED
     * (unknown, expired, revoked, or reused: then revoked now). */
    void (*session_rotate)(struct br_backend *b, uint64_t session_id, uint32_t generation,
                           int64_t ttl_ms, struct br_call *call);
    /* Logout: revokes the session. BR_OK or BR_E_UNAUTHORIZED. */
    void (*session_revoke)(struct br_backend *b, uint64_t session_id, uint32_t generation,
                           struct br_call *call);
    /* Logout everywhere: revokes every session of the user. */
    void (*session_revoke_all)(struct br_backend *b, uint64_t user, struct br_call *call);

    /* ---- catalog ---- */
    /* actor 0 = the server itself (the demo event). r.event. The distributed
     * backend makes the server's event only while there is no event at all,
     * else BR_E_DUPLICATE (another process made the first): processes started
     * together with --demo make one. */
    void (*event_create)(struct br_backend *b, uint64_t actor, const struct br_event_spec *spec,
                         struct br_call *call);
    /* Events with id > after_id, ascending, up to call->list_cap into call->events. */
    void (*event_list)(struct br_backend *b, uint64_t after_id, struct br_call *call);
    void (*event_get)(struct br_backend *b, uint64_t event_id, struct br_call *call);
    void (*event_stats)(struct br_backend *b, uint64_t event_id, struct br_call *call);

    /* ---- queue ---- */
    void (*queue_join)(struct br_backend *b, uint64_t user, uint64_t event_id, struct br_call *call);
    void (*queue_leave)(struct br_backend *b, uint64_t user, uint64_t event_id,
                        struct br_call *call);
    void (*queue_position)(struct br_backend *b, uint64_t user, uint64_t event_id,
                           struct br_call *call);
    /* Synchronous, advisory (may show state not yet durable): the fan-out's
     * view for one subscriber. BR_OK, BR_E_NOT_FOUND, BR_E_NOT_IN_QUEUE. */
    int (*queue_peek)(struct br_backend *b, uint64_t user, uint64_t event_id,
                      struct br_api_queue *out);
    /* Synchronous, advisory, as queue_peek, for n users of one event at
     * once (the SSE hub's refresh: one call per event and period, not one
     * per subscriber). n <= BR_API_POSITIONS_MAX. Returns BR_OK when every
     * rc[i] and out[i] is filled: rc[i] as queue_peek's answer for users[i]
     * (BR_OK, BR_E_NOT_FOUND, BR_E_NOT_IN_QUEUE), out[i] meaningful only
     * when rc[i] is BR_OK. Any other return (BR_E_UNAVAILABLE: the store is
     * unreachable) is for the whole call: rc and out are then untouched and
     * the caller tries again at its next refresh. Any thread; the caller
     * must hold no lock the backend's listener takes. */
    int (*queue_positions)(struct br_backend *b, uint64_t event_id, const uint64_t *users,
                           uint32_t n, struct br_api_queue *out, int *rc);

    /* ---- issue 13: the waiting room. Both backends set these; NULL-able
     * all the same: a backend without them leaves them NULL and the routes
     * answer 501 NOT_IMPLEMENTED (presence reports are then not sent). ---- */
    /* Operator modes (core queue_mode_set; set = BR_QSET_* bits): actor 0 =
     * the server itself. r.queue_status. */
    void (*queue_mode_set)(struct br_backend *b, uint64_t actor, uint64_t event_id, uint8_t set,
                           uint8_t mode, uint32_t max_active, uint32_t admit_per_min,
                           struct br_call *call);
    /* Synchronous, advisory (as queue_peek): the event's public queue status.
     * BR_OK or BR_E_NOT_FOUND (BR_E_UNAVAILABLE: the store is unreachable). */
    int (*queue_status_peek)(struct br_backend *b, uint64_t event_id,
                             struct br_api_queue_status *out);
    /* Fire and forget: these users of the event were seen (core presence),
     * n <= BR_PRESENCE_BATCH_MAX. */
    void (*presence_report)(struct br_backend *b, uint64_t event_id, const uint64_t *users,
                            uint32_t n);
    /* Marks a proof-of-work challenge used deployment-wide (server/pow.h):
     * event 0 = register; rand_hex = the challenge's random part in hex.
     * BR_OK (first use), BR_E_POW_INVALID (used before) or BR_E_UNAVAILABLE.
     * NULL (embedded): the routes keep the used set in-process (br_pow). */
    int (*pow_use)(struct br_backend *b, uint64_t event_id, const char *rand_hex, int64_t ttl_ms);

    /* ---- bookings and payments ---- */
    /* pass_id 0 = none; idem_key 0 = none. r.booking. */
    void (*reserve)(struct br_backend *b, uint64_t user, uint64_t event_id, uint32_t zone_id,
                    uint32_t quantity, uint64_t pass_id, uint64_t idem_key, struct br_call *call);
    /* The user's bookings, newest first, into call->bookings. */
    void (*booking_list)(struct br_backend *b, uint64_t user, struct br_call *call);
    /* Any user's booking (the route checks ownership). r.booking. */
    void (*booking_get)(struct br_backend *b, uint64_t booking_id, struct br_call *call);
    void (*booking_cancel)(struct br_backend *b, uint64_t user, uint64_t booking_id,
                           struct br_call *call);
    /* Creates (or returns the open) payment and the provider's intent. r.payment. */
    void (*payment_create)(struct br_backend *b, uint64_t user, uint64_t booking_id,
                           struct br_call *call);
    /* A verified provider event. BR_OK or BR_E_DUPLICATE (already applied). r.payment. */
    void (*payment_event)(struct br_backend *b, const char *provider_event_id, uint64_t payment_id,
                          bool succeeded, struct br_call *call);

    /* ---- operations ---- */
    /* Whether the backend takes writes; when not, *why (if why is not NULL)
     * says why in a sentence. */
    bool (*ready)(struct br_backend *b, const char **why);
    void (*gauges)(struct br_backend *b, struct br_api_gauges *g);
    /* The backend's own metric families (see struct br_metrics_sink),
     * written after the server's counters and before the engine tables;
     * NULL = none. Called by br_metrics_render on the /metrics request's
     * thread, right after gauges. The embedded backend writes its journal's
     * (br_journal_commits_total, br_journal_sync_seconds_total,
     * br_journal_gather_seconds_total, br_journal_replayed_commands,
     * br_journal_storage_unavailable, br_journal_storage_failures_total). */
    void (*metrics)(struct br_backend *b, struct br_metrics_sink *out);
};

struct br_backend {
    const struct br_backend_ops *ops;
};

#endif
