/*
 * clock.h -- the process's clocks, read in one place. The core never reads a
 * clock (time is an argument); drivers read these and pass the result in.
 *
 *   monotonic: durations, timeouts, schedules (never jumps when the system
 *              clock is set);
 *   wall:      timestamps people read (logs, RFC 3339 times) and the
 *              embedded backend's command clock, which it keeps monotonic.
 */
#ifndef BR_CLOCK_H
#define BR_CLOCK_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

/* CLOCK_MONOTONIC in microseconds / milliseconds. */
int64_t br_clock_mono_us(void);
int64_t br_clock_mono_ms(void);

/* CLOCK_REALTIME in milliseconds since the Unix epoch. */
int64_t br_clock_wall_ms(void);

/* CLOCK_MONOTONIC and this process's CPU time, in seconds (reports). */
double br_clock_mono_s(void);
double br_clock_cpu_s(void);

/* An absolute CLOCK_MONOTONIC deadline ms from now, for
 * pthread_cond_timedwait on a condition variable made with
 * br_clock_cond_init (so a step of the system clock never stretches it). */
struct timespec br_clock_deadline(int64_t ms);

/* pthread_cond_init with CLOCK_MONOTONIC. 0 or an errno value. */
int br_clock_cond_init(pthread_cond_t *cv);

#endif
