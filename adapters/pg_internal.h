/*
 * pg_internal.h -- what the files of the PostgreSQL adapter share (pg.c:
 * the pool, the transaction runner, error translation and migrations;
 * pg_accounts.c, pg_catalog.c, pg_record.c: the data access of pg.h).
 * Not for use outside adapters/pg*.c.
 *
 * A data-access function is a body run by br_pg_run on a borrowed
 * connection, inside BEGIN/COMMIT when it writes. The body runs prepared
 * statements through br_pg_exec and checks each result with br_pg_check,
 * which logs the SQLSTATE with the server's message and translates it; the
 * body then refines the translation where the statement gives the SQLSTATE
 * a meaning (23505 on users.email = BR_E_EMAIL_TAKEN). The runner decides
 * what a broken connection means: retried once, or found out with
 * txid_status after a lost COMMIT answer (see pg.c).
 */
#ifndef BR_PG_INTERNAL_H
#define BR_PG_INTERNAL_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "adapters/pg.h"

/* Every prepared statement has a slot: a connection remembers which it prepared. */
enum br_pg_slot {
    BR_PG_S_LOCK_XACT,
    BR_PG_S_USER_MAX,
    BR_PG_S_USER_INSERT,
    BR_PG_S_USER_BY_EMAIL,
    BR_PG_S_USER_GET,
    BR_PG_S_USER_ROLE,
    BR_PG_S_SESSION_USER,
    BR_PG_S_SESSION_INSERT,
    BR_PG_S_SESSION_GET,
    BR_PG_S_SESSION_ROTATE,
    BR_PG_S_SESSION_REVOKE,
    BR_PG_S_SESSION_FLOOR,
    BR_PG_S_EVENT_MAX,
    BR_PG_S_EVENT_INSERT,
    BR_PG_S_ZONE_INSERT,
    BR_PG_S_EVENT_GET,
    BR_PG_S_EVENT_LIST,
    BR_PG_S_ZONES_OF,
    BR_PG_S_ZONES_RANGE,
    BR_PG_S_EVENT_LOCK,
    BR_PG_S_POSITION_GET,
    BR_PG_S_POSITION_SET,
    BR_PG_S_BOOKING_NEW,
    BR_PG_S_BOOKING_MOVE,
    BR_PG_S_ZONES_LOCK,
    BR_PG_S_ZONE_SET,
    BR_PG_S_PAYMENT_NEW,
    BR_PG_S_PAYMENT_STATE,
    BR_PG_S_REFUND_ATTEMPT,
    BR_PG_S_REFUND_RETRY,
    BR_PG_S_PROVIDER_EVENT,
    BR_PG_S_OUTBOX,
    BR_PG_S_BOOKINGS,
    BR_PG_S_BOOKING_GET,
    BR_PG_S_PAYMENTS,
    BR_PG_S_PAYMENT_GET,
    BR_PG_S_PROVIDER_EVENTS,
    BR_PG_S_INTENT_INSERT,
    BR_PG_S_INTENT_GET,
    BR_PG_S_INTENT_BY_PAYMENT,
    BR_PG_S_INTENT_STATUS,
    BR_PG_S_DELIVERY_INSERT,
    BR_PG_S_DELIVERY_CLAIM,
    BR_PG_S_DELIVERY_DONE,
    BR_PG_S_DELIVERY_RETRY,
    BR_PG_S_FACT_INSERT,   /* pg_payments.c */
    BR_PG_S_FACT_OUTBOX,
    BR_PG_S_STRIPE_INTENT_INSERT,
    BR_PG_S_STRIPE_INTENT_GET,
    BR_PG_S_OUTBOX_CLAIM,  /* pg_outbox.c (the relay's) */
    BR_PG_S_OUTBOX_FINISH,
    BR_PG_S_OUTBOX_UNSENT,
    BR_PG_S_OUTBOX_SPARE1,
    BR_PG_S_OUTBOX_SPARE2,
    BR_PG_S_REBUILD_COUNTERS_GET, /* pg_record.c (the reconciler's) */
    BR_PG_S_REBUILD_COUNTERS_PUT,
    BR_PG_S_COUNT
};

struct br_pg_stmt {
    enum br_pg_slot slot;
    const char *name; /* the prepared statement's name on the server */
    const char *sql;
    int nparams;
};

#define BR_PG_PARAMS_MAX 24 /* an event insert: 20 */

/* A statement's parameters: text, except bytea which is sent binary. */
struct br_pg_params {
    int n;
    const char *val[BR_PG_PARAMS_MAX];
    int len[BR_PG_PARAMS_MAX];
    int fmt[BR_PG_PARAMS_MAX];
    char num[BR_PG_PARAMS_MAX][24];
};

/* One borrowed connection, for the duration of one body. */
struct br_pg_tx {
    struct br_pg *pg;
    PGconn *conn;
    bool *prepared;   /* the connection's prepared-slot flags */
    bool broken;      /* the connection is lost: drop it */
    bool retryable;   /* the server rolled back and asks for a retry (40001, 40P01) */
    char sqlstate[6]; /* of the last failed statement, "" if none */
};

typedef int (*br_pg_body)(struct br_pg_tx *t, void *arg);

enum br_pg_run_kind {
    BR_PG_READ = 0, /* no transaction; a lost connection is retried once */
    BR_PG_WRITE = 1 /* BEGIN ... COMMIT; see pg.c for the retry rule */
};

/* Runs body on a pooled connection (see pg.c). Returns body's result or a
 * connection-level error (UNAVAILABLE, OVERLOADED, UNKNOWN_OUTCOME). */
int br_pg_run(struct br_pg *pg, const char *what, enum br_pg_run_kind kind, br_pg_body body,
              void *arg);

void br_pg_params_init(struct br_pg_params *p);
void br_pg_p_i64(struct br_pg_params *p, int64_t v);
void br_pg_p_u64(struct br_pg_params *p, uint64_t v); /* as its signed 64-bit pattern */
void br_pg_p_text(struct br_pg_params *p, const char *s);
void br_pg_p_bytes(struct br_pg_params *p, const void *b, int len);
void br_pg_p_bool(struct br_pg_params *p, bool v);

/* Prepares s on this connection if needed, then runs it. Never NULL-checks
 * for the caller: pass the result to br_pg_check. */
PGresult *br_pg_exec(struct br_pg_tx *t, const struct br_pg_stmt *s, const struct br_pg_params *p);

/* Prepares s on this connection if it is not yet (a pipeline cannot
 * prepare synchronously). BR_OK or a translated error. */
int br_pg_prepare(struct br_pg_tx *t, const struct br_pg_stmt *s);

/* Queues s (prepared) in pipeline mode. BR_OK, or BR_E_UNAVAILABLE with
 * t->broken when libpq could not queue it. */
int br_pg_send(struct br_pg_tx *t, const struct br_pg_stmt *s, const struct br_pg_params *p);

/* BR_OK if r has status want (PGRES_TUPLES_OK / PGRES_COMMAND_OK); else logs
 * what + SQLSTATE + the server's message, records the SQLSTATE in t, clears
 * r, and returns the translation: 23505 BR_E_DUPLICATE, 23514 and 23503
 * BR_E_CORRUPT (error level), 22xxx BR_E_INVALID, a lost connection (08xxx,
 * 57P01-3, no result) BR_E_UNAVAILABLE with t->broken, 40001/40P01
 * BR_E_UNAVAILABLE with t->retryable, 53xxx/57014/42P01 BR_E_UNAVAILABLE,
 * anything else BR_E_IO. On BR_OK r stays the caller's to PQclear. */
int br_pg_check(struct br_pg_tx *t, PGresult *r, ExecStatusType want, const char *what);

/* Column readers of a text-format result (row, column). */
int64_t br_pg_i64(const PGresult *r, int row, int col);
uint64_t br_pg_u64(const PGresult *r, int row, int col);
bool br_pg_bool(const PGresult *r, int row, int col);
void br_pg_str(const PGresult *r, int row, int col, char *out, size_t cap);
/* bytea into out[0..len): BR_OK or BR_E_CORRUPT if the stored length differs. */
int br_pg_bytea(const PGresult *r, int row, int col, uint8_t *out, size_t len);

/* Runs a statement without parameters whose one row and column is a number
 * (max ids). BR_OK or a connection error. */
int br_pg_read_u64(struct br_pg *pg, const struct br_pg_stmt *s, uint64_t *out);

/* The adapter's logger. */
const struct br_log *br_pg_log(const struct br_pg *pg);

/* Transaction-scoped advisory lock keys (pg_advisory_xact_lock) and the
 * session lock of migrations. */
#define BR_PG_LOCK_MIGRATE 0x6272000000LL
#define BR_PG_LOCK_USERS 0x6272000001LL
#define BR_PG_LOCK_EVENTS 0x6272000002LL

/* SELECT pg_advisory_xact_lock(key) inside the body's transaction. */
int br_pg_lock_xact(struct br_pg_tx *t, int64_t key);

#endif
