/*
 * queue.c -- waiting rooms and passes (see queue.h for the design).
 */
#include "queue.h"

#include <string.h>

#include "engine.h"
#include "panic.h"
#include "rng.h"


/* ---- Fenwick tree over an event's slot range: counts waiting slots ---- */

static void fen_add(struct br_engine *e, const struct br_event *ev, uint32_t rel, int delta)
{
    uint32_t cap = ev->spec.queue_capacity;
    uint32_t *t = e->fenwick + ev->q_base;
    for (uint32_t k = rel + 1; k <= cap; k += k & (~k + 1)) {
        t[k - 1] = (uint32_t)((int64_t)t[k - 1] + delta);
    }
}

/* Waiting slots among [0, rel]. */
static uint32_t fen_sum(const struct br_engine *e, const struct br_event *ev, uint32_t rel)
{
    const uint32_t *t = e->fenwick + ev->q_base;
    uint32_t s = 0;
    for (uint32_t k = rel + 1; k > 0; k -= k & (~k + 1)) {
        s += t[k - 1];
    }
    return s;
}

/* Rebuilds the tree from the slots in O(capacity). */
static void fen_rebuild(struct br_engine *e, const struct br_event *ev)
{
    uint32_t cap = ev->spec.queue_capacity;
    uint32_t *t = e->fenwick + ev->q_base;
    const uint32_t *slots = e->slots + ev->q_base;
    for (uint32_t i = 0; i < cap; i++) {
        t[i] = slots[i] != 0;
    }
    for (uint32_t k = 1; k <= cap; k++) {
        uint32_t parent = k + (k & (~k + 1));
        if (parent <= cap) {
            t[parent - 1] += t[k - 1];
        }
    }
}

/* ---- members ---- */

uint32_t br_queue_member_find(const struct br_engine *e, uint64_t event_id, uint64_t user_id)
{
    uint32_t idx;
    return br_map_get(&e->members_by_key, event_id, user_id, &idx) ? idx : UINT32_MAX;
}

uint32_t br_queue_member(struct br_engine *e, uint64_t event_id, uint64_t user_id)
{
    uint32_t idx = br_queue_member_find(e, event_id, user_id);
    if (idx != UINT32_MAX) {
        return idx;
    }
    if (e->member_count >= e->cfg.members_max) {
        return UINT32_MAX;
    }
    idx = e->member_count++;
    int rc = br_map_put(&e->members_by_key, event_id, user_id, idx);
    BR_ASSERT(rc == BR_OK);
    struct br_member *m = &e->members[idx];
    memset(m, 0, sizeof *m);
    m->event_id = event_id;
    m->user_id = user_id;
    m->status = BR_QS_NONE;
    return idx;
}

/* ---- passes ---- */

static void pass_expire(struct br_engine *e, struct br_event *ev, uint32_t pi)
{
    struct br_pass *p = &e->passes[pi];
    BR_ASSERT(p->state == BR_PASS_LIVE);
    br_heap_remove(&ev->pass_heap, pi);
    p->state = BR_PASS_EXPIRED;
    BR_ASSERT(ev->passes_active > 0);
    ev->passes_active--;
    struct br_member *m = &e->members[p->member];
    if (m->pass_id == p->id && m->status == BR_QS_ADMITTED) {
        m->status = BR_QS_EXPIRED;
    }
    struct br_effect *fx = br_engine_emit(e, BR_FX_PASS_EXPIRED);
    fx->event_id = ev->id;
    fx->user_id = m->user_id;
    fx->id = p->id;
    fx->deadline_ms = p->deadline_ms;
}

int br_queue_pass_validate(const struct br_engine *e, uint64_t pass_id, uint32_t member,
                           int64_t now_ms, uint32_t *pass_index)
{
    uint32_t pi;
    if (pass_id == 0 || !br_map_get(&e->passes_by_id, pass_id, 0, &pi)) {
        return BR_E_PASS_INVALID;
    }
    const struct br_pass *p = &e->passes[pi];
    if (p->member != member || p->state == BR_PASS_USED) {
        return BR_E_PASS_INVALID;
    }
    if (p->state == BR_PASS_EXPIRED || br_lapsed(p->deadline_ms, now_ms)) {
        return BR_E_PASS_EXPIRED;
    }
    *pass_index = pi;
    return BR_OK;
}

void br_queue_pass_consume(struct br_engine *e, uint32_t pi)
{
    struct br_pass *p = &e->passes[pi];
    struct br_member *m = &e->members[p->member];
    struct br_event *ev = br_catalog_event(e, m->event_id);
    BR_ASSERT(p->state == BR_PASS_LIVE && ev != NULL);
    br_heap_remove(&ev->pass_heap, pi);
    p->state = BR_PASS_USED;
    BR_ASSERT(ev->passes_active > 0);
    ev->passes_active--;
    if (m->pass_id == p->id) {
        m->status = BR_QS_USED;
    }
}

/* ---- the opening shuffle ---- */

void br_queue_open_if_due(struct br_engine *e, uint64_t event_id, int64_t now_ms)
{
    struct br_event *ev = br_catalog_event(e, event_id);
    BR_ASSERT(ev != NULL);
    if (ev->q_shuffled || now_ms < ev->spec.sale_opens_at_ms) {
        return;
    }
    /* Fisher-Yates over the pre-queue prefix, drawn from (seed, event id)
     * only: the permutation is a function of the seed and the number of
     * pre-queue slots, never of arrival times. */
    struct br_rng r;
    br_rng_seed(&r, e->cfg.seed, BR_SHUFFLE_STREAM ^ event_id);
    uint32_t *s = e->slots + ev->q_base;
    uint32_t n = ev->q_prequeue_end;
    for (uint32_t i = n; i > 1; i--) {
        uint32_t j = (uint32_t)br_rng_below(&r, i);
#ifdef BR_PLANT_UNFAIR_SHUFFLE
        j = i - 1; /* planted: no shuffle at all, arrival order is kept */
#endif
        uint32_t t = s[i - 1];
        s[i - 1] = s[j];
        s[j] = t;
    }
    for (uint32_t i = 0; i < n; i++) {
        if (s[i] != 0) {
            struct br_member *m = &e->members[s[i] - 1];
            BR_ASSERT(m->status == BR_QS_PREQUEUE);
            m->slot = ev->q_base + i + 1;
            m->status = BR_QS_WAITING;
        }
    }
    fen_rebuild(e, ev);
    ev->q_shuffled = true;
}

/* ---- commands ---- */

static void fill_position(const struct br_engine *e, const struct br_event *ev,
                          const struct br_member *m, struct br_outcome *out)
{
    out->status = m->status;
    out->queue_length = ev->q_waiting;
    if (m->status == BR_QS_WAITING) {
        out->position = fen_sum(e, ev, m->slot - 1 - ev->q_base);
    }
    if (m->status == BR_QS_ADMITTED) {
        uint32_t pi;
        int found = br_map_get(&e->passes_by_id, m->pass_id, 0, &pi);
        BR_ASSERT(found);
        out->ref = m->pass_id;
        out->deadline_ms = e->passes[pi].deadline_ms;
    }
}

/* Whether a join by member mi (UINT32_MAX = none) keeps a place it holds:
 * pre-queued, waiting, or admitted with a pass still live at now. */
static bool keeps_place(const struct br_engine *e, uint32_t mi, int64_t now_ms)
{
    if (mi == UINT32_MAX) {
        return false;
    }
    const struct br_member *m = &e->members[mi];
    if (m->status == BR_QS_PREQUEUE || m->status == BR_QS_WAITING) {
        return true;
    }
    if (m->status != BR_QS_ADMITTED) {
        return false;
    }
    uint32_t pi;
    int found = br_map_get(&e->passes_by_id, m->pass_id, 0, &pi);
    BR_ASSERT(found);
    return !br_lapsed(e->passes[pi].deadline_ms, now_ms);
}

/* A successful join is a sign of life, recorded only while presence is on. */
static void join_seen(const struct br_event *ev, struct br_member *m, int64_t now_ms)
{
    if (ev->spec.presence_ttl_s > 0) {
        m->seen_ms = now_ms;
    }
}

int br_queue_join(struct br_engine *e, const struct br_cmd *c, struct br_outcome *out)
{
    struct br_event *ev = br_catalog_event(e, c->u.queue_join.event_id);
    if (ev == NULL) {
        return out->err = BR_E_NOT_FOUND;
    }
    if (br_catalog_user(e, c->user_id) == NULL) {
        return out->err = BR_E_UNAUTHORIZED;
    }
    br_queue_open_if_due(e, ev->id, c->now_ms);
    uint32_t known = br_queue_member_find(e, ev->id, c->user_id);
    if (!keeps_place(e, known, c->now_ms)) {
        /* A join that would take a new place meets the gate first: a
         * refusal (or a passthrough answer) changes no state. */
        uint8_t gate = br_queue_gate(ev, c->now_ms);
        if (gate == BR_GATE_CLOSED) {
            return out->err = BR_E_QUEUE_CLOSED;
        }
        if (gate == BR_GATE_SOLD_OUT) {
            return out->err = BR_E_SOLD_OUT;
        }
        if (gate == BR_GATE_PASSTHROUGH) {
            out->id = ev->id;
            out->status = BR_QS_PASSTHROUGH;
            out->queue_length = ev->q_waiting;
            return out->err = BR_OK;
        }
    }
    if (ev->q_tail >= ev->spec.queue_capacity && known == UINT32_MAX) {
        /* A newcomer to a full queue: refuse before creating the (event,
         * user) record, so the refusal changes no state (engine.h). */
        return out->err = BR_E_FULL;
    }
    uint32_t mi = br_queue_member(e, ev->id, c->user_id);
    if (mi == UINT32_MAX) {
        return out->err = BR_E_FULL;
    }
    struct br_member *m = &e->members[mi];
    out->id = ev->id;
    if (m->status == BR_QS_ADMITTED) {
        uint32_t pi;
        int found = br_map_get(&e->passes_by_id, m->pass_id, 0, &pi);
        BR_ASSERT(found);
        if (br_lapsed(e->passes[pi].deadline_ms, c->now_ms)) {
            if (ev->q_tail >= ev->spec.queue_capacity) {
                /* The re-join needs a new place and there is none: refuse
                 * before touching the pass, so the refusal changes no state
                 * and the pass_expired effect is not lost with it; the
                 * admitter collects the pass. */
                return out->err = BR_E_FULL;
            }
            pass_expire(e, ev, pi); /* lapsed but not yet collected: collect it now */
        }
    }
    if (m->status == BR_QS_PREQUEUE || m->status == BR_QS_WAITING || m->status == BR_QS_ADMITTED) {
        join_seen(ev, m, c->now_ms);
        fill_position(e, ev, m, out); /* a re-join keeps the place */
        return out->err = BR_OK;
    }
    if (ev->q_tail >= ev->spec.queue_capacity) {
        return out->err = BR_E_FULL;
    }
    uint32_t rel = ev->q_tail++;
    e->slots[ev->q_base + rel] = mi + 1;
    fen_add(e, ev, rel, 1);
    ev->q_waiting++;
    m->slot = ev->q_base + rel + 1;
    if (ev->q_shuffled) {
        m->status = BR_QS_WAITING;
    } else {
        m->status = BR_QS_PREQUEUE;
        ev->q_prequeue_end = ev->q_tail;
    }
    join_seen(ev, m, c->now_ms);
    fill_position(e, ev, m, out);
    return out->err = BR_OK;
}

int br_queue_leave(struct br_engine *e, const struct br_cmd *c, struct br_outcome *out)
{
    struct br_event *ev = br_catalog_event(e, c->u.queue_leave.event_id);
    if (ev == NULL) {
        return out->err = BR_E_NOT_FOUND;
    }
    uint32_t mi = br_queue_member_find(e, ev->id, c->user_id);
    if (mi == UINT32_MAX) {
        return out->err = BR_E_NOT_IN_QUEUE;
    }
    br_queue_open_if_due(e, ev->id, c->now_ms);
    struct br_member *m = &e->members[mi];
    out->id = ev->id;
    if (m->status == BR_QS_PREQUEUE || m->status == BR_QS_WAITING) {
        uint32_t rel = m->slot - 1 - ev->q_base;
        e->slots[m->slot - 1] = 0;
        fen_add(e, ev, rel, -1);
        ev->q_waiting--;
        m->slot = 0;
    } else if (m->status == BR_QS_ADMITTED) {
        uint32_t pi;
        int found = br_map_get(&e->passes_by_id, m->pass_id, 0, &pi);
        BR_ASSERT(found);
        pass_expire(e, ev, pi); /* giving the pass back frees its active slot now */
    } else {
        return out->err = BR_E_NOT_IN_QUEUE;
    }
    m->status = BR_QS_LEFT;
    out->status = m->status;
    out->queue_length = ev->q_waiting;
    return out->err = BR_OK;
}

int br_queue_admit(struct br_engine *e, const struct br_cmd *c, struct br_outcome *out)
{
    if (c->user_id != 0) {
        return out->err = BR_E_FORBIDDEN;
    }
    struct br_event *ev = br_catalog_event(e, c->u.admit.event_id);
    if (ev == NULL) {
        return out->err = BR_E_NOT_FOUND;
    }
    br_queue_open_if_due(e, ev->id, c->now_ms);
    out->id = ev->id;
    /* 1. Expire lapsed passes, each returning its place in max_active. */
    for (uint32_t n = 0; n < BR_PASS_EXPIRE_MAX; n++) {
        const struct br_heap_node *top = br_heap_top(&ev->pass_heap);
        if (top == NULL || !br_lapsed(top->deadline_ms, c->now_ms)) {
            break;
        }
        pass_expire(e, ev, top->item);
    }
    /* 2. Admit from the head, nobody before the opening. */
    if (!ev->q_shuffled) {
        out->queue_length = ev->q_waiting;
        return out->err = BR_OK;
    }
    /* 3. Pacing: credit accrues at apm per minute, in 1/60000 admissions. */
    uint32_t apm = ev->q_admit_per_min;
    if (apm > 0) {
        int64_t dt = c->now_ms - ev->q_pace_last_ms;
        int64_t cap = (int64_t)apm * BR_PACE_BURST_MS;
        cap = cap < 60000 ? 60000 : cap;
        /* dt * apm overflows nothing below the cap: clamp dt first */
        int64_t add = dt <= 0 ? 0 : dt >= cap ? cap : dt * (int64_t)apm;
        int64_t credit = ev->q_pace_credit + (add > cap ? cap : add);
        ev->q_pace_credit = credit > cap ? cap : credit;
        ev->q_pace_last_ms = c->now_ms;
    }
    /* 4. Announce a change of the inventory gate, once, before any pass. */
    uint8_t gate = br_queue_gate(ev, c->now_ms);
    uint8_t inv = br_queue_inv_gate(ev);
    if (inv != ev->q_gate_told) {
        struct br_effect *fx = br_engine_emit(e, BR_FX_QUEUE_STATE);
        fx->event_id = ev->id;
        fx->id = gate;
        fx->ref = ev->q_mode;
        ev->q_gate_told = inv;
    }
    bool admits = gate == BR_GATE_OPEN;
#ifdef BR_PLANT_PAUSE_LEAK
    admits = admits || gate == BR_GATE_PAUSED; /* planted (sim M1): paused still admits */
#endif
#ifdef BR_PLANT_ADMIT_NO_SEATS
    admits = admits || gate == BR_GATE_SEATS_HELD; /* planted (sim I1): no inventory gate */
#endif
    /* 5. Nobody while the gate is shut. */
    if (!admits) {
        out->queue_length = ev->q_waiting;
        return out->err = BR_OK;
    }
    /* 6. How many: room under the live max_active, the tick's share, the pace
     * credit, and (inventory-aware) the seats available now. */
    uint32_t room = ev->q_max_active > ev->passes_active ? ev->q_max_active - ev->passes_active : 0;
    uint32_t want = room < ev->spec.admit_per_tick ? room : ev->spec.admit_per_tick;
    if (apm > 0) {
        int64_t paced = ev->q_pace_credit / 60000;
        want = paced < (int64_t)want ? (uint32_t)paced : want;
    }
#ifndef BR_PLANT_ADMIT_NO_SEATS
    if (ev->spec.queue_flags & BR_QF_INVENTORY_AWARE) {
        uint32_t avail = br_queue_seats_available(ev);
        want = avail < want ? avail : want;
    }
#endif
    uint32_t admitted = 0;
    uint32_t lapsed = 0;
    int64_t ttl_ms = (int64_t)ev->spec.presence_ttl_s * 1000;
#ifdef BR_PLANT_PRESENCE_UNIT
    ttl_ms = ev->spec.presence_ttl_s; /* planted (sim S4): seconds taken for ms */
#endif
#ifdef BR_PLANT_ADMIT_SWAP
    /* Planted (caught by 20-planted.sh S4, 79-rush-plant.sh PASS_ORDER): the first two waiting
     * slots swap before admitting; both stay filled, so the Fenwick counts and asserts hold. */
    uint32_t sw[2], nsw = 0;
    for (uint32_t i = ev->q_head; want > 0 && i < ev->q_tail && nsw < 2; i++)
        if (e->slots[ev->q_base + i] != 0) sw[nsw++] = ev->q_base + i;
    if (nsw == 2) {
        uint32_t t = e->slots[sw[0]]; e->slots[sw[0]] = e->slots[sw[1]]; e->slots[sw[1]] = t;
        e->members[e->slots[sw[0]] - 1].slot = sw[0] + 1; e->members[t - 1].slot = sw[1] + 1;
    }
#endif
    /* 7. Walk from the head, which only moves forward over emptied slots:
     * amortised O(1) per join. A member absent for presence_ttl at its turn
     * lapses instead of taking a pass (at most BR_LAPSE_SKIP_MAX an admit). */
    while (admitted < want && ev->q_head < ev->q_tail && e->pass_count < e->cfg.passes_max) {
        uint32_t abs = ev->q_base + ev->q_head;
        uint32_t slot = e->slots[abs];
        if (slot == 0) {
            ev->q_head++;
            continue;
        }
        struct br_member *m = &e->members[slot - 1];
        BR_ASSERT(m->status == BR_QS_WAITING && m->slot == abs + 1);
        if (ttl_ms > 0 && c->now_ms - m->seen_ms >= ttl_ms) {
            if (lapsed >= BR_LAPSE_SKIP_MAX) {
                break;
            }
            e->slots[abs] = 0;
            fen_add(e, ev, ev->q_head, -1);
            ev->q_waiting--;
            ev->q_head++;
            m->slot = 0;
            m->status = BR_QS_LAPSED;
            ev->q_lapsed++;
            lapsed++;
            struct br_effect *fx = br_engine_emit(e, BR_FX_PLACE_LAPSED);
            fx->event_id = ev->id;
            fx->user_id = m->user_id;
            fx->deadline_ms = m->seen_ms + ttl_ms;
            continue;
        }
        e->slots[abs] = 0;
        fen_add(e, ev, ev->q_head, -1);
        ev->q_waiting--;
        ev->q_head++;
        uint32_t pi = e->pass_count++;
        struct br_pass *p = &e->passes[pi];
        p->id = ((uint64_t)ev->id << 32) | ++ev->pass_seq;
        p->member = slot - 1;
        p->issued_ms = c->now_ms;
        p->deadline_ms = c->now_ms + ev->spec.pass_ttl_ms;
        p->state = BR_PASS_LIVE;
        int rc = br_map_put(&e->passes_by_id, p->id, 0, pi);
        BR_ASSERT(rc == BR_OK);
        rc = br_heap_push(&ev->pass_heap, pi, p->deadline_ms, p->id);
        BR_ASSERT(rc == BR_OK); /* live passes <= spec.max_active = heap capacity */
        m->slot = 0;
        m->status = BR_QS_ADMITTED;
        m->pass_id = p->id;
        ev->passes_active++;
        ev->passes_issued++;
        admitted++;
        if (apm > 0) {
            ev->q_pace_credit -= 60000;
        }
        struct br_effect *fx = br_engine_emit(e, BR_FX_PASS_ISSUED);
        fx->event_id = ev->id;
        fx->user_id = m->user_id;
        fx->id = p->id;
        fx->deadline_ms = p->deadline_ms;
    }
    if (admitted > 0) {
        br_queue_rate_add(&ev->q_rate, c->now_ms, admitted);
    }
    out->count = admitted;
    out->ref = lapsed;
    out->queue_length = ev->q_waiting;
    return out->err = BR_OK;
}

int br_queue_view(const struct br_engine *e, uint64_t event_id, uint64_t user_id,
                  struct br_queue_view *v)
{
    memset(v, 0, sizeof *v);
    const struct br_event *ev = br_catalog_event(e, event_id);
    if (ev == NULL) {
        return BR_E_NOT_FOUND;
    }
    v->queue_length = ev->q_waiting;
    uint32_t mi = br_queue_member_find(e, event_id, user_id);
    if (mi == UINT32_MAX) {
        return BR_E_NOT_IN_QUEUE;
    }
    struct br_outcome o;
    memset(&o, 0, sizeof o);
    fill_position(e, ev, &e->members[mi], &o);
    if (o.status == BR_QS_PREQUEUE || o.status == BR_QS_WAITING) {
        /* The overlay: what a waiting member's wait is now bound to end in.
         * The position stays, so a reopened queue shows it again. */
        if ((ev->spec.queue_flags & BR_QF_INVENTORY_AWARE) && br_queue_sold_out(ev)) {
            o.status = BR_QS_SOLD_OUT;
        } else if (ev->q_mode == BR_QM_CLOSED) {
            o.status = BR_QS_CLOSED;
        } else if (ev->q_mode == BR_QM_PASSTHROUGH) {
            o.status = BR_QS_PASSTHROUGH;
        }
    }
    v->status = o.status;
    v->position = o.position;
    v->pass_id = o.ref;
    v->pass_deadline_ms = o.deadline_ms;
    return BR_OK;
}

void br_queue_check(const struct br_engine *e)
{
    uint64_t slots_total = 0;
    for (uint32_t i = 0; i < e->event_count; i++) {
        const struct br_event *ev = &e->events[i];
        BR_ASSERT(ev->q_tail <= ev->spec.queue_capacity);
        BR_ASSERT(ev->q_head <= ev->q_tail);
        BR_ASSERT(ev->passes_active <= ev->spec.max_active);
        BR_ASSERT(ev->passes_active == ev->pass_heap.count);
        br_heap_check(&ev->pass_heap);
        slots_total += ev->spec.queue_capacity;
        uint32_t waiting = 0;
        for (uint32_t r = 0; r < ev->q_tail; r++) {
            uint32_t s = e->slots[ev->q_base + r];
            if (s == 0) {
                continue;
            }
            BR_ASSERT(r >= ev->q_head);
            const struct br_member *m = &e->members[s - 1];
            BR_ASSERT(m->event_id == ev->id && m->slot == ev->q_base + r + 1);
            BR_ASSERT(m->status == (ev->q_shuffled ? BR_QS_WAITING : BR_QS_PREQUEUE));
            waiting++;
            BR_ASSERT(fen_sum(e, ev, r) == waiting);
        }
        BR_ASSERT(waiting == ev->q_waiting);
        for (uint32_t h = 0; h < ev->pass_heap.count; h++) {
            const struct br_pass *p = &e->passes[ev->pass_heap.nodes[h].item];
            BR_ASSERT(p->state == BR_PASS_LIVE);
            BR_ASSERT(e->members[p->member].event_id == ev->id);
        }
    }
    BR_ASSERT(slots_total == e->slots_used && e->slots_used <= e->cfg.queue_slots_max);
    uint32_t live_total = 0;
    for (uint32_t pi = 0; pi < e->pass_count; pi++) {
        const struct br_pass *p = &e->passes[pi];
        live_total += p->state == BR_PASS_LIVE;
        BR_ASSERT((p->state == BR_PASS_LIVE) == (e->pass_pos[pi] != BR_HEAP_NOWHERE));
        const struct br_member *m = &e->members[p->member];
        if (m->pass_id == p->id && p->state == BR_PASS_LIVE) {
            BR_ASSERT(m->status == BR_QS_ADMITTED);
        }
    }
    uint32_t active_total = 0;
    for (uint32_t i = 0; i < e->event_count; i++) {
        active_total += e->events[i].passes_active;
    }
    BR_ASSERT(live_total == active_total);
    for (uint32_t mi = 0; mi < e->member_count; mi++) {
        const struct br_member *m = &e->members[mi];
        BR_ASSERT((m->slot != 0) == (m->status == BR_QS_PREQUEUE || m->status == BR_QS_WAITING));
    }
}

uint32_t br_queue_wait_estimate_s(const struct br_event_spec *spec, uint32_t position,
                                  uint32_t tick_ms, int64_t now_ms)
{
    BR_ASSERT(spec->admit_per_tick >= 1 && tick_ms > 0);
    uint64_t ticks = ((uint64_t)position + spec->admit_per_tick - 1) / spec->admit_per_tick;
    uint64_t ms = ticks * tick_ms;
    if (now_ms < spec->sale_opens_at_ms) {
        ms += (uint64_t)(spec->sale_opens_at_ms - now_ms);
    }
    uint64_t s = (ms + 999) / 1000;
    return s > UINT32_MAX ? UINT32_MAX : (uint32_t)s;
}
