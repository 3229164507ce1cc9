/* test_gen.c -- the command-sequence generator: determinism, reach over
 * command types, outcomes and effects, and the byte source's end. */
#include "support.h"

#include <string.h>

#include "core/gen.h"
#include "core/hash.h"
#include "core/journal.h"

struct run {
    uint64_t chain;   /* hash over every command's canonical encoding, in order */
    uint64_t digest;  /* the engine's final digest */
    uint64_t commands;
    uint32_t types[BR_CMD_TYPE_COUNT];
    uint32_t errs[BR_ERR_COUNT]; /* by -err */
    uint32_t effects[BR_EFFECT_KIND_COUNT]; /* by enum br_effect_kind */
    uint32_t checked_creates;    /* payment_creates with check_ms > 0 */
};

/* Generates up to n commands from src and applies each (apply() runs every
 * checker after every step); stops early when a byte source runs out. */
static void run_source_mix(struct br_gen_source *src, uint64_t engine_seed, uint32_t n,
                           struct run *r, bool point8, bool waiting_room)
{
    struct br_gen_params p;
    br_gen_params_default(&p);
    if (point8) {
        br_gen_params_point8(&p);
    }
    if (waiting_room) {
        br_gen_params_waiting_room(&p);
    }
    struct br_config cfg;
    br_gen_engine_config(&p, engine_seed, &cfg);
    struct br_engine *e = t_engine_new(&cfg);
    struct br_gen g;
    br_gen_init(&g, &p);
    memset(r, 0, sizeof *r);
    struct br_cmd c;
    for (uint32_t i = 0; i < n && br_gen_next(&g, src, &c); i++) {
        struct br_outcome out;
        int rc = apply(e, &c, &out);
        uint32_t nfx;
        const struct br_effect *fx = br_engine_effects(e, &nfx);
        br_gen_observe(&g, &c, &out, fx, nfx);
        r->chain = br_hash_step(r->chain, br_journal_cmd_hash(&c));
        r->commands++;
        assert_true(c.type > BR_CMD_NONE && c.type < BR_CMD_TYPE_COUNT);
        r->types[c.type]++;
        r->checked_creates += c.type == BR_CMD_PAYMENT_CREATE && c.u.payment_create.check_ms != 0;
        assert_true(rc <= 0 && -rc < BR_ERR_COUNT);
        r->errs[-rc]++;
        for (uint32_t k = 0; k < nfx; k++) {
            assert_true(fx[k].kind < BR_EFFECT_KIND_COUNT);
            r->effects[fx[k].kind]++;
        }
    }
    assert_int_equal(g.generated, r->commands);
    r->digest = br_engine_final_digest(e);
    t_engine_free(e);
}

static void run_source(struct br_gen_source *src, uint64_t engine_seed, uint32_t n,
                       struct run *r)
{
    run_source_mix(src, engine_seed, n, r, true, false);
}

/* The default mix leaves point 8 out (gen.h): a backend without the rule
 * agrees with it. Seen failing with br_gen_params_default giving
 * payment_check a weight. */
static void test_default_mix_has_no_point8(void **state)
{
    (void)state;
    struct br_gen_source src;
    br_gen_source_rng(&src, 3, 0);
    struct run r;
    run_source_mix(&src, 3, 20000, &r, false, false);
    assert_int_equal(r.types[BR_CMD_PAYMENT_CHECK], 0);
    assert_int_equal(r.checked_creates, 0);
    assert_int_equal(r.effects[BR_FX_PROVIDER_QUERY] + r.effects[BR_FX_PROVIDER_VOID], 0);
    assert_true(r.types[BR_CMD_PAYMENT_CREATE] > 100);
    /* Nor issue 13's waiting room (br_gen_params_waiting_room). */
    assert_int_equal(r.types[BR_CMD_QUEUE_MODE_SET] + r.types[BR_CMD_PRESENCE], 0);
    assert_int_equal(r.effects[BR_FX_QUEUE_STATE] + r.effects[BR_FX_PLACE_LAPSED], 0);
}

static void run_seed(uint64_t seed, uint32_t n, struct run *r)
{
    struct br_gen_source src;
    br_gen_source_rng(&src, seed, 0);
    run_source(&src, seed, n, r);
}

static void test_same_seed_gives_the_same_sequence(void **state)
{
    (void)state;
    struct run a, b, other;
    run_seed(7, 2000, &a);
    run_seed(7, 2000, &b);
    run_seed(8, 2000, &other);
    assert_int_equal(a.commands, 2000);
    assert_true(a.chain == b.chain);
    assert_true(a.digest == b.digest);
    assert_true(a.chain != other.chain);
    assert_true(a.digest != other.digest);
}

static void test_sequences_reach_every_command_type_and_most_errors(void **state)
{
    (void)state;
    struct run total, r;
    memset(&total, 0, sizeof total);
    for (uint64_t seed = 1; seed <= 6; seed++) {
        run_seed(seed, 3000, &r);
        for (int t = 0; t < BR_CMD_TYPE_COUNT; t++) {
            total.types[t] += r.types[t];
        }
        total.checked_creates += r.checked_creates;
        for (int k = 0; k < BR_ERR_COUNT; k++) {
            total.errs[k] += r.errs[k];
        }
        for (int k = 0; k < BR_EFFECT_KIND_COUNT; k++) {
            total.effects[k] += r.effects[k];
        }
        /* and the waiting room's mix (issue 13) on the same seed */
        struct br_gen_source src;
        br_gen_source_rng(&src, seed, 1);
        run_source_mix(&src, seed, 3000, &r, true, true);
        for (int t = 0; t < BR_CMD_TYPE_COUNT; t++) {
            total.types[t] += r.types[t];
        }
        for (int k = 0; k < BR_ERR_COUNT; k++) {
            total.errs[k] += r.errs[k];
        }
        for (int k = 0; k < BR_EFFECT_KIND_COUNT; k++) {
            total.effects[k] += r.effects[k];
        }
    }
    for (int t = BR_CMD_EVENT_CREATE; t < BR_CMD_TYPE_COUNT; t++) {
        if (total.types[t] < 10) {
            fail_msg("command %s generated only %u times", br_cmd_name((uint8_t)t),
                     total.types[t]);
        }
    }
    /* Every value the engine itself can answer with, each more than once
     * (the rest -- rate limits, journal damage, I/O -- belong to drivers). */
    static const int reachable[] = {
        BR_OK,               BR_E_INVALID,         BR_E_UNAUTHORIZED,  BR_E_FORBIDDEN,
        BR_E_NOT_FOUND,      BR_E_FULL,            BR_E_SOLD_OUT,      BR_E_LIMIT_EXCEEDED,
        BR_E_BOOKING_NOT_HELD, BR_E_PASS_REQUIRED, BR_E_PASS_INVALID,  BR_E_PASS_EXPIRED,
        BR_E_HOLD_EXPIRED,   BR_E_IDEMPOTENCY_CONFLICT, BR_E_EMAIL_TAKEN, BR_E_DUPLICATE,
        BR_E_NOT_IN_QUEUE,   BR_E_SALE_NOT_OPEN,   BR_E_QUEUE_CLOSED,
    };
    for (size_t i = 0; i < sizeof reachable / sizeof reachable[0]; i++) {
        if (total.errs[-reachable[i]] < 2) {
            fail_msg("outcome %s reached only %u times", br_err_name(reachable[i]),
                     total.errs[-reachable[i]]);
        }
    }
    /* Success is common, not a rarity: a sequence that mostly fails at the
     * first check would leave the deep paths untested. */
    uint32_t all = 0;
    for (int k = 0; k < BR_ERR_COUNT; k++) {
        all += total.errs[k];
    }
    assert_true(total.errs[0] * 3 > all);
    assert_true(total.checked_creates > 10);
    for (int k = BR_FX_PASS_ISSUED; k < BR_EFFECT_KIND_COUNT; k++) {
        if (total.effects[k] < 2) {
            fail_msg("effect %s emitted only %u times", br_effect_name((uint8_t)k),
                     total.effects[k]);
        }
    }
}

static void test_byte_source_that_runs_out_ends_the_sequence(void **state)
{
    (void)state;
    uint8_t bytes[600];
    for (size_t i = 0; i < sizeof bytes; i++) {
        bytes[i] = (uint8_t)br_mix64(i);
    }
    struct br_gen_source src;
    br_gen_source_bytes(&src, bytes, sizeof bytes);
    struct run r;
    run_source(&src, 1, 100000, &r);
    /* Every command draws at least the clock, the type and the fault roll. */
    assert_true(r.commands >= 20 && r.commands <= sizeof bytes / 3);
    assert_true(src.exhausted && src.pos <= src.len);

    /* Once out, it stays out, and a failed next changes nothing. */
    struct br_gen_params p;
    br_gen_params_default(&p);
    struct br_gen g;
    br_gen_init(&g, &p);
    br_gen_source_bytes(&src, bytes, 5);
    struct br_cmd c;
    uint32_t made = 0;
    for (int i = 0; i < 10 && br_gen_next(&g, &src, &c); i++) {
        made++;
    }
    assert_true(made <= 1);
    struct br_gen before;
    memcpy(&before, &g, sizeof g); /* bytes, padding included */
    assert_false(br_gen_next(&g, &src, &c));
    assert_int_equal(c.type, BR_CMD_NONE);
    assert_memory_equal(&before, &g, sizeof g);

    /* An empty input is an empty sequence. */
    br_gen_init(&g, &p);
    br_gen_source_bytes(&src, NULL, 0);
    assert_false(br_gen_next(&g, &src, &c));
    assert_int_equal(g.generated, 0);
}

static void test_same_bytes_give_the_same_sequence(void **state)
{
    (void)state;
    uint8_t bytes[400];
    for (size_t i = 0; i < sizeof bytes; i++) {
        bytes[i] = (uint8_t)(br_mix64(i + 99) >> 7);
    }
    struct br_gen_source a, b;
    br_gen_source_bytes(&a, bytes, sizeof bytes);
    br_gen_source_bytes(&b, bytes, sizeof bytes);
    struct run ra, rb;
    run_source(&a, 3, 100000, &ra);
    run_source(&b, 3, 100000, &rb);
    assert_true(ra.commands > 0 && ra.commands == rb.commands);
    assert_true(ra.chain == rb.chain && ra.digest == rb.digest);
}

static void test_draws_take_one_two_or_four_bytes(void **state)
{
    (void)state;
    const uint8_t bytes[] = {0x05, 0x34, 0x12, 0x01, 0x00, 0x00, 0x80, 0x07};
    struct br_gen_source s;
    br_gen_source_bytes(&s, bytes, sizeof bytes);
    assert_int_equal(br_gen_draw(&s, 1), 0); /* no choice, no byte */
    assert_int_equal(s.pos, 0);
    assert_int_equal(br_gen_draw(&s, 256), 5);
    assert_int_equal(br_gen_draw(&s, 65536), 0x1234);
    assert_int_equal(br_gen_draw(&s, 0x80000000u), 0x1);  /* 0x80000001 % 2^31 */
    assert_int_equal(s.pos, 7);
    assert_false(s.exhausted);
    assert_int_equal(br_gen_draw(&s, 300), 0); /* two bytes wanted, one left */
    assert_true(s.exhausted);
    assert_int_equal(br_gen_draw(&s, 2), 0); /* sticky, even though one byte is left */
    assert_int_equal(s.pos, 7);
}

static void test_every_generated_command_survives_the_journal(void **state)
{
    (void)state;
    struct br_gen_params p;
    br_gen_params_default(&p);
    br_gen_params_point8(&p);
    p.invalid_per_256 = 64; /* many broken fields: they must be encodable too */
    struct br_config cfg;
    br_gen_engine_config(&p, 5, &cfg);
    struct br_engine *e = t_engine_new(&cfg);
    struct br_gen g;
    br_gen_init(&g, &p);
    struct br_gen_source src;
    br_gen_source_rng(&src, 5, 1);
    for (int i = 0; i < 2000; i++) {
        struct br_cmd c, back;
        struct br_outcome out, back_out;
        assert_true(br_gen_next(&g, &src, &c));
        apply(e, &c, &out);
        uint32_t nfx;
        const struct br_effect *fx = br_engine_effects(e, &nfx);
        br_gen_observe(&g, &c, &out, fx, nfx);
        uint8_t buf[BR_JOURNAL_RECORD_MAX];
        size_t n = br_journal_record_encode(buf, sizeof buf, &c, &out);
        assert_true(n > 0);
        bool has_out;
        size_t used;
        assert_int_equal(br_journal_record_decode(buf, n, &back, &back_out, &has_out, &used),
                         BR_OK);
        assert_int_equal(used, n);
        assert_true(has_out);
        assert_true(br_journal_cmd_hash(&back) == br_journal_cmd_hash(&c));
        assert_true(br_outcome_hash(&back_out) == br_outcome_hash(&out));
    }
    t_engine_free(e);
}

static void test_clock_moves_forward_with_small_skew(void **state)
{
    (void)state;
    struct br_gen_params p;
    br_gen_params_default(&p);
    struct br_gen g;
    br_gen_init(&g, &p);
    struct br_gen_source src;
    br_gen_source_rng(&src, 11, 0);
    int64_t prev = g.now_ms;
    uint32_t back = 0, long_jumps = 0;
    for (int i = 0; i < 5000; i++) {
        struct br_cmd c;
        assert_true(br_gen_next(&g, &src, &c));
        int64_t step = c.now_ms - prev;
        assert_true(step >= -40 && step <= 120000);
        back += step < 0;
        long_jumps += step >= 5000;
        prev = c.now_ms;
        struct br_outcome none;
        memset(&none, 0, sizeof none);
        none.err = BR_E_NOT_FOUND;
        br_gen_observe(&g, &c, &none, NULL, 0);
    }
    /* Each kind is 6 in 256 steps (~117 of 5000, a standard deviation of
     * ~11): the bounds only say that both happen, without hanging on a
     * seed's luck (the session commands' draws moved this seed to 98). */
    assert_true(back > 20 && long_jumps > 60);
    assert_true(g.now_ms > p.start_ms + 5000 * 100);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_seed_gives_the_same_sequence),
        cmocka_unit_test(test_sequences_reach_every_command_type_and_most_errors),
        cmocka_unit_test(test_byte_source_that_runs_out_ends_the_sequence),
        cmocka_unit_test(test_same_bytes_give_the_same_sequence),
        cmocka_unit_test(test_draws_take_one_two_or_four_bytes),
        cmocka_unit_test(test_every_generated_command_survives_the_journal),
        cmocka_unit_test(test_clock_moves_forward_with_small_skew),
        cmocka_unit_test(test_default_mix_has_no_point8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
