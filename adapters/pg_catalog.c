/*
 * pg_catalog.c -- events and zones in PostgreSQL (pg.h).
 *
 * struct br_event_spec is stored column for column (events) and zone for
 * zone (zones), and read back into a zero-filled spec, so a spec that was
 * zero-filled beyond its strings when created comes back memcmp-equal: the
 * trace prologue and the rebuild give Redis and the core the same bytes.
 */
#include <string.h>

#include "adapters/pg_internal.h"
#include "core/err.h"
#include "core/panic.h"

#define EVENT_COLS                                                                                 \
    "id, owner_id, created_ms, name, venue, starts_at_ms, sale_opens_at_ms, per_user_limit, "      \
    "requires_pass, max_active, admit_per_tick, pass_ttl_ms, hold_ttl_ms, queue_capacity, "        \
    "zone_count, admit_per_min, presence_ttl_s, pow_bits, queue_flags, queue_mode"
#define ZONE_COLS "event_id, zone_id, name, capacity, price_minor, currency"

static const struct br_pg_stmt event_max = {BR_PG_S_EVENT_MAX, "event_max",
                                            "SELECT coalesce(max(id), 0) FROM events", 0};
static const struct br_pg_stmt event_insert = {
    BR_PG_S_EVENT_INSERT, "event_insert",
    "INSERT INTO events (" EVENT_COLS ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, "
    "$12, $13, $14, $15, $16, $17, $18, $19, $20)",
    20};
static const struct br_pg_stmt zone_insert = {
    BR_PG_S_ZONE_INSERT, "zone_insert",
    "INSERT INTO zones (" ZONE_COLS ") VALUES ($1, $2, $3, $4, $5, $6)", 6};
static const struct br_pg_stmt event_get = {BR_PG_S_EVENT_GET, "event_get",
                                            "SELECT " EVENT_COLS " FROM events WHERE id = $1", 1};
static const struct br_pg_stmt event_list = {
    BR_PG_S_EVENT_LIST, "event_list",
    "SELECT " EVENT_COLS " FROM events WHERE id > $1 ORDER BY id LIMIT $2", 2};
static const struct br_pg_stmt zones_range = {BR_PG_S_ZONES_RANGE, "zones_range",
                                              "SELECT " ZONE_COLS
                                              " FROM zones WHERE event_id >= $1 AND event_id <= $2 "
                                              "ORDER BY event_id, zone_id",
                                              2};

struct create_arg {
    const struct br_cmd *c;
    br_pg_hook hook;
    void *ctx;
    uint64_t id;
};

static int insert_event(struct br_pg_tx *t, uint64_t id, const struct br_cmd *c)
{
    const struct br_event_spec *s = &c->u.event_create;
    struct br_pg_params p;
    br_pg_params_init(&p);
    br_pg_p_u64(&p, id);
    br_pg_p_u64(&p, c->user_id);
    br_pg_p_i64(&p, c->now_ms);
    br_pg_p_text(&p, s->name);
    br_pg_p_text(&p, s->venue);
    br_pg_p_i64(&p, s->starts_at_ms);
    br_pg_p_i64(&p, s->sale_opens_at_ms);
    br_pg_p_i64(&p, s->per_user_limit);
    br_pg_p_bool(&p, s->requires_pass);
    br_pg_p_i64(&p, s->max_active);
    br_pg_p_i64(&p, s->admit_per_tick);
    br_pg_p_i64(&p, s->pass_ttl_ms);
    br_pg_p_i64(&p, s->hold_ttl_ms);
    br_pg_p_i64(&p, s->queue_capacity);
    br_pg_p_i64(&p, s->zone_count);
    br_pg_p_i64(&p, s->admit_per_min); /* issue 13 (0005_waiting_room) */
    br_pg_p_i64(&p, s->presence_ttl_s);
    br_pg_p_i64(&p, s->pow_bits);
    br_pg_p_i64(&p, s->queue_flags);
    br_pg_p_i64(&p, s->mode);
    PGresult *r = br_pg_exec(t, &event_insert, &p);
    int rc = br_pg_check(t, r, PGRES_COMMAND_OK, "event insert");
    if (rc != BR_OK) {
        return rc;
    }
    PQclear(r);
    for (uint32_t z = 0; z < s->zone_count; z++) {
        const struct br_zone_spec *zs = &s->zones[z];
        br_pg_params_init(&p);
        br_pg_p_u64(&p, id);
        br_pg_p_i64(&p, z + 1);
        br_pg_p_text(&p, zs->name);
        br_pg_p_i64(&p, zs->capacity);
        br_pg_p_i64(&p, zs->price_minor);
        br_pg_p_text(&p, zs->currency);
        r = br_pg_exec(t, &zone_insert, &p);
        rc = br_pg_check(t, r, PGRES_COMMAND_OK, "zone insert");
        if (rc != BR_OK) {
            return rc;
        }
        PQclear(r);
    }
    return BR_OK;
}

static int create_body(struct br_pg_tx *t, void *argp)
{
    struct create_arg *a = argp;
    int rc = br_pg_lock_xact(t, BR_PG_LOCK_EVENTS);
    if (rc != BR_OK) {
        return rc;
    }
    struct br_pg_params p;
    br_pg_params_init(&p);
    PGresult *r = br_pg_exec(t, &event_max, &p);
    rc = br_pg_check(t, r, PGRES_TUPLES_OK, "event max id");
    if (rc != BR_OK) {
        return rc;
    }
    a->id = br_pg_u64(r, 0, 0) + 1;
    PQclear(r);
    rc = insert_event(t, a->id, a->c);
    if (rc == BR_E_CORRUPT || rc == BR_E_DUPLICATE) {
        return BR_E_INVALID; /* a CHECK on the spec; the id is ours under the lock */
    }
    if (rc == BR_OK && a->hook != NULL) {
        rc = a->hook(a->ctx, a->id);
    }
    return rc;
}

int br_pg_event_create(struct br_pg *pg, const struct br_cmd *c, br_pg_hook hook, void *ctx,
                       uint64_t *id_out)
{
    BR_ASSERT(c->type == BR_CMD_EVENT_CREATE);
    const struct br_event_spec *s = &c->u.event_create;
    *id_out = 0;
    if (s->zone_count < 1 || s->zone_count > BR_EVENT_ZONES_MAX ||
        memchr(s->name, 0, sizeof s->name) == NULL ||
        memchr(s->venue, 0, sizeof s->venue) == NULL) {
        return BR_E_INVALID;
    }
    for (uint32_t z = 0; z < s->zone_count; z++) {
        if (memchr(s->zones[z].name, 0, sizeof s->zones[z].name) == NULL ||
            memchr(s->zones[z].currency, 0, sizeof s->zones[z].currency) == NULL) {
            return BR_E_INVALID;
        }
    }
    if (s->max_active > BR_MAX_ACTIVE_MAX) {
        return BR_E_INVALID;
    }
    struct create_arg a = {.c = c, .hook = hook, .ctx = ctx, .id = 0};
    int rc = br_pg_run(pg, "event_create", BR_PG_WRITE, create_body, &a);
    if (rc == BR_OK) {
        *id_out = a.id;
    }
    return rc;
}

static void read_event(const PGresult *r, int row, struct br_pg_event *e)
{
    memset(e, 0, sizeof *e);
    struct br_event_spec *s = &e->spec;
    e->id = br_pg_u64(r, row, 0);
    e->owner_id = br_pg_u64(r, row, 1);
    e->created_ms = br_pg_i64(r, row, 2);
    br_pg_str(r, row, 3, s->name, sizeof s->name);
    br_pg_str(r, row, 4, s->venue, sizeof s->venue);
    s->starts_at_ms = br_pg_i64(r, row, 5);
    s->sale_opens_at_ms = br_pg_i64(r, row, 6);
    s->per_user_limit = (uint32_t)br_pg_i64(r, row, 7);
    s->requires_pass = br_pg_bool(r, row, 8);
    s->max_active = (uint32_t)br_pg_i64(r, row, 9);
    s->admit_per_tick = (uint32_t)br_pg_i64(r, row, 10);
    s->pass_ttl_ms = br_pg_i64(r, row, 11);
    s->hold_ttl_ms = br_pg_i64(r, row, 12);
    s->queue_capacity = (uint32_t)br_pg_i64(r, row, 13);
    s->zone_count = (uint32_t)br_pg_i64(r, row, 14);
    s->admit_per_min = (uint32_t)br_pg_i64(r, row, 15);
    s->presence_ttl_s = (uint32_t)br_pg_i64(r, row, 16);
    s->pow_bits = (uint8_t)br_pg_i64(r, row, 17);
    s->queue_flags = (uint8_t)br_pg_i64(r, row, 18);
    s->mode = (uint8_t)br_pg_i64(r, row, 19);
}

/* Fills the zones of events[0..n) (ids ascending) from one query. */
static int read_zones(struct br_pg_tx *t, struct br_pg_event *ev, uint32_t n)
{
    if (n == 0) {
        return BR_OK;
    }
    struct br_pg_params p;
    br_pg_params_init(&p);
    br_pg_p_u64(&p, ev[0].id);
    br_pg_p_u64(&p, ev[n - 1].id);
    PGresult *r = br_pg_exec(t, &zones_range, &p);
    int rc = br_pg_check(t, r, PGRES_TUPLES_OK, "zones read");
    if (rc != BR_OK) {
        return rc;
    }
    uint32_t e = 0;
    for (int row = 0; row < PQntuples(r) && rc == BR_OK; row++) {
        uint64_t eid = br_pg_u64(r, row, 0);
        uint32_t zid = (uint32_t)br_pg_i64(r, row, 1);
        while (e < n && ev[e].id < eid) {
            e++;
        }
        if (e == n || ev[e].id != eid || zid < 1 || zid > ev[e].spec.zone_count) {
            rc = BR_E_CORRUPT;
            break;
        }
        struct br_zone_spec *z = &ev[e].spec.zones[zid - 1];
        br_pg_str(r, row, 2, z->name, sizeof z->name);
        z->capacity = (uint32_t)br_pg_i64(r, row, 3);
        z->price_minor = br_pg_i64(r, row, 4);
        br_pg_str(r, row, 5, z->currency, sizeof z->currency);
    }
    PQclear(r);
    if (rc != BR_OK) {
        br_logf(br_pg_log(t->pg), BR_LOG_ERROR, "pg zones disagree with their events", NULL);
    }
    return rc;
}

struct list_arg {
    const struct br_pg_stmt *s;
    uint64_t key;
    uint32_t max;
    struct br_pg_event *out;
    uint32_t *count;
};

static int list_body(struct br_pg_tx *t, void *argp)
{
    struct list_arg *a = argp;
    struct br_pg_params p;
    br_pg_params_init(&p);
    br_pg_p_u64(&p, a->key);
    if (a->s->nparams == 2) {
        br_pg_p_i64(&p, a->max);
    }
    PGresult *r = br_pg_exec(t, a->s, &p);
    int rc = br_pg_check(t, r, PGRES_TUPLES_OK, "events read");
    if (rc != BR_OK) {
        return rc;
    }
    uint32_t n = (uint32_t)PQntuples(r);
    BR_ASSERT(n <= a->max);
    for (uint32_t i = 0; i < n; i++) {
        read_event(r, (int)i, &a->out[i]);
    }
    PQclear(r);
    *a->count = n;
    return read_zones(t, a->out, n);
}

int br_pg_event_get(struct br_pg *pg, uint64_t id, struct br_pg_event *out)
{
    uint32_t n = 0;
    struct list_arg a = {.s = &event_get, .key = id, .max = 1, .out = out, .count = &n};
    int rc = br_pg_run(pg, "event_get", BR_PG_READ, list_body, &a);
    return rc == BR_OK && n == 0 ? BR_E_NOT_FOUND : rc;
}

int br_pg_event_list(struct br_pg *pg, uint64_t after_id, uint32_t max, struct br_pg_event *out,
                     uint32_t *count)
{
    *count = 0;
    if (max == 0) {
        return BR_OK;
    }
    struct list_arg a = {.s = &event_list, .key = after_id, .max = max, .out = out, .count = count};
    return br_pg_run(pg, "event_list", BR_PG_READ, list_body, &a);
}

int br_pg_event_max_id(struct br_pg *pg, uint64_t *out)
{
    return br_pg_read_u64(pg, &event_max, out);
}
