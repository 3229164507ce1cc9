/*
 * pg_record.c -- the projection of an event's log into PostgreSQL (pg.h,
 * br_pg_project; what each entry means is pg_project.c's).
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
 *
 * Zone counters are written once per batch, not once per entry: updating
 * one row k times in one transaction costs O(k) each (PostgreSQL walks the
 * row's chain of versions), so a batch of n reserves of one zone would cost
 * O(n^2). The batch locks its zones' rows first, the booking statements
 * return the zone and quantity of each booking they move, and the counters
 * are carried along entry by entry in C. At the end each zone touched is
 * written once: with its final counts, or, when some entry on the way broke
 * the invariant, with the counts right after that entry, so that the CHECK
 * itself refuses the batch and names the entry (a transient oversell that
 * a later cancel would hide in the final counts is refused too).
 *
 * Also the rebuild's counters (br_pg_rebuild_counters_*, migration 0004):
 * what each rebuild of an event gave Redis, read and kept by the reconciler.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/pg_internal.h"
#include "adapters/pg_project.h"
#include "core/err.h"
#include "core/panic.h"

static const struct br_pg_stmt event_lock = {BR_PG_S_EVENT_LOCK, "event_lock",
                                             "SELECT id FROM events WHERE id = $1 FOR UPDATE", 1};
static const struct br_pg_stmt position_get = {
    BR_PG_S_POSITION_GET, "position_get",
    "SELECT stream_ms, stream_seq, stream_id, applied, pass_seq, passes_issued FROM projection "
    "WHERE event_id = $1",
    1};
static const struct br_pg_stmt position_set = {
    BR_PG_S_POSITION_SET, "position_set",
    "INSERT INTO projection (event_id, stream_id, stream_ms, stream_seq, applied, pass_seq, "
    "passes_issued) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (event_id) DO UPDATE SET "
    "stream_id = EXCLUDED.stream_id, stream_ms = EXCLUDED.stream_ms, "
    "stream_seq = EXCLUDED.stream_seq, applied = projection.applied + EXCLUDED.applied, "
    "pass_seq = GREATEST(projection.pass_seq, EXCLUDED.pass_seq), "
    "passes_issued = projection.passes_issued + EXCLUDED.passes_issued, updated_at = now()",
    7};
/* Consecutive reserves in one statement: the rows come as arrays (ids, users,
 * zones, quantities, totals, created, expiry, passes; the event is $1) and
 * the answer is one row per input row, in input order: whether the id was
 * there before the statement, and (the same on every row) how many rows the
 * statement inserted. The caller knows the rest: a row is inserted when its
 * id was not there, its zone exists and it is its id's first row in the
 * group (an idempotent reserve repeated: inserted once), and it checks the
 * count against its own. No join of the inserted rows back to the input:
 * that would be quadratic in the group's size. */
static const struct br_pg_stmt booking_new_many = {
    BR_PG_S_BOOKING_NEW, "booking_new_many",
    "WITH v AS (SELECT * FROM unnest($2::bigint[], $3::bigint[], $4::integer[], $5::integer[], "
    "$6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[]) WITH ORDINALITY "
    "AS v(id, user_id, zone_id, quantity, total, created, expires, pass, ord)), "
    "ins AS (INSERT INTO bookings (id, event_id, user_id, zone_id, quantity, state, total_minor, "
    "currency, created_at_ms, expires_at_ms, pass_id) SELECT v.id, $1, v.user_id, z.zone_id, "
    "v.quantity, 1, v.total, z.currency, v.created, v.expires, v.pass FROM v JOIN zones z "
    "ON z.event_id = $1 AND z.zone_id = v.zone_id ORDER BY v.ord ON CONFLICT (id) DO NOTHING "
    "RETURNING 1) "
    "SELECT v.ord, EXISTS (SELECT 1 FROM bookings b WHERE b.id = v.id), "
    "(SELECT count(*) FROM ins) FROM v ORDER BY v.ord",
    9};
/* The booking's zone and quantity when it moved; no row when it was not in
 * one of the from states. */
static const struct br_pg_stmt booking_move = {
    BR_PG_S_BOOKING_MOVE, "booking_move",
    "UPDATE bookings SET state = $2, payment_id = CASE WHEN $4::bigint <> 0 THEN $4 "
    "ELSE payment_id END WHERE id = $1 AND ((1 << state) & $3::integer) <> 0 "
    "RETURNING zone_id, quantity",
    4};
static const struct br_pg_stmt zones_lock = {
    BR_PG_S_ZONES_LOCK, "zones_lock",
    "SELECT zone_id, capacity, held, sold FROM zones WHERE event_id = $1 ORDER BY zone_id "
    "FOR UPDATE",
    1};
static const struct br_pg_stmt zone_set = {
    BR_PG_S_ZONE_SET, "zone_set",
    "UPDATE zones SET held = $3, sold = $4 WHERE event_id = $1 AND zone_id = $2", 4};
static const struct br_pg_stmt payment_new = {
    BR_PG_S_PAYMENT_NEW, "payment_new",
    "WITH p AS (INSERT INTO payments (id, booking_id, event_id, state, amount_minor, currency, "
    "created_ms) SELECT $1, $2, $3, 1, $4, b.currency, $5 FROM bookings b WHERE b.id = $2 "
    "ON CONFLICT (id) DO UPDATE SET state = 1 RETURNING id) "
    "UPDATE bookings SET payment_id = $1 FROM p WHERE bookings.id = $2 RETURNING bookings.id",
    5};
static const struct br_pg_stmt payment_state = {BR_PG_S_PAYMENT_STATE, "payment_state",
                                                "UPDATE payments SET state = $2 WHERE id = $1", 2};
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

/* ---- sending ops --------------------------------------------------------- */

/*
 * The projection runs its statements in libpq's pipeline mode: a chunk of
 * up to CHUNK_OPS statements is queued, then one sync, then the results are
 * read and checked in order. One round trip per chunk instead of one per
 * statement; a chunk stays small enough that neither side's socket buffer
 * fills while the other is not reading. The first failing statement makes
 * the server skip the rest of the chunk (PGRES_PIPELINE_ABORTED) and the
 * transaction rolls back as a whole.
 */
#define CHUNK_OPS 256u
#define GROUP_ROWS_MAX 1024u /* reserves queued in multi-row statements between syncs */

/* One reserve waiting in the open group (booking_new_many). */
struct grow {
    uint64_t id;
    uint64_t user_id;
    uint32_t zone_id;
    uint32_t quantity;
    int64_t total_minor;
    int64_t created_ms;
    int64_t expires_ms;
    uint64_t pass_id;
    const char *at;
};

/* What to check in a queued statement's result. */
struct sent {
    uint8_t kind; /* enum br_pg_op_kind; BR_PG_OP_NONE = position or zone row */
    bool must_match;
    int8_t held_per_seat; /* booking_move: the zone deltas */
    int8_t sold_per_seat;
    uint64_t id;
    uint32_t zone_id;
    const char *at; /* the entry's stream id, for the log */
    uint32_t row0;  /* booking_new_many: its rows, a->rows[row0 .. row0 + nrows) */
    uint32_t nrows;
};

/* The event's zones, carried along the batch (see the header comment). */
struct zones {
    uint32_t count;
    int64_t capacity[BR_EVENT_ZONES_MAX];
    int64_t held[BR_EVENT_ZONES_MAX];
    int64_t sold[BR_EVENT_ZONES_MAX];
    bool touched[BR_EVENT_ZONES_MAX];
    bool broken;       /* an entry broke held >= 0, sold >= 0, held + sold <= capacity */
    uint32_t bad_zone; /* the first such: zone index, counts right after, its entry */
    int64_t bad_held;
    int64_t bad_sold;
    const char *bad_at;
};

struct project_arg {
    uint64_t event_id;
    const struct br_pg_log_item *items;
    uint32_t n;
    struct br_pg_op *ops; /* scratch for one entry's ops, ops_cap */
    uint32_t ops_cap;
    struct sent *sent; /* CHUNK_OPS + ops_cap */
    struct grow *rows; /* GROUP_ROWS_MAX reserves: the groups queued since the last sync */
    uint32_t nrows;
    uint32_t group0; /* the open group: rows[group0 .. nrows) not yet sent */
    uint32_t nsent;
    uint32_t applied;
    uint32_t pass_seq;      /* the largest pass number issued in the entries applied */
    uint32_t passes_issued; /* pass_issued effects in them */
    struct zones z;
};

static const struct br_pg_stmt *const pipelined[] = {
    &booking_new_many, &booking_move,   &payment_new, &payment_state, &refund_attempt,
    &refund_retry,     &provider_event, &outbox,      &position_set,  &zone_set,
};

/* A booking of zone_id (1-based) moved: held += dh * qty, sold += ds * qty. */
static bool zone_move(struct zones *z, int64_t zone_id, int64_t qty, int dh, int ds, const char *at)
{
    if (zone_id < 1 || zone_id > z->count) {
        return false;
    }
    uint32_t i = (uint32_t)zone_id - 1;
    z->held[i] += dh * qty;
    z->sold[i] += ds * qty;
    z->touched[i] = true;
    if (!z->broken &&
        (z->held[i] < 0 || z->sold[i] < 0 || z->held[i] + z->sold[i] > z->capacity[i])) {
        z->broken = true;
        z->bad_zone = i;
        z->bad_held = z->held[i];
        z->bad_sold = z->sold[i];
        z->bad_at = at;
    }
    return true;
}

static int corrupt(struct br_pg_tx *t, const struct project_arg *a, const struct sent *s,
                   const char *why)
{
    br_logf(br_pg_log(t->pg), BR_LOG_ERROR, "pg projection refused",
            "\"event_id\":%" PRIu64 ",\"stream_id\":\"%s\",\"op\":%u,\"id\":%" PRIu64
            ",\"zone_id\":%" PRIu32 ",\"why\":\"%s\",\"alert\":\"br_projection_failed\"",
            a->event_id, s->at, s->kind, s->id, s->zone_id, why);
    return BR_E_CORRUPT;
}

static void params_of(const struct project_arg *a, const struct br_pg_op *op, const char *at,
                      struct br_pg_params *p, char *buf, size_t cap, const struct br_pg_stmt **s)
{
    br_pg_params_init(p);
    br_pg_p_u64(p, op->id);
    switch (op->kind) {
    case BR_PG_OP_BOOKING_MOVE:
        *s = &booking_move;
        br_pg_p_i64(p, op->to_state);
        br_pg_p_i64(p, op->from_mask);
        br_pg_p_u64(p, op->ref);
        break;
    case BR_PG_OP_PAYMENT_NEW:
        *s = &payment_new;
        br_pg_p_u64(p, op->ref);
        br_pg_p_u64(p, op->event_id);
        br_pg_p_i64(p, op->amount_minor);
        br_pg_p_i64(p, op->at_ms);
        break;
    case BR_PG_OP_PAYMENT_STATE:
        *s = &payment_state;
        br_pg_p_i64(p, op->to_state);
        break;
    case BR_PG_OP_REFUND_ATTEMPT:
    case BR_PG_OP_REFUND_RETRY:
        *s = op->kind == BR_PG_OP_REFUND_ATTEMPT ? &refund_attempt : &refund_retry;
        br_pg_p_i64(p, op->at_ms);
        br_pg_p_i64(p, BR_REFUND_BACKOFF_MS_MIN);
        br_pg_p_i64(p, BR_REFUND_BACKOFF_MS_MAX);
        break;
    case BR_PG_OP_PROVIDER_EVENT:
        *s = &provider_event;
        br_pg_p_u64(p, op->event_id);
        br_pg_p_u64(p, op->ref);
        br_pg_p_i64(p, op->at_ms);
        break;
    default: {
        BR_ASSERT(op->kind == BR_PG_OP_OUTBOX);
        const struct br_effect *fx = op->fx;
        /* buf: key (24), payload, source; params point into it */
        char *key = buf, *payload = buf + 24, *source = buf + cap - 64;
        snprintf(key, 24, "%" PRIu64, fx->id);
        snprintf(payload, cap - 24 - 64,
                 "{\"kind\":\"%s\",\"event_id\":%" PRIu64 ",\"user_id\":%" PRIu64 ",\"id\":%" PRIu64
                 ",\"ref\":%" PRIu64 ",\"amount_minor\":%" PRId64 ",\"deadline_ms\":%" PRId64
                 ",\"at_ms\":%" PRId64 ",\"stream_id\":\"%s\"}",
                 br_pg_outbox_topic(fx->kind), fx->event_id, fx->user_id, fx->id, fx->ref,
                 fx->amount_minor, fx->deadline_ms, op->at_ms, at);
        snprintf(source, 64, "%" PRIu64 ":%s:%" PRIu32, a->event_id, at, op->index);
        *s = &outbox;
        br_pg_params_init(p);
        br_pg_p_text(p, br_pg_outbox_topic(fx->kind));
        br_pg_p_text(p, key);
        br_pg_p_text(p, payload);
        br_pg_p_text(p, source);
        break;
    }
    }
}

static int drain(struct br_pg_tx *t, struct project_arg *a);

/* One array parameter of the open group: field f of each of its rows, "{1,2,3}". */
static void group_array(const struct project_arg *a, int f, char *buf, size_t cap)
{
    size_t len = 0;
    buf[len++] = '{';
    for (uint32_t i = a->group0; i < a->nrows; i++) {
        const struct grow *g = &a->rows[i];
        long long v = f == 0   ? (long long)g->id
                      : f == 1 ? (long long)g->user_id
                      : f == 2 ? (long long)g->zone_id
                      : f == 3 ? (long long)g->quantity
                      : f == 4 ? (long long)g->total_minor
                      : f == 5 ? (long long)g->created_ms
                      : f == 6 ? (long long)g->expires_ms
                               : (long long)g->pass_id;
        int w = snprintf(buf + len, cap - len, "%s%lld", i > a->group0 ? "," : "", v);
        BR_ASSERT(w > 0 && (size_t)w < cap - len);
        len += (size_t)w;
    }
    BR_ASSERT(len + 2 <= cap);
    buf[len++] = '}';
    buf[len] = '\0';
}

/* Sends the open group of reserves as one statement (nothing if empty). */
static int flush_group(struct br_pg_tx *t, struct project_arg *a)
{
    uint32_t n = a->nrows - a->group0;
    if (n == 0) {
        return BR_OK;
    }
    size_t cap = (size_t)n * 22 + 4; /* a signed 64-bit number and a comma each */
    char *buf = malloc(8 * cap);
    if (buf == NULL) {
        return BR_E_IO;
    }
    struct br_pg_params p;
    br_pg_params_init(&p);
    br_pg_p_u64(&p, a->event_id);
    for (int f = 0; f < 8; f++) {
        group_array(a, f, buf + (size_t)f * cap, cap);
        br_pg_p_text(&p, buf + (size_t)f * cap);
    }
    int rc = br_pg_send(t, &booking_new_many, &p);
    free(buf);
    if (rc == BR_OK) {
        const struct grow *g = &a->rows[a->group0];
        a->sent[a->nsent++] = (struct sent){.kind = BR_PG_OP_BOOKING_NEW,
                                            .id = g->id,
                                            .zone_id = g->zone_id,
                                            .at = g->at,
                                            .row0 = a->group0,
                                            .nrows = n};
        a->group0 = a->nrows;
    }
    return rc;
}

/* Queues one op: a reserve joins the open group, anything else closes it
 * first (statements stay in entry order). */
static int send_op(struct br_pg_tx *t, struct project_arg *a, const struct br_pg_op *op,
                   const char *at)
{
    if (op->kind == BR_PG_OP_BOOKING_NEW) {
        if (a->nrows == GROUP_ROWS_MAX) {
            int rc = drain(t, a);
            if (rc != BR_OK) {
                return rc;
            }
        }
        a->rows[a->nrows++] = (struct grow){op->id,          op->user_id,      op->zone_id,
                                            op->quantity,    op->amount_minor, op->at_ms,
                                            op->deadline_ms, op->ref,          at};
        return BR_OK;
    }
    int frc = flush_group(t, a);
    if (frc != BR_OK) {
        return frc;
    }
    struct br_pg_params p;
    char buf[640];
    const struct br_pg_stmt *s = NULL;
    params_of(a, op, at, &p, buf, sizeof buf, &s);
    int rc = br_pg_send(t, s, &p);
    if (rc == BR_OK) {
        a->sent[a->nsent++] = (struct sent){.kind = op->kind,
                                            .must_match = op->must_match,
                                            .held_per_seat = (int8_t)op->held_per_seat,
                                            .sold_per_seat = (int8_t)op->sold_per_seat,
                                            .id = op->id,
                                            .zone_id = op->zone_id,
                                            .at = at};
    }
    return rc;
}

/* The verdict on a group of reserves (r is consumed); zone moves counted. */
static int check_group(struct br_pg_tx *t, struct project_arg *a, const struct sent *s, PGresult *r)
{
    int rc = br_pg_check(t, r, PGRES_TUPLES_OK, "projection reserves");
    if (rc == BR_E_CORRUPT) {
        return corrupt(t, a, s, "a reserve the record's keys refuse");
    }
    if (rc != BR_OK) {
        return rc;
    }
    if (PQntuples(r) != (int)s->nrows) {
        PQclear(r);
        return corrupt(t, a, s, "a group of reserves answered with the wrong rows");
    }
    int64_t inserted = s->nrows > 0 ? br_pg_i64(r, 0, 2) : 0;
    int64_t counted = 0;
    for (uint32_t i = 0; i < s->nrows; i++) {
        const struct grow *g = &a->rows[s->row0 + i];
        bool dup = false; /* the same hold earlier in the group: inserted (or not) there */
        for (uint32_t k = 0; k < i && !dup; k++) {
            dup = a->rows[s->row0 + k].id == g->id;
        }
        if (dup || br_pg_bool(r, (int)i, 1)) {
            continue; /* an idempotent reserve again: one booking */
        }
        struct sent one = {
            .kind = BR_PG_OP_BOOKING_NEW, .id = g->id, .zone_id = g->zone_id, .at = g->at};
        if (!zone_move(&a->z, g->zone_id, g->quantity, 1, 0, g->at)) {
            PQclear(r);
            return corrupt(t, a, &one, "a reserve of a zone the record does not have");
        }
        counted++;
    }
    PQclear(r);
    if (counted != inserted) {
        return corrupt(t, a, s, "a group of reserves inserted other rows than it should");
    }
    return BR_OK;
}

/* The verdict on one statement's result (r is consumed); zone moves counted. */
static int check_one(struct br_pg_tx *t, struct project_arg *a, const struct sent *s, PGresult *r)
{
    if (s->kind == BR_PG_OP_BOOKING_NEW) {
        return check_group(t, a, s, r);
    }
    bool rows = s->kind == BR_PG_OP_BOOKING_MOVE || s->kind == BR_PG_OP_PAYMENT_NEW;
    int rc = br_pg_check(t, r, rows ? PGRES_TUPLES_OK : PGRES_COMMAND_OK, "projection");
    if (rc == BR_E_CORRUPT) {
        return corrupt(t, a, s, "a zone CHECK: held + sold over the capacity, or a count < 0");
    }
    if (rc != BR_OK) {
        return rc;
    }
    int bad = 0;
    switch (s->kind) {
    case BR_PG_OP_BOOKING_MOVE:
        if (PQntuples(r) == 1) {
            bad = !zone_move(&a->z, br_pg_i64(r, 0, 0), br_pg_i64(r, 0, 1), s->held_per_seat,
                             s->sold_per_seat, s->at);
        } else {
            bad = s->must_match;
        }
        break;
    case BR_PG_OP_PAYMENT_NEW:
        bad = PQntuples(r) != 1;
        break;
    case BR_PG_OP_PAYMENT_STATE:
    case BR_PG_OP_REFUND_ATTEMPT:
    case BR_PG_OP_REFUND_RETRY:
        bad = strcmp(PQcmdTuples(r), "1") != 0;
        break;
    default:
        break;
    }
    PQclear(r);
    if (!bad) {
        return BR_OK;
    }
    return corrupt(t, a, s,
                   s->kind == BR_PG_OP_BOOKING_NEW ? "a reserve of a zone the record does not have"
                   : s->kind == BR_PG_OP_BOOKING_MOVE
                       ? "the booking is not in the state the log moves it from"
                       : "the log names a payment or booking the record does not have");
}

/* Syncs and checks every queued statement's result, in order. */
static int drain(struct br_pg_tx *t, struct project_arg *a)
{
    int frc = flush_group(t, a);
    if (frc != BR_OK) {
        return frc;
    }
    if (a->nsent == 0) {
        a->nrows = a->group0 = 0;
        return BR_OK;
    }
    if (PQpipelineSync(t->conn) != 1) {
        t->broken = true;
        return BR_E_UNAVAILABLE;
    }
    int rc = BR_OK;
    for (uint32_t i = 0; i < a->nsent && !t->broken; i++) {
        PGresult *r = PQgetResult(t->conn);
        if (r != NULL && PQresultStatus(r) == PGRES_PIPELINE_ABORTED) {
            PQclear(r); /* skipped after an earlier failure */
        } else if (rc == BR_OK) {
            rc = check_one(t, a, &a->sent[i], r);
        } else {
            PQclear(r);
        }
        if (r == NULL) {
            t->broken = true; /* results ended early: the connection is gone */
            break;
        }
        while ((r = PQgetResult(t->conn)) != NULL) { /* the end of this statement's results */
            PQclear(r);
        }
    }
    for (int guard = 0; !t->broken && guard < 4; guard++) {
        PGresult *r = PQgetResult(t->conn);
        ExecStatusType st = r != NULL ? PQresultStatus(r) : PGRES_FATAL_ERROR;
        PQclear(r);
        if (st == PGRES_PIPELINE_SYNC) {
            break;
        }
        if (r == NULL && PQstatus(t->conn) != CONNECTION_OK) {
            t->broken = true;
        }
    }
    a->nsent = 0;
    a->nrows = a->group0 = 0;
    return t->broken ? BR_E_UNAVAILABLE : rc;
}

/* ---- the projection ----------------------------------------------------- */

static int read_position(struct br_pg_tx *t, uint64_t event_id, struct pos *at, char *id,
                         size_t cap, struct br_pg_progress *progress)
{
    struct br_pg_params p;
    br_pg_params_init(&p);
    br_pg_p_u64(&p, event_id);
    PGresult *r = br_pg_exec(t, &position_get, &p);
    int rc = br_pg_check(t, r, PGRES_TUPLES_OK, "projection position");
    if (rc != BR_OK) {
        return rc;
    }
    at->ms = at->seq = 0;
    snprintf(id, cap, "0");
    if (progress != NULL) {
        memset(progress, 0, sizeof *progress);
    }
    if (PQntuples(r) == 1) {
        at->ms = br_pg_u64(r, 0, 0);
        at->seq = br_pg_u64(r, 0, 1);
        br_pg_str(r, 0, 2, id, cap);
        if (progress != NULL) {
            progress->applied = br_pg_u64(r, 0, 3);
            progress->pass_seq = (uint32_t)br_pg_i64(r, 0, 4);
            progress->passes_issued = br_pg_u64(r, 0, 5);
        }
    }
    PQclear(r);
    return BR_OK;
}

/* Queues one entry's statements; drains when the chunk is full. */
static int send_item(struct br_pg_tx *t, struct project_arg *a, const struct br_pg_log_item *it)
{
    uint32_t n = 0;
    int rc = br_pg_rows_of(it->cmd, it->out, it->fx, it->fx_count, a->ops, a->ops_cap, &n);
    if (rc != BR_OK) {
        br_logf(br_pg_log(t->pg), BR_LOG_ERROR, "pg projection: an entry the core cannot answer",
                "\"event_id\":%" PRIu64 ",\"stream_id\":\"%s\",\"type\":%u", a->event_id,
                it->stream_id, it->cmd->type);
        return BR_E_CORRUPT;
    }
    for (uint32_t i = 0; i < n; i++) {
        if (a->ops[i].event_id != 0 && a->ops[i].event_id != a->event_id) {
            return BR_E_INVALID; /* an entry of another event */
        }
    }
    for (uint32_t i = 0; rc == BR_OK && i < n; i++) {
        rc = send_op(t, a, &a->ops[i], it->stream_id);
    }
    if (rc == BR_OK && a->nsent >= CHUNK_OPS) {
        rc = drain(t, a);
    }
    return rc;
}

static int send_position(struct br_pg_tx *t, struct project_arg *a, const char *stream_id)
{
    struct pos lp;
    (void)parse_pos(stream_id, &lp);
    struct br_pg_params p;
    br_pg_params_init(&p);
    br_pg_p_u64(&p, a->event_id);
    br_pg_p_text(&p, stream_id);
    br_pg_p_u64(&p, lp.ms);
    br_pg_p_u64(&p, lp.seq);
    br_pg_p_i64(&p, a->applied);
    br_pg_p_i64(&p, a->pass_seq);
    br_pg_p_i64(&p, a->passes_issued);
    int rc = br_pg_send(t, &position_set, &p);
    if (rc == BR_OK) {
        a->sent[a->nsent++] =
            (struct sent){.kind = BR_PG_OP_NONE, .id = a->event_id, .at = stream_id};
    }
    return rc;
}

/* Locks the event's zones and reads their counters into a->z. */
static int lock_zones(struct br_pg_tx *t, struct project_arg *a)
{
    struct br_pg_params p;
    br_pg_params_init(&p);
    br_pg_p_u64(&p, a->event_id);
    PGresult *r = br_pg_exec(t, &zones_lock, &p);
    int rc = br_pg_check(t, r, PGRES_TUPLES_OK, "projection zones lock");
    if (rc != BR_OK) {
        return rc;
    }
    memset(&a->z, 0, sizeof a->z);
    int n = PQntuples(r);
    for (int i = 0; i < n && rc == BR_OK; i++) {
        if (n > BR_EVENT_ZONES_MAX || br_pg_i64(r, i, 0) != i + 1) {
            rc = BR_E_CORRUPT; /* zones are 1..zone_count */
            break;
        }
        a->z.capacity[i] = br_pg_i64(r, i, 1);
        a->z.held[i] = br_pg_i64(r, i, 2);
        a->z.sold[i] = br_pg_i64(r, i, 3);
    }
    a->z.count = rc == BR_OK ? (uint32_t)n : 0;
    PQclear(r);
    return rc;
}

/* Queues the zone rows: final counts, or the first broken ones (see above). */
static int send_zones(struct br_pg_tx *t, struct project_arg *a)
{
    int rc = BR_OK;
    for (uint32_t i = 0; rc == BR_OK && i < a->z.count; i++) {
        bool bad = a->z.broken && a->z.bad_zone == i;
        if (!a->z.touched[i] || (a->z.broken && !bad)) {
            continue;
        }
        struct br_pg_params p;
        br_pg_params_init(&p);
        br_pg_p_u64(&p, a->event_id);
        br_pg_p_i64(&p, i + 1);
        br_pg_p_i64(&p, bad ? a->z.bad_held : a->z.held[i]);
        br_pg_p_i64(&p, bad ? a->z.bad_sold : a->z.sold[i]);
        rc = br_pg_send(t, &zone_set, &p);
        if (rc == BR_OK) {
            a->sent[a->nsent++] = (struct sent){.kind = BR_PG_OP_NONE,
                                                .id = a->event_id,
                                                .zone_id = i + 1,
                                                .at = bad ? a->z.bad_at : "(batch end)"};
        }
    }
    return rc;
}

/* Locks the event's row and reads its position; prepares what the pipeline runs. */
static int project_start(struct br_pg_tx *t, struct project_arg *a, struct pos *at)
{
    struct br_pg_params p;
    br_pg_params_init(&p);
    br_pg_p_u64(&p, a->event_id);
    PGresult *r = br_pg_exec(t, &event_lock, &p);
    int rc = br_pg_check(t, r, PGRES_TUPLES_OK, "projection event lock");
    if (rc != BR_OK) {
        return rc;
    }
    bool found = PQntuples(r) == 1;
    PQclear(r);
    if (!found) {
        return BR_E_NOT_FOUND;
    }
    char at_id[BR_PG_STREAM_ID_MAX];
    rc = read_position(t, a->event_id, at, at_id, sizeof at_id, NULL);
    if (rc == BR_OK) {
        rc = lock_zones(t, a);
    }
    for (size_t i = 0; rc == BR_OK && i < sizeof pipelined / sizeof pipelined[0]; i++) {
        rc = br_pg_prepare(t, pipelined[i]);
    }
#ifdef BR_PLANT_PG_NO_POSITION
    at->ms = at->seq = 0; /* planted: the stored position is not looked at */
#endif
    return rc;
}

static int project_body(struct br_pg_tx *t, void *argp)
{
    struct project_arg *a = argp;
    a->applied = 0;
    a->nrows = a->group0 = 0;
    a->pass_seq = 0;
    a->passes_issued = 0;
    a->nsent = 0;
    struct pos at;
    int rc = project_start(t, a, &at);
    if (rc != BR_OK) {
        return rc;
    }
    if (PQenterPipelineMode(t->conn) != 1) {
        t->broken = true;
        return BR_E_UNAVAILABLE;
    }
    const struct br_pg_log_item *last = NULL;
    for (uint32_t i = 0; rc == BR_OK && i < a->n; i++) {
        struct pos ip;
        (void)parse_pos(a->items[i].stream_id, &ip); /* checked by the caller */
        if (!pos_after(ip, at)) {
            continue; /* applied already: exactly once */
        }
        rc = send_item(t, a, &a->items[i]);
        last = &a->items[i];
        a->applied++;
        for (uint32_t k = 0; k < a->items[i].fx_count; k++) {
            const struct br_effect *fx = &a->items[i].fx[k];
            if (fx->kind == BR_FX_PASS_ISSUED) { /* queue state is Redis's; its counters not */
                uint32_t seq = (uint32_t)(fx->id & 0xFFFFFFFFu);
                a->pass_seq = seq > a->pass_seq ? seq : a->pass_seq;
                a->passes_issued++;
            }
        }
    }
    if (rc == BR_OK && last != NULL) {
        rc = drain(t, a); /* every zone move counted */
    }
    if (rc == BR_OK && last != NULL) {
        rc = send_zones(t, a);
    }
    if (rc == BR_OK && last != NULL) {
        rc = send_position(t, a, last->stream_id);
    }
    int drc = t->broken ? BR_E_UNAVAILABLE : drain(t, a);
    rc = rc != BR_OK ? rc : drc;
    if (!t->broken && PQexitPipelineMode(t->conn) != 1) {
        t->broken = true; /* results left unread: the connection cannot be trusted */
        rc = rc != BR_OK ? rc : BR_E_UNAVAILABLE;
    }
    return rc;
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
    a.sent = calloc(CHUNK_OPS + a.ops_cap + 1, sizeof *a.sent);
    a.rows = calloc(GROUP_ROWS_MAX, sizeof *a.rows);
    if (a.ops == NULL || a.sent == NULL || a.rows == NULL) {
        free(a.ops);
        free(a.sent);
        free(a.rows);
        return BR_E_IO;
    }
    int rc = br_pg_run(pg, "project", BR_PG_WRITE, project_body, &a);
    free(a.ops);
    free(a.sent);
    free(a.rows);
    if (rc == BR_OK && applied != NULL) {
        *applied = a.applied;
    }
    return rc;
}

struct position_arg {
    uint64_t event_id;
    char *out;
    struct br_pg_progress *progress; /* NULL: the stream id only */
};

static int position_body(struct br_pg_tx *t, void *argp)
{
    struct position_arg *a = argp;
    struct pos at;
    return read_position(t, a->event_id, &at, a->out, BR_PG_STREAM_ID_MAX, a->progress);
}

int br_pg_projection_position(struct br_pg *pg, uint64_t event_id,
                              char stream_id[BR_PG_STREAM_ID_MAX])
{
    snprintf(stream_id, BR_PG_STREAM_ID_MAX, "0");
    struct position_arg a = {.event_id = event_id, .out = stream_id};
    return br_pg_run(pg, "projection_position", BR_PG_READ, position_body, &a);
}

int br_pg_projection_progress(struct br_pg *pg, uint64_t event_id, struct br_pg_progress *out)
{
    memset(out, 0, sizeof *out);
    snprintf(out->stream_id, sizeof out->stream_id, "0");
    struct position_arg a = {.event_id = event_id, .out = out->stream_id, .progress = out};
    return br_pg_run(pg, "projection_progress", BR_PG_READ, position_body, &a);
}

/* ---- the rebuild's counters ---------------------------------------------- */

static const struct br_pg_stmt counters_get = {
    BR_PG_S_REBUILD_COUNTERS_GET, "rebuild_counters_get",
    "SELECT pass_seq, hold_seq, payment_seq, rebuilt_ms FROM rebuild_counters WHERE event_id = $1",
    1};
static const struct br_pg_stmt counters_put = {
    BR_PG_S_REBUILD_COUNTERS_PUT, "rebuild_counters_put",
    "INSERT INTO rebuild_counters (event_id, pass_seq, hold_seq, payment_seq, rebuilt_ms) "
    "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (event_id) DO UPDATE SET "
    "pass_seq = GREATEST(rebuild_counters.pass_seq, EXCLUDED.pass_seq), "
    "hold_seq = GREATEST(rebuild_counters.hold_seq, EXCLUDED.hold_seq), "
    "payment_seq = GREATEST(rebuild_counters.payment_seq, EXCLUDED.payment_seq), "
    "rebuilt_ms = GREATEST(rebuild_counters.rebuilt_ms, EXCLUDED.rebuilt_ms), updated_at = now()",
    5};

struct counters_arg {
    uint64_t event_id;
    struct br_pg_rebuild_counters *c;
};

static int counters_get_body(struct br_pg_tx *t, void *argp)
{
    struct counters_arg *a = argp;
    struct br_pg_params p;
    br_pg_params_init(&p);
    br_pg_p_u64(&p, a->event_id);
    PGresult *r = br_pg_exec(t, &counters_get, &p);
    int rc = br_pg_check(t, r, PGRES_TUPLES_OK, "rebuild counters read");
    if (rc != BR_OK) {
        return rc;
    }
    memset(a->c, 0, sizeof *a->c);
    if (PQntuples(r) == 1) {
        /* Written from uint32 seqs (the CHECK keeps them >= 0). */
        a->c->pass_seq = (uint32_t)br_pg_i64(r, 0, 0);
        a->c->hold_seq = (uint32_t)br_pg_i64(r, 0, 1);
        a->c->payment_seq = (uint32_t)br_pg_i64(r, 0, 2);
        a->c->rebuilt_ms = br_pg_i64(r, 0, 3);
    }
    PQclear(r);
    return BR_OK;
}

static int counters_put_body(struct br_pg_tx *t, void *argp)
{
    struct counters_arg *a = argp;
    struct br_pg_params p;
    br_pg_params_init(&p);
    br_pg_p_u64(&p, a->event_id);
    br_pg_p_i64(&p, a->c->pass_seq);
    br_pg_p_i64(&p, a->c->hold_seq);
    br_pg_p_i64(&p, a->c->payment_seq);
    br_pg_p_i64(&p, a->c->rebuilt_ms);
    PGresult *r = br_pg_exec(t, &counters_put, &p);
    int rc = br_pg_check(t, r, PGRES_COMMAND_OK, "rebuild counters write");
    if (rc == BR_E_CORRUPT && strcmp(t->sqlstate, "23503") == 0) {
        return BR_E_NOT_FOUND; /* no such event */
    }
    if (rc == BR_OK) {
        PQclear(r);
    }
    return rc;
}

int br_pg_rebuild_counters_get(struct br_pg *pg, uint64_t event_id,
                               struct br_pg_rebuild_counters *out)
{
    memset(out, 0, sizeof *out);
    struct counters_arg a = {.event_id = event_id, .c = out};
    return br_pg_run(pg, "rebuild_counters_get", BR_PG_READ, counters_get_body, &a);
}

int br_pg_rebuild_counters_put(struct br_pg *pg, uint64_t event_id,
                               const struct br_pg_rebuild_counters *c)
{
    struct br_pg_rebuild_counters copy = *c;
    struct counters_arg a = {.event_id = event_id, .c = &copy};
    return br_pg_run(pg, "rebuild_counters_put", BR_PG_WRITE, counters_put_body, &a);
}
