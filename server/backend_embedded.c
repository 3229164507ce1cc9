/*
 * backend_embedded.c -- the embedded deployment (design in
 * backend_embedded.h; the files it is made of in embedded_internal.h):
 * opening (the engine laid out, the journal opened and replayed), starting
 * and stopping the threads, closing; and the command clock.
 */
#define _GNU_SOURCE /* PTHREAD_MUTEX_ADAPTIVE_NP */

#include "server/backend_embedded.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "adapters/auth.h"
#include "adapters/clock.h"
#include "core/journal.h"
#include "core/panic.h"
#include "server/embedded_internal.h"
#include "server/log.h"

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

/* The command clock, under mu: the monotonic clock plus a base taken from
 * the wall clock. A wall clock that steps forward moves the base forward
 * (sales open by the calendar); one that steps back is ignored, so time
 * keeps flowing at the monotonic rate instead of standing still until the
 * wall clock catches up (which clamping alone would do). Never behind the
 * last command (the replayed journal included). */
int64_t br_emb_now_locked(struct br_embedded *x)
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
        rc = br_emb_replay(x);
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
            /* single-threaded yet: serve reads only */
            br_emb_storage_fail_locked(x, rc, "zero-fill");
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
    /* Every timed wait is on CLOCK_MONOTONIC (br_emb_timed_wait_locked). */
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
    x->base.ops = &br_emb_ops;
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
     * last command if that is later (br_emb_now_locked). */
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
        if (pthread_create(&x->syncers[i], NULL, br_emb_syncer_main, x) != 0) {
            break;
        }
        pthread_setname_np(x->syncers[i], "br-sync"); /* for top -H and perf */
        x->syncers_started++;
    }
    if (x->syncers_started == x->cfg.syncers &&
        pthread_create(&x->ticker, NULL, br_emb_ticker_main, x) == 0) {
        pthread_setname_np(x->ticker, "br-ticker");
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
