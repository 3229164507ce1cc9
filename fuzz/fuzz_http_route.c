/*
 * fuzz_http_route.c -- fuzz target: what the API reads from a request line
 * and its headers before any body (server/parse.h): the route table with
 * path matching and the ids in paths (br_route_match, br_path_match,
 * br_parse_id), the events list's ?after_id= (br_parse_after_id), and the
 * Idempotency-Key, Content-Type and X-Request-Id headers
 * (br_parse_idem_key, br_content_type_is, br_request_id_ok).
 *
 * Input: a mode byte, then text. Mode (byte % 8):
 *   0  "<path>" under the method the mode byte's bits 3..4 pick (GET, POST,
 *      DELETE, PUT): br_route_match;
 *   1  "<method>\n<path>", both from the input: br_route_match;
 *   2  "<template>\n<path>" through br_path_match ("/" put in front of the
 *      template, as every template has one);
 *   3  br_parse_id over the raw bytes (no NUL: an exact-size buffer);
 *   4  br_parse_after_id;
 *   5  br_parse_idem_key;
 *   6  br_content_type_is against the two media types the routes take;
 *   7  br_request_id_ok.
 * Texts end at their first NUL, as C strings from the HTTP adapter do.
 *
 * Asserted beyond "no crash, no UB":
 *   - a match is the first route in table order whose method and template
 *     both fit, and substituting its id and segment into the template gives
 *     back the path byte for byte;
 *   - no match: every route whose template fits the path has another
 *     method, each of them is in Allow, and Allow is empty exactly when no
 *     template fits (404 rather than 405);
 *   - an id is 1..16 digits without a leading zero and prints back to them;
 *   - after_id and Idempotency-Key: a refusal says why; a key hashes to a
 *     non-zero value, the same every time;
 *   - a Content-Type that matches still matches in upper case and with a
 *     parameter appended, and its media type is a prefix of it; an accepted
 *     X-Request-Id needs no escaping in a log line or a header.
 */
#define _POSIX_C_SOURCE 200809L

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/panic.h"
#include "server/parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define INPUT_MAX 4096u
#define PATH_TEXT_MAX (INPUT_MAX + 32u)

/* The path the template gives with id and segment put in. Returns false
 * when the template has more than one "{id}" or "{s}" (one value each is
 * kept, so no single path is implied). */
static bool substitute(const char *tmpl, const struct br_route_match *m, char *out, size_t cap)
{
    size_t at = 0;
    unsigned ids = 0;
    unsigned segs = 0;
    for (const char *t = tmpl; *t != '\0';) {
        char piece[BR_SEGMENT_MAX + 24];
        const char *add = piece;
        size_t n = 0;
        bool seg_start = t == tmpl || t[-1] == '/';
        const char *end = strchr(t, '/');
        size_t tn = end ? (size_t)(end - t) : strlen(t);
        if (seg_start && tn == 4 && memcmp(t, "{id}", 4) == 0) {
            n = (size_t)snprintf(piece, sizeof piece, "%" PRIu64, m->id);
            t += 4;
            ids++;
        } else if (seg_start && tn == 3 && memcmp(t, "{s}", 3) == 0) {
            add = m->segment;
            n = strlen(m->segment);
            t += 3;
            segs++;
        } else {
            add = t;
            n = 1;
            t++;
        }
        if (ids > 1 || segs > 1) {
            return false;
        }
        BR_ASSERT(at + n < cap);
        memcpy(out + at, add, n);
        at += n;
    }
    out[at] = '\0';
    return true;
}

/* The methods in an Allow value, one at a time. */
static bool allow_has(const char *allow, const char *method)
{
    size_t n = strlen(method);
    for (const char *p = allow; p != NULL && *p != '\0';) {
        const char *end = strstr(p, ", ");
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && memcmp(p, method, n) == 0) {
            return true;
        }
        p = end ? end + 2 : NULL;
    }
    return false;
}

static void check_route(const char *method, const char *path)
{
    struct br_route_match m;
    memset(&m, 0x55, sizeof m);
    int rc = br_route_match(method, path, &m);
    BR_ASSERT(rc == BR_OK || rc == BR_E_NOT_FOUND);
    BR_ASSERT(memchr(m.allow, '\0', sizeof m.allow) != NULL);
    BR_ASSERT(memchr(m.segment, '\0', sizeof m.segment) != NULL);
    bool any_path = false;
    for (unsigned i = 0; i < BR_ROUTE_COUNT; i++) {
        enum br_route r = (enum br_route)i;
        struct br_route_match one;
        if (!br_path_match(br_route_template(r), path, &one)) {
            continue;
        }
        any_path = true;
        bool same_method = strcmp(br_route_method(r), method) == 0;
        if (rc == BR_OK && i < (unsigned)m.route) {
            BR_ASSERT(!same_method); /* the first fitting route wins */
        }
        if (rc == BR_OK && i == (unsigned)m.route) {
            BR_ASSERT(same_method && one.id == m.id && strcmp(one.segment, m.segment) == 0);
        }
        if (rc != BR_OK) {
            BR_ASSERT(!same_method);
            BR_ASSERT(allow_has(m.allow, br_route_method(r)));
        }
    }
    if (rc != BR_OK) {
        BR_ASSERT(m.route == BR_ROUTE_COUNT);
        BR_ASSERT((m.allow[0] != '\0') == any_path);
        BR_ASSERT(!allow_has(m.allow, method));
        return;
    }
    BR_ASSERT(m.route < BR_ROUTE_COUNT && any_path && m.allow[0] == '\0');
    char again[PATH_TEXT_MAX];
    BR_ASSERT(substitute(br_route_template(m.route), &m, again, sizeof again));
    BR_ASSERT(strcmp(again, path) == 0);
}

static void check_template(const char *text)
{
    const char *nl = strchr(text, '\n');
    if (nl == NULL) {
        return;
    }
    size_t tn = (size_t)(nl - text);
    char *tmpl = malloc(tn + 2);
    if (tmpl == NULL) {
        return;
    }
    tmpl[0] = '/';
    memcpy(tmpl + 1, text, tn);
    tmpl[tn + 1] = '\0';
    const char *path = nl + 1;
    struct br_route_match m;
    memset(&m, 0, sizeof m);
    if (br_path_match(tmpl, path, &m)) {
        BR_ASSERT(strnlen(m.segment, sizeof m.segment) < sizeof m.segment);
        char *again = malloc(PATH_TEXT_MAX);
        if (again != NULL && substitute(tmpl, &m, again, PATH_TEXT_MAX)) {
            BR_ASSERT(strcmp(again, path) == 0);
        }
        free(again);
    }
    free(tmpl);
}

static void check_id(const uint8_t *bytes, size_t n)
{
    char *s = malloc(n > 0 ? n : 1);
    if (s == NULL) {
        return;
    }
    memcpy(s, bytes, n);
    uint64_t v = 0;
    if (br_parse_id(s, n, &v) == BR_OK) {
        char back[24];
        int k = snprintf(back, sizeof back, "%" PRIu64, v);
        BR_ASSERT(v >= 1 && n <= BR_ID_DIGITS_MAX);
        BR_ASSERT(k > 0 && (size_t)k == n && memcmp(back, s, n) == 0);
    } else {
        BR_ASSERT(v == 0); /* untouched on failure */
    }
    free(s);
}

static void check_after_id(const char *text)
{
    char why[BR_WHY_MAX];
    memset(why, 0x55, sizeof why);
    uint64_t v = 12345;
    BR_ASSERT(br_parse_after_id(NULL, &v, why) == BR_OK && v == 0); /* absent: from the start */
    int rc = br_parse_after_id(text, &v, why);
    BR_ASSERT(rc == BR_OK || rc == BR_E_INVALID);
    if (rc != BR_OK) {
        BR_ASSERT(v == 0 && strnlen(why, sizeof why) < sizeof why);
        return;
    }
    /* Plain digits without a leading zero read as themselves. */
    size_t n = strlen(text);
    bool plain = n >= 1 && n <= 19 && text[0] != '0';
    for (size_t i = 0; plain && i < n; i++) {
        plain = text[i] >= '0' && text[i] <= '9';
    }
    if (plain) {
        char back[24];
        snprintf(back, sizeof back, "%" PRIu64, v);
        BR_ASSERT(strcmp(back, text) == 0);
    }
    BR_ASSERT(text[0] != '-' && text[0] != '\0');
}

static void check_idem_key(const char *text)
{
    char why[BR_WHY_MAX];
    memset(why, 0x55, sizeof why);
    uint64_t h = 7;
    BR_ASSERT(br_parse_idem_key(NULL, &h, why) == BR_OK && h == 0); /* absent: no key */
    int rc = br_parse_idem_key(text, &h, why);
    size_t n = strlen(text);
    if (rc != BR_OK) {
        BR_ASSERT(rc == BR_E_INVALID && h == 0);
        BR_ASSERT(strnlen(why, sizeof why) < sizeof why);
        bool printable = true;
        for (size_t i = 0; printable && i < n; i++) {
            printable = text[i] > 0x20 && text[i] < 0x7f;
        }
        BR_ASSERT(n == 0 || n > BR_IDEM_KEY_MAX || !printable);
        return;
    }
    BR_ASSERT(h != 0 && n >= 1 && n <= BR_IDEM_KEY_MAX);
    uint64_t again = 0;
    BR_ASSERT(br_parse_idem_key(text, &again, why) == BR_OK && again == h);
}

static void check_content_type(const char *ct)
{
    static const char *const types[] = {"application/json", "application/x-www-form-urlencoded"};
    for (unsigned i = 0; i < 2; i++) {
        if (!br_content_type_is(ct, types[i])) {
            continue;
        }
        size_t n = strlen(types[i]);
        BR_ASSERT(strlen(ct) >= n);
        /* The same header shouted, or with a parameter after it, still matches. */
        char *other = malloc(strlen(ct) + 16);
        if (other == NULL) {
            return;
        }
        size_t k = strlen(ct);
        for (size_t j = 0; j <= k; j++) {
            char c = ct[j];
            other[j] = c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c;
        }
        BR_ASSERT(br_content_type_is(other, types[i]));
        memcpy(other, types[i], n);
        memcpy(other + n, "; q=1", 6);
        BR_ASSERT(br_content_type_is(other, types[i]));
        free(other);
    }
    BR_ASSERT(!br_content_type_is(NULL, types[0]));
}

static void check_request_id(const char *given)
{
    BR_ASSERT(!br_request_id_ok(NULL));
    if (!br_request_id_ok(given)) {
        return;
    }
    size_t n = strlen(given);
    BR_ASSERT(n >= 1 && n <= BR_REQUEST_ID_MAX);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)given[i];
        BR_ASSERT(c > 0x20 && c < 0x7f && c != '"' && c != '\\' && c != ':' && c != ',');
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > INPUT_MAX) {
        return 0;
    }
    uint8_t mode = data[0] % 8u;
    if (mode == 3) {
        check_id(data + 1, size - 1);
        return 0;
    }
    char *text = malloc(size);
    if (text == NULL) {
        return 0;
    }
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    switch (mode) {
    case 0: {
        static const char *const methods[] = {"GET", "POST", "DELETE", "PUT"};
        check_route(methods[(data[0] >> 3) & 3u], text);
        break;
    }
    case 1: {
        char *nl = strchr(text, '\n');
        if (nl != NULL) {
            *nl = '\0';
            check_route(text, nl + 1);
        }
        break;
    }
    case 2:
        check_template(text);
        break;
    case 4:
        check_after_id(text);
        break;
    case 5:
        check_idem_key(text);
        break;
    case 6:
        check_content_type(text);
        break;
    default:
        check_request_id(text);
        break;
    }
    free(text);
    return 0;
}
