/*
 * auth.h -- the server's cryptography: password hashes, access tokens (JWT)
 * and queue-pass tokens. OpenSSL and libjwt stay behind this header.
 *
 * Passwords: scrypt (memory-hard) via EVP_PBE_scrypt, r = 8, p = 1,
 * N = 2^log2n, 32-byte output, 16-byte salt. The core stores only hash and
 * salt, so the cost travels inside the salt: salt[0] = log2n, salt[1..15]
 * random (120 bits). A hash made with one cost keeps verifying after the
 * server's default cost changes. Verification compares in constant time.
 *
 * Access tokens: HS256 JWTs (libjwt 1.10). libjwt checks only the signature,
 * and not even that for alg "none", so br_jwt_verify checks alg == HS256, the
 * issuer, exp (and iat not in the future) itself, and requires sub and role.
 *
 * Refresh tokens: see br_refresh_token_sign below.
 *
 * Pass tokens: "p1.<event>.<user>.<pass>.<expires_at_ms>.<hmac>", the hmac
 * being HMAC-SHA256 (hex) of everything before the last dot under a server
 * secret. A token binds its pass to one event and one user; the core checks
 * the pass itself (unknown, used, expired) again when it is consumed.
 */
#ifndef BR_AUTH_H
#define BR_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/limits.h"

#define BR_AUTH_SECRET_LEN 32u     /* bytes of every generated secret */
#define BR_AUTH_LOG2N_MIN 10u      /* scrypt N = 1 KiB * 128 * r: 1 MiB (tests) */
#define BR_AUTH_LOG2N_MAX 20u      /* N = 2^20: 1 GiB of memory per hash */
#define BR_AUTH_LOG2N_DEFAULT 15u  /* 32 MiB, ~80 ms on one core */
#define BR_JWT_MAX 1024u           /* bytes of an encoded access token */
#define BR_PASS_TOKEN_MAX 160u     /* bytes of an encoded pass token, incl. NUL */
#define BR_PASSWORD_MAX 256u       /* bytes of a password we agree to hash */

/* Fills buf with len bytes from the OS CSPRNG. BR_OK or BR_E_IO. */
int br_auth_random(uint8_t *buf, size_t len);

/* Hashes a password with a fresh salt carrying log2n (see above).
 * BR_OK, BR_E_INVALID (log2n out of range, empty or too long password), BR_E_IO. */
int br_auth_password_hash(const char *password, size_t len, unsigned log2n,
                          uint8_t hash[BR_PASSWORD_HASH_LEN], uint8_t salt[BR_SALT_LEN]);

/* BR_OK when the password matches, BR_E_UNAUTHORIZED otherwise (also for a
 * salt with an out-of-range cost). Constant time in the password's content. */
int br_auth_password_verify(const char *password, size_t len,
                            const uint8_t hash[BR_PASSWORD_HASH_LEN],
                            const uint8_t salt[BR_SALT_LEN]);

/* Spends the same work as a verification, for unknown users (so a login's
 * timing does not tell whether the email exists). */
void br_auth_password_dummy(const char *password, size_t len, unsigned log2n);

struct br_jwt_claims {
    uint64_t user_id; /* sub */
    uint8_t role;     /* enum br_role */
    int64_t exp_s;    /* seconds since the epoch */
};

/* Issues an HS256 token for the claims, iss and iat = now_s into out (NUL
 * terminated). BR_OK, BR_E_INVALID (does not fit), BR_E_IO. */
int br_jwt_issue(const uint8_t *secret, size_t secret_len, const char *issuer,
                 const struct br_jwt_claims *c, int64_t now_s, char *out, size_t cap);

/* Verifies a token: signature, alg HS256, iss, exp > now, iat <= now + skew,
 * sub and role present. BR_OK (fills *c) or BR_E_UNAUTHORIZED. */
int br_jwt_verify(const uint8_t *secret, size_t secret_len, const char *issuer, const char *token,
                  int64_t now_s, struct br_jwt_claims *c);

/* A cache of tokens that verified: a hit is the same token string (compared
 * in full), still before its exp, and skips the signature and claim checks
 * (the same token already passed them); a miss runs br_jwt_verify and
 * remembers a success. Set-associative (4 ways), entries_max slots of
 * BR_JWT_CACHE_TOKEN_MAX bytes, striped locks; tokens longer than that are
 * never cached. Changing the secret means a new cache. */
#define BR_JWT_CACHE_TOKEN_MAX 384u

struct br_jwt_cache;

int br_jwt_cache_new(struct br_jwt_cache **c, uint32_t entries_max);
void br_jwt_cache_free(struct br_jwt_cache *c);

/* br_jwt_verify through the cache (c may be NULL: no cache). */
int br_jwt_verify_cached(struct br_jwt_cache *c, const uint8_t *secret, size_t secret_len,
                         const char *issuer, const char *token, int64_t now_s,
                         struct br_jwt_claims *claims);

struct br_pass_claims {
    uint64_t event_id;
    uint64_t user_id;
    uint64_t pass_id;
    int64_t expires_at_ms;
};

/* Signs a pass token into out. BR_OK or BR_E_INVALID (cap too small). */
int br_pass_token_sign(const uint8_t *secret, size_t secret_len, const struct br_pass_claims *c,
                       char *out, size_t cap);

/* Parses and checks a pass token's hmac (constant time) and expiry.
 * BR_OK (fills *c), BR_E_PASS_INVALID (malformed or forged) or
 * BR_E_PASS_EXPIRED (genuine, now_ms >= expires_at_ms; *c filled). */
int br_pass_token_verify(const uint8_t *secret, size_t secret_len, const char *token,
                         int64_t now_ms, struct br_pass_claims *c);

/* Refresh tokens: "r1.<session>.<generation>.<hmac>", the hmac being
 * HMAC-SHA256 (hex) of everything before the last dot under a server secret
 * (the access tokens' one). The token names a core session (core/session.h)
 * and the generation it was issued for; the core decides whether that is
 * live, current, reused or expired, and stores no secret of it. */
#define BR_REFRESH_TOKEN_MAX 128u /* bytes of an encoded refresh token, incl. NUL */

/* Signs a refresh token into out. BR_OK or BR_E_INVALID (cap too small). */
int br_refresh_token_sign(const uint8_t *secret, size_t secret_len, uint64_t session_id,
                          uint32_t generation, char *out, size_t cap);

/* Parses a refresh token and checks its hmac (constant time). BR_OK (fills
 * *session_id, *generation) or BR_E_UNAUTHORIZED (malformed or forged). */
int br_refresh_token_verify(const uint8_t *secret, size_t secret_len, const char *token,
                            uint64_t *session_id, uint32_t *generation);

/* HMAC-SHA256 of data under key into mac[32]. */
void br_auth_hmac_sha256(const uint8_t *key, size_t key_len, const void *data, size_t len,
                         uint8_t mac[32]);

/* Lower-case hex of len bytes into out (2 * len + 1 bytes). */
void br_auth_hex(const uint8_t *bytes, size_t len, char *out);

/* Parses 2 * len hex digits into bytes. BR_OK or BR_E_INVALID. */
int br_auth_unhex(const char *hex, uint8_t *bytes, size_t len);

/* Constant-time equality of two byte strings of the same length. */
bool br_auth_equal(const void *a, const void *b, size_t len);

#endif
