/*
 * backend_embedded.h -- the zero-configuration deployment: the core engine in
 * memory, made durable by the command journal, with the admitter, sweeper and
 * saga worker as threads of this process and the built-in test provider.
 *
 *   request thread ──lock──▶ apply ──▶ pending batch ──▶ syncers: write, fdatasync
 *                              │                              │
 *                              └─ call waits (no thread) ◀────┴─ done() once durable,
 *                                                                effects carried out
 *   ticker: admit / sweep per event, saga_step, refunds from the saga bus
 *
 * One mutex guards the engine and the batch being filled; the journal is
 * written and synced by cfg.syncers threads outside that mutex, so
 * requests keep being applied while a batch is being made durable (group
 * commit: each batch carries what arrived during the previous sync; a
 * second sync overlaps one that stalls). Every
 * command's now_ms comes from this process's clock (never going backwards)
 * and is journaled, so replaying the journal rebuilds the exact state; on
 * open the journal is replayed and a torn tail cut (journal_file.h).
 *
 * Effects are carried out only after the command that emitted them is
 * durable: pass_issued goes to the listener (the SSE fan-out), provider_charge
 * creates the provider's intent (provider.h), provider_refund goes on the in-process
 * saga bus to the ticker, which refunds and applies refund_result. A refund
 * lost in a crash is found again by saga_step (the core keeps the duty).
 *
 * Storage faults. A full data disk shows first as a failed zero-fill
 * ahead of the journal: new writes are then refused with
 * STORAGE_UNAVAILABLE before they are applied, reads of durable state go
 * on, /readyz says why, and the zeros already written take the commands
 * applied before. A failed write is retried with backoff while its callers
 * wait (their commands are applied, so they can only be answered once
 * durable); the first zero-fill or write that succeeds again reopens
 * writes. At shutdown a batch that still cannot be written is given up and
 * its callers answered UNKNOWN_OUTCOME. A failed fdatasync stops the
 * process (abort): the page cache's state is then unknown, and only a
 * restart (replay) makes memory and disk agree again. No answer for an
 * undurable command is ever sent.
 *
 * Clock. Ticks are scheduled on CLOCK_MONOTONIC; the commands' now_ms is
 * the monotonic clock plus a base that follows the wall clock forward only,
 * so it never goes backwards and never stands still.
 *
 * Replay. A command whose replayed outcome differs from the recorded one
 * refuses the start (BR_E_DIVERGED). <data_dir>/journal.skip, written by
 * `bookingrush journal repair`, moves id counters past dropped records.
 *
 * Limits: BR_EMB_BATCH_MAX commands and BR_EMB_EFFECTS_MAX effects wait for
 * one commit (requests block briefly when the syncers are behind);
 * BR_EMB_BUS_MAX refunds on the bus (beyond, saga_step re-emits them).
 */
#ifndef BR_BACKEND_EMBEDDED_H
#define BR_BACKEND_EMBEDDED_H

#include <stdbool.h>
#include <stdint.h>

#include "adapters/provider.h"
#include "core/engine.h"
#include "server/backend.h"
#include "server/log.h"

#define BR_EMB_SYNCERS_MAX 8u    /* commits in flight at once (overlapping fdatasyncs) */
#define BR_EMB_BATCHES_MAX (BR_EMB_SYNCERS_MAX + 2u) /* filling + in flight + one spare */
#define BR_EMB_BATCH_MAX 4096u   /* commands per commit: ~0.7 KiB each, per batch */
#define BR_EMB_EFFECTS_MAX (2u * BR_EFFECTS_MAX) /* effects per commit: 56 B each, per batch */
#define BR_EMB_BUS_MAX 4096u     /* refunds and status queries waiting on the saga bus */
/* Calls waiting for durability, 24 B each (1.5 MiB, resident as used): one
 * per request in flight at most (serve's connections_max, 16384), with room
 * to spare; beyond, a caller waits for the syncers to answer some. */
#define BR_EMB_WAITERS_MAX 65536u

struct br_embedded;

struct br_embedded_config {
    const char *data_dir;          /* the journal is <data_dir>/journal */
    unsigned tick_ms;              /* admitter / sweeper / saga period */
    bool fsync;                    /* false only for throwaway runs */
    unsigned syncers;              /* commits in flight, 1..BR_EMB_SYNCERS_MAX */
    struct br_provider provider;   /* carries out charges and refunds; not owned */
    struct br_backend_listener listener;
    struct br_config engine;       /* capacities for a new journal (its seed is drawn fresh);
                                      an existing journal's header wins */
    const struct br_log *log;      /* not owned; NULL logs nothing */
    unsigned email_hash_bits;      /* 0 = 64; fewer only in tests (core/engine.h) */
    uint32_t payment_check_ms;     /* point 8 quiet time (--payment-check-ms) given to every
                                      payment_create: 0 = BR_PAYMENT_CHECK_MS_DEFAULT */
};

/* Opens the journal (creating it), replays it into a fresh engine and
 * returns the backend, not yet running. BR_OK, BR_E_IO, BR_E_CORRUPT
 * (damage that is not a torn tail: nothing is changed), BR_E_DIVERGED (a
 * replayed outcome differs from the recorded one), BR_E_VERSION. Logs why. */
int br_embedded_open(struct br_embedded **x, const struct br_embedded_config *cfg);

/* Sets the listener (before start: the fan-out needs the backend first). */
void br_embedded_set_listener(struct br_embedded *x, struct br_backend_listener listener);

/* Starts the syncer and ticker threads. BR_OK or BR_E_IO. */
int br_embedded_start(struct br_embedded *x);

/* The backend interface (valid until close). */
struct br_backend *br_embedded_backend(struct br_embedded *x);

/* The engine's config in use (the journal's), the bytes reserved for it,
 * and whether the journal existed before this open. */
void br_embedded_engine_info(const struct br_embedded *x, struct br_config *cfg, size_t *bytes,
                             bool *from_journal);

/* Commands replayed at open. (A replayed outcome that differs from the
 * recorded one refuses the open: BR_E_DIVERGED.) */
uint64_t br_embedded_replayed(const struct br_embedded *x);

/* Stops the ticker, commits everything pending (every waiting call gets its
 * done), stops the syncers, closes the journal and frees x (may be NULL). */
void br_embedded_close(struct br_embedded *x);

#endif
