/* test_err.c -- the error table: names, messages, values. */
#include "support.h"

#include <string.h>

struct entry {
    int value;
    const char *code;
    const char *message;
};

static const struct entry table[] = {
#define T_ENTRY(sym, val, code, status, msg) {sym, code, msg},
    BR_ERR_MAP(T_ENTRY)
#undef T_ENTRY
};

static void test_table_has_err_count_entries_numbered_zero_down(void **state)
{
    (void)state;
    assert_int_equal(sizeof table / sizeof table[0], BR_ERR_COUNT);
    for (int i = 0; i < BR_ERR_COUNT; i++) {
        assert_int_equal(table[i].value, -i); /* BR_OK == 0, then -1, -2, ... without gaps */
    }
    assert_int_equal(BR_OK, 0);
}

static void test_every_entry_has_its_name_and_message(void **state)
{
    (void)state;
    for (int i = 0; i < BR_ERR_COUNT; i++) {
        assert_string_equal(br_err_name(table[i].value), table[i].code);
        assert_string_equal(br_err_message(table[i].value), table[i].message);
        assert_true(strlen(br_err_message(table[i].value)) > 0);
    }
}

static void test_names_are_unique_upper_case_codes(void **state)
{
    (void)state;
    for (int i = 0; i < BR_ERR_COUNT; i++) {
        const char *n = br_err_name(table[i].value);
        for (const char *p = n; *p; p++) {
            assert_true((*p >= 'A' && *p <= 'Z') || *p == '_');
        }
        for (int j = i + 1; j < BR_ERR_COUNT; j++) {
            assert_string_not_equal(n, br_err_name(table[j].value));
        }
    }
}

static void test_api_codes_match_the_design(void **state)
{
    (void)state;
    assert_string_equal(br_err_name(BR_E_INVALID), "INVALID_REQUEST");
    assert_string_equal(br_err_name(BR_E_SOLD_OUT), "SOLD_OUT");
    assert_string_equal(br_err_name(BR_E_LIMIT_EXCEEDED), "LIMIT_EXCEEDED");
    assert_string_equal(br_err_name(BR_E_PASS_EXPIRED), "PASS_EXPIRED");
    assert_string_equal(br_err_name(BR_E_HOLD_EXPIRED), "HOLD_EXPIRED");
    assert_string_equal(br_err_name(BR_E_IDEMPOTENCY_CONFLICT), "IDEMPOTENCY_CONFLICT");
    assert_string_equal(br_err_name(BR_E_EMAIL_TAKEN), "EMAIL_TAKEN");
    assert_string_equal(br_err_name(BR_E_RATE_LIMITED), "RATE_LIMITED");
    assert_string_equal(br_err_name(BR_E_PAYLOAD_TOO_LARGE), "PAYLOAD_TOO_LARGE");
}

static void test_http_status_follows_the_design(void **state)
{
    (void)state;
    /* The statuses the API contract names (server/openapi.json). */
    assert_int_equal(br_err_http_status(BR_OK), 200);
    assert_int_equal(br_err_http_status(BR_E_INVALID), 400);
    assert_int_equal(br_err_http_status(BR_E_UNAUTHORIZED), 401);
    assert_int_equal(br_err_http_status(BR_E_PASS_EXPIRED), 403);
    assert_int_equal(br_err_http_status(BR_E_NOT_FOUND), 404);
    assert_int_equal(br_err_http_status(BR_E_SOLD_OUT), 409);
    assert_int_equal(br_err_http_status(BR_E_HOLD_EXPIRED), 410);
    assert_int_equal(br_err_http_status(BR_E_PAYLOAD_TOO_LARGE), 413);
    assert_int_equal(br_err_http_status(BR_E_IDEMPOTENCY_CONFLICT), 422);
    assert_int_equal(br_err_http_status(BR_E_RATE_LIMITED), 429);
    assert_int_equal(br_err_http_status(BR_E_STORAGE_UNAVAILABLE), 503);
    assert_int_equal(br_err_http_status(BR_E_OVERLOADED), 503);
    assert_int_equal(br_err_http_status(42), 500);
    /* A client's mistake is never a 5xx and a fault of ours never a 4xx. */
    for (int i = 0; i < BR_ERR_COUNT; i++) {
        unsigned st = br_err_http_status(-i);
        assert_true(st == 200 || (st >= 400 && st < 600));
    }
}

static void test_unknown_values_are_named_unknown(void **state)
{
    (void)state;
    const int unknown[] = {1, 42, -BR_ERR_COUNT, -1000, INT32_MIN, INT32_MAX};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        assert_string_equal(br_err_name(unknown[i]), "UNKNOWN");
        assert_string_equal(br_err_message(unknown[i]), "unknown error");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_has_err_count_entries_numbered_zero_down),
        cmocka_unit_test(test_every_entry_has_its_name_and_message),
        cmocka_unit_test(test_names_are_unique_upper_case_codes),
        cmocka_unit_test(test_api_codes_match_the_design),
        cmocka_unit_test(test_http_status_follows_the_design),
        cmocka_unit_test(test_unknown_values_are_named_unknown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
