/*
 * fuzz_auth.c -- fuzz target: the credentials a request carries, as
 * verified by adapters/auth.h: the access token (a JWT, "Authorization:
 * Bearer"), the queue-pass token ("X-Queue-Pass") and the refresh token
 * (the body of /auth/refresh and /auth/logout).
 *
 * Input: a mode byte, then text (cut at the first NUL, as a header is).
 * Mode (low two bits):
 *   0  the text is a pass token, verified as is;
 *   1  the text is a pass token without its signature
 *      ("p1.<event>.<user>.<pass>.<expires_at_ms>"): the harness appends the
 *      right HMAC, so the claim parser behind the signature check is reached;
 *   2  the text is a JWT, verified as is (libjwt's decoder on hostile input);
 *   3  the text is "<header JSON>\n<payload JSON>": the harness encodes both
 *      (base64url), signs them HS256 with the server's secret and verifies,
 *      so libjwt and our claim checks (alg, iss, exp, iat, sub, role) see
 *      genuinely signed tokens with arbitrary contents.
 * With bit 2 of the mode set, the text is a refresh token instead, verified
 * as is (bit 0 clear) or after the harness appended the right HMAC (bit 0
 * set); an accepted one re-signs into a token naming the same session and
 * generation.
 * Asserted: only the documented results come back; an accepted pass token
 * (or a genuine expired one) carries claims that re-sign into a token that
 * verifies to the same claims, and it is accepted iff now < expiry; an
 * accepted JWT has exp > now and a role in range, re-issues into a token
 * that verifies to the same claims, and stops verifying at exp.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/auth.h"
#include "core/cmd.h"
#include "core/err.h"
#include "core/panic.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define TEXT_MAX 4096u
#define NOW_S 1700000000LL
#define NOW_MS (NOW_S * 1000)

static const uint8_t secret[BR_AUTH_SECRET_LEN] = "fuzz-secret-0123456789abcdefghij";
static const char issuer[] = "bookingrush";

static void check_pass(const char *token)
{
    struct br_pass_claims c;
    memset(&c, 0, sizeof c);
    int rc = br_pass_token_verify(secret, sizeof secret, token, NOW_MS, &c);
    BR_ASSERT(rc == BR_OK || rc == BR_E_PASS_INVALID || rc == BR_E_PASS_EXPIRED);
    if (rc == BR_E_PASS_INVALID) {
        return;
    }
    BR_ASSERT((rc == BR_OK) == (NOW_MS < c.expires_at_ms));
    char again[BR_PASS_TOKEN_MAX];
    BR_ASSERT(br_pass_token_sign(secret, sizeof secret, &c, again, sizeof again) == BR_OK);
    struct br_pass_claims c2;
    memset(&c2, 0, sizeof c2);
    BR_ASSERT(br_pass_token_verify(secret, sizeof secret, again, NOW_MS, &c2) == rc);
    BR_ASSERT(memcmp(&c, &c2, sizeof c) == 0);
}

static void check_refresh(const char *token)
{
    uint64_t sid = 0;
    uint32_t gen = 0;
    int rc = br_refresh_token_verify(secret, sizeof secret, token, &sid, &gen);
    BR_ASSERT(rc == BR_OK || rc == BR_E_UNAUTHORIZED);
    if (rc != BR_OK) {
        return;
    }
    char again[BR_REFRESH_TOKEN_MAX];
    BR_ASSERT(br_refresh_token_sign(secret, sizeof secret, sid, gen, again, sizeof again) == BR_OK);
    uint64_t sid2 = 0;
    uint32_t gen2 = 0;
    BR_ASSERT(br_refresh_token_verify(secret, sizeof secret, again, &sid2, &gen2) == BR_OK);
    BR_ASSERT(sid2 == sid && gen2 == gen);
}

/* base64url without padding of len bytes into out (4 * len / 3 + 4 bytes). */
static size_t b64url(const uint8_t *in, size_t len, char *out)
{
    static const char abc[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t n = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len) {
            v |= (uint32_t)in[i + 1] << 8;
        }
        if (i + 2 < len) {
            v |= in[i + 2];
        }
        out[n++] = abc[(v >> 18) & 63];
        out[n++] = abc[(v >> 12) & 63];
        if (i + 1 < len) {
            out[n++] = abc[(v >> 6) & 63];
        }
        if (i + 2 < len) {
            out[n++] = abc[v & 63];
        }
    }
    out[n] = '\0';
    return n;
}

static void check_jwt(const char *token)
{
    struct br_jwt_claims c;
    memset(&c, 0, sizeof c);
    int rc = br_jwt_verify(secret, sizeof secret, issuer, token, NOW_S, &c);
    BR_ASSERT(rc == BR_OK || rc == BR_E_UNAUTHORIZED);
    if (rc != BR_OK) {
        return;
    }
    BR_ASSERT(c.exp_s > NOW_S && c.role < BR_ROLE_COUNT && c.user_id != 0);
    char again[BR_JWT_MAX];
    BR_ASSERT(br_jwt_issue(secret, sizeof secret, issuer, &c, NOW_S, again, sizeof again) == BR_OK);
    struct br_jwt_claims c2;
    memset(&c2, 0, sizeof c2);
    BR_ASSERT(br_jwt_verify(secret, sizeof secret, issuer, again, NOW_S, &c2) == BR_OK);
    BR_ASSERT(c2.user_id == c.user_id && c2.role == c.role && c2.exp_s == c.exp_s);
    BR_ASSERT(br_jwt_verify(secret, sizeof secret, issuer, token, c.exp_s, &c2) ==
              BR_E_UNAUTHORIZED);
}

/* "<header>\n<payload>" -> a token signed HS256 with the secret. */
static void check_signed_jwt(const char *text, size_t len)
{
    const char *nl = memchr(text, '\n', len);
    size_t hlen = nl ? (size_t)(nl - text) : len;
    const char *payload = nl ? nl + 1 : "";
    size_t plen = nl ? len - hlen - 1 : 0;
    char *token = malloc(2 * len + 64);
    if (token == NULL) {
        return;
    }
    size_t n = b64url((const uint8_t *)text, hlen, token);
    token[n++] = '.';
    n += b64url((const uint8_t *)payload, plen, token + n);
    uint8_t mac[32];
    br_auth_hmac_sha256(secret, sizeof secret, token, n, mac);
    token[n++] = '.';
    b64url(mac, sizeof mac, token + n);
    check_jwt(token);
    free(token);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > TEXT_MAX) {
        return 0;
    }
    /* Header values are C strings: cut at the first NUL. */
    char *text = malloc(size + 80);
    if (text == NULL) {
        return 0;
    }
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    size_t len = strlen(text);
    if (data[0] & 4u) {
        if (data[0] & 1u) {
            uint8_t mac[32];
            br_auth_hmac_sha256(secret, sizeof secret, text, len, mac);
            text[len] = '.';
            br_auth_hex(mac, sizeof mac, text + len + 1);
        }
        check_refresh(text);
        free(text);
        return 0;
    }
    switch (data[0] & 3u) {
    case 0:
        check_pass(text);
        break;
    case 1: {
        uint8_t mac[32];
        br_auth_hmac_sha256(secret, sizeof secret, text, len, mac);
        text[len] = '.';
        br_auth_hex(mac, sizeof mac, text + len + 1);
        check_pass(text);
        break;
    }
    case 2:
        check_jwt(text);
        break;
    default:
        check_signed_jwt(text, len);
        break;
    }
    free(text);
    return 0;
}
