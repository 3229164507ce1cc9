/* render.c -- the API's JSON objects and RFC 3339 times (see render.h). */
#define _POSIX_C_SOURCE 200809L

#include "server/render.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cmd.h"
#include "core/engine.h"
#include "core/queue.h"
#include "core/str.h"

#define TIME_MS_END 253402300800000LL /* 10000-01-01T00:00:00Z */

/* Days since 1970-01-01 of a civil date (proleptic Gregorian), after Howard
 * Hinnant's days_from_civil: exact for every date, no libc time zone state. */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int64_t *m, int64_t *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp + (mp < 10 ? 3 : -9);
    *y = yoe + era * 400 + (*m <= 2);
}

void br_time_format(int64_t ms, char out[BR_TIME_TEXT_MAX])
{
    int64_t days = ms >= 0 ? ms / 86400000 : -((-ms + 86399999) / 86400000);
    int64_t rem = ms - days * 86400000;
    int64_t y;
    int64_t mo;
    int64_t d;
    civil_from_days(days, &y, &mo, &d);
    /* Written digit by digit: this runs twice per booking answered. */
    int64_t fields[7] = {y, mo, d, rem / 3600000, rem / 60000 % 60, rem / 1000 % 60, rem % 1000};
    static const int widths[7] = {4, 2, 2, 2, 2, 2, 3};
    static const char seps[7] = {'-', '-', 'T', ':', ':', '.', 'Z'};
    char *o = out;
    for (int f = 0; f < 7; f++) {
        int64_t v = fields[f];
        if (v < 0 || (f == 0 && v > 9999)) {
            v = 0; /* outside what we format: years 0..9999 */
        }
        for (int k = widths[f] - 1; k >= 0; k--) {
            o[k] = (char)('0' + v % 10);
            v /= 10;
        }
        o += widths[f];
        *o++ = seps[f];
    }
    *o = '\0';
}

/* n decimal digits at s; -1 if any is not a digit. */
static int64_t digits(const char *s, int n)
{
    int64_t v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

int br_time_parse(const char *s, int64_t *ms)
{
    if (s == NULL || br_strnlen(s, 40) < 20 || br_strnlen(s, 40) >= 40) {
        return -1;
    }
    int64_t y = digits(s, 4);
    int64_t mo = digits(s + 5, 2);
    int64_t d = digits(s + 8, 2);
    int64_t h = digits(s + 11, 2);
    int64_t mi = digits(s + 14, 2);
    int64_t se = digits(s + 17, 2);
    if (s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
        s[13] != ':' || s[16] != ':' || y < 1970 || mo < 1 || mo > 12 || d < 1 || h < 0 ||
        h > 23 || mi < 0 || mi > 59 || se < 0 || se > 60) {
        return -1;
    }
    static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (d > mdays[mo - 1] || (mo == 2 && d == 29 && !leap)) {
        return -1;
    }
    const char *p = s + 19;
    int64_t frac_ms = 0;
    if (*p == '.') {
        p++;
        int n = 0;
        for (; n < 9 && *p >= '0' && *p <= '9'; n++, p++) {
            if (n < 3) {
                frac_ms = frac_ms * 10 + (*p - '0');
            }
        }
        if (n == 0) {
            return -1;
        }
        for (int k = n; k < 3; k++) {
            frac_ms *= 10;
        }
    }
    int64_t offset_min = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        /* Left to right, each read only after the one before it found a
         * character: the string may end anywhere. */
        int64_t oh = digits(p + 1, 2);
        int64_t om = oh >= 0 && p[3] == ':' ? digits(p + 4, 2) : -1;
        if (oh < 0 || oh > 23 || om < 0 || om > 59) {
            return -1;
        }
        offset_min = (oh * 60 + om) * (*p == '-' ? -1 : 1);
        p += 6;
    } else {
        return -1;
    }
    if (*p != '\0') {
        return -1;
    }
    int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + (se > 59 ? 59 : se);
    int64_t t = (secs - offset_min * 60) * 1000 + frac_ms;
    /* The offset may carry a 1970 date before the epoch or a 9999 one past
     * the last year we format: refuse what br_time_format cannot write back. */
    if (t < 0 || t >= TIME_MS_END) {
        return -1;
    }
    *ms = t;
    return 0;
}

static const char *const ROLE_TEXT[BR_ROLE_COUNT] = {"customer", "organizer", "admin"};

const char *br_role_text(uint8_t role)
{
    return role < BR_ROLE_COUNT ? ROLE_TEXT[role] : "unknown";
}

int br_role_parse(const char *s, uint8_t *role)
{
    for (uint8_t i = 0; s != NULL && i < BR_ROLE_COUNT; i++) {
        if (strcmp(s, ROLE_TEXT[i]) == 0) {
            *role = i;
            return 0;
        }
    }
    return -1;
}

static json_t *time_json(int64_t ms)
{
    char t[BR_TIME_TEXT_MAX];
    br_time_format(ms, t);
    return json_string(t);
}

static json_t *seconds_json(int64_t ms)
{
    return ms % 1000 == 0 ? json_integer(ms / 1000) : json_real((double)ms / 1000.0);
}

json_t *br_render_user(const struct br_api_user *u)
{
    return json_pack("{s:I, s:s, s:s, s:s}", "user_id", (json_int_t)u->id, "email", u->email,
                     "name", u->name, "role", br_role_text(u->role));
}

json_t *br_render_event(const struct br_api_event *e)
{
    const struct br_event_spec *s = &e->spec;
    json_t *zones = json_array();
    for (uint32_t z = 0; z < s->zone_count && z < BR_EVENT_ZONES_MAX; z++) {
        const struct br_zone_spec *zs = &s->zones[z];
        uint32_t used = e->held[z] + e->sold[z];
        uint32_t avail = used < zs->capacity ? zs->capacity - used : 0;
        json_array_append_new(
            zones, json_pack("{s:i, s:s, s:I, s:I, s:I, s:s}", "id", (int)(z + 1), "name",
                             zs->name, "capacity", (json_int_t)zs->capacity, "available",
                             (json_int_t)avail, "price_minor", (json_int_t)zs->price_minor,
                             "currency", zs->currency));
    }
    json_t *j = json_pack("{s:I, s:I, s:s, s:s, s:o, s:o, s:I, s:b, s:{s:I, s:I, s:o}, s:o, s:I, s:o}",
                     "id", (json_int_t)e->id, "owner_id", (json_int_t)e->owner_id, "name", s->name,
                     "venue", s->venue, "starts_at",
                     time_json(s->starts_at_ms), "sale_opens_at", time_json(s->sale_opens_at_ms),
                     "per_user_limit", (json_int_t)s->per_user_limit, "requires_pass",
                     s->requires_pass, "queue", "max_active", (json_int_t)s->max_active,
                     "admit_per_tick", (json_int_t)s->admit_per_tick, "pass_ttl_s",
                     seconds_json(s->pass_ttl_ms), "hold_ttl_s", seconds_json(s->hold_ttl_ms),
                     "queue_capacity", (json_int_t)s->queue_capacity, "zones", zones);
    /* Issue 13: the waiting room's settings as created (the live mode and
     * controls are GET /api/v1/events/{id}/queue's). */
    json_t *queue = json_object_get(j, "queue");
    if (queue != NULL) {
        json_object_set_new(queue, "admit_per_min", json_integer((json_int_t)s->admit_per_min));
        json_object_set_new(queue, "presence_ttl_s", json_integer((json_int_t)s->presence_ttl_s));
        json_object_set_new(queue, "pow_bits", json_integer((json_int_t)s->pow_bits));
        json_object_set_new(queue, "inventory_aware",
                            json_boolean((s->queue_flags & BR_QF_INVENTORY_AWARE) != 0));
        json_object_set_new(queue, "mode", json_string(br_queue_mode_name(s->mode)));
    }
    return j;
}

json_t *br_render_pass(uint64_t event_id, const char *token, int64_t expires_at_ms)
{
    return json_pack("{s:I, s:s, s:o}", "event_id", (json_int_t)event_id, "token", token,
                     "expires_at", time_json(expires_at_ms));
}

const char *br_estimate_basis_text(uint8_t basis)
{
    switch (basis) {
    case BR_EST_NONE:
        return "none";
    case BR_EST_MEASURED:
        return "measured";
    case BR_EST_CONFIGURED:
        return "configured";
    default:
        return "unknown";
    }
}

/* An estimated wait: null when no wait will end in a pass (UINT32_MAX). */
static json_t *wait_json(uint32_t wait_s)
{
    return wait_s == UINT32_MAX ? json_null() : json_integer((json_int_t)wait_s);
}

json_t *br_render_queue(const struct br_api_queue *q, const char *pass_token)
{
    json_t *j = json_pack("{s:I, s:s, s:I, s:I, s:o, s:s, s:s, s:I}", "event_id",
                          (json_int_t)q->event_id, "status", br_queue_status_name(q->status),
                          "position", (json_int_t)q->position, "queue_length",
                          (json_int_t)q->queue_length, "estimated_wait_s",
                          wait_json(q->estimated_wait_s), "gate", br_queue_gate_name(q->gate),
                          "estimate_basis", br_estimate_basis_text(q->estimate_basis),
                          "admitted_per_min", (json_int_t)q->admitted_per_min);
    if (j != NULL && pass_token != NULL && q->status == BR_QS_ADMITTED) {
        json_object_set_new(j, "pass",
                            json_pack("{s:s, s:o}", "token", pass_token, "expires_at",
                                      time_json(q->pass_expires_at_ms)));
    }
    return j;
}

json_t *br_render_queue_status(const struct br_api_queue_status *st)
{
    char asof[BR_TIME_TEXT_MAX];
    br_time_format(st->as_of_ms, asof);
    return json_pack("{s:I, s:s, s:s, s:b, s:I, s:I, s:o, s:s, s:I, s:I, s:i, s:s}", "event_id",
                     (json_int_t)st->event_id, "mode", br_queue_mode_name(st->mode), "gate",
                     br_queue_gate_name(st->gate), "sold_out", st->sold_out, "queue_length",
                     (json_int_t)st->queue_length, "admitted_per_min",
                     (json_int_t)st->admitted_per_min, "estimated_wait_s",
                     wait_json(st->estimated_wait_s), "estimate_basis",
                     br_estimate_basis_text(st->estimate_basis), "max_active",
                     (json_int_t)st->max_active, "admit_per_min", (json_int_t)st->admit_per_min,
                     "pow_bits", (int)st->pow_bits, "as_of", asof);
}

static size_t text_len(int n, size_t cap)
{
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

size_t br_render_queue_text(const struct br_api_queue *q, char *out, size_t cap)
{
    /* The member order and the signed integers are jansson's (json_int_t). */
    char wait[16] = "null";
    if (q->estimated_wait_s != UINT32_MAX) {
        snprintf(wait, sizeof wait, "%lld", (long long)q->estimated_wait_s);
    }
    int n = snprintf(out, cap,
                     "{\"event_id\":%lld,\"status\":\"%s\",\"position\":%lld,"
                     "\"queue_length\":%lld,\"estimated_wait_s\":%s,\"gate\":\"%s\","
                     "\"estimate_basis\":\"%s\",\"admitted_per_min\":%lld}",
                     (long long)q->event_id, br_queue_status_name(q->status),
                     (long long)q->position, (long long)q->queue_length, wait,
                     br_queue_gate_name(q->gate), br_estimate_basis_text(q->estimate_basis),
                     (long long)q->admitted_per_min);
    return text_len(n, cap);
}

size_t br_render_pass_text(uint64_t event_id, const char *token, int64_t expires_at_ms, char *out,
                           size_t cap)
{
    char expires[BR_TIME_TEXT_MAX];
    br_time_format(expires_at_ms, expires);
    int n = snprintf(out, cap, "{\"event_id\":%lld,\"token\":\"%s\",\"expires_at\":\"%s\"}",
                     (long long)event_id, token, expires);
    return text_len(n, cap);
}

json_t *br_render_booking(const struct br_api_booking *b)
{
    json_t *j = json_pack("{s:I, s:I, s:i, s:i, s:s, s:I, s:s, s:o, s:o}", "id", (json_int_t)b->id,
                          "event_id", (json_int_t)b->event_id, "zone_id", (int)b->zone_id,
                          "quantity", (int)b->quantity, "status",
                          br_hold_state_name(b->state), "total_minor",
                          (json_int_t)b->total_minor, "currency", b->currency, "created_at",
                          time_json(b->created_at_ms), "expires_at", time_json(b->expires_at_ms));
    if (j != NULL && b->payment_id != 0) {
        json_object_set_new(j, "payment_id", json_integer((json_int_t)b->payment_id));
    }
    return j;
}

char *br_render_booking_text(const struct br_api_booking *b, size_t *len)
{
    char created[BR_TIME_TEXT_MAX];
    char expires[BR_TIME_TEXT_MAX];
    char payment[40] = "";
    br_time_format(b->created_at_ms, created);
    br_time_format(b->expires_at_ms, expires);
    if (b->payment_id != 0) {
        snprintf(payment, sizeof payment, ",\"payment_id\":%llu", (unsigned long long)b->payment_id);
    }
    /* Every string here is ours (a status name, an ISO currency code, times). */
    char currency[BR_CURRENCY_MAX];
    size_t cn = br_strnlen(b->currency, BR_CURRENCY_MAX - 1);
    memcpy(currency, b->currency, cn);
    currency[cn] = '\0';
    char *out = malloc(384);
    if (out == NULL) {
        return NULL;
    }
    int n = snprintf(out, 384,
                     "{\"id\":%llu,\"event_id\":%llu,\"zone_id\":%u,\"quantity\":%u,"
                     "\"status\":\"%s\",\"total_minor\":%lld,\"currency\":\"%s\","
                     "\"created_at\":\"%s\",\"expires_at\":\"%s\"%s}",
                     (unsigned long long)b->id, (unsigned long long)b->event_id, b->zone_id,
                     b->quantity, br_hold_state_name(b->state), (long long)b->total_minor,
                     currency, created, expires, payment);
    if (n < 0 || n >= 384) {
        free(out);
        return NULL;
    }
    *len = (size_t)n;
    return out;
}

json_t *br_render_payment(const struct br_api_payment *p)
{
    return json_pack("{s:I, s:s, s:I, s:I, s:s, s:s, s:s}", "payment_id", (json_int_t)p->id,
                     "provider_payment_id", p->provider_payment_id, "booking_id",
                     (json_int_t)p->booking_id, "amount_minor", (json_int_t)p->amount_minor,
                     "currency", p->currency, "status", br_payment_state_name(p->state),
                     "client_secret", p->client_secret);
}

json_t *br_render_stats(const struct br_api_stats *s)
{
#ifdef BR_PLANT_STATS_OVERSELL
    /* Planted (caught by 79-rush-plant.sh, OVERSELL and STATS_MISMATCH): zone 1's sold
     * is reported one over what its holds leave. */
    struct br_api_stats planted = *s;
    planted.sold[0] = planted.capacity[0] - planted.held[0] + 1;
    s = &planted;
#endif
    json_t *zones = json_array();
    for (uint32_t z = 0; z < s->zone_count && z < BR_EVENT_ZONES_MAX; z++) {
        uint32_t used = s->held[z] + s->sold[z];
        json_array_append_new(
            zones, json_pack("{s:i, s:I, s:I, s:I, s:I}", "id", (int)(z + 1), "capacity",
                             (json_int_t)s->capacity[z], "available",
                             (json_int_t)(used < s->capacity[z] ? s->capacity[z] - used : 0),
                             "held", (json_int_t)s->held[z], "sold", (json_int_t)s->sold[z]));
    }
    return json_pack("{s:I, s:I, s:I, s:I, s:o, s:{s:I, s:I, s:I, s:I, s:I}}", "event_id",
                     (json_int_t)s->event_id, "queue_length", (json_int_t)s->queue_length,
                     "admitted", (json_int_t)s->admitted, "active_passes",
                     (json_int_t)s->active_passes, "zones", zones, "bookings", "held",
                     (json_int_t)s->bookings[BR_HOLD_HELD], "confirmed",
                     (json_int_t)s->bookings[BR_HOLD_CONFIRMED], "expired",
                     (json_int_t)s->bookings[BR_HOLD_EXPIRED], "cancelled",
                     (json_int_t)s->bookings[BR_HOLD_CANCELLED], "refunded",
                     (json_int_t)s->bookings[BR_HOLD_REFUNDED]);
}

char *br_render_dump(json_t *j, size_t *len)
{
    if (j == NULL) {
        return NULL;
    }
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (s != NULL) {
        *len = strlen(s);
    }
    return s;
}

char *br_render_error(const char *code, const char *message, size_t *len)
{
    return br_render_dump(
        json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", message), len);
}
