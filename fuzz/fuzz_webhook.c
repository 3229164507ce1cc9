/*
 * fuzz_webhook.c -- fuzz target: the payment provider's webhook signature
 * (adapters/provider_sig.h, Stripe's scheme), verified on every delivery to
 * POST /api/v1/webhooks/stripe before the body is parsed.
 *
 * Input: a mode byte, then "<Stripe-Signature header>\n<raw body>" (the
 * body may hold any bytes, NULs included). Mode (low two bits):
 *   0  header and body as given;
 *   1  the body only (the whole text): the harness signs it for now, so the
 *      verification of a genuine delivery of any body is checked;
 *   2  the header as given, followed by ",t=<now>,v1=<the right hex>":
 *      genuine items after arbitrary ones (key rotation, unknown schemes);
 *   3  as 0, with the clock at the header's own edge of tolerance.
 * Asserted: only BR_OK, BR_E_INVALID and BR_E_UNAUTHORIZED come back; a
 * header signed by br_provider_sig_sign always verifies (mode 1) and fails
 * once the body changes by one byte or the clock moves past tolerance.
 *
 * The body's parsing behind the signature (event id, type,
 * metadata.payment_id) is fuzz_webhook_payload's.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/provider_sig.h"
#include "core/err.h"
#include "core/panic.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define INPUT_MAX 8192u
#define NOW_S 1700000000LL

static const char secret[] = "whsec_fuzz0123456789abcdefghijklmnop";

static int verify(const char *header, const char *body, size_t len, int64_t now_s)
{
    int rc = br_provider_sig_verify(secret, header, body, len, now_s, BR_PROVIDER_SIG_TOLERANCE_S);
    BR_ASSERT(rc == BR_OK || rc == BR_E_INVALID || rc == BR_E_UNAUTHORIZED);
    return rc;
}

/* A genuine delivery of body verifies, and stops verifying when the body or
 * the clock is off. */
static void check_genuine(const char *body, size_t len)
{
    char header[BR_PROVIDER_SIG_HEADER_MAX];
    BR_ASSERT(br_provider_sig_sign(secret, NOW_S, body, len, header, sizeof header) == BR_OK);
    BR_ASSERT(verify(header, body, len, NOW_S) == BR_OK);
    BR_ASSERT(verify(header, body, len, NOW_S + BR_PROVIDER_SIG_TOLERANCE_S) == BR_OK);
    BR_ASSERT(verify(header, body, len, NOW_S + BR_PROVIDER_SIG_TOLERANCE_S + 1) ==
              BR_E_UNAUTHORIZED);
    if (len > 0) {
        char *changed = malloc(len);
        if (changed != NULL) {
            memcpy(changed, body, len);
            changed[len / 2] ^= 1;
            BR_ASSERT(verify(header, changed, len, NOW_S) == BR_E_UNAUTHORIZED);
            free(changed);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > INPUT_MAX) {
        return 0;
    }
    uint8_t mode = data[0] & 3u;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    if (mode == 1) {
        /* An exact-size copy of the body: a read past it is caught. */
        char *body = malloc(len > 0 ? len : 1);
        if (body != NULL) {
            memcpy(body, text, len);
            check_genuine(body, len);
            free(body);
        }
        return 0;
    }
    const char *nl = memchr(text, '\n', len);
    size_t hlen = nl ? (size_t)(nl - text) : len;
    size_t blen = nl ? len - hlen - 1 : 0;
    char *header = malloc(hlen + 3 + 2 * BR_PROVIDER_SIG_HEADER_MAX);
    char *body = malloc(blen > 0 ? blen : 1);
    if (header == NULL || body == NULL) {
        free(header);
        free(body);
        return 0;
    }
    memcpy(header, text, hlen);
    header[hlen] = '\0'; /* a header is a C string: it ends at its first NUL */
    if (nl != NULL) {
        memcpy(body, nl + 1, blen);
    }
    int64_t now_s = NOW_S;
    if (mode == 2) {
        char genuine[BR_PROVIDER_SIG_HEADER_MAX];
        BR_ASSERT(br_provider_sig_sign(secret, NOW_S, body, blen, genuine, sizeof genuine) ==
                  BR_OK);
        size_t at = strlen(header);
        snprintf(header + at, 2 + BR_PROVIDER_SIG_HEADER_MAX, ",%s", genuine);
    } else if (mode == 3) {
        /* The clock at the far edge of the header's own timestamp, if any. */
        const char *t = strstr(header, "t=");
        if (t != NULL) {
            long long v = strtoll(t + 2, NULL, 10);
            if (v >= 0 && v < (1LL << 40)) {
                now_s = v + BR_PROVIDER_SIG_TOLERANCE_S;
            }
        }
    }
    verify(header, body, blen, now_s);
    free(header);
    free(body);
    return 0;
}
