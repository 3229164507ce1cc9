/*
 * session.h -- refresh sessions: what lets a signed-in user get a new access
 * token without the password (and without scrypt) while the session lives,
 * and what logout revokes.
 *
 * A session is opened at login for the user; the server hands out a refresh
 * token naming (session id, generation) and signed with a server secret (the
 * token's MAC is the server's to check: the core stores no secret at all).
 * Each use rotates it: the generation moves on by one and the expiry to
 * now + ttl, and only a token of the current generation refreshes again.
 * The first generation is drawn at random by the server (and journaled):
 * session ids are dense indices, so if a journal repair ever dropped an
 * acknowledged open, the id handed out again starts at another generation
 * and the lost session's token does not name the new one (it is refused,
 * or at worst taken for a reused copy, which revokes: never a sign-in as
 * someone else but with odds of 2^-31).
 *
 *     open ──▶ live (generation 1) ──rotate(g == current)──▶ live (g + 1)
 *                │  └─rotate or revoke(g < current): reuse──▶ revoked
 *                ├──revoke (logout)──▶ revoked
 *                ├──revoke_all of its user (logout-all)──▶ revoked
 *                └──now >= expires_at_ms──▶ expired (rotate refused)
 *
 * Reuse detection: a token of an older generation was copied (the rightful
 * owner already rotated it), so presenting it revokes the session, and the
 * newest token dies with it. That rotate fails (BR_E_UNAUTHORIZED) and still
 * changes state: the one exception to "a failed command changes nothing"
 * besides a reserve's idempotency record (engine.h).
 *
 * Logout-all is O(1): the user records a floor (the session counter at that
 * moment) and every session of the user with an id at or below it is
 * revoked. Sessions are appended and never removed; ids are index + 1. One
 * session a person (a login each) is what an on-sale needs: the buyer signs
 * in once before the opening and refreshes during the rush. The
 * table holds BR_SESSIONS_PER_USER * users_max sessions (24 B each); when
 * it is full, open answers BR_E_FULL (the server then signs the user in
 * without a refresh token).
 *
 * No Lua twin: in the distributed deployment accounts live in PostgreSQL,
 * not Redis (lua/README.md). The state hash has a record per session, so a
 * backend without sessions agrees with the engine as long as none exist.
 */
#ifndef BR_SESSION_H
#define BR_SESSION_H

#include <stdbool.h>
#include <stdint.h>

#include "cmd.h"

struct br_engine;
struct br_outcome;

#define BR_SESSION_GENERATION_FIRST_MAX 0x7FFFFFFFu /* leaves 2^31 rotations */
#define BR_SESSIONS_PER_USER 1u /* sessions_max = users_max * this: 24 B per user */

/* A session's state as of some now_ms (outcome.status of rotate and revoke). */
enum br_session_state {
    BR_SESSION_NONE = 0,
    BR_SESSION_LIVE = 1,
    BR_SESSION_REVOKED = 2, /* logout, logout-all or a reused token */
    BR_SESSION_EXPIRED = 3  /* now >= expires_at_ms */
};

/* A session's id is its index + 1 and is not stored. */
struct br_session {
    int64_t expires_at_ms; /* refreshes while now < expires_at_ms */
    uint32_t user_id;      /* user ids stay below users_max <= 2^30 */
    uint32_t generation;   /* tokens of this generation refresh: random at open, + 1 a rotation */
    bool revoked;          /* by logout or reuse (logout-all is the user's floor) */
};

/* Command handlers; each fills *out and returns out->err.
 *  open:       actor = the user. BR_OK (id = session, ref = user, count = its generation,
 *              deadline_ms = expiry), BR_E_FORBIDDEN (actor 0), BR_E_NOT_FOUND (no such
 *              user), BR_E_INVALID (ttl), BR_E_FULL.
 *  rotate:     actor = system. BR_OK (id, ref = user, status = the user's current role,
 *              count = the new generation, deadline_ms = the new expiry), BR_E_UNAUTHORIZED
 *              (unknown, revoked, expired, a generation never issued; a reused older one
 *              revokes the session, count = 1), BR_E_FORBIDDEN, BR_E_INVALID (ttl).
 *  revoke:     actor = system. BR_OK (also when already revoked or expired: logout is
 *              idempotent; count = 1 when this revoked it), BR_E_UNAUTHORIZED (unknown
 *              session or a generation never issued), BR_E_FORBIDDEN.
 *  revoke_all: actor = the user. BR_OK (id = user), BR_E_FORBIDDEN, BR_E_NOT_FOUND.
 * All O(1). */
int br_session_open(struct br_engine *e, const struct br_cmd *c, struct br_outcome *out);
int br_session_rotate(struct br_engine *e, const struct br_cmd *c, struct br_outcome *out);
int br_session_revoke(struct br_engine *e, const struct br_cmd *c, struct br_outcome *out);
int br_session_revoke_all(struct br_engine *e, const struct br_cmd *c, struct br_outcome *out);

/* The session's state at now_ms (BR_SESSION_NONE for an unknown id). O(1). */
uint8_t br_session_state(const struct br_engine *e, uint64_t session_id, int64_t now_ms);

/* Asserts: every session's user exists, generations >= 1,
 * user floors within the table. O(sessions). */
void br_session_check(const struct br_engine *e);

#endif
