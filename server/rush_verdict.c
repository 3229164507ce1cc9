/*
 * rush_verdict.c -- the rush's verdict (rush_verdict.h): the eleven checks on
 * the ledger (what the crowd saw) and the final snapshot (what the server
 * says now), and the snapshot's reading over rush_net.
 *
 * The checks (design12 §5, §5.1), each from outside the server:
 *  OVERSELL          per zone: stats held + sold <= capacity; and, apart from
 *                    the stats, the final rows' held + confirmed quantities.
 *  STATS_MISMATCH    owned event: per zone the rows' held / confirmed sums
 *                    equal stats held / sold, and the per-status row counts
 *                    equal stats.bookings; an --event run uses <= instead.
 *                    Not evaluated on an unstable snapshot (it moved).
 *  BOOKING_LOST      every 201's booking id is in its user's final list, and
 *                    one the crowd saw confirmed is still confirmed/refunded.
 *  USER_LIMIT        a 201 above the limit; a user's held + confirmed > limit.
 *  PAYMENT_UNSETTLED a succeeded confirm ended neither confirmed nor refunded;
 *                    an unknown one still held.
 *  UNPAID_CONFIRMED  confirmed/refunded without a success card sent for it.
 *  PASS_ORDER        rule F: A's join answered before B's join was sent, both
 *                    answered waiting, both with a pass: A's pass comes first.
 *                    Only happens-before pairs are compared (concurrent joins
 *                    never flag). Rule P: every prequeue place's pass comes
 *                    before every waiting place's, within one event.
 *  SHUFFLE           among happens-before pairs of prequeue places, >= 200
 *                    pairs and more than 90% in join order.
 *  PASS_REUSED       two bookings on one pass; more bookings than distinct
 *                    passes received (events that require a pass). A pass
 *                    seen again by a rejoin's place counts once.
 *  PASS_UNDELIVERED  a listening user whose final status shows a pass
 *                    (admitted, used, expired) that never came down a stream;
 *                    and any place (one the user then rejoined after, too)
 *                    whose streams the server ended with such a status
 *                    and no pass.
 *                    Silent leavers, lost streams and passes issued in the
 *                    last 2 s of the crowd phase or after it are excused and
 *                    counted; when a pass was issued is judged by the
 *                    positions read as the crowd left (br_rush_positions_read),
 *                    else by the final read.
 *  IDEMPOTENCY       a double-click pair with one key answered differently
 *                    (503, 429 and timeouts ignored).
 * A pass's order key is its sequence from the token (pass id), or, when some
 * token did not parse, its issue time (ms, so ties are not ordered).
 *
 * Limits: work O(places log places + rows); memory O(places + rows), freed
 * before return. At most BR_RUSH_VIOLATIONS_LISTED are kept with their
 * message, and the first of each check always gets a slot.
 */
#include "server/rush_verdict.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/engine.h"
#include "core/err.h"
#include "core/panic.h"
#include "server/rush_net.h"

#define NAME_ENTRY(n) #n,
#define UNDELIVERED_GRACE_MS 2000
#define SHUFFLE_PAIRS_MIN 200u
#define SHUFFLE_AGREE_MAX 0.9

const char *br_rush_check_name(unsigned check)
{
    static const char *const names[BR_RUSH_CHECK_COUNT] = {BR_RUSH_CHECK_MAP(NAME_ENTRY)};
    return check < BR_RUSH_CHECK_COUNT ? names[check] : "UNKNOWN";
}

bool br_rush_verdict_ok(const struct br_rush_verdict *v)
{
    for (unsigned c = 0; c < BR_RUSH_CHECK_COUNT; c++) {
        if (v->counts[c] != 0) {
            return false;
        }
    }
    return true;
}

/* ---- parsing what the server answers ---- */

static bool take_u64(const char **p, uint64_t *v)
{
    const char *s = *p;
    uint64_t x = 0;
    unsigned digits = 0;
    while (*s >= '0' && *s <= '9' && digits < 19) {
        x = x * 10 + (uint64_t)(*s - '0');
        s++;
        digits++;
    }
    if (digits == 0 || *s != '.') {
        return false;
    }
    *v = x;
    *p = s + 1;
    return true;
}

int br_rush_pass_token_parse(const char *token, uint64_t *event_id, uint64_t *user_id,
                             uint64_t *pass_id, int64_t *expires_at_ms)
{
    if (token == NULL || strncmp(token, "p1.", 3) != 0) {
        return BR_E_INVALID;
    }
    const char *p = token + 3;
    uint64_t f[4];
    for (unsigned i = 0; i < 4; i++) {
        if (!take_u64(&p, &f[i])) {
            return BR_E_INVALID;
        }
    }
    size_t n = strlen(p);
    if (n != 64 || strspn(p, "0123456789abcdef") != 64 || f[2] == 0 || f[3] > INT64_MAX) {
        return BR_E_INVALID;
    }
    *event_id = f[0];
    *user_id = f[1];
    *pass_id = f[2];
    *expires_at_ms = (int64_t)f[3];
    return BR_OK;
}

static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int br_rush_time_parse(const char *s, int64_t *ms)
{
    int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0, milli = 0, used = 0;
    if (s == NULL || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ%n", &y, &mo, &d, &h, &mi, &sec, &milli,
                            &used) != 7 || used != 24 || s[24] != '\0') {
        return BR_E_INVALID;
    }
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) {
        return BR_E_INVALID;
    }
    int64_t days = days_from_civil(y, mo, d);
    *ms = ((days * 24 + h) * 60 + mi) * 60000 + (int64_t)sec * 1000 + milli;
    return BR_OK;
}

static bool json_u32(const json_t *o, const char *key, uint32_t *v)
{
    const json_t *j = json_object_get(o, key);
    if (!json_is_integer(j) || json_integer_value(j) < 0 || json_integer_value(j) > UINT32_MAX) {
        return false;
    }
    *v = (uint32_t)json_integer_value(j);
    return true;
}

static bool json_u64(const json_t *o, const char *key, uint64_t *v)
{
    const json_t *j = json_object_get(o, key);
    if (!json_is_integer(j) || json_integer_value(j) < 0) {
        return false;
    }
    *v = (uint64_t)json_integer_value(j);
    return true;
}

static bool stats_zones(const json_t *zones, struct br_rush_stats *out)
{
    if (!json_is_array(zones) || json_array_size(zones) > BR_EVENT_ZONES_MAX) {
        return false;
    }
    for (size_t i = 0; i < json_array_size(zones); i++) {
        const json_t *z = json_array_get(zones, i);
        uint32_t id = 0;
        if (!json_u32(z, "id", &id) || id == 0 || id > BR_EVENT_ZONES_MAX) {
            return false;
        }
        if (!json_u32(z, "capacity", &out->capacity[id - 1]) ||
            !json_u32(z, "held", &out->held[id - 1]) || !json_u32(z, "sold", &out->sold[id - 1])) {
            return false;
        }
        if (id > out->zone_count) {
            out->zone_count = id;
        }
    }
    return true;
}

int br_rush_stats_parse(const char *json, size_t len, struct br_rush_stats *out)
{
    static const char *const status_keys[5] = {"held", "confirmed", "expired", "cancelled",
                                               "refunded"};
    memset(out, 0, sizeof *out);
    json_t *j = json_loadb(json, len, 0, NULL);
    bool ok = json_is_object(j) && json_u64(j, "event_id", &out->event_id) &&
              json_u32(j, "queue_length", &out->queue_length) &&
              json_u32(j, "admitted", &out->admitted) &&
              json_u32(j, "active_passes", &out->active_passes) &&
              stats_zones(json_object_get(j, "zones"), out);
    const json_t *b = ok ? json_object_get(j, "bookings") : NULL;
    for (unsigned k = 0; ok && k < 5; k++) {
        ok = json_u32(b, status_keys[k], &out->bookings[k]);
    }
    json_decref(j);
    if (!ok) {
        memset(out, 0, sizeof *out);
        return BR_E_INVALID;
    }
    return BR_OK;
}

/* ---- the verdict: helpers ---- */

struct vctx {
    const struct br_rush_ledger *l;
    const struct br_rush_snapshot *s;
    struct br_rush_verdict *out;
    int64_t t0_us;                     /* earliest join sent: messages give times from it */
};

static void flag(struct vctx *c, unsigned check, uint64_t event_id, uint64_t user_id,
                 uint32_t zone_id, uint64_t booking_id, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));

static void flag(struct vctx *c, unsigned check, uint64_t event_id, uint64_t user_id,
                 uint32_t zone_id, uint64_t booking_id, const char *fmt, ...)
{
    BR_ASSERT(check < BR_RUSH_CHECK_COUNT);
    struct br_rush_verdict *v = c->out;
    bool first = v->counts[check] == 0;
    v->counts[check]++;
    /* Keep a slot for the first violation of every check not yet seen. */
    uint32_t unseen = 0;
    for (unsigned k = 0; k < BR_RUSH_CHECK_COUNT; k++) {
        unseen += v->counts[k] == 0;
    }
    if (v->listed >= BR_RUSH_VIOLATIONS_LISTED ||
        (!first && v->listed + unseen >= BR_RUSH_VIOLATIONS_LISTED)) {
        return;
    }
    struct br_rush_violation *x = &v->v[v->listed++];
    x->check = (uint8_t)check;
    x->event_id = event_id;
    x->user_id = user_id;
    x->zone_id = zone_id;
    x->booking_id = booking_id;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->message, sizeof x->message, fmt, ap);
    va_end(ap);
}

static uint32_t rows_begin(const struct br_rush_snapshot *s, uint32_t u)
{
    return s->row_start != NULL ? s->row_start[u] : 0;
}

static uint32_t rows_end(const struct br_rush_snapshot *s, uint32_t u)
{
    return s->row_start != NULL ? s->row_start[u + 1] : 0;
}

static int event_ix_of(const struct br_rush_ledger *l, uint64_t event_id)
{
    for (uint32_t e = 0; e < l->event_count; e++) {
        if (l->events[e].id == event_id) {
            return (int)e;
        }
    }
    return -1;
}

static uint32_t zones_of(const struct br_rush_ledger *l, const struct br_rush_snapshot *s,
                         uint32_t e)
{
    uint32_t n = l->events[e].zone_count;
    if (s->stats[e].zone_count > n) {
        n = s->stats[e].zone_count;
    }
    return n < BR_EVENT_ZONES_MAX ? n : BR_EVENT_ZONES_MAX;
}

static uint32_t capacity_of(const struct br_rush_ledger *l, const struct br_rush_snapshot *s,
                            uint32_t e, uint32_t z)
{
    return l->events[e].capacity[z] != 0 ? l->events[e].capacity[z] : s->stats[e].capacity[z];
}

static const struct br_rush_final_booking *row_find(const struct br_rush_snapshot *s, uint32_t u,
                                                    uint64_t id)
{
    for (uint32_t r = rows_begin(s, u); r < rows_end(s, u); r++) {
        if (s->rows[r].id == id) {
            return &s->rows[r];
        }
    }
    return NULL;
}

static const struct br_rush_booking *ledger_booking(const struct br_rush_user *usr, uint64_t id)
{
    for (uint32_t b = 0; b < usr->booking_count && b < BR_RUSH_BOOKINGS_MAX; b++) {
        if (usr->bookings[b].id == id) {
            return &usr->bookings[b];
        }
    }
    return NULL;
}

static bool place_has_pass(const struct br_rush_place *p)
{
    return p->pass_id != 0 || p->pass_via != 0;
}

/* Whether places a and b of one user hold the same pass: a rejoin while the
 * pass is live keeps the place on the server (queue.h), and the crowd then
 * records it again under a new place. */
static bool same_pass(const struct br_rush_user *usr, uint32_t a, uint32_t b)
{
    if (a == b) {
        return true;
    }
    if (a >= usr->place_count || b >= usr->place_count || a >= BR_RUSH_PLACES_MAX ||
        b >= BR_RUSH_PLACES_MAX) {
        return false;
    }
    const struct br_rush_place *x = &usr->places[a], *y = &usr->places[b];
    if (x->pass_id != 0 && x->pass_id != UINT64_MAX && x->pass_id == y->pass_id) {
        return true;
    }
    return x->pass[0] != '\0' && strncmp(x->pass, y->pass, sizeof x->pass) == 0;
}

/* Whether place p's pass is a new one (not held by an earlier place). */
static bool pass_first_seen(const struct br_rush_user *usr, uint32_t p)
{
    for (uint32_t q = 0; q < p; q++) {
        if (place_has_pass(&usr->places[q]) && same_pass(usr, q, p)) {
            return false;
        }
    }
    return true;
}

static bool status_shows_pass(uint8_t st)
{
    return st == BR_QS_ADMITTED || st == BR_QS_USED || st == BR_QS_EXPIRED;
}

/* ---- OVERSELL and STATS_MISMATCH ---- */

struct sums {                           /* per event, from the final rows */
    uint64_t held[BR_EVENT_ZONES_MAX], confirmed[BR_EVENT_ZONES_MAX];
    uint32_t status[5];                 /* rows by status held..refunded */
};

static void rows_sum(const struct br_rush_ledger *l, const struct br_rush_snapshot *s,
                     struct sums *sum)
{
    memset(sum, 0, sizeof(struct sums) * BR_RUSH_EVENTS_MAX);
    uint32_t total = s->row_start != NULL ? s->row_start[l->user_count] : 0;
    for (uint32_t r = 0; r < total; r++) {
        const struct br_rush_final_booking *b = &s->rows[r];
        int e = event_ix_of(l, b->event_id);
        if (e < 0) {
            continue;
        }
        if (b->status >= BR_HOLD_HELD && b->status <= BR_HOLD_REFUNDED) {
            sum[e].status[b->status - BR_HOLD_HELD]++;
        }
        if (b->zone_id == 0 || b->zone_id > BR_EVENT_ZONES_MAX) {
            continue;
        }
        if (b->status == BR_HOLD_HELD) {
            sum[e].held[b->zone_id - 1] += b->quantity;
        } else if (b->status == BR_HOLD_CONFIRMED) {
            sum[e].confirmed[b->zone_id - 1] += b->quantity;
        }
    }
}

static void check_oversell(struct vctx *c, const struct sums *sum)
{
    const struct br_rush_ledger *l = c->l;
    for (uint32_t e = 0; e < l->event_count; e++) {
        const struct br_rush_stats *st = &c->s->stats[e];
        for (uint32_t z = 0; z < zones_of(l, c->s, e); z++) {
            uint64_t cap = capacity_of(l, c->s, e, z);
            uint64_t used = (uint64_t)st->held[z] + st->sold[z];
            if (used > cap) {
                flag(c, BR_RUSH_CHECK_OVERSELL, l->events[e].id, 0, z + 1, 0,
                     "event %" PRIu64 " zone %u: stats held %u + sold %u = %" PRIu64
                     " > capacity %" PRIu64,
                     l->events[e].id, z + 1, st->held[z], st->sold[z], used, cap);
            }
            uint64_t rows = sum[e].held[z] + sum[e].confirmed[z];
            if (rows > cap) {
                flag(c, BR_RUSH_CHECK_OVERSELL, l->events[e].id, 0, z + 1, 0,
                     "event %" PRIu64 " zone %u: the users' bookings hold %" PRIu64
                     " held + %" PRIu64 " confirmed = %" PRIu64 " > capacity %" PRIu64,
                     l->events[e].id, z + 1, sum[e].held[z], sum[e].confirmed[z], rows, cap);
            }
        }
    }
}

/* Owned: equal; --event: ours <= the server's (other buyers exist). */
static bool differs(bool owned, uint64_t ours, uint64_t stats)
{
    return owned ? ours != stats : ours > stats;
}

static void check_stats(struct vctx *c, const struct sums *sum)
{
    static const char *const names[5] = {"held", "confirmed", "expired", "cancelled", "refunded"};
    const struct br_rush_ledger *l = c->l;
    if (c->s->unstable) {
        return;
    }
    for (uint32_t e = 0; e < l->event_count; e++) {
        const struct br_rush_stats *st = &c->s->stats[e];
        bool owned = l->events[e].owned;
        const char *rel = owned ? "!=" : ">";
        uint64_t id = l->events[e].id;
        for (uint32_t z = 0; z < zones_of(l, c->s, e); z++) {
            if (differs(owned, sum[e].held[z], st->held[z])) {
                flag(c, BR_RUSH_CHECK_STATS_MISMATCH, id, 0, z + 1, 0,
                     "event %" PRIu64 " zone %u: bookings held %" PRIu64 " %s stats held %u", id,
                     z + 1, sum[e].held[z], rel, st->held[z]);
            }
            if (differs(owned, sum[e].confirmed[z], st->sold[z])) {
                flag(c, BR_RUSH_CHECK_STATS_MISMATCH, id, 0, z + 1, 0,
                     "event %" PRIu64 " zone %u: bookings confirmed %" PRIu64 " %s stats sold %u",
                     id, z + 1, sum[e].confirmed[z], rel, st->sold[z]);
            }
        }
        for (unsigned k = 0; k < 5; k++) {
            if (differs(owned, sum[e].status[k], st->bookings[k])) {
                flag(c, BR_RUSH_CHECK_STATS_MISMATCH, id, 0, 0, 0,
                     "event %" PRIu64 ": %u bookings %s in the users' lists %s stats.bookings.%s %u",
                     id, sum[e].status[k], names[k], rel, names[k], st->bookings[k]);
            }
        }
    }
}

/* ---- per-user checks: BOOKING_LOST, USER_LIMIT, payments, PASS_REUSED, IDEMPOTENCY ---- */

static void check_user_bookings(struct vctx *c, uint32_t u)
{
    const struct br_rush_user *usr = &c->l->users[u];
    const struct br_rush_event *ev = &c->l->events[usr->event_ix];
    for (uint32_t i = 0; i < usr->booking_count && i < BR_RUSH_BOOKINGS_MAX; i++) {
        const struct br_rush_booking *b = &usr->bookings[i];
        if (b->id == 0) {
            continue;
        }
        const struct br_rush_final_booking *row = row_find(c->s, u, b->id);
        if (b->quantity > ev->per_user_limit) {
            flag(c, BR_RUSH_CHECK_USER_LIMIT, ev->id, usr->user_id, b->zone_id, b->id,
                 "user %" PRIu64 ": booking %" PRIu64 " answered 201 for %u seats, limit %u",
                 usr->user_id, b->id, b->quantity, ev->per_user_limit);
        }
        if (row == NULL) {
            flag(c, BR_RUSH_CHECK_BOOKING_LOST, ev->id, usr->user_id, b->zone_id, b->id,
                 "user %" PRIu64 ": booking %" PRIu64 " answered 201 is not in the user's list",
                 usr->user_id, b->id);
            continue;
        }
        bool paid_end = row->status == BR_HOLD_CONFIRMED || row->status == BR_HOLD_REFUNDED;
        if (b->last_status == BR_HOLD_CONFIRMED && !paid_end) {
            flag(c, BR_RUSH_CHECK_BOOKING_LOST, ev->id, usr->user_id, b->zone_id, b->id,
                 "user %" PRIu64 ": booking %" PRIu64 " was answered confirmed, now %s",
                 usr->user_id, b->id, br_hold_state_name(row->status));
        }
        if (b->pay == BR_RUSH_PAY_SUCCEEDED && !paid_end) {
            flag(c, BR_RUSH_CHECK_PAYMENT_UNSETTLED, ev->id, usr->user_id, b->zone_id, b->id,
                 "user %" PRIu64 ": booking %" PRIu64 " paid (confirm succeeded) but ends %s",
                 usr->user_id, b->id, br_hold_state_name(row->status));
        } else if (b->pay == BR_RUSH_PAY_UNKNOWN && row->status == BR_HOLD_HELD) {
            flag(c, BR_RUSH_CHECK_PAYMENT_UNSETTLED, ev->id, usr->user_id, b->zone_id, b->id,
                 "user %" PRIu64 ": booking %" PRIu64 " with an unanswered confirm is still held"
                 " after the settle phase", usr->user_id, b->id);
        }
    }
    if (usr->over_limit_201 != 0) {
        flag(c, BR_RUSH_CHECK_USER_LIMIT, ev->id, usr->user_id, 0, 0,
             "user %" PRIu64 ": %u reserves above the limit %u answered 201", usr->user_id,
             usr->over_limit_201, ev->per_user_limit);
    }
}

static void check_user_rows(struct vctx *c, uint32_t u)
{
    const struct br_rush_user *usr = &c->l->users[u];
    uint64_t seats[BR_RUSH_EVENTS_MAX] = {0};
    for (uint32_t r = rows_begin(c->s, u); r < rows_end(c->s, u); r++) {
        const struct br_rush_final_booking *row = &c->s->rows[r];
        int e = event_ix_of(c->l, row->event_id);
        if (e < 0) {
            continue;
        }
        if (row->status == BR_HOLD_HELD || row->status == BR_HOLD_CONFIRMED) {
            seats[e] += row->quantity;
        }
        if (row->status != BR_HOLD_CONFIRMED && row->status != BR_HOLD_REFUNDED) {
            continue;
        }
        const struct br_rush_booking *b = ledger_booking(usr, row->id);
        /* In an --event run a row we never got a 201 for may be another run's. */
        if ((b == NULL && c->l->events[e].owned) || (b != NULL && !b->card_success_sent)) {
            flag(c, BR_RUSH_CHECK_UNPAID_CONFIRMED, row->event_id, usr->user_id, row->zone_id,
                 row->id, "user %" PRIu64 ": booking %" PRIu64 " is %s but no success card was"
                 " sent for it%s", usr->user_id, row->id, br_hold_state_name(row->status),
                 b == NULL ? " (the crowd never got its 201)" : "");
        }
    }
    for (uint32_t e = 0; e < c->l->event_count; e++) {
        if (seats[e] > c->l->events[e].per_user_limit) {
            flag(c, BR_RUSH_CHECK_USER_LIMIT, c->l->events[e].id, usr->user_id, 0, 0,
                 "user %" PRIu64 ": holds %" PRIu64 " seats (held + confirmed) in event %" PRIu64
                 ", limit %u", usr->user_id, seats[e], c->l->events[e].id,
                 c->l->events[e].per_user_limit);
        }
    }
}

static void check_user_passes(struct vctx *c, uint32_t u)
{
    const struct br_rush_user *usr = &c->l->users[u];
    const struct br_rush_event *ev = &c->l->events[usr->event_ix];
    if (!ev->requires_pass) {
        return;
    }
    uint32_t nb = usr->booking_count < BR_RUSH_BOOKINGS_MAX ? usr->booking_count
                                                            : BR_RUSH_BOOKINGS_MAX;
    uint32_t bookings = 0;
    for (uint32_t i = 0; i < nb; i++) {
        const struct br_rush_booking *a = &usr->bookings[i];
        bool dup = a->id == 0;
        for (uint32_t j = 0; j < i && !dup; j++) {
            const struct br_rush_booking *b = &usr->bookings[j];
            dup = b->id == a->id;
            if (!dup && a->place < usr->place_count && same_pass(usr, a->place, b->place)) {
                flag(c, BR_RUSH_CHECK_PASS_REUSED, ev->id, usr->user_id, a->zone_id, a->id,
                     "user %" PRIu64 ": bookings %" PRIu64 " and %" PRIu64
                     " both answered 201 on the pass of place %u", usr->user_id, b->id, a->id,
                     a->place);
            }
        }
        bookings += !dup;
    }
    if (ev->owned) {                    /* the final list may hold bookings we never got a 201 for */
        uint32_t rows = 0;
        for (uint32_t r = rows_begin(c->s, u); r < rows_end(c->s, u); r++) {
            rows += c->s->rows[r].event_id == ev->id;
        }
        bookings = rows > bookings ? rows : bookings;
    }
    uint32_t passes = 0;
    for (uint32_t p = 0; p < usr->place_count && p < BR_RUSH_PLACES_MAX; p++) {
        passes += place_has_pass(&usr->places[p]) && pass_first_seen(usr, p);
    }
    if (bookings > passes) {
        flag(c, BR_RUSH_CHECK_PASS_REUSED, ev->id, usr->user_id, 0, 0,
             "user %" PRIu64 ": %u bookings on event %" PRIu64 " with %u passes received",
             usr->user_id, bookings, ev->id, passes);
    }
}

/* The writes a double-click repeats (rush_net names every route; this file links without it). */
static const char *write_name(uint8_t route)
{
    switch (route) {
    case BR_RR_JOIN: return "join";
    case BR_RR_RESERVE: return "reserve";
    case BR_RR_PAYMENT: return "payment create";
    case BR_RR_CONFIRM: return "confirm";
    case BR_RR_CANCEL: return "cancel";
    case BR_RR_LEAVE: return "leave";
    default: return "a write";
    }
}

static void check_user_dups(struct vctx *c, uint32_t u)
{
    const struct br_rush_user *usr = &c->l->users[u];
    for (uint32_t d = 0; d < usr->dup_count && d < BR_RUSH_DUPS_MAX; d++) {
        const struct br_rush_dup *p = &usr->dups[d];
        int a = p->first.status;
        int b = p->second.status;
        if (a == 0 || b == 0 || a == 429 || b == 429 || a == 503 || b == 503) {
            continue;
        }
        if (p->route == BR_RR_CONFIRM) { /* a confirm after success: 409, "already succeeded" */
            a = a == 409 ? 200 : a;
            b = b == 409 ? 200 : b;
        }
        bool ids = p->first.id != 0 && p->second.id != 0 && p->first.id != p->second.id;
        if (a != b || ids) {
            flag(c, BR_RUSH_CHECK_IDEMPOTENCY, c->l->events[usr->event_ix].id, usr->user_id, 0,
                 p->first.id, "user %" PRIu64 ": %s sent twice with one key answered %d (id %"
                 PRIu64 ") then %d (id %" PRIu64 ")", usr->user_id, write_name(p->route),
                 p->first.status, p->first.id, p->second.status, p->second.id);
        }
    }
}

/* ---- PASS_UNDELIVERED and the delivery counts ---- */

static void check_user_delivery(struct vctx *c, uint32_t u, int64_t grace_from_ms)
{
    const struct br_rush_user *usr = &c->l->users[u];
    const struct br_rush_event *ev = &c->l->events[usr->event_ix];
    struct br_rush_verdict *v = c->out;
    uint32_t np = usr->place_count < BR_RUSH_PLACES_MAX ? usr->place_count : BR_RUSH_PLACES_MAX;
    if (np == 0) {
        return;
    }
    bool flagged = false;
    for (uint32_t p = 0; p < np; p++) {
        const struct br_rush_place *pl = &usr->places[p];
        if (!place_has_pass(pl) && status_shows_pass(pl->end_status) && pl->stream_kept &&
            !pl->silent_left) {
            /* The stream itself said the pass was issued (and then lapsed or was used)
             * before the crowd stopped, and it never carried it. */
            flag(c, BR_RUSH_CHECK_PASS_UNDELIVERED, ev->id, usr->user_id, 0, 0,
                 "user %" PRIu64 ": the server ended the stream of place %u with status %s and"
                 " no pass came down it (joined at %.1f ms)", usr->user_id, p,
                 br_queue_status_name(pl->end_status),
                 (double)(pl->join_sent_us - c->t0_us) / 1000.0);
            flagged = true; /* the user is named; its final status is not judged again */
        }
        if (!place_has_pass(pl) || !pass_first_seen(usr, p)) {
            continue;
        }
        if (pl->pass_via != 0) {
            v->passes_received++;
            v->received_leaving += pl->left_sent;
        } else {
            v->excused_admitted++;      /* the pass came in a join answer, not down a stream */
        }
    }
    const struct br_rush_place *last = &usr->places[np - 1];
    uint8_t st = usr->final_queue_status;
    if (st == BR_QS_LEFT && last->left_sent && !place_has_pass(last)) {
        v->left_while_waiting++;
    }
    if (st == 0xff && !place_has_pass(last)) {
        v->final_unread++;              /* its admission, if any, cannot be placed */
    }
    if (flagged || place_has_pass(last) || !status_shows_pass(st)) {
        return;
    }
    if (last->silent_left) {
        v->silent_admitted++;
        return;
    }
    int64_t issued = c->s->final_pass_issued_ms != NULL ? c->s->final_pass_issued_ms[u] : 0;
    int64_t read_ms = c->s->read_wall_ms;
    uint8_t at = st;                    /* the status the timing is judged by */
    if (c->s->end_status != NULL && c->s->end_status[u] != 0xff) {
        /* The position read as the crowd left: no pass then is a pass issued after. */
        at = status_shows_pass(c->s->end_status[u]) ? c->s->end_status[u] : BR_QS_ADMITTED;
        issued = status_shows_pass(c->s->end_status[u]) ? c->s->end_pass_issued_ms[u]
                                                         : c->s->positions_wall_ms;
        read_ms = c->s->positions_wall_ms;
    }
    bool late = at == BR_QS_ADMITTED && issued != 0 && issued >= grace_from_ms;
    /* An expired pass was issued a pass TTL before the read at the latest. */
    bool maybe_late = at == BR_QS_EXPIRED && read_ms != 0 &&
                      read_ms - ev->pass_ttl_ms >= grace_from_ms;
    if (!last->stream_kept || late || maybe_late) {
        v->excused_admitted++;
        return;
    }
    flag(c, BR_RUSH_CHECK_PASS_UNDELIVERED, ev->id, usr->user_id, 0, 0,
         "user %" PRIu64 ": queue status %s but no pass came down the stream it kept open"
         " (place %u, joined at %.1f ms)", usr->user_id, br_queue_status_name(st), np - 1,
         (double)(last->join_sent_us - c->t0_us) / 1000.0);
}

/* ---- PASS_ORDER (rules F and P) and SHUFFLE ---- */

struct vplace {
    int64_t sent_us, recv_us, key;      /* key: the pass's order (sequence, or issue ms) */
    uint32_t user;
    uint8_t place;
};

static int by_recv(const void *x, const void *y)
{
    const struct vplace *a = x, *b = y;
    return (a->recv_us > b->recv_us) - (a->recv_us < b->recv_us);
}

static int by_sent(const void *x, const void *y)
{
    const struct vplace *a = x, *b = y;
    return (a->sent_us > b->sent_us) - (a->sent_us < b->sent_us);
}

static int by_i64(const void *x, const void *y)
{
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
    return (a > b) - (a < b);
}

/* The first index in sorted keys[0..n) whose key is >= k. */
static size_t lower_bound(const int64_t *keys, size_t n, int64_t k)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (keys[mid] < k) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

/* The places of event e first answered `status` whose pass we received;
 * returns how many were written to out. */
static size_t places_of(const struct vctx *c, uint32_t e, uint8_t status, struct vplace *out)
{
    size_t n = 0;
    for (uint32_t u = 0; u < c->l->user_count; u++) {
        const struct br_rush_user *usr = &c->l->users[u];
        if (usr->storm || usr->event_ix != e) {
            continue;
        }
        for (uint32_t p = 0; p < usr->place_count && p < BR_RUSH_PLACES_MAX; p++) {
            const struct br_rush_place *pl = &usr->places[p];
            int64_t key = c->s->pass_seq_from_token ? (int64_t)(pl->pass_id & 0xffffffffu)
                                                    : pl->pass_issued_ms;
            if (pl->join_status != status || !place_has_pass(pl) || key == 0) {
                continue;
            }
            out[n++] = (struct vplace){pl->join_sent_us, pl->join_recv_us, key, u, (uint8_t)p};
        }
    }
    return n;
}

static void order_flag(struct vctx *c, uint64_t event_id, const struct vplace *a,
                       const struct vplace *b, const char *rule)
{
    const struct br_rush_user *ua = &c->l->users[a->user];
    const struct br_rush_user *ub = &c->l->users[b->user];
    const char *what = c->s->pass_seq_from_token ? "pass" : "pass issued at ms";
    int64_t ka = c->s->pass_seq_from_token ? (int64_t)ua->places[a->place].pass_id : a->key;
    int64_t kb = c->s->pass_seq_from_token ? (int64_t)ub->places[b->place].pass_id : b->key;
    flag(c, BR_RUSH_CHECK_PASS_ORDER, event_id, ua->user_id, 0, 0,
         "user %" PRIu64 " (%s %" PRId64 ") admitted after user %" PRIu64 " (%s %" PRId64
         ") though user %" PRIu64 " joined (answered %.1f ms) before user %" PRIu64
         " joined (sent %.1f ms)%s", ua->user_id, what, ka, ub->user_id, what, kb, ua->user_id,
         (double)(a->recv_us - c->t0_us) / 1000.0, ub->user_id,
         (double)(b->sent_us - c->t0_us) / 1000.0, rule);
}

/* Rule F over the waiting places: As by answer, Bs by sending; the running
 * max key of the As answered before B was sent must stay below B's key. */
static void rule_f(struct vctx *c, uint64_t event_id, struct vplace *a, struct vplace *b, size_t n)
{
    memcpy(b, a, n * sizeof *a);
    qsort(a, n, sizeof *a, by_recv);
    qsort(b, n, sizeof *b, by_sent);
    size_t i = 0;
    const struct vplace *best = NULL;
    for (size_t k = 0; k < n; k++) {
        for (; i < n && a[i].recv_us < b[k].sent_us; i++) {
            if (best == NULL || a[i].key > best->key) {
                best = &a[i];
            }
        }
        if (best != NULL && best->key > b[k].key) {
            order_flag(c, event_id, best, &b[k], "");
        }
    }
}

/* Rule P: every prequeue place's pass before every waiting place's. */
static void rule_p(struct vctx *c, uint64_t event_id, const struct vplace *pre, size_t np,
                   const struct vplace *wait, size_t nw)
{
    const struct vplace *best = NULL;
    for (size_t i = 0; i < np; i++) {
        if (best == NULL || pre[i].key > best->key) {
            best = &pre[i];
        }
    }
    for (size_t k = 0; best != NULL && k < nw; k++) {
        if (wait[k].key < best->key) {
            order_flag(c, event_id, best, &wait[k],
                       "; and the first joined before the opening (prequeue), the second after");
        }
    }
}

/* Rule S: pairs (A answered before B sent) among the prequeue places, and how
 * many have A's pass first; a Fenwick tree over the keys' ranks counts them
 * in O(n log n). Ties in key (issue ms) count for neither side. */
static void rule_s(struct vctx *c, uint64_t event_id, struct vplace *a, struct vplace *b, size_t n,
                   uint64_t *pairs_all, uint64_t *agree_all)
{
    int64_t *keys = malloc((n + 1) * sizeof *keys);
    uint32_t *fen = calloc(n + 1, sizeof *fen);
    BR_ASSERT(keys != NULL && fen != NULL);
    for (size_t i = 0; i < n; i++) {
        keys[i] = a[i].key;
    }
    qsort(keys, n, sizeof *keys, by_i64);
    memcpy(b, a, n * sizeof *a);
    qsort(a, n, sizeof *a, by_recv);
    qsort(b, n, sizeof *b, by_sent);
    uint64_t pairs = 0, agree = 0;
    uint32_t added = 0;
    size_t i = 0;
    for (size_t k = 0; k < n; k++) {
        for (; i < n && a[i].recv_us < b[k].sent_us; i++, added++) {
            for (size_t r = lower_bound(keys, n, a[i].key) + 1; r <= n; r += r & (~r + 1)) {
                fen[r]++;
            }
        }
        /* Keys below b's are ranks 1..lo, keys up to and equal to b's 1..hi. */
        size_t lo = lower_bound(keys, n, b[k].key);
        size_t hi = lower_bound(keys, n, b[k].key + 1);
        uint32_t below = 0, upto = 0;
        for (size_t r = lo; r > 0; r -= r & (~r + 1)) {
            below += fen[r];
        }
        for (size_t r = hi; r > 0; r -= r & (~r + 1)) {
            upto += fen[r];
        }
        pairs += below + (added - upto);
        agree += below;
    }
    free(keys);
    free(fen);
    *pairs_all += pairs;
    *agree_all += agree;
    double share = pairs != 0 ? (double)agree / (double)pairs : 0.0;
    if (pairs >= SHUFFLE_PAIRS_MIN && share > SHUFFLE_AGREE_MAX) {
        flag(c, BR_RUSH_CHECK_SHUFFLE, event_id, 0, 0, 0,
             "event %" PRIu64 ": %" PRIu64 " of %" PRIu64 " ordered prequeue pairs (%.1f%%) got"
             " their passes in join order: the pre-queue was not shuffled at the opening",
             event_id, agree, pairs, 100.0 * share);
    }
}

static void check_order(struct vctx *c)
{
    size_t cap = (size_t)c->l->user_count * BR_RUSH_PLACES_MAX + 1;
    struct vplace *pre = malloc(cap * sizeof *pre);
    struct vplace *wait = malloc(cap * sizeof *wait);
    struct vplace *tmp = malloc(cap * sizeof *tmp);
    BR_ASSERT(pre != NULL && wait != NULL && tmp != NULL);
    uint64_t pairs = 0, agree = 0;
    for (uint32_t e = 0; e < c->l->event_count; e++) {
        uint64_t id = c->l->events[e].id;
        size_t np = places_of(c, e, BR_QS_PREQUEUE, pre);
        size_t nw = places_of(c, e, BR_QS_WAITING, wait);
        rule_p(c, id, pre, np, wait, nw);
        rule_f(c, id, wait, tmp, nw);
        uint64_t before = pairs;
        rule_s(c, id, pre, tmp, np, &pairs, &agree);
        c->out->shuffle_evaluated |= pairs - before >= SHUFFLE_PAIRS_MIN;
    }
    c->out->shuffle_agree = pairs != 0 ? (double)agree / (double)pairs : 0.0;
    free(pre);
    free(wait);
    free(tmp);
}

/* ---- the verdict ---- */

/* Passes issued after this were due when the crowd stopped listening: the
 * crowd's end less 2 s. Without it (0), the crowd's last act seen in the
 * ledger stands for the end: the last join sent or answered (on the wall
 * clock, through the snapshot's clock offset) or pass received, or the read
 * if earlier. Each comes before the end, so this only excuses more. */
static int64_t grace_from(const struct br_rush_ledger *l, const struct br_rush_snapshot *s)
{
    int64_t end = s->crowd_end_wall_ms;
    for (uint32_t u = 0; s->crowd_end_wall_ms == 0 && u < l->user_count; u++) {
        for (uint32_t p = 0; p < l->users[u].place_count && p < BR_RUSH_PLACES_MAX; p++) {
            const struct br_rush_place *pl = &l->users[u].places[p];
            int64_t t = pl->pass_recv_wall_ms;
            if (s->wall_minus_mono_ms != 0 && pl->join_recv_us != 0) {
                int64_t j = pl->join_recv_us / 1000 + s->wall_minus_mono_ms;
                t = j > t ? j : t;
            }
            end = t > end ? t : end;
        }
    }
    if (s->crowd_end_wall_ms == 0 && s->read_wall_ms != 0 && (end == 0 || s->read_wall_ms < end)) {
        end = s->read_wall_ms;
    }
    return end != 0 ? end - UNDELIVERED_GRACE_MS : INT64_MAX;
}

void br_rush_verdict_check(const struct br_rush_ledger *l, const struct br_rush_snapshot *s,
                           struct br_rush_verdict *out)
{
    BR_ASSERT(l != NULL && s != NULL && out != NULL);
    BR_ASSERT(l->event_count <= BR_RUSH_EVENTS_MAX);
    memset(out, 0, sizeof *out);
    struct vctx c = {l, s, out, INT64_MAX};
    for (uint32_t u = 0; u < l->user_count; u++) {
        for (uint32_t p = 0; p < l->users[u].place_count && p < BR_RUSH_PLACES_MAX; p++) {
            int64_t t = l->users[u].places[p].join_sent_us;
            c.t0_us = t < c.t0_us ? t : c.t0_us;
        }
    }
    c.t0_us = c.t0_us == INT64_MAX ? 0 : c.t0_us;
    struct sums sum[BR_RUSH_EVENTS_MAX];
    rows_sum(l, s, sum);
    check_oversell(&c, sum);
    check_stats(&c, sum);
    int64_t grace_from_ms = grace_from(l, s);
    for (uint32_t u = 0; u < l->user_count; u++) {
        if (l->users[u].storm || l->users[u].event_ix >= l->event_count) {
            continue;
        }
        check_user_bookings(&c, u);
        check_user_rows(&c, u);
        check_user_passes(&c, u);
        check_user_dups(&c, u);
        check_user_delivery(&c, u, grace_from_ms);
    }
    check_order(&c);
    for (uint32_t e = 0; e < l->event_count; e++) {
        uint32_t base = l->events[e].admitted_baseline;
        out->admissions += s->stats[e].admitted > base ? s->stats[e].admitted - base : 0;
    }
    uint32_t off = out->silent_admitted + out->excused_admitted;
    out->admissions_listening = out->admissions > off ? out->admissions - off : 0;
    uint32_t seen = out->passes_received + out->counts[BR_RUSH_CHECK_PASS_UNDELIVERED];
    out->unattributed = out->admissions_listening > seen ? out->admissions_listening - seen : 0;
}

/* ---- the snapshot, read over rush_net ----
 *
 * One take: stats of every event (admin pool), then every crowd user's
 * bookings and, for users whose last place has no pass, their position
 * (crowd pool), then the stats again. Requests go out in rounds of at most
 * SNAP_INFLIGHT; an answer with no status, 429 or 5xx is sent again in the
 * next round after its Retry-After (<= SNAP_TRIES sends in all); another
 * status fails the read. While the two stats differ the take is repeated,
 * at most SNAP_RETAKES times; then the snapshot is marked unstable. */

#define SNAP_INFLIGHT 512u
#define SNAP_TRIES 4u
#define SNAP_RETAKES 3u
#define SNAP_TIMEOUT_MS 10000u

enum snap_kind { SNAP_STATS = 0, SNAP_BOOKINGS, SNAP_POSITION };

struct snap;

struct snap_job {
    struct snap *sn;
    uint8_t kind, tries;
    bool done, again;
    uint32_t ix;                        /* event index (stats) or user */
    char path[64];
};

struct user_rows {
    struct br_rush_final_booking *r;
    uint32_t n;
};

struct snap {
    struct br_rush_net *net;
    const char *admin_token;
    struct br_rush_ledger *l;
    struct br_rush_snapshot *s;
    struct br_rush_stats stats[BR_RUSH_EVENTS_MAX];
    struct user_rows *rows;             /* per user, this take's */
    struct snap_job *jobs;
    uint32_t job_count, next, inflight, retry_after_s;
    bool failed;
};

static bool snap_idle(void *ctx)
{
    const struct snap *sn = ctx;
    return sn->inflight == 0 && (sn->next >= sn->job_count || sn->failed);
}

static int bookings_parse(struct snap *sn, uint32_t u, const char *body, size_t len)
{
    json_t *j = json_loadb(body, len, 0, NULL);
    const json_t *arr = json_object_get(j, "bookings");
    int rc = json_is_array(arr) ? BR_OK : BR_E_INVALID;
    size_t n = rc == BR_OK ? json_array_size(arr) : 0;
    struct br_rush_final_booking *r = calloc(n + 1, sizeof *r);
    uint32_t kept = 0;
    for (size_t i = 0; rc == BR_OK && r != NULL && i < n; i++) {
        const json_t *b = json_array_get(arr, i);
        struct br_rush_final_booking *x = &r[kept];
        uint32_t zone = 0, qty = 0;
        const char *st = json_string_value(json_object_get(b, "status"));
        if (!json_u64(b, "id", &x->id) || !json_u64(b, "event_id", &x->event_id) ||
            !json_u32(b, "zone_id", &zone) || !json_u32(b, "quantity", &qty) || st == NULL ||
            zone > UINT8_MAX || qty > UINT16_MAX) {
            rc = BR_E_INVALID;
            break;
        }
        (void)json_u64(b, "payment_id", &x->payment_id);
        x->zone_id = (uint8_t)zone;
        x->quantity = (uint16_t)qty;
        for (uint8_t k = BR_HOLD_HELD; k <= BR_HOLD_REFUNDED; k++) {
            x->status = strcmp(st, br_hold_state_name(k)) == 0 ? k : x->status;
        }
        kept += event_ix_of(sn->l, x->event_id) >= 0; /* the rush's events only */
    }
    json_decref(j);
    if (r == NULL || rc != BR_OK) {
        free(r);
        return r == NULL ? BR_E_UNAVAILABLE : rc;
    }
    free(sn->rows[u].r);
    sn->rows[u] = (struct user_rows){r, kept};
    return BR_OK;
}

static int position_parse(struct snap *sn, uint32_t u, int status, const char *body, size_t len)
{
    struct br_rush_user *usr = &sn->l->users[u];
    sn->s->final_pass_issued_ms[u] = 0;
    if (status == 404) {                /* NOT_IN_QUEUE */
        usr->final_queue_status = BR_QS_NONE;
        return BR_OK;
    }
    json_t *j = json_loadb(body, len, 0, NULL);
    const char *st = json_string_value(json_object_get(j, "status"));
    const char *exp = json_string_value(json_object_get(json_object_get(j, "pass"), "expires_at"));
    int rc = st != NULL ? BR_OK : BR_E_INVALID;
    usr->final_queue_status = 0xff;
    for (uint8_t k = 0; st != NULL && k < BR_QUEUE_STATUS_COUNT; k++) {
        usr->final_queue_status = strcmp(st, br_queue_status_name(k)) == 0 ? k
                                                                          : usr->final_queue_status;
    }
    int64_t at = 0;
    if (exp != NULL && br_rush_time_parse(exp, &at) == BR_OK) {
        sn->s->final_pass_issued_ms[u] = at - sn->l->events[usr->event_ix].pass_ttl_ms;
    }
    json_decref(j);
    return rc;
}

static void snap_send(struct snap *sn);

static void snap_answer(void *ctx, const struct br_rush_resp *r)
{
    struct snap_job *jb = ctx;
    struct snap *sn = jb->sn;
    sn->inflight--;
    if (r->status == 0 || r->status == 429 || r->status >= 500) {
        jb->again = jb->tries < SNAP_TRIES;
        sn->failed |= !jb->again;
        sn->retry_after_s = r->retry_after_s > sn->retry_after_s ? r->retry_after_s
                                                                  : sn->retry_after_s;
    } else if (jb->kind == SNAP_POSITION && (r->status == 200 || r->status == 404)) {
        jb->done = position_parse(sn, jb->ix, r->status, r->body, r->body_len) == BR_OK;
    } else if (r->status != 200) {
        jb->done = false;
    } else if (jb->kind == SNAP_STATS) {
        jb->done = br_rush_stats_parse(r->body, r->body_len, &sn->stats[jb->ix]) == BR_OK;
    } else {
        jb->done = bookings_parse(sn, jb->ix, r->body, r->body_len) == BR_OK;
    }
    if (!jb->done && !jb->again) {
        sn->failed = true;
    }
    snap_send(sn);
}

/* Sends queued jobs while fewer than SNAP_INFLIGHT are out. */
static void snap_send(struct snap *sn)
{
    while (!sn->failed && sn->inflight < SNAP_INFLIGHT && sn->next < sn->job_count) {
        struct snap_job *jb = &sn->jobs[sn->next++];
        if (jb->done) {
            continue;
        }
        const struct br_rush_user *usr = jb->kind == SNAP_STATS ? NULL : &sn->l->users[jb->ix];
        struct br_rush_req q = {
            .route = jb->kind == SNAP_STATS      ? BR_RR_STATS
                     : jb->kind == SNAP_BOOKINGS ? BR_RR_BOOKINGS
                                                 : BR_RR_POSITION,
            .pool = jb->kind == SNAP_STATS ? BR_RUSH_POOL_ADMIN : BR_RUSH_POOL_CROWD,
            .target = UINT32_MAX,
            .method = "GET",
            .path = jb->path,
            .token = usr == NULL ? sn->admin_token : usr->token,
            .timeout_ms = SNAP_TIMEOUT_MS,
        };
        jb->tries++;
        jb->again = false;
        if (br_rush_net_send(sn->net, &q, snap_answer, jb) != BR_OK) {
            sn->failed = true;
            return;
        }
        sn->inflight++;
    }
}

static bool never(void *ctx)
{
    (void)ctx;
    return false;
}

/* Runs jobs[0..n) to the end: rounds until each is done. BR_OK or BR_E_UNAVAILABLE. */
static int snap_run(struct snap *sn, int64_t deadline_us)
{
    for (unsigned round = 0; round < SNAP_TRIES; round++) {
        sn->next = 0;
        sn->retry_after_s = 0;
        snap_send(sn);
        if (br_rush_net_run(sn->net, deadline_us, snap_idle, sn) != BR_OK || !snap_idle(sn) ||
            sn->failed) {
            return BR_E_UNAVAILABLE;
        }
        bool again = false;
        for (uint32_t i = 0; i < sn->job_count; i++) {
            again |= !sn->jobs[i].done;
        }
        if (!again) {
            return BR_OK;
        }
        uint32_t wait_s = sn->retry_after_s == 0 ? 1 : sn->retry_after_s;
        int64_t until = br_rush_now_us() + (int64_t)(wait_s > 5 ? 5 : wait_s) * 1000000;
        if (until >= deadline_us) {
            return BR_E_UNAVAILABLE;
        }
        (void)br_rush_net_run(sn->net, until, never, NULL);
    }
    return BR_E_UNAVAILABLE;
}

static void job_add(struct snap *sn, uint8_t kind, uint32_t ix)
{
    struct snap_job *jb = &sn->jobs[sn->job_count++];
    *jb = (struct snap_job){.sn = sn, .kind = kind, .ix = ix};
    if (kind == SNAP_STATS) {
        snprintf(jb->path, sizeof jb->path, "/api/v1/admin/events/%" PRIu64 "/stats",
                 sn->l->events[ix].id);
    } else if (kind == SNAP_BOOKINGS) {
        snprintf(jb->path, sizeof jb->path, "/api/v1/bookings");
    } else {
        snprintf(jb->path, sizeof jb->path, "/api/v1/queue/position/%" PRIu64,
                 sn->l->events[sn->l->users[ix].event_ix].id);
    }
}

static int snap_stats(struct snap *sn, int64_t deadline_us)
{
    sn->job_count = 0;
    for (uint32_t e = 0; e < sn->l->event_count; e++) {
        job_add(sn, SNAP_STATS, e);
    }
    return snap_run(sn, deadline_us);
}

/* Adds the jobs of one take: every user's bookings when `bookings`, the
 * position of each user whose last place shows no pass when `positions`. */
static int snap_users(struct snap *sn, bool bookings, bool positions, int64_t deadline_us)
{
    sn->job_count = 0;
    for (uint32_t u = 0; u < sn->l->user_count; u++) {
        struct br_rush_user *usr = &sn->l->users[u];
        if (positions) {
            usr->final_queue_status = 0xff;
            sn->s->final_pass_issued_ms[u] = 0;
        }
        if (usr->storm || usr->token[0] == '\0' || usr->event_ix >= sn->l->event_count) {
            continue;
        }
        if (bookings) {
            job_add(sn, SNAP_BOOKINGS, u);
        }
        uint32_t np = usr->place_count < BR_RUSH_PLACES_MAX ? usr->place_count : BR_RUSH_PLACES_MAX;
        if (positions && np != 0 && !place_has_pass(&usr->places[np - 1])) {
            job_add(sn, SNAP_POSITION, u);
        }
    }
    return snap_run(sn, deadline_us);
}

/* Moves this take's rows into s->rows / s->row_start, grouped by user. */
static int snap_rows(struct snap *sn)
{
    uint32_t users = sn->l->user_count;
    uint32_t total = 0;
    for (uint32_t u = 0; u < users; u++) {
        total += sn->rows[u].n;
    }
    struct br_rush_snapshot *s = sn->s;
    free(s->rows);
    free(s->row_start);
    s->rows = calloc(total + 1u, sizeof *s->rows);
    s->row_start = calloc(users + 1u, sizeof *s->row_start);
    if (s->rows == NULL || s->row_start == NULL) {
        return BR_E_UNAVAILABLE;
    }
    uint32_t at = 0;
    for (uint32_t u = 0; u < users; u++) {
        s->row_start[u] = at;
        if (sn->rows[u].n != 0) {
            memcpy(&s->rows[at], sn->rows[u].r, sn->rows[u].n * sizeof *s->rows);
        }
        at += sn->rows[u].n;
    }
    s->row_start[users] = at;
    return BR_OK;
}

static bool stats_same(const struct br_rush_stats *a, const struct br_rush_stats *b, uint32_t n)
{
    for (uint32_t e = 0; e < n; e++) {
        const struct br_rush_stats *x = &a[e], *y = &b[e];
        if (x->event_id != y->event_id || x->queue_length != y->queue_length ||
            x->admitted != y->admitted || x->active_passes != y->active_passes ||
            x->zone_count != y->zone_count || memcmp(x->held, y->held, sizeof x->held) != 0 ||
            memcmp(x->sold, y->sold, sizeof x->sold) != 0 ||
            memcmp(x->capacity, y->capacity, sizeof x->capacity) != 0 ||
            memcmp(x->bookings, y->bookings, sizeof x->bookings) != 0) {
            return false;
        }
    }
    return true;
}

static bool passes_from_token(const struct br_rush_ledger *l)
{
    for (uint32_t u = 0; u < l->user_count; u++) {
        for (uint32_t p = 0; p < l->users[u].place_count && p < BR_RUSH_PLACES_MAX; p++) {
            const struct br_rush_place *pl = &l->users[u].places[p];
            if (place_has_pass(pl) && (pl->pass_id == 0 || pl->pass_id == UINT64_MAX)) {
                return false;
            }
        }
    }
    return true;
}

int br_rush_snapshot_read(struct br_rush_net *net, const char *admin_token, struct br_rush_ledger *l,
                          struct br_rush_snapshot *s, int64_t deadline_us)
{
    BR_ASSERT(net != NULL && l != NULL && s != NULL && l->event_count <= BR_RUSH_EVENTS_MAX);
    struct snap sn = {.net = net, .admin_token = admin_token, .l = l, .s = s};
    size_t jobs = (size_t)l->user_count * 2 + BR_RUSH_EVENTS_MAX;
    sn.jobs = calloc(jobs, sizeof *sn.jobs);
    sn.rows = calloc(l->user_count + 1u, sizeof *sn.rows);
    if (s->final_pass_issued_ms == NULL) {
        s->final_pass_issued_ms = calloc(l->user_count + 1u, sizeof *s->final_pass_issued_ms);
    }
    int rc = sn.jobs != NULL && sn.rows != NULL && s->final_pass_issued_ms != NULL
                 ? BR_OK : BR_E_UNAVAILABLE;
    bool stable = false;
    for (unsigned take = 0; rc == BR_OK && take <= SNAP_RETAKES && !stable; take++) {
        s->read_wall_ms = br_rush_wall_ms();
        s->wall_minus_mono_ms = s->read_wall_ms - br_rush_now_us() / 1000;
        rc = snap_stats(&sn, deadline_us);
        struct br_rush_stats first[BR_RUSH_EVENTS_MAX];
        memcpy(first, sn.stats, sizeof first);
        rc = rc == BR_OK ? snap_users(&sn, true, true, deadline_us) : rc;
        rc = rc == BR_OK ? snap_stats(&sn, deadline_us) : rc;
        stable = rc == BR_OK && stats_same(first, sn.stats, l->event_count);
    }
    if (rc == BR_OK) {
        memcpy(s->stats, sn.stats, sizeof s->stats);
        s->unstable = !stable;
        s->pass_seq_from_token = passes_from_token(l);
        rc = snap_rows(&sn);
    }
    for (uint32_t u = 0; sn.rows != NULL && u < l->user_count; u++) {
        free(sn.rows[u].r);
    }
    free(sn.rows);
    free(sn.jobs);
    return rc;
}

int br_rush_positions_read(struct br_rush_net *net, struct br_rush_ledger *l,
                           struct br_rush_snapshot *s, int64_t deadline_us)
{
    BR_ASSERT(net != NULL && l != NULL && s != NULL);
    struct snap sn = {.net = net, .l = l, .s = s};
    sn.jobs = calloc((size_t)l->user_count + 1u, sizeof *sn.jobs);
    if (s->final_pass_issued_ms == NULL) {
        s->final_pass_issued_ms = calloc(l->user_count + 1u, sizeof *s->final_pass_issued_ms);
    }
    int rc = sn.jobs != NULL && s->final_pass_issued_ms != NULL ? BR_OK : BR_E_UNAVAILABLE;
    free(s->end_status);
    free(s->end_pass_issued_ms);
    s->end_status = calloc(l->user_count + 1u, sizeof *s->end_status);
    s->end_pass_issued_ms = calloc(l->user_count + 1u, sizeof *s->end_pass_issued_ms);
    rc = rc == BR_OK && s->end_status != NULL && s->end_pass_issued_ms != NULL ? BR_OK
                                                                                 : BR_E_UNAVAILABLE;
    int64_t at = br_rush_wall_ms();
    rc = rc == BR_OK ? snap_users(&sn, false, true, deadline_us) : rc;
    for (uint32_t u = 0; rc == BR_OK && u < l->user_count; u++) {
        s->end_status[u] = l->users[u].final_queue_status;
        s->end_pass_issued_ms[u] = s->final_pass_issued_ms[u];
    }
    s->positions_wall_ms = rc == BR_OK ? at : 0;
    free(sn.jobs);
    return rc;
}

void br_rush_snapshot_free(struct br_rush_snapshot *s)
{
    if (s == NULL) {
        return;
    }
    free(s->rows);
    free(s->row_start);
    free(s->final_pass_issued_ms);
    free(s->end_status);
    free(s->end_pass_issued_ms);
    s->rows = NULL;
    s->row_start = NULL;
    s->final_pass_issued_ms = NULL;
    s->end_status = NULL;
    s->end_pass_issued_ms = NULL;
}
