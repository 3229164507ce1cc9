/*
 * embedded_internal.h -- private to the embedded backend (backend_embedded.h):
 * its state and the functions its files share. Not for anyone else: the
 * server sees struct br_backend and backend_embedded.h only.
 *
 *   backend_embedded.c      open (journal replayed), start, close; the clock
 *   embedded_commit.c       applying a command, waiting calls, the syncers
 *                           (group commit), storage faults, carrying out effects
 *   embedded_ticker.c       the ticker (admitter, sweeper, saga), the refund
 *                           bus, the journal's replay at open
 *   backend_embedded_ops.c  the operations of struct br_backend_ops
 *
 * Locks (one order everywhere): write_mu, then mu; disp_mu, then mu. mu
 * guards the engine, the active batch, the lsns, the waiting calls and the
 * bus; see embedded_commit.c for the syncers' locks. Functions named
 * *_locked are called with mu held.
 */
#ifndef BR_EMBEDDED_INTERNAL_H
#define BR_EMBEDDED_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "adapters/journal_file.h"
#include "core/engine.h"
#include "server/backend_embedded.h"

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

/* A duty on the saga bus: a refund (BR_FX_PROVIDER_REFUND) or a status
 * query (BR_FX_PROVIDER_QUERY / BR_FX_PROVIDER_VOID, point 8). */
struct refund_duty {
    uint8_t kind; /* enum br_effect_kind */
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
    int64_t clock_base_ms;   /* now_ms = clock_base_ms + monotonic ms; see br_emb_now_locked */
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

/* ---- backend_embedded.c ---- */

/* The command clock, under mu: never behind the last command. */
int64_t br_emb_now_locked(struct br_embedded *x);

/* ---- embedded_commit.c ---- */

/* Applies cmd (its now_ms set here) and queues it for the next commit.
 * Under mu; may wait for room (before applying). Returns the pending record,
 * its outcome in ->out: valid while mu stays held. */
struct pending_rec *br_emb_apply_locked(struct br_embedded *x, struct br_cmd *cmd,
                                        struct br_call *call);
/* Releases mu, then wakes the syncer br_emb_apply_locked asked for, if any. */
void br_emb_unlock_kick(struct br_embedded *x);
/* For the ticker, which keeps mu: wakes the syncer now. */
void br_emb_kick_locked(struct br_embedded *x);
/* A write while the journal cannot be written: answered (refused) at once.
 * Under mu; returns true after unlocking and answering. */
bool br_emb_refuse_locked(struct br_embedded *x, struct br_call *call);
/* Unlocks mu and answers the call once everything it saw is durable (now,
 * or later from a syncer). wrote: the call applied a command. */
void br_emb_unlock_and_finish(struct br_embedded *x, struct br_call *call, bool wrote);
/* The journal could not be zero-filled or written (rc, what): refuse
 * writes, retry with backoff. Under mu. */
void br_emb_storage_fail_locked(struct br_embedded *x, int rc, const char *what);
/* The journal can be written again. Under mu. */
void br_emb_storage_ok_locked(struct br_embedded *x);
/* Waits on cv under mu until until_us (monotonic) or a signal. */
void br_emb_timed_wait_locked(struct br_embedded *x, pthread_cond_t *cv, int64_t until_us);
/* A syncer thread: take, write, sync, dispatch, until the server stops. */
void *br_emb_syncer_main(void *arg);

/* ---- embedded_ticker.c ---- */

/* The ticker thread: admit, sweep, saga_step, payment_check, the saga bus. */
void *br_emb_ticker_main(void *arg);
/* Puts a refund duty on the bus (full: dropped, saga_step re-emits it).
 * Takes mu. */
void br_emb_bus_push(struct br_embedded *x, uint64_t payment_id, int64_t amount_minor);
/* Puts a duty of kind (provider_refund, provider_query, provider_void) on
 * the bus (full: dropped; saga_step / payment_check re-emit it). Takes mu. */
void br_emb_bus_push_kind(struct br_embedded *x, uint8_t kind, uint64_t payment_id,
                          int64_t amount_minor);
/* Replays the journal into the engine at open. BR_OK, BR_E_DIVERGED, or
 * the reader's error. Single-threaded (before start). */
int br_emb_replay(struct br_embedded *x);

/* ---- backend_embedded_ops.c ---- */

extern const struct br_backend_ops br_emb_ops;

#endif
