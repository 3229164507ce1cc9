/* test_catalog.c -- events, zones, users and roles. */
#include "support.h"

#include <stdio.h>
#include <string.h>

#include "core/catalog.h"

/* Applies c, wants err, and checks the failed command changed no state. */
static void expect_refused(struct br_engine *e, const struct br_cmd *c, int err)
{
    uint64_t before = br_engine_state_hash(e);
    apply_expect(e, c, err, NULL);
    assert_true(br_engine_state_hash(e) == before);
}

static void test_event_ids_count_up_from_one_and_keep_the_spec(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    struct br_event_spec s = t_spec();
    s.zone_count = 2;
    strcpy(s.zones[1].name, "Balcony");
    s.zones[1].capacity = 5;
    s.zones[1].price_minor = 1000;
    strcpy(s.zones[1].currency, "USD");
    assert_int_equal(t_event(e, 0, &s), 1);
    assert_int_equal(t_event(e, 0, &s), 2);
    const struct br_event *ev = br_catalog_event(e, 2);
    assert_non_null(ev);
    assert_string_equal(ev->spec.name, "Show");
    assert_string_equal(ev->spec.zones[1].name, "Balcony");
    assert_int_equal(ev->spec.zones[1].capacity, 5);
    assert_string_equal(ev->spec.zones[1].currency, "USD");
    assert_null(br_catalog_event(e, 0));
    assert_null(br_catalog_event(e, 3));
    assert_int_equal(t_available(e, 2, 1), 10);
    assert_int_equal(t_available(e, 2, 2), 5);
    t_engine_free(e);
}

static void test_queue_capacity_zero_takes_the_config_default(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    struct br_event_spec s = t_spec();
    uint64_t ev = t_event(e, 0, &s);
    assert_int_equal(br_catalog_event(e, ev)->spec.queue_capacity, e->cfg.queue_capacity_default);
    s.queue_capacity = 3;
    ev = t_event(e, 0, &s);
    assert_int_equal(br_catalog_event(e, ev)->spec.queue_capacity, 3);
    t_engine_free(e);
}

static void test_unused_zone_specs_are_zeroed(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    struct br_event_spec s = t_spec();
    strcpy(s.zones[3].name, "garbage beyond zone_count"); /* must not be stored */
    s.zones[3].capacity = 99;
    uint64_t ev = t_event(e, 0, &s);
    struct br_zone_spec zero;
    memset(&zero, 0, sizeof zero);
    assert_memory_equal(&br_catalog_event(e, ev)->spec.zones[3], &zero, sizeof zero);
    t_engine_free(e);
}

static void test_organizers_and_admins_create_events_customers_may_not(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    struct br_cmd c = c_register(0, "cust@t", BR_ROLE_CUSTOMER);
    struct br_outcome o;
    apply_expect(e, &c, BR_OK, &o);
    uint64_t cust = o.id;
    c = c_register(0, "org@t", BR_ROLE_ORGANIZER);
    apply_expect(e, &c, BR_OK, &o);
    uint64_t org = o.id;
    assert_int_equal(o.status, BR_ROLE_ORGANIZER);
    c = c_register(0, "admin@t", BR_ROLE_ADMIN);
    apply_expect(e, &c, BR_OK, &o);
    uint64_t admin = o.id;
    struct br_event_spec s = t_spec();
    c = c_event(0, cust, &s);
    expect_refused(e, &c, BR_E_FORBIDDEN);
    c = c_event(0, 999, &s); /* unknown actor */
    expect_refused(e, &c, BR_E_FORBIDDEN);
    c = c_event(0, org, &s);
    apply_expect(e, &c, BR_OK, &o);
    assert_int_equal(br_catalog_event(e, o.id)->owner_user_id, org);
    c = c_event(0, admin, &s);
    apply_expect(e, &c, BR_OK, &o);
    assert_int_equal(e->event_count, 2);
    t_engine_free(e);
}

static void test_invalid_event_specs_are_refused(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    struct br_event_spec bad[20];
    int n = 0;
    for (int i = 0; i < 20; i++) {
        bad[i] = t_spec();
    }
    bad[n++].name[0] = 0;                                 /* empty name */
    memset(bad[n++].name, 'x', BR_NAME_MAX);              /* unterminated name */
    memset(bad[n++].venue, 'x', BR_NAME_MAX);             /* unterminated venue */
    bad[n++].per_user_limit = 0;
    bad[n++].per_user_limit = BR_PER_USER_LIMIT_MAX + 1;
    bad[n++].max_active = 0;
    bad[n++].admit_per_tick = 0;
    bad[n++].admit_per_tick = BR_ADMIT_PER_TICK_MAX + 1;
    bad[n++].pass_ttl_ms = 0;
    bad[n++].hold_ttl_ms = BR_TTL_MS_MAX + 1;
    bad[n++].sale_opens_at_ms = -1;
    bad[n++].queue_capacity = (1u << 30) + 1;
    bad[n++].zone_count = 0;
    bad[n++].zone_count = BR_EVENT_ZONES_MAX + 1;
    strcpy(bad[n++].zones[0].currency, "eur");            /* lower case */
    bad[n++].zones[0].capacity = 0;
    bad[n++].zones[0].capacity = BR_ZONE_CAPACITY_MAX + 1;
    bad[n++].zones[0].price_minor = -1;
    bad[n++].zones[0].price_minor = BR_PRICE_MINOR_MAX + 1;
    bad[n++].zones[0].name[0] = 0;
    assert_int_equal(n, 20);
    for (int i = 0; i < n; i++) {
        assert_int_equal(br_catalog_spec_validate(&bad[i]), BR_E_INVALID);
        struct br_cmd c = c_event(0, 0, &bad[i]);
        expect_refused(e, &c, BR_E_INVALID);
    }
    struct br_event_spec edge = t_spec(); /* every bound at its allowed extreme */
    edge.per_user_limit = BR_PER_USER_LIMIT_MAX;
    edge.admit_per_tick = BR_ADMIT_PER_TICK_MAX;
    edge.pass_ttl_ms = BR_TTL_MS_MAX;
    edge.hold_ttl_ms = 1;
    edge.zones[0].price_minor = 0;
    edge.venue[0] = 0; /* a venue may be empty */
    assert_int_equal(br_catalog_spec_validate(&edge), BR_OK);
    assert_int_equal(e->event_count, 0);
    t_engine_free(e);
}

static void test_event_table_full(void **state)
{
    (void)state;
    struct br_config cfg;
    t_config_small(&cfg);
    cfg.events_max = 2;
    struct br_engine *e = t_engine_new(&cfg);
    struct br_event_spec s = t_spec();
    t_event(e, 0, &s);
    t_event(e, 0, &s);
    struct br_cmd c = c_event(0, 0, &s);
    expect_refused(e, &c, BR_E_FULL);
    t_engine_free(e);
}

static void test_queue_slots_active_passes_and_seats_are_full_when_exhausted(void **state)
{
    (void)state;
    struct br_config cfg;
    t_config_small(&cfg); /* 64 queue slots, 16 active, 256 seats */
    struct br_engine *e = t_engine_new(&cfg);
    struct br_event_spec s = t_spec();
    s.queue_capacity = 60;
    t_event(e, 0, &s);
    s.queue_capacity = 5; /* 60 + 5 > 64 */
    struct br_cmd c = c_event(0, 0, &s);
    expect_refused(e, &c, BR_E_FULL);
    s.queue_capacity = 4; /* exactly fills the slots */
    t_event(e, 0, &s);

    t_engine_free(e);
    e = t_engine_new(&cfg);
    s = t_spec();
    s.queue_capacity = 1;
    s.max_active = 17; /* active_max is 16 */
    c = c_event(0, 0, &s);
    expect_refused(e, &c, BR_E_FULL);
    s.max_active = 16;
    t_event(e, 0, &s);

    s.max_active = 0; /* would also be invalid: validation answers first */
    c = c_event(0, 0, &s);
    expect_refused(e, &c, BR_E_INVALID);

    t_engine_free(e);
    e = t_engine_new(&cfg);
    s = t_spec();
    s.queue_capacity = 1;
    s.zones[0].capacity = 257; /* seats_max is 256 */
    c = c_event(0, 0, &s);
    expect_refused(e, &c, BR_E_FULL);
    s.zone_count = 2;
    s.zones[0].capacity = 200;
    s.zones[1] = s.zones[0];
    s.zones[1].capacity = 56; /* 256 in total: fits exactly */
    t_event(e, 0, &s);
    t_engine_free(e);
}

static void test_register_stores_the_user_and_ids_count_up(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    struct br_cmd c = c_register(0, "ada@example.org", BR_ROLE_ADMIN);
    struct br_outcome o;
    apply_expect(e, &c, BR_OK, &o);
    assert_int_equal(o.id, 1);
    assert_int_equal(o.status, BR_ROLE_ADMIN);
    const struct br_user *u = br_catalog_user(e, 1);
    assert_non_null(u);
    assert_string_equal(u->email, "ada@example.org");
    assert_string_equal(u->name, "Test User");
    assert_memory_equal(u->password_hash, c.u.user_register.password_hash, BR_PASSWORD_HASH_LEN);
    assert_memory_equal(u->salt, c.u.user_register.salt, BR_SALT_LEN);
    assert_int_equal(t_user(e, 0, "bob@example.org"), 2);
    assert_int_equal(br_catalog_user_by_email(e, "ada@example.org"), 1);
    assert_int_equal(br_catalog_user_by_email(e, "bob@example.org"), 2);
    assert_int_equal(br_catalog_user_by_email(e, "carol@example.org"), 0);
    assert_int_equal(br_catalog_user_by_email(e, ""), 0);
    assert_null(br_catalog_user(e, 0));
    assert_null(br_catalog_user(e, 3));
    t_engine_free(e);
}

static void test_second_register_of_an_email_is_email_taken_with_the_owner(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    uint64_t ada = t_user(e, 0, "ada@t");
    struct br_cmd c = c_register(5, "ada@t", BR_ROLE_ADMIN);
    struct br_outcome o;
    uint64_t before = br_engine_state_hash(e);
    apply_expect(e, &c, BR_E_EMAIL_TAKEN, &o);
    assert_int_equal(o.id, ada);
    assert_true(br_engine_state_hash(e) == before);
    assert_int_equal(br_catalog_user(e, ada)->role, BR_ROLE_CUSTOMER); /* not overwritten */
    /* Emails compare byte for byte: lower-casing is the server's job. */
    c = c_register(5, "ADA@t", BR_ROLE_CUSTOMER);
    apply_expect(e, &c, BR_OK, &o);
    assert_true(o.id != ada);
    t_engine_free(e);
}

static void test_register_refuses_bad_input_and_non_system_actors(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    uint64_t u = t_user(e, 0, "a@t");
    struct br_cmd c = c_register(0, "b@t", BR_ROLE_CUSTOMER);
    c.user_id = u; /* only the system (the server) registers users */
    expect_refused(e, &c, BR_E_FORBIDDEN);
    c = c_register(0, "", BR_ROLE_CUSTOMER);
    expect_refused(e, &c, BR_E_INVALID);
    c = c_register(0, "b@t", BR_ROLE_COUNT);
    expect_refused(e, &c, BR_E_INVALID);
    c = c_register(0, "b@t", BR_ROLE_CUSTOMER);
    memset(c.u.user_register.email, 'x', BR_EMAIL_MAX);
    expect_refused(e, &c, BR_E_INVALID);
    c = c_register(0, "b@t", BR_ROLE_CUSTOMER);
    memset(c.u.user_register.name, 'x', BR_NAME_MAX);
    expect_refused(e, &c, BR_E_INVALID);
    assert_int_equal(e->user_count, 1);
    t_engine_free(e);
}

static void test_user_table_full(void **state)
{
    (void)state;
    struct br_config cfg;
    t_config_small(&cfg);
    cfg.users_max = 3;
    struct br_engine *e = t_engine_new(&cfg);
    uint64_t ids[3];
    t_users(e, 3, ids);
    struct br_cmd c = c_register(0, "fourth@t", BR_ROLE_CUSTOMER);
    expect_refused(e, &c, BR_E_FULL);
    /* A taken email is still reported as taken, not as full. */
    c = c_register(0, "u1@t", BR_ROLE_CUSTOMER);
    expect_refused(e, &c, BR_E_EMAIL_TAKEN);
    t_engine_free(e);
}

static void test_role_set_by_system_or_admin_only(void **state)
{
    (void)state;
    struct br_engine *e = t_engine_new(NULL);
    uint64_t ids[3];
    t_users(e, 3, ids);
    struct br_cmd c = c_role_set(0, ids[1], ids[2], BR_ROLE_ADMIN);
    expect_refused(e, &c, BR_E_FORBIDDEN); /* a customer */
    c = c_role_set(0, 77, ids[2], BR_ROLE_ADMIN);
    expect_refused(e, &c, BR_E_FORBIDDEN); /* unknown actor */
    struct br_outcome o;
    c = c_role_set(0, 0, ids[0], BR_ROLE_ADMIN); /* the system makes the first admin */
    apply_expect(e, &c, BR_OK, &o);
    assert_int_equal(o.id, ids[0]);
    assert_int_equal(o.status, BR_ROLE_ADMIN);
    c = c_role_set(0, ids[0], ids[1], BR_ROLE_ORGANIZER);
    apply_expect(e, &c, BR_OK, &o);
    assert_int_equal(br_catalog_user(e, ids[1])->role, BR_ROLE_ORGANIZER);
    c = c_role_set(0, ids[1], ids[2], BR_ROLE_ORGANIZER);
    expect_refused(e, &c, BR_E_FORBIDDEN); /* organizers do not hand out roles */
    c = c_role_set(0, ids[0], ids[2], BR_ROLE_COUNT);
    expect_refused(e, &c, BR_E_INVALID);
    c = c_role_set(0, ids[0], 99, BR_ROLE_ORGANIZER);
    expect_refused(e, &c, BR_E_NOT_FOUND);
    c = c_role_set(0, ids[0], 0, BR_ROLE_ORGANIZER);
    expect_refused(e, &c, BR_E_NOT_FOUND);
    /* The new organizer may now create events. */
    struct br_event_spec s = t_spec();
    c = c_event(0, ids[1], &s);
    apply_expect(e, &c, BR_OK, NULL);
    t_engine_free(e);
}

/* Emails whose hashes collide are still different users: with the email
 * hash narrowed to 1 bit (two buckets), every registration collides with
 * earlier ones, and each must get its own account, be found by its own
 * bytes only, and a second register of one must name its owner. */
static void test_colliding_email_hashes_are_told_apart_by_their_bytes(void **state)
{
    (void)state;
    struct br_config cfg;
    t_config_small(&cfg);
    cfg.email_hash_bits = 1;
    struct br_engine *e = t_engine_new(&cfg);
    enum { N = 12 };
    char emails[N][16];
    uint64_t ids[N];
    for (int i = 0; i < N; i++) {
        snprintf(emails[i], sizeof emails[i], "victim%d@t", i);
        struct br_cmd c = c_register(i, emails[i], BR_ROLE_CUSTOMER);
        struct br_outcome o;
        apply_expect(e, &c, BR_OK, &o); /* not EMAIL_TAKEN: a collision is not a match */
        ids[i] = o.id;
        assert_int_equal(ids[i], i + 1);
    }
    for (int i = 0; i < N; i++) {
        assert_int_equal(br_catalog_user_by_email(e, emails[i]), ids[i]);
        struct br_cmd c = c_register(100, emails[i], BR_ROLE_ADMIN);
        struct br_outcome o;
        expect_refused(e, &c, BR_E_EMAIL_TAKEN);
        apply_expect(e, &c, BR_E_EMAIL_TAKEN, &o);
        assert_int_equal(o.id, ids[i]);
    }
    /* Unknown emails that share a bucket with all of them are not found. */
    assert_int_equal(br_catalog_user_by_email(e, "attacker@t"), 0);
    assert_int_equal(br_catalog_user_by_email(e, "victim1@t0"), 0);
    assert_int_equal(br_catalog_user_by_email(e, "victim1@"), 0);
    t_engine_free(e);
}

static void test_admins_steer_every_event_organizers_their_own_customers_none(void **state)
{
    (void)state;
    assert_true(br_catalog_may_steer(BR_ROLE_ADMIN, 3, 0));
    assert_true(br_catalog_may_steer(BR_ROLE_ADMIN, 3, 9));
    assert_true(br_catalog_may_steer(BR_ROLE_ORGANIZER, 3, 3));
    assert_false(br_catalog_may_steer(BR_ROLE_ORGANIZER, 3, 4));
    assert_false(br_catalog_may_steer(BR_ROLE_ORGANIZER, 3, 0)); /* the system's demo event */
    assert_false(br_catalog_may_steer(BR_ROLE_CUSTOMER, 3, 3));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_event_ids_count_up_from_one_and_keep_the_spec),
        cmocka_unit_test(test_queue_capacity_zero_takes_the_config_default),
        cmocka_unit_test(test_unused_zone_specs_are_zeroed),
        cmocka_unit_test(test_organizers_and_admins_create_events_customers_may_not),
        cmocka_unit_test(test_invalid_event_specs_are_refused),
        cmocka_unit_test(test_event_table_full),
        cmocka_unit_test(test_queue_slots_active_passes_and_seats_are_full_when_exhausted),
        cmocka_unit_test(test_register_stores_the_user_and_ids_count_up),
        cmocka_unit_test(test_second_register_of_an_email_is_email_taken_with_the_owner),
        cmocka_unit_test(test_colliding_email_hashes_are_told_apart_by_their_bytes),
        cmocka_unit_test(test_admins_steer_every_event_organizers_their_own_customers_none),
        cmocka_unit_test(test_register_refuses_bad_input_and_non_system_actors),
        cmocka_unit_test(test_user_table_full),
        cmocka_unit_test(test_role_set_by_system_or_admin_only),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
