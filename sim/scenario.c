/*
 * scenario.c -- scenario defaults, the JSON parser (jansson), swarm draws and
 * engine sizing.
 *
 * The parser is table-driven: each JSON object maps to a table of fields
 * (key, kind, offset, bounds). Walking the object's keys and looking each up
 * in its table rejects unknown keys, so "decline_rat" is an error, never a
 * silent default. Every value is range-checked before it is stored.
 */
#include "sim/scenario.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "core/catalog.h"
#include "core/err.h"
#include "core/hash.h"
#include "core/limits.h"
#include "core/queue.h"
#include "core/rng.h"
#include "core/sizing.h"

/* ---- defaults ---- */

static void zone_default(struct br_zone_spec *z, const char *name, uint32_t capacity,
                         int64_t price_minor)
{
    memset(z, 0, sizeof *z);
    snprintf(z->name, sizeof z->name, "%s", name);
    z->capacity = capacity;
    z->price_minor = price_minor;
    memcpy(z->currency, "EUR", 4);
}

static void event_default(struct br_scn_event *ev)
{
    memset(ev, 0, sizeof *ev);
    struct br_event_spec *s = &ev->spec;
    /* The core's defaults (the API's too), opening a minute into the run,
     * but with every waiting-room switch off (issue 13): old scenarios keep
     * their behaviour and digests; a scenario turns a switch on by its key. */
    br_event_spec_default(s, 60000);
    s->admit_per_min = 0;
    s->presence_ttl_s = 0;
    s->pow_bits = 0;
    s->queue_flags = 0;
    s->mode = BR_QM_OPEN;
    snprintf(s->name, sizeof s->name, "Simulated show");
    snprintf(s->venue, sizeof s->venue, "Simulated arena");
    s->zone_count = 1;
    zone_default(&s->zones[0], "General", 400, 5000);
    ev->weight = 1.0;
}

void br_scenario_defaults(struct br_scenario *s)
{
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "unnamed");
    s->seed = 1;
    s->start_epoch_ms = 1767225600000LL; /* 2026-01-01T00:00:00Z */
    s->event_count = 1;
    event_default(&s->events[0]);

    struct br_scn_crowd *c = &s->crowd;
    c->users = 1000;
    c->early_fraction = 0.2;
    c->early_window_ms = 60000;
    c->spike_fraction = 0.7;
    c->spike_decay_ms = 20000;
    c->tail_window_ms = 600000;
    c->patience_fraction = 0.1;
    c->patience_mean_ms = 300000;
    c->silent_leave_fraction = 0.5;
    c->admitted_abandon_fraction = 0.03;
    c->abandon_hold_fraction = 0.05;
    c->cancel_fraction = 0.02;
    c->double_click_fraction = 0.05;
    c->tabs_fraction = 0.05;
    c->tabs_max = 3;
    c->greedy_fraction = 0.03;
    c->rejoin_fraction = 0.3;
    c->rejoins_max = 1;
    c->reserve_attempts_max = 8;
    c->payment_creates_max = 4;
    const double qty[BR_SCN_QTY_MAX] = {0.35, 0.35, 0.15, 0.15, 0, 0, 0, 0};
    memcpy(c->quantity_weights, qty, sizeof qty);
    c->think_ms = (struct br_scn_range){1000, 20000};
    c->notify_ms = (struct br_scn_range){50, 1500};
    c->poll_ms = 10000;
    c->soldout_leave_fraction = 0.7;
    c->bots = 2;
    c->bot_requests = 100;
    c->bot_interval_ms = 200;

    struct br_scn_payments *p = &s->payments;
    p->decline_rate = 0.08;
    p->timeout_rate = 0.02;
    p->duplicate_rate = 0.05;
    p->reorder_rate = 0.02;
    p->late_rate = 0.01;
    p->late_max_ms = 3LL * 24 * 3600 * 1000;
    p->latency_ms = (struct br_scn_range){300, 5000};
    p->retry_after_decline = 0.6;
    p->refund_failure_rate = 0.1;

    s->workers[BR_WORKER_ADMITTER] = (struct br_scn_worker){250, 0, 0.0, {2000, 30000}};
    s->workers[BR_WORKER_SWEEPER] = (struct br_scn_worker){1000, 512, 0.0, {2000, 60000}};
    s->workers[BR_WORKER_SAGA] = (struct br_scn_worker){1000, 256, 0.0, {2000, 60000}};
    s->faults_until_ms = 1800000;
    s->clock_skew_ms = 0;
    s->drain_max_ms = 7LL * 24 * 3600 * 1000;
}

/* ---- the table-driven parser ---- */

enum fkind { F_U32, F_I64, F_FRAC, F_DOUBLE, F_BOOL, F_STR, F_RANGE, F_DARRAY, F_U64, F_U8 };

struct field {
    const char *key;
    enum fkind kind;
    size_t offset;
    double lo; /* bounds (inclusive) for numbers; for F_STR the buffer size; F_DARRAY count */
    double hi;
};

#define FLD(type, member, kind, lo, hi)                                                            \
    {                                                                                              \
#member, kind, offsetof(type, member), lo, hi                                              \
    }

static const struct field crowd_fields[] = {
    FLD(struct br_scn_crowd, users, F_U32, 1, BR_SCN_USERS_MAX),
    FLD(struct br_scn_crowd, early_fraction, F_FRAC, 0, 1),
    FLD(struct br_scn_crowd, early_window_ms, F_I64, 0, 30.0 * 86400000),
    FLD(struct br_scn_crowd, spike_fraction, F_FRAC, 0, 1),
    FLD(struct br_scn_crowd, spike_decay_ms, F_I64, 1, 86400000),
    FLD(struct br_scn_crowd, tail_window_ms, F_I64, 0, 30.0 * 86400000),
    FLD(struct br_scn_crowd, patience_fraction, F_FRAC, 0, 1),
    FLD(struct br_scn_crowd, patience_mean_ms, F_I64, 1, 30.0 * 86400000),
    FLD(struct br_scn_crowd, silent_leave_fraction, F_FRAC, 0, 1),
    FLD(struct br_scn_crowd, admitted_abandon_fraction, F_FRAC, 0, 1),
    FLD(struct br_scn_crowd, abandon_hold_fraction, F_FRAC, 0, 1),
    FLD(struct br_scn_crowd, cancel_fraction, F_FRAC, 0, 1),
    FLD(struct br_scn_crowd, double_click_fraction, F_FRAC, 0, 1),
    FLD(struct br_scn_crowd, tabs_fraction, F_FRAC, 0, 1),
    FLD(struct br_scn_crowd, tabs_max, F_U32, 2, 8),
    FLD(struct br_scn_crowd, greedy_fraction, F_FRAC, 0, 1),
    FLD(struct br_scn_crowd, rejoin_fraction, F_FRAC, 0, 1),
    FLD(struct br_scn_crowd, rejoins_max, F_U32, 0, 8),
    FLD(struct br_scn_crowd, reserve_attempts_max, F_U32, 1, 64),
    FLD(struct br_scn_crowd, payment_creates_max, F_U32, 1, 16),
    FLD(struct br_scn_crowd, quantity_weights, F_DARRAY, 1, BR_SCN_QTY_MAX),
    FLD(struct br_scn_crowd, zone_weights, F_DARRAY, 0, BR_EVENT_ZONES_MAX),
    FLD(struct br_scn_crowd, think_ms, F_RANGE, 0, 86400000),
    FLD(struct br_scn_crowd, notify_ms, F_RANGE, 0, 3600000),
    FLD(struct br_scn_crowd, poll_ms, F_I64, 1, 3600000),
    FLD(struct br_scn_crowd, soldout_leave_fraction, F_FRAC, 0, 1),
    FLD(struct br_scn_crowd, bots, F_U32, 0, 10000),
    FLD(struct br_scn_crowd, bot_requests, F_U32, 0, 100000),
    FLD(struct br_scn_crowd, bot_interval_ms, F_I64, 1, 3600000),
    FLD(struct br_scn_crowd, abandon_share, F_FRAC, 0, 1),
};

static const struct field payment_fields[] = {
    FLD(struct br_scn_payments, decline_rate, F_FRAC, 0, 1),
    FLD(struct br_scn_payments, timeout_rate, F_FRAC, 0, 1),
    FLD(struct br_scn_payments, duplicate_rate, F_FRAC, 0, 1),
    FLD(struct br_scn_payments, reorder_rate, F_FRAC, 0, 1),
    FLD(struct br_scn_payments, late_rate, F_FRAC, 0, 1),
    FLD(struct br_scn_payments, late_max_ms, F_I64, 1, 30.0 * 86400000),
    FLD(struct br_scn_payments, latency_ms, F_RANGE, 0, 86400000),
    FLD(struct br_scn_payments, retry_after_decline, F_FRAC, 0, 1),
    FLD(struct br_scn_payments, refund_failure_rate, F_FRAC, 0, 0.95),
    FLD(struct br_scn_payments, lost_rate, F_FRAC, 0, 1),
    FLD(struct br_scn_payments, check_ms, F_U32, 0, BR_PAYMENT_CHECK_MS_MAX),
};

static const struct field worker_fields[] = {
    FLD(struct br_scn_worker, tick_ms, F_I64, 1, 3600000),
    FLD(struct br_scn_worker, batch, F_U32, 1, BR_SWEEP_MAX),
    FLD(struct br_scn_worker, crashes_per_hour, F_DOUBLE, 0, 3600),
    FLD(struct br_scn_worker, down_ms, F_RANGE, 0, 86400000),
};

static const struct field capacity_fields[] = {
    FLD(struct br_scn_capacity, holds, F_U32, 0, 1 << 30),
    FLD(struct br_scn_capacity, payments, F_U32, 0, 1 << 30),
    FLD(struct br_scn_capacity, idem_keys, F_U32, 0, 1 << 30),
};

static const struct field event_fields[] = {
    FLD(struct br_event_spec, name, F_STR, BR_NAME_MAX, 0),
    FLD(struct br_event_spec, venue, F_STR, BR_NAME_MAX, 0),
    FLD(struct br_event_spec, starts_at_ms, F_I64, 0, 365.0 * 86400000),
    FLD(struct br_event_spec, sale_opens_at_ms, F_I64, 0, 365.0 * 86400000),
    FLD(struct br_event_spec, per_user_limit, F_U32, 1, BR_PER_USER_LIMIT_MAX),
    FLD(struct br_event_spec, requires_pass, F_BOOL, 0, 1),
    FLD(struct br_event_spec, max_active, F_U32, 1, BR_MAX_ACTIVE_MAX),
    FLD(struct br_event_spec, admit_per_tick, F_U32, 1, BR_ADMIT_PER_TICK_MAX),
    FLD(struct br_event_spec, pass_ttl_ms, F_I64, 1, (double)BR_TTL_MS_MAX),
    FLD(struct br_event_spec, hold_ttl_ms, F_I64, 1, (double)BR_TTL_MS_MAX),
    FLD(struct br_event_spec, admit_per_min, F_U32, 0, BR_ADMIT_PER_MIN_MAX),
    FLD(struct br_event_spec, presence_ttl_s, F_U32, 0, BR_PRESENCE_TTL_S_MAX),
    FLD(struct br_event_spec, pow_bits, F_U8, 0, BR_POW_BITS_MAX),
};

static const struct field zone_fields[] = {
    FLD(struct br_zone_spec, name, F_STR, BR_ZONE_NAME_MAX, 0),
    FLD(struct br_zone_spec, capacity, F_U32, 1, BR_ZONE_CAPACITY_MAX),
    FLD(struct br_zone_spec, price_minor, F_I64, 0, BR_PRICE_MINOR_MAX),
    FLD(struct br_zone_spec, currency, F_STR, BR_CURRENCY_MAX, 0),
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

struct perr {
    char *buf;
    size_t cap;
};

static int fail(struct perr *pe, const char *path, const char *key, const char *why)
{
    if (pe->cap > 0) {
        snprintf(pe->buf, pe->cap, "%s%s%s: %s", path, *path ? "." : "", key, why);
    }
    return BR_E_INVALID;
}

static int get_number(const json_t *v, double *out)
{
    if (json_is_integer(v)) {
        *out = (double)json_integer_value(v);
        return BR_OK;
    }
    if (json_is_real(v)) {
        *out = json_real_value(v);
        return BR_OK;
    }
    return BR_E_INVALID;
}

static int parse_range(const json_t *v, struct br_scn_range *r, const struct field *f,
                       const char *path, struct perr *pe)
{
    if (!json_is_object(v)) {
        return fail(pe, path, f->key, "expected {\"min_ms\": .., \"max_ms\": ..}");
    }
    const char *k;
    json_t *x;
    json_object_foreach((json_t *)v, k, x)
    {
        double d;
        if (!json_is_integer(x) || get_number(x, &d) != BR_OK || d < f->lo || d > f->hi) {
            return fail(pe, path, f->key, "min_ms/max_ms must be integers in range");
        }
        if (strcmp(k, "min_ms") == 0) {
            r->min_ms = (int64_t)d;
        } else if (strcmp(k, "max_ms") == 0) {
            r->max_ms = (int64_t)d;
        } else {
            return fail(pe, path, f->key, "unknown key in a range (min_ms, max_ms)");
        }
    }
    if (r->min_ms > r->max_ms) {
        return fail(pe, path, f->key, "min_ms > max_ms");
    }
    return BR_OK;
}

/* An integer field (F_U8, F_U32, F_I64, F_U64) within [lo, hi], stored at `at`. */
static int parse_integer(const json_t *v, char *at, const struct field *f, const char *path,
                         struct perr *pe)
{
    double d = 0;
    if (!json_is_integer(v) || get_number(v, &d) != BR_OK) {
        return fail(pe, path, f->key, "expected an integer");
    }
    if (d < f->lo || d > f->hi) {
        char why[96];
        snprintf(why, sizeof why, "out of range [%.0f, %.0f]", f->lo, f->hi);
        return fail(pe, path, f->key, why);
    }
    if (f->kind == F_U8) {
        *(uint8_t *)(void *)at = (uint8_t)json_integer_value(v);
    } else if (f->kind == F_U32) {
        *(uint32_t *)(void *)at = (uint32_t)json_integer_value(v);
    } else if (f->kind == F_I64) {
        *(int64_t *)(void *)at = (int64_t)json_integer_value(v);
    } else {
        *(uint64_t *)(void *)at = (uint64_t)json_integer_value(v);
    }
    return BR_OK;
}

/* An F_STR field: a string without NULs, shorter than lo bytes, stored
 * NUL-padded at `at`. */
static int parse_string(const json_t *v, char *at, const struct field *f, const char *path,
                        struct perr *pe)
{
    size_t cap = (size_t)f->lo;
    if (!json_is_string(v) || json_string_length(v) >= cap ||
        strlen(json_string_value(v)) != json_string_length(v)) {
        char why[96];
        snprintf(why, sizeof why, "expected a string shorter than %zu bytes", cap);
        return fail(pe, path, f->key, why);
    }
    memset(at, 0, cap);
    memcpy(at, json_string_value(v), json_string_length(v));
    return BR_OK;
}

/* An F_DARRAY field: lo..hi weights >= 0, stored at `at` (hi doubles, the
 * ones not given 0). */
static int parse_weights(const json_t *v, char *at, const struct field *f, const char *path,
                         struct perr *pe)
{
    double d = 0;
    size_t n = json_array_size(v);
    if (!json_is_array(v) || n > (size_t)f->hi || n < (size_t)f->lo) {
        char why[96];
        snprintf(why, sizeof why, "expected an array of %.0f..%.0f numbers", f->lo, f->hi);
        return fail(pe, path, f->key, why);
    }
    double *arr = (double *)(void *)at;
    for (size_t i = 0; i < (size_t)f->hi; i++) {
        arr[i] = 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (get_number(json_array_get(v, i), &d) != BR_OK || !isfinite(d) || d < 0) {
            return fail(pe, path, f->key, "weights must be numbers >= 0");
        }
        arr[i] = d;
    }
    return BR_OK;
}

static int parse_field(const json_t *v, void *base, const struct field *f, const char *path,
                       struct perr *pe)
{
    char *at = (char *)base + f->offset;
    double d = 0;
    switch (f->kind) {
    case F_U8:
    case F_U32:
    case F_I64:
    case F_U64:
        return parse_integer(v, at, f, path, pe);
    case F_FRAC:
    case F_DOUBLE:
        if (get_number(v, &d) != BR_OK || !isfinite(d) || d < f->lo || d > f->hi) {
            char why[96];
            snprintf(why, sizeof why, "expected a number in [%g, %g]", f->lo, f->hi);
            return fail(pe, path, f->key, why);
        }
        *(double *)(void *)at = d;
        return BR_OK;
    case F_BOOL:
        if (!json_is_boolean(v)) {
            return fail(pe, path, f->key, "expected true or false");
        }
        *(bool *)(void *)at = json_is_true(v);
        return BR_OK;
    case F_STR:
        return parse_string(v, at, f, path, pe);
    case F_RANGE:
        return parse_range(v, (struct br_scn_range *)(void *)at, f, path, pe);
    case F_DARRAY:
        return parse_weights(v, at, f, path, pe);
    }
    return fail(pe, path, f->key, "internal: unknown field kind");
}

/* Parses every key of obj against table; keys in `skip` are left to the caller. */
static int parse_object(const json_t *obj, void *base, const struct field *table, size_t n,
                        const char *path, const char *const *skip, struct perr *pe)
{
    if (!json_is_object(obj)) {
        return fail(pe, path, "", "expected an object");
    }
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v)
    {
        bool skipped = false;
        for (size_t i = 0; skip != NULL && skip[i] != NULL; i++) {
            skipped = skipped || strcmp(skip[i], k) == 0;
        }
        if (skipped) {
            continue;
        }
        size_t i = 0;
        while (i < n && strcmp(table[i].key, k) != 0) {
            i++;
        }
        if (i == n) {
            return fail(pe, path, k, "unknown key");
        }
        int rc = parse_field(v, base, &table[i], path, pe);
        if (rc != BR_OK) {
            return rc;
        }
    }
    return BR_OK;
}

/* A mode name ("open", "paused", "closed", "passthrough") -> enum br_queue_mode. */
static int parse_mode(const json_t *v, uint8_t *mode, const char *path, struct perr *pe)
{
    uint8_t m = json_is_string(v) ? br_queue_mode_parse(json_string_value(v)) : BR_QUEUE_MODE_COUNT;
    if (m >= BR_QUEUE_MODE_COUNT) {
        return fail(pe, path, "mode", "expected \"open\", \"paused\", \"closed\" or \"passthrough\"");
    }
    *mode = m;
    return BR_OK;
}

static int parse_event(const json_t *obj, struct br_scn_event *ev, const char *path,
                       struct perr *pe)
{
    static const char *const skip[] = {"zones", "weight", "inventory_aware", "mode", NULL};
    int rc = parse_object(obj, &ev->spec, event_fields, COUNT(event_fields), path, skip, pe);
    if (rc != BR_OK) {
        return rc;
    }
    json_t *ia = json_object_get(obj, "inventory_aware");
    if (ia != NULL) {
        if (!json_is_boolean(ia)) {
            return fail(pe, path, "inventory_aware", "expected true or false");
        }
        ev->spec.queue_flags = json_is_true(ia) ? BR_QF_INVENTORY_AWARE : 0;
    }
    json_t *mode = json_object_get(obj, "mode");
    if (mode != NULL) {
        rc = parse_mode(mode, &ev->spec.mode, path, pe);
        if (rc != BR_OK) {
            return rc;
        }
    }
    json_t *w = json_object_get(obj, "weight");
    if (w != NULL) {
        double d;
        if (get_number(w, &d) != BR_OK || !isfinite(d) || d < 0) {
            return fail(pe, path, "weight", "expected a number >= 0");
        }
        ev->weight = d;
    }
    json_t *zones = json_object_get(obj, "zones");
    if (zones != NULL) {
        size_t n = json_array_size(zones);
        if (!json_is_array(zones) || n < 1 || n > BR_EVENT_ZONES_MAX) {
            return fail(pe, path, "zones", "expected an array of 1..8 zones");
        }
        ev->spec.zone_count = (uint32_t)n;
        for (size_t i = 0; i < n; i++) {
            char zpath[128];
            snprintf(zpath, sizeof zpath, "%s.zones[%zu]", path, i);
            char zname[BR_ZONE_NAME_MAX];
            snprintf(zname, sizeof zname, "Zone %zu", i + 1);
            zone_default(&ev->spec.zones[i], zname, 100, 5000);
            rc = parse_object(json_array_get(zones, i), &ev->spec.zones[i], zone_fields,
                              COUNT(zone_fields), zpath, NULL, pe);
            if (rc != BR_OK) {
                return rc;
            }
            if (ev->spec.zones[i].name[0] == '\0') {
                return fail(pe, zpath, "name", "must not be empty");
            }
            const char *cur = ev->spec.zones[i].currency;
            if (strlen(cur) != 3 || cur[0] < 'A' || cur[0] > 'Z' || cur[1] < 'A' || cur[1] > 'Z' ||
                cur[2] < 'A' || cur[2] > 'Z') {
                return fail(pe, zpath, "currency", "expected three upper-case letters");
            }
        }
    }
    if (ev->spec.name[0] == '\0') {
        return fail(pe, path, "name", "must not be empty");
    }
    return BR_OK;
}

/* "workers": {admitter|sweeper|saga: {...}}. */
static int parse_workers(json_t *v, struct br_scenario *s, struct perr *pe)
{
    static const char *const names[BR_WORKER_COUNT] = {"admitter", "sweeper", "saga"};
    if (!json_is_object(v)) {
        return fail(pe, "", "workers", "expected an object");
    }
    const char *wk;
    json_t *wv;
    json_object_foreach(v, wk, wv)
    {
        int w = 0;
        while (w < BR_WORKER_COUNT && strcmp(names[w], wk) != 0) {
            w++;
        }
        if (w == BR_WORKER_COUNT) {
            return fail(pe, "workers", wk, "unknown worker (admitter, sweeper, saga)");
        }
        char path[32];
        snprintf(path, sizeof path, "workers.%s", wk);
        int rc = parse_object(wv, &s->workers[w], worker_fields, COUNT(worker_fields), path, NULL,
                              pe);
        if (rc != BR_OK) {
            return rc;
        }
    }
    return BR_OK;
}

/* "faults": {until_ms, clock_skew_ms}. */
static int parse_faults(json_t *v, struct br_scenario *s, struct perr *pe)
{
    if (!json_is_object(v)) {
        return fail(pe, "", "faults", "expected an object");
    }
    const char *fk;
    json_t *fv;
    json_object_foreach(v, fk, fv)
    {
        int64_t *dst = strcmp(fk, "until_ms") == 0        ? &s->faults_until_ms
                       : strcmp(fk, "clock_skew_ms") == 0 ? &s->clock_skew_ms
                                                          : NULL;
        if (dst == NULL) {
            return fail(pe, "faults", fk, "unknown key (until_ms, clock_skew_ms)");
        }
        if (!json_is_integer(fv) || json_integer_value(fv) < 0 ||
            json_integer_value(fv) > 30LL * 86400000) {
            return fail(pe, "faults", fk, "expected an integer in [0, 30 days in ms]");
        }
        *dst = (int64_t)json_integer_value(fv);
    }
    return BR_OK;
}

/* "events": [event, ...], each starting from the defaults. */
static int parse_events(json_t *v, struct br_scenario *s, struct perr *pe)
{
    size_t n = json_array_size(v);
    if (!json_is_array(v) || n < 1 || n > BR_SCN_EVENTS_MAX) {
        return fail(pe, "", "events", "expected an array of 1..8 events");
    }
    s->event_count = (uint32_t)n;
    int rc = BR_OK;
    for (size_t i = 0; i < n && rc == BR_OK; i++) {
        char path[32];
        snprintf(path, sizeof path, "events[%zu]", i);
        event_default(&s->events[i]);
        rc = parse_event(json_array_get(v, i), &s->events[i], path, pe);
    }
    return rc;
}

static int parse_top_int(json_t *v, const char *k, long long lo, long long hi, const char *want,
                         long long *out, struct perr *pe);

/* One operator step {at_ms, event, mode?, max_active?, admit_per_min?}. */
static int parse_operator_step(json_t *o, struct br_scn_operator *op, const char *path,
                               struct perr *pe)
{
    if (!json_is_object(o)) {
        return fail(pe, path, "", "expected an object {at_ms, event, mode?, max_active?, "
                                  "admit_per_min?}");
    }
    bool has_at = false, has_event = false;
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    {
        long long x = 0;
        int rc = BR_OK;
        if (strcmp(k, "at_ms") == 0) {
            rc = parse_top_int(v, path, 0, 365LL * 86400000, "at_ms: expected an integer in [0, "
                               "365 days in ms]", &x, pe);
            op->at_ms = x;
            has_at = true;
        } else if (strcmp(k, "event") == 0) {
            rc = parse_top_int(v, path, 0, BR_SCN_EVENTS_MAX - 1,
                               "event: expected an event index in [0, 7]", &x, pe);
            op->event = (uint32_t)x;
            has_event = true;
        } else if (strcmp(k, "mode") == 0) {
            rc = parse_mode(v, &op->mode, path, pe);
            op->set |= BR_QSET_MODE;
        } else if (strcmp(k, "max_active") == 0) {
            rc = parse_top_int(v, path, 1, BR_MAX_ACTIVE_MAX,
                               "max_active: expected an integer in [1, BR_MAX_ACTIVE_MAX]", &x, pe);
            op->max_active = (uint32_t)x;
            op->set |= BR_QSET_MAX_ACTIVE;
        } else if (strcmp(k, "admit_per_min") == 0) {
            rc = parse_top_int(v, path, 0, BR_ADMIT_PER_MIN_MAX,
                               "admit_per_min: expected an integer in [0, 600000]", &x, pe);
            op->admit_per_min = (uint32_t)x;
            op->set |= BR_QSET_ADMIT_PER_MIN;
        } else {
            rc = fail(pe, path, k, "unknown key (at_ms, event, mode, max_active, admit_per_min)");
        }
        if (rc != BR_OK) {
            return rc;
        }
    }
    if (!has_at || !has_event) {
        return fail(pe, path, has_at ? "event" : "at_ms", "missing");
    }
    if (op->set == 0) {
        return fail(pe, path, "mode", "a step changes at least one of mode, max_active, "
                                      "admit_per_min");
    }
    return BR_OK;
}

/* "operator": [step, ...] in at_ms order. */
static int parse_operator(json_t *v, struct br_scenario *s, struct perr *pe)
{
    size_t n = json_array_size(v);
    if (!json_is_array(v) || n > BR_SCN_OPERATOR_MAX) {
        return fail(pe, "", "operator", "expected an array of at most 16 steps");
    }
    s->operator_count = (uint32_t)n;
    for (size_t i = 0; i < n; i++) {
        char path[32];
        snprintf(path, sizeof path, "operator[%zu]", i);
        memset(&s->operators[i], 0, sizeof s->operators[i]);
        int rc = parse_operator_step(json_array_get(v, i), &s->operators[i], path, pe);
        if (rc != BR_OK) {
            return rc;
        }
        if (i > 0 && s->operators[i].at_ms < s->operators[i - 1].at_ms) {
            return fail(pe, path, "at_ms", "steps must be in at_ms order");
        }
    }
    return BR_OK;
}

/* "presence": {"report_ms"}; "door": {"bot_pow_bits", "join_limit"}. */
static int parse_small_object(json_t *v, const char *name, struct br_scenario *s,
                              struct perr *pe)
{
    if (!json_is_object(v)) {
        return fail(pe, "", name, "expected an object");
    }
    bool presence = strcmp(name, "presence") == 0;
    const char *k;
    json_t *x;
    json_object_foreach(v, k, x)
    {
        long long n = 0;
        int rc;
        if (presence && strcmp(k, "report_ms") == 0) {
            rc = parse_top_int(x, name, 0, 3600000, "report_ms: expected an integer in [0, "
                                                    "3600000] (0 = no presence reports)", &n, pe);
            s->presence_report_ms = n;
        } else if (!presence && strcmp(k, "bot_pow_bits") == 0) {
            rc = parse_top_int(x, name, 0, BR_POW_BITS_MAX,
                               "bot_pow_bits: expected an integer in [0, 28]", &n, pe);
            s->door.bot_pow_bits = (uint8_t)n;
        } else if (!presence && strcmp(k, "join_limit") == 0) {
            rc = parse_top_int(x, name, 0, 1000000000,
                               "join_limit: expected an integer in [0, 10^9] (0 = none)", &n, pe);
            s->door.join_limit = (uint32_t)n;
        } else {
            rc = fail(pe, name, k, presence ? "unknown key (report_ms)"
                                            : "unknown key (bot_pow_bits, join_limit)");
        }
        if (rc != BR_OK) {
            return rc;
        }
    }
    return BR_OK;
}

/* An integer top-level key in [lo, hi]. */
static int parse_top_int(json_t *v, const char *k, long long lo, long long hi, const char *want,
                         long long *out, struct perr *pe)
{
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        return fail(pe, "", k, want);
    }
    *out = json_integer_value(v);
    return BR_OK;
}

/* One top-level key. */
static int parse_top(const char *k, json_t *v, struct br_scenario *s, struct perr *pe)
{
    long long x = 0;
    int rc = BR_OK;
    if (strcmp(k, "name") == 0) {
        if (!json_is_string(v) || json_string_length(v) == 0 ||
            json_string_length(v) >= sizeof s->name) {
            return fail(pe, "", k, "expected a non-empty string under 64 bytes");
        }
        snprintf(s->name, sizeof s->name, "%s", json_string_value(v));
    } else if (strcmp(k, "description") == 0) {
        rc = json_is_string(v) ? BR_OK : fail(pe, "", k, "expected a string");
    } else if (strcmp(k, "seed") == 0) {
        rc = parse_top_int(v, k, 0, LLONG_MAX, "expected an integer >= 0", &x, pe);
        s->seed = rc == BR_OK ? (uint64_t)x : s->seed;
    } else if (strcmp(k, "start_epoch_ms") == 0) {
        rc = parse_top_int(v, k, 0, 4102444800000LL, "expected an integer in [0, 4102444800000]",
                           &x, pe);
        s->start_epoch_ms = rc == BR_OK ? (int64_t)x : s->start_epoch_ms;
    } else if (strcmp(k, "drain_max_ms") == 0) {
        rc = parse_top_int(v, k, 1000, 60LL * 86400000,
                           "expected an integer in [1000, 60 days in ms]", &x, pe);
        s->drain_max_ms = rc == BR_OK ? (int64_t)x : s->drain_max_ms;
    } else if (strcmp(k, "events") == 0) {
        rc = parse_events(v, s, pe);
    } else if (strcmp(k, "crowd") == 0) {
        rc = parse_object(v, &s->crowd, crowd_fields, COUNT(crowd_fields), "crowd", NULL, pe);
    } else if (strcmp(k, "capacity") == 0) {
        rc = parse_object(v, &s->capacity, capacity_fields, COUNT(capacity_fields), "capacity",
                          NULL, pe);
    } else if (strcmp(k, "payments") == 0) {
        rc = parse_object(v, &s->payments, payment_fields, COUNT(payment_fields), "payments", NULL,
                          pe);
    } else if (strcmp(k, "workers") == 0) {
        rc = parse_workers(v, s, pe);
    } else if (strcmp(k, "faults") == 0) {
        rc = parse_faults(v, s, pe);
    } else if (strcmp(k, "operator") == 0) {
        rc = parse_operator(v, s, pe);
    } else if (strcmp(k, "presence") == 0 || strcmp(k, "door") == 0) {
        rc = parse_small_object(v, k, s, pe);
    } else if (strcmp(k, "compare") == 0) {
        rc = json_is_boolean(v) ? BR_OK : fail(pe, "", k, "expected true or false");
        s->compare = json_is_true(v);
    } else {
        rc = fail(pe, "", k, "unknown key");
    }
    return rc;
}

/* Relations between fields, once every key is read. */
static int check_relations(const struct br_scenario *s, struct perr *pe)
{
    double qsum = 0;
    for (int i = 0; i < BR_SCN_QTY_MAX; i++) {
        qsum += s->crowd.quantity_weights[i];
    }
    if (qsum <= 0) {
        return fail(pe, "crowd", "quantity_weights", "at least one weight must be > 0");
    }
    if (s->crowd.early_fraction > 0 && s->crowd.early_window_ms == 0) {
        return fail(pe, "crowd", "early_window_ms", "must be > 0 when early_fraction > 0");
    }
    double wsum = 0;
    for (uint32_t i = 0; i < s->event_count; i++) {
        char path[32];
        snprintf(path, sizeof path, "events[%u]", i);
        wsum += s->events[i].weight;
        if (s->events[i].spec.sale_opens_at_ms < s->crowd.early_window_ms) {
            return fail(pe, path, "sale_opens_at_ms",
                        "must be >= crowd.early_window_ms (early arrivals start at t >= 0)");
        }
        /* The last word is the core's: an event it would refuse is a bad file. */
        if (br_catalog_spec_validate(&s->events[i].spec) != BR_OK) {
            return fail(pe, path, "", "the core refuses this event spec");
        }
    }
    if (wsum <= 0) {
        return fail(pe, "events", "weight", "at least one event weight must be > 0");
    }
    for (uint32_t i = 0; i < s->operator_count; i++) {
        const struct br_scn_operator *op = &s->operators[i];
        char path[32];
        snprintf(path, sizeof path, "operator[%u]", i);
        if (op->event >= s->event_count) {
            return fail(pe, path, "event", "no such event (an index into events)");
        }
        if ((op->set & BR_QSET_MAX_ACTIVE) &&
            op->max_active > s->events[op->event].spec.max_active) {
            return fail(pe, path, "max_active", "must be <= the event's max_active");
        }
    }
    if (s->payments.check_ms != 0 && s->payments.check_ms < BR_PAYMENT_CHECK_MS_MIN) {
        return fail(pe, "payments", "check_ms", "must be 0 (no checks) or >= 1000");
    }
    return BR_OK;
}

int br_scenario_parse(struct br_scenario *s, const char *text, char *err, size_t err_cap)
{
    struct perr pe = {err, err_cap};
    if (err_cap > 0) {
        err[0] = '\0';
    }
    br_scenario_defaults(s);
    json_error_t je;
    json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL) {
        if (err_cap > 0) {
            snprintf(err, err_cap, "JSON error at line %d column %d: %s", je.line, je.column,
                     je.text);
        }
        return BR_E_INVALID;
    }
    int rc = BR_OK;
    if (!json_is_object(root)) {
        rc = fail(&pe, "", "(top level)", "expected an object");
    }
    const char *k;
    json_t *v;
    json_object_foreach(root, k, v)
    {
        if (rc != BR_OK) {
            break;
        }
        rc = parse_top(k, v, s, &pe);
    }
    if (rc == BR_OK) {
        rc = check_relations(s, &pe);
    }
    json_decref(root);
    return rc;
}

int br_scenario_load(struct br_scenario *s, const char *path, char *err, size_t err_cap)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, err_cap, "cannot open %s: %s", path, strerror(errno));
        return BR_E_IO;
    }
    char *text = NULL;
    size_t len = 0, cap = 0;
    /* Bounded by the file: scenario files are small; 16 MiB is refused. */
    for (;;) {
        if (cap - len < 4096) {
            cap = cap ? cap * 2 : 65536;
            if (cap > 16u << 20) {
                free(text);
                fclose(f);
                snprintf(err, err_cap, "%s: larger than 16 MiB", path);
                return BR_E_INVALID;
            }
            char *t = realloc(text, cap);
            if (t == NULL) {
                free(text);
                fclose(f);
                snprintf(err, err_cap, "out of memory reading %s", path);
                return BR_E_IO;
            }
            text = t;
        }
        size_t n = fread(text + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0) {
            break;
        }
    }
    bool bad = ferror(f) != 0;
    int read_errno = errno;
    fclose(f);
    if (bad) {
        free(text);
        snprintf(err, err_cap, "error reading %s: %s", path, strerror(read_errno));
        return BR_E_IO;
    }
    text[len] = '\0';
    char msg[256];
    int rc = br_scenario_parse(s, text, msg, sizeof msg);
    free(text);
    if (rc != BR_OK) {
        snprintf(err, err_cap, "%s: %s", path, msg);
        return rc;
    }
    snprintf(s->path, sizeof s->path, "%s", path);
    return BR_OK;
}

/* ---- swarm ---- */

#define SWARM_STREAM 0x5357524dULL /* "SWRM" */

/* Off with probability 1/2, else scaled by a factor in [0.25, 2]. */
void br_scenario_switches_off(struct br_scenario *s)
{
    for (uint32_t i = 0; i < s->event_count; i++) {
        struct br_event_spec *e = &s->events[i].spec;
        e->admit_per_min = 0;
        e->presence_ttl_s = 0;
        e->pow_bits = 0;
        e->queue_flags = 0;
        e->mode = BR_QM_OPEN;
    }
    s->operator_count = 0;
    s->presence_report_ms = 0;
}

static double swarm_rate(struct br_rng *r, double base, double cap)
{
    if (br_rng_chance(r, 0.5)) {
        return 0.0;
    }
    /* A fault that the file switched off may still be drawn in, at a
     * small base, so a sweep explores mixes the file did not name. */
    double b = base > 0 ? base : 0.02;
    double v = b * (0.25 + 1.75 * br_rng_unit(r));
    return v > cap ? cap : v;
}

void br_scenario_swarm(struct br_scenario *s, uint64_t seed)
{
    struct br_rng r;
    br_rng_seed(&r, seed, SWARM_STREAM);
    struct br_scn_payments *p = &s->payments;
    p->decline_rate = swarm_rate(&r, p->decline_rate, 0.9);
    p->timeout_rate = swarm_rate(&r, p->timeout_rate, 0.5);
    p->duplicate_rate = swarm_rate(&r, p->duplicate_rate, 0.9);
    p->reorder_rate = swarm_rate(&r, p->reorder_rate, 0.5);
    p->late_rate = swarm_rate(&r, p->late_rate, 0.5);
    p->refund_failure_rate = swarm_rate(&r, p->refund_failure_rate, 0.8);
    struct br_scn_crowd *c = &s->crowd;
    c->double_click_fraction = swarm_rate(&r, c->double_click_fraction, 0.5);
    c->tabs_fraction = swarm_rate(&r, c->tabs_fraction, 0.5);
    c->greedy_fraction = swarm_rate(&r, c->greedy_fraction, 0.5);
    c->abandon_hold_fraction = swarm_rate(&r, c->abandon_hold_fraction, 0.8);
    c->cancel_fraction = swarm_rate(&r, c->cancel_fraction, 0.5);
    c->patience_fraction = swarm_rate(&r, c->patience_fraction, 0.8);
    for (int w = 0; w < BR_WORKER_COUNT; w++) {
        double base = s->workers[w].crashes_per_hour > 0 ? s->workers[w].crashes_per_hour : 4.0;
        s->workers[w].crashes_per_hour =
            br_rng_chance(&r, 0.5) ? 0.0 : base * (0.25 + 1.75 * br_rng_unit(&r));
    }
    s->clock_skew_ms = br_rng_chance(&r, 0.5) ? 0 : (int64_t)br_rng_below(&r, 5001);
    if (p->check_ms > 0) {
        /* Lost webhooks only where point 8's checks can recover them (drawn
         * last, so files without checks keep the mixes they had). */
        p->lost_rate = swarm_rate(&r, p->lost_rate, 0.5);
    }
    s->swarm = true;
}

/* ---- sizing ---- */

uint32_t br_scenario_event_of_user(const struct br_scenario *s, uint32_t user)
{
    /* Users are split by cumulative weight over their index: exact counts
     * that do not depend on the seed, so the engine can be sized exactly.
     * Arrival times are drawn per user, so the index order means nothing. */
    double wsum = 0;
    for (uint32_t i = 0; i < s->event_count; i++) {
        wsum += s->events[i].weight;
    }
    double at = ((double)user + 0.5) / (double)s->crowd.users * wsum;
    double cum = 0;
    for (uint32_t i = 0; i < s->event_count; i++) {
        cum += s->events[i].weight;
        if (at < cum) {
            return i;
        }
    }
    return s->event_count - 1;
}

uint32_t br_scenario_event_users(const struct br_scenario *s, uint32_t event)
{
    /* O(users); called once per event at setup. */
    uint32_t n = 0;
    for (uint32_t u = 0; u < s->crowd.users; u++) {
        n += br_scenario_event_of_user(s, u) == event;
    }
    return n;
}

static uint32_t clamp_u32(uint64_t v)
{
    return v > (1u << 30) ? (1u << 30) : (uint32_t)(v < 1 ? 1 : v);
}

void br_scenario_config(struct br_scenario *s, uint64_t seed, struct br_config *cfg)
{
    const struct br_scn_crowd *c = &s->crowd;
    uint64_t slots = 0, active = 0, seats = 0, holds = 0, payments = 0, idem = 0;
    uint64_t bot_req = (uint64_t)c->bots * c->bot_requests;
    for (uint32_t i = 0; i < s->event_count; i++) {
        struct br_event_spec *sp = &s->events[i].spec;
        uint64_t users = br_scenario_event_users(s, i);
        /* Tabs and double clicks re-join with the same member, so only
         * rejoins after a used/lapsed pass take new places. */
        uint64_t places = users * (1u + c->rejoins_max) + bot_req + 16u;
        sp->queue_capacity = clamp_u32(places);
        slots += sp->queue_capacity;
        active += sp->max_active;
        for (uint32_t z = 0; z < sp->zone_count; z++) {
            seats += sp->zones[z].capacity;
        }
        uint64_t reserves = users * c->reserve_attempts_max + bot_req;
        /* With a pass every hold consumes one, and passes <= places. */
        uint64_t h = sp->requires_pass && places < reserves ? places : reserves;
        holds += h;
        /* A hold has one payment (a decline reopens it), so this bound is
         * loose; only a hold's owner can open one. */
        uint64_t creates = users * c->payment_creates_max;
        uint64_t per_hold = h * c->payment_creates_max;
        payments += creates < per_hold ? creates : per_hold;
        idem += reserves;
    }
    /* Caps the scenario sets (the driver keeps within them) replace the
     * worst case when smaller. */
    if (s->capacity.holds != 0 && s->capacity.holds < holds) {
        holds = s->capacity.holds;
    }
    if (s->capacity.payments != 0 && s->capacity.payments < payments) {
        payments = s->capacity.payments;
    }
    if (s->capacity.idem_keys != 0 && s->capacity.idem_keys < idem) {
        idem = s->capacity.idem_keys;
    }
    /* Every count is given (>= 1), so the core's sizing rule derives only
     * what follows from them (provider events: two per payment). */
    uint64_t people = (uint64_t)c->users + c->bots;
    struct br_sizing z = {
        .people = clamp_u32(people + 1),
        .events = s->event_count,
        .members = clamp_u32(c->users + (uint64_t)c->bots * s->event_count + 16u),
        .queue_places = clamp_u32(slots),
        .queue_default = 1,
        .passes = clamp_u32(slots),
        .active = clamp_u32(active),
        .holds = clamp_u32(holds),
        .seats = clamp_u32(seats),
        .payments = clamp_u32(payments),
        .idem_keys = clamp_u32(idem),
    };
    br_config_size(&z, seed, cfg);
}
