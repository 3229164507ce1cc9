/*
 * check.h -- assertions for the HTTP suite on top of cmocka, printing the
 * answer that did not match (status, body) before failing.
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

#endif
