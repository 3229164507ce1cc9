/* test_sizing.c -- the sizing rule (core/sizing.h): the defaults cost what
 * a 100,000-person on-sale needs, every count derives from people unless
 * given, the layout over zeroed memory leaves the block untouched, and a
 * command refused for room names the table that was full. */
#define _DEFAULT_SOURCE /* mmap, mincore */

#include "support.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/limits.h"
#include "core/sizing.h"

#define MIB (1024.0 * 1024.0)

/* What README and --help promise for the defaults (112 MiB since point 8), with a little
 * room for a struct that grows by a field; the old defaults reserved 410 MiB. */
#define DEFAULT_MIB_MAX 113.0

static void test_defaults_fit_the_promised_memory_for_100000_people(void **state)
{
    (void)state;
    struct br_config d;
    br_config_default(&d);
    double mib = (double)br_engine_memory_size(&d) / MIB;
    print_message("defaults: %.1f MiB for %u people\n", mib, d.users_max);
    assert_true(mib <= DEFAULT_MIB_MAX);
    assert_int_equal(d.users_max, 100000);
    assert_int_equal(d.holds_max, 50000);
    assert_int_equal(d.payments_max, 50000);
    assert_int_equal(d.events_max, BR_EVENTS_DEFAULT);
    /* The defaults are the sizing rule for BR_PEOPLE_DEFAULT people. */
    struct br_sizing z = {.people = 100000};
    struct br_config c;
    br_config_size(&z, 1, &c);
    assert_memory_equal(&c, &d, sizeof c);
}

static void test_counts_derive_from_people_unless_given(void **state)
{
    (void)state;
    struct br_sizing z = {.people = 1000, .holds = 7, .users = 3};
    struct br_config c;
    br_config_size(&z, 9, &c);
    assert_int_equal(c.seed, 9);
    assert_int_equal(c.users_max, 3);
    assert_int_equal(c.holds_max, 7);
    assert_int_equal(c.members_max, 1000);
    assert_int_equal(c.passes_max, 2000);
    /* The cheap tables keep their floors: an event with the API's default
     * queue and the demo fit a small deployment. */
    assert_int_equal(c.queue_slots_max, BR_QUEUE_PLACES_MIN);
    assert_int_equal(c.queue_capacity_default, BR_QUEUE_PLACES_MIN / 4);
    assert_int_equal(c.active_max, BR_ACTIVE_MIN);
    assert_int_equal(c.seats_max, BR_SEATS_MIN);
    assert_int_equal(c.payments_max, 500);
    assert_int_equal(c.provider_events_max, 2 * 500 + 16);
    assert_int_equal(c.idem_max, 2000);
    assert_int_equal(c.events_max, BR_EVENTS_DEFAULT);
    /* Past the floors memory grows with people, roughly linearly. */
    z = (struct br_sizing){.people = 10000};
    br_config_size(&z, 1, &c);
    struct br_sizing big = {.people = 100000};
    struct br_config cb;
    br_config_size(&big, 1, &cb);
    size_t small = br_engine_memory_size(&c), large = br_engine_memory_size(&cb);
    assert_true(large > 5 * small && large < 15 * small);
}

static void test_extreme_counts_stay_valid(void **state)
{
    (void)state;
    struct br_sizing one = {.people = 1};
    struct br_config c;
    br_config_size(&one, 1, &c); /* ratios round down to 0: every table keeps a row */
    assert_true(br_engine_memory_size(&c) > 0);
    assert_true(c.holds_max >= 1 && c.active_max >= 1 && c.queue_capacity_default >= 1);
    struct br_sizing huge = {.people = UINT32_MAX, .events = UINT32_MAX, .queue_default = 7};
    br_config_size(&huge, 1, &c);
    assert_int_equal(c.users_max, BR_TABLE_ROWS_MAX);
    assert_int_equal(c.queue_slots_max, BR_TABLE_ROWS_MAX);
    assert_int_equal(c.events_max, BR_EVENT_ID_MAX);
    assert_int_equal(c.queue_capacity_default, 7);
    assert_true(br_engine_memory_size(&c) > 0);
}

/* Pages of [p, p + len) resident in memory. */
static size_t resident_pages(void *p, size_t len)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t n = (len + page - 1) / page;
    unsigned char *v = malloc(n);
    assert_non_null(v);
    assert_int_equal(mincore(p, len, v), 0);
    size_t in = 0;
    for (size_t i = 0; i < n; i++) {
        in += v[i] & 1u;
    }
    free(v);
    return in;
}

static void test_init_over_zeroed_memory_touches_only_the_heap_links(void **state)
{
    (void)state;
    struct br_config d;
    br_config_default(&d);
    size_t size = br_engine_memory_size(&d);
    void *mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(mem != MAP_FAILED);
    struct br_engine *e = malloc(sizeof *e);
    assert_non_null(e);
    assert_int_equal(br_engine_init_zeroed(e, &d, mem, size), BR_OK);
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t links = 4u * ((size_t)d.passes_max + d.holds_max + 2u * d.payments_max); /* payments: refund and check heaps */
    size_t touched = resident_pages(mem, size) * page;
    print_message("init over %.1f MiB touched %.2f MiB (heap links %.2f MiB)\n", (double)size / MIB,
                  (double)touched / MIB, (double)links / MIB);
    assert_true(touched <= links + 16 * page);
    /* The engine works over it: a user, an event, a hold. */
    struct br_outcome out;
    struct br_cmd c = c_register(0, "a@t", BR_ROLE_CUSTOMER);
    assert_int_equal(br_engine_apply(e, &c, &out), BR_OK);
    struct br_event_spec s = t_spec();
    c = c_event(0, 0, &s);
    assert_int_equal(br_engine_apply(e, &c, &out), BR_OK);
    c = c_reserve(1, 1, 1, 1, 2, 0, 0);
    assert_int_equal(br_engine_apply(e, &c, &out), BR_OK);
    br_engine_check(e);
    free(e);
    munmap(mem, size);
}

static void expect_full(struct br_engine *e, const struct br_cmd *c, enum br_table t)
{
    struct br_outcome out;
    assert_int_equal(apply(e, c, &out), BR_E_FULL);
    assert_string_equal(br_table_name(br_engine_full_table(e, c)), br_table_name(t));
}

static void test_a_full_answer_names_its_table(void **state)
{
    (void)state;
    struct br_config cfg;
    t_config_small(&cfg);
    cfg.users_max = 3;
    cfg.holds_max = 2;
    cfg.payments_max = 1;
    cfg.events_max = 2;
    cfg.queue_capacity_default = 1;
    struct br_engine *e = t_engine_new(&cfg);
    t_user(e, 0, "a@t");
    t_user(e, 0, "b@t");
    t_user(e, 0, "c@t");
    struct br_cmd c = c_register(0, "d@t", BR_ROLE_CUSTOMER);
    expect_full(e, &c, BR_TABLE_USERS);
    struct br_event_spec s = t_spec();
    uint64_t ev = t_event(e, 0, &s);
    t_event(e, 0, &s);
    c = c_event(0, 0, &s);
    expect_full(e, &c, BR_TABLE_EVENTS);
    uint64_t h = t_hold(e, 1, 1, ev, 1);
    uint64_t h2 = t_hold(e, 1, 2, ev, 1);
    c = c_reserve(1, 3, ev, 1, 1, 0, 0);
    expect_full(e, &c, BR_TABLE_HOLDS);
    t_payment(e, 2, 1, h);
    c = c_pay(2, 2, h2);
    expect_full(e, &c, BR_TABLE_PAYMENTS);
    struct br_outcome out;
    c = c_join(2, 1, ev);
    assert_int_equal(apply(e, &c, &out), BR_OK);
    c = c_join(2, 2, ev); /* a queue of one place */
    expect_full(e, &c, BR_TABLE_EVENT_QUEUE);
    uint32_t used = 0, max = 0;
    br_engine_table_usage(e, BR_TABLE_USERS, &used, &max);
    assert_int_equal(used, 3);
    assert_int_equal(max, 3);
    c = c_saga_step(3, 1); /* not a command that can be refused for room */
    assert_int_equal(br_engine_full_table(e, &c), BR_TABLE_OTHER);
    assert_string_equal(br_table_name(BR_TABLE_COUNT), "unknown");
    t_engine_free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_fit_the_promised_memory_for_100000_people),
        cmocka_unit_test(test_counts_derive_from_people_unless_given),
        cmocka_unit_test(test_extreme_counts_stay_valid),
        cmocka_unit_test(test_init_over_zeroed_memory_touches_only_the_heap_links),
        cmocka_unit_test(test_a_full_answer_names_its_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
