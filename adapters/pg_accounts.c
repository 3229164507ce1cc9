/*
 * pg_accounts.c -- users and refresh sessions in PostgreSQL (pg.h).
 *
 * Sessions follow core/session.c rule for rule; the state of a session is
 * decided in C from its row and its user's floor (state_at below is
 * session.c's), so the two cannot drift apart in SQL. Every session command
 * locks the rows it reads (FOR UPDATE), so concurrent rotations of one
 * token are ordered: the first moves the generation, the second presents an
 * older one and is a reuse.
 */
#include <stdlib.h>
#include <string.h>

#include "adapters/pg_internal.h"
#include "core/err.h"
#include "core/panic.h"
#include "core/session.h"

#define USER_COLS "id, email, name, password_hash, salt, role, sessions_floor, created_ms"

static const struct br_pg_stmt user_max = {BR_PG_S_USER_MAX, "user_max",
                                           "SELECT coalesce(max(id), 0) FROM users", 0};
static const struct br_pg_stmt user_insert = {
    BR_PG_S_USER_INSERT, "user_insert",
    "INSERT INTO users (id, email, name, password_hash, salt, role, created_ms) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7)",
    7};
static const struct br_pg_stmt user_by_email = {
    BR_PG_S_USER_BY_EMAIL, "user_by_email", "SELECT " USER_COLS " FROM users WHERE email = $1", 1};
static const struct br_pg_stmt user_get = {BR_PG_S_USER_GET, "user_get",
                                           "SELECT " USER_COLS " FROM users WHERE id = $1", 1};
static const struct br_pg_stmt user_role = {BR_PG_S_USER_ROLE, "user_role",
                                            "UPDATE users SET role = $2 WHERE id = $1", 2};
static const struct br_pg_stmt session_user = {
    BR_PG_S_SESSION_USER, "session_user",
    "SELECT role, sessions_floor FROM users WHERE id = $1 FOR UPDATE", 1};
static const struct br_pg_stmt session_insert = {
    BR_PG_S_SESSION_INSERT, "session_insert",
    "INSERT INTO sessions (user_id, generation, expires_at_ms, created_ms) "
    "VALUES ($1, $2, $3, $4) RETURNING id",
    4};
static const struct br_pg_stmt session_get = {
    BR_PG_S_SESSION_GET, "session_get",
    "SELECT s.user_id, s.generation, s.expires_at_ms, s.revoked, u.sessions_floor, u.role "
    "FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = $1 FOR UPDATE",
    1};
static const struct br_pg_stmt session_rotate = {
    BR_PG_S_SESSION_ROTATE, "session_rotate",
    "UPDATE sessions SET generation = $2, expires_at_ms = $3 WHERE id = $1", 3};
static const struct br_pg_stmt session_revoke = {BR_PG_S_SESSION_REVOKE, "session_revoke",
                                                 "UPDATE sessions SET revoked = true WHERE id = $1",
                                                 1};
static const struct br_pg_stmt session_floor = {
    BR_PG_S_SESSION_FLOOR, "session_floor",
    "UPDATE users SET sessions_floor = GREATEST(sessions_floor, "
    "(SELECT coalesce(max(id), 0) FROM sessions WHERE user_id = $1)) WHERE id = $1",
    1};

/* Runs s with p; a result with rows in *r (the caller clears it). */
static int query(struct br_pg_tx *t, const struct br_pg_stmt *s, const struct br_pg_params *p,
                 PGresult **r, const char *what)
{
    *r = br_pg_exec(t, s, p);
    return br_pg_check(t, *r, PGRES_TUPLES_OK, what);
}

static int command(struct br_pg_tx *t, const struct br_pg_stmt *s, const struct br_pg_params *p,
                   const char *what, int *rows)
{
    PGresult *r = br_pg_exec(t, s, p);
    int rc = br_pg_check(t, r, PGRES_COMMAND_OK, what);
    if (rc == BR_OK) {
        if (rows != NULL) {
            *rows = (int)strtol(PQcmdTuples(r), NULL, 10);
        }
        PQclear(r);
    }
    return rc;
}

/* ---- users -------------------------------------------------------------- */

struct register_arg {
    const struct br_cmd *c;
    br_pg_hook hook;
    void *ctx;
    uint64_t id;
};

static int register_body(struct br_pg_tx *t, void *argp)
{
    struct register_arg *a = argp;
    const struct br_cmd *c = a->c;
    int rc = br_pg_lock_xact(t, BR_PG_LOCK_USERS);
    struct br_pg_params p;
    br_pg_params_init(&p);
    PGresult *r;
    if (rc == BR_OK && (rc = query(t, &user_max, &p, &r, "user max id")) == BR_OK) {
        a->id = br_pg_u64(r, 0, 0) + 1;
        PQclear(r);
    }
    if (rc != BR_OK) {
        return rc;
    }
    br_pg_p_u64(&p, a->id);
    br_pg_p_text(&p, c->u.user_register.email);
    br_pg_p_text(&p, c->u.user_register.name);
    br_pg_p_bytes(&p, c->u.user_register.password_hash, BR_PASSWORD_HASH_LEN);
    br_pg_p_bytes(&p, c->u.user_register.salt, BR_SALT_LEN);
    br_pg_p_i64(&p, c->u.user_register.role);
    br_pg_p_i64(&p, c->now_ms);
    rc = command(t, &user_insert, &p, "user insert", NULL);
    if (rc == BR_E_DUPLICATE) {
        return BR_E_EMAIL_TAKEN; /* 23505: the only unique key besides the id we hold the lock for
                                  */
    }
    if (rc == BR_E_CORRUPT) {
        return BR_E_INVALID; /* a CHECK on the role */
    }
    if (rc == BR_OK && a->hook != NULL) {
        rc = a->hook(a->ctx, a->id);
    }
    return rc;
}

int br_pg_user_register(struct br_pg *pg, const struct br_cmd *c, br_pg_hook hook, void *ctx,
                        uint64_t *id_out)
{
    BR_ASSERT(c->type == BR_CMD_USER_REGISTER);
    *id_out = 0;
    if (c->u.user_register.role >= BR_ROLE_COUNT ||
        memchr(c->u.user_register.email, 0, BR_EMAIL_MAX) == NULL ||
        memchr(c->u.user_register.name, 0, BR_NAME_MAX) == NULL) {
        return BR_E_INVALID;
    }
    struct register_arg a = {.c = c, .hook = hook, .ctx = ctx, .id = 0};
    int rc = br_pg_run(pg, "user_register", BR_PG_WRITE, register_body, &a);
    if (rc == BR_OK) {
        *id_out = a.id;
    }
    return rc;
}

static int read_user(const PGresult *r, struct br_pg_user *u)
{
    memset(u, 0, sizeof *u);
    u->id = br_pg_u64(r, 0, 0);
    br_pg_str(r, 0, 1, u->email, sizeof u->email);
    br_pg_str(r, 0, 2, u->name, sizeof u->name);
    int rc = br_pg_bytea(r, 0, 3, u->password_hash, sizeof u->password_hash);
    if (rc == BR_OK) {
        rc = br_pg_bytea(r, 0, 4, u->salt, sizeof u->salt);
    }
    u->role = (uint8_t)br_pg_i64(r, 0, 5);
    u->sessions_floor = br_pg_u64(r, 0, 6);
    u->created_ms = br_pg_i64(r, 0, 7);
    return rc;
}

struct user_arg {
    const struct br_pg_stmt *s;
    const char *email;
    uint64_t id;
    struct br_pg_user *out;
};

static int user_read_body(struct br_pg_tx *t, void *argp)
{
    struct user_arg *a = argp;
    struct br_pg_params p;
    br_pg_params_init(&p);
    if (a->email != NULL) {
        br_pg_p_text(&p, a->email);
    } else {
        br_pg_p_u64(&p, a->id);
    }
    PGresult *r;
    int rc = query(t, a->s, &p, &r, "user read");
    if (rc != BR_OK) {
        return rc;
    }
    rc = PQntuples(r) == 1 ? read_user(r, a->out) : BR_E_NOT_FOUND;
    PQclear(r);
    return rc;
}

int br_pg_user_by_email(struct br_pg *pg, const char *email, struct br_pg_user *out)
{
    struct user_arg a = {.s = &user_by_email, .email = email, .out = out};
    return br_pg_run(pg, "user_by_email", BR_PG_READ, user_read_body, &a);
}

int br_pg_user_get(struct br_pg *pg, uint64_t id, struct br_pg_user *out)
{
    struct user_arg a = {.s = &user_get, .id = id, .out = out};
    return br_pg_run(pg, "user_get", BR_PG_READ, user_read_body, &a);
}

struct role_arg {
    uint64_t id;
    uint8_t role;
};

static int role_body(struct br_pg_tx *t, void *argp)
{
    struct role_arg *a = argp;
    struct br_pg_params p;
    br_pg_params_init(&p);
    br_pg_p_u64(&p, a->id);
    br_pg_p_i64(&p, a->role);
    int rows = 0;
    int rc = command(t, &user_role, &p, "user role set", &rows);
    return rc == BR_OK && rows == 0 ? BR_E_NOT_FOUND : rc;
}

int br_pg_user_role_set(struct br_pg *pg, uint64_t user_id, uint8_t role)
{
    if (role >= BR_ROLE_COUNT) {
        return BR_E_INVALID;
    }
    struct role_arg a = {.id = user_id, .role = role};
    return br_pg_run(pg, "user_role_set", BR_PG_WRITE, role_body, &a);
}

int br_pg_user_max_id(struct br_pg *pg, uint64_t *out)
{
    return br_pg_read_u64(pg, &user_max, out);
}

/* ---- sessions ----------------------------------------------------------- */

static bool ttl_ok(int64_t ttl_ms)
{
    return ttl_ms >= 1 && ttl_ms <= BR_TTL_MS_MAX;
}

struct session_row {
    uint64_t user_id;
    uint32_t generation;
    int64_t expires_at_ms;
    bool revoked;
    uint64_t floor;
    uint8_t role;
};

/* session.c's state_at, over the row and its user's floor. */
static uint8_t state_at(uint64_t id, const struct session_row *s, int64_t now_ms)
{
    if (s->revoked || id <= s->floor) {
        return BR_SESSION_REVOKED;
    }
    return now_ms >= s->expires_at_ms ? BR_SESSION_EXPIRED : BR_SESSION_LIVE;
}

/* The session and its user, both rows locked. *found false if no such session. */
static int session_read(struct br_pg_tx *t, uint64_t id, struct session_row *s, bool *found)
{
    struct br_pg_params p;
    br_pg_params_init(&p);
    br_pg_p_u64(&p, id);
    PGresult *r;
    int rc = query(t, &session_get, &p, &r, "session read");
    if (rc != BR_OK) {
        return rc;
    }
    *found = PQntuples(r) == 1;
    if (*found) {
        s->user_id = br_pg_u64(r, 0, 0);
        s->generation = (uint32_t)br_pg_i64(r, 0, 1);
        s->expires_at_ms = br_pg_i64(r, 0, 2);
        s->revoked = br_pg_bool(r, 0, 3);
        s->floor = br_pg_u64(r, 0, 4);
        s->role = (uint8_t)br_pg_i64(r, 0, 5);
    }
    PQclear(r);
    return BR_OK;
}

/* Locks the user's row. *found false if no such user. */
static int user_lock(struct br_pg_tx *t, uint64_t user_id, bool *found)
{
    struct br_pg_params p;
    br_pg_params_init(&p);
    br_pg_p_u64(&p, user_id);
    PGresult *r;
    int rc = query(t, &session_user, &p, &r, "session user lock");
    if (rc == BR_OK) {
        *found = PQntuples(r) == 1;
        PQclear(r);
    }
    return rc;
}

struct session_arg {
    const struct br_cmd *c;
    struct br_outcome *out; /* the domain answer; the body returns connection-level errors */
};

static int open_body(struct br_pg_tx *t, void *argp)
{
    struct session_arg *a = argp;
    const struct br_cmd *c = a->c;
    memset(a->out, 0, sizeof *a->out);
    bool found = false;
    int rc = user_lock(t, c->user_id, &found);
    if (rc != BR_OK || !found) {
        a->out->err = BR_E_NOT_FOUND;
        return rc;
    }
    if (!ttl_ok(c->u.session_open.ttl_ms) || c->u.session_open.generation < 1 ||
        c->u.session_open.generation > BR_SESSION_GENERATION_FIRST_MAX) {
        a->out->err = BR_E_INVALID;
        return BR_OK;
    }
    struct br_pg_params p;
    br_pg_params_init(&p);
    br_pg_p_u64(&p, c->user_id);
    br_pg_p_i64(&p, c->u.session_open.generation);
    br_pg_p_i64(&p, c->now_ms + c->u.session_open.ttl_ms);
    br_pg_p_i64(&p, c->now_ms);
    PGresult *r;
    rc = query(t, &session_insert, &p, &r, "session open");
    if (rc != BR_OK) {
        return rc;
    }
    a->out->id = br_pg_u64(r, 0, 0);
    PQclear(r);
    a->out->ref = c->user_id;
    a->out->count = c->u.session_open.generation;
    a->out->deadline_ms = c->now_ms + c->u.session_open.ttl_ms;
    a->out->status = BR_SESSION_LIVE;
    a->out->err = BR_OK;
    return BR_OK;
}

static int set_row(struct br_pg_tx *t, const struct br_pg_stmt *s, uint64_t id, const int64_t *more,
                   int nmore)
{
    struct br_pg_params p;
    br_pg_params_init(&p);
    br_pg_p_u64(&p, id);
    for (int i = 0; i < nmore; i++) {
        br_pg_p_i64(&p, more[i]);
    }
    return command(t, s, &p, s->name, NULL);
}

static int rotate_body(struct br_pg_tx *t, void *argp)
{
    struct session_arg *a = argp;
    const struct br_cmd *c = a->c;
    struct br_outcome *out = a->out;
    memset(out, 0, sizeof *out);
    uint64_t id = c->u.session_rotate.session_id;
    struct session_row s;
    bool found = false;
    int rc = session_read(t, id, &s, &found);
    if (rc != BR_OK || !found || c->u.session_rotate.generation > s.generation) {
        out->err = BR_E_UNAUTHORIZED; /* never issued: nothing to learn from it */
        return rc;
    }
    out->id = id;
    out->ref = s.user_id;
    out->status = state_at(id, &s, c->now_ms);
    if (out->status != BR_SESSION_LIVE) {
        out->err = BR_E_UNAUTHORIZED;
        return BR_OK;
    }
    if (c->u.session_rotate.generation < s.generation) {
        /* a token its owner already rotated away: a copy; kill the session */
        out->status = BR_SESSION_REVOKED;
        out->count = 1;
        out->err = BR_E_UNAUTHORIZED;
#ifdef BR_PLANT_PG_REUSE_NOT_REVOKED
        return BR_OK; /* planted: a reused token is refused but the session lives on */
#endif
        return set_row(t, &session_revoke, id, NULL, 0); /* committed: the answer stands */
    }
    if (s.generation == UINT32_MAX) {
        out->err = BR_E_FULL;
        return BR_OK;
    }
    int64_t v[2] = {(int64_t)s.generation + 1, c->now_ms + c->u.session_rotate.ttl_ms};
    rc = set_row(t, &session_rotate, id, v, 2);
    out->status = s.role;
    out->count = s.generation + 1;
    out->deadline_ms = v[1];
    out->err = BR_OK;
    return rc;
}

static int revoke_body(struct br_pg_tx *t, void *argp)
{
    struct session_arg *a = argp;
    const struct br_cmd *c = a->c;
    struct br_outcome *out = a->out;
    memset(out, 0, sizeof *out);
    uint64_t id = c->u.session_revoke.session_id;
    struct session_row s;
    bool found = false;
    int rc = session_read(t, id, &s, &found);
    if (rc != BR_OK || !found || c->u.session_revoke.generation > s.generation) {
        out->err = BR_E_UNAUTHORIZED;
        return rc;
    }
    out->id = id;
    out->ref = s.user_id;
    out->status = BR_SESSION_REVOKED;
    out->err = BR_OK;
    if (s.revoked || state_at(id, &s, c->now_ms) == BR_SESSION_REVOKED) {
        return BR_OK; /* logout is idempotent */
    }
    out->count = 1;
    return set_row(t, &session_revoke, id, NULL, 0);
}

static int revoke_all_body(struct br_pg_tx *t, void *argp)
{
    struct session_arg *a = argp;
    struct br_outcome *out = a->out;
    memset(out, 0, sizeof *out);
    bool found = false;
    int rc = user_lock(t, a->c->user_id, &found);
    if (rc != BR_OK || !found) {
        out->err = BR_E_NOT_FOUND;
        return rc;
    }
    out->id = a->c->user_id;
    out->err = BR_OK;
    return set_row(t, &session_floor, a->c->user_id, NULL, 0);
}

/* Runs a session body: out->err, or a connection-level error (out cleared). */
static int session_run(struct br_pg *pg, const char *what, br_pg_body body, const struct br_cmd *c,
                       struct br_outcome *out)
{
    struct session_arg a = {.c = c, .out = out};
    int rc = br_pg_run(pg, what, BR_PG_WRITE, body, &a);
    if (rc != BR_OK) {
        memset(out, 0, sizeof *out);
        out->err = rc;
    }
    return out->err;
}

static int refuse(struct br_outcome *out, int err)
{
    memset(out, 0, sizeof *out);
    return out->err = err;
}

int br_pg_session_open(struct br_pg *pg, const struct br_cmd *c, struct br_outcome *out)
{
    BR_ASSERT(c->type == BR_CMD_SESSION_OPEN);
    if (c->user_id == 0) {
        return refuse(out, BR_E_FORBIDDEN);
    }
    return session_run(pg, "session_open", open_body, c, out);
}

int br_pg_session_rotate(struct br_pg *pg, const struct br_cmd *c, struct br_outcome *out)
{
    BR_ASSERT(c->type == BR_CMD_SESSION_ROTATE);
    if (c->user_id != 0) {
        return refuse(out, BR_E_FORBIDDEN);
    }
    if (!ttl_ok(c->u.session_rotate.ttl_ms)) {
        return refuse(out, BR_E_INVALID);
    }
    return session_run(pg, "session_rotate", rotate_body, c, out);
}

int br_pg_session_revoke(struct br_pg *pg, const struct br_cmd *c, struct br_outcome *out)
{
    BR_ASSERT(c->type == BR_CMD_SESSION_REVOKE);
    if (c->user_id != 0) {
        return refuse(out, BR_E_FORBIDDEN);
    }
    return session_run(pg, "session_revoke", revoke_body, c, out);
}

int br_pg_session_revoke_all(struct br_pg *pg, const struct br_cmd *c, struct br_outcome *out)
{
    BR_ASSERT(c->type == BR_CMD_SESSION_REVOKE_ALL);
    if (c->user_id == 0) {
        return refuse(out, BR_E_FORBIDDEN);
    }
    return session_run(pg, "session_revoke_all", revoke_all_body, c, out);
}

struct state_arg {
    uint64_t id;
    int64_t now_ms;
    uint8_t *state;
};

static int state_body(struct br_pg_tx *t, void *argp)
{
    struct state_arg *a = argp;
    struct session_row s;
    bool found = false;
    int rc = session_read(t, a->id, &s, &found);
    *a->state = rc == BR_OK && found ? state_at(a->id, &s, a->now_ms) : BR_SESSION_NONE;
    return rc;
}

int br_pg_session_state(struct br_pg *pg, uint64_t session_id, int64_t now_ms, uint8_t *state)
{
    struct state_arg a = {.id = session_id, .now_ms = now_ms, .state = state};
    return br_pg_run(pg, "session_state", BR_PG_READ, state_body, &a);
}
