/*
 * support.h -- shared helpers of the core unit tests (tests/core/test_*.c).
 *
 * Every test builds its own engine over heap memory with a small config
 * (t_config_small, then adjust a capacity to make a table fillable), builds
 * commands with the c_*() helpers and applies them with apply(), which runs
 * br_engine_apply and then br_engine_check -- every module's checker --
 * after every single step, and cross-checks the outcome against the effect
 * list. A checker that fires calls br_panic (bradapters), which aborts: the
 * test executable fails.
 *
 * The t_*() helpers are shortcuts for steps a test needs but does not test
 * (register a user, create an event, take a hold): they assert BR_OK.
 */
#ifndef BR_TEST_SUPPORT_H
#define BR_TEST_SUPPORT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/cmd.h"
#include "core/engine.h"
#include "core/err.h"

/* A small config: every table holds a few dozen entries at most. */
void t_config_small(struct br_config *cfg);

/* An engine over freshly allocated, 16-byte aligned memory; cfg NULL means
 * t_config_small. Fails the test if init does. Free with t_engine_free. */
struct br_engine *t_engine_new(const struct br_config *cfg);
void t_engine_free(struct br_engine *e);

/* Applies c at c->now_ms, then runs br_engine_check, then checks that the
 * outcome's effect_count and effects_hash describe br_engine_effects. out may
 * be NULL. Returns the result code. */
int apply(struct br_engine *e, const struct br_cmd *c, struct br_outcome *out);

/* Applies c and fails the test unless the result is want. */
void apply_expect(struct br_engine *e, const struct br_cmd *c, int want, struct br_outcome *out);

/* The default event: sale open from 0, no pass needed, per-user limit 4,
 * max_active 2, admit_per_tick 2, pass and hold TTL 1000 ms, one zone
 * "Floor" of 10 seats at 25.00 EUR, queue capacity from the config. */
struct br_event_spec t_spec(void);

/* Command builders; every unused byte is zero. */
enum t_outcome_flag { T_FAILED = 0, T_SUCCEEDED = 1 };
struct br_cmd c_event(int64_t now, uint64_t actor, const struct br_event_spec *s);
struct br_cmd c_register(int64_t now, const char *email, uint8_t role);
struct br_cmd c_role_set(int64_t now, uint64_t actor, uint64_t target, uint8_t role);
struct br_cmd c_join(int64_t now, uint64_t user, uint64_t event);
struct br_cmd c_leave(int64_t now, uint64_t user, uint64_t event);
struct br_cmd c_admit(int64_t now, uint64_t event);
struct br_cmd c_reserve(int64_t now, uint64_t user, uint64_t event, uint32_t zone,
                        uint32_t quantity, uint64_t pass, uint64_t idem_key);
struct br_cmd c_cancel(int64_t now, uint64_t user, uint64_t hold);
struct br_cmd c_sweep(int64_t now, uint64_t event, uint32_t max);
struct br_cmd c_pay(int64_t now, uint64_t user, uint64_t hold);
/* payment_create with point 8's quiet time (0 = none). */
struct br_cmd c_pay_checked(int64_t now, uint64_t user, uint64_t hold, uint32_t check_ms);
struct br_cmd c_payment_check(int64_t now, uint32_t max);
struct br_cmd c_pay_event(int64_t now, uint64_t provider_event, uint64_t payment,
                          enum t_outcome_flag result);
struct br_cmd c_refund(int64_t now, uint64_t payment, enum t_outcome_flag result);
struct br_cmd c_saga_step(int64_t now, uint32_t max);

/* Shortcuts that must succeed. */
uint64_t t_user(struct br_engine *e, int64_t now, const char *email);
uint64_t t_users(struct br_engine *e, uint32_t n, uint64_t *ids); /* u1@t .. un@t; returns ids[0] */
uint64_t t_event(struct br_engine *e, int64_t now, const struct br_event_spec *s);
uint64_t t_hold(struct br_engine *e, int64_t now, uint64_t user, uint64_t event, uint32_t qty);
uint64_t t_payment(struct br_engine *e, int64_t now, uint64_t user, uint64_t hold);
/* Joins, admits at now and returns the user's pass id (event must be open). */
uint64_t t_pass(struct br_engine *e, int64_t now, uint64_t user, uint64_t event);

/* The last apply's effects of this kind: how many, and the first (NULL if none). */
uint32_t t_effect_count(const struct br_engine *e, uint8_t kind);
const struct br_effect *t_effect(const struct br_engine *e, uint8_t kind);

/* State read-backs. */
uint8_t t_hold_state(const struct br_engine *e, uint64_t hold);
uint8_t t_payment_state(const struct br_engine *e, uint64_t payment);
uint32_t t_available(const struct br_engine *e, uint64_t event, uint32_t zone);
uint32_t t_tickets(const struct br_engine *e, uint64_t event, uint64_t user);

#endif
