/*
 * check.h -- assertions for the HTTP suite on top of cmocka, printing the
 * answer that did not match (status, body) before failing; and the buyer's
 * steps that assert as they go (t_pay).
 */
#ifndef BR_TEST_HTTP_CHECK_H
#define BR_TEST_HTTP_CHECK_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "client.h"

static inline void t_expect(const struct t_resp *r, long status, const char *code, const char *file,
                            int line)
{
    const char *got = json_string_value(
        json_object_get(json_object_get(r->json, "error"), "code"));
    if (r->status != status || (code != NULL && (got == NULL || strcmp(got, code) != 0))) {
        fprintf(stderr, "%s:%d: want %ld %s, got %ld %s\n", file, line, status,
                code ? code : "", r->status, r->body ? r->body : "");
        fail_msg("unexpected answer");
    }
}

/* The answer has this status (and, for errors, this error code). */
#define EXPECT(r, status, code) t_expect(&(r), (status), (code), __FILE__, __LINE__)

/* Integer / string members of the answer's JSON object. */
#define J_INT(r, key) ((uint64_t)json_integer_value(json_object_get((r).json, (key))))
#define J_STR(r, key) (json_string_value(json_object_get((r).json, (key))))

/* The buyer (token) pays booking through the test provider with a card
 * that succeeds: the payment answers 201 and its confirm 200. */
static inline void t_pay(struct t_server *s, const char *token, uint64_t booking)
{
    struct t_resp r;
    t_json(s, "POST", "/api/v1/payments", token,
           json_pack("{s:I}", "booking_id", (json_int_t)booking), NULL, &r);
    EXPECT(r, 201, NULL);
    char cp[160];
    snprintf(cp, sizeof cp, "/test-provider/v1/payment_intents/%s/confirm",
             J_STR(r, "provider_payment_id"));
    json_t *body = json_pack("{s:s, s:s}", "payment_method", "pm_card_visa", "client_secret",
                             J_STR(r, "client_secret"));
    t_resp_free(&r);
    t_json(s, "POST", cp, NULL, body, NULL, &r);
    EXPECT(r, 200, NULL);
    t_resp_free(&r);
}

#endif
