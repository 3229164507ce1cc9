/*
 * backend_embedded.c -- the embedded deployment (design in
 * backend_embedded.h).
 *
 * Sequence numbers. Every applied command gets the next lsn
 * (appended_lsn); the syncers make a prefix durable and publish
 * durable_lsn. A call waits in a FIFO until durable_lsn >= its lsn: a
 * write's lsn is its own command's, a read's is appended_lsn when it read,
 * so nothing it saw can be lost after it is answered. Either way it is
 * appended_lsn when the call finishes, since nothing is applied between
 * its apply and its finish (both under mu). The FIFO is ordered by lsn
 * because lsns are handed out under the same mutex that appends to it. Its
 * nodes (struct waiter: the call and its lsn) come from a pool of
 * BR_EMB_WAITERS_MAX, so the interface's struct br_call carries nothing of
 * ours.
 *
 * Reading the engine. Results are copied out of the engine under the mutex
 * right after the apply (the hold of a reserve, the event of a create), so a
 * call never points into the engine after the mutex is released.
 */
#define _GNU_SOURCE /* PTHREAD_MUTEX_ADAPTIVE_NP */

#include "server/backend_embedded.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "adapters/auth.h"
#include "adapters/clock.h"
#include "adapters/journal_file.h"
#include "core/engine.h"
#include "core/hash.h"
#include "core/journal.h"
#include "core/panic.h"
#include "core/queue.h"
#include "server/api_cmd.h"
#include "server/log.h"
#include "server/metrics.h"

#define PATH_MAX_BYTES 512u
/* Zeros written ahead of the journal's last record (journal_file.h): a
 * commit then overwrites zeros and its fdatasync has no size or block map
 * to update. Extended by ZERO_AHEAD_BYTES whenever less than ZERO_LOW_BYTES
 * remain; when an extension fails (the disk is full) new writes are refused
 * and what remains takes the commits already applied. */
#define ZERO_AHEAD_BYTES (1u << 20)
#define ZERO_LOW_BYTES (512LL << 10)
#define STORAGE_RETRY_MIN_MS 50  /* first retry after a storage failure */
#define STORAGE_RETRY_MAX_MS 1000 /* backoff doubles up to this */
/* When a syncer takes the active batch (leader/follower group commit):
 * with no commit in flight, at once (the disk is idle: waiting would only
 * add latency); with one in flight, only once that one has taken
 * COMMIT_STALL_US (the disk is slow right now: a second fdatasync overlaps
 * it) or COMMIT_SIBLINGS commands wait. Otherwise the batch keeps filling
 * until the commit in flight ends, and the syncer that made it durable
 * takes the next batch itself, without waking anybody. An fdatasync costs
 * ~0.1 ms of CPU here whatever it carries, so under load one commit at a
 * time, carrying everything that arrived during the previous one, leaves
 * the most CPU to requests; the overlap keeps a slow sync from stalling
 * everyone behind it. */
#define COMMIT_SIBLINGS 64u
#define COMMIT_STALL_US 1000

struct pending_rec {
    struct br_cmd cmd;
    struct br_outcome out;
    struct br_call *call;         /* the write's call, NULL for workers' commands */
    char currency[BR_CURRENCY_MAX]; /* for a provider_charge it emitted */
    uint32_t fx_start;            /* effects in batch->fx */
    uint32_t fx_count;
};

/* A call waiting for durability: in the FIFO (wait_head) or the free pool. */
struct waiter {
    struct br_call *call;
    uint64_t lsn;         /* answered once durable_lsn >= lsn */
    struct waiter *next;
};

struct batch {
    struct pending_rec *recs;
    uint32_t rec_count;
    struct br_effect *fx;
    uint32_t fx_count;
    uint64_t end_lsn;   /* lsn of its last record, set when taken for writing */
    int64_t first_us;   /* monotonic time its first record arrived */
    struct batch *next; /* free list, or the written-not-yet-durable FIFO */
};

enum { KICK_IDLE = 1u, KICK_WATCHER = 2u };

struct refund_duty {
    uint64_t payment_id;
    int64_t amount_minor;
};

struct br_embedded {
    struct br_backend base; /* first: the routes see only this */
    struct br_embedded_config cfg;
    char journal_path[PATH_MAX_BYTES];

    pthread_mutex_t mu; /* engine, active batch, free batches, lsns, waiters, bus */
    pthread_cond_t flush_cv; /* idle syncers: the active batch got its first command, stop */
    pthread_cond_t stall_cv; /* a syncer watching the commit in flight: enough waiting, stop */
    pthread_cond_t room_cv;  /* appliers: the active batch has room again */
    pthread_cond_t tick_cv;  /* ticker: bus has work / stop */
    struct br_engine engine;
    void *engine_mem;
    size_t engine_bytes;     /* reserved for the engine (calloc'd: resident as used) */
    bool engine_from_journal; /* its config came from an existing journal's header */
    uint64_t full[BR_TABLE_COUNT];          /* BR_E_FULL answers by table, since start */
    uint64_t full_unlogged[BR_TABLE_COUNT]; /* of those, not yet in a log line */
    int64_t full_logged_us[BR_TABLE_COUNT]; /* monotonic time of the table's last line */
    int64_t last_now_ms;     /* the clock never goes backwards */
    int64_t clock_base_ms;   /* now_ms = clock_base_ms + monotonic ms; see now_locked */
    const char *clock_offset_path; /* BR_TEST_CLOCK_OFFSET_FILE, NULL normally */
    int64_t clock_offset_ms;
    int64_t clock_offset_read_ms;
    struct batch pool[BR_EMB_BATCHES_MAX];
    unsigned batches;        /* of pool in use: syncers + 2 */
    struct batch *active;    /* the batch being filled */
    struct batch *free_list; /* batches neither filling nor in flight */
    uint64_t appended_lsn;
    uint64_t durable_lsn;
    unsigned idle_syncers;   /* waiting on flush_cv */
    unsigned watchers;       /* waiting on stall_cv */
    unsigned room_waiters;   /* appliers waiting on room_cv */
    unsigned kick;           /* KICK_* bits: condition variables to signal once mu is released */
    int64_t last_take_us;    /* monotonic time the newest commit was taken */
    struct waiter *wait_head; /* FIFO by lsn */
    struct waiter *wait_tail;
    struct waiter *waiter_pool; /* BR_EMB_WAITERS_MAX nodes */
    struct waiter *waiter_free; /* free nodes; under mu */
    unsigned waiter_room_waiters; /* calls waiting on waiter_cv for a free node */
    pthread_cond_t waiter_cv;   /* a node was freed */
    struct refund_duty bus[BR_EMB_BUS_MAX];
    uint32_t bus_head;
    uint32_t bus_count;
    bool stop_ticker;
    bool stop_flusher;
    bool abandoned;           /* stopping with the journal unwritable: nothing more is written; under write_mu */
    bool running;
    uint64_t commits;
    uint64_t sync_us;        /* sum over commits of the fdatasync's duration */
    uint64_t gather_us;      /* sum over commits of the first command's wait before the write */
    uint64_t replayed;
    /* Storage (see "storage faults" below); under mu. */
    bool storage_down;        /* new writes are refused with STORAGE_UNAVAILABLE */
    bool write_stuck;         /* a batch's write is failing: what follows it waits */
    int storage_err;          /* why: BR_E_STORAGE_UNAVAILABLE or BR_E_IO */
    int64_t storage_retry_at; /* monotonic ms of the next zero-fill attempt */
    int64_t storage_backoff_ms;
    uint64_t storage_failures; /* failed journal writes and zero-fills */

    /* The commit pipeline (see "syncers" below). */
    pthread_mutex_t write_mu;   /* one syncer at a time takes a batch and writes it */
    pthread_mutex_t disp_mu;    /* one syncer at a time carries out durable batches */
    struct br_journal_writer *journal; /* under write_mu (after open) */
    int sync_fd;                /* the journal, for fdatasync; -1 = none */
    long long zero_low;         /* zeros kept ahead at least (ZERO_LOW_BYTES) */
    struct batch *written_head; /* written, not yet known durable; under disp_mu */
    struct batch *written_tail;
    uint64_t synced_lsn;        /* everything up to here is on disk; under disp_mu */
    unsigned syncing;           /* fdatasyncs in flight; under mu */
    pthread_t syncers[BR_EMB_SYNCERS_MAX];
    unsigned syncers_started;
    pthread_t ticker;
    _Atomic uint64_t users_known; /* engine.user_count, readable without mu (user_exists) */
};

/* The wall clock, ms. Tests only: the environment variable
 * BR_TEST_CLOCK_OFFSET_FILE names a file holding a signed offset in ms that
 * is added to it (read at most every 20 ms), so a test can step the clock
 * this process sees back or forward without touching the system's. Under mu
 * (the cached offset is x's). */
static int64_t wall_ms(struct br_embedded *x)
{
    int64_t now = br_clock_wall_ms();
    if (x->clock_offset_path == NULL) {
        return now;
    }
    int64_t m = br_clock_mono_ms();
    if (m - x->clock_offset_read_ms >= 20) {
        x->clock_offset_read_ms = m;
        FILE *f = fopen(x->clock_offset_path, "r");
        long long off = 0;
        if (f != NULL) {
            if (fscanf(f, "%lld", &off) == 1) {
                x->clock_offset_ms = off;
            }
            fclose(f);
        }
    }
    return now + x->clock_offset_ms;
}

static struct br_embedded *self(struct br_backend *b)
{
    return (struct br_embedded *)(void *)b;
}

/* The command clock, under mu: the monotonic clock plus a base taken from
 * the wall clock. A wall clock that steps forward moves the base forward
 * (sales open by the calendar); one that steps back is ignored, so time
 * keeps flowing at the monotonic rate instead of standing still until the
 * wall clock catches up (which clamping alone would do). Never behind the
 * last command (the replayed journal included). */
static int64_t now_locked(struct br_embedded *x)
{
    int64_t mono = br_clock_mono_ms();
    int64_t wall = wall_ms(x);
    if (wall - mono > x->clock_base_ms) {
        x->clock_base_ms = wall - mono;
    }
    int64_t now = x->clock_base_ms + mono;
    if (now < x->last_now_ms) {
        now = x->last_now_ms;
    }
    BR_ASSERT(now >= x->last_now_ms);
    x->last_now_ms = now;
    return now;
}

/* ---- applying and waiting ---- */

#define FULL_LOG_PERIOD_US (60LL * 1000 * 1000) /* one line per table per minute */

/* Counts a command refused for room (BR_E_FULL) by the table that was
 * full, and logs it at most once a minute per table. Under mu. */
static void note_full_locked(struct br_embedded *x, const struct br_cmd *cmd)
{
    enum br_table t = br_engine_full_table(&x->engine, cmd);
    BR_ASSERT(t < BR_TABLE_COUNT);
    x->full[t]++;
    x->full_unlogged[t]++;
    int64_t now = br_clock_mono_us();
    if (x->full_logged_us[t] != 0 && now - x->full_logged_us[t] < FULL_LOG_PERIOD_US) {
        return;
    }
    uint32_t used = 0, max = 0;
    br_engine_table_usage(&x->engine, t, &used, &max);
    br_logf(x->cfg.log, BR_LOG_WARN, "capacity exhausted",
            "\"table\":\"%s\",\"rows\":%u,\"rows_max\":%u,\"command\":\"%s\","
            "\"refused\":%" PRIu64 ",\"refused_total\":%" PRIu64 ",\"hint\":\"the journal fixes "
            "the table sizes: a larger sale needs a new data dir (--people, README)\"",
            br_table_name(t), used, max, br_cmd_name(cmd->type), x->full_unlogged[t], x->full[t]);
    x->full_logged_us[t] = now;
    x->full_unlogged[t] = 0;
}

/* Applies cmd (its now_ms set here) and queues it for the next commit.
 * Under mu; may wait for room. Returns the pending record (valid under mu). */
static struct pending_rec *apply_locked(struct br_embedded *x, struct br_cmd *cmd,
                                        struct br_call *call, struct br_outcome *out)
{
    struct batch *b = x->active;
    /* Waits while the syncers are a whole batch behind (back-pressure). */
    while (b->rec_count >= BR_EMB_BATCH_MAX ||
           b->fx_count + BR_EFFECTS_MAX > BR_EMB_EFFECTS_MAX) {
        BR_ASSERT(x->running); /* only a syncer swaps the active batch */
        x->room_waiters++;
        pthread_cond_wait(&x->room_cv, &x->mu);
        x->room_waiters--;
        b = x->active;
    }
    cmd->now_ms = now_locked(x);
    br_engine_apply(&x->engine, cmd, out);
    if (out->err == BR_E_FULL) {
        note_full_locked(x, cmd);
    }
    uint32_t n = 0;
    const struct br_effect *fx = br_engine_effects(&x->engine, &n);
    BR_ASSERT(n <= BR_EFFECTS_MAX);
    struct pending_rec *r = &b->recs[b->rec_count++];
    r->cmd = *cmd;
    r->out = *out;
    r->call = call;
    r->currency[0] = '\0';
    r->fx_start = b->fx_count;
    r->fx_count = n;
    memcpy(&b->fx[b->fx_count], fx, sizeof *fx * n);
    b->fx_count += n;
    x->appended_lsn++;
    if (b->rec_count == 1) {
        b->first_us = br_clock_mono_us();
    }
    /* With no commit in flight, an idle syncer has work now (the first
     * command); with one in flight, a syncer watching it sees enough
     * waiting. Only then is one woken, and only once mu is released
     * (unlock_kick): woken under the lock, it would at once sleep again on
     * the lock. Otherwise the syncer busy with the commit in flight takes
     * this batch when it is done: nobody needs waking. */
    if (b->rec_count == 1 && x->syncing == 0 && x->idle_syncers > 0) {
        x->kick |= KICK_IDLE;
    }
    if (b->rec_count == COMMIT_SIBLINGS && x->watchers > 0) {
        x->kick |= KICK_WATCHER;
    }
    return r;
}

static void signal_kicks(struct br_embedded *x, unsigned kick)
{
    if (kick & KICK_IDLE) {
        pthread_cond_signal(&x->flush_cv);
    }
    if (kick & KICK_WATCHER) {
        pthread_cond_signal(&x->stall_cv);
    }
}

/* Releases mu, then wakes the syncer apply_locked asked for, if any. */
static void unlock_kick(struct br_embedded *x)
{
    unsigned kick = x->kick;
    x->kick = 0;
    pthread_mutex_unlock(&x->mu);
    signal_kicks(x, kick);
}

/* A write while the journal cannot be written: refused before it is
 * applied (so there is nothing to undo), answered at once. Under mu;
 * returns true after unlocking and answering. */
static bool refuse_locked(struct br_embedded *x, struct br_call *call)
{
    if (!x->storage_down) {
        return false;
    }
    call->err = BR_E_STORAGE_UNAVAILABLE;
    unlock_kick(x);
    call->done(call);
    return true;
}

/* For the ticker, which keeps mu: wakes the syncer now. */
static void kick_locked(struct br_embedded *x)
{
    unsigned kick = x->kick;
    x->kick = 0;
    signal_kicks(x, kick);
}

/* Finishes a call under mu: done now if everything it saw is durable,
 * otherwise when a syncer gets there. Returns the call to complete
 * after unlocking, or NULL. */
static struct br_call *finish_locked(struct br_embedded *x, struct br_call *call, bool wrote)
{
    /* Its own command's lsn (a write) or what it may have seen (a read):
     * nothing was applied since either (mu held). */
    uint64_t lsn = x->appended_lsn;
    if (lsn <= x->durable_lsn) {
        return call;
    }
    if (!wrote && x->write_stuck) {
        /* It may have seen commands that cannot be made durable now: it
         * must not show them, and must not wait for a disk that may stay
         * full. Reads of durable state are answered as usual, and so are
         * reads behind batches that are only being synced. */
        call->err = BR_E_STORAGE_UNAVAILABLE;
        return call;
    }
    /* No free node (more calls waiting than connections: never expected):
     * wait for the syncers to answer some. Bounded by the commit in flight. */
    while (x->waiter_free == NULL) {
        x->waiter_room_waiters++;
        pthread_cond_wait(&x->waiter_cv, &x->mu);
        x->waiter_room_waiters--;
        if (lsn <= x->durable_lsn) {
            return call;
        }
    }
    struct waiter *w = x->waiter_free;
    x->waiter_free = w->next;
    w->call = call;
    w->lsn = lsn;
    w->next = NULL;
    if (x->wait_tail != NULL) {
        BR_ASSERT(x->wait_tail->lsn <= lsn);
        x->wait_tail->next = w;
    } else {
        x->wait_head = w;
    }
    x->wait_tail = w;
    return NULL;
}

/* Returns answered nodes (a chain of at most BR_EMB_WAITERS_MAX, linked by
 * next) to the pool. Takes mu. */
static void waiters_free(struct br_embedded *x, struct waiter *chain)
{
    if (chain == NULL) {
        return;
    }
    pthread_mutex_lock(&x->mu);
    uint32_t n = 0;
    struct waiter *last = chain;
    while (last->next != NULL) {
        BR_ASSERT(n++ < BR_EMB_WAITERS_MAX);
        last = last->next;
    }
    last->next = x->waiter_free;
    x->waiter_free = chain;
    bool wake = x->waiter_room_waiters > 0;
    pthread_mutex_unlock(&x->mu);
    if (wake) {
        pthread_cond_broadcast(&x->waiter_cv);
    }
}

/* Unlocks and completes the call if it is ready. */
static void unlock_and_finish(struct br_embedded *x, struct br_call *call, bool wrote)
{
    struct br_call *now = finish_locked(x, call, wrote);
    unlock_kick(x);
    if (now != NULL) {
        now->done(now);
    }
}

/* ---- copying results out of the engine (under mu) ---- */

static void fill_user(const struct br_user *u, struct br_api_user *out, bool secrets)
{
    memset(out, 0, sizeof *out);
    out->id = u->id;
    out->role = u->role;
    memcpy(out->email, u->email, sizeof out->email);
    memcpy(out->name, u->name, sizeof out->name);
    if (secrets) {
        memcpy(out->password_hash, u->password_hash, sizeof out->password_hash);
        memcpy(out->salt, u->salt, sizeof out->salt);
    }
}

static void fill_event(const struct br_event *ev, struct br_api_event *out)
{
    out->id = ev->id;
    out->owner_id = ev->owner_user_id;
    out->spec = ev->spec;
    memcpy(out->held, ev->zone_held, sizeof out->held);
    memcpy(out->sold, ev->zone_sold, sizeof out->sold);
}

static void fill_booking(const struct br_engine *e, const struct br_hold *h,
                         struct br_api_booking *out)
{
    memset(out, 0, sizeof *out);
    const struct br_event *ev = br_catalog_event(e, h->event_id);
    BR_ASSERT(ev != NULL && h->zone_id >= 1 && h->zone_id <= ev->spec.zone_count);
    out->id = h->id;
    out->event_id = h->event_id;
    out->user_id = h->user_id;
    out->zone_id = h->zone_id;
    out->quantity = h->quantity;
    out->state = h->state;
    out->total_minor = h->amount_minor;
    memcpy(out->currency, ev->spec.zones[h->zone_id - 1].currency, sizeof out->currency);
    out->created_at_ms = h->created_ms;
    out->expires_at_ms = h->deadline_ms;
    out->payment_id = h->payment_id;
}

static void fill_queue(const struct br_embedded *x, const struct br_event *ev, uint8_t status,
                       uint32_t position, uint32_t length, uint64_t pass_id, int64_t deadline_ms,
                       int64_t now_ms, struct br_api_queue *out)
{
    br_api_queue_fill(out, ev->id, &ev->spec, status, position, length, pass_id, deadline_ms,
                      x->cfg.tick_ms, now_ms);
}

static void fill_payment(const struct br_engine *e, const struct br_payment *p,
                         struct br_api_payment *out)
{
    memset(out, 0, sizeof *out);
    out->id = p->id;
    out->booking_id = p->hold_id;
    out->state = p->state;
    out->amount_minor = p->amount_minor;
    const struct br_hold *h = &e->holds[p->hold];
    const struct br_event *ev = br_catalog_event(e, h->event_id);
    BR_ASSERT(ev != NULL);
    memcpy(out->currency, ev->spec.zones[h->zone_id - 1].currency, sizeof out->currency);
}

/* ---- the operations ---- */

static void op_user_register(struct br_backend *b, const char *email, const char *name,
                             const uint8_t hash[BR_PASSWORD_HASH_LEN],
                             const uint8_t salt[BR_SALT_LEN], uint8_t role, struct br_call *call)
{
    struct br_embedded *x = self(b);
    struct br_cmd cmd;
    br_api_cmd_user_register(&cmd, email, name, hash, salt, role);
    struct br_outcome out;
    pthread_mutex_lock(&x->mu);
    if (refuse_locked(x, call)) {
        return;
    }
    apply_locked(x, &cmd, call, &out);
    call->err = out.err;
    if (out.err == BR_OK) {
        fill_user(br_catalog_user(&x->engine, out.id), &call->r.user, false);
        atomic_store(&x->users_known, x->engine.user_count);
    }
    unlock_and_finish(x, call, true);
}

static bool op_user_exists(struct br_backend *b, uint64_t user_id)
{
    struct br_embedded *x = self(b);
    return user_id >= 1 && user_id <= atomic_load_explicit(&x->users_known, memory_order_relaxed);
}

/* Applies a session command (its now_ms set by apply_locked) and copies the
 * session out. Not refused up front while storage is down (as before the
 * split): it waits for durability like any write. */
static void session_cmd(struct br_embedded *x, struct br_cmd *cmd, struct br_call *call)
{
    struct br_outcome out;
    pthread_mutex_lock(&x->mu);
    apply_locked(x, cmd, call, &out);
    call->err = out.err;
    uint8_t role = 0;
    bool issued = cmd->type == BR_CMD_SESSION_OPEN || cmd->type == BR_CMD_SESSION_ROTATE;
    if (out.err == BR_OK && issued) {
        const struct br_user *u = br_catalog_user(&x->engine, out.ref);
        BR_ASSERT(u != NULL);
        role = u->role;
    }
    br_api_session_from_outcome(&call->r.session, cmd, &out, role);
    unlock_and_finish(x, call, true);
}

static void op_session_open(struct br_backend *b, uint64_t user, uint32_t generation,
                            int64_t ttl_ms, struct br_call *call)
{
    struct br_cmd cmd;
    br_api_cmd_session_open(&cmd, user, generation, ttl_ms);
    session_cmd(self(b), &cmd, call);
}

static void op_session_rotate(struct br_backend *b, uint64_t session_id, uint32_t generation,
                              int64_t ttl_ms, struct br_call *call)
{
    struct br_cmd cmd;
    br_api_cmd_session_rotate(&cmd, session_id, generation, ttl_ms);
    session_cmd(self(b), &cmd, call);
}

static void op_session_revoke(struct br_backend *b, uint64_t session_id, uint32_t generation,
                              struct br_call *call)
{
    struct br_cmd cmd;
    br_api_cmd_session_revoke(&cmd, session_id, generation);
    session_cmd(self(b), &cmd, call);
}

static void op_session_revoke_all(struct br_backend *b, uint64_t user, struct br_call *call)
{
    struct br_cmd cmd;
    br_api_cmd_session_revoke_all(&cmd, user);
    session_cmd(self(b), &cmd, call);
}

static void op_user_find(struct br_backend *b, const char *email, struct br_call *call)
{
    struct br_embedded *x = self(b);
    pthread_mutex_lock(&x->mu);
    uint64_t id = br_catalog_user_by_email(&x->engine, email);
    call->err = id == 0 ? BR_E_NOT_FOUND : BR_OK;
    if (id != 0) {
        fill_user(br_catalog_user(&x->engine, id), &call->r.user, true);
    }
    unlock_and_finish(x, call, false);
}

static void op_user_get(struct br_backend *b, uint64_t user_id, struct br_call *call)
{
    struct br_embedded *x = self(b);
    pthread_mutex_lock(&x->mu);
    const struct br_user *u = br_catalog_user(&x->engine, user_id);
    call->err = u == NULL ? BR_E_NOT_FOUND : BR_OK;
    if (u != NULL) {
        fill_user(u, &call->r.user, false);
    }
    unlock_and_finish(x, call, false);
}

static void op_user_role_set(struct br_backend *b, uint64_t actor, uint64_t target, uint8_t role,
                             struct br_call *call)
{
    struct br_embedded *x = self(b);
    struct br_cmd cmd;
    br_api_cmd_user_role_set(&cmd, actor, target, role);
    struct br_outcome out;
    pthread_mutex_lock(&x->mu);
    if (refuse_locked(x, call)) {
        return;
    }
    apply_locked(x, &cmd, call, &out);
    call->err = out.err;
    const struct br_user *u = br_catalog_user(&x->engine, target);
    if (out.err == BR_OK && u != NULL) {
        fill_user(u, &call->r.user, false);
    }
    unlock_and_finish(x, call, true);
}

static void op_event_create(struct br_backend *b, uint64_t actor, const struct br_event_spec *spec,
                            struct br_call *call)
{
    struct br_embedded *x = self(b);
    struct br_cmd cmd;
    br_api_cmd_event_create(&cmd, actor, spec);
    struct br_outcome out;
    pthread_mutex_lock(&x->mu);
    if (refuse_locked(x, call)) {
        return;
    }
    apply_locked(x, &cmd, call, &out);
    call->err = out.err;
    if (out.err == BR_OK) {
        fill_event(br_catalog_event(&x->engine, out.id), &call->r.event);
    }
    unlock_and_finish(x, call, true);
}

static void op_event_list(struct br_backend *b, uint64_t after_id, struct br_call *call)
{
    struct br_embedded *x = self(b);
    pthread_mutex_lock(&x->mu);
    call->list_count = 0;
    /* after_id is the client's, any uint64: 2^64-1 (what ?after_id= reads
     * for an overflowing number) must not wrap around to event 0. */
    uint64_t first = after_id < x->engine.event_count ? after_id + 1 : UINT64_MAX;
    for (uint64_t id = first; id <= x->engine.event_count && call->list_count < call->list_cap;
         id++) {
        const struct br_event *ev = br_catalog_event(&x->engine, id);
        BR_ASSERT(ev != NULL);
        fill_event(ev, &call->events[call->list_count++]);
    }
    call->err = BR_OK;
    unlock_and_finish(x, call, false);
}

static void op_event_get(struct br_backend *b, uint64_t event_id, struct br_call *call)
{
    struct br_embedded *x = self(b);
    pthread_mutex_lock(&x->mu);
    const struct br_event *ev = br_catalog_event(&x->engine, event_id);
    call->err = ev == NULL ? BR_E_NOT_FOUND : BR_OK;
    if (ev != NULL) {
        fill_event(ev, &call->r.event);
    }
    unlock_and_finish(x, call, false);
}

static void op_event_stats(struct br_backend *b, uint64_t event_id, struct br_call *call)
{
    struct br_embedded *x = self(b);
    pthread_mutex_lock(&x->mu);
    struct br_event_stats s;
    call->err = br_engine_event_stats(&x->engine, event_id, &s);
    if (call->err == BR_OK) {
        const struct br_event *ev = br_catalog_event(&x->engine, event_id);
        struct br_api_stats *o = &call->r.stats;
        memset(o, 0, sizeof *o);
        o->event_id = event_id;
        o->owner_id = ev->owner_user_id;
        o->queue_length = s.queue_length;
        o->admitted = s.admitted;
        o->active_passes = s.active_passes;
        o->zone_count = ev->spec.zone_count;
        for (uint32_t z = 0; z < ev->spec.zone_count; z++) {
            o->capacity[z] = ev->spec.zones[z].capacity;
            o->held[z] = ev->zone_held[z];
            o->sold[z] = ev->zone_sold[z];
        }
        memcpy(o->bookings, s.bookings, sizeof o->bookings);
    }
    unlock_and_finish(x, call, false);
}

static void op_queue_join(struct br_backend *b, uint64_t user, uint64_t event_id,
                          struct br_call *call)
{
    struct br_embedded *x = self(b);
    struct br_cmd cmd;
    br_api_cmd_queue_join(&cmd, user, event_id);
    struct br_outcome out;
    pthread_mutex_lock(&x->mu);
    if (refuse_locked(x, call)) {
        return;
    }
    apply_locked(x, &cmd, call, &out);
    call->err = out.err;
    if (out.err == BR_OK) {
        const struct br_event *ev = br_catalog_event(&x->engine, event_id);
        br_api_queue_from_join(&call->r.queue, &cmd, &out, &ev->spec, x->cfg.tick_ms);
    }
    unlock_and_finish(x, call, true);
}

static void op_queue_leave(struct br_backend *b, uint64_t user, uint64_t event_id,
                           struct br_call *call)
{
    struct br_embedded *x = self(b);
    struct br_cmd cmd;
    br_api_cmd_queue_leave(&cmd, user, event_id);
    struct br_outcome out;
    pthread_mutex_lock(&x->mu);
    if (refuse_locked(x, call)) {
        return;
    }
    apply_locked(x, &cmd, call, &out);
    call->err = out.err;
    unlock_and_finish(x, call, true);
}

/* The view of (event, user) under mu, at now_ms. */
static int view_locked(struct br_embedded *x, uint64_t user, uint64_t event_id, int64_t now_ms,
                       struct br_api_queue *out)
{
    struct br_queue_view v;
    int rc = br_queue_view(&x->engine, event_id, user, &v);
    if (rc == BR_OK) {
        fill_queue(x, br_catalog_event(&x->engine, event_id), v.status, v.position,
                   v.queue_length, v.pass_id, v.pass_deadline_ms, now_ms, out);
    }
    return rc;
}

static void op_queue_position(struct br_backend *b, uint64_t user, uint64_t event_id,
                              struct br_call *call)
{
    struct br_embedded *x = self(b);
    pthread_mutex_lock(&x->mu);
    call->err = view_locked(x, user, event_id, now_locked(x), &call->r.queue);
    unlock_and_finish(x, call, false);
}

static int op_queue_peek(struct br_backend *b, uint64_t user, uint64_t event_id,
                         struct br_api_queue *out)
{
    struct br_embedded *x = self(b);
    pthread_mutex_lock(&x->mu);
    int rc = view_locked(x, user, event_id, now_locked(x), out);
    pthread_mutex_unlock(&x->mu);
    return rc;
}

/* One lock and one clock reading for the n views (the hub's refresh). */
static int op_queue_positions(struct br_backend *b, uint64_t event_id, const uint64_t *users,
                              uint32_t n, struct br_api_queue *out, int *rc)
{
    BR_ASSERT(n <= BR_API_POSITIONS_MAX);
    struct br_embedded *x = self(b);
    pthread_mutex_lock(&x->mu);
    int64_t now = now_locked(x);
    for (uint32_t i = 0; i < n; i++) {
        rc[i] = view_locked(x, users[i], event_id, now, &out[i]);
    }
    pthread_mutex_unlock(&x->mu);
    return BR_OK;
}

static void op_reserve(struct br_backend *b, uint64_t user, uint64_t event_id, uint32_t zone_id,
                       uint32_t quantity, uint64_t pass_id, uint64_t idem_key,
                       struct br_call *call)
{
    struct br_embedded *x = self(b);
    struct br_cmd cmd;
    br_api_cmd_reserve(&cmd, user, event_id, zone_id, quantity, pass_id, idem_key);
    struct br_outcome out;
    pthread_mutex_lock(&x->mu);
    if (refuse_locked(x, call)) {
        return;
    }
    apply_locked(x, &cmd, call, &out);
    call->err = out.err;
    /* From the stored hold, not the outcome: an idempotent repeat answers
     * with the first hold's creation time and payment (api_cmd.h). */
    const struct br_hold *h = out.id != 0 ? br_inventory_hold(&x->engine, out.id) : NULL;
    if (h != NULL) {
        fill_booking(&x->engine, h, &call->r.booking);
    }
    unlock_and_finish(x, call, true);
}

static void op_booking_list(struct br_backend *b, uint64_t user, struct br_call *call)
{
    struct br_embedded *x = self(b);
    uint64_t ids[BR_API_LIST_MAX];
    uint32_t cap = call->list_cap < BR_API_LIST_MAX ? call->list_cap : BR_API_LIST_MAX;
    pthread_mutex_lock(&x->mu);
    uint32_t n = br_engine_user_holds(&x->engine, user, ids, cap);
    for (uint32_t i = 0; i < n; i++) {
        fill_booking(&x->engine, br_inventory_hold(&x->engine, ids[i]), &call->bookings[i]);
    }
    call->list_count = n;
    call->err = BR_OK;
    unlock_and_finish(x, call, false);
}

static void op_booking_get(struct br_backend *b, uint64_t booking_id, struct br_call *call)
{
    struct br_embedded *x = self(b);
    pthread_mutex_lock(&x->mu);
    const struct br_hold *h = br_inventory_hold(&x->engine, booking_id);
    call->err = h == NULL ? BR_E_NOT_FOUND : BR_OK;
    if (h != NULL) {
        fill_booking(&x->engine, h, &call->r.booking);
    }
    unlock_and_finish(x, call, false);
}

static void op_booking_cancel(struct br_backend *b, uint64_t user, uint64_t booking_id,
                              struct br_call *call)
{
    struct br_embedded *x = self(b);
    struct br_cmd cmd;
    br_api_cmd_booking_cancel(&cmd, user, booking_id);
    struct br_outcome out;
    pthread_mutex_lock(&x->mu);
    if (refuse_locked(x, call)) {
        return;
    }
    apply_locked(x, &cmd, call, &out);
    call->err = out.err;
    const struct br_hold *h = br_inventory_hold(&x->engine, booking_id);
    if (h != NULL && h->user_id == user) {
        fill_booking(&x->engine, h, &call->r.booking);
    }
    unlock_and_finish(x, call, true);
}

static void op_payment_create(struct br_backend *b, uint64_t user, uint64_t booking_id,
                              struct br_call *call)
{
    struct br_embedded *x = self(b);
    struct br_cmd cmd;
    br_api_cmd_payment_create(&cmd, user, booking_id);
    struct br_outcome out;
    pthread_mutex_lock(&x->mu);
    if (refuse_locked(x, call)) {
        return;
    }
    struct pending_rec *r = apply_locked(x, &cmd, call, &out);
    call->err = out.err;
    const struct br_payment *p = out.err == BR_OK ? br_saga_payment(&x->engine, out.id) : NULL;
    if (p != NULL) {
        fill_payment(&x->engine, p, &call->r.payment);
        memcpy(r->currency, call->r.payment.currency, sizeof r->currency);
    }
    unlock_and_finish(x, call, true);
}

static void op_payment_event(struct br_backend *b, const char *provider_event_id,
                             uint64_t payment_id, bool succeeded, struct br_call *call)
{
    struct br_embedded *x = self(b);
    struct br_cmd cmd;
    br_api_cmd_payment_event(&cmd, provider_event_id, payment_id, succeeded);
    struct br_outcome out;
    pthread_mutex_lock(&x->mu);
    if (refuse_locked(x, call)) {
        return;
    }
    apply_locked(x, &cmd, call, &out);
    call->err = out.err;
    const struct br_payment *p = br_saga_payment(&x->engine, payment_id);
    if (p != NULL) {
        fill_payment(&x->engine, p, &call->r.payment);
    }
    unlock_and_finish(x, call, true);
}

static bool op_ready(struct br_backend *b, const char **why)
{
    struct br_embedded *x = self(b);
    pthread_mutex_lock(&x->mu);
    bool r = x->running && !x->stop_flusher && !x->storage_down;
    const char *reason = !x->running || x->stop_flusher ? "the backend is not running"
                         : x->storage_err == BR_E_STORAGE_UNAVAILABLE
                             ? "the journal cannot be written: no space left on the data disk"
                             : "the journal cannot be written: i/o error on the data disk";
    pthread_mutex_unlock(&x->mu);
    if (why != NULL) {
        *why = r ? "" : reason;
    }
    return r;
}

static void op_gauges(struct br_backend *b, struct br_api_gauges *g)
{
    struct br_embedded *x = self(b);
    memset(g, 0, sizeof *g);
    pthread_mutex_lock(&x->mu);
    for (uint32_t i = 0; i < x->engine.event_count && i < BR_API_LIST_MAX; i++) {
        const struct br_event *ev = &x->engine.events[i];
        g->events[i].id = ev->id;
        g->events[i].zone_count = ev->spec.zone_count;
        g->events[i].queue_length = ev->q_waiting;
        g->events[i].admitted = ev->passes_issued;
        g->events[i].active_passes = ev->passes_active;
        for (uint32_t z = 0; z < ev->spec.zone_count; z++) {
            g->events[i].capacity[z] = ev->spec.zones[z].capacity;
            g->events[i].held[z] = ev->zone_held[z];
            g->events[i].sold[z] = ev->zone_sold[z];
        }
        g->event_count = i + 1;
    }
    g->commands = x->engine.applied;
    g->engine_bytes = x->engine_bytes;
    for (unsigned t = 0; t < BR_TABLE_COUNT; t++) {
        br_engine_table_usage(&x->engine, t, &g->table_rows[t], &g->table_rows_max[t]);
        g->capacity_exhausted[t] = x->full[t];
    }
    pthread_mutex_unlock(&x->mu);
}

/* The journal's families (backend.h: ops->metrics), in the order and with
 * the text /metrics has always had. */
static void op_metrics(struct br_backend *b, struct br_metrics_sink *out)
{
    struct br_embedded *x = self(b);
    pthread_mutex_lock(&x->mu);
    uint64_t commits = x->commits;
    uint64_t sync_us = x->sync_us;
    uint64_t gather_us = x->gather_us;
    bool down = x->storage_down;
    uint64_t failures = x->storage_failures;
    pthread_mutex_unlock(&x->mu);
    br_metrics_printf(
        out,
        "# HELP br_journal_commits_total Group commits (fdatasyncs) of the journal.\n"
        "# TYPE br_journal_commits_total counter\nbr_journal_commits_total %" PRIu64 "\n"
        "# HELP br_journal_sync_seconds_total Time spent in the commits' fdatasyncs.\n"
        "# TYPE br_journal_sync_seconds_total counter\nbr_journal_sync_seconds_total %.6f\n"
        "# HELP br_journal_gather_seconds_total Time each commit's first command waited "
        "before the write.\n"
        "# TYPE br_journal_gather_seconds_total counter\nbr_journal_gather_seconds_total %.6f\n"
        "# HELP br_journal_replayed_commands Commands replayed from the journal at start.\n"
        "# TYPE br_journal_replayed_commands gauge\nbr_journal_replayed_commands %" PRIu64 "\n",
        commits, (double)sync_us / 1e6, (double)gather_us / 1e6, x->replayed);
    br_metrics_printf(
        out,
        "# HELP br_journal_storage_unavailable 1 while writes are refused because the "
        "journal cannot be written (full or failing data disk).\n"
        "# TYPE br_journal_storage_unavailable gauge\nbr_journal_storage_unavailable %d\n"
        "# HELP br_journal_storage_failures_total Failed journal writes and zero-fills.\n"
        "# TYPE br_journal_storage_failures_total counter\n"
        "br_journal_storage_failures_total %" PRIu64 "\n",
        down ? 1 : 0, failures);
}

static const struct br_backend_ops EMBEDDED_OPS = {
    .name = "embedded",
    .user_register = op_user_register,
    .user_find = op_user_find,
    .user_get = op_user_get,
    .user_role_set = op_user_role_set,
    .user_exists = op_user_exists,
    .session_open = op_session_open,
    .session_rotate = op_session_rotate,
    .session_revoke = op_session_revoke,
    .session_revoke_all = op_session_revoke_all,
    .event_create = op_event_create,
    .event_list = op_event_list,
    .event_get = op_event_get,
    .event_stats = op_event_stats,
    .queue_join = op_queue_join,
    .queue_leave = op_queue_leave,
    .queue_position = op_queue_position,
    .queue_peek = op_queue_peek,
    .queue_positions = op_queue_positions,
    .reserve = op_reserve,
    .booking_list = op_booking_list,
    .booking_get = op_booking_get,
    .booking_cancel = op_booking_cancel,
    .payment_create = op_payment_create,
    .payment_event = op_payment_event,
    .ready = op_ready,
    .gauges = op_gauges,
    .metrics = op_metrics,
};

/* ---- the syncers: group commit, then effects, then answers ----
 *
 * cfg.syncers threads run the same loop:
 *
 *   wait until the active batch may be taken     (may_take_locked, COMMIT_STALL_US)
 *   take the active batch and write(2) it        (write_mu: one at a time, in lsn order)
 *   fdatasync the journal                         (no lock: several may be in flight)
 *   every written batch now known durable:        (disp_mu: one at a time, in lsn order)
 *     carry out its effects, answer its calls
 *   go round again: the next batch filled while this one was syncing
 *
 * A sync covers every byte written before it started, whichever thread
 * wrote it, so when any sync returns, every batch written before it is
 * durable: durable batches are dispatched from the FIFO in order, exactly
 * once. Normally one commit is in flight and its syncer takes the next
 * batch itself (leader/follower: nobody is woken, the batch holds whatever
 * arrived during the previous sync); the other syncers sleep, one of them
 * watching the clock, and start an overlapping sync only when the one in
 * flight stalls: on the virtual disks measured here, two to four
 * fdatasyncs in flight complete two to four times as many commits per
 * second as one at a time when the disk, not the CPU, is what limits.
 * Request threads wake a syncer only when none is busy (the first command
 * of a batch with no commit in flight). The journal writer itself only
 * writes (BR_JOURNAL_NO_SYNC); the syncs go through a descriptor of our
 * own. Records land on zeros written and synced ahead of them
 * (ZERO_AHEAD_BYTES), so a sync writes data only: no size, no block map.
 * Written zeros rather than fallocate: an fallocated range is "unwritten"
 * extents that a sync must still convert, and a torn write over real zeros
 * is recognisable at the next open (journal_file.h).
 */

/* An fdatasync failed. The records were handed to the kernel, which may
 * have dropped the dirty pages and reports the error only once: what is on
 * disk is unknown, so the process stops (no answer for these commands went
 * out) and the restart replays what the disk really holds. A full disk does
 * not come here: records overwrite zeros already synced (journal_file.h), so
 * only a zero-fill or a write can meet ENOSPC, and those are retried. */
static void journal_fail(struct br_embedded *x, const char *what)
{
    br_logf(x->cfg.log, BR_LOG_ERROR, "journal sync failed: stopping",
            "\"op\":\"%s\",\"path\":\"%s\"", what, x->journal_path);
    abort();
}

/* ---- storage faults ----
 *
 * storage_down and write_stuck are written with write_mu and mu held, so
 * either lock is enough to read them. It is set when the journal cannot be zero-filled
 * ahead or written (a full disk, an i/o error): from then on new writes are
 * refused before they are applied (refuse_locked), reads that would show a
 * command stuck behind a failing write are refused (finish_locked), the
 * ticker applies nothing. A batch whose write failed is retried with backoff by its
 * syncer, which keeps write_mu, so nothing overtakes it; its callers wait,
 * since their commands are applied and can be answered only once durable.
 * The ticker retries the zero-fill; the first that succeeds (or a batch
 * write followed by one) clears storage_down. */

static void storage_fail_locked(struct br_embedded *x, int rc, const char *what)
{
    x->storage_failures++;
    if (!x->storage_down) {
        x->storage_down = true;
        x->storage_err = rc;
        x->storage_backoff_ms = STORAGE_RETRY_MIN_MS;
        br_logf(x->cfg.log, BR_LOG_ERROR, "journal storage unavailable: refusing writes",
                "\"op\":\"%s\",\"err\":\"%s\",\"path\":\"%s\"", what, br_err_name(rc),
                x->journal_path);
    } else if (x->storage_backoff_ms < STORAGE_RETRY_MAX_MS) {
        x->storage_backoff_ms *= 2;
        if (x->storage_backoff_ms > STORAGE_RETRY_MAX_MS) {
            x->storage_backoff_ms = STORAGE_RETRY_MAX_MS;
        }
    }
    x->storage_retry_at = br_clock_mono_ms() + x->storage_backoff_ms;
}

static void storage_ok_locked(struct br_embedded *x)
{
    if (x->storage_down) {
        x->storage_down = false;
        br_logf(x->cfg.log, BR_LOG_WARN, "journal storage available again: accepting writes",
                "\"path\":\"%s\",\"failures\":%" PRIu64, x->journal_path,
                x->storage_failures);
    }
}

/* Keeps ZERO_LOW_BYTES of zeros ahead of the journal. write_mu held, not mu.
 * Takes mu only when the state changes. */
static void keep_room(struct br_embedded *x)
{
    int rc = BR_OK;
    if (x->sync_fd >= 0 && br_journal_writer_room(x->journal) < x->zero_low) {
        rc = br_journal_writer_extend(x->journal, x->zero_low);
    }
    if (rc != BR_OK || x->storage_down) {
        pthread_mutex_lock(&x->mu);
        if (rc != BR_OK) {
            storage_fail_locked(x, rc, "zero-fill");
        } else {
            storage_ok_locked(x);
        }
        pthread_mutex_unlock(&x->mu);
    }
}

static void sleep_ms(int64_t ms)
{
    struct timespec d = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&d, NULL);
}

/* Writes batch b, write_mu held. While the journal refuses, retries with
 * backoff (see "storage faults"). Returns false when the server is
 * stopping meanwhile: b is given up, and so is every later batch (they
 * follow commands that will never be on disk). Bounded by the stop. */
static bool write_batch(struct br_embedded *x, struct batch *b)
{
    if (x->abandoned) {
        return false;
    }
    uint32_t i = 0;
    for (;;) {
        int rc = BR_OK;
        while (i < b->rec_count &&
               (rc = br_journal_writer_append(x->journal, &b->recs[i].cmd, &b->recs[i].out)) ==
                   BR_OK) {
            i++;
        }
        if (rc == BR_OK) {
            rc = br_journal_writer_flush(x->journal);
        }
        if (rc == BR_OK) {
            if (x->write_stuck) {
                pthread_mutex_lock(&x->mu);
                x->write_stuck = false;
                pthread_mutex_unlock(&x->mu);
            }
            return true;
        }
        pthread_mutex_lock(&x->mu);
        x->write_stuck = true;
        storage_fail_locked(x, rc, "write");
        bool stop = x->stop_flusher;
        int64_t wait_ms = x->storage_backoff_ms;
        pthread_mutex_unlock(&x->mu);
        if (stop) {
            br_journal_writer_discard(x->journal);
            x->abandoned = true;
            return false;
        }
        sleep_ms(wait_ms);
    }
}

/* A batch given up at shutdown (write_batch): its effects are dropped and
 * every call that waits on one of its commands is answered
 * UNKNOWN_OUTCOME (the process ends without them on disk, but part of the
 * write may have landed). Takes mu. */
static void abandon_batch(struct br_embedded *x, struct batch *b)
{
    uint64_t first = b->end_lsn - b->rec_count + 1;
    struct waiter *gone = NULL;
    pthread_mutex_lock(&x->mu);
    struct waiter **pp = &x->wait_head;
    struct waiter *prev = NULL;
    /* Bounded by the waiters: each round moves past or removes one. */
    while (*pp != NULL) {
        struct waiter *c = *pp;
        if (c->lsn >= first && c->lsn <= b->end_lsn) {
            *pp = c->next;
            c->next = gone;
            gone = c;
            continue;
        }
        prev = c;
        pp = &c->next;
    }
    x->wait_tail = prev;
    x->syncing--;
    b->rec_count = 0;
    b->fx_count = 0;
    b->next = x->free_list;
    x->free_list = b;
    pthread_mutex_unlock(&x->mu);
    for (struct waiter *w = gone; w != NULL; w = w->next) { /* bounded by the pool */
        w->call->err = BR_E_UNKNOWN_OUTCOME;
        w->call->done(w->call);
    }
    waiters_free(x, gone);
}

static void bus_push(struct br_embedded *x, uint64_t payment_id, int64_t amount_minor)
{
    pthread_mutex_lock(&x->mu);
    if (x->bus_count < BR_EMB_BUS_MAX) {
        struct refund_duty *d = &x->bus[(x->bus_head + x->bus_count) % BR_EMB_BUS_MAX];
        d->payment_id = payment_id;
        d->amount_minor = amount_minor;
        x->bus_count++;
        pthread_cond_signal(&x->tick_cv);
    } /* else: saga_step re-emits the refund at its next attempt time */
    pthread_mutex_unlock(&x->mu);
}

/* Carries out the effects of one durable record. Flusher thread, no lock. */
static void carry_out(struct br_embedded *x, const struct batch *b, const struct pending_rec *r)
{
    const struct br_backend_listener *l = &x->cfg.listener;
    for (uint32_t i = 0; i < r->fx_count; i++) {
        const struct br_effect *fx = &b->fx[r->fx_start + i];
        switch (fx->kind) {
        case BR_FX_PASS_ISSUED:
            if (l->pass_issued != NULL) {
                l->pass_issued(l->ctx, fx->event_id, fx->user_id, fx->id, fx->deadline_ms);
            }
            break;
        case BR_FX_PROVIDER_CHARGE: {
            char id[BR_PROVIDER_ID_MAX];
            char secret[BR_PROVIDER_SECRET_MAX];
            int rc = br_provider_create_intent(&x->cfg.provider, fx->id, fx->ref, fx->amount_minor,
                                               r->currency[0] ? r->currency : "EUR", id, secret);
            if (r->call != NULL) {
                if (rc == BR_OK) {
                    snprintf(r->call->r.payment.provider_payment_id, BR_API_PROVIDER_ID_MAX, "%s",
                             id);
                    snprintf(r->call->r.payment.client_secret, BR_API_SECRET_MAX, "%s", secret);
                } else {
                    r->call->err = BR_E_UNAVAILABLE; /* the payment stays pending: retry */
                }
            }
            break;
        }
        case BR_FX_PROVIDER_REFUND:
            bus_push(x, fx->id, fx->amount_minor);
            break;
        default:
            break; /* confirmed / expired / notify: visible through the booking */
        }
    }
    if (l->queue_changed != NULL &&
        (r->cmd.type == BR_CMD_QUEUE_JOIN || r->cmd.type == BR_CMD_QUEUE_LEAVE ||
         (r->cmd.type == BR_CMD_ADMIT && (r->out.count > 0 || r->fx_count > 0)))) {
        l->queue_changed(l->ctx, r->cmd.u.queue_join.event_id);
    }
}


/* Whether a syncer may take the active batch now (see COMMIT_STALL_US).
 * Under mu. */
static bool may_take_locked(const struct br_embedded *x, int64_t now_us)
{
    const struct batch *a = x->active;
    return a->rec_count > 0 &&
           (x->syncing == 0 || x->stop_flusher || a->rec_count >= COMMIT_SIBLINGS ||
            now_us - x->last_take_us >= COMMIT_STALL_US);
}

/* Waits on cv under mu until `until_us` (monotonic) or a signal. */
static void timed_wait_locked(struct br_embedded *x, pthread_cond_t *cv, int64_t until_us)
{
    struct timespec until;
    until.tv_sec = (time_t)(until_us / 1000000);
    until.tv_nsec = (long)(until_us % 1000000) * 1000L;
    pthread_cond_timedwait(cv, &x->mu, &until);
}

/* Step 1 of a commit: waits until the active batch may be taken, then takes
 * it, in lsn order: write_mu is held from the take to the end of the write.
 * Lock order: write_mu before mu; mu is never held while blocking on
 * write_mu (only trylock), so a syncer that waits never holds write_mu and
 * never keeps the others from writing. Returns the batch, write_mu held, or
 * NULL once the server stops and nothing is left (no lock held). */
static struct batch *take_batch(struct br_embedded *x)
{
    bool have_write = false;
    pthread_mutex_lock(&x->mu);
    for (;;) {
        int64_t now = br_clock_mono_us();
        if (x->active->rec_count == 0 && x->stop_flusher) {
            break;
        }
        if (!may_take_locked(x, now)) {
            if (have_write) {
                pthread_mutex_unlock(&x->write_mu);
                have_write = false;
            }
            if (x->syncing > 0) {
                /* Watch the commit in flight: take over if it stalls.
                 * Its syncer takes the next batch when it is done, so
                 * this wakes at most once per COMMIT_STALL_US. */
                x->watchers++;
                timed_wait_locked(x, &x->stall_cv, x->last_take_us + COMMIT_STALL_US);
                x->watchers--;
            } else {
                x->idle_syncers++;
                pthread_cond_wait(&x->flush_cv, &x->mu);
                x->idle_syncers--;
            }
            continue;
        }
        if (have_write || pthread_mutex_trylock(&x->write_mu) == 0) {
            have_write = true;
            break;
        }
        /* Another syncer is writing its batch (tens of microseconds):
         * wait for it without mu, then look again. */
        pthread_mutex_unlock(&x->mu);
        pthread_mutex_lock(&x->write_mu);
        have_write = true;
        pthread_mutex_lock(&x->mu);
    }
    if (x->active->rec_count == 0) {
        BR_ASSERT(x->stop_flusher);
        pthread_mutex_unlock(&x->mu);
        if (have_write) {
            pthread_mutex_unlock(&x->write_mu);
        }
        /* The other syncers see the stop too. */
        pthread_cond_broadcast(&x->flush_cv);
        pthread_cond_broadcast(&x->stall_cv);
        return NULL;
    }
    BR_ASSERT(have_write);
    /* Batches in use: the active one and at most one in flight per
     * syncer, this one's already dispatched: a spare is always left. */
    BR_ASSERT(x->free_list != NULL);
    struct batch *b = x->active;
    x->active = x->free_list;
    x->free_list = x->free_list->next;
    b->end_lsn = x->appended_lsn;
    b->next = NULL;
    x->syncing++;
    int64_t t_take = br_clock_mono_us();
    x->last_take_us = t_take;
    x->gather_us += (uint64_t)(t_take - b->first_us);
    bool room = x->room_waiters > 0;
    pthread_mutex_unlock(&x->mu);
    if (room) {
        pthread_cond_broadcast(&x->room_cv);
    }
    return b;
}

/* Puts a written batch on the list of those waiting for a sync. */
static void queue_written(struct br_embedded *x, struct batch *b)
{
    pthread_mutex_lock(&x->disp_mu);
    if (x->written_tail != NULL) {
        x->written_tail->next = b;
    } else {
        x->written_head = b;
    }
    x->written_tail = b;
    pthread_mutex_unlock(&x->disp_mu);
}

/* Step 3 of a commit: once a sync covered lsn `written`, carries out the
 * effects of every batch it (or an earlier one) covered, frees those
 * batches and answers every call that is now durable, in lsn order. */
static void dispatch_synced(struct br_embedded *x, uint64_t written, int64_t sync_took_us)
{
    pthread_mutex_lock(&x->disp_mu);
    if (written > x->synced_lsn) {
        x->synced_lsn = written;
    }
    struct batch *done_batches = NULL;
    struct batch **dtail = &done_batches;
    unsigned ndone = 0;
    while (x->written_head != NULL && x->written_head->end_lsn <= x->synced_lsn) {
        struct batch *d = x->written_head;
        BR_ASSERT(ndone++ < BR_EMB_BATCHES_MAX); /* the list is made of pool batches */
        x->written_head = d->next;
        if (x->written_head == NULL) {
            x->written_tail = NULL;
        }
        for (uint32_t i = 0; i < d->rec_count; i++) {
            carry_out(x, d, &d->recs[i]);
        }
        d->next = NULL;
        *dtail = d;
        dtail = &d->next;
    }
    uint64_t durable = x->synced_lsn;
    pthread_mutex_lock(&x->mu);
    x->commits++;
    x->syncing--;
    x->sync_us += (uint64_t)sync_took_us;
    if (durable > x->durable_lsn) {
        x->durable_lsn = durable;
    }
    struct waiter *ready = NULL;
    struct waiter **tail = &ready;
    while (x->wait_head != NULL && x->wait_head->lsn <= x->durable_lsn) {
        struct waiter *c = x->wait_head;
        x->wait_head = c->next;
        *tail = c;
        tail = &c->next;
    }
    *tail = NULL;
    if (x->wait_head == NULL) {
        x->wait_tail = NULL;
    }
    while (done_batches != NULL) { /* at most ndone */
        struct batch *d = done_batches;
        done_batches = d->next;
        d->rec_count = 0;
        d->fx_count = 0;
        d->next = x->free_list;
        x->free_list = d;
    }
    /* Nobody is woken: this thread goes on to take the next batch
     * itself, and a watcher notices the newer commit when it looks. */
    pthread_mutex_unlock(&x->mu);
    pthread_mutex_unlock(&x->disp_mu);
    for (struct waiter *w = ready; w != NULL; w = w->next) { /* bounded by the pool */
        w->call->done(w->call);
    }
    waiters_free(x, ready);
}

/* A syncer: take, write, sync, dispatch, until the server stops. */
static void *syncer_main(void *arg)
{
    struct br_embedded *x = arg;
    for (;;) {
        struct batch *b = take_batch(x);
        if (b == NULL) {
            break;
        }
        if (!write_batch(x, b)) {
            pthread_mutex_unlock(&x->write_mu);
            abandon_batch(x, b);
            continue;
        }
        uint64_t written = b->end_lsn;
        queue_written(x, b);
        keep_room(x);
        pthread_mutex_unlock(&x->write_mu);

        /* 2. Make it durable; other syncers may be writing or syncing now. */
        int64_t t_sync = br_clock_mono_us();
        if (x->sync_fd >= 0 && fdatasync(x->sync_fd) != 0) {
            journal_fail(x, "fdatasync");
        }
        dispatch_synced(x, written, br_clock_mono_us() - t_sync);
    }
    return NULL;
}

/* ---- the ticker: admitter, sweeper, saga worker ---- */

static void tick_locked(struct br_embedded *x)
{
    int64_t now = now_locked(x);
    struct br_cmd cmd;
    struct br_outcome out;
    for (uint32_t i = 0; i < x->engine.event_count; i++) {
        const struct br_event *ev = &x->engine.events[i];
        unsigned due = br_engine_due(&x->engine, ev->id, now);
        if (due & BR_DUE_ADMIT) {
            br_api_cmd_admit(&cmd, ev->id);
            apply_locked(x, &cmd, NULL, &out);
        }
        if (due & BR_DUE_SWEEP) {
            br_api_cmd_sweep(&cmd, ev->id);
            apply_locked(x, &cmd, NULL, &out);
        }
    }
    if (br_engine_due(&x->engine, 0, now) & BR_DUE_SAGA) {
        br_api_cmd_saga_step(&cmd);
        apply_locked(x, &cmd, NULL, &out);
    }
}

/* While storage is down: one zero-fill attempt when the backoff allows
 * (see "storage faults"). Under mu, released meanwhile. write_mu is only
 * tried: a syncer holding it is retrying a write, which decides too. */
static void storage_retry_locked(struct br_embedded *x)
{
    if (br_clock_mono_ms() < x->storage_retry_at) {
        return;
    }
    pthread_mutex_unlock(&x->mu);
    if (pthread_mutex_trylock(&x->write_mu) == 0) {
        int rc = x->abandoned ? BR_E_IO : br_journal_writer_extend(x->journal, x->zero_low);
        pthread_mutex_lock(&x->mu);
        if (rc == BR_OK) {
            storage_ok_locked(x);
        } else {
            storage_fail_locked(x, rc, "zero-fill");
        }
        pthread_mutex_unlock(&x->mu);
        pthread_mutex_unlock(&x->write_mu);
    }
    pthread_mutex_lock(&x->mu);
}

/* Carries out the refunds on the saga bus: each without the lock, its
 * result applied as a command. Under mu. */
static void drain_bus_locked(struct br_embedded *x)
{
    for (uint32_t n = 0; n < BR_EMB_BUS_MAX && x->bus_count > 0 && !x->storage_down; n++) {
        struct refund_duty d = x->bus[x->bus_head];
        x->bus_head = (x->bus_head + 1) % BR_EMB_BUS_MAX;
        x->bus_count--;
        pthread_mutex_unlock(&x->mu);
        int rc = br_provider_refund(&x->cfg.provider, d.payment_id, NULL, d.amount_minor);
        pthread_mutex_lock(&x->mu);
        struct br_cmd cmd;
        struct br_outcome out;
        br_api_cmd_refund_result(&cmd, d.payment_id, rc == BR_OK);
        apply_locked(x, &cmd, NULL, &out);
        kick_locked(x);
    }
}

/* Ticks on the monotonic clock (tick_cv waits on CLOCK_MONOTONIC): a wall
 * clock stepped back does not stall admission, sweeps or the saga. While
 * storage is down nothing is applied: the ticks retry the storage instead
 * (the refunds wait on the bus; saga_step re-emits any that overflow it). */
static void *ticker_main(void *arg)
{
    struct br_embedded *x = arg;
    int64_t next_tick = br_clock_mono_ms();
    pthread_mutex_lock(&x->mu);
    while (!x->stop_ticker) {
        int64_t now = br_clock_mono_ms();
        if (now >= next_tick) {
            if (x->storage_down) {
                storage_retry_locked(x);
            } else {
                tick_locked(x);
                kick_locked(x);
            }
            next_tick = now + x->cfg.tick_ms;
        }
        drain_bus_locked(x);
        if (x->stop_ticker) {
            break;
        }
        if (next_tick > br_clock_mono_ms() && (x->bus_count == 0 || x->storage_down)) {
            timed_wait_locked(x, &x->tick_cv, next_tick * 1000);
        }
    }
    pthread_mutex_unlock(&x->mu);
    return NULL;
}

/* ---- open, replay, start, close ---- */

/* Commits what is pending, then stops every syncer. */
static void stop_syncers(struct br_embedded *x)
{
    pthread_mutex_lock(&x->mu);
    x->stop_flusher = true;
    pthread_cond_broadcast(&x->flush_cv);
    pthread_cond_broadcast(&x->stall_cv);
    pthread_mutex_unlock(&x->mu);
    for (unsigned i = 0; i < x->syncers_started; i++) {
        pthread_join(x->syncers[i], NULL);
    }
    x->syncers_started = 0;
}

static int ensure_dir(const char *path, const struct br_log *log)
{
    if (mkdir(path, 0700) == 0 || errno == EEXIST) {
        struct stat st;
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
            return BR_OK;
        }
    }
    br_logf(log, BR_LOG_ERROR, "cannot create the data dir", "\"path\":\"%s\",\"errno\":\"%s\"",
            path, strerror(errno));
    return BR_E_IO;
}

/* The journal module's lines, through the server's logger. */
static void journal_log(void *ctx, enum br_journal_log_level level, const char *msg,
                        const char *fields)
{
    enum br_log_level l = level == BR_JLOG_ERROR  ? BR_LOG_ERROR
                          : level == BR_JLOG_WARN ? BR_LOG_WARN
                                                  : BR_LOG_INFO;
    br_logf(ctx, l, msg, "%s", fields);
}

static bool outcome_same(const struct br_outcome *a, const struct br_outcome *b)
{
    return br_outcome_hash(a) == br_outcome_hash(b);
}

/* Replays the journal into the engine. A command whose outcome differs from
 * the one recorded means this engine is not the one that wrote the journal
 * (or the journal lies): the start is refused (BR_E_DIVERGED), since
 * serving would answer from a state no client was ever shown. */
static int replay(struct br_embedded *x)
{
    struct br_journal_reader *r = NULL;
    struct br_config cfg;
    int rc = br_journal_reader_open(&r, x->journal_path, &cfg);
    if (rc != BR_OK) {
        return rc;
    }
    struct br_journal_skip skips[BR_JOURNAL_SKIPS_MAX];
    int read = br_journal_skips_read(x->journal_path, skips, BR_JOURNAL_SKIPS_MAX);
    if (read < 0) {
        br_logf(x->cfg.log, BR_LOG_ERROR, "cannot use the journal's id skips",
                "\"path\":\"%s.skip\",\"why\":\"unreadable, malformed or over %u lines\"",
                x->journal_path, BR_JOURNAL_SKIPS_MAX);
        br_journal_reader_close(r);
        return BR_E_CORRUPT;
    }
    unsigned nskips = (unsigned)read;
    unsigned next_skip = 0;
    struct br_cmd cmd;
    struct br_outcome rec;
    struct br_outcome out;
    bool has = false;
    long long offset = 0;
    for (;;) {
        rc = br_journal_reader_next(r, &cmd, &rec, &has, &offset);
        for (; next_skip < nskips && skips[next_skip].offset <= offset; next_skip++) {
            br_catalog_skip_ids(&x->engine, skips[next_skip].records);
        }
        if (rc != BR_OK) {
            break;
        }
        br_engine_apply(&x->engine, &cmd, &out);
        x->replayed++;
        if (cmd.now_ms > x->last_now_ms) {
            x->last_now_ms = cmd.now_ms;
        }
        if (has && !outcome_same(&rec, &out)) {
            br_logf(x->cfg.log, BR_LOG_ERROR, "journal replay diverged: refusing to start",
                    "\"path\":\"%s\",\"offset\":%lld,\"command\":\"%s\",\"recorded\":\"%s\","
                    "\"replayed\":\"%s\",\"recorded_id\":%" PRIu64 ",\"replayed_id\":%" PRIu64,
                    x->journal_path, offset, br_cmd_name(cmd.type), br_err_name(rec.err),
                    br_err_name(out.err), rec.id, out.id);
            br_journal_reader_close(r);
            return BR_E_DIVERGED;
        }
    }
    br_journal_reader_close(r);
    if (rc != 1) {
        br_logf(x->cfg.log, BR_LOG_ERROR, "journal unreadable after open",
                "\"offset\":%lld,\"err\":\"%s\"", offset, br_err_name(rc));
        return rc;
    }
    return BR_OK;
}

/* The journal's header decides the engine's config (its capacities and the
 * shuffle seed); a new journal gets x->cfg.engine with a fresh seed. The
 * block comes from calloc, already zero, and the engine is laid out over it
 * without touching it (br_engine_init_zeroed): it becomes resident memory
 * only as rows are used. BR_OK, BR_E_INVALID (bad config) or BR_E_IO. */
static int engine_open(struct br_embedded *x, struct br_config *ecfg)
{
    struct br_journal_reader *probe = NULL;
    struct stat st;
    x->engine_from_journal = stat(x->journal_path, &st) == 0 &&
                             br_journal_reader_open(&probe, x->journal_path, ecfg) == BR_OK;
    if (x->engine_from_journal) {
        br_journal_reader_close(probe);
    } else {
        *ecfg = x->cfg.engine;
        uint8_t seed[8];
        if (br_auth_random(seed, sizeof seed) == BR_OK) {
            memcpy(&ecfg->seed, seed, sizeof seed);
        }
    }
    ecfg->email_hash_bits = x->cfg.email_hash_bits; /* not in the header: lookups only */
    size_t size = br_engine_memory_size(ecfg);
    if (size == 0) {
        br_logf(x->cfg.log, BR_LOG_ERROR, "the engine's config is invalid",
                "\"from_journal\":%s", x->engine_from_journal ? "true" : "false");
        return BR_E_INVALID;
    }
    size = (size + 15u) & ~(size_t)15u;
    x->engine_mem = calloc(1, size); /* 16-byte aligned (glibc); init checks */
    if (x->engine_mem == NULL ||
        br_engine_init_zeroed(&x->engine, ecfg, x->engine_mem, size) != BR_OK) {
        br_logf(x->cfg.log, BR_LOG_ERROR, "cannot reserve the engine's memory",
                "\"bytes\":%zu,\"users_max\":%u", size, ecfg->users_max);
        free(x->engine_mem);
        x->engine_mem = NULL;
        return BR_E_IO;
    }
    x->engine_bytes = size;
    return BR_OK;
}

void br_embedded_engine_info(const struct br_embedded *x, struct br_config *cfg, size_t *bytes,
                             bool *from_journal)
{
    *cfg = x->engine.cfg;
    *bytes = x->engine_bytes;
    *from_journal = x->engine_from_journal;
}

/* Opens the journal (a torn tail cut, damage refused), replays it, opens
 * the descriptor the syncers fsync and zero-fills ahead. */
static int open_journal(struct br_embedded *x, const struct br_config *ecfg)
{
    /* Tests only: BR_TEST_JOURNAL_ZERO_KIB makes the zeros ahead small (the
     * disk test fills a tmpfs), BR_TEST_JOURNAL_LOW_KIB sets when they are
     * extended (0: only when a commit does not fit: the stuck-write path). */
    const char *test_zero = getenv("BR_TEST_JOURNAL_ZERO_KIB");
    uint32_t zero = ZERO_AHEAD_BYTES;
    if (test_zero != NULL && atoi(test_zero) > 0) {
        zero = (uint32_t)atoi(test_zero) * 1024u;
        zero = (zero + 4095u) & ~4095u;
    }
    x->zero_low = test_zero != NULL ? (long long)zero / 2 : ZERO_LOW_BYTES;
    const char *test_low = getenv("BR_TEST_JOURNAL_LOW_KIB"); /* tests: 0 = extend only when full */
    if (test_low != NULL && atoi(test_low) >= 0) {
        x->zero_low = (long long)atoi(test_low) * 1024;
    }
    /* The writer only writes; the syncers sync (see above). */
    struct br_journal_writer_opts o = {.sync = BR_JOURNAL_NO_SYNC,
                                       .zero_ahead_bytes = x->cfg.fsync ? zero : 0,
                                       .log = {journal_log, (void *)x->cfg.log}};
    struct br_journal_scan scan;
    int rc = br_journal_writer_open_opts(&x->journal, x->journal_path, ecfg, &o, &scan);
    if (rc == BR_OK) {
        rc = replay(x);
    }
    atomic_init(&x->users_known, x->engine.user_count);
    if (rc == BR_OK && x->cfg.fsync) {
        x->sync_fd = open(x->journal_path, O_RDWR | O_CLOEXEC);
        if (x->sync_fd < 0) {
            br_logf(x->cfg.log, BR_LOG_ERROR, "cannot open the journal to sync it",
                    "\"path\":\"%s\",\"errno\":\"%s\"", x->journal_path, strerror(errno));
            rc = BR_E_IO;
        }
    }
    if (rc != BR_OK) {
        br_logf(x->cfg.log, BR_LOG_ERROR, "cannot open the journal",
                "\"path\":\"%s\",\"err\":\"%s\"", x->journal_path, br_err_name(rc));
        return rc;
    }
    if (x->sync_fd >= 0) {
        rc = br_journal_writer_extend(x->journal, x->zero_low);
        if (rc != BR_OK) {
            storage_fail_locked(x, rc, "zero-fill"); /* single-threaded yet: serve reads only */
        }
    }
    return BR_OK;
}

/* Batches, locks and condition variables. */
static void init_sync_objects(struct br_embedded *x)
{
    x->batches = x->cfg.syncers + 2u;
    for (unsigned i = 0; i < x->batches; i++) {
        struct batch *b = &x->pool[i];
        b->recs = calloc(BR_EMB_BATCH_MAX, sizeof *b->recs);
        b->fx = calloc(BR_EMB_EFFECTS_MAX, sizeof *b->fx);
        BR_ASSERT(b->recs != NULL && b->fx != NULL);
        b->next = i > 0 ? x->free_list : NULL;
        if (i == 0) {
            x->active = b;
        } else {
            x->free_list = b;
        }
    }
    /* mu is taken by every request for about a microsecond: a waiter that
     * spins a little finds it free far more cheaply than one that sleeps
     * on the futex and must be woken (a context switch each way). */
    pthread_mutexattr_t adaptive;
    pthread_mutexattr_init(&adaptive);
    pthread_mutexattr_settype(&adaptive, PTHREAD_MUTEX_ADAPTIVE_NP);
    pthread_mutex_init(&x->mu, &adaptive);
    pthread_mutexattr_destroy(&adaptive);
    pthread_mutex_init(&x->write_mu, NULL);
    pthread_mutex_init(&x->disp_mu, NULL);
    /* Every timed wait is on CLOCK_MONOTONIC (timed_wait_locked). */
    pthread_condattr_t mono;
    pthread_condattr_init(&mono);
    pthread_condattr_setclock(&mono, CLOCK_MONOTONIC);
    pthread_cond_init(&x->flush_cv, &mono);
    pthread_cond_init(&x->stall_cv, &mono);
    pthread_cond_init(&x->tick_cv, &mono);
    pthread_condattr_destroy(&mono);
    pthread_cond_init(&x->room_cv, NULL);
    pthread_cond_init(&x->waiter_cv, NULL);
    x->waiter_pool = calloc(BR_EMB_WAITERS_MAX, sizeof *x->waiter_pool);
    BR_ASSERT(x->waiter_pool != NULL);
    for (uint32_t i = 0; i < BR_EMB_WAITERS_MAX; i++) {
        x->waiter_pool[i].next = i + 1 < BR_EMB_WAITERS_MAX ? &x->waiter_pool[i + 1] : NULL;
    }
    x->waiter_free = &x->waiter_pool[0];
}

int br_embedded_open(struct br_embedded **out, const struct br_embedded_config *cfg)
{
    *out = NULL;
    BR_ASSERT(cfg->provider.ops != NULL && cfg->tick_ms > 0);
    BR_ASSERT(cfg->syncers >= 1 && cfg->syncers <= BR_EMB_SYNCERS_MAX);
    int rc = ensure_dir(cfg->data_dir, cfg->log);
    if (rc != BR_OK) {
        return rc;
    }
    struct br_embedded *x = calloc(1, sizeof *x);
    if (x == NULL) {
        return BR_E_IO;
    }
    x->base.ops = &EMBEDDED_OPS;
    x->cfg = *cfg;
    x->sync_fd = -1;
    x->clock_offset_path = getenv("BR_TEST_CLOCK_OFFSET_FILE");
    snprintf(x->journal_path, sizeof x->journal_path, "%s/journal", cfg->data_dir);
    struct br_config ecfg;
    rc = engine_open(x, &ecfg);
    if (rc == BR_OK) {
        rc = open_journal(x, &ecfg);
    }
    if (rc != BR_OK) {
        br_journal_writer_close(x->journal);
        if (x->sync_fd >= 0) {
            close(x->sync_fd);
        }
        free(x->engine_mem);
        free(x);
        return rc;
    }
    /* The command clock starts at the wall clock, or after the journal's
     * last command if that is later (now_locked). */
    int64_t wall = wall_ms(x);
    x->clock_base_ms = (wall > x->last_now_ms ? wall : x->last_now_ms) - br_clock_mono_ms();
    init_sync_objects(x);
    *out = x;
    return BR_OK;
}

void br_embedded_set_listener(struct br_embedded *x, struct br_backend_listener listener)
{
    BR_ASSERT(!x->running);
    x->cfg.listener = listener;
}

int br_embedded_start(struct br_embedded *x)
{
    BR_ASSERT(!x->running);
    x->running = true;
    for (unsigned i = 0; i < x->cfg.syncers; i++) {
        if (pthread_create(&x->syncers[i], NULL, syncer_main, x) != 0) {
            break;
        }
        x->syncers_started++;
    }
    if (x->syncers_started == x->cfg.syncers &&
        pthread_create(&x->ticker, NULL, ticker_main, x) == 0) {
        return BR_OK;
    }
    stop_syncers(x);
    x->running = false;
    return BR_E_IO;
}

struct br_backend *br_embedded_backend(struct br_embedded *x)
{
    return &x->base;
}

uint64_t br_embedded_replayed(const struct br_embedded *x)
{
    return x->replayed;
}

void br_embedded_close(struct br_embedded *x)
{
    if (x == NULL) {
        return;
    }
    if (x->running) {
        pthread_mutex_lock(&x->mu);
        x->stop_ticker = true;
        pthread_cond_signal(&x->tick_cv);
        pthread_mutex_unlock(&x->mu);
        pthread_join(x->ticker, NULL);
        stop_syncers(x); /* commits what is pending first */
        BR_ASSERT(x->wait_head == NULL);
    }
    int rc = br_journal_writer_close(x->journal);
    if (rc != BR_OK) {
        br_logf(x->cfg.log, BR_LOG_ERROR, "journal close failed", "\"err\":\"%s\"",
                br_err_name(rc));
    }
    if (x->sync_fd >= 0) {
        if (fdatasync(x->sync_fd) != 0) {
            br_logf(x->cfg.log, BR_LOG_ERROR, "journal sync at close failed",
                    "\"errno\":\"%s\"", strerror(errno));
        }
        close(x->sync_fd);
    }
    for (unsigned i = 0; i < x->batches; i++) {
        free(x->pool[i].recs);
        free(x->pool[i].fx);
    }
    pthread_cond_destroy(&x->tick_cv);
    pthread_cond_destroy(&x->room_cv);
    pthread_cond_destroy(&x->waiter_cv);
    free(x->waiter_pool);
    pthread_cond_destroy(&x->stall_cv);
    pthread_cond_destroy(&x->flush_cv);
    pthread_mutex_destroy(&x->disp_mu);
    pthread_mutex_destroy(&x->write_mu);
    pthread_mutex_destroy(&x->mu);
    free(x->engine_mem);
    free(x);
}
