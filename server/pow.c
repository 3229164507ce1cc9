/*
 * pow.c -- proof of work at the door (issue 13, point 5; contract in pow.h).
 *
 * A challenge is self-describing and signed, so issuing one stores nothing:
 * the server only remembers challenges that were *solved*, to accept each
 * once. That memory is the used set, an open-addressing table of
 * (key, expires_ms) pairs, 16 B each, probed linearly from the key's home
 * slot. expires_ms 0 marks an empty slot, which ends every probe. An entry
 * whose challenge has expired is dead weight: a lookup never needs it (an
 * expired challenge is refused before the used set is asked), so a sweep
 * removes dead entries with backward-shift deletion (no tombstones, every
 * probe stays as short as the live load makes it). Sweeps run when the
 * table reaches 90% occupancy, at most once per second, O(used_max) each.
 *
 *   issue:   refuses (OVERLOADED) while live entries fill 90% of the table,
 *            so solutions to the challenges it hands out find room;
 *   verify:  parse, MAC (constant time), expiry, event and user, bits,
 *            the hash, then the used set -- in that order, so the cheap and
 *            forgeable checks come before the table is touched.
 *
 * Thread-safe: one mutex around the table (verification's SHA-256 runs
 * outside it). No clock: now_ms is an argument. OpenSSL for SHA-256.
 */
#define _POSIX_C_SOURCE 200809L

#include "server/pow.h"

#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/auth.h"
#include "core/err.h"
#include "core/hash.h"
#include "core/panic.h"

#define RAND_BYTES 16u
#define MAC_BYTES 16u
#define B64_16 22u /* base64url of 16 bytes, no padding */
#define SWEEP_GAP_MS 1000
#define NONCE_LEN_MAX 32u

struct pow_slot {
    uint64_t key;       /* hash of the challenge's random part */
    int64_t expires_ms; /* the challenge's expiry; 0 = empty */
};

struct br_pow {
    pthread_mutex_t mu;
    struct pow_slot *slots; /* cap slots, cap a power of two */
    uint32_t cap;
    uint32_t used;          /* occupied slots, live or dead */
    int64_t swept_ms;       /* last sweep; sweeps are at most once per SWEEP_GAP_MS */
};

int br_pow_new(struct br_pow **pow, uint32_t used_max)
{
    BR_ASSERT(pow != NULL);
    *pow = NULL;
    uint32_t cap = 64;
    while (cap < used_max && cap < (1u << 30)) {
        cap <<= 1;
    }
    struct br_pow *p = calloc(1, sizeof *p);
    if (p == NULL) {
        return BR_E_FULL;
    }
    p->slots = calloc(cap, sizeof *p->slots);
    if (p->slots == NULL || pthread_mutex_init(&p->mu, NULL) != 0) {
        free(p->slots);
        free(p);
        return BR_E_FULL;
    }
    p->cap = cap;
    p->swept_ms = INT64_MIN;
    *pow = p;
    return BR_OK;
}

void br_pow_free(struct br_pow *pow)
{
    if (pow == NULL) {
        return;
    }
    pthread_mutex_destroy(&pow->mu);
    free(pow->slots);
    free(pow);
}

/* ---- the used set (caller holds mu) ---- */

static uint32_t home(const struct br_pow *p, uint64_t key)
{
    return (uint32_t)(key & (p->cap - 1u));
}

/* Removes slot i by shifting later members of its cluster back (Knuth's
 * algorithm R): afterwards every entry is still reachable from its home
 * without crossing an empty slot. O(cluster). */
static void slot_delete(struct br_pow *p, uint32_t i)
{
    uint32_t mask = p->cap - 1u;
    uint32_t hole = i;
    uint32_t j = i;
    for (uint32_t n = 0; n < p->cap; n++) {
        j = (j + 1u) & mask;
        if (p->slots[j].expires_ms == 0) {
            break;
        }
        uint32_t h = home(p, p->slots[j].key);
        /* j's entry may move to the hole when its home is not cyclically in (hole, j]. */
        bool stays = hole <= j ? (hole < h && h <= j) : (hole < h || h <= j);
        if (!stays) {
            p->slots[hole] = p->slots[j];
            hole = j;
        }
    }
    p->slots[hole] = (struct pow_slot){0, 0};
    BR_ASSERT(p->used > 0);
    p->used--;
}

/* Drops every entry expired at now. O(cap). */
static void sweep(struct br_pow *p, int64_t now_ms)
{
    p->swept_ms = now_ms;
    for (uint32_t i = 0; i < p->cap; i++) {
        /* A shift may bring another dead entry into i: look again. */
        for (uint32_t k = 0; k < p->cap && p->slots[i].expires_ms != 0 &&
                             p->slots[i].expires_ms <= now_ms;
             k++) {
            slot_delete(p, i);
        }
    }
}

/* Sweeps when 90% of the slots are taken and the last sweep is old enough. */
static void maybe_sweep(struct br_pow *p, int64_t now_ms)
{
    if ((uint64_t)p->used * 10u >= (uint64_t)p->cap * 9u &&
        (p->swept_ms == INT64_MIN || now_ms - p->swept_ms >= SWEEP_GAP_MS)) {
        sweep(p, now_ms);
    }
}

/* Marks key used until expires_ms. BR_OK (first use), BR_E_POW_INVALID
 * (a live entry has it) or BR_E_OVERLOADED (no empty slot but the last). */
static int used_mark(struct br_pow *p, uint64_t key, int64_t expires_ms, int64_t now_ms)
{
    BR_ASSERT(expires_ms > 0);
    maybe_sweep(p, now_ms);
    uint32_t mask = p->cap - 1u;
    uint32_t i = home(p, key);
    uint32_t free_at = UINT32_MAX; /* first dead slot on the way: reused */
    for (uint32_t n = 0; n < p->cap; n++, i = (i + 1u) & mask) {
        struct pow_slot *s = &p->slots[i];
        if (s->expires_ms == 0) {
            break;
        }
        if (s->expires_ms > now_ms && s->key == key) {
#ifndef BR_PLANT_POW_REUSE
            return BR_E_POW_INVALID;
#else
            return BR_OK; /* planted: a used challenge is accepted again */
#endif
        }
        if (s->expires_ms <= now_ms && free_at == UINT32_MAX) {
            free_at = i;
        }
    }
    if (free_at != UINT32_MAX) {
        p->slots[free_at] = (struct pow_slot){key, expires_ms};
        return BR_OK;
    }
    if (p->slots[i].expires_ms != 0 || p->used + 1u >= p->cap) {
        return BR_E_OVERLOADED; /* one empty slot always stays: probes end */
    }
    p->slots[i] = (struct pow_slot){key, expires_ms};
    p->used++;
    return BR_OK;
}

/* ---- text ---- */

static const char B64URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* base64url of 16 bytes without padding: 22 characters and a NUL. */
static void b64_16(const uint8_t in[16], char out[B64_16 + 1])
{
    unsigned o = 0;
    for (unsigned i = 0; i < 16; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < 16) {
            v |= (uint32_t)in[i + 1] << 8;
        }
        if (i + 2 < 16) {
            v |= in[i + 2];
        }
        unsigned chars = i + 2 < 16 ? 4u : 2u; /* the last group has one byte */
        for (unsigned k = 0; k < chars; k++) {
            out[o++] = B64URL[(v >> (18 - 6 * k)) & 63u];
        }
    }
    BR_ASSERT(o == B64_16);
    out[o] = '\0';
}

/* The 16 bytes of a b64_16 text (checked by b64_field first). */
static void b64_16_decode(const char in[B64_16], uint8_t out[16])
{
    uint32_t acc = 0;
    unsigned nbits = 0;
    unsigned o = 0;
    for (unsigned i = 0; i < B64_16; i++) {
        const char *at = strchr(B64URL, in[i]);
        BR_ASSERT(at != NULL);
        acc = (acc << 6) | (uint32_t)(at - B64URL);
        nbits += 6;
        if (nbits >= 8 && o < 16) {
            nbits -= 8;
            out[o++] = (uint8_t)(acc >> nbits);
            acc &= (1u << nbits) - 1u;
        }
    }
    BR_ASSERT(o == 16);
}

/* The MAC's input and the MAC itself, as text. */
static void challenge_mac(const char *secret, uint64_t event_id, uint64_t user_id,
                          int64_t expires_ms, unsigned bits, const char *rand,
                          char out[B64_16 + 1])
{
    uint8_t k[32];
    br_auth_hmac_sha256((const uint8_t *)secret, strlen(secret), "bookingrush pow v1", 18, k);
    char msg[BR_POW_TEXT_MAX];
    int n = snprintf(msg, sizeof msg, "pow|v1|%" PRIu64 "|%" PRIu64 "|%" PRId64 "|%u|%s",
                     event_id, user_id, expires_ms, bits, rand);
    BR_ASSERT(n > 0 && (size_t)n < sizeof msg);
    uint8_t mac[32];
    br_auth_hmac_sha256(k, sizeof k, msg, (size_t)n, mac);
    b64_16(mac, out);
    OPENSSL_cleanse(k, sizeof k);
}

int br_pow_issue(struct br_pow *pow, const char *secret, uint64_t event_id, uint64_t user_id,
                 unsigned bits, int64_t now_ms, char *out, size_t cap)
{
    BR_ASSERT(secret != NULL && out != NULL && cap >= BR_POW_TEXT_MAX);
    BR_ASSERT(bits >= 1 && bits <= BR_POW_BITS_MAX);
    if (pow != NULL) {
        pthread_mutex_lock(&pow->mu);
        maybe_sweep(pow, now_ms);
        bool full = (uint64_t)pow->used * 10u >= (uint64_t)pow->cap * 9u;
        pthread_mutex_unlock(&pow->mu);
        if (full) {
            return BR_E_OVERLOADED;
        }
    }
    uint8_t r[RAND_BYTES];
    if (br_auth_random(r, sizeof r) != BR_OK) {
        return BR_E_UNAVAILABLE;
    }
    char rand[B64_16 + 1];
    b64_16(r, rand);
    int64_t expires_ms = now_ms + BR_POW_TTL_MS;
    char mac[B64_16 + 1];
    challenge_mac(secret, event_id, user_id, expires_ms, bits, rand, mac);
    int n = snprintf(out, cap, "v1.%" PRIu64 ".%" PRIu64 ".%" PRId64 ".%u.%s.%s", event_id,
                     user_id, expires_ms, bits, rand, mac);
    BR_ASSERT(n > 0 && (size_t)n < cap);
    return BR_OK;
}

/* A decimal field of 1..19 digits without leading zeros ("0" alone is one). */
static bool dec_field(const char *s, size_t n, uint64_t *out)
{
    if (n == 0 || n > 19 || (n > 1 && s[0] == '0')) {
        return false;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        v = v * 10u + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return true;
}

static bool b64_field(const char *s, size_t n)
{
    if (n != B64_16) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (strchr(B64URL, s[i]) == NULL || s[i] == '\0') {
            return false;
        }
    }
    return true;
}

struct parsed {
    uint64_t event_id, user_id, expires, bits;
    char rand[B64_16 + 1];
    char mac[B64_16 + 1];
};

/* Splits "v1.e.u.x.b.rand.mac" into its fields. */
static bool challenge_parse(const char *c, struct parsed *p)
{
    size_t len = strnlen(c, BR_POW_TEXT_MAX);
    if (len >= BR_POW_TEXT_MAX || len < 3 || memcmp(c, "v1.", 3) != 0) {
        return false;
    }
    const char *f[6];
    size_t fl[6];
    const char *s = c + 3;
    for (unsigned i = 0; i < 6; i++) {
        const char *dot = i < 5 ? strchr(s, '.') : s + strlen(s);
        if (dot == NULL) {
            return false;
        }
        f[i] = s;
        fl[i] = (size_t)(dot - s);
        s = i < 5 ? dot + 1 : dot;
    }
    if (!dec_field(f[0], fl[0], &p->event_id) || !dec_field(f[1], fl[1], &p->user_id) ||
        !dec_field(f[2], fl[2], &p->expires) || p->expires > (uint64_t)INT64_MAX ||
        !dec_field(f[3], fl[3], &p->bits) || p->bits < 1 || p->bits > BR_POW_BITS_MAX ||
        !b64_field(f[4], fl[4]) || !b64_field(f[5], fl[5])) {
        return false;
    }
    memcpy(p->rand, f[4], B64_16);
    p->rand[B64_16] = '\0';
    memcpy(p->mac, f[5], B64_16);
    p->mac[B64_16] = '\0';
    return true;
}

static bool nonce_ok(const char *nonce)
{
    size_t n = strnlen(nonce, NONCE_LEN_MAX + 1);
    if (n < 1 || n > NONCE_LEN_MAX) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char ch = nonce[i];
        bool ok = (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') ||
                  (ch >= 'A' && ch <= 'Z') || ch == '_' || ch == '-';
        if (!ok) {
            return false;
        }
    }
    return true;
}

unsigned br_pow_leading_zero_bits(const uint8_t h[32])
{
    unsigned bits = 0;
    for (unsigned i = 0; i < 32; i++) {
        if (h[i] == 0) {
            bits += 8;
            continue;
        }
        for (uint8_t m = 0x80; m != 0 && (h[i] & m) == 0; m >>= 1) {
            bits++;
        }
        break;
    }
    BR_ASSERT(bits <= 256);
    return bits;
}

/* Whether SHA-256(challenge "." nonce) has bits leading zero bits. */
static bool work_ok(const char *challenge, const char *nonce, unsigned bits)
{
    char text[BR_POW_TEXT_MAX + NONCE_LEN_MAX + 2];
    int n = snprintf(text, sizeof text, "%s.%s", challenge, nonce);
    BR_ASSERT(n > 0 && (size_t)n < sizeof text);
    uint8_t h[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)text, (size_t)n, h);
    return br_pow_leading_zero_bits(h) >= bits;
}

int br_pow_check(const char *secret, const char *challenge, const char *nonce, uint64_t event_id,
                 uint64_t user_id, unsigned min_bits, int64_t now_ms, uint64_t *key,
                 int64_t *expires_ms, char rand_hex[BR_POW_RAND_HEX_MAX])
{
    BR_ASSERT(secret != NULL && challenge != NULL && nonce != NULL);
    struct parsed p;
    if (!challenge_parse(challenge, &p) || !nonce_ok(nonce)) {
        return BR_E_POW_INVALID;
    }
    char mac[B64_16 + 1];
    challenge_mac(secret, p.event_id, p.user_id, (int64_t)p.expires, (unsigned)p.bits, p.rand,
                  mac);
    if (CRYPTO_memcmp(mac, p.mac, B64_16) != 0) {
        return BR_E_POW_INVALID;
    }
    if (!(now_ms < (int64_t)p.expires) || p.event_id != event_id || p.user_id != user_id ||
        p.bits < min_bits || !work_ok(challenge, nonce, (unsigned)p.bits)) {
        return BR_E_POW_INVALID;
    }
    *key = br_hash64(p.rand, B64_16, 0x706f77ULL);
    *expires_ms = (int64_t)p.expires;
    if (rand_hex != NULL) {
        uint8_t r[RAND_BYTES];
        b64_16_decode(p.rand, r);
        br_auth_hex(r, sizeof r, rand_hex);
    }
    return BR_OK;
}

int br_pow_verify(struct br_pow *pow, const char *secret, const char *challenge,
                  const char *nonce, uint64_t event_id, uint64_t user_id, unsigned min_bits,
                  int64_t now_ms)
{
    uint64_t key = 0;
    int64_t expires_ms = 0;
    int rc = br_pow_check(secret, challenge, nonce, event_id, user_id, min_bits, now_ms, &key,
                          &expires_ms, NULL);
    if (rc != BR_OK || pow == NULL) {
        return rc;
    }
    pthread_mutex_lock(&pow->mu);
    rc = used_mark(pow, key, expires_ms, now_ms);
    pthread_mutex_unlock(&pow->mu);
    return rc;
}

uint32_t br_pow_used(struct br_pow *pow)
{
    pthread_mutex_lock(&pow->mu);
    uint32_t n = pow->used;
    pthread_mutex_unlock(&pow->mu);
    return n;
}
