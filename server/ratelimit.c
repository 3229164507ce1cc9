/* ratelimit.c -- token buckets and client addresses (see ratelimit.h). */
#define _POSIX_C_SOURCE 200809L

#include "server/ratelimit.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core/err.h"
#include "core/hash.h"
#include "core/panic.h"

struct bucket {
    uint64_t key;     /* 0 = empty */
    double tokens;
    int64_t last_us;
};

struct br_ratelimit {
    struct br_rate rate;
    uint32_t set_mask; /* sets - 1 */
    struct bucket *buckets;
    pthread_mutex_t stripes[BR_RATE_STRIPES];
};

int br_rate_parse(const char *s, struct br_rate *out)
{
    if (s == NULL) {
        return -1;
    }
    if (strcmp(s, "0") == 0 || strcmp(s, "off") == 0) {
        out->rps = 0;
        out->burst = 0;
        return 0;
    }
    char *end = NULL;
    double rps = strtod(s, &end);
    if (end == s || *end != ':') {
        return -1;
    }
    const char *b = end + 1;
    double burst = strtod(b, &end);
    if (end == b || *end != '\0' || !(rps > 0) || !(burst >= 1) || rps > 1e9 || burst > 1e9) {
        return -1;
    }
    out->rps = rps;
    out->burst = burst;
    return 0;
}

int br_ratelimit_new(struct br_ratelimit **out, struct br_rate rate, uint32_t slots_max)
{
    *out = NULL;
    struct br_ratelimit *rl = calloc(1, sizeof *rl);
    if (rl == NULL) {
        return BR_E_IO;
    }
    uint32_t sets = 1;
    while (sets * BR_RATE_WAYS < slots_max && sets < (1u << 24)) {
        sets *= 2;
    }
    rl->rate = rate;
    rl->set_mask = sets - 1;
    rl->buckets = calloc((size_t)sets * BR_RATE_WAYS, sizeof *rl->buckets);
    if (rl->buckets == NULL) {
        free(rl);
        return BR_E_IO;
    }
    for (unsigned i = 0; i < BR_RATE_STRIPES; i++) {
        pthread_mutex_init(&rl->stripes[i], NULL);
    }
    *out = rl;
    return BR_OK;
}

void br_ratelimit_free(struct br_ratelimit *rl)
{
    if (rl == NULL) {
        return;
    }
    for (unsigned i = 0; i < BR_RATE_STRIPES; i++) {
        pthread_mutex_destroy(&rl->stripes[i]);
    }
    free(rl->buckets);
    free(rl);
}

bool br_ratelimit_allow(struct br_ratelimit *rl, uint64_t key, int64_t now_us,
                        unsigned *retry_after_s)
{
    if (rl == NULL || rl->rate.rps <= 0) {
        return true;
    }
    key = key == 0 ? 1 : key; /* 0 marks an empty bucket */
    uint64_t h = br_mix64(key);
    uint32_t set = (uint32_t)h & rl->set_mask;
    struct bucket *ways = &rl->buckets[(size_t)set * BR_RATE_WAYS];
    pthread_mutex_t *mu = &rl->stripes[set % BR_RATE_STRIPES];
    pthread_mutex_lock(mu);
    struct bucket *b = NULL;
    struct bucket *oldest = &ways[0];
    for (unsigned i = 0; i < BR_RATE_WAYS; i++) {
        if (ways[i].key == key) {
            b = &ways[i];
            break;
        }
        if (ways[i].key == 0 || ways[i].last_us < oldest->last_us) {
            oldest = &ways[i];
            if (ways[i].key == 0) {
                oldest->last_us = INT64_MIN; /* prefer empty slots */
            }
        }
    }
    if (b == NULL) {
        b = oldest;
        b->key = key;
        b->tokens = rl->rate.burst;
        b->last_us = now_us;
    }
    double elapsed_s = (double)(now_us - b->last_us) / 1e6;
    if (elapsed_s > 0) {
        b->tokens += elapsed_s * rl->rate.rps;
        if (b->tokens > rl->rate.burst) {
            b->tokens = rl->rate.burst;
        }
    }
    b->last_us = now_us > b->last_us ? now_us : b->last_us;
    bool ok = b->tokens >= 1.0;
    if (ok) {
        b->tokens -= 1.0;
    } else {
        double wait = (1.0 - b->tokens) / rl->rate.rps;
        unsigned s = (unsigned)wait + 1;
        *retry_after_s = s < 1 ? 1 : s;
    }
    pthread_mutex_unlock(mu);
    return ok;
}

static int parse_addr(const char *s, int *family, uint8_t addr[16])
{
    memset(addr, 0, 16);
    if (inet_pton(AF_INET, s, addr) == 1) {
        *family = AF_INET;
        return 0;
    }
    if (inet_pton(AF_INET6, s, addr) == 1) {
        *family = AF_INET6;
        return 0;
    }
    return -1;
}

int br_cidr_parse_list(const char *s, struct br_cidr *out, unsigned cap)
{
    unsigned n = 0;
    const char *p = s;
    /* Bounded by cap: every turn stores one entry (n++) or returns. */
    while (p != NULL && *p != '\0') {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char item[64];
        if (len == 0 || len >= sizeof item || n >= cap) {
            return -1;
        }
        memcpy(item, p, len);
        item[len] = '\0';
        char *slash = strchr(item, '/');
        long bits = -1;
        if (slash != NULL) {
            *slash = '\0';
            char *e = NULL;
            bits = strtol(slash + 1, &e, 10);
            if (e == slash + 1 || *e != '\0') {
                return -1;
            }
        }
        struct br_cidr *c = &out[n];
        if (parse_addr(item, &c->family, c->addr) != 0) {
            return -1;
        }
        long max = c->family == AF_INET ? 32 : 128;
        if (bits < 0) {
            bits = max;
        }
        if (bits > max) {
            return -1;
        }
        c->bits = (unsigned)bits;
        n++;
        p = end ? end + 1 : p + len;
    }
    return (int)n;
}

bool br_cidr_match(const struct br_cidr *list, unsigned n, const char *addr)
{
    int family;
    uint8_t a[16];
    if (parse_addr(addr, &family, a) != 0) {
        return false;
    }
    for (unsigned i = 0; i < n; i++) {
        const struct br_cidr *c = &list[i];
        if (c->family != family) {
            continue;
        }
        unsigned full = c->bits / 8;
        unsigned rest = c->bits % 8;
        if (memcmp(a, c->addr, full) != 0) {
            continue;
        }
        if (rest == 0 || ((a[full] ^ c->addr[full]) & (uint8_t)(0xff << (8 - rest))) == 0) {
            return true;
        }
    }
    return false;
}

void br_client_addr(const char *peer, const char *forwarded_for, const struct br_cidr *trusted,
                    unsigned trusted_count, char out[BR_ADDR_TEXT_MAX])
{
    snprintf(out, BR_ADDR_TEXT_MAX, "%s", peer);
    if (forwarded_for == NULL || trusted_count == 0 ||
        !br_cidr_match(trusted, trusted_count, peer)) {
        return;
    }
    /* Walk X-Forwarded-For from the right: each hop was appended by the
     * proxy after it; the first untrusted one is the client. */
    size_t len = strlen(forwarded_for);
    for (unsigned hop = 0; hop < 32 && len > 0; hop++) {
        size_t end = len;
        size_t start = end;
        while (start > 0 && forwarded_for[start - 1] != ',') {
            start--;
        }
        len = start > 0 ? start - 1 : 0;
        while (start < end && forwarded_for[start] == ' ') {
            start++;
        }
        while (end > start && forwarded_for[end - 1] == ' ') {
            end--;
        }
        char item[BR_ADDR_TEXT_MAX];
        if (end - start == 0 || end - start >= sizeof item) {
            return; /* malformed: keep the last good answer */
        }
        memcpy(item, forwarded_for + start, end - start);
        item[end - start] = '\0';
        int family;
        uint8_t a[16];
        if (parse_addr(item, &family, a) != 0) {
            return;
        }
        snprintf(out, BR_ADDR_TEXT_MAX, "%s", item);
        if (!br_cidr_match(trusted, trusted_count, item)) {
            return;
        }
    }
}
