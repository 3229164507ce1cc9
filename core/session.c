/*
 * session.c -- refresh sessions (see session.h): open, rotate with reuse
 * detection, revoke, revoke all of a user's.
 */
#include "session.h"

#include <string.h>

#include "catalog.h"
#include "engine.h"
#include "panic.h"

_Static_assert(sizeof(struct br_session) == 24, "session.h states the cost of a session");

static struct br_session *find(const struct br_engine *e, uint64_t session_id)
{
    if (session_id == 0 || session_id > e->session_count) {
        return NULL;
    }
    return &e->sessions[session_id - 1];
}

static bool ttl_ok(int64_t ttl_ms)
{
    return ttl_ms >= 1 && ttl_ms <= BR_TTL_MS_MAX;
}

/* A session's id is its index + 1 (it is not stored). */
static uint64_t id_of(const struct br_engine *e, const struct br_session *s)
{
    BR_ASSERT(s >= e->sessions && s < e->sessions + e->session_count);
    return (uint64_t)(s - e->sessions) + 1;
}

static uint8_t state_at(const struct br_engine *e, const struct br_session *s, int64_t now_ms)
{
    const struct br_user *u = br_catalog_user(e, s->user_id);
    BR_ASSERT(u != NULL);
    if (s->revoked || id_of(e, s) <= u->sessions_floor) {
        return BR_SESSION_REVOKED;
    }
    return now_ms >= s->expires_at_ms ? BR_SESSION_EXPIRED : BR_SESSION_LIVE;
}

uint8_t br_session_state(const struct br_engine *e, uint64_t session_id, int64_t now_ms)
{
    const struct br_session *s = find(e, session_id);
    return s == NULL ? BR_SESSION_NONE : state_at(e, s, now_ms);
}

int br_session_open(struct br_engine *e, const struct br_cmd *c, struct br_outcome *out)
{
    if (c->user_id == 0) {
        return out->err = BR_E_FORBIDDEN;
    }
    if (br_catalog_user(e, c->user_id) == NULL) {
        return out->err = BR_E_NOT_FOUND;
    }
    if (!ttl_ok(c->u.session_open.ttl_ms) || c->u.session_open.generation < 1 ||
        c->u.session_open.generation > BR_SESSION_GENERATION_FIRST_MAX) {
        return out->err = BR_E_INVALID;
    }
    if (e->session_count >= e->sessions_max) {
        return out->err = BR_E_FULL;
    }
    struct br_session *s = &e->sessions[e->session_count];
    memset(s, 0, sizeof *s);
    e->session_count++;
    s->user_id = (uint32_t)c->user_id; /* <= users_max <= 2^30 */
    s->generation = c->u.session_open.generation;
    s->expires_at_ms = c->now_ms + c->u.session_open.ttl_ms;
    out->id = e->session_count;
    out->ref = s->user_id;
    out->count = s->generation;
    out->deadline_ms = s->expires_at_ms;
    out->status = BR_SESSION_LIVE;
    return out->err = BR_OK;
}

int br_session_rotate(struct br_engine *e, const struct br_cmd *c, struct br_outcome *out)
{
    if (c->user_id != 0) {
        return out->err = BR_E_FORBIDDEN;
    }
    if (!ttl_ok(c->u.session_rotate.ttl_ms)) {
        return out->err = BR_E_INVALID;
    }
    struct br_session *s = find(e, c->u.session_rotate.session_id);
    if (s == NULL || c->u.session_rotate.generation > s->generation) {
        return out->err = BR_E_UNAUTHORIZED; /* never issued: nothing to learn from it */
    }
    out->id = id_of(e, s);
    out->ref = s->user_id;
    out->status = state_at(e, s, c->now_ms);
    if (out->status != BR_SESSION_LIVE) {
        return out->err = BR_E_UNAUTHORIZED;
    }
    if (c->u.session_rotate.generation < s->generation) {
        /* A token its owner already rotated away: a copy. Kill the session. */
        s->revoked = true;
        out->status = BR_SESSION_REVOKED;
        out->count = 1;
        return out->err = BR_E_UNAUTHORIZED;
    }
    if (s->generation == UINT32_MAX) {
        return out->err = BR_E_FULL; /* 4 billion rotations: sign in again */
    }
    s->generation++;
    s->expires_at_ms = c->now_ms + c->u.session_rotate.ttl_ms;
    const struct br_user *u = br_catalog_user(e, s->user_id);
    out->status = u->role;
    out->count = s->generation;
    out->deadline_ms = s->expires_at_ms;
    return out->err = BR_OK;
}

int br_session_revoke(struct br_engine *e, const struct br_cmd *c, struct br_outcome *out)
{
    if (c->user_id != 0) {
        return out->err = BR_E_FORBIDDEN;
    }
    struct br_session *s = find(e, c->u.session_revoke.session_id);
    if (s == NULL || c->u.session_revoke.generation > s->generation) {
        return out->err = BR_E_UNAUTHORIZED;
    }
    out->id = id_of(e, s);
    out->ref = s->user_id;
    uint8_t before = state_at(e, s, c->now_ms);
    if (!s->revoked && before != BR_SESSION_REVOKED) {
        out->count = 1;
    }
    s->revoked = true;
    out->status = BR_SESSION_REVOKED;
    return out->err = BR_OK;
}

int br_session_revoke_all(struct br_engine *e, const struct br_cmd *c, struct br_outcome *out)
{
    if (c->user_id == 0) {
        return out->err = BR_E_FORBIDDEN;
    }
    struct br_user *u = br_catalog_user(e, c->user_id);
    if (u == NULL) {
        return out->err = BR_E_NOT_FOUND;
    }
    BR_ASSERT(u->sessions_floor <= e->session_count);
    u->sessions_floor = e->session_count;
    out->id = u->id;
    return out->err = BR_OK;
}

void br_session_check(const struct br_engine *e)
{
    BR_ASSERT(e->session_count <= e->sessions_max);
    for (uint32_t i = 0; i < e->session_count; i++) {
        const struct br_session *s = &e->sessions[i];
        BR_ASSERT(br_catalog_user(e, s->user_id) != NULL);
        BR_ASSERT(s->generation >= 1);
    }
    for (uint32_t i = 0; i < e->user_count; i++) {
        BR_ASSERT(e->users[i].sessions_floor <= e->session_count);
    }
}
