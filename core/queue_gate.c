/*
 * queue_gate.c -- the waiting room's issue 13 rules: admission gate, seats
 * available and sold out, operator modes (queue_mode_set), presence, the
 * admission-rate ring, the wait estimate and the admitter's due rule
 * (queue.h; the rules are docs/DESIGN.md "The waiting room").
 *
 * Pure, no I/O, no clock: now_ms comes from the caller. Every arithmetic
 * step that mixes times and rates uses 64-bit intermediates and saturates.
 */
#include "queue.h"

#include <string.h>

#include "engine.h"
#include "panic.h"

/* ---- seats and the gate ---- */

uint32_t br_queue_seats_available(const struct br_event *ev)
{
    uint64_t n = 0;
    for (uint32_t z = 0; z < ev->spec.zone_count; z++) {
        n += (uint64_t)ev->spec.zones[z].capacity - ev->zone_held[z] - ev->zone_sold[z];
    }
    return n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
}

bool br_queue_sold_out(const struct br_event *ev)
{
    for (uint32_t z = 0; z < ev->spec.zone_count; z++) {
        if (ev->zone_sold[z] != ev->spec.zones[z].capacity) {
            return false;
        }
    }
    return ev->spec.zone_count > 0;
}

/* The inventory part of the gate: what q_gate_told remembers. */
static uint8_t inv_gate(uint8_t flags, bool sold_out, uint32_t avail)
{
    if (!(flags & BR_QF_INVENTORY_AWARE)) {
        return BR_GATE_OPEN;
    }
    return sold_out ? BR_GATE_SOLD_OUT : avail == 0 ? BR_GATE_SEATS_HELD : BR_GATE_OPEN;
}

uint8_t br_queue_inv_gate(const struct br_event *ev)
{
    return inv_gate(ev->spec.queue_flags, br_queue_sold_out(ev), br_queue_seats_available(ev));
}

uint8_t br_queue_gate(const struct br_event *ev, int64_t now_ms)
{
    bool aware = (ev->spec.queue_flags & BR_QF_INVENTORY_AWARE) != 0;
    if (ev->q_mode == BR_QM_CLOSED) {
        return BR_GATE_CLOSED;
    }
    if (ev->q_mode == BR_QM_PASSTHROUGH) {
        return BR_GATE_PASSTHROUGH;
    }
    if (aware && br_queue_sold_out(ev)) {
        return BR_GATE_SOLD_OUT;
    }
    /* Not open: before the opening, unless the opening shuffle already ran
     * (a driver's clock may step back over sale_opens_at; the sale stays
     * open, as admission always did before the waiting room's rules). */
    if (now_ms < ev->spec.sale_opens_at_ms && !ev->q_shuffled) {
        return BR_GATE_NOT_OPEN;
    }
    if (ev->q_mode == BR_QM_PAUSED) {
        return BR_GATE_PAUSED;
    }
    if (aware && br_queue_seats_available(ev) == 0) {
        return BR_GATE_SEATS_HELD;
    }
    return BR_GATE_OPEN;
}

/* ---- queue_mode_set (19) ---- */

int br_queue_mode_set(struct br_engine *e, const struct br_cmd *c, struct br_outcome *out)
{
    struct br_event *ev = br_catalog_event(e, c->u.queue_mode_set.event_id);
    if (c->user_id != 0) {
        const struct br_user *u = br_catalog_user(e, c->user_id);
        if (u == NULL) {
            return out->err = BR_E_UNAUTHORIZED;
        }
        /* The actor before the event: a user who may steer no event of this
         * owner (none when the event is unknown) learns nothing about it. */
        if (!br_catalog_may_steer(u->role, u->id, ev != NULL ? ev->owner_user_id : 0)) {
            return out->err = BR_E_FORBIDDEN;
        }
    }
    if (ev == NULL) {
        return out->err = BR_E_NOT_FOUND;
    }
    uint8_t set = c->u.queue_mode_set.set;
    if (set == 0 || (set & ~(BR_QSET_MODE | BR_QSET_MAX_ACTIVE | BR_QSET_ADMIT_PER_MIN)) != 0) {
        return out->err = BR_E_INVALID;
    }
    if ((set & BR_QSET_MODE) && c->u.queue_mode_set.mode >= BR_QUEUE_MODE_COUNT) {
        return out->err = BR_E_INVALID;
    }
    if ((set & BR_QSET_MAX_ACTIVE) &&
        (c->u.queue_mode_set.max_active < 1 ||
         c->u.queue_mode_set.max_active > ev->spec.max_active)) {
        return out->err = BR_E_INVALID;
    }
    if ((set & BR_QSET_ADMIT_PER_MIN) && c->u.queue_mode_set.admit_per_min > BR_ADMIT_PER_MIN_MAX) {
        return out->err = BR_E_INVALID;
    }
    if (set & BR_QSET_MODE) {
        ev->q_mode = c->u.queue_mode_set.mode;
    }
    if (set & BR_QSET_MAX_ACTIVE) {
        ev->q_max_active = c->u.queue_mode_set.max_active; /* live passes are never revoked */
    }
    if (set & BR_QSET_ADMIT_PER_MIN) {
        uint32_t apm = c->u.queue_mode_set.admit_per_min;
        ev->q_admit_per_min = apm;
        ev->q_pace_credit = 0;
        ev->q_pace_last_ms = apm > 0 ? c->now_ms : 0;
    }
    uint8_t gate = br_queue_gate(ev, c->now_ms);
    if (set & BR_QSET_MODE) {
        struct br_effect *fx = br_engine_emit(e, BR_FX_QUEUE_STATE);
        fx->event_id = ev->id;
        fx->id = gate;
        fx->ref = ev->q_mode;
    }
    out->id = ev->id;
    out->status = ev->q_mode;
    out->position = gate;
    out->count = ev->q_max_active;
    out->ref = ev->q_admit_per_min;
    return out->err = BR_OK;
}

/* ---- presence (20) ---- */

int br_queue_presence(struct br_engine *e, const struct br_cmd *c, struct br_outcome *out)
{
    if (c->user_id != 0) {
        return out->err = BR_E_FORBIDDEN;
    }
    const struct br_event *ev = br_catalog_event(e, c->u.presence.event_id);
    if (ev == NULL) {
        return out->err = BR_E_NOT_FOUND;
    }
    uint32_t n = c->u.presence.count;
    if (n == 0 || n > BR_PRESENCE_BATCH_MAX) {
        return out->err = BR_E_INVALID;
    }
    for (uint32_t i = 0; i < n; i++) {
        if (c->u.presence.user_ids[i] == 0) {
            return out->err = BR_E_INVALID;
        }
    }
    out->id = ev->id;
    uint32_t counted = 0;
    if (ev->spec.presence_ttl_s > 0) {
        for (uint32_t i = 0; i < n; i++) {
            uint32_t mi = br_queue_member_find(e, ev->id, c->u.presence.user_ids[i]);
            if (mi == UINT32_MAX) {
                continue;
            }
            struct br_member *m = &e->members[mi];
            if (m->status == BR_QS_PREQUEUE || m->status == BR_QS_WAITING ||
                m->status == BR_QS_ADMITTED) {
                if (c->now_ms > m->seen_ms) {
                    m->seen_ms = c->now_ms;
                }
                counted++;
            }
        }
    }
    out->count = counted;
    out->queue_length = ev->q_waiting;
    return out->err = BR_OK;
}

/* ---- the admission-rate ring ---- */

void br_queue_rate_add(struct br_queue_rate *r, int64_t now_ms, uint32_t admitted)
{
    BR_ASSERT(now_ms >= 0);
    int64_t b = now_ms / BR_RATE_BUCKET_MS;
    if (r->bucket_last == -1) {
        memset(r->n, 0, sizeof r->n);
        r->since_ms = now_ms;
        r->bucket_last = b;
    } else if (b > r->bucket_last) {
        if (b - r->bucket_last >= (int64_t)BR_RATE_BUCKETS) {
            memset(r->n, 0, sizeof r->n);
        } else {
            for (int64_t j = r->bucket_last + 1; j <= b; j++) {
                r->n[j % BR_RATE_BUCKETS] = 0;
            }
        }
        r->bucket_last = b;
    }
    uint32_t *slot = &r->n[r->bucket_last % BR_RATE_BUCKETS];
    *slot = (uint64_t)*slot + admitted > UINT32_MAX ? UINT32_MAX : *slot + admitted;
}

void br_queue_rate_read(const struct br_queue_rate *r, int64_t now_ms, uint32_t *count,
                        int64_t *span_ms)
{
    *count = 0;
    *span_ms = BR_RATE_BUCKET_MS;
    if (r->bucket_last == -1) {
        return;
    }
    int64_t b = now_ms / BR_RATE_BUCKET_MS;
    if (b < r->bucket_last) {
        b = r->bucket_last;
    }
    uint64_t sum = 0;
    for (int64_t j = b - (int64_t)BR_RATE_BUCKETS + 1; j <= r->bucket_last; j++) {
        if (j >= 0) {
            sum += r->n[j % BR_RATE_BUCKETS];
        }
    }
    *count = sum > UINT32_MAX ? UINT32_MAX : (uint32_t)sum;
    int64_t window_start = (b - (int64_t)BR_RATE_BUCKETS + 1) * BR_RATE_BUCKET_MS;
    int64_t from = r->since_ms > window_start ? r->since_ms : window_start;
    int64_t span = now_ms - from;
    *span_ms = span < BR_RATE_BUCKET_MS ? BR_RATE_BUCKET_MS : span;
}

/* ---- the estimate ---- */

static uint32_t sat_u32(uint64_t v, uint32_t max)
{
    return v > max ? max : (uint32_t)v;
}

void br_queue_estimate(const struct br_event_spec *spec, uint32_t admit_per_min_live,
                       const struct br_queue_rate *rate, uint8_t gate, uint32_t position,
                       uint32_t tick_ms, int64_t now_ms, struct br_queue_estimate *out)
{
    memset(out, 0, sizeof *out);
    if (gate == BR_GATE_SOLD_OUT || gate == BR_GATE_CLOSED) {
        out->basis = BR_EST_NONE;
        out->wait_s = UINT32_MAX; /* no wait ends in a pass */
        return;
    }
    if (gate == BR_GATE_PASSTHROUGH) {
        out->basis = BR_EST_NONE;
        out->wait_s = 0;
        return;
    }
    uint32_t count;
    int64_t span;
    br_queue_rate_read(rate, now_ms, &count, &span);
    if (count > 0 && gate != BR_GATE_NOT_OPEN) {
        out->basis = BR_EST_MEASURED;
        uint64_t apm = (uint64_t)count * 60000u / (uint64_t)span;
        out->admitted_per_min = apm < 1 ? 1 : sat_u32(apm, UINT32_MAX);
        uint64_t den = (uint64_t)count * 1000u;
        uint64_t w = ((uint64_t)position * (uint64_t)span + den - 1) / den;
        out->wait_s = sat_u32(w, UINT32_MAX - 1);
        return;
    }
    out->basis = BR_EST_CONFIGURED;
    uint32_t w = br_queue_wait_estimate_s(spec, position, tick_ms, now_ms);
    if (admit_per_min_live > 0) {
        uint64_t p = ((uint64_t)position * 60u + admit_per_min_live - 1) / admit_per_min_live;
        if (now_ms < spec->sale_opens_at_ms) {
            p += ((uint64_t)(spec->sale_opens_at_ms - now_ms) + 999) / 1000;
        }
        uint32_t pw = sat_u32(p, UINT32_MAX);
        w = pw > w ? pw : w;
    }
    out->wait_s = w;
}

/* ---- the admitter's due rule ---- */

void br_queue_due_in_of(const struct br_event *ev, struct br_queue_due_in *in)
{
    memset(in, 0, sizeof *in);
    in->exists = true;
    in->shuffled = ev->q_shuffled;
    in->opens_ms = ev->spec.sale_opens_at_ms;
    const struct br_heap_node *top = br_heap_top(&ev->pass_heap);
    in->next_pass_ms = top != NULL ? top->deadline_ms : INT64_MAX;
    in->waiting = ev->q_waiting;
    in->active = ev->passes_active;
    in->max_active_live = ev->q_max_active;
    in->avail = br_queue_seats_available(ev);
    in->admit_per_min = ev->q_admit_per_min;
    in->mode = ev->q_mode;
    in->flags = ev->spec.queue_flags;
    in->gate_told = ev->q_gate_told;
    in->sold_out = br_queue_sold_out(ev);
    in->pace_credit = ev->q_pace_credit;
    in->pace_last_ms = ev->q_pace_last_ms;
}

bool br_queue_admit_due(const struct br_queue_due_in *in, int64_t now_ms)
{
    if (!in->exists) {
        return false;
    }
    if (!in->shuffled && now_ms >= in->opens_ms) {
        return true;
    }
    if (in->next_pass_ms <= now_ms) {
        return true;
    }
    if (in->gate_told != inv_gate(in->flags, in->sold_out, in->avail)) {
        return true;
    }
    bool mode_admits = in->mode == BR_QM_OPEN;
#ifdef BR_PLANT_PAUSE_LEAK
    mode_admits = mode_admits || in->mode == BR_QM_PAUSED; /* planted: see br_queue_admit */
#endif
    if (!in->shuffled || in->waiting == 0 || in->active >= in->max_active_live || !mode_admits) {
        return false;
    }
    bool seats_gate = (in->flags & BR_QF_INVENTORY_AWARE) && (in->sold_out || in->avail == 0);
#ifdef BR_PLANT_ADMIT_NO_SEATS
    seats_gate = false; /* planted: see br_queue_admit */
#endif
    if (seats_gate) {
        return false;
    }
    if (in->admit_per_min == 0) {
        return true;
    }
    int64_t dt = now_ms - in->pace_last_ms;
    if (dt < 0) {
        dt = 0;
    }
    /* credit + dt * apm >= 60000, without overflow: dt is at most 2^53 and apm 600000 */
    if (in->pace_credit >= 60000) {
        return true;
    }
    if (dt >= 60000) {
        return true; /* apm >= 1 */
    }
    return in->pace_credit + dt * (int64_t)in->admit_per_min >= 60000;
}

/* ---- views ---- */

int br_queue_event_view(const struct br_engine *e, uint64_t event_id, int64_t now_ms,
                        uint32_t tick_ms, struct br_queue_event_view *v)
{
    memset(v, 0, sizeof *v);
    v->join_now.wait_s = UINT32_MAX;
    const struct br_event *ev = br_catalog_event(e, event_id);
    if (ev == NULL) {
        return BR_E_NOT_FOUND;
    }
    v->mode = ev->q_mode;
    v->gate = br_queue_gate(ev, now_ms);
    v->pow_bits = ev->spec.pow_bits;
    v->sold_out = v->gate == BR_GATE_SOLD_OUT;
    v->queue_length = ev->q_waiting;
    v->max_active = ev->q_max_active;
    v->admit_per_min = ev->q_admit_per_min;
    v->presence_ttl_s = ev->spec.presence_ttl_s;
    uint32_t pos = ev->q_waiting == UINT32_MAX ? UINT32_MAX : ev->q_waiting + 1;
    br_queue_estimate(&ev->spec, ev->q_admit_per_min, &ev->q_rate, v->gate, pos, tick_ms, now_ms,
                      &v->join_now);
    return BR_OK;
}

const char *br_queue_mode_name(uint8_t mode)
{
#define BR_QM_NAME(sym, val, name) [val] = name,
    static const char *const names[BR_QUEUE_MODE_COUNT] = {BR_QUEUE_MODE_MAP(BR_QM_NAME)};
#undef BR_QM_NAME
    return mode < BR_QUEUE_MODE_COUNT ? names[mode] : "unknown";
}

const char *br_queue_gate_name(uint8_t gate)
{
#define BR_GATE_NAME(sym, val, name) [val] = name,
    static const char *const names[BR_QUEUE_GATE_COUNT] = {BR_QUEUE_GATE_MAP(BR_GATE_NAME)};
#undef BR_GATE_NAME
    return gate < BR_QUEUE_GATE_COUNT ? names[gate] : "unknown";
}

uint8_t br_queue_mode_parse(const char *name)
{
    for (uint8_t m = 0; m < BR_QUEUE_MODE_COUNT; m++) {
        const char *a = name, *b = br_queue_mode_name(m);
        while (*a != '\0' && *a == *b) { /* no libc here: core_purity */
            a++;
            b++;
        }
        if (*a == *b) {
            return m;
        }
    }
    return BR_QUEUE_MODE_COUNT;
}
