/*
 * embedded_commit.c -- the embedded backend's group-commit pipeline (design
 * in backend_embedded.h): a command is applied under mu and appended to the
 * active batch; syncer threads write batches to the journal, fdatasync it,
 * carry out the effects of what became durable and answer the calls that
 * waited for it.
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
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "adapters/clock.h"
#include "adapters/provider.h"
#include "core/panic.h"
#include "server/embedded_internal.h"
#include "server/log.h"

/* carry_out copies the provider's intent id and secret into the call. */
_Static_assert(BR_API_PROVIDER_ID_MAX == BR_PROVIDER_ID_MAX, "intent id sizes differ");
_Static_assert(BR_API_SECRET_MAX == BR_PROVIDER_SECRET_MAX, "client secret sizes differ");

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
 * Under mu; may wait for room (before applying). Returns the pending record,
 * its outcome in ->out: valid while mu stays held. */
struct pending_rec *br_emb_apply_locked(struct br_embedded *x, struct br_cmd *cmd,
                                        struct br_call *call)
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
    cmd->now_ms = br_emb_now_locked(x);
    struct pending_rec *r = &b->recs[b->rec_count++];
    br_engine_apply(&x->engine, cmd, &r->out);
    if (r->out.err == BR_E_FULL) {
        note_full_locked(x, cmd);
    }
    uint32_t n = 0;
    const struct br_effect *fx = br_engine_effects(&x->engine, &n);
    BR_ASSERT(n <= BR_EFFECTS_MAX);
    r->cmd = *cmd;
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
     * (br_emb_unlock_kick): woken under the lock, it would at once sleep again on
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

/* Releases mu, then wakes the syncer br_emb_apply_locked asked for, if any. */
void br_emb_unlock_kick(struct br_embedded *x)
{
    unsigned kick = x->kick;
    x->kick = 0;
    pthread_mutex_unlock(&x->mu);
    signal_kicks(x, kick);
}

/* A write while the journal cannot be written: refused before it is
 * applied (so there is nothing to undo), answered at once. Under mu;
 * returns true after unlocking and answering. */
bool br_emb_refuse_locked(struct br_embedded *x, struct br_call *call)
{
    if (!x->storage_down) {
        return false;
    }
    call->err = BR_E_STORAGE_UNAVAILABLE;
    br_emb_unlock_kick(x);
    call->done(call);
    return true;
}

/* For the ticker, which keeps mu: wakes the syncer now. */
void br_emb_kick_locked(struct br_embedded *x)
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
void br_emb_unlock_and_finish(struct br_embedded *x, struct br_call *call, bool wrote)
{
    struct br_call *now = finish_locked(x, call, wrote);
    br_emb_unlock_kick(x);
    if (now != NULL) {
        now->done(now);
    }
}

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
 * refused before they are applied (br_emb_refuse_locked), reads that would show a
 * command stuck behind a failing write are refused (finish_locked), the
 * ticker applies nothing. A batch whose write failed is retried with backoff by its
 * syncer, which keeps write_mu, so nothing overtakes it; its callers wait,
 * since their commands are applied and can be answered only once durable.
 * The ticker retries the zero-fill; the first that succeeds (or a batch
 * write followed by one) clears storage_down. */

void br_emb_storage_fail_locked(struct br_embedded *x, int rc, const char *what)
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

void br_emb_storage_ok_locked(struct br_embedded *x)
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
            br_emb_storage_fail_locked(x, rc, "zero-fill");
        } else {
            br_emb_storage_ok_locked(x);
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
        br_emb_storage_fail_locked(x, rc, "write");
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
        case BR_FX_PROVIDER_QUERY:
        case BR_FX_PROVIDER_VOID:
            br_emb_bus_push_kind(x, fx->kind, fx->id, fx->amount_minor);
            break;
        case BR_FX_QUEUE_STATE: /* issue 13: the gate changed: one broadcast */
            if (l->queue_state != NULL) {
                l->queue_state(l->ctx, fx->event_id, (uint8_t)fx->id, (uint8_t)fx->ref);
            }
            break;
        default:
            /* confirmed / expired / notify: visible through the booking;
             * place_lapsed: through the user's view (queue_changed below) */
            break;
        }
    }
    if (l->queue_changed != NULL &&
        (r->cmd.type == BR_CMD_QUEUE_JOIN || r->cmd.type == BR_CMD_QUEUE_LEAVE ||
         (r->cmd.type == BR_CMD_QUEUE_MODE_SET && r->out.err == BR_OK) ||
         (r->cmd.type == BR_CMD_ADMIT && (r->out.count > 0 || r->fx_count > 0)))) {
        l->queue_changed(l->ctx, r->cmd.type == BR_CMD_QUEUE_MODE_SET
                                     ? r->cmd.u.queue_mode_set.event_id
                                     : r->cmd.u.queue_join.event_id);
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
void br_emb_timed_wait_locked(struct br_embedded *x, pthread_cond_t *cv, int64_t until_us)
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
                br_emb_timed_wait_locked(x, &x->stall_cv, x->last_take_us + COMMIT_STALL_US);
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
void *br_emb_syncer_main(void *arg)
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
