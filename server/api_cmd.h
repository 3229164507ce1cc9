/*
 * api_cmd.h -- the translation between the backend interface (backend.h) and
 * the core's commands and outcomes (core/cmd.h), shared by every backend so
 * that the embedded one (the engine in memory) and the distributed one (the
 * Lua twins in Redis) turn an API call into the same command and an outcome
 * into the same result.
 *
 * Builders: br_api_cmd_<op>() zeroes *cmd and fills the command for one
 * write of the interface (or one worker's command: admit, sweep, saga_step,
 * refund_result). now_ms is left 0: the backend stamps it with its own
 * clock when it applies the command. Nothing is validated here (the core
 * checks every field and answers BR_E_INVALID); strings are cut to their
 * field's size, as the core would refuse them longer anyway.
 *
 * Fillers: br_api_*_from_*() build a result from an outcome and what the
 * command said, for the results an outcome carries in full (queue views,
 * sessions, registered users, payments, a fresh hold). Results that need a
 * stored record (a booking listed later, an event's counters) are read from
 * the backend's own store. Every filler zeroes its output first.
 *
 * No I/O, no clock, no allocation: pure functions over caller storage.
 */
#ifndef BR_API_CMD_H
#define BR_API_CMD_H

#include <stdbool.h>
#include <stdint.h>

#include "core/cmd.h"
#include "server/backend.h"

/* ---- builders: the interface's writes ---- */

void br_api_cmd_user_register(struct br_cmd *cmd, const char *email, const char *name,
                              const uint8_t hash[BR_PASSWORD_HASH_LEN],
                              const uint8_t salt[BR_SALT_LEN], uint8_t role);
/* actor 0 = the server itself. */
void br_api_cmd_user_role_set(struct br_cmd *cmd, uint64_t actor, uint64_t target, uint8_t role);
void br_api_cmd_session_open(struct br_cmd *cmd, uint64_t user, uint32_t generation,
                             int64_t ttl_ms);
void br_api_cmd_session_rotate(struct br_cmd *cmd, uint64_t session_id, uint32_t generation,
                               int64_t ttl_ms);
void br_api_cmd_session_revoke(struct br_cmd *cmd, uint64_t session_id, uint32_t generation);
void br_api_cmd_session_revoke_all(struct br_cmd *cmd, uint64_t user);
/* actor 0 = the server itself (the demo event). */
void br_api_cmd_event_create(struct br_cmd *cmd, uint64_t actor, const struct br_event_spec *spec);
void br_api_cmd_queue_join(struct br_cmd *cmd, uint64_t user, uint64_t event_id);
void br_api_cmd_queue_leave(struct br_cmd *cmd, uint64_t user, uint64_t event_id);
/* pass_id 0 = none; idem_key 0 = none (the route hashes the header). */
void br_api_cmd_reserve(struct br_cmd *cmd, uint64_t user, uint64_t event_id, uint32_t zone_id,
                        uint32_t quantity, uint64_t pass_id, uint64_t idem_key);
void br_api_cmd_booking_cancel(struct br_cmd *cmd, uint64_t user, uint64_t booking_id);
/* check_ms = 0: no status queries (point 8 off; today's callers). */
void br_api_cmd_payment_create(struct br_cmd *cmd, uint64_t user, uint64_t booking_id);
/* check_ms: the quiet time before the first status query (--payment-check-ms;
 * 0 = never, else BR_PAYMENT_CHECK_MS_MIN..BR_PAYMENT_CHECK_MS_MAX). */
void br_api_cmd_payment_create_checked(struct br_cmd *cmd, uint64_t user, uint64_t booking_id,
                                       uint32_t check_ms);
/* provider_event_id is the provider's event id string (NUL-terminated);
 * the command carries its br_hash64 (seed 0), the key the core
 * de-duplicates webhooks by. */
void br_api_cmd_payment_event(struct br_cmd *cmd, const char *provider_event_id,
                              uint64_t payment_id, bool succeeded);
/* Issue 13: operator modes. actor 0 = the server itself; set = BR_QSET_* bits
 * (fields not in set are carried as given; the core ignores them). */
void br_api_cmd_queue_mode_set(struct br_cmd *cmd, uint64_t actor, uint64_t event_id, uint8_t set,
                               uint8_t mode, uint32_t max_active, uint32_t admit_per_min);

/* ---- builders: the workers' commands ---- */

void br_api_cmd_admit(struct br_cmd *cmd, uint64_t event_id);
/* max = BR_SWEEP_MAX */
void br_api_cmd_sweep(struct br_cmd *cmd, uint64_t event_id);
/* max = BR_SAGA_STEP_MAX */
void br_api_cmd_saga_step(struct br_cmd *cmd);
void br_api_cmd_refund_result(struct br_cmd *cmd, uint64_t payment_id, bool ok);
/* max = BR_SAGA_STEP_MAX */
void br_api_cmd_payment_check(struct br_cmd *cmd);
/* Issue 13: the server's seen batch (actor 0). count = n as given; at most
 * BR_PRESENCE_BATCH_MAX ids are copied (the core refuses a count of 0 or
 * over the limit with BR_E_INVALID), the rest of user_ids stays zero. */
void br_api_cmd_presence(struct br_cmd *cmd, uint64_t event_id, const uint64_t *users,
                         uint32_t n);

/* ---- fillers ---- */

/* A queue view of (event, some user): status, position (1 = next; 0 unless
 * waiting), queue length, and the pass when admitted. The estimated wait
 * (br_queue_wait_estimate_s over spec, the admitter's tick_ms and now_ms) is
 * computed from the position while waiting, from the length while in the
 * pre-queue, and is 0 otherwise; the pass fields are 0 unless admitted. */
void br_api_queue_fill(struct br_api_queue *out, uint64_t event_id,
                       const struct br_event_spec *spec, uint8_t status, uint32_t position,
                       uint32_t queue_length, uint64_t pass_id, int64_t pass_deadline_ms,
                       uint32_t tick_ms, int64_t now_ms);

/* The view a queue_join answers with, from its command (already applied:
 * cmd->now_ms set) and outcome (BR_OK): status, position, queue_length,
 * ref = the pass, deadline_ms = its expiry. */
void br_api_queue_from_join(struct br_api_queue *out, const struct br_cmd *cmd,
                            const struct br_outcome *o, const struct br_event_spec *spec,
                            uint32_t tick_ms);

/* Issue 13: the waiting room's part of a queue view (already filled by
 * br_api_queue_fill or _from_join): gate = the event's gate now, and for a
 * member still in line (pre-queue, waiting, or overlaid sold_out / closed /
 * passthrough) the estimate br_queue_estimate gives (core/queue.h) at its
 * position (the queue length in the pre-queue): estimated_wait_s
 * (UINT32_MAX = null), estimate_basis, admitted_per_min. rate: the event's
 * admission ring; admit_per_min_live its live pacing. */
struct br_queue_rate;
void br_api_queue_room(struct br_api_queue *out, const struct br_event_spec *spec,
                       uint32_t admit_per_min_live, const struct br_queue_rate *rate, uint8_t gate,
                       uint32_t tick_ms, int64_t now_ms);

/* Issue 13: the public queue status of an event from the core's event view
 * (br_queue_event_view, or the distributed backend's equivalent). */
struct br_queue_event_view;
void br_api_queue_status_fill(struct br_api_queue_status *out, uint64_t event_id,
                              const struct br_queue_event_view *v, int64_t now_ms);

/* The session of a session_* outcome: id, user (ref); for a successful open
 * or rotate also the generation (count) and expiry (deadline_ms), and role
 * (the user's role, which the caller looks up: the outcome of an open does
 * not carry it). */
void br_api_session_from_outcome(struct br_api_session *out, const struct br_cmd *cmd,
                                 const struct br_outcome *o, uint8_t role);

/* The user a successful user_register created: id from the outcome, the
 * rest from the command (no password hash or salt: user_find only). */
void br_api_user_from_register(struct br_api_user *out, const struct br_cmd *cmd,
                               const struct br_outcome *o);

/* A payment from a payment_create / payment_event outcome that names it
 * (id, ref = the booking, status = the state, amount_minor) and the zone's
 * currency. The provider's intent id and secret stay empty (filled once the
 * intent exists). */
void br_api_payment_from_outcome(struct br_api_payment *out, const struct br_outcome *o,
                                 const char currency[BR_CURRENCY_MAX]);

/* The booking a reserve answers with, from its command (applied: now_ms
 * set) and outcome (id = the hold, status, deadline_ms, amount_minor,
 * count = quantity) and the zone's currency. Exact for a new hold; for an
 * idempotent repeat (same key: the first hold is returned) created_at_ms is
 * this command's time and payment_id 0, where the stored hold knows the
 * first's: a backend that keeps holds answers repeats from its store. */
void br_api_booking_from_reserve(struct br_api_booking *out, const struct br_cmd *cmd,
                                 const struct br_outcome *o, const char currency[BR_CURRENCY_MAX]);

#endif
