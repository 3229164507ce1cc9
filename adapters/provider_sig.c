/* provider_sig.c -- Stripe-style webhook signatures (see provider_sig.h). */
#define _POSIX_C_SOURCE 200809L

#include "adapters/provider_sig.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/auth.h"
#include "core/err.h"
#include "core/panic.h"

/* HMAC-SHA256 over "<t>.<payload>" without building the concatenation. */
static void sig_mac(const char *secret, int64_t t, const char *payload, size_t len, uint8_t mac[32])
{
    /* The signed string is short-prefix + payload; HMAC over a joined copy
     * would cost a malloc per webhook, so the prefix and the payload are fed
     * through one buffer when small and a heap copy otherwise. */
    char prefix[32];
    int n = snprintf(prefix, sizeof prefix, "%" PRId64 ".", t);
    BR_ASSERT(n > 0 && (size_t)n < sizeof prefix);
    char stack[4096];
    if ((size_t)n + len <= sizeof stack) {
        memcpy(stack, prefix, (size_t)n);
        memcpy(stack + n, payload, len);
        br_auth_hmac_sha256((const uint8_t *)secret, strlen(secret), stack, (size_t)n + len, mac);
        return;
    }
    char *heap = malloc((size_t)n + len);
    BR_ASSERT(heap != NULL);
    memcpy(heap, prefix, (size_t)n);
    memcpy(heap + n, payload, len);
    br_auth_hmac_sha256((const uint8_t *)secret, strlen(secret), heap, (size_t)n + len, mac);
    free(heap);
}

int br_provider_sig_sign(const char *secret, int64_t t, const char *payload, size_t len, char *out,
                         size_t cap)
{
    uint8_t mac[32];
    char hex[65];
    sig_mac(secret, t, payload, len, mac);
    br_auth_hex(mac, sizeof mac, hex);
    int n = snprintf(out, cap, "t=%" PRId64 ",v1=%s", t, hex);
    return n > 0 && (size_t)n < cap ? BR_OK : BR_E_INVALID;
}

/* Parses "t=..,v1=..,v1=..": the timestamp and up to BR_PROVIDER_SIG_V1_MAX
 * well-formed v1 values (other schemes and malformed v1 entries ignored).
 * BR_OK, or BR_E_INVALID (no t, a bad t, no v1, header too long). */
static int sig_parse(const char *header, int64_t *t_out, uint8_t v1[][32], unsigned *v1_count)
{
    if (header == NULL || strlen(header) > BR_PROVIDER_SIG_HEADER_MAX) {
        return BR_E_INVALID;
    }
    int64_t t = -1;
    unsigned count = 0;
    const char *p = header;
    for (unsigned guard = 0; guard < 64 && *p != '\0'; guard++) {
        const char *end = strchr(p, ',');
        size_t item = end ? (size_t)(end - p) : strlen(p);
        if (item > 2 && p[0] == 't' && p[1] == '=') {
            int64_t v = 0;
            size_t i = 2;
            for (; i < item && i < 20 && p[i] >= '0' && p[i] <= '9'; i++) {
                v = v * 10 + (p[i] - '0');
            }
            if (i != item) {
                return BR_E_INVALID;
            }
            t = v;
        } else if (item == 3 + 64 && strncmp(p, "v1=", 3) == 0 && count < BR_PROVIDER_SIG_V1_MAX) {
            if (br_auth_unhex(p + 3, v1[count], 32) == BR_OK) {
                count++;
            }
        }
        p += item;
        if (*p == ',') {
            p++;
        }
    }
    if (t < 0 || count == 0) {
        return BR_E_INVALID;
    }
    *t_out = t;
    *v1_count = count;
    return BR_OK;
}

int br_provider_sig_verify_any(const char *const *secrets, size_t n, const char *header,
                               const char *payload, size_t len, int64_t now_s, int64_t tolerance_s)
{
    BR_ASSERT(secrets != NULL && n >= 1 && n <= BR_PROVIDER_SIG_SECRETS_MAX);
    BR_ASSERT(tolerance_s >= 0);
    int64_t t = -1;
    uint8_t v1[BR_PROVIDER_SIG_V1_MAX][32];
    unsigned v1_count = 0;
    int rc = sig_parse(header, &t, v1, &v1_count);
    if (rc != BR_OK) {
        return rc;
    }
#ifndef BR_PLANT_SIG_NO_TOLERANCE
    if (t < now_s - tolerance_s || t > now_s + tolerance_s) {
        return BR_E_UNAUTHORIZED;
    }
#else
    (void)now_s; /* planted: any timestamp accepted, a captured delivery replays forever */
#endif
    bool ok = false;
#ifdef BR_PLANT_SIG_FIRST_SECRET_ONLY
    n = 1; /* planted: rotation broken, only the first secret is tried */
#endif
    for (size_t k = 0; k < n; k++) {
        BR_ASSERT(secrets[k] != NULL);
        uint8_t want[32];
        sig_mac(secrets[k], t, payload, len, want);
        for (unsigned i = 0; i < v1_count; i++) {
            ok |= br_auth_equal(want, v1[i], sizeof want); /* no early exit: constant time */
        }
    }
    return ok ? BR_OK : BR_E_UNAUTHORIZED;
}

int br_provider_sig_verify(const char *secret, const char *header, const char *payload, size_t len,
                           int64_t now_s, int64_t tolerance_s)
{
    const char *one[1] = {secret};
    return br_provider_sig_verify_any(one, 1, header, payload, len, now_s, tolerance_s);
}
