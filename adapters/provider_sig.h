/*
 * provider_sig.h -- webhook signatures in Stripe's scheme.
 *
 * Header: "Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>...]" where
 * each v1 is HMAC-SHA256 over "<t>.<raw body>" keyed with the endpoint's
 * signing secret (the whole "whsec_..." string as bytes). Several v1 values
 * appear while a secret is rotated; any one matching is enough. Unknown
 * schemes (v0) are ignored. The timestamp must be within the tolerance of
 * now in either direction, so a captured delivery cannot be replayed later.
 *
 * The built-in test provider signs with br_provider_sig_sign; the webhook
 * route verifies with br_provider_sig_verify_any (several endpoint secrets
 * while one is rotated, a configurable tolerance), exactly as for real
 * Stripe; br_provider_sig_verify is its one-secret form.
 */
#ifndef BR_PROVIDER_SIG_H
#define BR_PROVIDER_SIG_H

#include <stddef.h>
#include <stdint.h>

#define BR_PROVIDER_SIG_TOLERANCE_S 300 /* Stripe's default: five minutes */
#define BR_PROVIDER_SIG_HEADER_MAX 512u /* bytes of a header we agree to parse */
#define BR_PROVIDER_SIG_V1_MAX 4u       /* v1 entries tried per header */

/* Writes "t=<t>,v1=<hex>" into out. Returns BR_OK or BR_E_INVALID (cap too small). */
int br_provider_sig_sign(const char *secret, int64_t t, const char *payload, size_t len, char *out,
                         size_t cap);

/* BR_OK when one v1 matches and |now - t| <= tolerance_s; BR_E_INVALID for a
 * malformed header; BR_E_UNAUTHORIZED for a wrong signature or a stale
 * timestamp. Compares in constant time. */
int br_provider_sig_verify(const char *secret, const char *header, const char *payload, size_t len,
                           int64_t now_s, int64_t tolerance_s);

#define BR_PROVIDER_SIG_SECRETS_MAX 4u
/* BR_OK when one v1 matches under one of secrets[0..n) and |now - t| <= tolerance_s. Errors as
 * br_provider_sig_verify. n in 1..BR_PROVIDER_SIG_SECRETS_MAX. */
int br_provider_sig_verify_any(const char *const *secrets, size_t n, const char *header,
                               const char *payload, size_t len, int64_t now_s, int64_t tolerance_s);

#endif
