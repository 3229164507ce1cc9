/*
 * auth.c -- scrypt password hashes, HS256 access tokens and pass tokens over
 * OpenSSL and libjwt (see auth.h for the formats and what is checked).
 */
#define _POSIX_C_SOURCE 200809L

#include "adapters/auth.h"

#include <errno.h>
#include <inttypes.h>
#include <jwt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cmd.h"
#include "core/err.h"
#include "core/panic.h"

#define SCRYPT_R 8u
#define SCRYPT_P 1u
#define JWT_IAT_SKEW_S 300 /* tokens issued up to 5 minutes "in the future" are clock skew */

static const char *const ROLE_NAMES[BR_ROLE_COUNT] = {"customer", "organizer", "admin"};

int br_auth_random(uint8_t *buf, size_t len)
{
    BR_ASSERT(len <= INT32_MAX);
    return RAND_bytes(buf, (int)len) == 1 ? BR_OK : BR_E_IO;
}

bool br_auth_equal(const void *a, const void *b, size_t len)
{
    return CRYPTO_memcmp(a, b, len) == 0;
}

/*
 * HMAC-SHA256 with a per-thread context: OpenSSL 3's one-shot HMAC() fetches
 * the algorithm and builds and frees a context on every call (a few percent
 * of a reserve's CPU). Each thread keeps one EVP_MAC_CTX and the key it was
 * last keyed with (up to HMAC_KEY_CACHE bytes; longer keys take the one-shot
 * path); the same key again only resets it. Freed when the thread ends.
 */
#define HMAC_KEY_CACHE 128

struct hmac_tls {
    EVP_MAC_CTX *ctx;
    size_t key_len; /* 0: not keyed yet */
    uint8_t key[HMAC_KEY_CACHE];
};

static pthread_once_t hmac_once = PTHREAD_ONCE_INIT;
static pthread_key_t hmac_key;
static EVP_MAC *hmac_mac; /* fetched once, never freed (process lifetime) */

static void hmac_tls_free(void *p)
{
    struct hmac_tls *t = p;
    EVP_MAC_CTX_free(t->ctx);
    OPENSSL_cleanse(t->key, sizeof t->key);
    free(t);
}

static void hmac_setup(void)
{
    int rc = pthread_key_create(&hmac_key, hmac_tls_free);
    BR_ASSERT(rc == 0);
    hmac_mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
}

/* This thread's context, or NULL (no memory, no HMAC provider: one-shot). */
static struct hmac_tls *hmac_tls(void)
{
    pthread_once(&hmac_once, hmac_setup);
    if (hmac_mac == NULL) {
        return NULL;
    }
    struct hmac_tls *t = pthread_getspecific(hmac_key);
    if (t != NULL) {
        return t;
    }
    t = calloc(1, sizeof *t);
    if (t == NULL) {
        return NULL;
    }
    t->ctx = EVP_MAC_CTX_new(hmac_mac);
    if (t->ctx == NULL || pthread_setspecific(hmac_key, t) != 0) {
        EVP_MAC_CTX_free(t->ctx);
        free(t);
        return NULL;
    }
    return t;
}

static bool hmac_ctx_run(struct hmac_tls *t, const uint8_t *key, size_t key_len, const void *data,
                         size_t len, uint8_t mac[32])
{
    bool same = t->key_len == key_len && key_len > 0 && memcmp(t->key, key, key_len) == 0;
    if (same) {
        if (EVP_MAC_init(t->ctx, NULL, 0, NULL) != 1) { /* the same key, state reset */
            return false;
        }
    } else {
        char digest[] = "SHA256";
        OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", digest, 0),
                               OSSL_PARAM_construct_end()};
        t->key_len = 0;
        if (EVP_MAC_init(t->ctx, key, key_len, params) != 1) {
            return false;
        }
        memcpy(t->key, key, key_len);
        t->key_len = key_len;
    }
    size_t out_len = 0;
    return EVP_MAC_update(t->ctx, data, len) == 1 && EVP_MAC_final(t->ctx, mac, &out_len, 32) == 1 &&
           out_len == 32;
}

void br_auth_hmac_sha256(const uint8_t *key, size_t key_len, const void *data, size_t len,
                         uint8_t mac[32])
{
    BR_ASSERT(key_len <= INT32_MAX);
    if (key_len > 0 && key_len <= HMAC_KEY_CACHE) {
        struct hmac_tls *t = hmac_tls();
        if (t != NULL) {
            if (hmac_ctx_run(t, key, key_len, data, len, mac)) {
                return;
            }
            t->key_len = 0; /* keyed afresh next time; this one the one-shot way */
        }
    }
    unsigned int mac_len = 32;
    const unsigned char *res = HMAC(EVP_sha256(), key, (int)key_len, data, len, mac, &mac_len);
    BR_ASSERT(res != NULL && mac_len == 32);
}

void br_auth_hex(const uint8_t *bytes, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 15];
    }
    out[2 * len] = '\0';
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

int br_auth_unhex(const char *hex, uint8_t *bytes, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        int hi = hex_digit(hex[2 * i]);
        int lo = hi < 0 ? -1 : hex_digit(hex[2 * i + 1]);
        if (lo < 0) {
            return BR_E_INVALID;
        }
        bytes[i] = (uint8_t)(hi << 4 | lo);
    }
    return BR_OK;
}

/* ---- passwords ---- */

static int scrypt(const char *password, size_t len, const uint8_t salt[BR_SALT_LEN],
                  unsigned log2n, uint8_t out[BR_PASSWORD_HASH_LEN])
{
    uint64_t n = 1ull << log2n;
    /* maxmem: 128 * N * r bytes for the V array, plus slack for B. */
    uint64_t maxmem = 128ull * n * SCRYPT_R + (1u << 20);
    int ok = EVP_PBE_scrypt(password, len, salt, BR_SALT_LEN, n, SCRYPT_R, SCRYPT_P, maxmem, out,
                            BR_PASSWORD_HASH_LEN);
    return ok == 1 ? BR_OK : BR_E_IO;
}

int br_auth_password_hash(const char *password, size_t len, unsigned log2n,
                          uint8_t hash[BR_PASSWORD_HASH_LEN], uint8_t salt[BR_SALT_LEN])
{
    if (log2n < BR_AUTH_LOG2N_MIN || log2n > BR_AUTH_LOG2N_MAX || len == 0 ||
        len > BR_PASSWORD_MAX) {
        return BR_E_INVALID;
    }
    salt[0] = (uint8_t)log2n;
    if (br_auth_random(salt + 1, BR_SALT_LEN - 1) != BR_OK) {
        return BR_E_IO;
    }
    return scrypt(password, len, salt, log2n, hash);
}

int br_auth_password_verify(const char *password, size_t len,
                            const uint8_t hash[BR_PASSWORD_HASH_LEN],
                            const uint8_t salt[BR_SALT_LEN])
{
    unsigned log2n = salt[0];
    if (log2n < BR_AUTH_LOG2N_MIN || log2n > BR_AUTH_LOG2N_MAX || len > BR_PASSWORD_MAX) {
        return BR_E_UNAUTHORIZED;
    }
    uint8_t got[BR_PASSWORD_HASH_LEN];
    if (scrypt(password, len, salt, log2n, got) != BR_OK) {
        return BR_E_UNAUTHORIZED;
    }
    bool same = br_auth_equal(got, hash, BR_PASSWORD_HASH_LEN);
    OPENSSL_cleanse(got, sizeof got);
    return same ? BR_OK : BR_E_UNAUTHORIZED;
}

void br_auth_password_dummy(const char *password, size_t len, unsigned log2n)
{
    uint8_t salt[BR_SALT_LEN] = {0};
    uint8_t out[BR_PASSWORD_HASH_LEN];
    salt[0] = (uint8_t)log2n;
    if (log2n >= BR_AUTH_LOG2N_MIN && log2n <= BR_AUTH_LOG2N_MAX && len <= BR_PASSWORD_MAX) {
        (void)scrypt(password, len, salt, log2n, out);
    }
}

/* ---- access tokens ---- */

int br_jwt_issue(const uint8_t *secret, size_t secret_len, const char *issuer,
                 const struct br_jwt_claims *c, int64_t now_s, char *out, size_t cap)
{
    BR_ASSERT(c->role < BR_ROLE_COUNT && secret_len <= INT32_MAX);
    jwt_t *jwt = NULL;
    if (jwt_new(&jwt) != 0) {
        return BR_E_IO;
    }
    char sub[24];
    snprintf(sub, sizeof sub, "%" PRIu64, c->user_id);
    int rc = jwt_set_alg(jwt, JWT_ALG_HS256, secret, (int)secret_len);
    rc |= jwt_add_grant(jwt, "iss", issuer);
    rc |= jwt_add_grant(jwt, "sub", sub);
    rc |= jwt_add_grant(jwt, "role", ROLE_NAMES[c->role]);
    rc |= jwt_add_grant_int(jwt, "iat", (long)now_s);
    rc |= jwt_add_grant_int(jwt, "exp", (long)c->exp_s);
    char *enc = rc == 0 ? jwt_encode_str(jwt) : NULL;
    jwt_free(jwt);
    if (enc == NULL) {
        return BR_E_IO;
    }
    size_t n = strlen(enc);
    int res = BR_E_INVALID;
    if (n < cap) {
        memcpy(out, enc, n + 1);
        res = BR_OK;
    }
    free(enc);
    return res;
}

/* An integer claim; false when absent or not an integer. */
static bool grant_int(jwt_t *jwt, const char *name, long *v)
{
    errno = 0;
    *v = jwt_get_grant_int(jwt, name);
    return errno == 0;
}

int br_jwt_verify(const uint8_t *secret, size_t secret_len, const char *issuer, const char *token,
                  int64_t now_s, struct br_jwt_claims *c)
{
    BR_ASSERT(secret != NULL && secret_len > 0 && secret_len <= INT32_MAX);
    if (token == NULL || strlen(token) >= BR_JWT_MAX) {
        return BR_E_UNAUTHORIZED;
    }
    jwt_t *jwt = NULL;
    if (jwt_decode(&jwt, token, secret, (int)secret_len) != 0 || jwt == NULL) {
        return BR_E_UNAUTHORIZED;
    }
    int res = BR_E_UNAUTHORIZED;
    long exp = 0;
    long iat = 0;
    const char *iss = NULL;
    const char *sub = NULL;
    const char *role = NULL;
    /* libjwt accepts alg "none" (no signature at all) and any HMAC size: only
     * the exact algorithm we issue is acceptable. */
    if (jwt_get_alg(jwt) != JWT_ALG_HS256) {
        goto done;
    }
    iss = jwt_get_grant(jwt, "iss");
    if (iss == NULL || strcmp(iss, issuer) != 0) {
        goto done;
    }
    if (!grant_int(jwt, "exp", &exp) || exp <= now_s) {
        goto done;
    }
    if (grant_int(jwt, "iat", &iat) && iat > now_s + JWT_IAT_SKEW_S) {
        goto done;
    }
    sub = jwt_get_grant(jwt, "sub");
    role = jwt_get_grant(jwt, "role");
    if (sub == NULL || role == NULL || sub[0] < '1' || sub[0] > '9' || strlen(sub) > 19) {
        goto done;
    }
    uint64_t uid = 0;
    for (const char *p = sub; *p; p++) {
        if (*p < '0' || *p > '9') {
            goto done;
        }
        uid = uid * 10 + (uint64_t)(*p - '0');
    }
    for (uint8_t i = 0; i < BR_ROLE_COUNT; i++) {
        if (strcmp(role, ROLE_NAMES[i]) == 0) {
            c->user_id = uid;
            c->role = i;
            c->exp_s = exp;
            res = BR_OK;
        }
    }
done:
    jwt_free(jwt);
    return res;
}

/* ---- the token cache ---- */

#define CACHE_STRIPES 64u
#define CACHE_WAYS 4u /* a set's slots; the one used longest ago is replaced */

struct cache_entry {
    uint16_t len; /* 0 = empty */
    uint64_t used; /* the cache's clock at the last hit or fill */
    struct br_jwt_claims claims;
    char token[BR_JWT_CACHE_TOKEN_MAX];
};

struct br_jwt_cache {
    uint32_t mask;  /* sets - 1 */
    atomic_uint_fast64_t clock; /* recency stamps; shared by all sets */
    struct cache_entry *entries;
    pthread_mutex_t stripes[CACHE_STRIPES];
};

int br_jwt_cache_new(struct br_jwt_cache **out, uint32_t entries_max)
{
    *out = NULL;
    uint32_t sets = 1;
    while (sets * CACHE_WAYS < entries_max && sets < (1u << 22)) {
        sets *= 2;
    }
    struct br_jwt_cache *c = calloc(1, sizeof *c);
    if (c == NULL || (c->entries = calloc((size_t)sets * CACHE_WAYS, sizeof *c->entries)) == NULL) {
        free(c);
        return BR_E_IO;
    }
    c->mask = sets - 1;
    for (unsigned i = 0; i < CACHE_STRIPES; i++) {
        pthread_mutex_init(&c->stripes[i], NULL);
    }
    *out = c;
    return BR_OK;
}

void br_jwt_cache_free(struct br_jwt_cache *c)
{
    if (c == NULL) {
        return;
    }
    for (unsigned i = 0; i < CACHE_STRIPES; i++) {
        pthread_mutex_destroy(&c->stripes[i]);
    }
    free(c->entries);
    free(c);
}

/* FNV-1a: only spreads tokens over slots; equality is checked in full. */
static uint32_t token_slot(const char *t, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) {
        h = (h ^ (uint8_t)t[i]) * 16777619u;
    }
    return h;
}

int br_jwt_verify_cached(struct br_jwt_cache *c, const uint8_t *secret, size_t secret_len,
                         const char *issuer, const char *token, int64_t now_s,
                         struct br_jwt_claims *claims)
{
    size_t len = token != NULL ? strlen(token) : 0;
    if (c == NULL || len == 0 || len >= BR_JWT_CACHE_TOKEN_MAX) {
        return br_jwt_verify(secret, secret_len, issuer, token, now_s, claims);
    }
    uint32_t set = token_slot(token, len) & c->mask;
    struct cache_entry *ways = &c->entries[(size_t)set * CACHE_WAYS];
    pthread_mutex_t *mu = &c->stripes[set % CACHE_STRIPES];
    bool hit = false;
    pthread_mutex_lock(mu);
    for (unsigned w = 0; w < CACHE_WAYS && !hit; w++) {
        struct cache_entry *e = &ways[w];
        if (e->len == len && memcmp(e->token, token, len) == 0 && e->claims.exp_s > now_s) {
            *claims = e->claims;
            e->used = atomic_fetch_add_explicit(&c->clock, 1, memory_order_relaxed) + 1;
            hit = true;
        }
    }
    pthread_mutex_unlock(mu);
    if (hit) {
        return BR_OK;
    }
    int rc = br_jwt_verify(secret, secret_len, issuer, token, now_s, claims);
    if (rc == BR_OK) {
        pthread_mutex_lock(mu);
        struct cache_entry *victim = &ways[0];
        for (unsigned w = 1; w < CACHE_WAYS; w++) {
            if (ways[w].used < victim->used) {
                victim = &ways[w];
            }
        }
        victim->len = (uint16_t)len;
        memcpy(victim->token, token, len);
        victim->claims = *claims;
        victim->used = atomic_fetch_add_explicit(&c->clock, 1, memory_order_relaxed) + 1;
        pthread_mutex_unlock(mu);
    }
    return rc;
}

/* ---- pass tokens ---- */

int br_pass_token_sign(const uint8_t *secret, size_t secret_len, const struct br_pass_claims *c,
                       char *out, size_t cap)
{
    char body[BR_PASS_TOKEN_MAX];
    int n = snprintf(body, sizeof body, "p1.%" PRIu64 ".%" PRIu64 ".%" PRIu64 ".%" PRId64,
                     c->event_id, c->user_id, c->pass_id, c->expires_at_ms);
    BR_ASSERT(n > 0 && (size_t)n < sizeof body);
    uint8_t mac[32];
    br_auth_hmac_sha256(secret, secret_len, body, (size_t)n, mac);
    char hex[65];
    br_auth_hex(mac, sizeof mac, hex);
    int m = snprintf(out, cap, "%s.%s", body, hex);
    return m > 0 && (size_t)m < cap ? BR_OK : BR_E_INVALID;
}

/* Parses a decimal u64 up to the next '.' (or NUL); advances *p past it. */
static bool take_u64(const char **p, uint64_t *v)
{
    const char *s = *p;
    uint64_t x = 0;
    unsigned digits = 0;
    while (*s >= '0' && *s <= '9' && digits < 19) {
        x = x * 10 + (uint64_t)(*s - '0');
        s++;
        digits++;
    }
    if (digits == 0 || *s != '.') {
        return false;
    }
    *v = x;
    *p = s + 1;
    return true;
}

/* Whether token's last field (hex, at mac_hex, after a '.') is the
 * HMAC-SHA256 of everything before that dot, compared in constant time. */
static bool tail_mac_ok(const uint8_t *secret, size_t secret_len, const char *token,
                        const char *mac_hex)
{
    BR_ASSERT(mac_hex > token && mac_hex[-1] == '.');
    uint8_t want[32];
    uint8_t got[32];
    br_auth_hmac_sha256(secret, secret_len, token, (size_t)(mac_hex - 1 - token), want);
    return br_auth_unhex(mac_hex, got, sizeof got) == BR_OK && br_auth_equal(want, got, sizeof got);
}

int br_pass_token_verify(const uint8_t *secret, size_t secret_len, const char *token,
                         int64_t now_ms, struct br_pass_claims *c)
{
    if (token == NULL || strncmp(token, "p1.", 3) != 0 || strlen(token) >= BR_PASS_TOKEN_MAX) {
        return BR_E_PASS_INVALID;
    }
    const char *p = token + 3;
    uint64_t ev = 0;
    uint64_t user = 0;
    uint64_t pass = 0;
    uint64_t exp = 0;
    if (!take_u64(&p, &ev) || !take_u64(&p, &user) || !take_u64(&p, &pass) ||
        !take_u64(&p, &exp) || strlen(p) != 64 || exp > INT64_MAX) {
        return BR_E_PASS_INVALID;
    }
    if (!tail_mac_ok(secret, secret_len, token, p)) {
        return BR_E_PASS_INVALID;
    }
    c->event_id = ev;
    c->user_id = user;
    c->pass_id = pass;
    c->expires_at_ms = (int64_t)exp;
    return now_ms >= c->expires_at_ms ? BR_E_PASS_EXPIRED : BR_OK;
}

int br_refresh_token_sign(const uint8_t *secret, size_t secret_len, uint64_t session_id,
                          uint32_t generation, char *out, size_t cap)
{
    char body[BR_REFRESH_TOKEN_MAX];
    int n = snprintf(body, sizeof body, "r1.%" PRIu64 ".%" PRIu32, session_id, generation);
    BR_ASSERT(n > 0 && (size_t)n < sizeof body);
    uint8_t mac[32];
    br_auth_hmac_sha256(secret, secret_len, body, (size_t)n, mac);
    char hex[65];
    br_auth_hex(mac, sizeof mac, hex);
    int m = snprintf(out, cap, "%s.%s", body, hex);
    return m > 0 && (size_t)m < cap ? BR_OK : BR_E_INVALID;
}

int br_refresh_token_verify(const uint8_t *secret, size_t secret_len, const char *token,
                            uint64_t *session_id, uint32_t *generation)
{
    if (token == NULL || strncmp(token, "r1.", 3) != 0 ||
        strnlen(token, BR_REFRESH_TOKEN_MAX) >= BR_REFRESH_TOKEN_MAX) {
        return BR_E_UNAUTHORIZED;
    }
    const char *p = token + 3;
    uint64_t sid = 0;
    uint64_t gen = 0;
    if (!take_u64(&p, &sid) || !take_u64(&p, &gen) || strlen(p) != 64 || gen > UINT32_MAX) {
        return BR_E_UNAUTHORIZED;
    }
    if (!tail_mac_ok(secret, secret_len, token, p)) {
        return BR_E_UNAUTHORIZED;
    }
    *session_id = sid;
    *generation = (uint32_t)gen;
    return BR_OK;
}
