/*
 * api_cmd.c -- API calls to commands and outcomes to results (see api_cmd.h).
 */
#include "server/api_cmd.h"

#include <stdio.h>
#include <string.h>

#include "core/err.h"
#include "core/hash.h"
#include "core/limits.h"
#include "core/panic.h"
#include "core/queue.h"

/* ---- builders ---- */

static void cmd_start(struct br_cmd *cmd, enum br_cmd_type type, uint64_t actor)
{
    memset(cmd, 0, sizeof *cmd);
    cmd->type = (uint8_t)type;
    cmd->user_id = actor;
}

void br_api_cmd_user_register(struct br_cmd *cmd, const char *email, const char *name,
                              const uint8_t hash[BR_PASSWORD_HASH_LEN],
                              const uint8_t salt[BR_SALT_LEN], uint8_t role)
{
    cmd_start(cmd, BR_CMD_USER_REGISTER, 0);
    snprintf(cmd->u.user_register.email, sizeof cmd->u.user_register.email, "%s", email);
    snprintf(cmd->u.user_register.name, sizeof cmd->u.user_register.name, "%s", name);
    memcpy(cmd->u.user_register.password_hash, hash, BR_PASSWORD_HASH_LEN);
    memcpy(cmd->u.user_register.salt, salt, BR_SALT_LEN);
    cmd->u.user_register.role = role;
}

void br_api_cmd_user_role_set(struct br_cmd *cmd, uint64_t actor, uint64_t target, uint8_t role)
{
    cmd_start(cmd, BR_CMD_USER_ROLE_SET, actor);
    cmd->u.user_role_set.target_user_id = target;
    cmd->u.user_role_set.role = role;
}

void br_api_cmd_session_open(struct br_cmd *cmd, uint64_t user, uint32_t generation, int64_t ttl_ms)
{
    cmd_start(cmd, BR_CMD_SESSION_OPEN, user);
    cmd->u.session_open.ttl_ms = ttl_ms;
    cmd->u.session_open.generation = generation;
}

void br_api_cmd_session_rotate(struct br_cmd *cmd, uint64_t session_id, uint32_t generation,
                               int64_t ttl_ms)
{
    cmd_start(cmd, BR_CMD_SESSION_ROTATE, 0);
    cmd->u.session_rotate.session_id = session_id;
    cmd->u.session_rotate.generation = generation;
    cmd->u.session_rotate.ttl_ms = ttl_ms;
}

void br_api_cmd_session_revoke(struct br_cmd *cmd, uint64_t session_id, uint32_t generation)
{
    cmd_start(cmd, BR_CMD_SESSION_REVOKE, 0);
    cmd->u.session_revoke.session_id = session_id;
    cmd->u.session_revoke.generation = generation;
}

void br_api_cmd_session_revoke_all(struct br_cmd *cmd, uint64_t user)
{
    cmd_start(cmd, BR_CMD_SESSION_REVOKE_ALL, user);
}

void br_api_cmd_event_create(struct br_cmd *cmd, uint64_t actor, const struct br_event_spec *spec)
{
    cmd_start(cmd, BR_CMD_EVENT_CREATE, actor);
    cmd->u.event_create = *spec;
}

void br_api_cmd_queue_join(struct br_cmd *cmd, uint64_t user, uint64_t event_id)
{
    cmd_start(cmd, BR_CMD_QUEUE_JOIN, user);
    cmd->u.queue_join.event_id = event_id;
}

void br_api_cmd_queue_leave(struct br_cmd *cmd, uint64_t user, uint64_t event_id)
{
    cmd_start(cmd, BR_CMD_QUEUE_LEAVE, user);
    cmd->u.queue_leave.event_id = event_id;
}

void br_api_cmd_reserve(struct br_cmd *cmd, uint64_t user, uint64_t event_id, uint32_t zone_id,
                        uint32_t quantity, uint64_t pass_id, uint64_t idem_key)
{
    cmd_start(cmd, BR_CMD_RESERVE, user);
    cmd->u.reserve.event_id = event_id;
    cmd->u.reserve.zone_id = zone_id;
    cmd->u.reserve.quantity = quantity;
    cmd->u.reserve.pass_id = pass_id;
    cmd->u.reserve.idem_key = idem_key;
}

void br_api_cmd_booking_cancel(struct br_cmd *cmd, uint64_t user, uint64_t booking_id)
{
    cmd_start(cmd, BR_CMD_CANCEL, user);
    cmd->u.cancel.hold_id = booking_id;
}

void br_api_cmd_payment_create(struct br_cmd *cmd, uint64_t user, uint64_t booking_id)
{
    cmd_start(cmd, BR_CMD_PAYMENT_CREATE, user);
    cmd->u.payment_create.hold_id = booking_id;
}

void br_api_cmd_payment_create_checked(struct br_cmd *cmd, uint64_t user, uint64_t booking_id,
                                       uint32_t check_ms)
{
    br_api_cmd_payment_create(cmd, user, booking_id);
    cmd->u.payment_create.check_ms = check_ms;
}

void br_api_cmd_payment_event(struct br_cmd *cmd, const char *provider_event_id,
                              uint64_t payment_id, bool succeeded)
{
    BR_ASSERT(provider_event_id != NULL);
    cmd_start(cmd, BR_CMD_PAYMENT_EVENT, 0);
    cmd->u.payment_event.provider_event_id =
        br_hash64(provider_event_id, strlen(provider_event_id), 0);
    cmd->u.payment_event.payment_id = payment_id;
    cmd->u.payment_event.succeeded = succeeded;
}

void br_api_cmd_admit(struct br_cmd *cmd, uint64_t event_id)
{
    cmd_start(cmd, BR_CMD_ADMIT, 0);
    cmd->u.admit.event_id = event_id;
}

void br_api_cmd_sweep(struct br_cmd *cmd, uint64_t event_id)
{
    cmd_start(cmd, BR_CMD_SWEEP, 0);
    cmd->u.sweep.event_id = event_id;
    cmd->u.sweep.max = BR_SWEEP_MAX;
}

void br_api_cmd_saga_step(struct br_cmd *cmd)
{
    cmd_start(cmd, BR_CMD_SAGA_STEP, 0);
    cmd->u.saga_step.max = BR_SAGA_STEP_MAX;
}

void br_api_cmd_payment_check(struct br_cmd *cmd)
{
    cmd_start(cmd, BR_CMD_PAYMENT_CHECK, 0);
    cmd->u.payment_check.max = BR_SAGA_STEP_MAX;
}

void br_api_cmd_refund_result(struct br_cmd *cmd, uint64_t payment_id, bool ok)
{
    cmd_start(cmd, BR_CMD_REFUND_RESULT, 0);
    cmd->u.refund_result.payment_id = payment_id;
    cmd->u.refund_result.ok = ok;
}

void br_api_cmd_queue_mode_set(struct br_cmd *cmd, uint64_t actor, uint64_t event_id, uint8_t set,
                               uint8_t mode, uint32_t max_active, uint32_t admit_per_min)
{
    cmd_start(cmd, BR_CMD_QUEUE_MODE_SET, actor);
    cmd->u.queue_mode_set.event_id = event_id;
    cmd->u.queue_mode_set.set = set;
    cmd->u.queue_mode_set.mode = mode;
    cmd->u.queue_mode_set.max_active = max_active;
    cmd->u.queue_mode_set.admit_per_min = admit_per_min;
}

void br_api_cmd_presence(struct br_cmd *cmd, uint64_t event_id, const uint64_t *users,
                         uint32_t n)
{
    cmd_start(cmd, BR_CMD_PRESENCE, 0);
    cmd->u.presence.event_id = event_id;
    cmd->u.presence.count = n;
    uint32_t k = n < BR_PRESENCE_BATCH_MAX ? n : BR_PRESENCE_BATCH_MAX;
    for (uint32_t i = 0; i < k; i++) {
        cmd->u.presence.user_ids[i] = users[i];
    }
}

/* ---- fillers ---- */

void br_api_queue_fill(struct br_api_queue *out, uint64_t event_id,
                       const struct br_event_spec *spec, uint8_t status, uint32_t position,
                       uint32_t queue_length, uint64_t pass_id, int64_t pass_deadline_ms,
                       uint32_t tick_ms, int64_t now_ms)
{
    BR_ASSERT(spec != NULL && tick_ms > 0);
    memset(out, 0, sizeof *out);
    out->event_id = event_id;
    out->status = status;
    out->position = position;
    out->queue_length = queue_length;
    if (status == BR_QS_WAITING) {
        out->estimated_wait_s = br_queue_wait_estimate_s(spec, position, tick_ms, now_ms);
    } else if (status == BR_QS_PREQUEUE) {
        out->estimated_wait_s = br_queue_wait_estimate_s(spec, queue_length, tick_ms, now_ms);
    }
    if (status == BR_QS_ADMITTED) {
        out->pass_id = pass_id;
        out->pass_expires_at_ms = pass_deadline_ms;
    }
}

void br_api_queue_from_join(struct br_api_queue *out, const struct br_cmd *cmd,
                            const struct br_outcome *o, const struct br_event_spec *spec,
                            uint32_t tick_ms)
{
    BR_ASSERT(cmd->type == BR_CMD_QUEUE_JOIN && o->err == BR_OK);
#ifdef BR_PLANT_API_FILL /* test builds only: the length shown as the position */
    br_api_queue_fill(out, cmd->u.queue_join.event_id, spec, o->status, o->queue_length,
                      o->queue_length, o->ref, o->deadline_ms, tick_ms, cmd->now_ms);
#else
    br_api_queue_fill(out, cmd->u.queue_join.event_id, spec, o->status, o->position,
                      o->queue_length, o->ref, o->deadline_ms, tick_ms, cmd->now_ms);
#endif
}

void br_api_queue_room(struct br_api_queue *out, const struct br_event_spec *spec,
                       uint32_t admit_per_min_live, const struct br_queue_rate *rate, uint8_t gate,
                       uint32_t tick_ms, int64_t now_ms)
{
    BR_ASSERT(spec != NULL && rate != NULL && tick_ms > 0);
    out->gate = gate;
    out->estimate_basis = BR_EST_NONE;
    out->admitted_per_min = 0;
    uint8_t st = out->status;
    bool in_line = st == BR_QS_WAITING || st == BR_QS_PREQUEUE || st == BR_QS_SOLD_OUT ||
                   st == BR_QS_CLOSED || st == BR_QS_PASSTHROUGH;
    if (!in_line) {
        return;
    }
    uint32_t pos = st == BR_QS_PREQUEUE ? out->queue_length : out->position;
    struct br_queue_estimate est;
    br_queue_estimate(spec, admit_per_min_live, rate, gate, pos > 0 ? pos : 1, tick_ms, now_ms,
                      &est);
    out->estimated_wait_s = est.wait_s;
    out->estimate_basis = est.basis;
    out->admitted_per_min = est.admitted_per_min;
}

void br_api_queue_status_fill(struct br_api_queue_status *out, uint64_t event_id,
                              const struct br_queue_event_view *v, int64_t now_ms)
{
    memset(out, 0, sizeof *out);
    out->event_id = event_id;
    out->mode = v->mode;
    out->gate = v->gate;
    out->pow_bits = v->pow_bits;
    out->estimate_basis = v->join_now.basis;
    out->sold_out = v->sold_out;
    out->queue_length = v->queue_length;
    out->admitted_per_min = v->join_now.admitted_per_min;
    out->estimated_wait_s = v->join_now.wait_s;
    out->max_active = v->max_active;
    out->admit_per_min = v->admit_per_min;
    out->as_of_ms = now_ms;
}

void br_api_session_from_outcome(struct br_api_session *out, const struct br_cmd *cmd,
                                 const struct br_outcome *o, uint8_t role)
{
    memset(out, 0, sizeof *out);
    out->id = o->id;
    out->user_id = o->ref;
    bool issued = cmd->type == BR_CMD_SESSION_OPEN || cmd->type == BR_CMD_SESSION_ROTATE;
    if (o->err == BR_OK && issued) {
        out->generation = o->count;
        out->expires_at_ms = o->deadline_ms;
        out->role = role;
    }
}

void br_api_user_from_register(struct br_api_user *out, const struct br_cmd *cmd,
                               const struct br_outcome *o)
{
    BR_ASSERT(cmd->type == BR_CMD_USER_REGISTER && o->err == BR_OK);
    memset(out, 0, sizeof *out);
    out->id = o->id;
    out->role = cmd->u.user_register.role;
    memcpy(out->email, cmd->u.user_register.email, sizeof out->email);
    memcpy(out->name, cmd->u.user_register.name, sizeof out->name);
}

void br_api_payment_from_outcome(struct br_api_payment *out, const struct br_outcome *o,
                                 const char currency[BR_CURRENCY_MAX])
{
    memset(out, 0, sizeof *out);
    out->id = o->id;
    out->booking_id = o->ref;
    out->state = o->status;
    out->amount_minor = o->amount_minor;
    memcpy(out->currency, currency, sizeof out->currency);
}

void br_api_booking_from_reserve(struct br_api_booking *out, const struct br_cmd *cmd,
                                 const struct br_outcome *o, const char currency[BR_CURRENCY_MAX])
{
    BR_ASSERT(cmd->type == BR_CMD_RESERVE && o->id != 0);
    memset(out, 0, sizeof *out);
    out->id = o->id;
    out->event_id = cmd->u.reserve.event_id;
    out->user_id = cmd->user_id;
    out->zone_id = cmd->u.reserve.zone_id;
    out->quantity = o->count;
    out->state = o->status;
    out->total_minor = o->amount_minor;
    memcpy(out->currency, currency, sizeof out->currency);
    out->created_at_ms = cmd->now_ms;
    out->expires_at_ms = o->deadline_ms;
}
