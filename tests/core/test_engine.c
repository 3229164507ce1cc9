/* test_engine.c -- the engine: memory layout, dispatch, digests, replay,
 * and a property test: thousands of random command sequences with every
 * checker run after every step.
 *
 * A failing sequence reproduces from its number: a checker that fires
 * aborts, and the SIGABRT handler below names the seed and step first; run
 * `BR_PROPERTY_SEED=<n> ./test_engine` to replay that one sequence. */
#define _POSIX_C_SOURCE 200809L /* write(2) in the abort handler */

#include "support.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/inventory.h"
#include "core/journal.h"
#include "core/queue.h"
#include "core/rng.h"
#include "core/saga.h"

#include <unistd.h>

/* ---- memory and init ---- */

static void test_memory_size_rejects_a_zero_or_oversized_capacity(void **state)
{
    (void)state;
    struct br_config base;
    t_config_small(&base);
    assert_true(br_engine_memory_size(&base) > 0);
    uint32_t *fields[] = {&base.events_max,  &base.users_max,   &base.members_max,
                          &base.queue_slots_max, &base.passes_max, &base.active_max,
                          &base.holds_max,   &base.seats_max,   &base.payments_max,
                          &base.idem_max,    &base.provider_events_max};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        uint32_t keep = *fields[i];
        *fields[i] = 0;
        assert_int_equal(br_engine_memory_size(&base), 0);
        *fields[i] = (1u << 30) + 1;
        assert_int_equal(br_engine_memory_size(&base), 0);
        *fields[i] = keep;
    }
    struct br_config c = base;
    c.queue_capacity_default = 0;
    assert_int_equal(br_engine_memory_size(&c), 0);
    c.queue_capacity_default = c.queue_slots_max + 1;
    assert_int_equal(br_engine_memory_size(&c), 0);
    c = base;
    c.events_max = BR_EVENT_ID_MAX + 1;
    assert_int_equal(br_engine_memory_size(&c), 0);
    /* More capacity never needs less memory. */
    c = base;
    c.holds_max *= 2;
    assert_true(br_engine_memory_size(&c) > br_engine_memory_size(&base));
}

static void test_init_rejects_too_small_misaligned_or_missing_memory(void **state)
{
    (void)state;
    struct br_config cfg;
    t_config_small(&cfg);
    size_t need = br_engine_memory_size(&cfg);
    size_t cap = (need + 64) & ~(size_t)15u;
    uint8_t *mem = aligned_alloc(16, cap);
    assert_non_null(mem);
    struct br_engine e;
    assert_int_equal(br_engine_init(&e, &cfg, mem, need - 1), BR_E_INVALID);
    assert_int_equal(br_engine_init(&e, &cfg, NULL, need), BR_E_INVALID);
    assert_int_equal(br_engine_init(&e, &cfg, mem + 8, need), BR_E_INVALID);
    struct br_config bad = cfg;
    bad.users_max = 0;
    assert_int_equal(br_engine_init(&e, &bad, mem, cap), BR_E_INVALID);
    memset(mem, 0xAB, cap); /* init must not rely on zeroed memory */
    assert_int_equal(br_engine_init(&e, &cfg, mem, need), BR_OK);
    br_engine_check(&e);
    struct br_event_spec s = t_spec();
    t_event(&e, 0, &s);
    t_user(&e, 0, "a@t");
    t_hold(&e, 0, 1, 1, 2);
    free(mem);
}

static void test_default_config_is_valid(void **state)
{
    (void)state;
    struct br_config cfg;
    br_config_default(&cfg);
    size_t size = br_engine_memory_size(&cfg);
    assert_true(size > 0);
    assert_true(size < (size_t)1 << 31); /* documented as ~350 MiB */
}

/* ---- dispatch and effects ---- */

static void test_unknown_command_type_is_invalid_and_still_digested(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    const uint8_t types[] = {BR_CMD_NONE, BR_CMD_TYPE_COUNT, 200, 255};
    for (size_t i = 0; i < sizeof types; i++) {
        struct br_cmd c;
        memset(&c, 0, sizeof c);
        c.type = types[i];
        uint64_t d = br_engine_digest(e), h = br_engine_state_hash(e);
        struct br_outcome o;
        apply_expect(e, &c, BR_E_INVALID, &o);
        assert_int_equal(o.effect_count, 0);
        assert_true(br_engine_digest(e) != d); /* recorded in the chain */
        assert_true(br_engine_state_hash(e) == h);
    }
    assert_int_equal(e->applied, sizeof types);
    t_engine_free(e);
}

static void test_clock_outside_the_supported_range_is_invalid_and_changes_nothing(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    struct br_event_spec s = t_spec();
    uint64_t ev = t_event(e, 0, &s);
    uint64_t u = t_user(e, 0, "a@t");
    const int64_t bad[] = {-1, INT64_MIN, BR_NOW_MS_MAX + 1, INT64_MAX - 5};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct br_cmd c = c_reserve(bad[i], u, ev, 1, 1, 0, 0);
        uint64_t before = br_engine_state_hash(e);
        struct br_outcome o;
        apply_expect(e, &c, BR_E_INVALID, &o);
        assert_int_equal(o.effect_count, 0);
        assert_true(br_engine_state_hash(e) == before);
    }
    /* The largest clock still works, and its deadline does not overflow. */
    struct br_cmd c = c_reserve(BR_NOW_MS_MAX, u, ev, 1, 1, 0, 0);
    struct br_outcome o;
    apply_expect(e, &c, BR_OK, &o);
    assert_true(o.deadline_ms == BR_NOW_MS_MAX + s.hold_ttl_ms);
    t_engine_free(e);
}

static void test_outcome_effect_count_and_hash_describe_the_effect_list(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    struct br_event_spec s = t_spec();
    s.max_active = 3;
    s.admit_per_tick = 3;
    uint64_t ev = t_event(e, 0, &s);
    uint64_t u[3];
    t_users(e, 3, u);
    for (int i = 0; i < 3; i++) {
        struct br_cmd c = c_join(0, u[i], ev);
        apply_expect(e, &c, BR_OK, NULL);
    }
    struct br_cmd c = c_admit(1, ev);
    struct br_outcome o;
    apply_expect(e, &c, BR_OK, &o);
    uint32_t n = 0;
    const struct br_effect *fx = br_engine_effects(e, &n);
    assert_int_equal(n, 3);
    assert_int_equal(o.effect_count, 3);
    assert_true(o.effects_hash == br_effects_hash(fx, n));
    for (uint32_t i = 0; i < n; i++) {
        assert_int_equal(fx[i].kind, BR_FX_PASS_ISSUED);
        assert_int_equal(fx[i].user_id, u[i]);
    }
    /* The hash covers order and every field. */
    assert_true(br_effects_hash(fx, 2) != o.effects_hash);
    struct br_effect copy[3];
    memcpy(copy, fx, sizeof copy);
    copy[2].deadline_ms++;
    assert_true(br_effects_hash(copy, 3) != o.effects_hash);
    memcpy(copy, fx, sizeof copy);
    copy[0] = fx[1];
    copy[1] = fx[0];
    assert_true(br_effects_hash(copy, 3) != o.effects_hash);
    /* The next command starts a new list. */
    c = c_admit(2, ev);
    apply_expect(e, &c, BR_OK, &o);
    br_engine_effects(e, &n);
    assert_int_equal(n, 0);
    assert_true(o.effects_hash == br_effects_hash(NULL, 0));
    t_engine_free(e);
}

static void test_queries_report_stats_and_holds(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    struct br_event_spec s = t_spec();
    uint64_t ev = t_event(e, 0, &s);
    uint64_t u[2];
    t_users(e, 2, u);
    t_pass(e, 0, u[0], ev);
    struct br_cmd c = c_join(0, u[1], ev);
    apply_expect(e, &c, BR_OK, NULL);
    uint64_t h1 = t_hold(e, 1, u[0], ev, 1);
    uint64_t h2 = t_hold(e, 2, u[0], ev, 1);
    c = c_cancel(3, u[0], h1);
    apply_expect(e, &c, BR_OK, NULL);
    struct br_event_stats st;
    assert_int_equal(br_engine_event_stats(e, ev, &st), BR_OK);
    assert_int_equal(st.queue_length, 1);
    assert_int_equal(st.admitted, 1);
    assert_int_equal(st.active_passes, 1);
    assert_int_equal(st.bookings[BR_HOLD_HELD], 1);
    assert_int_equal(st.bookings[BR_HOLD_CANCELLED], 1);
    uint64_t ids[1];
    assert_int_equal(br_engine_user_holds(e, u[0], ids, 1), 1); /* bounded by max */
    assert_int_equal(ids[0], h2);
    assert_int_equal(br_engine_user_holds(e, u[1], ids, 1), 0);
    assert_int_equal(br_engine_user_holds(e, 99, ids, 1), 0);
    t_engine_free(e);
}

static void test_names_of_commands_states_and_effects(void **state)
{
    (void)state;
    assert_string_equal(br_cmd_name(BR_CMD_RESERVE), "reserve");
    assert_string_equal(br_cmd_name(BR_CMD_SAGA_STEP), "saga_step");
    assert_string_equal(br_cmd_name(BR_CMD_TYPE_COUNT), "unknown");
    for (uint8_t t = 0; t < BR_CMD_TYPE_COUNT; t++) {
        assert_string_not_equal(br_cmd_name(t), "unknown");
    }
    assert_string_equal(br_hold_state_name(BR_HOLD_REFUNDED), "refunded");
    assert_string_equal(br_hold_state_name(6), "unknown");
    assert_string_equal(br_queue_status_name(BR_QS_LEFT), "left");
    assert_string_equal(br_queue_status_name(BR_QUEUE_STATUS_COUNT), "unknown"); /* issue 13 */
    assert_string_equal(br_payment_state_name(BR_PAY_REFUND_PENDING), "refund_pending");
    assert_string_equal(br_payment_state_name(6), "unknown");
    assert_string_equal(br_effect_name(BR_FX_NOTIFY), "notify");
    assert_string_equal(br_effect_name(BR_FX_PROVIDER_QUERY), "provider_query");
    assert_string_equal(br_effect_name(BR_FX_PROVIDER_VOID), "provider_void");
    assert_string_equal(br_effect_name(BR_EFFECT_KIND_COUNT), "unknown"); /* issue 13 */
    assert_string_equal(br_cmd_name(BR_CMD_PAYMENT_CHECK), "payment_check");
}

/* ---- determinism ---- */

/* A scripted on-sale touching every command type. */
static uint32_t scripted(struct br_cmd *out, int variant)
{
    uint32_t n = 0;
    struct br_event_spec s = t_spec();
    s.sale_opens_at_ms = 1000;
    s.requires_pass = true;
    out[n++] = c_event(0, 0, &s);
    out[n++] = c_register(1, "a@t", BR_ROLE_CUSTOMER);
    out[n++] = c_register(2, "b@t", BR_ROLE_CUSTOMER);
    out[n++] = c_register(3, "c@t", BR_ROLE_ADMIN);
    out[n++] = c_role_set(4, 3, 2, BR_ROLE_ORGANIZER);
    out[n++] = c_join(10, 1, 1);
    out[n++] = c_join(13, 3, 1);
    out[n++] = c_leave(14, 3, 1);
    out[n++] = c_admit(1000, 1); /* the opening shuffle, then user 1 gets pass 1 */
    out[n++] = c_join(variant == 1 ? 1001 : 1002, 2, 1);
    out[n++] = c_admit(1003, 1); /* user 2 gets pass 2 */
    out[n++] = c_reserve(1100, 1, 1, 1, 2, (1ULL << 32) | 1, 5);
    out[n++] = c_reserve(1100, 2, 1, 1, 2, (1ULL << 32) | 2, 5);
    out[n++] = c_pay(1200, 1, (1ULL << 32) | 1);
    out[n++] = c_pay(1200, 2, (1ULL << 32) | 2);
    out[n++] = c_pay_event(1300, 11, (1ULL << 32) | 1, T_SUCCEEDED);
    out[n++] = c_pay_event(1301, 11, (1ULL << 32) | 1, T_SUCCEEDED);
    out[n++] = c_sweep(2100, 1, 10);
    out[n++] = c_pay_event(2200, 12, (1ULL << 32) | 2, T_SUCCEEDED);
    out[n++] = c_refund(2300, (1ULL << 32) | 2, T_FAILED);
    out[n++] = c_saga_step(3300, 10);
    out[n++] = c_refund(3400, (1ULL << 32) | 2, T_SUCCEEDED);
    out[n++] = c_cancel(3500, 1, (1ULL << 32) | 1);
    return n;
}

struct run {
    uint64_t digest, state, final;
    struct br_outcome outcomes[32];
};

static void run_script(uint64_t seed, int variant, struct run *r)
{
    struct br_config cfg;
    t_config_small(&cfg);
    cfg.seed = seed;
    struct br_engine *e = t_engine_new(&cfg);
    struct br_cmd cmds[32];
    uint32_t n = scripted(cmds, variant);
    memset(r->outcomes, 0, sizeof r->outcomes);
    for (uint32_t i = 0; i < n; i++) {
        apply(e, &cmds[i], &r->outcomes[i]);
    }
    r->digest = br_engine_digest(e);
    r->state = br_engine_state_hash(e);
    r->final = br_engine_final_digest(e);
    t_engine_free(e);
}

static void test_same_commands_give_the_same_digests_on_two_engines(void **state)
{
    (void)state;
    struct run *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b);
    run_script(7, 0, a);
    run_script(7, 0, b);
    assert_true(a->digest == b->digest);
    assert_true(a->state == b->state);
    assert_true(a->final == b->final);
    assert_memory_equal(a->outcomes, b->outcomes, sizeof a->outcomes);
    /* The script reached the states it was written for. */
    assert_int_equal(a->outcomes[11].err, BR_OK);
    assert_int_equal(a->outcomes[12].err, BR_OK);
    assert_int_equal(a->outcomes[15].status, BR_PAY_CONFIRMED);
    assert_int_equal(a->outcomes[16].err, BR_E_DUPLICATE);
    assert_int_equal(a->outcomes[17].count, 1);
    assert_int_equal(a->outcomes[18].status, BR_PAY_REFUND_PENDING);
    assert_int_equal(a->outcomes[20].count, 1);
    assert_int_equal(a->outcomes[21].status, BR_PAY_REFUNDED);
    assert_int_equal(a->outcomes[22].err, BR_E_BOOKING_NOT_HELD);
    free(a);
    free(b);
}

static void test_different_commands_or_seed_give_different_digests(void **state)
{
    (void)state;
    struct run *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b), *c = calloc(1, sizeof *c);
    run_script(7, 0, a);
    run_script(7, 1, b); /* one join a millisecond earlier: same state, other history */
    run_script(8, 0, c);
    assert_true(a->digest != b->digest);
    assert_true(a->final != b->final);
    assert_true(a->digest != c->digest);
    assert_true(a->final != c->final);
    free(a);
    free(b);
    free(c);
}

static void test_digest_step_lets_another_backend_follow_the_chain(void **state)
{
    (void)state;
    /* A driver that only sees commands and outcomes recomputes the running
     * digest with br_digest_step, starting from a fresh engine's digest. */
    struct br_engine *e = t_engine_new(NULL);
    uint64_t chain = br_engine_digest(e);
    struct br_cmd cmds[32];
    uint32_t n = scripted(cmds, 0);
    for (uint32_t i = 0; i < n; i++) {
        struct br_outcome o;
        apply(e, &cmds[i], &o);
        chain = br_digest_step(chain, &cmds[i], &o);
        assert_true(chain == br_engine_digest(e));
    }
    t_engine_free(e);
}

/* ---- the property test ---- */

enum { P_SEQUENCES = 3000, P_STEPS = 150 };

/* Where the property test is, for the abort handler (test code, not core). */
static volatile sig_atomic_t current_seed = -1, current_step = -1;

static size_t put_number(char *at, long v)
{
    char digits[24];
    size_t n = 0;
    if (v < 0) {
        at[0] = '-';
        return 1 + put_number(at + 1, -v);
    }
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    for (size_t i = 0; i < n; i++) {
        at[i] = digits[n - 1 - i];
    }
    return n;
}

static void on_abort(int sig)
{
    (void)sig;
    if (current_seed >= 0) {
        char msg[96] = "\nproperty test failed: BR_PROPERTY_SEED=";
        size_t n = strlen(msg);
        n += put_number(msg + n, (long)current_seed);
        memcpy(msg + n, " step ", 6);
        n += 6;
        n += put_number(msg + n, (long)current_step);
        msg[n++] = '\n';
        ssize_t unused = write(2, msg, n);
        (void)unused;
    }
    signal(SIGABRT, SIG_DFL);
}

struct world {
    struct br_engine *e;
    struct br_rng r;
    int64_t now;
    uint64_t users[16];
    uint32_t nusers;
    uint64_t events[4];
    uint32_t nevents;
    uint64_t holds[64];
    uint32_t nholds;
    uint64_t payments[64];
    uint32_t npayments;
    uint64_t confirmed[64]; /* holds seen confirmed: S2 says they stay so */
    uint64_t confirmed_owner[64];
    uint32_t nconfirmed;
    uint8_t confirmed_fx[64]; /* booking_confirmed effects per hold (index as holds[]) */
    uint8_t expired_fx[64];   /* booking_expired effects per hold */
    bool passless[64];        /* held without a pass: reserved in passthrough (index as holds[]) */
    bool new_hold;            /* the step's reserve created a hold (not an idempotent replay) */
};

/* An event's waiting room as it was before a command (the checks below). */
struct room_before {
    bool exists;
    uint8_t mode;  /* q_mode */
    bool aware;    /* BR_QF_INVENTORY_AWARE */
    uint32_t avail; /* seats neither held nor sold */
    bool requires_pass;
};

struct tally {
    uint64_t err_seen[BR_ERR_COUNT];
    uint64_t ok_by_type[BR_CMD_TYPE_COUNT];
    uint64_t confirmed, refunded, steps;
};

static void property_config(struct br_config *c, uint64_t seed)
{
    memset(c, 0, sizeof *c);
    c->seed = seed;
    c->events_max = 3;
    c->users_max = 10;
    c->members_max = 24;
    c->queue_slots_max = 40;
    c->queue_capacity_default = 8;
    c->passes_max = 30;
    c->active_max = 9;
    c->holds_max = 48;
    c->seats_max = 48;
    c->payments_max = 40;
    c->idem_max = 30;
    c->provider_events_max = 48;
}

static uint64_t pick(struct br_rng *r, const uint64_t *ids, uint32_t n, uint64_t bogus)
{
    if (n == 0 || br_rng_chance(r, 0.04)) {
        return bogus; /* an id nobody created */
    }
    return ids[br_rng_below(r, n)];
}

static uint64_t pick_user(struct world *w)
{
    return pick(&w->r, w->users, w->nusers, w->nusers + 1 + br_rng_below(&w->r, 3));
}

static uint64_t pick_event(struct world *w)
{
    return pick(&w->r, w->events, w->nevents, w->nevents + 1);
}

static uint64_t owner_of(const struct br_engine *e, uint64_t hold)
{
    const struct br_hold *h = br_inventory_hold(e, hold);
    return h ? h->user_id : 1;
}

static struct br_event_spec random_spec(struct world *w)
{
    struct br_rng *r = &w->r;
    struct br_event_spec s = t_spec();
    s.sale_opens_at_ms = w->now + (int64_t)br_rng_below(r, 2000);
    if (s.sale_opens_at_ms < 0) {
        s.sale_opens_at_ms = 0;
    }
    s.per_user_limit = 1 + (uint32_t)br_rng_below(r, 4);
    s.requires_pass = br_rng_chance(r, 0.6);
    s.max_active = 1 + (uint32_t)br_rng_below(r, 3);
    s.admit_per_tick = 1 + (uint32_t)br_rng_below(r, 2);
    s.pass_ttl_ms = 200 + (int64_t)br_rng_below(r, 1500);
    s.hold_ttl_ms = 200 + (int64_t)br_rng_below(r, 1500);
    s.queue_capacity = br_rng_chance(r, 0.5) ? 0 : 2 + (uint32_t)br_rng_below(r, 8);
    s.zone_count = 1 + (uint32_t)br_rng_below(r, 2);
    for (uint32_t z = 0; z < s.zone_count; z++) {
        s.zones[z] = s.zones[0];
        s.zones[z].capacity = 1 + (uint32_t)br_rng_below(r, 6);
        s.zones[z].price_minor = 100 * (int64_t)(1 + br_rng_below(r, 50));
    }
    if (br_rng_chance(r, 0.5)) {
        /* Issue 13: the waiting room's switches. The clock moves ~125 ms a
         * command, so a presence_ttl of 1-2 s lapses absent users and a pace
         * of 30..6000 a minute both throttles and lets admissions through. */
        static const uint32_t apms[] = {0, 30, 300, 600, 6000};
        s.queue_flags = br_rng_chance(r, 0.7) ? BR_QF_INVENTORY_AWARE : 0;
        s.presence_ttl_s = br_rng_chance(r, 0.6) ? 1 + (uint32_t)br_rng_below(r, 2) : 0;
        s.admit_per_min = apms[br_rng_below(r, sizeof apms / sizeof apms[0])];
        s.pow_bits = br_rng_chance(r, 0.2) ? (uint8_t)br_rng_below(r, BR_POW_BITS_MAX + 1) : 0;
        s.mode = br_rng_chance(r, 0.15) ? (uint8_t)br_rng_below(r, BR_QUEUE_MODE_COUNT) : BR_QM_OPEN;
        if (br_rng_chance(r, 0.04)) { /* one of them out of range: invalid */
            switch (br_rng_below(r, 4)) {
            case 0: s.queue_flags = BR_QF_ALL + 1; break;
            case 1: s.presence_ttl_s = BR_PRESENCE_TTL_S_MAX + 1; break;
            case 2: s.admit_per_min = BR_ADMIT_PER_MIN_MAX + 1; break;
            default: s.mode = BR_QUEUE_MODE_COUNT; break;
            }
        }
    }
    if (br_rng_chance(r, 0.03)) {
        s.per_user_limit = 0; /* invalid */
    }
    return s;
}

/* Mostly open: the other three modes stop admissions. */
static uint8_t random_mode(struct br_rng *r)
{
    if (br_rng_chance(r, 0.02)) {
        return BR_QUEUE_MODE_COUNT; /* invalid */
    }
    return br_rng_chance(r, 0.4) ? BR_QM_OPEN : (uint8_t)br_rng_below(r, BR_QUEUE_MODE_COUNT);
}

static struct br_cmd random_cmd(struct world *w)
{
    struct br_rng *r = &w->r;
    w->now += (int64_t)br_rng_below(r, 250);
    if (br_rng_chance(r, 0.03)) {
        w->now -= (int64_t)br_rng_below(r, 200); /* clock skew: time may go back */
    }
    static const uint32_t weights[BR_CMD_TYPE_COUNT] = {
        [BR_CMD_EVENT_CREATE] = 3, [BR_CMD_USER_REGISTER] = 5, [BR_CMD_USER_ROLE_SET] = 1,
        [BR_CMD_QUEUE_JOIN] = 14,  [BR_CMD_QUEUE_LEAVE] = 3,   [BR_CMD_ADMIT] = 10,
        [BR_CMD_RESERVE] = 22,     [BR_CMD_CANCEL] = 4,        [BR_CMD_SWEEP] = 6,
        [BR_CMD_PAYMENT_CREATE] = 9, [BR_CMD_PAYMENT_EVENT] = 10, [BR_CMD_REFUND_RESULT] = 5,
        [BR_CMD_SAGA_STEP] = 4,    [BR_CMD_SESSION_OPEN] = 2,  [BR_CMD_SESSION_ROTATE] = 2,
        [BR_CMD_SESSION_REVOKE] = 1, [BR_CMD_SESSION_REVOKE_ALL] = 1,
        [BR_CMD_PAYMENT_CHECK] = 4, [BR_CMD_QUEUE_MODE_SET] = 4, [BR_CMD_PRESENCE] = 5,
    };
    uint32_t total = 1; /* 1 in total for an unknown type */
    for (uint32_t t = 0; t < BR_CMD_TYPE_COUNT; t++) {
        total += weights[t];
    }
    uint32_t roll = (uint32_t)br_rng_below(r, total);
    uint8_t type = 0;
    for (uint32_t t = 0; t < BR_CMD_TYPE_COUNT; t++) {
        if (roll < weights[t]) {
            type = (uint8_t)t;
            break;
        }
        roll -= weights[t];
    }
    if (w->nevents == 0 && type != BR_CMD_USER_REGISTER && br_rng_chance(r, 0.7)) {
        type = BR_CMD_EVENT_CREATE;
    }
    int64_t now = w->now;
    switch (type) {
    case BR_CMD_EVENT_CREATE: {
        struct br_event_spec s = random_spec(w);
        uint64_t actor = br_rng_chance(r, 0.85) ? 0 : pick_user(w);
        return c_event(now, actor, &s);
    }
    case BR_CMD_USER_REGISTER: {
        char email[16];
        snprintf(email, sizeof email, "p%u@t", (unsigned)br_rng_below(r, 12));
        return c_register(now, email, (uint8_t)br_rng_below(r, BR_ROLE_COUNT + 1));
    }
    case BR_CMD_USER_ROLE_SET: {
        uint64_t actor = br_rng_chance(r, 0.5) ? 0 : pick_user(w);
        return c_role_set(now, actor, pick_user(w), (uint8_t)br_rng_below(r, BR_ROLE_COUNT));
    }
    case BR_CMD_QUEUE_JOIN:
        return c_join(now, pick_user(w), pick_event(w));
    case BR_CMD_QUEUE_LEAVE:
        return c_leave(now, pick_user(w), pick_event(w));
    case BR_CMD_ADMIT:
        return c_admit(now, pick_event(w));
    case BR_CMD_RESERVE: {
        uint64_t user = pick_user(w), ev = pick_event(w);
        uint64_t pass = 0;
        struct br_queue_view v;
        if (br_queue_view(w->e, ev, user, &v) == BR_OK && v.pass_id != 0 &&
            br_rng_chance(r, 0.85)) {
            pass = v.pass_id; /* the user's own latest pass, maybe used or expired */
        } else if (br_rng_chance(r, 0.5)) {
            pass = (pick_event(w) << 32) | (1 + br_rng_below(r, 8)); /* someone's, or nobody's */
        }
        uint64_t key = br_rng_chance(r, 0.5) ? 0 : 1 + br_rng_below(r, 6);
        uint32_t zone = (uint32_t)br_rng_below(r, 4); /* 0 and 3 are never valid */
        if (br_rng_chance(r, 0.6)) {
            zone = 1;
        }
        uint32_t qty = 1 + (uint32_t)br_rng_below(r, 4);
        if (br_rng_chance(r, 0.02)) {
            qty = br_rng_chance(r, 0.5) ? 0 : BR_HOLD_QUANTITY_MAX + 1;
        }
        return c_reserve(now, user, ev, zone, qty, pass, key);
    }
    case BR_CMD_CANCEL: {
        uint64_t hold = pick(r, w->holds, w->nholds, 77);
        uint64_t user = br_rng_chance(r, 0.9) ? owner_of(w->e, hold) : pick_user(w);
        return c_cancel(now, user, hold);
    }
    case BR_CMD_SWEEP:
        return c_sweep(now, pick_event(w), (uint32_t)br_rng_below(r, 4)); /* 0 is invalid */
    case BR_CMD_PAYMENT_CREATE: {
        uint64_t hold = pick(r, w->holds, w->nholds, 77);
        uint64_t user = br_rng_chance(r, 0.95) ? owner_of(w->e, hold) : pick_user(w);
        /* point 8: half ask for status queries, seconds apart (the clock
         * moves ~125 ms a command) or out of range now and then */
        uint32_t check_ms = 0;
        if (br_rng_chance(r, 0.03)) {
            check_ms = br_rng_chance(r, 0.5) ? BR_PAYMENT_CHECK_MS_MIN - 1
                                             : BR_PAYMENT_CHECK_MS_MAX + 1;
        } else if (br_rng_chance(r, 0.5)) {
            check_ms = BR_PAYMENT_CHECK_MS_MIN + 500 * (uint32_t)br_rng_below(r, 6);
        }
        return c_pay_checked(now, user, hold, check_ms);
    }
    case BR_CMD_PAYMENT_EVENT: {
        struct br_cmd c = c_pay_event(now, 1 + br_rng_below(r, 60),
                                      pick(r, w->payments, w->npayments, 99),
                                      br_rng_chance(r, 0.7) ? T_SUCCEEDED : T_FAILED);
        if (br_rng_chance(r, 0.02)) {
            c.user_id = pick_user(w);
        }
        return c;
    }
    case BR_CMD_REFUND_RESULT: {
        struct br_cmd c = c_refund(now, pick(r, w->payments, w->npayments, 99),
                                   br_rng_chance(r, 0.6) ? T_SUCCEEDED : T_FAILED);
        if (br_rng_chance(r, 0.02)) {
            c.user_id = pick_user(w);
        }
        return c;
    }
    case BR_CMD_SAGA_STEP:
        return c_saga_step(now, (uint32_t)br_rng_below(r, 4));
    case BR_CMD_PAYMENT_CHECK: {
        struct br_cmd c = c_payment_check(now, (uint32_t)br_rng_below(r, 4)); /* 0 is invalid */
        if (br_rng_chance(r, 0.02)) {
            c.user_id = pick_user(w);
        }
        return c;
    }
    case BR_CMD_QUEUE_MODE_SET: {
        /* The system, or a user: an organizer steers its own events, an
         * admin any, a customer none (FORBIDDEN), an unknown id UNAUTHORIZED. */
        struct br_cmd c;
        memset(&c, 0, sizeof c);
        c.type = type;
        c.now_ms = now;
        c.user_id = br_rng_chance(r, 0.5) ? 0 : pick_user(w);
        uint64_t ev = pick_event(w);
        c.u.queue_mode_set.event_id = ev;
        c.u.queue_mode_set.set = (uint8_t)(1 + br_rng_below(r, 7));
        if (br_rng_chance(r, 0.5)) {
            c.u.queue_mode_set.set = BR_QSET_MODE; /* modes change most often */
        }
        if (br_rng_chance(r, 0.02)) {
            c.u.queue_mode_set.set = br_rng_chance(r, 0.5) ? 0 : (uint8_t)(8 | br_rng_below(r, 8));
        }
        c.u.queue_mode_set.mode = random_mode(r);
        const struct br_event *event = br_catalog_event(w->e, ev);
        uint32_t spec_max = event != NULL ? event->spec.max_active : 3;
        c.u.queue_mode_set.max_active = 1 + (uint32_t)br_rng_below(r, spec_max);
        if (br_rng_chance(r, 0.03)) {
            c.u.queue_mode_set.max_active = br_rng_chance(r, 0.5) ? 0 : spec_max + 1;
        }
        static const uint32_t apms[] = {0, 0, 30, 300, 600, 6000};
        c.u.queue_mode_set.admit_per_min = apms[br_rng_below(r, sizeof apms / sizeof apms[0])];
        if (br_rng_chance(r, 0.03)) {
            c.u.queue_mode_set.admit_per_min = BR_ADMIT_PER_MIN_MAX + 1;
        }
        return c;
    }
    case BR_CMD_PRESENCE: {
        /* The server's seen batches: known users (members or not) and
         * unknown ids, duplicates allowed; now and then not the system, an
         * empty batch or a zero id. */
        struct br_cmd c;
        memset(&c, 0, sizeof c);
        c.type = type;
        c.now_ms = now;
        c.user_id = br_rng_chance(r, 0.02) ? pick_user(w) : 0;
        c.u.presence.event_id = pick_event(w);
        c.u.presence.count = 1 + (uint32_t)br_rng_below(r, 6);
        for (uint32_t i = 0; i < c.u.presence.count; i++) {
            c.u.presence.user_ids[i] = pick_user(w);
        }
        if (br_rng_chance(r, 0.02)) {
            c.u.presence.user_ids[br_rng_below(r, c.u.presence.count)] = 0;
        } else if (br_rng_chance(r, 0.02)) {
            memset(c.u.presence.user_ids, 0, sizeof c.u.presence.user_ids);
            c.u.presence.count = 0; /* more than BR_PRESENCE_BATCH_MAX has no journal form */
        }
        return c;
    }
    case BR_CMD_SESSION_OPEN:
    case BR_CMD_SESSION_ROTATE:
    case BR_CMD_SESSION_REVOKE:
    case BR_CMD_SESSION_REVOKE_ALL: {
        /* Sessions are few: small ids and generations meet live ones often. */
        struct br_cmd c;
        memset(&c, 0, sizeof c);
        c.type = type;
        c.now_ms = now;
        if (type == BR_CMD_SESSION_OPEN || type == BR_CMD_SESSION_REVOKE_ALL) {
            c.user_id = pick_user(w);
            c.u.session_open.ttl_ms = type == BR_CMD_SESSION_OPEN ? 1 + br_rng_below(r, 3000) : 0;
            c.u.session_open.generation = type == BR_CMD_SESSION_OPEN ? 1 + br_rng_below(r, 3) : 0;
        } else {
            uint32_t n = w->e->session_count;
            c.u.session_rotate.session_id = 1 + br_rng_below(r, n + 1);
            const struct br_session *se =
                c.u.session_rotate.session_id <= n ? &w->e->sessions[c.u.session_rotate.session_id - 1]
                                                   : NULL;
            c.u.session_rotate.generation =
                se != NULL && br_rng_chance(r, 0.8) ? se->generation : 1 + br_rng_below(r, 3);
            c.u.session_rotate.ttl_ms = type == BR_CMD_SESSION_ROTATE ? 1 + br_rng_below(r, 3000) : 0;
        }
        return c;
    }
    default: {
        struct br_cmd c;
        memset(&c, 0, sizeof c);
        c.type = (uint8_t)(BR_CMD_TYPE_COUNT + br_rng_below(r, 100));
        c.now_ms = now;
        return c;
    }
    }
}

static void remember(uint64_t *ids, uint32_t *n, uint32_t cap, uint64_t id)
{
    for (uint32_t i = 0; i < *n; i++) {
        if (ids[i] == id) {
            return;
        }
    }
    assert_true(*n < cap);
    ids[(*n)++] = id;
}

/* Assertions of the property checks name the failing seed and step. */
#define P_ASSERT(cond) ((cond) ? (void)0 : property_failed(#cond, __LINE__))

static void property_failed(const char *what, int line)
{
    fprintf(stderr, "property failed at test_engine.c:%d: %s: BR_PROPERTY_SEED=%ld step %ld\n",
            line, what, (long)current_seed, (long)current_step);
    fail();
}

static uint32_t hold_slot(const struct world *w, uint64_t hold)
{
    for (uint32_t i = 0; i < w->nholds; i++) {
        if (w->holds[i] == hold) {
            return i;
        }
    }
    P_ASSERT(!"an effect names a hold that no reserve created");
    return 0;
}

/* The users waiting in an opened queue, in position order (1 first). */
static uint32_t waiting_order(const struct br_engine *e, uint64_t ev, uint64_t *users,
                              int64_t *seen, uint32_t max)
{
    const struct br_event *event = br_catalog_event(e, ev);
    if (event == NULL || !event->q_shuffled) {
        return 0;
    }
    uint32_t n = 0;
    for (uint32_t mi = 0; mi < e->member_count; mi++) {
        const struct br_member *m = &e->members[mi];
        if (m->event_id != ev || m->status != BR_QS_WAITING) {
            continue;
        }
        struct br_queue_view v;
        P_ASSERT(br_queue_view(e, ev, m->user_id, &v) == BR_OK);
        P_ASSERT(v.position >= 1 && v.position <= max);
        users[v.position - 1] = m->user_id;
        seen[v.position - 1] = m->seen_ms;
        n++;
    }
    P_ASSERT(n == event->q_waiting);
    return n;
}

/* Effect-level properties of one step: S6 (a charge that arrives after the
 * deadline is never confirmed), exactly-once confirmation and expiry per
 * hold (S5, S7), S4 (passes go out in queue order, places of users absent
 * for presence_ttl lapse at their turn, present users are never skipped),
 * M1 (no pass while the mode is paused, closed or passthrough) and I1 (an
 * inventory-aware event issues no more passes than seats are available,
 * so none while every seat is held or sold). */
static void check_effects(struct world *w, const struct br_cmd *c, const uint64_t *order,
                          const int64_t *seen, uint32_t waiting, const struct room_before *rooms)
{
    uint32_t n = 0;
    const struct br_effect *fx = br_engine_effects(w->e, &n);
    uint32_t turn = 0;          /* places taken from the head: passes and lapses */
    uint32_t passes[4] = {0};   /* passes issued per event (index id - 1) */
    for (uint32_t i = 0; i < n; i++) {
        if (fx[i].kind == BR_FX_PASS_ISSUED) {
            uint64_t ev = fx[i].id >> 32; /* a pass id carries its event's */
            P_ASSERT(ev >= 1 && ev <= 4 && rooms[ev - 1].exists);
            const struct room_before *room = &rooms[ev - 1];
            P_ASSERT(room->mode == BR_QM_OPEN); /* M1 */
            passes[ev - 1]++;
            if (room->aware) {
                P_ASSERT(passes[ev - 1] <= room->avail); /* I1 */
            }
        }
        if (fx[i].kind == BR_FX_PLACE_LAPSED) {
            P_ASSERT(c->type == BR_CMD_ADMIT);
            const struct br_event *event = br_catalog_event(w->e, fx[i].event_id);
            int64_t ttl_ms = (int64_t)event->spec.presence_ttl_s * 1000;
            P_ASSERT(ttl_ms > 0);
            P_ASSERT(fx[i].deadline_ms <= c->now_ms); /* absent for presence_ttl at least */
            if (waiting > 0) { /* else the admit's own opening shuffle made the order */
                P_ASSERT(turn < waiting);
                P_ASSERT(fx[i].user_id == order[turn]);
                P_ASSERT(fx[i].deadline_ms == seen[turn] + ttl_ms);
                turn++;
            }
        }
        if (fx[i].kind == BR_FX_BOOKING_CONFIRMED) {
            const struct br_hold *h = br_inventory_hold(w->e, fx[i].id);
            P_ASSERT(c->now_ms < h->deadline_ms);
            uint8_t *count = &w->confirmed_fx[hold_slot(w, fx[i].id)];
            P_ASSERT(*count == 0); /* confirmed once */
            (*count)++;
        }
        if (fx[i].kind == BR_FX_BOOKING_EXPIRED) {
            uint8_t *count = &w->expired_fx[hold_slot(w, fx[i].id)];
            P_ASSERT(*count == 0); /* S7: expired once */
            (*count)++;
        }
        if (fx[i].kind == BR_FX_PASS_ISSUED && c->type == BR_CMD_ADMIT && waiting > 0) {
            P_ASSERT(turn < waiting);
            P_ASSERT(fx[i].user_id == order[turn]);
            const struct br_event *event = br_catalog_event(w->e, fx[i].event_id);
            int64_t ttl_ms = (int64_t)event->spec.presence_ttl_s * 1000;
            P_ASSERT(ttl_ms == 0 || c->now_ms - seen[turn] < ttl_ms); /* present */
            turn++;
        }
    }
}

/* Before the drain: every hold's effects match its state. */
static void check_effect_totals(const struct world *w)
{
    for (uint32_t i = 0; i < w->nholds; i++) {
        uint8_t state = t_hold_state(w->e, w->holds[i]);
        P_ASSERT(w->confirmed_fx[i] == (state == BR_HOLD_CONFIRMED));
        if (state == BR_HOLD_EXPIRED) {
            P_ASSERT(w->expired_fx[i] == 1);
        }
        if (state == BR_HOLD_HELD || state == BR_HOLD_CONFIRMED || state == BR_HOLD_CANCELLED) {
            P_ASSERT(w->expired_fx[i] == 0);
        }
    }
}

/* Properties checked after every step, beyond the module checkers. */
static void check_step(struct world *w, const struct br_cmd *c, const struct br_outcome *o,
                       uint64_t state_before, const bool *shuffled_before,
                       const struct room_before *rooms)
{
    const struct br_engine *e = w->e;
    if (o->err < 0) {
        /* A refused command emits nothing and changes nothing, except the
         * idempotency record of a reserve, a due opening shuffle and a
         * session revoked because an old refresh token was reused. */
        P_ASSERT(o->effect_count == 0);
        bool shuffle_ran = false;
        for (uint32_t i = 0; i < e->event_count; i++) {
            shuffle_ran |= i < 4 && shuffled_before[i] != e->events[i].q_shuffled;
        }
        bool keyed = c->type == BR_CMD_RESERVE && c->u.reserve.idem_key != 0;
        bool reused = c->type == BR_CMD_SESSION_ROTATE && o->count == 1;
        if (!shuffle_ran && !keyed && !reused && br_engine_state_hash(e) != state_before) {
            fprintf(stderr, "refused %s (%s) changed the state\n", br_cmd_name(c->type),
                    br_err_name(o->err));
            P_ASSERT(!"a refused command changes no state");
        }
    }
    /* S2: a confirmed hold never changes owner or state again. */
    for (uint32_t i = 0; i < w->nconfirmed; i++) {
        const struct br_hold *h = br_inventory_hold(e, w->confirmed[i]);
        P_ASSERT(h->state == BR_HOLD_CONFIRMED);
        P_ASSERT(h->user_id == w->confirmed_owner[i]);
    }
    /* S4: nobody holds seats without a pass when the event requires one,
     * unless the hold was taken while the mode was passthrough (WR-SPEC 4);
     * S5: at most one confirmed payment per hold. */
    if (c->type == BR_CMD_RESERVE && o->err == BR_OK && w->new_hold) {
        uint64_t ev = c->u.reserve.event_id;
        const struct br_hold *h = br_inventory_hold(e, o->id);
        P_ASSERT(ev >= 1 && ev <= 4 && rooms[ev - 1].exists);
        if (rooms[ev - 1].requires_pass && rooms[ev - 1].mode != BR_QM_PASSTHROUGH) {
            P_ASSERT(h->pass_id != 0);
        }
        if (rooms[ev - 1].mode == BR_QM_PASSTHROUGH) {
            P_ASSERT(h->pass_id == 0); /* a pass given is ignored, not consumed */
        }
        w->passless[hold_slot(w, o->id)] = h->pass_id == 0;
    }
    for (uint32_t hi = 0; hi < e->hold_count; hi++) {
        const struct br_hold *h = &e->holds[hi];
        if (br_catalog_event(e, h->event_id)->spec.requires_pass) {
            P_ASSERT(h->pass_id != 0 || w->passless[hold_slot(w, h->id)]);
        }
    }
    for (uint32_t a = 0; a < e->payment_count; a++) {
        for (uint32_t b = a + 1; b < e->payment_count; b++) {
            P_ASSERT(!(e->payments[a].state == BR_PAY_CONFIRMED &&
                         e->payments[b].state == BR_PAY_CONFIRMED &&
                         e->payments[a].hold_id == e->payments[b].hold_id));
        }
    }
}

/* After the last step: time runs on, workers do their job, every duty ends. */
static void drain(struct br_engine *e, int64_t last_now, struct tally *t)
{
    int64_t now = last_now + 100000000;
    for (uint32_t i = 0; i < e->event_count; i++) {
        struct br_cmd c = c_sweep(now, e->events[i].id, BR_SWEEP_MAX);
        apply_expect(e, &c, BR_OK, NULL);
        P_ASSERT(e->events[i].bookings[BR_HOLD_HELD] == 0); /* L1: no hold outlives */
        for (uint32_t z = 0; z < e->events[i].spec.zone_count; z++) {
            P_ASSERT(e->events[i].zone_held[z] == 0);
        }
    }
    for (int round = 0; round < 3; round++) {
        struct br_cmd c = c_saga_step(now, BR_SAGA_STEP_MAX);
        apply_expect(e, &c, BR_OK, NULL);
        for (uint32_t pi = 0; pi < e->payment_count; pi++) {
            if (e->payments[pi].state == BR_PAY_REFUND_PENDING) {
                c = c_refund(now, e->payments[pi].id, T_SUCCEEDED);
                apply_expect(e, &c, BR_OK, NULL);
            }
        }
        now += BR_REFUND_BACKOFF_MS_MAX;
    }
    int64_t charged = 0, refunded = 0, confirmed = 0;
    for (uint32_t pi = 0; pi < e->payment_count; pi++) {
        const struct br_payment *p = &e->payments[pi];
        P_ASSERT(p->state != BR_PAY_REFUND_PENDING); /* L1: every saga is final */
        charged += p->state >= BR_PAY_CONFIRMED ? p->amount_minor : 0;
        refunded += p->state == BR_PAY_REFUNDED ? p->amount_minor : 0;
        t->confirmed += p->state == BR_PAY_CONFIRMED;
        t->refunded += p->state == BR_PAY_REFUNDED;
    }
    for (uint32_t hi = 0; hi < e->hold_count; hi++) {
        confirmed += e->holds[hi].state == BR_HOLD_CONFIRMED ? e->holds[hi].amount_minor : 0;
    }
    P_ASSERT(charged - refunded == confirmed); /* S8 once nothing is pending */
}

/* Runs one random sequence; returns its final digest. cmds and outs (if not
 * NULL) receive the commands applied and their outcomes. */
static uint64_t run_sequence(uint64_t seed, struct tally *t, struct br_cmd *cmds,
                             struct br_outcome *outs)
{
    struct br_config cfg;
    property_config(&cfg, seed);
    struct world *w = calloc(1, sizeof *w);
    w->e = t_engine_new(&cfg);
    br_rng_seed(&w->r, seed, 0x70726f70ULL);
    current_seed = (sig_atomic_t)seed;
    for (uint32_t step = 0; step < P_STEPS; step++) {
        current_step = (sig_atomic_t)step;
        struct br_cmd c = random_cmd(w);
        if (cmds) {
            cmds[step] = c;
        }
        bool shuffled[4] = {false};
        for (uint32_t i = 0; i < w->e->event_count && i < 4; i++) {
            shuffled[i] = w->e->events[i].q_shuffled;
        }
        uint64_t before = br_engine_state_hash(w->e);
        uint64_t order[64];
        int64_t seen[64];
        uint32_t waiting = 0;
        if (c.type == BR_CMD_ADMIT && c.user_id == 0) {
            waiting = waiting_order(w->e, c.u.admit.event_id, order, seen, 64);
        }
        struct room_before rooms[4];
        memset(rooms, 0, sizeof rooms);
        for (uint64_t id = 1; id <= 4; id++) {
            const struct br_event *event = br_catalog_event(w->e, id);
            if (event != NULL) {
                rooms[id - 1].exists = true;
                rooms[id - 1].mode = event->q_mode;
                rooms[id - 1].aware = event->spec.queue_flags & BR_QF_INVENTORY_AWARE;
                rooms[id - 1].avail = br_queue_seats_available(event);
                rooms[id - 1].requires_pass = event->spec.requires_pass;
            }
        }
        struct br_outcome o;
        int rc = apply(w->e, &c, &o);
        if (outs) {
            outs[step] = o;
        }
        t->steps++;
        t->err_seen[-rc]++;
        if (rc == BR_OK) {
            t->ok_by_type[c.type]++;
            if (c.type == BR_CMD_EVENT_CREATE) {
                remember(w->events, &w->nevents, 4, o.id);
            } else if (c.type == BR_CMD_USER_REGISTER) {
                remember(w->users, &w->nusers, 16, o.id);
            } else if (c.type == BR_CMD_RESERVE) {
                uint32_t known = w->nholds;
                remember(w->holds, &w->nholds, 64, o.id);
                w->new_hold = w->nholds > known;
            } else if (c.type == BR_CMD_PAYMENT_CREATE) {
                remember(w->payments, &w->npayments, 64, o.id);
            } else if (c.type == BR_CMD_PAYMENT_EVENT && o.status == BR_PAY_CONFIRMED) {
                const struct br_payment *p = br_saga_payment(w->e, o.id);
                uint32_t before_n = w->nconfirmed;
                remember(w->confirmed, &w->nconfirmed, 64, p->hold_id);
                if (w->nconfirmed > before_n) {
                    w->confirmed_owner[before_n] = owner_of(w->e, p->hold_id);
                }
            }
        }
        check_step(w, &c, &o, before, shuffled, rooms);
        check_effects(w, &c, order, seen, waiting, rooms);
    }
    check_effect_totals(w);
    current_step = P_STEPS; /* the drain */
    drain(w->e, w->now, t);
    uint64_t digest = br_engine_final_digest(w->e);
    t_engine_free(w->e);
    free(w);
    return digest;
}

/* Re-applies recorded commands, each through the journal codec, to a fresh
 * engine with the same seed: every outcome must match the recorded one.
 * Returns the final digest. */
static uint64_t replay_through_journal(uint64_t seed, const struct br_cmd *cmds,
                                       const struct br_outcome *outs)
{
    struct br_config cfg;
    property_config(&cfg, seed);
    struct br_engine *e = t_engine_new(&cfg);
    for (uint32_t i = 0; i < P_STEPS; i++) {
        uint8_t buf[BR_JOURNAL_RECORD_MAX];
        struct br_cmd d = cmds[i];
        struct br_outcome recorded = outs[i], o;
        size_t n = br_journal_record_encode(buf, sizeof buf, &cmds[i], &outs[i]);
        if (cmds[i].type >= 1 && cmds[i].type < BR_CMD_TYPE_COUNT) {
            bool has;
            size_t used;
            assert_true(n > 0);
            assert_int_equal(br_journal_record_decode(buf, n, &d, &recorded, &has, &used), BR_OK);
            assert_true(has);
        }
        apply(e, &d, &o);
        assert_memory_equal(&o, &outs[i], sizeof o);
        assert_memory_equal(&recorded, &outs[i], sizeof o);
    }
    struct tally t;
    memset(&t, 0, sizeof t);
    drain(e, cmds[P_STEPS - 1].now_ms, &t);
    uint64_t digest = br_engine_final_digest(e);
    t_engine_free(e);
    return digest;
}

static void test_random_command_sequences_keep_every_invariant(void **state)
{
    (void)state;
    struct tally *t = calloc(1, sizeof *t);
    struct br_cmd *cmds = calloc(P_STEPS, sizeof *cmds);
    struct br_outcome *outs = calloc(P_STEPS, sizeof *outs);
    signal(SIGABRT, on_abort);
    const char *only = getenv("BR_PROPERTY_SEED");
    if (only != NULL) {
        uint64_t seed = strtoull(only, NULL, 10);
        uint64_t digest = run_sequence(seed, t, cmds, outs);
        assert_true(replay_through_journal(seed, cmds, outs) == digest);
        fprintf(stderr, "property: seed %llu passed\n", (unsigned long long)seed);
        free(outs);
        free(cmds);
        free(t);
        return;
    }
    for (uint64_t seed = 1; seed <= P_SEQUENCES; seed++) {
        bool replay = seed % 25 == 0;
        uint64_t digest = run_sequence(seed, t, replay ? cmds : NULL, replay ? outs : NULL);
        if (replay) {
            /* The same commands, through the journal, give the same outcomes and digest. */
            assert_true(replay_through_journal(seed, cmds, outs) == digest);
        }
    }
    current_seed = -1;
    signal(SIGABRT, SIG_DFL);
    /* The generator is not vacuous: it reaches every refusal the engine can
     * give and every command type succeeds. */
    const int engine_errors[] = {
        BR_E_INVALID,          BR_E_UNAUTHORIZED,       BR_E_FORBIDDEN,       BR_E_NOT_FOUND,
        BR_E_FULL,             BR_E_SOLD_OUT,           BR_E_LIMIT_EXCEEDED,  BR_E_BOOKING_NOT_HELD,
        BR_E_PASS_REQUIRED,    BR_E_PASS_INVALID,       BR_E_PASS_EXPIRED,    BR_E_HOLD_EXPIRED,
        BR_E_IDEMPOTENCY_CONFLICT, BR_E_EMAIL_TAKEN,    BR_E_DUPLICATE,       BR_E_NOT_IN_QUEUE,
        BR_E_SALE_NOT_OPEN,    BR_E_QUEUE_CLOSED,
    };
    for (size_t i = 0; i < sizeof engine_errors / sizeof engine_errors[0]; i++) {
        if (t->err_seen[-engine_errors[i]] == 0) {
            fprintf(stderr, "the random sequences never produced %s\n",
                    br_err_name(engine_errors[i]));
        }
        assert_true(t->err_seen[-engine_errors[i]] > 0);
    }
    for (uint8_t type = 1; type < BR_CMD_TYPE_COUNT; type++) {
        if (t->ok_by_type[type] == 0) {
            fprintf(stderr, "no %s ever succeeded\n", br_cmd_name(type));
        }
        assert_true(t->ok_by_type[type] > 0);
    }
    assert_true(t->confirmed > 0 && t->refunded > 0);
    fprintf(stderr, "property: %llu steps, %llu ok, %llu confirmed and %llu refunded payments\n",
            (unsigned long long)t->steps, (unsigned long long)t->err_seen[0],
            (unsigned long long)t->confirmed, (unsigned long long)t->refunded);
    free(outs);
    free(cmds);
    free(t);
}

/* br_engine_due: each worker command is due exactly when applying it would
 * change something, so an idle server journals nothing. */
static void test_due_tells_exactly_when_a_worker_command_would_act(void **state)
{
    (void)state;
    struct br_config cfg;
    t_config_small(&cfg);
    struct br_engine *e = t_engine_new(&cfg);
    struct br_event_spec s = t_spec();
    s.sale_opens_at_ms = 100;
    s.max_active = 1;
    s.requires_pass = true;
    uint64_t ev = t_event(e, 0, &s);
    uint64_t ids[2];
    t_users(e, 2, ids);
    assert_int_equal(br_engine_due(e, ev, 0), 0);
    assert_int_equal(br_engine_due(e, ev + 1, 0), 0); /* unknown event: nothing */
    struct br_cmd c = c_join(10, ids[0], ev);
    struct br_outcome o;
    apply_expect(e, &c, BR_OK, &o);
    assert_int_equal(br_engine_due(e, ev, 99), 0);            /* pre-queue waits */
    assert_int_equal(br_engine_due(e, ev, 100), BR_DUE_ADMIT); /* the opening shuffle */
    c = c_admit(100, ev);
    apply_expect(e, &c, BR_OK, &o);
    assert_int_equal(o.count, 1);
    c = c_join(101, ids[1], ev);
    apply_expect(e, &c, BR_OK, &o);
    assert_int_equal(br_engine_due(e, ev, 101), 0); /* someone waits, but no room */
    assert_int_equal(br_engine_due(e, ev, 100 + s.pass_ttl_ms), BR_DUE_ADMIT); /* lapsed */
    struct br_queue_view v;
    assert_int_equal(br_queue_view(e, ev, ids[0], &v), BR_OK);
    c = c_reserve(200, ids[0], ev, 1, 1, v.pass_id, 0);
    apply_expect(e, &c, BR_OK, &o);
    uint64_t hold = o.id;
    assert_int_equal(br_engine_due(e, ev, 200), BR_DUE_ADMIT); /* the used pass made room */
    c = c_admit(200, ev);
    apply_expect(e, &c, BR_OK, &o);
    assert_int_equal(br_engine_due(e, ev, 201), 0);
    int64_t deadline = 200 + s.hold_ttl_ms;
    assert_int_equal(br_engine_due(e, ev, deadline - 1) & BR_DUE_SWEEP, 0);
    assert_int_equal(br_engine_due(e, ev, deadline) & BR_DUE_SWEEP, BR_DUE_SWEEP);
    uint64_t pay = t_payment(e, 300, ids[0], hold);
    c = c_sweep(deadline, ev, 10);
    apply_expect(e, &c, BR_OK, &o);
    assert_int_equal(br_engine_due(e, ev, deadline) & (BR_DUE_SWEEP | BR_DUE_SAGA), 0);
    c = c_pay_event(deadline + 1, 7, pay, T_SUCCEEDED);
    apply_expect(e, &c, BR_OK, &o); /* late: refund owed, first attempt emitted now */
    assert_int_equal(br_engine_due(e, 0, deadline + 1) & BR_DUE_SAGA, 0);
    assert_int_equal(br_engine_due(e, 0, deadline + 1 + BR_REFUND_BACKOFF_MS_MIN) & BR_DUE_SAGA,
                     BR_DUE_SAGA);
    t_engine_free(e);
}

static void check_names(const char *(*name)(uint8_t), unsigned count)
{
    for (unsigned i = 0; i < count; i++) {
        const char *n = name((uint8_t)i);
        assert_non_null(n);
        assert_true(n[0] != '\0' && strcmp(n, "unknown") != 0);
        for (unsigned j = 0; j < i; j++) {
            assert_string_not_equal(n, name((uint8_t)j));
        }
    }
    assert_string_equal(name((uint8_t)count), "unknown");
}

static void test_every_state_and_kind_has_one_distinct_name(void **state)
{
    (void)state;
    check_names(br_cmd_name, BR_CMD_TYPE_COUNT);
    check_names(br_hold_state_name, BR_HOLD_STATE_COUNT);
    check_names(br_queue_status_name, BR_QUEUE_STATUS_COUNT);
    check_names(br_payment_state_name, BR_PAYMENT_STATE_COUNT);
    check_names(br_effect_name, BR_EFFECT_KIND_COUNT);
    assert_string_equal(br_hold_state_name(BR_HOLD_CANCELLED), "cancelled");
    assert_string_equal(br_payment_state_name(BR_PAY_REFUND_PENDING), "refund_pending");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_memory_size_rejects_a_zero_or_oversized_capacity),
        cmocka_unit_test(test_due_tells_exactly_when_a_worker_command_would_act),
        cmocka_unit_test(test_init_rejects_too_small_misaligned_or_missing_memory),
        cmocka_unit_test(test_default_config_is_valid),
        cmocka_unit_test(test_unknown_command_type_is_invalid_and_still_digested),
        cmocka_unit_test(test_clock_outside_the_supported_range_is_invalid_and_changes_nothing),
        cmocka_unit_test(test_outcome_effect_count_and_hash_describe_the_effect_list),
        cmocka_unit_test(test_queries_report_stats_and_holds),
        cmocka_unit_test(test_names_of_commands_states_and_effects),
        cmocka_unit_test(test_same_commands_give_the_same_digests_on_two_engines),
        cmocka_unit_test(test_different_commands_or_seed_give_different_digests),
        cmocka_unit_test(test_digest_step_lets_another_backend_follow_the_chain),
        cmocka_unit_test(test_random_command_sequences_keep_every_invariant),
        cmocka_unit_test(test_every_state_and_kind_has_one_distinct_name),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
