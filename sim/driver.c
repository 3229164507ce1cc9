/*
 * driver.c -- the crowd, the workers, the provider and the faults (see
 * driver.h for the design).
 *
 * A person's life, one phase at a time (each arrow is an action on the
 * agenda, each box a command):
 *
 *   arrive ─[join]─▶ queued ─(pass issued, notified)─▶ admitted ─[reserve]─▶ held
 *     │                │ patience runs out: [leave] or closes the tab      │
 *     │ (no pass needed)──────────────────────────────▶ admitted          ▼
 *     ▼                                                        [payment_create] ▶ paying
 *   done ◀── confirmed / refunded / gave up / sold out ◀── webhook applied ─┘
 *
 * Around it: double clicks (the same request twice, same idempotency key),
 * extra tabs (more joins, and reserves racing for the one pass), greedy
 * people asking past the per-user limit, bots sending junk and other
 * people's passes. The provider charges once per payment id, answers with a
 * webhook after a delay (sometimes days), sometimes twice, sometimes a
 * decline and a success in either order; refunds once per payment id. A
 * declined person who pays again gets the same payment back (one per
 * booking) and confirms its intent again with another card: a new decision
 * of the provider, with its own event id; a succeeded intent takes no
 * second confirmation. Some webhooks are lost for good (payments.lost_rate):
 * with payments.check_ms the saga worker issues payment_check each tick and
 * carries its provider_query / provider_void effects to the provider, which
 * answers from its ledger (a void cancels an intent not captured: a charge
 * attempt reaching it later is declined); the answer goes back as the
 * payment_event a webhook would have been (point 8).
 */
#include "sim/driver.h"

#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/hash.h"
#include "core/panic.h"
#include "core/rng.h"
#include "core/saga.h"
#include "sim/evq.h"

/* rng streams: one per subsystem */
enum {
    ST_ARRIVAL = 1,
    ST_BEHAVIOUR = 2,
    ST_PROVIDER = 3,
    ST_FAULTS = 4,
    ST_BOTS = 5,
    ST_CLOCKS = 6,
    ST_WAITING_ROOM = 7, /* issue 13: abandonment, reactions to queue_state */
};

enum proc { P_API = 0, P_ADMITTER = 1, P_SWEEPER = 2, P_SAGA = 3, P_COUNT = 4 };

enum action_kind {
    A_ARRIVAL = 1, /* the next person in arrival order arrives */
    A_USER,        /* a person's next step (gen-checked) */
    A_JOIN_DUP,    /* a second click or another tab joins again */
    A_RESERVE_DUP, /* the same reserve again (x = pass, y = key, a8 = zone, b8 = qty) */
    A_RESERVE_TAB, /* another tab's reserve (x = pass, a8 = zone, b8 = qty) */
    A_PAY_DUP,     /* the same payment_create again (x = hold) */
    A_ADMIT_TICK,  /* who = event index */
    A_SWEEP_TICK,  /* who = event index */
    A_SAGA_TICK,
    A_CHARGE,  /* the provider receives a charge (x = payment) */
    A_WEBHOOK, /* a delivery (x = payment, y = provider event id, a8 = succeeded, b8 = attempt) */
    A_REFUND_CALL,   /* the saga worker calls the provider's refund (x = payment) */
    A_REFUND_RESULT, /* ... and records the answer (x = payment, a8 = ok) */
    A_QUERY_CALL,    /* the saga worker asks the provider (x = payment, a8 = void) */
    A_CRASH,         /* who = worker */
    A_RESTART,       /* who = worker */
    A_BOT,           /* who = bot index */
    A_FAULTS_END,
    A_OPERATOR, /* issue 13: operator step `who` (queue_mode_set as the system) */
    A_PRESENCE, /* issue 13: the server's presence reports (every presence.report_ms) */
    A_ABANDON,  /* issue 13: person `who` (gen-checked) closes the tab for good */
    A_TOLD,     /* issue 13: event `who`'s waiting people were told gate a8 (closed, sold out) */
};

enum phase { PH_NEW = 0, PH_QUEUED, PH_ADMITTED, PH_HELD, PH_PAYING, PH_DONE };

enum trait {
    T_PATIENCE = 1u << 0, /* gives up waiting in the queue */
    T_DOUBLE = 1u << 1,   /* double-clicks */
    T_TABS = 1u << 2,     /* several tabs */
    T_GREEDY = 1u << 3,   /* asks past the limit */
    T_SILENT = 1u << 4,   /* leaves by closing the tab */
    T_FRESH = 1u << 5,    /* holds a pass it has not used yet: looks at the page first */
    T_GONE = 1u << 6,     /* issue 13: left the queue silently, never seen again */
};

/* Issue 13: a join's wait estimate, judged when the pass comes. */
struct est_rec {
    int64_t join_t;
    uint32_t est_s; /* UINT32_MAX = none */
};

struct person {
    uint32_t gen;    /* bumps invalidate scheduled A_USER actions */
    uint8_t phase;   /* enum phase */
    uint8_t event;   /* event index */
    uint8_t traits;  /* enum trait */
    uint8_t tabs;    /* tabs open (1 = one) */
    uint8_t rejoins; /* budget used */
    uint8_t reserves;
    uint8_t pays;
    uint8_t sold_mask; /* zones this person saw sold out */
    uint8_t zone;      /* zone being tried (1-based) */
    uint8_t qty;
    uint8_t bought; /* seats confirmed */
    uint8_t pad;
    uint32_t key_seq; /* idempotency keys drawn */
    uint64_t pass_id;
    int64_t pass_deadline_ms; /* absolute, as issued */
    uint64_t hold_id;
    int64_t hold_deadline_ms;
    uint64_t payment_id;
};

struct bot {
    uint32_t left;    /* requests left */
    uint64_t pass_id; /* a pass issued to the bot, if any */
    uint64_t last_key;
    uint32_t last_zone;
};

/* The provider's record of one payment. */
struct pay_rec {
    uint64_t hold_id;
    int64_t amount_minor;
    uint32_t user;    /* user id */
    uint8_t charged;  /* the charge was received (the provider de-duplicates by payment id) */
    uint8_t captured; /* money taken */
    uint8_t refunded; /* money given back */
    uint8_t declined; /* the last attempt was declined: the intent takes another card */
    uint8_t attempts; /* confirmations decided (one intent per payment, many attempts) */
    uint8_t canceled; /* voided (point 8): no charge attempt succeeds any more */
};

struct drv_event {
    uint64_t id;
    int64_t opens_t;     /* sale opening, in t (ms since start) */
    uint32_t queue_len;  /* last queue_length the backend reported */
    uint32_t live_holds; /* holds held, as the driver counts them */
    uint32_t last_hold_n;
    uint32_t last_pay_n;
    int64_t soldout_t[BR_EVENT_ZONES_MAX]; /* when a zone was last seen sold out, -1 = not */
    bool admit_scheduled;
    bool sweep_scheduled;
    uint8_t gate; /* issue 13: the gate last announced (queue_state), enum br_queue_gate */
    struct pay_rec *pays; /* by payment n - 1 */
    uint32_t pay_cap;
};

struct worker_state {
    bool down;
    bool crash_armed; /* the next command is the crash point */
    int64_t down_until;
};

struct drv {
    const struct br_driver_opts *o;
    const struct br_scenario *s;
    struct br_driver_stats *st;
    struct br_evq q;
    int64_t t;               /* simulated now (ms since start) */
    int64_t offset[P_COUNT]; /* clock skew per process */
    struct worker_state w[BR_WORKER_COUNT];
    bool faults_on;
    struct br_rng r_beh, r_prov, r_fault, r_bot, r_clock;
    struct person *people;
    uint32_t users;
    struct bot *bots;
    uint64_t first_bot_id;
    uint64_t *arrivals; /* (t << 22 | user), sorted */
    uint32_t next_arrival;
    struct drv_event ev[BR_SCN_EVENTS_MAX];
    uint32_t refunds_pending; /* as the driver counts them */
    uint32_t checks_pending;  /* payments awaiting a status check (payment_check's count) */
    bool saga_scheduled;
    int64_t saga_idle_ms;       /* the saga's polling interval while nothing was due */
    uint64_t recent_passes[64]; /* for bots to steal */
    uint32_t recent_count;
    uint64_t holds_used; /* holds the backend created (ids are sequential) */
    uint64_t payments_used;
    uint64_t idem_used; /* reserves sent with a fresh key */
    bool stop;
    int io_error;
    struct br_cmd cmd; /* scratch */
    /* issue 13 */
    struct br_rng r_wr;
    struct est_rec *est; /* per person, when the backend estimates */
    int64_t *est_err;    /* |estimated - actual| wait, ms */
    uint64_t est_count, est_cap;
};

static const char *const fault_names[BR_FAULT_COUNT] = {
    "admitter_crash",  "sweeper_crash", "saga_crash",    "lost_after_step", "webhook_duplicate",
    "webhook_reorder", "webhook_late",  "webhook_retry", "payment_decline", "payment_timeout",
    "refund_failure",  "clock_skew",    "double_click",  "extra_tab",       "bot_request",
    "webhook_lost",
};

const char *br_fault_name(int f)
{
    return f >= 0 && f < BR_FAULT_COUNT ? fault_names[f] : "?";
}

/* ---- helpers ---- */

static int64_t range_draw(struct br_rng *r, struct br_scn_range rg)
{
    if (rg.max_ms <= rg.min_ms) {
        return rg.min_ms;
    }
    return rg.min_ms + (int64_t)br_rng_below(r, (uint64_t)(rg.max_ms - rg.min_ms + 1));
}

static int64_t exp_draw(struct br_rng *r, double mean)
{
    double u = br_rng_unit(r);
    double v = -log(1.0 - u) * mean;
    return v > 1e12 ? (int64_t)1e12 : (int64_t)v;
}

static uint32_t weighted(struct br_rng *r, const double *w, uint32_t n)
{
    double sum = 0;
    for (uint32_t i = 0; i < n; i++) {
        sum += w[i];
    }
    if (sum <= 0) {
        return (uint32_t)br_rng_below(r, n);
    }
    double x = br_rng_unit(r) * sum;
    for (uint32_t i = 0; i < n; i++) {
        if (x < w[i]) {
            return i;
        }
        x -= w[i];
    }
    return n - 1;
}

static int64_t now_of(const struct drv *d, enum proc p)
{
    return d->s->start_epoch_ms + d->t + d->offset[p];
}

static void push(struct drv *d, int64_t at, uint8_t kind, uint32_t who, uint32_t gen, uint64_t x,
                 uint64_t y, uint8_t a8, uint8_t b8)
{
    struct br_action a = {.at_ms = at < d->t ? d->t : at,
                          .kind = kind,
                          .who = who,
                          .gen = gen,
                          .x = x,
                          .y = y,
                          .a8 = a8,
                          .b8 = b8};
    br_evq_push(&d->q, &a);
}

static void push_user(struct drv *d, uint32_t u, int64_t at)
{
    push(d, at, A_USER, u, ++d->people[u].gen, 0, 0, 0, 0);
}

/* Bytes of struct br_cmd a command of this type uses: the header and its
 * member of the union. Only those are zeroed (the codec and the digests
 * read nothing else), which spares a 600-byte memset per command. */
static size_t cmd_bytes(uint8_t type)
{
    size_t head = offsetof(struct br_cmd, u);
    const struct br_cmd *c = NULL;
    switch (type) {
    case BR_CMD_EVENT_CREATE:
        return head + sizeof c->u.event_create;
    case BR_CMD_USER_REGISTER:
        return head + sizeof c->u.user_register;
    case BR_CMD_RESERVE:
        return head + sizeof c->u.reserve;
    case BR_CMD_PAYMENT_EVENT:
        return head + sizeof c->u.payment_event;
    default:
        return head + 24; /* every other member is at most 24 bytes */
    }
}

_Static_assert(sizeof(((struct br_cmd *)0)->u.sweep) <= 24 &&
                   sizeof(((struct br_cmd *)0)->u.refund_result) <= 24 &&
                   sizeof(((struct br_cmd *)0)->u.user_role_set) <= 24 &&
                   sizeof(((struct br_cmd *)0)->u.cancel) <= 24 &&
                   sizeof(((struct br_cmd *)0)->u.saga_step) <= 24 &&
                   sizeof(((struct br_cmd *)0)->u.queue_join) <= 24,
               "small command members fit the 24 bytes cmd_bytes zeroes");

static struct br_cmd *cmd_new(struct drv *d, uint8_t type, enum proc p, uint64_t user_id)
{
    struct br_cmd *c = &d->cmd;
    memset(c, 0, cmd_bytes(type));
    c->type = type;
    c->now_ms = now_of(d, p);
    c->user_id = user_id;
    return c;
}

static struct drv_event *event_by_id(struct drv *d, uint64_t event_id)
{
    for (uint32_t i = 0; i < d->s->event_count; i++) {
        if (d->ev[i].id == event_id) {
            return &d->ev[i];
        }
    }
    return NULL;
}

static struct pay_rec *pay_rec(struct drv *d, uint64_t payment_id, bool create)
{
    struct drv_event *ev = event_by_id(d, payment_id >> 32);
    uint32_t n = (uint32_t)(payment_id & 0xffffffffu);
    if (ev == NULL || n == 0) {
        return NULL;
    }
    if (n > ev->pay_cap) {
        if (!create) {
            return NULL;
        }
        uint32_t cap = ev->pay_cap ? ev->pay_cap : 1024;
        while (cap < n) {
            cap *= 2;
        }
        struct pay_rec *p = realloc(ev->pays, sizeof *p * cap);
        if (p == NULL) {
            fprintf(stderr, "bookingrush: sim: out of memory\n");
            abort();
        }
        memset(p + ev->pay_cap, 0, sizeof *p * (cap - ev->pay_cap));
        ev->pays = p;
        ev->pay_cap = cap;
    }
    return &ev->pays[n - 1];
}

static bool is_person(const struct drv *d, uint64_t user_id)
{
    return user_id >= 1 && user_id <= d->users;
}

/* Room for one more reserve (a hold and an idempotency record at most). */
static bool room_for_reserve(struct drv *d)
{
    if (d->holds_used < d->o->cfg->holds_max && d->idem_used < d->o->cfg->idem_max) {
        return true;
    }
    d->st->capacity_refusals++;
    return false;
}

static bool room_for_payment(struct drv *d)
{
    if (d->payments_used < d->o->cfg->payments_max) {
        return true;
    }
    d->st->capacity_refusals++;
    return false;
}

/* The event page shows every zone sold out (as the driver last heard). */
static bool page_sold_out(const struct drv *d, uint32_t ei)
{
    const struct br_event_spec *sp = &d->s->events[ei].spec;
    for (uint32_t z = 0; z < sp->zone_count; z++) {
        if (d->ev[ei].soldout_t[z] < 0) {
            return false;
        }
    }
    return true;
}

static uint64_t next_key(struct drv *d, uint32_t u)
{
    /* Keys are what a browser would make (random-looking), unique per attempt. */
    uint64_t k = br_mix64(((uint64_t)(u + 1) << 24) ^ ++d->people[u].key_seq ^ 0x6b6579ULL);
    return k ? k : 1;
}

/* ---- workers ---- */

static int64_t next_tick(const struct drv *d, int w)
{
    int64_t tick = d->s->workers[w].tick_ms;
    return (d->t / tick + 1) * tick;
}

static void wake_admitter(struct drv *d, struct drv_event *ev)
{
    if (!ev->admit_scheduled) {
        ev->admit_scheduled = true;
        push(d, next_tick(d, BR_WORKER_ADMITTER), A_ADMIT_TICK, (uint32_t)(ev - d->ev), 0, 0, 0, 0,
             0);
    }
}

static void wake_sweeper(struct drv *d, struct drv_event *ev)
{
    if (!ev->sweep_scheduled) {
        ev->sweep_scheduled = true;
        push(d, next_tick(d, BR_WORKER_SWEEPER), A_SWEEP_TICK, (uint32_t)(ev - d->ev), 0, 0, 0, 0,
             0);
    }
}

/* The saga worker polls for due refund retries: every tick_ms while it
 * finds some, backing off to once a minute while it finds none (a refund
 * refused for an hour would otherwise cost 3,600 idle polls). New work
 * (a refund owed, a refund refused) brings the interval back down. */
#define SAGA_IDLE_MAX_MS 60000

static void wake_saga(struct drv *d)
{
    if (!d->saga_scheduled) {
        d->saga_scheduled = true;
        int64_t at = next_tick(d, BR_WORKER_SAGA);
        if (d->saga_idle_ms > d->s->workers[BR_WORKER_SAGA].tick_ms) {
            at = d->t + d->saga_idle_ms;
        }
        push(d, at, A_SAGA_TICK, 0, 0, 0, 0, 0, 0);
    }
}

static void saga_new_work(struct drv *d)
{
    d->saga_idle_ms = d->s->workers[BR_WORKER_SAGA].tick_ms;
    wake_saga(d);
}

/* A worker about to issue a command: true if the command is its crash
 * point (it is applied, then the worker dies and its follow-ups are lost). */
static bool crash_point(struct drv *d, int w)
{
    if (!d->w[w].crash_armed) {
        return false;
    }
    struct worker_state *ws = &d->w[w];
    ws->crash_armed = false;
    ws->down = true;
    ws->down_until = d->t + range_draw(&d->r_fault, d->s->workers[w].down_ms);
    push(d, ws->down_until, A_RESTART, (uint32_t)w, 0, 0, 0, 0, 0);
    if (ws->down_until > d->st->faults_end_ms) {
        d->st->faults_end_ms = ws->down_until;
    }
    d->st->faults[BR_FAULT_LOST_AFTER_STEP]++;
    return true;
}

/* ---- the one way a command enters the backend ---- */

struct applied {
    struct br_outcome out;
    const struct br_effect *fx;
    uint32_t n;
};

static void on_effects(struct drv *d, enum proc p, bool lost, const struct applied *ap);

static bool apply(struct drv *d, enum proc p, bool lost, struct applied *ap)
{
    const struct br_cmd *c = &d->cmd;
    br_sim_backend_apply(d->o->backend, c, &ap->out, &ap->fx, &ap->n);
    d->st->commands++;
    d->st->by_type[c->type < BR_CMD_TYPE_COUNT ? c->type : 0]++;
    if (d->o->record != NULL && br_journal_writer_append(d->o->record, c, &ap->out) != BR_OK) {
        d->io_error = BR_E_IO;
        d->stop = true;
    }
    br_auditor_observe(d->o->auditor, c, &ap->out, ap->fx, ap->n);
    if (c->type == BR_CMD_RESERVE && ap->out.err == BR_E_SOLD_OUT) {
        struct drv_event *ev = event_by_id(d, c->u.reserve.event_id);
        if (ev != NULL && c->u.reserve.zone_id >= 1 && c->u.reserve.zone_id <= BR_EVENT_ZONES_MAX) {
            ev->soldout_t[c->u.reserve.zone_id - 1] = d->t; /* the page says sold out now */
        }
    }
    if (c->type == BR_CMD_CANCEL && ap->out.err == BR_OK) {
        /* Whoever cancelled (a person, or a bot its own hold), a live hold ended. */
        struct drv_event *ev = event_by_id(d, c->u.cancel.hold_id >> 32);
        if (ev != NULL && ev->live_holds > 0) {
            ev->live_holds--;
        }
        for (uint32_t z = 0; ev != NULL && z < BR_EVENT_ZONES_MAX; z++) {
            ev->soldout_t[z] = -1; /* seats came back */
        }
        if (ev != NULL && ev->gate == BR_GATE_SEATS_HELD) {
            wake_admitter(d, ev); /* issue 13: seats came back to a held-up queue */
        }
    }
    if (d->o->self_check_every != 0 && d->st->commands % d->o->self_check_every == 0 &&
        d->o->backend->ops->self_check != NULL && br_auditor_violations(d->o->auditor) == 0) {
        d->o->backend->ops->self_check(d->o->backend);
    }
    if (br_auditor_violations(d->o->auditor) > 0) {
        d->stop = true;
        d->st->stopped_on_violation = true;
        return false;
    }
    on_effects(d, p, lost, ap);
    return true;
}

/* ---- people ---- */

static void person_done(struct drv *d, uint32_t u)
{
    d->people[u].phase = PH_DONE;
    d->people[u].gen++;
}

static void send_join(struct drv *d, uint32_t u, bool main_flow);

/* Queue again after a lapsed pass, an expired hold or a sold-out zone, if
 * this person does that and has budget left; else done. */
static void maybe_rejoin(struct drv *d, uint32_t u, int64_t delay_ms)
{
    struct person *pp = &d->people[u];
    const struct br_scn_crowd *c = &d->s->crowd;
    if (pp->rejoins < c->rejoins_max && pp->reserves < c->reserve_attempts_max &&
        br_rng_chance(&d->r_beh, c->rejoin_fraction)) {
        pp->rejoins++;
        pp->phase = PH_NEW;
        pp->pass_id = 0;
        pp->hold_id = 0;
        pp->payment_id = 0;
        pp->sold_mask = 0;
        push_user(d, u, d->t + delay_ms);
        return;
    }
    person_done(d, u);
}

static uint32_t pick_zone(struct drv *d, uint32_t u)
{
    struct person *pp = &d->people[u];
    const struct br_event_spec *sp = &d->s->events[pp->event].spec;
    double w[BR_EVENT_ZONES_MAX];
    uint32_t open = 0;
    for (uint32_t z = 0; z < sp->zone_count; z++) {
        w[z] = (pp->sold_mask & (1u << z))       ? 0.0
               : d->s->crowd.zone_weights[z] > 0 ? d->s->crowd.zone_weights[z]
                                                 : 1.0;
        open += w[z] > 0;
    }
    if (open == 0) {
        return 0;
    }
    return weighted(&d->r_beh, w, sp->zone_count) + 1;
}

static uint32_t pick_qty(struct drv *d, uint32_t u)
{
    struct person *pp = &d->people[u];
    uint32_t limit = d->s->events[pp->event].spec.per_user_limit;
    uint32_t q = weighted(&d->r_beh, d->s->crowd.quantity_weights, BR_SCN_QTY_MAX) + 1;
    if (pp->traits & T_GREEDY) {
        q = limit + 1 + (uint32_t)br_rng_below(&d->r_beh, 2); /* past the limit on purpose */
    } else if (q + pp->bought > limit) {
        q = limit > pp->bought ? limit - pp->bought : 1;
    }
    if (q > BR_HOLD_QUANTITY_MAX) {
        q = BR_HOLD_QUANTITY_MAX;
    }
    return q;
}

static void start_reserving(struct drv *d, uint32_t u, int64_t at);

/* Issue 13, after a person's join took or kept a place: the estimate they
 * were shown, and (crowd.abandon_share) whether they will leave silently. */
static void waiting_room_joined(struct drv *d, uint32_t u, const struct br_outcome *out)
{
    struct person *pp = &d->people[u];
    const struct br_sim_backend *b = d->o->backend;
    if (d->est != NULL && out->status == BR_QS_WAITING && out->position > 0 &&
        b->ops->queue_estimate != NULL) {
        struct br_queue_estimate e;
        d->est[u].est_s = UINT32_MAX;
        if (b->ops->queue_estimate(b, d->ev[pp->event].id, out->position, now_of(d, P_API),
                                   (uint32_t)d->s->workers[BR_WORKER_ADMITTER].tick_ms,
                                   &e) == BR_OK &&
            e.wait_s != UINT32_MAX) {
            d->est[u].est_s = e.wait_s;
            d->est[u].join_t = d->t;
        }
    }
    if (d->s->crowd.abandon_share > 0 && out->status != BR_QS_ADMITTED &&
        br_rng_chance(&d->r_wr, d->s->crowd.abandon_share)) {
        int64_t after = 1000 + (int64_t)br_rng_below(&d->r_wr, 60000);
        push(d, d->t + after, A_ABANDON, u, pp->gen, 0, 0, 0, 0);
    }
}

static void on_join_result(struct drv *d, uint32_t u, const struct applied *ap, bool main_flow)
{
    struct person *pp = &d->people[u];
    struct drv_event *ev = &d->ev[pp->event];
    if (ap->out.err == BR_OK) {
        ev->queue_len = ap->out.queue_length;
        if (ap->out.queue_length > 0) {
            wake_admitter(d, ev);
        }
    }
    if (!main_flow) {
        return;
    }
    if (ap->out.err != BR_OK) {
        person_done(d, u); /* the queue is full: this person goes home */
        return;
    }
    if (ap->out.status == BR_QS_PASSTHROUGH) {
        /* Issue 13: no queue at all: straight to the seats, no pass. */
        pp->pass_id = 0;
        start_reserving(d, u, d->t + range_draw(&d->r_beh, d->s->crowd.think_ms) / 4);
        return;
    }
    pp->phase = PH_QUEUED;
    pp->gen++;
    waiting_room_joined(d, u, &ap->out);
    if (ap->out.status == BR_QS_ADMITTED && ap->out.ref != 0) {
        /* Already admitted (a tab saw it first). */
        pp->phase = PH_ADMITTED;
        pp->pass_id = ap->out.ref;
        pp->pass_deadline_ms = ap->out.deadline_ms;
        push_user(d, u, d->t + range_draw(&d->r_beh, d->s->crowd.think_ms));
        return;
    }
    if (pp->traits & T_PATIENCE) {
        push_user(d, u, d->t + exp_draw(&d->r_beh, (double)d->s->crowd.patience_mean_ms));
    }
}

static void send_join(struct drv *d, uint32_t u, bool main_flow)
{
    struct person *pp = &d->people[u];
    struct br_cmd *c = cmd_new(d, BR_CMD_QUEUE_JOIN, P_API, u + 1u);
    c->u.queue_join.event_id = d->ev[pp->event].id;
    struct applied ap;
    if (apply(d, P_API, false, &ap)) {
        on_join_result(d, u, &ap, main_flow);
    }
}

static void send_reserve(struct drv *d, uint32_t u);
static void send_leave(struct drv *d, uint32_t u);

static void start_reserving(struct drv *d, uint32_t u, int64_t at)
{
    struct person *pp = &d->people[u];
    pp->phase = PH_ADMITTED;
    pp->zone = 0;
    pp->traits |= T_FRESH;
    push_user(d, u, at);
}

static void arrive(struct drv *d, uint32_t u)
{
    struct person *pp = &d->people[u];
    const struct br_scn_crowd *c = &d->s->crowd;
    if (pp->rejoins == 0 && pp->key_seq == 0) {
        /* First arrival: draw who this person is. */
        if (br_rng_chance(&d->r_beh, c->patience_fraction)) {
            pp->traits |= T_PATIENCE;
            if (br_rng_chance(&d->r_beh, c->silent_leave_fraction)) {
                pp->traits |= T_SILENT;
            }
        }
        if (br_rng_chance(&d->r_beh, c->double_click_fraction)) {
            pp->traits |= T_DOUBLE;
        }
        pp->tabs = 1;
        if (br_rng_chance(&d->r_beh, c->tabs_fraction)) {
            pp->traits |= T_TABS;
            pp->tabs = (uint8_t)(2 + br_rng_below(&d->r_beh, c->tabs_max - 1));
        }
        if (br_rng_chance(&d->r_beh, c->greedy_fraction)) {
            pp->traits |= T_GREEDY;
        }
    }
    const struct br_event_spec *sp = &d->s->events[pp->event].spec;
    if (!sp->requires_pass) {
        /* No waiting room: straight to the seats, once the sale opens. */
        int64_t at = d->t;
        if (at < d->ev[pp->event].opens_t) {
            at = d->ev[pp->event].opens_t + (int64_t)br_rng_below(&d->r_beh, 2000);
        }
        start_reserving(d, u, at);
        return;
    }
    send_join(d, u, true);
    if (d->stop) {
        return;
    }
    if (pp->traits & T_DOUBLE) {
        push(d, d->t + 20 + (int64_t)br_rng_below(&d->r_beh, 400), A_JOIN_DUP, u, 0, 0, 0, 0, 0);
        d->st->faults[BR_FAULT_DOUBLE_CLICK]++;
    }
    for (uint32_t tab = 1; tab < pp->tabs; tab++) {
        push(d, d->t + (int64_t)br_rng_below(&d->r_beh, 3000), A_JOIN_DUP, u, 0, 0, 0, 0, 0);
        d->st->faults[BR_FAULT_EXTRA_TAB]++;
    }
}

static void adopt_hold(struct drv *d, uint32_t u, const struct br_outcome *out)
{
    struct person *pp = &d->people[u];
    const struct br_scn_crowd *c = &d->s->crowd;
    pp->phase = PH_HELD;
    pp->hold_id = out->id;
    pp->hold_deadline_ms = out->deadline_ms;
    pp->qty = (uint8_t)out->count;
    pp->gen++;
    double x = br_rng_unit(&d->r_beh);
    if (x < c->abandon_hold_fraction) {
        person_done(d, u); /* walks away: the hold expires */
        return;
    }
    push_user(d, u, d->t + range_draw(&d->r_beh, c->think_ms));
}

static void note_new_hold(struct drv *d, const struct br_cmd *c, const struct br_outcome *out)
{
    struct drv_event *ev = event_by_id(d, c->u.reserve.event_id);
    uint32_t n = (uint32_t)(out->id & 0xffffffffu);
    if (ev != NULL && n > ev->last_hold_n) {
        d->holds_used += n - ev->last_hold_n;
        ev->last_hold_n = n;
        ev->live_holds++;
        wake_sweeper(d, ev);
    }
}

/* Before a reserve: the person still has attempts left, has not gone home
 * at a sold-out page, and has a zone to ask for. False when the person gave
 * up or will come back later (already scheduled). */
static bool reserve_ready(struct drv *d, uint32_t u)
{
    struct person *pp = &d->people[u];
    const struct br_scn_crowd *sc = &d->s->crowd;
    const struct br_event_spec *sp = &d->s->events[pp->event].spec;
    if (pp->reserves >= sc->reserve_attempts_max || !room_for_reserve(d)) {
        person_done(d, u);
        return false;
    }
    if (pp->traits & T_FRESH) {
        pp->traits &= (uint8_t)~T_FRESH;
        if (page_sold_out(d, pp->event) && br_rng_chance(&d->r_beh, sc->soldout_leave_fraction)) {
            /* The page says sold out: most people go home here, some give
             * their pass back on the way out. */
            if (sp->requires_pass && br_rng_chance(&d->r_beh, 0.5)) {
                send_leave(d, u);
            }
            person_done(d, u);
            return false;
        }
    }
    if (pp->zone == 0 || (pp->sold_mask & (1u << (pp->zone - 1)))) {
        pp->zone = (uint8_t)pick_zone(d, u);
        pp->qty = (uint8_t)pick_qty(d, u);
    }
    if (pp->zone == 0) {
        /* Everything this person tried was sold out: wait for returned
         * seats, or give up. */
        pp->sold_mask = 0;
        if (br_rng_chance(&d->r_beh, sc->rejoin_fraction) &&
            pp->reserves + 1u < sc->reserve_attempts_max) {
            if (sp->requires_pass && now_of(d, P_API) + 20000 >= pp->pass_deadline_ms) {
                maybe_rejoin(d, u, 20000 + (int64_t)br_rng_below(&d->r_beh, 60000));
            } else {
                push_user(d, u, d->t + 5000 + (int64_t)br_rng_below(&d->r_beh, 15000));
            }
            return false;
        }
        person_done(d, u);
        return false;
    }
    return true;
}

/* A reserve was sent: a double-clicker sends it again (same key), and a
 * person with several tabs has each of them race for the pass on its own
 * key (each one an attempt of the budget). */
static void reserve_echoes(struct drv *d, uint32_t u, uint64_t pass, uint64_t key, uint8_t zone,
                           uint8_t qty)
{
    struct person *pp = &d->people[u];
    const struct br_scn_crowd *sc = &d->s->crowd;
    const struct br_event_spec *sp = &d->s->events[pp->event].spec;
    if (pp->traits & T_DOUBLE) {
        push(d, d->t + 20 + (int64_t)br_rng_below(&d->r_beh, 400), A_RESERVE_DUP, u, 0, pass, key,
             zone, qty);
        d->st->faults[BR_FAULT_DOUBLE_CLICK]++;
    }
    if (pp->tabs > 1 && pp->reserves == 1) {
        for (uint32_t tab = 1; tab < pp->tabs && pp->reserves < sc->reserve_attempts_max; tab++) {
            pp->reserves++; /* each tab's key is an attempt of the budget */
            uint8_t tz = (uint8_t)(1 + br_rng_below(&d->r_beh, sp->zone_count));
            push(d, d->t + (int64_t)br_rng_below(&d->r_beh, 2000), A_RESERVE_TAB, u, 0, pass, 0, tz,
                 qty);
            d->st->faults[BR_FAULT_EXTRA_TAB]++;
        }
    }
}

/* The person's own reserve (for `zone`) failed with `err` while they were
 * still admitted: another zone, wait, rejoin the queue, or go home. */
static void reserve_refused(struct drv *d, uint32_t u, int err, uint8_t zone)
{
    struct person *pp = &d->people[u];
    const struct br_scn_crowd *sc = &d->s->crowd;
    const struct br_event_spec *sp = &d->s->events[pp->event].spec;
    int64_t think = range_draw(&d->r_beh, sc->think_ms) / 4;
    switch (err) {
    case BR_E_SOLD_OUT:
        /* Another zone, or (the page now shows sold out) wait for returned
         * seats, or go home. */
        pp->sold_mask |= (uint8_t)(1u << (zone - 1));
        if (br_rng_chance(&d->r_beh, 0.5)) {
            push_user(d, u, d->t + 200 + think);
        } else if (br_rng_chance(&d->r_beh, sc->rejoin_fraction)) {
            pp->zone = 0;
            pp->sold_mask = 0;
            if (now_of(d, P_API) + 30000 < pp->pass_deadline_ms || !sp->requires_pass) {
                push_user(d, u, d->t + 10000 + (int64_t)br_rng_below(&d->r_beh, 20000));
            } else {
                maybe_rejoin(d, u, 20000 + (int64_t)br_rng_below(&d->r_beh, 40000));
            }
        } else {
            person_done(d, u);
        }
        break;
    case BR_E_LIMIT_EXCEEDED:
        if (pp->traits & T_GREEDY) {
            pp->traits &= (uint8_t)~T_GREEDY; /* caught: asks for what is allowed */
            pp->qty = 1;
            push_user(d, u, d->t + 500 + think);
        } else {
            person_done(d, u);
        }
        break;
    case BR_E_SALE_NOT_OPEN:
        push_user(d, u, d->t + 1000 + (int64_t)br_rng_below(&d->r_beh, 2000));
        break;
    case BR_E_PASS_EXPIRED:
    case BR_E_PASS_INVALID:
    case BR_E_PASS_REQUIRED:
        maybe_rejoin(d, u, 1000 + think);
        break;
    default:
        person_done(d, u);
        break;
    }
}

static void send_reserve(struct drv *d, uint32_t u)
{
    struct person *pp = &d->people[u];
    const struct br_event_spec *sp = &d->s->events[pp->event].spec;
    if (!reserve_ready(d, u)) {
        return;
    }
    pp->reserves++;
    d->idem_used++;
    uint64_t key = next_key(d, u);
    struct br_cmd *c = cmd_new(d, BR_CMD_RESERVE, P_API, u + 1u);
    c->u.reserve.event_id = d->ev[pp->event].id;
    c->u.reserve.zone_id = pp->zone;
    c->u.reserve.quantity = pp->qty;
    c->u.reserve.pass_id = sp->requires_pass ? pp->pass_id : 0;
    c->u.reserve.idem_key = key;
    uint64_t pass = c->u.reserve.pass_id;
    uint8_t zone = pp->zone, qty = pp->qty;
    struct applied ap;
    if (!apply(d, P_API, false, &ap)) {
        return;
    }
    reserve_echoes(d, u, pass, key, zone, qty);
    int err = ap.out.err;
    if (err == BR_OK) {
        note_new_hold(d, c, &ap.out);
        if (pp->phase == PH_ADMITTED) {
            adopt_hold(d, u, &ap.out);
        }
        return;
    }
    if (pp->phase != PH_ADMITTED) {
        return; /* a tab got there first */
    }
    reserve_refused(d, u, err, zone);
}

static void send_payment(struct drv *d, uint32_t u)
{
    struct person *pp = &d->people[u];
    const struct br_scn_crowd *sc = &d->s->crowd;
    if (pp->pays >= sc->payment_creates_max || !room_for_payment(d)) {
        person_done(d, u); /* gave up: the hold expires */
        return;
    }
    pp->pays++;
    struct br_cmd *c = cmd_new(d, BR_CMD_PAYMENT_CREATE, P_API, u + 1u);
    c->u.payment_create.hold_id = pp->hold_id;
    c->u.payment_create.check_ms = d->s->payments.check_ms;
    uint64_t hold = pp->hold_id;
    struct applied ap;
    if (!apply(d, P_API, false, &ap)) {
        return;
    }
    if ((pp->traits & T_DOUBLE) && pp->pays < sc->payment_creates_max &&
        d->payments_used + 1 < d->o->cfg->payments_max) {
        pp->pays++;
        push(d, d->t + 20 + (int64_t)br_rng_below(&d->r_beh, 400), A_PAY_DUP, u, 0, hold, 0, 0, 0);
        d->st->faults[BR_FAULT_DOUBLE_CLICK]++;
    }
    if (ap.out.err != BR_OK) {
        /* HOLD_EXPIRED, BOOKING_NOT_HELD: too late. */
        maybe_rejoin(d, u, 2000 + range_draw(&d->r_beh, sc->think_ms));
        return;
    }
    pp->phase = PH_PAYING;
    pp->payment_id = ap.out.id;
    pp->gen++;
    if (br_rng_chance(&d->r_beh, d->s->payments.timeout_rate)) {
        /* The answer never reached the browser: the person tries again
         * (the charge itself went through to the provider). */
        d->st->faults[BR_FAULT_PAYMENT_TIMEOUT]++;
        push_user(d, u, d->t + 2000 + (int64_t)br_rng_below(&d->r_beh, 8000));
    }
}

static void cancel_hold(struct drv *d, uint32_t u)
{
    struct person *pp = &d->people[u];
    struct br_cmd *c = cmd_new(d, BR_CMD_CANCEL, P_API, u + 1u);
    c->u.cancel.hold_id = pp->hold_id;
    struct applied ap;
    if (!apply(d, P_API, false, &ap)) {
        return;
    }
    person_done(d, u); /* the seats go back (counted in apply) */
}

static void send_leave(struct drv *d, uint32_t u)
{
    struct person *pp = &d->people[u];
    struct br_cmd *c = cmd_new(d, BR_CMD_QUEUE_LEAVE, P_API, u + 1u);
    c->u.queue_leave.event_id = d->ev[pp->event].id;
    struct applied ap;
    if (apply(d, P_API, false, &ap) && ap.out.err == BR_OK) {
        d->ev[pp->event].queue_len = ap.out.queue_length;
    }
}

static void user_step(struct drv *d, const struct br_action *a)
{
    uint32_t u = a->who;
    struct person *pp = &d->people[u];
    if (a->gen != pp->gen) {
        return; /* superseded */
    }
    const struct br_scn_crowd *sc = &d->s->crowd;
    switch (pp->phase) {
    case PH_NEW:
        arrive(d, u);
        break;
    case PH_QUEUED:
        /* Patience ran out. */
        if (!(pp->traits & T_SILENT)) {
            send_leave(d, u);
        }
        person_done(d, u);
        break;
    case PH_ADMITTED:
        send_reserve(d, u);
        break;
    case PH_HELD:
        if (br_rng_chance(&d->r_beh, sc->cancel_fraction)) {
            cancel_hold(d, u);
        } else {
            send_payment(d, u);
        }
        break;
    case PH_PAYING:
        send_payment(d, u); /* after a timeout, or a decline */
        break;
    default:
        break;
    }
}

/* The person who owns payment p learned its outcome (a webhook applied). */
static void payment_settled(struct drv *d, uint32_t u, uint64_t payment_id, uint8_t status)
{
    struct person *pp = &d->people[u];
    if (pp->payment_id != payment_id || pp->phase != PH_PAYING) {
        return;
    }
    if (status == BR_PAY_FAILED) {
        /* Declined: pay again while the hold lives, or give up. */
        if (br_rng_chance(&d->r_beh, d->s->payments.retry_after_decline) &&
            now_of(d, P_API) + 5000 < pp->hold_deadline_ms) {
            push_user(d, u, d->t + 1000 + (int64_t)br_rng_below(&d->r_beh, 10000));
        } else {
            person_done(d, u);
        }
        return;
    }
    if (status == BR_PAY_CONFIRMED) {
        pp->bought = (uint8_t)(pp->bought + pp->qty);
        if ((pp->traits & T_GREEDY) == 0 || pp->rejoins >= d->s->crowd.rejoins_max) {
            person_done(d, u);
            return;
        }
        /* Greedy: come back for more than the limit allows. */
        pp->rejoins++;
        pp->phase = PH_NEW;
        pp->pass_id = pp->hold_id = pp->payment_id = 0;
        pp->zone = 0;
        push_user(d, u, d->t + 5000 + (int64_t)br_rng_below(&d->r_beh, 30000));
        return;
    }
    person_done(d, u); /* refunded: the hold was gone */
}

/* ---- bots ---- */

/* A bot's reserve (`what` 2..5): with no pass, a forged one (3), someone
 * else's (4) or its own for more than the limit (5); sometimes on its last
 * key with other arguments (a conflict). */
static void bot_reserve(struct drv *d, uint32_t b, uint32_t ei, uint32_t what)
{
    struct bot *bt = &d->bots[b];
    struct drv_event *ev = &d->ev[ei];
    const struct br_event_spec *sp = &d->s->events[ei].spec;
    if (!room_for_reserve(d)) {
        return;
    }
    struct br_cmd *c = cmd_new(d, BR_CMD_RESERVE, P_API, d->first_bot_id + b);
    c->u.reserve.event_id = ev->id;
    c->u.reserve.zone_id = 1 + (uint32_t)br_rng_below(&d->r_bot, sp->zone_count);
    c->u.reserve.quantity = 1 + (uint32_t)br_rng_below(&d->r_bot, 2);
    if (what == 3) {
        c->u.reserve.pass_id = ev->id << 32 | (1 + br_rng_below(&d->r_bot, 1000));
    } else if (what == 4 && d->recent_count > 0) {
        c->u.reserve.pass_id =
            d->recent_passes[br_rng_below(&d->r_bot, d->recent_count < 64 ? d->recent_count : 64)];
    } else if (what == 5 && bt->pass_id != 0) {
        c->u.reserve.pass_id = bt->pass_id; /* its own, maybe used or lapsed */
        c->u.reserve.quantity = sp->per_user_limit + 1;
    }
    /* Sometimes the same key again with other arguments (a conflict). */
    if (bt->last_key != 0 && br_rng_chance(&d->r_bot, 0.2)) {
        c->u.reserve.idem_key = bt->last_key;
    } else {
        c->u.reserve.idem_key = br_rng_next(&d->r_bot) | 1;
        bt->last_key = c->u.reserve.idem_key;
        d->idem_used++;
    }
    struct applied ap;
    if (apply(d, P_API, false, &ap) && ap.out.err == BR_OK) {
        note_new_hold(d, c, &ap.out);
    }
}

static void bot_step(struct drv *d, uint32_t b)
{
    struct bot *bt = &d->bots[b];
    if (bt->left == 0) {
        return;
    }
    bt->left--;
    d->st->faults[BR_FAULT_BOT_REQUEST]++;
    uint64_t uid = d->first_bot_id + b;
    uint32_t ei = (uint32_t)br_rng_below(&d->r_bot, d->s->event_count);
    struct drv_event *ev = &d->ev[ei];
    uint32_t what = (uint32_t)br_rng_below(&d->r_bot, 9);
    struct br_cmd *c;
    struct applied ap;
    switch (what) {
    case 0:
    case 1:
        c = cmd_new(d, BR_CMD_QUEUE_JOIN, P_API, uid);
        c->u.queue_join.event_id = ev->id;
        if (apply(d, P_API, false, &ap) && ap.out.err == BR_OK) {
            ev->queue_len = ap.out.queue_length;
            wake_admitter(d, ev);
        }
        break;
    case 2: /* reserve with no pass, a forged one, or someone else's */
    case 3:
    case 4:
    case 5:
        bot_reserve(d, b, ei, what);
        break;
    case 6: {
        if (!room_for_payment(d)) {
            break;
        }
        c = cmd_new(d, BR_CMD_PAYMENT_CREATE, P_API, uid);
        uint32_t n = ev->last_hold_n ? ev->last_hold_n : 1;
        c->u.payment_create.hold_id = ev->id << 32 | (1 + br_rng_below(&d->r_bot, n));
        apply(d, P_API, false, &ap);
        break;
    }
    case 7: {
        c = cmd_new(d, BR_CMD_CANCEL, P_API, uid);
        uint32_t n = ev->last_hold_n ? ev->last_hold_n : 1;
        c->u.cancel.hold_id = ev->id << 32 | (1 + br_rng_below(&d->r_bot, n));
        apply(d, P_API, false, &ap);
        break;
    }
    default: {
        c = cmd_new(d, BR_CMD_PAYMENT_EVENT, P_API, uid); /* a forged webhook: forbidden */
        c->u.payment_event.payment_id = ev->id << 32 | 1;
        c->u.payment_event.provider_event_id = br_rng_next(&d->r_bot);
        c->u.payment_event.succeeded = true;
        apply(d, P_API, false, &ap);
        break;
    }
    }
    if (bt->left > 0 && !d->stop) {
        push(d,
             d->t + d->s->crowd.bot_interval_ms / 2 +
                 (int64_t)br_rng_below(&d->r_bot, (uint64_t)d->s->crowd.bot_interval_ms + 1),
             A_BOT, b, 0, 0, 0, 0, 0);
    }
}

/* ---- the provider ---- */

static uint64_t provider_event_id(uint64_t payment_id, uint32_t k)
{
    uint64_t v = br_mix64(payment_id * 8 + k + 0x70726f76ULL);
    return v ? v : 1;
}

static void schedule_webhook(struct drv *d, uint64_t payment_id, uint64_t peid, bool ok, int64_t at)
{
    if (d->s->payments.lost_rate > 0 && br_rng_chance(&d->r_prov, d->s->payments.lost_rate)) {
        /* Never delivered, nor any copy: the endpoint was misconfigured or
         * the provider gave up retrying. Only a status check decides it. */
        d->st->faults[BR_FAULT_WEBHOOK_LOST]++;
        return;
    }
    push(d, at, A_WEBHOOK, 0, 0, payment_id, peid, ok ? 1 : 0, 0);
    if (br_rng_chance(&d->r_prov, d->s->payments.duplicate_rate)) {
        /* The provider delivers the same event again (its retry logic, or
         * ours acknowledging too slowly). */
        d->st->faults[BR_FAULT_WEBHOOK_DUPLICATE]++;
        push(d, at + range_draw(&d->r_prov, d->s->payments.latency_ms), A_WEBHOOK, 0, 0, payment_id,
             peid, ok ? 1 : 0, 0);
    }
}

static int64_t webhook_delay(struct drv *d)
{
    const struct br_scn_payments *p = &d->s->payments;
    if (br_rng_chance(&d->r_prov, p->late_rate)) {
        d->st->faults[BR_FAULT_WEBHOOK_LATE]++;
        struct br_scn_range late = {p->latency_ms.max_ms, p->late_max_ms};
        return range_draw(&d->r_prov, late);
    }
    return range_draw(&d->r_prov, p->latency_ms);
}

/* The provider event of a confirmation after a decline (attempt >= 2). */
static uint64_t reconfirm_event_id(uint64_t payment_id, uint32_t attempt, bool ok)
{
    uint64_t v = br_mix64(br_mix64(payment_id ^ 0x7265636f6e66ULL) + attempt * 2u + (ok ? 1u : 0u));
    return v ? v : 1;
}

/* The buyer confirmed the payment's intent again after a decline, with
 * another card: a new decision and its event (Stripe: a payment_failed
 * intent is back at requires_payment_method and may be confirmed again). */
static void provider_reconfirm(struct drv *d, struct pay_rec *r, uint64_t payment_id)
{
    r->declined = 0;
    r->attempts = (uint8_t)(r->attempts < UINT8_MAX ? r->attempts + 1 : UINT8_MAX);
    d->st->reconfirmations++;
    bool ok = !br_rng_chance(&d->r_prov, d->s->payments.decline_rate);
    if (!ok) {
        d->st->faults[BR_FAULT_PAYMENT_DECLINE]++;
        r->declined = 1;
    } else {
        r->captured = 1;
        d->st->provider_captured += r->amount_minor;
    }
    schedule_webhook(d, payment_id, reconfirm_event_id(payment_id, r->attempts, ok), ok,
                     d->t + webhook_delay(d));
}

static void provider_charge(struct drv *d, uint64_t payment_id)
{
    struct pay_rec *r = pay_rec(d, payment_id, false);
    if (r != NULL && r->canceled) {
        /* The intent was voided (point 8): the attempt is refused, no money
         * moves, and there is no event to send (the caller got the error). */
        r->charged = 1;
        return;
    }
    if (r != NULL && r->charged && r->declined && !r->captured) {
        provider_reconfirm(d, r, payment_id);
        return;
    }
    if (r == NULL || r->charged) {
        return; /* de-duplicated by the payment id (the idempotency key); a
                 * succeeded intent refuses another confirmation */
    }
    r->charged = 1;
    r->attempts = 1;
    const struct br_scn_payments *p = &d->s->payments;
    bool ok = !br_rng_chance(&d->r_prov, p->decline_rate);
    int64_t at = d->t + webhook_delay(d);
    if (ok && br_rng_chance(&d->r_prov, p->reorder_rate)) {
        /* A decline, then a success on a second try: two events, which
         * may arrive in either order. */
        d->st->faults[BR_FAULT_WEBHOOK_REORDER]++;
        int64_t at2 = at + range_draw(&d->r_prov, p->latency_ms);
        bool reversed = br_rng_chance(&d->r_prov, 0.5);
        schedule_webhook(d, payment_id, provider_event_id(payment_id, 1), false,
                         reversed ? at2 : at);
        schedule_webhook(d, payment_id, provider_event_id(payment_id, 2), true,
                         reversed ? at : at2);
    } else {
        if (!ok) {
            d->st->faults[BR_FAULT_PAYMENT_DECLINE]++;
            r->declined = 1;
        }
        schedule_webhook(d, payment_id, provider_event_id(payment_id, ok ? 2 : 1), ok, at);
    }
    if (ok) {
        r->captured = 1;
        d->st->provider_captured += r->amount_minor;
    }
}

static int64_t delivery_backoff(uint32_t attempt)
{
    int64_t d = 30000;
    for (uint32_t i = 0; i < attempt && d < 3600000; i++) {
        d *= 2;
    }
    return d < 3600000 ? d : 3600000;
}

static void deliver_webhook(struct drv *d, const struct br_action *a)
{
    if (d->w[BR_WORKER_SAGA].down) {
        /* Nobody acknowledged: the provider tries again later. */
        d->st->faults[BR_FAULT_WEBHOOK_RETRY]++;
        push(d, d->t + delivery_backoff(a->b8), A_WEBHOOK, 0, 0, a->x, a->y, a->a8,
             (uint8_t)(a->b8 < 20 ? a->b8 + 1 : 20));
        return;
    }
    bool lost = crash_point(d, BR_WORKER_SAGA);
    struct br_cmd *c = cmd_new(d, BR_CMD_PAYMENT_EVENT, P_SAGA, 0);
    c->u.payment_event.payment_id = a->x;
    c->u.payment_event.provider_event_id = a->y;
    c->u.payment_event.succeeded = a->a8 != 0;
    struct applied ap;
    if (!apply(d, P_SAGA, lost, &ap)) {
        return;
    }
    if (lost) {
        /* Applied, but the acknowledgement died with the worker: redelivery. */
        push(d, d->t + delivery_backoff(a->b8), A_WEBHOOK, 0, 0, a->x, a->y, a->a8,
             (uint8_t)(a->b8 < 20 ? a->b8 + 1 : 20));
    }
    if (ap.out.err == BR_OK) {
        struct pay_rec *r = pay_rec(d, a->x, false);
        if (r != NULL && is_person(d, r->user)) {
            payment_settled(d, r->user - 1, a->x, ap.out.status);
        }
    }
}

static void refund_call(struct drv *d, uint64_t payment_id)
{
    if (d->w[BR_WORKER_SAGA].down) {
        return; /* the duty stays in the core's state; saga_step finds it again */
    }
    struct pay_rec *r = pay_rec(d, payment_id, false);
    bool ok = !br_rng_chance(&d->r_prov, d->s->payments.refund_failure_rate);
    if (r != NULL && r->refunded) {
        ok = true; /* idempotent: the provider already refunded this payment */
    } else if (ok && r != NULL) {
        r->refunded = 1;
        d->st->provider_refunded += r->amount_minor;
    }
    if (!ok) {
        d->st->faults[BR_FAULT_REFUND_FAILURE]++;
    }
    if (crash_point(d, BR_WORKER_SAGA)) {
        return; /* the provider did it, the worker died before recording it */
    }
    push(d, d->t + 100 + (int64_t)br_rng_below(&d->r_prov, 900), A_REFUND_RESULT, 0, 0, payment_id,
         0, ok ? 1 : 0, 0);
}

static void refund_result(struct drv *d, const struct br_action *a)
{
    if (d->w[BR_WORKER_SAGA].down) {
        return;
    }
    bool lost = crash_point(d, BR_WORKER_SAGA);
    struct br_cmd *c = cmd_new(d, BR_CMD_REFUND_RESULT, P_SAGA, 0);
    c->u.refund_result.payment_id = a->x;
    c->u.refund_result.ok = a->a8 != 0;
    struct applied ap;
    if (!apply(d, P_SAGA, lost, &ap)) {
        return;
    }
    if (ap.out.err == BR_OK && a->a8 && d->refunds_pending > 0) {
        d->refunds_pending--;
    }
    if (ap.out.err == BR_OK && !a->a8) {
        saga_new_work(d); /* refused: the core retries after its backoff */
    }
}

/* Point 8: the saga worker carries a provider_query (is_void false) or
 * provider_void effect to the provider, which answers from its ledger:
 * captured -> succeeded; a void of an intent not captured cancels it ->
 * failed "canceled"; the last attempt declined -> failed (that attempt's
 * ordinal); else open (nothing to feed back: the next check asks again).
 * The answer goes back as a payment_event with the id the distributed
 * driver derives, br_hash64("q:<payment>:succeeded" | "q:<payment>:failed:
 * <token>"), so two identical answers are one provider event. */
static void query_call(struct drv *d, const struct br_action *a)
{
    if (d->w[BR_WORKER_SAGA].down) {
        return; /* the check stays scheduled in the core's state */
    }
    uint64_t payment_id = a->x;
    bool is_void = a->a8 != 0;
    struct pay_rec *r = pay_rec(d, payment_id, false);
    char key[96];
    bool ok;
    d->st->provider_queries++;
    if (r != NULL && r->captured) {
        ok = true;
        snprintf(key, sizeof key, "q:%" PRIu64 ":succeeded", payment_id);
    } else if (is_void || (r != NULL && r->canceled)) {
        ok = false;
        if (r != NULL && !r->canceled) {
            r->canceled = 1;
            d->st->provider_voids++;
        }
        snprintf(key, sizeof key, "q:%" PRIu64 ":failed:canceled", payment_id);
    } else if (r != NULL && r->charged && r->declined) {
        ok = false;
        snprintf(key, sizeof key, "q:%" PRIu64 ":failed:%u", payment_id, (unsigned)r->attempts);
    } else {
        return; /* open: not decided yet */
    }
    uint64_t peid = br_hash64(key, strlen(key), 0);
    BR_ASSERT(peid == br_saga_answer_id(payment_id, ok, ok ? "" : strrchr(key, ':') + 1));
    bool lost = crash_point(d, BR_WORKER_SAGA);
    struct br_cmd *c = cmd_new(d, BR_CMD_PAYMENT_EVENT, P_SAGA, 0);
    c->u.payment_event.payment_id = payment_id;
    c->u.payment_event.provider_event_id = peid ? peid : 1;
    c->u.payment_event.succeeded = ok;
    struct applied ap;
    if (!apply(d, P_SAGA, lost, &ap)) {
        return;
    }
    if (ap.out.err == BR_OK && r != NULL && is_person(d, r->user)) {
        payment_settled(d, r->user - 1, payment_id, ap.out.status);
    }
}

/* ---- effects ---- */

/* Issue 13: the pass came; how far off was the estimate given at the join. */
static void note_estimate_error(struct drv *d, uint32_t u)
{
    if (d->est == NULL || d->est[u].est_s == UINT32_MAX) {
        return;
    }
    int64_t actual = d->t - d->est[u].join_t;
    int64_t err = (int64_t)d->est[u].est_s * 1000 - actual;
    d->est[u].est_s = UINT32_MAX;
    if (d->est_count == d->est_cap) {
        uint64_t cap = d->est_cap ? d->est_cap * 2 : 1024;
        int64_t *v = realloc(d->est_err, (size_t)cap * sizeof *v);
        BR_ASSERT(v != NULL);
        d->est_err = v;
        d->est_cap = cap;
    }
    d->est_err[d->est_count++] = err < 0 ? -err : err;
}

/* A pass was issued (by the admitter, or on a join with room): a bot keeps
 * it; a person still queued is admitted, and comes to the page once the
 * notification (or, if it was lost, the next position poll) reaches them. */
static void pass_issued(struct drv *d, bool lost, const struct br_effect *f)
{
    d->recent_passes[d->recent_count++ % 64] = f->id;
    if (f->user_id > d->users) {
        uint64_t b = f->user_id - d->first_bot_id;
        if (b < d->s->crowd.bots) {
            d->bots[b].pass_id = f->id;
        }
        return;
    }
    if (!is_person(d, f->user_id)) {
        return;
    }
    uint32_t u = (uint32_t)(f->user_id - 1);
    struct person *pp = &d->people[u];
    if (pp->traits & T_GONE) {
        d->st->passes_to_gone++; /* a pass for nobody: it lapses */
        return;
    }
    if (pp->phase != PH_QUEUED) {
        return;
    }
    note_estimate_error(d, u);
    pp->phase = PH_ADMITTED;
    pp->pass_id = f->id;
    pp->pass_deadline_ms = f->deadline_ms;
    pp->zone = 0;
    pp->traits |= T_FRESH;
    pp->gen++;
    if (br_rng_chance(&d->r_beh, d->s->crowd.admitted_abandon_fraction)) {
        person_done(d, u); /* never comes back: the pass lapses */
        return;
    }
    /* The notification reaches the browser, or (the admitter died
     * before publishing it) the next position poll finds the pass. */
    int64_t seen = lost ? (int64_t)br_rng_below(&d->r_beh, (uint64_t)d->s->crowd.poll_ms + 1)
                        : range_draw(&d->r_beh, d->s->crowd.notify_ms);
    push_user(d, u, d->t + seen + range_draw(&d->r_beh, d->s->crowd.think_ms) / 4);
}

/* The API process calls the provider; the call itself always arrives (a
 * timeout only loses the answer). */
static void provider_charge_called(struct drv *d, const struct br_effect *f)
{
    struct drv_event *pev = event_by_id(d, f->id >> 32);
    uint32_t pn = (uint32_t)(f->id & 0xffffffffu);
    if (pev != NULL && pn > pev->last_pay_n) {
        d->payments_used += pn - pev->last_pay_n;
        pev->last_pay_n = pn;
    }
    struct pay_rec *r = pay_rec(d, f->id, true);
    if (r != NULL && r->hold_id == 0) {
        r->hold_id = f->ref;
        r->amount_minor = f->amount_minor;
        r->user = (uint32_t)f->user_id;
    }
    push(d, d->t + 50 + (int64_t)br_rng_below(&d->r_prov, 450), A_CHARGE, 0, 0, f->id, 0, 0, 0);
    if (d->s->payments.check_ms > 0 && !d->w[BR_WORKER_SAGA].down) {
        wake_saga(d); /* point 8: the payment's status check is scheduled; the saga may sleep */
    }
}

static void on_effects(struct drv *d, enum proc p, bool lost, const struct applied *ap)
{
    (void)p;
    for (uint32_t i = 0; i < ap->n; i++) {
        const struct br_effect *f = &ap->fx[i];
        switch (f->kind) {
        case BR_FX_PASS_ISSUED:
            pass_issued(d, lost, f);
            break;
        case BR_FX_PROVIDER_CHARGE:
            provider_charge_called(d, f);
            break;
        case BR_FX_PROVIDER_REFUND:
            if (d->cmd.type == BR_CMD_PAYMENT_EVENT) {
                d->refunds_pending++;
                saga_new_work(d);
            } else {
                wake_saga(d);
            }
            if (!lost) {
                push(d, d->t + 20 + (int64_t)br_rng_below(&d->r_prov, 200), A_REFUND_CALL, 0, 0,
                     f->id, 0, 0, 0);
            }
            break;
        case BR_FX_PROVIDER_QUERY:
        case BR_FX_PROVIDER_VOID:
            if (!lost) {
                push(d, d->t + 20 + (int64_t)br_rng_below(&d->r_prov, 200), A_QUERY_CALL, 0, 0,
                     f->id, 0, f->kind == BR_FX_PROVIDER_VOID ? 1 : 0, 0);
            }
            break;
        case BR_FX_QUEUE_STATE: {
            struct drv_event *ev = event_by_id(d, f->event_id);
            if (ev != NULL) {
                ev->gate = (uint8_t)f->id;
                if (f->id == BR_GATE_CLOSED || f->id == BR_GATE_SOLD_OUT) {
                    push(d, d->t, A_TOLD, (uint32_t)(ev - d->ev), 0, 0, 0, (uint8_t)f->id, 0);
                } else {
                    wake_admitter(d, ev);
                }
            }
            break;
        }
        case BR_FX_PLACE_LAPSED:
            if (is_person(d, f->user_id)) {
                uint32_t u = (uint32_t)(f->user_id - 1);
                if (!(d->people[u].traits & T_GONE) && d->people[u].phase == PH_QUEUED) {
                    person_done(d, u); /* still there, skipped: the page says lapsed */
                }
            }
            break;
        case BR_FX_BOOKING_CONFIRMED:
        case BR_FX_BOOKING_EXPIRED: {
            struct drv_event *ev = event_by_id(d, f->event_id);
            if (ev != NULL && (d->s->events[ev - d->ev].spec.queue_flags & BR_QF_INVENTORY_AWARE)) {
                wake_admitter(d, ev); /* the inventory gate may change: announce it */
            }
            if (ev != NULL && ev->live_holds > 0) {
                ev->live_holds--;
            }
            for (uint32_t z = 0;
                 ev != NULL && f->kind == BR_FX_BOOKING_EXPIRED && z < BR_EVENT_ZONES_MAX; z++) {
                ev->soldout_t[z] = -1; /* seats came back */
            }
            break;
        }
        default:
            break;
        }
    }
}

/* ---- worker ticks ---- */

static void admit_tick(struct drv *d, uint32_t ei)
{
    struct drv_event *ev = &d->ev[ei];
    ev->admit_scheduled = false;
    if (d->w[BR_WORKER_ADMITTER].down) {
        return; /* woken again at restart */
    }
    bool lost = crash_point(d, BR_WORKER_ADMITTER);
    struct br_cmd *c = cmd_new(d, BR_CMD_ADMIT, P_ADMITTER, 0);
    c->u.admit.event_id = ev->id;
    struct applied ap;
    if (!apply(d, P_ADMITTER, lost, &ap)) {
        return;
    }
    ev->queue_len = ap.out.queue_length;
    /* Issue 13: a gate that admits nobody sleeps the admitter until an
     * operator step, returned seats or an announcement wake it. */
    bool stuck = ev->gate == BR_GATE_PAUSED || ev->gate == BR_GATE_CLOSED ||
                 ev->gate == BR_GATE_SOLD_OUT || ev->gate == BR_GATE_SEATS_HELD ||
                 ev->gate == BR_GATE_PASSTHROUGH;
    if (ev->queue_len > 0 && !d->w[BR_WORKER_ADMITTER].down && !(stuck && ap.out.count == 0)) {
        wake_admitter(d, ev);
    }
}

static void sweep_tick(struct drv *d, uint32_t ei)
{
    struct drv_event *ev = &d->ev[ei];
    ev->sweep_scheduled = false;
    if (d->w[BR_WORKER_SWEEPER].down) {
        return;
    }
    bool lost = crash_point(d, BR_WORKER_SWEEPER);
    struct br_cmd *c = cmd_new(d, BR_CMD_SWEEP, P_SWEEPER, 0);
    c->u.sweep.event_id = ev->id;
    c->u.sweep.max = d->s->workers[BR_WORKER_SWEEPER].batch;
    struct applied ap;
    if (!apply(d, P_SWEEPER, lost, &ap)) {
        return;
    }
    if (ev->live_holds > 0 && !d->w[BR_WORKER_SWEEPER].down) {
        wake_sweeper(d, ev);
    }
}

static void saga_tick(struct drv *d)
{
    d->saga_scheduled = false;
    if (d->w[BR_WORKER_SAGA].down) {
        return;
    }
    bool lost = crash_point(d, BR_WORKER_SAGA);
    struct br_cmd *c = cmd_new(d, BR_CMD_SAGA_STEP, P_SAGA, 0);
    c->u.saga_step.max = d->s->workers[BR_WORKER_SAGA].batch;
    struct applied ap;
    if (!apply(d, P_SAGA, lost, &ap)) {
        return;
    }
    d->refunds_pending = ap.out.queue_length; /* the core's own count of refunds owed */
    uint32_t worked = ap.out.count;
    if (d->s->payments.check_ms > 0 && !d->w[BR_WORKER_SAGA].down) {
        /* Point 8: ask the provider about payments no webhook decided. */
        lost = crash_point(d, BR_WORKER_SAGA);
        c = cmd_new(d, BR_CMD_PAYMENT_CHECK, P_SAGA, 0);
        c->u.payment_check.max = d->s->workers[BR_WORKER_SAGA].batch;
        if (!apply(d, P_SAGA, lost, &ap)) {
            return;
        }
        if (ap.out.err == BR_OK) {
            d->checks_pending = ap.out.queue_length;
            worked += ap.out.count;
        }
    }
    int64_t tick = d->s->workers[BR_WORKER_SAGA].tick_ms;
    if (worked > 0 || d->saga_idle_ms < tick) {
        d->saga_idle_ms = tick;
    } else if (d->saga_idle_ms < SAGA_IDLE_MAX_MS) {
        d->saga_idle_ms *= 2;
    }
    if ((d->refunds_pending > 0 || d->checks_pending > 0) && !d->w[BR_WORKER_SAGA].down) {
        wake_saga(d);
    }
}

static void draw_offset(struct drv *d, enum proc p)
{
    int64_t skew = d->s->clock_skew_ms;
    d->offset[p] =
        skew > 0 ? (int64_t)br_rng_below(&d->r_clock, (uint64_t)(2 * skew + 1)) - skew : 0;
    if (d->offset[p] != 0) {
        d->st->faults[BR_FAULT_CLOCK_SKEW]++;
    }
}

static void restart(struct drv *d, uint32_t w)
{
    struct worker_state *ws = &d->w[w];
    if (!ws->down || d->t < ws->down_until) {
        return;
    }
    ws->down = false;
    draw_offset(d, (enum proc)(w + 1)); /* a new process, maybe on another host */
    for (uint32_t i = 0; i < d->s->event_count; i++) {
        if (w == BR_WORKER_ADMITTER && d->ev[i].queue_len > 0) {
            wake_admitter(d, &d->ev[i]);
        }
        if (w == BR_WORKER_SWEEPER && d->ev[i].live_holds > 0) {
            wake_sweeper(d, &d->ev[i]);
        }
    }
    if (w == BR_WORKER_SAGA) {
        wake_saga(d); /* finds owed refunds again from the core's state */
    }
}

/* ---- setup ---- */

/* LSD radix sort of 64-bit keys, 16 bits a pass: O(4n), stable. */
static void radix_sort(uint64_t *v, uint64_t *tmp, uint32_t n)
{
    static const unsigned shifts[4] = {0, 16, 32, 48};
    uint32_t *count = calloc(65536, sizeof *count);
    BR_ASSERT(count != NULL);
    for (int pass = 0; pass < 4; pass++) {
        memset(count, 0, 65536 * sizeof *count);
        for (uint32_t i = 0; i < n; i++) {
            count[(v[i] >> shifts[pass]) & 0xffff]++;
        }
        uint32_t sum = 0;
        for (uint32_t k = 0; k < 65536; k++) {
            uint32_t c = count[k];
            count[k] = sum;
            sum += c;
        }
        for (uint32_t i = 0; i < n; i++) {
            tmp[count[(v[i] >> shifts[pass]) & 0xffff]++] = v[i];
        }
        memcpy(v, tmp, sizeof *v * n);
    }
    free(count);
}

static int64_t draw_arrival(struct br_rng *r, const struct br_scn_crowd *c, int64_t opens_t)
{
    double x = br_rng_unit(r);
    if (x < c->early_fraction) {
        return opens_t - 1 - (int64_t)br_rng_below(r, (uint64_t)c->early_window_ms);
    }
    if (br_rng_unit(r) < c->spike_fraction) {
        int64_t v = exp_draw(r, (double)c->spike_decay_ms);
        return opens_t + (v > c->tail_window_ms * 4 ? c->tail_window_ms * 4 : v);
    }
    return opens_t + (int64_t)br_rng_below(r, (uint64_t)c->tail_window_ms + 1);
}

/* The catalog: one event_create per scenario event, in order. */
static int setup_catalog(struct drv *d)
{
    const struct br_scenario *s = d->s;
    struct applied ap;
    for (uint32_t i = 0; i < s->event_count; i++) {
        struct br_cmd *c = cmd_new(d, BR_CMD_EVENT_CREATE, P_API, 0);
        c->u.event_create = s->events[i].spec;
        c->u.event_create.sale_opens_at_ms += s->start_epoch_ms;
        c->u.event_create.starts_at_ms += s->start_epoch_ms;
        if (!apply(d, P_API, false, &ap) || ap.out.err != BR_OK) {
            fprintf(stderr, "bookingrush: sim: event_create failed: %s\n", br_err_name(ap.out.err));
            return ap.out.err != BR_OK ? ap.out.err : BR_E_INVALID;
        }
        d->ev[i].id = ap.out.id;
        d->ev[i].opens_t = s->events[i].spec.sale_opens_at_ms;
        for (uint32_t z = 0; z < BR_EVENT_ZONES_MAX; z++) {
            d->ev[i].soldout_t[z] = -1;
        }
    }
    return BR_OK;
}

/* Everybody registers before the sale (the server hashed the passwords):
 * the people get user ids 1..users, the bots the ids after them. */
static int setup_register(struct drv *d)
{
    struct applied ap;
    uint64_t people = (uint64_t)d->users + d->s->crowd.bots;
    for (uint64_t i = 0; i < people && !d->stop; i++) {
        struct br_cmd *c = cmd_new(d, BR_CMD_USER_REGISTER, P_API, 0);
        snprintf(c->u.user_register.email, sizeof c->u.user_register.email,
                 "%s%" PRIu64 "@sim.test", i < d->users ? "u" : "bot", i + 1);
        snprintf(c->u.user_register.name, sizeof c->u.user_register.name, "%s %" PRIu64,
                 i < d->users ? "Person" : "Bot", i + 1);
        uint64_t h = br_mix64(i + 1);
        memcpy(c->u.user_register.password_hash, &h, sizeof h);
        memcpy(c->u.user_register.salt, &h, sizeof h);
        c->u.user_register.role = BR_ROLE_CUSTOMER;
        if (!apply(d, P_API, false, &ap) || ap.out.err != BR_OK || ap.out.id != i + 1) {
            fprintf(stderr, "bookingrush: sim: user_register failed: %s\n",
                    br_err_name(ap.out.err));
            return ap.out.err != BR_OK ? ap.out.err : BR_E_INVALID;
        }
    }
    d->first_bot_id = (uint64_t)d->users + 1;
    return BR_OK;
}

/* Arrivals, sorted by time (ties by user number; `tmp` is the sort's
 * scratch, users long); the first one goes on the agenda. */
static void setup_arrivals(struct drv *d, struct br_rng *r_arr, uint64_t *tmp)
{
    for (uint32_t u = 0; u < d->users; u++) {
        uint32_t e = br_scenario_event_of_user(d->s, u);
        d->people[u].event = (uint8_t)e;
        int64_t t = draw_arrival(r_arr, &d->s->crowd, d->ev[e].opens_t);
        BR_ASSERT(t >= 0 && t < (1LL << 41));
        d->arrivals[u] = (uint64_t)t << 22 | u;
    }
    BR_ASSERT(d->users < (1u << 22));
    radix_sort(d->arrivals, tmp, d->users);
    if (d->users > 0) {
        push(d, (int64_t)(d->arrivals[0] >> 22), A_ARRIVAL, 0, 0, 0, 0, 0, 0);
    }
}

/* Bots start hammering at the opening; crashes come as a Poisson process
 * per worker while faults are on; then the faults end. */
static void setup_bots_and_faults(struct drv *d)
{
    const struct br_scenario *s = d->s;
    for (uint32_t b = 0; b < s->crowd.bots; b++) {
        d->bots[b].left = s->crowd.bot_requests;
        int64_t at = d->ev[0].opens_t - 5000 + (int64_t)br_rng_below(&d->r_bot, 10000);
        push(d, at, A_BOT, b, 0, 0, 0, 0, 0);
    }
    for (int w = 0; w < BR_WORKER_COUNT; w++) {
        double rate = s->workers[w].crashes_per_hour;
        if (rate <= 0) {
            continue;
        }
        int64_t t = 0;
        for (uint32_t k = 0; k < 100000; k++) {
            t += 1 + exp_draw(&d->r_fault, 3600000.0 / rate);
            if (t >= s->faults_until_ms) {
                break;
            }
            push(d, t, A_CRASH, (uint32_t)w, 0, 0, 0, 0, 0);
        }
    }
    push(d, s->faults_until_ms, A_FAULTS_END, 0, 0, 0, 0, 0, 0);
    d->faults_on = true;
    d->st->faults_end_ms = s->faults_until_ms;
}

/* Issue 13: operator steps at their times, presence reports, estimates. */
static void setup_waiting_room(struct drv *d)
{
    const struct br_scenario *s = d->s;
    for (uint32_t i = 0; i < s->operator_count; i++) {
        push(d, s->operators[i].at_ms, A_OPERATOR, i, 0, 0, 0, 0, 0);
    }
    if (s->presence_report_ms > 0) {
        push(d, s->presence_report_ms, A_PRESENCE, 0, 0, 0, 0, 0, 0);
    }
    if (s->compare || s->presence_report_ms > 0 || s->operator_count > 0) {
        d->est = malloc(sizeof *d->est * (d->users ? d->users : 1));
        BR_ASSERT(d->est != NULL);
        for (uint32_t u = 0; u < d->users; u++) {
            d->est[u].est_s = UINT32_MAX;
        }
    }
}

static int setup(struct drv *d)
{
    const struct br_scenario *s = d->s;
    struct br_rng root;
    br_rng_seed(&root, d->o->seed, 0x73696dULL);
    struct br_rng r_arr = br_rng_split(&root, ST_ARRIVAL);
    d->r_beh = br_rng_split(&root, ST_BEHAVIOUR);
    d->r_prov = br_rng_split(&root, ST_PROVIDER);
    d->r_fault = br_rng_split(&root, ST_FAULTS);
    d->r_bot = br_rng_split(&root, ST_BOTS);
    d->r_clock = br_rng_split(&root, ST_CLOCKS);
    d->r_wr = br_rng_split(&root, ST_WAITING_ROOM);
    for (int p = 0; p < P_COUNT; p++) {
        draw_offset(d, (enum proc)p);
    }
    d->users = s->crowd.users;
    d->st->users = s->crowd.users;
    d->people = calloc(d->users, sizeof *d->people);
    d->bots = calloc(s->crowd.bots ? s->crowd.bots : 1, sizeof *d->bots);
    d->arrivals = malloc(sizeof *d->arrivals * d->users);
    uint64_t *tmp = malloc(sizeof *tmp * d->users);
    if (d->people == NULL || d->bots == NULL || d->arrivals == NULL || tmp == NULL ||
        !br_evq_init(&d->q, d->users / 4 + 1024)) {
        free(tmp);
        return BR_E_FULL;
    }
    int rc = setup_catalog(d);
    if (rc == BR_OK) {
        rc = setup_register(d);
    }
    if (rc != BR_OK) {
        free(tmp);
        return rc;
    }
    setup_arrivals(d, &r_arr, tmp);
    free(tmp);
    setup_bots_and_faults(d);
    setup_waiting_room(d);
    return BR_OK;
}

static void crash(struct drv *d, uint32_t w)
{
    if (!d->faults_on || d->w[w].down || d->w[w].crash_armed) {
        return;
    }
    d->w[w].crash_armed = true; /* lands on the worker's next command */
    d->st->faults[BR_FAULT_ADMITTER_CRASH + w]++;
    /* A worker that is idle dies idle: it is down from now. */
    bool idle = (w == BR_WORKER_SAGA && !d->saga_scheduled);
    if (w == BR_WORKER_ADMITTER || w == BR_WORKER_SWEEPER) {
        idle = true;
        for (uint32_t i = 0; i < d->s->event_count; i++) {
            idle = idle &&
                   !(w == BR_WORKER_ADMITTER ? d->ev[i].admit_scheduled : d->ev[i].sweep_scheduled);
        }
    }
    if (idle) {
        struct worker_state *ws = &d->w[w];
        ws->crash_armed = false;
        ws->down = true;
        ws->down_until = d->t + range_draw(&d->r_fault, d->s->workers[w].down_ms);
        push(d, ws->down_until, A_RESTART, w, 0, 0, 0, 0, 0);
        if (ws->down_until > d->st->faults_end_ms) {
            d->st->faults_end_ms = ws->down_until;
        }
    }
}

/* S5 from the provider's side: at the end, no booking keeps two charges. */
static void check_one_charge_per_booking(struct drv *d)
{
    for (uint32_t i = 0; i < d->s->event_count; i++) {
        struct drv_event *ev = &d->ev[i];
        uint8_t *kept = calloc((size_t)ev->last_hold_n + 1, 1);
        BR_ASSERT(kept != NULL);
        for (uint32_t n = 0; n < ev->pay_cap; n++) {
            const struct pay_rec *r = &ev->pays[n];
            uint32_t hn = (uint32_t)(r->hold_id & 0xffffffffu);
            if (r->hold_id == 0 || hn > ev->last_hold_n || !r->captured || r->refunded) {
                continue;
            }
            br_auditor_count_check(d->o->auditor, BR_INV_S5);
            if (++kept[hn] > 1) {
                char msg[160];
                snprintf(msg, sizeof msg, "booking %" PRIu64 " keeps %u successful charges",
                         r->hold_id, kept[hn]);
                br_auditor_report(d->o->auditor, BR_INV_S5, msg);
            }
        }
        free(kept);
    }
}

static void progress(const struct drv *d)
{
    struct br_driver_progress p = {.arrived = d->next_arrival,
                                   .users = d->users,
                                   .simulated_ms = d->t,
                                   .commands = d->st->commands,
                                   .violations = br_auditor_violations(d->o->auditor)};
    d->o->progress(d->o->progress_ctx, &p);
}

/* A second click's reserve (same key) or another tab's (its own key, if
 * there is room for one more): a tab that wins while its person is still
 * admitted hands them the hold. */
static void reserve_again(struct drv *d, const struct br_action *a)
{
    struct person *pp = &d->people[a->who];
    if (a->kind == A_RESERVE_TAB) {
        if (!room_for_reserve(d)) {
            return;
        }
        d->idem_used++;
    }
    struct br_cmd *c = cmd_new(d, BR_CMD_RESERVE, P_API, a->who + 1u);
    c->u.reserve.event_id = d->ev[pp->event].id;
    c->u.reserve.zone_id = a->a8;
    c->u.reserve.quantity = a->b8;
    c->u.reserve.pass_id = a->x;
    c->u.reserve.idem_key = a->kind == A_RESERVE_DUP ? a->y : next_key(d, a->who);
    struct applied ap;
    if (apply(d, P_API, false, &ap) && ap.out.err == BR_OK) {
        note_new_hold(d, c, &ap.out);
        if (a->kind == A_RESERVE_TAB && pp->phase == PH_ADMITTED) {
            adopt_hold(d, a->who, &ap.out); /* this tab won the race */
        }
    }
}

/* The next person in arrival order arrives. */
static void arrival_step(struct drv *d)
{
    uint32_t u = (uint32_t)(d->arrivals[d->next_arrival] & ((1u << 22) - 1));
    d->next_arrival++;
    if (d->next_arrival < d->users) {
        push(d, (int64_t)(d->arrivals[d->next_arrival] >> 22), A_ARRIVAL, 0, 0, 0, 0, 0, 0);
    }
    arrive(d, u);
}

/* ---- issue 13: the operator, the server's presence reports, the crowd ---- */

static void operator_step(struct drv *d, uint32_t i)
{
    const struct br_scn_operator *op = &d->s->operators[i];
    struct drv_event *ev = &d->ev[op->event];
    struct br_cmd *c = cmd_new(d, BR_CMD_QUEUE_MODE_SET, P_API, 0);
    c->u.queue_mode_set.event_id = ev->id;
    c->u.queue_mode_set.set = op->set;
    c->u.queue_mode_set.mode = op->mode;
    c->u.queue_mode_set.max_active = op->max_active;
    c->u.queue_mode_set.admit_per_min = op->admit_per_min;
    struct applied ap;
    if (!apply(d, P_API, false, &ap)) {
        return;
    }
    d->st->operator_steps++;
    if (ap.out.err == BR_OK) {
        ev->gate = (uint8_t)ap.out.position;
        wake_admitter(d, ev);
    }
}

/* Who the server sees: people on the queue page (queued, or admitted and
 * not yet booking), not those who left. Batches of BR_PRESENCE_BATCH_MAX
 * per event with presence_ttl_s; again while anyone is there or to come. */
static void presence_tick(struct drv *d)
{
    bool anyone = false;
    for (uint32_t ei = 0; ei < d->s->event_count && !d->stop; ei++) {
        if (d->s->events[ei].spec.presence_ttl_s == 0) {
            continue;
        }
        struct br_cmd *c = NULL;
        for (uint32_t u = 0; u <= d->users && !d->stop; u++) {
            const struct person *pp = u < d->users ? &d->people[u] : NULL;
            bool here = pp != NULL && pp->event == ei && !(pp->traits & T_GONE) &&
                        (pp->phase == PH_QUEUED || pp->phase == PH_ADMITTED);
            if (here) {
                anyone = true;
                if (c == NULL) {
                    c = cmd_new(d, BR_CMD_PRESENCE, P_API, 0);
                    c->u.presence.event_id = d->ev[ei].id;
                }
                c->u.presence.user_ids[c->u.presence.count++] = u + 1u;
            }
            if (c != NULL && (c->u.presence.count == BR_PRESENCE_BATCH_MAX || pp == NULL)) {
                struct applied ap;
                apply(d, P_API, false, &ap);
                d->st->presence_commands++;
                c = NULL;
            }
        }
    }
    if (anyone || d->next_arrival < d->users) {
        push(d, d->t + d->s->presence_report_ms, A_PRESENCE, 0, 0, 0, 0, 0, 0);
    }
}

static void abandon(struct drv *d, const struct br_action *a)
{
    struct person *pp = &d->people[a->who];
    if (a->gen != pp->gen || pp->phase != PH_QUEUED) {
        return;
    }
    pp->traits |= T_GONE;
    d->st->abandoned++;
    person_done(d, a->who);
}

/* The queue page of event ei says closed or sold out: the people still
 * waiting go home, half of them giving their place back on the way. */
static void told(struct drv *d, uint32_t ei)
{
    for (uint32_t u = 0; u < d->users && !d->stop; u++) {
        struct person *pp = &d->people[u];
        if (pp->event != ei || pp->phase != PH_QUEUED || (pp->traits & T_GONE)) {
            continue;
        }
        d->st->told_closed++;
        if (br_rng_chance(&d->r_wr, 0.5)) {
            send_leave(d, u);
        }
        person_done(d, u);
    }
}

/* Carries out one action of the agenda, at d->t. */
static void dispatch(struct drv *d, const struct br_action *a)
{
    switch (a->kind) {
    case A_ARRIVAL:
        arrival_step(d);
        break;
    case A_USER:
        user_step(d, a);
        break;
    case A_JOIN_DUP:
        if (!(d->people[a->who].traits & T_GONE)) {
            send_join(d, a->who, false);
        }
        break;
    case A_RESERVE_DUP:
    case A_RESERVE_TAB:
        reserve_again(d, a);
        break;
    case A_PAY_DUP: {
        if (!room_for_payment(d)) {
            break;
        }
        struct br_cmd *c = cmd_new(d, BR_CMD_PAYMENT_CREATE, P_API, a->who + 1u);
        c->u.payment_create.hold_id = a->x;
        c->u.payment_create.check_ms = d->s->payments.check_ms;
        struct applied ap;
        apply(d, P_API, false, &ap);
        break;
    }
    case A_ADMIT_TICK:
        admit_tick(d, a->who);
        break;
    case A_SWEEP_TICK:
        sweep_tick(d, a->who);
        break;
    case A_SAGA_TICK:
        saga_tick(d);
        break;
    case A_CHARGE:
        provider_charge(d, a->x);
        break;
    case A_WEBHOOK:
        deliver_webhook(d, a);
        break;
    case A_REFUND_CALL:
        refund_call(d, a->x);
        break;
    case A_REFUND_RESULT:
        refund_result(d, a);
        break;
    case A_QUERY_CALL:
        query_call(d, a);
        break;
    case A_CRASH:
        crash(d, a->who);
        break;
    case A_RESTART:
        restart(d, a->who);
        break;
    case A_BOT:
        bot_step(d, a->who);
        break;
    case A_OPERATOR:
        operator_step(d, a->who);
        break;
    case A_PRESENCE:
        presence_tick(d);
        break;
    case A_ABANDON:
        abandon(d, a);
        break;
    case A_TOLD:
        told(d, a->who);
        break;
    case A_FAULTS_END:
        d->faults_on = false;
        for (int w = 0; w < BR_WORKER_COUNT; w++) {
            d->w[w].crash_armed = false;
        }
        break;
    default:
        BR_ASSERT(0 && "unknown action kind");
    }
}

static int cmp_i64(const void *x, const void *y)
{
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
    return (a > b) - (a < b);
}

/* The p-quantile of v[0..n) (sorts v); -1 when n == 0. */
static int64_t quantile(int64_t *v, uint64_t n, double p)
{
    if (n == 0) {
        return -1;
    }
    qsort(v, (size_t)n, sizeof *v, cmp_i64);
    uint64_t k = (uint64_t)(p * (double)(n - 1) + 0.5);
    return v[k < n ? k : n - 1];
}

/* The end of a run that was not stopped: the auditor's final checks, the
 * provider's own ledger (S5, S8: money kept = confirmed value, and no
 * booking is charged twice), and liveness (L1: the agenda drained). */
static void finish(struct drv *d)
{
    const struct br_driver_opts *o = d->o;
    struct br_driver_stats *st = d->st;
    /* Everything that could happen has happened (or the drain limit hit). */
    bool drained = d->q.count == 0;
    int64_t end_now = d->s->start_epoch_ms + d->t + d->offset[P_SWEEPER];
    br_auditor_finish(o->auditor, end_now, &st->live);
    int64_t charged, confirmed, owed, refunded;
    br_auditor_money(o->auditor, &charged, &confirmed, &owed, &refunded);
    br_auditor_count_check(o->auditor, BR_INV_S8);
    if (st->provider_captured - st->provider_refunded != confirmed) {
        char msg[200];
        snprintf(msg, sizeof msg,
                 "provider ledger: captured %" PRId64 " - refunded %" PRId64
                 " != confirmed bookings %" PRId64,
                 st->provider_captured, st->provider_refunded, confirmed);
        br_auditor_report(o->auditor, BR_INV_S8, msg);
    }
    check_one_charge_per_booking(d);
    for (uint32_t i = 0; i < d->s->event_count; i++) {
        if (drained && st->live.live_holds + st->live.overdue_holds == 0 &&
            d->ev[i].live_holds != 0) {
            /* The driver's own bookkeeping (it decides when the sweeper
             * may sleep) disagrees with the auditor: a simulator bug. */
            fprintf(stderr,
                    "bookingrush: sim: internal: event %u: driver counts %u live holds, "
                    "the auditor none\n",
                    i, d->ev[i].live_holds);
        }
    }
    st->converged = drained && st->live.converged && br_auditor_violations(o->auditor) == 0;
    br_auditor_count_check(o->auditor, BR_INV_L1);
    if (!drained) {
        char msg[200];
        snprintf(msg, sizeof msg,
                 "not settled %" PRId64 " ms after the faults stopped (%u actions still pending)",
                 d->s->drain_max_ms, d->q.count);
        br_auditor_report(o->auditor, BR_INV_L1, msg);
    }
    st->converge_ms = d->t > st->faults_end_ms ? d->t - st->faults_end_ms : 0;
    st->estimates = d->est_count;
    st->est_err_p50_ms = quantile(d->est_err, d->est_count, 0.50);
    st->est_err_p99_ms = quantile(d->est_err, d->est_count, 0.99);
}

int br_driver_run(const struct br_driver_opts *o, struct br_driver_stats *st)
{
    memset(st, 0, sizeof *st);
    struct drv *d = calloc(1, sizeof *d);
    if (d == NULL) {
        return BR_E_FULL;
    }
    d->o = o;
    d->s = o->scn;
    d->st = st;
    int rc = setup(d);
    int64_t limit = d->s->faults_until_ms + d->s->drain_max_ms;
    struct br_action a;
    uint64_t actions = 0;
    /* Bounded by the drain limit: every action is at or after the previous
     * one, and the loop ends past `limit`. */
    while (rc == BR_OK && !d->stop && br_evq_pop(&d->q, &a)) {
        if (a.at_ms > limit) {
            break;
        }
        if (o->progress != NULL && (++actions & 1023u) == 0) {
            progress(d);
        }
        d->t = a.at_ms;
        dispatch(d, &a);
    }
    st->sim_end_ms = d->t;
    if (rc == BR_OK && d->io_error != 0) {
        rc = d->io_error;
    }
    if (rc == BR_OK && !st->stopped_on_violation) {
        finish(d);
    }
    for (uint32_t i = 0; i < d->s->event_count; i++) {
        free(d->ev[i].pays);
    }
    br_evq_free(&d->q);
    free(d->people);
    free(d->est);
    free(d->est_err);
    free(d->bots);
    free(d->arrivals);
    free(d);
    return rc;
}
