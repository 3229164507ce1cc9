/* support.c -- shared helpers of the core unit tests (see support.h). */
#include "support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/inventory.h"
#include "core/queue.h"
#include "core/saga.h"

/* The engine first, so a struct br_engine * is also a struct t_engine *. */
struct t_engine {
    struct br_engine e;
    void *mem;
};

void t_config_small(struct br_config *c)
{
    memset(c, 0, sizeof *c);
    c->seed = 42;
    c->events_max = 4;
    c->users_max = 16;
    c->members_max = 32;
    c->queue_slots_max = 64;
    c->queue_capacity_default = 16;
    c->passes_max = 32;
    c->active_max = 16;
    c->holds_max = 32;
    c->seats_max = 256;
    c->payments_max = 32;
    c->idem_max = 32;
    c->provider_events_max = 32;
}

struct br_engine *t_engine_new(const struct br_config *cfg)
{
    struct br_config small;
    if (cfg == NULL) {
        t_config_small(&small);
        cfg = &small;
    }
    size_t size = br_engine_memory_size(cfg);
    assert_true(size > 0);
    size = (size + 15u) & ~(size_t)15u;
    struct t_engine *t = calloc(1, sizeof *t);
    assert_non_null(t);
    t->mem = aligned_alloc(16, size);
    assert_non_null(t->mem);
    assert_int_equal(br_engine_init(&t->e, cfg, t->mem, size), BR_OK);
    br_engine_check(&t->e);
    return &t->e;
}

void t_engine_free(struct br_engine *e)
{
    struct t_engine *t = (struct t_engine *)e;
    free(t->mem);
    free(t);
}

int apply(struct br_engine *e, const struct br_cmd *c, struct br_outcome *out)
{
    struct br_outcome local;
    if (out == NULL) {
        out = &local;
    }
    int rc = br_engine_apply(e, c, out);
    br_engine_check(e);
    assert_int_equal(rc, out->err);
    uint32_t n = 0;
    const struct br_effect *fx = br_engine_effects(e, &n);
    assert_int_equal(out->effect_count, n);
    assert_true(out->effects_hash == br_effects_hash(fx, n));
    return rc;
}

void apply_expect(struct br_engine *e, const struct br_cmd *c, int want, struct br_outcome *out)
{
    int rc = apply(e, c, out);
    if (rc != want) {
        fprintf(stderr, "%s: got %s, want %s\n", br_cmd_name(c->type), br_err_name(rc),
                br_err_name(want));
    }
    assert_int_equal(rc, want);
}

struct br_event_spec t_spec(void)
{
    struct br_event_spec s;
    memset(&s, 0, sizeof s);
    strcpy(s.name, "Show");
    strcpy(s.venue, "Arena");
    s.starts_at_ms = 1000000;
    s.sale_opens_at_ms = 0;
    s.per_user_limit = 4;
    s.requires_pass = false;
    s.max_active = 2;
    s.admit_per_tick = 2;
    s.pass_ttl_ms = 1000;
    s.hold_ttl_ms = 1000;
    s.queue_capacity = 0;
    s.zone_count = 1;
    strcpy(s.zones[0].name, "Floor");
    s.zones[0].capacity = 10;
    s.zones[0].price_minor = 2500;
    strcpy(s.zones[0].currency, "EUR");
    return s;
}

static struct br_cmd base(uint8_t type, int64_t now, uint64_t user)
{
    struct br_cmd c;
    memset(&c, 0, sizeof c);
    c.type = type;
    c.now_ms = now;
    c.user_id = user;
    return c;
}

struct br_cmd c_event(int64_t now, uint64_t actor, const struct br_event_spec *s)
{
    struct br_cmd c = base(BR_CMD_EVENT_CREATE, now, actor);
    c.u.event_create = *s;
    return c;
}

struct br_cmd c_register(int64_t now, const char *email, uint8_t role)
{
    struct br_cmd c = base(BR_CMD_USER_REGISTER, now, 0);
    size_t len = strlen(email);
    assert_true(len < BR_EMAIL_MAX);
    memcpy(c.u.user_register.email, email, len);
    strcpy(c.u.user_register.name, "Test User");
    for (int i = 0; i < BR_PASSWORD_HASH_LEN; i++) {
        c.u.user_register.password_hash[i] = (uint8_t)(i * 7 + 1);
    }
    for (int i = 0; i < BR_SALT_LEN; i++) {
        c.u.user_register.salt[i] = (uint8_t)(i * 13 + 5);
    }
    c.u.user_register.role = role;
    return c;
}

struct br_cmd c_role_set(int64_t now, uint64_t actor, uint64_t target, uint8_t role)
{
    struct br_cmd c = base(BR_CMD_USER_ROLE_SET, now, actor);
    c.u.user_role_set.target_user_id = target;
    c.u.user_role_set.role = role;
    return c;
}

struct br_cmd c_join(int64_t now, uint64_t user, uint64_t event)
{
    struct br_cmd c = base(BR_CMD_QUEUE_JOIN, now, user);
    c.u.queue_join.event_id = event;
    return c;
}

struct br_cmd c_leave(int64_t now, uint64_t user, uint64_t event)
{
    struct br_cmd c = base(BR_CMD_QUEUE_LEAVE, now, user);
    c.u.queue_leave.event_id = event;
    return c;
}

struct br_cmd c_admit(int64_t now, uint64_t event)
{
    struct br_cmd c = base(BR_CMD_ADMIT, now, 0);
    c.u.admit.event_id = event;
    return c;
}

struct br_cmd c_reserve(int64_t now, uint64_t user, uint64_t event, uint32_t zone,
                        uint32_t quantity, uint64_t pass, uint64_t idem_key)
{
    struct br_cmd c = base(BR_CMD_RESERVE, now, user);
    c.u.reserve.event_id = event;
    c.u.reserve.zone_id = zone;
    c.u.reserve.quantity = quantity;
    c.u.reserve.pass_id = pass;
    c.u.reserve.idem_key = idem_key;
    return c;
}

struct br_cmd c_cancel(int64_t now, uint64_t user, uint64_t hold)
{
    struct br_cmd c = base(BR_CMD_CANCEL, now, user);
    c.u.cancel.hold_id = hold;
    return c;
}

struct br_cmd c_sweep(int64_t now, uint64_t event, uint32_t max)
{
    struct br_cmd c = base(BR_CMD_SWEEP, now, 0);
    c.u.sweep.event_id = event;
    c.u.sweep.max = max;
    return c;
}

struct br_cmd c_pay(int64_t now, uint64_t user, uint64_t hold)
{
    struct br_cmd c = base(BR_CMD_PAYMENT_CREATE, now, user);
    c.u.payment_create.hold_id = hold;
    return c;
}

struct br_cmd c_pay_checked(int64_t now, uint64_t user, uint64_t hold, uint32_t check_ms)
{
    struct br_cmd c = c_pay(now, user, hold);
    c.u.payment_create.check_ms = check_ms;
    return c;
}

struct br_cmd c_payment_check(int64_t now, uint32_t max)
{
    struct br_cmd c = base(BR_CMD_PAYMENT_CHECK, now, 0);
    c.u.payment_check.max = max;
    return c;
}

struct br_cmd c_pay_event(int64_t now, uint64_t provider_event, uint64_t payment,
                          enum t_outcome_flag result)
{
    struct br_cmd c = base(BR_CMD_PAYMENT_EVENT, now, 0);
    c.u.payment_event.provider_event_id = provider_event;
    c.u.payment_event.payment_id = payment;
    c.u.payment_event.succeeded = result == T_SUCCEEDED;
    return c;
}

struct br_cmd c_refund(int64_t now, uint64_t payment, enum t_outcome_flag result)
{
    struct br_cmd c = base(BR_CMD_REFUND_RESULT, now, 0);
    c.u.refund_result.payment_id = payment;
    c.u.refund_result.ok = result == T_SUCCEEDED;
    return c;
}

struct br_cmd c_saga_step(int64_t now, uint32_t max)
{
    struct br_cmd c = base(BR_CMD_SAGA_STEP, now, 0);
    c.u.saga_step.max = max;
    return c;
}

uint64_t t_user(struct br_engine *e, int64_t now, const char *email)
{
    struct br_cmd c = c_register(now, email, BR_ROLE_CUSTOMER);
    struct br_outcome o;
    apply_expect(e, &c, BR_OK, &o);
    assert_true(o.id != 0);
    return o.id;
}

uint64_t t_users(struct br_engine *e, uint32_t n, uint64_t *ids)
{
    char email[32];
    for (uint32_t i = 0; i < n; i++) {
        snprintf(email, sizeof email, "u%u@t", (unsigned)(e->user_count + 1));
        ids[i] = t_user(e, 0, email);
    }
    return n ? ids[0] : 0;
}

uint64_t t_event(struct br_engine *e, int64_t now, const struct br_event_spec *s)
{
    struct br_cmd c = c_event(now, 0, s);
    struct br_outcome o;
    apply_expect(e, &c, BR_OK, &o);
    assert_true(o.id != 0);
    return o.id;
}

uint64_t t_hold(struct br_engine *e, int64_t now, uint64_t user, uint64_t event, uint32_t qty)
{
    struct br_cmd c = c_reserve(now, user, event, 1, qty, 0, 0);
    struct br_outcome o;
    apply_expect(e, &c, BR_OK, &o);
    assert_int_equal(o.status, BR_HOLD_HELD);
    return o.id;
}

uint64_t t_payment(struct br_engine *e, int64_t now, uint64_t user, uint64_t hold)
{
    struct br_cmd c = c_pay(now, user, hold);
    struct br_outcome o;
    apply_expect(e, &c, BR_OK, &o);
    assert_int_equal(o.status, BR_PAY_PENDING);
    return o.id;
}

uint64_t t_pass(struct br_engine *e, int64_t now, uint64_t user, uint64_t event)
{
    struct br_cmd c = c_join(now, user, event);
    struct br_outcome o;
    apply_expect(e, &c, BR_OK, &o);
    c = c_admit(now, event);
    apply_expect(e, &c, BR_OK, &o);
    struct br_queue_view v;
    assert_int_equal(br_queue_view(e, event, user, &v), BR_OK);
    assert_int_equal(v.status, BR_QS_ADMITTED);
    assert_true(v.pass_id != 0);
    return v.pass_id;
}

uint32_t t_effect_count(const struct br_engine *e, uint8_t kind)
{
    uint32_t n = 0, count = 0;
    const struct br_effect *fx = br_engine_effects(e, &n);
    for (uint32_t i = 0; i < n; i++) {
        count += fx[i].kind == kind;
    }
    return count;
}

const struct br_effect *t_effect(const struct br_engine *e, uint8_t kind)
{
    uint32_t n = 0;
    const struct br_effect *fx = br_engine_effects(e, &n);
    for (uint32_t i = 0; i < n; i++) {
        if (fx[i].kind == kind) {
            return &fx[i];
        }
    }
    return NULL;
}

uint8_t t_hold_state(const struct br_engine *e, uint64_t hold)
{
    const struct br_hold *h = br_inventory_hold(e, hold);
    assert_non_null(h);
    return h->state;
}

uint8_t t_payment_state(const struct br_engine *e, uint64_t payment)
{
    const struct br_payment *p = br_saga_payment(e, payment);
    assert_non_null(p);
    return p->state;
}

uint32_t t_available(const struct br_engine *e, uint64_t event, uint32_t zone)
{
    const struct br_event *ev = br_catalog_event(e, event);
    assert_non_null(ev);
    assert_true(zone >= 1 && zone <= ev->spec.zone_count);
    return ev->spec.zones[zone - 1].capacity - ev->zone_held[zone - 1] - ev->zone_sold[zone - 1];
}

uint32_t t_tickets(const struct br_engine *e, uint64_t event, uint64_t user)
{
    uint32_t mi = br_queue_member_find(e, event, user);
    return mi == UINT32_MAX ? 0 : e->members[mi].tickets;
}
