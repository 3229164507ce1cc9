/*
 * test_api_cmd.c -- server/api_cmd.c, the translation every backend shares
 * between API calls and the core's commands and outcomes.
 *
 * Builders: each br_api_cmd_<op>() must build byte for byte the command the
 * core's own unit tests build for that operation (tests/core/support.c's
 * c_*(), written independently), now_ms aside.
 *
 * Fillers: over random sequences of joins, admits, reserves, payments and
 * sweeps on a real engine (several seeds), every result made from an
 * outcome must equal what the engine's stored state says right after the
 * command (the queue view, the hold, the payment, the user), computed here
 * without api_cmd.c. This is what lets the distributed backend answer from
 * the Lua twins' outcomes alone. Seen failing with -DBR_PLANT=API_FILL
 * (api_cmd.c then reports the queue length as the position), see
 * scripts/test.d/22-api-cmd-plant.sh.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/catalog.h"
#include "core/hash.h"
#include "core/inventory.h"
#include "core/queue.h"
#include "core/rng.h"
#include "core/saga.h"
#include "server/api_cmd.h"
#include "tests/core/support.h"

#define TICK_MS 100u
#define USERS 12u
#define STEPS 400u
#define SEEDS 8u

static void same_cmd(struct br_cmd a, struct br_cmd b)
{
    a.now_ms = 0;
    b.now_ms = 0;
    assert_memory_equal(&a, &b, sizeof a);
}

static void test_builders_match_the_cores_commands(void **state)
{
    (void)state;
    struct br_cmd c;
    struct br_cmd ref = c_register(0, "ada@example.com", BR_ROLE_CUSTOMER);
    br_api_cmd_user_register(&c, "ada@example.com", "Test User", ref.u.user_register.password_hash,
                             ref.u.user_register.salt, BR_ROLE_CUSTOMER);
    same_cmd(c, ref);
    br_api_cmd_user_role_set(&c, 1, 2, BR_ROLE_ORGANIZER);
    same_cmd(c, c_role_set(0, 1, 2, BR_ROLE_ORGANIZER));
    struct br_event_spec s = t_spec();
    br_api_cmd_event_create(&c, 3, &s);
    same_cmd(c, c_event(0, 3, &s));
    br_api_cmd_queue_join(&c, 4, 5);
    same_cmd(c, c_join(0, 4, 5));
    br_api_cmd_queue_leave(&c, 4, 5);
    same_cmd(c, c_leave(0, 4, 5));
    br_api_cmd_reserve(&c, 4, 5, 1, 2, 77, 99);
    same_cmd(c, c_reserve(0, 4, 5, 1, 2, 77, 99));
    br_api_cmd_booking_cancel(&c, 4, 1234);
    same_cmd(c, c_cancel(0, 4, 1234));
    br_api_cmd_payment_create(&c, 4, 1234);
    same_cmd(c, c_pay(0, 4, 1234));
    const char *evt = "evt_3MtwBwLkdIwHu7ix28a3tqPa";
    br_api_cmd_payment_event(&c, evt, 42, true);
    same_cmd(c, c_pay_event(0, br_hash64(evt, strlen(evt), 0), 42, T_SUCCEEDED));
    br_api_cmd_admit(&c, 5);
    same_cmd(c, c_admit(0, 5));
    br_api_cmd_sweep(&c, 5);
    same_cmd(c, c_sweep(0, 5, BR_SWEEP_MAX));
    br_api_cmd_saga_step(&c);
    same_cmd(c, c_saga_step(0, BR_SAGA_STEP_MAX));
    br_api_cmd_refund_result(&c, 42, false);
    same_cmd(c, c_refund(0, 42, T_FAILED));
    br_api_cmd_payment_create_checked(&c, 4, 1234, 600000);
    same_cmd(c, c_pay_checked(0, 4, 1234, 600000));
    br_api_cmd_payment_create(&c, 4, 1234);
    assert_int_equal(c.u.payment_create.check_ms, 0); /* today's callers: no checks */
    br_api_cmd_payment_check(&c);
    same_cmd(c, c_payment_check(0, BR_SAGA_STEP_MAX));
}

/* The view the engine stores for (event, user), as the API shows it. */
static void expected_view(const struct br_engine *e, uint64_t event_id, uint64_t user, int64_t now,
                          struct br_api_queue *want)
{
    struct br_queue_view v;
    assert_int_equal(br_queue_view(e, event_id, user, &v), BR_OK);
    const struct br_event *ev = br_catalog_event(e, event_id);
    memset(want, 0, sizeof *want);
    want->event_id = event_id;
    want->status = v.status;
    want->position = v.position;
    want->queue_length = v.queue_length;
    if (v.status == BR_QS_WAITING) {
        want->estimated_wait_s = br_queue_wait_estimate_s(&ev->spec, v.position, TICK_MS, now);
    } else if (v.status == BR_QS_PREQUEUE) {
        want->estimated_wait_s = br_queue_wait_estimate_s(&ev->spec, v.queue_length, TICK_MS, now);
    } else if (v.status == BR_QS_ADMITTED) {
        want->pass_id = v.pass_id;
        want->pass_expires_at_ms = v.pass_deadline_ms;
    }
}

static void check_join(const struct br_engine *e, const struct br_cmd *c,
                       const struct br_outcome *o)
{
    struct br_api_queue got;
    struct br_api_queue want;
    const struct br_event *ev = br_catalog_event(e, c->u.queue_join.event_id);
    br_api_queue_from_join(&got, c, o, &ev->spec, TICK_MS);
    expected_view(e, c->u.queue_join.event_id, c->user_id, c->now_ms, &want);
    assert_memory_equal(&got, &want, sizeof got);
}

static void check_reserve(const struct br_engine *e, const struct br_cmd *c,
                          const struct br_outcome *o)
{
    const struct br_hold *h = br_inventory_hold(e, o->id);
    assert_non_null(h);
    const struct br_event *ev = br_catalog_event(e, h->event_id);
    struct br_api_booking got;
    br_api_booking_from_reserve(&got, c, o, ev->spec.zones[h->zone_id - 1].currency);
    assert_int_equal(got.id, h->id);
    assert_int_equal(got.event_id, h->event_id);
    assert_int_equal(got.user_id, h->user_id);
    assert_int_equal(got.zone_id, h->zone_id);
    assert_int_equal(got.quantity, h->quantity);
    assert_int_equal(got.state, h->state);
    assert_int_equal(got.total_minor, h->amount_minor);
    assert_string_equal(got.currency, ev->spec.zones[h->zone_id - 1].currency);
    assert_int_equal(got.created_at_ms, h->created_ms);
    assert_int_equal(got.expires_at_ms, h->deadline_ms);
    assert_int_equal(got.payment_id, h->payment_id);
}

static void check_payment(const struct br_engine *e, const struct br_outcome *o)
{
    const struct br_payment *p = br_saga_payment(e, o->id);
    assert_non_null(p);
    struct br_api_payment got;
    br_api_payment_from_outcome(&got, o, "EUR");
    assert_int_equal(got.id, p->id);
    assert_int_equal(got.booking_id, p->hold_id);
    assert_int_equal(got.state, p->state);
    assert_int_equal(got.amount_minor, p->amount_minor);
}

/* One random step for user u at now; checks what it answered. */
static void step(struct br_engine *e, struct br_rng *r, uint64_t ev, uint64_t u, int64_t now,
                 uint64_t *idem)
{
    struct br_cmd c;
    struct br_outcome o;
    uint64_t k = br_rng_below(r, 6);
    if (k == 0) {
        br_api_cmd_queue_join(&c, u, ev);
        c.now_ms = now;
        if (apply(e, &c, &o) == BR_OK) {
            check_join(e, &c, &o);
        }
    } else if (k == 1) {
        br_api_cmd_admit(&c, ev);
        c.now_ms = now;
        apply(e, &c, &o);
    } else if (k == 2) {
        /* Fresh keys only: a repeat answers with the first hold (api_cmd.h). */
        br_api_cmd_reserve(&c, u, ev, 1, 1 + (uint32_t)br_rng_below(r, 2), 0, ++*idem);
        c.now_ms = now;
        if (apply(e, &c, &o) == BR_OK) {
            check_reserve(e, &c, &o);
        }
    } else if (k == 3) {
        uint64_t ids[BR_API_LIST_MAX];
        uint32_t n = br_engine_user_holds(e, u, ids, BR_API_LIST_MAX);
        if (n > 0) {
            br_api_cmd_payment_create(&c, u, ids[br_rng_below(r, n)]);
            c.now_ms = now;
            if (apply(e, &c, &o) == BR_OK) {
                check_payment(e, &o);
            }
        }
    } else if (k == 4) {
        br_api_cmd_sweep(&c, ev);
        c.now_ms = now;
        apply(e, &c, &o);
    } else {
        br_api_cmd_queue_leave(&c, u, ev);
        c.now_ms = now;
        apply(e, &c, &o);
    }
}

static void test_fillers_agree_with_the_engine(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= SEEDS; seed++) {
        struct br_engine *e = t_engine_new(NULL);
        struct br_rng r;
        br_rng_seed(&r, seed, 0);
        int64_t now = 10;
        uint64_t users[USERS];
        for (uint32_t i = 0; i < USERS; i++) {
            char email[32];
            snprintf(email, sizeof email, "u%u@example.com", i + 1);
            struct br_cmd ref = c_register(now, email, BR_ROLE_CUSTOMER);
            struct br_cmd c;
            br_api_cmd_user_register(&c, email, "Test User", ref.u.user_register.password_hash,
                                     ref.u.user_register.salt, BR_ROLE_CUSTOMER);
            c.now_ms = now;
            struct br_outcome o;
            assert_int_equal(apply(e, &c, &o), BR_OK);
            struct br_api_user got;
            br_api_user_from_register(&got, &c, &o);
            const struct br_user *u = br_catalog_user(e, o.id);
            assert_int_equal(got.id, u->id);
            assert_int_equal(got.role, u->role);
            assert_string_equal(got.email, u->email);
            assert_string_equal(got.name, u->name);
            users[i] = o.id;
        }
        struct br_event_spec s = t_spec();
        s.sale_opens_at_ms = seed % 2 == 0 ? 0 : 2000; /* odd seeds start in the pre-queue */
        s.zones[0].capacity = 30;
        uint64_t ev = t_event(e, now, &s);
        uint64_t idem = 0;
        for (uint32_t i = 0; i < STEPS; i++) {
            now += (int64_t)br_rng_below(&r, 40);
            step(e, &r, ev, users[br_rng_below(&r, USERS)], now, &idem);
        }
        t_engine_free(e);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_builders_match_the_cores_commands),
        cmocka_unit_test(test_fillers_agree_with_the_engine),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
