/*
 * gen.c -- the command-sequence generator (see gen.h).
 *
 * Every command is drawn in the same order: the clock step, the command
 * type, the "one field wrong" roll, then the type's own choices. Nothing in
 * struct br_gen changes until the whole command was drawn, so a byte source
 * that runs out in the middle of a command leaves the generator exactly as
 * it was (br_gen_next's contract).
 *
 * The ids a command names come from what br_gen_observe learned; picks from
 * the id rings favour the newest entries (three times in four one of the
 * newest four), because a real client acts on what it just got: the live
 * pass, the hold it is paying for.
 */
#include "gen.h"
#include "saga.h"

#include <string.h>

#include "hash.h"
#include "panic.h"

#define DAY_MS (24LL * 3600 * 1000)

/* The default mix; index BR_GEN_RETRY (0) repeats the previous command.
 * Sums to 256, so choosing a type takes exactly one byte of fuzz input. */
static const uint16_t default_weights[BR_CMD_TYPE_COUNT] = {
    [BR_GEN_RETRY] = 6,          [BR_CMD_EVENT_CREATE] = 6,   [BR_CMD_USER_REGISTER] = 18,
    [BR_CMD_USER_ROLE_SET] = 4,  [BR_CMD_QUEUE_JOIN] = 37,    [BR_CMD_QUEUE_LEAVE] = 6,
    [BR_CMD_ADMIT] = 28,         [BR_CMD_RESERVE] = 45,       [BR_CMD_CANCEL] = 8,
    [BR_CMD_SWEEP] = 14,         [BR_CMD_PAYMENT_CREATE] = 28, [BR_CMD_PAYMENT_EVENT] = 30,
    [BR_CMD_REFUND_RESULT] = 10, [BR_CMD_SAGA_STEP] = 8,      [BR_CMD_SESSION_OPEN] = 4,
    [BR_CMD_SESSION_ROTATE] = 4, [BR_CMD_SESSION_REVOKE] = 2, [BR_CMD_SESSION_REVOKE_ALL] = 2,
};

void br_gen_params_default(struct br_gen_params *p)
{
    memset(p, 0, sizeof *p);
    p->start_ms = 1700000000000LL; /* 2023-11-14: a realistic epoch, far from 0 and from overflow */
    p->events_max = 6;
    p->users_max = 24;
    p->zone_capacity_max = 12;
    p->queue_capacity_max = 64;
    p->idem_keys = 4;
    p->invalid_per_256 = 8;
    memcpy(p->weights, default_weights, sizeof p->weights);
}

void br_gen_params_point8(struct br_gen_params *p)
{
    BR_ASSERT(p->weights[BR_CMD_QUEUE_JOIN] > 8);
    p->weights[BR_CMD_QUEUE_JOIN] = (uint16_t)(p->weights[BR_CMD_QUEUE_JOIN] - 8);
    p->weights[BR_CMD_PAYMENT_CHECK] = (uint16_t)(p->weights[BR_CMD_PAYMENT_CHECK] + 8);
    p->check_per_256 = 128;
}

void br_gen_params_waiting_room(struct br_gen_params *p)
{
    BR_ASSERT(p->weights[BR_CMD_RESERVE] > 6 && p->weights[BR_CMD_SWEEP] > 4);
    BR_ASSERT(p->weights[BR_CMD_USER_REGISTER] > 4 && p->weights[BR_CMD_PAYMENT_EVENT] > 6);
    p->weights[BR_CMD_RESERVE] = (uint16_t)(p->weights[BR_CMD_RESERVE] - 6);
    p->weights[BR_CMD_SWEEP] = (uint16_t)(p->weights[BR_CMD_SWEEP] - 4);
    p->weights[BR_CMD_USER_REGISTER] = (uint16_t)(p->weights[BR_CMD_USER_REGISTER] - 4);
    p->weights[BR_CMD_PAYMENT_EVENT] = (uint16_t)(p->weights[BR_CMD_PAYMENT_EVENT] - 6);
    p->weights[BR_CMD_PRESENCE] = (uint16_t)(p->weights[BR_CMD_PRESENCE] + 14);
    p->weights[BR_CMD_QUEUE_MODE_SET] = (uint16_t)(p->weights[BR_CMD_QUEUE_MODE_SET] + 6);
    p->zone_capacity_max = p->zone_capacity_max < 6 ? p->zone_capacity_max : 6;
    p->waiting_room = true;
}

void br_gen_engine_config(const struct br_gen_params *p, uint64_t seed, struct br_config *cfg)
{
    uint32_t events = p->events_max + 1; /* one more than the mix aims at: FULL stays reachable */
    memset(cfg, 0, sizeof *cfg);
    cfg->seed = seed;
    cfg->events_max = events;
    cfg->users_max = p->users_max;
    cfg->members_max = events * p->users_max;
    cfg->queue_capacity_default = p->queue_capacity_max;
    cfg->queue_slots_max = events * p->queue_capacity_max;
    cfg->passes_max = 128;
    cfg->active_max = events * 4;                            /* max_active is drawn in 1..4 */
    cfg->holds_max = 128;
    cfg->seats_max = events * 3 * p->zone_capacity_max; /* zone_count is drawn in 1..3 */
    cfg->payments_max = 96;
    cfg->idem_max = 128;
    cfg->provider_events_max = 128;
}

void br_gen_init(struct br_gen *g, const struct br_gen_params *p)
{
    BR_ASSERT(p->start_ms >= 0 && p->start_ms < (1LL << 52));
    BR_ASSERT(p->events_max >= 1 && p->events_max <= BR_GEN_EVENTS_MAX);
    BR_ASSERT(p->users_max >= 1 && p->users_max <= BR_GEN_USERS_MAX);
    BR_ASSERT(p->zone_capacity_max >= 1 && p->zone_capacity_max <= BR_ZONE_CAPACITY_MAX);
    BR_ASSERT(p->queue_capacity_max >= 1 && p->queue_capacity_max <= (1u << 20));
    BR_ASSERT(p->idem_keys >= 1 && p->idem_keys < 65535u && p->invalid_per_256 <= 256);
    BR_ASSERT(p->check_per_256 <= 256);
    memset(g, 0, sizeof *g);
    g->p = *p;
    for (uint32_t t = 0; t < BR_CMD_TYPE_COUNT; t++) {
        g->weight_sum += p->weights[t];
    }
    BR_ASSERT(g->weight_sum >= 1 && g->weight_sum <= 65535u);
    g->now_ms = p->start_ms;
}

void br_gen_source_bytes(struct br_gen_source *s, const uint8_t *buf, size_t len)
{
    BR_ASSERT(buf != NULL || len == 0);
    memset(s, 0, sizeof *s);
    s->from_bytes = true;
    s->buf = buf;
    s->len = len;
}

void br_gen_source_rng(struct br_gen_source *s, uint64_t seed, uint64_t stream)
{
    memset(s, 0, sizeof *s);
    br_rng_seed(&s->rng, seed, stream);
}

uint32_t br_gen_draw(struct br_gen_source *s, uint32_t n)
{
    if (n <= 1) {
        return 0;
    }
    if (!s->from_bytes) {
        return (uint32_t)br_rng_below(&s->rng, n);
    }
    size_t width = n <= 256u ? 1 : n <= 65536u ? 2 : 4;
    if (s->exhausted || s->len - s->pos < width) {
        s->exhausted = true;
        return 0;
    }
    uint32_t v = 0;
    for (size_t i = 0; i < width; i++) {
        v |= (uint32_t)s->buf[s->pos + i] << (8 * i);
    }
    s->pos += width;
    BR_ASSERT(s->pos <= s->len);
    return v % n;
}

/* ---- what the generator remembers ---- */

static uint32_t ring_index(const struct br_gen_ring *r, uint32_t back)
{
    return (r->next + BR_GEN_RING_MAX - 1 - back) % BR_GEN_RING_MAX; /* back 0 = newest */
}

static void ring_push(struct br_gen_ring *r, uint64_t id, uint64_t event_id, uint64_t user_id)
{
    for (uint32_t back = 0; back < r->count; back++) {
        if (r->items[ring_index(r, back)].id == id) {
            return; /* known already (a retry's answer, a re-emitted effect) */
        }
    }
    r->items[r->next] = (struct br_gen_ref){.id = id, .event_id = event_id, .user_id = user_id};
    r->next = (r->next + 1) % BR_GEN_RING_MAX;
    if (r->count < BR_GEN_RING_MAX) {
        r->count++;
    }
}

/* Makes the remembered ref with this id the newest (nothing if unknown):
 * the next picks favour it. O(BR_GEN_RING_MAX). */
static void ring_bump(struct br_gen_ring *r, uint64_t id)
{
    for (uint32_t back = 0; back < r->count; back++) {
        if (r->items[ring_index(r, back)].id == id) {
            struct br_gen_ref found = r->items[ring_index(r, back)];
            for (uint32_t b = back; b > 0; b--) {
                r->items[ring_index(r, b)] = r->items[ring_index(r, b - 1)];
            }
            r->items[ring_index(r, 0)] = found;
            return;
        }
    }
}

/* A remembered ref, most often one of the newest four; NULL when none. */
static const struct br_gen_ref *ring_pick(const struct br_gen_ring *r, struct br_gen_source *s)
{
    if (r->count == 0) {
        return NULL;
    }
    uint32_t recent = r->count < 4 ? r->count : 4;
    uint32_t back = br_gen_draw(s, 4) != 0 ? br_gen_draw(s, recent) : br_gen_draw(s, r->count);
    BR_ASSERT(back < r->count);
    return &r->items[ring_index(r, back)];
}

static const struct br_gen_event *find_event(const struct br_gen *g, uint64_t id)
{
    for (uint32_t i = 0; i < g->event_count; i++) {
        if (g->events[i].id == id) {
            return &g->events[i];
        }
    }
    return NULL;
}

static struct br_gen_user *find_user(struct br_gen *g, uint64_t id)
{
    for (uint32_t i = 0; i < g->user_count; i++) {
        if (g->users[i].id == id) {
            return &g->users[i];
        }
    }
    return NULL;
}

/* ---- picking ids ---- */

/* An id that names nothing the caller meant: none, the next one (not yet
 * created), the same number in another event, or an event never created. */
static uint64_t wrong_id(struct br_gen_source *s, uint64_t id)
{
    switch (br_gen_draw(s, 4)) {
    case 0:
        return 0;
    case 1:
        return id + 1;
    case 2:
        return id ^ (1ULL << 32);
    default:
        return (0x7ffffULL << 32) | br_gen_draw(s, 256);
    }
}

/* A pass, hold or payment id when none is remembered: it may exist, mostly not. */
static uint64_t guess_id(struct br_gen_source *s)
{
    return ((uint64_t)(1 + br_gen_draw(s, 4)) << 32) | (1 + br_gen_draw(s, 8));
}

/* A remembered user, or an id no user has when none is remembered. */
static uint64_t pick_user(const struct br_gen *g, struct br_gen_source *s)
{
    if (g->user_count == 0) {
        return 1 + br_gen_draw(s, 4);
    }
    return g->users[br_gen_draw(s, g->user_count)].id;
}

/* A remembered user whose role is at least `role` (organizer: organizers and
 * admins), else any user. */
static uint64_t pick_user_with_role(const struct br_gen *g, struct br_gen_source *s, uint8_t role)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < g->user_count; i++) {
        n += g->users[i].role >= role;
    }
    if (n == 0) {
        return pick_user(g, s);
    }
    uint32_t k = br_gen_draw(s, n);
    for (uint32_t i = 0; i < g->user_count; i++) {
        if (g->users[i].role >= role && k-- == 0) {
            return g->users[i].id;
        }
    }
    BR_ASSERT(false); /* k < n matches */
    return 0;
}

/* A remembered event, or a made-up one (id past the last) when none is. */
static struct br_gen_event pick_event(const struct br_gen *g, struct br_gen_source *s)
{
    if (g->event_count == 0) {
        return (struct br_gen_event){.id = 1 + br_gen_draw(s, 2), .zone_count = 1};
    }
    return g->events[br_gen_draw(s, g->event_count)];
}

/* ---- building commands ---- */

/* dst = prefix, n in decimal, suffix; truncated to cap - 1 bytes, NUL-terminated. */
static void text_num(char *dst, size_t cap, const char *prefix, uint32_t n, const char *suffix)
{
    char digits[10];
    size_t nd = 0;
    do {
        digits[nd++] = (char)('0' + n % 10);
        n /= 10;
    } while (n != 0 && nd < sizeof digits);
    size_t at = 0;
    for (const char *p = prefix; *p != 0 && at + 1 < cap; p++) {
        dst[at++] = *p;
    }
    while (nd > 0 && at + 1 < cap) {
        dst[at++] = digits[--nd];
    }
    for (const char *p = suffix; *p != 0 && at + 1 < cap; p++) {
        dst[at++] = *p;
    }
    dst[at] = 0;
}

struct draw {
    const struct br_gen *g;
    struct br_gen_source *s;
    int64_t now_ms;
    bool bad;                  /* break one field of this command */
    uint64_t fresh_provider;   /* a new provider event id was used (0 = none) */
    bool fresh_idem;           /* a new idempotency key was used */
};

static uint32_t d(struct draw *x, uint32_t n)
{
    return br_gen_draw(x->s, n);
}

/* Pacing: none, or 60..6,000 admissions a minute (1 to 100 a second). */
static uint32_t admit_per_min(struct draw *x)
{
    static const uint32_t apm[] = {0, 0, 60, 300, 1200, 6000};
    return apm[d(x, 6)];
}

static uint8_t queue_mode(struct draw *x)
{
    switch (d(x, 8)) {
    case 0:
        return BR_QM_PAUSED;
    case 1:
        return BR_QM_PASSTHROUGH;
    case 2:
        return BR_QM_CLOSED;
    default:
        return BR_QM_OPEN;
    }
}

/* Issue 13's spec fields (br_gen_params_waiting_room), one of them out of
 * range on a bad command half the time. */
static void gen_waiting_room_spec(struct draw *x, struct br_event_spec *s)
{
    s->queue_flags = d(x, 4) != 0 ? BR_QF_INVENTORY_AWARE : 0;
    s->admit_per_min = admit_per_min(x);
    s->presence_ttl_s = d(x, 3) != 0 ? 1 + d(x, 5) : 0;
    s->pow_bits = d(x, 4) == 0 ? (uint8_t)d(x, BR_POW_BITS_MAX + 1) : 0;
    s->mode = d(x, 2) == 0 ? queue_mode(x) : BR_QM_OPEN;
    if (x->bad && d(x, 2) == 0) {
        switch (d(x, 5)) {
        case 0:
            s->admit_per_min = BR_ADMIT_PER_MIN_MAX + 1;
            break;
        case 1:
            s->presence_ttl_s = BR_PRESENCE_TTL_S_MAX + 1;
            break;
        case 2:
            s->pow_bits = BR_POW_BITS_MAX + 1;
            break;
        case 3:
            s->queue_flags = (uint8_t)(BR_QF_ALL + 1);
            break;
        default:
            s->mode = BR_QUEUE_MODE_COUNT;
            break;
        }
    }
}

static void gen_event_create(struct draw *x, struct br_cmd *c)
{
    struct br_event_spec *s = &c->u.event_create;
    uint32_t who = d(x, 8);
    c->user_id = who < 6 ? 0 : pick_user_with_role(x->g, x->s, BR_ROLE_ORGANIZER);
    text_num(s->name, sizeof s->name, "Tour night ", x->g->event_count + 1, "");
    text_num(s->venue, sizeof s->venue, "Arena ", d(x, 4), "");
    s->starts_at_ms = x->now_ms + 30 * DAY_MS;
    switch (d(x, 4)) {
    case 0:
    case 1:
        s->sale_opens_at_ms = x->now_ms >= 1000 ? x->now_ms - 1000 : 0; /* open already */
        break;
    case 2:
        s->sale_opens_at_ms = x->now_ms + 500 * (int64_t)d(x, 16); /* a pre-queue forms */
        break;
    default:
        s->sale_opens_at_ms = x->now_ms + 60000;
        break;
    }
    s->per_user_limit = 1 + d(x, 6);
    s->requires_pass = d(x, 4) != 0;
    s->max_active = 1 + d(x, 4);
    s->admit_per_tick = 1 + d(x, 3);
    s->pass_ttl_ms = 2000 * (1 + (int64_t)d(x, 20)); /* 2..40 s: tens of commands */
    s->hold_ttl_ms = 5000 * (1 + (int64_t)d(x, 30)); /* 5..150 s */
    s->queue_capacity = d(x, 2) != 0 ? 0 : 1 + d(x, x->g->p.queue_capacity_max);
    s->zone_count = 1 + d(x, 3);
    for (uint32_t z = 0; z < s->zone_count; z++) {
        struct br_zone_spec *zs = &s->zones[z];
        text_num(zs->name, sizeof zs->name, "Zone ", z + 1, "");
        zs->capacity = 1 + d(x, x->g->p.zone_capacity_max);
        zs->price_minor = 500 * (int64_t)d(x, 8); /* free tickets (0) happen too */
        memcpy(zs->currency, d(x, 2) != 0 ? "EUR" : "USD", 4);
    }
    if (x->g->p.waiting_room) {
        gen_waiting_room_spec(x, s);
    }
    if (x->bad) {
        switch (d(x, 8)) {
        case 0:
            s->per_user_limit = 0;
            break;
        case 1:
            s->zone_count = 0;
            break;
        case 2:
            memcpy(s->zones[0].currency, "eur", 4);
            break;
        case 3:
            s->max_active = 0;
            break;
        case 4:
            s->hold_ttl_ms = 0;
            break;
        case 5:
            s->name[0] = 0;
            break;
        case 6:
            s->zones[0].capacity = 0;
            break;
        default:
            c->user_id = pick_user(x->g, x->s); /* a customer may not organize */
            break;
        }
    }
}

static void gen_user_register(struct draw *x, struct br_cmd *c)
{
    uint32_t k = d(x, x->g->p.users_max); /* a small pool of emails: EMAIL_TAKEN happens */
    text_num(c->u.user_register.email, BR_EMAIL_MAX, "user", k, "@example.com");
    text_num(c->u.user_register.name, BR_NAME_MAX, "User ", k, "");
    for (uint32_t i = 0; i < BR_PASSWORD_HASH_LEN; i++) {
        c->u.user_register.password_hash[i] = (uint8_t)(k * 31 + i);
    }
    for (uint32_t i = 0; i < BR_SALT_LEN; i++) {
        c->u.user_register.salt[i] = (uint8_t)(k * 17 + i);
    }
    uint32_t r = d(x, 16);
    c->u.user_register.role =
        (uint8_t)(r < 12 ? BR_ROLE_CUSTOMER : r < 15 ? BR_ROLE_ORGANIZER : BR_ROLE_ADMIN);
    if (x->bad) {
        switch (d(x, 3)) {
        case 0:
            c->u.user_register.email[0] = 0;
            break;
        case 1:
            c->u.user_register.role = (uint8_t)(BR_ROLE_COUNT + d(x, 4));
            break;
        default:
            c->user_id = pick_user(x->g, x->s); /* only the server registers */
            break;
        }
    }
}

static void gen_user_role_set(struct draw *x, struct br_cmd *c)
{
    c->user_id = d(x, 4) == 0 ? pick_user_with_role(x->g, x->s, BR_ROLE_ADMIN) : 0;
    c->u.user_role_set.target_user_id = pick_user(x->g, x->s);
    c->u.user_role_set.role = (uint8_t)d(x, BR_ROLE_COUNT);
    if (x->bad) {
        switch (d(x, 3)) {
        case 0:
            c->u.user_role_set.role = BR_ROLE_COUNT;
            break;
        case 1:
            c->u.user_role_set.target_user_id = wrong_id(x->s, c->u.user_role_set.target_user_id);
            break;
        default:
            c->user_id = pick_user(x->g, x->s);
            break;
        }
    }
}

/* join, leave: a user and an event. */
static void gen_queue_member(struct draw *x, struct br_cmd *c)
{
    c->user_id = pick_user(x->g, x->s);
    c->u.queue_join.event_id = pick_event(x->g, x->s).id;
    if (x->bad) {
        if (d(x, 2) == 0) {
            c->user_id = wrong_id(x->s, c->user_id);
        } else {
            c->u.queue_join.event_id = wrong_id(x->s, c->u.queue_join.event_id);
        }
    }
}

static void gen_admit(struct draw *x, struct br_cmd *c)
{
    c->u.admit.event_id = pick_event(x->g, x->s).id;
    if (x->bad) {
        if (d(x, 2) == 0) {
            c->user_id = pick_user(x->g, x->s); /* only the admitter admits */
        } else {
            c->u.admit.event_id = wrong_id(x->s, c->u.admit.event_id);
        }
    }
}

static void gen_reserve(struct draw *x, struct br_cmd *c)
{
    const struct br_gen_ref *pass = d(x, 4) != 0 ? ring_pick(&x->g->passes, x->s) : NULL;
    uint32_t zone_count = 1;
    if (pass != NULL) {
        /* The usual path: the pass's owner reserves in its event (the pass
         * may be live, used or expired by now). */
        c->user_id = pass->user_id;
        c->u.reserve.event_id = pass->event_id;
        c->u.reserve.pass_id = pass->id;
        const struct br_gen_event *ev = find_event(x->g, pass->event_id);
        zone_count = ev != NULL ? ev->zone_count : 1;
    } else {
        struct br_gen_event ev = pick_event(x->g, x->s);
        c->user_id = pick_user(x->g, x->s);
        c->u.reserve.event_id = ev.id;
        zone_count = ev.zone_count;
        if (d(x, 2) == 0) {
            const struct br_gen_ref *other = ring_pick(&x->g->passes, x->s);
            c->u.reserve.pass_id = other != NULL ? other->id : 0; /* someone else's, or stale */
        }
    }
    c->u.reserve.zone_id = 1 + d(x, zone_count);
    c->u.reserve.quantity = 1 + d(x, 3);
    /* Half the requests carry no key, a third a fresh one; the rest reuse one
     * of a few keys, as a buggy client would (IDEMPOTENCY_CONFLICT). A true
     * retry with the same key is the BR_GEN_RETRY path. */
    uint32_t key = d(x, 6);
    if (key >= 3 && key < 5) {
        x->fresh_idem = true;
        c->u.reserve.idem_key = br_mix64(0x6b6579ULL + x->g->idem_seq + 1) | 1;
    } else if (key == 5) {
        c->u.reserve.idem_key = 2 * (uint64_t)(1 + d(x, x->g->p.idem_keys));
    }
    if (x->bad) {
        switch (d(x, 5)) {
        case 0:
            c->u.reserve.quantity = 0;
            break;
        case 1:
            c->u.reserve.quantity = BR_HOLD_QUANTITY_MAX + 1;
            break;
        case 2:
            c->u.reserve.zone_id = zone_count + 1;
            break;
        case 3:
            c->u.reserve.event_id = wrong_id(x->s, c->u.reserve.event_id);
            break;
        default:
            c->u.reserve.pass_id = wrong_id(x->s, c->u.reserve.pass_id);
            break;
        }
    }
}

/* payment_create's check_ms (point 8): none unless the mix asks for it. */
static uint32_t check_ms(struct draw *x)
{
    if (x->g->p.check_per_256 == 0 || d(x, 256) >= x->g->p.check_per_256) {
        return 0;
    }
    if (x->bad && d(x, 2) == 0) {
        return d(x, 2) == 0 ? BR_PAYMENT_CHECK_MS_MIN - 1 : BR_PAYMENT_CHECK_MS_MAX + 1;
    }
    switch (d(x, 8)) {
    case 0:
        return 60000;
    case 1:
        return BR_PAYMENT_CHECK_MS_MAX;
    default:
        return BR_PAYMENT_CHECK_MS_MIN + 1000 * d(x, 4);
    }
}

/* cancel, payment_create: a hold and (mostly) its owner. */
static void gen_hold_cmd(struct draw *x, struct br_cmd *c)
{
    const struct br_gen_ref *h = ring_pick(&x->g->holds, x->s);
    c->u.cancel.hold_id = h != NULL ? h->id : guess_id(x->s);
    c->user_id = h != NULL ? h->user_id : pick_user(x->g, x->s);
    if (c->type == BR_CMD_PAYMENT_CREATE) {
        c->u.payment_create.check_ms = check_ms(x);
    }
    if (x->bad) {
        if (d(x, 2) == 0) {
            c->u.cancel.hold_id = wrong_id(x->s, c->u.cancel.hold_id);
        } else {
            c->user_id = pick_user(x->g, x->s); /* maybe not the owner */
        }
    }
}

static void gen_sweep(struct draw *x, struct br_cmd *c)
{
    c->u.sweep.event_id = pick_event(x->g, x->s).id;
    c->u.sweep.max = 1 + d(x, 8);
    if (x->bad) {
        switch (d(x, 3)) {
        case 0:
            c->u.sweep.max = 0;
            break;
        case 1:
            c->u.sweep.max = BR_SWEEP_MAX + 1;
            break;
        default:
            c->user_id = pick_user(x->g, x->s);
            break;
        }
    }
}

/* A status query's answer as the driver feeds it back (saga.h): the
 * provider event id is a function of (payment, answer), so the same answer
 * twice is a redelivery. */
static void gen_query_answer(struct draw *x, struct br_cmd *c, const struct br_gen_ref *p)
{
    uint32_t answer = d(x, 3); /* 0 succeeded, 1 declined ("failed:1"), 2 "failed:canceled" */
    c->u.payment_event.payment_id = p->id;
    c->u.payment_event.provider_event_id =
        answer == 2 ? br_saga_answer_id(p->id, false, "canceled")
                    : br_mix64(0x713a0000ULL + p->id * 4 + answer);
    c->u.payment_event.succeeded = answer == 0;
}

static void gen_payment_event(struct draw *x, struct br_cmd *c)
{
    const struct br_gen *g = x->g;
    if (g->checks.count > 0 && d(x, 4) == 0) {
        gen_query_answer(x, c, ring_pick(&g->checks, x->s));
        if (x->bad) {
            c->user_id = pick_user(g, x->s);
        }
        return;
    }
    const struct br_gen_ref *p = ring_pick(&g->payments, x->s);
    c->u.payment_event.payment_id = p != NULL ? p->id : guess_id(x->s);
    if (g->provider_count > 0 && d(x, 4) == 0) {
        /* A redelivery: the provider sends an event id it sent before. */
        c->u.payment_event.provider_event_id = g->provider_ids[d(x, g->provider_count)];
    } else {
        x->fresh_provider = br_mix64(0x65767400ULL + g->provider_seq + 1);
        c->u.payment_event.provider_event_id = x->fresh_provider;
    }
    c->u.payment_event.succeeded = d(x, 4) != 0;
    if (x->bad) {
        if (d(x, 2) == 0) {
            c->user_id = pick_user(g, x->s); /* only verified webhooks, as the system */
        } else {
            c->u.payment_event.payment_id = wrong_id(x->s, c->u.payment_event.payment_id);
        }
    }
}

static void gen_refund_result(struct draw *x, struct br_cmd *c)
{
    const struct br_gen_ref *p = d(x, 4) != 0 ? ring_pick(&x->g->refunds, x->s) : NULL;
    if (p == NULL) {
        p = ring_pick(&x->g->payments, x->s); /* maybe not owed a refund: DUPLICATE */
    }
    c->u.refund_result.payment_id = p != NULL ? p->id : guess_id(x->s);
    c->u.refund_result.ok = d(x, 3) != 0;
    if (x->bad) {
        if (d(x, 2) == 0) {
            c->user_id = pick_user(x->g, x->s);
        } else {
            c->u.refund_result.payment_id = wrong_id(x->s, c->u.refund_result.payment_id);
        }
    }
}

static void gen_saga_step(struct draw *x, struct br_cmd *c)
{
    c->u.saga_step.max = 1 + d(x, 8);
    if (x->bad) {
        switch (d(x, 3)) {
        case 0:
            c->u.saga_step.max = 0;
            break;
        case 1:
            c->u.saga_step.max = BR_SAGA_STEP_MAX + 1;
            break;
        default:
            c->user_id = pick_user(x->g, x->s);
            break;
        }
    }
}

/* queue_mode_set: the system, the event's owner, another organizer or a
 * customer steers mode, live max_active and pacing. */
static void gen_queue_mode_set(struct draw *x, struct br_cmd *c)
{
    struct br_gen_event ev = pick_event(x->g, x->s);
    switch (d(x, 4)) {
    case 0:
        c->user_id = 0;
        break;
    case 1:
        c->user_id = ev.owner;
        break;
    case 2:
        c->user_id = pick_user_with_role(x->g, x->s, BR_ROLE_ORGANIZER);
        break;
    default:
        c->user_id = d(x, 2) == 0 ? pick_user(x->g, x->s) : 0;
        break;
    }
    c->u.queue_mode_set.event_id = ev.id;
    c->u.queue_mode_set.set = (uint8_t)(1 + d(x, 7));
    c->u.queue_mode_set.mode = queue_mode(x);
    c->u.queue_mode_set.max_active = 1 + d(x, 4); /* spec max_active is 1..4: some INVALID */
    c->u.queue_mode_set.admit_per_min = admit_per_min(x);
    if (x->bad) {
        switch (d(x, 5)) {
        case 0:
            c->u.queue_mode_set.set = d(x, 2) == 0 ? 0 : 8;
            break;
        case 1:
            c->u.queue_mode_set.mode = BR_QUEUE_MODE_COUNT;
            break;
        case 2:
            c->u.queue_mode_set.max_active = 0;
            break;
        case 3:
            c->u.queue_mode_set.admit_per_min = BR_ADMIT_PER_MIN_MAX + 1;
            break;
        default:
            c->u.queue_mode_set.event_id = wrong_id(x->s, ev.id);
            break;
        }
    }
}

/* presence: the server's batch of users seen in one event (a few, some
 * not members, duplicates possible). */
static void gen_presence(struct draw *x, struct br_cmd *c)
{
    c->u.presence.event_id = pick_event(x->g, x->s).id;
    c->u.presence.count = 1 + d(x, 6);
    for (uint32_t i = 0; i < c->u.presence.count; i++) {
        c->u.presence.user_ids[i] = pick_user(x->g, x->s);
    }
    if (x->bad) {
        switch (d(x, 4)) {
        case 0:
            c->u.presence.count = 0;
            memset(c->u.presence.user_ids, 0, sizeof c->u.presence.user_ids);
            break;
        case 1:
            c->u.presence.user_ids[d(x, c->u.presence.count)] = 0;
            break;
        case 2:
            c->user_id = pick_user(x->g, x->s); /* only the server, as the system */
            break;
        default:
            c->u.presence.event_id = wrong_id(x->s, c->u.presence.event_id);
            break;
        }
    }
}

static void gen_payment_check(struct draw *x, struct br_cmd *c)
{
    c->u.payment_check.max = 1 + d(x, 8);
    if (x->bad) {
        switch (d(x, 3)) {
        case 0:
            c->u.payment_check.max = 0;
            break;
        case 1:
            c->u.payment_check.max = BR_SAGA_STEP_MAX + 1;
            break;
        default:
            c->user_id = pick_user(x->g, x->s);
            break;
        }
    }
}

/* A session's ttl: seconds to a minute, so the clock's jumps expire some. */
static int64_t session_ttl(struct draw *x)
{
    if (x->bad && d(x, 4) == 0) {
        return d(x, 2) == 0 ? 0 : BR_TTL_MS_MAX + 1;
    }
    return 1000 + (int64_t)d(x, 60) * 1000;
}

static void gen_session_open(struct draw *x, struct br_cmd *c)
{
    c->user_id = pick_user(x->g, x->s);
    c->u.session_open.ttl_ms = session_ttl(x);
    c->u.session_open.generation = 1 + d(x, 1000); /* the server's draw, small here */
    if (x->bad && d(x, 2) == 0) {
        switch (d(x, 3)) {
        case 0:
            c->user_id = 0; /* the system */
            break;
        case 1:
            c->user_id += 1000; /* nobody */
            break;
        default:
            c->u.session_open.generation = d(x, 2) == 0 ? 0 : BR_SESSION_GENERATION_FIRST_MAX + 1;
            break;
        }
    }
}

/* rotate and revoke: a remembered session, at its current generation most
 * often, else an older one (a reused token) or one never issued. */
static void gen_session_token(struct draw *x, struct br_cmd *c)
{
    const struct br_gen_ref *r = ring_pick(&x->g->sessions, x->s);
    c->u.session_rotate.session_id = r != NULL ? r->id : 1 + d(x, 4);
    uint32_t gen = r != NULL ? (uint32_t)r->event_id : 1;
    switch (d(x, 8)) {
    case 0:
        gen = gen > 1 ? gen - 1 - d(x, gen - 1) : gen; /* a copy of an older token */
        break;
    case 1:
        gen += 1; /* never issued */
        break;
    default:
        break;
    }
    c->u.session_rotate.generation = gen;
    c->u.session_rotate.ttl_ms = c->type == BR_CMD_SESSION_ROTATE ? session_ttl(x) : 0;
    if (x->bad && d(x, 2) == 0) {
        c->user_id = pick_user(x->g, x->s); /* only the server, as the system */
    }
}

static void gen_session_revoke_all(struct draw *x, struct br_cmd *c)
{
    c->user_id = pick_user(x->g, x->s);
    if (x->bad) {
        c->user_id = d(x, 2) == 0 ? 0 : c->user_id + 1000;
    }
}

/* The command type: by weight, then steered towards what it needs. */
static uint8_t pick_type(struct draw *x)
{
    const struct br_gen *g = x->g;
    uint32_t w = d(x, g->weight_sum);
    uint8_t type = BR_GEN_RETRY;
    for (uint8_t t = 0; t < BR_CMD_TYPE_COUNT; t++) {
        if (w < g->p.weights[t]) {
            type = t;
            break;
        }
        w -= g->p.weights[t];
    }
    bool needs_user = type == BR_CMD_QUEUE_JOIN || type == BR_CMD_QUEUE_LEAVE ||
                      type == BR_CMD_RESERVE || type == BR_CMD_USER_ROLE_SET;
    bool needs_event = type == BR_CMD_QUEUE_JOIN || type == BR_CMD_QUEUE_LEAVE ||
                       type == BR_CMD_ADMIT || type == BR_CMD_RESERVE || type == BR_CMD_SWEEP ||
                       type == BR_CMD_QUEUE_MODE_SET || type == BR_CMD_PRESENCE;
    /* Three times in four, make what is missing first; the fourth goes ahead
     * and meets NOT_FOUND / UNAUTHORIZED. */
    if (needs_user && g->user_count == 0 && d(x, 4) != 0) {
        return BR_CMD_USER_REGISTER;
    }
    if (needs_event && g->event_count == 0 && d(x, 4) != 0) {
        return BR_CMD_EVENT_CREATE;
    }
    /* Enough events or users: their queues are where the action is. */
    if (type == BR_CMD_EVENT_CREATE && g->event_count >= g->p.events_max && d(x, 8) != 0) {
        return BR_CMD_QUEUE_JOIN;
    }
    if (type == BR_CMD_USER_REGISTER && g->user_count >= g->p.users_max && d(x, 8) != 0) {
        return BR_CMD_QUEUE_JOIN;
    }
    if (type == BR_GEN_RETRY && !g->has_last) {
        return BR_CMD_SAGA_STEP;
    }
    return type;
}

/* The clock: mostly small steps, sometimes seconds or minutes (TTLs lapse),
 * sometimes a few milliseconds back (skew). One draw. */
static int64_t step_clock(struct br_gen_source *s, int64_t now_ms)
{
    int64_t t = br_gen_draw(s, 256);
    if (t < 208) {
        now_ms += t / 2; /* 0..103 ms: a crowd arriving */
    } else if (t < 244) {
        now_ms += (t - 207) * 100; /* 0.1..3.6 s */
    } else if (t < 250) {
        now_ms += (t - 243) * 5000; /* 5..30 s: passes and holds lapse */
    } else {
        now_ms -= (t - 249) * 5; /* 5..30 ms back: another server's clock */
    }
    return now_ms < 0 ? 0 : now_ms;
}

bool br_gen_next(struct br_gen *g, struct br_gen_source *src, struct br_cmd *cmd)
{
    memset(cmd, 0, sizeof *cmd);
    struct draw x = {.g = g, .s = src};
    x.now_ms = step_clock(src, g->now_ms);
    uint8_t type = pick_type(&x);
    x.bad = br_gen_draw(src, 256) < g->p.invalid_per_256;
    if (type == BR_GEN_RETRY) {
        *cmd = g->last; /* the same request again, a little later */
    } else {
        cmd->type = type;
    }
    cmd->now_ms = x.now_ms;
    switch (type) {
    case BR_GEN_RETRY:
        break;
    case BR_CMD_EVENT_CREATE:
        gen_event_create(&x, cmd);
        break;
    case BR_CMD_USER_REGISTER:
        gen_user_register(&x, cmd);
        break;
    case BR_CMD_USER_ROLE_SET:
        gen_user_role_set(&x, cmd);
        break;
    case BR_CMD_QUEUE_JOIN:
    case BR_CMD_QUEUE_LEAVE:
        gen_queue_member(&x, cmd);
        break;
    case BR_CMD_ADMIT:
        gen_admit(&x, cmd);
        break;
    case BR_CMD_RESERVE:
        gen_reserve(&x, cmd);
        break;
    case BR_CMD_CANCEL:
    case BR_CMD_PAYMENT_CREATE:
        gen_hold_cmd(&x, cmd);
        break;
    case BR_CMD_SWEEP:
        gen_sweep(&x, cmd);
        break;
    case BR_CMD_PAYMENT_EVENT:
        gen_payment_event(&x, cmd);
        break;
    case BR_CMD_REFUND_RESULT:
        gen_refund_result(&x, cmd);
        break;
    case BR_CMD_SAGA_STEP:
        gen_saga_step(&x, cmd);
        break;
    case BR_CMD_PAYMENT_CHECK:
        gen_payment_check(&x, cmd);
        break;
    case BR_CMD_SESSION_OPEN:
        gen_session_open(&x, cmd);
        break;
    case BR_CMD_SESSION_ROTATE:
    case BR_CMD_SESSION_REVOKE:
        gen_session_token(&x, cmd);
        break;
    case BR_CMD_SESSION_REVOKE_ALL:
        gen_session_revoke_all(&x, cmd);
        break;
    case BR_CMD_QUEUE_MODE_SET:
        gen_queue_mode_set(&x, cmd);
        break;
    case BR_CMD_PRESENCE:
        gen_presence(&x, cmd);
        break;
    default:
        BR_ASSERT(false); /* pick_type returns a command type or BR_GEN_RETRY */
    }
    if (src->from_bytes && src->exhausted) {
        memset(cmd, 0, sizeof *cmd);
        return false;
    }
    BR_ASSERT(cmd->type > BR_CMD_NONE && cmd->type < BR_CMD_TYPE_COUNT);
    g->now_ms = x.now_ms;
    g->generated++;
    g->last = *cmd;
    g->has_last = true;
    g->idem_seq += x.fresh_idem;
    if (x.fresh_provider != 0) {
        g->provider_seq++;
        g->provider_ids[g->provider_next] = x.fresh_provider;
        g->provider_next = (g->provider_next + 1) % BR_GEN_PROVIDER_IDS_MAX;
        if (g->provider_count < BR_GEN_PROVIDER_IDS_MAX) {
            g->provider_count++;
        }
    }
    return true;
}

/* A rotated session's new generation, into its ref (sessions keep it in event_id). */
static void session_generation(struct br_gen_ring *r, uint64_t id, uint32_t generation)
{
    for (uint32_t back = 0; back < r->count; back++) {
        struct br_gen_ref *ref = &r->items[ring_index(r, back)];
        if (ref->id == id) {
            ref->event_id = generation;
            return;
        }
    }
}

void br_gen_observe(struct br_gen *g, const struct br_cmd *cmd, const struct br_outcome *out,
                    const struct br_effect *fx, uint32_t n)
{
    BR_ASSERT(fx != NULL || n == 0);
    BR_ASSERT(n <= BR_EFFECTS_MAX);
    switch (cmd->type) {
    case BR_CMD_EVENT_CREATE:
        if (out->err == BR_OK && g->event_count < BR_GEN_EVENTS_MAX &&
            find_event(g, out->id) == NULL) {
            g->events[g->event_count++] = (struct br_gen_event){
                .id = out->id,
                .zone_count = cmd->u.event_create.zone_count,
                .requires_pass = cmd->u.event_create.requires_pass,
                .owner = cmd->user_id,
            };
        }
        break;
    case BR_CMD_USER_REGISTER:
        /* EMAIL_TAKEN names the existing user too: worth knowing. */
        if ((out->err == BR_OK || out->err == BR_E_EMAIL_TAKEN) && out->id != 0 &&
            find_user(g, out->id) == NULL && g->user_count < BR_GEN_USERS_MAX) {
            g->users[g->user_count++] = (struct br_gen_user){
                .id = out->id,
                .role = out->err == BR_OK ? cmd->u.user_register.role : BR_ROLE_CUSTOMER,
            };
        }
        break;
    case BR_CMD_USER_ROLE_SET:
        if (out->err == BR_OK) {
            struct br_gen_user *u = find_user(g, out->id);
            if (u != NULL) {
                u->role = out->status;
            }
        }
        break;
    case BR_CMD_RESERVE:
        if (out->err == BR_OK) {
            ring_push(&g->holds, out->id, cmd->u.reserve.event_id, cmd->user_id);
        }
        break;
    case BR_CMD_SESSION_OPEN:
        if (out->err == BR_OK) {
            ring_push(&g->sessions, out->id, out->count, cmd->user_id);
        }
        break;
    case BR_CMD_SESSION_ROTATE:
        if (out->err == BR_OK) {
            session_generation(&g->sessions, out->id, out->count);
        }
        break;
    case BR_CMD_PAYMENT_EVENT:
        /* A decline: the buyer soon pays for this hold again, which reopens
         * the same payment (re-confirmation), so it becomes the newest. */
        if (out->err == BR_OK && out->status == BR_PAY_FAILED) {
            ring_bump(&g->holds, out->ref);
        }
        break;
    default:
        break;
    }
    for (uint32_t i = 0; i < n; i++) {
        const struct br_effect *f = &fx[i];
        if (f->kind == BR_FX_PASS_ISSUED) {
            ring_push(&g->passes, f->id, f->event_id, f->user_id);
        } else if (f->kind == BR_FX_PROVIDER_CHARGE) {
            ring_push(&g->payments, f->id, f->event_id, f->user_id);
            ring_bump(&g->payments, f->id); /* a reopened payment is confirmed again next */
        } else if (f->kind == BR_FX_PROVIDER_REFUND) {
            ring_push(&g->refunds, f->id, f->event_id, f->user_id);
        } else if (f->kind == BR_FX_PROVIDER_QUERY || f->kind == BR_FX_PROVIDER_VOID) {
            ring_push(&g->checks, f->id, f->event_id, f->user_id);
            ring_bump(&g->checks, f->id); /* its answer comes next */
        }
    }
}
