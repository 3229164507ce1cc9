/*
 * test_render.c -- the text renderers of the SSE fan-out (server/render.c
 * br_render_queue_text, br_render_pass_text) write the same bytes as the
 * compact dump of the JSON trees the routes answer with, for every queue
 * status and the extreme values; and they refuse a buffer that is too small.
 * Why: the hub writes a stream's frames with them, and a client parses the
 * stream's data exactly as it parses the position route's answer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/cmd.h"
#include "core/queue.h"
#include "server/render.h"

static char *dumped(json_t *j)
{
    size_t len = 0;
    char *s = br_render_dump(j, &len);
    assert_non_null(s);
    assert_int_equal(strlen(s), len);
    return s;
}

static void test_queue_text_is_the_json_dump(void **state)
{
    (void)state;
    const struct br_api_queue views[] = {
        {.event_id = 1, .status = BR_QS_WAITING, .position = 3, .queue_length = 10,
         .estimated_wait_s = 1},
        {.event_id = 42, .status = BR_QS_PREQUEUE, .position = 0, .queue_length = 9999,
         .estimated_wait_s = 30},
        {.event_id = 7, .status = BR_QS_ADMITTED, .position = 0, .queue_length = 0,
         .pass_id = 99, .pass_expires_at_ms = 1800000000123},
        {.event_id = 7, .status = BR_QS_LEFT},
        {.event_id = INT64_MAX, .status = BR_QS_WAITING, .position = UINT32_MAX,
         .queue_length = UINT32_MAX, .estimated_wait_s = UINT32_MAX},
        /* Issue 13: gates, bases, the view-only statuses; a null wait. */
        {.event_id = 3, .status = BR_QS_WAITING, .position = 5, .queue_length = 9,
         .estimated_wait_s = 12, .gate = BR_GATE_SEATS_HELD, .estimate_basis = BR_EST_MEASURED,
         .admitted_per_min = 600},
        {.event_id = 3, .status = BR_QS_SOLD_OUT, .position = 5, .gate = BR_GATE_SOLD_OUT,
         .estimated_wait_s = UINT32_MAX},
        {.event_id = 3, .status = BR_QS_LAPSED, .gate = BR_GATE_OPEN,
         .estimate_basis = BR_EST_CONFIGURED},
        /* The longest frame the hub's 256 B buffer must hold. */
        {.event_id = INT64_MAX, .status = BR_QS_PASSTHROUGH, .position = UINT32_MAX,
         .queue_length = UINT32_MAX, .estimated_wait_s = UINT32_MAX - 1,
         .gate = BR_GATE_PASSTHROUGH, .estimate_basis = BR_EST_CONFIGURED,
         .admitted_per_min = UINT32_MAX},
    };
    for (size_t i = 0; i < sizeof views / sizeof views[0]; i++) {
        char *want = dumped(br_render_queue(&views[i], NULL));
        char got[256];
        size_t n = br_render_queue_text(&views[i], got, sizeof got);
        assert_int_equal(n, strlen(want));
        assert_string_equal(got, want);
        free(want);
    }
}

static void test_pass_text_is_the_json_dump(void **state)
{
    (void)state;
    const char *token = "AAECAwQFBgcICQ.abc-_xyz";
    char *want = dumped(br_render_pass(12, token, 1800000000123));
    char got[256];
    size_t n = br_render_pass_text(12, token, 1800000000123, got, sizeof got);
    assert_int_equal(n, strlen(want));
    assert_string_equal(got, want);
    free(want);
}

static void test_text_too_small_is_refused(void **state)
{
    (void)state;
    struct br_api_queue v = {.event_id = 1, .status = BR_QS_WAITING, .position = 3,
                             .queue_length = 10, .estimated_wait_s = 1};
    char full[256];
    size_t n = br_render_queue_text(&v, full, sizeof full);
    assert_true(n > 0);
    char small[256];
    assert_int_equal(br_render_queue_text(&v, small, n), 0); /* no room for the NUL */
    assert_int_equal(br_render_queue_text(&v, small, n + 1), n);
    assert_int_equal(br_render_pass_text(1, "tok", 0, small, 8), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_queue_text_is_the_json_dump),
        cmocka_unit_test(test_pass_text_is_the_json_dump),
        cmocka_unit_test(test_text_too_small_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
