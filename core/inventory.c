/*
 * inventory.c -- holds, the per-user limit and idempotency keys (see
 * inventory.h for the order of checks, which the Lua twin repeats).
 */
#include "inventory.h"

#include <string.h>

#include "engine.h"
#include "hash.h"
#include "panic.h"

struct br_hold *br_inventory_hold(const struct br_engine *e, uint64_t hold_id)
{
    uint32_t hi;
    return br_map_get(&e->holds_by_id, hold_id, 0, &hi) ? &e->holds[hi] : NULL;
}

static uint32_t hold_index(const struct br_engine *e, const struct br_hold *h)
{
    return (uint32_t)(h - e->holds);
}

static void set_state(struct br_event *ev, struct br_hold *h, uint8_t state)
{
    BR_ASSERT(ev->bookings[h->state] > 0);
    ev->bookings[h->state]--;
    ev->bookings[state]++;
    h->state = state;
}

/* Takes a live hold's seats out of `held` and its tickets off the member. */
static void release(struct br_engine *e, struct br_event *ev, struct br_hold *h)
{
    BR_ASSERT(h->state == BR_HOLD_HELD);
    br_heap_remove(&ev->hold_heap, hold_index(e, h));
    BR_ASSERT(ev->zone_held[h->zone_id - 1] >= h->quantity);
    ev->zone_held[h->zone_id - 1] -= h->quantity;
    struct br_member *m = &e->members[h->member];
    BR_ASSERT(m->tickets >= h->quantity);
    m->tickets -= h->quantity;
}

void br_inventory_expire(struct br_engine *e, struct br_hold *h)
{
    struct br_event *ev = br_catalog_event(e, h->event_id);
    release(e, ev, h);
    set_state(ev, h, BR_HOLD_EXPIRED);
    struct br_effect *fx = br_engine_emit(e, BR_FX_BOOKING_EXPIRED);
    fx->event_id = h->event_id;
    fx->user_id = h->user_id;
    fx->id = h->id;
    fx->deadline_ms = h->deadline_ms;
}

void br_inventory_confirm(struct br_engine *e, struct br_hold *h, uint64_t payment_id)
{
    struct br_event *ev = br_catalog_event(e, h->event_id);
    BR_ASSERT(h->state == BR_HOLD_HELD && h->confirmed_by == 0);
    br_heap_remove(&ev->hold_heap, hold_index(e, h));
    ev->zone_held[h->zone_id - 1] -= h->quantity;
    ev->zone_sold[h->zone_id - 1] += h->quantity;
    set_state(ev, h, BR_HOLD_CONFIRMED);
    h->confirmed_by = payment_id;
    struct br_effect *fx = br_engine_emit(e, BR_FX_BOOKING_CONFIRMED);
    fx->event_id = h->event_id;
    fx->user_id = h->user_id;
    fx->id = h->id;
    fx->ref = payment_id;
    fx->amount_minor = h->amount_minor;
}

static void fill_hold(const struct br_hold *h, struct br_outcome *out)
{
    out->id = h->id;
    out->ref = h->pass_id;
    out->status = h->state;
    out->deadline_ms = h->deadline_ms;
    out->amount_minor = h->amount_minor;
    out->count = h->quantity;
}

/* The checks and the claim, without the idempotency record. */
static int reserve(struct br_engine *e, struct br_event *ev, const struct br_cmd *c,
                   struct br_outcome *out)
{
    uint32_t zi = c->u.reserve.zone_id - 1;
    uint32_t qty = c->u.reserve.quantity;
    if (c->now_ms < ev->spec.sale_opens_at_ms) {
        return BR_E_SALE_NOT_OPEN;
    }
    /* The (event, user) record is created only together with the hold: a
     * refused reserve changes no state (engine.h), so refusals cannot use up
     * the member table. Without a record the user has no pass (validation
     * answers PASS_INVALID) and no tickets. */
    uint32_t mi = br_queue_member_find(e, ev->id, c->user_id);
    uint32_t pi = UINT32_MAX;
#ifndef BR_PLANT_SKIP_PASS
    /* Passthrough (queue_mode_set): no queue, so no pass is needed, and one
     * given is neither checked nor consumed. */
    if (ev->spec.requires_pass && ev->q_mode != BR_QM_PASSTHROUGH) {
        if (c->u.reserve.pass_id == 0) {
            return BR_E_PASS_REQUIRED;
        }
        int rc = br_queue_pass_validate(e, c->u.reserve.pass_id, mi, c->now_ms, &pi);
        if (rc != BR_OK) {
            return rc;
        }
    }
#endif
#ifndef BR_PLANT_SKIP_LIMIT
    uint32_t tickets = mi == UINT32_MAX ? 0 : e->members[mi].tickets;
    if ((uint64_t)tickets + qty > ev->spec.per_user_limit) {
        return BR_E_LIMIT_EXCEEDED;
    }
#endif
    uint32_t cap = ev->spec.zones[zi].capacity;
    BR_ASSERT(ev->zone_held[zi] + ev->zone_sold[zi] <= cap);
    if (cap - ev->zone_held[zi] - ev->zone_sold[zi] < qty) {
        return BR_E_SOLD_OUT;
    }
    if (e->hold_count >= e->cfg.holds_max) {
        return BR_E_FULL;
    }
    if (mi == UINT32_MAX) {
        mi = br_queue_member(e, ev->id, c->user_id);
        if (mi == UINT32_MAX) {
            return BR_E_FULL;
        }
    }
    struct br_member *m = &e->members[mi];
    uint32_t hi = e->hold_count++;
    struct br_hold *h = &e->holds[hi];
    memset(h, 0, sizeof *h);
    h->id = ((uint64_t)ev->id << 32) | ++ev->hold_seq;
    h->event_id = ev->id;
    h->user_id = c->user_id;
    h->member = mi;
    h->zone_id = zi + 1;
    h->quantity = qty;
    h->state = BR_HOLD_HELD;
    h->created_ms = c->now_ms;
    h->deadline_ms = c->now_ms + ev->spec.hold_ttl_ms;
    h->amount_minor = ev->spec.zones[zi].price_minor * qty;
    int rc = br_map_put(&e->holds_by_id, h->id, 0, hi);
    BR_ASSERT(rc == BR_OK);
    rc = br_heap_push(&ev->hold_heap, hi, h->deadline_ms, h->id);
    BR_ASSERT(rc == BR_OK); /* live holds <= seats = heap capacity */
    ev->zone_held[zi] += qty;
    m->tickets += qty;
    ev->bookings[BR_HOLD_HELD]++;
    if (pi != UINT32_MAX) {
        h->pass_id = c->u.reserve.pass_id;
        br_queue_pass_consume(e, pi);
    }
    struct br_user *u = br_catalog_user(e, c->user_id);
    h->next_of_user = u->holds_head;
    u->holds_head = hi + 1;
    fill_hold(h, out);
    return BR_OK;
}

int br_inventory_reserve(struct br_engine *e, const struct br_cmd *c, struct br_outcome *out)
{
    struct br_event *ev = br_catalog_event(e, c->u.reserve.event_id);
    if (ev == NULL || c->u.reserve.zone_id < 1 || c->u.reserve.zone_id > ev->spec.zone_count) {
        return out->err = BR_E_NOT_FOUND;
    }
    if (br_catalog_user(e, c->user_id) == NULL) {
        return out->err = BR_E_UNAUTHORIZED;
    }
    if (c->u.reserve.quantity < 1 || c->u.reserve.quantity > BR_HOLD_QUANTITY_MAX) {
        return out->err = BR_E_INVALID;
    }
    uint64_t key = c->u.reserve.idem_key;
    uint64_t fp = br_hash_step(br_hash_step(br_hash_step(br_hash_step(0, ev->id),
                                                         c->u.reserve.zone_id),
                                            c->u.reserve.quantity),
                               c->u.reserve.pass_id);
    if (key != 0) {
        uint32_t ii;
        if (br_map_get(&e->idem_by_key, c->user_id, key, &ii)) {
            const struct br_idem *d = &e->idems[ii];
            if (d->fingerprint != fp) {
                return out->err = BR_E_IDEMPOTENCY_CONFLICT;
            }
            if (d->hold_id != 0) {
                fill_hold(br_inventory_hold(e, d->hold_id), out); /* current state, same hold */
            }
            return out->err = d->err;
        }
        if (e->idem_count >= e->cfg.idem_max) {
            return out->err = BR_E_FULL;
        }
    }
    int rc = reserve(e, ev, c, out);
    if (key != 0 && rc != BR_E_FULL) {
        /* Every definite answer is kept, failures included: the same key
         * always gets the same answer. A full table is not definite. */
        uint32_t ii = e->idem_count++;
        e->idems[ii].fingerprint = fp;
        e->idems[ii].err = rc;
        e->idems[ii].hold_id = rc == BR_OK ? out->id : 0;
        int put = br_map_put(&e->idem_by_key, c->user_id, key, ii);
        BR_ASSERT(put == BR_OK);
    }
    return out->err = rc;
}

int br_inventory_cancel(struct br_engine *e, const struct br_cmd *c, struct br_outcome *out)
{
    struct br_hold *h = br_inventory_hold(e, c->u.cancel.hold_id);
    if (h == NULL || h->user_id != c->user_id) {
        return out->err = BR_E_NOT_FOUND; /* another user's hold is not theirs to see */
    }
    if (h->state != BR_HOLD_HELD) {
        fill_hold(h, out);
        return out->err = BR_E_BOOKING_NOT_HELD;
    }
    if (br_lapsed(h->deadline_ms, c->now_ms)) {
        fill_hold(h, out);
        return out->err = BR_E_HOLD_EXPIRED; /* the sweep returns its seats */
    }
    struct br_event *ev = br_catalog_event(e, h->event_id);
    release(e, ev, h);
    set_state(ev, h, BR_HOLD_CANCELLED);
    struct br_effect *fx = br_engine_emit(e, BR_FX_NOTIFY);
    fx->event_id = h->event_id;
    fx->user_id = h->user_id;
    fx->id = h->id;
    fill_hold(h, out);
    return out->err = BR_OK;
}

int br_inventory_sweep(struct br_engine *e, const struct br_cmd *c, struct br_outcome *out)
{
    if (c->user_id != 0) {
        return out->err = BR_E_FORBIDDEN;
    }
    struct br_event *ev = br_catalog_event(e, c->u.sweep.event_id);
    if (ev == NULL) {
        return out->err = BR_E_NOT_FOUND;
    }
    if (c->u.sweep.max < 1 || c->u.sweep.max > BR_SWEEP_MAX) {
        return out->err = BR_E_INVALID;
    }
    uint32_t swept = 0;
    while (swept < c->u.sweep.max) {
        const struct br_heap_node *top = br_heap_top(&ev->hold_heap);
        if (top == NULL || !br_lapsed(top->deadline_ms, c->now_ms)) {
            break; /* live while now < deadline: expired exactly at the deadline */
        }
        struct br_hold *h = &e->holds[top->item];
        br_inventory_expire(e, h);
#ifdef BR_PLANT_DOUBLE_SWEEP
        /* planted: the seats of an expired hold come back a second time */
        uint32_t *held = &ev->zone_held[h->zone_id - 1];
        *held = *held >= h->quantity ? *held - h->quantity : 0;
#endif
        swept++;
    }
    out->id = ev->id;
    out->count = swept;
    return out->err = BR_OK;
}

void br_inventory_check(const struct br_engine *e)
{
    uint32_t *tickets = e->scratch;                       /* per member */
    uint32_t *zone = e->scratch + e->cfg.members_max;     /* held, sold per (event, zone) */
    memset(tickets, 0, sizeof(uint32_t) * e->member_count);
    memset(zone, 0, sizeof(uint32_t) * 2 * BR_EVENT_ZONES_MAX * e->event_count);
    for (uint32_t hi = 0; hi < e->hold_count; hi++) {
        const struct br_hold *h = &e->holds[hi];
        const struct br_event *ev = br_catalog_event(e, h->event_id);
        BR_ASSERT(ev != NULL && h->zone_id >= 1 && h->zone_id <= ev->spec.zone_count);
        BR_ASSERT(br_inventory_hold(e, h->id) == h);
        uint32_t *z = zone + 2 * (BR_EVENT_ZONES_MAX * (ev->id - 1) + h->zone_id - 1);
        bool live = h->state == BR_HOLD_HELD;
        BR_ASSERT(live == (e->hold_pos[hi] != BR_HEAP_NOWHERE));
        if (live) {
            z[0] += h->quantity;
        }
        if (h->state == BR_HOLD_CONFIRMED) {
            z[1] += h->quantity;
            BR_ASSERT(h->confirmed_by != 0);
        }
        if (live || h->state == BR_HOLD_CONFIRMED) {
            tickets[h->member] += h->quantity;
        }
        BR_ASSERT(h->amount_minor == ev->spec.zones[h->zone_id - 1].price_minor * h->quantity);
    }
    for (uint32_t i = 0; i < e->event_count; i++) {
        const struct br_event *ev = &e->events[i];
        br_heap_check(&ev->hold_heap);
        BR_ASSERT(ev->hold_heap.count == ev->bookings[BR_HOLD_HELD]);
        for (uint32_t zi = 0; zi < ev->spec.zone_count; zi++) {
            const uint32_t *z = zone + 2 * (BR_EVENT_ZONES_MAX * i + zi);
            BR_ASSERT(z[0] == ev->zone_held[zi]); /* S1/S7: seats held = live holds */
            BR_ASSERT(z[1] == ev->zone_sold[zi]);
            BR_ASSERT((uint64_t)z[0] + z[1] <= ev->spec.zones[zi].capacity); /* S1 */
        }
    }
    for (uint32_t mi = 0; mi < e->member_count; mi++) {
        const struct br_member *m = &e->members[mi];
        BR_ASSERT(tickets[mi] == m->tickets);
        const struct br_event *ev = br_catalog_event(e, m->event_id);
        BR_ASSERT(m->tickets <= ev->spec.per_user_limit); /* S3 */
    }
}
