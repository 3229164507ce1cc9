/*
 * engine.c -- memory layout, command dispatch, digests and queries.
 *
 * Layout: br_engine_init runs one layout function twice in spirit: once
 * with a measuring arena (br_engine_memory_size) and once over the caller's
 * block, so the size and the layout can never disagree.
 */
#include "engine.h"

#include <string.h>

#include "hash.h"
#include "journal.h"
#include "limits.h"
#include "panic.h"
#include "str.h"

static bool config_ok(const struct br_config *c)
{
    const uint32_t v[] = {c->events_max,  c->users_max,  c->members_max, c->queue_slots_max,
                          c->passes_max,  c->active_max, c->holds_max,   c->seats_max,
                          c->payments_max, c->idem_max,  c->provider_events_max};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        if (v[i] == 0 || v[i] > BR_TABLE_ROWS_MAX) {
            return false;
        }
    }
    return c->queue_capacity_default >= 1 && c->queue_capacity_default <= c->queue_slots_max &&
           c->events_max <= BR_EVENT_ID_MAX && c->email_hash_bits <= 64;
}

#define ALLOC(a, ptr, n) ((ptr) = br_arena_alloc((a), sizeof(*(ptr)) * (size_t)(n)))

static void layout(struct br_engine *e, const struct br_config *c, struct br_arena *a)
{
    ALLOC(a, e->events, c->events_max);
    ALLOC(a, e->users, c->users_max);
    br_map_init(&e->users_by_email, a, c->users_max);
    ALLOC(a, e->members, c->members_max);
    br_map_init(&e->members_by_key, a, c->members_max);
    ALLOC(a, e->slots, c->queue_slots_max);
    ALLOC(a, e->fenwick, c->queue_slots_max);
    ALLOC(a, e->passes, c->passes_max);
    br_map_init(&e->passes_by_id, a, c->passes_max);
    ALLOC(a, e->pass_pos, c->passes_max);
    ALLOC(a, e->pass_nodes, c->active_max);
    ALLOC(a, e->holds, c->holds_max);
    br_map_init(&e->holds_by_id, a, c->holds_max);
    ALLOC(a, e->hold_pos, c->holds_max);
    ALLOC(a, e->hold_nodes, c->seats_max);
    ALLOC(a, e->payments, c->payments_max);
    br_map_init(&e->payments_by_id, a, c->payments_max);
    ALLOC(a, e->payment_pos, c->payments_max);
    struct br_heap_node *refund_nodes;
    ALLOC(a, refund_nodes, c->payments_max);
    br_heap_init(&e->refund_heap, refund_nodes, c->payments_max, e->payment_pos);
    ALLOC(a, e->check_pos, c->payments_max);
    struct br_heap_node *check_nodes;
    ALLOC(a, check_nodes, c->payments_max);
    br_heap_init(&e->check_heap, check_nodes, c->payments_max, e->check_pos);
    ALLOC(a, e->idems, c->idem_max);
    br_map_init(&e->idem_by_key, a, c->idem_max);
    br_map_init(&e->provider_events, a, c->provider_events_max);
    e->sessions_max = c->users_max * BR_SESSIONS_PER_USER; /* config_ok: no overflow */
    ALLOC(a, e->sessions, e->sessions_max);
    ALLOC(a, e->effects, BR_EFFECTS_MAX);
    ALLOC(a, e->scratch, (size_t)c->members_max + (size_t)c->events_max * 2 * BR_EVENT_ZONES_MAX);
}

size_t br_engine_memory_size(const struct br_config *cfg)
{
    if (!config_ok(cfg)) {
        return 0;
    }
    struct br_engine tmp;
    struct br_arena a = {.base = NULL, .size = 0, .used = 0};
    layout(&tmp, cfg, &a);
    return a.used + 16;
}

static int init(struct br_engine *e, const struct br_config *cfg, void *mem, size_t size,
                int zeroed)
{
    size_t need = br_engine_memory_size(cfg);
    if (need == 0 || mem == NULL || size < need || ((uintptr_t)mem & 15u) != 0) {
        return BR_E_INVALID;
    }
    memset(e, 0, sizeof *e);
    e->cfg = *cfg;
    struct br_arena a = {.base = mem, .size = size, .used = 0, .zeroed = zeroed};
    layout(e, cfg, &a);
    BR_ASSERT(a.used <= size);
    /* The heaps' back-links start at "in no heap" (all ones): 4 bytes per
     * pass and hold and 8 per payment are the only rows written before use. */
    memset(e->pass_pos, 0xff, sizeof(uint32_t) * cfg->passes_max);
    memset(e->hold_pos, 0xff, sizeof(uint32_t) * cfg->holds_max);
    memset(e->payment_pos, 0xff, sizeof(uint32_t) * cfg->payments_max);
    memset(e->check_pos, 0xff, sizeof(uint32_t) * cfg->payments_max);
    e->digest = br_digest_initial(cfg->seed);
    return BR_OK;
}

int br_engine_init(struct br_engine *e, const struct br_config *cfg, void *mem, size_t size)
{
    return init(e, cfg, mem, size, 0);
}

int br_engine_init_zeroed(struct br_engine *e, const struct br_config *cfg, void *mem, size_t size)
{
    return init(e, cfg, mem, size, 1);
}

struct br_effect *br_engine_emit(struct br_engine *e, uint8_t kind)
{
    BR_ASSERT(e->effect_count < BR_EFFECTS_MAX);
    struct br_effect *fx = &e->effects[e->effect_count++];
    memset(fx, 0, sizeof *fx);
    fx->kind = kind;
    return fx;
}

const struct br_effect *br_engine_effects(const struct br_engine *e, uint32_t *count)
{
    *count = e->effect_count;
    return e->effects;
}

uint64_t br_effects_hash(const struct br_effect *fx, uint32_t count)
{
    uint64_t h = 0x6678ULL;
    for (uint32_t i = 0; i < count; i++) {
        h = br_hash_step(h, fx[i].kind);
        h = br_hash_step(h, fx[i].event_id);
        h = br_hash_step(h, fx[i].user_id);
        h = br_hash_step(h, fx[i].id);
        h = br_hash_step(h, fx[i].ref);
        h = br_hash_step(h, (uint64_t)fx[i].deadline_ms);
        h = br_hash_step(h, (uint64_t)fx[i].amount_minor);
    }
    return h;
}

uint64_t br_outcome_hash(const struct br_outcome *o)
{
    uint64_t h = br_hash_step(0x6f7574ULL, (uint64_t)(int64_t)o->err);
    h = br_hash_step(h, o->status);
    h = br_hash_step(h, o->id);
    h = br_hash_step(h, o->ref);
    h = br_hash_step(h, ((uint64_t)o->position << 32) | o->queue_length);
    h = br_hash_step(h, (uint64_t)o->deadline_ms);
    h = br_hash_step(h, (uint64_t)o->amount_minor);
    h = br_hash_step(h, ((uint64_t)o->count << 32) | o->effect_count);
    return br_hash_step(h, o->effects_hash);
}

uint64_t br_digest_step(uint64_t digest, const struct br_cmd *cmd, const struct br_outcome *out)
{
    return br_hash_step(br_hash_step(digest, br_journal_cmd_hash(cmd)), br_outcome_hash(out));
}

int br_engine_apply(struct br_engine *e, const struct br_cmd *c, struct br_outcome *out)
{
    memset(out, 0, sizeof *out);
    e->effect_count = 0;
    int rc;
    /* A clock outside [0, BR_NOW_MS_MAX] (a damaged or forged journal record)
     * is refused like an unknown type, before any deadline is computed from it. */
    uint8_t type = c->now_ms >= 0 && c->now_ms <= BR_NOW_MS_MAX ? c->type : BR_CMD_NONE;
    switch (type) {
    case BR_CMD_EVENT_CREATE:
        rc = br_catalog_event_create(e, c, out);
        break;
    case BR_CMD_USER_REGISTER:
        rc = br_catalog_user_register(e, c, out);
        break;
    case BR_CMD_USER_ROLE_SET:
        rc = br_catalog_user_role_set(e, c, out);
        break;
    case BR_CMD_QUEUE_JOIN:
        rc = br_queue_join(e, c, out);
        break;
    case BR_CMD_QUEUE_LEAVE:
        rc = br_queue_leave(e, c, out);
        break;
    case BR_CMD_ADMIT:
        rc = br_queue_admit(e, c, out);
        break;
    case BR_CMD_RESERVE:
        rc = br_inventory_reserve(e, c, out);
        break;
    case BR_CMD_CANCEL:
        rc = br_inventory_cancel(e, c, out);
        break;
    case BR_CMD_SWEEP:
        rc = br_inventory_sweep(e, c, out);
        break;
    case BR_CMD_PAYMENT_CREATE:
        rc = br_saga_payment_create(e, c, out);
        break;
    case BR_CMD_PAYMENT_EVENT:
        rc = br_saga_payment_event(e, c, out);
        break;
    case BR_CMD_REFUND_RESULT:
        rc = br_saga_refund_result(e, c, out);
        break;
    case BR_CMD_SAGA_STEP:
        rc = br_saga_step(e, c, out);
        break;
    case BR_CMD_PAYMENT_CHECK:
        rc = br_saga_payment_check(e, c, out);
        break;
    case BR_CMD_SESSION_OPEN:
        rc = br_session_open(e, c, out);
        break;
    case BR_CMD_SESSION_ROTATE:
        rc = br_session_rotate(e, c, out);
        break;
    case BR_CMD_SESSION_REVOKE:
        rc = br_session_revoke(e, c, out);
        break;
    case BR_CMD_SESSION_REVOKE_ALL:
        rc = br_session_revoke_all(e, c, out);
        break;
    case BR_CMD_QUEUE_MODE_SET:
        rc = br_queue_mode_set(e, c, out);
        break;
    case BR_CMD_PRESENCE:
        rc = br_queue_presence(e, c, out);
        break;
    default:
        rc = out->err = BR_E_INVALID;
        break;
    }
    BR_ASSERT(rc == out->err && rc <= 0);
    out->effect_count = e->effect_count;
    out->effects_hash = br_effects_hash(e->effects, e->effect_count);
    e->digest = br_digest_step(e->digest, c, out);
    e->applied++;
    return rc;
}

uint64_t br_engine_digest(const struct br_engine *e)
{
    return e->digest;
}

uint64_t br_digest_initial(uint64_t seed)
{
    return br_mix64(seed ^ 0x42522d646967ULL);
}

uint64_t br_state_record(uint64_t tag, const uint64_t *v, size_t n)
{
    uint64_t h = br_mix64(tag);
    for (size_t i = 0; i < n; i++) {
        h = br_hash_step(h, v[i]);
    }
    return h;
}

uint64_t br_engine_state_hash(const struct br_engine *e)
{
    /* A sum of per-record hashes: independent of storage order, so another
     * backend only has to produce the same records, not the same layout. */
    uint64_t sum = 0;
    for (uint32_t i = 0; i < e->event_count; i++) {
        const struct br_event *ev = &e->events[i];
        for (uint32_t z = 0; z < ev->spec.zone_count; z++) {
            uint64_t v[] = {ev->id, z + 1, ev->spec.zones[z].capacity, ev->zone_held[z],
                            ev->zone_sold[z]};
            sum += br_state_record(1, v, 5);
        }
        uint64_t v[] = {ev->id, ev->q_waiting, ev->passes_active, ev->passes_issued,
                        ev->q_shuffled, ev->owner_user_id};
        sum += br_state_record(2, v, 6);
        /* Issue 13: the waiting room, only where a switch is on, so states
         * of old scenarios hash as before (as record 12 does). */
        const struct br_event_spec *sp = &ev->spec;
        if (sp->admit_per_min != 0 || sp->presence_ttl_s != 0 || sp->pow_bits != 0 ||
            sp->queue_flags != 0 || sp->mode != 0 || ev->q_mode != 0 ||
            ev->q_admit_per_min != 0 || ev->q_pace_credit != 0 || ev->q_pace_last_ms != 0 ||
            ev->q_gate_told != 0 || ev->q_lapsed != 0 || ev->q_max_active != sp->max_active) {
            uint64_t w[] = {ev->id,           sp->admit_per_min,  sp->presence_ttl_s,
                            sp->pow_bits,     sp->queue_flags,    sp->mode,
                            ev->q_mode,       ev->q_max_active,   ev->q_admit_per_min,
                            (uint64_t)ev->q_pace_credit, (uint64_t)ev->q_pace_last_ms,
                            ev->q_gate_told,  ev->q_lapsed};
            sum += br_state_record(13, w, 13);
            if (ev->q_rate.bucket_last != -1) {
                uint64_t r[3 + BR_RATE_BUCKETS];
                r[0] = ev->id;
                r[1] = (uint64_t)ev->q_rate.bucket_last;
                r[2] = (uint64_t)ev->q_rate.since_ms;
                for (uint32_t b = 0; b < BR_RATE_BUCKETS; b++) {
                    r[3 + b] = ev->q_rate.n[b];
                }
                sum += br_state_record(14, r, 3 + BR_RATE_BUCKETS);
            }
        }
    }
    for (uint32_t i = 0; i < e->user_count; i++) {
        const struct br_user *u = &e->users[i];
        uint64_t v[] = {u->id, u->role, br_hash64(u->email, br_strnlen(u->email, BR_EMAIL_MAX), 0)};
        sum += br_state_record(3, v, 3);
    }
    for (uint32_t i = 0; i < e->member_count; i++) {
        const struct br_member *m = &e->members[i];
        struct br_queue_view qv;
        br_queue_view(e, m->event_id, m->user_id, &qv);
        uint64_t v[] = {m->event_id, m->user_id, m->status, qv.position, m->pass_id, m->tickets};
        sum += br_state_record(4, v, 6);
        if (m->seen_ms != 0) {
            uint64_t w[] = {m->event_id, m->user_id, (uint64_t)m->seen_ms};
            sum += br_state_record(15, w, 3);
        }
    }
    for (uint32_t i = 0; i < e->pass_count; i++) {
        const struct br_pass *p = &e->passes[i];
        uint64_t v[] = {p->id, e->members[p->member].user_id, p->state, (uint64_t)p->deadline_ms};
        sum += br_state_record(5, v, 4);
    }
    for (uint32_t i = 0; i < e->hold_count; i++) {
        const struct br_hold *h = &e->holds[i];
        uint64_t v[] = {h->id, h->user_id, h->zone_id, h->quantity, h->state,
                        (uint64_t)h->deadline_ms, (uint64_t)h->amount_minor, h->pass_id,
                        h->payment_id, h->confirmed_by};
        sum += br_state_record(6, v, 10);
    }
    for (uint32_t i = 0; i < e->payment_count; i++) {
        const struct br_payment *p = &e->payments[i];
        uint64_t v[] = {p->id, p->hold_id, p->state, (uint64_t)p->amount_minor, p->refund_attempts,
                        (uint64_t)p->next_attempt_ms};
        sum += br_state_record(7, v, 6);
        if (p->check_ms > 0) {
            /* point 8's schedule; none for check_ms 0, so v1 states hash as before */
            uint64_t w[] = {p->id, p->check_ms, p->check_attempts, (uint64_t)p->next_check_ms,
                            p->check_closed};
            sum += br_state_record(12, w, 5);
        }
    }
    /* The two maps below are scanned slot by slot; an empty one is skipped,
     * since on a kernel that backs even a read of an untouched page with
     * memory, a scan makes the whole table resident (a replay of a short
     * journal peaked 20 MiB above its tables). */
    for (uint32_t s = 0; e->idem_by_key.count > 0 && s <= e->idem_by_key.mask; s++) {
        const struct br_map_slot *ms = &e->idem_by_key.slots[s];
        if (ms->used) {
            const struct br_idem *d = &e->idems[ms->value];
            uint64_t v[] = {ms->a, ms->b, d->fingerprint, (uint64_t)(int64_t)d->err, d->hold_id};
            sum += br_state_record(8, v, 5);
        }
    }
    for (uint32_t s = 0; e->provider_events.count > 0 && s <= e->provider_events.mask; s++) {
        const struct br_map_slot *ms = &e->provider_events.slots[s];
        if (ms->used) {
            sum += br_state_record(9, &ms->a, 1);
        }
    }
    /* Sessions have no Lua twin (session.h): records only for those that
     * exist, and no count, so a backend without sessions agrees while none do. */
    for (uint32_t i = 0; i < e->session_count; i++) {
        const struct br_session *se = &e->sessions[i];
        const struct br_user *u = &e->users[se->user_id - 1];
        uint64_t id = (uint64_t)i + 1;
        uint64_t v[] = {id, se->user_id, se->generation, se->revoked || id <= u->sessions_floor,
                        (uint64_t)se->expires_at_ms};
        sum += br_state_record(11, v, 5);
    }
    uint64_t counts[] = {e->event_count, e->user_count, e->member_count, e->pass_count,
                         e->hold_count,  e->payment_count, e->idem_count, e->provider_events.count};
    return br_hash_step(br_state_record(10, counts, 8), sum);
}

uint64_t br_engine_final_digest(const struct br_engine *e)
{
    return br_hash_step(e->digest, br_engine_state_hash(e));
}

void br_engine_check(const struct br_engine *e)
{
    br_map_check(&e->users_by_email);
    br_map_check(&e->members_by_key);
    br_map_check(&e->passes_by_id);
    br_map_check(&e->holds_by_id);
    br_map_check(&e->payments_by_id);
    br_map_check(&e->idem_by_key);
    br_catalog_check(e);
    br_queue_check(e);
    br_inventory_check(e);
    br_saga_check(e);
    br_session_check(e);
}

int br_engine_event_stats(const struct br_engine *e, uint64_t event_id, struct br_event_stats *s)
{
    memset(s, 0, sizeof *s);
    const struct br_event *ev = br_catalog_event(e, event_id);
    if (ev == NULL) {
        return BR_E_NOT_FOUND;
    }
    s->queue_length = ev->q_waiting;
    s->admitted = ev->passes_issued;
    s->active_passes = ev->passes_active;
    memcpy(s->bookings, ev->bookings, sizeof s->bookings);
    return BR_OK;
}

static bool heap_due(const struct br_heap *h, int64_t now_ms)
{
    const struct br_heap_node *top = br_heap_top(h);
    return top != NULL && br_lapsed(top->deadline_ms, now_ms);
}

unsigned br_engine_due(const struct br_engine *e, uint64_t event_id, int64_t now_ms)
{
    unsigned due = heap_due(&e->refund_heap, now_ms) ? BR_DUE_SAGA : 0;
    if (heap_due(&e->check_heap, now_ms)) {
        due |= BR_DUE_CHECK;
    }
    const struct br_event *ev = br_catalog_event(e, event_id);
    if (ev == NULL) {
        return due;
    }
    struct br_queue_due_in in;
    br_queue_due_in_of(ev, &in);
    if (br_queue_admit_due(&in, now_ms)) { /* the one due rule (queue.h) */
        due |= BR_DUE_ADMIT;
    }
    if (heap_due(&ev->hold_heap, now_ms)) {
        due |= BR_DUE_SWEEP;
    }
    return due;
}

const char *br_table_name(unsigned table)
{
#define BR_TABLE_NAME(id, name) name,
    static const char *const names[BR_TABLE_COUNT] = {BR_TABLES(BR_TABLE_NAME)};
#undef BR_TABLE_NAME
    return table < BR_TABLE_COUNT ? names[table] : "unknown";
}

void br_engine_table_usage(const struct br_engine *e, unsigned table, uint32_t *used,
                           uint32_t *max)
{
    const struct br_config *c = &e->cfg;
    /* Tables left out (event_queue, other) read 0 of 0. */
    const uint32_t rows[BR_TABLE_COUNT] = {
        [BR_TABLE_EVENTS] = e->event_count,    [BR_TABLE_USERS] = e->user_count,
        [BR_TABLE_MEMBERS] = e->member_count,  [BR_TABLE_QUEUE_PLACES] = e->slots_used,
        [BR_TABLE_PASSES] = e->pass_count,     [BR_TABLE_ACTIVE] = e->pass_nodes_used,
        [BR_TABLE_HOLDS] = e->hold_count,      [BR_TABLE_SEATS] = e->hold_nodes_used,
        [BR_TABLE_PAYMENTS] = e->payment_count, [BR_TABLE_IDEM] = e->idem_count,
        [BR_TABLE_PROVIDER_EVENTS] = e->provider_events.count};
    const uint32_t rows_max[BR_TABLE_COUNT] = {
        [BR_TABLE_EVENTS] = c->events_max,     [BR_TABLE_USERS] = c->users_max,
        [BR_TABLE_MEMBERS] = c->members_max,   [BR_TABLE_QUEUE_PLACES] = c->queue_slots_max,
        [BR_TABLE_PASSES] = c->passes_max,     [BR_TABLE_ACTIVE] = c->active_max,
        [BR_TABLE_HOLDS] = c->holds_max,       [BR_TABLE_SEATS] = c->seats_max,
        [BR_TABLE_PAYMENTS] = c->payments_max, [BR_TABLE_IDEM] = c->idem_max,
        [BR_TABLE_PROVIDER_EVENTS] = c->provider_events_max};
    *used = table < BR_TABLE_COUNT ? rows[table] : 0;
    *max = table < BR_TABLE_COUNT ? rows_max[table] : 0;
    BR_ASSERT(*used <= *max);
}

static bool full(const struct br_engine *e, enum br_table t)
{
    uint32_t used, max;
    br_engine_table_usage(e, t, &used, &max);
    return used >= max;
}

/* The same checks, in the same order, as br_catalog_event_create. */
static enum br_table event_create_full(const struct br_engine *e, const struct br_event_spec *s)
{
    uint64_t queue = s->queue_capacity ? s->queue_capacity : e->cfg.queue_capacity_default;
    uint64_t seats = 0;
    for (uint32_t z = 0; z < s->zone_count && z < BR_EVENT_ZONES_MAX; z++) {
        seats += s->zones[z].capacity;
    }
    if (full(e, BR_TABLE_EVENTS)) {
        return BR_TABLE_EVENTS;
    }
    if ((uint64_t)e->slots_used + queue > e->cfg.queue_slots_max) {
        return BR_TABLE_QUEUE_PLACES;
    }
    if ((uint64_t)e->pass_nodes_used + s->max_active > e->cfg.active_max) {
        return BR_TABLE_ACTIVE;
    }
    return (uint64_t)e->hold_nodes_used + seats > e->cfg.seats_max ? BR_TABLE_SEATS
                                                                    : BR_TABLE_OTHER;
}

enum br_table br_engine_full_table(const struct br_engine *e, const struct br_cmd *cmd)
{
    switch (cmd->type) {
    case BR_CMD_EVENT_CREATE:
        return event_create_full(e, &cmd->u.event_create);
    case BR_CMD_USER_REGISTER:
        return full(e, BR_TABLE_USERS) ? BR_TABLE_USERS : BR_TABLE_OTHER;
    case BR_CMD_QUEUE_JOIN: {
        /* As br_queue_join checks: the event's queue first, then (for a
         * newcomer) the members table. */
        const struct br_event *ev = br_catalog_event(e, cmd->u.queue_join.event_id);
        if (ev == NULL) {
            return BR_TABLE_OTHER;
        }
        if (ev->q_tail >= ev->spec.queue_capacity ||
            br_queue_member_find(e, ev->id, cmd->user_id) != UINT32_MAX) {
            return BR_TABLE_EVENT_QUEUE;
        }
        return full(e, BR_TABLE_MEMBERS) ? BR_TABLE_MEMBERS : BR_TABLE_OTHER;
    }
    case BR_CMD_RESERVE:
        return full(e, BR_TABLE_HOLDS)     ? BR_TABLE_HOLDS
               : full(e, BR_TABLE_MEMBERS) ? BR_TABLE_MEMBERS
               : full(e, BR_TABLE_IDEM)    ? BR_TABLE_IDEM
                                           : BR_TABLE_OTHER;
    case BR_CMD_PAYMENT_CREATE:
        return full(e, BR_TABLE_PAYMENTS) ? BR_TABLE_PAYMENTS : BR_TABLE_OTHER;
    case BR_CMD_PAYMENT_EVENT:
        return full(e, BR_TABLE_PROVIDER_EVENTS) ? BR_TABLE_PROVIDER_EVENTS : BR_TABLE_OTHER;
    default:
        return BR_TABLE_OTHER;
    }
}

uint32_t br_engine_user_holds(const struct br_engine *e, uint64_t user_id, uint64_t *ids,
                              uint32_t max)
{
    const struct br_user *u = br_catalog_user(e, user_id);
    uint32_t n = 0;
    if (u == NULL) {
        return 0;
    }
    for (uint32_t hi = u->holds_head; hi != 0 && n < max; hi = e->holds[hi - 1].next_of_user) {
        ids[n++] = e->holds[hi - 1].id;
    }
    return n;
}


#define BR_NAME_ENTRY(sym, val, name) [val] = name,

const char *br_cmd_name(uint8_t type)
{
    static const char *const names[BR_CMD_TYPE_COUNT] = {BR_CMD_TYPE_MAP(BR_NAME_ENTRY)};
    return type < BR_CMD_TYPE_COUNT ? names[type] : "unknown";
}

const char *br_hold_state_name(uint8_t s)
{
    static const char *const names[BR_HOLD_STATE_COUNT] = {BR_HOLD_STATE_MAP(BR_NAME_ENTRY)};
    return s < BR_HOLD_STATE_COUNT ? names[s] : "unknown";
}

const char *br_queue_status_name(uint8_t s)
{
    static const char *const names[BR_QUEUE_STATUS_COUNT] = {BR_QUEUE_STATUS_MAP(BR_NAME_ENTRY)};
    return s < BR_QUEUE_STATUS_COUNT ? names[s] : "unknown";
}

const char *br_payment_state_name(uint8_t s)
{
    static const char *const names[BR_PAYMENT_STATE_COUNT] = {
        BR_PAYMENT_STATE_MAP(BR_NAME_ENTRY)};
    return s < BR_PAYMENT_STATE_COUNT ? names[s] : "unknown";
}

const char *br_effect_name(uint8_t k)
{
    static const char *const names[BR_EFFECT_KIND_COUNT] = {BR_EFFECT_MAP(BR_NAME_ENTRY)};
    return k < BR_EFFECT_KIND_COUNT ? names[k] : "unknown";
}
