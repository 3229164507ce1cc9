/*
 * hashpool.h -- a small pool of threads for the slow, CPU-bound work of
 * password hashing (scrypt: tens of milliseconds and megabytes of memory
 * per hash), so that the HTTP event-loop threads never run it.
 *
 *   loop thread ─submit─▶ [bounded FIFO] ─▶ hash thread: job(ctx) ─▶ br_http_resume
 *        └─ full: BR_E_OVERLOADED at once (the route answers 503 with Retry-After)
 *
 * A route defers its request, submits a job that works on the request's own
 * state and resumes it when done; the route's continuation then answers on
 * the loop thread (routes.c). A login storm therefore waits in this queue
 * (or is refused quickly when the queue is full) while reserves and reads
 * keep being served.
 *
 * Limits: threads_max threads, queue_max jobs waiting (running ones not
 * counted). Costs one pthread stack per thread and 16 B per queue slot.
 */
#ifndef BR_HASHPOOL_H
#define BR_HASHPOOL_H

#include <stdbool.h>
#include <stdint.h>

#define BR_HASHPOOL_THREADS_MAX 64u
#define BR_HASHPOOL_QUEUE_MAX 65536u
#define BR_HASHPOOL_NICE_MAX 19u
#define BR_HASHPOOL_YIELD_MS_MAX 60000u

struct br_hashpool;

/* A job: runs once on a pool thread. It must not block on anything but the
 * CPU, and owns ctx until it returns. */
typedef void (*br_hashpool_fn)(void *ctx);

/* Starts threads (1..BR_HASHPOOL_THREADS_MAX) with room for queue_max
 * (1..BR_HASHPOOL_QUEUE_MAX) waiting jobs. Each thread adds nice
 * (0..BR_HASHPOOL_NICE_MAX) to its nice value, at most 19: on a busy
 * machine the scheduler then gives the CPU to the HTTP threads first, so a
 * login storm slows logins, not reserves (an idle CPU still hashes at full
 * speed). With idle the threads also run under SCHED_IDLE: only on CPU time
 * nothing else on the machine wants. BR_OK, BR_E_INVALID or BR_E_IO. */
int br_hashpool_new(struct br_hashpool **p, unsigned threads, unsigned queue_max, unsigned nice,
                    bool idle);

/* Queues fn(ctx). BR_OK: fn will run exactly once. BR_E_OVERLOADED: the queue
 * is full, nothing will run. BR_E_UNAVAILABLE: the pool is stopping. O(1);
 * never blocks on the queue. */
int br_hashpool_submit(struct br_hashpool *p, br_hashpool_fn fn, void *ctx);

/* How many requests the server has awaiting an answer (called from the
 * pool's threads, with no lock of the pool's held). */
typedef unsigned (*br_hashpool_busy_fn)(void *ctx);

/* Makes each thread, before it starts a job, wait while busy(ctx) minus
 * the pool's own jobs (waiting, or taken by a thread) is above `above`,
 * checking every 2 ms, for at most max_ms (capped at
 * BR_HASHPOOL_YIELD_MS_MAX; 0 = never wait). A login storm then hashes in
 * the gaps of the sale's traffic instead of taking a CPU from it, and still
 * progresses at one hash per thread per max_ms at worst. Without a call, or
 * with busy NULL, jobs start at once. May be called at any time. */
void br_hashpool_yield(struct br_hashpool *p, br_hashpool_busy_fn busy, void *ctx,
                       unsigned above, unsigned max_ms);

/* Milliseconds the threads spent waiting for the sale to quiet down, summed
 * over threads since the start (0 for NULL). */
uint64_t br_hashpool_yielded_ms(const struct br_hashpool *p);

/* Runs every queued job and stops the threads; later submits get
 * BR_E_UNAVAILABLE. Idempotent; p may be NULL. */
void br_hashpool_stop(struct br_hashpool *p);

/* Stops (if not yet) and frees p (may be NULL). No submit may run
 * concurrently with or after it. */
void br_hashpool_free(struct br_hashpool *p);

#endif
