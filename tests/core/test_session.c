/* test_session.c -- refresh sessions: open, rotate, reuse detection, revoke,
 * revoke all, expiry, a full table. */
#include "support.h"

#include <string.h>

#include "core/session.h"

#define TTL 10000

static struct br_cmd c_open(int64_t now, uint64_t user, int64_t ttl_ms)
{
    struct br_cmd c;
    memset(&c, 0, sizeof c);
    c.type = BR_CMD_SESSION_OPEN;
    c.now_ms = now;
    c.user_id = user;
    c.u.session_open.ttl_ms = ttl_ms;
    c.u.session_open.generation = 1; /* the server draws it; 1 keeps these tests readable */
    return c;
}

static struct br_cmd c_token(uint8_t type, int64_t now, uint64_t sid, uint32_t gen)
{
    struct br_cmd c;
    memset(&c, 0, sizeof c);
    c.type = type;
    c.now_ms = now;
    c.u.session_rotate.session_id = sid;
    c.u.session_rotate.generation = gen;
    c.u.session_rotate.ttl_ms = type == BR_CMD_SESSION_ROTATE ? TTL : 0;
    return c;
}

static struct br_cmd c_revoke_all(int64_t now, uint64_t user)
{
    struct br_cmd c;
    memset(&c, 0, sizeof c);
    c.type = BR_CMD_SESSION_REVOKE_ALL;
    c.now_ms = now;
    c.user_id = user;
    return c;
}

static uint64_t open_ok(struct br_engine *e, int64_t now, uint64_t user)
{
    struct br_cmd c = c_open(now, user, TTL);
    struct br_outcome o;
    apply_expect(e, &c, BR_OK, &o);
    assert_int_equal(o.ref, user);
    assert_int_equal(o.count, 1);
    assert_true(o.deadline_ms == now + TTL);
    return o.id;
}

static void test_open_counts_ids_up_and_checks_actor_user_and_ttl(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    uint64_t u = t_user(e, 0, "a@t");
    assert_int_equal(open_ok(e, 5, u), 1);
    assert_int_equal(open_ok(e, 6, u), 2);
    struct br_cmd c = c_open(7, 0, TTL);
    apply_expect(e, &c, BR_E_FORBIDDEN, NULL);
    c = c_open(7, u + 1, TTL);
    apply_expect(e, &c, BR_E_NOT_FOUND, NULL);
    c = c_open(7, u, 0);
    apply_expect(e, &c, BR_E_INVALID, NULL);
    c = c_open(7, u, BR_TTL_MS_MAX + 1);
    apply_expect(e, &c, BR_E_INVALID, NULL);
    c = c_open(7, u, TTL);
    c.u.session_open.generation = 0;
    apply_expect(e, &c, BR_E_INVALID, NULL);
    c.u.session_open.generation = BR_SESSION_GENERATION_FIRST_MAX + 1;
    apply_expect(e, &c, BR_E_INVALID, NULL);
    assert_int_equal(e->session_count, 2);
    t_engine_free(e);
}

static void test_rotate_moves_the_generation_and_the_expiry_on(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    uint64_t u = t_user(e, 0, "a@t");
    struct br_cmd c = c_role_set(1, 0, u, BR_ROLE_ORGANIZER);
    apply_expect(e, &c, BR_OK, NULL);
    uint64_t s = open_ok(e, 10, u);
    c = c_token(BR_CMD_SESSION_ROTATE, 500, s, 1);
    struct br_outcome o;
    apply_expect(e, &c, BR_OK, &o);
    assert_int_equal(o.id, s);
    assert_int_equal(o.ref, u);
    assert_int_equal(o.count, 2);
    assert_int_equal(o.status, BR_ROLE_ORGANIZER); /* the current role, for the new token */
    assert_true(o.deadline_ms == 500 + TTL);
    c = c_token(BR_CMD_SESSION_ROTATE, 600, s, 2);
    apply_expect(e, &c, BR_OK, &o);
    assert_int_equal(o.count, 3);
    /* Only the system rotates (the server checked the token); ttl in range. */
    c = c_token(BR_CMD_SESSION_ROTATE, 700, s, 3);
    c.user_id = u;
    apply_expect(e, &c, BR_E_FORBIDDEN, NULL);
    c = c_token(BR_CMD_SESSION_ROTATE, 700, s, 3);
    c.u.session_rotate.ttl_ms = 0;
    apply_expect(e, &c, BR_E_INVALID, NULL);
    /* Unknown sessions and generations never issued change nothing. */
    c = c_token(BR_CMD_SESSION_ROTATE, 700, s + 1, 1);
    apply_expect(e, &c, BR_E_UNAUTHORIZED, NULL);
    c = c_token(BR_CMD_SESSION_ROTATE, 700, s, 4);
    apply_expect(e, &c, BR_E_UNAUTHORIZED, NULL);
    assert_int_equal(br_session_state(e, s, 700), BR_SESSION_LIVE);
    t_engine_free(e);
}

static void test_reusing_a_rotated_token_revokes_the_session(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    uint64_t u = t_user(e, 0, "a@t");
    uint64_t s = open_ok(e, 10, u);
    struct br_cmd c = c_token(BR_CMD_SESSION_ROTATE, 20, s, 1);
    apply_expect(e, &c, BR_OK, NULL);
    /* The generation-1 token again: a copy. */
    c = c_token(BR_CMD_SESSION_ROTATE, 30, s, 1);
    struct br_outcome o;
    apply_expect(e, &c, BR_E_UNAUTHORIZED, &o);
    assert_int_equal(o.status, BR_SESSION_REVOKED);
    assert_int_equal(o.count, 1);
    /* ... and the rightful newest token is dead too. */
    c = c_token(BR_CMD_SESSION_ROTATE, 40, s, 2);
    apply_expect(e, &c, BR_E_UNAUTHORIZED, &o);
    assert_int_equal(o.status, BR_SESSION_REVOKED);
    assert_int_equal(o.count, 0);
    assert_int_equal(br_session_state(e, s, 40), BR_SESSION_REVOKED);
    t_engine_free(e);
}

static void test_a_session_expires_exactly_at_its_deadline(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    uint64_t u = t_user(e, 0, "a@t");
    uint64_t s = open_ok(e, 0, u);
    assert_int_equal(br_session_state(e, s, TTL - 1), BR_SESSION_LIVE);
    assert_int_equal(br_session_state(e, s, TTL), BR_SESSION_EXPIRED);
    struct br_cmd c = c_token(BR_CMD_SESSION_ROTATE, TTL, s, 1);
    uint64_t before = br_engine_state_hash(e);
    struct br_outcome o;
    apply_expect(e, &c, BR_E_UNAUTHORIZED, &o);
    assert_int_equal(o.status, BR_SESSION_EXPIRED);
    assert_true(br_engine_state_hash(e) == before);
    c = c_token(BR_CMD_SESSION_ROTATE, TTL - 1, s, 1); /* clock skew: still live then */
    apply_expect(e, &c, BR_OK, NULL);
    t_engine_free(e);
}

static void test_revoke_is_idempotent_and_ends_the_session(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    uint64_t u = t_user(e, 0, "a@t");
    uint64_t s = open_ok(e, 0, u);
    uint64_t other = open_ok(e, 0, u);
    struct br_cmd c = c_token(BR_CMD_SESSION_REVOKE, 5, s, 1);
    struct br_outcome o;
    apply_expect(e, &c, BR_OK, &o);
    assert_int_equal(o.count, 1);
    apply_expect(e, &c, BR_OK, &o);
    assert_int_equal(o.count, 0);
    c = c_token(BR_CMD_SESSION_ROTATE, 6, s, 1);
    apply_expect(e, &c, BR_E_UNAUTHORIZED, NULL);
    assert_int_equal(br_session_state(e, other, 6), BR_SESSION_LIVE);
    c = c_token(BR_CMD_SESSION_REVOKE, 6, other, 2); /* never issued */
    apply_expect(e, &c, BR_E_UNAUTHORIZED, NULL);
    c = c_token(BR_CMD_SESSION_REVOKE, 6, other + 5, 1);
    apply_expect(e, &c, BR_E_UNAUTHORIZED, NULL);
    c = c_token(BR_CMD_SESSION_REVOKE, 6, other, 1);
    c.user_id = u;
    apply_expect(e, &c, BR_E_FORBIDDEN, NULL);
    t_engine_free(e);
}

static void test_revoke_all_ends_every_session_of_the_user_only(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    uint64_t a = t_user(e, 0, "a@t");
    uint64_t b = t_user(e, 0, "b@t");
    uint64_t a1 = open_ok(e, 0, a);
    uint64_t b1 = open_ok(e, 0, b);
    uint64_t a2 = open_ok(e, 0, a);
    struct br_cmd c = c_revoke_all(1, a);
    apply_expect(e, &c, BR_OK, NULL);
    assert_int_equal(br_session_state(e, a1, 2), BR_SESSION_REVOKED);
    assert_int_equal(br_session_state(e, a2, 2), BR_SESSION_REVOKED);
    assert_int_equal(br_session_state(e, b1, 2), BR_SESSION_LIVE);
    c = c_token(BR_CMD_SESSION_ROTATE, 2, a2, 1);
    apply_expect(e, &c, BR_E_UNAUTHORIZED, NULL);
    /* A later sign-in is not affected. */
    uint64_t a3 = open_ok(e, 3, a);
    assert_int_equal(br_session_state(e, a3, 4), BR_SESSION_LIVE);
    c = c_revoke_all(5, 0);
    apply_expect(e, &c, BR_E_FORBIDDEN, NULL);
    c = c_revoke_all(5, b + 7);
    apply_expect(e, &c, BR_E_NOT_FOUND, NULL);
    t_engine_free(e);
}

static void test_a_full_session_table_is_full(void **state)
{
    (void)state;
    struct br_config cfg;
    t_config_small(&cfg);
    cfg.users_max = 2;
    struct br_engine *e = t_engine_new(&cfg);
    uint64_t u = t_user(e, 0, "a@t");
    for (uint32_t i = 0; i < 2 * BR_SESSIONS_PER_USER; i++) {
        open_ok(e, 0, u);
    }
    struct br_cmd c = c_open(1, u, TTL);
    uint64_t before = br_engine_state_hash(e);
    apply_expect(e, &c, BR_E_FULL, NULL);
    assert_true(br_engine_state_hash(e) == before);
    t_engine_free(e);
}

/* The first generation is the server's random draw: a token minted for one
 * session does not name another session that got the same id (after a
 * journal repair dropped the first one's open). */
static void test_the_first_generation_is_the_one_given(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    uint64_t u = t_user(e, 0, "a@t");
    struct br_cmd c = c_open(0, u, TTL);
    c.u.session_open.generation = 123456789;
    struct br_outcome o;
    apply_expect(e, &c, BR_OK, &o);
    assert_int_equal(o.count, 123456789);
    uint64_t s = o.id;
    c = c_token(BR_CMD_SESSION_ROTATE, 1, s, 1); /* a token of another session with this id */
    c.u.session_rotate.generation = 123456790;
    apply_expect(e, &c, BR_E_UNAUTHORIZED, &o);
    assert_int_equal(br_session_state(e, s, 1), BR_SESSION_LIVE);
    c.u.session_rotate.generation = 123456789;
    apply_expect(e, &c, BR_OK, &o);
    assert_int_equal(o.count, 123456790);
    t_engine_free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_counts_ids_up_and_checks_actor_user_and_ttl),
        cmocka_unit_test(test_rotate_moves_the_generation_and_the_expiry_on),
        cmocka_unit_test(test_reusing_a_rotated_token_revokes_the_session),
        cmocka_unit_test(test_a_session_expires_exactly_at_its_deadline),
        cmocka_unit_test(test_revoke_is_idempotent_and_ends_the_session),
        cmocka_unit_test(test_revoke_all_ends_every_session_of_the_user_only),
        cmocka_unit_test(test_a_full_session_table_is_full),
        cmocka_unit_test(test_the_first_generation_is_the_one_given),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
