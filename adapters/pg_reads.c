/*
 * pg_reads.c -- what the reconciler and the rebuild read from the record
 * (zones' counters, bookings and payments by state, provider event ids),
 * and the built-in test provider's intents shared by server processes (pg.h).
 * Every read is one statement; list reads are bounded by the caller's max.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/pg_internal.h"
#include "adapters/provider.h"
#include "core/err.h"
#include "core/panic.h"

_Static_assert(BR_PG_INTENT_ID_MAX == BR_PROVIDER_ID_MAX, "an intent id fits both");
_Static_assert(BR_PG_INTENT_SECRET_MAX == BR_PROVIDER_SECRET_MAX, "a client secret fits both");

#define BOOKING_COLS                                                                               \
    "id, event_id, user_id, zone_id, quantity, state, total_minor, currency, created_at_ms, "      \
    "expires_at_ms, pass_id, payment_id"
#define PAYMENT_COLS                                                                               \
    "p.id, p.booking_id, p.event_id, p.state, p.amount_minor, p.currency, p.created_ms, "          \
    "p.refund_attempts, p.next_attempt_ms, coalesce(p.provider_payment_id, i.id, '')"
#define INTENT_COLS                                                                                \
    "id, payment_id, booking_id, client_secret, amount_minor, currency, status, created_ms"

static const struct br_pg_stmt zones_of = {
    BR_PG_S_ZONES_OF, "zones_of",
    "SELECT zone_id, capacity, held, sold FROM zones WHERE event_id = $1 ORDER BY zone_id", 1};
static const struct br_pg_stmt bookings = {
    BR_PG_S_BOOKINGS, "bookings",
    "SELECT " BOOKING_COLS " FROM bookings WHERE event_id = $1 AND ((1 << state) & $2::integer) "
    "<> 0 AND id > $3 ORDER BY id LIMIT $4",
    4};
static const struct br_pg_stmt booking_get = {
    BR_PG_S_BOOKING_GET, "booking_get", "SELECT " BOOKING_COLS " FROM bookings WHERE id = $1", 1};
static const struct br_pg_stmt payments = {
    BR_PG_S_PAYMENTS, "payments",
    "SELECT " PAYMENT_COLS " FROM payments p LEFT JOIN test_intents i ON i.payment_id = p.id "
    "WHERE p.event_id = $1 AND ((1 << p.state) & $2::integer) <> 0 AND p.id > $3 "
    "ORDER BY p.id LIMIT $4",
    4};
static const struct br_pg_stmt payment_get = {
    BR_PG_S_PAYMENT_GET, "payment_get",
    "SELECT " PAYMENT_COLS " FROM payments p LEFT JOIN test_intents i ON i.payment_id = p.id "
    "WHERE p.id = $1",
    1};
/* Provider event ids are uint64 hashes stored as their signed pattern: listed
 * in unsigned order by flipping the sign bit. */
static const struct br_pg_stmt provider_events = {
    BR_PG_S_PROVIDER_EVENTS, "provider_events",
    "SELECT id FROM processed_provider_events WHERE event_id = $1 AND "
    "(id # (-9223372036854775807 - 1)) > ($2::bigint # (-9223372036854775807 - 1)) "
    "ORDER BY (id # (-9223372036854775807 - 1)) LIMIT $3",
    3};
static const struct br_pg_stmt intent_insert = {BR_PG_S_INTENT_INSERT, "intent_insert",
                                                "INSERT INTO test_intents (" INTENT_COLS
                                                ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
                                                "ON CONFLICT (payment_id) DO NOTHING",
                                                8};
static const struct br_pg_stmt intent_get = {
    BR_PG_S_INTENT_GET, "intent_get", "SELECT " INTENT_COLS " FROM test_intents WHERE id = $1", 1};
static const struct br_pg_stmt intent_by_payment = {
    BR_PG_S_INTENT_BY_PAYMENT, "intent_by_payment",
    "SELECT " INTENT_COLS " FROM test_intents WHERE payment_id = $1", 1};
static const struct br_pg_stmt intent_status = {
    BR_PG_S_INTENT_STATUS, "intent_status",
    "UPDATE test_intents SET status = $2 WHERE id = $1 AND status <> 'succeeded'", 2};

static const struct br_pg_stmt delivery_insert = {
    BR_PG_S_DELIVERY_INSERT, "delivery_insert",
    "INSERT INTO test_deliveries (event_id, intent_id, payload, attempts, next_ms, created_ms) "
    "VALUES ($1, $2, $3, 1, $4, $5)",
    5};
/* SKIP LOCKED: two processes claiming at once take different rows. */
static const struct br_pg_stmt delivery_claim = {
    BR_PG_S_DELIVERY_CLAIM, "delivery_claim",
    "UPDATE test_deliveries SET attempts = attempts + 1, next_ms = $1::bigint + $2::bigint "
    "WHERE event_id IN (SELECT event_id FROM test_deliveries WHERE delivered_ms IS NULL AND "
    "next_ms <= $1 ORDER BY next_ms LIMIT $3 FOR UPDATE SKIP LOCKED) "
    "RETURNING event_id, payload, attempts",
    3};
static const struct br_pg_stmt delivery_done = {
    BR_PG_S_DELIVERY_DONE, "delivery_done",
    "UPDATE test_deliveries SET delivered_ms = $2 WHERE event_id = $1 AND delivered_ms IS NULL", 2};
static const struct br_pg_stmt delivery_retry = {
    BR_PG_S_DELIVERY_RETRY, "delivery_retry",
    "UPDATE test_deliveries SET next_ms = $2 WHERE event_id = $1 AND delivered_ms IS NULL", 2};

/* A generic read: s with p; rows handed to fill one at a time. */
typedef int (*row_fn)(const PGresult *r, int row, void *out, uint32_t i);

struct read_arg {
    const struct br_pg_stmt *s;
    struct br_pg_params p;
    row_fn fill;
    void *out;
    uint32_t max;
    uint32_t count;
};

static int read_body(struct br_pg_tx *t, void *argp)
{
    struct read_arg *a = argp;
    a->count = 0;
    PGresult *r = br_pg_exec(t, a->s, &a->p);
    int rc = br_pg_check(t, r, PGRES_TUPLES_OK, a->s->name);
    if (rc != BR_OK) {
        return rc;
    }
    int n = PQntuples(r);
    for (int i = 0; i < n && rc == BR_OK && a->count < a->max; i++) {
        rc = a->fill(r, i, a->out, a->count);
        a->count++;
    }
    PQclear(r);
    return rc;
}

static int read_rows(struct br_pg *pg, struct read_arg *a, uint32_t *count)
{
    int rc = br_pg_run(pg, a->s->name, BR_PG_READ, read_body, a);
    if (count != NULL) {
        *count = rc == BR_OK ? a->count : 0;
    }
    return rc;
}

static int one_row(struct br_pg *pg, struct read_arg *a)
{
    int rc = read_rows(pg, a, NULL);
    return rc == BR_OK && a->count == 0 ? BR_E_NOT_FOUND : rc;
}

/* ---- zones -------------------------------------------------------------- */

static int fill_zone(const PGresult *r, int row, void *out, uint32_t i)
{
    struct br_pg_zone *z = &((struct br_pg_zone *)out)[i];
    z->zone_id = (uint32_t)br_pg_i64(r, row, 0);
    z->capacity = (uint32_t)br_pg_i64(r, row, 1);
    z->held = (uint32_t)br_pg_i64(r, row, 2);
    z->sold = (uint32_t)br_pg_i64(r, row, 3);
    return BR_OK;
}

int br_pg_zones(struct br_pg *pg, uint64_t event_id, struct br_pg_zone out[BR_EVENT_ZONES_MAX],
                uint32_t *count)
{
    struct read_arg a = {.s = &zones_of, .fill = fill_zone, .out = out, .max = BR_EVENT_ZONES_MAX};
    br_pg_params_init(&a.p);
    br_pg_p_u64(&a.p, event_id);
    return read_rows(pg, &a, count);
}

/* ---- bookings ----------------------------------------------------------- */

static int fill_booking(const PGresult *r, int row, void *out, uint32_t i)
{
    struct br_pg_booking *b = &((struct br_pg_booking *)out)[i];
    memset(b, 0, sizeof *b);
    b->id = br_pg_u64(r, row, 0);
    b->event_id = br_pg_u64(r, row, 1);
    b->user_id = br_pg_u64(r, row, 2);
    b->zone_id = (uint32_t)br_pg_i64(r, row, 3);
    b->quantity = (uint32_t)br_pg_i64(r, row, 4);
    b->state = (uint8_t)br_pg_i64(r, row, 5);
    b->total_minor = br_pg_i64(r, row, 6);
    br_pg_str(r, row, 7, b->currency, sizeof b->currency);
    b->created_at_ms = br_pg_i64(r, row, 8);
    b->expires_at_ms = br_pg_i64(r, row, 9);
    b->pass_id = br_pg_u64(r, row, 10);
    b->payment_id = br_pg_u64(r, row, 11);
    return BR_OK;
}

/* The parameters of a paged list by state. */
static void list_params(struct read_arg *a, uint64_t event_id, uint32_t mask, uint64_t after,
                        uint32_t max)
{
    br_pg_params_init(&a->p);
    br_pg_p_u64(&a->p, event_id);
    br_pg_p_i64(&a->p, (int64_t)mask);
    br_pg_p_u64(&a->p, after);
    br_pg_p_i64(&a->p, max);
}

int br_pg_bookings(struct br_pg *pg, uint64_t event_id, uint32_t states_mask, uint64_t after_id,
                   uint32_t max, struct br_pg_booking *out, uint32_t *count)
{
    struct read_arg a = {.s = &bookings, .fill = fill_booking, .out = out, .max = max};
    list_params(&a, event_id, states_mask, after_id, max);
    return read_rows(pg, &a, count);
}

int br_pg_booking_get(struct br_pg *pg, uint64_t id, struct br_pg_booking *out)
{
    struct read_arg a = {.s = &booking_get, .fill = fill_booking, .out = out, .max = 1};
    br_pg_params_init(&a.p);
    br_pg_p_u64(&a.p, id);
    return one_row(pg, &a);
}

/* ---- payments ----------------------------------------------------------- */

static int fill_payment(const PGresult *r, int row, void *out, uint32_t i)
{
    struct br_pg_payment *p = &((struct br_pg_payment *)out)[i];
    memset(p, 0, sizeof *p);
    p->id = br_pg_u64(r, row, 0);
    p->booking_id = br_pg_u64(r, row, 1);
    p->event_id = br_pg_u64(r, row, 2);
    p->state = (uint8_t)br_pg_i64(r, row, 3);
    p->amount_minor = br_pg_i64(r, row, 4);
    br_pg_str(r, row, 5, p->currency, sizeof p->currency);
    p->created_ms = br_pg_i64(r, row, 6);
    p->refund_attempts = (uint32_t)br_pg_i64(r, row, 7);
    p->next_attempt_ms = br_pg_i64(r, row, 8);
    br_pg_str(r, row, 9, p->provider_payment_id, sizeof p->provider_payment_id);
    return BR_OK;
}

int br_pg_payments(struct br_pg *pg, uint64_t event_id, uint32_t states_mask, uint64_t after_id,
                   uint32_t max, struct br_pg_payment *out, uint32_t *count)
{
    struct read_arg a = {.s = &payments, .fill = fill_payment, .out = out, .max = max};
    list_params(&a, event_id, states_mask, after_id, max);
    return read_rows(pg, &a, count);
}

int br_pg_payment_get(struct br_pg *pg, uint64_t id, struct br_pg_payment *out)
{
    struct read_arg a = {.s = &payment_get, .fill = fill_payment, .out = out, .max = 1};
    br_pg_params_init(&a.p);
    br_pg_p_u64(&a.p, id);
    return one_row(pg, &a);
}

static int fill_u64(const PGresult *r, int row, void *out, uint32_t i)
{
    ((uint64_t *)out)[i] = br_pg_u64(r, row, 0);
    return BR_OK;
}

int br_pg_provider_events(struct br_pg *pg, uint64_t event_id, uint64_t after, uint32_t max,
                          uint64_t *out, uint32_t *count)
{
    struct read_arg a = {.s = &provider_events, .fill = fill_u64, .out = out, .max = max};
    br_pg_params_init(&a.p);
    br_pg_p_u64(&a.p, event_id);
    br_pg_p_u64(&a.p, after);
    br_pg_p_i64(&a.p, max);
    return read_rows(pg, &a, count);
}

/* ---- test intents ------------------------------------------------------- */

static int fill_intent(const PGresult *r, int row, void *out, uint32_t i)
{
    struct br_pg_intent *in = &((struct br_pg_intent *)out)[i];
    memset(in, 0, sizeof *in);
    br_pg_str(r, row, 0, in->id, sizeof in->id);
    in->payment_id = br_pg_u64(r, row, 1);
    in->booking_id = br_pg_u64(r, row, 2);
    br_pg_str(r, row, 3, in->client_secret, sizeof in->client_secret);
    in->amount_minor = br_pg_i64(r, row, 4);
    br_pg_str(r, row, 5, in->currency, sizeof in->currency);
    br_pg_str(r, row, 6, in->status, sizeof in->status);
    in->created_ms = br_pg_i64(r, row, 7);
    return BR_OK;
}

struct put_arg {
    const struct br_pg_intent *in;
    struct br_pg_intent *stored;
};

static int put_body(struct br_pg_tx *t, void *argp)
{
    struct put_arg *a = argp;
    const struct br_pg_intent *in = a->in;
    struct br_pg_params p;
    br_pg_params_init(&p);
    br_pg_p_text(&p, in->id);
    br_pg_p_u64(&p, in->payment_id);
    br_pg_p_u64(&p, in->booking_id);
    br_pg_p_text(&p, in->client_secret);
    br_pg_p_i64(&p, in->amount_minor);
    br_pg_p_text(&p, in->currency);
    br_pg_p_text(&p, in->status);
    br_pg_p_i64(&p, in->created_ms);
    PGresult *r = br_pg_exec(t, &intent_insert, &p);
    int rc = br_pg_check(t, r, PGRES_COMMAND_OK, "intent insert");
    if (rc != BR_OK) {
        return rc; /* 23505 on the id: BR_E_DUPLICATE (another payment's intent id) */
    }
    PQclear(r);
    br_pg_params_init(&p);
    br_pg_p_u64(&p, in->payment_id);
    r = br_pg_exec(t, &intent_by_payment, &p);
    rc = br_pg_check(t, r, PGRES_TUPLES_OK, "intent read");
    if (rc != BR_OK) {
        return rc;
    }
    rc = PQntuples(r) == 1 ? fill_intent(r, 0, a->stored, 0) : BR_E_CORRUPT;
    PQclear(r);
    return rc;
}

int br_pg_intent_put(struct br_pg *pg, const struct br_pg_intent *in, struct br_pg_intent *stored)
{
    if (memchr(in->id, 0, sizeof in->id) == NULL ||
        memchr(in->client_secret, 0, sizeof in->client_secret) == NULL ||
        memchr(in->status, 0, sizeof in->status) == NULL ||
        memchr(in->currency, 0, sizeof in->currency) == NULL) {
        return BR_E_INVALID;
    }
    struct put_arg a = {.in = in, .stored = stored};
    return br_pg_run(pg, "intent_put", BR_PG_WRITE, put_body, &a);
}

int br_pg_intent_get(struct br_pg *pg, const char *id, struct br_pg_intent *out)
{
    struct read_arg a = {.s = &intent_get, .fill = fill_intent, .out = out, .max = 1};
    br_pg_params_init(&a.p);
    br_pg_p_text(&a.p, id);
    return one_row(pg, &a);
}

int br_pg_intent_by_payment(struct br_pg *pg, uint64_t payment_id, struct br_pg_intent *out)
{
    struct read_arg a = {.s = &intent_by_payment, .fill = fill_intent, .out = out, .max = 1};
    br_pg_params_init(&a.p);
    br_pg_p_u64(&a.p, payment_id);
    return one_row(pg, &a);
}

struct status_arg {
    const char *id;
    const char *status;
};

static int status_body(struct br_pg_tx *t, void *argp)
{
    struct status_arg *a = argp;
    struct br_pg_params p;
    br_pg_params_init(&p);
    br_pg_p_text(&p, a->id);
    br_pg_p_text(&p, a->status);
    PGresult *r = br_pg_exec(t, &intent_status, &p);
    int rc = br_pg_check(t, r, PGRES_COMMAND_OK, "intent status");
    if (rc != BR_OK) {
        return rc;
    }
    bool changed = strcmp(PQcmdTuples(r), "1") == 0;
    PQclear(r);
    if (changed) {
        return BR_OK;
    }
    br_pg_params_init(&p);
    br_pg_p_text(&p, a->id);
    r = br_pg_exec(t, &intent_get, &p);
    rc = br_pg_check(t, r, PGRES_TUPLES_OK, "intent read");
    if (rc != BR_OK) {
        return rc;
    }
    rc = PQntuples(r) == 1 ? BR_E_DUPLICATE : BR_E_NOT_FOUND;
    PQclear(r);
    return rc;
}

int br_pg_intent_set_status(struct br_pg *pg, const char *id, const char *status)
{
    if (strlen(status) >= BR_PG_INTENT_STATUS_MAX) {
        return BR_E_INVALID;
    }
    struct status_arg a = {.id = id, .status = status};
    return br_pg_run(pg, "intent_set_status", BR_PG_WRITE, status_body, &a);
}

/* ---- the test provider's webhook outbox --------------------------------- */

struct decide_arg {
    struct status_arg st;
    const char *event_id;
    const char *payload;
    int64_t now_ms;
    int64_t next_ms;
};

static int decide_body(struct br_pg_tx *t, void *argp)
{
    struct decide_arg *a = argp;
    int rc = status_body(t, &a->st); /* the row stays locked until COMMIT */
    if (rc != BR_OK) {
        return rc; /* DUPLICATE, NOT_FOUND: rolled back, nothing recorded */
    }
    struct br_pg_params p;
    br_pg_params_init(&p);
    br_pg_p_text(&p, a->event_id);
    br_pg_p_text(&p, a->st.id);
    br_pg_p_text(&p, a->payload);
    br_pg_p_i64(&p, a->next_ms);
    br_pg_p_i64(&p, a->now_ms);
    PGresult *r = br_pg_exec(t, &delivery_insert, &p);
    rc = br_pg_check(t, r, PGRES_COMMAND_OK, "delivery insert");
    if (rc == BR_OK) {
        PQclear(r);
    }
    return rc;
}

int br_pg_intent_decide(struct br_pg *pg, const char *intent_id, const char *status,
                        const char *event_id, const char *payload, int64_t now_ms,
                        int64_t next_ms)
{
    if (strlen(status) >= BR_PG_INTENT_STATUS_MAX || strlen(event_id) >= BR_PG_DELIVERY_ID_MAX ||
        strlen(payload) >= BR_PG_DELIVERY_PAYLOAD_MAX) {
        return BR_E_INVALID;
    }
    struct decide_arg a = {.st = {.id = intent_id, .status = status},
                           .event_id = event_id,
                           .payload = payload,
                           .now_ms = now_ms,
                           .next_ms = next_ms};
    return br_pg_run(pg, "intent_decide", BR_PG_WRITE, decide_body, &a);
}

struct claim_arg {
    int64_t now_ms, lease_ms;
    struct br_pg_delivery *out;
    uint32_t max, count;
};

static int claim_body(struct br_pg_tx *t, void *argp)
{
    struct claim_arg *a = argp;
    a->count = 0;
    struct br_pg_params p;
    br_pg_params_init(&p);
    br_pg_p_i64(&p, a->now_ms);
    br_pg_p_i64(&p, a->lease_ms);
    br_pg_p_i64(&p, a->max);
    PGresult *r = br_pg_exec(t, &delivery_claim, &p);
    int rc = br_pg_check(t, r, PGRES_TUPLES_OK, "delivery claim");
    if (rc != BR_OK) {
        return rc;
    }
    int n = PQntuples(r);
    for (int i = 0; i < n && a->count < a->max; i++) {
        struct br_pg_delivery *d = &a->out[a->count++];
        br_pg_str(r, i, 0, d->event_id, sizeof d->event_id);
        br_pg_str(r, i, 1, d->payload, sizeof d->payload);
        d->attempts = (uint32_t)br_pg_i64(r, i, 2);
    }
    PQclear(r);
    return BR_OK;
}

int br_pg_delivery_claim(struct br_pg *pg, int64_t now_ms, int64_t lease_ms,
                         struct br_pg_delivery *out, uint32_t max, uint32_t *count)
{
    struct claim_arg a = {.now_ms = now_ms, .lease_ms = lease_ms, .out = out, .max = max};
    int rc = br_pg_run(pg, "delivery_claim", BR_PG_WRITE, claim_body, &a);
    *count = rc == BR_OK ? a.count : 0;
    return rc;
}

struct mark_arg {
    const struct br_pg_stmt *s;
    const char *event_id;
    int64_t ms;
};

static int mark_body(struct br_pg_tx *t, void *argp)
{
    struct mark_arg *a = argp;
    struct br_pg_params p;
    br_pg_params_init(&p);
    br_pg_p_text(&p, a->event_id);
    br_pg_p_i64(&p, a->ms);
    PGresult *r = br_pg_exec(t, a->s, &p);
    int rc = br_pg_check(t, r, PGRES_COMMAND_OK, a->s->name);
    if (rc == BR_OK) {
        PQclear(r);
    }
    return rc;
}

int br_pg_delivery_done(struct br_pg *pg, const char *event_id, int64_t now_ms)
{
    struct mark_arg a = {.s = &delivery_done, .event_id = event_id, .ms = now_ms};
    return br_pg_run(pg, "delivery_done", BR_PG_WRITE, mark_body, &a);
}

int br_pg_delivery_retry(struct br_pg *pg, const char *event_id, int64_t next_ms)
{
    struct mark_arg a = {.s = &delivery_retry, .event_id = event_id, .ms = next_ms};
    return br_pg_run(pg, "delivery_retry", BR_PG_WRITE, mark_body, &a);
}
