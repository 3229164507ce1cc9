/*
 * backend_distributed_accounts.c -- the distributed backend's operations
 * that PostgreSQL owns: accounts, refresh sessions and the catalog
 * (design in backend_distributed.h). A user or an event is written to
 * PostgreSQL first and told to Redis through its Lua twin inside the same
 * transaction (the pg.h hook), so both allocate the same dense id
 * (contract 2). Reads of the catalog come from Redis's live counters, with
 * PostgreSQL's record standing in for an event Redis does not have.
 */
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/pg.h"
#include "core/panic.h"
#include "server/api_cmd.h"
#include "server/backend_distributed_int.h"

static struct br_distributed *self(struct br_backend *b)
{
    return (struct br_distributed *)(void *)b;
}

/* ---- accounts ---- */

static void fill_user(const struct br_pg_user *u, struct br_api_user *out, bool secrets)
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

struct twin_ctx {
    struct br_distributed *x;
    struct dist_conn *c;
    struct br_cmd *cmd;
    struct br_outcome out;
    bool only_first; /* the server's own event (actor 0, --demo): only as event 1 */
};

/* A user or event row's twin, inside PostgreSQL's transaction: Redis must
 * allocate the same id (contract 2). A retried transaction runs this again
 * with the same id: the twin then answers EMAIL_TAKEN (a user) or the id's
 * event exists; both are the work already done. */
static int twin_hook(void *ctx, uint64_t id)
{
    struct twin_ctx *t = ctx;
    if (t->only_first && id != 1) {
        /* Another process made the first event: ids are dense and taken
         * under the catalog's lock, so id 1 here means none existed. */
        return BR_E_DUPLICATE;
    }
    uint32_t n = 0;
    int rc = dist_apply(t->x, t->c, t->cmd, &t->out, t->c->fx, &n);
    if (rc == BR_OK && t->out.id == id) {
        return BR_OK;
    }
    if (t->cmd->type == BR_CMD_USER_REGISTER && rc == BR_E_EMAIL_TAKEN) {
        uint64_t had = 0;
        int erc = br_redis_user_by_email(&t->c->r, t->cmd->u.user_register.email, &had);
        dist_note_redis(t->x, erc);
        if (erc == BR_OK && had == id) {
            t->out.err = BR_OK;
            t->out.id = id;
            return BR_OK; /* a retried transaction: Redis has it already */
        }
    }
    if (rc == BR_OK) {
        br_logf(t->x->cfg.log, BR_LOG_ERROR,
                "ids disagree between PostgreSQL and Redis: refusing the write",
                "\"command\":\"%s\",\"pg_id\":%" PRIu64 ",\"redis_id\":%" PRIu64
                ",\"hint\":\"the reconciler must repair Redis's catalog\"",
                br_cmd_name(t->cmd->type), id, t->out.id);
        return BR_E_CORRUPT;
    }
    return rc;
}

void dist_op_user_register(struct br_backend *b, const char *email, const char *name,
                           const uint8_t hash[BR_PASSWORD_HASH_LEN],
                           const uint8_t salt[BR_SALT_LEN], uint8_t role, struct br_call *call)
{
    struct br_distributed *x = self(b);
    struct br_cmd cmd;
    br_api_cmd_user_register(&cmd, email, name, hash, salt, role);
    cmd.now_ms = dist_now_ms(x);
    struct dist_conn *c = NULL;
    call->err = dist_take_for_write(x, &c);
    if (call->err == BR_OK) {
        struct twin_ctx t = {.x = x, .c = c, .cmd = &cmd};
        uint64_t id = 0;
        call->err = br_pg_user_register(x->cfg.pg, &cmd, twin_hook, &t, &id);
        dist_note_pg(x, call->err);
        dist_conn_give(x, c);
        if (call->err == BR_OK) {
            t.out.id = id;
            br_api_user_from_register(&call->r.user, &cmd, &t.out);
            uint64_t known = atomic_load(&x->users_known);
            while (id > known && !atomic_compare_exchange_weak(&x->users_known, &known, id)) {
            }
        }
    }
    call->done(call);
}

void dist_op_user_find(struct br_backend *b, const char *email, struct br_call *call)
{
    struct br_distributed *x = self(b);
    struct br_pg_user u;
    call->err = br_pg_user_by_email(x->cfg.pg, email, &u);
    dist_note_pg(x, call->err);
    if (call->err == BR_OK) {
        fill_user(&u, &call->r.user, true);
    }
    call->done(call);
}

/* Redis first: every role-checked request asks, the twin's role is
 * written before PostgreSQL's (op_user_role_set), and the on-sale goes on
 * while PostgreSQL is away. PostgreSQL when Redis does not know the user
 * (lost, being rebuilt) or cannot be reached. */
void dist_op_user_get(struct br_backend *b, uint64_t user_id, struct br_call *call)
{
    struct br_distributed *x = self(b);
    struct dist_conn *c = NULL;
    if (dist_conn_take(x, &c) == BR_OK) {
        call->err = dist_read_user(x, c, user_id, &call->r.user);
        dist_conn_give(x, c);
        if (call->err == BR_OK) {
            call->done(call);
            return;
        }
    }
    struct br_pg_user u;
    call->err = br_pg_user_get(x->cfg.pg, user_id, &u);
    dist_note_pg(x, call->err);
    if (call->err == BR_OK) {
        fill_user(&u, &call->r.user, false);
    }
    call->done(call);
}

/* The twin first (it checks the actor and the target as the core does),
 * then PostgreSQL; both set the same role, so a retry after a failure in
 * between converges. */
void dist_op_user_role_set(struct br_backend *b, uint64_t actor, uint64_t target, uint8_t role,
                           struct br_call *call)
{
    struct br_distributed *x = self(b);
    struct br_cmd cmd;
    br_api_cmd_user_role_set(&cmd, actor, target, role);
    struct dist_conn *c = NULL;
    call->err = dist_take_for_write(x, &c);
    if (call->err == BR_OK) {
        struct br_outcome out;
        uint32_t n = 0;
        call->err = dist_apply(x, c, &cmd, &out, c->fx, &n);
        dist_conn_give(x, c);
    }
    if (call->err == BR_OK) {
        call->err = br_pg_user_role_set(x->cfg.pg, target, role);
        dist_note_pg(x, call->err);
    }
    struct br_pg_user u;
    if (call->err == BR_OK && br_pg_user_get(x->cfg.pg, target, &u) == BR_OK) {
        fill_user(&u, &call->r.user, false);
    }
    call->done(call);
}

bool dist_op_user_exists(struct br_backend *b, uint64_t user_id)
{
    struct br_distributed *x = self(b);
    if (user_id == 0) {
        return false;
    }
    if (user_id <= atomic_load_explicit(&x->users_known, memory_order_relaxed)) {
        return true;
    }
    uint64_t max = 0;
    int rc = br_pg_user_max_id(x->cfg.pg, &max);
    dist_note_pg(x, rc);
    if (rc != BR_OK) {
        return false;
    }
    uint64_t known = atomic_load(&x->users_known);
    while (max > known && !atomic_compare_exchange_weak(&x->users_known, &known, max)) {
    }
    return user_id <= max;
}

/* ---- refresh sessions (PostgreSQL only: lua/README.md) ---- */

static void session_cmd(struct br_distributed *x, struct br_cmd *cmd, struct br_call *call)
{
    cmd->now_ms = dist_now_ms(x);
    struct br_outcome out;
    memset(&out, 0, sizeof out);
    /* Sessions live in PostgreSQL only: signing in goes on while Redis is
     * being rebuilt. */
    int rc = BR_E_UNAVAILABLE;
    {
        switch (cmd->type) {
        case BR_CMD_SESSION_OPEN:
            rc = br_pg_session_open(x->cfg.pg, cmd, &out);
            break;
        case BR_CMD_SESSION_ROTATE:
            rc = br_pg_session_rotate(x->cfg.pg, cmd, &out);
            break;
        case BR_CMD_SESSION_REVOKE:
            rc = br_pg_session_revoke(x->cfg.pg, cmd, &out);
            break;
        default:
            BR_ASSERT(cmd->type == BR_CMD_SESSION_REVOKE_ALL);
            rc = br_pg_session_revoke_all(x->cfg.pg, cmd, &out);
            break;
        }
    }
    dist_note_pg(x, rc);
    call->err = rc;
    uint8_t role = 0;
    bool issued = cmd->type == BR_CMD_SESSION_OPEN || cmd->type == BR_CMD_SESSION_ROTATE;
    if (rc == BR_OK && issued) {
        struct br_pg_user u;
        int urc = br_pg_user_get(x->cfg.pg, out.ref, &u);
        if (urc == BR_OK) {
            role = u.role;
        } else {
            call->err = urc == BR_E_NOT_FOUND ? BR_E_UNAUTHORIZED : urc;
        }
    }
    br_api_session_from_outcome(&call->r.session, cmd, &out, role);
    call->done(call);
}

void dist_op_session_open(struct br_backend *b, uint64_t user, uint32_t generation, int64_t ttl_ms,
                          struct br_call *call)
{
    struct br_cmd cmd;
    br_api_cmd_session_open(&cmd, user, generation, ttl_ms);
    session_cmd(self(b), &cmd, call);
}

void dist_op_session_rotate(struct br_backend *b, uint64_t session_id, uint32_t generation,
                            int64_t ttl_ms, struct br_call *call)
{
    struct br_cmd cmd;
    br_api_cmd_session_rotate(&cmd, session_id, generation, ttl_ms);
    session_cmd(self(b), &cmd, call);
}

void dist_op_session_revoke(struct br_backend *b, uint64_t session_id, uint32_t generation,
                            struct br_call *call)
{
    struct br_cmd cmd;
    br_api_cmd_session_revoke(&cmd, session_id, generation);
    session_cmd(self(b), &cmd, call);
}

void dist_op_session_revoke_all(struct br_backend *b, uint64_t user, struct br_call *call)
{
    struct br_cmd cmd;
    br_api_cmd_session_revoke_all(&cmd, user);
    session_cmd(self(b), &cmd, call);
}

/* ---- catalog ---- */

void dist_op_event_create(struct br_backend *b, uint64_t actor, const struct br_event_spec *spec,
                          struct br_call *call)
{
    struct br_distributed *x = self(b);
    struct br_cmd cmd;
    br_api_cmd_event_create(&cmd, actor, spec);
    cmd.now_ms = dist_now_ms(x);
    struct dist_conn *c = NULL;
    call->err = dist_take_for_write(x, &c);
    if (call->err != BR_OK) {
        call->done(call);
        return;
    }
    /* The server's own event (--demo) is made only while there is none, in
     * the transaction that holds the catalog's lock: two processes started
     * together make one (backend.h). */
    struct twin_ctx t = {.x = x, .c = c, .cmd = &cmd, .only_first = actor == 0};
    uint64_t id = 0;
    call->err = br_pg_event_create(x->cfg.pg, &cmd, twin_hook, &t, &id);
    dist_note_pg(x, call->err);
    dist_conn_give(x, c);
    if (call->err == BR_OK) {
        struct br_api_event *ev = &call->r.event;
        memset(ev, 0, sizeof *ev);
        ev->id = id;
        ev->owner_id = actor;
        ev->spec = *spec;
        if (ev->spec.queue_capacity == 0) {
            ev->spec.queue_capacity = x->ecfg.queue_capacity_default;
        }
        if (id <= BR_DIST_SPEC_CACHE) {
            pthread_mutex_lock(&x->spec_mu);
            x->specs[id - 1] =
                (struct dist_spec){.have = true, .owner_id = actor, .spec = ev->spec};
            pthread_mutex_unlock(&x->spec_mu);
        }
    }
    call->done(call);
}

/* The zones' counters as PostgreSQL's projection has them. */
static int record_counters(struct br_distributed *x, uint64_t event_id, struct br_redis_counters *k)
{
    memset(k, 0, sizeof *k);
    struct br_pg_zone z[BR_EVENT_ZONES_MAX];
    uint32_t n = 0;
    int rc = br_pg_zones(x->cfg.pg, event_id, z, &n);
    dist_note_pg(x, rc);
    if (rc != BR_OK) {
        return rc;
    }
    if (n == 0) {
        return BR_E_NOT_FOUND;
    }
    for (uint32_t i = 0; i < n && i < BR_EVENT_ZONES_MAX; i++) {
        if (z[i].zone_id >= 1 && z[i].zone_id <= BR_EVENT_ZONES_MAX) {
            k->held[z[i].zone_id - 1] = z[i].held;
            k->sold[z[i].zone_id - 1] = z[i].sold;
        }
    }
    k->zone_count = n;
    return BR_OK;
}

/* The event's spec and its zones' live counters. */
static int read_event(struct br_distributed *x, struct dist_conn *c, uint64_t event_id,
                      struct br_api_event *out)
{
    struct dist_spec s;
    int rc = dist_spec(x, c, event_id, &s);
    if (rc != BR_OK) {
        return rc;
    }
    struct br_redis_counters k;
    rc = dist_read_counters(x, c, event_id, s.spec.zone_count, &k);
    if (rc == BR_E_NOT_FOUND) {
        /* In PostgreSQL, not (yet, or not any more) in Redis: being created,
         * or Redis lost it and the rebuild is pending. The record's
         * counters (as projected) stand in. */
        rc = record_counters(x, event_id, &k);
    }
    if (rc != BR_OK) {
        return rc;
    }
    memset(out, 0, sizeof *out);
    out->id = event_id;
    out->owner_id = s.owner_id;
    out->spec = s.spec;
    memcpy(out->held, k.held, sizeof out->held);
    memcpy(out->sold, k.sold, sizeof out->sold);
    return BR_OK;
}

void dist_op_event_list(struct br_backend *b, uint64_t after_id, struct br_call *call)
{
    struct br_distributed *x = self(b);
    call->list_count = 0;
    struct dist_conn *c = NULL;
    call->err = dist_conn_take(x, &c);
    uint64_t count = 0;
    if (call->err == BR_OK) {
        call->err = dist_read_cat(x, c, "events", &count);
    }
    uint64_t pg_count = 0;
    if (call->err == BR_OK && dist_refusing(x) &&
        br_pg_event_max_id(x->cfg.pg, &pg_count) == BR_OK && pg_count > count) {
        count = pg_count; /* Redis lost its data: the catalog is PostgreSQL's meanwhile */
    }
    uint64_t first = after_id < count ? after_id + 1 : UINT64_MAX;
    for (uint64_t id = first;
         call->err == BR_OK && id <= count && call->list_count < call->list_cap; id++) {
        int rc = read_event(x, c, id, &call->events[call->list_count]);
        if (rc == BR_OK) {
            call->list_count++;
        } else if (rc != BR_E_NOT_FOUND) { /* an event being created: not listed yet */
            call->err = rc;
        }
    }
    if (c != NULL) {
        dist_conn_give(x, c);
    }
    call->done(call);
}

void dist_op_event_get(struct br_backend *b, uint64_t event_id, struct br_call *call)
{
    struct br_distributed *x = self(b);
    struct dist_conn *c = NULL;
    call->err = dist_conn_take(x, &c);
    if (call->err == BR_OK) {
        call->err = read_event(x, c, event_id, &call->r.event);
        dist_conn_give(x, c);
    }
    call->done(call);
}

void dist_op_event_stats(struct br_backend *b, uint64_t event_id, struct br_call *call)
{
    struct br_distributed *x = self(b);
    struct dist_spec s;
    call->err = dist_spec(x, NULL, event_id, &s);
    struct dist_conn *c = NULL;
    if (call->err == BR_OK) {
        call->err = dist_conn_take(x, &c);
    }
    struct br_redis_counters k;
    if (call->err == BR_OK) {
        call->err = dist_read_counters(x, c, event_id, s.spec.zone_count, &k);
        dist_conn_give(x, c);
    }
    if (call->err == BR_OK) {
        struct br_api_stats *o = &call->r.stats;
        memset(o, 0, sizeof *o);
        o->event_id = event_id;
        o->owner_id = s.owner_id;
        o->queue_length = k.queue_length;
        o->admitted = k.admitted;
        o->active_passes = k.active_passes;
        o->zone_count = s.spec.zone_count;
        for (uint32_t z = 0; z < s.spec.zone_count; z++) {
            o->capacity[z] = s.spec.zones[z].capacity;
            o->held[z] = k.held[z];
            o->sold[z] = k.sold[z];
        }
        memcpy(o->bookings, k.bookings, sizeof o->bookings);
    }
    call->done(call);
}
