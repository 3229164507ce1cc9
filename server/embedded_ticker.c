/*
 * embedded_ticker.c -- the embedded backend's workers and its replay (design
 * in backend_embedded.h): one ticker thread runs the admitter and the
 * sweeper of every event, the saga step and the payment check (point 8),
 * and carries out the refunds and status queries on the in-process saga
 * bus (each through the payment provider, its result applied as
 * refund_result, or a decided status as payment_event); at open, the journal is replayed into
 * the engine, every recorded outcome checked.
 */

#include <inttypes.h>
#include <string.h>

#include "adapters/clock.h"
#include "adapters/provider.h"
#include "core/journal.h"
#include "core/panic.h"
#include "server/api_cmd.h"
#include "server/embedded_internal.h"
#include "server/log.h"

void br_emb_bus_push(struct br_embedded *x, uint64_t payment_id, int64_t amount_minor)
{
    br_emb_bus_push_kind(x, BR_FX_PROVIDER_REFUND, payment_id, amount_minor);
}

void br_emb_bus_push_kind(struct br_embedded *x, uint8_t kind, uint64_t payment_id,
                          int64_t amount_minor)
{
    pthread_mutex_lock(&x->mu);
    if (x->bus_count < BR_EMB_BUS_MAX) {
        struct refund_duty *d = &x->bus[(x->bus_head + x->bus_count) % BR_EMB_BUS_MAX];
        d->kind = kind;
        d->payment_id = payment_id;
        d->amount_minor = amount_minor;
        x->bus_count++;
        pthread_cond_signal(&x->tick_cv);
    } /* else: saga_step / payment_check re-emit it at its next attempt time */
    pthread_mutex_unlock(&x->mu);
}

/* ---- the ticker: admitter, sweeper, saga worker ---- */

static void tick_locked(struct br_embedded *x)
{
    int64_t now = br_emb_now_locked(x);
    struct br_cmd cmd;
    for (uint32_t i = 0; i < x->engine.event_count; i++) {
        const struct br_event *ev = &x->engine.events[i];
        unsigned due = br_engine_due(&x->engine, ev->id, now);
        if (due & BR_DUE_ADMIT) {
            br_api_cmd_admit(&cmd, ev->id);
            br_emb_apply_locked(x, &cmd, NULL);
        }
        if (due & BR_DUE_SWEEP) {
            br_api_cmd_sweep(&cmd, ev->id);
            br_emb_apply_locked(x, &cmd, NULL);
        }
    }
    unsigned due = br_engine_due(&x->engine, 0, now);
    if (due & BR_DUE_SAGA) {
        br_api_cmd_saga_step(&cmd);
        br_emb_apply_locked(x, &cmd, NULL);
    }
    if (due & BR_DUE_CHECK) {
        br_api_cmd_payment_check(&cmd); /* point 8: payments no webhook decided */
        br_emb_apply_locked(x, &cmd, NULL);
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
            br_emb_storage_ok_locked(x);
        } else {
            br_emb_storage_fail_locked(x, rc, "zero-fill");
        }
        pthread_mutex_unlock(&x->mu);
        pthread_mutex_unlock(&x->write_mu);
    }
    pthread_mutex_lock(&x->mu);
}

/* A status query (provider_query, or provider_void: cancel first unless
 * paid), without the lock; a decided answer becomes the payment_event its
 * fact key names ("q:<payment>:..."), into cmd. false: nothing to apply
 * (still open, or the provider failed: the next check is scheduled). */
static bool query_provider(struct br_embedded *x, const struct refund_duty *d, struct br_cmd *cmd)
{
    const struct br_provider *pv = &x->cfg.provider;
    if (pv->ops == NULL || pv->ops->query == NULL) {
        return false;
    }
    struct br_provider_answer a;
    int rc = br_provider_query(pv, d->payment_id, NULL, d->kind == BR_FX_PROVIDER_VOID, &a);
    if (rc != BR_OK) {
        br_logf(x->cfg.log, BR_LOG_WARN, "payment status query failed",
                "\"payment\":%" PRIu64 ",\"void\":%s,\"err\":\"%s\"", d->payment_id,
                d->kind == BR_FX_PROVIDER_VOID ? "true" : "false", br_err_name(rc));
        return false;
    }
    if (a.status == BR_PROVIDER_OPEN || a.fact_key[0] == '\0') {
        return false;
    }
    br_api_cmd_payment_event(cmd, a.fact_key, d->payment_id, a.status == BR_PROVIDER_SUCCEEDED);
    return true;
}

/* Carries out the duties on the saga bus: each without the lock, its
 * result applied as a command (refund_result, or a status query's
 * payment_event). Under mu. */
static void drain_bus_locked(struct br_embedded *x)
{
    for (uint32_t n = 0; n < BR_EMB_BUS_MAX && x->bus_count > 0 && !x->storage_down; n++) {
        struct refund_duty d = x->bus[x->bus_head];
        x->bus_head = (x->bus_head + 1) % BR_EMB_BUS_MAX;
        x->bus_count--;
        pthread_mutex_unlock(&x->mu);
        struct br_cmd cmd;
        bool apply = true;
        if (d.kind == BR_FX_PROVIDER_REFUND) {
            int rc = br_provider_refund(&x->cfg.provider, d.payment_id, NULL, d.amount_minor);
            br_api_cmd_refund_result(&cmd, d.payment_id, rc == BR_OK);
        } else {
            apply = query_provider(x, &d, &cmd);
        }
        pthread_mutex_lock(&x->mu);
        if (apply) {
            br_emb_apply_locked(x, &cmd, NULL);
            br_emb_kick_locked(x);
        }
    }
}

/* Ticks on the monotonic clock (tick_cv waits on CLOCK_MONOTONIC): a wall
 * clock stepped back does not stall admission, sweeps or the saga. While
 * storage is down nothing is applied: the ticks retry the storage instead
 * (the refunds wait on the bus; saga_step re-emits any that overflow it). */
void *br_emb_ticker_main(void *arg)
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
                br_emb_kick_locked(x);
            }
            next_tick = now + x->cfg.tick_ms;
        }
        drain_bus_locked(x);
        if (x->stop_ticker) {
            break;
        }
        if (next_tick > br_clock_mono_ms() && (x->bus_count == 0 || x->storage_down)) {
            br_emb_timed_wait_locked(x, &x->tick_cv, next_tick * 1000);
        }
    }
    pthread_mutex_unlock(&x->mu);
    return NULL;
}

static bool outcome_same(const struct br_outcome *a, const struct br_outcome *b)
{
    return br_outcome_hash(a) == br_outcome_hash(b);
}

/* Replays the journal into the engine. A command whose outcome differs from
 * the one recorded means this engine is not the one that wrote the journal
 * (or the journal lies): the start is refused (BR_E_DIVERGED), since
 * serving would answer from a state no client was ever shown. */
int br_emb_replay(struct br_embedded *x)
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
