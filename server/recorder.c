/*
 * recorder.c -- the recorder role (recorder.h says what it guarantees and
 * why the position, not the lease, makes it exactly once).
 *
 * State per event lives in a table indexed by event id - 1, grown as the
 * catalog's event counter grows (up to events_max). The thread and the
 * metrics reader share it under one mutex, held only while copying
 * numbers, never across a round trip.
 */
#define _POSIX_C_SOURCE 200809L
#include "server/recorder.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "adapters/clock.h"
#include "adapters/pg.h"
#include "core/err.h"
#include "core/panic.h"
#include "server/textbuf.h"

/* ---- leases ---- */

/* Take when free, renew when ours; one atomic step. */
static const char lease_script[] =
    "local v = redis.call('GET', KEYS[1]) "
    "if v == false then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end "
    "if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end "
    "return 0";
static const char release_script[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end return 0";

int br_lease_hold(struct br_redis *r, const char *key, const char *owner, int64_t ttl_ms)
{
    BR_ASSERT(ttl_ms > 0);
    redisReply *rep = NULL;
    int rc = br_redis_commandf(r, &rep, "EVAL %s 1 %s %s %lld", lease_script, key, owner,
                               (long long)ttl_ms);
    int held = rc != BR_OK || rep == NULL || rep->type != REDIS_REPLY_INTEGER ? BR_E_UNAVAILABLE
               : rep->integer == 1                                            ? 1
                                                                              : 0;
    if (rep != NULL) {
        freeReplyObject(rep);
    }
    return held;
}

void br_lease_release(struct br_redis *r, const char *key, const char *owner)
{
    redisReply *rep = NULL;
    if (br_redis_commandf(r, &rep, "EVAL %s 1 %s %s", release_script, key, owner) == BR_OK &&
        rep != NULL) {
        freeReplyObject(rep);
    }
}

void br_lease_owner_default(char *owner, size_t cap)
{
    char host[40] = "host";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = 0;
    snprintf(owner, cap, "%s:%ld", host, (long)getpid());
}

/* ---- the recorder ---- */

#define LAG_BUCKETS 10
static const double lag_bounds_s[LAG_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1,
                                                 0.25,  0.5,  1,     2.5,  10};

struct rec_event {
    struct br_recorder_event pub;
    int64_t retry_at_ms; /* monotonic: a failed event waits until then */
    int64_t checked_ms;  /* monotonic: the cached position was last read from PostgreSQL */
    int64_t renewed_ms;  /* monotonic: the lease was last taken or renewed */
    bool leased;
};

/* A caught-up event's cached position is read again from PostgreSQL this
 * often: if the record went back (restored from a backup), the recorder
 * projects the gap again instead of waiting after a position the record no
 * longer has. */
#define POSITION_RECHECK_MS 1000

struct br_recorder {
    struct br_redis redis; /* the logs, the leases, the catalog counter */
    bool redis_down;       /* the pass in progress lost Redis */
    struct br_redis_options ropt;
    struct br_pg *pg;
    const struct br_log *log;
    struct br_recorder_options opt;
    struct br_redis_log_entry *batch; /* opt.batch entries */
    struct br_pg_log_item *items;     /* opt.batch: the batch as br_pg_project takes it */
    pthread_mutex_t mu;               /* guards events, event_count and the counters */
    struct rec_event *events;         /* [events_max] */
    uint32_t event_count;             /* events met so far */
    uint32_t events_max;
    uint64_t projected_total;
    uint64_t lag_hist[LAG_BUCKETS + 1]; /* last: +Inf */
    double lag_sum_s;
    pthread_t thread;
    bool running;
    atomic_int stop; /* read by the thread between passes */
};

static void options_fill(struct br_recorder_options *o)
{
    o->batch = o->batch == 0 ? BR_RECORDER_BATCH_DEFAULT : o->batch;
    o->batches_per_pass = o->batches_per_pass == 0 ? 16 : o->batches_per_pass;
    o->lease_ms = o->lease_ms == 0 ? BR_RECORDER_LEASE_MS_DEFAULT : o->lease_ms;
    o->retry_failed_ms =
        o->retry_failed_ms == 0 ? BR_RECORDER_RETRY_FAILED_MS_DEFAULT : o->retry_failed_ms;
    o->idle_ms = o->idle_ms == 0 ? BR_RECORDER_IDLE_MS_DEFAULT : o->idle_ms;
    if (o->owner[0] == 0) {
        br_lease_owner_default(o->owner, sizeof o->owner);
    }
}

int br_recorder_open(struct br_recorder **out, const struct br_redis_options *o,
                     const struct br_config *cfg, struct br_pg *pg, const struct br_log *log,
                     const struct br_recorder_options *opt)
{
    *out = NULL;
    struct br_recorder_options op = opt != NULL ? *opt : (struct br_recorder_options){0};
    options_fill(&op);
    if (pg == NULL || op.batch > BR_RECORDER_BATCH_MAX || op.lease_ms < 1 || cfg->events_max == 0) {
        return BR_E_INVALID;
    }
    struct br_recorder *rec = calloc(1, sizeof *rec);
    if (rec == NULL) {
        return BR_E_FULL;
    }
    rec->opt = op;
    rec->pg = pg;
    rec->log = log != NULL ? log : &br_log_stderr;
    rec->ropt = *o;
    rec->ropt.fresh = false;
    rec->events_max = cfg->events_max;
    rec->events = calloc(cfg->events_max, sizeof *rec->events);
    rec->batch = calloc(op.batch, sizeof *rec->batch);
    rec->items = calloc(op.batch, sizeof *rec->items);
    pthread_mutex_init(&rec->mu, NULL);
    int rc = rec->events != NULL && rec->batch != NULL && rec->items != NULL ? BR_OK : BR_E_FULL;
    if (rc == BR_OK) {
        rc = br_redis_open(&rec->redis, &rec->ropt, cfg);
        if (rc != BR_OK) {
            memset(&rec->redis, 0, sizeof rec->redis);
        }
    }
    if (rc != BR_OK) {
        br_recorder_close(rec);
        return rc;
    }
    *out = rec;
    return BR_OK;
}

/* The catalog's event counter, or -1 when Redis cannot be read. */
static int64_t catalog_events(struct br_recorder *rec)
{
    redisReply *rep = NULL;
    int rc = br_redis_commandf(&rec->redis, &rep, "HGET br:{cat}:cat events");
    int64_t n = rc != BR_OK || rep == NULL        ? -1
                : rep->type == REDIS_REPLY_STRING ? strtoll(rep->str, NULL, 10)
                : rep->type == REDIS_REPLY_NIL    ? 0
                                                  : -1;
    if (rep != NULL) {
        freeReplyObject(rep);
    }
    return n;
}

/* The ms part of a stream id ("1700000000000-3"). */
static int64_t stream_ms(const char *id)
{
    return strtoll(id, NULL, 10);
}

static void note_lag(struct br_recorder *rec, int64_t lag_ms)
{
    double s = (double)(lag_ms > 0 ? lag_ms : 0) / 1000.0;
    unsigned i = 0;
    while (i < LAG_BUCKETS && s > lag_bounds_s[i]) {
        i++;
    }
    rec->lag_hist[i]++;
    rec->lag_sum_s += s;
}

/* After a failed attempt: what the metrics and the next pass need. from_pg
 * says whether PostgreSQL refused (else reading the log failed). */
static void attempt_failed(struct br_recorder *rec, struct rec_event *ev, int rc, uint32_t n,
                           bool from_pg)
{
    const char *first = n > 0 ? rec->batch[0].stream_id : "";
    const char *last = n > 0 ? rec->batch[n - 1].stream_id : "";
    /* CORRUPT (a CHECK, a log entry that does not decode) does not go away
     * by itself: the event stops and is tried again after retry_failed_ms.
     * Anything else is retried on the next pass: a transport failure, or
     * NOT_FOUND (PostgreSQL has no such event yet: the twin logs the
     * creation inside PostgreSQL's transaction, just before its commit). */
    bool stuck = rc == BR_E_CORRUPT;
    char pos[sizeof ev->pub.position];
    pthread_mutex_lock(&rec->mu);
    memcpy(pos, ev->pub.position, sizeof pos);
    bool repeated = ev->pub.last_err == rc;
    ev->pub.last_err = rc;
    ev->pub.lag_entries = n;
    ev->pub.lag_ms = n > 0 ? br_clock_wall_ms() - stream_ms(first) : 0;
    if (stuck) {
        ev->pub.failed = true;
        ev->pub.refused++;
        ev->retry_at_ms = br_clock_mono_ms() + rec->opt.retry_failed_ms;
    } else {
        ev->pub.unavailable++;
    }
    ev->pub.position[0] = 0; /* read it again: the attempt may have moved it */
    pthread_mutex_unlock(&rec->mu);
    if (rc == BR_E_CORRUPT && !from_pg) {
        br_logf(rec->log, BR_LOG_ERROR,
                "an entry of the event's log does not decode; this event's projection stops "
                "until an operator acts",
                "\"event\":%" PRIu64 ",\"after\":\"%s\",\"alert\":\"br_projection_failed\"",
                ev->pub.event_id, pos);
    } else if (rc == BR_E_CORRUPT) {
        br_logf(rec->log, BR_LOG_ERROR,
                "projection refused by PostgreSQL: the log breaks a constraint (oversold?); "
                "this event's projection stops until an operator acts",
                "\"event\":%" PRIu64 ",\"from\":\"%s\",\"to\":\"%s\",\"entries\":%u,"
                "\"retry_in_ms\":%lld,\"alert\":\"br_projection_failed\"",
                ev->pub.event_id, first, last, n, (long long)rec->opt.retry_failed_ms);
    } else if (!repeated) {
        /* Once per outage, not once per pass: the counter says how often. */
        br_logf(rec->log, BR_LOG_WARN, "projection attempt failed; retried on the next pass",
                "\"event\":%" PRIu64 ",\"error\":\"%s\"", ev->pub.event_id, br_err_name(rc));
    }
}

/* After a commit of n entries of which `applied` were new (the rest had
 * been projected by another recorder: counted as a conflict). */
static void attempt_done(struct br_recorder *rec, struct rec_event *ev, uint32_t n,
                         uint32_t applied, bool caught_up)
{
    BR_ASSERT(n > 0 && applied <= n);
    int64_t lag_ms = br_clock_wall_ms() - stream_ms(rec->batch[0].stream_id);
    pthread_mutex_lock(&rec->mu);
    memcpy(ev->pub.position, rec->batch[n - 1].stream_id, sizeof ev->pub.position);
    ev->pub.projected += applied;
    ev->pub.conflicts += applied < n ? 1 : 0;
    ev->pub.last_err = BR_OK;
    if (ev->pub.failed) {
        br_logf(rec->log, BR_LOG_INFO, "projection resumed", "\"event\":%" PRIu64,
                ev->pub.event_id);
    }
    ev->pub.failed = false;
    ev->pub.lag_ms = lag_ms;
    ev->pub.lag_entries = caught_up ? 0 : 1;
    rec->projected_total += applied;
    note_lag(rec, lag_ms);
    pthread_mutex_unlock(&rec->mu);
}

/* The event's position, from the cache or from PostgreSQL. */
static int position_of(struct br_recorder *rec, struct rec_event *ev, char *pos)
{
    if (ev->pub.position[0] != 0) {
        memcpy(pos, ev->pub.position, sizeof ev->pub.position);
        return BR_OK;
    }
    int rc = br_pg_projection_position(rec->pg, ev->pub.event_id, pos);
    if (rc == BR_OK) {
        pthread_mutex_lock(&rec->mu);
        memcpy(ev->pub.position, pos, sizeof ev->pub.position);
        pthread_mutex_unlock(&rec->mu);
        ev->checked_ms = br_clock_mono_ms();
    }
    return rc;
}

/* Projects up to batches_per_pass batches of one event (lease held). */
static uint64_t project_event(struct br_recorder *rec, struct rec_event *ev)
{
    char pos[sizeof ev->pub.position];
    uint64_t done = 0;
    int rc = position_of(rec, ev, pos);
    if (rc != BR_OK) {
        attempt_failed(rec, ev, rc, 0, true);
        return 0;
    }
    for (uint32_t b = 0; b < rec->opt.batches_per_pass; b++) {
        uint32_t n = 0;
        rc = br_redis_log_read(&rec->redis, ev->pub.event_id, pos, rec->opt.batch, rec->batch, &n);
        BR_ASSERT(rc != BR_OK || n <= rec->opt.batch); /* the reader keeps to max */
        if (rc != BR_OK) {
            attempt_failed(rec, ev, rc, 0, false);
            return done;
        }
        if (n == 0) {
            bool recheck = br_clock_mono_ms() - ev->checked_ms >= POSITION_RECHECK_MS;
            pthread_mutex_lock(&rec->mu);
            ev->pub.lag_entries = 0;
            ev->pub.lag_ms = 0;
            if (recheck) {
                ev->pub.position[0] = 0;
            }
            pthread_mutex_unlock(&rec->mu);
            return done;
        }
        for (uint32_t i = 0; i < n; i++) {
            rec->items[i] = (struct br_pg_log_item){.stream_id = rec->batch[i].stream_id,
                                                    .cmd = &rec->batch[i].cmd,
                                                    .out = &rec->batch[i].out,
                                                    .fx = rec->batch[i].fx,
                                                    .fx_count = rec->batch[i].fx_count};
        }
        uint32_t applied = 0;
        rc = br_pg_project(rec->pg, ev->pub.event_id, rec->items, n, &applied);
        if (rc != BR_OK) {
            attempt_failed(rec, ev, rc, n, true);
            return done;
        }
        attempt_done(rec, ev, n, applied, n < rec->opt.batch);
        memcpy(pos, rec->batch[n - 1].stream_id, sizeof pos);
        done += n;
        if (n < rec->opt.batch) {
            return done;
        }
    }
    return done;
}

/* The lease key of one event. */
static void lease_key(char *key, size_t cap, uint64_t event_id)
{
    snprintf(key, cap, "br:{e%" PRIu64 "}:lease:record", event_id);
}

static uint64_t visit_event(struct br_recorder *rec, struct rec_event *ev)
{
    BR_ASSERT(ev->pub.event_id >= 1 && ev->pub.event_id <= rec->events_max);
    if (ev->pub.failed && br_clock_mono_ms() < ev->retry_at_ms) {
        return 0;
    }
    char key[64];
    lease_key(key, sizeof key, ev->pub.event_id);
    /* A lease held is renewed every third of its life, not every pass. */
    int64_t now = br_clock_mono_ms();
    int held = 1;
    if (!ev->leased || now - ev->renewed_ms >= rec->opt.lease_ms / 3) {
        held = br_lease_hold(&rec->redis, key, rec->opt.owner, rec->opt.lease_ms);
        ev->renewed_ms = now;
    }
    rec->redis_down = held == BR_E_UNAVAILABLE;
    ev->leased = held == 1;
    if (held != 1) {
        return 0; /* another recorder has it, or Redis is away */
    }
    return project_event(rec, ev);
}

int br_recorder_pass(struct br_recorder *rec, uint64_t *projected)
{
    uint64_t total = 0;
    if (projected != NULL) {
        *projected = 0;
    }
    rec->redis_down = false;
    int64_t events = catalog_events(rec);
    if (events < 0) {
        return BR_E_UNAVAILABLE;
    }
    if ((uint64_t)events > rec->events_max) {
        events = rec->events_max; /* Redis enforces events_max: only a foreign catalog gets here */
    }
    pthread_mutex_lock(&rec->mu);
    for (uint32_t i = rec->event_count; i < (uint32_t)events; i++) {
        rec->events[i].pub.event_id = (uint64_t)i + 1;
    }
    if ((uint32_t)events > rec->event_count) {
        rec->event_count = (uint32_t)events;
    }
    pthread_mutex_unlock(&rec->mu);
    /* Bounded: events_max events, each bounded by batches_per_pass. */
    for (uint32_t i = 0; i < (uint32_t)events && !rec->stop; i++) {
        total += visit_event(rec, &rec->events[i]);
        if (rec->redis_down) {
            break; /* Redis went away: the next pass starts over */
        }
    }
    if (projected != NULL) {
        *projected = total;
    }
    return rec->redis_down ? BR_E_UNAVAILABLE : BR_OK;
}

static void *run(void *arg)
{
    struct br_recorder *rec = arg;
    /* Until stopped; each pass is bounded (br_recorder_pass). */
    while (!rec->stop) {
        uint64_t n = 0;
        int rc = br_recorder_pass(rec, &n);
        if (n == 0 || rc != BR_OK) {
            int64_t pause = rc != BR_OK ? 500 : rec->opt.idle_ms;
            struct timespec ten_ms = {.tv_sec = 0, .tv_nsec = 10 * 1000 * 1000};
            for (int64_t t = 0; t < pause && !rec->stop; t += 10) {
                nanosleep(&ten_ms, NULL);
            }
        }
    }
    return NULL;
}

int br_recorder_start(struct br_recorder *rec)
{
    BR_ASSERT(!rec->running);
    rec->stop = 0;
    if (pthread_create(&rec->thread, NULL, run, rec) != 0) {
        return BR_E_FULL;
    }
    rec->running = true;
    return BR_OK;
}

void br_recorder_stop(struct br_recorder *rec)
{
    if (rec->running) {
        rec->stop = 1;
        pthread_join(rec->thread, NULL);
        rec->running = false;
        rec->stop = 0; /* passes called directly after a stop run again */
    }
    /* The leases this recorder holds (from the thread or from direct
     * passes) go back, so another recorder need not wait them out. */
    char key[64];
    for (uint32_t i = 0; i < rec->event_count; i++) {
        if (rec->events[i].leased) {
            lease_key(key, sizeof key, rec->events[i].pub.event_id);
            br_lease_release(&rec->redis, key, rec->opt.owner);
            rec->events[i].leased = false;
        }
    }
}

bool br_recorder_event_get(struct br_recorder *rec, uint64_t event_id,
                           struct br_recorder_event *out)
{
    pthread_mutex_lock(&rec->mu);
    bool known = event_id >= 1 && event_id <= rec->event_count;
    if (known) {
        *out = rec->events[event_id - 1].pub;
    }
    pthread_mutex_unlock(&rec->mu);
    return known;
}

static void metrics_events(struct br_recorder *rec, struct br_textbuf *b)
{
    br_textbuf_printf(b, "# HELP br_projection_lag_entries Log entries read and not yet projected "
                 "(0 = caught up).\n# TYPE br_projection_lag_entries gauge\n");
    for (uint32_t i = 0; i < rec->event_count; i++) {
        br_textbuf_printf(b, "br_projection_lag_entries{event=\"%" PRIu64 "\"} %u\n",
                  rec->events[i].pub.event_id, rec->events[i].pub.lag_entries);
    }
    br_textbuf_printf(b, "# HELP br_projection_lag_seconds Now minus the append time of the oldest log "
                 "entry not projected (or of the last batch at its commit); 0 = caught up.\n"
                 "# TYPE br_projection_lag_seconds gauge\n");
    for (uint32_t i = 0; i < rec->event_count; i++) {
        br_textbuf_printf(b, "br_projection_lag_seconds{event=\"%" PRIu64 "\"} %.3f\n",
                  rec->events[i].pub.event_id, (double)rec->events[i].pub.lag_ms / 1000.0);
    }
    br_textbuf_printf(b, "# HELP br_projection_failed 1 while PostgreSQL refuses the event's log "
                 "(a CHECK: oversold); an operator must act.\n"
                 "# TYPE br_projection_failed gauge\n");
    for (uint32_t i = 0; i < rec->event_count; i++) {
        br_textbuf_printf(b, "br_projection_failed{event=\"%" PRIu64 "\"} %d\n",
                  rec->events[i].pub.event_id, rec->events[i].pub.failed ? 1 : 0);
    }
    br_textbuf_printf(b, "# HELP br_projection_failures_total Projection attempts that failed, by "
                 "reason.\n# TYPE br_projection_failures_total counter\n");
    for (uint32_t i = 0; i < rec->event_count; i++) {
        const struct br_recorder_event *e = &rec->events[i].pub;
        br_textbuf_printf(b,
                  "br_projection_failures_total{event=\"%" PRIu64 "\",reason=\"refused\"} %" PRIu64
                  "\nbr_projection_failures_total{event=\"%" PRIu64
                  "\",reason=\"unavailable\"} %" PRIu64
                  "\nbr_projection_failures_total{event=\"%" PRIu64
                  "\",reason=\"conflict\"} %" PRIu64 "\n",
                  e->event_id, e->refused, e->event_id, e->unavailable, e->event_id, e->conflicts);
    }
}

size_t br_recorder_metrics(struct br_recorder *rec, char *buf, size_t cap)
{
    struct br_textbuf b = {.p = buf, .cap = cap, .len = 0};
    pthread_mutex_lock(&rec->mu);
    metrics_events(rec, &b);
    br_textbuf_printf(&b,
              "# HELP br_projected_entries_total Log entries this process projected into "
              "PostgreSQL.\n# TYPE br_projected_entries_total counter\n"
              "br_projected_entries_total %" PRIu64 "\n",
              rec->projected_total);
    br_textbuf_printf(&b, "# HELP br_projection_batch_lag_seconds Append-to-commit time of each "
                  "projected batch's first entry.\n"
                  "# TYPE br_projection_batch_lag_seconds histogram\n");
    uint64_t cum = 0;
    for (unsigned i = 0; i < LAG_BUCKETS; i++) {
        cum += rec->lag_hist[i];
        br_textbuf_printf(&b, "br_projection_batch_lag_seconds_bucket{le=\"%g\"} %" PRIu64 "\n",
                  lag_bounds_s[i], cum);
    }
    cum += rec->lag_hist[LAG_BUCKETS];
    br_textbuf_printf(&b,
              "br_projection_batch_lag_seconds_bucket{le=\"+Inf\"} %" PRIu64
              "\nbr_projection_batch_lag_seconds_sum %.6f\n"
              "br_projection_batch_lag_seconds_count %" PRIu64 "\n",
              cum, rec->lag_sum_s, cum);
    pthread_mutex_unlock(&rec->mu);
    return b.len;
}

void br_recorder_close(struct br_recorder *rec)
{
    if (rec == NULL) {
        return;
    }
    br_recorder_stop(rec);
    br_redis_close(&rec->redis);
    pthread_mutex_destroy(&rec->mu);
    free(rec->events);
    free(rec->batch);
    free(rec->items);
    free(rec);
}
