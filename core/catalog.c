/*
 * catalog.c -- event and user records. Ids are index + 1, so lookups are
 * array reads; emails are found through a hash index whose hits are only
 * candidates (email_find compares the stored bytes).
 */
#include "catalog.h"

#include <string.h>

#include "engine.h"
#include "hash.h"
#include "panic.h"
#include "str.h"

static bool str_ok(const char *s, size_t cap, bool nonempty)
{
    const char *nul = memchr(s, 0, cap);
    return nul != NULL && (!nonempty || nul != s);
}

static bool currency_ok(const char *c)
{
    for (int i = 0; i < 3; i++) {
        if (c[i] < 'A' || c[i] > 'Z') {
            return false;
        }
    }
    return c[3] == 0;
}

int br_catalog_spec_validate(const struct br_event_spec *s)
{
    if (!str_ok(s->name, sizeof s->name, true) || !str_ok(s->venue, sizeof s->venue, false)) {
        return BR_E_INVALID;
    }
    if (s->per_user_limit < 1 || s->per_user_limit > BR_PER_USER_LIMIT_MAX) {
        return BR_E_INVALID;
    }
    if (s->max_active < 1 || s->max_active > BR_MAX_ACTIVE_MAX) {
        return BR_E_INVALID;
    }
    if (s->admit_per_tick < 1 || s->admit_per_tick > BR_ADMIT_PER_TICK_MAX) {
        return BR_E_INVALID;
    }
    if (s->pass_ttl_ms < 1 || s->pass_ttl_ms > BR_TTL_MS_MAX || s->hold_ttl_ms < 1 ||
        s->hold_ttl_ms > BR_TTL_MS_MAX) {
        return BR_E_INVALID;
    }
    if (s->sale_opens_at_ms < 0 || s->starts_at_ms < 0 || s->queue_capacity > (1u << 30)) {
        return BR_E_INVALID;
    }
    if (s->zone_count < 1 || s->zone_count > BR_EVENT_ZONES_MAX) {
        return BR_E_INVALID;
    }
    if (s->admit_per_min > BR_ADMIT_PER_MIN_MAX || s->presence_ttl_s > BR_PRESENCE_TTL_S_MAX ||
        s->pow_bits > BR_POW_BITS_MAX || (s->queue_flags & ~BR_QF_ALL) != 0 ||
        s->mode >= BR_QUEUE_MODE_COUNT) {
        return BR_E_INVALID;
    }
    for (uint32_t z = 0; z < s->zone_count; z++) {
        const struct br_zone_spec *zs = &s->zones[z];
        if (!str_ok(zs->name, sizeof zs->name, true) || !currency_ok(zs->currency)) {
            return BR_E_INVALID;
        }
        if (zs->capacity < 1 || zs->capacity > BR_ZONE_CAPACITY_MAX) {
            return BR_E_INVALID;
        }
        if (zs->price_minor < 0 || zs->price_minor > BR_PRICE_MINOR_MAX) {
            return BR_E_INVALID;
        }
    }
    return BR_OK;
}

struct br_event *br_catalog_event(const struct br_engine *e, uint64_t event_id)
{
    if (event_id == 0 || event_id > e->event_count) {
        return NULL;
    }
    return &e->events[event_id - 1];
}

struct br_user *br_catalog_user(const struct br_engine *e, uint64_t user_id)
{
    if (user_id == 0 || user_id > e->user_count) {
        return NULL;
    }
    return &e->users[user_id - 1];
}

/* The email index maps (hash(email), n) to a user index, n = 0, 1, ... over
 * the users whose emails share that hash: a hit is only a candidate, the
 * stored email is compared byte for byte, and a mismatch probes on to n + 1.
 * Users are never removed, so the n of one hash are dense and the first miss
 * ends the search. cfg.email_hash_bits narrows the hash (tests force
 * collisions with it); 0 keeps all 64 bits. */
static uint64_t email_key(const struct br_engine *e, const char *email)
{
    uint64_t h = br_hash64(email, br_strnlen(email, BR_EMAIL_MAX), 0x656d61696cULL);
    uint32_t bits = e->cfg.email_hash_bits;
    return bits == 0 || bits >= 64 ? h : h & ((1ULL << bits) - 1);
}

/* Finds email: true with *idx the user's index, or false with *n the first
 * free probe number of its hash. O(users sharing the hash). */
static bool email_find(const struct br_engine *e, const char *email, uint32_t *idx, uint32_t *n)
{
    uint64_t key = email_key(e, email);
    size_t len = br_strnlen(email, BR_EMAIL_MAX);
    for (uint32_t i = 0; i <= e->user_count; i++) {
        uint32_t at;
        if (!br_map_get(&e->users_by_email, key, i, &at)) {
            *n = i;
            return false;
        }
        BR_ASSERT(at < e->user_count);
        if (memcmp(e->users[at].email, email, len) == 0 && e->users[at].email[len] == '\0') {
            *idx = at;
            return true;
        }
    }
    BR_ASSERT(false && "more probes than users");
    return false;
}

uint64_t br_catalog_user_by_email(const struct br_engine *e, const char *email)
{
    uint32_t idx;
    uint32_t n;
    if (!str_ok(email, BR_EMAIL_MAX, true) || !email_find(e, email, &idx, &n)) {
        return 0;
    }
    return e->users[idx].id;
}

bool br_catalog_may_steer(uint8_t role, uint64_t user_id, uint64_t owner_user_id)
{
    BR_ASSERT(role < BR_ROLE_COUNT);
    if (role == BR_ROLE_ADMIN) {
        return true;
    }
    return role == BR_ROLE_ORGANIZER && user_id != 0 && user_id == owner_user_id;
}

/* The acting user may create events: the system, an organizer or an admin. */
static bool may_organize(const struct br_engine *e, uint64_t actor)
{
    if (actor == 0) {
        return true;
    }
    const struct br_user *u = br_catalog_user(e, actor);
    return u != NULL && (u->role == BR_ROLE_ORGANIZER || u->role == BR_ROLE_ADMIN);
}

int br_catalog_event_create(struct br_engine *e, const struct br_cmd *c, struct br_outcome *out)
{
    const struct br_event_spec *s = &c->u.event_create;
    if (!may_organize(e, c->user_id)) {
        return out->err = BR_E_FORBIDDEN;
    }
    if (br_catalog_spec_validate(s) != BR_OK) {
        return out->err = BR_E_INVALID;
    }
    uint32_t queue_cap = s->queue_capacity ? s->queue_capacity : e->cfg.queue_capacity_default;
    uint64_t seats = 0;
    for (uint32_t z = 0; z < s->zone_count; z++) {
        seats += s->zones[z].capacity;
    }
    if (e->event_count >= e->cfg.events_max || e->event_count >= BR_EVENT_ID_MAX ||
        (uint64_t)e->slots_used + queue_cap > e->cfg.queue_slots_max ||
        (uint64_t)e->pass_nodes_used + s->max_active > e->cfg.active_max ||
        (uint64_t)e->hold_nodes_used + seats > e->cfg.seats_max) {
        return out->err = BR_E_FULL;
    }
    struct br_event *ev = &e->events[e->event_count];
    memset(ev, 0, sizeof *ev);
    ev->id = ++e->event_count;
    ev->owner_user_id = c->user_id;
    ev->spec = *s;
    ev->spec.queue_capacity = queue_cap;
    /* Zero the unused zone specs so the state hash sees only what was given. */
    memset(&ev->spec.zones[s->zone_count], 0,
           sizeof(struct br_zone_spec) * (BR_EVENT_ZONES_MAX - s->zone_count));
    ev->q_base = e->slots_used;
    e->slots_used += queue_cap;
    br_heap_init(&ev->pass_heap, e->pass_nodes + e->pass_nodes_used, s->max_active, e->pass_pos);
    e->pass_nodes_used += s->max_active;
    br_heap_init(&ev->hold_heap, e->hold_nodes + e->hold_nodes_used, (uint32_t)seats, e->hold_pos);
    e->hold_nodes_used += (uint32_t)seats;
    ev->q_shuffled = false;
    /* The waiting room's live controls start from the spec. */
    ev->q_mode = s->mode;
    ev->q_max_active = s->max_active;
    ev->q_admit_per_min = s->admit_per_min;
    ev->q_pace_credit = 0;
    ev->q_pace_last_ms = s->admit_per_min > 0 ? c->now_ms : 0;
    ev->q_gate_told = BR_GATE_OPEN;
    ev->q_lapsed = 0;
    ev->q_rate.bucket_last = -1;
    out->id = ev->id;
    return out->err = BR_OK;
}

int br_catalog_user_register(struct br_engine *e, const struct br_cmd *c, struct br_outcome *out)
{
    const char *email = c->u.user_register.email;
    if (c->user_id != 0) {
        return out->err = BR_E_FORBIDDEN;
    }
    if (!str_ok(email, BR_EMAIL_MAX, true) ||
        !str_ok(c->u.user_register.name, BR_NAME_MAX, false) ||
        c->u.user_register.role >= BR_ROLE_COUNT) {
        return out->err = BR_E_INVALID;
    }
    uint32_t idx;
    uint32_t n;
    if (email_find(e, email, &idx, &n)) {
        out->id = e->users[idx].id;
        return out->err = BR_E_EMAIL_TAKEN;
    }
    if (e->user_count >= e->cfg.users_max) {
        return out->err = BR_E_FULL;
    }
    idx = e->user_count;
    int rc = br_map_put(&e->users_by_email, email_key(e, email), n, idx);
    BR_ASSERT(rc == BR_OK); /* the map holds users_max entries */
    struct br_user *u = &e->users[idx];
    memset(u, 0, sizeof *u);
    u->id = ++e->user_count;
    u->role = c->u.user_register.role;
    memcpy(u->email, email, br_strnlen(email, BR_EMAIL_MAX));
    memcpy(u->name, c->u.user_register.name, br_strnlen(c->u.user_register.name, BR_NAME_MAX));
    memcpy(u->password_hash, c->u.user_register.password_hash, BR_PASSWORD_HASH_LEN);
    memcpy(u->salt, c->u.user_register.salt, BR_SALT_LEN);
    out->id = u->id;
    out->status = u->role;
    return out->err = BR_OK;
}

int br_catalog_user_role_set(struct br_engine *e, const struct br_cmd *c, struct br_outcome *out)
{
    if (c->user_id != 0) {
        const struct br_user *actor = br_catalog_user(e, c->user_id);
        if (actor == NULL || actor->role != BR_ROLE_ADMIN) {
            return out->err = BR_E_FORBIDDEN;
        }
    }
    if (c->u.user_role_set.role >= BR_ROLE_COUNT) {
        return out->err = BR_E_INVALID;
    }
    struct br_user *u = br_catalog_user(e, c->u.user_role_set.target_user_id);
    if (u == NULL) {
        return out->err = BR_E_NOT_FOUND;
    }
    u->role = c->u.user_role_set.role;
    out->id = u->id;
    out->status = u->role;
    return out->err = BR_OK;
}

static uint32_t seq_skip(uint32_t seq, uint64_t add)
{
    const uint64_t top = 0xFFFF0000u; /* leaves room to count on; never below seq */
    uint64_t v = (uint64_t)seq + add;
    return v > top ? (seq > top ? seq : (uint32_t)top) : (uint32_t)v;
}

void br_catalog_skip_ids(struct br_engine *e, uint32_t n)
{
    BR_ASSERT(n <= BR_SKIP_IDS_MAX);
    for (uint32_t i = 0; i < e->event_count; i++) {
        struct br_event *ev = &e->events[i];
        uint32_t before = ev->hold_seq;
        ev->hold_seq = seq_skip(ev->hold_seq, n);
        ev->payment_seq = seq_skip(ev->payment_seq, n);
        ev->pass_seq = seq_skip(ev->pass_seq, (uint64_t)n * ev->spec.admit_per_tick);
        BR_ASSERT(ev->hold_seq >= before);
    }
}

void br_catalog_check(const struct br_engine *e)
{
    BR_ASSERT(e->event_count <= e->cfg.events_max);
    BR_ASSERT(e->user_count <= e->cfg.users_max);
    BR_ASSERT(e->users_by_email.count == e->user_count);
    for (uint32_t i = 0; i < e->event_count; i++) {
        const struct br_event *ev = &e->events[i];
        BR_ASSERT(ev->id == i + 1);
        BR_ASSERT(br_catalog_spec_validate(&ev->spec) == BR_OK);
        for (uint32_t z = 0; z < ev->spec.zone_count; z++) {
            BR_ASSERT((uint64_t)ev->zone_held[z] + ev->zone_sold[z] <= ev->spec.zones[z].capacity);
        }
    }
    for (uint32_t i = 0; i < e->user_count; i++) {
        BR_ASSERT(e->users[i].id == i + 1);
        BR_ASSERT(br_catalog_user_by_email(e, e->users[i].email) == i + 1);
    }
}

void br_event_spec_default(struct br_event_spec *s, int64_t opens_at_ms)
{
    BR_ASSERT(s != NULL && opens_at_ms >= 0);
    memset(s, 0, sizeof *s);
    s->sale_opens_at_ms = opens_at_ms;
    s->starts_at_ms = opens_at_ms + BR_EVENT_SHOW_AFTER_SALE_MS_DEFAULT;
    s->per_user_limit = BR_EVENT_PER_USER_LIMIT_DEFAULT;
    s->requires_pass = true;
    s->max_active = BR_EVENT_MAX_ACTIVE_DEFAULT;
    s->admit_per_tick = BR_EVENT_ADMIT_PER_TICK_DEFAULT;
    s->pass_ttl_ms = BR_EVENT_PASS_TTL_MS_DEFAULT;
    s->hold_ttl_ms = BR_EVENT_HOLD_TTL_MS_DEFAULT;
    s->presence_ttl_s = BR_EVENT_PRESENCE_TTL_S_DEFAULT;
    s->queue_flags = BR_EVENT_QUEUE_FLAGS_DEFAULT;
}

uint32_t br_event_spec_queue_default(const struct br_event_spec *s)
{
    BR_ASSERT(s->zone_count <= BR_EVENT_ZONES_MAX);
    uint64_t seats = 0;
    for (uint32_t z = 0; z < s->zone_count; z++) {
        seats += s->zones[z].capacity;
    }
    uint64_t want = seats * BR_QUEUE_PER_SEAT;
    return (uint32_t)(want < BR_QUEUE_CAPACITY_MIN   ? BR_QUEUE_CAPACITY_MIN
                      : want > BR_QUEUE_CAPACITY_MAX ? BR_QUEUE_CAPACITY_MAX
                                                     : want);
}
