/*
 * reconciler.c -- the reconciler role (reconciler.h: drift, the epoch,
 * the rebuild and what it cannot bring back).
 *
 * The rebuild reads the record one event at a time into growable arrays
 * (bookings, payments, provider event ids: freed after each event), so
 * its memory is one event's record, not the sale's.
 */
#define _POSIX_C_SOURCE 200809L
#include "server/reconciler.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "adapters/clock.h"
#include "adapters/pg.h"
#include "core/err.h"
#include "core/panic.h"
#include "server/textbuf.h"

#define EPOCH_KEY "br:{cat}:epoch"
#define LEASE_KEY "br:{cat}:lease:reconcile"
#define REBUILDING_KEY "br:{cat}:rebuilding"
#define REBUILDING_TTL_MS 120000 /* renewed per event; outlives a reconciler that died */
#define PAGE 1024u               /* rows per read of the record */

struct br_reconciler {
    struct br_redis redis; /* scripts, and plain commands routed as the adapter routes */
    struct br_redis_options ropt;
    struct br_config cfg;
    struct br_pg *pg;
    const struct br_log *log;
    struct br_reconciler_options opt;
    pthread_mutex_t mu; /* guards what the metrics read */
    int32_t *drift;     /* [events_max][BR_EVENT_ZONES_MAX], -1 = not compared */
    uint8_t *compared;  /* [events_max] */
    uint32_t events_seen;
    bool leader;
    bool refused;
    uint64_t rebuilds, rebuild_failures;
    pthread_t thread;
    bool running;
    atomic_int stop;
};

/* ---- plain commands (through the adapter: on a cluster, at the key's node) ---- */

/* Frees a reply; says whether the command got a reply that is no error. */
static bool reply_ok(int rc, redisReply *rep)
{
    bool ok = rc == BR_OK && rep != NULL && rep->type != REDIS_REPLY_ERROR;
    if (rep != NULL) {
        freeReplyObject(rep);
    }
    return ok;
}

/* 1 present, 0 missing, BR_E_UNAVAILABLE. */
static int epoch_present(struct br_reconciler *rc)
{
    redisReply *rep = NULL;
    int err = br_redis_commandf(&rc->redis, &rep, "EXISTS " EPOCH_KEY);
    int present = err == BR_OK && rep != NULL && rep->type == REDIS_REPLY_INTEGER
                      ? rep->integer == 1
                      : BR_E_UNAVAILABLE;
    if (rep != NULL) {
        freeReplyObject(rep);
    }
    return present;
}

static int epoch_write(struct br_reconciler *rc)
{
    char value[32 + BR_LEASE_OWNER_MAX];
    snprintf(value, sizeof value, "%lld:%s", (long long)br_clock_wall_ms(), rc->opt.owner);
    redisReply *rep = NULL;
    int err = br_redis_commandf(&rc->redis, &rep, "SET " EPOCH_KEY " %s NX", value);
    return reply_ok(err, rep) ? BR_OK : BR_E_UNAVAILABLE;
}

/* The catalog's user and event counters in Redis (0 when it has none). */
static int redis_counts(struct br_reconciler *rc, uint64_t *users, uint64_t *events)
{
    redisReply *rep = NULL;
    int err = br_redis_commandf(&rc->redis, &rep, "HMGET br:{cat}:cat users events");
    uint64_t v[2] = {0, 0};
    bool ok = err == BR_OK && rep != NULL && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2;
    for (size_t i = 0; ok && i < 2; i++) {
        if (rep->element[i]->type == REDIS_REPLY_STRING) {
            v[i] = strtoull(rep->element[i]->str, NULL, 10);
        }
    }
    if (rep != NULL) {
        freeReplyObject(rep);
    }
    *users = v[0];
    *events = v[1];
    return ok ? BR_OK : BR_E_UNAVAILABLE;
}

/* ---- open / close ---- */

int br_reconciler_open(struct br_reconciler **out, const struct br_redis_options *o,
                       const struct br_config *cfg, struct br_pg *pg, const struct br_log *log,
                       const struct br_reconciler_options *opt)
{
    *out = NULL;
    if (pg == NULL || cfg->events_max == 0) {
        return BR_E_INVALID;
    }
    struct br_reconciler *rc = calloc(1, sizeof *rc);
    if (rc == NULL) {
        return BR_E_FULL;
    }
    rc->opt = opt != NULL ? *opt : (struct br_reconciler_options){0};
    if (rc->opt.interval_ms <= 0) {
        rc->opt.interval_ms = BR_RECONCILER_INTERVAL_MS_DEFAULT;
    }
    if (rc->opt.lease_ms <= 0) {
        rc->opt.lease_ms = BR_RECONCILER_LEASE_MS_DEFAULT;
    }
    if (rc->opt.owner[0] == 0) {
        br_lease_owner_default(rc->opt.owner, sizeof rc->opt.owner);
    }
    rc->pg = pg;
    rc->log = log != NULL ? log : &br_log_stderr;
    rc->cfg = *cfg;
    rc->ropt = *o;
    rc->ropt.fresh = false;
    pthread_mutex_init(&rc->mu, NULL);
    rc->drift = malloc(sizeof *rc->drift * cfg->events_max * BR_EVENT_ZONES_MAX);
    rc->compared = calloc(cfg->events_max, 1);
    int err = rc->drift != NULL && rc->compared != NULL ? BR_OK : BR_E_FULL;
    if (err == BR_OK) {
        for (size_t i = 0; i < (size_t)cfg->events_max * BR_EVENT_ZONES_MAX; i++) {
            rc->drift[i] = -1;
        }
        err = br_redis_open(&rc->redis, &rc->ropt, cfg);
        if (err != BR_OK) {
            memset(&rc->redis, 0, sizeof rc->redis);
        }
    }
    if (err != BR_OK) {
        br_reconciler_close(rc);
        return err;
    }
    *out = rc;
    return BR_OK;
}

void br_reconciler_close(struct br_reconciler *rc)
{
    if (rc == NULL) {
        return;
    }
    br_reconciler_stop(rc);
    br_redis_close(&rc->redis);
    pthread_mutex_destroy(&rc->mu);
    free(rc->drift);
    free(rc->compared);
    free(rc);
}

/* ---- drift ---- */

/* a < b for stream ids "<ms>-<seq>" ("0" is the smallest). */
static bool stream_less(const char *a, const char *b)
{
    unsigned long long am = 0, as = 0, bm = 0, bs = 0;
    sscanf(a, "%llu-%llu", &am, &as);
    sscanf(b, "%llu-%llu", &bm, &bs);
    return am < bm || (am == bm && as < bs);
}

/* Stores and logs one event's drift per zone (|held diff| + |sold diff|),
 * compared at position pos. */
static void record_drift(struct br_reconciler *rc, uint64_t event_id,
                         const struct br_pg_zone *zones, uint32_t nz, const uint32_t *held,
                         const uint32_t *sold, const char *pos, uint64_t *drift_sum)
{
    BR_ASSERT(nz <= BR_EVENT_ZONES_MAX && event_id >= 1 && event_id <= rc->cfg.events_max);
    pthread_mutex_lock(&rc->mu);
    for (uint32_t z = 0; z < nz; z++) {
        int64_t dh = (int64_t)held[z] - (int64_t)zones[z].held;
        int64_t ds = (int64_t)sold[z] - (int64_t)zones[z].sold;
        int64_t d = (dh < 0 ? -dh : dh) + (ds < 0 ? -ds : ds);
        uint32_t zi = zones[z].zone_id - 1;
        int32_t before = -1;
        if (zi < BR_EVENT_ZONES_MAX) {
            before = rc->drift[(event_id - 1) * BR_EVENT_ZONES_MAX + zi];
            rc->drift[(event_id - 1) * BR_EVENT_ZONES_MAX + zi] = (int32_t)d;
        }
        *drift_sum += (uint64_t)d;
        if (d != 0 && d != before) { /* logged when it appears or changes; the gauge stays */
            br_logf(rc->log, BR_LOG_ERROR,
                    "drift: Redis and PostgreSQL disagree on a zone at the same log position",
                    "\"event\":%" PRIu64 ",\"zone\":%u,\"redis_held\":%u,\"redis_sold\":%u,"
                    "\"pg_held\":%u,\"pg_sold\":%u,\"position\":\"%s\"",
                    event_id, zones[z].zone_id, held[z], sold[z], zones[z].held, zones[z].sold,
                    pos);
        }
    }
    pthread_mutex_unlock(&rc->mu);
}

#define EVENT_BEHIND 2 /* compare_event: Redis's log ends before the record's position */

/* Compares one event's zones if both sides stand at the same log position.
 * Returns 1 compared, 0 skipped (positions differ), EVENT_BEHIND, or an
 * error. The record's position is read before Redis's log and again after
 * it: the position only ever comes from entries Redis had, so a log that
 * ends before a position read earlier has lost entries (a failover to a
 * stale replica), while one that ends after it is only ahead of the
 * recorder. */
static int compare_event(struct br_reconciler *rc, uint64_t event_id, uint64_t *drift_sum)
{
    uint64_t len = 0;
    char last1[32], last2[32], pos1[BR_PG_STREAM_ID_MAX], pos2[BR_PG_STREAM_ID_MAX];
    int err = br_pg_projection_position(rc->pg, event_id, pos1);
    if (err == BR_OK) {
        err = br_redis_log_len(&rc->redis, event_id, &len, last1);
    }
    if (err != BR_OK) {
        return err;
    }
    /* An empty log (len 0) exists only after a rebuild with nothing since:
     * Redis's state is then the record's at its position. */
    bool empty = len == 0;
    if (!empty && stream_less(last1, pos1)) {
        br_logf(rc->log, BR_LOG_ERROR,
                "Redis's log of the event ends before the record's position: Redis lost "
                "entries (a failover to a stale replica?)",
                "\"event\":%" PRIu64 ",\"log_ends\":\"%s\",\"position\":\"%s\"", event_id, last1,
                pos1);
        return EVENT_BEHIND;
    }
    if (!empty && strcmp(last1, pos1) != 0) {
        return 0; /* the recorder is behind: nothing to compare at one position */
    }
    struct br_pg_zone zones[BR_EVENT_ZONES_MAX];
    uint32_t nz = 0;
    uint32_t held[BR_EVENT_ZONES_MAX], sold[BR_EVENT_ZONES_MAX];
    err = br_pg_zones(rc->pg, event_id, zones, &nz);
    for (uint32_t z = 0; err == BR_OK && z < nz; z++) {
        err = br_redis_zone_counts(&rc->redis, event_id, zones[z].zone_id, &held[z], &sold[z]);
    }
    if (err == BR_OK) {
        err = br_redis_log_len(&rc->redis, event_id, &len, last2);
    }
    if (err == BR_OK) {
        err = br_pg_projection_position(rc->pg, event_id, pos2);
    }
    if (err != BR_OK) {
        return err;
    }
    if (strcmp(last1, last2) != 0 || strcmp(pos1, pos2) != 0 || (empty && len != 0)) {
        return 0; /* a write landed meanwhile */
    }
    record_drift(rc, event_id, zones, nz, held, sold, pos1, drift_sum);
    return 1;
}

static int drift_pass(struct br_reconciler *rc, uint64_t events, struct br_reconciler_report *rep)
{
    if (events > rc->cfg.events_max) {
        events = rc->cfg.events_max;
    }
    pthread_mutex_lock(&rc->mu);
    rc->events_seen = (uint32_t)events > rc->events_seen ? (uint32_t)events : rc->events_seen;
    pthread_mutex_unlock(&rc->mu);
    for (uint64_t id = 1; id <= events && !rc->stop; id++) {
        int got = compare_event(rc, id, &rep->drift_total);
        if (got < 0) {
            return got;
        }
        rep->events_behind += got == EVENT_BEHIND ? 1 : 0;
        got = got == 1 ? 1 : 0;
        pthread_mutex_lock(&rc->mu);
        rc->compared[id - 1] = (uint8_t)got;
        pthread_mutex_unlock(&rc->mu);
        rep->events_compared += (uint32_t)got;
    }
    return BR_OK;
}

/* ---- the rebuild ---- */

static void set_refused(struct br_reconciler *rc, bool refuse)
{
    if (rc->opt.writes != NULL) {
        rc->opt.writes(rc->opt.writes_ctx, refuse, BR_RECONCILER_RETRY_AFTER_S);
    }
    pthread_mutex_lock(&rc->mu);
    rc->refused = refuse;
    pthread_mutex_unlock(&rc->mu);
}

static int restore_users(struct br_reconciler *rc, uint64_t users, struct br_reconciler_report *rep)
{
    struct br_pg_user u;
    struct br_cmd cmd;
    struct br_outcome out;
    struct br_effect *fx = malloc(sizeof *fx * BR_EFFECTS_MAX);
    if (fx == NULL) {
        return BR_E_FULL;
    }
    int err = BR_OK;
    for (uint64_t id = 1; id <= users && err == BR_OK; id++) {
        err = br_pg_user_get(rc->pg, id, &u);
        if (err != BR_OK) {
            br_logf(rc->log, BR_LOG_ERROR, "rebuild: a user id of the record cannot be read",
                    "\"user\":%" PRIu64 ",\"error\":\"%s\"", id, br_err_name(err));
            break;
        }
        memset(&cmd, 0, sizeof cmd);
        cmd.type = BR_CMD_USER_REGISTER;
        cmd.now_ms = u.created_ms >= 0 && u.created_ms <= BR_NOW_MS_MAX ? u.created_ms : 0;
        memcpy(cmd.u.user_register.email, u.email, sizeof u.email);
        memcpy(cmd.u.user_register.name, u.name, sizeof u.name);
        memcpy(cmd.u.user_register.password_hash, u.password_hash, sizeof u.password_hash);
        memcpy(cmd.u.user_register.salt, u.salt, sizeof u.salt);
        cmd.u.user_register.role = u.role;
        uint32_t n = 0;
        err = br_redis_apply(&rc->redis, &cmd, &out, fx, &n);
        if (err == BR_OK && out.id != id) {
            br_logf(rc->log, BR_LOG_ERROR, "rebuild: Redis gave a restored user another id",
                    "\"user\":%" PRIu64 ",\"redis_id\":%" PRIu64, id, out.id);
            err = BR_E_CORRUPT;
        }
        rep->users_restored += err == BR_OK ? 1 : 0;
    }
    free(fx);
    return err;
}

/* Growable arrays for one event's record. */
struct record {
    struct br_pg_booking *bookings;
    uint32_t booking_count, booking_cap;
    struct br_pg_payment *payments;
    uint32_t payment_count, payment_cap;
    uint64_t *pev;
    uint32_t pev_count, pev_cap;
    struct br_redis_rebuild_hold *holds;
    struct br_redis_rebuild_payment *pays;
};

static void record_free(struct record *r)
{
    free(r->bookings);
    free(r->payments);
    free(r->pev);
    free(r->holds);
    free(r->pays);
    memset(r, 0, sizeof *r);
}

/* Makes room for PAGE more rows in *arr (count used, *cap allocated). */
static bool grow(void **arr, uint32_t count, uint32_t *cap, size_t size)
{
    if (count + PAGE <= *cap) {
        return true;
    }
    uint32_t want = *cap == 0 ? PAGE : *cap * 2;
    while (want < count + PAGE) {
        want *= 2;
    }
    void *p = realloc(*arr, (size_t)want * size);
    if (p == NULL) {
        return false;
    }
    *arr = p;
    *cap = want;
    return true;
}

#define HOLD_STATES_ALL ((1u << BR_HOLD_STATE_COUNT) - 1u)
#define PAYMENT_STATES_ALL ((1u << BR_PAYMENT_STATE_COUNT) - 1u)

static int read_record(struct br_reconciler *rc, uint64_t event_id, struct record *r)
{
    int err = BR_OK;
    uint32_t n = PAGE;
    /* Each loop reads a page after the last id; bounded by the record's size. */
    for (uint64_t after = 0; err == BR_OK && n == PAGE;) {
        if (!grow((void **)&r->bookings, r->booking_count, &r->booking_cap, sizeof *r->bookings)) {
            return BR_E_FULL;
        }
        err = br_pg_bookings(rc->pg, event_id, HOLD_STATES_ALL, after, PAGE,
                             r->bookings + r->booking_count, &n);
        r->booking_count += err == BR_OK ? n : 0;
        after = r->booking_count > 0 ? r->bookings[r->booking_count - 1].id : 0;
    }
    n = PAGE;
    for (uint64_t after = 0; err == BR_OK && n == PAGE;) {
        if (!grow((void **)&r->payments, r->payment_count, &r->payment_cap, sizeof *r->payments)) {
            return BR_E_FULL;
        }
        err = br_pg_payments(rc->pg, event_id, PAYMENT_STATES_ALL, after, PAGE,
                             r->payments + r->payment_count, &n);
        r->payment_count += err == BR_OK ? n : 0;
        after = r->payment_count > 0 ? r->payments[r->payment_count - 1].id : 0;
    }
    n = PAGE;
    for (uint64_t after = 0; err == BR_OK && n == PAGE;) {
        if (!grow((void **)&r->pev, r->pev_count, &r->pev_cap, sizeof *r->pev)) {
            return BR_E_FULL;
        }
        err = br_pg_provider_events(rc->pg, event_id, after, PAGE, r->pev + r->pev_count, &n);
        r->pev_count += err == BR_OK ? n : 0;
        after = r->pev_count > 0 ? r->pev[r->pev_count - 1] : 0;
    }
    return err;
}

static uint32_t seq_of(uint64_t id)
{
    return (uint32_t)(id & 0xffffffffu);
}

/* The next seq to hand out must pass every id Redis may have handed out
 * up to now (the rule, proved by induction over the rebuilds):
 *   - every id handed out before the last rebuild (at rebuilt_ms, by the
 *     reconciler's clock) is below the counter it started from (kept in
 *     the record before Redis got it: rebuild_counters; 0 and the event's
 *     creation when never rebuilt);
 *   - since then Redis handed out ids from that counter on, one event's
 *     scripts on one Redis core, far below BR_RECONCILER_IDS_PER_MS a
 *     millisecond; every entry up to the projected position is recorded,
 *     so at that entry's time (its stream id's ms, Redis's clock) the
 *     counter was at most the greater of the kept counter and the largest
 *     recorded id.
 * So base = max(kept counter, largest recorded), since = the later of the
 * last rebuild and the last projected entry, and base + margin +
 * (now - since) x rate passes everything handed out since, across any
 * number of losses with anything (or nothing) recorded between. Without
 * the kept counter, an entry recorded after a rebuild that issues no id of
 * a kind (a payment, for hold ids) moved `since` without moving `base`,
 * and ids the rebuilt Redis handed out came again. The constant margin
 * covers the clocks of two hosts (Redis's and the reconciler's, two
 * reconcilers'). Elapsed is capped (the 32-bit seq space: 6 hours at that
 * rate take a quarter of it). Each rebuild moves an event's counters by at
 * least the margin: ~4,000 rebuilds of one event exhaust its seqs. */
static uint32_t past_margin(uint32_t seq, int64_t elapsed_ms)
{
#ifdef BR_PLANT_RECONCILER_NO_MARGIN
    (void)elapsed_ms;
    return seq; /* planted: ids handed out after the last projection come again */
#endif
    if (elapsed_ms < 0) {
        elapsed_ms = 0; /* clocks of two hosts: the constant margin covers their skew */
    }
    if (elapsed_ms > BR_RECONCILER_ELAPSED_MS_MAX) {
        elapsed_ms = BR_RECONCILER_ELAPSED_MS_MAX;
    }
    uint64_t v =
        (uint64_t)seq + BR_RECONCILER_ID_MARGIN + (uint64_t)elapsed_ms * BR_RECONCILER_IDS_PER_MS;
    return v >= 0xffffffffu ? 0xfffffffeu : (uint32_t)v;
}

/* The rebuild input of one event from its record. */
static int fill_rebuild(struct br_reconciler *rc, const struct br_pg_event *ev, struct record *r,
                        struct br_redis_rebuild *in)
{
    memset(in, 0, sizeof *in);
    in->event_id = ev->id;
    in->owner_user_id = ev->owner_id;
    in->now_ms = br_clock_wall_ms(); /* the servers' clock (dist_now_ms): checks restart */
    in->spec = ev->spec;
    if (in->spec.queue_capacity == 0) {
        in->spec.queue_capacity = rc->cfg.queue_capacity_default;
    }
    struct br_pg_zone zones[BR_EVENT_ZONES_MAX];
    uint32_t nz = 0;
    int err = br_pg_zones(rc->pg, ev->id, zones, &nz);
    if (err != BR_OK) {
        return err;
    }
    for (uint32_t z = 0; z < nz; z++) {
        if (zones[z].zone_id >= 1 && zones[z].zone_id <= BR_EVENT_ZONES_MAX) {
            in->zone_held[zones[z].zone_id - 1] = zones[z].held;
            in->zone_sold[zones[z].zone_id - 1] = zones[z].sold;
        }
    }
    r->holds = calloc(r->booking_count + 1, sizeof *r->holds);
    r->pays = calloc(r->payment_count + 1, sizeof *r->pays);
    if (r->holds == NULL || r->pays == NULL) {
        return BR_E_FULL;
    }
    uint32_t hold_seq = 0, pass_seq = 0, pay_seq = 0;
    for (uint32_t i = 0; i < r->booking_count; i++) {
        const struct br_pg_booking *b = &r->bookings[i];
        r->holds[i] = (struct br_redis_rebuild_hold){
            .id = b->id,
            .user_id = b->user_id,
            .zone_id = b->zone_id,
            .quantity = b->quantity,
            .state = b->state,
            .created_ms = b->created_at_ms,
            .deadline_ms = b->expires_at_ms,
            .amount_minor = b->total_minor,
            .pass_id = b->pass_id,
            .payment_id = b->payment_id,
            .confirmed_by = b->state == BR_HOLD_CONFIRMED ? b->payment_id : 0};
        hold_seq = seq_of(b->id) > hold_seq ? seq_of(b->id) : hold_seq;
        pass_seq = seq_of(b->pass_id) > pass_seq ? seq_of(b->pass_id) : pass_seq;
    }
    for (uint32_t i = 0; i < r->payment_count; i++) {
        const struct br_pg_payment *p = &r->payments[i];
        r->pays[i] = (struct br_redis_rebuild_payment){.id = p->id,
                                                       .hold_id = p->booking_id,
                                                       .state = p->state,
                                                       .amount_minor = p->amount_minor,
                                                       .created_ms = p->created_ms,
                                                       .refund_attempts = p->refund_attempts,
                                                       .next_attempt_ms = p->next_attempt_ms,
                                                       .check_ms = rc->opt.payment_check_ms};
        pay_seq = seq_of(p->id) > pay_seq ? seq_of(p->id) : pay_seq;
    }
    /* Passes live in Redis only; the projection counted them from the
     * log's pass_issued effects. */
    struct br_pg_progress pr;
    err = br_pg_projection_progress(rc->pg, ev->id, &pr);
    if (err != BR_OK) {
        return err;
    }
    pass_seq = pr.pass_seq > pass_seq ? pr.pass_seq : pass_seq;
    in->passes_issued = pr.passes_issued > UINT32_MAX ? UINT32_MAX : (uint32_t)pr.passes_issued;
    int64_t since =
        strcmp(pr.stream_id, "0") != 0 ? strtoll(pr.stream_id, NULL, 10) : ev->created_ms;
    /* What the last rebuild gave Redis (past_margin's rule). */
    struct br_pg_rebuild_counters kept;
    err = br_pg_rebuild_counters_get(rc->pg, ev->id, &kept);
    if (err != BR_OK) {
        return err;
    }
#ifndef BR_PLANT_RECONCILER_FORGETS_REBUILD
    hold_seq = kept.hold_seq > hold_seq ? kept.hold_seq : hold_seq;
    pass_seq = kept.pass_seq > pass_seq ? kept.pass_seq : pass_seq;
    pay_seq = kept.payment_seq > pay_seq ? kept.payment_seq : pay_seq;
    since = kept.rebuilt_ms > since ? kept.rebuilt_ms : since;
#endif
    int64_t elapsed = in->now_ms - since;
    in->hold_seq = past_margin(hold_seq, elapsed);
    in->pass_seq = past_margin(pass_seq, elapsed);
    in->payment_seq = past_margin(pay_seq, elapsed);
    /* Kept before Redis gets them: a Redis rebuilt from counters the record
     * does not know would make the next rebuild's base too low. */
    kept = (struct br_pg_rebuild_counters){.pass_seq = in->pass_seq,
                                           .hold_seq = in->hold_seq,
                                           .payment_seq = in->payment_seq,
                                           .rebuilt_ms = in->now_ms};
    err = br_pg_rebuild_counters_put(rc->pg, ev->id, &kept);
    if (err != BR_OK) {
        return err;
    }
    in->holds = r->holds;
    in->hold_count = r->booking_count;
    in->payments = r->pays;
    in->payment_count = r->payment_count;
    in->provider_event_ids = r->pev;
    in->provider_event_count = r->pev_count;
    return BR_OK;
}

/* Makes the event's (lost) log continue past the projected position: an
 * entry with the position's successor id is added and trimmed away at
 * once (XADD MAXLEN 0), so the stream exists, empty, with that last id, and
 * every id Redis generates from now on is greater, whatever its clock says
 * (a failover to a host whose clock is behind). Without it the recorder,
 * which reads after the position, would skip the new entries. */
static int log_continue(struct br_reconciler *rc, uint64_t event_id)
{
    char pos[BR_PG_STREAM_ID_MAX];
    int err = br_pg_projection_position(rc->pg, event_id, pos);
    if (err != BR_OK || strcmp(pos, "0") == 0) {
        return err;
    }
    unsigned long long ms = 0, seq = 0;
    if (sscanf(pos, "%llu-%llu", &ms, &seq) != 2) {
        return BR_E_CORRUPT;
    }
    redisReply *rep = NULL;
    int rc2 =
        br_redis_commandf(&rc->redis, &rep, "XADD br:{e%" PRIu64 "}:log MAXLEN 0 %llu-%llu x 1",
                          event_id, ms, seq + 1);
    bool ok = reply_ok(rc2, rep);
    if (!ok && rc2 == BR_OK) {
        /* Refused: the stream's top is past that id already (a command that
         * reached the emptied Redis before writes were refused logged its
         * failure there): new ids pass the position anyway. */
        uint64_t len = 0;
        char last[32];
        ok = br_redis_log_len(&rc->redis, event_id, &len, last) == BR_OK && len > 0 &&
             stream_less(pos, last);
    }
    if (!ok) {
        br_logf(rc->log, BR_LOG_ERROR,
                "rebuild: the event's log could not be moved past its "
                "projected position",
                "\"event\":%" PRIu64 ",\"position\":\"%s\"", event_id, pos);
    }
    return ok ? BR_OK : BR_E_UNAVAILABLE;
}

static int rebuild_event(struct br_reconciler *rc, uint64_t event_id)
{
    struct br_pg_event ev;
    int err = br_pg_event_get(rc->pg, event_id, &ev);
    struct record r = {0};
    struct br_redis_rebuild in;
    if (err == BR_OK) {
        err = read_record(rc, event_id, &r);
    }
    if (err == BR_OK) {
        err = fill_rebuild(rc, &ev, &r, &in);
    }
    if (err == BR_OK) {
        err = br_redis_rebuild_event(&rc->redis, &in);
        if (err == BR_E_UNKNOWN_OUTCOME) {
            /* All or nothing: again, and "it exists" means the first one landed. */
            err = br_redis_rebuild_event(&rc->redis, &in);
            err = err == BR_E_DUPLICATE ? BR_OK : err;
        }
    }
    if (err == BR_OK) {
        err = log_continue(rc, event_id);
    }
    if (err != BR_OK) {
        br_logf(rc->log, BR_LOG_ERROR, "rebuild: an event could not be rebuilt",
                "\"event\":%" PRIu64 ",\"error\":\"%s\"", event_id, br_err_name(err));
    } else {
        br_logf(rc->log, BR_LOG_INFO, "rebuild: event rebuilt from the record",
                "\"event\":%" PRIu64 ",\"bookings\":%u,\"payments\":%u,\"provider_events\":%u",
                event_id, r.booking_count, r.payment_count, r.pev_count);
    }
    record_free(&r);
    return err;
}

/* Marks (or, with ttl 0, unmarks) a rebuild in progress: Redis's counters
 * reach PostgreSQL's before the rebuild is done (each event's share of the
 * catalog is restored before its slot), so "epoch missing and Redis behind"
 * alone would let writes through for the last events; every process also
 * refuses writes while this key exists and the epoch does not. */
static int mark_rebuilding(struct br_reconciler *rc, int64_t ttl_ms)
{
    redisReply *rep = NULL;
    int err = ttl_ms > 0 ? br_redis_commandf(&rc->redis, &rep, "SET " REBUILDING_KEY " %s PX %lld",
                                             rc->opt.owner, (long long)ttl_ms)
                         : br_redis_commandf(&rc->redis, &rep, "DEL " REBUILDING_KEY);
    return reply_ok(err, rep) ? BR_OK : BR_E_UNAVAILABLE;
}

static int rebuild(struct br_reconciler *rc, uint64_t users, uint64_t events,
                   struct br_reconciler_report *rep)
{
    br_logf(rc->log, BR_LOG_ERROR,
            "Redis lost data (it holds less than the record: fewer users or events, or an "
            "event's log ends before the projected position): writes refused, rebuilding the "
            "on-sale from PostgreSQL",
            "\"users\":%" PRIu64 ",\"events\":%" PRIu64
            ",\"alert\":\"br_reconcile_writes_refused\"",
            users, events);
    set_refused(rc, true);
    int err = br_redis_flush(&rc->redis);
    if (err == BR_OK) {
        err = mark_rebuilding(rc, REBUILDING_TTL_MS);
    }
    if (err == BR_OK) {
        err = restore_users(rc, users, rep);
    }
    for (uint64_t id = 1; err == BR_OK && id <= events; id++) {
        err = mark_rebuilding(rc, REBUILDING_TTL_MS);
        if (err == BR_OK) {
            err = rebuild_event(rc, id);
        }
        rep->events_rebuilt += err == BR_OK ? 1 : 0;
    }
    if (err == BR_OK) {
        err = epoch_write(rc);
    }
    if (err == BR_OK) {
        err = mark_rebuilding(rc, 0);
    }
    pthread_mutex_lock(&rc->mu);
    rc->rebuilds += err == BR_OK ? 1 : 0;
    rc->rebuild_failures += err == BR_OK ? 0 : 1;
    pthread_mutex_unlock(&rc->mu);
    if (err != BR_OK) {
        br_logf(rc->log, BR_LOG_ERROR,
                "rebuild failed; writes stay refused, the next tick "
                "starts over",
                "\"error\":\"%s\"", br_err_name(err));
        return err;
    }
    set_refused(rc, false);
    rep->rebuilt = true;
    br_logf(rc->log, BR_LOG_INFO, "rebuild done: epoch written, writes resume",
            "\"users\":%" PRIu64 ",\"events\":%" PRIu64, users, events);
    return BR_OK;
}

/* ---- the tick ---- */

/* The user and event counts of both sides, PostgreSQL's first: the twin
 * counts a user or event in Redis inside PostgreSQL's transaction, before
 * the row commits, so Redis read after PostgreSQL is never behind it
 * unless Redis lost data. */
struct counts {
    uint64_t pg_users, pg_events, redis_users, redis_events;
};

static int read_counts(struct br_reconciler *rc, struct counts *k)
{
    int err = br_pg_user_max_id(rc->pg, &k->pg_users);
    if (err == BR_OK) {
        err = br_pg_event_max_id(rc->pg, &k->pg_events);
    }
    if (err == BR_OK) {
        err = redis_counts(rc, &k->redis_users, &k->redis_events);
    }
    return err;
}

/* The leader's tick: loss detection (the epoch and the counts), the
 * rebuild, the first epoch, the drift pass; and a loss the drift pass
 * finds (an event's log behind the record) rebuilt at once. */
static int leader_tick(struct br_reconciler *rc, struct br_reconciler_report *rep)
{
    int present = epoch_present(rc);
    if (present < 0) {
        return present;
    }
    rep->epoch_present = present == 1;
    struct counts k;
    int err = read_counts(rc, &k);
    if (err != BR_OK) {
        return err;
    }
    bool behind = k.redis_users < k.pg_users || k.redis_events < k.pg_events;
    if (behind) {
        /* Epoch missing: Redis restarted empty. Epoch present: a failover
         * to a replica that missed writes the record already holds. */
        rep->lost = true;
        return rebuild(rc, k.pg_users, k.pg_events, rep);
    }
    if (present == 0) {
        err = epoch_write(rc); /* nothing lost: the first start of this deployment */
    } else if (rc->refused) {
        set_refused(rc, false); /* another reconciler finished the rebuild */
    }
    if (err == BR_OK) {
        err = drift_pass(rc, k.redis_events, rep);
    }
    if (err == BR_OK && rep->events_behind > 0) {
        rep->lost = true;
        err = rebuild(rc, k.pg_users, k.pg_events, rep);
    }
    return err;
}

int br_reconciler_tick(struct br_reconciler *rc, struct br_reconciler_report *rep_out)
{
    struct br_reconciler_report rep = {0};
    int err = BR_OK;
    int held = br_lease_hold(&rc->redis, LEASE_KEY, rc->opt.owner, rc->opt.lease_ms);
    if (held < 0) {
        err = held;
    }
    rep.leader = held == 1;
    pthread_mutex_lock(&rc->mu);
    rc->leader = rep.leader;
    pthread_mutex_unlock(&rc->mu);
    if (err == BR_OK && !rep.leader && rc->refused && epoch_present(rc) == 1) {
        set_refused(rc, false); /* the leader finished a rebuild this process waited for */
    }
    if (err == BR_OK && rep.leader) {
        err = leader_tick(rc, &rep);
    }
    rep.err = err;
    if (rep_out != NULL) {
        *rep_out = rep;
    }
    return err;
}

static void *run(void *arg)
{
    struct br_reconciler *rc = arg;
    struct timespec ten_ms = {.tv_sec = 0, .tv_nsec = 10 * 1000 * 1000};
    /* Until stopped; every tick is bounded by the record's size. */
    while (!rc->stop) {
        br_reconciler_tick(rc, NULL);
        for (int64_t t = 0; t < rc->opt.interval_ms && !rc->stop; t += 10) {
            nanosleep(&ten_ms, NULL);
        }
    }
    return NULL;
}

int br_reconciler_start(struct br_reconciler *rc)
{
    BR_ASSERT(!rc->running);
    rc->stop = 0;
    if (pthread_create(&rc->thread, NULL, run, rc) != 0) {
        return BR_E_FULL;
    }
    rc->running = true;
    return BR_OK;
}

void br_reconciler_stop(struct br_reconciler *rc)
{
    if (!rc->running) {
        return;
    }
    rc->stop = 1;
    pthread_join(rc->thread, NULL);
    rc->running = false;
    rc->stop = 0; /* passes called directly after a stop run again */
    br_lease_release(&rc->redis, LEASE_KEY, rc->opt.owner);
}

int64_t br_reconciler_drift(struct br_reconciler *rc, uint64_t event_id, uint32_t zone_id)
{
    if (event_id < 1 || event_id > rc->cfg.events_max || zone_id < 1 ||
        zone_id > BR_EVENT_ZONES_MAX) {
        return -1;
    }
    pthread_mutex_lock(&rc->mu);
    int64_t d = rc->drift[(event_id - 1) * BR_EVENT_ZONES_MAX + zone_id - 1];
    pthread_mutex_unlock(&rc->mu);
    return d;
}

size_t br_reconciler_metrics(struct br_reconciler *rc, char *buf, size_t cap)
{
    struct br_textbuf b = {.p = buf, .cap = cap, .len = 0};
    pthread_mutex_lock(&rc->mu);
    br_textbuf_printf(&b, "# HELP br_reconcile_drift_seats Seats on which Redis and PostgreSQL disagree "
                  "at the same log position (|held diff| + |sold diff|).\n"
                  "# TYPE br_reconcile_drift_seats gauge\n");
    for (uint32_t e = 0; e < rc->events_seen; e++) {
        for (uint32_t z = 0; z < BR_EVENT_ZONES_MAX; z++) {
            int32_t d = rc->drift[(size_t)e * BR_EVENT_ZONES_MAX + z];
            if (d >= 0) {
                br_textbuf_printf(&b, "br_reconcile_drift_seats{event=\"%u\",zone=\"%u\"} %d\n", e + 1,
                          z + 1, d);
            }
        }
    }
    br_textbuf_printf(&b, "# HELP br_reconcile_compared 1 when the last tick compared the event (the "
                  "recorder had caught up).\n# TYPE br_reconcile_compared gauge\n");
    for (uint32_t e = 0; e < rc->events_seen; e++) {
        br_textbuf_printf(&b, "br_reconcile_compared{event=\"%u\"} %u\n", e + 1, rc->compared[e]);
    }
    br_textbuf_printf(&b,
              "# HELP br_reconcile_writes_refused 1 while writes are refused for a rebuild.\n"
              "# TYPE br_reconcile_writes_refused gauge\nbr_reconcile_writes_refused %d\n"
              "# HELP br_reconcile_leader 1 while this process holds the reconciler's lease.\n"
              "# TYPE br_reconcile_leader gauge\nbr_reconcile_leader %d\n"
              "# HELP br_reconcile_rebuilds_total Rebuilds of Redis from PostgreSQL done.\n"
              "# TYPE br_reconcile_rebuilds_total counter\nbr_reconcile_rebuilds_total %" PRIu64
              "\n# HELP br_reconcile_rebuild_failures_total Rebuild attempts that failed.\n"
              "# TYPE br_reconcile_rebuild_failures_total counter\n"
              "br_reconcile_rebuild_failures_total %" PRIu64 "\n",
              rc->refused ? 1 : 0, rc->leader ? 1 : 0, rc->rebuilds, rc->rebuild_failures);
    pthread_mutex_unlock(&rc->mu);
    return b.len;
}
