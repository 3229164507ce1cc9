/*
 * fuzz_webhook_payload.c -- fuzz target: the payment provider's webhook
 * payload (server/parse.h: br_parse_webhook -- event id, type,
 * data.object.metadata.payment_id) and the whole delivery path the route
 * takes (br_webhook_accept: Stripe-Signature first, then the payload).
 * fuzz_webhook covers the signature scheme alone; here the signature is
 * mostly right so that the bytes reach the parser behind it.
 *
 * Input: a mode byte, then text; the payload is handed over in a buffer of
 * exactly its size (NULs included) so a read past the end is caught.
 * Mode (byte % 4):
 *   0  the payload alone through br_parse_webhook;
 *   1  the payload signed for now with the endpoint secret, through
 *      br_webhook_accept: the answer must be br_parse_webhook's, struct
 *      and all;
 *   2  "<Stripe-Signature>\n<payload>", both from the input, through
 *      br_webhook_accept; a header of "!" is replaced by a genuine one;
 *   3  the payload genuinely signed, but delivered past the tolerance or
 *      with one payload byte changed: refused as 401 whatever it holds.
 *
 * Asserted beyond "no crash, no UB": results are BR_OK, BR_E_INVALID (400)
 * or BR_E_UNAUTHORIZED (401), a refusal says why within BR_WHY_MAX; an
 * accepted event has an id of 1..255 bytes, a type of 1..63, a kind that
 * matches the type, and a payment id (1..10^16-1) exactly when the kind is
 * one we act on; the event written back as JSON parses to the same struct;
 * a delivery the signature refuses is never parsed (the reason is the
 * signature's).
 */
#define _POSIX_C_SOURCE 200809L

#include <inttypes.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/provider_sig.h"
#include "core/err.h"
#include "core/panic.h"
#include "server/parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define INPUT_MAX 8192u
#define NOW_S 1700000000LL
#define SIG_WHY "missing, malformed, stale or wrong Stripe-Signature"

static const char secret[] = "whsec_fuzz0123456789abcdefghijklmnop";

static void why_init(char why[BR_WHY_MAX])
{
    memset(why, 0x55, BR_WHY_MAX); /* no NUL: a reason must bring its own */
}

static void check_why(int rc, const char why[BR_WHY_MAX])
{
    BR_ASSERT(rc == BR_OK || rc == BR_E_INVALID || rc == BR_E_UNAUTHORIZED);
    if (rc != BR_OK) {
        size_t n = strnlen(why, BR_WHY_MAX);
        BR_ASSERT(n > 0 && n < BR_WHY_MAX);
    }
}

static void check_event(const struct br_webhook_event *ev)
{
    size_t idn = strnlen(ev->id, sizeof ev->id);
    size_t tn = strnlen(ev->type, sizeof ev->type);
    BR_ASSERT(idn >= 1 && idn < sizeof ev->id && tn >= 1 && tn < sizeof ev->type);
    uint8_t want = strcmp(ev->type, "payment_intent.succeeded") == 0        ? BR_WEBHOOK_SUCCEEDED
                   : strcmp(ev->type, "payment_intent.payment_failed") == 0 ? BR_WEBHOOK_FAILED
                                                                            : BR_WEBHOOK_IGNORED;
    BR_ASSERT(ev->kind == want);
    if (ev->kind == BR_WEBHOOK_IGNORED) {
        BR_ASSERT(ev->payment_id == 0);
    } else {
        BR_ASSERT(ev->payment_id >= 1 && ev->payment_id <= 9999999999999999ULL);
    }
}

/* The event written back in the provider's shape parses to the same. */
static void check_round_trip(const struct br_webhook_event *ev)
{
    char pid[24];
    snprintf(pid, sizeof pid, "%" PRIu64, ev->payment_id);
    json_t *j = json_pack("{s:s, s:s, s:{s:{s:{s:s}}}}", "id", ev->id, "type", ev->type, "data",
                          "object", "metadata", "payment_id", pid);
    BR_ASSERT(j != NULL); /* the strings came out of jansson: valid UTF-8, no NUL */
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    BR_ASSERT(text != NULL);
    struct br_webhook_event again;
    char why[BR_WHY_MAX];
    why_init(why);
    BR_ASSERT(br_parse_webhook(text, strlen(text), &again, why) == BR_OK);
    BR_ASSERT(memcmp(&again, ev, sizeof again) == 0);
    free(text);
}

static int parse_alone(const char *body, size_t len, struct br_webhook_event *ev)
{
    char why[BR_WHY_MAX];
    why_init(why);
    int rc = br_parse_webhook(body, len, ev, why);
    check_why(rc, why);
    BR_ASSERT(rc != BR_E_UNAUTHORIZED); /* that is the signature's answer */
    if (rc == BR_OK) {
        check_event(ev);
        check_round_trip(ev);
    }
    return rc;
}

static int deliver(const char *header, const char *body, size_t len, int64_t now_s,
                   struct br_webhook_event *ev)
{
    char why[BR_WHY_MAX];
    why_init(why);
    int rc = br_webhook_accept(secret, header, body, len, now_s, ev, why);
    check_why(rc, why);
    int sig = br_provider_sig_verify(secret, header, body, len, now_s, BR_PROVIDER_SIG_TOLERANCE_S);
    if (sig != BR_OK) {
        /* Refused on the signature, before a byte of the payload was read. */
        BR_ASSERT(rc == (sig == BR_E_INVALID ? BR_E_INVALID : BR_E_UNAUTHORIZED));
        BR_ASSERT(strcmp(why, SIG_WHY) == 0);
    } else if (rc == BR_OK) {
        check_event(ev);
    }
    return rc;
}

static void sign(const char *body, size_t len, int64_t t, char header[BR_PROVIDER_SIG_HEADER_MAX])
{
    BR_ASSERT(br_provider_sig_sign(secret, t, body, len, header, BR_PROVIDER_SIG_HEADER_MAX) ==
              BR_OK);
}

/* A genuine delivery answers what the payload alone answers. */
static void check_signed(const char *body, size_t len)
{
    struct br_webhook_event alone;
    struct br_webhook_event got;
    int rc_alone = parse_alone(body, len, &alone);
    char header[BR_PROVIDER_SIG_HEADER_MAX];
    sign(body, len, NOW_S, header);
    int rc = deliver(header, body, len, NOW_S, &got);
    BR_ASSERT(rc == rc_alone);
    BR_ASSERT(memcmp(&got, &alone, sizeof got) == 0);
}

/* A genuine signature at the wrong time, or over other bytes, is refused. */
static void check_refused(const char *body, size_t len, uint8_t mode)
{
    char header[BR_PROVIDER_SIG_HEADER_MAX];
    struct br_webhook_event ev;
    sign(body, len, NOW_S, header);
    if ((mode & 4u) != 0 || len == 0) {
        BR_ASSERT(deliver(header, body, len, NOW_S + BR_PROVIDER_SIG_TOLERANCE_S + 1, &ev) ==
                  BR_E_UNAUTHORIZED);
        return;
    }
    char *changed = malloc(len);
    if (changed == NULL) {
        return;
    }
    memcpy(changed, body, len);
    changed[(mode >> 3) % len] ^= 0x20;
    BR_ASSERT(deliver(header, changed, len, NOW_S, &ev) == BR_E_UNAUTHORIZED);
    free(changed);
}

static void check_given_header(const char *text, size_t len)
{
    const char *nl = memchr(text, '\n', len);
    size_t hlen = nl ? (size_t)(nl - text) : len;
    size_t blen = nl ? len - hlen - 1 : 0;
    char *header =
        malloc(hlen + 1 > BR_PROVIDER_SIG_HEADER_MAX ? hlen + 1 : BR_PROVIDER_SIG_HEADER_MAX);
    char *body = malloc(blen > 0 ? blen : 1);
    if (header != NULL && body != NULL) {
        memcpy(header, text, hlen);
        header[hlen] = '\0'; /* a header is a C string: it ends at its first NUL */
        if (nl != NULL) {
            memcpy(body, nl + 1, blen);
        }
        if (strcmp(header, "!") == 0) {
            sign(body, blen, NOW_S, header);
        }
        struct br_webhook_event ev;
        (void)deliver(header, body, blen, NOW_S, &ev);
    }
    free(header);
    free(body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > INPUT_MAX) {
        return 0;
    }
    uint8_t mode = data[0];
    size_t len = size - 1;
    char *body = malloc(len > 0 ? len : 1);
    if (body == NULL) {
        return 0;
    }
    memcpy(body, data + 1, len);
    switch (mode % 4u) {
    case 0: {
        struct br_webhook_event ev;
        (void)parse_alone(body, len, &ev);
        break;
    }
    case 1:
        check_signed(body, len);
        break;
    case 2:
        check_given_header(body, len);
        break;
    default:
        check_refused(body, len, mode);
        break;
    }
    free(body);
    return 0;
}
