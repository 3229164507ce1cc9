/*
 * auditor.c -- the invariant checker's own model of an on-sale (see
 * auditor.h for what each invariant checks).
 *
 * Model layout. Ids are (event << 32 | n) with n counting from 1 per event
 * (cmd.h), so passes, holds and payments live in per-event arrays indexed by
 * n - 1, and the auditor checks that the backend hands ids out in that
 * order. Members (event, user) live in a per-event array indexed by user id.
 * Each event's queue is a list of places in join order with a Fenwick tree
 * of the places still waiting, so "how many earlier joiners still wait" is
 * O(log n). Places [0, pre_end) were taken before the opening: the pre-queue,
 * whose order the opening shuffle redraws, so any of them may be admitted
 * first, but all of them before any later joiner.
 *
 * Live holds also sit in a per-event min-heap by (deadline, n) with lazy
 * deletion (entries whose hold is no longer held are dropped when they reach
 * the top), which answers "is any hold past its deadline" in O(log n).
 *
 * Every check increments its invariant's check counter; a failed one is a
 * violation (the first is kept in full). The model is updated with what the
 * backend reported even after a violation, so one bug does not cascade into
 * many confusing reports.
 */
#include "sim/auditor.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/hash.h"
#include "core/panic.h"
#include "core/queue.h"

/* ---- model records ---- */

enum a_pass_state { AP_LIVE = 1, AP_USED = 2, AP_EXPIRED = 3 };
enum a_pay_state {
    AY_PENDING = 1,
    AY_FAILED = 2,
    AY_CONFIRMED = 3,
    AY_REFUND_PENDING = 4,
    AY_REFUNDED = 5
};

struct a_member {
    uint32_t place; /* place index + 1 while waiting (pre-queue or FIFO), else 0 */
    uint8_t status; /* enum br_queue_status, as the model has it */
    uint8_t exists; /* the backend has a member record (join, or reserve past opening) */
    uint8_t ever_joined;
    uint8_t pad;
    uint32_t tickets;  /* held + confirmed seats (S3) */
    uint32_t pass_n;   /* latest pass, 0 = none */
    int64_t joined_ms; /* when the current place was taken */
    int64_t seen_ms;   /* issue 13: last join or presence report (presence_ttl_s > 0), 0 = never */
};

struct a_pass {
    uint32_t user;
    uint8_t state; /* enum a_pass_state */
    int64_t deadline_ms;
};

struct a_hold {
    uint32_t user;
    uint8_t zone; /* 1-based */
    uint8_t qty;
    uint8_t state; /* enum br_hold_state */
    uint8_t pad;
    int64_t deadline_ms;
    int64_t amount_minor;
    uint32_t confirmed_by; /* payment n, 0 = none */
    uint32_t pass_n;
    uint32_t pay_n;   /* the booking's one payment (n), 0 = none yet (S5) */
    uint32_t charges; /* successful charges that took effect (S5: at most one) */
};

struct a_pay {
    uint32_t hold_n;
    uint8_t state;     /* enum a_pay_state */
    uint8_t succeeded; /* a success took effect */
    uint8_t checked;   /* point 8: created (or opened again) with check_ms > 0 */
    uint8_t closed;    /* point 8: a failure applied once its hold was gone: no more checks */
    int64_t amount_minor;
};

struct hnode {
    int64_t deadline_ms;
    uint32_t n; /* hold n */
};

struct a_event {
    uint64_t id;
    struct br_event_spec spec;
    uint32_t held[BR_EVENT_ZONES_MAX];
    uint32_t sold[BR_EVENT_ZONES_MAX];
    bool opened; /* the opening shuffle has run (model) */
    /* queue */
    uint32_t *place_user; /* place -> user id */
    uint32_t *fen;        /* Fenwick over places: 1 = waiting */
    uint32_t place_cap;   /* = spec.queue_capacity */
    uint32_t places;
    uint32_t pre_end; /* places taken before the opening */
    uint32_t waiting;
    uint32_t pre_waiting;
    uint32_t live_passes;
    /* shuffle check: pre-queue admissions in arrival order */
    uint32_t pre_admitted;
    uint32_t pre_in_order;
    uint32_t pre_last_place;
    bool shuffle_judged;
    /* members by user id */
    struct a_member *members;
    uint32_t member_cap;
    /* entities by n - 1 */
    struct a_pass *passes;
    uint32_t pass_count, pass_cap;
    struct a_hold *holds;
    uint32_t hold_count, hold_cap;
    struct a_pay *pays;
    uint32_t pay_count, pay_cap;
    /* live holds by deadline (lazy) */
    struct hnode *heap;
    uint32_t heap_count, heap_cap;
    uint32_t live_holds;
    uint8_t touched; /* zones touched in this step (bit z-1) */
    bool skip_pass, skip_hold, skip_pay; /* the next id of each may jump ahead (a repair) */
    /* Issue 13: the waiting room as the auditor's own model has it (WR-SPEC
     * §2-§8, re-stated here from the commands and effects, not the core's code). */
    uint8_t mode;          /* enum br_queue_mode */
    uint8_t told;          /* the inventory gate last announced (queue_state by an admit) */
    uint32_t max_live;     /* live max_active */
    uint32_t apm;          /* live admit_per_min */
    int64_t pace_credit;   /* ms x admissions/min; 60000 = one admission */
    int64_t pace_last_ms;
    int64_t sold_out_ms;   /* when every seat was first sold (model), -1 = not */
    int64_t told_sold_ms;  /* the first queue_state sold_out after that, -1 = none */
};

/* The first answer to (user, key): 40 bytes, one per fresh key (the
 * largest table of the model in a big sale). Event ids fit 32 bits
 * (BR_EVENT_ID_MAX), zones and quantities 8. */
struct idem_rec {
    uint64_t key;
    uint64_t pass_id;
    uint64_t hold_id;
    uint32_t user;
    uint32_t event_id;
    uint8_t zone_id;
    uint8_t quantity;
    int16_t err;
};

_Static_assert(sizeof(struct idem_rec) == 40, "an idempotency record stays 40 bytes");

struct br_auditor {
    struct br_config cfg;
    const struct br_sim_backend *backend;
    struct a_event *events;
    uint32_t event_count, event_cap;
    uint64_t users; /* registered users (ids 1..users) */
    /* idempotency: open addressing over idem_recs; slot = hash tag << 32 | index + 1 */
    uint64_t *idem_slots;
    uint32_t idem_mask;
    struct idem_rec *idem_recs;
    uint32_t idem_count, idem_cap;
    /* provider event ids that took effect: open addressing, 0 = empty */
    uint64_t *pev;
    uint32_t pev_mask;
    uint32_t pev_count;
    /* per-step context */
    uint64_t step;
    const struct br_cmd *cmd;
    struct a_event **touched; /* events whose zones this step touched, each once */
    uint32_t touched_count, touched_cap; /* cap >= event_count: every event fits */
    bool step_swept;
    /* results */
    uint64_t checks[BR_INV_COUNT];
    uint64_t violations[BR_INV_COUNT];
    struct br_violation first;
    bool has_first;
    struct br_audit_funnel funnel;
    int64_t charged, confirmed_value, refund_owed, refunded_done;
    uint64_t worst_inversion;
    uint32_t *waits; /* join-to-pass, ms (capped at 2^32-1) */
    uint64_t wait_count, wait_cap;
    struct br_audit_wr wr; /* issue 13 figures */
};

static const char *const inv_names[BR_INV_COUNT] = {"S1", "S2", "S3", "S4", "S5", "S6",
                                                    "S7", "S8", "S9", "L1", "I1", "M1"};
static const char *const inv_titles[BR_INV_COUNT] = {
    "no oversell: per zone sold + held <= capacity",
    "a confirmed hold never changes owner or state",
    "per-user limit over retries, duplicates and tabs",
    "fairness: passes in queue order; no seats without a pass",
    "exactly once: a webhook event takes effect once; one charge per booking",
    "a successful payment ends confirmed xor refunded",
    "expiry returns each expired hold's seats exactly once",
    "conservation: charges - refunds = value of confirmed bookings",
    "the same idempotency key gets the same answer",
    "liveness: queues drain, holds expire, sagas end, nothing owed",
    "inventory: no pass while no seat is available; a sold-out queue closes",
    "modes: no admission while paused, closed or passthrough; closed refuses joins; outflow "
    "within admit_per_min",
};

const char *br_inv_name(int inv)
{
    return inv >= 0 && inv < BR_INV_COUNT ? inv_names[inv] : "?";
}

const char *br_inv_title(int inv)
{
    return inv >= 0 && inv < BR_INV_COUNT ? inv_titles[inv] : "?";
}

/* ---- small helpers ---- */

/* The count an entity table must have before entity n is added: count, or
 * n - 1 when a repair's skip is pending and n jumps ahead (the entries in
 * between stay zeroed: state none, they never existed). Clears the skip. */
static uint32_t count_before(bool *skip_pending, uint32_t count, uint32_t n)
{
    bool jump = *skip_pending && n > count + 1;
    *skip_pending = false;
    return jump ? n - 1 : count;
}

static void *grow(void *p, uint32_t *cap, uint32_t need, size_t elem)
{
    if (need <= *cap) {
        return p;
    }
    uint64_t c = *cap ? *cap : 16;
    while (c < need) {
        c *= 2;
    }
    BR_ASSERT(c <= UINT32_MAX);
    void *q = realloc(p, (size_t)c * elem);
    if (q == NULL) {
        fprintf(stderr, "bookingrush: auditor: out of memory\n");
        abort();
    }
    memset((char *)q + (size_t)*cap * elem, 0, (size_t)(c - *cap) * elem);
    *cap = (uint32_t)c;
    return q;
}

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static bool check(struct br_auditor *a, int inv, bool ok)
{
    a->checks[inv]++;
    return ok;
}

/* Records a violation of inv with entities; msg is printf-style. */
static void violate(struct br_auditor *a, int inv, uint64_t event_id, uint64_t user_id,
                    uint64_t hold_id, uint64_t payment_id, uint64_t pass_id, const char *fmt, ...)
{
    a->violations[inv]++;
    if (a->has_first) {
        return;
    }
    a->has_first = true;
    struct br_violation *v = &a->first;
    v->inv = inv;
    v->step = a->step;
    v->now_ms = a->cmd ? a->cmd->now_ms : 0;
    v->cmd_type = a->cmd ? a->cmd->type : 0;
    v->event_id = event_id;
    v->user_id = user_id;
    v->hold_id = hold_id;
    v->payment_id = payment_id;
    v->pass_id = pass_id;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->msg, sizeof v->msg, fmt, ap);
    va_end(ap);
}

static uint64_t mkid(const struct a_event *ev, uint32_t n)
{
    return ev->id << 32 | n;
}

static struct a_event *event_of(struct br_auditor *a, uint64_t event_id)
{
    if (event_id == 0 || event_id > a->event_count) {
        return NULL;
    }
    return &a->events[event_id - 1];
}

/* The entity n of an id, 0 when the id is not of this form or unknown. */
static uint32_t id_n(const struct br_auditor *a, uint64_t id,
                     uint32_t count_of_event(const struct a_event *), struct a_event **evp)
{
    uint64_t eid = id >> 32;
    uint32_t n = (uint32_t)(id & 0xffffffffu);
    if (eid == 0 || eid > a->event_count || n == 0) {
        return 0;
    }
    struct a_event *ev = &a->events[eid - 1];
    if (n > count_of_event(ev)) {
        return 0;
    }
    *evp = ev;
    return n;
}

static uint32_t count_holds(const struct a_event *ev)
{
    return ev->hold_count;
}
static uint32_t count_pays(const struct a_event *ev)
{
    return ev->pay_count;
}
static uint32_t count_passes(const struct a_event *ev)
{
    return ev->pass_count;
}

/* ---- issue 13: the waiting room's own model ---- */

static bool ev_aware(const struct a_event *ev)
{
    return (ev->spec.queue_flags & BR_QF_INVENTORY_AWARE) != 0;
}

static int64_t ev_avail(const struct a_event *ev)
{
    int64_t n = 0;
    for (uint32_t z = 0; z < ev->spec.zone_count; z++) {
        n += (int64_t)ev->spec.zones[z].capacity - ev->held[z] - ev->sold[z];
    }
    return n;
}

static bool ev_sold_out(const struct a_event *ev)
{
    for (uint32_t z = 0; z < ev->spec.zone_count; z++) {
        if (ev->sold[z] != ev->spec.zones[z].capacity) {
            return false;
        }
    }
    return true;
}

/* The inventory part of the gate (WR-SPEC §2). */
static uint8_t ev_inv(const struct a_event *ev)
{
    if (!ev_aware(ev)) {
        return BR_GATE_OPEN;
    }
    return ev_sold_out(ev) ? BR_GATE_SOLD_OUT : ev_avail(ev) == 0 ? BR_GATE_SEATS_HELD : BR_GATE_OPEN;
}

/* The whole gate, first match wins (WR-SPEC §2). */
static uint8_t ev_gate(const struct a_event *ev, int64_t now_ms)
{
    if (ev->mode == BR_QM_CLOSED) {
        return BR_GATE_CLOSED;
    }
    if (ev->mode == BR_QM_PASSTHROUGH) {
        return BR_GATE_PASSTHROUGH;
    }
    if (ev_aware(ev) && ev_sold_out(ev)) {
        return BR_GATE_SOLD_OUT;
    }
    /* Not open: before the opening while the opening shuffle has not run.
     * A clock stepping back over the opening after the shuffle leaves the
     * sale open (the core's reading of rule 4, docs/DESIGN.md: admission
     * always did so, and old scenarios' runs must not change). */
    if (now_ms < ev->spec.sale_opens_at_ms && !ev->opened) {
        return BR_GATE_NOT_OPEN;
    }
    if (ev->mode == BR_QM_PAUSED) {
        return BR_GATE_PAUSED;
    }
    return ev_inv(ev) == BR_GATE_SEATS_HELD ? BR_GATE_SEATS_HELD : BR_GATE_OPEN;
}

static int64_t ttl_ms(const struct a_event *ev)
{
    return (int64_t)ev->spec.presence_ttl_s * 1000;
}

/* A member the model has not seen for presence_ttl (only with presence on). */
static bool absent(const struct a_event *ev, const struct a_member *m, int64_t now_ms)
{
    return ev->spec.presence_ttl_s > 0 && now_ms - m->seen_ms >= ttl_ms(ev);
}

static struct a_member *member(struct a_event *ev, uint64_t user_id)
{
    BR_ASSERT(user_id > 0 && user_id < UINT32_MAX);
    ev->members = grow(ev->members, &ev->member_cap, (uint32_t)user_id + 1, sizeof *ev->members);
    return &ev->members[user_id];
}

/* Lists ev for this step's zone cross-check. An event is listed once per
 * step (its touched bits are clear until then), so the list, sized with
 * the events, never runs out: every touched event is checked. */
static void touch(struct br_auditor *a, struct a_event *ev, uint32_t zone)
{
    BR_ASSERT(zone >= 1 && zone <= BR_EVENT_ZONES_MAX);
    if (ev->touched == 0) {
        BR_ASSERT(a->touched_count < a->touched_cap && a->touched_count < a->event_count);
        a->touched[a->touched_count++] = ev;
    }
    ev->touched |= (uint8_t)(1u << (zone - 1));
}

/* ---- Fenwick over places ---- */

static void fen_add(struct a_event *ev, uint32_t place, int delta)
{
    for (uint32_t k = place + 1; k <= ev->place_cap; k += k & (~k + 1)) {
        ev->fen[k - 1] = (uint32_t)((int64_t)ev->fen[k - 1] + delta);
    }
}

/* Waiting places among [0, place). */
static uint32_t fen_before(const struct a_event *ev, uint32_t place)
{
    uint32_t s = 0;
    for (uint32_t k = place; k > 0; k -= k & (~k + 1)) {
        s += ev->fen[k - 1];
    }
    return s;
}

/* ---- live-hold heap (lazy) ---- */

static bool hbefore(const struct hnode *x, const struct hnode *y)
{
    return x->deadline_ms < y->deadline_ms || (x->deadline_ms == y->deadline_ms && x->n < y->n);
}

static void heap_push(struct a_event *ev, int64_t deadline_ms, uint32_t n)
{
    ev->heap = grow(ev->heap, &ev->heap_cap, ev->heap_count + 1, sizeof *ev->heap);
    struct hnode v = {deadline_ms, n};
    uint32_t i = ev->heap_count++;
    while (i > 0 && hbefore(&v, &ev->heap[(i - 1) / 2])) {
        ev->heap[i] = ev->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    ev->heap[i] = v;
}

static void heap_pop(struct a_event *ev)
{
    struct hnode last = ev->heap[--ev->heap_count];
    uint32_t n = ev->heap_count, i = 0;
    for (;;) {
        uint32_t c = 2 * i + 1;
        if (c >= n) {
            break;
        }
        if (c + 1 < n && hbefore(&ev->heap[c + 1], &ev->heap[c])) {
            c++;
        }
        if (!hbefore(&ev->heap[c], &last)) {
            break;
        }
        ev->heap[i] = ev->heap[c];
        i = c;
    }
    if (n > 0) {
        ev->heap[i] = last;
    }
}

/* The live hold with the earliest deadline, NULL when none. Drops dead entries. */
static const struct hnode *heap_live_top(struct a_event *ev)
{
    while (ev->heap_count > 0) {
        const struct hnode *t = &ev->heap[0];
        if (ev->holds[t->n - 1].state == BR_HOLD_HELD) {
            return t;
        }
        heap_pop(ev);
    }
    return NULL;
}

/* ---- idempotency map ----
 * Open addressing; a slot holds the record's index + 1 in its low half and
 * 32 more bits of the hash in its high half, so a probe that meets another
 * key is almost always rejected without touching the record (a cache miss). */

static uint64_t idem_hash(uint64_t user, uint64_t key)
{
    return mix(user * 0x9e3779b97f4a7c15ULL ^ key);
}

static struct idem_rec *idem_find(struct br_auditor *a, uint64_t user, uint64_t key)
{
    if (a->idem_slots == NULL) {
        return NULL;
    }
    uint64_t h = idem_hash(user, key);
    uint32_t tag = (uint32_t)(h >> 32);
    /* Bounded: the table is at most half full, so an empty slot exists. */
    for (uint32_t i = (uint32_t)h & a->idem_mask;; i = (i + 1) & a->idem_mask) {
        uint64_t s = a->idem_slots[i];
        if (s == 0) {
            return NULL;
        }
        if ((uint32_t)(s >> 32) != tag) {
            continue;
        }
        struct idem_rec *r = &a->idem_recs[(uint32_t)s - 1];
        if (r->user == user && r->key == key) {
            return r;
        }
    }
}

static void idem_insert_slot(struct br_auditor *a, uint32_t rec_index)
{
    const struct idem_rec *r = &a->idem_recs[rec_index];
    uint64_t h = idem_hash(r->user, r->key);
    uint32_t i = (uint32_t)h & a->idem_mask;
    while (a->idem_slots[i] != 0) {
        i = (i + 1) & a->idem_mask;
    }
    a->idem_slots[i] = (h >> 32 << 32) | (uint64_t)(rec_index + 1);
}

static void idem_add(struct br_auditor *a, const struct idem_rec *r)
{
    a->idem_recs = grow(a->idem_recs, &a->idem_cap, a->idem_count + 1, sizeof *a->idem_recs);
    a->idem_recs[a->idem_count++] = *r;
    if (a->idem_slots == NULL || (uint64_t)a->idem_count * 2 > (uint64_t)a->idem_mask + 1) {
        uint32_t size = a->idem_slots ? (a->idem_mask + 1) * 2 : 1024;
        free(a->idem_slots);
        a->idem_slots = calloc(size, sizeof *a->idem_slots);
        BR_ASSERT(a->idem_slots != NULL);
        a->idem_mask = size - 1;
        for (uint32_t i = 0; i < a->idem_count; i++) {
            idem_insert_slot(a, i);
        }
    } else {
        idem_insert_slot(a, a->idem_count - 1);
    }
}

/* ---- provider event ids ---- */

static bool pev_has(const struct br_auditor *a, uint64_t id)
{
    uint64_t k = id ? id : 0x5a5a5a5a5a5a5a5aULL; /* 0 is the empty marker */
    if (a->pev == NULL) {
        return false;
    }
    for (uint32_t i = (uint32_t)mix(k) & a->pev_mask;; i = (i + 1) & a->pev_mask) {
        if (a->pev[i] == 0) {
            return false;
        }
        if (a->pev[i] == k) {
            return true;
        }
    }
}

static void pev_put_raw(uint64_t *tab, uint32_t mask, uint64_t k)
{
    uint32_t i = (uint32_t)mix(k) & mask;
    while (tab[i] != 0) {
        i = (i + 1) & mask;
    }
    tab[i] = k;
}

static void pev_add(struct br_auditor *a, uint64_t id)
{
    uint64_t k = id ? id : 0x5a5a5a5a5a5a5a5aULL;
    if (a->pev == NULL || (uint64_t)(a->pev_count + 1) * 2 > (uint64_t)a->pev_mask + 1) {
        uint32_t size = a->pev ? (a->pev_mask + 1) * 2 : 1024;
        uint64_t *tab = calloc(size, sizeof *tab);
        BR_ASSERT(tab != NULL);
        for (uint32_t i = 0; a->pev != NULL && i <= a->pev_mask; i++) {
            if (a->pev[i] != 0) {
                pev_put_raw(tab, size - 1, a->pev[i]);
            }
        }
        free(a->pev);
        a->pev = tab;
        a->pev_mask = size - 1;
    }
    pev_put_raw(a->pev, a->pev_mask, k);
    a->pev_count++;
}

/* ---- lifecycle ---- */

struct br_auditor *br_auditor_new(const struct br_config *cfg, const struct br_sim_backend *backend)
{
    struct br_auditor *a = calloc(1, sizeof *a);
    if (a == NULL) {
        return NULL;
    }
    a->cfg = *cfg;
    a->backend = backend;
    a->wr.sold_out_ms = -1;
    a->wr.sold_out_told_ms = -1;
    return a;
}

void br_auditor_skip_ids(struct br_auditor *a)
{
    for (uint32_t i = 0; i < a->event_count; i++) {
        a->events[i].skip_pass = true;
        a->events[i].skip_hold = true;
        a->events[i].skip_pay = true;
    }
}

void br_auditor_free(struct br_auditor *a)
{
    if (a == NULL) {
        return;
    }
    for (uint32_t i = 0; i < a->event_count; i++) {
        struct a_event *ev = &a->events[i];
        free(ev->place_user);
        free(ev->fen);
        free(ev->members);
        free(ev->passes);
        free(ev->holds);
        free(ev->pays);
        free(ev->heap);
    }
    free(a->events);
    free(a->touched);
    free(a->idem_slots);
    free(a->idem_recs);
    free(a->pev);
    free(a->waits);
    free(a);
}

/* ---- queue model ---- */

/* The opening shuffle runs at the first join, admit or leave (of a known
 * member) at or after the opening: every pre-queue member is now waiting. */
static void maybe_open(struct a_event *ev, int64_t now_ms)
{
    if (ev->opened || now_ms < ev->spec.sale_opens_at_ms) {
        return;
    }
    ev->opened = true;
    for (uint32_t p = 0; p < ev->pre_end; p++) {
        struct a_member *m = &ev->members[ev->place_user[p]];
        if (m->place == p + 1 && m->status == BR_QS_PREQUEUE) {
            m->status = BR_QS_WAITING;
        }
    }
}

static void unwait(struct a_event *ev, struct a_member *m)
{
    uint32_t p = m->place - 1;
    fen_add(ev, p, -1);
    ev->waiting--;
    if (p < ev->pre_end) {
        ev->pre_waiting--;
    }
    m->place = 0;
}

static void judge_shuffle(struct br_auditor *a, struct a_event *ev)
{
    if (ev->shuffle_judged || ev->pre_waiting > 0 || ev->pre_admitted < 12) {
        return;
    }
    ev->shuffle_judged = true;
    /* A fair shuffle keeps all of k >= 12 admissions in arrival order with
     * probability 1/k! (< 2.1e-9); a missing shuffle always does. */
    if (!check(a, BR_INV_S4, ev->pre_in_order + 1 < ev->pre_admitted)) {
        violate(a, BR_INV_S4, ev->id, 0, 0, 0, 0,
                "the opening shuffle kept arrival order: all %u pre-queue admissions of "
                "event %" PRIu64 " came in join order",
                ev->pre_admitted, ev->id);
    }
}

/* A pass_expired effect: the pass must be live and due (or given back by a
 * leave). */
static void fx_pass_expired(struct br_auditor *a, struct a_event *ev, const struct br_effect *fx,
                            bool by_leave)
{
    struct a_event *pev = NULL;
    uint32_t n = id_n(a, fx->id, count_passes, &pev);
    if (!check(a, BR_INV_S4, n != 0 && pev == ev)) {
        violate(a, BR_INV_S4, ev->id, fx->user_id, 0, 0, fx->id, "pass_expired names unknown pass");
        return;
    }
    struct a_pass *p = &ev->passes[n - 1];
    if (!check(a, BR_INV_S4, p->state == AP_LIVE && p->user == fx->user_id)) {
        violate(a, BR_INV_S4, ev->id, fx->user_id, 0, 0, fx->id,
                "pass_expired for a pass that is not live (state %u) or not the user's", p->state);
        return;
    }
    if (!by_leave && !check(a, BR_INV_S4, a->cmd->now_ms >= p->deadline_ms)) {
        violate(a, BR_INV_S4, ev->id, fx->user_id, 0, 0, fx->id,
                "pass expired at %" PRId64 " before its deadline %" PRId64, a->cmd->now_ms,
                p->deadline_ms);
    }
    p->state = AP_EXPIRED;
    ev->live_passes--;
    struct a_member *m = member(ev, p->user);
    if (m->pass_n == n && m->status == BR_QS_ADMITTED) {
        m->status = BR_QS_EXPIRED;
    }
}

static void check_queue_length(struct br_auditor *a, struct a_event *ev,
                               const struct br_outcome *out)
{
    if (!check(a, BR_INV_S4, out->queue_length == ev->waiting)) {
        violate(a, BR_INV_S4, ev->id, a->cmd->user_id, 0, 0, 0,
                "queue length %u reported, the model has %u waiting", out->queue_length,
                ev->waiting);
    }
}

/* A re-join by a user the model has admitted: the pass must still be live
 * (a lapsed one is expired first), and the answer is that pass. */
static void check_rejoin_admitted(struct br_auditor *a, const struct br_cmd *c,
                                  const struct br_outcome *out, struct a_event *ev,
                                  const struct a_member *m)
{
    struct a_pass *p = &ev->passes[m->pass_n - 1];
    if (!check(a, BR_INV_S4, c->now_ms < p->deadline_ms)) {
        violate(a, BR_INV_S4, ev->id, c->user_id, 0, 0, mkid(ev, m->pass_n),
                "a re-join kept a lapsed pass instead of expiring it");
    }
    if (!check(a, BR_INV_S4, out->status == BR_QS_ADMITTED && out->ref == mkid(ev, m->pass_n))) {
        violate(a, BR_INV_S4, ev->id, c->user_id, 0, 0, mkid(ev, m->pass_n),
                "a re-join of an admitted user answered status %s pass %" PRIu64,
                br_queue_status_name(out->status), out->ref);
    }
    check_queue_length(a, ev, out);
}

/* A join that takes a new place at the back of the queue (in the pre-queue
 * before the opening). False, after a violation, when the backend accepted
 * it past the queue's capacity. */
static bool join_take_place(struct br_auditor *a, const struct br_cmd *c, struct a_event *ev,
                            struct a_member *m)
{
    if (!check(a, BR_INV_S4, ev->places < ev->place_cap)) {
        violate(a, BR_INV_S4, ev->id, c->user_id, 0, 0, 0,
                "join accepted past the queue's capacity %u", ev->place_cap);
        return false;
    }
    uint32_t p = ev->places++;
    ev->place_user[p] = (uint32_t)c->user_id;
    fen_add(ev, p, 1);
    ev->waiting++;
    m->place = p + 1;
    m->joined_ms = c->now_ms;
    if (!ev->opened) {
        ev->pre_end = p + 1;
        ev->pre_waiting++;
        m->status = BR_QS_PREQUEUE;
    } else {
        m->status = BR_QS_WAITING;
    }
    if (!m->ever_joined) {
        m->ever_joined = 1;
        a->funnel.joined++;
    }
    return true;
}

/* The position a join answered for a waiting member: anywhere in the
 * pre-queue's shuffled block, else one more than the earlier joiners still
 * waiting. */
static void check_join_position(struct br_auditor *a, const struct br_cmd *c,
                                const struct br_outcome *out, struct a_event *ev,
                                const struct a_member *m)
{
    uint32_t p = m->place - 1;
    bool ok;
    if (p < ev->pre_end) {
        ok = out->position >= 1 && out->position <= ev->pre_waiting; /* shuffled block */
    } else {
        ok = out->position == fen_before(ev, p) + 1;
    }
    if (!check(a, BR_INV_S4, ok)) {
        violate(a, BR_INV_S4, ev->id, c->user_id, 0, 0, 0,
                "join answered position %u; the model has %u waiting ahead", out->position,
                fen_before(ev, p));
    }
}

/* A join that would take a new place (WR-SPEC §3): the gate decides before
 * anything else. True when the answer was a gate's (nothing more to model). */
static bool join_gate(struct br_auditor *a, const struct br_cmd *c, const struct br_outcome *out,
                      struct a_event *ev)
{
    uint8_t g = ev_gate(ev, c->now_ms);
    if (g == BR_GATE_CLOSED || out->err == BR_E_QUEUE_CLOSED) {
        if (!check(a, BR_INV_M1, g == BR_GATE_CLOSED && out->err == BR_E_QUEUE_CLOSED)) {
            violate(a, BR_INV_M1, ev->id, c->user_id, 0, 0, 0,
                    "join answered %s while the model's gate is %s (closed refuses new places)",
                    br_err_name(out->err), br_queue_gate_name(g));
        }
        return true;
    }
    if (g == BR_GATE_SOLD_OUT || out->err == BR_E_SOLD_OUT) {
        if (!check(a, BR_INV_I1, g == BR_GATE_SOLD_OUT && out->err == BR_E_SOLD_OUT)) {
            violate(a, BR_INV_I1, ev->id, c->user_id, 0, 0, 0,
                    "join answered %s while the model's gate is %s (a sold-out queue takes no "
                    "new place)",
                    br_err_name(out->err), br_queue_gate_name(g));
        }
        return true;
    }
    if (g == BR_GATE_PASSTHROUGH || (out->err == BR_OK && out->status == BR_QS_PASSTHROUGH)) {
        if (!check(a, BR_INV_M1,
                   g == BR_GATE_PASSTHROUGH && out->err == BR_OK &&
                       out->status == BR_QS_PASSTHROUGH && out->id == ev->id &&
                       out->position == 0 && out->queue_length == ev->waiting)) {
            violate(a, BR_INV_M1, ev->id, c->user_id, 0, 0, 0,
                    "join answered %s status %s position %u while the model's gate is %s",
                    br_err_name(out->err), br_queue_status_name(out->status), out->position,
                    br_queue_gate_name(g));
        }
        return true;
    }
    return false;
}

static void on_join(struct br_auditor *a, const struct br_cmd *c, const struct br_outcome *out,
                    const struct br_effect *fx, uint32_t n)
{
    struct a_event *ev = event_of(a, c->u.queue_join.event_id);
    if (ev == NULL || c->user_id == 0 || c->user_id > a->users) {
        if (!check(a, BR_INV_S4, out->err != BR_OK)) {
            violate(a, BR_INV_S4, c->u.queue_join.event_id, c->user_id, 0, 0, 0,
                    "join accepted for an unknown event or user");
        }
        return;
    }
    maybe_open(ev, c->now_ms);
    struct a_member *m = member(ev, c->user_id);
    /* Issue 13: a join that would take a new place meets the gate first. */
    bool kept = m->status == BR_QS_PREQUEUE || m->status == BR_QS_WAITING ||
                (m->status == BR_QS_ADMITTED && c->now_ms < ev->passes[m->pass_n - 1].deadline_ms);
    if (!kept && join_gate(a, c, out, ev)) {
        for (uint32_t i = 0; i < n; i++) {
            if (fx[i].kind == BR_FX_PASS_EXPIRED) {
                fx_pass_expired(a, ev, &fx[i], false);
            }
        }
        return;
    }
    if (out->err == BR_OK || out->err == BR_E_FULL) {
        m->exists = 1; /* the backend records the member before it looks for a place */
    }
    if (out->err != BR_OK) {
        return;
    }
    if (ev->spec.presence_ttl_s > 0) {
        m->seen_ms = c->now_ms; /* every successful join is a sighting */
    }
    for (uint32_t i = 0; i < n; i++) {
        if (fx[i].kind == BR_FX_PASS_EXPIRED) {
            fx_pass_expired(a, ev, &fx[i], false);
        }
    }
    if (m->status == BR_QS_ADMITTED) {
        check_rejoin_admitted(a, c, out, ev, m);
        return;
    }
    if (m->status != BR_QS_PREQUEUE && m->status != BR_QS_WAITING) {
        if (!join_take_place(a, c, ev, m)) {
            return;
        }
    }
    if (!check(a, BR_INV_S4, out->status == m->status)) {
        violate(a, BR_INV_S4, ev->id, c->user_id, 0, 0, 0,
                "join answered status %s, the model has %s", br_queue_status_name(out->status),
                br_queue_status_name(m->status));
    }
    if (m->status == BR_QS_WAITING) {
        check_join_position(a, c, out, ev, m);
    }
    check_queue_length(a, ev, out);
}

static void on_leave(struct br_auditor *a, const struct br_cmd *c, const struct br_outcome *out,
                     const struct br_effect *fx, uint32_t n)
{
    struct a_event *ev = event_of(a, c->u.queue_leave.event_id);
    if (ev == NULL || c->user_id == 0 || c->user_id > a->users) {
        return;
    }
    struct a_member *m = member(ev, c->user_id);
    if (m->exists) {
        maybe_open(ev, c->now_ms);
    }
    if (out->err != BR_OK) {
        bool in = m->status == BR_QS_PREQUEUE || m->status == BR_QS_WAITING ||
                  m->status == BR_QS_ADMITTED;
        if (!check(a, BR_INV_S4, !(out->err == BR_E_NOT_IN_QUEUE && in))) {
            violate(a, BR_INV_S4, ev->id, c->user_id, 0, 0, 0,
                    "leave answered NOT_IN_QUEUE for a user the model has %s",
                    br_queue_status_name(m->status));
        }
        return;
    }
    for (uint32_t i = 0; i < n; i++) {
        if (fx[i].kind == BR_FX_PASS_EXPIRED) {
            fx_pass_expired(a, ev, &fx[i], true);
        }
    }
    if (m->status == BR_QS_PREQUEUE || m->status == BR_QS_WAITING) {
        unwait(ev, m);
    } else if (!check(a, BR_INV_S4, m->status == BR_QS_EXPIRED || m->status == BR_QS_ADMITTED)) {
        violate(a, BR_INV_S4, ev->id, c->user_id, 0, 0, 0,
                "leave accepted for a user the model has %s", br_queue_status_name(m->status));
    }
    m->status = BR_QS_LEFT;
    check_queue_length(a, ev, out);
    judge_shuffle(a, ev);
}

static void record_wait(struct br_auditor *a, int64_t wait_ms)
{
    if (a->wait_count == a->wait_cap) {
        uint64_t cap = a->wait_cap ? a->wait_cap * 2 : 4096;
        uint32_t *w = realloc(a->waits, (size_t)cap * sizeof *w);
        BR_ASSERT(w != NULL);
        a->waits = w;
        a->wait_cap = cap;
    }
    if (wait_ms < 0) {
        wait_ms = 0; /* clock skew between the api and the admitter */
    }
    a->waits[a->wait_count++] = wait_ms > UINT32_MAX ? UINT32_MAX : (uint32_t)wait_ms;
}

static void fx_pass_issued(struct br_auditor *a, struct a_event *ev, const struct br_effect *fx)
{
    const struct br_cmd *c = a->cmd;
    uint32_t n = (uint32_t)(fx->id & 0xffffffffu);
    uint32_t before = count_before(&ev->skip_pass, ev->pass_count, n);
    ev->passes = grow(ev->passes, &ev->pass_cap, before, sizeof *ev->passes);
    ev->pass_count = before;
    if (!check(a, BR_INV_S4,
               fx->event_id == ev->id && (fx->id >> 32) == ev->id && n == ev->pass_count + 1)) {
        violate(a, BR_INV_S4, ev->id, fx->user_id, 0, 0, fx->id,
                "pass id %" PRIu64 " out of sequence (expected n = %u)", fx->id,
                ev->pass_count + 1);
    }
    ev->passes = grow(ev->passes, &ev->pass_cap, ev->pass_count + 1, sizeof *ev->passes);
    n = ++ev->pass_count;
    struct a_pass *p = &ev->passes[n - 1];
    p->user = (uint32_t)fx->user_id;
    p->state = AP_LIVE;
    p->deadline_ms = fx->deadline_ms;
    ev->live_passes++;
    a->funnel.admitted++;
    if (!check(a, BR_INV_S4, fx->deadline_ms == c->now_ms + ev->spec.pass_ttl_ms)) {
        violate(a, BR_INV_S4, ev->id, fx->user_id, 0, 0, fx->id,
                "pass deadline %" PRId64 " is not now + pass_ttl", fx->deadline_ms);
    }
    if (fx->user_id == 0 || fx->user_id > a->users) {
        violate(a, BR_INV_S4, ev->id, fx->user_id, 0, 0, fx->id, "pass issued to unknown user");
        return;
    }
    struct a_member *m = member(ev, fx->user_id);
    if (!check(a, BR_INV_S4, ev->opened)) {
        violate(a, BR_INV_S4, ev->id, fx->user_id, 0, 0, fx->id, "pass issued before the opening");
    }
    if (!check(a, BR_INV_S4, m->status == BR_QS_WAITING && m->place != 0)) {
        violate(a, BR_INV_S4, ev->id, fx->user_id, 0, 0, fx->id,
                "pass issued to a user who is not waiting (%s)", br_queue_status_name(m->status));
    } else {
        uint32_t place = m->place - 1;
        uint64_t inversion;
        if (place < ev->pre_end) {
            inversion = 0; /* any pre-queue member may come first: the shuffle decides */
            ev->pre_admitted++;
            if (ev->pre_admitted > 1 && place > ev->pre_last_place) {
                ev->pre_in_order++;
            }
            ev->pre_last_place = place;
        } else {
            inversion = fen_before(ev, place); /* includes pre-queue members still waiting */
        }
        if (inversion > a->worst_inversion) {
            a->worst_inversion = inversion;
        }
        if (!check(a, BR_INV_S4, inversion == 0)) {
            violate(a, BR_INV_S4, ev->id, fx->user_id, 0, 0, fx->id,
                    "pass issued out of queue order: %" PRIu64
                    " users who joined earlier still wait",
                    inversion);
        }
        record_wait(a, c->now_ms - m->joined_ms);
        unwait(ev, m);
    }
    m->status = BR_QS_ADMITTED;
    m->pass_n = n;
}

/* Pacing (WR-SPEC §5.3), the model's own credit: once shuffled, each admit
 * adds (now - last) x apm up to max(60000, apm x 2 s). */
static void pace_refill(struct a_event *ev, int64_t now_ms)
{
    if (ev->apm == 0) {
        return;
    }
    int64_t dt = now_ms - ev->pace_last_ms;
    int64_t cap = (int64_t)ev->apm * BR_PACE_BURST_MS;
    if (cap < 60000) {
        cap = 60000;
    }
    int64_t credit = ev->pace_credit + (dt > 0 ? dt : 0) * (int64_t)ev->apm;
    ev->pace_credit = credit < cap ? credit : cap;
    ev->pace_last_ms = now_ms;
}

/* I1 and M1 for one pass_issued, before S4 looks at its order: the mode
 * admits, a seat is available, the pace credit covers it, the user is
 * present (S4). */
static void judge_pass(struct br_auditor *a, struct a_event *ev, const struct br_effect *f)
{
    const struct br_cmd *c = a->cmd;
    int64_t avail = ev_avail(ev);
    if (avail <= 0) {
        a->wr.passes_no_seats++;
    }
    if (!check(a, BR_INV_I1, !ev_aware(ev) || avail > 0)) { /* I1 binds aware events */
        violate(a, BR_INV_I1, ev->id, f->user_id, 0, 0, f->id,
                "pass issued while the model has no seat available (held + sold = capacity)");
    }
    if (!check(a, BR_INV_M1, ev->mode == BR_QM_OPEN)) {
        violate(a, BR_INV_M1, ev->id, f->user_id, 0, 0, f->id, "pass issued while the mode is %s",
                br_queue_mode_name(ev->mode));
    }
    if (ev->apm > 0) {
        if (!check(a, BR_INV_M1, ev->pace_credit >= 60000)) {
            violate(a, BR_INV_M1, ev->id, f->user_id, 0, 0, f->id,
                    "pass issued past admit_per_min %u: the model's pace credit is %" PRId64
                    " (< one admission)",
                    ev->apm, ev->pace_credit);
        }
        ev->pace_credit -= 60000;
    }
    if (f->user_id >= 1 && f->user_id <= a->users) {
        struct a_member *m = member(ev, f->user_id);
        if (absent(ev, m, c->now_ms)) {
            a->wr.passes_absent++;
        }
        if (ev->spec.presence_ttl_s > 0 && !check(a, BR_INV_S4, !absent(ev, m, c->now_ms))) {
            violate(a, BR_INV_S4, ev->id, f->user_id, 0, 0, f->id,
                    "pass issued to a user absent for %" PRId64 " ms (presence_ttl %u s): the "
                    "place should have lapsed",
                    c->now_ms - m->seen_ms, ev->spec.presence_ttl_s);
        }
    }
}

/* A place_lapsed effect: the user waited, was really absent (not seen for
 * presence_ttl by the model's record), and the deadline is seen + ttl. */
static void fx_place_lapsed(struct br_auditor *a, struct a_event *ev, const struct br_effect *f)
{
    const struct br_cmd *c = a->cmd;
    a->wr.lapsed++;
    if (f->user_id == 0 || f->user_id > a->users) {
        violate(a, BR_INV_S4, ev->id, f->user_id, 0, 0, 0, "place_lapsed for an unknown user");
        return;
    }
    struct a_member *m = member(ev, f->user_id);
    if (!check(a, BR_INV_S4, ev->spec.presence_ttl_s > 0 && m->status == BR_QS_WAITING &&
                                 m->place != 0)) {
        violate(a, BR_INV_S4, ev->id, f->user_id, 0, 0, 0,
                "place_lapsed for a user who is not waiting (%s) or without presence_ttl",
                br_queue_status_name(m->status));
        return;
    }
    if (!check(a, BR_INV_S4, absent(ev, m, c->now_ms))) {
        violate(a, BR_INV_S4, ev->id, f->user_id, 0, 0, 0,
                "a present user was skipped: place lapsed %" PRId64
                " ms after the model last saw them (presence_ttl %u s)",
                c->now_ms - m->seen_ms, ev->spec.presence_ttl_s);
    } else if (!check(a, BR_INV_S4, f->deadline_ms == m->seen_ms + ttl_ms(ev))) {
        violate(a, BR_INV_S4, ev->id, f->user_id, 0, 0, 0,
                "place_lapsed deadline %" PRId64 " is not seen %" PRId64 " + presence_ttl",
                f->deadline_ms, m->seen_ms);
    }
    unwait(ev, m);
    m->status = BR_QS_LAPSED;
}

/* An admit's announcement (WR-SPEC §5.4): exactly when the inventory gate
 * differs from the one last told, one queue_state with the whole gate. */
static void judge_announce(struct br_auditor *a, struct a_event *ev, const struct br_effect *qs,
                           uint32_t queue_states)
{
    const struct br_cmd *c = a->cmd;
    uint8_t inv = ev_inv(ev), g = ev_gate(ev, c->now_ms);
    bool due = inv != ev->told;
    int which = inv == BR_GATE_SOLD_OUT || ev->told == BR_GATE_SOLD_OUT ? BR_INV_I1 : BR_INV_M1;
    if (!check(a, which, queue_states == (due ? 1u : 0u))) {
        violate(a, which, ev->id, 0, 0, 0, 0,
                "admit emitted %u queue_state effects; the model's inventory gate went %s -> %s",
                queue_states, br_queue_gate_name(ev->told), br_queue_gate_name(inv));
    } else if (due && !check(a, which, qs->id == g && qs->ref == ev->mode)) {
        violate(a, which, ev->id, 0, 0, 0, 0,
                "queue_state announced gate %s mode %" PRIu64 "; the model has %s, %s",
                br_queue_gate_name((uint8_t)qs->id), qs->ref, br_queue_gate_name(g),
                br_queue_mode_name(ev->mode));
    }
    if (due) {
        ev->told = inv;
        if (inv == BR_GATE_SOLD_OUT && ev->told_sold_ms < 0 && ev->sold_out_ms >= 0) {
            ev->told_sold_ms = c->now_ms;
            if (a->wr.sold_out_ms == ev->sold_out_ms && a->wr.sold_out_told_ms < 0) {
                a->wr.sold_out_told_ms = c->now_ms;
            }
        }
    }
}

/* What the model lets one admit issue (WR-SPEC §5.5-6), after its
 * expiries: min(room under the live max_active, per tick, pace credit,
 * seats available), 0 unless the gate is open; then no more than the
 * backend's pass table still holds. */
static uint32_t admit_want(struct br_auditor *a, struct a_event *ev, uint32_t issued_so_far)
{
    const struct br_cmd *c = a->cmd;
    if (!ev->opened || ev_gate(ev, c->now_ms) != BR_GATE_OPEN) {
        return 0;
    }
    uint64_t want = ev->max_live > ev->live_passes ? ev->max_live - ev->live_passes : 0;
    want = want < ev->spec.admit_per_tick ? want : ev->spec.admit_per_tick;
    if (ev->apm > 0 && (uint64_t)(ev->pace_credit / 60000) < want) {
        want = (uint64_t)(ev->pace_credit / 60000);
    }
    if (ev_aware(ev) && (uint64_t)ev_avail(ev) < want) {
        want = (uint64_t)ev_avail(ev);
    }
    uint64_t passes_total = 0;
    for (uint32_t i = 0; i < a->event_count; i++) {
        passes_total += a->events[i].pass_count;
    }
    passes_total -= issued_so_far;
    if (passes_total + want > a->cfg.passes_max) {
        want = passes_total >= a->cfg.passes_max ? 0 : a->cfg.passes_max - passes_total;
    }
    return (uint32_t)want;
}

static void on_admit(struct br_auditor *a, const struct br_cmd *c, const struct br_outcome *out,
                     const struct br_effect *fx, uint32_t n)
{
    struct a_event *ev = event_of(a, c->u.admit.event_id);
    if (ev == NULL || out->err != BR_OK) {
        return;
    }
    maybe_open(ev, c->now_ms);
    uint32_t issued = 0, lapsed = 0, queue_states = 0;
    const struct br_effect *qs = NULL;
    bool walking = false, issuing = false;
    uint32_t want = 0, waiting_after_expiry = 0;
    for (uint32_t i = 0; i <= n; i++) {
        uint8_t kind = i < n ? fx[i].kind : BR_FX_NONE;
        if (kind == BR_FX_PASS_EXPIRED) {
            if (!check(a, BR_INV_S4, !walking)) {
                violate(a, BR_INV_S4, ev->id, fx[i].user_id, 0, 0, fx[i].id,
                        "admit expired a pass after issuing new ones");
            }
            fx_pass_expired(a, ev, &fx[i], false);
            continue;
        }
        if (kind == BR_FX_QUEUE_STATE) {
            a->wr.queue_states++;
            queue_states++;
            qs = &fx[i];
            if (!check(a, BR_INV_M1, !walking && queue_states == 1)) {
                violate(a, BR_INV_M1, ev->id, 0, 0, 0, 0,
                        "admit emitted a queue_state after a pass or lapse, or two");
            }
            continue;
        }
        if (!walking) {
            /* After the expiries: the pace refill, the announcement, then the walk. */
            walking = true;
            if (ev->opened) {
                pace_refill(ev, c->now_ms);
                judge_announce(a, ev, qs, queue_states);
            } else if (!check(a, BR_INV_M1, queue_states == 0)) {
                violate(a, BR_INV_M1, ev->id, 0, 0, 0, 0,
                        "queue_state announced before the opening shuffle");
            }
            want = admit_want(a, ev, 0);
            waiting_after_expiry = ev->waiting;
        }
        if (kind == BR_FX_PLACE_LAPSED) {
            if (!check(a, BR_INV_S4, issued < want)) {
                violate(a, BR_INV_S4, ev->id, fx[i].user_id, 0, 0, 0,
                        "a place lapsed after the admit had issued all %u passes it may", want);
            }
            fx_place_lapsed(a, ev, &fx[i]);
            lapsed++;
        } else if (kind == BR_FX_PASS_ISSUED) {
            issuing = true;
            judge_pass(a, ev, &fx[i]);
            fx_pass_issued(a, ev, &fx[i]);
            issued++;
        } else if (kind != BR_FX_NONE) {
            violate(a, BR_INV_S4, ev->id, 0, 0, 0, 0, "admit emitted a %s effect",
                    br_effect_name(kind));
        }
    }
    (void)issuing;
    if (!check(a, BR_INV_S4, ev->live_passes <= ev->spec.max_active && issued == out->count &&
                                 lapsed == out->ref)) {
        violate(a, BR_INV_S4, ev->id, 0, 0, 0, 0,
                "admit: %u live passes (max_active %u), %u issued, count %u, %u lapsed, ref %"
                PRIu64,
                ev->live_passes, ev->spec.max_active, issued, out->count, lapsed, out->ref);
    }
    /* The admitter admits every pass it may while members wait; lapses
     * (at most BR_LAPSE_SKIP_MAX an admit: then the walk stops) take no pass. */
    uint32_t left = waiting_after_expiry > lapsed ? waiting_after_expiry - lapsed : 0;
    uint32_t expect = want < left ? want : left;
    bool ok = lapsed >= BR_LAPSE_SKIP_MAX ? issued <= expect : issued == expect;
    if (!check(a, BR_INV_S4, ok)) {
        violate(a, BR_INV_S4, ev->id, 0, 0, 0, 0,
                "admit issued %u passes (%u lapsed); the model allows %u (live max_active %u, "
                "per tick %u, pace credit %" PRId64 ", mode %s, seats available %" PRId64
                ", waiting %u)",
                issued, lapsed, expect, ev->max_live, ev->spec.admit_per_tick, ev->pace_credit,
                br_queue_mode_name(ev->mode), ev_avail(ev), waiting_after_expiry);
    }
    check_queue_length(a, ev, out);
    judge_shuffle(a, ev);
}

/* queue_mode_set (WR-SPEC §7): the system or the event's steward may set
 * the mode, the live max_active and admit_per_min; the answer and the
 * announcement are the model's. */
static void on_mode_set(struct br_auditor *a, const struct br_cmd *c, const struct br_outcome *out,
                        const struct br_effect *fx, uint32_t n)
{
    struct a_event *ev = event_of(a, c->u.queue_mode_set.event_id);
    if (ev == NULL || out->err != BR_OK) {
        bool valid = ev != NULL && c->user_id == 0 && c->u.queue_mode_set.set != 0 &&
                     (c->u.queue_mode_set.set & ~7u) == 0 &&
                     (!(c->u.queue_mode_set.set & BR_QSET_MODE) ||
                      c->u.queue_mode_set.mode < BR_QUEUE_MODE_COUNT) &&
                     (!(c->u.queue_mode_set.set & BR_QSET_MAX_ACTIVE) ||
                      (c->u.queue_mode_set.max_active >= 1 &&
                       c->u.queue_mode_set.max_active <= ev->spec.max_active)) &&
                     (!(c->u.queue_mode_set.set & BR_QSET_ADMIT_PER_MIN) ||
                      c->u.queue_mode_set.admit_per_min <= BR_ADMIT_PER_MIN_MAX);
        if (!check(a, BR_INV_M1, out->err != BR_OK && !valid) && out->err != BR_OK) {
            violate(a, BR_INV_M1, c->u.queue_mode_set.event_id, c->user_id, 0, 0, 0,
                    "queue_mode_set by the system refused %s", br_err_name(out->err));
        }
        return;
    }
    uint8_t set = c->u.queue_mode_set.set;
    if (set & BR_QSET_MODE) {
        ev->mode = c->u.queue_mode_set.mode;
    }
    if (set & BR_QSET_MAX_ACTIVE) {
        ev->max_live = c->u.queue_mode_set.max_active;
    }
    if (set & BR_QSET_ADMIT_PER_MIN) {
        ev->apm = c->u.queue_mode_set.admit_per_min;
        ev->pace_credit = 0;
        ev->pace_last_ms = ev->apm > 0 ? c->now_ms : 0;
    }
    uint8_t g = ev_gate(ev, c->now_ms);
    if (!check(a, BR_INV_M1, out->id == ev->id && out->status == ev->mode && out->position == g &&
                                 out->count == ev->max_live && out->ref == ev->apm)) {
        violate(a, BR_INV_M1, ev->id, 0, 0, 0, 0,
                "queue_mode_set answered mode %u gate %u max_active %u apm %" PRIu64
                "; the model has %s, %s, %u, %u",
                out->status, out->position, out->count, out->ref, br_queue_mode_name(ev->mode),
                br_queue_gate_name(g), ev->max_live, ev->apm);
    }
    bool one = (set & BR_QSET_MODE) ? n == 1 && fx[0].kind == BR_FX_QUEUE_STATE &&
                                          fx[0].id == g && fx[0].ref == ev->mode
                                    : n == 0;
    if (!check(a, BR_INV_M1, one)) {
        violate(a, BR_INV_M1, ev->id, 0, 0, 0, 0,
                "queue_mode_set emitted %u effects; the model wants %s", n,
                (set & BR_QSET_MODE) ? "one queue_state with the gate after the change" : "none");
    }
    a->wr.queue_states += (set & BR_QSET_MODE) ? 1 : 0;
}

/* presence (WR-SPEC §8): members waiting or admitted are seen now. */
static void on_presence(struct br_auditor *a, const struct br_cmd *c, const struct br_outcome *out)
{
    struct a_event *ev = event_of(a, c->u.presence.event_id);
    if (ev == NULL || out->err != BR_OK) {
        return;
    }
    uint32_t counted = 0;
    uint32_t k = c->u.presence.count <= BR_PRESENCE_BATCH_MAX ? c->u.presence.count : 0;
    for (uint32_t i = 0; i < k && ev->spec.presence_ttl_s > 0; i++) {
        uint64_t u = c->u.presence.user_ids[i];
        if (u == 0 || u > a->users) {
            continue;
        }
        struct a_member *m = member(ev, u);
        if (m->status == BR_QS_PREQUEUE || m->status == BR_QS_WAITING ||
            m->status == BR_QS_ADMITTED) {
            m->seen_ms = c->now_ms > m->seen_ms ? c->now_ms : m->seen_ms;
            counted++;
        }
    }
    if (!check(a, BR_INV_S4, out->count == counted && out->queue_length == ev->waiting)) {
        violate(a, BR_INV_S4, ev->id, 0, 0, 0, 0,
                "presence counted %u members (queue length %u); the model has %u (%u waiting)",
                out->count, out->queue_length, counted, ev->waiting);
    }
}

/* ---- holds ---- */

static void hold_release(struct br_auditor *a, struct a_event *ev, struct a_hold *h)
{
    ev->held[h->zone - 1] -= h->qty;
    struct a_member *m = member(ev, h->user);
    m->tickets -= h->qty;
    ev->live_holds--;
    touch(a, ev, h->zone);
}

/* booking_expired: the hold must be held and due; its seats come back once. */
static void fx_booking_expired(struct br_auditor *a, const struct br_effect *fx)
{
    struct a_event *ev = NULL;
    uint32_t n = id_n(a, fx->id, count_holds, &ev);
    if (!check(a, BR_INV_S7, n != 0)) {
        violate(a, BR_INV_S7, fx->event_id, fx->user_id, fx->id, 0, 0,
                "booking_expired names an unknown hold");
        return;
    }
    struct a_hold *h = &ev->holds[n - 1];
    if (!check(a, BR_INV_S2, h->state != BR_HOLD_CONFIRMED && fx->user_id == h->user)) {
        violate(a, BR_INV_S2, ev->id, fx->user_id, fx->id, 0, 0,
                "booking_expired for a hold that is %s (owner %u)", br_hold_state_name(h->state),
                h->user);
        return;
    }
    if (!check(a, BR_INV_S7, h->state == BR_HOLD_HELD)) {
        violate(a, BR_INV_S7, ev->id, h->user, fx->id, 0, 0,
                "booking_expired for a hold already %s: its seats would come back twice",
                br_hold_state_name(h->state));
        return;
    }
    if (!check(a, BR_INV_S7, a->cmd->now_ms >= h->deadline_ms)) {
        violate(a, BR_INV_S7, ev->id, h->user, fx->id, 0, 0,
                "hold expired at %" PRId64 ", before its deadline %" PRId64, a->cmd->now_ms,
                h->deadline_ms);
    }
    hold_release(a, ev, h);
    h->state = BR_HOLD_EXPIRED;
    a->funnel.expired++;
}

/* S9: a reserve whose key this user used before gets the stored answer for
 * the same request, or a conflict for another one. True when it was such a
 * replay (which changes nothing in the model). */
static bool reserve_replayed(struct br_auditor *a, const struct br_cmd *c,
                             const struct br_outcome *out)
{
    uint64_t event_id = c->u.reserve.event_id;
    uint64_t pass_id = c->u.reserve.pass_id;
    uint64_t key = c->u.reserve.idem_key;
    struct idem_rec *r = key != 0 ? idem_find(a, c->user_id, key) : NULL;
    if (r == NULL) {
        return false;
    }
    bool same = r->event_id == event_id && r->zone_id == c->u.reserve.zone_id &&
                r->quantity == c->u.reserve.quantity && r->pass_id == pass_id;
    if (!same) {
        if (!check(a, BR_INV_S9, out->err == BR_E_IDEMPOTENCY_CONFLICT)) {
            violate(a, BR_INV_S9, event_id, c->user_id, out->id, 0, pass_id,
                    "key %" PRIu64 " reused for another request answered %s, not "
                    "IDEMPOTENCY_CONFLICT",
                    key, br_err_name(out->err));
        }
    } else if (!check(a, BR_INV_S9,
                      out->err == r->err && (r->hold_id == 0 || out->id == r->hold_id))) {
        violate(a, BR_INV_S9, event_id, c->user_id, out->id, 0, pass_id,
                "key %" PRIu64 " answered %s hold %" PRIu64 "; first answer was %s hold %" PRIu64,
                key, br_err_name(out->err), out->id, br_err_name(r->err), r->hold_id);
    }
    if (out->err == BR_OK && r->hold_id != 0 && out->id == r->hold_id) {
        struct a_event *hev = NULL;
        uint32_t hn = id_n(a, out->id, count_holds, &hev);
        if (!check(a, BR_INV_S2, hn != 0 && hev->holds[hn - 1].user == c->user_id)) {
            violate(a, BR_INV_S2, event_id, c->user_id, out->id, 0, pass_id,
                    "an idempotent replay returned a hold of another owner");
        }
    }
    return true;
}

/* What the model knows about a reserve before its answer: the member, the
 * zone's free seats, and the pass it names (pass_ok: live, the user's, not
 * lapsed). */
struct reserve_view {
    struct a_event *ev;
    struct a_member *m;
    uint32_t zi;   /* zone index (zone - 1) */
    int64_t avail; /* capacity - held - sold in the zone */
    bool pass_ok;
    uint32_t pn;      /* the pass's n, 0 = not one of this event's */
    struct a_pass *p; /* NULL = none or unknown */
};

/* S4 for a granted reserve of a sale that needs a pass: the pass was live
 * and the user's; it is used from now on. */
static void reserve_use_pass(struct br_auditor *a, const struct br_cmd *c,
                             const struct br_outcome *out, const struct reserve_view *v)
{
    struct a_event *ev = v->ev;
    struct a_pass *p = v->p;
    uint64_t pass_id = c->u.reserve.pass_id;
    if (!check(a, BR_INV_S4, v->pass_ok)) {
        violate(a, BR_INV_S4, ev->id, c->user_id, out->id, 0, pass_id,
                "user %" PRIu64 " holds seats without a live pass of their own (pass %" PRIu64
                ": %s)",
                c->user_id, pass_id,
                pass_id == 0            ? "none"
                : p == NULL             ? "unknown"
                : p->user != c->user_id ? "another user's"
                : p->state == AP_USED   ? "already used"
                                        : "expired");
    }
    if (p != NULL && p->state == AP_LIVE) {
        p->state = AP_USED;
        ev->live_passes--;
        struct a_member *pm = member(ev, p->user);
        if (pm->pass_n == v->pn && pm->status == BR_QS_ADMITTED) {
            pm->status = BR_QS_USED;
        }
    }
}

/* The new hold of a granted reserve: its id is the next in sequence (S2),
 * its amount price x quantity (S8), its deadline now + hold_ttl (S7); the
 * model records it as held. */
static void reserve_new_hold(struct br_auditor *a, const struct br_cmd *c,
                             const struct br_outcome *out, const struct reserve_view *v)
{
    struct a_event *ev = v->ev;
    uint32_t zone = c->u.reserve.zone_id;
    uint32_t qty = c->u.reserve.quantity;
    uint32_t n = (uint32_t)(out->id & 0xffffffffu);
    uint32_t before = count_before(&ev->skip_hold, ev->hold_count, n);
    ev->holds = grow(ev->holds, &ev->hold_cap, before, sizeof *ev->holds);
    ev->hold_count = before;
    if (!check(a, BR_INV_S2, (out->id >> 32) == ev->id && n == ev->hold_count + 1)) {
        violate(a, BR_INV_S2, ev->id, c->user_id, out->id, 0, c->u.reserve.pass_id,
                "new hold id %" PRIu64 " out of sequence (expected n = %u)", out->id,
                ev->hold_count + 1);
    }
    ev->holds = grow(ev->holds, &ev->hold_cap, ev->hold_count + 1, sizeof *ev->holds);
    n = ++ev->hold_count;
    struct a_hold *h = &ev->holds[n - 1];
    h->user = (uint32_t)c->user_id;
    h->zone = (uint8_t)zone;
    h->qty = (uint8_t)qty;
    h->state = BR_HOLD_HELD;
    h->deadline_ms = out->deadline_ms;
    h->amount_minor = ev->spec.zones[v->zi].price_minor * (int64_t)qty;
    h->pass_n = v->pn;
    if (!check(a, BR_INV_S8, out->amount_minor == h->amount_minor)) {
        violate(a, BR_INV_S8, ev->id, c->user_id, out->id, 0, 0,
                "hold amount %" PRId64 " is not price x quantity = %" PRId64, out->amount_minor,
                h->amount_minor);
    }
    if (!check(a, BR_INV_S7, out->deadline_ms == c->now_ms + ev->spec.hold_ttl_ms)) {
        violate(a, BR_INV_S7, ev->id, c->user_id, out->id, 0, 0,
                "hold deadline %" PRId64 " is not now + hold_ttl", out->deadline_ms);
    }
    ev->held[v->zi] += qty;
    v->m->tickets += qty;
    ev->live_holds++;
    heap_push(ev, h->deadline_ms, n);
    touch(a, ev, zone);
    a->funnel.held++;
}

/* A granted reserve: the sale was open, the pass good (S4), the seats free
 * (S1), the user within the limit (S3); then the hold itself. */
static void reserve_granted(struct br_auditor *a, const struct br_cmd *c,
                            const struct br_outcome *out, const struct reserve_view *v)
{
    struct a_event *ev = v->ev;
    uint32_t zone = c->u.reserve.zone_id;
    uint32_t qty = c->u.reserve.quantity;
    uint64_t pass_id = c->u.reserve.pass_id;
    if (!check(a, BR_INV_S4, c->now_ms >= ev->spec.sale_opens_at_ms)) {
        violate(a, BR_INV_S4, ev->id, c->user_id, out->id, 0, pass_id,
                "seats held before the sale opened");
    }
    if (ev->spec.requires_pass && ev->mode != BR_QM_PASSTHROUGH) {
        reserve_use_pass(a, c, out, v); /* passthrough: no pass needed, one given is ignored */
    }
    if (!check(a, BR_INV_S1, qty <= v->avail)) {
        violate(
            a, BR_INV_S1, ev->id, c->user_id, out->id, 0, pass_id,
            "oversell: hold of %u seats in zone %u with %" PRId64 " available (capacity %u, held "
            "%u, sold %u)",
            qty, zone, v->avail, ev->spec.zones[v->zi].capacity, ev->held[v->zi], ev->sold[v->zi]);
    }
    if (!check(a, BR_INV_S3, v->m->tickets + qty <= ev->spec.per_user_limit)) {
        violate(a, BR_INV_S3, ev->id, c->user_id, out->id, 0, pass_id,
                "user %" PRIu64 " now has %u tickets of event %" PRIu64 " (limit %u)", c->user_id,
                v->m->tickets + qty, ev->id, ev->spec.per_user_limit);
    }
    reserve_new_hold(a, c, out, v);
}

/* A refused reserve: SOLD_OUT only without the seats (S1), LIMIT_EXCEEDED
 * only past the limit (S3), a pass error only for a pass that is not good
 * (S4). */
static void reserve_refused(struct br_auditor *a, const struct br_cmd *c,
                            const struct br_outcome *out, const struct reserve_view *v)
{
    struct a_event *ev = v->ev;
    uint32_t zone = c->u.reserve.zone_id;
    uint32_t qty = c->u.reserve.quantity;
    uint64_t pass_id = c->u.reserve.pass_id;
    if (out->err == BR_E_SOLD_OUT) {
        if (!check(a, BR_INV_S1, v->avail < qty)) {
            violate(a, BR_INV_S1, ev->id, c->user_id, 0, 0, pass_id,
                    "SOLD_OUT for %u seats in zone %u while the model has %" PRId64 " available",
                    qty, zone, v->avail);
        }
    } else if (out->err == BR_E_LIMIT_EXCEEDED) {
        if (!check(a, BR_INV_S3, v->m->tickets + qty > ev->spec.per_user_limit)) {
            violate(a, BR_INV_S3, ev->id, c->user_id, 0, 0, pass_id,
                    "LIMIT_EXCEEDED for %u more seats while the user has %u (limit %u)", qty,
                    v->m->tickets, ev->spec.per_user_limit);
        }
    } else if (out->err == BR_E_PASS_INVALID || out->err == BR_E_PASS_EXPIRED ||
               out->err == BR_E_PASS_REQUIRED) {
        if (!check(a, BR_INV_S4, !(v->pass_ok && ev->spec.requires_pass))) {
            violate(a, BR_INV_S4, ev->id, c->user_id, 0, 0, pass_id,
                    "%s for a pass the model has live and the user's", br_err_name(out->err));
        }
        if (!check(a, BR_INV_M1, ev->mode != BR_QM_PASSTHROUGH)) {
            violate(a, BR_INV_M1, ev->id, c->user_id, 0, 0, pass_id,
                    "%s in passthrough mode (holds need no pass)", br_err_name(out->err));
        }
    }
}

/* The answer a keyed reserve stored for its replays (S9); answers the
 * backend does not store (full, invalid, unknown, unauthorized, conflict)
 * are not kept. */
static void reserve_remember(struct br_auditor *a, const struct br_cmd *c,
                             const struct br_outcome *out)
{
    uint64_t key = c->u.reserve.idem_key;
    if (key != 0 && out->err != BR_E_FULL && out->err != BR_E_INVALID &&
        out->err != BR_E_NOT_FOUND && out->err != BR_E_UNAUTHORIZED &&
        out->err != BR_E_IDEMPOTENCY_CONFLICT) {
        struct idem_rec r = {.key = key,
                             .pass_id = c->u.reserve.pass_id,
                             .hold_id = out->err == BR_OK ? out->id : 0,
                             .user = (uint32_t)c->user_id,
                             .event_id = (uint32_t)c->u.reserve.event_id,
                             .zone_id = (uint8_t)c->u.reserve.zone_id,
                             .quantity = (uint8_t)c->u.reserve.quantity,
                             .err = (int16_t)out->err};
        idem_add(a, &r);
    }
}

static void on_reserve(struct br_auditor *a, const struct br_cmd *c, const struct br_outcome *out)
{
    uint64_t event_id = c->u.reserve.event_id;
    uint32_t zone = c->u.reserve.zone_id;
    uint32_t qty = c->u.reserve.quantity;
    uint64_t pass_id = c->u.reserve.pass_id;
    struct a_event *ev = event_of(a, event_id);
    bool valid = ev != NULL && zone >= 1 && zone <= ev->spec.zone_count && c->user_id != 0 &&
                 c->user_id <= a->users && qty >= 1 && qty <= BR_HOLD_QUANTITY_MAX;
    if (!valid) {
        if (!check(a, BR_INV_S1, out->err != BR_OK)) {
            violate(a, BR_INV_S1, event_id, c->user_id, out->id, 0, pass_id,
                    "reserve accepted for an unknown event, zone or user, or quantity %u", qty);
        }
        return;
    }
    if (reserve_replayed(a, c, out)) {
        return; /* a replay changes nothing */
    }
    struct reserve_view v = {.ev = ev, .m = member(ev, c->user_id), .zi = zone - 1};
    if (c->now_ms >= ev->spec.sale_opens_at_ms) {
        v.m->exists = 1; /* the backend records the member from here on */
    }
    v.avail = (int64_t)ev->spec.zones[v.zi].capacity - ev->held[v.zi] - ev->sold[v.zi];
    /* The pass, as the model sees it. */
    if (pass_id != 0 && (pass_id >> 32) == ev->id) {
        v.pn = (uint32_t)(pass_id & 0xffffffffu);
        if (v.pn >= 1 && v.pn <= ev->pass_count) {
            v.p = &ev->passes[v.pn - 1];
            v.pass_ok =
                v.p->user == c->user_id && v.p->state == AP_LIVE && c->now_ms < v.p->deadline_ms;
        }
    }
    if (out->err == BR_OK) {
        reserve_granted(a, c, out, &v);
    } else {
        reserve_refused(a, c, out, &v);
    }
    reserve_remember(a, c, out);
}

static struct a_hold *hold_of(struct br_auditor *a, uint64_t hold_id, struct a_event **evp)
{
    uint32_t n = id_n(a, hold_id, count_holds, evp);
    return n ? &(*evp)->holds[n - 1] : NULL;
}

static void on_cancel(struct br_auditor *a, const struct br_cmd *c, const struct br_outcome *out,
                      const struct br_effect *fx, uint32_t n)
{
    (void)fx;
    (void)n;
    if (out->err != BR_OK) {
        return;
    }
    struct a_event *ev = NULL;
    struct a_hold *h = hold_of(a, c->u.cancel.hold_id, &ev);
    if (!check(a, BR_INV_S2, h != NULL && h->user == c->user_id && h->state != BR_HOLD_CONFIRMED)) {
        violate(a, BR_INV_S2, ev ? ev->id : 0, c->user_id, c->u.cancel.hold_id, 0, 0,
                "cancel accepted for a hold that is unknown, another user's or confirmed");
        return;
    }
    if (!check(a, BR_INV_S7, h->state == BR_HOLD_HELD && c->now_ms < h->deadline_ms)) {
        violate(a, BR_INV_S7, ev->id, c->user_id, c->u.cancel.hold_id, 0, 0,
                "cancel accepted for a hold that is %s or past its deadline: seats return twice",
                br_hold_state_name(h->state));
        return;
    }
    hold_release(a, ev, h);
    h->state = BR_HOLD_CANCELLED;
    a->funnel.cancelled++;
}

static void on_sweep(struct br_auditor *a, const struct br_cmd *c, const struct br_outcome *out,
                     const struct br_effect *fx, uint32_t n)
{
    struct a_event *ev = event_of(a, c->u.sweep.event_id);
    if (ev == NULL || out->err != BR_OK) {
        return;
    }
    a->step_swept = true;
    int64_t last_deadline = INT64_MIN;
    uint64_t last_id = 0;
    uint32_t expired = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (!check(a, BR_INV_S7, fx[i].kind == BR_FX_BOOKING_EXPIRED && fx[i].event_id == ev->id)) {
            violate(a, BR_INV_S7, ev->id, fx[i].user_id, fx[i].id, 0, 0,
                    "sweep emitted %s for event %" PRIu64, br_effect_name(fx[i].kind),
                    fx[i].event_id);
            continue;
        }
        struct a_event *hev = NULL;
        struct a_hold *h = hold_of(a, fx[i].id, &hev);
        if (h != NULL) {
            bool in_order = h->deadline_ms > last_deadline ||
                            (h->deadline_ms == last_deadline && fx[i].id > last_id);
            if (!check(a, BR_INV_S7, in_order)) {
                violate(a, BR_INV_S7, ev->id, h->user, fx[i].id, 0, 0,
                        "sweep out of deadline order");
            }
            last_deadline = h->deadline_ms;
            last_id = fx[i].id;
        }
        fx_booking_expired(a, &fx[i]);
        expired++;
    }
    if (!check(a, BR_INV_S7, expired == out->count && out->count <= c->u.sweep.max)) {
        violate(a, BR_INV_S7, ev->id, 0, 0, 0, 0, "sweep count %u but %u holds expired", out->count,
                expired);
    }
    if (out->count < c->u.sweep.max) {
        const struct hnode *t = heap_live_top(ev);
        if (!check(a, BR_INV_L1, t == NULL || t->deadline_ms > c->now_ms)) {
            violate(a, BR_INV_L1, ev->id, ev->holds[t->n - 1].user, mkid(ev, t->n), 0, 0,
                    "a sweep at %" PRId64 " (count %u < max %u) left hold %" PRIu64
                    " past its deadline %" PRId64,
                    c->now_ms, out->count, c->u.sweep.max, mkid(ev, t->n), t->deadline_ms);
        }
    }
}

/* ---- payments ---- */

static struct a_pay *pay_of(struct br_auditor *a, uint64_t payment_id, struct a_event **evp)
{
    uint32_t n = id_n(a, payment_id, count_pays, evp);
    return n ? &(*evp)->pays[n - 1] : NULL;
}

/* S5, one payment per booking: payment_create answers the booking's one
 * payment, pending -- a new one (the next id of the event) when it has
 * none, else the same one, still open or, after a decline, open again
 * (failed -> pending: the buyer confirms the same intent with another card).
 * A second payment for a booking is a second intent that can charge it
 * twice. The model follows the answer either way. Returns whether it held. */
static bool payment_of_booking(struct br_auditor *a, struct a_event *ev, struct a_hold *h,
                               uint32_t hn, const struct br_outcome *out)
{
    const struct br_cmd *c = a->cmd;
    uint32_t pn = (uint32_t)(out->id & 0xffffffffu);
    if ((out->id >> 32) == ev->id && pn > ev->pay_count) {
        uint32_t before = count_before(&ev->skip_pay, ev->pay_count, pn);
        ev->pays = grow(ev->pays, &ev->pay_cap, before, sizeof *ev->pays);
        ev->pay_count = before;
    }
    if ((out->id >> 32) == ev->id && pn == ev->pay_count + 1) {
        ev->pays = grow(ev->pays, &ev->pay_cap, ev->pay_count + 1, sizeof *ev->pays);
        pn = ++ev->pay_count;
        struct a_pay *p = &ev->pays[pn - 1];
        p->hold_n = hn;
        p->state = AY_PENDING;
        p->amount_minor = out->amount_minor;
        uint32_t before = h->pay_n;
        h->pay_n = pn;
        if (!check(a, BR_INV_S5, before == 0 && out->status == BR_PAY_PENDING)) {
            violate(a, BR_INV_S5, ev->id, c->user_id, mkid(ev, hn), out->id, 0,
                    "new payment %" PRIu64 " (status %u) for booking %" PRIu64
                    " which has payment %" PRIu64 ": one booking has one payment (a second "
                    "intent can charge it twice)",
                    out->id, out->status, mkid(ev, hn), before ? mkid(ev, before) : 0);
            return false;
        }
        return true;
    }
    struct a_event *pev = NULL;
    struct a_pay *p = pay_of(a, out->id, &pev);
    if (!check(a, BR_INV_S5,
               p != NULL && pev == ev && p->hold_n == hn && h->pay_n == pn &&
                   (p->state == AY_PENDING || p->state == AY_FAILED) &&
                   out->status == BR_PAY_PENDING)) {
        violate(a, BR_INV_S5, ev->id, c->user_id, mkid(ev, hn), out->id, 0,
                "payment_create returned payment %" PRIu64 " (status %u), neither new nor "
                "booking %" PRIu64 "'s open or declined payment",
                out->id, out->status, mkid(ev, hn));
        return false;
    }
    p->state = AY_PENDING; /* the same payment; after a decline, open again */
    return true;
}

static void on_payment_create(struct br_auditor *a, const struct br_cmd *c,
                              const struct br_outcome *out, const struct br_effect *fx, uint32_t n)
{
    if (out->err != BR_OK) {
        return;
    }
    struct a_event *ev = NULL;
    struct a_hold *h = hold_of(a, c->u.payment_create.hold_id, &ev);
    if (!check(a, BR_INV_S6,
               h != NULL && h->user == c->user_id && out->ref == c->u.payment_create.hold_id)) {
        violate(a, BR_INV_S6, ev ? ev->id : 0, c->user_id, c->u.payment_create.hold_id, out->id, 0,
                "payment opened for a hold that is unknown or another user's");
        return;
    }
    if (!check(a, BR_INV_S6, h->state == BR_HOLD_HELD && c->now_ms < h->deadline_ms)) {
        violate(a, BR_INV_S6, ev->id, c->user_id, c->u.payment_create.hold_id, out->id, 0,
                "payment opened for a hold that is %s or past its deadline",
                br_hold_state_name(h->state));
    }
    uint32_t hn = (uint32_t)(c->u.payment_create.hold_id & 0xffffffffu);
    if (!payment_of_booking(a, ev, h, hn, out)) {
        return;
    }
    if (!check(a, BR_INV_S8, out->amount_minor == h->amount_minor)) {
        violate(a, BR_INV_S8, ev->id, c->user_id, c->u.payment_create.hold_id, out->id, 0,
                "payment amount %" PRId64 " differs from the hold's %" PRId64, out->amount_minor,
                h->amount_minor);
    }
    if (c->u.payment_create.check_ms > 0) {
        struct a_event *pev = NULL;
        struct a_pay *p = pay_of(a, out->id, &pev);
        if (p != NULL) {
            p->checked = 1; /* scheduled afresh: checks counted from zero, not closed */
            p->closed = 0;
        }
    }
    for (uint32_t i = 0; i < n; i++) {
        if (!check(a, BR_INV_S8,
                   fx[i].kind == BR_FX_PROVIDER_CHARGE && fx[i].id == out->id &&
                       fx[i].amount_minor == h->amount_minor)) {
            violate(a, BR_INV_S8, ev->id, c->user_id, c->u.payment_create.hold_id, out->id, 0,
                    "payment_create emitted %s for %" PRIu64 " amount %" PRId64,
                    br_effect_name(fx[i].kind), fx[i].id, fx[i].amount_minor);
        }
    }
}

static void s8_balance(struct br_auditor *a, uint64_t event_id, uint64_t payment_id)
{
    if (!check(a, BR_INV_S8, a->charged == a->confirmed_value + a->refund_owed)) {
        violate(a, BR_INV_S8, event_id, 0, 0, payment_id, 0,
                "charges %" PRId64 " != confirmed %" PRId64 " + refunds owed %" PRId64, a->charged,
                a->confirmed_value, a->refund_owed);
    }
}

/* S5, each provider event id takes effect once: a DUPLICATE answer only for
 * an id that took effect, an OK one only for a new id (recorded). Returns
 * whether the event took effect (the caller goes on). */
static bool provider_event_once(struct br_auditor *a, const struct br_cmd *c,
                                const struct br_outcome *out, const struct a_event *ev)
{
    uint64_t peid = c->u.payment_event.provider_event_id;
    uint64_t pid = c->u.payment_event.payment_id;
    if (out->err == BR_E_DUPLICATE) {
        if (!check(a, BR_INV_S5, pev_has(a, peid))) {
            violate(a, BR_INV_S5, ev ? ev->id : 0, 0, 0, pid, 0,
                    "provider event %" PRIu64 " refused as a duplicate but it never took effect",
                    peid);
        }
        return false;
    }
    if (out->err != BR_OK) {
        return false;
    }
    if (!check(a, BR_INV_S5, !pev_has(a, peid))) {
        violate(a, BR_INV_S5, ev ? ev->id : 0, 0, 0, pid, 0,
                "provider event %" PRIu64 " took effect a second time", peid);
    } else {
        pev_add(a, peid);
    }
    return true;
}

/* A success took effect: one more charge of the booking (S5: at most one
 * successful charge per booking, a second is a violation even if refunded). */
static void success_charged(struct br_auditor *a, const struct a_event *ev, struct a_pay *p,
                            struct a_hold *h, uint64_t pid)
{
    if (!check(a, BR_INV_S5, h->charges == 0)) {
        violate(a, BR_INV_S5, ev->id, h->user, mkid(ev, p->hold_n), pid, 0,
                "booking %" PRIu64 " charged a second time (by payment %" PRIu64
                "): at most one successful charge per booking",
                mkid(ev, p->hold_n), pid);
    }
    h->charges++;
    p->succeeded = 1;
    a->charged += p->amount_minor;
}

/* booking_confirmed from a payment success: the hold must be live, this
 * payment's, and not confirmed already (not by this success either: `twice`).
 * Moves its seats from held to sold. Returns whether the model confirmed it. */
static bool fx_success_confirmed(struct br_auditor *a, struct a_event *ev, struct a_pay *p,
                                 struct a_hold *h, const struct br_effect *f, uint64_t pid,
                                 bool live, bool twice)
{
    uint64_t hid = mkid(ev, p->hold_n);
    if (!check(a, BR_INV_S2, f->user_id == h->user && f->event_id == ev->id)) {
        violate(a, BR_INV_S2, ev->id, f->user_id, hid, pid, 0,
                "booking_confirmed names user %" PRIu64 " for a hold owned by user %u",
                f->user_id, h->user);
    }
    if (!check(a, BR_INV_S2, h->state != BR_HOLD_CONFIRMED)) {
        violate(a, BR_INV_S2, ev->id, h->user, hid, pid, 0,
                "hold %" PRIu64 " confirmed a second time (by payment %" PRIu64
                ", first by %" PRIu64 ")",
                hid, pid, mkid(ev, h->confirmed_by));
        return false;
    }
    if (!check(a, BR_INV_S6, live && f->id == hid && f->ref == pid && !twice)) {
        violate(a, BR_INV_S6, ev->id, h->user, hid, pid, 0,
                "payment %" PRIu64 " confirmed hold %" PRIu64
                " which is %s with deadline %" PRId64 " at now %" PRId64
                " (a late payment must be refunded)",
                pid, hid, br_hold_state_name(h->state), h->deadline_ms, a->cmd->now_ms);
    }
    if (h->state == BR_HOLD_HELD) {
        /* Seats move from held to sold; bought tickets still count
         * for the per-user limit, so the member's tickets stay. */
        ev->held[h->zone - 1] -= h->qty;
        ev->live_holds--;
    } else {
        /* Confirming a dead hold (already a violation): its seats
         * and tickets are taken again, and S1/S3 judge that. */
        member(ev, h->user)->tickets += h->qty;
    }
    ev->sold[h->zone - 1] += h->qty;
    touch(a, ev, h->zone);
    h->state = BR_HOLD_CONFIRMED;
    h->confirmed_by = (uint32_t)(pid & 0xffffffffu);
    p->state = AY_CONFIRMED;
    a->confirmed_value += h->amount_minor;
    a->funnel.confirmed++;
    if (!check(a, BR_INV_S1,
               ev->held[h->zone - 1] + ev->sold[h->zone - 1] <=
                   ev->spec.zones[h->zone - 1].capacity)) {
        violate(a, BR_INV_S1, ev->id, h->user, hid, pid, 0,
                "oversell on confirmation: zone %u held %u + sold %u > capacity %u",
                h->zone, ev->held[h->zone - 1], ev->sold[h->zone - 1],
                ev->spec.zones[h->zone - 1].capacity);
    }
    return true;
}

/* The effects of a success that applies to payment p (its hold h was
 * `live`): the hold confirmed, or (it was not live) expired if still held
 * and the payment refunded; exactly one of confirmed and refunded (S6). */
static void check_success_effects(struct br_auditor *a, const struct br_cmd *c, struct a_event *ev,
                                  struct a_pay *p, struct a_hold *h, const struct br_effect *fx,
                                  uint32_t n, bool live)
{
    uint64_t pid = c->u.payment_event.payment_id;
    uint64_t hid = mkid(ev, p->hold_n);
    bool confirmed = false, refunding = false;
    for (uint32_t i = 0; i < n; i++) {
        const struct br_effect *f = &fx[i];
        if (f->kind == BR_FX_BOOKING_EXPIRED) {
            if (!check(a, BR_INV_S6, f->id == hid && !live)) {
                violate(a, BR_INV_S6, ev->id, h->user, f->id, pid, 0,
                        "a payment success expired hold %" PRIu64, f->id);
            }
            fx_booking_expired(a, f);
        } else if (f->kind == BR_FX_BOOKING_CONFIRMED) {
            confirmed = fx_success_confirmed(a, ev, p, h, f, pid, live, confirmed) || confirmed;
        } else if (f->kind == BR_FX_PROVIDER_REFUND) {
            if (!check(a, BR_INV_S6,
                       f->id == pid && !live && !refunding && f->amount_minor == p->amount_minor)) {
                violate(a, BR_INV_S6, ev->id, h->user, hid, pid, 0,
                        "payment %" PRIu64 " refunded although its hold %" PRIu64
                        " was live (%s, deadline %" PRId64 ", now %" PRId64 ")",
                        pid, hid, br_hold_state_name(h->state), h->deadline_ms, c->now_ms);
            }
            if (!refunding) {
                p->state = AY_REFUND_PENDING;
                a->refund_owed += p->amount_minor;
                refunding = true;
            }
        } else {
            violate(a, BR_INV_S6, ev->id, h->user, hid, pid, 0, "payment success emitted %s",
                    br_effect_name(f->kind));
        }
    }
    if (!check(a, BR_INV_S6, confirmed != refunding)) {
        violate(a, BR_INV_S6, ev->id, h->user, hid, pid, 0, "a successful payment was %s",
                confirmed ? "confirmed and refunded" : "neither confirmed nor refunded");
    }
}

/* Point 8: the provider event id of a void's answer, "q:<payment>:failed:
 * canceled" hashed as the drivers hash it (saga.h): the intent is
 * cancelled at the provider, so nothing can be paid any more. */
static bool is_cancel_answer(uint64_t payment_id, uint64_t provider_event_id)
{
    char key[64];
    int n = snprintf(key, sizeof key, "q:%" PRIu64 ":failed:canceled", payment_id);
    uint64_t h = br_hash64(key, (size_t)n, 0);
    return provider_event_id == (h != 0 ? h : 1);
}

static void on_payment_event(struct br_auditor *a, const struct br_cmd *c,
                             const struct br_outcome *out, const struct br_effect *fx, uint32_t n)
{
    uint64_t pid = c->u.payment_event.payment_id;
    struct a_event *ev = NULL;
    struct a_pay *p = pay_of(a, pid, &ev);
    if (!provider_event_once(a, c, out, ev)) {
        return;
    }
    if (!check(a, BR_INV_S6, p != NULL)) {
        violate(a, BR_INV_S6, 0, 0, 0, pid, 0, "payment_event accepted for an unknown payment");
        return;
    }
    struct a_hold *h = &ev->holds[p->hold_n - 1];
    uint64_t hid = mkid(ev, p->hold_n);
    if (!c->u.payment_event.succeeded) {
        /* A decline: an open payment fails (paying again reopens it); it
         * changes nothing else and emits nothing. */
        if (p->state == AY_PENDING) {
            p->state = AY_FAILED;
            a->funnel.declined++;
        }
        if (p->state == AY_FAILED && is_cancel_answer(pid, c->u.payment_event.provider_event_id) &&
            !(h->state == BR_HOLD_HELD && c->now_ms < h->deadline_ms)) {
            p->closed = 1; /* point 8: the provider cancelled the intent: no more checks */
        }
        if (!check(a, BR_INV_S6, n == 0)) {
            violate(a, BR_INV_S6, ev->id, h->user, hid, pid, 0, "a failed payment event emitted %s",
                    br_effect_name(fx[0].kind));
        }
        return;
    }
    bool applies = p->state == AY_PENDING || p->state == AY_FAILED;
    if (!applies) {
        /* One charge counts once: a second success of the same payment changes nothing. */
        if (!check(a, BR_INV_S5, n == 0)) {
            violate(a, BR_INV_S5, ev->id, h->user, hid, pid, 0,
                    "a second success of payment %" PRIu64 " emitted %s: the charge counted twice",
                    pid, br_effect_name(fx[0].kind));
        }
        return;
    }
    bool live = h->state == BR_HOLD_HELD && c->now_ms < h->deadline_ms;
    success_charged(a, ev, p, h, pid);
    check_success_effects(a, c, ev, p, h, fx, n, live);
    s8_balance(a, ev->id, pid);
}

static void on_refund_result(struct br_auditor *a, const struct br_cmd *c,
                             const struct br_outcome *out)
{
    struct a_event *ev = NULL;
    struct a_pay *p = pay_of(a, c->u.refund_result.payment_id, &ev);
    if (out->err == BR_E_DUPLICATE) {
        if (!check(a, BR_INV_S6, p == NULL || p->state != AY_REFUND_PENDING)) {
            violate(a, BR_INV_S6, ev->id, 0, 0, c->u.refund_result.payment_id, 0,
                    "refund_result refused for a payment that owes a refund");
        }
        return;
    }
    if (out->err != BR_OK) {
        return;
    }
    if (!check(a, BR_INV_S6, p != NULL && p->state == AY_REFUND_PENDING)) {
        violate(a, BR_INV_S6, ev ? ev->id : 0, 0, 0, c->u.refund_result.payment_id, 0,
                "refund_result accepted for a payment that owes no refund");
        return;
    }
    if (!c->u.refund_result.ok) {
        return;
    }
    p->state = AY_REFUNDED;
    a->refunded_done += p->amount_minor;
    a->funnel.refunded++;
    struct a_hold *h = &ev->holds[p->hold_n - 1];
    if (h->state == BR_HOLD_EXPIRED || h->state == BR_HOLD_CANCELLED) {
        h->state = BR_HOLD_REFUNDED;
    }
    if (!check(a, BR_INV_S8, a->refunded_done <= a->refund_owed)) {
        violate(a, BR_INV_S8, ev->id, h->user, mkid(ev, p->hold_n), c->u.refund_result.payment_id,
                0, "refunds done %" PRId64 " exceed refunds owed %" PRId64, a->refunded_done,
                a->refund_owed);
    }
}

static void on_saga_step(struct br_auditor *a, const struct br_cmd *c, const struct br_outcome *out,
                         const struct br_effect *fx, uint32_t n)
{
    (void)c;
    if (out->err != BR_OK) {
        return;
    }
    for (uint32_t i = 0; i < n; i++) {
        struct a_event *ev = NULL;
        struct a_pay *p = pay_of(a, fx[i].id, &ev);
        if (!check(a, BR_INV_S6,
                   fx[i].kind == BR_FX_PROVIDER_REFUND && p != NULL &&
                       p->state == AY_REFUND_PENDING && fx[i].amount_minor == p->amount_minor)) {
            violate(a, BR_INV_S6, ev ? ev->id : 0, fx[i].user_id, fx[i].ref, fx[i].id, 0,
                    "saga_step re-emitted %s for payment %" PRIu64 " which owes no refund",
                    br_effect_name(fx[i].kind), fx[i].id);
        }
    }
    if (!check(a, BR_INV_S6, out->count == n)) {
        violate(a, BR_INV_S6, 0, 0, 0, 0, 0, "saga_step count %u but %u effects", out->count, n);
    }
}

/* Point 8: payment_check asks the provider only about payments no webhook
 * decided -- pending or failed, created with checks, not closed -- and
 * voids (cancels the intent unless paid) exactly when the model's hold is
 * no longer live, asks (provider_query) exactly when it is. A query for a
 * decided payment, or a void while the buyer may still pay, would let the
 * provider's answer undo a decision or cancel a payment the hold still
 * waits for (S6). The answers come back as payment_events, judged there. */
static void on_payment_check(struct br_auditor *a, const struct br_cmd *c,
                             const struct br_outcome *out, const struct br_effect *fx, uint32_t n)
{
    if (out->err != BR_OK) {
        return;
    }
    for (uint32_t i = 0; i < n; i++) {
        const struct br_effect *f = &fx[i];
        struct a_event *ev = NULL;
        struct a_pay *p = pay_of(a, f->id, &ev);
        bool open = p != NULL && (p->state == AY_PENDING || p->state == AY_FAILED);
        if (!check(a, BR_INV_S6,
                   (f->kind == BR_FX_PROVIDER_QUERY || f->kind == BR_FX_PROVIDER_VOID) && open &&
                       p->checked && !p->closed && f->amount_minor == p->amount_minor)) {
            violate(a, BR_INV_S6, ev ? ev->id : 0, f->user_id, f->ref, f->id, 0,
                    "payment_check emitted %s for payment %" PRIu64
                    " which is %s (checks %s, %s)",
                    br_effect_name(f->kind), f->id,
                    p == NULL ? "unknown" : open ? "open" : "decided",
                    p != NULL && p->checked ? "on" : "off",
                    p != NULL && p->closed ? "closed" : "not closed");
            continue;
        }
        const struct a_hold *h = &ev->holds[p->hold_n - 1];
        bool live = h->state == BR_HOLD_HELD && c->now_ms < h->deadline_ms;
        if (!check(a, BR_INV_S6,
                   f->ref == mkid(ev, p->hold_n) && live == (f->kind == BR_FX_PROVIDER_QUERY))) {
            violate(a, BR_INV_S6, ev->id, h->user, mkid(ev, p->hold_n), f->id, 0,
                    "payment_check emitted %s for payment %" PRIu64
                    " whose hold is %s with deadline %" PRId64 " at now %" PRId64
                    " (void exactly when the hold is gone)",
                    br_effect_name(f->kind), f->id, br_hold_state_name(h->state), h->deadline_ms,
                    c->now_ms);
        }
    }
    if (!check(a, BR_INV_S6, out->count == n)) {
        violate(a, BR_INV_S6, 0, 0, 0, 0, 0, "payment_check count %u but %u effects", out->count,
                n);
    }
}

static void on_event_create(struct br_auditor *a, const struct br_cmd *c,
                            const struct br_outcome *out)
{
    if (out->err != BR_OK) {
        return;
    }
    if (!check(a, BR_INV_S1, out->id == (uint64_t)a->event_count + 1)) {
        violate(a, BR_INV_S1, out->id, 0, 0, 0, 0, "event id %" PRIu64 " out of sequence", out->id);
    }
    BR_ASSERT(a->touched_count == 0); /* the list points into a->events, which may move */
    a->events = grow(a->events, &a->event_cap, a->event_count + 1, sizeof *a->events);
    a->touched = grow(a->touched, &a->touched_cap, a->event_count + 1, sizeof *a->touched);
    struct a_event *ev = &a->events[a->event_count++];
    memset(ev, 0, sizeof *ev);
    ev->id = a->event_count;
    ev->spec = c->u.event_create;
    if (ev->spec.queue_capacity == 0) {
        ev->spec.queue_capacity = a->cfg.queue_capacity_default;
    }
    ev->place_cap = ev->spec.queue_capacity;
    ev->mode = ev->spec.mode;
    ev->told = BR_GATE_OPEN;
    ev->max_live = ev->spec.max_active;
    ev->apm = ev->spec.admit_per_min;
    ev->pace_last_ms = ev->apm > 0 ? c->now_ms : 0;
    ev->sold_out_ms = -1;
    ev->told_sold_ms = -1;
    ev->place_user = calloc(ev->place_cap ? ev->place_cap : 1, sizeof *ev->place_user);
    ev->fen = calloc(ev->place_cap ? ev->place_cap : 1, sizeof *ev->fen);
    BR_ASSERT(ev->place_user != NULL && ev->fen != NULL);
}

/* ---- after every step ---- */

static void zone_cross_check(struct br_auditor *a)
{
    for (uint32_t i = 0; i < a->touched_count; i++) {
        struct a_event *ev = a->touched[i];
        if (ev->sold_out_ms < 0 && ev_sold_out(ev)) {
            ev->sold_out_ms = a->cmd->now_ms; /* the last seat sold (final: S2) */
            if (a->wr.sold_out_ms < 0) {
                a->wr.sold_out_ms = ev->sold_out_ms;
            }
        }
        for (uint32_t z = 1; z <= ev->spec.zone_count; z++) {
            if (!(ev->touched & (1u << (z - 1)))) {
                continue;
            }
            uint32_t held = ev->held[z - 1], sold = ev->sold[z - 1];
            if (!check(a, BR_INV_S1, (uint64_t)held + sold <= ev->spec.zones[z - 1].capacity)) {
                violate(a, BR_INV_S1, ev->id, 0, 0, 0, 0,
                        "zone %u: held %u + sold %u > capacity %u", z, held, sold,
                        ev->spec.zones[z - 1].capacity);
            }
            uint32_t bh = 0, bs = 0;
            if (a->backend != NULL && a->backend->ops->zone_counts != NULL &&
                a->backend->ops->zone_counts(a->backend, ev->id, z, &bh, &bs) == BR_OK) {
                int inv = a->step_swept && bh < held ? BR_INV_S7 : BR_INV_S1;
                if (!check(a, inv, bh == held && bs == sold)) {
                    violate(a, inv, ev->id, 0, 0, 0, 0,
                            "zone %u: the backend has held %u sold %u, the model held %u sold %u%s",
                            z, bh, bs, held, sold,
                            inv == BR_INV_S7 ? " (expired seats returned more than once)" : "");
                }
            }
        }
        ev->touched = 0;
    }
    a->touched_count = 0;
}

void br_auditor_observe(struct br_auditor *a, const struct br_cmd *c, const struct br_outcome *out,
                        const struct br_effect *fx, uint32_t n)
{
    a->step++;
    a->cmd = c;
    a->step_swept = false;
    switch (c->type) {
    case BR_CMD_EVENT_CREATE:
        on_event_create(a, c, out);
        break;
    case BR_CMD_USER_REGISTER:
        if (out->err == BR_OK) {
            if (!check(a, BR_INV_S2, out->id == a->users + 1)) {
                violate(a, BR_INV_S2, 0, out->id, 0, 0, 0, "user id %" PRIu64 " out of sequence",
                        out->id);
            }
            a->users++;
        }
        break;
    case BR_CMD_USER_ROLE_SET:
        break;
    case BR_CMD_QUEUE_JOIN:
        on_join(a, c, out, fx, n);
        break;
    case BR_CMD_QUEUE_LEAVE:
        on_leave(a, c, out, fx, n);
        break;
    case BR_CMD_ADMIT:
        on_admit(a, c, out, fx, n);
        break;
    case BR_CMD_RESERVE:
        on_reserve(a, c, out);
        break;
    case BR_CMD_CANCEL:
        on_cancel(a, c, out, fx, n);
        break;
    case BR_CMD_SWEEP:
        on_sweep(a, c, out, fx, n);
        break;
    case BR_CMD_PAYMENT_CREATE:
        on_payment_create(a, c, out, fx, n);
        break;
    case BR_CMD_PAYMENT_EVENT:
        on_payment_event(a, c, out, fx, n);
        break;
    case BR_CMD_REFUND_RESULT:
        on_refund_result(a, c, out);
        break;
    case BR_CMD_SAGA_STEP:
        on_saga_step(a, c, out, fx, n);
        break;
    case BR_CMD_PAYMENT_CHECK:
        on_payment_check(a, c, out, fx, n);
        break;
    case BR_CMD_QUEUE_MODE_SET:
        on_mode_set(a, c, out, fx, n);
        break;
    case BR_CMD_PRESENCE:
        on_presence(a, c, out);
        break;
    default:
        break;
    }
    zone_cross_check(a);
    a->cmd = NULL;
}

/* ---- the end ---- */

void br_auditor_liveness(const struct br_auditor *a, int64_t now_ms, struct br_audit_liveness *l)
{
    memset(l, 0, sizeof *l);
    for (uint32_t i = 0; i < a->event_count; i++) {
        const struct a_event *ev = &a->events[i];
        /* Issue 13: a closed, passthrough or sold-out queue is settled: its
         * waiting users were told (queue_state) and admit nobody. */
        uint8_t g = ev_gate(ev, now_ms);
        if (g != BR_GATE_CLOSED && g != BR_GATE_PASSTHROUGH && g != BR_GATE_SOLD_OUT) {
            l->waiting += ev->waiting;
        }
        for (uint32_t n = 0; n < ev->hold_count; n++) {
            const struct a_hold *h = &ev->holds[n];
            if (h->state == BR_HOLD_HELD) {
                if (now_ms >= h->deadline_ms) {
                    l->overdue_holds++;
                } else {
                    l->live_holds++;
                }
            }
        }
        for (uint32_t n = 0; n < ev->pay_count; n++) {
            uint8_t s = ev->pays[n].state;
            l->pending_payments += s == AY_PENDING;
            l->refunds_owed += s == AY_REFUND_PENDING;
        }
    }
    l->converged = l->waiting == 0 && l->overdue_holds == 0 && l->live_holds == 0 &&
                   l->pending_payments == 0 && l->refunds_owed == 0;
}

/* S1 at the end, per zone of ev: the seats the model's holds account for
 * (held ones, confirmed ones) are its counters, within capacity, and the
 * backend's counters agree -- also for zones no step touched since a
 * drift. O(holds of ev + zones). */
static void zones_at_the_end(struct br_auditor *a, const struct a_event *ev)
{
    uint64_t held[BR_EVENT_ZONES_MAX] = {0}, sold[BR_EVENT_ZONES_MAX] = {0};
    for (uint32_t n = 0; n < ev->hold_count; n++) {
        const struct a_hold *h = &ev->holds[n];
        BR_ASSERT(h->zone >= 1 && h->zone <= ev->spec.zone_count);
        held[h->zone - 1] += h->state == BR_HOLD_HELD ? h->qty : 0;
        sold[h->zone - 1] += h->state == BR_HOLD_CONFIRMED ? h->qty : 0;
    }
    for (uint32_t z = 1; z <= ev->spec.zone_count; z++) {
        uint32_t mh = ev->held[z - 1], ms = ev->sold[z - 1];
        if (!check(a, BR_INV_S1,
                   held[z - 1] == mh && sold[z - 1] == ms &&
                       (uint64_t)mh + ms <= ev->spec.zones[z - 1].capacity)) {
            violate(a, BR_INV_S1, ev->id, 0, 0, 0, 0,
                    "at the end zone %u: held %u sold %u (holds say %" PRIu64 " and %" PRIu64
                    "), capacity %u",
                    z, mh, ms, held[z - 1], sold[z - 1], ev->spec.zones[z - 1].capacity);
        }
        uint32_t bh = 0, bs = 0;
        if (a->backend != NULL && a->backend->ops->zone_counts != NULL &&
            a->backend->ops->zone_counts(a->backend, ev->id, z, &bh, &bs) == BR_OK &&
            !check(a, BR_INV_S1, bh == mh && bs == ms)) {
            violate(a, BR_INV_S1, ev->id, 0, 0, 0, 0,
                    "at the end zone %u: the backend has held %u sold %u, the model held %u sold %u",
                    z, bh, bs, mh, ms);
        }
    }
}

void br_auditor_finish(struct br_auditor *a, int64_t now_ms, struct br_audit_liveness *l)
{
    br_auditor_liveness(a, now_ms, l);
    a->step++; /* the end is a step of its own in reports */
    if (!check(a, BR_INV_L1, l->waiting == 0)) {
        violate(a, BR_INV_L1, 0, 0, 0, 0, 0, "%" PRIu64 " users still wait in a queue at the end",
                l->waiting);
    }
    if (!check(a, BR_INV_L1, l->overdue_holds == 0)) {
        violate(a, BR_INV_L1, 0, 0, 0, 0, 0, "%" PRIu64 " holds outlived their deadline at the end",
                l->overdue_holds);
    }
    if (!check(a, BR_INV_L1, l->pending_payments == 0)) {
        violate(a, BR_INV_L1, 0, 0, 0, 0, 0, "%" PRIu64 " payments never reached a final state",
                l->pending_payments);
    }
    if (!check(a, BR_INV_L1, l->refunds_owed == 0)) {
        violate(a, BR_INV_L1, 0, 0, 0, 0, 0, "%" PRIu64 " refunds still owed at the end",
                l->refunds_owed);
    }
    for (uint32_t i = 0; i < a->event_count; i++) {
        const struct a_event *ev = &a->events[i];
        for (uint32_t n = 0; n < ev->pay_count; n++) {
            const struct a_pay *p = &ev->pays[n];
            if (p->succeeded &&
                !check(a, BR_INV_S6, p->state == AY_CONFIRMED || p->state == AY_REFUNDED)) {
                violate(a, BR_INV_S6, ev->id, ev->holds[p->hold_n - 1].user, mkid(ev, p->hold_n),
                        mkid(ev, n + 1), 0,
                        "a successful payment ended %s, not confirmed or refunded",
                        p->state == AY_REFUND_PENDING ? "refund_pending" : "unresolved");
            }
        }
        zones_at_the_end(a, ev);
    }
    if (!check(a, BR_INV_S8,
               a->charged - a->refunded_done == a->confirmed_value || l->refunds_owed > 0)) {
        violate(a, BR_INV_S8, 0, 0, 0, 0, 0,
                "at the end charges %" PRId64 " - refunds %" PRId64 " != confirmed value %" PRId64,
                a->charged, a->refunded_done, a->confirmed_value);
    }
}

uint64_t br_auditor_violations(const struct br_auditor *a)
{
    uint64_t s = 0;
    for (int i = 0; i < BR_INV_COUNT; i++) {
        s += a->violations[i];
    }
    return s;
}

const struct br_violation *br_auditor_first(const struct br_auditor *a)
{
    return a->has_first ? &a->first : NULL;
}

uint64_t br_auditor_checks(const struct br_auditor *a, int inv)
{
    return a->checks[inv];
}

uint64_t br_auditor_violations_of(const struct br_auditor *a, int inv)
{
    return a->violations[inv];
}

uint64_t br_auditor_steps(const struct br_auditor *a)
{
    return a->step;
}

const struct br_audit_wr *br_auditor_wr(const struct br_auditor *a)
{
    return &a->wr;
}

const struct br_audit_funnel *br_auditor_funnel(const struct br_auditor *a)
{
    return &a->funnel;
}

uint64_t br_auditor_worst_inversion(const struct br_auditor *a)
{
    return a->worst_inversion;
}

uint64_t br_auditor_waits(const struct br_auditor *a)
{
    return a->wait_count;
}

/* Quickselect with a three-way partition around a middle pivot: O(n)
 * expected; bounded because [lo, hi) shrinks by at least one element (the
 * pivot's block) each round. */
static uint32_t select_kth(uint32_t *v, uint64_t n, uint64_t k)
{
    uint64_t lo = 0, hi = n;
    while (hi - lo > 1) {
        uint32_t pivot = v[lo + (hi - lo) / 2];
        uint64_t lt = lo, i = lo, gt = hi;
        while (i < gt) {
            if (v[i] < pivot) {
                uint32_t t = v[i];
                v[i++] = v[lt];
                v[lt++] = t;
            } else if (v[i] > pivot) {
                uint32_t t = v[i];
                v[i] = v[--gt];
                v[gt] = t;
            } else {
                i++;
            }
        }
        if (k < lt) {
            hi = lt;
        } else if (k >= gt) {
            lo = gt;
        } else {
            return pivot;
        }
    }
    return v[lo];
}

int64_t br_auditor_wait_quantile(struct br_auditor *a, double p)
{
    if (a->wait_count == 0) {
        return 0;
    }
    double pos = p * (double)(a->wait_count - 1);
    uint64_t k = pos <= 0 ? 0 : (uint64_t)(pos + 0.5);
    if (k >= a->wait_count) {
        k = a->wait_count - 1;
    }
    return select_kth(a->waits, a->wait_count, k);
}

void br_auditor_money(const struct br_auditor *a, int64_t *charged, int64_t *confirmed,
                      int64_t *refund_owed, int64_t *refunded)
{
    *charged = a->charged;
    *confirmed = a->confirmed_value;
    *refund_owed = a->refund_owed;
    *refunded = a->refunded_done;
}

void br_auditor_report(struct br_auditor *a, int inv, const char *msg)
{
    violate(a, inv, 0, 0, 0, 0, 0, "%s", msg);
}

void br_auditor_count_check(struct br_auditor *a, int inv)
{
    a->checks[inv]++;
}
