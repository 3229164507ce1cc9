/*
 * double_http.h -- plain HTTP to the Stripe test double (stripe_double.py)
 * for the adapter tests: its control routes (/__double/...) and its API
 * with the test key, around the adapter under test. Blocking, 10 s bound.
 */
#ifndef BR_TESTS_STRIPE_DOUBLE_HTTP_H
#define BR_TESTS_STRIPE_DOUBLE_HTTP_H

#include <jansson.h>

/* The secret key the double accepts. */
#define DOUBLE_KEY "sk_test_double"

/* method base+path [body]; json != 0 sends JSON (a control route), else a
 * form with the key and, when idem_key is not NULL, that Idempotency-Key.
 * Fails the test when no answer came; *status (when not NULL) gets its
 * HTTP status. Returns the parsed answer (NULL when not JSON). */
json_t *double_http(const char *base, const char *method, const char *path, const char *body,
                    int json, const char *idem_key, long *status);

#endif
