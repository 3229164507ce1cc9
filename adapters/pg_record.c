/*
 * pg_record.c -- the projection of an event's log into PostgreSQL, the
 * reads of the reconciler and the rebuild, and the test provider's intents
 * (pg.h).
 *
 * Exactly once: br_pg_project locks the event's row, reads its position
 * (the last stream id applied), skips every entry at or below it, applies
 * the rest through br_pg_rows_of (pg_project.h) and writes the new position,
 * all in one transaction. Two recorders at once serialise on the event's row
 * lock, and the second finds the first's position. Retrying after a lost
 * COMMIT is harmless for the same reason.
 *
 * The zones' CHECK (held >= 0, sold >= 0, held + sold <= capacity) is the
 * last guard against an oversell: a batch that would break it fails as a
 * whole with BR_E_CORRUPT, logged at error level with the event, the zone
 * and the stream id, and the position does not move, so the recorder stops
 * at that entry (and keeps failing loudly) until an operator looks.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/pg_internal.h"
#include "adapters/pg_project.h"
#include "core/err.h"
#include "core/panic.h"

static const struct br_pg_stmt event_lock = {
    BR_PG_S_EVENT_LOCK, "event_lock", "SELECT id FROM events WHERE id = $1 FOR UPDATE", 1};
static const struct br_pg_stmt position_get = {
    BR_PG_S_POSITION_GET, "position_get",
    "SELECT stream_ms, stream_seq, stream_id FROM projection WHERE event_id = $1", 1};
static const struct br_pg_stmt position_set = {
    BR_PG_S_POSITION_SET, "position_set",
    "INSERT INTO projection (event_id, stream_id, stream_ms, stream_seq, applied) "
    "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (event_id) DO UPDATE SET "
    "stream_id = EXCLUDED.stream_id, stream_ms = EXCLUDED.stream_ms, "
    "stream_seq = EXCLUDED.stream_seq, applied = projection.applied + EXCLUDED.applied, "
    "updated_at = now()",
    5};
static const struct br_pg_stmt booking_new = {
    BR_PG_S_BOOKING_NEW, "booking_new",
    "WITH ins AS (INSERT INTO bookings (id, event_id, user_id, zone_id, quantity, state, "
    "total_minor, currency, created_at_ms, expires_at_ms, pass_id) "
    "SELECT $1, $2, $3, z.zone_id, $5, 1, $6, z.currency, $7, $8, $9 FROM zones z "
    "WHERE z.event_id = $2 AND z.zone_id = $4 ON CONFLICT (id) DO NOTHING "
    "RETURNING zone_id, quantity) "
    "UPDATE zones SET held = zones.held + ins.quantity FROM ins "
    "WHERE zones.event_id = $2 AND zones.zone_id = ins.zone_id RETURNING zones.held",
    9};
static const struct br_pg_stmt booking_exists = {
    BR_PG_S_BOOKING_EXISTS, "booking_exists", "SELECT 1 FROM bookings WHERE id = $1", 1};
static const struct br_pg_stmt booking_move = {
    BR_PG_S_BOOKING_MOVE, "booking_move",
    "WITH b AS (UPDATE bookings SET state = $2, payment_id = CASE WHEN $5::bigint <> 0 THEN $5 "
    "ELSE payment_id END WHERE id = $1 AND ((1 << state) & $3::integer) <> 0 "
    "RETURNING event_id, zone_id, quantity), "
    "z AS (UPDATE zones SET held = zones.held + $4::bigint * b.quantity, "
    "sold = zones.sold + $6::bigint * b.quantity FROM b WHERE zones.event_id = b.event_id "
    "AND zones.zone_id = b.zone_id AND ($4::bigint <> 0 OR $6::bigint <> 0) RETURNING 1) "
    "SELECT (SELECT count(*) FROM b), (SELECT count(*) FROM z)",
    6};
static const struct br_pg_stmt payment_new = {
    BR_PG_S_PAYMENT_NEW, "payment_new",
    "WITH p AS (INSERT INTO payments (id, booking_id, event_id, state, amount_minor, currency, "
    "created_ms) SELECT $1, $2, $3, 1, $4, b.currency, $5 FROM bookings b WHERE b.id = $2 "
    "ON CONFLICT (id) DO UPDATE SET state = 1 RETURNING id) "
    "UPDATE bookings SET payment_id = $1 FROM p WHERE bookings.id = $2 RETURNING bookings.id",
    5};
static const struct br_pg_stmt payment_state = {
    BR_PG_S_PAYMENT_STATE, "payment_state", "UPDATE payments SET state = $2 WHERE id = $1", 2};
static const struct br_pg_stmt refund_attempt = {
    BR_PG_S_REFUND_ATTEMPT, "refund_attempt",
    "UPDATE payments SET refund_attempts = refund_attempts + 1, "
    "next_attempt_ms = $2 + LEAST($3::bigint << LEAST(refund_attempts, 40), $4::bigint) "
    "WHERE id = $1",
    4};
static const struct br_pg_stmt refund_retry = {
    BR_PG_S_REFUND_RETRY, "refund_retry",
    "UPDATE payments SET next_attempt_ms = $2 + "
    "LEAST($3::bigint << LEAST(GREATEST(refund_attempts - 1, 0), 40), $4::bigint) WHERE id = $1",
    4};
static const struct br_pg_stmt provider_event = {
    BR_PG_S_PROVIDER_EVENT, "provider_event",
    "INSERT INTO processed_provider_events (id, event_id, payment_id, at_ms) "
    "VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING",
    4};
static const struct br_pg_stmt outbox = {
    BR_PG_S_OUTBOX, "outbox",
    "INSERT INTO outbox (topic, key, payload, source) VALUES ($1, $2, $3::jsonb, $4) "
    "ON CONFLICT (source) DO NOTHING",
    4};

/* ---- stream ids --------------------------------------------------------- */

struct pos {
    uint64_t ms;
    uint64_t seq;
};

/* "<ms>-<seq>" (Redis stream ids) into *p. false if malformed. */
static bool parse_pos(const char *s, struct pos *p)
{
    if (s == NULL || s[0] < '0' || s[0] > '9') {
        return false;
    }
    char *end;
    p->ms = strtoull(s, &end, 10);
    if (*end == '\0') {
        p->seq = 0; /* "0": before everything */
        return true;
    }
    if (*end != '-' || end[1] < '0' || end[1] > '9') {
        return false;
    }
    p->seq = strtoull(end + 1, &end, 10);
    return *end == '\0' && strlen(s) < BR_PG_STREAM_ID_MAX;
}

static bool pos_after(struct pos a, struct pos b)
{
    return a.ms > b.ms || (a.ms == b.ms && a.seq > b.seq);
}

/* ---- one op ------------------------------------------------------------- */

struct project_arg {
    uint64_t event_id;
    const struct br_pg_log_item *items;
    uint32_t n;
    struct br_pg_op *ops; /* scratch, ops_cap */
    uint32_t ops_cap;
    uint32_t applied;
    const char *at; /* the stream id being applied, for the log */
};

/* Runs s; *rows = rows returned or changed. */
static int run(struct br_pg_tx *t, const struct br_pg_stmt *s, const struct br_pg_params *p,
               PGresult **keep, int *rows)
{
    PGresult *r = br_pg_exec(t, s, p);
    ExecStatusType want = PGRES_COMMAND_OK;
    if (r != NULL && PQresultStatus(r) == PGRES_TUPLES_OK) {
        want = PGRES_TUPLES_OK;
    }
    int rc = br_pg_check(t, r, want, s->name);
    if (rc != BR_OK) {
        return rc;
    }
    *rows = want == PGRES_TUPLES_OK ? PQntuples(r) : (int)strtol(PQcmdTuples(r), NULL, 10);
    if (keep != NULL) {
        *keep = r;
    } else {
        PQclear(r);
    }
    return BR_OK;
}

static int corrupt(struct br_pg_tx *t, const struct project_arg *a, const struct br_pg_op *op,
                   const char *why)
{
    br_logf(br_pg_log(t->pg), BR_LOG_ERROR, "pg projection refused",
            "\"event_id\":%" PRIu64 ",\"stream_id\":\"%s\",\"op\":%u,\"id\":%" PRIu64
            ",\"zone_id\":%" PRIu32 ",\"why\":\"%s\"",
            a->event_id, a->at, op->kind, op->id, op->zone_id, why);
    return BR_E_CORRUPT;
}

static int op_booking_new(struct br_pg_tx *t, const struct project_arg *a,
                          const struct br_pg_op *op)
{
    struct br_pg_params p;
    br_pg_params_init(&p);
    br_pg_p_u64(&p, op->id);
    br_pg_p_u64(&p, op->event_id);
    br_pg_p_u64(&p, op->user_id);
    br_pg_p_i64(&p, op->zone_id);
    br_pg_p_i64(&p, op->quantity);
    br_pg_p_i64(&p, op->amount_minor);
    br_pg_p_i64(&p, op->at_ms);
    br_pg_p_i64(&p, op->deadline_ms);
    br_pg_p_u64(&p, op->ref);
    int rows = 0;
    int rc = run(t, &booking_new, &p, NULL, &rows);
    if (rc == BR_E_CORRUPT) {
        return corrupt(t, a, op, "zone CHECK: held + sold would exceed the capacity");
    }
    if (rc != BR_OK || rows == 1) {
        return rc;
    }
    /* nothing inserted: the same hold again (an idempotent reserve), or no such zone */
    br_pg_params_init(&p);
    br_pg_p_u64(&p, op->id);
    rc = run(t, &booking_exists, &p, NULL, &rows);
    return rc == BR_OK && rows == 0 ? corrupt(t, a, op, "reserve of an unknown zone") : rc;
}

static int op_booking_move(struct br_pg_tx *t, const struct project_arg *a,
                           const struct br_pg_op *op)
{
    struct br_pg_params p;
    br_pg_params_init(&p);
    br_pg_p_u64(&p, op->id);
    br_pg_p_i64(&p, op->to_state);
    br_pg_p_i64(&p, op->from_mask);
    br_pg_p_i64(&p, op->held_per_seat);
    br_pg_p_u64(&p, op->ref);
    br_pg_p_i64(&p, op->sold_per_seat);
    PGresult *r = NULL;
    int rows = 0;
    int rc = run(t, &booking_move, &p, &r, &rows);
    if (rc == BR_E_CORRUPT) {
        return corrupt(t, a, op, "zone CHECK: a count would go negative or over capacity");
    }
    if (rc != BR_OK) {
        return rc;
    }
    int64_t moved = br_pg_i64(r, 0, 0);
    PQclear(r);
    if (moved == 0 && op->must_match) {
        return corrupt(t, a, op, "the booking is not in the state the log leaves");
    }
    return BR_OK;
}

static int op_payment(struct br_pg_tx *t, const struct project_arg *a, const struct br_pg_op *op)
{
    struct br_pg_params p;
    br_pg_params_init(&p);
    br_pg_p_u64(&p, op->id);
    const struct br_pg_stmt *s;
    if (op->kind == BR_PG_OP_PAYMENT_NEW) {
        s = &payment_new;
        br_pg_p_u64(&p, op->ref);
        br_pg_p_u64(&p, op->event_id);
        br_pg_p_i64(&p, op->amount_minor);
        br_pg_p_i64(&p, op->at_ms);
    } else if (op->kind == BR_PG_OP_PAYMENT_STATE) {
        s = &payment_state;
        br_pg_p_i64(&p, op->to_state);
    } else {
        s = op->kind == BR_PG_OP_REFUND_ATTEMPT ? &refund_attempt : &refund_retry;
        br_pg_p_i64(&p, op->at_ms);
        br_pg_p_i64(&p, BR_REFUND_BACKOFF_MS_MIN);
        br_pg_p_i64(&p, BR_REFUND_BACKOFF_MS_MAX);
    }
    int rows = 0;
    int rc = run(t, s, &p, NULL, &rows);
    if (rc == BR_OK && rows != 1) {
        return corrupt(t, a, op, "the log names a payment or booking the record does not have");
    }
    return rc;
}

static int op_provider_event(struct br_pg_tx *t, const struct br_pg_op *op)
{
    struct br_pg_params p;
    br_pg_params_init(&p);
    br_pg_p_u64(&p, op->id);
    br_pg_p_u64(&p, op->event_id);
    br_pg_p_u64(&p, op->ref);
    br_pg_p_i64(&p, op->at_ms);
    int rows = 0;
    return run(t, &provider_event, &p, NULL, &rows);
}

static int op_outbox(struct br_pg_tx *t, const struct project_arg *a, const struct br_pg_op *op)
{
    const struct br_effect *fx = op->fx;
    char key[24], payload[512], source[BR_PG_STREAM_ID_MAX + 16];
    snprintf(key, sizeof key, "%" PRIu64, fx->id);
    snprintf(payload, sizeof payload,
             "{\"kind\":\"%s\",\"event_id\":%" PRIu64 ",\"user_id\":%" PRIu64 ",\"id\":%" PRIu64
             ",\"ref\":%" PRIu64 ",\"amount_minor\":%" PRId64 ",\"deadline_ms\":%" PRId64
             ",\"at_ms\":%" PRId64 ",\"stream_id\":\"%s\"}",
             br_pg_outbox_topic(fx->kind), fx->event_id, fx->user_id, fx->id, fx->ref,
             fx->amount_minor, fx->deadline_ms, op->at_ms, a->at);
    snprintf(source, sizeof source, "%" PRIu64 ":%s:%" PRIu32, a->event_id, a->at, op->index);
    struct br_pg_params p;
    br_pg_params_init(&p);
    br_pg_p_text(&p, br_pg_outbox_topic(fx->kind));
    br_pg_p_text(&p, key);
    br_pg_p_text(&p, payload);
    br_pg_p_text(&p, source);
    int rows = 0;
    return run(t, &outbox, &p, NULL, &rows);
}

static int apply_op(struct br_pg_tx *t, const struct project_arg *a, const struct br_pg_op *op)
{
    switch (op->kind) {
    case BR_PG_OP_BOOKING_NEW: return op_booking_new(t, a, op);
    case BR_PG_OP_BOOKING_MOVE: return op_booking_move(t, a, op);
    case BR_PG_OP_PAYMENT_NEW:
    case BR_PG_OP_PAYMENT_STATE:
    case BR_PG_OP_REFUND_ATTEMPT:
    case BR_PG_OP_REFUND_RETRY: return op_payment(t, a, op);
    case BR_PG_OP_PROVIDER_EVENT: return op_provider_event(t, op);
    case BR_PG_OP_OUTBOX: return op_outbox(t, a, op);
    default: BR_ASSERT(0 && "unknown op"); return BR_E_INVALID;
    }
}

/* ---- the projection ----------------------------------------------------- */

static int read_position(struct br_pg_tx *t, uint64_t event_id, struct pos *at, char *id,
                         size_t cap)
{
    struct br_pg_params p;
    br_pg_params_init(&p);
    br_pg_p_u64(&p, event_id);
    PGresult *r = NULL;
    int rows = 0;
    int rc = run(t, &position_get, &p, &r, &rows);
    if (rc != BR_OK) {
        return rc;
    }
    at->ms = at->seq = 0;
    snprintf(id, cap, "0");
    if (rows == 1) {
        at->ms = br_pg_u64(r, 0, 0);
        at->seq = br_pg_u64(r, 0, 1);
        br_pg_str(r, 0, 2, id, cap);
    }
    PQclear(r);
    return BR_OK;
}

static int apply_item(struct br_pg_tx *t, struct project_arg *a, const struct br_pg_log_item *it)
{
    uint32_t n = 0;
    int rc = br_pg_rows_of(it->cmd, it->out, it->fx, it->fx_count, a->ops, a->ops_cap, &n);
    if (rc != BR_OK) {
        br_logf(br_pg_log(t->pg), BR_LOG_ERROR, "pg projection: an entry the core cannot answer",
                "\"event_id\":%" PRIu64 ",\"stream_id\":\"%s\",\"type\":%u", a->event_id, a->at,
                it->cmd->type);
        return BR_E_CORRUPT;
    }
    for (uint32_t i = 0; i < n; i++) {
        if (a->ops[i].event_id != 0 && a->ops[i].event_id != a->event_id) {
            return BR_E_INVALID; /* an entry of another event */
        }
    }
    for (uint32_t i = 0; rc == BR_OK && i < n; i++) {
        rc = apply_op(t, a, &a->ops[i]);
    }
    return rc;
}

static int project_body(struct br_pg_tx *t, void *argp)
{
    struct project_arg *a = argp;
    a->applied = 0;
    struct br_pg_params p;
    br_pg_params_init(&p);
    br_pg_p_u64(&p, a->event_id);
    int rows = 0;
    int rc = run(t, &event_lock, &p, NULL, &rows);
    if (rc != BR_OK || rows == 0) {
        return rc != BR_OK ? rc : BR_E_NOT_FOUND;
    }
    struct pos at;
    char at_id[BR_PG_STREAM_ID_MAX];
    rc = read_position(t, a->event_id, &at, at_id, sizeof at_id);
#ifdef BR_PLANT_PG_NO_POSITION
    at.ms = at.seq = 0; /* planted: the stored position is not looked at */
#endif
    const struct br_pg_log_item *last = NULL;
    for (uint32_t i = 0; rc == BR_OK && i < a->n; i++) {
        struct pos ip;
        (void)parse_pos(a->items[i].stream_id, &ip); /* checked by the caller */
        if (!pos_after(ip, at)) {
            continue; /* applied already: exactly once */
        }
        a->at = a->items[i].stream_id;
        rc = apply_item(t, a, &a->items[i]);
        last = &a->items[i];
        a->applied++;
    }
    if (rc != BR_OK || last == NULL) {
        return rc;
    }
    struct pos lp;
    (void)parse_pos(last->stream_id, &lp);
    br_pg_params_init(&p);
    br_pg_p_u64(&p, a->event_id);
    br_pg_p_text(&p, last->stream_id);
    br_pg_p_u64(&p, lp.ms);
    br_pg_p_u64(&p, lp.seq);
    br_pg_p_i64(&p, a->applied);
    return run(t, &position_set, &p, NULL, &rows);
}

int br_pg_project(struct br_pg *pg, uint64_t event_id, const struct br_pg_log_item *items,
                  uint32_t n, uint32_t *applied)
{
    if (applied != NULL) {
        *applied = 0;
    }
    if (n > BR_PG_PROJECT_BATCH_MAX) {
        return BR_E_INVALID;
    }
    if (n == 0) {
        return BR_OK;
    }
    uint32_t fx_max = 0;
    struct pos prev = {0, 0};
    for (uint32_t i = 0; i < n; i++) {
        struct pos ip;
        if (!parse_pos(items[i].stream_id, &ip) || (i > 0 && !pos_after(ip, prev)) ||
            items[i].fx_count > BR_EFFECTS_MAX) {
            return BR_E_INVALID;
        }
        prev = ip;
        fx_max = items[i].fx_count > fx_max ? items[i].fx_count : fx_max;
    }
    struct project_arg a = {.event_id = event_id, .items = items, .n = n};
    a.ops_cap = BR_PG_OPS_FIXED + BR_PG_OPS_PER_EFFECT * fx_max;
    a.ops = calloc(a.ops_cap, sizeof *a.ops);
    if (a.ops == NULL) {
        return BR_E_IO;
    }
    int rc = br_pg_run(pg, "project", BR_PG_WRITE, project_body, &a);
    free(a.ops);
    if (rc == BR_OK && applied != NULL) {
        *applied = a.applied;
    }
    return rc;
}

struct position_arg {
    uint64_t event_id;
    char *out;
};

static int position_body(struct br_pg_tx *t, void *argp)
{
    struct position_arg *a = argp;
    struct pos at;
    return read_position(t, a->event_id, &at, a->out, BR_PG_STREAM_ID_MAX);
}

int br_pg_projection_position(struct br_pg *pg, uint64_t event_id,
                              char stream_id[BR_PG_STREAM_ID_MAX])
{
    snprintf(stream_id, BR_PG_STREAM_ID_MAX, "0");
    struct position_arg a = {.event_id = event_id, .out = stream_id};
    return br_pg_run(pg, "projection_position", BR_PG_READ, position_body, &a);
}
